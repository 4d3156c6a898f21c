//! The wire format: the headers every answer carries, response building, and
//! pure parsers for what a request holds (dates, versions, percent-encoding,
//! query parameters, the target path, `x-ms-properties`, ranges).

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Method, Response, StatusCode, Uri};
use http_body_util::Full;
use time::format_description::BorrowedFormatItem;
use time::macros::format_description;
use time::{OffsetDateTime, PrimitiveDateTime};

use super::error::{invalid_header, invalid_param, missing_param, ApiError};
use super::RecordedRequest;

/// Version the service reports for a request without `x-ms-version`.
const UNVERSIONED: &str = "2009-09-19";
const SERVER: &str = "Windows-Azure-HDFS/1.0 Microsoft-HTTPAPI/2.0";
pub(super) const JSON_TYPE: &str = "application/json;charset=utf-8";

const HTTP_DATE: &[BorrowedFormatItem<'static>] = format_description!(
    "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
);
const ISO_TIME: &[BorrowedFormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:7]Z");

pub(super) type Resp = Response<Full<Bytes>>;

/// Per-request facts every answer carries.
pub(super) struct Ctx {
    pub(super) request_id: String,
    version: String,
    client_request_id: Option<HeaderValue>,
    pub(super) head: bool,
}

impl Ctx {
    pub(super) fn new(req: &RecordedRequest) -> Ctx {
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

    pub(super) fn builder(&self, status: StatusCode) -> http::response::Builder {
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

pub(super) fn finish(builder: http::response::Builder, body: Bytes) -> Resp {
    builder.body(Full::new(body)).unwrap_or_else(|_| {
        let mut r = Response::new(Full::new(Bytes::new()));
        *r.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
        r
    })
}

/// An answer with no body and `Content-Length: 0`.
pub(super) fn empty(builder: http::response::Builder) -> Resp {
    finish(builder.header(header::CONTENT_LENGTH, "0"), Bytes::new())
}

pub(super) fn http_date(t: OffsetDateTime) -> String {
    t.format(HTTP_DATE).unwrap_or_default()
}

pub(super) fn iso_time(t: OffsetDateTime) -> String {
    t.format(ISO_TIME).unwrap_or_default()
}

pub(super) fn parse_http_date(s: &str) -> Option<OffsetDateTime> {
    PrimitiveDateTime::parse(s.trim(), HTTP_DATE)
        .ok()
        .map(PrimitiveDateTime::assume_utc)
}

pub(super) fn whole_seconds(t: OffsetDateTime) -> OffsetDateTime {
    t.replace_nanosecond(0).unwrap_or(t)
}

/// Windows file time (100 ns ticks since 1601-01-01), as `creationTime` in listings.
pub(super) fn file_time(t: OffsetDateTime) -> String {
    (t.unix_timestamp_nanos() / 100 + 116_444_736_000_000_000).to_string()
}

pub(super) fn is_version(v: &str) -> bool {
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
pub(super) fn percent_decode(s: &str, plus_as_space: bool) -> Option<String> {
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
pub(super) struct Query {
    pairs: Vec<(String, String)>,
}

impl Query {
    pub(super) fn parse(raw: Option<&str>) -> Result<Query, ApiError> {
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

    pub(super) fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub(super) fn required(&self, name: &str) -> Result<&str, ApiError> {
        self.get(name).ok_or_else(|| missing_param(name))
    }

    /// Rejects parameters the operation does not document (`timeout` is always allowed).
    pub(super) fn allow(&self, allowed: &[&str]) -> Result<(), ApiError> {
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

    pub(super) fn bool(&self, name: &str) -> Result<Option<bool>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(v) if v.eq_ignore_ascii_case("true") => Ok(Some(true)),
            Some(v) if v.eq_ignore_ascii_case("false") => Ok(Some(false)),
            Some(v) => Err(invalid_param(name, v)),
        }
    }

    pub(super) fn u64(&self, name: &str) -> Result<Option<u64>, ApiError> {
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
pub(super) fn valid_filesystem_name(name: &str) -> bool {
    let b = name.as_bytes();
    let lower_alnum = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    (3..=63).contains(&b.len())
        && b.first().is_some_and(|c| lower_alnum(c) || *c == b'$')
        && b.last().is_some_and(lower_alnum)
        && b[1..].iter().all(|c| lower_alnum(c) || *c == b'-')
        && !name.contains("--")
}

/// Splits a decoded path into its segments; empty segments are refused.
pub(super) fn split_path(path: &str) -> Result<Vec<String>, ApiError> {
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
pub(super) struct Target {
    pub(super) account: String,
    pub(super) filesystem: Option<String>,
    pub(super) path: Vec<String>,
}

pub(super) fn parse_target(uri: &Uri) -> Result<Target, ApiError> {
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
pub(super) fn parse_properties(
    value: Option<&HeaderValue>,
) -> Result<Vec<(String, String)>, ApiError> {
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

pub(super) fn render_properties(props: &[(String, String)]) -> String {
    props
        .iter()
        .map(|(n, v)| format!("{n}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// A byte range to read, inclusive.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum RangeRequest {
    /// `bytes=start-` or `bytes=start-end`.
    Bytes { start: u64, end: Option<u64> },
    /// The whole file (no range, or an ignorable `Range`).
    Whole,
}

/// Parses `bytes=a-` / `bytes=a-b`, the two forms the service accepts.
pub(super) fn parse_range(value: &str) -> Option<RangeRequest> {
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
pub(super) fn requested_range(headers: &HeaderMap) -> Result<RangeRequest, ApiError> {
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
