//! The batcher: the one task that takes records off the queue, cuts batches
//! (max records, max bytes or max age, whichever comes first), and dispatches
//! them to uploads (bounded in flight) or, in the rolling layout, to the one
//! writer of the current file. Batches are of lines: the serializer thread
//! makes lines of the records `log` handed over (a flush makes those it has
//! not reached yet, `serialize::drain_raw`). It also turns overflow records
//! into spill files (`serialize::to_lines`) and runs flush and shutdown.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use time::OffsetDateTime;
use tokio::sync::{mpsc, oneshot, watch, Semaphore};
use tokio::task::JoinSet;

use crate::config::Config;
use crate::format::{EncodeError, Format};
use crate::journal::JournalRef;
use crate::layout::{window_start, Layout, LayoutMode};
use crate::logger::Shared;
use crate::metrics::{Counters, DropReason};
use crate::queue::Entry;
use crate::serialize::to_lines;
use crate::uploader::{wait_true, Batch, Create, Delivered, Target, Uploader};
use md5::Digest as _;

/// Requests from the handles to the batcher.
#[derive(Debug)]
pub(crate) enum Control {
    /// Write everything accepted so far, then answer.
    Flush(oneshot::Sender<()>),
    /// Write everything left, then answer and exit. The handle has already
    /// closed the queue and armed the deadline (the `give_up` flag), so this
    /// ends in time even if the batcher is busy when it is sent.
    Shutdown(oneshot::Sender<()>),
}

enum RollingMsg {
    Batch(Batch),
    Sync(oneshot::Sender<()>),
}

pub(crate) struct Batcher {
    pub shared: Arc<Shared>,
    pub config: Config,
    pub layout: Layout,
    pub uploader: Arc<Uploader>,
    pub control: mpsc::UnboundedReceiver<Control>,
    /// File sequence numbers, shared with the rolling writer: spilled
    /// overflow batches and rolling files never get the same name.
    pub seq: Arc<AtomicU64>,
}

impl Batcher {
    pub async fn run(mut self) {
        let permits = Arc::new(Semaphore::new(self.config.max_concurrent_uploads));
        let mut uploads: JoinSet<()> = JoinSet::new();
        let rolling = match self.config.layout {
            LayoutMode::Rolling { window } => {
                let (tx, rx) = mpsc::channel(self.config.max_concurrent_uploads.max(1));
                let writer = RollingWriter {
                    uploader: self.uploader.clone(),
                    layout: self.layout.clone(),
                    window,
                    current: None,
                    seq: self.seq.clone(),
                    format: self.config.format,
                };
                uploads.spawn(writer.run(rx));
                Some(tx)
            }
            _ => None,
        };
        let mut pending: Vec<Entry> = Vec::new();
        let max_records = self.config.max_batch_records;
        let max_bytes = self.config.max_batch_bytes;
        let max_age = self.config.max_batch_age;
        let per_record = self.config.layout == LayoutMode::PerRecord;
        // a due batch took nothing: wait a little rather than spin
        let mut stalled = false;
        loop {
            while uploads.try_join_next().is_some() {}
            self.spill_overflow().await;
            // Records stay in the queue until a batch is due: full by records
            // or bytes, or its oldest record is `max_age` old.
            let (queued, queued_bytes, oldest) = self.shared.queue.lines_depth();
            let due = oldest.map(|t| t + max_age);
            let ready = queued > 0
                && (per_record
                    || queued >= max_records
                    || queued_bytes >= max_bytes
                    || due.is_some_and(|d| d <= Instant::now()));
            if ready && !stalled {
                if self.shared.queue.take(max_records, max_bytes, &mut pending) == 0 {
                    // cannot happen (`take` takes an oversized line alone);
                    // should it, the batcher still answers flush and shutdown
                    tracing::error!(queued, "a batch is due but no line could be taken");
                    stalled = true;
                    continue;
                }
                if per_record {
                    for e in pending.drain(..) {
                        self.dispatch(vec![e], &permits, &mut uploads, &rolling)
                            .await;
                    }
                } else {
                    let batch = std::mem::take(&mut pending);
                    self.dispatch(batch, &permits, &mut uploads, &rolling).await;
                }
                continue;
            }
            let due = if std::mem::take(&mut stalled) {
                Some(Instant::now() + Duration::from_millis(100))
            } else {
                due
            };
            let sleep = async {
                match due {
                    Some(d) => tokio::time::sleep_until(d.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = self.shared.queue.arrived.notified() => {}
                _ = sleep => {}
                msg = self.control.recv() => {
                    let (reply, exit) = match msg {
                        Some(Control::Flush(reply)) => (Some(reply), false),
                        Some(Control::Shutdown(reply)) => (Some(reply), true),
                        // every handle is gone: write what is left, then stop
                        None => {
                            self.shared.queue.close();
                            (None, true)
                        }
                    };
                    self.drain_all(&mut pending, &permits, &mut uploads, &rolling).await;
                    if let Some(tx) = &rolling {
                        let (sync_tx, sync_rx) = oneshot::channel();
                        if tx.send(RollingMsg::Sync(sync_tx)).await.is_ok() {
                            let _ = sync_rx.await;
                        }
                    }
                    if exit {
                        drop(rolling);
                        while uploads.join_next().await.is_some() {}
                        if let Some(r) = reply {
                            let _ = r.send(());
                        }
                        return;
                    }
                    if rolling.is_none() {
                        while uploads.join_next().await.is_some() {}
                    }
                    if let Some(r) = reply {
                        let _ = r.send(());
                    }
                }
            }
        }
    }

    /// Cuts everything queued now (and what `pending` holds) into batches.
    async fn drain_all(
        &mut self,
        pending: &mut Vec<Entry>,
        permits: &Arc<Semaphore>,
        uploads: &mut JoinSet<()>,
        rolling: &Option<mpsc::Sender<RollingMsg>>,
    ) {
        // records `log` handed over that the serializer has not reached yet
        crate::serialize::drain_raw(&self.shared).await;
        loop {
            self.spill_overflow().await;
            let bytes: usize = pending.iter().map(|e| e.bytes).sum();
            let room_records = self.config.max_batch_records.saturating_sub(pending.len());
            let room_bytes = self.config.max_batch_bytes.saturating_sub(bytes);
            self.shared.queue.take(room_records, room_bytes, pending);
            if pending.is_empty() {
                return;
            }
            if self.config.layout == LayoutMode::PerRecord {
                for e in pending.drain(..) {
                    self.dispatch(vec![e], permits, uploads, rolling).await;
                }
            } else {
                let batch = std::mem::take(pending);
                self.dispatch(batch, permits, uploads, rolling).await;
            }
        }
    }

    fn next_target(&mut self, entries: &[Entry]) -> Target {
        let seq = self.seq.fetch_add(1, Ordering::Relaxed) + 1;
        let now = OffsetDateTime::now_utc();
        // per record: create-new like every layout; a second record with
        // the same id moves to `{id}-conflict1.json` instead of replacing it
        let id = match self.config.layout {
            LayoutMode::PerRecord => entries[0].id.as_deref(),
            _ => None,
        };
        Target::new_file(self.layout.path(now, seq, id), self.config.format)
    }

    async fn dispatch(
        &mut self,
        entries: Vec<Entry>,
        permits: &Arc<Semaphore>,
        uploads: &mut JoinSet<()>,
        rolling: &Option<mpsc::Sender<RollingMsg>>,
    ) {
        // the queue hands out lines only (the serializer thread made them),
        // so a batch is ready to be named and encoded
        let Some(tx) = rolling else {
            return self.dispatch_upload(entries, permits, uploads).await;
        };
        // rolling: one writer appends batch after batch, in order
        if entries.is_empty() {
            return;
        }
        let records = entries.len() as u64;
        let target = self.next_target(&entries);
        Counters::add(&self.shared.counters.in_flight, records);
        let batch = build_batch(target, entries).await;
        if let Err(mpsc::error::SendError(RollingMsg::Batch(b))) =
            tx.send(RollingMsg::Batch(batch)).await
        {
            // the writer is gone (cannot happen before shutdown): keep the ledger whole
            self.uploader.spill_or_drop(&b, DropReason::Shutdown).await;
            self.shared
                .counters
                .in_flight
                .fetch_sub(records, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// A batch of the per-batch (or per-record) layout: its lines are
    /// encoded and written inside its upload task, so batches are encoded in
    /// parallel (up to `max_concurrent_uploads`), not one after another on
    /// the batcher. Named here (per record, from the id its line has).
    async fn dispatch_upload(
        &mut self,
        entries: Vec<Entry>,
        permits: &Arc<Semaphore>,
        uploads: &mut JoinSet<()>,
    ) {
        if entries.is_empty() {
            return;
        }
        let taken = entries.len() as u64;
        let target = self.next_target(&entries);
        Counters::add(&self.shared.counters.in_flight, taken);
        let Ok(permit) = permits.clone().acquire_owned().await else {
            return;
        };
        let shared = self.shared.clone();
        let uploader = self.uploader.clone();
        uploads.spawn(async move {
            uploader.deliver(build_batch(target, entries).await).await;
            shared
                .counters
                .in_flight
                .fetch_sub(taken, std::sync::atomic::Ordering::Relaxed);
            drop(permit);
        });
    }

    /// Writes records that overflowed the queue (spill policy) to the spill directory.
    async fn spill_overflow(&mut self) {
        let entries = self.shared.take_overflow();
        if entries.is_empty() {
            return;
        }
        let groups: Vec<Vec<Entry>> = if self.config.layout == LayoutMode::PerRecord {
            entries.into_iter().map(|e| vec![e]).collect()
        } else {
            batches(
                entries,
                self.config.max_batch_records,
                self.config.max_batch_bytes,
            )
        };
        for group in groups {
            let group = to_lines(&self.shared, group).await;
            if group.is_empty() {
                continue;
            }
            let target = self.next_target(&group);
            let batch = build_batch(target, group).await;
            self.uploader
                .spill_or_drop(&batch, DropReason::SpillFailed)
                .await;
        }
    }
}

/// `entries` cut, in order, into batches within `max_records` and
/// `max_bytes` (of their bounds); an entry larger than `max_bytes` alone.
fn batches(entries: Vec<Entry>, max_records: usize, max_bytes: usize) -> Vec<Vec<Entry>> {
    let mut out: Vec<Vec<Entry>> = Vec::new();
    let mut bytes = 0;
    for e in entries {
        let fits = out.last().is_some_and(|b| {
            !b.is_empty() && b.len() < max_records && bytes + e.bytes <= max_bytes
        });
        if !fits {
            out.push(Vec::new());
            bytes = 0;
        }
        bytes += e.bytes;
        if let Some(b) = out.last_mut() {
            b.push(e);
        }
    }
    out
}

/// One batch of `entries` (lines by now) for `target`: their lines
/// concatenated and encoded in the target's format.
async fn build_batch(target: Target, entries: Vec<Entry>) -> Batch {
    let records = entries.len() as u64;
    let (raw, journal) = concat(entries);
    let raw_bytes = raw.len() as u64;
    let (target, payload) = encode(target, raw).await;
    Batch {
        target,
        payload,
        records,
        raw_bytes,
        journal,
        inflight: None,
        secured: false,
    }
}

/// The entries' lines in one buffer, and where journaled ones sit in the
/// journal. Every entry is a line by now (the queue hands out lines only).
fn concat(entries: Vec<Entry>) -> (Vec<u8>, Vec<JournalRef>) {
    let mut buf = Vec::with_capacity(entries.iter().map(|e| e.bytes).sum());
    let mut journal = Vec::new();
    for e in entries {
        match e.as_line() {
            Some(line) => buf.extend_from_slice(line),
            None => tracing::error!("a record reached a batch unserialized (a bug); left out"),
        }
        journal.extend(e.journal);
    }
    (buf, journal)
}

/// Encodes a batch in its target's format on the blocking pool (Parquet
/// takes tens of ms per MiB; gzip a few). A batch that cannot be encoded (a
/// bug, not a property of the records: each is a JSON object by then) is
/// written as plain NDJSON under a `.ndjson` name instead, never dropped.
async fn encode(mut target: Target, raw: Vec<u8>) -> (Target, Bytes) {
    let format = target.format();
    if format == Format::Ndjson {
        return (target, Bytes::from(raw));
    }
    let raw = Bytes::from(raw);
    let input = raw.clone();
    let encoded = tokio::task::spawn_blocking(move || format.encode(&input))
        .await
        .unwrap_or_else(|e| Err(EncodeError(format!("the encoder panicked: {e}"))));
    match encoded {
        Ok(payload) => (target, payload),
        Err(e) => {
            tracing::error!(path = %target.path, error = %e, "writing the batch as plain NDJSON instead");
            if let Some(stem) = target.path.strip_suffix(format.extension()) {
                target.path = format!("{stem}{}", Format::Ndjson.extension());
            }
            target.format = Some(Format::Ndjson);
            (target, raw)
        }
    }
}

/// The one writer of the rolling layout's current file: appends each batch
/// at the file's end and flushes; opens a new file when the window rotates
/// or after a batch whose outcome left the file's tail uncertain.
struct RollingWriter {
    uploader: Arc<Uploader>,
    layout: Layout,
    window: Duration,
    current: Option<OpenFile>,
    seq: Arc<AtomicU64>,
    format: Format,
}

struct OpenFile {
    path: String,
    position: u64,
    window: OffsetDateTime,
    /// The writer that creates the file and appends every batch to it.
    writer: String,
    /// MD5 state over everything committed so far: each flush sets the
    /// whole file's MD5, which the verification then compares.
    md5: md5::Md5,
}

impl RollingWriter {
    async fn run(mut self, mut rx: mpsc::Receiver<RollingMsg>) {
        while let Some(msg) = rx.recv().await {
            match msg {
                RollingMsg::Batch(batch) => self.write(batch).await,
                RollingMsg::Sync(reply) => {
                    let _ = reply.send(());
                }
            }
        }
        self.close_current().await;
    }

    async fn write(&mut self, mut batch: Batch) {
        if batch.target.format() != self.format {
            // encoded otherwise (the fallback after an encoder failure): it
            // cannot join this file; it goes to the new file it was cut for
            let records = batch.records;
            self.uploader.deliver(batch).await;
            self.uploader
                .counters
                .in_flight
                .fetch_sub(records, std::sync::atomic::Ordering::Relaxed);
            return;
        }
        let now = OffsetDateTime::now_utc();
        let window = window_start(now, self.window);
        if self.current.as_ref().is_some_and(|f| f.window != window) {
            self.close_current().await;
        }
        let file = self.current.get_or_insert_with(|| {
            let seq = self.seq.fetch_add(1, Ordering::Relaxed) + 1;
            let fresh = Target::new_file(self.layout.path(now, seq, None), self.format);
            OpenFile {
                path: fresh.path,
                position: 0,
                window,
                writer: fresh.writer,
                md5: md5::Md5::new(),
            }
        });
        let mut md5_after = file.md5.clone();
        md5_after.update(&batch.payload);
        let target = Target {
            path: file.path.clone(),
            position: file.position,
            create: (file.position == 0).then_some(Create::New),
            close: false,
            writer: file.writer.clone(),
            content_md5: Some(b64_md5(md5_after.clone())),
            format: Some(self.format),
        };
        batch.target = target.clone();
        let len = batch.payload.len() as u64;
        let records = batch.records;
        let started = Instant::now();
        let outcome = self.uploader.deliver(batch).await;
        self.uploader
            .counters
            .in_flight
            .fetch_sub(records, std::sync::atomic::Ordering::Relaxed);
        match outcome {
            Delivered::Written(t) if t == target => {
                if let Some(f) = self.current.as_mut() {
                    f.position += len;
                    f.md5 = md5_after;
                }
                tracing::trace!(
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "rolling append"
                );
            }
            _ => {
                // written elsewhere, spilled or dropped: this file's tail is
                // not ours to extend any more
                self.current = None;
            }
        }
    }

    /// Closes the current file (its data is already committed and verified;
    /// the close only raises the service's `FileClosed` event). Gives up at
    /// shutdown's deadline like every other write.
    async fn close_current(&mut self) {
        let Some(f) = self.current.take() else { return };
        if f.position == 0 {
            return;
        }
        let close = async {
            let writer = adls_rest::WriterId::from_hex(&f.writer)?;
            let file = self.uploader.fs.file(&f.path)?.with_writer(writer);
            file.flush(
                f.position,
                &adls_rest::FlushOptions {
                    close: true,
                    content_type: Some(self.format.content_type().to_string()),
                    content_encoding: self.format.content_encoding().map(str::to_string),
                    content_md5: Some(b64_md5(f.md5.clone())),
                },
            )
            .await
        };
        let mut give_up = self.uploader.give_up.clone();
        let result = tokio::select! {
            r = close => r,
            _ = wait_true(&mut give_up) => {
                tracing::info!(path = %f.path, "shutdown's deadline passed before the rolling file was closed (its data is committed)");
                return;
            }
        };
        match result {
            Ok(_) => Counters::add(&self.uploader.counters.files, 1),
            Err(e) => {
                tracing::warn!(path = %f.path, error = %e, "could not close rolling file (its data is committed)")
            }
        }
    }
}

/// The base64 MD5 a hasher has so far.
fn b64_md5(h: md5::Md5) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(h.finalize())
}

/// Runs until `stop` becomes true: replays spill files oldest first whenever
/// storage looks healthy (a live upload succeeded) and every `interval`.
pub(crate) async fn replayer(
    uploader: Arc<Uploader>,
    interval: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let Some(spill) = uploader.spill.clone() else {
        return;
    };
    loop {
        use futures_util::FutureExt as _;
        let pass = std::panic::AssertUnwindSafe(crate::replay::replay_pass(&uploader, &spill));
        if pass.catch_unwind().await.is_err() {
            // a bug; the files stay where they are for the next pass
            tracing::error!("a replay pass panicked; trying again later");
        }
        tokio::select! {
            _ = uploader.healthy.notified() => {}
            _ = tokio::time::sleep(interval) => {}
            _ = wait_true(&mut stop) => return,
        }
    }
}
