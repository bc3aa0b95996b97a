//! Deliberately unsafe server behaviours, for the Jepsen harness's positive controls
//! only: each breaks one guarantee on purpose, so that a harness run against it must
//! report the violation (a checker that passes a broken server proves nothing).
//!
//! Nothing here is ever on by default. `--unsafe-control NAME` (config key
//! `unsafe_control`) is hidden from `--help` and refused at startup unless the
//! environment sets `WAYMARK_ALLOW_UNSAFE_CONTROLS=1`, so a stray config line cannot
//! turn a production node into a broken one. Each control is one small branch at the
//! place it breaks, marked `UNSAFE CONTROL`, that reads `Node::unsafe_control`.

use std::ffi::OsStr;

use serde::{Deserialize, Serialize};

use crate::catalog::Catalog;
use crate::model::{
    Command, CommandResult, Deregistered, HealthOutcome, InstanceRecord, RegisterOutcome,
};

/// The variable that must be `1` for a node to start with an unsafe control.
pub const ALLOW_ENV: &str = "WAYMARK_ALLOW_UNSAFE_CONTROLS";

/// One deliberately unsafe behaviour (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum UnsafeControl {
    /// CONSISTENT reads skip ReadIndex and answer from the local replica at once
    /// (still labelled CONSISTENT): a partitioned follower or a deposed leader serves
    /// stale data as linearizable.
    StaleReads,
    /// The leader acknowledges Register, Deregister and UpdateHealth as soon as they
    /// are handed to Raft, with a response made up as if they had applied: a leader
    /// cut off from its peers acknowledges writes that never commit.
    EarlyAck,
    /// A watch resumed with `from_index > 0` inside the history window silently drops
    /// the first change after `from_index`: a gap in the stream.
    WatchSkip,
    /// The node claims it has just heard from a leader (`last_contact_ms` 0), so stale
    /// reads are never refused for their bound: a cut-off node serves data of any age
    /// as fresh.
    StaleBound,
    /// DNS's staleness guard never trips: a cut-off node keeps answering DNS with data
    /// of any age instead of SERVFAIL.
    DnsGuardOff,
    /// A new leader does not extend the leases it inherits: it ends every one at once,
    /// although its predecessor may have renewed them a moment ago (an early expiry on
    /// every leader change).
    LeaseEarly,
    /// Node 1's replica silently applies every eighth registration with its port off by
    /// one: the same log, a different state, and nothing said.
    ReplicaDiverge,
}

impl UnsafeControl {
    /// The name used on the command line and in the config file.
    pub fn name(self) -> &'static str {
        match self {
            UnsafeControl::StaleReads => "stale-reads",
            UnsafeControl::EarlyAck => "early-ack",
            UnsafeControl::WatchSkip => "watch-skip",
            UnsafeControl::StaleBound => "stale-bound",
            UnsafeControl::DnsGuardOff => "dns-guard-off",
            UnsafeControl::LeaseEarly => "lease-early",
            UnsafeControl::ReplicaDiverge => "replica-diverge",
        }
    }

    /// The guarantee this control breaks, for the startup warning.
    pub fn breaks(self) -> &'static str {
        match self {
            UnsafeControl::StaleReads => {
                "CONSISTENT reads are served from the local replica without ReadIndex"
            }
            UnsafeControl::EarlyAck => "writes are acknowledged before they commit and may be lost",
            UnsafeControl::WatchSkip => "resumed watches skip the first change after from_index",
            UnsafeControl::StaleBound => {
                "stale reads ignore their staleness bound and under-report leader contact"
            }
            UnsafeControl::DnsGuardOff => "DNS answers however long the node has been cut off",
            UnsafeControl::LeaseEarly => {
                "a new leader ends every inherited lease at once instead of extending it"
            }
            UnsafeControl::ReplicaDiverge => {
                "node 1 applies some registrations differently from its peers"
            }
        }
    }
}

/// Refuses an unsafe control unless `allow` (the value of [`ALLOW_ENV`]) is `1`.
pub fn check_allowed(control: Option<UnsafeControl>, allow: Option<&OsStr>) -> anyhow::Result<()> {
    match control {
        Some(c) if allow != Some(OsStr::new("1")) => anyhow::bail!(
            "invalid unsafe_control: {:?} deliberately breaks the registry's guarantees ({}) \
             and exists only for the Jepsen harness's positive controls; set {ALLOW_ENV}=1 to \
             start with it anyway",
            c.name(),
            c.breaks()
        ),
        _ => Ok(()),
    }
}

/// The node whose replica `replica-diverge` corrupts.
pub const DIVERGING_NODE: u64 = 1;

/// `replica-diverge`: the command node [`DIVERGING_NODE`] applies instead of `cmd` at
/// `index`, if it differs: every registration at an index divisible by 8, its port
/// off by one. Deterministic, so the node diverges the same way after a restart.
pub fn diverged(cmd: &Command, index: u64) -> Option<Command> {
    match cmd {
        Command::Register(new) if index.is_multiple_of(8) => {
            let mut new = new.clone();
            new.port = new.port % 65_535 + 1;
            Some(Command::Register(new))
        }
        _ => None,
    }
}

/// `early-ack`: the result `cmd` would have had, made up without applying it, for
/// client writes (`None` for other commands: they take the normal path). `index` is
/// the guessed index the entry will get.
pub fn early_ack_result(cmd: &Command, catalog: &Catalog, index: u64) -> Option<CommandResult> {
    match cmd {
        Command::Register(new) => {
            let create_index = catalog
                .get(&new.service, &new.id)
                .map_or(index, |old| old.create_index);
            Some(CommandResult::Register(RegisterOutcome::Registered(
                new.record(create_index, index),
            )))
        }
        Command::Deregister { .. } => {
            Some(CommandResult::Deregister(Deregistered { removed: true }))
        }
        Command::UpdateHealth {
            service,
            id,
            health,
            output,
        } => Some(CommandResult::UpdateHealth(
            match catalog.get(service, id) {
                None => HealthOutcome::InstanceNotFound,
                Some(r) => HealthOutcome::Updated(InstanceRecord {
                    health: *health,
                    health_output: output.clone(),
                    modify_index: index,
                    ..r.clone()
                }),
            },
        )),
        Command::CreateLease { .. }
        | Command::EndLease { .. }
        | Command::ReapCritical { .. }
        | Command::Config(_)
        | Command::Acl(_)
        | Command::Ca(_)
        | Command::Intention(_)
        | Command::Batch(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use clap::ValueEnum;

    use super::*;
    use crate::model::{Health, NewInstance};

    #[test]
    fn names_round_trip_through_clap_and_serde() {
        for c in UnsafeControl::value_variants() {
            assert_eq!(
                UnsafeControl::from_str(c.name(), false).as_ref(),
                Ok(c),
                "{c:?}"
            );
            let toml_value: UnsafeControl =
                serde_json::from_str(&format!("{:?}", c.name())).unwrap();
            assert_eq!(toml_value, *c);
        }
    }

    #[test]
    fn refused_unless_the_environment_allows_it() {
        let err = check_allowed(Some(UnsafeControl::EarlyAck), None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("\"early-ack\""), "{err}");
        assert!(err.contains("WAYMARK_ALLOW_UNSAFE_CONTROLS=1"), "{err}");
        assert!(check_allowed(Some(UnsafeControl::EarlyAck), Some(OsStr::new("0"))).is_err());
        assert!(check_allowed(Some(UnsafeControl::EarlyAck), Some(OsStr::new("1"))).is_ok());
        assert!(check_allowed(None, None).is_ok());
    }

    #[test]
    fn replica_diverge_changes_only_every_eighth_registration() {
        let new = NewInstance::example("web", "a", 80);
        assert_eq!(diverged(&Command::Register(new.clone()), 7), None);
        let Some(Command::Register(changed)) = diverged(&Command::Register(new), 16) else {
            panic!("index 16 must be corrupted");
        };
        assert_eq!(changed.port, 81);
        let top = NewInstance::example("web", "b", 65_535);
        let Some(Command::Register(wrapped)) = diverged(&Command::Register(top), 8) else {
            panic!("index 8 must be corrupted");
        };
        assert_eq!(wrapped.port, 1, "still a valid port");
        assert_eq!(diverged(&Command::CreateLease { ttl_ms: 5000 }, 8), None);
    }

    #[test]
    fn early_ack_makes_up_the_applied_result() {
        let new = NewInstance::example("web", "a", 80);
        let mut catalog = Catalog::default();
        let Some(CommandResult::Register(RegisterOutcome::Registered(r))) =
            early_ack_result(&Command::Register(new.clone()), &catalog, 5)
        else {
            panic!("register should be acknowledged early");
        };
        assert_eq!((r.create_index, r.modify_index), (5, 5));
        catalog.apply(5, &Command::Register(new.clone()));
        let Some(CommandResult::Register(RegisterOutcome::Registered(r))) =
            early_ack_result(&Command::Register(new), &catalog, 9)
        else {
            panic!("re-register should be acknowledged early");
        };
        assert_eq!((r.create_index, r.modify_index), (5, 9));
        let health = Command::UpdateHealth {
            service: "web".into(),
            id: "a".into(),
            health: Health::Critical,
            output: "down".into(),
        };
        let Some(CommandResult::UpdateHealth(HealthOutcome::Updated(r))) =
            early_ack_result(&health, &catalog, 10)
        else {
            panic!("health update should be acknowledged early");
        };
        assert_eq!((r.health, r.modify_index), (Health::Critical, 10));
        let del = Command::Deregister {
            service: "web".into(),
            id: "a".into(),
        };
        assert_eq!(
            early_ack_result(&del, &catalog, 11),
            Some(CommandResult::Deregister(Deregistered { removed: true }))
        );
        assert_eq!(
            early_ack_result(&Command::CreateLease { ttl_ms: 5000 }, &catalog, 12),
            None
        );
    }
}
