//! Reading token answers: the Microsoft identity platform's
//! `{"token_type":"Bearer","expires_in":3599,"access_token":"..."}`, IMDS's
//! all-strings form (`"expires_in":"3599","expires_on":"1506484173"`), App
//! Service's (`"expires_on":"1586984735"`, or on its 2017 API a date such as
//! `"06/20/2019 02:57:58 +00:00"`), and the Azure CLI's
//! (`"expiresOn":"2024-01-01 12:00:00.000000"`, `"expires_on":1704110400`).
//!
//! Pure functions: the time is an argument. Messages never quote the body (it
//! holds the token); they name the field that is missing or malformed.
//!
//! No answer makes them panic: a lifetime or instant beyond what a token can
//! plausibly have (`"expires_in":1e18`, `u64::MAX`, an `expires_on` centuries
//! ahead) is believed up to [`MAX_LIFETIME`]; a negative or malformed one is an
//! error naming the field.

use serde_json::{Map, Value};
use time::{Duration, OffsetDateTime, PrimitiveDateTime, UtcOffset};

use crate::credential::AccessToken;
use crate::secret::Secret;

/// The longest a token is believed to live: an answer claiming more is read as
/// expiring this long after it arrived, so the cache asks again then. Entra ID
/// issues tokens for 1 to 24 hours (managed identity's are the longest).
pub(crate) const MAX_LIFETIME: Duration = Duration::hours(24);

/// Reads a successful token answer. When it states both a lifetime
/// (`expires_in`) and an instant (`expires_on`), the earlier expiry wins: a
/// lifetime is immune to clock skew, but IMDS counts it from issuance and may
/// hand out a cached token.
pub(crate) fn parse_token_response(
    body: &[u8],
    now: OffsetDateTime,
) -> Result<AccessToken, String> {
    let map = json_object(body)?;
    let token = access_token(&map, "access_token")?;
    if let Some(t) = map.get("token_type").and_then(Value::as_str) {
        if !t.eq_ignore_ascii_case("bearer") {
            return Err(format!(
                "token_type is `{}`, expected `Bearer`",
                t.chars().take(20).collect::<String>()
            ));
        }
    }
    let by_lifetime = match map.get("expires_in") {
        Some(v) => Some(after(now, seconds(v, "expires_in")?)),
        None => None,
    };
    let by_instant = match map.get("expires_on") {
        Some(v) => Some(instant(v, "expires_on", now)?),
        None => None,
    };
    let expires_on = match (by_lifetime, by_instant) {
        (Some(a), Some(b)) => a.min(b),
        (Some(a), None) | (None, Some(a)) => a,
        (None, None) => {
            return Err("the answer has neither `expires_in` nor `expires_on`".into());
        }
    };
    check_not_expired(expires_on, now)?;
    Ok(AccessToken { token, expires_on })
}

/// Reads the output of `az account get-access-token --output json`. Prefers
/// `expires_on` (epoch seconds, Azure CLI 2.54 and later); falls back to
/// `expiresOn`, a local time without offset, read with `local_offset` (the
/// credential runs `az` with `TZ=UTC`, so that is UTC).
pub(crate) fn parse_cli_output(
    stdout: &[u8],
    now: OffsetDateTime,
    local_offset: UtcOffset,
) -> Result<AccessToken, String> {
    let map = json_object(stdout)?;
    let token = access_token(&map, "accessToken")?;
    let expires_on = if let Some(v) = map.get("expires_on") {
        instant(v, "expires_on", now)?
    } else if let Some(v) = map.get("expiresOn") {
        let s = v
            .as_str()
            .ok_or("`expiresOn` is not a string, expected e.g. \"2024-01-01 12:00:00.000000\"")?;
        // Converted by hand: at the calendar's edges (`9999-12-31 23:00` at
        // `-05:00`) the UTC instant is outside `time`'s range, and such a date
        // is as good as its local reading (then capped, or refused as expired).
        let local = cli_local_time(s)?.assume_utc();
        let utc = local
            .checked_sub(Duration::seconds(i64::from(local_offset.whole_seconds())))
            .unwrap_or(local);
        cap(now, utc)
    } else {
        return Err("the output has neither `expires_on` nor `expiresOn`".into());
    };
    check_not_expired(expires_on, now)?;
    Ok(AccessToken { token, expires_on })
}

fn json_object(body: &[u8]) -> Result<Map<String, Value>, String> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err("the answer is JSON but not an object".into()),
        // serde_json's message can quote the input; keep only where it broke.
        Err(e) => Err(format!(
            "the answer is not JSON ({} bytes; {:?} error at line {} column {})",
            body.len(),
            e.classify(),
            e.line(),
            e.column()
        )),
    }
}

fn access_token(map: &Map<String, Value>, field: &str) -> Result<Secret, String> {
    let t = match map.get(field) {
        Some(Value::String(s)) => s.trim(),
        Some(_) => return Err(format!("`{field}` is not a string")),
        None => return Err(format!("the answer has no `{field}`")),
    };
    if t.is_empty() {
        return Err(format!("`{field}` is empty"));
    }
    // It goes into `Authorization: Bearer <token>`.
    if !t.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(format!(
            "`{field}` holds characters not allowed in an HTTP header"
        ));
    }
    Ok(Secret::new(t))
}

/// `now` plus `secs` (not negative), believed up to [`MAX_LIFETIME`].
fn after(now: OffsetDateTime, secs: i64) -> OffsetDateTime {
    let secs = secs.clamp(0, MAX_LIFETIME.whole_seconds());
    now.saturating_add(Duration::seconds(secs))
}

/// `t`, believed up to [`MAX_LIFETIME`] after `now`.
fn cap(now: OffsetDateTime, t: OffsetDateTime) -> OffsetDateTime {
    t.min(now.saturating_add(MAX_LIFETIME))
}

/// Whole seconds from a JSON number or a string of digits; beyond `i64`
/// (`u64::MAX`, `1e30`, 30 digits) saturates to `i64::MAX`, which the callers
/// cap anyway.
fn seconds(v: &Value, field: &str) -> Result<i64, String> {
    let digits = |s: &str| {
        s.parse::<i64>().ok().or_else(|| {
            (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())).then_some(i64::MAX)
        })
    };
    let n = match v {
        // `as` saturates: a float beyond i64 becomes i64::MAX (or MIN, refused below)
        Value::Number(n) => n
            .as_i64()
            .or_else(|| n.as_u64().map(|_| i64::MAX))
            .or_else(|| n.as_f64().filter(|f| f.is_finite()).map(|f| f as i64)),
        Value::String(s) => digits(s.trim().strip_prefix('+').unwrap_or(s.trim())),
        _ => None,
    };
    match n {
        Some(n) if n >= 0 => Ok(n),
        _ => Err(format!(
            "`{field}` is not a number of seconds (as a number or a string of digits)"
        )),
    }
}

/// An instant from epoch seconds (number or string), or App Service's 2017
/// date form `MM/DD/YYYY HH:MM:SS [AM|PM] +00:00`, believed up to
/// [`MAX_LIFETIME`] after `now`.
fn instant(v: &Value, field: &str, now: OffsetDateTime) -> Result<OffsetDateTime, String> {
    if let Ok(secs) = seconds(v, field) {
        let latest = now.saturating_add(MAX_LIFETIME);
        if secs >= latest.unix_timestamp() {
            return Ok(latest);
        }
        return OffsetDateTime::from_unix_timestamp(secs)
            .map_err(|_| format!("`{field}` is out of range"));
    }
    if let Some(s) = v.as_str() {
        if let Some(t) = app_service_date(s) {
            return Ok(cap(now, t));
        }
    }
    Err(format!(
        "`{field}` is neither epoch seconds nor a date such as \"06/20/2019 02:57:58 +00:00\""
    ))
}

fn app_service_date(s: &str) -> Option<OffsetDateTime> {
    let s = s.trim().strip_suffix("+00:00")?.trim();
    let (s, pm) = if let Some(x) = s.strip_suffix("PM") {
        (x.trim(), Some(true))
    } else if let Some(x) = s.strip_suffix("AM") {
        (x.trim(), Some(false))
    } else {
        (s, None)
    };
    let (date, clock) = s.split_once(' ')?;
    let mut d = date.split('/').map(|p| p.parse::<u32>().ok());
    let (month, day, year) = (d.next()??, d.next()??, d.next()??);
    let mut c = clock.split(':').map(|p| p.parse::<u32>().ok());
    let (mut hour, minute, second) = (c.next()??, c.next()??, c.next()??);
    match pm {
        Some(true) if hour < 12 => hour += 12,
        Some(false) if hour == 12 => hour = 0,
        _ => {}
    }
    let date = time::Date::from_calendar_date(
        i32::try_from(year).ok()?,
        time::Month::try_from(u8::try_from(month).ok()?).ok()?,
        u8::try_from(day).ok()?,
    )
    .ok()?;
    let clock = time::Time::from_hms(
        u8::try_from(hour).ok()?,
        u8::try_from(minute).ok()?,
        u8::try_from(second).ok()?,
    )
    .ok()?;
    Some(PrimitiveDateTime::new(date, clock).assume_utc())
}

/// `2024-01-01 12:00:00.000000` (fraction optional), as Python's `str(datetime)` writes it.
fn cli_local_time(s: &str) -> Result<PrimitiveDateTime, String> {
    let bad = || "`expiresOn` is not a time such as \"2024-01-01 12:00:00.000000\"".to_string();
    let s = s.trim();
    let (whole, fraction) = match s.split_once('.') {
        Some((w, f)) => (w, Some(f)),
        None => (s, None),
    };
    let fmt = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    let mut t = PrimitiveDateTime::parse(whole, &fmt).map_err(|_| bad())?;
    if let Some(f) = fraction {
        if f.is_empty() || f.len() > 9 || !f.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let nanos: i64 = format!("{f:0<9}").parse().map_err(|_| bad())?;
        t += Duration::nanoseconds(nanos);
    }
    Ok(t)
}

fn check_not_expired(expires_on: OffsetDateTime, now: OffsetDateTime) -> Result<(), String> {
    if expires_on <= now {
        return Err(format!(
            "the token expired at {expires_on}, before it was received ({now}); check this machine's clock"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2024-01-01 12:00:00 UTC);

    #[test]
    fn entra_v2_answer_uses_expires_in() {
        let t = parse_token_response(
            br#"{"token_type":"Bearer","expires_in":3599,"ext_expires_in":3599,"access_token":"eyJ0eXAi.x.y"}"#,
            NOW,
        )
        .expect("token");
        assert_eq!(t.token.expose_secret(), "eyJ0eXAi.x.y");
        assert_eq!(t.expires_on, NOW + Duration::seconds(3599));
    }

    #[test]
    fn imds_strings_take_the_earlier_expiry() {
        let on = NOW.unix_timestamp() + 1800;
        let body = format!(
            r#"{{"access_token":"abc","client_id":"c","expires_in":"3599","expires_on":"{on}","ext_expires_in":"3599","not_before":"1","resource":"https://storage.azure.com","token_type":"Bearer"}}"#
        );
        let t = parse_token_response(body.as_bytes(), NOW).expect("token");
        assert_eq!(
            t.expires_on.unix_timestamp(),
            on,
            "a cached IMDS token: expires_on is earlier"
        );
        // expires_on as a number, no expires_in (App Service 2019-08-01 sends a string; both work)
        let body = format!(r#"{{"access_token":"abc","expires_on":{on},"token_type":"Bearer"}}"#);
        let t = parse_token_response(body.as_bytes(), NOW).expect("token");
        assert_eq!(t.expires_on.unix_timestamp(), on);
    }

    #[test]
    fn app_service_2017_dates() {
        for (s, want) in [
            (
                "01/01/2024 13:00:00 +00:00",
                datetime!(2024-01-01 13:00:00 UTC),
            ),
            (
                "1/1/2024 1:00:00 PM +00:00",
                datetime!(2024-01-01 13:00:00 UTC),
            ),
            (
                "1/2/2024 12:30:00 AM +00:00",
                datetime!(2024-01-02 00:30:00 UTC),
            ),
        ] {
            let body = format!(r#"{{"access_token":"abc","expires_on":"{s}"}}"#);
            let t = parse_token_response(body.as_bytes(), NOW).expect(s);
            assert_eq!(t.expires_on, want, "{s}");
        }
    }

    #[test]
    fn malformed_answers_say_what_is_wrong_without_quoting() {
        let cases: [(&[u8], &str); 8] = [
            (b"{not json SECRETTOKEN", "not JSON"),
            (b"[1,2]", "not an object"),
            (br#"{"expires_in":10}"#, "no `access_token`"),
            (br#"{"access_token":"SECRETTOKEN"}"#, "neither"),
            (
                br#"{"access_token":"SECRETTOKEN","expires_in":"soon"}"#,
                "expires_in",
            ),
            (
                br#"{"access_token":"SECRET TOKEN","expires_in":10}"#,
                "not allowed",
            ),
            (
                br#"{"access_token":"SECRETTOKEN","expires_in":10,"token_type":"pop"}"#,
                "token_type",
            ),
            (
                br#"{"access_token":"SECRETTOKEN","expires_on":"1000"}"#,
                "expired",
            ),
        ];
        for (body, want) in cases {
            let e = parse_token_response(body, NOW).expect_err(want);
            assert!(e.contains(want), "{e}");
            assert!(!e.contains("SECRET"), "{e}");
        }
    }

    #[test]
    fn huge_lifetimes_are_capped_not_panics() {
        let cap = NOW + MAX_LIFETIME;
        for lifetime in [
            "1e18",
            "1.8446744073709552e19",
            "18446744073709551615",
            "9223372036854775807",
            "9223372036854775808",
            "9999999999999",
            "1e300",
            "\"18446744073709551615\"",
            "\"99999999999999999999999999999\"",
            "\"9999999999999\"",
        ] {
            let body = format!(r#"{{"access_token":"abc","expires_in":{lifetime}}}"#);
            let t = parse_token_response(body.as_bytes(), NOW).expect(lifetime);
            assert_eq!(t.expires_on, cap, "expires_in {lifetime}");
            // as an instant, alone and beside a sane lifetime
            let body = format!(r#"{{"access_token":"abc","expires_on":{lifetime}}}"#);
            let t = parse_token_response(body.as_bytes(), NOW).expect(lifetime);
            assert_eq!(t.expires_on, cap, "expires_on {lifetime}");
            let body =
                format!(r#"{{"access_token":"abc","expires_in":3599,"expires_on":{lifetime}}}"#);
            let t = parse_token_response(body.as_bytes(), NOW).expect(lifetime);
            assert_eq!(t.expires_on, NOW + Duration::seconds(3599), "{lifetime}");
            let out = format!(r#"{{"accessToken":"abc","expires_on":{lifetime}}}"#);
            let t = parse_cli_output(out.as_bytes(), NOW, UtcOffset::UTC).expect(lifetime);
            assert_eq!(t.expires_on, cap, "cli expires_on {lifetime}");
        }
        // a day is believed as is, a second more is not
        for lifetime in [86400, 86401] {
            let body = format!(r#"{{"access_token":"abc","expires_in":{lifetime}}}"#);
            let t = parse_token_response(body.as_bytes(), NOW).expect("a day");
            assert_eq!(t.expires_on, cap);
        }
        // far-future dates too
        let t = parse_token_response(
            br#"{"access_token":"abc","expires_on":"12/31/9999 11:59:59 PM +00:00"}"#,
            NOW,
        )
        .expect("year 9999");
        assert_eq!(t.expires_on, cap);
        let out = br#"{"accessToken":"tok","expiresOn":"9999-12-31 23:59:59.999999"}"#;
        for offset in [-14, -1, 0, 1, 14] {
            let o = UtcOffset::from_hms(offset, 0, 0).expect("offset");
            let t = parse_cli_output(out, NOW, o).expect("year 9999");
            assert_eq!(t.expires_on, cap, "offset {offset}");
        }
    }

    #[test]
    fn negative_past_and_odd_expiries_are_errors_not_panics() {
        for (field, value) in [
            ("expires_in", "-1"),
            ("expires_in", "-1e18"),
            ("expires_in", "-9223372036854775808"),
            ("expires_in", "\"-5\""),
            ("expires_in", "0"),
            ("expires_in", "true"),
            ("expires_in", "null"),
            ("expires_in", "[]"),
            ("expires_in", "\"\""),
            ("expires_on", "-1"),
            ("expires_on", "0"),
            ("expires_on", "-1e300"),
            ("expires_on", "\"-62167219200\""),
            ("expires_on", "\"01/01/-9999 00:00:00 +00:00\""),
            ("expires_on", "\"12/31/99999 00:00:00 +00:00\""),
            ("expires_on", "\"99/99/2024 99:99:99 +00:00\""),
        ] {
            let body = format!(r#"{{"access_token":"SECRETTOKEN","{field}":{value}}}"#);
            let e = parse_token_response(body.as_bytes(), NOW).expect_err(value);
            assert!(
                e.contains(field) || e.contains("expired"),
                "{field}: {value}: {e}"
            );
            assert!(!e.contains("SECRET"), "{e}");
        }
        for (out, offset) in [
            (r#"{"accessToken":"t","expires_on":-1}"#, 0),
            (
                r#"{"accessToken":"t","expiresOn":"-9999-01-01 00:00:00"}"#,
                14,
            ),
            (
                r#"{"accessToken":"t","expiresOn":"0001-01-01 00:00:00"}"#,
                14,
            ),
            (
                r#"{"accessToken":"t","expiresOn":"-9999-01-01 00:00:00"}"#,
                -14,
            ),
        ] {
            let o = UtcOffset::from_hms(offset, 0, 0).expect("offset");
            assert!(parse_cli_output(out.as_bytes(), NOW, o).is_err(), "{out}");
        }
    }

    #[test]
    fn any_expiry_at_any_clock_is_a_token_or_an_error() {
        // Random and extreme values, at clocks from the calendar's start to its
        // end: each answer is read or refused, never a panic.
        let clocks = [
            NOW,
            OffsetDateTime::UNIX_EPOCH,
            time::PrimitiveDateTime::MIN.assume_utc(),
            time::PrimitiveDateTime::MAX.assume_utc(),
        ];
        let mut rng = fastrand::Rng::with_seed(7);
        let mut values: Vec<String> = ["0", "1", "-1", "1e308", "-1e308", "5e-324"]
            .map(String::from)
            .to_vec();
        values.extend([i64::MIN, i64::MAX].map(|n| n.to_string()));
        values.push(u64::MAX.to_string());
        for _ in 0..300 {
            values.push(rng.i64(..).to_string());
            values.push(format!("\"{}\"", rng.u64(..)));
            values.push(format!("{:e}", f64::from_bits(rng.u64(..))).replace("inf", "1"));
        }
        for now in clocks {
            for v in &values {
                for body in [
                    format!(r#"{{"access_token":"a","expires_in":{v}}}"#),
                    format!(r#"{{"access_token":"a","expires_on":{v}}}"#),
                    format!(r#"{{"access_token":"a","expires_in":{v},"expires_on":{v}}}"#),
                ] {
                    if let Ok(t) = parse_token_response(body.as_bytes(), now) {
                        assert!(t.expires_on > now, "{body}");
                        assert!(t.expires_on <= now.saturating_add(MAX_LIFETIME), "{body}");
                    }
                }
                let out = format!(r#"{{"accessToken":"a","expires_on":{v}}}"#);
                let _ = parse_cli_output(out.as_bytes(), now, UtcOffset::UTC);
            }
            for offset in [-14, 0, 14] {
                let o = UtcOffset::from_hms(offset, 0, 0).expect("offset");
                for date in ["9999-12-31 23:59:59.999999999", "-9999-01-01 00:00:00"] {
                    let out = format!(r#"{{"accessToken":"a","expiresOn":"{date}"}}"#);
                    let _ = parse_cli_output(out.as_bytes(), now, o);
                }
            }
        }
    }

    #[test]
    fn cli_output_prefers_expires_on() {
        let on = NOW.unix_timestamp() + 3000;
        let out = format!(
            r#"{{"accessToken":"tok","expiresOn":"2024-01-01 14:00:00.000000","expires_on":{on},"subscription":"s","tenant":"t","tokenType":"Bearer"}}"#
        );
        let t = parse_cli_output(out.as_bytes(), NOW, UtcOffset::UTC).expect("token");
        assert_eq!(t.expires_on.unix_timestamp(), on);
        assert_eq!(t.token.expose_secret(), "tok");
    }

    #[test]
    fn cli_output_local_time_form() {
        let out = br#"{"accessToken":"tok","expiresOn":"2024-01-01 14:00:00.250000","subscription":"s","tenant":"t","tokenType":"Bearer"}"#;
        let t = parse_cli_output(out, NOW, UtcOffset::UTC).expect("token");
        assert_eq!(t.expires_on, datetime!(2024-01-01 14:00:00.25 UTC));
        let plus2 = UtcOffset::from_hms(2, 0, 0).expect("offset");
        let t = parse_cli_output(out, NOW, plus2).expect("token");
        assert_eq!(t.expires_on, datetime!(2024-01-01 12:00:00.25 UTC));
        let no_fraction = br#"{"accessToken":"tok","expiresOn":"2024-01-01 14:00:00"}"#;
        assert!(parse_cli_output(no_fraction, NOW, UtcOffset::UTC).is_ok());
        let bad = br#"{"accessToken":"tok","expiresOn":"tomorrow"}"#;
        assert!(parse_cli_output(bad, NOW, UtcOffset::UTC)
            .expect_err("bad")
            .contains("expiresOn"));
    }
}
