//! `cargo xtask integration [<cargo test args>] [-- <test binary args>]`: the
//! end-to-end tests against Azurite and the independent DFS emulator.
//!
//! Installs Azurite if needed, generates a CA and server certificate, starts an
//! HTTP and an HTTPS (`--oauth basic`) instance on free loopback ports, installs
//! (once) and starts the independent DFS emulator when its packed tarball is
//! there (see [`crate::dfs_emulator::dfs_tarball`]), runs `cargo test` on
//! [`TEST_PACKAGES`] with the endpoints in the environment (see
//! `tests/src/lib.rs`), and stops everything afterwards, whether the tests pass,
//! fail or the xtask is interrupted. Arguments are passed on the way `cargo
//! test` takes them: `cargo xtask integration -- retry` runs the tests whose
//! name contains `retry`.
//!
//! Without the emulator's tarball, the tests that need it (every one has
//! [`EMULATOR_MARKER`] in its name) are left out with `--skip` and counted as
//! skipped, never as passed.

use std::process::Stdio;

use crate::azurite::{AzuritePair, ProcessGroup};
use crate::dfs_emulator::{dfs_tarball, DfsEmulator, DFS_TARBALL, ENV_DFS_TARBALL, ENV_NODE22};
use crate::util::{cargo, workspace_root};
use crate::Result;

/// The venv's Python that has the pinned LiteLLM (see `litellm.rs`).
pub const ENV_LITELLM_PYTHON: &str = "ADLS_TEST_LITELLM_PYTHON";
/// `xtask/litellm/drive.py`: real LiteLLM logging through its `generic_api` callback.
pub const ENV_LITELLM_DRIVE: &str = "ADLS_TEST_LITELLM_DRIVE";

/// The venv's Python that has the pinned data-lake readers (polars, pyarrow,
/// adlfs, DuckDB: `xtask/readers/requirements.txt`).
pub const ENV_READERS_PYTHON: &str = "ADLS_TEST_READERS_PYTHON";
/// `xtask/readers/read.py`: the readers' side of `tests/it/readers.rs`.
pub const ENV_READERS_SCRIPT: &str = "ADLS_TEST_READERS_SCRIPT";

/// The packages whose tests need Azurite; `cargo xtask integration` runs them all.
pub const TEST_PACKAGES: &[&str] = &["adls-tests"];

/// Part of the name of every test that needs the independent DFS emulator.
pub const EMULATOR_MARKER: &str = "dfs_emulator";

/// Starts Azurite (and the DFS emulator when available), runs the integration
/// tests against them, stops them; fails if the tests fail.
pub fn run(args: &[String]) -> Result {
    let tarball = dfs_tarball();
    let azurite = AzuritePair::start()?;
    let emulator = match &tarball {
        Some(tgz) => Some(DfsEmulator::start(tgz)?),
        None => {
            eprintln!(
                "the independent DFS emulator is not available (neither ${ENV_DFS_TARBALL} nor \
                 {DFS_TARBALL} exists): the tests that need it are skipped"
            );
            None
        }
    };

    let mut test_args = vec!["test".to_string()];
    for package in TEST_PACKAGES {
        test_args.extend(["--package".to_string(), package.to_string()]);
    }
    test_args.extend(args.iter().cloned());
    let skipped = if emulator.is_none() {
        let n = count_emulator_tests(&test_args);
        if !test_args.iter().any(|a| a == "--") {
            test_args.push("--".to_string());
        }
        test_args.extend(["--skip".to_string(), EMULATOR_MARKER.to_string()]);
        Some(n)
    } else {
        None
    };

    let mut env = azurite.test_env();
    if let Some(emulator) = &emulator {
        env.extend(emulator.test_env());
    }
    // real LiteLLM (pinned, in a venv) for the shipper's end-to-end test
    let python = crate::litellm::venv()?;
    env.push((ENV_LITELLM_PYTHON, python.display().to_string()));
    env.push((
        ENV_LITELLM_DRIVE,
        workspace_root()
            .join("xtask/litellm/drive.py")
            .display()
            .to_string(),
    ));
    // the readers (pinned, in a venv) for the reader tests
    let root = workspace_root();
    let readers = crate::python::ensure_venv(
        &root.join("target/readers-venv"),
        &root.join("xtask/readers/requirements.txt"),
    )?;
    env.push((ENV_READERS_PYTHON, readers.display().to_string()));
    env.push((
        ENV_READERS_SCRIPT,
        root.join("xtask/readers/read.py").display().to_string(),
    ));
    let mut cmd = cargo();
    cmd.args(&test_args).envs(env.iter().cloned());
    let shown: Vec<String> = env
        .iter()
        .filter(|(k, _)| *k != ENV_NODE22)
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    eprintln!("$ {} cargo {}", shown.join(" "), test_args.join(" "));
    // Its own process group, so an interrupted run also stops the test binaries
    // (and any Azurite a test started for itself).
    let mut tests = ProcessGroup::spawn(&mut cmd, "cargo test")?;
    let status = tests.wait();
    drop(tests);
    drop(emulator);
    azurite.stop();

    if let Some(n) = skipped {
        let count = n.map_or_else(|| "some".to_string(), |n| n.to_string());
        eprintln!(
            "skipped: {count} tests need the independent DFS emulator (`{EMULATOR_MARKER}` in \
             their names); put its tarball at {DFS_TARBALL} or name it in ${ENV_DFS_TARBALL}"
        );
    }
    let status = status.map_err(|e| format!("waiting for cargo test: {e}"))?;
    if !status.success() {
        return Err(format!("integration tests failed ({status})").into());
    }
    Ok(())
}

/// How many of the tests `cargo <test_args>` would run need the emulator:
/// the same command with `--list`, counting the tests named with
/// [`EMULATOR_MARKER`]. `None` when listing fails (the run itself will say why).
fn count_emulator_tests(test_args: &[String]) -> Option<usize> {
    let mut args = test_args.to_vec();
    args.insert(1, "--quiet".to_string());
    if !args.iter().any(|a| a == "--") {
        args.push("--".to_string());
    }
    args.push("--list".to_string());
    let out = cargo().args(&args).stderr(Stdio::inherit()).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let listed = String::from_utf8_lossy(&out.stdout);
    Some(
        listed
            .lines()
            .filter(|l| l.ends_with(": test") && l.contains(EMULATOR_MARKER))
            .count(),
    )
}
