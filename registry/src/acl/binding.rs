//! Binding rules at login: which rules of an auth method a verified JWT's claims
//! match (`waymark_proto::selector` parses the selector; this evaluates it over the
//! claims), and the policies the matching rules grant. Pure.

use serde_json::{Map, Value};
use waymark_proto::selector::{Op, Selector};

use crate::model::AclBindingRule;

/// Whether a claim value equals `want`: a string equal to it, or a number or boolean
/// whose JSON text is it (`admin=true`, `level=3`).
fn equals(v: &Value, want: &str) -> bool {
    match v {
        Value::String(s) => s == want,
        Value::Number(n) => n.to_string() == want,
        Value::Bool(b) => (if *b { "true" } else { "false" }) == want,
        _ => false,
    }
}

/// Whether every term of `selector` holds for `claims`.
pub fn matches(selector: &Selector, claims: &Map<String, Value>) -> bool {
    selector.terms.iter().all(|t| {
        let claim = claims.get(&t.claim);
        match t.op {
            Op::Equals => claim.is_some_and(|v| equals(v, &t.value)),
            Op::NotEquals => !claim.is_some_and(|v| equals(v, &t.value)),
            Op::Contains => claim
                .and_then(Value::as_array)
                .is_some_and(|a| a.iter().any(|v| equals(v, &t.value))),
        }
    })
}

/// The policies `rules` grant to `claims`: those of every matching rule, each once,
/// in rule order. A rule whose selector does not parse (validation refuses those
/// before they are written) matches nothing.
pub fn bound_policies<'a>(
    rules: impl IntoIterator<Item = &'a AclBindingRule>,
    claims: &Map<String, Value>,
) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for rule in rules {
        let Ok(selector) = Selector::parse(&rule.selector) else {
            tracing::warn!(rule = %rule.id, "binding rule with an unparsable selector skipped");
            continue;
        };
        if matches(&selector, claims) {
            for p in &rule.policies {
                if !out.contains(p) {
                    out.push(p.clone());
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn claims(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    fn is(selector: &str, c: &Map<String, Value>) -> bool {
        matches(&Selector::parse(selector).unwrap(), c)
    }

    #[test]
    fn selectors_over_claims() {
        let c = claims(json!({
            "sub": "ci-7", "service": "web", "groups": ["ops", "dev", 3],
            "admin": false, "level": 3, "nested": {"a": "b"}
        }));
        assert!(is("", &c));
        assert!(is("service=web", &c));
        assert!(!is("service=api", &c));
        assert!(!is("missing=web", &c));
        assert!(is("missing!=web", &c));
        assert!(is("service != api and groups contains ops", &c));
        assert!(!is("service=web and groups contains qa", &c));
        assert!(is("groups contains 3 and level=3 and admin=false", &c));
        // contains is for arrays; = is for scalars.
        assert!(!is("service contains web", &c));
        assert!(!is("groups=ops", &c));
        assert!(!is("nested=b", &c));
    }

    fn rule(id: &str, selector: &str, policies: &[&str]) -> AclBindingRule {
        AclBindingRule {
            id: id.into(),
            description: String::new(),
            method: "ci".into(),
            selector: selector.into(),
            policies: policies.iter().map(|p| p.to_string()).collect(),
            create_index: 1,
        }
    }

    #[test]
    fn matching_rules_grant_their_policies_once() {
        let rules = [
            rule("1", "service=web", &["web-writer", "reader"]),
            rule("2", "groups contains ops", &["reader", "ops"]),
            rule("3", "service=api", &["api-writer"]),
            rule("4", "service=", &["broken"]),
        ];
        let c = claims(json!({"service": "web", "groups": ["ops"]}));
        assert_eq!(bound_policies(&rules, &c), ["web-writer", "reader", "ops"]);
        let c = claims(json!({"service": "db"}));
        assert!(bound_policies(&rules, &c).is_empty());
    }
}
