//! [`AzureCliCredential`]: the identity signed in to the Azure CLI (`az login`),
//! for development machines.
//!
//! Runs `az account get-access-token --resource https://storage.azure.com
//! --output json` (no shell in between) with a timeout, `AZURE_CORE_NO_COLOR=true`
//! and `TZ=UTC`. The output's `expires_on` (epoch seconds, Azure CLI 2.54 and
//! later) is preferred; older versions only print `expiresOn`, a local time
//! without offset, which `TZ=UTC` makes UTC.

use std::fmt;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use time::{OffsetDateTime, UtcOffset};

use super::aad::validate_tenant;
use super::error::IdentityError;
use super::response::parse_cli_output;
use super::scope_to_resource;
use crate::credential::{AccessToken, BoxFuture, TokenCredential};
use crate::error::Error;
use crate::secret::REDACTED;

const NAME: &str = "AzureCliCredential";

/// How long `az` may take by default (it starts a Python interpreter).
pub const AZ_DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Tokens from the Azure CLI's signed-in account.
///
/// ```
/// # fn main() -> Result<(), adls_rest::Error> {
/// use std::{sync::Arc, time::Duration};
/// use adls_rest::{AzureCliCredential, Credential};
///
/// // For a developer's machine after `az login`; `az` runs only when a token is needed.
/// let cli = AzureCliCredential::new()
///     .with_timeout(Duration::from_secs(20))
///     .with_tenant_id("contoso.onmicrosoft.com")?;
/// let credential = Credential::bearer(Arc::new(cli));
/// # let _ = credential; Ok(()) }
/// ```
#[derive(Clone)]
pub struct AzureCliCredential {
    program: PathBuf,
    timeout: Duration,
    tenant_id: Option<String>,
}

impl Default for AzureCliCredential {
    fn default() -> Self {
        Self::new()
    }
}

impl AzureCliCredential {
    /// Runs `az` from `PATH`, with a 10 s timeout, for the CLI's default tenant.
    pub fn new() -> Self {
        AzureCliCredential {
            program: PathBuf::from("az"),
            timeout: AZ_DEFAULT_TIMEOUT,
            tenant_id: None,
        }
    }

    /// Runs `program` instead of `az` from `PATH` (a full path, or a stand-in in tests).
    pub fn with_program(mut self, program: impl Into<PathBuf>) -> Self {
        self.program = program.into();
        self
    }

    /// How long one run of `az` may take.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Asks for a token of `tenant_id` (`--tenant`) instead of the CLI's default.
    pub fn with_tenant_id(mut self, tenant_id: &str) -> Result<Self, Error> {
        validate_tenant(tenant_id)?;
        self.tenant_id = Some(tenant_id.to_string());
        Ok(self)
    }

    /// The arguments given to `az`.
    fn args(&self, resource: &str) -> Vec<String> {
        let mut args: Vec<String> = [
            "account",
            "get-access-token",
            "--resource",
            resource,
            "--output",
            "json",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        if let Some(t) = &self.tenant_id {
            args.extend(["--tenant".to_string(), t.clone()]);
        }
        args
    }

    async fn token(&self, scope: &str) -> Result<AccessToken, Error> {
        let resource = scope_to_resource(scope);
        if resource.is_empty()
            || !resource
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.:/".contains(c))
        {
            return Err(IdentityError::new(
                NAME,
                "the scope is not a resource URL such as https://storage.azure.com/.default",
            )
            .into_error());
        }
        let program = self.program.display().to_string();
        tracing::debug!(credential = NAME, program = %program, "running the Azure CLI");
        let child = tokio::process::Command::new(&self.program)
            .args(self.args(resource))
            .env("AZURE_CORE_NO_COLOR", "true")
            .env("TZ", "UTC")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn();
        let child = match child {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(IdentityError::new(
                    NAME,
                    format!("the Azure CLI was not found: could not run `{program}`"),
                )
                .with_detail(format!(
                    "{e}; install it (https://aka.ms/azcli) and run `az login`, or use another credential"
                ))
                .unavailable()
                .into_error())
            }
            Err(e) => {
                return Err(IdentityError::new(NAME, format!("could not run `{program}`"))
                    .with_detail(e.to_string())
                    .into_error())
            }
        };
        let output = match tokio::time::timeout(self.timeout, child.wait_with_output()).await {
            Ok(Ok(o)) => o,
            Ok(Err(e)) => {
                return Err(
                    IdentityError::new(NAME, format!("running `{program}` failed"))
                        .with_detail(e.to_string())
                        .into_error(),
                )
            }
            Err(_) => {
                return Err(IdentityError::new(
                    NAME,
                    format!(
                        "`{program} account get-access-token` did not finish within {} ms",
                        self.timeout.as_millis()
                    ),
                )
                .into_error())
            }
        };
        if !output.status.success() {
            let err = classify_failure(
                &program,
                output.status.code(),
                &String::from_utf8_lossy(&output.stderr),
            );
            tracing::debug!(credential = NAME, error = %err, "the Azure CLI failed");
            return Err(err.into_error());
        }
        let token = parse_cli_output(&output.stdout, OffsetDateTime::now_utc(), UtcOffset::UTC)
            .map_err(|why| {
                IdentityError::new(
                    NAME,
                    format!("`{program} account get-access-token` printed something that is not a token"),
                )
                .with_detail(why)
                .into_error()
            })?;
        tracing::debug!(credential = NAME, expires_on = %token.expires_on, "token acquired");
        Ok(token)
    }
}

/// What a failed `az` run means: not installed (127), not logged in, or another failure.
fn classify_failure(program: &str, code: Option<i32>, stderr: &str) -> IdentityError {
    let summary = summarize_stderr(stderr);
    let exit = code.map_or_else(|| "was killed".to_string(), |c| format!("exited with {c}"));
    let e = IdentityError::new(NAME, format!("`{program} account get-access-token` {exit}"));
    let e = match summary {
        Some(s) => e.with_detail(s),
        None => e,
    };
    if code == Some(127) {
        return e
            .with_headline(format!(
                "the Azure CLI was not found (`{program}` exited with 127)"
            ))
            .unavailable();
    }
    if stderr.contains("az login") || stderr.contains("az account set") {
        return e
            .with_headline("the Azure CLI is not logged in; run `az login`")
            .unavailable();
    }
    e
}

/// The line of `az`'s stderr that says what went wrong (the first `ERROR:`
/// line, else the first line), shortened, with anything token-like removed.
fn summarize_stderr(stderr: &str) -> Option<String> {
    let lines: Vec<&str> = stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let line = lines
        .iter()
        .find(|l| l.starts_with("ERROR:"))
        .or_else(|| lines.first())?;
    let line = line.strip_prefix("ERROR:").unwrap_or(line).trim();
    let words: Vec<&str> = line
        .split(' ')
        .map(|w| if looks_like_a_token(w) { REDACTED } else { w })
        .collect();
    super::error::first_line(&words.join(" ")).map(|l| super::error::shorten(&l))
}

/// JWTs (`eyJ...`) and long unbroken base64-ish runs.
fn looks_like_a_token(word: &str) -> bool {
    let w = word.trim_matches(|c: char| "\"',;:()[]{}".contains(c));
    w.starts_with("eyJ")
        || (w.len() >= 32
            && w.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.+/=".contains(c)))
}

impl fmt::Debug for AzureCliCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(NAME)
            .field("program", &self.program)
            .field("timeout", &self.timeout)
            .field("tenant_id", &self.tenant_id)
            .finish()
    }
}

impl TokenCredential for AzureCliCredential {
    fn get_token<'a>(&'a self, scope: &'a str) -> BoxFuture<'a, Result<AccessToken, Error>> {
        Box::pin(self.token(scope))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments() {
        let c = AzureCliCredential::new();
        assert_eq!(
            c.args("https://storage.azure.com").join(" "),
            "account get-access-token --resource https://storage.azure.com --output json"
        );
        let c = c.with_tenant_id("contoso.onmicrosoft.com").expect("tenant");
        assert!(c
            .args("r")
            .join(" ")
            .ends_with("--tenant contoso.onmicrosoft.com"));
        assert!(AzureCliCredential::new().with_tenant_id("a b").is_err());
    }

    #[test]
    fn failures_are_classified_and_summarized() {
        let e = classify_failure(
            "az",
            Some(1),
            "WARNING: something\nERROR: Please run 'az login' to setup account.\n",
        );
        assert!(e.is_unavailable());
        assert!(e.to_string().contains("az login"), "{}", e.to_string());

        let e = classify_failure("az", Some(127), "sh: az: not found");
        assert!(e.is_unavailable());
        assert!(e.to_string().contains("not found"));

        let e = classify_failure(
            "az",
            Some(1),
            "ERROR: AADSTS70043: The refresh token has expired. token eyJ0eXAiOiJKV1QiLCJhbGciOi.abc.def and aGVsbG8td29ybGQtdGhpcy1pcy1sb25nLWJhc2U2NA==\nTraceback ...",
        );
        assert!(!e.is_unavailable());
        let s = e.to_string();
        assert!(s.contains("AADSTS70043"), "{s}");
        assert!(!s.contains("eyJ0eXAi"), "{s}");
        assert!(!s.contains("aGVsbG8td29y"), "{s}");
        assert!(!s.contains("Traceback"), "{s}");
    }

    #[tokio::test]
    async fn missing_program_is_unavailable() {
        let c = AzureCliCredential::new().with_program("/nonexistent/adls-rest-test/az");
        let e = c
            .get_token(crate::credential::STORAGE_SCOPE)
            .await
            .expect_err("missing");
        let ie = IdentityError::of(&e).expect("identity error");
        assert!(ie.is_unavailable(), "{e}");
        assert!(e.to_string().contains("not found"), "{e}");
    }
}
