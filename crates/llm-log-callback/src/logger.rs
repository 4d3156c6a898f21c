//! [`Logger`]: the handle a gateway holds. `log` is a hand-off: it bounds
//! the record's size, queues the record as it is and returns; the serializer
//! thread redacts and serializes it (`serialize.rs`), the batcher writes batches through
//! one reused `adls-rest` client.

use std::borrow::Cow;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use adls_rest::Client;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot, watch};

use crate::attempt::UploadSettings;
use crate::batcher::{replayer, Batcher, Control};
use crate::config::{Config, OverflowPolicy};
use crate::error::LogError;
use crate::ingest::Dedup;
use crate::journal::{Journal, Recovered};
use crate::layout::{Layout, LayoutMode};
use crate::metrics::{Counters, DropReason, Metrics};
use crate::queue::{Entry, Payload, PushError, Queue};
use crate::record::{Field, LogRecord};
use crate::redact::{ContentPolicy, Redaction};
use crate::scan;
use crate::serialize::{self, LineError};
use crate::spill::SpillDir;
use crate::uploader::Uploader;

/// State shared by the handles and the background tasks.
pub(crate) struct Shared {
    pub queue: Queue,
    pub counters: Arc<Counters>,
    /// The spill policy's records the queue had no room for, as lines, and
    /// the memory they hold (each line and its slot), at most
    /// `queue_max_bytes`; the batcher spills them.
    overflow: Mutex<(Vec<Entry>, usize)>,
    overflow_max_bytes: usize,
    policy: OverflowPolicy,
    pub redaction: Redaction,
    /// A line may be at most this long (`max_batch_bytes`).
    pub max_record_bytes: usize,
    /// Whether entries keep their record's id (the layout names files by id).
    pub keep_ids: bool,
    /// Ids taken by `ingest` recently (its deduplication window).
    pub dedup: Mutex<Dedup>,
    /// Where `ingest` makes records durable before it returns.
    pub journal: Option<Arc<Journal>>,
    /// Held while records are serialized (by the serializer thread or a
    /// flush), so they reach the lines in the order they were taken; holds
    /// the buffer the serializer swaps with the queue's records.
    pub serializing: Mutex<std::collections::VecDeque<Entry>>,
    /// The spill directory (for its size in the metrics).
    spill: Option<Arc<SpillDir>>,
    client: Client,
    /// Set when shutdown's deadline passes: uploads stop retrying and spill
    /// or drop. Dropped with the last handle and the batcher, which also
    /// stops the replayer.
    give_up: watch::Sender<bool>,
}

impl Shared {
    fn spill_bytes(&self) -> u64 {
        self.spill.as_ref().map_or(0, |s| s.used_bytes())
    }

    /// What the journal held at start: the ids of all its records seed the
    /// deduplication window (at the time they were journaled), and the
    /// records no batch secured before the restart are queued again.
    fn recover(&self, recovered: Vec<Recovered>) {
        let now = Instant::now();
        let now_ms =
            (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000).max(0) as u64;
        let mut entries = Vec::new();
        {
            let mut dedup = self.dedup.lock().unwrap_or_else(|p| p.into_inner());
            for r in recovered {
                let text = std::str::from_utf8(&r.line).unwrap_or("");
                let id = scan::scan(text.trim_end(), &Redaction::off())
                    .ok()
                    .and_then(|s| s.id.flatten())
                    .map(|id| id.into_owned());
                if let Some(id) = &id {
                    let age = Duration::from_millis(now_ms.saturating_sub(r.unix_ms));
                    dedup.insert(id.clone(), now.checked_sub(age).unwrap_or(now));
                }
                if r.pending {
                    let id = if self.keep_ids { id } else { None };
                    entries.push(Entry::line(r.line, id, now, Some(r.at)));
                }
            }
        }
        let n = entries.len() as u64;
        if n > 0 {
            tracing::info!(records = n, "records from the journal queued again");
            // the queue is new and open: it takes them (were it closed, they
            // would stay pending in the journal, not counted here)
            if self.queue.push_all_unbounded(entries).is_ok() {
                Counters::add(&self.counters.accepted, n);
                Counters::add(&self.counters.journal_recovered, n);
            }
        }
    }

    pub fn take_overflow(&self) -> Vec<Entry> {
        let mut o = self.overflow.lock().unwrap_or_else(|p| p.into_inner());
        o.1 = 0;
        std::mem::take(&mut o.0)
    }
}

/// Journal mode, at start: records the journal still holds as pending but a
/// spill, in-flight or dead-letter file holds too (a crash came between
/// writing that file and marking them in the journal) are marked secured
/// now and not queued again: the file's replay sends them, to the target it
/// names, reconciled with what may already be there.
fn secure_spilled(
    journal: &Journal,
    spill: &SpillDir,
    mut recovered: Vec<Recovered>,
) -> Vec<Recovered> {
    let in_files: std::collections::HashSet<(u64, u64)> = match spill.journal_refs(journal.id()) {
        Ok(refs) => refs.into_iter().map(|r| (r.seg, r.index)).collect(),
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the spill directory's headers; the journal queues all its pending records");
            return recovered;
        }
    };
    let mut secured = Vec::new();
    for r in recovered.iter_mut() {
        if r.pending && in_files.contains(&(r.at.seg, r.at.index)) {
            r.pending = false;
            secured.push(r.at);
        }
    }
    if !secured.is_empty() {
        tracing::info!(
            records = secured.len(),
            "journaled records already held by spill files; the replay sends them"
        );
        if let Err(e) = journal.secure(&secured) {
            // the spill files still hold them, and this run does not queue them
            tracing::warn!(error = %e, "could not mark journaled records held by spill files");
        }
    }
    recovered
}

/// What `flush` and `shutdown` report: the ledger at that moment.
///
/// ```no_run
/// # async fn demo(logger: llm_log_callback::Logger) {
/// let report = logger.flush().await;
/// if !report.complete {
///     eprintln!("{} records still in flight after {} ms", report.metrics.in_flight, report.elapsed_ms);
/// }
/// // It serializes, e.g. as one JSON line for the process's own log.
/// println!("{}", serde_json::to_string(&report).unwrap_or_default());
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Report {
    /// True when every accepted record is written, spilled or dropped (none in flight).
    pub complete: bool,
    /// How long the call took.
    pub elapsed_ms: u64,
    /// The ledger and metrics.
    pub metrics: Metrics,
}

/// The logging handle: cheap to clone, `Send + Sync`, usable from any thread.
///
/// Dropping the last clone without [`Logger::shutdown`] stops the background
/// tasks too: the batcher writes what is queued (within the retry window,
/// spilling or dropping the rest), then it and the replayer end.
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use std::time::Duration;
/// use llm_log_callback::{client_from_env, Config, LogRecord, Logger};
///
/// let logger = Logger::start(client_from_env()?, Config::from_env()?).await?;
///
/// // In request handlers (clone the handle into each): never blocks, never awaits.
/// let handler_logger = logger.clone();
/// let record = LogRecord {
///     model: "gpt-4o".to_string().into(),
///     prompt_tokens: 12.into(),
///     ..LogRecord::default()
/// };
/// if let Err(e) = handler_logger.log_failure(record, "upstream timed out") {
///     eprintln!("request log not queued: {e}"); // refused or dropped, and counted
/// }
///
/// // Health: the ledger at any moment.
/// let m = logger.metrics();
/// println!("{} accepted, {} written, {} queued", m.accepted, m.written, m.queue_records);
///
/// // At exit: write everything, spilling what cannot be written within the deadline.
/// let report = logger.shutdown(Duration::from_secs(30)).await;
/// assert_eq!(report.metrics.accepted, report.metrics.settled());
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Logger {
    pub(crate) shared: Arc<Shared>,
    /// Held only by the handles: when the last one goes, the batcher's
    /// channel closes and it winds down (the tasks hold `shared`, not this).
    control: Arc<mpsc::UnboundedSender<Control>>,
}

impl std::fmt::Debug for Logger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Logger")
            .field("client", &self.shared.client)
            .finish_non_exhaustive()
    }
}

impl Logger {
    /// Starts a logger writing through `client` (reuse one client per
    /// destination for the life of the process). Creates the filesystem if
    /// configured, opens the spill directory and replays what an earlier run
    /// left there, and spawns the background tasks on the current Tokio
    /// runtime (multi-thread or current-thread).
    pub async fn start(client: Client, config: Config) -> Result<Logger, LogError> {
        config.validate()?;
        // Always a random part, so replicas sharing `LLM_LOG_INSTANCE` and a
        // restarted process never write the same path: one writer per path.
        let instance = format!("{}-{:08x}", config.instance, fastrand::u32(..));
        let layout = Layout::new(
            config.template(),
            &config.prefix,
            &instance,
            config.format,
            &config.layout,
        )
        .map_err(|m| LogError::config("path_template", m))?;
        let fs = client
            .filesystem(&config.filesystem)
            .map_err(|e| LogError::config("filesystem", e.to_string()))?;
        if config.create_filesystem {
            match fs.create_if_not_exists().await {
                Ok(_) => {}
                // storage down for now: start anyway (records wait in the
                // queue, the journal or the spill directory; a missing
                // filesystem is created by the first upload that meets it)
                Err(e) if e.is_retryable() => {
                    tracing::warn!(error = %e, "cannot reach storage at start; starting anyway")
                }
                Err(e) => return Err(e.into()),
            }
        }
        check_can_read(&fs).await?;
        // journal mode needs a spill directory: by default inside the journal's
        let spill_config = config.spill.clone().or_else(|| {
            config.journal.as_ref().map(|j| crate::config::SpillConfig {
                dir: j.dir.join("spill"),
                max_bytes: j.max_bytes,
            })
        });
        let journal = match &config.journal {
            Some(j) => {
                let (dir, max, window) = (j.dir.clone(), j.max_bytes, config.dedup_window);
                let opened = tokio::task::spawn_blocking(move || Journal::open(&dir, max, window))
                    .await
                    .map_err(|e| LogError::config("journal.dir", e.to_string()))?
                    .map_err(|e| {
                        LogError::config(
                            "journal.dir",
                            format!("cannot open {}: {e}", j.dir.display()),
                        )
                    })?;
                Some((Arc::new(opened.0), opened.1))
            }
            None => None,
        };
        let spill = match &spill_config {
            Some(s) => {
                let dir = s.dir.clone();
                let max = s.max_bytes;
                let inst = layout.instance().to_string();
                let opened = tokio::task::spawn_blocking(move || SpillDir::open(&dir, max, &inst))
                    .await
                    .map_err(|e| LogError::config("spill.dir", e.to_string()))?
                    .map_err(|e| {
                        LogError::config(
                            "spill.dir",
                            format!("cannot open {}: {e}", s.dir.display()),
                        )
                    })?;
                Some(Arc::new(opened))
            }
            None => None,
        };
        let counters = Arc::new(Counters::default());
        let (control_tx, control_rx) = mpsc::unbounded_channel();
        let (give_up_tx, give_up_rx) = watch::channel(false);
        let shared = Arc::new(Shared {
            queue: Queue::new(
                config.queue_max_records,
                config.queue_max_bytes,
                if config.layout == LayoutMode::PerRecord {
                    1
                } else {
                    config.max_batch_records
                },
                config.max_batch_bytes,
            ),
            counters: counters.clone(),
            overflow: Mutex::new((Vec::new(), 0)),
            overflow_max_bytes: config.queue_max_bytes,
            policy: config.overflow,
            redaction: config.redaction.clone(),
            max_record_bytes: config.max_batch_bytes,
            keep_ids: config.layout == LayoutMode::PerRecord,
            dedup: Mutex::new(Dedup::new(config.dedup_window, config.dedup_max_ids)),
            journal: journal.as_ref().map(|(j, _)| j.clone()),
            serializing: Mutex::new(std::collections::VecDeque::new()),
            spill: spill.clone(),
            client: client.clone(),
            give_up: give_up_tx,
        });
        if let Some((journal, mut recovered)) = journal {
            if let Some(spill) = &spill {
                let (journal, spill) = (journal.clone(), spill.clone());
                recovered = tokio::task::spawn_blocking(move || {
                    secure_spilled(&journal, &spill, recovered)
                })
                .await
                .map_err(|e| LogError::config("journal.dir", e.to_string()))?;
            }
            shared.recover(recovered);
        }
        serialize::start_serializer(&shared);
        let uploader = Arc::new(Uploader {
            fs,
            settings: UploadSettings {
                append_chunk: config.append_chunk_bytes,
                checksums: config.checksums,
                unverified: config.unverified_for_benchmarks,
                retry_window: config.batch_retry_window,
                initial_backoff: Duration::from_millis(250),
                max_backoff: Duration::from_secs(10),
            },
            counters,
            spill,
            journal: shared.journal.clone(),
            give_up: give_up_rx.clone(),
            healthy: Arc::new(tokio::sync::Notify::new()),
        });
        if uploader.spill.is_some() {
            tokio::spawn(replayer(
                uploader.clone(),
                config.replay_interval,
                give_up_rx,
            ));
        }
        let batcher = Batcher {
            shared: shared.clone(),
            config,
            layout,
            uploader,
            control: control_rx,
            seq: Arc::new(std::sync::atomic::AtomicU64::new(0)),
        };
        tokio::spawn(batcher.run());
        Ok(Logger {
            shared,
            control: Arc::new(control_tx),
        })
    }

    /// Queues a record. Never blocks, never awaits and, in the steady state,
    /// never allocates: the caller's thread takes the record, bounds the
    /// size of the line it will become (one pass over it) and pushes it
    /// under a short lock. Redaction, the `id` of a record without one and
    /// serialization happen on the logger's serializer thread, within a few
    /// milliseconds (on a flush's blocking-pool thread for what it has not
    /// reached). The caller's thread makes no system call in the steady
    /// state: it wakes that thread only after a second without records, or
    /// when a burst of 1 024 waits.
    ///
    /// A record large enough that its line might exceed `max_batch_bytes`
    /// (its bound is above a sixth of it, 1.3 MiB by default) is the
    /// exception: it is redacted and serialized here, so one that really is
    /// too large is refused with [`LogError::RecordTooLarge`] now rather than
    /// dropped later (see `serialize.rs` for the bound).
    ///
    /// `Err(QueueFull)` means the record was accepted and dropped (counted in
    /// `dropped.queue_full`); other errors mean it was refused (`rejected`).
    pub fn log(&self, record: LogRecord) -> Result<(), LogError> {
        let entry = self.hand_off(record).map_err(|e| self.reject(e))?;
        self.push(entry)
    }

    /// Queues a JSON object (e.g. LiteLLM's `standard_logging_object`).
    pub fn log_value(&self, value: Value) -> Result<(), LogError> {
        match LogRecord::from_value(value) {
            Ok(r) => self.log(r),
            Err(e) => Err(self.reject(LogError::InvalidRecord(e.to_string()))),
        }
    }

    /// Queues a record that arrives as JSON text (one object), e.g. what
    /// LiteLLM posts. It is checked as [`LogRecord`] would check it, in one
    /// pass that builds nothing; when redaction changes none of its strings
    /// (and the content policy is `keep`), the text is stored as it came, on
    /// one line (raw line breaks between tokens become spaces), with an `id`
    /// put first if it had none. Otherwise it goes the way of [`Logger::log`].
    pub fn log_json(&self, json: &str) -> Result<(), LogError> {
        let (entry, _) = self.json_entry(json, false).map_err(|e| self.reject(e))?;
        self.push(entry)
    }

    /// The queue entry of a record that arrives as JSON text (see
    /// [`Logger::log_json`]), and, when `want_id`, the id the record itself
    /// carried (not one generated for it). Refusals are counted by the caller.
    pub(crate) fn json_entry(
        &self,
        json: &str,
        want_id: bool,
    ) -> Result<(Entry, Option<String>), LogError> {
        if self.shared.queue.is_closed() {
            return Err(LogError::ShutDown);
        }
        // a text the scan refuses goes to serde_json below, whose error
        // says what is wrong (and which has the last word, should the two
        // ever disagree)
        if self.shared.redaction.content == ContentPolicy::Keep {
            if let Ok(s) = scan::scan(json, &self.shared.redaction) {
                // an id that is null or empty is replaced, as `log` does
                let kept = !s.rewrite
                    && !matches!(&s.id, Some(None))
                    && !matches!(&s.id, Some(Some(id)) if id.is_empty());
                if kept {
                    let declared = s.id.flatten();
                    let own = if want_id {
                        declared.as_deref().map(str::to_string)
                    } else {
                        None
                    };
                    return Ok((self.raw_entry(json, declared, s.breaks)?, own));
                }
            }
        }
        let record =
            LogRecord::from_json(json).map_err(|e| LogError::InvalidRecord(e.to_string()))?;
        let own = if want_id {
            record.id.get().filter(|id| !id.is_empty()).cloned()
        } else {
            None
        };
        Ok((self.prepare(record)?, own))
    }

    /// The queue entry of a scanned JSON object, its text kept.
    /// `breaks`: the scan saw a raw line break between tokens.
    fn raw_entry(
        &self,
        json: &str,
        id: Option<Cow<'_, str>>,
        breaks: bool,
    ) -> Result<Entry, LogError> {
        let text = json.trim();
        let mut line = Vec::with_capacity(text.len() + if id.is_none() { 48 } else { 1 });
        // a copy, then the line breaks (outside strings: a scanned JSON
        // string holds none raw) made spaces in place: both loops the
        // compiler vectorizes, unlike a byte-by-byte `extend`
        let one_line = |line: &mut Vec<u8>, s: &str| {
            let start = line.len();
            line.extend_from_slice(s.as_bytes());
            if !breaks {
                return;
            }
            for b in &mut line[start..] {
                if *b == b'\n' || *b == b'\r' {
                    *b = b' ';
                }
            }
        };
        let id = match id {
            Some(id) => {
                one_line(&mut line, text);
                id
            }
            None => {
                // the scan saw an object, so the text starts with `{`
                let id = uuid::Uuid::new_v4().to_string();
                let rest = text[1..].trim_start();
                line.extend_from_slice(b"{\"id\":\"");
                line.extend_from_slice(id.as_bytes());
                line.push(b'"');
                if !rest.starts_with('}') {
                    line.push(b',');
                }
                one_line(&mut line, rest);
                Cow::Owned(id)
            }
        };
        self.entry(line, self.shared.keep_ids.then(|| id.into_owned()))
    }

    /// Queues a successful call's record (sets `status` to `success` if unset).
    pub fn log_success(&self, mut record: LogRecord) -> Result<(), LogError> {
        if record.status.get().is_none() {
            record.status = Field::Value("success".into());
        }
        self.log(record)
    }

    /// Queues a failed call's record (sets `status` to `failure` and
    /// `error_str` if unset). Redaction applies exactly as on success.
    pub fn log_failure(&self, mut record: LogRecord, error: &str) -> Result<(), LogError> {
        record.status = Field::Value("failure".into());
        if record.error_str.get().is_none() {
            record.error_str = Field::Value(error.to_string());
        }
        self.log(record)
    }

    /// Like [`Logger::log`], but when the queue is full waits for room
    /// instead of applying the overflow policy.
    pub async fn log_async(&self, record: LogRecord) -> Result<(), LogError> {
        let mut entry = self.hand_off(record).map_err(|e| self.reject(e))?;
        loop {
            let room = self.shared.queue.room.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            match self.shared.queue.try_push(entry) {
                Ok(()) => {
                    Counters::add(&self.shared.counters.accepted, 1);
                    return Ok(());
                }
                Err(PushError::Closed) => return Err(self.reject(LogError::ShutDown)),
                Err(PushError::Full(e)) => {
                    entry = e;
                    self.shared.queue.arrived.notify_one();
                    room.await;
                }
            }
        }
    }

    /// Counts a refused record and hands its error back.
    fn reject(&self, e: LogError) -> LogError {
        Counters::add(&self.shared.counters.rejected, 1);
        e
    }

    /// A queue entry of one serialized record: the line gets its newline,
    /// and a record larger than a batch may be is refused.
    fn entry(&self, mut line: Vec<u8>, id: Option<String>) -> Result<Entry, LogError> {
        line.push(b'\n');
        if line.len() > self.shared.max_record_bytes {
            return Err(LogError::RecordTooLarge {
                bytes: line.len(),
                limit: self.shared.max_record_bytes,
            });
        }
        Ok(Entry::line(line, id, Instant::now(), None))
    }

    /// The queue entry of a record for `log`: the record itself, counted at
    /// the bound of its line; or, when that line might exceed the record
    /// limit, the line made here (see [`Logger::log`]). Refusals are counted by the
    /// caller.
    fn hand_off(&self, record: LogRecord) -> Result<Entry, LogError> {
        if self.shared.queue.is_closed() {
            return Err(LogError::ShutDown);
        }
        let bytes = serialize::line_bound(&record, &self.shared.redaction);
        if bytes > self.shared.max_record_bytes / serialize::ESCAPE_FACTOR
            || !self.shared.queue.has_serializer()
        {
            // its line may exceed the limit: find out here, so the caller hears it
            return self.prepare(record);
        }
        Ok(Entry {
            payload: Payload::Record(record),
            bytes,
            id: None,
            accepted_at: Instant::now(),
            journal: None,
        })
    }

    /// The queue entry of a record, redacted and serialized on this thread
    /// (the text paths, and `log`'s records that may be too large).
    /// Refusals are counted by the caller.
    fn prepare(&self, record: LogRecord) -> Result<Entry, LogError> {
        if self.shared.queue.is_closed() {
            return Err(LogError::ShutDown);
        }
        let (line, id) = serialize::line(
            record,
            &self.shared.redaction,
            self.shared.max_record_bytes,
            self.shared.keep_ids,
            2048,
        )
        .map_err(|e| match e {
            LineError::TooLarge { bytes, limit } => LogError::RecordTooLarge { bytes, limit },
            LineError::Serialize(why) => LogError::InvalidRecord(why),
        })?;
        Ok(Entry::line(line, id, Instant::now(), None))
    }

    /// The spill policy's way for an entry the queue has no room for: into
    /// the overflow, which the batcher spills, or dropped as `spill_failed`
    /// when the overflow is full too (it holds at most `queue_max_bytes`,
    /// each entry counted at its line and its slot). A record becomes its line here (the
    /// overflow may wait while the batcher waits for an upload slot, and a
    /// record takes several times its line's size in memory); this is the
    /// overloaded path, where the caller's thread pays for serializing.
    fn overflow(&self, e: Entry) -> Result<(), LogError> {
        let c = &self.shared.counters;
        let e = match e.payload {
            Payload::Record(record) => {
                let mut line = self.prepare(record).map_err(|err| self.reject(err))?;
                line.accepted_at = e.accepted_at;
                line
            }
            Payload::Line(_) => e,
        };
        let mut o = self
            .shared
            .overflow
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        // checked under the overflow's lock: the batcher's last look at the
        // overflow (after the queue closed) takes the same lock, so an
        // entry put here with the queue open is always seen by it
        if self.shared.queue.is_closed() {
            drop(o);
            return Err(self.reject(LogError::ShutDown));
        }
        // counted before the entry can be seen, so it is never settled
        // before it is accepted
        Counters::add(&c.accepted, 1);
        // its line and its slot: many small lines cost more in slots than
        // in text
        let held = e.bytes + std::mem::size_of::<Entry>();
        // an empty overflow takes any line (as the queue does), so a line
        // near `max_batch_bytes` is not refused for its slot's size
        if o.0.is_empty() || o.1 + held <= self.shared.overflow_max_bytes {
            o.1 += held;
            o.0.push(e);
            drop(o);
            self.shared.queue.arrived.notify_one();
            return Ok(());
        }
        drop(o);
        c.drop_records(DropReason::SpillFailed, 1);
        Err(LogError::QueueFull)
    }

    fn push(&self, entry: Entry) -> Result<(), LogError> {
        let c = &self.shared.counters;
        match self.shared.queue.try_push(entry) {
            Ok(()) => {
                Counters::add(&c.accepted, 1);
                Ok(())
            }
            Err(PushError::Closed) => Err(self.reject(LogError::ShutDown)),
            Err(PushError::Full(e)) => {
                if self.shared.policy == OverflowPolicy::Spill {
                    return self.overflow(e);
                }
                Counters::add(&c.accepted, 1);
                c.drop_records(DropReason::QueueFull, 1);
                Err(LogError::QueueFull)
            }
        }
    }

    /// Writes everything accepted so far (waits for the uploads), then reports.
    pub async fn flush(&self) -> Report {
        let t0 = Instant::now();
        let (tx, rx) = oneshot::channel();
        if self.control.send(Control::Flush(tx)).is_ok() {
            let _ = rx.await;
        }
        self.report(t0)
    }

    /// Stops accepting records and writes everything; after `deadline`,
    /// whatever is still unwritten is spilled (or dropped with reason
    /// `shutdown` when spilling is off). Returns the final ledger.
    pub async fn shutdown(&self, deadline: Duration) -> Report {
        let t0 = Instant::now();
        // Close and arm the deadline here, not in the batcher: it may be
        // waiting for an upload slot and read its messages only later.
        self.shared.queue.close();
        let give_up = self.shared.give_up.clone();
        tokio::spawn(async move {
            tokio::time::sleep(deadline).await;
            let _ = give_up.send(true);
        });
        let (tx, rx) = oneshot::channel();
        if self.control.send(Control::Shutdown(tx)).is_ok() {
            let _ = rx.await;
        }
        self.report(t0)
    }

    fn report(&self, t0: Instant) -> Report {
        let metrics = self.metrics();
        let m = &metrics;
        let complete = m.queue_records == 0 && m.in_flight == 0 && m.accepted == m.settled();
        Report {
            complete,
            elapsed_ms: t0.elapsed().as_millis() as u64,
            metrics,
        }
    }

    /// A snapshot of the ledger and health metrics.
    pub fn metrics(&self) -> Metrics {
        let c = &self.shared.counters;
        let (queue_records, queue_bytes, oldest) = self.shared.queue.depth();
        let overflow = self
            .shared
            .overflow
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .0
            .len() as u64;
        let stats = self.shared.client.stats();
        Metrics {
            accepted: Counters::get(&c.accepted),
            rejected: Counters::get(&c.rejected),
            written: Counters::get(&c.written),
            written_bytes: Counters::get(&c.written_bytes),
            spilled: Counters::get(&c.spilled),
            replayed: Counters::get(&c.replayed),
            quarantined_files: Counters::get(&c.quarantined),
            dead_lettered: Counters::get(&c.dead_lettered),
            journal_recovered: Counters::get(&c.journal_recovered),
            spill_bytes: self.shared.spill_bytes(),
            journal_bytes: self.shared.journal.as_ref().map_or(0, |j| j.bytes()),
            journal_pending: self.shared.journal.as_ref().map_or(0, |j| j.pending()),
            duplicates: Counters::get(&c.duplicates),
            replay_dead_lettered: Counters::get(&c.replay_dead_lettered),
            unknown: Counters::get(&c.unknown),
            dropped: c.dropped(),
            files: Counters::get(&c.files),
            batch_retries: Counters::get(&c.batch_retries),
            requests: stats.requests_sent,
            http_retries: stats.retries,
            connections_opened: stats.connections_opened,
            queue_records: queue_records as u64 + overflow,
            queue_bytes: queue_bytes as u64,
            oldest_queued_ms: oldest.map(|t| t.elapsed().as_millis() as u64),
            in_flight: Counters::get(&c.in_flight),
            upload_latency: c.latency(),
            upload_latency_histogram: c.latency_histogram(),
        }
    }

    /// The storage client (shared by every clone of this logger).
    pub fn client(&self) -> &Client {
        &self.shared.client
    }
}

/// Every write is verified by reading the file's properties (and, where the
/// service keeps no MD5, its bytes): a credential that may write but not read
/// would have every batch committed and then retried as unverified. One
/// properties call on a path that does not exist tells: 401/403 is a
/// configuration error; anything else (404, storage unreachable for now) is not.
async fn check_can_read(fs: &adls_rest::FileSystem) -> Result<(), LogError> {
    let Ok(probe) = fs.file(".llm-log-read-check") else {
        return Ok(());
    };
    match tokio::time::timeout(Duration::from_secs(3), probe.properties()).await {
        Ok(Err(e)) if matches!(e.status().map(|s| s.as_u16()), Some(401 | 403)) => {
            Err(LogError::config(
                "credential",
                format!(
                    "the credential may not read from `{}` ({e}); the logger verifies every write by reading the file back, so it needs read as well as write (e.g. Storage Blob Data Contributor, or a SAS with `r` besides `cw`)",
                    fs.name()
                ),
            ))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests;
