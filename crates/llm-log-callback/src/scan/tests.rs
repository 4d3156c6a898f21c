//! Unit tests of the scan: serde_json itself is the oracle (generated and
//! mutated records, and the edges of its grammar), plus the word search.

use super::*;
use crate::LogRecord;
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use std::fmt;

fn off() -> Redaction {
    Redaction::off()
}

/// What serde_json says of `text`, independently of the scan: whether
/// it is a valid record (`LogRecord::from_json`), its id, and whether it
/// must be rebuilt (a string value redaction changes, found by
/// serde_json's own pass over every value, repeated keys' included, or a
/// typed key that appears twice, found by its pass over the top-level
/// keys).
fn oracle(text: &str, r: &Redaction) -> Option<(Option<Option<String>>, bool)> {
    LogRecord::from_json(text).ok()?;
    let v: Value = serde_json::from_str(text).ok()?;
    let StringValues(strings) = serde_json::from_str(text).ok()?;
    let id = match v.get("id") {
        None => None,
        Some(Value::String(s)) => Some(Some(s.clone())),
        Some(_) => Some(None),
    };
    let changes = strings.iter().any(|s| r.changes(s));
    Some((id, repeats_a_typed_field(text) || changes))
}

fn repeats_a_typed_field(text: &str) -> bool {
    serde_json::from_str(text).is_ok_and(|TopKeys(keys)| {
        TYPED
            .iter()
            .any(|(name, _)| keys.iter().filter(|k| k == name).count() > 1)
    })
}

/// The top-level keys of a text, in order, repeats included.
struct TopKeys(Vec<String>);

impl<'de> serde::Deserialize<'de> for TopKeys {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = TopKeys;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<TopKeys, A::Error> {
                let mut keys = Vec::new();
                while let Some((k, IgnoredAny)) = map.next_entry::<String, IgnoredAny>()? {
                    keys.push(k);
                }
                Ok(TopKeys(keys))
            }
        }
        d.deserialize_map(V)
    }
}

/// Every string value of a text (not keys), repeated keys' values
/// included: serde_json's parser, no tree.
struct StringValues(Vec<String>);

impl<'de> serde::Deserialize<'de> for StringValues {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut out = Vec::new();
        Collect(&mut out).deserialize(d)?;
        Ok(StringValues(out))
    }
}

struct Collect<'o>(&'o mut Vec<String>);

impl<'de> DeserializeSeed<'de> for Collect<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Collect<'_> {
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
    fn visit_str<E>(self, s: &str) -> Result<(), E> {
        self.0.push(s.to_string());
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(Collect(&mut *self.0))?.is_some() {}
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while map.next_key::<IgnoredAny>()?.is_some() {
            map.next_value_seed(Collect(&mut *self.0))?;
        }
        Ok(())
    }
}

fn scanned(text: &str, r: &Redaction) -> Option<(Option<Option<String>>, bool)> {
    let s = scan(text, r).ok()?;
    Some((s.id.map(|id| id.map(Cow::into_owned)), s.rewrite))
}

#[test]
fn finds_the_id_and_agrees_with_the_record_on_what_is_valid() {
    let max = "1".to_string() + &"0".repeat(308);
    let over = "2".to_string() + &"0".repeat(308);
    let nested = |d: usize| format!(r#"{{"a":{}{}}}"#, "[".repeat(d - 1), "]".repeat(d - 1));
    let nested_objects = |d: usize| {
        format!(
            r#"{{"a":{}1{}}}"#,
            r#"{"b":"#.repeat(d - 1),
            "}".repeat(d - 1)
        )
    };
    let cases = [
        r#"{"id":"a","prompt_tokens":3,"response_cost":0.5,"cache_hit":true,"x":[1,{"y":null}]}"#
            .to_string(),
        r#"{"id":"a\"b"}"#.into(),
        r#"{"id":null}"#.into(),
        r#"{}"#.into(),
        r#" { } "#.into(),
        r#"[1]"#.into(),
        r#""text""#.into(),
        r#"{"prompt_tokens":-1}"#.into(),
        r#"{"prompt_tokens":-0}"#.into(),
        r#"{"prompt_tokens":1.5}"#.into(),
        r#"{"prompt_tokens":1e2}"#.into(),
        r#"{"prompt_tokens":"3"}"#.into(),
        r#"{"prompt_tokens":18446744073709551615}"#.into(),
        r#"{"prompt_tokens":18446744073709551616}"#.into(),
        r#"{"prompt_tokens":99999999999999999999}"#.into(),
        r#"{"cache_hit":1}"#.into(),
        r#"{"status":3}"#.into(),
        r#"{"response_cost":"0.1"}"#.into(),
        r#"{"response_cost":-0.0}"#.into(),
        r#"{"id":"a","id":"b"}"#.into(),
        r#"{"n":1e400}"#.into(),
        r#"{"n":0e400}"#.into(),
        r#"{"n":1e-400}"#.into(),
        r#"{"n":1.7976931348623157e308}"#.into(),
        r#"{"n":1.7976931348623159e308}"#.into(),
        r#"{"n":01}"#.into(),
        r#"{"n":1.}"#.into(),
        r#"{"n":.5}"#.into(),
        r#"{"n":+1}"#.into(),
        r#"{"n":1e}"#.into(),
        format!(r#"{{"n":{max}}}"#),
        format!(r#"{{"n":{over}}}"#),
        format!(r#"{{"n":{over}.5}}"#),
        r#"{"id":"a"} trailing"#.into(),
        r#"{"id":"a""#.into(),
        r#"{"id":"a",}"#.into(),
        r#"{"a":[1,]}"#.into(),
        r#"{"a" 1}"#.into(),
        r#"{a:1}"#.into(),
        r#"{"a":tru}"#.into(),
        r#"{"a":nul"#.into(),
        "{\"a\":\"tab\there\"}".into(),
        r#"{"a":"\ud83d\ude00"}"#.into(),
        r#"{"a":"\ud83d"}"#.into(),
        r#"{"a":"\ude00"}"#.into(),
        r#"{"a":"\ud83d\u0041"}"#.into(),
        r#"{"a":"\ud83dx"}"#.into(),
        r#"{"\ud800":1}"#.into(),
        r#"{"a":"\x"}"#.into(),
        r#"{"a":"\u12"}"#.into(),
        r#"{"startTime":null,"metadata":{"k":"v"},"messages":"m"}"#.into(),
        nested(126),
        nested(127),
        nested(128),
        nested_objects(127),
        nested_objects(128),
        format!(r#"{{"n":{over}e-1}}"#),
        format!(r#"{{"n":-{over}}}"#),
        r#"{"n":1e99999999999}"#.into(),
        r#"{"n":0e99999999999}"#.into(),
    ];
    for text in &cases {
        let scanned = scan(text, &off());
        let full = LogRecord::from_json(text);
        assert_eq!(
            scanned.is_ok(),
            full.is_ok(),
            "{text}: scan {scanned:?}, record {full:?}"
        );
    }
    // the limit is where serde_json puts it, not above or below
    assert!(scan(&nested(127), &off()).is_ok());
    assert!(scan(&nested(128), &off()).is_err());
    assert!(scan(&nested_objects(127), &off()).is_ok());
    assert!(scan(&nested_objects(128), &off()).is_err());
    // a typed field twice, the first of the wrong type: the scan refuses
    // what serde_json takes (a `Value` keeps the last), and the logger
    // hands such a text to serde_json
    let twice = r#"{"prompt_tokens":"x","prompt_tokens":1}"#;
    assert!(scan(twice, &off()).is_err() && LogRecord::from_json(twice).is_ok());

    let s = scan(r#"{"x":1,"id":"chatcmpl-1"}"#, &off()).expect("scan");
    assert_eq!(s.id, Some(Some(Cow::Borrowed("chatcmpl-1"))));
    assert_eq!(scan(r#"{"id":null}"#, &off()).expect("scan").id, Some(None));
    assert_eq!(scan(r#"{"x":1}"#, &off()).expect("scan").id, None);
    assert_eq!(
        scan(r#"{"id":"a\nb"}"#, &off()).expect("scan").id,
        Some(Some(Cow::Owned("a\nb".to_string())))
    );
    // a key written with escapes is still the key it spells
    assert_eq!(
        scan(r#"{"\u0069d":"x\u00e9\ud83d\ude00\/"}"#, &off())
            .expect("scan")
            .id,
        Some(Some(Cow::Owned("xé😀/".to_string())))
    );
    let e = scan(r#"{"a":[1,]}"#, &off()).expect_err("trailing comma");
    assert!(e.to_string().contains("at byte 8"), "{e}");
}

#[test]
fn says_whether_redaction_would_change_a_string() {
    let r = Redaction::default();
    let plain = r#"{"id":"a","messages":[{"content":"hello"}],"extra":{"deep":["x"]}}"#;
    assert!(!scan(plain, &r).expect("scan").rewrite);
    let image =
        r#"{"messages":[{"content":[{"image_url":{"url":"data:image/png;base64,AAAA"}}]}]}"#;
    assert!(scan(image, &r).expect("scan").rewrite);
    // the same URL with an escape in its `data:`, where the scan must
    // decode it to see one
    let escaped = r#"{"messages":[{"url":"da\u0074a:image/png;base64,AAAA"}]}"#;
    assert!(scan(escaped, &r).expect("scan").rewrite);
    // a repeated (untyped) key whose first value redaction would change:
    // rebuilt, whichever value the record keeps
    let repeated = r#"{"a":"data:image/png;base64,AAAA","a":"x"}"#;
    assert!(scan(repeated, &r).expect("scan").rewrite);
    let escaped_start = r#"{"messages":[{"url":"\u0064ata:image/png;base64,AAAA"}]}"#;
    assert!(scan(escaped_start, &r).expect("scan").rewrite);
    let long = format!(r#"{{"custom":{{"deep":["{}"]}}}}"#, "y".repeat(70_000));
    assert!(scan(&long, &r).expect("scan").rewrite);
    let long_typed = format!(r#"{{"error_str":"{}"}}"#, "y".repeat(70_000));
    assert!(scan(&long_typed, &r).expect("scan").rewrite);
    assert!(!scan(&long, &off()).expect("scan").rewrite);
    // 40 000 escapes of 2 bytes: 80 000 bytes of text, 40 000 of value
    let short_value = format!(r#"{{"custom":"{}"}}"#, "\\n".repeat(40_000));
    assert!(!scan(&short_value, &r).expect("scan").rewrite);
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

#[test]
fn names_every_typed_field_by_its_place() {
    for (n, (name, _)) in TYPED.iter().enumerate() {
        assert_eq!(typed_field(name), Some(n), "{name}");
    }
    assert_eq!(typed_field("ids"), None);
    assert_eq!(typed_field(""), None);
}

#[test]
fn finds_the_first_quote_backslash_or_control_byte_of_a_word() {
    let is_special = |v: u8| v < 0x20 || v == b'"' || v == b'\\';
    for at in 0..8 {
        for v in 0..=255u8 {
            // plain bytes around it, ASCII and not
            for fill in [b'a', 0xC3, 0x7F, b'!', b']'] {
                let mut w = [fill; 8];
                w[at] = v;
                let found = special(u64::from_le_bytes(w));
                if is_special(v) {
                    assert_eq!(found.trailing_zeros() / 8, at as u32, "{v:#x} at {at}");
                } else {
                    assert_eq!(found, 0, "{v:#x} at {at} in {fill:#x}");
                }
                // a second one after it does not hide the first
                if is_special(v) && at < 7 {
                    w[7] = b'"';
                    let found = special(u64::from_le_bytes(w));
                    assert_eq!(found.trailing_zeros() / 8, at as u32);
                }
            }
        }
    }
}

/// Generated and mutated texts: the scan agrees with serde_json on
/// every one (valid or not, its id, whether it is rebuilt, whether it
/// has raw line breaks).
#[test]
fn agrees_with_serde_json_on_mutated_records() {
    let message = "say \\\"hi\\\"\\nplease \\u00e9 \\ud83d\\ude00 ".repeat(3);
    let bases = [
        format!(
            r#"{{"id":"chatcmpl-1","model":"gpt-4o","prompt_tokens":12,"completion_tokens":0,"total_tokens":12,"response_cost":1.5e-3,"cache_hit":false,"startTime":1732950000.123,"messages":[{{"role":"user","content":"{message}"}}],"metadata":{{"tags":["a","b"],"n":-0.0,"deep":[[[{{"k":null}}]]]}},"x":"data:image/png;base64,AAAA"}}"#
        ),
        "  {\"model\":null,\"total_tokens\":18446744073709551615,\"end_user\":\"\",\n\"error_str\":\"a longer string than eight\"}\r\n".to_string(),
        r#"{"\u0069d":"esc","request_tags":[],"hidden_params":{},"status":"success","api_base":"http:\/\/x","response_time":-1E+2}"#.to_string(),
        r#"{}"#.to_string(),
        r#"{"id":"","response":{"choices":[{"message":{"content":"données d\u00e9j\u00e0 vues 😀"}}]},"cache_hit":null}"#.to_string(),
    ];
    const PIECES: &[&str] = &[
        "\"",
        "\\",
        "\\u",
        "\\uD83D",
        "\\uDE00",
        "\\ud800\\u0041",
        "{",
        "}",
        "[",
        "]",
        ",",
        ":",
        "-",
        "0",
        "1",
        "9",
        ".",
        "e",
        "E+",
        "1e400",
        "-0",
        "18446744073709551616",
        "18446744073709551615",
        "null",
        "true",
        "false",
        " ",
        "\n",
        "\r",
        "\t",
        "\u{1}",
        "\u{7f}",
        "é",
        "😀",
        "data:image/png;base64,AAAA",
        "\"id\":",
        "\"id\":\"x\",",
        "\"prompt_tokens\":",
        "\"cache_hit\":",
        "\"response_cost\":",
        "\"model\":",
        "\"metadata\":",
        "\\n",
        "\\\"",
        "\\/",
        "x",
        "\"d\\u0061ta:a;base64,A\"",
        "\"a\":\"data:a;base64,A\",\"a\":1,",
        "\"prompt_tokens\":\"x\",",
        "\"total_tokens\":7,",
        "[[{\"a\":{}}]]",
    ];
    let redactions = [
        off(),
        Redaction::default(),
        Redaction {
            max_string_bytes: Some(8),
            ..Redaction::default()
        },
    ];
    let mut rng = fastrand::Rng::with_seed(0x5ca4);
    let (mut valid, mut invalid, mut fallbacks) = (0, 0, 0);
    for n in 0..30_000 {
        let mut text = bases[n % bases.len()].clone();
        for _ in 0..rng.usize(0..4) {
            let cuts: Vec<usize> = text
                .char_indices()
                .map(|(i, _)| i)
                .chain([text.len()])
                .collect();
            let a = cuts[rng.usize(..cuts.len())];
            let piece = PIECES[rng.usize(..PIECES.len())];
            match rng.u8(0..3) {
                0 => text.insert_str(a, piece),
                1 => {
                    let b = cuts
                        .iter()
                        .copied()
                        .filter(|&b| b >= a)
                        .nth(rng.usize(0..5))
                        .unwrap_or(text.len());
                    text.replace_range(a..b, "");
                }
                _ => {
                    let b = cuts.iter().copied().find(|&b| b > a).unwrap_or(text.len());
                    text.replace_range(a..b, piece);
                }
            }
        }
        let r = &redactions[n % redactions.len()];
        let expected = oracle(&text, r);
        let got = scanned(&text, r);
        if got.is_none() && expected.is_some() && repeats_a_typed_field(&text) {
            // the one refusal serde_json does not make: a typed field
            // given twice, the first of the wrong type (a `Value` keeps
            // the last); such a text goes the record's way, whole
            fallbacks += 1;
            continue;
        }
        assert_eq!(got, expected, "{text:?} with {r:?}");
        match expected {
            Some(_) => {
                valid += 1;
                let breaks = scan(&text, r).expect("valid").breaks;
                assert_eq!(breaks, text.contains(['\n', '\r']), "{text:?}");
            }
            None => invalid += 1,
        }
    }
    // both sides were exercised, not just one
    assert!(
        valid > 3_000 && invalid > 3_000,
        "{valid} valid, {invalid} invalid, {fallbacks} left to serde_json"
    );
}
