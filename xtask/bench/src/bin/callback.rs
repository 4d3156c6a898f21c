//! `callback`: llm-log-callback under load, one scenario per process (so CPU
//! and RSS are the logger's own), with a counting global allocator.
//!
//! - `callback e2e --endpoint URL --layout per-record|batch|rolling
//!   [--records N] [--budget-s S] [--verify on|off] [--checksums md5|crc64|none]`:
//!   N realistic records (built before the clock starts) through the logger
//!   into a fresh container. Batch and rolling: time until `flush()` returns
//!   with everything written. Per-record (slow): records written within the
//!   budget. `--verify off` sets `Config::unverified_for_benchmarks` (no
//!   check after the commit); `--checksums` the transactional checksums
//!   (default: the library's, `Content-MD5`).
//! - `callback saturate --endpoint URL [--seconds S]`: 4 producer tasks call
//!   `log_async` as fast as the logger takes records, then `flush()`.
//! - `callback hotpath --endpoint URL [--seconds S] [--rate R]`: 4 producer
//!   threads at R records/s in all; each `log()` call (record built before
//!   timing) is timed and its allocations counted, while uploads run. The
//!   same for `log_json` (the pre-serialized input path), for the references
//!   (a copy of the text, dropped; the copy kept in a queue another thread
//!   empties; the record moved into such a queue), then for the peers
//!   under the same load and the same records: the OpenTelemetry SDK's
//!   `Logger::emit` (the record as a map body, built before timing; the batch
//!   processor; an exporter that discards) and `tracing_appender::non_blocking`
//!   (the record's NDJSON line, formatted before timing, into `io::sink()`).
//! - `callback soak --endpoint URL [--seconds S] [--rate R]`: R records/s
//!   for S seconds (the runner samples this process's RSS).
//!
//! Every scenario prints one `RESULT {json}` line.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use adls_bench::{arg, cpu_time, gateway_record, parse_args, quantile, report};
use llm_log_callback::{Config, LayoutMode, LogRecord, Logger};
use serde_json::{json, Value};

// ---------------------------------------------------------------------------
// Allocation counting, per thread (so uploads on other threads do not count).

struct Counting;

thread_local! {
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
    static ALLOC_BYTES: Cell<u64> = const { Cell::new(0) };
}

fn note(bytes: usize) {
    let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
    let _ = ALLOC_BYTES.try_with(|c| c.set(c.get() + bytes as u64));
}

// SAFETY: defers to `System`; the counters are const-initialized thread
// locals without destructors, so counting never allocates or re-enters.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        System.alloc(layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        System.alloc_zeroed(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocs() -> (u64, u64) {
    (ALLOCS.with(Cell::get), ALLOC_BYTES.with(Cell::get))
}

// ---------------------------------------------------------------------------

type Args = std::collections::HashMap<String, String>;

fn main() {
    let mut argv = std::env::args().skip(1);
    let scenario = argv.next().unwrap_or_default();
    let args = parse_args(argv);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let result = match scenario.as_str() {
        "e2e" => rt.block_on(e2e(&args)),
        "saturate" => rt.block_on(saturate(&args)),
        "hotpath" => hotpath(&rt, &args),
        "soak" => soak(&rt, &args),
        other => Err(format!(
            "unknown scenario `{other}` (e2e, saturate, hotpath, soak)"
        )),
    };
    match result {
        Ok(v) => report(&v),
        Err(e) => {
            eprintln!("callback {scenario}: {e}");
            std::process::exit(1);
        }
    }
}

fn client(args: &Args) -> Result<adls_rest::Client, String> {
    let endpoint: String = arg(args, "endpoint", String::new());
    if endpoint.is_empty() {
        return Err("--endpoint URL (path style, with the account) is required".into());
    }
    adls_rest::Client::from_connection_string(&adls_bench::connection_string(&endpoint))
        .and_then(|b| b.build())
        .map_err(|e| e.to_string())
}

fn fresh_container() -> String {
    format!("bench-{}", &uuid::Uuid::new_v4().simple().to_string()[..12])
}

fn config(filesystem: &str, layout: LayoutMode) -> Config {
    Config {
        filesystem: filesystem.to_string(),
        instance: "bench-gw".into(),
        prefix: "gateway".into(),
        layout,
        ..Config::default()
    }
}

fn records(producer: u64, n: u64) -> Vec<LogRecord> {
    (0..n)
        .map(|i| serde_json::from_value(gateway_record(producer, i)).expect("record"))
        .collect()
}

fn metrics_json(m: &llm_log_callback::Metrics) -> Value {
    serde_json::to_value(m).unwrap_or(Value::Null)
}

/// Records through the logger into a fresh container (Azurite).
async fn e2e(args: &Args) -> Result<Value, String> {
    let layout_name: String = arg(args, "layout", "batch".to_string());
    let layout = match layout_name.as_str() {
        "per-record" => LayoutMode::PerRecord,
        "batch" => LayoutMode::PerBatch,
        "rolling" => LayoutMode::Rolling {
            window: Duration::from_secs(3600),
        },
        other => return Err(format!("unknown --layout `{other}`")),
    };
    let n: u64 = arg(args, "records", 50_000);
    let budget = Duration::from_secs_f64(arg(args, "budget-s", 15.0));
    let mut cfg = config(&fresh_container(), layout.clone());
    match arg(args, "verify", "on".to_string()).as_str() {
        "on" => {}
        "off" => cfg.unverified_for_benchmarks = true,
        other => return Err(format!("--verify `{other}`: expected on or off")),
    }
    if let Some(v) = args.get("checksums") {
        cfg.checksums = match v.as_str() {
            "md5" => adls_rest::Checksums {
                md5: true,
                crc64: false,
            },
            "crc64" => adls_rest::Checksums {
                md5: false,
                crc64: true,
            },
            "none" => adls_rest::Checksums::default(),
            other => {
                return Err(format!(
                    "--checksums `{other}`: expected md5, crc64 or none"
                ))
            }
        };
    }
    let (verified, checksums) = (!cfg.unverified_for_benchmarks, cfg.checksums);
    let client = client(args)?;
    let container = cfg.filesystem.clone();
    let producers = 4u64;
    let batches: Vec<Vec<LogRecord>> = (0..producers).map(|p| records(p, n / producers)).collect();
    let total = n / producers * producers;
    let logger = Logger::start(client.clone(), cfg)
        .await
        .map_err(|e| e.to_string())?;
    let requests0 = client.stats().requests_sent;
    let cpu0 = cpu_time();
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    if layout == LayoutMode::PerRecord {
        // One feeder keeping a few records ahead of the uploads: with the
        // whole backlog queued, shutdown would wait for all of it (the
        // batcher dispatches what it took before it reads the shutdown).
        let logger = logger.clone();
        tasks.push(tokio::spawn(async move {
            for r in batches.into_iter().flatten() {
                loop {
                    let m = logger.metrics();
                    if m.accepted - m.written - m.dropped.total() < 16 {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                let _ = logger.log_async(r).await;
            }
        }));
    } else {
        for batch in batches {
            let logger = logger.clone();
            tasks.push(tokio::spawn(async move {
                for r in batch {
                    let _ = logger.log_async(r).await;
                }
            }));
        }
    }
    let (written, elapsed, requests, m) = if layout == LayoutMode::PerRecord {
        // slow: count what the budget allows
        tokio::time::sleep(budget).await;
        let m = logger.metrics();
        let elapsed = t0.elapsed();
        (m.written, elapsed, m.requests - requests0, m)
    } else {
        for t in tasks.drain(..) {
            let _ = t.await;
        }
        let report = logger.flush().await;
        let elapsed = t0.elapsed();
        let m = report.metrics;
        if m.written != total {
            return Err(format!(
                "flush returned with {} of {total} records written: {:?}",
                m.written, m
            ));
        }
        (m.written, elapsed, m.requests - requests0, m)
    };
    let cpu = cpu_time() - cpu0;
    for t in tasks {
        t.abort();
    }
    let md5_ns_per_byte = md5_ns_per_byte();
    let _ = logger.shutdown(Duration::from_millis(500)).await;
    // keep Azurite's memory flat across runs
    if let Ok(fs) = client.filesystem(&container) {
        let _ = fs.delete().await;
    }
    Ok(json!({
        "scenario": "e2e",
        "layout": layout_name,
        "container": container,
        "records_logged": total,
        "written": written,
        "elapsed_s": elapsed.as_secs_f64(),
        "records_per_s": written as f64 / elapsed.as_secs_f64(),
        "requests": requests,
        "requests_per_record": requests as f64 / written.max(1) as f64,
        "files": m.files,
        "requests_per_file": requests as f64 / m.files.max(1) as f64,
        "verified": verified,
        "written_bytes": m.written_bytes,
        // one MD5 pass over everything written, at the rate measured below
        "md5_pass_cpu_s": m.written_bytes as f64 * md5_ns_per_byte / 1e9,
        "md5_ns_per_byte": md5_ns_per_byte,
        "checksums": format!("{checksums:?}"),
        "cpu_s": cpu.as_secs_f64(),
        "metrics": metrics_json(&m),
    }))
}

/// Nanoseconds per byte of `adls_rest::content_md5` (the MD5 the logger
/// computes for a block's `Content-MD5` and for the commit), timed on 8 MiB
/// of NDJSON-like bytes after the run, best of five.
fn md5_ns_per_byte() -> f64 {
    let line = gateway_record(0, 0).to_string();
    let buf: Vec<u8> = line.bytes().chain([b'\n']).cycle().take(8 << 20).collect();
    (0..5)
        .map(|_| {
            let t = Instant::now();
            std::hint::black_box(adls_rest::content_md5(std::hint::black_box(&buf)));
            t.elapsed().as_nanos() as f64 / buf.len() as f64
        })
        .fold(f64::INFINITY, f64::min)
}

/// A ring of realistic records, cloned per call.
fn ring(producer: u64) -> Arc<Vec<LogRecord>> {
    Arc::new(records(producer, 1024))
}

/// Nanoseconds to clone (and drop) one record of `ring`, on one thread.
fn clone_cost(ring: &[LogRecord]) -> f64 {
    let t = Instant::now();
    let mut keep = 0usize;
    for i in 0..20_000 {
        keep += usize::from(
            std::hint::black_box(ring[i % ring.len()].clone())
                .id
                .is_absent(),
        );
    }
    std::hint::black_box(keep);
    t.elapsed().as_nanos() as f64 / 20_000.0
}

/// Records/s at saturation into the sink: 4 producer tasks on the logger's runtime.
async fn saturate(args: &Args) -> Result<Value, String> {
    let seconds = Duration::from_secs_f64(arg(args, "seconds", 5.0));
    let client = client(args)?;
    let container = fresh_container();
    let logger = Logger::start(client.clone(), config(&container, LayoutMode::PerBatch))
        .await
        .map_err(|e| e.to_string())?;
    let rings: Vec<_> = (0..4).map(ring).collect();
    let clone_ns = clone_cost(&rings[0]);
    let stop = Arc::new(AtomicBool::new(false));
    let requests0 = client.stats().requests_sent;
    let cpu0 = cpu_time();
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for ring in rings {
        let logger = logger.clone();
        let stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            let mut i = 0usize;
            while !stop.load(Ordering::Relaxed) {
                for _ in 0..64 {
                    let r = ring[i % ring.len()].clone();
                    i += 1;
                    if logger.log_async(r).await.is_err() {
                        return i;
                    }
                }
            }
            i
        }));
    }
    tokio::time::sleep(seconds).await;
    stop.store(true, Ordering::Relaxed);
    let mut logged = 0;
    for t in tasks {
        logged += t.await.unwrap_or(0);
    }
    let produced_for = t0.elapsed();
    let report = logger.flush().await;
    let elapsed = t0.elapsed();
    let cpu = cpu_time() - cpu0;
    let m = report.metrics;
    let _ = logger.shutdown(Duration::from_secs(5)).await;
    Ok(json!({
        "scenario": "saturate",
        "logged": logged,
        "written": m.written,
        "written_bytes": m.written_bytes,
        "produced_for_s": produced_for.as_secs_f64(),
        "elapsed_s": elapsed.as_secs_f64(),
        "records_per_s": m.written as f64 / elapsed.as_secs_f64(),
        "bytes_per_s": m.written_bytes as f64 / elapsed.as_secs_f64(),
        "cpu_s": cpu.as_secs_f64(),
        "cpu_us_per_record": cpu.as_secs_f64() * 1e6 / m.written.max(1) as f64,
        "record_clone_ns": clone_ns,
        "cpu_us_per_record_without_clone": cpu.as_secs_f64() * 1e6 / m.written.max(1) as f64 - clone_ns / 1e3,
        "requests": m.requests - requests0,
        "metrics": metrics_json(&m),
    }))
}

/// Per-call latency (ns) and allocations of one producer thread.
#[derive(Default)]
struct Samples {
    /// Latencies of the last calls (all of them unless `paced` was told otherwise).
    ns: Vec<u32>,
    calls: u64,
    allocs: u64,
    alloc_bytes: u64,
    errors: u64,
}

fn summarize(mut s: Samples) -> Value {
    s.ns.sort_unstable();
    let mean = s.ns.iter().map(|&x| x as f64).sum::<f64>() / s.ns.len().max(1) as f64;
    let n = s.calls.max(1) as f64;
    json!({
        "calls": s.calls,
        "latency_samples": s.ns.len(),
        "p50_ns": quantile(&s.ns, 0.50),
        "p90_ns": quantile(&s.ns, 0.90),
        "p99_ns": quantile(&s.ns, 0.99),
        "p999_ns": quantile(&s.ns, 0.999),
        "max_ns": s.ns.last(),
        "mean_ns": mean,
        "allocs_per_call": s.allocs as f64 / n,
        "alloc_bytes_per_call": s.alloc_bytes as f64 / n,
        "errors": s.errors,
    })
}

/// Runs 4 paced producer threads for `seconds`; `call(producer, i)` is what
/// each iteration does, returning its measured (ns, allocs, bytes, ok).
/// Each thread keeps the latencies of its last `keep` calls, in memory
/// touched before the first call (so a soak's RSS is not our own samples).
fn paced<F>(seconds: f64, rate: f64, keep: usize, call: F) -> Samples
where
    F: Fn(u64, u64) -> (u32, u64, u64, bool) + Send + Sync + 'static,
{
    let call = Arc::new(call);
    let producers = 4u64;
    let per = (rate * seconds / producers as f64) as u64;
    let interval = Duration::from_secs_f64(producers as f64 / rate);
    let mut handles = Vec::new();
    for p in 0..producers {
        let call = call.clone();
        handles.push(std::thread::spawn(move || {
            let keep = keep.min(per as usize).max(1);
            let mut s = Samples {
                ns: vec![u32::MAX; keep],
                ..Default::default()
            };
            let t0 = Instant::now();
            for i in 0..per {
                let due = t0 + interval.mul_f64(i as f64);
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
                let (ns, a, b, ok) = call(p, i);
                s.ns[i as usize % keep] = ns;
                s.allocs += a;
                s.alloc_bytes += b;
                s.errors += u64::from(!ok);
            }
            s.ns.retain(|&ns| ns != u32::MAX);
            s.calls = per;
            s
        }));
    }
    let mut all = Samples::default();
    for h in handles {
        let s = h.join().expect("producer");
        all.ns.extend(s.ns);
        all.allocs += s.allocs;
        all.alloc_bytes += s.alloc_bytes;
        all.errors += s.errors;
        all.calls += s.calls;
    }
    all
}

/// One timed call: its ns, the allocations and bytes it made on this
/// thread, and whether it succeeded.
#[inline(always)]
fn timed(call: impl FnOnce() -> bool) -> (u32, u64, u64, bool) {
    let (a0, b0) = allocs();
    let t = Instant::now();
    let ok = call();
    let ns = t.elapsed().as_nanos() as u32;
    let (a1, b1) = allocs();
    (ns, a1 - a0, b1 - b0, ok)
}

/// `log()` latency and allocations with 4 producers while uploads run.
fn hotpath(rt: &tokio::runtime::Runtime, args: &Args) -> Result<Value, String> {
    let seconds: f64 = arg(args, "seconds", 5.0);
    let rate: f64 = arg(args, "rate", 20_000.0);
    let client = client(args)?;
    let container = fresh_container();
    let logger = rt
        .block_on(Logger::start(
            client.clone(),
            config(&container, LayoutMode::PerBatch),
        ))
        .map_err(|e| e.to_string())?;
    let rings: Arc<Vec<Arc<Vec<LogRecord>>>> = Arc::new((0..4).map(ring).collect());
    let texts: Arc<Vec<Vec<String>>> = Arc::new(
        (0..4)
            .map(|p| {
                (0..1024)
                    .map(|i| gateway_record(p, i).to_string())
                    .collect()
            })
            .collect(),
    );

    // the cost of the clone the saturation producers pay per record (not timed below)
    let clone_ns = clone_cost(&rings[0]);

    let cpu0 = cpu_time();
    let log = {
        let logger = logger.clone();
        let rings = rings.clone();
        paced(seconds, rate, usize::MAX, move |p, i| {
            let ring = &rings[p as usize];
            let record = ring[i as usize % ring.len()].clone();
            timed(|| logger.log(record).is_ok())
        })
    };
    let cpu_log = cpu_time() - cpu0;
    let json_path = {
        let logger = logger.clone();
        let texts = texts.clone();
        paced(seconds, rate, usize::MAX, move |p, i| {
            let ring = &texts[p as usize];
            let text = &ring[i as usize % ring.len()];
            timed(|| logger.log_json(text).is_ok())
        })
    };
    // the reference for `log_json`: copying the same text, same load
    let copy = {
        let texts = texts.clone();
        paced(seconds, rate, usize::MAX, move |p, i| {
            let ring = &texts[p as usize];
            let text = &ring[i as usize % ring.len()];
            timed(|| {
                drop(std::hint::black_box(text.as_bytes().to_vec()));
                true
            })
        })
    };
    let kept = copy_kept(seconds, rate, &texts);
    let floor = handoff_floor(seconds, rate, &rings);
    let report = rt.block_on(logger.shutdown(Duration::from_secs(30)));
    let m = report.metrics;
    let otel = otel_emit(seconds, rate);
    let appender = non_blocking_write(seconds, rate, &texts);
    Ok(json!({
        "scenario": "hotpath",
        "rate": rate,
        "seconds": seconds,
        "log": summarize(log),
        "log_json": summarize(json_path),
        "copy": summarize(copy),
        "copy_kept": summarize(kept),
        "floor": summarize(floor),
        "otel": otel?,
        "tracing_appender": appender?,
        "record_clone_ns": clone_ns,
        "cpu_s_log_phase": cpu_log.as_secs_f64(),
        "written": m.written,
        "dropped": m.dropped.total(),
        "complete": report.complete,
        "metrics": metrics_json(&m),
    }))
}

/// The least a hand-off of a `LogRecord` can do, under the same load and
/// pacing as `log()`: move the same record into one `Mutex<VecDeque>`
/// shared by the producers, which another thread empties every 5 ms (a swap
/// with the buffer it emptied last time, then drops the records, as the
/// serializer thread does). No bound, no counters, no serialization.
fn handoff_floor(seconds: f64, rate: f64, rings: &Arc<Vec<Arc<Vec<LogRecord>>>>) -> Samples {
    let rings = rings.clone();
    handoff(seconds, rate, move |q, p, i| {
        let ring = &rings[p as usize];
        let record = ring[i as usize % ring.len()].clone();
        timed(|| {
            q.lock().expect("floor queue").push_back(record);
            true
        })
    })
}

/// The least `log_json` can do: a copy of the text that outlives the call,
/// moved into the same kind of queue as [`handoff_floor`]'s, freed by the
/// thread that empties it (as the logger's lines are freed by its uploads).
fn copy_kept(seconds: f64, rate: f64, texts: &Arc<Vec<Vec<String>>>) -> Samples {
    let texts = texts.clone();
    handoff(seconds, rate, move |q, p, i| {
        let ring = &texts[p as usize];
        let text = &ring[i as usize % ring.len()];
        timed(|| {
            q.lock()
                .expect("floor queue")
                .push_back(text.as_bytes().to_vec());
            true
        })
    })
}

/// Paced calls of `call` with one `Mutex<VecDeque<T>>` that another thread
/// swaps out and empties every 5 ms.
fn handoff<T, F>(seconds: f64, rate: f64, call: F) -> Samples
where
    T: Send + 'static,
    F: Fn(&std::sync::Mutex<std::collections::VecDeque<T>>, u64, u64) -> (u32, u64, u64, bool)
        + Send
        + Sync
        + 'static,
{
    use std::collections::VecDeque;
    use std::sync::Mutex;
    let queue: Arc<Mutex<VecDeque<T>>> = Arc::new(Mutex::new(VecDeque::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let drain = {
        let (queue, stop) = (queue.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut spare = VecDeque::new();
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(5));
                std::mem::swap(&mut *queue.lock().expect("floor queue"), &mut spare);
                spare.clear();
            }
        })
    };
    let q = queue.clone();
    let samples = paced(seconds, rate, usize::MAX, move |p, i| call(&q, p, i));
    stop.store(true, Ordering::Relaxed);
    let _ = drain.join();
    samples
}

/// `serde_json` → OpenTelemetry's `AnyValue` (a `null` has no `AnyValue`:
/// such map entries are left out, as OpenTelemetry's log bridges do).
fn any_value(v: &Value) -> Option<opentelemetry::logs::AnyValue> {
    use opentelemetry::logs::AnyValue;
    Some(match v {
        Value::Null => return None,
        Value::Bool(b) => AnyValue::Boolean(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => AnyValue::Int(i),
            None => AnyValue::Double(n.as_f64().unwrap_or_default()),
        },
        Value::String(s) => AnyValue::String(s.clone().into()),
        Value::Array(a) => AnyValue::ListAny(Box::new(a.iter().filter_map(any_value).collect())),
        Value::Object(o) => AnyValue::Map(Box::new(
            o.iter()
                .filter_map(|(k, v)| Some((opentelemetry::Key::new(k.clone()), any_value(v)?)))
                .collect(),
        )),
    })
}

/// An OpenTelemetry log exporter that discards every batch.
#[derive(Debug)]
struct Discard;

impl opentelemetry_sdk::logs::LogExporter for Discard {
    async fn export(
        &self,
        _batch: opentelemetry_sdk::logs::LogBatch<'_>,
    ) -> opentelemetry_sdk::error::OTelSdkResult {
        Ok(())
    }
}

/// The OpenTelemetry Rust SDK under the same load: `Logger::emit` of the
/// same records (as a map body, with severity and timestamp, built and
/// cloned before timing as ours are), through its `BatchLogProcessor`
/// (its own thread; queue raised to 65 536 so nothing is dropped at this
/// rate) into an exporter that discards.
fn otel_emit(seconds: f64, rate: f64) -> Result<Value, String> {
    use opentelemetry::logs::{LogRecord as _, Logger as _, LoggerProvider as _, Severity};
    use opentelemetry_sdk::logs::{BatchConfigBuilder, BatchLogProcessor, SdkLoggerProvider};
    let processor = BatchLogProcessor::builder(Discard)
        .with_batch_config(
            BatchConfigBuilder::default()
                .with_max_queue_size(65_536)
                .build(),
        )
        .build();
    let provider = SdkLoggerProvider::builder()
        .with_log_processor(processor)
        .build();
    let logger = Arc::new(provider.logger("llm-gateway"));
    let rings: Arc<Vec<Vec<opentelemetry_sdk::logs::SdkLogRecord>>> = Arc::new(
        (0..4)
            .map(|p| {
                (0..1024)
                    .map(|i| {
                        let mut r = logger.create_log_record();
                        r.set_event_name("llm_request");
                        r.set_severity_number(Severity::Info);
                        r.set_timestamp(std::time::SystemTime::now());
                        if let Some(body) = any_value(&gateway_record(p, i)) {
                            r.set_body(body);
                        }
                        r
                    })
                    .collect()
            })
            .collect(),
    );
    let samples = {
        let logger = logger.clone();
        paced(seconds, rate, usize::MAX, move |p, i| {
            let ring = &rings[p as usize];
            let record = ring[i as usize % ring.len()].clone();
            timed(|| {
                logger.emit(record);
                true
            })
        })
    };
    provider.shutdown().map_err(|e| e.to_string())?;
    Ok(summarize(samples))
}

/// `tracing_appender::non_blocking` under the same load: each producer
/// writes the record's NDJSON line (formatted before timing) to its clone of
/// the `NonBlocking` writer; the worker thread writes into `io::sink()`.
/// Defaults otherwise (lossy, 128 000 buffered lines).
fn non_blocking_write(
    seconds: f64,
    rate: f64,
    texts: &Arc<Vec<Vec<String>>>,
) -> Result<Value, String> {
    let (writer, guard) = tracing_appender::non_blocking(std::io::sink());
    let lines: Arc<Vec<Vec<String>>> = Arc::new(
        texts
            .iter()
            .map(|ring| ring.iter().map(|t| format!("{t}\n")).collect())
            .collect(),
    );
    let writers: Arc<Vec<std::sync::Mutex<tracing_appender::non_blocking::NonBlocking>>> = Arc::new(
        (0..4)
            .map(|_| std::sync::Mutex::new(writer.clone()))
            .collect(),
    );
    let samples = paced(seconds, rate, usize::MAX, move |p, i| {
        use std::io::Write as _;
        let ring = &lines[p as usize];
        let line = ring[i as usize % ring.len()].as_bytes();
        // one writer per producer thread: the lock is never contended
        let mut w = writers[p as usize]
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        timed(|| w.write_all(line).is_ok())
    });
    drop(guard);
    Ok(summarize(samples))
}

/// A steady rate for a long time; the runner samples our RSS.
fn soak(rt: &tokio::runtime::Runtime, args: &Args) -> Result<Value, String> {
    let seconds: f64 = arg(args, "seconds", 600.0);
    let rate: f64 = arg(args, "rate", 5_000.0);
    let client = client(args)?;
    let container = fresh_container();
    let logger = rt
        .block_on(Logger::start(
            client.clone(),
            config(&container, LayoutMode::PerBatch),
        ))
        .map_err(|e| e.to_string())?;
    let cpu0 = cpu_time();
    let t0 = Instant::now();
    let samples = {
        let logger = logger.clone();
        paced(seconds, rate, 1 << 16, move |p, i| {
            // a fresh record each time, as a gateway builds them
            let record: LogRecord = serde_json::from_value(gateway_record(p, i)).expect("record");
            let t = Instant::now();
            let ok = logger.log(record).is_ok();
            (t.elapsed().as_nanos() as u32, 0, 0, ok)
        })
    };
    let report = rt.block_on(logger.shutdown(Duration::from_secs(30)));
    let elapsed = t0.elapsed();
    let cpu = cpu_time() - cpu0;
    let m = report.metrics;
    Ok(json!({
        "scenario": "soak",
        "rate": rate,
        "seconds": elapsed.as_secs_f64(),
        "written": m.written,
        "dropped": m.dropped.total(),
        "complete": report.complete,
        "cpu_s": cpu.as_secs_f64(),
        "log": summarize(samples),
        "metrics": metrics_json(&m),
    }))
}
