//! `formats`: what each output format costs and gives, for one day of
//! gateway records (N records spread over 24 hourly partitions).
//!
//! - `formats log --endpoint URL --format F [--records N]`: the records
//!   (built before the clock starts) through the logger in format `F` into a
//!   fresh container of the endpoint (the bench's sink: the server's cost
//!   stays out); the logger process's CPU per record, from the first `log`
//!   to the end of `flush`.
//! - `formats files --dir D [--records N]`: the same records cut as the
//!   logger cuts them (per hour, batches of 10 000) and encoded with
//!   `Format::encode` into a local hive tree per format,
//!   `D/<format>/year=/month=/day=/hour=/<n>.<ext>`, for the query timing
//!   (`py/formats_query.py`); reports the bytes stored per record.
//!
//! Each prints one `RESULT {json}` line.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use adls_bench::{arg, cpu_time, gateway_record, parse_args, report};
use llm_log_callback::{Config, Format, LogRecord, Logger};
use serde_json::{json, Value};

/// Midnight UTC of the day the records fall on (2025-11-24).
const DAY_START: f64 = 1_763_942_400.0;
const BATCH: usize = 10_000;

fn main() {
    let mut argv = std::env::args().skip(1);
    let cmd = argv.next().unwrap_or_default();
    let args = parse_args(argv);
    let result = match cmd.as_str() {
        "log" => tokio::runtime::Runtime::new()
            .map_err(|e| e.to_string())
            .and_then(|rt| rt.block_on(log(&args))),
        "files" => files(&args),
        other => Err(format!("unknown scenario `{other}`: log or files")),
    };
    match result {
        Ok(v) => report(&v),
        Err(e) => {
            eprintln!("formats {cmd}: {e}");
            std::process::exit(1);
        }
    }
}

fn format_arg(args: &std::collections::HashMap<String, String>) -> Result<Format, String> {
    args.get("format")
        .ok_or("--format is required")?
        .parse()
        .map_err(|e: llm_log_callback::format::UnknownFormat| e.to_string())
}

/// `n` gateway records, their requests spread evenly over one day.
fn day_of_records(n: u64) -> Vec<Value> {
    (0..n)
        .map(|i| {
            let mut r = gateway_record(0, i);
            let start = DAY_START + (i as f64) * 86_400.0 / n as f64;
            r["startTime"] = json!(start);
            r["completionStartTime"] = json!(start + 0.3);
            r["endTime"] = json!(start + 0.8);
            r
        })
        .collect()
}

async fn log(args: &std::collections::HashMap<String, String>) -> Result<Value, String> {
    let format = format_arg(args)?;
    let n: u64 = arg(args, "records", 100_000);
    let endpoint = args.get("endpoint").ok_or("--endpoint is required")?;
    let client =
        adls_rest::Client::from_connection_string(&adls_bench::connection_string(endpoint))
            .and_then(|b| b.build())
            .map_err(|e| e.to_string())?;
    let container = format!("fmt-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let records: Vec<LogRecord> = day_of_records(n)
        .into_iter()
        .map(|v| serde_json::from_value(v).map_err(|e| e.to_string()))
        .collect::<Result<_, _>>()?;
    let logger = Logger::start(
        client.clone(),
        Config {
            filesystem: container.clone(),
            instance: "bench-gw".into(),
            prefix: "gateway".into(),
            format,
            ..Config::default()
        },
    )
    .await
    .map_err(|e| e.to_string())?;
    let cpu0 = cpu_time();
    let t0 = Instant::now();
    for r in records {
        logger.log_async(r).await.map_err(|e| e.to_string())?;
    }
    let m = logger.flush().await.metrics;
    let elapsed = t0.elapsed();
    let cpu = cpu_time() - cpu0;
    if m.written != n {
        return Err(format!(
            "flush returned with {} of {n} written: {m:?}",
            m.written
        ));
    }
    let _ = logger.shutdown(Duration::from_millis(500)).await;
    if let Ok(fs) = client.filesystem(&container) {
        let _ = fs.delete().await;
    }
    Ok(json!({
        "scenario": "log",
        "format": format.to_string(),
        "records": n,
        "elapsed_s": elapsed.as_secs_f64(),
        "cpu_s": cpu.as_secs_f64(),
        "cpu_us_per_record": cpu.as_secs_f64() * 1e6 / n as f64,
        "files": m.files,
        "requests": m.requests,
    }))
}

fn files(args: &std::collections::HashMap<String, String>) -> Result<Value, String> {
    let n: u64 = arg(args, "records", 100_000);
    let dir = std::path::PathBuf::from(args.get("dir").ok_or("--dir is required")?);
    // the NDJSON lines per hour, as the logger would cut them
    let mut hours: BTreeMap<i64, Vec<Vec<u8>>> = BTreeMap::new();
    for r in day_of_records(n) {
        let hour = (r["startTime"].as_f64().unwrap_or(DAY_START) / 3600.0).floor() as i64;
        let line = serde_json::to_vec(
            &LogRecord::from_value(r)
                .map_err(|e| e.to_string())?
                .to_value(),
        )
        .map_err(|e| e.to_string())?;
        hours.entry(hour).or_default().push(line);
    }
    let mut out = serde_json::Map::new();
    for format in [
        Format::Ndjson,
        Format::NdjsonGzip,
        Format::NdjsonZstd,
        Format::Parquet,
    ] {
        let root = dir.join(format.extension());
        let _ = std::fs::remove_dir_all(&root);
        let (mut bytes, mut files, mut cpu) = (0u64, 0u64, Duration::ZERO);
        for (hour, lines) in &hours {
            let at = time::OffsetDateTime::from_unix_timestamp(hour * 3600)
                .map_err(|e| e.to_string())?;
            let part = root.join(format!(
                "year={:04}/month={:02}/day={:02}/hour={:02}",
                at.year(),
                at.month() as u8,
                at.day(),
                at.hour()
            ));
            std::fs::create_dir_all(&part).map_err(|e| e.to_string())?;
            for (k, chunk) in lines.chunks(BATCH).enumerate() {
                let mut batch = Vec::with_capacity(chunk.iter().map(|l| l.len() + 1).sum());
                for l in chunk {
                    batch.extend_from_slice(l);
                    batch.push(b'\n');
                }
                let c0 = cpu_time();
                let encoded = format.encode(&batch).map_err(|e| e.to_string())?;
                cpu += cpu_time() - c0;
                bytes += encoded.len() as u64;
                files += 1;
                std::fs::write(
                    part.join(format!("{k:05}.{}", format.extension())),
                    &encoded,
                )
                .map_err(|e| e.to_string())?;
            }
        }
        out.insert(
            format.to_string(),
            json!({
                "bytes": bytes,
                "files": files,
                "bytes_per_record": bytes as f64 / n as f64,
                "encode_cpu_us_per_record": cpu.as_secs_f64() * 1e6 / n as f64,
                "dir": root.display().to_string(),
            }),
        );
    }
    Ok(json!({"scenario": "files", "records": n, "hours": hours.len(), "formats": out}))
}
