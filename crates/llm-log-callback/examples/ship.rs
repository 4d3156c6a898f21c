//! `ship`: reads NDJSON log records from stdin, logs them with the
//! configuration from the environment (see `Config::from_env` and
//! `client_from_env`), shuts down, and prints the final report as one JSON
//! object on stdout.
//!
//! ```text
//! AZURE_STORAGE_CONNECTION_STRING=... cargo run --release -p llm-log-callback --example ship < records.ndjson
//! ```

use std::io::BufRead as _;
use std::time::Duration;

use llm_log_callback::{client_from_env, Config, LogError, Logger};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ship: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), LogError> {
    let config = Config::from_env()?;
    let client = client_from_env()?;
    let logger = Logger::start(client, config).await?;
    let mut invalid = 0u64;
    let stdin = std::io::stdin();
    for line in stdin.lock().lines() {
        let line = line.map_err(|e| LogError::InvalidRecord(format!("reading stdin: {e}")))?;
        if line.trim().is_empty() {
            continue;
        }
        // Block rather than drop when the queue is full: a batch job can wait.
        match llm_log_callback::LogRecord::from_json(&line) {
            Ok(r) => logger.log_async(r).await?,
            Err(e) => {
                invalid += 1;
                eprintln!("ship: skipping line: {e}");
            }
        }
    }
    let report = logger.shutdown(Duration::from_secs(120)).await;
    let m = &report.metrics;
    let out = serde_json::json!({
        "accepted": m.accepted,
        "written": m.written,
        "spilled": m.spilled,
        "replayed": m.replayed,
        "dead_lettered": m.dead_lettered,
        "unknown": m.unknown,
        "dropped": m.dropped.total(),
        "dropped_by_reason": m.dropped,
        "invalid_lines": invalid,
        "files": m.files,
        "requests": m.requests,
        "connections_opened": m.connections_opened,
        "complete": report.complete,
        "elapsed_ms": report.elapsed_ms,
    });
    println!("{out}");
    Ok(())
}
