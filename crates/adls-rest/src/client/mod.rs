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
    pub fn build(self) -> Result<Client, Error> {
        let dialect = self
            .dialect
            .unwrap_or_else(|| self.account.default_dialect());
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
