//! Writing one batch to storage, idempotently: a [`Target`] names the file,
//! the offset and whether to create it, so a whole-batch retry (or a replay
//! from the spill directory, even in another process) rewrites the same bytes
//! at the same place and can never write a record twice.
//!
//! `write_once` is one attempt (create → append in chunks → flush), with the
//! client's own HTTP retries inside. `deliver` retries whole batches with
//! backoff for the configured window, then spills or drops.

use std::sync::Arc;
use std::time::{Duration, Instant};

use adls_rest::{Checksums, CreateMode, CreateOptions, FileSystem, FlushOptions};
use bytes::Bytes;
use tokio::sync::watch;

use crate::metrics::{Counters, DropReason};
use crate::spill::SpillDir;

/// Whether a write creates its file first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Create {
    /// Create-new (`If-None-Match: *`); an existing file is reconciled at flush.
    New,
    /// Replace any existing file (the per-record layout).
    Overwrite,
}

/// Where a payload goes: `path`, starting at `position`.
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
}

impl Target {
    /// A fresh file for the whole payload.
    pub fn new_file(path: String) -> Self {
        Target {
            path,
            position: 0,
            create: Some(Create::New),
            close: true,
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
}

/// Settings the upload path needs.
#[derive(Debug, Clone)]
pub(crate) struct UploadSettings {
    pub append_chunk: usize,
    pub content_type: String,
    pub retry_window: Duration,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
}

/// One attempt at writing `payload` to `target`.
pub(crate) async fn write_once(
    fs: &FileSystem,
    target: &Target,
    payload: &Bytes,
    settings: &UploadSettings,
) -> Result<(), AttemptError> {
    let file = fs.file(&target.path).map_err(AttemptError::Retry)?;
    // A new, whole file on the Blob dialect: Put Block(s) then one Put Block
    // List that creates it (create-new): two requests per batch, not five.
    if target.create == Some(Create::New)
        && target.position == 0
        && target.close
        && fs.client().dialect() == adls_rest::Dialect::Blob
    {
        let options = CreateOptions {
            mode: CreateMode::CreateNew,
            content_type: Some(settings.content_type.clone()),
            ..Default::default()
        };
        return match file
            .upload(payload.clone(), settings.append_chunk.max(1), &options)
            .await
        {
            Ok(_) => Ok(()),
            // an earlier attempt of this batch (ours, if it holds exactly this)
            Err(e) if e.is_already_exists() => holds_exactly(&file, target, payload).await,
            Err(e) if e.is_not_found() => {
                fs.create_if_not_exists()
                    .await
                    .map_err(AttemptError::Retry)?;
                Err(AttemptError::Retry(e))
            }
            Err(e) => Err(AttemptError::Retry(e)),
        };
    }
    if let Some(create) = target.create {
        let options = CreateOptions {
            mode: match create {
                Create::New => CreateMode::CreateNew,
                Create::Overwrite => CreateMode::Overwrite,
            },
            content_type: Some(settings.content_type.clone()),
            ..Default::default()
        };
        match file.create(&options).await {
            Ok(()) => {}
            // Ours from an earlier attempt, or someone else's: the flush below tells.
            Err(e) if e.is_already_exists() => {}
            Err(e) if e.is_not_found() => {
                // the filesystem was deleted under us: recreate it, retry later
                fs.create_if_not_exists()
                    .await
                    .map_err(AttemptError::Retry)?;
                return Err(AttemptError::Retry(e));
            }
            Err(e) => return Err(AttemptError::Retry(e)),
        }
    }
    let chunk = settings.append_chunk.max(1);
    let mut offset = 0usize;
    while offset < payload.len() {
        let end = (offset + chunk).min(payload.len());
        file.append(
            target.position + offset as u64,
            payload.slice(offset..end),
            Checksums::default(),
        )
        .await
        .map_err(AttemptError::Retry)?;
        offset = end;
    }
    let end = target.position + payload.len() as u64;
    let flush = FlushOptions {
        close: target.close,
        content_type: Some(settings.content_type.clone()),
    };
    match file.flush(end, &flush).await {
        Ok(_) => Ok(()),
        // an earlier attempt may have committed exactly this
        Err(e) if e.is_invalid_flush_position() || e.error_code() == Some("InvalidBlockList") => {
            holds_exactly(&file, target, payload).await
        }
        Err(e) => Err(AttemptError::Retry(e)),
    }
}

/// After a refusal that an earlier attempt of this batch would explain: the
/// batch is written if the file ends exactly where the batch ends; any other
/// length means the file holds something else (a conflict).
async fn holds_exactly(
    file: &adls_rest::File,
    target: &Target,
    payload: &Bytes,
) -> Result<(), AttemptError> {
    let end = target.position + payload.len() as u64;
    let props = file.properties().await.map_err(AttemptError::Retry)?;
    if props.content_length == end {
        Ok(())
    } else {
        Err(AttemptError::Conflict(format!(
            "`{}` holds {} bytes; expected {} after writing {} bytes at {}",
            target.path,
            props.content_length,
            end,
            payload.len(),
            target.position
        )))
    }
}

/// How a batch ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Delivered {
    /// Written, at this target (differs from the batch's after a conflict).
    Written(Target),
    /// Written to the spill directory.
    Spilled,
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
    /// (if enabled) or drops. Updates the ledger either way.
    pub async fn deliver(&self, batch: Batch) -> Delivered {
        let span = tracing::info_span!(
            "batch",
            path = %batch.target.path,
            position = batch.target.position,
            records = batch.records,
            bytes = batch.payload.len(),
        );
        tracing::Instrument::instrument(self.deliver_inner(batch), span).await
    }

    async fn deliver_inner(&self, mut batch: Batch) -> Delivered {
        let started = Instant::now();
        let mut attempt = 0u32;
        let mut conflicts = 0u32;
        let mut give_up = self.give_up.clone();
        loop {
            if self.gave_up() {
                return self.spill_or_drop(&batch, DropReason::Shutdown).await;
            }
            let result = tokio::select! {
                r = write_once(&self.fs, &batch.target, &batch.payload, &self.settings) => r,
                _ = wait_true(&mut give_up) => {
                    return self.spill_or_drop(&batch, DropReason::Shutdown).await;
                }
            };
            match result {
                Ok(()) => {
                    Counters::add(&self.counters.written, batch.records);
                    Counters::add(&self.counters.written_bytes, batch.raw_bytes);
                    if batch.target.close {
                        Counters::add(&self.counters.files, 1);
                    }
                    self.counters.record_latency(started.elapsed());
                    self.healthy.notify_one();
                    tracing::debug!(path = %batch.target.path, records = batch.records, bytes = batch.payload.len(), "batch written");
                    return Delivered::Written(batch.target);
                }
                Err(AttemptError::Conflict(why)) => {
                    conflicts += 1;
                    tracing::warn!(%why, "file conflict; writing the batch to a new file");
                    batch.target = batch.target.conflict_alternative(conflicts);
                }
                Err(AttemptError::Retry(e)) => {
                    attempt += 1;
                    if started.elapsed() >= self.settings.retry_window {
                        tracing::warn!(path = %batch.target.path, records = batch.records, error = %e, "batch upload failed for the whole retry window");
                        return self.spill_or_drop(&batch, DropReason::UploadFailed).await;
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

    /// The end of the road for a batch that could not be written.
    pub async fn spill_or_drop(&self, batch: &Batch, reason: DropReason) -> Delivered {
        if let Some(spill) = &self.spill {
            let spill = spill.clone();
            let b = batch.clone();
            let res = tokio::task::spawn_blocking(move || {
                spill.write(&b.target, b.records, b.raw_bytes, &b.payload)
            })
            .await;
            match res {
                Ok(Ok(path)) => {
                    Counters::add(&self.counters.spilled, batch.records);
                    tracing::info!(file = %path.display(), records = batch.records, "batch spilled to disk");
                    return Delivered::Spilled;
                }
                Ok(Err(e)) => {
                    tracing::error!(error = %e, records = batch.records, "could not spill batch; dropping it");
                }
                Err(e) => {
                    tracing::error!(error = %e, records = batch.records, "spill task failed; dropping batch");
                }
            }
            self.counters
                .drop_records(DropReason::SpillFailed, batch.records);
            return Delivered::Dropped(DropReason::SpillFailed);
        }
        tracing::error!(
            records = batch.records,
            reason = reason.as_str(),
            "dropping batch"
        );
        self.counters.drop_records(reason, batch.records);
        Delivered::Dropped(reason)
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
