//! Configuration: a plain struct with defaults that suit a gateway, and
//! `from_env` reading the original callback's variables plus `LLM_LOG_*`
//! tunables. Every invalid setting is an error naming the setting; no secret
//! is ever printed.
//!
//! Default batch limits and why: 5 s of age bounds how stale the lake is;
//! 8 MiB keeps one batch to one or two append calls and a few MB of memory
//! per upload in flight; 10 000 records caps per-file work for readers. A
//! gateway at 1 000 requests/s with 2 KiB records cuts a batch about every
//! 4 s (byte limit), so 0.5 files/s per replica instead of 1 000.

use std::path::PathBuf;
use std::time::Duration;

use crate::error::LogError;
use crate::format::Format;
use crate::layout::{LayoutMode, BATCH_TEMPLATE, RECORD_TEMPLATE, ROLLING_TEMPLATE};
use crate::redact::{ContentPolicy, Redaction};

/// What happens when the queue is full.
///
/// See the [`Config`] example.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum OverflowPolicy {
    /// Drop the new record and count it (`dropped.queue_full`). `log` never waits.
    #[default]
    DropNewest,
    /// `log_async` waits for room; the non-async `log` drops as `DropNewest`.
    Block,
    /// Write overflowing records to the spill directory (needs spilling enabled).
    Spill,
}

/// Spill directory settings.
///
/// See the [`Config`] example.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpillConfig {
    /// Directory for spilled batches (created if missing).
    pub dir: PathBuf,
    /// Largest total size of spill files; batches beyond it are dropped (`spill_failed`).
    pub max_bytes: u64,
}

/// Journal settings: what [`Logger::ingest`](crate::Logger::ingest) takes is
/// fsynced here before it returns (see `journal.rs`).
///
/// ```
/// use llm_log_callback::{Config, JournalConfig};
///
/// let config = Config {
///     // acknowledged by `ingest` means fsynced here; spills go to its `spill/`
///     journal: Some(JournalConfig { dir: "/var/lib/llm-log-shipper/journal".into(), max_bytes: 1 << 30 }),
///     ..Config::default()
/// };
/// assert!(config.validate().is_ok());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalConfig {
    /// The journal directory (created if missing). Without a spill directory
    /// of its own, the logger spills into `spill/` inside it.
    pub dir: PathBuf,
    /// Largest size of the journal: beyond it `ingest` answers `Busy`.
    pub max_bytes: u64,
}

/// Logger configuration.
///
/// Start from the defaults (or [`Config::from_env`]) and change what differs:
///
/// ```
/// use std::time::Duration;
/// use llm_log_callback::{Config, ContentPolicy, Format, LayoutMode, OverflowPolicy, Redaction, SpillConfig};
///
/// let config = Config {
///     filesystem: "gateway-logs".into(),
///     prefix: "prod/eu-west".into(),
///     // one file per replica and hour, appended batch after batch
///     layout: LayoutMode::Rolling { window: Duration::from_secs(3600) },
///     max_batch_age: Duration::from_secs(2),
///     format: Format::NdjsonZstd,
///     // when storage is down, batches wait on disk instead of being dropped
///     spill: Some(SpillConfig { dir: "/var/lib/gateway/llm-log-spill".into(), max_bytes: 1 << 30 }),
///     overflow: OverflowPolicy::Spill,
///     redaction: Redaction { content: ContentPolicy::Hash, ..Redaction::default() },
///     ..Config::default()
/// };
/// assert!(config.validate().is_ok());
///
/// // Every invalid setting is an error that names it.
/// let bad = Config { queue_max_bytes: 1024, ..Config::default() };
/// let e = bad.validate().unwrap_err();
/// assert!(e.to_string().contains("queue_max_bytes"));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Filesystem (container) to write to.
    pub filesystem: String,
    /// Create the filesystem at start if missing.
    pub create_filesystem: bool,
    /// Path prefix inside the filesystem.
    pub prefix: String,
    /// File grouping.
    pub layout: LayoutMode,
    /// Path template; `None` uses the layout's default.
    pub path_template: Option<String>,
    /// Instance name in paths; unique per process by default.
    pub instance: String,
    /// Cut a batch at this many records.
    pub max_batch_records: usize,
    /// Cut a batch at this many (uncompressed) bytes; a larger record is refused.
    pub max_batch_bytes: usize,
    /// Cut a batch when its oldest record is this old.
    pub max_batch_age: Duration,
    /// Queue bound in records.
    pub queue_max_records: usize,
    /// Queue bound in bytes.
    pub queue_max_bytes: usize,
    /// What to do when the queue is full.
    pub overflow: OverflowPolicy,
    /// The files' format: NDJSON (plain, gzip or zstd) or Parquet (one file
    /// per batch; needs the `parquet` feature). See [`Format`].
    pub format: Format,
    /// Uploads in flight at once.
    pub max_concurrent_uploads: usize,
    /// Transactional checksums on every append and staged block (the service
    /// refuses data damaged on the way). Default: `Content-MD5`.
    pub checksums: adls_rest::Checksums,
    /// How long [`Logger::ingest`](crate::Logger::ingest) remembers the ids it
    /// took, to skip a sender's retry of the same records.
    pub dedup_window: Duration,
    /// At most this many ids are remembered (the oldest go first): about
    /// 100 bytes of memory each.
    pub dedup_max_ids: usize,
    /// Only for measuring what verification costs (`cargo xtask bench`):
    /// when true, a 2xx from the commit counts as written without comparing
    /// what the service stored. Never turn this on in production.
    #[doc(hidden)]
    pub unverified_for_benchmarks: bool,
    /// Largest single append (the service accepts up to 4000 MiB; smaller
    /// appends retry cheaper).
    pub append_chunk_bytes: usize,
    /// How long a batch is retried as a whole before it is spilled or dropped.
    pub batch_retry_window: Duration,
    /// Spill directory; `None` disables spilling.
    pub spill: Option<SpillConfig>,
    /// Journal for `ingest`; `None`: `ingest` queues without fsync.
    pub journal: Option<JournalConfig>,
    /// Redaction applied to every record.
    pub redaction: Redaction,
    /// How often the replayer looks at the spill directory when idle.
    pub replay_interval: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            filesystem: "llm-logs".into(),
            create_filesystem: true,
            prefix: String::new(),
            layout: LayoutMode::PerBatch,
            path_template: None,
            instance: crate::layout::default_instance(),
            max_batch_records: 10_000,
            max_batch_bytes: 8 << 20,
            max_batch_age: Duration::from_secs(5),
            queue_max_records: 100_000,
            queue_max_bytes: 64 << 20,
            overflow: OverflowPolicy::DropNewest,
            format: Format::Ndjson,
            max_concurrent_uploads: 4,
            append_chunk_bytes: 8 << 20,
            checksums: adls_rest::Checksums {
                md5: true,
                crc64: false,
            },
            dedup_window: Duration::from_secs(600),
            dedup_max_ids: 1_000_000,
            unverified_for_benchmarks: false,
            batch_retry_window: Duration::from_secs(60),
            spill: None,
            journal: None,
            redaction: Redaction::default(),
            replay_interval: Duration::from_secs(30),
        }
    }
}

impl Config {
    /// The path template in effect.
    pub fn template(&self) -> &str {
        if let Some(t) = &self.path_template {
            return t;
        }
        match self.layout {
            LayoutMode::PerBatch => BATCH_TEMPLATE,
            LayoutMode::Rolling { .. } => ROLLING_TEMPLATE,
            LayoutMode::PerRecord => RECORD_TEMPLATE,
        }
    }

    /// Checks every setting; the error names the first bad one.
    pub fn validate(&self) -> Result<(), LogError> {
        adls_rest::ops::validate_filesystem(&self.filesystem)
            .map_err(|e| LogError::config("filesystem", e.to_string()))?;
        let positive = |name: &str, v: usize| {
            if v == 0 {
                Err(LogError::config(name, "must be at least 1"))
            } else {
                Ok(())
            }
        };
        positive("max_batch_records", self.max_batch_records)?;
        positive("max_batch_bytes", self.max_batch_bytes)?;
        positive("queue_max_records", self.queue_max_records)?;
        positive("queue_max_bytes", self.queue_max_bytes)?;
        positive("max_concurrent_uploads", self.max_concurrent_uploads)?;
        positive("append_chunk_bytes", self.append_chunk_bytes)?;
        if self.max_batch_age.is_zero() {
            return Err(LogError::config("max_batch_age", "must be more than 0"));
        }
        if self.queue_max_bytes < self.max_batch_bytes {
            return Err(LogError::config(
                "queue_max_bytes",
                format!(
                    "{} is smaller than max_batch_bytes ({}); the queue must hold at least one batch",
                    self.queue_max_bytes, self.max_batch_bytes
                ),
            ));
        }
        if self.overflow == OverflowPolicy::Spill && self.spill.is_none() {
            return Err(LogError::config(
                "overflow",
                "the spill policy needs a spill directory",
            ));
        }
        if let LayoutMode::Rolling { window } = self.layout {
            if window < Duration::from_secs(1) {
                return Err(LogError::config(
                    "layout",
                    "a rolling window must be at least 1 s",
                ));
            }
        }
        if !self.format.available() {
            return Err(LogError::config(
                "format",
                "this build of llm-log-callback has no Parquet support: enable the crate's `parquet` feature",
            ));
        }
        match self.layout {
            LayoutMode::Rolling { .. } if !self.format.appendable() => {
                return Err(LogError::config(
                    "format",
                    format!(
                        "{} files are written whole, one per batch, and cannot be appended to: use the batch layout (LLM_LOG_LAYOUT=batch) with {}, or an NDJSON format with the rolling layout",
                        self.format, self.format
                    ),
                ));
            }
            LayoutMode::PerRecord if self.format != Format::Ndjson => {
                return Err(LogError::config(
                    "format",
                    format!(
                        "the per-record layout writes each record as one JSON file; {} applies to the batch and rolling layouts",
                        self.format
                    ),
                ));
            }
            _ => {}
        }
        crate::layout::Layout::new(
            self.template(),
            &self.prefix,
            &self.instance,
            self.format,
            &self.layout,
        )
        .map_err(|m| LogError::config("path_template", m))?;
        Ok(())
    }

    /// Reads the tunables from `LLM_LOG_*` variables on top of the defaults
    /// (the destination comes from [`crate::client_from_env`]).
    ///
    /// | variable | meaning | default |
    /// |---|---|---|
    /// | `AZURE_STORAGE_FILE_SYSTEM` | filesystem | `llm-logs` |
    /// | `LLM_LOG_PREFIX` | path prefix | empty |
    /// | `LLM_LOG_CREATE_FILESYSTEM` | create the filesystem at start | true |
    /// | `LLM_LOG_DEDUP_WINDOW_SECS` / `LLM_LOG_DEDUP_MAX_IDS` | `ingest`'s deduplication window | 600 / 1000000 |
    /// | `LLM_LOG_LAYOUT` | `batch`, `rolling`, `per-record` | `batch` |
    /// | `LLM_LOG_ROLLING_WINDOW_SECS` | rolling window | 3600 |
    /// | `LLM_LOG_PATH_TEMPLATE` | path template | per layout |
    /// | `LLM_LOG_INSTANCE` | instance name (a random part is always added) | host-pid |
    /// | `LLM_LOG_CHECKSUM` | transactional checksum: `md5`, `crc64`, `none` | md5 |
    /// | `LLM_LOG_BATCH_MAX_RECORDS` | records per batch | 10000 |
    /// | `LLM_LOG_BATCH_MAX_BYTES` | bytes per batch | 8388608 |
    /// | `LLM_LOG_BATCH_MAX_AGE_MS` | batch age | 5000 |
    /// | `LLM_LOG_QUEUE_MAX_RECORDS` / `_BYTES` | queue bounds | 100000 / 67108864 |
    /// | `LLM_LOG_OVERFLOW` | `drop`, `block`, `spill` | `drop` |
    /// | `LLM_LOG_FORMAT` | `ndjson`, `ndjson.gz`, `ndjson.zst`, `parquet` | `ndjson` |
    /// | `LLM_LOG_GZIP` | `true`: the older spelling of `LLM_LOG_FORMAT=ndjson.gz` | false |
    /// | `LLM_LOG_MAX_CONCURRENT_UPLOADS` | uploads in flight | 4 |
    /// | `LLM_LOG_RETRY_WINDOW_SECS` | whole-batch retry window | 60 |
    /// | `LLM_LOG_SPILL_DIR` / `LLM_LOG_SPILL_MAX_BYTES` | spill directory and cap | off / 1 GiB |
    /// | `LLM_LOG_JOURNAL_DIR` / `LLM_LOG_JOURNAL_MAX_BYTES` | `ingest`'s journal and cap | off / 1 GiB |
    /// | `LLM_LOG_REDACT_CONTENT` | `keep`, `drop`, `hash` | keep |
    /// | `LLM_LOG_MAX_STRING_BYTES` | truncate strings (0 = off) | 65536 |
    /// | `LLM_LOG_STRIP_DATA_URLS` | `true`/`false` | true |
    pub fn from_env() -> Result<Self, LogError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// [`Config::from_env`] with an injected lookup (for tests).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, LogError> {
        let mut c = Config::default();
        let get = |k: &str| {
            get(k)
                .filter(|v| !v.trim().is_empty())
                .map(|v| v.trim().to_string())
        };
        fn num<T: std::str::FromStr>(k: &str, v: &str) -> Result<T, LogError> {
            v.parse()
                .map_err(|_| LogError::config(k, format!("`{v}` is not a valid number")))
        }
        fn flag(k: &str, v: &str) -> Result<bool, LogError> {
            match v.to_ascii_lowercase().as_str() {
                "1" | "true" | "yes" | "on" => Ok(true),
                "0" | "false" | "no" | "off" => Ok(false),
                _ => Err(LogError::config(k, format!("`{v}` is not true or false"))),
            }
        }
        if let Some(v) = get("AZURE_STORAGE_FILE_SYSTEM") {
            c.filesystem = v;
        }
        if let Some(v) = get("LLM_LOG_PREFIX") {
            c.prefix = v;
        }
        let window = match get("LLM_LOG_ROLLING_WINDOW_SECS") {
            Some(v) => Duration::from_secs(num("LLM_LOG_ROLLING_WINDOW_SECS", &v)?),
            None => Duration::from_secs(3600),
        };
        if let Some(v) = get("LLM_LOG_LAYOUT") {
            c.layout = match v.to_ascii_lowercase().as_str() {
                "batch" | "per-batch" => LayoutMode::PerBatch,
                "rolling" => LayoutMode::Rolling { window },
                "per-record" | "record" => LayoutMode::PerRecord,
                _ => {
                    return Err(LogError::config(
                        "LLM_LOG_LAYOUT",
                        format!("`{v}` is not one of batch, rolling, per-record"),
                    ))
                }
            };
        }
        if let Some(v) = get("LLM_LOG_PATH_TEMPLATE") {
            c.path_template = Some(v);
        }
        if let Some(v) = get("LLM_LOG_INSTANCE") {
            c.instance = v;
        }
        if let Some(v) = get("LLM_LOG_BATCH_MAX_RECORDS") {
            c.max_batch_records = num("LLM_LOG_BATCH_MAX_RECORDS", &v)?;
        }
        if let Some(v) = get("LLM_LOG_BATCH_MAX_BYTES") {
            c.max_batch_bytes = num("LLM_LOG_BATCH_MAX_BYTES", &v)?;
        }
        if let Some(v) = get("LLM_LOG_BATCH_MAX_AGE_MS") {
            c.max_batch_age = Duration::from_millis(num("LLM_LOG_BATCH_MAX_AGE_MS", &v)?);
        }
        if let Some(v) = get("LLM_LOG_QUEUE_MAX_RECORDS") {
            c.queue_max_records = num("LLM_LOG_QUEUE_MAX_RECORDS", &v)?;
        }
        if let Some(v) = get("LLM_LOG_QUEUE_MAX_BYTES") {
            c.queue_max_bytes = num("LLM_LOG_QUEUE_MAX_BYTES", &v)?;
        }
        if let Some(v) = get("LLM_LOG_OVERFLOW") {
            c.overflow = match v.to_ascii_lowercase().as_str() {
                "drop" | "drop-newest" => OverflowPolicy::DropNewest,
                "block" => OverflowPolicy::Block,
                "spill" => OverflowPolicy::Spill,
                _ => {
                    return Err(LogError::config(
                        "LLM_LOG_OVERFLOW",
                        format!("`{v}` is not one of drop, block, spill"),
                    ))
                }
            };
        }
        if let Some(v) = get("LLM_LOG_DEDUP_WINDOW_SECS") {
            c.dedup_window = Duration::from_secs(num("LLM_LOG_DEDUP_WINDOW_SECS", &v)?);
        }
        if let Some(v) = get("LLM_LOG_DEDUP_MAX_IDS") {
            c.dedup_max_ids = num("LLM_LOG_DEDUP_MAX_IDS", &v)?;
        }
        if let Some(v) = get("LLM_LOG_CREATE_FILESYSTEM") {
            c.create_filesystem = flag("LLM_LOG_CREATE_FILESYSTEM", &v)?;
        }
        if let Some(v) = get("LLM_LOG_CHECKSUM") {
            let (md5, crc64) = match v.to_ascii_lowercase().as_str() {
                "md5" => (true, false),
                "crc64" => (false, true),
                "none" => (false, false),
                _ => {
                    return Err(LogError::config(
                        "LLM_LOG_CHECKSUM",
                        format!("`{v}` is not one of md5, crc64, none"),
                    ))
                }
            };
            c.checksums = adls_rest::Checksums { md5, crc64 };
        }
        if let Some(v) = get("LLM_LOG_FORMAT") {
            c.format = v.parse().map_err(|e: crate::format::UnknownFormat| {
                LogError::config("LLM_LOG_FORMAT", e.to_string())
            })?;
        }
        if let Some(v) = get("LLM_LOG_GZIP") {
            if flag("LLM_LOG_GZIP", &v)? {
                match get("LLM_LOG_FORMAT") {
                    Some(_) if c.format != Format::NdjsonGzip => {
                        return Err(LogError::config(
                            "LLM_LOG_GZIP",
                            format!("`true` asks for ndjson.gz but LLM_LOG_FORMAT asks for {}; set only LLM_LOG_FORMAT", c.format),
                        ))
                    }
                    _ => c.format = Format::NdjsonGzip,
                }
            }
        }
        if let Some(v) = get("LLM_LOG_MAX_CONCURRENT_UPLOADS") {
            c.max_concurrent_uploads = num("LLM_LOG_MAX_CONCURRENT_UPLOADS", &v)?;
        }
        if let Some(v) = get("LLM_LOG_RETRY_WINDOW_SECS") {
            c.batch_retry_window = Duration::from_secs(num("LLM_LOG_RETRY_WINDOW_SECS", &v)?);
        }
        if let Some(dir) = get("LLM_LOG_JOURNAL_DIR") {
            let max_bytes = match get("LLM_LOG_JOURNAL_MAX_BYTES") {
                Some(v) => num("LLM_LOG_JOURNAL_MAX_BYTES", &v)?,
                None => 1 << 30,
            };
            c.journal = Some(JournalConfig {
                dir: PathBuf::from(dir),
                max_bytes,
            });
        }
        if let Some(dir) = get("LLM_LOG_SPILL_DIR") {
            let max_bytes = match get("LLM_LOG_SPILL_MAX_BYTES") {
                Some(v) => num("LLM_LOG_SPILL_MAX_BYTES", &v)?,
                None => 1 << 30,
            };
            c.spill = Some(SpillConfig {
                dir: PathBuf::from(dir),
                max_bytes,
            });
        }
        if let Some(v) = get("LLM_LOG_REDACT_CONTENT") {
            c.redaction.content = match v.to_ascii_lowercase().as_str() {
                "keep" | "off" => ContentPolicy::Keep,
                "drop" => ContentPolicy::Drop,
                "hash" => ContentPolicy::Hash,
                _ => {
                    return Err(LogError::config(
                        "LLM_LOG_REDACT_CONTENT",
                        format!("`{v}` is not one of keep, drop, hash"),
                    ))
                }
            };
        }
        if let Some(v) = get("LLM_LOG_MAX_STRING_BYTES") {
            let n: usize = num("LLM_LOG_MAX_STRING_BYTES", &v)?;
            c.redaction.max_string_bytes = (n > 0).then_some(n);
        }
        if let Some(v) = get("LLM_LOG_STRIP_DATA_URLS") {
            c.redaction.strip_data_urls = flag("LLM_LOG_STRIP_DATA_URLS", &v)?;
        }
        c.validate().map_err(|e| match e {
            // name the variable rather than the field where one maps
            LogError::Config { setting, message } => LogError::Config {
                setting: env_name(&setting).to_string(),
                message,
            },
            other => other,
        })?;
        Ok(c)
    }
}

fn env_name(field: &str) -> &str {
    match field {
        "filesystem" => "AZURE_STORAGE_FILE_SYSTEM",
        "max_batch_records" => "LLM_LOG_BATCH_MAX_RECORDS",
        "max_batch_bytes" => "LLM_LOG_BATCH_MAX_BYTES",
        "max_batch_age" => "LLM_LOG_BATCH_MAX_AGE_MS",
        "queue_max_records" => "LLM_LOG_QUEUE_MAX_RECORDS",
        "queue_max_bytes" => "LLM_LOG_QUEUE_MAX_BYTES",
        "max_concurrent_uploads" => "LLM_LOG_MAX_CONCURRENT_UPLOADS",
        "overflow" => "LLM_LOG_OVERFLOW",
        "layout" => "LLM_LOG_ROLLING_WINDOW_SECS",
        "path_template" => "LLM_LOG_PATH_TEMPLATE",
        "format" => "LLM_LOG_FORMAT",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn from(pairs: &[(&str, &str)]) -> Result<Config, LogError> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|k| m.get(k).cloned())
    }

    #[test]
    fn defaults_are_valid() {
        Config::default().validate().expect("valid");
        let c = from(&[]).expect("defaults");
        assert_eq!(c.max_batch_records, 10_000);
        assert_eq!(c.layout, LayoutMode::PerBatch);
    }

    #[test]
    fn env_tunables() {
        let c = from(&[
            ("AZURE_STORAGE_FILE_SYSTEM", "team-logs"),
            ("LLM_LOG_LAYOUT", "rolling"),
            ("LLM_LOG_ROLLING_WINDOW_SECS", "600"),
            ("LLM_LOG_GZIP", "true"),
            ("LLM_LOG_OVERFLOW", "spill"),
            ("LLM_LOG_SPILL_DIR", "/tmp/x"),
            ("LLM_LOG_REDACT_CONTENT", "hash"),
            ("LLM_LOG_MAX_STRING_BYTES", "0"),
        ])
        .expect("config");
        assert_eq!(c.filesystem, "team-logs");
        assert_eq!(
            c.layout,
            LayoutMode::Rolling {
                window: Duration::from_secs(600)
            }
        );
        assert_eq!(c.format, Format::NdjsonGzip);
        assert_eq!(c.redaction.content, ContentPolicy::Hash);
        assert_eq!(c.redaction.max_string_bytes, None);
    }

    #[test]
    fn every_bad_setting_names_its_variable() {
        for (k, v) in [
            ("LLM_LOG_BATCH_MAX_RECORDS", "lots"),
            ("LLM_LOG_BATCH_MAX_RECORDS", "0"),
            ("LLM_LOG_GZIP", "maybe"),
            ("LLM_LOG_LAYOUT", "sideways"),
            ("LLM_LOG_OVERFLOW", "spill"),
            ("AZURE_STORAGE_FILE_SYSTEM", "Bad_Name"),
            ("LLM_LOG_PATH_TEMPLATE", "{prefix}/{bogus}"),
            ("LLM_LOG_QUEUE_MAX_BYTES", "10"),
            ("LLM_LOG_REDACT_CONTENT", "blur"),
            ("LLM_LOG_FORMAT", "csv"),
        ] {
            let e = from(&[(k, v)]).expect_err(k);
            match &e {
                LogError::Config { setting, .. } => assert_eq!(setting, k, "{e}"),
                other => panic!("{k}: {other}"),
            }
            assert!(e.to_string().contains(k), "{e}");
        }
    }

    #[test]
    fn formats_from_the_environment_and_the_layouts_they_fit() {
        let f = |vars: &[(&str, &str)]| from(vars).map(|c| c.format);
        assert_eq!(f(&[]).expect("default"), Format::Ndjson);
        assert_eq!(
            f(&[("LLM_LOG_FORMAT", "ndjson.zst")]).expect("zst"),
            Format::NdjsonZstd
        );
        assert_eq!(
            f(&[("LLM_LOG_GZIP", "true")]).expect("gzip"),
            Format::NdjsonGzip
        );
        assert_eq!(
            f(&[("LLM_LOG_GZIP", "false"), ("LLM_LOG_FORMAT", "ndjson.gz")]).expect("gz"),
            Format::NdjsonGzip
        );
        assert_eq!(
            f(&[("LLM_LOG_GZIP", "true"), ("LLM_LOG_FORMAT", "ndjson.gz")]).expect("same"),
            Format::NdjsonGzip
        );
        let setting = |e: LogError| match e {
            LogError::Config { setting, message } => (setting, message),
            other => panic!("{other}"),
        };
        let (s, m) = setting(
            f(&[("LLM_LOG_GZIP", "true"), ("LLM_LOG_FORMAT", "ndjson.zst")]).expect_err("both"),
        );
        assert_eq!(s, "LLM_LOG_GZIP");
        assert!(m.contains("ndjson.zst"), "{m}");
        let (s, m) = setting(
            f(&[
                ("LLM_LOG_FORMAT", "ndjson.gz"),
                ("LLM_LOG_LAYOUT", "per-record"),
            ])
            .expect_err("per record"),
        );
        assert_eq!(s, "LLM_LOG_FORMAT");
        assert!(m.contains("per-record layout"), "{m}");
        let (s, m) = setting(
            f(&[("LLM_LOG_FORMAT", "parquet"), ("LLM_LOG_LAYOUT", "rolling")])
                .expect_err("rolling parquet"),
        );
        assert_eq!(s, "LLM_LOG_FORMAT");
        if cfg!(feature = "parquet") {
            assert!(m.contains("cannot be appended to"), "{m}");
            assert_eq!(
                f(&[("LLM_LOG_FORMAT", "parquet")]).expect("parquet"),
                Format::Parquet
            );
        } else {
            assert!(m.contains("`parquet` feature"), "{m}");
            let (s, m) = setting(f(&[("LLM_LOG_FORMAT", "parquet")]).expect_err("no feature"));
            assert_eq!(s, "LLM_LOG_FORMAT");
            assert!(m.contains("`parquet` feature"), "{m}");
        }
        for rolling_ok in ["ndjson", "ndjson.gz", "ndjson.zst"] {
            f(&[
                ("LLM_LOG_FORMAT", rolling_ok),
                ("LLM_LOG_LAYOUT", "rolling"),
            ])
            .expect(rolling_ok);
        }
    }
}
