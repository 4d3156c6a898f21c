//! A POST body into record texts, with no IO: the bounded gunzip, and the
//! detection of LiteLLM's three `generic_api` formats (`json_array`,
//! `ndjson`, `single`). Each record is a slice of the body exactly as it
//! came, so what is stored is what was sent.

use std::fmt;
use std::io::Read as _;

use serde_json::value::RawValue;

/// How a body was laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `[ {..}, {..} ]` (LiteLLM's `json_array`, its default).
    JsonArray,
    /// `{..}\n{..}` with or without a trailing newline (`ndjson`).
    Ndjson,
    /// One `{..}` (`single`).
    Single,
}

impl Format {
    /// Stable lower-case name, as LiteLLM's `log_format` spells it.
    pub fn as_str(&self) -> &'static str {
        match self {
            Format::JsonArray => "json_array",
            Format::Ndjson => "ndjson",
            Format::Single => "single",
        }
    }
}

/// Why a body is not records. Every message is one line and quotes no data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyError {
    /// Decompressed, the body is larger than the limit.
    TooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// Not gzip, or damaged.
    BadGzip(String),
    /// Not UTF-8 text.
    NotUtf8 {
        /// Offset of the first invalid byte.
        at: usize,
    },
    /// Only whitespace.
    Empty,
    /// Not JSON of the expected shape.
    Malformed(String),
}

impl fmt::Display for BodyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BodyError::TooLarge { limit } => {
                write!(f, "the body is larger than {limit} bytes once decompressed")
            }
            BodyError::BadGzip(m) => write!(f, "Content-Encoding is gzip but the body is not: {m}"),
            BodyError::NotUtf8 { at } => write!(f, "the body is not UTF-8 (invalid byte at offset {at})"),
            BodyError::Empty => f.write_str(
                "the body is empty: expected a JSON array of records, records separated by newlines, or one record",
            ),
            BodyError::Malformed(m) => write!(f, "the body is not valid JSON: {m}"),
        }
    }
}

impl std::error::Error for BodyError {}

/// Decompresses a gzip body (several members are read one after the other,
/// as `gzip` concatenates them), refusing to produce more than `limit`
/// bytes: a small body that inflates to gigabytes costs at most `limit + 1`
/// bytes of memory before it is refused.
pub fn gunzip_bounded(data: &[u8], limit: usize) -> Result<Vec<u8>, BodyError> {
    let mut out = Vec::with_capacity(data.len().saturating_mul(4).min(limit));
    let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    flate2::read::MultiGzDecoder::new(data)
        .take(cap)
        .read_to_end(&mut out)
        .map_err(|e| BodyError::BadGzip(one_line(&e.to_string())))?;
    if out.len() > limit {
        return Err(BodyError::TooLarge { limit });
    }
    Ok(out)
}

/// The body as UTF-8 text (a leading byte-order mark is skipped).
pub fn text(body: &[u8]) -> Result<&str, BodyError> {
    let s = std::str::from_utf8(body).map_err(|e| BodyError::NotUtf8 {
        at: e.valid_up_to(),
    })?;
    Ok(s.strip_prefix('\u{feff}').unwrap_or(s))
}

/// Splits a body into its records' JSON texts and says which format it was:
/// a first non-whitespace `[` is a JSON array whose elements are the
/// records; anything else is one JSON value after another, separated by
/// whitespace (newlines), which also covers one record alone. Whether each
/// record is a valid record (an object) is the logger's call.
pub fn split_records(body: &str) -> Result<(Format, Vec<&str>), BodyError> {
    let trimmed = body.trim_start();
    if trimmed.is_empty() {
        return Err(BodyError::Empty);
    }
    if trimmed.starts_with('[') {
        let items: Vec<&RawValue> = serde_json::from_str(body)
            .map_err(|e| BodyError::Malformed(one_line(&e.to_string())))?;
        return Ok((
            Format::JsonArray,
            items.into_iter().map(RawValue::get).collect(),
        ));
    }
    let mut records = Vec::new();
    for item in serde_json::Deserializer::from_str(body).into_iter::<&RawValue>() {
        let raw = item.map_err(|e| {
            BodyError::Malformed(format!(
                "record {}: {}",
                records.len(),
                one_line(&e.to_string())
            ))
        })?;
        records.push(raw.get());
    }
    let format = if records.len() == 1 {
        Format::Single
    } else {
        Format::Ndjson
    };
    Ok((format, records))
}

/// A message on one line (a reason goes into one log line and one answer).
fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(data).expect("gzip");
        e.finish().expect("gzip")
    }

    #[test]
    fn the_three_formats_are_detected_and_records_kept_as_sent() {
        let a = r#"{"id":"a","x":1.0}"#;
        let b = "{ \"id\" : \"b\",\n  \"y\": [1, 2] }";
        let array = format!(" \n[{a}, \n{b}]\n");
        assert_eq!(
            split_records(&array).expect("array"),
            (Format::JsonArray, vec![a, b])
        );
        // LiteLLM's ndjson has no trailing newline; one is tolerated, so are blank lines and \r\n
        for nd in [
            format!("{a}\n{b}"),
            format!("{a}\n{b}\n"),
            format!("{a}\r\n\r\n{b}\r\n"),
        ] {
            assert_eq!(
                split_records(&nd).expect("ndjson"),
                (Format::Ndjson, vec![a, b])
            );
        }
        assert_eq!(
            split_records(&format!("{a}\n")).expect("single"),
            (Format::Single, vec![a])
        );
        assert_eq!(
            split_records("[]").expect("empty array"),
            (Format::JsonArray, vec![])
        );
        // a record that is not an object is passed on (the logger refuses it by index)
        assert_eq!(
            split_records("{\"id\":\"a\"}\n42").expect("values"),
            (Format::Ndjson, vec!["{\"id\":\"a\"}", "42"])
        );
    }

    #[test]
    fn malformed_bodies_say_why_on_one_line() {
        for body in [
            "[{\"id\":\"a\"},",
            "[{\"id\":\"a\"}] trailing",
            "{\"id\":\"a\"}\n{\"id\":",
            "{\"id\":\"a\"}\nnot json",
            "{\"id\"\n\n:}",
        ] {
            let e = split_records(body).expect_err(body);
            assert!(matches!(e, BodyError::Malformed(_)), "{body}: {e:?}");
            assert!(!e.to_string().contains('\n'), "{e}");
        }
        assert_eq!(split_records(" \n\t"), Err(BodyError::Empty));
        assert_eq!(split_records(""), Err(BodyError::Empty));
        let e = split_records("{\"id\":\"a\"}\n{\"id\":").expect_err("cut");
        assert!(e.to_string().contains("record 1"), "{e}");
    }

    #[test]
    fn text_checks_utf8_and_skips_a_bom() {
        assert_eq!(text(b"\xef\xbb\xbf{}").expect("bom"), "{}");
        assert_eq!(text(b"{\"a\":\"\xff\"}"), Err(BodyError::NotUtf8 { at: 6 }));
    }

    #[test]
    fn gzip_is_bounded_by_what_it_inflates_to() {
        let data = vec![b' '; 10_000];
        let z = gzip(&data);
        assert_eq!(gunzip_bounded(&z, 10_000).expect("fits"), data);
        assert_eq!(
            gunzip_bounded(&z, 9_999),
            Err(BodyError::TooLarge { limit: 9_999 })
        );
        // a bomb: 100 MB of zeros in about 100 KB, refused after limit + 1 bytes
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        e.write_all(&vec![0u8; 100 << 20]).expect("gzip");
        let bomb = e.finish().expect("gzip");
        assert!(bomb.len() < 200 << 10);
        assert_eq!(
            gunzip_bounded(&bomb, 1 << 20),
            Err(BodyError::TooLarge { limit: 1 << 20 })
        );
        // concatenated members, as `cat a.gz b.gz` makes
        let mut two = gzip(b"[1,");
        two.extend(gzip(b"2]"));
        assert_eq!(gunzip_bounded(&two, 100).expect("members"), b"[1,2]");
        assert!(matches!(
            gunzip_bounded(b"not gzip", 100),
            Err(BodyError::BadGzip(_))
        ));
        let mut cut = gzip(b"{\"id\":\"a\"}");
        cut.truncate(cut.len() - 4);
        assert!(matches!(
            gunzip_bounded(&cut, 100),
            Err(BodyError::BadGzip(_))
        ));
    }
}
