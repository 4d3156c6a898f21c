//! `sink`: a fast local stand-in for the Blob service, for measuring what
//! clients cost rather than what a server costs. It checks no signature and
//! no checksum, and by default keeps no data: per blob only the block ids and
//! sizes, and what a verifying client reads back after a commit: the length,
//! the blob's MD5 and its metadata.
//!
//! Answers Put Blob / Put Block / Put Block List `201`, Get Block List with a
//! valid listing, HEAD (Get Blob Properties) with `Content-Length`,
//! `Content-MD5` and `x-ms-meta-*`, container create `201` (`409` when it
//! exists) and delete (which drops its blobs), List Blobs with a minimal
//! listing; every answer carries `ETag`, `Last-Modified`, `x-ms-request-id`,
//! `x-ms-version` and `Date` (`object_store` fails without `ETag`).
//! `GET /__stats` answers the counters as JSON.
//!
//! The blob's MD5 is what the Blob service keeps: `x-ms-blob-content-md5` of
//! the last Put Block List (none if it sent none: Put Block List clears it),
//! or of a Put Blob, else a Put Blob's transactional `Content-MD5` (the MD5
//! of its body). The sink computes none itself. Metadata is replaced by each
//! Put Block List and Put Blob, as the service does.
//!
//! Get Blob (a read) needs the data: without `--keep-data` it answers `400
//! SinkKeepsNoData` rather than bytes it never stored, so a client that reads
//! back fails loudly instead of comparing against made-up content. With
//! `--keep-data` blocks are kept and reads (whole, or an `x-ms-range` /
//! `Range`) answer the committed bytes. `--no-md5` (implies `--keep-data`)
//! plays a server that keeps no MD5 (HEAD and reads carry none), so a
//! verifying client has to read the data back.
//!
//! `sink [--port P] [--threads N] [--keep-data] [--no-md5]` prints
//! `LISTENING <port>` once it accepts connections, and exits when its
//! standard input closes.

use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::io::BufRead as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;

/// A staged or committed block.
#[derive(Clone)]
struct Block {
    size: u64,
    /// The bytes, only with `--keep-data`.
    data: Option<Bytes>,
}

#[derive(Default)]
struct Blob {
    /// Committed blocks (id, block), in order.
    committed: Vec<(String, Block)>,
    /// Staged blocks by id.
    staged: HashMap<String, Block>,
    /// Committed length (a Put Blob with a body has no blocks).
    len: u64,
    /// A Put Blob's body, with `--keep-data`.
    body: Option<Bytes>,
    content_type: Option<String>,
    /// Base64 MD5 of the whole blob, as the client set it (see the module doc).
    content_md5: Option<String>,
    /// `x-ms-meta-*` of the last Put Block List / Put Blob: (name without the
    /// prefix, value).
    metadata: Vec<(String, String)>,
    etag: u64,
}

impl Blob {
    /// The committed content, if it was kept.
    fn content(&self) -> Option<Bytes> {
        if self.committed.is_empty() {
            return self
                .body
                .clone()
                .or_else(|| (self.len == 0).then(Bytes::new));
        }
        let mut out = Vec::with_capacity(self.len as usize);
        for (_, b) in &self.committed {
            out.extend_from_slice(b.data.as_ref()?);
        }
        Some(Bytes::from(out))
    }
}

struct State {
    containers: Mutex<HashSet<String>>,
    blobs: Mutex<HashMap<String, Blob>>,
    /// Keep blocks and bodies, so reads answer real bytes.
    keep_data: bool,
    /// Return no `Content-MD5` (a server that keeps none).
    no_md5: bool,
    requests: AtomicU64,
    bytes_in: AtomicU64,
    etag: AtomicU64,
    /// `Date` / `Last-Modified`, refreshed every second.
    date: RwLock<HeaderValue>,
}

fn main() {
    let args = adls_bench::parse_args(std::env::args().skip(1));
    let port: u16 = adls_bench::arg(&args, "port", 0);
    let threads: usize = adls_bench::arg(&args, "threads", 2);
    let no_md5 = args.contains_key("no-md5");
    let keep_data = no_md5 || args.contains_key("keep-data");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(serve(port, keep_data, no_md5));
}

fn http_date() -> HeaderValue {
    let now = time::OffsetDateTime::now_utc();
    HeaderValue::from_str(&adls_rest::ops::format_http_date(now))
        .unwrap_or(HeaderValue::from_static("Thu, 01 Jan 1970 00:00:00 GMT"))
}

async fn serve(port: u16, keep_data: bool, no_md5: bool) {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let state = Arc::new(State {
        containers: Mutex::default(),
        blobs: Mutex::default(),
        keep_data,
        no_md5,
        requests: AtomicU64::new(0),
        bytes_in: AtomicU64::new(0),
        etag: AtomicU64::new(0),
        date: RwLock::new(http_date()),
    });
    {
        let state = state.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(500)).await;
                *state.date.write().unwrap_or_else(|p| p.into_inner()) = http_date();
            }
        });
    }
    // exit when the runner closes our stdin (or dies)
    std::thread::spawn(|| {
        let stdin = std::io::stdin();
        for _ in stdin.lock().lines() {}
        std::process::exit(0);
    });
    println!("LISTENING {port}");
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let state = state.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| handle(state.clone(), req));
            let _ = hyper::server::conn::http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

fn query_param<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query.split('&').find_map(|p| {
        let (k, v) = p.split_once('=').unwrap_or((p, ""));
        (k == name).then_some(v)
    })
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The ids inside `<Committed>`, `<Uncommitted>` and `<Latest>` of a Put Block List body.
fn block_list_ids(body: &str) -> Vec<(&str, &str)> {
    let mut out = Vec::new();
    let mut rest = body;
    while let Some(open) = rest.find('<') {
        rest = &rest[open + 1..];
        let Some(close) = rest.find('>') else { break };
        let tag = &rest[..close];
        rest = &rest[close + 1..];
        if matches!(tag, "Committed" | "Uncommitted" | "Latest") {
            if let Some(end) = rest.find('<') {
                out.push((tag, rest[..end].trim()));
                rest = &rest[end..];
            }
        }
    }
    out
}

/// `x-ms-meta-*` of a request: (name without the prefix, value).
fn request_metadata(headers: &http::HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .filter_map(|(name, value)| {
            let n = name.as_str().strip_prefix("x-ms-meta-")?;
            Some((n.to_string(), value.to_str().ok()?.to_string()))
        })
        .collect()
}

fn header<'a>(parts: &'a http::request::Parts, name: &str) -> Option<&'a str> {
    parts.headers.get(name).and_then(|v| v.to_str().ok())
}

/// `bytes=a-b` or `bytes=a-` of `x-ms-range` (or `Range`): (start, inclusive end).
fn requested_range(parts: &http::request::Parts) -> Option<(u64, Option<u64>)> {
    let v = header(parts, "x-ms-range").or_else(|| header(parts, "range"))?;
    let (a, b) = v.strip_prefix("bytes=")?.split_once('-')?;
    Some((a.parse().ok()?, b.parse().ok()))
}

struct Answer {
    status: StatusCode,
    body: Bytes,
    headers: Vec<(&'static str, String)>,
    /// `x-ms-meta-*` to return: (name without the prefix, value).
    metadata: Vec<(String, String)>,
    etag: u64,
}

impl Answer {
    fn new(status: StatusCode) -> Self {
        Answer {
            status,
            body: Bytes::new(),
            headers: Vec::new(),
            metadata: Vec::new(),
            etag: 0,
        }
    }
    fn error(status: StatusCode, code: &str) -> Self {
        let mut a = Answer::new(status);
        a.headers.push(("x-ms-error-code", code.to_string()));
        a.body = Bytes::from(format!(
            "<?xml version=\"1.0\" encoding=\"utf-8\"?><Error><Code>{code}</Code><Message>sink: {code}</Message></Error>"
        ));
        a.headers.push(("content-type", "application/xml".into()));
        a
    }
}

async fn handle(
    state: Arc<State>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    state.requests.fetch_add(1, Ordering::Relaxed);
    let (parts, body) = req.into_parts();
    let body = match body.collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => Bytes::new(),
    };
    state
        .bytes_in
        .fetch_add(body.len() as u64, Ordering::Relaxed);
    let path = parts.uri.path();
    let query = parts.uri.query().unwrap_or("");
    let is_head = parts.method == Method::HEAD;
    let answer = if path == "/__stats" {
        let mut a = Answer::new(StatusCode::OK);
        a.body = Bytes::from(format!(
            "{{\"requests\":{},\"bytes_in\":{}}}",
            state.requests.load(Ordering::Relaxed),
            state.bytes_in.load(Ordering::Relaxed)
        ));
        a
    } else {
        route(&state, &parts, path, query, body)
    };
    let mut resp = Response::new(Full::new(if is_head {
        Bytes::new()
    } else {
        answer.body.clone()
    }));
    *resp.status_mut() = answer.status;
    let h = resp.headers_mut();
    let date = state.date.read().unwrap_or_else(|p| p.into_inner()).clone();
    let etag = if answer.etag == 0 {
        state.etag.fetch_add(1, Ordering::Relaxed) + 1
    } else {
        answer.etag
    };
    if let Ok(v) = HeaderValue::from_str(&format!("\"0x8D{etag:012X}\"")) {
        h.insert("etag", v);
    }
    h.insert("last-modified", date.clone());
    h.insert("date", date);
    if let Ok(v) = HeaderValue::from_str(&uuid::Uuid::new_v4().to_string()) {
        h.insert("x-ms-request-id", v);
    }
    h.insert(
        "x-ms-version",
        HeaderValue::from_static(adls_rest::API_VERSION),
    );
    h.insert("server", HeaderValue::from_static("adls-bench-sink"));
    for (name, value) in answer.headers {
        if let Ok(v) = HeaderValue::from_str(&value) {
            h.insert(name, v);
        }
    }
    for (name, value) in answer.metadata {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(format!("x-ms-meta-{name}").as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            h.insert(n, v);
        }
    }
    if is_head {
        // the length of the blob, not of our (empty) body
        if let Some(len) = resp.headers().get("x-sink-length").cloned() {
            resp.headers_mut().remove("x-sink-length");
            resp.headers_mut().insert("content-length", len);
        }
    }
    Ok(resp)
}

fn route(
    state: &State,
    parts: &http::request::Parts,
    path: &str,
    query: &str,
    body: Bytes,
) -> Answer {
    // path style: /{account}/{container}[/{blob}]
    let mut segs = path.trim_start_matches('/').splitn(3, '/');
    let _account = segs.next().unwrap_or("");
    let container = segs.next().unwrap_or("").to_string();
    let blob = segs.next().map(percent_decode);
    let restype = query_param(query, "restype");
    let comp = query_param(query, "comp");
    let method = &parts.method;
    let Some(blob) = blob.filter(|b| !b.is_empty()) else {
        return container_op(state, method, &container, restype, comp);
    };
    let key = format!("{container}/{blob}");
    let mut blobs = state.blobs.lock().unwrap_or_else(|p| p.into_inner());
    match (method.clone(), comp) {
        (Method::PUT, Some("block")) => {
            let id = query_param(query, "blockid")
                .map(percent_decode)
                .unwrap_or_default();
            let b = blobs.entry(key).or_default();
            let block = Block {
                size: body.len() as u64,
                data: state.keep_data.then_some(body),
            };
            b.staged.insert(id, block);
            let mut a = Answer::new(StatusCode::CREATED);
            a.headers
                .push(("x-ms-request-server-encrypted", "true".into()));
            a
        }
        (Method::PUT, Some("blocklist")) => {
            let text = String::from_utf8_lossy(&body);
            let b = blobs.entry(key).or_default();
            let mut committed = Vec::new();
            let find_committed = |b: &Blob, id: &str| {
                b.committed
                    .iter()
                    .find(|(i, _)| i == id)
                    .map(|(_, s)| s.clone())
            };
            for (kind, id) in block_list_ids(&text) {
                let block = match kind {
                    "Committed" => find_committed(b, id),
                    "Uncommitted" => b.staged.get(id).cloned(),
                    _ => b.staged.get(id).cloned().or_else(|| find_committed(b, id)),
                };
                match block {
                    Some(s) => committed.push((id.to_string(), s)),
                    None => return Answer::error(StatusCode::BAD_REQUEST, "InvalidBlockList"),
                }
            }
            b.len = committed.iter().map(|(_, s)| s.size).sum();
            b.committed = committed;
            b.body = None;
            b.staged.clear();
            if let Some(ct) = header(parts, "x-ms-blob-content-type") {
                b.content_type = Some(ct.to_string());
            }
            // Put Block List sets (or, without the header, clears) the MD5
            // and replaces the metadata
            b.content_md5 = header(parts, "x-ms-blob-content-md5").map(str::to_string);
            b.metadata = request_metadata(&parts.headers);
            b.etag = state.etag.fetch_add(1, Ordering::Relaxed) + 1;
            let mut a = Answer::new(StatusCode::CREATED);
            a.etag = b.etag;
            a
        }
        (Method::GET, Some("blocklist")) => {
            let Some(b) = blobs.get(&key) else {
                return Answer::error(StatusCode::NOT_FOUND, "BlobNotFound");
            };
            let mut xml = String::with_capacity(128 + 80 * (b.committed.len() + b.staged.len()));
            xml.push_str("<?xml version=\"1.0\" encoding=\"utf-8\"?><BlockList><CommittedBlocks>");
            for (id, block) in &b.committed {
                xml.push_str(&format!(
                    "<Block><Name>{id}</Name><Size>{}</Size></Block>",
                    block.size
                ));
            }
            xml.push_str("</CommittedBlocks><UncommittedBlocks>");
            for (id, block) in &b.staged {
                xml.push_str(&format!(
                    "<Block><Name>{id}</Name><Size>{}</Size></Block>",
                    block.size
                ));
            }
            xml.push_str("</UncommittedBlocks></BlockList>");
            let mut a = Answer::new(StatusCode::OK);
            a.etag = b.etag;
            a.body = Bytes::from(xml);
            a.headers.push(("content-type", "application/xml".into()));
            a
        }
        (Method::PUT, None) => {
            let create_new = parts
                .headers
                .get("if-none-match")
                .is_some_and(|v| v.as_bytes() == b"*");
            if create_new && blobs.contains_key(&key) {
                return Answer::error(StatusCode::CONFLICT, "BlobAlreadyExists");
            }
            let etag = state.etag.fetch_add(1, Ordering::Relaxed) + 1;
            let content_type = header(parts, "x-ms-blob-content-type")
                .or_else(|| header(parts, "content-type"))
                .map(str::to_string);
            let content_md5 = header(parts, "x-ms-blob-content-md5")
                .or_else(|| header(parts, "content-md5"))
                .map(str::to_string);
            blobs.insert(
                key,
                Blob {
                    len: body.len() as u64,
                    content_type,
                    content_md5,
                    metadata: request_metadata(&parts.headers),
                    body: state.keep_data.then_some(body),
                    etag,
                    ..Default::default()
                },
            );
            let mut a = Answer::new(StatusCode::CREATED);
            a.etag = etag;
            a.headers
                .push(("x-ms-request-server-encrypted", "true".into()));
            a
        }
        (Method::HEAD, None) | (Method::GET, None) => {
            let Some(b) = blobs.get(&key) else {
                return Answer::error(StatusCode::NOT_FOUND, "BlobNotFound");
            };
            let md5 = b.content_md5.clone().filter(|_| !state.no_md5);
            let mut a = Answer::new(StatusCode::OK);
            if method == Method::HEAD {
                a.headers.push(("x-sink-length", b.len.to_string()));
                if let Some(md5) = md5 {
                    a.headers.push(("content-md5", md5));
                }
            } else {
                let Some(content) = b.content() else {
                    return Answer::error(StatusCode::BAD_REQUEST, "SinkKeepsNoData");
                };
                match requested_range(parts) {
                    Some((start, end)) => {
                        let len = content.len() as u64;
                        if start >= len {
                            return Answer::error(
                                StatusCode::RANGE_NOT_SATISFIABLE,
                                "InvalidRange",
                            );
                        }
                        let end = end.unwrap_or(len - 1).min(len - 1);
                        a.status = StatusCode::PARTIAL_CONTENT;
                        a.body = content.slice(start as usize..=end as usize);
                        a.headers
                            .push(("content-range", format!("bytes {start}-{end}/{len}")));
                        // a range carries the blob's MD5 in its own header
                        if let Some(md5) = md5 {
                            a.headers.push(("x-ms-blob-content-md5", md5));
                        }
                    }
                    None => {
                        a.body = content;
                        if let Some(md5) = md5 {
                            a.headers.push(("content-md5", md5));
                        }
                    }
                }
            }
            a.etag = b.etag;
            a.headers.push(("x-ms-blob-type", "BlockBlob".into()));
            a.headers.push((
                "content-type",
                b.content_type
                    .clone()
                    .unwrap_or_else(|| "application/octet-stream".into()),
            ));
            a.metadata = b.metadata.clone();
            a
        }
        (Method::DELETE, None) => {
            blobs.remove(&key);
            Answer::new(StatusCode::ACCEPTED)
        }
        _ => Answer::error(StatusCode::BAD_REQUEST, "UnsupportedHttpVerb"),
    }
}

fn container_op(
    state: &State,
    method: &Method,
    container: &str,
    restype: Option<&str>,
    comp: Option<&str>,
) -> Answer {
    match (method.clone(), restype, comp) {
        (Method::PUT, Some("container"), None) => {
            let mut c = state.containers.lock().unwrap_or_else(|p| p.into_inner());
            if c.insert(container.to_string()) {
                Answer::new(StatusCode::CREATED)
            } else {
                Answer::error(StatusCode::CONFLICT, "ContainerAlreadyExists")
            }
        }
        (Method::DELETE, Some("container"), None) => {
            state
                .containers
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(container);
            // its blobs go with it (keeps the sink's memory flat across runs)
            let prefix = format!("{container}/");
            state
                .blobs
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .retain(|k, _| !k.starts_with(&prefix));
            Answer::new(StatusCode::ACCEPTED)
        }
        (Method::GET, Some("container"), Some("list")) => {
            let prefix = format!("{container}/");
            let blobs = state.blobs.lock().unwrap_or_else(|p| p.into_inner());
            let mut names: Vec<(&String, u64)> = blobs
                .iter()
                .filter(|(k, _)| k.starts_with(&prefix))
                .map(|(k, b)| (k, b.len))
                .collect();
            names.sort();
            let mut xml = String::from(
                "<?xml version=\"1.0\" encoding=\"utf-8\"?><EnumerationResults><Blobs>",
            );
            for (k, len) in names.iter().take(5000) {
                xml.push_str(&format!(
                    "<Blob><Name>{}</Name><Properties><Content-Length>{len}</Content-Length><BlobType>BlockBlob</BlobType></Properties></Blob>",
                    &k[prefix.len()..]
                ));
            }
            xml.push_str("</Blobs><NextMarker /></EnumerationResults>");
            let mut a = Answer::new(StatusCode::OK);
            a.body = Bytes::from(xml);
            a.headers.push(("content-type", "application/xml".into()));
            a
        }
        (Method::GET | Method::HEAD, Some("container"), None) => Answer::new(StatusCode::OK),
        _ => Answer::error(StatusCode::BAD_REQUEST, "UnsupportedHttpVerb"),
    }
}
