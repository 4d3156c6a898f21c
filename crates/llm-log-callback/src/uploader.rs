//! Delivering batches: `Uploader::deliver` retries whole batches (one
//! verified attempt each, see `attempt.rs`) with backoff for the configured
//! window, moves a batch whose file holds someone else's data to a new name,
//! dead-letters what storage refuses for good, and otherwise spills or drops;
//! an attempt abandoned while its commit was under way is kept for
//! reconciliation (spilled) or counted as unknown. A panic is caught.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use adls_rest::FileSystem;
use bytes::Bytes;
use tokio::sync::watch;

use crate::attempt::{write_once, AttemptError, Progress, UploadSettings};
pub use crate::attempt::{Create, Target, WRITER_METADATA};
use crate::journal::{Journal, JournalRef};
use crate::metrics::{Counters, DropReason};
use crate::spill::SpillDir;

/// How many times one batch moves to a new name before it is dead-lettered.
pub(crate) const MAX_CONFLICTS: u32 = 3;

/// A batch on its way to storage.
#[derive(Debug, Clone)]
pub(crate) struct Batch {
    pub target: Target,
    /// The bytes to write, encoded in the target's format.
    pub payload: Bytes,
    pub records: u64,
    pub raw_bytes: u64,
    /// Where its records sit in the journal (those `ingest` took).
    pub journal: Vec<JournalRef>,
    /// Its copy in the spill directory's `inflight/`, once secured.
    pub inflight: Option<PathBuf>,
    /// Its journaled records are marked secured in the journal.
    pub secured: bool,
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
    /// The journal of `ingest` (journal mode; then `spill` is set too).
    pub journal: Option<Arc<Journal>>,
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
    pub async fn deliver(&self, mut batch: Batch) -> Delivered {
        use futures_util::FutureExt as _;
        self.secure(&mut batch).await;
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

    /// Journal mode: before its upload starts, a batch of journaled records
    /// is made durable in the spill directory's `inflight/` (with its target),
    /// and its records are marked secured in the journal, which may then let
    /// them go. A crash from here on leaves the in-flight file, which the next
    /// start replays (and reconciles, should the upload have landed), so the
    /// journal never queues them again: the file's header names the journal
    /// and the records' positions, and a start marks them secured before it
    /// queues the journal's pending records (a crash between the two writes
    /// sent them twice before). Should the journal refuse the mark, the copy
    /// stays (its header keeps the records from being sent twice) and the
    /// mark is tried again at the batch's end; should the copy fail, the
    /// records stay unsecured in the journal. Either way the upload goes on.
    async fn secure(&self, batch: &mut Batch) {
        let (Some(spill), Some(journal)) = (&self.spill, &self.journal) else {
            return;
        };
        if batch.journal.is_empty() {
            return;
        }
        let (spill, journal, b) = (spill.clone(), journal.clone(), batch.clone());
        let res = tokio::task::spawn_blocking(move || {
            let path = spill.write_inflight(
                &b.target,
                b.records,
                b.raw_bytes,
                &b.payload,
                journal_records(Some(&journal), &b.journal),
            )?;
            // a failure may have marked some of them already: the copy is
            // kept whatever happens (removing it could leave records marked
            // and held nowhere)
            let secured = journal.secure(&b.journal).map_err(|e| {
                tracing::error!(error = %e, records = b.records, "could not mark a journaled batch as secured; its in-flight copy holds it, and the mark is tried again at its end");
            });
            Ok::<_, std::io::Error>((path, secured.is_ok()))
        })
        .await;
        match res {
            Ok(Ok((path, secured))) => {
                batch.inflight = Some(path);
                batch.secured = secured;
            }
            Ok(Err(e)) => {
                tracing::error!(error = %e, records = batch.records, "could not secure a journaled batch before its upload; its records stay in the journal")
            }
            Err(e) => tracing::error!(error = %e, "securing task failed"),
        }
    }

    /// A batch reached a durable end (written, spilled, dead-lettered): its
    /// journaled records are marked secured now if they were not before its
    /// upload (the disk refused then, or it never went through `deliver`),
    /// so a restart does not queue them again. Whether they are marked.
    async fn secure_late(&self, batch: &Batch) -> bool {
        let Some(journal) = self.journal.clone() else {
            return true;
        };
        if batch.secured || batch.journal.is_empty() {
            return true;
        }
        let refs = batch.journal.clone();
        match tokio::task::spawn_blocking(move || journal.secure(&refs)).await {
            Ok(Ok(())) => true,
            Ok(Err(e)) => {
                tracing::error!(error = %e, records = batch.records, "could not mark journaled records as secured; a spill file's header still names them");
                false
            }
            Err(e) => {
                tracing::error!(error = %e, "securing task failed");
                false
            }
        }
    }

    /// A batch written or dead-lettered: its journaled records marked
    /// secured, and its in-flight copy removed once they are.
    async fn settle_journal(&self, batch: &Batch) {
        if batch.inflight.is_some() {
            self.drop_inflight(batch).await;
        } else {
            self.secure_late(batch).await;
        }
    }

    /// Done with a batch's in-flight copy (it is written, or kept elsewhere),
    /// once its journaled records are marked secured: until then the copy
    /// is what keeps a restart from sending them again (its start replays
    /// the copy, and verification finds it written).
    async fn drop_inflight(&self, batch: &Batch) {
        let (Some(spill), Some(path)) = (self.spill.clone(), batch.inflight.clone()) else {
            return;
        };
        if !self.secure_late(batch).await {
            return;
        }
        let res = tokio::task::spawn_blocking(move || spill.remove_inflight(&path)).await;
        if let Ok(Err(e)) = res {
            // the next start replays it, and verification finds it written
            tracing::warn!(error = %e, "could not remove an in-flight batch file");
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
            let mut progress = Progress::Staging;
            let result = tokio::select! {
                r = write_once(&self.fs, &batch.target, &batch.payload, &self.settings, &mut progress) => r,
                _ = wait_true(&mut give_up) => {
                    // abandoned mid-flight: if the commit was under way, nobody knows
                    let maybe = maybe_committed || progress != Progress::Staging;
                    return self.end_unwritten(&batch, DropReason::Shutdown, maybe).await;
                }
            };
            if let Err(AttemptError::Retry(e)) = &result {
                // committed but not verified (the check's own request failed),
                // or a commit whose answer was lost
                maybe_committed |= progress == Progress::Committed
                    || (progress == Progress::Committing && e.may_have_been_applied());
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
                    self.settle_journal(&batch).await;
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
            let journal = self.journal.clone();
            let res = tokio::task::spawn_blocking(move || {
                spill.write_dead_letter(
                    &b.target,
                    b.records,
                    b.raw_bytes,
                    &b.payload,
                    &reason,
                    journal_records(journal.as_deref(), &b.journal),
                )
            })
            .await;
            match res {
                Ok(Ok(path)) => {
                    Counters::add(&self.counters.dead_lettered, batch.records);
                    tracing::info!(file = %path.display(), "batch kept in the dead-letter directory");
                    self.settle_journal(batch).await;
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
        let journal = self.journal.clone();
        let res = tokio::task::spawn_blocking(move || match &b.inflight {
            // already durable: a rename
            Some(inflight) => spill.promote(inflight),
            None => spill.write(
                &b.target,
                b.records,
                b.raw_bytes,
                &b.payload,
                journal_records(journal.as_deref(), &b.journal),
            ),
        })
        .await;
        match res {
            Ok(Ok(path)) => {
                Counters::add(&self.counters.spilled, batch.records);
                tracing::info!(file = %path.display(), records = batch.records, "batch spilled to disk");
                // a promoted copy's header names its records if this fails
                self.secure_late(batch).await;
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

/// The journal's identity and a batch's positions in it, for the headers of
/// its spill files (none without a journal, or for a batch not journaled).
fn journal_records<'a>(
    journal: Option<&'a Journal>,
    refs: &'a [JournalRef],
) -> crate::spill::JournalRecords<'a> {
    journal.filter(|_| !refs.is_empty()).map(|j| (j.id(), refs))
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
