//! Shared Key authorization, one function per section of the spec:
//! <https://learn.microsoft.com/rest/api/storageservices/authorize-with-shared-key>.
//!
//! Where the spec leaves a choice open, we follow what Microsoft's Python SDK
//! does (it is what the signing vectors under `tests/vectors/` come from), and
//! what the service accepts:
//! - `Content-Length` is signed as the empty string when it is `0`;
//! - `x-ms-*` header names are ordered by the service's collation, not byte-wise
//!   (`-` before `_` before digits before letters);
//! - query parameter names are lower-cased, then sorted; values are
//!   percent-decoded once; repeated names are joined with commas.

use base64::Engine as _;
use hmac::Mac as _;
use http::{HeaderMap, HeaderValue, Method, Uri};
use percent_encoding::percent_decode_str;

use crate::secret::AccountKey;

/// The standard headers signed by position, in order ("Constructing the signature string").
const STANDARD_HEADERS: [&str; 11] = [
    "content-encoding",
    "content-language",
    "content-length",
    "content-md5",
    "content-type",
    "date",
    "if-modified-since",
    "if-match",
    "if-none-match",
    "if-unmodified-since",
    "range",
];

/// The `Authorization` header value: `SharedKey {account}:{base64 HMAC-SHA256}`.
///
/// The value is marked sensitive so `http`'s `Debug` hides it.
///
/// ```
/// # fn main() -> Result<(), adls_rest::Error> {
/// use adls_rest::connection_string::DEV_ACCOUNT_KEY;
/// use adls_rest::secret::AccountKey;
/// use adls_rest::sign::{authorization, string_to_sign};
/// use http::{HeaderMap, HeaderValue, Method, Uri};
///
/// let key = AccountKey::from_base64(DEV_ACCOUNT_KEY)?;
/// let uri: Uri = "http://127.0.0.1:10000/devstoreaccount1/logs?restype=container".parse().unwrap();
/// let mut headers = HeaderMap::new();
/// // The time is an input: the transport sets `x-ms-date` before signing.
/// headers.insert("x-ms-date", HeaderValue::from_static("Mon, 01 Jan 2024 00:00:00 GMT"));
/// headers.insert("x-ms-version", HeaderValue::from_static(adls_rest::API_VERSION));
///
/// let sts = string_to_sign("devstoreaccount1", &Method::PUT, &uri, &headers);
/// assert!(sts.ends_with("/devstoreaccount1/devstoreaccount1/logs\nrestype:container"));
/// let value = authorization("devstoreaccount1", &key, &Method::PUT, &uri, &headers);
/// assert!(value.to_str().unwrap().starts_with("SharedKey devstoreaccount1:"));
/// assert!(value.is_sensitive());
/// # Ok(()) }
/// ```
pub fn authorization(
    account: &str,
    key: &AccountKey,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
) -> HeaderValue {
    let sts = string_to_sign(account, method, uri, headers);
    tracing::trace!(string_to_sign = %sts, "shared key string-to-sign");
    let signature = sign(key, &sts);
    let mut text = String::with_capacity(11 + account.len() + signature.len());
    text.push_str("SharedKey ");
    text.push_str(account);
    text.push(':');
    text.push_str(&signature);
    // Account names are validated lower-case alphanumerics and base64 is ASCII,
    // so the value is always a valid header value.
    let mut value = HeaderValue::from_str(&text)
        .unwrap_or_else(|_| HeaderValue::from_static("SharedKey invalid"));
    value.set_sensitive(true);
    value
}

/// Base64 HMAC-SHA256 of `string_to_sign` under the decoded account key.
pub fn sign(key: &AccountKey, string_to_sign: &str) -> String {
    let mut mac = key.mac();
    mac.update(string_to_sign.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// "Blob, Queue, and File services (Shared Key authorization)": the string-to-sign.
pub fn string_to_sign(account: &str, method: &Method, uri: &Uri, headers: &HeaderMap) -> String {
    let mut s = String::with_capacity(320);
    s.push_str(method.as_str());
    s.push('\n');
    // One pass over the headers: the standard ones by position, the x-ms-* aside.
    let mut standard: [(Option<&str>, bool); 11] = [(None, false); 11];
    for (name, value) in headers {
        if let Some(i) = STANDARD_HEADERS.iter().position(|h| *h == name.as_str()) {
            let slot = &mut standard[i];
            slot.1 = slot.0.is_some(); // a repeated header: joined below
            slot.0 = Some(value.to_str().unwrap_or(""));
        }
    }
    for (i, name) in STANDARD_HEADERS.iter().enumerate() {
        let value = match standard[i] {
            (None, _) => "".into(),
            (Some(v), false) => std::borrow::Cow::Borrowed(v),
            (Some(_), true) => joined_value(headers, name),
        };
        let value = value.trim();
        if !(*name == "content-length" && value == "0") {
            s.push_str(value);
        }
        s.push('\n');
    }
    write_canonicalized_headers(&mut s, headers);
    write_canonicalized_resource(&mut s, account, uri);
    s
}

/// "Constructing the canonicalized headers string": every `x-ms-*` header,
/// lower-cased, values trimmed and repeated headers joined with commas, one
/// `name:value\n` line each, in the service's header-name order.
pub fn canonicalized_headers(headers: &HeaderMap) -> String {
    let mut out = String::with_capacity(160);
    write_canonicalized_headers(&mut out, headers);
    out
}

fn write_canonicalized_headers(out: &mut String, headers: &HeaderMap) {
    // `http` stores names lower-cased; `iter` yields every value of a name
    let mut ms: Vec<(&str, &str)> = headers
        .iter()
        .filter(|(n, _)| n.as_str().starts_with("x-ms-"))
        .map(|(n, v)| (n.as_str(), v.to_str().unwrap_or("")))
        .collect();
    // stable: the values of a repeated name keep their order
    ms.sort_by(|a, b| header_name_order(a.0, b.0));
    let mut previous: Option<&str> = None;
    for (name, value) in ms {
        if previous == Some(name) {
            out.pop(); // the '\n': this value joins the line with a comma
            out.push(',');
        } else {
            out.push_str(name);
            out.push(':');
        }
        out.push_str(value.trim());
        out.push('\n');
        previous = Some(name);
    }
}

/// "Constructing the canonicalized resource string" (2009-09-19 and later):
/// `/{account}{encoded path}` then, per query parameter, `\n{name}:{value}`.
pub fn canonicalized_resource(account: &str, uri: &Uri) -> String {
    let mut out = String::with_capacity(account.len() + uri.path().len() + 64);
    write_canonicalized_resource(&mut out, account, uri);
    out
}

fn write_canonicalized_resource(out: &mut String, account: &str, uri: &Uri) {
    let path = uri.path();
    out.push('/');
    out.push_str(account);
    out.push_str(if path.is_empty() { "/" } else { path });

    let mut params: Vec<(std::borrow::Cow<'_, str>, std::borrow::Cow<'_, str>)> = uri
        .query()
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let name = decode(name);
            let name = if name.bytes().any(|b| b.is_ascii_uppercase()) || !name.is_ascii() {
                name.to_lowercase().into()
            } else {
                name
            };
            (name, decode(value))
        })
        .collect();
    // names lower-cased then sorted; the values of a repeated name sorted too
    params.sort();
    let mut previous: Option<&str> = None;
    for (name, value) in &params {
        if previous == Some(name.as_ref()) {
            out.push(',');
        } else {
            out.push('\n');
            out.push_str(name);
            out.push(':');
        }
        out.push_str(value);
        previous = Some(name.as_ref());
    }
}

/// Percent-decodes once, borrowing when there is nothing to decode.
fn decode(s: &str) -> std::borrow::Cow<'_, str> {
    if s.contains('%') {
        percent_decode_str(s).decode_utf8_lossy()
    } else {
        s.into()
    }
}

/// All values of header `name`, comma-joined (a missing header is empty).
fn joined_value<'a>(headers: &'a HeaderMap, name: &str) -> std::borrow::Cow<'a, str> {
    let mut values = headers
        .get_all(name)
        .iter()
        .map(|v| v.to_str().unwrap_or(""));
    match (values.next(), values.next()) {
        (None, _) => "".into(),
        (Some(one), None) => one.into(),
        (Some(first), Some(second)) => {
            let mut s = format!("{},{}", first.trim(), second.trim());
            for v in values {
                s.push(',');
                s.push_str(v.trim());
            }
            s.into()
        }
    }
}

/// Level-0 weight of a header-name character in the service's collation (the
/// one .NET's invariant culture uses, as Microsoft's SDKs reproduce it): `-`
/// and `'` are ignored at this level, `_` sorts before digits, digits before
/// letters, letters ignore case. Only relative order matters here.
fn weight_primary(c: u8) -> u32 {
    match c {
        b'!' => 0x71c,
        b'#' => 0x71f,
        b'$' => 0x721,
        b'%' => 0x723,
        b'&' => 0x725,
        b'*' => 0x72d,
        b'.' => 0x733,
        b'^' => 0x743,
        b'_' => 0x744,
        b'`' => 0x748,
        b'|' => 0x74c,
        b'~' => 0x750,
        b'+' => 0x803,
        b'0'..=b'9' => 0xd00 + u32::from(c - b'0'),
        b'a'..=b'z' => 0xe00 + u32::from(c - b'a'),
        b'A'..=b'Z' => 0xe00 + u32::from(c - b'A'),
        // `-`, `'` and the separators cannot start an ordering difference.
        _ => 0,
    }
}

/// Level-1 weight: only the characters ignored at level 0 that still count
/// when everything else ties.
fn weight_secondary(c: u8) -> u32 {
    match c {
        b'-' => 0x8212,
        b'\'' => 0x8012,
        _ => 0,
    }
}

/// Orders two `x-ms-*` header names as the service does ("Constructing the
/// canonicalized headers string" says to sort by name; the service's sort is
/// this two-level collation, not byte order).
fn header_name_order(a: &str, b: &str) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    const END: u32 = 1;
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let levels: [fn(u8) -> u32; 2] = [weight_primary, weight_secondary];
    for (level, weight) in levels.iter().enumerate() {
        let last = level == levels.len() - 1;
        let (mut i, mut j) = (0, 0);
        loop {
            if last && i != j {
                // one side skipped an ignorable character the other lacks:
                // the side that has the `-` / `'` sorts after.
                return if i > j {
                    Ordering::Less
                } else {
                    Ordering::Greater
                };
            }
            let wa = a.get(i).map_or(END, |&c| weight(c));
            let wb = b.get(j).map_or(END, |&c| weight(c));
            if wa == END && wb == END {
                break; // equal at this level: try the next
            } else if wa == wb {
                i += 1;
                j += 1;
            } else if wa == 0 {
                i += 1;
            } else if wb == 0 {
                j += 1;
            } else {
                return wa.cmp(&wb);
            }
        }
    }
    Ordering::Equal
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in pairs {
            h.append(
                http::header::HeaderName::from_bytes(n.as_bytes()).expect("name"),
                HeaderValue::from_str(v).expect("value"),
            );
        }
        h
    }

    #[test]
    fn header_order_is_not_bytewise() {
        let h = headers(&[
            ("x-ms-meta-a1", "d"),
            ("x-ms-meta-a_1", "b"),
            ("x-ms-meta-a-1", "a"),
            ("x-ms-meta-ab", "e"),
            ("x-ms-version", "v"),
        ]);
        // byte order would put a1 before a_1 ('1' = 0x31 < '_' = 0x5f) and
        // a-1 first; the service ignores `-` unless all else ties
        assert_eq!(
            canonicalized_headers(&h),
            "x-ms-meta-a_1:b\nx-ms-meta-a1:d\nx-ms-meta-a-1:a\nx-ms-meta-ab:e\nx-ms-version:v\n"
        );
    }

    #[test]
    fn collation_matches_the_documented_sdk_order() {
        // The order Microsoft's Python SDK produces (see xtask/vectors/generate.py).
        let expected = [
            "x-ms-blob-type",
            "x-ms-client-request-id",
            "x-ms-date",
            "x-ms-meta-_x",
            "x-ms-meta-a",
            "x-ms-meta-a_1",
            "x-ms-meta-a_b",
            "x-ms-meta-a0",
            "x-ms-meta-a1",
            "x-ms-meta-a-1",
            "x-ms-meta-ab",
            "x-ms-meta-a-b",
            "x-ms-meta-ab_",
            "x-ms-meta-b",
            "x-ms-meta-x9_y",
            "x-ms-meta-z",
            "x-ms-version",
        ];
        let mut shuffled = expected.to_vec();
        shuffled.reverse();
        shuffled.swap(3, 9);
        shuffled.sort_by(|a, b| header_name_order(a, b));
        assert_eq!(shuffled, expected);
        assert_eq!(
            header_name_order("x-ms-metaa", "x-ms-meta-a"),
            std::cmp::Ordering::Less
        );
    }

    #[test]
    fn repeated_headers_are_joined_and_trimmed() {
        let h = headers(&[("x-ms-meta-x", " 1 "), ("x-ms-meta-x", "2")]);
        assert_eq!(canonicalized_headers(&h), "x-ms-meta-x:1,2\n");
    }

    #[test]
    fn resource_query_is_lowercased_sorted_decoded() {
        let uri: Uri = "http://h/acct/c/a%20b?restype=container&comp=list&Prefix=a%2Fb&marker=&include=metadata&include=deleted"
            .parse()
            .expect("uri");
        assert_eq!(
            canonicalized_resource("acct", &uri),
            "/acct/acct/c/a%20b\ncomp:list\ninclude:deleted,metadata\nmarker:\nprefix:a/b\nrestype:container"
        );
    }

    #[test]
    fn zero_content_length_is_empty() {
        let uri: Uri = "https://a.blob.core.windows.net/c".parse().expect("uri");
        let h = headers(&[("content-length", "0"), ("x-ms-date", "d")]);
        let s = string_to_sign("a", &Method::PUT, &uri, &h);
        // VERB + 11 standard headers, each line ended by \n; Content-Length 0 is empty
        assert_eq!(s, format!("PUT\n{}x-ms-date:d\n/a/c", "\n".repeat(11)));
        let h = headers(&[("content-length", "10")]);
        assert!(string_to_sign("a", &Method::PUT, &uri, &h).starts_with("PUT\n\n\n10\n"));
    }

    #[test]
    fn authorization_is_sensitive() {
        let key = AccountKey::from_base64("a2V5").expect("key");
        let uri: Uri = "https://a.blob.core.windows.net/c".parse().expect("uri");
        let v = authorization("a", &key, &Method::GET, &uri, &HeaderMap::new());
        assert!(v.is_sensitive());
        assert!(v.to_str().expect("ascii").starts_with("SharedKey a:"));
        assert_eq!(format!("{v:?}"), "Sensitive");
    }
}
