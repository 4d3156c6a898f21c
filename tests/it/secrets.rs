//! No secret (account key, SAS signature, bearer token, `Authorization`
//! value) appears in any `Debug`/`Display` of the crates' types or errors, or
//! in any log line, even at TRACE level, across real operations against
//! Azurite (Shared Key, SAS, bearer over HTTPS with `--oauth basic`) and the
//! DFS test server (bearer), failed ones included.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use adls_rest::{
    Account, Checksums, Client, CreateOptions, Credential, Dialect, FlushOptions,
    StaticTokenCredential,
};
use adls_tests::dfs_server::DfsServer;
use adls_tests::{
    required_env, unique_name, AZURITE_ACCOUNT, AZURITE_KEY, ENV_AZURITE_HTTP, ENV_AZURITE_HTTPS,
    ENV_CA_PEM,
};
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

/// An account SAS for Azurite's well-known account signed with `key` (base64):
/// the string-to-sign of Microsoft's "Create an account SAS" for versions
/// before 2020-12-06. Returns the query and the signature (base64) in it.
fn account_sas(key: &str) -> (String, String) {
    let expiry = time::OffsetDateTime::now_utc() + time::Duration::hours(1);
    let se = expiry
        .format(time::macros::format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second]Z"
        ))
        .expect("format");
    let (sv, ss, srt, sp) = ("2019-12-12", "b", "sco", "rwdlacup");
    let string_to_sign = format!("{AZURITE_ACCOUNT}\n{sp}\n{ss}\n{srt}\n\n{se}\n\n\n{sv}\n");
    let key = adls_rest::secret::AccountKey::from_base64(key).expect("key");
    let sig = adls_rest::sign::shared_key::sign(&key, &string_to_sign);
    let encoded = sig
        .replace('+', "%2B")
        .replace('/', "%2F")
        .replace('=', "%3D");
    (
        format!("sv={sv}&ss={ss}&srt={srt}&sp={sp}&se={se}&sig={encoded}"),
        sig,
    )
}

/// An unsigned JWT that Azurite's `--oauth basic` accepts (see `azurite_https.rs`).
fn azurite_jwt() -> String {
    use base64::Engine as _;
    let b64 = &base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let claims = serde_json::json!({
        "aud": "https://storage.azure.com",
        "iss": "https://sts.windows.net/ab1f708d-50f6-404c-a006-d71b2ac7a606/",
        "iat": now - 300, "nbf": now - 300, "exp": now + 3600,
        "oid": "00000000-0000-0000-0000-000000000001",
        "tid": "ab1f708d-50f6-404c-a006-d71b2ac7a606",
        "nonce": uuid::Uuid::new_v4().to_string(),
    });
    format!(
        "{}.{}.",
        b64.encode(r#"{"alg":"none","typ":"JWT"}"#),
        b64.encode(claims.to_string())
    )
}

fn bearer(token: &str) -> Credential {
    Credential::bearer(Arc::new(StaticTokenCredential::new(
        token,
        time::OffsetDateTime::now_utc() + time::Duration::hours(1),
    )))
}

/// Create a container, write a file (create, append, flush), read it back,
/// ask for a file that is not there (404): the Display and Debug of every
/// value and error go into `shown`.
async fn write_and_miss(client: &Client, prefix: &str, shown: &mut Vec<String>) -> String {
    let fs = client.filesystem(&unique_name(prefix)).expect("fs");
    fs.create().await.expect("create container");
    let file = fs.file("dir/one.ndjson").expect("path");
    file.create(&CreateOptions::default())
        .await
        .expect("create");
    let body = Bytes::from_static(b"{\"n\":1}\n");
    file.append(0, body.clone(), Checksums::default())
        .await
        .expect("append");
    shown.push(format!(
        "{:?}",
        file.flush(body.len() as u64, &FlushOptions::default())
            .await
            .expect("flush")
    ));
    assert_eq!(file.read().await.expect("read"), body);
    shown.push(format!(
        "{:?}",
        file.properties().await.expect("properties")
    ));
    let e = fs
        .file("missing")
        .expect("path")
        .read()
        .await
        .expect_err("404");
    assert_eq!(e.status().map(|s| s.as_u16()), Some(404), "{e}");
    shown.push(format!("{e} {e:?}"));
    fs.name().to_string()
}

#[test]
fn bearer_tokens_and_sas_leak_nothing() {
    let http = required_env(ENV_AZURITE_HTTP);
    let https = required_env(ENV_AZURITE_HTTPS);
    let ca = std::fs::read(required_env(ENV_CA_PEM)).expect("CA");
    let dfs_token = "eyJhbGciOiJub25lIn0.eyJzZWNyZXQiOiJ0b2tlbi12YWx1ZS1YWVoifQ.";
    let azurite_token = azurite_jwt();
    let (sas, sig) = account_sas(AZURITE_KEY);
    let wrong_key = "V3JvbmdLZXlXcm9uZ0tleVdyb25nS2V5V3JvbmdLZXlXcm9uZ0tleQ==";
    let (bad_sas, bad_sig) = account_sas(wrong_key);
    let tokens = (dfs_token.to_string(), azurite_token.clone());
    let (logs, shown) = traced(|| async move {
        let mut shown = Vec::new();
        let (dfs_token, azurite_token) = tokens;

        // SAS against Azurite: a write, a read, a 404, then the logger
        let credential = Credential::sas(&sas).expect("sas");
        shown.push(format!("{credential:?}"));
        let client = Client::builder(Account::emulator(&http).expect("account"), credential)
            .build()
            .expect("client");
        shown.push(format!("{client:?}"));
        let container = write_and_miss(&client, "sas", &mut shown).await;
        let logger = Logger::start(
            client.clone(),
            Config {
                filesystem: container.clone(),
                max_batch_age: Duration::from_millis(50),
                ..Config::default()
            },
        )
        .await
        .expect("logger");
        logger.log_json(r#"{"id":"s1","model":"m"}"#).expect("log");
        let report = logger.shutdown(Duration::from_secs(10)).await;
        shown.push(format!("{logger:?} {report:?}"));
        // a SAS signed with another key: 403 on every kind of call
        let bad = Client::builder(
            Account::emulator(&http).expect("account"),
            Credential::sas(&bad_sas).expect("sas"),
        )
        .build()
        .expect("client");
        let bad_fs = bad.filesystem(&container).expect("fs");
        let e = bad_fs.create().await.expect_err("403");
        assert_eq!(e.status().map(|s| s.as_u16()), Some(403), "{e}");
        shown.push(format!("{e} {e:?}"));
        let e = bad_fs
            .file("dir/one.ndjson")
            .expect("path")
            .read()
            .await
            .expect_err("403");
        assert_eq!(e.status().map(|s| s.as_u16()), Some(403), "{e}");
        shown.push(format!("{e} {e:?}"));
        client
            .filesystem(&container)
            .expect("fs")
            .delete()
            .await
            .expect("cleanup");

        // bearer against Azurite over HTTPS (`--oauth basic`): a write, a 404
        let client = Client::builder(
            Account::emulator(&https).expect("account"),
            bearer(&azurite_token),
        )
        .extra_root_pem(ca)
        .build()
        .expect("client");
        shown.push(format!("{client:?}"));
        write_and_miss(&client, "bearer", &mut shown).await;
        // and over plain HTTP, where Azurite refuses it
        let client = Client::builder(
            Account::emulator(&http).expect("account"),
            bearer(&azurite_token),
        )
        .build()
        .expect("client");
        let e = client
            .filesystem(&unique_name("bearer-http"))
            .expect("fs")
            .create()
            .await
            .expect_err("bearer over http");
        shown.push(format!("{e} {e:?}"));

        // bearer against the DFS test server: a write, a 404
        let server = DfsServer::start().await;
        let cred = StaticTokenCredential::new(
            dfs_token.as_str(),
            time::OffsetDateTime::now_utc() + time::Duration::hours(1),
        );
        shown.push(format!("{cred:?}"));
        let client = Client::builder(
            Account::emulator(&server.endpoint()).expect("account"),
            Credential::bearer(Arc::new(cred)),
        )
        .dialect(Dialect::Dfs)
        .build()
        .expect("client");
        write_and_miss(&client, "bearer-dfs", &mut shown).await;
        assert!(server
            .requests()
            .iter()
            .all(|r| r.header("authorization") == Some(&format!("Bearer {dfs_token}")[..])));
        shown
    });
    let encoded = |s: &str| {
        s.replace('+', "%2B")
            .replace('/', "%2F")
            .replace('=', "%3D")
    };
    let claims = |t: &str| t.split('.').nth(1).unwrap_or_default().to_string();
    let secrets = [
        dfs_token.to_string(),
        claims(dfs_token),
        azurite_token.clone(),
        claims(&azurite_token),
        sig.clone(),
        encoded(&sig),
        bad_sig.clone(),
        encoded(&bad_sig),
    ];
    let secrets: Vec<&str> = secrets.iter().map(String::as_str).collect();
    assert!(logs.contains("TRACE"), "the capture saw trace-level events");
    for failed in ["/missing", "/bearer-http-"] {
        assert!(
            logs.contains(failed),
            "the capture saw the failed requests ({failed})"
        );
    }
    for s in &shown {
        assert_clean("a Debug/Display", s, &secrets);
    }
    assert_clean("the TRACE log", &logs, &secrets);
}
