//! The connection pool against Azurite over HTTP: a request after the pool sat
//! idle past Azurite's 5 s keep-alive opens a fresh connection instead of
//! failing on a closed one; 500 concurrent create / append / flush sequences
//! through one `Client` with `max_in_flight(16)` all succeed on at most 16
//! connections; and `requests_sent` counts exactly the requests each
//! operation of the Blob dialect makes (flush = Get Block List + Get Blob
//! Properties + Put Block List). Against a scripted HTTP/1 server: a
//! connection whose answer was not read to the end, or that the server
//! closed, is never reused; idle connections close after the idle timeout;
//! a refused connection says the request was not applied.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
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

// ---------------------------------------------------------------------------
// What the pool promises, against a scripted HTTP/1 server on 127.0.0.1 that
// does exactly what each test needs (no Azurite: its timers are not ours).

/// What the scripted server does with one request.
#[derive(Clone, Copy, Debug)]
enum Reply {
    /// `200` with the body `ok`, connection kept open.
    Ok,
    /// `200` with the body `ok`, then the server closes the connection
    /// (without `Connection: close`: the client must notice on its own).
    OkThenClose,
    /// Headers promising 100 bytes, 10 of them, then nothing more.
    Stall,
}

/// A scripted server: the n-th request it reads (counted over all
/// connections, from 0) gets `script(n)`.
struct Scripted {
    endpoint: String,
    accepted: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Scripted {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn scripted(script: fn(usize) -> Reply) -> Scripted {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind on loopback");
    let port = listener.local_addr().expect("address").port();
    let accepted = Arc::new(AtomicUsize::new(0));
    let requests = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    let task = tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(serve_scripted(socket, requests.clone(), script));
        }
    });
    Scripted {
        endpoint: format!("http://127.0.0.1:{port}/devstoreaccount1"),
        accepted,
        task,
    }
}

async fn serve_scripted(
    mut socket: tokio::net::TcpStream,
    requests: Arc<AtomicUsize>,
    script: fn(usize) -> Reply,
) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut buf = Vec::new();
    loop {
        // one request: headers, then Content-Length bytes of body
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let mut chunk = [0u8; 4096];
            match socket.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
        let body_len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        while buf.len() < head_end + body_len {
            let mut chunk = [0u8; 4096];
            match socket.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        buf.drain(..head_end + body_len);
        let n = requests.fetch_add(1, Ordering::SeqCst);
        const OK: &[u8] =
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nx-ms-request-id: scripted\r\n\r\nok";
        match script(n) {
            Reply::Ok => {
                if socket.write_all(OK).await.is_err() {
                    return;
                }
            }
            Reply::OkThenClose => {
                let _ = socket.write_all(OK).await;
                return;
            }
            Reply::Stall => {
                let _ = socket
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789")
                    .await;
                // hold the connection open, answer never finished
                tokio::time::sleep(Duration::from_secs(60)).await;
                return;
            }
        }
    }
}

fn scripted_client(endpoint: &str, options: adls_rest::TransportOptions) -> Client {
    Client::builder(
        Account::emulator(endpoint).expect("valid emulator URL"),
        Credential::shared_key(AZURITE_KEY).expect("valid key"),
    )
    .transport_options(options)
    .build()
    .expect("client builds")
}

fn one_attempt() -> adls_rest::RetryPolicy {
    adls_rest::RetryPolicy {
        max_attempts: 1,
        ..adls_tests::fast_retry()
    }
}

async fn read_ok(client: &Client) -> Result<Bytes, adls_rest::Error> {
    client
        .filesystem("scripted")
        .expect("valid name")
        .file("f.txt")
        .expect("valid path")
        .read()
        .await
}

#[tokio::test]
async fn connection_whose_answer_was_not_read_to_the_end_is_not_reused() {
    let server = scripted(|n| if n == 0 { Reply::Stall } else { Reply::Ok }).await;
    let client = scripted_client(
        &server.endpoint,
        adls_rest::TransportOptions {
            attempt_timeout: Duration::from_millis(300),
            retry: one_attempt(),
            ..Default::default()
        },
    );
    let e = read_ok(&client).await.expect_err("the answer never ends");
    assert_eq!(e.kind(), adls_rest::ErrorKind::Timeout, "{e}");
    assert!(
        e.may_have_been_applied(),
        "the request went out, so it may have been applied: {e}"
    );
    let s = client.stats();
    assert_eq!(
        s.connections_open, 0,
        "the half-read connection is closed: {s:?}"
    );
    assert_eq!(read_ok(&client).await.expect("second read").as_ref(), b"ok");
    let s = client.stats();
    assert_eq!(s.connections_opened, 2, "{s:?}");
    assert_eq!(server.accepted.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn connection_the_server_closed_is_dropped_and_not_reused() {
    let server = scripted(|n| {
        if n == 0 {
            Reply::OkThenClose
        } else {
            Reply::Ok
        }
    })
    .await;
    let client = scripted_client(
        &server.endpoint,
        adls_rest::TransportOptions {
            pool_idle_timeout: Duration::from_secs(60),
            retry: one_attempt(),
            ..Default::default()
        },
    );
    assert_eq!(read_ok(&client).await.expect("first read").as_ref(), b"ok");
    // nobody is using the idle connection: the pool still notices the close
    let t0 = Instant::now();
    while client.stats().connections_open > 0 && t0.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let s = client.stats();
    assert_eq!(
        s.connections_open, 0,
        "the closed connection was dropped: {s:?}"
    );
    assert_eq!(read_ok(&client).await.expect("second read").as_ref(), b"ok");
    let s = client.stats();
    assert_eq!(s.connections_opened, 2, "{s:?}");
    assert_eq!(s.retries, 0, "{s:?}");
    assert_eq!(s.requests_sent, 2, "{s:?}");
}

#[tokio::test]
async fn idle_connections_are_closed_after_the_idle_timeout_and_reused_before() {
    let server = scripted(|_| Reply::Ok).await;
    let client = scripted_client(
        &server.endpoint,
        adls_rest::TransportOptions {
            pool_idle_timeout: Duration::from_millis(400),
            ..Default::default()
        },
    );
    for _ in 0..5 {
        assert_eq!(read_ok(&client).await.expect("read").as_ref(), b"ok");
    }
    let s = client.stats();
    assert_eq!(
        s.connections_opened, 1,
        "sequential requests share one connection: {s:?}"
    );
    assert_eq!(s.connections_open, 1, "{s:?}");
    // the server keeps it open: only the pool's own timer closes it
    let t0 = Instant::now();
    while client.stats().connections_open > 0 && t0.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let closed_after = t0.elapsed();
    assert_eq!(client.stats().connections_open, 0, "{:?}", client.stats());
    assert!(
        closed_after >= Duration::from_millis(300),
        "closed before its idle timeout: {closed_after:?}"
    );
    assert_eq!(
        read_ok(&client).await.expect("read after idle").as_ref(),
        b"ok"
    );
    let s = client.stats();
    assert_eq!(s.connections_opened, 2, "{s:?}");
    assert_eq!(s.retries, 0, "{s:?}");
}

#[tokio::test]
async fn connection_refused_was_not_applied() {
    // a port nobody listens on (bound, then released)
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("address").port()
    };
    let client = scripted_client(
        &format!("http://127.0.0.1:{port}/devstoreaccount1"),
        adls_rest::TransportOptions {
            retry: adls_rest::RetryPolicy {
                max_attempts: 2,
                ..adls_tests::fast_retry()
            },
            ..Default::default()
        },
    );
    let e = read_ok(&client).await.expect_err("nobody listens");
    assert_eq!(e.kind(), adls_rest::ErrorKind::Connect, "{e}");
    assert!(!e.may_have_been_applied(), "nothing was sent: {e}");
    let s = client.stats();
    assert_eq!((s.connections_opened, s.connections_open), (0, 0), "{s:?}");
}
