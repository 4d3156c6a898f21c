//! Path - Update `append` and `flush`: appends store uncommitted chunks keyed
//! by `position`; a flush commits them when they cover the file contiguously
//! up to its `position` (see "Decisions" in the module documentation).

use std::collections::BTreeMap;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use bytes::Bytes;
use http::{header, HeaderMap, StatusCode};
use md5::{Digest, Md5};
use time::OffsetDateTime;

use super::conditions::Conditions;
use super::error::{
    fs_not_found, invalid_header, invalid_param, missing_param, path_not_found, ApiError,
};
use super::path::{check_no_lease, stored_content_md5};
use super::state::{next_etag, quoted, ContentHeaders, Kind, State};
use super::wire::{empty, http_date, Ctx, Query, Resp};
use super::{Reappend, RecordedRequest};

impl State {
    pub(super) fn append(
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
        check_crc64(&req.headers, &req.body)?;
        let end = position
            .checked_add(req.body.len() as u64)
            .ok_or_else(|| invalid_param("position", &position.to_string()))?;
        let State {
            filesystems,
            etag_seq,
            reappend,
            ..
        } = self;
        let f = filesystems.get_mut(fs).ok_or_else(fs_not_found)?;
        let node = f.paths.get_mut(path).ok_or_else(path_not_found)?;
        check_no_lease(&req.headers)?;
        let Kind::File { data, uncommitted } = &mut node.kind else {
            return Err(ApiError::new(409, "ResourceTypeMismatch"));
        };
        let mut chunks = uncommitted.clone();
        let (position, end) = match reappend {
            Reappend::Replace => (position, end),
            Reappend::Accumulate => {
                let at = staged_end(data.len() as u64, &chunks);
                (at, at + req.body.len() as u64)
            }
        };
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

    pub(super) fn flush(
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
        let content_md5 = stored_content_md5(&req.headers)?;
        let State {
            filesystems,
            etag_seq,
            reappend,
            ..
        } = self;
        let f = filesystems.get_mut(fs).ok_or_else(fs_not_found)?;
        let node = f.paths.get_mut(path).ok_or_else(path_not_found)?;
        check_no_lease(&req.headers)?;
        conditions.check_write(node.stamp())?;
        let Kind::File { data, uncommitted } = &mut node.kind else {
            return Err(ApiError::new(409, "ResourceTypeMismatch"));
        };
        let staged = staged_end(data.len() as u64, uncommitted);
        let exact = *reappend == Reappend::Accumulate && position != staged;
        let plan = plan_flush(data.len() as u64, uncommitted, position)
            .filter(|_| !exact)
            .ok_or_else(|| {
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
        let headers_changed = node.content.merge(content) | (node.content_md5 != content_md5);
        node.content_md5 = content_md5;
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

/// Where the staged data ends: the committed length, or the end of the last
/// chunk if that is further.
fn staged_end(committed: u64, chunks: &BTreeMap<u64, Bytes>) -> u64 {
    chunks
        .iter()
        .map(|(p, c)| p + c.len() as u64)
        .fold(committed, u64::max)
}

/// Checks `x-ms-content-crc64` against the body, if present: the base64 of the
/// 8 little-endian bytes of Azure Storage's CRC-64 (400 `Crc64Mismatch`;
/// malformed → 400 `InvalidHeaderValue`).
fn check_crc64(headers: &HeaderMap, body: &[u8]) -> Result<(), ApiError> {
    let Some(v) = headers.get("x-ms-content-crc64") else {
        return Ok(());
    };
    let text = v.to_str().unwrap_or("");
    let expected = B64
        .decode(text)
        .ok()
        .and_then(|d| <[u8; 8]>::try_from(d).ok())
        .ok_or_else(|| invalid_header("x-ms-content-crc64", text))?;
    let actual = crc64(body).to_le_bytes();
    if expected != actual {
        return Err(ApiError::new(400, "Crc64Mismatch")
            .detail("UserSpecifiedCrc64", text)
            .detail("ServerCalculatedCrc64", B64.encode(actual)));
    }
    Ok(())
}

/// Azure Storage's CRC-64: the reflected polynomial 0x9A6C9329AC4BC9B5, all
/// ones in and out (the catalogue's CRC-64/NVME; check value of `123456789`:
/// 0xAE8B14860A799888). Bitwise: slow and obviously right, for a test server.
pub(super) fn crc64(data: &[u8]) -> u64 {
    const POLY: u64 = 0x9A6C_9329_AC4B_C9B5;
    let mut crc = u64::MAX;
    for &byte in data {
        crc ^= u64::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ POLY
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// Result of walking the uncommitted chunks for a flush at `position`.
pub(super) struct FlushPlan {
    /// Bytes `[committed, position)`.
    pub(super) appended: Vec<u8>,
    /// The chunk that crossed `position`, and where it started.
    pub(super) straddler: Option<u64>,
}

/// Walks the chunks from `committed` to `position`; `None` when they do not
/// cover it contiguously (`InvalidFlushPosition`).
pub(super) fn plan_flush(
    committed: u64,
    chunks: &BTreeMap<u64, Bytes>,
    position: u64,
) -> Option<FlushPlan> {
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
pub(super) fn retained(
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
