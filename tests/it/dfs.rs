//! The DFS dialect end to end: one contract run against the in-repo DFS test
//! server (which follows Microsoft's Data Lake Storage Gen2 REST reference),
//! against the independent DFS emulator (Azurite built from pull request #2635,
//! started by `cargo xtask integration`), and against a real account when
//! `ADLS_LIVE_CONNECTION_STRING` is set.
//!
//! Where the emulator diverges from the documentation, the contract asserts the
//! documented behaviour on the documented servers and what the emulator really
//! does on the emulator, naming the quirk, so a change of the emulator shows up
//! here. `docs/TESTING.md` lists the disagreements and how each was decided.

use adls_rest::{
    ByteRange, Checksums, Client, CreateMode, CreateOptions, Dialect, FlushOptions, ListOptions,
    Metadata,
};
use adls_tests::azurite::OwnAzurite;
use adls_tests::dfs_server::{DfsServer, Options};
use adls_tests::{dfs_emulator_endpoint, emulator_client, unique_name};
use bytes::Bytes;
use futures_util::StreamExt as _;

/// What kind of DFS endpoint the contract runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Server {
    /// Behaves as Microsoft's documentation says: the in-repo DFS test server
    /// and a real account.
    Documented,
    /// The independent DFS emulator, with its known divergences.
    Emulator,
}

/// The whole create / append / flush / read / list / delete contract, run
/// against any DFS endpoint.
async fn dfs_contract(client: Client, server: Server) {
    let emulator = server == Server::Emulator;
    let fs = client.filesystem(&unique_name("dfs")).expect("fs name");
    assert!(fs.create_if_not_exists().await.expect("create fs"));
    assert!(!fs.create_if_not_exists().await.expect("create fs again"));

    fs.create_directory("dir/sub").await.expect("mkdir");

    // create-new, then a second create-new is a typed 409
    let file = fs
        .file("dir/sub/a b+c=d&e;f,g'h!(i)*~%.ndjson")
        .expect("path");
    let mut metadata = Metadata::new();
    metadata.insert("a_1", "one").expect("md");
    metadata.insert("a1", "two").expect("md");
    let opts = CreateOptions {
        mode: CreateMode::CreateNew,
        content_type: Some("application/x-ndjson".into()),
        metadata,
        ..Default::default()
    };
    file.create(&opts).await.expect("create");
    let again = file.create(&opts).await;
    if emulator {
        // Emulator quirk: `If-None-Match: *` on an existing file is accepted
        // (documented: 409 PathAlreadyExists).
        again.expect("emulator quirk: create-new over an existing file succeeds");
    } else {
        let again = again.expect_err("exists");
        assert!(again.is_already_exists(), "{again:?}");
        assert_eq!(again.status().map(|s| s.as_u16()), Some(409));
        assert_eq!(again.error_code(), Some("PathAlreadyExists"));
    }

    // staged data is invisible until flush
    file.append(
        0,
        Bytes::from_static(b"hello "),
        Checksums {
            md5: true,
            crc64: false,
        },
    )
    .await
    .expect("append 1");
    file.append(
        6,
        Bytes::from_static(b"world\n"),
        Checksums {
            md5: false,
            crc64: true,
        },
    )
    .await
    .expect("append 2");
    let before = file.properties().await.expect("props");
    assert_eq!(before.content_length, 0);
    assert_eq!(file.read().await.expect("read empty").len(), 0);

    // non-contiguous flush is the typed InvalidFlushPosition
    let bad = file
        .flush(13, &FlushOptions::default())
        .await
        .expect_err("gap");
    assert!(bad.is_invalid_flush_position(), "{bad:?}");
    // Emulator quirk: InvalidFlushPosition is 409 there (documented: 400).
    let status = if emulator { 409 } else { 400 };
    assert_eq!(bad.status().map(|s| s.as_u16()), Some(status), "{bad:?}");

    let flushed = file
        .flush(
            12,
            &FlushOptions {
                close: true,
                ..Default::default()
            },
        )
        .await
        .expect("flush");
    assert_eq!(flushed.content_length, 12);
    assert!(!flushed.reconciled);
    assert_eq!(
        file.read().await.expect("read"),
        Bytes::from_static(b"hello world\n")
    );
    let after = file.properties().await.expect("props");
    assert_eq!(after.content_length, 12);
    assert_ne!(after.etag, before.etag);
    if emulator {
        // Emulator quirks: x-ms-content-type is not kept, and x-ms-properties
        // given at create are not stored (documented: both are returned by
        // Get Properties, as Content-Type and x-ms-properties).
        assert_eq!(
            after.content_type.as_deref(),
            Some("application/octet-stream")
        );
        assert!(after.metadata.is_empty(), "{:?}", after.metadata);
    } else {
        assert_eq!(after.content_type.as_deref(), Some("application/x-ndjson"));
        assert_eq!(after.metadata.get("a_1"), Some("one"));
        assert_eq!(after.metadata.get("a1"), Some("two"));
    }

    // a repeated flush is harmless; a flush below the committed length is not
    file.flush(12, &FlushOptions::default())
        .await
        .expect("repeat flush");
    let below = file.flush(5, &FlushOptions::default()).await;
    if emulator {
        // Emulator quirk: a flush below the committed length is accepted and
        // changes nothing (documented: 400 InvalidFlushPosition).
        below.expect("emulator quirk: flush below the committed length succeeds");
        assert_eq!(file.properties().await.expect("props").content_length, 12);
    } else {
        let below = below.expect_err("below");
        assert!(below.is_invalid_flush_position(), "{below:?}");
    }

    // append more after a flush
    file.append(12, Bytes::from_static(b"again\n"), Checksums::default())
        .await
        .expect("append 3");
    file.flush(18, &FlushOptions::default())
        .await
        .expect("flush 2");
    assert_eq!(
        file.read_range(ByteRange {
            start: 6,
            len: Some(6)
        })
        .await
        .expect("range"),
        Bytes::from_static(b"world\n")
    );
    assert_eq!(
        file.read_range(ByteRange {
            start: 12,
            len: None
        })
        .await
        .expect("range to end"),
        Bytes::from_static(b"again\n")
    );

    // listing with continuation (page size 2, 5 files + directories)
    for i in 0..5 {
        fs.file(&format!("many/f{i}.json"))
            .expect("path")
            .upload(
                Bytes::from(format!("{{\"i\":{i}}}\n")),
                4,
                &CreateOptions::default(),
            )
            .await
            .expect("upload");
    }
    let listed = fs
        .list_all(ListOptions {
            directory: Some("many".into()),
            recursive: true,
            page_size: Some(2),
        })
        .await
        .expect("list");
    let names: Vec<&str> = listed.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "many/f0.json",
            "many/f1.json",
            "many/f2.json",
            "many/f3.json",
            "many/f4.json"
        ]
    );
    assert!(listed
        .iter()
        .all(|p| p.content_length == 8 && !p.is_directory));

    let streamed: Vec<String> = fs
        .list(ListOptions {
            recursive: true,
            page_size: Some(2),
            ..Default::default()
        })
        .map(|r| r.expect("page").name)
        .collect()
        .await;
    assert!(
        streamed.contains(&"dir/sub/a b+c=d&e;f,g'h!(i)*~%.ndjson".to_string()),
        "{streamed:?}"
    );
    assert!(streamed.contains(&"dir".to_string()));
    assert_eq!(streamed.len(), 9, "{streamed:?}"); // dir, dir/sub, the file, many, 5 files

    let top = fs
        .list_all(ListOptions::default())
        .await
        .expect("top level");
    let mut top: Vec<(String, bool)> = top.into_iter().map(|p| (p.name, p.is_directory)).collect();
    top.sort();
    let dir = ("dir".to_string(), true);
    let many = ("many".to_string(), true);
    if emulator {
        // Emulator quirk: a non-recursive listing names every directory twice
        // (as an entry and again as a prefix); documented: once.
        assert_eq!(top, [dir.clone(), dir, many.clone(), many]);
    } else {
        assert_eq!(top, [dir, many]);
    }

    // delete
    file.delete().await.expect("delete");
    let gone = file.properties().await.expect_err("deleted");
    assert!(gone.is_not_found(), "{gone:?}");
    fs.delete().await.expect("delete fs");
}

#[tokio::test]
async fn dfs_dialect_against_the_dfs_test_server() {
    let server = DfsServer::start_with(Options {
        page_size: 2,
        ..Options::default()
    })
    .await;
    let client = emulator_client(&server.endpoint(), Dialect::Dfs);
    dfs_contract(client.clone(), Server::Documented).await;
    // every request carried the pinned version and a Shared Key signature
    for r in server.requests() {
        assert_eq!(r.header("x-ms-version"), Some(adls_rest::API_VERSION));
        assert!(r
            .header("authorization")
            .is_some_and(|a| a.starts_with("SharedKey devstoreaccount1:")));
    }
    assert_eq!(client.stats().retries, 0);
}

#[tokio::test]
async fn dfs_dialect_against_the_dfs_emulator() {
    let client = emulator_client(&dfs_emulator_endpoint(), Dialect::Dfs);
    dfs_contract(client.clone(), Server::Emulator).await;
    assert_eq!(client.stats().retries, 0);
}

/// Runs the same contract against a real ADLS Gen2 account:
/// `ADLS_LIVE_CONNECTION_STRING=... cargo xtask integration -- --include-ignored live_account`.
/// Reported as ignored, not passed, when not asked for.
#[tokio::test]
#[ignore = "needs a real account: set ADLS_LIVE_CONNECTION_STRING and pass --include-ignored"]
async fn dfs_dialect_against_a_live_account() {
    let cs = adls_tests::required_env("ADLS_LIVE_CONNECTION_STRING");
    let client = Client::from_connection_string(&cs)
        .expect("connection string")
        .dialect(Dialect::Dfs)
        .build()
        .expect("client");
    dfs_contract(client, Server::Documented).await;
}

/// A test can run an emulator of its own, on disk, and stop and restart it:
/// flushed data survives a graceful restart on the same port.
#[tokio::test]
async fn own_dfs_emulator_keeps_flushed_data_across_a_restart() {
    let mut emulator = OwnAzurite::start_dfs_emulator();
    let client = emulator_client(&emulator.endpoint(), Dialect::Dfs);
    let fs = client.filesystem(&unique_name("restart")).expect("fs");
    fs.create().await.expect("create fs");
    let file = fs.file("a/b.ndjson").expect("path");
    file.upload(Bytes::from_static(b"kept\n"), 4, &CreateOptions::default())
        .await
        .expect("upload");
    emulator.stop();
    let down = file.properties().await.expect_err("stopped");
    assert!(down.is_retryable(), "{down:?}");
    emulator.resume();
    assert_eq!(
        file.read().await.expect("read"),
        Bytes::from_static(b"kept\n")
    );
    emulator.restart();
    assert_eq!(file.properties().await.expect("props").content_length, 5);
}
