//! Seeding a new node's data dir from a backup image (`waymark snapshot restore`),
//! the way `etcdutl snapshot restore` does: every member of the new cluster is
//! restored from the same file with the same member list, so all start with the same
//! state at the backup's index and elect a leader among themselves.
//!
//! The image's records are kept as they are; its member list is replaced by the new
//! cluster's (`initial_cluster`), since the old cluster's addresses mean nothing here.
//! The log starts empty right after the backup's index, as if purged behind the
//! snapshot, and the node votes in the backup's last term, so the first election of
//! the new cluster is in a later term than any entry it holds.

use std::collections::BTreeSet;
use std::sync::Arc;

use anyhow::{bail, Context};
use openraft::Membership;

use super::snapshot_file::{self, SnapshotDir};
use super::{open_db, snapshot_dir, LogStore};
use crate::config::ServerConfig;
use crate::metrics::Metrics;
use crate::raft_types::{NodeId, SnapshotMeta, StoredMembership, Vote};

/// What a restore wrote.
#[derive(Debug)]
pub struct Restored {
    /// Log index of the restored state.
    pub index: u64,
    /// Records per kind (snapshot section name, count).
    pub counts: Vec<(String, u64)>,
}

/// Writes a new data dir for `config`'s node holding the state in `image`.
pub fn restore(config: &ServerConfig, image: &[u8]) -> anyhow::Result<Restored> {
    let (meta, tables) = snapshot_file::decode(image).context("reading the backup")?;
    let (_, counts) = snapshot_file::counts(image).context("reading the backup")?;
    let Some(last) = meta.last_log_id else {
        bail!("the backup holds no applied entry; there is nothing to restore");
    };
    if config.initial_cluster.is_empty() {
        bail!(
            "restoring needs the new cluster's members: set initial_cluster \
             (--initial-cluster) as for the members' first start"
        );
    }
    if !config
        .initial_cluster
        .iter()
        .any(|p| p.node_id == config.node_id)
    {
        bail!(
            "node {} is not in initial_cluster; restore each member of the new cluster \
             with its own node id",
            config.node_id
        );
    }
    let dir = &config.data_dir;
    let in_use = std::fs::read_dir(dir).is_ok_and(|mut entries| entries.next().is_some());
    if in_use {
        bail!(
            "restoring writes a new data dir, and {} is not empty (a restore never \
             overwrites a node's data)",
            dir.display()
        );
    }
    let members = config.initial_members();
    let voters: BTreeSet<NodeId> = members.keys().copied().collect();
    let membership_at = meta.last_membership.log_id().or(Some(last));
    let meta = SnapshotMeta {
        last_log_id: Some(last),
        last_membership: StoredMembership::new(
            membership_at,
            Membership::new(vec![voters], members).context("the restored cluster's membership")?,
        ),
    };
    let db = open_db(dir)?;
    SnapshotDir::new(snapshot_dir(dir))
        .store(&snapshot_file::encode(&meta, &tables))
        .context("writing the restored snapshot")?;
    LogStore::new(db, Arc::new(Metrics::default()))
        .seed_restored(last, &Vote::new(last.leader_id.term, config.node_id))
        .map_err(|e| anyhow::anyhow!("writing the restored log state: {e}"))?;
    Ok(Restored {
        index: last.index,
        counts,
    })
}
