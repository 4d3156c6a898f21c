//! Unit tests of the `Logger` handle: its own rules, with storage unreachable
//! (or a test double of a token provider), so no server is needed.

use super::*;
use crate::ingest::IngestError;

/// A logger whose storage is unreachable (port 9, no retries): enough to
/// exercise the handle's own rules without a server.
async fn offline(config: Config) -> Logger {
    let client = Client::builder(
        adls_rest::Account::emulator("http://127.0.0.1:9/devstoreaccount1").expect("account"),
        adls_rest::Credential::Anonymous,
    )
    .retry(adls_rest::RetryPolicy::none())
    .build()
    .expect("client");
    Logger::start(
        client,
        Config {
            create_filesystem: false,
            batch_retry_window: Duration::from_millis(10),
            ..config
        },
    )
    .await
    .expect("start")
}

#[tokio::test(flavor = "current_thread")]
async fn oversized_and_invalid_records_are_refused_not_accepted() {
    let logger = offline(Config {
        max_batch_bytes: 1_000,
        queue_max_bytes: 10_000,
        ..Config::default()
    })
    .await;
    let big = serde_json::json!({"id": "big", "messages": "x".repeat(2_000)});
    match logger.log_value(big) {
        Err(LogError::RecordTooLarge { bytes, limit }) => {
            assert!(bytes > 2_000);
            assert_eq!(limit, 1_000);
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        logger.log_json("[1]"),
        Err(LogError::InvalidRecord(_))
    ));
    assert!(matches!(
        logger.log_json("{\"prompt_tokens\":-1}"),
        Err(LogError::InvalidRecord(_))
    ));
    logger
        .log_json("{\"id\":\"ok\"}")
        .expect("a small record is accepted");
    let r = logger.shutdown(Duration::from_secs(5)).await;
    assert_eq!(r.metrics.rejected, 3);
    assert_eq!(r.metrics.accepted, 1);
    // storage is unreachable and spilling is off: dropped, with its reason, never lost from the ledger
    assert_eq!(r.metrics.dropped.total(), 1, "{:?}", r.metrics);
    assert!(r.complete);
    assert!(matches!(logger.log_json("{}"), Err(LogError::ShutDown)));
}

/// Storage that accepts connections and never answers, with uploads
/// busy: shutdown must still end at its deadline, with every record
/// accounted for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_keeps_its_deadline_while_uploads_hang() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let held = tokio::spawn(async move {
        let mut sockets = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            sockets.push(s); // read nothing, answer nothing
        }
    });
    let client = Client::builder(
        adls_rest::Account::emulator(&format!("http://127.0.0.1:{port}/devstoreaccount1"))
            .expect("account"),
        adls_rest::Credential::Anonymous,
    )
    .build()
    .expect("client");
    for layout in [LayoutMode::PerRecord, LayoutMode::PerBatch] {
        let logger = Logger::start(
            client.clone(),
            Config {
                create_filesystem: false,
                layout: layout.clone(),
                max_batch_records: 10,
                max_concurrent_uploads: 1,
                ..Config::default()
            },
        )
        .await
        .expect("start");
        for i in 0..200 {
            logger
                .log_json(&format!("{{\"id\":\"r{i}\"}}"))
                .expect("accepted");
        }
        let t0 = Instant::now();
        let r = logger.shutdown(Duration::from_millis(300)).await;
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "{layout:?}: shutdown took {:?}",
            t0.elapsed()
        );
        assert!(r.complete, "{layout:?}: {:?}", r.metrics);
        assert_eq!(r.metrics.accepted, 200);
        assert_eq!(
            r.metrics.dropped.shutdown, 200,
            "{layout:?}: {:?}",
            r.metrics
        );
    }
    held.abort();
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("llm-log-{name}-{}", uuid::Uuid::new_v4()))
}

/// The lines of every spill file in `dir`, as written.
fn spilled_lines(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).expect("spill dir").flatten() {
        let p = e.path();
        if p.extension().is_some_and(|x| x == "spill") {
            let data = std::fs::read(&p).expect("read spill");
            // magic line, header line, then the payload
            let payload = data.splitn(3, |&b| b == b'\n').nth(2).expect("payload");
            let text = std::str::from_utf8(payload).expect("utf-8");
            out.extend(text.lines().map(str::to_string));
        }
    }
    out
}

/// The records of every spill file in `dir`, parsed.
fn spilled_records(dir: &std::path::Path) -> Vec<Value> {
    spilled_lines(dir)
        .iter()
        .map(|l| serde_json::from_str(l).expect("record"))
        .collect()
}

/// Journal mode in `dir`, with a 1 MiB cap.
fn journaled(dir: impl Into<std::path::PathBuf>) -> Option<crate::config::JournalConfig> {
    Some(crate::config::JournalConfig {
        dir: dir.into(),
        max_bytes: 1 << 20,
    })
}

/// A logger whose storage is unreachable and whose batches spill to `dir`.
async fn spilling(dir: &std::path::Path, config: Config) -> Logger {
    offline(Config {
        spill: Some(crate::config::SpillConfig {
            dir: dir.to_path_buf(),
            max_bytes: 1 << 20,
        }),
        ..config
    })
    .await
}

#[tokio::test(flavor = "current_thread")]
async fn ingest_takes_a_group_whole_skips_retried_ids_and_says_when_busy() {
    let dir = temp_dir("ingest");
    let logger = spilling(
        &dir,
        Config {
            queue_max_records: 5,
            ..Config::default()
        },
    )
    .await;
    // one bad record refuses the group; nothing of it is kept
    let bad = logger
        .ingest(&[r#"{"id":"a"}"#, r#"{"prompt_tokens":"x"}"#])
        .await
        .expect_err("invalid");
    assert!(
        matches!(bad, IngestError::Invalid { index: 1, .. }),
        "{bad}"
    );
    assert_eq!(logger.metrics().accepted, 0);
    let first = [r#"{"id":"a"}"#, r#"{"id":"b"}"#, r#"{"status":"no id"}"#];
    let took = logger.ingest(&first).await.expect("ingest");
    assert_eq!((took.accepted, took.duplicates), (3, 0));
    // a sender's retry of the same group: the ids are skipped, an id-less record is not
    let again = logger.ingest(&first).await.expect("ingest");
    assert_eq!((again.accepted, again.duplicates), (1, 2));
    // duplicates inside one group too
    let inner = logger
        .ingest(&[r#"{"id":"c"}"#, r#"{"id":"c"}"#])
        .await
        .expect("ingest");
    assert_eq!((inner.accepted, inner.duplicates), (1, 1));
    // five fit in the queue at most: a group of six never will
    let six: Vec<String> = (0..6).map(|i| format!(r#"{{"id":"big{i}"}}"#)).collect();
    let six: Vec<&str> = six.iter().map(String::as_str).collect();
    assert!(matches!(
        logger.ingest(&six).await,
        Err(IngestError::GroupTooLarge { records: 6, .. })
    ));
    let r = logger.shutdown(Duration::from_secs(5)).await;
    assert_eq!(r.metrics.accepted, 5);
    assert_eq!(r.metrics.duplicates, 3);
    assert_eq!(spilled_records(&dir).len(), 5);
    assert!(matches!(
        logger.ingest(&first).await,
        Err(IngestError::ShutDown)
    ));
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn journaled_records_survive_a_crash_and_come_back_once() {
    fn assert_send<T: Send>(_: &T) {}
    let dir = temp_dir("journal");
    let jdir = dir.join("journal");
    // a process that acknowledged two records and died before batching them
    {
        let (j, _) = Journal::open(&jdir, 1 << 20, Duration::from_secs(600)).expect("open");
        let j = std::sync::Arc::new(j);
        j.append(&[b"{\"id\":\"x1\"}\n", b"{\"id\":\"x2\"}\n"])
            .await
            .expect("append");
    }
    let config = Config {
        journal: journaled(jdir.clone()),
        ..Config::default()
    };
    let logger = offline(config.clone()).await;
    let m = logger.metrics();
    assert_eq!((m.journal_recovered, m.accepted), (2, 2), "{m:?}");
    // a sender retrying what was acknowledged before the crash: skipped
    let retry = logger.ingest(&[r#"{"id":"x1"}"#, r#"{"id":"x3"}"#]);
    assert_send(&retry);
    let took = retry.await.expect("ingest");
    assert_eq!((took.accepted, took.duplicates), (1, 1));
    let r = logger.shutdown(Duration::from_secs(5)).await;
    // storage is unreachable: all three wait in the spill directory inside the journal's
    assert_eq!(r.metrics.spilled, 3, "{:?}", r.metrics);
    assert_eq!(r.metrics.journal_pending, 0, "{:?}", r.metrics);
    assert_eq!(spilled_records(&jdir.join("spill")).len(), 3);
    // the next start queues nothing again (they are secured in spill files),
    // but still knows the ids
    let logger = offline(config).await;
    assert_eq!(logger.metrics().journal_recovered, 0);
    let again = logger
        .ingest(&[r#"{"id":"x2"}"#, r#"{"id":"x3"}"#])
        .await
        .expect("ingest");
    assert_eq!((again.accepted, again.duplicates), (0, 2));
    logger.shutdown(Duration::from_secs(5)).await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "current_thread")]
async fn json_text_is_stored_as_it_came_unless_redaction_changes_it() {
    let dir = temp_dir("raw");
    let logger = spilling(&dir, Config::default()).await;
    let exact =
        r#"{"id":"r1","response_cost":1.50,"x":1e2,"z":{"b":1,"a":[0.00022500000000000002]}}"#;
    let pretty = "{\n  \"id\": \"r2\",\r\n  \"m\": \"a b\"\n}\n";
    let no_id = r#"  {"status":"success","n":1}  "#;
    let image = r#"{"id":"r4","messages":[{"url":"data:image/png;base64,AAAA"}]}"#;
    for text in [exact, pretty, no_id, image, "{}"] {
        logger.log_json(text).expect("accepted");
    }
    assert!(logger.log_json(r#"{"prompt_tokens":-1}"#).is_err());
    assert!(logger.log_json("[]").is_err());
    let r = logger.shutdown(Duration::from_secs(5)).await;
    assert_eq!((r.metrics.accepted, r.metrics.rejected), (5, 2));
    let lines = spilled_lines(&dir);
    assert_eq!(lines.len(), 5, "{lines:?}");
    // bytes as received: key order, number spellings and all
    assert!(lines.contains(&exact.to_string()), "{lines:?}");
    assert!(
        lines.contains(&"{   \"id\": \"r2\",    \"m\": \"a b\" }".to_string()),
        "{lines:?}"
    );
    let generated: Vec<&String> = lines
        .iter()
        .filter(|l| l.starts_with(r#"{"id":""#) && l.ends_with(r#"","status":"success","n":1}"#))
        .collect();
    assert_eq!(generated.len(), 1, "{lines:?}");
    let empty: Vec<Value> = lines
        .iter()
        .map(|l| serde_json::from_str::<Value>(l).expect("JSON"))
        .filter(|v| v.as_object().is_some_and(|o| o.len() == 1))
        .collect();
    assert_eq!(
        empty.len(),
        1,
        "`{{}}` gets an id and nothing else: {lines:?}"
    );
    assert!(empty[0]["id"].as_str().is_some_and(|id| id.len() == 36));
    // redaction still applies where it changes something
    let redacted: Value =
        serde_json::from_str(lines.iter().find(|l| l.contains("\"r4\"")).expect("r4"))
            .expect("JSON");
    assert_eq!(
        redacted["messages"][0]["url"],
        "data:image/png;base64,[stripped 4 bytes]"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "current_thread")]
async fn starts_while_storage_is_down_and_keeps_what_it_takes() {
    let dir = temp_dir("down");
    let client = Client::builder(
        adls_rest::Account::emulator("http://127.0.0.1:9/devstoreaccount1").expect("account"),
        adls_rest::Credential::Anonymous,
    )
    .retry(adls_rest::RetryPolicy::none())
    .build()
    .expect("client");
    let logger = Logger::start(
        client,
        Config {
            create_filesystem: true,
            batch_retry_window: Duration::from_millis(10),
            spill: Some(crate::config::SpillConfig {
                dir: dir.clone(),
                max_bytes: 1 << 20,
            }),
            ..Config::default()
        },
    )
    .await
    .expect("a gateway must not fail to start because storage is down");
    logger.log_json(r#"{"id":"kept"}"#).expect("accepted");
    let r = logger.shutdown(Duration::from_secs(5)).await;
    assert_eq!(r.metrics.spilled, 1, "{:?}", r.metrics);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "current_thread")]
async fn failure_records_get_status_and_error() {
    let dir = temp_dir("failure");
    let logger = offline(Config {
        spill: Some(crate::config::SpillConfig {
            dir: dir.clone(),
            max_bytes: 1 << 20,
        }),
        ..Config::default()
    })
    .await;
    let record = LogRecord {
        id: Field::Value("r-1".into()),
        ..LogRecord::default()
    };
    logger
        .log_failure(record, "litellm.RateLimitError: slow down")
        .expect("accepted");
    let ok = LogRecord {
        id: Field::Value("r-2".into()),
        error_str: Field::Value("kept as given".into()),
        ..LogRecord::default()
    };
    logger.log_success(ok).expect("accepted");
    let r = logger.shutdown(Duration::from_secs(5)).await;
    assert_eq!(r.metrics.accepted, 2);
    assert_eq!(r.metrics.spilled, 2, "{:?}", r.metrics);
    let mut records = spilled_records(&dir);
    records.sort_by_key(|r| r["id"].as_str().map(str::to_string));
    assert_eq!(records.len(), 2);
    assert_eq!(records[0]["id"], "r-1");
    assert_eq!(records[0]["status"], "failure");
    assert_eq!(records[0]["error_str"], "litellm.RateLimitError: slow down");
    assert_eq!(records[1]["status"], "success");
    assert_eq!(records[1]["error_str"], "kept as given");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A token provider that panics once armed (after `Logger::start`): a
/// bug in a credential (or anything else in an upload) must not take its
/// batch out of the ledger.
struct PanickingToken(std::sync::atomic::AtomicBool);

impl adls_rest::TokenCredential for PanickingToken {
    fn get_token<'a>(
        &'a self,
        _scope: &'a str,
    ) -> futures_util::future::BoxFuture<'a, Result<adls_rest::AccessToken, adls_rest::Error>> {
        let armed = self.0.load(std::sync::atomic::Ordering::SeqCst);
        Box::pin(async move {
            if armed {
                panic!("token provider bug");
            }
            Err(adls_rest::Error::new(
                adls_rest::ErrorKind::Credential,
                "not armed yet",
            ))
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_in_an_upload_keeps_the_batch_in_the_ledger() {
    let token = std::sync::Arc::new(PanickingToken(Default::default()));
    let client = Client::builder(
        adls_rest::Account::emulator("http://127.0.0.1:9/devstoreaccount1").expect("account"),
        adls_rest::Credential::bearer(token.clone()),
    )
    .retry(adls_rest::RetryPolicy::none())
    .build()
    .expect("client");
    for spill in [None, Some(temp_dir("panic"))] {
        token.0.store(false, std::sync::atomic::Ordering::SeqCst);
        let logger = Logger::start(
            client.clone(),
            Config {
                create_filesystem: false,
                max_batch_records: 5,
                spill: spill.clone().map(|dir| crate::config::SpillConfig {
                    dir,
                    max_bytes: 1 << 20,
                }),
                ..Config::default()
            },
        )
        .await
        .expect("start");
        token.0.store(true, std::sync::atomic::Ordering::SeqCst);
        for i in 0..12 {
            logger
                .log_json(&format!("{{\"id\":\"p{i}\"}}"))
                .expect("accepted");
        }
        let r = logger.shutdown(Duration::from_secs(5)).await;
        let m = &r.metrics;
        assert!(r.complete, "{m:?}");
        assert_eq!(m.written, 0);
        match &spill {
            Some(dir) => {
                assert_eq!(m.spilled, 12, "{m:?}");
                assert_eq!(spilled_records(dir).len(), 12);
                let _ = std::fs::remove_dir_all(dir);
            }
            // nothing was sent, but a panic says nothing about how far it got
            None => assert_eq!(m.unknown, 12, "{m:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_last_handle_stops_the_tasks() {
    let metrics = tokio::runtime::Handle::current().metrics();
    let before = metrics.num_alive_tasks();
    let dir = temp_dir("drop");
    let logger = offline(Config {
        spill: Some(crate::config::SpillConfig {
            dir: dir.clone(),
            max_bytes: 1 << 20,
        }),
        ..Config::default()
    })
    .await;
    let clone = logger.clone();
    logger.log_json("{\"id\":\"d1\"}").expect("accepted");
    assert!(
        metrics.num_alive_tasks() >= before + 2,
        "batcher and replayer run"
    );
    drop(logger);
    drop(clone);
    let t0 = Instant::now();
    while metrics.num_alive_tasks() > before && t0.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        metrics.num_alive_tasks(),
        before,
        "the logger's tasks outlived its last handle"
    );
    // what was queued was still written or spilled on the way out
    assert_eq!(spilled_records(&dir).len(), 1);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Keeps the serializer thread from taking records while it is held.
fn hold_serializer(
    logger: &Logger,
) -> std::sync::MutexGuard<'_, std::collections::VecDeque<Entry>> {
    logger
        .shared
        .serializing
        .lock()
        .unwrap_or_else(|p| p.into_inner())
}

/// `log` hands the record over as it is: the queue counts it at its line's
/// bound, and the serializer thread redacts it, gives it an id and
/// serializes it.
#[tokio::test(flavor = "current_thread")]
async fn log_hands_the_record_over_and_the_serializer_redacts_and_serializes_it() {
    let dir = temp_dir("handoff");
    let redaction = Redaction {
        content: ContentPolicy::Hash,
        ..Redaction::default()
    };
    let logger = spilling(
        &dir,
        Config {
            redaction: redaction.clone(),
            max_batch_age: Duration::from_secs(60),
            ..Config::default()
        },
    )
    .await;
    let record = LogRecord::from_value(serde_json::json!({
        "model": "gpt-4o",
        "messages": [{"role": "user", "content": "my card is 4111 1111 1111 1111"}],
        "metadata": {"image": "data:image/png;base64,iVBORw0KGgoAAAANSUhEUg=="},
    }))
    .expect("record");
    let bound = serialize::line_bound(&record, &redaction);
    {
        // the serializer waits while this is held: the record stays a record
        let _hold = hold_serializer(&logger);
        logger.log(record).expect("accepted");
        let m = logger.metrics();
        assert_eq!((m.accepted, m.queue_records), (1, 1));
        assert_eq!(m.queue_bytes, bound as u64, "queued at its bound");
    }
    let r = logger.shutdown(Duration::from_secs(5)).await;
    assert_eq!(r.metrics.spilled, 1, "{:?}", r.metrics);
    let lines = spilled_lines(&dir);
    assert_eq!(lines.len(), 1);
    assert!(lines[0].len() < bound, "{} vs {bound}", lines[0].len());
    let v: Value = serde_json::from_str(&lines[0]).expect("json");
    assert_eq!(v["id"].as_str().map(str::len), Some(36), "an id was given");
    assert_eq!(v["messages"]["redacted"], true);
    assert!(!lines[0].contains("4111") && !lines[0].contains("iVBOR"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// An offline logger with no batch due for an hour: only the serializer
/// thread moves what `log` queued.
async fn offline_no_batch_due() -> Logger {
    offline(Config {
        max_batch_age: Duration::from_secs(3_600),
        ..Config::default()
    })
    .await
}

#[tokio::test(flavor = "current_thread")]
async fn records_wait_as_lines_within_milliseconds_not_for_a_batch() {
    let logger = offline_no_batch_due().await;
    let record = LogRecord {
        id: Field::Value("r1".into()),
        model: Field::Value("gpt-4o".into()),
        response_cost: Field::Value(serde_json::Number::from_f64(0.5).expect("finite")),
        ..LogRecord::default()
    };
    let line = serde_json::to_vec(&record).expect("json").len() + 1;
    let bound = serialize::line_bound(&record, &Redaction::default());
    assert!(bound > line, "a float counts 24 bytes in the bound");
    assert!(logger.shared.queue.has_serializer(), "the thread runs");
    {
        let _hold = hold_serializer(&logger);
        logger.log(record).expect("accepted");
        assert_eq!(logger.metrics().queue_records, 1);
        assert_eq!(logger.metrics().queue_bytes, bound as u64, "a record first");
    }
    // no batch is due for an hour: only the serializer thread can make it a line
    let t0 = Instant::now();
    while logger.metrics().queue_bytes != line as u64 {
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "still counted at {} bytes (bound {bound}, line {line})",
            logger.metrics().queue_bytes
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    assert_eq!(logger.metrics().queue_records, 1);
    let r = logger.shutdown(Duration::from_millis(200)).await;
    assert_eq!(r.metrics.accepted, 1);
    assert_eq!(r.metrics.queue_records, 0);
    assert_eq!(r.metrics.settled(), 1, "{:?}", r.metrics);
}

#[tokio::test(flavor = "current_thread")]
async fn after_a_burst_the_serializer_keeps_a_small_buffer() {
    let logger = offline_no_batch_due().await;
    // more records than the spare keeps, all in one take: the serializer
    // waits while this is held
    let n = serialize::SPARE_SLOTS * 3;
    {
        let _hold = hold_serializer(&logger);
        for i in 0..n {
            let record = LogRecord {
                id: Field::Value(format!("r{i}")),
                ..LogRecord::default()
            };
            logger.log(record).expect("accepted");
        }
    }
    let t0 = Instant::now();
    while logger.shared.queue.has_raw() {
        assert!(t0.elapsed() < Duration::from_secs(10), "not serialized");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let spare = logger
        .shared
        .serializing
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .capacity();
    assert!(
        spare <= serialize::SPARE_SLOTS,
        "{spare} slots kept after a burst of {n}"
    );
    let r = logger.shutdown(Duration::from_millis(200)).await;
    assert_eq!(r.metrics.accepted, n as u64);
    assert_eq!(r.metrics.settled(), n as u64, "{:?}", r.metrics);
}

/// A journaled line longer than this run's `max_batch_bytes` (the limit was
/// lowered between runs) goes alone, in a batch of its own. No batch could
/// take it before: the batcher spun on empty batches, every line behind it
/// waited, and `shutdown` never returned.
#[test]
fn a_recovered_line_over_the_batch_limit_is_batched_alone() {
    let dir = temp_dir("oversized-recovered");
    let jdir = dir.join("journal");
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let run = {
        let jdir = jdir.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async {
                let (j, _) = Journal::open(&jdir, 1 << 20, Duration::from_secs(600)).expect("open");
                let j = std::sync::Arc::new(j);
                let big = format!("{{\"id\":\"big\",\"model\":\"{}\"}}\n", "x".repeat(4000));
                j.append(&[big.as_bytes(), b"{\"id\":\"small\"}\n"])
                    .await
                    .expect("append");
                drop(j);
                let logger = offline(Config {
                    journal: journaled(jdir.clone()),
                    max_batch_bytes: 1024,
                    max_batch_age: Duration::from_millis(20),
                    ..Config::default()
                })
                .await;
                assert_eq!(logger.metrics().accepted, 2);
                let r = logger.shutdown(Duration::from_secs(5)).await;
                let _ = done_tx.send(r);
            });
        })
    };
    let r = done_rx
        .recv_timeout(Duration::from_secs(30))
        .expect("shutdown returned within 30 s");
    run.join().expect("the logger's thread");
    // storage is unreachable: both wait in the journal's spill directory
    assert!(r.complete, "{:?}", r.metrics);
    assert_eq!(
        (r.metrics.accepted, r.metrics.spilled),
        (2, 2),
        "{:?}",
        r.metrics
    );
    let lines = spilled_lines(&jdir.join("spill"));
    assert_eq!(lines.len(), 2);
    assert!(lines.iter().any(|l| l.len() > 4000));
    let _ = std::fs::remove_dir_all(&dir);
}

/// The spill policy's overflow after the queue closed: the batcher may have
/// taken its last look at the overflow, so an entry put there would never
/// be settled. It is refused (as a push to the closed queue is), not
/// accepted.
#[tokio::test(flavor = "current_thread")]
async fn the_overflow_refuses_after_shutdown() {
    let dir = temp_dir("overflow-closed");
    let logger = spilling(
        &dir,
        Config {
            overflow: OverflowPolicy::Spill,
            queue_max_records: 1,
            ..Config::default()
        },
    )
    .await;
    logger.log_json(r#"{"id":"queued"}"#).expect("queued");
    // the queue is full: this one goes to the overflow
    logger
        .log_json(r#"{"id":"overflowing"}"#)
        .expect("overflow");
    let r = logger.shutdown(Duration::from_secs(5)).await;
    assert!(r.complete, "{:?}", r.metrics);
    assert_eq!(
        (r.metrics.accepted, r.metrics.spilled),
        (2, 2),
        "{:?}",
        r.metrics
    );
    // a producer that saw the queue full just before it closed
    let late = Entry::line(b"{\"id\":\"late\"}\n".to_vec(), None, Instant::now(), None);
    assert!(matches!(logger.overflow(late), Err(LogError::ShutDown)));
    let m = logger.metrics();
    assert_eq!((m.accepted, m.settled(), m.rejected), (2, 2, 1), "{m:?}");
    assert_eq!(m.queue_records, 0, "{m:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The overflow holds lines (not records, several times larger in memory),
/// at most `queue_max_bytes` of them counted with their slots (it was
/// bounded by the lines' bytes alone: a million small records held about
/// 1 GB in slots), and is spilled in batches no larger than
/// `max_batch_records`, not as one file.
#[tokio::test(flavor = "current_thread")]
async fn the_overflow_is_bounded_and_spilled_in_batches() {
    let dir = temp_dir("overflow-batches");
    let logger = spilling(
        &dir,
        Config {
            overflow: OverflowPolicy::Spill,
            queue_max_records: 20,
            queue_max_bytes: 20_000,
            max_batch_bytes: 10_000,
            max_batch_records: 5,
            max_batch_age: Duration::from_secs(3600),
            ..Config::default()
        },
    )
    .await;
    // no await in between: the batcher does not run, so 20 are queued, the
    // overflow takes what fits in 20 000 bytes with the slots, and the rest
    // are dropped
    let mut answers = Vec::new();
    for i in 0..50 {
        answers.push(logger.log(LogRecord {
            id: Field::Value(format!("r{i}")),
            ..LogRecord::default()
        }));
    }
    let ok = answers.iter().filter(|a| a.is_ok()).count();
    let overflowed = {
        let o = logger.shared.overflow.lock().expect("overflow");
        assert!(o.0.iter().all(|e| e.as_line().is_some()), "lines only");
        let held: usize = o.0.iter().map(|e| e.bytes + size_of::<Entry>()).sum();
        assert_eq!(held, o.1);
        assert!(
            held <= 20_000 && held + 13 + size_of::<Entry>() > 20_000,
            "{held}"
        );
        o.0.len()
    };
    assert!((10..30).contains(&overflowed), "{overflowed}");
    assert_eq!(ok, 20 + overflowed, "{answers:?}");
    let r = logger.shutdown(Duration::from_secs(5)).await;
    let m = &r.metrics;
    assert!(r.complete, "{m:?}");
    assert_eq!(m.accepted, 50, "{m:?}");
    assert_eq!(
        (m.spilled, m.dropped.spill_failed),
        (ok as u64, 50 - ok as u64),
        "{m:?}"
    );
    let mut files = 0;
    for e in std::fs::read_dir(&dir).expect("spill dir").flatten() {
        let p = e.path();
        if p.extension().is_some_and(|x| x == "spill") {
            files += 1;
            let data = std::fs::read(&p).expect("read");
            let payload = data.splitn(3, |&b| b == b'\n').nth(2).expect("payload");
            let n = payload.iter().filter(|&&b| b == b'\n').count();
            assert!((1..=5).contains(&n), "{}: {n} records", p.display());
        }
    }
    assert_eq!(files, 4 + overflowed.div_ceil(5));
    assert_eq!(spilled_records(&dir).len(), ok);
    let _ = std::fs::remove_dir_all(&dir);
}

/// An `ingest` whose journal write is under way when `shutdown` closes the
/// queue: its records are durable, so it answers that they were taken, but
/// this run's batcher may be gone. They are not counted in this run (whose
/// ledger stays whole) and stay pending in the journal, and the next start
/// sends them. They were counted as accepted and left in a closed queue
/// before: `accepted` never matched the report's outcomes.
#[tokio::test(flavor = "current_thread")]
async fn an_ingest_journaled_during_shutdown_is_sent_by_the_next_start() {
    let dir = temp_dir("ingest-shutdown");
    let jdir = dir.join("journal");
    let config = Config {
        journal: journaled(jdir.clone()),
        ..Config::default()
    };
    let logger = offline(config.clone()).await;
    let l = logger.clone();
    let ingest = tokio::spawn(async move { l.ingest(&[r#"{"id":"late"}"#]).await });
    // the ingest runs until it waits for the journal's write (one thread
    // here: it cannot go on before `shutdown` closed the queue)
    tokio::task::yield_now().await;
    let r = logger.shutdown(Duration::from_secs(5)).await;
    let took = ingest.await.expect("join").expect("durable");
    assert_eq!(took.accepted, 1);
    let m = logger.metrics();
    assert!(r.complete, "{:?}", r.metrics);
    assert_eq!(
        (m.accepted, m.settled(), m.queue_records),
        (0, 0, 0),
        "{m:?}"
    );
    assert_eq!(m.journal_pending, 1, "{m:?}");
    drop(logger);
    let next = offline(config).await;
    let m = next.metrics();
    assert_eq!((m.journal_recovered, m.accepted), (1, 1), "{m:?}");
    let r = next.shutdown(Duration::from_secs(5)).await;
    assert!(r.complete, "{:?}", r.metrics);
    assert_eq!(r.metrics.spilled, 1, "{:?}", r.metrics);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A retry that arrives while the first attempt's group is still being
/// journaled is told to come back (`Busy`), not acknowledged as a
/// duplicate: the first write may still fail, and a duplicate's 200 would
/// then have lost the records. Once the first is journaled, the retry is a
/// duplicate. An `ingest` dropped meanwhile (a caller's timeout) still
/// takes its group: it was not left journaled but unqueued and unnoted.
#[tokio::test(flavor = "current_thread")]
async fn a_retry_while_the_first_attempt_is_journaled_waits_for_its_outcome() {
    let dir = temp_dir("ingest-in-progress");
    let logger = offline(Config {
        journal: journaled(dir.join("journal")),
        ..Config::default()
    })
    .await;
    let l = logger.clone();
    let first = tokio::spawn(async move { l.ingest(&[r#"{"id":"a"}"#]).await });
    // it runs until it waits for its journal write (one thread here)
    tokio::task::yield_now().await;
    match logger.ingest(&[r#"{"id":"a"}"#, r#"{"id":"c"}"#]).await {
        Err(IngestError::Busy { .. }) => {}
        other => panic!("a retry during the first write: {other:?}"),
    }
    // the first attempt is dropped (its caller gave up); its write goes on
    first.abort();
    let t0 = std::time::Instant::now();
    let retry = loop {
        match logger.ingest(&[r#"{"id":"a"}"#, r#"{"id":"c"}"#]).await {
            Err(IngestError::Busy { .. }) if t0.elapsed() < Duration::from_secs(10) => {
                tokio::time::sleep(Duration::from_millis(10)).await
            }
            other => break other.expect("taken"),
        }
    };
    assert_eq!((retry.accepted, retry.duplicates), (1, 1));
    let r = logger.shutdown(Duration::from_secs(5)).await;
    assert!(r.complete, "{:?}", r.metrics);
    assert_eq!(r.metrics.accepted, 2, "{:?}", r.metrics);
    let mut ids: Vec<String> = spilled_records(&dir.join("journal").join("spill"))
        .iter()
        .map(|v| v["id"].as_str().unwrap_or_default().to_string())
        .collect();
    ids.sort();
    assert_eq!(ids, ["a", "c"]);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A crash between writing a journaled batch's in-flight copy and marking
/// its records in the journal: the next start finds them in both. The copy
/// names their journal positions, so the journal does not queue them again
/// and the copy's replay alone sends them (it sent them twice before: once
/// from the journal to a new file, once from the copy to its own target).
#[tokio::test(flavor = "current_thread")]
async fn records_held_by_an_in_flight_copy_are_not_queued_again() {
    let dir = temp_dir("inflight-crash");
    let jdir = dir.join("journal");
    {
        let (j, _) = Journal::open(&jdir, 1 << 20, Duration::from_secs(600)).expect("open");
        let j = std::sync::Arc::new(j);
        let line: &[u8] = b"{\"id\":\"a\"}\n";
        let at = j
            .append(&[line, b"{\"id\":\"b\"}\n"])
            .await
            .expect("append");
        let spill = SpillDir::open(&jdir.join("spill"), 1 << 20, "inst").expect("spill");
        let target = crate::uploader::Target::new_file("x/a.ndjson".into(), crate::Format::Ndjson);
        // `a`'s batch is copied, then the process dies before `journal.secure`
        spill
            .write_inflight(&target, 1, line.len() as u64, line, Some((j.id(), &[at])))
            .expect("in-flight copy");
    }
    let logger = offline(Config {
        journal: journaled(jdir.clone()),
        replay_interval: Duration::from_secs(3600),
        ..Config::default()
    })
    .await;
    let m = logger.metrics();
    // `b` only: `a` is the copy's to send
    assert_eq!((m.journal_recovered, m.accepted), (1, 1), "{m:?}");
    let r = logger.shutdown(Duration::from_secs(5)).await;
    assert!(r.complete, "{:?}", r.metrics);
    let mut ids: Vec<String> = spilled_records(&jdir.join("spill"))
        .iter()
        .map(|v| v["id"].as_str().unwrap_or_default().to_string())
        .collect();
    ids.sort();
    assert_eq!(ids, ["a", "b"], "each once, in the spill directory");
    // and the journal does not hold `a` as pending any more
    drop(logger);
    let (_j, rec) = Journal::open(&jdir, 1 << 20, Duration::from_secs(600)).expect("reopen");
    assert!(rec.iter().all(|r| !r.pending), "{rec:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A group larger than the journal can ever hold is refused as too large
/// (a 4xx the sender does not retry), not answered "busy" for ever.
#[tokio::test(flavor = "current_thread")]
async fn a_group_larger_than_the_journal_is_too_large_not_busy() {
    let dir = temp_dir("journal-too-small");
    let logger = offline(Config {
        journal: Some(crate::config::JournalConfig {
            dir: dir.join("journal"),
            max_bytes: 2_000,
        }),
        ..Config::default()
    })
    .await;
    let big = format!("{{\"id\":\"big\",\"model\":\"{}\"}}", "x".repeat(3_000));
    match logger.ingest(&[big.as_str()]).await {
        Err(IngestError::GroupTooLarge { records: 1, bytes }) => assert!(bytes > 3_000),
        other => panic!("{other:?}"),
    }
    let small = logger.ingest(&[r#"{"id":"small"}"#]).await.expect("taken");
    assert_eq!(small.accepted, 1);
    let r = logger.shutdown(Duration::from_secs(5)).await;
    assert_eq!(
        (r.metrics.accepted, r.metrics.rejected),
        (1, 1),
        "{:?}",
        r.metrics
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The journal refuses to mark a batch secured after marking part of it
/// (the batch spans two segments, and the second one's `.done` cannot be
/// written). The batch's in-flight copy is kept, not removed: removing it
/// left the first segment's records marked secured and held nowhere but in
/// memory, and a crash during the upload lost them. Here the process
/// "crashes" (is looked at from outside) while the batch is still being
/// retried: every record is held by the journal or a file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partly_failed_mark_keeps_the_in_flight_copy() {
    let dir = temp_dir("partial-secure");
    let jdir = dir.join("journal");
    {
        let (j, _) = Journal::open(&jdir, 1 << 20, Duration::from_secs(600)).expect("open");
        let j = std::sync::Arc::new(j);
        j.append(&[b"{\"id\":\"a\"}\n"]).await.expect("a");
    }
    // this run writes segment 2; its `.done` cannot be created
    std::fs::create_dir_all(jdir.join("0000000000000002.done")).expect("blocker");
    let client = Client::builder(
        adls_rest::Account::emulator("http://127.0.0.1:9/devstoreaccount1").expect("account"),
        adls_rest::Credential::Anonymous,
    )
    .retry(adls_rest::RetryPolicy::none())
    .build()
    .expect("client");
    let logger = Logger::start(
        client,
        Config {
            create_filesystem: false,
            journal: journaled(jdir.clone()),
            max_batch_age: Duration::from_millis(20),
            // the batch stays in its retries while we look
            batch_retry_window: Duration::from_secs(60),
            replay_interval: Duration::from_secs(3600),
            ..Config::default()
        },
    )
    .await
    .expect("start");
    logger.ingest(&[r#"{"id":"b"}"#]).await.expect("b");
    // wait until the batch was copied and `a` marked (segment 1's `.done`)
    let t0 = std::time::Instant::now();
    while !jdir.join("0000000000000001.done").exists() && t0.elapsed() < Duration::from_secs(20) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(logger.metrics().in_flight, 2, "{:?}", logger.metrics());
    // a crash now: what holds each record?
    let (_j, rec) = Journal::open(&jdir, 1 << 20, Duration::from_secs(600)).expect("reopen");
    let mut held: Vec<String> = rec
        .iter()
        .filter(|r| r.pending)
        .map(|r| String::from_utf8_lossy(&r.line).trim_end().to_string())
        .chain(spilled_lines(&jdir.join("spill")))
        .chain(spilled_lines(&jdir.join("spill").join("inflight")))
        .collect();
    held.sort();
    held.dedup();
    assert_eq!(held, [r#"{"id":"a"}"#, r#"{"id":"b"}"#]);
    drop(logger);
    let _ = std::fs::remove_dir_all(&dir);
}
