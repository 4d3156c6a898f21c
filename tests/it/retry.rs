//! Retries: the resent body is byte-identical and every attempt is re-signed;
//! what is retried and what is not; `Retry-After`; ambiguous attempts
//! (applied by the service, answer lost) reconciled with a properties call,
//! and never accepted when the earlier attempt did not in fact succeed.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use adls_rest::credential::{AccessToken, BoxFuture, TokenCredential};
use adls_rest::secret::Secret;
use adls_rest::{
    Account, Checksums, Client, CreateMode, CreateOptions, Credential, Dialect, Error, FlushOptions,
};
use adls_tests::dfs_server::{DfsServer, Fault, Matcher, Options, Reappend};
use adls_tests::fault_proxy::{Action, FaultProxy, Plan, Rule};
use adls_tests::{
    dfs_emulator_endpoint, emulator_client, required_env, unique_name, ENV_AZURITE_HTTP,
};
use bytes::Bytes;
use http::Method;

fn appends() -> Matcher {
    Matcher::any().method(Method::PATCH).action("append")
}

fn flushes() -> Matcher {
    Matcher::any().method(Method::PATCH).action("flush")
}

async fn new_file(server: &DfsServer) -> (Client, adls_rest::File) {
    let client = emulator_client(&server.endpoint(), Dialect::Dfs);
    let fs = client.filesystem(&unique_name("retry")).expect("fs");
    fs.create().await.expect("create fs");
    let file = fs.file("dir/log.ndjson").expect("path");
    file.create(&CreateOptions::default())
        .await
        .expect("create");
    (client, file)
}

#[tokio::test]
async fn retried_append_resends_identical_bytes_and_is_resigned() {
    let server = DfsServer::start().await;
    let (client, file) = new_file(&server).await;
    server.inject(Fault::Status {
        status: 503,
        code: "ServerBusy",
        retry_after: None,
        times: 2,
        matching: appends(),
    });
    let body = Bytes::from((0..=255u8).cycle().take(100_000).collect::<Vec<u8>>());
    let before = client.stats();
    file.append(
        0,
        body.clone(),
        Checksums {
            md5: true,
            crc64: false,
        },
    )
    .await
    .expect("append");
    assert_eq!(client.stats().retries - before.retries, 2);

    let attempts: Vec<_> = server
        .requests()
        .into_iter()
        .filter(|r| r.query("action").as_deref() == Some("append"))
        .collect();
    assert_eq!(attempts.len(), 3);
    for a in &attempts {
        assert_eq!(a.body, body, "every attempt carries the same bytes");
        assert_eq!(a.header("content-md5"), attempts[0].header("content-md5"));
    }
    let ids: HashSet<_> = attempts
        .iter()
        .map(|a| a.header("x-ms-client-request-id"))
        .collect();
    let sigs: HashSet<_> = attempts.iter().map(|a| a.header("authorization")).collect();
    assert_eq!(ids.len(), 3, "a fresh client request id per attempt");
    assert_eq!(sigs.len(), 3, "a fresh signature per attempt");

    file.flush(body.len() as u64, &FlushOptions::default())
        .await
        .expect("flush");
    assert_eq!(
        server.file_contents(file_fs(&file), "dir/log.ndjson"),
        Some(body)
    );
}

fn file_fs(file: &adls_rest::File) -> &str {
    file.filesystem().name()
}

#[tokio::test]
async fn retry_after_is_honoured() {
    let server = DfsServer::start().await;
    let (_client, file) = new_file(&server).await;
    server.inject(Fault::Status {
        status: 429,
        code: "TooManyRequests",
        retry_after: Some(Duration::from_millis(700)),
        times: 1,
        matching: appends(),
    });
    let t0 = Instant::now();
    file.append(0, Bytes::from_static(b"x"), Checksums::default())
        .await
        .expect("append");
    // x-ms-retry-after-ms asked for 700 ms; the jittered backoff alone is at most 10 ms
    assert!(
        t0.elapsed() >= Duration::from_millis(700),
        "{:?}",
        t0.elapsed()
    );
}

#[tokio::test]
async fn client_errors_are_not_retried() {
    let server = DfsServer::start().await;
    let (client, file) = new_file(&server).await;
    for (status, code) in [
        (400, "InvalidInput"),
        (403, "AuthorizationFailure"),
        (404, "PathNotFound"),
        (409, "PathConflict"),
        (412, "ConditionNotMet"),
    ] {
        server.inject(Fault::Status {
            status,
            code,
            retry_after: None,
            times: 1,
            matching: appends(),
        });
        let before = client.stats();
        let e = file
            .append(0, Bytes::from_static(b"x"), Checksums::default())
            .await
            .expect_err("fails");
        assert_eq!(e.status().map(|s| s.as_u16()), Some(status));
        assert_eq!(e.error_code(), Some(code));
        assert!(e.request_id().is_some());
        assert!(!e.is_retryable());
        let after = client.stats();
        assert_eq!(
            after.requests_sent - before.requests_sent,
            1,
            "{status} sent once"
        );
        assert_eq!(after.retries, before.retries);
    }
}

#[tokio::test]
async fn persistent_503_gives_up_after_max_attempts() {
    let server = DfsServer::start().await;
    let (client, file) = new_file(&server).await;
    server.inject(Fault::Status {
        status: 503,
        code: "ServerBusy",
        retry_after: None,
        times: 100,
        matching: appends(),
    });
    let before = client.stats();
    let e = file
        .append(0, Bytes::from_static(b"x"), Checksums::default())
        .await
        .expect_err("gives up");
    assert!(e.is_retryable());
    assert_eq!(e.error_code(), Some("ServerBusy"));
    assert_eq!(
        client.stats().requests_sent - before.requests_sent,
        u64::from(adls_tests::fast_retry().max_attempts)
    );
}

/// A DFS client whose attempts time out after 300 ms (for `Delay` faults).
fn short_timeout_client(server: &DfsServer) -> Client {
    let account = Account::emulator(&server.endpoint()).expect("account");
    Client::builder(
        account,
        Credential::shared_key(adls_tests::AZURITE_KEY).expect("key"),
    )
    .dialect(Dialect::Dfs)
    .retry(adls_tests::fast_retry())
    .attempt_timeout(Duration::from_millis(300))
    .build()
    .expect("client")
}

#[tokio::test]
async fn resets_and_timeouts_are_retried() {
    let server = DfsServer::start().await;
    let client = short_timeout_client(&server);
    let fs = client.filesystem(&unique_name("reset")).expect("fs");
    fs.create().await.expect("fs");
    let file = fs.file("f").expect("path");
    file.create(&CreateOptions::default())
        .await
        .expect("create");
    server.inject(Fault::ResetBeforeApply {
        times: 1,
        matching: appends(),
    });
    server.inject(Fault::Delay {
        delay: Duration::from_millis(800),
        times: 1,
        matching: appends(),
    });
    file.append(0, Bytes::from_static(b"abc"), Checksums::default())
        .await
        .expect("append after reset and timeout");
    file.flush(3, &FlushOptions::default())
        .await
        .expect("flush");
    assert_eq!(file.read().await.expect("read"), Bytes::from_static(b"abc"));
    assert!(client.stats().retries >= 2);
}

#[tokio::test]
async fn flush_whose_answer_was_lost_is_reconciled() {
    let server = DfsServer::start().await;
    let (_client, file) = new_file(&server).await;
    file.append(0, Bytes::from_static(b"line 1\n"), Checksums::default())
        .await
        .expect("append");
    server.inject(Fault::DropResponseAfterApply {
        times: 1,
        matching: flushes(),
    });
    let flushed = file
        .flush(
            7,
            &FlushOptions {
                close: true,
                ..Default::default()
            },
        )
        .await
        .expect("flush");
    // the first attempt committed; the retry (a no-op flush at the same length)
    // or the properties call confirmed it
    assert_eq!(flushed.content_length, 7);
    assert_eq!(
        file.read().await.expect("read"),
        Bytes::from_static(b"line 1\n")
    );
}

/// What a file must hold after [`lost_append_then_more`] succeeded.
const NOT_DUPLICATED: &[u8] = b"once\ntwice\n";

/// Appends `once\n` at 0, whose first attempt the caller arranged to be
/// applied with its answer lost, then `twice\n` at 5, and flushes at 11.
async fn lost_append_then_more(file: &adls_rest::File) -> Result<(), Error> {
    file.append(0, Bytes::from_static(b"once\n"), Checksums::default())
        .await?;
    file.append(5, Bytes::from_static(b"twice\n"), Checksums::default())
        .await?;
    file.flush(11, &FlushOptions::default()).await?;
    Ok(())
}

/// The property every server must give: the scenario either succeeds with
/// exactly the bytes sent once, or fails with nothing committed; never a file
/// holding a duplicate.
fn assert_not_duplicated(result: &Result<(), Error>, stored: &[u8]) {
    match result {
        Ok(()) => assert_eq!(
            String::from_utf8_lossy(stored),
            String::from_utf8_lossy(NOT_DUPLICATED)
        ),
        Err(e) => assert!(
            stored.is_empty(),
            "failed ({e:?}) but committed {:?}",
            String::from_utf8_lossy(stored)
        ),
    }
}

fn appends_at_zero(server: &DfsServer) -> usize {
    server
        .requests()
        .iter()
        .filter(|r| {
            r.query("action").as_deref() == Some("append")
                && r.query("position").as_deref() == Some("0")
        })
        .count()
}

#[tokio::test]
async fn append_whose_answer_was_lost_is_not_duplicated() {
    let server = DfsServer::start().await;
    let (_client, file) = new_file(&server).await;
    server.inject(Fault::DropResponseAfterApply {
        times: 1,
        matching: appends(),
    });
    let result = lost_append_then_more(&file).await;
    assert_eq!(appends_at_zero(&server), 2, "the lost append was re-sent");
    result
        .as_ref()
        .expect("a re-append replaces the staged chunk");
    let stored = server
        .file_contents(file_fs(&file), "dir/log.ndjson")
        .unwrap_or_default();
    assert_not_duplicated(&result, &stored);
}

/// The same against a server where re-sending an append stages its bytes a
/// second time (the reference does not rule that out): a blind retry that then
/// flushed whatever was staged would commit `once\nonce\n...`, and this test
/// would catch it.
#[tokio::test]
async fn append_whose_answer_was_lost_is_not_duplicated_where_reappends_accumulate() {
    let server = DfsServer::start_with(Options {
        reappend: Reappend::Accumulate,
        ..Options::default()
    })
    .await;
    let (_client, file) = new_file(&server).await;
    server.inject(Fault::DropResponseAfterApply {
        times: 1,
        matching: appends(),
    });
    let result = lost_append_then_more(&file).await;
    assert_eq!(appends_at_zero(&server), 2, "the lost append was re-sent");
    let stored = server
        .file_contents(file_fs(&file), "dir/log.ndjson")
        .unwrap_or_default();
    assert_not_duplicated(&result, &stored);
}

/// The same through the fault proxy in front of the independent DFS emulator,
/// which refuses an append at any position but the end of the staged data.
#[tokio::test]
async fn append_whose_answer_was_lost_is_not_duplicated_on_the_dfs_emulator() {
    let emulator = dfs_emulator_endpoint();
    let proxy = FaultProxy::start(emulator.trim_end_matches("/devstoreaccount1")).await;
    let client = emulator_client(&format!("{}/devstoreaccount1", proxy.url()), Dialect::Dfs);
    let fs = client.filesystem(&unique_name("lostapp")).expect("fs");
    fs.create().await.expect("create fs");
    let file = fs.file("dir/log.ndjson").expect("path");
    file.create(&CreateOptions::default())
        .await
        .expect("create");
    proxy.set_plan(
        Plan::new().rule(
            Rule::new(Action::DropResponse)
                .query_contains("action=append")
                .first_n(1),
        ),
    );
    let result = lost_append_then_more(&file).await;
    proxy.set_plan(Plan::pass());
    assert!(proxy.stats().dropped_responses >= 1, "{:?}", proxy.stats());
    if let Err(e) = &result {
        // Emulator: the re-sent append is refused with 409 ConditionNotMet
        // ("Append position 0 does not match the expected offset 5").
        assert_eq!(e.error_code(), Some("ConditionNotMet"), "{e:?}");
    }
    let stored = file.read().await.expect("read");
    assert_not_duplicated(&result, &stored);
    fs.delete().await.expect("cleanup");
}

#[tokio::test]
async fn create_new_whose_answer_was_lost_succeeds() {
    let server = DfsServer::start().await;
    let client = emulator_client(&server.endpoint(), Dialect::Dfs);
    let fs = client.filesystem(&unique_name("cn")).expect("fs");
    fs.create().await.expect("fs");
    let file = fs.file("new.ndjson").expect("path");
    server.inject(Fault::DropResponseAfterApply {
        times: 1,
        matching: Matcher::any().method(Method::PUT).resource("file"),
    });
    file.create(&CreateOptions {
        mode: CreateMode::CreateNew,
        ..Default::default()
    })
    .await
    .expect("the retry's 409 is our own earlier attempt");
    let creates = server
        .requests()
        .iter()
        .filter(|r| r.query("resource").as_deref() == Some("file"))
        .count();
    assert_eq!(creates, 2, "first attempt applied, retry saw 409");
}

#[tokio::test]
async fn ambiguous_retries_do_not_hide_real_conflicts() {
    let server = DfsServer::start().await;
    let (_client, file) = new_file(&server).await;
    // Someone else's file already holds data at the name.
    file.append(0, Bytes::from_static(b"theirs"), Checksums::default())
        .await
        .expect("append");
    file.flush(6, &FlushOptions::default())
        .await
        .expect("flush");
    // Our create-new's first attempt fails ambiguously (500, not applied); the
    // retry's 409 must surface: the file is not ours.
    server.inject(Fault::Status {
        status: 500,
        code: "InternalError",
        retry_after: None,
        times: 1,
        matching: Matcher::any().method(Method::PUT).resource("file"),
    });
    let e = file
        .create(&CreateOptions {
            mode: CreateMode::CreateNew,
            ..Default::default()
        })
        .await
        .expect_err("not ours");
    assert!(e.is_already_exists(), "{e:?}");

    // A flush to a wrong position whose first attempt was ambiguous still fails.
    file.append(6, Bytes::from_static(b"+more"), Checksums::default())
        .await
        .expect("append");
    server.inject(Fault::Status {
        status: 500,
        code: "InternalError",
        retry_after: None,
        times: 1,
        matching: flushes(),
    });
    let e = file
        .flush(20, &FlushOptions::default())
        .await
        .expect_err("gap is real");
    assert!(e.is_invalid_flush_position(), "{e:?}");
    assert_eq!(
        server
            .file_contents(file_fs(&file), "dir/log.ndjson")
            .as_deref(),
        Some(&b"theirs"[..])
    );
}

struct CountingProvider {
    calls: AtomicU64,
}

impl TokenCredential for CountingProvider {
    fn get_token<'a>(&'a self, _scope: &'a str) -> BoxFuture<'a, Result<AccessToken, Error>> {
        Box::pin(async move {
            let n = self.calls.fetch_add(1, Ordering::SeqCst);
            Ok(AccessToken {
                token: Secret::new(format!("token-number-{n}")),
                expires_on: time::OffsetDateTime::now_utc() + time::Duration::hours(1),
            })
        })
    }
}

#[tokio::test]
async fn rejected_bearer_token_is_refreshed_once() {
    let server = DfsServer::start().await;
    let provider = Arc::new(CountingProvider {
        calls: AtomicU64::new(0),
    });
    let client = Client::builder(
        Account::emulator(&server.endpoint()).expect("account"),
        Credential::bearer(provider.clone()),
    )
    .dialect(Dialect::Dfs)
    .retry(adls_tests::fast_retry())
    .build()
    .expect("client");
    let fs = client.filesystem(&unique_name("bearer")).expect("fs");
    server.inject(Fault::Status {
        status: 401,
        code: "InvalidAuthenticationInfo",
        retry_after: None,
        times: 1,
        matching: Matcher::any(),
    });
    fs.create()
        .await
        .expect("succeeds with the refreshed token");
    assert_eq!(provider.calls.load(Ordering::SeqCst), 2);
    let sent: Vec<_> = server
        .requests()
        .iter()
        .filter_map(|r| r.header("authorization").map(str::to_string))
        .collect();
    assert_eq!(sent, ["Bearer token-number-0", "Bearer token-number-1"]);

    // a second 401 in a row surfaces (one forced refresh only)
    server.inject(Fault::Status {
        status: 401,
        code: "InvalidAuthenticationInfo",
        retry_after: None,
        times: 2,
        matching: Matcher::any(),
    });
    let e = fs.create().await.expect_err("401 twice");
    assert_eq!(e.status().map(|s| s.as_u16()), Some(401));
    assert!(!format!("{e} {e:?}").contains("token-number"));
}

/// The Blob dialect through the fault proxy in front of Azurite: a Put Block
/// List whose answer is lost is reconciled, appends lost the same way are not
/// duplicated, and bursts of 503 are ridden out.
#[tokio::test]
async fn blob_dialect_through_fault_proxy() {
    let azurite = required_env(ENV_AZURITE_HTTP);
    let upstream = azurite.trim_end_matches("/devstoreaccount1").to_string();
    let proxy = FaultProxy::start(&upstream).await;
    let client = emulator_client(&format!("{}/devstoreaccount1", proxy.url()), Dialect::Blob);
    let fs = client.filesystem(&unique_name("proxy")).expect("fs");
    fs.create().await.expect("create container");
    let file = fs.file("a/b.ndjson").expect("path");
    file.create(&CreateOptions {
        mode: CreateMode::CreateNew,
        ..Default::default()
    })
    .await
    .expect("create");

    proxy.set_plan(
        Plan::new()
            .rule(
                Rule::new(Action::server_busy())
                    .query_contains("comp=block&")
                    .first_n(3),
            )
            .rule(
                Rule::new(Action::DropResponse)
                    .query_contains("comp=block&")
                    .between(3, 4),
            )
            .rule(
                Rule::new(Action::ResetMidRequest)
                    .query_contains("comp=block&")
                    .between(5, 6),
            ),
    );
    let mut expected = Vec::new();
    for i in 0..4u64 {
        let line = format!("{{\"n\":{i}}}\n");
        file.append(
            expected.len() as u64,
            Bytes::from(line.clone()),
            Checksums::default(),
        )
        .await
        .expect("append");
        expected.extend_from_slice(line.as_bytes());
    }
    proxy.set_plan(
        Plan::new().rule(
            Rule::new(Action::DropResponse)
                .query_contains("comp=blocklist")
                .method(Method::PUT)
                .first_n(1),
        ),
    );
    let flushed = file
        .flush(
            expected.len() as u64,
            &FlushOptions {
                close: true,
                ..Default::default()
            },
        )
        .await
        .expect("flush");
    assert!(
        flushed.reconciled,
        "the retry's InvalidBlockList was reconciled with a properties call"
    );
    proxy.set_plan(Plan::pass());
    assert_eq!(file.read().await.expect("read"), Bytes::from(expected));
    let stats = proxy.stats();
    assert!(
        stats.statuses >= 3 && stats.dropped_responses >= 2 && stats.resets >= 1,
        "{stats:?}"
    );
    fs.delete().await.expect("cleanup");
}

/// The next append times out (the server applies it late: ambiguous), and its
/// retry is refused as if the position were taken.
fn time_out_then_refuse_append(server: &DfsServer) {
    server.inject(Fault::Delay {
        delay: Duration::from_millis(600),
        times: 1,
        matching: appends(),
    });
    server.inject(Fault::Status {
        status: 400,
        code: "InvalidAppendPosition",
        retry_after: None,
        times: 1,
        matching: appends(),
    });
}

#[tokio::test]
async fn append_retry_refused_after_an_ambiguous_attempt_is_checked_not_trusted() {
    let server = DfsServer::start().await;
    let client = short_timeout_client(&server);
    let fs = client.filesystem(&unique_name("appref")).expect("fs");
    fs.create().await.expect("fs");
    let file = fs.file("f").expect("path");
    file.create(&CreateOptions::default())
        .await
        .expect("create");
    // attempt 1 times out (ambiguous; the server applies it late), attempt 2
    // is refused as if the position were taken: nothing is committed, so the
    // properties call must not turn the refusal into a success
    time_out_then_refuse_append(&server);
    let e = file
        .append(0, Bytes::from_static(b"abc"), Checksums::default())
        .await
        .expect_err("not verifiable");
    assert_eq!(e.error_code(), Some("InvalidAppendPosition"));
    let heads = server
        .requests()
        .iter()
        .filter(|r| r.method == Method::HEAD)
        .count();
    assert_eq!(
        heads, 1,
        "the refusal was reconciled with one properties call"
    );

    // committed data covering the append's range: the same refusal is a success
    tokio::time::sleep(Duration::from_millis(700)).await; // the late append lands
    file.flush(3, &FlushOptions::default())
        .await
        .expect("flush");
    time_out_then_refuse_append(&server);
    file.append(0, Bytes::from_static(b"abc"), Checksums::default())
        .await
        .expect("already in the file");
}

/// `File::upload` on the Blob dialect: Put Blocks then one create-new Put
/// Block List. A commit whose answer is lost is reconciled; the blob stays
/// made of blocks, so it can be appended to afterwards.
#[tokio::test]
async fn blob_upload_commit_lost_is_reconciled_and_blob_stays_appendable() {
    let azurite = required_env(ENV_AZURITE_HTTP);
    let proxy = FaultProxy::start(azurite.trim_end_matches("/devstoreaccount1")).await;
    let client = emulator_client(&format!("{}/devstoreaccount1", proxy.url()), Dialect::Blob);
    let fs = client.filesystem(&unique_name("upload")).expect("fs");
    fs.create().await.expect("create container");
    let file = fs.file("batch.ndjson").expect("path");
    proxy.set_plan(
        Plan::new().rule(
            Rule::new(Action::DropResponse)
                .query_contains("comp=blocklist")
                .first_n(1),
        ),
    );
    let options = CreateOptions {
        mode: CreateMode::CreateNew,
        ..Default::default()
    };
    let flushed = file
        .upload(Bytes::from_static(b"0123456789"), 4, &options)
        .await
        .expect("upload");
    assert!(
        flushed.reconciled,
        "the retry's 409 was checked against the blob's length"
    );
    assert_eq!(flushed.content_length, 10);
    proxy.set_plan(Plan::pass());
    // a second upload as create-new is a real conflict
    let e = file
        .upload(Bytes::from_static(b"other"), 4, &options)
        .await
        .expect_err("exists");
    assert!(e.is_already_exists(), "{e:?}");
    // still blocks: append and flush extend it
    file.append(10, Bytes::from_static(b"abcde"), Checksums::default())
        .await
        .expect("append");
    file.flush(15, &FlushOptions::default())
        .await
        .expect("flush");
    assert_eq!(
        file.read().await.expect("read"),
        Bytes::from_static(b"0123456789abcde")
    );
    fs.delete().await.expect("cleanup");
}
