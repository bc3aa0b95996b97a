//! Per-caller limits on the client API (`[limits]`): a request rate per token (token
//! buckets) and a number of open watch streams per token. A caller is its token
//! (the SHA-256 of the secret it presents) or, without one, its IP address. Pure
//! decisions: `now` comes in, so they are tested with synthetic time; the API edge
//! (`api/rate_limit.rs`, the watch handler) applies them.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::{Deserialize, Serialize};

/// The `[limits]` table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Largest request message the client API decodes (bytes).
    pub max_request_bytes: usize,
    /// HTTP/2 streams one client connection may have open at once.
    pub max_concurrent_streams: u32,
    /// Watch streams one caller may have open at once (0: no limit).
    pub watch_streams_per_token: u32,
    /// Requests per second one caller may make, sustained (0: no limit).
    pub requests_per_second_per_token: u32,
    /// Requests one caller may make at once above the rate (0: one second's worth).
    pub request_burst: u32,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_request_bytes: 4 << 20,
            max_concurrent_streams: 1024,
            watch_streams_per_token: 4096,
            requests_per_second_per_token: 0,
            request_burst: 0,
        }
    }
}

impl LimitsConfig {
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.max_request_bytes < 1024 {
            anyhow::bail!(
                "invalid limits.max_request_bytes: must be at least 1024 (got {})",
                self.max_request_bytes
            );
        }
        if self.max_concurrent_streams == 0 {
            anyhow::bail!("invalid limits.max_concurrent_streams: must be positive");
        }
        Ok(())
    }

    fn burst(&self) -> f64 {
        f64::from(match self.request_burst {
            0 => self.requests_per_second_per_token,
            b => b,
        })
    }
}

/// Who a limit counts against.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Caller {
    /// The SHA-256 (hex) of the presented secret: never the secret itself.
    Token(String),
    /// No token: the peer's address.
    Address(IpAddr),
    /// Neither is known (not a TCP connection).
    Unknown,
}

impl Caller {
    /// From the presented secret, else the peer's address.
    pub fn of(secret: Option<&str>, peer: Option<IpAddr>) -> Self {
        match (secret, peer) {
            (Some(s), _) => Caller::Token(crate::acl::secret::hash_secret(s)),
            (None, Some(ip)) => Caller::Address(ip),
            (None, None) => Caller::Unknown,
        }
    }
}

/// A refused request: which limit, for the message and the metric.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Limited {
    #[error("rate limit: more than {rate} requests per second (burst {burst}) from this token; back off and retry")]
    Rate { rate: u32, burst: u32 },
    #[error("limit: this token already has {0} watch streams open; close one first")]
    WatchStreams(u32),
}

/// Callers tracked before full buckets are forgotten (a full bucket is the state of
/// a caller never seen, so forgetting it changes nothing).
const MAX_TRACKED: usize = 65_536;

struct Bucket {
    tokens: f64,
    at: Instant,
}

/// The node's limits and the state they keep.
pub struct Limits {
    config: LimitsConfig,
    buckets: Mutex<HashMap<Caller, Bucket>>,
    watches: Arc<Mutex<HashMap<Caller, u32>>>,
}

impl Limits {
    pub fn new(config: LimitsConfig) -> Self {
        Self {
            config,
            buckets: Mutex::default(),
            watches: Arc::default(),
        }
    }

    pub fn config(&self) -> &LimitsConfig {
        &self.config
    }

    /// Whether calls are rate limited at all (`requests_per_second_per_token` > 0).
    pub fn rate_limited(&self) -> bool {
        self.config.requests_per_second_per_token > 0
    }

    /// Takes one request from `caller`'s bucket at `now`, or refuses it.
    pub fn admit(&self, caller: Caller, now: Instant) -> Result<(), Limited> {
        let rate = self.config.requests_per_second_per_token;
        if rate == 0 {
            return Ok(());
        }
        let burst = self.config.burst();
        let mut buckets = self.buckets.lock().expect("limits lock poisoned");
        if buckets.len() >= MAX_TRACKED {
            buckets.retain(|_, b| {
                b.tokens + now.saturating_duration_since(b.at).as_secs_f64() * f64::from(rate)
                    < burst
            });
        }
        let bucket = buckets.entry(caller).or_insert(Bucket {
            tokens: burst,
            at: now,
        });
        let refill = now.saturating_duration_since(bucket.at).as_secs_f64() * f64::from(rate);
        bucket.tokens = (bucket.tokens + refill).min(burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Limited::Rate {
                rate,
                burst: burst as u32,
            })
        }
    }

    /// Counts one more open watch for `caller`; the permit gives it back when dropped.
    pub fn open_watch(&self, caller: Caller) -> Result<WatchPermit, Limited> {
        let max = self.config.watch_streams_per_token;
        let mut open = self.watches.lock().expect("limits lock poisoned");
        let count = open.entry(caller.clone()).or_insert(0);
        if max > 0 && *count >= max {
            return Err(Limited::WatchStreams(max));
        }
        *count += 1;
        Ok(WatchPermit {
            caller,
            watches: self.watches.clone(),
        })
    }
}

/// One open watch stream, counted until dropped.
pub struct WatchPermit {
    caller: Caller,
    watches: Arc<Mutex<HashMap<Caller, u32>>>,
}

impl Drop for WatchPermit {
    fn drop(&mut self) {
        let mut open = self.watches.lock().expect("limits lock poisoned");
        if let Some(count) = open.get_mut(&self.caller) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.caller);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn limits(rate: u32, burst: u32, watches: u32) -> Limits {
        Limits::new(LimitsConfig {
            requests_per_second_per_token: rate,
            request_burst: burst,
            watch_streams_per_token: watches,
            ..LimitsConfig::default()
        })
    }

    fn token(s: &str) -> Caller {
        Caller::of(Some(s), None)
    }

    #[test]
    fn a_burst_then_the_rate() {
        let l = limits(10, 3, 0);
        let t0 = Instant::now();
        for _ in 0..3 {
            l.admit(token("a"), t0).unwrap();
        }
        assert_eq!(
            l.admit(token("a"), t0),
            Err(Limited::Rate { rate: 10, burst: 3 })
        );
        // Another token has its own bucket.
        l.admit(token("b"), t0).unwrap();
        // 100 ms at 10/s refills one request, not more.
        let t1 = t0 + Duration::from_millis(100);
        l.admit(token("a"), t1).unwrap();
        assert!(l.admit(token("a"), t1).is_err());
        // A long pause refills to the burst, never above it.
        let t2 = t1 + Duration::from_secs(60);
        for _ in 0..3 {
            l.admit(token("a"), t2).unwrap();
        }
        assert!(l.admit(token("a"), t2).is_err());
    }

    #[test]
    fn no_rate_means_no_limit_and_the_burst_defaults_to_a_second() {
        let l = limits(0, 0, 0);
        let t0 = Instant::now();
        for _ in 0..10_000 {
            l.admit(token("a"), t0).unwrap();
        }
        let l = limits(5, 0, 0);
        for _ in 0..5 {
            l.admit(token("a"), t0).unwrap();
        }
        assert!(l.admit(token("a"), t0).is_err());
    }

    #[test]
    fn callers_without_a_token_count_by_address_and_secrets_are_not_kept() {
        let ip: IpAddr = "10.0.0.7".parse().unwrap();
        assert_eq!(Caller::of(None, Some(ip)), Caller::Address(ip));
        let Caller::Token(key) = token("s3cret") else {
            panic!("a token caller");
        };
        assert!(!key.contains("s3cret") && key.len() == 64, "{key}");
    }

    #[test]
    fn watch_streams_are_counted_until_their_permits_drop() {
        let l = limits(0, 0, 2);
        let first = l.open_watch(token("a")).unwrap();
        let _second = l.open_watch(token("a")).unwrap();
        assert_eq!(
            l.open_watch(token("a")).err(),
            Some(Limited::WatchStreams(2))
        );
        let _other = l.open_watch(token("b")).unwrap();
        drop(first);
        let _third = l.open_watch(token("a")).unwrap();
    }

    #[test]
    fn buckets_of_idle_callers_are_forgotten_when_many() {
        let l = limits(1000, 1, 0);
        let t0 = Instant::now();
        for i in 0..MAX_TRACKED {
            l.admit(token(&i.to_string()), t0).unwrap();
        }
        // A second later every bucket is full again: all forgotten on the next insert.
        l.admit(token("new"), t0 + Duration::from_secs(1)).unwrap();
        assert_eq!(l.buckets.lock().unwrap().len(), 1);
    }
}
