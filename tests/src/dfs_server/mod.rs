//! An in-process test server for the Azure Data Lake Storage Gen2 REST API
//! (the DFS endpoint), on plain HTTP at 127.0.0.1, path style
//! (`/{account}/{filesystem}/{path}`), with deterministic fault injection.
//!
//! Released Azurite does not speak the DFS dialect (it answers `?resource=file`
//! and `?action=append` with an empty 400). The independent DFS emulator
//! (Azurite built from pull request #2635) does, but diverges from Microsoft's
//! documentation in places (`docs/TESTING.md` lists them), and injects no
//! faults; so the client's DFS requests are tested against both, and this server
//! follows the documentation where they disagree. It keeps everything in memory
//! and implements the hierarchical-namespace semantics of the operations our
//! client uses.
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
//!   `Last-Modified`, `Content-Type`, `Content-MD5` (when a flush stored one),
//!   `x-ms-resource-type`, `x-ms-properties`,
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
//! - **Append** (with the default [`Reappend::Replace`]) stores its body as an
//!   uncommitted chunk keyed by `position`; it is
//!   invisible to reads, properties and listings. Appends at any position are
//!   accepted (the spec allows parallel, out-of-order uploads); contiguity is
//!   checked at flush. An append at a position that already holds a chunk
//!   *replaces* that chunk, so re-sending an append whose response was lost is
//!   harmless. An empty body is accepted and stores nothing. `Content-MD5`, if
//!   present, must match the body (400 `Md5Mismatch`; malformed → 400
//!   `InvalidMd5`), and so must `x-ms-content-crc64` (Azure's CRC-64, 400
//!   `Crc64Mismatch`; malformed → 400 `InvalidHeaderValue`): both are
//!   transactional ("not stored with the file").
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
//!   `x-ms-content-*` headers on a flush replace only the headers given, except
//!   `x-ms-content-md5`, which the reference says is stored and returned as
//!   `Content-MD5` by get properties and reads, and cleared when a flush or set
//!   properties leaves it out; it is not compared with the data.
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

mod append_flush;
mod conditions;
mod connection;
mod error;
mod filesystem;
mod path;
mod route;
mod state;
#[cfg(test)]
mod tests;
mod wire;

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode, Uri};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use connection::{accept_loop, lock, Shared};
use state::{Kind, State};
use wire::Query;

/// The account name the server answers for unless [`Options::account`] says otherwise.
pub const DEFAULT_ACCOUNT: &str = "devstoreaccount1";

/// The most entries one list call returns ("If omitted or greater than 5,000,
/// the response will include up to 5,000 items").
pub const MAX_RESULTS: usize = 5000;

/// Settings for [`DfsServer::start_with`].
#[derive(Debug, Clone)]
pub struct Options {
    /// Account name expected as the first path segment and in `SharedKey` headers.
    pub account: String,
    /// Largest page a list call returns, whatever `maxResults` asks (capped at
    /// [`MAX_RESULTS`]); set it small to exercise continuation tokens.
    pub page_size: usize,
    /// What an append at a position that already holds staged data does.
    pub reappend: Reappend,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            account: DEFAULT_ACCOUNT.to_owned(),
            page_size: MAX_RESULTS,
            reappend: Reappend::Replace,
        }
    }
}

/// How appends are staged. The reference says only that `position` is "the
/// position where the data is to be appended" and that a flush needs the
/// uploaded data contiguous and `position` equal to the file's length "after
/// all data has been written"; it does not say what a second append at the
/// same position does, so a client must not assume either.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Reappend {
    /// The chunk staged at a position is replaced by a later append at the same
    /// position: re-sending an append whose answer was lost is harmless.
    #[default]
    Replace,
    /// Every append is staged after the data staged before it, whatever its
    /// `position` (the position is the client's claim, not checked), and a
    /// flush must be at exactly the committed length plus everything staged
    /// (else 400 `InvalidFlushPosition`): re-sending an append stages its bytes
    /// twice. A server the reference allows, where a blind retry duplicates.
    Accumulate,
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
                reappend: options.reappend,
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
