//! Logs two records, one typed and one as JSON text, shuts down and prints
//! where they went. Storage comes from the environment (`client_from_env`),
//! the tunables from `LLM_LOG_*` (`Config::from_env`).

use std::time::Duration;

use llm_log_callback::{client_from_env, Config, LogRecord, Logger};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // One client per destination, for the life of the process.
    let client = client_from_env()?;
    let logger = Logger::start(client, Config::from_env()?).await?;

    // In the gateway's request path: never blocks, never awaits.
    logger.log(LogRecord {
        id: "chatcmpl-1".to_string().into(),
        model: "gpt-4o".to_string().into(),
        status: "success".to_string().into(),
        prompt_tokens: 12.into(),
        completion_tokens: 30.into(),
        ..LogRecord::default()
    })?;
    logger.log_json(r#"{"id":"chatcmpl-2","model":"gpt-4o","status":"success"}"#)?;

    // At exit: write everything, spilling what cannot be written in time.
    let report = logger.shutdown(Duration::from_secs(30)).await;
    let m = &report.metrics;
    println!(
        "{} accepted, {} written in {} file(s)",
        m.accepted, m.written, m.files
    );
    assert!(report.complete);
    Ok(())
}
