//! Shared harness for the end-to-end tests: where Azurite runs, unique names,
//! a spec-following DFS test server and a fault-injecting proxy.
//!
//! `cargo xtask integration` starts Azurite and exports its endpoints through
//! the environment variables below; a test that needs Azurite and does not find
//! them fails with a message that says how to start it.

pub mod dfs_server;
pub mod fault_proxy;

/// Blob endpoint of the plain-HTTP Azurite, path style (`http://127.0.0.1:PORT/devstoreaccount1`).
pub const ENV_AZURITE_HTTP: &str = "ADLS_TEST_AZURITE_HTTP";
/// Blob endpoint of the HTTPS Azurite started with `--oauth basic`.
pub const ENV_AZURITE_HTTPS: &str = "ADLS_TEST_AZURITE_HTTPS";
/// PEM file of the CA that signed the HTTPS Azurite's certificate.
pub const ENV_CA_PEM: &str = "ADLS_TEST_CA_PEM";
/// Directory holding the installed Azurite (`node_modules/.bin/azurite-blob` under it),
/// for tests that start and stop their own instance.
pub const ENV_AZURITE_DIR: &str = "ADLS_TEST_AZURITE_DIR";

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
