//! Leases in the catalog: creation (the entry's index is the id) and ending, which
//! removes or marks critical every instance registered under the lease, at one index.

use super::instances::removal;
use super::{Catalog, Effects};
use crate::model::{
    CommandResult, Health, InstanceRecord, LeaseEnded, LeaseExpiry, LeaseRecord, RecordChange,
};

impl Catalog {
    pub(super) fn create_lease(&mut self, index: u64, ttl_ms: u64) -> Effects {
        // The entry's index is the lease id: unique and the same on every node.
        let lease = LeaseRecord { id: index, ttl_ms };
        self.tables.leases.put(lease.clone());
        Effects {
            result: CommandResult::CreateLease(lease.clone()),
            changes: vec![RecordChange::Put(lease).into()],
        }
    }

    /// Ends a lease (expired or revoked): its instances are removed or marked
    /// critical, each as chosen at registration, all at this one index.
    pub(super) fn end_lease(&mut self, index: u64, lease_id: u64, reason: &str) -> Effects {
        if self.tables.leases.remove(&lease_id).is_none() {
            return Effects::result(CommandResult::EndLease(LeaseEnded { existed: false }));
        }
        let attached: Vec<InstanceRecord> = self
            .records()
            .filter(|r| r.lease_id == Some(lease_id))
            .cloned()
            .collect();
        let mut changes = Vec::new();
        for r in attached {
            match r.on_lease_expiry {
                LeaseExpiry::Remove => {
                    self.remove_instance(&r.service, &r.id);
                    changes.push(removal(&r.service, &r.id));
                }
                LeaseExpiry::MarkCritical => {
                    let record = InstanceRecord {
                        health: Health::Critical,
                        health_output: format!("lease {lease_id} {reason}"),
                        lease_id: None,
                        modify_index: index,
                        ..r
                    };
                    self.put_instance(record.clone());
                    changes.push(RecordChange::Put(record).into());
                }
            }
        }
        changes.push(RecordChange::<LeaseRecord>::Delete(lease_id).into());
        Effects {
            result: CommandResult::EndLease(LeaseEnded { existed: true }),
            changes,
        }
    }

    pub fn lease(&self, id: u64) -> Option<&LeaseRecord> {
        self.tables.leases.get(&id)
    }

    pub fn leases(&self) -> impl Iterator<Item = &LeaseRecord> {
        self.tables.leases.iter()
    }
}
