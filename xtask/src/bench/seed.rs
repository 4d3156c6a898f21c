//! The `seed` section: real LiteLLM 1.110.2 (library mode, mocked calls) under
//! a steady load, logging through its own `AzureBlobStorageLogger`, through
//! `GenericAPILogger` → `llm-log-shipper`, or through nothing (the floor),
//! into the independent DFS emulator; and the shipper's ingest throughput on
//! its own into the sink. See docs/PERFORMANCE.md, "LiteLLM's own logger
//! against the shipper".

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::azurite::{prune_stale, Azurite, Launch, ACCOUNT, ACCOUNT_KEY};
use crate::dfs_emulator::{
    dfs_install_dir, dfs_tarball, ensure_dfs_installed, ensure_node22, DFS_TARBALL,
};
use crate::process::{lock, ProcessGroup};
use crate::util::{cargo, run_checked, workspace_root};
use crate::Result;

/// Mock completions per second.
const RATES: [u32; 3] = [10, 50, 200];
/// How long storage refuses connections in the outage runs.
const OUTAGE: Duration = Duration::from_secs(15);
/// The rate of the outage runs.
const OUTAGE_RATE: u32 = 50;
/// Records per POST in the ingest benchmark (LiteLLM's batch size).
const INGEST_BATCH: usize = 512;
/// Concurrent posters in the ingest benchmark.
const INGEST_POSTERS: usize = 4;

/// What one `--quick` or full run does.
struct Plan {
    rounds: usize,
    seconds: f64,
    outage_run_s: f64,
    outage_at_s: f64,
    drain_timeout_s: f64,
    ingest_s: f64,
    ingest_rounds: usize,
}

impl Plan {
    fn new(quick: bool) -> Self {
        if quick {
            Plan {
                rounds: 1,
                seconds: 8.0,
                outage_run_s: 25.0,
                outage_at_s: 5.0,
                drain_timeout_s: 150.0,
                ingest_s: 6.0,
                ingest_rounds: 1,
            }
        } else {
            Plan {
                rounds: 3,
                seconds: 20.0,
                outage_run_s: 30.0,
                outage_at_s: 7.5,
                drain_timeout_s: 300.0,
                ingest_s: 15.0,
                ingest_rounds: 3,
            }
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Variant {
    Floor,
    Azure,
    Shipper,
}

impl Variant {
    const ALL: [Variant; 3] = [Variant::Floor, Variant::Azure, Variant::Shipper];

    fn name(self) -> &'static str {
        match self {
            Variant::Floor => "floor",
            Variant::Azure => "litellm_azure",
            Variant::Shipper => "shipper",
        }
    }

    /// `bench_seed.py run --variant`.
    fn driver(self) -> &'static str {
        match self {
            Variant::Floor => "none",
            Variant::Azure => "azure",
            Variant::Shipper => "generic",
        }
    }

    fn what(self) -> &'static str {
        match self {
            Variant::Floor => "no logger",
            Variant::Azure => "LiteLLM's AzureBlobStorageLogger (patched, see above)",
            Variant::Shipper => "GenericAPILogger json_array → llm-log-shipper",
        }
    }
}

/// The figures of one run.
#[derive(Debug, Clone, Default)]
struct Figures {
    completions: f64,
    errors: f64,
    stored: f64,
    duplicates: f64,
    lost: f64,
    /// Seconds from the last completion's return to the last record landing.
    landed_s: Option<f64>,
    requests: f64,
    cpu_s: f64,
    p50_ms: f64,
    p99_ms: f64,
    shipper_cpu_s: Option<f64>,
    drained: bool,
    outage: Option<(f64, f64)>,
}

impl Figures {
    fn req_per_record(&self) -> f64 {
        if self.stored > 0.0 {
            self.requests / self.stored
        } else {
            f64::NAN
        }
    }
    fn cpu_per_1000(&self) -> f64 {
        self.cpu_s / self.completions * 1000.0
    }
}

/// Entry point, called by `bench::run`; prints its tables and lines and
/// writes them to `target/bench/latest-seed.md`.
pub(super) fn run(quick: bool, sink_bin: &Path) -> Result {
    let started = Instant::now();
    let plan = Plan::new(quick);
    let root = workspace_root();
    let work = root.join("target/seed-bench");
    fs::create_dir_all(&work)?;
    prune_stale(&work);
    let work = work.join(format!("{}-{}", std::process::id(), unix_now() as u64));
    fs::create_dir_all(&work)?;

    run_checked(cargo().args([
        "build",
        "--release",
        "--package",
        "llm-log-shipper",
        "--bin",
        "llm-log-shipper",
    ]))?;
    let shipper_bin = root.join("target/release/llm-log-shipper");
    let python = venv(&root, &work)?;
    let script = root.join("xtask/litellm/bench_seed.py");
    let tarball = dfs_tarball().ok_or_else(|| {
        format!("the DFS emulator is missing: expected {DFS_TARBALL} (or $AZURITE_DFS_TGZ)")
    })?;
    let node = ensure_node22()?;
    let main_js = ensure_dfs_installed(&tarball)?;
    let env = Env {
        python,
        script,
        shipper_bin,
        node,
        main_js,
        work: work.clone(),
    };

    let mut report = String::new();
    let mut lines: Vec<String> = Vec::new();
    let mut notes: Vec<String> = Vec::new();
    let mut raw = String::new();

    // Side by side: every rate, every variant, interleaved; the order
    // rotates each round and rate.
    let mut runs: HashMap<(u32, &str), Vec<Figures>> = HashMap::new();
    let mut n = 0;
    for round in 0..plan.rounds {
        for (ri, &rate) in RATES.iter().enumerate() {
            for k in 0..3 {
                let v = Variant::ALL[(round + ri + k) % 3];
                n += 1;
                eprintln!(
                    "seed: round {}/{}, {} at {rate}/s for {} s",
                    round + 1,
                    plan.rounds,
                    v.name(),
                    plan.seconds
                );
                let f = one_run(&env, v, rate, plan.seconds, None, &plan, n, &mut raw)?;
                eprintln!("seed: {} at {rate}/s: {f:?}", v.name());
                runs.entry((rate, v.name())).or_default().push(f);
            }
        }
    }
    // The outage: storage refuses connections for 15 s in the middle.
    let mut outages: Vec<(Variant, Figures)> = Vec::new();
    for v in [Variant::Azure, Variant::Shipper] {
        n += 1;
        eprintln!(
            "seed: outage run, {} at {OUTAGE_RATE}/s for {} s, storage refusing connections from {} s for {OUTAGE:?}",
            v.name(),
            plan.outage_run_s,
            plan.outage_at_s
        );
        let f = one_run(
            &env,
            v,
            OUTAGE_RATE,
            plan.outage_run_s,
            Some(plan.outage_at_s),
            &plan,
            n,
            &mut raw,
        )?;
        eprintln!("seed: outage {}: {f:?}", v.name());
        outages.push((v, f));
    }

    // Medians per rate and variant.
    let med = |rate: u32, v: Variant, get: &dyn Fn(&Figures) -> Option<f64>| -> f64 {
        let xs: Vec<f64> = runs
            .get(&(rate, v.name()))
            .map(|fs| fs.iter().filter_map(get).collect())
            .unwrap_or_default();
        median(xs)
    };
    report.push_str(&format!(
        "### LiteLLM {} in library mode, mock completions, into the DFS emulator (--skipApiVersionCheck)\n\n\
         {} round(s) of {} s per rate and variant, interleaved; medians. LiteLLM process CPU from the first \
         completion until its logger had sent everything. Latency from the moment each call was due.\n\n\
         | rate | variant | stored / completions | lost | last landed after end (s) | storage req/record | \
         LiteLLM CPU s/1000 | minus floor | p50 ms | p99 ms | shipper CPU s/1000 |\n\
         |---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
        "1.110.2", plan.rounds, plan.seconds
    ));
    for &rate in &RATES {
        let floor_cpu = med(rate, Variant::Floor, &|f| Some(f.cpu_per_1000()));
        for v in Variant::ALL {
            let completions = med(rate, v, &|f| Some(f.completions));
            let stored = med(rate, v, &|f| Some(f.stored));
            let lost = med(rate, v, &|f| Some(f.lost));
            let landed = med(rate, v, &|f| f.landed_s);
            let rpr = med(rate, v, &|f| Some(f.req_per_record()));
            let cpu = med(rate, v, &|f| Some(f.cpu_per_1000()));
            let p50 = med(rate, v, &|f| Some(f.p50_ms));
            let p99 = med(rate, v, &|f| Some(f.p99_ms));
            let scpu = med(rate, v, &|f| {
                f.shipper_cpu_s.map(|s| s / f.completions * 1000.0)
            });
            let storage = v != Variant::Floor;
            report.push_str(&format!(
                "| {rate}/s | {} | {} | {} | {} | {} | {:.2} | {} | {:.1} | {:.1} | {} |\n",
                v.what(),
                if storage {
                    format!("{stored:.0} / {completions:.0}")
                } else {
                    format!("— / {completions:.0}")
                },
                if storage {
                    format!("{lost:.0}")
                } else {
                    "—".into()
                },
                opt(landed, 1),
                opt(rpr, 3),
                cpu,
                if storage {
                    format!("{:.2}", cpu - floor_cpu)
                } else {
                    "—".into()
                },
                p50,
                p99,
                opt(scpu, 3),
            ));
            let p = format!("seed_{}", v.name());
            let at = format!("at_{rate}rps");
            if storage {
                lines.push(format!("BENCH {p}_records_stored_{at} {stored:.0} records (of {completions:.0} completions)"));
                lines.push(format!("BENCH {p}_records_lost_{at} {lost:.0} records"));
                lines.push(format!(
                    "BENCH {p}_last_landed_after_end_{at} {landed:.2} s"
                ));
                lines.push(format!(
                    "BENCH {p}_storage_requests_per_record_{at} {rpr:.4} req/record"
                ));
            }
            lines.push(format!("BENCH {p}_cpu_per_1000_{at} {cpu:.3} s"));
            if storage {
                lines.push(format!(
                    "BENCH {p}_cpu_per_1000_minus_floor_{at} {:.3} s",
                    cpu - floor_cpu
                ));
            }
            lines.push(format!("BENCH {p}_latency_p50_{at} {p50:.2} ms"));
            lines.push(format!("BENCH {p}_latency_p99_{at} {p99:.2} ms"));
            if v == Variant::Shipper {
                lines.push(format!(
                    "BENCH {p}_process_cpu_per_1000_{at} {scpu:.3} s (the shipper's own process)"
                ));
            }
        }
    }
    let mut ratios: Vec<String> = Vec::new();
    for &rate in &RATES {
        let at = format!("at_{rate}rps");
        let g = |v: Variant, get: &dyn Fn(&Figures) -> Option<f64>| med(rate, v, get);
        let cpu = |v| g(v, &|f| Some(f.cpu_per_1000()));
        let floor = cpu(Variant::Floor);
        let (a, s) = (cpu(Variant::Azure), cpu(Variant::Shipper));
        let scpu = g(Variant::Shipper, &|f| {
            f.shipper_cpu_s.map(|c| c / f.completions * 1000.0)
        });
        ratios.push(format!(
            "RATIO shipper_vs_litellm_azure_cpu_per_1000_{at} {:.3}",
            s / a
        ));
        ratios.push(format!(
            "RATIO shipper_vs_litellm_azure_cpu_per_1000_minus_floor_{at} {:.3}",
            (s - floor) / (a - floor)
        ));
        ratios.push(format!(
            "RATIO shipper_plus_sidecar_vs_litellm_azure_cpu_per_1000_{at} {:.3}",
            (s + scpu) / a
        ));
        let rpr = |v| g(v, &|f| Some(f.req_per_record()));
        ratios.push(format!(
            "RATIO shipper_vs_litellm_azure_storage_requests_per_record_{at} {:.4}",
            rpr(Variant::Shipper) / rpr(Variant::Azure)
        ));
        let p99 = |v| g(v, &|f| Some(f.p99_ms));
        ratios.push(format!(
            "RATIO shipper_vs_litellm_azure_latency_p99_{at} {:.3}",
            p99(Variant::Shipper) / p99(Variant::Azure)
        ));
        ratios.push(format!(
            "RATIO litellm_azure_vs_floor_latency_p99_{at} {:.3}",
            p99(Variant::Azure) / p99(Variant::Floor)
        ));
        ratios.push(format!(
            "RATIO shipper_vs_floor_latency_p99_{at} {:.3}",
            p99(Variant::Shipper) / p99(Variant::Floor)
        ));
    }

    report.push_str(&format!(
        "\n### Storage refusing connections for {} s ({OUTAGE_RATE}/s for {} s, from {} s into the run; one run each)\n\n\
         | variant | completions | stored | lost | duplicates | last landed after end (s) | storage requests | drained |\n\
         |---|---:|---:|---:|---:|---:|---:|---|\n",
        OUTAGE.as_secs(),
        plan.outage_run_s,
        plan.outage_at_s
    ));
    for (v, f) in &outages {
        report.push_str(&format!(
            "| {} | {:.0} | {:.0} | {:.0} | {:.0} | {} | {:.0} | {} |\n",
            v.what(),
            f.completions,
            f.stored,
            f.lost,
            f.duplicates,
            opt(f.landed_s.unwrap_or(f64::NAN), 1),
            f.requests,
            if f.drained {
                "yes"
            } else {
                "**no** (drain timeout)"
            }
        ));
        let p = format!("seed_{}_outage", v.name());
        lines.push(format!(
            "BENCH {p}_records_lost_at_{OUTAGE_RATE}rps {:.0} records (of {:.0})",
            f.lost, f.completions
        ));
        lines.push(format!(
            "BENCH {p}_duplicates_at_{OUTAGE_RATE}rps {:.0} records",
            f.duplicates
        ));
        if let Some(l) = f.landed_s {
            lines.push(format!(
                "BENCH {p}_last_landed_after_end_at_{OUTAGE_RATE}rps {l:.2} s"
            ));
        }
        if f.outage.is_none() {
            notes.push(format!(
                "outage run {}: the outage did not happen (the driver never started?)",
                v.name()
            ));
        }
    }

    // The shipper's ingest on its own, into the sink.
    let ingest = ingest(&env, sink_bin, &plan, &mut raw)?;
    report.push_str(&format!(
        "\n### llm-log-shipper ingest into the sink (Blob dialect), {INGEST_POSTERS} posters, json_array bodies of \
         {INGEST_BATCH} records of {} B, {} run(s) of {} s; medians\n\n\
         | figure | median |\n|---|---:|\n",
        ingest.record_bytes, plan.ingest_rounds, plan.ingest_s
    ));
    for (name, value, unit, what) in &ingest.figures {
        report.push_str(&format!("| {what} | {} {unit} |\n", fmt_num(*value)));
        lines.push(format!("BENCH {name} {} {unit}", fmt_num(*value)));
    }

    report.push_str("\nPatched in LiteLLM (bench_seed.py): `AzureBlobStorageLogger._premium_user_check` (no-op: its import of the proxy's `premium_user` fails in library mode) and its `azure_storage_dfs_endpoint` property (the emulator's URL, through the outage gate). Counted, not changed: the Azure SDK's `AioHttpTransport.send` (storage requests, retries included) and the logger's `_upload_bytes_with_account_key`. The shipper's storage requests are its own `llm_log_storage_requests_total`.\n");
    for note in &notes {
        report.push_str(&format!("\nnote: {note}"));
    }
    let wall = started.elapsed().as_secs_f64();
    lines.push(format!("BENCH seed_section_wall_s {wall:.0} s"));
    let text = format!(
        "{report}\n```\n{}\n{}\n```\n",
        lines.join("\n"),
        ratios.join("\n")
    );
    println!("\n{text}");
    let out = root.join("target/bench");
    fs::create_dir_all(&out)?;
    fs::write(out.join("latest-seed.md"), &text)?;
    fs::write(
        out.join(format!("{}-seed-runs.jsonl", unix_now() as u64)),
        &raw,
    )?;
    let _ = fs::remove_dir_all(&work);
    Ok(())
}

/// What every run needs.
struct Env {
    python: PathBuf,
    script: PathBuf,
    shipper_bin: PathBuf,
    node: PathBuf,
    main_js: PathBuf,
    work: PathBuf,
}

/// The bench venv: the fixtures' pins (the same LiteLLM) plus
/// xtask/litellm/bench_seed_requirements.txt, installed from one combined
/// file so a change to either reinstalls.
fn venv(root: &Path, work: &Path) -> Result<PathBuf> {
    let mut combined = fs::read_to_string(root.join("xtask/fixtures/requirements.txt"))?;
    combined.push('\n');
    combined.push_str(&fs::read_to_string(
        root.join("xtask/litellm/bench_seed_requirements.txt"),
    )?);
    let file = work.join("requirements.txt");
    fs::write(&file, combined)?;
    crate::python::ensure_venv(&root.join("target/seed-bench-venv"), &file)
}

/// One run: a fresh emulator behind a fresh gate, the shipper if needed,
/// the driver, then the read-back.
#[allow(clippy::too_many_arguments)]
fn one_run(
    env: &Env,
    v: Variant,
    rate: u32,
    seconds: f64,
    outage_at: Option<f64>,
    plan: &Plan,
    n: usize,
    raw: &mut String,
) -> Result<Figures> {
    let dir = env.work.join(format!("run-{n}-{}-{rate}", v.name()));
    fs::create_dir_all(&dir)?;
    let file_system = format!("seed{n}x{}", unix_now() as u64);
    let emulator = match v {
        Variant::Floor => None,
        _ => Some(start_emulator(env)?),
    };
    let gate = match &emulator {
        Some(e) => Some(Gate::start(e.port)?),
        None => None,
    };
    let gate_url = gate
        .as_ref()
        .map(|g| format!("http://127.0.0.1:{}/{ACCOUNT}", g.port));
    let shipper = match (v, &gate_url) {
        (Variant::Shipper, Some(url)) => Some(Shipper::start(
            &env.shipper_bin,
            &dir,
            &[
                (
                    "AZURE_STORAGE_CONNECTION_STRING",
                    connection_string(url, true),
                ),
                ("AZURE_STORAGE_DIALECT", "dfs".into()),
                ("AZURE_STORAGE_FILE_SYSTEM", file_system.clone()),
            ],
        )?),
        _ => None,
    };
    let watch = shipper.as_ref().map(|s| Watch::start(s.addr.clone()));
    let shipper_cpu0 = shipper.as_ref().and_then(|s| proc_cpu_s(s.process.id()));

    let mut cmd = Command::new(&env.python);
    cmd.arg(&env.script)
        .args(["run", "--variant", v.driver()])
        .args([
            "--rate",
            &rate.to_string(),
            "--seconds",
            &seconds.to_string(),
        ])
        .args(["--drain-timeout", &plan.drain_timeout_s.to_string()])
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env_remove("AZURE_STORAGE_TENANT_ID")
        .env_remove("AZURE_STORAGE_CLIENT_ID")
        .env_remove("AZURE_STORAGE_CLIENT_SECRET")
        .env_remove("AZURE_STORAGE_ENDPOINT_SUFFIX")
        .env("AZURE_STORAGE_ACCOUNT_NAME", ACCOUNT)
        .env("AZURE_STORAGE_ACCOUNT_KEY", ACCOUNT_KEY)
        .env("AZURE_STORAGE_FILE_SYSTEM", &file_system)
        .stdin(Stdio::null())
        .stdout(File::create(dir.join("driver.out"))?)
        .stderr(File::create(dir.join("driver.err"))?);
    if let Some(url) = &gate_url {
        cmd.args(["--dfs-endpoint", url]);
    }
    if let Some(s) = &shipper {
        cmd.args(["--endpoint", &format!("http://{}/v1/litellm", s.addr)]);
    }
    let mut driver = ProcessGroup::spawn(&mut cmd, "bench_seed.py")?;
    let limit = Instant::now() + Duration::from_secs_f64(seconds + plan.drain_timeout_s + 180.0);
    let outage_times: Arc<Mutex<Option<(f64, f64)>>> = Arc::new(Mutex::new(None));
    let mut outage_thread = None;
    let status = loop {
        if let Some(status) = driver.try_wait()? {
            break status;
        }
        if outage_thread.is_none() {
            if let (Some(at), Some(g)) = (outage_at, &gate) {
                let out = fs::read_to_string(dir.join("driver.out")).unwrap_or_default();
                if let Some(t0) = out
                    .lines()
                    .find_map(|l| l.strip_prefix("STARTED "))
                    .and_then(|t| t.trim().parse::<f64>().ok())
                {
                    let state = Arc::clone(&g.state);
                    let times = Arc::clone(&outage_times);
                    outage_thread = Some(thread::spawn(move || {
                        let wait = t0 + at - unix_now();
                        if wait > 0.0 {
                            thread::sleep(Duration::from_secs_f64(wait));
                        }
                        let down = unix_now();
                        state.set_down(true);
                        thread::sleep(OUTAGE);
                        state.set_down(false);
                        *lock(&times) = Some((down - t0, unix_now() - t0));
                    }));
                }
            }
        }
        if Instant::now() > limit {
            driver.stop();
            return Err(format!(
                "bench_seed.py did not finish in time (files in {})",
                dir.display()
            )
            .into());
        }
        thread::sleep(Duration::from_millis(20));
    };
    if let Some(t) = outage_thread {
        let _ = t.join();
    }
    let out = fs::read_to_string(dir.join("driver.out"))?;
    let summary = out.lines().last().unwrap_or("").to_string();
    if !status.success() || !summary.starts_with('{') {
        let err = fs::read_to_string(dir.join("driver.err")).unwrap_or_default();
        let tail: Vec<&str> = err.lines().rev().take(30).collect();
        return Err(format!(
            "bench_seed.py run failed ({status}): {summary}\n--- stderr (last lines) ---\n{}",
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        )
        .into());
    }
    let num = |k: &str| json_num(&summary, k).unwrap_or(f64::NAN);
    let calls_end = num("calls_end");
    let mut f = Figures {
        completions: num("completions"),
        errors: num("errors"),
        cpu_s: num("cpu_s"),
        p50_ms: num("latency_p50_ms"),
        p99_ms: num("latency_p99_ms"),
        drained: num("drained") == 1.0,
        outage: *lock(&outage_times),
        ..Figures::default()
    };
    match v {
        Variant::Floor => {}
        Variant::Azure => {
            f.requests = num("storage_requests");
            f.landed_s = json_num(&summary, "last_landed").map(|t| t - calls_end);
        }
        Variant::Shipper => {
            let s = shipper.as_ref().expect("shipper");
            // Until the shipper has written or dropped all it accepted.
            let deadline = Instant::now() + Duration::from_secs(180);
            loop {
                let m = metrics(&s.addr)?;
                let get = |k: &str| m.get(k).copied().unwrap_or(0.0);
                let dropped: f64 = m
                    .iter()
                    .filter(|(k, _)| k.starts_with("llm_log_records_dropped_total"))
                    .map(|(_, v)| v)
                    .sum();
                let done = get("llm_log_records_written_total") + dropped
                    >= get("llm_log_records_accepted_total")
                    && get("llm_log_queue_records") == 0.0
                    && get("llm_log_in_flight_records") == 0.0;
                if done || Instant::now() > deadline {
                    f.drained = f.drained && done;
                    f.requests = get("llm_log_storage_requests_total");
                    break;
                }
                thread::sleep(Duration::from_millis(100));
            }
            f.shipper_cpu_s = proc_cpu_s(s.process.id())
                .zip(shipper_cpu0)
                .map(|(b, a)| b - a);
            if let Some(w) = watch {
                f.landed_s = w.finish().map(|t| t - calls_end);
            }
        }
    }
    if let Some(e) = &emulator {
        let counted = Command::new(&env.python)
            .arg(&env.script)
            .args([
                "count",
                "--blob-endpoint",
                &e.url,
                "--file-system",
                &file_system,
            ])
            .args(if v == Variant::Azure {
                &["--one-record-per-file"][..]
            } else {
                &[][..]
            })
            .stdin(Stdio::null())
            .stderr(Stdio::inherit())
            .output()?;
        let text = String::from_utf8_lossy(&counted.stdout).trim().to_string();
        if !counted.status.success() {
            return Err(format!("bench_seed.py count failed ({}): {text}", counted.status).into());
        }
        f.stored = json_num(&text, "records").unwrap_or(f64::NAN);
        f.duplicates = json_num(&text, "duplicates").unwrap_or(f64::NAN);
        let distinct = json_num(&text, "distinct_ids").unwrap_or(f64::NAN);
        f.lost = f.completions - f.errors - distinct;
        raw.push_str(&format!(
            "{{\"variant\":\"{}\",\"rate\":{rate},\"outage\":{},\"driver\":{summary},\"stored\":{text},\"storage_requests\":{},\"shipper_cpu_s\":{}}}\n",
            v.name(),
            outage_at.is_some(),
            f.requests,
            f.shipper_cpu_s.map_or("null".into(), |c| format!("{c:.3}"))
        ));
    } else {
        raw.push_str(&format!(
            "{{\"variant\":\"{}\",\"rate\":{rate},\"driver\":{summary}}}\n",
            v.name()
        ));
    }
    drop(shipper);
    drop(gate);
    drop(emulator);
    let _ = fs::remove_dir_all(&dir);
    Ok(f)
}

/// A fresh DFS emulator (data on disk in its scratch directory), with
/// `--skipApiVersionCheck`: it accepts `x-ms-version` up to 2026-06-06
/// and azure-storage-file-datalake 12.26.1 sends 2026-10-06.
fn start_emulator(env: &Env) -> Result<Azurite> {
    let root = dfs_install_dir();
    prune_stale(&root.join("work"));
    let script = env.main_js.clone();
    let launch = Launch {
        program: env.node.clone(),
        args: Box::new(move |workdir: &Path| {
            vec![
                script.clone().into(),
                "--location".into(),
                workdir.join("data").into(),
                "--skipApiVersionCheck".into(),
            ]
        }),
        root,
    };
    Azurite::launch("seed", "http", &launch)
}

fn connection_string(url: &str, dfs: bool) -> String {
    let mut s = format!(
        "DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};BlobEndpoint={url}"
    );
    if dfs {
        s.push_str(&format!(";DfsEndpoint={url}"));
    }
    s
}

// --- the gate: a loopback TCP relay in front of storage that can refuse --

/// A TCP relay on a port of its own in front of `127.0.0.1:upstream`.
/// While it is down the port is closed (connects are refused) and every
/// relayed connection has been shut down; up again, it listens on the
/// same port.
struct Gate {
    port: u16,
    state: Arc<GateState>,
    listener: Option<thread::JoinHandle<()>>,
}

struct GateState {
    port: u16,
    upstream: u16,
    down: AtomicBool,
    stop: AtomicBool,
    next: AtomicU64,
    live: Mutex<HashMap<u64, (TcpStream, TcpStream)>>,
}

impl Gate {
    fn start(upstream: u16) -> Result<Gate> {
        let listener = TcpListener::bind(("127.0.0.1", 0))?;
        let port = listener.local_addr()?.port();
        let state = Arc::new(GateState {
            port,
            upstream,
            down: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            next: AtomicU64::new(0),
            live: Mutex::new(HashMap::new()),
        });
        let s = Arc::clone(&state);
        let handle = thread::spawn(move || s.serve(listener));
        Ok(Gate {
            port,
            state,
            listener: Some(handle),
        })
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        self.state.stop.store(true, Ordering::SeqCst);
        self.state.set_down(true);
        if let Some(h) = self.listener.take() {
            let _ = h.join();
        }
    }
}

impl GateState {
    fn serve(self: Arc<Self>, first: TcpListener) {
        let mut listener = Some(first);
        loop {
            let l = match listener.take() {
                Some(l) => l,
                None => loop {
                    if self.stop.load(Ordering::SeqCst) {
                        return;
                    }
                    if !self.down.load(Ordering::SeqCst) {
                        if let Ok(l) = TcpListener::bind(("127.0.0.1", self.port)) {
                            break l;
                        }
                    }
                    thread::sleep(Duration::from_millis(10));
                },
            };
            for conn in l.incoming() {
                if self.down.load(Ordering::SeqCst) || self.stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = conn else { continue };
                let Ok(up) = TcpStream::connect(("127.0.0.1", self.upstream)) else {
                    continue;
                };
                self.relay(client, up);
            }
            drop(l);
            if self.stop.load(Ordering::SeqCst) {
                return;
            }
        }
    }

    fn relay(self: &Arc<Self>, client: TcpStream, up: TcpStream) {
        let _ = client.set_nodelay(true);
        let _ = up.set_nodelay(true);
        let (Ok(c2), Ok(u2), Ok(c3), Ok(u3)) = (
            client.try_clone(),
            up.try_clone(),
            client.try_clone(),
            up.try_clone(),
        ) else {
            return;
        };
        let id = self.next.fetch_add(1, Ordering::SeqCst);
        lock(&self.live).insert(id, (c3, u3));
        let me = Arc::clone(self);
        thread::spawn(move || {
            let forward = thread::spawn(move || {
                let (mut from, mut to) = (client, up);
                let _ = std::io::copy(&mut from, &mut to);
                let _ = to.shutdown(Shutdown::Write);
            });
            let (mut from, mut to) = (u2, c2);
            let _ = std::io::copy(&mut from, &mut to);
            let _ = to.shutdown(Shutdown::Write);
            let _ = forward.join();
            lock(&me.live).remove(&id);
        });
    }

    /// Down: the listener closes (connects are refused) and every relayed
    /// connection is shut down. Up: the listener comes back.
    fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
        if down {
            // Wakes the accept loop, which then closes the listener.
            let _ = TcpStream::connect(("127.0.0.1", self.port));
            for (c, u) in lock(&self.live).values() {
                let _ = c.shutdown(Shutdown::Both);
                let _ = u.shutdown(Shutdown::Both);
            }
        }
    }
}

// --- the shipper --------------------------------------------------------

struct Shipper {
    process: ProcessGroup,
    addr: String,
}

impl Shipper {
    /// `llm-log-shipper serve` on a free port with exactly `vars` (and
    /// `PATH`), its journal in `dir/journal`, its log in `dir/shipper.log`.
    fn start(bin: &Path, dir: &Path, vars: &[(&str, String)]) -> Result<Shipper> {
        let addr = format!("127.0.0.1:{}", free_port()?);
        let log = File::create(dir.join("shipper.log"))?;
        let mut cmd = Command::new(bin);
        cmd.args(["serve", "--listen", &addr])
            .current_dir(dir)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("RUST_LOG", "warn")
            .env("LLM_LOG_JOURNAL_DIR", dir.join("journal"))
            .env("LLM_LOG_SHUTDOWN_SECS", "5")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        for (k, v) in vars {
            cmd.env(k, v);
        }
        let mut process = ProcessGroup::spawn(&mut cmd, "llm-log-shipper")?;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if http_get(&addr, "/healthz").is_ok_and(|(status, _)| status == 200) {
                return Ok(Shipper { process, addr });
            }
            if let Some(status) = process.try_wait()? {
                let text = fs::read_to_string(dir.join("shipper.log")).unwrap_or_default();
                return Err(format!("llm-log-shipper exited at start ({status}): {text}").into());
            }
            if Instant::now() > deadline {
                return Err("llm-log-shipper did not serve /healthz within 30 s".into());
            }
            thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Polls the shipper's `/metrics` every 100 ms; remembers when
/// `llm_log_records_written_total` last grew.
struct Watch {
    stop: Arc<AtomicBool>,
    handle: thread::JoinHandle<Option<f64>>,
}

impl Watch {
    fn start(addr: String) -> Watch {
        let stop = Arc::new(AtomicBool::new(false));
        let s = Arc::clone(&stop);
        let handle = thread::spawn(move || {
            let (mut written, mut at) = (0.0, None);
            loop {
                let done = s.load(Ordering::SeqCst);
                if let Ok(m) = metrics(&addr) {
                    let w = m
                        .get("llm_log_records_written_total")
                        .copied()
                        .unwrap_or(0.0);
                    if w > written {
                        written = w;
                        at = Some(unix_now());
                    }
                }
                if done {
                    return at;
                }
                thread::sleep(Duration::from_millis(100));
            }
        });
        Watch { stop, handle }
    }

    /// When the last record was written (unix seconds).
    fn finish(self) -> Option<f64> {
        self.stop.store(true, Ordering::SeqCst);
        self.handle.join().ok().flatten()
    }
}

/// The shipper's `/metrics`, series (with labels) to value.
fn metrics(addr: &str) -> Result<HashMap<String, f64>> {
    let (status, body) = http_get(addr, "/metrics")?;
    if status != 200 {
        return Err(format!("GET /metrics answered {status}").into());
    }
    Ok(body
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((k.to_string(), v.parse().ok()?))
        })
        .collect())
}

/// One GET over its own connection (`Connection: close`).
fn http_get(addr: &str, path: &str) -> Result<(u16, String)> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut text = String::new();
    s.read_to_string(&mut text)?;
    let (head, body) = text.split_once("\r\n\r\n").ok_or("not HTTP")?;
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or("no status")?;
    Ok((status, body.to_string()))
}

// --- ingest -------------------------------------------------------------

struct Ingest {
    record_bytes: usize,
    figures: Vec<(&'static str, f64, &'static str, &'static str)>,
}

/// The shipper alone: ~4 KB LiteLLM records posted as json_array bodies of
/// 512 by a few concurrent posters over loopback, into the sink.
fn ingest(env: &Env, sink_bin: &Path, plan: &Plan, raw: &mut String) -> Result<Ingest> {
    let template = env.work.join("record.json");
    let out = Command::new(&env.python)
        .arg(&env.script)
        .args(["record", "--out"])
        .arg(&template)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()?;
    if !out.status.success() {
        return Err(format!("bench_seed.py record failed ({})", out.status).into());
    }
    let text = fs::read_to_string(&template)?;
    let (pre, post) = text
        .split_once("@@ID@@")
        .ok_or("the record template has no @@ID@@")?;
    let (pre, post) = (Arc::new(pre.to_string()), Arc::new(post.to_string()));
    let record_bytes = text.len();

    let (sink_port, _sink, _sink_stdin) = start_sink(sink_bin, &env.work)?;
    let url = format!("http://127.0.0.1:{sink_port}/{ACCOUNT}");
    let mut per: HashMap<&'static str, Vec<f64>> = HashMap::new();
    for round in 0..plan.ingest_rounds {
        let dir = env.work.join(format!("ingest-{round}"));
        fs::create_dir_all(&dir)?;
        let shipper = Shipper::start(
            &env.shipper_bin,
            &dir,
            &[
                (
                    "AZURE_STORAGE_CONNECTION_STRING",
                    connection_string(&url, false),
                ),
                ("AZURE_STORAGE_DIALECT", "blob".into()),
                ("AZURE_STORAGE_FILE_SYSTEM", format!("ingest{round}")),
            ],
        )?;
        let cpu0 = proc_cpu_s(shipper.process.id());
        let next_id = Arc::new(AtomicU64::new(0));
        let started = Instant::now();
        let deadline = started + Duration::from_secs_f64(plan.ingest_s);
        let posters: Vec<_> = (0..INGEST_POSTERS)
            .map(|p| {
                let (addr, pre, post, next_id) = (
                    shipper.addr.clone(),
                    Arc::clone(&pre),
                    Arc::clone(&post),
                    Arc::clone(&next_id),
                );
                thread::spawn(move || poster(&addr, &pre, &post, &next_id, round, p, deadline))
            })
            .collect();
        let mut lat: Vec<f64> = Vec::new();
        let (mut acked, mut busy, mut bytes) = (0u64, 0u64, 0u64);
        for h in posters {
            let r = h.join().map_err(|_| "an ingest poster panicked")??;
            lat.extend(r.latencies);
            acked += r.acked;
            busy += r.busy;
            bytes += r.bytes;
        }
        let post_s = started.elapsed().as_secs_f64();
        // Until storage has everything.
        let wait = Instant::now() + Duration::from_secs(120);
        loop {
            let m = metrics(&shipper.addr)?;
            let get = |k: &str| m.get(k).copied().unwrap_or(0.0);
            if get("llm_log_records_written_total") >= get("llm_log_records_accepted_total")
                || Instant::now() > wait
            {
                break;
            }
            thread::sleep(Duration::from_millis(50));
        }
        let total_s = started.elapsed().as_secs_f64();
        let m = metrics(&shipper.addr)?;
        let written = m
            .get("llm_log_records_written_total")
            .copied()
            .unwrap_or(0.0);
        let cpu = proc_cpu_s(shipper.process.id())
            .zip(cpu0)
            .map(|(b, a)| b - a);
        drop(shipper);
        lat.sort_by(f64::total_cmp);
        let pct = |q: f64| {
            lat.get(((lat.len() as f64 - 1.0) * q).round() as usize)
                .copied()
        };
        let figs: Vec<(&'static str, f64)> = vec![
            ("ingest_records_per_s", acked as f64 / post_s),
            ("ingest_mb_per_s", bytes as f64 / post_s / 1e6),
            ("ingest_ack_p50_ms", pct(0.5).unwrap_or(f64::NAN) * 1e3),
            ("ingest_ack_p99_ms", pct(0.99).unwrap_or(f64::NAN) * 1e3),
            ("ingest_busy_503", busy as f64),
            ("ingest_committed_records_per_s", written / total_s),
            ("ingest_drain_after_posting_s", total_s - post_s),
            (
                "ingest_shipper_cpu_us_per_record",
                cpu.map_or(f64::NAN, |c| c / written.max(1.0) * 1e6),
            ),
        ];
        raw.push_str(&format!(
            "{{\"ingest_round\":{round},\"acked\":{acked},\"written\":{written},\"posts\":{},{}}}\n",
            lat.len(),
            figs.iter()
                .map(|(k, v)| format!("\"{k}\":{}", if v.is_finite() { format!("{v:.4}") } else { "null".into() }))
                .collect::<Vec<_>>()
                .join(",")
        ));
        eprintln!("seed: ingest round {}: {figs:?}", round + 1);
        for (k, v) in figs {
            per.entry(k).or_default().push(v);
        }
        let _ = fs::remove_dir_all(&dir);
    }
    let m = |k: &str| median(per.get(k).cloned().unwrap_or_default());
    Ok(Ingest {
        record_bytes,
        figures: vec![
            (
                "ingest_records_per_s",
                m("ingest_records_per_s"),
                "records/s",
                "records acknowledged per second (200 after the journal's fsync)",
            ),
            (
                "ingest_mb_per_s",
                m("ingest_mb_per_s"),
                "MB/s",
                "request bodies acknowledged per second",
            ),
            (
                "ingest_ack_p50_ms",
                m("ingest_ack_p50_ms"),
                "ms",
                "POST of 512 records: acknowledgement latency p50",
            ),
            (
                "ingest_ack_p99_ms",
                m("ingest_ack_p99_ms"),
                "ms",
                "POST of 512 records: acknowledgement latency p99",
            ),
            (
                "ingest_busy_503",
                m("ingest_busy_503"),
                "answers",
                "503 (busy) answers, each retried after 50 ms",
            ),
            (
                "ingest_committed_records_per_s",
                m("ingest_committed_records_per_s"),
                "records/s",
                "records written to storage per second, until all were",
            ),
            (
                "ingest_drain_after_posting_s",
                m("ingest_drain_after_posting_s"),
                "s",
                "from the last acknowledgement until storage had every record",
            ),
            (
                "ingest_shipper_cpu_us_per_record",
                m("ingest_shipper_cpu_us_per_record"),
                "µs",
                "the shipper process's CPU per record (user + system)",
            ),
        ],
    })
}

struct Posted {
    latencies: Vec<f64>,
    acked: u64,
    busy: u64,
    bytes: u64,
}

/// Posts bodies of [`INGEST_BATCH`] fresh records over one keep-alive
/// connection until `deadline`; a 503 is retried with the same body.
fn poster(
    addr: &str,
    pre: &str,
    post: &str,
    next_id: &AtomicU64,
    round: usize,
    p: usize,
    deadline: Instant,
) -> std::result::Result<Posted, String> {
    let mut r = Posted {
        latencies: Vec::new(),
        acked: 0,
        busy: 0,
        bytes: 0,
    };
    let mut conn: Option<(TcpStream, BufReader<TcpStream>)> = None;
    while Instant::now() < deadline {
        let first = next_id.fetch_add(INGEST_BATCH as u64, Ordering::SeqCst);
        let mut body = String::with_capacity((pre.len() + post.len() + 32) * INGEST_BATCH);
        body.push('[');
        for i in 0..INGEST_BATCH as u64 {
            if i > 0 {
                body.push(',');
            }
            body.push_str(pre);
            body.push_str(&format!("ingest-{round}-{}", first + i));
            body.push_str(post);
        }
        body.push(']');
        let head = format!(
            "POST /v1/litellm HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        loop {
            if conn.is_none() {
                let s = TcpStream::connect(addr).map_err(|e| e.to_string())?;
                let _ = s.set_nodelay(true);
                let _ = s.set_read_timeout(Some(Duration::from_secs(60)));
                let reader = BufReader::new(s.try_clone().map_err(|e| e.to_string())?);
                conn = Some((s, reader));
            }
            let (s, reader) = conn.as_mut().expect("connected");
            let t = Instant::now();
            let answer = s
                .write_all(head.as_bytes())
                .and_then(|()| s.write_all(body.as_bytes()))
                .and_then(|()| read_answer(reader));
            let status = match answer {
                Ok(status) => status,
                Err(_) => {
                    conn = None;
                    continue;
                }
            };
            match status {
                200 => {
                    r.latencies.push(t.elapsed().as_secs_f64());
                    r.acked += INGEST_BATCH as u64;
                    r.bytes += body.len() as u64;
                    break;
                }
                503 => {
                    r.busy += 1;
                    thread::sleep(Duration::from_millis(50));
                }
                other => return Err(format!("poster {p}: the shipper answered {other}")),
            }
        }
    }
    Ok(r)
}

/// Reads one HTTP/1.1 answer (Content-Length framed); returns its status.
fn read_answer(reader: &mut BufReader<TcpStream>) -> std::io::Result<u16> {
    let bad = |m: &str| std::io::Error::other(m.to_string());
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let status = line
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| bad("no status line"))?;
    let mut length = 0usize;
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Err(bad("closed in the head"));
        }
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                length = v.trim().parse().map_err(|_| bad("bad Content-Length"))?;
            }
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    Ok(status)
}

/// The bench sink (Blob dialect, keeps no data); it exits when the
/// returned pipe closes.
fn start_sink(bin: &Path, dir: &Path) -> Result<(u16, ProcessGroup, std::io::PipeWriter)> {
    let (reader, writer) = std::io::pipe()?;
    let out = dir.join("sink.out");
    let mut cmd = Command::new(bin);
    cmd.args(["--port", "0"])
        .stdin(Stdio::from(reader))
        .stdout(File::create(&out)?)
        .stderr(Stdio::inherit());
    let mut process = ProcessGroup::spawn(&mut cmd, "sink")?;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = fs::read_to_string(&out).unwrap_or_default();
        if let Some(port) = text
            .lines()
            .find_map(|l| l.strip_prefix("LISTENING "))
            .and_then(|p| p.trim().parse().ok())
        {
            return Ok((port, process, writer));
        }
        if let Some(status) = process.try_wait()? {
            return Err(format!("the sink exited at start ({status})").into());
        }
        if Instant::now() > deadline {
            return Err("the sink did not listen within 20 s".into());
        }
        thread::sleep(Duration::from_millis(20));
    }
}

// --- small helpers ------------------------------------------------------

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind(("127.0.0.1", 0))?.local_addr()?.port())
}

/// User + system CPU seconds of process `pid` so far (`/proc/<pid>/stat`,
/// 100 ticks a second, as Linux reports them to user space).
fn proc_cpu_s(pid: u32) -> Option<f64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let mut fields = stat[stat.rfind(')')? + 1..].split_whitespace();
    let utime: f64 = fields.nth(11)?.parse().ok()?;
    let stime: f64 = fields.next()?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

/// The number after `"key": ` in our own flat JSON lines (`null` is
/// `None`, `true`/`false` are 1/0).
fn json_num(text: &str, key: &str) -> Option<f64> {
    let pat = format!("\"{key}\": ");
    let rest = &text[text.find(&pat)? + pat.len()..];
    let v = rest[..rest.find([',', '}']).unwrap_or(rest.len())].trim();
    match v {
        "true" => Some(1.0),
        "false" => Some(0.0),
        _ => v.parse().ok(),
    }
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.retain(|x| x.is_finite());
    if xs.is_empty() {
        return f64::NAN;
    }
    xs.sort_by(f64::total_cmp);
    let m = xs.len() / 2;
    if xs.len() % 2 == 1 {
        xs[m]
    } else {
        (xs[m - 1] + xs[m]) / 2.0
    }
}

fn opt(x: f64, digits: usize) -> String {
    if x.is_finite() {
        format!("{x:.digits$}")
    } else {
        "—".into()
    }
}

fn fmt_num(x: f64) -> String {
    if !x.is_finite() {
        "nan".into()
    } else if x.abs() >= 100.0 {
        format!("{x:.0}")
    } else {
        format!("{x:.3}")
    }
}
