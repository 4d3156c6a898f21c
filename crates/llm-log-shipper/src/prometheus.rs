//! `/metrics` in the Prometheus text exposition format (version 0.0.4),
//! written by hand from the logger's ledger and the server's counters: a pure
//! function, so its output is tested without a server.

use std::fmt::Write as _;

use llm_log_callback::Metrics;

use crate::server::{ServerSnapshot, ACK_BUCKETS};

/// The exposition text.
pub fn render(m: &Metrics, s: &ServerSnapshot, ready: Option<bool>) -> String {
    let mut out = String::with_capacity(4096);
    let mut one = |name: &str, kind: &str, help: &str, value: f64| {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
        );
    };
    let c = |v: u64| v as f64;
    one(
        "llm_log_records_accepted_total",
        "counter",
        "Records accepted into the ledger.",
        c(m.accepted),
    );
    one(
        "llm_log_records_rejected_total",
        "counter",
        "Records refused (invalid, too large, after shutdown); not in the ledger.",
        c(m.rejected),
    );
    one(
        "llm_log_records_written_total",
        "counter",
        "Accepted records written to storage and verified.",
        c(m.written),
    );
    one(
        "llm_log_written_bytes_total",
        "counter",
        "Uncompressed bytes of written records.",
        c(m.written_bytes),
    );
    one(
        "llm_log_records_spilled_total",
        "counter",
        "Accepted records written to the spill directory.",
        c(m.spilled),
    );
    one(
        "llm_log_records_replayed_total",
        "counter",
        "Records uploaded from spill files.",
        c(m.replayed),
    );
    one(
        "llm_log_records_dead_lettered_total",
        "counter",
        "Accepted records storage refused for good, kept in dead-letter/.",
        c(m.dead_lettered),
    );
    one(
        "llm_log_records_replay_dead_lettered_total",
        "counter",
        "Spilled records storage refused for good on replay.",
        c(m.replay_dead_lettered),
    );
    one(
        "llm_log_records_unknown_total",
        "counter",
        "Accepted records whose write was abandoned mid-commit without a spill directory.",
        c(m.unknown),
    );
    one(
        "llm_log_duplicates_skipped_total",
        "counter",
        "Records skipped because their id was taken within the deduplication window.",
        c(m.duplicates),
    );
    one(
        "llm_log_quarantined_files_total",
        "counter",
        "Corrupt spill files moved to quarantine/.",
        c(m.quarantined_files),
    );
    one(
        "llm_log_files_total",
        "counter",
        "Files completed in storage.",
        c(m.files),
    );
    one(
        "llm_log_batch_retries_total",
        "counter",
        "Whole-batch retries after the client's own retries gave up.",
        c(m.batch_retries),
    );
    one(
        "llm_log_storage_requests_total",
        "counter",
        "HTTP requests sent to storage (every attempt).",
        c(m.requests),
    );
    one(
        "llm_log_storage_retries_total",
        "counter",
        "HTTP retries by the storage client.",
        c(m.http_retries),
    );
    one(
        "llm_log_storage_connections_opened_total",
        "counter",
        "Connections the storage client opened.",
        c(m.connections_opened),
    );
    one(
        "llm_log_queue_records",
        "gauge",
        "Records waiting in the queue.",
        c(m.queue_records),
    );
    one(
        "llm_log_spill_bytes",
        "gauge",
        "Bytes of spill files waiting for the replay (dead letters included).",
        c(m.spill_bytes),
    );
    one(
        "llm_log_journal_bytes",
        "gauge",
        "Bytes the journal holds (records acknowledged and fsynced, kept for the deduplication window).",
        c(m.journal_bytes),
    );
    one(
        "llm_log_journal_pending_records",
        "gauge",
        "Journaled records no batch has secured yet.",
        c(m.journal_pending),
    );
    one(
        "llm_log_journal_recovered_records_total",
        "counter",
        "Records found in the journal at start and queued again.",
        c(m.journal_recovered),
    );
    one(
        "llm_log_queue_bytes",
        "gauge",
        "Bytes waiting in the queue.",
        c(m.queue_bytes),
    );
    one(
        "llm_log_oldest_queued_seconds",
        "gauge",
        "Age of the oldest queued record (0 when none).",
        m.oldest_queued_ms.unwrap_or(0) as f64 / 1000.0,
    );
    one(
        "llm_log_in_flight_records",
        "gauge",
        "Records cut into batches and not yet settled.",
        c(m.in_flight),
    );
    one(
        "llm_log_shipper_auth_failures_total",
        "counter",
        "POSTs refused for a missing or wrong bearer token.",
        c(s.auth_failures),
    );
    if let Some(r) = ready {
        one(
            "llm_log_shipper_ready",
            "gauge",
            "1 when the latest storage probe succeeded.",
            if r { 1.0 } else { 0.0 },
        );
    }

    let d = &m.dropped;
    out.push_str("# HELP llm_log_records_dropped_total Accepted records dropped, by reason.\n# TYPE llm_log_records_dropped_total counter\n");
    for (reason, n) in [
        ("queue_full", d.queue_full),
        ("upload_failed", d.upload_failed),
        ("spill_failed", d.spill_failed),
        ("shutdown", d.shutdown),
        ("rejected", d.rejected),
        ("too_large", d.too_large),
        ("unserializable", d.unserializable),
    ] {
        let _ = writeln!(
            out,
            "llm_log_records_dropped_total{{reason=\"{reason}\"}} {n}"
        );
    }

    let h = &m.upload_latency_histogram;
    out.push_str("# HELP llm_log_upload_latency_seconds Upload latency per batch, from dispatch to verified.\n# TYPE llm_log_upload_latency_seconds histogram\n");
    for (le, n) in &h.buckets {
        let _ = writeln!(
            out,
            "llm_log_upload_latency_seconds_bucket{{le=\"{le}\"}} {n}"
        );
    }
    let _ = writeln!(
        out,
        "llm_log_upload_latency_seconds_bucket{{le=\"+Inf\"}} {}",
        h.count
    );
    let _ = writeln!(out, "llm_log_upload_latency_seconds_sum {}", h.sum_s);
    let _ = writeln!(out, "llm_log_upload_latency_seconds_count {}", h.count);

    out.push_str("# HELP llm_log_shipper_http_requests_total HTTP requests answered, by route and status.\n# TYPE llm_log_shipper_http_requests_total counter\n");
    for ((route, status), n) in &s.requests {
        let _ = writeln!(
            out,
            "llm_log_shipper_http_requests_total{{route=\"{route}\",status=\"{status}\"}} {n}"
        );
    }
    out.push_str("# HELP llm_log_shipper_bodies_total Well-formed POST bodies, by LiteLLM log_format.\n# TYPE llm_log_shipper_bodies_total counter\n");
    for (format, n) in &s.formats {
        let _ = writeln!(
            out,
            "llm_log_shipper_bodies_total{{format=\"{format}\"}} {n}"
        );
    }

    out.push_str("# HELP llm_log_shipper_ack_seconds Time from a POST's arrival to its 200.\n# TYPE llm_log_shipper_ack_seconds histogram\n");
    let mut cumulative = 0;
    for (i, n) in s.ack_buckets.iter().enumerate() {
        cumulative += n;
        let le = ACK_BUCKETS
            .get(i)
            .map_or_else(|| "+Inf".to_string(), |b| b.to_string());
        let _ = writeln!(
            out,
            "llm_log_shipper_ack_seconds_bucket{{le=\"{le}\"}} {cumulative}"
        );
    }
    let _ = writeln!(out, "llm_log_shipper_ack_seconds_sum {}", s.ack_sum_seconds);
    let _ = writeln!(out, "llm_log_shipper_ack_seconds_count {cumulative}");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_family_is_declared_once_and_every_sample_is_well_formed() {
        let m = Metrics {
            accepted: 10,
            written: 7,
            duplicates: 3,
            queue_records: 2,
            oldest_queued_ms: Some(1500),
            ..Metrics::default()
        };
        let s = ServerSnapshot {
            auth_failures: 4,
            requests: vec![(("ingest", 200), 5), (("ingest", 401), 4)],
            formats: vec![("ndjson", 5)],
            ack_buckets: {
                let mut b = vec![0; ACK_BUCKETS.len() + 1];
                b[0] = 2;
                b[ACK_BUCKETS.len()] = 1;
                b
            },
            ack_sum_seconds: 12.5,
        };
        let text = render(&m, &s, Some(true));
        for line in [
            "llm_log_records_accepted_total 10",
            "llm_log_records_written_total 7",
            "llm_log_duplicates_skipped_total 3",
            "llm_log_queue_records 2",
            "llm_log_oldest_queued_seconds 1.5",
            "llm_log_shipper_auth_failures_total 4",
            "llm_log_records_dropped_total{reason=\"queue_full\"} 0",
            "llm_log_shipper_http_requests_total{route=\"ingest\",status=\"401\"} 4",
            "llm_log_shipper_bodies_total{format=\"ndjson\"} 5",
            "llm_log_upload_latency_seconds_bucket{le=\"+Inf\"} 0",
            "llm_log_upload_latency_seconds_count 0",
            "llm_log_shipper_ack_seconds_bucket{le=\"0.001\"} 2",
            "llm_log_shipper_ack_seconds_bucket{le=\"10\"} 2",
            "llm_log_shipper_ack_seconds_bucket{le=\"+Inf\"} 3",
            "llm_log_shipper_ack_seconds_count 3",
            "llm_log_shipper_ready 1",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing `{line}` in\n{text}"
            );
        }
        let mut families = std::collections::HashSet::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let name = rest.split(' ').next().unwrap_or_default();
                assert!(families.insert(name.to_string()), "{name} declared twice");
                continue;
            }
            if line.starts_with('#') {
                continue;
            }
            // name{labels} value, where the value is a number
            let (series, value) = line.rsplit_once(' ').unwrap_or_default();
            assert!(value.parse::<f64>().is_ok(), "bad value in `{line}`");
            let name = series.split('{').next().unwrap_or_default();
            assert!(
                families.iter().any(|f| name == f
                    || name
                        .strip_prefix(f.as_str())
                        .is_some_and(|s| { ["_bucket", "_sum", "_count"].contains(&s) })),
                "`{line}` has no TYPE line before it"
            );
            assert!(
                name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
                "{name}"
            );
        }
    }
}
