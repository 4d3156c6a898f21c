//! Pinned Python environments for the oracles and peers (`vectors`,
//! `fixtures`, `bench`): one venv per purpose under `target/`, reinstalled
//! only when its requirements file changes; and the `--check` comparison of
//! generated files against the committed ones.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::util::run_checked;
use crate::Result;

/// Creates the venv `venv` (with `$PYTHON` or `python3`) if missing and
/// installs `requirements` unless exactly that file is already installed;
/// returns the venv's `python`.
pub fn ensure_venv(venv: &Path, requirements: &Path) -> Result<PathBuf> {
    let python = venv.join("bin/python");
    if !python.exists() {
        if venv.exists() {
            fs::remove_dir_all(venv)?;
        }
        let interpreter = std::env::var_os("PYTHON").unwrap_or_else(|| "python3".into());
        run_checked(Command::new(&interpreter).args(["-m", "venv"]).arg(venv)).map_err(|e| {
            format!(
                "{e}\ncould not create a venv with {interpreter:?}: it needs Python 3.9+ \
                 with the venv module (Debian: `apt-get install python3-venv`)"
            )
        })?;
    }
    let wanted = fs::read(requirements)?;
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
                .arg(requirements),
        )?;
        fs::write(&stamp, &wanted)?;
    }
    Ok(python)
}

/// The arguments of a generator: none, `--check`, or `--help` (prints
/// `usage`, then `None`: nothing to do).
pub fn check_flag(args: &[String], usage: &str) -> Result<Option<bool>> {
    match args {
        [] => Ok(Some(false)),
        [flag] if flag == "--check" => Ok(Some(true)),
        [flag] if flag == "-h" || flag == "--help" => {
            println!("{usage}");
            Ok(None)
        }
        _ => Err(format!("unexpected arguments {args:?}\n{usage}").into()),
    }
}

/// Fails unless `committed` and `fresh` hold the same files (those `keep`
/// selects by name) with equal bytes; `what` names the generator in the message.
pub fn compare_dirs(
    committed: &Path,
    fresh: &Path,
    keep: impl Fn(&str) -> bool,
    what: &str,
) -> Result {
    let names = |dir: &Path| -> Result<Vec<String>> {
        let mut names = Vec::new();
        if dir.exists() {
            for entry in fs::read_dir(dir)? {
                let name = entry?.file_name().to_string_lossy().into_owned();
                if keep(&name) {
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
            "files differ: committed {old:?}, generated {new:?}; run `cargo xtask {what}`"
        )
        .into());
    }
    let stale: Vec<&String> = old
        .iter()
        .filter(|name| fs::read(committed.join(name)).ok() != fs::read(fresh.join(name)).ok())
        .collect();
    if !stale.is_empty() {
        return Err(format!(
            "{stale:?} in {} differ from what the pinned generator writes ({}); run `cargo xtask {what}`",
            committed.display(),
            fresh.display()
        )
        .into());
    }
    Ok(())
}
