//! A loopback token server for the identity tests: the Microsoft identity
//! platform's token endpoint, Azure IMDS and the App Service identity endpoint,
//! following their documented requests and answers.
//!
//! - `POST /{tenant}/oauth2/v2.0/token`: the client credentials grant
//!   ("Microsoft identity platform and the OAuth 2.0 client credentials flow").
//!   Checks the form: `grant_type=client_credentials`, `client_id`, `scope`, and
//!   either `client_secret` or `client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer`
//!   with `client_assertion`. Answers `{"token_type":"Bearer","expires_in":N,
//!   "ext_expires_in":N,"access_token":"..."}`, or the documented error shape
//!   `{"error":"invalid_client","error_description":"AADSTS7000215: ...\r\nTrace ID: ...",
//!   "error_codes":[7000215],"timestamp":"...","trace_id":"...","correlation_id":"...",
//!   "error_uri":"..."}` (`invalid_request` AADSTS900144 for a missing parameter,
//!   `invalid_request` AADSTS90002 for an unknown tenant, `unauthorized_client`
//!   AADSTS700016 for an unknown client, `unsupported_grant_type` AADSTS70003,
//!   `invalid_scope` AADSTS70011, `invalid_client` AADSTS7000215 for a wrong
//!   secret, AADSTS700213 for an assertion with no matching federated credential).
//! - `GET /metadata/identity/oauth2/token` (IMDS, "How to use managed identities
//!   for Azure resources on an Azure VM to acquire an access token"): needs
//!   `Metadata: true`, `api-version=2018-02-01`, `resource`, and optionally one of
//!   `client_id` / `object_id` / `msi_res_id`. Answers with every value a string
//!   (`"expires_in":"3599","expires_on":"1700000000"`, ...); errors are
//!   `{"error":"invalid_request","error_description":"Identity not found"}` (400).
//! - `GET /msi/token` (App Service, Functions, Container Apps, API version
//!   2019-08-01): needs `X-IDENTITY-HEADER`, `api-version=2019-08-01`,
//!   `resource`, optionally `client_id` / `principal_id` / `mi_res_id`. Answers
//!   `{"access_token":"...","expires_on":"1700000000","resource":"...","token_type":"Bearer","client_id":"..."}`.
//!
//! Access tokens are unsigned JWTs that Azurite's `--oauth basic` accepts
//! ([`unsigned_jwt`]): `aud` `https://storage.azure.com`, `iss`
//! `https://sts.windows.net/{tenant}/`, `iat`, `nbf`, `exp`.
//!
//! Faults ([`Fault`]) apply to the next requests: slow answers, malformed JSON,
//! an error status, an error whose description echoes what the client sent (to
//! prove the client redacts it).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

/// `client_assertion_type` of a JWT client assertion.
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// The scope a storage client asks the Entra endpoint for.
pub const STORAGE_SCOPE: &str = "https://storage.azure.com/.default";
/// The resource a storage client asks IMDS / App Service / the CLI for.
pub const STORAGE_RESOURCE: &str = "https://storage.azure.com";

/// Who the server knows.
#[derive(Debug, Clone)]
pub struct Config {
    /// The one tenant it serves.
    pub tenant_id: String,
    /// The one application it knows.
    pub client_id: String,
    /// That application's client secret.
    pub client_secret: String,
    /// The federated token (service account token) it accepts as `client_assertion`.
    pub assertion: String,
    /// The value IMDS-style requests must carry in `X-IDENTITY-HEADER` (App Service).
    pub identity_header: String,
    /// Whether a request without a user-assigned id gets the system-assigned identity.
    pub system_assigned: bool,
    /// The user-assigned identity: (client id, object id, resource id).
    pub user_assigned: (String, String, String),
    /// Lifetime of issued tokens (`expires_in`, and `exp` in the JWT).
    pub lifetime: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            tenant_id: "72f988bf-86f1-41af-91ab-2d7cd011db47".into(),
            client_id: "5f4b1c3e-1111-4a2b-9c3d-000000000001".into(),
            client_secret: format!("cs~{}", uuid::Uuid::new_v4().simple()),
            assertion: federated_token("system:serviceaccount:default:workload"),
            identity_header: format!("ih-{}", uuid::Uuid::new_v4().simple()),
            system_assigned: true,
            user_assigned: (
                "5f4b1c3e-2222-4a2b-9c3d-000000000002".into(),
                "9a8b7c6d-3333-4a2b-9c3d-000000000003".into(),
                "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/logs-writer".into(),
            ),
            lifetime: Duration::from_secs(3599),
        }
    }
}

/// A misbehaviour for the next requests.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Wait this long, then answer normally.
    Slow(Duration),
    /// Answer 200 with a body cut off in the middle of the JSON.
    MalformedJson,
    /// Answer this status with a `temporarily_unavailable` error body.
    Status(u16),
    /// Answer 400 `invalid_request` whose description quotes every secret the request carried.
    EchoSecrets,
}

/// One request as received.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// Method.
    pub method: Method,
    /// Path.
    pub path: String,
    /// Decoded query pairs.
    pub query: Vec<(String, String)>,
    /// Headers.
    pub headers: HeaderMap,
    /// Decoded form pairs of a form body.
    pub form: Vec<(String, String)>,
}

impl Recorded {
    /// A query parameter.
    pub fn query(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// A form field.
    pub fn form(&self, name: &str) -> Option<&str> {
        self.form
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Which endpoint a request went to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `POST /{tenant}/oauth2/v2.0/token`.
    Entra,
    /// `GET /metadata/identity/oauth2/token`.
    Imds,
    /// `GET /msi/token`.
    AppService,
    /// Anything else (404).
    Other,
}

struct State {
    config: Config,
    faults: VecDeque<Fault>,
    requests: Vec<(Endpoint, Recorded)>,
    issued: Vec<String>,
}

struct Shared {
    state: Mutex<State>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The running server; stops when dropped.
pub struct TokenServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: JoinHandle<()>,
}

impl TokenServer {
    /// Starts on `127.0.0.1`, on a free port.
    pub async fn start(config: Config) -> TokenServer {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("token server: bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("token server: local addr");
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                config,
                faults: VecDeque::new(),
                requests: Vec::new(),
                issued: Vec::new(),
            }),
        });
        let accept = tokio::spawn(accept_loop(listener, Arc::clone(&shared)));
        TokenServer {
            addr,
            shared,
            accept,
        }
    }

    /// `http://127.0.0.1:PORT`: the authority host, and the IMDS base.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The App Service identity endpoint (`IDENTITY_ENDPOINT`).
    pub fn app_service_endpoint(&self) -> String {
        format!("http://{}/msi/token", self.addr)
    }

    /// The configuration (secrets included: tests compare against them).
    pub fn config(&self) -> Config {
        self.shared.lock().config.clone()
    }

    /// Changes the lifetime of tokens issued from now on.
    pub fn set_lifetime(&self, lifetime: Duration) {
        self.shared.lock().config.lifetime = lifetime;
    }

    /// Changes the federated token accepted from now on (a rotation).
    pub fn set_assertion(&self, assertion: &str) {
        self.shared.lock().config.assertion = assertion.to_string();
    }

    /// Applies `fault` to the next `times` requests (after those already queued).
    pub fn inject(&self, fault: Fault, times: usize) {
        let mut s = self.shared.lock();
        for _ in 0..times {
            s.faults.push_back(fault.clone());
        }
    }

    /// Every request received, in order.
    pub fn requests(&self) -> Vec<(Endpoint, Recorded)> {
        self.shared.lock().requests.clone()
    }

    /// How many requests reached `endpoint`.
    pub fn count(&self, endpoint: Endpoint) -> usize {
        self.shared
            .lock()
            .requests
            .iter()
            .filter(|(e, _)| *e == endpoint)
            .count()
    }

    /// Every access token issued, in order.
    pub fn issued(&self) -> Vec<String> {
        self.shared.lock().issued.clone()
    }
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let mut connections = JoinSet::new();
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let shared = Arc::clone(&shared);
        connections.spawn(async move {
            let service = service_fn(move |req| {
                let shared = Arc::clone(&shared);
                async move { Ok::<_, std::convert::Infallible>(handle(&shared, req).await) }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn handle(shared: &Shared, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let query: Vec<(String, String)> = parts
        .uri
        .query()
        .map(|q| parse_form(q.as_bytes()))
        .unwrap_or_default();
    let is_form = parts
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    let form: Vec<(String, String)> = if is_form {
        parse_form(&body)
    } else {
        Vec::new()
    };
    let path = parts.uri.path().to_string();
    let endpoint = if path.ends_with("/oauth2/v2.0/token") {
        Endpoint::Entra
    } else if path == "/metadata/identity/oauth2/token" {
        Endpoint::Imds
    } else if path == "/msi/token" {
        Endpoint::AppService
    } else {
        Endpoint::Other
    };
    let recorded = Recorded {
        method: parts.method.clone(),
        path,
        query,
        headers: parts.headers.clone(),
        form,
    };
    let fault = {
        let mut s = shared.lock();
        s.requests.push((endpoint, recorded.clone()));
        s.faults.pop_front()
    };
    match fault {
        Some(Fault::Slow(d)) => tokio::time::sleep(d).await,
        Some(Fault::MalformedJson) => {
            return json(
                StatusCode::OK,
                r#"{"token_type":"Bearer","expires_in":3599,"access_tok"#.into(),
            )
        }
        Some(Fault::Status(code)) => {
            let status = StatusCode::from_u16(code).expect("token server: valid status");
            return entra_error(
                status,
                "temporarily_unavailable",
                50053,
                "The service is temporarily unavailable.",
            );
        }
        Some(Fault::EchoSecrets) => {
            let mut echoed: Vec<String> = recorded.form.iter().map(|(_, v)| v.clone()).collect();
            for h in ["x-identity-header", "authorization"] {
                if let Some(v) = recorded.headers.get(h).and_then(|v| v.to_str().ok()) {
                    echoed.push(v.to_string());
                }
            }
            let msg = format!(
                "AADSTS900144: Echoing what you sent: {}",
                echoed.join(" | ")
            );
            return entra_error(StatusCode::BAD_REQUEST, "invalid_request", 900144, &msg);
        }
        None => {}
    }
    let mut s = shared.lock();
    let answer = match endpoint {
        Endpoint::Entra => entra(&mut s, &recorded),
        Endpoint::Imds => imds(&mut s, &recorded),
        Endpoint::AppService => app_service(&mut s, &recorded),
        Endpoint::Other => {
            Err(json(StatusCode::NOT_FOUND, r#"{"error":"not_found"}"#.into()).into())
        }
    };
    answer.unwrap_or_else(|e| *e)
}

type Answer = Result<Response<Full<Bytes>>, Box<Response<Full<Bytes>>>>;

fn entra(s: &mut State, r: &Recorded) -> Answer {
    let c = s.config.clone();
    if r.method != Method::POST {
        return Err(entra_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "invalid_request",
            900561,
            "AADSTS900561: The endpoint only accepts POST requests.",
        )
        .into());
    }
    let tenant = r
        .path
        .trim_start_matches('/')
        .split('/')
        .next()
        .unwrap_or_default();
    if tenant != c.tenant_id {
        return Err(entra_error(StatusCode::BAD_REQUEST, "invalid_request", 90002, &format!("AADSTS90002: Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud.")).into());
    }
    let missing = |name: &str| {
        entra_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            900144,
            &format!(
                "AADSTS900144: The request body must contain the following parameter: '{name}'."
            ),
        )
    };
    let grant = r.form("grant_type").ok_or_else(|| missing("grant_type"))?;
    if grant != "client_credentials" {
        return Err(entra_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            70003,
            "AADSTS70003: The app requested an unsupported grant type.",
        )
        .into());
    }
    let client_id = r.form("client_id").ok_or_else(|| missing("client_id"))?;
    if client_id != c.client_id {
        return Err(entra_error(StatusCode::BAD_REQUEST, "unauthorized_client", 700016, &format!("AADSTS700016: Application with identifier '{client_id}' was not found in the directory.")).into());
    }
    let scope = r.form("scope").ok_or_else(|| missing("scope"))?;
    if scope != STORAGE_SCOPE {
        return Err(entra_error(StatusCode::BAD_REQUEST, "invalid_scope", 70011, "AADSTS70011: The provided request must include a 'scope' input parameter. The provided value for the input parameter 'scope' is not valid.").into());
    }
    match (r.form("client_secret"), r.form("client_assertion")) {
        (Some(secret), None) => {
            if secret != c.client_secret {
                return Err(entra_error(StatusCode::UNAUTHORIZED, "invalid_client", 7000215, &format!("AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{}'.", c.client_id)).into());
            }
        }
        (None, Some(assertion)) => {
            if r.form("client_assertion_type") != Some(JWT_BEARER) {
                return Err(entra_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    700023,
                    "AADSTS700023: The client_assertion_type is not supported.",
                )
                .into());
            }
            if assertion != c.assertion {
                return Err(entra_error(StatusCode::BAD_REQUEST, "invalid_client", 700213, "AADSTS700213: No matching federated identity record found for presented assertion subject.").into());
            }
        }
        (Some(_), Some(_)) => {
            return Err(entra_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                9002313,
                "AADSTS9002313: Invalid request. Request is malformed or invalid.",
            )
            .into());
        }
        (None, None) => {
            return Err(entra_error(StatusCode::UNAUTHORIZED, "invalid_client", 7000218, "AADSTS7000218: The request body must contain the following parameter: 'client_assertion' or 'client_secret'.").into());
        }
    }
    let secs = c.lifetime.as_secs();
    let token = issue(s);
    Ok(json(
        StatusCode::OK,
        serde_json::json!({
            "token_type": "Bearer",
            "expires_in": secs,
            "ext_expires_in": secs,
            "access_token": token,
        })
        .to_string(),
    ))
}

fn imds(s: &mut State, r: &Recorded) -> Answer {
    let c = s.config.clone();
    let bad = |desc: &str| {
        json(
            StatusCode::BAD_REQUEST,
            serde_json::json!({"error": "invalid_request", "error_description": desc}).to_string(),
        )
    };
    if r.method != Method::GET {
        return Err(bad("Only GET is supported").into());
    }
    if r.headers.get("metadata").and_then(|v| v.to_str().ok()) != Some("true") {
        return Err(bad("Required metadata header not specified").into());
    }
    if r.query("api-version") != Some("2018-02-01") {
        return Err(bad("Invalid api-version").into());
    }
    let resource = r
        .query("resource")
        .ok_or_else(|| bad("Required query variable 'resource' is missing"))?;
    if resource != STORAGE_RESOURCE {
        return Err(bad("AADSTS500011: The resource principal was not found in the tenant").into());
    }
    let (cid, oid, rid) = &c.user_assigned;
    let client_id = match (
        r.query("client_id"),
        r.query("object_id"),
        r.query("msi_res_id"),
    ) {
        (None, None, None) if c.system_assigned => "system-assigned".to_string(),
        (Some(x), None, None) if x == cid => cid.clone(),
        (None, Some(x), None) if x == oid => cid.clone(),
        (None, None, Some(x)) if x == rid => cid.clone(),
        _ => return Err(bad("Identity not found").into()),
    };
    let secs = c.lifetime.as_secs();
    let now = now_secs();
    let token = issue(s);
    // IMDS sends every value as a string.
    Ok(json(
        StatusCode::OK,
        serde_json::json!({
            "access_token": token,
            "client_id": client_id,
            "expires_in": secs.to_string(),
            "expires_on": (now + secs).to_string(),
            "ext_expires_in": secs.to_string(),
            "not_before": now.to_string(),
            "resource": resource,
            "token_type": "Bearer",
        })
        .to_string(),
    ))
}

fn app_service(s: &mut State, r: &Recorded) -> Answer {
    let c = s.config.clone();
    let bad = |status: StatusCode, msg: &str| {
        json(
            status,
            serde_json::json!({"statusCode": status.as_u16(), "message": msg, "correlationId": uuid::Uuid::new_v4().to_string()}).to_string(),
        )
    };
    if r.headers
        .get("x-identity-header")
        .and_then(|v| v.to_str().ok())
        != Some(c.identity_header.as_str())
    {
        return Err(bad(
            StatusCode::UNAUTHORIZED,
            "The X-IDENTITY-HEADER header is missing or does not match.",
        )
        .into());
    }
    if r.query("api-version") != Some("2019-08-01") {
        return Err(bad(StatusCode::BAD_REQUEST, "The api-version is not supported.").into());
    }
    let resource = r.query("resource").ok_or_else(|| {
        bad(
            StatusCode::BAD_REQUEST,
            "The resource parameter is missing.",
        )
    })?;
    if resource != STORAGE_RESOURCE {
        return Err(bad(StatusCode::BAD_REQUEST, "The resource was not found.").into());
    }
    let (cid, oid, rid) = &c.user_assigned;
    let client_id = match (
        r.query("client_id"),
        r.query("principal_id"),
        r.query("mi_res_id"),
    ) {
        (None, None, None) if c.system_assigned => "system-assigned".to_string(),
        (Some(x), None, None) if x == cid => cid.clone(),
        (None, Some(x), None) if x == oid => cid.clone(),
        (None, None, Some(x)) if x == rid => cid.clone(),
        _ => {
            return Err(bad(
                StatusCode::BAD_REQUEST,
                "Unable to load the proper Managed Identity.",
            )
            .into())
        }
    };
    let expires_on = now_secs() + c.lifetime.as_secs();
    let token = issue(s);
    Ok(json(
        StatusCode::OK,
        serde_json::json!({
            "access_token": token,
            "expires_on": expires_on.to_string(),
            "resource": resource,
            "token_type": "Bearer",
            "client_id": client_id,
        })
        .to_string(),
    ))
}

/// `application/x-www-form-urlencoded` pairs (also a URL query): `+` is a
/// space, `%XX` a byte.
pub fn parse_form(input: &[u8]) -> Vec<(String, String)> {
    fn decode(part: &[u8]) -> String {
        let mut out = Vec::with_capacity(part.len());
        let mut i = 0;
        while i < part.len() {
            match part[i] {
                b'+' => out.push(b' '),
                b'%' if i + 2 < part.len() => {
                    let hex = std::str::from_utf8(&part[i + 1..i + 3]).ok();
                    match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                        Some(b) => {
                            out.push(b);
                            i += 2;
                        }
                        None => out.push(b'%'),
                    }
                }
                b => out.push(b),
            }
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    }
    input
        .split(|&b| b == b'&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let mut kv = p.splitn(2, |&b| b == b'=');
            let k = kv.next().unwrap_or_default();
            let v = kv.next().unwrap_or_default();
            (decode(k), decode(v))
        })
        .collect()
}

fn issue(s: &mut State) -> String {
    let token = unsigned_jwt(&s.config.tenant_id, s.config.lifetime);
    s.issued.push(token.clone());
    token
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

/// An unsigned JWT for storage that Azurite's `--oauth basic` accepts: `aud`
/// `https://storage.azure.com`, `iss` `https://sts.windows.net/{tenant}/`, valid
/// from a minute ago for `lifetime`.
pub fn unsigned_jwt(tenant_id: &str, lifetime: Duration) -> String {
    let now = now_secs();
    let claims = serde_json::json!({
        "aud": STORAGE_RESOURCE,
        "iss": format!("https://sts.windows.net/{tenant_id}/"),
        "iat": now - 60,
        "nbf": now - 60,
        "exp": now + lifetime.as_secs(),
        "tid": tenant_id,
        "oid": "9a8b7c6d-3333-4a2b-9c3d-000000000003",
        "sub": "9a8b7c6d-3333-4a2b-9c3d-000000000003",
        "uti": uuid::Uuid::new_v4().simple().to_string(),
        "ver": "1.0",
    });
    jwt(&serde_json::json!({"alg": "none", "typ": "JWT"}), &claims)
}

/// A Kubernetes-style projected service account token (what the kubelet
/// writes into `AZURE_FEDERATED_TOKEN_FILE`), for the workload identity tests.
pub fn federated_token(subject: &str) -> String {
    let now = now_secs();
    let claims = serde_json::json!({
        "aud": ["api://AzureADTokenExchange"],
        "iss": "https://oidc.prod-aks.azure.com/00000000-0000-0000-0000-000000000000/",
        "sub": subject,
        "iat": now,
        "nbf": now,
        "exp": now + 3600,
        "jti": uuid::Uuid::new_v4().to_string(),
    });
    jwt(&serde_json::json!({"alg": "RS256", "typ": "JWT"}), &claims)
}

fn jwt(header: &serde_json::Value, claims: &serde_json::Value) -> String {
    let b64 = |v: &serde_json::Value| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string().as_bytes())
    };
    let sig =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(uuid::Uuid::new_v4().as_bytes());
    format!("{}.{}.{sig}", b64(header), b64(claims))
}

fn json(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header(
            http::header::CONTENT_TYPE,
            "application/json; charset=utf-8",
        )
        .header("x-ms-request-id", uuid::Uuid::new_v4().to_string())
        .header(http::header::CACHE_CONTROL, "no-store, no-cache")
        .body(Full::new(Bytes::from(body)))
        .expect("token server: valid response")
}

/// The Microsoft identity platform's error answer.
fn entra_error(
    status: StatusCode,
    error: &str,
    code: u32,
    description: &str,
) -> Response<Full<Bytes>> {
    let trace = uuid::Uuid::new_v4().to_string();
    let correlation = uuid::Uuid::new_v4().to_string();
    let ts = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    json(
        status,
        serde_json::json!({
            "error": error,
            "error_description": format!("{description}\r\nTrace ID: {trace}\r\nCorrelation ID: {correlation}\r\nTimestamp: {ts}"),
            "error_codes": [code],
            "timestamp": ts,
            "trace_id": trace,
            "correlation_id": correlation,
            "error_uri": format!("https://login.microsoftonline.com/error?code={code}"),
        })
        .to_string(),
    )
}
