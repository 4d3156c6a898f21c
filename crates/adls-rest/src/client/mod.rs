//! The public face: one [`Client`] per account (cheap to clone, an `Arc`
//! inside), [`FileSystem`] and [`File`] handles, and the create / append /
//! flush protocol on either dialect, with ambiguous retries reconciled.
//!
//! - this file: [`Client`] and its builder, and the one way requests go out;
//! - `filesystem.rs`: [`FileSystem`]: create, delete, directories, listing;
//! - `file.rs`: [`File`]: create, append, flush (with the Blob dialect's
//!   block-list mapping), read, properties, delete, and the reconciliation of
//!   retries whose earlier attempt may have been applied.

mod file;
mod filesystem;

use std::sync::Arc;

use bytes::Bytes;
use http::Request;

use crate::account::{Account, Dialect};
use crate::credential::Credential;
use crate::error::Error;
use crate::retry::RetryPolicy;
use crate::transport::{Outcome, Response, Transport, TransportOptions, TransportStats};

pub use file::{CreateMode, CreateOptions, File, FlushOptions, Flushed};
pub use filesystem::{FileSystem, ListOptions};

/// A storage client for one account. Build it once and clone it everywhere:
/// all clones share one connection pool.
///
/// ```
/// # fn main() -> Result<(), adls_rest::Error> {
/// use adls_rest::{Client, Dialect};
///
/// // Azurite's well-known development account; building sends nothing.
/// let client = Client::from_connection_string("UseDevelopmentStorage=true")?.build()?;
/// assert_eq!(client.account().name(), "devstoreaccount1");
/// assert_eq!(client.dialect(), Dialect::Blob); // loopback endpoints speak Blob
///
/// // Clones share the pool and its counters.
/// let for_a_task = client.clone();
/// assert_eq!(for_a_task.stats().requests_sent, 0);
/// let logs = client.filesystem("llm-logs")?; // a handle: nothing is sent either
/// assert_eq!(logs.name(), "llm-logs");
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    account: Account,
    credential: Credential,
    dialect: Dialect,
    transport: Transport,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("account", &self.inner.account.name())
            .field("dialect", &self.inner.dialect)
            .field("credential", &self.inner.credential)
            .finish()
    }
}

/// Builds a [`Client`].
///
/// ```
/// # fn main() -> Result<(), adls_rest::Error> {
/// use std::time::Duration;
/// use adls_rest::connection_string::DEV_ACCOUNT_KEY;
/// use adls_rest::{Account, Client, Credential, Dialect, RetryPolicy};
///
/// let account = Account::azure("mystorageaccount")?;
/// let credential = Credential::shared_key(DEV_ACCOUNT_KEY)?; // the base64 key from the portal
/// let client = Client::builder(account, credential)
///     .dialect(Dialect::Blob) // a flat-namespace account
///     .max_in_flight(16)
///     .attempt_timeout(Duration::from_secs(30))
///     .retry(RetryPolicy { max_attempts: 4, ..RetryPolicy::default() })
///     .build()?;
/// assert_eq!(client.dialect(), Dialect::Blob);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct ClientBuilder {
    account: Account,
    credential: Credential,
    dialect: Option<Dialect>,
    options: TransportOptions,
}

impl ClientBuilder {
    /// Chooses the dialect (default: from the endpoint, see [`Account::default_dialect`]).
    pub fn dialect(mut self, dialect: Dialect) -> Self {
        self.dialect = Some(dialect);
        self
    }

    /// Replaces all transport options.
    pub fn transport_options(mut self, options: TransportOptions) -> Self {
        self.options = options;
        self
    }

    /// Sets the retry policy.
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.options.retry = policy;
        self
    }

    /// Sets the limit on requests (and connections) in flight.
    pub fn max_in_flight(mut self, n: usize) -> Self {
        self.options.max_in_flight = n;
        self
    }

    /// Trusts an extra root certificate (PEM), e.g. an emulator's CA.
    pub fn extra_root_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.options.extra_root_pem = Some(pem.into());
        self
    }

    /// Sets the per-attempt timeout.
    pub fn attempt_timeout(mut self, t: std::time::Duration) -> Self {
        self.options.attempt_timeout = t;
        self
    }

    /// Builds the client (and its TLS configuration and pool).
    ///
    /// Refuses (a [`Config`](crate::ErrorKind::Config) error) to send a bearer
    /// token or a SAS over plain `http://` to anything but this machine
    /// (`127.0.0.0/8`, `::1`, `localhost`); Shared Key and anonymous requests
    /// may use http anywhere (see `docs/AUTH.md`).
    pub fn build(self) -> Result<Client, Error> {
        let dialect = self
            .dialect
            .unwrap_or_else(|| self.account.default_dialect());
        refuse_secrets_in_the_clear(&self.account, dialect, &self.credential)?;
        Ok(Client {
            inner: Arc::new(Inner {
                transport: Transport::new(self.options)?,
                account: self.account,
                credential: self.credential,
                dialect,
            }),
        })
    }
}

/// A bearer token or a SAS sent over `http://` can be read and reused by
/// anyone on the path, so, like the Azure SDKs (which allow it only for local
/// emulators), the endpoint the dialect talks to must be `https://` or a
/// loopback host (`127.0.0.0/8`, `::1`, `localhost`). Shared Key stays allowed
/// over http (Azurite's default): a request carries only an HMAC of itself,
/// never the key. Anonymous requests carry no secret.
fn refuse_secrets_in_the_clear(
    account: &Account,
    dialect: Dialect,
    credential: &Credential,
) -> Result<(), Error> {
    let what = match credential {
        Credential::Bearer(_) => "a bearer token",
        Credential::Sas(_) => "a SAS token",
        Credential::SharedKey(_) | Credential::Anonymous => return Ok(()),
    };
    let endpoint = account.endpoint(dialect);
    if endpoint.scheme() == "https" || crate::account::is_loopback(endpoint) {
        return Ok(());
    }
    Err(Error::config(format!(
        "refusing to send {what} over plain http to `{}` (the {} endpoint `{endpoint}`): \
         expected an https:// endpoint, or http:// only to this machine \
         (127.0.0.0/8, ::1, localhost) for an emulator",
        endpoint.host_str().unwrap_or_default(),
        match dialect {
            Dialect::Dfs => "DFS",
            Dialect::Blob => "Blob",
        },
    )))
}

impl Client {
    /// A builder for `account` with `credential`.
    pub fn builder(account: Account, credential: Credential) -> ClientBuilder {
        ClientBuilder {
            account,
            credential,
            dialect: None,
            options: TransportOptions::default(),
        }
    }

    /// A builder from an Azure Storage connection string.
    pub fn from_connection_string(s: &str) -> Result<ClientBuilder, Error> {
        let info = crate::connection_string::parse(s)?;
        Ok(Client::builder(info.account, info.credential).dialect(info.dialect))
    }

    /// The account.
    pub fn account(&self) -> &Account {
        &self.inner.account
    }

    /// The dialect in use.
    pub fn dialect(&self) -> Dialect {
        self.inner.dialect
    }

    /// Connection and request counters.
    pub fn stats(&self) -> TransportStats {
        self.inner.transport.stats()
    }

    /// A handle on a filesystem (container on the Blob dialect).
    pub fn filesystem(&self, name: &str) -> Result<FileSystem, Error> {
        crate::ops::validate_filesystem(name)?;
        Ok(FileSystem::new(self.clone(), name))
    }

    pub(crate) fn endpoint(&self) -> &url::Url {
        self.inner.account.endpoint(self.inner.dialect)
    }

    pub(crate) async fn execute(&self, op: &'static str, req: Request<Bytes>) -> Outcome {
        self.inner
            .transport
            .execute(op, self.inner.account.name(), &self.inner.credential, &req)
            .await
    }

    pub(crate) async fn send(
        &self,
        op: &'static str,
        req: Request<Bytes>,
    ) -> Result<Response, Error> {
        self.execute(op, req).await.result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::credential::StaticTokenCredential;
    use crate::error::ErrorKind;

    const SIG: &str = "SECRETSIGNATUREVALUE";

    fn bearer() -> Credential {
        Credential::bearer(Arc::new(StaticTokenCredential::new(
            "SECRETTOKENVALUE",
            time::OffsetDateTime::now_utc() + time::Duration::hours(1),
        )))
    }

    fn sas() -> Credential {
        Credential::sas(&format!("sv=2025-11-05&sp=rwl&sig={SIG}")).expect("sas")
    }

    fn shared_key() -> Credential {
        Credential::shared_key(crate::connection_string::DEV_ACCOUNT_KEY).expect("key")
    }

    fn build(
        blob: &str,
        dfs: &str,
        credential: Credential,
        dialect: Dialect,
    ) -> Result<Client, Error> {
        let account = Account::custom("acct", blob, dfs).expect("account");
        Client::builder(account, credential)
            .dialect(dialect)
            .build()
    }

    fn assert_refused(r: Result<Client, Error>, what: &str, host: &str) {
        let e = r.expect_err("refused");
        assert_eq!(e.kind(), ErrorKind::Config, "{e}");
        let shown = format!("{e} {e:?}");
        assert!(
            shown.contains(what) && shown.contains(host) && shown.contains("http"),
            "{shown}"
        );
        assert!(
            !shown.contains(SIG) && !shown.contains("SECRETTOKEN"),
            "{shown}"
        );
    }

    #[test]
    fn bearer_and_sas_refuse_plain_http_to_another_host_on_either_dialect() {
        let http_blob = (
            "http://acct.blob.example.com",
            "https://acct.dfs.example.com",
        );
        let http_dfs = (
            "https://acct.blob.example.com",
            "http://acct.dfs.example.com",
        );
        for (cred, what) in [
            (bearer as fn() -> Credential, "bearer token"),
            (sas, "SAS token"),
        ] {
            // the endpoint the dialect talks to decides
            assert_refused(
                build(http_blob.0, http_blob.1, cred(), Dialect::Blob),
                what,
                "acct.blob.example.com",
            );
            assert!(
                build(http_blob.0, http_blob.1, cred(), Dialect::Dfs).is_ok(),
                "{what}"
            );
            assert_refused(
                build(http_dfs.0, http_dfs.1, cred(), Dialect::Dfs),
                what,
                "acct.dfs.example.com",
            );
            assert!(
                build(http_dfs.0, http_dfs.1, cred(), Dialect::Blob).is_ok(),
                "{what}"
            );
            // not loopback, however close
            for host in [
                "10.0.0.7",
                "128.0.0.1",
                "[::ffff:127.0.0.1]",
                "localhost.example.com",
                "[fe80::1]",
            ] {
                let ep = format!("http://{host}:10000/acct");
                for dialect in [Dialect::Blob, Dialect::Dfs] {
                    assert_refused(
                        build(&ep, &ep, cred(), dialect),
                        what,
                        url::Url::parse(&ep).expect("url").host_str().expect("host"),
                    );
                }
            }
            // a public-cloud account spelled with http, default dialect (DFS)
            let account =
                Account::with_suffix("acct", "http", "core.windows.net").expect("account");
            assert_refused(
                Client::builder(account, cred()).build(),
                what,
                "acct.dfs.core.windows.net",
            );
        }
    }

    #[test]
    fn bearer_and_sas_over_http_to_loopback_and_over_https_are_allowed() {
        for cred in [bearer as fn() -> Credential, sas] {
            for ep in [
                "http://127.0.0.1:10000/devstoreaccount1",
                "http://127.10.20.30:10000/devstoreaccount1",
                "http://[::1]:10000/devstoreaccount1",
                "http://localhost:10000/devstoreaccount1",
                "http://LocalHost/devstoreaccount1",
                "https://10.0.0.7/devstoreaccount1",
            ] {
                let account = Account::emulator(ep).expect("account");
                for dialect in [Dialect::Blob, Dialect::Dfs] {
                    Client::builder(account.clone(), cred())
                        .dialect(dialect)
                        .build()
                        .unwrap_or_else(|e| panic!("{ep}: {e}"));
                }
            }
            assert!(Client::builder(Account::azure("acct").expect("a"), cred())
                .build()
                .is_ok());
        }
    }

    #[test]
    fn shared_key_and_anonymous_may_use_http_anywhere() {
        for cred in [shared_key as fn() -> Credential, || Credential::Anonymous] {
            for dialect in [Dialect::Blob, Dialect::Dfs] {
                build(
                    "http://acct.blob.example.com",
                    "http://acct.dfs.example.com",
                    cred(),
                    dialect,
                )
                .expect("allowed");
            }
        }
    }

    #[test]
    fn connection_strings_get_the_same_check() {
        let refused = [
            format!("DefaultEndpointsProtocol=http;AccountName=acct;SharedAccessSignature=sv=1&sig={SIG}"),
            format!("BlobEndpoint=http://10.1.2.3:10000/acct;SharedAccessSignature=sv=1&sig={SIG}"),
            format!("AccountName=acct;BlobEndpoint=https://acct.blob.example.com;DfsEndpoint=http://acct.dfs.example.com;SharedAccessSignature=sv=1&sig={SIG}"),
        ];
        for cs in &refused {
            let r = Client::from_connection_string(cs).expect("parses").build();
            assert_refused(r, "SAS token", "");
        }
        for cs in [
            format!("BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;SharedAccessSignature=sv=1&sig={SIG}"),
            format!("AccountName=acct;BlobEndpoint=https://acct.blob.example.com;DfsEndpoint=http://acct.dfs.example.com;SharedAccessSignature=sv=1&sig={SIG}"),
            "UseDevelopmentStorage=true;DevelopmentStorageProxyUri=http://10.1.2.3".to_string(),
            format!("DefaultEndpointsProtocol=http;AccountName=acct;AccountKey={}", crate::connection_string::DEV_ACCOUNT_KEY),
        ] {
            let b = Client::from_connection_string(&cs).expect("parses");
            // the second one: the DFS endpoint is http, but a Blob client never uses it
            let b = if cs.contains("DfsEndpoint=http:") { b.dialect(Dialect::Blob) } else { b };
            b.build().unwrap_or_else(|e| panic!("{cs}: {e}"));
        }
    }

    /// Every operation's future holds only a box of the attempt loop: the
    /// loop with its sends and hyper's connection is a few KiB, and a caller
    /// awaiting an operation would otherwise copy all of it each time one is
    /// created (measured: an 8.8 KiB copy per append before). A layer that
    /// puts the loop (or hyper's connection) back inline makes these grow
    /// past the bound.
    #[test]
    fn operation_futures_stay_small() {
        let client = build(
            "http://127.0.0.1:9/acct",
            "http://127.0.0.1:9/acct",
            shared_key(),
            Dialect::Blob,
        )
        .expect("client");
        let fs = client.filesystem("logs").expect("fs");
        let file = fs.file("a/b.ndjson").expect("file");
        let flush = crate::FlushOptions::default();
        let sizes = [
            (
                "append",
                std::mem::size_of_val(&file.append(
                    0,
                    Bytes::from_static(b"x"),
                    crate::Checksums::default(),
                )),
            ),
            ("flush", std::mem::size_of_val(&file.flush(1, &flush))),
            (
                "create",
                std::mem::size_of_val(&file.create(&Default::default())),
            ),
            ("properties", std::mem::size_of_val(&file.properties())),
            ("read", std::mem::size_of_val(&file.read())),
        ];
        for (op, size) in sizes {
            // 1.0-2.4 KiB now; 8.8 and 17 KiB for append and flush before
            assert!(size <= 4096, "{op}: {size} bytes");
        }
    }

    /// A token that works once, lives `lifetime`, then cannot be renewed.
    struct OnceThenDown {
        calls: std::sync::atomic::AtomicU32,
        lifetime: time::Duration,
    }

    impl crate::credential::TokenCredential for OnceThenDown {
        fn get_token<'a>(
            &'a self,
            _scope: &'a str,
        ) -> crate::credential::BoxFuture<'a, Result<crate::credential::AccessToken, Error>>
        {
            Box::pin(async move {
                if self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) > 0 {
                    return Err(Error::new(ErrorKind::Credential, "token endpoint down"));
                }
                Ok(crate::credential::AccessToken {
                    token: crate::secret::Secret::new("SECRETTOKENVALUE".to_string()),
                    expires_on: time::OffsetDateTime::now_utc() + self.lifetime,
                })
            })
        }
    }

    /// The first attempt times out after the request left (it may have been
    /// applied); the retry cannot even be prepared, because the token
    /// expired meanwhile and cannot be renewed. The error that ends the
    /// operation still says it may have been applied (it said "no" before,
    /// so a caller could have taken an append or a delete as not done).
    #[tokio::test]
    async fn a_failure_after_an_ambiguous_attempt_may_have_been_applied() {
        // a loopback server that takes connections and never answers
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let silent = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((sock, _)) = listener.accept().await {
                held.push(sock);
            }
        });
        let endpoint = format!("http://{addr}/acct");
        let account = Account::custom("acct", &endpoint, &endpoint).expect("account");
        let credential = Credential::bearer(Arc::new(OnceThenDown {
            calls: Default::default(),
            lifetime: time::Duration::milliseconds(300),
        }));
        let client = Client::builder(account, credential)
            .dialect(Dialect::Blob)
            .transport_options(TransportOptions {
                attempt_timeout: std::time::Duration::from_millis(600),
                ..Default::default()
            })
            .retry(RetryPolicy {
                max_attempts: 3,
                initial_backoff: std::time::Duration::from_millis(1),
                max_backoff: std::time::Duration::from_millis(1),
                ..Default::default()
            })
            .build()
            .expect("client");
        let file = client
            .filesystem("logs")
            .expect("fs")
            .file("a.ndjson")
            .expect("file");
        let e = file.delete().await.expect_err("no answer, then no token");
        assert_eq!(e.kind(), ErrorKind::Credential, "{e}");
        assert!(e.may_have_been_applied(), "{e:?}");
        silent.abort();
    }

    /// Positions and ranges whose end does not fit a `u64` are refused with
    /// a typed error before anything is sent (they overflowed: a panic in a
    /// debug build, a wrapped range in a release one). Nothing listens on
    /// port 9: a request that went out would fail to connect instead.
    #[tokio::test]
    async fn ends_past_u64_are_config_errors_before_sending() {
        for dialect in [Dialect::Dfs, Dialect::Blob] {
            let account =
                Account::custom("acct", "http://127.0.0.1:9/acct", "http://127.0.0.1:9/acct")
                    .expect("account");
            let client = Client::builder(account, shared_key())
                .dialect(dialect)
                .retry(crate::RetryPolicy {
                    max_attempts: 1,
                    ..Default::default()
                })
                .build()
                .expect("client");
            let file = client
                .filesystem("logs")
                .expect("fs")
                .file("a.ndjson")
                .expect("file");
            let e = file
                .append(u64::MAX, Bytes::from_static(b"x"), Default::default())
                .await
                .expect_err("overflows");
            assert_eq!(e.kind(), ErrorKind::Config, "{dialect:?}: {e}");
            let e = file
                .read_range(crate::ByteRange {
                    start: 5,
                    len: Some(u64::MAX),
                })
                .await
                .expect_err("overflows");
            assert_eq!(e.kind(), ErrorKind::Config, "{dialect:?}: {e}");
            // the largest that fits is sent (and fails to connect)
            let e = file
                .read_range(crate::ByteRange {
                    start: 0,
                    len: Some(u64::MAX),
                })
                .await
                .expect_err("nothing listens");
            assert_ne!(e.kind(), ErrorKind::Config, "{dialect:?}: {e}");
        }
    }
}
