//! `cargo xtask vectors`: regenerates the Shared Key signing vectors in
//! `crates/adls-rest/tests/vectors/` with Microsoft's Python SDK, the oracle our
//! signer is checked against.
//!
//! 1. Makes a venv in `target/vectors-venv` with `python3 -m venv` (once; set
//!    `PYTHON` to use another interpreter).
//! 2. Installs the pinned `xtask/vectors/requirements.txt` into it, again only
//!    when that file changed since the last install.
//! 3. Runs `xtask/vectors/generate.py`, which drives the SDK's clients against a
//!    recording transport (it opens no socket) and writes one JSON file per
//!    area. The output is deterministic: a rerun rewrites identical files.
//!
//! `cargo xtask vectors --check` generates into `target/vectors-check/` instead
//! and fails if the result differs from the committed files.

use std::fs;
use std::process::Command;

use crate::util::{run_checked, workspace_root};
use crate::Result;

const USAGE: &str = "usage: cargo xtask vectors [--check]";

/// Where the generated files live, relative to the workspace root.
const OUT_DIR: &str = "crates/adls-rest/tests/vectors";

/// Entry point of `cargo xtask vectors [--check]`.
pub fn run(args: &[String]) -> Result {
    let Some(check) = crate::python::check_flag(args, USAGE)? else {
        return Ok(());
    };
    let root = workspace_root();
    let python = crate::python::ensure_venv(
        &root.join("target/vectors-venv"),
        &root.join("xtask/vectors/requirements.txt"),
    )?;
    let committed = root.join(OUT_DIR);
    let out = if check {
        let scratch = root.join("target/vectors-check");
        if scratch.exists() {
            fs::remove_dir_all(&scratch)?;
        }
        scratch
    } else {
        committed.clone()
    };
    run_checked(
        Command::new(&python)
            .arg(root.join("xtask/vectors/generate.py"))
            .arg(&out)
            .current_dir(&root)
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .env("PYTHONHASHSEED", "0")
            .env_remove("AZURE_HTTP_USER_AGENT"),
    )?;
    if check {
        crate::python::compare_dirs(&committed, &out, |n| n.ends_with(".json"), "vectors")?;
        eprintln!(
            "vectors: {} matches what the pinned SDK generates",
            committed.display()
        );
    }
    Ok(())
}
