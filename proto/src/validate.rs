//! Validation of client input: turns wire messages into value types the registry can
//! trust, or into an error that names the field and the rule it broke.

use std::collections::BTreeMap;
use std::net::IpAddr;

use crate::pb;

/// Most tags one instance may carry.
pub const MAX_TAGS: usize = 32;
/// Most meta entries one instance may carry.
pub const MAX_META_ENTRIES: usize = 64;
/// Longest meta key, in bytes.
pub const MAX_META_KEY_LEN: usize = 128;
/// Longest meta value, in bytes.
pub const MAX_META_VALUE_LEN: usize = 512;
/// Longest hostname accepted as an address (RFC 1123).
pub const MAX_HOSTNAME_LEN: usize = 253;
/// Longest DNS label (RFC 1035).
pub const MAX_LABEL_LEN: usize = 63;
/// Shortest `deregister_critical_after_ms` when set.
pub const MIN_DEREGISTER_CRITICAL_AFTER_MS: u64 = 1_000;
/// Longest health check output kept, in bytes.
pub const MAX_HEALTH_OUTPUT_LEN: usize = 4_096;
/// Lease TTL bounds, in milliseconds.
pub const MIN_LEASE_TTL_MS: u64 = 2_000;
pub const MAX_LEASE_TTL_MS: u64 = 86_400_000;

/// The limits above, in words, for help texts and docs.
pub const LIMITS_DOC: &str = "service, id and tags: DNS labels (lowercase a-z, 0-9, '-', \
1-63 chars, no leading/trailing '-'); address: IP or hostname (<= 253 chars); port: 1-65535; \
tags: <= 32, unique; meta: <= 64 entries, keys 1-128 chars of [A-Za-z0-9_-], values <= 512 bytes; \
weights: 0-65535, passing >= 1";

/// A rejected field: which one, and the rule it broke.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {field}: {rule}")]
pub struct ValidationError {
    /// The field as named in the request message, e.g. `service` or `meta["k"]`.
    pub field: String,
    /// The rule, with the offending value where it helps.
    pub rule: String,
}

impl ValidationError {
    pub fn new(field: impl Into<String>, rule: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            rule: rule.into(),
        }
    }
}

impl From<ValidationError> for tonic::Status {
    fn from(e: ValidationError) -> Self {
        crate::errors::ErrorDetail::invalid_argument(&e.field)
            .status(tonic::Code::InvalidArgument, e.to_string())
    }
}

/// Checks that `value` is a DNS label as Waymark uses them for names.
pub fn check_dns_label(field: &str, value: &str) -> Result<(), ValidationError> {
    if value.is_empty() {
        return Err(ValidationError::new(field, "must not be empty"));
    }
    if value.len() > MAX_LABEL_LEN {
        return Err(ValidationError::new(
            field,
            format!(
                "must be at most {MAX_LABEL_LEN} characters (got {})",
                value.len()
            ),
        ));
    }
    if let Some(c) = value
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
    {
        return Err(ValidationError::new(
            field,
            format!(
                "must be a DNS label of lowercase letters, digits and '-' (found {c:?} in {value:?})"
            ),
        ));
    }
    if value.starts_with('-') || value.ends_with('-') {
        return Err(ValidationError::new(
            field,
            format!("must not start or end with '-' (got {value:?})"),
        ));
    }
    Ok(())
}

/// Checks that `value` is an IP address or an RFC 1123 hostname.
fn check_address(field: &str, value: &str) -> Result<(), ValidationError> {
    if value.is_empty() {
        return Err(ValidationError::new(field, "must not be empty"));
    }
    if value.parse::<IpAddr>().is_ok() {
        return Ok(());
    }
    let host = value.strip_suffix('.').unwrap_or(value);
    let bad = || {
        ValidationError::new(
            field,
            format!("must be an IP address or a hostname (got {value:?})"),
        )
    };
    if host.is_empty() || host.len() > MAX_HOSTNAME_LEN {
        return Err(bad());
    }
    for label in host.split('.') {
        let ok = !label.is_empty()
            && label.len() <= MAX_LABEL_LEN
            && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !label.starts_with('-')
            && !label.ends_with('-');
        if !ok {
            return Err(bad());
        }
    }
    // A dotted all-numeric name would be a mistyped IPv4 address, not a hostname.
    if host
        .split('.')
        .all(|l| l.chars().all(|c| c.is_ascii_digit()))
    {
        return Err(bad());
    }
    Ok(())
}

fn check_weight(field: &str, value: u32, min: u32) -> Result<u16, ValidationError> {
    if value < min || value > u16::MAX as u32 {
        return Err(ValidationError::new(
            field,
            format!("must be {min}-65535 (got {value})"),
        ));
    }
    Ok(value as u16)
}

/// Load-balancing weights of an instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Weights {
    pub passing: u16,
    pub warning: u16,
}

impl Default for Weights {
    fn default() -> Self {
        Self {
            passing: 1,
            warning: 1,
        }
    }
}

/// A validated registration: every field obeys the rules in [`LIMITS_DOC`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    pub service: String,
    pub id: String,
    pub address: String,
    pub port: u16,
    /// In request order, no duplicates.
    pub tags: Vec<String>,
    pub meta: BTreeMap<String, String>,
    pub weights: Weights,
    pub lease_id: Option<u64>,
    /// On lease end: mark critical (true) or remove (false).
    pub mark_critical_on_lease_expiry: bool,
    /// 0 = never.
    pub deregister_critical_after_ms: u64,
    /// Compare-and-set on the instance's modify index: `Some(0)` = only if absent,
    /// `Some(n)` = only if its modify index is `n`, `None` = unconditional.
    pub expected_modify_index: Option<u64>,
    /// PASSING, WARNING or CRITICAL (UNSPECIFIED in the request means PASSING).
    pub initial_status: pb::HealthStatus,
}

impl TryFrom<pb::RegisterRequest> for Registration {
    type Error = ValidationError;

    fn try_from(req: pb::RegisterRequest) -> Result<Self, Self::Error> {
        check_dns_label("service", &req.service)?;
        check_dns_label("id", &req.id)?;
        check_address("address", &req.address)?;
        if req.port == 0 || req.port > u16::MAX as u32 {
            return Err(ValidationError::new(
                "port",
                format!("must be 1-65535 (got {})", req.port),
            ));
        }
        if req.tags.len() > MAX_TAGS {
            return Err(ValidationError::new(
                "tags",
                format!("at most {MAX_TAGS} tags (got {})", req.tags.len()),
            ));
        }
        let mut tags: Vec<String> = Vec::with_capacity(req.tags.len());
        for (i, tag) in req.tags.into_iter().enumerate() {
            let field = format!("tags[{i}]");
            check_dns_label(&field, &tag)?;
            if tags.contains(&tag) {
                return Err(ValidationError::new(
                    field,
                    format!("duplicate tag {tag:?}"),
                ));
            }
            tags.push(tag);
        }
        if req.meta.len() > MAX_META_ENTRIES {
            return Err(ValidationError::new(
                "meta",
                format!(
                    "at most {MAX_META_ENTRIES} entries (got {})",
                    req.meta.len()
                ),
            ));
        }
        let mut meta = BTreeMap::new();
        for (k, v) in req.meta {
            let field = format!("meta[{k:?}]");
            if k.is_empty() || k.len() > MAX_META_KEY_LEN {
                return Err(ValidationError::new(
                    field,
                    format!("key must be 1-{MAX_META_KEY_LEN} characters"),
                ));
            }
            if !k
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            {
                return Err(ValidationError::new(
                    field,
                    "key must use only A-Z, a-z, 0-9, '_' and '-'",
                ));
            }
            if v.len() > MAX_META_VALUE_LEN {
                return Err(ValidationError::new(
                    field,
                    format!(
                        "value must be at most {MAX_META_VALUE_LEN} bytes (got {})",
                        v.len()
                    ),
                ));
            }
            meta.insert(k, v);
        }
        let weights = match req.weights {
            None => Weights::default(),
            Some(w) => Weights {
                passing: check_weight("weights.passing", w.passing, 1)?,
                warning: check_weight("weights.warning", w.warning, 0)?,
            },
        };
        let dca = req.deregister_critical_after_ms;
        if dca != 0 && dca < MIN_DEREGISTER_CRITICAL_AFTER_MS {
            return Err(ValidationError::new(
                "deregister_critical_after_ms",
                format!(
                    "must be 0 (never) or at least {MIN_DEREGISTER_CRITICAL_AFTER_MS} (got {dca})"
                ),
            ));
        }
        let mark_critical_on_lease_expiry =
            match pb::LeaseExpiryAction::try_from(req.on_lease_expiry) {
                Ok(pb::LeaseExpiryAction::MarkCritical) => true,
                Ok(_) => false,
                Err(_) => {
                    return Err(ValidationError::new(
                        "on_lease_expiry",
                        format!(
                            "unknown action {} (use REMOVE or MARK_CRITICAL)",
                            req.on_lease_expiry
                        ),
                    ))
                }
            };
        if mark_critical_on_lease_expiry && req.lease_id == 0 {
            return Err(ValidationError::new(
                "on_lease_expiry",
                "MARK_CRITICAL needs a lease_id",
            ));
        }
        let initial_status = match pb::HealthStatus::try_from(req.initial_status) {
            Ok(pb::HealthStatus::Unspecified) => pb::HealthStatus::Passing,
            Ok(s) => s,
            Err(_) => {
                return Err(ValidationError::new(
                    "initial_status",
                    format!(
                        "must be PASSING, WARNING or CRITICAL (got {})",
                        req.initial_status
                    ),
                ))
            }
        };
        Ok(Registration {
            initial_status,
            lease_id: (req.lease_id != 0).then_some(req.lease_id),
            mark_critical_on_lease_expiry,
            deregister_critical_after_ms: dca,
            expected_modify_index: req.expected_modify_index,
            service: req.service,
            id: req.id,
            address: req.address,
            port: req.port as u16,
            tags,
            meta,
            weights,
        })
    }
}

/// Validates a health update; returns the status as one of the three real states.
pub fn check_health_update(
    req: &pb::UpdateHealthRequest,
) -> Result<pb::HealthStatus, ValidationError> {
    check_instance_key(&req.service, &req.id)?;
    let status = match pb::HealthStatus::try_from(req.status) {
        Ok(
            s
            @ (pb::HealthStatus::Passing | pb::HealthStatus::Warning | pb::HealthStatus::Critical),
        ) => s,
        _ => {
            return Err(ValidationError::new(
                "status",
                format!("must be PASSING, WARNING or CRITICAL (got {})", req.status),
            ))
        }
    };
    if req.output.len() > MAX_HEALTH_OUTPUT_LEN {
        return Err(ValidationError::new(
            "output",
            format!(
                "must be at most {MAX_HEALTH_OUTPUT_LEN} bytes (got {})",
                req.output.len()
            ),
        ));
    }
    Ok(status)
}

/// Validates a lease TTL.
pub fn check_lease_ttl(ttl_ms: u64) -> Result<(), ValidationError> {
    if !(MIN_LEASE_TTL_MS..=MAX_LEASE_TTL_MS).contains(&ttl_ms) {
        return Err(ValidationError::new(
            "ttl_ms",
            format!("must be {MIN_LEASE_TTL_MS}-{MAX_LEASE_TTL_MS} ms (got {ttl_ms})"),
        ));
    }
    Ok(())
}

/// The consistency a read asks for (unspecified = CONSISTENT), checked against its
/// staleness bound.
pub fn read_consistency(options: &pb::ReadOptions) -> Result<pb::Consistency, ValidationError> {
    match pb::Consistency::try_from(options.consistency) {
        Ok(pb::Consistency::Stale) => Ok(pb::Consistency::Stale),
        Ok(_) if options.max_stale_ms != 0 => Err(ValidationError::new(
            "read.max_stale_ms",
            "only applies to STALE reads",
        )),
        Ok(_) => Ok(pb::Consistency::Consistent),
        Err(_) => Err(ValidationError::new(
            "read.consistency",
            format!(
                "unknown mode {} (use CONSISTENT or STALE)",
                options.consistency
            ),
        )),
    }
}

/// A lease id named in a request: leases are numbered from 1.
pub fn check_lease_id(lease_id: u64) -> Result<(), ValidationError> {
    if lease_id == 0 {
        return Err(ValidationError::new(
            "lease_id",
            "must be a positive lease id",
        ));
    }
    Ok(())
}

/// A `HOST:PORT` address with a non-empty host and a port 1-65535.
pub fn check_host_port(field: &str, value: &str) -> Result<(), ValidationError> {
    match value.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0) => {
            Ok(())
        }
        _ => Err(ValidationError::new(
            field,
            format!("must be HOST:PORT (got {value:?})"),
        )),
    }
}

/// A node id named in a membership request.
pub fn check_node_id(node_id: u64) -> Result<(), ValidationError> {
    if node_id == 0 {
        return Err(ValidationError::new(
            "node_id",
            "must be a positive integer (got 0)",
        ));
    }
    Ok(())
}

/// Validates the (service, id) pair that names one instance.
pub fn check_instance_key(service: &str, id: &str) -> Result<(), ValidationError> {
    check_dns_label("service", service)?;
    check_dns_label("id", id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid() -> pb::RegisterRequest {
        pb::RegisterRequest {
            service: "web".into(),
            id: "web-1".into(),
            address: "10.0.0.1".into(),
            port: 8080,
            tags: vec!["v1".into(), "primary".into()],
            meta: [("version".to_string(), "1.2.3".to_string())].into(),
            ..Default::default()
        }
    }

    fn field_of(req: pb::RegisterRequest) -> String {
        Registration::try_from(req).unwrap_err().field
    }

    #[test]
    fn accepts_a_valid_registration_with_default_weights() {
        let r = Registration::try_from(valid()).unwrap();
        assert_eq!(r.port, 8080);
        assert_eq!(r.weights, Weights::default());
        assert_eq!(r.tags, vec!["v1", "primary"]);
        assert_eq!(r.initial_status, pb::HealthStatus::Passing);
    }

    #[test]
    fn initial_status_is_a_known_status() {
        let mut r = valid();
        r.initial_status = pb::HealthStatus::Critical as i32;
        assert_eq!(
            Registration::try_from(r).unwrap().initial_status,
            pb::HealthStatus::Critical
        );
        let mut r = valid();
        r.initial_status = 9;
        assert_eq!(field_of(r), "initial_status");
    }

    #[test]
    fn names_must_be_dns_labels() {
        for bad in ["", "Web", "web_1", "-web", "web-", "we b", &"a".repeat(64)] {
            let mut r = valid();
            r.service = bad.to_string();
            assert_eq!(field_of(r), "service", "service {bad:?}");
            let mut r = valid();
            r.id = bad.to_string();
            assert_eq!(field_of(r), "id", "id {bad:?}");
        }
        let mut r = valid();
        r.service = "a".repeat(63);
        assert!(Registration::try_from(r).is_ok());
    }

    #[test]
    fn address_is_ip_or_hostname() {
        for good in [
            "10.1.2.3",
            "::1",
            "fe80::1",
            "db.internal",
            "host-1.example.com.",
        ] {
            let mut r = valid();
            r.address = good.into();
            assert!(Registration::try_from(r).is_ok(), "{good}");
        }
        for bad in [
            "",
            "300.1.1.1",
            "a..b",
            "-a.com",
            "a b",
            "http://x",
            &"a.".repeat(130),
        ] {
            let mut r = valid();
            r.address = bad.into();
            assert_eq!(field_of(r), "address", "{bad:?}");
        }
    }

    #[test]
    fn port_range() {
        for bad in [0, 65536, u32::MAX] {
            let mut r = valid();
            r.port = bad;
            assert_eq!(field_of(r), "port");
        }
    }

    #[test]
    fn tag_rules() {
        let mut r = valid();
        r.tags = (0..33).map(|i| format!("t{i}")).collect();
        assert_eq!(field_of(r), "tags");
        let mut r = valid();
        r.tags = vec!["ok".into(), "Bad".into()];
        assert_eq!(field_of(r), "tags[1]");
        let mut r = valid();
        r.tags = vec!["a".into(), "a".into()];
        assert_eq!(field_of(r), "tags[1]");
    }

    #[test]
    fn meta_rules() {
        let mut r = valid();
        r.meta = (0..65).map(|i| (format!("k{i}"), "v".into())).collect();
        assert_eq!(field_of(r), "meta");
        let mut r = valid();
        r.meta = [("bad key".to_string(), "v".to_string())].into();
        assert_eq!(field_of(r), "meta[\"bad key\"]");
        let mut r = valid();
        r.meta = [("k".to_string(), "v".repeat(513))].into();
        assert_eq!(field_of(r), "meta[\"k\"]");
        let mut r = valid();
        r.meta = [("k".repeat(129), "v".into())].into();
        assert!(field_of(r).starts_with("meta["));
    }

    #[test]
    fn weight_rules() {
        let mut r = valid();
        r.weights = Some(pb::Weights {
            passing: 0,
            warning: 1,
        });
        assert_eq!(field_of(r), "weights.passing");
        let mut r = valid();
        r.weights = Some(pb::Weights {
            passing: 1,
            warning: 70000,
        });
        assert_eq!(field_of(r), "weights.warning");
    }

    #[test]
    fn expected_modify_index_is_carried_through() {
        assert_eq!(
            Registration::try_from(valid())
                .unwrap()
                .expected_modify_index,
            None
        );
        for cas in [0, 42] {
            let mut r = valid();
            r.expected_modify_index = Some(cas);
            assert_eq!(
                Registration::try_from(r).unwrap().expected_modify_index,
                Some(cas)
            );
        }
    }

    #[test]
    fn reaping_is_off_or_at_least_the_minimum() {
        for (ms, ok) in [(0, true), (999, false), (1_000, true), (60_000, true)] {
            let mut r = valid();
            r.deregister_critical_after_ms = ms;
            match Registration::try_from(r) {
                Ok(reg) => {
                    assert!(ok, "{ms} accepted");
                    assert_eq!(reg.deregister_critical_after_ms, ms);
                }
                Err(e) => {
                    assert!(!ok, "{ms} refused: {e}");
                    assert_eq!(e.field, "deregister_critical_after_ms");
                    assert!(e.to_string().contains("at least 1000 (got 999)"), "{e}");
                }
            }
        }
    }

    #[test]
    fn health_updates_need_a_real_status_and_bounded_output() {
        let update = |status: pb::HealthStatus, output_len: usize| pb::UpdateHealthRequest {
            service: "web".into(),
            id: "web-1".into(),
            status: status as i32,
            output: "x".repeat(output_len),
        };
        let at_limit = update(pb::HealthStatus::Critical, MAX_HEALTH_OUTPUT_LEN);
        assert_eq!(
            check_health_update(&at_limit),
            Ok(pb::HealthStatus::Critical)
        );
        let over = update(pb::HealthStatus::Passing, MAX_HEALTH_OUTPUT_LEN + 1);
        let e = check_health_update(&over).unwrap_err();
        assert_eq!(e.field, "output");
        assert!(
            e.to_string().contains("at most 4096 bytes (got 4097)"),
            "{e}"
        );
        let unknown = update(pb::HealthStatus::Unspecified, 0);
        assert_eq!(check_health_update(&unknown).unwrap_err().field, "status");
    }

    #[test]
    fn lease_ttls_are_between_two_seconds_and_a_day() {
        for ok in [MIN_LEASE_TTL_MS, 60_000, MAX_LEASE_TTL_MS] {
            assert_eq!(check_lease_ttl(ok), Ok(()), "{ok}");
        }
        for bad in [0, MIN_LEASE_TTL_MS - 1, MAX_LEASE_TTL_MS + 1] {
            let e = check_lease_ttl(bad).unwrap_err();
            assert_eq!(e.field, "ttl_ms");
            assert!(e.to_string().contains(&format!("(got {bad})")), "{e}");
        }
    }

    #[test]
    fn error_message_names_field_and_rule() {
        let mut r = valid();
        r.port = 0;
        let msg = Registration::try_from(r).unwrap_err().to_string();
        assert_eq!(msg, "invalid port: must be 1-65535 (got 0)");
    }
}
