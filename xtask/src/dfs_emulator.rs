//! The independent DFS emulator: Azurite built from Azure/Azurite pull request
//! #2635 (`../shared/azurite-dfs/`), which serves the Blob and the DFS endpoint
//! on one port and needs Node.js 22. [`ensure_node22`] and
//! [`ensure_dfs_installed`] install what it needs (once), [`DfsEmulator`] runs
//! one instance for the tests, started and stopped like Azurite's.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use crate::azurite::{check_node, prune_stale, Azurite, Launch};
use crate::util::workspace_root;
use crate::Result;

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
