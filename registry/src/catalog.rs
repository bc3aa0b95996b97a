//! The service catalog as a pure, deterministic state machine: records, how a command
//! changes them, queries, and a digest that lets nodes compare their states.
//!
//! Nothing here touches clocks, randomness, disk or the network: applying the same
//! commands at the same indexes always yields the same catalog on every node.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::raft_types::{Command, CommandResult};

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
}

impl From<waymark_proto::Registration> for NewInstance {
    fn from(r: waymark_proto::Registration) -> Self {
        Self {
            service: r.service,
            id: r.id,
            address: r.address,
            port: r.port,
            tags: r.tags,
            meta: r.meta,
            weight_passing: r.weights.passing,
            weight_warning: r.weights.warning,
        }
    }
}

/// Health of an instance. Registration starts an instance as passing; health checks
/// arrive with the health issue.
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
}

/// Summary of one service for `ListServices`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceSummary {
    pub name: String,
    pub instance_count: usize,
    pub tags: Vec<String>,
}

/// The effect of one command on stored records, for the persistence layer to mirror.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordChange {
    Put(InstanceRecord),
    Delete { service: String, id: String },
}

/// All services and their instances, plus the index of the last applied entry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Catalog {
    services: BTreeMap<String, BTreeMap<String, InstanceRecord>>,
    applied_index: u64,
}

impl Catalog {
    /// Rebuilds a catalog from stored records.
    pub fn from_records(
        records: impl IntoIterator<Item = InstanceRecord>,
        applied_index: u64,
    ) -> Self {
        let mut c = Catalog {
            services: BTreeMap::new(),
            applied_index,
        };
        for r in records {
            c.services
                .entry(r.service.clone())
                .or_default()
                .insert(r.id.clone(), r);
        }
        c
    }

    /// Index of the last log entry applied (0 before any).
    pub fn applied_index(&self) -> u64 {
        self.applied_index
    }

    /// Records that an entry without catalog effect (blank, membership) was applied.
    pub fn advance_to(&mut self, index: u64) {
        self.applied_index = self.applied_index.max(index);
    }

    /// Applies `cmd` as the entry at `index`. Deterministic and total: every command
    /// has a defined result, and the change to stored records is returned alongside.
    pub fn apply(&mut self, index: u64, cmd: &Command) -> (CommandResult, Option<RecordChange>) {
        self.advance_to(index);
        match cmd {
            Command::Register(new) => {
                let instances = self.services.entry(new.service.clone()).or_default();
                let create_index = instances
                    .get(&new.id)
                    .map(|old| old.create_index)
                    .unwrap_or(index);
                let record = InstanceRecord {
                    service: new.service.clone(),
                    id: new.id.clone(),
                    address: new.address.clone(),
                    port: new.port,
                    tags: new.tags.clone(),
                    meta: new.meta.clone(),
                    weight_passing: new.weight_passing,
                    weight_warning: new.weight_warning,
                    health: Health::Passing,
                    health_output: String::new(),
                    create_index,
                    modify_index: index,
                };
                instances.insert(new.id.clone(), record.clone());
                (
                    CommandResult::Registered(record.clone()),
                    Some(RecordChange::Put(record)),
                )
            }
            Command::Deregister { service, id } => {
                let removed = match self.services.get_mut(service) {
                    Some(instances) => {
                        let removed = instances.remove(id).is_some();
                        if instances.is_empty() {
                            self.services.remove(service);
                        }
                        removed
                    }
                    None => false,
                };
                let change = removed.then(|| RecordChange::Delete {
                    service: service.clone(),
                    id: id.clone(),
                });
                (CommandResult::Deregistered { removed }, change)
            }
        }
    }

    pub fn get(&self, service: &str, id: &str) -> Option<&InstanceRecord> {
        self.services.get(service)?.get(id)
    }

    /// Instances of `service`, sorted by id; empty for an unknown service.
    pub fn instances(&self, service: &str) -> Vec<InstanceRecord> {
        self.services
            .get(service)
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Services sorted by name.
    pub fn services(&self) -> Vec<ServiceSummary> {
        self.services
            .iter()
            .map(|(name, instances)| {
                let tags: BTreeSet<&String> = instances.values().flat_map(|i| &i.tags).collect();
                ServiceSummary {
                    name: name.clone(),
                    instance_count: instances.len(),
                    tags: tags.into_iter().cloned().collect(),
                }
            })
            .collect()
    }

    /// Every record, in (service, id) order.
    pub fn records(&self) -> impl Iterator<Item = &InstanceRecord> {
        self.services.values().flat_map(|m| m.values())
    }

    pub fn instance_count(&self) -> usize {
        self.services.values().map(|m| m.len()).sum()
    }

    /// SHA-256 over a canonical encoding of every record (in key order) and the
    /// applied index. Two replicas at the same index must agree on it.
    pub fn digest(&self) -> String {
        let mut h = Sha256::new();
        h.update(self.applied_index.to_be_bytes());
        for r in self.records() {
            // serde_json of a struct with BTreeMap fields is canonical: fixed field
            // order, sorted map keys.
            let bytes = serde_json::to_vec(r).expect("records always serialize");
            h.update((bytes.len() as u64).to_be_bytes());
            h.update(&bytes);
        }
        hex::encode(h.finalize())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reg(service: &str, id: &str, port: u16) -> Command {
        Command::Register(NewInstance {
            service: service.into(),
            id: id.into(),
            address: "10.0.0.1".into(),
            port,
            tags: vec!["v1".into()],
            meta: BTreeMap::new(),
            weight_passing: 1,
            weight_warning: 1,
        })
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
        let (res, change) = c.apply(2, &del);
        assert_eq!(res, CommandResult::Deregistered { removed: true });
        assert!(change.is_some());
        let (res, change) = c.apply(3, &del);
        assert_eq!(res, CommandResult::Deregistered { removed: false });
        assert!(change.is_none());
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
        let rebuilt = Catalog::from_records(a.records().cloned(), a.applied_index());
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
}
