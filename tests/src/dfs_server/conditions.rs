//! Conditional headers (`If-Match`, `If-None-Match`, `If-Modified-Since`,
//! `If-Unmodified-Since`) per "Specifying conditional headers for Blob service
//! operations".

use http::{header, HeaderMap};
use time::OffsetDateTime;

use super::error::{condition_not_met, invalid_header, ApiError};
use super::wire::{parse_http_date, whole_seconds};

#[derive(Default)]
pub(super) struct Conditions {
    if_match: Option<String>,
    if_none_match: Option<String>,
    if_modified_since: Option<OffsetDateTime>,
    if_unmodified_since: Option<OffsetDateTime>,
}

#[derive(Debug, PartialEq, Eq)]
pub(super) enum Verdict {
    Proceed,
    /// `If-None-Match` / `If-Modified-Since` failed (304 on reads).
    NotModified,
    /// `If-Match` / `If-Unmodified-Since` failed (412).
    Failed,
}

impl Conditions {
    pub(super) fn parse(headers: &HeaderMap) -> Result<Conditions, ApiError> {
        let text = |name: header::HeaderName| -> Result<Option<String>, ApiError> {
            match headers.get(&name) {
                None => Ok(None),
                Some(v) => v
                    .to_str()
                    .map(|s| Some(s.to_owned()))
                    .map_err(|_| invalid_header(name.as_str(), "<not ASCII>")),
            }
        };
        let date = |name: header::HeaderName| -> Result<Option<OffsetDateTime>, ApiError> {
            match text(name.clone())? {
                None => Ok(None),
                Some(s) => parse_http_date(&s)
                    .map(Some)
                    .ok_or_else(|| invalid_header(name.as_str(), &s)),
            }
        };
        Ok(Conditions {
            if_match: text(header::IF_MATCH)?,
            if_none_match: text(header::IF_NONE_MATCH)?,
            if_modified_since: date(header::IF_MODIFIED_SINCE)?,
            if_unmodified_since: date(header::IF_UNMODIFIED_SINCE)?,
        })
    }

    pub(super) fn any(&self) -> bool {
        self.if_match.is_some()
            || self.if_none_match.is_some()
            || self.if_modified_since.is_some()
            || self.if_unmodified_since.is_some()
    }

    pub(super) fn none_match_is_star(&self) -> bool {
        self.if_none_match
            .as_deref()
            .is_some_and(|v| v.trim() == "*")
    }

    /// Evaluates against the resource's ETag (unquoted) and Last-Modified, if it exists.
    pub(super) fn evaluate(&self, resource: Option<(&str, OffsetDateTime)>) -> Verdict {
        let Some((etag, modified)) = resource else {
            return if self.if_match.is_some() {
                Verdict::Failed
            } else {
                Verdict::Proceed
            };
        };
        let modified = whole_seconds(modified);
        if self
            .if_match
            .as_deref()
            .is_some_and(|m| !etag_matches(m, etag))
            || self.if_unmodified_since.is_some_and(|t| modified > t)
        {
            return Verdict::Failed;
        }
        if self
            .if_none_match
            .as_deref()
            .is_some_and(|m| etag_matches(m, etag))
            || self.if_modified_since.is_some_and(|t| modified <= t)
        {
            return Verdict::NotModified;
        }
        Verdict::Proceed
    }

    /// For writes: anything but `Proceed` is 412 `ConditionNotMet`.
    pub(super) fn check_write(
        &self,
        resource: Option<(&str, OffsetDateTime)>,
    ) -> Result<(), ApiError> {
        match self.evaluate(resource) {
            Verdict::Proceed => Ok(()),
            _ => Err(condition_not_met()),
        }
    }
}

/// Whether a comma-separated list of (quoted, possibly weak) ETags or `*` names `etag`.
pub(super) fn etag_matches(list: &str, etag: &str) -> bool {
    list.split(',').map(str::trim).any(|t| {
        let t = t.strip_prefix("W/").unwrap_or(t);
        t == "*" || t.trim_matches('"') == etag
    })
}
