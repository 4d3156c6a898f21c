//! The in-memory model: filesystems, and in each the paths (directories and
//! files with committed data and uncommitted chunks), their ETags, times,
//! user properties and content headers.

use std::collections::BTreeMap;

use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue};
use time::OffsetDateTime;

use super::error::{fs_not_found, ApiError};

const DEFAULT_CONTENT_TYPE: &str = "application/octet-stream";
/// Owner and group the service reports when nothing was set.
pub(super) const SUPERUSER: &str = "$superuser";
/// 0777 and 0666 after the default umask 0027 (Path - Create, `x-ms-umask`).
pub(super) const DIR_PERMISSIONS: &str = "rwxr-x---";
pub(super) const FILE_PERMISSIONS: &str = "rw-r-----";

pub(super) struct State {
    pub(super) account: String,
    pub(super) page_size: usize,
    pub(super) reappend: super::Reappend,
    pub(super) filesystems: BTreeMap<String, Filesystem>,
    pub(super) etag_seq: u64,
}

pub(super) struct Filesystem {
    pub(super) etag: String,
    pub(super) last_modified: OffsetDateTime,
    pub(super) properties: Vec<(String, String)>,
    /// Keyed by path segments, so iteration is depth first.
    pub(super) paths: BTreeMap<Vec<String>, Node>,
}

pub(super) struct Node {
    pub(super) kind: Kind,
    pub(super) etag: String,
    pub(super) last_modified: OffsetDateTime,
    pub(super) created: OffsetDateTime,
    pub(super) properties: Vec<(String, String)>,
    pub(super) content: ContentHeaders,
    /// `x-ms-content-md5` of the last flush or set properties (base64), returned
    /// as `Content-MD5` by get properties and whole-file reads; never verified.
    pub(super) content_md5: Option<String>,
}

pub(super) enum Kind {
    Directory,
    File {
        data: Vec<u8>,
        /// Appended, not yet flushed data, keyed by position.
        uncommitted: BTreeMap<u64, Bytes>,
    },
}

impl Node {
    pub(super) fn new(kind: Kind, etag: String, now: OffsetDateTime) -> Node {
        Node {
            kind,
            etag,
            last_modified: now,
            created: now,
            properties: Vec::new(),
            content: ContentHeaders::default(),
            content_md5: None,
        }
    }

    pub(super) fn is_dir(&self) -> bool {
        matches!(self.kind, Kind::Directory)
    }

    pub(super) fn len(&self) -> u64 {
        match &self.kind {
            Kind::File { data, .. } => data.len() as u64,
            Kind::Directory => 0,
        }
    }

    pub(super) fn stamp(&self) -> Option<(&str, OffsetDateTime)> {
        Some((self.etag.as_str(), self.last_modified))
    }
}

/// The stored `Content-*` / `Cache-Control` values of a path.
#[derive(Default, Clone, PartialEq)]
pub(super) struct ContentHeaders {
    content_type: Option<HeaderValue>,
    content_encoding: Option<HeaderValue>,
    content_language: Option<HeaderValue>,
    content_disposition: Option<HeaderValue>,
    cache_control: Option<HeaderValue>,
}

impl ContentHeaders {
    /// The `x-ms-*` request headers that set each value.
    pub(super) fn from_request(headers: &HeaderMap) -> ContentHeaders {
        let get = |n: &str| headers.get(n).cloned();
        ContentHeaders {
            content_type: get("x-ms-content-type"),
            content_encoding: get("x-ms-content-encoding"),
            content_language: get("x-ms-content-language"),
            content_disposition: get("x-ms-content-disposition"),
            cache_control: get("x-ms-cache-control"),
        }
    }

    /// Replaces the values given in `other`; true if anything changed.
    pub(super) fn merge(&mut self, other: ContentHeaders) -> bool {
        let before = self.clone();
        let pairs = [
            (&mut self.content_type, other.content_type),
            (&mut self.content_encoding, other.content_encoding),
            (&mut self.content_language, other.content_language),
            (&mut self.content_disposition, other.content_disposition),
            (&mut self.cache_control, other.cache_control),
        ];
        for (slot, value) in pairs {
            if value.is_some() {
                *slot = value;
            }
        }
        *self != before
    }

    pub(super) fn write(
        &self,
        mut b: http::response::Builder,
        is_file: bool,
    ) -> http::response::Builder {
        match &self.content_type {
            Some(v) => b = b.header(header::CONTENT_TYPE, v.clone()),
            None if is_file => b = b.header(header::CONTENT_TYPE, DEFAULT_CONTENT_TYPE),
            None => {}
        }
        let others = [
            (header::CONTENT_ENCODING, &self.content_encoding),
            (header::CONTENT_LANGUAGE, &self.content_language),
            (header::CONTENT_DISPOSITION, &self.content_disposition),
            (header::CACHE_CONTROL, &self.cache_control),
        ];
        for (name, value) in others {
            if let Some(v) = value {
                b = b.header(name, v.clone());
            }
        }
        b
    }
}

pub(super) fn next_etag(seq: &mut u64) -> String {
    *seq += 1;
    format!("0x8D{:013X}", *seq)
}

pub(super) fn quoted(etag: &str) -> String {
    format!("\"{etag}\"")
}

impl State {
    pub(super) fn fs(&self, name: &str) -> Result<&Filesystem, ApiError> {
        self.filesystems.get(name).ok_or_else(fs_not_found)
    }
}
