//! A cache of storage clients keyed by destination, for gateways that route
//! logs per team or per key to different accounts or filesystems: clients are
//! reused (one connection pool per destination), idle ones are retired after
//! a TTL, and the number held is bounded (least recently used goes first).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use adls_rest::{Client, Error};

/// Clients by destination key, with a TTL since last use and a size bound.
///
/// ```
/// # fn main() -> Result<(), adls_rest::Error> {
/// use std::time::Duration;
/// use adls_rest::Client;
/// use llm_log_callback::ClientCache;
///
/// let cache = ClientCache::new(Duration::from_secs(600), 100);
/// let build = || Client::from_connection_string("UseDevelopmentStorage=true")?.build();
/// let first = cache.get_or_try_insert("tenant-a", build)?;
/// let again = cache.get_or_try_insert("tenant-a", || unreachable!("cached"))?;
/// assert_eq!(first.account(), again.account());
/// assert_eq!(cache.len(), 1);
/// # Ok(()) }
/// ```
pub struct ClientCache {
    ttl: Duration,
    max: usize,
    entries: Mutex<HashMap<String, (Client, Instant)>>,
}

impl std::fmt::Debug for ClientCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // keys may be derived from credentials: show only the count
        f.debug_struct("ClientCache")
            .field("ttl", &self.ttl)
            .field("max", &self.max)
            .field("len", &self.len())
            .finish()
    }
}

impl ClientCache {
    /// A cache retiring clients unused for `ttl`, holding at most `max`.
    pub fn new(ttl: Duration, max: usize) -> Self {
        ClientCache {
            ttl,
            max: max.max(1),
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The client for `key`, built with `build` when absent or retired.
    /// Keys are never logged; do not use a secret itself as the key.
    pub fn get_or_try_insert(
        &self,
        key: &str,
        build: impl FnOnce() -> Result<Client, Error>,
    ) -> Result<Client, Error> {
        self.get_or_try_insert_at(key, Instant::now(), build)
    }

    fn get_or_try_insert_at(
        &self,
        key: &str,
        now: Instant,
        build: impl FnOnce() -> Result<Client, Error>,
    ) -> Result<Client, Error> {
        let mut m = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        m.retain(|_, (_, used)| now.saturating_duration_since(*used) < self.ttl);
        if let Some((c, used)) = m.get_mut(key) {
            *used = now;
            return Ok(c.clone());
        }
        let client = build()?;
        if m.len() >= self.max {
            if let Some(oldest) = m
                .iter()
                .min_by_key(|(_, (_, u))| *u)
                .map(|(k, _)| k.clone())
            {
                m.remove(&oldest);
            }
        }
        m.insert(key.to_string(), (client.clone(), now));
        Ok(client)
    }

    /// Clients held now.
    pub fn len(&self) -> usize {
        self.entries.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// True when no client is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client() -> Result<Client, Error> {
        Client::from_connection_string("UseDevelopmentStorage=true")?.build()
    }

    #[test]
    fn reuses_retires_and_bounds() {
        let cache = ClientCache::new(Duration::from_secs(60), 2);
        let t0 = Instant::now();
        let builds = std::cell::Cell::new(0);
        let get = |k: &str, secs: u64| {
            cache
                .get_or_try_insert_at(k, t0 + Duration::from_secs(secs), || {
                    builds.set(builds.get() + 1);
                    client()
                })
                .expect("client")
        };
        get("team-a", 0);
        get("team-a", 30);
        assert_eq!(builds.get(), 1, "reused");
        get("team-b", 31);
        get("team-c", 32); // the bound is 2: evicts team-a (least recently used, at 30)
        get("team-b", 33);
        assert_eq!(builds.get(), 3);
        assert_eq!(cache.len(), 2);
        get("team-a", 34);
        assert_eq!(builds.get(), 4, "team-a was evicted by the size bound");
        get("team-a", 200);
        assert_eq!(builds.get(), 5, "retired after the TTL");
        assert_eq!(cache.len(), 1, "the idle ones were retired too");
    }
}
