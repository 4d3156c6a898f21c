//! [`LogRecord`]: one LLM request's log, compatible with LiteLLM's
//! `StandardLoggingPayload` (the `standard_logging_object` a LiteLLM callback
//! receives).
//!
//! The fields users query are typed; every other field is kept as it came, so
//! a record read and written again holds the same JSON values: a field that
//! was absent stays absent, one that was `null` stays `null`.
//!
//! # Numbers: what the round trip keeps
//!
//! Kept exactly (value and integer-or-float form), typed fields and unknown
//! ones alike, at any depth:
//! - an integer that fits `u64` or `i64` is written back with the same digits;
//! - a number with a fraction or exponent is read as the `f64` nearest its
//!   decimal value (correctly rounded: serde_json's `float_roundtrip` feature,
//!   enabled in the workspace) and written back as the shortest text that reads
//!   as that same `f64`. So what Python's `json.dumps` writes (also the shortest
//!   form), e.g. `0.00022500000000000002`, comes back bit for bit, and a float
//!   stays a float: `1.0` stays `1.0` and `1` stays `1`; `-0.0` keeps its sign.
//!
//! Not kept textually (the value is the same, the spelling changes): `1.50`
//! becomes `1.5`, `1e2` becomes `100.0`, `1e21` becomes `1e+21`, `0.000001`
//! becomes `1e-6`, `-0` becomes `-0.0`, and digits beyond what an `f64` holds
//! are rounded away (`1e-400` becomes `0.0`).
//!
//! Not kept at all: an integer beyond `u64`/`i64` is read as the nearest
//! `f64` (`18446744073709551617` becomes `1.8446744073709552e+19`). A number
//! beyond `f64`'s range (`1e400`) is refused with a [`RecordError`]. Typed
//! integer fields (`prompt_tokens`, ...) accept only integers from 0 to
//! `u64::MAX`; anything else there is a [`RecordError`].
//!
//! [`Logger::log_json`](crate::Logger::log_json) keeps more than this: a
//! record whose text needs no rewriting (redaction changes none of its
//! strings) is stored as it came, spellings, key order and all.
//!
//! The tests `floats_round_trip_bit_for_bit`,
//! `decimal_text_reads_as_the_nearest_float` and
//! `number_forms_that_are_and_are_not_kept` below hold each of these claims.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Number, Value};

/// A field that can be absent, explicitly `null`, or hold a value: the three
/// are kept apart so records round-trip exactly.
///
/// ```
/// use llm_log_callback::{Field, LogRecord};
///
/// let r = LogRecord::from_json(r#"{"model":null,"prompt_tokens":7}"#).unwrap();
/// assert_eq!(r.model, Field::Null);
/// assert_eq!(r.prompt_tokens.get(), Some(&7));
/// assert!(r.call_type.is_absent());
/// assert_eq!(r.to_value().to_string(), r#"{"model":null,"prompt_tokens":7}"#);
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub enum Field<T> {
    /// The key was not in the record.
    #[default]
    Absent,
    /// The key was present with `null`.
    Null,
    /// The key held this value.
    Value(T),
}

impl<T> Field<T> {
    /// True when the key was not in the record (skipped when serializing).
    pub fn is_absent(&self) -> bool {
        matches!(self, Field::Absent)
    }

    /// The value, if any.
    pub fn get(&self) -> Option<&T> {
        match self {
            Field::Value(v) => Some(v),
            _ => None,
        }
    }
}

impl<T> From<T> for Field<T> {
    fn from(v: T) -> Self {
        Field::Value(v)
    }
}

impl<T: Serialize> Serialize for Field<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Field::Value(v) => v.serialize(s),
            _ => s.serialize_none(),
        }
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Field<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(match Option::<T>::deserialize(d)? {
            Some(v) => Field::Value(v),
            None => Field::Null,
        })
    }
}

/// One LLM request's log record.
///
/// Field names follow LiteLLM's `StandardLoggingPayload`, including its
/// camel-case time fields (`startTime`, `endTime`, `completionStartTime`,
/// epoch seconds as floats).
///
/// ```
/// # fn main() -> Result<(), llm_log_callback::record::RecordError> {
/// use llm_log_callback::{Field, LogRecord};
///
/// let text = r#"{"id":"chatcmpl-1","model":"gpt-4o","prompt_tokens":12,"response_cost":0.00022500000000000002,"error_str":null,"user_api_key_team_alias":"search"}"#;
/// let record = LogRecord::from_json(text)?;
/// assert_eq!(record.model.get().map(String::as_str), Some("gpt-4o"));
/// assert_eq!(record.prompt_tokens, Field::Value(12));
/// assert_eq!(record.error_str, Field::Null); // null stays null
/// assert!(record.completion_tokens.is_absent()); // absent stays absent
/// assert_eq!(record.extra["user_api_key_team_alias"], "search"); // unknown fields are kept
///
/// // Written again, it holds the same JSON values (the float bit for bit).
/// let again: serde_json::Value = serde_json::from_str(text).unwrap();
/// assert_eq!(record.to_value(), again);
/// # Ok(()) }
/// ```
///
/// Built in code, a record needs only what is known; `id` is generated when missing:
///
/// ```
/// use llm_log_callback::LogRecord;
///
/// let mut record = LogRecord {
///     model: "gpt-4o".to_string().into(),
///     status: "success".to_string().into(),
///     completion_tokens: 30.into(),
///     ..LogRecord::default()
/// };
/// assert!(!record.ensure_id().is_empty());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LogRecord {
    /// Unique id of the request (generated when missing).
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub id: Field<String>,
    /// Trace id shared by retries and fallbacks of one logical call.
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub trace_id: Field<String>,
    /// LiteLLM's call id, where the caller records it.
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub litellm_call_id: Field<String>,
    /// `completion`, `acompletion`, `embedding`, ...
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub call_type: Field<String>,
    /// `success` or `failure`.
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub status: Field<String>,
    /// Model as requested.
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub model: Field<String>,
    /// Router model group.
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub model_group: Field<String>,
    /// Provider (`openai`, `azure`, `anthropic`, ...).
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub custom_llm_provider: Field<String>,
    /// Provider endpoint.
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub api_base: Field<String>,
    /// Prompt tokens.
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub prompt_tokens: Field<u64>,
    /// Completion tokens.
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub completion_tokens: Field<u64>,
    /// Total tokens.
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub total_tokens: Field<u64>,
    /// Cost in USD.
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub response_cost: Field<Number>,
    /// Request start, epoch seconds.
    #[serde(
        rename = "startTime",
        default,
        skip_serializing_if = "Field::is_absent"
    )]
    pub start_time: Field<Number>,
    /// Request end, epoch seconds.
    #[serde(rename = "endTime", default, skip_serializing_if = "Field::is_absent")]
    pub end_time: Field<Number>,
    /// First token time, epoch seconds.
    #[serde(
        rename = "completionStartTime",
        default,
        skip_serializing_if = "Field::is_absent"
    )]
    pub completion_start_time: Field<Number>,
    /// Duration in seconds.
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub response_time: Field<Number>,
    /// Served from cache.
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub cache_hit: Field<bool>,
    /// End user the gateway attributes the call to.
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub end_user: Field<String>,
    /// Tags of the request.
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub request_tags: Field<Value>,
    /// Gateway metadata (user/team/key ids, ...).
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub metadata: Field<Value>,
    /// The prompt messages (or embedding input).
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub messages: Field<Value>,
    /// The response.
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub response: Field<Value>,
    /// Error text of a failed call.
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub error_str: Field<String>,
    /// Structured error of a failed call.
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub error_information: Field<Value>,
    /// Request parameters (temperature, max_tokens, ...).
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub model_parameters: Field<Value>,
    /// Provider-specific details LiteLLM keeps aside.
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub hidden_params: Field<Value>,
    /// Every other field, kept as it came.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Why a record could not be read.
#[derive(Debug)]
pub struct RecordError(String);

impl std::fmt::Display for RecordError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "invalid log record: {}", self.0)
    }
}

impl std::error::Error for RecordError {}

impl RecordError {
    pub(crate) fn new(why: impl Into<String>) -> Self {
        RecordError(why.into())
    }
}

impl LogRecord {
    /// Reads a record from a JSON object.
    pub fn from_json(s: &str) -> Result<Self, RecordError> {
        let v: Value = serde_json::from_str(s).map_err(|e| RecordError(e.to_string()))?;
        Self::from_value(v)
    }

    /// Reads a record from a JSON value (must be an object).
    pub fn from_value(v: Value) -> Result<Self, RecordError> {
        if !v.is_object() {
            return Err(RecordError(format!(
                "expected a JSON object, found {}",
                json_type(&v)
            )));
        }
        serde_json::from_value(v).map_err(|e| RecordError(e.to_string()))
    }

    /// The record as a JSON value.
    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    /// Gives the record an id if it has none; returns the id.
    pub fn ensure_id(&mut self) -> &str {
        if !matches!(&self.id, Field::Value(s) if !s.is_empty()) {
            self.id = Field::Value(uuid::Uuid::new_v4().to_string());
        }
        match &self.id {
            Field::Value(s) => s,
            _ => "",
        }
    }
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn round_trip_keeps_absent_null_and_number_forms() {
        let v = json!({
            "id": "abc", "trace_id": null, "model": "gpt-4o", "prompt_tokens": 10,
            "response_cost": 0, "startTime": 1700000000.25, "response_time": 1.5,
            "metadata": {"user_api_key_team_id": "t1"}, "request_tags": ["a"],
            "unknown_field": {"nested": [1, 2.0, null]}, "stream": false
        });
        let r = LogRecord::from_value(v.clone()).expect("record");
        assert_eq!(r.model.get().map(String::as_str), Some("gpt-4o"));
        assert_eq!(r.trace_id, Field::Null);
        assert!(r.end_time.is_absent());
        assert_eq!(r.to_value(), v);
    }

    /// The JSON text of a record holding `x` (already spelled as JSON) as the
    /// typed `response_cost`, as an unknown top-level field, and nested in
    /// both typed and unknown values.
    fn record_text(x: &str) -> String {
        format!(
            r#"{{"response_cost":{x},"unknown_cost":{x},"metadata":{{"spend":{x}}},"deep":{{"a":[1,{{"b":{x}}},{x}]}}}}"#
        )
    }

    /// Every place `record_text` put the number, as `f64` bits.
    fn numbers_in(r: &LogRecord) -> Vec<Option<u64>> {
        let bits = |v: Option<&Value>| v.and_then(Value::as_f64).map(f64::to_bits);
        let v = r.to_value();
        vec![
            r.response_cost
                .get()
                .and_then(Number::as_f64)
                .map(f64::to_bits),
            bits(r.extra.get("unknown_cost")),
            bits(r.metadata.get().and_then(|m| m.get("spend"))),
            bits(v.pointer("/deep/a/1/b")),
            bits(v.pointer("/deep/a/2")),
            bits(v.get("response_cost")),
            bits(v.get("unknown_cost")),
        ]
    }

    /// Reads `text` (whose number the standard library's correctly rounded
    /// parser reads as `want`), writes it as the logger does, reads that back:
    /// every copy of the number is `want`, bit for bit, at every stage.
    fn assert_exact(text: &str, want: f64) {
        let expected = vec![Some(want.to_bits()); 7];
        let r = LogRecord::from_json(&record_text(text)).unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(
            numbers_in(&r),
            expected,
            "{text} read as {:?}",
            r.response_cost
        );
        let line = serde_json::to_string(&r).expect("serialize");
        let back = LogRecord::from_json(&line).unwrap_or_else(|e| panic!("{line}: {e}"));
        assert_eq!(numbers_in(&back), expected, "{text} written as {line}");
        assert_eq!(back, r, "{text}");
        let again = LogRecord::from_value(serde_json::from_str(&line).expect("json")).expect("r");
        assert_eq!(
            serde_json::to_string(&again).expect("serialize"),
            line,
            "{text}"
        );
    }

    /// The spellings of `x` a producer may use: serde_json's / Python's
    /// shortest form, Rust's `{:?}` and `{:e}` (also shortest), and 17
    /// significant digits (not shortest: `0.1` is `1.0000000000000001e-1`).
    fn spellings(x: f64) -> Vec<String> {
        let shortest = serde_json::to_string(&x).expect("finite");
        vec![
            shortest,
            format!("{x:?}"),
            format!("{x:e}"),
            format!("{x:.16e}"),
        ]
    }

    #[test]
    fn floats_round_trip_bit_for_bit() {
        let two53 = 9_007_199_254_740_992.0_f64;
        let mut values = vec![
            5e-324,
            -5e-324,
            f64::from_bits(1),
            f64::from_bits(0x000f_ffff_ffff_ffff), // largest subnormal
            f64::from_bits(0x0008_0000_0000_0001),
            f64::MIN_POSITIVE,
            f64::MIN_POSITIVE - 5e-324,
            f64::MAX,
            f64::MIN,
            f64::EPSILON,
            0.1 + 0.2,
            0.1,
            1.0 / 3.0,
            0.000_225_000_000_000_000_02,
            0.000_330_000_000_000_000_05,
            1.35e-5,
            1e21,
            1e22,
            1e21 - 131_072.0,
            1e22 + 2_097_152.0,
            1e23,
            9.999_999_999_999_999e20,
            0.0,
            -0.0,
            1.0,
            -1.0,
            two53,
            two53 - 1.0,
            two53 + 2.0,
            -two53 - 2.0,
            18_446_744_073_709_551_616.0, // 2^64
            9_223_372_036_854_775_808.0,  // 2^63
            1_732_000_000.123_456_7,
            2.225_073_858_507_201e-308,
        ];
        let mut rng = fastrand::Rng::with_seed(0x0005_eedf_10a7);
        let mut n = 0;
        while n < 10_000 {
            let x = f64::from_bits(rng.u64(..));
            if x.is_finite() {
                values.push(x);
                n += 1;
            }
        }
        // and the magnitudes records hold: costs, latencies, epoch seconds
        for _ in 0..5_000 {
            let x = rng.u64(..1 << 53) as f64 * 10f64.powi(rng.i32(-20..=12));
            values.push(if rng.bool() { x } else { -x });
        }
        for x in values {
            for text in spellings(x) {
                assert_exact(&text, x);
            }
        }
    }

    #[test]
    fn decimal_text_reads_as_the_nearest_float() {
        // Inputs that are not shortest forms: the answer is the float nearest
        // the decimal value, as `str::parse::<f64>` (correctly rounded) gives.
        let mut texts: Vec<String> = [
            "0.00022500000000000002",
            "9007199254740993",
            "9007199254740993.0",
            "9007199254740995.0",
            "-9007199254740993.0",
            "2.4703282292062327e-324", // just under half the smallest subnormal: 0
            "2.4703282292062328e-324", // just over: the smallest subnormal
            "2.2250738585072011e-308",
            "2.2250738585072012e-308",
            "1.7976931348623157e308",
            "1.7976931348623158e308",
            "1e-400",
            "0.30000000000000001665334536937734810635447502136230468750",
            "1.00000000000000011102230246251565404236316680908203125",
            "1.00000000000000011102230246251565404236316680908203124",
            "1.00000000000000011102230246251565404236316680908203126",
            "123456789012345678901234567890e-10",
        ]
        .map(String::from)
        .to_vec();
        let mut rng = fastrand::Rng::with_seed(0x0dec_14a1);
        for _ in 0..10_000 {
            let digits: String = (0..rng.usize(1..=40))
                .map(|_| char::from(b'0' + rng.u8(..10)))
                .collect();
            let (int, frac) = digits.split_at(rng.usize(..=digits.len()));
            let int = if int.is_empty() {
                "0"
            } else {
                int.trim_start_matches('0')
            };
            let int = if int.is_empty() { "0" } else { int };
            texts.push(format!("{int}.{frac}0e{}", rng.i32(-330..=300)));
        }
        for text in texts {
            let want: f64 = text.parse().expect("std parses it");
            if want.is_infinite() {
                // beyond f64::MAX: refused (JSON has no infinity)
                assert!(LogRecord::from_json(&record_text(&text)).is_err(), "{text}");
            } else if text.contains(['.', 'e']) {
                assert_exact(&text, want);
            } else {
                // an integer that fits u64 stays that integer
                let r = LogRecord::from_json(&record_text(&text)).expect("record");
                assert_eq!(r.to_value()["unknown_cost"].as_u64(), text.parse().ok());
            }
        }
    }

    /// What is kept textually and what is not; the module documentation says the same.
    #[test]
    fn number_forms_that_are_and_are_not_kept() {
        let through = |text: &str| -> Result<String, RecordError> {
            let r = LogRecord::from_json(&format!(r#"{{"n":{text}}}"#))?;
            let line = serde_json::to_string(&r).expect("serialize");
            Ok(line["{\"n\":".len()..line.len() - 1].to_string())
        };
        let kept = |t: &str| assert_eq!(through(t).expect(t), t, "{t}");
        // integers within i64/u64, and the float-or-integer form
        for t in [
            "0",
            "1",
            "-1",
            "1.0",
            "-0.0",
            "18446744073709551615",
            "-9223372036854775808",
            "0.00022500000000000002",
            "1e-7",
            "0.1",
            "1e+21",
        ] {
            kept(t);
        }
        // same value, other spelling (the shortest that reads back the same)
        for (t, out) in [
            ("1.50", "1.5"),
            ("1e2", "100.0"),
            ("1E+2", "100.0"),
            ("-0", "-0.0"),
            ("0.000001", "1e-6"),
            ("100000000000000000000.0", "1e+20"),
            // halfway between 1 and the next float: ties to even
            (
                "1.00000000000000011102230246251565404236316680908203125",
                "1.0",
            ),
            (
                "1.00000000000000011102230246251565404236316680908203126",
                "1.0000000000000002",
            ),
            ("1e-400", "0.0"),
            ("1e21", "1e+21"),
            ("1E-7", "1e-7"),
        ] {
            assert_eq!(through(t).expect(t), out, "{t}");
        }
        // integers beyond u64 / i64 become the nearest float
        assert_eq!(
            through("18446744073709551616").expect("2^64"),
            "1.8446744073709552e+19"
        );
        assert_eq!(
            through("18446744073709551617").expect("2^64+1"),
            "1.8446744073709552e+19",
            "not representable: rounded"
        );
        assert_eq!(
            through("-9223372036854775809").expect("-2^63-1"),
            "-9.223372036854776e+18"
        );
        // out of f64's range: a typed error, not infinity
        assert!(through("1e400").is_err());
        assert!(through("-1e400").is_err());
        // typed integer fields take integers only
        assert!(LogRecord::from_json(r#"{"prompt_tokens":18446744073709551616}"#).is_err());
        assert!(LogRecord::from_json(r#"{"prompt_tokens":-1}"#).is_err());
        assert!(LogRecord::from_json(r#"{"prompt_tokens":1.0}"#).is_err());
    }

    #[test]
    fn missing_id_is_generated_once() {
        let mut r = LogRecord::default();
        let id = r.ensure_id().to_string();
        assert_eq!(id.len(), 36);
        assert_eq!(r.ensure_id(), id);
        let mut r = LogRecord {
            id: Field::Null,
            ..Default::default()
        };
        assert!(!r.ensure_id().is_empty());
    }

    #[test]
    fn bad_records_are_typed_errors() {
        assert!(LogRecord::from_json("[1,2]")
            .expect_err("array")
            .to_string()
            .contains("an array"));
        assert!(LogRecord::from_json("{\"prompt_tokens\":\"ten\"}").is_err());
        assert!(LogRecord::from_json("{").is_err());
    }
}
