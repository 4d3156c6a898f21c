//! [`DefaultAzureCredential`]: the first of environment, managed identity and
//! Azure CLI that works, then that one from then on.

use std::fmt;
use std::sync::OnceLock;

use super::cli::AzureCliCredential;
use super::client_secret::ClientSecretCredential;
use super::error::IdentityError;
use super::http::TokenHttpOptions;
use super::managed::{ManagedIdentityCredential, ManagedIdentityOptions, UserAssignedId};
use super::workload::WorkloadIdentityCredential;
use super::{env_names as env, Env};
use crate::credential::{AccessToken, BoxFuture, TokenCredential};
use crate::error::Error;

const NAME: &str = "DefaultAzureCredential";

/// Settings of a [`DefaultAzureCredential`].
#[derive(Debug, Clone)]
pub struct DefaultAzureCredentialOptions {
    /// How requests to the Microsoft Entra token endpoint are sent (client secret, workload identity).
    pub entra_http: TokenHttpOptions,
    /// How managed identity requests are sent; the 1 s connect timeout of
    /// [`TokenHttpOptions::managed_identity`] lets a machine without IMDS move on quickly.
    pub managed_identity_http: TokenHttpOptions,
    /// The Azure CLI step (program, timeout, tenant).
    pub azure_cli: AzureCliCredential,
}

impl Default for DefaultAzureCredentialOptions {
    fn default() -> Self {
        DefaultAzureCredentialOptions {
            entra_http: TokenHttpOptions::default(),
            managed_identity_http: TokenHttpOptions::managed_identity(),
            azure_cli: AzureCliCredential::new(),
        }
    }
}

enum Cred {
    ClientSecret(ClientSecretCredential),
    Workload(WorkloadIdentityCredential),
    Managed(ManagedIdentityCredential),
    Cli(AzureCliCredential),
}

impl Cred {
    fn get_token<'a>(&'a self, scope: &'a str) -> BoxFuture<'a, Result<AccessToken, Error>> {
        match self {
            Cred::ClientSecret(c) => c.get_token(scope),
            Cred::Workload(c) => c.get_token(scope),
            Cred::Managed(c) => c.get_token(scope),
            Cred::Cli(c) => c.get_token(scope),
        }
    }
}

impl fmt::Debug for Cred {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cred::ClientSecret(c) => c.fmt(f),
            Cred::Workload(c) => c.fmt(f),
            Cred::Managed(c) => c.fmt(f),
            Cred::Cli(c) => c.fmt(f),
        }
    }
}

struct Source {
    label: &'static str,
    /// The credential, or why it could not be built (not configured, or configured wrongly).
    cred: Result<Cred, Error>,
}

/// Tries, in order:
/// 1. **environment**: [`ClientSecretCredential`] when `AZURE_CLIENT_SECRET` is
///    set, else [`WorkloadIdentityCredential`] when `AZURE_FEDERATED_TOKEN_FILE` is
///    set (both with `AZURE_TENANT_ID`, `AZURE_CLIENT_ID`, `AZURE_AUTHORITY_HOST`);
/// 2. **managed identity**: [`ManagedIdentityCredential`] as the environment
///    describes it (App Service, else IMDS), user-assigned by `AZURE_CLIENT_ID`
///    when that is set. The first IMDS request is a probe with a 1 s connect
///    timeout and no retry, so a laptop moves on quickly;
/// 3. **Azure CLI**: [`AzureCliCredential`].
///
/// A source that is not configured or not present (no variables, no IMDS, no
/// `az`, not logged in) is skipped. A source that is configured and fails (a
/// wrong secret, a token endpoint that answers 500) stops the chain, as in
/// Microsoft's SDKs: it would be wrong to quietly act as another identity. The
/// first source that gives a token is used from then on. When none does, the
/// error says for each source why it was skipped, failed or not tried.
///
/// The environment is read once, when the credential is built.
pub struct DefaultAzureCredential {
    sources: Vec<Source>,
    selected: OnceLock<usize>,
}

impl DefaultAzureCredential {
    /// The chain, configured from the process environment.
    pub fn new() -> Self {
        Self::with_options(DefaultAzureCredentialOptions::default())
    }

    /// The chain with other HTTP or Azure CLI settings, configured from the process environment.
    pub fn with_options(options: DefaultAzureCredentialOptions) -> Self {
        Self::from_env_with(|k| std::env::var(k).ok(), options)
    }

    /// The chain, reading variables through `lookup` (for tests, and for
    /// configuration that is not the process environment).
    pub fn from_env_with<F, S>(lookup: F, options: DefaultAzureCredentialOptions) -> Self
    where
        F: Fn(&str) -> Option<S>,
        S: Into<String>,
    {
        let f = move |k: &str| lookup(k).map(Into::into);
        let env = Env(&f);
        let sources = vec![
            environment_source(&env, &options),
            managed_identity_source(&env, &options),
            Source {
                label: "Azure CLI",
                cred: Ok(Cred::Cli(options.azure_cli.clone())),
            },
        ];
        for s in &sources {
            if let Err(e) = &s.cred {
                tracing::debug!(source = s.label, reason = %e, "DefaultAzureCredential: source not configured");
            }
        }
        DefaultAzureCredential {
            sources,
            selected: OnceLock::new(),
        }
    }

    /// The source in use once one has given a token: `environment (client
    /// secret)`, `environment (workload identity)`, `managed identity` or `Azure CLI`.
    pub fn selected_source(&self) -> Option<&'static str> {
        self.selected.get().map(|&i| self.sources[i].label)
    }

    async fn token(&self, scope: &str) -> Result<AccessToken, Error> {
        if let Some(&i) = self.selected.get() {
            if let Ok(c) = &self.sources[i].cred {
                return c.get_token(scope).await;
            }
        }
        let mut history: Vec<(&'static str, Error)> = Vec::new();
        let mut stopped_at = None;
        for (i, source) in self.sources.iter().enumerate() {
            let result = match &source.cred {
                Ok(c) => c.get_token(scope).await,
                Err(e) => Err(clone_error(e)),
            };
            match result {
                Ok(t) => {
                    let _ = self.selected.set(i);
                    tracing::info!(
                        source = source.label,
                        "DefaultAzureCredential: using this source from now on"
                    );
                    return Ok(t);
                }
                Err(e) => {
                    let skip = is_unavailable(&e);
                    tracing::debug!(source = source.label, skipped = skip, error = %e, "DefaultAzureCredential: source did not give a token");
                    history.push((source.label, e));
                    if !skip {
                        stopped_at = Some(i);
                        break;
                    }
                }
            }
        }
        Err(self.chain_error(history, stopped_at))
    }

    fn chain_error(&self, history: Vec<(&'static str, Error)>, stopped_at: Option<usize>) -> Error {
        let describe = |(label, e): &(&'static str, Error)| {
            let verdict = if is_unavailable(e) {
                "skipped"
            } else {
                "failed"
            };
            format!("{label}: {verdict} ({})", without_kind(e))
        };
        let Some(i) = stopped_at else {
            let all: Vec<String> = history.iter().map(describe).collect();
            return IdentityError::new(NAME, "no credential source is available")
                .with_detail(all.join("; "))
                .unavailable()
                .into_error();
        };
        // A configured source failed: say so first, keeping its code and
        // description for callers that inspect them, then what was skipped
        // before it and what was not tried.
        let label = self.sources[i].label;
        let mut context: Vec<String> = history[..history.len().saturating_sub(1)]
            .iter()
            .map(describe)
            .collect();
        let rest: Vec<&str> = self.sources[i + 1..].iter().map(|s| s.label).collect();
        if !rest.is_empty() {
            context.push(format!("not tried: {}", rest.join(", ")));
        }
        let failed = history
            .last()
            .and_then(|(_, e)| IdentityError::of(e))
            .cloned();
        let err = match failed {
            Some(inner) => {
                let headline = format!(
                    "{label} failed ({}: {})",
                    inner.credential(),
                    inner.headline()
                );
                inner.renamed(NAME).with_headline(headline)
            }
            None => {
                let why = history
                    .last()
                    .map(|(_, e)| without_kind(e))
                    .unwrap_or_default();
                IdentityError::new(NAME, format!("{label} failed ({why})"))
            }
        };
        if context.is_empty() {
            err.into_error()
        } else {
            err.append_detail(context.join("; ")).into_error()
        }
    }
}

impl Default for DefaultAzureCredential {
    fn default() -> Self {
        Self::new()
    }
}

fn environment_source(env: &Env<'_>, options: &DefaultAzureCredentialOptions) -> Source {
    if env.get(env::AZURE_CLIENT_SECRET).is_some() {
        return Source {
            label: "environment (client secret)",
            cred: ClientSecretCredential::from_env_parts(env, options.entra_http.clone())
                .map(Cred::ClientSecret),
        };
    }
    if env.get(env::AZURE_FEDERATED_TOKEN_FILE).is_some() {
        return Source {
            label: "environment (workload identity)",
            cred: WorkloadIdentityCredential::from_env_parts(env, options.entra_http.clone())
                .map(Cred::Workload),
        };
    }
    Source {
        label: "environment",
        cred: Err(IdentityError::new(
            "EnvironmentCredential",
            "neither AZURE_CLIENT_SECRET nor AZURE_FEDERATED_TOKEN_FILE is set",
        )
        .unavailable()
        .into_error()),
    }
}

fn managed_identity_source(env: &Env<'_>, options: &DefaultAzureCredentialOptions) -> Source {
    let cred = ManagedIdentityOptions::from_env_parts(env).and_then(|mut o| {
        o.user_assigned = env.get(env::AZURE_CLIENT_ID).map(UserAssignedId::ClientId);
        o.http = options.managed_identity_http.clone();
        ManagedIdentityCredential::new(o).map(|c| Cred::Managed(c.probing()))
    });
    Source {
        label: "managed identity",
        cred,
    }
}

fn is_unavailable(e: &Error) -> bool {
    IdentityError::of(e).is_some_and(IdentityError::is_unavailable)
}

/// `e`'s text without the leading "credential error: ".
fn without_kind(e: &Error) -> String {
    let s = e.to_string();
    let prefix = format!("{}: ", e.kind());
    s.strip_prefix(&prefix).map(str::to_string).unwrap_or(s)
}

/// A construction error, given again at every attempt (errors are not `Clone`).
fn clone_error(e: &Error) -> Error {
    match IdentityError::of(e) {
        Some(ie) => ie.clone().into_error(),
        None => Error::new(e.kind(), without_kind(e)),
    }
}

impl fmt::Debug for DefaultAzureCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{NAME} ")?;
        let mut l = f.debug_list();
        for s in &self.sources {
            match &s.cred {
                Ok(c) => l.entry(&(s.label, c)),
                Err(e) => l.entry(&(s.label, format!("not configured: {}", without_kind(e)))),
            };
        }
        l.finish()?;
        if let Some(sel) = self.selected_source() {
            write!(f, " (using {sel})")?;
        }
        Ok(())
    }
}

impl TokenCredential for DefaultAzureCredential {
    fn get_token<'a>(&'a self, scope: &'a str) -> BoxFuture<'a, Result<AccessToken, Error>> {
        Box::pin(self.token(scope))
    }
}
