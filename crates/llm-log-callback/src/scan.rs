//! Reading a record that arrives as JSON text without building it: one pass
//! that checks what [`LogRecord`](crate::LogRecord) would check (an object;
//! typed fields of the right type), finds the `id`, and says whether the
//! text must be rebuilt (redaction would change a string, or a typed field
//! appears twice). When it would not, the
//! logger stores the text as it came (on one line), so a pre-serialized
//! record is neither parsed into a tree nor serialized again.
//!
//! Nothing here allocates for a record whose strings have no escapes, except
//! serde_json's scratch buffer for the first escaped string.

use std::borrow::Cow;
use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use crate::record::RecordError;
use crate::redact::Redaction;

/// What a scan found.
#[derive(Debug, PartialEq)]
pub(crate) struct Scan<'a> {
    /// The `id` field: `None` when absent, `Some(None)` when `null`.
    pub id: Option<Option<Cow<'a, str>>>,
    /// The text must be rebuilt rather than kept: redaction would change at
    /// least one string, or a typed field appears twice (the record keeps
    /// the last; other repeated keys are kept as they came).
    pub rewrite: bool,
}

/// How a typed field of [`LogRecord`](crate::LogRecord) is checked.
#[derive(Clone, Copy)]
enum Kind {
    Str,
    U64,
    Number,
    Bool,
    Any,
}

/// The typed fields, as `LogRecord` names them in JSON.
const TYPED: &[(&str, Kind)] = &[
    ("id", Kind::Str),
    ("trace_id", Kind::Str),
    ("litellm_call_id", Kind::Str),
    ("call_type", Kind::Str),
    ("status", Kind::Str),
    ("model", Kind::Str),
    ("model_group", Kind::Str),
    ("custom_llm_provider", Kind::Str),
    ("api_base", Kind::Str),
    ("prompt_tokens", Kind::U64),
    ("completion_tokens", Kind::U64),
    ("total_tokens", Kind::U64),
    ("response_cost", Kind::Number),
    ("startTime", Kind::Number),
    ("endTime", Kind::Number),
    ("completionStartTime", Kind::Number),
    ("response_time", Kind::Number),
    ("cache_hit", Kind::Bool),
    ("end_user", Kind::Str),
    ("request_tags", Kind::Any),
    ("metadata", Kind::Any),
    ("messages", Kind::Any),
    ("response", Kind::Any),
    ("error_str", Kind::Str),
    ("error_information", Kind::Any),
    ("model_parameters", Kind::Any),
    ("hidden_params", Kind::Any),
];

/// Scans `text` (one JSON object).
pub(crate) fn scan<'a>(text: &'a str, redaction: &Redaction) -> Result<Scan<'a>, RecordError> {
    let mut de = serde_json::Deserializer::from_str(text);
    let scan = de
        .deserialize_any(TopVisitor { redaction })
        .and_then(|s| de.end().map(|()| s))
        .map_err(|e| RecordError::new(e.to_string()))?;
    Ok(scan)
}

struct TopVisitor<'r> {
    redaction: &'r Redaction,
}

impl<'de> Visitor<'de> for TopVisitor<'_> {
    type Value = Scan<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Scan<'de>, A::Error> {
        let mut seen = 0u64;
        let mut scan = Scan {
            id: None,
            rewrite: false,
        };
        let mut changes = false;
        while let Some(key) = map.next_key_seed(Key)? {
            let Some(i) = TYPED.iter().position(|(name, _)| *name == key) else {
                map.next_value_seed(Walk {
                    redaction: self.redaction,
                    changes: &mut changes,
                })?;
                continue;
            };
            changes |= seen & (1 << i) != 0;
            seen |= 1 << i;
            match TYPED[i].1 {
                Kind::Str => {
                    let s = map.next_value_seed(OptStr)?;
                    if let Some(s) = &s {
                        changes |= self.redaction.changes(s);
                    }
                    if key == "id" {
                        scan.id = Some(s);
                    }
                }
                Kind::U64 => {
                    map.next_value::<Option<u64>>()?;
                }
                Kind::Number => {
                    map.next_value::<Option<serde_json::Number>>()?;
                }
                Kind::Bool => {
                    map.next_value::<Option<bool>>()?;
                }
                Kind::Any => map.next_value_seed(Walk {
                    redaction: self.redaction,
                    changes: &mut changes,
                })?,
            }
        }
        scan.rewrite = changes;
        Ok(scan)
    }
}

/// An object key, borrowed from the text where it has no escapes (serde's
/// own `Cow<str>` always allocates).
pub(crate) struct Key;

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

/// A string or `null`, borrowed from the text where it has no escapes.
struct OptStr;

impl<'de> DeserializeSeed<'de> for OptStr {
    type Value = Option<Cow<'de, str>>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_option(self)
    }
}

impl<'de> Visitor<'de> for OptStr {
    type Value = Option<Cow<'de, str>>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string or null")
    }

    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }

    fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Self::Value, E> {
        Ok(Some(Cow::Borrowed(s)))
    }

    fn visit_str<E>(self, s: &str) -> Result<Self::Value, E> {
        Ok(Some(Cow::Owned(s.to_string())))
    }
}

/// Any JSON value, visited for the strings redaction would change.
struct Walk<'r, 'c> {
    redaction: &'r Redaction,
    changes: &'c mut bool,
}

impl<'de> DeserializeSeed<'de> for Walk<'_, '_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Walk<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_none<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_str<E>(self, s: &str) -> Result<(), E> {
        *self.changes |= self.redaction.changes(s);
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq
            .next_element_seed(Walk {
                redaction: self.redaction,
                changes: &mut *self.changes,
            })?
            .is_some()
        {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while map.next_key::<IgnoredAny>()?.is_some() {
            map.next_value_seed(Walk {
                redaction: self.redaction,
                changes: &mut *self.changes,
            })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::LogRecord;

    fn off() -> Redaction {
        Redaction::off()
    }

    #[test]
    fn finds_the_id_and_agrees_with_the_record_on_what_is_valid() {
        let cases = [
            r#"{"id":"a","prompt_tokens":3,"response_cost":0.5,"cache_hit":true,"x":[1,{"y":null}]}"#,
            r#"{"id":"a\"b"}"#,
            r#"{"id":null}"#,
            r#"{}"#,
            r#"[1]"#,
            r#""text""#,
            r#"{"prompt_tokens":-1}"#,
            r#"{"prompt_tokens":1.5}"#,
            r#"{"prompt_tokens":"3"}"#,
            r#"{"cache_hit":1}"#,
            r#"{"status":3}"#,
            r#"{"response_cost":"0.1"}"#,
            r#"{"id":"a","id":"b"}"#,
            r#"{"n":1e400}"#,
            r#"{"id":"a"} trailing"#,
            r#"{"id":"a""#,
            r#"{"startTime":null,"metadata":{"k":"v"},"messages":"m"}"#,
        ];
        for text in cases {
            let scanned = scan(text, &off());
            let full = LogRecord::from_json(text);
            assert_eq!(
                scanned.is_ok(),
                full.is_ok(),
                "{text}: scan {scanned:?}, record {full:?}"
            );
        }
        let s = scan(r#"{"x":1,"id":"chatcmpl-1"}"#, &off()).expect("scan");
        assert_eq!(s.id, Some(Some(Cow::Borrowed("chatcmpl-1"))));
        assert_eq!(scan(r#"{"id":null}"#, &off()).expect("scan").id, Some(None));
        assert_eq!(scan(r#"{"x":1}"#, &off()).expect("scan").id, None);
        assert_eq!(
            scan(r#"{"id":"a\nb"}"#, &off()).expect("scan").id,
            Some(Some(Cow::Owned("a\nb".to_string())))
        );
    }

    #[test]
    fn says_whether_redaction_would_change_a_string() {
        let r = Redaction::default();
        let plain = r#"{"id":"a","messages":[{"content":"hello"}],"extra":{"deep":["x"]}}"#;
        assert!(!scan(plain, &r).expect("scan").rewrite);
        let image =
            r#"{"messages":[{"content":[{"image_url":{"url":"data:image/png;base64,AAAA"}}]}]}"#;
        assert!(scan(image, &r).expect("scan").rewrite);
        let long = format!(r#"{{"custom":{{"deep":["{}"]}}}}"#, "y".repeat(70_000));
        assert!(scan(&long, &r).expect("scan").rewrite);
        let long_typed = format!(r#"{{"error_str":"{}"}}"#, "y".repeat(70_000));
        assert!(scan(&long_typed, &r).expect("scan").rewrite);
        assert!(!scan(&long, &off()).expect("scan").rewrite);
        // keys are not redacted, so a long key changes nothing
        let long_key = format!(r#"{{"{}":1}}"#, "k".repeat(70_000));
        assert!(!scan(&long_key, &r).expect("scan").rewrite);
        // a repeated typed field: the record keeps the last, so the text is rebuilt
        assert!(
            scan(r#"{"id":"a","id":"b"}"#, &off())
                .expect("scan")
                .rewrite
        );
    }
}
