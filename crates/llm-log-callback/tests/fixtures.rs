//! Every record LiteLLM really emits (frozen by `cargo xtask fixtures` from
//! LiteLLM's own callback, see `tests/fixtures/litellm/README.md`) reads into
//! a `LogRecord` and back without loss, and its typed fields hold what the
//! JSON holds.

use std::path::PathBuf;

use llm_log_callback::{LogRecord, Redaction};
use serde_json::Value;

fn fixtures() -> Vec<(String, Value)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/litellm");
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

#[test]
fn every_fixture_round_trips_exactly() {
    for (name, v) in fixtures() {
        let r = LogRecord::from_value(v.clone()).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(r.to_value(), v, "{name} changed in the round trip");
        // and through NDJSON text, as the logger writes it
        let line = serde_json::to_string(&r).expect("serialize");
        let back: Value = serde_json::from_str(&line).expect("parse");
        assert_eq!(back, v, "{name} changed through text");
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
        assert_eq!(
            r.start_time.get().and_then(|n| n.as_f64()),
            v["startTime"].as_f64(),
            "{name}"
        );
        assert_eq!(
            r.response_cost.get().and_then(|n| n.as_f64()),
            v["response_cost"].as_f64(),
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
