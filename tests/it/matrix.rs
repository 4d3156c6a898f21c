//! The fault matrix: every id exactly once, read back from storage, for
//! {Blob on Azurite 3.35, DFS on the independent DFS emulator, DFS on the
//! in-repo server} × {batch, rolling, per-record} × {503/429 bursts, resets,
//! lost responses, storage unreachable then back}.
//!
//! Each cell runs one logger through the fault proxy in front of the server,
//! with a spill directory, waits until everything spilled has been replayed,
//! shuts down, then lists and reads every file straight from the server (not
//! through the proxy) and checks the ledger against what is stored. Each cell
//! prints one `MATRIX` line with its counts. Tests that need the independent
//! emulator carry `dfs_emulator` in their name (`cargo xtask integration`
//! skips them, saying so, when the emulator is not available).

use std::collections::HashSet;
use std::time::{Duration, Instant};

use adls_rest::Dialect;
use adls_tests::azurite::OwnAzurite;
use adls_tests::dfs_server::DfsServer;
use adls_tests::fault_proxy::{Action, Plan, Rule};
use adls_tests::{
    assert_exactly_once, emulator_client, read_all_records, required_env, sample_record,
    unique_name, ENV_AZURITE_HTTP,
};
use llm_log_callback::{Config, LayoutMode, Logger, SpillConfig};

#[derive(Debug, Clone, Copy)]
enum Server {
    AzuriteBlob,
    EmulatorDfs,
    InRepoDfs,
}

#[derive(Debug, Clone, Copy)]
enum Fault {
    /// Bursts of 503 ServerBusy and 429 with Retry-After.
    Bursts,
    /// Connections reset mid-request.
    Resets,
    /// Requests that reach storage, whose answers are lost.
    LostResponses,
    /// Storage stopped and back: Azurite is stopped (SIGTERM) and restarted
    /// with its data, an instance of the test's own. The emulator does not
    /// survive a restart with data (afterwards it answers 500 `blob.properties
    /// .lastModified.toUTCString is not a function` to listings and creates
    /// under a directory it reloaded), and freezing it (SIGSTOP/SIGCONT) makes
    /// it run the requests of abandoned attempts late and out of order, where
    /// its create-new that replaces an existing file (a known divergence: the
    /// service answers 409) can empty a file already written and verified. So
    /// for the emulator, as for the in-process in-repo server (which cannot
    /// restart with its data), the proxy resets every request for the same
    /// while: storage unreachable, nothing half-delivered.
    Outage,
}

const FAULTS: [Fault; 4] = [
    Fault::Bursts,
    Fault::Resets,
    Fault::LostResponses,
    Fault::Outage,
];

fn plan(fault: Fault) -> Plan {
    match fault {
        Fault::Bursts => Plan::new()
            .rule(Rule::new(Action::server_busy()).between(5, 20))
            .rule(Rule::new(Action::too_many_requests(Duration::from_millis(200))).between(40, 44))
            .rule(Rule::new(Action::server_busy()).probability(0.05))
            .seed(11),
        Fault::Resets => Plan::new()
            .rule(Rule::new(Action::ResetMidRequest).every_nth(7))
            .seed(12),
        Fault::LostResponses => Plan::new()
            .rule(Rule::new(Action::DropResponse).every_nth(5))
            .seed(13),
        Fault::Outage => Plan::pass(),
    }
}

fn layouts() -> [(&'static str, LayoutMode); 3] {
    [
        ("batch", LayoutMode::PerBatch),
        (
            "rolling",
            LayoutMode::Rolling {
                window: Duration::from_secs(3600),
            },
        ),
        ("per-record", LayoutMode::PerRecord),
    ]
}

/// What one cell saw.
#[derive(Debug, Default)]
struct Counts {
    accepted: u64,
    written: u64,
    spilled: u64,
    replayed: u64,
    stored: usize,
    faults: u64,
}

/// Where a server lives: its account endpoint and the dialect to speak.
struct Upstream {
    endpoint: String,
    dialect: Dialect,
    _server: Option<DfsServer>,
    /// An instance of the test's own, which can be stopped and restarted.
    own: Option<OwnAzurite>,
}

impl Upstream {
    /// Takes storage away: stops the own instance, or resets every request.
    fn go_down(&mut self, proxy: &adls_tests::fault_proxy::FaultProxy) {
        match &mut self.own {
            Some(own) => tokio::task::block_in_place(|| own.stop()),
            None => proxy.set_plan(Plan::new().rule(Rule::new(Action::ResetMidRequest))),
        }
    }

    /// Brings storage back, with the data it had.
    fn come_back(&mut self, proxy: &adls_tests::fault_proxy::FaultProxy) {
        match &mut self.own {
            Some(own) => tokio::task::block_in_place(|| own.resume()),
            None => proxy.set_plan(Plan::pass()),
        }
    }
}

async fn upstream(server: Server, restartable: bool) -> Upstream {
    let own = |own: OwnAzurite, dialect| Upstream {
        endpoint: own.endpoint(),
        dialect,
        _server: None,
        own: Some(own),
    };
    match server {
        Server::AzuriteBlob if restartable => own(OwnAzurite::start(), Dialect::Blob),
        Server::AzuriteBlob => Upstream {
            endpoint: required_env(ENV_AZURITE_HTTP),
            dialect: Dialect::Blob,
            _server: None,
            own: None,
        },
        Server::EmulatorDfs => Upstream {
            endpoint: adls_tests::dfs_emulator_endpoint(),
            dialect: Dialect::Dfs,
            _server: None,
            own: None,
        },
        Server::InRepoDfs => {
            let s = DfsServer::start().await;
            Upstream {
                endpoint: s.endpoint(),
                dialect: Dialect::Dfs,
                _server: Some(s),
                own: None,
            }
        }
    }
}

/// One cell: `n` records through `layout` with `fault`, read back.
async fn cell(server: Server, layout_name: &str, layout: LayoutMode, fault: Fault) -> Counts {
    let mut up = upstream(server, matches!(fault, Fault::Outage)).await;
    let (proxy, client) = crate::ledger::proxied(&up.endpoint, up.dialect).await;
    let fs_name = unique_name("matrix");
    let spill = std::env::temp_dir().join(format!("llm-log-matrix-{}", uuid::Uuid::new_v4()));
    let per_record = layout == LayoutMode::PerRecord;
    let n: u64 = if per_record { 120 } else { 600 };
    let logger = Logger::start(
        client.clone(),
        Config {
            filesystem: fs_name.clone(),
            prefix: "m".into(),
            instance: "cell".into(),
            layout,
            max_batch_records: 40,
            max_batch_age: Duration::from_millis(50),
            max_concurrent_uploads: 4,
            batch_retry_window: Duration::from_millis(1500),
            replay_interval: Duration::from_millis(200),
            spill: Some(SpillConfig {
                dir: spill.clone(),
                max_bytes: 1 << 30,
            }),
            ..Config::default()
        },
    )
    .await
    .expect("start");
    proxy.set_plan(plan(fault));
    let ids: Vec<String> = (0..n)
        .map(|i| format!("{layout_name}-{fault:?}-{i:05}"))
        .collect();
    for (i, id) in ids.iter().enumerate() {
        if matches!(fault, Fault::Outage) && i as u64 == n / 3 {
            up.go_down(&proxy);
        }
        if matches!(fault, Fault::Outage) && i as u64 == 2 * n / 3 {
            // down until batches have outlived the retry window and spilled
            let t0 = Instant::now();
            while logger.metrics().spilled == 0 && t0.elapsed() < Duration::from_secs(30) {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            up.come_back(&proxy);
        }
        logger
            .log_async(serde_json::from_value(sample_record(id, i as u64)).expect("record"))
            .await
            .expect("accepted");
        if i % 20 == 0 {
            tokio::task::yield_now().await;
        }
    }
    logger.flush().await;
    // everything spilled must come back before shutdown stops the replayer
    let t0 = Instant::now();
    loop {
        let m = logger.metrics();
        if m.replayed >= m.spilled || t0.elapsed() > Duration::from_secs(60) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let report = logger.shutdown(Duration::from_secs(60)).await;
    let stats = proxy.stats();
    proxy.set_plan(Plan::pass());
    let m = &report.metrics;
    let label = format!("{server:?} × {layout_name} × {fault:?}");
    assert!(report.complete, "{label}: {m:?}");
    assert_eq!(m.accepted, n, "{label}");
    assert_eq!(m.written + m.spilled, n, "{label}: {m:?}");
    assert_eq!(
        m.replayed, m.spilled,
        "{label}: not everything spilled came back: {m:?}"
    );
    assert_eq!(
        m.dropped.total() + m.dead_lettered + m.unknown,
        0,
        "{label}: {m:?}"
    );
    // straight from the server, not through the proxy
    let direct = emulator_client(&up.endpoint, up.dialect);
    let fs = direct.filesystem(&fs_name).expect("fs");
    let records = read_all_records(&fs).await;
    assert_exactly_once(&records, &ids.iter().cloned().collect::<HashSet<_>>());
    let _ = fs.delete().await;
    let _ = std::fs::remove_dir_all(&spill);
    let counts = Counts {
        accepted: m.accepted,
        written: m.written,
        spilled: m.spilled,
        replayed: m.replayed,
        stored: records.len(),
        faults: stats.failures_injected(),
    };
    eprintln!(
        "MATRIX {server:?} | {layout_name} | {fault:?} | accepted {} | written {} | spilled {} | replayed {} | stored exactly once {} | faults injected {}",
        counts.accepted, counts.written, counts.spilled, counts.replayed, counts.stored, counts.faults
    );
    counts
}

async fn row(server: Server, layout_name: &str, layout: LayoutMode) {
    for fault in FAULTS {
        let c = cell(server, layout_name, layout.clone(), fault).await;
        if !matches!(fault, Fault::Outage) {
            assert!(
                c.faults > 0,
                "{server:?} {layout_name} {fault:?}: no fault injected"
            );
        } else {
            assert!(
                c.spilled > 0,
                "{server:?} {layout_name}: the outage spilled nothing"
            );
        }
    }
}

macro_rules! matrix_rows {
    ($($name:ident: $server:expr, $layout:expr;)*) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            let (label, layout) = layouts()
                .into_iter()
                .find(|(l, _)| *l == $layout)
                .expect("layout");
            row($server, label, layout).await;
        }
    )*};
}

matrix_rows! {
    azurite_blob_batch: Server::AzuriteBlob, "batch";
    azurite_blob_rolling: Server::AzuriteBlob, "rolling";
    azurite_blob_per_record: Server::AzuriteBlob, "per-record";
    dfs_emulator_batch: Server::EmulatorDfs, "batch";
    dfs_emulator_rolling: Server::EmulatorDfs, "rolling";
    dfs_emulator_per_record: Server::EmulatorDfs, "per-record";
    in_repo_dfs_batch: Server::InRepoDfs, "batch";
    in_repo_dfs_rolling: Server::InRepoDfs, "rolling";
    in_repo_dfs_per_record: Server::InRepoDfs, "per-record";
}

/// The report that started it all: `ship` with `AZURE_STORAGE_DIALECT=dfs`
/// against the independent emulator said `written: 5000` while every file was
/// empty. Real LiteLLM records (the fixtures, each under many fresh ids)
/// through `ship` in each layout: the report must match what is stored, and
/// every record must come back exactly as logged.
#[test]
fn dfs_emulator_ship_stores_real_litellm_records_in_every_layout() {
    use std::io::Write as _;
    let endpoint = adls_tests::dfs_emulator_endpoint();
    let ship = adls_tests::cargo_build(
        &["--package", "llm-log-callback", "--example", "ship"],
        "examples/ship",
    );
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../crates/llm-log-callback/tests/fixtures/litellm");
    let mut fixtures = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("fixtures") {
        let p = entry.expect("entry").path();
        if p.extension().is_some_and(|x| x == "json") {
            let text = std::fs::read_to_string(&p).expect("read");
            fixtures.push(serde_json::from_str::<serde_json::Value>(&text).expect("json"));
        }
    }
    assert!(fixtures.len() >= 10);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    for (layout, n) in [
        ("batch", 5_000usize),
        ("rolling", 5_000),
        ("per-record", 300),
    ] {
        let fs_name = unique_name("ship-dfs");
        let mut expected = std::collections::HashMap::new();
        let mut input = String::new();
        for i in 0..n {
            let mut v = fixtures[i % fixtures.len()].clone();
            let id = format!("{}-{i:05}", v["id"].as_str().expect("id"));
            v["id"] = serde_json::json!(id);
            input.push_str(&v.to_string());
            input.push('\n');
            expected.insert(id, v);
        }
        let mut child = std::process::Command::new(&ship)
            .env(
                "AZURE_STORAGE_CONNECTION_STRING",
                format!(
                    "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={};BlobEndpoint={endpoint};DfsEndpoint={endpoint}",
                    adls_tests::AZURITE_KEY
                ),
            )
            .env("AZURE_STORAGE_DIALECT", "dfs")
            .env("AZURE_STORAGE_FILE_SYSTEM", &fs_name)
            .env("LLM_LOG_LAYOUT", layout)
            .env("LLM_LOG_BATCH_MAX_RECORDS", "500")
            .env("LLM_LOG_REDACT_CONTENT", "keep")
            .env("LLM_LOG_MAX_STRING_BYTES", "0")
            .env("LLM_LOG_STRIP_DATA_URLS", "false")
            .env_remove("RUST_LOG")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run ship");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("write");
        let out = child.wait_with_output().expect("ship finished");
        assert!(
            out.status.success(),
            "{layout}: ship failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let report: serde_json::Value =
            serde_json::from_slice(&out.stdout).expect("one JSON report");
        assert_eq!(report["accepted"], n, "{layout}: {report}");
        assert_eq!(report["written"], n, "{layout}: {report}");
        let stored = rt.block_on(async {
            let fs = emulator_client(&endpoint, Dialect::Dfs)
                .filesystem(&fs_name)
                .expect("fs");
            let stored = read_all_records(&fs).await;
            let _ = fs.delete().await;
            stored
        });
        assert_eq!(stored.len(), n, "{layout}: stored {} of {n}", stored.len());
        for s in &stored {
            let id = s["id"].as_str().expect("id");
            assert_eq!(
                s, &expected[id],
                "{layout}: {id} differs from what was logged"
            );
        }
        eprintln!("SHIP dfs emulator | {layout} | accepted {n} | written {n} | stored exactly as logged {}", stored.len());
    }
}
