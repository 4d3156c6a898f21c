//! One type per REST call. Each builds an `http::Request<Bytes>` from its
//! inputs and the endpoint, and (where the answer has a body) parses the
//! answer. Nothing here performs IO or reads the clock: the transport adds
//! `x-ms-date`, `x-ms-version`, `x-ms-client-request-id` and authorization.
//!
//! - [`dfs`]: the Data Lake Storage Gen2 API (filesystems and paths).
//! - [`blob`]: the Blob API (containers and block blobs).

pub mod blob;
pub mod dfs;
mod xml;

pub(crate) use xml::error_code_and_message as xml_error;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Uri};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use time::OffsetDateTime;
use url::Url;

use crate::error::Error;

/// Everything but RFC 3986 unreserved characters is encoded in query values.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');
/// Path segments additionally keep `/`, as Microsoft's SDKs do.
const PATH: &AsciiSet = &QUERY_VALUE.remove(b'/');

/// Percent-encodes a path the way the service and Microsoft's SDKs expect.
pub fn encode_path(path: &str) -> String {
    utf8_percent_encode(path, PATH).to_string()
}

/// Percent-encodes a query value.
pub fn encode_query_value(value: &str) -> String {
    utf8_percent_encode(value, QUERY_VALUE).to_string()
}

/// Checks a filesystem / container name: 3-63 lowercase letters, digits and
/// single hyphens, starting and ending with a letter or digit (`$root` and
/// `$logs` are also allowed).
pub fn validate_filesystem(name: &str) -> Result<(), Error> {
    if matches!(name, "$root" | "$logs" | "$web") {
        return Ok(());
    }
    let b = name.as_bytes();
    let ok = (3..=63).contains(&b.len())
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
        && !name.contains("--");
    if ok {
        Ok(())
    } else {
        Err(Error::config(format!(
            "filesystem/container name `{name}` is invalid; expected 3-63 lowercase letters, digits and single hyphens, starting and ending with a letter or digit"
        )))
    }
}

/// Checks a path inside a filesystem: 1-1024 characters, no empty segment, no
/// `.` or `..` segment, no control characters. A leading `/` is removed.
pub fn validate_path(path: &str) -> Result<&str, Error> {
    let p = path.strip_prefix('/').unwrap_or(path);
    let p = p.strip_suffix('/').unwrap_or(p);
    let problem = if p.is_empty() {
        Some("is empty")
    } else if p.chars().count() > 1024 {
        Some("is longer than 1024 characters")
    } else if p.chars().any(|c| c.is_control()) {
        Some("contains a control character")
    } else if p.split('/').any(str::is_empty) {
        Some("has an empty segment (`//`)")
    } else if p.split('/').any(|s| s == "." || s == "..") {
        Some("has a `.` or `..` segment")
    } else {
        None
    };
    match problem {
        Some(why) => Err(Error::config(format!(
            "path `{}` {why}; expected e.g. `dir/file.ndjson`",
            p.escape_debug()
        ))),
        None => Ok(p),
    }
}

/// User-defined metadata: name/value pairs. Names are C# identifiers, values
/// printable ASCII without leading or trailing spaces (what both APIs accept).
///
/// Names are case-insensitive, and on the Blob dialect they travel as
/// `x-ms-meta-*` headers, which HTTP/1 (and our `http` types) lower-case:
/// `Source` is stored and read back as `source`. Use lower-case names.
///
/// ```
/// # fn main() -> Result<(), adls_rest::Error> {
/// use adls_rest::Metadata;
///
/// let mut metadata = Metadata::new();
/// metadata.insert("writer", "gateway-7")?;
/// assert_eq!(metadata.get("Writer"), Some("gateway-7")); // names are case-insensitive
/// assert!(metadata.insert("not a name", "x").is_err());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Metadata(Vec<(String, String)>);

impl Metadata {
    /// No metadata.
    pub fn new() -> Self {
        Metadata(Vec::new())
    }

    /// Adds a pair after validating it.
    pub fn insert(&mut self, name: &str, value: &str) -> Result<(), Error> {
        let mut chars = name.chars();
        let ident = chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !ident {
            return Err(Error::config(format!(
                "metadata name `{}` is invalid; expected a C# identifier (letters, digits, `_`, not starting with a digit)",
                name.escape_debug()
            )));
        }
        if !value.bytes().all(|b| (0x20..0x7f).contains(&b)) || value.trim() != value {
            return Err(Error::config(format!(
                "metadata value for `{name}` is invalid; expected printable ASCII without leading or trailing spaces"
            )));
        }
        self.0.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        self.0.push((name.to_string(), value.to_string()));
        Ok(())
    }

    /// The pairs, in insertion order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    /// The value of `name` (case-insensitive).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// True when there are no pairs.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub(crate) fn push_unchecked(&mut self, name: String, value: String) {
        self.0.push((name, value));
    }
}

/// Properties of a file (or blob) as returned by a HEAD.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathProperties {
    /// Committed length in bytes.
    pub content_length: u64,
    /// Entity tag of the committed content.
    pub etag: String,
    /// When the content last changed.
    pub last_modified: Option<OffsetDateTime>,
    /// `Content-Type`, if set.
    pub content_type: Option<String>,
    /// `Content-Encoding`, if set.
    pub content_encoding: Option<String>,
    /// `Content-MD5` (base64) of the whole content, where the service keeps one
    /// (Blob computes it for single-request uploads).
    pub content_md5: Option<String>,
    /// User-defined metadata.
    pub metadata: Metadata,
    /// True for DFS directories (and Blob "directory" markers with `hdi_isfolder`).
    pub is_directory: bool,
}

/// One entry of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathItem {
    /// Full path inside the filesystem, unencoded.
    pub name: String,
    /// True for directories (DFS) and common prefixes (Blob, non-recursive).
    pub is_directory: bool,
    /// Length in bytes (0 for directories).
    pub content_length: u64,
    /// Entity tag, where the listing gives one.
    pub etag: Option<String>,
    /// Last modification, where the listing gives one.
    pub last_modified: Option<OffsetDateTime>,
}

/// One page of a listing and the token for the next.
#[derive(Debug, Clone, Default)]
pub struct ListPage {
    /// Entries of this page.
    pub items: Vec<PathItem>,
    /// Continuation token; `None` on the last page.
    pub continuation: Option<String>,
}

/// Conditions for create / flush / read / delete.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Conditions {
    /// `If-Match: <etag>`.
    pub if_match: Option<String>,
    /// `If-None-Match: <etag>` (`*` means "must not exist").
    pub if_none_match: Option<String>,
}

impl Conditions {
    /// Only if the path does not exist yet.
    pub fn create_new() -> Self {
        Conditions {
            if_match: None,
            if_none_match: Some("*".into()),
        }
    }

    fn apply(&self, headers: &mut HeaderMap) -> Result<(), Error> {
        if let Some(e) = &self.if_match {
            headers.insert(http::header::IF_MATCH, header_value(e, "If-Match")?);
        }
        if let Some(e) = &self.if_none_match {
            headers.insert(
                http::header::IF_NONE_MATCH,
                header_value(e, "If-None-Match")?,
            );
        }
        Ok(())
    }
}

/// A byte range `[start, start + len)`; `len == None` means to the end.
///
/// ```
/// use adls_rest::ByteRange;
///
/// let first_kib = ByteRange { start: 0, len: Some(1024) };
/// let from_the_middle = ByteRange { start: 4096, len: None }; // to the end
/// # let _ = (first_kib, from_the_middle);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    /// First byte.
    pub start: u64,
    /// Number of bytes, or to the end.
    pub len: Option<u64>,
}

impl ByteRange {
    fn header(&self) -> Result<Option<HeaderValue>, Error> {
        let v = match self.len {
            Some(0) => {
                return Err(Error::config(
                    "a byte range of length 0 cannot be requested",
                ));
            }
            Some(len) => {
                let Some(last) = self.start.checked_add(len - 1) else {
                    return Err(Error::config(format!(
                        "a byte range of {len} bytes from {} ends past 2^64 (`len: None` reads to the end)",
                        self.start
                    )));
                };
                format!("bytes={}-{last}", self.start)
            }
            None if self.start == 0 => return Ok(None),
            None => format!("bytes={}-", self.start),
        };
        Ok(Some(header_value(&v, "x-ms-range")?))
    }
}

/// Builds the request URL `{endpoint}/{filesystem}[/{path}]?{query}`.
pub(crate) fn build_uri(
    endpoint: &Url,
    filesystem: &str,
    path: Option<&str>,
    query: &[(&str, &str)],
) -> Result<Uri, Error> {
    validate_filesystem(filesystem)?;
    use std::fmt::Write as _;
    // one String, written in place (no piece allocated on its own), which
    // the `Uri` then keeps without a copy: this runs for every request
    let mut s = String::with_capacity(192);
    s.push_str(endpoint.scheme());
    s.push_str("://");
    s.push_str(endpoint.host_str().unwrap_or(""));
    if let Some(port) = endpoint.port() {
        let _ = write!(s, ":{port}");
    }
    s.push_str(endpoint.path().trim_end_matches('/'));
    s.push('/');
    s.push_str(filesystem);
    if let Some(p) = path {
        let p = validate_path(p)?;
        s.push('/');
        s.extend(utf8_percent_encode(p, PATH));
    }
    for (i, (k, v)) in query.iter().enumerate() {
        s.push(if i == 0 { '?' } else { '&' });
        s.push_str(k);
        s.push('=');
        s.extend(utf8_percent_encode(v, QUERY_VALUE));
    }
    Uri::try_from(s).map_err(|e| Error::config(format!("cannot build a request URL: {e}")))
}

pub(crate) fn header_value(v: &str, what: &str) -> Result<HeaderValue, Error> {
    HeaderValue::from_str(v).map_err(|_| {
        Error::config(format!(
            "{what} value `{}` is not a valid HTTP header value",
            v.escape_debug()
        ))
    })
}

pub(crate) fn request(method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Request<Bytes> {
    let mut req = Request::new(body);
    *req.method_mut() = method;
    *req.uri_mut() = uri;
    *req.headers_mut() = headers;
    req
}

/// Headers with `Content-Length` set to the body's length.
pub(crate) fn headers_with_length(len: usize) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(http::header::CONTENT_LENGTH, HeaderValue::from(len));
    h
}

pub(crate) fn insert(h: &mut HeaderMap, name: HeaderName, v: &str) -> Result<(), Error> {
    let v = header_value(v, name.as_str())?;
    h.insert(name, v);
    Ok(())
}

/// The `x-ms-*` and other header names the requests use, made once at
/// compile time (`HeaderName::from_static` outside a constant checks its
/// text on every call).
pub(crate) mod names {
    use http::HeaderName;

    pub(crate) const X_MS_DATE: HeaderName = HeaderName::from_static("x-ms-date");
    pub(crate) const X_MS_VERSION: HeaderName = HeaderName::from_static("x-ms-version");
    pub(crate) const X_MS_CLIENT_REQUEST_ID: HeaderName =
        HeaderName::from_static("x-ms-client-request-id");
    pub(crate) const X_MS_BLOB_TYPE: HeaderName = HeaderName::from_static("x-ms-blob-type");
    pub(crate) const X_MS_BLOB_CONTENT_MD5: HeaderName =
        HeaderName::from_static("x-ms-blob-content-md5");
    pub(crate) const X_MS_BLOB_CONTENT_TYPE: HeaderName =
        HeaderName::from_static("x-ms-blob-content-type");
    pub(crate) const X_MS_BLOB_CONTENT_ENCODING: HeaderName =
        HeaderName::from_static("x-ms-blob-content-encoding");
    pub(crate) const X_MS_RANGE: HeaderName = HeaderName::from_static("x-ms-range");
    pub(crate) const CONTENT_MD5: HeaderName = HeaderName::from_static("content-md5");
    pub(crate) const X_MS_CONTENT_CRC64: HeaderName = HeaderName::from_static("x-ms-content-crc64");
    pub(crate) const X_MS_CONTENT_TYPE: HeaderName = HeaderName::from_static("x-ms-content-type");
    pub(crate) const X_MS_CONTENT_ENCODING: HeaderName =
        HeaderName::from_static("x-ms-content-encoding");
    pub(crate) const X_MS_CONTENT_MD5: HeaderName = HeaderName::from_static("x-ms-content-md5");
    pub(crate) const X_MS_PROPERTIES: HeaderName = HeaderName::from_static("x-ms-properties");
}

/// Who writes: 16 random bytes, shown as 32 lower-case hex digits. Block ids
/// on the Blob dialect carry it ([`blob::block_id`]), so two writers of one
/// blob never replace each other's staged blocks, and a caller can store it
/// (e.g. in metadata) to recognise its own files later.
///
/// ```
/// # fn main() -> Result<(), adls_rest::Error> {
/// use adls_rest::WriterId;
///
/// let writer = WriterId::from_hex("00112233445566778899aabbccddeeff")?;
/// assert_eq!(writer.to_string(), "00112233445566778899aabbccddeeff");
/// assert_eq!(WriterId::process(), WriterId::process()); // one per process
/// assert_ne!(WriterId::random(), WriterId::random());
/// # Ok(()) }
/// ```
///
/// A replica that takes over another's path writes as that writer:
/// `fs.file(path)?.with_writer(writer)` (see [`crate::File::with_writer`]).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct WriterId([u8; 16]);

impl WriterId {
    /// A fresh random id.
    pub fn random() -> Self {
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&fastrand::u64(..).to_le_bytes());
        b[8..].copy_from_slice(&fastrand::u64(..).to_le_bytes());
        WriterId(b)
    }

    /// One random id per process: the default writer of a [`crate::File`].
    pub fn process() -> Self {
        static ID: std::sync::OnceLock<WriterId> = std::sync::OnceLock::new();
        *ID.get_or_init(WriterId::random)
    }

    /// Parses 32 hex digits.
    pub fn from_hex(s: &str) -> Result<Self, Error> {
        let bad = || {
            Error::config(format!(
                "writer id `{}` is invalid; expected 32 hex digits",
                s.escape_debug()
            ))
        };
        if s.len() != 32 {
            return Err(bad());
        }
        let mut b = [0u8; 16];
        for (i, out) in b.iter_mut().enumerate() {
            *out = u8::from_str_radix(s.get(2 * i..2 * i + 2).ok_or_else(bad)?, 16)
                .map_err(|_| bad())?;
        }
        Ok(WriterId(b))
    }
}

impl WriterId {
    /// The 32 lowercase hex digits, without going through a formatter (this
    /// runs for every block staged).
    pub(crate) fn hex(&self) -> [u8; 32] {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut out = [0u8; 32];
        for (i, b) in self.0.iter().enumerate() {
            out[2 * i] = DIGITS[usize::from(b >> 4)];
            out[2 * i + 1] = DIGITS[usize::from(b & 0xf)];
        }
        out
    }
}

impl std::fmt::Display for WriterId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hex = self.hex();
        // hex digits are ASCII
        f.write_str(std::str::from_utf8(&hex).map_err(|_| std::fmt::Error)?)
    }
}

impl std::fmt::Debug for WriterId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "WriterId({self})")
    }
}

/// The base64 MD5 of `data`, as `Content-MD5` and `x-ms-content-md5` carry it.
///
/// ```
/// assert_eq!(adls_rest::content_md5(b""), "1B2M2Y8AsgTpgAmY7PhCfg==");
/// ```
pub fn content_md5(data: &[u8]) -> String {
    use base64::Engine as _;
    use md5::Digest as _;
    base64::engine::general_purpose::STANDARD.encode(md5::Md5::digest(data))
}

/// Transactional checksums of an append body, computed by the caller.
///
/// ```no_run
/// # async fn demo(file: adls_rest::File) -> Result<(), adls_rest::Error> {
/// use adls_rest::Checksums;
/// use bytes::Bytes;
///
/// // The service recomputes both and refuses a body damaged on the way.
/// let both = Checksums { md5: true, crc64: true };
/// file.append(0, Bytes::from_static(b"{\"id\":1}\n"), both).await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Checksums {
    /// Send `Content-MD5` (the service verifies it and answers 400 `Md5Mismatch`).
    pub md5: bool,
    /// Send `x-ms-content-crc64` (Azure's CRC-64, NVME polynomial).
    pub crc64: bool,
}

impl Checksums {
    pub(crate) fn apply(&self, h: &mut HeaderMap, body: &[u8]) -> Result<(), Error> {
        use base64::Engine as _;
        use md5::Digest as _;
        let b64 = &base64::engine::general_purpose::STANDARD;
        if self.md5 {
            let digest = md5::Md5::digest(body);
            h.insert(
                names::CONTENT_MD5,
                header_value(&b64.encode(digest), "Content-MD5")?,
            );
        }
        if self.crc64 {
            let crc = crc::Crc::<u64>::new(&crc::CRC_64_NVME).checksum(body);
            insert(h, names::X_MS_CONTENT_CRC64, &b64.encode(crc.to_le_bytes()))?;
        }
        Ok(())
    }
}

/// Parses an RFC 1123 HTTP date (`Last-Modified`).
pub(crate) fn parse_http_date(s: &str) -> Option<OffsetDateTime> {
    time::PrimitiveDateTime::parse(
        s.trim(),
        time::macros::format_description!(
            "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
        ),
    )
    .ok()
    .map(|p| p.assume_utc())
}

/// Formats a time as an RFC 1123 HTTP date (`x-ms-date`).
pub fn format_http_date(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    t.format(time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    ))
    .unwrap_or_default()
}

pub(crate) fn header_str<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_encode_like_the_sdk() {
        assert_eq!(
            encode_path("dir/a b+c=d&e;f,g'h!(i)*~j%k"),
            "dir/a%20b%2Bc%3Dd%26e%3Bf%2Cg%27h%21%28i%29%2A~j%25k"
        );
        assert_eq!(
            encode_path("données/日本"),
            "donn%C3%A9es/%E6%97%A5%E6%9C%AC"
        );
    }

    #[test]
    fn names_and_paths_are_validated() {
        assert!(validate_filesystem("logs-2024").is_ok());
        for bad in ["Logs", "lo", "-logs", "logs-", "lo--gs", "logs_x"] {
            assert!(validate_filesystem(bad).is_err(), "{bad}");
        }
        assert_eq!(validate_path("/a/b").expect("ok"), "a/b");
        for bad in ["", "a//b", "a/../b", "a\nb"] {
            assert!(validate_path(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn metadata_names_are_identifiers() {
        let mut m = Metadata::new();
        m.insert("a_1", "x").expect("ok");
        assert!(m.insert("1a", "x").is_err());
        assert!(m.insert("a-b", "x").is_err());
        assert!(m.insert("ok", "caf\u{e9}").is_err());
        m.insert("A_1", "y").expect("replaces case-insensitively");
        assert_eq!(m.get("a_1"), Some("y"));
    }

    #[test]
    fn http_dates_round_trip() {
        let t = parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").expect("date");
        assert_eq!(format_http_date(t), "Sun, 06 Nov 1994 08:49:37 GMT");
    }

    #[test]
    fn crc64_is_azure_polynomial() {
        // Azure's CRC-64 of "123456789" (check value of CRC-64/NVME).
        let crc = crc::Crc::<u64>::new(&crc::CRC_64_NVME).checksum(b"123456789");
        assert_eq!(crc, 0xae8b_1486_0a79_9888);
    }
}
