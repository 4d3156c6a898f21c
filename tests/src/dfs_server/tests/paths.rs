//! Creating, appending, flushing and reading files.

use md5::{Digest, Md5};

use super::*;
use crate::dfs_server::append_flush::crc64;
use crate::dfs_server::wire::JSON_TYPE;

#[tokio::test]
async fn create_append_flush_read_round_trip() {
    let (_server, client, fs) = with_filesystem(Options::default()).await;
    let url = format!("{fs}/logs/2024/app.jsonl");

    let created = send(
        &client,
        Method::PUT,
        &format!("{url}?resource=file"),
        &[
            ("x-ms-content-type", "application/x-ndjson"),
            ("x-ms-properties", "origin=dGVzdA=="),
        ],
        b"",
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED);
    assert_eq!(created.header("content-length"), Some("0"));
    let etag0 = created.header("etag").unwrap().to_owned();
    assert!(
        etag0.starts_with("\"0x8D") && etag0.ends_with('"'),
        "{etag0}"
    );
    assert!(created.header("last-modified").unwrap().ends_with(" GMT"));

    assert_eq!(
        append(&client, &url, 0, b"hello ").await.status,
        StatusCode::ACCEPTED
    );
    assert_eq!(
        append(&client, &url, 6, b"world").await.status,
        StatusCode::ACCEPTED
    );

    let flushed = flush(&client, &url, 11).await;
    assert_eq!(flushed.status, StatusCode::OK);
    let etag1 = flushed.header("etag").unwrap();
    assert_ne!(etag1, etag0);

    let r = read(&client, &url).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(&r.body[..], b"hello world");
    assert_eq!(r.header("content-length"), Some("11"));
    assert_eq!(r.header("content-type"), Some("application/x-ndjson"));
    assert_eq!(r.header("x-ms-resource-type"), Some("file"));
    assert_eq!(r.header("etag"), Some(etag1));

    let head = send(&client, Method::HEAD, &url, &[], b"").await;
    assert_eq!(head.status, StatusCode::OK);
    assert_eq!(head.header("content-length"), Some("11"));
    assert_eq!(head.header("x-ms-properties"), Some("origin=dGVzdA=="));
    assert!(head.body.is_empty());

    // Parents were created as directories.
    let dir = send(&client, Method::HEAD, &format!("{fs}/logs/2024"), &[], b"").await;
    assert_eq!(dir.header("x-ms-resource-type"), Some("directory"));

    // Ranges: x-ms-range wins over Range; start past the end is 416.
    let part = send(&client, Method::GET, &url, &[("range", "bytes=6-")], b"").await;
    assert_eq!(part.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(&part.body[..], b"world");
    assert_eq!(part.header("content-range"), Some("bytes 6-10/11"));
    let part = send(
        &client,
        Method::GET,
        &url,
        &[("range", "bytes=0-0"), ("x-ms-range", "bytes=0-4")],
        b"",
    )
    .await;
    assert_eq!(&part.body[..], b"hello");
    let past = send(
        &client,
        Method::GET,
        &url,
        &[("x-ms-range", "bytes=11-")],
        b"",
    )
    .await;
    assert_eq!(past.status, StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(past.error_code(), Some("InvalidRange"));
    assert_eq!(past.header("content-range"), Some("bytes */11"));
}

#[tokio::test]
async fn unflushed_data_is_invisible() {
    let (server, client, fs) = with_filesystem(Options::default()).await;
    let url = format!("{fs}/f.txt");
    create_file(&client, &url).await;
    assert_eq!(flush(&client, &url, 0).await.status, StatusCode::OK);
    append(&client, &url, 0, b"abc").await;
    assert_eq!(flush(&client, &url, 3).await.status, StatusCode::OK);
    append(&client, &url, 3, b"def").await;

    let r = read(&client, &url).await;
    assert_eq!(&r.body[..], b"abc");
    let head = send(&client, Method::HEAD, &url, &[], b"").await;
    assert_eq!(head.header("content-length"), Some("3"));
    let list = send(
        &client,
        Method::GET,
        &format!("{fs}?resource=filesystem&recursive=true"),
        &[],
        b"",
    )
    .await;
    assert_eq!(list.json()["paths"][0]["contentLength"], "3");
    assert_eq!(
        server.file_contents("fs1", "f.txt").unwrap(),
        Bytes::from_static(b"abc")
    );
}

#[tokio::test]
async fn flush_must_be_contiguous() {
    let (_server, client, fs) = with_filesystem(Options::default()).await;
    let url = format!("{fs}/f.txt");
    create_file(&client, &url).await;
    append(&client, &url, 0, b"abc").await;
    append(&client, &url, 5, b"xyz").await;

    let r = flush(&client, &url, 8).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.error_code(), Some("InvalidFlushPosition"));
    assert_eq!(r.header("content-type"), Some(JSON_TYPE));
    let body = r.json();
    assert_eq!(body["error"]["code"], "InvalidFlushPosition");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("The uploaded data is not contiguous"),
        "{message}"
    );
    assert!(message.contains(&format!(
        "RequestId:{}",
        r.header("x-ms-request-id").unwrap()
    )));

    // Nothing changed; a flush up to the gap commits the contiguous part.
    assert!(read(&client, &url).await.body.is_empty());
    assert_eq!(flush(&client, &url, 3).await.status, StatusCode::OK);
    assert_eq!(&read(&client, &url).await.body[..], b"abc");
    // Below the committed length is refused too.
    assert_eq!(
        flush(&client, &url, 2).await.error_code(),
        Some("InvalidFlushPosition")
    );
    // The chunk at 5 was dropped by the flush (retainUncommittedData=false).
    append(&client, &url, 3, b"de").await;
    assert_eq!(
        flush(&client, &url, 8).await.error_code(),
        Some("InvalidFlushPosition")
    );
    assert_eq!(flush(&client, &url, 5).await.status, StatusCode::OK);
    assert_eq!(&read(&client, &url).await.body[..], b"abcde");
}

#[tokio::test]
async fn retried_append_and_flush_are_harmless() {
    let (_server, client, fs) = with_filesystem(Options::default()).await;
    let url = format!("{fs}/f.txt");
    create_file(&client, &url).await;
    append(&client, &url, 0, b"abc").await;
    append(&client, &url, 0, b"abc").await;
    let first = flush(&client, &url, 3).await;
    let again = flush(&client, &url, 3).await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(again.header("etag"), first.header("etag"));
    assert_eq!(&read(&client, &url).await.body[..], b"abc");
}

#[tokio::test]
async fn retain_uncommitted_data_keeps_the_tail() {
    let (_server, client, fs) = with_filesystem(Options::default()).await;
    let url = format!("{fs}/f.txt");
    create_file(&client, &url).await;
    append(&client, &url, 0, b"abcdef").await;
    let r = send(
        &client,
        Method::PATCH,
        &format!("{url}?action=flush&position=2&retainUncommittedData=true"),
        &[],
        b"",
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(&read(&client, &url).await.body[..], b"ab");
    assert_eq!(flush(&client, &url, 6).await.status, StatusCode::OK);
    assert_eq!(&read(&client, &url).await.body[..], b"abcdef");
}

#[tokio::test]
async fn conditional_create_and_flush() {
    let (_server, client, fs) = with_filesystem(Options::default()).await;
    let url = format!("{fs}/f.txt");
    let created = create_file(&client, &url).await;
    append(&client, &url, 0, b"abc").await;
    flush(&client, &url, 3).await;

    let again = send(
        &client,
        Method::PUT,
        &format!("{url}?resource=file"),
        &[("if-none-match", "*")],
        b"",
    )
    .await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert_eq!(again.error_code(), Some("PathAlreadyExists"));
    assert_eq!(again.json()["error"]["code"], "PathAlreadyExists");

    // A stale If-Match on flush is 412.
    append(&client, &url, 3, b"d").await;
    let stale = send(
        &client,
        Method::PATCH,
        &format!("{url}?action=flush&position=4"),
        &[("if-match", created.header("etag").unwrap())],
        b"",
    )
    .await;
    assert_eq!(stale.status, StatusCode::PRECONDITION_FAILED);
    assert_eq!(stale.error_code(), Some("ConditionNotMet"));

    // Without conditions, creating again truncates.
    create_file(&client, &url).await;
    assert!(read(&client, &url).await.body.is_empty());

    // A flush body is refused.
    let r = send(
        &client,
        Method::PATCH,
        &format!("{url}?action=flush&position=0"),
        &[],
        b"x",
    )
    .await;
    assert_eq!(r.error_code(), Some("ContentLengthMustBeZero"));
}

#[tokio::test]
async fn content_md5_is_checked() {
    let (_server, client, fs) = with_filesystem(Options::default()).await;
    let url = format!("{fs}/f.txt");
    create_file(&client, &url).await;
    let good = B64.encode(Md5::digest(b"abc"));
    let bad = B64.encode(Md5::digest(b"abd"));
    let append_url = format!("{url}?action=append&position=0");
    let r = send(
        &client,
        Method::PATCH,
        &append_url,
        &[("content-md5", &bad)],
        b"abc",
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.error_code(), Some("Md5Mismatch"));
    let r = send(
        &client,
        Method::PATCH,
        &append_url,
        &[("content-md5", "nope")],
        b"abc",
    )
    .await;
    assert_eq!(r.error_code(), Some("InvalidMd5"));
    let r = send(
        &client,
        Method::PATCH,
        &append_url,
        &[("content-md5", &good)],
        b"abc",
    )
    .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
}

#[test]
fn crc64_is_azures() {
    // The catalogue's check value of CRC-64/NVME, the polynomial Azure Storage uses.
    assert_eq!(crc64(b"123456789"), 0xAE8B_1486_0A79_9888);
    assert_eq!(crc64(b""), 0);
}

#[tokio::test]
async fn content_crc64_is_checked_and_not_stored() {
    let (server, client, fs) = with_filesystem(Options::default()).await;
    let url = format!("{fs}/f.txt");
    create_file(&client, &url).await;
    let good = B64.encode(crc64(b"abc").to_le_bytes());
    let bad = B64.encode(crc64(b"abd").to_le_bytes());
    let append_url = format!("{url}?action=append&position=0");
    let r = send(
        &client,
        Method::PATCH,
        &append_url,
        &[("x-ms-content-crc64", &bad)],
        b"abc",
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.error_code(), Some("Crc64Mismatch"));
    let r = send(
        &client,
        Method::PATCH,
        &append_url,
        &[("x-ms-content-crc64", "bm9wZQ==")],
        b"abc",
    )
    .await;
    assert_eq!(r.error_code(), Some("InvalidHeaderValue"));
    // nothing was staged by the refused appends
    assert_eq!(
        flush(&client, &url, 3).await.status,
        StatusCode::BAD_REQUEST
    );
    let r = send(
        &client,
        Method::PATCH,
        &append_url,
        &[("x-ms-content-crc64", &good)],
        b"abc",
    )
    .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    assert_eq!(flush(&client, &url, 3).await.status, StatusCode::OK);
    assert_eq!(
        server.file_contents("fs1", "f.txt").as_deref(),
        Some(&b"abc"[..])
    );
    let head = send(&client, Method::HEAD, &url, &[], b"").await;
    assert_eq!(head.header("x-ms-content-crc64"), None);
    assert_eq!(head.header("content-md5"), None);
}

#[tokio::test]
async fn flush_content_md5_is_stored_returned_and_cleared() {
    let (_server, client, fs) = with_filesystem(Options::default()).await;
    let url = format!("{fs}/f.txt");
    create_file(&client, &url).await;
    append(&client, &url, 0, b"hello").await;
    // Stored as given, not compared with the data (a digest of other bytes).
    let claimed = B64.encode(Md5::digest(b"not the data"));
    let r = send(
        &client,
        Method::PATCH,
        &format!("{url}?action=flush&position=5"),
        &[("x-ms-content-md5", &claimed)],
        b"",
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header("content-md5"), None);
    let head = send(&client, Method::HEAD, &url, &[], b"").await;
    assert_eq!(head.header("content-md5"), Some(claimed.as_str()));
    let get = read(&client, &url).await;
    assert_eq!(get.header("content-md5"), Some(claimed.as_str()));
    assert_eq!(&get.body[..], b"hello");
    // A range read does not carry the whole file's digest.
    let part = send(
        &client,
        Method::GET,
        &url,
        &[("x-ms-range", "bytes=0-1")],
        b"",
    )
    .await;
    assert_eq!(part.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(part.header("content-md5"), None);
    // Repeating the same flush changes nothing, not even the ETag.
    let again = send(
        &client,
        Method::PATCH,
        &format!("{url}?action=flush&position=5"),
        &[("x-ms-content-md5", &claimed)],
        b"",
    )
    .await;
    assert_eq!(again.header("etag"), r.header("etag"));
    // Malformed: 400, nothing changes.
    let bad = send(
        &client,
        Method::PATCH,
        &format!("{url}?action=flush&position=5"),
        &[("x-ms-content-md5", "bm9wZQ==")],
        b"",
    )
    .await;
    assert_eq!(bad.error_code(), Some("InvalidHeaderValue"));
    // A flush without it clears it.
    let cleared = flush(&client, &url, 5).await;
    assert_eq!(cleared.status, StatusCode::OK);
    assert_ne!(cleared.header("etag"), r.header("etag"));
    let head = send(&client, Method::HEAD, &url, &[], b"").await;
    assert_eq!(head.header("content-md5"), None);
    // Set properties stores it too.
    let set = send(
        &client,
        Method::PATCH,
        &format!("{url}?action=setProperties"),
        &[("x-ms-content-md5", &claimed)],
        b"",
    )
    .await;
    assert_eq!(set.status, StatusCode::OK);
    let head = send(&client, Method::HEAD, &url, &[], b"").await;
    assert_eq!(head.header("content-md5"), Some(claimed.as_str()));
}

#[tokio::test]
async fn accumulating_server_stages_a_reappend_twice() {
    let (server, client, fs) = with_filesystem(Options {
        reappend: Reappend::Accumulate,
        ..Options::default()
    })
    .await;
    let url = format!("{fs}/f.txt");
    create_file(&client, &url).await;
    assert_eq!(
        append(&client, &url, 0, b"once\n").await.status,
        StatusCode::ACCEPTED
    );
    assert_eq!(
        append(&client, &url, 0, b"once\n").await.status,
        StatusCode::ACCEPTED
    );
    // Everything staged must be flushed at once: not the single length ...
    let r = flush(&client, &url, 5).await;
    assert_eq!(r.error_code(), Some("InvalidFlushPosition"));
    // ... but the doubled one, which commits the duplicate.
    assert_eq!(flush(&client, &url, 10).await.status, StatusCode::OK);
    assert_eq!(
        server.file_contents("fs1", "f.txt").as_deref(),
        Some(&b"once\nonce\n"[..])
    );
}
