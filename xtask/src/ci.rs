//! `cargo xtask ci`: the whole check that `.ci/run` and the README's test command run.

use std::time::Instant;

use crate::util::{cargo, run_checked};
use crate::Result;

/// The crates meant for crates.io: packaged (and the packages built) on every run.
const PUBLISHED: [&str; 2] = ["adls-rest", "llm-log-callback"];

/// fmt, clippy, unit and doc tests of the default members (and
/// `llm-log-callback` alone, without its optional features), rustdoc without
/// warnings, the published crates packaged, then the integration suite.
pub fn run(_args: &[String]) -> Result {
    run_checked(cargo().args(["fmt", "--all", "--", "--check"]))?;
    run_checked(cargo().args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    run_checked(cargo().args(["test"]))?;
    // The workspace turns on llm-log-callback's `parquet` feature (the
    // shipper uses it); the library alone, as most gateways build it, is
    // checked without it too.
    run_checked(cargo().args(["test", "-p", "llm-log-callback", "--lib"]))?;
    docs()?;
    package()?;
    crate::integration::run(&[])
}

/// The API docs of every member, with rustdoc's warnings (broken links,
/// invalid code blocks) as errors; `missing_docs` is checked by clippy above.
fn docs() -> Result {
    let t0 = Instant::now();
    run_checked(
        cargo()
            .args(["doc", "--no-deps", "--workspace"])
            .env("RUSTDOCFLAGS", "-D warnings"),
    )?;
    eprintln!("docs: {:.1} s", t0.elapsed().as_secs_f64());
    Ok(())
}

/// `cargo package` for the published crates together, so `llm-log-callback`
/// builds against the packaged `adls-rest` (cargo puts both in a local
/// registry for the verification): what crates.io would get, compiled from
/// the `.crate` files alone. `--allow-dirty` lets a developer run this before
/// committing; a clean clone (CI) is not dirty anyway.
fn package() -> Result {
    let t0 = Instant::now();
    forget_packaged_sources();
    let mut cmd = cargo();
    cmd.args(["package", "--allow-dirty"]);
    for name in PUBLISHED {
        cmd.args(["-p", name]);
    }
    run_checked(&mut cmd)?;
    eprintln!("package: {:.1} s", t0.elapsed().as_secs_f64());
    Ok(())
}

/// Cargo verifies a package against the others through a temporary local
/// registry (`target/package/tmp-registry`) and extracts their `.crate`s
/// into `$CARGO_HOME/registry/src/-<hash of that path>/`, where it reuses
/// an extraction it finds: a second run in the same checkout would verify
/// `llm-log-callback` against the `adls-rest` of the first. Those
/// extractions of our own crates are removed first (local registries'
/// directories start with `-`; crates.io's are left alone).
fn forget_packaged_sources() {
    let home = std::env::var_os("CARGO_HOME")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".cargo")));
    let Some(src) = home.map(|h| h.join("registry/src")) else {
        return;
    };
    let Ok(registries) = std::fs::read_dir(&src) else {
        return;
    };
    for registry in registries.flatten() {
        if !registry.file_name().to_string_lossy().starts_with('-') {
            continue;
        }
        let Ok(crates) = std::fs::read_dir(registry.path()) else {
            continue;
        };
        for dir in crates.flatten() {
            let name = dir.file_name().to_string_lossy().into_owned();
            if PUBLISHED.iter().any(|p| name.starts_with(&format!("{p}-"))) {
                if let Err(e) = std::fs::remove_dir_all(dir.path()) {
                    eprintln!("warning: could not remove {}: {e}", dir.path().display());
                }
            }
        }
    }
}
