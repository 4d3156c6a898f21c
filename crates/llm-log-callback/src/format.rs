//! File formats: how one batch's NDJSON lines become the bytes of a file,
//! with the file's extension and its `Content-Type` / `Content-Encoding`.
//!
//! The batcher cuts batches of NDJSON lines; the upload task hands them to
//! [`Format::encode`] on the blocking pool (off the caller's thread and off
//! the runtime's workers), and the target's format decides the content
//! headers of every request that writes the file.
//!
//! | format | extension | `Content-Type` | rolling layout |
//! |---|---|---|---|
//! | [`Format::Ndjson`] | `ndjson` | `application/x-ndjson` | yes |
//! | [`Format::NdjsonGzip`] | `ndjson.gz` | `application/gzip` | yes (one gzip member per batch) |
//! | [`Format::NdjsonZstd`] | `ndjson.zst` | `application/zstd` | yes (one zstd frame per batch) |
//! | [`Format::Parquet`] | `parquet` | `application/vnd.apache.parquet` | no: one file per batch |
//!
//! No file gets a `Content-Encoding`. A `.ndjson.gz` file is a gzip file, as
//! its name says, and every reader must get it as one. With
//! `Content-Encoding: gzip` Microsoft's Python SDK (and so `adlfs`, and
//! pandas and pyarrow through it) un-gzips the download on the fly: the
//! bytes no longer match the name, and pyarrow and DuckDB then fail on the
//! "gzip" file they are handed (seen in the reader tests, `readers.rs`; a
//! browser or `curl --compressed` does the same). The media type says what
//! the bytes are (`application/gzip`, `application/zstd`, RFC 6713 and RFC
//! 8878), the name what they hold once decompressed. Parquet compresses
//! inside the file (zstd pages).
//!
//! Memory: while a batch is encoded, it is held as NDJSON (at most
//! `max_batch_bytes`), as Arrow columns for Parquet (about the same size:
//! the same strings) and as the encoded file (smaller), once per upload in
//! flight (`max_concurrent_uploads`), so the batch limits bound it.
//!
//! Concatenated gzip members and zstd frames are valid files, which is why
//! the rolling layout may append one per batch; a Parquet file ends with its
//! footer and cannot be appended to.

use std::fmt;
use std::str::FromStr;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// The format of every file the logger writes.
///
/// ```
/// use llm_log_callback::Format;
///
/// let f: Format = "ndjson.zst".parse().unwrap();
/// assert_eq!(f, Format::NdjsonZstd);
/// assert_eq!(f.extension(), "ndjson.zst");
/// assert_eq!(f.content_type(), "application/zstd");
/// assert_eq!(f.content_encoding(), None);
/// assert!("csv".parse::<Format>().unwrap_err().to_string().contains("ndjson.gz"));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Format {
    /// One JSON object per line (the default).
    #[default]
    Ndjson,
    /// NDJSON, gzip-compressed.
    NdjsonGzip,
    /// NDJSON, zstd-compressed.
    NdjsonZstd,
    /// Apache Parquet with the versioned LiteLLM schema (see the `columns`
    /// module); needs the crate's `parquet` feature.
    Parquet,
}

/// The names [`Format`] parses, in the order the docs list them.
pub const FORMAT_NAMES: &[&str] = &["ndjson", "ndjson.gz", "ndjson.zst", "parquet"];

impl Format {
    /// The file extension, without the dot.
    pub fn extension(self) -> &'static str {
        match self {
            Format::Ndjson => "ndjson",
            Format::NdjsonGzip => "ndjson.gz",
            Format::NdjsonZstd => "ndjson.zst",
            Format::Parquet => "parquet",
        }
    }

    /// The `Content-Type` the files get.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Ndjson => "application/x-ndjson",
            Format::NdjsonGzip => "application/gzip",
            Format::NdjsonZstd => "application/zstd",
            Format::Parquet => "application/vnd.apache.parquet",
        }
    }

    /// The `Content-Encoding` the files get: none, for every format (see
    /// the module docs: a compressed file is handed out as it is stored).
    pub fn content_encoding(self) -> Option<&'static str> {
        None
    }

    /// Whether one file can take batch after batch (the rolling layout).
    pub fn appendable(self) -> bool {
        self != Format::Parquet
    }

    /// Whether this build can write the format (Parquet needs the crate's
    /// `parquet` feature).
    pub fn available(self) -> bool {
        self != Format::Parquet || cfg!(feature = "parquet")
    }

    /// The format a path's extension names (`None` for any other name).
    pub fn from_path(path: &str) -> Option<Format> {
        [
            Format::NdjsonGzip,
            Format::NdjsonZstd,
            Format::Parquet,
            Format::Ndjson,
        ]
        .into_iter()
        .find(|f| {
            path.strip_suffix(f.extension())
                .is_some_and(|p| p.ends_with('.'))
        })
    }

    /// Encodes one batch as the logger does before writing it: `ndjson`
    /// holds complete lines (JSON objects), each ending in `\n`. CPU-bound
    /// (Parquet takes tens of ms per MiB): the logger calls it on Tokio's
    /// blocking pool.
    ///
    /// ```
    /// use llm_log_callback::Format;
    ///
    /// let lines = b"{\"id\":\"a\"}\n{\"id\":\"b\"}\n";
    /// assert_eq!(Format::Ndjson.encode(lines).unwrap(), &lines[..]);
    /// let gz = Format::NdjsonGzip.encode(lines).unwrap();
    /// assert_eq!(&gz[..2], [0x1f, 0x8b]);
    /// ```
    pub fn encode(self, ndjson: &[u8]) -> Result<Bytes, EncodeError> {
        match self {
            Format::Ndjson => Ok(Bytes::copy_from_slice(ndjson)),
            Format::NdjsonGzip => {
                use std::io::Write as _;
                let mut enc = flate2::write::GzEncoder::new(
                    Vec::with_capacity(ndjson.len() / 4),
                    flate2::Compression::default(),
                );
                enc.write_all(ndjson)
                    .and_then(|_| enc.finish())
                    .map(Bytes::from)
                    .map_err(|e| EncodeError(format!("gzip: {e}")))
            }
            Format::NdjsonZstd => zstd::bulk::compress(ndjson, ZSTD_LEVEL)
                .map(Bytes::from)
                .map_err(|e| EncodeError(format!("zstd: {e}"))),
            #[cfg(feature = "parquet")]
            Format::Parquet => crate::columns::encode(ndjson).map(Bytes::from),
            #[cfg(not(feature = "parquet"))]
            Format::Parquet => Err(EncodeError(NO_PARQUET.into())),
        }
    }
}

/// zstd's level for NDJSON: 3 is zstd's own default (fast, and about as
/// small as gzip's best on log lines).
const ZSTD_LEVEL: i32 = 3;

#[cfg(not(feature = "parquet"))]
pub(crate) const NO_PARQUET: &str =
    "this build of llm-log-callback has no Parquet support: enable the crate's `parquet` feature";

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.extension())
    }
}

/// A name [`Format`] does not know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownFormat(pub String);

impl fmt::Display for UnknownFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "`{}` is not a format; known: {}",
            self.0,
            FORMAT_NAMES.join(", ")
        )
    }
}

impl std::error::Error for UnknownFormat {}

impl FromStr for Format {
    type Err = UnknownFormat;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "ndjson" => Ok(Format::Ndjson),
            "ndjson.gz" => Ok(Format::NdjsonGzip),
            "ndjson.zst" => Ok(Format::NdjsonZstd),
            "parquet" => Ok(Format::Parquet),
            _ => Err(UnknownFormat(s.to_string())),
        }
    }
}

/// A batch that could not be encoded (the batch is then written as plain
/// NDJSON instead, under a `.ndjson` name, and the failure is logged).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodeError(pub String);

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "could not encode the batch: {}", self.0)
    }
}

impl std::error::Error for EncodeError {}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read as _;

    const LINES: &[u8] = b"{\"id\":\"a\",\"model\":\"m\"}\n{\"id\":\"b\",\"model\":\"m\"}\n";

    #[test]
    fn names_round_trip_and_unknown_names_say_what_is_known() {
        for name in FORMAT_NAMES {
            let f: Format = name.parse().expect("known");
            assert_eq!(f.to_string(), *name);
            assert_eq!(f.extension(), *name);
            assert_eq!(Format::from_path(&format!("a/b-1.{name}")), Some(f));
        }
        assert_eq!(" NDJSON.GZ ".parse::<Format>(), Ok(Format::NdjsonGzip));
        let e = "json".parse::<Format>().expect_err("unknown");
        assert_eq!(
            e.to_string(),
            "`json` is not a format; known: ndjson, ndjson.gz, ndjson.zst, parquet"
        );
        assert_eq!(Format::from_path("a/b.json"), None);
        assert_eq!(Format::from_path("a/bndjson"), None);
    }

    #[test]
    fn gzip_and_zstd_decode_to_the_lines_and_concatenate() {
        let gz = Format::NdjsonGzip.encode(LINES).expect("gzip");
        let mut two = gz.to_vec();
        two.extend_from_slice(&gz);
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(&two[..])
            .read_to_end(&mut out)
            .expect("gunzip");
        assert_eq!(out, [LINES, LINES].concat());

        let zst = Format::NdjsonZstd.encode(LINES).expect("zstd");
        let mut two = zst.to_vec();
        two.extend_from_slice(&zst);
        let out = zstd::stream::decode_all(&two[..]).expect("unzstd");
        assert_eq!(out, [LINES, LINES].concat());

        assert_eq!(Format::Ndjson.encode(LINES).expect("plain"), LINES);
    }

    #[test]
    fn content_headers_per_format() {
        let table: Vec<(&str, &str, Option<&str>, bool)> = [
            Format::Ndjson,
            Format::NdjsonGzip,
            Format::NdjsonZstd,
            Format::Parquet,
        ]
        .iter()
        .map(|f| {
            (
                f.extension(),
                f.content_type(),
                f.content_encoding(),
                f.appendable(),
            )
        })
        .collect();
        assert_eq!(
            table,
            [
                ("ndjson", "application/x-ndjson", None, true),
                ("ndjson.gz", "application/gzip", None, true),
                ("ndjson.zst", "application/zstd", None, true),
                ("parquet", "application/vnd.apache.parquet", None, false),
            ]
        );
    }
}
