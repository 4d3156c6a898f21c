//! `cargo xtask ci`: the whole check that `.ci/run` and the README's test command run.

use crate::util::{cargo, run_checked};
use crate::Result;

/// fmt, clippy, unit and doc tests of the default members, then the integration suite.
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
    crate::integration::run(&[])
}
