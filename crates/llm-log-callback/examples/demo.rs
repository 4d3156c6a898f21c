//! `demo`: a simulated LLM gateway logging realistic records at a few
//! thousand per second for about 10 s, with a live progress line, then a
//! clean shutdown, a summary and the first files written.
//!
//! `cargo xtask demo` starts Azurite and runs this against it; it also runs
//! against any account: `AZURE_STORAGE_CONNECTION_STRING=... cargo run
//! --release -p llm-log-callback --example demo` (flags: `--rate N`,
//! `--seconds N`).

use std::io::Write as _;

use std::time::{Duration, Instant};

use llm_log_callback::{client_from_env, Config, Logger};
use serde_json::json;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut rate = 3_000u64;
    let mut seconds = 10u64;
    let args: Vec<String> = std::env::args().skip(1).collect();
    for pair in args.chunks(2) {
        match (pair[0].as_str(), pair.get(1).map(|v| v.parse::<u64>())) {
            ("--rate", Some(Ok(v))) => rate = v,
            ("--seconds", Some(Ok(v))) => seconds = v,
            _ => return Err(format!("usage: demo [--rate N] [--seconds N] (got {pair:?})").into()),
        }
    }
    let client = client_from_env()?;
    let filesystem = format!("demo-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let config = Config {
        filesystem: filesystem.clone(),
        prefix: "gateway".into(),
        instance: "demo-gw-1".into(),
        max_batch_age: Duration::from_secs(2),
        ..Config::from_env()?
    };
    println!(
        "demo: {rate} records/s for {seconds} s into {} / filesystem `{filesystem}` ({:?} dialect)",
        client.account().endpoint(client.dialect()),
        client.dialect()
    );
    let logger = Logger::start(client.clone(), config).await?;

    // four producer threads, as a gateway's workers; each measures its log() calls
    let producers = 4u64;
    let per_producer = rate * seconds / producers;
    let started = Instant::now();
    let mut handles = Vec::new();
    for p in 0..producers {
        let logger = logger.clone();
        handles.push(std::thread::spawn(move || {
            let mut latencies = Vec::with_capacity(per_producer as usize);
            let interval = Duration::from_secs_f64(producers as f64 / rate as f64);
            let t0 = Instant::now();
            for i in 0..per_producer {
                let due = t0 + interval.mul_f64(i as f64);
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
                let record = serde_json::from_value(gateway_record(p, i)).expect("record");
                let t = Instant::now();
                let _ = logger.log(record);
                latencies.push(t.elapsed());
            }
            latencies
        }));
    }
    let progress = {
        let logger = logger.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(500)).await;
                let m = logger.metrics();
                print!(
                    "\r  {:>5.1} s  accepted {:>7}  written {:>7}  files {:>4}  queued {:>6}  requests {:>5}  ",
                    started.elapsed().as_secs_f64(),
                    m.accepted,
                    m.written,
                    m.files,
                    m.queue_records,
                    m.requests
                );
                let _ = std::io::stdout().flush();
            }
        })
    };
    let mut latencies = Vec::new();
    for h in handles {
        latencies.extend(h.join().map_err(|_| "producer thread panicked")?);
    }
    let produced_for = started.elapsed();
    let report = logger.shutdown(Duration::from_secs(60)).await;
    progress.abort();
    let total = started.elapsed();
    latencies.sort();
    let pct = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
    let m = &report.metrics;
    println!();
    println!(
        "summary: {} records accepted in {:.1} s ({:.0} records/s), {} written, {} spilled, {} dropped; {} files, {} HTTP requests ({:.4} per record), {} connections opened; log() latency p50 {:?} p99 {:?} p99.9 {:?}; shutdown took {} ms; complete: {}",
        m.accepted,
        produced_for.as_secs_f64(),
        m.accepted as f64 / produced_for.as_secs_f64(),
        m.written,
        m.spilled,
        m.dropped.total(),
        m.files,
        m.requests,
        m.requests as f64 / m.written.max(1) as f64,
        m.connections_opened,
        pct(0.50),
        pct(0.99),
        pct(0.999),
        report.elapsed_ms,
        report.complete
    );
    let _ = total;
    let fs = client.filesystem(&filesystem)?;
    let mut files = fs
        .list_all(adls_rest::ListOptions {
            recursive: true,
            ..Default::default()
        })
        .await?;
    files.retain(|f| !f.is_directory);
    files.sort_by(|a, b| a.name.cmp(&b.name));
    println!("first files written ({} in all):", files.len());
    for f in files.iter().take(5) {
        println!("  {:>9} bytes  {}", f.content_length, f.name);
    }
    if let Some(f) = files.first() {
        let body = fs.file(&f.name)?.read().await?;
        let first = body.split(|b| *b == b'\n').next().unwrap_or_default();
        let text = String::from_utf8_lossy(first);
        let shown: String = text.chars().take(300).collect();
        println!("first record of {}:\n  {shown}…", f.name);
    }
    if !report.complete || m.written != m.accepted {
        return Err("not every accepted record was written".into());
    }
    Ok(())
}

/// A record shaped like LiteLLM's `StandardLoggingPayload`.
fn gateway_record(producer: u64, i: u64) -> serde_json::Value {
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
