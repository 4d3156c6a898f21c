//! `cargo xtask fixtures`: regenerates the LiteLLM log-record fixtures in
//! `crates/llm-log-callback/tests/fixtures/litellm/` with real LiteLLM, the
//! source of the `StandardLoggingPayload` schema our records must round-trip.
//!
//! 1. Makes a venv in `target/fixtures-venv` with `python3 -m venv` (once; set
//!    `PYTHON` to use another interpreter).
//! 2. Installs the pinned `xtask/fixtures/requirements.txt` into it, again only
//!    when that file changed since the last install.
//! 3. Runs `xtask/fixtures/generate.py`, which registers a LiteLLM
//!    `CustomLogger`, makes mocked calls (`mock_response=`) and writes each
//!    `standard_logging_object` it receives as one JSON file, plus a README. It
//!    runs in a fresh network namespace (`unshare -n`) where the kernel allows
//!    it, which proves it needs no network. The output is deterministic: a
//!    rerun rewrites identical files.
//!
//! `cargo xtask fixtures --check` generates into `target/fixtures-check/` instead
//! and fails if the result differs from the committed files.

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::util::{run_checked, workspace_root};
use crate::Result;

const USAGE: &str = "usage: cargo xtask fixtures [--check]";

/// Where the generated files live, relative to the workspace root.
const OUT_DIR: &str = "crates/llm-log-callback/tests/fixtures/litellm";

/// Entry point of `cargo xtask fixtures [--check]`.
pub fn run(args: &[String]) -> Result {
    let Some(check) = crate::python::check_flag(args, USAGE)? else {
        return Ok(());
    };
    let root = workspace_root();
    let python = crate::python::ensure_venv(
        &root.join("target/fixtures-venv"),
        &root.join("xtask/fixtures/requirements.txt"),
    )?;
    let committed = root.join(OUT_DIR);
    // Generated into a scratch directory first: a failed run leaves the committed
    // files alone, and a case removed from the script leaves no stale file.
    let out = root.join(if check {
        "target/fixtures-check"
    } else {
        "target/fixtures-new"
    });
    if out.exists() {
        fs::remove_dir_all(&out)?;
    }
    let mut cmd = if network_namespace_available() {
        let mut c = Command::new("unshare");
        c.arg("--net").arg(&python);
        c
    } else {
        eprintln!(
            "fixtures: `unshare --net` is not available here; running with proxies pointed at \
             a closed local port instead"
        );
        Command::new(&python)
    };
    run_checked(
        cmd.arg(root.join("xtask/fixtures/generate.py"))
            .arg(&out)
            .current_dir(&root)
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .env("PYTHONHASHSEED", "0")
            .env("LITELLM_LOCAL_MODEL_COST_MAP", "True")
            .env("LITELLM_OFFLINE_MODE", "true"),
    )?;
    if check {
        crate::python::compare_dirs(&committed, &out, |_| true, "fixtures")?;
        eprintln!(
            "fixtures: {} matches what the pinned LiteLLM generates",
            committed.display()
        );
    } else {
        replace_dir(&out, &committed)?;
        fs::remove_dir_all(&out)?;
        eprintln!("fixtures: wrote {}", committed.display());
    }
    Ok(())
}

/// Makes `dest` hold exactly the files of `src` (a flat directory).
fn replace_dir(src: &Path, dest: &Path) -> Result {
    if dest.exists() {
        fs::remove_dir_all(dest)?;
    }
    fs::create_dir_all(dest)?;
    for entry in fs::read_dir(src)? {
        let entry = entry?;
        fs::copy(entry.path(), dest.join(entry.file_name()))?;
    }
    Ok(())
}

/// Whether this process may create a network namespace (root, or unprivileged
/// user namespaces allowed).
fn network_namespace_available() -> bool {
    Command::new("unshare")
        .args(["--net", "true"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}
