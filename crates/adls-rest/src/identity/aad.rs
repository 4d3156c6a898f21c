//! The Microsoft identity platform's token endpoint, shared by the client
//! secret and workload identity credentials: the client credentials grant
//! (`POST {authority}/{tenant}/oauth2/v2.0/token`, form-encoded), with the
//! client authenticated by a secret or by a signed assertion (a federated token).

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request};
use time::OffsetDateTime;
use url::Url;

use super::error::{parse_error_body, IdentityError};
use super::http::{to_uri, transient_status, SendError, TokenHttp, TokenHttpOptions};
use super::response::parse_token_response;
use crate::account::is_loopback;
use crate::credential::AccessToken;
use crate::error::Error;

/// Microsoft Entra ID in Azure's public cloud. Sovereign clouds have their own
/// (`https://login.microsoftonline.us`, `https://login.chinacloudapi.cn`), set
/// through `AZURE_AUTHORITY_HOST` or [`EntraOptions::authority_host`].
pub const AZURE_PUBLIC_CLOUD: &str = "https://login.microsoftonline.com";

/// `client_assertion_type` of a JWT assertion (RFC 7523).
pub(crate) const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// Settings of the client secret and workload identity credentials.
#[derive(Debug, Clone)]
pub struct EntraOptions {
    /// The authority, e.g. [`AZURE_PUBLIC_CLOUD`]. `https://` is assumed when no
    /// scheme is given; `http://` is accepted for loopback hosts only (tests).
    pub authority_host: String,
    /// How the token requests are sent.
    pub http: TokenHttpOptions,
}

impl EntraOptions {
    /// The authority from `AZURE_AUTHORITY_HOST` (sovereign clouds), else the public cloud.
    pub(crate) fn from_env_parts(env: &super::Env<'_>, http: TokenHttpOptions) -> Self {
        EntraOptions {
            authority_host: env
                .get(super::env_names::AZURE_AUTHORITY_HOST)
                .unwrap_or_else(|| AZURE_PUBLIC_CLOUD.to_string()),
            http,
        }
    }
}

impl Default for EntraOptions {
    fn default() -> Self {
        EntraOptions {
            authority_host: AZURE_PUBLIC_CLOUD.to_string(),
            http: TokenHttpOptions::default(),
        }
    }
}

/// How the client proves who it is.
pub(crate) enum ClientAuth<'a> {
    Secret(&'a str),
    Assertion(&'a str),
}

/// `{authority}/{tenant}/oauth2/v2.0/token`, validating both parts.
pub(crate) fn token_endpoint(authority_host: &str, tenant_id: &str) -> Result<Url, Error> {
    validate_tenant(tenant_id)?;
    let raw = authority_host.trim();
    let with_scheme = if raw.contains("://") {
        raw.to_string()
    } else {
        format!("https://{raw}")
    };
    let mut url = Url::parse(&with_scheme).map_err(|e| {
        Error::config(format!(
            "authority host `{raw}` is not a URL ({e}); expected e.g. {AZURE_PUBLIC_CLOUD}"
        ))
    })?;
    match url.scheme() {
        "https" => {}
        "http" if is_loopback(&url) => {}
        other => {
            return Err(Error::config(format!(
            "authority host `{raw}` uses `{other}`; expected https (http only for a loopback host)"
        )))
        }
    }
    if url.query().is_some() || url.fragment().is_some() || url.host().is_none() {
        return Err(Error::config(format!(
            "authority host `{raw}` must be a scheme and host, e.g. {AZURE_PUBLIC_CLOUD}"
        )));
    }
    let base = url.path().trim_end_matches('/').to_string();
    url.set_path(&format!("{base}/{tenant_id}/oauth2/v2.0/token"));
    Ok(url)
}

/// A tenant is a GUID or a domain name (`contoso.onmicrosoft.com`).
pub(crate) fn validate_tenant(tenant_id: &str) -> Result<(), Error> {
    let ok = !tenant_id.is_empty()
        && tenant_id.len() <= 256
        && tenant_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.'));
    if ok {
        Ok(())
    } else {
        Err(Error::config(format!(
            "tenant id `{}` is invalid; expected a GUID or a domain such as contoso.onmicrosoft.com \
             (letters, digits, `-` and `.`)",
            tenant_id.chars().take(64).collect::<String>()
        )))
    }
}

/// A client id is an application (GUID) id; anything printable is let through
/// to the service, which has the last word.
pub(crate) fn validate_client_id(client_id: &str) -> Result<(), Error> {
    if client_id.trim().is_empty() || client_id.chars().any(char::is_control) {
        return Err(Error::config(
            "client id is empty or has control characters; expected the application (client) id, a GUID",
        ));
    }
    Ok(())
}

/// The client credentials grant as a request value (no IO).
pub(crate) fn client_credentials_request(
    endpoint: &http::Uri,
    client_id: &str,
    scope: &str,
    auth: ClientAuth<'_>,
) -> Request<Bytes> {
    let mut form = url::form_urlencoded::Serializer::new(String::new());
    form.append_pair("client_id", client_id)
        .append_pair("scope", scope)
        .append_pair("grant_type", "client_credentials");
    match auth {
        ClientAuth::Secret(s) => {
            form.append_pair("client_secret", s);
        }
        ClientAuth::Assertion(a) => {
            form.append_pair("client_assertion_type", JWT_BEARER)
                .append_pair("client_assertion", a);
        }
    }
    let body = Bytes::from(form.finish());
    let mut req = Request::new(body);
    *req.method_mut() = Method::POST;
    *req.uri_mut() = endpoint.clone();
    let h = req.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-www-form-urlencoded"),
    );
    h.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
    req
}

/// A confidential client of one tenant's token endpoint.
pub(crate) struct ConfidentialClient {
    pub name: &'static str,
    pub tenant_id: String,
    pub client_id: String,
    pub endpoint: Url,
    endpoint_uri: http::Uri,
    pub http: TokenHttp,
}

impl ConfidentialClient {
    pub(crate) fn new(
        name: &'static str,
        tenant_id: &str,
        client_id: &str,
        options: &EntraOptions,
    ) -> Result<Self, Error> {
        validate_client_id(client_id)?;
        let endpoint = token_endpoint(&options.authority_host, tenant_id)?;
        let endpoint_uri = to_uri(&endpoint)?;
        Ok(ConfidentialClient {
            name,
            tenant_id: tenant_id.to_string(),
            client_id: client_id.trim().to_string(),
            endpoint,
            endpoint_uri,
            http: TokenHttp::new(&options.http)?,
        })
    }

    /// Requests a token; `secret` is what authenticates the client, kept out of
    /// every message.
    pub(crate) async fn token(
        &self,
        scope: &str,
        auth: ClientAuth<'_>,
    ) -> Result<AccessToken, Error> {
        let secret = match &auth {
            ClientAuth::Secret(s) | ClientAuth::Assertion(s) => s.to_string(),
        };
        let req = client_credentials_request(&self.endpoint_uri, &self.client_id, scope, auth);
        tracing::debug!(
            credential = self.name,
            endpoint = %self.endpoint,
            client_id = %self.client_id,
            "requesting a token"
        );
        let max = self.http.options().retry.max_attempts;
        let answer = self.http.send(&req, transient_status, max).await;
        interpret(
            self.name,
            &format!("the token endpoint {}", self.endpoint),
            answer,
            &[&secret],
        )
        .map_err(|e| e.into_error())
    }
}

/// Turns an answer (or its absence) into a token or a typed failure.
/// `what` names the endpoint in messages ("the token endpoint https://...").
pub(crate) fn interpret(
    name: &'static str,
    what: &str,
    answer: Result<super::http::Answer, SendError>,
    secrets: &[&str],
) -> Result<AccessToken, Box<IdentityError>> {
    let answer = answer.map_err(|e| {
        Box::new(
            IdentityError::new(name, format!("no answer from {what}")).with_detail(e.to_string()),
        )
    })?;
    if !answer.status.is_success() {
        let body = parse_error_body(&answer.body);
        let err = IdentityError::new(name, format!("{what} answered {}", answer.status.as_u16()))
            .with_answer(answer.status.as_u16(), body, secrets);
        tracing::debug!(credential = name, status = answer.status.as_u16(), error = %err, "token request refused");
        return Err(Box::new(err));
    }
    let token = parse_token_response(&answer.body, OffsetDateTime::now_utc()).map_err(|why| {
        Box::new(
            IdentityError::new(
                name,
                format!(
                    "{what} answered {} with something that is not a token",
                    answer.status.as_u16()
                ),
            )
            .with_detail(why),
        )
    })?;
    tracing::debug!(credential = name, expires_on = %token.expires_on, "token acquired");
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_from_authority_and_tenant() {
        let u = token_endpoint(AZURE_PUBLIC_CLOUD, "contoso.onmicrosoft.com").expect("url");
        assert_eq!(
            u.as_str(),
            "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token"
        );
        let u = token_endpoint(
            "login.microsoftonline.us/",
            "72f988bf-86f1-41af-91ab-2d7cd011db47",
        )
        .expect("url");
        assert_eq!(
            u.as_str(),
            "https://login.microsoftonline.us/72f988bf-86f1-41af-91ab-2d7cd011db47/oauth2/v2.0/token"
        );
        let u = token_endpoint("http://127.0.0.1:8080/", "t").expect("loopback http");
        assert_eq!(u.as_str(), "http://127.0.0.1:8080/t/oauth2/v2.0/token");
        assert!(
            token_endpoint("http://login.example.com", "t").is_err(),
            "http off loopback"
        );
        assert!(token_endpoint(AZURE_PUBLIC_CLOUD, "a/b").is_err());
        assert!(token_endpoint(AZURE_PUBLIC_CLOUD, "").is_err());
        assert!(token_endpoint("https://x?y=1", "t").is_err());
    }

    #[test]
    fn client_credentials_form() {
        let ep = to_uri(&token_endpoint(AZURE_PUBLIC_CLOUD, "tenant1").expect("url")).expect("uri");
        let req = client_credentials_request(
            &ep,
            "app-1",
            crate::credential::STORAGE_SCOPE,
            ClientAuth::Secret("s&e=c r+t"),
        );
        assert_eq!(req.method(), Method::POST);
        assert_eq!(
            req.uri().to_string(),
            "https://login.microsoftonline.com/tenant1/oauth2/v2.0/token"
        );
        assert_eq!(
            req.headers()[header::CONTENT_TYPE],
            "application/x-www-form-urlencoded"
        );
        let form: Vec<(String, String)> = url::form_urlencoded::parse(req.body())
            .into_owned()
            .collect();
        assert_eq!(
            form,
            vec![
                ("client_id".into(), "app-1".into()),
                ("scope".into(), "https://storage.azure.com/.default".into()),
                ("grant_type".into(), "client_credentials".into()),
                ("client_secret".into(), "s&e=c r+t".into()),
            ]
        );

        let req = client_credentials_request(&ep, "app-1", "s", ClientAuth::Assertion("eyJ.a.b"));
        let form: Vec<(String, String)> = url::form_urlencoded::parse(req.body())
            .into_owned()
            .collect();
        assert!(form.contains(&("client_assertion_type".into(), JWT_BEARER.into())));
        assert!(form.contains(&("client_assertion".into(), "eyJ.a.b".into())));
        assert!(!form.iter().any(|(k, _)| k == "client_secret"));
    }
}
