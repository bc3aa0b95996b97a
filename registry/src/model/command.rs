//! The state machine's command language: what a log entry carries (`Command`), what
//! applying it returns (`CommandResult`), and the typed outcome of each operation.
//!
//! Log compatibility: `Command` is stored in the Raft log as externally tagged serde
//! (`codec`), so existing variants are never renamed or re-nested; a new record kind adds
//! one variant holding its own sub-enum (`Command::Config(ConfigCommand)`).
//! `CommandResult` is never stored (it travels only between nodes of one version, in
//! forwarded writes), so it may change freely.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::acl::{
    AclCommand, AclDeleted, AuthMethodDeleted, AuthMethodWritten, BindingRuleOutcome,
    PolicyWritten, TokenOutcome,
};
use super::config::{ConfigCommand, ConfigEntry};
use super::instance::{Health, InstanceRecord, NewInstance};
use super::lease::LeaseRecord;
use super::mesh::{
    CaCommand, CaInitOutcome, CaRetireOutcome, CaRotateOutcome, Intention, IntentionCommand,
    IntentionDeleted,
};

/// A state-machine command: the payload of a normal log entry. Commands are validated
/// before they are proposed; applying one is deterministic and never fails.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    Register(NewInstance),
    Deregister {
        service: String,
        id: String,
    },
    UpdateHealth {
        service: String,
        id: String,
        health: Health,
        output: String,
    },
    /// The new lease's id is this entry's log index.
    CreateLease {
        ttl_ms: u64,
    },
    /// Proposed by the leader when a lease expires, or by a client revoking it.
    EndLease {
        lease_id: u64,
        reason: String,
    },
    /// Proposed by the leader once an instance has been critical for its
    /// `deregister_critical_after`; a no-op if it changed since (`if_modify_index`).
    ReapCritical {
        service: String,
        id: String,
        if_modify_index: u64,
    },
    Config(ConfigCommand),
    /// Several concurrent client writes sharing one log entry (group commit, see
    /// `proposer.rs`). Applied in order, all at the entry's index; each has its own
    /// result in `CommandResult::Batch`. A batch never holds two commands with the
    /// same `Footprint` or an exclusive one, so per-record modify indexes stay unique.
    /// Shared (`Arc`): openraft clones an entry for each read of it (apply, and each
    /// follower's replication), and a batch is the big entry.
    Batch(Arc<[Command]>),
    /// Tokens, policies, auth methods and binding rules.
    Acl(AclCommand),
    /// The mesh's CA roots.
    Ca(CaCommand),
    /// Intentions.
    Intention(IntentionCommand),
}

/// What a command touches, for deciding which commands may share a log entry.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Footprint<'a> {
    /// One instance (`service`, `id`).
    Instance(&'a str, &'a str),
    /// One config entry.
    Config(&'a str),
    /// One ACL token (by accessor id).
    AclToken(&'a str),
    /// One ACL policy.
    AclPolicy(&'a str),
    /// One auth method.
    AclAuthMethod(&'a str),
    /// One binding rule (by id).
    AclBindingRule(&'a str),
    /// One intention (destination, source).
    Intention(&'a str, &'a str),
    /// Creating a lease: its id is the entry's index, so one per entry.
    NewLease,
    /// Touches records it cannot name in advance (ending a lease removes or changes
    /// every instance bound to it): it goes in an entry of its own.
    Exclusive,
}

/// How openraft shows a log entry's command in its logs: its name (a batch with its
/// size), never its contents.
impl std::fmt::Display for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Command::Batch(commands) => write!(f, "Batch({})", commands.len()),
            other => f.write_str(other.name()),
        }
    }
}

impl Command {
    /// The command's name, for logs and errors.
    pub fn name(&self) -> &'static str {
        match self {
            Command::Register(_) => "Register",
            Command::Deregister { .. } => "Deregister",
            Command::UpdateHealth { .. } => "UpdateHealth",
            Command::CreateLease { .. } => "CreateLease",
            Command::EndLease { .. } => "EndLease",
            Command::ReapCritical { .. } => "ReapCritical",
            Command::Config(ConfigCommand::Put { .. }) => "ConfigPut",
            Command::Config(ConfigCommand::Delete { .. }) => "ConfigDelete",
            Command::Batch(_) => "Batch",
            Command::Acl(AclCommand::Bootstrap(_)) => "AclBootstrap",
            Command::Acl(AclCommand::CreateToken(_)) => "AclCreateToken",
            Command::Acl(AclCommand::DeleteToken { .. }) => "AclDeleteToken",
            Command::Acl(AclCommand::PutPolicy { .. }) => "AclPutPolicy",
            Command::Acl(AclCommand::DeletePolicy { .. }) => "AclDeletePolicy",
            Command::Acl(AclCommand::PutAuthMethod(_)) => "AclPutAuthMethod",
            Command::Acl(AclCommand::DeleteAuthMethod { .. }) => "AclDeleteAuthMethod",
            Command::Acl(AclCommand::CreateBindingRule(_)) => "AclCreateBindingRule",
            Command::Acl(AclCommand::DeleteBindingRule { .. }) => "AclDeleteBindingRule",
            Command::Ca(CaCommand::Initialize(_)) => "CaInitialize",
            Command::Ca(CaCommand::Rotate { .. }) => "CaRotate",
            Command::Ca(CaCommand::Retire { .. }) => "CaRetire",
            Command::Intention(IntentionCommand::Put { .. }) => "IntentionPut",
            Command::Intention(IntentionCommand::Delete { .. }) => "IntentionDelete",
        }
    }

    /// What this command touches (see `Footprint`).
    pub fn footprint(&self) -> Footprint<'_> {
        match self {
            Command::Register(new) => Footprint::Instance(&new.service, &new.id),
            Command::Deregister { service, id }
            | Command::UpdateHealth { service, id, .. }
            | Command::ReapCritical { service, id, .. } => Footprint::Instance(service, id),
            Command::Config(ConfigCommand::Put { key, .. } | ConfigCommand::Delete { key, .. }) => {
                Footprint::Config(key)
            }
            Command::CreateLease { .. } => Footprint::NewLease,
            Command::Acl(AclCommand::CreateToken(t)) => Footprint::AclToken(&t.accessor_id),
            Command::Acl(AclCommand::DeleteToken { accessor_id, .. }) => {
                Footprint::AclToken(accessor_id)
            }
            Command::Acl(
                AclCommand::PutPolicy { name, .. } | AclCommand::DeletePolicy { name },
            ) => Footprint::AclPolicy(name),
            Command::Acl(AclCommand::PutAuthMethod(spec)) => Footprint::AclAuthMethod(&spec.name),
            Command::Acl(AclCommand::CreateBindingRule(r)) => Footprint::AclBindingRule(&r.id),
            Command::Acl(AclCommand::DeleteBindingRule { id }) => Footprint::AclBindingRule(id),
            Command::Intention(
                IntentionCommand::Put {
                    source,
                    destination,
                    ..
                }
                | IntentionCommand::Delete {
                    source,
                    destination,
                },
            ) => Footprint::Intention(destination, source),
            // Bootstrap writes the marker and a token; deleting a method deletes its
            // binding rules, which it cannot name in advance: alone, each needs no finer
            // footprint.
            // CA changes are rare and change which root is active: alone.
            Command::EndLease { .. }
            | Command::Batch(_)
            | Command::Ca(_)
            | Command::Acl(AclCommand::Bootstrap(_) | AclCommand::DeleteAuthMethod { .. }) => {
                Footprint::Exclusive
            }
        }
    }
}

/// A compare-and-set whose expectation did not hold; nothing changed. `current` is the
/// record's modify index (`None`: it does not exist).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CasMismatch {
    pub current: Option<u64>,
    pub expected: u64,
}

impl CasMismatch {
    /// Whether a record at `current` meets the expectation `expected` (0 = absent).
    pub fn check(current: Option<u64>, expected: Option<u64>) -> Result<(), CasMismatch> {
        let Some(expected) = expected else {
            return Ok(());
        };
        let holds = match current {
            None => expected == 0,
            Some(current) => expected != 0 && current == expected,
        };
        if holds {
            Ok(())
        } else {
            Err(CasMismatch { current, expected })
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RegisterOutcome {
    Registered(InstanceRecord),
    LeaseNotFound(u64),
    PreconditionFailed(CasMismatch),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deregistered {
    pub removed: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum HealthOutcome {
    Updated(InstanceRecord),
    InstanceNotFound,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseEnded {
    pub existed: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reaped {
    pub removed: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConfigPutOutcome {
    Written(ConfigEntry),
    PreconditionFailed(CasMismatch),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConfigDeleteOutcome {
    Deleted { removed: bool },
    PreconditionFailed(CasMismatch),
}

/// What applying one log entry produced: one variant per command, holding that
/// command's typed outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CommandResult {
    /// A blank or membership entry.
    None,
    Register(RegisterOutcome),
    Deregister(Deregistered),
    UpdateHealth(HealthOutcome),
    CreateLease(LeaseRecord),
    EndLease(LeaseEnded),
    ReapCritical(Reaped),
    ConfigPut(ConfigPutOutcome),
    ConfigDelete(ConfigDeleteOutcome),
    /// One result per command of a `Command::Batch`, in order.
    Batch(Vec<CommandResult>),
    AclToken(TokenOutcome),
    AclDelete(AclDeleted),
    AclPolicy(PolicyWritten),
    AclAuthMethod(AuthMethodWritten),
    AclAuthMethodDelete(AuthMethodDeleted),
    AclBindingRule(BindingRuleOutcome),
    CaInit(CaInitOutcome),
    CaRotate(CaRotateOutcome),
    CaRetire(CaRetireOutcome),
    IntentionPut(Intention),
    IntentionDelete(IntentionDeleted),
}

/// `TryFrom<CommandResult>` for each outcome type, so a proposer names the outcome it
/// expects and gets exactly that type (the mismatch, a bug, is handed back whole).
macro_rules! outcome_of {
    ($($variant:ident => $outcome:ty),+ $(,)?) => {$(
        impl TryFrom<CommandResult> for $outcome {
            type Error = CommandResult;
            fn try_from(r: CommandResult) -> Result<Self, CommandResult> {
                match r {
                    CommandResult::$variant(o) => Ok(o),
                    other => Err(other),
                }
            }
        }
    )+};
}

outcome_of! {
    Register => RegisterOutcome,
    Deregister => Deregistered,
    UpdateHealth => HealthOutcome,
    CreateLease => LeaseRecord,
    EndLease => LeaseEnded,
    ReapCritical => Reaped,
    ConfigPut => ConfigPutOutcome,
    ConfigDelete => ConfigDeleteOutcome,
    AclToken => TokenOutcome,
    AclDelete => AclDeleted,
    AclPolicy => PolicyWritten,
    AclAuthMethod => AuthMethodWritten,
    AclAuthMethodDelete => AuthMethodDeleted,
    AclBindingRule => BindingRuleOutcome,
    CaInit => CaInitOutcome,
    CaRotate => CaRotateOutcome,
    CaRetire => CaRetireOutcome,
    IntentionPut => Intention,
    IntentionDelete => IntentionDeleted,
}

#[cfg(test)]
mod tests {
    use super::super::codec;
    use super::*;

    #[test]
    fn existing_log_entries_still_decode() {
        // Entries as written before config entries existed (externally tagged JSON).
        let old = [
            r#"{"Deregister":{"service":"web","id":"a"}}"#,
            r#"{"CreateLease":{"ttl_ms":5000}}"#,
            r#"{"EndLease":{"lease_id":3,"reason":"expired"}}"#,
            r#"{"ReapCritical":{"service":"web","id":"a","if_modify_index":9}}"#,
            r#"{"UpdateHealth":{"service":"web","id":"a","health":"Critical","output":"x"}}"#,
            r#"{"Register":{"service":"web","id":"a","address":"10.0.0.1","port":80,"tags":[],
                "meta":{},"weight_passing":1,"weight_warning":1,"lease_id":null,
                "on_lease_expiry":"Remove","deregister_critical_after_ms":0}}"#,
        ];
        for entry in old {
            let cmd: Command = serde_json::from_str(entry).unwrap();
            // And they encode as before.
            let again: serde_json::Value = serde_json::to_value(&cmd).unwrap();
            let want: serde_json::Value = serde_json::from_str(entry).unwrap();
            assert_eq!(again, want, "{entry}");
            // And the log's binary encoding carries them unchanged.
            let stored = codec::to_vec(&cmd).unwrap();
            assert_eq!(codec::from_slice::<Command>(&stored).unwrap(), cmd);
        }
    }

    #[test]
    fn config_commands_nest_under_their_own_variant() {
        let cmd = Command::Config(ConfigCommand::Put {
            key: "proxy/web".into(),
            value: b"\x00\xffhi".to_vec(),
            if_modify_index: None,
        });
        let json = serde_json::to_string(&cmd).unwrap();
        assert!(json.starts_with(r#"{"Config":{"Put":"#), "{json}");
        assert_eq!(serde_json::from_str::<Command>(&json).unwrap(), cmd);
    }

    #[test]
    fn cas_zero_means_absent_and_n_means_that_index() {
        assert!(CasMismatch::check(None, None).is_ok());
        assert!(CasMismatch::check(Some(4), None).is_ok());
        assert!(CasMismatch::check(None, Some(0)).is_ok());
        assert!(CasMismatch::check(Some(4), Some(4)).is_ok());
        assert!(CasMismatch::check(Some(4), Some(0)).is_err());
        assert!(CasMismatch::check(None, Some(4)).is_err());
        assert_eq!(
            CasMismatch::check(Some(5), Some(4)),
            Err(CasMismatch {
                current: Some(5),
                expected: 4
            })
        );
    }

    #[test]
    fn an_outcome_of_another_command_is_handed_back() {
        let r = CommandResult::Deregister(Deregistered { removed: true });
        assert_eq!(RegisterOutcome::try_from(r.clone()), Err(r));
    }
}
