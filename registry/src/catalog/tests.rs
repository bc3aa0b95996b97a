//! Unit tests of the catalog: every command's effects, compare-and-set, leases,
//! config entries, the reapable index, the digest, and the table list.

use std::collections::BTreeSet;

use super::*;
use crate::model::*;

fn reg(service: &str, id: &str, port: u16) -> Command {
    Command::Register(NewInstance::example(service, id, port))
}

fn reg_cas(id: &str, port: u16, expected: u64) -> Command {
    let Command::Register(mut new) = reg("web", id, port) else {
        unreachable!()
    };
    new.if_modify_index = Some(expected);
    Command::Register(new)
}

fn reg_leased(id: &str, lease: u64, action: LeaseExpiry) -> Command {
    let Command::Register(mut new) = reg("web", id, 80) else {
        unreachable!()
    };
    new.lease_id = Some(lease);
    new.on_lease_expiry = action;
    Command::Register(new)
}

fn health(id: &str, health: Health) -> Command {
    Command::UpdateHealth {
        service: "web".into(),
        id: id.into(),
        health,
        output: String::new(),
    }
}

#[test]
fn register_sets_indexes_and_update_keeps_create_index() {
    let mut c = Catalog::default();
    c.apply(3, &reg("web", "a", 80));
    c.apply(7, &reg("web", "a", 81));
    let r = c.get("web", "a").unwrap();
    assert_eq!((r.create_index, r.modify_index, r.port), (3, 7, 81));
    assert_eq!(c.applied_index(), 7);
}

#[test]
fn deregister_is_idempotent_and_drops_empty_services() {
    let mut c = Catalog::default();
    c.apply(1, &reg("web", "a", 80));
    let del = Command::Deregister {
        service: "web".into(),
        id: "a".into(),
    };
    let e = c.apply(2, &del);
    assert_eq!(
        e.result,
        CommandResult::Deregister(Deregistered { removed: true })
    );
    assert_eq!(e.changes.len(), 1);
    let e = c.apply(3, &del);
    assert_eq!(
        e.result,
        CommandResult::Deregister(Deregistered { removed: false })
    );
    assert!(e.changes.is_empty());
    assert!(c.services().is_empty());
    assert_eq!(c.applied_index(), 3);
}

#[test]
fn same_commands_same_digest_and_rebuild_from_records_matches() {
    let cmds = [
        reg("web", "a", 80),
        reg("db", "x", 5432),
        reg("web", "b", 81),
    ];
    let mut a = Catalog::default();
    let mut b = Catalog::default();
    for (i, cmd) in cmds.iter().enumerate() {
        a.apply(i as u64 + 1, cmd);
        b.apply(i as u64 + 1, cmd);
    }
    assert_eq!(a.digest(), b.digest());
    let rebuilt = Catalog::from_tables(a.tables().clone(), a.applied_index());
    assert_eq!(rebuilt, a);
    assert_eq!(rebuilt.digest(), a.digest());
    b.apply(4, &reg("web", "b", 82));
    assert_ne!(a.digest(), b.digest());
}

#[test]
fn services_summarise_tags_and_counts() {
    let mut c = Catalog::default();
    c.apply(1, &reg("web", "a", 80));
    c.apply(2, &reg("web", "b", 80));
    let s = c.services();
    assert_eq!(s.len(), 1);
    assert_eq!(s[0].instance_count, 2);
    assert_eq!(s[0].tags, vec!["v1"]);
    assert_eq!(c.instances("web").len(), 2);
    assert!(c.instances("nope").is_empty());
}

#[test]
fn lease_end_removes_or_marks_critical_at_one_index() {
    let mut c = Catalog::default();
    let e = c.apply(1, &Command::CreateLease { ttl_ms: 5000 });
    assert!(matches!(
        e.result,
        CommandResult::CreateLease(LeaseRecord { id: 1, .. })
    ));
    c.apply(2, &reg_leased("a", 1, LeaseExpiry::Remove));
    c.apply(3, &reg_leased("b", 1, LeaseExpiry::MarkCritical));
    c.apply(4, &reg("web", "c", 80));
    let e = c.apply(
        5,
        &Command::EndLease {
            lease_id: 1,
            reason: "expired".into(),
        },
    );
    assert_eq!(
        e.result,
        CommandResult::EndLease(LeaseEnded { existed: true })
    );
    // Two instance changes and the lease's removal.
    assert_eq!(e.changes.len(), 3);
    assert!(c.get("web", "a").is_none());
    let b = c.get("web", "b").unwrap();
    assert_eq!(
        (b.health, b.modify_index, b.lease_id),
        (Health::Critical, 5, None)
    );
    assert!(c.get("web", "c").unwrap().is_passing());
    assert!(c.lease(1).is_none());
    // Registering under a lease that is gone is a deterministic refusal.
    let e = c.apply(6, &reg_leased("d", 1, LeaseExpiry::Remove));
    assert_eq!(
        e.result,
        CommandResult::Register(RegisterOutcome::LeaseNotFound(1))
    );
    assert!(e.changes.is_empty());
}

#[test]
fn reap_only_if_still_critical_and_unchanged() {
    let mut c = Catalog::default();
    c.apply(1, &reg("web", "a", 80));
    let crit = Command::UpdateHealth {
        service: "web".into(),
        id: "a".into(),
        health: Health::Critical,
        output: "down".into(),
    };
    c.apply(2, &crit);
    let reap_stale = Command::ReapCritical {
        service: "web".into(),
        id: "a".into(),
        if_modify_index: 1,
    };
    assert_eq!(
        c.apply(3, &reap_stale).result,
        CommandResult::ReapCritical(Reaped { removed: false })
    );
    let reap = Command::ReapCritical {
        service: "web".into(),
        id: "a".into(),
        if_modify_index: 2,
    };
    assert_eq!(
        c.apply(4, &reap).result,
        CommandResult::ReapCritical(Reaped { removed: true })
    );
    assert_eq!(
        c.apply(5, &crit).result,
        CommandResult::UpdateHealth(HealthOutcome::InstanceNotFound)
    );
}

#[test]
fn cas_commits_only_on_a_matching_modify_index() {
    let mut c = Catalog::default();
    c.apply(3, &reg("web", "a", 80));
    let e = c.apply(5, &reg_cas("a", 81, 3));
    assert!(
        matches!(
            e.result,
            CommandResult::Register(RegisterOutcome::Registered(_))
        ),
        "{e:?}"
    );
    assert_eq!(e.changes.len(), 1);
    let r = c.get("web", "a").unwrap();
    assert_eq!((r.create_index, r.modify_index, r.port), (3, 5, 81));
}

#[test]
fn cas_mismatch_changes_nothing_and_reports_both_indexes() {
    let mut c = Catalog::default();
    c.apply(3, &reg("web", "a", 80));
    let before = c.get("web", "a").unwrap().clone();
    let e = c.apply(4, &reg_cas("a", 99, 2));
    assert_eq!(
        e.result,
        CommandResult::Register(RegisterOutcome::PreconditionFailed(CasMismatch {
            current: Some(3),
            expected: 2
        }))
    );
    assert!(e.changes.is_empty());
    assert_eq!(c.get("web", "a"), Some(&before));
    // The entry still counts as applied.
    assert_eq!(c.applied_index(), 4);
    // A non-zero expectation on an absent instance fails too.
    let e = c.apply(5, &reg_cas("b", 80, 3));
    assert_eq!(
        e.result,
        CommandResult::Register(RegisterOutcome::PreconditionFailed(CasMismatch {
            current: None,
            expected: 3
        }))
    );
    assert!(c.get("web", "b").is_none());
}

#[test]
fn cas_zero_means_only_if_absent() {
    let mut c = Catalog::default();
    let e = c.apply(1, &reg_cas("a", 80, 0));
    assert!(
        matches!(
            e.result,
            CommandResult::Register(RegisterOutcome::Registered(_))
        ),
        "{e:?}"
    );
    let r = c.get("web", "a").unwrap();
    assert_eq!((r.create_index, r.modify_index), (1, 1));
    let e = c.apply(2, &reg_cas("a", 81, 0));
    assert_eq!(
        e.result,
        CommandResult::Register(RegisterOutcome::PreconditionFailed(CasMismatch {
            current: Some(1),
            expected: 0
        }))
    );
    assert_eq!(c.get("web", "a").unwrap().port, 80);
}

#[test]
fn new_instance_without_the_cas_field_still_decodes() {
    // A log entry written before `if_modify_index` existed.
    let old = r#"{"service":"web","id":"a","address":"10.0.0.1","port":80,"tags":[],
        "meta":{},"weight_passing":1,"weight_warning":1,"lease_id":null,
        "on_lease_expiry":"Remove","deregister_critical_after_ms":0}"#;
    let new: NewInstance = serde_json::from_str(old).unwrap();
    assert_eq!(new.if_modify_index, None);
    assert_eq!(new.initial_health, None);
    assert_eq!(new.record(1, 1).health, Health::Passing);
}

#[test]
fn registration_starts_with_its_initial_health_and_reregistering_resets_it() {
    let mut c = Catalog::default();
    let Command::Register(mut new) = reg("web", "a", 80) else {
        unreachable!()
    };
    new.initial_health = Some(Health::Critical);
    c.apply(1, &Command::Register(new.clone()));
    assert_eq!(c.get("web", "a").unwrap().health, Health::Critical);
    c.apply(2, &health("a", Health::Passing));
    assert_eq!(c.get("web", "a").unwrap().health, Health::Passing);
    c.apply(3, &Command::Register(new));
    assert_eq!(c.get("web", "a").unwrap().health, Health::Critical);
    // A registration that says nothing starts passing, as before the field existed.
    c.apply(4, &reg("web", "a", 80));
    assert_eq!(c.get("web", "a").unwrap().health, Health::Passing);
}

fn put(key: &str, value: &str, cas: Option<u64>) -> Command {
    Command::Config(ConfigCommand::Put {
        key: key.into(),
        value: value.as_bytes().to_vec(),
        if_modify_index: cas,
    })
}

fn delete(key: &str, cas: Option<u64>) -> Command {
    Command::Config(ConfigCommand::Delete {
        key: key.into(),
        if_modify_index: cas,
    })
}

#[test]
fn config_put_keeps_create_index_and_cas_guards_put_and_delete() {
    let mut c = Catalog::default();
    c.apply(2, &put("proxy/web", "a", Some(0)));
    c.apply(5, &put("proxy/web", "b", Some(2)));
    let e = c.config_entry("proxy/web").unwrap();
    assert_eq!(
        (e.create_index, e.modify_index, &e.value[..]),
        (2, 5, &b"b"[..])
    );
    let refused = c.apply(6, &put("proxy/web", "c", Some(2)));
    assert_eq!(
        refused.result,
        CommandResult::ConfigPut(ConfigPutOutcome::PreconditionFailed(CasMismatch {
            current: Some(5),
            expected: 2
        }))
    );
    assert!(refused.changes.is_empty());
    let refused = c.apply(7, &delete("proxy/web", Some(4)));
    assert!(matches!(
        refused.result,
        CommandResult::ConfigDelete(ConfigDeleteOutcome::PreconditionFailed(_))
    ));
    assert!(c.config_entry("proxy/web").is_some());
    let e = c.apply(8, &delete("proxy/web", Some(5)));
    assert_eq!(
        e.result,
        CommandResult::ConfigDelete(ConfigDeleteOutcome::Deleted { removed: true })
    );
    assert_eq!(
        e.changes,
        vec![Change::Config(RecordChange::Delete("proxy/web".into()))]
    );
    let again = c.apply(9, &delete("proxy/web", None));
    assert_eq!(
        again.result,
        CommandResult::ConfigDelete(ConfigDeleteOutcome::Deleted { removed: false })
    );
}

#[test]
fn config_prefix_matches_whole_segments() {
    let mut c = Catalog::default();
    for (i, k) in ["a", "a/b", "a/b/c", "ab", "b"].iter().enumerate() {
        c.apply(i as u64 + 1, &put(k, "v", None));
    }
    let keys = |p: &str| -> Vec<String> { c.config_entries(p).map(|e| e.key.clone()).collect() };
    assert_eq!(keys("a"), ["a", "a/b", "a/b/c"]);
    assert_eq!(keys("a/b"), ["a/b", "a/b/c"]);
    assert_eq!(keys(""), ["a", "a/b", "a/b/c", "ab", "b"]);
    assert!(keys("c").is_empty());
}

#[test]
fn reapable_index_follows_health_and_removal() {
    let mut c = Catalog::default();
    let Command::Register(mut new) = reg("web", "a", 80) else {
        unreachable!()
    };
    new.deregister_critical_after_ms = 5_000;
    c.apply(1, &Command::Register(new.clone()));
    c.apply(2, &reg("web", "b", 80));
    assert_eq!(c.reapable().count(), 0);
    c.apply(3, &health("a", Health::Critical));
    // b has no deregister_critical_after: critical, but never reaped.
    c.apply(4, &health("b", Health::Critical));
    let ids: Vec<_> = c.reapable().map(|r| r.id.clone()).collect();
    assert_eq!(ids, ["a"]);
    // Rebuilt from stored tables, the index is the same.
    assert_eq!(Catalog::from_tables(c.tables().clone(), 4), c);
    c.apply(5, &health("a", Health::Passing));
    assert_eq!(c.reapable().count(), 0);
    c.apply(6, &health("a", Health::Critical));
    c.apply(
        7,
        &Command::Deregister {
            service: "web".into(),
            id: "a".into(),
        },
    );
    assert_eq!(c.reapable().count(), 0);
}

fn token(accessor: &str, hash: &str, policy: &str) -> NewToken {
    NewToken {
        accessor_id: accessor.into(),
        secret_hash: hash.into(),
        description: String::new(),
        policies: vec![policy.into()],
        expires_at_unix_ms: Some(10),
        origin: TokenOrigin::Create,
    }
}

fn auth_method(name: &str) -> AuthMethodSpec {
    AuthMethodSpec {
        name: name.into(),
        description: String::new(),
        config: AuthMethodConfig::Jwt(JwtMethod {
            issuer: "https://ci.example".into(),
            audiences: vec!["waymark".into()],
            jwks: r#"{"keys":[]}"#.into(),
            public_keys: vec![],
            jwks_url: String::new(),
            jwks_ca_cert: String::new(),
            max_token_ttl_ms: 60_000,
            clock_skew_ms: 0,
        }),
    }
}

fn binding_rule(id: &str, method: &str) -> NewBindingRule {
    NewBindingRule {
        id: id.into(),
        description: String::new(),
        method: method.into(),
        selector: "service=web".into(),
        policies: vec!["web-read".into()],
    }
}

#[test]
fn binding_rules_need_their_method_and_go_with_it() {
    let mut c = Catalog::default();
    let orphan = c.apply(
        1,
        &Command::Acl(AclCommand::CreateBindingRule(binding_rule("r0", "ci"))),
    );
    assert_eq!(
        orphan.result,
        CommandResult::AclBindingRule(BindingRuleOutcome::UnknownMethod("ci".into()))
    );
    assert!(orphan.changes.is_empty());
    c.apply(
        2,
        &Command::Acl(AclCommand::PutAuthMethod(auth_method("ci"))),
    );
    c.apply(
        3,
        &Command::Acl(AclCommand::PutAuthMethod(auth_method("other"))),
    );
    for (i, (id, method)) in [("r1", "ci"), ("r2", "ci"), ("r3", "other")]
        .iter()
        .enumerate()
    {
        let e = c.apply(
            4 + i as u64,
            &Command::Acl(AclCommand::CreateBindingRule(binding_rule(id, method))),
        );
        assert!(matches!(
            e.result,
            CommandResult::AclBindingRule(BindingRuleOutcome::Created(_))
        ));
    }
    // A rewrite keeps the create index.
    let again = c.apply(
        9,
        &Command::Acl(AclCommand::PutAuthMethod(auth_method("ci"))),
    );
    let CommandResult::AclAuthMethod(AuthMethodWritten(m)) = &again.result else {
        panic!("{again:?}")
    };
    assert_eq!((m.create_index, m.modify_index), (2, 9));
    let deleted = c.apply(
        10,
        &Command::Acl(AclCommand::DeleteAuthMethod { name: "ci".into() }),
    );
    assert_eq!(
        deleted.result,
        CommandResult::AclAuthMethodDelete(AuthMethodDeleted {
            removed: true,
            binding_rules_removed: 2,
        })
    );
    assert_eq!(deleted.changes.len(), 3);
    assert!(c.auth_method("ci").is_none());
    let left: Vec<_> = c.binding_rules().map(|r| r.id.as_str()).collect();
    assert_eq!(left, ["r3"]);
}

/// One command of every kind (the match makes adding a `Command` variant fail to
/// compile until it is covered here).
fn one_of_each_command() -> Vec<Command> {
    let all = vec![
        Command::CreateLease { ttl_ms: 5000 },
        reg_leased("a", 1, LeaseExpiry::MarkCritical),
        reg("web", "b", 80),
        Command::UpdateHealth {
            service: "web".into(),
            id: "b".into(),
            health: Health::Warning,
            output: "slow".into(),
        },
        put("proxy/web", "x", None),
        Command::ReapCritical {
            service: "web".into(),
            id: "b".into(),
            if_modify_index: 1,
        },
        Command::Deregister {
            service: "web".into(),
            id: "nope".into(),
        },
        Command::EndLease {
            lease_id: 99,
            reason: "revoked".into(),
        },
        delete("nope", None),
        Command::Batch(vec![reg("db", "c", 5432), put("proxy/db", "y", None)].into()),
        Command::Acl(AclCommand::PutPolicy {
            name: "web-read".into(),
            description: String::new(),
            rules: vec![AclRule {
                resource: AclResource::Service,
                name: "web".into(),
                prefix: false,
                access: AclAccess::Read,
            }],
        }),
        Command::Acl(AclCommand::Bootstrap(token(
            "a1",
            "h1",
            "global-management",
        ))),
        Command::Acl(AclCommand::CreateToken(token("a2", "h2", "web-read"))),
        Command::Acl(AclCommand::CreateToken(token("a3", "h3", "web-read"))),
        Command::Acl(AclCommand::DeleteToken {
            accessor_id: "a3".into(),
            reason: "deleted".into(),
        }),
        Command::Acl(AclCommand::DeletePolicy {
            name: "nope".into(),
        }),
        Command::Acl(AclCommand::PutAuthMethod(auth_method("ci"))),
        Command::Acl(AclCommand::CreateBindingRule(binding_rule("r1", "ci"))),
        Command::Acl(AclCommand::CreateBindingRule(binding_rule("r2", "ci"))),
        Command::Acl(AclCommand::DeleteBindingRule { id: "r2".into() }),
        Command::Acl(AclCommand::DeleteAuthMethod {
            name: "nope".into(),
        }),
        Command::Ca(CaCommand::Initialize(new_root("r1"))),
        Command::Ca(CaCommand::Rotate {
            root: new_root("r2"),
            if_active: "r1".into(),
        }),
        Command::Ca(CaCommand::Retire { id: "nope".into() }),
        intention_put("web", "api", IntentionAction::Allow),
        intention_put("*", "api", IntentionAction::Deny),
        Command::Intention(IntentionCommand::Delete {
            source: "*".into(),
            destination: "api".into(),
        }),
    ];
    for cmd in &all {
        match cmd {
            Command::Register(_)
            | Command::Deregister { .. }
            | Command::UpdateHealth { .. }
            | Command::CreateLease { .. }
            | Command::EndLease { .. }
            | Command::ReapCritical { .. }
            | Command::Config(_)
            | Command::Acl(_)
            | Command::Ca(_)
            | Command::Intention(_)
            | Command::Batch(_) => {}
        }
    }
    all
}

#[test]
fn a_batch_applies_its_commands_in_order_at_one_index_each_with_its_own_result() {
    let cmds = vec![
        reg("web", "a", 80),
        reg("web", "b", 81),
        put("proxy/web", "x", Some(0)),
        Command::Deregister {
            service: "web".into(),
            id: "gone".into(),
        },
    ];
    let mut one_by_one = Catalog::default();
    let mut expected_results = Vec::new();
    let mut expected_changes = Vec::new();
    for cmd in &cmds {
        let effects = one_by_one.apply(7, cmd);
        expected_results.push(effects.result);
        expected_changes.extend(effects.changes);
    }
    let mut batched = Catalog::default();
    let effects = batched.apply(7, &Command::Batch(cmds.into()));
    assert_eq!(effects.result, CommandResult::Batch(expected_results));
    assert_eq!(effects.changes, expected_changes);
    assert_eq!(batched, one_by_one);
    assert_eq!(batched.applied_index(), 7);
    assert_eq!(batched.get("web", "b").unwrap().modify_index, 7);
}

#[test]
fn every_kind_a_command_changes_is_in_the_table_list() {
    let mut c = Catalog::default();
    let mut kinds = BTreeSet::new();
    for (i, cmd) in one_of_each_command().iter().enumerate() {
        for change in c.apply(i as u64 + 1, cmd).changes {
            kinds.insert(change.kind());
        }
    }
    // Every kind holds data now, and each one is walked by the digest.
    for (kind, table) in c.tables().each() {
        assert!(
            !table.is_empty(),
            "no {} record in the fixture",
            kind.name()
        );
        assert!(kinds.contains(&kind), "no command changed {}", kind.name());
        let mut without = c.tables().clone();
        without
            .each_mut()
            .into_iter()
            .find(|(k, _)| *k == kind)
            .unwrap()
            .1
            .clear();
        assert_ne!(
            Catalog::from_tables(without, c.applied_index()).digest(),
            c.digest(),
            "the digest does not see {}",
            kind.name()
        );
    }
    assert_eq!(
        c.tables()
            .each()
            .iter()
            .map(|(k, _)| *k)
            .collect::<Vec<_>>(),
        Kind::ALL
    );
}

fn new_root(id: &str) -> NewRoot {
    NewRoot {
        id: id.into(),
        signing_cert_pem: format!("cert of {id}"),
        signing_key_pem: format!("key of {id}"),
        trust_anchor_pem: format!("cert of {id}"),
        chain_pem: Vec::new(),
        trust_domain: "c1.waymark".into(),
        not_after_ms: 1,
        imported: false,
    }
}

fn intention_put(source: &str, destination: &str, action: IntentionAction) -> Command {
    Command::Intention(IntentionCommand::Put {
        source: source.into(),
        destination: destination.into(),
        action,
        description: String::new(),
    })
}

#[test]
fn the_ca_has_one_active_root_and_rotations_are_conditional() {
    let mut c = Catalog::default();
    let first = c.apply(1, &Command::Ca(CaCommand::Initialize(new_root("r1"))));
    assert!(matches!(
        first.result,
        CommandResult::CaInit(CaInitOutcome::Initialized(_))
    ));
    // A second leader's proposal changes nothing.
    let again = c.apply(2, &Command::Ca(CaCommand::Initialize(new_root("rx"))));
    assert_eq!(
        again.result,
        CommandResult::CaInit(CaInitOutcome::AlreadyInitialized)
    );
    assert!(again.changes.is_empty());
    assert_eq!(c.active_root().unwrap().id, "r1");

    // A rotation made against a root that is no longer active is refused whole.
    let stale = c.apply(
        3,
        &Command::Ca(CaCommand::Rotate {
            root: new_root("r2"),
            if_active: "r0".into(),
        }),
    );
    assert_eq!(
        stale.result,
        CommandResult::CaRotate(CaRotateOutcome::ActiveChanged {
            active: Some("r1".into())
        })
    );
    let rotated = c.apply(
        4,
        &Command::Ca(CaCommand::Rotate {
            root: new_root("r2"),
            if_active: "r1".into(),
        }),
    );
    assert!(matches!(
        rotated.result,
        CommandResult::CaRotate(CaRotateOutcome::Rotated { ref previous_id, .. }) if previous_id == "r1"
    ));
    assert_eq!(
        rotated.changes.len(),
        2,
        "the old root demoted, the new one added"
    );
    let actives: Vec<_> = c
        .ca_roots()
        .filter(|r| r.active)
        .map(|r| r.id.clone())
        .collect();
    assert_eq!(actives, ["r2"]);
    assert_eq!(c.ca_roots().count(), 2, "the old root is still trusted");

    assert_eq!(
        c.apply(5, &Command::Ca(CaCommand::Retire { id: "r2".into() }))
            .result,
        CommandResult::CaRetire(CaRetireOutcome::IsActive)
    );
    assert_eq!(
        c.apply(6, &Command::Ca(CaCommand::Retire { id: "r1".into() }))
            .result,
        CommandResult::CaRetire(CaRetireOutcome::Retired { removed: true })
    );
    assert_eq!(c.ca_roots().count(), 1);
}

#[test]
fn intentions_are_kept_by_pair_and_listed_by_destination() {
    let mut c = Catalog::default();
    c.apply(1, &intention_put("web", "api", IntentionAction::Allow));
    c.apply(2, &intention_put("*", "*", IntentionAction::Deny));
    c.apply(3, &intention_put("web", "db", IntentionAction::Allow));
    let updated = c.apply(4, &intention_put("web", "api", IntentionAction::Deny));
    let CommandResult::IntentionPut(i) = updated.result else {
        panic!("{:?}", updated.result);
    };
    assert_eq!(
        (i.create_index, i.modify_index, i.action),
        (1, 4, IntentionAction::Deny)
    );
    let to_api: Vec<_> = c
        .intentions(Some("api"))
        .map(|i| format!("{}->{}", i.source, i.destination))
        .collect();
    assert_eq!(
        to_api,
        ["*->*", "web->api"],
        "a wildcard destination applies to api too"
    );
    assert_eq!(c.intentions(None).count(), 3);
    let gone = c.apply(
        5,
        &Command::Intention(IntentionCommand::Delete {
            source: "web".into(),
            destination: "api".into(),
        }),
    );
    assert_eq!(
        gone.result,
        CommandResult::IntentionDelete(IntentionDeleted { removed: true })
    );
    assert_eq!(c.intentions(Some("api")).count(), 1);
}
