//! Azurite, Microsoft's Azure Storage emulator, for the end-to-end tests and for
//! manual runs (`cargo xtask azurite`).
//!
//! - [`ensure_installed`] installs the pinned [`VERSION`] from npm into
//!   `target/azurite/`, once.
//! - [`Azurite::start_http`] and [`Azurite::start_https_oauth`] start an
//!   in-memory Blob service on a free loopback port (never 10000, which other
//!   processes on the machine may hold) and return once it accepts connections;
//!   dropping the [`Azurite`] stops it.
//! - [`AzuritePair`] is the two instances the `tests` package expects, with the
//!   environment variables that tell the tests where they are.
//!
//! Every process started here leads its own process group ([`ProcessGroup`]) and
//! is stopped by PID: SIGTERM to the group, SIGKILL after a grace period. That
//! happens on `Drop` (so also when a test fails or the xtask returns an error)
//! and on SIGINT/SIGTERM/SIGHUP of the xtask, so nothing is left running.
//! Unix only, like the rest of the project's tooling.

use std::ffi::OsString;
use std::fs::{self, File};
use std::io;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use crate::certs::{self, Certs};
pub use crate::process::ProcessGroup;
use crate::process::{lock, INTERRUPT};
use crate::util::workspace_root;
use crate::Result;

/// The pinned Azurite release: the newest that runs on Node 20 (3.36 needs Node 22).
pub const VERSION: &str = "3.35.0";
/// Azurite's well-known development account; path-style URLs carry it.
pub const ACCOUNT: &str = "devstoreaccount1";
/// Azurite's well-known development account key (public, documented by Microsoft).
pub const ACCOUNT_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

// The environment contract with the `tests` package; the same names as the
// `ENV_*` constants in `tests/src/lib.rs` (xtask does not depend on that crate).
/// Blob endpoint of the plain-HTTP instance.
pub const ENV_AZURITE_HTTP: &str = "ADLS_TEST_AZURITE_HTTP";
/// Blob endpoint of the HTTPS instance started with `--oauth basic`.
pub const ENV_AZURITE_HTTPS: &str = "ADLS_TEST_AZURITE_HTTPS";
/// PEM file of the CA that signed the HTTPS instance's certificate.
pub const ENV_CA_PEM: &str = "ADLS_TEST_CA_PEM";
/// Install directory (`node_modules/.bin/azurite-blob` under it).
pub const ENV_AZURITE_DIR: &str = "ADLS_TEST_AZURITE_DIR";

/// How long a starting instance may take to accept TCP connections (about 1 s is usual).
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// Tries at a fresh port when another process took the one picked for Azurite first.
const PORT_ATTEMPTS: u32 = 3;

/// `target/azurite/`: the npm prefix Azurite is installed under, plus `certs/`,
/// `logs/` and the instances' scratch working directories in `work/`. Entries of
/// `certs/` and `work/` start with the PID of the xtask that made them, so
/// concurrent runs do not collide and leftovers of killed runs can be pruned.
pub fn install_dir() -> PathBuf {
    workspace_root().join("target").join("azurite")
}

/// The `azurite-blob` executable inside an install directory.
pub fn blob_bin(install_dir: &Path) -> PathBuf {
    install_dir
        .join("node_modules")
        .join(".bin")
        .join("azurite-blob")
}

/// Installs `azurite@VERSION` with npm into [`install_dir`] unless that version
/// is already there, and returns the install directory.
pub fn ensure_installed() -> Result<PathBuf> {
    let dir = install_dir();
    if installed_version(&dir).as_deref() == Some(VERSION) && blob_bin(&dir).exists() {
        return Ok(dir);
    }
    check_node()?;
    fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    eprintln!("installing azurite@{VERSION} into {} ...", dir.display());
    let started = Instant::now();
    let mut npm = Command::new("npm");
    npm.arg("install")
        .arg("--prefix")
        .arg(&dir)
        .arg(format!("azurite@{VERSION}"))
        .args([
            "--save-exact",
            "--no-audit",
            "--no-fund",
            "--loglevel=error",
        ]);
    let status = npm
        .status()
        .map_err(|e| format!("running npm: {e} ({npm:?})"))?;
    if !status.success() {
        return Err(format!("npm could not install azurite@{VERSION} ({status}): {npm:?}").into());
    }
    match installed_version(&dir) {
        Some(v) if v == VERSION && blob_bin(&dir).exists() => {}
        found => {
            return Err(format!(
                "after `npm install`, expected azurite {VERSION} with {}, found version {found:?}",
                blob_bin(&dir).display()
            )
            .into())
        }
    }
    eprintln!("installed azurite@{VERSION} in {:.1?}", started.elapsed());
    Ok(dir)
}

/// The `version` of the installed `node_modules/azurite/package.json`, if any.
fn installed_version(install_dir: &Path) -> Option<String> {
    let manifest = install_dir
        .join("node_modules")
        .join("azurite")
        .join("package.json");
    let json = fs::read_to_string(manifest).ok()?;
    // The first `"version"` key of an npm package.json is the top-level one.
    let after_key = &json[json.find("\"version\"")? + "\"version\"".len()..];
    let value = after_key
        .trim_start()
        .strip_prefix(':')?
        .trim_start()
        .strip_prefix('"')?;
    Some(value[..value.find('"')?].to_string())
}

/// Fails with instructions unless `node` and `npm` can be run.
pub(crate) fn check_node() -> Result {
    for tool in ["node", "npm"] {
        match Command::new(tool)
            .arg("--version")
            .stdout(Stdio::null())
            .status()
        {
            Ok(status) if status.success() => {}
            Ok(status) => return Err(format!("`{tool} --version` failed ({status})").into()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(format!(
                    "`{tool}` not found on PATH: Azurite {VERSION} is installed from npm and runs \
                     on Node.js 20 (on Debian: `apt-get install nodejs npm`)"
                )
                .into())
            }
            Err(e) => return Err(format!("running `{tool} --version`: {e}").into()),
        }
    }
    Ok(())
}

/// A running in-memory Azurite Blob service on `127.0.0.1`, stopped on drop.
#[derive(Debug)]
pub struct Azurite {
    /// Short name used in messages and file names (`http`, `https-oauth`).
    pub name: &'static str,
    /// The loopback port it listens on.
    pub port: u16,
    /// Account endpoint, path style: `http(s)://127.0.0.1:PORT/devstoreaccount1`.
    pub url: String,
    /// Azurite's stdout and stderr. Removed on a clean stop, kept (and its path
    /// printed) when the instance died on its own.
    pub log: PathBuf,
    workdir: PathBuf,
    process: ProcessGroup,
}

impl Azurite {
    /// Starts a plain-HTTP instance (Shared Key, SAS) in memory on a free port.
    pub fn start_http() -> Result<Self> {
        Self::start("http", "http", Vec::new())
    }

    /// Starts an HTTPS instance in memory on a free port, serving `certs.cert_pem`
    /// and accepting bearer tokens (`--oauth basic`) besides Shared Key.
    pub fn start_https_oauth(certs: &Certs) -> Result<Self> {
        let args = vec![
            "--cert".into(),
            certs.cert_pem.clone().into(),
            "--key".into(),
            certs.key_pem.clone().into(),
            "--oauth".into(),
            "basic".into(),
        ];
        Self::start("https-oauth", "https", args)
    }

    fn start(name: &'static str, scheme: &str, extra_args: Vec<OsString>) -> Result<Self> {
        let dir = ensure_installed()?;
        let launch = Launch {
            program: blob_bin(&dir),
            // In memory, but from a scratch working directory of its own: 3.35
            // refuses `--location` together with `--inMemoryPersistence`.
            args: Box::new(move |_workdir: &Path| {
                let mut args: Vec<OsString> = vec!["--inMemoryPersistence".into()];
                args.extend(extra_args.iter().cloned());
                args
            }),
            root: dir,
        };
        Self::launch(name, scheme, &launch)
    }

    /// Starts `launch` on a free port (retrying another port when the one picked
    /// was taken meanwhile) and waits until it accepts connections. Every
    /// instance gets `--silent --disableTelemetry --blobHost 127.0.0.1
    /// --blobPort PORT`, a scratch working directory under `root/work/` and a log
    /// in `root/logs/`.
    pub(crate) fn launch(name: &'static str, scheme: &str, launch: &Launch) -> Result<Self> {
        let dir = &launch.root;
        let logs = dir.join("logs");
        fs::create_dir_all(&logs).map_err(|e| format!("creating {}: {e}", logs.display()))?;
        let mut attempt = 1;
        loop {
            let port = free_port()?;
            let workdir = dir
                .join("work")
                .join(format!("{}-{name}-{port}", std::process::id()));
            fs::create_dir_all(&workdir)
                .map_err(|e| format!("creating {}: {e}", workdir.display()))?;
            let log = logs.join(format!("{name}-{port}.log"));
            let out = File::create(&log).map_err(|e| format!("creating {}: {e}", log.display()))?;
            let err = out.try_clone()?;

            let mut cmd = Command::new(&launch.program);
            cmd.args((launch.args)(&workdir))
                .args(["--silent", "--disableTelemetry"])
                .args(["--blobHost", "127.0.0.1", "--blobPort", &port.to_string()])
                .current_dir(&workdir)
                // Only the well-known development account, whatever the caller's shell says.
                .env_remove("AZURITE_ACCOUNTS")
                .stdin(Stdio::null())
                .stdout(out)
                .stderr(err);
            let started = Instant::now();
            let mut process = ProcessGroup::spawn(&mut cmd, format!("azurite {name}"))?;
            match wait_ready(&mut process, port) {
                Ok(()) => {
                    let url = format!("{scheme}://127.0.0.1:{port}/{ACCOUNT}");
                    eprintln!(
                        "azurite {name}: {url} (pid {}, ready in {:.1?})",
                        process.id(),
                        started.elapsed()
                    );
                    return Ok(Self {
                        name,
                        port,
                        url,
                        log,
                        workdir,
                        process,
                    });
                }
                Err(why) => {
                    process.stop();
                    let output = fs::read_to_string(&log).unwrap_or_default();
                    let _ = fs::remove_dir_all(&workdir);
                    if output.contains("EADDRINUSE") && attempt < PORT_ATTEMPTS {
                        eprintln!(
                            "azurite {name}: port {port} was taken meanwhile; trying another"
                        );
                        attempt += 1;
                        continue;
                    }
                    return Err(format!(
                        "azurite {name} on port {port} {why}\n--- {} ---\n{}",
                        log.display(),
                        output.trim_end()
                    )
                    .into());
                }
            }
        }
    }

    /// Stops the instance now (the same as dropping it).
    pub fn stop(self) {}
}

impl Drop for Azurite {
    fn drop(&mut self) {
        match self.process.stop() {
            Some(status) => eprintln!(
                "warning: azurite {} had exited by itself ({status}); its output is in {}",
                self.name,
                self.log.display()
            ),
            None => {
                let _ = fs::remove_file(&self.log);
            }
        }
        let _ = fs::remove_dir_all(&self.workdir);
    }
}

/// How to start one kind of instance: the program, the arguments that come
/// before the common ones (given the instance's scratch working directory),
/// and the directory holding `logs/` and `work/`.
pub(crate) struct Launch {
    pub(crate) program: PathBuf,
    pub(crate) args: LeadingArgs,
    pub(crate) root: PathBuf,
}

/// The arguments an instance starts with, given its scratch working directory.
pub(crate) type LeadingArgs = Box<dyn Fn(&Path) -> Vec<OsString>>;

/// A free loopback port, found by binding port 0 and letting the listener go.
fn free_port() -> Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    Ok(listener.local_addr()?.port())
}

/// Waits until `port` accepts TCP connections while the process is still alive;
/// the error completes the sentence "azurite NAME on port PORT ...".
fn wait_ready(process: &mut ProcessGroup, port: u16) -> std::result::Result<(), String> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        let exited = |status: ExitStatus| format!("exited before accepting connections ({status})");
        match process.try_wait() {
            Ok(Some(status)) => return Err(exited(status)),
            Ok(None) => {}
            Err(e) => return Err(format!("could not be watched: {e}")),
        }
        if TcpStream::connect_timeout(&addr, Duration::from_millis(250)).is_ok() {
            // Someone else may hold the port; then Azurite fails to bind and exits.
            return match process.try_wait() {
                Ok(Some(status)) => Err(exited(status)),
                _ => Ok(()),
            };
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "did not accept connections within {READY_TIMEOUT:?}"
            ));
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// The two Azurite instances the `tests` package runs against, and the CA that
/// signed the HTTPS one's certificate.
#[derive(Debug)]
pub struct AzuritePair {
    /// Where Azurite is installed ([`install_dir`]).
    pub install_dir: PathBuf,
    /// A CA and server certificate made for this run, in `target/azurite/certs/<pid>/`
    /// (per run, so a concurrent run cannot replace the CA a running test trusts).
    pub certs: Certs,
    /// Plain HTTP, in memory.
    pub http: Azurite,
    /// HTTPS with `--oauth basic`, in memory.
    pub https: Azurite,
    /// Removes the certificate directory once both instances are stopped (declared last).
    _certs_dir: RemoveOnDrop,
}

impl AzuritePair {
    /// Installs Azurite if needed, generates certificates for this run and starts
    /// both instances side by side.
    pub fn start() -> Result<Self> {
        let install_dir = ensure_installed()?;
        prune_stale(&install_dir.join("certs"));
        prune_stale(&install_dir.join("work"));
        let certs_dir = RemoveOnDrop(
            install_dir
                .join("certs")
                .join(std::process::id().to_string()),
        );
        let certs = certs::generate(&certs_dir.0)?;
        // Each takes about a second to start, most of it Node loading Azurite.
        let (http, https) = thread::scope(|s| {
            let http = s.spawn(|| Azurite::start_http().map_err(|e| e.to_string()));
            let https = Azurite::start_https_oauth(&certs);
            (http.join(), https)
        });
        let http = http.map_err(|_| "starting azurite http panicked")??;
        Ok(Self {
            install_dir,
            certs,
            http,
            https: https?,
            _certs_dir: certs_dir,
        })
    }

    /// Stops both instances now (the same as dropping the pair).
    pub fn stop(self) {
        self.https.stop();
        self.http.stop();
    }

    /// The environment variables through which the tests find both instances.
    pub fn test_env(&self) -> Vec<(&'static str, String)> {
        vec![
            (ENV_AZURITE_HTTP, self.http.url.clone()),
            (ENV_AZURITE_HTTPS, self.https.url.clone()),
            (ENV_CA_PEM, self.certs.ca_pem.display().to_string()),
            (ENV_AZURITE_DIR, self.install_dir.display().to_string()),
        ]
    }
}

/// Removes a directory tree when dropped.
#[derive(Debug)]
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Removes the entries of `dir` named `<pid>` or `<pid>-...` whose xtask is no
/// longer running (left behind by a killed run). Without `/proc`, keeps them.
pub(crate) fn prune_stale(dir: &Path) {
    if !Path::new("/proc/self").exists() {
        return;
    }
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.split('-').next()) else {
            continue;
        };
        if pid.parse::<u32>().is_ok() && !Path::new("/proc").join(pid).exists() {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

/// `cargo xtask azurite`: starts both instances, prints their endpoints and the
/// environment for running tests by hand, and stops them on Ctrl-C or stdin EOF.
pub fn run_foreground(args: &[String]) -> Result {
    if let Some(arg) = args.first() {
        return Err(
            format!("unexpected argument `{arg}`: `cargo xtask azurite` takes none").into(),
        );
    }
    let pair = AzuritePair::start()?;
    println!();
    for azurite in [&pair.http, &pair.https] {
        println!(
            "{:<12} {} (port {})",
            azurite.name, azurite.url, azurite.port
        );
    }
    println!("{:<12} {}", "CA", pair.certs.ca_pem.display());
    println!(
        "{:<12} DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};BlobEndpoint={};",
        "conn string", pair.http.url
    );
    println!("\n# to run the tests by hand against these instances:");
    for (name, value) in pair.test_env() {
        println!("export {name}='{value}'");
    }
    println!("\nPress Ctrl-C (or Ctrl-D) to stop.");

    let (tx, rx) = mpsc::channel();
    *lock(&INTERRUPT) = Some(tx.clone());
    thread::spawn(move || {
        let _ = io::copy(&mut io::stdin().lock(), &mut io::sink());
        let _ = tx.send(());
    });
    let _ = rx.recv();
    // From here on, a second Ctrl-C falls through to the stop-everything handler.
    *lock(&INTERRUPT) = None;
    drop(rx);
    eprintln!("stopping Azurite");
    pair.stop();
    Ok(())
}
