//! Every record LiteLLM really emits (frozen by `cargo xtask fixtures` from
//! LiteLLM's own callback, see `tests/fixtures/litellm/README.md`) reads into
//! a `LogRecord` and back without loss, and its typed fields hold what the
//! JSON holds.
//!
//! Numbers are checked against the file's own text, not against serde_json's
//! reading of it (that reading is part of what is under test): each float must
//! come back as the `f64` the standard library's correctly rounded parser
//! reads from the fixture, bit for bit, and each integer as that integer.

use std::path::PathBuf;

use llm_log_callback::{LogRecord, Redaction};
use serde_json::Value;

fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/litellm")
}

fn fixtures() -> Vec<(String, Value)> {
    let dir = fixture_dir();
    let mut out: Vec<(String, Value)> = std::fs::read_dir(&dir)
        .expect("fixture dir")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| {
            let text = std::fs::read_to_string(&p).expect("read");
            (
                p.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                serde_json::from_str(&text).expect("json"),
            )
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    assert!(
        out.len() >= 10,
        "expected the LiteLLM fixtures in {}",
        dir.display()
    );
    out
}

/// Every fixture's text: the pretty `*.json` files and each line of the
/// NDJSON file LiteLLM's Azure logger writes (`1.35e-05` style floats).
fn fixture_texts() -> Vec<(String, String)> {
    let dir = fixture_dir();
    let mut out = Vec::new();
    for (name, _) in fixtures() {
        let text = std::fs::read_to_string(dir.join(&name)).expect("read");
        out.push((name, text));
    }
    let ndjson = std::fs::read_to_string(dir.join("litellm_azure_storage.ndjson")).expect("read");
    for (i, line) in ndjson.lines().enumerate() {
        out.push((
            format!("litellm_azure_storage.ndjson line {}", i + 1),
            line.to_string(),
        ));
    }
    out
}

#[test]
fn every_fixture_round_trips_exactly() {
    for (name, text) in fixture_texts() {
        let raw = Raw::parse(&text);
        // from the file's text, as `Logger::log_json` reads it
        let r = LogRecord::from_json(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
        raw.assert_matches(&r.to_value(), &format!("{name}: (value)"));
        // and through NDJSON text, as the logger writes it
        let line = serde_json::to_string(&r).expect("serialize");
        let back = LogRecord::from_json(&line).unwrap_or_else(|e| panic!("{name}: {e}"));
        raw.assert_matches(&back.to_value(), &format!("{name}: (through text)"));
        // what `from_value` reads is what `from_json` reads
        let v: Value = serde_json::from_str(&text).expect("json");
        assert_eq!(LogRecord::from_value(v).expect("record"), r, "{name}");
    }
}

#[test]
fn typed_fields_hold_the_json_values() {
    for (name, v) in fixtures() {
        let r = LogRecord::from_value(v.clone()).expect("record");
        assert_eq!(r.id.get().map(String::as_str), v["id"].as_str(), "{name}");
        assert_eq!(
            r.status.get().map(String::as_str),
            v["status"].as_str(),
            "{name}"
        );
        assert_eq!(
            r.model.get().map(String::as_str),
            v["model"].as_str(),
            "{name}"
        );
        assert_eq!(
            r.prompt_tokens.get().copied(),
            v["prompt_tokens"].as_u64(),
            "{name}"
        );
        let text = std::fs::read_to_string(fixture_dir().join(&name)).expect("read");
        let raw = Raw::parse(&text);
        assert_eq!(
            r.start_time
                .get()
                .and_then(|n| n.as_f64())
                .map(f64::to_bits),
            raw.float_field("startTime").map(f64::to_bits),
            "{name}"
        );
        assert_eq!(
            r.response_cost
                .get()
                .and_then(|n| n.as_f64())
                .map(f64::to_bits),
            raw.float_field("response_cost").map(f64::to_bits),
            "{name}"
        );
        assert!(
            !r.extra.contains_key("startTime"),
            "{name}: typed fields are not duplicated in extra"
        );
        assert!(
            r.extra.contains_key("model_map_information"),
            "{name}: other fields kept"
        );
    }
}

#[test]
fn redaction_applies_to_success_and_failure_records_alike() {
    let (_, image) = fixtures()
        .into_iter()
        .find(|(n, _)| n.starts_with("chat_image_long"))
        .expect("image fixture");
    let (_, failure) = fixtures()
        .into_iter()
        .find(|(n, _)| n.starts_with("chat_failure"))
        .expect("failure fixture");
    assert!(
        image.to_string().contains(";base64,"),
        "the fixture carries an inline image"
    );
    // the same prompt on a failed call
    let mut failed = failure.clone();
    failed["messages"] = image["messages"].clone();
    let redaction = Redaction {
        max_string_bytes: Some(4096),
        ..Redaction::default()
    };
    for (what, v) in [("success", image), ("failure", failed)] {
        let mut r = LogRecord::from_value(v).expect("record");
        redaction.apply(&mut r);
        let text = r.to_value().to_string();
        assert!(
            text.contains(";base64,[stripped "),
            "{what}: image stripped with a marker"
        );
        assert!(
            text.contains("[truncated "),
            "{what}: the long text part is truncated with a marker"
        );
        assert!(
            r.to_value()["messages"].to_string().len() < 10_000,
            "{what}"
        );
    }
}

/// A JSON value as the file spells it: numbers stay text. A small reader of
/// well-formed JSON (the fixtures are), independent of serde_json's number
/// parsing; strings are decoded by serde_json, which is exact for them.
#[derive(Debug)]
enum Raw {
    Null,
    Bool(bool),
    Number(String),
    String(String),
    Array(Vec<Raw>),
    Object(Vec<(String, Raw)>),
}

impl Raw {
    fn parse(text: &str) -> Raw {
        let mut at = 0;
        let v = Raw::value(text, &mut at);
        assert!(text[at..].trim().is_empty(), "trailing text at byte {at}");
        v
    }

    fn skip_ws(text: &str, at: &mut usize) {
        while text[*at..].starts_with([' ', '\n', '\r', '\t']) {
            *at += 1;
        }
    }

    fn value(text: &str, at: &mut usize) -> Raw {
        Raw::skip_ws(text, at);
        let rest = &text[*at..];
        let v = match rest.as_bytes().first().copied() {
            Some(b'{') => {
                *at += 1;
                let mut members = Vec::new();
                loop {
                    Raw::skip_ws(text, at);
                    if text[*at..].starts_with('}') {
                        *at += 1;
                        break;
                    }
                    if text[*at..].starts_with(',') {
                        *at += 1;
                        Raw::skip_ws(text, at);
                    }
                    let Raw::String(key) = Raw::value(text, at) else {
                        panic!("object key is not a string at byte {at}");
                    };
                    Raw::skip_ws(text, at);
                    assert!(text[*at..].starts_with(':'), "no `:` at byte {at}");
                    *at += 1;
                    members.push((key, Raw::value(text, at)));
                }
                Raw::Object(members)
            }
            Some(b'[') => {
                *at += 1;
                let mut items = Vec::new();
                loop {
                    Raw::skip_ws(text, at);
                    if text[*at..].starts_with(']') {
                        *at += 1;
                        break;
                    }
                    if text[*at..].starts_with(',') {
                        *at += 1;
                    }
                    items.push(Raw::value(text, at));
                }
                Raw::Array(items)
            }
            Some(b'"') => {
                let bytes = rest.as_bytes();
                let mut end = 1;
                while bytes[end] != b'"' {
                    end += if bytes[end] == b'\\' { 2 } else { 1 };
                }
                *at += end + 1;
                Raw::String(serde_json::from_str(&rest[..=end]).expect("string literal"))
            }
            Some(b'-' | b'0'..=b'9') => {
                let len = rest
                    .find(|c: char| !matches!(c, '-' | '+' | '.' | 'e' | 'E' | '0'..='9'))
                    .unwrap_or(rest.len());
                *at += len;
                Raw::Number(rest[..len].to_string())
            }
            _ if rest.starts_with("null") => {
                *at += 4;
                Raw::Null
            }
            _ if rest.starts_with("true") => {
                *at += 4;
                Raw::Bool(true)
            }
            _ if rest.starts_with("false") => {
                *at += 5;
                Raw::Bool(false)
            }
            _ => panic!("unexpected text at byte {at}"),
        };
        v
    }

    /// The float a top-level field's text denotes, correctly rounded.
    fn float_field(&self, name: &str) -> Option<f64> {
        let Raw::Object(members) = self else {
            return None;
        };
        members
            .iter()
            .find(|(k, _)| k == name)
            .and_then(|(_, v)| match v {
                Raw::Number(t) => Some(t.parse::<f64>().expect("float")),
                _ => None,
            })
    }

    /// Asserts that `v` holds exactly what the text holds: the same keys,
    /// strings and booleans, each integer as that integer, each float as the
    /// `f64` nearest its decimal text (bit-identical, sign of zero included).
    fn assert_matches(&self, v: &Value, path: &str) {
        match (self, v) {
            (Raw::Null, Value::Null) => {}
            (Raw::Bool(a), Value::Bool(b)) => assert_eq!(a, b, "{path}"),
            (Raw::String(a), Value::String(b)) => assert_eq!(a, b, "{path}"),
            (Raw::Number(t), Value::Number(n)) => {
                if !t.contains(['.', 'e', 'E']) {
                    if let Ok(i) = t.parse::<u64>() {
                        assert_eq!(n.as_u64(), Some(i), "{path}: integer {t} became {n}");
                        return;
                    }
                    if let Ok(i) = t.parse::<i64>() {
                        assert_eq!(n.as_i64(), Some(i), "{path}: integer {t} became {n}");
                        return;
                    }
                }
                let want = t.parse::<f64>().expect("number");
                assert!(n.is_f64(), "{path}: float {t} became the integer {n}");
                let got = n.as_f64().expect("f64");
                assert_eq!(
                    got.to_bits(),
                    want.to_bits(),
                    "{path}: {t} came back as {got:?}, not {want:?}"
                );
            }
            (Raw::Array(a), Value::Array(b)) => {
                assert_eq!(a.len(), b.len(), "{path}: array length");
                for (i, (x, y)) in a.iter().zip(b).enumerate() {
                    x.assert_matches(y, &format!("{path}[{i}]"));
                }
            }
            (Raw::Object(a), Value::Object(b)) => {
                assert_eq!(
                    a.len(),
                    b.len(),
                    "{path}: keys {:?}",
                    b.keys().collect::<Vec<_>>()
                );
                for (k, x) in a {
                    let y = b
                        .get(k)
                        .unwrap_or_else(|| panic!("{path}: `{k}` is missing"));
                    x.assert_matches(y, &format!("{path}.{k}"));
                }
            }
            (a, b) => panic!("{path}: {a:?} came back as {b}"),
        }
    }
}
