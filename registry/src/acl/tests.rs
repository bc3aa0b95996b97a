//! Resolving callers against a catalog: ACLs off, anonymous under each default
//! policy, unknown and expired tokens, management, policy rules, and bootstrap once.

use super::*;
use crate::model::{
    AclCommand, AclResource, Command, CommandResult, NewToken, TokenOrigin, TokenOutcome,
};

fn enabled(default_policy: DefaultPolicy) -> AclConfig {
    AclConfig {
        enabled: true,
        default_policy,
        dns_token: None,
        ..AclConfig::default()
    }
}

fn new_token(accessor: &str, secret: &str, policies: &[&str], expires: Option<u64>) -> NewToken {
    NewToken {
        accessor_id: accessor.into(),
        secret_hash: secret::hash_secret(secret),
        description: String::new(),
        policies: policies.iter().map(|p| p.to_string()).collect(),
        expires_at_unix_ms: expires,
        origin: TokenOrigin::Create,
    }
}

fn web_writer() -> Command {
    Command::Acl(AclCommand::PutPolicy {
        name: "web-writer".into(),
        description: String::new(),
        rules: vec![AclRule {
            resource: AclResource::Service,
            name: "web".into(),
            prefix: false,
            access: AclAccess::Write,
        }],
    })
}

fn known(r: Result<Resolved, AclError>) -> Authorizer {
    match r {
        Ok(Resolved::Known(a)) => a,
        other => panic!("expected a known caller, got {other:?}"),
    }
}

#[test]
fn acls_off_allow_everything_and_anonymous_follows_the_default() {
    let c = Catalog::default();
    let off = known(resolve(&AclConfig::default(), &c, None, 0));
    assert!(off.allows(&Need::global(AclResource::Operator, AclAccess::Write)));

    let anon = known(resolve(&enabled(DefaultPolicy::Allow), &c, None, 0));
    assert!(anon.allows(&Need::service("api", AclAccess::Write)));

    let anon = known(resolve(&enabled(DefaultPolicy::Deny), &c, None, 0));
    let refused = anon.require(Need::service("api", AclAccess::Read));
    assert!(
        matches!(refused, Err(AclError::Unauthenticated(m)) if m.contains("service \"api\" read"))
    );
}

#[test]
fn a_token_gets_its_policies_rules_and_nothing_else_under_deny() {
    let mut c = Catalog::default();
    c.apply(1, &web_writer());
    c.apply(
        2,
        &Command::Acl(AclCommand::CreateToken(new_token(
            "a1",
            "s1",
            &["web-writer"],
            None,
        ))),
    );
    let cfg = enabled(DefaultPolicy::Deny);
    let a = known(resolve(&cfg, &c, Some("s1"), 0));
    assert_eq!(a.accessor.as_deref(), Some("a1"));
    assert!(a.require(Need::service("web", AclAccess::Write)).is_ok());
    assert!(a.may_read_service("web"));
    assert_eq!(
        a.require(Need::service("api", AclAccess::Write)),
        Err(AclError::Denied {
            accessor: "a1".into(),
            need: Need::service("api", AclAccess::Write)
        })
    );
    // Under default allow the uncovered call passes.
    let a = known(resolve(&enabled(DefaultPolicy::Allow), &c, Some("s1"), 0));
    assert!(a.allows(&Need::service("api", AclAccess::Write)));
}

#[test]
fn unknown_expired_and_deleted_tokens_are_refused() {
    let mut c = Catalog::default();
    let cfg = enabled(DefaultPolicy::Deny);
    assert_eq!(resolve(&cfg, &c, Some("nope"), 0), Ok(Resolved::Unknown));
    c.apply(
        1,
        &Command::Acl(AclCommand::CreateToken(new_token(
            "a1",
            "s1",
            &[GLOBAL_MANAGEMENT],
            Some(1_000),
        ))),
    );
    let a = known(resolve(&cfg, &c, Some("s1"), 999));
    assert!(a.allows(&Need::global(AclResource::Acl, AclAccess::Write)));
    assert!(matches!(
        resolve(&cfg, &c, Some("s1"), 1_000),
        Err(AclError::Unauthenticated(m)) if m.contains("expired")
    ));
    assert_eq!(c.expired_tokens(1_000).collect::<Vec<_>>(), ["a1"]);
    assert_eq!(c.expired_tokens(999).count(), 0);
    c.apply(
        2,
        &Command::Acl(AclCommand::DeleteToken {
            accessor_id: "a1".into(),
            reason: "expired".into(),
        }),
    );
    assert_eq!(resolve(&cfg, &c, Some("s1"), 0), Ok(Resolved::Unknown));
    assert_eq!(c.expired_tokens(u64::MAX).count(), 0);
}

#[test]
fn bootstrap_happens_once_even_after_its_token_is_deleted() {
    let mut c = Catalog::default();
    let boot = |a: &str, s: &str| {
        let mut t = new_token(a, s, &[GLOBAL_MANAGEMENT], None);
        t.origin = TokenOrigin::Bootstrap;
        Command::Acl(AclCommand::Bootstrap(t))
    };
    let first = c.apply(1, &boot("a1", "s1"));
    assert!(matches!(
        first.result,
        CommandResult::AclToken(TokenOutcome::Created(_))
    ));
    c.apply(
        2,
        &Command::Acl(AclCommand::DeleteToken {
            accessor_id: "a1".into(),
            reason: "deleted".into(),
        }),
    );
    let again = c.apply(3, &boot("a2", "s2"));
    assert_eq!(
        again.result,
        CommandResult::AclToken(TokenOutcome::AlreadyBootstrapped(1))
    );
    assert!(again.changes.is_empty());
    assert_eq!(c.acl_bootstrapped_at(), Some(1));
}

#[test]
fn a_token_naming_a_missing_policy_or_a_taken_id_is_not_created() {
    let mut c = Catalog::default();
    let r = c.apply(
        1,
        &Command::Acl(AclCommand::CreateToken(new_token(
            "a1",
            "s1",
            &["nope"],
            None,
        ))),
    );
    assert_eq!(
        r.result,
        CommandResult::AclToken(TokenOutcome::UnknownPolicy("nope".into()))
    );
    c.apply(
        2,
        &Command::Acl(AclCommand::CreateToken(new_token("a1", "s1", &[], None))),
    );
    let r = c.apply(
        3,
        &Command::Acl(AclCommand::CreateToken(new_token("a1", "s9", &[], None))),
    );
    assert_eq!(r.result, CommandResult::AclToken(TokenOutcome::Duplicate));
    // Rebuilt from its tables, the catalog finds tokens by secret as before.
    let rebuilt = Catalog::from_tables(c.tables().clone(), c.applied_index());
    assert_eq!(rebuilt, c);
    assert!(rebuilt
        .token_by_secret_hash(&secret::hash_secret("s1"))
        .is_some());
}
