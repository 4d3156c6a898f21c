//! Unit tests of the DFS test server, over real HTTP on loopback: the client
//! harness and the pure helpers here, the behaviours in the submodules.

#![allow(clippy::unwrap_used)]

mod faults;
mod filesystems;
mod paths;
mod protocol;

use std::collections::BTreeMap;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use http::{HeaderValue, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use time::OffsetDateTime;

use super::append_flush::{plan_flush, retained};
use super::conditions::etag_matches;
use super::filesystem::{decode_token, encode_token};
use super::wire::{
    http_date, parse_properties, parse_range, percent_decode, valid_filesystem_name, RangeRequest,
};
use super::*;

type TestClient = Client<HttpConnector, Full<Bytes>>;

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }

    fn error_code(&self) -> Option<&str> {
        self.header("x-ms-error-code")
    }
}

fn io_error_kind(err: &(dyn std::error::Error + 'static)) -> Option<std::io::ErrorKind> {
    let mut current = Some(err);
    while let Some(e) = current {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            return Some(io.kind());
        }
        current = e.source();
    }
    None
}

fn hyper_error<'e>(err: &'e (dyn std::error::Error + 'static)) -> Option<&'e hyper::Error> {
    let mut current = Some(err);
    while let Some(e) = current {
        if let Some(h) = e.downcast_ref::<hyper::Error>() {
            return Some(h);
        }
        current = e.source();
    }
    None
}

fn client() -> TestClient {
    Client::builder(TokioExecutor::new()).build_http()
}

/// A syntactically valid Shared Key header (the server does not verify signatures).
fn shared_key() -> String {
    format!("SharedKey {DEFAULT_ACCOUNT}:{}", B64.encode([7u8; 32]))
}

/// Sends a request with valid `Authorization`, `x-ms-version` and `x-ms-date`
/// unless `headers` overrides them (an empty value removes the header).
async fn send_raw(
    client: &TestClient,
    method: Method,
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<Answer, hyper_util::client::legacy::Error> {
    let mut defaults: Vec<(String, String)> = vec![
        ("authorization".into(), shared_key()),
        ("x-ms-version".into(), "2023-11-03".into()),
        ("x-ms-date".into(), http_date(OffsetDateTime::now_utc())),
    ];
    for (name, value) in headers {
        defaults.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        if !value.is_empty() {
            defaults.push(((*name).to_owned(), (*value).to_owned()));
        }
    }
    let mut builder = Request::builder().method(method).uri(url);
    for (name, value) in &defaults {
        builder = builder.header(name.as_str(), value.as_str());
    }
    let request = builder
        .body(Full::new(Bytes::copy_from_slice(body)))
        .unwrap();
    let response = client.request(request).await?;
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    Ok(Answer {
        status,
        headers,
        body,
    })
}

async fn send(
    client: &TestClient,
    method: Method,
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Answer {
    send_raw(client, method, url, headers, body)
        .await
        .expect("the DFS test server answers")
}

/// A server with one filesystem `fs1`; returns `(server, client, "{endpoint}/fs1")`.
async fn with_filesystem(options: Options) -> (DfsServer, TestClient, String) {
    let server = DfsServer::start_with(options).await;
    let client = client();
    let fs = format!("{}/fs1", server.endpoint());
    let r = send(
        &client,
        Method::PUT,
        &format!("{fs}?resource=filesystem"),
        &[],
        b"",
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED);
    (server, client, fs)
}

async fn create_file(client: &TestClient, url: &str) -> Answer {
    let r = send(
        client,
        Method::PUT,
        &format!("{url}?resource=file"),
        &[],
        b"",
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "create {url}");
    r
}

async fn append(client: &TestClient, url: &str, position: u64, data: &[u8]) -> Answer {
    send(
        client,
        Method::PATCH,
        &format!("{url}?action=append&position={position}"),
        &[],
        data,
    )
    .await
}

async fn flush(client: &TestClient, url: &str, position: u64) -> Answer {
    send(
        client,
        Method::PATCH,
        &format!("{url}?action=flush&position={position}"),
        &[],
        b"",
    )
    .await
}

async fn read(client: &TestClient, url: &str) -> Answer {
    send(client, Method::GET, url, &[], b"").await
}

#[test]
fn pure_helpers() {
    assert_eq!(
        parse_range("bytes=5-"),
        Some(RangeRequest::Bytes {
            start: 5,
            end: None
        })
    );
    assert_eq!(
        parse_range("bytes=0-9"),
        Some(RangeRequest::Bytes {
            start: 0,
            end: Some(9)
        })
    );
    assert_eq!(parse_range("bytes=-9"), None);
    assert_eq!(parse_range("bytes=9-1"), None);
    assert!(valid_filesystem_name("logs-2024"));
    assert!(!valid_filesystem_name("ab"));
    assert!(!valid_filesystem_name("a--b"));
    assert!(!valid_filesystem_name("Logs"));
    assert!(!valid_filesystem_name("-abc"));
    assert_eq!(percent_decode("a%20b+c", true).as_deref(), Some("a b c"));
    assert_eq!(percent_decode("a%20b+c", false).as_deref(), Some("a b+c"));
    assert_eq!(percent_decode("%zz", false), None);
    let token = encode_token(&["d".into(), "x y".into()]);
    assert_eq!(
        decode_token(&token),
        Some(vec!["d".to_owned(), "x y".to_owned()])
    );
    assert!(etag_matches("\"0x8D1\", \"0x8D2\"", "0x8D2"));
    assert!(etag_matches("*", "0x8D2"));
    assert!(!etag_matches("\"0x8D1\"", "0x8D2"));
    let value = HeaderValue::from_static("a=YQ==, b_2=");
    assert_eq!(parse_properties(Some(&value)).unwrap().len(), 2);
    let bad = HeaderValue::from_static("1a=YQ==");
    assert_eq!(
        parse_properties(Some(&bad)).unwrap_err().code,
        "InvalidPropertyName"
    );

    let mut chunks = BTreeMap::new();
    chunks.insert(0, Bytes::from_static(b"ab"));
    chunks.insert(2, Bytes::from_static(b"cdef"));
    chunks.insert(9, Bytes::from_static(b"z"));
    let plan = plan_flush(0, &chunks, 4).unwrap();
    assert_eq!(plan.appended, b"abcd");
    assert_eq!(plan.straddler, Some(2));
    let kept = retained(&chunks, 4, plan.straddler);
    assert_eq!(kept.get(&4).map(|b| &b[..]), Some(&b"ef"[..]));
    assert!(kept.contains_key(&9));
    assert!(plan_flush(0, &chunks, 7).is_none());
    assert!(plan_flush(2, &chunks, 1).is_none());
    assert_eq!(plan_flush(3, &chunks, 3).unwrap().appended, b"");
}
