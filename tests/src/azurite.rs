//! Azurite instances a test starts for itself (on disk, so it can be stopped
//! and restarted with its data), from the installation `cargo xtask
//! integration` made (`ADLS_TEST_AZURITE_DIR`).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{required_env, ENV_AZURITE_DIR};

/// An on-disk Azurite blob service on a fixed loopback port; stopped on drop.
pub struct OwnAzurite {
    port: u16,
    dir: PathBuf,
    bin: PathBuf,
    child: Option<Child>,
}

impl OwnAzurite {
    /// Starts one on a free port with its data under a fresh directory.
    pub fn start() -> OwnAzurite {
        let install = PathBuf::from(required_env(ENV_AZURITE_DIR));
        let bin = install.join("node_modules/.bin/azurite-blob");
        assert!(
            bin.exists(),
            "{} is missing: run the tests with `cargo xtask integration`",
            bin.display()
        );
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let dir = std::env::temp_dir().join(format!("adls-own-azurite-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("azurite dir");
        let mut a = OwnAzurite {
            port,
            dir,
            bin,
            child: None,
        };
        a.resume();
        a
    }

    /// `http://127.0.0.1:PORT/devstoreaccount1`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}/devstoreaccount1", self.port)
    }

    /// Stops it gracefully (SIGTERM), keeping its data.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let t0 = Instant::now();
            while t0.elapsed() < Duration::from_secs(10) {
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
        let child = Command::new(&self.bin)
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
            .expect("start azurite-blob");
        self.child = Some(child);
        wait_ready(self.port, &self.dir);
    }
}

fn wait_ready(port: u16, dir: &Path) {
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(30) {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let log = std::fs::read_to_string(dir.join("azurite.log")).unwrap_or_default();
    panic!("own Azurite on port {port} did not start within 30 s:\n{log}");
}

impl Drop for OwnAzurite {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
