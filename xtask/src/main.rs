//! `cargo xtask <command>`: everything a developer or CI runs, as Rust, so the
//! README never lists a shell recipe. See `cargo xtask help`.

mod azurite;
mod bench;
mod certs;
mod ci;
mod demo;
mod dfs_emulator;
mod fixtures;
mod integration;
mod litellm;
mod process;
mod python;
mod tidy;
mod util;
mod vectors;

use std::process::ExitCode;

/// Result type of every subcommand.
pub type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

const HELP: &str = "\
usage: cargo xtask <command> [args]

commands:
  demo [-- --rate N --seconds N]       start Azurite and run the logger demo: a simulated gateway, live progress, summary
  integration [-- <cargo test args>]   install + start Azurite (HTTP and HTTPS/OAuth) and the DFS emulator, run the `tests` package, stop them
  vectors                              regenerate Shared Key signing vectors with Microsoft's Python SDK
  fixtures [--check]                   regenerate LiteLLM StandardLoggingPayload fixtures with real LiteLLM (mocked calls, no network)
  litellm --endpoint URL --out FILE    real LiteLLM (mocked calls) logging via its generic_api callback to URL; records to FILE (--help; --self-check)
  bench [--quick] [--soak]             benchmarks vs object_store, opendal, the Python SDK: markdown table, BENCH/RATIO lines, JSON in target/bench/
  ci                                   fmt --check, clippy -D warnings, unit tests, rustdoc -D warnings, cargo package, integration (what .ci/run calls)
  azurite                              start Azurite in the foreground for manual use (Ctrl-C stops it)
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (cmd, rest) = match args.split_first() {
        Some((c, r)) => (c.as_str(), r),
        None => ("help", &[][..]),
    };
    let result = match cmd {
        "demo" => demo::run(rest),
        "integration" => integration::run(rest),
        "vectors" => vectors::run(rest),
        "fixtures" => fixtures::run(rest),
        "litellm" => litellm::run(rest),
        "bench" => bench::run(rest),
        "ci" => ci::run(rest),
        "azurite" => azurite::run_foreground(rest),
        "help" | "-h" | "--help" => {
            print!("{HELP}");
            Ok(())
        }
        other => Err(format!("unknown command `{other}`\n\n{HELP}").into()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask {cmd}: error: {e}");
            ExitCode::FAILURE
        }
    }
}
