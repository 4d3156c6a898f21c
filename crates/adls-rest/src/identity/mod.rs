//! Microsoft Entra ID credentials for bearer-token authorization.
//!
//! Each type here implements [`TokenCredential`](crate::credential::TokenCredential); hand one to
//! [`Credential::bearer`](crate::Credential::bearer) and the crate's
//! [`TokenCache`](crate::credential::TokenCache) asks it for a token only when
//! needed: the first time, and 5 minutes before the expiry each answer states
//! (`expires_in` / `expires_on`), one refresh at a time however many requests
//! wait, keeping a still-valid token if a refresh fails. The transport refreshes
//! once more and retries once when storage answers 401 `InvalidAuthenticationInfo`.
//!
//! | credential | how | configured by |
//! |---|---|---|
//! | [`ClientSecretCredential`] | client credentials grant with a secret | `AZURE_TENANT_ID`, `AZURE_CLIENT_ID`, `AZURE_CLIENT_SECRET` |
//! | [`WorkloadIdentityCredential`] | client credentials grant with a federated token (AKS) | `AZURE_TENANT_ID`, `AZURE_CLIENT_ID`, `AZURE_FEDERATED_TOKEN_FILE` |
//! | [`ManagedIdentityCredential`] | IMDS, or the App Service / Functions / Container Apps endpoint | `IDENTITY_ENDPOINT` + `IDENTITY_HEADER`, else IMDS at `AZURE_POD_IDENTITY_AUTHORITY_HOST` or 169.254.169.254 |
//! | [`AzureCliCredential`] | `az account get-access-token` | `az login` |
//! | [`DefaultAzureCredential`] | the first of environment, managed identity, Azure CLI that works | all of the above |
//!
//! `AZURE_AUTHORITY_HOST` selects a sovereign cloud's authority (default
//! [`AZURE_PUBLIC_CLOUD`]). Every credential also has a constructor taking its
//! settings explicitly, and the `from_env` ones have a `from_env_with(lookup)`
//! twin that reads variables through a function instead of the process
//! environment.
//!
//! Secrets (client secret, federated assertion, `IDENTITY_HEADER`, tokens) are
//! held in [`Secret`](crate::secret::Secret) or read when needed, and appear in
//! no `Debug`, `Display`, error or log line at any level. Errors are of kind
//! [`ErrorKind::Credential`](crate::ErrorKind::Credential); their source is an
//! [`IdentityError`] with the token endpoint's `error` code and the first line of
//! its `error_description`.
//!
//! Token requests go through a small hyper + rustls client of their own (same
//! TLS setup as the storage transport), with a connect timeout, a per-attempt
//! timeout and a few retries of transient failures.
//!
//! ```no_run
//! # fn demo() -> Result<(), adls_rest::Error> {
//! use std::sync::Arc;
//! use adls_rest::identity::DefaultAzureCredential;
//! use adls_rest::{Account, Client, Credential};
//!
//! let credential = Credential::bearer(Arc::new(DefaultAzureCredential::new()));
//! let client = Client::builder(Account::azure("mystorageaccount")?, credential).build()?;
//! # let _ = client; Ok(()) }
//! ```

mod aad;
mod cli;
mod client_secret;
mod default;
mod error;
mod http;
mod managed;
mod response;
mod workload;

pub use aad::{EntraOptions, AZURE_PUBLIC_CLOUD};
pub use cli::{AzureCliCredential, AZ_DEFAULT_TIMEOUT};
pub use client_secret::ClientSecretCredential;
pub use default::{DefaultAzureCredential, DefaultAzureCredentialOptions};
pub use error::IdentityError;
pub use http::TokenHttpOptions;
pub use managed::{
    ManagedIdentityCredential, ManagedIdentityEndpoint, ManagedIdentityOptions, UserAssignedId,
    IMDS_DEFAULT_BASE,
};
pub use workload::WorkloadIdentityCredential;

/// The environment variables the credentials read.
pub mod env_names {
    /// Directory (tenant) id, a GUID or a domain.
    pub const AZURE_TENANT_ID: &str = "AZURE_TENANT_ID";
    /// Application (client) id; for managed identity in the default chain, a user-assigned identity's client id.
    pub const AZURE_CLIENT_ID: &str = "AZURE_CLIENT_ID";
    /// A client secret's value.
    pub const AZURE_CLIENT_SECRET: &str = "AZURE_CLIENT_SECRET";
    /// Path of the projected service account token (workload identity).
    pub const AZURE_FEDERATED_TOKEN_FILE: &str = "AZURE_FEDERATED_TOKEN_FILE";
    /// The Entra authority, e.g. `https://login.microsoftonline.us` (sovereign clouds).
    pub const AZURE_AUTHORITY_HOST: &str = "AZURE_AUTHORITY_HOST";
    /// Where IMDS answers instead of `http://169.254.169.254`.
    pub const AZURE_POD_IDENTITY_AUTHORITY_HOST: &str = "AZURE_POD_IDENTITY_AUTHORITY_HOST";
    /// The App Service / Functions / Container Apps identity endpoint.
    pub const IDENTITY_ENDPOINT: &str = "IDENTITY_ENDPOINT";
    /// The secret for `X-IDENTITY-HEADER`.
    pub const IDENTITY_HEADER: &str = "IDENTITY_HEADER";
    /// Set (with `IDENTITY_ENDPOINT`) on Azure Arc machines; not supported.
    pub const IMDS_ENDPOINT: &str = "IMDS_ENDPOINT";
    /// Set on Service Fabric; not supported.
    pub const IDENTITY_SERVER_THUMBPRINT: &str = "IDENTITY_SERVER_THUMBPRINT";
}

/// Reads variables through a lookup function; empty values count as unset.
pub(crate) struct Env<'a>(pub(crate) &'a dyn Fn(&str) -> Option<String>);

impl Env<'_> {
    pub(crate) fn get(&self, name: &str) -> Option<String> {
        (self.0)(name)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    }

    /// All of `names`, or an "unavailable" error naming the missing ones.
    pub(crate) fn require(
        &self,
        credential: &'static str,
        names: &[&str],
    ) -> Result<Vec<String>, crate::Error> {
        let values: Vec<Option<String>> = names.iter().map(|n| self.get(n)).collect();
        let missing: Vec<&str> = names
            .iter()
            .zip(&values)
            .filter(|(_, v)| v.is_none())
            .map(|(n, _)| *n)
            .collect();
        if !missing.is_empty() {
            return Err(IdentityError::new(
                credential,
                format!(
                    "{} not set (needs {})",
                    if missing.len() == 1 {
                        format!("{} is", missing[0])
                    } else {
                        format!("{} are", missing.join(", "))
                    },
                    names.join(", ")
                ),
            )
            .unavailable()
            .into_error());
        }
        Ok(values.into_iter().flatten().collect())
    }
}

/// The resource of a `.default` scope (`https://storage.azure.com/.default` →
/// `https://storage.azure.com`), for the endpoints that take a resource.
pub(crate) fn scope_to_resource(scope: &str) -> &str {
    scope.strip_suffix("/.default").unwrap_or(scope)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::credential::TokenCredential;
    use std::collections::HashMap;

    fn lookup(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn scope_and_resource() {
        assert_eq!(
            scope_to_resource(crate::credential::STORAGE_SCOPE),
            "https://storage.azure.com"
        );
        assert_eq!(scope_to_resource("https://x"), "https://x");
    }

    #[test]
    fn client_secret_from_env() {
        let map = lookup(&[
            ("AZURE_TENANT_ID", "contoso.onmicrosoft.com"),
            ("AZURE_CLIENT_ID", "app-1"),
            ("AZURE_CLIENT_SECRET", "very-secret-value-1"),
            ("AZURE_AUTHORITY_HOST", "https://login.microsoftonline.us/"),
        ]);
        let c = ClientSecretCredential::from_env_with(|k| map.get(k)).expect("credential");
        let shown = format!("{c:?}");
        assert!(
            shown.contains(
                "https://login.microsoftonline.us/contoso.onmicrosoft.com/oauth2/v2.0/token"
            ),
            "{shown}"
        );
        assert!(shown.contains("app-1"), "{shown}");
        assert!(!shown.contains("very-secret-value-1"), "{shown}");

        let partial = lookup(&[
            ("AZURE_CLIENT_SECRET", "very-secret-value-1"),
            ("AZURE_CLIENT_ID", "  "),
        ]);
        let e = ClientSecretCredential::from_env_with(|k| partial.get(k)).expect_err("missing");
        let shown = format!("{e} {e:?}");
        assert!(
            shown.contains("AZURE_TENANT_ID, AZURE_CLIENT_ID are not set"),
            "{shown}"
        );
        assert!(!shown.contains("very-secret-value-1"), "{shown}");
        assert!(IdentityError::of(&e).expect("identity").is_unavailable());

        let bad = lookup(&[
            ("AZURE_TENANT_ID", "not a tenant"),
            ("AZURE_CLIENT_ID", "app-1"),
            ("AZURE_CLIENT_SECRET", "very-secret-value-1"),
        ]);
        let e = ClientSecretCredential::from_env_with(|k| bad.get(k)).expect_err("bad tenant");
        assert!(
            !IdentityError::of(&e).expect("identity").is_unavailable(),
            "set but wrong: a failure"
        );
        assert!(e.to_string().contains("tenant id"), "{e}");
    }

    #[test]
    fn workload_identity_from_env() {
        let map = lookup(&[
            ("AZURE_TENANT_ID", "t1"),
            ("AZURE_CLIENT_ID", "app-2"),
            (
                "AZURE_FEDERATED_TOKEN_FILE",
                "/var/run/secrets/azure/tokens/azure-identity-token",
            ),
        ]);
        let c = WorkloadIdentityCredential::from_env_with(|k| map.get(k)).expect("credential");
        assert_eq!(
            c.token_file(),
            std::path::Path::new("/var/run/secrets/azure/tokens/azure-identity-token")
        );
        assert!(format!("{c:?}").contains("https://login.microsoftonline.com/t1/oauth2/v2.0/token"));
        let none = lookup(&[]);
        let e = WorkloadIdentityCredential::from_env_with(|k| none.get(k)).expect_err("unset");
        assert!(e.to_string().contains("AZURE_FEDERATED_TOKEN_FILE"), "{e}");
    }

    #[tokio::test]
    async fn default_chain_reports_every_source() {
        // Nothing configured; IMDS "lives" on a loopback port nobody listens on.
        let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = closed.local_addr().expect("addr").port();
        drop(closed);
        let imds = format!("http://127.0.0.1:{port}");
        let map = lookup(&[("AZURE_POD_IDENTITY_AUTHORITY_HOST", imds.as_str())]);
        let options = DefaultAzureCredentialOptions {
            azure_cli: AzureCliCredential::new().with_program("/nonexistent/adls-rest-test/az"),
            ..Default::default()
        };
        let chain = DefaultAzureCredential::from_env_with(|k| map.get(k), options);
        let e = chain
            .get_token(crate::credential::STORAGE_SCOPE)
            .await
            .expect_err("nothing works");
        let s = e.to_string();
        assert!(s.contains("environment: skipped"), "{s}");
        assert!(s.contains("managed identity: skipped"), "{s}");
        assert!(s.contains(&imds), "{s}");
        assert!(s.contains("Azure CLI: skipped"), "{s}");
        assert!(IdentityError::of(&e).expect("identity").is_unavailable());
        assert_eq!(chain.selected_source(), None);
    }
}
