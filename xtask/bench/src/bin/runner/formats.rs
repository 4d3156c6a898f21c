//! The `formats` section: for one day of gateway records (24 hourly
//! partitions), per output format, the bytes stored per record, the
//! logger's CPU per record (into the sink, so the server's cost stays out),
//! and the wall time polars takes for a typical query (cost and requests per
//! model per hour) over the files on local disk.

use std::process::Command;

use serde_json::{json, Value};

use super::{med, num, run_child, Ctx, Plan, Report, Res, Sink};

const FORMATS: [&str; 4] = ["ndjson", "ndjson.gz", "ndjson.zst", "parquet"];

pub(super) fn formats(
    ctx: &Ctx,
    plan: &Plan,
    polars: Option<(&str, &str)>,
    report: &mut Report,
) -> Res<()> {
    let n = plan.formats_records;
    let sink = Sink::start(ctx)?;
    let mut runs: Vec<Value> = Vec::new();
    for round in 0..plan.formats_rounds {
        for k in 0..FORMATS.len() {
            let f = FORMATS[(k + round) % FORMATS.len()];
            match run_child(ctx.bin("formats").args([
                "log",
                "--endpoint",
                &sink.endpoint(),
                "--format",
                f,
                "--records",
                &n.to_string(),
            ])) {
                Ok(r) => {
                    eprintln!(
                        "  round {round} {f:<10} {:>7.2} µs CPU/record ({} files, {:.1} s)",
                        num(&r, "/cpu_us_per_record").unwrap_or(0.0),
                        r["files"],
                        num(&r, "/elapsed_s").unwrap_or(0.0)
                    );
                    runs.push(r);
                }
                Err(e) => report
                    .notes
                    .push(format!("formats log {f} (round {round}) failed: {e}")),
            }
        }
    }
    drop(sink);
    let dir = ctx.out.join("formats-data");
    let files = run_child(
        ctx.bin("formats")
            .args(["files", "--records", &n.to_string(), "--dir"])
            .arg(&dir),
    )?;
    let mut queries: Vec<Value> = Vec::new();
    for f in FORMATS {
        let key = f.replace('.', "_");
        let cpu = med(&runs, |r| r["format"] == f, "/cpu_us_per_record");
        report.figure(
            "formats",
            format!("formats_{key}_logger_cpu_us_per_record"),
            cpu,
            "µs/record",
            format!("logger process CPU per record, {n} records into the sink, format {f}"),
        );
        let stats = &files["formats"][f];
        report.figure(
            "formats",
            format!("formats_{key}_bytes_per_record"),
            num(stats, "/bytes_per_record"),
            "B/record",
            format!(
                "bytes stored per record, {n} records over 24 hours, batches of 10 000, format {f}"
            ),
        );
        report.figure(
            "formats",
            format!("formats_{key}_encode_cpu_us_per_record"),
            num(stats, "/encode_cpu_us_per_record"),
            "µs/record",
            format!("Format::encode alone, per record, format {f}"),
        );
        if let Some((python, script)) = polars {
            let q = run_child(
                Command::new(python)
                    .arg(script)
                    .args(["--format", f, "--repeat", "3", "--dir"])
                    .arg(stats["dir"].as_str().unwrap_or_default()),
            );
            match q {
                Ok(q) if q["rows"] == json!(n) => {
                    eprintln!(
                        "  query {f:<10} {:>7.3} s (polars {})",
                        num(&q, "/seconds").unwrap_or(0.0),
                        q["polars"]
                    );
                    report.figure("formats", format!("formats_{key}_query_s"), num(&q, "/seconds"), "s",
                        format!("polars: cost and requests per model per hour over {n} records on local disk, format {f}"));
                    queries.push(q);
                }
                Ok(q) => report
                    .notes
                    .push(format!("formats query {f}: saw {} rows of {n}", q["rows"])),
                Err(e) => report.notes.push(format!("formats query {f} failed: {e}")),
            }
        } else {
            report
                .notes
                .push("formats: no polars (no --readers-python): query times not measured".into());
        }
    }
    for f in ["ndjson.gz", "ndjson.zst", "parquet"] {
        let key = f.replace('.', "_");
        let g = |what: &str| report.get(&format!("formats_{key}_{what}"));
        let base = |what: &str| report.get(&format!("formats_ndjson_{what}"));
        let (b, bb) = (g("bytes_per_record"), base("bytes_per_record"));
        let (c, cb) = (
            g("logger_cpu_us_per_record"),
            base("logger_cpu_us_per_record"),
        );
        report.ratio(format!("formats_{key}_vs_ndjson_bytes"), b, bb, None);
        report.ratio(format!("formats_{key}_vs_ndjson_logger_cpu"), c, cb, None);
    }
    for f in ["ndjson", "ndjson.gz", "ndjson.zst"] {
        let key = f.replace('.', "_");
        let q = report.get(&format!("formats_{key}_query_s"));
        let p = report.get("formats_parquet_query_s");
        report.ratio(format!("formats_{key}_vs_parquet_query_time"), q, p, None);
    }
    report
        .raw
        .entry("formats")
        .or_default()
        .push(json!({"log": runs, "files": files, "queries": queries}));
    Ok(())
}
