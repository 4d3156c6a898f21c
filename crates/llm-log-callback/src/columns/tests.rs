//! Schema version 1 against real LiteLLM records: every record rebuilt from
//! its row equals the input, typed columns hold what is queried, and values
//! that fit no column land in `unfit`. Files are read back with the `parquet`
//! crate's Arrow reader (the reader tests in `tests/it/readers.rs` use
//! polars, pyarrow and DuckDB).

use super::*;
use arrow_array::cast::AsArray as _;
use arrow_array::types::{Float64Type, Int64Type, TimestampMicrosecondType};
use arrow_array::Array as _;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::{json, Map, Value};

/// Real LiteLLM records: the fixtures xtask generates with LiteLLM itself.
fn fixture_lines() -> Vec<String> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/litellm");
    let mut lines: Vec<String> =
        std::fs::read_to_string(format!("{dir}/litellm_azure_storage.ndjson"))
            .expect("fixture")
            .lines()
            .map(str::to_string)
            .collect();
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .expect("dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    names.sort();
    for p in names {
        let v: Value =
            serde_json::from_str(&std::fs::read_to_string(p).expect("read")).expect("json");
        lines.push(v.to_string());
    }
    assert!(lines.len() >= 20, "fixtures missing");
    lines
}

fn read_back(file: &[u8]) -> (RecordBatch, HashMap<String, String>) {
    let builder = ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::copy_from_slice(file))
        .expect("a parquet file");
    let kv: HashMap<String, String> = builder
        .metadata()
        .file_metadata()
        .key_value_metadata()
        .into_iter()
        .flatten()
        .filter_map(|kv| kv.value.clone().map(|v| (kv.key.clone(), v)))
        .collect();
    let batches: Vec<RecordBatch> = builder
        .build()
        .expect("reader")
        .collect::<Result<_, _>>()
        .expect("rows");
    assert_eq!(batches.len(), 1, "one batch of rows for a small file");
    (batches[0].clone(), kv)
}

/// The record a row holds, rebuilt from the columns alone: typed columns
/// under their record keys, JSON columns parsed, `extra` and `unfit` merged.
fn rebuild(batch: &RecordBatch, row: usize) -> Map<String, Value> {
    let mut out = Map::new();
    for (i, c) in COLUMNS.iter().enumerate() {
        let Source::Top(key) = c.source else { continue };
        let a = batch.column(i);
        if a.is_null(row) {
            continue;
        }
        let v = match c.kind {
            Str | Code => json!(a.as_string::<i32>().value(row)),
            Json => serde_json::from_str(a.as_string::<i32>().value(row)).expect("json column"),
            Int => json!(a.as_primitive::<Int64Type>().value(row)),
            Float => json!(a.as_primitive::<Float64Type>().value(row)),
            Time => json!(a.as_primitive::<TimestampMicrosecondType>().value(row) as f64 / 1e6),
            Bool => json!(a.as_boolean().value(row)),
            Tags => {
                let l = a.as_list::<i32>().value(row);
                let s = l.as_string::<i32>();
                json!((0..s.len())
                    .map(|j| s.value(j).to_string())
                    .collect::<Vec<_>>())
            }
        };
        out.insert(key.to_string(), v);
    }
    for name in ["extra", "unfit"] {
        let a = batch.column_by_name(name).expect("column");
        if a.is_valid(row) {
            let m: Map<String, Value> =
                serde_json::from_str(a.as_string::<i32>().value(row)).expect("object");
            for (k, v) in m {
                assert!(out.insert(k.clone(), v).is_none(), "{k} twice");
            }
        }
    }
    out
}

/// A `null` in a column's key reads back as absent (documented): drop those
/// to compare. Other keys (in `extra`) keep their `null`s.
fn without_column_nulls(v: Value) -> Map<String, Value> {
    let Value::Object(m) = v else {
        panic!("object")
    };
    m.into_iter()
        .filter(|(k, v)| !(v.is_null() && index().top.contains_key(k.as_str())))
        .collect()
}

fn close(a: &Value, b: &Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => (x - y).abs() <= 1e-6,
        _ => false,
    }
}

#[test]
fn real_litellm_records_survive_the_round_trip_through_parquet() {
    let lines = fixture_lines();
    let ndjson: String = lines.iter().map(|l| format!("{l}\n")).collect();
    let file = encode(ndjson.as_bytes()).expect("encode");
    assert_eq!(&file[..4], b"PAR1");
    let (batch, kv) = read_back(&file);
    assert_eq!(batch.num_rows(), lines.len());
    assert_eq!(
        kv.get("llm_log.schema").map(String::as_str),
        Some(SCHEMA_NAME)
    );
    assert_eq!(
        kv.get("llm_log.schema_version").map(String::as_str),
        Some("1")
    );
    for (row, line) in lines.iter().enumerate() {
        let original = without_column_nulls(serde_json::from_str(line).expect("json"));
        let rebuilt = rebuild(&batch, row);
        let mut keys: Vec<_> = original.keys().collect();
        keys.sort();
        let mut got: Vec<_> = rebuilt.keys().collect();
        got.sort();
        assert_eq!(got, keys, "row {row}: the same keys");
        for (k, v) in &original {
            let r = &rebuilt[k];
            let time = matches!(k.as_str(), "startTime" | "endTime" | "completionStartTime");
            assert!(
                r == v || (time && close(r, v)),
                "row {row} key {k}: {r} != {v}"
            );
        }
        // nothing landed in `unfit`: real records fit schema version 1
        assert!(batch.column_by_name("unfit").expect("unfit").is_null(row));
    }
}

#[test]
fn typed_columns_hold_the_values_people_query() {
    let line = r#"{"id": "r1", "model": "gpt-4o", "status": "failure", "call_type": "acompletion",
        "startTime": 1735689600.25, "endTime": 1735689601.5, "response_time": 1.25,
        "prompt_tokens": 12, "completion_tokens": 30, "total_tokens": 42,
        "response_cost": 0.00022500000000000002, "cache_hit": false,
        "request_tags": ["a", "b"],
        "metadata": {"user_api_key_team_id": "team-1", "user_api_key_alias": "k\"ey", "other": 1},
        "error_information": {"error_class": "RateLimitError", "error_code": 429},
        "messages": [{"role": "user", "content": "h\u00e9llo"}],
        "x-unknown": {"nested": [1, 2.50]}}"#
        .replace('\n', " ");
    let file = encode(format!("{line}\n").as_bytes()).expect("encode");
    let (b, _) = read_back(&file);
    let s = |name: &str| {
        b.column_by_name(name)
            .expect(name)
            .as_string::<i32>()
            .value(0)
            .to_string()
    };
    assert_eq!(s("id"), "r1");
    assert_eq!(s("user_api_key_team_id"), "team-1");
    assert_eq!(s("user_api_key_alias"), "k\"ey");
    assert_eq!(s("error_class"), "RateLimitError");
    assert_eq!(s("error_code"), "429");
    let start = b
        .column_by_name("start_time")
        .expect("t")
        .as_primitive::<TimestampMicrosecondType>();
    assert_eq!(start.value(0), 1_735_689_600_250_000);
    assert_eq!(
        b.schema()
            .field_with_name("start_time")
            .expect("f")
            .data_type(),
        &DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
    );
    assert_eq!(
        b.column_by_name("total_tokens")
            .expect("t")
            .as_primitive::<Int64Type>()
            .value(0),
        42
    );
    assert_eq!(
        b.column_by_name("response_cost")
            .expect("c")
            .as_primitive::<Float64Type>()
            .value(0),
        0.00022500000000000002
    );
    assert!(!b
        .column_by_name("cache_hit")
        .expect("c")
        .as_boolean()
        .value(0));
    assert_eq!(
        s("extra"),
        r#"{"x-unknown":{"nested": [1, 2.50]}}"#,
        "kept as it was written"
    );
    assert_eq!(
        s("messages"),
        r#"[{"role": "user", "content": "h\u00e9llo"}]"#
    );
    assert!(b.column_by_name("unfit").expect("u").is_null(0));
}

#[test]
fn values_that_do_not_fit_their_column_are_kept_in_unfit() {
    let line = r#"{"id":7,"prompt_tokens":"12","total_tokens":18446744073709551615,"cache_hit":"yes","startTime":"2025-01-01T00:00:00Z","request_tags":["ok",1],"response_cost":null,"metadata":{"user_api_key_team_id":42}}"#;
    let file = encode(format!("{line}\n").as_bytes()).expect("encode");
    let (b, _) = read_back(&file);
    for name in [
        "id",
        "prompt_tokens",
        "total_tokens",
        "cache_hit",
        "start_time",
        "request_tags",
        "response_cost",
        "user_api_key_team_id",
    ] {
        assert!(
            b.column_by_name(name).expect(name).is_null(0),
            "{name} is null"
        );
    }
    let unfit = b
        .column_by_name("unfit")
        .expect("u")
        .as_string::<i32>()
        .value(0)
        .to_string();
    assert_eq!(
        unfit,
        r#"{"id":7,"startTime":"2025-01-01T00:00:00Z","prompt_tokens":"12","total_tokens":18446744073709551615,"cache_hit":"yes","request_tags":["ok",1]}"#
    );
    // the copy from `metadata` is null; the original is in the JSON column
    assert_eq!(
        b.column_by_name("metadata")
            .expect("m")
            .as_string::<i32>()
            .value(0),
        r#"{"user_api_key_team_id":42}"#
    );
}

#[test]
fn a_line_that_is_not_an_object_is_an_error_not_a_silent_row() {
    let e = encode(b"{\"id\":\"a\"}\n[1,2]\n").expect_err("not an object");
    assert!(e.to_string().contains("line 2"), "{e}");
    let e = encode(b"{\"id\":\"a\"} trailing\n").expect_err("trailing text");
    assert!(e.to_string().contains("line 1"), "{e}");
}

#[test]
fn escaped_keys_and_empty_batches() {
    let file = encode(b"{\"a\\\"b\":1,\"id\":\"x\"}\n").expect("encode");
    let (b, _) = read_back(&file);
    assert_eq!(
        b.column_by_name("extra")
            .expect("e")
            .as_string::<i32>()
            .value(0),
        r#"{"a\"b":1}"#
    );
    let file = encode(b"").expect("an empty batch is an empty file");
    let reader = ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(file)).expect("file");
    assert_eq!(reader.metadata().file_metadata().num_rows(), 0);
}
