//! Injected faults: statuses, lost answers, resets and delays.

use super::*;

#[tokio::test]
async fn status_fault_answers_without_applying() {
    let (server, client, fs) = with_filesystem(Options::default()).await;
    let url = format!("{fs}/f.txt");
    create_file(&client, &url).await;
    append(&client, &url, 0, b"abc").await;
    server.inject(Fault::Status {
        status: 503,
        code: "ServerBusy",
        retry_after: None,
        times: 2,
        matching: Matcher::any().method(Method::PATCH).action("flush"),
    });
    // Not matching: a read goes through.
    assert_eq!(read(&client, &url).await.status, StatusCode::OK);
    for _ in 0..2 {
        let r = flush(&client, &url, 3).await;
        assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(r.error_code(), Some("ServerBusy"));
        assert_eq!(r.json()["error"]["code"], "ServerBusy");
        assert!(read(&client, &url).await.body.is_empty());
    }
    assert_eq!(server.pending_faults(), 0);
    assert_eq!(flush(&client, &url, 3).await.status, StatusCode::OK);
    assert_eq!(&read(&client, &url).await.body[..], b"abc");

    server.inject(Fault::Status {
        status: 429,
        code: "TooManyRequests",
        retry_after: Some(Duration::from_millis(1500)),
        times: 1,
        matching: Matcher::any(),
    });
    let r = send(&client, Method::HEAD, &url, &[], b"").await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.header("retry-after"), Some("2"));
    assert_eq!(r.header("x-ms-retry-after-ms"), Some("1500"));
    assert!(r.body.is_empty());
}

#[tokio::test]
async fn dropped_response_after_apply_is_ambiguous() {
    let (server, client, fs) = with_filesystem(Options::default()).await;
    let url = format!("{fs}/f.txt");
    create_file(&client, &url).await;
    let before = server.connections_accepted();
    server.inject(Fault::DropResponseAfterApply {
        times: 1,
        matching: Matcher::any().action("append"),
    });
    let lost = send_raw(
        &client,
        Method::PATCH,
        &format!("{url}?action=append&position=0"),
        &[],
        b"abc",
    )
    .await;
    let err = lost.err().expect("the client sees no answer");
    assert!(
        hyper_error(&err).is_some_and(hyper::Error::is_incomplete_message),
        "closed without an answer: {err:?}"
    );
    // The append happened: a flush finds the data.
    assert_eq!(flush(&client, &url, 3).await.status, StatusCode::OK);
    assert_eq!(&read(&client, &url).await.body[..], b"abc");
    assert!(
        server.connections_accepted() > before,
        "a new connection was needed"
    );
}

#[tokio::test]
async fn reset_before_apply_applies_nothing() {
    let (server, client, fs) = with_filesystem(Options::default()).await;
    let url = format!("{fs}/f.txt");
    server.inject(Fault::ResetBeforeApply {
        times: 1,
        matching: Matcher::any().method(Method::PUT).resource("file"),
    });
    let lost = send_raw(
        &client,
        Method::PUT,
        &format!("{url}?resource=file"),
        &[],
        b"",
    )
    .await;
    let err = lost.err().expect("the connection is reset");
    assert_eq!(
        io_error_kind(&err),
        Some(std::io::ErrorKind::ConnectionReset),
        "{err:?}"
    );
    let head = send(&client, Method::HEAD, &url, &[], b"").await;
    assert_eq!(head.status, StatusCode::NOT_FOUND);
    assert_eq!(server.requests().len(), 3);
}

#[tokio::test]
async fn delay_answers_late_but_applies() {
    let (server, client, fs) = with_filesystem(Options::default()).await;
    let url = format!("{fs}/f.txt");
    server.inject(Fault::Delay {
        delay: Duration::from_millis(400),
        times: 1,
        matching: Matcher::any().resource("file"),
    });
    let started = std::time::Instant::now();
    let slow = tokio::time::timeout(
        Duration::from_millis(100),
        send_raw(
            &client,
            Method::PUT,
            &format!("{url}?resource=file"),
            &[],
            b"",
        ),
    )
    .await;
    assert!(slow.is_err(), "the client timed out");
    assert!(started.elapsed() < Duration::from_millis(400));
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Applied even though the client gave up.
    assert_eq!(server.file_contents("fs1", "f.txt"), Some(Bytes::new()));

    server.inject(Fault::Delay {
        delay: Duration::from_millis(200),
        times: 1,
        matching: Matcher::any(),
    });
    let started = std::time::Instant::now();
    let r = send(&client, Method::HEAD, &url, &[], b"").await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(started.elapsed() >= Duration::from_millis(200));
}
