//! The crate's one error type: a kind, a message that says what was expected and
//! what was found, and the storage facts that matter at 3 a.m. (HTTP status,
//! `x-ms-error-code`, `x-ms-request-id`, the service's own message).
//!
//! No error ever carries a key, a SAS signature, a token or an `Authorization`
//! value: service messages are passed through `redact_service_message`.

use std::fmt;
use std::time::Duration;

use http::StatusCode;

/// What went wrong, broadly. New kinds may be added.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// Invalid configuration: endpoint, connection string, path or option.
    Config,
    /// Invalid or unusable credential, or a token provider failed.
    Credential,
    /// Could not open a connection (DNS, TCP).
    Connect,
    /// The TLS handshake failed (e.g. an untrusted certificate): retrying
    /// cannot help; fix the trust roots or the endpoint.
    Tls,
    /// An attempt or the overall retry deadline ran out.
    Timeout,
    /// The connection closed or reset while a request was in flight.
    Connection,
    /// The service answered with an error status.
    Service,
    /// The service's answer could not be understood (bad XML/JSON, missing header).
    Protocol,
    /// A local invariant of the create / append / flush protocol was broken by the
    /// remote state (e.g. a flush whose staged data is not contiguous).
    Conflict,
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ErrorKind::Config => "configuration error",
            ErrorKind::Credential => "credential error",
            ErrorKind::Connect => "connect error",
            ErrorKind::Tls => "TLS error",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Connection => "connection error",
            ErrorKind::Service => "storage service error",
            ErrorKind::Protocol => "protocol error",
            ErrorKind::Conflict => "conflict",
        })
    }
}

/// An error from this crate (boxed inside, so `Result`s stay small).
///
/// ```no_run
/// # async fn demo(file: adls_rest::File) {
/// match file.properties().await {
///     Ok(props) => println!("{} bytes committed", props.content_length),
///     Err(e) if e.is_not_found() => println!("not written yet"),
///     Err(e) => eprintln!(
///         "{e}: status {:?}, x-ms-error-code {:?}, x-ms-request-id {:?}, retryable: {}",
///         e.status(),
///         e.error_code(),
///         e.request_id(),
///         e.is_retryable(),
///     ),
/// }
/// # }
/// ```
///
/// Errors found before anything is sent have no status and are not retryable:
///
/// ```
/// use adls_rest::{Account, ErrorKind};
///
/// let e = Account::azure("My_Account").unwrap_err();
/// assert_eq!(e.kind(), ErrorKind::Config);
/// assert_eq!(e.status(), None);
/// assert!(!e.is_retryable());
/// assert!(e.to_string().contains("expected 3-24 lowercase letters and digits"));
/// ```
pub struct Error(Box<Inner>);

struct Inner {
    kind: ErrorKind,
    message: String,
    status: Option<StatusCode>,
    error_code: Option<String>,
    request_id: Option<String>,
    service_message: Option<String>,
    retry_after: Option<Duration>,
    maybe_applied: bool,
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl Error {
    /// A new error of `kind`; `message` must not contain secrets.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error(Box::new(Inner {
            kind,
            message: message.into(),
            status: None,
            error_code: None,
            request_id: None,
            service_message: None,
            retry_after: None,
            maybe_applied: false,
            source: None,
        }))
    }

    pub(crate) fn config(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Config, message)
    }

    pub(crate) fn protocol(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Protocol, message)
    }

    pub(crate) fn with_source(
        mut self,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        self.0.source = Some(source.into());
        self
    }

    /// An error answer from the service.
    pub(crate) fn service(
        status: StatusCode,
        error_code: Option<String>,
        request_id: Option<String>,
        service_message: Option<String>,
        retry_after: Option<Duration>,
    ) -> Self {
        let mut e = Error::new(
            ErrorKind::Service,
            format!("the service answered {}", status.as_u16()),
        );
        e.0.status = Some(status);
        e.0.error_code = error_code;
        e.0.request_id = request_id;
        e.0.service_message = service_message;
        e.0.retry_after = retry_after;
        e
    }

    /// A typed `InvalidFlushPosition` (400), raised by the service on DFS and by
    /// this crate on the Blob dialect, so both dialects fail the same way.
    pub(crate) fn invalid_flush_position(message: impl Into<String>) -> Self {
        let mut e = Error::new(ErrorKind::Service, message);
        e.0.status = Some(StatusCode::BAD_REQUEST);
        e.0.error_code = Some("InvalidFlushPosition".into());
        e
    }

    /// The broad kind.
    pub fn kind(&self) -> ErrorKind {
        self.0.kind
    }

    /// HTTP status of the service's answer, if there was one.
    pub fn status(&self) -> Option<StatusCode> {
        self.0.status
    }

    /// The `x-ms-error-code` (or the code from the error body), e.g. `BlobAlreadyExists`.
    pub fn error_code(&self) -> Option<&str> {
        self.0.error_code.as_deref()
    }

    /// The service's `x-ms-request-id`: quote it to Azure support.
    pub fn request_id(&self) -> Option<&str> {
        self.0.request_id.as_deref()
    }

    /// The service's own message (redacted of signatures).
    pub fn service_message(&self) -> Option<&str> {
        self.0.service_message.as_deref()
    }

    /// How long the service asked us to wait (`Retry-After`, `x-ms-retry-after-ms`).
    pub fn retry_after(&self) -> Option<Duration> {
        self.0.retry_after
    }

    /// True for 404 answers.
    pub fn is_not_found(&self) -> bool {
        self.0.status == Some(StatusCode::NOT_FOUND)
    }

    /// True when an attempt of the failed request may nonetheless have been
    /// applied by the service (a timeout, a connection lost after sending, a
    /// 500/502/504, on this or an earlier attempt): its outcome is unknown.
    /// False when no attempt can have been applied (e.g. connection refused).
    pub fn may_have_been_applied(&self) -> bool {
        self.0.maybe_applied
    }

    pub(crate) fn set_maybe_applied(mut self, maybe: bool) -> Self {
        self.0.maybe_applied = maybe;
        self
    }

    /// True for 409 answers saying the path/blob/container already exists.
    pub fn is_already_exists(&self) -> bool {
        self.0.status == Some(StatusCode::CONFLICT)
            && matches!(
                self.error_code(),
                Some(
                    "PathAlreadyExists"
                        | "BlobAlreadyExists"
                        | "ContainerAlreadyExists"
                        | "FilesystemAlreadyExists"
                )
            )
    }

    /// True when a flush's position does not match the data appended.
    pub fn is_invalid_flush_position(&self) -> bool {
        self.error_code() == Some("InvalidFlushPosition")
    }

    /// Whether trying the same request again may succeed: connect errors,
    /// timeouts, dropped connections, and 408, 429, 500, 502, 503, 504.
    pub fn is_retryable(&self) -> bool {
        match self.0.kind {
            ErrorKind::Connect | ErrorKind::Timeout | ErrorKind::Connection => true,
            ErrorKind::Service => matches!(
                self.0.status.map(|s| s.as_u16()),
                Some(408 | 429 | 500 | 502 | 503 | 504)
            ),
            _ => false,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.0.kind, self.0.message)?;
        let mut facts = Vec::new();
        if let Some(code) = &self.0.error_code {
            facts.push(format!("code {code}"));
        }
        if let Some(id) = &self.0.request_id {
            facts.push(format!("request id {id}"));
        }
        if !facts.is_empty() {
            write!(f, " ({})", facts.join(", "))?;
        }
        if let Some(m) = &self.0.service_message {
            write!(f, ": {m}")?;
        }
        // the whole cause chain, so "connect error: tcp connect error:
        // Connection refused" survives one-line reporting
        let mut cause: Option<&(dyn std::error::Error + 'static)> = self
            .0
            .source
            .as_ref()
            .map(|s| s.as_ref() as &(dyn std::error::Error + 'static));
        while let Some(c) = cause {
            write!(f, ": {c}")?;
            cause = c.source();
        }
        Ok(())
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Error");
        d.field("kind", &self.0.kind)
            .field("message", &self.0.message);
        if let Some(s) = self.0.status {
            d.field("status", &s.as_u16());
        }
        if let Some(c) = &self.0.error_code {
            d.field("error_code", c);
        }
        if let Some(r) = &self.0.request_id {
            d.field("request_id", r);
        }
        if let Some(m) = &self.0.service_message {
            d.field("service_message", m);
        }
        if let Some(r) = &self.0.retry_after {
            d.field("retry_after", r);
        }
        if let Some(s) = &self.0.source {
            d.field("source", &s.to_string());
        }
        d.finish()
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0
            .source
            .as_ref()
            .map(|s| s.as_ref() as &(dyn std::error::Error + 'static))
    }
}

/// Removes what must never be shown from a message the service sent back.
///
/// Azure's `AuthenticationFailed` answers quote the request's signature and the
/// string-to-sign the service computed (`AuthenticationErrorDetail`); SAS
/// failures can quote the URL with its `sig=`. We keep the first sentence of the
/// detail and drop everything that follows a quote of a signature.
pub(crate) fn redact_service_message(message: &str, sent_secrets: &[&str]) -> String {
    let mut out = message.to_string();
    for s in sent_secrets.iter().filter(|s| s.len() >= 8) {
        out = out.replace(*s, crate::secret::REDACTED);
    }
    // "The MAC signature found in the HTTP request '<sig>' is not the same as any
    // computed signature. Server used following string to sign: '...'."
    if let Some(i) = out.find("The MAC signature found in the HTTP request") {
        out.truncate(i);
        out.push_str("The MAC signature in the request did not match the one the service computed (details redacted).");
    }
    redact_query_param(&out, "sig")
}

/// Replaces the value of `name=` query parameters (e.g. a SAS `sig=`) in free text.
pub(crate) fn redact_query_param(text: &str, name: &str) -> String {
    let needle_lower = format!("{name}=");
    let lower = text.to_ascii_lowercase();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while let Some(pos) = lower[i..].find(&needle_lower) {
        let at = i + pos;
        let boundary =
            at == 0 || matches!(text.as_bytes()[at - 1], b'?' | b'&' | b' ' | b'\'' | b'"');
        let value_start = at + needle_lower.len();
        out.push_str(&text[i..value_start]);
        if boundary {
            let end = text[value_start..]
                .find(['&', ' ', '\'', '"', '<'])
                .map(|e| value_start + e)
                .unwrap_or(text.len());
            out.push_str(crate::secret::REDACTED);
            i = end;
        } else {
            i = value_start;
        }
    }
    out.push_str(&text[i..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retryable_statuses() {
        for (code, retry) in [
            (400, false),
            (401, false),
            (403, false),
            (404, false),
            (408, true),
            (409, false),
            (412, false),
            (429, true),
            (500, true),
            (501, false),
            (502, true),
            (503, true),
            (504, true),
        ] {
            let e = Error::service(
                StatusCode::from_u16(code).expect("status"),
                None,
                None,
                None,
                None,
            );
            assert_eq!(e.is_retryable(), retry, "status {code}");
        }
        assert!(Error::new(ErrorKind::Connect, "x").is_retryable());
        assert!(!Error::new(ErrorKind::Config, "x").is_retryable());
    }

    #[test]
    fn display_carries_storage_facts() {
        let e = Error::service(
            StatusCode::FORBIDDEN,
            Some("AuthorizationFailure".into()),
            Some("req-1".into()),
            Some("This request is not authorized".into()),
            None,
        );
        let s = e.to_string();
        assert!(
            s.contains("403") && s.contains("AuthorizationFailure") && s.contains("req-1"),
            "{s}"
        );
    }

    #[test]
    fn service_messages_lose_signatures() {
        let msg = "Server failed to authenticate the request. The MAC signature found in the HTTP request 'abcdEFGH1234+/=' is not the same as any computed signature. Server used following string to sign: 'PUT\n\n'.";
        let red = redact_service_message(msg, &["abcdEFGH1234+/="]);
        assert!(!red.contains("abcdEFGH1234"), "{red}");
        assert!(!red.contains("string to sign"), "{red}");
        assert!(red.starts_with("Server failed to authenticate the request."));
        let red = redact_service_message("bad url https://a/b?sv=1&sig=SECRETSIG&se=2", &[]);
        assert_eq!(red, "bad url https://a/b?sv=1&sig=<redacted>&se=2");
        // a word that merely contains "sig=" is not a query parameter
        assert_eq!(redact_query_param("design=x", "sig"), "design=x");
    }
}
