//! [`ManagedIdentityCredential`]: the identity Azure gives a VM, a scale set,
//! an AKS node pool, an App Service / Functions app or a Container App.
//!
//! Two endpoints, both on the machine or next to it:
//! - IMDS (VMs, scale sets, AKS nodes): `GET {base}/metadata/identity/oauth2/token
//!   ?api-version=2018-02-01&resource=...` with `Metadata: true`; a user-assigned
//!   identity is picked by `client_id`, `object_id` or `msi_res_id`. The base is
//!   `http://169.254.169.254`, or `AZURE_POD_IDENTITY_AUTHORITY_HOST` (the name
//!   Microsoft's SDKs read to redirect IMDS).
//! - App Service, Functions, Container Apps: `GET {IDENTITY_ENDPOINT}
//!   ?api-version=2019-08-01&resource=...` with `X-IDENTITY-HEADER:
//!   {IDENTITY_HEADER}`; a user-assigned identity is picked by `client_id`,
//!   `principal_id` or `mi_res_id`.
//!
//! Azure Arc (`IDENTITY_ENDPOINT` with `IMDS_ENDPOINT`) and Service Fabric
//! (`IDENTITY_SERVER_THUMBPRINT`) use other protocols and are reported as not
//! supported rather than guessed at.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, StatusCode};
use url::Url;

use super::aad::interpret;
use super::error::IdentityError;
use super::http::{to_uri, TokenHttp, TokenHttpOptions};
use super::{env_names as env, scope_to_resource, Env};
use crate::credential::{AccessToken, BoxFuture, TokenCredential};
use crate::error::Error;
use crate::secret::Secret;

const NAME: &str = "ManagedIdentityCredential";

/// Where IMDS answers on every Azure VM.
pub const IMDS_DEFAULT_BASE: &str = "http://169.254.169.254";
const IMDS_PATH: &str = "/metadata/identity/oauth2/token";
const IMDS_API_VERSION: &str = "2018-02-01";
const APP_SERVICE_API_VERSION: &str = "2019-08-01";

/// Which user-assigned identity to use (none: the system-assigned one).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UserAssignedId {
    /// The identity's client (application) id.
    ClientId(String),
    /// The identity's object (principal) id.
    ObjectId(String),
    /// The identity's Azure resource id (`/subscriptions/.../userAssignedIdentities/name`).
    ResourceId(String),
}

impl UserAssignedId {
    fn value(&self) -> &str {
        match self {
            UserAssignedId::ClientId(v)
            | UserAssignedId::ObjectId(v)
            | UserAssignedId::ResourceId(v) => v,
        }
    }

    fn imds_param(&self) -> &'static str {
        match self {
            UserAssignedId::ClientId(_) => "client_id",
            UserAssignedId::ObjectId(_) => "object_id",
            UserAssignedId::ResourceId(_) => "msi_res_id",
        }
    }

    fn app_service_param(&self) -> &'static str {
        match self {
            UserAssignedId::ClientId(_) => "client_id",
            UserAssignedId::ObjectId(_) => "principal_id",
            UserAssignedId::ResourceId(_) => "mi_res_id",
        }
    }
}

/// Which managed identity endpoint to ask.
#[derive(Clone, Debug)]
pub enum ManagedIdentityEndpoint {
    /// The Instance Metadata Service at `base` (e.g. [`IMDS_DEFAULT_BASE`]).
    Imds {
        /// Scheme, host and port; the token path is appended.
        base: String,
    },
    /// App Service, Functions and Container Apps.
    AppService {
        /// The full token URL (`IDENTITY_ENDPOINT`).
        endpoint: String,
        /// The value for `X-IDENTITY-HEADER` (`IDENTITY_HEADER`).
        header: Secret,
    },
}

impl ManagedIdentityEndpoint {
    /// IMDS at its usual address.
    pub fn imds() -> Self {
        ManagedIdentityEndpoint::Imds {
            base: IMDS_DEFAULT_BASE.to_string(),
        }
    }
}

/// Settings of a [`ManagedIdentityCredential`].
#[derive(Clone, Debug)]
pub struct ManagedIdentityOptions {
    /// Where to ask.
    pub endpoint: ManagedIdentityEndpoint,
    /// A user-assigned identity; `None` for the system-assigned one.
    pub user_assigned: Option<UserAssignedId>,
    /// How requests are sent; [`TokenHttpOptions::managed_identity`] by default (1 s connect timeout).
    pub http: TokenHttpOptions,
}

impl Default for ManagedIdentityOptions {
    fn default() -> Self {
        ManagedIdentityOptions {
            endpoint: ManagedIdentityEndpoint::imds(),
            user_assigned: None,
            http: TokenHttpOptions::managed_identity(),
        }
    }
}

impl ManagedIdentityOptions {
    /// The endpoint the environment describes: App Service / Functions /
    /// Container Apps when `IDENTITY_ENDPOINT` and `IDENTITY_HEADER` are set,
    /// else IMDS at `AZURE_POD_IDENTITY_AUTHORITY_HOST` or [`IMDS_DEFAULT_BASE`].
    /// The system-assigned identity; set [`user_assigned`](Self::user_assigned) for another.
    pub fn from_env() -> Result<Self, Error> {
        Self::from_env_with(|k| std::env::var(k).ok())
    }

    /// As [`from_env`](Self::from_env), reading variables through `lookup`.
    pub fn from_env_with<F, S>(lookup: F) -> Result<Self, Error>
    where
        F: Fn(&str) -> Option<S>,
        S: Into<String>,
    {
        let f = move |k: &str| lookup(k).map(Into::into);
        Self::from_env_parts(&Env(&f))
    }

    pub(crate) fn from_env_parts(env: &Env<'_>) -> Result<Self, Error> {
        let unsupported = |what: &str| {
            IdentityError::new(NAME, what.to_string())
                .unavailable()
                .into_error()
        };
        let endpoint = match env.get(env::IDENTITY_ENDPOINT) {
            Some(endpoint) => match env.get(env::IDENTITY_HEADER) {
                Some(_) if env.get(env::IDENTITY_SERVER_THUMBPRINT).is_some() => {
                    return Err(unsupported(
                        "Service Fabric managed identity (IDENTITY_SERVER_THUMBPRINT is set) is not supported",
                    ))
                }
                Some(header) => ManagedIdentityEndpoint::AppService {
                    endpoint,
                    header: Secret::new(header),
                },
                None if env.get(env::IMDS_ENDPOINT).is_some() => {
                    return Err(unsupported(
                        "Azure Arc managed identity (IDENTITY_ENDPOINT with IMDS_ENDPOINT) is not supported",
                    ))
                }
                None => {
                    return Err(unsupported(
                        "IDENTITY_ENDPOINT is set but IDENTITY_HEADER is not; expected both (App Service, Functions, Container Apps)",
                    ))
                }
            },
            None => ManagedIdentityEndpoint::Imds {
                base: env
                    .get(env::AZURE_POD_IDENTITY_AUTHORITY_HOST)
                    .unwrap_or_else(|| IMDS_DEFAULT_BASE.to_string()),
            },
        };
        Ok(ManagedIdentityOptions {
            endpoint,
            ..Default::default()
        })
    }
}

enum Kind {
    Imds { base: Url, token_url: Url },
    AppService { url: Url, header: Secret },
}

/// A managed identity's tokens, from IMDS or the App Service identity endpoint.
///
/// ```
/// # fn main() -> Result<(), adls_rest::Error> {
/// use std::sync::Arc;
/// use adls_rest::identity::{ManagedIdentityOptions, UserAssignedId};
/// use adls_rest::{Credential, ManagedIdentityCredential};
///
/// // A user-assigned identity through IMDS (the default endpoint); nothing is sent yet.
/// let options = ManagedIdentityOptions {
///     user_assigned: Some(UserAssignedId::ClientId("00000000-0000-0000-0000-000000000000".into())),
///     ..ManagedIdentityOptions::default()
/// };
/// let managed = ManagedIdentityCredential::new(options)?;
/// let credential = Credential::bearer(Arc::new(managed));
/// # let _ = credential; Ok(()) }
/// ```
pub struct ManagedIdentityCredential {
    kind: Kind,
    user_assigned: Option<UserAssignedId>,
    http: TokenHttp,
    /// In a chain, the first IMDS request is a probe: any failure means "no
    /// IMDS here" and the chain moves on.
    probe: bool,
    reached: AtomicBool,
}

impl ManagedIdentityCredential {
    /// A credential for `options`; checks the URLs and the identity here, once.
    pub fn new(options: ManagedIdentityOptions) -> Result<Self, Error> {
        if let Some(id) = &options.user_assigned {
            let v = id.value();
            if v.trim().is_empty() || v.chars().any(char::is_control) {
                return Err(Error::config(format!(
                    "user-assigned identity {} is empty or has control characters",
                    id.imds_param()
                )));
            }
        }
        let kind = match options.endpoint {
            ManagedIdentityEndpoint::Imds { base } => {
                let base = parse_http_url(&base, "IMDS base")?;
                let mut token_url = base.clone();
                let path = format!("{}{IMDS_PATH}", base.path().trim_end_matches('/'));
                token_url.set_path(&path);
                Kind::Imds { base, token_url }
            }
            ManagedIdentityEndpoint::AppService { endpoint, header } => {
                let url = parse_http_url(&endpoint, "IDENTITY_ENDPOINT")?;
                if header.expose_secret().trim().is_empty()
                    || HeaderValue::from_str(header.expose_secret().trim()).is_err()
                {
                    return Err(Error::config(
                        "IDENTITY_HEADER is empty or not a valid header value",
                    ));
                }
                Kind::AppService { url, header }
            }
        };
        Ok(ManagedIdentityCredential {
            kind,
            user_assigned: options.user_assigned,
            http: TokenHttp::new(&options.http)?,
            probe: false,
            reached: AtomicBool::new(false),
        })
    }

    /// From the environment (see [`ManagedIdentityOptions::from_env`]), system-assigned.
    pub fn from_env() -> Result<Self, Error> {
        Self::new(ManagedIdentityOptions::from_env()?)
    }

    /// Makes the first IMDS request a probe (a chain's behaviour).
    pub(crate) fn probing(mut self) -> Self {
        self.probe = true;
        self
    }

    fn request(&self, resource: &str) -> Result<Request<Bytes>, Error> {
        match &self.kind {
            Kind::Imds { token_url, .. } => {
                imds_request(token_url, resource, self.user_assigned.as_ref())
            }
            Kind::AppService { url, header } => {
                app_service_request(url, header, resource, self.user_assigned.as_ref())
            }
        }
    }

    fn describe(&self) -> String {
        match &self.kind {
            Kind::Imds { base, .. } => format!("IMDS at {}", base.as_str().trim_end_matches('/')),
            Kind::AppService { url, .. } => {
                format!("the App Service identity endpoint {url}")
            }
        }
    }

    async fn token(&self, scope: &str) -> Result<AccessToken, Error> {
        let resource = scope_to_resource(scope);
        let req = self.request(resource)?;
        let imds = matches!(self.kind, Kind::Imds { .. });
        let probing = imds && self.probe && !self.reached.load(Ordering::Relaxed);
        let attempts = if probing {
            1
        } else {
            self.http.options().retry.max_attempts
        };
        let what = self.describe();
        tracing::debug!(credential = NAME, endpoint = %what, probing, "requesting a token");
        let answer = self.http.send(&req, retry_status, attempts).await;
        let answered = answer.is_ok();
        let status = answer.as_ref().ok().map(|a| a.status);
        let secrets: Vec<&str> = match &self.kind {
            Kind::AppService { header, .. } => vec![header.expose_secret()],
            Kind::Imds { .. } => Vec::new(),
        };
        match interpret(NAME, &what, answer, &secrets) {
            Ok(t) => {
                self.reached.store(true, Ordering::Relaxed);
                Ok(t)
            }
            Err(e) => {
                let mut e = *e;
                if answered && status != Some(StatusCode::BAD_REQUEST) {
                    self.reached.store(true, Ordering::Relaxed);
                }
                if probing {
                    // Nothing that behaves like IMDS is here: a chain moves on.
                    e.set_unavailable(true);
                    e = if answered {
                        let h = format!("{what} did not give a token (is this an Azure VM with a managed identity?)");
                        e.with_headline(h)
                    } else {
                        let h = format!("no managed identity endpoint: {what} did not answer");
                        e.with_headline(h)
                    };
                } else if imds && status == Some(StatusCode::BAD_REQUEST) {
                    // IMDS answers 400 when no (or not this) identity is assigned.
                    e.set_unavailable(true);
                }
                Err(e.into_error())
            }
        }
    }
}

fn parse_http_url(raw: &str, what: &str) -> Result<Url, Error> {
    let url = Url::parse(raw.trim())
        .map_err(|e| Error::config(format!("{what} `{raw}` is not a URL ({e})")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(Error::config(format!(
            "{what} `{raw}` is not an http(s) URL with a host"
        )));
    }
    Ok(url)
}

/// IMDS retries: 404 (IMDS is updating), 410, 429 and 5xx, as Microsoft advises.
fn retry_status(s: StatusCode) -> bool {
    matches!(s.as_u16(), 404 | 410 | 429) || s.is_server_error()
}

/// The IMDS token request as a value (no IO).
pub(crate) fn imds_request(
    token_url: &Url,
    resource: &str,
    id: Option<&UserAssignedId>,
) -> Result<Request<Bytes>, Error> {
    let mut url = token_url.clone();
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("api-version", IMDS_API_VERSION)
            .append_pair("resource", resource);
        if let Some(id) = id {
            q.append_pair(id.imds_param(), id.value());
        }
    }
    let mut req = Request::new(Bytes::new());
    *req.method_mut() = Method::GET;
    *req.uri_mut() = to_uri(&url)?;
    req.headers_mut()
        .insert("metadata", HeaderValue::from_static("true"));
    req.headers_mut()
        .insert(header::ACCEPT, HeaderValue::from_static("application/json"));
    Ok(req)
}

/// The App Service (2019-08-01) token request as a value (no IO).
pub(crate) fn app_service_request(
    endpoint: &Url,
    identity_header: &Secret,
    resource: &str,
    id: Option<&UserAssignedId>,
) -> Result<Request<Bytes>, Error> {
    let mut url = endpoint.clone();
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("api-version", APP_SERVICE_API_VERSION)
            .append_pair("resource", resource);
        if let Some(id) = id {
            q.append_pair(id.app_service_param(), id.value());
        }
    }
    let mut value = HeaderValue::from_str(identity_header.expose_secret().trim())
        .map_err(|_| Error::config("IDENTITY_HEADER is not a valid header value"))?;
    value.set_sensitive(true);
    let mut req = Request::new(Bytes::new());
    *req.method_mut() = Method::GET;
    *req.uri_mut() = to_uri(&url)?;
    req.headers_mut().insert("x-identity-header", value);
    req.headers_mut()
        .insert(header::ACCEPT, HeaderValue::from_static("application/json"));
    Ok(req)
}

impl fmt::Debug for ManagedIdentityCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct(NAME);
        match &self.kind {
            Kind::Imds { base, .. } => d.field("imds", &base.as_str()),
            Kind::AppService { url, header } => d
                .field("app_service", &url.as_str())
                .field("identity_header", header),
        };
        d.field("user_assigned", &self.user_assigned).finish()
    }
}

impl TokenCredential for ManagedIdentityCredential {
    fn get_token<'a>(&'a self, scope: &'a str) -> BoxFuture<'a, Result<AccessToken, Error>> {
        Box::pin(self.token(scope))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: std::collections::HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn imds_request_shape() {
        let c = ManagedIdentityCredential::new(ManagedIdentityOptions {
            endpoint: ManagedIdentityEndpoint::Imds {
                base: "http://127.0.0.1:8080/".into(),
            },
            user_assigned: Some(UserAssignedId::ResourceId(
                "/subscriptions/s/resourceGroups/g/providers/Microsoft.ManagedIdentity/userAssignedIdentities/n".into(),
            )),
            ..Default::default()
        })
        .expect("credential");
        let req = c.request("https://storage.azure.com").expect("request");
        assert_eq!(req.method(), Method::GET);
        assert_eq!(
            req.uri().to_string(),
            "http://127.0.0.1:8080/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https%3A%2F%2Fstorage.azure.com&msi_res_id=%2Fsubscriptions%2Fs%2FresourceGroups%2Fg%2Fproviders%2FMicrosoft.ManagedIdentity%2FuserAssignedIdentities%2Fn"
        );
        assert_eq!(req.headers()["metadata"], "true");
        for (id, param) in [
            (UserAssignedId::ClientId("c1".into()), "client_id=c1"),
            (UserAssignedId::ObjectId("o1".into()), "object_id=o1"),
        ] {
            let u =
                Url::parse("http://169.254.169.254/metadata/identity/oauth2/token").expect("url");
            let req = imds_request(&u, "https://storage.azure.com", Some(&id)).expect("req");
            assert!(
                req.uri().query().expect("q").ends_with(param),
                "{}",
                req.uri()
            );
        }
    }

    #[test]
    fn app_service_request_shape() {
        let url = Url::parse("http://127.0.0.1:41741/msi/token/").expect("url");
        let header = Secret::new("hdr-secret-1234");
        let req = app_service_request(
            &url,
            &header,
            "https://storage.azure.com",
            Some(&UserAssignedId::ObjectId("p1".into())),
        )
        .expect("req");
        assert_eq!(
            req.uri().to_string(),
            "http://127.0.0.1:41741/msi/token/?api-version=2019-08-01&resource=https%3A%2F%2Fstorage.azure.com&principal_id=p1"
        );
        let v = &req.headers()["x-identity-header"];
        assert!(v.is_sensitive());
        assert_eq!(v, "hdr-secret-1234");
        assert!(!format!("{:?}", req.headers()).contains("hdr-secret-1234"));
        let req = app_service_request(
            &url,
            &header,
            "r",
            Some(&UserAssignedId::ResourceId("x".into())),
        )
        .expect("req");
        assert!(req.uri().query().expect("q").ends_with("mi_res_id=x"));
        let req = app_service_request(
            &url,
            &header,
            "r",
            Some(&UserAssignedId::ClientId("c".into())),
        )
        .expect("req");
        assert!(req.uri().query().expect("q").ends_with("client_id=c"));
    }

    #[test]
    fn endpoint_detection_from_env() {
        let o = ManagedIdentityOptions::from_env_with(env_of(&[])).expect("imds");
        assert!(
            matches!(o.endpoint, ManagedIdentityEndpoint::Imds { ref base } if base == IMDS_DEFAULT_BASE)
        );
        let o = ManagedIdentityOptions::from_env_with(env_of(&[(
            env::AZURE_POD_IDENTITY_AUTHORITY_HOST,
            "http://127.0.0.1:9",
        )]))
        .expect("imds");
        assert!(
            matches!(o.endpoint, ManagedIdentityEndpoint::Imds { ref base } if base == "http://127.0.0.1:9")
        );
        let o = ManagedIdentityOptions::from_env_with(env_of(&[
            (env::IDENTITY_ENDPOINT, "http://127.0.0.1:41741/msi/token"),
            (env::IDENTITY_HEADER, "hdr-secret-1234"),
        ]))
        .expect("app service");
        assert!(matches!(
            o.endpoint,
            ManagedIdentityEndpoint::AppService { .. }
        ));
        assert!(!format!("{o:?}").contains("hdr-secret-1234"));
        for (pairs, want) in [
            (
                vec![
                    (env::IDENTITY_ENDPOINT, "http://x"),
                    (env::IDENTITY_HEADER, "h"),
                    (env::IDENTITY_SERVER_THUMBPRINT, "t"),
                ],
                "Service Fabric",
            ),
            (
                vec![
                    (env::IDENTITY_ENDPOINT, "http://x"),
                    (env::IMDS_ENDPOINT, "http://y"),
                ],
                "Azure Arc",
            ),
            (
                vec![(env::IDENTITY_ENDPOINT, "http://x")],
                "IDENTITY_HEADER",
            ),
        ] {
            let e = ManagedIdentityOptions::from_env_with(env_of(&pairs)).expect_err(want);
            assert!(e.to_string().contains(want), "{e}");
            assert!(IdentityError::of(&e).expect("identity").is_unavailable());
        }
    }

    #[test]
    fn bad_settings_are_config_errors() {
        let bad_base = ManagedIdentityOptions {
            endpoint: ManagedIdentityEndpoint::Imds {
                base: "ftp://x".into(),
            },
            ..Default::default()
        };
        assert!(ManagedIdentityCredential::new(bad_base).is_err());
        let empty_id = ManagedIdentityOptions {
            user_assigned: Some(UserAssignedId::ClientId(" ".into())),
            ..Default::default()
        };
        assert!(ManagedIdentityCredential::new(empty_id).is_err());
        let bad_header = ManagedIdentityOptions {
            endpoint: ManagedIdentityEndpoint::AppService {
                endpoint: "http://127.0.0.1:1/msi".into(),
                header: Secret::new("a\nb"),
            },
            ..Default::default()
        };
        assert!(ManagedIdentityCredential::new(bad_header).is_err());
    }
}
