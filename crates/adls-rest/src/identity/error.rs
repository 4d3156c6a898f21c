//! [`IdentityError`]: what a credential knows about a failed token request, found
//! as the `source()` of the crate's [`Error`] (kind [`ErrorKind::Credential`]).
//!
//! It holds the Microsoft identity platform's `error` code and the first line of
//! its `error_description`, never a secret: descriptions pass through
//! [`redact_service_message`] with every secret the request carried.

use std::fmt;

use crate::error::{redact_service_message, Error, ErrorKind};

/// Details of a failed token request.
///
/// Every error the credentials in [`identity`](crate::identity) return is an
/// [`Error`] of kind [`ErrorKind::Credential`] whose `source()` is an
/// `IdentityError`; [`IdentityError::of`] finds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdentityError {
    credential: &'static str,
    unavailable: bool,
    headline: String,
    status: Option<u16>,
    code: Option<String>,
    description: Option<String>,
    error_codes: Vec<i64>,
    trace_id: Option<String>,
    correlation_id: Option<String>,
    detail: Option<String>,
}

impl IdentityError {
    /// A failure of `credential` (e.g. `ClientSecretCredential`), summarized by
    /// `headline` (what was tried and what happened, no secrets).
    pub(crate) fn new(credential: &'static str, headline: impl Into<String>) -> Self {
        IdentityError {
            credential,
            unavailable: false,
            headline: headline.into(),
            status: None,
            code: None,
            description: None,
            error_codes: Vec::new(),
            trace_id: None,
            correlation_id: None,
            detail: None,
        }
    }

    /// The credential is not usable here (not configured, endpoint absent, tool
    /// not installed or not logged in): a chain moves on to the next source.
    pub(crate) fn unavailable(mut self) -> Self {
        self.unavailable = true;
        self
    }

    /// The same facts, reported under another credential's name (a chain's).
    pub(crate) fn renamed(mut self, credential: &'static str) -> Self {
        self.credential = credential;
        self
    }

    pub(crate) fn set_unavailable(&mut self, unavailable: bool) {
        self.unavailable = unavailable;
    }

    pub(crate) fn with_headline(mut self, headline: impl Into<String>) -> Self {
        self.headline = headline.into();
        self
    }

    /// More about the cause, in our words (e.g. the I/O error); no secrets.
    pub(crate) fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    /// Adds to the detail (after what is there).
    pub(crate) fn append_detail(mut self, more: impl Into<String>) -> Self {
        let more = more.into();
        self.detail = Some(match self.detail.take() {
            Some(d) => format!("{d}; {more}"),
            None => more,
        });
        self
    }

    pub(crate) fn headline(&self) -> &str {
        &self.headline
    }

    /// The facts of an error answer.
    pub(crate) fn with_answer(mut self, status: u16, body: ErrorBody, secrets: &[&str]) -> Self {
        self.status = Some(status);
        self.code = body.code;
        self.description = body
            .description
            .map(|d| shorten(&redact_service_message(&d, secrets)));
        self.error_codes = body.error_codes;
        self.trace_id = body.trace_id;
        self.correlation_id = body.correlation_id;
        self
    }

    /// Wraps this into the crate's error (kind [`ErrorKind::Credential`]),
    /// whose message is the credential's name; this error's `Display` says the rest.
    pub(crate) fn into_error(self) -> Error {
        Error::new(ErrorKind::Credential, self.credential).with_source(self)
    }

    /// The `IdentityError` behind `err`, if `err` came from a credential of this module.
    pub fn of(err: &Error) -> Option<&IdentityError> {
        std::error::Error::source(err)?.downcast_ref::<IdentityError>()
    }

    /// Which credential failed, e.g. `ClientSecretCredential`, `DefaultAzureCredential`.
    pub fn credential(&self) -> &'static str {
        self.credential
    }

    /// True when the credential could not even try (not configured, no managed
    /// identity endpoint, `az` missing or not logged in), as opposed to trying
    /// and being refused.
    pub fn is_unavailable(&self) -> bool {
        self.unavailable
    }

    /// HTTP status of the token endpoint's answer, if there was one.
    pub fn status(&self) -> Option<u16> {
        self.status
    }

    /// The OAuth `error` code, e.g. `invalid_client`, `invalid_request`.
    pub fn code(&self) -> Option<&str> {
        self.code.as_deref()
    }

    /// The first line of `error_description` (redacted), e.g.
    /// `AADSTS7000215: Invalid client secret provided. ...`.
    pub fn description(&self) -> Option<&str> {
        self.description.as_deref()
    }

    /// The numeric `error_codes` (AADSTS numbers) of the answer.
    pub fn error_codes(&self) -> &[i64] {
        &self.error_codes
    }

    /// `trace_id` of the answer: quote it to Microsoft support.
    pub fn trace_id(&self) -> Option<&str> {
        self.trace_id.as_deref()
    }

    /// `correlation_id` of the answer.
    pub fn correlation_id(&self) -> Option<&str> {
        self.correlation_id.as_deref()
    }
}

impl fmt::Display for IdentityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts: Vec<String> = Vec::new();
        f.write_str(&self.headline)?;
        match (&self.code, &self.description) {
            (Some(c), Some(d)) => parts.push(format!("{c}: {d}")),
            (Some(c), None) => parts.push(c.clone()),
            (None, Some(d)) => parts.push(d.clone()),
            (None, None) => {}
        }
        if let Some(d) = &self.detail {
            parts.push(d.clone());
        }
        if !parts.is_empty() {
            write!(f, ": {}", parts.join("; "))?;
        }
        let mut ids = Vec::new();
        if let Some(t) = &self.trace_id {
            ids.push(format!("trace id {t}"));
        }
        if let Some(c) = &self.correlation_id {
            ids.push(format!("correlation id {c}"));
        }
        if !ids.is_empty() {
            write!(f, " ({})", ids.join(", "))?;
        }
        Ok(())
    }
}

impl std::error::Error for IdentityError {}

/// The facts of an error answer from a token endpoint, however it spelled them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct ErrorBody {
    pub code: Option<String>,
    pub description: Option<String>,
    pub error_codes: Vec<i64>,
    pub trace_id: Option<String>,
    pub correlation_id: Option<String>,
}

/// Longest description kept (characters).
const MAX_DESCRIPTION: usize = 400;

/// Reads an error answer: the Microsoft identity platform's
/// `{"error":"invalid_client","error_description":"AADSTS7000215: ...\r\nTrace ID: ...",
/// "error_codes":[7000215],"trace_id":"...","correlation_id":"..."}`, IMDS's
/// `{"error":"invalid_request","error_description":"Identity not found"}`, App
/// Service's `{"statusCode":400,"message":"...","correlationId":"..."}` or
/// `{"error":{"code":"...","message":"..."}}`; anything else gives the first
/// line of the body as the description. Only the first line of a description
/// is kept (the rest of Entra's repeats the ids and a timestamp); it is not yet
/// redacted nor shortened ([`IdentityError::with_answer`] does both).
pub(crate) fn parse_error_body(body: &[u8]) -> ErrorBody {
    let text = String::from_utf8_lossy(body);
    let Ok(serde_json::Value::Object(map)) = serde_json::from_str::<serde_json::Value>(&text)
    else {
        return ErrorBody {
            description: first_line(&text),
            ..Default::default()
        };
    };
    let str_field = |obj: &serde_json::Map<String, serde_json::Value>, names: &[&str]| {
        names
            .iter()
            .find_map(|n| obj.get(*n).and_then(|v| v.as_str()).map(str::to_string))
    };
    let mut out = ErrorBody::default();
    match map.get("error") {
        Some(serde_json::Value::String(code)) => out.code = Some(code.clone()),
        Some(serde_json::Value::Object(inner)) => {
            out.code = str_field(inner, &["code", "Code"]);
            out.description =
                str_field(inner, &["message", "Message"]).and_then(|m| first_line(&m));
        }
        _ => {}
    }
    if let Some(d) = str_field(&map, &["error_description", "message", "Message"]) {
        out.description = first_line(&d);
    }
    out.code = out.code.and_then(|c| sanitize_code(&c));
    if let Some(serde_json::Value::Array(codes)) = map.get("error_codes") {
        out.error_codes = codes.iter().filter_map(|c| c.as_i64()).take(8).collect();
    }
    out.trace_id = str_field(&map, &["trace_id"]).and_then(|s| sanitize_id(&s));
    out.correlation_id =
        str_field(&map, &["correlation_id", "correlationId"]).and_then(|s| sanitize_id(&s));
    out
}

/// The first non-empty line of `text`, trimmed, without control characters.
pub(crate) fn first_line(text: &str) -> Option<String> {
    let line = text
        .split(['\r', '\n'])
        .map(str::trim)
        .find(|l| !l.is_empty())?;
    Some(line.chars().filter(|c| !c.is_control()).collect())
}

/// `text` cut to a readable length. Cut only after redacting: a cut secret no
/// longer matches the redaction.
pub(crate) fn shorten(text: &str) -> String {
    let mut out: String = text.chars().take(MAX_DESCRIPTION).collect();
    if text.chars().count() > MAX_DESCRIPTION {
        out.push_str(" ...");
    }
    out
}

fn sanitize_code(code: &str) -> Option<String> {
    let ok = !code.is_empty()
        && code.len() <= 64
        && code
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    ok.then(|| code.to_string())
}

fn sanitize_id(id: &str) -> Option<String> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    ok.then(|| id.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entra_error_body_keeps_code_first_line_and_ids() {
        let body = br#"{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '00000000-0000-0000-0000-000000000001'.\r\nTrace ID: 0b6e5c5e-1c55-4a31-9c1d-6c4f1b3f2a00\r\nCorrelation ID: 7c9c0a4e-2a0f-4a1e-8f57-3c5d1d7f1b11\r\nTimestamp: 2024-01-01 12:00:00Z","error_codes":[7000215],"timestamp":"2024-01-01 12:00:00Z","trace_id":"0b6e5c5e-1c55-4a31-9c1d-6c4f1b3f2a00","correlation_id":"7c9c0a4e-2a0f-4a1e-8f57-3c5d1d7f1b11","error_uri":"https://login.microsoftonline.com/error?code=7000215"}"#;
        let e = parse_error_body(body);
        assert_eq!(e.code.as_deref(), Some("invalid_client"));
        let d = e.description.expect("description");
        assert!(
            d.starts_with("AADSTS7000215: Invalid client secret provided."),
            "{d}"
        );
        assert!(!d.contains("Trace ID"), "only the first line: {d}");
        assert_eq!(e.error_codes, vec![7000215]);
        assert_eq!(
            e.trace_id.as_deref(),
            Some("0b6e5c5e-1c55-4a31-9c1d-6c4f1b3f2a00")
        );
        assert_eq!(
            e.correlation_id.as_deref(),
            Some("7c9c0a4e-2a0f-4a1e-8f57-3c5d1d7f1b11")
        );
    }

    #[test]
    fn other_error_shapes() {
        let imds = parse_error_body(
            br#"{"error":"invalid_request","error_description":"Identity not found"}"#,
        );
        assert_eq!(imds.code.as_deref(), Some("invalid_request"));
        assert_eq!(imds.description.as_deref(), Some("Identity not found"));

        let app = parse_error_body(
            br#"{"statusCode":400,"message":"Unable to load the proper Managed Identity.","correlationId":"c0ffee00-0000-0000-0000-000000000000"}"#,
        );
        assert_eq!(app.code, None);
        assert_eq!(
            app.description.as_deref(),
            Some("Unable to load the proper Managed Identity.")
        );
        assert!(app.correlation_id.is_some());

        let nested =
            parse_error_body(br#"{"error":{"code":"BadRequest","message":"no\nsecond line"}}"#);
        assert_eq!(nested.code.as_deref(), Some("BadRequest"));
        assert_eq!(nested.description.as_deref(), Some("no"));

        let html = parse_error_body(b"\n<html>Bad Gateway</html>\nmore");
        assert_eq!(
            html.description.as_deref(),
            Some("<html>Bad Gateway</html>")
        );
        assert_eq!(parse_error_body(b"").description, None);

        // a code that is not a code is dropped rather than echoed
        let odd = parse_error_body(br#"{"error":"has spaces and maybe a secret"}"#);
        assert_eq!(odd.code, None);
    }

    #[test]
    fn long_descriptions_are_redacted_before_they_are_cut() {
        let secret = "s".repeat(600);
        let body = format!(r#"{{"error":"invalid_request","error_description":"echo: {secret}"}}"#);
        let ie = IdentityError::new("X", "h").with_answer(
            400,
            parse_error_body(body.as_bytes()),
            &[&secret],
        );
        let d = ie.description().expect("d");
        assert!(!d.contains("ssssssss"), "{d}");
        let long = "word ".repeat(200);
        let ie =
            IdentityError::new("X", "h").with_answer(400, parse_error_body(long.as_bytes()), &[]);
        assert!(ie.description().expect("d").ends_with(" ..."));
    }

    #[test]
    fn descriptions_are_redacted_and_errors_typed() {
        let body = parse_error_body(
            br#"{"error":"invalid_client","error_description":"bad secret s3cr3t-VALUE-123 given"}"#,
        );
        let ie = IdentityError::new("ClientSecretCredential", "the token endpoint answered 401")
            .with_answer(401, body, &["s3cr3t-VALUE-123"]);
        let err = ie.into_error();
        assert_eq!(err.kind(), ErrorKind::Credential);
        let shown = format!("{err} {err:?}");
        assert!(!shown.contains("s3cr3t-VALUE-123"), "{shown}");
        assert!(shown.contains("invalid_client"), "{shown}");
        let ie = IdentityError::of(&err).expect("identity error");
        assert_eq!(ie.code(), Some("invalid_client"));
        assert_eq!(ie.status(), Some(401));
        assert!(!ie.is_unavailable());
    }
}
