//! Ship LLM gateway request logs to Azure Data Lake Storage Gen2 (or Blob
//! storage) in batches, through one reused `adls-rest` client, without losing
//! a record it accepted.
//!
//! A gateway hands [`Logger::log`] one [`LogRecord`] per LLM request (LiteLLM's
//! `StandardLoggingPayload` shape). The call never blocks: it bounds the size
//! of the record's NDJSON line and puts the record on a bounded queue. A
//! serializer thread redacts and serializes queued records within
//! milliseconds; one background task cuts batches of their lines (by records,
//! bytes or age), writes each as create-new → append → flush with bounded concurrency,
//! retries, spills to disk when storage stays down, and replays spills when it
//! is back. Every accepted record ends in exactly one of written, spilled or
//! dropped (with a reason): see [`Metrics`].
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use llm_log_callback::{Config, Logger, LogRecord};
//!
//! let client = adls_rest::Client::from_connection_string("UseDevelopmentStorage=true")?.build()?;
//! let logger = Logger::start(client, Config { filesystem: "llm-logs".into(), ..Config::default() }).await?;
//! logger.log_json(r#"{"id":"chatcmpl-1","model":"gpt-4o","status":"success","prompt_tokens":12}"#)?;
//! let report = logger.shutdown(std::time::Duration::from_secs(30)).await;
//! assert!(report.complete);
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]

mod attempt;
mod batcher;
pub mod clients;
#[cfg(feature = "parquet")]
pub mod columns;
pub mod config;
pub mod destination;
pub mod error;
pub mod format;
pub mod ingest;
mod journal;
pub mod layout;
mod logger;
pub mod metrics;
mod queue;
pub mod record;
pub mod redact;
mod replay;
mod scan;
mod serialize;
pub mod spill;
pub mod uploader;

pub use clients::ClientCache;
pub use config::{Config, JournalConfig, OverflowPolicy, SpillConfig};
pub use destination::client_from_env;
pub use error::LogError;
pub use format::Format;
pub use ingest::{IngestError, Ingested};
pub use layout::LayoutMode;
pub use logger::{Logger, Report};
pub use metrics::{DropReason, Dropped, LatencyHistogram, Metrics};
pub use record::{Field, LogRecord};
pub use redact::{ContentPolicy, Redaction};

/// The README's examples, compiled as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

#[cfg(test)]
mod readme {
    /// The README shows `examples/logger_quickstart.rs` as it is, below its header.
    #[test]
    fn readme_shows_the_quickstart_example() {
        let example = include_str!("../examples/logger_quickstart.rs");
        let code = example.split_once("\n\n").map_or(example, |(_, code)| code);
        assert!(
            include_str!("../README.md").contains(code),
            "README.md must show examples/logger_quickstart.rs (below its header) as it is"
        );
    }
}
