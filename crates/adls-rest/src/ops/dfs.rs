//! The Data Lake Storage Gen2 REST API
//! (<https://learn.microsoft.com/rest/api/storageservices/data-lake-storage-gen2>).

use base64::Engine as _;
use bytes::Bytes;
use http::{HeaderMap, Method, Request};
use url::Url;

use super::{
    build_uri, header_str, headers_with_length, insert, names, parse_http_date, request, ByteRange,
    Checksums, Conditions, ListPage, Metadata, PathItem, PathProperties,
};
use crate::error::Error;

/// Filesystem - Create: `PUT /{fs}?resource=filesystem`.
#[derive(Debug, Clone)]
pub struct CreateFilesystem<'a> {
    /// Filesystem name.
    pub filesystem: &'a str,
}

impl CreateFilesystem<'_> {
    /// The request.
    pub fn request(&self, endpoint: &Url) -> Result<Request<Bytes>, Error> {
        let uri = build_uri(
            endpoint,
            self.filesystem,
            None,
            &[("resource", "filesystem")],
        )?;
        Ok(request(
            Method::PUT,
            uri,
            headers_with_length(0),
            Bytes::new(),
        ))
    }
}

/// Filesystem - Delete: `DELETE /{fs}?resource=filesystem`.
#[derive(Debug, Clone)]
pub struct DeleteFilesystem<'a> {
    /// Filesystem name.
    pub filesystem: &'a str,
}

impl DeleteFilesystem<'_> {
    /// The request.
    pub fn request(&self, endpoint: &Url) -> Result<Request<Bytes>, Error> {
        let uri = build_uri(
            endpoint,
            self.filesystem,
            None,
            &[("resource", "filesystem")],
        )?;
        Ok(request(Method::DELETE, uri, HeaderMap::new(), Bytes::new()))
    }
}

/// What a Path - Create makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResourceKind {
    /// A file.
    File,
    /// A directory.
    Directory,
}

/// Path - Create: `PUT /{fs}/{path}?resource=file|directory`.
#[derive(Debug, Clone)]
pub struct CreatePath<'a> {
    /// Filesystem name.
    pub filesystem: &'a str,
    /// Path inside the filesystem (unencoded).
    pub path: &'a str,
    /// File or directory.
    pub kind: ResourceKind,
    /// `If-None-Match: *` for create-new, or etag conditions.
    pub conditions: &'a Conditions,
    /// `x-ms-content-type`.
    pub content_type: Option<&'a str>,
    /// `x-ms-content-encoding` (e.g. `gzip` for a gzip-compressed file).
    pub content_encoding: Option<&'a str>,
    /// `x-ms-properties`.
    pub metadata: &'a Metadata,
}

impl CreatePath<'_> {
    /// The request.
    pub fn request(&self, endpoint: &Url) -> Result<Request<Bytes>, Error> {
        let resource = match self.kind {
            ResourceKind::File => "file",
            ResourceKind::Directory => "directory",
        };
        let uri = build_uri(
            endpoint,
            self.filesystem,
            Some(self.path),
            &[("resource", resource)],
        )?;
        let mut h = headers_with_length(0);
        self.conditions.apply(&mut h)?;
        if let Some(ct) = self.content_type {
            insert(&mut h, names::X_MS_CONTENT_TYPE, ct)?;
        }
        if let Some(ce) = self.content_encoding {
            insert(&mut h, names::X_MS_CONTENT_ENCODING, ce)?;
        }
        if !self.metadata.is_empty() {
            insert(
                &mut h,
                names::X_MS_PROPERTIES,
                &encode_properties(self.metadata),
            )?;
        }
        Ok(request(Method::PUT, uri, h, Bytes::new()))
    }
}

/// Path - Update, `action=append`: stage `body` at `position` (uncommitted until flush).
///
/// Like every type in [`crate::ops`], it is a value that builds a request and
/// sends nothing:
///
/// ```
/// # fn main() -> Result<(), adls_rest::Error> {
/// use adls_rest::ops::dfs::AppendData;
/// use adls_rest::Checksums;
/// use bytes::Bytes;
///
/// let endpoint = url::Url::parse("https://myaccount.dfs.core.windows.net").unwrap();
/// let append = AppendData {
///     filesystem: "logs",
///     path: "year=2024/a b.ndjson",
///     position: 0,
///     body: Bytes::from_static(b"{\"id\":1}\n"),
///     checksums: Checksums { md5: true, crc64: false },
/// };
/// let request = append.request(&endpoint)?;
/// assert_eq!(request.method(), http::Method::PATCH);
/// assert_eq!(
///     request.uri(),
///     "https://myaccount.dfs.core.windows.net/logs/year%3D2024/a%20b.ndjson?action=append&position=0"
/// );
/// assert!(request.headers().contains_key("content-md5"));
/// assert_eq!(request.body().len(), 9);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct AppendData<'a> {
    /// Filesystem name.
    pub filesystem: &'a str,
    /// Path inside the filesystem.
    pub path: &'a str,
    /// Offset of the first byte of `body` in the file.
    pub position: u64,
    /// The data; `Bytes`, so a retry resends exactly these bytes.
    pub body: Bytes,
    /// Transactional checksums to send.
    pub checksums: Checksums,
}

impl AppendData<'_> {
    /// The request.
    pub fn request(&self, endpoint: &Url) -> Result<Request<Bytes>, Error> {
        let pos = self.position.to_string();
        let uri = build_uri(
            endpoint,
            self.filesystem,
            Some(self.path),
            &[("action", "append"), ("position", &pos)],
        )?;
        let mut h = headers_with_length(self.body.len());
        // Microsoft's SDKs always send one; a server may not read a body
        // without it (the DFS Azurite of pull request 2635 stores nothing)
        h.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/octet-stream"),
        );
        self.checksums.apply(&mut h, &self.body)?;
        Ok(request(Method::PATCH, uri, h, self.body.clone()))
    }
}

/// Path - Update, `action=flush`: commit the staged data so the file is exactly `[0, position)`.
#[derive(Debug, Clone)]
pub struct FlushData<'a> {
    /// Filesystem name.
    pub filesystem: &'a str,
    /// Path inside the filesystem.
    pub path: &'a str,
    /// The file's length after the flush.
    pub position: u64,
    /// Close the file (raises a `FileClosed` event for readers that watch).
    pub close: bool,
    /// `x-ms-content-type` to set.
    pub content_type: Option<&'a str>,
    /// `x-ms-content-encoding` to set.
    pub content_encoding: Option<&'a str>,
    /// `x-ms-content-md5`: the base64 MD5 of the whole file after this flush,
    /// stored (not checked) and returned as `Content-MD5` afterwards.
    pub content_md5: Option<&'a str>,
    /// Etag conditions.
    pub conditions: &'a Conditions,
}

impl FlushData<'_> {
    /// The request.
    pub fn request(&self, endpoint: &Url) -> Result<Request<Bytes>, Error> {
        let pos = self.position.to_string();
        let uri = build_uri(
            endpoint,
            self.filesystem,
            Some(self.path),
            &[
                ("action", "flush"),
                ("position", &pos),
                ("close", if self.close { "true" } else { "false" }),
            ],
        )?;
        let mut h = headers_with_length(0);
        self.conditions.apply(&mut h)?;
        if let Some(ct) = self.content_type {
            insert(&mut h, names::X_MS_CONTENT_TYPE, ct)?;
        }
        if let Some(ce) = self.content_encoding {
            insert(&mut h, names::X_MS_CONTENT_ENCODING, ce)?;
        }
        if let Some(md5) = self.content_md5 {
            insert(&mut h, names::X_MS_CONTENT_MD5, md5)?;
        }
        Ok(request(Method::PATCH, uri, h, Bytes::new()))
    }
}

/// Path - Read: `GET /{fs}/{path}`, optionally a range (`x-ms-range`).
#[derive(Debug, Clone)]
pub struct ReadPath<'a> {
    /// Filesystem name.
    pub filesystem: &'a str,
    /// Path inside the filesystem.
    pub path: &'a str,
    /// A byte range, or the whole file.
    pub range: Option<ByteRange>,
}

impl ReadPath<'_> {
    /// The request.
    pub fn request(&self, endpoint: &Url) -> Result<Request<Bytes>, Error> {
        let uri = build_uri(endpoint, self.filesystem, Some(self.path), &[])?;
        let mut h = HeaderMap::new();
        if let Some(v) = self.range.map(|r| r.header()).transpose()?.flatten() {
            h.insert(names::X_MS_RANGE, v);
        }
        Ok(request(Method::GET, uri, h, Bytes::new()))
    }
}

/// Path - Get Properties: `HEAD /{fs}/{path}`.
#[derive(Debug, Clone)]
pub struct GetPathProperties<'a> {
    /// Filesystem name.
    pub filesystem: &'a str,
    /// Path inside the filesystem.
    pub path: &'a str,
}

impl GetPathProperties<'_> {
    /// The request.
    pub fn request(&self, endpoint: &Url) -> Result<Request<Bytes>, Error> {
        let uri = build_uri(endpoint, self.filesystem, Some(self.path), &[])?;
        Ok(request(Method::HEAD, uri, HeaderMap::new(), Bytes::new()))
    }

    /// Reads the answer's headers.
    pub fn parse(headers: &HeaderMap) -> Result<PathProperties, Error> {
        let mut metadata = Metadata::new();
        if let Some(p) = header_str(headers, "x-ms-properties") {
            metadata = decode_properties(p)?;
        }
        Ok(PathProperties {
            content_length: content_length(headers)?,
            etag: header_str(headers, "etag").unwrap_or_default().to_string(),
            last_modified: header_str(headers, "last-modified").and_then(parse_http_date),
            content_type: header_str(headers, "content-type").map(str::to_string),
            content_encoding: header_str(headers, "content-encoding").map(str::to_string),
            content_md5: header_str(headers, "content-md5").map(str::to_string),
            metadata,
            is_directory: header_str(headers, "x-ms-resource-type") == Some("directory"),
        })
    }
}

/// Path - Delete: `DELETE /{fs}/{path}[?recursive=true]`.
#[derive(Debug, Clone)]
pub struct DeletePath<'a> {
    /// Filesystem name.
    pub filesystem: &'a str,
    /// Path inside the filesystem.
    pub path: &'a str,
    /// Delete a directory with its contents.
    pub recursive: bool,
}

impl DeletePath<'_> {
    /// The request.
    pub fn request(&self, endpoint: &Url) -> Result<Request<Bytes>, Error> {
        let q: &[(&str, &str)] = if self.recursive {
            &[("recursive", "true")]
        } else {
            &[]
        };
        let uri = build_uri(endpoint, self.filesystem, Some(self.path), q)?;
        Ok(request(Method::DELETE, uri, HeaderMap::new(), Bytes::new()))
    }
}

/// Path - List: `GET /{fs}?resource=filesystem&recursive=..`.
#[derive(Debug, Clone)]
pub struct ListPaths<'a> {
    /// Filesystem name.
    pub filesystem: &'a str,
    /// List under this directory only.
    pub directory: Option<&'a str>,
    /// Descend into subdirectories.
    pub recursive: bool,
    /// Page size (the service's maximum is 5000).
    pub max_results: Option<u32>,
    /// Token from the previous page.
    pub continuation: Option<&'a str>,
}

impl ListPaths<'_> {
    /// The request.
    pub fn request(&self, endpoint: &Url) -> Result<Request<Bytes>, Error> {
        let max = self.max_results.map(|m| m.to_string());
        let mut q: Vec<(&str, &str)> = vec![
            ("resource", "filesystem"),
            ("recursive", if self.recursive { "true" } else { "false" }),
        ];
        if let Some(d) = self.directory {
            q.push(("directory", d));
        }
        if let Some(c) = self.continuation {
            q.push(("continuation", c));
        }
        if let Some(m) = &max {
            q.push(("maxResults", m));
        }
        let uri = build_uri(endpoint, self.filesystem, None, &q)?;
        Ok(request(Method::GET, uri, HeaderMap::new(), Bytes::new()))
    }

    /// Reads the JSON answer and the `x-ms-continuation` header.
    pub fn parse(headers: &HeaderMap, body: &[u8]) -> Result<ListPage, Error> {
        #[derive(serde::Deserialize)]
        struct Paths {
            #[serde(default)]
            paths: Vec<serde_json::Value>,
        }
        let parsed: Paths = serde_json::from_slice(body).map_err(|e| {
            Error::protocol(format!("list paths answer is not the documented JSON: {e}"))
        })?;
        let mut items = Vec::with_capacity(parsed.paths.len());
        for p in parsed.paths {
            let name = p
                .get("name")
                .and_then(|v| v.as_str())
                .ok_or_else(|| Error::protocol("list paths entry without `name`"))?
                .to_string();
            let flag = |k: &str| match p.get(k) {
                Some(serde_json::Value::Bool(b)) => *b,
                Some(serde_json::Value::String(s)) => s.eq_ignore_ascii_case("true"),
                _ => false,
            };
            let content_length = match p.get("contentLength") {
                Some(serde_json::Value::Number(n)) => n.as_u64().unwrap_or(0),
                Some(serde_json::Value::String(s)) => s.parse().map_err(|_| {
                    Error::protocol(format!("list paths entry `{name}` has contentLength `{s}`"))
                })?,
                _ => 0,
            };
            items.push(PathItem {
                is_directory: flag("isDirectory"),
                content_length,
                etag: p.get("etag").and_then(|v| v.as_str()).map(str::to_string),
                last_modified: p
                    .get("lastModified")
                    .and_then(|v| v.as_str())
                    .and_then(parse_http_date),
                name,
            });
        }
        let continuation = header_str(headers, "x-ms-continuation")
            .filter(|c| !c.is_empty())
            .map(str::to_string);
        Ok(ListPage {
            items,
            continuation,
        })
    }
}

/// `x-ms-properties`: `name=base64(value)` pairs joined with commas.
pub fn encode_properties(m: &Metadata) -> String {
    let b64 = &base64::engine::general_purpose::STANDARD;
    m.iter()
        .map(|(n, v)| format!("{n}={}", b64.encode(v)))
        .collect::<Vec<_>>()
        .join(",")
}

/// Parses `x-ms-properties`.
pub fn decode_properties(s: &str) -> Result<Metadata, Error> {
    let b64 = &base64::engine::general_purpose::STANDARD;
    let mut m = Metadata::new();
    for pair in s.split(',').filter(|p| !p.trim().is_empty()) {
        let (n, v) = pair
            .split_once('=')
            .ok_or_else(|| Error::protocol("x-ms-properties pair without `=`"))?;
        let v = b64.decode(v.trim()).map_err(|_| {
            Error::protocol(format!("x-ms-properties value of `{n}` is not base64"))
        })?;
        m.push_unchecked(
            n.trim().to_string(),
            String::from_utf8_lossy(&v).into_owned(),
        );
    }
    Ok(m)
}

pub(crate) fn content_length(headers: &HeaderMap) -> Result<u64, Error> {
    match header_str(headers, "content-length") {
        None => Ok(0),
        Some(v) => v
            .parse()
            .map_err(|_| Error::protocol(format!("Content-Length `{v}` is not a number"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep() -> Url {
        Url::parse("https://acct.dfs.core.windows.net").expect("url")
    }

    fn names(req: &Request<Bytes>) -> Vec<String> {
        req.headers()
            .iter()
            .map(|(n, v)| format!("{n}: {}", v.to_str().expect("ascii")))
            .collect()
    }

    #[test]
    fn create_file_new() {
        let mut md = Metadata::new();
        md.insert("source", "gateway").expect("md");
        let c = Conditions::create_new();
        let r = CreatePath {
            filesystem: "logs",
            path: "year=2024/a b.ndjson",
            kind: ResourceKind::File,
            conditions: &c,
            content_type: Some("application/x-ndjson"),
            content_encoding: None,
            metadata: &md,
        }
        .request(&ep())
        .expect("req");
        assert_eq!(r.method(), Method::PUT);
        assert_eq!(
            r.uri().to_string(),
            "https://acct.dfs.core.windows.net/logs/year%3D2024/a%20b.ndjson?resource=file"
        );
        assert_eq!(
            names(&r),
            [
                "content-length: 0",
                "if-none-match: *",
                "x-ms-content-type: application/x-ndjson",
                "x-ms-properties: source=Z2F0ZXdheQ=="
            ]
        );
    }

    #[test]
    fn append_and_flush() {
        let r = AppendData {
            filesystem: "logs",
            path: "f",
            position: 10,
            body: Bytes::from_static(b"hello"),
            checksums: Checksums {
                md5: true,
                crc64: false,
            },
        }
        .request(&ep())
        .expect("req");
        assert_eq!(r.method(), Method::PATCH);
        assert_eq!(r.uri().query(), Some("action=append&position=10"));
        assert_eq!(
            names(&r),
            [
                "content-length: 5",
                "content-type: application/octet-stream",
                "content-md5: XUFAKrxLKna5cZ2REBfFkg=="
            ]
        );
        assert_eq!(r.body().as_ref(), b"hello");

        let r = FlushData {
            filesystem: "logs",
            path: "f",
            position: 15,
            close: true,
            content_type: None,
            content_encoding: Some("gzip"),
            content_md5: Some("XUFAKrxLKna5cZ2REBfFkg=="),
            conditions: &Conditions::default(),
        }
        .request(&ep())
        .expect("req");
        assert_eq!(r.uri().query(), Some("action=flush&position=15&close=true"));
        assert_eq!(
            names(&r),
            [
                "content-length: 0",
                "x-ms-content-encoding: gzip",
                "x-ms-content-md5: XUFAKrxLKna5cZ2REBfFkg=="
            ]
        );
    }

    #[test]
    fn list_request_and_answer() {
        let r = ListPaths {
            filesystem: "logs",
            directory: Some("a b/c"),
            recursive: true,
            max_results: Some(2),
            continuation: Some("tok+/="),
        }
        .request(&ep())
        .expect("req");
        assert_eq!(
            r.uri().query(),
            Some("resource=filesystem&recursive=true&directory=a%20b%2Fc&continuation=tok%2B%2F%3D&maxResults=2")
        );
        let mut h = HeaderMap::new();
        h.insert("x-ms-continuation", "next".parse().expect("hv"));
        let body = br#"{"paths":[{"name":"d","isDirectory":"true","lastModified":"Sun, 06 Nov 1994 08:49:37 GMT","etag":"0x1"},{"name":"d/f","contentLength":"42","etag":"0x2"}]}"#;
        let page = ListPaths::parse(&h, body).expect("parse");
        assert_eq!(page.items.len(), 2);
        assert!(page.items[0].is_directory);
        assert_eq!(page.items[1].content_length, 42);
        assert_eq!(page.continuation.as_deref(), Some("next"));
        assert!(ListPaths::parse(&h, b"<xml/>").is_err());
    }

    #[test]
    fn properties_round_trip() {
        let mut m = Metadata::new();
        m.insert("a", "x y").expect("md");
        m.insert("b_2", "").expect("md");
        let back = decode_properties(&encode_properties(&m)).expect("decode");
        assert_eq!(back, m);
    }
}
