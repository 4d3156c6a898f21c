//! What every answer carries, and what every request must carry.

use super::*;
use crate::dfs_server::wire::parse_http_date;

#[tokio::test]
async fn every_answer_carries_the_service_headers_and_auth_is_enforced() {
    let (server, client, fs) = with_filesystem(Options::default()).await;
    let url = format!("{fs}/f.txt?resource=file");

    let r = send(
        &client,
        Method::PUT,
        &url,
        &[("x-ms-client-request-id", "abc-123")],
        b"",
    )
    .await;
    let id = r.header("x-ms-request-id").unwrap();
    assert!(uuid::Uuid::parse_str(id).is_ok(), "{id}");
    assert_eq!(r.header("x-ms-version"), Some("2023-11-03"));
    assert_eq!(r.header("x-ms-client-request-id"), Some("abc-123"));
    assert!(parse_http_date(r.header("date").unwrap()).is_some());
    assert_eq!(r.headers.get_all("date").iter().count(), 1);

    let r = send(&client, Method::PUT, &url, &[("authorization", "")], b"").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.error_code(), Some("NoAuthenticationInformation"));
    assert!(r.header("www-authenticate").is_some());
    let other = format!("SharedKey someoneelse:{}", B64.encode([0u8; 32]));
    let r = send(
        &client,
        Method::PUT,
        &url,
        &[("authorization", &other)],
        b"",
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(r.error_code(), Some("AuthenticationFailed"));
    let r = send(
        &client,
        Method::PUT,
        &url,
        &[("authorization", "Basic abc")],
        b"",
    )
    .await;
    assert_eq!(r.error_code(), Some("InvalidAuthenticationInfo"));
    let r = send(
        &client,
        Method::PUT,
        &url,
        &[("authorization", "Bearer eyJ0eXAi")],
        b"",
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let r = send(&client, Method::PUT, &url, &[("x-ms-version", "")], b"").await;
    assert_eq!(r.error_code(), Some("MissingRequiredHeader"));
    let r = send(
        &client,
        Method::PUT,
        &url,
        &[("x-ms-version", "2017-11-09")],
        b"",
    )
    .await;
    assert_eq!(r.error_code(), Some("UnsupportedRestVersion"));
    let r = send(&client, Method::PUT, &format!("{url}&bogus=1"), &[], b"").await;
    assert_eq!(r.error_code(), Some("UnsupportedQueryParameter"));
    let r = send(
        &client,
        Method::PATCH,
        &format!("{fs}/f.txt?action=append"),
        &[],
        b"x",
    )
    .await;
    assert_eq!(r.error_code(), Some("MissingRequiredQueryParameter"));
    let r = send(
        &client,
        Method::PATCH,
        &format!("{fs}/f.txt?action=append&position=-1"),
        &[],
        b"x",
    )
    .await;
    assert_eq!(r.error_code(), Some("InvalidQueryParameterValue"));

    let recorded = server.requests();
    let last = recorded.last().unwrap();
    assert_eq!(last.method, Method::PATCH);
    assert_eq!(
        last.uri.to_string(),
        "/devstoreaccount1/fs1/f.txt?action=append&position=-1"
    );
    assert_eq!(last.query("position").as_deref(), Some("-1"));
    assert_eq!(&last.body[..], b"x");
}
