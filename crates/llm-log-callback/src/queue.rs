//! The bounded queue between the gateway's threads and the batcher: bounded
//! by records and by bytes, never awaited on the hot path (a short
//! `std::sync::Mutex` section), with wake-ups for the batcher and for
//! producers waiting for room. A push never allocates in the steady state:
//! the batcher hands the buffer it emptied back as the next one.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use tokio::sync::Notify;

use crate::record::LogRecord;

/// What a queue entry holds.
///
/// A record is held inline, not boxed: a box would be an allocation on the
/// caller's thread, which `log` does not make. So every slot is as large as
/// a record (`size_of::<Entry>()`, about 720 bytes), lines' slots too; the
/// queue's record bound bounds them.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub(crate) enum Payload {
    /// A serialized record: one NDJSON line, newline included.
    Line(Vec<u8>),
    /// A record as `Logger::log` took it; the batcher redacts and serializes
    /// it (`serialize::to_lines`).
    Record(LogRecord),
}

/// One record in the queue.
#[derive(Debug)]
pub(crate) struct Entry {
    pub payload: Payload,
    /// What it counts for in the queue's byte bound and a batch's size: a
    /// line's length, or for a record an upper bound of the line it becomes
    /// (`serialize::line_bound`).
    pub bytes: usize,
    /// The record id, kept only where the layout names files by id.
    pub id: Option<String>,
    pub accepted_at: Instant,
    /// Where `ingest` journaled it, if it did.
    pub journal: Option<crate::journal::JournalRef>,
}

impl Entry {
    /// An entry of one serialized line.
    pub fn line(
        line: Vec<u8>,
        id: Option<String>,
        accepted_at: Instant,
        journal: Option<crate::journal::JournalRef>,
    ) -> Entry {
        Entry {
            bytes: line.len(),
            payload: Payload::Line(line),
            id,
            accepted_at,
            journal,
        }
    }

    /// The serialized line, if it is one.
    pub fn as_line(&self) -> Option<&[u8]> {
        match &self.payload {
            Payload::Line(l) => Some(l),
            Payload::Record(_) => None,
        }
    }
}

#[derive(Debug, Default)]
struct State {
    items: VecDeque<Entry>,
    bytes: usize,
    closed: bool,
}

/// Why a push was refused (a full queue hands the entry back, inline, as
/// `Payload` explains).
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub(crate) enum PushError {
    Full(Entry),
    Closed,
}

#[derive(Debug)]
pub(crate) struct Queue {
    state: Mutex<State>,
    /// An empty buffer with capacity, swapped in when the batcher takes the
    /// whole queue, so producers refill memory already allocated (and
    /// touched) instead of growing a new buffer from nothing.
    spare: Mutex<VecDeque<Entry>>,
    /// Mirrors `State::closed`, readable without the lock.
    closed: AtomicBool,
    max_records: usize,
    max_bytes: usize,
    /// The batcher is woken when the queue gets its first entry (to start the
    /// age timer) and when it holds a full batch; not on every push, which
    /// would cost a thread wake-up per record on the gateway's hot path.
    wake_records: usize,
    wake_bytes: usize,
    /// Wakes the batcher when records arrive.
    pub arrived: Notify,
    /// Wakes producers waiting for room.
    pub room: Notify,
}

impl Queue {
    /// A queue bounded by `max_records` / `max_bytes` that wakes the batcher
    /// at `wake_records` / `wake_bytes` (a full batch).
    pub fn new(
        max_records: usize,
        max_bytes: usize,
        wake_records: usize,
        wake_bytes: usize,
    ) -> Self {
        Queue {
            state: Mutex::new(State::default()),
            spare: Mutex::new(VecDeque::new()),
            closed: AtomicBool::new(false),
            max_records,
            max_bytes,
            wake_records: wake_records.max(1),
            wake_bytes: wake_bytes.max(1),
            arrived: Notify::new(),
            room: Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds `e` if it fits; never blocks beyond the short lock.
    #[allow(clippy::result_large_err)] // the entry comes back inline (see `PushError`)
    pub fn try_push(&self, e: Entry) -> Result<(), PushError> {
        let wake = {
            let mut s = self.lock();
            if s.closed {
                return Err(PushError::Closed);
            }
            let fits = s.items.len() < self.max_records
                && (s.bytes + e.bytes <= self.max_bytes || s.items.is_empty());
            if !fits {
                return Err(PushError::Full(e));
            }
            let before = s.bytes;
            s.bytes += e.bytes;
            s.items.push_back(e);
            let n = s.items.len();
            n == 1
                || n == self.wake_records
                || (before < self.wake_bytes && s.bytes >= self.wake_bytes)
        };
        if wake {
            self.arrived.notify_one();
        }
        Ok(())
    }

    /// Whether `records` entries of `bytes` in all could ever be queued at once.
    pub fn could_hold(&self, records: usize, bytes: usize) -> bool {
        records <= self.max_records && bytes <= self.max_bytes
    }

    /// Whether `records` entries of `bytes` in all fit now.
    pub fn has_room(&self, records: usize, bytes: usize) -> bool {
        let s = self.lock();
        s.items.len() + records <= self.max_records
            && (s.bytes + bytes <= self.max_bytes || s.items.is_empty())
    }

    /// Adds all of `entries` if they all fit, else none (they are dropped:
    /// the caller has not accepted them). `Err(false)`: full; `Err(true)`: closed.
    pub fn try_push_all(&self, entries: Vec<Entry>) -> Result<(), bool> {
        if entries.is_empty() {
            return Ok(());
        }
        let bytes: usize = entries.iter().map(|e| e.bytes).sum();
        {
            let mut s = self.lock();
            if s.closed {
                return Err(true);
            }
            let fits = s.items.len() + entries.len() <= self.max_records
                && (s.bytes + bytes <= self.max_bytes || s.items.is_empty());
            if !fits {
                return Err(false);
            }
            s.bytes += bytes;
            s.items.extend(entries);
        }
        self.arrived.notify_one();
        Ok(())
    }

    /// Adds `entries` whatever the bounds say: they are already durable (in
    /// the journal) and acknowledged, so refusing them now would lose them.
    /// The journal's own cap bounds how far this can go.
    pub fn push_all_unbounded(&self, entries: Vec<Entry>) {
        if entries.is_empty() {
            return;
        }
        let bytes: usize = entries.iter().map(|e| e.bytes).sum();
        {
            let mut s = self.lock();
            s.bytes += bytes;
            s.items.extend(entries);
        }
        self.arrived.notify_one();
    }

    /// Takes entries from the front while they fit in `max_records` / `max_bytes`.
    ///
    /// The lock is held for a scan of lengths and an O(1) swap when the whole
    /// queue fits (the usual case), so producers are not kept waiting while
    /// thousands of entries move.
    pub fn take(&self, max_records: usize, max_bytes: usize, out: &mut Vec<Entry>) -> usize {
        // the queue goes on in the spare buffer (already allocated), so
        // producers never grow a buffer from nothing; the rest of the queue
        // beyond what is taken (usually a few entries) moves into it
        let mut fresh = std::mem::take(&mut *self.spare.lock().unwrap_or_else(|p| p.into_inner()));
        let mut taken = {
            let mut s = self.lock();
            let (n, bytes) = if s.items.len() <= max_records && s.bytes <= max_bytes {
                (s.items.len(), s.bytes)
            } else {
                let mut n = 0;
                let mut bytes = 0;
                for e in s.items.iter().take(max_records) {
                    if bytes + e.bytes > max_bytes {
                        break;
                    }
                    bytes += e.bytes;
                    n += 1;
                }
                (n, bytes)
            };
            s.bytes -= bytes;
            fresh.extend(s.items.drain(n..));
            std::mem::replace(&mut s.items, fresh)
        };
        let n = taken.len();
        out.extend(taken.drain(..));
        if n > 0 {
            self.room.notify_waiters();
        }
        // the emptied buffer is the next spare, up to twice what a batch needs
        if taken.capacity() > 2 * self.wake_records {
            taken.shrink_to(self.wake_records);
        }
        *self.spare.lock().unwrap_or_else(|p| p.into_inner()) = taken;
        n
    }

    /// Refuses further pushes (shutdown).
    pub fn close(&self) {
        self.lock().closed = true;
        self.closed.store(true, Ordering::Release);
        self.arrived.notify_one();
        self.room.notify_waiters();
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// (records, bytes, oldest accept time).
    pub fn depth(&self) -> (usize, usize, Option<Instant>) {
        let s = self.lock();
        (
            s.items.len(),
            s.bytes,
            s.items.front().map(|e| e.accepted_at),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(n: usize) -> Entry {
        Entry::line(vec![b'x'; n], None, Instant::now(), None)
    }

    #[test]
    fn bounded_by_records_and_bytes() {
        let q = Queue::new(3, 100, 3, 100);
        q.try_push(entry(40)).expect("1");
        q.try_push(entry(40)).expect("2");
        assert!(
            matches!(q.try_push(entry(40)), Err(PushError::Full(_))),
            "bytes bound"
        );
        q.try_push(entry(20)).expect("3");
        assert!(
            matches!(q.try_push(entry(1)), Err(PushError::Full(_))),
            "records bound"
        );
        assert_eq!(q.depth().0, 3);
        let mut out = Vec::new();
        assert_eq!(q.take(10, 85, &mut out), 2, "third would exceed 85 bytes");
        assert_eq!(q.depth().1, 20);
        q.close();
        assert!(matches!(q.try_push(entry(1)), Err(PushError::Closed)));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn wakes_on_first_entry_and_on_a_full_batch_only() {
        let q = Queue::new(100, 1_000, 3, 1_000);
        let woken = |q: &Queue| {
            let n = q.arrived.notified();
            tokio::pin!(n);
            // a stored permit resolves at once
            futures_poll(n.as_mut())
        };
        q.try_push(entry(10)).expect("1");
        assert!(woken(&q), "first entry wakes (starts the age timer)");
        q.try_push(entry(10)).expect("2");
        assert!(!woken(&q), "second does not");
        q.try_push(entry(10)).expect("3");
        assert!(woken(&q), "a full batch by records wakes");
        let q = Queue::new(100, 1_000, 100, 25);
        q.try_push(entry(10)).expect("1");
        assert!(woken(&q));
        q.try_push(entry(10)).expect("2");
        assert!(!woken(&q));
        q.try_push(entry(10)).expect("3");
        assert!(woken(&q), "crossing the byte threshold wakes");
    }

    fn futures_poll(f: std::pin::Pin<&mut tokio::sync::futures::Notified<'_>>) -> bool {
        use std::future::Future as _;
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        f.poll(&mut cx).is_ready()
    }

    #[test]
    fn one_oversized_entry_fits_an_empty_queue() {
        let q = Queue::new(10, 10, 10, 10);
        q.try_push(entry(50)).expect("alone it fits");
        assert!(q.try_push(entry(1)).is_err());
    }
}
