//! The spill directory: batches that could not be uploaded, each written
//! atomically (temporary file, fsync, rename, fsync of the directory) with a
//! checksum, under a size cap; read back oldest first for replay. A corrupt or
//! truncated file is moved to `quarantine/` and reported, never fatal.
//!
//! File format: the line `LLMLOGSPILL1`, one JSON line of [`SpillHeader`],
//! then the payload exactly as it is to be written to storage.

use std::fs;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};

use crate::uploader::Target;

const MAGIC: &[u8] = b"LLMLOGSPILL1\n";
const EXT: &str = "spill";

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

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl SpillDir {
    /// Opens (creating) `dir` and measures what it holds.
    pub fn open(dir: &Path, max_bytes: u64, instance: &str) -> io::Result<Self> {
        fs::create_dir_all(dir)?;
        fs::create_dir_all(dir.join("quarantine"))?;
        let s = SpillDir {
            dir: dir.to_path_buf(),
            max_bytes,
            used: AtomicU64::new(0),
            instance: instance.to_string(),
            seq: AtomicU64::new(0),
        };
        let used: u64 = s
            .list()?
            .iter()
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
    ) -> io::Result<PathBuf> {
        let created_ms = time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000;
        let header = SpillHeader {
            target: target.clone(),
            records,
            raw_bytes,
            payload_len: payload.len() as u64,
            sha256: hex(&Sha256::digest(payload)),
            created_ms: created_ms as u64,
        };
        let mut head = serde_json::to_vec(&header).map_err(io::Error::other)?;
        head.push(b'\n');
        let total = (MAGIC.len() + head.len() + payload.len()) as u64;
        let before = self.used.fetch_add(total, Ordering::Relaxed);
        if before + total > self.max_bytes {
            self.used.fetch_sub(total, Ordering::Relaxed);
            return Err(io::Error::other(format!(
                "spill directory is full ({before} of {} bytes used; this batch needs {total})",
                self.max_bytes
            )));
        }
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        let name = format!("{:016}-{}-{seq:08}.{EXT}", header.created_ms, self.instance);
        let tmp = self.dir.join(format!(".tmp-{name}"));
        let dst = self.dir.join(&name);
        let result = (|| {
            let mut f = fs::File::create(&tmp)?;
            f.write_all(MAGIC)?;
            f.write_all(&head)?;
            f.write_all(payload)?;
            f.sync_all()?;
            drop(f);
            fs::rename(&tmp, &dst)?;
            fs::File::open(&self.dir)?.sync_all()
        })();
        if let Err(e) = result {
            self.used.fetch_sub(total, Ordering::Relaxed);
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
        Ok(dst)
    }

    /// Spill files, oldest first (names start with the creation time).
    pub fn list(&self) -> io::Result<Vec<PathBuf>> {
        let mut v: Vec<PathBuf> = fs::read_dir(&self.dir)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == EXT) && p.is_file())
            .collect();
        v.sort();
        Ok(v)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::uploader::Create;

    fn target() -> Target {
        Target {
            path: "logs/a.ndjson".into(),
            position: 0,
            create: Some(Create::New),
            close: true,
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
            .write(&target(), 2, 10, b"{\"a\":1}\n{\"a\":2}\n")
            .expect("write a");
        let b = s.write(&target(), 1, 5, b"{\"b\":1}\n").expect("write b");
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
        let a = s.write(&target(), 1, 8, b"payload!").expect("write");
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
    fn cap_is_enforced() {
        let d = tmpdir("cap");
        let s = SpillDir::open(&d, 600, "inst").expect("open");
        s.write(&target(), 1, 100, &[b'x'; 100]).expect("fits");
        assert!(s.write(&target(), 1, 200, &[b'x'; 200]).is_err());
        assert_eq!(s.list().expect("list").len(), 1);
        fs::remove_dir_all(&d).expect("cleanup");
    }
}
