//! The journal: what [`Logger::ingest`](crate::Logger::ingest) takes is
//! appended here and fsynced before it is acknowledged, so an acknowledged
//! record survives a crash (`kill -9`, a power loss) of the process.
//!
//! Layout of the directory:
//! - `{seg:016}.jrn`: a segment, a sequence of frames, one per ingested group:
//!   the line `J {unix_ms} {records} {bytes} {crc32c}` then the records'
//!   lines exactly as they will be stored (ids given, redaction applied);
//! - `{seg:016}.done`: lines `{first} {count}`: records of the segment that
//!   are secured, i.e. durable elsewhere (in a spill file written before the
//!   upload, see `spill.rs`), so they must not be queued again. A spill
//!   file's header names its records' positions too, and a start marks
//!   those secured (a crash can come between the spill file and `.done`).
//!
//! At start, every record of a segment that its `.done` does not cover is
//! queued again (a torn last frame, never acknowledged, is cut off: a write
//! that fails is cut back and closes its segment, so no acknowledged frame
//! ever follows a damaged one), and the
//! ids of all records still in the journal seed the deduplication window. A
//! segment is deleted once it is sealed, all its records are secured, and its
//! last write is older than the deduplication window (so a sender's late
//! retry is still recognised after a restart), or earlier when the journal
//! needs the room.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const CRC: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISCSI);
/// A segment is sealed (a new one started) past this size, or past a
/// quarter of the journal's cap if that is smaller: only sealed segments
/// are ever deleted, so the one being written must not fill the journal.
const SEGMENT_BYTES: u64 = 16 << 20;

/// Where a record sits in the journal: segment and index within it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct JournalRef {
    pub seg: u64,
    pub index: u64,
}

/// A record found in the journal at start.
#[derive(Debug)]
pub(crate) struct Recovered {
    pub at: JournalRef,
    /// The line as it will be stored (newline included).
    pub line: Vec<u8>,
    /// When its group was journaled (Unix milliseconds).
    pub unix_ms: u64,
    /// Not secured before the restart: to be queued again.
    pub pending: bool,
}

/// Why an append failed.
#[derive(Debug)]
pub(crate) enum AppendError {
    /// Over `max_bytes`: nothing was written; try again later.
    Full,
    /// The disk refused; nothing was acknowledged.
    Io(io::Error),
}

#[derive(Debug, Default)]
struct Seg {
    records: u64,
    /// The indices secured: a set, so securing a record twice (a batch
    /// secured again after a partial failure) counts it once.
    secured: BTreeSet<u64>,
    bytes: u64,
    last_ms: u64,
}

impl Seg {
    fn pending(&self) -> u64 {
        self.records.saturating_sub(self.secured.len() as u64)
    }
}

#[derive(Debug)]
struct Writer {
    seg: u64,
    file: File,
    next_index: u64,
    /// Where the segment's last whole frame ends.
    bytes: u64,
    /// A write or fsync failed in this segment: the next append starts a new
    /// one, so no acknowledged frame ever follows a damaged one (a restart
    /// cuts a segment at its first damaged frame).
    broken: bool,
}

/// The journal directory; `append` from any task, `secure` from the batcher.
#[derive(Debug)]
pub(crate) struct Journal {
    dir: PathBuf,
    max_bytes: u64,
    window_ms: u64,
    /// This journal's identity (`journal.id`, made when the directory is
    /// first used): spill files name it with their records' positions, so
    /// positions of another journal (a directory reset, a spill directory
    /// shared) are never taken for this one's.
    id: String,
    /// Taken on the blocking pool only, for a whole append (see
    /// [`Journal::append`]).
    writer: Mutex<Writer>,
    /// The segment being written (never deleted).
    current: AtomicU64,
    segs: Mutex<BTreeMap<u64, Seg>>,
}

fn seg_path(dir: &Path, seg: u64, ext: &str) -> PathBuf {
    dir.join(format!("{seg:016}.{ext}"))
}

fn now_ms() -> u64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000).max(0) as u64
}

/// One frame: when it was written (Unix milliseconds) and its lines.
type Frame<'a> = (u64, Vec<&'a [u8]>);

/// The frames of a segment's bytes: (unix_ms, lines) each, and where the
/// last whole frame ends (anything after it is a torn write).
fn parse_frames(data: &[u8]) -> (Vec<Frame<'_>>, usize) {
    let mut frames = Vec::new();
    let mut at = 0;
    while at < data.len() {
        let Some(nl) = data[at..].iter().position(|&b| b == b'\n') else {
            break;
        };
        let head = std::str::from_utf8(&data[at..at + nl]).unwrap_or("");
        let f: Vec<&str> = head.split(' ').collect();
        let parsed = match f.as_slice() {
            ["J", ms, n, len, crc] => (|| {
                Some((
                    ms.parse::<u64>().ok()?,
                    n.parse::<usize>().ok()?,
                    len.parse::<usize>().ok()?,
                    u32::from_str_radix(crc, 16).ok()?,
                ))
            })(),
            _ => None,
        };
        let Some((ms, n, len, crc)) = parsed else {
            break;
        };
        let start = at + nl + 1;
        let Some(payload) = start.checked_add(len).and_then(|end| data.get(start..end)) else {
            break;
        };
        if CRC.checksum(payload) != crc {
            break;
        }
        let lines: Vec<&[u8]> = payload.split_inclusive(|&b| b == b'\n').collect();
        if lines.len() != n {
            break;
        }
        frames.push((ms, lines));
        at = start + len;
    }
    (frames, at)
}

/// The secured ranges of a `.done` file (a torn last line is ignored).
fn parse_done(text: &str) -> Vec<(u64, u64)> {
    text.lines()
        .filter_map(|l| {
            let (a, b) = l.split_once(' ')?;
            Some((a.parse().ok()?, b.parse().ok()?))
        })
        .collect()
}

/// The journal's identity in `dir/journal.id`, made (durably) if missing.
fn journal_id(dir: &Path) -> io::Result<String> {
    let path = dir.join("journal.id");
    match fs::read_to_string(&path) {
        Ok(s) if !s.trim().is_empty() => return Ok(s.trim().to_string()),
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let id = uuid::Uuid::new_v4().to_string();
    let tmp = dir.join(".journal.id.tmp");
    let mut f = File::create(&tmp)?;
    f.write_all(id.as_bytes())?;
    f.sync_all()?;
    drop(f);
    fs::rename(&tmp, &path)?;
    sync_dir(dir);
    Ok(id)
}

fn sync_dir(dir: &Path) {
    #[cfg(unix)]
    if let Err(e) = File::open(dir).and_then(|d| d.sync_all()) {
        tracing::warn!(dir = %dir.display(), error = %e, "could not fsync the journal directory");
    }
    #[cfg(not(unix))]
    let _ = dir;
}

impl Journal {
    /// Opens (creating) the journal in `dir` and reads what it holds.
    pub fn open(
        dir: &Path,
        max_bytes: u64,
        window: Duration,
    ) -> io::Result<(Journal, Vec<Recovered>)> {
        fs::create_dir_all(dir)?;
        let id = journal_id(dir)?;
        let mut segs = BTreeMap::new();
        let mut recovered = Vec::new();
        let mut names: Vec<u64> = fs::read_dir(dir)?
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name();
                let name = name.to_str()?;
                name.strip_suffix(".jrn")?.parse().ok()
            })
            .collect();
        names.sort_unstable();
        for &seg in &names {
            let path = seg_path(dir, seg, "jrn");
            let mut data = Vec::new();
            File::open(&path)?.read_to_end(&mut data)?;
            let (frames, good) = parse_frames(&data);
            if good < data.len() {
                tracing::warn!(file = %path.display(), kept = good, torn = data.len() - good, "journal segment ends in a torn or damaged frame; cut there (it was never acknowledged)");
                OpenOptions::new()
                    .write(true)
                    .open(&path)?
                    .set_len(good as u64)?;
            }
            let done = fs::read_to_string(seg_path(dir, seg, "done")).unwrap_or_default();
            let done = parse_done(&done);
            let is_done = |i: u64| done.iter().any(|&(a, n)| i >= a && i < a.saturating_add(n));
            let mut s = Seg {
                bytes: good as u64,
                ..Seg::default()
            };
            let mut index = 0u64;
            for (ms, lines) in frames {
                s.last_ms = s.last_ms.max(ms);
                for line in lines {
                    let secured = is_done(index);
                    if secured {
                        s.secured.insert(index);
                    }
                    recovered.push(Recovered {
                        at: JournalRef { seg, index },
                        line: line.to_vec(),
                        unix_ms: ms,
                        pending: !secured,
                    });
                    index += 1;
                }
            }
            s.records = index;
            segs.insert(seg, s);
        }
        // always a fresh segment for this run: the old ones are sealed
        let seg = names.last().map_or(1, |s| s + 1);
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(seg_path(dir, seg, "jrn"))?;
        sync_dir(dir);
        segs.insert(seg, Seg::default());
        let journal = Journal {
            dir: dir.to_path_buf(),
            max_bytes,
            window_ms: window.as_millis().min(u64::MAX as u128) as u64,
            id,
            writer: Mutex::new(Writer {
                seg,
                file,
                next_index: 0,
                bytes: 0,
                broken: false,
            }),
            current: AtomicU64::new(seg),
            segs: Mutex::new(segs),
        };
        journal.collect()?;
        // what was just deleted (all secured, out of the window) is not news
        let kept = journal.lock_segs().keys().copied().collect::<Vec<_>>();
        recovered.retain(|r| kept.contains(&r.at.seg));
        Ok((journal, recovered))
    }

    /// This journal's identity (see the field).
    pub fn id(&self) -> &str {
        &self.id
    }

    fn lock_segs(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Seg>> {
        self.segs.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Bytes the journal holds.
    pub fn bytes(&self) -> u64 {
        self.lock_segs().values().map(|s| s.bytes).sum()
    }

    /// Records journaled and not yet secured.
    pub fn pending(&self) -> u64 {
        self.lock_segs().values().map(Seg::pending).sum()
    }

    /// Appends one group (`lines`, each ending in a newline) durably and
    /// returns where its first record sits; the others follow in order.
    ///
    /// The append runs whole on the blocking pool, under the writer's lock,
    /// and finishes even if this future is dropped: the frame on disk and
    /// the indices handed out never fall out of step (they did when a
    /// caller's timeout dropped the future mid-write: later records got the
    /// indices of earlier ones, and `.done` marked the wrong records). A
    /// group journaled that way is not acknowledged, stays pending, and the
    /// next start sends it.
    pub async fn append(self: &Arc<Self>, lines: &[&[u8]]) -> Result<JournalRef, AppendError> {
        let len: usize = lines.iter().map(|l| l.len()).sum();
        let ms = now_ms();
        let mut frame = Vec::with_capacity(len + 64);
        let mut crc = CRC.digest();
        for l in lines {
            crc.update(l);
        }
        let _ = writeln!(frame, "J {ms} {} {len} {:08x}", lines.len(), crc.finalize());
        for l in lines {
            frame.extend_from_slice(l);
        }
        let (me, records) = (self.clone(), lines.len() as u64);
        tokio::task::spawn_blocking(move || me.append_blocking(&frame, records, len as u64, ms))
            .await
            .map_err(|e| AppendError::Io(io::Error::other(e)))?
    }

    fn append_blocking(
        &self,
        frame: &[u8],
        records: u64,
        len: u64,
        ms: u64,
    ) -> Result<JournalRef, AppendError> {
        let mut w = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        if self.bytes() + len > self.max_bytes {
            // make room from what only the deduplication window still keeps
            self.collect_for_room(len).map_err(AppendError::Io)?;
            if self.bytes() + len > self.max_bytes && w.bytes > 0 && self.all_secured(w.seg) {
                // the segment being written holds the room, and all it holds
                // is secured: seal it, so it can go
                self.roll(&mut w).map_err(AppendError::Io)?;
                self.collect_for_room(len).map_err(AppendError::Io)?;
            }
            if self.bytes() + len > self.max_bytes {
                return Err(AppendError::Full);
            }
        }
        if w.broken || w.bytes >= SEGMENT_BYTES.min(self.max_bytes / 4).max(1) {
            self.roll(&mut w).map_err(AppendError::Io)?;
        }
        if let Err(e) = (&w.file).write_all(frame).and_then(|()| w.file.sync_data()) {
            // not acknowledged: cut what it may have left (best effort), and
            // write the next group into a new segment whatever this says
            if let Err(cut) = w.file.set_len(w.bytes) {
                tracing::warn!(error = %cut, "could not cut a failed journal write; its segment is closed");
            }
            w.broken = true;
            return Err(AppendError::Io(e));
        }
        let at = JournalRef {
            seg: w.seg,
            index: w.next_index,
        };
        w.next_index += records;
        w.bytes += frame.len() as u64;
        let mut segs = self.lock_segs();
        let s = segs.entry(w.seg).or_default();
        s.records += records;
        s.bytes += frame.len() as u64;
        s.last_ms = ms;
        Ok(at)
    }

    /// Whether every record of `seg` is secured.
    fn all_secured(&self, seg: u64) -> bool {
        self.lock_segs().get(&seg).is_none_or(|s| s.pending() == 0)
    }

    /// The most a group may take (its frame's head line included): one that
    /// needs more is never taken.
    pub fn max_group_bytes(&self) -> u64 {
        self.max_bytes.saturating_sub(64)
    }

    /// Seals the writer's segment and starts the next one.
    fn roll(&self, w: &mut Writer) -> io::Result<()> {
        let seg = w.seg + 1;
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(seg_path(&self.dir, seg, "jrn"))?;
        sync_dir(&self.dir);
        *w = Writer {
            seg,
            file,
            next_index: 0,
            bytes: 0,
            broken: false,
        };
        self.lock_segs().insert(seg, Seg::default());
        self.current.store(seg, Ordering::SeqCst);
        self.collect()
    }

    /// Notes records as secured (their batch is durable elsewhere): appends
    /// to each segment's `.done` and fsyncs it, then deletes what is no
    /// longer needed. Blocking IO: call from a blocking thread.
    pub fn secure(&self, refs: &[JournalRef]) -> io::Result<()> {
        let mut by_seg: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
        for r in refs {
            by_seg.entry(r.seg).or_default().push(r.index);
        }
        for (seg, mut idx) in by_seg {
            idx.sort_unstable();
            let mut text = String::new();
            let mut i = 0;
            while i < idx.len() {
                let first = idx[i];
                let mut n = 1;
                while i + n < idx.len() && idx[i + n] == first + n as u64 {
                    n += 1;
                }
                text.push_str(&format!("{first} {n}\n"));
                i += n;
            }
            let mut f = OpenOptions::new()
                .create(true)
                .append(true)
                .open(seg_path(&self.dir, seg, "done"))?;
            f.write_all(text.as_bytes())?;
            f.sync_data()?;
            if let Some(s) = self.lock_segs().get_mut(&seg) {
                let records = s.records;
                s.secured
                    .extend(idx.iter().copied().filter(|&i| i < records));
            }
        }
        self.collect()
    }

    /// Deletes sealed segments whose records are all secured and whose last
    /// write has left the deduplication window (the current one never is).
    fn collect(&self) -> io::Result<()> {
        let now = now_ms();
        let window = self.window_ms;
        self.delete_where(|_, s| now.saturating_sub(s.last_ms) > window)
    }

    /// Also deletes secured segments still inside the window, oldest first,
    /// until `need` more bytes fit.
    fn collect_for_room(&self, need: u64) -> io::Result<()> {
        self.collect()?;
        let max = self.max_bytes;
        let mut total = self.bytes();
        self.delete_where(|_, s| {
            let go = total + need > max;
            if go {
                total -= s.bytes;
            }
            go
        })
    }

    fn delete_where(&self, mut pick: impl FnMut(u64, &Seg) -> bool) -> io::Result<()> {
        let current = self.current.load(Ordering::SeqCst);
        let victims: Vec<u64> = {
            let segs = self.lock_segs();
            segs.iter()
                .filter(|(&seg, s)| seg < current && s.pending() == 0)
                .filter_map(|(&seg, s)| pick(seg, s).then_some(seg))
                .collect()
        };
        for seg in victims {
            for ext in ["jrn", "done"] {
                match fs::remove_file(seg_path(&self.dir, seg, ext)) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e),
                }
            }
            self.lock_segs().remove(&seg);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmpdir(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!("llm-log-journal-{name}-{}", uuid::Uuid::new_v4()))
    }

    #[tokio::test(flavor = "current_thread")]
    async fn appended_records_come_back_until_secured() {
        let d = tmpdir("rt");
        let (j, rec) = Journal::open(&d, 1 << 20, Duration::ZERO).expect("open");
        let j = std::sync::Arc::new(j);
        assert!(rec.is_empty());
        let a = j
            .append(&[b"{\"id\":\"a\"}\n", b"{\"id\":\"b\"}\n"])
            .await
            .expect("a");
        let c = j.append(&[b"{\"id\":\"c\"}\n"]).await.expect("c");
        assert_eq!((a.index, c.index, a.seg), (0, 2, c.seg));
        j.secure(&[a]).expect("secure");
        assert_eq!(j.pending(), 2);
        drop(j);
        // a restart: the unsecured come back as pending, the secured as known
        let (j, rec) = Journal::open(&d, 1 << 20, Duration::from_secs(600)).expect("reopen");
        let j = std::sync::Arc::new(j);
        let pending: Vec<&[u8]> = rec
            .iter()
            .filter(|r| r.pending)
            .map(|r| &r.line[..])
            .collect();
        assert_eq!(pending, [&b"{\"id\":\"b\"}\n"[..], b"{\"id\":\"c\"}\n"]);
        assert_eq!(
            rec.len(),
            3,
            "secured records stay for the deduplication window"
        );
        let refs: Vec<JournalRef> = rec.iter().filter(|r| r.pending).map(|r| r.at).collect();
        j.secure(&refs).expect("secure");
        drop(j);
        // all secured, window over: the old segment goes
        let (_j, rec) = Journal::open(&d, 1 << 20, Duration::ZERO).expect("reopen");
        assert!(rec.is_empty(), "{rec:?}");
        let left: Vec<_> = fs::read_dir(&d)
            .expect("dir")
            .flatten()
            .filter(|e| e.file_name() != "journal.id")
            .collect();
        assert_eq!(left.len(), 1, "only the new, empty segment: {left:?}");
        fs::remove_dir_all(&d).expect("cleanup");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_torn_last_frame_is_cut_off_and_a_full_journal_refuses() {
        let d = tmpdir("torn");
        let (j, _) = Journal::open(&d, 200, Duration::from_secs(600)).expect("open");
        let j = std::sync::Arc::new(j);
        let at = j.append(&[b"{\"id\":\"a\"}\n"]).await.expect("a");
        assert!(matches!(
            j.append(&[&[b'x'; 300][..]]).await,
            Err(AppendError::Full)
        ));
        drop(j);
        let path = seg_path(&d, at.seg, "jrn");
        let mut f = OpenOptions::new().append(true).open(&path).expect("open");
        f.write_all(b"J 1 1 20 00000000\n{\"id\":\"tor")
            .expect("torn");
        drop(f);
        let (_j, rec) = Journal::open(&d, 1 << 20, Duration::from_secs(600)).expect("reopen");
        assert_eq!(rec.len(), 1);
        assert_eq!(rec[0].line, b"{\"id\":\"a\"}\n");
        assert!(fs::read(&path)
            .expect("read")
            .ends_with(b"{\"id\":\"a\"}\n"));
        fs::remove_dir_all(&d).expect("cleanup");
    }

    fn pending_lines(rec: &[Recovered]) -> Vec<String> {
        rec.iter()
            .filter(|r| r.pending)
            .map(|r| String::from_utf8_lossy(&r.line).trim_end().to_string())
            .collect()
    }

    /// An append whose future is dropped mid-write (a caller's timeout)
    /// still lands its frame; the indices handed out after it must match
    /// what a restart counts. They did not: `a` took the dropped group's
    /// index, securing `b` marked `a`'s slot, and after a restart `a` (acknowledged,
    /// never secured) was gone and `b` (secured) came back.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_append_dropped_mid_write_keeps_the_indices_in_step() {
        let d = tmpdir("dropped");
        let (j, _) = Journal::open(&d, 1 << 20, Duration::from_secs(600)).expect("open");
        let j = Arc::new(j);
        // polled once (its write starts), then dropped, as a caller's
        // timeout drops it
        let mut cut = Box::pin(j.append(&[b"{\"id\":\"c\"}\n"]));
        let _ = std::future::Future::poll(
            cut.as_mut(),
            &mut std::task::Context::from_waker(std::task::Waker::noop()),
        );
        drop(cut);
        // the dropped append finishes on its own
        let t0 = std::time::Instant::now();
        while j.pending() == 0 && t0.elapsed() < Duration::from_secs(10) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(j.pending(), 1, "the dropped group landed");
        let a = j.append(&[b"{\"id\":\"a\"}\n"]).await.expect("a");
        let b = j.append(&[b"{\"id\":\"b\"}\n"]).await.expect("b");
        assert_eq!((a.index, b.index), (1, 2));
        j.secure(&[b]).expect("secure b");
        drop(j);
        let (_j, rec) = Journal::open(&d, 1 << 20, Duration::from_secs(600)).expect("reopen");
        // `c` was never acknowledged but is durable: the next start sends it
        assert_eq!(pending_lines(&rec), [r#"{"id":"c"}"#, r#"{"id":"a"}"#]);
        fs::remove_dir_all(&d).expect("cleanup");
    }

    /// A write that fails part-way leaves a damaged frame; at restart a
    /// segment is cut at its first damaged frame. The next group goes into
    /// a new segment, so nothing acknowledged after the failure is cut with
    /// it (it was appended after the damage, and lost at restart).
    #[tokio::test(flavor = "current_thread")]
    async fn after_a_failed_write_the_next_group_starts_a_new_segment() {
        let d = tmpdir("failed-write");
        let (j, _) = Journal::open(&d, 1 << 20, Duration::from_secs(600)).expect("open");
        let j = Arc::new(j);
        let a = j.append(&[b"{\"id\":\"a\"}\n"]).await.expect("a");
        let path = seg_path(&d, a.seg, "jrn");
        {
            // what a write cut short by the disk leaves, and a handle that
            // cannot write (nor cut it back): the next write fails
            let mut f = OpenOptions::new().append(true).open(&path).expect("open");
            f.write_all(b"J 1 1 20 00000000\n{\"id\":\"to")
                .expect("torn");
            j.writer.lock().expect("writer").file = File::open(&path).expect("read-only");
        }
        assert!(matches!(
            j.append(&[b"{\"id\":\"x\"}\n"]).await,
            Err(AppendError::Io(_))
        ));
        let b = j.append(&[b"{\"id\":\"b\"}\n"]).await.expect("b");
        assert_eq!((b.seg, b.index), (a.seg + 1, 0));
        drop(j);
        let (_j, rec) = Journal::open(&d, 1 << 20, Duration::from_secs(600)).expect("reopen");
        assert_eq!(pending_lines(&rec), [r#"{"id":"a"}"#, r#"{"id":"b"}"#]);
        fs::remove_dir_all(&d).expect("cleanup");
    }

    /// Securing the same records twice (a batch secured again after a
    /// partial failure) counts them once: the segment is not deleted while
    /// another of its records is still pending.
    #[tokio::test(flavor = "current_thread")]
    async fn securing_twice_counts_once() {
        let d = tmpdir("twice");
        let (j, _) = Journal::open(&d, 1 << 20, Duration::ZERO).expect("open");
        let j = Arc::new(j);
        let a = j
            .append(&[b"{\"id\":\"a\"}\n", b"{\"id\":\"b\"}\n"])
            .await
            .expect("ab");
        drop(j);
        // restart: the segment is sealed, `a` and `b` pending
        let (j, rec) = Journal::open(&d, 1 << 20, Duration::ZERO).expect("reopen");
        assert_eq!(pending_lines(&rec).len(), 2);
        j.secure(&[a]).expect("secure a");
        j.secure(&[a]).expect("secure a again");
        assert_eq!(j.pending(), 1);
        drop(j);
        let (_j, rec) = Journal::open(&d, 1 << 20, Duration::ZERO).expect("reopen");
        assert_eq!(pending_lines(&rec), [r#"{"id":"b"}"#]);
        fs::remove_dir_all(&d).expect("cleanup");
    }

    /// A journal whose cap is below the 16 MiB segment size: the segment
    /// being written is sealed at a quarter of the cap, so what is secured
    /// can go and the journal never fills for good (it did: only sealed
    /// segments are deleted, and the first one was never sealed).
    #[tokio::test(flavor = "current_thread")]
    async fn a_small_journal_keeps_taking_what_is_secured() {
        let d = tmpdir("small");
        let (j, _) = Journal::open(&d, 4000, Duration::from_secs(600)).expect("open");
        let j = Arc::new(j);
        let line = format!("{{\"id\":\"{}\"}}\n", "x".repeat(90));
        for i in 0..200 {
            let at = j
                .append(&[line.as_bytes()])
                .await
                .unwrap_or_else(|e| panic!("append {i}: {e:?}"));
            j.secure(&[at]).expect("secure");
        }
        assert!(j.bytes() <= 4000, "{}", j.bytes());
        // unsecured records are kept: the journal is full, not emptied
        let mut pending = 0;
        while j.append(&[line.as_bytes()]).await.is_ok() {
            pending += 1;
            assert!(pending < 100, "the cap is not held");
        }
        assert!(pending > 0);
        assert_eq!(j.pending(), pending);
        fs::remove_dir_all(&d).expect("cleanup");
    }
}
