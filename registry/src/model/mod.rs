//! The registry's vocabulary: plain data for records, commands, results and changes.
//!
//! Architecture invariant: this module imports nothing from the rest of the crate
//! (`tests/layering.rs` keeps it so). Everything else — the catalog, the Raft type
//! config, the store, the watch hub, the API — builds on it.
//!
//! `record_kinds!` below is THE list of replicated record kinds. Each entry makes a
//! table in `Tables` and a variant of `Change`; the digest, snapshot build and install,
//! the RocksDB mirror and startup restore all walk `Tables::each`, so a kind cannot be
//! left out of any of them.

mod acl;
pub mod codec;
mod command;
mod config;
mod instance;
mod lease;
mod mesh;
mod table;

pub use acl::{
    AclAccess, AclAuthMethod, AclBindingRule, AclBootstrap, AclCommand, AclDeleted, AclPolicy,
    AclResource, AclRule, AclToken, AuthMethodConfig, AuthMethodDeleted, AuthMethodSpec,
    AuthMethodWritten, BindingRuleOutcome, JwtMethod, NewBindingRule, NewToken, PolicyWritten,
    TokenOrigin, TokenOutcome, BOOTSTRAP_KEY, GLOBAL_MANAGEMENT,
};
pub use command::{
    CasMismatch, Command, CommandResult, ConfigDeleteOutcome, ConfigPutOutcome, Deregistered,
    Footprint, HealthOutcome, LeaseEnded, Reaped, RegisterOutcome,
};
pub use config::{key_in_prefix, ConfigCommand, ConfigEntry};
pub use instance::{Health, InstanceKey, InstanceRecord, LeaseExpiry, NewInstance};
pub use lease::LeaseRecord;
pub use mesh::{
    CaCommand, CaInitOutcome, CaRetireOutcome, CaRoot, CaRotateOutcome, Intention, IntentionAction,
    IntentionCommand, IntentionDeleted, NewRoot,
};
pub use table::{AnyTable, Record, RecordChange, Table};

macro_rules! record_kinds {
    ($($variant:ident => $field:ident: $record:ty),+ $(,)?) => {
        /// Every replicated record kind.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Kind {
            $($variant),+
        }

        impl Kind {
            pub const ALL: &'static [Kind] = &[$(Kind::$variant),+];

            pub fn name(self) -> &'static str {
                match self {
                    $(Kind::$variant => <$record as Record>::KIND),+
                }
            }

            /// Its RocksDB column family.
            pub fn store(self) -> &'static str {
                match self {
                    $(Kind::$variant => <$record as Record>::STORE),+
                }
            }

            /// Its section's name in a snapshot image.
            pub fn snapshot_field(self) -> &'static str {
                match self {
                    $(Kind::$variant => <$record as Record>::SNAPSHOT_FIELD),+
                }
            }
        }

        /// One table per record kind: the replicated state besides the applied index.
        #[derive(Debug, Clone, Default, PartialEq, Eq)]
        pub struct Tables {
            $(pub $field: Table<$record>),+
        }

        impl Tables {
            /// Every table, in `Kind::ALL` order.
            pub fn each(&self) -> Vec<(Kind, &dyn AnyTable)> {
                vec![$((Kind::$variant, &self.$field as &dyn AnyTable)),+]
            }

            /// Every table, mutably, in `Kind::ALL` order.
            pub fn each_mut(&mut self) -> Vec<(Kind, &mut dyn AnyTable)> {
                vec![$((Kind::$variant, &mut self.$field as &mut dyn AnyTable)),+]
            }
        }

        /// One change to one record, of any kind: what applying an entry produced, in
        /// the order it produced them. Mirrored to storage and published to watchers.
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub enum Change {
            $($variant(RecordChange<$record>)),+
        }

        impl Change {
            pub fn kind(&self) -> Kind {
                match self {
                    $(Change::$variant(_) => Kind::$variant),+
                }
            }

            /// The storage row it writes: the key, and the encoded record (`None`:
            /// delete the row).
            pub fn row(&self) -> codec::Result<(Vec<u8>, Option<Vec<u8>>)> {
                match self {
                    $(Change::$variant(c) => Ok((c.key_bytes(), c.encoded()?))),+
                }
            }
        }

        $(
            impl From<RecordChange<$record>> for Change {
                fn from(c: RecordChange<$record>) -> Self {
                    Change::$variant(c)
                }
            }
        )+
    };
}

record_kinds! {
    Instance => instances: InstanceRecord,
    Lease => leases: LeaseRecord,
    Config => config: ConfigEntry,
    AclToken => acl_tokens: AclToken,
    AclPolicy => acl_policies: AclPolicy,
    AclBootstrap => acl_bootstrap: AclBootstrap,
    AclAuthMethod => acl_auth_methods: AclAuthMethod,
    AclBindingRule => acl_binding_rules: AclBindingRule,
    CaRoot => ca_roots: CaRoot,
    Intention => intentions: Intention,
}
