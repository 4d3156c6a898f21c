//! Whether storage and the credential work: one properties call on a probe
//! path of the filesystem (a read that needs the filesystem, the network and
//! a credential that may read). `404` on the probe file itself is the
//! expected answer; a missing filesystem, `401`/`403`, a timeout or a refused
//! connection are not. `/readyz` caches the answer for a few seconds so a
//! busy prober never becomes storage load; `check` makes the same call once.

use std::time::{Duration, Instant};

use adls_rest::FileSystem;
use tokio::sync::Mutex;

/// The probe path: never written, only asked about.
pub const PROBE_PATH: &str = ".llm-log-shipper-ready";
/// How long one probe may take.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(3);
/// How long an answer is reused.
pub const CACHE_FOR: Duration = Duration::from_secs(5);

/// One properties call: `Ok` when storage answered as a working destination.
/// A missing filesystem is fine when the logger creates it (`create`): the
/// service authenticated the request before it said so. The reason is one
/// line, without secrets (the client's errors carry none).
pub async fn probe(fs: &FileSystem, timeout: Duration, create: bool) -> Result<(), String> {
    let file = fs.file(PROBE_PATH).map_err(|e| e.to_string())?;
    match tokio::time::timeout(timeout, file.properties()).await {
        Err(_) => Err(format!(
            "storage did not answer within {} s",
            timeout.as_secs_f64()
        )),
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) if e.is_not_found() => match e.error_code() {
            Some("ContainerNotFound" | "FilesystemNotFound") if !create => Err(format!(
                "the filesystem `{}` does not exist ({}) and LLM_LOG_CREATE_FILESYSTEM is off",
                fs.name(),
                e.error_code().unwrap_or_default()
            )),
            _ => Ok(()),
        },
        Ok(Err(e)) => Err(e.to_string().replace('\n', " ")),
    }
}

/// The cached readiness of one filesystem.
#[derive(Debug)]
pub struct Readiness {
    fs: FileSystem,
    create: bool,
    last: Mutex<Option<(Instant, Result<(), String>)>>,
    /// The latest answer, for `/metrics` without waiting on a probe.
    latest: std::sync::Mutex<Option<bool>>,
}

impl Readiness {
    /// Readiness of `fs`, not yet probed; `create` as in [`probe`].
    pub fn new(fs: FileSystem, create: bool) -> Self {
        Readiness {
            fs,
            create,
            last: Mutex::new(None),
            latest: std::sync::Mutex::new(None),
        }
    }

    /// The answer of a probe made at most [`CACHE_FOR`] ago, or of a new one.
    /// Concurrent callers share one probe.
    pub async fn check(&self) -> Result<(), String> {
        let mut last = self.last.lock().await;
        if let Some((at, answer)) = last.as_ref() {
            if at.elapsed() < CACHE_FOR {
                return answer.clone();
            }
        }
        let answer = probe(&self.fs, PROBE_TIMEOUT, self.create).await;
        if let Err(reason) = &answer {
            tracing::warn!(%reason, "storage not ready");
        }
        *self.latest.lock().unwrap_or_else(|p| p.into_inner()) = Some(answer.is_ok());
        *last = Some((Instant::now(), answer.clone()));
        answer
    }

    /// The latest probe's answer, if one was made.
    pub fn last(&self) -> Option<bool> {
        *self.latest.lock().unwrap_or_else(|p| p.into_inner())
    }
}
