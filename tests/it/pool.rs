//! The connection pool against Azurite over HTTP: a request after the pool sat
//! idle past Azurite's 5 s keep-alive opens a fresh connection instead of
//! failing on a closed one; 500 concurrent create / append / flush sequences
//! through one `Client` with `max_in_flight(16)` all succeed on at most 16
//! connections; and `requests_sent` counts exactly the requests each
//! operation of the Blob dialect makes (flush = Get Block List + Get Blob
//! Properties + Put Block List).

use std::time::{Duration, Instant};

use adls_rest::{
    Account, Checksums, Client, CreateOptions, Credential, FlushOptions, ListOptions,
    TransportStats,
};
use adls_tests::{required_env, unique_name, AZURITE_KEY, ENV_AZURITE_HTTP};
use bytes::Bytes;

use crate::azurite_blob::{futures_join_all, http_client, new_container};

fn builder() -> adls_rest::ClientBuilder {
    Client::builder(
        Account::emulator(&required_env(ENV_AZURITE_HTTP)).expect("valid emulator URL"),
        Credential::shared_key(AZURITE_KEY).expect("valid key"),
    )
}

/// A container holding `idle.txt`, written by a separate client, so the
/// client under test opens exactly one connection (a flush would send two
/// requests at once).
async fn container_with_a_file(prefix: &str) -> adls_rest::FileSystem {
    let setup = http_client();
    let fs = new_container(&setup, prefix).await;
    fs.file("idle.txt")
        .expect("valid path")
        .upload(Bytes::from_static(b"idle"), 1024, &CreateOptions::default())
        .await
        .expect("upload");
    fs
}

#[tokio::test]
async fn request_after_idle_longer_than_server_keep_alive_opens_a_new_connection() {
    let setup = container_with_a_file("idle").await;
    let client = http_client();
    let f = client
        .filesystem(setup.name())
        .expect("valid name")
        .file("idle.txt")
        .expect("valid path");
    assert_eq!(f.read().await.expect("read").as_ref(), b"idle");
    assert_eq!(f.properties().await.expect("props").content_length, 4);
    let before = client.stats();
    assert_eq!(
        before.connections_opened, 1,
        "sequential requests share one connection: {before:?}"
    );
    assert_eq!(before.connections_open, 1, "{before:?}");

    // Longer than the pool's idle timeout (4 s) and Azurite's keep-alive (5 s).
    // The pool no longer hands out the connection (it checks the idle time
    // at checkout); its timer or Azurite closes it soon after, depending on
    // timer ticks and on how busy Azurite is.
    tokio::time::sleep(Duration::from_millis(6_000)).await;
    let deadline = Instant::now() + Duration::from_secs(6);
    while client.stats().connections_open > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let idle = client.stats();
    assert_eq!(
        idle.connections_open, 0,
        "the idle connection is closed: {idle:?}"
    );

    assert_eq!(f.read().await.expect("read after idle").as_ref(), b"idle");
    let after = client.stats();
    assert_eq!(
        after.connections_opened, 2,
        "a new connection was opened: {after:?}"
    );
    assert_eq!(after.requests_sent, before.requests_sent + 1, "{after:?}");
    assert_eq!(
        after.retries, 0,
        "no attempt failed on a stale connection: {after:?}"
    );
    setup.delete().await.expect("delete container");
}

#[tokio::test]
async fn idle_pool_longer_than_keep_alive_still_succeeds() {
    // A pool idle timeout above the server's keep-alive: Azurite closes the
    // connection first, and the next request must still succeed. hyper resends
    // a request that never started on a connection it finds closed; our retry
    // covers the race where the close arrives while the request goes out.
    // (This is why the default idle timeout sits below the keep-alive.)
    let setup = container_with_a_file("idle-long").await;
    let client = builder()
        .transport_options(adls_rest::TransportOptions {
            pool_idle_timeout: Duration::from_secs(60),
            ..Default::default()
        })
        .build()
        .expect("client builds");
    let f = client
        .filesystem(setup.name())
        .expect("valid name")
        .file("idle.txt")
        .expect("valid path");
    assert_eq!(f.read().await.expect("read").as_ref(), b"idle");
    // until Azurite (5 s keep-alive) has closed the idle connection: on a
    // loaded machine its timer may fire late, so wait for the close itself
    let t0 = Instant::now();
    while client.stats().connections_open > 0 && t0.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        client.stats().connections_open,
        0,
        "the server kept the connection open"
    );
    assert_eq!(f.read().await.expect("read after idle").as_ref(), b"idle");
    let s = client.stats();
    assert_eq!(s.connections_opened, 2, "{s:?}");
    assert!(s.retries <= 1, "{s:?}");
    setup.delete().await.expect("delete container");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_concurrent_writers_share_sixteen_connections() {
    const FILES: usize = 500;
    let client = builder().max_in_flight(16).build().expect("client builds");
    let fs = new_container(&client, "pool").await;
    let started = Instant::now();
    let writers = (0..FILES).map(|i| {
        let fs = fs.clone();
        async move {
            let f = fs.file(&format!("w/{i:04}.ndjson")).expect("valid path");
            f.create(&CreateOptions::default()).await?;
            let a = Bytes::from(format!("{{\"writer\":{i}}}\n"));
            let b = Bytes::from(format!("{{\"writer\":{i},\"line\":2}}\n"));
            f.append(0, a.clone(), Checksums::default()).await?;
            f.append(a.len() as u64, b.clone(), Checksums::default())
                .await?;
            f.flush((a.len() + b.len()) as u64, &FlushOptions::default())
                .await?;
            Ok::<_, adls_rest::Error>([a, b].concat())
        }
    });
    let written: Vec<Vec<u8>> = futures_join_all(writers)
        .await
        .into_iter()
        .enumerate()
        .map(|(i, r)| r.unwrap_or_else(|e| panic!("writer {i}: {e}")))
        .collect();
    let write_time = started.elapsed();

    let readers = (0..FILES).map(|i| {
        let fs = fs.clone();
        async move {
            fs.file(&format!("w/{i:04}.ndjson"))
                .expect("valid path")
                .read()
                .await
        }
    });
    for (i, r) in futures_join_all(readers).await.into_iter().enumerate() {
        let got = r.unwrap_or_else(|e| panic!("reader {i}: {e}"));
        assert_eq!(got.as_ref(), written[i].as_slice(), "file {i}");
    }

    let listed = fs
        .list_all(ListOptions {
            recursive: true,
            ..Default::default()
        })
        .await
        .expect("list");
    assert_eq!(listed.len(), FILES);

    let s = client.stats();
    // container + per file (create, 2 appends, 3 for the flush, read) + one listing page
    let expected = 1 + FILES as u64 * 7 + 1;
    assert_eq!(s.retries, 0, "{s:?}");
    assert_eq!(s.requests_sent, expected, "{s:?}");
    assert!(
        s.connections_opened <= 16,
        "more connections than max_in_flight: {s:?}"
    );
    assert!(s.connections_open <= 16, "{s:?}");
    assert!(s.connections_peak <= 16, "{s:?}");
    eprintln!(
        "pool: {FILES} writers in {write_time:?}, {} requests in {:?} on {} connections",
        s.requests_sent,
        started.elapsed(),
        s.connections_opened
    );
    fs.delete().await.expect("delete container");
}

/// Stats after minus stats before, for `requests_sent` and `retries`.
fn sent_since(before: TransportStats, client: &Client) -> (u64, u64) {
    let now = client.stats();
    (
        now.requests_sent - before.requests_sent,
        now.retries - before.retries,
    )
}

#[tokio::test]
async fn requests_sent_counts_each_blob_request() {
    let client = http_client();
    assert_eq!(
        client.stats(),
        TransportStats::default(),
        "a new client sent nothing"
    );
    let fs = client
        .filesystem(&unique_name("count"))
        .expect("valid name");

    let mut at = client.stats();
    let mut step = |what: &str, expected: u64, client: &Client| {
        let (sent, retries) = sent_since(at, client);
        assert_eq!(retries, 0, "{what}: retries");
        assert_eq!(sent, expected, "{what}: requests sent");
        at = client.stats();
    };

    fs.create().await.expect("create container");
    step("create container (Create Container)", 1, &client);
    assert!(!fs.create_if_not_exists().await.expect("exists"));
    step(
        "create_if_not_exists on an existing container (one 409)",
        1,
        &client,
    );

    let f = fs.file("c.txt").expect("valid path");
    step("a file handle sends nothing", 0, &client);
    f.create(&CreateOptions::default()).await.expect("create");
    step("create (Put Blob)", 1, &client);
    f.append(0, Bytes::from_static(b"abc"), Checksums::default())
        .await
        .expect("append");
    f.append(3, Bytes::from_static(b"def"), Checksums::default())
        .await
        .expect("append");
    step("two appends (Put Block x2)", 2, &client);
    f.flush(6, &FlushOptions::default()).await.expect("flush");
    step("flush (Get Block List + HEAD + Put Block List)", 3, &client);
    f.flush(6, &FlushOptions::default())
        .await
        .expect("repeated flush");
    step(
        "repeated flush (Get Block List + HEAD, nothing to commit)",
        2,
        &client,
    );
    let e = f
        .flush(9, &FlushOptions::default())
        .await
        .expect_err("flush past the data");
    assert!(e.is_invalid_flush_position(), "{e}");
    step(
        "invalid flush (Get Block List + HEAD, refused locally)",
        2,
        &client,
    );
    assert_eq!(f.read().await.expect("read").as_ref(), b"abcdef");
    step("read (Get Blob)", 1, &client);
    f.properties().await.expect("properties");
    step("properties (HEAD)", 1, &client);
    let items = fs
        .list_all(ListOptions {
            recursive: true,
            ..Default::default()
        })
        .await
        .expect("list");
    assert_eq!(items.len(), 1);
    step("one-page listing (List Blobs)", 1, &client);
    f.upload(
        Bytes::from_static(b"0123456789"),
        4,
        &CreateOptions::default(),
    )
    .await
    .expect("upload");
    step(
        "upload of 10 B in 4 B chunks (3 Put Block + 1 Put Block List)",
        4,
        &client,
    );
    f.delete().await.expect("delete");
    step("delete (Delete Blob)", 1, &client);
    fs.delete().await.expect("delete container");
    step("delete container", 1, &client);

    let s = client.stats();
    assert_eq!(s.requests_sent, 21, "{s:?}");
    // Sequential requests share one connection; flushes send Get Block List
    // and Get Blob Properties at once, which (usually) takes a second one.
    assert!((1..=2).contains(&s.connections_opened), "{s:?}");
}
