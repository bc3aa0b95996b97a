//! Access control records: tokens (stored by the hash of their secret, never the
//! secret), policies (lists of rules), and the one-time bootstrap marker; the commands
//! that write them and their outcomes.

use serde::{Deserialize, Serialize};

use super::table::Record;

/// The built-in policy that allows everything. It is not a record: it cannot be
/// written, deleted or changed.
pub const GLOBAL_MANAGEMENT: &str = waymark_proto::acl::GLOBAL_MANAGEMENT;

/// How a token came to be.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TokenOrigin {
    Bootstrap,
    Create,
    /// Exchanged for a verified JWT of this auth method.
    Login(String),
}

/// A token as stored and replicated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AclToken {
    /// Public id (32 hex digits).
    pub accessor_id: String,
    /// SHA-256 of the secret, hex. The secret itself is never stored.
    pub secret_hash: String,
    pub description: String,
    /// Policy names (`GLOBAL_MANAGEMENT` or policy records; a name with no record
    /// grants nothing).
    pub policies: Vec<String>,
    /// Wall-clock expiry in Unix milliseconds, chosen by the node that received the
    /// request (a value in the command, so apply stays deterministic). Enforced on use
    /// by every node, and the leader deletes the token through the log once it passes.
    pub expires_at_unix_ms: Option<u64>,
    pub origin: TokenOrigin,
    pub create_index: u64,
}

impl Record for AclToken {
    type Key = String;
    const KIND: &'static str = "acl_token";
    const STORE: &'static str = "sm_acl_tokens";
    const SNAPSHOT_FIELD: &'static str = "acl_tokens";

    fn key(&self) -> String {
        self.accessor_id.clone()
    }

    fn key_bytes(key: &String) -> Vec<u8> {
        key.as_bytes().to_vec()
    }
}

/// What a rule covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum AclResource {
    Service,
    Config,
    Intention,
    Node,
    Operator,
    Acl,
}

impl AclResource {
    /// Its name in rules and messages.
    pub fn name(self) -> &'static str {
        match self {
            AclResource::Service => "service",
            AclResource::Config => "config",
            AclResource::Intention => "intention",
            AclResource::Node => "node",
            AclResource::Operator => "operator",
            AclResource::Acl => "acl",
        }
    }

    /// Whether rules of this resource name what they cover (services, config keys).
    pub fn is_named(self) -> bool {
        matches!(self, AclResource::Service | AclResource::Config)
    }
}

/// What a rule grants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum AclAccess {
    Read,
    /// Implies read.
    Write,
    Deny,
}

impl AclAccess {
    pub fn name(self) -> &'static str {
        match self {
            AclAccess::Read => "read",
            AclAccess::Write => "write",
            AclAccess::Deny => "deny",
        }
    }
}

/// One rule of a policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AclRule {
    pub resource: AclResource,
    /// A service name or config key (a prefix when `prefix`); empty for the resources
    /// that name nothing.
    pub name: String,
    pub prefix: bool,
    pub access: AclAccess,
}

/// A policy as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AclPolicy {
    pub name: String,
    pub description: String,
    pub rules: Vec<AclRule>,
    pub create_index: u64,
    pub modify_index: u64,
}

impl Record for AclPolicy {
    type Key = String;
    const KIND: &'static str = "acl_policy";
    const STORE: &'static str = "sm_acl_policies";
    const SNAPSHOT_FIELD: &'static str = "acl_policies";

    fn key(&self) -> String {
        self.name.clone()
    }

    fn key_bytes(key: &String) -> Vec<u8> {
        key.as_bytes().to_vec()
    }
}

/// Marks the cluster's ACLs as bootstrapped (one record, key `BOOTSTRAP_KEY`): kept
/// even when the bootstrap token is deleted, so bootstrap happens once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AclBootstrap {
    pub key: String,
    /// The index bootstrap was applied at.
    pub index: u64,
    pub accessor_id: String,
}

/// The key of the one `AclBootstrap` record.
pub const BOOTSTRAP_KEY: &str = "bootstrap";

impl Record for AclBootstrap {
    type Key = String;
    const KIND: &'static str = "acl_bootstrap";
    const STORE: &'static str = "sm_acl_meta";
    const SNAPSHOT_FIELD: &'static str = "acl_bootstrap";

    fn key(&self) -> String {
        self.key.clone()
    }

    fn key_bytes(key: &String) -> Vec<u8> {
        key.as_bytes().to_vec()
    }
}

/// A new token as it travels in the log: the receiving node chose its accessor id
/// and secret (randomness stays out of apply) and sends only the secret's hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewToken {
    pub accessor_id: String,
    pub secret_hash: String,
    pub description: String,
    pub policies: Vec<String>,
    pub expires_at_unix_ms: Option<u64>,
    pub origin: TokenOrigin,
}

/// ACL commands, nested under `Command::Acl`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AclCommand {
    /// The first management token; refused once bootstrapped.
    Bootstrap(NewToken),
    CreateToken(NewToken),
    /// By a client, or by the leader once the token has expired (`reason`).
    DeleteToken {
        accessor_id: String,
        reason: String,
    },
    /// Creates or replaces a policy.
    PutPolicy {
        name: String,
        description: String,
        rules: Vec<AclRule>,
    },
    DeletePolicy {
        name: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TokenOutcome {
    Created(AclToken),
    /// Bootstrap was already done, at this index.
    AlreadyBootstrapped(u64),
    /// The accessor id (or, vanishingly unlikely, the secret) is taken.
    Duplicate,
    /// A named policy does not exist.
    UnknownPolicy(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AclDeleted {
    pub removed: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyWritten(pub AclPolicy);
