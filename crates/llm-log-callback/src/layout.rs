//! Where records land: path templates with UTC time parts and hive-style
//! partitions. Pure functions of the configuration, the time and a sequence
//! number; nothing here reads the clock.
//!
//! Placeholders: `{prefix}`, `{YYYY}`, `{MM}`, `{DD}`, `{HH}`, `{mm}` (minute),
//! `{instance}`, `{timestamp}` (`20240131T235959Z`), `{seq}` (8 digits),
//! `{ext}` (the format's extension: `ndjson`, `ndjson.gz`, `ndjson.zst`,
//! `parquet`), `{id}` (per-record mode only).

use time::OffsetDateTime;

use crate::format::Format;

/// How records are grouped into files.
///
/// ```
/// use std::time::Duration;
/// use llm_log_callback::{Config, LayoutMode};
///
/// let hourly = Config {
///     layout: LayoutMode::Rolling { window: Duration::from_secs(3600) },
///     ..Config::default()
/// };
/// assert!(hourly.template().contains("year={YYYY}/month={MM}/day={DD}/hour={HH}"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LayoutMode {
    /// One new file per batch (default): create-new, append, flush+close.
    PerBatch,
    /// One file per instance and time window; each batch is appended and
    /// flushed; the file is closed when the window rotates.
    Rolling {
        /// Window length (e.g. one hour); windows are aligned to the epoch.
        window: std::time::Duration,
    },
    /// One file per record at `{prefix}/{YYYY}-{MM}-{DD}/{id}.json`, three
    /// requests each: the original callback's layout. Slow; for compatibility
    /// and as the benchmark's baseline.
    PerRecord,
}

/// Default template of [`LayoutMode::PerBatch`]. The time comes first in
/// the name, so a listing sorts the files of all instances by when their
/// batches were cut (not by when they were committed: a retried or replayed
/// batch lands later under its original name).
pub const BATCH_TEMPLATE: &str =
    "{prefix}/year={YYYY}/month={MM}/day={DD}/hour={HH}/{timestamp}-{instance}-{seq}.{ext}";
/// Default template of [`LayoutMode::Rolling`].
pub const ROLLING_TEMPLATE: &str =
    "{prefix}/year={YYYY}/month={MM}/day={DD}/hour={HH}/{timestamp}-{instance}-{seq}.{ext}";
/// Template of [`LayoutMode::PerRecord`].
pub const RECORD_TEMPLATE: &str = "{prefix}/{YYYY}-{MM}-{DD}/{id}.json";

const PLACEHOLDERS: &[&str] = &[
    "prefix",
    "YYYY",
    "MM",
    "DD",
    "HH",
    "mm",
    "instance",
    "timestamp",
    "seq",
    "ext",
    "id",
];

/// A validated path template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    template: String,
    prefix: String,
    instance: String,
    format: Format,
}

impl Layout {
    /// Checks `template` (known placeholders only; `{instance}` and `{seq}`
    /// for per-batch files, and `{timestamp}` too for rolling files, so two
    /// writers never share a path; `{id}` per record).
    pub fn new(
        template: &str,
        prefix: &str,
        instance: &str,
        format: Format,
        mode: &LayoutMode,
    ) -> Result<Self, String> {
        let mut rest = template;
        let mut seen = Vec::new();
        while let Some(open) = rest.find('{') {
            let close = rest[open..]
                .find('}')
                .ok_or_else(|| format!("path template `{template}` has an unclosed `{{`"))?;
            let name = &rest[open + 1..open + close];
            if !PLACEHOLDERS.contains(&name) {
                return Err(format!(
                    "path template `{template}` has unknown placeholder `{{{name}}}`; known: {}",
                    PLACEHOLDERS.join(", ")
                ));
            }
            seen.push(name);
            rest = &rest[open + close + 1..];
        }
        let needs: &[&str] = match mode {
            LayoutMode::PerBatch => &["instance", "seq"],
            // a new file can start within the second the last one did (after
            // a spill or a conflict): the sequence tells them apart
            LayoutMode::Rolling { .. } => &["instance", "timestamp", "seq"],
            LayoutMode::PerRecord => &["id"],
        };
        for n in needs {
            if !seen.contains(n) {
                return Err(format!(
                    "path template `{template}` lacks `{{{n}}}`, which this layout needs so that files never collide"
                ));
            }
        }
        let clean = |s: &str| sanitize_segment(s);
        Ok(Layout {
            template: template.to_string(),
            prefix: prefix.trim_matches('/').to_string(),
            instance: clean(instance),
            format,
        })
    }

    /// The instance name used in paths.
    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// The path for a batch (or a rolling window starting at `at`).
    pub fn path(&self, at: OffsetDateTime, seq: u64, id: Option<&str>) -> String {
        let at = at.to_offset(time::UtcOffset::UTC);
        let two = |n: u8| format!("{n:02}");
        let ext = self.format.extension();
        let mut out = String::with_capacity(self.template.len() + 64);
        let mut rest = self.template.as_str();
        while let Some(open) = rest.find('{') {
            out.push_str(&rest[..open]);
            let close = open + rest[open..].find('}').unwrap_or(0);
            let value = match &rest[open + 1..close] {
                "prefix" => self.prefix.clone(),
                "YYYY" => format!("{:04}", at.year()),
                "MM" => two(at.month() as u8),
                "DD" => two(at.day()),
                "HH" => two(at.hour()),
                "mm" => two(at.minute()),
                "instance" => self.instance.clone(),
                "timestamp" => format!(
                    "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
                    at.year(),
                    at.month() as u8,
                    at.day(),
                    at.hour(),
                    at.minute(),
                    at.second()
                ),
                "seq" => format!("{seq:08}"),
                "ext" => ext.to_string(),
                "id" => sanitize_segment(id.unwrap_or("no-id")),
                _ => String::new(),
            };
            out.push_str(&value);
            rest = &rest[close + 1..];
        }
        out.push_str(rest);
        // an empty prefix leaves a leading or doubled `/`
        let parts: Vec<&str> = out.split('/').filter(|s| !s.is_empty()).collect();
        parts.join("/")
    }
}

/// Start of the window of length `window` holding `at` (aligned to the epoch).
pub fn window_start(at: OffsetDateTime, window: std::time::Duration) -> OffsetDateTime {
    let secs = window.as_secs().max(1) as i128;
    let t = at.unix_timestamp() as i128;
    let start = t - t.rem_euclid(secs);
    OffsetDateTime::from_unix_timestamp(start as i64).unwrap_or(at)
}

/// A string made safe as one path segment: `/`, control characters and
/// leading dots become `_`.
pub fn sanitize_segment(s: &str) -> String {
    let mut out: String = s
        .chars()
        .map(|c| {
            if c == '/' || c == '\\' || c.is_control() {
                '_'
            } else {
                c
            }
        })
        .collect();
    if out.is_empty() || out.starts_with('.') {
        out.insert(0, '_');
    }
    out
}

/// A default instance name: `$HOSTNAME` (pod name on Kubernetes) and the
/// process id. The logger adds a random part to every instance name, so
/// replicas and restarts never share one.
pub fn default_instance() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "host".into());
    let host: String = host
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .take(40)
        .collect();
    format!("{host}-{}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn default_batch_path_is_hive_partitioned() {
        let l = Layout::new(
            BATCH_TEMPLATE,
            "/llm-logs/",
            "gw-1",
            Format::Ndjson,
            &LayoutMode::PerBatch,
        )
        .expect("layout");
        assert_eq!(
            l.path(datetime!(2024-03-07 09:05:03 UTC), 42, None),
            "llm-logs/year=2024/month=03/day=07/hour=09/20240307T090503Z-gw-1-00000042.ndjson"
        );
        let gz = Layout::new(
            BATCH_TEMPLATE,
            "",
            "gw/1",
            Format::NdjsonGzip,
            &LayoutMode::PerBatch,
        )
        .expect("layout");
        assert_eq!(
            gz.path(datetime!(2024-03-07 09:05:03 +02:00), 1, None),
            "year=2024/month=03/day=07/hour=07/20240307T070503Z-gw_1-00000001.ndjson.gz"
        );
        let pq = Layout::new(
            BATCH_TEMPLATE,
            "p",
            "gw",
            Format::Parquet,
            &LayoutMode::PerBatch,
        )
        .expect("layout");
        assert_eq!(
            pq.path(datetime!(2024-03-07 09:05:03 UTC), 7, None),
            "p/year=2024/month=03/day=07/hour=09/20240307T090503Z-gw-00000007.parquet"
        );
    }

    #[test]
    fn per_record_path_sanitizes_ids() {
        let l = Layout::new(
            RECORD_TEMPLATE,
            "logs",
            "i",
            Format::Ndjson,
            &LayoutMode::PerRecord,
        )
        .expect("layout");
        assert_eq!(
            l.path(datetime!(2024-01-02 00:00:00 UTC), 0, Some("a/../b")),
            "logs/2024-01-02/a_.._b.json"
        );
        assert_eq!(
            l.path(datetime!(2024-01-02 00:00:00 UTC), 0, Some("..")),
            "logs/2024-01-02/_...json"
        );
    }

    #[test]
    fn rolling_files_carry_a_sequence() {
        let l = Layout::new(
            ROLLING_TEMPLATE,
            "p",
            "gw",
            Format::Ndjson,
            &LayoutMode::Rolling {
                window: std::time::Duration::from_secs(3600),
            },
        )
        .expect("layout");
        let at = datetime!(2024-03-07 09:05:03 UTC);
        assert_ne!(l.path(at, 1, None), l.path(at, 2, None));
        let no_seq = "{prefix}/{instance}-{timestamp}.{ext}";
        let rolling = LayoutMode::Rolling {
            window: std::time::Duration::from_secs(60),
        };
        assert!(Layout::new(no_seq, "", "i", Format::Ndjson, &rolling)
            .is_err_and(|e| e.contains("{seq}")));
    }

    #[test]
    fn templates_are_validated() {
        assert!(Layout::new(
            "{prefix}/{nope}",
            "",
            "i",
            Format::Ndjson,
            &LayoutMode::PerBatch
        )
        .is_err());
        assert!(Layout::new(
            "{prefix}/{instance}",
            "",
            "i",
            Format::Ndjson,
            &LayoutMode::PerBatch
        )
        .is_err());
        assert!(Layout::new(
            "{prefix}/{instance-{seq}",
            "",
            "i",
            Format::Ndjson,
            &LayoutMode::PerBatch
        )
        .is_err());
    }

    #[test]
    fn windows_align() {
        let w = window_start(
            datetime!(2024-01-01 10:59:59 UTC),
            std::time::Duration::from_secs(3600),
        );
        assert_eq!(w, datetime!(2024-01-01 10:00:00 UTC));
    }
}
