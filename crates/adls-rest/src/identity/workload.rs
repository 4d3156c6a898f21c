//! [`WorkloadIdentityCredential`]: Microsoft Entra Workload ID (AKS and other
//! Kubernetes clusters), a federated service account token exchanged for an
//! Entra token.

use std::fmt;
use std::path::{Path, PathBuf};

use super::aad::{ClientAuth, ConfidentialClient, EntraOptions};
use super::error::IdentityError;
use super::{env_names as env, Env};
use crate::credential::{AccessToken, BoxFuture, TokenCredential};
use crate::error::Error;

const NAME: &str = "WorkloadIdentityCredential";

/// Workload identity: the client credentials grant with
/// `client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer`
/// and the projected service account token as `client_assertion`.
///
/// The token file is read again for every token request: the kubelet rotates it.
///
/// ```
/// # fn main() -> Result<(), adls_rest::Error> {
/// use std::sync::Arc;
/// use adls_rest::{Credential, WorkloadIdentityCredential};
///
/// // On AKS, usually `WorkloadIdentityCredential::from_env()` (AZURE_TENANT_ID,
/// // AZURE_CLIENT_ID, AZURE_FEDERATED_TOKEN_FILE, set by the webhook).
/// let workload = WorkloadIdentityCredential::new(
///     "contoso.onmicrosoft.com",
///     "00000000-0000-0000-0000-000000000000",
///     "/var/run/secrets/azure/tokens/azure-identity-token",
/// )?;
/// let credential = Credential::bearer(Arc::new(workload));
/// # let _ = credential; Ok(()) }
/// ```
pub struct WorkloadIdentityCredential {
    client: ConfidentialClient,
    token_file: PathBuf,
}

impl WorkloadIdentityCredential {
    /// A credential for `client_id` in `tenant_id`, asserting the contents of `token_file`.
    pub fn new(
        tenant_id: &str,
        client_id: &str,
        token_file: impl Into<PathBuf>,
    ) -> Result<Self, Error> {
        Self::with_options(tenant_id, client_id, token_file, EntraOptions::default())
    }

    /// As [`new`](Self::new), with another authority or HTTP settings.
    pub fn with_options(
        tenant_id: &str,
        client_id: &str,
        token_file: impl Into<PathBuf>,
        options: EntraOptions,
    ) -> Result<Self, Error> {
        let token_file = token_file.into();
        if token_file.as_os_str().is_empty() {
            return Err(Error::config(
                "federated token file path is empty; expected the path in AZURE_FEDERATED_TOKEN_FILE",
            ));
        }
        Ok(WorkloadIdentityCredential {
            client: ConfidentialClient::new(NAME, tenant_id, client_id, &options)?,
            token_file,
        })
    }

    /// From `AZURE_TENANT_ID`, `AZURE_CLIENT_ID`, `AZURE_FEDERATED_TOKEN_FILE`
    /// and (optionally) `AZURE_AUTHORITY_HOST`, as the AKS workload identity
    /// webhook sets them.
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
                env::AZURE_FEDERATED_TOKEN_FILE,
            ],
        )?;
        let options = EntraOptions::from_env_parts(env, http);
        Self::with_options(&vars[0], &vars[1], &vars[2], options).map_err(|e| {
            IdentityError::new(NAME, format!("invalid settings in the environment: {e}"))
                .into_error()
        })
    }

    /// The file the assertion is read from.
    pub fn token_file(&self) -> &Path {
        &self.token_file
    }

    async fn read_assertion(&self) -> Result<String, Error> {
        let path = self.token_file.clone();
        let read = tokio::task::spawn_blocking(move || std::fs::read_to_string(&path)).await;
        let fail = |detail: String| {
            IdentityError::new(
                NAME,
                format!(
                    "could not read the federated token file {}",
                    self.token_file.display()
                ),
            )
            .with_detail(detail)
            .into_error()
        };
        let text = match read {
            Ok(Ok(t)) => t,
            Ok(Err(e)) => return Err(fail(e.to_string())),
            Err(e) => return Err(fail(format!("the reading task failed: {e}"))),
        };
        let assertion = text.trim();
        if assertion.is_empty() {
            return Err(fail("the file is empty".into()));
        }
        Ok(assertion.to_string())
    }
}

impl fmt::Debug for WorkloadIdentityCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(NAME)
            .field("tenant_id", &self.client.tenant_id)
            .field("client_id", &self.client.client_id)
            .field("endpoint", &self.client.endpoint.as_str())
            .field("token_file", &self.token_file)
            .finish()
    }
}

impl TokenCredential for WorkloadIdentityCredential {
    fn get_token<'a>(&'a self, scope: &'a str) -> BoxFuture<'a, Result<AccessToken, Error>> {
        Box::pin(async move {
            let assertion = self.read_assertion().await?;
            self.client
                .token(scope, ClientAuth::Assertion(&assertion))
                .await
        })
    }
}
