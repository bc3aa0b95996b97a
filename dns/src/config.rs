//! DNS settings: the serde-facing `DnsConfig` (a `[dns]` table in the server config),
//! its validation, and the checked runtime form (`Zone`) the handler answers from.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use hickory_server::proto::rr::Name;
use serde::{Deserialize, Serialize};

/// Longest TTL any setting accepts (one day). RFC 2181 allows up to 2^31-1, but a
/// discovery answer cached for longer than a day is a misconfiguration, not a wish.
pub const MAX_TTL_SECS: u32 = 86_400;
/// Longest domain accepted, in characters. The longest name Waymark builds is
/// `<63-char id>.<63-char service>.instance.<domain>` and must fit in 255 bytes.
pub const MAX_DOMAIN_LEN: usize = 100;
/// Most UDP sockets `udp_sockets` may ask for.
pub const MAX_UDP_SOCKETS: usize = 256;

/// DNS interface settings. Every field has a default, so an absent `[dns]` table or
/// key means "the default"; unknown keys are rejected with their name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DnsConfig {
    /// The zone Waymark is authoritative for (default `waymark.`). Case-insensitive;
    /// the trailing dot is optional.
    pub domain: String,
    /// TTL of positive answers, in seconds (default 5). Small because a cached answer
    /// keeps sending traffic to an instance that has gone critical or away; 5 s bounds
    /// that while still letting a caching resolver absorb bursts (0 would send every
    /// lookup to us, and some stub resolvers mishandle TTL 0).
    pub ttl_secs: u32,
    /// Per-service TTL overrides, in seconds: `service name -> ttl` (used for the
    /// service, RFC 2782 and instance names of that service).
    pub service_ttl_secs: BTreeMap<String, u32>,
    /// Negative-caching TTL, in seconds (default 5): the SOA MINIMUM and the SOA
    /// record's own TTL, so NXDOMAIN/NODATA are cached for this long (RFC 2308). Short
    /// because the common negative answer is "service not registered yet" during a
    /// deploy, and it must not outlive the registration by much.
    pub negative_ttl_secs: u32,
    /// Staleness bound, in milliseconds (default 5000): a node that last heard from a
    /// leader longer ago than this answers SERVFAIL instead of possibly old data.
    /// Must be positive; use a large value to make the bound effectively unlimited.
    pub max_stale_ms: u64,
    /// Also serve instances whose health is `warning` (default false: only passing).
    pub admit_warning: bool,
    /// UDP sockets bound to the same address with SO_REUSEPORT, each served by its own
    /// task so the kernel spreads queries over cores. 0 (default) = one per available
    /// core. Platforms without load-balancing SO_REUSEPORT always use one.
    pub udp_sockets: usize,
}

impl Default for DnsConfig {
    fn default() -> Self {
        Self {
            domain: "waymark.".into(),
            ttl_secs: 5,
            service_ttl_secs: BTreeMap::new(),
            negative_ttl_secs: 5,
            max_stale_ms: 5_000,
            admit_warning: false,
            udp_sockets: 0,
        }
    }
}

/// A rejected setting: which one and the rule it broke.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid dns.{field}: {rule}")]
pub struct ConfigError {
    /// The key as written in the `[dns]` table, e.g. `domain` or `service_ttl_secs["web"]`.
    pub field: String,
    /// The rule, with the offending value.
    pub rule: String,
}

fn err(field: impl Into<String>, rule: impl Into<String>) -> ConfigError {
    ConfigError {
        field: field.into(),
        rule: rule.into(),
    }
}

impl DnsConfig {
    /// Checks every value; the error names the first bad field and its rule.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.domain_name()?;
        check_ttl("ttl_secs", self.ttl_secs)?;
        check_ttl("negative_ttl_secs", self.negative_ttl_secs)?;
        for (service, ttl) in &self.service_ttl_secs {
            let field = format!("service_ttl_secs[{service:?}]");
            if !is_label(service) {
                return Err(err(
                    field,
                    "key must be a service name (a DNS label: a-z, 0-9, '-', 1-63 chars)",
                ));
            }
            check_ttl(&field, *ttl)?;
        }
        if self.max_stale_ms == 0 {
            return Err(err(
                "max_stale_ms",
                "must be positive (got 0); use a large value to effectively disable the bound",
            ));
        }
        if self.udp_sockets > MAX_UDP_SOCKETS {
            return Err(err(
                "udp_sockets",
                format!(
                    "must be 0 (one per core) to {MAX_UDP_SOCKETS} (got {})",
                    self.udp_sockets
                ),
            ));
        }
        Ok(())
    }

    /// How many UDP sockets to bind: `udp_sockets`, with 0 resolved to the number of
    /// available cores, and 1 where SO_REUSEPORT does not spread load.
    pub fn udp_socket_count(&self) -> usize {
        if !cfg!(any(target_os = "linux", target_os = "android")) {
            return 1;
        }
        match self.udp_sockets {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        }
    }

    /// The staleness bound as a duration.
    pub fn max_stale(&self) -> Duration {
        Duration::from_millis(self.max_stale_ms)
    }

    /// The domain as a lowercase, fully qualified name.
    fn domain_name(&self) -> Result<Name, ConfigError> {
        let text = self.domain.trim_end_matches('.').to_ascii_lowercase();
        if text.is_empty() {
            return Err(err(
                "domain",
                format!(
                    "must not be empty or the root (got {:?}); e.g. \"waymark.\"",
                    self.domain
                ),
            ));
        }
        if text.len() > MAX_DOMAIN_LEN {
            return Err(err(
                "domain",
                format!(
                    "must be at most {MAX_DOMAIN_LEN} characters (got {})",
                    text.len()
                ),
            ));
        }
        if let Some(bad) = text.split('.').find(|l| !is_label(l)) {
            return Err(err(
                "domain",
                format!(
                    "every label must be 1-63 chars of a-z, 0-9, '-', not starting or ending with '-' (bad label {bad:?} in {:?})",
                    self.domain
                ),
            ));
        }
        Name::from_ascii(format!("{text}.")).map_err(|e| {
            err(
                "domain",
                format!("is not a DNS name ({e}): {:?}", self.domain),
            )
        })
    }
}

fn check_ttl(field: &str, ttl: u32) -> Result<(), ConfigError> {
    if ttl > MAX_TTL_SECS {
        return Err(err(
            field,
            format!("must be 0-{MAX_TTL_SECS} seconds (got {ttl})"),
        ));
    }
    Ok(())
}

/// A DNS label as Waymark names use them (case-insensitive here: config is typed by
/// people, and DNS matching ignores case anyway).
pub(crate) fn is_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// The validated settings in the form the handler uses: names prebuilt, TTL overrides
/// keyed by lowercase service name.
#[derive(Debug, Clone)]
pub(crate) struct Zone {
    /// The apex, lowercase and fully qualified.
    pub domain: Name,
    pub ttl: u32,
    service_ttl: HashMap<String, u32>,
    pub negative_ttl: u32,
    pub max_stale: Duration,
    pub admit_warning: bool,
}

impl Zone {
    pub fn new(config: &DnsConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(Self {
            domain: config.domain_name()?,
            ttl: config.ttl_secs,
            service_ttl: config
                .service_ttl_secs
                .iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), *v))
                .collect(),
            negative_ttl: config.negative_ttl_secs,
            max_stale: config.max_stale(),
            admit_warning: config.admit_warning,
        })
    }

    /// TTL for records of `service` (its override, else the default).
    pub fn service_ttl(&self, service: &str) -> u32 {
        self.service_ttl.get(service).copied().unwrap_or(self.ttl)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_of(c: DnsConfig) -> String {
        c.validate().expect_err("should be rejected").field
    }

    #[test]
    fn defaults_are_valid() {
        let c = DnsConfig::default();
        c.validate().expect("defaults valid");
        let z = Zone::new(&c).expect("zone");
        assert_eq!(z.domain.to_ascii(), "waymark.");
        assert_eq!(z.service_ttl("web"), 5);
    }

    #[test]
    fn domain_is_normalised() {
        let c = DnsConfig {
            domain: "Disco.Example".into(),
            ..DnsConfig::default()
        };
        assert_eq!(
            Zone::new(&c).expect("zone").domain.to_ascii(),
            "disco.example."
        );
    }

    #[test]
    fn bad_values_name_their_field() {
        for bad in ["", ".", "a..b", "-x.", "a b.", &"x".repeat(101)] {
            let c = DnsConfig {
                domain: bad.into(),
                ..DnsConfig::default()
            };
            assert_eq!(field_of(c), "domain", "{bad:?}");
        }
        let c = DnsConfig {
            ttl_secs: MAX_TTL_SECS + 1,
            ..DnsConfig::default()
        };
        assert_eq!(field_of(c), "ttl_secs");
        let c = DnsConfig {
            negative_ttl_secs: MAX_TTL_SECS + 1,
            ..DnsConfig::default()
        };
        assert_eq!(field_of(c), "negative_ttl_secs");
        let c = DnsConfig {
            max_stale_ms: 0,
            ..DnsConfig::default()
        };
        assert_eq!(field_of(c), "max_stale_ms");
        let c = DnsConfig {
            udp_sockets: MAX_UDP_SOCKETS + 1,
            ..DnsConfig::default()
        };
        assert_eq!(field_of(c), "udp_sockets");
        let c = DnsConfig {
            service_ttl_secs: [("we b".to_string(), 1)].into(),
            ..DnsConfig::default()
        };
        assert_eq!(field_of(c), "service_ttl_secs[\"we b\"]");
        let c = DnsConfig {
            service_ttl_secs: [("web".to_string(), MAX_TTL_SECS + 1)].into(),
            ..DnsConfig::default()
        };
        let e = c.validate().expect_err("rejected");
        assert_eq!(
            e.to_string(),
            "invalid dns.service_ttl_secs[\"web\"]: must be 0-86400 seconds (got 86401)"
        );
    }

    #[test]
    fn service_ttl_override_applies_case_insensitively() {
        let c = DnsConfig {
            service_ttl_secs: [("Web".to_string(), 30)].into(),
            ..DnsConfig::default()
        };
        let z = Zone::new(&c).expect("zone");
        assert_eq!(z.service_ttl("web"), 30);
        assert_eq!(z.service_ttl("api"), 5);
    }
}
