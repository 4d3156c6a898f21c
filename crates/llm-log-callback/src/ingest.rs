//! Taking a group of records at once, all or nothing, for a front end that
//! acknowledges what it receives (the HTTP sidecar): [`Logger::ingest`]
//! checks every record first, skips those whose `id` was already taken
//! within the deduplication window (a retried POST), and queues the rest, or
//! answers [`IngestError::Busy`] with how long to wait when they do not fit.
//!
//! [`Logger::ingest`]: crate::Logger::ingest

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::time::{Duration, Instant};

use crate::error::LogError;
use crate::journal::{AppendError, JournalRef};
use crate::metrics::Counters;
use crate::queue::Entry;
use crate::Logger;

/// What [`Logger::ingest`](crate::Logger::ingest) took.
///
/// ```no_run
/// # async fn demo(logger: llm_log_callback::Logger) {
/// use llm_log_callback::IngestError;
///
/// let posted = [r#"{"id":"a","model":"gpt-4o"}"#, r#"{"id":"b","model":"gpt-4o"}"#];
/// match logger.ingest(&posted).await {
///     // acknowledge: the records are queued (and journaled, with a journal)
///     Ok(taken) => println!("{} taken, {} already had", taken.accepted, taken.duplicates),
///     // tell the sender to come back
///     Err(IngestError::Busy { retry_after }) => println!("503, Retry-After {retry_after:?}"),
///     Err(IngestError::ShutDown) => println!("503"),
///     // the sender must not retry these
///     Err(e) => println!("400: {e}"),
/// }
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Ingested {
    /// Records accepted (counted in `metrics().accepted`).
    pub accepted: usize,
    /// Records skipped because their `id` was already taken within the
    /// deduplication window.
    pub duplicates: usize,
}

/// Why [`Logger::ingest`](crate::Logger::ingest) took nothing. Nothing of the
/// group is kept in any case.
#[derive(Debug)]
#[non_exhaustive]
pub enum IngestError {
    /// Record `index` (0-based) is not a valid record; the sender must not retry.
    Invalid {
        /// Position of the record in the group.
        index: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// Record `index` alone is larger than a batch may be.
    TooLarge {
        /// Position of the record in the group.
        index: usize,
        /// Its size as it would be stored.
        bytes: usize,
        /// The batch byte limit.
        limit: usize,
    },
    /// The group is larger than the queue (or the journal) can ever hold:
    /// send it in parts.
    GroupTooLarge {
        /// Records in the group.
        records: usize,
        /// Their bytes as they would be stored.
        bytes: usize,
    },
    /// No room now (the queue or the journal is full): try again after
    /// `retry_after`. Transient; a sender should retry.
    Busy {
        /// A hint for the sender (`Retry-After`).
        retry_after: Duration,
    },
    /// The logger is shutting down. Transient for a sender: another
    /// instance, or this one after its restart, takes the records.
    ShutDown,
}

impl fmt::Display for IngestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IngestError::Invalid { index, reason } => {
                write!(f, "record {index} is invalid: {reason}")
            }
            IngestError::TooLarge {
                index,
                bytes,
                limit,
            } => write!(
                f,
                "record {index} is {bytes} bytes, larger than the batch limit of {limit} bytes"
            ),
            IngestError::GroupTooLarge { records, bytes } => write!(
                f,
                "{records} records ({bytes} bytes) are more than the queue or the journal can ever hold; send fewer at a time"
            ),
            IngestError::Busy { retry_after } => write!(
                f,
                "no room for the records now; retry after {} s",
                retry_after.as_secs().max(1)
            ),
            IngestError::ShutDown => f.write_str("shutting down; send the records again later"),
        }
    }
}

impl std::error::Error for IngestError {}

/// Ids taken recently: at most `max_ids`, each for at most `window`; and
/// the ids of groups being journaled right now (not taken yet: their
/// journal write may still fail).
#[derive(Debug)]
pub(crate) struct Dedup {
    window: Duration,
    max_ids: usize,
    seen: HashMap<String, Instant>,
    order: VecDeque<(Instant, String)>,
    in_progress: std::collections::HashSet<String>,
}

impl Dedup {
    pub fn new(window: Duration, max_ids: usize) -> Self {
        Dedup {
            window,
            max_ids,
            seen: HashMap::new(),
            order: VecDeque::new(),
            in_progress: std::collections::HashSet::new(),
        }
    }

    /// Whether a group being journaled holds `id`.
    fn in_progress(&self, id: &str) -> bool {
        self.in_progress.contains(id)
    }

    /// Forgets ids older than the window, and the oldest beyond `max_ids`.
    fn expire(&mut self, now: Instant) {
        while let Some((at, _)) = self.order.front() {
            let old = now.saturating_duration_since(*at) > self.window;
            if !old && self.order.len() <= self.max_ids {
                break;
            }
            if let Some((at, id)) = self.order.pop_front() {
                // a later `insert` of the same id moved its time on
                if self.seen.get(&id) == Some(&at) {
                    self.seen.remove(&id);
                }
            }
        }
    }

    /// Whether `id` was taken within the window.
    pub fn contains(&mut self, id: &str, now: Instant) -> bool {
        self.expire(now);
        self.seen.contains_key(id)
    }

    /// The journal write of the group holding `ids` ended: they are taken
    /// (`journaled`, noted at `now`) or not.
    fn settle(&mut self, ids: &[String], journaled: bool, now: Instant) {
        for id in ids {
            self.in_progress.remove(id);
            if journaled {
                self.insert(id.clone(), now);
            }
        }
    }

    /// Notes `id` as taken at `now`.
    pub fn insert(&mut self, id: String, now: Instant) {
        if self.max_ids == 0 {
            return;
        }
        self.seen.insert(id.clone(), now);
        self.order.push_back((now, id));
        self.expire(now);
    }
}

/// The ids of a group being journaled: settled when dropped, as taken if
/// `journaled` was set, else forgotten (the write failed, or its task
/// panicked), so a retry is neither skipped nor kept waiting.
struct InProgress {
    shared: std::sync::Arc<crate::logger::Shared>,
    ids: Vec<String>,
    journaled: bool,
}

impl Drop for InProgress {
    fn drop(&mut self) {
        if self.ids.is_empty() {
            return;
        }
        self.shared
            .dedup
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .settle(&self.ids, self.journaled, Instant::now());
    }
}

impl Logger {
    /// Takes a group of records that arrive as JSON texts (a POST of the
    /// HTTP sidecar), all or nothing: every one is checked first (one invalid
    /// record refuses the group), those whose own `id` was taken within the
    /// deduplication window are skipped (a sender's retry), and the rest are
    /// queued together, or none is and [`IngestError::Busy`] says when to try
    /// again. Each record is stored as [`Logger::log_json`] stores it.
    ///
    /// With a journal, `Ok` means journaled (durable). A retry that arrives
    /// while the group holding the same ids is still being journaled is
    /// `Busy` (its outcome is not known yet; "duplicate" would acknowledge
    /// records that may never be durable). The journal write and the queueing
    /// run in a task of their own, so dropping this future does not stop
    /// them: the group is taken (and a retry is a duplicate) or, if the write
    /// fails, not. A group whose journal write was under way when
    /// [`Logger::shutdown`] closed the queue is still `Ok`, but is not
    /// counted in this run's ledger: it stays pending in the journal
    /// (`journal_pending`), and the next start sends it.
    pub async fn ingest(&self, records: &[&str]) -> Result<Ingested, IngestError> {
        let refuse = |e: IngestError| {
            Counters::add(&self.shared.counters.rejected, records.len() as u64);
            e
        };
        let mut entries = Vec::with_capacity(records.len());
        let mut ids = Vec::with_capacity(records.len());
        for (index, text) in records.iter().enumerate() {
            match self.json_entry(text, true) {
                Ok((entry, id)) => {
                    entries.push(entry);
                    ids.push(id);
                }
                Err(LogError::ShutDown) => return Err(IngestError::ShutDown),
                Err(LogError::RecordTooLarge { bytes, limit }) => {
                    return Err(refuse(IngestError::TooLarge {
                        index,
                        bytes,
                        limit,
                    }))
                }
                Err(e) => {
                    let reason = match e {
                        LogError::InvalidRecord(m) => m,
                        other => other.to_string(),
                    };
                    return Err(refuse(IngestError::Invalid { index, reason }));
                }
            }
        }
        let (keep, taken, duplicates) = match self.take_group(entries, &ids)? {
            Taken::Queued(done) => return Ok(done),
            Taken::ToJournal {
                keep,
                taken,
                duplicates,
            } => (keep, taken, duplicates),
        };
        // The journal write and the queueing run in a task of their own:
        // dropping this future (a caller's timeout) does not leave a group
        // journaled but neither queued nor noted (its retry would be taken
        // again, and the next start would send both).
        // the guard exists before the task: should the task never run (its
        // runtime shutting down), dropping it settles the ids all the same
        let noted = InProgress {
            shared: self.shared.clone(),
            ids: taken,
            journaled: false,
        };
        let logger = self.clone();
        let task = tokio::spawn(async move {
            let mut noted = noted; // the whole guard, not a field of it
            let result = logger.journal_and_queue(keep, duplicates).await;
            noted.journaled = result.is_ok();
            result
        });
        match task.await {
            Ok(result) => result,
            Err(e) => {
                tracing::error!(error = %e, "the journal task of an ingest failed; answering busy");
                Err(IngestError::Busy {
                    retry_after: Duration::from_secs(1),
                })
            }
        }
    }

    /// Journals a group `take_group` handed back, then queues it.
    async fn journal_and_queue(
        &self,
        mut keep: Vec<Entry>,
        duplicates: usize,
    ) -> Result<Ingested, IngestError> {
        let Some(journal) = &self.shared.journal else {
            return Err(IngestError::ShutDown);
        };
        let accepted = keep.len();
        // `json_entry` makes every entry a line (the journal keeps text)
        let Some(lines) = keep
            .iter()
            .map(Entry::as_line)
            .collect::<Option<Vec<&[u8]>>>()
        else {
            tracing::error!(
                "an ingested record reached the journal unserialized (a bug); answering busy"
            );
            return Err(IngestError::Busy {
                retry_after: Duration::from_secs(1),
            });
        };
        match journal.append(&lines).await {
            Ok(first) => {
                for (i, e) in keep.iter_mut().enumerate() {
                    e.journal = Some(JournalRef {
                        seg: first.seg,
                        index: first.index + i as u64,
                    });
                }
                Counters::add(&self.shared.counters.duplicates, duplicates as u64);
                match self.shared.queue.push_all_unbounded(keep) {
                    Ok(()) => Counters::add(&self.shared.counters.accepted, accepted as u64),
                    // shut down while the journal wrote them: this run's
                    // batcher may be gone, so they are not this run's to
                    // count; they stay pending in the journal (durable, as
                    // the answer says), and the next start sends them
                    Err(_) => tracing::info!(
                        records = accepted,
                        "records journaled during shutdown; the next start sends them"
                    ),
                }
                Ok(Ingested {
                    accepted,
                    duplicates,
                })
            }
            Err(e) => {
                if let AppendError::Io(e) = &e {
                    tracing::error!(error = %e, "cannot write the journal; answering busy");
                }
                Err(IngestError::Busy {
                    retry_after: Duration::from_secs(1),
                })
            }
        }
    }

    /// The part of `ingest` under the deduplication lock (never across an
    /// await): skips ids taken within the window or earlier in the group;
    /// without a journal it queues the rest, with one it notes their ids
    /// (so a concurrent retry is skipped too) and hands them back to journal.
    fn take_group(
        &self,
        entries: Vec<Entry>,
        ids: &[Option<String>],
    ) -> Result<Taken, IngestError> {
        let now = Instant::now();
        let mut dedup = self.shared.dedup.lock().unwrap_or_else(|p| p.into_inner());
        let mut keep: Vec<Entry> = Vec::with_capacity(entries.len());
        let mut taken: Vec<&str> = Vec::new();
        let mut duplicates = 0;
        // a group being journaled holds one of these ids: its outcome is
        // not known yet (answering "duplicate" now would acknowledge records
        // that are not durable, and lose them should that write fail)
        if ids.iter().flatten().any(|id| dedup.in_progress(id)) {
            return Err(IngestError::Busy {
                retry_after: Duration::from_secs(1),
            });
        }
        for (entry, id) in entries.into_iter().zip(ids) {
            let seen = id
                .as_deref()
                .is_some_and(|id| dedup.contains(id, now) || taken.contains(&id));
            if seen {
                duplicates += 1;
                continue;
            }
            if let Some(id) = id {
                taken.push(id);
            }
            keep.push(entry);
        }
        let accepted = keep.len();
        let bytes: usize = keep.iter().map(|e| e.bytes).sum();
        let journal_could_hold = self
            .shared
            .journal
            .as_ref()
            .is_none_or(|j| bytes as u64 <= j.max_group_bytes());
        if !self.shared.queue.could_hold(accepted, bytes) || !journal_could_hold {
            Counters::add(&self.shared.counters.rejected, ids.len() as u64);
            return Err(IngestError::GroupTooLarge {
                records: accepted,
                bytes,
            });
        }
        let busy = || {
            self.shared.queue.arrived.notify_one();
            IngestError::Busy {
                retry_after: Duration::from_secs(1),
            }
        };
        if self.shared.journal.is_some() {
            // room now? Once journaled, the records are queued whatever the
            // bounds say (they are acknowledged), so ask before.
            if !self.shared.queue.has_room(accepted, bytes) {
                return Err(busy());
            }
            for id in &taken {
                dedup.in_progress.insert(id.to_string());
            }
            return Ok(Taken::ToJournal {
                keep,
                taken: taken.iter().map(|id| id.to_string()).collect(),
                duplicates,
            });
        }
        match self.shared.queue.try_push_all(keep) {
            Ok(()) => {
                for id in taken {
                    dedup.insert(id.to_string(), now);
                }
                Counters::add(&self.shared.counters.accepted, accepted as u64);
                Counters::add(&self.shared.counters.duplicates, duplicates as u64);
                Ok(Taken::Queued(Ingested {
                    accepted,
                    duplicates,
                }))
            }
            Err(true) => Err(IngestError::ShutDown),
            Err(false) => Err(busy()),
        }
    }
}

/// What `take_group` did with a group.
enum Taken {
    /// Queued (no journal).
    Queued(Ingested),
    /// To be journaled, then queued.
    ToJournal {
        keep: Vec<Entry>,
        taken: Vec<String>,
        duplicates: usize,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ids in progress are neither taken nor forgotten until their write
    /// ends: journaled, they are taken; not, they are forgotten.
    #[test]
    fn in_progress_ids_settle_as_taken_or_forgotten() {
        let now = Instant::now();
        let mut d = Dedup::new(Duration::from_secs(60), 100);
        let ids = ["a".to_string(), "b".to_string()];
        d.in_progress.extend(ids.iter().cloned());
        assert!(d.in_progress("a") && !d.contains("a", now));
        d.settle(&ids[..1], true, now);
        assert!(!d.in_progress("a") && d.contains("a", now));
        d.settle(&ids[1..], false, now);
        assert!(!d.in_progress("b") && !d.contains("b", now));
    }

    #[test]
    fn ids_are_remembered_for_the_window_and_up_to_the_bound() {
        let t0 = Instant::now();
        let mut d = Dedup::new(Duration::from_secs(10), 3);
        d.insert("a".into(), t0);
        assert!(d.contains("a", t0 + Duration::from_secs(9)));
        assert!(!d.contains("a", t0 + Duration::from_secs(11)));
        for id in ["b", "c", "d", "e"] {
            d.insert(id.into(), t0);
        }
        // the oldest beyond three is forgotten
        assert!(!d.contains("b", t0));
        assert!(d.contains("c", t0) && d.contains("d", t0) && d.contains("e", t0));
        let mut off = Dedup::new(Duration::from_secs(10), 0);
        off.insert("a".into(), t0);
        assert!(!off.contains("a", t0));
    }
}
