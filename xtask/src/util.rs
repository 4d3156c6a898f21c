//! Small helpers shared by the subcommands: workspace root, running commands.

use std::path::PathBuf;
use std::process::Command;

use crate::Result;

/// The workspace root (the parent of `xtask/`).
pub fn workspace_root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map(PathBuf::from).unwrap_or(manifest)
}

/// Runs `cmd` to completion, failing with its command line if it exits non-zero.
pub fn run_checked(cmd: &mut Command) -> Result {
    eprintln!("$ {cmd:?}");
    let status = cmd.status()?;
    if !status.success() {
        return Err(format!("command failed ({status}): {cmd:?}").into());
    }
    Ok(())
}

/// `cargo` as invoked by this xtask (respects `$CARGO`), in the workspace root.
///
/// `cargo run` (behind `cargo xtask`) gives xtask its own `CARGO_PKG_*` and
/// `CARGO_MANIFEST_*`; a nested cargo that inherits them sees ring's build
/// script inputs change and rebuilds ring and everything above it, every run.
pub fn cargo() -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(workspace_root());
    for (key, _) in std::env::vars_os() {
        let k = key.to_string_lossy();
        if k.starts_with("CARGO_PKG_") || k.starts_with("CARGO_MANIFEST_") {
            c.env_remove(&key);
        }
    }
    c
}
