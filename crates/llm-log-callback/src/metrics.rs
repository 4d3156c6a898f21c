//! The ledger and metrics: every accepted record ends in exactly one of
//! written, spilled, dead-lettered, unknown or dropped (with a reason);
//! [`Metrics`] is a snapshot.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Why records were dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DropReason {
    /// The queue was full and the policy is drop-newest.
    QueueFull,
    /// Uploads failed for longer than the retry window and spilling is off.
    UploadFailed,
    /// The spill directory was full (its size cap) or could not be written.
    SpillFailed,
    /// Shutdown's deadline passed with the record still queued or in flight, and spilling is off.
    Shutdown,
    /// Storage refused the batch for good (a 4xx no retry changes, a
    /// configuration error) and there is no spill directory to dead-letter it in.
    Rejected,
    /// Accepted by `log`, then found larger than `max_batch_bytes` once
    /// redacted and serialized in the batcher (the bound `log` checks makes
    /// this a bug guard: a record that may be too large is serialized and
    /// refused on the caller's thread).
    TooLarge,
    /// Accepted by `log`, then refused by the serializer in the batcher (a bug guard).
    Unserializable,
}

impl DropReason {
    /// Stable lower-case name, for metrics labels and reports.
    pub fn as_str(&self) -> &'static str {
        match self {
            DropReason::QueueFull => "queue_full",
            DropReason::UploadFailed => "upload_failed",
            DropReason::SpillFailed => "spill_failed",
            DropReason::Shutdown => "shutdown",
            DropReason::Rejected => "rejected",
            DropReason::TooLarge => "too_large",
            DropReason::Unserializable => "unserializable",
        }
    }
}

/// Records dropped, by reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Dropped {
    /// Queue full (drop-newest policy).
    pub queue_full: u64,
    /// Upload retries exhausted, spilling off.
    pub upload_failed: u64,
    /// Spill directory full or unwritable.
    pub spill_failed: u64,
    /// Shutdown deadline passed, spilling off.
    pub shutdown: u64,
    /// Refused by storage for good, spilling off.
    pub rejected: u64,
    /// Larger than `max_batch_bytes` once serialized in the batcher.
    pub too_large: u64,
    /// The serializer refused it in the batcher.
    pub unserializable: u64,
}

impl Dropped {
    /// All dropped records.
    pub fn total(&self) -> u64 {
        self.queue_full
            + self.upload_failed
            + self.spill_failed
            + self.shutdown
            + self.rejected
            + self.too_large
            + self.unserializable
    }
}

/// Upload latency percentiles (per batch, from dispatch to flushed), in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct Latency {
    /// Median.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Largest seen.
    pub max_ms: f64,
    /// Uploads measured.
    pub count: u64,
}

/// A snapshot of the logger's ledger and health.
///
/// Every accepted record is counted in exactly one of written, spilled,
/// dead-lettered, unknown or dropped once it leaves the queue:
///
/// ```no_run
/// # async fn demo(logger: llm_log_callback::Logger) {
/// let m = logger.metrics();
/// let waiting = m.queue_records + m.in_flight;
/// assert!(m.settled() + waiting >= m.accepted);
/// if m.dropped.total() > 0 {
///     eprintln!("dropped: {:?}", m.dropped);
/// }
/// # }
/// ```
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Metrics {
    /// Records accepted by `log*` (refused records are not counted here).
    pub accepted: u64,
    /// Records refused by `log*` with an error (invalid, too large, after shutdown).
    pub rejected: u64,
    /// Accepted records now in storage.
    pub written: u64,
    /// Uncompressed bytes of written records.
    pub written_bytes: u64,
    /// Accepted records written to the spill directory (to be replayed).
    pub spilled: u64,
    /// Records uploaded from spill files (this run's and earlier runs').
    pub replayed: u64,
    /// Spill files found corrupt and moved to `quarantine/`.
    pub quarantined_files: u64,
    /// Accepted records that storage refused for good (a 4xx no retry
    /// changes), kept in the spill directory's `dead-letter/` with the reason.
    pub dead_lettered: u64,
    /// Records found in the journal at start, not secured before the
    /// restart, and queued again (counted in `accepted` too).
    pub journal_recovered: u64,
    /// Bytes of spill files waiting for the replay (dead letters included).
    pub spill_bytes: u64,
    /// Bytes the journal holds (journal mode).
    pub journal_bytes: u64,
    /// Journaled records not yet secured (journal mode).
    pub journal_pending: u64,
    /// Records `ingest` skipped because their `id` was taken within the
    /// deduplication window (not accepted, so not in the ledger).
    pub duplicates: u64,
    /// Spilled records (of this run or earlier ones) that storage refused
    /// for good on replay, moved to `dead-letter/`.
    pub replay_dead_lettered: u64,
    /// Accepted records whose write was abandoned (shutdown's deadline, a
    /// panic) while its commit was under way, with no spill directory to
    /// reconcile them from: they may or may not be in storage.
    pub unknown: u64,
    /// Accepted records dropped, by reason.
    pub dropped: Dropped,
    /// Files completed in storage.
    pub files: u64,
    /// Whole-batch retries (after the client's own retries gave up).
    pub batch_retries: u64,
    /// HTTP requests sent by the storage client (every attempt).
    pub requests: u64,
    /// HTTP retries by the storage client.
    pub http_retries: u64,
    /// Connections the storage client opened.
    pub connections_opened: u64,
    /// Records waiting in the queue.
    pub queue_records: u64,
    /// Bytes waiting in the queue.
    pub queue_bytes: u64,
    /// Age of the oldest queued record.
    pub oldest_queued_ms: Option<u64>,
    /// Records cut into batches and not yet written, spilled or dropped.
    pub in_flight: u64,
    /// Upload latency per batch.
    pub upload_latency: Latency,
    /// The same as a histogram (for Prometheus).
    pub upload_latency_histogram: LatencyHistogram,
}

impl Metrics {
    /// Accepted records whose fate is settled: written (and verified),
    /// spilled, dead-lettered, unknown or dropped. Once nothing is queued or
    /// in flight, this equals `accepted`.
    pub fn settled(&self) -> u64 {
        self.written + self.spilled + self.dead_lettered + self.unknown + self.dropped.total()
    }
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub accepted: AtomicU64,
    pub rejected: AtomicU64,
    pub written: AtomicU64,
    pub written_bytes: AtomicU64,
    pub spilled: AtomicU64,
    pub replayed: AtomicU64,
    pub quarantined: AtomicU64,
    pub dead_lettered: AtomicU64,
    pub duplicates: AtomicU64,
    pub journal_recovered: AtomicU64,
    pub replay_dead_lettered: AtomicU64,
    pub unknown: AtomicU64,
    pub files: AtomicU64,
    pub batch_retries: AtomicU64,
    pub in_flight: AtomicU64,
    pub dropped_queue_full: AtomicU64,
    pub dropped_upload_failed: AtomicU64,
    pub dropped_spill_failed: AtomicU64,
    pub dropped_shutdown: AtomicU64,
    pub dropped_rejected: AtomicU64,
    pub dropped_too_large: AtomicU64,
    pub dropped_unserializable: AtomicU64,
    latencies: Mutex<Histogram>,
}

impl Counters {
    pub fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }

    pub fn drop_records(&self, reason: DropReason, n: u64) {
        let c = match reason {
            DropReason::QueueFull => &self.dropped_queue_full,
            DropReason::UploadFailed => &self.dropped_upload_failed,
            DropReason::SpillFailed => &self.dropped_spill_failed,
            DropReason::Shutdown => &self.dropped_shutdown,
            DropReason::Rejected => &self.dropped_rejected,
            DropReason::TooLarge => &self.dropped_too_large,
            DropReason::Unserializable => &self.dropped_unserializable,
        };
        Self::add(c, n);
    }

    pub fn record_latency(&self, d: Duration) {
        self.latencies
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .record(d);
    }

    pub fn dropped(&self) -> Dropped {
        Dropped {
            queue_full: Self::get(&self.dropped_queue_full),
            upload_failed: Self::get(&self.dropped_upload_failed),
            spill_failed: Self::get(&self.dropped_spill_failed),
            shutdown: Self::get(&self.dropped_shutdown),
            rejected: Self::get(&self.dropped_rejected),
            too_large: Self::get(&self.dropped_too_large),
            unserializable: Self::get(&self.dropped_unserializable),
        }
    }

    pub fn latency_histogram(&self) -> LatencyHistogram {
        self.latencies
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .histogram()
    }

    pub fn latency(&self) -> Latency {
        self.latencies
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .summary()
    }
}

/// Upper bounds (seconds) of [`LatencyHistogram`]'s buckets.
pub const LATENCY_BOUNDS_S: [f64; 13] = [
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
];

/// Upload latency per batch as a histogram (what Prometheus wants):
/// cumulative counts at [`LATENCY_BOUNDS_S`], plus the total count and sum.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct LatencyHistogram {
    /// `(upper bound in seconds, batches that took at most that long)`.
    pub buckets: Vec<(f64, u64)>,
    /// Batches measured.
    pub count: u64,
    /// Their latencies added up, in seconds.
    pub sum_s: f64,
}

/// Log-spaced buckets (about 9 % wide) from 0.1 ms to ~30 min: enough
/// resolution for percentiles, constant memory; plus exact counts at the
/// fixed bounds of [`LatencyHistogram`].
#[derive(Debug)]
struct Histogram {
    buckets: Vec<u64>,
    count: u64,
    max: Duration,
    fixed: [u64; LATENCY_BOUNDS_S.len()],
    sum_s: f64,
}

const BUCKETS: usize = 200;
const BASE_MS: f64 = 0.1;
const GROWTH: f64 = 1.09;

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            buckets: vec![0; BUCKETS],
            count: 0,
            max: Duration::ZERO,
            fixed: [0; LATENCY_BOUNDS_S.len()],
            sum_s: 0.0,
        }
    }
}

impl Histogram {
    fn record(&mut self, d: Duration) {
        let ms = d.as_secs_f64() * 1000.0;
        let i = if ms <= BASE_MS {
            0
        } else {
            ((ms / BASE_MS).ln() / GROWTH.ln()).ceil() as usize
        };
        self.buckets[i.min(BUCKETS - 1)] += 1;
        self.count += 1;
        self.max = self.max.max(d);
        let s = d.as_secs_f64();
        self.sum_s += s;
        if let Some(j) = LATENCY_BOUNDS_S.iter().position(|&b| s <= b) {
            self.fixed[j] += 1;
        }
    }

    fn histogram(&self) -> LatencyHistogram {
        let mut total = 0;
        let buckets = LATENCY_BOUNDS_S
            .iter()
            .zip(self.fixed)
            .map(|(&b, n)| {
                total += n;
                (b, total)
            })
            .collect();
        LatencyHistogram {
            buckets,
            count: self.count,
            sum_s: self.sum_s,
        }
    }

    fn quantile(&self, q: f64) -> f64 {
        if self.count == 0 {
            return 0.0;
        }
        let rank = (q * self.count as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= rank {
                let upper = BASE_MS * GROWTH.powi(i as i32);
                return upper.min(self.max.as_secs_f64() * 1000.0);
            }
        }
        self.max.as_secs_f64() * 1000.0
    }

    fn summary(&self) -> Latency {
        Latency {
            p50_ms: self.quantile(0.50),
            p90_ms: self.quantile(0.90),
            p99_ms: self.quantile(0.99),
            max_ms: self.max.as_secs_f64() * 1000.0,
            count: self.count,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_percentiles_are_close() {
        let mut h = Histogram::default();
        for ms in 1..=1000u64 {
            h.record(Duration::from_millis(ms));
        }
        let s = h.summary();
        assert!((s.p50_ms - 500.0).abs() / 500.0 < 0.1, "{s:?}");
        assert!((s.p99_ms - 990.0).abs() / 990.0 < 0.1, "{s:?}");
        assert_eq!(s.max_ms, 1000.0);
        assert_eq!(s.count, 1000);
        assert_eq!(Histogram::default().summary().p99_ms, 0.0);
        let hist = h.histogram();
        assert_eq!(hist.count, 1000);
        assert!((hist.sum_s - 500.5).abs() < 1e-6, "{hist:?}");
        // cumulative, exact at the bounds: 10 ms → 10 batches, 100 ms → 100, 1 s → all
        let at = |le: f64| hist.buckets.iter().find(|(b, _)| *b == le).map(|(_, n)| *n);
        assert_eq!(
            (at(0.01), at(0.1), at(1.0), at(120.0)),
            (Some(10), Some(100), Some(1000), Some(1000))
        );
    }
}
