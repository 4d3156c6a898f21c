//! Accepting connections, recording every request, and applying the queued
//! [`Fault`]s before (or instead of) the operation itself.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::task::JoinSet;

use super::error::{error_response, ApiError};
use super::state::State;
use super::wire::{Ctx, Query, Resp};
use super::{Fault, RecordedRequest};

pub(super) struct Shared {
    pub(super) state: Mutex<State>,
    pub(super) faults: Mutex<VecDeque<Fault>>,
    pub(super) requests: Mutex<Vec<RecordedRequest>>,
    pub(super) connections: AtomicU64,
}

impl Shared {
    fn take_fault(&self, method: &Method, query: Option<&Query>) -> Option<Fault> {
        let action = query.and_then(|q| q.get("action"));
        let resource = query.and_then(|q| q.get("resource"));
        let mut faults = lock(&self.faults);
        let index = faults
            .iter()
            .position(|f| f.matcher().matches(method, action, resource))?;
        let fault = faults.get_mut(index)?;
        let taken = fault.clone();
        *fault.times_mut() -= 1;
        if *fault.times_mut() == 0 {
            faults.remove(index);
        }
        Some(taken)
    }
}

pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

// `Kill::mode` starts at 0: nothing to do.
const KILL_CLOSE: u8 = 1;
const KILL_RESET: u8 = 2;

/// Lets a request handler end its own connection without answering.
#[derive(Default)]
struct Kill {
    notify: Notify,
    mode: AtomicU8,
}

impl Kill {
    fn fire(&self, mode: u8) {
        self.mode.store(mode, Ordering::SeqCst);
        self.notify.notify_one();
    }
}

pub(super) async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let mut connections = JoinSet::new();
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        shared.connections.fetch_add(1, Ordering::SeqCst);
        while connections.try_join_next().is_some() {}
        connections.spawn(serve_connection(stream, Arc::clone(&shared)));
    }
}

async fn serve_connection(stream: TcpStream, shared: Arc<Shared>) {
    let _ = stream.set_nodelay(true);
    // A second handle on the socket, so a reset can set SO_LINGER=0 after hyper
    // has taken the stream.
    let (stream, spare) = match stream.into_std() {
        Ok(std_stream) => {
            let spare = std_stream.try_clone().ok();
            match TcpStream::from_std(std_stream) {
                Ok(s) => (s, spare),
                Err(_) => return,
            }
        }
        Err(_) => return,
    };
    let kill = Arc::new(Kill::default());
    let service_kill = Arc::clone(&kill);
    let service = hyper::service::service_fn(move |req| {
        handle(Arc::clone(&shared), Arc::clone(&service_kill), req)
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.timer(TokioTimer::new()).auto_date_header(false);
    let connection = builder.serve_connection(TokioIo::new(stream), service);
    tokio::select! {
        _ = connection => {}
        () = kill.notify.notified() => {
            if kill.mode.load(Ordering::SeqCst) == KILL_RESET {
                if let Some(spare) = spare.and_then(|s| TcpStream::from_std(s).ok()) {
                    // Closing with a zero linger sends RST instead of FIN.
                    let _ = spare.set_zero_linger();
                }
            }
        }
    }
}

async fn handle(
    shared: Arc<Shared>,
    kill: Arc<Kill>,
    req: Request<Incoming>,
) -> Result<Resp, Infallible> {
    let (parts, body) = req.into_parts();
    let body = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        // The client went away mid-body: nobody will read an answer.
        Err(_) => return Ok(Response::new(Full::new(Bytes::new()))),
    };
    let recorded = RecordedRequest {
        method: parts.method,
        uri: parts.uri,
        headers: parts.headers,
        body,
    };
    lock(&shared.requests).push(recorded.clone());
    let query = Query::parse(recorded.uri.query()).ok();
    match shared.take_fault(&recorded.method, query.as_ref()) {
        None => Ok(apply(&shared, &recorded)),
        Some(Fault::Status {
            status,
            code,
            retry_after,
            ..
        }) => {
            let ctx = Ctx::new(&recorded);
            let mut error = ApiError::new(status, code);
            if let Some(after) = retry_after {
                let secs = after.as_secs() + u64::from(after.subsec_nanos() > 0);
                error = error
                    .header("retry-after", secs.to_string())
                    .header("x-ms-retry-after-ms", after.as_millis().to_string());
            }
            Ok(error_response(&ctx, error))
        }
        Some(Fault::DropResponseAfterApply { .. }) => {
            let _ = apply(&shared, &recorded);
            kill.fire(KILL_CLOSE);
            std::future::pending().await
        }
        Some(Fault::ResetBeforeApply { .. }) => {
            kill.fire(KILL_RESET);
            std::future::pending().await
        }
        Some(Fault::Delay { delay, .. }) => {
            // In its own task, so the operation happens even if the client hangs up.
            let task = tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                apply(&shared, &recorded)
            });
            Ok(task.await.unwrap_or_else(|_| {
                let mut r = Response::new(Full::new(Bytes::new()));
                *r.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
                r
            }))
        }
    }
}

/// Applies one request to the state and builds its answer.
fn apply(shared: &Shared, req: &RecordedRequest) -> Resp {
    let ctx = Ctx::new(req);
    let mut state = lock(&shared.state);
    match state.route(req, &ctx) {
        Ok(resp) => resp,
        Err(e) => error_response(&ctx, e),
    }
}
