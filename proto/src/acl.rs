//! Validation of ACL requests: policy names and rules, token descriptions, policy
//! lists and TTLs. The registry runs the same checks on commands entering its log.

use crate::pb;
use crate::validate::{check_dns_label, ValidationError};

/// Most rules in one policy.
pub const MAX_RULES: usize = 256;
/// Most policies on one token.
pub const MAX_TOKEN_POLICIES: usize = 32;
/// Longest description, in bytes.
pub const MAX_DESCRIPTION_LEN: usize = 256;
/// Longest rule name (a service name or config key prefix), in bytes.
pub const MAX_RULE_NAME_LEN: usize = 512;
/// Shortest token TTL when one is set.
pub const MIN_TOKEN_TTL_MS: u64 = 1_000;
/// The built-in policy with every right.
pub const GLOBAL_MANAGEMENT: &str = "global-management";

/// A policy name: a DNS label.
pub fn check_policy_name(field: &str, name: &str) -> Result<(), ValidationError> {
    check_dns_label(field, name)
}

pub fn check_description(description: &str) -> Result<(), ValidationError> {
    if description.len() > MAX_DESCRIPTION_LEN {
        return Err(ValidationError::new(
            "description",
            format!(
                "must be at most {MAX_DESCRIPTION_LEN} bytes (got {})",
                description.len()
            ),
        ));
    }
    Ok(())
}

/// A policy's rules: known resources and accesses, names only where they mean
/// something, and names that could match (a service name or config key shape).
pub fn check_rules(rules: &[pb::AclRule]) -> Result<(), ValidationError> {
    if rules.len() > MAX_RULES {
        return Err(ValidationError::new(
            "rules",
            format!("at most {MAX_RULES} rules (got {})", rules.len()),
        ));
    }
    for (i, rule) in rules.iter().enumerate() {
        let field = |f: &str| format!("rules[{i}].{f}");
        let resource = match pb::AclResource::try_from(rule.resource) {
            Ok(pb::AclResource::Unspecified) | Err(_) => {
                return Err(ValidationError::new(
                    field("resource"),
                    format!(
                        "must be SERVICE, CONFIG, INTENTION, NODE, OPERATOR or ACL (got {})",
                        rule.resource
                    ),
                ))
            }
            Ok(r) => r,
        };
        if matches!(
            pb::AclAccess::try_from(rule.access),
            Ok(pb::AclAccess::Unspecified) | Err(_)
        ) {
            return Err(ValidationError::new(
                field("access"),
                format!("must be READ, WRITE or DENY (got {})", rule.access),
            ));
        }
        let named = matches!(resource, pb::AclResource::Service | pb::AclResource::Config);
        if !named {
            if !rule.name.is_empty() || rule.prefix {
                return Err(ValidationError::new(
                    field("name"),
                    format!(
                        "{} rules cover everything of their kind: leave name and prefix unset",
                        resource.as_str_name().to_lowercase()
                    ),
                ));
            }
            continue;
        }
        if rule.name.len() > MAX_RULE_NAME_LEN {
            return Err(ValidationError::new(
                field("name"),
                format!("must be at most {MAX_RULE_NAME_LEN} bytes"),
            ));
        }
        if rule.name.is_empty() && !rule.prefix {
            return Err(ValidationError::new(
                field("name"),
                "an exact rule needs a name (an empty prefix covers everything)",
            ));
        }
        // A prefix may end mid-label ("web-" covers "web-1"), so only exact names are
        // checked as full names.
        if !rule.prefix {
            match resource {
                pb::AclResource::Service => check_dns_label(&field("name"), &rule.name)?,
                _ => crate::check_config_key(&field("name"), &rule.name)?,
            }
        } else if let Some(c) = rule
            .name
            .chars()
            .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-' || *c == '/'))
        {
            return Err(ValidationError::new(
                field("name"),
                format!("a prefix of names or keys cannot contain {c:?}"),
            ));
        }
    }
    Ok(())
}

/// The policies a token names: at least one, each a valid name, no repeats.
pub fn check_token_policies(policies: &[String]) -> Result<(), ValidationError> {
    if policies.is_empty() {
        return Err(ValidationError::new(
            "policies",
            "a token needs at least one policy",
        ));
    }
    if policies.len() > MAX_TOKEN_POLICIES {
        return Err(ValidationError::new(
            "policies",
            format!("at most {MAX_TOKEN_POLICIES} (got {})", policies.len()),
        ));
    }
    for (i, p) in policies.iter().enumerate() {
        check_policy_name(&format!("policies[{i}]"), p)?;
        if policies[..i].contains(p) {
            return Err(ValidationError::new(
                format!("policies[{i}]"),
                format!("duplicate policy {p:?}"),
            ));
        }
    }
    Ok(())
}

pub fn check_token_ttl(ttl_ms: u64) -> Result<(), ValidationError> {
    if ttl_ms != 0 && ttl_ms < MIN_TOKEN_TTL_MS {
        return Err(ValidationError::new(
            "ttl_ms",
            format!("must be 0 (never expires) or at least {MIN_TOKEN_TTL_MS} (got {ttl_ms})"),
        ));
    }
    Ok(())
}

/// A policy write: its name (not the built-in one), description and rules.
pub fn check_put_policy(req: &pb::PutPolicyRequest) -> Result<(), ValidationError> {
    check_policy_name("name", &req.name)?;
    if req.name == GLOBAL_MANAGEMENT {
        return Err(ValidationError::new(
            "name",
            "global-management is built in and cannot be written",
        ));
    }
    check_description(&req.description)?;
    check_rules(&req.rules)
}

/// A token creation request.
pub fn check_create_token(req: &pb::CreateTokenRequest) -> Result<(), ValidationError> {
    check_description(&req.description)?;
    check_token_policies(&req.policies)?;
    check_token_ttl(req.ttl_ms)
}

/// An accessor id named in a request: 32 lowercase hex digits.
pub fn check_accessor_id(id: &str) -> Result<(), ValidationError> {
    if id.len() == 32
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Ok(());
    }
    Err(ValidationError::new(
        "accessor_id",
        format!("must be 32 lowercase hex digits (got {id:?})"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(resource: pb::AclResource, name: &str, prefix: bool) -> pb::AclRule {
        pb::AclRule {
            resource: resource as i32,
            name: name.into(),
            prefix,
            access: pb::AclAccess::Write as i32,
        }
    }

    #[test]
    fn rules_name_things_only_where_names_mean_something() {
        use pb::AclResource::*;
        assert!(check_rules(&[rule(Service, "web", false), rule(Service, "", true)]).is_ok());
        assert!(
            check_rules(&[rule(Config, "proxy/web", false), rule(Operator, "", false)]).is_ok()
        );
        let e = check_rules(&[rule(Operator, "x", false)]).unwrap_err();
        assert_eq!(e.field, "rules[0].name");
        let e = check_rules(&[rule(Service, "", false)]).unwrap_err();
        assert!(e.rule.contains("needs a name"), "{e}");
        let e = check_rules(&[rule(Service, "Web", false)]).unwrap_err();
        assert_eq!(e.field, "rules[0].name");
        let e = check_rules(&[pb::AclRule::default()]).unwrap_err();
        assert_eq!(e.field, "rules[0].resource");
    }

    #[test]
    fn tokens_need_known_shaped_policies_and_a_sane_ttl() {
        assert!(check_token_policies(&[]).is_err());
        assert!(check_token_policies(&["a".into(), "a".into()]).is_err());
        assert!(check_token_policies(&[GLOBAL_MANAGEMENT.into()]).is_ok());
        assert!(check_token_ttl(0).is_ok());
        assert!(check_token_ttl(999).is_err());
        assert!(check_accessor_id(&"a".repeat(32)).is_ok());
        assert!(check_accessor_id("A").is_err());
        let builtin = pb::PutPolicyRequest {
            name: GLOBAL_MANAGEMENT.into(),
            ..Default::default()
        };
        assert!(check_put_policy(&builtin).is_err());
    }
}
