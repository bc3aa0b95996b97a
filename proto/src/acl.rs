//! Validation of ACL requests: policy names and rules, token descriptions, policy
//! lists and TTLs, auth methods, binding rules (their selectors: `selector.rs`) and
//! logins. The registry runs the same checks on commands entering its log (and, for
//! an auth method's keys, parses them with its JWT library on top).

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
/// The one auth method type.
pub const AUTH_METHOD_JWT: &str = "jwt";
/// Longest issuer or audience, in bytes.
pub const MAX_ISSUER_LEN: usize = 512;
/// Most audiences on one auth method.
pub const MAX_AUDIENCES: usize = 16;
/// Longest JWKS document, in bytes.
pub const MAX_JWKS_LEN: usize = 64 * 1024;
/// Most PEM public keys on one auth method.
pub const MAX_PUBLIC_KEYS: usize = 16;
/// Longest PEM public key, in bytes.
pub const MAX_PUBLIC_KEY_LEN: usize = 16 * 1024;
/// Longest `jwks_url`, in bytes.
pub const MAX_JWKS_URL_LEN: usize = 2048;
/// Longest `jwks_ca_cert` (PEM), in bytes.
pub const MAX_JWKS_CA_CERT_LEN: usize = 64 * 1024;
/// A login token's life when the method does not say.
pub const DEFAULT_MAX_TOKEN_TTL_MS: u64 = 3_600_000;
/// Longest `max_token_ttl_ms` (logins are for short-lived tokens).
pub const MAX_MAX_TOKEN_TTL_MS: u64 = 86_400_000;
/// Clock skew allowed on `exp` and `nbf` when the method does not say.
pub const DEFAULT_CLOCK_SKEW_MS: u64 = 10_000;
/// Most clock skew a method may allow.
pub const MAX_CLOCK_SKEW_MS: u64 = 300_000;
/// Longest JWT a login may present, in bytes.
pub const MAX_JWT_LEN: usize = 16 * 1024;

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
    check_hex_id("accessor_id", id)
}

/// A binding rule id named in a request: 32 lowercase hex digits.
pub fn check_binding_rule_id(id: &str) -> Result<(), ValidationError> {
    check_hex_id("id", id)
}

fn check_hex_id(field: &str, id: &str) -> Result<(), ValidationError> {
    if id.len() == 32
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Ok(());
    }
    Err(ValidationError::new(
        field,
        format!("must be 32 lowercase hex digits (got {id:?})"),
    ))
}

/// An auth method name: a DNS label.
pub fn check_auth_method_name(field: &str, name: &str) -> Result<(), ValidationError> {
    check_dns_label(field, name)
}

fn check_text(field: &str, value: &str, max: usize) -> Result<(), ValidationError> {
    if value.trim().is_empty() {
        return Err(ValidationError::new(field, "must not be empty"));
    }
    if value.len() > max {
        return Err(ValidationError::new(
            field,
            format!("must be at most {max} bytes (got {})", value.len()),
        ));
    }
    Ok(())
}

/// An auth method write: name, type "jwt", issuer, audiences, at least one key,
/// and bounded TTL and skew (0 = the defaults). The keys' shape only: the registry
/// also parses them before proposing.
pub fn check_put_auth_method(req: &pb::PutAuthMethodRequest) -> Result<(), ValidationError> {
    let Some(m) = &req.method else {
        return Err(ValidationError::new("method", "is required"));
    };
    check_auth_method_name("method.name", &m.name)?;
    if m.r#type != AUTH_METHOD_JWT {
        return Err(ValidationError::new(
            "method.type",
            format!("must be \"jwt\" (got {:?})", m.r#type),
        ));
    }
    check_description(&m.description)
        .map_err(|e| ValidationError::new("method.description", e.rule))?;
    check_text("method.issuer", &m.issuer, MAX_ISSUER_LEN)?;
    if m.audiences.is_empty() || m.audiences.len() > MAX_AUDIENCES {
        return Err(ValidationError::new(
            "method.audiences",
            format!(
                "1 to {MAX_AUDIENCES} audiences (got {}): a JWT must be meant for Waymark",
                m.audiences.len()
            ),
        ));
    }
    for (i, aud) in m.audiences.iter().enumerate() {
        let field = format!("method.audiences[{i}]");
        check_text(&field, aud, MAX_ISSUER_LEN)?;
        if m.audiences[..i].contains(aud) {
            return Err(ValidationError::new(
                field,
                format!("duplicate audience {aud:?}"),
            ));
        }
    }
    if m.jwks.len() > MAX_JWKS_LEN {
        return Err(ValidationError::new(
            "method.jwks",
            format!(
                "must be at most {MAX_JWKS_LEN} bytes (got {})",
                m.jwks.len()
            ),
        ));
    }
    if m.public_keys.len() > MAX_PUBLIC_KEYS {
        return Err(ValidationError::new(
            "method.public_keys",
            format!("at most {MAX_PUBLIC_KEYS} (got {})", m.public_keys.len()),
        ));
    }
    for (i, key) in m.public_keys.iter().enumerate() {
        check_text(&format!("method.public_keys[{i}]"), key, MAX_PUBLIC_KEY_LEN)?;
    }
    check_jwks_url(&m.jwks_url)?;
    check_jwks_ca_cert(&m.jwks_url, &m.jwks_ca_cert)?;
    if m.jwks.trim().is_empty() && m.public_keys.is_empty() && m.jwks_url.is_empty() {
        return Err(ValidationError::new(
            "method.jwks",
            "a JWT method needs keys: a JWKS document, at least one PEM public key, or a jwks_url",
        ));
    }
    let ttl = m.max_token_ttl_ms;
    if ttl != 0 && !(MIN_TOKEN_TTL_MS..=MAX_MAX_TOKEN_TTL_MS).contains(&ttl) {
        return Err(ValidationError::new(
            "method.max_token_ttl_ms",
            format!(
                "must be 0 (the default, {DEFAULT_MAX_TOKEN_TTL_MS}) or {MIN_TOKEN_TTL_MS}-{MAX_MAX_TOKEN_TTL_MS} (got {ttl})"
            ),
        ));
    }
    if m.clock_skew_ms > MAX_CLOCK_SKEW_MS {
        return Err(ValidationError::new(
            "method.clock_skew_ms",
            format!(
                "must be at most {MAX_CLOCK_SKEW_MS} (got {})",
                m.clock_skew_ms
            ),
        ));
    }
    Ok(())
}

/// A `jwks_url` (empty: none): `http://` or `https://`, a host, an optional numeric
/// port, no credentials (the URL is replicated and shown to `acl read` callers), no
/// spaces. The registry parses it again with its HTTP library before proposing.
pub fn check_jwks_url(url: &str) -> Result<(), ValidationError> {
    if url.is_empty() {
        return Ok(());
    }
    let bad = |rule: String| Err(ValidationError::new("method.jwks_url", rule));
    if url.len() > MAX_JWKS_URL_LEN {
        return bad(format!(
            "must be at most {MAX_JWKS_URL_LEN} bytes (got {})",
            url.len()
        ));
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return bad("must not contain spaces or control characters".into());
    }
    let lower = url.to_ascii_lowercase();
    let Some(rest) = ["https://", "http://"]
        .iter()
        .find(|p| lower.starts_with(**p))
        .map(|p| &url[p.len()..])
    else {
        return bad(format!(
            "must be an http:// or https:// URL (got {:?})",
            url.chars().take(64).collect::<String>()
        ));
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.contains('@') {
        return bad("must not carry credentials (user@host): the URL is replicated and readable by acl readers".into());
    }
    let (host, port) = match authority.rsplit_once(':') {
        // An IPv6 literal's colons are inside brackets.
        Some((h, p)) if !p.contains(']') => (h, Some(p)),
        _ => (authority, None),
    };
    if host.is_empty() || host == "[]" {
        return bad("has no host".into());
    }
    if let Some(p) = port {
        if !matches!(p.parse::<u16>(), Ok(1..)) {
            return bad(format!("port must be 1-65535 (got {p:?})"));
        }
    }
    if url.contains('#') {
        return bad("must not have a #fragment".into());
    }
    Ok(())
}

/// A `jwks_ca_cert`: only with an https `jwks_url`, PEM certificate(s) of sane size.
/// The registry parses the certificates before proposing.
pub fn check_jwks_ca_cert(url: &str, ca: &str) -> Result<(), ValidationError> {
    if ca.is_empty() {
        return Ok(());
    }
    let bad = |rule: String| Err(ValidationError::new("method.jwks_ca_cert", rule));
    if !url.to_ascii_lowercase().starts_with("https://") {
        return bad("is only used with an https:// jwks_url".into());
    }
    if ca.len() > MAX_JWKS_CA_CERT_LEN {
        return bad(format!(
            "must be at most {MAX_JWKS_CA_CERT_LEN} bytes (got {})",
            ca.len()
        ));
    }
    if !ca.contains("-----BEGIN CERTIFICATE-----") {
        return bad("must be PEM: one or more -----BEGIN CERTIFICATE----- blocks".into());
    }
    Ok(())
}

/// A binding rule: its method, a selector that parses, the policies it grants.
pub fn check_create_binding_rule(
    req: &pb::CreateBindingRuleRequest,
) -> Result<(), ValidationError> {
    check_auth_method_name("method", &req.method)?;
    crate::selector::Selector::parse(&req.selector)
        .map_err(|rule| ValidationError::new("selector", rule))?;
    check_token_policies(&req.policies)?;
    check_description(&req.description)
}

/// A login: a method name and a JWT of sane size (its content is the verifier's).
pub fn check_login(req: &pb::LoginRequest) -> Result<(), ValidationError> {
    check_auth_method_name("method", &req.method)?;
    if req.jwt.is_empty() {
        return Err(ValidationError::new("jwt", "must not be empty"));
    }
    if req.jwt.len() > MAX_JWT_LEN {
        return Err(ValidationError::new(
            "jwt",
            format!(
                "must be at most {MAX_JWT_LEN} bytes (got {})",
                req.jwt.len()
            ),
        ));
    }
    Ok(())
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

    fn method() -> pb::AclAuthMethod {
        pb::AclAuthMethod {
            name: "ci".into(),
            r#type: "jwt".into(),
            issuer: "https://ci.example".into(),
            audiences: vec!["waymark".into()],
            jwks: r#"{"keys":[]}"#.into(),
            ..Default::default()
        }
    }

    fn put(m: pb::AclAuthMethod) -> Result<(), ValidationError> {
        check_put_auth_method(&pb::PutAuthMethodRequest { method: Some(m) })
    }

    #[test]
    fn auth_methods_name_the_field_they_break() {
        assert_eq!(put(method()), Ok(()));
        for (field, change) in [
            (
                "method.name",
                Box::new(|m: &mut pb::AclAuthMethod| m.name = "CI".into())
                    as Box<dyn Fn(&mut pb::AclAuthMethod)>,
            ),
            (
                "method.type",
                Box::new(|m: &mut pb::AclAuthMethod| m.r#type = "oidc".into()),
            ),
            (
                "method.issuer",
                Box::new(|m: &mut pb::AclAuthMethod| m.issuer.clear()),
            ),
            (
                "method.audiences",
                Box::new(|m: &mut pb::AclAuthMethod| m.audiences.clear()),
            ),
            (
                "method.audiences[1]",
                Box::new(|m: &mut pb::AclAuthMethod| m.audiences.push("waymark".into())),
            ),
            (
                "method.jwks",
                Box::new(|m: &mut pb::AclAuthMethod| m.jwks.clear()),
            ),
            (
                "method.max_token_ttl_ms",
                Box::new(|m: &mut pb::AclAuthMethod| m.max_token_ttl_ms = 10),
            ),
            (
                "method.clock_skew_ms",
                Box::new(|m: &mut pb::AclAuthMethod| m.clock_skew_ms = MAX_CLOCK_SKEW_MS + 1),
            ),
        ] {
            let mut m = method();
            change(&mut m);
            assert_eq!(put(m).unwrap_err().field, field);
        }
        let e = check_put_auth_method(&pb::PutAuthMethodRequest { method: None }).unwrap_err();
        assert_eq!(e.field, "method");
    }

    #[test]
    fn a_jwks_url_is_an_http_url_and_may_stand_alone() {
        let with_url = |url: &str, ca: &str| {
            let mut m = method();
            m.jwks.clear();
            m.jwks_url = url.into();
            m.jwks_ca_cert = ca.into();
            put(m)
        };
        for good in [
            "https://idp.example/.well-known/jwks.json",
            "http://127.0.0.1:8080/keys?x=1",
            "HTTPS://idp.example:8443",
            "http://[::1]:9000/jwks",
        ] {
            assert_eq!(with_url(good, ""), Ok(()), "{good}");
        }
        for (bad, says) in [
            ("ftp://idp.example/jwks", "http:// or https://"),
            ("idp.example/jwks", "http:// or https://"),
            ("https:///jwks", "no host"),
            ("https://user:pw@idp.example/jwks", "credentials"),
            ("https://idp.example:0/jwks", "port"),
            ("https://idp.example:99999/jwks", "port"),
            ("https://idp.example/ jwks", "spaces"),
            ("https://idp.example/jwks#frag", "fragment"),
        ] {
            let e = with_url(bad, "").unwrap_err();
            assert_eq!(e.field, "method.jwks_url", "{bad}");
            assert!(e.rule.contains(says), "{bad}: {e}");
        }
        let long = format!("https://idp.example/{}", "a".repeat(MAX_JWKS_URL_LEN));
        assert_eq!(with_url(&long, "").unwrap_err().field, "method.jwks_url");
        let pem = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        assert_eq!(with_url("https://idp.example/jwks", pem), Ok(()));
        for (url, ca) in [
            ("http://idp.example/jwks", pem),
            ("https://idp.example/jwks", "not a pem"),
        ] {
            assert_eq!(
                with_url(url, ca).unwrap_err().field,
                "method.jwks_ca_cert",
                "{url} {ca}"
            );
        }
        // No key source at all names jwks and says what would do.
        let e = with_url("", "").unwrap_err();
        assert_eq!(e.field, "method.jwks");
        assert!(e.rule.contains("jwks_url"), "{e}");
    }

    #[test]
    fn binding_rules_and_logins() {
        let rule = pb::CreateBindingRuleRequest {
            method: "ci".into(),
            selector: "service=web".into(),
            policies: vec!["web".into()],
            description: String::new(),
        };
        assert_eq!(check_create_binding_rule(&rule), Ok(()));
        let bad = pb::CreateBindingRuleRequest {
            selector: "service =".into(),
            ..rule.clone()
        };
        assert_eq!(
            check_create_binding_rule(&bad).unwrap_err().field,
            "selector"
        );
        let bad = pb::CreateBindingRuleRequest {
            policies: vec![],
            ..rule
        };
        assert_eq!(
            check_create_binding_rule(&bad).unwrap_err().field,
            "policies"
        );
        assert!(check_binding_rule_id(&"0".repeat(32)).is_ok());
        assert_eq!(check_binding_rule_id("x").unwrap_err().field, "id");
        let login = pb::LoginRequest {
            method: "ci".into(),
            jwt: String::new(),
        };
        assert_eq!(check_login(&login).unwrap_err().field, "jwt");
    }
}
