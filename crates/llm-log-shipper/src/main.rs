//! `llm-log-shipper`: an HTTP sidecar that takes LiteLLM's `generic_api` log
//! POSTs and stores the records in Azure Data Lake Storage Gen2 (or Blob
//! storage) through `llm-log-callback`.
//!
//! - `llm-log-shipper serve [--listen ADDR] [--config FILE.toml]`
//! - `llm-log-shipper check [--config FILE.toml]`
//!
//! Exit codes: 0 done; 1 storage or runtime failure (and every failure of
//! `check`); 2 usage or configuration error of `serve`. stdout carries only
//! results (`check`'s report, the shutdown summary); logs go to stderr.

mod body;
mod prometheus;
mod ready;
mod server;
mod settings;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use llm_log_callback::Logger;

use crate::ready::Readiness;
use crate::server::{AppState, ServerStats};
use crate::settings::{Flags, Settings};

const USAGE: &str = "\
usage: llm-log-shipper serve [--listen ADDR] [--config FILE.toml]
       llm-log-shipper check [--config FILE.toml]

serve   take LiteLLM generic_api POSTs on http://ADDR/v1/litellm and store them
check   validate the configuration, make one read call on the filesystem, print the destination

Settings come from the environment (LLM_LOG_*, AZURE_STORAGE_*) over the TOML
file (keys are the variables' names); --listen wins over both. See the README.";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Command {
    Serve,
    Check,
}

/// Parses the command line: `(command, flags)`, or a message for stderr.
fn parse_args(args: &[String]) -> Result<(Command, Flags), String> {
    let mut it = args.iter();
    let command = match it.next().map(String::as_str) {
        Some("serve") => Command::Serve,
        Some("check") => Command::Check,
        Some(other) => return Err(format!("unknown command `{other}`")),
        None => return Err("no command".into()),
    };
    let mut flags = Flags::default();
    while let Some(arg) = it.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n, Some(v.to_string())),
            _ => (arg.as_str(), None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| it.next().cloned())
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match name {
            "--listen" if command == Command::Serve => flags.listen = Some(value()?),
            "--config" => flags.config = Some(value()?.into()),
            _ => return Err(format!("unknown argument `{arg}`")),
        }
    }
    Ok((command, flags))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--help" || a == "-h") {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    if args.iter().any(|a| a == "--version" || a == "-V") {
        println!("llm-log-shipper {}", env!("CARGO_PKG_VERSION"));
        return ExitCode::SUCCESS;
    }
    let (command, flags) = match parse_args(&args) {
        Ok(p) => p,
        Err(m) => {
            eprintln!("llm-log-shipper: {m}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let failure = match command {
        Command::Serve => ExitCode::from(2),
        Command::Check => ExitCode::from(1),
    };
    let settings = match Settings::load(&flags) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("llm-log-shipper: {e}");
            return failure;
        }
    };
    init_tracing(settings.json_logs);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("llm-log-shipper: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match command {
        Command::Serve => runtime.block_on(serve(settings)),
        Command::Check => runtime.block_on(check(settings)),
    }
}

/// Logs to stderr, filtered by `RUST_LOG` (default `info`), as text or JSON lines.
fn init_tracing(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let _ = if json {
        builder.json().flatten_event(true).try_init()
    } else {
        builder.try_init()
    };
}

async fn serve(settings: Settings) -> ExitCode {
    let client = match settings.client() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("llm-log-shipper: {e}");
            return ExitCode::from(2);
        }
    };
    let fs = match client.filesystem(&settings.logger.filesystem) {
        Ok(fs) => fs,
        Err(e) => {
            eprintln!("llm-log-shipper: invalid setting AZURE_STORAGE_FILE_SYSTEM: {e}");
            return ExitCode::from(2);
        }
    };
    // Bind first: a taken port fails fast, before any storage call.
    let listener = match tokio::net::TcpListener::bind(settings.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("llm-log-shipper: cannot listen on {}: {e}", settings.listen);
            return ExitCode::from(1);
        }
    };
    let logger = match Logger::start(client.clone(), settings.logger.clone()).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("llm-log-shipper: cannot start the logger: {e}");
            return ExitCode::from(1);
        }
    };
    let local = listener.local_addr().unwrap_or(settings.listen);
    let state = AppState {
        logger: logger.clone(),
        token: settings.token.clone(),
        max_body_bytes: settings.max_body_bytes,
        body_timeout: settings.body_timeout,
        stats: Arc::new(ServerStats::default()),
        ready: Arc::new(Readiness::new(fs, settings.logger.create_filesystem)),
        bodies: Arc::new(tokio::sync::Semaphore::new(server::BODY_MEMORY_KIB)),
    };
    tracing::info!(
        listen = %local,
        path = server::INGEST_PATH,
        token = settings.token.is_some(),
        account = client.account().name(),
        dialect = ?client.dialect(),
        filesystem = %settings.logger.filesystem,
        max_body_bytes = settings.max_body_bytes,
        "llm-log-shipper serving"
    );

    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    let app = server::router(state);
    let mut server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stop_rx.wait_for(|stop| *stop).await;
            })
            .await
    });
    let deadline = settings.shutdown_deadline;
    let signal = tokio::select! {
        s = shutdown_signal() => s,
        r = &mut server => {
            // the server ended by itself: an accept loop error
            let reason = match r {
                Ok(Ok(())) => "the server stopped".to_string(),
                Ok(Err(e)) => e.to_string(),
                Err(e) => e.to_string(),
            };
            tracing::error!(%reason, "server failed");
            let report = logger.shutdown(deadline).await;
            print_summary("server_failed", &report);
            return ExitCode::from(1);
        }
    };
    let t0 = Instant::now();
    tracing::info!(
        signal,
        deadline_secs = deadline.as_secs(),
        "shutting down: no new requests"
    );
    let _ = stop_tx.send(true);
    // Requests under way finish (their records are taken or refused whole).
    // One still open at the deadline is not waited for: the logger shuts
    // down, and its records are refused (503, the sender retries) or, if
    // their journal write is already under way, kept in the journal for the
    // next start (200: they are durable). Its connection ends with the
    // process.
    if tokio::time::timeout(deadline, &mut server).await.is_err() {
        tracing::warn!(
            "requests still open at the deadline; shutting down without them (the sender retries what is refused)"
        );
        server.abort();
    }
    let left = deadline
        .saturating_sub(t0.elapsed())
        .max(Duration::from_secs(1));
    let report = logger.shutdown(left).await;
    print_summary(signal, &report);
    ExitCode::SUCCESS
}

/// The one-line JSON summary on stdout.
fn print_summary(reason: &str, report: &llm_log_callback::Report) {
    let line = serde_json::json!({
        "event": "shutdown",
        "reason": reason,
        "report": report,
    });
    println!("{line}");
}

/// Waits for SIGTERM or SIGINT (Ctrl-C), and names it.
async fn shutdown_signal() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(mut term), Ok(mut int)) => tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = int.recv() => "SIGINT",
            },
            _ => {
                let _ = tokio::signal::ctrl_c().await;
                "SIGINT"
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        "SIGINT"
    }
}

/// `check`: the configuration, the client, one read call; a report on stdout.
async fn check(settings: Settings) -> ExitCode {
    let client = match settings.client() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("check: {e}");
            return ExitCode::from(1);
        }
    };
    let account = client.account();
    let endpoint = account.endpoint(client.dialect());
    let fs_name = &settings.logger.filesystem;
    println!(
        "configuration: ok{}",
        settings
            .file
            .as_ref()
            .map(|f| format!(" (file {})", f.display()))
            .unwrap_or_default()
    );
    println!(
        "dialect: {}",
        format!("{:?}", client.dialect()).to_ascii_lowercase()
    );
    println!("account: {}", account.name());
    println!("endpoint: {}", show_endpoint(endpoint));
    println!("filesystem: {fs_name}");
    println!(
        "listen: {} (token {})",
        settings.listen,
        if settings.token.is_some() {
            "required"
        } else {
            "not required"
        }
    );
    let fs = match client.filesystem(fs_name) {
        Ok(fs) => fs,
        Err(e) => {
            eprintln!("check: invalid setting AZURE_STORAGE_FILE_SYSTEM: {e}");
            return ExitCode::from(1);
        }
    };
    let t0 = Instant::now();
    match ready::probe(
        &fs,
        Duration::from_secs(15),
        settings.logger.create_filesystem,
    )
    .await
    {
        Ok(()) => {
            println!("storage: ok ({} ms)", t0.elapsed().as_millis());
            ExitCode::SUCCESS
        }
        Err(reason) => {
            println!("storage: failed");
            eprintln!("check: storage: {reason}");
            ExitCode::from(1)
        }
    }
}

/// An endpoint as shown to people: scheme, host, port and path; never a
/// query (where a SAS would be) or user information.
fn show_endpoint(url: &url::Url) -> String {
    let mut u = url.clone();
    u.set_query(None);
    u.set_fragment(None);
    let _ = u.set_username("");
    let _ = u.set_password(None);
    u.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn command_lines() {
        assert_eq!(
            parse_args(&args(&[
                "serve",
                "--listen",
                "127.0.0.1:1",
                "--config=a.toml"
            ])),
            Ok((
                Command::Serve,
                Flags {
                    listen: Some("127.0.0.1:1".into()),
                    config: Some("a.toml".into())
                }
            ))
        );
        assert_eq!(
            parse_args(&args(&["check"])),
            Ok((Command::Check, Flags::default()))
        );
        for bad in [
            &[][..],
            &["run"],
            &["serve", "--listen"],
            &["serve", "--port", "1"],
            &["check", "--listen", "127.0.0.1:1"],
        ] {
            assert!(parse_args(&args(bad)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn endpoints_are_shown_without_query_or_credentials() {
        let u = url::Url::parse("https://user:pw@acct.blob.core.windows.net/?sv=2024&sig=SECRET")
            .expect("url");
        let shown = show_endpoint(&u);
        assert_eq!(shown, "https://acct.blob.core.windows.net/");
    }
}
