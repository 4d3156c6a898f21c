//! `cargo xtask litellm`: real LiteLLM, in library mode, logging through its own
//! `generic_api` callback (`GenericAPILogger`) to an HTTP endpoint, such as
//! `llm-log-shipper serve`; writes what LiteLLM logged, so a test can compare it
//! with what the endpoint stored.
//!
//! 1. Uses the venv of `cargo xtask fixtures` (`target/fixtures-venv`, the
//!    pinned `xtask/fixtures/requirements.txt`: one LiteLLM version for the
//!    whole workspace), made or updated by [`crate::python::ensure_venv`].
//! 2. Runs `xtask/litellm/drive.py` with the arguments: per `log_format`,
//!    mocked completions, a streamed completion, a failure and an embedding
//!    (`mock_response=`, no provider contacted, nothing but loopback and the
//!    endpoint allowed), each `standard_logging_object` written as one JSON line
//!    to `--out`, a one-line JSON summary on stdout. Fails with the script's
//!    stderr if it exits non-zero (a record missing from the callbacks, repeated
//!    ids, a batch LiteLLM dropped, an attempt to leave loopback).
//!
//! `cargo xtask litellm --self-check [--fail-first N]` proves the driver against
//! `xtask/litellm/capture_server.py` (records every POST, answers 503 to the
//! first N, default 2), all three formats with `max_retries`, then
//! `xtask/litellm/check.py` checks every record arrived exactly once,
//! JSON-equal, and prints what was on the wire. Files in `target/litellm-check/`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::process::ProcessGroup;
use crate::util::workspace_root;
use crate::Result;

const USAGE: &str = "\
usage: cargo xtask litellm --endpoint URL [--token T] --out FILE [--format json_array|ndjson|single|all]
                           [--max-retries N] [--retry-delay S] [--batch-size N] [--flush-interval S]
                           [--timeout S] [--completions N]
       cargo xtask litellm --self-check [--fail-first N]

Runs real LiteLLM (pinned, xtask/fixtures/requirements.txt) with mocked calls, logging through its
GenericAPILogger (generic_api callback) to URL in each format; writes every standard_logging_object
LiteLLM logged to FILE (JSON lines, format by format) and a one-line JSON summary to stdout.
Defaults: --format all, --max-retries 0, --retry-delay 0.2, --batch-size 4, --flush-interval 1,
--timeout 10, --completions 6 (plus one streamed, one failed, one embedding per format).
--self-check: the same against a throwaway capture server answering 503 to the first N POSTs
(default 2) with --max-retries 3; checks every record arrived once, JSON-equal.";

/// Entry point of `cargo xtask litellm ...`.
pub fn run(args: &[String]) -> Result {
    if args.iter().any(|a| a == "-h" || a == "--help") {
        println!("{USAGE}");
        return Ok(());
    }
    if args.first().is_some_and(|a| a == "--self-check") {
        let fail_first = match &args[1..] {
            [] => 2,
            [flag, n] if flag == "--fail-first" => n
                .parse()
                .map_err(|_| format!("--fail-first wants a number, not {n:?}\n{USAGE}"))?,
            other => return Err(format!("unexpected arguments {other:?}\n{USAGE}").into()),
        };
        return self_check(fail_first);
    }
    for required in ["--endpoint", "--out"] {
        if !args.iter().any(|a| a == required) {
            return Err(format!("{required} is required\n{USAGE}").into());
        }
    }
    let python = venv()?;
    drive(&python, args).map(drop)
}

/// The pinned LiteLLM venv (shared with `cargo xtask fixtures`); says how long
/// making it took.
pub(crate) fn venv() -> Result<PathBuf> {
    let root = workspace_root();
    let started = Instant::now();
    let python = crate::python::ensure_venv(
        &root.join("target/fixtures-venv"),
        &root.join("xtask/fixtures/requirements.txt"),
    )?;
    eprintln!("litellm: venv ready in {:.1?}", started.elapsed());
    Ok(python)
}

/// Runs drive.py with `args`; prints its summary line on stdout (also when it
/// fails: the counts say what went wrong) and returns it. Its stderr is passed
/// through, and repeated in the error if it fails.
fn drive(python: &Path, args: &[String]) -> Result<String> {
    let script = workspace_root().join("xtask/litellm/drive.py");
    let mut cmd = Command::new(python);
    cmd.arg(&script)
        .args(args)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("LITELLM_LOCAL_MODEL_COST_MAP", "True")
        .env("LITELLM_OFFLINE_MODE", "true")
        .stdin(Stdio::null());
    eprintln!("$ {cmd:?}");
    let started = Instant::now();
    let output = cmd
        .output()
        .map_err(|e| format!("starting {}: {e}", script.display()))?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    eprint!("{stderr}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let summary = stdout.trim_end().lines().last().unwrap_or("").to_owned();
    if !summary.is_empty() {
        println!("{summary}");
    }
    if !output.status.success() {
        return Err(format!(
            "drive.py failed ({}) after {:.1?}\n--- its stderr ---\n{}",
            output.status,
            started.elapsed(),
            stderr.trim_end()
        )
        .into());
    }
    eprintln!("litellm: drive.py ran in {:.1?}", started.elapsed());
    Ok(summary)
}

/// `--self-check`: drive.py against capture_server.py, then check.py.
fn self_check(fail_first: u32) -> Result {
    const TOKEN: &str = "self-check-token";
    let root = workspace_root();
    let python = venv()?;
    let dir = root.join("target/litellm-check");
    if dir.exists() {
        fs::remove_dir_all(&dir)?;
    }
    fs::create_dir_all(&dir)?;
    let (port_file, capture, records, summary_file) = (
        dir.join("port"),
        dir.join("capture.jsonl"),
        dir.join("records.jsonl"),
        dir.join("summary.json"),
    );

    let mut server = ProcessGroup::spawn(
        Command::new(&python)
            .arg(root.join("xtask/litellm/capture_server.py"))
            .arg("--log")
            .arg(&capture)
            .arg("--port-file")
            .arg(&port_file)
            .args(["--token", TOKEN, "--fail-first", &fail_first.to_string()])
            .stdin(Stdio::null()),
        "capture_server.py",
    )?;
    let deadline = Instant::now() + Duration::from_secs(10);
    let port = loop {
        if let Ok(text) = fs::read_to_string(&port_file) {
            break text.trim().to_owned();
        }
        if let Some(status) = server.try_wait()? {
            return Err(format!("capture_server.py exited ({status}) before listening").into());
        }
        if Instant::now() > deadline {
            return Err("capture_server.py did not listen within 10 s".into());
        }
        thread::sleep(Duration::from_millis(20));
    };

    let endpoint = format!("http://127.0.0.1:{port}/v1/litellm");
    let args: Vec<String> = [
        "--endpoint",
        &endpoint,
        "--token",
        TOKEN,
        "--out",
        &records.to_string_lossy(),
        "--format",
        "all",
        "--max-retries",
        "3",
        "--retry-delay",
        "0.05",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let summary = drive(&python, &args);
    server.stop();
    let summary = summary?;
    fs::write(&summary_file, format!("{summary}\n"))?;

    let output = Command::new(&python)
        .arg(root.join("xtask/litellm/check.py"))
        .arg("--records")
        .arg(&records)
        .arg("--capture")
        .arg(&capture)
        .arg("--summary")
        .arg(&summary_file)
        .args(["--token", TOKEN])
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()?;
    let report = String::from_utf8_lossy(&output.stdout);
    print!("{report}");
    if !output.status.success() {
        return Err(format!(
            "check.py: what LiteLLM logged and what reached the capture server differ (see above; files in {})",
            dir.display()
        )
        .into());
    }
    eprintln!(
        "litellm: every record LiteLLM logged reached the endpoint once, JSON-equal, in each format (files in {})",
        dir.display()
    );
    Ok(())
}
