//! `llm-log-shipper` end to end: the binary, started on a free loopback port
//! against Azurite, takes real LiteLLM records (the fixtures) in all three
//! `generic_api` formats and gzip, refuses what it must with the right
//! status, exposes its metrics and health, stops on SIGTERM with a summary,
//! and every record is then read back from storage: once each, JSON-equal to
//! what was posted.

use std::collections::{HashMap, HashSet};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use adls_rest::Dialect;
use adls_tests::{
    emulator_client, read_all_records, required_env, unique_name, AZURITE_KEY, ENV_AZURITE_HTTP,
};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// The binary, built on first use.
fn shipper_binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        adls_tests::cargo_build(
            &["--package", "llm-log-shipper", "--bin", "llm-log-shipper"],
            "llm-log-shipper",
        )
    })
}

fn connection_string(endpoint: &str) -> String {
    format!(
        "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={AZURITE_KEY};BlobEndpoint={endpoint}"
    )
}

/// A port nothing listens on (bound, then released).
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// The shipper with exactly these variables (nothing inherited but `PATH`),
/// run from a fresh directory of its own (where its default journal goes).
fn command(args: &[&str], env: &[(&str, String)]) -> Command {
    let mut cmd = Command::new(shipper_binary());
    let cwd = std::env::temp_dir().join(format!("llm-log-shipper-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&cwd).expect("working directory");
    cmd.args(args)
        .current_dir(cwd)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

/// A running shipper; killed if a test fails before stopping it.
struct Running {
    child: Option<Child>,
    addr: String,
}

impl Running {
    async fn start(env: &[(&str, String)]) -> Running {
        let addr = format!("127.0.0.1:{}", free_port());
        let child = command(&["serve", "--listen", &addr], env)
            .spawn()
            .expect("start llm-log-shipper");
        let mut me = Running {
            child: Some(child),
            addr,
        };
        let t0 = Instant::now();
        loop {
            if let Ok(a) = me.get("/healthz").await {
                assert_eq!(a.status, 200, "{a:?}");
                return me;
            }
            if let Some(status) = me.child_mut().try_wait().expect("wait") {
                let out = me
                    .child
                    .take()
                    .expect("child")
                    .wait_with_output()
                    .expect("out");
                panic!(
                    "llm-log-shipper exited at start ({status}): {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            assert!(t0.elapsed() < Duration::from_secs(30), "never served");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn child_mut(&mut self) -> &mut Child {
        self.child.as_mut().expect("running")
    }

    async fn get(&self, path: &str) -> std::io::Result<Answer> {
        request(&self.addr, "GET", path, &[], b"").await
    }

    async fn post(&self, headers: &[(&str, &str)], body: &[u8]) -> Answer {
        request(&self.addr, "POST", "/v1/litellm", headers, body)
            .await
            .expect("POST answered")
    }

    /// SIGTERM, then the exit status, stdout and stderr.
    fn terminate(mut self, within: Duration) -> (std::process::ExitStatus, String, String) {
        let mut child = self.child.take().expect("running");
        let ok = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("kill -TERM");
        assert!(ok.success());
        let t0 = Instant::now();
        while child.try_wait().expect("wait").is_none() {
            if t0.elapsed() > within {
                let _ = child.kill();
                panic!("llm-log-shipper did not exit within {within:?} of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let out = child.wait_with_output().expect("output");
        (
            out.status,
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// One HTTP answer.
#[derive(Debug)]
struct Answer {
    status: u16,
    headers: HashMap<String, String>,
    body: String,
}

impl Answer {
    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

/// A minimal HTTP/1.1 exchange over one connection (`Connection: close`).
async fn request(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<Answer> {
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let mut out = head.into_bytes();
    out.extend_from_slice(body);
    // a server may answer (413) before reading everything: keep its answer
    let _ = s.write_all(&out).await;
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(60), s.read_to_end(&mut raw))
        .await
        .map_err(|_| std::io::Error::other("no answer within 60 s"))??;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| std::io::Error::other(format!("not HTTP: {text:?}")))?;
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("no status line: {head:?}")))?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Ok(Answer {
        status,
        headers,
        body: body.to_string(),
    })
}

/// The LiteLLM fixtures as (name, pretty JSON text), each given the id
/// `{tag}-{name}` (a textual change of the top-level `"id"` only, so the rest
/// is byte for byte what LiteLLM produced).
fn fixtures(tag: &str) -> Vec<(String, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../crates/llm-log-callback/tests/fixtures/litellm");
    let mut out = Vec::new();
    for e in std::fs::read_dir(&dir).expect("fixtures") {
        let p = e.expect("entry").path();
        if p.extension().and_then(|x| x.to_str()) != Some("json") {
            continue;
        }
        let name = p
            .file_stem()
            .and_then(|s| s.to_str())
            .expect("name")
            .to_string();
        let text = std::fs::read_to_string(&p).expect("fixture");
        let v: serde_json::Value = serde_json::from_str(&text).expect("fixture JSON");
        let old = v["id"].as_str().expect("fixture id");
        let from = format!("\n  \"id\": \"{old}\"");
        assert!(text.contains(&from), "{name}: top-level id on its own line");
        let text = text.replacen(&from, &format!("\n  \"id\": \"{tag}-{name}\""), 1);
        out.push((name, text));
    }
    out.sort();
    assert!(out.len() >= 10, "found the fixtures");
    out
}

fn compact(text: &str) -> String {
    serde_json::from_str::<serde_json::Value>(text)
        .expect("JSON")
        .to_string()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).expect("gzip");
    e.finish().expect("gzip")
}

fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no `{series}` in\n{text}"))
}

const MAX_BODY: usize = 512 << 10;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shipper_takes_every_litellm_format_once_and_stops_on_sigterm() {
    let endpoint = required_env(ENV_AZURITE_HTTP);
    let fs_name = unique_name("shipper");
    let token = format!("tok-{}", uuid::Uuid::new_v4().simple());
    let env = [
        (
            "AZURE_STORAGE_CONNECTION_STRING",
            connection_string(&endpoint),
        ),
        ("AZURE_STORAGE_FILE_SYSTEM", fs_name.clone()),
        ("LLM_LOG_INGEST_TOKEN", token.clone()),
        ("LLM_LOG_MAX_BODY_BYTES", MAX_BODY.to_string()),
        ("LLM_LOG_BATCH_MAX_AGE_MS", "200".to_string()),
        ("LLM_LOG_SHUTDOWN_SECS", "30".to_string()),
        // stored exactly as posted: no truncation of long strings, no data-URL stripping
        ("LLM_LOG_MAX_STRING_BYTES", "0".to_string()),
        ("LLM_LOG_STRIP_DATA_URLS", "false".to_string()),
    ];
    let shipper = Running::start(&env).await;
    let bearer = format!("Bearer {token}");
    let json = ("Content-Type", "application/json");
    let auth = ("Authorization", bearer.as_str());
    let gz = ("Content-Encoding", "gzip");
    let mut posted: HashMap<String, serde_json::Value> = HashMap::new();
    let mut remember = |records: &[(String, String)]| {
        for (_, text) in records {
            let v: serde_json::Value = serde_json::from_str(text).expect("JSON");
            let id = v["id"].as_str().expect("id").to_string();
            assert!(posted.insert(id, v).is_none());
        }
    };

    // json_array (LiteLLM's default), records pretty-printed as LiteLLM's fixtures are
    let array = fixtures("array");
    let body = format!(
        "[{}]",
        array
            .iter()
            .map(|(_, t)| t.as_str())
            .collect::<Vec<_>>()
            .join(",\n")
    );
    let a = shipper.post(&[json, auth], body.as_bytes()).await;
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(
        a.json(),
        serde_json::json!({"accepted": array.len(), "duplicates": 0})
    );
    remember(&array);
    // LiteLLM retries a batch after a timeout: the same body again stores nothing twice
    let a = shipper.post(&[json, auth], body.as_bytes()).await;
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(
        a.json(),
        serde_json::json!({"accepted": 0, "duplicates": array.len()})
    );

    // ndjson: compact lines joined by \n, no trailing newline
    let nd = fixtures("ndjson");
    let body = nd
        .iter()
        .map(|(_, t)| compact(t))
        .collect::<Vec<_>>()
        .join("\n");
    let a = shipper.post(&[json, auth], body.as_bytes()).await;
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(a.json()["accepted"], nd.len());
    remember(&nd);

    // single: one record per POST
    let single = fixtures("single");
    for (_, text) in &single {
        let a = shipper.post(&[json, auth], text.as_bytes()).await;
        assert_eq!(a.status, 200, "{a:?}");
        assert_eq!(a.json()["accepted"], 1);
    }
    remember(&single);

    // gzip, ndjson with a trailing newline
    let zipped = fixtures("gzip");
    let mut body = zipped
        .iter()
        .map(|(_, t)| compact(t))
        .collect::<Vec<_>>()
        .join("\n");
    body.push('\n');
    let a = shipper
        .post(&[json, auth, gz], &gzip(body.as_bytes()))
        .await;
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(a.json()["accepted"], zipped.len());
    remember(&zipped);

    // refusals: nothing of them is kept
    let a = shipper
        .post(&[json, auth], b"[{\"id\":\"malformed-1\"},{\"id\":")
        .await;
    assert_eq!(a.status, 400, "{a:?}");
    let reason = a.json()["error"].as_str().expect("reason").to_string();
    assert!(
        reason.contains("not valid JSON") && !reason.contains('\n'),
        "{reason}"
    );
    let a = shipper
        .post(&[json, auth], b"{\"id\":\"malformed-2\"}\n[1]")
        .await;
    assert_eq!(a.status, 400, "not an object: {a:?}");
    let big = format!(
        "[{}]",
        (0..700)
            .map(|i| format!("{{\"id\":\"big-{i}\",\"pad\":\"{}\"}}", "x".repeat(1000)))
            .collect::<Vec<_>>()
            .join(",")
    );
    assert!(big.len() > MAX_BODY);
    let a = shipper.post(&[json, auth], big.as_bytes()).await;
    assert_eq!(a.status, 413, "{a:?}");
    // a small gzip body that inflates beyond the limit
    let bomb = gzip(&vec![b' '; 8 * MAX_BODY]);
    assert!(bomb.len() < MAX_BODY / 10);
    let a = shipper.post(&[json, auth, gz], &bomb).await;
    assert_eq!(a.status, 413, "{a:?}");
    let a = shipper.post(&[json], b"{\"id\":\"no-token\"}").await;
    assert_eq!(a.status, 401, "{a:?}");
    assert_eq!(
        a.headers.get("www-authenticate").map(String::as_str),
        Some("Bearer")
    );
    let a = shipper
        .post(
            &[json, ("Authorization", "Bearer not-the-token")],
            b"{\"id\":\"wrong-token\"}",
        )
        .await;
    assert_eq!(a.status, 401, "{a:?}");
    assert!(!a.body.contains(&token));

    // health, readiness, metrics
    let a = shipper.get("/healthz").await.expect("healthz");
    assert_eq!(a.status, 200);
    let a = shipper.get("/readyz").await.expect("readyz");
    assert_eq!(a.status, 200, "{a:?}");
    let a = shipper.get("/metrics").await.expect("metrics");
    assert_eq!(a.status, 200);
    assert!(a.headers["content-type"].starts_with("text/plain"), "{a:?}");
    let m = &a.body;
    let total = posted.len() as f64;
    assert_eq!(metric(m, "llm_log_records_accepted_total"), total);
    assert_eq!(
        metric(m, "llm_log_duplicates_skipped_total"),
        array.len() as f64
    );
    assert_eq!(metric(m, "llm_log_shipper_auth_failures_total"), 2.0);
    assert_eq!(
        metric(
            m,
            "llm_log_shipper_http_requests_total{route=\"ingest\",status=\"200\"}"
        ),
        (3 + single.len() + 1) as f64
    );
    assert_eq!(
        metric(
            m,
            "llm_log_shipper_http_requests_total{route=\"ingest\",status=\"401\"}"
        ),
        2.0
    );
    assert_eq!(
        metric(
            m,
            "llm_log_shipper_http_requests_total{route=\"ingest\",status=\"413\"}"
        ),
        2.0
    );
    assert_eq!(
        metric(
            m,
            "llm_log_shipper_http_requests_total{route=\"ingest\",status=\"400\"}"
        ),
        2.0
    );
    assert_eq!(
        metric(m, "llm_log_shipper_bodies_total{format=\"json_array\"}"),
        2.0
    );
    assert_eq!(
        metric(m, "llm_log_shipper_bodies_total{format=\"single\"}"),
        single.len() as f64
    );
    assert_eq!(
        metric(m, "llm_log_shipper_ack_seconds_count"),
        (3 + single.len() + 1) as f64
    );
    assert_eq!(
        metric(m, "llm_log_records_dropped_total{reason=\"queue_full\"}"),
        0.0
    );
    // (no batch may be written yet at this point: its shape, not its counts)
    assert!(m.contains("# TYPE llm_log_upload_latency_seconds histogram"));
    assert!(m.contains("llm_log_upload_latency_seconds_bucket{le=\"+Inf\"} "));
    assert!(m.contains("llm_log_upload_latency_seconds_sum "));
    assert!(m.contains("llm_log_queue_records "));
    assert!(m.contains("llm_log_in_flight_records "));
    assert!(m.contains("llm_log_storage_retries_total "));

    // SIGTERM: drains, prints one JSON line, exits 0
    let (status, stdout, stderr) = shipper.terminate(Duration::from_secs(40));
    assert!(status.success(), "{status}: {stderr}");
    assert_eq!(stdout.lines().count(), 1, "one summary line: {stdout}");
    let summary: serde_json::Value = serde_json::from_str(&stdout).expect("JSON summary");
    assert_eq!(summary["event"], "shutdown");
    assert_eq!(summary["reason"], "SIGTERM");
    let report = &summary["report"];
    assert_eq!(report["complete"], true, "{summary}");
    assert_eq!(report["metrics"]["accepted"], posted.len());
    assert_eq!(report["metrics"]["written"], posted.len(), "{summary}");
    assert_eq!(report["metrics"]["duplicates"], array.len());
    assert!(
        !stderr.contains(&token) && !stderr.contains(AZURITE_KEY),
        "{stderr}"
    );

    // storage holds every posted record once, JSON-equal, and nothing refused
    let fs = emulator_client(&endpoint, Dialect::Blob)
        .filesystem(&fs_name)
        .expect("fs");
    let stored = read_all_records(&fs).await;
    let mut seen = HashSet::new();
    for r in &stored {
        let id = r["id"].as_str().expect("id");
        assert!(seen.insert(id.to_string()), "{id} stored twice");
        let sent = posted
            .get(id)
            .unwrap_or_else(|| panic!("{id} stored but never accepted"));
        assert_eq!(r, sent, "{id} differs from what was posted");
    }
    assert_eq!(seen.len(), posted.len(), "records missing from storage");
    fs.delete().await.expect("cleanup");
}

#[test]
fn shipper_refuses_a_non_loopback_address_without_a_token() {
    let out = command(
        &["serve", "--listen", &format!("0.0.0.0:{}", free_port())],
        &[(
            "AZURE_STORAGE_CONNECTION_STRING",
            connection_string("http://127.0.0.1:9/devstoreaccount1"),
        )],
    )
    .output()
    .expect("run");
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("not a loopback address") && stderr.contains("LLM_LOG_INGEST_TOKEN"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shipper_is_alive_but_not_ready_while_storage_is_down() {
    let closed = format!("http://127.0.0.1:{}/devstoreaccount1", free_port());
    let env = [
        (
            "AZURE_STORAGE_CONNECTION_STRING",
            connection_string(&closed),
        ),
        ("AZURE_STORAGE_FILE_SYSTEM", unique_name("down")),
        // storage is down at start: nothing to create, the logger starts anyway
        ("LLM_LOG_CREATE_FILESYSTEM", "false".to_string()),
        ("LLM_LOG_SHUTDOWN_SECS", "2".to_string()),
        // a small queue, so that it fills while nothing can be written
        ("LLM_LOG_QUEUE_MAX_RECORDS", "4".to_string()),
        ("LLM_LOG_BATCH_MAX_RECORDS", "2".to_string()),
        ("LLM_LOG_MAX_CONCURRENT_UPLOADS", "1".to_string()),
    ];
    let shipper = Running::start(&env).await;
    assert_eq!(shipper.get("/healthz").await.expect("healthz").status, 200);
    let a = shipper.get("/readyz").await.expect("readyz");
    assert_eq!(a.status, 503, "{a:?}");
    assert!(a.headers.contains_key("retry-after"), "{a:?}");
    let m = shipper.get("/metrics").await.expect("metrics");
    assert_eq!(metric(&m.body, "llm_log_shipper_ready"), 0.0);

    // a full queue is transient: 503 with Retry-After, never a 4xx (LiteLLM drops a batch on 4xx)
    let json = ("Content-Type", "application/json");
    let mut busy = None;
    for i in 0..50 {
        let a = shipper
            .post(&[json], format!("{{\"id\":\"busy-{i}\"}}").as_bytes())
            .await;
        assert!(a.status == 200 || a.status == 503, "{a:?}");
        if a.status == 503 {
            busy = Some(a);
            break;
        }
    }
    let busy = busy.expect("the queue filled");
    assert!(busy.headers["retry-after"].parse::<u64>().expect("seconds") >= 1);
    assert!(busy.json()["error"]
        .as_str()
        .expect("reason")
        .contains("retry"));
    let (status, stdout, _) = shipper.terminate(Duration::from_secs(20));
    assert!(status.success(), "{status}");
    assert!(stdout.contains("\"event\":\"shutdown\""), "{stdout}");

    // `check` says the same, and exits 1
    let out = command(&["check"], &env).output().expect("check");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("storage: failed"));
}

/// Senders that stall mid-body (four of them, each declaring 64 MiB, hold
/// the whole 256 MiB of body memory) get `503` with `Retry-After` after
/// `LLM_LOG_BODY_TIMEOUT_SECS`, and the memory is free again: they locked
/// every other sender out (503) for as long as they kept their connections.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shipper_answers_a_stalled_body_with_503_and_frees_its_memory() {
    let closed = format!("http://127.0.0.1:{}/devstoreaccount1", free_port());
    let env = [
        (
            "AZURE_STORAGE_CONNECTION_STRING",
            connection_string(&closed),
        ),
        ("AZURE_STORAGE_FILE_SYSTEM", unique_name("stall")),
        ("LLM_LOG_CREATE_FILESYSTEM", "false".to_string()),
        ("LLM_LOG_SHUTDOWN_SECS", "2".to_string()),
        ("LLM_LOG_BODY_TIMEOUT_SECS", "1".to_string()),
    ];
    let shipper = Running::start(&env).await;
    let t0 = Instant::now();
    let mut stalled = Vec::new();
    for _ in 0..4 {
        let mut c = tokio::net::TcpStream::connect(&shipper.addr)
            .await
            .expect("connect");
        let head = format!(
            "POST /v1/litellm HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{{\"id\":",
            shipper.addr,
            64 << 20
        );
        c.write_all(head.as_bytes()).await.expect("send");
        stalled.push(c);
    }
    for mut c in stalled {
        let mut answer = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(20), async {
            let mut buf = [0u8; 1024];
            loop {
                match c.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => answer.extend_from_slice(&buf[..n]),
                }
                if answer.windows(4).any(|w| w == b"\r\n\r\n") {
                    break;
                }
            }
        })
        .await;
        assert!(read.is_ok(), "no answer to a stalled body");
        let text = String::from_utf8_lossy(&answer);
        assert!(text.starts_with("HTTP/1.1 503"), "{text}");
        assert!(
            text.to_ascii_lowercase().contains("retry-after: 1"),
            "{text}"
        );
    }
    assert!(t0.elapsed() < Duration::from_secs(15), "{:?}", t0.elapsed());
    // their memory is free: a whole record is taken
    let a = shipper
        .post(
            &[("Content-Type", "application/json")],
            br#"{"id":"after-stall"}"#,
        )
        .await;
    assert_eq!(a.status, 200, "{a:?}");
    let (status, _, _) = shipper.terminate(Duration::from_secs(20));
    assert!(status.success(), "{status}");
}

#[test]
fn shipper_check_reports_the_destination_without_secrets() {
    let endpoint = required_env(ENV_AZURITE_HTTP);
    let fs_name = unique_name("check");
    let config = std::env::temp_dir().join(format!("{fs_name}.toml"));
    std::fs::write(
        &config,
        format!("AZURE_STORAGE_FILE_SYSTEM = \"{fs_name}\"\nLLM_LOG_BATCH_MAX_AGE_MS = 500\n"),
    )
    .expect("config file");
    let out = command(
        &["check", "--config", &config.to_string_lossy()],
        &[(
            "AZURE_STORAGE_CONNECTION_STRING",
            connection_string(&endpoint),
        )],
    )
    .output()
    .expect("check");
    let _ = std::fs::remove_file(&config);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    for line in [
        "dialect: blob".to_string(),
        "account: devstoreaccount1".to_string(),
        format!("endpoint: {endpoint}"),
        format!("filesystem: {fs_name}"),
    ] {
        assert!(
            stdout.lines().any(|l| l.starts_with(&line)),
            "no `{line}` in {stdout}"
        );
    }
    assert!(stdout.contains("storage: ok"), "{stdout}");
    assert!(!stdout.contains(AZURITE_KEY) && !stderr.contains(AZURITE_KEY));
}

/// Acknowledged means durable: the shipper takes POSTs while storage hangs
/// (nothing can be written), is killed with SIGKILL mid-stream, and is started
/// again on the same journal with storage back. Every record of every POST
/// that was answered 200 is stored exactly once; a POST cut off by the kill
/// may or may not be, but never twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shipper_killed_with_sigkill_under_load_loses_no_acknowledged_record() {
    use adls_tests::fault_proxy::{Action, FaultProxy, Plan, Rule};
    let azurite = required_env(ENV_AZURITE_HTTP);
    let proxy = FaultProxy::start(azurite.trim_end_matches("/devstoreaccount1")).await;
    let through_proxy = format!("{}/devstoreaccount1", proxy.url());
    let fs_name = unique_name("sigkill");
    let journal = std::env::temp_dir().join(format!("llm-log-kill-{}", uuid::Uuid::new_v4()));
    let env = [
        (
            "AZURE_STORAGE_CONNECTION_STRING",
            connection_string(&through_proxy),
        ),
        ("AZURE_STORAGE_FILE_SYSTEM", fs_name.clone()),
        ("LLM_LOG_JOURNAL_DIR", journal.display().to_string()),
        ("LLM_LOG_BATCH_MAX_AGE_MS", "100".to_string()),
        ("LLM_LOG_BATCH_MAX_RECORDS", "50".to_string()),
        ("LLM_LOG_MAX_STRING_BYTES", "0".to_string()),
        ("LLM_LOG_STRIP_DATA_URLS", "false".to_string()),
    ];
    let mut shipper = Running::start(&env).await;
    // storage hangs from now on: batches are secured and stay in flight
    proxy.set_plan(Plan::new().rule(Rule::new(Action::Delay(Duration::from_secs(3600)))));
    let json = ("Content-Type", "application/json");
    let base = fixtures("kill");
    let mut acked: HashSet<String> = HashSet::new();
    let mut all: HashSet<String> = HashSet::new();
    let mut posts = Vec::new();
    for round in 0..40 {
        let mut ids = Vec::new();
        let body = format!(
            "[{}]",
            base.iter()
                .map(|(name, text)| {
                    let id = format!("kill-{round}-{name}");
                    ids.push(id.clone());
                    text.replacen(&format!("\"kill-{name}\""), &format!("\"{id}\""), 1)
                })
                .collect::<Vec<_>>()
                .join(",")
        );
        all.extend(ids.iter().cloned());
        let addr = shipper.addr.clone();
        let post = tokio::spawn(async move {
            let a = request(&addr, "POST", "/v1/litellm", &[json], body.as_bytes()).await;
            (ids, a.map(|a| a.status).ok())
        });
        if round < 20 {
            // one at a time first: these answers are in before the kill
            let (ids, status) = post.await.expect("post task");
            assert_eq!(status, Some(200), "round {round}");
            acked.extend(ids);
            continue;
        }
        posts.push(post);
        if round == 30 {
            // mid-stream, while POSTs are still arriving
            tokio::time::sleep(Duration::from_millis(5)).await;
            let pid = shipper.child_mut().id().to_string();
            let ok = Command::new("kill")
                .args(["-KILL", &pid])
                .status()
                .expect("kill");
            assert!(ok.success());
        }
    }
    for p in posts {
        let (ids, status) = p.await.expect("post task");
        if status == Some(200) {
            acked.extend(ids);
        }
    }
    let _ = shipper.child_mut().wait();
    drop(shipper);
    assert!(
        acked.len() >= 100,
        "only {} records acknowledged before the kill",
        acked.len()
    );

    // storage back; the same journal
    proxy.set_plan(Plan::pass());
    let shipper = Running::start(&env).await;
    let t0 = Instant::now();
    loop {
        let m = shipper.get("/metrics").await.expect("metrics").body;
        let pending = metric(&m, "llm_log_journal_pending_records");
        let in_flight = metric(&m, "llm_log_in_flight_records");
        let queued = metric(&m, "llm_log_queue_records");
        let spilled = metric(&m, "llm_log_records_spilled_total");
        let replayed = metric(&m, "llm_log_records_replayed_total");
        // what the killed process had secured in flight is replayed from disk
        let spill_left = metric(&m, "llm_log_spill_bytes");
        if pending == 0.0
            && in_flight == 0.0
            && queued == 0.0
            && replayed >= spilled
            && spill_left == 0.0
        {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(90), "not drained: {m}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (status, _, _) = shipper.terminate(Duration::from_secs(60));
    assert!(status.success());
    let direct = adls_tests::emulator_client(&azurite, adls_rest::Dialect::Blob);
    let fs = direct.filesystem(&fs_name).expect("fs");
    let stored = adls_tests::read_all_records(&fs).await;
    let mut seen: HashMap<String, usize> = HashMap::new();
    for r in &stored {
        *seen
            .entry(r["id"].as_str().expect("id").to_string())
            .or_default() += 1;
    }
    let dup: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).take(5).collect();
    assert!(dup.is_empty(), "stored twice: {dup:?}");
    let lost: Vec<_> = acked
        .iter()
        .filter(|id| !seen.contains_key(*id))
        .take(5)
        .collect();
    assert!(
        lost.is_empty(),
        "acknowledged and lost ({} of {}): {lost:?}",
        acked.iter().filter(|id| !seen.contains_key(*id)).count(),
        acked.len()
    );
    assert!(
        seen.keys().all(|id| all.contains(id)),
        "stored something never posted"
    );
    eprintln!(
        "SIGKILL: {} records acknowledged before the kill, {} stored after the restart ({} of them from POSTs the kill cut off)",
        acked.len(),
        seen.len(),
        seen.len() - acked.len()
    );
    let _ = fs.delete().await;
    let _ = std::fs::remove_dir_all(&journal);
}

/// Real LiteLLM (pinned, from PyPI, mocked calls) logging through its own
/// `generic_api` callback, in each of its three formats, to the shipper behind
/// a proxy that answers 503 to its first POSTs (LiteLLM retries those with
/// `max_retries`): every `standard_logging_object` LiteLLM produced is stored
/// exactly once and JSON-equal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_litellm_generic_api_through_the_shipper_stores_each_record_once() {
    use adls_tests::fault_proxy::{Action, FaultProxy, Plan, Rule};
    let python = required_env("ADLS_TEST_LITELLM_PYTHON");
    let drive = required_env("ADLS_TEST_LITELLM_DRIVE");
    let endpoint = required_env(ENV_AZURITE_HTTP);
    let fs_name = unique_name("litellm");
    let token = format!("tok-{}", uuid::Uuid::new_v4().simple());
    let env = [
        (
            "AZURE_STORAGE_CONNECTION_STRING",
            connection_string(&endpoint),
        ),
        ("AZURE_STORAGE_FILE_SYSTEM", fs_name.clone()),
        ("LLM_LOG_INGEST_TOKEN", token.clone()),
        ("LLM_LOG_BATCH_MAX_AGE_MS", "200".to_string()),
        ("LLM_LOG_MAX_STRING_BYTES", "0".to_string()),
        ("LLM_LOG_STRIP_DATA_URLS", "false".to_string()),
    ];
    let shipper = Running::start(&env).await;
    let proxy = FaultProxy::start(&format!("http://{}", shipper.addr)).await;
    proxy.set_plan(
        Plan::new().rule(
            Rule::new(Action::server_busy())
                .path_contains("/v1/litellm")
                .first_n(3),
        ),
    );
    let out = std::env::temp_dir().join(format!("litellm-out-{}.jsonl", uuid::Uuid::new_v4()));
    let run = tokio::task::spawn_blocking({
        let (out, url, token) = (
            out.clone(),
            format!("{}/v1/litellm", proxy.url()),
            token.clone(),
        );
        move || {
            Command::new(python)
                .arg(drive)
                .args(["--endpoint", &url, "--token", &token, "--format", "all"])
                .args(["--max-retries", "3", "--out"])
                .arg(&out)
                .env_remove("HTTP_PROXY")
                .env_remove("HTTPS_PROXY")
                .output()
                .expect("run drive.py")
        }
    })
    .await
    .expect("drive task");
    assert!(
        run.status.success(),
        "drive.py failed: {}\n{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    let summary = String::from_utf8_lossy(&run.stdout).to_string();
    let stats = proxy.stats();
    assert!(
        stats.statuses >= 3,
        "the proxy answered 503 first: {stats:?}"
    );
    let produced: Vec<serde_json::Value> = std::fs::read_to_string(&out)
        .expect("drive.py output")
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    assert!(produced.len() >= 20, "{summary}");
    let (status, _, _) = shipper.terminate(Duration::from_secs(60));
    assert!(status.success());
    let direct = adls_tests::emulator_client(&endpoint, Dialect::Blob);
    let fs = direct.filesystem(&fs_name).expect("fs");
    let stored = adls_tests::read_all_records(&fs).await;
    let mut by_id: HashMap<String, Vec<&serde_json::Value>> = HashMap::new();
    for r in &stored {
        by_id
            .entry(r["id"].as_str().expect("id").to_string())
            .or_default()
            .push(r);
    }
    for p in &produced {
        let id = p["id"].as_str().expect("id");
        let s = by_id.get(id).map(Vec::as_slice).unwrap_or_default();
        assert_eq!(s.len(), 1, "{id} stored {} times", s.len());
        assert_eq!(s[0], p, "{id} is not what LiteLLM produced");
    }
    assert_eq!(
        stored.len(),
        produced.len(),
        "stored something LiteLLM did not produce"
    );
    eprintln!(
        "LITELLM: {} records from real LiteLLM (three formats, 503s retried: {}), each stored once and JSON-equal; drive.py: {}",
        produced.len(),
        stats.statuses,
        summary.trim()
    );
    let _ = fs.delete().await;
    let _ = std::fs::remove_file(&out);
}
