//! The service catalog as a pure, deterministic state machine: records, how a command
//! changes them, queries, and a digest that lets nodes compare their states.
//!
//! Nothing here touches clocks, randomness, disk or the network: applying the same
//! commands at the same indexes always yields the same catalog on every node.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::raft_types::{Command, CommandResult};
use crate::watch::hub::Change;

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
}

impl NewInstance {
    /// The record this registration makes: a (re)registered instance starts passing.
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
            health: Health::Passing,
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

/// A lease as stored: expiry itself is decided by the leader (see `leases.rs`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseRecord {
    pub id: u64,
    pub ttl_ms: u64,
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
            lease_id: r.lease_id,
            on_lease_expiry: if r.mark_critical_on_lease_expiry {
                LeaseExpiry::MarkCritical
            } else {
                LeaseExpiry::Remove
            },
            deregister_critical_after_ms: r.deregister_critical_after_ms,
            if_modify_index: r.expected_modify_index,
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
    pub lease_id: Option<u64>,
    pub on_lease_expiry: LeaseExpiry,
    pub deregister_critical_after_ms: u64,
}

impl InstanceRecord {
    pub fn is_passing(&self) -> bool {
        self.health == Health::Passing
    }
}

/// Summary of one service for `ListServices`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceSummary {
    pub name: String,
    pub instance_count: usize,
    pub tags: Vec<String>,
}

/// What applying one command did: its result, the instance changes (for the
/// persistence mirror and for watchers), and the lease changes (for the mirror).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Effects {
    pub result: CommandResult,
    pub changes: Vec<Change>,
    pub lease_changes: Vec<LeaseChange>,
}

impl Effects {
    fn result(result: CommandResult) -> Self {
        Self {
            result,
            changes: Vec::new(),
            lease_changes: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseChange {
    Put(LeaseRecord),
    Delete(u64),
}

/// All services and their instances, plus the index of the last applied entry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Catalog {
    services: BTreeMap<String, BTreeMap<String, InstanceRecord>>,
    leases: BTreeMap<u64, LeaseRecord>,
    applied_index: u64,
}

impl Catalog {
    /// Rebuilds a catalog from stored records.
    pub fn from_records(
        records: impl IntoIterator<Item = InstanceRecord>,
        leases: impl IntoIterator<Item = LeaseRecord>,
        applied_index: u64,
    ) -> Self {
        let mut c = Catalog {
            services: BTreeMap::new(),
            leases: leases.into_iter().map(|l| (l.id, l)).collect(),
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
    /// has a defined result (a lost race, such as a lease revoked before a registration
    /// under it commits, is a result, not an error).
    pub fn apply(&mut self, index: u64, cmd: &Command) -> Effects {
        self.advance_to(index);
        match cmd {
            Command::Register(new) => self.register(index, new),
            Command::Deregister { service, id } => {
                let removed = self.remove_instance(service, id);
                let changes = removed
                    .then(|| Change::Remove {
                        service: service.clone(),
                        id: id.clone(),
                    })
                    .into_iter()
                    .collect();
                Effects {
                    result: CommandResult::Deregistered { removed },
                    changes,
                    lease_changes: Vec::new(),
                }
            }
            Command::UpdateHealth {
                service,
                id,
                health,
                output,
            } => match self.services.get_mut(service).and_then(|m| m.get_mut(id)) {
                None => Effects::result(CommandResult::InstanceNotFound),
                Some(r) => {
                    r.health = *health;
                    r.health_output = output.clone();
                    r.modify_index = index;
                    let r = r.clone();
                    Effects {
                        result: CommandResult::HealthUpdated(r.clone()),
                        changes: vec![Change::Upsert(r)],
                        lease_changes: Vec::new(),
                    }
                }
            },
            Command::CreateLease { ttl_ms } => {
                // The entry's index is the lease id: unique and the same on every node.
                let lease = LeaseRecord {
                    id: index,
                    ttl_ms: *ttl_ms,
                };
                self.leases.insert(index, lease.clone());
                Effects {
                    result: CommandResult::LeaseCreated(lease.clone()),
                    changes: Vec::new(),
                    lease_changes: vec![LeaseChange::Put(lease)],
                }
            }
            Command::EndLease { lease_id, reason } => self.end_lease(index, *lease_id, reason),
            Command::ReapCritical {
                service,
                id,
                if_modify_index,
            } => {
                let still_same = self.get(service, id).is_some_and(|r| {
                    r.health == Health::Critical && r.modify_index == *if_modify_index
                });
                let removed = still_same && self.remove_instance(service, id);
                Effects {
                    result: CommandResult::Deregistered { removed },
                    changes: removed
                        .then(|| Change::Remove {
                            service: service.clone(),
                            id: id.clone(),
                        })
                        .into_iter()
                        .collect(),
                    lease_changes: Vec::new(),
                }
            }
        }
    }

    fn register(&mut self, index: u64, new: &NewInstance) -> Effects {
        if let Some(expected) = new.if_modify_index {
            // Decided here, at apply time, so the check is linearizable with every
            // other write; checking before proposing would race with them.
            let current = self.get(&new.service, &new.id).map(|r| r.modify_index);
            let holds = match current {
                None => expected == 0,
                Some(current) => expected != 0 && current == expected,
            };
            if !holds {
                return Effects::result(CommandResult::PreconditionFailed { current, expected });
            }
        }
        if let Some(lease) = new.lease_id {
            if !self.leases.contains_key(&lease) {
                return Effects::result(CommandResult::LeaseNotFound(lease));
            }
        }
        let instances = self.services.entry(new.service.clone()).or_default();
        let create_index = instances
            .get(&new.id)
            .map(|old| old.create_index)
            .unwrap_or(index);
        let record = new.record(create_index, index);
        instances.insert(new.id.clone(), record.clone());
        Effects {
            result: CommandResult::Registered(record.clone()),
            changes: vec![Change::Upsert(record)],
            lease_changes: Vec::new(),
        }
    }

    fn remove_instance(&mut self, service: &str, id: &str) -> bool {
        let Some(instances) = self.services.get_mut(service) else {
            return false;
        };
        let removed = instances.remove(id).is_some();
        if instances.is_empty() {
            self.services.remove(service);
        }
        removed
    }

    /// Ends a lease (expired or revoked): its instances are removed or marked
    /// critical, each as chosen at registration, all at this one index.
    fn end_lease(&mut self, index: u64, lease_id: u64, reason: &str) -> Effects {
        if self.leases.remove(&lease_id).is_none() {
            return Effects::result(CommandResult::LeaseEnded { existed: false });
        }
        let attached: Vec<(String, String, LeaseExpiry)> = self
            .records()
            .filter(|r| r.lease_id == Some(lease_id))
            .map(|r| (r.service.clone(), r.id.clone(), r.on_lease_expiry))
            .collect();
        let mut changes = Vec::new();
        for (service, id, action) in attached {
            match action {
                LeaseExpiry::Remove => {
                    self.remove_instance(&service, &id);
                    changes.push(Change::Remove { service, id });
                }
                LeaseExpiry::MarkCritical => {
                    if let Some(r) = self.services.get_mut(&service).and_then(|m| m.get_mut(&id)) {
                        r.health = Health::Critical;
                        r.health_output = format!("lease {lease_id} {reason}");
                        r.lease_id = None;
                        r.modify_index = index;
                        changes.push(Change::Upsert(r.clone()));
                    }
                }
            }
        }
        Effects {
            result: CommandResult::LeaseEnded { existed: true },
            changes,
            lease_changes: vec![LeaseChange::Delete(lease_id)],
        }
    }

    pub fn lease(&self, id: u64) -> Option<&LeaseRecord> {
        self.leases.get(&id)
    }

    pub fn leases(&self) -> impl Iterator<Item = &LeaseRecord> {
        self.leases.values()
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

    /// Records of one service, sorted by id, without copying them.
    pub fn service_records(&self, service: &str) -> impl Iterator<Item = &InstanceRecord> {
        self.services
            .get(service)
            .into_iter()
            .flat_map(|m| m.values())
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
        for l in self.leases.values() {
            h.update(l.id.to_be_bytes());
            h.update(l.ttl_ms.to_be_bytes());
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
            lease_id: None,
            on_lease_expiry: LeaseExpiry::Remove,
            deregister_critical_after_ms: 0,
            if_modify_index: None,
        })
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
        assert_eq!(e.result, CommandResult::Deregistered { removed: true });
        assert_eq!(e.changes.len(), 1);
        let e = c.apply(3, &del);
        assert_eq!(e.result, CommandResult::Deregistered { removed: false });
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
        let rebuilt =
            Catalog::from_records(a.records().cloned(), a.leases().cloned(), a.applied_index());
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
            CommandResult::LeaseCreated(LeaseRecord { id: 1, .. })
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
        assert_eq!(e.result, CommandResult::LeaseEnded { existed: true });
        assert_eq!(e.changes.len(), 2);
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
        assert_eq!(e.result, CommandResult::LeaseNotFound(1));
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
            CommandResult::Deregistered { removed: false }
        );
        let reap = Command::ReapCritical {
            service: "web".into(),
            id: "a".into(),
            if_modify_index: 2,
        };
        assert_eq!(
            c.apply(4, &reap).result,
            CommandResult::Deregistered { removed: true }
        );
        assert_eq!(c.apply(5, &crit).result, CommandResult::InstanceNotFound);
    }

    #[test]
    fn cas_commits_only_on_a_matching_modify_index() {
        let mut c = Catalog::default();
        c.apply(3, &reg("web", "a", 80));
        let e = c.apply(5, &reg_cas("a", 81, 3));
        assert!(matches!(e.result, CommandResult::Registered(_)), "{e:?}");
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
            CommandResult::PreconditionFailed {
                current: Some(3),
                expected: 2
            }
        );
        assert!(e.changes.is_empty() && e.lease_changes.is_empty());
        assert_eq!(c.get("web", "a"), Some(&before));
        // The entry still counts as applied.
        assert_eq!(c.applied_index(), 4);
        // A non-zero expectation on an absent instance fails too.
        let e = c.apply(5, &reg_cas("b", 80, 3));
        assert_eq!(
            e.result,
            CommandResult::PreconditionFailed {
                current: None,
                expected: 3
            }
        );
        assert!(c.get("web", "b").is_none());
    }

    #[test]
    fn cas_zero_means_only_if_absent() {
        let mut c = Catalog::default();
        let e = c.apply(1, &reg_cas("a", 80, 0));
        assert!(matches!(e.result, CommandResult::Registered(_)), "{e:?}");
        let r = c.get("web", "a").unwrap();
        assert_eq!((r.create_index, r.modify_index), (1, 1));
        let e = c.apply(2, &reg_cas("a", 81, 0));
        assert_eq!(
            e.result,
            CommandResult::PreconditionFailed {
                current: Some(1),
                expected: 0
            }
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
    }
}
