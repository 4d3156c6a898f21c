//! Writing one batch to storage, idempotently and verified: a [`Target`]
//! names the file, the offset, whether to create it, the writer and the
//! content the file must hold afterwards, so a whole-batch retry (or a replay
//! from the spill directory, even in another process) rewrites the same bytes
//! at the same place, and a batch counts as written only once the service's
//! own account of the file matches what was sent.
//!
//! `write_once` is one attempt (create → append in chunks with transactional
//! MD5s → flush setting the file's MD5 → properties, compared), with the
//! client's own HTTP retries inside. `deliver` retries whole batches with
//! backoff for the configured window, moves a batch whose file holds someone
//! else's data to a new name, dead-letters what storage refuses for good, and
//! otherwise spills or drops.

use std::sync::Arc;
use std::time::{Duration, Instant};

use adls_rest::{
    ByteRange, Checksums, CreateMode, CreateOptions, Dialect, FileSystem, FlushOptions, Metadata,
    PathProperties, WriterId,
};
use bytes::Bytes;
use tokio::sync::watch;

use crate::metrics::{Counters, DropReason};
use crate::spill::SpillDir;

/// Metadata name under which every file this crate creates records its
/// writer (the [`Target::writer`] that created it).
pub const WRITER_METADATA: &str = "llm_log_writer";

/// How many times one batch moves to a new name before it is dead-lettered.
const MAX_CONFLICTS: u32 = 3;

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
}

fn random_writer() -> String {
    WriterId::random().to_string()
}

impl Target {
    /// A fresh file for the whole payload, written by a new writer.
    pub fn new_file(path: String) -> Self {
        Target {
            path,
            position: 0,
            create: Some(Create::New),
            close: true,
            writer: random_writer(),
            content_md5: None,
        }
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
        Target::new_file(format!("{dir}{stem}-conflict{n}{ext}"))
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

/// A batch on its way to storage.
#[derive(Debug, Clone)]
pub(crate) struct Batch {
    pub target: Target,
    /// The bytes to write (gzip-compressed when configured).
    pub payload: Bytes,
    pub records: u64,
    pub raw_bytes: u64,
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

/// Settings the upload path needs.
#[derive(Debug, Clone)]
pub(crate) struct UploadSettings {
    pub append_chunk: usize,
    pub content_type: String,
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
    match (e.kind(), e.status().map(|s| s.as_u16())) {
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

/// One attempt at writing `payload` to `target`, verified.
///
/// `committing` is set just before the request that commits data is sent:
/// from then on, a failure or a cancellation leaves the outcome unknown.
pub(crate) async fn write_once(
    fs: &FileSystem,
    target: &Target,
    payload: &Bytes,
    settings: &UploadSettings,
    committing: &mut bool,
) -> Result<(), AttemptError> {
    let file = match fs.file(&target.path) {
        Ok(f) => f.with_writer(target.writer_id()),
        Err(e) => return Err(classify(fs, e).await),
    };
    let end = target.position + payload.len() as u64;
    let md5 = target.expected_md5(payload);
    let metadata = target.metadata();
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
            content_type: Some(settings.content_type.clone()),
            metadata,
            content_md5: md5.clone(),
            checksums: settings.checksums,
        };
        let chunk = settings.append_chunk.max(1);
        append_all(fs, &file, target, payload, chunk, settings.checksums).await?;
        *committing = true;
        return match file
            .commit_blocks(payload.len() as u64, chunk, &options)
            .await
        {
            Ok(_) if settings.unverified => Ok(()),
            Ok(_) => verify(&file, target, payload, md5.as_deref()).await,
            // an earlier attempt of this batch (ours, if it holds exactly this)
            Err(e) if e.is_already_exists() => verify(&file, target, payload, md5.as_deref()).await,
            Err(e) => Err(classify(fs, e).await),
        };
    }
    if let Some(create) = target.create {
        let options = CreateOptions {
            mode: match create {
                Create::New => CreateMode::CreateNew,
                Create::Overwrite => CreateMode::Overwrite,
            },
            content_type: Some(settings.content_type.clone()),
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
            Err(e) => return Err(classify(fs, e).await),
        }
    }
    let chunk = settings.append_chunk.max(1);
    append_all(fs, &file, target, payload, chunk, settings.checksums).await?;
    let flush = FlushOptions {
        close: target.close,
        content_type: Some(settings.content_type.clone()),
        content_md5: md5.clone(),
    };
    *committing = true;
    match file.flush(end, &flush).await {
        Ok(_) if settings.unverified => Ok(()),
        Ok(_) => verify(&file, target, payload, md5.as_deref()).await,
        // an earlier attempt may have committed exactly this
        Err(e)
            if e.is_invalid_flush_position()
                || e.error_code() == Some("InvalidBlockList")
                || e.status().map(|s| s.as_u16()) == Some(412) =>
        {
            verify(&file, target, payload, md5.as_deref()).await
        }
        Err(e) => Err(classify(fs, e).await),
    }
}

/// Stages `payload` at the target's position in appends of at most `chunk` bytes.
async fn append_all(
    fs: &FileSystem,
    file: &adls_rest::File,
    target: &Target,
    payload: &Bytes,
    chunk: usize,
    checksums: Checksums,
) -> Result<(), AttemptError> {
    let mut offset = 0usize;
    while offset < payload.len() {
        let stop = (offset + chunk).min(payload.len());
        match file
            .append(
                target.position + offset as u64,
                payload.slice(offset..stop),
                checksums,
            )
            .await
        {
            Ok(()) => {}
            // An attempt of this append may have landed and the retry was
            // refused because the data is already staged (some servers refuse
            // a second append at a position they have data for). Carry on:
            // the flush commits only contiguous data up to the batch's end,
            // and the verification after it compares the content itself.
            Err(e) if e.may_have_been_applied() && is_refusal(&e) => {
                tracing::debug!(error = %e, position = target.position + offset as u64, "append retry refused after an ambiguous attempt; the flush and its verification decide");
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
    let props = file.properties().await.map_err(AttemptError::Retry)?;
    let end = target.position + payload.len() as u64;
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

/// How a batch ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Delivered {
    /// Written and verified, at this target (differs from the batch's after a conflict).
    Written(Target),
    /// Written to the spill directory.
    Spilled,
    /// Refused by storage for good; kept in the spill directory's `dead-letter/`.
    DeadLettered,
    /// Abandoned after its data may have been committed, with no spill
    /// directory to reconcile it from: counted as `unknown`.
    Unknown,
    /// Dropped for this reason.
    Dropped(DropReason),
}

/// Everything an upload needs, shared by the tasks.
pub(crate) struct Uploader {
    pub fs: FileSystem,
    pub settings: UploadSettings,
    pub counters: Arc<Counters>,
    pub spill: Option<Arc<SpillDir>>,
    /// Becomes true when shutdown's deadline has passed: stop retrying.
    pub give_up: watch::Receiver<bool>,
    /// Poked after each successful upload (storage is healthy: replay spills).
    pub healthy: Arc<tokio::sync::Notify>,
}

impl Uploader {
    fn gave_up(&self) -> bool {
        *self.give_up.borrow()
    }

    /// Writes `batch`, retrying whole-batch for the retry window; then spills
    /// (if enabled) or drops. Updates the ledger either way. A panic inside
    /// (a bug) is caught: the batch is spilled as possibly written, or
    /// counted as unknown, never lost from the ledger.
    pub async fn deliver(&self, batch: Batch) -> Delivered {
        use futures_util::FutureExt as _;
        let span = tracing::info_span!(
            "batch",
            path = %batch.target.path,
            position = batch.target.position,
            records = batch.records,
            bytes = batch.payload.len(),
        );
        let run = tracing::Instrument::instrument(self.deliver_inner(batch.clone()), span);
        match std::panic::AssertUnwindSafe(run).catch_unwind().await {
            Ok(delivered) => delivered,
            Err(panic) => {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                tracing::error!(panic = %what, records = batch.records, "the upload of a batch panicked; keeping it for reconciliation");
                self.keep_unknown(&batch).await
            }
        }
    }

    async fn deliver_inner(&self, mut batch: Batch) -> Delivered {
        let started = Instant::now();
        let mut attempt = 0u32;
        let mut conflicts = 0u32;
        let mut give_up = self.give_up.clone();
        // whether any attempt may have committed the batch although it failed
        let mut maybe_committed = false;
        loop {
            if self.gave_up() {
                return self
                    .end_unwritten(&batch, DropReason::Shutdown, maybe_committed)
                    .await;
            }
            let mut committing = false;
            let result = tokio::select! {
                r = write_once(&self.fs, &batch.target, &batch.payload, &self.settings, &mut committing) => r,
                _ = wait_true(&mut give_up) => {
                    // abandoned mid-flight: if the commit was under way, nobody knows
                    return self.end_unwritten(&batch, DropReason::Shutdown, maybe_committed || committing).await;
                }
            };
            if let Err(AttemptError::Retry(e)) = &result {
                maybe_committed |= committing && e.may_have_been_applied();
            }
            match result {
                Ok(()) => {
                    Counters::add(&self.counters.written, batch.records);
                    Counters::add(&self.counters.written_bytes, batch.raw_bytes);
                    if batch.target.close {
                        Counters::add(&self.counters.files, 1);
                    }
                    self.counters.record_latency(started.elapsed());
                    self.healthy.notify_one();
                    tracing::debug!(path = %batch.target.path, records = batch.records, bytes = batch.payload.len(), "batch written and verified");
                    return Delivered::Written(batch.target);
                }
                Err(AttemptError::Conflict(why)) => {
                    // the old target is settled (it holds someone else's data)
                    maybe_committed = false;
                    conflicts += 1;
                    if conflicts > MAX_CONFLICTS {
                        let why = format!("moved to a new name {MAX_CONFLICTS} times; last: {why}");
                        return self.dead_letter(&batch, &why).await;
                    }
                    tracing::warn!(%why, "file conflict; writing the batch to a new file");
                    batch.target = batch.target.conflict_alternative(conflicts);
                }
                Err(AttemptError::Permanent(why)) => {
                    return self.dead_letter(&batch, &why).await;
                }
                Err(AttemptError::Retry(e)) => {
                    attempt += 1;
                    if started.elapsed() >= self.settings.retry_window {
                        tracing::warn!(path = %batch.target.path, records = batch.records, error = %e, "batch upload failed for the whole retry window");
                        return self
                            .end_unwritten(&batch, DropReason::UploadFailed, maybe_committed)
                            .await;
                    }
                    Counters::add(&self.counters.batch_retries, 1);
                    let cap = self
                        .settings
                        .initial_backoff
                        .saturating_mul(1u32 << attempt.min(16))
                        .min(self.settings.max_backoff);
                    let wait = cap.mul_f64(0.5 + fastrand::f64() / 2.0);
                    tracing::debug!(attempt, wait_ms = wait.as_millis() as u64, error = %e, "retrying batch");
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = wait_true(&mut give_up) => {}
                    }
                }
            }
        }
    }

    /// A batch that was not (provably) written: spilled if possible (its
    /// target kept, so the replay finds it if its commit did land), else
    /// counted as unknown when a commit was under way, else dropped.
    async fn end_unwritten(
        &self,
        batch: &Batch,
        reason: DropReason,
        committing: bool,
    ) -> Delivered {
        if committing {
            self.keep_unknown(batch).await
        } else {
            self.spill_or_drop(batch, reason).await
        }
    }

    /// A batch whose commit may have landed: spill it (the replay reconciles
    /// it with storage through its unchanged target), or count it as unknown.
    async fn keep_unknown(&self, batch: &Batch) -> Delivered {
        if let Some(done) = self.try_spill(batch).await {
            return done;
        }
        tracing::error!(
            path = %batch.target.path,
            records = batch.records,
            "abandoned while its commit was under way; it may or may not be in storage"
        );
        Counters::add(&self.counters.unknown, batch.records);
        Delivered::Unknown
    }

    /// Storage refused the batch for good: keep it in `dead-letter/` with the
    /// reason (or drop it, counted, when there is no spill directory).
    pub async fn dead_letter(&self, batch: &Batch, why: &str) -> Delivered {
        tracing::error!(path = %batch.target.path, records = batch.records, reason = %why, "storage refuses this batch; dead-lettering it");
        if let Some(spill) = &self.spill {
            let spill = spill.clone();
            let b = batch.clone();
            let reason = why.to_string();
            let res = tokio::task::spawn_blocking(move || {
                spill.write_dead_letter(&b.target, b.records, b.raw_bytes, &b.payload, &reason)
            })
            .await;
            match res {
                Ok(Ok(path)) => {
                    Counters::add(&self.counters.dead_lettered, batch.records);
                    tracing::info!(file = %path.display(), "batch kept in the dead-letter directory");
                    return Delivered::DeadLettered;
                }
                Ok(Err(e)) => tracing::error!(error = %e, "could not write the dead-letter file"),
                Err(e) => tracing::error!(error = %e, "dead-letter task failed"),
            }
        }
        self.counters
            .drop_records(DropReason::Rejected, batch.records);
        Delivered::Dropped(DropReason::Rejected)
    }

    /// The end of the road for a batch that could not be written.
    pub async fn spill_or_drop(&self, batch: &Batch, reason: DropReason) -> Delivered {
        if let Some(done) = self.try_spill(batch).await {
            return done;
        }
        let reason = if self.spill.is_some() {
            DropReason::SpillFailed
        } else {
            reason
        };
        tracing::error!(
            records = batch.records,
            reason = reason.as_str(),
            "dropping batch"
        );
        self.counters.drop_records(reason, batch.records);
        Delivered::Dropped(reason)
    }

    /// Writes the batch to the spill directory, if there is one and it can.
    async fn try_spill(&self, batch: &Batch) -> Option<Delivered> {
        let spill = self.spill.clone()?;
        let b = batch.clone();
        let res = tokio::task::spawn_blocking(move || {
            spill.write(&b.target, b.records, b.raw_bytes, &b.payload)
        })
        .await;
        match res {
            Ok(Ok(path)) => {
                Counters::add(&self.counters.spilled, batch.records);
                tracing::info!(file = %path.display(), records = batch.records, "batch spilled to disk");
                return Some(Delivered::Spilled);
            }
            Ok(Err(e)) => {
                tracing::error!(error = %e, records = batch.records, "could not spill batch")
            }
            Err(e) => tracing::error!(error = %e, records = batch.records, "spill task failed"),
        }
        None
    }
}

/// Resolves once the watched flag is true, or once its sender (the batcher)
/// is gone: the batcher ends only after every upload it dispatched, so what
/// still waits then is the replayer, which must stop too.
pub(crate) async fn wait_true(rx: &mut watch::Receiver<bool>) {
    loop {
        if *rx.borrow_and_update() {
            return;
        }
        if rx.changed().await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conflict_alternatives_keep_the_extension() {
        let t = Target::new_file("a/b/gw-1-2024-00000001.ndjson.gz".into());
        assert_eq!(
            t.conflict_alternative(2).path,
            "a/b/gw-1-2024-00000001-conflict2.ndjson.gz"
        );
        let t = Target::new_file("plain".into());
        assert_eq!(t.conflict_alternative(1).path, "plain-conflict1");
    }
}
