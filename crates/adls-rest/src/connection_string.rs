//! Azure Storage connection strings
//! (<https://learn.microsoft.com/azure/storage/common/storage-configure-connection-string>).
//!
//! `Key=Value` pairs separated by `;`. Keys are matched case-insensitively;
//! unknown keys are ignored; errors name the offending key or segment number,
//! never its value (it may be the account key).

use crate::account::{Account, Dialect};
use crate::credential::Credential;
use crate::error::Error;

/// Azurite's well-known development account.
pub const DEV_ACCOUNT: &str = "devstoreaccount1";
/// Azurite's well-known development account key (public, documented by Microsoft).
pub const DEV_ACCOUNT_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// What a connection string says: where, how to authorize, and which dialect to speak.
#[derive(Debug, Clone)]
pub struct ConnectionInfo {
    /// The account and its endpoints.
    pub account: Account,
    /// The credential (Shared Key, SAS, or anonymous).
    pub credential: Credential,
    /// Blob for the development storage and loopback endpoints, DFS otherwise.
    pub dialect: Dialect,
}

/// Parses a connection string.
///
/// ```
/// # fn main() -> Result<(), adls_rest::Error> {
/// use adls_rest::connection_string::parse;
/// use adls_rest::Dialect;
///
/// let info = parse("DefaultEndpointsProtocol=https;AccountName=myacct;AccountKey=a2V5;EndpointSuffix=core.windows.net")?;
/// assert_eq!(info.account.name(), "myacct");
/// assert_eq!(info.dialect, Dialect::Dfs);
/// assert_eq!(info.credential.kind_name(), "shared-key");
///
/// let azurite = parse("UseDevelopmentStorage=true")?;
/// assert_eq!(azurite.account.blob_endpoint().as_str(), "http://127.0.0.1:10000/devstoreaccount1");
/// assert_eq!(azurite.dialect, Dialect::Blob);
/// # Ok(()) }
/// ```
pub fn parse(s: &str) -> Result<ConnectionInfo, Error> {
    let mut fields: Vec<(String, String)> = Vec::new();
    for (i, segment) in s.split(';').enumerate() {
        let segment = segment.trim();
        if segment.is_empty() {
            continue;
        }
        let Some((k, v)) = segment.split_once('=') else {
            return Err(Error::config(format!(
                "connection string segment {} has no `=`; expected `Key=Value` pairs separated by `;`",
                i + 1
            )));
        };
        let key = k.trim().to_ascii_lowercase();
        if key.is_empty() {
            return Err(Error::config(format!(
                "connection string segment {} has an empty key",
                i + 1
            )));
        }
        fields.push((key, v.trim().to_string()));
    }
    let get = |name: &str| {
        fields
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    };

    if let Some(dev) = get("usedevelopmentstorage") {
        if !dev.eq_ignore_ascii_case("true") {
            return Err(Error::config(format!(
                "UseDevelopmentStorage must be `true`, found `{dev}`"
            )));
        }
        let base = get("developmentstorageproxyuri").unwrap_or("http://127.0.0.1");
        let base = base.trim_end_matches('/');
        let endpoint = format!("{base}:10000/{DEV_ACCOUNT}");
        return Ok(ConnectionInfo {
            account: Account::emulator(&endpoint).map_err(|e| {
                Error::config(format!("DevelopmentStorageProxyUri is invalid: {e}"))
            })?,
            credential: Credential::shared_key(DEV_ACCOUNT_KEY)?,
            dialect: Dialect::Blob,
        });
    }

    let credential = match (get("accountkey"), get("sharedaccesssignature")) {
        (Some(_), Some(_)) => {
            return Err(Error::config(
                "connection string has both AccountKey and SharedAccessSignature; expected one",
            ))
        }
        (Some(key), None) => Credential::shared_key(key)
            .map_err(|e| Error::config(format!("AccountKey is invalid: {e}")))?,
        (None, Some(sas)) => Credential::sas(sas)
            .map_err(|e| Error::config(format!("SharedAccessSignature is invalid: {e}")))?,
        (None, None) => Credential::Anonymous,
    };

    let blob_ep = get("blobendpoint");
    let dfs_ep = get("dfsendpoint");
    let account = match (get("accountname"), blob_ep, dfs_ep) {
        (name, Some(blob), dfs) => {
            let dfs = dfs.map(str::to_string).unwrap_or_else(|| blob.replacen(".blob.", ".dfs.", 1));
            let name = match name {
                Some(n) => n.to_string(),
                None => account_from_endpoint(blob)?,
            };
            Account::custom(&name, blob, &dfs)?
        }
        (name, None, Some(dfs)) => {
            let name = match name {
                Some(n) => n.to_string(),
                None => account_from_endpoint(dfs)?,
            };
            Account::custom(&name, &dfs.replacen(".dfs.", ".blob.", 1), dfs)?
        }
        (Some(name), None, None) => Account::with_suffix(
            name,
            &get("defaultendpointsprotocol")
                .unwrap_or("https")
                .to_ascii_lowercase(),
            get("endpointsuffix").unwrap_or("core.windows.net"),
        )?,
        (None, None, None) => {
            return Err(Error::config(
                "connection string names no account: expected AccountName, BlobEndpoint, DfsEndpoint or UseDevelopmentStorage=true",
            ))
        }
    };
    if matches!(credential, Credential::SharedKey(_)) && get("accountname").is_none() {
        return Err(Error::config(
            "connection string has AccountKey but no AccountName; Shared Key signing needs the account name",
        ));
    }
    let dialect = account.default_dialect();
    Ok(ConnectionInfo {
        account,
        credential,
        dialect,
    })
}

/// The account name from `https://{account}.blob...` or path style `http://host/{account}`.
fn account_from_endpoint(endpoint: &str) -> Result<String, Error> {
    let url = url::Url::parse(endpoint)
        .map_err(|e| Error::config(format!("endpoint `{endpoint}` is not a URL: {e}")))?;
    let host = url.host_str().unwrap_or("");
    let from_host = host.split('.').next().filter(|_| host.contains(".core."));
    let from_path = url
        .path_segments()
        .and_then(|mut s| s.next())
        .filter(|s| !s.is_empty());
    from_host.or(from_path).map(str::to_string).ok_or_else(|| {
        Error::config(format!(
            "cannot tell the account name from `{endpoint}`; add AccountName="
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "c2VjcmV0LWtleS1ieXRlcy1zZWNyZXQta2V5LWJ5dGVz";

    #[test]
    fn account_name_and_key() {
        let c = parse(&format!(
            "DefaultEndpointsProtocol=https;AccountName=myacct;AccountKey={KEY};EndpointSuffix=core.chinacloudapi.cn;Unknown=1"
        ))
        .expect("parse");
        assert_eq!(c.account.name(), "myacct");
        assert_eq!(
            c.account.dfs_endpoint().as_str(),
            "https://myacct.dfs.core.chinacloudapi.cn/"
        );
        assert_eq!(
            c.account.blob_endpoint().as_str(),
            "https://myacct.blob.core.chinacloudapi.cn/"
        );
        assert_eq!(c.dialect, Dialect::Dfs);
        assert!(matches!(c.credential, Credential::SharedKey(_)));
    }

    #[test]
    fn development_storage() {
        let c = parse("UseDevelopmentStorage=true").expect("parse");
        assert_eq!(c.account.name(), DEV_ACCOUNT);
        assert_eq!(
            c.account.blob_endpoint().as_str(),
            "http://127.0.0.1:10000/devstoreaccount1"
        );
        assert_eq!(c.dialect, Dialect::Blob);
        let c = parse("UseDevelopmentStorage=true;DevelopmentStorageProxyUri=http://localhost")
            .expect("parse");
        assert_eq!(
            c.account.blob_endpoint().as_str(),
            "http://localhost:10000/devstoreaccount1"
        );
    }

    #[test]
    fn explicit_endpoints_and_sas() {
        let c = parse("BlobEndpoint=https://acct2.blob.core.windows.net;SharedAccessSignature=sv=2024&sig=abc").expect("parse");
        assert_eq!(c.account.name(), "acct2");
        assert_eq!(
            c.account.dfs_endpoint().host_str(),
            Some("acct2.dfs.core.windows.net")
        );
        assert!(matches!(c.credential, Credential::Sas(_)));
        let c = parse(&format!(
            "AccountName=devstoreaccount1;AccountKey={KEY};BlobEndpoint=http://127.0.0.1:4444/devstoreaccount1"
        ))
        .expect("parse");
        assert_eq!(c.dialect, Dialect::Blob);
        assert_eq!(
            c.account.dfs_endpoint().as_str(),
            "http://127.0.0.1:4444/devstoreaccount1"
        );
    }

    #[test]
    fn errors_name_the_part_and_never_the_key() {
        let secretish = "NOT-BASE64-SECRET!!";
        let e = parse(&format!("AccountName=a1b;AccountKey={secretish}")).expect_err("bad key");
        let shown = format!("{e} {e:?}");
        assert!(shown.contains("AccountKey"), "{shown}");
        assert!(!shown.contains(secretish), "{shown}");

        let e = parse(&format!("AccountName=abc;{secretish}")).expect_err("no =");
        let shown = format!("{e} {e:?}");
        assert!(shown.contains("segment 2"), "{shown}");
        assert!(!shown.contains(secretish), "{shown}");

        assert!(parse("").is_err());
        assert!(parse("UseDevelopmentStorage=maybe").is_err());
        assert!(parse(&format!(
            "AccountKey={KEY};BlobEndpoint=https://x.blob.core.windows.net"
        ))
        .is_err());
        assert!(parse("AccountName=abc;DefaultEndpointsProtocol=ftp").is_err());
        let e =
            parse("AccountName=abc;SharedAccessSignature=sv=1&SECRETVALUE").expect_err("no sig");
        assert!(!format!("{e:?}").contains("SECRETVALUE"));
    }
}
