//! The HTTP front: `POST /v1/litellm`, `GET /metrics`, `/healthz`, `/readyz`.
//! A thin layer over [`Logger::ingest`]: it checks the token, reads the body
//! within its limit, splits it into records and answers with what `ingest`
//! said. 200 is sent only once `ingest` has returned, so whatever `ingest`
//! guarantees on return (queued now; durable once the library's journal is
//! on) is what the sender's 200 means.
//!
//! Status codes follow what LiteLLM's `generic_api` sender does with them:
//! it drops a batch on any 4xx and retries 5xx and timeouts, so a 4xx is
//! answered only when sending the same bytes again can never succeed
//! (malformed, too large, wrong token) and every transient condition is 503
//! with `Retry-After`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use llm_log_callback::{IngestError, Ingested, Logger};

use crate::body::{self, BodyError};
use crate::ready::Readiness;
use crate::settings::IngestToken;

/// The path LiteLLM posts to.
pub const INGEST_PATH: &str = "/v1/litellm";

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    /// The logger records go to.
    pub logger: Logger,
    /// Required bearer token, if any.
    pub token: Option<IngestToken>,
    /// Largest body, decompressed.
    pub max_body_bytes: usize,
    /// How long a body may take to arrive once its headers have
    /// (`LLM_LOG_BODY_TIMEOUT_SECS`): then `503` (retry), and its memory is free.
    pub body_timeout: Duration,
    /// The server's own counters.
    pub stats: Arc<ServerStats>,
    /// The cached storage check behind `/readyz`.
    pub ready: Arc<Readiness>,
    /// KiB of bodies being read or ingested at once ([`BODY_MEMORY_KIB`]).
    pub bodies: Arc<tokio::sync::Semaphore>,
}

/// Memory for request bodies in progress, in KiB (256 MiB): each request
/// takes its `Content-Length` (or, when compressed or unknown, the body
/// limit) from it before its body is read, so many small concurrent POSTs
/// (LiteLLM's `single` format) pass and a burst of huge ones waits.
pub const BODY_MEMORY_KIB: usize = 256 * 1024;

/// Upper bounds (seconds) of the acknowledgement latency histogram.
pub const ACK_BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// The server's counters (the logger keeps the ledger).
#[derive(Debug, Default)]
pub struct ServerStats {
    /// Requests refused for a missing or wrong token.
    pub auth_failures: AtomicU64,
    /// Requests by route and status.
    requests: Mutex<std::collections::BTreeMap<(&'static str, u16), u64>>,
    /// Bodies by format.
    formats: Mutex<std::collections::BTreeMap<&'static str, u64>>,
    /// Acknowledged POSTs by latency bucket (last: +Inf), and the sum in µs.
    ack_buckets: [AtomicU64; ACK_BUCKETS.len() + 1],
    ack_sum_micros: AtomicU64,
}

/// A snapshot of [`ServerStats`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ServerSnapshot {
    /// Requests refused for a missing or wrong token.
    pub auth_failures: u64,
    /// Requests by (route, status).
    pub requests: Vec<((&'static str, u16), u64)>,
    /// Bodies by format name.
    pub formats: Vec<(&'static str, u64)>,
    /// Acknowledgement latency: counts per bucket (not cumulative; last is +Inf).
    pub ack_buckets: Vec<u64>,
    /// Sum of acknowledgement latencies in seconds.
    pub ack_sum_seconds: f64,
}

impl ServerStats {
    fn count_request(&self, route: &'static str, status: u16) {
        *self
            .requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry((route, status))
            .or_default() += 1;
    }

    fn count_format(&self, format: body::Format) {
        *self
            .formats
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(format.as_str())
            .or_default() += 1;
    }

    fn record_ack(&self, d: Duration) {
        let s = d.as_secs_f64();
        let i = ACK_BUCKETS
            .iter()
            .position(|b| s <= *b)
            .unwrap_or(ACK_BUCKETS.len());
        self.ack_buckets[i].fetch_add(1, Ordering::Relaxed);
        self.ack_sum_micros
            .fetch_add(d.as_micros() as u64, Ordering::Relaxed);
    }

    /// The counters now.
    pub fn snapshot(&self) -> ServerSnapshot {
        ServerSnapshot {
            auth_failures: self.auth_failures.load(Ordering::Relaxed),
            requests: self
                .requests
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
                .map(|(k, v)| (*k, *v))
                .collect(),
            formats: self
                .formats
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
                .map(|(k, v)| (*k, *v))
                .collect(),
            ack_buckets: self
                .ack_buckets
                .iter()
                .map(|b| b.load(Ordering::Relaxed))
                .collect(),
            ack_sum_seconds: self.ack_sum_micros.load(Ordering::Relaxed) as f64 / 1e6,
        }
    }
}

/// The router.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route(INGEST_PATH, post(ingest))
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        // the ingest handler reads the body within its own limit
        .layer(DefaultBodyLimit::disable())
        .layer(middleware::from_fn_with_state(state.clone(), count_status))
        .with_state(state)
}

/// Counts every answer by route (a fixed set, so labels stay bounded) and status.
async fn count_status(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let route = match req.uri().path() {
        INGEST_PATH => "ingest",
        "/metrics" => "metrics",
        "/healthz" => "healthz",
        "/readyz" => "readyz",
        _ => "other",
    };
    let response = next.run(req).await;
    state.stats.count_request(route, response.status().as_u16());
    response
}

/// An answer with a one-line JSON body.
fn answer(status: StatusCode, body: serde_json::Value) -> Response {
    let mut r = (status, body.to_string()).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

/// A refusal: `{"error": reason}`, and `Retry-After` when it is transient.
fn refuse(status: StatusCode, reason: &str, retry_after: Option<Duration>) -> Response {
    let mut r = answer(status, serde_json::json!({ "error": reason }));
    if let Some(wait) = retry_after {
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
    }
    r
}

/// How `ingest`'s refusals map to HTTP: what can never succeed is 4xx, the
/// rest (busy, shutting down, anything this version does not know) is 503
/// with `Retry-After`, so the sender keeps the batch and tries again.
pub fn ingest_error_status(e: &IngestError) -> (StatusCode, Option<Duration>) {
    match e {
        IngestError::Invalid { .. } => (StatusCode::BAD_REQUEST, None),
        IngestError::TooLarge { .. } | IngestError::GroupTooLarge { .. } => {
            (StatusCode::PAYLOAD_TOO_LARGE, None)
        }
        IngestError::Busy { retry_after } => (StatusCode::SERVICE_UNAVAILABLE, Some(*retry_after)),
        IngestError::ShutDown => (
            StatusCode::SERVICE_UNAVAILABLE,
            Some(Duration::from_secs(5)),
        ),
        _ => (
            StatusCode::SERVICE_UNAVAILABLE,
            Some(Duration::from_secs(1)),
        ),
    }
}

/// How a body that is not records maps to HTTP.
pub fn body_error_status(e: &BodyError) -> StatusCode {
    match e {
        BodyError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        BodyError::BadGzip(_)
        | BodyError::NotUtf8 { .. }
        | BodyError::Empty
        | BodyError::Malformed(_) => StatusCode::BAD_REQUEST,
    }
}

/// Whether the request carries the token (always, when none is configured).
fn authorized(token: Option<&IngestToken>, headers: &HeaderMap) -> bool {
    let Some(token) = token else {
        return true;
    };
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return false;
    };
    let value = value.as_bytes();
    match value.iter().position(|b| *b == b' ') {
        Some(i) if value[..i].eq_ignore_ascii_case(b"bearer") => {
            token.matches(value[i + 1..].trim_ascii())
        }
        _ => false,
    }
}

/// Whether the content type is JSON (`application/json`, LiteLLM's, or an
/// NDJSON spelling). Requiring it also keeps browsers from posting here
/// across origins without a CORS preflight, which this server never grants.
fn json_content_type(headers: &HeaderMap) -> bool {
    let Some(ct) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = ct.split(';').next().unwrap_or("").trim();
    [
        "application/json",
        "application/x-ndjson",
        "application/ndjson",
        "application/jsonl",
        "application/x-jsonlines",
    ]
    .iter()
    .any(|t| essence.eq_ignore_ascii_case(t))
}

/// `POST /v1/litellm`.
async fn ingest(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    let started = Instant::now();
    if !authorized(state.token.as_ref(), &headers) {
        state.stats.auth_failures.fetch_add(1, Ordering::Relaxed);
        tracing::warn!("ingest refused: missing or wrong bearer token");
        let mut r = refuse(
            StatusCode::UNAUTHORIZED,
            "missing or wrong token: send `Authorization: Bearer <LLM_LOG_INGEST_TOKEN>`",
            None,
        );
        r.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return r;
    }
    if !json_content_type(&headers) {
        return refuse(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Content-Type must be application/json",
            None,
        );
    }
    // Memory stays bounded: what a body may take is reserved before it is
    // read; without room, the sender retries (transient, so 503, which
    // LiteLLM retries).
    let may_take = match headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
    {
        Some(n) if !gzip_encoded(&headers) => n.min(state.max_body_bytes),
        _ => state.max_body_bytes,
    };
    let kib = may_take.div_ceil(1024).clamp(1, BODY_MEMORY_KIB) as u32;
    let Ok(body_permit) = state.bodies.clone().try_acquire_many_owned(kib) else {
        return refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "too many request bodies in progress; retry",
            Some(Duration::from_secs(1)),
        );
    };
    let gzip = match headers
        .get(header::CONTENT_ENCODING)
        .map(|v| v.to_str().unwrap_or("?").trim().to_ascii_lowercase())
        .as_deref()
    {
        None | Some("") | Some("identity") => false,
        Some("gzip") | Some("x-gzip") => true,
        Some(_) => {
            return refuse(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "Content-Encoding must be gzip or absent",
                None,
            )
        }
    };
    let limit = state.max_body_bytes;
    let too_large = || {
        refuse(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!("the body is larger than {limit} bytes (LLM_LOG_MAX_BODY_BYTES): send fewer records per request"),
            None,
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return too_large();
    }
    // a sender that stalls mid-body would hold its reservation (and its
    // connection) for good
    let Ok(read) =
        tokio::time::timeout(state.body_timeout, Limited::new(body, limit).collect()).await
    else {
        tracing::info!(
            timeout_secs = state.body_timeout.as_secs(),
            "ingest body not read in time"
        );
        // transient, like every refusal that is not the body's fault: 503,
        // which LiteLLM retries (it drops a batch on a 4xx)
        return refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            &format!(
                "the body was not received within {} s (LLM_LOG_BODY_TIMEOUT_SECS); retry",
                state.body_timeout.as_secs()
            ),
            Some(Duration::from_secs(1)),
        );
    };
    let raw = match read {
        Ok(c) => c.to_bytes(),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => return too_large(),
        Err(e) => {
            // the sender went away or broke the framing: nothing to keep
            tracing::debug!(error = %e, "ingest body not read");
            return refuse(
                StatusCode::BAD_REQUEST,
                "the body could not be read to its end",
                None,
            );
        }
    };
    let data = if gzip {
        match tokio::task::spawn_blocking(move || body::gunzip_bounded(&raw, limit)).await {
            Ok(Ok(d)) => bytes::Bytes::from(d),
            Ok(Err(e)) => return refuse(body_error_status(&e), &e.to_string(), None),
            Err(_) => {
                return refuse(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "decompression failed unexpectedly; retry",
                    Some(Duration::from_secs(1)),
                )
            }
        }
    } else {
        raw
    };
    // Split and ingest in a task of its own: if the sender hangs up while
    // `ingest` runs, the group is still taken whole (or not at all), never
    // cut off half way; a retry of it is then skipped as duplicates.
    let logger = state.logger.clone();
    let work = tokio::spawn(async move {
        // the body's memory stays reserved while the task holds the body,
        // also after the sender hung up and this handler was dropped
        let _body_permit = body_permit;
        let text = body::text(&data)?;
        let (format, records) = body::split_records(text)?;
        let outcome = logger.ingest(&records).await;
        Ok::<_, BodyError>((format, records.len(), outcome))
    });
    let (format, received, outcome) = match work.await {
        Ok(Ok(done)) => done,
        Ok(Err(e)) => {
            tracing::info!(reason = %e, "ingest refused: malformed body");
            return refuse(body_error_status(&e), &e.to_string(), None);
        }
        Err(e) => {
            tracing::error!(error = %e, "ingest task failed");
            return refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                "the records could not be taken; retry",
                Some(Duration::from_secs(1)),
            );
        }
    };
    state.stats.count_format(format);
    match outcome {
        Ok(Ingested {
            accepted,
            duplicates,
        }) => {
            state.stats.record_ack(started.elapsed());
            tracing::debug!(
                format = format.as_str(),
                received,
                accepted,
                duplicates,
                "ingested"
            );
            answer(
                StatusCode::OK,
                serde_json::json!({ "accepted": accepted, "duplicates": duplicates }),
            )
        }
        Err(e) => {
            let (status, retry_after) = ingest_error_status(&e);
            if status == StatusCode::SERVICE_UNAVAILABLE {
                tracing::warn!(reason = %e, received, "ingest deferred");
            } else {
                tracing::info!(reason = %e, received, "ingest refused");
            }
            refuse(status, &e.to_string(), retry_after)
        }
    }
}

/// Whether the body is compressed (its decompressed size is unknown).
fn gzip_encoded(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_ENCODING)
        .is_some_and(|v| !v.as_bytes().eq_ignore_ascii_case(b"identity"))
}

/// `GET /metrics`: Prometheus text format.
async fn metrics(State(state): State<AppState>) -> Response {
    let text = crate::prometheus::render(
        &state.logger.metrics(),
        &state.stats.snapshot(),
        state.ready.last(),
    );
    let mut r = text.into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    r
}

/// `GET /healthz`: the process is alive and serving.
async fn healthz() -> Response {
    answer(StatusCode::OK, serde_json::json!({ "status": "ok" }))
}

/// `GET /readyz`: storage and the credential answered a read recently.
async fn readyz(State(state): State<AppState>) -> Response {
    match state.ready.check().await {
        Ok(()) => answer(StatusCode::OK, serde_json::json!({ "status": "ready" })),
        Err(reason) => refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            &reason,
            Some(Duration::from_secs(5)),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transient_refusals_are_503_with_retry_after_and_only_hopeless_ones_4xx() {
        let busy = IngestError::Busy {
            retry_after: Duration::from_millis(1500),
        };
        assert_eq!(
            ingest_error_status(&busy),
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Some(Duration::from_millis(1500))
            )
        );
        let (s, wait) = ingest_error_status(&IngestError::ShutDown);
        assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
        assert!(wait.is_some());
        assert_eq!(
            ingest_error_status(&IngestError::Invalid {
                index: 3,
                reason: "not an object".into()
            }),
            (StatusCode::BAD_REQUEST, None)
        );
        assert_eq!(
            ingest_error_status(&IngestError::TooLarge {
                index: 0,
                bytes: 10,
                limit: 5
            })
            .0,
            StatusCode::PAYLOAD_TOO_LARGE
        );
        assert_eq!(
            ingest_error_status(&IngestError::GroupTooLarge {
                records: 10,
                bytes: 10
            })
            .0,
            StatusCode::PAYLOAD_TOO_LARGE
        );
        assert_eq!(
            body_error_status(&BodyError::TooLarge { limit: 1 }),
            StatusCode::PAYLOAD_TOO_LARGE
        );
        for e in [
            BodyError::Empty,
            BodyError::NotUtf8 { at: 0 },
            BodyError::BadGzip("x".into()),
            BodyError::Malformed("x".into()),
        ] {
            assert_eq!(body_error_status(&e), StatusCode::BAD_REQUEST);
        }
    }

    #[test]
    fn retry_after_is_whole_seconds_rounded_up() {
        let r = refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "busy",
            Some(Duration::from_millis(1500)),
        );
        assert_eq!(r.headers()[header::RETRY_AFTER], "2");
        let r = refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "busy",
            Some(Duration::ZERO),
        );
        assert_eq!(r.headers()[header::RETRY_AFTER], "1");
        let r = refuse(StatusCode::BAD_REQUEST, "bad", None);
        assert!(r.headers().get(header::RETRY_AFTER).is_none());
    }

    #[test]
    fn the_token_is_checked_whatever_the_scheme_case() {
        let token = IngestToken::new("tok-123");
        let with = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(
                header::AUTHORIZATION,
                HeaderValue::from_str(v).expect("header"),
            );
            h
        };
        assert!(authorized(Some(&token), &with("Bearer tok-123")));
        assert!(authorized(Some(&token), &with("bearer  tok-123 ")));
        assert!(!authorized(Some(&token), &with("Bearer tok-1234")));
        assert!(!authorized(Some(&token), &with("Basic tok-123")));
        assert!(!authorized(Some(&token), &with("tok-123")));
        assert!(!authorized(Some(&token), &HeaderMap::new()));
        assert!(authorized(None, &HeaderMap::new()));
    }

    #[test]
    fn json_content_types() {
        let with = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_str(v).expect("header"),
            );
            h
        };
        assert!(json_content_type(&with("application/json")));
        assert!(json_content_type(&with("Application/JSON; charset=utf-8")));
        assert!(json_content_type(&with("application/x-ndjson")));
        assert!(!json_content_type(&with("text/plain")));
        assert!(!json_content_type(&with(
            "application/x-www-form-urlencoded"
        )));
        assert!(!json_content_type(&HeaderMap::new()));
    }
}
