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

mod forward;
mod inject;
mod plan;
#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http::uri::Authority;
use http::{Method, Uri};
use http_body_util::Full;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub use plan::{Action, Plan, Rule, When};

use forward::accept_loop;
use plan::ActivePlan;

/// Idle upstream connections are dropped after this, below Azurite's 5 s keep-alive, so the
/// proxy does not inject faults of its own by reusing a connection the upstream just closed.
const UPSTREAM_POOL_IDLE: Duration = Duration::from_secs(2);

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
