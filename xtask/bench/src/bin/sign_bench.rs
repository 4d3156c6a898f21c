//! `sign_bench`: nanoseconds per Shared Key signature (criterion), on a
//! realistic Put Block request of the callback (a batch file under hive
//! partitions, 8 MiB body, the headers the transport stamps), next to its
//! parts and its floor:
//!
//! - `shared_key/authorization`: `adls_rest::sign::authorization`, the whole
//!   `Authorization` value (string-to-sign, HMAC-SHA256, base64, header value);
//! - `shared_key/string_to_sign`: the string-to-sign construction alone;
//! - `shared_key/hmac_sha256`: bare HMAC-SHA256 of the same string-to-sign,
//!   keyed afresh each time as `sign` does (the floor);
//! - `shared_key/hmac_sha256_prekeyed`: the same with the keyed state
//!   computed once and cloned (what caching the key schedule would give).
//!
//! Run by the runner as `sign_bench --bench --noplot [criterion options]`
//! with `CRITERION_HOME` set; it reads `<name>/new/estimates.json`.

use std::hint::black_box;

use adls_bench::{ACCOUNT, ACCOUNT_KEY};
use base64::Engine as _;
use criterion::{criterion_group, criterion_main, Criterion};
use hmac::{Hmac, Mac};
use http::HeaderValue;
use sha2::Sha256;

fn request() -> http::Request<bytes::Bytes> {
    let endpoint = url::Url::parse("https://devstoreaccount1.blob.core.windows.net/").expect("url");
    let mut req = adls_rest::ops::blob::PutBlock {
        container: "llm-logs",
        blob: "gateway/year=2026/month=11/day=27/hour=04/gw-7f3c2-4711-a1b2-20261127T041500Z-00000042.ndjson",
        writer: adls_rest::WriterId::from_hex("7f3c24711a1b2c3d4e5f60718293a4b5").expect("writer id"),
        position: 16 << 20,
        body: bytes::Bytes::from(vec![b'x'; 8 << 20]),
        checksums: adls_rest::Checksums::default(),
    }
    .request(&endpoint)
    .expect("request");
    let h = req.headers_mut();
    h.insert(
        "x-ms-date",
        HeaderValue::from_static("Fri, 27 Nov 2026 04:15:07 GMT"),
    );
    h.insert(
        "x-ms-version",
        HeaderValue::from_static(adls_rest::API_VERSION),
    );
    h.insert(
        "x-ms-client-request-id",
        HeaderValue::from_static("0f8fad5b-d9cb-469f-a165-70867728950e"),
    );
    req
}

fn bench(c: &mut Criterion) {
    let req = request();
    let key = adls_rest::secret::AccountKey::from_base64(ACCOUNT_KEY).expect("key");
    let raw_key = base64::engine::general_purpose::STANDARD
        .decode(ACCOUNT_KEY)
        .expect("key");
    let (method, uri, headers) = (req.method(), req.uri(), req.headers());
    let sts = adls_rest::sign::string_to_sign(ACCOUNT, method, uri, headers);
    eprintln!("string-to-sign: {} bytes", sts.len());
    let mut g = c.benchmark_group("shared_key");
    g.bench_function("authorization", |b| {
        b.iter(|| adls_rest::sign::authorization(black_box(ACCOUNT), &key, method, uri, headers))
    });
    g.bench_function("string_to_sign", |b| {
        b.iter(|| adls_rest::sign::string_to_sign(black_box(ACCOUNT), method, uri, headers))
    });
    g.bench_function("hmac_sha256", |b| {
        b.iter(|| {
            let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(black_box(&raw_key)).expect("key");
            mac.update(black_box(sts.as_bytes()));
            mac.finalize().into_bytes()
        })
    });
    let keyed = <Hmac<Sha256> as Mac>::new_from_slice(&raw_key).expect("key");
    g.bench_function("hmac_sha256_prekeyed", |b| {
        b.iter(|| {
            let mut mac = keyed.clone();
            mac.update(black_box(sts.as_bytes()));
            mac.finalize().into_bytes()
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
