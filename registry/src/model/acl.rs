//! Access control records: tokens (stored by the hash of their secret, never the
//! secret), policies (lists of rules), the one-time bootstrap marker, auth methods
//! (how a JWT is verified for `Login`) and binding rules (verified claims → policies);
//! the commands that write them and their outcomes.

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

/// How an auth method verifies its callers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AuthMethodConfig {
    Jwt(JwtMethod),
}

/// A JWT auth method's settings. Inline keys (`jwks`, `public_keys`) are in the
/// record, so every node verifies with the same ones; a `jwks_url` is replicated as a
/// URL only: the node serving a login fetches and caches its keys (`acl/jwks/`),
/// never apply (which stays a pure function of the log).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JwtMethod {
    /// Required `iss`.
    pub issuer: String,
    /// The JWT's `aud` must name one of these.
    pub audiences: Vec<String>,
    /// A JWKS document as given (may be empty when `public_keys` is not).
    pub jwks: String,
    /// PEM public keys as given.
    pub public_keys: Vec<String>,
    /// A URL serving a JWKS document (empty: none). Absent from records written
    /// before it existed, and left out when empty, so those records read and
    /// re-serialize unchanged.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub jwks_url: String,
    /// PEM CA certificate(s) trusted for an https `jwks_url` (empty: system roots).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub jwks_ca_cert: String,
    /// A login's token lives at most this long (and never past the JWT's `exp`).
    pub max_token_ttl_ms: u64,
    /// Skew allowed on `exp` and `nbf`.
    pub clock_skew_ms: u64,
}

/// An auth method as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AclAuthMethod {
    pub name: String,
    pub description: String,
    pub config: AuthMethodConfig,
    pub create_index: u64,
    pub modify_index: u64,
}

impl Record for AclAuthMethod {
    type Key = String;
    const KIND: &'static str = "acl_auth_method";
    const STORE: &'static str = "sm_acl_auth_methods";
    const SNAPSHOT_FIELD: &'static str = "acl_auth_methods";

    fn key(&self) -> String {
        self.name.clone()
    }

    fn key_bytes(key: &String) -> Vec<u8> {
        key.as_bytes().to_vec()
    }
}

/// A binding rule as stored: a login through `method` whose verified claims match
/// `selector` (see `waymark_proto::selector`) gets `policies`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AclBindingRule {
    /// 32 hex digits, chosen by the node that received the request.
    pub id: String,
    pub description: String,
    pub method: String,
    pub selector: String,
    pub policies: Vec<String>,
    pub create_index: u64,
}

impl Record for AclBindingRule {
    type Key = String;
    const KIND: &'static str = "acl_binding_rule";
    const STORE: &'static str = "sm_acl_binding_rules";
    const SNAPSHOT_FIELD: &'static str = "acl_binding_rules";

    fn key(&self) -> String {
        self.id.clone()
    }

    fn key_bytes(key: &String) -> Vec<u8> {
        key.as_bytes().to_vec()
    }
}

/// An auth method write as it travels in the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthMethodSpec {
    pub name: String,
    pub description: String,
    pub config: AuthMethodConfig,
}

/// A new binding rule as it travels in the log (its id chosen before proposing).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewBindingRule {
    pub id: String,
    pub description: String,
    pub method: String,
    pub selector: String,
    pub policies: Vec<String>,
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
    /// Creates or replaces an auth method.
    PutAuthMethod(AuthMethodSpec),
    /// Deletes an auth method and its binding rules (tokens it issued live on until
    /// they expire).
    DeleteAuthMethod {
        name: String,
    },
    /// Refused at apply if its method does not exist (then).
    CreateBindingRule(NewBindingRule),
    DeleteBindingRule {
        id: String,
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

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthMethodWritten(pub AclAuthMethod);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthMethodDeleted {
    pub removed: bool,
    pub binding_rules_removed: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum BindingRuleOutcome {
    Created(AclBindingRule),
    /// The method it names does not exist.
    UnknownMethod(String),
    /// The id is taken (vanishingly unlikely: it is random).
    Duplicate,
}
