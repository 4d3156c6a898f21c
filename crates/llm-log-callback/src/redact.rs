//! Redaction, applied to every record (success and failure alike) before it is
//! serialized: what leaves the process is what this module left in.

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::record::{Field, LogRecord};

/// What to do with prompt and response content (`messages`, `response`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ContentPolicy {
    /// Keep them.
    #[default]
    Keep,
    /// Remove both fields.
    Drop,
    /// Replace each with `{"redacted": true, "length": <bytes of its JSON>, "sha256": <hex>}`,
    /// so identical prompts can still be correlated.
    Hash,
}

/// Redaction settings.
///
/// ```
/// use llm_log_callback::{ContentPolicy, LogRecord, Redaction};
///
/// let mut record = LogRecord::from_json(
///     r#"{"model":"gpt-4o","messages":[{"role":"user","content":"my card is 4111 1111 1111 1111"}]}"#,
/// ).unwrap();
/// let redaction = Redaction { content: ContentPolicy::Hash, ..Redaction::default() };
/// redaction.apply(&mut record);
/// let messages = record.messages.get().unwrap();
/// assert_eq!(messages["redacted"], true); // length and sha256 are kept, the text is not
/// assert!(!record.to_value().to_string().contains("4111"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redaction {
    /// Prompt and response content.
    pub content: ContentPolicy,
    /// Strings longer than this many bytes are cut, with a marker saying how much was cut.
    pub max_string_bytes: Option<usize>,
    /// Replace the payload of `data:...;base64,` URLs (inline images, audio) with a marker.
    pub strip_data_urls: bool,
}

impl Default for Redaction {
    fn default() -> Self {
        Redaction {
            content: ContentPolicy::Keep,
            max_string_bytes: Some(64 * 1024),
            strip_data_urls: true,
        }
    }
}

impl Redaction {
    /// No redaction at all.
    pub fn off() -> Self {
        Redaction {
            content: ContentPolicy::Keep,
            max_string_bytes: None,
            strip_data_urls: false,
        }
    }

    /// Applies the settings to `record` in place.
    pub fn apply(&self, record: &mut LogRecord) {
        match self.content {
            ContentPolicy::Keep => {}
            ContentPolicy::Drop => {
                record.messages = Field::Absent;
                record.response = Field::Absent;
            }
            ContentPolicy::Hash => {
                hash_field(&mut record.messages);
                hash_field(&mut record.response);
            }
        }
        if !self.strip_data_urls && self.max_string_bytes.is_none() {
            return;
        }
        let fix = |s: &mut String| self.fix_string(s);
        for f in [
            &mut record.id,
            &mut record.trace_id,
            &mut record.litellm_call_id,
            &mut record.call_type,
            &mut record.status,
            &mut record.model,
            &mut record.model_group,
            &mut record.custom_llm_provider,
            &mut record.api_base,
            &mut record.end_user,
            &mut record.error_str,
        ] {
            if let Field::Value(s) = f {
                fix(s);
            }
        }
        for f in [
            &mut record.request_tags,
            &mut record.metadata,
            &mut record.messages,
            &mut record.response,
            &mut record.error_information,
            &mut record.model_parameters,
            &mut record.hidden_params,
        ] {
            if let Field::Value(v) = f {
                walk(v, &fix);
            }
        }
        for v in record.extra.values_mut() {
            walk(v, &fix);
        }
    }

    /// Whether [`Redaction::apply`] would change the string `s` (content
    /// policy aside): the test the logger's pass over a record's text uses.
    pub(crate) fn changes(&self, s: &str) -> bool {
        (self.strip_data_urls && data_url_payload(s).is_some())
            || self.max_string_bytes.is_some_and(|max| s.len() > max)
    }

    fn fix_string(&self, s: &mut String) {
        if self.strip_data_urls {
            strip_data_url(s);
        }
        if let Some(max) = self.max_string_bytes {
            truncate(s, max);
        }
    }
}

fn hash_field(f: &mut Field<Value>) {
    if let Field::Value(v) = f {
        let text = v.to_string();
        let digest = Sha256::digest(text.as_bytes());
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        *v = json!({"redacted": true, "length": text.len(), "sha256": hex});
    }
}

fn walk(v: &mut Value, fix: &impl Fn(&mut String)) {
    match v {
        Value::String(s) => fix(s),
        Value::Array(a) => a.iter_mut().for_each(|x| walk(x, fix)),
        Value::Object(o) => o.values_mut().for_each(|x| walk(x, fix)),
        _ => {}
    }
}

/// `data:image/png;base64,AAAA...` → `data:image/png;base64,[stripped N bytes]`.
fn strip_data_url(s: &mut String) {
    if let Some(start) = data_url_payload(s) {
        let n = s.len() - start;
        s.truncate(start);
        s.push_str(&format!("[stripped {n} bytes]"));
    }
}

/// Where the payload of a `data:...;base64,` URL starts, if `s` is one with a
/// payload not stripped yet.
fn data_url_payload(s: &str) -> Option<usize> {
    if !s.starts_with("data:") {
        return None;
    }
    let start = s.find(";base64,")? + ";base64,".len();
    (s.len() > start && !s[start..].starts_with("[stripped ")).then_some(start)
}

/// Cuts `s` to at most `max` bytes (on a char boundary) plus a marker.
fn truncate(s: &mut String, max: usize) {
    if s.len() <= max {
        return;
    }
    let mut cut = max;
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    let removed = s.len() - cut;
    s.truncate(cut);
    s.push_str(&format!("…[truncated {removed} bytes]"));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> LogRecord {
        LogRecord::from_value(json!({
            "id": "r1",
            "status": "failure",
            "messages": [{"role": "user", "content": [
                {"type": "text", "text": "héllo wörld"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgoAAAANSUhEUg=="}}
            ]}],
            "response": {"choices": []},
            "error_str": "x".repeat(100),
            "custom": {"deep": ["y".repeat(60)]}
        }))
        .expect("record")
    }

    #[test]
    fn strips_data_urls_and_truncates_everywhere() {
        let mut r = record();
        Redaction {
            content: ContentPolicy::Keep,
            max_string_bytes: Some(50),
            strip_data_urls: true,
        }
        .apply(&mut r);
        let v = r.to_value();
        assert_eq!(
            v["messages"][0]["content"][1]["image_url"]["url"],
            "data:image/png;base64,[stripped 24 bytes]"
        );
        assert_eq!(
            v["error_str"],
            format!("{}…[truncated 50 bytes]", "x".repeat(50))
        );
        assert_eq!(
            v["custom"]["deep"][0],
            format!("{}…[truncated 10 bytes]", "y".repeat(50))
        );
        // multi-byte characters are cut on a boundary
        let mut s = "ééééé".to_string();
        truncate(&mut s, 3);
        assert_eq!(s, "é…[truncated 8 bytes]");
    }

    #[test]
    fn content_policies() {
        let mut r = record();
        Redaction {
            content: ContentPolicy::Drop,
            ..Redaction::off()
        }
        .apply(&mut r);
        assert!(r.messages.is_absent() && r.response.is_absent());

        let mut a = record();
        let mut b = record();
        let hash = Redaction {
            content: ContentPolicy::Hash,
            ..Redaction::off()
        };
        hash.apply(&mut a);
        hash.apply(&mut b);
        let m = a.messages.get().expect("hashed");
        assert_eq!(m["redacted"], true);
        assert_eq!(m["sha256"].as_str().map(str::len), Some(64));
        assert_eq!(a.messages, b.messages, "same content, same hash");
        assert!(!a.to_value().to_string().contains("héllo"));
    }

    #[test]
    fn off_changes_nothing() {
        let mut r = record();
        let before = r.to_value();
        Redaction::off().apply(&mut r);
        assert_eq!(r.to_value(), before);
    }
}
