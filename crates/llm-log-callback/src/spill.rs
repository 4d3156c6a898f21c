//! The spill directory: batches that could not be uploaded, each written
//! atomically (temporary file, fsync, rename, fsync of the directory) with a
//! checksum, under a size cap; read back oldest first for replay. A corrupt or
//! truncated file is moved to `quarantine/` and reported, never fatal. A
//! batch storage refuses for good goes to `dead-letter/`, its header carrying
//! the reason; move it back into the directory to have it replayed.
//!
//! File format: the line `LLMLOGSPILL1`, one JSON line of [`SpillHeader`],
//! then the payload exactly as it is to be written to storage. Temporary
//! files are hidden (`.name.tmp`) and never listed.

use std::fs;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};

use crate::journal::JournalRef;
use crate::uploader::Target;

const MAGIC: &[u8] = b"LLMLOGSPILL1\n";
const EXT: &str = "spill";
const DEAD_LETTER: &str = "dead-letter";
/// Batches of journaled records, made durable here before their upload
/// starts (see `journal.rs`); removed once written, moved into the spill
/// directory when not, and at start (a crash) for the replay to reconcile.
const INFLIGHT: &str = "inflight";

/// What a spill file says about its payload.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SpillHeader {
    /// Where and how the payload is to be written.
    pub target: Target,
    /// Records in the payload.
    pub records: u64,
    /// Uncompressed bytes of the records.
    pub raw_bytes: u64,
    /// Payload length in bytes.
    pub payload_len: u64,
    /// Hex SHA-256 of the payload.
    pub sha256: String,
    /// When the spill was written (Unix milliseconds).
    pub created_ms: u64,
    /// Why storage refused the batch for good (dead-letter files only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Journal mode: the journal's identity and where the batch's records
    /// sit in it, as `[segment, first index, count]` ranges. At start they
    /// count as secured (in that journal only, and only if this file is
    /// whole), so a crash between writing this file and marking them in the
    /// journal does not send them twice (once from here, once from the
    /// journal).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub journal_id: Option<String>,
    /// See `journal_id`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub journal: Vec<[u64; 3]>,
}

/// A batch's records in a journal: its identity and their positions.
pub(crate) type JournalRecords<'a> = Option<(&'a str, &'a [JournalRef])>;

impl SpillHeader {
    fn new(
        target: &Target,
        records: u64,
        raw_bytes: u64,
        payload: &[u8],
        reason: Option<&str>,
        journal: JournalRecords<'_>,
    ) -> Self {
        let created_ms = time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000;
        SpillHeader {
            target: target.clone(),
            records,
            raw_bytes,
            payload_len: payload.len() as u64,
            sha256: hex(&Sha256::digest(payload)),
            created_ms: created_ms as u64,
            reason: reason.map(str::to_string),
            journal_id: journal.map(|(id, _)| id.to_string()),
            journal: journal.map_or_else(Vec::new, |(_, refs)| journal_ranges(refs)),
        }
    }

    /// The journal positions its `journal` ranges name.
    pub(crate) fn journal_refs(&self) -> impl Iterator<Item = JournalRef> + '_ {
        self.journal.iter().flat_map(|&[seg, first, count]| {
            (first..first.saturating_add(count)).map(move |index| JournalRef { seg, index })
        })
    }
}

/// `refs` as `[segment, first, count]` ranges (sorted, runs merged).
fn journal_ranges(refs: &[JournalRef]) -> Vec<[u64; 3]> {
    let mut sorted: Vec<(u64, u64)> = refs.iter().map(|r| (r.seg, r.index)).collect();
    sorted.sort_unstable();
    sorted.dedup();
    let mut out: Vec<[u64; 3]> = Vec::new();
    for (seg, index) in sorted {
        match out.last_mut() {
            Some([s, first, count]) if *s == seg && *first + *count == index => *count += 1,
            _ => out.push([seg, index, 1]),
        }
    }
    out
}

/// Why a spill file could not be used.
#[derive(Debug)]
pub(crate) enum ReadError {
    /// Unreadable right now (permissions, IO): leave it for later.
    Io(io::Error),
    /// Its content is wrong: quarantine it.
    Corrupt(String),
}

#[derive(Debug)]
pub(crate) struct SpillDir {
    dir: PathBuf,
    max_bytes: u64,
    used: AtomicU64,
    instance: String,
    seq: AtomicU64,
}

/// A spill file's header alone (its payload is neither read nor checked).
fn read_header(path: &Path) -> Option<SpillHeader> {
    use std::io::BufRead as _;
    let mut r = io::BufReader::new(fs::File::open(path).ok()?);
    let mut magic = Vec::new();
    r.read_until(b'\n', &mut magic).ok()?;
    if magic != MAGIC {
        return None;
    }
    let mut line = Vec::new();
    r.read_until(b'\n', &mut line).ok()?;
    serde_json::from_slice(&line).ok()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl SpillDir {
    /// Opens (creating) `dir` and measures what it holds.
    pub fn open(dir: &Path, max_bytes: u64, instance: &str) -> io::Result<Self> {
        fs::create_dir_all(dir)?;
        fs::create_dir_all(dir.join("quarantine"))?;
        fs::create_dir_all(dir.join(DEAD_LETTER))?;
        fs::create_dir_all(dir.join(INFLIGHT))?;
        // batches a crash left on their way: replay them like spills (their
        // targets are kept, so one that did land is found, not written twice)
        for e in fs::read_dir(dir.join(INFLIGHT))?.flatten() {
            let p = e.path();
            if is_spill_name(&p) {
                if let Some(name) = p.file_name() {
                    fs::rename(&p, dir.join(name))?;
                }
            }
        }
        let s = SpillDir {
            dir: dir.to_path_buf(),
            max_bytes,
            used: AtomicU64::new(0),
            instance: instance.to_string(),
            seq: AtomicU64::new(0),
        };
        // dead letters count against the cap too: the disk is bounded
        let dead = fs::read_dir(dir.join(DEAD_LETTER))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| is_spill_name(p));
        let used: u64 = s
            .list()?
            .into_iter()
            .chain(dead)
            .filter_map(|p| fs::metadata(p).ok())
            .map(|m| m.len())
            .sum();
        s.used.store(used, Ordering::Relaxed);
        Ok(s)
    }

    /// Bytes held by spill files.
    pub fn used_bytes(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }

    /// Writes one batch durably. Fails (without writing) when the cap would be exceeded.
    pub fn write(
        &self,
        target: &Target,
        records: u64,
        raw_bytes: u64,
        payload: &[u8],
        journal: JournalRecords<'_>,
    ) -> io::Result<PathBuf> {
        let header = SpillHeader::new(target, records, raw_bytes, payload, None, journal);
        self.write_into(&self.dir, &header, payload, true)
    }

    /// Writes a batch storage refused for good into `dead-letter/`, with the
    /// reason in its header. It counts against the cap like a spill file.
    pub fn write_dead_letter(
        &self,
        target: &Target,
        records: u64,
        raw_bytes: u64,
        payload: &[u8],
        reason: &str,
        journal: JournalRecords<'_>,
    ) -> io::Result<PathBuf> {
        let header = SpillHeader::new(target, records, raw_bytes, payload, Some(reason), journal);
        self.write_into(&self.dir.join(DEAD_LETTER), &header, payload, true)
    }

    fn write_into(
        &self,
        dir: &Path,
        header: &SpillHeader,
        payload: &[u8],
        enforce_cap: bool,
    ) -> io::Result<PathBuf> {
        let mut head = serde_json::to_vec(header).map_err(io::Error::other)?;
        head.push(b'\n');
        let total = (MAGIC.len() + head.len() + payload.len()) as u64;
        let before = self.used.fetch_add(total, Ordering::Relaxed);
        if enforce_cap && before + total > self.max_bytes {
            self.used.fetch_sub(total, Ordering::Relaxed);
            return Err(io::Error::other(format!(
                "spill directory is full ({before} of {} bytes used; this batch needs {total})",
                self.max_bytes
            )));
        }
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        let name = format!("{:016}-{}-{seq:08}.{EXT}", header.created_ms, self.instance);
        // hidden and with another extension, so a listing never sees it
        let tmp = dir.join(format!(".{name}.tmp"));
        let dst = dir.join(&name);
        let result = (|| {
            let mut f = fs::File::create(&tmp)?;
            f.write_all(MAGIC)?;
            f.write_all(&head)?;
            f.write_all(payload)?;
            f.sync_all()?;
            drop(f);
            fs::rename(&tmp, &dst)
        })();
        if let Err(e) = result {
            self.used.fetch_sub(total, Ordering::Relaxed);
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
        // The file is complete and in place: from here on it is spilled,
        // whatever the directory's fsync says (a failure only weakens the
        // rename's durability across a power loss; replay still finds it).
        sync_dir(dir);
        Ok(dst)
    }

    /// Writes a batch about to be uploaded into `inflight/`, durably, outside
    /// the cap (at most the uploads in flight).
    pub fn write_inflight(
        &self,
        target: &Target,
        records: u64,
        raw_bytes: u64,
        payload: &[u8],
        journal: JournalRecords<'_>,
    ) -> io::Result<PathBuf> {
        let header = SpillHeader::new(target, records, raw_bytes, payload, None, journal);
        let path = self.write_into(&self.dir.join(INFLIGHT), &header, payload, false)?;
        // not spilled (yet): `promote` counts it if it comes to that
        let len = fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        self.used
            .fetch_sub(len.min(self.used_bytes()), Ordering::Relaxed);
        Ok(path)
    }

    /// Moves an in-flight batch that could not be written into the spill
    /// directory (a rename: it is already durable).
    pub fn promote(&self, inflight: &Path) -> io::Result<PathBuf> {
        let name = inflight
            .file_name()
            .ok_or_else(|| io::Error::other("an in-flight file has no name"))?;
        let dst = self.dir.join(name);
        let len = fs::metadata(inflight)?.len();
        fs::rename(inflight, &dst)?;
        sync_dir(&self.dir);
        self.used.fetch_add(len, Ordering::Relaxed);
        Ok(dst)
    }

    /// Removes an in-flight batch once it is written.
    pub fn remove_inflight(&self, inflight: &Path) -> io::Result<()> {
        fs::remove_file(inflight)
    }

    /// Spill files, oldest first (names start with the creation time).
    pub fn list(&self) -> io::Result<Vec<PathBuf>> {
        let mut v: Vec<PathBuf> = fs::read_dir(&self.dir)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| is_spill_name(p) && p.is_file())
            .collect();
        v.sort();
        Ok(v)
    }

    /// Journal mode, at start: the positions in the journal `journal_id`
    /// that spill and dead-letter files (in-flight ones were just moved in)
    /// hold. Only whole files count (read and checked like a replay reads
    /// them): a damaged one will be quarantined, so its records stay with
    /// the journal.
    pub fn journal_refs(&self, journal_id: &str) -> io::Result<Vec<JournalRef>> {
        let dead = fs::read_dir(self.dir.join(DEAD_LETTER))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| is_spill_name(p));
        let mut refs = Vec::new();
        for path in self.list()?.into_iter().chain(dead) {
            let names_it =
                read_header(&path).is_some_and(|h| h.journal_id.as_deref() == Some(journal_id));
            if !names_it {
                continue;
            }
            if let Ok((header, _)) = self.read(&path) {
                refs.extend(header.journal_refs());
            }
        }
        Ok(refs)
    }

    /// Reads and verifies one file.
    pub fn read(&self, path: &Path) -> Result<(SpillHeader, Vec<u8>), ReadError> {
        let data = fs::read(path).map_err(ReadError::Io)?;
        let rest = data
            .strip_prefix(MAGIC)
            .ok_or_else(|| ReadError::Corrupt("does not start with LLMLOGSPILL1".into()))?;
        let nl = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or_else(|| ReadError::Corrupt("header line is truncated".into()))?;
        let header: SpillHeader = serde_json::from_slice(&rest[..nl])
            .map_err(|e| ReadError::Corrupt(format!("header is not valid JSON: {e}")))?;
        let payload = &rest[nl + 1..];
        if payload.len() as u64 != header.payload_len {
            return Err(ReadError::Corrupt(format!(
                "payload is {} bytes, header says {} (truncated?)",
                payload.len(),
                header.payload_len
            )));
        }
        if hex(&Sha256::digest(payload)) != header.sha256 {
            return Err(ReadError::Corrupt("payload checksum does not match".into()));
        }
        Ok((header, payload.to_vec()))
    }

    /// Moves a spill file storage refused for good into `dead-letter/`,
    /// rewriting its header with the reason (atomically, like a spill).
    pub fn move_to_dead_letter(
        &self,
        path: &Path,
        header: &SpillHeader,
        payload: &[u8],
        reason: &str,
    ) -> io::Result<PathBuf> {
        // a move: the original goes right after, so it needs no more room,
        // and a full directory cannot keep a poisoned file in the replay
        let moved = SpillHeader {
            reason: Some(reason.to_string()),
            ..header.clone()
        };
        let dst = self.write_into(&self.dir.join(DEAD_LETTER), &moved, payload, false)?;
        self.remove(path)?;
        Ok(dst)
    }

    /// Moves a corrupt file aside.
    pub fn quarantine(&self, path: &Path) -> io::Result<PathBuf> {
        let name = path.file_name().unwrap_or_default();
        let dst = self.dir.join("quarantine").join(name);
        let len = fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        fs::rename(path, &dst)?;
        self.used
            .fetch_sub(len.min(self.used_bytes()), Ordering::Relaxed);
        Ok(dst)
    }

    /// Deletes a replayed file.
    pub fn remove(&self, path: &Path) -> io::Result<()> {
        let len = fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        fs::remove_file(path)?;
        self.used
            .fetch_sub(len.min(self.used_bytes()), Ordering::Relaxed);
        Ok(())
    }
}

/// A spill file's name: `*.spill`, not hidden (temporary files are `.*.tmp`).
fn is_spill_name(p: &Path) -> bool {
    p.extension().is_some_and(|x| x == EXT)
        && p.file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| !n.starts_with('.'))
}

/// Makes a rename in `dir` durable where the platform can (Unix); a failure
/// is logged, not returned: the renamed file is already in place.
fn sync_dir(dir: &Path) {
    #[cfg(unix)]
    if let Err(e) = fs::File::open(dir).and_then(|d| d.sync_all()) {
        tracing::warn!(dir = %dir.display(), error = %e, "could not fsync the spill directory after a rename");
    }
    #[cfg(not(unix))]
    let _ = dir;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target() -> Target {
        Target {
            writer: "0123456789abcdef0123456789abcdef".into(),
            ..Target::new_file("logs/a.ndjson".into(), crate::Format::Ndjson)
        }
    }

    fn tmpdir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("llm-log-spill-{name}-{}", uuid::Uuid::new_v4()));
        fs::create_dir_all(&d).expect("tmp");
        d
    }

    #[test]
    fn write_read_round_trip_oldest_first() {
        let d = tmpdir("rt");
        let s = SpillDir::open(&d, 1 << 20, "inst").expect("open");
        let a = s
            .write(&target(), 2, 10, b"{\"a\":1}\n{\"a\":2}\n", None)
            .expect("write a");
        let b = s
            .write(&target(), 1, 5, b"{\"b\":1}\n", None)
            .expect("write b");
        assert_eq!(s.list().expect("list"), vec![a.clone(), b]);
        let (h, p) = s.read(&a).expect("read");
        assert_eq!(h.records, 2);
        assert_eq!(h.target, target());
        assert_eq!(p, b"{\"a\":1}\n{\"a\":2}\n");
        assert!(s.used_bytes() > 0);
        let reopened = SpillDir::open(&d, 1 << 20, "inst").expect("reopen");
        assert_eq!(reopened.used_bytes(), s.used_bytes());
        fs::remove_dir_all(&d).expect("cleanup");
    }

    #[test]
    fn corrupt_and_truncated_files_are_detected() {
        let d = tmpdir("corrupt");
        let s = SpillDir::open(&d, 1 << 20, "inst").expect("open");
        let a = s.write(&target(), 1, 8, b"payload!", None).expect("write");
        let mut data = fs::read(&a).expect("read");
        let n = data.len();
        data[n - 1] ^= 1;
        fs::write(&a, &data).expect("flip");
        assert!(matches!(s.read(&a), Err(ReadError::Corrupt(m)) if m.contains("checksum")));
        fs::write(&a, &data[..n - 3]).expect("truncate");
        assert!(matches!(s.read(&a), Err(ReadError::Corrupt(m)) if m.contains("truncated")));
        fs::write(&a, b"garbage").expect("garbage");
        assert!(matches!(s.read(&a), Err(ReadError::Corrupt(_))));
        let q = s.quarantine(&a).expect("quarantine");
        assert!(q.starts_with(d.join("quarantine")));
        assert!(s.list().expect("list").is_empty());
        fs::remove_dir_all(&d).expect("cleanup");
    }

    #[test]
    fn temporary_files_are_never_listed() {
        let d = tmpdir("tmp");
        let s = SpillDir::open(&d, 1 << 20, "inst").expect("open");
        let done = s.write(&target(), 1, 4, b"done", None).expect("write");
        // a half-written file of a writer in progress, in this version's form
        // and in the form of earlier versions (which ended in `.spill`)
        fs::write(
            d.join(".0000000000000002-inst-00000001.spill.tmp"),
            b"LLMLOG",
        )
        .expect("tmp");
        fs::write(
            d.join(".tmp-0000000000000003-inst-00000002.spill"),
            b"LLMLOG",
        )
        .expect("old tmp");
        assert_eq!(s.list().expect("list"), vec![done]);
        fs::remove_dir_all(&d).expect("cleanup");
    }

    #[test]
    fn dead_letters_keep_their_reason_and_count_against_the_cap() {
        let d = tmpdir("dead");
        let s = SpillDir::open(&d, 1 << 20, "inst").expect("open");
        let spilled = s.write(&target(), 1, 4, b"data", None).expect("write");
        let (h, p) = s.read(&spilled).expect("read");
        let used = s.used_bytes();
        let dead = s
            .move_to_dead_letter(&spilled, &h, &p, "400 InvalidResourceName")
            .expect("move");
        assert!(dead.starts_with(d.join("dead-letter")));
        assert!(s.list().expect("list").is_empty());
        let (h2, p2) = s.read(&dead).expect("read dead letter");
        assert_eq!(h2.reason.as_deref(), Some("400 InvalidResourceName"));
        assert_eq!((h2.target, p2), (h.target, p));
        assert!(s.used_bytes() > used / 2, "a dead letter still takes room");
        let reopened = SpillDir::open(&d, 1 << 20, "inst").expect("reopen");
        assert_eq!(reopened.used_bytes(), s.used_bytes());
        fs::remove_dir_all(&d).expect("cleanup");
    }

    #[test]
    fn cap_is_enforced() {
        let d = tmpdir("cap");
        let s = SpillDir::open(&d, 600, "inst").expect("open");
        s.write(&target(), 1, 100, &[b'x'; 100], None)
            .expect("fits");
        assert!(s.write(&target(), 1, 200, &[b'x'; 200], None).is_err());
        assert_eq!(s.list().expect("list").len(), 1);
        fs::remove_dir_all(&d).expect("cleanup");
    }

    /// The journal positions a spill header names come back as written,
    /// in ranges (runs merged, duplicates once).
    #[test]
    fn journal_positions_round_trip_through_the_header() {
        let r = |seg, index| JournalRef { seg, index };
        let refs = [r(1, 4), r(1, 3), r(2, 0), r(1, 5), r(1, 9), r(1, 4)];
        assert_eq!(journal_ranges(&refs), [[1, 3, 3], [1, 9, 1], [2, 0, 1]]);
        let d = tmpdir("journal-refs");
        let s = SpillDir::open(&d, 1 << 20, "inst").expect("open");
        s.write(&target(), 6, 4, b"data", Some(("j1", &refs)))
            .expect("write");
        s.write(&target(), 1, 4, b"more", None).expect("write");
        // another journal's positions
        s.write(&target(), 1, 4, b"else", Some(("j2", &[r(1, 7)])))
            .expect("write");
        // a damaged file's are not taken
        let bad = s
            .write(&target(), 1, 4, b"oops", Some(("j1", &[r(1, 8)])))
            .expect("write");
        let mut data = fs::read(&bad).expect("read");
        let last = data.len() - 1;
        data[last] ^= 1;
        fs::write(&bad, data).expect("damage");
        let mut back = s.journal_refs("j1").expect("refs");
        back.sort_by_key(|r| (r.seg, r.index));
        assert_eq!(back, [r(1, 3), r(1, 4), r(1, 5), r(1, 9), r(2, 0)]);
        fs::remove_dir_all(&d).expect("cleanup");
    }
}
