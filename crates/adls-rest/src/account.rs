//! Storage account endpoints and the dialect (DFS or Blob) used to reach them.
//!
//! Two URL styles exist. Virtual-host style puts the account in the host name
//! (`https://{account}.dfs.core.windows.net`); path style puts it in the first
//! path segment (`http://127.0.0.1:10000/{account}`), which emulators and some
//! custom endpoints use. Requests are built by appending to the endpoint's path,
//! so the Shared Key canonicalized resource (`/{account}{path}`) holds the
//! account twice on path-style URLs, as the service expects.

use url::Url;

use crate::error::Error;

/// Which REST API carries create / append / flush.
///
/// ```
/// # fn main() -> Result<(), adls_rest::Error> {
/// use adls_rest::Dialect;
///
/// assert_eq!("dfs".parse::<Dialect>()?, Dialect::Dfs);
/// assert_eq!("Blob".parse::<Dialect>()?, Dialect::Blob);
/// assert!("s3".parse::<Dialect>().is_err());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dialect {
    /// The Data Lake Storage Gen2 API (`*.dfs.core.windows.net`), for accounts
    /// with a hierarchical namespace.
    Dfs,
    /// Block blobs on the Blob API, for Azurite and flat-namespace accounts.
    Blob,
}

impl std::str::FromStr for Dialect {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        match s.to_ascii_lowercase().as_str() {
            "dfs" => Ok(Dialect::Dfs),
            "blob" => Ok(Dialect::Blob),
            other => Err(Error::config(format!(
                "unknown dialect `{other}`; expected `dfs` or `blob`"
            ))),
        }
    }
}

/// One storage account's name and its Blob and DFS endpoints.
///
/// ```
/// # fn main() -> Result<(), adls_rest::Error> {
/// use adls_rest::{Account, Dialect};
///
/// let azure = Account::azure("mystorageaccount")?;
/// assert_eq!(azure.dfs_endpoint().as_str(), "https://mystorageaccount.dfs.core.windows.net/");
/// assert_eq!(azure.default_dialect(), Dialect::Dfs);
///
/// let azurite = Account::emulator("http://127.0.0.1:10000/devstoreaccount1")?;
/// assert_eq!(azurite.name(), "devstoreaccount1");
/// assert_eq!(azurite.default_dialect(), Dialect::Blob);
///
/// // Names are 3-24 lowercase letters and digits; the error says so.
/// assert!(Account::azure("My_Account").is_err());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    name: String,
    blob: Url,
    dfs: Url,
}

impl Account {
    /// A public-cloud account: `https://{name}.blob.core.windows.net` and `.dfs.`.
    pub fn azure(name: &str) -> Result<Self, Error> {
        Self::with_suffix(name, "https", "core.windows.net")
    }

    /// An account in any cloud: `{protocol}://{name}.blob.{suffix}` and `.dfs.`.
    pub fn with_suffix(name: &str, protocol: &str, suffix: &str) -> Result<Self, Error> {
        validate_account_name(name)?;
        if protocol != "https" && protocol != "http" {
            return Err(Error::config(format!(
                "DefaultEndpointsProtocol must be `https` or `http`, found `{protocol}`"
            )));
        }
        let blob = parse_endpoint(
            &format!("{protocol}://{name}.blob.{suffix}"),
            "blob endpoint",
        )?;
        let dfs = parse_endpoint(&format!("{protocol}://{name}.dfs.{suffix}"), "dfs endpoint")?;
        Ok(Account {
            name: name.to_string(),
            blob,
            dfs,
        })
    }

    /// An account at explicit endpoints (path style or virtual-host style).
    pub fn custom(name: &str, blob_endpoint: &str, dfs_endpoint: &str) -> Result<Self, Error> {
        validate_account_name(name)?;
        Ok(Account {
            name: name.to_string(),
            blob: parse_endpoint(blob_endpoint, "blob endpoint")?,
            dfs: parse_endpoint(dfs_endpoint, "dfs endpoint")?,
        })
    }

    /// A path-style emulator endpoint such as `http://127.0.0.1:10000/devstoreaccount1`:
    /// the account name is the URL's first path segment; Blob and DFS share the URL.
    pub fn emulator(endpoint: &str) -> Result<Self, Error> {
        let url = parse_endpoint(endpoint, "emulator endpoint")?;
        let name = url
            .path_segments()
            .and_then(|mut s| s.next())
            .filter(|s| !s.is_empty())
            .ok_or_else(|| {
                Error::config(format!(
                    "emulator endpoint `{endpoint}` has no account segment; expected e.g. http://127.0.0.1:10000/devstoreaccount1"
                ))
            })?
            .to_string();
        validate_account_name(&name)?;
        Ok(Account {
            name,
            blob: url.clone(),
            dfs: url,
        })
    }

    /// The account name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The Blob endpoint, without trailing slash.
    pub fn blob_endpoint(&self) -> &Url {
        &self.blob
    }

    /// The DFS endpoint, without trailing slash.
    pub fn dfs_endpoint(&self) -> &Url {
        &self.dfs
    }

    /// The endpoint a dialect talks to.
    pub fn endpoint(&self, dialect: Dialect) -> &Url {
        match dialect {
            Dialect::Dfs => &self.dfs,
            Dialect::Blob => &self.blob,
        }
    }

    /// The dialect to use when none is chosen: Blob for loopback and emulator
    /// hosts (Azurite speaks only Blob), DFS otherwise.
    pub fn default_dialect(&self) -> Dialect {
        match self.dfs.host_str() {
            Some("127.0.0.1" | "localhost" | "[::1]") => Dialect::Blob,
            _ => Dialect::Dfs,
        }
    }
}

/// Whether `url` names this machine: `127.0.0.0/8`, `::1` or `localhost`.
/// Plain http is acceptable for secrets sent there (emulators, test servers):
/// the token endpoint's client secret, a storage request's bearer token or SAS.
pub(crate) fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

/// Account names are 3–24 lowercase letters and digits.
fn validate_account_name(name: &str) -> Result<(), Error> {
    let ok = (3..=24).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err(Error::config(format!(
            "account name `{name}` is invalid; expected 3-24 lowercase letters and digits"
        )))
    }
}

fn parse_endpoint(s: &str, what: &str) -> Result<Url, Error> {
    let mut url = Url::parse(s.trim())
        .map_err(|e| Error::config(format!("{what} `{s}` is not a URL: {e}")))?;
    if url.scheme() != "https" && url.scheme() != "http" {
        return Err(Error::config(format!(
            "{what} `{s}` must use http or https, found `{}`",
            url.scheme()
        )));
    }
    if url.host_str().is_none() {
        return Err(Error::config(format!("{what} `{s}` has no host")));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(Error::config(format!(
            "{what} must not carry a query or fragment (pass a SAS token as a credential)"
        )));
    }
    let trimmed = url.path().trim_end_matches('/').to_string();
    url.set_path(&trimmed);
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_cloud_endpoints() {
        let a = Account::azure("myaccount").expect("valid");
        assert_eq!(
            a.blob_endpoint().as_str(),
            "https://myaccount.blob.core.windows.net/"
        );
        assert_eq!(
            a.dfs_endpoint().as_str(),
            "https://myaccount.dfs.core.windows.net/"
        );
        assert_eq!(a.default_dialect(), Dialect::Dfs);
    }

    #[test]
    fn emulator_is_path_style_blob() {
        let a = Account::emulator("http://127.0.0.1:10000/devstoreaccount1/").expect("valid");
        assert_eq!(a.name(), "devstoreaccount1");
        assert_eq!(a.blob_endpoint().path(), "/devstoreaccount1");
        assert_eq!(a.default_dialect(), Dialect::Blob);
    }

    #[test]
    fn loopback_hosts() {
        for u in [
            "http://127.0.0.1:10000/a",
            "http://127.255.0.9/a",
            "http://[::1]:8080/a",
            "http://localhost/a",
            "http://LOCALHOST:1/a",
        ] {
            assert!(is_loopback(&Url::parse(u).expect("url")), "{u}");
        }
        for u in [
            "http://128.0.0.1/a",
            "http://10.0.0.1/a",
            "http://[::2]/a",
            "http://[::ffff:127.0.0.1]/a",
            "http://localhost.example.com/a",
            "http://127.0.0.1.nip.io/a",
            "http://myacct.blob.core.windows.net/",
        ] {
            assert!(!is_loopback(&Url::parse(u).expect("url")), "{u}");
        }
    }

    #[test]
    fn bad_inputs_are_typed() {
        assert!(Account::azure("UPPER").is_err());
        assert!(Account::azure("ab").is_err());
        assert!(Account::emulator("http://127.0.0.1:10000").is_err());
        assert!(Account::custom("abc", "ftp://x", "https://y").is_err());
        assert!(Account::custom("abc", "https://x?sv=1", "https://y").is_err());
        assert!("xml".parse::<Dialect>().is_err());
        assert_eq!("DFS".parse::<Dialect>().expect("dfs"), Dialect::Dfs);
    }
}
