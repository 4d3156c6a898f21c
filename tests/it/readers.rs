//! Readers nobody here wrote read what the logger stores: polars over `az://`
//! (object_store inside), pyarrow on `adlfs` (Microsoft's Python SDK inside)
//! and DuckDB on the downloaded files, pinned in a venv by `cargo xtask
//! integration` (`xtask/readers/`). For each format and dialect the test logs
//! real LiteLLM records (the fixtures, varied), then checks that every
//! reader's row count, distinct ids, tokens and cost per model, failures per
//! error class and hive partitions equal what was logged: the expected values
//! come from the records, never from our own output.
//!
//! On the independent DFS emulator the readers get the files' paths instead
//! of a listing (it lists directories without a `Content-Type`, which
//! object_store refuses; see `../shared/azurite-dfs/README.md`).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use adls_rest::{Client, Dialect};
use adls_tests::{
    dfs_emulator_endpoint, emulator_client, required_env, unique_name, AZURITE_ACCOUNT,
    AZURITE_KEY, ENV_AZURITE_HTTP,
};
use llm_log_callback::{Config, Format, LayoutMode, Logger};
use serde_json::Value;

/// The venv's Python with the pinned readers (exported by `cargo xtask integration`).
const ENV_READERS_PYTHON: &str = "ADLS_TEST_READERS_PYTHON";
/// `xtask/readers/read.py`.
const ENV_READERS_SCRIPT: &str = "ADLS_TEST_READERS_SCRIPT";

const RECORDS: usize = 600;
const MODELS: [&str; 4] = [
    "gpt-4o",
    "gpt-4o-mini",
    "claude-3-5-sonnet",
    "text-embedding-3-small",
];

/// What a reader must report: computed from the logged records.
#[derive(Debug, Default, PartialEq)]
struct Expected {
    rows: u64,
    by_model: BTreeMap<String, (u64, i64, f64)>,
    failures: BTreeMap<String, u64>,
}

/// The LiteLLM fixtures (real records), varied into `RECORDS` records with
/// their own ids, four models, and token counts and costs that differ.
fn records(tag: &str) -> Vec<Value> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../crates/llm-log-callback/tests/fixtures/litellm");
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .expect("fixtures")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    paths.sort();
    let fixtures: Vec<Value> = paths
        .iter()
        .map(|p| serde_json::from_str(&std::fs::read_to_string(p).expect("read")).expect("json"))
        .collect();
    assert!(
        fixtures.len() >= 10,
        "fixtures missing in {}",
        dir.display()
    );
    (0..RECORDS)
        .map(|i| {
            let mut r = fixtures[i % fixtures.len()].clone();
            r["id"] = format!("{tag}-{i:06}").into();
            r["model"] = MODELS[i % MODELS.len()].into();
            r["total_tokens"] = ((i * 7) % 97).into();
            r["response_cost"] = ((i % 13) as f64 * 0.00025).into();
            r
        })
        .collect()
}

fn expected(records: &[Value]) -> Expected {
    let mut e = Expected::default();
    for r in records {
        e.rows += 1;
        let m = e
            .by_model
            .entry(r["model"].as_str().expect("model").to_string())
            .or_default();
        m.0 += 1;
        m.1 += r["total_tokens"].as_i64().expect("tokens");
        m.2 += r["response_cost"].as_f64().expect("cost");
        if r["status"] == "failure" {
            let class = r["error_information"]["error_class"]
                .as_str()
                .expect("a failure has an error class");
            *e.failures.entry(class.to_string()).or_default() += 1;
        }
    }
    assert!(
        e.failures.len() >= 2,
        "the fixtures hold failures of two classes"
    );
    e
}

/// Where the test writes, and how the readers reach it.
struct Server {
    client: Client,
    /// A connection string for the readers (Blob endpoint; the emulator
    /// serves Blob and DFS on one port).
    connection_string: String,
    /// Give the readers paths instead of a listing.
    paths_only: bool,
}

fn connection_string(endpoint: &str) -> String {
    format!(
        "DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};BlobEndpoint={endpoint};"
    )
}

fn azurite_blob() -> Server {
    let endpoint = required_env(ENV_AZURITE_HTTP);
    Server {
        client: emulator_client(&endpoint, Dialect::Blob),
        connection_string: connection_string(&endpoint),
        paths_only: false,
    }
}

fn emulator_dfs() -> Server {
    let endpoint = dfs_emulator_endpoint();
    Server {
        client: emulator_client(&endpoint, Dialect::Dfs),
        connection_string: connection_string(&endpoint),
        paths_only: true,
    }
}

/// Logs the records in `format` and `layout`, then has every reader read them.
async fn logged_then_read(server: Server, format: Format, layout: LayoutMode, tag: &str) {
    let fs_name = unique_name(tag);
    let prefix = "logs";
    let records = records(tag);
    let want = expected(&records);
    let logger = Logger::start(
        server.client.clone(),
        Config {
            filesystem: fs_name.clone(),
            prefix: prefix.into(),
            instance: "readers".into(),
            format,
            layout: layout.clone(),
            max_batch_records: 100,
            max_batch_age: Duration::from_millis(200),
            ..Config::default()
        },
    )
    .await
    .expect("start");
    for r in &records {
        logger.log_value(r.clone()).expect("accepted");
    }
    let report = logger.shutdown(Duration::from_secs(60)).await;
    assert!(report.complete, "{tag}: {:?}", report.metrics);
    assert_eq!(report.metrics.written, RECORDS as u64, "{tag}");

    // the files, and the hive partitions they sit in, from a listing of ours
    let fs = server.client.filesystem(&fs_name).expect("fs");
    let files = file_names(&fs).await;
    assert!(
        files.iter().all(|f| f.ends_with(&format!(".{format}"))),
        "{tag}: {files:?}"
    );
    let partitions: BTreeSet<String> = files.iter().map(|f| partition(f)).collect();
    match layout {
        LayoutMode::Rolling { .. } => assert!(
            files.len() <= 2,
            "{tag}: one rolling file per hour: {files:?}"
        ),
        _ => assert!(files.len() >= RECORDS / 100, "{tag}: {files:?}"),
    }

    let out = run_readers(&server, &fs_name, prefix, format, &files).await;
    for reader in ["polars", "pyarrow", "duckdb"] {
        let got = &out[reader];
        if let Some(e) = got.get("error") {
            panic!(
                "{tag}: {reader} could not read the {format} files: {e}\n{}",
                got["traceback"].as_str().unwrap_or_default()
            );
        }
        assert_eq!(got["rows"], want.rows, "{tag}: {reader} rows");
        assert_eq!(got["ids"], want.rows, "{tag}: {reader} distinct ids");
        let by_model: BTreeMap<String, (u64, i64, f64)> = got["by_model"]
            .as_object()
            .expect("by_model")
            .iter()
            .map(|(m, v)| {
                let v = v.as_array().expect("[n, tokens, cost]");
                (
                    m.clone(),
                    (
                        v[0].as_u64().expect("n"),
                        v[1].as_i64().expect("tokens"),
                        v[2].as_f64().expect("cost"),
                    ),
                )
            })
            .collect();
        assert_eq!(
            by_model.keys().collect::<Vec<_>>(),
            want.by_model.keys().collect::<Vec<_>>(),
            "{tag}: {reader} models"
        );
        for (m, (n, tokens, cost)) in &want.by_model {
            let g = by_model[m];
            assert_eq!((g.0, g.1), (*n, *tokens), "{tag}: {reader} {m}");
            // sums in another order: equal up to rounding
            assert!(
                (g.2 - cost).abs() <= 1e-9 * cost.abs().max(1.0),
                "{tag}: {reader} {m} cost {} != {cost}",
                g.2
            );
        }
        let failures: BTreeMap<String, u64> =
            serde_json::from_value(got["failures"].clone()).expect("failures");
        assert_eq!(failures, want.failures, "{tag}: {reader} failures");
        match got["partitions"].as_array() {
            Some(p) => {
                let p: BTreeSet<String> = p
                    .iter()
                    .map(|x| x.as_str().expect("partition").to_string())
                    .collect();
                assert_eq!(p, partitions, "{tag}: {reader} hive partitions");
            }
            // pyarrow reads NDJSON file by file (see read.py): no partitions
            None => assert!(
                reader == "pyarrow" && format != Format::Parquet,
                "{tag}: {reader} saw no partitions"
            ),
        }
    }
    eprintln!(
        "{tag}: {} {} file(s), {} records, read alike by polars {}, pyarrow {}, duckdb {}",
        files.len(),
        format,
        want.rows,
        out["versions"]["polars"],
        out["versions"]["pyarrow"],
        out["versions"]["duckdb"]
    );
    fs.delete().await.expect("cleanup");
}

/// The paths of every file in `fs`, from a listing of ours.
async fn file_names(fs: &adls_rest::FileSystem) -> Vec<String> {
    fs.list_all(adls_rest::ListOptions {
        recursive: true,
        ..Default::default()
    })
    .await
    .expect("list")
    .into_iter()
    .filter(|i| !i.is_directory)
    .map(|i| i.name)
    .collect()
}

/// `year/month/day/hour` of a hive-partitioned path, numbers as numbers.
fn partition(path: &str) -> String {
    ["year", "month", "day", "hour"]
        .iter()
        .map(|k| {
            let at = path
                .find(&format!("/{k}="))
                .unwrap_or_else(|| panic!("{path} has no {k}= partition"));
            let rest = &path[at + k.len() + 2..];
            let digits = &rest[..rest.find('/').expect("a partition directory")];
            digits.parse::<u32>().expect("a number").to_string()
        })
        .collect::<Vec<_>>()
        .join("/")
}

async fn run_readers(
    server: &Server,
    fs_name: &str,
    prefix: &str,
    format: Format,
    files: &[String],
) -> Value {
    let python = required_env(ENV_READERS_PYTHON);
    let script = required_env(ENV_READERS_SCRIPT);
    let dir = std::env::temp_dir().join(unique_name("readers"));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let out = dir.join("out.json");
    let mut cmd = std::process::Command::new(python);
    cmd.arg(script)
        .args(["--connection-string", &server.connection_string])
        .args(["--container", fs_name, "--prefix", prefix])
        .args(["--format", format.extension()])
        .arg("--out")
        .arg(&out);
    if server.paths_only {
        let list = dir.join("paths.txt");
        std::fs::write(&list, files.join("\n")).expect("paths");
        cmd.arg("--paths").arg(&list);
    }
    let result = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .expect("join")
        .expect("run read.py");
    assert!(
        result.status.success(),
        "read.py failed ({}): {}",
        result.status,
        String::from_utf8_lossy(&result.stderr)
    );
    let v = serde_json::from_slice(&std::fs::read(&out).expect("read.py's answer")).expect("json");
    let _ = std::fs::remove_dir_all(&dir);
    v
}

fn hourly() -> LayoutMode {
    LayoutMode::Rolling {
        window: Duration::from_secs(3600),
    }
}

macro_rules! reader_tests {
    ($($name:ident: $server:expr, $format:expr, $layout:expr;)*) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            logged_then_read($server, $format, $layout, &stringify!($name).replace('_', "-")).await;
        }
    )*};
}

reader_tests! {
    readers_parquet: azurite_blob(), Format::Parquet, LayoutMode::PerBatch;
    readers_ndjson: azurite_blob(), Format::Ndjson, LayoutMode::PerBatch;
    readers_ndjson_gz: azurite_blob(), Format::NdjsonGzip, LayoutMode::PerBatch;
    readers_ndjson_zst: azurite_blob(), Format::NdjsonZstd, LayoutMode::PerBatch;
    readers_rolling_gz: azurite_blob(), Format::NdjsonGzip, hourly();
    readers_rolling_zst: azurite_blob(), Format::NdjsonZstd, hourly();
    dfs_emulator_readers_parquet: emulator_dfs(), Format::Parquet, LayoutMode::PerBatch;
    dfs_emulator_readers_ndjson: emulator_dfs(), Format::Ndjson, LayoutMode::PerBatch;
    dfs_emulator_readers_ndjson_gz: emulator_dfs(), Format::NdjsonGzip, LayoutMode::PerBatch;
    dfs_emulator_readers_ndjson_zst: emulator_dfs(), Format::NdjsonZstd, LayoutMode::PerBatch;
    dfs_emulator_readers_rolling_zst: emulator_dfs(), Format::NdjsonZstd, hourly();
}

/// On the DFS dialect every file gets its format's `Content-Type` too, and
/// no `Content-Encoding`: checked on the in-repo DFS server (the emulator
/// keeps no content type, see docs/TESTING.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dfs_files_carry_their_formats_content_type() {
    let server = adls_tests::dfs_server::DfsServer::start().await;
    let client = emulator_client(&server.endpoint(), Dialect::Dfs);
    for format in [
        Format::Ndjson,
        Format::NdjsonGzip,
        Format::NdjsonZstd,
        Format::Parquet,
    ] {
        let fs_name = unique_name("dfs-content-type");
        let logger = Logger::start(
            client.clone(),
            Config {
                filesystem: fs_name.clone(),
                format,
                max_batch_records: 20,
                // batches cut by count only (20, 20, and 10 at shutdown): a
                // short age cut a fourth file once on a busy machine
                max_batch_age: Duration::from_secs(60),
                ..Config::default()
            },
        )
        .await
        .expect("start");
        for r in records("ct").into_iter().take(50) {
            logger.log_value(r).expect("accepted");
        }
        let report = logger.shutdown(Duration::from_secs(30)).await;
        assert_eq!(report.metrics.written, 50, "{format}");
        let fs = client.filesystem(&fs_name).expect("fs");
        let files = file_names(&fs).await;
        assert_eq!(files.len(), 3, "{format}: {files:?}");
        for f in &files {
            assert!(f.ends_with(&format!(".{format}")), "{f}");
            let props = fs.file(f).expect("path").properties().await.expect("props");
            assert_eq!(
                props.content_type.as_deref(),
                Some(format.content_type()),
                "{f}"
            );
            assert_eq!(props.content_encoding, None, "{f}");
        }
    }
}
