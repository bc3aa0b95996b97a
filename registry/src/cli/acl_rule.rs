//! The text form of an ACL rule for `--rule` and for showing policies:
//! `KIND[:NAME]:ACCESS`, e.g. `service:web:write`, `service-prefix::read` (every
//! service), `config-prefix:proxy/web:read`, `operator:write`.

use waymark_proto::pb;

/// What `--rule` accepts, for error messages and help.
pub const RULE_SYNTAX: &str = "KIND[:NAME]:ACCESS with KIND one of service, service-prefix, \
     config, config-prefix (these take a NAME; a prefix may be empty), intention, node, \
     operator, acl, and ACCESS one of read, write, deny";

/// Parses one `--rule`. Whether the name is a valid service name or key is the
/// server's check; this one only reads the shape.
pub fn parse_rule(text: &str) -> Result<pb::AclRule, String> {
    let bad = |why: &str| format!("{why} in rule {text:?}: expected {RULE_SYNTAX}");
    let (kind, rest) = text.split_once(':').ok_or_else(|| bad("no ':'"))?;
    let (name, access) = match rest.rsplit_once(':') {
        Some((name, access)) => (Some(name), access),
        None => (None, rest),
    };
    let access = match access {
        "read" => pb::AclAccess::Read,
        "write" => pb::AclAccess::Write,
        "deny" => pb::AclAccess::Deny,
        other => return Err(bad(&format!("unknown access {other:?}"))),
    };
    let (resource, prefix) = match kind {
        "service" => (pb::AclResource::Service, false),
        "service-prefix" => (pb::AclResource::Service, true),
        "config" => (pb::AclResource::Config, false),
        "config-prefix" => (pb::AclResource::Config, true),
        "intention" => (pb::AclResource::Intention, false),
        "node" => (pb::AclResource::Node, false),
        "operator" => (pb::AclResource::Operator, false),
        "acl" => (pb::AclResource::Acl, false),
        other => return Err(bad(&format!("unknown kind {other:?}"))),
    };
    let named = matches!(resource, pb::AclResource::Service | pb::AclResource::Config);
    let name = match (named, name) {
        (true, None) => return Err(bad(&format!("{kind} needs a NAME"))),
        (true, Some("")) if !prefix => {
            return Err(bad(&format!(
                "{kind} needs a non-empty NAME (use {kind}-prefix::ACCESS for all)"
            )))
        }
        (true, Some(name)) => name.to_string(),
        (false, Some(_)) => return Err(bad(&format!("{kind} takes no NAME"))),
        (false, None) => String::new(),
    };
    Ok(pb::AclRule {
        resource: resource as i32,
        name,
        prefix,
        access: access as i32,
    })
}

/// The rule as `parse_rule` reads it; unknown enum values shown as numbers.
pub fn rule_text(rule: &pb::AclRule) -> String {
    let kind = match pb::AclResource::try_from(rule.resource) {
        Ok(pb::AclResource::Service) => "service",
        Ok(pb::AclResource::Config) => "config",
        Ok(pb::AclResource::Intention) => "intention",
        Ok(pb::AclResource::Node) => "node",
        Ok(pb::AclResource::Operator) => "operator",
        Ok(pb::AclResource::Acl) => "acl",
        Ok(pb::AclResource::Unspecified) | Err(_) => {
            return format!("unknown({}):{}", rule.resource, rule.name)
        }
    };
    let access = access_name(rule.access);
    match (rule.prefix, rule.name.is_empty()) {
        (true, _) => format!("{kind}-prefix:{}:{access}", rule.name),
        (false, false) => format!("{kind}:{}:{access}", rule.name),
        (false, true) => format!("{kind}:{access}"),
    }
}

fn access_name(raw: i32) -> String {
    match pb::AclAccess::try_from(raw) {
        Ok(pb::AclAccess::Read) => "read".into(),
        Ok(pb::AclAccess::Write) => "write".into(),
        Ok(pb::AclAccess::Deny) => "deny".into(),
        Ok(pb::AclAccess::Unspecified) | Err(_) => format!("unknown({raw})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_round_trips() {
        for text in [
            "service:web:write",
            "service-prefix::read",
            "service-prefix:web-:deny",
            "config:proxy/web/timeouts:read",
            "config-prefix:proxy:write",
            "intention:read",
            "node:read",
            "operator:write",
            "acl:write",
        ] {
            let rule = parse_rule(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(rule_text(&rule), text);
        }
        let rule = parse_rule("service-prefix::read").unwrap();
        assert_eq!(rule.resource, pb::AclResource::Service as i32);
        assert!(rule.prefix);
        assert_eq!(rule.name, "");
        assert_eq!(rule.access, pb::AclAccess::Read as i32);
    }

    #[test]
    fn bad_rules_say_what_is_wrong() {
        for (text, says) in [
            ("service", "no ':'"),
            ("service:web:admin", "unknown access \"admin\""),
            ("services:web:read", "unknown kind \"services\""),
            ("service:read", "service needs a NAME"),
            ("service::read", "non-empty NAME"),
            ("operator:x:write", "operator takes no NAME"),
        ] {
            let err = parse_rule(text).unwrap_err();
            assert!(err.contains(says), "{text}: {err}");
            assert!(err.contains("KIND[:NAME]:ACCESS"), "{text}: {err}");
        }
    }
}
