//! Reading a record that arrives as JSON text without building it: one pass
//! that checks what [`LogRecord`](crate::LogRecord) would check (valid JSON,
//! an object, typed fields of the right type), finds the `id`, and says
//! whether the text must be rebuilt (redaction would change a string, or a
//! typed field appears twice). When it would not, the logger stores the
//! text as it came (on one line), so a pre-serialized record is neither
//! parsed into a tree nor serialized again.
//!
//! The pass is written by hand rather than driven by serde_json's parser
//! with visitors: one loop, its position and the open brackets in locals
//! (no recursion, no `Result` per token), string contents skipped eight
//! bytes at a time. For the bench's 1 KB gateway record, in a hot loop on
//! this project's machine: 0.87 µs, where the serde_json pass it replaced
//! took 1.7 µs. It accepts only what serde_json accepts (the same grammar,
//! nesting limit, surrogate pairs, number range), which a test checks
//! against serde_json itself on generated and mutated texts; a text it
//! refuses goes to serde_json anyway (see `Logger::json_entry`), which gives
//! the error its message and has the last word.
//!
//! Nothing here allocates, except when the `id`, a top-level key, or a
//! string redaction must look at holds escapes (one scratch buffer per scan,
//! plus the `id`'s own).

use std::borrow::Cow;

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
    /// A raw line break (`\n` or `\r`) stands between two tokens, so the
    /// text is not yet one line (inside strings JSON allows none).
    pub breaks: bool,
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

/// The typed fields, as `LogRecord` names them in JSON (`id` first).
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

/// The index in [`TYPED`] of the field named `name` (a `match`: by
/// length, then one comparison).
fn typed_field(name: &str) -> Option<usize> {
    Some(match name {
        "id" => 0,
        "trace_id" => 1,
        "litellm_call_id" => 2,
        "call_type" => 3,
        "status" => 4,
        "model" => 5,
        "model_group" => 6,
        "custom_llm_provider" => 7,
        "api_base" => 8,
        "prompt_tokens" => 9,
        "completion_tokens" => 10,
        "total_tokens" => 11,
        "response_cost" => 12,
        "startTime" => 13,
        "endTime" => 14,
        "completionStartTime" => 15,
        "response_time" => 16,
        "cache_hit" => 17,
        "end_user" => 18,
        "request_tags" => 19,
        "metadata" => 20,
        "messages" => 21,
        "response" => 22,
        "error_str" => 23,
        "error_information" => 24,
        "model_parameters" => 25,
        "hidden_params" => 26,
        _ => return None,
    })
}

/// The deepest nesting serde_json parses (its recursion limit of 128 is
/// reached by the 128th opening bracket).
const MAX_DEPTH: u32 = 127;

/// The largest `u64`, as JSON writes it (20 digits).
const U64_MAX: &[u8] = b"18446744073709551615";

/// Scans `text` (one JSON object).
pub(crate) fn scan<'a>(text: &'a str, redaction: &Redaction) -> Result<Scan<'a>, RecordError> {
    run(text, redaction).map_err(|Fail(what, at)| RecordError::new(format!("{what} at byte {at}")))
}

/// Why a scan stopped, and where (a byte offset).
struct Fail(&'static str, usize);

type Step<T> = Result<T, Fail>;

const WRONG_TYPE: &str = "a typed field holds the wrong type";

/// A string's contents, between its quotes.
#[derive(Clone, Copy)]
struct Span {
    start: usize,
    end: usize,
    /// It holds at least one escape, so its text is not its value.
    escaped: bool,
}

/// What the scan keeps besides its position: findings, and what
/// redaction needs.
struct State<'a, 'r> {
    text: &'a str,
    redaction: &'r Redaction,
    /// Redaction looks at strings at all.
    looks: bool,
    changes: bool,
    breaks: bool,
    /// Typed fields seen so far (bit `n`: `TYPED[n]`).
    seen: u64,
    /// An escaped string's value, when a key or redaction must see it.
    scratch: String,
}

/// The pass itself: one loop over the text, its position and the open
/// brackets in locals (a bit per level, 1 for an object), no recursion.
fn run<'a>(text: &'a str, redaction: &Redaction) -> Step<Scan<'a>> {
    let b = text.as_bytes();
    let mut st = State {
        text,
        redaction,
        looks: redaction.strip_data_urls || redaction.max_string_bytes.is_some(),
        changes: false,
        breaks: false,
        seen: 0,
        scratch: String::new(),
    };
    let mut id: Option<Option<Span>> = None;
    let mut i = ws(b, 0, &mut st.breaks);
    if b.get(i) != Some(&b'{') {
        return Err(Fail("expected a JSON object", i));
    }
    i = ws(b, i + 1, &mut st.breaks);
    let mut stack: u128 = 1;
    let mut depth: u32 = 1;
    // what the next value must be, and which typed field it is (top level)
    let (mut want, mut field) = (Kind::Any, usize::MAX);
    if b.get(i) == Some(&b'}') {
        i += 1;
        depth = 0;
    } else {
        (want, field) = key(b, &mut i, depth, &mut st)?;
    }
    while depth > 0 {
        // a value starts at `i`
        match b.get(i) {
            Some(b'"') => {
                if !matches!(want, Kind::Str | Kind::Any) {
                    return Err(Fail(WRONG_TYPE, i));
                }
                let s = string(b, &mut i)?;
                if st.looks && !st.changes {
                    st.look(s);
                }
                if field == 0 {
                    id = Some(Some(s));
                }
            }
            Some(&c @ (b'{' | b'[')) => {
                if !matches!(want, Kind::Any) {
                    return Err(Fail(WRONG_TYPE, i));
                }
                depth += 1;
                if depth > MAX_DEPTH {
                    return Err(Fail("nested too deeply", i));
                }
                stack = (stack << 1) | u128::from(c == b'{');
                i = ws(b, i + 1, &mut st.breaks);
                if b.get(i) == Some(&(c + 2)) {
                    // `{}` or `[]` (`}` and `]` are two past their openers)
                    i += 1;
                    depth -= 1;
                    stack >>= 1;
                } else if c == b'{' {
                    (want, field) = key(b, &mut i, depth, &mut st)?;
                    continue;
                } else {
                    (want, field) = (Kind::Any, usize::MAX);
                    continue;
                }
            }
            Some(b'-' | b'0'..=b'9') => {
                let start = i;
                let natural = number(text, b, &mut i)?;
                match want {
                    Kind::Any | Kind::Number => {}
                    Kind::U64 if natural && fits_u64(&b[start..i]) => {}
                    Kind::U64 => return Err(Fail("expected a non-negative integer", start)),
                    _ => return Err(Fail(WRONG_TYPE, start)),
                }
            }
            Some(b't') => {
                literal(b, &mut i, b"true", want)?;
            }
            Some(b'f') => {
                literal(b, &mut i, b"false", want)?;
            }
            Some(b'n') => {
                literal(b, &mut i, b"null", Kind::Any)?;
                if field == 0 {
                    id = Some(None);
                }
            }
            _ => return Err(Fail("expected a value", i)),
        }
        // after a value: a comma and the next member, or closing brackets
        loop {
            i = ws(b, i, &mut st.breaks);
            if depth == 0 {
                break;
            }
            let object = stack & 1 == 1;
            match b.get(i) {
                Some(b',') => {
                    i = ws(b, i + 1, &mut st.breaks);
                    (want, field) = match object {
                        true => key(b, &mut i, depth, &mut st)?,
                        false => (Kind::Any, usize::MAX),
                    };
                    break;
                }
                Some(b'}') if object => {}
                Some(b']') if !object => {}
                _ => return Err(Fail("expected `,` or a closing bracket", i)),
            }
            i += 1;
            depth -= 1;
            stack >>= 1;
        }
    }
    i = ws(b, i, &mut st.breaks);
    if i != b.len() {
        return Err(Fail("trailing characters after the object", i));
    }
    Ok(Scan {
        id: id.map(|s| s.map(|s| st.value_of(s))),
        rewrite: st.changes,
        breaks: st.breaks,
    })
}

/// Whitespace from `i`; returns where it ends.
#[inline(always)]
fn ws(b: &[u8], mut i: usize, breaks: &mut bool) -> usize {
    while let Some(&c) = b.get(i) {
        match c {
            b' ' | b'\t' => {}
            b'\n' | b'\r' => *breaks = true,
            _ => break,
        }
        i += 1;
    }
    i
}

/// A key, its colon and the whitespace after it; at the top level, the
/// typed field it names (a second time: the text must be rebuilt).
#[inline(always)]
fn key(b: &[u8], i: &mut usize, depth: u32, st: &mut State<'_, '_>) -> Step<(Kind, usize)> {
    if b.get(*i) != Some(&b'"') {
        return Err(Fail("expected a key", *i));
    }
    let s = string(b, i)?;
    *i = ws(b, *i, &mut st.breaks);
    if b.get(*i) != Some(&b':') {
        return Err(Fail("expected `:`", *i));
    }
    *i = ws(b, *i + 1, &mut st.breaks);
    if depth != 1 {
        return Ok((Kind::Any, usize::MAX));
    }
    let raw = &st.text[s.start..s.end];
    let name = match s.escaped {
        false => raw,
        true => unescape(raw, &mut st.scratch),
    };
    Ok(match typed_field(name) {
        None => (Kind::Any, usize::MAX),
        Some(n) => {
            st.changes |= st.seen & (1 << n) != 0;
            st.seen |= 1 << n;
            (TYPED[n].1, n)
        }
    })
}

/// `true`, `false` or `null`, where a value of `want` is due.
#[inline(always)]
fn literal(b: &[u8], i: &mut usize, word: &[u8], want: Kind) -> Step<()> {
    if !b[*i..].starts_with(word) {
        return Err(Fail("expected `true`, `false` or `null`", *i));
    }
    if !matches!(want, Kind::Any | Kind::Bool) {
        return Err(Fail(WRONG_TYPE, *i));
    }
    *i += word.len();
    Ok(())
}

/// `digits` (no sign, no leading zero) fit a `u64`.
fn fits_u64(digits: &[u8]) -> bool {
    digits.len() < U64_MAX.len() || (digits.len() == U64_MAX.len() && digits <= U64_MAX)
}

/// A number, by JSON's grammar; one too large for an `f64` is refused, as
/// serde_json refuses it. Returns whether it is natural (no sign, fraction
/// or exponent).
#[inline(always)]
fn number(text: &str, b: &[u8], i: &mut usize) -> Step<bool> {
    let start = *i;
    let negative = b.get(*i) == Some(&b'-');
    if negative {
        *i += 1;
    }
    let int = *i;
    match b.get(*i) {
        Some(b'0') => *i += 1,
        Some(b'1'..=b'9') => digits(b, i),
        _ => return Err(Fail("expected a digit", *i)),
    }
    let whole = *i - int;
    let mut natural = !negative;
    if b.get(*i) == Some(&b'.') {
        *i += 1;
        natural = false;
        some_digits(b, i)?;
    }
    let mut exponent = false;
    if matches!(b.get(*i), Some(b'e' | b'E')) {
        *i += 1;
        natural = false;
        exponent = true;
        if matches!(b.get(*i), Some(b'+' | b'-')) {
            *i += 1;
        }
        some_digits(b, i)?;
    }
    // below 10^308 without an exponent: always finite
    if (exponent || whole > 308) && !text[start..*i].parse::<f64>().is_ok_and(f64::is_finite) {
        return Err(Fail("number out of range", start));
    }
    Ok(natural)
}

#[inline(always)]
fn digits(b: &[u8], i: &mut usize) {
    while matches!(b.get(*i), Some(b'0'..=b'9')) {
        *i += 1;
    }
}

fn some_digits(b: &[u8], i: &mut usize) -> Step<()> {
    if !matches!(b.get(*i), Some(b'0'..=b'9')) {
        return Err(Fail("expected a digit", *i));
    }
    digits(b, i);
    Ok(())
}

/// A string, from its opening quote to past its closing one.
#[inline(always)]
fn string(b: &[u8], at: &mut usize) -> Step<Span> {
    let start = *at + 1;
    let mut i = start;
    let mut escaped = false;
    loop {
        // eight bytes at a time up to the first quote, backslash or
        // control character (anything else, UTF-8 included, is plain)
        while let Some(chunk) = b.get(i..i + 8) {
            let Ok(word) = <[u8; 8]>::try_from(chunk) else {
                break;
            };
            let found = special(u64::from_le_bytes(word));
            if found != 0 {
                i += (found.trailing_zeros() / 8) as usize;
                break;
            }
            i += 8;
        }
        match b.get(i) {
            Some(b'"') => {
                *at = i + 1;
                return Ok(Span {
                    start,
                    end: i,
                    escaped,
                });
            }
            Some(b'\\') => {
                escaped = true;
                i = escape(b, i)?;
            }
            Some(0..=0x1f) => return Err(Fail("control character in a string", i)),
            None => return Err(Fail("unterminated string", i)),
            Some(_) => i += 1,
        }
    }
}

/// One escape, from its backslash; returns where it ends. A `\u` escape of
/// a UTF-16 surrogate must be the first half of a pair, followed by the
/// second (serde_json refuses anything else in a string it reads as text).
fn escape(b: &[u8], i: usize) -> Step<usize> {
    match b.get(i + 1) {
        Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => Ok(i + 2),
        Some(b'u') => {
            let lone = |at| Err(Fail("lone surrogate in a \\u escape", at));
            match hex4(b, i + 2)? {
                0xDC00..=0xDFFF => lone(i),
                0xD800..=0xDBFF => {
                    if b.get(i + 6..i + 8) != Some(b"\\u") {
                        return lone(i);
                    }
                    match hex4(b, i + 8)? {
                        0xDC00..=0xDFFF => Ok(i + 12),
                        _ => lone(i),
                    }
                }
                _ => Ok(i + 6),
            }
        }
        _ => Err(Fail("invalid escape", i)),
    }
}

/// Four hex digits from `i`.
fn hex4(b: &[u8], i: usize) -> Step<u32> {
    let mut n = 0;
    for at in i..i + 4 {
        let d = match b.get(at) {
            Some(c @ b'0'..=b'9') => c - b'0',
            Some(c @ b'a'..=b'f') => c - b'a' + 10,
            Some(c @ b'A'..=b'F') => c - b'A' + 10,
            _ => return Err(Fail("expected four hex digits", at)),
        };
        n = n * 16 + u32::from(d);
    }
    Ok(n)
}

impl<'a> State<'a, '_> {
    /// Notes whether redaction would change the string value at `s`.
    /// Escapes only ever shorten a string, and `data:` URLs start with a
    /// `d`, so an escaped one is decoded only when it might be long enough
    /// or might be such a URL.
    fn look(&mut self, s: Span) {
        let raw = &self.text[s.start..s.end];
        let r = self.redaction;
        if !s.escaped {
            self.changes = r.changes(raw);
            return;
        }
        let long = r.max_string_bytes.is_some_and(|max| raw.len() > max);
        let url = r.strip_data_urls && matches!(raw.as_bytes().first(), Some(b'd' | b'\\'));
        if long || url {
            self.changes = r.changes(unescape(raw, &mut self.scratch));
        }
    }

    fn value_of(&self, s: Span) -> Cow<'a, str> {
        let raw = &self.text[s.start..s.end];
        match s.escaped {
            false => Cow::Borrowed(raw),
            true => {
                let mut out = String::new();
                unescape(raw, &mut out);
                Cow::Owned(out)
            }
        }
    }
}

/// A word's bytes that end a run of plain string contents (`"`, `\`, or
/// below 0x20): the lowest set high bit marks the first of them. (The
/// usual has-zero-byte tests; above the first hit they may mark bytes that
/// are not, which is why only the lowest is used.)
fn special(w: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGH;
    let control = w.wrapping_sub(ONES * 0x20) & !w & HIGH;
    control | zero(w ^ (ONES * u64::from(b'"'))) | zero(w ^ (ONES * u64::from(b'\\')))
}

/// The value of a scanned string's contents (its escapes checked), in `out`.
fn unescape<'o>(raw: &str, out: &'o mut String) -> &'o str {
    out.clear();
    let mut rest = raw;
    while let Some(at) = rest.find('\\') {
        out.push_str(&rest[..at]);
        let b = rest.as_bytes();
        let (c, used) = match b.get(at + 1) {
            Some(b'b') => ('\u{8}', 2),
            Some(b'f') => ('\u{c}', 2),
            Some(b'n') => ('\n', 2),
            Some(b'r') => ('\r', 2),
            Some(b't') => ('\t', 2),
            Some(b'u') => {
                let unit = |from: usize| {
                    rest.get(from..from + 4)
                        .and_then(|h| u32::from_str_radix(h, 16).ok())
                        .unwrap_or(0xFFFD)
                };
                let first = unit(at + 2);
                if (0xD800..=0xDBFF).contains(&first) {
                    let second = unit(at + 8);
                    let c =
                        0x1_0000 + ((first - 0xD800) << 10) + (second.wrapping_sub(0xDC00) & 0x3FF);
                    (char::from_u32(c).unwrap_or('\u{FFFD}'), 12)
                } else {
                    (char::from_u32(first).unwrap_or('\u{FFFD}'), 6)
                }
            }
            Some(&c) => (char::from(c), 2),
            None => ('\\', 1),
        };
        out.push(c);
        rest = rest.get(at + used..).unwrap_or("");
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests;
