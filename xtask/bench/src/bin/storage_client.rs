//! `storage_client`: one storage client doing N signed 1 KiB uploads at a
//! given concurrency against a Blob endpoint (the sink), in a process of its
//! own, so its CPU time is its own.
//!
//! `storage_client --impl adls|object_store|opendal|floor --endpoint URL
//! [--requests N] [--concurrency C] [--warmup W] [--prefix P]`
//!
//! What each sends:
//! - `adls`: `File::append(0, 1 KiB)`, i.e. Put Block (`?comp=block&blockid=`)
//!   through the pooled client, retry loop and Shared Key signer;
//! - `object_store`: `ObjectStore::put` of 1 KiB, i.e. Put Blob;
//! - `opendal`: `Operator::write` of 1 KiB, i.e. Put Blob;
//! - `floor`: no client at all: the bytes of a Put Blob request (headers as
//!   a signed one carries them, built once) written on a kept-alive
//!   `tokio::net::TcpStream` and the answer read until its end, on the same
//!   runtime. What any HTTP/1 client on Tokio pays per request whatever it
//!   does (system calls, wake-ups, context switches): the floor under the
//!   three above.
//!
//! Each is one signed PUT with a 1 KiB body and a `201` answer; the clients
//! differ only in the query string and `x-ms-blob-type`. The reported CPU is
//! user + system time of this process (`getrusage`) over the timed uploads
//! only, after a warm-up that opens the connections.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use adls_bench::{arg, cpu_time, parse_args, report, ACCOUNT, ACCOUNT_KEY};
use bytes::Bytes;
use object_store::ObjectStoreExt as _;
use serde_json::json;

/// The three clients, each doing the same upload.
enum Store {
    Adls(adls_rest::FileSystem),
    Azure(Arc<dyn object_store::ObjectStore>),
    Opendal(opendal::Operator),
    /// One connection per task, checked out of a simple stack.
    Floor {
        addr: String,
        request: Bytes,
        conns: std::sync::Mutex<Vec<tokio::net::TcpStream>>,
    },
}

impl Store {
    async fn put(&self, path: &str, data: &Bytes) -> Result<(), String> {
        match self {
            Store::Adls(fs) => {
                let file = fs.file(path).map_err(|e| e.to_string())?;
                file.append(0, data.clone(), adls_rest::Checksums::default())
                    .await
                    .map_err(|e| e.to_string())
            }
            Store::Azure(s) => s
                .put(
                    &object_store::path::Path::from(path),
                    object_store::PutPayload::from_bytes(data.clone()),
                )
                .await
                .map(drop)
                .map_err(|e| e.to_string()),
            Store::Opendal(op) => op
                .write(path, data.clone())
                .await
                .map(drop)
                .map_err(|e| e.to_string()),
            Store::Floor {
                addr,
                request,
                conns,
            } => {
                let pooled = conns.lock().map_err(|e| e.to_string())?.pop();
                let mut conn = match pooled {
                    Some(c) => c,
                    None => tokio::net::TcpStream::connect(addr.as_str())
                        .await
                        .map_err(|e| e.to_string())?,
                };
                floor_request(&mut conn, request).await?;
                conns.lock().map_err(|e| e.to_string())?.push(conn);
                Ok(())
            }
        }
    }
}

/// Writes `request`, reads one answer (`201`, headers and a
/// `Content-Length` body) off `conn`.
async fn floor_request(conn: &mut tokio::net::TcpStream, request: &[u8]) -> Result<(), String> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    conn.write_all(request).await.map_err(|e| e.to_string())?;
    let mut buf = [0u8; 4096];
    let mut have = 0;
    loop {
        let n = conn
            .read(&mut buf[have..])
            .await
            .map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("the sink closed the connection".into());
        }
        have += n;
        let head = &buf[..have];
        let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") else {
            if have == buf.len() {
                return Err("an answer's headers over 4 KiB".into());
            }
            continue;
        };
        if !head.starts_with(b"HTTP/1.1 201") {
            return Err(format!(
                "expected 201, got {}",
                String::from_utf8_lossy(&head[..head.len().min(40)])
            ));
        }
        let text = String::from_utf8_lossy(&head[..end]).to_ascii_lowercase();
        let body: usize = text
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        if have >= end + 4 + body {
            return Ok(());
        }
    }
}

/// A Put Blob of `data` as the clients send it (the headers of a Shared Key
/// request, with a signature of the right length that nobody checks).
fn floor_request_bytes(endpoint: &str, data: &[u8]) -> (String, Bytes) {
    let url = url::Url::parse(endpoint).expect("endpoint");
    let host = format!(
        "{}:{}",
        url.host_str().unwrap_or("127.0.0.1"),
        url.port_or_known_default().unwrap_or(80)
    );
    let head = format!(
        "PUT /{ACCOUNT}/bench/floor/blob HTTP/1.1\r\nhost: {host}\r\nx-ms-version: 2025-11-05\r\nx-ms-date: Mon, 30 Nov 2026 07:00:00 GMT\r\nx-ms-blob-type: BlockBlob\r\ncontent-type: application/octet-stream\r\ncontent-length: {}\r\nauthorization: SharedKey {ACCOUNT}:{}\r\n\r\n",
        data.len(),
        "A".repeat(44)
    );
    let mut request = head.into_bytes();
    request.extend_from_slice(data);
    (host, Bytes::from(request))
}

fn build(kind: &str, endpoint: &str) -> Result<Store, String> {
    let account_url = format!("{}/{ACCOUNT}", endpoint.trim_end_matches('/'));
    match kind {
        "adls" => {
            let client = adls_rest::Client::from_connection_string(&adls_bench::connection_string(
                &account_url,
            ))
            .map_err(|e| e.to_string())?
            .build()
            .map_err(|e| e.to_string())?;
            Ok(Store::Adls(
                client.filesystem("bench").map_err(|e| e.to_string())?,
            ))
        }
        "object_store" => {
            let store = object_store::azure::MicrosoftAzureBuilder::new()
                .with_account(ACCOUNT)
                .with_access_key(ACCOUNT_KEY)
                .with_container_name("bench")
                .with_endpoint(account_url)
                .with_allow_http(true)
                .build()
                .map_err(|e| e.to_string())?;
            Ok(Store::Azure(Arc::new(store)))
        }
        "opendal" => {
            opendal::install_default();
            let builder = opendal::services::Azblob::default()
                .endpoint(&account_url)
                .container("bench")
                .account_name(ACCOUNT)
                .account_key(ACCOUNT_KEY);
            let op = opendal::Operator::new(builder).map_err(|e| e.to_string())?;
            Ok(Store::Opendal(op))
        }
        "floor" => {
            let (addr, request) = floor_request_bytes(endpoint, &[b'x'; 1024]);
            Ok(Store::Floor {
                addr,
                request,
                conns: std::sync::Mutex::new(Vec::new()),
            })
        }
        other => Err(format!(
            "unknown --impl `{other}` (adls, object_store, opendal, floor)"
        )),
    }
}

/// Runs `n` uploads named `{prefix}/{i}` with `concurrency` tasks; returns the errors.
async fn run(
    store: &Arc<Store>,
    prefix: &str,
    n: usize,
    concurrency: usize,
    data: &Bytes,
) -> Vec<String> {
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let store = store.clone();
        let next = next.clone();
        let data = data.clone();
        let prefix = prefix.to_string();
        tasks.push(tokio::spawn(async move {
            let mut errors = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return errors;
                }
                if let Err(e) = store.put(&format!("{prefix}/{i:08}"), &data).await {
                    errors.push(e);
                }
            }
        }));
    }
    let mut errors = Vec::new();
    for t in tasks {
        errors.extend(t.await.unwrap_or_else(|e| vec![e.to_string()]));
    }
    errors
}

fn main() {
    let args = parse_args(std::env::args().skip(1));
    let kind: String = arg(&args, "impl", "adls".to_string());
    let endpoint: String = arg(&args, "endpoint", "http://127.0.0.1:10000".to_string());
    let n: usize = arg(&args, "requests", 20_000);
    let concurrency: usize = arg(&args, "concurrency", 32);
    let warmup: usize = arg(&args, "warmup", 500);
    let prefix: String = arg(&args, "prefix", format!("run-{}", std::process::id()));
    // object_store and opendal bring rustls with aws-lc-rs, adls-rest with ring:
    // with both compiled in, rustls needs a process default (plain HTTP here anyway)
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let result = rt.block_on(async {
        let store = Arc::new(build(&kind, &endpoint)?);
        let data = Bytes::from(vec![b'x'; 1024]);
        let warm_errors = run(
            &store,
            &format!("{prefix}/warmup"),
            warmup,
            concurrency,
            &data,
        )
        .await;
        if let Some(e) = warm_errors.first() {
            return Err(format!(
                "warm-up failed ({} errors), first: {e}",
                warm_errors.len()
            ));
        }
        let cpu0 = cpu_time();
        let t0 = Instant::now();
        let errors = run(&store, &prefix, n, concurrency, &data).await;
        let elapsed = t0.elapsed();
        let cpu = cpu_time() - cpu0;
        Ok(json!({
            "impl": kind,
            "concurrency": concurrency,
            "requests": n,
            "errors": errors.len(),
            "first_error": errors.first(),
            "elapsed_s": elapsed.as_secs_f64(),
            "requests_per_s": n as f64 / elapsed.as_secs_f64(),
            "cpu_us": cpu.as_secs_f64() * 1e6,
            "cpu_us_per_request": cpu.as_secs_f64() * 1e6 / n as f64,
            "rss_kib": adls_bench::rss_kib(std::process::id()),
        }))
    });
    match result {
        Ok(v) => report(&v),
        Err(e) => {
            eprintln!("storage_client {kind}: {e}");
            std::process::exit(1);
        }
    }
}
