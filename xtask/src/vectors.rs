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
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::util::{run_checked, workspace_root};
use crate::Result;

const USAGE: &str = "usage: cargo xtask vectors [--check]";

/// Where the generated files live, relative to the workspace root.
const OUT_DIR: &str = "crates/adls-rest/tests/vectors";

/// Entry point of `cargo xtask vectors [--check]`.
pub fn run(args: &[String]) -> Result {
    let check = match args {
        [] => false,
        [flag] if flag == "--check" => true,
        [flag] if flag == "-h" || flag == "--help" => {
            println!("{USAGE}");
            return Ok(());
        }
        _ => return Err(format!("unexpected arguments {args:?}\n{USAGE}").into()),
    };
    let root = workspace_root();
    let python = ensure_venv(&root)?;
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
        compare_dirs(&committed, &out)?;
        eprintln!(
            "vectors: {} matches what the pinned SDK generates",
            committed.display()
        );
    }
    Ok(())
}

/// Creates the venv and installs the pinned requirements; returns its `python`.
fn ensure_venv(root: &Path) -> Result<PathBuf> {
    let venv = root.join("target/vectors-venv");
    let python = venv.join("bin/python");
    if !python.exists() {
        if venv.exists() {
            fs::remove_dir_all(&venv)?;
        }
        let interpreter = std::env::var_os("PYTHON").unwrap_or_else(|| "python3".into());
        run_checked(Command::new(&interpreter).args(["-m", "venv"]).arg(&venv)).map_err(|e| {
            format!(
                "{e}\ncould not create a venv with {interpreter:?}: it needs Python 3.9+ \
                 with the venv module (Debian: `apt-get install python3-venv`)"
            )
        })?;
    }
    let requirements = root.join("xtask/vectors/requirements.txt");
    let wanted = fs::read(&requirements)?;
    let stamp = venv.join("requirements.installed");
    if fs::read(&stamp).ok().as_deref() != Some(wanted.as_slice()) {
        run_checked(
            Command::new(&python)
                .args([
                    "-m",
                    "pip",
                    "install",
                    "--disable-pip-version-check",
                    "--no-input",
                    "-r",
                ])
                .arg(&requirements),
        )?;
        fs::write(&stamp, &wanted)?;
    }
    Ok(python)
}

/// Fails unless both directories hold the same `*.json` files with equal bytes.
fn compare_dirs(committed: &Path, fresh: &Path) -> Result {
    let names = |dir: &Path| -> Result<Vec<String>> {
        let mut names = Vec::new();
        if dir.exists() {
            for entry in fs::read_dir(dir)? {
                let name = entry?.file_name().to_string_lossy().into_owned();
                if name.ends_with(".json") {
                    names.push(name);
                }
            }
        }
        names.sort();
        Ok(names)
    };
    let (old, new) = (names(committed)?, names(fresh)?);
    if old != new {
        return Err(format!(
            "vector files differ: committed {old:?}, generated {new:?}; run `cargo xtask vectors`"
        )
        .into());
    }
    let stale: Vec<&String> = old
        .iter()
        .filter(|name| fs::read(committed.join(name)).ok() != fs::read(fresh.join(name)).ok())
        .collect();
    if !stale.is_empty() {
        return Err(format!(
            "{stale:?} in {} differ from what the pinned SDK generates ({}); run `cargo xtask vectors`",
            committed.display(),
            fresh.display()
        )
        .into());
    }
    Ok(())
}
