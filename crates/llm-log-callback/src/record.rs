//! [`LogRecord`]: one LLM request's log, compatible with LiteLLM's
//! `StandardLoggingPayload` (the `standard_logging_object` a LiteLLM callback
//! receives).
//!
//! The fields users query are typed; every other field is kept as it came, so
//! a record round-trips without loss (`serde_json::Value` equality): a field
//! that was absent stays absent, one that was `null` stays `null`, and numbers
//! keep their integer or float form.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Number, Value};

/// A field that can be absent, explicitly `null`, or hold a value: the three
/// are kept apart so records round-trip exactly.
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
