//! The NDJSON line of a record handed to [`Logger::log`](crate::Logger::log):
//! what it counts for before it exists ([`line_bound`], on the caller's
//! thread: no allocation, no IO), and how it is made off the caller's thread
//! ([`line`]: redaction, `id`, serialization and the size check), by the
//! serializer thread ([`start_serializer`]) a few milliseconds after `log`
//! queued the record.
//!
//! # Why a thread of its own
//!
//! The records wait as lines, not as records, for the batch's age: a
//! `LogRecord` takes several times its line's size in heap (many small
//! allocations), so records left in the queue until a batch was cut held
//! about three times what the queue's byte bound counted (soak: 98 MB RSS
//! against 43 MB). One thread that looks every few milliseconds keeps that to
//! a few milliseconds' worth of records, costs the producers no wake-up in the
//! steady state (they wake it only after a second of silence, or in a burst),
//! and frees the records in one place.
//!
//! # How exact the bound is
//!
//! [`line_bound`] walks the record once (no pass over string bytes) and adds
//! up what `serde_json` will write: keys, quotes, colons, commas and braces
//! exactly; strings at their length; integers exactly; every float as 24
//! bytes (the longest form an `f64` takes, where a typical timestamp takes
//! 17); a missing `id` as the 36-character UUID it will get; the newline.
//! Redaction can lengthen a string it changes (its marker, such as
//! `…[truncated 12 bytes]`, may be longer than what it cut): each string
//! redaction may touch (longer than the limit, or a `data:` URL) gets
//! [`REDACTION_SLACK`] more, and with [`ContentPolicy::Hash`] `messages` and
//! `response` count at least [`HASHED_MAX`], what a hash replaces them with.
//!
//! So the bound is the line less its escapes (one byte per `\n`, `"` or `\`
//! in a string, five per other control character: under 1 % of the fixture
//! records' lines, which a test holds), plus up to 7 bytes per float, plus
//! what redaction removes and the slack. Counting escapes exactly would take
//! a pass over every string byte, about two thirds of the bound's cost on
//! this project's machine; they take no memory while the record waits. The
//! bound counts NDJSON bytes, not the record's heap, which for typical
//! records is of the same order (many small values cost more in memory than
//! in JSON); the queue slot itself, `size_of::<Entry>()` (about 720 bytes),
//! comes on top and is bounded by the queue's record bound.
//!
//! Since no escape is longer than [`ESCAPE_FACTOR`] bytes per byte, a line
//! is never longer than that many times its bound: `Logger::log` makes the
//! line on the caller's thread (and refuses one that is too large) only
//! when the bound exceeds `max_batch_bytes / ESCAPE_FACTOR`, so a record
//! it hands over cannot turn out too large.

use std::cell::Cell;
use std::collections::VecDeque;
use std::sync::{Arc, Weak};
use std::time::Duration;

use serde_json::{Number, Value};

use crate::logger::Shared;
use crate::metrics::DropReason;
use crate::queue::{Entry, Payload};
use crate::record::{Field, LogRecord};
use crate::redact::{ContentPolicy, Redaction};

/// What a string [`Redaction`] changes may grow by at most: a data URL's
/// payload of one byte becomes `[stripped 1 bytes]` (+17), a string one byte
/// over the limit loses it and gains `…[truncated 1 bytes]` (+21), both at
/// once, and the count's digits.
pub(crate) const REDACTION_SLACK: usize = 64;

/// The longest JSON a hashed `messages` or `response` becomes:
/// `{"length":N,"redacted":true,"sha256":"<64 hex>"}` with a 20-digit `N`
/// is 123 bytes; plus [`REDACTION_SLACK`] for a string limit below 64.
pub(crate) const HASHED_MAX: usize = 123 + REDACTION_SLACK;

/// Longest JSON text of a finite `f64` as `serde_json` writes it (ryu's
/// shortest form, e.g. `-2.2250738585072014e-308`).
const FLOAT_MAX: usize = 24;

/// `"id":"<36-character UUID>"`: what a record without an id gets.
const GENERATED_ID: usize = 5 + 38;

/// An upper bound of the NDJSON line (newline included) `record` becomes
/// once `redaction` is applied, an `id` given and it is serialized. See the
/// module docs for how close it is.
pub(crate) fn line_bound(record: &LogRecord, redaction: &Redaction) -> usize {
    let mut b = Bound {
        redaction,
        len: 0,
        fields: 0,
    };
    match &record.id {
        Field::Value(s) if !s.is_empty() => b.string_field("id", &record.id),
        _ => {
            b.len += GENERATED_ID;
            b.fields += 1;
        }
    }
    b.string_field("trace_id", &record.trace_id);
    b.string_field("litellm_call_id", &record.litellm_call_id);
    b.string_field("call_type", &record.call_type);
    b.string_field("status", &record.status);
    b.string_field("model", &record.model);
    b.string_field("model_group", &record.model_group);
    b.string_field("custom_llm_provider", &record.custom_llm_provider);
    b.string_field("api_base", &record.api_base);
    b.u64_field("prompt_tokens", &record.prompt_tokens);
    b.u64_field("completion_tokens", &record.completion_tokens);
    b.u64_field("total_tokens", &record.total_tokens);
    b.number_field("response_cost", &record.response_cost);
    b.number_field("startTime", &record.start_time);
    b.number_field("endTime", &record.end_time);
    b.number_field("completionStartTime", &record.completion_start_time);
    b.number_field("response_time", &record.response_time);
    if let Some(key) = key_len("cache_hit", &record.cache_hit) {
        b.field(key, record.cache_hit.get().map_or(4, |&v| bool_len(v)));
    }
    b.string_field("end_user", &record.end_user);
    b.value_field("request_tags", &record.request_tags, false);
    b.value_field("metadata", &record.metadata, false);
    b.value_field("messages", &record.messages, true);
    b.value_field("response", &record.response, true);
    b.string_field("error_str", &record.error_str);
    b.value_field("error_information", &record.error_information, false);
    b.value_field("model_parameters", &record.model_parameters, false);
    b.value_field("hidden_params", &record.hidden_params, false);
    for (k, v) in &record.extra {
        let value = b.value(v);
        b.field(string_len(k), value);
    }
    // braces, the commas between fields, the newline
    b.len + 2 + b.fields.saturating_sub(1) + 1
}

struct Bound<'a> {
    redaction: &'a Redaction,
    len: usize,
    fields: usize,
}

impl Bound<'_> {
    /// One `"key":value` member, `key` already quoted.
    fn field(&mut self, key: usize, value: usize) {
        self.len += key + 1 + value;
        self.fields += 1;
    }

    fn string_field(&mut self, name: &str, f: &Field<impl AsRef<str>>) {
        if let Some(key) = key_len(name, f) {
            let value = f.get().map_or(4, |s| self.string(s.as_ref()));
            self.field(key, value);
        }
    }

    fn u64_field(&mut self, name: &str, f: &Field<u64>) {
        if let Some(key) = key_len(name, f) {
            self.field(key, f.get().map_or(4, |&v| u64_len(v)));
        }
    }

    fn number_field(&mut self, name: &str, f: &Field<Number>) {
        if let Some(key) = key_len(name, f) {
            self.field(key, f.get().map_or(4, number_len));
        }
    }

    fn value_field(&mut self, name: &str, f: &Field<Value>, content: bool) {
        if let Some(key) = key_len(name, f) {
            let mut value = f.get().map_or(4, |v| self.value(v));
            if content && f.get().is_some() && self.redaction.content == ContentPolicy::Hash {
                value = value.max(HASHED_MAX);
            }
            self.field(key, value);
        }
    }

    /// A string value as redaction leaves it, at most. Slack for every
    /// string redaction may change (a little wider than
    /// [`Redaction::changes`], and cheaper to test).
    fn string(&self, s: &str) -> usize {
        let may_change = self
            .redaction
            .max_string_bytes
            .is_some_and(|max| s.len() > max)
            || (self.redaction.strip_data_urls && s.starts_with("data:"));
        string_len(s) + if may_change { REDACTION_SLACK } else { 0 }
    }

    fn value(&self, v: &Value) -> usize {
        match v {
            Value::Null => 4,
            Value::Bool(b) => bool_len(*b),
            Value::Number(n) => number_len(n),
            Value::String(s) => self.string(s),
            Value::Array(a) => {
                2 + a.len().saturating_sub(1) + a.iter().map(|x| self.value(x)).sum::<usize>()
            }
            Value::Object(o) => {
                2 + o.len().saturating_sub(1)
                    + o.iter()
                        .map(|(k, x)| string_len(k) + 1 + self.value(x))
                        .sum::<usize>()
            }
        }
    }
}

/// The quoted key's length when the field is serialized (not absent).
fn key_len<T>(name: &str, f: &Field<T>) -> Option<usize> {
    (!f.is_absent()).then_some(name.len() + 2)
}

fn bool_len(b: bool) -> usize {
    if b {
        4
    } else {
        5
    }
}

fn u64_len(v: u64) -> usize {
    v.checked_ilog10().map_or(1, |d| d as usize + 1)
}

fn number_len(n: &Number) -> usize {
    if let Some(u) = n.as_u64() {
        u64_len(u)
    } else if let Some(i) = n.as_i64() {
        1 + u64_len(i.unsigned_abs())
    } else {
        FLOAT_MAX
    }
}

/// A JSON string's length as `serde_json` writes it, less its escapes
/// (quotes included): no pass over the bytes. Escapes add at most 5 bytes
/// per byte, so the line is at most [`ESCAPE_FACTOR`] times this.
fn string_len(s: &str) -> usize {
    s.len() + 2
}

/// The longest escape is six bytes for one (`\u001f` for a control
/// character): no line is longer than this many times its bound.
pub(crate) const ESCAPE_FACTOR: usize = 6;

/// The NDJSON line of `record` (newline included) and, when `keep_id`, its
/// id: redacted, given an id if it has none, serialized, and checked against
/// `limit` (`max_batch_bytes`). The one place a record becomes a line, on
/// whichever thread: the serializer's for `log` (a flush's blocking-pool
/// thread for what it has not reached), the caller's for the text paths and
/// for a record whose bound exceeds the limit.
pub(crate) fn line(
    mut record: LogRecord,
    redaction: &Redaction,
    limit: usize,
    keep_id: bool,
    capacity: usize,
) -> Result<(Vec<u8>, Option<String>), LineError> {
    redaction.apply(&mut record);
    let id = record.ensure_id();
    let id = keep_id.then(|| id.to_string());
    // one allocation when `capacity` is right (the callers' guess); grows
    // for larger lines
    let mut line = Vec::with_capacity(capacity);
    serde_json::to_writer(&mut line, &record).map_err(|e| LineError::Serialize(e.to_string()))?;
    line.push(b'\n');
    if line.len() > limit {
        return Err(LineError::TooLarge {
            bytes: line.len(),
            limit,
        });
    }
    Ok((line, id))
}

/// Why a record has no line.
#[derive(Debug)]
pub(crate) enum LineError {
    /// Larger than a batch may be.
    TooLarge { bytes: usize, limit: usize },
    /// `serde_json` refused it (cannot happen for a `LogRecord` built from
    /// JSON; kept so a bug is counted, not a panic).
    Serialize(String),
}

/// How often the serializer looks for records when it is not woken: a few
/// milliseconds' worth of records waits unserialized, and no producer pays
/// for a wake-up in the steady state.
const LOOK_EVERY: Duration = Duration::from_millis(5);

/// Empty looks (one second's worth) after which the serializer parks until
/// a record arrives (that producer wakes it), or for a second at most.
const IDLE_AFTER: u32 = 200;

/// Starts the serializer thread: it takes the records `Logger::log` handed
/// over from the queue's first stage, a chunk at a time, makes them lines
/// (`serialize_all`) and puts those where the batcher takes batches
/// (`Queue::put_lines`). It holds the logger's state only while it works,
/// and ends when the queue is closed and empty of records or the logger is
/// gone. If the thread cannot be started, `log` serializes on the caller's
/// thread instead (logged once, here).
pub(crate) fn start_serializer(shared: &Arc<Shared>) {
    let weak = Arc::downgrade(shared);
    match std::thread::Builder::new()
        .name("llm-log-serializer".into())
        .spawn(move || serializer(weak))
    {
        Ok(handle) => shared.queue.set_serializer(handle.thread().clone()),
        Err(e) => tracing::warn!(
            error = %e,
            "cannot start the serializer thread; records are serialized on the caller's thread"
        ),
    }
}

fn serializer(weak: Weak<Shared>) {
    let mut empty_looks = 0u32;
    loop {
        let Some(shared) = weak.upgrade() else {
            return;
        };
        let n = serialize_chunk(&shared);
        if n > 0 {
            empty_looks = 0;
        } else if shared.queue.is_closed() && !shared.queue.has_raw() {
            return;
        } else {
            empty_looks = empty_looks.saturating_add(1);
        }
        let idle = empty_looks >= IDLE_AFTER && shared.queue.serializer_idles();
        drop(shared);
        std::thread::park_timeout(if idle {
            Duration::from_secs(1)
        } else {
            LOOK_EVERY
        });
    }
}

/// Serializes the records waiting in the queue and puts their lines back;
/// returns how many records it took.
fn serialize_chunk(shared: &Shared) -> usize {
    let mut spare = shared.serializing.lock().unwrap_or_else(|p| p.into_inner());
    let (n, _) = shared.queue.take_raw(&mut spare);
    // in pieces, each put back when made: after a stall, the batcher sees
    // lines within a piece's time, not the whole take's
    while !spare.is_empty() {
        let k = spare.len().min(PIECE);
        let bounds: usize = spare.iter().take(k).map(|e| e.bytes).sum();
        let dropped = Cell::new(0);
        let made = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            serialize_all(shared, spare.drain(..k), &dropped)
        }));
        match made {
            Ok(lines) => shared.queue.put_lines(lines.into(), k, bounds),
            Err(_) => {
                // a panic outside `line` (each record's own is caught): the
                // piece's lines made so far are gone with the unwinding, so
                // every record of it not already counted is dropped and
                // counted, and the piece settled, so the thread goes on
                let lost = k.saturating_sub(dropped.get()) as u64;
                shared
                    .counters
                    .drop_records(DropReason::Unserializable, lost);
                shared.queue.put_lines(VecDeque::new(), k, bounds);
                tracing::error!(
                    records = lost,
                    "serializing queued records panicked; they are counted as dropped.unserializable"
                );
            }
        }
    }
    // the emptied buffer goes back to the producers next time: after a
    // burst (up to the queue's record bound, 720 bytes a slot) it keeps
    // only what a few looks' worth of records needs
    if spare.capacity() > SPARE_SLOTS {
        spare.shrink_to(SPARE_SLOTS);
    }
    n
}

/// Records serialized and put back at a time.
const PIECE: usize = 4096;

/// Slots the serializer's spare buffer keeps after a burst (about 3 MB).
pub(crate) const SPARE_SLOTS: usize = 4096;

/// Serializes every record waiting in the queue now (flush and shutdown),
/// on the blocking pool, in order after whatever the serializer is doing.
pub(crate) async fn drain_raw(shared: &Arc<Shared>) {
    if !shared.queue.has_raw() {
        return;
    }
    let owned = shared.clone();
    let drained = tokio::task::spawn_blocking(move || serialize_chunk(&owned)).await;
    if let Err(e) = drained {
        tracing::error!(error = %e, "serializing the queued records on the blocking pool failed; serializing them here");
        serialize_chunk(shared);
    }
}

/// Turns every record `Logger::log` queued in `entries` into its NDJSON
/// line, in order (lines already made pass through). A record that fails
/// is dropped, counted (`dropped.too_large`, `dropped.unserializable`) and
/// logged at error level: it was accepted, so the ledger must say where it
/// went.
///
/// Runs on the blocking pool when there is more than a little to do, so the
/// batcher's runtime thread is not held for a large batch.
pub(crate) async fn to_lines(shared: &Arc<Shared>, entries: Vec<Entry>) -> Vec<Entry> {
    let work: usize = entries
        .iter()
        .filter(|e| matches!(e.payload, Payload::Record(_)))
        .map(|e| e.bytes)
        .sum();
    if work == 0 {
        return entries;
    }
    if work < INLINE_BYTES {
        return serialize_all(shared, entries.into_iter(), &Cell::new(0));
    }
    let n = entries.len() as u64;
    let owned = shared.clone();
    match tokio::task::spawn_blocking(move || {
        serialize_all(&owned, entries.into_iter(), &Cell::new(0))
    })
    .await
    {
        Ok(lines) => lines,
        Err(e) => {
            // only when the runtime is shutting down (panics are caught per
            // record): the entries are gone, so the ledger says so
            shared.counters.drop_records(DropReason::Unserializable, n);
            tracing::error!(error = %e, records = n, "the batch's serialization did not finish; its records are counted as unserializable");
            Vec::new()
        }
    }
}

/// Batches with fewer record bytes than this are serialized on the
/// batcher's own thread (a few tens of µs).
const INLINE_BYTES: usize = 64 * 1024;

///
/// `dropped` counts the records it settled as dropped, as it goes (so a
/// caller that sees it unwind knows which of its records are still unsettled).
fn serialize_all(
    shared: &Shared,
    entries: impl ExactSizeIterator<Item = Entry>,
    dropped: &Cell<usize>,
) -> Vec<Entry> {
    let mut out = Vec::with_capacity(entries.len());
    for e in entries {
        let record = match e.payload {
            Payload::Line(_) => {
                out.push(e);
                continue;
            }
            Payload::Record(r) => r,
        };
        let bound = e.bytes;
        let made = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            // the bound is the line less its escapes (and a little more
            // for floats): room for a few escapes, so most lines are made
            // in one allocation that they fill
            line(
                record,
                &shared.redaction,
                shared.max_record_bytes,
                shared.keep_ids,
                bound + bound / 64,
            )
        }))
        .unwrap_or_else(|_| Err(LineError::Serialize("serialization panicked".into())));
        match made {
            Ok((line, id)) => out.push(Entry {
                bytes: line.len(),
                payload: Payload::Line(line),
                id,
                accepted_at: e.accepted_at,
                journal: e.journal,
            }),
            Err(LineError::TooLarge { bytes, limit }) => {
                shared.counters.drop_records(DropReason::TooLarge, 1);
                dropped.set(dropped.get() + 1);
                tracing::error!(
                    bytes,
                    limit,
                    bound,
                    "an accepted record is larger than max_batch_bytes once serialized; dropped (counted in dropped.too_large)"
                );
            }
            Err(LineError::Serialize(why)) => {
                shared.counters.drop_records(DropReason::Unserializable, 1);
                dropped.set(dropped.get() + 1);
                tracing::error!(error = %why, "an accepted record could not be serialized; dropped (counted in dropped.unserializable)");
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The line `Logger` would write for `record` under `redaction`.
    fn actual(record: &LogRecord, redaction: &Redaction) -> usize {
        let (line, _) = line(record.clone(), redaction, usize::MAX, false, 0).expect("line");
        line.len()
    }

    fn redactions() -> Vec<Redaction> {
        let tight = |content| Redaction {
            content,
            max_string_bytes: Some(10),
            strip_data_urls: true,
        };
        vec![
            Redaction::off(),
            Redaction::default(),
            tight(ContentPolicy::Keep),
            tight(ContentPolicy::Drop),
            tight(ContentPolicy::Hash),
            Redaction {
                content: ContentPolicy::Hash,
                ..Redaction::default()
            },
            Redaction {
                max_string_bytes: Some(0),
                ..Redaction::default()
            },
        ]
    }

    fn fixtures() -> Vec<LogRecord> {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/litellm");
        let mut out = Vec::new();
        for entry in std::fs::read_dir(dir).expect("fixtures") {
            let path = entry.expect("entry").path();
            if path.extension().is_some_and(|e| e == "json") {
                let text = std::fs::read_to_string(&path).expect("read");
                out.push(LogRecord::from_json(&text).expect("record"));
            }
        }
        assert!(out.len() >= 10, "fixtures missing");
        out
    }

    /// Hand-made records where the bound is hardest to keep: every escape,
    /// marker growth from redaction, hashes of short content, extreme numbers.
    fn worst_cases() -> Vec<LogRecord> {
        let all_bytes: String = (0u8..0x80).map(char::from).collect();
        [
            json!({}),
            json!({"id": null}),
            json!({"id": ""}),
            json!({"id": "x", "model": all_bytes, "extra": {all_bytes.clone(): [all_bytes]}}),
            json!({"messages": "a", "response": null, "error_str": "\"\\\u{1}\u{1f}\n"}),
            json!({"messages": [], "response": {}}),
            json!({"response_cost": -2.2250738585072014e-308, "startTime": 1.7976931348623157e308,
                   "endTime": -9223372036854775808i64, "prompt_tokens": u64::MAX, "total_tokens": 0,
                   "n": [0.1, -0.0, 1e21, 5e-324, -1, 12345678901234567890u64]}),
            json!({"metadata": {"url": "data:image/png;base64,A", "u2": "data:x;base64,",
                   "long": "é".repeat(20), "cut": "x".repeat(11)}}),
            json!({"api_base": "data:a;base64,AB", "hidden_params": {"k": true, "f": false, "n": null}}),
            json!({"cache_hit": true, "request_tags": ["🦀", "\u{7f}"]}),
        ]
        .into_iter()
        .map(|v| LogRecord::from_value(v).expect("record"))
        .collect()
    }

    /// The escapes `serde_json` adds to the strings (keys too) of a value.
    fn escapes(line: &[u8]) -> usize {
        // count in the serialized text: every escape starts with `\`
        let mut n = 0;
        let mut i = 0;
        while i < line.len() {
            if line[i] == b'\\' {
                let long = line.get(i + 1) == Some(&b'u');
                n += if long { 5 } else { 1 };
                i += if long { 6 } else { 2 };
            } else {
                i += 1;
            }
        }
        n
    }

    #[test]
    fn the_bound_is_the_line_less_its_escapes_at_most() {
        for r in fixtures().iter().chain(&worst_cases()) {
            for red in redactions() {
                let bound = line_bound(r, &red);
                let (line, _) = line(r.clone(), &red, usize::MAX, false, 0).expect("line");
                let unescaped = line.len() - escapes(&line);
                assert!(
                    bound >= unescaped,
                    "{bound} < {unescaped} for {red:?}: {r:?}"
                );
                assert!(bound * ESCAPE_FACTOR >= line.len(), "{red:?}: {r:?}");
            }
        }
    }

    #[test]
    fn without_floats_or_redaction_the_bound_is_the_line_less_its_escapes() {
        fn has_float(v: &Value) -> bool {
            match v {
                Value::Number(n) => n.is_f64(),
                Value::Array(a) => a.iter().any(has_float),
                Value::Object(o) => o.values().any(has_float),
                _ => false,
            }
        }
        let off = Redaction::off();
        let mut exact = 0;
        for r in worst_cases() {
            if !has_float(&r.to_value()) {
                let (line, _) = line(r.clone(), &off, usize::MAX, false, 0).expect("line");
                assert_eq!(line_bound(&r, &off), line.len() - escapes(&line), "{r:?}");
                exact += 1;
            }
        }
        assert!(exact >= 8, "{exact}");
        // a typical gateway record: within the float's and the escapes' difference
        let r = LogRecord::from_value(json!({
            "model": "gpt-4o", "startTime": 1764000000.123, "prompt_tokens": 12,
            "messages": [{"role": "user", "content": "two\nlines \"quoted\""}],
            "metadata": {"team": "search", "ip": null},
        }))
        .expect("record");
        let (bound, line) = (line_bound(&r, &off), actual(&r, &off));
        assert!(
            bound + 3 >= line && bound <= line + 24 - 14,
            "{bound} vs {line}"
        );
    }

    #[test]
    fn fixture_bounds_are_close() {
        let red = Redaction::default();
        for r in fixtures() {
            let (bound, line) = (line_bound(&r, &red), actual(&r, &red));
            // escapes: under 1 %; floats take up to 7 bytes more; a redacted string its slack
            assert!(bound * 100 >= line * 99, "{bound} vs {line}");
            assert!(
                bound <= line + line / 10 + 2 * REDACTION_SLACK,
                "{bound} vs {line}"
            );
        }
    }

    #[test]
    fn a_line_over_the_limit_is_an_error_that_says_how_large() {
        let r = LogRecord::from_value(json!({"id": "a", "model": "x".repeat(100)})).expect("r");
        match line(r, &Redaction::off(), 50, false, 0) {
            Err(LineError::TooLarge { bytes, limit: 50 }) => assert!(bytes > 100),
            other => panic!("{other:?}"),
        }
    }
}
