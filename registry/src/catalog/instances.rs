//! Instances in the catalog: registration (with compare-and-set and leases),
//! deregistration, health, reaping, and the queries over them.

use std::collections::BTreeSet;

use super::{Catalog, Effects};
use crate::model::{
    CasMismatch, Change, CommandResult, Deregistered, Health, HealthOutcome, InstanceKey,
    InstanceRecord, NewInstance, Reaped, Record, RecordChange, RegisterOutcome,
};

/// Summary of one service for `ListServices`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceSummary {
    pub name: String,
    pub instance_count: usize,
    pub tags: Vec<String>,
}

fn key(service: &str, id: &str) -> InstanceKey {
    (service.to_string(), id.to_string())
}

impl Catalog {
    pub(super) fn register(&mut self, index: u64, new: &NewInstance) -> Effects {
        // Decided here, at apply time, so the check is linearizable with every other
        // write; checking before proposing would race with them.
        let current = self.get(&new.service, &new.id).map(|r| r.modify_index);
        if let Err(mismatch) = CasMismatch::check(current, new.if_modify_index) {
            return Effects::result(CommandResult::Register(
                RegisterOutcome::PreconditionFailed(mismatch),
            ));
        }
        if let Some(lease) = new.lease_id {
            if !self.tables.leases.contains(&lease) {
                return Effects::result(CommandResult::Register(RegisterOutcome::LeaseNotFound(
                    lease,
                )));
            }
        }
        let create_index = self
            .get(&new.service, &new.id)
            .map_or(index, |old| old.create_index);
        let record = new.record(create_index, index);
        self.put_instance(record.clone());
        Effects {
            result: CommandResult::Register(RegisterOutcome::Registered(record.clone())),
            changes: vec![RecordChange::Put(record).into()],
        }
    }

    pub(super) fn deregister(&mut self, service: &str, id: &str) -> Effects {
        let removed = self.remove_instance(service, id);
        Effects {
            result: CommandResult::Deregister(Deregistered { removed }),
            changes: removed.then(|| removal(service, id)).into_iter().collect(),
        }
    }

    pub(super) fn update_health(
        &mut self,
        index: u64,
        service: &str,
        id: &str,
        health: Health,
        output: &str,
    ) -> Effects {
        let Some(old) = self.get(service, id) else {
            return Effects::result(CommandResult::UpdateHealth(HealthOutcome::InstanceNotFound));
        };
        let record = InstanceRecord {
            health,
            health_output: output.to_string(),
            modify_index: index,
            ..old.clone()
        };
        self.put_instance(record.clone());
        Effects {
            result: CommandResult::UpdateHealth(HealthOutcome::Updated(record.clone())),
            changes: vec![RecordChange::Put(record).into()],
        }
    }

    pub(super) fn reap_critical(
        &mut self,
        service: &str,
        id: &str,
        if_modify_index: u64,
    ) -> Effects {
        let still_same = self
            .get(service, id)
            .is_some_and(|r| r.health == Health::Critical && r.modify_index == if_modify_index);
        let removed = still_same && self.remove_instance(service, id);
        Effects {
            result: CommandResult::ReapCritical(Reaped { removed }),
            changes: removed.then(|| removal(service, id)).into_iter().collect(),
        }
    }

    /// Every instance write goes through here, keeping the reapable index in step.
    pub(super) fn put_instance(&mut self, record: InstanceRecord) {
        let k = record.key();
        if record.is_reapable() {
            self.reapable.insert(k);
        } else {
            self.reapable.remove(&k);
        }
        self.tables.instances.put(record);
    }

    pub(super) fn remove_instance(&mut self, service: &str, id: &str) -> bool {
        let k = key(service, id);
        self.reapable.remove(&k);
        self.tables.instances.remove(&k).is_some()
    }

    pub fn get(&self, service: &str, id: &str) -> Option<&InstanceRecord> {
        self.tables.instances.get(&key(service, id))
    }

    /// Instances of `service`, sorted by id; empty for an unknown service.
    pub fn instances(&self, service: &str) -> Vec<InstanceRecord> {
        self.service_records(service).cloned().collect()
    }

    /// Records of one service, sorted by id, without copying them.
    pub fn service_records<'a>(
        &'a self,
        service: &'a str,
    ) -> impl Iterator<Item = &'a InstanceRecord> + 'a {
        self.tables
            .instances
            .range(key(service, "")..)
            .take_while(move |((s, _), _)| s == service)
            .map(|(_, r)| r)
    }

    /// Services sorted by name.
    pub fn services(&self) -> Vec<ServiceSummary> {
        let mut out: Vec<ServiceSummary> = Vec::new();
        let mut tags = BTreeSet::new();
        for r in self.tables.instances.iter() {
            if out.last().is_none_or(|s| s.name != r.service) {
                if let Some(last) = out.last_mut() {
                    last.tags = std::mem::take(&mut tags).into_iter().collect();
                }
                out.push(ServiceSummary {
                    name: r.service.clone(),
                    instance_count: 0,
                    tags: Vec::new(),
                });
            }
            if let Some(last) = out.last_mut() {
                last.instance_count += 1;
            }
            tags.extend(r.tags.iter().cloned());
        }
        if let Some(last) = out.last_mut() {
            last.tags = tags.into_iter().collect();
        }
        out
    }

    /// Every instance, in (service, id) order.
    pub fn records(&self) -> impl Iterator<Item = &InstanceRecord> {
        self.tables.instances.iter()
    }

    pub fn instance_count(&self) -> usize {
        self.tables.instances.len()
    }

    /// The instances the leader must reap once they have been critical long enough.
    pub fn reapable(&self) -> impl Iterator<Item = &InstanceRecord> {
        self.reapable
            .iter()
            .filter_map(|k| self.tables.instances.get(k))
    }
}

pub(super) fn removal(service: &str, id: &str) -> Change {
    RecordChange::<InstanceRecord>::Delete(key(service, id)).into()
}
