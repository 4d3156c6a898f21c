//! An in-process test server for the Azure Data Lake Storage Gen2 REST API
//! (the DFS endpoint), on plain HTTP at 127.0.0.1, path style
//! (`/{account}/{filesystem}/{path}`), with deterministic fault injection.
//!
//! No emulator speaks the DFS dialect (Azurite answers `?resource=file` and
//! `?action=append` with an empty 400), so the client's DFS requests are tested
//! against this server. It keeps everything in memory and implements the
//! hierarchical-namespace semantics of the operations our client uses.
//!
//! # What each behaviour follows
//! Microsoft's reference pages (generated from the `DataLakeStorage.json` REST
//! specification in `Azure/azure-rest-api-specs`), under
//! `https://learn.microsoft.com/rest/api/storageservices/datalakestoragegen2/`:
//! - `filesystem/create`: `PUT ?resource=filesystem` → 201 with `ETag`,
//!   `Last-Modified`, `x-ms-namespace-enabled`; 409 `FilesystemAlreadyExists`;
//!   the name pattern `^[$a-z0-9](?!.*--)[-a-z0-9]{1,61}[a-z0-9]$`
//!   (400 `InvalidResourceName`).
//! - `filesystem/delete` → 202; `filesystem/get-properties` (HEAD) and
//!   `filesystem/set-properties` (PATCH) → 200.
//! - `path/list`: `GET /{fs}?resource=filesystem&recursive=..` → 200
//!   `{"paths":[...]}`; `recursive` is required; `directory` must exist (404
//!   `PathNotFound`); `maxResults` at most 5 000; `x-ms-continuation` while more
//!   remain. Entries use the wire format the service really sends (seen in
//!   Microsoft's SDK test recordings): every value is a JSON *string*
//!   (`"contentLength":"42"`, `"isDirectory":"true"` present for directories only,
//!   `"creationTime"` as a Windows file time, `"etag"` unquoted).
//! - `path/create`: `PUT ?resource=file|directory` → 201 with `ETag`,
//!   `Last-Modified`, `Content-Length: 0`; missing parents are created; an
//!   existing file is overwritten (truncated) unless a condition says otherwise
//!   (an existing directory keeps its children); a body is 400
//!   `ContentLengthMustBeZero`;
//!   `If-None-Match: *` on an existing path → 409 `PathAlreadyExists`; other
//!   failed conditions → 412 `ConditionNotMet`; a file where a directory is
//!   expected (or the reverse) → 409 `PathConflict`. `x-ms-properties`
//!   (`n1=base64,n2=base64`) and `x-ms-content-type` / `-encoding` / `-language` /
//!   `-disposition` / `x-ms-cache-control` are stored.
//! - `path/update`: `PATCH ?action=append&position=N` → 202, `?action=flush&position=N`
//!   → 200, `?action=setProperties` → 200 (see the decisions below);
//!   conditional headers are "invalid for Append Data" (400 `UnsupportedHeader`).
//! - `path/read`: `GET` → 200, or 206 with `Content-Range` for `Range` /
//!   `x-ms-range` (the latter wins), 416 `InvalidRange` when the start is at or
//!   past the end ("Specifying the range header for Blob service operations");
//!   `x-ms-range-get-content-md5: true` adds the range's `Content-MD5`.
//! - `path/get-properties`: `HEAD` → 200 with `Content-Length`, `ETag`,
//!   `Last-Modified`, `Content-Type`, `x-ms-resource-type`, `x-ms-properties`,
//!   owner/group/permissions; `?action=getStatus` leaves out user properties.
//! - `path/delete` → 200; a non-empty directory without `recursive=true` → 409
//!   `DirectoryNotEmpty`.
//! - Errors: the `ErrorResponse` list of the specification (status, code and
//!   message), plus "Common REST API error codes" for authentication
//!   (401 `NoAuthenticationInformation`, 400 `InvalidAuthenticationInfo`,
//!   403 `AuthenticationFailed`) and Blob's 400 `Md5Mismatch` / `InvalidMd5`.
//!   Every error has the `x-ms-error-code` header and, except on HEAD and 304,
//!   a body `{"error":{"code":"..","message":"..\nRequestId:..\nTime:.."}}` with
//!   `Content-Type: application/json;charset=utf-8`, as the service sends.
//! - Conditional headers (`If-Match`, `If-None-Match`, `If-Modified-Since`,
//!   `If-Unmodified-Since`) per "Specifying conditional headers for Blob service
//!   operations": on reads a failed `If-None-Match` / `If-Modified-Since` is 304,
//!   otherwise 412 `ConditionNotMet`.
//!
//! Every response has `x-ms-request-id` (a fresh UUID), `x-ms-version` (the
//! request's, else `2009-09-19` as the service does for unversioned requests),
//! `Date` and `Server`, and echoes `x-ms-client-request-id`.
//!
//! # Requests it insists on
//! An `Authorization` header of the form `SharedKey {account}:{signature}` (the
//! signature must be base64 of 32 bytes and `x-ms-date` or `Date` must be present;
//! the signature itself is **not** verified: signing is checked against Azurite
//! and Microsoft's SDK vectors elsewhere) or `Bearer {token}`; an `x-ms-version`
//! header of the form `YYYY-MM-DD`, no older than `2018-11-09` (400
//! `MissingRequiredHeader` / `InvalidHeaderValue` / `UnsupportedRestVersion`).
//! Query parameter names are case-insensitive, values are percent-decoded with
//! `+` read as a space (so a continuation token must be percent-encoded); a
//! parameter an operation does not document is 400 `UnsupportedQueryParameter`.
//! The path is percent-decoded once and split on `/`; empty segments are 400
//! `InvalidResourceName` (one trailing `/` is ignored).
//!
//! # Decisions where the documents are silent or loose
//! The `position` parameter of Path - Update reads: "the position where the data
//! is to be appended. Uploaded data is not immediately flushed [...]. To flush,
//! the previously uploaded data must be contiguous, the position parameter must
//! be [...] equal to the length of the file after all data has been written, and
//! there must not be a request entity body". From that:
//! - **Append** stores its body as an uncommitted chunk keyed by `position`; it is
//!   invisible to reads, properties and listings. Appends at any position are
//!   accepted (the spec allows parallel, out-of-order uploads); contiguity is
//!   checked at flush. An append at a position that already holds a chunk
//!   *replaces* that chunk, so re-sending an append whose response was lost is
//!   harmless. An empty body is accepted and stores nothing. `Content-MD5`, if
//!   present, must match the body (400 `Md5Mismatch`; malformed → 400
//!   `InvalidMd5`); `x-ms-content-crc64` is accepted **without** verification.
//!   `flush=true` on an append appends then flushes at `position + length`,
//!   atomically (on `InvalidFlushPosition` nothing is stored).
//! - **Flush** at `N` (body must be empty, else 400 `ContentLengthMustBeZero`):
//!   with `L` the committed length, `N < L` is 400 `InvalidFlushPosition`;
//!   otherwise the chunks starting at `L`, then at the end of each chunk in turn,
//!   must cover `[L, N)` (a chunk may run past `N`; only its head is committed),
//!   else 400 `InvalidFlushPosition` and nothing changes. Afterwards the file is
//!   exactly `[0, N)`. Uncommitted data is then dropped, or with
//!   `retainUncommittedData=true` the chunks at or after `N` (and the tail of a
//!   chunk straddling `N`) are kept. A flush that commits no byte and changes no
//!   content header (e.g. a repeated flush at the current length) keeps the
//!   `ETag` and `Last-Modified`: a retried flush is a harmless no-op 200. `close`
//!   is accepted and has no effect (there are no change notifications).
//!   `x-ms-content-*` headers on a flush replace only the headers given.
//! - Set properties replaces all user properties (removes them when
//!   `x-ms-properties` is absent, as documented) and the content headers given.
//! - Reading a directory gives 200 with an empty body and
//!   `x-ms-resource-type: directory`. A malformed `Range` is ignored (RFC 9110);
//!   a malformed `x-ms-range` is 400 `InvalidHeaderValue`.
//! - A directory delete without `recursive` is treated as `recursive=false`.
//! - Listing with `directory` naming a file lists that file alone. Listings are
//!   depth first, each level in byte order of the names. The continuation token
//!   is opaque standard base64 (it can hold `+`, `/`, `=`).
//! - Deleting a filesystem is immediate (no 30 s "being deleted" period).
//! - Not implemented: rename (`x-ms-rename-source` → 400 `UnsupportedHeader`),
//!   leases (any `x-ms-lease-id` → 412 `LeaseNotPresent`; `POST` → 405
//!   `UnsupportedHttpVerb`), access control (accepted values are not stored;
//!   permissions are the documented defaults after umask 0027), account
//!   operations (`/{account}` → 400 `InvalidUri`), SAS.
//!
//! # Faults
//! [`DfsServer::inject`] queues a [`Fault`] for the next `times` requests that
//! its [`Matcher`] selects (first queued, first used; one fault per request;
//! no randomness). Requests are always recorded, faulted or not.
//!
//! # Example
//! ```no_run
//! use adls_tests::dfs_server::{DfsServer, Fault, Matcher, Options};
//! use http::Method;
//!
//! # async fn demo() {
//! let server = DfsServer::start_with(Options { page_size: 2, ..Options::default() }).await;
//! let endpoint = server.endpoint(); // http://127.0.0.1:PORT/devstoreaccount1
//! // The next flush is applied, but its answer is lost.
//! server.inject(Fault::DropResponseAfterApply {
//!     times: 1,
//!     matching: Matcher::any().method(Method::PATCH).action("flush"),
//! });
//! // ... drive the client under test against `endpoint`, then:
//! assert_eq!(server.file_contents("logs", "a/b.jsonl").as_deref(), Some(&b"..."[..]));
//! assert!(server.requests().iter().any(|r| r.query("action").as_deref() == Some("flush")));
//! # let _ = endpoint;
//! # }
//! ```

use std::collections::{BTreeMap, VecDeque};
use std::convert::Infallible;
use std::fmt::Display;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Method, Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use md5::{Digest, Md5};
use serde_json::{json, Map, Value};
use time::format_description::BorrowedFormatItem;
use time::macros::format_description;
use time::{OffsetDateTime, PrimitiveDateTime};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::task::{JoinHandle, JoinSet};

/// The account name the server answers for unless [`Options::account`] says otherwise.
pub const DEFAULT_ACCOUNT: &str = "devstoreaccount1";

/// The most entries one list call returns ("If omitted or greater than 5,000,
/// the response will include up to 5,000 items").
pub const MAX_RESULTS: usize = 5000;

/// Oldest `x-ms-version` that has the DFS API.
const OLDEST_DFS_VERSION: &str = "2018-11-09";
/// Version the service reports for a request without `x-ms-version`.
const UNVERSIONED: &str = "2009-09-19";
const SERVER: &str = "Windows-Azure-HDFS/1.0 Microsoft-HTTPAPI/2.0";
const JSON_TYPE: &str = "application/json;charset=utf-8";
const DEFAULT_CONTENT_TYPE: &str = "application/octet-stream";
const BEARER_CHALLENGE: &str = "Bearer authorization_uri=https://login.microsoftonline.com/common/oauth2/authorize resource_id=https://storage.azure.com";
const TOKEN_PREFIX: &str = "dfs-test-server:";
/// Owner and group the service reports when nothing was set.
const SUPERUSER: &str = "$superuser";
/// 0777 and 0666 after the default umask 0027 (Path - Create, `x-ms-umask`).
const DIR_PERMISSIONS: &str = "rwxr-x---";
const FILE_PERMISSIONS: &str = "rw-r-----";
const DIR_ACL: &str = "user::rwx,group::r-x,other::---";
const FILE_ACL: &str = "user::rw-,group::r--,other::---";

const HTTP_DATE: &[BorrowedFormatItem<'static>] = format_description!(
    "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
);
const ISO_TIME: &[BorrowedFormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:7]Z");

// ---------------------------------------------------------------------------
// Public API
// ---------------------------------------------------------------------------

/// Settings for [`DfsServer::start_with`].
#[derive(Debug, Clone)]
pub struct Options {
    /// Account name expected as the first path segment and in `SharedKey` headers.
    pub account: String,
    /// Largest page a list call returns, whatever `maxResults` asks (capped at
    /// [`MAX_RESULTS`]); set it small to exercise continuation tokens.
    pub page_size: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            account: DEFAULT_ACCOUNT.to_owned(),
            page_size: MAX_RESULTS,
        }
    }
}

/// Selects which requests a [`Fault`] applies to; the default matches every request.
///
/// `action` and `resource` compare with the (decoded) query parameters of the
/// same names, ignoring ASCII case.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Matcher {
    /// HTTP method, if it must match.
    pub method: Option<Method>,
    /// Value of the `action` query parameter (`append`, `flush`, `setProperties`, ...).
    pub action: Option<&'static str>,
    /// Value of the `resource` query parameter (`filesystem`, `file`, `directory`).
    pub resource: Option<&'static str>,
}

impl Matcher {
    /// Matches every request.
    pub fn any() -> Self {
        Matcher::default()
    }

    /// Also requires this HTTP method.
    pub fn method(mut self, method: Method) -> Self {
        self.method = Some(method);
        self
    }

    /// Also requires `?action=<action>`.
    pub fn action(mut self, action: &'static str) -> Self {
        self.action = Some(action);
        self
    }

    /// Also requires `?resource=<resource>`.
    pub fn resource(mut self, resource: &'static str) -> Self {
        self.resource = Some(resource);
        self
    }

    fn matches(&self, method: &Method, action: Option<&str>, resource: Option<&str>) -> bool {
        let same = |want: Option<&str>, got: Option<&str>| match want {
            None => true,
            Some(w) => got.is_some_and(|g| g.eq_ignore_ascii_case(w)),
        };
        self.method.as_ref().is_none_or(|m| m == method)
            && same(self.action, action)
            && same(self.resource, resource)
    }
}

/// A misbehaviour to inject for the next `times` requests that `matching` selects.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Answer with this status and error code (JSON error body, `x-ms-error-code`)
    /// **without** applying the operation, e.g. 503 `ServerBusy`, 500
    /// `InternalError`, 429 with `retry_after`.
    Status {
        /// HTTP status code (must be a valid one).
        status: u16,
        /// Value of `x-ms-error-code` and of the body's `code`.
        code: &'static str,
        /// When set, sent as `Retry-After` (whole seconds, rounded up) and
        /// `x-ms-retry-after-ms`.
        retry_after: Option<Duration>,
        /// How many matching requests get this answer.
        times: usize,
        /// Which requests count.
        matching: Matcher,
    },
    /// Apply the operation, then close the connection without answering: the
    /// client cannot tell whether it happened (the "ambiguous" case).
    DropResponseAfterApply {
        /// How many matching requests get this treatment.
        times: usize,
        /// Which requests count.
        matching: Matcher,
    },
    /// Read the request, then reset the connection (TCP RST) without applying
    /// the operation or answering.
    ResetBeforeApply {
        /// How many matching requests get this treatment.
        times: usize,
        /// Which requests count.
        matching: Matcher,
    },
    /// Wait `delay`, then apply the operation and answer. The operation is
    /// applied even if the client gave up meanwhile, as a slow server would.
    Delay {
        /// How long to wait before applying the operation.
        delay: Duration,
        /// How many matching requests are delayed.
        times: usize,
        /// Which requests count.
        matching: Matcher,
    },
}

impl Fault {
    fn times_mut(&mut self) -> &mut usize {
        match self {
            Fault::Status { times, .. }
            | Fault::DropResponseAfterApply { times, .. }
            | Fault::ResetBeforeApply { times, .. }
            | Fault::Delay { times, .. } => times,
        }
    }

    fn matcher(&self) -> &Matcher {
        match self {
            Fault::Status { matching, .. }
            | Fault::DropResponseAfterApply { matching, .. }
            | Fault::ResetBeforeApply { matching, .. }
            | Fault::Delay { matching, .. } => matching,
        }
    }
}

/// One request as the server received it.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    /// HTTP method.
    pub method: Method,
    /// Request target exactly as sent (path and query, still percent-encoded).
    pub uri: Uri,
    /// Request headers as sent.
    pub headers: HeaderMap,
    /// Whole request body.
    pub body: Bytes,
}

impl RecordedRequest {
    /// The decoded value of query parameter `name` (case-insensitive), if present.
    pub fn query(&self, name: &str) -> Option<String> {
        Query::parse(self.uri.query())
            .ok()
            .and_then(|q| q.get(name).map(str::to_owned))
    }

    /// The value of header `name`, if present and visible ASCII.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// The running server; it stops (closing every connection) when dropped.
pub struct DfsServer {
    addr: SocketAddr,
    account: String,
    shared: Arc<Shared>,
    accept_task: JoinHandle<()>,
}

impl DfsServer {
    /// Starts a server with default [`Options`] on `127.0.0.1`, on a free port.
    ///
    /// # Panics
    /// If no loopback port can be bound.
    pub async fn start() -> DfsServer {
        DfsServer::start_with(Options::default()).await
    }

    /// Starts a server with these options on `127.0.0.1`, on a free port.
    ///
    /// # Panics
    /// If no loopback port can be bound.
    pub async fn start_with(options: Options) -> DfsServer {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("DFS test server: bind 127.0.0.1:0");
        let addr = listener
            .local_addr()
            .expect("DFS test server: local address of the listener");
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                account: options.account.clone(),
                page_size: options.page_size.clamp(1, MAX_RESULTS),
                filesystems: BTreeMap::new(),
                etag_seq: 0x000B_2D05_E000_0000,
            }),
            faults: Mutex::new(VecDeque::new()),
            requests: Mutex::new(Vec::new()),
            connections: AtomicU64::new(0),
        });
        let accept_task = tokio::spawn(accept_loop(listener, Arc::clone(&shared)));
        DfsServer {
            addr,
            account: options.account,
            shared,
            accept_task,
        }
    }

    /// Base URL of the account, path style: `http://127.0.0.1:PORT/{account}`.
    pub fn endpoint(&self) -> String {
        format!("http://{}/{}", self.addr, self.account)
    }

    /// Socket address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Queues a fault; see [`Fault`]. A fault with `times == 0` is ignored.
    ///
    /// # Panics
    /// If a [`Fault::Status`] has a `status` that is not a valid HTTP status.
    pub fn inject(&self, mut fault: Fault) {
        if let Fault::Status { status, .. } = &fault {
            StatusCode::from_u16(*status).expect("Fault::Status needs a valid HTTP status code");
        }
        if *fault.times_mut() > 0 {
            lock(&self.shared.faults).push_back(fault);
        }
    }

    /// Removes every queued fault.
    pub fn clear_faults(&self) {
        lock(&self.shared.faults).clear();
    }

    /// How many faulted requests are still queued (sum of the remaining `times`).
    pub fn pending_faults(&self) -> usize {
        lock(&self.shared.faults)
            .iter_mut()
            .map(|f| *f.times_mut())
            .sum()
    }

    /// Every request received so far, in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.shared.requests).clone()
    }

    /// How many TCP connections the server has accepted.
    pub fn connections_accepted(&self) -> u64 {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// The committed (flushed) content of a file, or `None` when the filesystem
    /// or file does not exist; `path` is decoded, `/`-separated. Lets a test check
    /// the server's state without going through the client under test.
    pub fn file_contents(&self, filesystem: &str, path: &str) -> Option<Bytes> {
        let key: Vec<String> = path
            .split('/')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        let state = lock(&self.shared.state);
        match &state.filesystems.get(filesystem)?.paths.get(&key)?.kind {
            Kind::File { data, .. } => Some(Bytes::copy_from_slice(data)),
            Kind::Directory => None,
        }
    }
}

impl Drop for DfsServer {
    fn drop(&mut self) {
        // Aborting the accept task drops its JoinSet, which aborts every connection task.
        self.accept_task.abort();
    }
}

// ---------------------------------------------------------------------------
// Connections and faults
// ---------------------------------------------------------------------------

struct Shared {
    state: Mutex<State>,
    faults: Mutex<VecDeque<Fault>>,
    requests: Mutex<Vec<RecordedRequest>>,
    connections: AtomicU64,
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

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
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

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
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

type Resp = Response<Full<Bytes>>;

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

// ---------------------------------------------------------------------------
// Responses and errors
// ---------------------------------------------------------------------------

/// Per-request facts every answer carries.
struct Ctx {
    request_id: String,
    version: String,
    client_request_id: Option<HeaderValue>,
    head: bool,
}

impl Ctx {
    fn new(req: &RecordedRequest) -> Ctx {
        let version = req
            .header("x-ms-version")
            .filter(|v| is_version(v))
            .unwrap_or(UNVERSIONED)
            .to_owned();
        Ctx {
            request_id: uuid::Uuid::new_v4().to_string(),
            version,
            client_request_id: req.headers.get("x-ms-client-request-id").cloned(),
            head: req.method == Method::HEAD,
        }
    }

    fn builder(&self, status: StatusCode) -> http::response::Builder {
        let mut b = Response::builder()
            .status(status)
            .header(header::DATE, http_date(OffsetDateTime::now_utc()))
            .header(header::SERVER, SERVER)
            .header("x-ms-request-id", self.request_id.as_str())
            .header("x-ms-version", self.version.as_str());
        if let Some(id) = &self.client_request_id {
            b = b.header("x-ms-client-request-id", id.clone());
        }
        b
    }
}

fn finish(builder: http::response::Builder, body: Bytes) -> Resp {
    builder.body(Full::new(body)).unwrap_or_else(|_| {
        let mut r = Response::new(Full::new(Bytes::new()));
        *r.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
        r
    })
}

/// An answer with no body and `Content-Length: 0`.
fn empty(builder: http::response::Builder) -> Resp {
    finish(builder.header(header::CONTENT_LENGTH, "0"), Bytes::new())
}

#[derive(Debug)]
struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    headers: Vec<(&'static str, String)>,
}

impl ApiError {
    fn new(status: u16, code: &'static str) -> ApiError {
        ApiError {
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            code,
            message: documented_message(code).to_owned(),
            headers: Vec::new(),
        }
    }

    /// Adds a `Name:value` line to the message, as the service does for details.
    fn detail(mut self, name: &str, value: impl Display) -> ApiError {
        self.message.push_str(&format!("\n{name}:{value}"));
        self
    }

    fn header(mut self, name: &'static str, value: String) -> ApiError {
        self.headers.push((name, value));
        self
    }
}

fn error_response(ctx: &Ctx, e: ApiError) -> Resp {
    let mut b = ctx.builder(e.status).header("x-ms-error-code", e.code);
    for (name, value) in &e.headers {
        b = b.header(*name, value.as_str());
    }
    if ctx.head || e.status == StatusCode::NOT_MODIFIED {
        return finish(b, Bytes::new());
    }
    let message = format!(
        "{}\nRequestId:{}\nTime:{}",
        e.message,
        ctx.request_id,
        iso_time(OffsetDateTime::now_utc())
    );
    let body = json!({ "error": { "code": e.code, "message": message } }).to_string();
    finish(
        b.header(header::CONTENT_TYPE, JSON_TYPE)
            .header(header::CONTENT_LENGTH, body.len()),
        Bytes::from(body),
    )
}

/// Messages of the specification's `ErrorResponse` list and the common error codes.
fn documented_message(code: &str) -> &'static str {
    match code {
        "AuthenticationFailed" => "Server failed to authenticate the request. Make sure the value of Authorization header is formed correctly including the signature.",
        "ConditionNotMet" => "The condition specified using HTTP conditional header(s) is not met.",
        "ContentLengthMustBeZero" => "The Content-Length request header must be zero.",
        "DirectoryNotEmpty" => "The recursive query parameter value must be true to delete a non-empty directory.",
        "FilesystemAlreadyExists" => "The specified filesystem already exists.",
        "FilesystemNotFound" => "The specified filesystem does not exist.",
        "InternalError" => "The server encountered an internal error. Please retry the request.",
        "InvalidAuthenticationInfo" => "Authentication information is not given in the correct format. Check the value of Authorization header.",
        "InvalidFlushPosition" => "The uploaded data is not contiguous or the position query parameter value is not equal to the length of the file after appending the uploaded data.",
        "InvalidHeaderValue" => "The value for one of the HTTP headers is not in the correct format.",
        "InvalidInput" => "One of the request inputs is not valid.",
        "InvalidMd5" => "The MD5 value specified in the request is invalid. The MD5 value must be 128 bits and Base64-encoded.",
        "InvalidPropertyName" => "The property name contains invalid characters.",
        "InvalidQueryParameterValue" => "Value for one of the query parameters specified in the request URI is invalid.",
        "InvalidRange" => "The range specified is invalid for the current size of the resource.",
        "InvalidResourceName" => "The specified resource name contains invalid characters.",
        "InvalidUri" => "The request URI is invalid.",
        "LeaseNotPresent" => "There is currently no lease on the resource.",
        "Md5Mismatch" => "The MD5 value specified in the request did not match with the MD5 value calculated by the server.",
        "MissingRequiredHeader" => "An HTTP header that's mandatory for this request is not specified.",
        "MissingRequiredQueryParameter" => "A query parameter that's mandatory for this request is not specified.",
        "NoAuthenticationInformation" => "Server failed to authenticate the request. Please refer to the information in the www-authenticate header.",
        "OperationTimedOut" => "The operation could not be completed within the permitted time.",
        "OutOfRangeInput" => "One of the request inputs is out of range.",
        "PathAlreadyExists" => "The specified path already exists.",
        "PathConflict" => "The specified path, or an element of the path, exists and its resource type is invalid for this operation.",
        "PathNotFound" => "The specified path does not exist.",
        "ResourceTypeMismatch" => "The resource type specified in the request does not match the type of the resource.",
        "ServerBusy" => "The server is currently unable to receive requests. Please retry your request.",
        "UnsupportedHeader" => "One of the headers specified in the request is not supported.",
        "UnsupportedHttpVerb" => "The resource doesn't support the specified HTTP verb.",
        "UnsupportedQueryParameter" => "One of the query parameters specified in the request URI is not supported.",
        "UnsupportedRestVersion" => "The specified Rest Version is Unsupported.",
        _ => "Fault injected by the DFS test server.",
    }
}

fn missing_param(name: &str) -> ApiError {
    ApiError::new(400, "MissingRequiredQueryParameter").detail("QueryParameterName", name)
}

fn invalid_param(name: &str, value: &str) -> ApiError {
    ApiError::new(400, "InvalidQueryParameterValue")
        .detail("QueryParameterName", name)
        .detail("QueryParameterValue", value)
}

fn invalid_header(name: &str, value: &str) -> ApiError {
    ApiError::new(400, "InvalidHeaderValue")
        .detail("HeaderName", name)
        .detail("HeaderValue", value)
}

fn fs_not_found() -> ApiError {
    ApiError::new(404, "FilesystemNotFound")
}

fn path_not_found() -> ApiError {
    ApiError::new(404, "PathNotFound")
}

fn condition_not_met() -> ApiError {
    ApiError::new(412, "ConditionNotMet")
}

// ---------------------------------------------------------------------------
// Small parsers (pure)
// ---------------------------------------------------------------------------

fn http_date(t: OffsetDateTime) -> String {
    t.format(HTTP_DATE).unwrap_or_default()
}

fn iso_time(t: OffsetDateTime) -> String {
    t.format(ISO_TIME).unwrap_or_default()
}

fn parse_http_date(s: &str) -> Option<OffsetDateTime> {
    PrimitiveDateTime::parse(s.trim(), HTTP_DATE)
        .ok()
        .map(PrimitiveDateTime::assume_utc)
}

fn whole_seconds(t: OffsetDateTime) -> OffsetDateTime {
    t.replace_nanosecond(0).unwrap_or(t)
}

/// Windows file time (100 ns ticks since 1601-01-01), as `creationTime` in listings.
fn file_time(t: OffsetDateTime) -> String {
    (t.unix_timestamp_nanos() / 100 + 116_444_736_000_000_000).to_string()
}

fn is_version(v: &str) -> bool {
    let b = v.as_bytes();
    b.len() == 10
        && b.iter().enumerate().all(|(i, c)| {
            if i == 4 || i == 7 {
                *c == b'-'
            } else {
                c.is_ascii_digit()
            }
        })
}

/// Percent-decodes `s`; `None` for a bad escape or bytes that are not UTF-8.
fn percent_decode(s: &str, plus_as_space: bool) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' if plus_as_space => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// Query parameters: names lower-cased, values decoded; the first of duplicates wins.
struct Query {
    pairs: Vec<(String, String)>,
}

impl Query {
    fn parse(raw: Option<&str>) -> Result<Query, ApiError> {
        let mut pairs = Vec::new();
        for part in raw.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (name, value) = part.split_once('=').unwrap_or((part, ""));
            let bad = || ApiError::new(400, "InvalidUri").detail("QueryParameter", part);
            let name = percent_decode(name, true).ok_or_else(bad)?;
            let value = percent_decode(value, true).ok_or_else(bad)?;
            pairs.push((name.to_ascii_lowercase(), value));
        }
        Ok(Query { pairs })
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn required(&self, name: &str) -> Result<&str, ApiError> {
        self.get(name).ok_or_else(|| missing_param(name))
    }

    /// Rejects parameters the operation does not document (`timeout` is always allowed).
    fn allow(&self, allowed: &[&str]) -> Result<(), ApiError> {
        for (name, value) in &self.pairs {
            if name == "timeout" {
                match value.parse::<u32>() {
                    Ok(t) if t >= 1 => {}
                    _ => return Err(invalid_param(name, value)),
                }
            } else if !allowed.contains(&name.as_str()) {
                return Err(ApiError::new(400, "UnsupportedQueryParameter")
                    .detail("QueryParameterName", name)
                    .detail("QueryParameterValue", value));
            }
        }
        Ok(())
    }

    fn bool(&self, name: &str) -> Result<Option<bool>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(v) if v.eq_ignore_ascii_case("true") => Ok(Some(true)),
            Some(v) if v.eq_ignore_ascii_case("false") => Ok(Some(false)),
            Some(v) => Err(invalid_param(name, v)),
        }
    }

    fn u64(&self, name: &str) -> Result<Option<u64>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(v) => v
                .parse::<u64>()
                .map(Some)
                .map_err(|_| invalid_param(name, v)),
        }
    }
}

/// Whether `name` is a valid filesystem name:
/// `^[$a-z0-9](?!.*--)[-a-z0-9]{1,61}[a-z0-9]$`.
fn valid_filesystem_name(name: &str) -> bool {
    let b = name.as_bytes();
    let lower_alnum = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    (3..=63).contains(&b.len())
        && b.first().is_some_and(|c| lower_alnum(c) || *c == b'$')
        && b.last().is_some_and(lower_alnum)
        && b[1..].iter().all(|c| lower_alnum(c) || *c == b'-')
        && !name.contains("--")
}

/// Splits a decoded path into its segments; empty segments are refused.
fn split_path(path: &str) -> Result<Vec<String>, ApiError> {
    let path = path.strip_suffix('/').unwrap_or(path);
    if path.is_empty() {
        return Ok(Vec::new());
    }
    let segments: Vec<String> = path.split('/').map(str::to_owned).collect();
    if segments.iter().any(String::is_empty) || path.len() > 1024 {
        return Err(ApiError::new(400, "InvalidResourceName").detail("Path", path));
    }
    Ok(segments)
}

/// The request target: `/{account}[/{filesystem}[/{path...}]]`.
struct Target {
    account: String,
    filesystem: Option<String>,
    path: Vec<String>,
}

fn parse_target(uri: &Uri) -> Result<Target, ApiError> {
    let raw = uri.path();
    let raw = raw.strip_prefix('/').unwrap_or(raw);
    let mut parts = raw.splitn(3, '/');
    let bad = || ApiError::new(400, "InvalidUri").detail("Uri", uri);
    let account = percent_decode(parts.next().unwrap_or(""), false).ok_or_else(bad)?;
    let filesystem = match parts.next() {
        Some(fs) if !fs.is_empty() => Some(percent_decode(fs, false).ok_or_else(bad)?),
        _ => None,
    };
    let path = percent_decode(parts.next().unwrap_or(""), false).ok_or_else(bad)?;
    Ok(Target {
        account,
        filesystem,
        path: split_path(&path)?,
    })
}

/// `x-ms-properties`: `n1=base64,n2=base64`, names C#-identifier-like.
fn parse_properties(value: Option<&HeaderValue>) -> Result<Vec<(String, String)>, ApiError> {
    let Some(value) = value else {
        return Ok(Vec::new());
    };
    let text = value
        .to_str()
        .map_err(|_| invalid_header("x-ms-properties", "<not ASCII>"))?;
    let mut props: Vec<(String, String)> = Vec::new();
    for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let Some((name, encoded)) = item.split_once('=') else {
            return Err(invalid_header("x-ms-properties", text));
        };
        let (name, encoded) = (name.trim(), encoded.trim());
        if name.is_empty() {
            return Err(ApiError {
                message: "A property name cannot be empty.".to_owned(),
                ..ApiError::new(400, "InvalidPropertyName")
            });
        }
        let mut chars = name.chars();
        let valid = chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(ApiError::new(400, "InvalidPropertyName").detail("PropertyName", name));
        }
        if B64.decode(encoded).is_err() {
            return Err(invalid_header("x-ms-properties", text));
        }
        if props.iter().any(|(n, _)| n.eq_ignore_ascii_case(name)) {
            return Err(invalid_header("x-ms-properties", text));
        }
        props.push((name.to_owned(), encoded.to_owned()));
    }
    Ok(props)
}

fn render_properties(props: &[(String, String)]) -> String {
    props
        .iter()
        .map(|(n, v)| format!("{n}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// A byte range to read, inclusive.
#[derive(Debug, PartialEq, Eq)]
enum RangeRequest {
    /// `bytes=start-` or `bytes=start-end`.
    Bytes { start: u64, end: Option<u64> },
    /// The whole file (no range, or an ignorable `Range`).
    Whole,
}

/// Parses `bytes=a-` / `bytes=a-b`, the two forms the service accepts.
fn parse_range(value: &str) -> Option<RangeRequest> {
    let spec = value.trim().strip_prefix("bytes=")?;
    let (start, end) = spec.split_once('-')?;
    let start: u64 = start.trim().parse().ok()?;
    let end = match end.trim() {
        "" => None,
        e => Some(e.parse::<u64>().ok()?),
    };
    if end.is_some_and(|e| e < start) {
        return None;
    }
    Some(RangeRequest::Bytes { start, end })
}

/// The range to serve: `x-ms-range` wins over `Range`.
fn requested_range(headers: &HeaderMap) -> Result<RangeRequest, ApiError> {
    if let Some(v) = headers.get("x-ms-range") {
        let text = v.to_str().unwrap_or("");
        return parse_range(text).ok_or_else(|| invalid_header("x-ms-range", text));
    }
    Ok(headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_range)
        .unwrap_or(RangeRequest::Whole))
}

/// Result of walking the uncommitted chunks for a flush at `position`.
struct FlushPlan {
    /// Bytes `[committed, position)`.
    appended: Vec<u8>,
    /// The chunk that crossed `position`, and where it started.
    straddler: Option<u64>,
}

/// Walks the chunks from `committed` to `position`; `None` when they do not
/// cover it contiguously (`InvalidFlushPosition`).
fn plan_flush(committed: u64, chunks: &BTreeMap<u64, Bytes>, position: u64) -> Option<FlushPlan> {
    if position < committed {
        return None;
    }
    let mut appended = Vec::new();
    let mut cursor = committed;
    let mut straddler = None;
    while cursor < position {
        let chunk = chunks.get(&cursor).filter(|c| !c.is_empty())?;
        let take = (chunk.len() as u64).min(position - cursor);
        appended.extend_from_slice(&chunk[..take as usize]);
        if take < chunk.len() as u64 {
            straddler = Some(cursor);
        }
        cursor += take;
    }
    Some(FlushPlan {
        appended,
        straddler,
    })
}

/// What `retainUncommittedData=true` keeps after a flush at `position`.
fn retained(
    chunks: &BTreeMap<u64, Bytes>,
    position: u64,
    straddler: Option<u64>,
) -> BTreeMap<u64, Bytes> {
    let mut kept: BTreeMap<u64, Bytes> = chunks
        .range(position..)
        .map(|(p, c)| (*p, c.clone()))
        .collect();
    if let Some(start) = straddler {
        if let Some(chunk) = chunks.get(&start) {
            let skip = (position - start) as usize;
            kept.entry(position).or_insert_with(|| chunk.slice(skip..));
        }
    }
    kept
}

// ---------------------------------------------------------------------------
// Conditions
// ---------------------------------------------------------------------------

#[derive(Default)]
struct Conditions {
    if_match: Option<String>,
    if_none_match: Option<String>,
    if_modified_since: Option<OffsetDateTime>,
    if_unmodified_since: Option<OffsetDateTime>,
}

#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    Proceed,
    /// `If-None-Match` / `If-Modified-Since` failed (304 on reads).
    NotModified,
    /// `If-Match` / `If-Unmodified-Since` failed (412).
    Failed,
}

impl Conditions {
    fn parse(headers: &HeaderMap) -> Result<Conditions, ApiError> {
        let text = |name: header::HeaderName| -> Result<Option<String>, ApiError> {
            match headers.get(&name) {
                None => Ok(None),
                Some(v) => v
                    .to_str()
                    .map(|s| Some(s.to_owned()))
                    .map_err(|_| invalid_header(name.as_str(), "<not ASCII>")),
            }
        };
        let date = |name: header::HeaderName| -> Result<Option<OffsetDateTime>, ApiError> {
            match text(name.clone())? {
                None => Ok(None),
                Some(s) => parse_http_date(&s)
                    .map(Some)
                    .ok_or_else(|| invalid_header(name.as_str(), &s)),
            }
        };
        Ok(Conditions {
            if_match: text(header::IF_MATCH)?,
            if_none_match: text(header::IF_NONE_MATCH)?,
            if_modified_since: date(header::IF_MODIFIED_SINCE)?,
            if_unmodified_since: date(header::IF_UNMODIFIED_SINCE)?,
        })
    }

    fn any(&self) -> bool {
        self.if_match.is_some()
            || self.if_none_match.is_some()
            || self.if_modified_since.is_some()
            || self.if_unmodified_since.is_some()
    }

    fn none_match_is_star(&self) -> bool {
        self.if_none_match
            .as_deref()
            .is_some_and(|v| v.trim() == "*")
    }

    /// Evaluates against the resource's ETag (unquoted) and Last-Modified, if it exists.
    fn evaluate(&self, resource: Option<(&str, OffsetDateTime)>) -> Verdict {
        let Some((etag, modified)) = resource else {
            return if self.if_match.is_some() {
                Verdict::Failed
            } else {
                Verdict::Proceed
            };
        };
        let modified = whole_seconds(modified);
        if self
            .if_match
            .as_deref()
            .is_some_and(|m| !etag_matches(m, etag))
            || self.if_unmodified_since.is_some_and(|t| modified > t)
        {
            return Verdict::Failed;
        }
        if self
            .if_none_match
            .as_deref()
            .is_some_and(|m| etag_matches(m, etag))
            || self.if_modified_since.is_some_and(|t| modified <= t)
        {
            return Verdict::NotModified;
        }
        Verdict::Proceed
    }

    /// For writes: anything but `Proceed` is 412 `ConditionNotMet`.
    fn check_write(&self, resource: Option<(&str, OffsetDateTime)>) -> Result<(), ApiError> {
        match self.evaluate(resource) {
            Verdict::Proceed => Ok(()),
            _ => Err(condition_not_met()),
        }
    }
}

/// Whether a comma-separated list of (quoted, possibly weak) ETags or `*` names `etag`.
fn etag_matches(list: &str, etag: &str) -> bool {
    list.split(',').map(str::trim).any(|t| {
        let t = t.strip_prefix("W/").unwrap_or(t);
        t == "*" || t.trim_matches('"') == etag
    })
}

// ---------------------------------------------------------------------------
// State and operations
// ---------------------------------------------------------------------------

struct State {
    account: String,
    page_size: usize,
    filesystems: BTreeMap<String, Filesystem>,
    etag_seq: u64,
}

struct Filesystem {
    etag: String,
    last_modified: OffsetDateTime,
    properties: Vec<(String, String)>,
    /// Keyed by path segments, so iteration is depth first.
    paths: BTreeMap<Vec<String>, Node>,
}

struct Node {
    kind: Kind,
    etag: String,
    last_modified: OffsetDateTime,
    created: OffsetDateTime,
    properties: Vec<(String, String)>,
    content: ContentHeaders,
}

enum Kind {
    Directory,
    File {
        data: Vec<u8>,
        /// Appended, not yet flushed data, keyed by position.
        uncommitted: BTreeMap<u64, Bytes>,
    },
}

impl Node {
    fn new(kind: Kind, etag: String, now: OffsetDateTime) -> Node {
        Node {
            kind,
            etag,
            last_modified: now,
            created: now,
            properties: Vec::new(),
            content: ContentHeaders::default(),
        }
    }

    fn is_dir(&self) -> bool {
        matches!(self.kind, Kind::Directory)
    }

    fn len(&self) -> u64 {
        match &self.kind {
            Kind::File { data, .. } => data.len() as u64,
            Kind::Directory => 0,
        }
    }

    fn stamp(&self) -> Option<(&str, OffsetDateTime)> {
        Some((self.etag.as_str(), self.last_modified))
    }
}

/// The stored `Content-*` / `Cache-Control` values of a path.
#[derive(Default, Clone, PartialEq)]
struct ContentHeaders {
    content_type: Option<HeaderValue>,
    content_encoding: Option<HeaderValue>,
    content_language: Option<HeaderValue>,
    content_disposition: Option<HeaderValue>,
    cache_control: Option<HeaderValue>,
}

impl ContentHeaders {
    /// The `x-ms-*` request headers that set each value.
    fn from_request(headers: &HeaderMap) -> ContentHeaders {
        let get = |n: &str| headers.get(n).cloned();
        ContentHeaders {
            content_type: get("x-ms-content-type"),
            content_encoding: get("x-ms-content-encoding"),
            content_language: get("x-ms-content-language"),
            content_disposition: get("x-ms-content-disposition"),
            cache_control: get("x-ms-cache-control"),
        }
    }

    /// Replaces the values given in `other`; true if anything changed.
    fn merge(&mut self, other: ContentHeaders) -> bool {
        let before = self.clone();
        let pairs = [
            (&mut self.content_type, other.content_type),
            (&mut self.content_encoding, other.content_encoding),
            (&mut self.content_language, other.content_language),
            (&mut self.content_disposition, other.content_disposition),
            (&mut self.cache_control, other.cache_control),
        ];
        for (slot, value) in pairs {
            if value.is_some() {
                *slot = value;
            }
        }
        *self != before
    }

    fn write(&self, mut b: http::response::Builder, is_file: bool) -> http::response::Builder {
        match &self.content_type {
            Some(v) => b = b.header(header::CONTENT_TYPE, v.clone()),
            None if is_file => b = b.header(header::CONTENT_TYPE, DEFAULT_CONTENT_TYPE),
            None => {}
        }
        let others = [
            (header::CONTENT_ENCODING, &self.content_encoding),
            (header::CONTENT_LANGUAGE, &self.content_language),
            (header::CONTENT_DISPOSITION, &self.content_disposition),
            (header::CACHE_CONTROL, &self.cache_control),
        ];
        for (name, value) in others {
            if let Some(v) = value {
                b = b.header(name, v.clone());
            }
        }
        b
    }
}

fn next_etag(seq: &mut u64) -> String {
    *seq += 1;
    format!("0x8D{:013X}", *seq)
}

fn quoted(etag: &str) -> String {
    format!("\"{etag}\"")
}

/// Any `x-ms-lease-id` is refused: this server holds no leases.
fn check_no_lease(headers: &HeaderMap) -> Result<(), ApiError> {
    if headers.contains_key("x-ms-lease-id") {
        return Err(ApiError::new(412, "LeaseNotPresent"));
    }
    Ok(())
}

/// Checks `Content-MD5` against the body, if present.
fn check_md5(headers: &HeaderMap, body: &[u8]) -> Result<(), ApiError> {
    let Some(v) = headers.get("content-md5") else {
        return Ok(());
    };
    let text = v.to_str().unwrap_or("");
    let expected = B64
        .decode(text)
        .ok()
        .filter(|d| d.len() == 16)
        .ok_or_else(|| ApiError::new(400, "InvalidMd5").detail("HeaderValue", text))?;
    let actual = Md5::digest(body);
    if expected.as_slice() != actual.as_slice() {
        return Err(ApiError::new(400, "Md5Mismatch")
            .detail("UserSpecifiedMd5", text)
            .detail("ServerCalculatedMd5", B64.encode(actual)));
    }
    Ok(())
}

impl State {
    fn route(&mut self, req: &RecordedRequest, ctx: &Ctx) -> Result<Resp, ApiError> {
        let target = parse_target(&req.uri)?;
        if target.account != self.account {
            return Err(ApiError::new(400, "InvalidUri")
                .detail("Account", &target.account)
                .detail("Note", "this test server holds one account"));
        }
        self.check_auth(&req.headers)?;
        check_version(&req.headers)?;
        let query = Query::parse(req.uri.query())?;
        let Some(fs) = target.filesystem else {
            return Err(ApiError::new(400, "InvalidUri").detail(
                "Note",
                "account operations are not implemented by this test server",
            ));
        };
        if !valid_filesystem_name(&fs) {
            return Err(ApiError::new(400, "InvalidResourceName").detail("Filesystem", &fs));
        }
        if target.path.is_empty() {
            self.filesystem_op(req, ctx, &fs, &query)
        } else {
            self.path_op(req, ctx, &fs, &target.path, &query)
        }
    }

    fn check_auth(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        let Some(value) = headers.get(header::AUTHORIZATION) else {
            return Err(ApiError::new(401, "NoAuthenticationInformation")
                .header("www-authenticate", BEARER_CHALLENGE.to_owned()));
        };
        let malformed = || ApiError::new(400, "InvalidAuthenticationInfo");
        let value = value.to_str().map_err(|_| malformed())?;
        if let Some(rest) = value.strip_prefix("SharedKey ") {
            let (account, signature) = rest.split_once(':').ok_or_else(malformed)?;
            if account.is_empty() || signature.is_empty() {
                return Err(malformed());
            }
            if account != self.account {
                return Err(ApiError::new(403, "AuthenticationFailed").detail(
                    "AuthenticationErrorDetail",
                    format!(
                        "The account {account} in the Authorization header is not {}.",
                        self.account
                    ),
                ));
            }
            if B64.decode(signature).map(|s| s.len()).ok() != Some(32) {
                return Err(ApiError::new(403, "AuthenticationFailed").detail(
                    "AuthenticationErrorDetail",
                    "The signature is not the base64 encoding of an HMAC-SHA256.",
                ));
            }
            if !headers.contains_key("x-ms-date") && !headers.contains_key(header::DATE) {
                return Err(ApiError::new(403, "AuthenticationFailed").detail(
                    "AuthenticationErrorDetail",
                    "Request date header not specified.",
                ));
            }
            Ok(())
        } else if let Some(token) = value.strip_prefix("Bearer ") {
            if token.trim().is_empty() {
                return Err(malformed());
            }
            Ok(())
        } else {
            Err(malformed())
        }
    }

    fn fs(&self, name: &str) -> Result<&Filesystem, ApiError> {
        self.filesystems.get(name).ok_or_else(fs_not_found)
    }

    // --- Filesystem -------------------------------------------------------

    fn filesystem_op(
        &mut self,
        req: &RecordedRequest,
        ctx: &Ctx,
        fs: &str,
        q: &Query,
    ) -> Result<Resp, ApiError> {
        let resource = q.required("resource")?;
        if !resource.eq_ignore_ascii_case("filesystem") {
            return Err(invalid_param("resource", resource));
        }
        let conditions = Conditions::parse(&req.headers)?;
        let now = OffsetDateTime::now_utc();
        match req.method {
            Method::PUT => {
                q.allow(&["resource"])?;
                let properties = parse_properties(req.headers.get("x-ms-properties"))?;
                if self.filesystems.contains_key(fs) {
                    return Err(ApiError::new(409, "FilesystemAlreadyExists"));
                }
                let etag = next_etag(&mut self.etag_seq);
                let b = ctx
                    .builder(StatusCode::CREATED)
                    .header(header::ETAG, quoted(&etag))
                    .header(header::LAST_MODIFIED, http_date(now))
                    .header("x-ms-namespace-enabled", "true");
                self.filesystems.insert(
                    fs.to_owned(),
                    Filesystem {
                        etag,
                        last_modified: now,
                        properties,
                        paths: BTreeMap::new(),
                    },
                );
                Ok(empty(b))
            }
            Method::DELETE => {
                q.allow(&["resource"])?;
                let f = self.fs(fs)?;
                conditions.check_write(Some((&f.etag, f.last_modified)))?;
                self.filesystems.remove(fs);
                Ok(empty(ctx.builder(StatusCode::ACCEPTED)))
            }
            Method::HEAD => {
                q.allow(&["resource"])?;
                let f = self.fs(fs)?;
                let mut b = ctx
                    .builder(StatusCode::OK)
                    .header(header::ETAG, quoted(&f.etag))
                    .header(header::LAST_MODIFIED, http_date(f.last_modified))
                    .header("x-ms-namespace-enabled", "true");
                if !f.properties.is_empty() {
                    b = b.header("x-ms-properties", render_properties(&f.properties));
                }
                Ok(empty(b))
            }
            Method::PATCH => {
                q.allow(&["resource"])?;
                let properties = parse_properties(req.headers.get("x-ms-properties"))?;
                let State {
                    filesystems,
                    etag_seq,
                    ..
                } = self;
                let f = filesystems.get_mut(fs).ok_or_else(fs_not_found)?;
                conditions.check_write(Some((&f.etag, f.last_modified)))?;
                f.properties = properties;
                f.etag = next_etag(etag_seq);
                f.last_modified = now;
                Ok(empty(
                    ctx.builder(StatusCode::OK)
                        .header(header::ETAG, quoted(&f.etag))
                        .header(header::LAST_MODIFIED, http_date(now)),
                ))
            }
            Method::GET => self.list_paths(ctx, fs, q),
            _ => Err(ApiError::new(405, "UnsupportedHttpVerb")),
        }
    }

    fn list_paths(&self, ctx: &Ctx, fs: &str, q: &Query) -> Result<Resp, ApiError> {
        q.allow(&[
            "resource",
            "recursive",
            "directory",
            "continuation",
            "maxresults",
            "upn",
        ])?;
        let f = self.fs(fs)?;
        let recursive = q
            .bool("recursive")?
            .ok_or_else(|| missing_param("recursive"))?;
        q.bool("upn")?;
        let max = match q.get("maxresults") {
            None => MAX_RESULTS,
            Some(v) => match v.parse::<usize>() {
                Ok(n) if n >= 1 => n,
                _ => return Err(invalid_param("maxResults", v)),
            },
        };
        let page = max.min(self.page_size);
        let after = match q.get("continuation") {
            None => None,
            Some(token) => {
                Some(decode_token(token).ok_or_else(|| invalid_param("continuation", token))?)
            }
        };
        let dir = match q.get("directory") {
            None => Vec::new(),
            Some(d) => split_path(d.trim_start_matches('/'))?,
        };
        let mut selected: Vec<(&Vec<String>, &Node)> = Vec::new();
        let mut more = false;
        let only_file = match f.paths.get(&dir) {
            _ if dir.is_empty() => false,
            None => return Err(path_not_found()),
            Some(node) => !node.is_dir(),
        };
        let candidates = f.paths.iter().filter(|(key, _)| {
            if only_file {
                **key == dir
            } else {
                key.len() > dir.len()
                    && key.starts_with(&dir)
                    && (recursive || key.len() == dir.len() + 1)
            }
        });
        for (key, node) in candidates {
            if after.as_ref().is_some_and(|a| key <= a) {
                continue;
            }
            if selected.len() == page {
                more = true;
                break;
            }
            selected.push((key, node));
        }
        let paths: Vec<Value> = selected
            .iter()
            .map(|(key, node)| list_entry(&key.join("/"), node))
            .collect();
        let body = json!({ "paths": paths }).to_string();
        let mut b = ctx
            .builder(StatusCode::OK)
            .header(header::CONTENT_TYPE, JSON_TYPE)
            .header(header::CONTENT_LENGTH, body.len())
            .header(header::ETAG, quoted(&f.etag))
            .header(header::LAST_MODIFIED, http_date(f.last_modified));
        if more {
            if let Some((last, _)) = selected.last() {
                b = b.header("x-ms-continuation", encode_token(last));
            }
        }
        Ok(finish(b, Bytes::from(body)))
    }

    // --- Paths ------------------------------------------------------------

    fn path_op(
        &mut self,
        req: &RecordedRequest,
        ctx: &Ctx,
        fs: &str,
        path: &[String],
        q: &Query,
    ) -> Result<Resp, ApiError> {
        match req.method {
            Method::PUT => self.create_path(req, ctx, fs, path, q),
            Method::PATCH => {
                q.allow(&[
                    "action",
                    "position",
                    "retainuncommitteddata",
                    "close",
                    "flush",
                ])?;
                let action = q.required("action")?;
                match action.to_ascii_lowercase().as_str() {
                    "append" => self.append(req, ctx, fs, path, q),
                    "flush" => self.flush(req, ctx, fs, path, q),
                    "setproperties" => self.set_properties(req, ctx, fs, path),
                    _ => Err(invalid_param("action", action)),
                }
            }
            Method::GET => {
                q.allow(&[])?;
                self.read(req, ctx, fs, path, true)
            }
            Method::HEAD => {
                q.allow(&["action", "upn"])?;
                q.bool("upn")?;
                // getStatus: system properties only; getAccessControl: also the ACL.
                let (system_only, acl) = match q.get("action") {
                    None => (false, false),
                    Some(a) if a.eq_ignore_ascii_case("getStatus") => (true, false),
                    Some(a) if a.eq_ignore_ascii_case("getAccessControl") => (true, true),
                    Some(a) => return Err(invalid_param("action", a)),
                };
                let mut resp = self.read(req, ctx, fs, path, false)?;
                if system_only {
                    resp.headers_mut().remove("x-ms-properties");
                }
                if acl {
                    let is_dir = resp
                        .headers()
                        .get("x-ms-resource-type")
                        .is_some_and(|v| v == "directory");
                    let value = if is_dir { DIR_ACL } else { FILE_ACL };
                    resp.headers_mut()
                        .insert("x-ms-acl", HeaderValue::from_static(value));
                }
                Ok(resp)
            }
            Method::DELETE => self.delete_path(req, ctx, fs, path, q),
            _ => Err(ApiError::new(405, "UnsupportedHttpVerb")),
        }
    }

    fn create_path(
        &mut self,
        req: &RecordedRequest,
        ctx: &Ctx,
        fs: &str,
        path: &[String],
        q: &Query,
    ) -> Result<Resp, ApiError> {
        q.allow(&["resource", "continuation", "mode"])?;
        if req.headers.contains_key("x-ms-rename-source") {
            return Err(ApiError::new(400, "UnsupportedHeader")
                .detail("HeaderName", "x-ms-rename-source")
                .detail("Note", "rename is not implemented by this test server"));
        }
        let resource = q.required("resource")?;
        let want_dir = if resource.eq_ignore_ascii_case("directory") {
            true
        } else if resource.eq_ignore_ascii_case("file") {
            false
        } else {
            return Err(invalid_param("resource", resource));
        };
        if !req.body.is_empty() {
            return Err(ApiError::new(400, "ContentLengthMustBeZero"));
        }
        let properties = parse_properties(req.headers.get("x-ms-properties"))?;
        let content = ContentHeaders::from_request(&req.headers);
        let conditions = Conditions::parse(&req.headers)?;
        let State {
            filesystems,
            etag_seq,
            ..
        } = self;
        let f = filesystems.get_mut(fs).ok_or_else(fs_not_found)?;
        let existing = f.paths.get(path);
        if existing.is_some() {
            check_no_lease(&req.headers)?;
        }
        match conditions.evaluate(existing.and_then(Node::stamp)) {
            Verdict::Proceed => {}
            Verdict::NotModified if conditions.none_match_is_star() => {
                return Err(ApiError::new(409, "PathAlreadyExists"));
            }
            _ => return Err(condition_not_met()),
        }
        for depth in 1..path.len() {
            if f.paths.get(&path[..depth]).is_some_and(|n| !n.is_dir()) {
                return Err(ApiError::new(409, "PathConflict"));
            }
        }
        if existing.is_some_and(|n| n.is_dir() != want_dir) {
            return Err(ApiError::new(409, "PathConflict"));
        }
        let now = OffsetDateTime::now_utc();
        for depth in 1..path.len() {
            if !f.paths.contains_key(&path[..depth]) {
                let etag = next_etag(etag_seq);
                f.paths.insert(
                    path[..depth].to_vec(),
                    Node::new(Kind::Directory, etag, now),
                );
            }
        }
        let kind = if want_dir {
            Kind::Directory
        } else {
            Kind::File {
                data: Vec::new(),
                uncommitted: BTreeMap::new(),
            }
        };
        let mut node = Node::new(kind, next_etag(etag_seq), now);
        node.properties = properties;
        node.content = content;
        let b = ctx
            .builder(StatusCode::CREATED)
            .header(header::ETAG, quoted(&node.etag))
            .header(header::LAST_MODIFIED, http_date(now))
            .header("x-ms-request-server-encrypted", "true");
        f.paths.insert(path.to_vec(), node);
        Ok(empty(b))
    }

    fn append(
        &mut self,
        req: &RecordedRequest,
        ctx: &Ctx,
        fs: &str,
        path: &[String],
        q: &Query,
    ) -> Result<Resp, ApiError> {
        let position = q
            .u64("position")?
            .ok_or_else(|| missing_param("position"))?;
        let flush = q.bool("flush")?.unwrap_or(false);
        q.bool("close")?;
        let conditions = Conditions::parse(&req.headers)?;
        if conditions.any() {
            return Err(ApiError::new(400, "UnsupportedHeader")
                .detail("Note", "conditional headers are invalid for Append Data"));
        }
        check_md5(&req.headers, &req.body)?;
        let end = position
            .checked_add(req.body.len() as u64)
            .ok_or_else(|| invalid_param("position", &position.to_string()))?;
        let State {
            filesystems,
            etag_seq,
            ..
        } = self;
        let f = filesystems.get_mut(fs).ok_or_else(fs_not_found)?;
        let node = f.paths.get_mut(path).ok_or_else(path_not_found)?;
        check_no_lease(&req.headers)?;
        let Kind::File { data, uncommitted } = &mut node.kind else {
            return Err(ApiError::new(409, "ResourceTypeMismatch"));
        };
        let mut chunks = uncommitted.clone();
        if !req.body.is_empty() {
            chunks.insert(position, req.body.clone());
        }
        let mut b = ctx
            .builder(StatusCode::ACCEPTED)
            .header("x-ms-request-server-encrypted", "true");
        if let Some(md5) = req.headers.get("content-md5") {
            b = b.header("content-md5", md5.clone());
        }
        if !flush {
            *uncommitted = chunks;
            return Ok(empty(b));
        }
        let plan = plan_flush(data.len() as u64, &chunks, end)
            .ok_or_else(|| ApiError::new(400, "InvalidFlushPosition"))?;
        data.extend_from_slice(&plan.appended);
        uncommitted.clear();
        if !plan.appended.is_empty() {
            node.etag = next_etag(etag_seq);
            node.last_modified = OffsetDateTime::now_utc();
        }
        Ok(empty(b.header(header::ETAG, quoted(&node.etag)).header(
            header::LAST_MODIFIED,
            http_date(node.last_modified),
        )))
    }

    fn flush(
        &mut self,
        req: &RecordedRequest,
        ctx: &Ctx,
        fs: &str,
        path: &[String],
        q: &Query,
    ) -> Result<Resp, ApiError> {
        let position = q
            .u64("position")?
            .ok_or_else(|| missing_param("position"))?;
        let retain = q.bool("retainuncommitteddata")?.unwrap_or(false);
        q.bool("close")?;
        q.bool("flush")?;
        if !req.body.is_empty() {
            return Err(ApiError::new(400, "ContentLengthMustBeZero"));
        }
        let conditions = Conditions::parse(&req.headers)?;
        let content = ContentHeaders::from_request(&req.headers);
        let State {
            filesystems,
            etag_seq,
            ..
        } = self;
        let f = filesystems.get_mut(fs).ok_or_else(fs_not_found)?;
        let node = f.paths.get_mut(path).ok_or_else(path_not_found)?;
        check_no_lease(&req.headers)?;
        conditions.check_write(node.stamp())?;
        let Kind::File { data, uncommitted } = &mut node.kind else {
            return Err(ApiError::new(409, "ResourceTypeMismatch"));
        };
        let plan = plan_flush(data.len() as u64, uncommitted, position).ok_or_else(|| {
            ApiError::new(400, "InvalidFlushPosition")
                .detail("CommittedLength", data.len())
                .detail("Position", position)
        })?;
        data.extend_from_slice(&plan.appended);
        *uncommitted = if retain {
            retained(uncommitted, position, plan.straddler)
        } else {
            BTreeMap::new()
        };
        let headers_changed = node.content.merge(content);
        if !plan.appended.is_empty() || headers_changed {
            node.etag = next_etag(etag_seq);
            node.last_modified = OffsetDateTime::now_utc();
        }
        Ok(empty(
            ctx.builder(StatusCode::OK)
                .header(header::ETAG, quoted(&node.etag))
                .header(header::LAST_MODIFIED, http_date(node.last_modified))
                .header("x-ms-request-server-encrypted", "true"),
        ))
    }

    fn set_properties(
        &mut self,
        req: &RecordedRequest,
        ctx: &Ctx,
        fs: &str,
        path: &[String],
    ) -> Result<Resp, ApiError> {
        let properties = parse_properties(req.headers.get("x-ms-properties"))?;
        let conditions = Conditions::parse(&req.headers)?;
        let content = ContentHeaders::from_request(&req.headers);
        let State {
            filesystems,
            etag_seq,
            ..
        } = self;
        let f = filesystems.get_mut(fs).ok_or_else(fs_not_found)?;
        let node = f.paths.get_mut(path).ok_or_else(path_not_found)?;
        check_no_lease(&req.headers)?;
        conditions.check_write(node.stamp())?;
        node.properties = properties;
        node.content.merge(content);
        node.etag = next_etag(etag_seq);
        node.last_modified = OffsetDateTime::now_utc();
        Ok(empty(
            ctx.builder(StatusCode::OK)
                .header(header::ETAG, quoted(&node.etag))
                .header(header::LAST_MODIFIED, http_date(node.last_modified)),
        ))
    }

    /// GET (`with_body`) and HEAD of a path.
    fn read(
        &self,
        req: &RecordedRequest,
        ctx: &Ctx,
        fs: &str,
        path: &[String],
        with_body: bool,
    ) -> Result<Resp, ApiError> {
        let conditions = Conditions::parse(&req.headers)?;
        let f = self.fs(fs)?;
        let node = f.paths.get(path).ok_or_else(path_not_found)?;
        check_no_lease(&req.headers)?;
        match conditions.evaluate(node.stamp()) {
            Verdict::Proceed => {}
            Verdict::NotModified => {
                return Err(ApiError::new(304, "ConditionNotMet")
                    .header("etag", quoted(&node.etag))
                    .header("last-modified", http_date(node.last_modified)));
            }
            Verdict::Failed => return Err(condition_not_met()),
        }
        let mut b = ctx
            .builder(StatusCode::OK)
            .header(header::ETAG, quoted(&node.etag))
            .header(header::LAST_MODIFIED, http_date(node.last_modified))
            .header(header::ACCEPT_RANGES, "bytes")
            .header(
                "x-ms-resource-type",
                if node.is_dir() { "directory" } else { "file" },
            )
            .header("x-ms-creation-time", http_date(node.created))
            .header("x-ms-owner", SUPERUSER)
            .header("x-ms-group", SUPERUSER)
            .header(
                "x-ms-permissions",
                if node.is_dir() {
                    DIR_PERMISSIONS
                } else {
                    FILE_PERMISSIONS
                },
            )
            .header("x-ms-lease-state", "available")
            .header("x-ms-lease-status", "unlocked")
            .header("x-ms-server-encrypted", "true");
        b = node.content.write(b, !node.is_dir());
        if !node.properties.is_empty() {
            b = b.header("x-ms-properties", render_properties(&node.properties));
        }
        let data: &[u8] = match &node.kind {
            Kind::File { data, .. } => data,
            Kind::Directory => &[],
        };
        if !with_body {
            return Ok(finish(
                b.header(header::CONTENT_LENGTH, node.len()),
                Bytes::new(),
            ));
        }
        let total = data.len() as u64;
        let (start, end) = match requested_range(&req.headers)? {
            RangeRequest::Whole => {
                return Ok(finish(
                    b.header(header::CONTENT_LENGTH, total),
                    Bytes::copy_from_slice(data),
                ));
            }
            RangeRequest::Bytes { start, end } => {
                if start >= total {
                    return Err(ApiError::new(416, "InvalidRange")
                        .header("content-range", format!("bytes */{total}")));
                }
                (start, end.map_or(total - 1, |e| e.min(total - 1)))
            }
        };
        let slice = &data[start as usize..=end as usize];
        b = b
            .status(StatusCode::PARTIAL_CONTENT)
            .header(
                header::CONTENT_RANGE,
                format!("bytes {start}-{end}/{total}"),
            )
            .header(header::CONTENT_LENGTH, slice.len());
        let want_md5 = req
            .headers
            .get("x-ms-range-get-content-md5")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("true"));
        if want_md5 {
            if slice.len() > 4 * 1024 * 1024 {
                return Err(ApiError::new(400, "OutOfRangeInput"));
            }
            b = b.header("content-md5", B64.encode(Md5::digest(slice)));
        }
        Ok(finish(b, Bytes::copy_from_slice(slice)))
    }

    fn delete_path(
        &mut self,
        req: &RecordedRequest,
        ctx: &Ctx,
        fs: &str,
        path: &[String],
        q: &Query,
    ) -> Result<Resp, ApiError> {
        q.allow(&["recursive", "continuation"])?;
        let recursive = q.bool("recursive")?.unwrap_or(false);
        let conditions = Conditions::parse(&req.headers)?;
        let f = self.filesystems.get_mut(fs).ok_or_else(fs_not_found)?;
        let node = f.paths.get(path).ok_or_else(path_not_found)?;
        check_no_lease(&req.headers)?;
        conditions.check_write(node.stamp())?;
        let is_descendant = |key: &Vec<String>| key.len() > path.len() && key.starts_with(path);
        if node.is_dir() && !recursive && f.paths.keys().any(is_descendant) {
            return Err(ApiError::new(409, "DirectoryNotEmpty"));
        }
        f.paths
            .retain(|key, _| key.as_slice() != path && !is_descendant(key));
        Ok(empty(ctx.builder(StatusCode::OK)))
    }
}

fn check_version(headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(value) = headers.get("x-ms-version") else {
        return Err(
            ApiError::new(400, "MissingRequiredHeader").detail("HeaderName", "x-ms-version")
        );
    };
    let text = value.to_str().unwrap_or("");
    if !is_version(text) {
        return Err(invalid_header("x-ms-version", text));
    }
    if text < OLDEST_DFS_VERSION {
        return Err(ApiError::new(400, "UnsupportedRestVersion").detail("Version", text));
    }
    Ok(())
}

fn list_entry(name: &str, node: &Node) -> Value {
    // Field names sorted, all values strings: the service's own wire format.
    let mut entry = Map::new();
    entry.insert(
        "contentLength".into(),
        Value::String(node.len().to_string()),
    );
    entry.insert(
        "creationTime".into(),
        Value::String(file_time(node.created)),
    );
    entry.insert("etag".into(), Value::String(node.etag.clone()));
    entry.insert("expiryTime".into(), Value::String("0".into()));
    entry.insert("group".into(), Value::String(SUPERUSER.into()));
    if node.is_dir() {
        entry.insert("isDirectory".into(), Value::String("true".into()));
    }
    entry.insert(
        "lastModified".into(),
        Value::String(http_date(node.last_modified)),
    );
    entry.insert("name".into(), Value::String(name.to_owned()));
    entry.insert("owner".into(), Value::String(SUPERUSER.into()));
    let permissions = if node.is_dir() {
        DIR_PERMISSIONS
    } else {
        FILE_PERMISSIONS
    };
    entry.insert("permissions".into(), Value::String(permissions.into()));
    Value::Object(entry)
}

fn encode_token(last: &[String]) -> String {
    B64.encode(format!("{TOKEN_PREFIX}{}", last.join("/")))
}

fn decode_token(token: &str) -> Option<Vec<String>> {
    let raw = String::from_utf8(B64.decode(token).ok()?).ok()?;
    let name = raw.strip_prefix(TOKEN_PREFIX)?;
    split_path(name).ok().filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use hyper_util::client::legacy::connect::HttpConnector;
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;

    type TestClient = Client<HttpConnector, Full<Bytes>>;

    struct Answer {
        status: StatusCode,
        headers: HeaderMap,
        body: Bytes,
    }

    impl Answer {
        fn header(&self, name: &str) -> Option<&str> {
            self.headers.get(name).and_then(|v| v.to_str().ok())
        }

        fn json(&self) -> Value {
            serde_json::from_slice(&self.body).unwrap()
        }

        fn error_code(&self) -> Option<&str> {
            self.header("x-ms-error-code")
        }
    }

    fn io_error_kind(err: &(dyn std::error::Error + 'static)) -> Option<std::io::ErrorKind> {
        let mut current = Some(err);
        while let Some(e) = current {
            if let Some(io) = e.downcast_ref::<std::io::Error>() {
                return Some(io.kind());
            }
            current = e.source();
        }
        None
    }

    fn hyper_error<'e>(err: &'e (dyn std::error::Error + 'static)) -> Option<&'e hyper::Error> {
        let mut current = Some(err);
        while let Some(e) = current {
            if let Some(h) = e.downcast_ref::<hyper::Error>() {
                return Some(h);
            }
            current = e.source();
        }
        None
    }

    fn client() -> TestClient {
        Client::builder(TokioExecutor::new()).build_http()
    }

    /// A syntactically valid Shared Key header (the server does not verify signatures).
    fn shared_key() -> String {
        format!("SharedKey {DEFAULT_ACCOUNT}:{}", B64.encode([7u8; 32]))
    }

    /// Sends a request with valid `Authorization`, `x-ms-version` and `x-ms-date`
    /// unless `headers` overrides them (an empty value removes the header).
    async fn send_raw(
        client: &TestClient,
        method: Method,
        url: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<Answer, hyper_util::client::legacy::Error> {
        let mut defaults: Vec<(String, String)> = vec![
            ("authorization".into(), shared_key()),
            ("x-ms-version".into(), "2023-11-03".into()),
            ("x-ms-date".into(), http_date(OffsetDateTime::now_utc())),
        ];
        for (name, value) in headers {
            defaults.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
            if !value.is_empty() {
                defaults.push(((*name).to_owned(), (*value).to_owned()));
            }
        }
        let mut builder = Request::builder().method(method).uri(url);
        for (name, value) in &defaults {
            builder = builder.header(name.as_str(), value.as_str());
        }
        let request = builder
            .body(Full::new(Bytes::copy_from_slice(body)))
            .unwrap();
        let response = client.request(request).await?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        Ok(Answer {
            status,
            headers,
            body,
        })
    }

    async fn send(
        client: &TestClient,
        method: Method,
        url: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Answer {
        send_raw(client, method, url, headers, body)
            .await
            .expect("the DFS test server answers")
    }

    /// A server with one filesystem `fs1`; returns `(server, client, "{endpoint}/fs1")`.
    async fn with_filesystem(options: Options) -> (DfsServer, TestClient, String) {
        let server = DfsServer::start_with(options).await;
        let client = client();
        let fs = format!("{}/fs1", server.endpoint());
        let r = send(
            &client,
            Method::PUT,
            &format!("{fs}?resource=filesystem"),
            &[],
            b"",
        )
        .await;
        assert_eq!(r.status, StatusCode::CREATED);
        (server, client, fs)
    }

    async fn create_file(client: &TestClient, url: &str) -> Answer {
        let r = send(
            client,
            Method::PUT,
            &format!("{url}?resource=file"),
            &[],
            b"",
        )
        .await;
        assert_eq!(r.status, StatusCode::CREATED, "create {url}");
        r
    }

    async fn append(client: &TestClient, url: &str, position: u64, data: &[u8]) -> Answer {
        send(
            client,
            Method::PATCH,
            &format!("{url}?action=append&position={position}"),
            &[],
            data,
        )
        .await
    }

    async fn flush(client: &TestClient, url: &str, position: u64) -> Answer {
        send(
            client,
            Method::PATCH,
            &format!("{url}?action=flush&position={position}"),
            &[],
            b"",
        )
        .await
    }

    async fn read(client: &TestClient, url: &str) -> Answer {
        send(client, Method::GET, url, &[], b"").await
    }

    #[tokio::test]
    async fn create_append_flush_read_round_trip() {
        let (_server, client, fs) = with_filesystem(Options::default()).await;
        let url = format!("{fs}/logs/2024/app.jsonl");

        let created = send(
            &client,
            Method::PUT,
            &format!("{url}?resource=file"),
            &[
                ("x-ms-content-type", "application/x-ndjson"),
                ("x-ms-properties", "origin=dGVzdA=="),
            ],
            b"",
        )
        .await;
        assert_eq!(created.status, StatusCode::CREATED);
        assert_eq!(created.header("content-length"), Some("0"));
        let etag0 = created.header("etag").unwrap().to_owned();
        assert!(
            etag0.starts_with("\"0x8D") && etag0.ends_with('"'),
            "{etag0}"
        );
        assert!(created.header("last-modified").unwrap().ends_with(" GMT"));

        assert_eq!(
            append(&client, &url, 0, b"hello ").await.status,
            StatusCode::ACCEPTED
        );
        assert_eq!(
            append(&client, &url, 6, b"world").await.status,
            StatusCode::ACCEPTED
        );

        let flushed = flush(&client, &url, 11).await;
        assert_eq!(flushed.status, StatusCode::OK);
        let etag1 = flushed.header("etag").unwrap();
        assert_ne!(etag1, etag0);

        let r = read(&client, &url).await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(&r.body[..], b"hello world");
        assert_eq!(r.header("content-length"), Some("11"));
        assert_eq!(r.header("content-type"), Some("application/x-ndjson"));
        assert_eq!(r.header("x-ms-resource-type"), Some("file"));
        assert_eq!(r.header("etag"), Some(etag1));

        let head = send(&client, Method::HEAD, &url, &[], b"").await;
        assert_eq!(head.status, StatusCode::OK);
        assert_eq!(head.header("content-length"), Some("11"));
        assert_eq!(head.header("x-ms-properties"), Some("origin=dGVzdA=="));
        assert!(head.body.is_empty());

        // Parents were created as directories.
        let dir = send(&client, Method::HEAD, &format!("{fs}/logs/2024"), &[], b"").await;
        assert_eq!(dir.header("x-ms-resource-type"), Some("directory"));

        // Ranges: x-ms-range wins over Range; start past the end is 416.
        let part = send(&client, Method::GET, &url, &[("range", "bytes=6-")], b"").await;
        assert_eq!(part.status, StatusCode::PARTIAL_CONTENT);
        assert_eq!(&part.body[..], b"world");
        assert_eq!(part.header("content-range"), Some("bytes 6-10/11"));
        let part = send(
            &client,
            Method::GET,
            &url,
            &[("range", "bytes=0-0"), ("x-ms-range", "bytes=0-4")],
            b"",
        )
        .await;
        assert_eq!(&part.body[..], b"hello");
        let past = send(
            &client,
            Method::GET,
            &url,
            &[("x-ms-range", "bytes=11-")],
            b"",
        )
        .await;
        assert_eq!(past.status, StatusCode::RANGE_NOT_SATISFIABLE);
        assert_eq!(past.error_code(), Some("InvalidRange"));
        assert_eq!(past.header("content-range"), Some("bytes */11"));
    }

    #[tokio::test]
    async fn unflushed_data_is_invisible() {
        let (server, client, fs) = with_filesystem(Options::default()).await;
        let url = format!("{fs}/f.txt");
        create_file(&client, &url).await;
        assert_eq!(flush(&client, &url, 0).await.status, StatusCode::OK);
        append(&client, &url, 0, b"abc").await;
        assert_eq!(flush(&client, &url, 3).await.status, StatusCode::OK);
        append(&client, &url, 3, b"def").await;

        let r = read(&client, &url).await;
        assert_eq!(&r.body[..], b"abc");
        let head = send(&client, Method::HEAD, &url, &[], b"").await;
        assert_eq!(head.header("content-length"), Some("3"));
        let list = send(
            &client,
            Method::GET,
            &format!("{fs}?resource=filesystem&recursive=true"),
            &[],
            b"",
        )
        .await;
        assert_eq!(list.json()["paths"][0]["contentLength"], "3");
        assert_eq!(
            server.file_contents("fs1", "f.txt").unwrap(),
            Bytes::from_static(b"abc")
        );
    }

    #[tokio::test]
    async fn flush_must_be_contiguous() {
        let (_server, client, fs) = with_filesystem(Options::default()).await;
        let url = format!("{fs}/f.txt");
        create_file(&client, &url).await;
        append(&client, &url, 0, b"abc").await;
        append(&client, &url, 5, b"xyz").await;

        let r = flush(&client, &url, 8).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
        assert_eq!(r.error_code(), Some("InvalidFlushPosition"));
        assert_eq!(r.header("content-type"), Some(JSON_TYPE));
        let body = r.json();
        assert_eq!(body["error"]["code"], "InvalidFlushPosition");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(
            message.starts_with("The uploaded data is not contiguous"),
            "{message}"
        );
        assert!(message.contains(&format!(
            "RequestId:{}",
            r.header("x-ms-request-id").unwrap()
        )));

        // Nothing changed; a flush up to the gap commits the contiguous part.
        assert!(read(&client, &url).await.body.is_empty());
        assert_eq!(flush(&client, &url, 3).await.status, StatusCode::OK);
        assert_eq!(&read(&client, &url).await.body[..], b"abc");
        // Below the committed length is refused too.
        assert_eq!(
            flush(&client, &url, 2).await.error_code(),
            Some("InvalidFlushPosition")
        );
        // The chunk at 5 was dropped by the flush (retainUncommittedData=false).
        append(&client, &url, 3, b"de").await;
        assert_eq!(
            flush(&client, &url, 8).await.error_code(),
            Some("InvalidFlushPosition")
        );
        assert_eq!(flush(&client, &url, 5).await.status, StatusCode::OK);
        assert_eq!(&read(&client, &url).await.body[..], b"abcde");
    }

    #[tokio::test]
    async fn retried_append_and_flush_are_harmless() {
        let (_server, client, fs) = with_filesystem(Options::default()).await;
        let url = format!("{fs}/f.txt");
        create_file(&client, &url).await;
        append(&client, &url, 0, b"abc").await;
        append(&client, &url, 0, b"abc").await;
        let first = flush(&client, &url, 3).await;
        let again = flush(&client, &url, 3).await;
        assert_eq!(again.status, StatusCode::OK);
        assert_eq!(again.header("etag"), first.header("etag"));
        assert_eq!(&read(&client, &url).await.body[..], b"abc");
    }

    #[tokio::test]
    async fn retain_uncommitted_data_keeps_the_tail() {
        let (_server, client, fs) = with_filesystem(Options::default()).await;
        let url = format!("{fs}/f.txt");
        create_file(&client, &url).await;
        append(&client, &url, 0, b"abcdef").await;
        let r = send(
            &client,
            Method::PATCH,
            &format!("{url}?action=flush&position=2&retainUncommittedData=true"),
            &[],
            b"",
        )
        .await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(&read(&client, &url).await.body[..], b"ab");
        assert_eq!(flush(&client, &url, 6).await.status, StatusCode::OK);
        assert_eq!(&read(&client, &url).await.body[..], b"abcdef");
    }

    #[tokio::test]
    async fn conditional_create_and_flush() {
        let (_server, client, fs) = with_filesystem(Options::default()).await;
        let url = format!("{fs}/f.txt");
        let created = create_file(&client, &url).await;
        append(&client, &url, 0, b"abc").await;
        flush(&client, &url, 3).await;

        let again = send(
            &client,
            Method::PUT,
            &format!("{url}?resource=file"),
            &[("if-none-match", "*")],
            b"",
        )
        .await;
        assert_eq!(again.status, StatusCode::CONFLICT);
        assert_eq!(again.error_code(), Some("PathAlreadyExists"));
        assert_eq!(again.json()["error"]["code"], "PathAlreadyExists");

        // A stale If-Match on flush is 412.
        append(&client, &url, 3, b"d").await;
        let stale = send(
            &client,
            Method::PATCH,
            &format!("{url}?action=flush&position=4"),
            &[("if-match", created.header("etag").unwrap())],
            b"",
        )
        .await;
        assert_eq!(stale.status, StatusCode::PRECONDITION_FAILED);
        assert_eq!(stale.error_code(), Some("ConditionNotMet"));

        // Without conditions, creating again truncates.
        create_file(&client, &url).await;
        assert!(read(&client, &url).await.body.is_empty());

        // A flush body is refused.
        let r = send(
            &client,
            Method::PATCH,
            &format!("{url}?action=flush&position=0"),
            &[],
            b"x",
        )
        .await;
        assert_eq!(r.error_code(), Some("ContentLengthMustBeZero"));
    }

    #[tokio::test]
    async fn content_md5_is_checked() {
        let (_server, client, fs) = with_filesystem(Options::default()).await;
        let url = format!("{fs}/f.txt");
        create_file(&client, &url).await;
        let good = B64.encode(Md5::digest(b"abc"));
        let bad = B64.encode(Md5::digest(b"abd"));
        let append_url = format!("{url}?action=append&position=0");
        let r = send(
            &client,
            Method::PATCH,
            &append_url,
            &[("content-md5", &bad)],
            b"abc",
        )
        .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
        assert_eq!(r.error_code(), Some("Md5Mismatch"));
        let r = send(
            &client,
            Method::PATCH,
            &append_url,
            &[("content-md5", "nope")],
            b"abc",
        )
        .await;
        assert_eq!(r.error_code(), Some("InvalidMd5"));
        let r = send(
            &client,
            Method::PATCH,
            &append_url,
            &[("content-md5", &good)],
            b"abc",
        )
        .await;
        assert_eq!(r.status, StatusCode::ACCEPTED);
    }

    #[tokio::test]
    async fn list_pages_with_continuation() {
        let options = Options {
            page_size: 2,
            ..Options::default()
        };
        let (server, client, fs) = with_filesystem(options).await;
        for name in [
            "d/a b.txt",
            "d/b.txt",
            "d/sub/c.txt",
            "d-x/e.txt",
            "top.txt",
        ] {
            let encoded = name.replace(' ', "%20");
            create_file(&client, &format!("{fs}/{encoded}")).await;
        }
        let url = format!("{fs}/d/b.txt");
        append(&client, &url, 0, b"12345").await;
        flush(&client, &url, 5).await;

        let mut names = Vec::new();
        let mut token: Option<String> = None;
        let mut pages = 0;
        loop {
            let mut list_url = format!("{fs}?resource=filesystem&recursive=true");
            if let Some(t) = &token {
                let encoded = t
                    .replace('+', "%2B")
                    .replace('/', "%2F")
                    .replace('=', "%3D");
                list_url.push_str(&format!("&continuation={encoded}"));
            }
            let r = send(&client, Method::GET, &list_url, &[], b"").await;
            assert_eq!(r.status, StatusCode::OK);
            assert_eq!(r.header("content-type"), Some(JSON_TYPE));
            let body = r.json();
            let paths = body["paths"].as_array().unwrap();
            assert!(paths.len() <= 2);
            for p in paths {
                names.push(p["name"].as_str().unwrap().to_owned());
                if p["name"] == "d/b.txt" {
                    assert_eq!(p["contentLength"], "5");
                    assert!(p.get("isDirectory").is_none());
                }
                if p["name"] == "d" {
                    assert_eq!(p["isDirectory"], "true");
                    assert_eq!(p["contentLength"], "0");
                }
                assert!(p["etag"].as_str().unwrap().starts_with("0x8D"));
            }
            pages += 1;
            token = r.header("x-ms-continuation").map(str::to_owned);
            if token.is_none() {
                break;
            }
        }
        assert_eq!(
            names,
            [
                "d",
                "d/a b.txt",
                "d/b.txt",
                "d/sub",
                "d/sub/c.txt",
                "d-x",
                "d-x/e.txt",
                "top.txt"
            ]
        );
        assert_eq!(pages, 4);

        // Not recursive, in a directory; maxResults below the page size.
        let list =
            |extra: &str| format!("{fs}?resource=filesystem&recursive=false&directory=d{extra}");
        let r = send(&client, Method::GET, &list("&maxResults=1"), &[], b"").await;
        assert_eq!(r.json()["paths"].as_array().unwrap().len(), 1);
        assert!(r.header("x-ms-continuation").is_some());
        let first = send(&client, Method::GET, &list(""), &[], b"").await;
        let token = first
            .header("x-ms-continuation")
            .unwrap()
            .replace('=', "%3D");
        let second = send(
            &client,
            Method::GET,
            &list(&format!("&continuation={token}")),
            &[],
            b"",
        )
        .await;
        assert!(second.header("x-ms-continuation").is_none());
        let names: Vec<String> = [first.json(), second.json()]
            .iter()
            .flat_map(|b| b["paths"].as_array().unwrap().clone())
            .map(|p| p["name"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(names, ["d/a b.txt", "d/b.txt", "d/sub"]);

        // Errors.
        let r = send(
            &client,
            Method::GET,
            &format!("{fs}?resource=filesystem"),
            &[],
            b"",
        )
        .await;
        assert_eq!(r.error_code(), Some("MissingRequiredQueryParameter"));
        let r = send(
            &client,
            Method::GET,
            &format!("{fs}?resource=filesystem&recursive=true&directory=nope"),
            &[],
            b"",
        )
        .await;
        assert_eq!(r.error_code(), Some("PathNotFound"));
        let r = send(
            &client,
            Method::GET,
            &format!("{fs}?resource=filesystem&recursive=true&continuation=a+b"),
            &[],
            b"",
        )
        .await;
        assert_eq!(r.error_code(), Some("InvalidQueryParameterValue"));
        let missing = format!(
            "{}/nofs?resource=filesystem&recursive=true",
            server.endpoint()
        );
        let r = send(&client, Method::GET, &missing, &[], b"").await;
        assert_eq!(r.status, StatusCode::NOT_FOUND);
        assert_eq!(r.error_code(), Some("FilesystemNotFound"));
    }

    #[tokio::test]
    async fn delete_paths_and_filesystems() {
        let (server, client, fs) = with_filesystem(Options::default()).await;
        create_file(&client, &format!("{fs}/dir/f.txt")).await;
        let r = send(&client, Method::DELETE, &format!("{fs}/dir"), &[], b"").await;
        assert_eq!(r.status, StatusCode::CONFLICT);
        assert_eq!(r.error_code(), Some("DirectoryNotEmpty"));
        let r = send(
            &client,
            Method::DELETE,
            &format!("{fs}/dir?recursive=true"),
            &[],
            b"",
        )
        .await;
        assert_eq!(r.status, StatusCode::OK);
        let r = send(
            &client,
            Method::DELETE,
            &format!("{fs}/dir/f.txt"),
            &[],
            b"",
        )
        .await;
        assert_eq!(r.status, StatusCode::NOT_FOUND);
        assert_eq!(r.error_code(), Some("PathNotFound"));

        let head = send(&client, Method::HEAD, &format!("{fs}/dir/f.txt"), &[], b"").await;
        assert_eq!(head.status, StatusCode::NOT_FOUND);
        assert_eq!(head.error_code(), Some("PathNotFound"));
        assert!(head.body.is_empty());

        let r = send(
            &client,
            Method::PUT,
            &format!("{fs}?resource=filesystem"),
            &[],
            b"",
        )
        .await;
        assert_eq!(r.error_code(), Some("FilesystemAlreadyExists"));
        let r = send(
            &client,
            Method::DELETE,
            &format!("{fs}?resource=filesystem"),
            &[],
            b"",
        )
        .await;
        assert_eq!(r.status, StatusCode::ACCEPTED);
        let r = send(
            &client,
            Method::PUT,
            &format!("{fs}/x?resource=file"),
            &[],
            b"",
        )
        .await;
        assert_eq!(r.error_code(), Some("FilesystemNotFound"));
        let bad = format!("{}/Bad--Name?resource=filesystem", server.endpoint());
        let r = send(&client, Method::PUT, &bad, &[], b"").await;
        assert_eq!(r.error_code(), Some("InvalidResourceName"));
    }

    #[tokio::test]
    async fn every_answer_carries_the_service_headers_and_auth_is_enforced() {
        let (server, client, fs) = with_filesystem(Options::default()).await;
        let url = format!("{fs}/f.txt?resource=file");

        let r = send(
            &client,
            Method::PUT,
            &url,
            &[("x-ms-client-request-id", "abc-123")],
            b"",
        )
        .await;
        let id = r.header("x-ms-request-id").unwrap();
        assert!(uuid::Uuid::parse_str(id).is_ok(), "{id}");
        assert_eq!(r.header("x-ms-version"), Some("2023-11-03"));
        assert_eq!(r.header("x-ms-client-request-id"), Some("abc-123"));
        assert!(parse_http_date(r.header("date").unwrap()).is_some());
        assert_eq!(r.headers.get_all("date").iter().count(), 1);

        let r = send(&client, Method::PUT, &url, &[("authorization", "")], b"").await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        assert_eq!(r.error_code(), Some("NoAuthenticationInformation"));
        assert!(r.header("www-authenticate").is_some());
        let other = format!("SharedKey someoneelse:{}", B64.encode([0u8; 32]));
        let r = send(
            &client,
            Method::PUT,
            &url,
            &[("authorization", &other)],
            b"",
        )
        .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);
        assert_eq!(r.error_code(), Some("AuthenticationFailed"));
        let r = send(
            &client,
            Method::PUT,
            &url,
            &[("authorization", "Basic abc")],
            b"",
        )
        .await;
        assert_eq!(r.error_code(), Some("InvalidAuthenticationInfo"));
        let r = send(
            &client,
            Method::PUT,
            &url,
            &[("authorization", "Bearer eyJ0eXAi")],
            b"",
        )
        .await;
        assert_eq!(r.status, StatusCode::CREATED);
        let r = send(&client, Method::PUT, &url, &[("x-ms-version", "")], b"").await;
        assert_eq!(r.error_code(), Some("MissingRequiredHeader"));
        let r = send(
            &client,
            Method::PUT,
            &url,
            &[("x-ms-version", "2017-11-09")],
            b"",
        )
        .await;
        assert_eq!(r.error_code(), Some("UnsupportedRestVersion"));
        let r = send(&client, Method::PUT, &format!("{url}&bogus=1"), &[], b"").await;
        assert_eq!(r.error_code(), Some("UnsupportedQueryParameter"));
        let r = send(
            &client,
            Method::PATCH,
            &format!("{fs}/f.txt?action=append"),
            &[],
            b"x",
        )
        .await;
        assert_eq!(r.error_code(), Some("MissingRequiredQueryParameter"));
        let r = send(
            &client,
            Method::PATCH,
            &format!("{fs}/f.txt?action=append&position=-1"),
            &[],
            b"x",
        )
        .await;
        assert_eq!(r.error_code(), Some("InvalidQueryParameterValue"));

        let recorded = server.requests();
        let last = recorded.last().unwrap();
        assert_eq!(last.method, Method::PATCH);
        assert_eq!(
            last.uri.to_string(),
            "/devstoreaccount1/fs1/f.txt?action=append&position=-1"
        );
        assert_eq!(last.query("position").as_deref(), Some("-1"));
        assert_eq!(&last.body[..], b"x");
    }

    #[tokio::test]
    async fn status_fault_answers_without_applying() {
        let (server, client, fs) = with_filesystem(Options::default()).await;
        let url = format!("{fs}/f.txt");
        create_file(&client, &url).await;
        append(&client, &url, 0, b"abc").await;
        server.inject(Fault::Status {
            status: 503,
            code: "ServerBusy",
            retry_after: None,
            times: 2,
            matching: Matcher::any().method(Method::PATCH).action("flush"),
        });
        // Not matching: a read goes through.
        assert_eq!(read(&client, &url).await.status, StatusCode::OK);
        for _ in 0..2 {
            let r = flush(&client, &url, 3).await;
            assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
            assert_eq!(r.error_code(), Some("ServerBusy"));
            assert_eq!(r.json()["error"]["code"], "ServerBusy");
            assert!(read(&client, &url).await.body.is_empty());
        }
        assert_eq!(server.pending_faults(), 0);
        assert_eq!(flush(&client, &url, 3).await.status, StatusCode::OK);
        assert_eq!(&read(&client, &url).await.body[..], b"abc");

        server.inject(Fault::Status {
            status: 429,
            code: "TooManyRequests",
            retry_after: Some(Duration::from_millis(1500)),
            times: 1,
            matching: Matcher::any(),
        });
        let r = send(&client, Method::HEAD, &url, &[], b"").await;
        assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(r.header("retry-after"), Some("2"));
        assert_eq!(r.header("x-ms-retry-after-ms"), Some("1500"));
        assert!(r.body.is_empty());
    }

    #[tokio::test]
    async fn dropped_response_after_apply_is_ambiguous() {
        let (server, client, fs) = with_filesystem(Options::default()).await;
        let url = format!("{fs}/f.txt");
        create_file(&client, &url).await;
        let before = server.connections_accepted();
        server.inject(Fault::DropResponseAfterApply {
            times: 1,
            matching: Matcher::any().action("append"),
        });
        let lost = send_raw(
            &client,
            Method::PATCH,
            &format!("{url}?action=append&position=0"),
            &[],
            b"abc",
        )
        .await;
        let err = lost.err().expect("the client sees no answer");
        assert!(
            hyper_error(&err).is_some_and(hyper::Error::is_incomplete_message),
            "closed without an answer: {err:?}"
        );
        // The append happened: a flush finds the data.
        assert_eq!(flush(&client, &url, 3).await.status, StatusCode::OK);
        assert_eq!(&read(&client, &url).await.body[..], b"abc");
        assert!(
            server.connections_accepted() > before,
            "a new connection was needed"
        );
    }

    #[tokio::test]
    async fn reset_before_apply_applies_nothing() {
        let (server, client, fs) = with_filesystem(Options::default()).await;
        let url = format!("{fs}/f.txt");
        server.inject(Fault::ResetBeforeApply {
            times: 1,
            matching: Matcher::any().method(Method::PUT).resource("file"),
        });
        let lost = send_raw(
            &client,
            Method::PUT,
            &format!("{url}?resource=file"),
            &[],
            b"",
        )
        .await;
        let err = lost.err().expect("the connection is reset");
        assert_eq!(
            io_error_kind(&err),
            Some(std::io::ErrorKind::ConnectionReset),
            "{err:?}"
        );
        let head = send(&client, Method::HEAD, &url, &[], b"").await;
        assert_eq!(head.status, StatusCode::NOT_FOUND);
        assert_eq!(server.requests().len(), 3);
    }

    #[tokio::test]
    async fn delay_answers_late_but_applies() {
        let (server, client, fs) = with_filesystem(Options::default()).await;
        let url = format!("{fs}/f.txt");
        server.inject(Fault::Delay {
            delay: Duration::from_millis(400),
            times: 1,
            matching: Matcher::any().resource("file"),
        });
        let started = std::time::Instant::now();
        let slow = tokio::time::timeout(
            Duration::from_millis(100),
            send_raw(
                &client,
                Method::PUT,
                &format!("{url}?resource=file"),
                &[],
                b"",
            ),
        )
        .await;
        assert!(slow.is_err(), "the client timed out");
        assert!(started.elapsed() < Duration::from_millis(400));
        tokio::time::sleep(Duration::from_millis(500)).await;
        // Applied even though the client gave up.
        assert_eq!(server.file_contents("fs1", "f.txt"), Some(Bytes::new()));

        server.inject(Fault::Delay {
            delay: Duration::from_millis(200),
            times: 1,
            matching: Matcher::any(),
        });
        let started = std::time::Instant::now();
        let r = send(&client, Method::HEAD, &url, &[], b"").await;
        assert_eq!(r.status, StatusCode::OK);
        assert!(started.elapsed() >= Duration::from_millis(200));
    }

    #[test]
    fn pure_helpers() {
        assert_eq!(
            parse_range("bytes=5-"),
            Some(RangeRequest::Bytes {
                start: 5,
                end: None
            })
        );
        assert_eq!(
            parse_range("bytes=0-9"),
            Some(RangeRequest::Bytes {
                start: 0,
                end: Some(9)
            })
        );
        assert_eq!(parse_range("bytes=-9"), None);
        assert_eq!(parse_range("bytes=9-1"), None);
        assert!(valid_filesystem_name("logs-2024"));
        assert!(!valid_filesystem_name("ab"));
        assert!(!valid_filesystem_name("a--b"));
        assert!(!valid_filesystem_name("Logs"));
        assert!(!valid_filesystem_name("-abc"));
        assert_eq!(percent_decode("a%20b+c", true).as_deref(), Some("a b c"));
        assert_eq!(percent_decode("a%20b+c", false).as_deref(), Some("a b+c"));
        assert_eq!(percent_decode("%zz", false), None);
        let token = encode_token(&["d".into(), "x y".into()]);
        assert_eq!(
            decode_token(&token),
            Some(vec!["d".to_owned(), "x y".to_owned()])
        );
        assert!(etag_matches("\"0x8D1\", \"0x8D2\"", "0x8D2"));
        assert!(etag_matches("*", "0x8D2"));
        assert!(!etag_matches("\"0x8D1\"", "0x8D2"));
        let value = HeaderValue::from_static("a=YQ==, b_2=");
        assert_eq!(parse_properties(Some(&value)).unwrap().len(), 2);
        let bad = HeaderValue::from_static("1a=YQ==");
        assert_eq!(
            parse_properties(Some(&bad)).unwrap_err().code,
            "InvalidPropertyName"
        );

        let mut chunks = BTreeMap::new();
        chunks.insert(0, Bytes::from_static(b"ab"));
        chunks.insert(2, Bytes::from_static(b"cdef"));
        chunks.insert(9, Bytes::from_static(b"z"));
        let plan = plan_flush(0, &chunks, 4).unwrap();
        assert_eq!(plan.appended, b"abcd");
        assert_eq!(plan.straddler, Some(2));
        let kept = retained(&chunks, 4, plan.straddler);
        assert_eq!(kept.get(&4).map(|b| &b[..]), Some(&b"ef"[..]));
        assert!(kept.contains_key(&9));
        assert!(plan_flush(0, &chunks, 7).is_none());
        assert!(plan_flush(2, &chunks, 1).is_none());
        assert_eq!(plan_flush(3, &chunks, 3).unwrap().appended, b"");
    }
}
