//! `cargo xtask integration [<cargo test args>] [-- <test binary args>]`: the
//! end-to-end tests against Azurite.
//!
//! Installs Azurite if needed, generates a CA and server certificate, starts an
//! HTTP and an HTTPS (`--oauth basic`) instance on free loopback ports, runs
//! `cargo test` on [`TEST_PACKAGES`] with the endpoints in the environment
//! (see `tests/src/lib.rs`), and stops Azurite afterwards, whether the tests
//! pass, fail or the xtask is interrupted. Arguments are passed on the way
//! `cargo test` takes them: `cargo xtask integration -- retry` runs the tests
//! whose name contains `retry`.

use crate::azurite::{AzuritePair, ProcessGroup};
use crate::util::cargo;
use crate::Result;

/// The packages whose tests need Azurite; `cargo xtask integration` runs them all.
pub const TEST_PACKAGES: &[&str] = &["adls-tests"];

/// Starts Azurite, runs the integration tests against it, stops it; fails if the tests fail.
pub fn run(args: &[String]) -> Result {
    let azurite = AzuritePair::start()?;

    let mut cmd = cargo();
    let mut test_args = vec!["test".to_string()];
    for package in TEST_PACKAGES {
        test_args.extend(["--package".to_string(), package.to_string()]);
    }
    test_args.extend(args.iter().cloned());
    cmd.args(&test_args).envs(azurite.test_env());
    let env: Vec<String> = azurite
        .test_env()
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    eprintln!("$ {} cargo {}", env.join(" "), test_args.join(" "));
    // Its own process group, so an interrupted run also stops the test binaries
    // (and any Azurite a test started for itself).
    let mut tests = ProcessGroup::spawn(&mut cmd, "cargo test")?;
    let status = tests.wait();
    drop(tests);
    azurite.stop();

    let status = status.map_err(|e| format!("waiting for cargo test: {e}"))?;
    if !status.success() {
        return Err(format!("integration tests failed ({status})").into());
    }
    Ok(())
}
