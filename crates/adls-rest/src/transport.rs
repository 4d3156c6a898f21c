//! The one place that touches sockets: HTTP/1 connections of our own
//! (`transport/pool.rs`, each driven in the task of the request that holds
//! it) over plain TCP or rustls (ring provider, webpki roots plus an optional
//! extra root CA), with connect and per-attempt timeouts, an idle timeout
//! below the server's keep-alive, a limit on requests in flight (which also
//! bounds connections), counters, and the retry loop that stamps, signs and
//! sends every attempt afresh.

mod pool;

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, StatusCode};
use http_body_util::Full;
use hyper_util::client::legacy::connect::HttpConnector;
use tokio::sync::Semaphore;
use tracing::Instrument as _;

use crate::credential::Credential;
use crate::error::{redact_service_message, Error, ErrorKind};
use crate::ops::{format_http_date, header_str, names};
use crate::retry::{server_retry_after, RetryPolicy};
use crate::sign;

/// The `x-ms-version` sent on every request: accepted by Azure and by Azurite 3.35.
pub const API_VERSION: &str = "2025-11-05";

/// Transport settings.
///
/// ```
/// # fn main() -> Result<(), adls_rest::Error> {
/// use std::time::Duration;
/// use adls_rest::{Client, TransportOptions};
///
/// let options = TransportOptions {
///     attempt_timeout: Duration::from_secs(20),
///     pool_idle_timeout: Duration::from_secs(3), // below Azurite's 5 s keep-alive
///     max_in_flight: 8,
///     ..TransportOptions::default()
/// };
/// let client = Client::from_connection_string("UseDevelopmentStorage=true")?
///     .transport_options(options)
///     .build()?;
/// assert_eq!(client.stats().connections_opened, 0);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct TransportOptions {
    /// Time to open a TCP connection.
    pub connect_timeout: Duration,
    /// Time for one attempt: sending the request and reading the whole answer.
    pub attempt_timeout: Duration,
    /// Idle pooled connections are closed after this; keep it below the
    /// server's keep-alive (Azurite: 5 s, Azure's load balancer: 4 min).
    /// Values above a year (e.g. `Duration::MAX` for "never") count as a year.
    pub pool_idle_timeout: Duration,
    /// Requests in flight at once; also the most connections ever open.
    pub max_in_flight: usize,
    /// An extra root certificate (PEM) to trust besides the webpki roots.
    pub extra_root_pem: Option<Vec<u8>>,
    /// Retry policy.
    pub retry: RetryPolicy,
}

impl Default for TransportOptions {
    fn default() -> Self {
        TransportOptions {
            connect_timeout: Duration::from_secs(10),
            attempt_timeout: Duration::from_secs(60),
            pool_idle_timeout: Duration::from_secs(4),
            max_in_flight: 64,
            extra_root_pem: None,
            retry: RetryPolicy::default(),
        }
    }
}

/// Counters a test or a metrics exporter can read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TransportStats {
    /// Connections opened since the client was built.
    pub connections_opened: u64,
    /// Connections open now.
    pub connections_open: u64,
    /// The most connections ever open at once (bounded by `max_in_flight`).
    pub connections_peak: u64,
    /// HTTP requests sent (every attempt counts).
    pub requests_sent: u64,
    /// Attempts that were retries.
    pub retries: u64,
}

#[derive(Debug, Default)]
pub(super) struct Counters {
    pub(super) connections_opened: AtomicU64,
    pub(super) connections_open: AtomicU64,
    pub(super) connections_peak: AtomicU64,
    requests_sent: AtomicU64,
    retries: AtomicU64,
}

/// An answer with its whole body.
#[derive(Debug, Clone)]
pub struct Response {
    /// Status.
    pub status: StatusCode,
    /// Headers.
    pub headers: http::HeaderMap,
    /// Body.
    pub body: Bytes,
}

impl Response {
    /// `x-ms-request-id`.
    pub fn request_id(&self) -> Option<&str> {
        header_str(&self.headers, "x-ms-request-id")
    }
}

/// What the retry loop knows besides the final result.
pub(crate) struct Outcome {
    pub result: Result<Response, Error>,
    /// An earlier attempt may have been applied by the service without us
    /// seeing the answer (dropped connection, timeout, 500/502/504).
    pub earlier_ambiguous: bool,
    /// When the first attempt started (for reconciliation windows).
    pub started: Instant,
}

pub(crate) struct Transport {
    pool: pool::Pool,
    in_flight: Arc<Semaphore>,
    counters: Arc<Counters>,
    options: TransportOptions,
}

impl Transport {
    pub(crate) fn new(options: TransportOptions) -> Result<Self, Error> {
        if options.max_in_flight == 0 {
            return Err(Error::config("max_in_flight must be at least 1"));
        }
        let tls = tls_config(options.extra_root_pem.as_deref())?;
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(options.connect_timeout));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let counters = Arc::new(Counters::default());
        let pool = pool::Pool::new(
            https,
            options.max_in_flight,
            options.pool_idle_timeout,
            counters.clone(),
        );
        Ok(Transport {
            pool,
            in_flight: Arc::new(Semaphore::new(options.max_in_flight)),
            counters,
            options,
        })
    }

    pub(crate) fn stats(&self) -> TransportStats {
        TransportStats {
            connections_opened: self.counters.connections_opened.load(Ordering::Relaxed),
            connections_open: self.counters.connections_open.load(Ordering::Relaxed),
            connections_peak: self.counters.connections_peak.load(Ordering::Relaxed),
            requests_sent: self.counters.requests_sent.load(Ordering::Relaxed),
            retries: self.counters.retries.load(Ordering::Relaxed),
        }
    }

    /// Sends `req` until it succeeds, fails for good, or the policy gives up.
    /// Each attempt gets a fresh `x-ms-date`, `x-ms-client-request-id` and
    /// signature; the body is the same `Bytes` every time.
    pub(crate) async fn execute(
        &self,
        op: &'static str,
        account: &str,
        credential: &Credential,
        req: &Request<Bytes>,
    ) -> Outcome {
        let span =
            tracing::debug_span!("adls_op", op, method = %req.method(), path = %req.uri().path());
        // boxed: the attempt loop with its sends is a future of a few KiB,
        // and every caller's future would otherwise carry (and copy) it
        Box::pin(
            self.execute_inner(account, credential, req)
                .instrument(span),
        )
        .await
    }

    async fn execute_inner(
        &self,
        account: &str,
        credential: &Credential,
        req: &Request<Bytes>,
    ) -> Outcome {
        let policy = &self.options.retry;
        let started = Instant::now();
        let mut earlier_ambiguous = false;
        let mut attempt: u32 = 0;
        let mut refreshed_token = false;
        loop {
            attempt += 1;
            if attempt > 1 {
                self.counters.retries.fetch_add(1, Ordering::Relaxed);
            }
            let t0 = Instant::now();
            let prepared = match self.prepare(account, credential, req).await {
                Ok(p) => p,
                Err(e) => {
                    return Outcome {
                        result: Err(maybe_applied_earlier(e, earlier_ambiguous)),
                        earlier_ambiguous,
                        started,
                    }
                }
            };
            let attempt_span = tracing::debug_span!(
                "adls_attempt",
                attempt,
                status = tracing::field::Empty,
                request_id = tracing::field::Empty,
                elapsed_ms = tracing::field::Empty
            );
            let result = self
                .send_once(prepared.request, &prepared.secrets)
                .instrument(attempt_span.clone())
                .await;
            attempt_span.record("elapsed_ms", t0.elapsed().as_millis() as u64);
            match &result {
                Ok(r) => {
                    attempt_span.record("status", r.status.as_u16());
                    if let Some(id) = r.request_id() {
                        attempt_span.record("request_id", id);
                    }
                }
                Err(e) => {
                    if let Some(s) = e.status() {
                        attempt_span.record("status", s.as_u16());
                    }
                    if let Some(id) = e.request_id() {
                        attempt_span.record("request_id", id);
                    }
                }
            }
            attempt_span.in_scope(|| tracing::trace!("attempt finished"));
            let err = match result {
                Ok(resp) => {
                    return Outcome {
                        result: Ok(resp),
                        earlier_ambiguous,
                        started,
                    }
                }
                Err(e) => e,
            };
            // A storage 401 with a bearer token: one forced refresh and one retry.
            if let (Credential::Bearer(cache), Some(token)) = (credential, &prepared.token) {
                if err.status() == Some(StatusCode::UNAUTHORIZED)
                    && err.error_code() == Some("InvalidAuthenticationInfo")
                    && !refreshed_token
                {
                    refreshed_token = true;
                    if let Err(e) = cache.force_refresh(token).await {
                        return Outcome {
                            result: Err(maybe_applied_earlier(e, earlier_ambiguous)),
                            earlier_ambiguous,
                            started,
                        };
                    }
                    tracing::debug!("bearer token rejected; refreshed, retrying once");
                    continue;
                }
            }
            let out_of_time = started.elapsed() >= policy.deadline;
            if !err.is_retryable() || attempt >= policy.max_attempts || out_of_time {
                if err.is_retryable() {
                    tracing::warn!(attempt, error = %err, "giving up after retries");
                }
                let maybe = earlier_ambiguous || is_ambiguous(&err);
                return Outcome {
                    result: Err(err.set_maybe_applied(maybe)),
                    earlier_ambiguous,
                    started,
                };
            }
            earlier_ambiguous |= is_ambiguous(&err);
            let wait = policy
                .backoff(attempt, err.retry_after(), fastrand::f64())
                .min(policy.deadline.saturating_sub(started.elapsed()));
            tracing::debug!(attempt, wait_ms = wait.as_millis() as u64, error = %err, "retrying");
            tokio::time::sleep(wait).await;
        }
    }

    /// Stamps and signs one attempt.
    async fn prepare(
        &self,
        account: &str,
        credential: &Credential,
        req: &Request<Bytes>,
    ) -> Result<Prepared, Error> {
        // room for what this attempt adds (three here, the signature, and
        // `Host` in the pool), so the map is not grown and rehashed
        let mut headers = HeaderMap::with_capacity(req.headers().len() + 5);
        for (name, value) in req.headers() {
            headers.append(name.clone(), value.clone());
        }
        headers.insert(names::X_MS_DATE, current_date_header());
        headers.insert(names::X_MS_VERSION, HeaderValue::from_static(API_VERSION));
        headers.insert(names::X_MS_CLIENT_REQUEST_ID, new_request_id());
        let mut uri = req.uri().clone();
        let mut secrets = Vec::new();
        let mut token = None;
        match credential {
            Credential::SharedKey(key) => {
                let auth = sign::authorization(account, key, req.method(), &uri, &headers);
                if let Some(sig) = auth.to_str().ok().and_then(|s| s.split(':').nth(1)) {
                    secrets.push(sig.to_string());
                }
                headers.insert(http::header::AUTHORIZATION, auth);
            }
            Credential::Sas(sas) => {
                let sep = if uri.query().is_some() { '&' } else { '?' };
                uri = format!("{uri}{sep}{}", sas.query()).parse().map_err(|_| {
                    Error::new(
                        ErrorKind::Credential,
                        "SAS token does not form a valid URL query",
                    )
                })?;
                secrets.push(sas.query().to_string());
            }
            Credential::Bearer(cache) => {
                let t = cache.token().await?;
                let mut v = HeaderValue::from_str(&format!("Bearer {}", t.token.expose_secret()))
                    .map_err(|_| {
                    Error::new(
                        ErrorKind::Credential,
                        "bearer token is not a valid header value",
                    )
                })?;
                v.set_sensitive(true);
                headers.insert(http::header::AUTHORIZATION, v);
                secrets.push(t.token.expose_secret().to_string());
                token = Some(t);
            }
            Credential::Anonymous => {}
        }
        let mut out = Request::new(Full::new(req.body().clone()));
        *out.method_mut() = req.method().clone();
        *out.uri_mut() = uri;
        *out.headers_mut() = headers;
        Ok(Prepared {
            request: out,
            secrets,
            token,
        })
    }

    async fn send_once(
        &self,
        req: Request<Full<Bytes>>,
        secrets: &[String],
    ) -> Result<Response, Error> {
        let _permit = self
            .in_flight
            .acquire()
            .await
            .map_err(|_| Error::new(ErrorKind::Connection, "client is shut down"))?;
        self.counters.requests_sent.fetch_add(1, Ordering::Relaxed);
        let is_head = req.method() == http::Method::HEAD;
        let (key, req) = pool::origin_form(req)?;
        let answer = self
            .pool
            .send(key, req, self.options.attempt_timeout)
            .await?;
        let resp = Response {
            status: answer.parts.status,
            headers: answer.parts.headers,
            body: answer.body,
        };
        if resp.status.is_success() {
            return Ok(resp);
        }
        Err(service_error(&resp, is_head, secrets))
    }
}

struct Prepared {
    request: Request<Full<Bytes>>,
    secrets: Vec<String>,
    token: Option<crate::credential::AccessToken>,
}

/// `x-ms-date` for now, formatted once per second per thread.
fn current_date_header() -> HeaderValue {
    thread_local! {
        static CACHE: std::cell::RefCell<(i64, HeaderValue)> =
            const { std::cell::RefCell::new((i64::MIN, HeaderValue::from_static(""))) };
    }
    let now = time::OffsetDateTime::now_utc();
    let second = now.unix_timestamp();
    CACHE.with(|c| {
        let mut c = c.borrow_mut();
        if c.0 != second {
            let text = format_http_date(now);
            // an RFC 1123 date is always a valid header value
            c.1 = HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""));
            c.0 = second;
        }
        c.1.clone()
    })
}

/// A fresh random `x-ms-client-request-id` (a version-4 UUID from a fast
/// thread-local generator: it correlates logs, it is not a secret).
fn new_request_id() -> HeaderValue {
    let mut bytes = [0u8; 16];
    fastrand::fill(&mut bytes);
    let id = uuid::Builder::from_random_bytes(bytes).into_uuid();
    let mut buf = uuid::Uuid::encode_buffer();
    let text = id.hyphenated().encode_lower(&mut buf);
    HeaderValue::from_str(text)
        .unwrap_or_else(|_| HeaderValue::from_static("00000000-0000-4000-8000-000000000000"))
}

/// An error that ended the loop without an attempt of its own (the request
/// could not be prepared, a token could not be refreshed): it still says the
/// operation may have been applied when an earlier attempt was ambiguous.
fn maybe_applied_earlier(e: Error, earlier_ambiguous: bool) -> Error {
    if earlier_ambiguous {
        e.set_maybe_applied(true)
    } else {
        e
    }
}

/// Whether a failed attempt may nonetheless have been applied by the service.
fn is_ambiguous(e: &Error) -> bool {
    match e.kind() {
        ErrorKind::Connection | ErrorKind::Timeout => true,
        ErrorKind::Service => matches!(e.status().map(|s| s.as_u16()), Some(500 | 502 | 504)),
        _ => false,
    }
}

/// Builds the typed error of a non-2xx answer.
fn service_error(resp: &Response, is_head: bool, secrets: &[String]) -> Error {
    let mut code = header_str(&resp.headers, "x-ms-error-code").map(str::to_string);
    let mut message = None;
    if !is_head && !resp.body.is_empty() {
        let (c, m) = if resp.body.first() == Some(&b'{') {
            json_error(&resp.body)
        } else {
            crate::ops::xml_error(&resp.body)
        };
        code = code.or(c);
        message = m;
    }
    let secrets: Vec<&str> = secrets.iter().map(String::as_str).collect();
    Error::service(
        resp.status,
        code,
        resp.request_id().map(str::to_string),
        // Azure appends "\nRequestId:...\nTime:..." (we report the request id
        // separately): keep the first line, so errors stay one line
        message
            .map(|m| redact_service_message(m.lines().next().unwrap_or_default().trim(), &secrets)),
        server_retry_after(&resp.headers),
    )
}

/// `{"error":{"code":"...","message":"..."}}` (DFS error bodies).
fn json_error(body: &[u8]) -> (Option<String>, Option<String>) {
    #[derive(serde::Deserialize)]
    struct Outer {
        error: Inner,
    }
    #[derive(serde::Deserialize)]
    struct Inner {
        code: Option<String>,
        message: Option<String>,
    }
    match serde_json::from_slice::<Outer>(body) {
        Ok(o) => (o.error.code, o.error.message),
        Err(_) => (None, None),
    }
}

/// Whether a rustls error (certificate, handshake) is somewhere in the chain.
pub(super) fn is_tls_failure(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cur {
        if c.is::<rustls::Error>() {
            return true;
        }
        // a custom io::Error's `source()` skips its payload: descend into it
        if let Some(io) = c.downcast_ref::<io::Error>() {
            cur = io
                .get_ref()
                .map(|inner| inner as &(dyn std::error::Error + 'static));
            continue;
        }
        cur = c.source();
    }
    false
}

/// The rustls client configuration: ring provider, webpki roots plus `extra_root_pem`.
pub(crate) fn tls_config(extra_root_pem: Option<&[u8]>) -> Result<rustls::ClientConfig, Error> {
    use rustls_pki_types::pem::PemObject as _;
    use rustls_pki_types::CertificateDer;
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(pem) = extra_root_pem {
        let mut added = 0;
        for cert in CertificateDer::pem_slice_iter(pem) {
            let cert = cert.map_err(|e| {
                Error::config(format!("extra root certificate is not valid PEM: {e}"))
            })?;
            roots
                .add(cert)
                .map_err(|e| Error::config(format!("extra root certificate was rejected: {e}")))?;
            added += 1;
        }
        if added == 0 {
            return Err(Error::config(
                "extra root certificate PEM holds no CERTIFICATE block",
            ));
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::config(format!("TLS configuration failed: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_and_xml_error_bodies() {
        let (c, m) = json_error(br#"{"error":{"code":"InvalidFlushPosition","message":"The uploaded data is not contiguous"}}"#);
        assert_eq!(c.as_deref(), Some("InvalidFlushPosition"));
        assert!(m.expect("m").contains("contiguous"));
        assert_eq!(json_error(b"{not json"), (None, None));
    }

    #[test]
    fn request_ids_are_fresh_v4_uuids_and_dates_rfc1123() {
        let a = new_request_id();
        let b = new_request_id();
        assert_ne!(a, b);
        let id = uuid::Uuid::parse_str(a.to_str().expect("ascii")).expect("uuid");
        assert_eq!(id.get_version_num(), 4);
        let d = current_date_header();
        assert!(
            crate::ops::parse_http_date(d.to_str().expect("ascii")).is_some(),
            "{d:?}"
        );
    }

    #[test]
    fn ambiguity() {
        assert!(is_ambiguous(&Error::new(ErrorKind::Connection, "reset")));
        assert!(is_ambiguous(&Error::new(ErrorKind::Timeout, "t")));
        assert!(!is_ambiguous(&Error::new(ErrorKind::Connect, "refused")));
        let busy = Error::service(
            StatusCode::SERVICE_UNAVAILABLE,
            Some("ServerBusy".into()),
            None,
            None,
            None,
        );
        assert!(!is_ambiguous(&busy));
        let internal = Error::service(StatusCode::INTERNAL_SERVER_ERROR, None, None, None, None);
        assert!(is_ambiguous(&internal));
    }

    #[test]
    fn bad_extra_root_is_config_error() {
        let e = tls_config(Some(b"not a pem")).expect_err("no cert");
        assert_eq!(e.kind(), ErrorKind::Config);
    }
}
