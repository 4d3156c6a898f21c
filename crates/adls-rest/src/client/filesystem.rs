//! [`FileSystem`]: a filesystem (DFS) or container (Blob): create, delete,
//! directories, and listings (one page, a stream, or all collected).

use std::collections::VecDeque;
use std::sync::Arc;

use futures_util::Stream;

use super::file::File;
use super::Client;
use crate::account::Dialect;
use crate::error::Error;
use crate::ops::{blob, dfs, Conditions, ListPage, Metadata, PathItem};

/// A filesystem (DFS) or container (Blob).
///
/// ```no_run
/// # async fn demo(client: adls_rest::Client) -> Result<(), adls_rest::Error> {
/// use adls_rest::ListOptions;
///
/// let fs = client.filesystem("llm-logs")?;
/// fs.create_if_not_exists().await?;
/// let january = ListOptions {
///     directory: Some("year=2024/month=01".into()),
///     recursive: true,
///     ..ListOptions::default()
/// };
/// for item in fs.list_all(january).await? {
///     println!("{} ({} bytes)", item.name, item.content_length);
/// }
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct FileSystem {
    pub(super) client: Client,
    pub(super) name: Arc<str>,
}

/// Options of a listing.
#[derive(Debug, Clone, Default)]
pub struct ListOptions {
    /// Only entries under this directory.
    pub directory: Option<String>,
    /// Descend into subdirectories. On the Blob dialect a recursive listing
    /// holds files only; a non-recursive one also holds the next level's
    /// directories (common prefixes).
    pub recursive: bool,
    /// Page size (service maximum 5000).
    pub page_size: Option<u32>,
}

impl FileSystem {
    pub(super) fn new(client: Client, name: &str) -> Self {
        FileSystem {
            client,
            name: name.into(),
        }
    }

    /// The client this filesystem is reached through.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Creates the filesystem; fails with 409 if it exists.
    pub async fn create(&self) -> Result<(), Error> {
        let ep = self.client.endpoint();
        let req = match self.client.dialect() {
            Dialect::Dfs => dfs::CreateFilesystem {
                filesystem: &self.name,
            }
            .request(ep)?,
            Dialect::Blob => blob::CreateContainer {
                container: &self.name,
            }
            .request(ep)?,
        };
        self.client.send("create_filesystem", req).await.map(drop)
    }

    /// Creates the filesystem unless it exists; true when it was created.
    pub async fn create_if_not_exists(&self) -> Result<bool, Error> {
        match self.create().await {
            Ok(()) => Ok(true),
            Err(e) if e.is_already_exists() => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Deletes the filesystem and everything in it.
    pub async fn delete(&self) -> Result<(), Error> {
        let ep = self.client.endpoint();
        let req = match self.client.dialect() {
            Dialect::Dfs => dfs::DeleteFilesystem {
                filesystem: &self.name,
            }
            .request(ep)?,
            Dialect::Blob => blob::DeleteContainer {
                container: &self.name,
            }
            .request(ep)?,
        };
        self.client.send("delete_filesystem", req).await.map(drop)
    }

    /// A handle on a file in this filesystem (nothing is sent).
    pub fn file(&self, path: &str) -> Result<File, Error> {
        let path = crate::ops::validate_path(path)?;
        Ok(File::new(self.clone(), path))
    }

    /// Creates a directory (DFS only: the Blob API has no directories).
    pub async fn create_directory(&self, path: &str) -> Result<(), Error> {
        if self.client.dialect() != Dialect::Dfs {
            return Err(Error::config(
                "directories exist only on the DFS dialect (hierarchical namespace); on Blob, files create their prefixes",
            ));
        }
        let req = dfs::CreatePath {
            filesystem: &self.name,
            path,
            kind: dfs::ResourceKind::Directory,
            conditions: &Conditions::default(),
            content_type: None,
            content_encoding: None,
            metadata: &Metadata::new(),
        }
        .request(self.client.endpoint())?;
        self.client.send("create_directory", req).await.map(drop)
    }

    /// One page of a listing.
    pub async fn list_page(
        &self,
        options: &ListOptions,
        continuation: Option<&str>,
    ) -> Result<ListPage, Error> {
        let ep = self.client.endpoint();
        match self.client.dialect() {
            Dialect::Dfs => {
                let req = dfs::ListPaths {
                    filesystem: &self.name,
                    directory: options.directory.as_deref(),
                    recursive: options.recursive,
                    max_results: options.page_size,
                    continuation,
                }
                .request(ep)?;
                let resp = self.client.send("list_paths", req).await?;
                dfs::ListPaths::parse(&resp.headers, &resp.body)
            }
            Dialect::Blob => {
                let prefix = options
                    .directory
                    .as_deref()
                    .map(|d| d.trim_matches('/'))
                    .filter(|d| !d.is_empty()) // "" and "/" are the root, not the prefix "/"
                    .map(|d| format!("{d}/"));
                let req = blob::ListBlobs {
                    container: &self.name,
                    prefix: prefix.as_deref(),
                    delimiter: if options.recursive { None } else { Some("/") },
                    max_results: options.page_size,
                    marker: continuation,
                }
                .request(ep)?;
                let resp = self.client.send("list_blobs", req).await?;
                blob::ListBlobs::parse(&resp.body)
            }
        }
    }

    /// Every entry, page after page, as a stream.
    pub fn list(
        &self,
        options: ListOptions,
    ) -> impl Stream<Item = Result<PathItem, Error>> + Send + 'static {
        struct State {
            fs: FileSystem,
            options: ListOptions,
            buffer: VecDeque<PathItem>,
            next: Option<String>,
            done: bool,
        }
        let state = State {
            fs: self.clone(),
            options,
            buffer: VecDeque::new(),
            next: None,
            done: false,
        };
        futures_util::stream::unfold(state, |mut s| async move {
            loop {
                if let Some(item) = s.buffer.pop_front() {
                    return Some((Ok(item), s));
                }
                if s.done {
                    return None;
                }
                match s.fs.list_page(&s.options, s.next.as_deref()).await {
                    Ok(page) => {
                        s.buffer.extend(page.items);
                        s.done = page.continuation.is_none();
                        s.next = page.continuation;
                    }
                    Err(e) => {
                        s.done = true;
                        return Some((Err(e), s));
                    }
                }
            }
        })
    }

    /// Every entry, collected.
    pub async fn list_all(&self, options: ListOptions) -> Result<Vec<PathItem>, Error> {
        let mut out = Vec::new();
        let mut next: Option<String> = None;
        loop {
            let page = self.list_page(&options, next.as_deref()).await?;
            out.extend(page.items);
            match page.continuation {
                Some(c) => next = Some(c),
                None => return Ok(out),
            }
        }
    }
}
