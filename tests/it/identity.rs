//! Microsoft Entra ID credentials (`adls_rest::identity`) against the loopback
//! token server (`adls_tests::token_server`), a stand-in `az` script, the DFS
//! test server (storage 401 → forced refresh) and Azurite over HTTPS with
//! `--oauth basic` (a file written with each credential kind).
//!
//! Nothing here reads or changes the process environment: `from_env` parsing
//! goes through an injected lookup, and the Azure CLI stand-in is given by path.
//! Every endpoint is on 127.0.0.1.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use adls_rest::credential::{TokenCache, TokenCredential, STORAGE_SCOPE};
use adls_rest::identity::{
    AzureCliCredential, ClientSecretCredential, DefaultAzureCredential,
    DefaultAzureCredentialOptions, EntraOptions, IdentityError, ManagedIdentityCredential,
    ManagedIdentityEndpoint, ManagedIdentityOptions, TokenHttpOptions, UserAssignedId,
    WorkloadIdentityCredential,
};
use adls_rest::secret::Secret;
use adls_rest::{
    Account, Client, CreateOptions, Credential, Dialect, Error, ErrorKind, RetryPolicy,
};
use adls_tests::dfs_server::{DfsServer, Fault as DfsFault, Matcher};
use adls_tests::token_server::{
    federated_token, unsigned_jwt, Config, Endpoint, Fault, TokenServer, JWT_BEARER,
    STORAGE_RESOURCE,
};
use adls_tests::{fast_retry, required_env, unique_name, ENV_AZURITE_HTTPS, ENV_CA_PEM};
use bytes::Bytes;
use time::OffsetDateTime;

// ---------------------------------------------------------------------------
// helpers
// ---------------------------------------------------------------------------

/// Quick retries and timeouts, so fault tests finish fast.
fn fast_http() -> TokenHttpOptions {
    TokenHttpOptions {
        connect_timeout: Duration::from_secs(1),
        request_timeout: Duration::from_secs(5),
        retry: RetryPolicy {
            max_attempts: 3,
            initial_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(50),
            max_retry_after: Duration::from_millis(100),
            deadline: Duration::from_secs(10),
        },
        extra_root_pem: None,
    }
}

fn entra(server: &TokenServer) -> EntraOptions {
    EntraOptions {
        authority_host: server.url(),
        http: fast_http(),
    }
}

fn secret_credential(server: &TokenServer) -> ClientSecretCredential {
    let c = server.config();
    ClientSecretCredential::with_options(&c.tenant_id, &c.client_id, c.client_secret, entra(server))
        .expect("client secret credential")
}

fn imds_credential(server: &TokenServer, id: Option<UserAssignedId>) -> ManagedIdentityCredential {
    ManagedIdentityCredential::new(ManagedIdentityOptions {
        endpoint: ManagedIdentityEndpoint::Imds { base: server.url() },
        user_assigned: id,
        http: fast_http(),
    })
    .expect("IMDS credential")
}

fn app_service_credential(
    server: &TokenServer,
    header: &str,
    id: Option<UserAssignedId>,
) -> ManagedIdentityCredential {
    ManagedIdentityCredential::new(ManagedIdentityOptions {
        endpoint: ManagedIdentityEndpoint::AppService {
            endpoint: server.app_service_endpoint(),
            header: Secret::new(header),
        },
        user_assigned: id,
        http: fast_http(),
    })
    .expect("App Service credential")
}

fn lookup(pairs: &[(&str, String)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

/// A loopback URL nobody listens on.
fn closed_port_url() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    drop(l);
    format!("http://127.0.0.1:{port}")
}

/// A fresh scratch directory under the system temp dir.
fn scratch_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "adls-identity-{tag}-{}",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// Writes an executable stand-in for `az` that logs its calls to `calls` next
/// to it, checks its arguments and `TZ=UTC`, then runs `body`.
fn fake_az(dir: &Path, body: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt as _;
    let path = dir.join("az");
    let calls = dir.join("calls");
    let script = format!(
        "#!/bin/sh\n\
         # A stand-in for the Azure CLI.\n\
         echo \"$*\" >> '{calls}'\n\
         if [ \"$*\" != 'account get-access-token --resource {STORAGE_RESOURCE} --output json' ]; then\n\
           echo \"ERROR: unexpected arguments: $*\" >&2; exit 2\n\
         fi\n\
         if [ \"$TZ\" != UTC ]; then echo 'ERROR: TZ is not UTC' >&2; exit 3; fi\n\
         {body}\n",
        calls = calls.display()
    );
    std::fs::write(&path, script).expect("write fake az");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    path
}

fn az_calls(dir: &Path) -> usize {
    std::fs::read_to_string(dir.join("calls"))
        .map(|s| s.lines().count())
        .unwrap_or(0)
}

/// The Azure CLI's documented output, with both expiry forms.
fn az_output(token: &str, expires_on: i64) -> String {
    let local = OffsetDateTime::from_unix_timestamp(expires_on).expect("ts");
    let fmt = time::macros::format_description!(
        "[year]-[month]-[day] [hour]:[minute]:[second].[subsecond digits:6]"
    );
    serde_json::json!({
        "accessToken": token,
        "expiresOn": local.format(&fmt).expect("format"),
        "expires_on": expires_on,
        "subscription": "00000000-0000-0000-0000-00000000abcd",
        "tenant": "72f988bf-86f1-41af-91ab-2d7cd011db47",
        "tokenType": "Bearer",
    })
    .to_string()
}

fn identity_error(e: &Error) -> &IdentityError {
    IdentityError::of(e).unwrap_or_else(|| panic!("no IdentityError behind {e:?}"))
}

// ---------------------------------------------------------------------------
// client secret
// ---------------------------------------------------------------------------

#[tokio::test]
async fn client_secret_sends_the_documented_form_and_uses_expires_in() {
    let server = TokenServer::start(Config::default()).await;
    let c = server.config();
    let cred = secret_credential(&server);
    let before = OffsetDateTime::now_utc();
    let t = cred.get_token(STORAGE_SCOPE).await.expect("token");
    assert_eq!(t.token.expose_secret(), server.issued()[0]);
    let lifetime = t.expires_on - before;
    assert!(
        lifetime > time::Duration::seconds(3590) && lifetime <= time::Duration::seconds(3600),
        "expiry from expires_in=3599: {lifetime}"
    );
    let reqs = server.requests();
    assert_eq!(reqs.len(), 1);
    let (ep, r) = &reqs[0];
    assert_eq!(*ep, Endpoint::Entra);
    assert_eq!(r.method, http::Method::POST);
    assert_eq!(r.path, format!("/{}/oauth2/v2.0/token", c.tenant_id));
    assert_eq!(
        r.headers["content-type"],
        "application/x-www-form-urlencoded"
    );
    assert_eq!(r.form("grant_type"), Some("client_credentials"));
    assert_eq!(r.form("client_id"), Some(c.client_id.as_str()));
    assert_eq!(r.form("client_secret"), Some(c.client_secret.as_str()));
    assert_eq!(r.form("scope"), Some(STORAGE_SCOPE));
    assert_eq!(r.form("client_assertion"), None);
}

#[tokio::test]
async fn invalid_client_is_a_typed_credential_error_without_the_secret() {
    let server = TokenServer::start(Config::default()).await;
    let c = server.config();
    let wrong = "wrong-secret-value-0123456789";
    let cred =
        ClientSecretCredential::with_options(&c.tenant_id, &c.client_id, wrong, entra(&server))
            .expect("credential");
    let e = cred
        .get_token(STORAGE_SCOPE)
        .await
        .expect_err("wrong secret");
    eprintln!("{e}");
    assert_eq!(e.kind(), ErrorKind::Credential);
    assert!(!e.is_retryable());
    let ie = identity_error(&e);
    assert_eq!(ie.credential(), "ClientSecretCredential");
    assert_eq!(ie.status(), Some(401));
    assert_eq!(ie.code(), Some("invalid_client"));
    assert!(
        ie.description()
            .expect("description")
            .starts_with("AADSTS7000215: Invalid client secret provided."),
        "{ie:?}"
    );
    assert!(
        !ie.description().expect("d").contains("Trace ID"),
        "first line only"
    );
    assert_eq!(ie.error_codes(), &[7000215]);
    assert!(ie.trace_id().is_some() && ie.correlation_id().is_some());
    assert!(!ie.is_unavailable());
    let shown = format!("{e} | {e:?} | {cred:?}");
    assert!(
        shown.contains("invalid_client") && shown.contains("AADSTS7000215"),
        "{shown}"
    );
    assert!(!shown.contains(wrong), "{shown}");
    assert!(!shown.contains(&c.client_secret), "{shown}");
    assert_eq!(server.count(Endpoint::Entra), 1, "a refusal is not retried");
}

#[tokio::test]
async fn invalid_request_for_an_unknown_tenant_and_an_unknown_client() {
    let server = TokenServer::start(Config::default()).await;
    let c = server.config();
    let other_tenant = ClientSecretCredential::with_options(
        "contoso.onmicrosoft.com",
        &c.client_id,
        c.client_secret.clone(),
        entra(&server),
    )
    .expect("credential");
    let e = other_tenant
        .get_token(STORAGE_SCOPE)
        .await
        .expect_err("tenant");
    let ie = identity_error(&e);
    assert_eq!(ie.code(), Some("invalid_request"));
    assert!(
        ie.description().expect("d").starts_with("AADSTS90002"),
        "{e}"
    );
    assert_eq!(ie.status(), Some(400));

    let other_client = ClientSecretCredential::with_options(
        &c.tenant_id,
        "00000000-0000-0000-0000-000000000000",
        c.client_secret.clone(),
        entra(&server),
    )
    .expect("credential");
    let e = other_client
        .get_token(STORAGE_SCOPE)
        .await
        .expect_err("client");
    assert_eq!(
        identity_error(&e).code(),
        Some("unauthorized_client"),
        "{e}"
    );
}

#[tokio::test]
async fn slow_token_endpoint_times_out() {
    let server = TokenServer::start(Config::default()).await;
    server.inject(Fault::Slow(Duration::from_secs(3)), 1);
    let c = server.config();
    let mut options = entra(&server);
    options.http.request_timeout = Duration::from_millis(200);
    options.http.retry.max_attempts = 1;
    let cred = ClientSecretCredential::with_options(
        &c.tenant_id,
        &c.client_id,
        c.client_secret.clone(),
        options,
    )
    .expect("credential");
    let started = Instant::now();
    let e = cred.get_token(STORAGE_SCOPE).await.expect_err("timeout");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(e.kind(), ErrorKind::Credential);
    let s = e.to_string();
    assert!(s.contains("no answer from the token endpoint"), "{s}");
    assert!(s.contains("no complete answer within 200 ms"), "{s}");
}

#[tokio::test]
async fn slow_then_good_answer_is_retried() {
    let server = TokenServer::start(Config::default()).await;
    server.inject(Fault::Slow(Duration::from_secs(3)), 1);
    server.inject(Fault::Status(503), 1);
    let c = server.config();
    let mut options = entra(&server);
    options.http.request_timeout = Duration::from_millis(300);
    let cred = ClientSecretCredential::with_options(
        &c.tenant_id,
        &c.client_id,
        c.client_secret.clone(),
        options,
    )
    .expect("credential");
    cred.get_token(STORAGE_SCOPE)
        .await
        .expect("third attempt succeeds");
    assert_eq!(server.count(Endpoint::Entra), 3);
}

#[tokio::test]
async fn persistent_503_gives_up_with_the_code() {
    let server = TokenServer::start(Config::default()).await;
    server.inject(Fault::Status(503), 10);
    let cred = secret_credential(&server);
    let e = cred.get_token(STORAGE_SCOPE).await.expect_err("503");
    let ie = identity_error(&e);
    assert_eq!(ie.status(), Some(503));
    assert_eq!(ie.code(), Some("temporarily_unavailable"));
    assert_eq!(server.count(Endpoint::Entra), 3, "max_attempts");
}

#[tokio::test]
async fn malformed_json_is_a_typed_error() {
    let server = TokenServer::start(Config::default()).await;
    server.inject(Fault::MalformedJson, 1);
    let cred = secret_credential(&server);
    let e = cred.get_token(STORAGE_SCOPE).await.expect_err("malformed");
    assert_eq!(e.kind(), ErrorKind::Credential);
    let s = e.to_string();
    assert!(
        s.contains("answered 200 with something that is not a token"),
        "{s}"
    );
    assert!(s.contains("not JSON"), "{s}");
    assert_eq!(identity_error(&e).status(), None);
}

#[tokio::test]
async fn unreachable_token_endpoint_is_a_credential_error() {
    let mut options = EntraOptions {
        authority_host: closed_port_url(),
        http: fast_http(),
    };
    options.http.retry.max_attempts = 2;
    let cred = ClientSecretCredential::with_options("t1", "app", "s3cr3t-value-xyz", options)
        .expect("credential");
    let e = cred.get_token(STORAGE_SCOPE).await.expect_err("refused");
    assert_eq!(e.kind(), ErrorKind::Credential);
    assert!(e.to_string().contains("could not connect"), "{e}");
}

#[tokio::test]
async fn an_endpoint_echoing_secrets_is_redacted() {
    let server = TokenServer::start(Config::default()).await;
    server.inject(Fault::EchoSecrets, 3);
    let c = server.config();
    let e = secret_credential(&server)
        .get_token(STORAGE_SCOPE)
        .await
        .expect_err("echo");
    let shown = format!("{e} {e:?}");
    assert!(shown.contains("invalid_request"), "{shown}");
    assert!(!shown.contains(&c.client_secret), "{shown}");

    let dir = scratch_dir("echo");
    let file = dir.join("token");
    std::fs::write(&file, &c.assertion).expect("write");
    let wl =
        WorkloadIdentityCredential::with_options(&c.tenant_id, &c.client_id, &file, entra(&server))
            .expect("credential");
    let e = wl.get_token(STORAGE_SCOPE).await.expect_err("echo");
    let shown = format!("{e} {e:?}");
    assert!(!shown.contains(&c.assertion), "{shown}");

    let app = app_service_credential(&server, &c.identity_header, None);
    let e = app.get_token(STORAGE_SCOPE).await.expect_err("echo");
    let shown = format!("{e} {e:?}");
    assert!(!shown.contains(&c.identity_header), "{shown}");
    let _ = std::fs::remove_dir_all(dir);
}

// ---------------------------------------------------------------------------
// workload identity
// ---------------------------------------------------------------------------

#[tokio::test]
async fn workload_identity_asserts_the_file_and_rereads_it_after_rotation() {
    let server = TokenServer::start(Config::default()).await;
    let c = server.config();
    let dir = scratch_dir("workload");
    let file = dir.join("azure-identity-token");
    std::fs::write(&file, format!("{}\n", c.assertion)).expect("write token");
    let map = lookup(&[
        ("AZURE_TENANT_ID", c.tenant_id.clone()),
        ("AZURE_CLIENT_ID", c.client_id.clone()),
        ("AZURE_FEDERATED_TOKEN_FILE", file.display().to_string()),
        ("AZURE_AUTHORITY_HOST", server.url()),
    ]);
    let cred = WorkloadIdentityCredential::from_env_with(|k| map.get(k)).expect("from env");
    assert_eq!(cred.token_file(), file);
    cred.get_token(STORAGE_SCOPE).await.expect("first token");
    let (_, r) = &server.requests()[0];
    assert_eq!(r.form("client_assertion_type"), Some(JWT_BEARER));
    assert_eq!(r.form("client_assertion"), Some(c.assertion.as_str()));
    assert_eq!(r.form("client_id"), Some(c.client_id.as_str()));
    assert_eq!(r.form("grant_type"), Some("client_credentials"));
    assert_eq!(r.form("scope"), Some(STORAGE_SCOPE));
    assert_eq!(r.form("client_secret"), None);

    // The kubelet rotates the token: the server now accepts only the new one.
    let rotated = federated_token("system:serviceaccount:default:workload");
    server.set_assertion(&rotated);
    std::fs::write(&file, &rotated).expect("rotate");
    cred.get_token(STORAGE_SCOPE)
        .await
        .expect("token after rotation");
    let (_, r) = &server.requests()[1];
    assert_eq!(r.form("client_assertion"), Some(rotated.as_str()));

    // An assertion the server does not know.
    std::fs::write(&file, federated_token("system:serviceaccount:other:x")).expect("write");
    let e = cred
        .get_token(STORAGE_SCOPE)
        .await
        .expect_err("unknown assertion");
    assert_eq!(identity_error(&e).code(), Some("invalid_client"));
    assert!(e.to_string().contains("AADSTS700213"), "{e}");

    // A missing file is named.
    std::fs::remove_file(&file).expect("rm");
    let e = cred
        .get_token(STORAGE_SCOPE)
        .await
        .expect_err("missing file");
    assert!(e.to_string().contains(&file.display().to_string()), "{e}");
    let _ = std::fs::remove_dir_all(dir);
}

// ---------------------------------------------------------------------------
// managed identity
// ---------------------------------------------------------------------------

#[tokio::test]
async fn imds_system_and_user_assigned_identities() {
    let server = TokenServer::start(Config::default()).await;
    let c = server.config();
    let (cid, oid, rid) = c.user_assigned.clone();
    let cases = [
        (None, None),
        (
            Some(UserAssignedId::ClientId(cid.clone())),
            Some(("client_id", cid.clone())),
        ),
        (
            Some(UserAssignedId::ObjectId(oid.clone())),
            Some(("object_id", oid.clone())),
        ),
        (
            Some(UserAssignedId::ResourceId(rid.clone())),
            Some(("msi_res_id", rid.clone())),
        ),
    ];
    for (i, (id, param)) in cases.into_iter().enumerate() {
        let before = OffsetDateTime::now_utc();
        let t = imds_credential(&server, id)
            .get_token(STORAGE_SCOPE)
            .await
            .expect("token");
        let lifetime = t.expires_on - before;
        assert!(
            lifetime > time::Duration::seconds(3590),
            "string expires_in/expires_on read: {lifetime}"
        );
        let (ep, r) = &server.requests()[i];
        assert_eq!(*ep, Endpoint::Imds);
        assert_eq!(r.method, http::Method::GET);
        assert_eq!(r.headers["metadata"], "true");
        assert_eq!(r.query("api-version"), Some("2018-02-01"));
        assert_eq!(r.query("resource"), Some(STORAGE_RESOURCE));
        assert_eq!(
            r.query.len(),
            2 + usize::from(param.is_some()),
            "{:?}",
            r.query
        );
        if let Some((name, value)) = param {
            assert_eq!(r.query(name), Some(value.as_str()));
        }
    }
}

#[tokio::test]
async fn imds_without_the_identity_is_unavailable() {
    let server = TokenServer::start(Config {
        system_assigned: false,
        ..Config::default()
    })
    .await;
    let e = imds_credential(&server, None)
        .get_token(STORAGE_SCOPE)
        .await
        .expect_err("no identity");
    let ie = identity_error(&e);
    assert!(ie.is_unavailable(), "{e}");
    assert_eq!(ie.code(), Some("invalid_request"));
    assert_eq!(ie.description(), Some("Identity not found"));
    assert_eq!(server.count(Endpoint::Imds), 1, "400 is not retried");

    let e = imds_credential(&server, Some(UserAssignedId::ClientId("nope".into())))
        .get_token(STORAGE_SCOPE)
        .await
        .expect_err("unknown id");
    assert!(identity_error(&e).is_unavailable());
}

#[tokio::test]
async fn imds_retries_transient_answers() {
    let server = TokenServer::start(Config::default()).await;
    server.inject(Fault::Status(500), 1);
    server.inject(Fault::Status(429), 1);
    imds_credential(&server, None)
        .get_token(STORAGE_SCOPE)
        .await
        .expect("third attempt");
    assert_eq!(server.count(Endpoint::Imds), 3);
}

#[tokio::test]
async fn app_service_form_and_string_expires_on() {
    let server = TokenServer::start(Config::default()).await;
    let c = server.config();
    let (cid, oid, rid) = c.user_assigned.clone();
    let cases = [
        (None, None),
        (
            Some(UserAssignedId::ClientId(cid.clone())),
            Some(("client_id", cid.clone())),
        ),
        (
            Some(UserAssignedId::ObjectId(oid.clone())),
            Some(("principal_id", oid.clone())),
        ),
        (
            Some(UserAssignedId::ResourceId(rid.clone())),
            Some(("mi_res_id", rid.clone())),
        ),
    ];
    for (i, (id, param)) in cases.into_iter().enumerate() {
        let before = OffsetDateTime::now_utc();
        let t = app_service_credential(&server, &c.identity_header, id)
            .get_token(STORAGE_SCOPE)
            .await
            .expect("token");
        let lifetime = t.expires_on - before;
        assert!(lifetime > time::Duration::seconds(3590), "{lifetime}");
        let (ep, r) = &server.requests()[i];
        assert_eq!(*ep, Endpoint::AppService);
        assert_eq!(r.headers["x-identity-header"], c.identity_header.as_str());
        assert_eq!(r.query("api-version"), Some("2019-08-01"));
        assert_eq!(r.query("resource"), Some(STORAGE_RESOURCE));
        if let Some((name, value)) = param {
            assert_eq!(r.query(name), Some(value.as_str()));
        }
    }

    let e = app_service_credential(&server, "wrong-header-value-123", None)
        .get_token(STORAGE_SCOPE)
        .await
        .expect_err("wrong header");
    let ie = identity_error(&e);
    assert_eq!(ie.status(), Some(401));
    assert!(
        ie.description().expect("d").contains("X-IDENTITY-HEADER"),
        "{e}"
    );
    assert!(!format!("{e} {e:?}").contains("wrong-header-value-123"));
}

#[tokio::test]
async fn managed_identity_from_env_picks_app_service_or_imds() {
    let server = TokenServer::start(Config::default()).await;
    let c = server.config();
    let map = lookup(&[
        ("IDENTITY_ENDPOINT", server.app_service_endpoint()),
        ("IDENTITY_HEADER", c.identity_header.clone()),
        // IMDS redirect is ignored when the App Service endpoint is set.
        ("AZURE_POD_IDENTITY_AUTHORITY_HOST", closed_port_url()),
    ]);
    let mut o = ManagedIdentityOptions::from_env_with(|k| map.get(k)).expect("options");
    o.http = fast_http();
    assert!(!format!("{o:?}").contains(&c.identity_header));
    ManagedIdentityCredential::new(o)
        .expect("cred")
        .get_token(STORAGE_SCOPE)
        .await
        .expect("token");
    assert_eq!(server.count(Endpoint::AppService), 1);

    let map = lookup(&[("AZURE_POD_IDENTITY_AUTHORITY_HOST", server.url())]);
    let mut o = ManagedIdentityOptions::from_env_with(|k| map.get(k)).expect("options");
    o.http = fast_http();
    ManagedIdentityCredential::new(o)
        .expect("cred")
        .get_token(STORAGE_SCOPE)
        .await
        .expect("token");
    assert_eq!(server.count(Endpoint::Imds), 1);
}

// ---------------------------------------------------------------------------
// Azure CLI
// ---------------------------------------------------------------------------

#[tokio::test]
async fn azure_cli_prefers_expires_on() {
    let dir = scratch_dir("az");
    let jwt = unsigned_jwt("t", Duration::from_secs(3600));
    let expires_on = OffsetDateTime::now_utc().unix_timestamp() + 1234;
    let az = fake_az(&dir, &format!("echo '{}'", az_output(&jwt, expires_on)));
    let cred = AzureCliCredential::new().with_program(&az);
    let t = cred.get_token(STORAGE_SCOPE).await.expect("token");
    assert_eq!(t.token.expose_secret(), jwt);
    assert_eq!(t.expires_on.unix_timestamp(), expires_on);
    assert_eq!(az_calls(&dir), 1);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn azure_cli_older_output_with_only_expires_on_local_time() {
    let dir = scratch_dir("az-old");
    let expires_on = OffsetDateTime::now_utc().unix_timestamp() + 2000;
    // Azure CLI before 2.54: only `expiresOn`, in local time (Python's
    // datetime.fromtimestamp); `date` formats it in the TZ the credential sets.
    let body = format!(
        "printf '{{\"accessToken\": \"%s\", \"expiresOn\": \"%s\", \"subscription\": \"s\", \"tenant\": \"t\", \"tokenType\": \"Bearer\"}}\\n' \
         'tok-old-cli' \"$(date -d @{expires_on} '+%Y-%m-%d %H:%M:%S.000000')\""
    );
    let az = fake_az(&dir, &body);
    let t = AzureCliCredential::new()
        .with_program(&az)
        .get_token(STORAGE_SCOPE)
        .await
        .expect("token");
    assert_eq!(t.token.expose_secret(), "tok-old-cli");
    assert_eq!(t.expires_on.unix_timestamp(), expires_on);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn azure_cli_not_logged_in_missing_and_slow() {
    let dir = scratch_dir("az-fail");
    let az = fake_az(
        &dir,
        "echo \"WARNING: cached token eyJ0eXAiOiJKV1QiLCJhbGciOiJub25lIn0.eyJleHAiOjF9.c2ln\" >&2\n\
         echo \"ERROR: Please run 'az login' to setup account.\" >&2\nexit 1",
    );
    let e = AzureCliCredential::new()
        .with_program(&az)
        .get_token(STORAGE_SCOPE)
        .await
        .expect_err("logged out");
    assert_eq!(e.kind(), ErrorKind::Credential);
    assert!(identity_error(&e).is_unavailable());
    let s = format!("{e} {e:?}");
    assert!(s.contains("not logged in; run `az login`"), "{s}");
    assert!(
        s.contains("Please run 'az login' to setup account."),
        "stderr summarized: {s}"
    );
    assert!(!s.contains("eyJ0eXAi"), "{s}");

    let other = fake_az(
        &dir,
        "echo 'ERROR: AADSTS50173: The provided grant has expired.' >&2\nexit 1",
    );
    let e = AzureCliCredential::new()
        .with_program(&other)
        .get_token(STORAGE_SCOPE)
        .await
        .expect_err("fails");
    assert!(!identity_error(&e).is_unavailable());
    assert!(
        e.to_string().contains("exited with 1") && e.to_string().contains("AADSTS50173"),
        "{e}"
    );

    let e = AzureCliCredential::new()
        .with_program(dir.join("not-installed/az"))
        .get_token(STORAGE_SCOPE)
        .await
        .expect_err("missing");
    assert!(identity_error(&e).is_unavailable());
    assert!(e.to_string().contains("Azure CLI was not found"), "{e}");

    let slow = fake_az(&dir, "exec sleep 10");
    let started = Instant::now();
    let e = AzureCliCredential::new()
        .with_program(&slow)
        .with_timeout(Duration::from_millis(300))
        .get_token(STORAGE_SCOPE)
        .await
        .expect_err("timeout");
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(
        e.to_string().contains("did not finish within 300 ms"),
        "{e}"
    );

    let garbage = fake_az(&dir, "echo 'not json accessToken=abcdefgh'");
    let e = AzureCliCredential::new()
        .with_program(&garbage)
        .get_token(STORAGE_SCOPE)
        .await
        .expect_err("garbage");
    assert!(e.to_string().contains("not a token"), "{e}");
    assert!(!e.to_string().contains("abcdefgh"), "{e}");
    let _ = std::fs::remove_dir_all(dir);
}

// ---------------------------------------------------------------------------
// default chain
// ---------------------------------------------------------------------------

fn chain_options(az: PathBuf) -> DefaultAzureCredentialOptions {
    DefaultAzureCredentialOptions {
        entra_http: fast_http(),
        managed_identity_http: TokenHttpOptions {
            connect_timeout: Duration::from_secs(1),
            ..fast_http()
        },
        azure_cli: AzureCliCredential::new().with_program(az),
    }
}

#[tokio::test]
async fn default_chain_prefers_the_environment() {
    let server = TokenServer::start(Config::default()).await;
    let c = server.config();
    let map = lookup(&[
        ("AZURE_TENANT_ID", c.tenant_id.clone()),
        ("AZURE_CLIENT_ID", c.client_id.clone()),
        ("AZURE_CLIENT_SECRET", c.client_secret.clone()),
        ("AZURE_AUTHORITY_HOST", server.url()),
        ("AZURE_POD_IDENTITY_AUTHORITY_HOST", server.url()),
    ]);
    let chain = DefaultAzureCredential::from_env_with(
        |k| map.get(k),
        chain_options("/nonexistent/az".into()),
    );
    assert!(!format!("{chain:?}").contains(&c.client_secret));
    chain.get_token(STORAGE_SCOPE).await.expect("token");
    assert_eq!(chain.selected_source(), Some("environment (client secret)"));
    assert_eq!(server.count(Endpoint::Entra), 1);
    assert_eq!(server.count(Endpoint::Imds), 0);
}

#[tokio::test]
async fn default_chain_workload_identity_from_the_environment() {
    let server = TokenServer::start(Config::default()).await;
    let c = server.config();
    let dir = scratch_dir("chain-wl");
    let file = dir.join("token");
    std::fs::write(&file, &c.assertion).expect("write");
    let map = lookup(&[
        ("AZURE_TENANT_ID", c.tenant_id.clone()),
        ("AZURE_CLIENT_ID", c.client_id.clone()),
        ("AZURE_FEDERATED_TOKEN_FILE", file.display().to_string()),
        ("AZURE_AUTHORITY_HOST", server.url()),
    ]);
    let chain = DefaultAzureCredential::from_env_with(
        |k| map.get(k),
        chain_options("/nonexistent/az".into()),
    );
    chain.get_token(STORAGE_SCOPE).await.expect("token");
    assert_eq!(
        chain.selected_source(),
        Some("environment (workload identity)")
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn default_chain_falls_through_to_managed_identity_with_azure_client_id() {
    let server = TokenServer::start(Config {
        system_assigned: false,
        ..Config::default()
    })
    .await;
    let c = server.config();
    let map = lookup(&[
        ("AZURE_CLIENT_ID", c.user_assigned.0.clone()),
        ("AZURE_POD_IDENTITY_AUTHORITY_HOST", server.url()),
    ]);
    let chain = DefaultAzureCredential::from_env_with(
        |k| map.get(k),
        chain_options("/nonexistent/az".into()),
    );
    chain.get_token(STORAGE_SCOPE).await.expect("token");
    assert_eq!(chain.selected_source(), Some("managed identity"));
    let (_, r) = &server.requests()[0];
    assert_eq!(r.query("client_id"), Some(c.user_assigned.0.as_str()));
    // From then on, managed identity only.
    chain.get_token(STORAGE_SCOPE).await.expect("token");
    assert_eq!(server.count(Endpoint::Imds), 2);
}

#[tokio::test]
async fn default_chain_skips_absent_imds_quickly_and_uses_the_cli() {
    let dir = scratch_dir("chain-cli");
    let jwt = unsigned_jwt("t", Duration::from_secs(3600));
    let az = fake_az(
        &dir,
        &format!(
            "echo '{}'",
            az_output(&jwt, OffsetDateTime::now_utc().unix_timestamp() + 3000)
        ),
    );
    let map = lookup(&[("AZURE_POD_IDENTITY_AUTHORITY_HOST", closed_port_url())]);
    let chain = DefaultAzureCredential::from_env_with(|k| map.get(k), chain_options(az));
    let started = Instant::now();
    let t = chain.get_token(STORAGE_SCOPE).await.expect("token from az");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(t.token.expose_secret(), jwt);
    assert_eq!(chain.selected_source(), Some("Azure CLI"));
    chain.get_token(STORAGE_SCOPE).await.expect("again");
    assert_eq!(az_calls(&dir), 2);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn default_chain_imds_probe_gives_up_on_a_silent_endpoint() {
    // Something accepts connections at the IMDS address but never answers.
    let server = TokenServer::start(Config::default()).await;
    server.inject(Fault::Slow(Duration::from_secs(30)), 1);
    let map = lookup(&[("AZURE_POD_IDENTITY_AUTHORITY_HOST", server.url())]);
    let mut options = chain_options("/nonexistent/az".into());
    options.managed_identity_http.request_timeout = Duration::from_millis(500);
    let chain = DefaultAzureCredential::from_env_with(|k| map.get(k), options);
    let started = Instant::now();
    let e = chain
        .get_token(STORAGE_SCOPE)
        .await
        .expect_err("nothing works");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(server.count(Endpoint::Imds), 1, "a probe is not retried");
    let s = e.to_string();
    assert!(s.contains("managed identity: skipped"), "{s}");
    assert!(s.contains("did not answer"), "{s}");
}

#[tokio::test]
async fn default_chain_stops_at_a_configured_source_that_fails() {
    let server = TokenServer::start(Config::default()).await;
    let c = server.config();
    let dir = scratch_dir("chain-stop");
    let az = fake_az(&dir, "echo 'should not run' >&2; exit 1");
    let map = lookup(&[
        ("AZURE_TENANT_ID", c.tenant_id.clone()),
        ("AZURE_CLIENT_ID", c.client_id.clone()),
        ("AZURE_CLIENT_SECRET", "a-wrong-secret-0123456789".into()),
        ("AZURE_AUTHORITY_HOST", server.url()),
        ("AZURE_POD_IDENTITY_AUTHORITY_HOST", server.url()),
    ]);
    let chain = DefaultAzureCredential::from_env_with(|k| map.get(k), chain_options(az));
    let e = chain
        .get_token(STORAGE_SCOPE)
        .await
        .expect_err("wrong secret");
    let ie = identity_error(&e);
    assert_eq!(ie.credential(), "DefaultAzureCredential");
    assert_eq!(ie.code(), Some("invalid_client"));
    assert!(!ie.is_unavailable());
    let s = e.to_string();
    eprintln!("{s}");
    assert!(
        s.contains(
            "environment (client secret) failed (ClientSecretCredential: the token endpoint"
        ),
        "{s}"
    );
    assert!(
        s.contains("answered 401): invalid_client: AADSTS7000215"),
        "{s}"
    );
    assert!(s.contains("not tried: managed identity, Azure CLI"), "{s}");
    assert!(!s.contains("a-wrong-secret-0123456789"), "{s}");
    assert_eq!(server.count(Endpoint::Imds), 0);
    assert_eq!(az_calls(&dir), 0);
    assert_eq!(chain.selected_source(), None);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn default_chain_error_says_why_each_source_was_skipped() {
    let dir = scratch_dir("chain-none");
    let az = fake_az(
        &dir,
        "echo \"ERROR: Please run 'az login' to setup account.\" >&2; exit 1",
    );
    let imds = closed_port_url();
    let map = lookup(&[
        ("AZURE_CLIENT_SECRET", "lonely-secret-0123456789".into()),
        ("AZURE_POD_IDENTITY_AUTHORITY_HOST", imds.clone()),
    ]);
    let chain = DefaultAzureCredential::from_env_with(|k| map.get(k), chain_options(az));
    let e = chain
        .get_token(STORAGE_SCOPE)
        .await
        .expect_err("nothing works");
    let s = e.to_string();
    eprintln!("{s}");
    assert!(identity_error(&e).is_unavailable());
    assert!(s.contains("environment (client secret): skipped"), "{s}");
    assert!(
        s.contains("AZURE_TENANT_ID, AZURE_CLIENT_ID are not set"),
        "{s}"
    );
    assert!(s.contains(&format!("managed identity: skipped (ManagedIdentityCredential: no managed identity endpoint: IMDS at {imds} did not answer")), "{s}");
    assert!(s.contains("Azure CLI: skipped (AzureCliCredential: the Azure CLI is not logged in; run `az login`"), "{s}");
    assert!(!s.contains("lonely-secret"), "{s}");
    let _ = std::fs::remove_dir_all(dir);
}

// ---------------------------------------------------------------------------
// caching and refresh through the crate's TokenCache and transport
// ---------------------------------------------------------------------------

#[tokio::test]
async fn a_token_claiming_to_live_for_ages_is_capped_not_a_panic() {
    // `expires_in` 1e18 s (and its IMDS / App Service forms with `expires_on`
    // that far ahead) once overflowed the time arithmetic and killed the task
    // asking. Now the lifetime is believed up to a day: the cache asks again then.
    let server = TokenServer::start(Config::default()).await;
    let c = server.config();
    for secs in [9_999_999_999_999, 1_000_000_000_000_000_000] {
        server.set_lifetime(Duration::from_secs(secs));
        let sources: [(&str, Arc<dyn TokenCredential>); 3] = [
            ("client secret", Arc::new(secret_credential(&server))),
            ("IMDS", Arc::new(imds_credential(&server, None))),
            (
                "App Service",
                Arc::new(app_service_credential(&server, &c.identity_header, None)),
            ),
        ];
        for (what, source) in sources {
            let before = OffsetDateTime::now_utc();
            let cache = TokenCache::new(source);
            let t = cache
                .token()
                .await
                .unwrap_or_else(|e| panic!("{what}: {e}"));
            let lifetime = t.expires_on - before;
            assert!(
                lifetime > time::Duration::hours(24) - time::Duration::minutes(1)
                    && lifetime <= time::Duration::hours(24) + time::Duration::seconds(1),
                "{what}, {secs} s: believed for {lifetime}"
            );
            cache.token().await.expect("cached");
            assert_eq!(
                cache.refresh_count(),
                1,
                "{what}: the capped token is cached"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_waiters_on_an_expiring_token_cause_one_request() {
    let server = TokenServer::start(Config::default()).await;
    // The first token lives 2 minutes: inside the 5-minute refresh margin.
    server.set_lifetime(Duration::from_secs(120));
    let cache = Arc::new(TokenCache::new(Arc::new(secret_credential(&server))));
    let first = cache.token().await.expect("first token");
    assert_eq!(server.count(Endpoint::Entra), 1);
    server.set_lifetime(Duration::from_secs(3600));
    // Slow the refresh down, so all waiters pile up behind it.
    server.inject(Fault::Slow(Duration::from_millis(300)), 1);
    let mut tasks = Vec::new();
    for _ in 0..1000 {
        let cache = Arc::clone(&cache);
        tasks.push(tokio::spawn(async move { cache.token().await }));
    }
    let mut tokens = std::collections::HashSet::new();
    for t in tasks {
        let t = t.await.expect("join").expect("token");
        tokens.insert(t.token.expose_secret().to_string());
    }
    assert_eq!(
        server.count(Endpoint::Entra),
        2,
        "exactly one refresh for 1000 waiters"
    );
    assert_eq!(tokens.len(), 1);
    assert!(!tokens.contains(first.token.expose_secret()));
    assert_eq!(tokens.into_iter().next(), Some(server.issued()[1].clone()));
}

#[tokio::test]
async fn storage_401_forces_one_refresh_and_one_retry() {
    let server = TokenServer::start(Config::default()).await;
    let dfs = DfsServer::start().await;
    let client = Client::builder(
        Account::emulator(&dfs.endpoint()).expect("account"),
        Credential::bearer(Arc::new(secret_credential(&server))),
    )
    .dialect(Dialect::Dfs)
    .retry(fast_retry())
    .build()
    .expect("client");
    dfs.inject(DfsFault::Status {
        status: 401,
        code: "InvalidAuthenticationInfo",
        retry_after: None,
        times: 1,
        matching: Matcher::any(),
    });
    let fs = client.filesystem(&unique_name("identity")).expect("fs");
    fs.create().await.expect("create after a refresh");
    assert_eq!(
        server.count(Endpoint::Entra),
        2,
        "the rejected token was replaced"
    );
    let issued = server.issued();
    let auth: Vec<String> = dfs
        .requests()
        .iter()
        .filter_map(|r| r.header("authorization").map(str::to_string))
        .collect();
    assert_eq!(
        auth,
        vec![
            format!("Bearer {}", issued[0]),
            format!("Bearer {}", issued[1])
        ]
    );
}

// ---------------------------------------------------------------------------
// secrets stay out of logs, Debug and Display, at TRACE
// ---------------------------------------------------------------------------

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "current_thread")]
async fn no_secret_in_logs_debug_or_display_at_trace() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    // This thread only; the current-thread runtime polls every task here.
    let _guard = tracing::subscriber::set_default(subscriber);

    let server = TokenServer::start(Config::default()).await;
    let c = server.config();
    let mut shown: Vec<String> = Vec::new();
    let mut record = |r: Result<adls_rest::AccessToken, Error>| match r {
        Ok(t) => shown.push(format!("{t:?} {:?}", t.token)),
        Err(e) => shown.push(format!("{e} | {e:?} | {:?}", IdentityError::of(&e))),
    };

    let secret = secret_credential(&server);
    record(secret.get_token(STORAGE_SCOPE).await);
    server.inject(Fault::EchoSecrets, 1);
    record(secret.get_token(STORAGE_SCOPE).await);
    let bad = ClientSecretCredential::with_options(
        &c.tenant_id,
        &c.client_id,
        "bad-secret-0123456789",
        entra(&server),
    )
    .expect("cred");
    record(bad.get_token(STORAGE_SCOPE).await);

    let dir = scratch_dir("trace");
    let file = dir.join("token");
    std::fs::write(&file, &c.assertion).expect("write");
    let wl =
        WorkloadIdentityCredential::with_options(&c.tenant_id, &c.client_id, &file, entra(&server))
            .expect("cred");
    record(wl.get_token(STORAGE_SCOPE).await);
    server.inject(Fault::EchoSecrets, 1);
    record(wl.get_token(STORAGE_SCOPE).await);

    let imds = imds_credential(&server, None);
    record(imds.get_token(STORAGE_SCOPE).await);
    let app = app_service_credential(&server, &c.identity_header, None);
    record(app.get_token(STORAGE_SCOPE).await);
    server.inject(Fault::EchoSecrets, 1);
    record(app.get_token(STORAGE_SCOPE).await);

    let cli_token = unsigned_jwt("t", Duration::from_secs(3600));
    let az = fake_az(
        &dir,
        &format!(
            "echo '{}'",
            az_output(
                &cli_token,
                OffsetDateTime::now_utc().unix_timestamp() + 3000
            )
        ),
    );
    let cli = AzureCliCredential::new().with_program(&az);
    record(cli.get_token(STORAGE_SCOPE).await);

    let map = lookup(&[
        ("AZURE_TENANT_ID", c.tenant_id.clone()),
        ("AZURE_CLIENT_ID", c.client_id.clone()),
        ("AZURE_CLIENT_SECRET", c.client_secret.clone()),
        ("AZURE_AUTHORITY_HOST", server.url()),
    ]);
    let chain = DefaultAzureCredential::from_env_with(|k| map.get(k), chain_options(az.clone()));
    record(chain.get_token(STORAGE_SCOPE).await);

    // Through the cache and the storage transport, with a 401 and a refresh.
    let dfs = DfsServer::start().await;
    let storage = Client::builder(
        Account::emulator(&dfs.endpoint()).expect("account"),
        Credential::bearer(Arc::new(secret_credential(&server))),
    )
    .dialect(Dialect::Dfs)
    .retry(fast_retry())
    .build()
    .expect("client");
    dfs.inject(DfsFault::Status {
        status: 401,
        code: "InvalidAuthenticationInfo",
        retry_after: None,
        times: 1,
        matching: Matcher::any(),
    });
    let fs = storage.filesystem(&unique_name("identity")).expect("fs");
    fs.create().await.expect("create");

    shown.push(format!(
        "{secret:?} {bad:?} {wl:?} {imds:?} {app:?} {cli:?} {chain:?} {storage:?}"
    ));
    let logs = String::from_utf8_lossy(&captured.0.lock().expect("lock")).into_owned();
    assert!(
        logs.contains("requesting a token"),
        "the capture works: {logs}"
    );
    assert!(logs.contains("TRACE") || logs.contains("DEBUG"), "{logs}");

    let mut secrets = vec![
        c.client_secret.clone(),
        c.assertion.clone(),
        c.identity_header.clone(),
        "bad-secret-0123456789".to_string(),
        cli_token.clone(),
    ];
    secrets.extend(server.issued());
    // Each JWT's signature and payload too, so a token cut into pieces is caught.
    for t in server.issued().iter().chain([&cli_token, &c.assertion]) {
        secrets.extend(t.split('.').filter(|p| p.len() >= 16).map(str::to_string));
    }
    for s in &secrets {
        assert!(
            !logs.contains(s.as_str()),
            "a secret reached the logs: {s}\n{logs}"
        );
        for out in &shown {
            assert!(
                !out.contains(s.as_str()),
                "a secret reached Debug/Display: {s}\n{out}"
            );
        }
    }
    let _ = std::fs::remove_dir_all(dir);
}

// ---------------------------------------------------------------------------
// end to end against Azurite over HTTPS with --oauth basic
// ---------------------------------------------------------------------------

fn azurite_client(credential: Credential) -> Client {
    let ca_path = required_env(ENV_CA_PEM);
    let ca = std::fs::read(&ca_path).unwrap_or_else(|e| panic!("reading the CA at {ca_path}: {e}"));
    Client::builder(
        Account::emulator(&required_env(ENV_AZURITE_HTTPS)).expect("emulator URL"),
        credential,
    )
    .extra_root_pem(ca)
    .retry(fast_retry())
    .build()
    .expect("client")
}

/// Creates a container and writes, then reads back, one file.
async fn write_one_file(client: &Client, tag: &str) {
    let fs = client.filesystem(&unique_name(tag)).expect("fs");
    fs.create()
        .await
        .unwrap_or_else(|e| panic!("create container with {tag}: {e}"));
    let file = fs.file("logs/2024/01/01/batch.ndjson").expect("path");
    let data = Bytes::from(format!("{{\"credential\":\"{tag}\"}}\n").repeat(100));
    file.upload(data.clone(), 1024, &CreateOptions::default())
        .await
        .unwrap_or_else(|e| panic!("write with {tag}: {e}"));
    assert_eq!(file.read().await.expect("read back"), data);
}

#[tokio::test]
async fn azurite_write_with_client_secret() {
    let server = TokenServer::start(Config::default()).await;
    let client = azurite_client(Credential::bearer(Arc::new(secret_credential(&server))));
    write_one_file(&client, "id-secret").await;
    assert_eq!(
        server.count(Endpoint::Entra),
        1,
        "one token for the whole write"
    );
}

#[tokio::test]
async fn azurite_write_with_workload_identity() {
    let server = TokenServer::start(Config::default()).await;
    let c = server.config();
    let dir = scratch_dir("azurite-wl");
    let file = dir.join("token");
    std::fs::write(&file, &c.assertion).expect("write");
    let cred =
        WorkloadIdentityCredential::with_options(&c.tenant_id, &c.client_id, &file, entra(&server))
            .expect("cred");
    let client = azurite_client(Credential::bearer(Arc::new(cred)));
    write_one_file(&client, "id-workload").await;
    assert_eq!(server.count(Endpoint::Entra), 1);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn azurite_write_with_managed_identity_imds() {
    let server = TokenServer::start(Config::default()).await;
    let c = server.config();
    let cred = imds_credential(
        &server,
        Some(UserAssignedId::ClientId(c.user_assigned.0.clone())),
    );
    let client = azurite_client(Credential::bearer(Arc::new(cred)));
    write_one_file(&client, "id-imds").await;
    assert_eq!(server.count(Endpoint::Imds), 1);
}

#[tokio::test]
async fn azurite_write_with_managed_identity_app_service() {
    let server = TokenServer::start(Config::default()).await;
    let c = server.config();
    let cred = app_service_credential(&server, &c.identity_header, None);
    let client = azurite_client(Credential::bearer(Arc::new(cred)));
    write_one_file(&client, "id-appservice").await;
    assert_eq!(server.count(Endpoint::AppService), 1);
}

#[tokio::test]
async fn azurite_write_with_azure_cli() {
    let dir = scratch_dir("azurite-az");
    let jwt = unsigned_jwt(
        "72f988bf-86f1-41af-91ab-2d7cd011db47",
        Duration::from_secs(3600),
    );
    let az = fake_az(
        &dir,
        &format!(
            "echo '{}'",
            az_output(&jwt, OffsetDateTime::now_utc().unix_timestamp() + 3500)
        ),
    );
    let client = azurite_client(Credential::bearer(Arc::new(
        AzureCliCredential::new().with_program(&az),
    )));
    write_one_file(&client, "id-cli").await;
    assert_eq!(az_calls(&dir), 1);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn azurite_write_with_default_chain() {
    let server = TokenServer::start(Config::default()).await;
    let map = lookup(&[("AZURE_POD_IDENTITY_AUTHORITY_HOST", server.url())]);
    let chain = Arc::new(DefaultAzureCredential::from_env_with(
        |k| map.get(k),
        chain_options("/nonexistent/az".into()),
    ));
    let client = azurite_client(Credential::bearer(chain.clone()));
    write_one_file(&client, "id-default").await;
    assert_eq!(chain.selected_source(), Some("managed identity"));
}

#[tokio::test]
async fn azurite_token_near_expiry_is_refreshed_not_surfaced() {
    let server = TokenServer::start(Config::default()).await;
    // A token Azurite accepts for 2 more minutes, which the cache must not send:
    // it is inside the 5-minute refresh margin.
    server.set_lifetime(Duration::from_secs(120));
    let cache = Arc::new(TokenCache::new(Arc::new(secret_credential(&server))));
    let near_expiry = cache.token().await.expect("first token");
    assert!(near_expiry.expires_on - OffsetDateTime::now_utc() < time::Duration::minutes(5));
    server.set_lifetime(Duration::from_secs(3600));
    let client = azurite_client(Credential::Bearer(cache.clone()));
    write_one_file(&client, "id-refresh").await;
    assert_eq!(
        server.count(Endpoint::Entra),
        2,
        "one new token for the write"
    );
    write_one_file(&client, "id-refresh").await;
    assert_eq!(
        server.count(Endpoint::Entra),
        2,
        "the fresh token is reused"
    );
}
