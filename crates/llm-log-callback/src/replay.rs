//! Replaying the spill directory: oldest file first, each written to its
//! original target (so a batch whose first upload did in fact land is found
//! there, verified, and not written twice), deleted only after storage's
//! account of the file matched it. Corrupt files are quarantined and
//! counted; a batch storage refuses for good is dead-lettered and the pass
//! goes on; a transient storage failure ends the pass until storage is
//! healthy again.

use std::sync::Arc;

use crate::attempt::{write_once, AttemptError, Progress};
use crate::metrics::Counters;
use crate::spill::{ReadError, SpillDir};
use crate::uploader::{wait_true, Uploader, MAX_CONFLICTS};

/// One pass over the directory. Returns the number of files replayed.
pub(crate) async fn replay_pass(uploader: &Uploader, spill: &Arc<SpillDir>) -> usize {
    let files = {
        let s = spill.clone();
        match tokio::task::spawn_blocking(move || s.list()).await {
            Ok(Ok(f)) => f,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "cannot list the spill directory");
                return 0;
            }
            Err(_) => return 0,
        }
    };
    let mut replayed = 0;
    for path in files {
        if *uploader.give_up.borrow() {
            break;
        }
        let read = {
            let s = spill.clone();
            let p = path.clone();
            tokio::task::spawn_blocking(move || s.read(&p)).await
        };
        let (header, payload) = match read {
            Ok(Ok(x)) => x,
            Ok(Err(ReadError::Corrupt(why))) => {
                let s = spill.clone();
                let p = path.clone();
                let moved = tokio::task::spawn_blocking(move || s.quarantine(&p)).await;
                Counters::add(&uploader.counters.quarantined, 1);
                match moved {
                    Ok(Ok(to)) => {
                        tracing::error!(file = %path.display(), quarantined = %to.display(), %why, "corrupt spill file quarantined")
                    }
                    _ => {
                        tracing::error!(file = %path.display(), %why, "corrupt spill file could not be moved to quarantine")
                    }
                }
                continue;
            }
            Ok(Err(ReadError::Io(e))) => {
                tracing::warn!(file = %path.display(), error = %e, "cannot read spill file; will retry later");
                continue;
            }
            Err(_) => continue,
        };
        let payload = bytes::Bytes::from(payload);
        let mut target = header.target.clone();
        let mut conflicts = 0;
        let refused = loop {
            let mut progress = Progress::Staging;
            let mut give_up = uploader.give_up.clone();
            let attempt = tokio::select! {
                r = write_once(&uploader.fs, &target, &payload, &uploader.settings, &mut progress) => r,
                // shutdown: the file stays; the next run's replay reconciles it
                _ = wait_true(&mut give_up) => return replayed,
            };
            match attempt {
                Ok(()) => break None,
                Err(AttemptError::Conflict(why)) if conflicts < MAX_CONFLICTS => {
                    conflicts += 1;
                    tracing::warn!(%why, "replay target holds other data; writing to a new file");
                    target = target.conflict_alternative(conflicts);
                }
                Err(AttemptError::Conflict(why)) => {
                    break Some(format!(
                        "moved to a new name {MAX_CONFLICTS} times; last: {why}"
                    ))
                }
                Err(AttemptError::Permanent(why)) => break Some(why),
                Err(AttemptError::Retry(e)) => {
                    tracing::info!(error = %e, "storage still failing; replay paused");
                    return replayed;
                }
            }
        };
        if let Some(why) = refused {
            // one poisoned file must not hold back the others: set it aside
            let s = spill.clone();
            let p = path.clone();
            let (h, reason) = (header.clone(), why.clone());
            let moved = tokio::task::spawn_blocking(move || {
                s.move_to_dead_letter(&p, &h, &payload, &reason)
            })
            .await;
            match moved {
                Ok(Ok(to)) => {
                    Counters::add(&uploader.counters.replay_dead_lettered, header.records);
                    tracing::error!(file = %path.display(), dead_letter = %to.display(), reason = %why, "storage refuses a spilled batch; dead-lettered");
                }
                _ => {
                    tracing::error!(file = %path.display(), reason = %why, "storage refuses a spilled batch, and it could not be moved to dead-letter/")
                }
            }
            continue;
        }
        let s = spill.clone();
        let p = path.clone();
        if let Ok(Err(e)) = tokio::task::spawn_blocking(move || s.remove(&p)).await {
            // written but not removed: a later replay finds it written (at the
            // same name, conflicts included: their names and writers follow
            // from the original target) and removes it
            tracing::warn!(file = %path.display(), error = %e, "replayed spill file could not be removed");
            continue;
        }
        Counters::add(&uploader.counters.replayed, header.records);
        if target.close {
            Counters::add(&uploader.counters.files, 1);
        }
        replayed += 1;
        tracing::info!(file = %path.display(), records = header.records, path = %target.path, "spill file replayed");
    }
    replayed
}
