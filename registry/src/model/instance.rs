//! Service instances: the registration as it travels in the log (`NewInstance`) and
//! the record as stored (`InstanceRecord`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::table::Record;

/// A validated registration as it travels in the Raft log. This is the on-disk/log
/// encoding, deliberately separate from the protobuf wire type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewInstance {
    pub service: String,
    pub id: String,
    pub address: String,
    pub port: u16,
    pub tags: Vec<String>,
    pub meta: BTreeMap<String, String>,
    pub weight_passing: u16,
    pub weight_warning: u16,
    pub lease_id: Option<u64>,
    pub on_lease_expiry: LeaseExpiry,
    /// 0 = never reap.
    pub deregister_critical_after_ms: u64,
    /// Compare-and-set, checked at apply time: `Some(0)` registers only if the
    /// instance is absent, `Some(n)` only if its modify index is `n`. Defaulted so
    /// that log entries written before the field existed still decode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub if_modify_index: Option<u64>,
    /// The status the record starts with; `None` (and entries written before the
    /// field existed) means passing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial_health: Option<Health>,
}

#[cfg(test)]
impl NewInstance {
    /// A plain registration for unit tests: 10.0.0.1:`port`, tag `v1`, no lease.
    pub fn example(service: &str, id: &str, port: u16) -> Self {
        Self {
            service: service.into(),
            id: id.into(),
            address: "10.0.0.1".into(),
            port,
            tags: vec!["v1".into()],
            meta: BTreeMap::new(),
            weight_passing: 1,
            weight_warning: 1,
            lease_id: None,
            on_lease_expiry: LeaseExpiry::Remove,
            deregister_critical_after_ms: 0,
            if_modify_index: None,
            initial_health: None,
        }
    }
}

impl NewInstance {
    /// The record this registration makes: a (re)registered instance starts with its
    /// initial health (passing unless the registration said otherwise).
    pub fn record(&self, create_index: u64, modify_index: u64) -> InstanceRecord {
        InstanceRecord {
            service: self.service.clone(),
            id: self.id.clone(),
            address: self.address.clone(),
            port: self.port,
            tags: self.tags.clone(),
            meta: self.meta.clone(),
            weight_passing: self.weight_passing,
            weight_warning: self.weight_warning,
            health: self.initial_health.unwrap_or(Health::Passing),
            health_output: String::new(),
            create_index,
            modify_index,
            lease_id: self.lease_id,
            on_lease_expiry: self.on_lease_expiry,
            deregister_critical_after_ms: self.deregister_critical_after_ms,
        }
    }
}

/// What happens to an instance when its lease ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum LeaseExpiry {
    #[default]
    Remove,
    MarkCritical,
}

/// Health of an instance. Registration starts an instance as passing unless it asks
/// for another initial status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Health {
    Passing,
    Warning,
    Critical,
}

/// One registered instance, as stored in the state machine and in snapshots.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceRecord {
    pub service: String,
    pub id: String,
    pub address: String,
    pub port: u16,
    pub tags: Vec<String>,
    pub meta: BTreeMap<String, String>,
    pub weight_passing: u16,
    pub weight_warning: u16,
    pub health: Health,
    pub health_output: String,
    /// Log index of the entry that first registered this instance.
    pub create_index: u64,
    /// Log index of the entry that last changed it.
    pub modify_index: u64,
    pub lease_id: Option<u64>,
    pub on_lease_expiry: LeaseExpiry,
    pub deregister_critical_after_ms: u64,
}

impl InstanceRecord {
    pub fn is_passing(&self) -> bool {
        self.health == Health::Passing
    }

    /// Critical with a `deregister_critical_after`: the leader reaps it in time.
    pub fn is_reapable(&self) -> bool {
        self.health == Health::Critical && self.deregister_critical_after_ms > 0
    }
}

/// An instance's key: (service, id).
pub type InstanceKey = (String, String);

impl Record for InstanceRecord {
    type Key = InstanceKey;
    const KIND: &'static str = "instance";
    const STORE: &'static str = "sm_records";
    const SNAPSHOT_FIELD: &'static str = "records";

    fn key(&self) -> InstanceKey {
        (self.service.clone(), self.id.clone())
    }

    fn key_bytes((service, id): &InstanceKey) -> Vec<u8> {
        // Names are DNS labels (no '/'), so "service/id" sorts like (service, id).
        format!("{service}/{id}").into_bytes()
    }
}
