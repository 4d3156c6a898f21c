//! A fault-injecting HTTP/1.1 reverse proxy on loopback, for tests.
//!
//! [`FaultProxy`] sits between a client and an upstream storage endpoint (Azurite or the DFS
//! test server, always on 127.0.0.1) and injects the faults a real storage service shows:
//! bursts of `503 ServerBusy`, `429` with `Retry-After`, connections reset mid-request, slow
//! answers, and requests that reach the upstream but whose response never comes back (the
//! ambiguous case that makes retries dangerous). Tests use it to prove that no record is lost
//! and none is duplicated.
//!
//! What is forwarded is what the client sent: method, path and query byte for byte, every
//! header (including `Host` and `Authorization`, so Shared Key signatures still verify) except
//! the hop-by-hop ones, and the body. The upstream's status, headers and body come back
//! unchanged. Bodies are buffered, which suits requests of up to tens of MiB.
//!
//! A [`Plan`] decides what happens to each request. It is deterministic: rules count the
//! requests they match, and probabilistic rules draw from a generator seeded by the plan, so
//! the same sequence of requests meets the same sequence of faults.
//!
//! ```no_run
//! # async fn demo() {
//! use adls_tests::fault_proxy::{Action, FaultProxy, Plan, Rule};
//! let proxy = FaultProxy::start("http://127.0.0.1:10000").await;
//! // The first three Put Block requests get 503 ServerBusy, everything else passes.
//! proxy.set_plan(Plan::new().rule(
//!     Rule::new(Action::server_busy()).query_contains("comp=block").first_n(3),
//! ));
//! let endpoint = format!("{}/devstoreaccount1", proxy.url());
//! # let _ = endpoint;
//! # }
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::uri::Authority;
use http::{
    header, HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode, Uri,
};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

/// Longest the proxy waits for the upstream's full response before answering `502`.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(60);
/// Idle upstream connections are dropped after this, below Azurite's 5 s keep-alive, so the
/// proxy does not inject faults of its own by reusing a connection the upstream just closed.
const UPSTREAM_POOL_IDLE: Duration = Duration::from_secs(2);

/// What the proxy does with one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Answer without forwarding: the given status with an Azure-style error body
    /// (see [`ErrorFormat`]) and the headers `x-ms-error-code`, `x-ms-request-id` and
    /// `x-ms-version` (echoed from the request, when it has one). The request body is read
    /// first, so the connection stays usable.
    Status {
        /// HTTP status, e.g. `503`.
        status: u16,
        /// Storage error code, sent as `x-ms-error-code` and in the body, e.g. `ServerBusy`.
        code: String,
        /// Sent as `Retry-After` in whole seconds, rounded up.
        retry_after: Option<Duration>,
        /// Sent as both `retry-after-ms` and `x-ms-retry-after-ms`.
        retry_after_ms: Option<u64>,
    },
    /// Read the request head and at most the first chunk of its body, then reset the TCP
    /// connection (`SO_LINGER` 0, so the client sees `RST`). Nothing reaches the upstream.
    ResetMidRequest,
    /// Forward the whole request, wait for the upstream's whole response, then close the
    /// client connection without sending any of it. The upstream *did* act on the request.
    DropResponse,
    /// Forward after this delay. The request reaches the upstream after the delay even when
    /// the client has given up waiting (as a real service finishes work whose caller timed out).
    Delay(Duration),
    /// Forward unchanged.
    Pass,
}

impl Action {
    /// `503 ServerBusy`, the storage service's "slow down".
    pub fn server_busy() -> Action {
        Action::status(503, "ServerBusy")
    }

    /// `429 TooManyRequests` with `Retry-After` (whole seconds, rounded up).
    pub fn too_many_requests(retry_after: Duration) -> Action {
        Action::Status {
            status: 429,
            code: "TooManyRequests".to_owned(),
            retry_after: Some(retry_after),
            retry_after_ms: None,
        }
    }

    /// Any status and error code, without retry hints.
    pub fn status(status: u16, code: &str) -> Action {
        Action::Status {
            status,
            code: code.to_owned(),
            retry_after: None,
            retry_after_ms: None,
        }
    }

    fn label(&self) -> &'static str {
        match self {
            Action::Status { .. } => "status",
            Action::ResetMidRequest => "reset",
            Action::DropResponse => "drop-response",
            Action::Delay(_) => "delay",
            Action::Pass => "pass",
        }
    }
}

/// Which requests a [`Rule`] fires on, counted among the requests its matchers accept
/// (numbered from 0, in the order the proxy receives them).
#[derive(Clone, Debug, PartialEq)]
pub enum When {
    /// Every matching request.
    Always,
    /// Matching requests `0..n`: a burst at the start.
    FirstN(u64),
    /// Matching requests `start..end`: a burst later on.
    Range {
        /// First request number the rule fires on.
        start: u64,
        /// First request number after the burst.
        end: u64,
    },
    /// Every n-th matching request: numbers `n-1`, `2n-1`, … (never when `n` is 0).
    EveryNth(u64),
    /// Each matching request with this probability, drawn from the plan's seeded generator.
    Probability(f64),
}

/// One line of a [`Plan`]: matchers, a schedule and the action taken when both agree.
#[derive(Clone, Debug, PartialEq)]
pub struct Rule {
    method: Option<Method>,
    path_contains: Option<String>,
    query_contains: Option<String>,
    when: When,
    action: Action,
}

impl Rule {
    /// A rule that takes `action` on every request; narrow it with the builder methods.
    pub fn new(action: Action) -> Rule {
        Rule {
            method: None,
            path_contains: None,
            query_contains: None,
            when: When::Always,
            action,
        }
    }

    /// Only requests with this method.
    pub fn method(mut self, method: Method) -> Rule {
        self.method = Some(method);
        self
    }

    /// Only requests whose path (as sent, percent-encoded) contains `needle`.
    pub fn path_contains(mut self, needle: &str) -> Rule {
        self.path_contains = Some(needle.to_owned());
        self
    }

    /// Only requests whose query string (as sent) contains `needle`, e.g. `comp=block`.
    pub fn query_contains(mut self, needle: &str) -> Rule {
        self.query_contains = Some(needle.to_owned());
        self
    }

    /// Fire on the matching requests this schedule selects.
    pub fn when(mut self, when: When) -> Rule {
        self.when = when;
        self
    }

    /// Shorthand for [`When::FirstN`].
    pub fn first_n(self, n: u64) -> Rule {
        self.when(When::FirstN(n))
    }

    /// Shorthand for [`When::Range`].
    pub fn between(self, start: u64, end: u64) -> Rule {
        self.when(When::Range { start, end })
    }

    /// Shorthand for [`When::EveryNth`].
    pub fn every_nth(self, n: u64) -> Rule {
        self.when(When::EveryNth(n))
    }

    /// Shorthand for [`When::Probability`].
    pub fn probability(self, p: f64) -> Rule {
        self.when(When::Probability(p))
    }

    fn matches(&self, method: &Method, uri: &Uri) -> bool {
        self.method.as_ref().is_none_or(|m| m == method)
            && self
                .path_contains
                .as_deref()
                .is_none_or(|n| uri.path().contains(n))
            && self
                .query_contains
                .as_deref()
                .is_none_or(|n| uri.query().unwrap_or("").contains(n))
    }
}

/// The fault plan: rules tried in order; the first that fires decides, and a request no rule
/// fires on passes.
///
/// Every rule whose matchers accept a request counts it (and a probabilistic rule draws for
/// it), whether or not an earlier rule fired, so each rule's schedule depends only on the
/// requests it matches. Rule `i` draws from its own generator seeded with `seed` and `i`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Plan {
    rules: Vec<Rule>,
    seed: u64,
}

impl Plan {
    /// An empty plan (everything passes), seed 0.
    pub fn new() -> Plan {
        Plan::default()
    }

    /// Everything passes.
    pub fn pass() -> Plan {
        Plan::default()
    }

    /// Appends a rule (tried after the ones already there).
    pub fn rule(mut self, rule: Rule) -> Plan {
        self.rules.push(rule);
        self
    }

    /// Seeds the generators of the [`When::Probability`] rules.
    pub fn seed(mut self, seed: u64) -> Plan {
        self.seed = seed;
        self
    }

    /// For soak tests: each request independently meets `503 ServerBusy` with probability
    /// `p_503`, `429 TooManyRequests` (with `retry-after-ms: 20`, so soaks stay fast) with
    /// `p_429`, [`Action::ResetMidRequest`] with `p_reset` and [`Action::DropResponse`] with
    /// `p_drop`, and passes otherwise. The probabilities should add up to at most 1.
    pub fn chaos(seed: u64, p_503: f64, p_429: f64, p_reset: f64, p_drop: f64) -> Plan {
        let throttled = Action::Status {
            status: 429,
            code: "TooManyRequests".to_owned(),
            retry_after: None,
            retry_after_ms: Some(20),
        };
        // Rules draw independently and the first that fires wins, so rule k fires with
        // p_k / (1 - p_1 - … - p_{k-1}) to be the winner with probability p_k.
        let mut plan = Plan::new().seed(seed);
        let mut left = 1.0_f64;
        for (p, action) in [
            (p_503, Action::server_busy()),
            (p_429, throttled),
            (p_reset, Action::ResetMidRequest),
            (p_drop, Action::DropResponse),
        ] {
            let conditional = if left > f64::EPSILON {
                (p / left).clamp(0.0, 1.0)
            } else {
                0.0
            };
            plan = plan.rule(Rule::new(action).probability(conditional));
            left -= p;
        }
        plan
    }
}

/// Body format of injected error responses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ErrorFormat {
    /// The Blob endpoint's `<Error><Code>…</Code><Message>…</Message></Error>`.
    #[default]
    Xml,
    /// The DFS endpoint's `{"error":{"code":"…","message":"…"}}`.
    Json,
}

/// What the proxy has seen and done since it started (not reset by [`FaultProxy::set_plan`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Client connections accepted.
    pub connections: u64,
    /// Requests whose head was received.
    pub requests: u64,
    /// Requests the upstream answered (including those whose response was then dropped).
    pub forwarded: u64,
    /// Requests answered with an injected status ([`Action::Status`]).
    pub statuses: u64,
    /// Injected statuses by status code.
    pub statuses_by_code: BTreeMap<u16, u64>,
    /// Connections reset mid-request ([`Action::ResetMidRequest`]).
    pub resets: u64,
    /// Responses dropped after the upstream acted ([`Action::DropResponse`]).
    pub dropped_responses: u64,
    /// Requests delayed ([`Action::Delay`]).
    pub delayed: u64,
    /// Forwards that failed (upstream unreachable or too slow), answered `502`.
    pub upstream_errors: u64,
}

impl Stats {
    /// Faults injected that the client sees as a failure: statuses, resets, dropped responses.
    pub fn failures_injected(&self) -> u64 {
        self.statuses + self.resets + self.dropped_responses
    }
}

/// A running proxy on `127.0.0.1:<ephemeral port>`; it stops, and resets its open
/// connections, when dropped.
pub struct FaultProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept_task: JoinHandle<()>,
}

impl fmt::Debug for FaultProxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FaultProxy")
            .field("addr", &self.addr)
            .field("upstream", &self.shared.upstream)
            .finish_non_exhaustive()
    }
}

impl FaultProxy {
    /// Starts a proxy in front of `upstream`, an `http://` URL on a loopback address such as
    /// `http://127.0.0.1:10000`. Any path in `upstream` is ignored: requests keep the path and
    /// query the client sent. The plan starts as [`Plan::pass`].
    ///
    /// # Panics
    /// If `upstream` is not an `http://` URL with a loopback host, or no port can be bound.
    pub async fn start(upstream: &str) -> FaultProxy {
        let uri: Uri = upstream
            .parse()
            .unwrap_or_else(|e| panic!("upstream {upstream:?} is not a URL: {e}"));
        assert_eq!(
            uri.scheme_str(),
            Some("http"),
            "upstream {upstream:?} must be an http:// URL"
        );
        let authority = uri
            .authority()
            .cloned()
            .unwrap_or_else(|| panic!("upstream {upstream:?} has no host"));
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']');
        let loopback =
            host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
        assert!(
            loopback,
            "upstream {upstream:?} must be on loopback: tests only talk to 127.0.0.1"
        );

        let listener = TcpListener::bind(("127.0.0.1", 0))
            .await
            .expect("bind the fault proxy on 127.0.0.1:0");
        let addr = listener
            .local_addr()
            .expect("local address of the fault proxy's listener");

        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(Duration::from_secs(5)));
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(UPSTREAM_POOL_IDLE)
            .pool_timer(TokioTimer::new())
            .build(connector);

        let shared = Arc::new(Shared {
            upstream: authority,
            client,
            state: Mutex::new(State {
                plan: ActivePlan::new(Plan::pass()),
                stats: Stats::default(),
            }),
            error_format: Mutex::new(ErrorFormat::default()),
        });
        let accept_task = tokio::spawn(accept_loop(listener, Arc::clone(&shared)));
        FaultProxy {
            addr,
            shared,
            accept_task,
        }
    }

    /// The proxy's base URL, `http://127.0.0.1:PORT`; append `/devstoreaccount1` and so on.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The proxy's socket address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Replaces the plan; requests whose head arrives from now on follow it. Rule counters
    /// and generators start afresh.
    pub fn set_plan(&self, plan: Plan) {
        self.shared.lock().plan = ActivePlan::new(plan);
    }

    /// Chooses the body format of injected errors (XML, the default, for the Blob endpoint;
    /// JSON for DFS).
    pub fn set_error_format(&self, format: ErrorFormat) {
        *self
            .shared
            .error_format
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = format;
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> Stats {
        self.shared.lock().stats.clone()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        // Dropping the accept loop drops the listener and its JoinSet, which aborts every
        // connection task. Forwards already under way finish on their own.
        self.accept_task.abort();
    }
}

struct Shared {
    upstream: Authority,
    client: Client<HttpConnector, Full<Bytes>>,
    state: Mutex<State>,
    error_format: Mutex<ErrorFormat>,
}

struct State {
    plan: ActivePlan,
    stats: Stats,
}

struct ActivePlan {
    rules: Vec<ActiveRule>,
}

struct ActiveRule {
    rule: Rule,
    matched: u64,
    rng: fastrand::Rng,
}

impl ActivePlan {
    fn new(plan: Plan) -> ActivePlan {
        let rules = plan
            .rules
            .into_iter()
            .enumerate()
            .map(|(i, rule)| ActiveRule {
                rule,
                matched: 0,
                rng: fastrand::Rng::with_seed(
                    plan.seed ^ (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
                ),
            })
            .collect();
        ActivePlan { rules }
    }

    fn decide(&mut self, method: &Method, uri: &Uri) -> Action {
        let mut chosen = None;
        for active in &mut self.rules {
            if !active.rule.matches(method, uri) {
                continue;
            }
            let n = active.matched;
            active.matched += 1;
            let fires = match active.rule.when {
                When::Always => true,
                When::FirstN(k) => n < k,
                When::Range { start, end } => (start..end).contains(&n),
                When::EveryNth(k) => k > 0 && (n + 1) % k == 0,
                When::Probability(p) => active.rng.f64() < p,
            };
            if fires && chosen.is_none() {
                chosen = Some(active.rule.action.clone());
            }
        }
        chosen.unwrap_or(Action::Pass)
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn count(&self, f: impl FnOnce(&mut Stats)) {
        f(&mut self.lock().stats);
    }

    /// Counts the request, picks its action and counts the fault about to be injected.
    fn decide(&self, method: &Method, uri: &Uri) -> Action {
        let mut state = self.lock();
        state.stats.requests += 1;
        let action = state.plan.decide(method, uri);
        let stats = &mut state.stats;
        match &action {
            Action::Status { status, .. } => {
                stats.statuses += 1;
                *stats.statuses_by_code.entry(*status).or_default() += 1;
            }
            Action::ResetMidRequest => stats.resets += 1,
            Action::DropResponse => stats.dropped_responses += 1,
            Action::Delay(_) => stats.delayed += 1,
            Action::Pass => {}
        }
        action
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    shared.count(|s| s.connections += 1);
                    connections.spawn(serve_connection(stream, Arc::clone(&shared)));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "fault proxy: accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

async fn serve_connection(stream: TcpStream, shared: Arc<Shared>) {
    // Best effort: Nagle only slows small responses down on loopback.
    let _ = stream.set_nodelay(true);
    let reset = Arc::new(AtomicBool::new(false));
    let io = TokioIo::new(ClientSocket {
        inner: stream,
        reset: Arc::clone(&reset),
    });
    let service = service_fn(move |req| handle(Arc::clone(&shared), Arc::clone(&reset), req));
    let served = http1::Builder::new()
        .timer(TokioTimer::new())
        .keep_alive(true)
        .serve_connection(io, service)
        .await;
    if let Err(e) = served {
        tracing::debug!(error = %e, "fault proxy: client connection ended");
    }
}

/// The service's error: ending the connection without a response is the point.
#[derive(Debug)]
struct Abort(&'static str);

impl fmt::Display for Abort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "fault proxy closed the connection: {}", self.0)
    }
}

impl std::error::Error for Abort {}

async fn handle(
    shared: Arc<Shared>,
    reset: Arc<AtomicBool>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Abort> {
    let action = shared.decide(req.method(), req.uri());
    if action != Action::Pass {
        tracing::debug!(method = %req.method(), uri = %req.uri(), action = action.label(), "fault proxy: injecting");
    }
    let (parts, body) = req.into_parts();

    if action == Action::ResetMidRequest {
        let mut body = body;
        if !hyper::body::Body::is_end_stream(&body) {
            // Take at most one chunk, so the client is typically still sending when reset.
            let _ = body.frame().await;
        }
        reset.store(true, Ordering::SeqCst);
        return Err(Abort("reset mid-request"));
    }

    let body = body
        .collect()
        .await
        .map_err(|_| Abort("client went away while sending the body"))?
        .to_bytes();

    let delay = match action {
        Action::Status {
            status,
            code,
            retry_after,
            retry_after_ms,
        } => {
            let format = *shared
                .error_format
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            return Ok(error_response(
                status,
                &code,
                retry_after,
                retry_after_ms,
                &parts.headers,
                format,
            ));
        }
        Action::Delay(delay) => delay,
        _ => Duration::ZERO,
    };

    let upstream_req = upstream_request(&shared.upstream, parts, body)?;
    // The forward runs in its own task so that, once decided, it completes even when the
    // client disconnects meanwhile: the upstream's view stays deterministic.
    let forwarding = Arc::clone(&shared);
    let outcome = tokio::spawn(async move {
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let result = forward(&forwarding.client, upstream_req).await;
        forwarding.count(|s| match result {
            Ok(_) => s.forwarded += 1,
            Err(_) => s.upstream_errors += 1,
        });
        result
    })
    .await
    .map_err(|_| Abort("forwarding task failed"))?;

    if action == Action::DropResponse {
        return Err(Abort("response dropped"));
    }
    Ok(outcome.unwrap_or_else(|message| {
        tracing::warn!(%message, "fault proxy: upstream failed");
        let mut resp = Response::new(Full::new(Bytes::from(message)));
        *resp.status_mut() = StatusCode::BAD_GATEWAY;
        resp
    }))
}

/// Hop-by-hop headers, which belong to one connection and are not forwarded. `Expect` is
/// dropped too: the proxy has already read the body.
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authorization",
    "te",
    "trailer",
    "upgrade",
    "expect",
];

fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
}

fn upstream_request(
    upstream: &Authority,
    parts: http::request::Parts,
    body: Bytes,
) -> Result<Request<Full<Bytes>>, Abort> {
    let path_and_query = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
    let uri = Uri::builder()
        .scheme("http")
        .authority(upstream.clone())
        .path_and_query(path_and_query)
        .build()
        .map_err(|_| Abort("request target cannot be forwarded"))?;
    let mut req = Request::new(Full::new(body));
    *req.method_mut() = parts.method;
    *req.uri_mut() = uri;
    *req.headers_mut() = parts.headers;
    // `Host` stays the client's: the client leaves a header it finds alone.
    strip_hop_by_hop(req.headers_mut());
    Ok(req)
}

/// Sends the request and reads the whole response, or says why it could not.
async fn forward(
    client: &Client<HttpConnector, Full<Bytes>>,
    req: Request<Full<Bytes>>,
) -> Result<Response<Full<Bytes>>, String> {
    let exchange = async {
        let resp = client
            .request(req)
            .await
            .map_err(|e| format!("fault proxy: upstream request failed: {e:?}"))?;
        let (mut parts, body) = resp.into_parts();
        let body = body
            .collect()
            .await
            .map_err(|e| format!("fault proxy: upstream body failed: {e}"))?
            .to_bytes();
        strip_hop_by_hop(&mut parts.headers);
        Ok(Response::from_parts(parts, Full::new(body)))
    };
    tokio::time::timeout(UPSTREAM_TIMEOUT, exchange)
        .await
        .unwrap_or_else(|_| {
            Err(format!(
                "fault proxy: upstream gave no full response within {UPSTREAM_TIMEOUT:?}"
            ))
        })
}

fn error_response(
    status: u16,
    code: &str,
    retry_after: Option<Duration>,
    retry_after_ms: Option<u64>,
    request_headers: &HeaderMap,
    format: ErrorFormat,
) -> Response<Full<Bytes>> {
    let request_id = uuid::Uuid::new_v4().to_string();
    let now = time::OffsetDateTime::now_utc()
        .format(time::macros::format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:7]Z"
        ))
        .unwrap_or_default();
    let text = match code {
        "ServerBusy" => "The server is busy.",
        "TooManyRequests" => "Too many requests.",
        _ => "Fault injected by the test proxy.",
    };
    let message = format!("{text}\nRequestId:{request_id}\nTime:{now}");
    let (content_type, body) = match format {
        ErrorFormat::Xml => (
            "application/xml",
            format!(
                "<?xml version=\"1.0\" encoding=\"utf-8\"?><Error><Code>{}</Code><Message>{}</Message></Error>",
                xml_escape(code),
                xml_escape(&message)
            ),
        ),
        ErrorFormat::Json => (
            "application/json;charset=utf-8",
            serde_json::json!({ "error": { "code": code, "message": message } }).to_string(),
        ),
    };

    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = resp.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(value) = HeaderValue::from_str(code) {
        headers.insert("x-ms-error-code", value);
    }
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        headers.insert("x-ms-request-id", value);
    }
    if let Some(version) = request_headers.get("x-ms-version") {
        headers.insert("x-ms-version", version.clone());
    }
    if let Some(after) = retry_after {
        let secs = after.as_secs() + u64::from(after.subsec_nanos() > 0);
        headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    if let Some(ms) = retry_after_ms {
        headers.insert("retry-after-ms", HeaderValue::from(ms));
        headers.insert("x-ms-retry-after-ms", HeaderValue::from(ms));
    }
    resp
}

fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// The client's socket; when `reset` is set before it is dropped, it closes with `RST`.
struct ClientSocket {
    inner: TcpStream,
    reset: Arc<AtomicBool>,
}

impl Drop for ClientSocket {
    fn drop(&mut self) {
        if self.reset.load(Ordering::SeqCst) {
            // Best effort: without it the close is a plain FIN, still an error for the client.
            let _ = self.inner.set_zero_linger();
        }
    }
}

impl AsyncRead for ClientSocket {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for ClientSocket {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// What the test upstream received.
    #[derive(Clone, Debug)]
    struct Seen {
        method: Method,
        target: String,
        headers: HeaderMap,
        body: Bytes,
    }

    /// A tiny upstream on 127.0.0.1 that records every request and answers `201` with an echo.
    struct Upstream {
        addr: SocketAddr,
        seen: Arc<Mutex<Vec<Seen>>>,
        task: JoinHandle<()>,
    }

    impl Drop for Upstream {
        fn drop(&mut self) {
            self.task.abort();
        }
    }

    impl Upstream {
        async fn start() -> Upstream {
            let listener = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
            let addr = listener.local_addr().unwrap();
            let seen = Arc::new(Mutex::new(Vec::new()));
            let recorder = Arc::clone(&seen);
            let task = tokio::spawn(async move {
                let mut connections = JoinSet::new();
                loop {
                    let (stream, _) = listener.accept().await.unwrap();
                    let recorder = Arc::clone(&recorder);
                    let service = service_fn(move |req: Request<Incoming>| {
                        let recorder = Arc::clone(&recorder);
                        async move {
                            Ok::<_, std::convert::Infallible>(
                                Upstream::answer(&recorder, req).await,
                            )
                        }
                    });
                    connections.spawn(async move {
                        let _ = http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    });
                }
            });
            Upstream { addr, seen, task }
        }

        async fn answer(
            recorder: &Mutex<Vec<Seen>>,
            req: Request<Incoming>,
        ) -> Response<Full<Bytes>> {
            let (parts, body) = req.into_parts();
            let body = body.collect().await.unwrap().to_bytes();
            let n = {
                let mut seen = recorder.lock().unwrap();
                seen.push(Seen {
                    method: parts.method.clone(),
                    target: parts.uri.path_and_query().unwrap().as_str().to_owned(),
                    headers: parts.headers,
                    body: body.clone(),
                });
                seen.len()
            };
            let mut echo = b"echo:".to_vec();
            echo.extend_from_slice(&body);
            Response::builder()
                .status(StatusCode::CREATED)
                .header("etag", "\"0x8DC0FFEE\"")
                .header("x-ms-request-id", format!("upstream-{n}"))
                .header("x-upstream-custom", "Value  With\tSpaces")
                .header("set-cookie", "a=1")
                .header("set-cookie", "b=2")
                .body(Full::new(Bytes::from(echo)))
                .unwrap()
        }

        fn url(&self) -> String {
            format!("http://{}", self.addr)
        }

        fn seen(&self) -> Vec<Seen> {
            self.seen.lock().unwrap().clone()
        }
    }

    type TestClient = Client<HttpConnector, Full<Bytes>>;

    fn client() -> TestClient {
        Client::builder(TokioExecutor::new()).build(HttpConnector::new())
    }

    #[derive(Debug)]
    struct Answer {
        status: StatusCode,
        headers: HeaderMap,
        body: Bytes,
    }

    /// Sends one request; `Err` carries the error chain's text when no full response came back.
    async fn send(client: &TestClient, req: Request<Full<Bytes>>) -> Result<Answer, String> {
        let exchange = async {
            let resp = client.request(req).await.map_err(|e| format!("{e:?}"))?;
            let (parts, body) = resp.into_parts();
            let body = body
                .collect()
                .await
                .map_err(|e| format!("{e:?}"))?
                .to_bytes();
            Ok(Answer {
                status: parts.status,
                headers: parts.headers,
                body,
            })
        };
        tokio::time::timeout(Duration::from_secs(20), exchange)
            .await
            .expect("request hung")
    }

    fn put(proxy: &FaultProxy, target: &str, body: impl Into<Bytes>) -> Request<Full<Bytes>> {
        Request::put(format!("{}{target}", proxy.url()))
            .body(Full::new(body.into()))
            .unwrap()
    }

    fn get(proxy: &FaultProxy, target: &str) -> Request<Full<Bytes>> {
        Request::get(format!("{}{target}", proxy.url()))
            .body(Full::new(Bytes::new()))
            .unwrap()
    }

    fn pseudo_random(len: usize, seed: u64) -> Bytes {
        let mut rng = fastrand::Rng::with_seed(seed);
        Bytes::from((0..len).map(|_| rng.u8(..)).collect::<Vec<u8>>())
    }

    fn is_connection_reset(error: &str) -> bool {
        error.contains("ConnectionReset") || error.contains("BrokenPipe")
    }

    #[tokio::test]
    async fn pass_forwards_request_and_response_unchanged() {
        let upstream = Upstream::start().await;
        let proxy = FaultProxy::start(&upstream.url()).await;
        let client = client();
        let body = pseudo_random(3 << 20, 7);
        let target = "/devstoreaccount1/logs/a%20b%2Fc.json?comp=block&blockid=QUJD%3D&x=%C3%A9";
        let sent: Vec<(&str, &str)> = vec![
            ("host", "127.0.0.1:10000"),
            (
                "authorization",
                "SharedKey devstoreaccount1:c2lnbmF0dXJl+/=",
            ),
            ("x-ms-version", "2025-11-05"),
            ("x-ms-date", "Tue, 01 Jul 2025 12:00:00 GMT"),
            ("x-ms-meta-Mixed_Case-1", "v1"),
            ("x-ms-meta-Mixed_Case-1", "v2"),
            ("content-type", "application/octet-stream"),
            ("content-md5", "1B2M2Y8AsgTpgAmY7PhCfg=="),
            ("if-none-match", "*"),
        ];
        let mut req = put(&proxy, target, body.clone());
        for (name, value) in &sent {
            req.headers_mut().append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_static(value),
            );
        }

        let answer = send(&client, req).await.unwrap();

        let seen = upstream.seen();
        assert_eq!(seen.len(), 1);
        let got = &seen[0];
        assert_eq!(got.method, Method::PUT);
        assert_eq!(
            got.target, target,
            "path and query must be forwarded byte for byte"
        );
        assert_eq!(got.body, body, "body must be forwarded byte for byte");
        for (name, _) in &sent {
            let want: Vec<_> = sent
                .iter()
                .filter(|(n, _)| n == name)
                .map(|(_, v)| *v)
                .collect();
            let have: Vec<_> = got
                .headers
                .get_all(*name)
                .iter()
                .map(|v| v.to_str().unwrap())
                .collect();
            assert_eq!(have, want, "header {name}");
        }
        assert_eq!(
            got.headers.get("content-length").unwrap(),
            &body.len().to_string()
        );
        assert_eq!(
            got.headers.len(),
            sent.len() + 1,
            "no header added or lost: {:?}",
            got.headers
        );

        assert_eq!(answer.status, StatusCode::CREATED);
        assert_eq!(answer.headers.get("etag").unwrap(), "\"0x8DC0FFEE\"");
        assert_eq!(answer.headers.get("x-ms-request-id").unwrap(), "upstream-1");
        assert_eq!(
            answer.headers.get("x-upstream-custom").unwrap(),
            "Value  With\tSpaces"
        );
        let cookies: Vec<_> = answer.headers.get_all("set-cookie").iter().collect();
        assert_eq!(cookies, ["a=1", "b=2"]);
        assert_eq!(&answer.body[..5], b"echo:");
        assert_eq!(answer.body.slice(5..), body);

        // Keep-alive: further requests reuse the client's connection.
        for _ in 0..3 {
            assert_eq!(
                send(&client, get(&proxy, "/x")).await.unwrap().status,
                StatusCode::CREATED
            );
        }
        let stats = proxy.stats();
        assert_eq!(
            stats,
            Stats {
                connections: 1,
                requests: 4,
                forwarded: 4,
                ..Stats::default()
            }
        );
    }

    #[tokio::test]
    async fn status_is_answered_without_reaching_upstream() {
        let upstream = Upstream::start().await;
        let proxy = FaultProxy::start(&upstream.url()).await;
        let client = client();

        proxy.set_plan(Plan::new().rule(Rule::new(Action::server_busy())));
        let mut req = put(
            &proxy,
            "/devstoreaccount1/c/b?comp=block",
            pseudo_random(100_000, 1),
        );
        req.headers_mut()
            .insert("x-ms-version", HeaderValue::from_static("2025-11-05"));
        let answer = send(&client, req).await.unwrap();
        assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(answer.headers.get("x-ms-error-code").unwrap(), "ServerBusy");
        assert_eq!(answer.headers.get("x-ms-version").unwrap(), "2025-11-05");
        assert_eq!(
            answer.headers.get("content-type").unwrap(),
            "application/xml"
        );
        let request_id = answer
            .headers
            .get("x-ms-request-id")
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned();
        assert_eq!(request_id.len(), 36);
        let text = String::from_utf8(answer.body.to_vec()).unwrap();
        assert!(text.starts_with("<?xml version=\"1.0\" encoding=\"utf-8\"?><Error><Code>ServerBusy</Code><Message>The server is busy.\nRequestId:"), "{text}");
        assert!(
            text.contains(&request_id) && text.ends_with("Z</Message></Error>"),
            "{text}"
        );
        assert!(answer.headers.get(header::RETRY_AFTER).is_none());

        proxy.set_plan(Plan::new().rule(Rule::new(Action::too_many_requests(
            Duration::from_millis(1500),
        ))));
        let answer = send(&client, get(&proxy, "/devstoreaccount1/c/b"))
            .await
            .unwrap();
        assert_eq!(answer.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(answer.headers.get(header::RETRY_AFTER).unwrap(), "2");
        assert_eq!(
            answer.headers.get("x-ms-error-code").unwrap(),
            "TooManyRequests"
        );

        proxy.set_error_format(ErrorFormat::Json);
        proxy.set_plan(Plan::new().rule(Rule::new(Action::Status {
            status: 500,
            code: "Internal<&>Error".to_owned(),
            retry_after: None,
            retry_after_ms: Some(250),
        })));
        let answer = send(
            &client,
            get(&proxy, "/fs/dir/file?action=append&position=0"),
        )
        .await
        .unwrap();
        assert_eq!(answer.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(answer.headers.get("retry-after-ms").unwrap(), "250");
        assert_eq!(answer.headers.get("x-ms-retry-after-ms").unwrap(), "250");
        let json: serde_json::Value = serde_json::from_slice(&answer.body).unwrap();
        assert_eq!(json["error"]["code"], "Internal<&>Error");

        assert!(
            upstream.seen().is_empty(),
            "an injected status must not reach the upstream"
        );
        let stats = proxy.stats();
        assert_eq!(stats.statuses, 3);
        assert_eq!(
            stats.statuses_by_code,
            BTreeMap::from([(429, 1), (500, 1), (503, 1)])
        );
        assert_eq!(
            (stats.requests, stats.forwarded, stats.connections),
            (3, 0, 1),
            "connection kept alive"
        );
    }

    #[tokio::test]
    async fn reset_mid_request_fails_the_client_and_reaches_nothing() {
        let upstream = Upstream::start().await;
        let proxy = FaultProxy::start(&upstream.url()).await;
        let client = client();
        proxy.set_plan(Plan::new().rule(Rule::new(Action::ResetMidRequest)));

        let error = send(&client, get(&proxy, "/devstoreaccount1/c/b"))
            .await
            .unwrap_err();
        assert!(is_connection_reset(&error), "expected a reset, got {error}");
        let error = send(
            &client,
            put(
                &proxy,
                "/devstoreaccount1/c/b?comp=block",
                pseudo_random(8 << 20, 2),
            ),
        )
        .await
        .unwrap_err();
        assert!(is_connection_reset(&error), "expected a reset, got {error}");

        assert!(
            upstream.seen().is_empty(),
            "a reset request must not reach the upstream"
        );
        let stats = proxy.stats();
        assert_eq!(
            (
                stats.requests,
                stats.resets,
                stats.forwarded,
                stats.connections
            ),
            (2, 2, 0, 2)
        );
    }

    #[tokio::test]
    async fn drop_response_fails_the_client_after_upstream_acted() {
        let upstream = Upstream::start().await;
        let proxy = FaultProxy::start(&upstream.url()).await;
        let client = client();
        proxy.set_plan(Plan::new().rule(Rule::new(Action::DropResponse).method(Method::PUT)));

        let body = pseudo_random(1 << 20, 3);
        let error = send(
            &client,
            put(
                &proxy,
                "/devstoreaccount1/c/b?comp=appendblock",
                body.clone(),
            ),
        )
        .await
        .unwrap_err();
        assert!(
            error.contains("IncompleteMessage") || is_connection_reset(&error),
            "{error}"
        );

        let seen = upstream.seen();
        assert_eq!(seen.len(), 1, "the upstream must have received the request");
        assert_eq!(seen[0].body, body);
        let stats = proxy.stats();
        assert_eq!((stats.dropped_responses, stats.forwarded), (1, 1));

        // The rule matches PUT only: a GET passes on a fresh connection.
        assert_eq!(
            send(&client, get(&proxy, "/x")).await.unwrap().status,
            StatusCode::CREATED
        );
        assert_eq!(proxy.stats().connections, 2);
    }

    #[tokio::test]
    async fn delay_forwards_late_even_when_the_client_gave_up() {
        let upstream = Upstream::start().await;
        let proxy = FaultProxy::start(&upstream.url()).await;
        let client = client();
        proxy.set_plan(Plan::new().rule(Rule::new(Action::Delay(Duration::from_millis(300)))));

        let started = tokio::time::Instant::now();
        assert_eq!(
            send(&client, get(&proxy, "/a")).await.unwrap().status,
            StatusCode::CREATED
        );
        assert!(started.elapsed() >= Duration::from_millis(300));

        let gave_up =
            tokio::time::timeout(Duration::from_millis(50), send(&client, get(&proxy, "/b"))).await;
        assert!(gave_up.is_err(), "the client should have timed out");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while upstream.seen().len() < 2 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the delayed request never reached the upstream"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(upstream.seen()[1].target, "/b");
        assert_eq!(proxy.stats().delayed, 2);
    }

    #[tokio::test]
    async fn schedules_matchers_and_plan_replacement() {
        let upstream = Upstream::start().await;
        let proxy = FaultProxy::start(&upstream.url()).await;
        let client = client();
        let mut statuses = Vec::new();

        // A burst of two 503s, then everything passes.
        proxy.set_plan(Plan::new().rule(Rule::new(Action::server_busy()).first_n(2)));
        for _ in 0..4 {
            statuses.push(
                send(&client, get(&proxy, "/a"))
                    .await
                    .unwrap()
                    .status
                    .as_u16(),
            );
        }
        assert_eq!(statuses, [503, 503, 201, 201]);

        // Replacing the plan restarts the counters: Put Block requests 1 and 2 fail, and every
        // second GET (counted among GETs only) fails; the first matching rule wins.
        proxy.set_plan(
            Plan::new()
                .rule(
                    Rule::new(Action::status(500, "InternalError"))
                        .query_contains("comp=block")
                        .between(1, 3),
                )
                .rule(
                    Rule::new(Action::status(409, "Conflict"))
                        .method(Method::GET)
                        .every_nth(2),
                )
                .rule(Rule::new(Action::status(412, "ConditionNotMet")).path_contains("/locked/")),
        );
        let mut statuses = Vec::new();
        for i in 0..5 {
            statuses.push(
                send(&client, put(&proxy, "/c/b?comp=block", "x"))
                    .await
                    .unwrap()
                    .status
                    .as_u16(),
            );
            statuses.push(
                send(&client, get(&proxy, &format!("/c/{i}")))
                    .await
                    .unwrap()
                    .status
                    .as_u16(),
            );
        }
        assert_eq!(statuses, [201, 201, 500, 409, 500, 201, 201, 409, 201, 201]);
        assert_eq!(
            send(&client, put(&proxy, "/c/locked/b?comp=block", "x"))
                .await
                .unwrap()
                .status,
            412
        );

        let stats = proxy.stats();
        assert_eq!(stats.requests, 15);
        assert_eq!(stats.forwarded, 8);
        assert_eq!(stats.statuses, 7);
        assert_eq!(
            stats.statuses_by_code,
            BTreeMap::from([(409, 2), (412, 1), (500, 2), (503, 2)])
        );
        assert_eq!(stats.failures_injected(), 7);
        assert_eq!(upstream.seen().len(), 8);

        proxy.set_plan(Plan::pass());
        assert_eq!(
            send(&client, put(&proxy, "/c/locked/b?comp=block", "x"))
                .await
                .unwrap()
                .status,
            201
        );
        assert_eq!(proxy.stats().connections, 1);
    }

    /// What one request met, as the client and the upstream saw it.
    #[derive(Debug, PartialEq, Eq)]
    enum Outcome {
        Status(u16),
        Failed { reached_upstream: bool },
    }

    async fn chaos_run(seed: u64) -> (Vec<Outcome>, Stats) {
        let upstream = Upstream::start().await;
        let proxy = FaultProxy::start(&upstream.url()).await;
        proxy.set_plan(Plan::chaos(seed, 0.1, 0.1, 0.1, 0.1));
        let client = client();
        let mut outcomes = Vec::new();
        for i in 0..200 {
            let before = upstream.seen().len();
            let outcome = match send(
                &client,
                put(&proxy, &format!("/c/b?comp=block&n={i}"), "record"),
            )
            .await
            {
                Ok(answer) => Outcome::Status(answer.status.as_u16()),
                Err(_) => Outcome::Failed {
                    reached_upstream: upstream.seen().len() > before,
                },
            };
            outcomes.push(outcome);
        }
        let stats = proxy.stats();
        assert_eq!(stats.forwarded, upstream.seen().len() as u64);
        (
            outcomes,
            Stats {
                connections: 0,
                ..stats
            },
        )
    }

    #[tokio::test]
    async fn chaos_with_a_fixed_seed_is_reproducible() {
        let (first, first_stats) = chaos_run(42).await;
        let (again, again_stats) = chaos_run(42).await;
        let (other, _) = chaos_run(43).await;
        assert_eq!(first, again);
        assert_eq!(first_stats, again_stats);
        assert_ne!(first, other, "another seed gives another sequence");

        let count = |o: &Outcome| first.iter().filter(|x| *x == o).count();
        assert!(count(&Outcome::Status(503)) > 5, "{first_stats:?}");
        assert!(count(&Outcome::Status(429)) > 5, "{first_stats:?}");
        assert!(
            count(&Outcome::Failed {
                reached_upstream: false
            }) > 5,
            "{first_stats:?}"
        );
        assert!(
            count(&Outcome::Failed {
                reached_upstream: true
            }) > 5,
            "{first_stats:?}"
        );
        assert!(count(&Outcome::Status(201)) > 90, "{first_stats:?}");
        assert_eq!(
            count(&Outcome::Failed {
                reached_upstream: false
            }) as u64,
            first_stats.resets
        );
        assert_eq!(
            count(&Outcome::Failed {
                reached_upstream: true
            }) as u64,
            first_stats.dropped_responses
        );
    }

    #[test]
    fn chaos_probabilities_are_honoured() {
        let mut plan = ActivePlan::new(Plan::chaos(7, 0.25, 0.25, 0.25, 0.25));
        let uri: Uri = "/c/b".parse().unwrap();
        let mut counts = BTreeMap::new();
        for _ in 0..20_000 {
            *counts
                .entry(plan.decide(&Method::PUT, &uri).label())
                .or_insert(0) += 1;
        }
        assert_eq!(counts.get("pass"), None, "the four faults add up to 1");
        assert_eq!(
            counts["status"],
            counts.values().sum::<i32>() - counts["reset"] - counts["drop-response"]
        );
        for (label, n) in &counts {
            let expected = if *label == "status" { 10_000 } else { 5_000 };
            assert!(
                (n - expected).abs() < 400,
                "{label}: {n} (expected about {expected})"
            );
        }

        let mut none = ActivePlan::new(Plan::chaos(7, 0.0, 0.0, 0.0, 0.0));
        assert!((0..1000).all(|_| none.decide(&Method::PUT, &uri) == Action::Pass));
    }

    #[tokio::test]
    #[should_panic(expected = "must be on loopback")]
    async fn refuses_a_non_loopback_upstream() {
        let _ = FaultProxy::start("http://192.0.2.1:80").await;
    }
}
