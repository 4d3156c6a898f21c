//! The ledger stays true in the corners a review found: writers sharing a
//! name, duplicate ids, a poisoned spill file, a write abandoned mid-commit,
//! a rolling close at shutdown, spills racing the replay, and a process
//! killed with SIGKILL. Every test reads the records back from storage.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use adls_rest::{Client, Dialect};
use adls_tests::dfs_server::DfsServer;
use adls_tests::fault_proxy::{Action, FaultProxy, Plan, Rule};
use adls_tests::{
    assert_exactly_once, emulator_client, read_all_records, required_env, sample_record,
    unique_name, ENV_AZURITE_HTTP,
};
use llm_log_callback::{Config, LayoutMode, Logger, SpillConfig};

/// A fault proxy in front of the emulator-style account `endpoint`, and a
/// client that goes through it.
pub(crate) async fn proxied(endpoint: &str, dialect: Dialect) -> (FaultProxy, Client) {
    let proxy = FaultProxy::start(endpoint.trim_end_matches("/devstoreaccount1")).await;
    let account = adls_rest::Account::emulator(&format!("{}/devstoreaccount1", proxy.url()))
        .expect("account");
    let client = Client::builder(
        account,
        adls_rest::Credential::shared_key(adls_tests::AZURITE_KEY).expect("key"),
    )
    .dialect(dialect)
    .retry(adls_tests::fast_retry())
    // a frozen server must turn into failed attempts soon, not in a minute
    .attempt_timeout(Duration::from_secs(2))
    .build()
    .expect("client");
    (proxy, client)
}

fn spill_dir(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("llm-log-ledger-{name}-{}", uuid::Uuid::new_v4()))
}

fn spill(dir: &Path) -> Option<SpillConfig> {
    Some(SpillConfig {
        dir: dir.to_path_buf(),
        max_bytes: 1 << 30,
    })
}

fn config(fs: &str) -> Config {
    Config {
        filesystem: fs.to_string(),
        prefix: "ledger".into(),
        instance: "gw".into(),
        max_batch_age: Duration::from_millis(100),
        ..Config::default()
    }
}

async fn log_n(logger: &Logger, tag: &str, range: std::ops::Range<u64>) -> Vec<String> {
    let mut ids = Vec::new();
    for i in range {
        let id = format!("{tag}-{i:05}");
        logger
            .log_async(serde_json::from_value(sample_record(&id, i)).expect("record"))
            .await
            .expect("accepted");
        ids.push(id);
    }
    ids
}

/// Waits until the replayer has caught up with `spilled` records.
async fn wait_replayed(logger: &Logger, spilled: u64) {
    let t0 = Instant::now();
    while logger.metrics().replayed < spilled && t0.elapsed() < Duration::from_secs(60) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Replicas sharing `LLM_LOG_INSTANCE` and the prefix, at the same time, on
/// one filesystem: the random part of every instance name keeps their paths
/// apart, so each record is stored once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_loggers_sharing_one_instance_name_store_each_record_once() {
    let client = emulator_client(&required_env(ENV_AZURITE_HTTP), Dialect::Blob);
    let fs_name = unique_name("shared");
    let mut tasks = Vec::new();
    for replica in 0..3u64 {
        let client = client.clone();
        let fs_name = fs_name.clone();
        tasks.push(tokio::spawn(async move {
            let logger = Logger::start(
                client,
                Config {
                    max_batch_records: 50,
                    ..config(&fs_name)
                },
            )
            .await
            .expect("start");
            let ids = log_n(&logger, &format!("r{replica}"), 0..1_000).await;
            let r = logger.shutdown(Duration::from_secs(60)).await;
            assert_eq!(r.metrics.written, 1_000, "{:?}", r.metrics);
            ids
        }));
    }
    let mut ids = HashSet::new();
    for t in tasks {
        ids.extend(t.await.expect("replica"));
    }
    let fs = client.filesystem(&fs_name).expect("fs");
    assert_exactly_once(&read_all_records(&fs).await, &ids);
    fs.delete().await.expect("cleanup");
}

/// Two records with the same id (a cached response reuses the provider's id)
/// are two files in the per-record layout, never one overwriting the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_record_layout_never_overwrites_a_duplicate_id() {
    let server = DfsServer::start().await;
    for (client, label) in [
        (
            emulator_client(&required_env(ENV_AZURITE_HTTP), Dialect::Blob),
            "blob",
        ),
        (emulator_client(&server.endpoint(), Dialect::Dfs), "dfs"),
    ] {
        let fs_name = unique_name("dupid");
        let logger = Logger::start(
            client.clone(),
            Config {
                layout: LayoutMode::PerRecord,
                ..config(&fs_name)
            },
        )
        .await
        .expect("start");
        for (i, answer) in ["first answer", "second answer", "third answer"]
            .iter()
            .enumerate()
        {
            let mut r = sample_record("chatcmpl-cached", i as u64);
            r["response"] = serde_json::json!(answer);
            logger.log_value(r).expect("accepted");
            // one at a time, so the same name is taken by the time the next comes
            logger.flush().await;
        }
        let m = logger.shutdown(Duration::from_secs(30)).await.metrics;
        assert_eq!(m.written, 3, "{label}: {m:?}");
        let fs = client.filesystem(&fs_name).expect("fs");
        let records = read_all_records(&fs).await;
        let answers: HashSet<String> = records
            .iter()
            .map(|r| r["response"].as_str().unwrap_or_default().to_string())
            .collect();
        assert_eq!(records.len(), 3, "{label}: {records:?}");
        assert_eq!(answers.len(), 3, "{label}: {answers:?}");
        fs.delete().await.expect("cleanup");
    }
}

/// Spill files made by a logger whose storage is unreachable.
async fn spill_offline(dir: &Path, tag: &str, n: u64) -> Vec<String> {
    let client = emulator_client("http://127.0.0.1:9/devstoreaccount1", Dialect::Blob);
    let logger = Logger::start(
        client,
        Config {
            create_filesystem: false,
            max_batch_records: 100,
            batch_retry_window: Duration::from_millis(10),
            spill: spill(dir),
            ..config("unused")
        },
    )
    .await
    .expect("start");
    let ids = log_n(&logger, tag, 0..n).await;
    let r = logger.shutdown(Duration::from_secs(30)).await;
    assert_eq!(r.metrics.spilled, n, "{:?}", r.metrics);
    ids
}

fn spill_files(dir: &Path) -> Vec<PathBuf> {
    // none yet (a process still starting) reads as empty
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut v: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "spill"))
        .collect();
    v.sort();
    v
}

/// A spill file storage refuses for good (its path is too long) sorts
/// first: it is dead-lettered with its reason, and every later file is
/// still replayed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poisoned_spill_file_is_dead_lettered_and_the_others_replay() {
    let dir = spill_dir("poison");
    let ids = spill_offline(&dir, "good", 300).await;
    let files = spill_files(&dir);
    assert_eq!(files.len(), 3);
    // a copy of the first file whose target no storage accepts, named to sort first
    let data = std::fs::read(&files[0]).expect("read");
    let mut parts = data.splitn(3, |&b| b == b'\n');
    let (magic, header, payload) = (
        parts.next().expect("magic"),
        parts.next().expect("header"),
        parts.next().expect("payload"),
    );
    let mut header: serde_json::Value = serde_json::from_slice(header).expect("header");
    header["target"]["path"] = serde_json::json!(format!("ledger/{}.ndjson", "x".repeat(1100)));
    let mut poisoned = magic.to_vec();
    poisoned.push(b'\n');
    poisoned.extend(serde_json::to_vec(&header).expect("json"));
    poisoned.push(b'\n');
    poisoned.extend_from_slice(payload);
    let poison_name = "0000000000000000-poison-00000000.spill";
    std::fs::write(dir.join(poison_name), poisoned).expect("poison");

    let client = emulator_client(&required_env(ENV_AZURITE_HTTP), Dialect::Blob);
    let fs_name = unique_name("poison");
    let logger = Logger::start(
        client.clone(),
        Config {
            spill: spill(&dir),
            replay_interval: Duration::from_millis(100),
            ..config(&fs_name)
        },
    )
    .await
    .expect("start");
    wait_replayed(&logger, 300).await;
    let m = logger.shutdown(Duration::from_secs(30)).await.metrics;
    assert_eq!(m.replayed, 300, "{m:?}");
    assert_eq!(m.replay_dead_lettered, 100, "{m:?}");
    assert!(
        spill_files(&dir).is_empty(),
        "left: {:?}",
        spill_files(&dir)
    );
    let dead = spill_files(&dir.join("dead-letter"));
    assert_eq!(dead.len(), 1);
    let text = String::from_utf8_lossy(&std::fs::read(&dead[0]).expect("dead letter")).to_string();
    assert!(text.contains("longer than 1024 characters"), "{text:.300}");
    let fs = client.filesystem(&fs_name).expect("fs");
    assert_exactly_once(&read_all_records(&fs).await, &ids.into_iter().collect());
    fs.delete().await.expect("cleanup");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Shutdown's deadline passes while a commit is on its way (the proxy holds
/// Put Block List for a while, then delivers it). Without a spill directory
/// the batch is counted `unknown`, not dropped (it does land); with one it
/// is spilled, and the next run's replay finds it already committed and
/// writes nothing twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_abandoned_mid_commit_is_unknown_or_reconciled_by_the_replay() {
    let azurite = required_env(ENV_AZURITE_HTTP);
    let (proxy, slow) = proxied(&azurite, Dialect::Blob).await;
    let direct = emulator_client(&azurite, Dialect::Blob);
    for with_spill in [false, true] {
        let fs_name = unique_name("midcommit");
        let dir = spill_dir("midcommit");
        direct
            .filesystem(&fs_name)
            .expect("fs")
            .create_if_not_exists()
            .await
            .expect("create fs");
        proxy.set_plan(Plan::new().rule(
            Rule::new(Action::Delay(Duration::from_millis(1500))).query_contains("comp=blocklist"),
        ));
        let logger = Logger::start(
            slow.clone(),
            Config {
                spill: if with_spill { spill(&dir) } else { None },
                max_batch_records: 1_000,
                ..config(&fs_name)
            },
        )
        .await
        .expect("start");
        let ids = log_n(&logger, "mid", 0..200).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let m = logger.shutdown(Duration::from_millis(300)).await.metrics;
        proxy.set_plan(Plan::pass());
        assert_eq!(m.dropped.total(), 0, "{m:?}");
        if with_spill {
            assert_eq!(m.spilled, 200, "{m:?}");
        } else {
            assert_eq!(m.unknown, 200, "{m:?}");
        }
        // the held commit lands after all
        tokio::time::sleep(Duration::from_millis(2000)).await;
        let fs = direct.filesystem(&fs_name).expect("fs");
        assert_exactly_once(&read_all_records(&fs).await, &ids.iter().cloned().collect());
        if with_spill {
            let logger = Logger::start(
                direct.clone(),
                Config {
                    spill: spill(&dir),
                    replay_interval: Duration::from_millis(100),
                    ..config(&fs_name)
                },
            )
            .await
            .expect("restart");
            wait_replayed(&logger, 200).await;
            let m = logger.shutdown(Duration::from_secs(30)).await.metrics;
            assert_eq!(m.replayed, 200, "{m:?}");
            assert!(spill_files(&dir).is_empty());
            assert_exactly_once(&read_all_records(&fs).await, &ids.iter().cloned().collect());
        }
        fs.delete().await.expect("cleanup");
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// The rolling layout's close runs under shutdown's deadline like every
/// other write: a close the service never answers does not hold shutdown.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_close_keeps_the_shutdown_deadline() {
    let server = DfsServer::start().await;
    let base = server.endpoint();
    let (proxy, client) = proxied(&base, Dialect::Dfs).await;
    let fs_name = unique_name("close");
    let logger = Logger::start(
        client,
        Config {
            layout: LayoutMode::Rolling {
                window: Duration::from_secs(3600),
            },
            ..config(&fs_name)
        },
    )
    .await
    .expect("start");
    let ids = log_n(&logger, "close", 0..100).await;
    logger.flush().await;
    proxy.set_plan(
        Plan::new()
            .rule(Rule::new(Action::Delay(Duration::from_secs(30))).query_contains("close=true")),
    );
    let t0 = Instant::now();
    let m = logger.shutdown(Duration::from_millis(500)).await.metrics;
    assert!(
        t0.elapsed() < Duration::from_secs(5),
        "shutdown took {:?}",
        t0.elapsed()
    );
    assert_eq!(m.written, 100, "{m:?}");
    let direct = emulator_client(&base, Dialect::Dfs);
    let fs = direct.filesystem(&fs_name).expect("fs");
    assert_exactly_once(&read_all_records(&fs).await, &ids.into_iter().collect());
}

/// Storage flaps while the replayer runs every 10 ms: spill files are being
/// written while passes list and replay the directory. Nothing half-written
/// is ever read, nothing is quarantined, and every record is stored once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spills_racing_the_replay_lose_and_duplicate_nothing() {
    let azurite = required_env(ENV_AZURITE_HTTP);
    let (proxy, client) = proxied(&azurite, Dialect::Blob).await;
    let fs_name = unique_name("race");
    let dir = spill_dir("race");
    let logger = Logger::start(
        client,
        Config {
            spill: spill(&dir),
            max_batch_records: 20,
            max_concurrent_uploads: 8,
            batch_retry_window: Duration::from_millis(50),
            replay_interval: Duration::from_millis(10),
            ..config(&fs_name)
        },
    )
    .await
    .expect("start");
    proxy.set_plan(
        Plan::new()
            // often enough that some batches outlive the client's retries
            .rule(Rule::new(Action::ResetMidRequest).probability(0.8))
            .seed(5),
    );
    let ids = log_n(&logger, "race", 0..3_000).await;
    logger.flush().await;
    proxy.set_plan(Plan::pass());
    let spilled = logger.metrics().spilled;
    wait_replayed(&logger, spilled).await;
    let m = logger.shutdown(Duration::from_secs(60)).await.metrics;
    assert!(m.spilled > 0, "nothing spilled: {m:?}");
    assert_eq!(m.replayed, m.spilled, "{m:?}");
    assert_eq!(m.quarantined_files, 0, "{m:?}");
    assert_eq!(m.written + m.spilled, 3_000, "{m:?}");
    let direct = emulator_client(&azurite, Dialect::Blob);
    let fs = direct.filesystem(&fs_name).expect("fs");
    assert_exactly_once(&read_all_records(&fs).await, &ids.into_iter().collect());
    fs.delete().await.expect("cleanup");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The `ship` example with a spill directory, storage unreachable, killed
/// with SIGKILL mid-run; then a logger on the same spill directory with
/// storage back. Every record that reached a spill file is stored exactly
/// once, no half-written spill file is read, and nothing is quarantined.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_with_sigkill_in_spill_mode_and_restarted() {
    use std::io::Write as _;
    let ship = adls_tests::cargo_build(
        &["--package", "llm-log-callback", "--example", "ship"],
        "examples/ship",
    );
    let dir = spill_dir("sigkill");
    let fs_name = unique_name("sigkill");
    let mut child = std::process::Command::new(ship)
        .env(
            "AZURE_STORAGE_CONNECTION_STRING",
            format!(
                "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={};BlobEndpoint=http://127.0.0.1:9/devstoreaccount1",
                adls_tests::AZURITE_KEY
            ),
        )
        .env("AZURE_STORAGE_FILE_SYSTEM", &fs_name)
        .env("LLM_LOG_CREATE_FILESYSTEM", "false")
        .env("LLM_LOG_BATCH_MAX_RECORDS", "50")
        .env("LLM_LOG_BATCH_MAX_AGE_MS", "20")
        .env("LLM_LOG_RETRY_WINDOW_SECS", "0")
        // spill mode: what the small queue cannot hold goes straight to disk
        .env("LLM_LOG_OVERFLOW", "spill")
        .env("LLM_LOG_QUEUE_MAX_RECORDS", "100")
        .env("LLM_LOG_SPILL_DIR", &dir)
        .env_remove("RUST_LOG")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("run ship");
    let mut stdin = child.stdin.take().expect("stdin");
    let t0 = Instant::now();
    let mut i = 0u64;
    // feed until a good number of batches sit in spill files, then kill mid-stream
    while spill_files(&dir).len() < 8 && t0.elapsed() < Duration::from_secs(60) {
        if let Some(status) = child.try_wait().expect("wait") {
            panic!("ship exited early ({status})");
        }
        for _ in 0..50 {
            let line = sample_record(&format!("kill-{i:06}"), i).to_string();
            writeln!(stdin, "{line}").expect("write");
            i += 1;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    child.kill().expect("SIGKILL");
    let _ = child.wait();
    drop(stdin);
    // what the killed process had made durable: the ids in its spill files
    let mut spilled = HashSet::new();
    for f in spill_files(&dir) {
        let data = std::fs::read(&f).expect("read");
        let payload = data.splitn(3, |&b| b == b'\n').nth(2).expect("payload");
        for line in payload.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            let v: serde_json::Value = serde_json::from_slice(line).expect("record");
            spilled.insert(v["id"].as_str().expect("id").to_string());
        }
    }
    assert!(
        spilled.len() >= 300,
        "only {} records spilled",
        spilled.len()
    );

    let client: Client = emulator_client(&required_env(ENV_AZURITE_HTTP), Dialect::Blob);
    let logger = Logger::start(
        client.clone(),
        Config {
            spill: spill(&dir),
            replay_interval: Duration::from_millis(100),
            ..config(&fs_name)
        },
    )
    .await
    .expect("restart");
    wait_replayed(&logger, spilled.len() as u64).await;
    let m = logger.shutdown(Duration::from_secs(30)).await.metrics;
    assert_eq!(m.replayed, spilled.len() as u64, "{m:?}");
    assert_eq!(m.quarantined_files, 0, "{m:?}");
    assert!(spill_files(&dir).is_empty());
    let fs = client.filesystem(&fs_name).expect("fs");
    assert_exactly_once(&read_all_records(&fs).await, &spilled);
    fs.delete().await.expect("cleanup");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A rolling file on DFS: the flush of the file's *second* batch is held by
/// the proxy past shutdown's deadline and lands afterwards. The batch is
/// spilled with its target (position > 0); the next run's replay appends at a
/// position the server already committed (the emulator refuses that append),
/// and must find the batch there rather than write it again elsewhere.
async fn rolling_commit_that_lands_after_shutdown(endpoint: &str) {
    let (proxy, slow) = proxied(endpoint, Dialect::Dfs).await;
    let direct = emulator_client(endpoint, Dialect::Dfs);
    let fs_name = unique_name("rolllate");
    let dir = spill_dir("rolllate");
    let rolling = LayoutMode::Rolling {
        window: Duration::from_secs(3600),
    };
    let logger = Logger::start(
        slow,
        Config {
            layout: rolling.clone(),
            spill: spill(&dir),
            max_batch_records: 50,
            ..config(&fs_name)
        },
    )
    .await
    .expect("start");
    let first = log_n(&logger, "late", 0..50).await;
    logger.flush().await;
    proxy.set_plan(
        Plan::new().rule(
            Rule::new(Action::Delay(Duration::from_millis(1500)))
                .query_contains("action=flush")
                .first_n(1),
        ),
    );
    let second = log_n(&logger, "late", 50..100).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    let m = logger.shutdown(Duration::from_millis(200)).await.metrics;
    assert_eq!((m.written, m.spilled), (50, 50), "{m:?}");
    // the held flush lands
    tokio::time::sleep(Duration::from_millis(2000)).await;
    proxy.set_plan(Plan::pass());
    let ids: HashSet<String> = first.into_iter().chain(second).collect();
    let fs = direct.filesystem(&fs_name).expect("fs");
    assert_exactly_once(&read_all_records(&fs).await, &ids);
    let logger = Logger::start(
        direct.clone(),
        Config {
            layout: rolling,
            spill: spill(&dir),
            replay_interval: Duration::from_millis(100),
            ..config(&fs_name)
        },
    )
    .await
    .expect("restart");
    wait_replayed(&logger, 50).await;
    let m = logger.shutdown(Duration::from_secs(30)).await.metrics;
    assert_eq!(m.replayed, 50, "{m:?}");
    assert!(spill_files(&dir).is_empty());
    assert_exactly_once(&read_all_records(&fs).await, &ids);
    let _ = fs.delete().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_commit_that_lands_after_shutdown_is_not_written_twice() {
    let server = DfsServer::start().await;
    rolling_commit_that_lands_after_shutdown(&server.endpoint()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dfs_emulator_rolling_commit_that_lands_after_shutdown_is_not_written_twice() {
    rolling_commit_that_lands_after_shutdown(&adls_tests::dfs_emulator_endpoint()).await;
}
