//! llm-log-callback end to end against Azurite: volume, faults, outages with
//! spill and replay, overflow policies, connection reuse, layouts.

use std::collections::HashSet;
use std::time::Duration;

use adls_rest::{Client, Dialect};
use adls_tests::azurite::OwnAzurite;
use adls_tests::fault_proxy::{Action, FaultProxy, Plan, Rule};
use adls_tests::{
    assert_exactly_once, emulator_client, read_all_records, required_env, sample_record,
    unique_name, ENV_AZURITE_HTTP,
};
use llm_log_callback::{Config, Format, LayoutMode, LogError, Logger, OverflowPolicy, SpillConfig};

fn azurite_client() -> Client {
    emulator_client(&required_env(ENV_AZURITE_HTTP), Dialect::Blob)
}

fn config(fs: &str) -> Config {
    Config {
        filesystem: fs.to_string(),
        prefix: "llm".into(),
        instance: "test-gw".into(),
        max_batch_age: Duration::from_millis(200),
        ..Config::default()
    }
}

fn ids(n: u64, tag: &str) -> Vec<String> {
    (0..n).map(|i| format!("{tag}-{i:06}")).collect()
}

fn spill_dir(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("llm-log-it-{name}-{}", uuid::Uuid::new_v4()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_thousand_records_each_exactly_once() {
    let client = azurite_client();
    let fs_name = unique_name("volume");
    let logger = Logger::start(client.clone(), config(&fs_name))
        .await
        .expect("start");
    let ids = ids(100_000, "vol");
    // four producers, as a gateway's worker threads would be
    let mut tasks = Vec::new();
    for chunk in ids.chunks(25_000) {
        let logger = logger.clone();
        let chunk: Vec<String> = chunk.to_vec();
        tasks.push(tokio::task::spawn_blocking(move || {
            for (i, id) in chunk.iter().enumerate() {
                logger
                    .log_value(sample_record(id, i as u64))
                    .expect("accepted");
            }
        }));
    }
    for t in tasks {
        t.await.expect("producer");
    }
    let report = logger.shutdown(Duration::from_secs(120)).await;
    let m = &report.metrics;
    assert!(report.complete, "{m:?}");
    assert_eq!(m.accepted, 100_000);
    assert_eq!(m.written, 100_000, "{m:?}");
    assert_eq!(m.dropped.total() + m.spilled, 0);
    let fs = client.filesystem(&fs_name).expect("fs");
    let records = read_all_records(&fs).await;
    assert_exactly_once(&records, &ids.iter().cloned().collect());
    // batches, not one file per record
    assert!(m.files >= 10 && m.files < 1_000, "files {}", m.files);
    assert!(m.connections_opened <= 64, "{m:?}");
    fs.delete().await.expect("cleanup");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_lose_and_duplicate_nothing() {
    let azurite = required_env(ENV_AZURITE_HTTP);
    let proxy = FaultProxy::start(azurite.trim_end_matches("/devstoreaccount1")).await;
    let client = emulator_client(&format!("{}/devstoreaccount1", proxy.url()), Dialect::Blob);
    let fs_name = unique_name("faults");
    let logger = Logger::start(
        client.clone(),
        Config {
            max_batch_records: 200,
            max_concurrent_uploads: 8,
            ..config(&fs_name)
        },
    )
    .await
    .expect("start");
    // bursts of 503 ServerBusy and 429 with Retry-After, resets mid-request,
    // and requests that reach Azurite but whose answer is dropped
    proxy.set_plan(
        Plan::new()
            .rule(Rule::new(Action::server_busy()).between(20, 40))
            .rule(Rule::new(Action::too_many_requests(Duration::from_secs(1))).between(100, 105))
            .rule(Rule::new(Action::ResetMidRequest).every_nth(23))
            .rule(Rule::new(Action::DropResponse).every_nth(29))
            .rule(Rule::new(Action::server_busy()).probability(0.03))
            .seed(7),
    );
    let ids = ids(20_000, "fault");
    for (i, id) in ids.iter().enumerate() {
        logger
            .log_async(serde_json::from_value(sample_record(id, i as u64)).expect("record"))
            .await
            .expect("accepted");
    }
    let report = logger.shutdown(Duration::from_secs(120)).await;
    let stats = proxy.stats();
    proxy.set_plan(Plan::pass());
    let m = &report.metrics;
    assert!(report.complete, "{m:?}");
    assert_eq!(m.written, 20_000, "{m:?}");
    assert_eq!(m.dropped.total() + m.spilled, 0, "{m:?}");
    assert!(
        stats.statuses >= 20 && stats.resets >= 5 && stats.dropped_responses >= 5,
        "faults injected: {stats:?}"
    );
    eprintln!(
        "fault test: {} requests seen by the proxy, {} faults injected ({stats:?}); logger {m:?}",
        stats.requests,
        stats.failures_injected()
    );
    let fs = client.filesystem(&fs_name).expect("fs");
    let records = read_all_records(&fs).await;
    assert_exactly_once(&records, &ids.iter().cloned().collect());
    fs.delete().await.expect("cleanup");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outage_spills_then_replays_and_corrupt_spill_is_quarantined() {
    let mut azurite = OwnAzurite::start();
    let mut retry = adls_tests::fast_retry();
    retry.max_attempts = 2;
    let client = Client::builder(
        adls_rest::Account::emulator(&azurite.endpoint()).expect("account"),
        adls_rest::Credential::shared_key(adls_tests::AZURITE_KEY).expect("key"),
    )
    .retry(retry)
    .attempt_timeout(Duration::from_secs(2))
    .build()
    .expect("client");
    let dir = spill_dir("outage");
    let fs_name = unique_name("outage");
    let cfg = Config {
        max_batch_records: 100,
        batch_retry_window: Duration::from_secs(2),
        spill: Some(SpillConfig {
            dir: dir.clone(),
            max_bytes: 1 << 30,
        }),
        replay_interval: Duration::from_millis(500),
        ..config(&fs_name)
    };
    let logger = Logger::start(client.clone(), cfg.clone())
        .await
        .expect("start");
    let ids = ids(3_000, "outage");
    for (i, id) in ids[..1_000].iter().enumerate() {
        logger
            .log_value(sample_record(id, i as u64))
            .expect("accepted");
    }
    logger.flush().await;

    azurite.stop();
    for (i, id) in ids[1_000..2_000].iter().enumerate() {
        logger
            .log_value(sample_record(id, i as u64))
            .expect("accepted");
    }
    // longer than the retry window: batches spill
    let report = logger.flush().await;
    assert!(report.metrics.spilled >= 1_000, "{:?}", report.metrics);
    // a corrupt spill file (from a crashed writer, say) is quarantined, never fatal
    std::fs::write(
        dir.join("0000000000000001-crashed-00000000.spill"),
        b"LLMLOGSPILL1\n{\"truncated",
    )
    .expect("corrupt file");

    azurite.resume();
    for (i, id) in ids[2_000..].iter().enumerate() {
        logger
            .log_value(sample_record(id, i as u64))
            .expect("accepted");
    }
    let report = logger.shutdown(Duration::from_secs(60)).await;
    // the replayer runs after healthy uploads and every 500 ms
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while logger.metrics().replayed < report.metrics.spilled && std::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let m = logger.metrics();
    assert_eq!(m.accepted, 3_000);
    assert_eq!(m.written + m.spilled, 3_000, "{m:?}");
    assert_eq!(m.dropped.total(), 0, "{m:?}");
    assert_eq!(m.replayed, m.spilled, "{m:?}");
    assert_eq!(m.quarantined_files, 1, "{m:?}");
    assert!(dir
        .join("quarantine/0000000000000001-crashed-00000000.spill")
        .exists());
    let fs = client.filesystem(&fs_name).expect("fs");
    let records = read_all_records(&fs).await;
    assert_exactly_once(&records, &ids.iter().cloned().collect());
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spill_left_by_a_previous_run_is_replayed_at_start() {
    let client = azurite_client();
    let dir = spill_dir("restart");
    let fs_name = unique_name("restart");
    // first "process": storage unreachable (a closed port), everything spills at shutdown
    let dead = Client::builder(
        adls_rest::Account::emulator("http://127.0.0.1:9/devstoreaccount1").expect("account"),
        adls_rest::Credential::shared_key(adls_tests::AZURITE_KEY).expect("key"),
    )
    .retry(adls_rest::RetryPolicy::none())
    .build()
    .expect("client");
    let cfg = Config {
        create_filesystem: false,
        batch_retry_window: Duration::from_millis(300),
        spill: Some(SpillConfig {
            dir: dir.clone(),
            max_bytes: 1 << 30,
        }),
        ..config(&fs_name)
    };
    let first = Logger::start(dead, cfg.clone()).await.expect("start");
    let ids = ids(500, "prev");
    for (i, id) in ids.iter().enumerate() {
        first
            .log_value(sample_record(id, i as u64))
            .expect("accepted");
    }
    let r = first.shutdown(Duration::from_secs(10)).await;
    assert_eq!(r.metrics.spilled, 500, "{:?}", r.metrics);
    // second "process": healthy storage; replays at start
    let second = Logger::start(
        client.clone(),
        Config {
            create_filesystem: true,
            ..cfg
        },
    )
    .await
    .expect("start");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while second.metrics().replayed < 500 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(second.metrics().replayed, 500);
    second.shutdown(Duration::from_secs(10)).await;
    let fs = client.filesystem(&fs_name).expect("fs");
    assert_exactly_once(&read_all_records(&fs).await, &ids.iter().cloned().collect());
    assert!(std::fs::read_dir(&dir)
        .expect("dir")
        .filter_map(Result::ok)
        .all(|e| e.path().extension().is_none_or(|x| x != "spill")));
    fs.delete().await.expect("cleanup");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Storage that answers slowly, so the queue fills.
async fn slow_storage() -> (FaultProxy, Client) {
    let azurite = required_env(ENV_AZURITE_HTTP);
    let proxy = FaultProxy::start(azurite.trim_end_matches("/devstoreaccount1")).await;
    let client = emulator_client(&format!("{}/devstoreaccount1", proxy.url()), Dialect::Blob);
    (proxy, client)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overflow_policies_keep_the_ledger_exact() {
    for policy in [
        OverflowPolicy::DropNewest,
        OverflowPolicy::Block,
        OverflowPolicy::Spill,
    ] {
        let (proxy, client) = slow_storage().await;
        let fs_name = unique_name("overflow");
        let dir = spill_dir("overflow");
        let logger = Logger::start(
            client.clone(),
            Config {
                queue_max_records: 50,
                queue_max_bytes: 8 << 20,
                max_batch_records: 20,
                max_concurrent_uploads: 1,
                overflow: policy,
                spill: Some(SpillConfig {
                    dir: dir.clone(),
                    max_bytes: 1 << 30,
                }),
                replay_interval: Duration::from_millis(200),
                ..config(&fs_name)
            },
        )
        .await
        .expect("start");
        proxy.set_plan(Plan::new().rule(Rule::new(Action::Delay(Duration::from_millis(100)))));
        let all = ids(1_000, "ovf");
        let mut accepted_ok = HashSet::new();
        for (i, id) in all.iter().enumerate() {
            let r = serde_json::from_value(sample_record(id, i as u64)).expect("record");
            let res = match policy {
                OverflowPolicy::Block => logger.log_async(r).await,
                _ => logger.log(r),
            };
            match res {
                Ok(()) => {
                    accepted_ok.insert(id.clone());
                }
                Err(LogError::QueueFull) => {}
                Err(e) => panic!("{policy:?}: {e}"),
            }
        }
        proxy.set_plan(Plan::pass());
        let report = logger.shutdown(Duration::from_secs(60)).await;
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while logger.metrics().replayed < logger.metrics().spilled
            && std::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let m = logger.metrics();
        assert!(report.complete, "{policy:?} {m:?}");
        assert_eq!(m.accepted, 1_000, "{policy:?}");
        assert_eq!(
            m.written + m.spilled + m.dropped.total(),
            m.accepted,
            "{policy:?} {m:?}"
        );
        match policy {
            OverflowPolicy::DropNewest => {
                assert!(m.dropped.queue_full > 0, "the queue overflowed: {m:?}");
                assert_eq!(m.dropped.queue_full, 1_000 - accepted_ok.len() as u64);
            }
            OverflowPolicy::Block => assert_eq!(m.written, 1_000, "{m:?}"),
            OverflowPolicy::Spill => {
                assert!(m.spilled > 0, "overflow went to disk: {m:?}");
                assert_eq!(m.replayed, m.spilled, "{m:?}");
                assert_eq!(m.dropped.total(), 0);
            }
        }
        let fs = client.filesystem(&fs_name).expect("fs");
        assert_exactly_once(&read_all_records(&fs).await, &accepted_ok);
        fs.delete().await.expect("cleanup");
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_loggers_share_one_client_and_its_connections() {
    let azurite = required_env(ENV_AZURITE_HTTP);
    let client = Client::builder(
        adls_rest::Account::emulator(&azurite).expect("account"),
        adls_rest::Credential::shared_key(adls_tests::AZURITE_KEY).expect("key"),
    )
    .max_in_flight(8)
    .build()
    .expect("client");
    let fs_name = unique_name("reuse");
    // ten "teams", each with its own logger and prefix, one client
    let mut loggers = Vec::new();
    for team in 0..10 {
        let cfg = Config {
            prefix: format!("team-{team}"),
            max_batch_age: Duration::from_millis(100),
            ..config(&fs_name)
        };
        loggers.push(Logger::start(client.clone(), cfg).await.expect("start"));
    }
    let mut expected = HashSet::new();
    // 100 records/s in all for 10 s
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    for i in 0..1_000u64 {
        tick.tick().await;
        let id = format!("reuse-{i:05}");
        loggers[(i % 10) as usize]
            .log_value(sample_record(&id, i))
            .expect("accepted");
        expected.insert(id);
    }
    for l in &loggers {
        assert!(l.shutdown(Duration::from_secs(30)).await.complete);
    }
    let stats = client.stats();
    // one pool for every logger: never more connections at once than the
    // in-flight limit, and a handful in all (the pool may retire an idle one
    // and open another later), where the original opened one client per log
    assert!(stats.connections_peak <= 8, "{stats:?}");
    assert!(stats.connections_opened <= 16, "{stats:?}");
    assert!(stats.requests_sent > 100, "{stats:?}");
    let fs = client.filesystem(&fs_name).expect("fs");
    assert_exactly_once(&read_all_records(&fs).await, &expected);
    fs.delete().await.expect("cleanup");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_per_record_and_compressed_layouts() {
    let client = azurite_client();
    let hour = LayoutMode::Rolling {
        window: Duration::from_secs(3600),
    };
    for (name, layout, format) in [
        (
            "rolling",
            LayoutMode::Rolling {
                window: Duration::from_secs(2),
            },
            Format::Ndjson,
        ),
        ("perrecord", LayoutMode::PerRecord, Format::Ndjson),
        ("gzip", LayoutMode::PerBatch, Format::NdjsonGzip),
        ("rollgz", hour.clone(), Format::NdjsonGzip),
        ("zstd", LayoutMode::PerBatch, Format::NdjsonZstd),
        ("rollzst", hour.clone(), Format::NdjsonZstd),
    ] {
        let fs_name = unique_name(name);
        let logger = Logger::start(
            client.clone(),
            Config {
                layout: layout.clone(),
                format,
                max_batch_records: 50,
                ..config(&fs_name)
            },
        )
        .await
        .expect("start");
        let all = ids(300, name);
        for (i, id) in all.iter().enumerate() {
            logger
                .log_value(sample_record(id, i as u64))
                .expect("accepted");
            if i % 100 == 99 {
                // let a rolling window pass between groups
                tokio::time::sleep(Duration::from_millis(if name == "rolling" {
                    1_100
                } else {
                    10
                }))
                .await;
            }
        }
        let report = logger.shutdown(Duration::from_secs(60)).await;
        assert!(report.complete, "{name}: {:?}", report.metrics);
        assert_eq!(report.metrics.written, 300, "{name}");
        let fs = client.filesystem(&fs_name).expect("fs");
        assert_exactly_once(&read_all_records(&fs).await, &all.iter().cloned().collect());
        let files = fs
            .list_all(adls_rest::ListOptions {
                recursive: true,
                ..Default::default()
            })
            .await
            .expect("list");
        match name {
            "perrecord" => {
                assert_eq!(files.len(), 300);
                assert!(
                    files
                        .iter()
                        .all(|f| f.name.ends_with(".json") && f.name.starts_with("llm/20")),
                    "{:?}",
                    files[0]
                );
            }
            "rolling" => assert!(
                (2..=6).contains(&files.len()),
                "{name}: windows rotate: {}",
                files.len()
            ),
            "rollgz" | "rollzst" => {
                assert_eq!(files.len(), 1, "one window, one file, many appends")
            }
            _ => assert!(files.len() >= 6, "{name}: {} files", files.len()),
        }
        // every file: the format's extension and content headers
        for f in &files {
            if name != "perrecord" {
                assert!(
                    f.name.ends_with(&format!(".{}", format.extension())),
                    "{name}: {}",
                    f.name
                );
            }
            let props = fs
                .file(&f.name)
                .expect("path")
                .properties()
                .await
                .expect("props");
            assert_eq!(
                props.content_type.as_deref(),
                Some(format.content_type()),
                "{name}: {}",
                f.name
            );
            // none: readers must get the compressed bytes the name promises
            assert_eq!(props.content_encoding, None, "{name}: {}", f.name);
        }
        fs.delete().await.expect("cleanup");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn litellm_fixture_records_are_stored_exactly_as_logged() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../crates/llm-log-callback/tests/fixtures/litellm");
    let mut fixtures = std::collections::HashMap::new();
    for entry in std::fs::read_dir(&dir).expect("fixtures") {
        let p = entry.expect("entry").path();
        if p.extension().is_some_and(|x| x == "json") {
            let v: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(&p).expect("read")).expect("json");
            fixtures.insert(v["id"].as_str().expect("id").to_string(), v);
        }
    }
    assert!(fixtures.len() >= 10);
    let client = azurite_client();
    let fs_name = unique_name("fixtures");
    let logger = Logger::start(
        client.clone(),
        Config {
            redaction: llm_log_callback::Redaction::off(),
            ..config(&fs_name)
        },
    )
    .await
    .expect("start");
    for v in fixtures.values() {
        logger.log_value(v.clone()).expect("accepted");
    }
    assert!(logger.shutdown(Duration::from_secs(30)).await.complete);
    let fs = client.filesystem(&fs_name).expect("fs");
    let stored = read_all_records(&fs).await;
    assert_eq!(stored.len(), fixtures.len());
    for s in stored {
        let id = s["id"].as_str().expect("id");
        assert_eq!(&s, &fixtures[id], "{id} differs from what was logged");
    }
    fs.delete().await.expect("cleanup");
}

/// The original callback's variables, client-secret flavour, end to end: the
/// token endpoint is the loopback test server, storage is Azurite over HTTPS
/// with `--oauth basic`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn from_env_with_entra_client_secret_over_https() {
    use adls_tests::token_server::{Config as TokenConfig, TokenServer};
    let https = required_env(adls_tests::ENV_AZURITE_HTTPS);
    let ca = required_env(adls_tests::ENV_CA_PEM);
    let tokens = TokenServer::start(TokenConfig::default()).await;
    let t = tokens.config();
    let fs_name = unique_name("fromenv");
    let env: std::collections::HashMap<&str, String> = [
        ("AZURE_STORAGE_ACCOUNT_NAME", "devstoreaccount1".to_string()),
        ("AZURE_STORAGE_ENDPOINT", https.clone()),
        ("AZURE_STORAGE_DIALECT", "blob".into()),
        ("AZURE_STORAGE_TENANT_ID", t.tenant_id.clone()),
        ("AZURE_STORAGE_CLIENT_ID", t.client_id.clone()),
        ("AZURE_STORAGE_CLIENT_SECRET", t.client_secret.clone()),
        ("AZURE_AUTHORITY_HOST", tokens.url()),
        ("LLM_LOG_CA_PEM", ca),
        ("AZURE_STORAGE_FILE_SYSTEM", fs_name.clone()),
        ("LLM_LOG_BATCH_MAX_AGE_MS", "100".into()),
        ("LLM_LOG_GZIP", "true".into()),
    ]
    .into_iter()
    .collect();
    let lookup = |k: &str| env.get(k).cloned();
    let client =
        llm_log_callback::destination::client_from_lookup(lookup).expect("client from env");
    let cfg = Config::from_lookup(lookup).expect("config from env");
    assert_eq!(cfg.filesystem, fs_name);
    let logger = Logger::start(client.clone(), cfg).await.expect("start");
    let all = ids(200, "env");
    for (i, id) in all.iter().enumerate() {
        logger
            .log_value(sample_record(id, i as u64))
            .expect("accepted");
    }
    let report = logger.shutdown(Duration::from_secs(30)).await;
    assert!(
        report.complete && report.metrics.written == 200,
        "{:?}",
        report.metrics
    );
    assert_eq!(tokens.issued().len(), 1, "one token for the whole run");
    let fs = client.filesystem(&fs_name).expect("fs");
    assert_exactly_once(&read_all_records(&fs).await, &all.iter().cloned().collect());
    assert!(!format!("{report:?} {logger:?}").contains(&t.client_secret));
}

/// `cargo run -p llm-log-callback --example ship`: NDJSON in, one JSON report out.
#[test]
fn ship_example_reads_stdin_and_reports_json() {
    use std::io::Write as _;
    let endpoint = required_env(ENV_AZURITE_HTTP);
    let ship = adls_tests::cargo_build(
        &["--package", "llm-log-callback", "--example", "ship"],
        "examples/ship",
    );
    let fs_name = unique_name("ship");
    let mut input = String::new();
    for i in 0..500u64 {
        input.push_str(&sample_record(&format!("ship-{i}"), i).to_string());
        input.push('\n');
    }
    input.push_str("not json\n");
    let mut child = std::process::Command::new(ship)
        .env(
            "AZURE_STORAGE_CONNECTION_STRING",
            format!("DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={};BlobEndpoint={endpoint}", adls_tests::AZURITE_KEY),
        )
        .env("AZURE_STORAGE_FILE_SYSTEM", &fs_name)
        .env("LLM_LOG_BATCH_MAX_RECORDS", "100")
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
        "ship failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).expect("utf-8");
    assert_eq!(
        stdout.lines().count(),
        1,
        "one JSON object on stdout: {stdout}"
    );
    let report: serde_json::Value = serde_json::from_str(&stdout).expect("JSON report");
    assert_eq!(report["accepted"], 500);
    assert_eq!(report["written"], 500);
    assert_eq!(report["spilled"], 0);
    assert_eq!(report["dropped"], 0);
    assert_eq!(report["files"], 5);
    assert_eq!(report["invalid_lines"], 1);
    assert!(String::from_utf8_lossy(&out.stderr).contains("skipping line"));
}
