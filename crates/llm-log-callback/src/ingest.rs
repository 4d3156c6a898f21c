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
    /// The group is larger than the queue can ever hold: send it in parts.
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
                "{records} records ({bytes} bytes) are more than the queue can ever hold; send fewer at a time"
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

/// Ids taken recently: at most `max_ids`, each for at most `window`.
#[derive(Debug)]
pub(crate) struct Dedup {
    window: Duration,
    max_ids: usize,
    seen: HashMap<String, Instant>,
    order: VecDeque<(Instant, String)>,
}

impl Dedup {
    pub fn new(window: Duration, max_ids: usize) -> Self {
        Dedup {
            window,
            max_ids,
            seen: HashMap::new(),
            order: VecDeque::new(),
        }
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

    /// Forgets `id` (its records were not taken after all).
    pub fn remove(&mut self, id: &str) {
        self.seen.remove(id);
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

#[cfg(test)]
mod tests {
    use super::*;

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
