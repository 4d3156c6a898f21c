//! Filesystem operations: create, delete, get and set properties, and
//! Path - List with its continuation tokens.

use std::collections::BTreeMap;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use bytes::Bytes;
use http::{header, Method, StatusCode};
use serde_json::{json, Map, Value};
use time::OffsetDateTime;

use super::conditions::Conditions;
use super::error::{fs_not_found, invalid_param, missing_param, path_not_found, ApiError};
use super::state::{
    next_etag, quoted, Filesystem, Node, State, DIR_PERMISSIONS, FILE_PERMISSIONS, SUPERUSER,
};
use super::wire::{
    empty, file_time, finish, http_date, parse_properties, render_properties, split_path, Ctx,
    Query, Resp, JSON_TYPE,
};
use super::{RecordedRequest, MAX_RESULTS};

const TOKEN_PREFIX: &str = "dfs-test-server:";

impl State {
    pub(super) fn filesystem_op(
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

pub(super) fn encode_token(last: &[String]) -> String {
    B64.encode(format!("{TOKEN_PREFIX}{}", last.join("/")))
}

pub(super) fn decode_token(token: &str) -> Option<Vec<String>> {
    let raw = String::from_utf8(B64.decode(token).ok()?).ok()?;
    let name = raw.strip_prefix(TOKEN_PREFIX)?;
    split_path(name).ok().filter(|s| !s.is_empty())
}
