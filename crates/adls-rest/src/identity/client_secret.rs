//! [`ClientSecretCredential`]: a service principal (app registration) with a
//! client secret, through the client credentials grant.

use std::fmt;

use super::aad::{ClientAuth, ConfidentialClient, EntraOptions};
use super::error::IdentityError;
use super::{env_names as env, Env};
use crate::credential::{AccessToken, BoxFuture, TokenCredential};
use crate::error::Error;
use crate::secret::Secret;

const NAME: &str = "ClientSecretCredential";

/// A service principal authenticated by a client secret:
/// `POST {authority}/{tenant}/oauth2/v2.0/token` with `client_id`,
/// `client_secret`, `scope` and `grant_type=client_credentials`.
///
/// ```
/// # fn main() -> Result<(), adls_rest::Error> {
/// use std::sync::Arc;
/// use adls_rest::{Account, Client, ClientSecretCredential, Credential};
///
/// // Or `ClientSecretCredential::from_env()` (AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_CLIENT_SECRET).
/// let principal = ClientSecretCredential::new(
///     "contoso.onmicrosoft.com",
///     "00000000-0000-0000-0000-000000000000",
///     "the secret's value",
/// )?;
/// assert!(!format!("{principal:?}").contains("the secret's value"));
/// // Nothing is requested until the first storage request needs a token.
/// let credential = Credential::bearer(Arc::new(principal));
/// let client = Client::builder(Account::azure("mystorageaccount")?, credential).build()?;
/// # let _ = client; Ok(()) }
/// ```
pub struct ClientSecretCredential {
    client: ConfidentialClient,
    secret: Secret,
}

impl ClientSecretCredential {
    /// A credential for `client_id` in `tenant_id` (a GUID or a domain) in
    /// Azure's public cloud.
    pub fn new(
        tenant_id: &str,
        client_id: &str,
        client_secret: impl Into<String>,
    ) -> Result<Self, Error> {
        Self::with_options(tenant_id, client_id, client_secret, EntraOptions::default())
    }

    /// As [`new`](Self::new), with another authority or HTTP settings.
    pub fn with_options(
        tenant_id: &str,
        client_id: &str,
        client_secret: impl Into<String>,
        options: EntraOptions,
    ) -> Result<Self, Error> {
        let secret = client_secret.into();
        if secret.trim().is_empty() {
            return Err(Error::config(
                "client secret is empty; expected the secret's value (not its id) from the app registration",
            ));
        }
        Ok(ClientSecretCredential {
            client: ConfidentialClient::new(NAME, tenant_id, client_id, &options)?,
            secret: Secret::new(secret.trim()),
        })
    }

    /// From `AZURE_TENANT_ID`, `AZURE_CLIENT_ID`, `AZURE_CLIENT_SECRET` and
    /// (optionally) `AZURE_AUTHORITY_HOST`.
    pub fn from_env() -> Result<Self, Error> {
        Self::from_env_with(|k| std::env::var(k).ok())
    }

    /// As [`from_env`](Self::from_env), reading variables through `lookup`
    /// (for tests and for configuration that is not the process environment).
    pub fn from_env_with<F, S>(lookup: F) -> Result<Self, Error>
    where
        F: Fn(&str) -> Option<S>,
        S: Into<String>,
    {
        let f = move |k: &str| lookup(k).map(Into::into);
        Self::from_env_parts(&Env(&f), super::TokenHttpOptions::default())
    }

    pub(crate) fn from_env_parts(
        env: &Env<'_>,
        http: super::TokenHttpOptions,
    ) -> Result<Self, Error> {
        let vars = env.require(
            NAME,
            &[
                env::AZURE_TENANT_ID,
                env::AZURE_CLIENT_ID,
                env::AZURE_CLIENT_SECRET,
            ],
        )?;
        let options = EntraOptions::from_env_parts(env, http);
        // Set but wrong is not "unavailable": a chain stops here rather than
        // silently using another identity.
        Self::with_options(&vars[0], &vars[1], vars[2].clone(), options).map_err(|e| {
            IdentityError::new(NAME, format!("invalid settings in the environment: {e}"))
                .into_error()
        })
    }
}

impl fmt::Debug for ClientSecretCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(NAME)
            .field("tenant_id", &self.client.tenant_id)
            .field("client_id", &self.client.client_id)
            .field("endpoint", &self.client.endpoint.as_str())
            .field("client_secret", &self.secret)
            .finish()
    }
}

impl TokenCredential for ClientSecretCredential {
    fn get_token<'a>(&'a self, scope: &'a str) -> BoxFuture<'a, Result<AccessToken, Error>> {
        Box::pin(async move {
            self.client
                .token(scope, ClientAuth::Secret(self.secret.expose_secret()))
                .await
        })
    }
}
