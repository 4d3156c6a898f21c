//! Credentials: Shared Key, SAS, bearer tokens (through [`TokenCredential`]) and anonymous.
//!
//! Validation happens here, once: an account key is decoded when the
//! credential is built, a SAS token is checked for shape, so signing later
//! cannot fail.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;
use tokio::sync::Mutex as AsyncMutex;

use crate::error::{Error, ErrorKind};
use crate::secret::{AccountKey, Secret};

/// The OAuth scope for Azure Storage.
pub const STORAGE_SCOPE: &str = "https://storage.azure.com/.default";

/// How requests are authorized.
///
/// ```
/// # fn main() -> Result<(), adls_rest::Error> {
/// use std::sync::Arc;
/// use adls_rest::connection_string::DEV_ACCOUNT_KEY;
/// use adls_rest::{Credential, StaticTokenCredential};
///
/// // Shared Key: the key is decoded here, once, so signing cannot fail later.
/// let key = Credential::shared_key(DEV_ACCOUNT_KEY)?;
/// assert!(Credential::shared_key("not base64!").is_err());
/// // A SAS, with or without its leading `?`.
/// let sas = Credential::sas("?sv=2025-11-05&sp=rwl&se=2030-01-01&sig=c2lnbmF0dXJl")?;
/// // Bearer tokens from any `TokenCredential` (Entra ID ones are in `identity`).
/// let expires_on = time::OffsetDateTime::now_utc() + time::Duration::hours(1);
/// let fixed = StaticTokenCredential::new("a-token-from-elsewhere", expires_on);
/// let bearer = Credential::bearer(Arc::new(fixed));
///
/// // No secret is ever printed.
/// assert_eq!(format!("{key:?}"), "Credential::shared-key(<redacted>)");
/// let shown = format!("{sas:?} {bearer:?}");
/// assert!(!shown.contains("c2lnbmF0dXJl") && !shown.contains("a-token-from-elsewhere"));
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub enum Credential {
    /// Shared Key: every request is signed with the account key.
    SharedKey(AccountKey),
    /// A shared access signature appended to every request's query.
    Sas(SasToken),
    /// OAuth bearer tokens from a provider, cached and refreshed ahead of expiry.
    Bearer(Arc<TokenCache>),
    /// No authorization (public containers).
    Anonymous,
}

impl Credential {
    /// Shared Key from a base64 account key.
    pub fn shared_key(base64_key: &str) -> Result<Self, Error> {
        Ok(Credential::SharedKey(AccountKey::from_base64(base64_key)?))
    }

    /// A SAS token, with or without the leading `?`.
    pub fn sas(token: &str) -> Result<Self, Error> {
        Ok(Credential::Sas(SasToken::new(token)?))
    }

    /// Bearer tokens from `provider`, cached by this crate.
    pub fn bearer(provider: Arc<dyn TokenCredential>) -> Self {
        Credential::Bearer(Arc::new(TokenCache::new(provider)))
    }

    /// What kind of credential this is, for logs.
    pub fn kind_name(&self) -> &'static str {
        match self {
            Credential::SharedKey(_) => "shared-key",
            Credential::Sas(_) => "sas",
            Credential::Bearer(_) => "bearer",
            Credential::Anonymous => "anonymous",
        }
    }
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Credential::{}(<redacted>)", self.kind_name())
    }
}

/// A shared access signature (the query string without `?`).
#[derive(Clone)]
pub struct SasToken {
    secret: Secret,
}

impl SasToken {
    /// Checks that `token` looks like a SAS query (`sv=...&sig=...`).
    pub fn new(token: &str) -> Result<Self, Error> {
        let t = token.trim().trim_start_matches('?');
        let has = |name: &str| {
            t.split('&').any(|kv| {
                kv.split('=')
                    .next()
                    .is_some_and(|k| k.eq_ignore_ascii_case(name))
            })
        };
        if t.is_empty() || !has("sig") {
            return Err(Error::new(
                ErrorKind::Credential,
                "SAS token has no `sig` parameter; expected a query string such as `sv=...&se=...&sig=...`",
            ));
        }
        if t.contains(['#', ' ', '\n']) {
            return Err(Error::new(
                ErrorKind::Credential,
                "SAS token contains a space, newline or `#`; expected a URL query string",
            ));
        }
        Ok(SasToken {
            secret: Secret::new(t),
        })
    }

    pub(crate) fn query(&self) -> &str {
        self.secret.expose_secret()
    }
}

impl fmt::Debug for SasToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SasToken(<redacted>)")
    }
}

/// A bearer token and when it expires.
#[derive(Clone, Debug)]
pub struct AccessToken {
    /// The token (sent as `Authorization: Bearer <token>`).
    pub token: Secret,
    /// When the token stops being valid.
    pub expires_on: OffsetDateTime,
}

/// A boxed future, as returned by [`TokenCredential::get_token`].
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A source of OAuth tokens (client secret, managed identity, Azure CLI, ...).
///
/// Implementations fetch a fresh token each call; [`TokenCache`] decides when to call.
///
/// ```
/// use std::sync::Arc;
/// use adls_rest::credential::{AccessToken, BoxFuture, TokenCredential};
/// use adls_rest::secret::Secret;
/// use adls_rest::{Credential, Error};
///
/// /// Tokens from the gateway's own token service.
/// struct MyTokenService;
///
/// impl TokenCredential for MyTokenService {
///     fn get_token<'a>(&'a self, scope: &'a str) -> BoxFuture<'a, Result<AccessToken, Error>> {
///         Box::pin(async move {
///             assert_eq!(scope, adls_rest::credential::STORAGE_SCOPE);
///             Ok(AccessToken {
///                 token: Secret::new("token for the storage scope"),
///                 expires_on: time::OffsetDateTime::now_utc() + time::Duration::minutes(50),
///             })
///         })
///     }
/// }
///
/// let credential = Credential::bearer(Arc::new(MyTokenService));
/// assert_eq!(credential.kind_name(), "bearer");
/// ```
pub trait TokenCredential: Send + Sync + 'static {
    /// Fetches a token for `scope` (e.g. [`STORAGE_SCOPE`]).
    fn get_token<'a>(&'a self, scope: &'a str) -> BoxFuture<'a, Result<AccessToken, Error>>;
}

/// A fixed token, for tests and for callers that manage tokens themselves.
pub struct StaticTokenCredential {
    token: AccessToken,
}

impl StaticTokenCredential {
    /// A provider that always returns `token`, valid until `expires_on`.
    pub fn new(token: impl Into<String>, expires_on: OffsetDateTime) -> Self {
        StaticTokenCredential {
            token: AccessToken {
                token: Secret::new(token.into()),
                expires_on,
            },
        }
    }
}

impl fmt::Debug for StaticTokenCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StaticTokenCredential")
            .field("token", &self.token.token)
            .field("expires_on", &self.token.expires_on)
            .finish()
    }
}

impl TokenCredential for StaticTokenCredential {
    fn get_token<'a>(&'a self, _scope: &'a str) -> BoxFuture<'a, Result<AccessToken, Error>> {
        let t = self.token.clone();
        Box::pin(async move { Ok(t) })
    }
}

/// Caches a provider's token: refreshes it `refresh_ahead` before expiry, runs
/// one refresh at a time however many requests wait, and keeps using the old
/// token while it is still valid if a refresh fails.
pub struct TokenCache {
    provider: Arc<dyn TokenCredential>,
    scope: String,
    refresh_ahead: Duration,
    current: std::sync::Mutex<Option<AccessToken>>,
    refresh: AsyncMutex<()>,
    refreshes: std::sync::atomic::AtomicU64,
}

impl TokenCache {
    /// A cache over `provider` for the storage scope, refreshing 5 minutes ahead.
    pub fn new(provider: Arc<dyn TokenCredential>) -> Self {
        TokenCache {
            provider,
            scope: STORAGE_SCOPE.to_string(),
            refresh_ahead: Duration::from_secs(300),
            current: std::sync::Mutex::new(None),
            refresh: AsyncMutex::new(()),
            refreshes: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// How many times the provider was called.
    pub fn refresh_count(&self) -> u64 {
        self.refreshes.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The cached token if it is valid for `margin` more. Compared as
    /// `expires_on > now + margin`: a provider may report any instant (the
    /// calendar's first or last day), and subtracting from it could overflow.
    fn cached(&self, now: OffsetDateTime, margin: Duration) -> Option<AccessToken> {
        let margin = time::Duration::try_from(margin).unwrap_or(time::Duration::MAX);
        let valid_until = now.saturating_add(margin);
        let guard = self.current.lock().unwrap_or_else(|p| p.into_inner());
        guard
            .as_ref()
            .filter(|t| t.expires_on > valid_until)
            .cloned()
    }

    /// A token valid now; refreshes when it is within `refresh_ahead` of expiry.
    pub async fn token(&self) -> Result<AccessToken, Error> {
        if let Some(t) = self.cached(OffsetDateTime::now_utc(), self.refresh_ahead) {
            return Ok(t);
        }
        let _one_at_a_time = self.refresh.lock().await;
        // Someone else may have refreshed while we waited.
        if let Some(t) = self.cached(OffsetDateTime::now_utc(), self.refresh_ahead) {
            return Ok(t);
        }
        self.refresh_locked().await
    }

    /// Drops the cached token and fetches a new one (after a 401 from storage).
    pub async fn force_refresh(&self, rejected: &AccessToken) -> Result<AccessToken, Error> {
        let _one_at_a_time = self.refresh.lock().await;
        if let Some(t) = self.cached(OffsetDateTime::now_utc(), Duration::ZERO) {
            if t.token != rejected.token {
                return Ok(t); // another task already replaced the rejected token
            }
        }
        self.refresh_locked().await
    }

    async fn refresh_locked(&self) -> Result<AccessToken, Error> {
        self.refreshes
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        match self.provider.get_token(&self.scope).await {
            Ok(t) => {
                tracing::debug!(expires_on = %t.expires_on, "bearer token refreshed");
                *self.current.lock().unwrap_or_else(|p| p.into_inner()) = Some(t.clone());
                Ok(t)
            }
            Err(e) => {
                // A failed refresh does not poison a token that is still valid.
                if let Some(t) = self.cached(OffsetDateTime::now_utc(), Duration::ZERO) {
                    tracing::warn!(error = %e, "token refresh failed; using the cached token until it expires");
                    Ok(t)
                } else {
                    Err(e)
                }
            }
        }
    }
}

impl fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenCache")
            .field("scope", &self.scope)
            .field("refresh_ahead", &self.refresh_ahead)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    struct Counting {
        calls: AtomicU64,
        lifetime: time::Duration,
        fail: bool,
    }

    impl TokenCredential for Counting {
        fn get_token<'a>(&'a self, _scope: &'a str) -> BoxFuture<'a, Result<AccessToken, Error>> {
            Box::pin(async move {
                let n = self.calls.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(20)).await;
                if self.fail {
                    return Err(Error::new(ErrorKind::Credential, "provider down"));
                }
                Ok(AccessToken {
                    token: Secret::new(format!("token-{n}")),
                    expires_on: OffsetDateTime::now_utc() + self.lifetime,
                })
            })
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_waiters_cause_one_refresh() {
        let p = Arc::new(Counting {
            calls: AtomicU64::new(0),
            lifetime: time::Duration::hours(1),
            fail: false,
        });
        let cache = Arc::new(TokenCache::new(p.clone()));
        let mut tasks = Vec::new();
        for _ in 0..200 {
            let c = cache.clone();
            tasks.push(tokio::spawn(async move { c.token().await }));
        }
        for t in tasks {
            let tok = t.await.expect("join").expect("token");
            assert_eq!(tok.token.expose_secret(), "token-0");
        }
        assert_eq!(p.calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn token_near_expiry_is_refreshed_and_failed_refresh_keeps_valid_token() {
        // lives 2 minutes: inside the 5-minute refresh margin, so every call refreshes
        let p = Arc::new(Counting {
            calls: AtomicU64::new(0),
            lifetime: time::Duration::minutes(2),
            fail: false,
        });
        let cache = TokenCache::new(p.clone());
        assert_eq!(
            cache.token().await.expect("t").token.expose_secret(),
            "token-0"
        );
        assert_eq!(
            cache.token().await.expect("t").token.expose_secret(),
            "token-1"
        );

        let failing = Arc::new(Counting {
            calls: AtomicU64::new(0),
            lifetime: time::Duration::minutes(2),
            fail: true,
        });
        let cache2 = TokenCache::new(failing);
        assert!(
            cache2.token().await.is_err(),
            "no token at all: error surfaces"
        );
        *cache2.current.lock().expect("lock") = Some(AccessToken {
            token: Secret::new("still-valid"),
            expires_on: OffsetDateTime::now_utc() + time::Duration::minutes(2),
        });
        let t = cache2.token().await.expect("old token still valid");
        assert_eq!(t.token.expose_secret(), "still-valid");
    }

    #[tokio::test]
    async fn expiries_at_the_calendar_edges_do_not_panic() {
        use time::PrimitiveDateTime;
        // the calendar's first instant: expired, so every call asks again
        let first = Arc::new(StaticTokenCredential::new(
            "old",
            PrimitiveDateTime::MIN.assume_utc(),
        ));
        let cache = TokenCache::new(first);
        for _ in 0..3 {
            let _ = cache.token().await;
        }
        assert_eq!(cache.refresh_count(), 3);
        let t = cache.token().await.expect("the provider's answer");
        assert!(cache.force_refresh(&t).await.is_ok());
        // the last: kept
        let last = Arc::new(StaticTokenCredential::new(
            "forever",
            PrimitiveDateTime::MAX.assume_utc(),
        ));
        let cache = TokenCache::new(last);
        for _ in 0..3 {
            cache.token().await.expect("token");
        }
        assert_eq!(cache.refresh_count(), 1);
        // and with a margin no clock can add
        assert!(cache
            .cached(OffsetDateTime::now_utc(), Duration::MAX)
            .is_none());
        let t = cache.token().await.expect("token");
        assert!(cache.force_refresh(&t).await.is_ok());
    }

    #[test]
    fn sas_validation_and_debug() {
        assert!(SasToken::new("sv=2024-01-01&se=x").is_err());
        let s = SasToken::new("?sv=2024&sig=abc%2Bdef").expect("valid");
        assert_eq!(s.query(), "sv=2024&sig=abc%2Bdef");
        assert!(!format!("{s:?}").contains("abc"));
        let c = Credential::sas("sv=1&sig=zzzsecret").expect("valid");
        assert!(!format!("{c:?}").contains("zzzsecret"));
    }
}
