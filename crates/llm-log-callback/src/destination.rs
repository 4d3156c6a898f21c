//! Where logs go, read from the environment the way the original callback
//! did: `AZURE_STORAGE_CONNECTION_STRING`, or `AZURE_STORAGE_ACCOUNT_NAME`
//! with `AZURE_STORAGE_ACCOUNT_KEY` (Shared Key) or with
//! `AZURE_STORAGE_TENANT_ID` / `AZURE_STORAGE_CLIENT_ID` /
//! `AZURE_STORAGE_CLIENT_SECRET` (Entra ID). Optional:
//! `AZURE_STORAGE_ENDPOINT` (custom DFS/Blob endpoint), `AZURE_STORAGE_DIALECT`
//! (`dfs` or `blob`), `LLM_LOG_CA_PEM` (extra root certificate file).

use adls_rest::{Account, Client, ClientBuilder, Credential, Dialect};

use crate::error::LogError;

/// Builds the storage client from the environment.
///
/// ```no_run
/// # fn main() -> Result<(), llm_log_callback::LogError> {
/// // e.g. AZURE_STORAGE_CONNECTION_STRING=UseDevelopmentStorage=true for Azurite
/// let client = llm_log_callback::client_from_env()?;
/// # let _ = client; Ok(()) }
/// ```
pub fn client_from_env() -> Result<Client, LogError> {
    client_from_lookup(|k| std::env::var(k).ok())
}

/// [`client_from_env`] with an injected lookup (for tests).
///
/// ```
/// # fn main() -> Result<(), llm_log_callback::LogError> {
/// use llm_log_callback::destination::client_from_lookup;
///
/// let client = client_from_lookup(|name| match name {
///     "AZURE_STORAGE_CONNECTION_STRING" => Some("UseDevelopmentStorage=true".into()),
///     _ => None,
/// })?;
/// assert_eq!(client.account().name(), "devstoreaccount1");
///
/// // A missing or bad setting is an error naming the variable, never its value.
/// let e = client_from_lookup(|_| None).unwrap_err();
/// assert!(e.to_string().contains("AZURE_STORAGE_ACCOUNT_NAME"));
/// # Ok(()) }
/// ```
pub fn client_from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Client, LogError> {
    let get = |k: &str| {
        get(k)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    let mut builder: ClientBuilder = if let Some(cs) = get("AZURE_STORAGE_CONNECTION_STRING") {
        Client::from_connection_string(&cs)
            .map_err(|e| LogError::config("AZURE_STORAGE_CONNECTION_STRING", e.to_string()))?
    } else {
        let name = get("AZURE_STORAGE_ACCOUNT_NAME").ok_or_else(|| {
            LogError::config(
                "AZURE_STORAGE_ACCOUNT_NAME",
                "not set (and no AZURE_STORAGE_CONNECTION_STRING): say which storage account to write to",
            )
        })?;
        let account = match get("AZURE_STORAGE_ENDPOINT") {
            Some(ep) => Account::custom(&name, &ep, &ep),
            None => Account::azure(&name),
        }
        .map_err(|e| LogError::config("AZURE_STORAGE_ACCOUNT_NAME", e.to_string()))?;
        let credential = if let Some(key) = get("AZURE_STORAGE_ACCOUNT_KEY") {
            Credential::shared_key(&key)
                .map_err(|e| LogError::config("AZURE_STORAGE_ACCOUNT_KEY", e.to_string()))?
        } else if let (Some(tenant), Some(client_id), Some(secret)) = (
            get("AZURE_STORAGE_TENANT_ID"),
            get("AZURE_STORAGE_CLIENT_ID"),
            get("AZURE_STORAGE_CLIENT_SECRET"),
        ) {
            entra_credential(&tenant, &client_id, &secret, get("AZURE_AUTHORITY_HOST"))?
        } else {
            return Err(LogError::config(
                "AZURE_STORAGE_ACCOUNT_KEY",
                "no credential: set AZURE_STORAGE_ACCOUNT_KEY, or AZURE_STORAGE_TENANT_ID, AZURE_STORAGE_CLIENT_ID and AZURE_STORAGE_CLIENT_SECRET",
            ));
        };
        Client::builder(account, credential)
    };
    if let Some(d) = get("AZURE_STORAGE_DIALECT") {
        let dialect: Dialect = d.parse().map_err(|e: adls_rest::Error| {
            LogError::config("AZURE_STORAGE_DIALECT", e.to_string())
        })?;
        builder = builder.dialect(dialect);
    }
    if let Some(path) = get("LLM_LOG_CA_PEM") {
        let pem = std::fs::read(&path)
            .map_err(|e| LogError::config("LLM_LOG_CA_PEM", format!("cannot read {path}: {e}")))?;
        builder = builder.extra_root_pem(pem);
    }
    builder
        .build()
        .map_err(|e| LogError::config("storage client", e.to_string()))
}

/// The original callback's Entra ID variables: a client-secret credential
/// (`AZURE_AUTHORITY_HOST` selects a sovereign cloud), its tokens cached and
/// refreshed ahead of expiry by the client.
fn entra_credential(
    tenant: &str,
    client_id: &str,
    secret: &str,
    authority: Option<String>,
) -> Result<Credential, LogError> {
    let mut options = adls_rest::identity::EntraOptions::default();
    if let Some(a) = authority {
        options.authority_host = a;
    }
    let cred = adls_rest::ClientSecretCredential::with_options(tenant, client_id, secret, options)
        .map_err(|e| LogError::config("AZURE_STORAGE_CLIENT_ID", e.to_string()))?;
    Ok(Credential::bearer(std::sync::Arc::new(cred)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn from(pairs: &[(&str, &str)]) -> Result<Client, LogError> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        client_from_lookup(|k| m.get(k).cloned())
    }

    #[test]
    fn original_variables() {
        let c = from(&[
            ("AZURE_STORAGE_ACCOUNT_NAME", "myacct"),
            ("AZURE_STORAGE_ACCOUNT_KEY", "c2VjcmV0"),
        ])
        .expect("client");
        assert_eq!(c.account().name(), "myacct");
        assert_eq!(c.dialect(), Dialect::Dfs);
        let c = from(&[(
            "AZURE_STORAGE_CONNECTION_STRING",
            "UseDevelopmentStorage=true",
        )])
        .expect("client");
        assert_eq!(c.dialect(), Dialect::Blob);
    }

    #[test]
    fn errors_name_the_variable_and_hide_secrets() {
        let secret = "NOT_BASE64_SECRET!!";
        for (pairs, var) in [
            (vec![], "AZURE_STORAGE_ACCOUNT_NAME"),
            (
                vec![("AZURE_STORAGE_ACCOUNT_NAME", "myacct")],
                "AZURE_STORAGE_ACCOUNT_KEY",
            ),
            (
                vec![
                    ("AZURE_STORAGE_ACCOUNT_NAME", "myacct"),
                    ("AZURE_STORAGE_ACCOUNT_KEY", secret),
                ],
                "AZURE_STORAGE_ACCOUNT_KEY",
            ),
            (
                vec![(
                    "AZURE_STORAGE_CONNECTION_STRING",
                    "AccountName=x;AccountKey=NOT_BASE64_SECRET!!",
                )],
                "AZURE_STORAGE_CONNECTION_STRING",
            ),
            (
                vec![
                    (
                        "AZURE_STORAGE_CONNECTION_STRING",
                        "UseDevelopmentStorage=true",
                    ),
                    ("AZURE_STORAGE_DIALECT", "ftp"),
                ],
                "AZURE_STORAGE_DIALECT",
            ),
        ] {
            let e = from(&pairs).expect_err(var);
            let shown = format!("{e} {e:?}");
            assert!(shown.contains(var), "{shown}");
            assert!(!shown.contains(secret), "{shown}");
        }
    }
}
