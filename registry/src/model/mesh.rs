//! Mesh identity records: the CA roots leaves are signed by (with their private keys:
//! replicated state, as in Consul's built-in CA) and intentions (which service may call
//! which), with their commands and outcomes.

use serde::{Deserialize, Serialize};

use super::table::Record;

/// One CA root. `signing_key_pem` is secret: it is in the replicated state (and so in
/// snapshots and backups) but no response or watch message carries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaRoot {
    /// Hex SHA-256 of the signing certificate's DER, first 16 characters.
    pub id: String,
    /// What leaves are signed with: a root, or an imported intermediate.
    pub signing_cert_pem: String,
    /// PKCS#8 PEM.
    pub signing_key_pem: String,
    /// The certificate peers trust: the signing certificate itself for a root.
    pub trust_anchor_pem: String,
    /// Sent after each leaf: certificates between signer and anchor, and after a
    /// rotation this root cross-signed by the previous one.
    pub chain_pem: Vec<String>,
    /// The one root new leaves are signed by.
    pub active: bool,
    pub trust_domain: String,
    pub not_after_ms: u64,
    pub imported: bool,
    pub create_index: u64,
    pub modify_index: u64,
}

impl Record for CaRoot {
    type Key = String;
    const KIND: &'static str = "ca_root";
    const STORE: &'static str = "sm_ca_roots";
    const SNAPSHOT_FIELD: &'static str = "ca_roots";

    fn key(&self) -> String {
        self.id.clone()
    }

    fn key_bytes(key: &String) -> Vec<u8> {
        key.as_bytes().to_vec()
    }
}

/// A root as proposed: made (key generated, or files read, and cross-signed) by the
/// node that proposes it, never in apply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewRoot {
    pub id: String,
    pub signing_cert_pem: String,
    pub signing_key_pem: String,
    pub trust_anchor_pem: String,
    pub chain_pem: Vec<String>,
    pub trust_domain: String,
    pub not_after_ms: u64,
    pub imported: bool,
}

impl NewRoot {
    pub fn into_record(self, index: u64, active: bool) -> CaRoot {
        CaRoot {
            id: self.id,
            signing_cert_pem: self.signing_cert_pem,
            signing_key_pem: self.signing_key_pem,
            trust_anchor_pem: self.trust_anchor_pem,
            chain_pem: self.chain_pem,
            active,
            trust_domain: self.trust_domain,
            not_after_ms: self.not_after_ms,
            imported: self.imported,
            create_index: index,
            modify_index: index,
        }
    }
}

/// CA commands, nested under `Command::Ca`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CaCommand {
    /// The first root, proposed by a leader that finds none. A no-op when a root
    /// exists (two leaders in a row may both propose one; the first wins).
    Initialize(NewRoot),
    /// Makes `root` the active root; the previous one stays trusted until retired.
    /// Applies only if `if_active` is still the active root (it cross-signed `root`).
    Rotate { root: NewRoot, if_active: String },
    /// Stops trusting a root that is no longer active.
    Retire { id: String },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CaInitOutcome {
    Initialized(CaRoot),
    AlreadyInitialized,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CaRotateOutcome {
    Rotated {
        root: CaRoot,
        previous_id: String,
    },
    /// The active root was no longer `if_active` (another rotation won): nothing
    /// changed.
    ActiveChanged {
        active: Option<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CaRetireOutcome {
    Retired {
        removed: bool,
    },
    /// The active root cannot be retired: rotate first.
    IsActive,
}

/// An intention's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum IntentionAction {
    Allow,
    Deny,
}

/// Whether `source` may call `destination` (service names or `*`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Intention {
    pub source: String,
    pub destination: String,
    pub action: IntentionAction,
    pub description: String,
    pub create_index: u64,
    pub modify_index: u64,
}

impl Record for Intention {
    /// (destination, source): an inbound proxy reads the intentions to its service.
    type Key = (String, String);
    const KIND: &'static str = "intention";
    const STORE: &'static str = "sm_intentions";
    const SNAPSHOT_FIELD: &'static str = "intentions";

    fn key(&self) -> (String, String) {
        (self.destination.clone(), self.source.clone())
    }

    fn key_bytes(key: &(String, String)) -> Vec<u8> {
        // Names are DNS labels or "*", so a NUL cannot occur in either.
        let mut bytes = key.0.as_bytes().to_vec();
        bytes.push(0);
        bytes.extend_from_slice(key.1.as_bytes());
        bytes
    }
}

/// Intention commands, nested under `Command::Intention`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum IntentionCommand {
    Put {
        source: String,
        destination: String,
        action: IntentionAction,
        description: String,
    },
    Delete {
        source: String,
        destination: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IntentionDeleted {
    pub removed: bool,
}
