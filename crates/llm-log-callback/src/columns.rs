//! The Parquet schema of LiteLLM's `StandardLoggingPayload`, versioned, and
//! the conversion of one batch of NDJSON lines into one Parquet file (one row
//! group, zstd pages, statistics on the typed columns).
//!
//! # Schema version 1
//!
//! Typed columns hold what people filter and aggregate on; the large or
//! free-form parts are kept as JSON text, exactly as the record had them
//! (the bytes of the value, not a re-serialization). Every file carries the
//! key-value metadata `llm_log.schema = litellm.StandardLoggingPayload` and
//! `llm_log.schema_version = 1`. A change of columns or types is a new
//! version, documented in `docs/QUERYING.md`; it is never made silently.
//!
//! | column | type | from the record |
//! |---|---|---|
//! | `id`, `trace_id`, `litellm_call_id`, `session_id`, `call_type`, `status`, `model`, `model_group`, `model_id`, `custom_llm_provider`, `api_base` | string | the same key |
//! | `start_time`, `end_time`, `completion_start_time` | timestamp (µs, UTC) | `startTime`, `endTime`, `completionStartTime` (epoch seconds) |
//! | `response_time` | double (seconds) | `response_time` |
//! | `prompt_tokens`, `completion_tokens`, `total_tokens` | int64 | the same key |
//! | `response_cost` | double | `response_cost` |
//! | `cache_hit` | boolean | `cache_hit` |
//! | `error_class`, `error_code` | string | `error_information.error_class`, `.error_code` (an integer code becomes its digits) |
//! | `error_str`, `end_user` | string | the same key |
//! | `user_api_key_hash`, `user_api_key_alias`, `user_api_key_user_id`, `user_api_key_team_id`, `user_api_key_team_alias`, `user_api_key_org_id`, `user_api_key_end_user_id` | string | the same key in `metadata` |
//! | `request_tags` | list of string | `request_tags` |
//! | `messages`, `response`, `metadata`, `hidden_params`, `model_parameters`, `error_information` | string (JSON text) | the same key, as it was |
//! | `extra` | string (JSON object) | every other top-level key, in the record's order |
//! | `unfit` | string (JSON object) | top-level keys whose value did not fit their column's type |
//!
//! A typed column is null when the key is absent or `null`. A value of
//! another type leaves the column null and goes to `unfit` under its key, as
//! it was: no record and no value is dropped. The logger already refuses a
//! record whose typed fields have the wrong JSON type (see
//! [`LogRecord`](crate::LogRecord)), so what lands in `unfit` is what passes
//! that check but not the column: a token count beyond int64, a list of
//! non-strings in `request_tags`, a number in `session_id` or `model_id`. The
//! columns taken from inside `metadata` and `error_information` are only
//! copies (the JSON column keeps the original), so a value of another type
//! there just leaves the copy null. Together, the typed columns, the JSON
//! columns, `extra` and `unfit` hold every top-level key of the record.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, OnceLock};

use arrow_array::builder::{
    BooleanBuilder, Float64Builder, Int64Builder, ListBuilder, StringBuilder,
    TimestampMicrosecondBuilder,
};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;
use serde::de::{DeserializeSeed, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

use crate::format::EncodeError;

/// The schema's name, in each file's key-value metadata (`llm_log.schema`).
pub const SCHEMA_NAME: &str = "litellm.StandardLoggingPayload";
/// The schema's version, in each file's key-value metadata (`llm_log.schema_version`).
pub const SCHEMA_VERSION: u32 = 1;

/// Where a column's value comes from.
#[derive(Clone, Copy)]
enum Source {
    /// A top-level key.
    Top(&'static str),
    /// A key inside the top-level `metadata` object.
    Metadata(&'static str),
    /// A key inside the top-level `error_information` object.
    ErrorInformation(&'static str),
}

/// A column's type, and how a JSON value is read into it.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    /// A JSON string.
    Str,
    /// A JSON string, or an integer written as its digits.
    Code,
    /// A JSON integer within int64.
    Int,
    /// Any JSON number.
    Float,
    /// A JSON number of seconds since the epoch, as µs in UTC.
    Time,
    /// `true` or `false`.
    Bool,
    /// A JSON array of strings.
    Tags,
    /// Any JSON value, kept as its text.
    Json,
}

struct Column {
    name: &'static str,
    kind: Kind,
    source: Source,
}

const fn col(name: &'static str, kind: Kind, source: Source) -> Column {
    Column { name, kind, source }
}

const fn top(name: &'static str, kind: Kind) -> Column {
    col(name, kind, Source::Top(name))
}

use Kind::*;
use Source::{ErrorInformation, Metadata, Top};

/// Schema version 1, in file order (`extra` and `unfit` follow).
const COLUMNS: &[Column] = &[
    top("id", Str),
    top("trace_id", Str),
    top("litellm_call_id", Str),
    top("session_id", Str),
    top("call_type", Str),
    top("status", Str),
    top("model", Str),
    top("model_group", Str),
    top("model_id", Str),
    top("custom_llm_provider", Str),
    top("api_base", Str),
    col("start_time", Time, Top("startTime")),
    col("end_time", Time, Top("endTime")),
    col("completion_start_time", Time, Top("completionStartTime")),
    top("response_time", Float),
    top("prompt_tokens", Int),
    top("completion_tokens", Int),
    top("total_tokens", Int),
    top("response_cost", Float),
    top("cache_hit", Bool),
    col("error_class", Str, ErrorInformation("error_class")),
    col("error_code", Code, ErrorInformation("error_code")),
    top("error_str", Str),
    top("end_user", Str),
    col("user_api_key_hash", Str, Metadata("user_api_key_hash")),
    col("user_api_key_alias", Str, Metadata("user_api_key_alias")),
    col(
        "user_api_key_user_id",
        Str,
        Metadata("user_api_key_user_id"),
    ),
    col(
        "user_api_key_team_id",
        Str,
        Metadata("user_api_key_team_id"),
    ),
    col(
        "user_api_key_team_alias",
        Str,
        Metadata("user_api_key_team_alias"),
    ),
    col("user_api_key_org_id", Str, Metadata("user_api_key_org_id")),
    col(
        "user_api_key_end_user_id",
        Str,
        Metadata("user_api_key_end_user_id"),
    ),
    top("request_tags", Tags),
    top("messages", Json),
    top("response", Json),
    top("metadata", Json),
    top("hidden_params", Json),
    top("model_parameters", Json),
    top("error_information", Json),
];

/// The column of every top-level key, and of every key inside `metadata`
/// and `error_information`, that has one.
struct Index {
    top: HashMap<&'static str, usize>,
    metadata: HashMap<&'static str, usize>,
    error_information: HashMap<&'static str, usize>,
    metadata_column: usize,
    error_information_column: usize,
}

fn index() -> &'static Index {
    static INDEX: OnceLock<Index> = OnceLock::new();
    INDEX.get_or_init(|| {
        let mut ix = Index {
            top: HashMap::new(),
            metadata: HashMap::new(),
            error_information: HashMap::new(),
            metadata_column: usize::MAX,
            error_information_column: usize::MAX,
        };
        for (i, c) in COLUMNS.iter().enumerate() {
            match c.source {
                Source::Top(k) => {
                    ix.top.insert(k, i);
                    if k == "metadata" {
                        ix.metadata_column = i;
                    }
                    if k == "error_information" {
                        ix.error_information_column = i;
                    }
                }
                Source::Metadata(k) => {
                    ix.metadata.insert(k, i);
                }
                Source::ErrorInformation(k) => {
                    ix.error_information.insert(k, i);
                }
            }
        }
        ix
    })
}

/// The Arrow schema of version 1 (with the version in its metadata).
pub fn schema() -> Arc<Schema> {
    let mut fields: Vec<Field> = COLUMNS
        .iter()
        .map(|c| Field::new(c.name, data_type(c.kind), true))
        .collect();
    fields.push(Field::new("extra", DataType::Utf8, true));
    fields.push(Field::new("unfit", DataType::Utf8, true));
    let metadata: HashMap<String, String> = key_values()
        .into_iter()
        .filter_map(|kv| kv.value.map(|v| (kv.key, v)))
        .collect();
    Arc::new(Schema::new_with_metadata(fields, metadata))
}

fn data_type(kind: Kind) -> DataType {
    match kind {
        Str | Code | Json => DataType::Utf8,
        Int => DataType::Int64,
        Float => DataType::Float64,
        Time => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        Bool => DataType::Boolean,
        Tags => DataType::List(Arc::new(Field::new_list_field(DataType::Utf8, true))),
    }
}

fn key_values() -> Vec<KeyValue> {
    vec![
        KeyValue::new("llm_log.schema".into(), SCHEMA_NAME.to_string()),
        KeyValue::new("llm_log.schema_version".into(), SCHEMA_VERSION.to_string()),
    ]
}

/// One column being filled.
enum Builder {
    Str(StringBuilder),
    Int(Int64Builder),
    Float(Float64Builder),
    Time(TimestampMicrosecondBuilder),
    Bool(BooleanBuilder),
    Tags(ListBuilder<StringBuilder>),
}

impl Builder {
    fn new(kind: Kind, rows: usize) -> Builder {
        match kind {
            Str | Code | Json => Builder::Str(StringBuilder::with_capacity(rows, rows * 16)),
            Int => Builder::Int(Int64Builder::with_capacity(rows)),
            Float => Builder::Float(Float64Builder::with_capacity(rows)),
            Time => {
                Builder::Time(TimestampMicrosecondBuilder::with_capacity(rows).with_timezone("UTC"))
            }
            Bool => Builder::Bool(BooleanBuilder::with_capacity(rows)),
            Tags => Builder::Tags(ListBuilder::with_capacity(StringBuilder::new(), rows)),
        }
    }

    fn finish(&mut self) -> ArrayRef {
        match self {
            Builder::Str(b) => Arc::new(b.finish()),
            Builder::Int(b) => Arc::new(b.finish()),
            Builder::Float(b) => Arc::new(b.finish()),
            Builder::Time(b) => Arc::new(b.finish()),
            Builder::Bool(b) => Arc::new(b.finish()),
            Builder::Tags(b) => Arc::new(b.finish()),
        }
    }

    fn null(&mut self) {
        match self {
            Builder::Str(b) => b.append_null(),
            Builder::Int(b) => b.append_null(),
            Builder::Float(b) => b.append_null(),
            Builder::Time(b) => b.append_null(),
            Builder::Bool(b) => b.append_null(),
            Builder::Tags(b) => b.append_null(),
        }
    }

    /// Appends `value` read as `kind`; false (and a null) when it does not fit.
    fn push(&mut self, kind: Kind, value: &RawValue) -> bool {
        let text = value.get();
        if text == "null" {
            self.null();
            return true;
        }
        let fits = match (self, kind) {
            (Builder::Str(b), Json) => {
                b.append_value(text);
                true
            }
            (Builder::Str(b), Str) => match str_value(text) {
                Some(s) => {
                    b.append_value(s);
                    true
                }
                None => false,
            },
            (Builder::Str(b), Code) => match str_value(text) {
                Some(s) => {
                    b.append_value(s);
                    true
                }
                None if serde_json::from_str::<i64>(text).is_ok() => {
                    b.append_value(text);
                    true
                }
                None => false,
            },
            (Builder::Int(b), _) => match serde_json::from_str::<i64>(text) {
                Ok(n) => {
                    b.append_value(n);
                    true
                }
                Err(_) => false,
            },
            (Builder::Float(b), _) => match serde_json::from_str::<f64>(text) {
                Ok(x) => {
                    b.append_value(x);
                    true
                }
                Err(_) => false,
            },
            (Builder::Time(b), _) => match serde_json::from_str::<f64>(text)
                .ok()
                .and_then(epoch_micros)
            {
                Some(us) => {
                    b.append_value(us);
                    true
                }
                None => false,
            },
            (Builder::Bool(b), _) => match text {
                "true" => {
                    b.append_value(true);
                    true
                }
                "false" => {
                    b.append_value(false);
                    true
                }
                _ => false,
            },
            (Builder::Tags(b), _) => match serde_json::from_str::<Vec<Cow<'_, str>>>(text) {
                Ok(tags) => {
                    for t in tags {
                        b.values().append_value(t);
                    }
                    b.append(true);
                    true
                }
                Err(_) => false,
            },
            // a kind never paired with another builder (see `Builder::new`)
            (_, _) => false,
        };
        fits
    }
}

/// A JSON string's value.
fn str_value(text: &str) -> Option<Cow<'_, str>> {
    if !text.starts_with('"') {
        return None;
    }
    serde_json::from_str::<Cow<'_, str>>(text).ok()
}

/// Seconds since the epoch as whole µs, when they fit.
fn epoch_micros(secs: f64) -> Option<i64> {
    let us = (secs * 1e6).round();
    // i64's range as f64, strictly inside so the cast is exact
    (us.is_finite() && us > -9.2e18 && us < 9.2e18).then_some(us as i64)
}

/// A JSON object's members in order, keys and values borrowed from the text
/// (keys with escapes are copied).
struct Members<'a>(Vec<(Cow<'a, str>, &'a RawValue)>);

impl<'de> serde::Deserialize<'de> for Members<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Members<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::with_capacity(map.size_hint().unwrap_or(64));
                while let Some(k) = map.next_key_seed(Key)? {
                    let v: &'de RawValue = map.next_value()?;
                    out.push((k, v));
                }
                Ok(Members(out))
            }
        }
        d.deserialize_map(V)
    }
}

/// An object key, borrowed from the text where it has no escapes (serde's
/// own `Cow<str>` always allocates).
struct Key;

impl<'de> DeserializeSeed<'de> for Key {
    type Value = Cow<'de, str>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Key {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a key")
    }

    fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(s))
    }

    fn visit_str<E>(self, s: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(s.to_string()))
    }
}

fn members(text: &str) -> Option<Members<'_>> {
    let mut de = serde_json::Deserializer::from_str(text);
    let m = serde::Deserialize::deserialize(&mut de).ok()?;
    de.end().ok()?;
    Some(m)
}

/// Appends `"key":value` to a JSON object being built in `out`.
fn push_member(out: &mut String, key: &str, value: &RawValue) {
    out.push(if out.is_empty() { '{' } else { ',' });
    // a key is a string: serializing it cannot fail
    out.push_str(&serde_json::to_string(key).unwrap_or_else(|_| "\"\"".into()));
    out.push(':');
    out.push_str(value.get());
}

/// Converts one batch of NDJSON lines (each a JSON object) into one Parquet file.
pub(crate) fn encode(ndjson: &[u8]) -> Result<Vec<u8>, EncodeError> {
    let text = std::str::from_utf8(ndjson)
        .map_err(|e| EncodeError(format!("the batch is not UTF-8: {e}")))?;
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let batch = record_batch(&lines)?;
    let mut out = Vec::with_capacity(ndjson.len() / 4);
    let mut writer = ArrowWriter::try_new(&mut out, batch.schema(), Some(properties()))
        .map_err(|e| EncodeError(format!("parquet: {e}")))?;
    writer
        .write(&batch)
        .map_err(|e| EncodeError(format!("parquet: {e}")))?;
    writer
        .close()
        .map_err(|e| EncodeError(format!("parquet: {e}")))?;
    Ok(out)
}

/// zstd pages; statistics and dictionaries on the typed columns only (the
/// JSON text columns are large, never equal and never compared as ranges).
fn properties() -> WriterProperties {
    let mut b = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_created_by(format!("llm-log-callback {}", env!("CARGO_PKG_VERSION")))
        .set_key_value_metadata(Some(key_values()));
    let text_columns = COLUMNS
        .iter()
        .filter(|c| c.kind == Json || c.name == "error_str")
        .map(|c| c.name)
        .chain(["extra", "unfit"]);
    for name in text_columns {
        let path = ColumnPath::from(name);
        b = b
            .set_column_dictionary_enabled(path.clone(), false)
            .set_column_statistics_enabled(path, EnabledStatistics::None);
    }
    b.build()
}

/// The rows of `lines` as one Arrow record batch of schema version 1.
fn record_batch(lines: &[&str]) -> Result<RecordBatch, EncodeError> {
    let ix = index();
    let rows = lines.len();
    let mut builders: Vec<Builder> = COLUMNS.iter().map(|c| Builder::new(c.kind, rows)).collect();
    let mut extra_col = StringBuilder::with_capacity(rows, 0);
    let mut unfit_col = StringBuilder::with_capacity(rows, 0);
    let mut found: Vec<Option<&RawValue>> = vec![None; COLUMNS.len()];
    let mut extra = String::new();
    let mut unfit = String::new();
    for (n, line) in lines.iter().enumerate() {
        let record = members(line).ok_or_else(|| {
            EncodeError(format!("line {} of the batch is not a JSON object", n + 1))
        })?;
        found.iter_mut().for_each(|f| *f = None);
        extra.clear();
        unfit.clear();
        for (k, v) in &record.0 {
            match ix.top.get(k.as_ref()) {
                Some(&i) => found[i] = Some(*v),
                None => push_member(&mut extra, k, v),
            }
        }
        // copies of fields inside `metadata` and `error_information`
        let nested = [
            (ix.metadata_column, &ix.metadata),
            (ix.error_information_column, &ix.error_information),
        ];
        let mut inner = Vec::new();
        for (column, keys) in nested {
            if let Some(obj) = found
                .get(column)
                .copied()
                .flatten()
                .and_then(|v| members(v.get()))
            {
                inner.push((obj, keys));
            }
        }
        for (obj, keys) in &inner {
            for (k, v) in &obj.0 {
                if let Some(&i) = keys.get(k.as_ref()) {
                    found[i] = Some(*v);
                }
            }
        }
        for (i, c) in COLUMNS.iter().enumerate() {
            let b = &mut builders[i];
            match found[i] {
                None => b.null(),
                Some(v) => {
                    if !b.push(c.kind, v) {
                        b.null();
                        if let Source::Top(key) = c.source {
                            push_member(&mut unfit, key, v);
                        }
                    }
                }
            }
        }
        for (col, text) in [(&mut extra_col, &mut extra), (&mut unfit_col, &mut unfit)] {
            if text.is_empty() {
                col.append_null();
            } else {
                text.push('}');
                col.append_value(text.as_str());
            }
        }
    }
    let mut arrays: Vec<ArrayRef> = builders.iter_mut().map(Builder::finish).collect();
    arrays.push(Arc::new(extra_col.finish()));
    arrays.push(Arc::new(unfit_col.finish()));
    RecordBatch::try_new(schema(), arrays).map_err(|e| EncodeError(format!("arrow: {e}")))
}

#[cfg(test)]
mod tests;
