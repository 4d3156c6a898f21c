//! An SDK-free client for Azure Data Lake Storage Gen2 and Blob storage.
//!
//! - Shared Key, SAS and bearer-token authorization, with Shared Key signing
//!   checked against Microsoft's own SDK ([`sign`]).
//! - Filesystem, directory and file operations, each a request type you can
//!   inspect ([`ops`]), on two dialects behind one API: DFS for hierarchical
//!   namespace accounts, block blobs for Azurite and flat namespaces.
//! - One pooled hyper + rustls [`Client`], retries with backoff and jitter,
//!   bodies that are `Bytes` so every retry resends the same bytes.
//!
//! ```no_run
//! # async fn demo() -> Result<(), adls_rest::Error> {
//! use adls_rest::{Client, CreateOptions, FlushOptions, Checksums};
//! use bytes::Bytes;
//!
//! let client = Client::from_connection_string("UseDevelopmentStorage=true")?.build()?;
//! let fs = client.filesystem("logs")?;
//! fs.create_if_not_exists().await?;
//! let file = fs.file("2024/01/01/batch-0001.ndjson")?;
//! file.create(&CreateOptions::default()).await?;
//! let line = Bytes::from_static(b"{\"id\":1}\n");
//! file.append(0, line.clone(), Checksums::default()).await?;
//! file.flush(line.len() as u64, &FlushOptions { close: true, ..Default::default() }).await?;
//! assert_eq!(file.read().await?, line);
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]

pub mod account;
pub mod client;
pub mod connection_string;
pub mod credential;
pub mod error;
pub mod identity;
pub mod ops;
pub mod retry;
pub mod secret;
pub mod sign;
pub mod transport;

pub use account::{Account, Dialect};
pub use client::{
    Client, ClientBuilder, CreateMode, CreateOptions, File, FileSystem, FlushOptions, Flushed,
    ListOptions,
};
pub use credential::{AccessToken, Credential, StaticTokenCredential, TokenCredential};
pub use error::{Error, ErrorKind};
pub use identity::{
    AzureCliCredential, ClientSecretCredential, DefaultAzureCredential, ManagedIdentityCredential,
    WorkloadIdentityCredential,
};
pub use ops::{content_md5, ByteRange, Checksums, Metadata, PathItem, PathProperties, WriterId};
pub use retry::RetryPolicy;
pub use transport::{TransportOptions, TransportStats, API_VERSION};

/// The README's examples, compiled as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

#[cfg(test)]
mod readme {
    /// The README shows `examples/quickstart.rs` as it is, below its header.
    #[test]
    fn readme_shows_the_quickstart_example() {
        let example = include_str!("../examples/quickstart.rs");
        let code = example.split_once("\n\n").map_or(example, |(_, code)| code);
        assert!(
            include_str!("../README.md").contains(code),
            "README.md must show examples/quickstart.rs (below its header) as it is"
        );
    }
}
