//! Shared helpers of the bench binaries: the development account, CPU time
//! and RSS of a process, percentiles, the realistic gateway record, and the
//! one-line JSON results the runner reads from each child process.

use std::time::Duration;

use serde_json::{json, Value};

/// Azurite's well-known development account (also used against the sink).
pub const ACCOUNT: &str = "devstoreaccount1";
/// Azurite's well-known development account key (public, documented by Microsoft).
pub const ACCOUNT_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// A connection string for a path-style Blob endpoint such as
/// `http://127.0.0.1:PORT/devstoreaccount1`.
pub fn connection_string(blob_endpoint: &str) -> String {
    format!(
        "DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};BlobEndpoint={blob_endpoint}"
    )
}

/// User and system CPU time this process has used so far (`getrusage`).
pub fn cpu_time() -> Duration {
    // SAFETY: `getrusage` only writes into the zeroed struct we pass it.
    let usage = unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut u);
        u
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// `VmRSS` of process `pid` in KiB, from `/proc/<pid>/status`.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The `q` quantile (0..=1) of sorted values (nearest rank).
pub fn quantile<T: Copy>(sorted: &[T], q: f64) -> Option<T> {
    if sorted.is_empty() {
        return None;
    }
    let i = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1;
    Some(sorted[i])
}

/// The median of `values` (mean of the middle two for an even count).
pub fn median(values: &[f64]) -> Option<f64> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    Some(if !n.is_multiple_of(2) {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

/// A record shaped like LiteLLM's `StandardLoggingPayload`, the same shape as
/// `gateway_record` in `crates/llm-log-callback/examples/demo.rs` (about
/// 1.3 KB as NDJSON).
pub fn gateway_record(producer: u64, i: u64) -> Value {
    let models = [
        ("gpt-4o-mini", "openai"),
        ("claude-3-5-sonnet", "anthropic"),
        ("my-deployment", "azure"),
    ];
    let (model, provider) = models[(i % 3) as usize];
    let start = 1_764_000_000.0 + i as f64 * 0.001;
    let failed = i % 50 == 7;
    json!({
        "id": format!("chatcmpl-{producer}-{i:08}"),
        "trace_id": uuid::Uuid::new_v4().to_string(),
        "call_type": "acompletion",
        "status": if failed { "failure" } else { "success" },
        "model": model,
        "model_group": model,
        "custom_llm_provider": provider,
        "api_base": "",
        "prompt_tokens": 200 + i % 800,
        "completion_tokens": if failed { 0 } else { 40 + i % 300 },
        "total_tokens": 240 + i % 800 + i % 300,
        "response_cost": 0.0000021 * (i % 97) as f64,
        "startTime": start,
        "endTime": start + 0.8,
        "completionStartTime": start + 0.3,
        "response_time": 0.8,
        "cache_hit": i.is_multiple_of(11),
        "end_user": format!("user-{}", i % 200),
        "request_tags": ["prod", format!("team-{}", i % 5)],
        "metadata": {"user_api_key_team_id": format!("team-{}", i % 5), "user_api_key_alias": "gateway", "requester_ip_address": null},
        "messages": [
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": format!("Summarize ticket #{i} in two sentences.")}
        ],
        "response": if failed { json!({}) } else { json!({"choices": [{"index": 0, "message": {"role": "assistant", "content": "The customer reports a billing error. Support refunded the duplicate charge."}}]}) },
        "error_str": if failed { json!("litellm.RateLimitError: rate limited") } else { json!(null) },
        "model_parameters": {"temperature": 0.2, "max_tokens": 256},
        "hidden_params": {"api_base": "https://api.example.com/v1"},
    })
}

/// Prints the one line a child process reports to the runner: `RESULT {json}`.
pub fn report(value: &Value) {
    println!("RESULT {value}");
}

/// Parses `--name value` pairs (and bare `--flag`s, as `"true"`).
pub fn parse_args(args: impl Iterator<Item = String>) -> std::collections::HashMap<String, String> {
    let mut out = std::collections::HashMap::new();
    let args: Vec<String> = args.collect();
    let mut i = 0;
    while i < args.len() {
        if let Some(name) = args[i].strip_prefix("--") {
            match args.get(i + 1) {
                Some(v) if !v.starts_with("--") => {
                    out.insert(name.to_string(), v.clone());
                    i += 2;
                }
                _ => {
                    out.insert(name.to_string(), "true".to_string());
                    i += 1;
                }
            }
        } else {
            out.insert(args[i].clone(), "true".to_string());
            i += 1;
        }
    }
    out
}

/// Reads `--name` from parsed arguments, or `default`.
pub fn arg<T: std::str::FromStr>(
    args: &std::collections::HashMap<String, String>,
    name: &str,
    default: T,
) -> T {
    args.get(name)
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_and_medians() {
        let v: Vec<u32> = (1..=1000).collect();
        assert_eq!(quantile(&v, 0.5), Some(500));
        assert_eq!(quantile(&v, 0.99), Some(990));
        assert_eq!(quantile(&v, 0.999), Some(999));
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
    }
}
