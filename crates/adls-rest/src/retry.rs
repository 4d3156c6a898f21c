//! Retry policy: which failures to retry, and how long to wait (exponential
//! backoff with full jitter, the service's `Retry-After` honoured and capped,
//! an overall deadline).

use std::time::Duration;

use http::HeaderMap;

/// How failed attempts are retried.
///
/// ```
/// use std::time::Duration;
/// use adls_rest::RetryPolicy;
///
/// let policy = RetryPolicy {
///     max_attempts: 4,
///     deadline: Duration::from_secs(30),
///     ..RetryPolicy::default()
/// };
/// // Full jitter: retry 3 waits up to 200 ms * 2^2; `random` in [0, 1) picks where.
/// assert_eq!(policy.backoff(3, None, 0.5), Duration::from_millis(400));
/// // The service's `Retry-After` wins, capped at `max_retry_after`.
/// let asked = Some(Duration::from_secs(300));
/// assert_eq!(policy.backoff(1, asked, 0.5), policy.max_retry_after);
/// ```
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    /// Backoff cap of the first retry; doubles each retry.
    pub initial_backoff: Duration,
    /// Largest backoff between two attempts.
    pub max_backoff: Duration,
    /// Largest wait taken from `Retry-After` / `x-ms-retry-after-ms`.
    pub max_retry_after: Duration,
    /// No retry starts after this much time since the first attempt.
    pub deadline: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 8,
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(10),
            max_retry_after: Duration::from_secs(30),
            deadline: Duration::from_secs(120),
        }
    }
}

impl RetryPolicy {
    /// No retries at all.
    pub fn none() -> Self {
        RetryPolicy {
            max_attempts: 1,
            ..Default::default()
        }
    }

    /// The wait before retry number `retry` (1-based): full jitter over
    /// `[0, min(max_backoff, initial * 2^(retry-1))]`, or the server's ask
    /// (capped) when it gave one. `random` is uniform in `[0, 1)`.
    pub fn backoff(&self, retry: u32, server_ask: Option<Duration>, random: f64) -> Duration {
        if let Some(ask) = server_ask {
            return ask.min(self.max_retry_after);
        }
        let exp = self.initial_backoff.saturating_mul(
            1u32.checked_shl(retry.saturating_sub(1))
                .unwrap_or(u32::MAX),
        );
        exp.min(self.max_backoff).mul_f64(random.clamp(0.0, 1.0))
    }
}

/// The wait the service asked for: `x-ms-retry-after-ms`, else `Retry-After`
/// (seconds; an HTTP date is not used by the storage service).
pub fn server_retry_after(headers: &HeaderMap) -> Option<Duration> {
    let get = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).map(str::trim);
    if let Some(ms) = get("x-ms-retry-after-ms").and_then(|v| v.parse::<u64>().ok()) {
        return Some(Duration::from_millis(ms));
    }
    get("retry-after")
        .and_then(|v| v.parse::<u64>().ok())
        .map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_jitter_is_bounded_and_doubles() {
        let p = RetryPolicy::default();
        assert_eq!(
            p.backoff(1, None, 0.999_999),
            Duration::from_millis(200).mul_f64(0.999_999)
        );
        assert_eq!(p.backoff(3, None, 0.5), Duration::from_millis(400));
        assert_eq!(p.backoff(40, None, 1.0), p.max_backoff);
        assert_eq!(p.backoff(2, None, 0.0), Duration::ZERO);
    }

    #[test]
    fn server_ask_wins_but_is_capped() {
        let p = RetryPolicy::default();
        let mut h = HeaderMap::new();
        h.insert("retry-after", "3".parse().expect("hv"));
        assert_eq!(server_retry_after(&h), Some(Duration::from_secs(3)));
        h.insert("x-ms-retry-after-ms", "1500".parse().expect("hv"));
        assert_eq!(server_retry_after(&h), Some(Duration::from_millis(1500)));
        assert_eq!(
            p.backoff(1, Some(Duration::from_secs(3600)), 0.3),
            p.max_retry_after
        );
        h.clear();
        h.insert(
            "retry-after",
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().expect("hv"),
        );
        assert_eq!(server_retry_after(&h), None);
    }
}
