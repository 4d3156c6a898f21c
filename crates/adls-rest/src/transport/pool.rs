//! The HTTP/1 connection pool: connections of our own over
//! `hyper::client::conn::http1`, each driven in the task of the request that
//! holds it (no task per connection, so no hand-off between tasks per
//! request), idle ones kept per host up to a limit and closed by a reaper
//! task once idle too long or closed by the server.
//!
//! A connection is only ever in one place: in the request that checked it out
//! (which polls its [`http1::Connection`] future together with the answer), or
//! in the idle list. It goes back to the list only after its answer was read
//! to the end and hyper is ready for the next request on it; a request that
//! fails, times out or is dropped drops its connection, which closes it.

use std::future::{poll_fn, Future};
use std::io;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http::uri::{Authority, Scheme};
use http::{HeaderValue, Request, Uri};
use http_body_util::Full;
use hyper::body::{Body as _, Incoming};
use hyper::client::conn::http1;
use hyper_util::client::legacy::connect::HttpConnector;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, TryAcquireError};

use super::{is_tls_failure, Counters};
use crate::error::{Error, ErrorKind};

pub(super) type Https = hyper_rustls::HttpsConnector<HttpConnector>;
type Io = hyper_rustls::MaybeHttpsStream<hyper_util::rt::TokioIo<tokio::net::TcpStream>>;
type Driver = http1::Connection<Counted, Full<Bytes>>;

/// Where a connection goes: scheme and host (with port).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) struct Key {
    scheme: Scheme,
    authority: Authority,
}

/// Splits an absolute request URL into the pool key and the request as
/// HTTP/1 sends it: origin-form target, `Host` header.
pub(super) fn origin_form(
    mut req: Request<Full<Bytes>>,
) -> Result<(Key, Request<Full<Bytes>>), Error> {
    let parts = std::mem::take(req.uri_mut()).into_parts();
    let (Some(scheme), Some(authority)) = (parts.scheme, parts.authority) else {
        return Err(Error::config("request URL has no scheme or host"));
    };
    let target = match parts.path_and_query {
        Some(pq) => Uri::from(pq),
        None => Uri::from_static("/"),
    };
    *req.uri_mut() = target;
    if !req.headers().contains_key(http::header::HOST) {
        // never userinfo in our URLs; drop it anyway, as a browser would
        let host = authority.as_str().rsplit('@').next().unwrap_or_default();
        let host = HeaderValue::from_str(host)
            .map_err(|_| Error::config("request URL's host is not a valid Host header"))?;
        req.headers_mut().insert(http::header::HOST, host);
    }
    Ok((Key { scheme, authority }, req))
}

/// An answer read to the end.
pub(super) struct Answer {
    pub parts: http::response::Parts,
    pub body: Bytes,
}

/// The connection pool. Cheap to share: the transport holds one.
pub(super) struct Pool {
    shared: Arc<Shared>,
}

struct Shared {
    connector: Https,
    /// One permit per open connection: at most `max_in_flight` are open.
    limit: Arc<Semaphore>,
    counters: Arc<Counters>,
    idle_timeout: Duration,
    max_idle_per_host: usize,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Idle connections per host. A list, not a hash map: a client talks
    /// to a handful of hosts, and hashing the key (SipHash) twice per
    /// request cost more than comparing it with each.
    idle: Vec<(Key, Vec<Idle>)>,
    /// The reaper's waker: idle connections are polled with it, so a server
    /// closing one wakes the reaper.
    reaper_waker: Option<Waker>,
    reaper_running: bool,
    /// Which reaper is the current one (a stopped runtime drops its task).
    reaper_generation: u64,
}

struct Idle {
    conn: Conn,
    since: Instant,
}

/// The longest an idle connection is kept, whatever the options say: a year
/// is "never" to any server (Azure's load balancer closes one after 4
/// minutes), and `Instant` arithmetic with e.g. `Duration::MAX` overflows.
pub(super) const MAX_IDLE_TIMEOUT: Duration = Duration::from_secs(365 * 24 * 3600);

impl Pool {
    pub(super) fn new(
        connector: Https,
        max_connections: usize,
        idle_timeout: Duration,
        counters: Arc<Counters>,
    ) -> Pool {
        Pool {
            shared: Arc::new(Shared {
                connector,
                limit: Arc::new(Semaphore::new(max_connections)),
                counters,
                idle_timeout: idle_timeout.min(MAX_IDLE_TIMEOUT),
                max_idle_per_host: max_connections,
                state: Mutex::new(State::default()),
            }),
        }
    }

    /// Sends `req` on a pooled or new connection and reads the whole answer
    /// before `timeout` runs out. A pooled connection found closed before it
    /// took the request is dropped and the request goes on another one (it
    /// never left, so this is not a retry).
    ///
    /// Errors say whether the request may have left: `Connect` and `Tls`
    /// (nothing was sent: no connection, or one that closed before taking the
    /// request, or none within the time) are not ambiguous; `Connection` and
    /// `Timeout` after the request was handed to a connection are.
    pub(super) async fn send(
        &self,
        key: Key,
        req: Request<Full<Bytes>>,
        timeout: Duration,
    ) -> Result<Answer, Error> {
        let handed_over = AtomicBool::new(false);
        let attempt = self.send_inner(key, req, &handed_over);
        match tokio::time::timeout(timeout, attempt).await {
            Ok(result) => result,
            Err(_) if !handed_over.load(Ordering::Relaxed) => Err(Error::new(
                ErrorKind::Connect,
                format!(
                    "no connection within {} ms (the request was not sent)",
                    timeout.as_millis()
                ),
            )),
            Err(_) => Err(Error::new(
                ErrorKind::Timeout,
                format!("no complete answer within {} ms", timeout.as_millis()),
            )),
        }
    }

    async fn send_inner(
        &self,
        key: Key,
        mut req: Request<Full<Bytes>>,
        handed_over: &AtomicBool,
    ) -> Result<Answer, Error> {
        loop {
            let (mut conn, reused) = match self.take_idle(&key) {
                Some(conn) => (conn, true),
                // boxed: connecting (DNS, TCP, TLS) takes a future of several
                // KiB, which would otherwise widen every request's future
                None => (Box::pin(self.connect(&key)).await?, false),
            };
            handed_over.store(true, Ordering::Relaxed);
            match conn.exchange(req).await {
                Ok(answer) => {
                    self.put_back(key, conn);
                    return Ok(answer);
                }
                Err(Exchange::NotSent(back, e)) if reused => {
                    tracing::debug!(error = ?e, "pooled connection closed before taking the request; using another");
                    handed_over.store(false, Ordering::Relaxed);
                    req = *back;
                }
                Err(Exchange::NotSent(_, e)) => {
                    let err = Error::new(
                        ErrorKind::Connect,
                        "connection closed before the request was sent",
                    );
                    return Err(match e {
                        Some(e) => err.with_source(e),
                        None => err,
                    });
                }
                Err(Exchange::Failed(e)) => {
                    let err = Error::new(
                        ErrorKind::Connection,
                        "connection failed during the request",
                    );
                    return Err(match e {
                        Some(e) => err.with_source(e),
                        None => err,
                    });
                }
                Err(Exchange::Body(e)) => {
                    let err = Error::new(
                        ErrorKind::Connection,
                        "connection failed while reading the answer",
                    );
                    return Err(match e {
                        Some(e) => err.with_source(e),
                        None => err,
                    });
                }
            }
        }
    }

    /// The most recently used idle connection to `key` that is still within
    /// its idle time; expired or closed ones met on the way are dropped.
    fn take_idle(&self, key: &Key) -> Option<Conn> {
        let mut stale = Vec::new();
        let found = {
            let mut state = self.shared.lock();
            let (_, list) = state.idle.iter_mut().find(|(k, _)| k == key)?;
            let mut found = None;
            while let Some(idle) = list.pop() {
                if idle.since.elapsed() < self.shared.idle_timeout && idle.conn.is_open() {
                    found = Some(idle.conn);
                    break;
                }
                stale.push(idle);
            }
            found
        };
        drop(stale); // closes them, outside the lock
        found
    }

    /// Opens a connection to `key`, within the connection limit.
    async fn connect(&self, key: &Key) -> Result<Conn, Error> {
        let permit = self.connection_permit().await?;
        let uri = Uri::builder()
            .scheme(key.scheme.clone())
            .authority(key.authority.clone())
            .path_and_query("/")
            .build()
            .map_err(|e| Error::config("request URL does not form a valid URI").with_source(e))?;
        let mut connector = self.shared.connector.clone();
        let io = tower_service::Service::<Uri>::call(&mut connector, uri)
            .await
            .map_err(|e| {
                if is_tls_failure(&*e) {
                    Error::new(ErrorKind::Tls, "TLS handshake failed").with_source(e)
                } else {
                    Error::new(ErrorKind::Connect, "could not connect").with_source(e)
                }
            })?;
        let counters = &self.shared.counters;
        counters.connections_opened.fetch_add(1, Ordering::Relaxed);
        let open = counters.connections_open.fetch_add(1, Ordering::Relaxed) + 1;
        counters.connections_peak.fetch_max(open, Ordering::Relaxed);
        tracing::debug!(host = %key.authority, open, "connection opened");
        let io = Counted {
            io,
            _permit: permit,
            counters: counters.clone(),
        };
        let (send, driver) = http1::Builder::new().handshake(io).await.map_err(|e| {
            Error::new(ErrorKind::Connect, "HTTP/1 handshake failed").with_source(e)
        })?;
        Ok(Conn {
            send,
            driver: Some(Box::new(driver)),
        })
    }

    /// A permit of the connection limit. When none is free, every open
    /// connection is either busy (then a request holds it and will give it
    /// back) or idle for another host: close the oldest idle one.
    async fn connection_permit(&self) -> Result<OwnedSemaphorePermit, Error> {
        let closed = || Error::new(ErrorKind::Connection, "client is shut down");
        match self.shared.limit.clone().try_acquire_owned() {
            Ok(p) => return Ok(p),
            Err(TryAcquireError::Closed) => return Err(closed()),
            Err(TryAcquireError::NoPermits) => {}
        }
        let oldest = {
            let mut state = self.shared.lock();
            let oldest_key = state
                .idle
                .iter()
                .filter_map(|(k, list)| list.first().map(|i| (i.since, k)))
                .min_by_key(|(since, _)| *since)
                .map(|(_, k)| k.clone());
            oldest_key.and_then(|k| {
                let at = state.idle.iter().position(|(key, _)| *key == k)?;
                let list = &mut state.idle[at].1;
                let idle = (!list.is_empty()).then(|| list.remove(0));
                if list.is_empty() {
                    state.idle.swap_remove(at);
                }
                idle
            })
        };
        drop(oldest);
        self.shared
            .limit
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| closed())
    }

    /// Returns a connection whose answer was read to the end to the idle
    /// list, if hyper is ready for another request on it and the host has
    /// room; otherwise closes it.
    fn put_back(&self, key: Key, mut conn: Conn) {
        let mut state = self.shared.lock();
        // Let the connection settle into its idle state, registering the
        // reaper's waker for its socket so a close by the server wakes it.
        let waker = state
            .reaper_waker
            .clone()
            .unwrap_or_else(|| Waker::noop().clone());
        let ready = conn.poll_idle(&mut Context::from_waker(&waker)) && conn.send.is_ready();
        let at = match state.idle.iter().position(|(k, _)| *k == key) {
            Some(at) => at,
            None => {
                state.idle.push((key, Vec::new()));
                state.idle.len() - 1
            }
        };
        let list = &mut state.idle[at].1;
        if !ready || list.len() >= self.shared.max_idle_per_host {
            drop(state);
            drop(conn);
            return;
        }
        list.push(Idle {
            conn,
            since: Instant::now(),
        });
        if !state.reaper_running {
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                state.reaper_running = true;
                state.reaper_generation += 1;
                let generation = state.reaper_generation;
                runtime.spawn(reap(Arc::downgrade(&self.shared), generation));
            }
        }
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // the state stays consistent even if a holder panicked
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        let state = self.state.get_mut().unwrap_or_else(|p| p.into_inner());
        if let Some(waker) = state.reaper_waker.take() {
            waker.wake(); // so the reaper sees the pool gone and ends now
        }
    }
}

/// The reaper: closes idle connections once past the idle timeout or closed
/// by the server, and ends when the list is empty or the pool is gone.
async fn reap(shared: Weak<Shared>, generation: u64) {
    struct Stopped(Weak<Shared>, u64);
    impl Drop for Stopped {
        fn drop(&mut self) {
            if let Some(shared) = self.0.upgrade() {
                let mut state = shared.lock();
                if state.reaper_generation == self.1 {
                    state.reaper_running = false;
                    state.reaper_waker = None;
                }
            }
        }
    }
    let _stopped = Stopped(shared.clone(), generation);
    let mut timer = pin!(tokio::time::sleep(Duration::ZERO));
    poll_fn(|cx| loop {
        let Some(shared) = shared.upgrade() else {
            return Poll::Ready(());
        };
        let mut closed = Vec::new();
        let next = {
            let mut state = shared.lock();
            if !state
                .reaper_waker
                .as_ref()
                .is_some_and(|w| w.will_wake(cx.waker()))
            {
                state.reaper_waker = Some(cx.waker().clone());
            }
            let now = Instant::now();
            let mut next: Option<Instant> = None;
            for (_, list) in state.idle.iter_mut() {
                let mut i = 0;
                while i < list.len() {
                    let expires = list[i].since + shared.idle_timeout;
                    if expires <= now || !list[i].conn.poll_idle(cx) {
                        closed.push(list.remove(i));
                    } else {
                        next = Some(next.map_or(expires, |n| n.min(expires)));
                        i += 1;
                    }
                }
            }
            state.idle.retain(|(_, list)| !list.is_empty());
            if next.is_none() {
                state.reaper_running = false;
                state.reaper_waker = None;
            }
            next
        };
        if !closed.is_empty() {
            tracing::debug!(closed = closed.len(), "idle connections closed");
        }
        drop(closed);
        let Some(next) = next else {
            return Poll::Ready(());
        };
        timer.as_mut().reset(next.into());
        if timer.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
    })
    .await;
}

/// One HTTP/1 connection: the request half and the future that does its IO.
struct Conn {
    send: http1::SendRequest<Full<Bytes>>,
    /// `None` once the connection future finished (closed, or failed).
    /// Boxed: it holds the socket and hyper's buffers (several KiB), and a
    /// `Conn` is moved into each request's future, which every caller's
    /// future then copies at each `.await` it is created for.
    driver: Option<Box<Driver>>,
}

/// How an exchange on one connection failed.
enum Exchange {
    /// The connection closed before it took the request: here it is back.
    NotSent(Box<Request<Full<Bytes>>>, Option<hyper::Error>),
    /// The connection failed after it took the request.
    Failed(Option<hyper::Error>),
    /// The connection failed while the answer's body was read.
    Body(Option<hyper::Error>),
}

impl Conn {
    fn is_open(&self) -> bool {
        self.driver.is_some() && !self.send.is_closed()
    }

    /// Polls the connection future once (it reads, writes, notices a close);
    /// drops it if it finished. Returns whether the connection is still open.
    fn poll_idle(&mut self, cx: &mut Context<'_>) -> bool {
        drive(&mut self.driver, cx);
        self.is_open()
    }

    /// Sends `req` and reads the whole answer, driving the connection in
    /// this task. The answer's futures are completed only from inside the
    /// connection future's poll (or its drop), so they are polled right after
    /// it without a waker of their own: one wake-up per event, from the socket.
    async fn exchange(&mut self, req: Request<Full<Bytes>>) -> Result<Answer, Exchange> {
        let noop = Waker::noop();
        let mut answer = pin!(self.send.try_send_request(req));
        let driver = &mut self.driver;
        let response = poll_fn(|cx| {
            drive(driver, cx);
            match answer.as_mut().poll(&mut Context::from_waker(noop)) {
                Poll::Ready(r) => Poll::Ready(Some(r)),
                Poll::Pending if driver.is_none() => Poll::Ready(None),
                Poll::Pending => Poll::Pending,
            }
        })
        .await;
        let response = match response {
            Some(Ok(r)) => r,
            Some(Err(mut e)) => {
                return Err(match e.take_message() {
                    Some(req) => Exchange::NotSent(Box::new(req), Some(e.into_error())),
                    None => Exchange::Failed(Some(e.into_error())),
                })
            }
            None => return Err(Exchange::Failed(None)),
        };
        let (parts, body) = response.into_parts();
        let body = read_body(body, driver).await?;
        Ok(Answer { parts, body })
    }
}

/// Reads a whole answer body while driving its connection.
async fn read_body(
    mut body: Incoming,
    driver: &mut Option<Box<Driver>>,
) -> Result<Bytes, Exchange> {
    let noop = Waker::noop();
    let mut first: Option<Bytes> = None;
    let mut more: Option<BytesMut> = None;
    poll_fn(|cx| loop {
        drive(driver, cx);
        match Pin::new(&mut body).poll_frame(&mut Context::from_waker(noop)) {
            Poll::Ready(Some(Ok(frame))) => {
                let Ok(data) = frame.into_data() else {
                    continue; // trailers
                };
                if let Some(buf) = more.as_mut() {
                    buf.extend_from_slice(&data);
                } else if let Some(f) = first.take() {
                    let mut buf = BytesMut::with_capacity(f.len() + data.len());
                    buf.extend_from_slice(&f);
                    buf.extend_from_slice(&data);
                    more = Some(buf);
                } else {
                    first = Some(data);
                }
            }
            Poll::Ready(Some(Err(e))) => return Poll::Ready(Err(Exchange::Body(Some(e)))),
            Poll::Ready(None) => return Poll::Ready(Ok(())),
            // nothing more will come once the connection future is gone
            Poll::Pending if driver.is_none() => return Poll::Ready(Err(Exchange::Body(None))),
            Poll::Pending => return Poll::Pending,
        }
    })
    .await?;
    Ok(match (more, first) {
        (Some(buf), _) => buf.freeze(),
        (None, Some(f)) => f,
        (None, None) => Bytes::new(),
    })
}

/// Polls a connection future; drops it once it finished, which closes the
/// socket and answers any request still waiting on it.
fn drive(driver: &mut Option<Box<Driver>>, cx: &mut Context<'_>) {
    if let Some(d) = driver.as_mut() {
        if let Poll::Ready(result) = Pin::new(&mut **d).poll(cx) {
            if let Err(e) = result {
                tracing::debug!(error = %e, "connection closed with an error");
            }
            *driver = None;
        }
    }
}

/// The socket of one connection: counts it open for as long as it lives and
/// holds one permit of the connection limit.
struct Counted {
    io: Io,
    _permit: OwnedSemaphorePermit,
    counters: Arc<Counters>,
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.counters
            .connections_open
            .fetch_sub(1, Ordering::Relaxed);
    }
}

impl hyper::rt::Read for Counted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for Counted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A loopback server answering every request (no body) with an empty
    /// `201` on a kept-alive connection: enough to put a connection in the
    /// pool.
    async fn answering_server() -> String {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut seen = Vec::new();
                    let mut buf = [0u8; 4096];
                    while let Ok(n) = sock.read(&mut buf).await {
                        if n == 0 {
                            return;
                        }
                        seen.extend_from_slice(&buf[..n]);
                        while let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
                            seen.drain(..end + 4);
                            let answer = b"HTTP/1.1 201 Created\r\ncontent-length: 0\r\n\r\n";
                            if sock.write_all(answer).await.is_err() {
                                return;
                            }
                        }
                    }
                });
            }
        });
        format!("http://{addr}/c/f")
    }

    fn plain_connector() -> Https {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(super::super::tls_config(None).expect("tls"))
            .https_or_http()
            .enable_http1()
            .wrap_connector(http)
    }

    /// `Duration::MAX` ("never") as the idle timeout: the reaper's
    /// `since + timeout` overflowed an `Instant` and panicked, leaving the
    /// pool without a reaper. It counts as a year now, and the reaper waits.
    #[tokio::test(flavor = "current_thread")]
    async fn an_idle_timeout_of_duration_max_keeps_the_reaper_running() {
        let url = answering_server().await;
        let pool = Pool::new(
            plain_connector(),
            2,
            Duration::MAX,
            Arc::new(Counters::default()),
        );
        assert_eq!(pool.shared.idle_timeout, MAX_IDLE_TIMEOUT);
        for _ in 0..2 {
            let mut req = Request::new(Full::new(Bytes::new()));
            *req.uri_mut() = url.parse().expect("uri");
            let (key, req) = origin_form(req).expect("absolute");
            let answer = pool
                .send(key, req, Duration::from_secs(10))
                .await
                .expect("answered");
            assert_eq!(answer.parts.status, http::StatusCode::CREATED);
            // let the reaper (spawned when the connection went back) run
            for _ in 0..10 {
                tokio::task::yield_now().await;
            }
            let state = pool.shared.lock();
            assert!(state.reaper_running, "the reaper stopped");
            assert!(state.reaper_waker.is_some(), "the reaper never waited");
            assert_eq!(state.idle.len(), 1);
            assert_eq!(state.idle[0].1.len(), 1, "one connection, kept");
        }
    }

    #[test]
    fn origin_form_keeps_path_and_query_and_sets_host() {
        let mut req = Request::new(Full::new(Bytes::new()));
        *req.uri_mut() = "http://127.0.0.1:10000/devstoreaccount1/c/a%20b?comp=block&blockid=AA"
            .parse()
            .expect("uri");
        let (key, req) = origin_form(req).expect("absolute");
        assert_eq!(key.scheme, Scheme::HTTP);
        assert_eq!(key.authority.as_str(), "127.0.0.1:10000");
        assert_eq!(
            req.uri().to_string(),
            "/devstoreaccount1/c/a%20b?comp=block&blockid=AA"
        );
        assert_eq!(req.headers()[http::header::HOST], "127.0.0.1:10000");

        let mut bare = Request::new(Full::new(Bytes::new()));
        *bare.uri_mut() = "https://acct.blob.core.windows.net".parse().expect("uri");
        let (key, bare) = origin_form(bare).expect("absolute");
        assert_eq!(key.scheme, Scheme::HTTPS);
        assert_eq!(bare.uri().to_string(), "/");
        assert_eq!(
            bare.headers()[http::header::HOST],
            "acct.blob.core.windows.net"
        );

        let mut relative = Request::new(Full::new(Bytes::new()));
        *relative.uri_mut() = "/only/a/path".parse().expect("uri");
        assert_eq!(
            origin_form(relative).expect_err("no host").kind(),
            ErrorKind::Config
        );
    }
}
