//! Leases: a TTL that instances may be registered under. Expiry is decided by the
//! leader (see `leader_timers.rs`) and enters the log as `EndLease`.

use serde::{Deserialize, Serialize};

use super::table::Record;

/// A lease as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseRecord {
    /// The index of the entry that created it.
    pub id: u64,
    pub ttl_ms: u64,
}

impl Record for LeaseRecord {
    type Key = u64;
    const KIND: &'static str = "lease";
    const STORE: &'static str = "sm_leases";
    const SNAPSHOT_FIELD: &'static str = "leases";

    fn key(&self) -> u64 {
        self.id
    }

    fn key_bytes(id: &u64) -> Vec<u8> {
        id.to_be_bytes().to_vec()
    }
}
