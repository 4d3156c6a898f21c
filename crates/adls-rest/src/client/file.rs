//! [`File`]: create, append, flush, read, properties, delete on either
//! dialect. On Blob, flush maps onto Put Block List of the committed blocks
//! then the staged blocks in position order. Retries whose earlier attempt
//! may have been applied are reconciled with a properties call.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, StatusCode};
use time::OffsetDateTime;

use super::filesystem::FileSystem;
use super::Client;
use crate::account::Dialect;
use crate::error::{Error, ErrorKind};
use crate::ops::{
    blob, dfs, header_str, parse_http_date, ByteRange, Checksums, Conditions, Metadata,
    PathProperties, WriterId,
};

/// How [`File::create`] treats an existing file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum CreateMode {
    /// Replace an existing file with an empty one.
    #[default]
    Overwrite,
    /// Fail with 409 (`PathAlreadyExists` / `BlobAlreadyExists`) if it exists.
    CreateNew,
}

/// Options of [`File::create`].
#[derive(Debug, Clone, Default)]
pub struct CreateOptions {
    /// Overwrite or create-new.
    pub mode: CreateMode,
    /// `Content-Type` of the file.
    pub content_type: Option<String>,
    /// `Content-Encoding` of the file (e.g. `gzip`), set when the content
    /// is committed.
    pub content_encoding: Option<String>,
    /// User-defined metadata.
    pub metadata: Metadata,
    /// Base64 MD5 of the whole content, stored with the file when
    /// [`File::upload`] commits it (returned as `Content-MD5` afterwards, and
    /// required to match when a retry is reconciled). Ignored by
    /// [`File::create`], which makes an empty file.
    pub content_md5: Option<String>,
    /// Transactional checksums on each piece [`File::upload`] sends (the
    /// service refuses a piece damaged on the way). Ignored by [`File::create`].
    pub checksums: Checksums,
}

/// Options of [`File::flush`].
#[derive(Debug, Clone, Default)]
pub struct FlushOptions {
    /// Close the file (DFS: raises the `FileClosed` event).
    pub close: bool,
    /// Sets `Content-Type`; when `None` the current one is kept.
    pub content_type: Option<String>,
    /// Sets `Content-Encoding`; when `None` the current one is kept.
    pub content_encoding: Option<String>,
    /// Base64 MD5 of the whole file after this flush (DFS `x-ms-content-md5`,
    /// Blob `x-ms-blob-content-md5`): stored with the file, returned as
    /// `Content-MD5` by [`File::properties`], and required to match when a
    /// retry after an ambiguous attempt is reconciled. The service does not
    /// check it; compare it yourself after the flush to prove what was committed.
    pub content_md5: Option<String>,
}

/// What a successful flush committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flushed {
    /// The file's length now.
    pub content_length: u64,
    /// The new etag.
    pub etag: String,
    /// True when an ambiguous earlier attempt had already committed it and
    /// the retry was reconciled by a properties call.
    pub reconciled: bool,
}

/// A file (DFS path or block blob).
///
/// Create, append and flush give full control (see the crate's example);
/// [`File::upload`] writes a whole file in one call:
///
/// ```no_run
/// # async fn demo(fs: adls_rest::FileSystem) -> Result<(), adls_rest::Error> {
/// use adls_rest::{content_md5, ByteRange, CreateMode, CreateOptions};
/// use bytes::Bytes;
///
/// let file = fs.file("year=2024/month=01/batch-0001.ndjson")?;
/// let data = Bytes::from_static(b"{\"id\":1}\n{\"id\":2}\n");
/// let options = CreateOptions {
///     mode: CreateMode::CreateNew, // never overwrite another writer's file
///     content_md5: Some(content_md5(&data)),
///     ..CreateOptions::default()
/// };
/// file.upload(data.clone(), 4 << 20, &options).await?;
///
/// // What the service committed, checked rather than assumed.
/// let props = file.properties().await?;
/// assert_eq!(props.content_length, data.len() as u64);
/// assert_eq!(props.content_md5, options.content_md5);
/// let first_line = file.read_range(ByteRange { start: 0, len: Some(9) }).await?;
/// assert_eq!(&first_line[..], b"{\"id\":1}\n");
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct File {
    fs: FileSystem,
    path: Arc<str>,
    writer: WriterId,
}

impl File {
    pub(super) fn new(fs: FileSystem, path: &str) -> Self {
        File {
            fs,
            path: path.into(),
            writer: WriterId::process(),
        }
    }

    /// The same file, written as `writer`: on the Blob dialect, appends stage
    /// blocks whose ids carry the writer, and a flush commits only that
    /// writer's staged blocks, so two writers of one path never commit each
    /// other's data. Default: one random id per process ([`WriterId::process`]).
    pub fn with_writer(mut self, writer: WriterId) -> Self {
        self.writer = writer;
        self
    }

    /// The writer whose blocks this handle stages and commits.
    pub fn writer(&self) -> WriterId {
        self.writer
    }

    /// The path inside the filesystem.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The filesystem holding this file.
    pub fn filesystem(&self) -> &FileSystem {
        &self.fs
    }

    fn client(&self) -> &Client {
        &self.fs.client
    }

    /// Creates an empty file. With [`CreateMode::CreateNew`], a 409 that
    /// follows an ambiguous attempt of ours is checked with a properties call:
    /// an empty file modified since our first attempt is ours, and succeeds.
    pub async fn create(&self, options: &CreateOptions) -> Result<(), Error> {
        let conditions = match options.mode {
            CreateMode::Overwrite => Conditions::default(),
            CreateMode::CreateNew => Conditions::create_new(),
        };
        let ep = self.client().endpoint();
        let req = match self.client().dialect() {
            Dialect::Dfs => dfs::CreatePath {
                filesystem: &self.fs.name,
                path: &self.path,
                kind: dfs::ResourceKind::File,
                conditions: &conditions,
                content_type: options.content_type.as_deref(),
                content_encoding: options.content_encoding.as_deref(),
                metadata: &options.metadata,
            }
            .request(ep)?,
            Dialect::Blob => blob::PutBlob {
                container: &self.fs.name,
                blob: &self.path,
                conditions: &conditions,
                content_type: options.content_type.as_deref(),
                content_encoding: options.content_encoding.as_deref(),
                metadata: &options.metadata,
                body: Bytes::new(),
            }
            .request(ep)?,
        };
        let out = self.client().execute("create_file", req).await;
        match out.result {
            Ok(_) => Ok(()),
            Err(e) if e.is_already_exists() && out.earlier_ambiguous => {
                let (props, server_now) = self.properties_with_date().await?;
                let elapsed =
                    time::Duration::try_from(out.started.elapsed()).unwrap_or(time::Duration::ZERO);
                // Last-Modified and Date have one-second resolution: allow 2 s.
                let ours = props.content_length == 0
                    && has_metadata(&props, &options.metadata)
                    && match (props.last_modified, server_now) {
                        (Some(lm), Some(now)) => lm >= now - elapsed - time::Duration::seconds(2),
                        _ => false,
                    };
                if ours {
                    tracing::info!(path = %self.path, "create-new retry found the file our earlier attempt created");
                    Ok(())
                } else {
                    Err(e)
                }
            }
            Err(e) => Err(e),
        }
    }

    /// Stages `data` at `position`. Nothing is visible until [`File::flush`].
    /// Retrying the same append (same position, same bytes) is harmless: the
    /// Blob dialect rewrites the block of that position, DFS replaces the data
    /// staged there. Should a retry after an ambiguous attempt be refused
    /// (400, 409 or 412, e.g. because the data is already there), a
    /// properties call decides: the append succeeded if the file already holds
    /// `[0, position + len)`; otherwise the refusal is returned.
    pub async fn append(
        &self,
        position: u64,
        data: Bytes,
        checksums: Checksums,
    ) -> Result<(), Error> {
        self.append_inner(position, data, checksums, None).await
    }

    /// [`File::append`] with the body's `Content-MD5` computed by the caller
    /// (base64, e.g. by [`crate::content_md5`]), who often has it already: a
    /// whole file written in one piece has the same MD5 as its content, which
    /// a flush sets too. The service still checks it against the bytes.
    pub async fn append_with_md5(
        &self,
        position: u64,
        data: Bytes,
        content_md5: &str,
    ) -> Result<(), Error> {
        self.append_inner(position, data, Checksums::default(), Some(content_md5))
            .await
    }

    async fn append_inner(
        &self,
        position: u64,
        data: Bytes,
        checksums: Checksums,
        content_md5: Option<&str>,
    ) -> Result<(), Error> {
        let Some(end) = position.checked_add(data.len() as u64) else {
            return Err(Error::config(format!(
                "an append of {} bytes at position {position} ends past 2^64",
                data.len()
            )));
        };
        let ep = self.client().endpoint();
        let mut req = match self.client().dialect() {
            Dialect::Dfs => dfs::AppendData {
                filesystem: &self.fs.name,
                path: &self.path,
                position,
                body: data,
                checksums,
            }
            .request(ep)?,
            Dialect::Blob => blob::PutBlock {
                container: &self.fs.name,
                blob: &self.path,
                writer: self.writer,
                position,
                body: data,
                checksums,
            }
            .request(ep)?,
        };
        if let Some(md5) = content_md5 {
            req.headers_mut().insert(
                crate::ops::names::CONTENT_MD5,
                crate::ops::header_value(md5, "Content-MD5")?,
            );
        }
        let out = self.client().execute("append", req).await;
        match out.result {
            Ok(_) => Ok(()),
            Err(e) if out.earlier_ambiguous && is_position_refusal(&e) => {
                let props = self.properties().await?;
                if props.content_length >= end {
                    tracing::info!(path = %self.path, position, "append retry refused, but the data is already in the file");
                    Ok(())
                } else {
                    Err(e)
                }
            }
            Err(e) => Err(e),
        }
    }

    /// Commits the staged data: afterwards the file is exactly `[0, position)`.
    /// Staged data that is not contiguous up to `position` gives the typed
    /// `InvalidFlushPosition` error on both dialects. A retry that fails after
    /// an ambiguous attempt is reconciled with a properties call.
    pub async fn flush(&self, position: u64, options: &FlushOptions) -> Result<Flushed, Error> {
        let out = match self.client().dialect() {
            Dialect::Dfs => {
                let req = dfs::FlushData {
                    filesystem: &self.fs.name,
                    path: &self.path,
                    position,
                    close: options.close,
                    content_type: options.content_type.as_deref(),
                    content_encoding: options.content_encoding.as_deref(),
                    content_md5: options.content_md5.as_deref(),
                    conditions: &Conditions::default(),
                }
                .request(self.client().endpoint())?;
                self.client().execute("flush", req).await
            }
            Dialect::Blob => match self.blob_flush_request(position, options).await? {
                BlobFlush::Request(req) => self.client().execute("flush", req).await,
                BlobFlush::AlreadyThere(props) => {
                    return Ok(Flushed {
                        content_length: props.content_length,
                        etag: props.etag,
                        reconciled: false,
                    })
                }
            },
        };
        match out.result {
            Ok(resp) => Ok(Flushed {
                content_length: position,
                etag: header_str(&resp.headers, "etag")
                    .unwrap_or_default()
                    .to_string(),
                reconciled: false,
            }),
            Err(e) if out.earlier_ambiguous && is_flush_conflict(&e) => {
                let props = self.properties().await?;
                if holds(
                    &props,
                    position,
                    options.content_md5.as_deref(),
                    &Metadata::new(),
                ) {
                    tracing::info!(path = %self.path, position, "flush retry found the data our earlier attempt committed");
                    Ok(Flushed {
                        content_length: position,
                        etag: props.etag,
                        reconciled: true,
                    })
                } else {
                    Err(e)
                }
            }
            Err(e) => Err(e),
        }
    }

    /// Works out the Put Block List for a flush to `position`: the committed
    /// blocks, then staged blocks chained contiguously from the committed
    /// length up to `position`.
    async fn blob_flush_request(
        &self,
        position: u64,
        options: &FlushOptions,
    ) -> Result<BlobFlush, Error> {
        let ep = self.client().endpoint();
        let read = || async {
            let list_req = blob::GetBlockList {
                container: &self.fs.name,
                blob: &self.path,
            }
            .request(ep)?;
            let (list, props) = tokio::join!(
                self.client().send("get_block_list", list_req),
                self.properties()
            );
            let list = blob::GetBlockList::parse(&list?.body)?;
            let committed_len = list
                .committed
                .iter()
                .try_fold(0u64, |sum, b| sum.checked_add(b.size))
                .ok_or_else(|| Error::protocol("the committed block sizes overflow 64 bits"))?;
            Ok::<_, Error>((list, props?, committed_len))
        };
        let (mut list, mut props, mut committed_len) = read().await?;
        if committed_len != props.content_length {
            // the two reads may straddle a commit (a late one of our own):
            // read again before concluding anything
            (list, props, committed_len) = read().await?;
        }
        if committed_len != props.content_length {
            // e.g. a blob uploaded whole by another tool: it has no blocks to keep
            return Err(Error::new(
                ErrorKind::Conflict,
                format!(
                    "blob `{}` holds {} bytes but its committed blocks only {committed_len}; it was not written in blocks and cannot be appended to",
                    self.path, props.content_length
                ),
            ));
        }
        if position < committed_len {
            return Err(Error::invalid_flush_position(format!(
                "flush position {position} is below the committed length {committed_len}"
            )));
        }
        if position == committed_len {
            // Nothing new to commit: a repeated flush is harmless.
            return Ok(BlobFlush::AlreadyThere(props));
        }
        // only this writer's blocks: another writer's staged data is not ours to commit
        let staged: BTreeMap<u64, &blob::Block> = list
            .uncommitted
            .iter()
            .filter_map(|b| match blob::parse_block_id(&b.id) {
                Some((w, p)) if w == self.writer => Some((p, b)),
                _ => None,
            })
            .collect();
        let mut chain = Vec::new();
        let mut at = committed_len;
        while at < position {
            match staged.get(&at) {
                Some(b) if b.size > 0 => {
                    chain.push(b.id.clone());
                    at = at.checked_add(b.size).ok_or_else(|| {
                        Error::protocol("the staged block sizes overflow 64 bits")
                    })?;
                }
                _ => {
                    return Err(Error::invalid_flush_position(format!(
                        "flush to {position}: no data was appended at position {at} (committed length {committed_len})"
                    )))
                }
            }
        }
        if at != position {
            return Err(Error::invalid_flush_position(format!(
                "flush to {position}: the appended data ends at {at}, not at the flush position"
            )));
        }
        let committed: Vec<String> = list.committed.into_iter().map(|b| b.id).collect();
        let content_type = options.content_type.clone().or(props.content_type);
        let content_encoding = options.content_encoding.clone().or(props.content_encoding);
        let req = blob::PutBlockList {
            container: &self.fs.name,
            blob: &self.path,
            committed: &committed,
            uncommitted: &chain,
            content_type: content_type.as_deref(),
            content_encoding: content_encoding.as_deref(),
            metadata: &props.metadata,
            content_md5: options.content_md5.as_deref(),
            // only over the content this list was read from: a commit made
            // meanwhile (another writer's) is not dropped from the list
            conditions: &Conditions {
                if_match: Some(props.etag.clone()).filter(|e| !e.is_empty()),
                if_none_match: None,
            },
        }
        .request(ep)?;
        Ok(BlobFlush::Request(req))
    }

    /// The whole file.
    pub async fn read(&self) -> Result<Bytes, Error> {
        self.read_inner(None).await
    }

    /// A byte range of the file.
    pub async fn read_range(&self, range: ByteRange) -> Result<Bytes, Error> {
        self.read_inner(Some(range)).await
    }

    async fn read_inner(&self, range: Option<ByteRange>) -> Result<Bytes, Error> {
        let ep = self.client().endpoint();
        let req = match self.client().dialect() {
            Dialect::Dfs => dfs::ReadPath {
                filesystem: &self.fs.name,
                path: &self.path,
                range,
            }
            .request(ep)?,
            Dialect::Blob => blob::GetBlob {
                container: &self.fs.name,
                blob: &self.path,
                range,
            }
            .request(ep)?,
        };
        Ok(self.client().send("read", req).await?.body)
    }

    /// Length, etag, last-modified, content type and metadata.
    pub async fn properties(&self) -> Result<PathProperties, Error> {
        Ok(self.properties_with_date().await?.0)
    }

    async fn properties_with_date(
        &self,
    ) -> Result<(PathProperties, Option<OffsetDateTime>), Error> {
        let ep = self.client().endpoint();
        let (req, dialect) = match self.client().dialect() {
            Dialect::Dfs => (
                dfs::GetPathProperties {
                    filesystem: &self.fs.name,
                    path: &self.path,
                }
                .request(ep)?,
                Dialect::Dfs,
            ),
            Dialect::Blob => (
                blob::GetBlobProperties {
                    container: &self.fs.name,
                    blob: &self.path,
                }
                .request(ep)?,
                Dialect::Blob,
            ),
        };
        let resp = self.client().send("get_properties", req).await?;
        let props = match dialect {
            Dialect::Dfs => dfs::GetPathProperties::parse(&resp.headers)?,
            Dialect::Blob => blob::GetBlobProperties::parse(&resp.headers)?,
        };
        let date = header_str(&resp.headers, "date").and_then(parse_http_date);
        Ok((props, date))
    }

    /// Deletes the file.
    pub async fn delete(&self) -> Result<(), Error> {
        let ep = self.client().endpoint();
        let req = match self.client().dialect() {
            Dialect::Dfs => dfs::DeletePath {
                filesystem: &self.fs.name,
                path: &self.path,
                recursive: false,
            }
            .request(ep)?,
            Dialect::Blob => blob::DeleteBlob {
                container: &self.fs.name,
                blob: &self.path,
            }
            .request(ep)?,
        };
        self.client().send("delete", req).await.map(drop)
    }

    /// Writes `data` as the whole file, in pieces of at most `chunk` bytes.
    ///
    /// On the Blob dialect that is Put Block per piece, then one Put Block
    /// List that creates the blob (create-new: `If-None-Match: *`) with its
    /// content type and metadata: no empty create and no block-list lookup,
    /// and the blob stays made of blocks, so later appends work. On DFS it is
    /// create, appends, and a flush with close.
    ///
    /// A create-new whose commit is retried after an ambiguous attempt and
    /// meets 409 succeeds when the file holds exactly `data.len()` bytes.
    pub async fn upload(
        &self,
        data: Bytes,
        chunk: usize,
        options: &CreateOptions,
    ) -> Result<Flushed, Error> {
        if chunk == 0 {
            return Err(Error::config("upload chunk size must be at least 1 byte"));
        }
        if self.client().dialect() == Dialect::Blob {
            return self.upload_blocks(data, chunk, options).await;
        }
        self.create(options).await?;
        let mut pos = 0usize;
        while pos < data.len() {
            let end = (pos + chunk).min(data.len());
            self.append(pos as u64, data.slice(pos..end), options.checksums)
                .await?;
            pos = end;
        }
        self.flush(
            data.len() as u64,
            &FlushOptions {
                close: true,
                content_type: options.content_type.clone(),
                content_encoding: options.content_encoding.clone(),
                content_md5: options.content_md5.clone(),
            },
        )
        .await
    }

    async fn upload_blocks(
        &self,
        data: Bytes,
        chunk: usize,
        options: &CreateOptions,
    ) -> Result<Flushed, Error> {
        let mut pos = 0usize;
        while pos < data.len() {
            let end = (pos + chunk).min(data.len());
            self.append(pos as u64, data.slice(pos..end), options.checksums)
                .await?;
            pos = end;
        }
        self.commit_blocks(data.len() as u64, chunk, options).await
    }

    /// The commit half of [`File::upload`] on the Blob dialect, for callers
    /// that stage the pieces themselves (with [`File::append`] at positions
    /// `0, chunk, 2 * chunk, ...`) and need to know when the commit starts:
    /// one Put Block List of this writer's blocks that creates the blob
    /// (create-new when asked) with the options' content type, metadata and
    /// MD5. Reconciled like `upload` after an ambiguous attempt. On the DFS
    /// dialect, a flush of `len` bytes that closes the file.
    pub async fn commit_blocks(
        &self,
        len: u64,
        chunk: usize,
        options: &CreateOptions,
    ) -> Result<Flushed, Error> {
        if chunk == 0 {
            return Err(Error::config("upload chunk size must be at least 1 byte"));
        }
        if self.client().dialect() == Dialect::Dfs {
            let flush = FlushOptions {
                close: true,
                content_type: options.content_type.clone(),
                content_encoding: options.content_encoding.clone(),
                content_md5: options.content_md5.clone(),
            };
            return self.flush(len, &flush).await;
        }
        let ids: Vec<String> = (0..len)
            .step_by(chunk)
            .map(|pos| blob::block_id(self.writer, pos))
            .collect();
        let conditions = match options.mode {
            CreateMode::Overwrite => Conditions::default(),
            CreateMode::CreateNew => Conditions::create_new(),
        };
        let req = blob::PutBlockList {
            container: &self.fs.name,
            blob: &self.path,
            committed: &[],
            uncommitted: &ids,
            content_type: options.content_type.as_deref(),
            content_encoding: options.content_encoding.as_deref(),
            metadata: &options.metadata,
            content_md5: options.content_md5.as_deref(),
            conditions: &conditions,
        }
        .request(self.client().endpoint())?;
        let out = self.client().execute("put_block_list", req).await;
        match out.result {
            Ok(resp) => Ok(Flushed {
                content_length: len,
                etag: header_str(&resp.headers, "etag")
                    .unwrap_or_default()
                    .to_string(),
                reconciled: false,
            }),
            Err(e) if out.earlier_ambiguous && (e.is_already_exists() || is_flush_conflict(&e)) => {
                let props = self.properties().await?;
                if holds(
                    &props,
                    len,
                    options.content_md5.as_deref(),
                    &options.metadata,
                ) {
                    tracing::info!(path = %self.path, "upload retry found the blob our earlier attempt committed");
                    Ok(Flushed {
                        content_length: len,
                        etag: props.etag,
                        reconciled: true,
                    })
                } else {
                    Err(e)
                }
            }
            Err(e) => Err(e),
        }
    }
}

/// Whether a file's properties show the content a writer committed: exactly
/// `len` bytes, the whole-content MD5 it set (when it set one), and the
/// metadata it set (names compare case-insensitively). A length alone does not
/// prove the data is ours: another writer may have committed as many bytes.
pub(crate) fn holds(
    props: &PathProperties,
    len: u64,
    content_md5: Option<&str>,
    metadata: &Metadata,
) -> bool {
    props.content_length == len
        && content_md5.is_none_or(|m| props.content_md5.as_deref() == Some(m))
        && has_metadata(props, metadata)
}

/// Whether `props` carry every pair of `metadata`.
fn has_metadata(props: &PathProperties, metadata: &Metadata) -> bool {
    metadata
        .iter()
        .all(|(n, v)| props.metadata.get(n) == Some(v))
}

enum BlobFlush {
    Request(Request<Bytes>),
    AlreadyThere(PathProperties),
}

/// A refusal an append retry may get when its data is already there (not a
/// checksum mismatch, which says the bytes were damaged on the way).
fn is_position_refusal(e: &Error) -> bool {
    e.kind() == ErrorKind::Service
        && matches!(e.status().map(|s| s.as_u16()), Some(400 | 409 | 412))
        && !matches!(
            e.error_code(),
            Some("Md5Mismatch" | "Crc64Mismatch" | "InvalidMd5")
        )
}

/// The answers a flush retry gets when an earlier attempt already committed:
/// DFS 400 `InvalidFlushPosition` or 412, Blob 400 `InvalidBlockList`.
fn is_flush_conflict(e: &Error) -> bool {
    e.kind() == ErrorKind::Service
        && (e.is_invalid_flush_position()
            || e.status() == Some(StatusCode::PRECONDITION_FAILED)
            || e.error_code() == Some("InvalidBlockList"))
}
