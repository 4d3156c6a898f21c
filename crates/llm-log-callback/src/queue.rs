//! The bounded queue between the gateway's threads and the batcher: bounded
//! by records and by bytes, never awaited on the hot path (a short
//! `std::sync::Mutex` section), with wake-ups for the batcher and for
//! producers waiting for room. A push never allocates in the steady state:
//! the batcher hands the buffer it emptied back as the next one.
//!
//! It has two stages under one lock and one bound. Records `Logger::log`
//! handed over wait in `raw` until the serializer thread (`serialize.rs`)
//! takes them, a few milliseconds later, and puts their lines at the end of
//! `lines`; the batcher takes batches from the front of `lines` only. So
//! records wait unserialized for milliseconds, not for a batch's age, and
//! what the byte bound counts is what the queue holds: lines at their length,
//! records at the bound of theirs.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};
use std::thread::Thread;
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
    /// A record as `Logger::log` took it; the serializer thread redacts and serializes
    /// it (`serialize.rs`).
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

/// Lines the serializer made of (up to 4 096 of) one take of records, queued as one piece:
/// putting them back costs the lock O(1), whatever their number (copying
/// hundreds of 720-byte entries under it held producers for up to half a
/// millisecond).
#[derive(Debug)]
struct Segment {
    entries: VecDeque<Entry>,
    bytes: usize,
}

#[derive(Debug, Default)]
struct State {
    /// Lines the serializer made, oldest first; the batcher takes these
    /// before `items`.
    made: VecDeque<Segment>,
    /// The records in `made`.
    made_records: usize,
    /// Lines queued as lines (`log_json`, the text paths, recovery), in
    /// order.
    items: VecDeque<Entry>,
    /// The bytes of `made` and `items`.
    line_bytes: usize,
    /// Records waiting for the serializer.
    raw: VecDeque<Entry>,
    /// Records the serializer has taken and not put back yet, and their bounds
    /// (still counted: their memory is still held).
    serializing: usize,
    serializing_bytes: usize,
    /// The bounds of `raw` and of the records being serialized.
    raw_bytes: usize,
    closed: bool,
}

impl State {
    fn records(&self) -> usize {
        self.lines() + self.raw.len() + self.serializing
    }

    fn lines(&self) -> usize {
        self.made_records + self.items.len()
    }

    /// When the serializer's oldest line was accepted.
    fn made_front(&self) -> Option<Instant> {
        self.made
            .front()
            .and_then(|g| g.entries.front())
            .map(|e| e.accepted_at)
    }

    /// When the oldest line queued as a line was accepted.
    fn items_front(&self) -> Option<Instant> {
        self.items.front().map(|e| e.accepted_at)
    }

    fn oldest_line(&self) -> Option<Instant> {
        earliest(self.made_front(), self.items_front())
    }

    fn bytes(&self) -> usize {
        self.line_bytes + self.raw_bytes
    }

    fn fits(&self, max_records: usize, max_bytes: usize, records: usize, bytes: usize) -> bool {
        self.records() + records <= max_records
            && (self.bytes() + bytes <= max_bytes || self.records() == 0)
    }
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
    /// The serializer thread, once started, and whether it is parked for
    /// long (idle): a push into `raw` then wakes it; otherwise it looks by
    /// itself every few milliseconds, so the hot path makes no system call.
    serializer: OnceLock<Thread>,
    serializer_idle: AtomicBool,
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
            serializer: OnceLock::new(),
            serializer_idle: AtomicBool::new(false),
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

    /// Adds `e` if it fits; never blocks beyond the short lock. A record goes
    /// to the serializer's stage, a line to the batcher's.
    #[allow(clippy::result_large_err)] // the entry comes back inline (see `PushError`)
    pub fn try_push(&self, e: Entry) -> Result<(), PushError> {
        let is_record = matches!(e.payload, Payload::Record(_));
        let (wake, wake_serializer) = {
            let mut s = self.lock();
            if s.closed {
                return Err(PushError::Closed);
            }
            if !s.fits(self.max_records, self.max_bytes, 1, e.bytes) {
                return Err(PushError::Full(e));
            }
            if is_record {
                s.raw_bytes += e.bytes;
                s.raw.push_back(e);
                (false, s.raw.len() == SERIALIZER_WAKE_RECORDS)
            } else {
                let before = s.line_bytes;
                s.line_bytes += e.bytes;
                s.items.push_back(e);
                let n = s.lines();
                let wake = n == 1
                    || n == self.wake_records
                    || (before < self.wake_bytes && s.line_bytes >= self.wake_bytes);
                (wake, false)
            }
        };
        if wake {
            self.arrived.notify_one();
        }
        if is_record && (wake_serializer || self.serializer_idle.load(Ordering::Relaxed)) {
            self.wake_serializer();
        }
        Ok(())
    }

    /// Whether `records` entries of `bytes` in all could ever be queued at once.
    pub fn could_hold(&self, records: usize, bytes: usize) -> bool {
        records <= self.max_records && bytes <= self.max_bytes
    }

    /// Whether `records` entries of `bytes` in all fit now.
    pub fn has_room(&self, records: usize, bytes: usize) -> bool {
        self.lock()
            .fits(self.max_records, self.max_bytes, records, bytes)
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
            if !s.fits(self.max_records, self.max_bytes, entries.len(), bytes) {
                return Err(false);
            }
            s.line_bytes += bytes;
            s.items.extend(entries);
        }
        self.arrived.notify_one();
        Ok(())
    }

    /// Adds `entries` whatever the bounds say: they are already durable (in
    /// the journal) and acknowledged, so refusing them now would lose them.
    /// The journal's own cap bounds how far this can go.
    ///
    /// A closed queue gives them back: its batcher may have taken its last
    /// batch already, so nothing would ever take them. (They stay pending in
    /// the journal, which the next start queues again.)
    pub fn push_all_unbounded(&self, entries: Vec<Entry>) -> Result<(), Vec<Entry>> {
        if entries.is_empty() {
            return Ok(());
        }
        let bytes: usize = entries.iter().map(|e| e.bytes).sum();
        {
            let mut s = self.lock();
            if s.closed {
                return Err(entries);
            }
            s.line_bytes += bytes;
            s.items.extend(entries);
        }
        self.arrived.notify_one();
        Ok(())
    }

    /// Takes lines from the front while they fit in `max_records` /
    /// `max_bytes`, from the serializer's pieces (`made`) and the lines
    /// queued as lines (`items`): first from whichever's oldest line is
    /// older, then from the other, so neither stage's lines wait behind the
    /// other's for longer than one batch.
    ///
    /// The lock is held for O(1) moves of whole pieces and a scan of lengths;
    /// where a batch boundary falls inside a piece (or inside `items`), the
    /// smaller side of it is copied, so producers are not kept waiting while
    /// thousands of entries move.
    pub fn take(&self, max_records: usize, max_bytes: usize, out: &mut Vec<Entry>) -> usize {
        // the queue goes on in the spare buffer (already allocated), so
        // producers never grow a buffer from nothing
        let mut fresh = std::mem::take(&mut *self.spare.lock().unwrap_or_else(|p| p.into_inner()));
        let mut segments = Vec::new();
        let mut taken_items = VecDeque::new();
        let items_first = {
            let mut s = self.lock();
            let items_first = match (s.items_front(), s.made_front()) {
                (Some(i), Some(m)) => i < m,
                (i, _) => i.is_some(),
            };
            // a line longer than a whole batch (journaled, or spilled, under
            // a larger `max_batch_bytes` than this run's) goes alone, in a
            // batch of its own: otherwise no batch would ever take it, and
            // every line behind it would wait forever
            let front = if items_first {
                s.items.front()
            } else {
                s.made.front().and_then(|g| g.entries.front())
            };
            let bytes = match front {
                Some(e) if max_records > 0 && e.bytes > max_bytes => e.bytes,
                _ => max_bytes,
            };
            let mut room = Room {
                records: max_records,
                bytes,
            };
            if items_first {
                if take_items(&mut s, &mut room, &mut fresh, &mut taken_items) {
                    take_made(&mut s, &mut room, &mut segments);
                }
            } else if take_made(&mut s, &mut room, &mut segments) {
                take_items(&mut s, &mut room, &mut fresh, &mut taken_items);
            }
            items_first
        };
        let before = out.len();
        if items_first {
            out.extend(taken_items.drain(..));
        }
        for g in segments {
            out.extend(g.entries);
        }
        out.extend(taken_items.drain(..));
        let n = out.len() - before;
        if n > 0 {
            self.room.notify_waiters();
        }
        // whichever buffer is left empty is the next spare, up to twice what
        // a batch needs
        let mut spare = if fresh.capacity() >= taken_items.capacity() {
            fresh
        } else {
            taken_items
        };
        spare.clear();
        if spare.capacity() > 2 * self.wake_records {
            spare.shrink_to(self.wake_records);
        }
        *self.spare.lock().unwrap_or_else(|p| p.into_inner()) = spare;
        n
    }

    /// Swaps every record waiting for the serializer into `out` (an empty
    /// buffer: the one the serializer emptied last time, so the swap is O(1)
    /// under the lock and producers refill memory already allocated). They
    /// stay counted until [`Queue::put_lines`] returns what became of them.
    /// Returns how many, and their bounds.
    pub fn take_raw(&self, out: &mut VecDeque<Entry>) -> (usize, usize) {
        debug_assert!(out.is_empty());
        let mut s = self.lock();
        if s.raw.is_empty() {
            return (0, 0);
        }
        std::mem::swap(&mut s.raw, out);
        let n = out.len();
        let bytes = s.raw_bytes - s.serializing_bytes;
        s.serializing += n;
        s.serializing_bytes += bytes;
        (n, bytes)
    }

    /// The lines made of `taken` records (of `taken_bytes` bounds) that
    /// [`Queue::take_raw`] handed out, fewer if some could not be made (they
    /// were counted as dropped). They go to the end of the lines; a closed
    /// queue takes them too (they were accepted before it closed).
    pub fn put_lines(&self, lines: VecDeque<Entry>, taken: usize, taken_bytes: usize) {
        let bytes: usize = lines.iter().map(|e| e.bytes).sum();
        let wake = {
            let mut s = self.lock();
            s.serializing -= taken;
            s.serializing_bytes -= taken_bytes;
            s.raw_bytes -= taken_bytes;
            let before = (s.lines(), s.line_bytes);
            s.line_bytes += bytes;
            s.made_records += lines.len();
            if !lines.is_empty() {
                s.made.push_back(Segment {
                    entries: lines,
                    bytes,
                });
            }
            let n = s.lines();
            n > before.0
                && (before.0 == 0
                    || (before.0 < self.wake_records && n >= self.wake_records)
                    || (before.1 < self.wake_bytes && s.line_bytes >= self.wake_bytes))
        };
        if wake {
            self.arrived.notify_one();
        }
        // a line is usually shorter than its bound: there may be room now
        self.room.notify_waiters();
    }

    /// Whether records wait for the serializer (or are being serialized).
    pub fn has_raw(&self) -> bool {
        let s = self.lock();
        !s.raw.is_empty() || s.serializing > 0
    }

    /// Whether a serializer thread runs (if it could not be started,
    /// `Logger::log` serializes on the caller's thread).
    pub fn has_serializer(&self) -> bool {
        self.serializer.get().is_some()
    }

    /// Registers the serializer thread (once).
    pub fn set_serializer(&self, thread: Thread) {
        let _ = self.serializer.set(thread);
    }

    /// The serializer is about to park for long: the next record wakes it.
    /// Returns false (and stays awake) if records wait already.
    pub fn serializer_idles(&self) -> bool {
        self.serializer_idle.store(true, Ordering::SeqCst);
        if !self.lock().raw.is_empty() {
            self.serializer_idle.store(false, Ordering::SeqCst);
            return false;
        }
        true
    }

    fn wake_serializer(&self) {
        self.serializer_idle.store(false, Ordering::Relaxed);
        if let Some(t) = self.serializer.get() {
            t.unpark();
        }
    }

    /// Refuses further pushes (shutdown).
    pub fn close(&self) {
        self.lock().closed = true;
        self.closed.store(true, Ordering::Release);
        self.arrived.notify_one();
        self.room.notify_waiters();
        self.wake_serializer();
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// (records, bytes, oldest accept time) of both stages.
    pub fn depth(&self) -> (usize, usize, Option<Instant>) {
        let s = self.lock();
        let raw = s.raw.front().map(|e| e.accepted_at);
        (s.records(), s.bytes(), earliest(s.oldest_line(), raw))
    }

    /// (records, bytes, oldest accept time) of the lines, what the batcher
    /// can take now.
    pub fn lines_depth(&self) -> (usize, usize, Option<Instant>) {
        let s = self.lock();
        (s.lines(), s.line_bytes, s.oldest_line())
    }
}

/// The earlier of two times, either of which may be missing.
fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// What is left of a batch's limits while `Queue::take` fills it.
struct Room {
    records: usize,
    bytes: usize,
}

impl Room {
    /// How many of `entries`, from the front, fit, and their bytes.
    fn prefix<'a>(&self, entries: impl Iterator<Item = &'a Entry>) -> (usize, usize) {
        let (mut k, mut b) = (0, 0);
        for e in entries.take(self.records) {
            if b + e.bytes > self.bytes {
                break;
            }
            b += e.bytes;
            k += 1;
        }
        (k, b)
    }

    fn spend(&mut self, records: usize, bytes: usize) {
        self.records -= records;
        self.bytes -= bytes;
    }
}

/// Moves the serializer's pieces that fit into `out` (whole pieces moved,
/// the one a boundary falls in split on its smaller side). Returns whether
/// room is left (every piece was taken).
fn take_made(s: &mut State, room: &mut Room, out: &mut Vec<Segment>) -> bool {
    while let Some(front) = s.made.front_mut() {
        if front.entries.len() <= room.records && front.bytes <= room.bytes {
            room.spend(front.entries.len(), front.bytes);
            s.made_records -= front.entries.len();
            s.line_bytes -= front.bytes;
            out.extend(s.made.pop_front());
            continue;
        }
        let (k, b) = room.prefix(front.entries.iter());
        if k > 0 {
            let head = if k <= front.entries.len() / 2 {
                front.entries.drain(..k).collect()
            } else {
                let rest = front.entries.split_off(k);
                std::mem::replace(&mut front.entries, rest)
            };
            front.bytes -= b;
            room.spend(k, b);
            s.made_records -= k;
            s.line_bytes -= b;
            out.push(Segment {
                entries: head,
                bytes: b,
            });
        }
        return false;
    }
    true
}

/// Moves the lines queued as lines that fit into `out` (an empty buffer):
/// all of them by a swap with `fresh` (O(1)), or the smaller side of the
/// boundary copied. Returns whether room is left (all were taken).
fn take_items(
    s: &mut State,
    room: &mut Room,
    fresh: &mut VecDeque<Entry>,
    out: &mut VecDeque<Entry>,
) -> bool {
    // the lines' bytes less the pieces' (a few): `items`' bytes, no scan
    let total = s.line_bytes - s.made.iter().map(|g| g.bytes).sum::<usize>();
    let (k, b) = if s.items.len() <= room.records && total <= room.bytes {
        (s.items.len(), total)
    } else {
        room.prefix(s.items.iter())
    };
    if k == 0 {
        return s.items.is_empty();
    }
    room.spend(k, b);
    s.line_bytes -= b;
    let all = k == s.items.len();
    if all {
        std::mem::swap(&mut s.items, out);
        std::mem::swap(&mut s.items, fresh);
    } else if k <= s.items.len() / 2 {
        out.extend(s.items.drain(..k));
    } else {
        fresh.extend(s.items.drain(k..));
        std::mem::swap(&mut s.items, out);
        std::mem::swap(&mut s.items, fresh);
    }
    all
}

/// Records in `raw` at which a push wakes the serializer before its next
/// look (a burst); see `serialize::Serializer` for the usual rhythm.
const SERIALIZER_WAKE_RECORDS: usize = 1024;

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

    fn record(bound: usize) -> Entry {
        Entry {
            payload: Payload::Record(LogRecord::default()),
            bytes: bound,
            id: None,
            accepted_at: Instant::now(),
            journal: None,
        }
    }

    #[test]
    fn records_count_against_the_bound_but_are_taken_only_as_lines() {
        let q = Queue::new(10, 1_000, 100, 10_000);
        q.try_push(record(300)).expect("record 1");
        q.try_push(entry(100)).expect("a line");
        q.try_push(record(300)).expect("record 2");
        assert_eq!(q.depth().0, 3);
        assert_eq!(q.depth().1, 700, "bounds and line lengths");
        assert!(
            matches!(q.try_push(record(301)), Err(PushError::Full(_))),
            "both stages count against the byte bound"
        );
        // the batcher sees only the line until the serializer is done
        assert_eq!((q.lines_depth().0, q.lines_depth().1), (1, 100));
        let mut raw = VecDeque::new();
        assert_eq!(q.take_raw(&mut raw), (2, 600));
        assert_eq!(raw.len(), 2);
        assert_eq!(q.depth().0, 3, "records being serialized are still held");
        assert!(q.has_raw());
        // one of the two could not be made a line (counted elsewhere); the
        // other's line is shorter than its bound
        q.put_lines(VecDeque::from([entry(250)]), 2, 600);
        assert!(!q.has_raw());
        assert_eq!(q.depth().0, 2);
        assert_eq!(q.depth().1, 350);
        assert_eq!(q.lines_depth().0, 2);
        let mut out = Vec::new();
        assert_eq!(q.take(10, 1_000, &mut out), 2);
        assert_eq!(
            out.iter().map(|e| e.bytes).collect::<Vec<_>>(),
            [100, 250],
            "the stage whose oldest line is older first: the line queued as a line"
        );
        assert_eq!(q.depth(), (0, 0, None));
    }

    #[test]
    fn a_batch_boundary_splits_the_serializers_lines_in_order() {
        let q = Queue::new(100, 10_000, 100, 10_000);
        for _ in 0..5 {
            q.try_push(record(20)).expect("record");
        }
        let mut raw = VecDeque::new();
        q.take_raw(&mut raw);
        let lines: VecDeque<Entry> = (1..=5).map(|n| entry(n * 10)).collect();
        q.put_lines(lines, 5, 100);
        q.try_push(entry(7)).expect("a line");
        let mut out = Vec::new();
        assert_eq!(q.take(2, 10_000, &mut out), 2, "by records");
        assert_eq!(out.iter().map(|e| e.bytes).collect::<Vec<_>>(), [10, 20]);
        out.clear();
        assert_eq!(
            q.take(10, 65, &mut out),
            1,
            "by bytes: 30, then 40 would pass 65"
        );
        assert_eq!(out[0].bytes, 30);
        out.clear();
        assert_eq!(q.take(10, 1_000, &mut out), 3);
        assert_eq!(out.iter().map(|e| e.bytes).collect::<Vec<_>>(), [40, 50, 7]);
        assert_eq!(q.depth(), (0, 0, None));
    }

    #[test]
    fn a_line_queued_as_a_line_is_not_starved_by_the_serializers_backlog() {
        let q = Queue::new(1_000, 100_000, 10, 100_000);
        q.try_push(entry(1))
            .expect("the oldest line, queued as a line");
        let mut taken = Vec::new();
        for round in 0..5 {
            // a backlog larger than a batch keeps arriving from the serializer
            let lines: VecDeque<Entry> = (0..15).map(|_| entry(10)).collect();
            for _ in 0..15 {
                q.try_push(record(10)).expect("record");
            }
            let mut raw = VecDeque::new();
            q.take_raw(&mut raw);
            q.put_lines(lines, 15, 150);
            let mut out = Vec::new();
            assert_eq!(q.take(10, 100_000, &mut out), 10, "round {round}");
            taken.extend(out.iter().map(|e| e.bytes));
        }
        assert_eq!(
            taken[0], 1,
            "the oldest line goes in the first batch: {taken:?}"
        );
        assert_eq!(taken.iter().filter(|&&b| b == 1).count(), 1);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn the_batcher_is_woken_when_the_first_lines_arrive() {
        let q = Queue::new(100, 10_000, 100, 10_000);
        q.try_push(record(20)).expect("record");
        let n = q.arrived.notified();
        tokio::pin!(n);
        assert!(!futures_poll(n.as_mut()), "a record alone does not wake it");
        let mut raw = VecDeque::new();
        q.take_raw(&mut raw);
        q.put_lines(VecDeque::from([entry(10)]), 1, 20);
        assert!(futures_poll(n.as_mut()), "its line does");
    }

    #[test]
    fn one_oversized_entry_fits_an_empty_queue() {
        let q = Queue::new(10, 10, 10, 10);
        q.try_push(entry(50)).expect("alone it fits");
        assert!(q.try_push(entry(1)).is_err());
    }
}
