//! Serving client connections: each request is decided by the plan, then
//! answered with an injected fault or forwarded to the upstream unchanged
//! (hop-by-hop headers aside).

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http::uri::Authority;
use http::{header, HeaderMap, HeaderName, Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

use super::inject::{error_response, ClientSocket};
use super::{Action, Shared};

/// Longest the proxy waits for the upstream's full response before answering `502`.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(60);

pub(super) async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
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
