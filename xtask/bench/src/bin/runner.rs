//! `runner`: runs every benchmark as separate processes, interleaved and
//! repeated, and reports medians and ratios of medians: a markdown table,
//! one `BENCH <name> <value> <unit>` line per figure and one
//! `RATIO <name> <value>` line per comparison (the name says which way:
//! `x_vs_y` is x divided by y). Raw results go to `--out` as JSON.
//!
//! `cargo xtask bench [--quick]` builds it, starts Azurite and a venv for the
//! Python peer, and calls it; by hand:
//! `runner [--quick] [--soak] --out DIR [--azurite URL] [--python PATH --peer PATH]
//! [--readers-python PATH --formats-query PATH]
//! [--only sign,storage,e2e,verify,saturate,hotpath,formats,soak] [--soak-seconds S]`.

use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use adls_bench::{arg, median, parse_args, rss_kib};
use serde_json::{json, Value};

#[path = "runner/formats.rs"]
mod formats;

type Res<T> = Result<T, String>;

/// How much of everything: quick fits in a few minutes, full takes longer.
struct Plan {
    quick: bool,
    storage_rounds: usize,
    storage_requests: usize,
    e2e_rounds: usize,
    e2e_records: u64,
    verify_rounds: usize,
    verify_records: u64,
    slow_budget_s: f64,
    saturate_rounds: usize,
    saturate_s: f64,
    hotpath_rounds: usize,
    hotpath_s: f64,
    hotpath_rate: f64,
    soak_s: f64,
    soak_rate: f64,
    formats_rounds: usize,
    formats_records: u64,
}

impl Plan {
    fn new(quick: bool) -> Plan {
        if quick {
            Plan {
                quick,
                storage_rounds: 3,
                storage_requests: 20_000,
                e2e_rounds: 1,
                e2e_records: 100_000,
                verify_rounds: 2,
                verify_records: 100_000,
                slow_budget_s: 10.0,
                saturate_rounds: 3,
                saturate_s: 4.0,
                hotpath_rounds: 1,
                hotpath_s: 4.0,
                hotpath_rate: 20_000.0,
                soak_s: 600.0,
                soak_rate: 5_000.0,
                formats_rounds: 1,
                formats_records: 100_000,
            }
        } else {
            Plan {
                quick,
                storage_rounds: 5,
                storage_requests: 20_000,
                e2e_rounds: 3,
                e2e_records: 100_000,
                verify_rounds: 7,
                // 200 000 grew in-memory Azurite to 6 GB and stalled it in the last round
                verify_records: 100_000,
                slow_budget_s: 15.0,
                saturate_rounds: 3,
                saturate_s: 10.0,
                hotpath_rounds: 3,
                hotpath_s: 10.0,
                hotpath_rate: 20_000.0,
                soak_s: 600.0,
                soak_rate: 5_000.0,
                formats_rounds: 3,
                // one day of a busy gateway: ~12 requests/s
                formats_records: 1_000_000,
            }
        }
    }
}

/// A figure: `BENCH name value unit`.
struct Figure {
    section: &'static str,
    name: String,
    value: f64,
    unit: &'static str,
    note: String,
}

/// A comparison: `RATIO name value`, with its target if it has one.
struct Ratio {
    name: String,
    value: f64,
    target: Option<(&'static str, f64)>,
}

impl Ratio {
    fn met(&self) -> Option<bool> {
        self.target.map(|(op, t)| match op {
            "<=" => self.value <= t,
            ">=" => self.value >= t,
            "<" => self.value < t,
            _ => self.value > t,
        })
    }
}

#[derive(Default)]
struct Report {
    figures: Vec<Figure>,
    ratios: Vec<Ratio>,
    targets: Vec<(String, String, Option<bool>)>,
    raw: BTreeMap<&'static str, Vec<Value>>,
    notes: Vec<String>,
}

impl Report {
    fn figure(
        &mut self,
        section: &'static str,
        name: impl Into<String>,
        value: Option<f64>,
        unit: &'static str,
        note: impl Into<String>,
    ) {
        let name = name.into();
        match value {
            Some(value) => self.figures.push(Figure {
                section,
                name,
                value,
                unit,
                note: note.into(),
            }),
            None => self
                .notes
                .push(format!("{name}: no value (see the raw results)")),
        }
    }

    fn ratio(
        &mut self,
        name: impl Into<String>,
        num: Option<f64>,
        den: Option<f64>,
        target: Option<(&'static str, f64)>,
    ) {
        let name = name.into();
        match (num, den) {
            (Some(n), Some(d)) if d != 0.0 => self.ratios.push(Ratio {
                name,
                value: n / d,
                target,
            }),
            _ => self
                .notes
                .push(format!("{name}: not computed (missing figure)")),
        }
    }

    fn target(&mut self, what: impl Into<String>, result: impl Into<String>, met: Option<bool>) {
        self.targets.push((what.into(), result.into(), met));
    }

    fn get(&self, name: &str) -> Option<f64> {
        self.figures
            .iter()
            .find(|f| f.name == name)
            .map(|f| f.value)
    }
}

fn main() {
    let args = parse_args(std::env::args().skip(1));
    let quick = args.contains_key("quick");
    let mut plan = Plan::new(quick);
    plan.soak_s = arg(&args, "soak-seconds", plan.soak_s);
    let bin_dir = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .unwrap_or_default();
    let out: PathBuf = arg(&args, "out", PathBuf::from("target/bench"));
    let azurite: Option<String> = args.get("azurite").cloned();
    let python: Option<String> = args.get("python").cloned();
    let peer: Option<String> = args.get("peer").cloned();
    let readers_python: Option<String> = args.get("readers-python").cloned();
    let formats_query: Option<String> = args.get("formats-query").cloned();
    let all = "sign,storage,e2e,verify,saturate,hotpath,formats";
    let mut only: String = arg(&args, "only", all.to_string());
    if (!quick || args.contains_key("soak")) && !args.contains_key("only") {
        only.push_str(",soak");
    }
    // Azurite's sections run last, whatever order they are asked in: it
    // keeps their blobs in memory, and after them node spent minutes of CPU
    // on that heap while later sections were timed (the full run of
    // 2026-11-30: 3 min of CPU in the 7 min of the formats section).
    const ORDER: [&str; 8] = [
        "sign", "storage", "saturate", "hotpath", "soak", "formats", "e2e", "verify",
    ];
    let asked: Vec<&str> = only.split(',').map(str::trim).collect();
    let sections: Vec<&str> = ORDER
        .iter()
        .copied()
        .filter(|s| asked.contains(s))
        .chain(asked.iter().copied().filter(|s| !ORDER.contains(s)))
        .collect();
    if let Err(e) = std::fs::create_dir_all(&out) {
        eprintln!("runner: creating {}: {e}", out.display());
        std::process::exit(1);
    }
    let started = Instant::now();
    let started_at = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut report = Report::default();
    let ctx = Ctx {
        bin_dir,
        out: out.clone(),
    };
    for section in &sections {
        let t = Instant::now();
        eprintln!("== {section} ==");
        let r = match *section {
            "sign" => sign(&ctx, &plan, &mut report),
            "storage" => storage(&ctx, &plan, &mut report),
            "e2e" => match &azurite {
                Some(url) => e2e(
                    &ctx,
                    &plan,
                    url,
                    python.as_deref().zip(peer.as_deref()),
                    &mut report,
                ),
                None => Err("no --azurite URL: skipped".into()),
            },
            "verify" => verify(&ctx, &plan, azurite.as_deref(), &mut report),
            "saturate" => saturate(&ctx, &plan, &mut report),
            "hotpath" => hotpath(&ctx, &plan, &mut report),
            "soak" => soak(&ctx, &plan, &mut report),
            "formats" => formats::formats(
                &ctx,
                &plan,
                readers_python.as_deref().zip(formats_query.as_deref()),
                &mut report,
            ),
            other => Err(format!("unknown section `{other}`")),
        };
        if let Err(e) = r {
            eprintln!("runner: {section}: {e}");
            report.notes.push(format!("{section}: {e}"));
        }
        eprintln!("== {section} took {:.1} s ==", t.elapsed().as_secs_f64());
    }
    let mode = if quick { "quick" } else { "full" };
    let machine = machine();
    let markdown = markdown(&report, mode, &machine, started.elapsed());
    println!("{markdown}");
    for f in &report.figures {
        println!("BENCH {} {} {}", f.name, fmt(f.value), f.unit);
    }
    for r in &report.ratios {
        println!("RATIO {} {}", r.name, fmt(r.value));
    }
    let doc = json!({
        "mode": mode,
        "started_unix": started_at,
        "elapsed_s": started.elapsed().as_secs_f64(),
        "machine": machine,
        "sections": sections,
        "bench": report.figures.iter().map(|f| json!({"section": f.section, "name": f.name, "value": f.value, "unit": f.unit, "note": f.note})).collect::<Vec<_>>(),
        "ratios": report.ratios.iter().map(|r| json!({"name": r.name, "value": r.value, "target": r.target.map(|(op, t)| format!("{op} {t}")), "met": r.met()})).collect::<Vec<_>>(),
        "targets": report.targets.iter().map(|(w, r, m)| json!({"what": w, "result": r, "met": m})).collect::<Vec<_>>(),
        "notes": report.notes,
        "runs": report.raw,
    });
    let name = format!("{started_at}-{mode}");
    let text = serde_json::to_string_pretty(&doc).unwrap_or_default();
    for file in [format!("{name}.json"), format!("latest-{mode}.json")] {
        if let Err(e) = std::fs::write(out.join(&file), &text) {
            eprintln!("runner: writing {file}: {e}");
        }
    }
    let _ = std::fs::write(out.join(format!("latest-{mode}.md")), &markdown);
    eprintln!(
        "raw results: {}",
        out.join(format!("{name}.json")).display()
    );
}

fn fmt(v: f64) -> String {
    if v == 0.0 {
        "0".into()
    } else if v.abs() >= 1000.0 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else if v.abs() >= 0.1 {
        format!("{v:.3}")
    } else {
        format!("{v:.4}")
    }
}

fn machine() -> Value {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_default();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    let rustc = Command::new(std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into()))
        .arg("--version")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    // which code was measured (read-only git queries)
    let git = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let commit = git(&["rev-parse", "--short", "HEAD"]).unwrap_or_default();
    let dirty = git(&["status", "--porcelain", "--", "crates"]).is_some_and(|s| !s.is_empty());
    json!({
        "commit": if dirty { format!("{commit} (library crates modified)") } else { commit },
        "nproc": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "cpu": cpu,
        "kernel": kernel,
        "rustc": rustc,
    })
}

fn markdown(r: &Report, mode: &str, machine: &Value, took: Duration) -> String {
    let mut s = String::new();
    s.push_str(&format!(
        "### `cargo xtask bench{}` ({} run, {:.0} s, commit {})\n\nMachine: {} × {}, kernel {}, {}.\n\n",
        if mode == "quick" { " --quick" } else { "" },
        mode,
        took.as_secs_f64(),
        machine["commit"].as_str().unwrap_or("?"),
        machine["nproc"],
        machine["cpu"].as_str().unwrap_or("?"),
        machine["kernel"].as_str().unwrap_or("?"),
        machine["rustc"].as_str().unwrap_or("?"),
    ));
    s.push_str("| section | figure | median | unit | what |\n|---|---|---:|---|---|\n");
    for f in &r.figures {
        s.push_str(&format!(
            "| {} | `{}` | {} | {} | {} |\n",
            f.section,
            f.name,
            fmt(f.value),
            f.unit,
            f.note
        ));
    }
    s.push_str("\n| ratio (of medians) | value | target | met |\n|---|---:|---|---|\n");
    for x in &r.ratios {
        let (t, m) = match (x.target, x.met()) {
            (Some((op, t)), Some(m)) => {
                (format!("{op} {}", fmt(t)), if m { "yes" } else { "**no**" })
            }
            _ => ("".into(), ""),
        };
        s.push_str(&format!(
            "| `{}` | {} | {} | {} |\n",
            x.name,
            fmt(x.value),
            t,
            m
        ));
    }
    if !r.targets.is_empty() {
        s.push_str("\n| target | result | met |\n|---|---|---|\n");
        for (w, res, m) in &r.targets {
            let m = match m {
                Some(true) => "yes",
                Some(false) => "**no**",
                None => "n/a",
            };
            s.push_str(&format!("| {w} | {res} | {m} |\n"));
        }
    }
    if !r.notes.is_empty() {
        s.push_str("\nNotes:\n");
        for n in &r.notes {
            s.push_str(&format!("- {n}\n"));
        }
    }
    s
}

// ---------------------------------------------------------------------------
// Child processes

struct Ctx {
    bin_dir: PathBuf,
    out: PathBuf,
}

impl Ctx {
    fn bin(&self, name: &str) -> Command {
        Command::new(self.bin_dir.join(name))
    }
}

/// Runs `cmd` to completion; returns its `RESULT {json}` line.
fn run_child(cmd: &mut Command) -> Res<Value> {
    let out = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| format!("starting {cmd:?}: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let result = result_line(&stdout);
    match (out.status.success(), result) {
        (true, Some(v)) => Ok(v),
        _ => Err(format!(
            "{cmd:?} failed ({}):\n{}{}",
            out.status,
            stdout.trim_end(),
            String::from_utf8_lossy(&out.stderr).trim_end()
        )),
    }
}

/// A child's `RESULT {json}` line, parsed.
fn result_line(stdout: &str) -> Option<Value> {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("RESULT "))
        .and_then(|j| serde_json::from_str(j).ok())
}

/// The sink in a process of its own; stopped (stdin closed, then killed) on drop.
struct Sink {
    child: Child,
    stdin: Option<ChildStdin>,
    port: u16,
}

impl Sink {
    fn start(ctx: &Ctx) -> Res<Sink> {
        Sink::start_with(ctx, &[])
    }

    /// The sink with extra flags (`--keep-data`, `--no-md5`).
    fn start_with(ctx: &Ctx, flags: &[&str]) -> Res<Sink> {
        let mut child = ctx
            .bin("sink")
            .args(["--threads", "2"])
            .args(flags)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("starting the sink: {e}"))?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().ok_or("sink stdout")?;
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .map_err(|e| format!("reading the sink's port: {e}"))?;
        let port = line
            .trim()
            .strip_prefix("LISTENING ")
            .and_then(|p| p.parse().ok())
            .ok_or_else(|| {
                format!(
                    "the sink said `{}`, expected `LISTENING <port>`",
                    line.trim()
                )
            })?;
        Ok(Sink { child, stdin, port })
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn account_url(&self) -> String {
        format!("{}/{}", self.endpoint(), adls_bench::ACCOUNT)
    }

    /// CPU seconds the sink has used (utime + stime from `/proc/<pid>/stat`).
    fn cpu_s(&self) -> Option<f64> {
        proc_cpu_s(self.child.id())
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        drop(self.stdin.take());
        for _ in 0..50 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// utime + stime of `pid`, in seconds (clock ticks of 10 ms).
fn proc_cpu_s(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // fields 14 and 15 of stat(5); `rest` starts at field 3
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Some(ticks / if hz > 0.0 { hz } else { 100.0 })
}

fn num(v: &Value, key: &str) -> Option<f64> {
    v.pointer(key).and_then(Value::as_f64)
}

/// The median of `key` over the runs matching `filter`.
fn med(runs: &[Value], filter: impl Fn(&Value) -> bool, key: &str) -> Option<f64> {
    let vals: Vec<f64> = runs
        .iter()
        .filter(|r| filter(r))
        .filter_map(|r| num(r, key))
        .collect();
    median(&vals)
}

// ---------------------------------------------------------------------------
// 2. Signing

fn sign(ctx: &Ctx, plan: &Plan, report: &mut Report) -> Res<()> {
    let home = ctx.out.join("criterion");
    let mut cmd = ctx.bin("sign_bench");
    cmd.args(["--bench", "--noplot"])
        .env("CRITERION_HOME", &home);
    if plan.quick {
        cmd.args(["--warm-up-time", "1", "--measurement-time", "2"]);
    }
    // criterion's report goes to our stderr: stdout is the table and the BENCH lines
    let out = cmd
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("starting sign_bench: {e}"))?;
    eprint!("{}", String::from_utf8_lossy(&out.stdout));
    if !out.status.success() {
        return Err(format!("sign_bench failed ({})", out.status));
    }
    let estimate = |name: &str| -> Option<f64> {
        let p = home
            .join("shared_key")
            .join(name)
            .join("new")
            .join("estimates.json");
        let v: Value = serde_json::from_str(&std::fs::read_to_string(p).ok()?).ok()?;
        num(&v, "/median/point_estimate")
    };
    let mut raw = json!({});
    for (name, note) in [
        ("authorization", "whole Shared Key `Authorization` value of a Put Block (string-to-sign + HMAC + base64)"),
        ("string_to_sign", "string-to-sign construction alone"),
        ("hmac_sha256", "bare HMAC-SHA256 of the same string-to-sign, keyed per call (the floor)"),
        ("hmac_sha256_prekeyed", "the same HMAC with the key schedule computed once"),
    ] {
        let v = estimate(name);
        raw[name] = json!(v);
        report.figure("signing", format!("sign_{name}_ns"), v, "ns", note);
    }
    report.raw.entry("sign").or_default().push(raw);
    let auth = report.get("sign_authorization_ns");
    report.ratio(
        "sign_authorization_vs_hmac_floor",
        auth,
        report.get("sign_hmac_sha256_ns"),
        None,
    );
    Ok(())
}

// ---------------------------------------------------------------------------
// 1. Storage client cost

/// The clients compared, and `floor`: no client, the request's bytes on a
/// socket (what any of them pays per request on Tokio; see `storage_client`).
const IMPLS: [&str; 4] = ["adls", "object_store", "opendal", "floor"];

fn storage(ctx: &Ctx, plan: &Plan, report: &mut Report) -> Res<()> {
    let mut runs = Vec::new();
    for round in 0..plan.storage_rounds {
        let sink = Sink::start(ctx)?;
        for conc in [1usize, 32] {
            for k in 0..IMPLS.len() {
                let imp = IMPLS[(k + round) % IMPLS.len()];
                let cpu_sink0 = sink.cpu_s();
                let mut r = run_child(ctx.bin("storage_client").args([
                    "--impl",
                    imp,
                    "--endpoint",
                    &sink.endpoint(),
                    "--requests",
                    &plan.storage_requests.to_string(),
                    "--concurrency",
                    &conc.to_string(),
                    "--prefix",
                    &format!("r{round}-c{conc}-{imp}"),
                ]))?;
                if let (Some(a), Some(b)) = (cpu_sink0, sink.cpu_s()) {
                    r["sink_cpu_s"] = json!(b - a);
                }
                r["round"] = json!(round);
                eprintln!(
                    "  round {round} c={conc:<2} {imp:<12} {:>8.0} req/s {:>6.1} µs CPU/req (errors {})",
                    num(&r, "/requests_per_s").unwrap_or(0.0),
                    num(&r, "/cpu_us_per_request").unwrap_or(0.0),
                    r["errors"]
                );
                if r["errors"].as_u64() != Some(0) {
                    return Err(format!("{imp} had errors: {}", r["first_error"]));
                }
                runs.push(r);
            }
        }
    }
    for conc in [1u64, 32] {
        for imp in IMPLS {
            let f = |r: &Value| r["impl"] == imp && r["concurrency"].as_u64() == Some(conc);
            report.figure(
                "storage",
                format!("storage_{imp}_c{conc}_req_per_s"),
                med(&runs, f, "/requests_per_s"),
                "req/s",
                if imp == "floor" {
                    format!(
                        "floor: {} Put Blob requests of 1 KiB as prebuilt bytes on a Tokio socket (no client), concurrency {conc}, into the sink",
                        plan.storage_requests
                    )
                } else {
                    format!(
                        "{imp}: {} signed 1 KiB uploads, concurrency {conc}, into the sink",
                        plan.storage_requests
                    )
                },
            );
            report.figure(
                "storage",
                format!("storage_{imp}_c{conc}_cpu_us_per_req"),
                med(&runs, f, "/cpu_us_per_request"),
                "µs",
                format!("{imp}: client process CPU (user+sys) per request, concurrency {conc}"),
            );
        }
        for peer in ["object_store", "opendal"] {
            let ours = report.get(&format!("storage_adls_c{conc}_cpu_us_per_req"));
            let theirs = report.get(&format!("storage_{peer}_c{conc}_cpu_us_per_req"));
            report.ratio(
                format!("client_cpu_per_req_vs_{peer}_c{conc}"),
                ours,
                theirs,
                Some(("<=", 0.5)),
            );
            // what each client adds to the floor every HTTP/1 client on
            // Tokio pays (system calls, wake-ups, context switches)
            let floor = report.get(&format!("storage_floor_c{conc}_cpu_us_per_req"));
            let above = |v: Option<f64>| v.zip(floor).map(|(v, f)| v - f);
            report.ratio(
                format!("client_cpu_per_req_above_floor_vs_{peer}_c{conc}"),
                above(ours),
                above(theirs),
                None,
            );
            let ours = report.get(&format!("storage_adls_c{conc}_req_per_s"));
            let theirs = report.get(&format!("storage_{peer}_c{conc}_req_per_s"));
            report.ratio(
                format!("client_req_per_s_vs_{peer}_c{conc}"),
                ours,
                theirs,
                None,
            );
        }
    }
    report.raw.insert("storage", runs);
    storage_instructions(ctx, report)
}

/// Requests of the two instruction-count runs; their difference is what is
/// counted, so start-up, the warm-up and the exit cancel out.
const COUNTED_REQUESTS: [usize; 2] = [300, 1_300];

/// Each client's user-space instructions per request at concurrency 1,
/// counted by callgrind: the same on a calm machine and a busy one, unlike
/// the CPU times above, so a change to the client can be judged in one run.
/// It leaves the kernel out (system calls, wake-ups: the floor is mostly
/// kernel time), and valgrind's CPU has no SHA extensions, so HMAC-SHA256
/// counts for more here than on the machine (all three clients sign).
fn storage_instructions(ctx: &Ctx, report: &mut Report) -> Res<()> {
    if Command::new("valgrind")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| !s.success())
        .unwrap_or(true)
    {
        eprintln!("  valgrind not found: instructions per request NOT measured");
        return Ok(());
    }
    let sink = Sink::start(ctx)?;
    let mut raw = Vec::new();
    for imp in IMPLS {
        let mut counts = Vec::new();
        for n in COUNTED_REQUESTS {
            let out = Command::new("valgrind")
                .args(["--tool=callgrind", "--callgrind-out-file=/dev/null"])
                .arg(ctx.bin_dir.join("storage_client"))
                .args(["--impl", imp, "--endpoint", &sink.endpoint()])
                .args(["--requests", &n.to_string(), "--warmup", "100"])
                .args(["--concurrency", "1", "--prefix", &format!("ir-{imp}-{n}")])
                .stdin(Stdio::null())
                .output()
                .map_err(|e| format!("starting valgrind: {e}"))?;
            let stderr = String::from_utf8_lossy(&out.stderr);
            let count = stderr
                .lines()
                .find_map(|l| l.split("Collected :").nth(1))
                .and_then(|v| v.trim().parse::<u64>().ok());
            let ok = result_line(&String::from_utf8_lossy(&out.stdout))
                .is_some_and(|r| r["errors"].as_u64() == Some(0));
            match count {
                Some(c) if out.status.success() && ok => counts.push(c),
                _ => {
                    return Err(format!(
                        "callgrind run of {imp} ({n} requests) failed ({}): {}",
                        out.status,
                        stderr.trim_end()
                    ))
                }
            }
        }
        let per_req = (counts[1].saturating_sub(counts[0])) as f64
            / (COUNTED_REQUESTS[1] - COUNTED_REQUESTS[0]) as f64;
        eprintln!("  {imp:<12} {per_req:>9.0} instructions/req (callgrind, c=1)");
        raw.push(json!({"impl": imp, "requests": COUNTED_REQUESTS, "instructions": counts}));
        report.figure(
            "storage",
            format!("storage_{imp}_c1_instructions_per_req"),
            Some(per_req),
            "instr",
            format!("{imp}: user-space instructions per request at concurrency 1 (callgrind; difference of a {}- and a {}-request run)", COUNTED_REQUESTS[0], COUNTED_REQUESTS[1]),
        );
    }
    report.raw.insert("storage_instructions", raw);
    let floor = report.get("storage_floor_c1_instructions_per_req");
    for peer in ["object_store", "opendal"] {
        let ours = report.get("storage_adls_c1_instructions_per_req");
        let theirs = report.get(&format!("storage_{peer}_c1_instructions_per_req"));
        report.ratio(
            format!("client_instructions_per_req_vs_{peer}_c1"),
            ours,
            theirs,
            None,
        );
        let above = |v: Option<f64>| v.zip(floor).map(|(v, f)| v - f);
        report.ratio(
            format!("client_instructions_per_req_above_floor_vs_{peer}_c1"),
            above(ours),
            above(theirs),
            None,
        );
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// 3. Callback end to end into Azurite

fn e2e(
    ctx: &Ctx,
    plan: &Plan,
    azurite: &str,
    python: Option<(&str, &str)>,
    report: &mut Report,
) -> Res<()> {
    let mut variants = vec!["per-record", "batch", "rolling"];
    if python.is_some() {
        variants.push("python-sdk");
    } else {
        report
            .notes
            .push("e2e: no Python peer (no --python/--peer)".into());
    }
    let mut runs = Vec::new();
    for round in 0..plan.e2e_rounds {
        for k in 0..variants.len() {
            let v = variants[(k + round) % variants.len()];
            let result = if v == "python-sdk" {
                let (py, script) = python.ok_or("python")?;
                run_child(Command::new(py).arg(script).args([
                    "--endpoint",
                    azurite,
                    "--budget-s",
                    &plan.slow_budget_s.to_string(),
                ]))
            } else {
                let records = if v == "per-record" {
                    8_000
                } else {
                    plan.e2e_records
                };
                run_child(ctx.bin("callback").args([
                    "e2e",
                    "--endpoint",
                    azurite,
                    "--layout",
                    v,
                    "--records",
                    &records.to_string(),
                    "--budget-s",
                    &plan.slow_budget_s.to_string(),
                ]))
            };
            // one variant failing leaves the others' figures standing
            let mut r = match result {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("  round {round} {v}: {e}");
                    report
                        .notes
                        .push(format!("e2e {v} (round {round}) failed: {e}"));
                    continue;
                }
            };
            r["variant"] = json!(v);
            r["round"] = json!(round);
            eprintln!(
                "  round {round} {v:<11} {:>9.0} records/s {:>8.4} requests/record ({} records in {:.1} s)",
                num(&r, "/records_per_s").unwrap_or(0.0),
                num(&r, "/requests_per_record").unwrap_or(0.0),
                r["written"],
                num(&r, "/elapsed_s").unwrap_or(0.0)
            );
            runs.push(r);
        }
    }
    for v in &variants {
        let f = |r: &Value| r["variant"] == *v;
        let key = v.replace('-', "_");
        let what = match *v {
            "per-record" => {
                "LayoutMode::PerRecord (one file per record, the original call pattern)"
            }
            "batch" => "default batching (LayoutMode::PerBatch)",
            "rolling" => "LayoutMode::Rolling (append + flush per batch to one file)",
            _ => "azure-storage-blob (PyPI), one upload_blob per record, one reused client",
        };
        report.figure(
            "azurite",
            format!("e2e_{key}_records_per_s"),
            med(&runs, f, "/records_per_s"),
            "records/s",
            format!("{what}, into Azurite"),
        );
        report.figure(
            "azurite",
            format!("e2e_{key}_requests_per_record"),
            med(&runs, f, "/requests_per_record"),
            "req/record",
            what,
        );
    }
    let pr = report.get("e2e_per_record_records_per_s");
    let b = report.get("e2e_batch_records_per_s");
    let ro = report.get("e2e_rolling_records_per_s");
    let py = report.get("e2e_python_sdk_records_per_s");
    report.ratio(
        "e2e_records_per_s_batch_vs_per_record",
        b,
        pr,
        Some((">=", 100.0)),
    );
    report.ratio("e2e_records_per_s_rolling_vs_per_record", ro, pr, None);
    report.ratio("e2e_records_per_s_batch_vs_python_sdk", b, py, None);
    report.ratio("e2e_records_per_s_per_record_vs_python_sdk", pr, py, None);
    report.raw.insert("e2e", runs);
    Ok(())
}

// ---------------------------------------------------------------------------
// 3b. What verified writes cost, end to end

/// The variants of `verify`: (name, `callback e2e` flags, what).
const VERIFY_VARIANTS: [(&str, &[&str], &str); 5] = [
    (
        "verified",
        &[],
        "verified (the default): Content-MD5 on every block, the file's MD5 at the commit, one HEAD after it",
    ),
    (
        "unverified",
        &["--verify", "off"],
        "`unverified_for_benchmarks: true`: Content-MD5 on every block and the file's MD5 at the commit, no check after it",
    ),
    (
        "verified_nochecksum",
        &["--checksums", "none"],
        "verified with `checksums: none`: no Content-MD5 on blocks; the file's MD5 at the commit and the HEAD after it",
    ),
    (
        "verified_crc64",
        &["--checksums", "crc64"],
        "verified with `checksums: crc64`: x-ms-content-crc64 on every block instead of Content-MD5; the file's MD5 at the commit and the HEAD after it",
    ),
    (
        "bare",
        &["--verify", "off", "--checksums", "none"],
        "neither: no Content-MD5 on blocks, no check after the commit (the file's MD5 is still computed for the commit)",
    ),
];

/// Azurite 3.35 (strict mode) answers `x-ms-content-crc64` with `500
/// FeatureNotSupported`, which the logger retries for its whole window: the
/// CRC-64 variant runs into the sink only.
fn measured(target: &str, variant: &str) -> bool {
    !(target == "azurite" && variant == "verified_crc64")
}

/// The logger end to end (batch layout, the `e2e` scenario) verified vs not,
/// into Azurite and into the sink (which keeps each blob's MD5 and metadata,
/// so verification needs no read-back), plus, into a sink that keeps no MD5,
/// verified with a read-back. Interleaved: every round runs every variant
/// against every target, in an order that rotates.
fn verify(ctx: &Ctx, plan: &Plan, azurite: Option<&str>, report: &mut Report) -> Res<()> {
    let sink = Sink::start(ctx)?;
    let readback_sink = Sink::start_with(ctx, &["--no-md5"])?;
    let mut targets: Vec<(&str, String)> = Vec::new();
    match azurite {
        Some(url) => targets.push(("azurite", url.to_string())),
        None => report
            .notes
            .push("verify: no --azurite URL: into the sink only".into()),
    }
    targets.push(("sink", sink.account_url()));
    report.notes.push("verify: `checksums: crc64` into the sink only (Azurite 3.35 in strict mode answers `x-ms-content-crc64` with 500 FeatureNotSupported)".into());
    // (target, variant, endpoint, flags)
    let mut runs_plan: Vec<(&str, &str, String, Vec<&str>)> = Vec::new();
    for (t, url) in &targets {
        for (v, flags, _) in VERIFY_VARIANTS {
            if measured(t, v) {
                runs_plan.push((t, v, url.clone(), flags.to_vec()));
            }
        }
    }
    runs_plan.push((
        "sink",
        "verified_readback",
        readback_sink.account_url(),
        vec![],
    ));
    let mut runs = Vec::new();
    for round in 0..plan.verify_rounds {
        for k in 0..runs_plan.len() {
            let (t, v, url, flags) = &runs_plan[(k + round) % runs_plan.len()];
            let sink_pid = match (*t, *v) {
                ("sink", "verified_readback") => Some(readback_sink.child.id()),
                ("sink", _) => Some(sink.child.id()),
                _ => None,
            };
            let sink_cpu0 = sink_pid.and_then(proc_cpu_s);
            let result = run_child(
                ctx.bin("callback")
                    .args(["e2e", "--endpoint", url, "--layout", "batch", "--records"])
                    .arg(plan.verify_records.to_string())
                    .args(flags),
            );
            let mut r = match result {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("  round {round} {t} {v}: {e}");
                    report
                        .notes
                        .push(format!("verify {t} {v} (round {round}) failed: {e}"));
                    continue;
                }
            };
            r["target"] = json!(t);
            r["variant"] = json!(v);
            r["round"] = json!(round);
            if let (Some(a), Some(b)) = (sink_cpu0, sink_pid.and_then(proc_cpu_s)) {
                r["sink_cpu_s"] = json!(b - a);
            }
            eprintln!(
                "  round {round} {t:<7} {v:<19} {:>9.0} records/s {:>5.2} µs CPU/record {:>4.1} requests/batch ({} files)",
                num(&r, "/records_per_s").unwrap_or(0.0),
                num(&r, "/cpu_s").unwrap_or(0.0) * 1e6 / num(&r, "/written").unwrap_or(1.0),
                num(&r, "/requests_per_file").unwrap_or(0.0),
                r["files"],
            );
            runs.push(r);
        }
    }
    let mut variants: Vec<(&str, &str, &str)> = Vec::new();
    for (t, _) in &targets {
        for (v, _, what) in VERIFY_VARIANTS {
            if measured(t, v) {
                variants.push((t, v, what));
            }
        }
    }
    variants.push((
        "sink",
        "verified_readback",
        "verified, into a sink that keeps no MD5 (`--no-md5`): the HEAD finds none, so the batch is read back (GET with x-ms-range) and compared",
    ));
    for (t, v, what) in &variants {
        let f = |r: &Value| r["target"] == *t && r["variant"] == *v;
        let rps = med(&runs, f, "/records_per_s");
        report.figure(
            "verify",
            format!("verify_{v}_e2e_{t}_records_per_s"),
            rps,
            "records/s",
            format!(
                "{what}; {} records, batch layout, into {t}",
                plan.verify_records
            ),
        );
        let cpu: Vec<f64> = runs
            .iter()
            .filter(|r| f(r))
            .filter_map(|r| Some(num(r, "/cpu_s")? * 1e6 / num(r, "/written")?))
            .collect();
        report.figure(
            "verify",
            format!("verify_{v}_e2e_{t}_cpu_us_per_record"),
            median(&cpu),
            "µs",
            "logger process CPU (user+sys) per record, producers included",
        );
        report.figure(
            "verify",
            format!("verify_{v}_e2e_{t}_requests_per_batch"),
            med(&runs, f, "/requests_per_file"),
            "req/batch",
            "the logger's `metrics().requests` / `files`",
        );
    }
    // the share of the logger's CPU one MD5 pass over the written bytes takes
    let share: Vec<f64> = runs
        .iter()
        .filter_map(|r| Some(num(r, "/md5_pass_cpu_s")? / num(r, "/cpu_s")?))
        .collect();
    report.figure(
        "verify",
        "verify_md5_pass_share_of_cpu",
        median(&share),
        "fraction",
        "one MD5 pass over every byte written, as a share of the logger's CPU in a run (MD5 speed timed in the same process)",
    );
    report.figure(
        "verify",
        "verify_md5_mb_per_s",
        med(&runs, |_| true, "/md5_ns_per_byte").map(|ns| 1e3 / ns),
        "MB/s",
        "adls_rest::content_md5 on one core, 8 MiB of NDJSON",
    );
    for (t, _) in &targets {
        let g = |report: &Report, v: &str, k: &str| report.get(&format!("verify_{v}_e2e_{t}_{k}"));
        for (num_v, den_v, target) in [
            ("verified", "unverified", Some((">=", 0.95))),
            ("verified", "verified_nochecksum", None),
            ("verified", "bare", Some((">=", 0.95))),
            ("verified_crc64", "verified", None),
        ] {
            if !measured(t, num_v) {
                continue;
            }
            report.ratio(
                format!("{num_v}_vs_{den_v}_e2e_{t}"),
                g(report, num_v, "records_per_s"),
                g(report, den_v, "records_per_s"),
                target,
            );
            report.ratio(
                format!("{num_v}_vs_{den_v}_cpu_per_record_e2e_{t}"),
                g(report, num_v, "cpu_us_per_record"),
                g(report, den_v, "cpu_us_per_record"),
                None,
            );
        }
        if *t == "sink" {
            report.ratio(
                "verified_readback_vs_unverified_e2e_sink",
                g(report, "verified_readback", "records_per_s"),
                g(report, "unverified", "records_per_s"),
                None,
            );
        }
        let ratio = report
            .ratios
            .iter()
            .find(|r| r.name == format!("verified_vs_unverified_e2e_{t}"))
            .map(|r| r.value);
        report.target(
            format!("verification costs < 5 % of e2e records/s into {t}: the check after the commit (verified ÷ unverified ≥ 0.95)"),
            ratio
                .map(|v| format!("{} ({:+.1} %)", fmt(v), (v - 1.0) * 100.0))
                .unwrap_or_default(),
            ratio.map(|v| v >= 0.95),
        );
        let ratio = report
            .ratios
            .iter()
            .find(|r| r.name == format!("verified_vs_bare_e2e_{t}"))
            .map(|r| r.value);
        report.target(
            format!("verification costs < 5 % of e2e records/s into {t}: the check and the blocks' Content-MD5 (verified ÷ bare ≥ 0.95)"),
            ratio
                .map(|v| format!("{} ({:+.1} %)", fmt(v), (v - 1.0) * 100.0))
                .unwrap_or_default(),
            ratio.map(|v| v >= 0.95),
        );
    }
    report.raw.insert("verify", runs);
    Ok(())
}

// ---------------------------------------------------------------------------
// 4. Callback into the sink at saturation

fn saturate(ctx: &Ctx, plan: &Plan, report: &mut Report) -> Res<()> {
    let mut runs = Vec::new();
    for round in 0..plan.saturate_rounds {
        let sink = Sink::start(ctx)?;
        let c0 = sink.cpu_s();
        let mut r = run_child(ctx.bin("callback").args([
            "saturate",
            "--endpoint",
            &sink.account_url(),
            "--seconds",
            &plan.saturate_s.to_string(),
        ]))?;
        if let (Some(a), Some(b)) = (c0, sink.cpu_s()) {
            r["sink_cpu_s"] = json!(b - a);
        }
        r["round"] = json!(round);
        eprintln!(
            "  round {round} {:>9.0} records/s {:>6.1} MB/s {:>5.2} µs CPU/record (sink CPU {:.1} s)",
            num(&r, "/records_per_s").unwrap_or(0.0),
            num(&r, "/bytes_per_s").unwrap_or(0.0) / 1e6,
            num(&r, "/cpu_us_per_record").unwrap_or(0.0),
            num(&r, "/sink_cpu_s").unwrap_or(0.0)
        );
        runs.push(r);
    }
    let all = |_: &Value| true;
    let rps = med(&runs, all, "/records_per_s");
    report.figure("sink", "sink_callback_records_per_s", rps, "records/s", "llm-log-callback at saturation into the sink, 4 producer tasks (log_async), 2 cores shared with the sink");
    report.figure(
        "sink",
        "sink_callback_bytes_per_s",
        med(&runs, all, "/bytes_per_s"),
        "B/s",
        "NDJSON bytes written per second",
    );
    report.figure(
        "sink",
        "sink_callback_cpu_us_per_record",
        med(&runs, all, "/cpu_us_per_record"),
        "µs",
        "logger process CPU per record (includes the producers' record clone)",
    );
    report.figure(
        "sink",
        "sink_callback_cpu_us_per_record_without_clone",
        med(&runs, all, "/cpu_us_per_record_without_clone"),
        "µs",
        "the same less the clone, timed alone in the same process",
    );
    report.figure(
        "sink",
        "sink_callback_sink_cpu_s",
        med(&runs, all, "/sink_cpu_s"),
        "s",
        "CPU the sink process used during a run (same 2 cores)",
    );
    report.target(
        "callback into the sink ≥ 200 000 records/s",
        rps.map(|v| format!("{} records/s", fmt(v)))
            .unwrap_or_default(),
        rps.map(|v| v >= 200_000.0),
    );
    report.raw.insert("saturate", runs);
    Ok(())
}

// ---------------------------------------------------------------------------
// 5. Hot path

fn hotpath(ctx: &Ctx, plan: &Plan, report: &mut Report) -> Res<()> {
    let mut runs = Vec::new();
    for round in 0..plan.hotpath_rounds {
        let sink = Sink::start(ctx)?;
        let mut r = run_child(ctx.bin("callback").args([
            "hotpath",
            "--endpoint",
            &sink.account_url(),
            "--seconds",
            &plan.hotpath_s.to_string(),
            "--rate",
            &plan.hotpath_rate.to_string(),
        ]))?;
        r["round"] = json!(round);
        for (path, what) in [
            ("log", "log()"),
            ("log_json", "log_json()"),
            ("copy", "copy of the JSON text"),
            (
                "copy_kept",
                "copy of the JSON text, kept (Mutex<VecDeque> push)",
            ),
            ("floor", "hand-off floor (Mutex<VecDeque> push)"),
            ("otel", "opentelemetry_sdk emit()"),
            ("tracing_appender", "tracing_appender non_blocking write"),
        ] {
            eprintln!(
                "  round {round} {what}: p50 {} ns p99 {} ns p99.9 {} ns, {:.2} allocs/call",
                r[path]["p50_ns"],
                r[path]["p99_ns"],
                r[path]["p999_ns"],
                num(&r, &format!("/{path}/allocs_per_call")).unwrap_or(0.0),
            );
        }
        runs.push(r);
    }
    let all = |_: &Value| true;
    let rate = plan.hotpath_rate;
    for (path, what) in [
        ("log", "`Logger::log(LogRecord)`"),
        (
            "log_json",
            "`Logger::log_json(&str)` (pre-serialized input: one checking pass, the text kept)",
        ),
        (
            "copy",
            "reference for `log_json`: a copy of the same JSON text into a new `Vec<u8>`, dropped",
        ),
        (
            "copy_kept",
            "floor for `log_json`: the same copy moved into one `Mutex<VecDeque>` that another thread swaps out and frees every 5 ms (a copy that outlives the call)",
        ),
        (
            "floor",
            "floor for `log()`: the same record moved into one `Mutex<VecDeque>` that another thread swaps out every 5 ms (no bound, counters or serialization)",
        ),
        (
            "otel",
            "peer: `opentelemetry_sdk` 0.31 `Logger::emit` (same record as a map body, batch processor, discarding exporter)",
        ),
        (
            "tracing_appender",
            "peer: `tracing_appender::non_blocking` write of the same record's pre-formatted NDJSON line (into `io::sink()`)",
        ),
    ] {
        for (q, label) in [("p50", "p50"), ("p99", "p99"), ("p999", "p99.9")] {
            report.figure(
                "hot path",
                format!("hotpath_{path}_{q}_ns"),
                med(&runs, all, &format!("/{path}/{q}_ns")),
                "ns",
                format!("{what} latency {label}, 4 producer threads at {} records/s in all, uploads into the sink running", fmt(rate)),
            );
        }
        report.figure(
            "hot path",
            format!("hotpath_{path}_allocs_per_call"),
            med(&runs, all, &format!("/{path}/allocs_per_call")),
            "allocs",
            format!("{what}: heap allocations per call (counting allocator, caller's thread)"),
        );
        report.figure(
            "hot path",
            format!("hotpath_{path}_alloc_bytes_per_call"),
            med(&runs, all, &format!("/{path}/alloc_bytes_per_call")),
            "B",
            format!("{what}: bytes allocated per call"),
        );
    }
    report.figure(
        "hot path",
        "hotpath_record_clone_ns",
        med(&runs, all, "/record_clone_ns"),
        "ns",
        "cloning one LogRecord (paid by the saturation producers, not timed above)",
    );
    for (peer, name) in [("otel", "otel"), ("tracing_appender", "tracing_appender")] {
        for q in ["p50", "p99", "p999"] {
            report.ratio(
                format!("hotpath_log_{q}_vs_{name}"),
                report.get(&format!("hotpath_log_{q}_ns")),
                report.get(&format!("hotpath_{peer}_{q}_ns")),
                None,
            );
        }
    }
    let p50 = report.get("hotpath_log_p50_ns");
    report.target(
        "`log()` p50 ≤ 0.5 µs",
        p50.map(|v| format!("{} ns", fmt(v))).unwrap_or_default(),
        p50.map(|v| v <= 500.0),
    );
    let p99 = report.get("hotpath_log_p99_ns");
    report.target(
        "`log()` p99 ≤ 2 µs",
        p99.map(|v| format!("{} ns", fmt(v))).unwrap_or_default(),
        p99.map(|v| v <= 2000.0),
    );
    let allocs = report.get("hotpath_log_allocs_per_call");
    report.target(
        "`log()` makes no allocation on the caller's thread",
        allocs
            .map(|v| format!("{v:.4} allocs/call"))
            .unwrap_or_default(),
        allocs.map(|v| v < 0.01),
    );
    for q in ["p50", "p99"] {
        report.ratio(
            format!("hotpath_log_{q}_vs_floor"),
            report.get(&format!("hotpath_log_{q}_ns")),
            report.get(&format!("hotpath_floor_{q}_ns")),
            None,
        );
        report.ratio(
            format!("hotpath_log_json_{q}_vs_copy"),
            report.get(&format!("hotpath_log_json_{q}_ns")),
            report.get(&format!("hotpath_copy_{q}_ns")),
            Some(("<=", 2.0)),
        );
        report.ratio(
            format!("hotpath_log_json_{q}_vs_copy_kept"),
            report.get(&format!("hotpath_log_json_{q}_ns")),
            report.get(&format!("hotpath_copy_kept_{q}_ns")),
            None,
        );
    }
    let json_allocs = report.get("hotpath_log_json_allocs_per_call");
    report.target(
        "`log_json` makes ≤ 3 allocations per call",
        json_allocs
            .map(|v| format!("{v:.4} allocs/call"))
            .unwrap_or_default(),
        json_allocs.map(|v| v <= 3.0),
    );
    report.raw.insert("hotpath", runs);
    Ok(())
}

// ---------------------------------------------------------------------------
// 6. Soak

fn soak(ctx: &Ctx, plan: &Plan, report: &mut Report) -> Res<()> {
    let sink = Sink::start(ctx)?;
    let mut child = ctx
        .bin("callback")
        .args([
            "soak",
            "--endpoint",
            &sink.account_url(),
            "--seconds",
            &plan.soak_s.to_string(),
            "--rate",
            &plan.soak_rate.to_string(),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("starting the soak: {e}"))?;
    let pid = child.id();
    let t0 = Instant::now();
    let mut samples: Vec<(f64, u64)> = Vec::new();
    let every = Duration::from_secs(10);
    let mut next = t0;
    loop {
        if let Ok(Some(_)) = child.try_wait() {
            break;
        }
        if Instant::now() >= next {
            if let Some(kib) = rss_kib(pid) {
                let t = t0.elapsed().as_secs_f64();
                samples.push((t, kib));
                eprint!("\r  soak {t:>5.0} s  RSS {:>7} KiB  ", kib);
                let _ = std::io::stderr().flush();
            }
            next += every;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    eprintln!();
    let mut stdout = String::new();
    if let Some(mut o) = child.stdout.take() {
        use std::io::Read as _;
        let _ = o.read_to_string(&mut stdout);
    }
    let _ = child.wait();
    let mut result: Value = stdout
        .lines()
        .find_map(|l| l.strip_prefix("RESULT "))
        .and_then(|j| serde_json::from_str(j).ok())
        .ok_or("the soak process printed no result")?;
    let warm = 30.0;
    let after: Vec<u64> = samples
        .iter()
        .filter(|(t, _)| *t >= warm)
        .map(|(_, k)| *k)
        .collect();
    let start = after.first().copied();
    let end = after.last().copied();
    let max = after.iter().copied().max();
    let flat = match (start, max, after.iter().copied().min()) {
        (Some(s), Some(mx), Some(mn)) => {
            Some((mx as f64) <= s as f64 * 1.10 && (mn as f64) >= s as f64 * 0.90)
        }
        _ => None,
    };
    result["rss_samples"] = json!(samples);
    report.figure(
        "soak",
        "soak_rss_start_kib",
        start.map(|v| v as f64),
        "KiB",
        format!(
            "RSS after a {warm:.0} s warm-up, {} records/s for {} s into the sink",
            fmt(plan.soak_rate),
            fmt(plan.soak_s)
        ),
    );
    report.figure(
        "soak",
        "soak_rss_max_kib",
        max.map(|v| v as f64),
        "KiB",
        "largest RSS sample after the warm-up (every 10 s)",
    );
    report.figure(
        "soak",
        "soak_rss_end_kib",
        end.map(|v| v as f64),
        "KiB",
        "last RSS sample",
    );
    report.figure(
        "soak",
        "soak_written",
        num(&result, "/written"),
        "records",
        "records written during the soak",
    );
    report.figure(
        "soak",
        "soak_dropped",
        num(&result, "/dropped"),
        "records",
        "records dropped during the soak",
    );
    report.figure(
        "soak",
        "soak_log_p99_ns",
        num(&result, "/log/p99_ns"),
        "ns",
        "`log()` p99 during the soak (fresh records; the last 65 536 calls of each producer)",
    );
    report.target(
        "soak RSS flat within 10 % after warm-up",
        match (start, max, end) {
            (Some(s), Some(m), Some(e)) => format!("start {s} KiB, max {m} KiB, end {e} KiB"),
            _ => "no samples".into(),
        },
        flat,
    );
    report.raw.insert("soak", vec![result]);
    Ok(())
}
