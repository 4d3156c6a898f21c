//! Listing paths page by page, and deleting paths and filesystems.

use super::*;
use crate::dfs_server::wire::JSON_TYPE;

#[tokio::test]
async fn list_pages_with_continuation() {
    let options = Options {
        page_size: 2,
        ..Options::default()
    };
    let (server, client, fs) = with_filesystem(options).await;
    for name in [
        "d/a b.txt",
        "d/b.txt",
        "d/sub/c.txt",
        "d-x/e.txt",
        "top.txt",
    ] {
        let encoded = name.replace(' ', "%20");
        create_file(&client, &format!("{fs}/{encoded}")).await;
    }
    let url = format!("{fs}/d/b.txt");
    append(&client, &url, 0, b"12345").await;
    flush(&client, &url, 5).await;

    let mut names = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut list_url = format!("{fs}?resource=filesystem&recursive=true");
        if let Some(t) = &token {
            let encoded = t
                .replace('+', "%2B")
                .replace('/', "%2F")
                .replace('=', "%3D");
            list_url.push_str(&format!("&continuation={encoded}"));
        }
        let r = send(&client, Method::GET, &list_url, &[], b"").await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.header("content-type"), Some(JSON_TYPE));
        let body = r.json();
        let paths = body["paths"].as_array().unwrap();
        assert!(paths.len() <= 2);
        for p in paths {
            names.push(p["name"].as_str().unwrap().to_owned());
            if p["name"] == "d/b.txt" {
                assert_eq!(p["contentLength"], "5");
                assert!(p.get("isDirectory").is_none());
            }
            if p["name"] == "d" {
                assert_eq!(p["isDirectory"], "true");
                assert_eq!(p["contentLength"], "0");
            }
            assert!(p["etag"].as_str().unwrap().starts_with("0x8D"));
        }
        pages += 1;
        token = r.header("x-ms-continuation").map(str::to_owned);
        if token.is_none() {
            break;
        }
    }
    assert_eq!(
        names,
        [
            "d",
            "d/a b.txt",
            "d/b.txt",
            "d/sub",
            "d/sub/c.txt",
            "d-x",
            "d-x/e.txt",
            "top.txt"
        ]
    );
    assert_eq!(pages, 4);

    // Not recursive, in a directory; maxResults below the page size.
    let list = |extra: &str| format!("{fs}?resource=filesystem&recursive=false&directory=d{extra}");
    let r = send(&client, Method::GET, &list("&maxResults=1"), &[], b"").await;
    assert_eq!(r.json()["paths"].as_array().unwrap().len(), 1);
    assert!(r.header("x-ms-continuation").is_some());
    let first = send(&client, Method::GET, &list(""), &[], b"").await;
    let token = first
        .header("x-ms-continuation")
        .unwrap()
        .replace('=', "%3D");
    let second = send(
        &client,
        Method::GET,
        &list(&format!("&continuation={token}")),
        &[],
        b"",
    )
    .await;
    assert!(second.header("x-ms-continuation").is_none());
    let names: Vec<String> = [first.json(), second.json()]
        .iter()
        .flat_map(|b| b["paths"].as_array().unwrap().clone())
        .map(|p| p["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["d/a b.txt", "d/b.txt", "d/sub"]);

    // Errors.
    let r = send(
        &client,
        Method::GET,
        &format!("{fs}?resource=filesystem"),
        &[],
        b"",
    )
    .await;
    assert_eq!(r.error_code(), Some("MissingRequiredQueryParameter"));
    let r = send(
        &client,
        Method::GET,
        &format!("{fs}?resource=filesystem&recursive=true&directory=nope"),
        &[],
        b"",
    )
    .await;
    assert_eq!(r.error_code(), Some("PathNotFound"));
    let r = send(
        &client,
        Method::GET,
        &format!("{fs}?resource=filesystem&recursive=true&continuation=a+b"),
        &[],
        b"",
    )
    .await;
    assert_eq!(r.error_code(), Some("InvalidQueryParameterValue"));
    let missing = format!(
        "{}/nofs?resource=filesystem&recursive=true",
        server.endpoint()
    );
    let r = send(&client, Method::GET, &missing, &[], b"").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.error_code(), Some("FilesystemNotFound"));
}

#[tokio::test]
async fn delete_paths_and_filesystems() {
    let (server, client, fs) = with_filesystem(Options::default()).await;
    create_file(&client, &format!("{fs}/dir/f.txt")).await;
    let r = send(&client, Method::DELETE, &format!("{fs}/dir"), &[], b"").await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert_eq!(r.error_code(), Some("DirectoryNotEmpty"));
    let r = send(
        &client,
        Method::DELETE,
        &format!("{fs}/dir?recursive=true"),
        &[],
        b"",
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = send(
        &client,
        Method::DELETE,
        &format!("{fs}/dir/f.txt"),
        &[],
        b"",
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.error_code(), Some("PathNotFound"));

    let head = send(&client, Method::HEAD, &format!("{fs}/dir/f.txt"), &[], b"").await;
    assert_eq!(head.status, StatusCode::NOT_FOUND);
    assert_eq!(head.error_code(), Some("PathNotFound"));
    assert!(head.body.is_empty());

    let r = send(
        &client,
        Method::PUT,
        &format!("{fs}?resource=filesystem"),
        &[],
        b"",
    )
    .await;
    assert_eq!(r.error_code(), Some("FilesystemAlreadyExists"));
    let r = send(
        &client,
        Method::DELETE,
        &format!("{fs}?resource=filesystem"),
        &[],
        b"",
    )
    .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    let r = send(
        &client,
        Method::PUT,
        &format!("{fs}/x?resource=file"),
        &[],
        b"",
    )
    .await;
    assert_eq!(r.error_code(), Some("FilesystemNotFound"));
    let bad = format!("{}/Bad--Name?resource=filesystem", server.endpoint());
    let r = send(&client, Method::PUT, &bad, &[], b"").await;
    assert_eq!(r.error_code(), Some("InvalidResourceName"));
}
