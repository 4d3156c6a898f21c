//! Process groups, stopped by PID: every process the xtask starts leads its
//! own group ([`ProcessGroup`]); the group is stopped (SIGTERM, then SIGKILL
//! after a grace period) on drop, so also when a test fails or the xtask
//! returns an error, and on SIGINT/SIGTERM/SIGHUP of the xtask.

use std::fs;
use std::io;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{mpsc, Mutex, MutexGuard, Once};
use std::thread;
use std::time::{Duration, Instant};

use crate::Result;

/// How long a process group gets between SIGTERM and SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// Leaders of the process groups started by [`ProcessGroup::spawn`] and not yet stopped.
static GROUPS: Mutex<Vec<u32>> = Mutex::new(Vec::new());
/// Set while [`run_foreground`](crate::azurite::run_foreground) waits: a signal is then delivered here instead.
pub(crate) static INTERRUPT: Mutex<Option<mpsc::Sender<()>>> = Mutex::new(None);

pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A child process that leads its own process group. Dropping it stops the
/// whole group (the child and anything it started in that group).
#[derive(Debug)]
pub struct ProcessGroup {
    child: Child,
    label: String,
    stopped: bool,
}

impl ProcessGroup {
    /// Spawns `cmd` as the leader of a new process group. From now until it is
    /// stopped, SIGINT, SIGTERM or SIGHUP of the xtask stops the group and then
    /// exits the xtask with status 130.
    pub fn spawn(cmd: &mut Command, label: impl Into<String>) -> Result<Self> {
        let label = label.into();
        install_signal_handler();
        cmd.process_group(0);
        // Held across the spawn, so a signal arriving meanwhile still sees this group.
        let mut groups = lock(&GROUPS);
        let child = cmd
            .spawn()
            .map_err(|e| format!("starting {label}: {e} ({cmd:?})"))?;
        groups.push(child.id());
        Ok(Self {
            child,
            label,
            stopped: false,
        })
    }

    /// PID of the leader, which is also the process group id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// The leader's exit status, if it has exited.
    pub fn try_wait(&mut self) -> io::Result<Option<ExitStatus>> {
        self.child.try_wait()
    }

    /// Waits for the leader to exit (the rest of the group is stopped on drop).
    pub fn wait(&mut self) -> io::Result<ExitStatus> {
        self.child.wait()
    }

    /// Stops the group: SIGTERM, then SIGKILL to whatever is left after a grace
    /// period. Returns the leader's exit status if it had already exited before
    /// this call (it was not stopped by us). Idempotent.
    pub fn stop(&mut self) -> Option<ExitStatus> {
        if self.stopped {
            return None;
        }
        self.stopped = true;
        let exited_before = self.child.try_wait().ok().flatten();
        let pgid = self.child.id();
        if !terminate_group(pgid) {
            eprintln!(
                "warning: {} (process group {pgid}) ignored SIGTERM for {STOP_GRACE:?}; killed it",
                self.label
            );
        }
        let _ = self.child.wait();
        lock(&GROUPS).retain(|&g| g != pgid);
        exited_before
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        self.stop();
    }
}

/// SIGTERM to the group if any of it is alive, wait up to [`STOP_GRACE`] for it to
/// go, then SIGKILL what remains. Returns false if SIGKILL was needed.
fn terminate_group(pgid: u32) -> bool {
    if !group_alive(pgid) {
        return true;
    }
    signal_group(pgid, "TERM");
    let deadline = Instant::now() + STOP_GRACE;
    while Instant::now() < deadline {
        if !group_alive(pgid) {
            return true;
        }
        thread::sleep(Duration::from_millis(20));
    }
    signal_group(pgid, "KILL");
    false
}

/// Sends `signal` (`TERM`, `KILL`, `0`) to process group `pgid` with kill(1);
/// true if it was delivered.
fn signal_group(pgid: u32, signal: &str) -> bool {
    Command::new("kill")
        .args(["-s", signal, "--", &format!("-{pgid}")])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Whether any process of group `pgid` is still running. Zombies do not count (an
/// exited leader stays one until reaped); where `/proc` is missing, asks kill(1),
/// which does count them.
fn group_alive(pgid: u32) -> bool {
    let Ok(entries) = fs::read_dir("/proc") else {
        return signal_group(pgid, "0");
    };
    let pgid = pgid.to_string();
    entries.flatten().any(|entry| {
        let is_pid = entry
            .file_name()
            .to_str()
            .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()));
        let Some(stat) = is_pid
            .then(|| fs::read_to_string(entry.path().join("stat")).ok())
            .flatten()
        else {
            return false;
        };
        // `pid (comm) state ppid pgrp ...`; comm may itself hold spaces and parentheses.
        let Some(fields) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
            return false;
        };
        let mut fields = fields.split_whitespace();
        let state = fields.next();
        let pgrp = fields.nth(1);
        pgrp == Some(pgid.as_str()) && state != Some("Z")
    })
}

/// Installs, once, a thread that handles SIGINT, SIGTERM and SIGHUP: it wakes
/// [`run_foreground`](crate::azurite::run_foreground) if that is waiting, and otherwise stops every live group
/// and exits with status 130.
fn install_signal_handler() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
        let mut signals = match signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP]) {
            Ok(signals) => signals,
            Err(e) => {
                eprintln!(
                    "warning: cannot handle Ctrl-C ({e}); interrupting may leave Azurite running"
                );
                return;
            }
        };
        thread::spawn(move || {
            for _ in signals.forever() {
                if let Some(tx) = lock(&INTERRUPT).as_ref() {
                    if tx.send(()).is_ok() {
                        continue;
                    }
                }
                eprintln!("\nxtask: interrupted; stopping the processes it started");
                let groups = lock(&GROUPS).clone();
                for &pgid in &groups {
                    signal_group(pgid, "TERM");
                }
                for &pgid in &groups {
                    terminate_group(pgid);
                }
                std::process::exit(130);
            }
        });
    });
}
