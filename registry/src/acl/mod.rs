//! Access control: the `[acl]` settings, who a caller is (`resolve`: the presented
//! secret → its token → an `Authorizer` built from its policies), and what that
//! authorizer allows; for logins, JWT verification (`jwt.rs`) and binding rules
//! (`binding.rs`), and the per-node cache of keys fetched from auth methods'
//! `jwks_url`s (`jwks/`, the one part that does I/O). The rest is pure: it reads a
//! catalog it is handed; the API edge (`api/auth.rs`, `api/acl_service.rs`) takes the
//! token or JWT from the request and turns refusals into statuses.

pub mod binding;
pub mod jwks;
pub mod jwt;
pub mod rules;
pub mod secret;

use serde::{Deserialize, Serialize};

use crate::catalog::Catalog;
use crate::model::{AclAccess, AclResource, AclRule, GLOBAL_MANAGEMENT};
pub use rules::Need;

/// What a request no rule covers gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DefaultPolicy {
    Allow,
    /// The production stance: only what a token's policies grant.
    #[default]
    Deny,
}

impl DefaultPolicy {
    pub fn name(self) -> &'static str {
        match self {
            DefaultPolicy::Allow => "allow",
            DefaultPolicy::Deny => "deny",
        }
    }
}

/// The `[acl]` table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AclConfig {
    /// Off (the default, as in Consul): every call is allowed, and the server warns
    /// at startup. Production configs turn it on.
    #[serde(default)]
    pub enabled: bool,
    /// For calls no rule covers, and for calls without a token (deny: refused as
    /// UNAUTHENTICATED). Default deny.
    #[serde(default)]
    pub default_policy: DefaultPolicy,
    /// The secret of the token whose policies decide what DNS answers (DNS carries
    /// no credentials). None: DNS sees what the default policy allows.
    #[serde(default)]
    pub dns_token: Option<String>,
    /// How often keys fetched from an auth method's `jwks_url` are refetched in the
    /// background (default 5 min).
    #[serde(default = "default_jwks_refresh_interval_ms")]
    pub jwks_refresh_interval_ms: u64,
    /// Least time between two fetches of one method's `jwks_url` when a login brings
    /// a `kid` the cached keys lack, or finds no keys yet (default 10 s): a burst of
    /// such logins cannot hammer the identity provider.
    #[serde(default = "default_jwks_min_refresh_interval_ms")]
    pub jwks_min_refresh_interval_ms: u64,
    /// Deadline of one JWKS fetch: connect, TLS, request and body (default 5 s).
    #[serde(default = "default_jwks_fetch_timeout_ms")]
    pub jwks_fetch_timeout_ms: u64,
}

fn default_jwks_refresh_interval_ms() -> u64 {
    300_000
}

fn default_jwks_min_refresh_interval_ms() -> u64 {
    10_000
}

fn default_jwks_fetch_timeout_ms() -> u64 {
    5_000
}

impl Default for AclConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            default_policy: DefaultPolicy::default(),
            dns_token: None,
            jwks_refresh_interval_ms: default_jwks_refresh_interval_ms(),
            jwks_min_refresh_interval_ms: default_jwks_min_refresh_interval_ms(),
            jwks_fetch_timeout_ms: default_jwks_fetch_timeout_ms(),
        }
    }
}

impl AclConfig {
    /// Refuses JWKS timings of 0 (a refresh loop with no pause, a fetch that can
    /// never finish), naming the setting.
    pub fn validate(&self) -> Result<(), String> {
        for (name, value) in [
            ("jwks_refresh_interval_ms", self.jwks_refresh_interval_ms),
            (
                "jwks_min_refresh_interval_ms",
                self.jwks_min_refresh_interval_ms,
            ),
            ("jwks_fetch_timeout_ms", self.jwks_fetch_timeout_ms),
        ] {
            if value == 0 {
                return Err(format!("invalid [acl] {name}: must be positive"));
            }
        }
        Ok(())
    }
}

/// Why a caller was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AclError {
    /// No token where one is required, or an unknown, expired or malformed one.
    #[error("{0}")]
    Unauthenticated(String),
    /// The token is valid; no rule of its policies allows `need`.
    #[error("permission denied: token {accessor} needs a rule `{need}`")]
    Denied { accessor: String, need: Need },
}

/// The message for a request without a token on a default-deny cluster.
pub const NO_TOKEN: &str = "this cluster requires an ACL token: pass --token or set WAYMARK_TOKEN (gRPC: `authorization: Bearer <secret>`)";

/// What one caller may do, resolved once per request (and again on a watch stream
/// whenever tokens or policies change).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorizer {
    /// The token's accessor id; `None` for an anonymous caller (or ACLs off).
    pub accessor: Option<String>,
    grant: Grant,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Grant {
    /// ACLs off, or a management token.
    Everything,
    /// The rules of the token's policies, then the default policy.
    Rules {
        rules: Vec<AclRule>,
        default_allow: bool,
    },
}

impl Authorizer {
    /// Everything allowed (ACLs off).
    pub fn everything() -> Self {
        Self {
            accessor: None,
            grant: Grant::Everything,
        }
    }

    pub fn allows(&self, need: &Need) -> bool {
        match &self.grant {
            Grant::Everything => true,
            Grant::Rules {
                rules,
                default_allow,
            } => match rules::decide(rules, need) {
                Some(granted) => rules::covers(granted, need.access),
                None => *default_allow,
            },
        }
    }

    /// `Ok` if `need` is allowed, else the refusal naming the missing rule.
    pub fn require(&self, need: Need) -> Result<(), AclError> {
        if self.allows(&need) {
            return Ok(());
        }
        match &self.accessor {
            Some(accessor) => Err(AclError::Denied {
                accessor: accessor.clone(),
                need,
            }),
            None => Err(AclError::Unauthenticated(format!(
                "{NO_TOKEN} (this call needs `{need}`)"
            ))),
        }
    }

    /// `Ok` for any caller the cluster accepts: a valid token, or anyone under default
    /// allow (leases name no service, so no finer rule applies to them).
    pub fn require_known(&self) -> Result<(), AclError> {
        match (&self.accessor, &self.grant) {
            (
                None,
                Grant::Rules {
                    default_allow: false,
                    ..
                },
            ) => Err(AclError::Unauthenticated(NO_TOKEN.into())),
            _ => Ok(()),
        }
    }

    pub fn may_read_service(&self, service: &str) -> bool {
        self.allows(&Need::service(service, AclAccess::Read))
    }

    pub fn may_read_config(&self, key: &str) -> bool {
        self.allows(&Need::config(key, AclAccess::Read))
    }

    pub fn may_read_intentions(&self) -> bool {
        self.allows(&Need::global(AclResource::Intention, AclAccess::Read))
    }
}

/// The outcome of looking a presented secret up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolved {
    Known(Authorizer),
    /// No token has this secret here. A follower may not have applied a token created
    /// a moment ago: the edge waits for a read barrier and asks once more.
    Unknown,
}

/// Who the caller presenting `secret` is, by `catalog` at `now_unix_ms`.
pub fn resolve(
    config: &AclConfig,
    catalog: &Catalog,
    secret: Option<&str>,
    now_unix_ms: u64,
) -> Result<Resolved, AclError> {
    if !config.enabled {
        return Ok(Resolved::Known(Authorizer::everything()));
    }
    let default_allow = config.default_policy == DefaultPolicy::Allow;
    let Some(secret) = secret else {
        return Ok(Resolved::Known(Authorizer {
            accessor: None,
            grant: Grant::Rules {
                rules: Vec::new(),
                default_allow,
            },
        }));
    };
    let Some(token) = catalog.token_by_secret_hash(&secret::hash_secret(secret)) else {
        return Ok(Resolved::Unknown);
    };
    if let Some(at) = token.expires_at_unix_ms.filter(|at| *at <= now_unix_ms) {
        return Err(AclError::Unauthenticated(format!(
            "ACL token {} expired {} ms ago",
            token.accessor_id,
            now_unix_ms - at
        )));
    }
    let accessor = Some(token.accessor_id.clone());
    if token.policies.iter().any(|p| p == GLOBAL_MANAGEMENT) {
        return Ok(Resolved::Known(Authorizer {
            accessor,
            grant: Grant::Everything,
        }));
    }
    let rules = token
        .policies
        .iter()
        .filter_map(|p| catalog.policy(p))
        .flat_map(|p| p.rules.iter().cloned())
        .collect();
    Ok(Resolved::Known(Authorizer {
        accessor,
        grant: Grant::Rules {
            rules,
            default_allow,
        },
    }))
}

/// The refusal for a secret no token has.
pub fn unknown_token() -> AclError {
    AclError::Unauthenticated(
        "unknown ACL token (deleted, expired, mistyped, or from another cluster)".into(),
    )
}

/// Milliseconds since the Unix epoch, by this node's clock (token expiry is wall-clock
/// time, as in Consul: skew between nodes shifts when a token stops working).
pub fn now_unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests;
