//! A small HTTP(S) client for token requests: hyper-util over rustls (the same
//! TLS configuration as the storage transport), a connect timeout, an overall
//! timeout per attempt, a cap on the answer's size, and retries of transient
//! failures with the crate's [`RetryPolicy`]. No connection pool: a token is
//! fetched about once an hour.

use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::rt::TokioExecutor;

use crate::error::Error;
use crate::retry::{server_retry_after, RetryPolicy};

/// Largest token answer read (a token is a few KiB).
const MAX_ANSWER: usize = 1 << 20;

/// How token requests are sent.
#[derive(Clone)]
pub struct TokenHttpOptions {
    /// Time to open a TCP connection. Managed identity uses 1 s, so that a
    /// machine without IMDS moves on quickly.
    pub connect_timeout: Duration,
    /// Time for one attempt: sending the request and reading the whole answer.
    pub request_timeout: Duration,
    /// Retries of connection failures, timeouts, `429` and `5xx`.
    pub retry: RetryPolicy,
    /// An extra root certificate (PEM) to trust besides the webpki roots.
    pub extra_root_pem: Option<Vec<u8>>,
}

impl Default for TokenHttpOptions {
    fn default() -> Self {
        TokenHttpOptions {
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(20),
            retry: RetryPolicy {
                max_attempts: 3,
                initial_backoff: Duration::from_millis(500),
                max_backoff: Duration::from_secs(4),
                max_retry_after: Duration::from_secs(10),
                deadline: Duration::from_secs(60),
            },
            extra_root_pem: None,
        }
    }
}

impl TokenHttpOptions {
    /// The defaults for managed identity: as [`Default`], with a 1 s connect timeout.
    pub fn managed_identity() -> Self {
        TokenHttpOptions {
            connect_timeout: Duration::from_secs(1),
            ..Default::default()
        }
    }
}

impl fmt::Debug for TokenHttpOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenHttpOptions")
            .field("connect_timeout", &self.connect_timeout)
            .field("request_timeout", &self.request_timeout)
            .field("retry", &self.retry)
            .field(
                "extra_root_pem",
                &self
                    .extra_root_pem
                    .as_ref()
                    .map(|p| format!("{} bytes", p.len())),
            )
            .finish()
    }
}

/// A whole answer.
#[derive(Debug)]
pub(crate) struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// Why no answer came back.
#[derive(Debug)]
pub(crate) enum SendError {
    /// Could not open a connection (refused, unreachable, connect timeout, TLS).
    Connect(String),
    /// No complete answer within the attempt timeout.
    Timeout(Duration),
    /// The connection failed during the exchange.
    Connection(String),
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::Connect(why) => write!(f, "could not connect: {why}"),
            SendError::Timeout(t) => write!(f, "no complete answer within {} ms", t.as_millis()),
            SendError::Connection(why) => write!(f, "the connection failed: {why}"),
        }
    }
}

type Https = hyper_rustls::HttpsConnector<HttpConnector>;

pub(crate) struct TokenHttp {
    client: HyperClient<Https, Full<Bytes>>,
    options: TokenHttpOptions,
}

impl TokenHttp {
    pub(crate) fn new(options: &TokenHttpOptions) -> Result<Self, Error> {
        let tls = crate::transport::tls_config(options.extra_root_pem.as_deref())?;
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(options.connect_timeout));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = HyperClient::builder(TokioExecutor::new())
            .pool_max_idle_per_host(0)
            .build(https);
        Ok(TokenHttp {
            client,
            options: options.clone(),
        })
    }

    pub(crate) fn options(&self) -> &TokenHttpOptions {
        &self.options
    }

    /// One attempt.
    pub(crate) async fn send_once(&self, req: &Request<Bytes>) -> Result<Answer, SendError> {
        let mut out = Request::new(Full::new(req.body().clone()));
        *out.method_mut() = req.method().clone();
        *out.uri_mut() = req.uri().clone();
        *out.headers_mut() = req.headers().clone();
        let timeout = self.options.request_timeout;
        let exchange = async {
            let resp = self.client.request(out).await.map_err(|e| {
                if e.is_connect() {
                    SendError::Connect(error_chain(&e))
                } else {
                    SendError::Connection(error_chain(&e))
                }
            })?;
            let (parts, body) = resp.into_parts();
            let body = Limited::new(body, MAX_ANSWER)
                .collect()
                .await
                .map_err(|e| SendError::Connection(format!("reading the answer: {e}")))?
                .to_bytes();
            Ok(Answer {
                status: parts.status,
                headers: parts.headers,
                body,
            })
        };
        tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| SendError::Timeout(timeout))?
    }

    /// Up to `max_attempts` attempts (at most the policy's): retries failures to
    /// get an answer and answers whose status `retry_status` accepts. Returns the
    /// last answer or failure.
    pub(crate) async fn send(
        &self,
        req: &Request<Bytes>,
        retry_status: fn(StatusCode) -> bool,
        max_attempts: u32,
    ) -> Result<Answer, SendError> {
        let policy = &self.options.retry;
        let max_attempts = max_attempts.min(policy.max_attempts).max(1);
        let started = std::time::Instant::now();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let result = self.send_once(req).await;
            let server_ask = match &result {
                Ok(a) if retry_status(a.status) => server_retry_after(&a.headers),
                Ok(_) => return result,
                Err(_) => None,
            };
            if attempt >= max_attempts || started.elapsed() >= policy.deadline {
                return result;
            }
            let wait = policy.backoff(attempt, server_ask, fastrand::f64());
            match &result {
                Ok(a) => tracing::debug!(
                    attempt,
                    status = a.status.as_u16(),
                    wait_ms = wait.as_millis() as u64,
                    "token request: retrying"
                ),
                Err(e) => {
                    tracing::debug!(attempt, error = %e, wait_ms = wait.as_millis() as u64, "token request: retrying")
                }
            }
            tokio::time::sleep(wait).await;
        }
    }
}

/// `e: cause: cause`, for errors whose `Display` says little on its own.
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut next = e.source();
    while let Some(cause) = next {
        s.push_str(": ");
        s.push_str(&cause.to_string());
        next = cause.source();
    }
    s
}

/// Statuses worth another attempt at a token endpoint: 408, 429, 5xx.
pub(crate) fn transient_status(s: StatusCode) -> bool {
    s == StatusCode::REQUEST_TIMEOUT || s == StatusCode::TOO_MANY_REQUESTS || s.is_server_error()
}

/// The `http::Uri` of a parsed URL.
pub(crate) fn to_uri(url: &url::Url) -> Result<http::Uri, crate::error::Error> {
    url.as_str().parse().map_err(|e| {
        crate::error::Error::config(format!("`{url}` is not a usable request URI: {e}"))
    })
}
