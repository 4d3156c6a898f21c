//! The Blob dialect against Azurite over plain HTTP with Shared Key: containers,
//! create / append / flush / read round trips up to 64 MiB, the visibility rule
//! (readers see exactly `[0, position)` of the last flush), the typed errors
//! (`BlobAlreadyExists`, `InvalidFlushPosition`, not found, a wrong key's 403,
//! which must not quote the key or the signature), properties and metadata,
//! names with reserved and non-ASCII characters, and paged listings.
//!
//! Every test works in its own `unique_name()` container. SAS is not covered:
//! the crate has no SAS generator yet, and these tests use no SDK to make one.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use adls_rest::{
    Account, ByteRange, Checksums, Client, CreateMode, CreateOptions, Credential, ErrorKind,
    FileSystem, FlushOptions, ListOptions, Metadata, PathItem,
};
use adls_tests::{required_env, unique_name, AZURITE_ACCOUNT, AZURITE_KEY, ENV_AZURITE_HTTP};
use bytes::Bytes;
use futures_util::{StreamExt as _, TryStreamExt as _};
use http::StatusCode;
use md5::Digest as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

const MIB: usize = 1024 * 1024;

/// A Shared Key client for the plain-HTTP Azurite.
pub(crate) fn http_client() -> Client {
    client_at(&required_env(ENV_AZURITE_HTTP), AZURITE_KEY)
}

fn client_at(endpoint: &str, key: &str) -> Client {
    let account = Account::emulator(endpoint).expect("Azurite endpoint is a valid emulator URL");
    let credential = Credential::shared_key(key).expect("account key is valid base64");
    Client::builder(account, credential)
        .build()
        .expect("client builds")
}

/// A fresh container on `client`, created.
pub(crate) async fn new_container(client: &Client, prefix: &str) -> FileSystem {
    let fs = client
        .filesystem(&unique_name(prefix))
        .expect("unique names are valid container names");
    fs.create().await.expect("create container");
    fs
}

/// Deterministic pseudo-random bytes.
pub(crate) fn random_bytes(len: usize, seed: u64) -> Bytes {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut v = vec![0u8; len];
    rng.fill(&mut v);
    Bytes::from(v)
}

/// Length and MD5 of `data`: what large contents are compared by, so a
/// failure does not print megabytes.
pub(crate) fn fingerprint(data: &[u8]) -> (usize, String) {
    let digest = md5::Md5::digest(data);
    let hex = digest.iter().map(|b| format!("{b:02x}")).collect();
    (data.len(), hex)
}

fn names(items: &[PathItem]) -> Vec<(String, bool)> {
    items
        .iter()
        .map(|i| (i.name.clone(), i.is_directory))
        .collect()
}

#[tokio::test]
async fn container_create_if_not_exists_and_delete() {
    let client = http_client();
    let fs = client.filesystem(&unique_name("ctr")).expect("valid name");
    assert!(fs.create_if_not_exists().await.expect("first call"));
    assert!(!fs.create_if_not_exists().await.expect("second call"));

    let e = fs
        .create()
        .await
        .expect_err("create of an existing container");
    assert_eq!(e.status(), Some(StatusCode::CONFLICT), "{e}");
    assert_eq!(e.error_code(), Some("ContainerAlreadyExists"), "{e}");
    assert!(e.is_already_exists(), "{e}");
    assert!(!e.is_retryable(), "{e}");

    fs.delete().await.expect("delete container");
    let e = fs.delete().await.expect_err("second delete");
    assert!(e.is_not_found(), "{e}");
    assert_eq!(e.error_code(), Some("ContainerNotFound"), "{e}");
    let e = fs
        .file("x.txt")
        .expect("valid path")
        .create(&CreateOptions::default())
        .await
        .expect_err("create in a deleted container");
    assert!(e.is_not_found(), "{e}");
}

#[tokio::test]
async fn connection_string_client_round_trip() {
    let endpoint = required_env(ENV_AZURITE_HTTP);
    let cs = format!(
        "DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};BlobEndpoint={endpoint};"
    );
    let client = Client::from_connection_string(&cs)
        .expect("connection string parses")
        .build()
        .expect("client builds");
    assert_eq!(client.dialect(), adls_rest::Dialect::Blob);
    assert!(
        !format!("{client:?}").contains(AZURITE_KEY),
        "client Debug shows the key"
    );
    let fs = new_container(&client, "cs").await;
    let f = fs.file("hello.txt").expect("valid path");
    let data = Bytes::from_static(b"hello, azurite\n");
    let flushed = f
        .upload(data.clone(), 4, &CreateOptions::default())
        .await
        .expect("upload");
    assert_eq!(flushed.content_length, data.len() as u64);
    assert!(!flushed.reconciled);
    assert_eq!(f.read().await.expect("read"), data);
    fs.delete().await.expect("delete container");
}

#[tokio::test]
async fn create_overwrite_and_create_new() {
    let client = http_client();
    let fs = new_container(&client, "create").await;
    let f = fs.file("dir/file.ndjson").expect("valid path");
    let new = CreateOptions {
        mode: CreateMode::CreateNew,
        ..Default::default()
    };

    f.create(&new).await.expect("create-new of an absent file");
    let e = f.create(&new).await.expect_err("second create-new");
    assert_eq!(e.kind(), ErrorKind::Service, "{e}");
    assert_eq!(e.status(), Some(StatusCode::CONFLICT), "{e}");
    assert_eq!(e.error_code(), Some("BlobAlreadyExists"), "{e}");
    assert!(e.is_already_exists(), "{e}");
    assert!(e.request_id().is_some(), "{e:?}");

    // Overwrite replaces committed content with an empty file.
    let data = Bytes::from_static(b"0123456789");
    f.append(0, data.clone(), Checksums::default())
        .await
        .expect("append");
    f.flush(10, &FlushOptions::default()).await.expect("flush");
    assert_eq!(f.read().await.expect("read"), data);
    f.create(&CreateOptions::default())
        .await
        .expect("overwrite");
    assert_eq!(f.properties().await.expect("properties").content_length, 0);
    assert!(f.read().await.expect("read").is_empty());
    // ... and create-new still refuses it.
    assert!(f
        .create(&new)
        .await
        .expect_err("create-new over the overwritten file")
        .is_already_exists());
    fs.delete().await.expect("delete container");
}

#[tokio::test]
async fn round_trips_of_0_1_and_4_mib() {
    let client = http_client();
    let fs = new_container(&client, "sizes").await;

    // 0 bytes: create and flush(0), nothing appended.
    let f = fs.file("zero").expect("valid path");
    f.create(&CreateOptions::default()).await.expect("create");
    let flushed = f.flush(0, &FlushOptions::default()).await.expect("flush 0");
    assert_eq!(flushed.content_length, 0);
    assert!(f.read().await.expect("read").is_empty());
    assert_eq!(f.properties().await.expect("props").content_length, 0);

    // 1 byte.
    let f = fs.file("one").expect("valid path");
    f.create(&CreateOptions::default()).await.expect("create");
    f.append(0, Bytes::from_static(b"x"), Checksums::default())
        .await
        .expect("append");
    let flushed = f.flush(1, &FlushOptions::default()).await.expect("flush");
    assert_eq!(flushed.content_length, 1);
    assert!(!flushed.etag.is_empty());
    assert_eq!(f.read().await.expect("read").as_ref(), b"x");

    // 4 MiB in one append.
    let f = fs.file("four").expect("valid path");
    let data = random_bytes(4 * MIB, 4);
    f.create(&CreateOptions::default()).await.expect("create");
    f.append(0, data.clone(), Checksums::default())
        .await
        .expect("append 4 MiB");
    f.flush(data.len() as u64, &FlushOptions::default())
        .await
        .expect("flush");
    let back = f.read().await.expect("read");
    assert_eq!(fingerprint(&back), fingerprint(&data));
    fs.delete().await.expect("delete container");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_trip_64_mib_in_8_mib_appends() {
    let client = http_client();
    let fs = new_container(&client, "big").await;
    let f = fs.file("logs/big.bin").expect("valid path");
    let data = random_bytes(64 * MIB, 64);
    let chunk = 8 * MIB;
    f.create(&CreateOptions::default()).await.expect("create");
    // Appends may go out concurrently: each names its own position.
    let appends = (0..data.len()).step_by(chunk).map(|pos| {
        let f = f.clone();
        let part = data.slice(pos..pos + chunk);
        async move { f.append(pos as u64, part, Checksums::default()).await }
    });
    for r in futures_join_all(appends).await {
        r.expect("append 8 MiB");
    }
    // Nothing is visible before the flush.
    assert_eq!(f.properties().await.expect("props").content_length, 0);
    let flushed = f
        .flush(data.len() as u64, &FlushOptions::default())
        .await
        .expect("flush 64 MiB");
    assert_eq!(flushed.content_length, data.len() as u64);
    let back = f.read().await.expect("read 64 MiB");
    assert_eq!(fingerprint(&back), fingerprint(&data));
    // A range across a block boundary.
    let start = chunk - 10;
    let part = f
        .read_range(ByteRange {
            start: start as u64,
            len: Some(20),
        })
        .await
        .expect("read range");
    assert_eq!(part, data.slice(start..start + 20));
    fs.delete().await.expect("delete container");
}

/// Runs futures concurrently as tasks (in parallel on a multi-thread
/// runtime), returning their outputs in order.
pub(crate) async fn futures_join_all<F>(futs: impl IntoIterator<Item = F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futs.into_iter().map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        out.push(h.await.expect("task panicked"));
    }
    out
}

#[tokio::test]
async fn readers_see_exactly_the_flushed_prefix() {
    let client = http_client();
    let fs = new_container(&client, "visible").await;
    let f = fs.file("v.txt").expect("valid path");
    f.create(&CreateOptions::default()).await.expect("create");

    f.append(0, Bytes::from_static(b"hello "), Checksums::default())
        .await
        .expect("append");
    assert!(
        f.read().await.expect("read").is_empty(),
        "visible before flush"
    );
    f.flush(6, &FlushOptions::default()).await.expect("flush 6");
    assert_eq!(f.read().await.expect("read").as_ref(), b"hello ");

    f.append(6, Bytes::from_static(b"world"), Checksums::default())
        .await
        .expect("append");
    assert_eq!(
        f.read().await.expect("read").as_ref(),
        b"hello ",
        "old content until the flush"
    );
    assert_eq!(f.properties().await.expect("props").content_length, 6);
    f.flush(11, &FlushOptions::default())
        .await
        .expect("flush 11");
    assert_eq!(f.read().await.expect("read").as_ref(), b"hello world");

    // Two more appends, a flush to the end of the first: exactly [0, 14).
    f.append(11, Bytes::from_static(b"abc"), Checksums::default())
        .await
        .expect("append");
    f.append(14, Bytes::from_static(b"def"), Checksums::default())
        .await
        .expect("append");
    let flushed = f
        .flush(14, &FlushOptions::default())
        .await
        .expect("flush 14");
    assert_eq!(flushed.content_length, 14);
    assert_eq!(f.read().await.expect("read").as_ref(), b"hello worldabc");
    assert_eq!(f.properties().await.expect("props").content_length, 14);
    fs.delete().await.expect("delete container");
}

#[tokio::test]
async fn repeated_flush_is_harmless() {
    let client = http_client();
    let fs = new_container(&client, "reflush").await;
    let f = fs.file("r.txt").expect("valid path");
    f.create(&CreateOptions::default()).await.expect("create");
    f.append(0, Bytes::from_static(b"abcdef"), Checksums::default())
        .await
        .expect("append");
    let first = f.flush(6, &FlushOptions::default()).await.expect("flush");
    let props = f.properties().await.expect("props");
    let second = f
        .flush(6, &FlushOptions::default())
        .await
        .expect("same flush again");
    let third = f
        .flush(
            6,
            &FlushOptions {
                close: true,
                ..Default::default()
            },
        )
        .await
        .expect("and once more, closing");
    for fl in [&first, &second, &third] {
        assert_eq!(fl.content_length, 6);
        assert_eq!(fl.etag, props.etag, "a repeated flush changes nothing");
    }
    assert_eq!(f.read().await.expect("read").as_ref(), b"abcdef");
    let after = f.properties().await.expect("props");
    assert_eq!(after.etag, props.etag);
    assert_eq!(after.last_modified, props.last_modified);
    fs.delete().await.expect("delete container");
}

#[tokio::test]
async fn non_contiguous_flush_is_invalid_flush_position() {
    let client = http_client();
    let fs = new_container(&client, "gap").await;
    let f = fs.file("g.txt").expect("valid path");
    f.create(&CreateOptions::default()).await.expect("create");
    f.append(0, Bytes::from_static(b"01234"), Checksums::default())
        .await
        .expect("append at 0");
    f.append(10, Bytes::from_static(b"abcde"), Checksums::default())
        .await
        .expect("append at 10");

    // A gap in [5, 10).
    let e = f
        .flush(15, &FlushOptions::default())
        .await
        .expect_err("flush over a gap");
    assert!(e.is_invalid_flush_position(), "{e}");
    assert_eq!(e.status(), Some(StatusCode::BAD_REQUEST), "{e}");
    assert!(!e.is_retryable(), "{e}");
    // A position inside a block.
    let e = f
        .flush(3, &FlushOptions::default())
        .await
        .expect_err("flush inside a block");
    assert!(e.is_invalid_flush_position(), "{e}");
    // Beyond everything appended.
    let e = f
        .flush(20, &FlushOptions::default())
        .await
        .expect_err("flush past the data");
    assert!(e.is_invalid_flush_position(), "{e}");
    assert!(
        f.read().await.expect("read").is_empty(),
        "failed flushes commit nothing"
    );

    // The contiguous prefix still flushes.
    f.flush(5, &FlushOptions::default()).await.expect("flush 5");
    assert_eq!(f.read().await.expect("read").as_ref(), b"01234");
    fs.delete().await.expect("delete container");
}

#[tokio::test]
async fn flush_below_committed_length_is_invalid_flush_position() {
    let client = http_client();
    let fs = new_container(&client, "below").await;
    let f = fs.file("b.txt").expect("valid path");
    f.create(&CreateOptions::default()).await.expect("create");
    f.append(0, Bytes::from_static(b"0123456789"), Checksums::default())
        .await
        .expect("append");
    f.flush(10, &FlushOptions::default()).await.expect("flush");
    let e = f
        .flush(5, &FlushOptions::default())
        .await
        .expect_err("flush below the committed length");
    assert!(e.is_invalid_flush_position(), "{e}");
    assert_eq!(e.status(), Some(StatusCode::BAD_REQUEST), "{e}");
    assert_eq!(f.read().await.expect("read").as_ref(), b"0123456789");
    fs.delete().await.expect("delete container");
}

#[tokio::test]
async fn read_range() {
    let client = http_client();
    let fs = new_container(&client, "range").await;
    let f = fs.file("r.bin").expect("valid path");
    let data = random_bytes(100_000, 7);
    f.upload(data.clone(), 30_000, &CreateOptions::default())
        .await
        .expect("upload");
    for (start, len) in [
        (0u64, Some(1u64)),
        (0, Some(100_000)),
        (29_990, Some(20)),
        (99_999, Some(1)),
        (50_000, None),
        (0, None),
        (99_990, Some(1_000)), // runs past the end: the service trims it
    ] {
        let got = f
            .read_range(ByteRange { start, len })
            .await
            .expect("read range");
        let s = start as usize;
        let e = len.map_or(data.len(), |l| (s + l as usize).min(data.len()));
        assert_eq!(got, data.slice(s..e), "range {start} + {len:?}");
    }
    // (A range starting at the end is 416 `InvalidRange` on Azure; Azurite 3.35
    // answers it with an empty body, so it is not asserted here.)
    let e = f
        .read_range(ByteRange {
            start: 0,
            len: Some(0),
        })
        .await
        .expect_err("empty range");
    assert_eq!(e.kind(), ErrorKind::Config, "{e}");
    fs.delete().await.expect("delete container");
}

#[tokio::test]
async fn properties_track_flushes_and_keep_metadata() {
    let client = http_client();
    let fs = new_container(&client, "props").await;
    let f = fs.file("p/props.ndjson").expect("valid path");
    let mut metadata = Metadata::new();
    metadata.insert("batch_2", "seven").expect("valid");
    metadata.insert("_9x", "nine").expect("valid");
    metadata.insert("a1_b2_c3", "x y").expect("valid");
    metadata.insert("a1", "one").expect("valid");
    metadata.insert("a_1", "under one").expect("valid");
    metadata.insert("Source", "unit-test").expect("valid");
    f.create(&CreateOptions {
        mode: CreateMode::CreateNew,
        content_type: Some("application/x-ndjson".into()),
        metadata: metadata.clone(),
        ..Default::default()
    })
    .await
    .expect("create with metadata");

    let p0 = f.properties().await.expect("props");
    assert_eq!(p0.content_length, 0);
    assert_eq!(p0.content_type.as_deref(), Some("application/x-ndjson"));
    assert!(!p0.etag.is_empty());
    assert!(!p0.is_directory);
    let lm0 = p0.last_modified.expect("Last-Modified is parsed");
    let now = time::OffsetDateTime::now_utc();
    assert!(
        (lm0 - now).abs() < time::Duration::minutes(5),
        "last-modified {lm0} is not near now {now}"
    );
    for (n, v) in metadata.iter() {
        assert_eq!(p0.metadata.get(n), Some(v), "metadata {n} after create");
    }

    // Last-Modified has one-second resolution.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    f.append(0, Bytes::from_static(b"{\"a\":1}\n"), Checksums::default())
        .await
        .expect("append");
    let flushed = f.flush(8, &FlushOptions::default()).await.expect("flush");
    let p1 = f.properties().await.expect("props");
    assert_eq!(p1.content_length, 8);
    assert_ne!(p1.etag, p0.etag, "etag changes with a flush");
    assert_eq!(p1.etag, flushed.etag, "flush reports the new etag");
    assert!(p1.last_modified.expect("Last-Modified") > lm0);
    assert_eq!(p1.content_type.as_deref(), Some("application/x-ndjson"));
    for (n, v) in metadata.iter() {
        assert_eq!(p1.metadata.get(n), Some(v), "metadata {n} survives a flush");
    }
    assert_eq!(p1.metadata.iter().count(), metadata.iter().count());

    // A flush may set the content type; metadata still survives.
    f.append(8, Bytes::from_static(b"{\"a\":2}\n"), Checksums::default())
        .await
        .expect("append");
    f.flush(
        16,
        &FlushOptions {
            close: true,
            content_type: Some("text/plain".into()),
            ..Default::default()
        },
    )
    .await
    .expect("flush with content type");
    let p2 = f.properties().await.expect("props");
    assert_eq!(p2.content_length, 16);
    assert_eq!(p2.content_type.as_deref(), Some("text/plain"));
    for (n, v) in metadata.iter() {
        assert_eq!(
            p2.metadata.get(n),
            Some(v),
            "metadata {n} survives a second flush"
        );
    }
    fs.delete().await.expect("delete container");
}

#[tokio::test]
async fn delete_then_properties_is_not_found() {
    let client = http_client();
    let fs = new_container(&client, "del").await;
    let f = fs.file("d.txt").expect("valid path");
    f.upload(Bytes::from_static(b"bye"), 3, &CreateOptions::default())
        .await
        .expect("upload");
    f.delete().await.expect("delete");

    // HEAD: no body, the code comes from x-ms-error-code.
    let e = f.properties().await.expect_err("properties after delete");
    assert!(e.is_not_found(), "{e}");
    assert_eq!(e.kind(), ErrorKind::Service, "{e}");
    assert!(!e.is_retryable(), "{e}");
    let e = f.read().await.expect_err("read after delete");
    assert!(e.is_not_found(), "{e}");
    assert_eq!(e.error_code(), Some("BlobNotFound"), "{e}");
    let e = f.delete().await.expect_err("second delete");
    assert!(e.is_not_found(), "{e}");
    fs.delete().await.expect("delete container");
}

#[tokio::test]
async fn append_with_md5_checksum() {
    let client = http_client();
    let fs = new_container(&client, "md5").await;
    let f = fs.file("m.bin").expect("valid path");
    f.create(&CreateOptions::default()).await.expect("create");
    let a = random_bytes(70_000, 1);
    let b = random_bytes(1, 2);
    let md5 = Checksums {
        md5: true,
        ..Default::default()
    };
    f.append(0, a.clone(), md5).await.expect("append with MD5");
    f.append(a.len() as u64, b.clone(), md5)
        .await
        .expect("append with MD5");
    f.flush((a.len() + b.len()) as u64, &FlushOptions::default())
        .await
        .expect("flush");
    let back = f.read().await.expect("read");
    assert_eq!(back.len(), a.len() + b.len());
    assert_eq!(&back[..a.len()], a.as_ref());
    assert_eq!(&back[a.len()..], b.as_ref());
    fs.delete().await.expect("delete container");
}

#[tokio::test]
async fn names_with_reserved_and_unicode_characters_round_trip() {
    let client = http_client();
    let fs = new_container(&client, "names").await;
    let weird = "a b/日本語/%+=&;,'!()*~.json";
    let others = ["a b/plain.txt", "données/été #1.txt", "x/y?z.txt"];
    let data = Bytes::from_static(b"{\"ok\":true}\n");
    for (i, name) in std::iter::once(weird).chain(others).enumerate() {
        let f = fs.file(name).expect("valid path");
        f.upload(data.slice(..data.len() - i), 5, &CreateOptions::default())
            .await
            .unwrap_or_else(|e| panic!("upload {name:?}: {e}"));
        assert_eq!(f.path(), name);
        assert_eq!(
            f.read().await.expect("read"),
            data.slice(..data.len() - i),
            "{name:?}"
        );
        assert_eq!(
            f.properties().await.expect("props").content_length,
            (data.len() - i) as u64
        );
    }

    let all = fs
        .list_all(ListOptions {
            recursive: true,
            ..Default::default()
        })
        .await
        .expect("list");
    let listed: BTreeSet<&str> = all.iter().map(|i| i.name.as_str()).collect();
    let expected: BTreeSet<&str> = std::iter::once(weird).chain(others).collect();
    assert_eq!(listed, expected);
    let item = all.iter().find(|i| i.name == weird).expect("listed");
    assert_eq!(item.content_length, data.len() as u64);
    assert!(!item.is_directory);

    // One level under "a b": the unicode directory and the plain file.
    let level = fs
        .list_all(ListOptions {
            directory: Some("a b".into()),
            ..Default::default()
        })
        .await
        .expect("list one level");
    let mut got = names(&level);
    got.sort();
    assert_eq!(
        got,
        vec![
            ("a b/plain.txt".to_string(), false),
            ("a b/日本語".to_string(), true)
        ]
    );
    let inner = fs
        .list_all(ListOptions {
            directory: Some("a b/日本語".into()),
            ..Default::default()
        })
        .await
        .expect("list the unicode directory");
    assert_eq!(names(&inner), vec![(weird.to_string(), false)]);
    fs.file(weird)
        .expect("valid path")
        .delete()
        .await
        .expect("delete the weird name");
    fs.delete().await.expect("delete container");
}

#[tokio::test]
async fn listing_pages_with_continuation() {
    let client = http_client();
    let fs = new_container(&client, "pages").await;
    let mut expected = Vec::new();
    for i in 0..7u8 {
        let name = format!("batch-{i:04}.ndjson");
        let body = Bytes::from(vec![b'a' + i; usize::from(i) + 1]);
        fs.file(&name)
            .expect("valid path")
            .upload(body, 1024, &CreateOptions::default())
            .await
            .expect("upload");
        expected.push((name, u64::from(i) + 1));
    }
    let options = ListOptions {
        recursive: true,
        page_size: Some(2),
        ..Default::default()
    };

    // Page by page: 2, 2, 2, 1, continuation on all but the last.
    let mut pages = Vec::new();
    let mut next: Option<String> = None;
    loop {
        let page = fs
            .list_page(&options, next.as_deref())
            .await
            .expect("list page");
        pages.push(page.items.len());
        match page.continuation {
            Some(c) => {
                assert!(!c.is_empty());
                next = Some(c);
            }
            None => break,
        }
        assert!(pages.len() < 10, "listing does not end");
    }
    assert_eq!(pages, vec![2, 2, 2, 1]);

    let all = fs.list_all(options.clone()).await.expect("list_all");
    let got: Vec<(String, u64)> = all
        .iter()
        .map(|i| (i.name.clone(), i.content_length))
        .collect();
    assert_eq!(got, expected, "list_all, in name order");
    assert!(all
        .iter()
        .all(|i| i.etag.is_some() && i.last_modified.is_some()));

    // The `list` stream yields the same entries, fetching pages as it goes.
    let streamed: Vec<(String, u64)> = fs
        .list(options)
        .map(|r| r.map(|i| (i.name, i.content_length)))
        .try_collect()
        .await
        .expect("list stream");
    assert_eq!(streamed, expected, "list stream");
    // Taking a prefix of the stream fetches only the pages it needs.
    let before = client.stats().requests_sent;
    let first_three: Vec<_> = fs
        .list(ListOptions {
            recursive: true,
            page_size: Some(2),
            ..Default::default()
        })
        .take(3)
        .collect()
        .await;
    assert_eq!(first_three.len(), 3);
    assert_eq!(
        client.stats().requests_sent - before,
        2,
        "two pages for three entries"
    );

    fs.delete().await.expect("delete container");
}

#[tokio::test]
async fn non_recursive_listing_shows_directories() {
    let client = http_client();
    let fs = new_container(&client, "dirs").await;
    for name in ["top.txt", "d1/a", "d1/b", "d1/sub/c", "d2/x"] {
        fs.file(name)
            .expect("valid path")
            .upload(Bytes::from_static(b"."), 1, &CreateOptions::default())
            .await
            .expect("upload");
    }
    let list = |directory: Option<&str>, recursive: bool| {
        let fs = fs.clone();
        let options = ListOptions {
            directory: directory.map(str::to_string),
            recursive,
            page_size: None,
        };
        async move {
            let mut v = names(&fs.list_all(options).await.expect("list"));
            v.sort();
            v
        }
    };
    let own = |v: &[(&str, bool)]| -> Vec<(String, bool)> {
        v.iter().map(|(n, d)| (n.to_string(), *d)).collect()
    };
    assert_eq!(
        list(None, false).await,
        own(&[("d1", true), ("d2", true), ("top.txt", false)])
    );
    assert_eq!(
        list(Some("d1"), false).await,
        own(&[("d1/a", false), ("d1/b", false), ("d1/sub", true)])
    );
    assert_eq!(
        list(Some("/d1/"), false).await,
        own(&[("d1/a", false), ("d1/b", false), ("d1/sub", true)]),
        "slashes around the directory are ignored"
    );
    assert_eq!(
        list(None, true).await,
        own(&[
            ("d1/a", false),
            ("d1/b", false),
            ("d1/sub/c", false),
            ("d2/x", false),
            ("top.txt", false)
        ])
    );
    assert_eq!(
        list(Some("d1"), true).await,
        own(&[("d1/a", false), ("d1/b", false), ("d1/sub/c", false)])
    );
    assert!(list(Some("nothing"), false).await.is_empty());
    for root in ["", "/"] {
        assert_eq!(
            list(Some(root), false).await,
            list(None, false).await,
            "directory {root:?} is the root"
        );
    }
    // Paged non-recursive listing: directories count as entries of a page.
    let paged = fs
        .list_all(ListOptions {
            page_size: Some(1),
            ..Default::default()
        })
        .await
        .expect("paged list");
    assert_eq!(paged.len(), 3);
    fs.delete().await.expect("delete container");
}

#[tokio::test]
async fn wrong_account_key_is_403_without_secrets() {
    let endpoint = required_env(ENV_AZURITE_HTTP);
    // A valid base64 key that is not Azurite's.
    use base64::Engine as _;
    let wrong_key =
        base64::engine::general_purpose::STANDARD.encode(random_bytes(64, 0xbad).as_ref());
    // Route through a loopback tap to learn the signature the client sent.
    let upstream = endpoint
        .strip_prefix("http://")
        .and_then(|rest| rest.split('/').next())
        .expect("endpoint is http://host:port/account")
        .parse()
        .expect("endpoint host is ip:port");
    let tap = Tap::start(upstream).await;
    let tapped = format!("http://{}/{AZURITE_ACCOUNT}", tap.addr);
    let client = client_at(&tapped, &wrong_key);

    let name = unique_name("wrongkey");
    let e = client
        .filesystem(&name)
        .expect("valid name")
        .create()
        .await
        .expect_err("a wrong key is refused");
    assert_eq!(e.kind(), ErrorKind::Service, "{e}");
    assert_eq!(e.status(), Some(StatusCode::FORBIDDEN), "{e}");
    assert_eq!(e.error_code(), Some("AuthorizationFailure"), "{e}");
    assert!(!e.is_retryable(), "{e}");
    assert!(e.request_id().is_some(), "{e:?}");
    assert_eq!(client.stats().retries, 0);

    // A HEAD with the wrong key: the same 403, from headers only.
    let e2 = client
        .filesystem(&name)
        .expect("valid name")
        .file("f")
        .expect("valid path")
        .properties()
        .await
        .expect_err("HEAD with a wrong key");
    assert_eq!(e2.status(), Some(StatusCode::FORBIDDEN), "{e2}");
    assert_eq!(e2.error_code(), Some("AuthorizationFailure"), "{e2}");

    let signatures = tap.authorization_signatures();
    assert_eq!(signatures.len(), 2, "the tap saw both requests");
    for err in [&e, &e2] {
        let text = format!("{err} {err:?}");
        assert!(!text.contains(&wrong_key), "error shows the key: {text}");
        assert!(!text.contains(AZURITE_KEY), "error shows a key: {text}");
        for sig in &signatures {
            assert!(
                !text.contains(sig.as_str()),
                "error shows the signature: {text}"
            );
        }
        assert!(
            !text.contains("SharedKey"),
            "error quotes the Authorization header: {text}"
        );
    }
    assert!(!format!("{client:?}").contains(&wrong_key));
}

/// A loopback TCP relay in front of Azurite that records every byte the client
/// sends, so a test can find the exact `Authorization` it used.
struct Tap {
    addr: SocketAddr,
    sent: Arc<Mutex<Vec<u8>>>,
}

impl Tap {
    async fn start(upstream: SocketAddr) -> Tap {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind tap");
        let addr = listener.local_addr().expect("tap address");
        let sent = Arc::new(Mutex::new(Vec::new()));
        let log = sent.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let log = log.clone();
                tokio::spawn(async move {
                    let Ok(server) = tokio::net::TcpStream::connect(upstream).await else {
                        return;
                    };
                    let (mut cr, mut cw) = client.into_split();
                    let (mut sr, mut sw) = server.into_split();
                    let up = async move {
                        let mut buf = vec![0u8; 64 * 1024];
                        loop {
                            match cr.read(&mut buf).await {
                                Ok(0) | Err(_) => break,
                                Ok(n) => {
                                    log.lock()
                                        .unwrap_or_else(|p| p.into_inner())
                                        .extend_from_slice(&buf[..n]);
                                    if sw.write_all(&buf[..n]).await.is_err() {
                                        break;
                                    }
                                }
                            }
                        }
                        let _ = sw.shutdown().await;
                    };
                    let down = async move {
                        let _ = tokio::io::copy(&mut sr, &mut cw).await;
                        let _ = cw.shutdown().await;
                    };
                    tokio::join!(up, down);
                });
            }
        });
        Tap { addr, sent }
    }

    /// The signature part of every `Authorization: SharedKey account:signature` sent.
    fn authorization_signatures(&self) -> Vec<String> {
        let sent = self.sent.lock().unwrap_or_else(|p| p.into_inner()).clone();
        String::from_utf8_lossy(&sent)
            .split("\r\n")
            .filter_map(|line| {
                let (name, value) = line.split_once(':')?;
                if !name.trim().eq_ignore_ascii_case("authorization") {
                    return None;
                }
                let sig = value.trim().strip_prefix("SharedKey ")?.split_once(':')?.1;
                Some(sig.to_string())
            })
            .collect()
    }
}
