//! Path operations: create, read (GET) and get properties (HEAD), set
//! properties and delete; `PATCH` dispatches append and flush to
//! [`append_flush`](super::append_flush).

use std::collections::BTreeMap;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use md5::{Digest, Md5};
use time::OffsetDateTime;

use super::conditions::{Conditions, Verdict};
use super::error::{
    condition_not_met, fs_not_found, invalid_header, invalid_param, path_not_found, ApiError,
};
use super::state::{
    next_etag, quoted, ContentHeaders, Kind, Node, State, DIR_PERMISSIONS, FILE_PERMISSIONS,
    SUPERUSER,
};
use super::wire::{
    empty, finish, http_date, parse_properties, render_properties, requested_range, Ctx, Query,
    RangeRequest, Resp,
};
use super::RecordedRequest;

const DIR_ACL: &str = "user::rwx,group::r-x,other::---";
const FILE_ACL: &str = "user::rw-,group::r--,other::---";

impl State {
    pub(super) fn path_op(
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
        let content_md5 = stored_content_md5(&req.headers)?;
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
        node.content_md5 = content_md5;
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
        // The stored MD5 describes the whole file: not sent with a range.
        let stored_md5 = node.content_md5.as_deref();
        if !node.properties.is_empty() {
            b = b.header("x-ms-properties", render_properties(&node.properties));
        }
        let data: &[u8] = match &node.kind {
            Kind::File { data, .. } => data,
            Kind::Directory => &[],
        };
        if !with_body {
            if let Some(md5) = stored_md5 {
                b = b.header("content-md5", md5);
            }
            return Ok(finish(
                b.header(header::CONTENT_LENGTH, node.len()),
                Bytes::new(),
            ));
        }
        let total = data.len() as u64;
        let (start, end) = match requested_range(&req.headers)? {
            RangeRequest::Whole => {
                if let Some(md5) = stored_md5 {
                    b = b.header("content-md5", md5);
                }
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

/// `x-ms-content-md5` of a flush or set properties: "The service stores this
/// value and includes it in the Content-Md5 response header for Read & Get
/// Properties operations. If this property is not specified on the request,
/// then the property will be cleared for the file." It must be the base64 of
/// 16 bytes (else 400 `InvalidHeaderValue`); it is not compared with the data.
pub(super) fn stored_content_md5(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get("x-ms-content-md5") else {
        return Ok(None);
    };
    let text = value.to_str().unwrap_or("");
    match B64.decode(text) {
        Ok(digest) if digest.len() == 16 => Ok(Some(text.to_owned())),
        _ => Err(invalid_header("x-ms-content-md5", text)),
    }
}

/// Any `x-ms-lease-id` is refused: this server holds no leases.
pub(super) fn check_no_lease(headers: &HeaderMap) -> Result<(), ApiError> {
    if headers.contains_key("x-ms-lease-id") {
        return Err(ApiError::new(412, "LeaseNotPresent"));
    }
    Ok(())
}
