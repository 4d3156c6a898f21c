//! `cargo xtask bench [--quick] [--soak] [--only SECTIONS]`: the benchmarks of
//! docs/PERFORMANCE.md.
//!
//! 1. Builds the `xtask/bench/` workspace in release mode (its own workspace, so
//!    the peer clients `object_store` and `opendal` never enter the main
//!    build; it builds into `target/bench-build/`).
//! 2. Makes a venv in `target/bench-venv` with the pinned
//!    `xtask/bench/py/requirements.txt` (Microsoft's Python SDK, the Python peer),
//!    once; without Python the peer is left out and the report says so.
//! 3. Starts Azurite in memory on a free port.
//! 4. Runs `bench`'s `runner`, which runs each benchmark as separate
//!    processes, interleaved and repeated, prints a markdown table, one
//!    `BENCH <name> <value> <unit>` line per figure and one
//!    `RATIO <name> <value>` line per comparison, and writes the raw results
//!    as JSON to `target/bench/`.
//!
//! 5. The `seed` section (here, not in the runner; [`seed`]): real LiteLLM
//!    with its own `AzureBlobStorageLogger` against `GenericAPILogger` →
//!    `llm-log-shipper`, and no logger as the floor, at 10, 50 and 200 mock
//!    completions per second into a fresh DFS emulator per run; an outage
//!    run each; and the shipper's ingest throughput into the sink.
//!
//! `--quick` takes a few minutes; the full run repeats more and adds the
//! 10-minute soak. The benchmarks assert nothing: targets missed are
//! reported, never failed.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use crate::azurite::Azurite;
use crate::util::{cargo, run_checked, workspace_root};
use crate::Result;

const USAGE: &str =
    "usage: cargo xtask bench [--quick] [--soak] [--only sign,storage,saturate,hotpath,soak,formats,e2e,verify,seed]";

/// Entry point of `cargo xtask bench`.
pub fn run(args: &[String]) -> Result {
    let started = Instant::now();
    let mut runner_args: Vec<String> = Vec::new();
    let mut quick = false;
    let mut runner_only_seed = false;
    let mut it = args.iter().filter(|a| a.as_str() != "--");
    while let Some(a) = it.next() {
        match a.as_str() {
            "--quick" => {
                quick = true;
                runner_args.push(a.clone());
            }
            "--soak" => runner_args.push(a.clone()),
            "--only" => {
                let v = it.next().ok_or(format!("--only needs a value\n{USAGE}"))?;
                // `seed` runs here, not in the runner.
                let rest: Vec<&str> = v
                    .split(',')
                    .map(str::trim)
                    .filter(|s| *s != "seed")
                    .collect();
                if rest.is_empty() {
                    runner_only_seed = true;
                } else {
                    runner_args.extend(["--only".to_string(), rest.join(",")]);
                }
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            other => return Err(format!("unexpected argument `{other}`\n{USAGE}").into()),
        }
    }
    let root = workspace_root();
    let bench_dir = root.join("xtask/bench");

    let t = Instant::now();
    // The bench workspace's `.cargo/config.toml` (target-dir) is found from
    // the working directory, so cargo runs in `xtask/bench/`.
    run_checked(
        cargo()
            .current_dir(&bench_dir)
            .args(["build", "--release", "--bins"]),
    )?;
    let build_s = t.elapsed().as_secs_f64();
    let bin_dir = root.join("target/bench-build/release");

    // Azurite serves the end-to-end sections (e2e, verify); the Python peer
    // the first only.
    let only = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1));
    let wants = |section: &str| only.is_none_or(|v| v.split(',').any(|s| s.trim() == section));
    let e2e = wants("e2e");
    let python = if e2e {
        let venv = root.join("target/bench-venv");
        match crate::python::ensure_venv(&venv, &bench_dir.join("py/requirements.txt")) {
            Ok(p) => Some(p),
            Err(e) => {
                eprintln!("warning: no Python peer for the end-to-end comparison: {e}");
                None
            }
        }
    } else {
        None
    };
    // polars (the readers' pinned venv) times the formats section's query
    let readers_python = if wants("formats") {
        match crate::python::ensure_venv(
            &root.join("target/readers-venv"),
            &root.join("xtask/readers/requirements.txt"),
        ) {
            Ok(p) => Some(p),
            Err(e) => {
                eprintln!("warning: no polars for the formats section's query times: {e}");
                None
            }
        }
    } else {
        None
    };
    let azurite = if !(e2e || wants("verify")) {
        None
    } else {
        match Azurite::start_http() {
            Ok(a) => Some(a),
            Err(e) => {
                eprintln!(
                    "warning: Azurite did not start, the end-to-end sections run without it: {e}"
                );
                None
            }
        }
    };

    let status = if runner_only_seed {
        None
    } else {
        Some(run_runner(
            &root,
            &bin_dir,
            &runner_args,
            azurite.as_ref(),
            python.as_deref(),
            readers_python.as_deref(),
        )?)
    };
    drop(azurite);
    // LiteLLM's own Azure logger against generic_api → llm-log-shipper.
    let seed = if wants("seed") {
        seed::run(quick, &bin_dir.join("sink"))
    } else {
        Ok(())
    };
    let wall = started.elapsed().as_secs_f64();
    println!("BENCH xtask_bench_build_s {build_s:.1} s");
    println!(
        "BENCH xtask_bench_wall_s {wall:.1} s{}",
        if quick {
            " (--quick, build included)"
        } else {
            ""
        }
    );
    if let Some(status) = status {
        if !status.success() {
            return Err(format!("bench runner failed ({status})").into());
        }
    }
    seed.map_err(|e| format!("the seed section failed: {e}").into())
}

/// Runs `bench`'s `runner` with the sections other than `seed`.
fn run_runner(
    root: &Path,
    bin_dir: &Path,
    runner_args: &[String],
    azurite: Option<&Azurite>,
    python: Option<&Path>,
    readers_python: Option<&Path>,
) -> Result<std::process::ExitStatus> {
    let bench_dir = root.join("xtask/bench");
    let out = root.join("target/bench");
    let mut cmd = Command::new(bin_dir.join("runner"));
    cmd.args(runner_args)
        .arg("--out")
        .arg(&out)
        .current_dir(root);
    if let Some(a) = azurite {
        cmd.args(["--azurite", &a.url]);
    }
    if let Some(py) = python {
        cmd.arg("--python")
            .arg(py)
            .arg("--peer")
            .arg(bench_dir.join("py/peer.py"));
    }
    if let Some(py) = readers_python {
        cmd.arg("--readers-python")
            .arg(py)
            .arg("--formats-query")
            .arg(bench_dir.join("py/formats_query.py"));
    }
    eprintln!("$ {cmd:?}");
    Ok(cmd
        .status()
        .map_err(|e| format!("running the bench runner: {e}"))?)
}

mod seed;
