//! Shared harness for the end-to-end tests: where Azurite runs, unique names,
//! a spec-following DFS test server and a fault-injecting proxy.
//!
//! `cargo xtask integration` starts Azurite and the independent DFS emulator
//! and exports their endpoints through the environment variables below; a test
//! that needs one and does not find them fails with a message that says how to
//! start it. Every test that needs the DFS emulator has `dfs_emulator` in its
//! name, so that a run without the emulator skips them by that marker.

pub mod azurite;
pub mod dfs_server;
pub mod fault_proxy;
pub mod token_server;

/// Blob endpoint of the plain-HTTP Azurite, path style (`http://127.0.0.1:PORT/devstoreaccount1`).
pub const ENV_AZURITE_HTTP: &str = "ADLS_TEST_AZURITE_HTTP";
/// Blob endpoint of the HTTPS Azurite started with `--oauth basic`.
pub const ENV_AZURITE_HTTPS: &str = "ADLS_TEST_AZURITE_HTTPS";
/// PEM file of the CA that signed the HTTPS Azurite's certificate.
pub const ENV_CA_PEM: &str = "ADLS_TEST_CA_PEM";
/// Directory holding the installed Azurite (`node_modules/.bin/azurite-blob` under it),
/// for tests that start and stop their own instance.
pub const ENV_AZURITE_DIR: &str = "ADLS_TEST_AZURITE_DIR";

/// Account endpoint of the independent DFS emulator (Azurite built from
/// Azure/Azurite pull request #2635), path style, Blob and DFS on the same port:
/// `http://127.0.0.1:PORT/devstoreaccount1`.
pub const ENV_AZURITE_DFS: &str = "ADLS_TEST_AZURITE_DFS";
/// The DFS emulator's `main.js`, for tests that start an instance of their own
/// ([`azurite::OwnAzurite::start_dfs_emulator`]).
pub const ENV_AZURITE_DFS_MAIN: &str = "ADLS_TEST_AZURITE_DFS_MAIN";
/// A Node.js 22+ binary that runs the DFS emulator.
pub const ENV_NODE22: &str = "ADLS_TEST_NODE22";

/// Azurite's well-known development account.
pub const AZURITE_ACCOUNT: &str = "devstoreaccount1";
/// Azurite's well-known development account key (public, documented by Microsoft).
pub const AZURITE_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// Reads a variable exported by `cargo xtask integration`, panicking with instructions if absent.
pub fn required_env(name: &str) -> String {
    match std::env::var(name) {
        Ok(v) if !v.is_empty() => v,
        _ => panic!(
            "{name} is not set: these tests need Azurite. Run them with `cargo xtask integration` \
             (it installs Azurite from npm, starts it on free loopback ports and exports {name})."
        ),
    }
}

/// Reads a variable that `cargo xtask integration` exports only when the
/// independent DFS emulator is available, panicking with instructions if absent.
/// Tests calling it must carry `dfs_emulator` in their name.
pub fn required_dfs_emulator_env(name: &str) -> String {
    match std::env::var(name) {
        Ok(v) if !v.is_empty() => v,
        _ => panic!(
            "{name} is not set: this test needs the independent DFS emulator (Azurite with the \
             ADLS Gen2 endpoint, ../shared/azurite-dfs/). Run it with `cargo xtask integration` \
             (it installs Node.js 22 and the emulator under target/, starts it on a free \
             loopback port and exports {name}); without the tarball, xtask skips the tests \
             named `dfs_emulator`."
        ),
    }
}

/// The endpoint of the shared DFS emulator instance ([`ENV_AZURITE_DFS`]).
pub fn dfs_emulator_endpoint() -> String {
    required_dfs_emulator_env(ENV_AZURITE_DFS)
}

/// A fresh, valid container / filesystem name, unique per call (tests run in parallel and rerun).
pub fn unique_name(prefix: &str) -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    format!("{prefix}-{}", &id[..16])
}

/// A retry policy with short waits, so fault tests run quickly.
pub fn fast_retry() -> adls_rest::RetryPolicy {
    adls_rest::RetryPolicy {
        max_attempts: 6,
        initial_backoff: std::time::Duration::from_millis(10),
        max_backoff: std::time::Duration::from_millis(200),
        max_retry_after: std::time::Duration::from_secs(2),
        deadline: std::time::Duration::from_secs(30),
    }
}

/// A Shared Key client for an emulator-style (path-style) endpoint such as
/// Azurite's or the DFS test server's, speaking `dialect`.
pub fn emulator_client(endpoint: &str, dialect: adls_rest::Dialect) -> adls_rest::Client {
    let account = adls_rest::Account::emulator(endpoint).expect("emulator endpoint");
    let credential = adls_rest::Credential::shared_key(AZURITE_KEY).expect("well-known key");
    adls_rest::Client::builder(account, credential)
        .dialect(dialect)
        .retry(fast_retry())
        .build()
        .expect("client")
}

/// Every NDJSON line of every file in `fs` (decoded where the name ends in
/// `.gz` or `.zst`), parsed, in no particular order. Parquet files are read
/// by the reader tests (`readers.rs`), with readers nobody here wrote.
pub async fn read_all_records(fs: &adls_rest::FileSystem) -> Vec<serde_json::Value> {
    use std::io::Read as _;
    let items = fs
        .list_all(adls_rest::ListOptions {
            recursive: true,
            ..Default::default()
        })
        .await
        .expect("list files");
    let mut out = Vec::new();
    for item in items.into_iter().filter(|i| !i.is_directory) {
        let body = fs
            .file(&item.name)
            .expect("path")
            .read()
            .await
            .expect("read file");
        assert!(
            !item.name.ends_with(".parquet"),
            "{}: read Parquet with a real reader",
            item.name
        );
        let text = if item.name.ends_with(".gz") {
            let mut s = String::new();
            flate2::read::MultiGzDecoder::new(&body[..])
                .read_to_string(&mut s)
                .expect("gzip");
            s
        } else if item.name.ends_with(".zst") {
            String::from_utf8(zstd::stream::decode_all(&body[..]).expect("zstd")).expect("utf-8")
        } else {
            String::from_utf8(body.to_vec()).expect("utf-8")
        };
        for line in text.lines().filter(|l| !l.is_empty()) {
            out.push(
                serde_json::from_str(line)
                    .unwrap_or_else(|e| panic!("{}: bad line {e}: {line}", item.name)),
            );
        }
    }
    out
}

/// Asserts that `records` hold each id of `expected` exactly once and nothing else.
pub fn assert_exactly_once(
    records: &[serde_json::Value],
    expected: &std::collections::HashSet<String>,
) {
    let mut seen = std::collections::HashMap::<String, usize>::new();
    for r in records {
        let id = r["id"].as_str().expect("record has an id").to_string();
        *seen.entry(id).or_default() += 1;
    }
    let dup: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).take(5).collect();
    assert!(dup.is_empty(), "duplicated records (first 5): {dup:?}");
    let missing: Vec<_> = expected
        .iter()
        .filter(|id| !seen.contains_key(*id))
        .take(5)
        .collect();
    let missing_n = expected.iter().filter(|id| !seen.contains_key(*id)).count();
    assert!(
        missing.is_empty(),
        "{missing_n} records lost (first 5): {missing:?}"
    );
    let extra: Vec<_> = seen
        .keys()
        .filter(|id| !expected.contains(*id))
        .take(5)
        .collect();
    assert!(extra.is_empty(), "unexpected records: {extra:?}");
}

/// A realistic gateway record with the given id.
pub fn sample_record(id: &str, i: u64) -> serde_json::Value {
    let model = ["gpt-4o-mini", "claude-3-5-sonnet", "llama-3.1-70b"][(i % 3) as usize];
    serde_json::json!({
        "id": id,
        "trace_id": format!("trace-{}", i / 3),
        "call_type": "acompletion",
        "status": if i.is_multiple_of(17) { "failure" } else { "success" },
        "model": model,
        "model_group": "default",
        "custom_llm_provider": "openai",
        "api_base": "https://api.openai.com/v1",
        "prompt_tokens": 100 + i % 400,
        "completion_tokens": 20 + i % 200,
        "total_tokens": 120 + i % 400 + i % 200,
        "response_cost": 0.000123 * (i % 10) as f64,
        "startTime": 1_732_000_000.0 + i as f64 * 0.01,
        "endTime": 1_732_000_000.5 + i as f64 * 0.01,
        "cache_hit": false,
        "end_user": format!("user-{}", i % 50),
        "request_tags": ["prod", "team-a"],
        "metadata": {"user_api_key_team_id": "team-a", "user_api_key_alias": "svc"},
        "messages": [{"role": "user", "content": format!("question number {i}: what is the capital of France?")}],
        "response": {"choices": [{"message": {"role": "assistant", "content": "Paris."}}]},
    })
}

/// Builds a binary of the workspace with `cargo build --quiet ARGS` (debug
/// profile) and returns `<target>/debug/<relative>`.
pub fn cargo_build(args: &[&str], relative: &str) -> std::path::PathBuf {
    let workspace = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests package lives inside the workspace");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = std::process::Command::new(cargo);
    cmd.arg("build")
        .arg("--quiet")
        .args(args)
        .current_dir(workspace);
    // The test process carries this package's `CARGO_PKG_*` / `CARGO_MANIFEST_*`;
    // a nested cargo that inherits them rebuilds dependencies with build scripts.
    for (key, _) in std::env::vars_os() {
        let k = key.to_string_lossy();
        if k.starts_with("CARGO_PKG_")
            || k.starts_with("CARGO_MANIFEST_")
            || k == "CARGO_CRATE_NAME"
            || k == "CARGO_PRIMARY_PACKAGE"
        {
            cmd.env_remove(&key);
        }
    }
    let status = cmd
        .status()
        .unwrap_or_else(|e| panic!("running `{cmd:?}`: {e}"));
    assert!(status.success(), "`{cmd:?}` failed: {status}");
    let target = match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => workspace.join(dir), // an absolute `dir` replaces `workspace`
        None => workspace.join("target"),
    };
    let binary = target
        .join("debug")
        .join(format!("{relative}{}", std::env::consts::EXE_SUFFIX));
    assert!(binary.is_file(), "no binary at {}", binary.display());
    binary
}
