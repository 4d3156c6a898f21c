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
use adls_tests::dfs_server::DfsServer;
use adls_tests::fault_proxy::{Action, FaultProxy, Plan, Rule};
use adls_tests::{
    assert_exactly_once, emulator_client, read_all_records, required_env, sample_record,
    unique_name, ENV_AZURITE_HTTP,
};
use llm_log_callback::{Config, LayoutMode, Logger, SpillConfig};

/// Endpoint of the independent DFS emulator (Azurite with pull request 2635).
pub const ENV_AZURITE_DFS: &str = "ADLS_TEST_AZURITE_DFS";

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
    /// Storage unreachable for a while (every request reset), then back.
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
}

async fn upstream(server: Server) -> Upstream {
    match server {
        Server::AzuriteBlob => Upstream {
            endpoint: required_env(ENV_AZURITE_HTTP),
            dialect: Dialect::Blob,
            _server: None,
        },
        Server::EmulatorDfs => Upstream {
            endpoint: required_env(ENV_AZURITE_DFS),
            dialect: Dialect::Dfs,
            _server: None,
        },
        Server::InRepoDfs => {
            let s = DfsServer::start().await;
            Upstream {
                endpoint: s.endpoint(),
                dialect: Dialect::Dfs,
                _server: Some(s),
            }
        }
    }
}

/// One cell: `n` records through `layout` with `fault`, read back.
async fn cell(server: Server, layout_name: &str, layout: LayoutMode, fault: Fault) -> Counts {
    let up = upstream(server).await;
    let base = up
        .endpoint
        .trim_end_matches("/devstoreaccount1")
        .to_string();
    let proxy = FaultProxy::start(&base).await;
    let client = emulator_client(&format!("{}/devstoreaccount1", proxy.url()), up.dialect);
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
            // storage goes away: every request is reset until it is back
            proxy.set_plan(Plan::new().rule(Rule::new(Action::ResetMidRequest)));
        }
        if matches!(fault, Fault::Outage) && i as u64 == 2 * n / 3 {
            // down until batches have outlived the retry window and spilled
            let t0 = Instant::now();
            while logger.metrics().spilled == 0 && t0.elapsed() < Duration::from_secs(30) {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            proxy.set_plan(Plan::pass());
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
