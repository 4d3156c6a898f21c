//! Each [`Action`]: pass, injected status, reset, dropped response, delay.

use http::{header, HeaderName, HeaderValue};

use super::*;

#[tokio::test]
async fn pass_forwards_request_and_response_unchanged() {
    let upstream = Upstream::start().await;
    let proxy = FaultProxy::start(&upstream.url()).await;
    let client = client();
    let body = pseudo_random(3 << 20, 7);
    let target = "/devstoreaccount1/logs/a%20b%2Fc.json?comp=block&blockid=QUJD%3D&x=%C3%A9";
    let sent: Vec<(&str, &str)> = vec![
        ("host", "127.0.0.1:10000"),
        (
            "authorization",
            "SharedKey devstoreaccount1:c2lnbmF0dXJl+/=",
        ),
        ("x-ms-version", "2025-11-05"),
        ("x-ms-date", "Tue, 01 Jul 2025 12:00:00 GMT"),
        ("x-ms-meta-Mixed_Case-1", "v1"),
        ("x-ms-meta-Mixed_Case-1", "v2"),
        ("content-type", "application/octet-stream"),
        ("content-md5", "1B2M2Y8AsgTpgAmY7PhCfg=="),
        ("if-none-match", "*"),
    ];
    let mut req = put(&proxy, target, body.clone());
    for (name, value) in &sent {
        req.headers_mut().append(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_static(value),
        );
    }

    let answer = send(&client, req).await.unwrap();

    let seen = upstream.seen();
    assert_eq!(seen.len(), 1);
    let got = &seen[0];
    assert_eq!(got.method, Method::PUT);
    assert_eq!(
        got.target, target,
        "path and query must be forwarded byte for byte"
    );
    assert_eq!(got.body, body, "body must be forwarded byte for byte");
    for (name, _) in &sent {
        let want: Vec<_> = sent
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| *v)
            .collect();
        let have: Vec<_> = got
            .headers
            .get_all(*name)
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect();
        assert_eq!(have, want, "header {name}");
    }
    assert_eq!(
        got.headers.get("content-length").unwrap(),
        &body.len().to_string()
    );
    assert_eq!(
        got.headers.len(),
        sent.len() + 1,
        "no header added or lost: {:?}",
        got.headers
    );

    assert_eq!(answer.status, StatusCode::CREATED);
    assert_eq!(answer.headers.get("etag").unwrap(), "\"0x8DC0FFEE\"");
    assert_eq!(answer.headers.get("x-ms-request-id").unwrap(), "upstream-1");
    assert_eq!(
        answer.headers.get("x-upstream-custom").unwrap(),
        "Value  With\tSpaces"
    );
    let cookies: Vec<_> = answer.headers.get_all("set-cookie").iter().collect();
    assert_eq!(cookies, ["a=1", "b=2"]);
    assert_eq!(&answer.body[..5], b"echo:");
    assert_eq!(answer.body.slice(5..), body);

    // Keep-alive: further requests reuse the client's connection.
    for _ in 0..3 {
        assert_eq!(
            send(&client, get(&proxy, "/x")).await.unwrap().status,
            StatusCode::CREATED
        );
    }
    let stats = proxy.stats();
    assert_eq!(
        stats,
        Stats {
            connections: 1,
            requests: 4,
            forwarded: 4,
            ..Stats::default()
        }
    );
}

#[tokio::test]
async fn status_is_answered_without_reaching_upstream() {
    let upstream = Upstream::start().await;
    let proxy = FaultProxy::start(&upstream.url()).await;
    let client = client();

    proxy.set_plan(Plan::new().rule(Rule::new(Action::server_busy())));
    let mut req = put(
        &proxy,
        "/devstoreaccount1/c/b?comp=block",
        pseudo_random(100_000, 1),
    );
    req.headers_mut()
        .insert("x-ms-version", HeaderValue::from_static("2025-11-05"));
    let answer = send(&client, req).await.unwrap();
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(answer.headers.get("x-ms-error-code").unwrap(), "ServerBusy");
    assert_eq!(answer.headers.get("x-ms-version").unwrap(), "2025-11-05");
    assert_eq!(
        answer.headers.get("content-type").unwrap(),
        "application/xml"
    );
    let request_id = answer
        .headers
        .get("x-ms-request-id")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(request_id.len(), 36);
    let text = String::from_utf8(answer.body.to_vec()).unwrap();
    assert!(text.starts_with("<?xml version=\"1.0\" encoding=\"utf-8\"?><Error><Code>ServerBusy</Code><Message>The server is busy.\nRequestId:"), "{text}");
    assert!(
        text.contains(&request_id) && text.ends_with("Z</Message></Error>"),
        "{text}"
    );
    assert!(answer.headers.get(header::RETRY_AFTER).is_none());

    proxy.set_plan(
        Plan::new().rule(Rule::new(Action::too_many_requests(Duration::from_millis(
            1500,
        )))),
    );
    let answer = send(&client, get(&proxy, "/devstoreaccount1/c/b"))
        .await
        .unwrap();
    assert_eq!(answer.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(answer.headers.get(header::RETRY_AFTER).unwrap(), "2");
    assert_eq!(
        answer.headers.get("x-ms-error-code").unwrap(),
        "TooManyRequests"
    );

    proxy.set_error_format(ErrorFormat::Json);
    proxy.set_plan(Plan::new().rule(Rule::new(Action::Status {
        status: 500,
        code: "Internal<&>Error".to_owned(),
        retry_after: None,
        retry_after_ms: Some(250),
    })));
    let answer = send(
        &client,
        get(&proxy, "/fs/dir/file?action=append&position=0"),
    )
    .await
    .unwrap();
    assert_eq!(answer.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(answer.headers.get("retry-after-ms").unwrap(), "250");
    assert_eq!(answer.headers.get("x-ms-retry-after-ms").unwrap(), "250");
    let json: serde_json::Value = serde_json::from_slice(&answer.body).unwrap();
    assert_eq!(json["error"]["code"], "Internal<&>Error");

    assert!(
        upstream.seen().is_empty(),
        "an injected status must not reach the upstream"
    );
    let stats = proxy.stats();
    assert_eq!(stats.statuses, 3);
    assert_eq!(
        stats.statuses_by_code,
        BTreeMap::from([(429, 1), (500, 1), (503, 1)])
    );
    assert_eq!(
        (stats.requests, stats.forwarded, stats.connections),
        (3, 0, 1),
        "connection kept alive"
    );
}

#[tokio::test]
async fn reset_mid_request_fails_the_client_and_reaches_nothing() {
    let upstream = Upstream::start().await;
    let proxy = FaultProxy::start(&upstream.url()).await;
    let client = client();
    proxy.set_plan(Plan::new().rule(Rule::new(Action::ResetMidRequest)));

    let error = send(&client, get(&proxy, "/devstoreaccount1/c/b"))
        .await
        .unwrap_err();
    assert!(is_connection_reset(&error), "expected a reset, got {error}");
    let error = send(
        &client,
        put(
            &proxy,
            "/devstoreaccount1/c/b?comp=block",
            pseudo_random(8 << 20, 2),
        ),
    )
    .await
    .unwrap_err();
    assert!(is_connection_reset(&error), "expected a reset, got {error}");

    assert!(
        upstream.seen().is_empty(),
        "a reset request must not reach the upstream"
    );
    let stats = proxy.stats();
    assert_eq!(
        (
            stats.requests,
            stats.resets,
            stats.forwarded,
            stats.connections
        ),
        (2, 2, 0, 2)
    );
}

#[tokio::test]
async fn drop_response_fails_the_client_after_upstream_acted() {
    let upstream = Upstream::start().await;
    let proxy = FaultProxy::start(&upstream.url()).await;
    let client = client();
    proxy.set_plan(Plan::new().rule(Rule::new(Action::DropResponse).method(Method::PUT)));

    let body = pseudo_random(1 << 20, 3);
    let error = send(
        &client,
        put(
            &proxy,
            "/devstoreaccount1/c/b?comp=appendblock",
            body.clone(),
        ),
    )
    .await
    .unwrap_err();
    assert!(
        error.contains("IncompleteMessage") || is_connection_reset(&error),
        "{error}"
    );

    let seen = upstream.seen();
    assert_eq!(seen.len(), 1, "the upstream must have received the request");
    assert_eq!(seen[0].body, body);
    let stats = proxy.stats();
    assert_eq!((stats.dropped_responses, stats.forwarded), (1, 1));

    // The rule matches PUT only: a GET passes on a fresh connection.
    assert_eq!(
        send(&client, get(&proxy, "/x")).await.unwrap().status,
        StatusCode::CREATED
    );
    assert_eq!(proxy.stats().connections, 2);
}

#[tokio::test]
async fn delay_forwards_late_even_when_the_client_gave_up() {
    let upstream = Upstream::start().await;
    let proxy = FaultProxy::start(&upstream.url()).await;
    let client = client();
    proxy.set_plan(Plan::new().rule(Rule::new(Action::Delay(Duration::from_millis(300)))));

    let started = tokio::time::Instant::now();
    assert_eq!(
        send(&client, get(&proxy, "/a")).await.unwrap().status,
        StatusCode::CREATED
    );
    assert!(started.elapsed() >= Duration::from_millis(300));

    let gave_up =
        tokio::time::timeout(Duration::from_millis(50), send(&client, get(&proxy, "/b"))).await;
    assert!(gave_up.is_err(), "the client should have timed out");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while upstream.seen().len() < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the delayed request never reached the upstream"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(upstream.seen()[1].target, "/b");
    assert_eq!(proxy.stats().delayed, 2);
}
