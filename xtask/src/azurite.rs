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
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{mpsc, Mutex, MutexGuard, Once};
use std::thread;
use std::time::{Duration, Instant};

use crate::certs::{self, Certs};
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
/// How long a process group gets between SIGTERM and SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(5);
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
fn check_node() -> Result {
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
    fn launch(name: &'static str, scheme: &str, launch: &Launch) -> Result<Self> {
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
struct Launch {
    program: PathBuf,
    args: LeadingArgs,
    root: PathBuf,
}

/// The arguments an instance starts with, given its scratch working directory.
type LeadingArgs = Box<dyn Fn(&Path) -> Vec<OsString>>;

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

// ---------------------------------------------------------------------------
// The independent DFS emulator: Azurite built from Azure/Azurite pull request
// #2635 (`../shared/azurite-dfs/`), which serves the Blob and the DFS endpoint
// on one port and needs Node.js 22.

/// The packed emulator, relative to the workspace root.
pub const DFS_TARBALL: &str = "../shared/azurite-dfs/azurite-3.36.0-adls-gen2-pr2635.tgz";
/// Environment variable naming another copy of the packed emulator.
pub const ENV_DFS_TARBALL: &str = "AZURITE_DFS_TGZ";
/// Account endpoint of the emulator, path style, Blob and DFS on the same port.
pub const ENV_AZURITE_DFS: &str = "ADLS_TEST_AZURITE_DFS";
/// The emulator's `main.js`, for tests that start an instance of their own.
pub const ENV_AZURITE_DFS_MAIN: &str = "ADLS_TEST_AZURITE_DFS_MAIN";
/// A Node.js binary (22 or newer) that runs `main.js`.
pub const ENV_NODE22: &str = "ADLS_TEST_NODE22";
/// The oldest Node.js major version the emulator runs on.
const DFS_NODE_MAJOR: u32 = 22;

/// The packed emulator: `$AZURITE_DFS_TGZ` if that file exists, else
/// [`DFS_TARBALL`] if it exists; `None` when neither does.
pub fn dfs_tarball() -> Option<PathBuf> {
    let from_env = std::env::var_os(ENV_DFS_TARBALL)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from);
    from_env
        .into_iter()
        .chain([workspace_root().join(DFS_TARBALL)])
        .find(|p| p.is_file())
}

/// The major version `node --version` reports for `node`, if it runs.
fn node_major(node: &Path) -> Option<u32> {
    let out = Command::new(node)
        .arg("--version")
        .stderr(Stdio::null())
        .output()
        .ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    text.trim()
        .strip_prefix('v')?
        .split('.')
        .next()?
        .parse()
        .ok()
}

/// `name` resolved through `PATH`, if it is there.
fn on_path(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// A Node.js 22+ binary: the machine's `node` when it is new enough, else
/// `node@22` installed from npm into `target/node22/` (once).
pub fn ensure_node22() -> Result<PathBuf> {
    if let Some(node) = on_path("node") {
        if node_major(&node).is_some_and(|m| m >= DFS_NODE_MAJOR) {
            return Ok(node);
        }
    }
    let dir = workspace_root().join("target").join("node22");
    let node = dir.join("node_modules").join(".bin").join("node");
    if node_major(&node).is_some_and(|m| m >= DFS_NODE_MAJOR) {
        return Ok(node);
    }
    check_node()?;
    fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    eprintln!(
        "the machine's node is older than {DFS_NODE_MAJOR}: installing node@{DFS_NODE_MAJOR} into {} ...",
        dir.display()
    );
    let mut npm = Command::new("npm");
    npm.arg("install")
        .arg("--prefix")
        .arg(&dir)
        .arg(format!("node@{DFS_NODE_MAJOR}"))
        .args(["--no-audit", "--no-fund", "--loglevel=error"]);
    let status = npm
        .status()
        .map_err(|e| format!("running npm: {e} ({npm:?})"))?;
    match node_major(&node) {
        Some(m) if status.success() && m >= DFS_NODE_MAJOR => Ok(node),
        found => Err(format!(
            "npm could not install node@{DFS_NODE_MAJOR} ({status}; {} reports major version {found:?}): {npm:?}",
            node.display()
        )
        .into()),
    }
}

/// `target/azurite-dfs/`: the npm prefix the emulator is installed under, plus
/// `logs/` and the instances' scratch directories in `work/`.
pub fn dfs_install_dir() -> PathBuf {
    workspace_root().join("target").join("azurite-dfs")
}

/// The emulator's entry point inside an install directory.
pub fn dfs_main_js(install_dir: &Path) -> PathBuf {
    install_dir.join("node_modules/azurite/dist/src/blob/main.js")
}

/// The sha256 of a file, in hex, from `sha256sum` (or `shasum -a 256`).
fn sha256_hex(file: &Path) -> Result<String> {
    let attempts: [(&str, &[&str]); 2] = [("sha256sum", &[]), ("shasum", &["-a", "256"])];
    for (tool, args) in attempts {
        if let Ok(out) = Command::new(tool).args(args).arg(file).output() {
            if out.status.success() {
                let text = String::from_utf8_lossy(&out.stdout);
                if let Some(hex) = text.split_whitespace().next() {
                    return Ok(hex.to_string());
                }
            }
        }
    }
    Err(format!(
        "could not compute the sha256 of {} (no sha256sum or shasum)",
        file.display()
    )
    .into())
}

/// Installs the packed emulator `tarball` with npm into [`dfs_install_dir`],
/// unless it is already installed from a tarball with the same sha256 (kept in
/// `installed.sha256` there); returns its `main.js`.
pub fn ensure_dfs_installed(tarball: &Path) -> Result<PathBuf> {
    let dir = dfs_install_dir();
    let main_js = dfs_main_js(&dir);
    let marker = dir.join("installed.sha256");
    let sha = sha256_hex(tarball)?;
    if main_js.is_file() && fs::read_to_string(&marker).is_ok_and(|m| m.trim() == sha) {
        return Ok(main_js);
    }
    check_node()?;
    fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let tarball =
        fs::canonicalize(tarball).map_err(|e| format!("resolving {}: {e}", tarball.display()))?;
    eprintln!(
        "installing the DFS emulator {} into {} (about a minute) ...",
        tarball.display(),
        dir.display()
    );
    let started = Instant::now();
    let mut npm = Command::new("npm");
    npm.arg("install")
        .arg("--prefix")
        .arg(&dir)
        .args(["--omit=dev", "--no-audit", "--no-fund", "--loglevel=error"])
        .arg(&tarball);
    let status = npm
        .status()
        .map_err(|e| format!("running npm: {e} ({npm:?})"))?;
    if !status.success() || !main_js.is_file() {
        return Err(format!(
            "npm could not install the DFS emulator ({status}; expected {}): {npm:?}",
            main_js.display()
        )
        .into());
    }
    fs::write(&marker, format!("{sha}\n"))
        .map_err(|e| format!("writing {}: {e}", marker.display()))?;
    eprintln!("installed the DFS emulator in {:.1?}", started.elapsed());
    Ok(main_js)
}

/// A running DFS emulator on `127.0.0.1` (data on disk in its scratch
/// directory), stopped on drop, with what a test needs to start its own.
#[derive(Debug)]
pub struct DfsEmulator {
    /// The Node.js 22+ binary that runs it.
    pub node: PathBuf,
    /// The emulator's `main.js`.
    pub main_js: PathBuf,
    /// The running instance.
    pub instance: Azurite,
}

impl DfsEmulator {
    /// Installs Node.js 22 and the emulator from `tarball` if needed, and starts
    /// one instance on a free port.
    pub fn start(tarball: &Path) -> Result<Self> {
        let node = ensure_node22()?;
        let main_js = ensure_dfs_installed(tarball)?;
        let root = dfs_install_dir();
        prune_stale(&root.join("work"));
        let script = main_js.clone();
        let launch = Launch {
            program: node.clone(),
            args: Box::new(move |workdir: &Path| {
                vec![
                    script.clone().into(),
                    "--location".into(),
                    workdir.join("data").into(),
                ]
            }),
            root,
        };
        let instance = Azurite::launch("dfs", "http", &launch)?;
        Ok(Self {
            node,
            main_js,
            instance,
        })
    }

    /// The environment variables through which the tests find it.
    pub fn test_env(&self) -> Vec<(&'static str, String)> {
        vec![
            (ENV_AZURITE_DFS, self.instance.url.clone()),
            (ENV_AZURITE_DFS_MAIN, self.main_js.display().to_string()),
            (ENV_NODE22, self.node.display().to_string()),
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
fn prune_stale(dir: &Path) {
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

// ---------------------------------------------------------------------------
// Process groups, stopped by PID on drop and on SIGINT/SIGTERM/SIGHUP.

/// Leaders of the process groups started by [`ProcessGroup::spawn`] and not yet stopped.
static GROUPS: Mutex<Vec<u32>> = Mutex::new(Vec::new());
/// Set while [`run_foreground`] waits: a signal is then delivered here instead.
static INTERRUPT: Mutex<Option<mpsc::Sender<()>>> = Mutex::new(None);

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
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
/// [`run_foreground`] if that is waiting, and otherwise stops every live group
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
