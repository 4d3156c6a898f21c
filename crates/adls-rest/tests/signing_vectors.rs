//! Checks our Shared Key signer against vectors captured from Microsoft's
//! official Python SDK (`cargo xtask vectors`; see `xtask/vectors/generate.py`).
//!
//! Every `*.json` file under `tests/vectors/` is checked, and, when
//! `ADLS_SIGNING_VECTORS_DIR` is set, every `*.json` file in that directory
//! too (a directory that holds none is an error). Each vector is signed from
//! its method, URL and headers and compared with the SDK's `Authorization`
//! value exactly; a mismatch reports the string-to-sign we computed.

use std::path::{Path, PathBuf};

use adls_rest::secret::AccountKey;
use adls_rest::sign;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Uri};

#[derive(serde::Deserialize)]
struct Vector {
    name: String,
    account: String,
    key: String,
    method: String,
    url: String,
    headers: Vec<(String, String)>,
    authorization: String,
}

fn json_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot read vector directory {}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    files
}

fn check_file(path: &Path) -> (usize, Vec<String>) {
    let text = std::fs::read_to_string(path).expect("read vector file");
    let vectors: Vec<Vector> = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{} is not a vector file: {e}", path.display()));
    let mut failures = Vec::new();
    for v in &vectors {
        let key = AccountKey::from_base64(&v.key).expect("vector key is base64");
        let method: Method = v.method.parse().expect("method");
        let uri: Uri = v.url.parse().expect("url");
        let mut headers = HeaderMap::new();
        for (n, val) in &v.headers {
            headers.append(
                HeaderName::from_bytes(n.as_bytes()).expect("header name"),
                HeaderValue::from_str(val).expect("header value"),
            );
        }
        let ours = sign::authorization(&v.account, &key, &method, &uri, &headers);
        let ours = ours.to_str().expect("ascii");
        if ours != v.authorization {
            failures.push(format!(
                "{}: {}\n  string-to-sign:\n{}",
                path.display(),
                v.name,
                sign::string_to_sign(&v.account, &method, &uri, &headers)
            ));
        }
    }
    (vectors.len(), failures)
}

#[test]
fn signing_vectors() {
    let mut dirs = vec![(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors"),
        true,
    )];
    if let Ok(extra) = std::env::var("ADLS_SIGNING_VECTORS_DIR") {
        dirs.push((PathBuf::from(extra), true));
    }
    let mut checked = 0;
    let mut failures = Vec::new();
    for (dir, must_have) in dirs {
        let files = json_files(&dir);
        let mut in_dir = 0;
        for f in files {
            let (n, mut fails) = check_file(&f);
            in_dir += n;
            failures.append(&mut fails);
        }
        assert!(
            !must_have || in_dir > 0,
            "{} holds no signing vectors (*.json)",
            dir.display()
        );
        checked += in_dir;
    }
    println!("checked {checked} signing vectors");
    assert!(
        failures.is_empty(),
        "{} of {checked} vectors disagree with Microsoft's SDK:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
