//! Intentions: which service may call which. Validation of their fields, and the one
//! precedence rule the registry's `Check` and every inbound proxy decide by.

use crate::pb;
use crate::validate::{check_dns_label, ValidationError};

/// Any service, as a source or a destination.
pub const WILDCARD: &str = "*";

/// Longest description, in bytes.
pub const MAX_DESCRIPTION_LEN: usize = 512;

/// An intention's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    Allow,
    Deny,
}

impl Action {
    pub fn name(self) -> &'static str {
        match self {
            Action::Allow => "allow",
            Action::Deny => "deny",
        }
    }

    /// From its wire value; `field` names it in the error.
    pub fn from_wire(field: &str, value: i32) -> Result<Self, ValidationError> {
        match pb::IntentionAction::try_from(value) {
            Ok(pb::IntentionAction::Allow) => Ok(Action::Allow),
            Ok(pb::IntentionAction::Deny) => Ok(Action::Deny),
            _ => Err(ValidationError::new(
                field,
                format!("must be ALLOW or DENY (got {value})"),
            )),
        }
    }

    pub fn to_wire(self) -> pb::IntentionAction {
        match self {
            Action::Allow => pb::IntentionAction::Allow,
            Action::Deny => pb::IntentionAction::Deny,
        }
    }
}

impl std::str::FromStr for Action {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "allow" => Ok(Action::Allow),
            "deny" => Ok(Action::Deny),
            other => Err(format!("must be allow or deny (got {other:?})")),
        }
    }
}

/// A service name as an intention's source or destination: a DNS label, or `*`.
pub fn check_intention_service(field: &str, name: &str) -> Result<(), ValidationError> {
    if name == WILDCARD {
        return Ok(());
    }
    check_dns_label(field, name)
}

/// Checks a `PutIntentionRequest`, returning its action.
pub fn check_put_intention(req: &pb::PutIntentionRequest) -> Result<Action, ValidationError> {
    check_intention_service("source", &req.source)?;
    check_intention_service("destination", &req.destination)?;
    if req.description.len() > MAX_DESCRIPTION_LEN {
        return Err(ValidationError::new(
            "description",
            format!(
                "must be at most {MAX_DESCRIPTION_LEN} bytes (got {})",
                req.description.len()
            ),
        ));
    }
    Action::from_wire("action", req.action)
}

/// How specific a rule is for a request it matches: both names exact (3) beats one
/// exact (2) beats `* -> *` (1). An exact source with a wildcard destination and the
/// reverse are equally specific, so deny decides between them.
fn precedence(source: &str, destination: &str) -> u8 {
    1 + u8::from(source != WILDCARD) + u8::from(destination != WILDCARD)
}

/// The rule that decides `source -> destination`: among the rules that match, the
/// most specific; at equal specificity a deny. `None`: no rule matches (the default
/// applies). `rules` yields (source, destination, action).
pub fn decide<'a, T>(
    rules: impl IntoIterator<Item = (&'a str, &'a str, Action, T)>,
    source: &str,
    destination: &str,
) -> Option<(Action, T)> {
    let mut best: Option<(u8, Action, T)> = None;
    for (s, d, action, tag) in rules {
        let matches = (s == WILDCARD || s == source) && (d == WILDCARD || d == destination);
        if !matches {
            continue;
        }
        let p = precedence(s, d);
        let better = match &best {
            None => true,
            Some((bp, ba, _)) => {
                p > *bp || (p == *bp && action == Action::Deny && *ba != Action::Deny)
            }
        };
        if better {
            best = Some((p, action, tag));
        }
    }
    best.map(|(_, action, tag)| (action, tag))
}

#[cfg(test)]
mod tests {
    use super::*;
    use Action::*;

    fn verdict(rules: &[(&'static str, &'static str, Action)], s: &str, d: &str) -> Option<Action> {
        decide(rules.iter().map(|&(a, b, c)| (a, b, c, ())), s, d).map(|(a, _)| a)
    }

    #[test]
    fn exact_beats_wildcard_and_deny_wins_ties() {
        let rules = [("*", "*", Deny), ("web", "api", Allow)];
        assert_eq!(verdict(&rules, "web", "api"), Some(Allow));
        assert_eq!(verdict(&rules, "db", "api"), Some(Deny));

        let rules = [("web", "*", Allow), ("*", "api", Deny)];
        assert_eq!(verdict(&rules, "web", "api"), Some(Deny), "tie: deny wins");
        assert_eq!(verdict(&rules, "web", "db"), Some(Allow));
        assert_eq!(
            verdict(&rules, "ops", "db"),
            None,
            "nothing matches: the default"
        );

        let rules = [("*", "api", Allow), ("web", "api", Deny)];
        assert_eq!(verdict(&rules, "web", "api"), Some(Deny));
        assert_eq!(verdict(&rules, "ops", "api"), Some(Allow));
    }

    #[test]
    fn names_are_labels_or_the_wildcard() {
        assert!(check_intention_service("source", "*").is_ok());
        assert!(check_intention_service("source", "web-1").is_ok());
        assert_eq!(
            check_intention_service("source", "Web").unwrap_err().field,
            "source"
        );
        let req = pb::PutIntentionRequest {
            source: "web".into(),
            destination: "api".into(),
            action: 0,
            description: String::new(),
        };
        assert_eq!(check_put_intention(&req).unwrap_err().field, "action");
        let long = pb::PutIntentionRequest {
            action: pb::IntentionAction::Deny as i32,
            description: "x".repeat(MAX_DESCRIPTION_LEN + 1),
            ..req
        };
        assert_eq!(check_put_intention(&long).unwrap_err().field, "description");
    }
}
