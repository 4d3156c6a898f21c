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
    // `cargo run` (behind `cargo xtask`) gives xtask its own `CARGO_PKG_*` and
    // `CARGO_MANIFEST_*`; a nested cargo that inherits them sees ring's build
    // script inputs change and rebuilds ring and all above it, on every run.
    for (key, _) in std::env::vars_os() {
        let key_str = key.to_string_lossy();
        if key_str.starts_with("CARGO_PKG_") || key_str.starts_with("CARGO_MANIFEST_") {
            cmd.env_remove(&key);
        }
    }
    cmd.arg("test");
    for package in TEST_PACKAGES {
        cmd.args(["--package", package]);
    }
    cmd.args(args);
    cmd.envs(azurite.test_env());
    eprintln!("$ {cmd:?}");
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
