//! Which rule decides a request: the most specific matching rule of the token's
//! policies (an exact name beats any prefix, a longer prefix beats a shorter one),
//! deny beating allow at equal specificity, write implying read; no matching rule
//! leaves the decision to the cluster's default policy.

use crate::model::{key_in_prefix, AclAccess, AclResource, AclRule};

/// What a request needs: a resource (with its name for services and config keys) and
/// the access.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Need {
    pub resource: AclResource,
    pub name: String,
    /// Read or Write (never Deny).
    pub access: AclAccess,
}

impl Need {
    pub fn new(resource: AclResource, name: impl Into<String>, access: AclAccess) -> Self {
        Self {
            resource,
            name: name.into(),
            access,
        }
    }

    pub fn service(name: &str, access: AclAccess) -> Self {
        Self::new(AclResource::Service, name, access)
    }

    pub fn config(key: &str, access: AclAccess) -> Self {
        Self::new(AclResource::Config, key, access)
    }

    /// One of the resources that name nothing (node, operator, acl, intention).
    pub fn global(resource: AclResource, access: AclAccess) -> Self {
        Self::new(resource, "", access)
    }
}

impl std::fmt::Display for Need {
    /// The rule that would allow it, as policies write it: `service "web" write`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.resource.is_named() {
            write!(
                f,
                "{} {:?} {}",
                self.resource.name(),
                self.name,
                self.access.name()
            )
        } else {
            write!(f, "{} {}", self.resource.name(), self.access.name())
        }
    }
}

/// How specific a matching rule is; larger wins.
fn specificity(rule: &AclRule, need: &Need) -> Option<usize> {
    if rule.resource != need.resource {
        return None;
    }
    if !need.resource.is_named() {
        return Some(0);
    }
    if !rule.prefix {
        // Exact beats every prefix, however long.
        return (rule.name == need.name).then_some(usize::MAX);
    }
    let matches = match need.resource {
        // Config keys are matched by whole segments, as config prefixes are read.
        AclResource::Config => key_in_prefix(&need.name, &rule.name),
        _ => need.name.starts_with(&rule.name),
    };
    matches.then_some(rule.name.len())
}

/// The access the most specific matching rules grant, `None` if no rule matches.
pub fn decide<'a>(rules: impl IntoIterator<Item = &'a AclRule>, need: &Need) -> Option<AclAccess> {
    let mut best: Option<(usize, AclAccess)> = None;
    for rule in rules {
        let Some(s) = specificity(rule, need) else {
            continue;
        };
        best = match best {
            Some((bs, _)) if bs > s => best,
            Some((bs, ba)) if bs == s => Some((s, stronger(ba, rule.access))),
            _ => Some((s, rule.access)),
        };
    }
    best.map(|(_, access)| access)
}

/// At equal specificity: deny, then write, then read.
fn stronger(a: AclAccess, b: AclAccess) -> AclAccess {
    use AclAccess::*;
    match (a, b) {
        (Deny, _) | (_, Deny) => Deny,
        (Write, _) | (_, Write) => Write,
        _ => Read,
    }
}

/// Whether `granted` covers `wanted` (write implies read).
pub fn covers(granted: AclAccess, wanted: AclAccess) -> bool {
    match granted {
        AclAccess::Deny => false,
        AclAccess::Write => true,
        AclAccess::Read => wanted == AclAccess::Read,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use AclAccess::{Deny, Read, Write};

    fn rule(resource: AclResource, name: &str, prefix: bool, access: AclAccess) -> AclRule {
        AclRule {
            resource,
            name: name.into(),
            prefix,
            access,
        }
    }

    fn svc(name: &str, prefix: bool, access: AclAccess) -> AclRule {
        rule(AclResource::Service, name, prefix, access)
    }

    #[test]
    fn exact_beats_any_prefix_and_longer_prefix_beats_shorter() {
        let rules = [
            svc("", true, Write),
            svc("we", true, Deny),
            svc("web", false, Read),
        ];
        assert_eq!(decide(&rules, &Need::service("web", Read)), Some(Read));
        assert_eq!(decide(&rules, &Need::service("west", Read)), Some(Deny));
        assert_eq!(decide(&rules, &Need::service("api", Read)), Some(Write));
    }

    #[test]
    fn deny_beats_allow_at_equal_specificity_and_write_implies_read() {
        let rules = [svc("web", false, Write), svc("web", false, Deny)];
        assert_eq!(decide(&rules, &Need::service("web", Read)), Some(Deny));
        let rules = [svc("web", false, Read), svc("web", false, Write)];
        let got = decide(&rules, &Need::service("web", Read)).unwrap();
        assert!(covers(got, Read) && covers(got, Write));
        assert!(!covers(Read, Write));
        assert!(!covers(Deny, Read));
    }

    #[test]
    fn no_matching_rule_decides_nothing() {
        let rules = [
            svc("web", false, Write),
            rule(AclResource::Config, "", true, Write),
        ];
        assert_eq!(decide(&rules, &Need::service("api", Write)), None);
        assert_eq!(
            decide(&rules, &Need::global(AclResource::Operator, Read)),
            None
        );
    }

    #[test]
    fn config_prefixes_match_whole_segments() {
        let rules = [rule(AclResource::Config, "proxy", true, Read)];
        assert_eq!(decide(&rules, &Need::config("proxy/web", Read)), Some(Read));
        assert_eq!(decide(&rules, &Need::config("proxy", Read)), Some(Read));
        assert_eq!(decide(&rules, &Need::config("proxyx", Read)), None);
    }

    #[test]
    fn needs_name_the_rule_that_would_allow_them() {
        assert_eq!(
            Need::service("web", Write).to_string(),
            "service \"web\" write"
        );
        assert_eq!(
            Need::global(AclResource::Operator, Write).to_string(),
            "operator write"
        );
    }
}
