//! The Blob REST API (<https://learn.microsoft.com/rest/api/storageservices/blob-service-rest-api>),
//! with block blobs carrying the create / append / flush model:
//! create → Put Blob (empty), append → Put Block with an id derived from the
//! position, flush → Put Block List of the committed blocks then the staged
//! blocks in position order.

use base64::Engine as _;
use bytes::Bytes;
use http::{HeaderMap, HeaderName, Method, Request};
use url::Url;

use super::{
    build_uri, header_str, header_value, headers_with_length, insert, names, parse_http_date,
    request, xml, ByteRange, Checksums, Conditions, ListPage, Metadata, PathItem, PathProperties,
    WriterId,
};
use crate::error::Error;

/// Container - Create: `PUT /{container}?restype=container`.
#[derive(Debug, Clone)]
pub struct CreateContainer<'a> {
    /// Container name.
    pub container: &'a str,
}

impl CreateContainer<'_> {
    /// The request.
    pub fn request(&self, endpoint: &Url) -> Result<Request<Bytes>, Error> {
        let uri = build_uri(endpoint, self.container, None, &[("restype", "container")])?;
        Ok(request(
            Method::PUT,
            uri,
            headers_with_length(0),
            Bytes::new(),
        ))
    }
}

/// Container - Delete: `DELETE /{container}?restype=container`.
#[derive(Debug, Clone)]
pub struct DeleteContainer<'a> {
    /// Container name.
    pub container: &'a str,
}

impl DeleteContainer<'_> {
    /// The request.
    pub fn request(&self, endpoint: &Url) -> Result<Request<Bytes>, Error> {
        let uri = build_uri(endpoint, self.container, None, &[("restype", "container")])?;
        Ok(request(Method::DELETE, uri, HeaderMap::new(), Bytes::new()))
    }
}

/// Put Blob: creates (or replaces) a block blob holding `body` in one
/// request (an empty body for create-then-append).
#[derive(Debug, Clone)]
pub struct PutBlob<'a> {
    /// Container name.
    pub container: &'a str,
    /// Blob name (unencoded).
    pub blob: &'a str,
    /// `If-None-Match: *` for create-new, or etag conditions.
    pub conditions: &'a Conditions,
    /// `x-ms-blob-content-type`.
    pub content_type: Option<&'a str>,
    /// `x-ms-blob-content-encoding`.
    pub content_encoding: Option<&'a str>,
    /// `x-ms-meta-*`.
    pub metadata: &'a Metadata,
    /// The content; `Bytes`, so a retry resends exactly these bytes.
    pub body: Bytes,
}

impl PutBlob<'_> {
    /// The request.
    pub fn request(&self, endpoint: &Url) -> Result<Request<Bytes>, Error> {
        let uri = build_uri(endpoint, self.container, Some(self.blob), &[])?;
        let mut h = headers_with_length(self.body.len());
        self.conditions.apply(&mut h)?;
        insert(&mut h, names::X_MS_BLOB_TYPE, "BlockBlob")?;
        blob_properties(
            &mut h,
            self.content_type,
            self.content_encoding,
            self.metadata,
        )?;
        Ok(request(Method::PUT, uri, h, self.body.clone()))
    }
}

/// Put Block: stages `body` under the block id of (`writer`, `position`).
#[derive(Debug, Clone)]
pub struct PutBlock<'a> {
    /// Container name.
    pub container: &'a str,
    /// Blob name.
    pub blob: &'a str,
    /// Who stages the block: part of its id, so two writers of one blob
    /// never replace each other's staged blocks.
    pub writer: WriterId,
    /// Offset of the block's first byte in the blob.
    pub position: u64,
    /// The data; `Bytes`, so a retry resends exactly these bytes.
    pub body: Bytes,
    /// Transactional checksums to send.
    pub checksums: Checksums,
}

impl PutBlock<'_> {
    /// The request.
    pub fn request(&self, endpoint: &Url) -> Result<Request<Bytes>, Error> {
        let id = block_id(self.writer, self.position);
        let uri = build_uri(
            endpoint,
            self.container,
            Some(self.blob),
            &[("comp", "block"), ("blockid", &id)],
        )?;
        let mut h = headers_with_length(self.body.len());
        // what Microsoft's SDKs send; some servers do not read a body without one
        h.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/octet-stream"),
        );
        self.checksums.apply(&mut h, &self.body)?;
        Ok(request(Method::PUT, uri, h, self.body.clone()))
    }
}

/// The block id for data staged by `writer` at `position`: the writer's 32
/// hex digits then the position in 22 digits (54 bytes: base64 without
/// padding, within the service's 64-byte limit). Fixed width,
/// so all ids of a blob have the same length (the service requires it); a
/// retried append of one writer rewrites its own block, and two writers of
/// one blob never touch each other's.
pub fn block_id(writer: WriterId, position: u64) -> String {
    // built on the stack: this runs for every block staged
    let mut raw = [b'0'; 54];
    raw[..32].copy_from_slice(&writer.hex());
    // u64::MAX has 20 digits: the first two of the 22 stay '0'
    let mut n = position;
    for d in raw[32..].iter_mut().rev() {
        *d = b'0' + (n % 10) as u8;
        n /= 10;
    }
    base64::engine::general_purpose::STANDARD.encode(raw)
}

/// The writer and position encoded in a [`block_id`], if the id is one of ours.
pub fn parse_block_id(id: &str) -> Option<(WriterId, u64)> {
    let raw = base64::engine::general_purpose::STANDARD.decode(id).ok()?;
    let s = std::str::from_utf8(&raw).ok()?;
    if s.len() != 54 || !s.is_char_boundary(32) {
        return None;
    }
    let (writer, digits) = s.split_at(32);
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((WriterId::from_hex(writer).ok()?, digits.parse().ok()?))
}

/// One block of a blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    /// Base64 block id.
    pub id: String,
    /// Size in bytes.
    pub size: u64,
}

/// A blob's committed and staged (uncommitted) blocks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BlockList {
    /// Blocks of the committed content, in order.
    pub committed: Vec<Block>,
    /// Staged blocks.
    pub uncommitted: Vec<Block>,
}

/// Get Block List: `GET /{c}/{b}?comp=blocklist&blocklisttype=all`.
#[derive(Debug, Clone)]
pub struct GetBlockList<'a> {
    /// Container name.
    pub container: &'a str,
    /// Blob name.
    pub blob: &'a str,
}

impl GetBlockList<'_> {
    /// The request.
    pub fn request(&self, endpoint: &Url) -> Result<Request<Bytes>, Error> {
        let uri = build_uri(
            endpoint,
            self.container,
            Some(self.blob),
            &[("comp", "blocklist"), ("blocklisttype", "all")],
        )?;
        Ok(request(Method::GET, uri, HeaderMap::new(), Bytes::new()))
    }

    /// Reads the XML answer.
    pub fn parse(body: &[u8]) -> Result<BlockList, Error> {
        let mut list = BlockList::default();
        let mut name = None;
        let mut size = None;
        let mut bad_size = None;
        xml::walk(body, |node| match node {
            xml::Node::Text { path, text, .. } => match path {
                [_, _, b, n] if b == "Block" && n == "Name" => name = Some(text.to_string()),
                [_, _, b, s] if b == "Block" && s == "Size" => match text.trim().parse::<u64>() {
                    Ok(v) => size = Some(v),
                    Err(_) => bad_size = Some(text.to_string()),
                },
                _ => {}
            },
            xml::Node::Close {
                path: [_, group, b],
            } if b == "Block" => {
                if let (Some(id), Some(size)) = (name.take(), size.take()) {
                    let block = Block { id, size };
                    match group.as_str() {
                        "CommittedBlocks" => list.committed.push(block),
                        "UncommittedBlocks" => list.uncommitted.push(block),
                        _ => {}
                    }
                }
            }
            xml::Node::Close { .. } => {}
        })?;
        if let Some(s) = bad_size {
            return Err(Error::protocol(format!(
                "block list has a block of size `{s}`"
            )));
        }
        Ok(list)
    }
}

/// Put Block List: commits `committed` (from the committed list) then
/// `uncommitted` (from the staged list), in that order.
#[derive(Debug, Clone)]
pub struct PutBlockList<'a> {
    /// Container name.
    pub container: &'a str,
    /// Blob name.
    pub blob: &'a str,
    /// Ids of committed blocks to keep, in order.
    pub committed: &'a [String],
    /// Ids of staged blocks to commit after them, in order.
    pub uncommitted: &'a [String],
    /// `x-ms-blob-content-type` (Put Block List replaces the blob's properties).
    pub content_type: Option<&'a str>,
    /// `x-ms-blob-content-encoding` (replaced like the content type).
    pub content_encoding: Option<&'a str>,
    /// `x-ms-meta-*` (Put Block List replaces the blob's metadata).
    pub metadata: &'a Metadata,
    /// `x-ms-blob-content-md5`: the base64 MD5 of the whole blob after this
    /// commit, stored (not checked) and returned as `Content-MD5` afterwards.
    pub content_md5: Option<&'a str>,
    /// Etag conditions.
    pub conditions: &'a Conditions,
}

impl PutBlockList<'_> {
    /// The request.
    pub fn request(&self, endpoint: &Url) -> Result<Request<Bytes>, Error> {
        let uri = build_uri(
            endpoint,
            self.container,
            Some(self.blob),
            &[("comp", "blocklist")],
        )?;
        let mut body =
            String::with_capacity(64 + 60 * (self.committed.len() + self.uncommitted.len()));
        body.push_str("<?xml version=\"1.0\" encoding=\"utf-8\"?><BlockList>");
        for id in self.committed {
            body.push_str("<Committed>");
            body.push_str(id);
            body.push_str("</Committed>");
        }
        for id in self.uncommitted {
            body.push_str("<Uncommitted>");
            body.push_str(id);
            body.push_str("</Uncommitted>");
        }
        body.push_str("</BlockList>");
        let mut h = headers_with_length(body.len());
        h.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/xml"),
        );
        self.conditions.apply(&mut h)?;
        blob_properties(
            &mut h,
            self.content_type,
            self.content_encoding,
            self.metadata,
        )?;
        if let Some(md5) = self.content_md5 {
            insert(&mut h, names::X_MS_BLOB_CONTENT_MD5, md5)?;
        }
        Ok(request(Method::PUT, uri, h, Bytes::from(body)))
    }
}

/// Get Blob: `GET /{c}/{b}`, optionally a range (`x-ms-range`).
#[derive(Debug, Clone)]
pub struct GetBlob<'a> {
    /// Container name.
    pub container: &'a str,
    /// Blob name.
    pub blob: &'a str,
    /// A byte range, or the whole blob.
    pub range: Option<ByteRange>,
}

impl GetBlob<'_> {
    /// The request.
    pub fn request(&self, endpoint: &Url) -> Result<Request<Bytes>, Error> {
        let uri = build_uri(endpoint, self.container, Some(self.blob), &[])?;
        let mut h = HeaderMap::new();
        if let Some(v) = self.range.map(|r| r.header()).transpose()?.flatten() {
            h.insert(names::X_MS_RANGE, v);
        }
        Ok(request(Method::GET, uri, h, Bytes::new()))
    }
}

/// Get Blob Properties: `HEAD /{c}/{b}`.
#[derive(Debug, Clone)]
pub struct GetBlobProperties<'a> {
    /// Container name.
    pub container: &'a str,
    /// Blob name.
    pub blob: &'a str,
}

impl GetBlobProperties<'_> {
    /// The request.
    pub fn request(&self, endpoint: &Url) -> Result<Request<Bytes>, Error> {
        let uri = build_uri(endpoint, self.container, Some(self.blob), &[])?;
        Ok(request(Method::HEAD, uri, HeaderMap::new(), Bytes::new()))
    }

    /// Reads the answer's headers (`x-ms-meta-*` become metadata).
    pub fn parse(headers: &HeaderMap) -> Result<PathProperties, Error> {
        let mut metadata = Metadata::new();
        for (name, value) in headers {
            if let Some(n) = name.as_str().strip_prefix("x-ms-meta-") {
                metadata.push_unchecked(
                    n.to_string(),
                    value.to_str().unwrap_or_default().to_string(),
                );
            }
        }
        let is_directory = metadata
            .get("hdi_isfolder")
            .is_some_and(|v| v.eq_ignore_ascii_case("true"));
        Ok(PathProperties {
            content_length: super::dfs::content_length(headers)?,
            etag: header_str(headers, "etag").unwrap_or_default().to_string(),
            last_modified: header_str(headers, "last-modified").and_then(parse_http_date),
            content_type: header_str(headers, "content-type").map(str::to_string),
            content_encoding: header_str(headers, "content-encoding").map(str::to_string),
            content_md5: header_str(headers, "content-md5").map(str::to_string),
            metadata,
            is_directory,
        })
    }
}

/// Delete Blob: `DELETE /{c}/{b}`.
#[derive(Debug, Clone)]
pub struct DeleteBlob<'a> {
    /// Container name.
    pub container: &'a str,
    /// Blob name.
    pub blob: &'a str,
}

impl DeleteBlob<'_> {
    /// The request.
    pub fn request(&self, endpoint: &Url) -> Result<Request<Bytes>, Error> {
        let uri = build_uri(endpoint, self.container, Some(self.blob), &[])?;
        Ok(request(Method::DELETE, uri, HeaderMap::new(), Bytes::new()))
    }
}

/// List Blobs: `GET /{c}?restype=container&comp=list`.
#[derive(Debug, Clone)]
pub struct ListBlobs<'a> {
    /// Container name.
    pub container: &'a str,
    /// Only blobs whose names start with this.
    pub prefix: Option<&'a str>,
    /// `/` to list one level (common prefixes become directories), `None` for all.
    pub delimiter: Option<&'a str>,
    /// Page size (the service's maximum is 5000).
    pub max_results: Option<u32>,
    /// `NextMarker` of the previous page.
    pub marker: Option<&'a str>,
}

impl ListBlobs<'_> {
    /// The request.
    pub fn request(&self, endpoint: &Url) -> Result<Request<Bytes>, Error> {
        let max = self.max_results.map(|m| m.to_string());
        let mut q: Vec<(&str, &str)> = vec![("restype", "container"), ("comp", "list")];
        if let Some(p) = self.prefix {
            q.push(("prefix", p));
        }
        if let Some(d) = self.delimiter {
            q.push(("delimiter", d));
        }
        if let Some(m) = self.marker {
            q.push(("marker", m));
        }
        if let Some(m) = &max {
            q.push(("maxresults", m));
        }
        let uri = build_uri(endpoint, self.container, None, &q)?;
        Ok(request(Method::GET, uri, HeaderMap::new(), Bytes::new()))
    }

    /// Reads the XML answer.
    pub fn parse(body: &[u8]) -> Result<ListPage, Error> {
        let mut page = ListPage::default();
        let mut cur: Option<PathItem> = None;
        let mut bad: Option<String> = None;
        let decode = |text: &str, encoded: bool| {
            if encoded {
                percent_encoding::percent_decode_str(text)
                    .decode_utf8_lossy()
                    .into_owned()
            } else {
                text.to_string()
            }
        };
        xml::walk(body, |node| match node {
            xml::Node::Text {
                path,
                text,
                encoded,
            } => {
                let p: Vec<&str> = path.iter().map(String::as_str).collect();
                match p.as_slice() {
                    ["EnumerationResults", "Blobs", kind @ ("Blob" | "BlobPrefix"), "Name"] => {
                        cur = Some(PathItem {
                            name: decode(text, encoded),
                            is_directory: *kind == "BlobPrefix",
                            content_length: 0,
                            etag: None,
                            last_modified: None,
                        });
                    }
                    ["EnumerationResults", "Blobs", "Blob", "Properties", field] => {
                        if let Some(item) = cur.as_mut() {
                            match *field {
                                "Content-Length" => match text.trim().parse() {
                                    Ok(n) => item.content_length = n,
                                    Err(_) => bad = Some(text.to_string()),
                                },
                                "Etag" => item.etag = Some(text.to_string()),
                                "Last-Modified" => item.last_modified = parse_http_date(text),
                                _ => {}
                            }
                        }
                    }
                    ["EnumerationResults", "NextMarker"] => {
                        page.continuation = Some(text.to_string());
                    }
                    _ => {}
                }
            }
            xml::Node::Close { path: [_, _, kind] } if kind == "Blob" || kind == "BlobPrefix" => {
                if let Some(mut item) = cur.take() {
                    if item.is_directory {
                        item.name = item.name.trim_end_matches('/').to_string();
                    }
                    page.items.push(item);
                }
            }
            xml::Node::Close { .. } => {}
        })?;
        if let Some(b) = bad {
            return Err(Error::protocol(format!(
                "blob listing has Content-Length `{b}`"
            )));
        }
        Ok(page)
    }
}

fn blob_properties(
    h: &mut HeaderMap,
    content_type: Option<&str>,
    content_encoding: Option<&str>,
    metadata: &Metadata,
) -> Result<(), Error> {
    if let Some(ct) = content_type {
        insert(h, names::X_MS_BLOB_CONTENT_TYPE, ct)?;
    }
    if let Some(ce) = content_encoding {
        insert(h, names::X_MS_BLOB_CONTENT_ENCODING, ce)?;
    }
    for (n, v) in metadata.iter() {
        let name = HeaderName::from_bytes(format!("x-ms-meta-{n}").as_bytes()).map_err(|_| {
            Error::config(format!("metadata name `{n}` is not a valid header name"))
        })?;
        h.insert(name, header_value(v, "metadata value")?);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep() -> Url {
        Url::parse("http://127.0.0.1:10000/devstoreaccount1").expect("url")
    }

    #[test]
    fn block_ids_have_fixed_width_carry_the_writer_and_round_trip() {
        let w = WriterId::from_hex("0123456789abcdef0123456789abcdef").expect("hex");
        let other = WriterId::from_hex("ffffffffffffffffffffffffffffffff").expect("hex");
        let a = block_id(w, 0);
        let b = block_id(other, u64::MAX);
        assert_eq!(a.len(), b.len());
        // the service's limit: at most 64 bytes before encoding
        assert!(base64::engine::general_purpose::STANDARD
            .decode(&a)
            .is_ok_and(|raw| raw.len() <= 64));
        assert!(!a.ends_with('='));
        assert_ne!(block_id(w, 7), block_id(other, 7));
        assert_eq!(parse_block_id(&a), Some((w, 0)));
        // the digits as a formatter would write them, for positions of
        // every width
        for p in [0, 7, 10, 12_345, 1 << 40, u64::MAX - 1, u64::MAX] {
            let formatted = base64::engine::general_purpose::STANDARD
                .encode(format!("0123456789abcdef0123456789abcdef{p:022}"));
            assert_eq!(block_id(w, p), formatted, "{p}");
        }
        assert_eq!(w.to_string(), "0123456789abcdef0123456789abcdef");
        assert_eq!(other.to_string(), "ffffffffffffffffffffffffffffffff");
        assert_eq!(parse_block_id(&b), Some((other, u64::MAX)));
        assert_eq!(parse_block_id("Zm9v"), None);
        // the format of earlier versions is not ours any more
        let old = base64::engine::general_purpose::STANDARD.encode(format!("adls-rest{:024}", 5));
        assert_eq!(parse_block_id(&old), None);
    }

    #[test]
    fn put_block_request() {
        let w = WriterId::from_hex("0123456789abcdef0123456789abcdef").expect("hex");
        let r = PutBlock {
            container: "c1c",
            blob: "dir/f.json",
            writer: w,
            position: 5,
            body: Bytes::from_static(b"abc"),
            checksums: Checksums::default(),
        }
        .request(&ep())
        .expect("req");
        assert_eq!(r.method(), Method::PUT);
        assert_eq!(
            r.uri().to_string(),
            format!(
                "http://127.0.0.1:10000/devstoreaccount1/c1c/dir/f.json?comp=block&blockid={}",
                super::super::encode_query_value(&block_id(w, 5))
            )
        );
        assert_eq!(r.headers()["content-length"], "3");
        assert_eq!(r.headers()["content-type"], "application/octet-stream");
    }

    #[test]
    fn put_blob_and_block_list() {
        let mut md = Metadata::new();
        md.insert("k", "v").expect("md");
        let c = Conditions::create_new();
        let r = PutBlob {
            container: "ccc",
            blob: "f",
            conditions: &c,
            content_type: Some("text/plain"),
            content_encoding: Some("gzip"),
            metadata: &md,
            body: Bytes::new(),
        }
        .request(&ep())
        .expect("req");
        let h: Vec<String> = r
            .headers()
            .iter()
            .map(|(n, v)| format!("{n}: {}", v.to_str().expect("ascii")))
            .collect();
        assert_eq!(
            h,
            [
                "content-length: 0",
                "if-none-match: *",
                "x-ms-blob-type: BlockBlob",
                "x-ms-blob-content-type: text/plain",
                "x-ms-blob-content-encoding: gzip",
                "x-ms-meta-k: v"
            ]
        );
        let r = PutBlockList {
            container: "ccc",
            blob: "f",
            committed: &["A".into()],
            uncommitted: &["B".into(), "C".into()],
            content_type: None,
            content_encoding: Some("zstd"),
            metadata: &Metadata::new(),
            content_md5: Some("XUFAKrxLKna5cZ2REBfFkg=="),
            conditions: &Conditions::default(),
        }
        .request(&ep())
        .expect("req");
        assert_eq!(r.headers()["x-ms-blob-content-encoding"], "zstd");
        assert!(!r.headers().contains_key("x-ms-blob-content-type"));
        assert_eq!(
            r.headers()["x-ms-blob-content-md5"],
            "XUFAKrxLKna5cZ2REBfFkg=="
        );
        assert_eq!(
            std::str::from_utf8(r.body()).expect("utf8"),
            "<?xml version=\"1.0\" encoding=\"utf-8\"?><BlockList><Committed>A</Committed><Uncommitted>B</Uncommitted><Uncommitted>C</Uncommitted></BlockList>"
        );
        assert_eq!(r.uri().query(), Some("comp=blocklist"));
    }

    #[test]
    fn parse_block_list() {
        let body = br#"<?xml version="1.0" encoding="utf-8"?><BlockList><CommittedBlocks><Block><Name>QQ==</Name><Size>3</Size></Block></CommittedBlocks><UncommittedBlocks><Block><Name>Qg==</Name><Size>4</Size></Block><Block><Name>Qw==</Name><Size>5</Size></Block></UncommittedBlocks></BlockList>"#;
        let l = GetBlockList::parse(body).expect("parse");
        assert_eq!(
            l.committed,
            vec![Block {
                id: "QQ==".into(),
                size: 3
            }]
        );
        assert_eq!(l.uncommitted.len(), 2);
        assert_eq!(
            l.uncommitted[1],
            Block {
                id: "Qw==".into(),
                size: 5
            }
        );
        let empty = GetBlockList::parse(
            br#"<BlockList><CommittedBlocks /><UncommittedBlocks /></BlockList>"#,
        )
        .expect("parse");
        assert_eq!(empty, BlockList::default());
    }

    #[test]
    fn parse_listing_with_prefixes_and_marker() {
        let body = br#"<?xml version="1.0" encoding="utf-8"?><EnumerationResults ServiceEndpoint="x" ContainerName="c"><Prefix>a/</Prefix><Blobs><Blob><Name>a/x y.json</Name><Properties><Last-Modified>Sun, 06 Nov 1994 08:49:37 GMT</Last-Modified><Etag>0x8D</Etag><Content-Length>12</Content-Length></Properties></Blob><BlobPrefix><Name>a/sub/</Name></BlobPrefix><Blob><Name Encoded="true">a/%EF%BF%BF</Name><Properties><Content-Length>0</Content-Length></Properties></Blob></Blobs><NextMarker>2!abc</NextMarker></EnumerationResults>"#;
        let p = ListBlobs::parse(body).expect("parse");
        assert_eq!(p.items.len(), 3);
        assert_eq!(p.items[0].name, "a/x y.json");
        assert_eq!(p.items[0].content_length, 12);
        assert_eq!(p.items[0].etag.as_deref(), Some("0x8D"));
        assert!(p.items[1].is_directory);
        assert_eq!(p.items[1].name, "a/sub");
        assert_eq!(p.items[2].name, "a/\u{ffff}");
        assert_eq!(p.continuation.as_deref(), Some("2!abc"));
    }
}
