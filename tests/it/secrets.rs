//! No secret (account key, SAS signature, bearer token, `Authorization`
//! value) appears in any `Debug`/`Display` of the crates' types or errors, or
//! in any log line, even at TRACE level, across real operations against
//! Azurite (Shared Key) and the DFS test server (bearer).

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use adls_rest::{
    Account, Checksums, Client, CreateOptions, Credential, Dialect, FlushOptions,
    StaticTokenCredential,
};
use adls_tests::dfs_server::DfsServer;
use adls_tests::{required_env, unique_name, AZURITE_KEY, ENV_AZURITE_HTTP};
use bytes::Bytes;
use llm_log_callback::{Config, Logger};

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Captured {
        self.clone()
    }
}

/// Runs `f` on a current-thread runtime with a TRACE subscriber capturing
/// every event of this thread (spawned tasks included); returns the text.
fn traced<F: std::future::Future<Output = Vec<String>>>(
    f: impl FnOnce() -> F,
) -> (String, Vec<String>) {
    let captured = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(captured.clone())
        .with_ansi(false)
        .finish();
    let shown = tracing::subscriber::with_default(subscriber, || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(f())
    });
    let text = String::from_utf8_lossy(&captured.0.lock().expect("lock")).into_owned();
    (text, shown)
}

fn assert_clean(what: &str, text: &str, secrets: &[&str]) {
    for s in secrets {
        assert!(
            !text.contains(s),
            "{what} leaks a secret ({} chars starting {:?})",
            s.len(),
            &s[..6.min(s.len())]
        );
    }
    for marker in ["SharedKey devstoreaccount1:", "Bearer ey", "sig="] {
        assert!(
            !text.contains(marker),
            "{what} shows an authorization value ({marker})"
        );
    }
}

#[test]
fn shared_key_operations_and_errors_leak_nothing_at_trace_level() {
    let endpoint = required_env(ENV_AZURITE_HTTP);
    let wrong_key = "V3JvbmdLZXlXcm9uZ0tleVdyb25nS2V5V3JvbmdLZXlXcm9uZ0tleQ==";
    let (logs, shown) = traced(|| async move {
        let mut shown = Vec::new();
        let cs = format!("DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={AZURITE_KEY};BlobEndpoint={endpoint}");
        let info = adls_rest::connection_string::parse(&cs).expect("parse");
        shown.push(format!("{info:?}"));
        let client = Client::from_connection_string(&cs)
            .expect("cs")
            .build()
            .expect("client");
        shown.push(format!("{client:?}"));
        let fs = client.filesystem(&unique_name("secrets")).expect("fs");
        fs.create().await.expect("create fs");
        let file = fs.file("a b/c.ndjson").expect("path");
        file.create(&CreateOptions::default())
            .await
            .expect("create");
        file.append(
            0,
            Bytes::from_static(b"{}\n"),
            Checksums {
                md5: true,
                crc64: false,
            },
        )
        .await
        .expect("append");
        file.flush(3, &FlushOptions::default())
            .await
            .expect("flush");
        shown.push(format!("{:?}", file.read().await.expect("read")));
        // the logger, on the same client
        let logger = Logger::start(
            client.clone(),
            Config {
                filesystem: fs.name().to_string(),
                max_batch_age: Duration::from_millis(50),
                ..Config::default()
            },
        )
        .await
        .expect("logger");
        logger.log_json(r#"{"id":"s1","model":"m"}"#).expect("log");
        let report = logger.shutdown(Duration::from_secs(10)).await;
        shown.push(format!("{logger:?} {report:?}"));
        // a wrong key: Azurite answers 403 and quotes nothing of ours
        let bad = Client::builder(
            Account::emulator(&endpoint).expect("account"),
            Credential::shared_key(wrong_key).expect("key"),
        )
        .build()
        .expect("client");
        let e = bad
            .filesystem(fs.name())
            .expect("fs")
            .file("x")
            .expect("path")
            .properties()
            .await
            .expect_err("403");
        assert_eq!(e.status().map(|s| s.as_u16()), Some(403));
        shown.push(format!("{e} {e:?}"));
        let e = bad
            .filesystem(fs.name())
            .expect("fs")
            .create()
            .await
            .expect_err("403");
        shown.push(format!("{e} {e:?}"));
        // connection-string errors
        let e =
            adls_rest::connection_string::parse("AccountName=abc;AccountKey=NotBase64!!SECRETKEY")
                .expect_err("bad");
        shown.push(format!("{e} {e:?}"));
        fs.delete().await.expect("cleanup");
        shown
    });
    assert!(logs.contains("TRACE"), "the capture saw trace-level events");
    assert!(
        logs.contains("string_to_sign"),
        "signing was traced (without its signature)"
    );
    for s in &shown {
        assert_clean("a Debug/Display", s, &[AZURITE_KEY, wrong_key, "SECRETKEY"]);
    }
    assert_clean(
        "the TRACE log",
        &logs,
        &[AZURITE_KEY, wrong_key, "SECRETKEY"],
    );
}

#[test]
fn bearer_tokens_and_sas_leak_nothing() {
    let token = "eyJhbGciOiJub25lIn0.eyJzZWNyZXQiOiJ0b2tlbi12YWx1ZS1YWVoifQ.";
    let (logs, shown) = traced(|| async move {
        let mut shown = Vec::new();
        let server = DfsServer::start().await;
        let cred = StaticTokenCredential::new(
            token,
            time::OffsetDateTime::now_utc() + time::Duration::hours(1),
        );
        shown.push(format!("{cred:?}"));
        let credential = Credential::bearer(Arc::new(cred));
        shown.push(format!("{credential:?}"));
        let client = Client::builder(
            Account::emulator(&server.endpoint()).expect("account"),
            credential,
        )
        .dialect(Dialect::Dfs)
        .build()
        .expect("client");
        let fs = client.filesystem(&unique_name("bearer")).expect("fs");
        fs.create().await.expect("create");
        let e = fs
            .file("missing")
            .expect("path")
            .read()
            .await
            .expect_err("404");
        shown.push(format!("{e} {e:?}"));
        assert!(server
            .requests()
            .iter()
            .all(|r| r.header("authorization") == Some(&format!("Bearer {token}")[..])));
        let sas = Credential::sas(
            "sv=2025-11-05&ss=b&srt=sco&sp=rwl&se=2030-01-01&sig=SASSIGNATUREVALUE%3D",
        )
        .expect("sas");
        shown.push(format!("{sas:?}"));
        shown
    });
    for s in &shown {
        assert_clean("a Debug/Display", s, &[token, "SASSIGNATUREVALUE"]);
    }
    assert_clean("the TRACE log", &logs, &[token, "SASSIGNATUREVALUE"]);
}
