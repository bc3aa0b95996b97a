//! The per-node cache of keys fetched from auth methods' `jwks_url`s, and its rules:
//! a method's keys are fetched on its first login here; refetched in the background
//! every `refresh_interval`, and on a key miss (a `kid` the cached set lacks) at most
//! once per `min_refresh_interval`; a failed fetch keeps the last good keys (logged,
//! and counted in `waymark_jwks_fetch_failures_total{method}`); with no keys ever
//! fetched, logins are refused as unavailable, naming the URL and the error. One fetch
//! per method at a time: concurrent logins wait for it rather than each dialling.
//! Lives on the node (`Node::jwks`); nothing here is replicated.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::fetch;
use super::source::Source;
use crate::acl::jwt::{self, Keys, Refusal, Verified};
use crate::acl::AclConfig;
use crate::metrics::Metrics;
use crate::model::JwtMethod;

/// The cache's timings and bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JwksSettings {
    pub refresh_interval: Duration,
    pub min_refresh_interval: Duration,
    pub fetch_timeout: Duration,
    pub max_bytes: usize,
}

impl JwksSettings {
    pub fn from_acl(acl: &AclConfig) -> Self {
        Self {
            refresh_interval: Duration::from_millis(acl.jwks_refresh_interval_ms),
            min_refresh_interval: Duration::from_millis(acl.jwks_min_refresh_interval_ms),
            fetch_timeout: Duration::from_millis(acl.jwks_fetch_timeout_ms),
            max_bytes: fetch::MAX_RESPONSE_BYTES,
        }
    }

    /// How often the background loop looks for methods due a refresh: often enough
    /// to keep to `refresh_interval` within a quarter of it, at most every 30 s.
    pub fn tick(&self) -> Duration {
        (self.refresh_interval / 4).clamp(Duration::from_millis(50), Duration::from_secs(30))
    }
}

/// A login through a method with a `jwks_url` when no keys were ever fetched.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "auth method {method:?} has no signing keys yet: fetching its JWKS from {url} failed: {error}"
)]
pub struct Unavailable {
    pub method: String,
    pub url: String,
    pub error: String,
}

/// One method's cached keys, for the URL and CA it was made for.
struct Entry {
    url: String,
    ca: String,
    /// The URL parsed once (methods are validated on write, so an error here means a
    /// record from a node that checked less; it is reported like a failed fetch).
    source: Result<Source, String>,
    state: tokio::sync::Mutex<State>,
}

#[derive(Default)]
struct State {
    keys: Option<Arc<Keys>>,
    fetched_at: Option<Instant>,
    attempted_at: Option<Instant>,
    last_error: Option<String>,
}

pub struct JwksCache {
    settings: JwksSettings,
    metrics: Arc<Metrics>,
    entries: Mutex<HashMap<String, Arc<Entry>>>,
}

impl JwksCache {
    pub fn new(settings: JwksSettings, metrics: Arc<Metrics>) -> Self {
        Self {
            settings,
            metrics,
            entries: Mutex::new(HashMap::new()),
        }
    }

    pub fn settings(&self) -> JwksSettings {
        self.settings
    }

    /// Verifies `jwt` for method `name` (whose `jwks_url` is set) against its inline
    /// keys and its fetched ones, fetching them first if this node has none, and once
    /// more on a key miss if the last fetch is old enough. `Err` only when no keys were
    /// ever fetched; a refused JWT is `Ok(Err(refusal))`.
    pub async fn verify(
        &self,
        name: &str,
        method: &JwtMethod,
        token: &str,
        now_unix_ms: u64,
    ) -> Result<Result<Verified, Refusal>, Unavailable> {
        let inline = match Keys::inline(&method.jwks, &method.public_keys) {
            Ok(keys) => keys,
            Err(e) => return Ok(Err(Refusal::MethodKeys(name.into(), e.to_string()))),
        };
        let entry = self.entry(name, method);
        let fetched = match self.current(name, &entry).await {
            Ok(keys) => keys,
            // The method's inline keys still count while its URL has never answered.
            Err(unavailable) => {
                if !inline.is_empty() {
                    if let Ok(v) = jwt::verify_with(name, method, &[&inline], token, now_unix_ms) {
                        return Ok(Ok(v));
                    }
                }
                return Err(unavailable);
            }
        };
        let first = jwt::verify_with(name, method, &[&inline, &fetched], token, now_unix_ms);
        // A miss the provider may since have fixed: a kid we do not know (a rotation),
        // or, for a JWT naming no kid, no key verifying it. A bad signature under a
        // kid we hold is no miss: refetching would not help.
        let miss = match &first {
            Err(Refusal::UnknownKid { .. }) => true,
            Err(Refusal::Signature(_)) => jwt::header_kid(token).is_none(),
            _ => false,
        };
        if !miss {
            return Ok(first);
        }
        Ok(match self.refetch(name, &entry, &fetched).await {
            Some(newer) => jwt::verify_with(name, method, &[&inline, &newer], token, now_unix_ms),
            None => first,
        })
    }

    /// The entry for method `name` as it is configured now (a changed URL or CA starts
    /// afresh).
    fn entry(&self, name: &str, method: &JwtMethod) -> Arc<Entry> {
        let mut entries = self.entries.lock().expect("jwks cache lock poisoned");
        if let Some(e) = entries.get(name) {
            if e.url == method.jwks_url && e.ca == method.jwks_ca_cert {
                return e.clone();
            }
        }
        let entry = Arc::new(Entry {
            url: method.jwks_url.clone(),
            ca: method.jwks_ca_cert.clone(),
            source: Source::parse(&method.jwks_url, &method.jwks_ca_cert)
                .map_err(|e| e.to_string()),
            state: tokio::sync::Mutex::new(State::default()),
        });
        entries.insert(name.to_string(), entry.clone());
        entry
    }

    /// The method's keys, fetched now if there are none yet (unless a fetch failed
    /// within `min_refresh_interval`: then its error, without dialling again).
    async fn current(&self, name: &str, entry: &Entry) -> Result<Arc<Keys>, Unavailable> {
        let mut state = entry.state.lock().await;
        if let Some(keys) = &state.keys {
            return Ok(keys.clone());
        }
        let unavailable = |error: String| Unavailable {
            method: name.into(),
            url: entry.url.clone(),
            error,
        };
        if let (Some(at), Some(error)) = (state.attempted_at, &state.last_error) {
            let ago = at.elapsed();
            if ago < self.settings.min_refresh_interval {
                return Err(unavailable(format!(
                    "{error} ({} ms ago; retried at most every {} ms)",
                    ago.as_millis(),
                    self.settings.min_refresh_interval.as_millis()
                )));
            }
        }
        self.fetch_locked(name, entry, &mut state).await;
        match &state.keys {
            Some(keys) => Ok(keys.clone()),
            None => Err(unavailable(state.last_error.clone().unwrap_or_default())),
        }
    }

    /// Newer keys than `had` after a key miss: another login's fetch, or one made now
    /// if the last attempt is at least `min_refresh_interval` old. `None`: nothing
    /// newer (rate-limited, or the fetch failed and the old keys stay).
    async fn refetch(&self, name: &str, entry: &Entry, had: &Arc<Keys>) -> Option<Arc<Keys>> {
        let mut state = entry.state.lock().await;
        if let Some(keys) = state.keys.as_ref().filter(|k| !Arc::ptr_eq(k, had)) {
            return Some(keys.clone());
        }
        if state
            .attempted_at
            .is_some_and(|at| at.elapsed() < self.settings.min_refresh_interval)
        {
            tracing::debug!(method = %name, "JWKS key miss; refetch rate-limited");
            return None;
        }
        self.fetch_locked(name, entry, &mut state).await;
        state.keys.clone().filter(|k| !Arc::ptr_eq(k, had))
    }

    /// Refetches the keys of every cached method that `live` still configures with
    /// the same URL and CA and whose last attempt is `refresh_interval` old; forgets
    /// the others (deleted or changed methods).
    pub async fn refresh_due(&self, live: impl Fn(&str) -> Option<(String, String)>) {
        let due: Vec<(String, Arc<Entry>)> = {
            let mut entries = self.entries.lock().expect("jwks cache lock poisoned");
            entries
                .retain(|name, e| live(name).is_some_and(|(url, ca)| url == e.url && ca == e.ca));
            entries
                .iter()
                .map(|(n, e)| (n.clone(), e.clone()))
                .collect()
        };
        for (name, entry) in due {
            let mut state = entry.state.lock().await;
            if state
                .attempted_at
                .is_none_or(|at| at.elapsed() >= self.settings.refresh_interval)
            {
                self.fetch_locked(&name, &entry, &mut state).await;
            }
        }
    }

    /// One fetch, its outcome recorded in `state` (the caller holds its lock).
    async fn fetch_locked(&self, name: &str, entry: &Entry, state: &mut State) {
        state.attempted_at = Some(Instant::now());
        let result = match &entry.source {
            Ok(source) => fetch::get(source, self.settings.fetch_timeout, self.settings.max_bytes)
                .await
                .and_then(|body| {
                    Keys::fetched(&body).map_err(|e| format!("not a usable JWKS: {e}"))
                }),
            Err(e) => Err(e.clone()),
        };
        match result {
            Ok((keys, skipped)) => {
                tracing::info!(method = %name, url = %entry.url, keys = keys.len(), skipped = skipped.len(), "JWKS fetched");
                if !skipped.is_empty() {
                    tracing::debug!(method = %name, skipped = ?skipped, "JWKS keys skipped");
                }
                state.keys = Some(Arc::new(keys));
                state.fetched_at = state.attempted_at;
                state.last_error = None;
            }
            Err(error) => {
                self.metrics.jwks_fetch_failed(name);
                match (&state.keys, state.fetched_at) {
                    (Some(keys), Some(at)) => tracing::warn!(
                        method = %name, url = %entry.url, %error, keys = keys.len(),
                        fetched_s_ago = at.elapsed().as_secs(),
                        "JWKS fetch failed; keeping the last good keys"
                    ),
                    _ => tracing::warn!(
                        method = %name, url = %entry.url, %error,
                        "JWKS fetch failed and no keys were ever fetched: logins through this method are refused until one succeeds"
                    ),
                }
                state.last_error = Some(error);
            }
        }
    }
}
