//! One verified attempt at writing a payload: a [`Target`] names the file,
//! the offset, whether to create it, the writer and the content the file
//! must hold afterwards, so a whole-batch retry (or a replay from the spill
//! directory, even in another process) rewrites the same bytes at the same
//! place; [`write_once`] creates, appends in chunks with transactional MD5s,
//! flushes setting the file's MD5, then compares the service's account of the
//! file (length, MD5 or the bytes read back, writer) with what was sent.
//! Errors come back sorted: retry, conflict (write elsewhere), permanent.

use std::time::Duration;

use adls_rest::{
    ByteRange, Checksums, CreateMode, CreateOptions, Dialect, FileSystem, FlushOptions, Metadata,
    PathProperties, WriterId,
};
use bytes::Bytes;

use crate::format::Format;

/// Metadata name under which every file this crate creates records its
/// writer (the [`Target::writer`] that created it).
pub const WRITER_METADATA: &str = "llm_log_writer";

/// Whether a write creates its file first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Create {
    /// Create-new (`If-None-Match: *`); an existing file is ours only if it
    /// carries our writer id (or already holds exactly our data).
    New,
    /// Replace any existing file. No layout uses it any more; spill files
    /// written by earlier versions may still carry it.
    Overwrite,
}

/// Where a payload goes: `path`, starting at `position`, written as `writer`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Target {
    /// Path inside the filesystem.
    pub path: String,
    /// Offset of the payload's first byte.
    pub position: u64,
    /// Create the file first (only at position 0).
    pub create: Option<Create>,
    /// Close the file at the flush.
    pub close: bool,
    /// The writer of the file (32 hex digits): recorded in the file's
    /// metadata when it is created, and carried by its Blob block ids, so
    /// two writers of one path can never take each other's data for their
    /// own. Spill files of earlier versions have none: a random one is used.
    #[serde(default = "random_writer")]
    pub writer: String,
    /// Base64 MD5 of the file's whole content once this payload is committed
    /// (set at the flush, compared afterwards). `None`: the MD5 of the
    /// payload when `position` is 0, else only the payload's bytes are compared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_md5: Option<String>,
    /// The payload's format, which sets the file's `Content-Type` and
    /// `Content-Encoding`. Spill files of earlier versions have none: the
    /// path's extension tells (NDJSON when it names no format).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<Format>,
}

fn random_writer() -> String {
    WriterId::random().to_string()
}

impl Target {
    /// A fresh file for the whole payload, written by a new writer.
    pub fn new_file(path: String, format: Format) -> Self {
        Target {
            path,
            position: 0,
            create: Some(Create::New),
            close: true,
            writer: random_writer(),
            content_md5: None,
            format: Some(format),
        }
    }

    /// The payload's format (see [`Target::format`](field@Target::format)).
    pub fn format(&self) -> Format {
        self.format
            .or_else(|| Format::from_path(&self.path))
            .unwrap_or_default()
    }

    fn content_type(&self) -> Option<String> {
        Some(self.format().content_type().to_string())
    }

    fn content_encoding(&self) -> Option<String> {
        self.format().content_encoding().map(str::to_string)
    }

    /// The same file name with `-conflict{n}` before the extension: where a
    /// payload goes when its file turned out to hold something else.
    pub fn conflict_alternative(&self, n: u32) -> Target {
        let (dir, name) = match self.path.rfind('/') {
            Some(i) => (&self.path[..=i], &self.path[i + 1..]),
            None => ("", self.path.as_str()),
        };
        let (stem, ext) = match name.find('.') {
            Some(i) => (&name[..i], &name[i..]),
            None => (name, ""),
        };
        // The writer follows from this target's: a replay (even in another
        // process) that moves the batch again lands on the same name as the
        // same writer, and finds its own file there instead of moving on.
        let writer = {
            use sha2::Digest as _;
            let d = sha2::Sha256::digest(format!("{}/{n}", self.writer));
            d[..16].iter().map(|b| format!("{b:02x}")).collect()
        };
        Target {
            writer,
            ..Target::new_file(format!("{dir}{stem}-conflict{n}{ext}"), self.format())
        }
    }

    fn writer_id(&self) -> WriterId {
        WriterId::from_hex(&self.writer).unwrap_or_else(|_| WriterId::random())
    }

    /// The MD5 the whole file must report once `payload` is committed.
    fn expected_md5(&self, payload: &[u8]) -> Option<String> {
        self.content_md5
            .clone()
            .or_else(|| (self.position == 0).then(|| adls_rest::content_md5(payload)))
    }

    fn metadata(&self) -> Metadata {
        let mut m = Metadata::new();
        // a writer id that does not fit metadata (a hand-edited spill file)
        // just leaves the file without it
        let _ = m.insert(WRITER_METADATA, &self.writer);
        m
    }
}

/// Why one attempt failed.
#[derive(Debug)]
pub(crate) enum AttemptError {
    /// Try again later.
    Retry(adls_rest::Error),
    /// The file holds something other than what we expect: write elsewhere.
    Conflict(String),
    /// Storage refuses this batch for good (a 4xx that no retry changes, a
    /// configuration error): dead-letter it.
    Permanent(String),
}

/// Where `payload` ends in the target's file. A position so large that it
/// does not fit a `u64` (only a damaged spill header can say so) is refused
/// for good: the batch is dead-lettered, not retried, and nothing panics.
fn end_of(target: &Target, payload: &Bytes) -> Result<u64, AttemptError> {
    target
        .position
        .checked_add(payload.len() as u64)
        .ok_or_else(|| {
            AttemptError::Permanent(format!(
                "a batch of {} bytes at position {} of `{}` ends past 2^64",
                payload.len(),
                target.position,
                target.path
            ))
        })
}

/// Settings the upload path needs.
#[derive(Debug, Clone)]
pub(crate) struct UploadSettings {
    pub append_chunk: usize,
    /// Transactional checksums on every append and staged block.
    pub checksums: Checksums,
    /// Skip the comparison after a successful commit (benchmarks only).
    pub unverified: bool,
    pub retry_window: Duration,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
}

/// Sorts a storage error into retry, conflict (write elsewhere) or permanent.
/// A missing filesystem is recreated and retried.
async fn classify(fs: &FileSystem, e: adls_rest::Error) -> AttemptError {
    use adls_rest::ErrorKind;
    if e.is_not_found() {
        if matches!(
            e.error_code(),
            Some("FilesystemNotFound" | "ContainerNotFound")
        ) {
            // the filesystem was deleted under us: recreate it, retry later
            if let Err(e) = fs.create_if_not_exists().await {
                return AttemptError::Retry(e);
            }
            return AttemptError::Retry(e);
        }
        // the file went away between requests (a deleted rolling file)
        return AttemptError::Conflict(format!("the file is gone: {e}"));
    }
    if matches!(
        e.error_code(),
        Some("Md5Mismatch" | "Crc64Mismatch" | "InvalidMd5")
    ) {
        // bytes damaged on the way: exactly what the checksum is for; send again
        return AttemptError::Retry(e);
    }
    if e.error_code() == Some("FeatureNotSupported") {
        // e.g. Azurite 3.35 and `x-ms-content-crc64`: no retry changes that
        return AttemptError::Permanent(e.to_string());
    }
    match (e.kind(), e.status().map(|s| s.as_u16())) {
        // Not this batch's fault but the credential's (a role still
        // propagating, a rotated SAS, clock skew): every batch would fail
        // alike, so pause and keep them rather than dead-letter them all.
        (ErrorKind::Service, Some(401 | 403)) => AttemptError::Retry(e),
        // e.g. a blob not written in blocks, which cannot be appended to
        (ErrorKind::Conflict, _) => AttemptError::Conflict(e.to_string()),
        // the 50 000-block limit, a lease: this file takes no more data
        (ErrorKind::Service, Some(409)) => AttemptError::Conflict(e.to_string()),
        (ErrorKind::Config, _) => AttemptError::Permanent(e.to_string()),
        (ErrorKind::Service, Some(s)) if (400..500).contains(&s) && !e.is_retryable() => {
            AttemptError::Permanent(e.to_string())
        }
        _ => AttemptError::Retry(e),
    }
}

/// How far one attempt got: from `Committing` on, a failure or a
/// cancellation may leave the batch stored (its outcome is unknown until
/// verified); after `Committed` the service acknowledged the commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Progress {
    /// Nothing that commits data has been sent.
    #[default]
    Staging,
    /// The request that commits data is under way.
    Committing,
    /// The service answered the commit with a 2xx (or it was reconciled):
    /// only the verification is left.
    Committed,
}

/// One attempt at writing `payload` to `target`, verified. `progress` says
/// how far it got, also when it fails or is cancelled.
pub(crate) async fn write_once(
    fs: &FileSystem,
    target: &Target,
    payload: &Bytes,
    settings: &UploadSettings,
    progress: &mut Progress,
) -> Result<(), AttemptError> {
    let file = match fs.file(&target.path) {
        Ok(f) => f.with_writer(target.writer_id()),
        Err(e) => return Err(classify(fs, e).await),
    };
    let end = end_of(target, payload)?;
    let md5 = target.expected_md5(payload);
    let metadata = target.metadata();
    let chunk = settings.append_chunk.max(1);
    // A new, whole file on the Blob dialect: Put Block(s) then one Put Block
    // List that creates it (create-new), then the verification's properties
    // call: three requests per batch, not six.
    if target.create == Some(Create::New)
        && target.position == 0
        && target.close
        && fs.client().dialect() == Dialect::Blob
    {
        let options = CreateOptions {
            mode: CreateMode::CreateNew,
            content_type: target.content_type(),
            content_encoding: target.content_encoding(),
            metadata,
            content_md5: md5.clone(),
            checksums: settings.checksums,
        };
        append_all(
            fs,
            &file,
            target,
            payload,
            chunk,
            settings.checksums,
            md5.as_deref(),
        )
        .await?;
        *progress = Progress::Committing;
        return match file
            .commit_blocks(payload.len() as u64, chunk, &options)
            .await
        {
            Ok(_) if settings.unverified => Ok(()),
            Ok(_) => {
                *progress = Progress::Committed;
                verify(&file, target, payload, md5.as_deref()).await
            }
            // an earlier attempt of this batch (ours, if it holds exactly this)
            Err(e) if e.is_already_exists() => verify(&file, target, payload, md5.as_deref()).await,
            Err(e) => settle(fs, &file, target, payload, md5.as_deref(), e).await,
        };
    }
    if let Some(create) = target.create {
        let options = CreateOptions {
            mode: match create {
                Create::New => CreateMode::CreateNew,
                Create::Overwrite => CreateMode::Overwrite,
            },
            content_type: target.content_type(),
            content_encoding: target.content_encoding(),
            metadata,
            ..Default::default()
        };
        match file.create(&options).await {
            Ok(()) => {}
            Err(e) if e.is_already_exists() => {
                let props = file.properties().await.map_err(AttemptError::Retry)?;
                if props.content_length == end {
                    // an earlier attempt got as far as the flush: if that was
                    // ours, there is nothing left to do
                    return verify(&file, target, payload, md5.as_deref()).await;
                }
                let ours = props.metadata.get(WRITER_METADATA) == Some(target.writer.as_str());
                if !(ours && props.content_length == target.position) {
                    return Err(AttemptError::Conflict(format!(
                        "`{}` already exists ({} bytes, writer {:?}); this batch's writer is {}",
                        target.path,
                        props.content_length,
                        props.metadata.get(WRITER_METADATA),
                        target.writer
                    )));
                }
                // ours, created by an earlier attempt: carry on
            }
            Err(e) => return settle(fs, &file, target, payload, md5.as_deref(), e).await,
        }
    }
    append_all(
        fs,
        &file,
        target,
        payload,
        chunk,
        settings.checksums,
        md5.as_deref(),
    )
    .await?;
    let flush = FlushOptions {
        close: target.close,
        content_type: target.content_type(),
        content_encoding: target.content_encoding(),
        content_md5: md5.clone(),
    };
    *progress = Progress::Committing;
    match file.flush(end, &flush).await {
        Ok(_) if settings.unverified => Ok(()),
        Ok(_) => {
            *progress = Progress::Committed;
            verify(&file, target, payload, md5.as_deref()).await
        }
        // an earlier attempt may have committed exactly this
        Err(e)
            if e.is_invalid_flush_position()
                || e.error_code() == Some("InvalidBlockList")
                || e.status().map(|s| s.as_u16()) == Some(412) =>
        {
            verify(&file, target, payload, md5.as_deref()).await
        }
        Err(e) => settle(fs, &file, target, payload, md5.as_deref(), e).await,
    }
}

/// A storage error on the way: sorted by [`classify`]; but before a batch is
/// moved to a new name, the file is checked for this very batch, which an
/// earlier attempt (or an earlier run) may have committed already. Only the
/// verification decides that a file holds someone else's data.
async fn settle(
    fs: &FileSystem,
    file: &adls_rest::File,
    target: &Target,
    payload: &Bytes,
    md5: Option<&str>,
    e: adls_rest::Error,
) -> Result<(), AttemptError> {
    match classify(fs, e).await {
        AttemptError::Conflict(why) => match verify(file, target, payload, md5).await {
            Ok(()) => {
                tracing::info!(path = %target.path, "the file already holds this batch");
                Ok(())
            }
            Err(AttemptError::Conflict(also)) => {
                Err(AttemptError::Conflict(format!("{why}; {also}")))
            }
            Err(other) => Err(other),
        },
        other => Err(other),
    }
}

/// Stages `payload` at the target's position in appends of at most `chunk`
/// bytes. `file_md5` is the MD5 the whole file will have: when the payload is
/// the whole file in one append, it is also that append's `Content-MD5`, so
/// the payload is hashed once, not twice.
async fn append_all(
    fs: &FileSystem,
    file: &adls_rest::File,
    target: &Target,
    payload: &Bytes,
    chunk: usize,
    checksums: Checksums,
    file_md5: Option<&str>,
) -> Result<(), AttemptError> {
    let whole_in_one = target.position == 0 && payload.len() <= chunk;
    let mut offset = 0usize;
    while offset < payload.len() {
        let stop = (offset + chunk).min(payload.len());
        let position = target.position + offset as u64;
        let data = payload.slice(offset..stop);
        let sent = match file_md5 {
            Some(md5) if whole_in_one && checksums.md5 && !checksums.crc64 => {
                file.append_with_md5(position, data, md5).await
            }
            _ => file.append(position, data, checksums).await,
        };
        match sent {
            Ok(()) => {}
            // Refused for its position: an earlier attempt of this append (of
            // this attempt, of an earlier one, or of an earlier run) may have
            // staged or even committed the data already (some servers refuse
            // a second append at a position they have data for). Carry on:
            // the flush commits only contiguous data up to the batch's end,
            // and the verification after it compares the content itself.
            Err(e) if is_refusal(&e) => {
                tracing::debug!(error = %e, position = target.position + offset as u64, "append refused for its position; the flush and its verification decide");
            }
            Err(e) => return Err(classify(fs, e).await),
        }
        offset = stop;
    }
    Ok(())
}

/// A 400/409/412 that is not a checksum mismatch (which says the bytes were
/// damaged on the way, and must be sent again).
fn is_refusal(e: &adls_rest::Error) -> bool {
    matches!(e.status().map(|s| s.as_u16()), Some(400 | 409 | 412))
        && !matches!(
            e.error_code(),
            Some("Md5Mismatch" | "Crc64Mismatch" | "InvalidMd5")
        )
}

/// Checks what the service committed against what was sent: the file's
/// length must end exactly where the payload ends; its stored MD5 (set at the
/// flush) must be the expected one, or, where the service keeps none, the
/// committed bytes `[position, end)` are read back and compared; and a writer
/// recorded in its metadata must be ours. Anything else is a conflict: the
/// file does not hold this batch.
async fn verify(
    file: &adls_rest::File,
    target: &Target,
    payload: &Bytes,
    md5: Option<&str>,
) -> Result<(), AttemptError> {
    let end = end_of(target, payload)?;
    let props = file.properties().await.map_err(AttemptError::Retry)?;
    let conflict = |what: String| {
        AttemptError::Conflict(format!(
            "`{}` does not hold this batch ({} bytes at {}): {what}",
            target.path,
            payload.len(),
            target.position
        ))
    };
    if props.content_length != end {
        return Err(conflict(format!(
            "the service reports {} bytes, expected {end}",
            props.content_length
        )));
    }
    if let Some(w) = props.metadata.get(WRITER_METADATA) {
        if w != target.writer {
            return Err(conflict(format!("it was created by writer {w}")));
        }
    }
    match (md5, &props.content_md5) {
        (Some(want), Some(got)) if want == got => Ok(()),
        (Some(want), Some(got)) => Err(conflict(format!(
            "its Content-MD5 is {got}, expected {want}"
        ))),
        _ => read_back(file, target, payload, &props).await,
    }
}

/// Where the service keeps no MD5 for the file: reads the payload's range
/// back and compares it byte for byte.
async fn read_back(
    file: &adls_rest::File,
    target: &Target,
    payload: &Bytes,
    props: &PathProperties,
) -> Result<(), AttemptError> {
    if payload.is_empty() {
        return Ok(());
    }
    tracing::debug!(path = %target.path, etag = %props.etag, "no Content-MD5 kept: reading the batch back");
    let stored = file
        .read_range(ByteRange {
            start: target.position,
            len: Some(payload.len() as u64),
        })
        .await
        .map_err(AttemptError::Retry)?;
    // a server that ignores the range answers the whole file
    let stored = if stored.len() as u64 == props.content_length && target.position > 0 {
        stored.slice(target.position as usize..)
    } else {
        stored
    };
    if stored == *payload {
        Ok(())
    } else {
        Err(AttemptError::Conflict(format!(
            "`{}` holds other bytes than this batch at {}..{}",
            target.path,
            target.position,
            target.position + payload.len() as u64
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conflict_alternatives_keep_the_extension() {
        let t = Target::new_file(
            "a/b/gw-1-2024-00000001.ndjson.gz".into(),
            Format::NdjsonGzip,
        );
        assert_eq!(
            t.conflict_alternative(2).path,
            "a/b/gw-1-2024-00000001-conflict2.ndjson.gz"
        );
        let t = Target::new_file("plain".into(), Format::Ndjson);
        assert_eq!(t.conflict_alternative(1).path, "plain-conflict1");
    }

    /// A batch whose end does not fit a `u64` (a damaged spill header) is
    /// refused for good before any request (nothing listens on port 9), and
    /// nothing panics: it overflowed, which in a debug build panicked the
    /// replay pass at that file every time, so no later file was replayed.
    #[tokio::test]
    async fn a_position_past_2_64_is_permanent_not_a_panic() {
        let client = adls_rest::Client::builder(
            adls_rest::Account::emulator("http://127.0.0.1:9/devstoreaccount1").expect("account"),
            adls_rest::Credential::Anonymous,
        )
        .retry(adls_rest::RetryPolicy::none())
        .build()
        .expect("client");
        let fs = client.filesystem("logs").expect("fs");
        let target = Target {
            position: u64::MAX - 2,
            ..Target::new_file("a.ndjson".into(), Format::Ndjson)
        };
        let settings = UploadSettings {
            append_chunk: 1 << 20,
            checksums: Default::default(),
            unverified: false,
            retry_window: Duration::from_secs(1),
            initial_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(1),
        };
        let mut progress = Progress::default();
        let payload = Bytes::from_static(b"0123456789");
        match write_once(&fs, &target, &payload, &settings, &mut progress).await {
            Err(AttemptError::Permanent(why)) => assert!(why.contains("2^64"), "{why}"),
            other => panic!("{:?}", other.err().map(|e| format!("{e:?}"))),
        }
        assert_eq!(progress, Progress::Staging);
        assert_eq!(client.stats().requests_sent, 0);
    }
}
