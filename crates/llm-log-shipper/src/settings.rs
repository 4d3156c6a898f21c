//! The shipper's settings: the command line, the environment and an optional
//! TOML file, merged into one lookup that the library's own readers
//! (`Config::from_lookup`, `client_from_lookup`) and the shipper's take.
//!
//! Precedence: a command-line flag, then the environment, then the file. The
//! file is the base a deployment ships; the environment is what one replica
//! or one run changes, as with most twelve-factor services. An environment
//! variable set to the empty string counts as unset (the library reads it so).
//!
//! The file's keys are the environment variables' own names, so one setting
//! has one name everywhere:
//!
//! ```toml
//! LLM_LOG_LISTEN = "0.0.0.0:4319"
//! LLM_LOG_INGEST_TOKEN_FILE = "/run/secrets/llm-log-token"
//! AZURE_STORAGE_ACCOUNT_NAME = "mylake"
//! AZURE_STORAGE_FILE_SYSTEM = "llm-logs"
//! LLM_LOG_BATCH_MAX_AGE_MS = 2000
//! LLM_LOG_FORMAT = "parquet"
//! ```
//!
//! A key the shipper does not know is an error (a typo must not silently fall
//! back to a default), and so is `LLM_LOG_INGEST_TOKEN`: the file names a
//! token file instead, so the token is never in a file that gets copied
//! around with the configuration.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use llm_log_callback::{Config, LogError};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Default listen address: loopback, so no token is needed by default.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:4319";
/// Default body limit, 64 MiB: the library's default queue bound in bytes,
/// so a body that could never be queued whole is refused before it is read,
/// and about ten times LiteLLM's largest usual batch (512 records of about
/// 13 KB). It bounds the memory one request may take (decompressed size
/// included).
pub const DEFAULT_MAX_BODY_BYTES: usize = 64 << 20;
/// Default drain deadline at shutdown.
pub const DEFAULT_SHUTDOWN_SECS: u64 = 30;
/// `LLM_LOG_BODY_TIMEOUT_SECS`: a sender that stalls mid-body gets `503`
/// after this, instead of holding its share of the body memory (and its
/// connection) for good. LiteLLM posts a batch on the same machine in
/// milliseconds.
pub const DEFAULT_BODY_TIMEOUT_SECS: u64 = 30;

/// The shipper's own variables (the library reads the others).
const SHIPPER_VARIABLES: &[&str] = &[
    "LLM_LOG_LISTEN",
    "LLM_LOG_INGEST_TOKEN_FILE",
    "LLM_LOG_MAX_BODY_BYTES",
    "LLM_LOG_SHUTDOWN_SECS",
    "LLM_LOG_BODY_TIMEOUT_SECS",
    "LLM_LOG_FORMAT_LOGS",
];

/// Where the journal lives when `LLM_LOG_JOURNAL_DIR` is not set (relative
/// to the working directory).
pub const DEFAULT_JOURNAL_DIR: &str = "llm-log-journal";

/// The variables `llm-log-callback` reads (`Config::from_env`,
/// `client_from_env`). A unit test checks this list against the library's
/// source, so it cannot go stale silently.
const LIBRARY_VARIABLES: &[&str] = &[
    "AZURE_AUTHORITY_HOST",
    "AZURE_STORAGE_ACCOUNT_KEY",
    "AZURE_STORAGE_ACCOUNT_NAME",
    "AZURE_STORAGE_CLIENT_ID",
    "AZURE_STORAGE_CLIENT_SECRET",
    "AZURE_STORAGE_CONNECTION_STRING",
    "AZURE_STORAGE_DIALECT",
    "AZURE_STORAGE_ENDPOINT",
    "AZURE_STORAGE_FILE_SYSTEM",
    "AZURE_STORAGE_TENANT_ID",
    "LLM_LOG_BATCH_MAX_AGE_MS",
    "LLM_LOG_BATCH_MAX_BYTES",
    "LLM_LOG_BATCH_MAX_RECORDS",
    "LLM_LOG_CA_PEM",
    "LLM_LOG_CHECKSUM",
    "LLM_LOG_CREATE_FILESYSTEM",
    "LLM_LOG_DEDUP_MAX_IDS",
    "LLM_LOG_DEDUP_WINDOW_SECS",
    "LLM_LOG_FORMAT",
    "LLM_LOG_GZIP",
    "LLM_LOG_INSTANCE",
    "LLM_LOG_JOURNAL_DIR",
    "LLM_LOG_JOURNAL_MAX_BYTES",
    "LLM_LOG_LAYOUT",
    "LLM_LOG_MAX_CONCURRENT_UPLOADS",
    "LLM_LOG_MAX_STRING_BYTES",
    "LLM_LOG_OVERFLOW",
    "LLM_LOG_PATH_TEMPLATE",
    "LLM_LOG_PREFIX",
    "LLM_LOG_QUEUE_MAX_BYTES",
    "LLM_LOG_QUEUE_MAX_RECORDS",
    "LLM_LOG_REDACT_CONTENT",
    "LLM_LOG_RETRY_WINDOW_SECS",
    "LLM_LOG_ROLLING_WINDOW_SECS",
    "LLM_LOG_SPILL_DIR",
    "LLM_LOG_SPILL_MAX_BYTES",
    "LLM_LOG_STRIP_DATA_URLS",
];

/// A configuration problem. Names the setting; never holds a secret.
#[derive(Debug)]
pub struct SettingsError {
    /// The variable, flag or file concerned.
    pub setting: String,
    /// What was expected and what was found.
    pub message: String,
}

impl SettingsError {
    fn new(setting: impl Into<String>, message: impl Into<String>) -> Self {
        SettingsError {
            setting: setting.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for SettingsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid setting {}: {}", self.setting, self.message)
    }
}

impl std::error::Error for SettingsError {}

impl From<LogError> for SettingsError {
    fn from(e: LogError) -> Self {
        match e {
            LogError::Config { setting, message } => SettingsError { setting, message },
            other => SettingsError::new("configuration", other.to_string()),
        }
    }
}

/// The bearer token senders must present. Only its SHA-256 digest is kept:
/// comparing digests in constant time leaks neither the token nor its length.
#[derive(Clone)]
pub struct IngestToken([u8; 32]);

impl IngestToken {
    /// A token from its text.
    pub fn new(token: &str) -> Self {
        IngestToken(Sha256::digest(token.as_bytes()).into())
    }

    /// Whether `presented` is the token, in time independent of both.
    pub fn matches(&self, presented: &[u8]) -> bool {
        let digest: [u8; 32] = Sha256::digest(presented).into();
        digest.ct_eq(&self.0).into()
    }
}

impl fmt::Debug for IngestToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("IngestToken(<redacted>)")
    }
}

/// What the command line says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Flags {
    /// `--listen ADDR`.
    pub listen: Option<String>,
    /// `--config FILE`.
    pub config: Option<PathBuf>,
}

/// Everything the shipper runs with.
pub struct Settings {
    /// Where to listen.
    pub listen: SocketAddr,
    /// The token senders must present; `None` lets anyone on the address post.
    pub token: Option<IngestToken>,
    /// Largest body, decompressed.
    pub max_body_bytes: usize,
    /// How long shutdown may take to drain.
    pub shutdown_deadline: Duration,
    /// How long a request's body may take to arrive.
    pub body_timeout: Duration,
    /// Log lines as JSON.
    pub json_logs: bool,
    /// The logger's configuration.
    pub logger: Config,
    /// Where the file came from, if any.
    pub file: Option<PathBuf>,
    /// Merged variables (environment over file), for the storage client.
    vars: HashMap<String, String>,
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `vars` may hold an account key or a connection string: not shown
        f.debug_struct("Settings")
            .field("listen", &self.listen)
            .field("token", &self.token)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("shutdown_deadline", &self.shutdown_deadline)
            .field("body_timeout", &self.body_timeout)
            .field("json_logs", &self.json_logs)
            .field("logger", &self.logger)
            .field("file", &self.file)
            .finish_non_exhaustive()
    }
}

impl Settings {
    /// Reads the settings from `flags`, the process environment and the file.
    pub fn load(flags: &Flags) -> Result<Settings, SettingsError> {
        Self::load_from(
            flags,
            std::env::vars_os()
                .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?))),
        )
    }

    /// [`Settings::load`] with the environment given (for tests).
    pub fn load_from(
        flags: &Flags,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Settings, SettingsError> {
        let mut vars = match &flags.config {
            Some(path) => read_file(path)?,
            None => HashMap::new(),
        };
        for (k, v) in env {
            if !v.trim().is_empty() {
                vars.insert(k, v);
            }
        }
        let get = |k: &str| {
            vars.get(k)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };

        let (listen_setting, listen) = match &flags.listen {
            Some(l) => ("--listen", l.clone()),
            None => (
                "LLM_LOG_LISTEN",
                get("LLM_LOG_LISTEN").unwrap_or_else(|| DEFAULT_LISTEN.to_string()),
            ),
        };
        let listen: SocketAddr = listen.parse().map_err(|_| {
            SettingsError::new(
                listen_setting,
                format!(
                    "`{listen}` is not an address and port such as 127.0.0.1:4319 or [::1]:4319"
                ),
            )
        })?;

        let token = match (
            get("LLM_LOG_INGEST_TOKEN"),
            get("LLM_LOG_INGEST_TOKEN_FILE"),
        ) {
            (Some(_), Some(_)) => {
                return Err(SettingsError::new(
                    "LLM_LOG_INGEST_TOKEN",
                    "both LLM_LOG_INGEST_TOKEN and LLM_LOG_INGEST_TOKEN_FILE are set: set one",
                ))
            }
            (Some(t), None) => Some(IngestToken::new(&t)),
            (None, Some(path)) => Some(read_token_file(Path::new(&path))?),
            (None, None) => None,
        };
        if token.is_none() && !listen.ip().is_loopback() {
            return Err(SettingsError::new(
                listen_setting,
                format!(
                    "refusing to listen on {listen}, which is not a loopback address, without a token: \
                     set LLM_LOG_INGEST_TOKEN (or LLM_LOG_INGEST_TOKEN_FILE) and give LiteLLM the same \
                     value in `Authorization: Bearer ...`"
                ),
            ));
        }

        let max_body_bytes = match get("LLM_LOG_MAX_BODY_BYTES") {
            Some(v) => match v.parse::<usize>() {
                Ok(n) if n > 0 => n,
                _ => {
                    return Err(SettingsError::new(
                        "LLM_LOG_MAX_BODY_BYTES",
                        format!("`{v}` is not a positive number of bytes"),
                    ))
                }
            },
            None => DEFAULT_MAX_BODY_BYTES,
        };
        let shutdown_deadline = match get("LLM_LOG_SHUTDOWN_SECS") {
            Some(v) => Duration::from_secs(v.parse().map_err(|_| {
                SettingsError::new(
                    "LLM_LOG_SHUTDOWN_SECS",
                    format!("`{v}` is not a number of seconds"),
                )
            })?),
            None => Duration::from_secs(DEFAULT_SHUTDOWN_SECS),
        };
        let body_timeout = match get("LLM_LOG_BODY_TIMEOUT_SECS") {
            Some(v) => match v.parse::<u64>() {
                Ok(n) if n > 0 => Duration::from_secs(n),
                _ => {
                    return Err(SettingsError::new(
                        "LLM_LOG_BODY_TIMEOUT_SECS",
                        format!("`{v}` is not a positive number of seconds"),
                    ))
                }
            },
            None => Duration::from_secs(DEFAULT_BODY_TIMEOUT_SECS),
        };
        let json_logs = match get("LLM_LOG_FORMAT_LOGS").as_deref() {
            None | Some("text") => false,
            Some("json") => true,
            Some(v) => {
                return Err(SettingsError::new(
                    "LLM_LOG_FORMAT_LOGS",
                    format!("`{v}` is not one of text, json"),
                ))
            }
        };
        let mut logger = Config::from_lookup(get)?;
        // Acknowledged means durable: the shipper always journals what it
        // answers 200 to, by default in `./llm-log-journal`.
        if logger.journal.is_none() {
            // its cap counts without `LLM_LOG_JOURNAL_DIR` too (the library
            // reads the two together; here the directory has a default)
            let max_bytes = match get("LLM_LOG_JOURNAL_MAX_BYTES") {
                Some(v) => v.trim().parse().map_err(|_| {
                    SettingsError::new(
                        "LLM_LOG_JOURNAL_MAX_BYTES",
                        format!("`{v}` is not a number of bytes"),
                    )
                })?,
                None => 1 << 30,
            };
            logger.journal = Some(llm_log_callback::JournalConfig {
                dir: std::path::PathBuf::from(DEFAULT_JOURNAL_DIR),
                max_bytes,
            });
        }
        logger.validate()?;
        Ok(Settings {
            listen,
            token,
            max_body_bytes,
            shutdown_deadline,
            body_timeout,
            json_logs,
            logger,
            file: flags.config.clone(),
            vars,
        })
    }

    /// The storage client, from the same merged variables.
    pub fn client(&self) -> Result<adls_rest::Client, SettingsError> {
        llm_log_callback::destination::client_from_lookup(|k| self.vars.get(k).cloned())
            .map_err(SettingsError::from)
    }
}

/// The file's keys and values, as strings.
fn read_file(path: &Path) -> Result<HashMap<String, String>, SettingsError> {
    let setting = format!("--config {}", path.display());
    let text = std::fs::read_to_string(path)
        .map_err(|e| SettingsError::new(&setting, format!("cannot read it: {e}")))?;
    parse_file(&text).map_err(|m| SettingsError::new(&setting, m))
}

/// Parses the TOML text: a flat table whose keys are variable names.
fn parse_file(text: &str) -> Result<HashMap<String, String>, String> {
    let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
        // the parser's message spans several lines with a caret diagram
        e.message().to_string()
            + &e.span()
                .map(|s| format!(" (at byte {})", s.start))
                .unwrap_or_default()
    })?;
    let mut out = HashMap::new();
    for (key, value) in table {
        if key == "LLM_LOG_INGEST_TOKEN" {
            return Err(
                "LLM_LOG_INGEST_TOKEN does not belong in the file: put the token in a file of its own and name it with LLM_LOG_INGEST_TOKEN_FILE"
                    .into(),
            );
        }
        if !SHIPPER_VARIABLES.contains(&key.as_str()) && !LIBRARY_VARIABLES.contains(&key.as_str())
        {
            return Err(format!(
                "unknown key `{key}`: the keys are the environment variables' names (LLM_LOG_*, AZURE_STORAGE_*), see the README"
            ));
        }
        let value = match value {
            toml::Value::String(s) => s,
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Float(f) => f.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            other => {
                return Err(format!(
                    "`{key}` is of type {}; expected a string, number or boolean",
                    other.type_str()
                ))
            }
        };
        out.insert(key, value);
    }
    Ok(out)
}

/// Reads the token from its file: the whole file, trailing newline removed.
fn read_token_file(path: &Path) -> Result<IngestToken, SettingsError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        SettingsError::new(
            "LLM_LOG_INGEST_TOKEN_FILE",
            format!("cannot read {}: {e}", path.display()),
        )
    })?;
    let token = text.trim_end_matches(['\n', '\r']);
    if token.trim().is_empty() {
        return Err(SettingsError::new(
            "LLM_LOG_INGEST_TOKEN_FILE",
            format!("{} is empty", path.display()),
        ));
    }
    Ok(IngestToken::new(token))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn temp_file(name: &str, text: &str) -> PathBuf {
        let p = std::env::temp_dir().join(format!(
            "llm-log-shipper-{}-{}-{name}",
            std::process::id(),
            fastrand_suffix()
        ));
        std::fs::write(&p, text).expect("write temp file");
        p
    }

    fn fastrand_suffix() -> u64 {
        use std::time::{SystemTime, UNIX_EPOCH};
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0)
    }

    #[test]
    fn defaults_are_loopback_without_a_token() {
        let s = Settings::load_from(&Flags::default(), env(&[])).expect("defaults");
        assert_eq!(s.listen.to_string(), DEFAULT_LISTEN);
        assert!(s.token.is_none());
        assert_eq!(s.max_body_bytes, 64 << 20);
        assert_eq!(s.shutdown_deadline, Duration::from_secs(30));
        assert_eq!(s.body_timeout, Duration::from_secs(30));
        assert!(!s.json_logs);
        assert_eq!(s.logger.filesystem, "llm-logs");
        let journal = s.logger.journal.expect("always a journal");
        assert_eq!(journal.max_bytes, 1 << 30);
    }

    /// The journal's cap counts on its own (its directory has a default
    /// here; it was ignored unless `LLM_LOG_JOURNAL_DIR` was set too), and
    /// the body timeout is read; bad values name their variable.
    #[test]
    fn the_journal_cap_and_the_body_timeout_are_read() {
        let s = Settings::load_from(
            &Flags::default(),
            env(&[
                ("LLM_LOG_JOURNAL_MAX_BYTES", "4000000"),
                ("LLM_LOG_BODY_TIMEOUT_SECS", "5"),
            ]),
        )
        .expect("settings");
        let journal = s.logger.journal.expect("journal");
        assert_eq!(journal.max_bytes, 4_000_000);
        assert_eq!(journal.dir, std::path::PathBuf::from(DEFAULT_JOURNAL_DIR));
        assert_eq!(s.body_timeout, Duration::from_secs(5));
        for (k, v) in [
            ("LLM_LOG_JOURNAL_MAX_BYTES", "4MB"),
            ("LLM_LOG_BODY_TIMEOUT_SECS", "0"),
            ("LLM_LOG_BODY_TIMEOUT_SECS", "soon"),
        ] {
            let e = Settings::load_from(&Flags::default(), env(&[(k, v)])).expect_err(v);
            assert_eq!(e.setting, k);
        }
    }

    #[test]
    fn a_non_loopback_address_needs_a_token() {
        for flags in [
            Flags {
                listen: Some("0.0.0.0:4319".into()),
                config: None,
            },
            Flags::default(),
        ] {
            let e = Settings::load_from(&flags, env(&[("LLM_LOG_LISTEN", "[::]:4319")]))
                .expect_err("no token");
            assert!(e.to_string().contains("not a loopback address"), "{e}");
            assert!(!e.to_string().contains('\n'));
        }
        let s = Settings::load_from(
            &Flags::default(),
            env(&[
                ("LLM_LOG_LISTEN", "0.0.0.0:4319"),
                ("LLM_LOG_INGEST_TOKEN", "s3cret-token"),
            ]),
        )
        .expect("token set");
        let token = s.token.expect("token");
        assert!(token.matches(b"s3cret-token"));
        assert!(!token.matches(b"s3cret-toke"));
        assert!(!token.matches(b""));
        assert!(!format!("{token:?} {s:?}", s = s.logger).contains("s3cret"));
        let e = Settings::load_from(
            &Flags {
                listen: Some("localhost:80".into()),
                config: None,
            },
            env(&[]),
        )
        .expect_err("not an address");
        assert_eq!(e.setting, "--listen");
    }

    #[test]
    fn environment_wins_over_the_file_and_flags_over_both() {
        let file = temp_file(
            "over.toml",
            "LLM_LOG_LISTEN = \"127.0.0.1:5000\"\nAZURE_STORAGE_FILE_SYSTEM = \"from-file\"\n\
             LLM_LOG_PREFIX = \"file-prefix\"\nLLM_LOG_BATCH_MAX_AGE_MS = 250\nLLM_LOG_GZIP = true\n\
             LLM_LOG_MAX_BODY_BYTES = 1000\nLLM_LOG_BODY_TIMEOUT_SECS = 7\n",
        );
        let flags = Flags {
            listen: None,
            config: Some(file.clone()),
        };
        let s = Settings::load_from(
            &flags,
            env(&[
                ("AZURE_STORAGE_FILE_SYSTEM", "from-env"),
                ("LLM_LOG_PREFIX", "  "), // empty counts as unset
            ]),
        )
        .expect("settings");
        assert_eq!(s.listen.to_string(), "127.0.0.1:5000");
        assert_eq!(s.logger.filesystem, "from-env");
        assert_eq!(s.logger.prefix, "file-prefix");
        assert_eq!(s.logger.max_batch_age, Duration::from_millis(250));
        assert_eq!(s.logger.format, llm_log_callback::Format::NdjsonGzip);
        assert_eq!(s.max_body_bytes, 1000);
        assert_eq!(s.body_timeout, Duration::from_secs(7));
        let s = Settings::load_from(
            &Flags {
                listen: Some("127.0.0.1:6000".into()),
                config: Some(file.clone()),
            },
            env(&[("LLM_LOG_LISTEN", "127.0.0.1:7000")]),
        )
        .expect("settings");
        assert_eq!(s.listen.to_string(), "127.0.0.1:6000");
        let _ = std::fs::remove_file(file);
    }

    #[test]
    fn the_file_refuses_unknown_keys_tokens_and_tables() {
        for (text, says) in [
            (
                "LLM_LOG_BATCH_MAX_AGE = 5",
                "unknown key `LLM_LOG_BATCH_MAX_AGE`",
            ),
            ("LLM_LOG_INGEST_TOKEN = \"x\"", "LLM_LOG_INGEST_TOKEN_FILE"),
            ("[storage]\nx = 1", "unknown key `storage`"),
            (
                "LLM_LOG_PREFIX = [1, 2]",
                "`LLM_LOG_PREFIX` is of type array",
            ),
            ("LLM_LOG_GZIP = ", "at byte"),
        ] {
            let e = parse_file(text).expect_err(text);
            assert!(e.contains(says), "{text}: {e}");
            assert!(!e.contains('\n'), "{e}");
        }
        let e = Settings::load_from(
            &Flags {
                listen: None,
                config: Some("/nonexistent/shipper.toml".into()),
            },
            env(&[]),
        )
        .expect_err("missing file");
        assert!(e.setting.contains("/nonexistent/shipper.toml"), "{e}");
    }

    #[test]
    fn the_token_comes_from_one_place() {
        let file = temp_file("token", "file-token-value\n");
        let path = file.to_string_lossy().to_string();
        let s = Settings::load_from(
            &Flags::default(),
            env(&[("LLM_LOG_INGEST_TOKEN_FILE", &path)]),
        )
        .expect("token file");
        assert!(s.token.expect("token").matches(b"file-token-value"));
        let e = Settings::load_from(
            &Flags::default(),
            env(&[
                ("LLM_LOG_INGEST_TOKEN_FILE", &path),
                ("LLM_LOG_INGEST_TOKEN", "file-token-value"),
            ]),
        )
        .expect_err("both");
        assert!(!format!("{e} {e:?}").contains("file-token-value"));
        let empty = temp_file("empty-token", "\n");
        let e = Settings::load_from(
            &Flags::default(),
            env(&[("LLM_LOG_INGEST_TOKEN_FILE", &empty.to_string_lossy())]),
        )
        .expect_err("empty");
        assert!(e.to_string().contains("is empty"), "{e}");
        let _ = std::fs::remove_file(file);
        let _ = std::fs::remove_file(empty);
    }

    #[test]
    fn no_secret_is_shown() {
        let key = "c2VjcmV0LWFjY291bnQta2V5LXZhbHVl";
        let s = Settings::load_from(
            &Flags::default(),
            env(&[
                (
                    "AZURE_STORAGE_CONNECTION_STRING",
                    &format!(
                        "AccountName=acct;AccountKey={key};BlobEndpoint=http://127.0.0.1:9/acct"
                    ),
                ),
                ("LLM_LOG_INGEST_TOKEN", "token-value-123"),
            ]),
        )
        .expect("settings");
        let client = s.client().expect("client");
        let shown = format!("{s:?} {client:?}");
        assert!(
            !shown.contains(key) && !shown.contains("token-value-123"),
            "{shown}"
        );
    }

    #[test]
    fn invalid_values_name_their_variable() {
        for (k, v) in [
            ("LLM_LOG_MAX_BODY_BYTES", "0"),
            ("LLM_LOG_MAX_BODY_BYTES", "lots"),
            ("LLM_LOG_SHUTDOWN_SECS", "-1"),
            ("LLM_LOG_FORMAT_LOGS", "xml"),
            ("LLM_LOG_LAYOUT", "sideways"),
        ] {
            let e = Settings::load_from(&Flags::default(), env(&[(k, v)])).expect_err(k);
            assert_eq!(e.setting, k, "{e}");
        }
    }

    #[test]
    fn the_known_variables_are_the_ones_the_library_reads() {
        let sources = [
            include_str!("../../llm-log-callback/src/config.rs"),
            include_str!("../../llm-log-callback/src/destination.rs"),
        ];
        for src in sources {
            for part in src.split("get(\"").skip(1) {
                let name: String = part
                    .chars()
                    .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
                    .collect();
                if name.starts_with("LLM_LOG_") || name.starts_with("AZURE_") {
                    assert!(
                        LIBRARY_VARIABLES.contains(&name.as_str()),
                        "llm-log-callback reads {name}: add it to LIBRARY_VARIABLES"
                    );
                }
            }
        }
    }
}
