//! The replicated state as a pure, deterministic state machine: one table per record
//! kind (`model::Tables`), how a command changes them (one module per kind), queries,
//! and a digest that lets nodes compare their states.
//!
//! Nothing here touches clocks, randomness, disk or the network: applying the same
//! commands at the same indexes always yields the same catalog on every node.
//! Architecture invariant: the catalog imports only `model` from this crate.

mod acl;
mod config;
mod instances;
mod leases;
mod mesh;

use std::collections::{BTreeSet, HashMap};

use sha2::{Digest, Sha256};

use crate::model::{Change, Command, CommandResult, InstanceKey, Kind, Tables};

pub use instances::ServiceSummary;

/// What applying one command did: its result, and every record change it made (for
/// the storage mirror and for watchers), in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Effects {
    pub result: CommandResult,
    pub changes: Vec<Change>,
}

impl Effects {
    fn result(result: CommandResult) -> Self {
        Self {
            result,
            changes: Vec::new(),
        }
    }
}

/// Every record, plus the index of the last applied entry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Catalog {
    tables: Tables,
    applied_index: u64,
    /// Derived from `tables.instances`: the instances the leader must reap in time
    /// (critical, with a `deregister_critical_after`), so its timer does not scan
    /// every record.
    reapable: BTreeSet<InstanceKey>,
    /// Derived from `tables.acl_tokens`: accessor id by secret hash (authentication
    /// looks tokens up by what the caller presents).
    tokens_by_secret: HashMap<String, String>,
    /// Derived from `tables.acl_tokens`: (expiry, accessor id) of expiring tokens, for
    /// the leader's expiry timer.
    token_expiry: BTreeSet<(u64, String)>,
}

impl Catalog {
    /// Rebuilds a catalog from stored tables.
    pub fn from_tables(tables: Tables, applied_index: u64) -> Self {
        let reapable = tables
            .instances
            .iter()
            .filter(|r| r.is_reapable())
            .map(|r| (r.service.clone(), r.id.clone()))
            .collect();
        let tokens: Vec<_> = tables.acl_tokens.iter().cloned().collect();
        let mut catalog = Self {
            tables,
            applied_index,
            reapable,
            tokens_by_secret: HashMap::new(),
            token_expiry: BTreeSet::new(),
        };
        for token in &tokens {
            catalog.index_token(token);
        }
        catalog
    }

    /// The tables, for the kind-agnostic walks (snapshots, storage).
    pub fn tables(&self) -> &Tables {
        &self.tables
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
            Command::Deregister { service, id } => self.deregister(service, id),
            Command::UpdateHealth {
                service,
                id,
                health,
                output,
            } => self.update_health(index, service, id, *health, output),
            Command::CreateLease { ttl_ms } => self.create_lease(index, *ttl_ms),
            Command::EndLease { lease_id, reason } => self.end_lease(index, *lease_id, reason),
            Command::ReapCritical {
                service,
                id,
                if_modify_index,
            } => self.reap_critical(service, id, *if_modify_index),
            Command::Config(cmd) => self.apply_config(index, cmd),
            Command::Batch(cmds) => self.apply_batch(index, cmds),
            Command::Acl(cmd) => self.apply_acl(index, cmd),
            Command::Ca(cmd) => self.apply_ca(index, cmd),
            Command::Intention(cmd) => self.apply_intention(index, cmd),
        }
    }

    /// A group-committed entry: each command applied in order at the same index; the
    /// changes of all of them form this index's one atomic set of changes.
    fn apply_batch(&mut self, index: u64, cmds: &[Command]) -> Effects {
        let mut changes = Vec::new();
        let mut results = Vec::with_capacity(cmds.len());
        for cmd in cmds {
            let effects = self.apply(index, cmd);
            changes.extend(effects.changes);
            results.push(effects.result);
        }
        Effects {
            result: CommandResult::Batch(results),
            changes,
        }
    }

    /// SHA-256 over every table (in `Kind::ALL` order, records in key order, each in
    /// its canonical encoding) and the applied index. Two replicas at the same index
    /// must agree on it.
    pub fn digest(&self) -> String {
        let mut h = Sha256::new();
        h.update(self.applied_index.to_be_bytes());
        for (_, table) in self.tables.each() {
            h.update(table.kind().as_bytes());
            h.update((table.len() as u64).to_be_bytes());
            for row in table.rows() {
                let (_, bytes) = row.expect("records always serialize");
                h.update((bytes.len() as u64).to_be_bytes());
                h.update(&bytes);
            }
        }
        hex::encode(h.finalize())
    }

    /// Record counts per kind, for metrics and status.
    pub fn counts(&self) -> Vec<(Kind, usize)> {
        self.tables
            .each()
            .into_iter()
            .map(|(kind, t)| (kind, t.len()))
            .collect()
    }
}

#[cfg(test)]
mod tests;
