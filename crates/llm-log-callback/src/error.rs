//! The crate's error type: configuration problems (naming the setting) and
//! records that were refused (never accepted, so never counted as lost).

use std::fmt;

/// What went wrong.
///
/// ```no_run
/// # fn demo(logger: llm_log_callback::Logger, record: llm_log_callback::LogRecord) {
/// use llm_log_callback::LogError;
///
/// match logger.log(record) {
///     Ok(()) => {}
///     // accepted, then dropped: counted in `metrics().dropped.queue_full`
///     Err(LogError::QueueFull) => {}
///     // refused, counted in `metrics().rejected`: say why
///     Err(e) => eprintln!("request log refused: {e}"),
/// }
/// # }
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum LogError {
    /// A setting is invalid; `setting` names it (the environment variable when
    /// it came from one). Never contains a secret.
    Config {
        /// The setting or variable.
        setting: String,
        /// What was expected and what was found.
        message: String,
    },
    /// The record is not valid (not a JSON object, wrong field type).
    InvalidRecord(String),
    /// The record alone is larger than a batch may be.
    RecordTooLarge {
        /// Serialized size of the record.
        bytes: usize,
        /// The batch byte limit.
        limit: usize,
    },
    /// The queue is full and the overflow policy drops new records.
    QueueFull,
    /// The logger is shutting down and accepts nothing more.
    ShutDown,
    /// Storage refused the configuration at start (e.g. cannot create the filesystem).
    Storage(adls_rest::Error),
}

impl LogError {
    pub(crate) fn config(setting: impl Into<String>, message: impl Into<String>) -> Self {
        LogError::Config {
            setting: setting.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for LogError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LogError::Config { setting, message } => write!(f, "invalid setting {setting}: {message}"),
            LogError::InvalidRecord(m) => write!(f, "invalid log record: {m}"),
            LogError::RecordTooLarge { bytes, limit } => write!(
                f,
                "log record of {bytes} bytes is larger than the batch limit of {limit} bytes; it was not accepted"
            ),
            LogError::QueueFull => f.write_str("log queue is full; the record was dropped (counted as dropped: queue_full)"),
            LogError::ShutDown => f.write_str("logger is shut down; the record was not accepted"),
            LogError::Storage(e) => write!(f, "storage error: {e}"),
        }
    }
}

impl std::error::Error for LogError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            LogError::Storage(e) => Some(e),
            _ => None,
        }
    }
}

impl From<adls_rest::Error> for LogError {
    fn from(e: adls_rest::Error) -> Self {
        LogError::Storage(e)
    }
}
