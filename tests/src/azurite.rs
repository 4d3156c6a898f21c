//! Azurite instances a test starts for itself, on disk (`--location`), so it can
//! stop them (SIGTERM), start them again with their data, or restart them:
//! - [`OwnAzurite::start`]: Azurite 3.35 (Blob only), from the installation
//!   `cargo xtask integration` made (`ADLS_TEST_AZURITE_DIR`);
//! - [`OwnAzurite::start_dfs_emulator`]: the independent DFS emulator (Blob
//!   and DFS on one port), run by Node.js 22 (`ADLS_TEST_AZURITE_DFS_MAIN`,
//!   `ADLS_TEST_NODE22`). Tests using it must carry `dfs_emulator` in their name.
//!
//! Both go through the same code: a program, the arguments before the common
//! ones (`--silent --disableTelemetry --blobHost 127.0.0.1 --blobPort PORT
//! --location DIR`), one port and one data directory kept across restarts.
//! The process is stopped by PID, with SIGTERM (SIGKILL would lose writes
//! Azurite had acknowledged but not yet saved), and on drop.

use std::ffi::OsString;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{
    required_dfs_emulator_env, required_env, ENV_AZURITE_DFS_MAIN, ENV_AZURITE_DIR, ENV_NODE22,
};

/// How long a stopping instance gets between SIGTERM and SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(10);
/// How long a starting instance may take to accept connections.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// An on-disk Azurite on a fixed loopback port; stopped on drop (its data
/// directory removed).
pub struct OwnAzurite {
    port: u16,
    dir: PathBuf,
    program: PathBuf,
    leading_args: Vec<OsString>,
    child: Option<Child>,
}

impl OwnAzurite {
    /// Starts Azurite 3.35's Blob service on a free port with its data under a
    /// fresh directory.
    pub fn start() -> OwnAzurite {
        let install = PathBuf::from(required_env(ENV_AZURITE_DIR));
        let bin = install.join("node_modules/.bin/azurite-blob");
        assert!(
            bin.exists(),
            "{} is missing: run the tests with `cargo xtask integration`",
            bin.display()
        );
        OwnAzurite::start_program(bin, Vec::new())
    }

    /// Starts the independent DFS emulator (Blob and DFS endpoints on one port)
    /// on a free port with its data under a fresh directory.
    pub fn start_dfs_emulator() -> OwnAzurite {
        let main_js = PathBuf::from(required_dfs_emulator_env(ENV_AZURITE_DFS_MAIN));
        let node = PathBuf::from(required_dfs_emulator_env(ENV_NODE22));
        assert!(
            main_js.is_file(),
            "{} is missing: run the tests with `cargo xtask integration`",
            main_js.display()
        );
        OwnAzurite::start_program(node, vec![main_js.into()])
    }

    fn start_program(program: PathBuf, leading_args: Vec<OsString>) -> OwnAzurite {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let dir = std::env::temp_dir().join(format!("adls-own-azurite-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("azurite dir");
        let mut a = OwnAzurite {
            port,
            dir,
            program,
            leading_args,
            child: None,
        };
        a.resume();
        a
    }

    /// `http://127.0.0.1:PORT/devstoreaccount1` (for the DFS emulator, both the
    /// Blob and the DFS endpoint).
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}/devstoreaccount1", self.port)
    }

    /// The process id of the running instance, if it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Stops it gracefully (SIGTERM, SIGKILL after 10 s), keeping its data.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let t0 = Instant::now();
            while t0.elapsed() < STOP_GRACE {
                if matches!(child.try_wait(), Ok(Some(_))) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port with the same data.
    pub fn resume(&mut self) {
        assert!(self.child.is_none(), "already running");
        let log = std::fs::File::create(self.dir.join("azurite.log")).expect("log file");
        let child = Command::new(&self.program)
            .args(&self.leading_args)
            .args([
                "--silent",
                "--disableTelemetry",
                "--blobHost",
                "127.0.0.1",
                "--blobPort",
                &self.port.to_string(),
                "--location",
            ])
            .arg(self.dir.join("data"))
            .current_dir(&self.dir)
            .env_remove("AZURITE_ACCOUNTS")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", self.program.display()));
        let child = self.child.insert(child);
        wait_ready(child, self.port, &self.dir);
    }

    /// Stops it (SIGTERM) and starts it again on the same port with the same data.
    pub fn restart(&mut self) {
        self.stop();
        self.resume();
    }
}

/// Waits until `port` accepts connections; panics with the log if the process
/// exits first or does not get there within [`READY_TIMEOUT`].
fn wait_ready(child: &mut Child, port: u16, dir: &Path) {
    let log = || std::fs::read_to_string(dir.join("azurite.log")).unwrap_or_default();
    let t0 = Instant::now();
    while t0.elapsed() < READY_TIMEOUT {
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "own Azurite on port {port} exited at start ({status}):\n{}",
                log()
            );
        }
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!(
        "own Azurite on port {port} did not start within {READY_TIMEOUT:?}:\n{}",
        log()
    );
}

impl Drop for OwnAzurite {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
