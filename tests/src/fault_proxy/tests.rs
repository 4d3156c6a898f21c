//! Unit tests of the fault proxy in front of a tiny recording upstream: the
//! harness here, the actions and the plans in the submodules.

mod actions;
mod plans;

use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::task::JoinSet;

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
                        Ok::<_, std::convert::Infallible>(Upstream::answer(&recorder, req).await)
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

    async fn answer(recorder: &Mutex<Vec<Seen>>, req: Request<Incoming>) -> Response<Full<Bytes>> {
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
#[should_panic(expected = "must be on loopback")]
async fn refuses_a_non_loopback_upstream() {
    let _ = FaultProxy::start("http://192.0.2.1:80").await;
}
