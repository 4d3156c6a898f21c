//! HTTPS against the Azurite instance started with a generated CA and
//! `--oauth basic`: Shared Key with the CA as an extra root, the typed connect
//! error when the CA is not trusted, and bearer tokens (unsigned JWTs, which
//! `--oauth basic` accepts when `nbf`/`exp`/`iat`, the issuer and the audience
//! are right): valid ones write, expired ones and ones for another audience or
//! issuer get a typed 403, and no error ever shows the token.

use std::sync::Arc;

use adls_rest::{
    Account, Checksums, Client, CreateMode, CreateOptions, Credential, Error, ErrorKind,
    FlushOptions, ListOptions, StaticTokenCredential,
};
use adls_tests::{required_env, unique_name, AZURITE_KEY, ENV_AZURITE_HTTPS, ENV_CA_PEM};
use base64::Engine as _;
use bytes::Bytes;
use http::StatusCode;
use time::{Duration, OffsetDateTime};

fn ca_pem() -> Vec<u8> {
    let path = required_env(ENV_CA_PEM);
    std::fs::read(&path).unwrap_or_else(|e| panic!("reading the CA at {path}: {e}"))
}

fn account() -> Account {
    Account::emulator(&required_env(ENV_AZURITE_HTTPS)).expect("valid emulator URL")
}

fn shared_key_client() -> Client {
    Client::builder(
        account(),
        Credential::shared_key(AZURITE_KEY).expect("valid key"),
    )
    .extra_root_pem(ca_pem())
    .build()
    .expect("client builds")
}

fn bearer_client(jwt: &str) -> Client {
    // The provider says the token is good for an hour, so the client sends it
    // whatever its claims say.
    let provider = StaticTokenCredential::new(jwt, OffsetDateTime::now_utc() + Duration::hours(1));
    Client::builder(account(), Credential::bearer(Arc::new(provider)))
        .extra_root_pem(ca_pem())
        .build()
        .expect("client builds")
}

/// Claims of a token; each test changes what it is about.
struct Claims {
    aud: &'static str,
    iss: &'static str,
    nbf: OffsetDateTime,
    exp: OffsetDateTime,
}

impl Claims {
    fn valid() -> Claims {
        let now = OffsetDateTime::now_utc();
        Claims {
            aud: "https://storage.azure.com",
            iss: "https://sts.windows.net/ab1f708d-50f6-404c-a006-d71b2ac7a606/",
            nbf: now - Duration::minutes(5),
            exp: now + Duration::hours(1),
        }
    }

    /// An unsigned JWT (`alg: none`): `base64url(header).base64url(claims).`
    fn jwt(&self) -> String {
        let b64 = &base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let header = serde_json::json!({ "alg": "none", "typ": "JWT" });
        let claims = serde_json::json!({
            "aud": self.aud,
            "iss": self.iss,
            "iat": self.nbf.unix_timestamp(),
            "nbf": self.nbf.unix_timestamp(),
            "exp": self.exp.unix_timestamp(),
            "oid": "00000000-0000-0000-0000-000000000001",
            "tid": "ab1f708d-50f6-404c-a006-d71b2ac7a606",
        });
        format!(
            "{}.{}.",
            b64.encode(header.to_string()),
            b64.encode(claims.to_string())
        )
    }
}

/// Asserts `e` is the service's 403 `AuthenticationFailed` and does not show `token`.
fn assert_auth_failed(e: &Error, token: &str) {
    assert_eq!(e.kind(), ErrorKind::Service, "{e}");
    assert_eq!(e.status(), Some(StatusCode::FORBIDDEN), "{e}");
    assert_eq!(e.error_code(), Some("AuthenticationFailed"), "{e}");
    assert!(!e.is_retryable(), "{e}");
    let text = format!("{e} {e:?}");
    assert!(!text.contains(token), "error shows the token: {text}");
    // Not even the claims part (the header part is the same for every token).
    let claims = token.split('.').nth(1).expect("JWT has claims");
    assert!(
        !text.contains(claims),
        "error shows the token's claims: {text}"
    );
}

/// Create, two appends, flush, read back, list, delete: a write path end to end.
async fn write_read_round_trip(client: &Client, prefix: &str) {
    let fs = client.filesystem(&unique_name(prefix)).expect("valid name");
    assert!(fs.create_if_not_exists().await.expect("create container"));
    let f = fs.file("tls/one.ndjson").expect("valid path");
    f.create(&CreateOptions {
        mode: CreateMode::CreateNew,
        ..Default::default()
    })
    .await
    .expect("create file");
    let a = Bytes::from_static(b"{\"n\":1}\n");
    let b = Bytes::from(vec![b'x'; 300_000]);
    f.append(
        0,
        a.clone(),
        Checksums {
            md5: true,
            ..Default::default()
        },
    )
    .await
    .expect("append");
    f.append(a.len() as u64, b.clone(), Checksums::default())
        .await
        .expect("append");
    let len = (a.len() + b.len()) as u64;
    let flushed = f.flush(len, &FlushOptions::default()).await.expect("flush");
    assert_eq!(flushed.content_length, len);
    let back = f.read().await.expect("read");
    assert_eq!(back.len() as u64, len);
    assert_eq!(&back[..a.len()], a.as_ref());
    assert!(back[a.len()..].iter().all(|&c| c == b'x'));
    assert_eq!(f.properties().await.expect("props").content_length, len);
    let listed = fs
        .list_all(ListOptions {
            recursive: true,
            ..Default::default()
        })
        .await
        .expect("list");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].name, "tls/one.ndjson");
    f.delete().await.expect("delete file");
    fs.delete().await.expect("delete container");
}

#[tokio::test]
async fn shared_key_over_https_with_extra_root() {
    let client = shared_key_client();
    write_read_round_trip(&client, "tls-sk").await;
    let s = client.stats();
    assert_eq!(s.retries, 0, "{s:?}");
    // One TLS connection reused, and a second for the flush, which sends Get
    // Block List and Get Blob Properties at once (usually).
    assert!((1..=2).contains(&s.connections_opened), "{s:?}");
}

#[tokio::test]
async fn https_without_the_ca_is_a_typed_tls_error_not_retried() {
    let client = Client::builder(
        account(),
        Credential::shared_key(AZURITE_KEY).expect("valid key"),
    )
    // the default retry policy: a TLS failure must not be retried at all
    .build()
    .expect("client builds");
    let e = client
        .filesystem(&unique_name("tls-noca"))
        .expect("valid name")
        .create()
        .await
        .expect_err("an unknown CA is refused");
    assert_eq!(e.kind(), ErrorKind::Tls, "{e:?}");
    assert!(
        !e.is_retryable(),
        "an untrusted certificate does not go away by retrying"
    );
    assert!(
        e.to_string().contains("UnknownIssuer"),
        "the cause is in the message: {e}"
    );
    assert_eq!(e.status(), None, "{e:?}");
    // The cause, somewhere down the source chain: rustls's `UnknownIssuer`.
    let mut chain = Vec::new();
    let mut cur: Option<&dyn std::error::Error> = Some(&e);
    while let Some(err) = cur {
        chain.push(format!("{err} / {err:?}"));
        cur = err.source();
    }
    let chain = chain.join("\n");
    assert!(
        chain.contains("UnknownIssuer") || chain.contains("unknown issuer"),
        "the certificate problem is not in the error chain:\n{chain}"
    );
    assert_eq!(client.stats().requests_sent, 1, "not retried");
    assert_eq!(client.stats().retries, 0);
    assert_eq!(client.stats().connections_opened, 0);

    // A PEM without certificates is a configuration error at build time.
    let e = Client::builder(account(), Credential::Anonymous)
        .extra_root_pem(b"not a pem".to_vec())
        .build()
        .expect_err("no CERTIFICATE block");
    assert_eq!(e.kind(), ErrorKind::Config, "{e}");
}

#[tokio::test]
async fn bearer_token_writes_succeed() {
    let jwt = Claims::valid().jwt();
    let client = bearer_client(&jwt);
    assert!(
        !format!("{client:?}").contains(&jwt),
        "client Debug shows the token"
    );
    write_read_round_trip(&client, "tls-bearer").await;
    assert_eq!(client.stats().retries, 0);
}

#[tokio::test]
async fn expired_bearer_token_is_403() {
    let now = OffsetDateTime::now_utc();
    let jwt = Claims {
        nbf: now - Duration::hours(2),
        exp: now - Duration::minutes(10),
        ..Claims::valid()
    }
    .jwt();
    let client = bearer_client(&jwt);
    let fs = client
        .filesystem(&unique_name("tls-exp"))
        .expect("valid name");
    let e = fs.create().await.expect_err("expired token");
    assert_auth_failed(&e, &jwt);
    // HEAD: the answer has no body; the code comes from the headers.
    let e = fs
        .file("f")
        .expect("valid path")
        .properties()
        .await
        .expect_err("expired token");
    assert_eq!(e.status(), Some(StatusCode::FORBIDDEN), "{e}");
    assert!(!format!("{e} {e:?}").contains(&jwt));
    assert_eq!(client.stats().retries, 0, "a 403 is not retried");
}

#[tokio::test]
async fn token_for_another_audience_is_403() {
    let jwt = Claims {
        aud: "https://management.azure.com",
        ..Claims::valid()
    }
    .jwt();
    let client = bearer_client(&jwt);
    let e = client
        .filesystem(&unique_name("tls-aud"))
        .expect("valid name")
        .create()
        .await
        .expect_err("wrong audience");
    assert_auth_failed(&e, &jwt);
}

#[tokio::test]
async fn token_from_another_issuer_is_403() {
    let jwt = Claims {
        iss: "https://login.example.com/tenant/",
        ..Claims::valid()
    }
    .jwt();
    let client = bearer_client(&jwt);
    let e = client
        .filesystem(&unique_name("tls-iss"))
        .expect("valid name")
        .create()
        .await
        .expect_err("wrong issuer");
    assert_auth_failed(&e, &jwt);
}

#[tokio::test]
async fn token_not_yet_valid_is_403() {
    let now = OffsetDateTime::now_utc();
    let jwt = Claims {
        nbf: now + Duration::minutes(30),
        exp: now + Duration::hours(2),
        ..Claims::valid()
    }
    .jwt();
    let client = bearer_client(&jwt);
    let e = client
        .filesystem(&unique_name("tls-nbf"))
        .expect("valid name")
        .create()
        .await
        .expect_err("token not valid yet");
    assert_auth_failed(&e, &jwt);
}
