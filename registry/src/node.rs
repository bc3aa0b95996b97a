//! One running registry node: the Raft handle, the catalog read view, and the
//! operations the APIs build on — writes that reach the leader from any node,
//! linearizable read barriers (ReadIndex), stale-read bounds and membership changes.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use openraft::error::{CheckIsLeaderError, ClientWriteError, RaftError};
use openraft::{ChangeMembers, ServerState};
use waymark_proto::pb;

use crate::leases::LeaseKeeper;
use crate::metrics::Metrics;
use crate::network::peers::PeerChannels;
use crate::network::{decode, encode};
use crate::raft_types::{Command, CommandResult, Member, NodeId, Raft};
use crate::store::state_machine::{SharedCatalog, StateMachineStore};
use crate::unsafe_control::{self, UnsafeControl};
use crate::watch::hub::WatchHub;

/// Why a node could not serve a request. Mapped to a gRPC status once, at the API edge.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("no leader is known to node {node_id}; the cluster may be electing one or may have lost quorum (retry, or check `waymark status` on each node)")]
    NoLeader { node_id: NodeId },
    #[error("timed out after {0:?} waiting for {1}; the cluster may have lost quorum")]
    Timeout(Duration, &'static str),
    #[error("stale read refused: node {node_id} {last_contact}; max_stale is {max_stale_ms} ms")]
    TooStale {
        node_id: NodeId,
        last_contact: String,
        max_stale_ms: u64,
    },
    #[error("leader {leader_id} at {addr} answered: {status}")]
    Leader {
        leader_id: NodeId,
        addr: String,
        status: tonic::Status,
    },
    #[error("invalid membership change: {0}")]
    Membership(String),
    #[error("node is shutting down")]
    ShuttingDown,
    #[error("raft error: {0}")]
    Raft(String),
}

/// A snapshot of the node's Raft view, for responses and status.
#[derive(Debug, Clone)]
pub struct RaftView {
    pub state: ServerState,
    pub term: u64,
    pub leader: Option<(NodeId, Option<Member>)>,
    pub last_log_index: u64,
    pub applied_index: u64,
    pub snapshot_index: u64,
    pub purged_index: u64,
    /// (node id, member, is voter), sorted by id.
    pub members: Vec<(NodeId, Member, bool)>,
    pub membership_index: u64,
    pub millis_since_quorum_ack: Option<u64>,
    /// Milliseconds since this node last heard from a leader (a leader: since a quorum
    /// acknowledged it), read once when the view is taken, so that the staleness check
    /// and the `last_contact_ms` reported with the answer are the same reading.
    pub last_contact_ms: Option<u64>,
}

impl RaftView {
    /// Client API address of the known leader, or "" when unknown.
    pub fn leader_api_addr(&self) -> String {
        self.leader
            .as_ref()
            .and_then(|(_, m)| m.as_ref())
            .map(|m| m.api_addr.clone())
            .unwrap_or_default()
    }
}

pub struct Node {
    pub id: NodeId,
    pub raft: Raft,
    pub catalog: SharedCatalog,
    pub metrics: Arc<Metrics>,
    pub peers: PeerChannels,
    /// Highest committed index this node has heard of (saved by the log store).
    committed: Arc<AtomicU64>,
    /// When this node last accepted a message from a leader (followers and learners).
    leader_contact: Mutex<Option<Instant>>,
    request_timeout: Duration,
    /// Applied changes, for watch streams.
    pub hub: Arc<WatchHub>,
    /// Lease deadlines and critical timers (acted on while leader).
    pub leases: LeaseKeeper,
    /// A deliberately unsafe behaviour for the Jepsen harness (normally `None`).
    pub unsafe_control: Option<UnsafeControl>,
}

impl Node {
    /// `state_machine` supplies the read views (catalog and watch hub) this node serves.
    pub fn new(
        id: NodeId,
        raft: Raft,
        state_machine: &StateMachineStore,
        metrics: Arc<Metrics>,
        peers: PeerChannels,
        committed: Arc<AtomicU64>,
        request_timeout: Duration,
    ) -> Self {
        Self {
            id,
            raft,
            catalog: state_machine.catalog(),
            hub: state_machine.hub(),
            metrics,
            peers,
            committed,
            leader_contact: Mutex::new(None),
            request_timeout,
            leases: LeaseKeeper::default(),
            unsafe_control: None,
        }
    }

    /// Turns on a deliberately unsafe behaviour (see `unsafe_control.rs`).
    pub fn with_unsafe_control(mut self, control: Option<UnsafeControl>) -> Self {
        self.unsafe_control = control;
        self
    }

    pub fn request_timeout(&self) -> Duration {
        self.request_timeout
    }

    /// Renews a lease from now: on the leader after confirming leadership with a
    /// quorum (so a deposed leader cannot promise time it does not have), elsewhere by
    /// forwarding to the leader. Returns the TTL granted, 0 if the lease is gone.
    pub async fn keep_alive(&self, lease_id: u64) -> Result<u64, NodeError> {
        let view = self.view();
        match view.leader {
            Some((id, _)) if id == self.id => {
                self.read_index_as_leader().await?;
                Ok(self.leases.renew(self, lease_id).unwrap_or(0))
            }
            Some((leader_id, Some(leader))) => {
                let as_leader_error = |status: tonic::Status| NodeError::Leader {
                    leader_id,
                    addr: leader.raft_addr.clone(),
                    status,
                };
                let mut client = self
                    .peers
                    .raft_client(&leader.raft_addr)
                    .map_err(as_leader_error)?;
                let reply = tokio::time::timeout(
                    self.request_timeout,
                    client.forward_keep_alive(pb::KeepAliveRequest { lease_id }),
                )
                .await
                .map_err(|_| {
                    NodeError::Timeout(self.request_timeout, "the leader to renew the lease")
                })?
                .map_err(as_leader_error)?;
                Ok(reply.into_inner().ttl_ms)
            }
            _ => Err(NodeError::NoLeader { node_id: self.id }),
        }
    }

    /// Leader side of a forwarded keep-alive.
    pub async fn keep_alive_as_leader(&self, lease_id: u64) -> Result<u64, NodeError> {
        self.read_index_as_leader().await?;
        Ok(self.leases.renew(self, lease_id).unwrap_or(0))
    }

    /// Called by the Raft service when a current leader's message was accepted.
    pub fn record_leader_contact(&self) {
        *self.leader_contact.lock().expect("contact lock poisoned") = Some(Instant::now());
    }

    pub fn view(&self) -> RaftView {
        let m = self.raft.metrics();
        let m = m.borrow();
        let membership = m.membership_config.membership();
        let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
        let members = membership
            .nodes()
            .map(|(id, node)| (*id, node.clone(), voters.contains(id)))
            .collect();
        let leader = m
            .current_leader
            .map(|id| (id, membership.get_node(&id).cloned()));
        let last_contact_ms = if m.state == ServerState::Leader {
            m.millis_since_quorum_ack
        } else {
            self.leader_contact
                .lock()
                .expect("contact lock poisoned")
                .map(|t| t.elapsed().as_millis() as u64)
        };
        RaftView {
            last_contact_ms,
            state: m.state,
            term: m.current_term,
            leader,
            last_log_index: m.last_log_index.unwrap_or(0),
            applied_index: m.last_applied.map(|l| l.index).unwrap_or(0),
            snapshot_index: m.snapshot.map(|l| l.index).unwrap_or(0),
            purged_index: m.purged.map(|l| l.index).unwrap_or(0),
            members,
            membership_index: m.membership_config.log_id().map(|l| l.index).unwrap_or(0),
            millis_since_quorum_ack: m.millis_since_quorum_ack,
        }
    }

    /// Highest log index known committed (never below what is applied).
    pub fn commit_index(&self, view: &RaftView) -> u64 {
        self.committed
            .load(Ordering::Relaxed)
            .max(view.applied_index)
    }

    /// Milliseconds since this node last heard from a leader; for a leader, since a
    /// quorum last acknowledged it. `None` if it never has.
    pub fn last_contact_ms(&self, view: &RaftView) -> Option<u64> {
        view.last_contact_ms
    }

    /// Like `last_contact_ms`, without building a full `RaftView` (DNS asks per query).
    pub fn leader_contact_age(&self) -> Option<u64> {
        let (state, quorum_ack) = {
            let m = self.raft.metrics();
            let m = m.borrow();
            (m.state, m.millis_since_quorum_ack)
        };
        if state == ServerState::Leader {
            return quorum_ack;
        }
        self.leader_contact
            .lock()
            .expect("contact lock poisoned")
            .map(|t| t.elapsed().as_millis() as u64)
    }

    /// Refuses a stale read when this node has not heard from a leader within
    /// `max_stale_ms` (0 = no bound).
    pub fn check_staleness(&self, view: &RaftView, max_stale_ms: u64) -> Result<(), NodeError> {
        if max_stale_ms == 0 {
            return Ok(());
        }
        match self.last_contact_ms(view) {
            Some(ms) if ms <= max_stale_ms => Ok(()),
            other => Err(NodeError::TooStale {
                node_id: self.id,
                last_contact: other.map_or_else(
                    || "has not heard from a leader since it started".to_string(),
                    |ms| format!("last heard from a leader {ms} ms ago"),
                ),
                max_stale_ms,
            }),
        }
    }

    /// Proposes `cmd` and waits until it is committed and applied, forwarding it to the
    /// leader when this node is not the leader.
    pub async fn write(&self, cmd: Command) -> Result<(u64, CommandResult), NodeError> {
        if let Some(acked) = self.early_ack(&cmd).await? {
            return Ok(acked);
        }
        let deadline = Instant::now() + self.request_timeout;
        loop {
            let attempt =
                tokio::time::timeout_at(deadline.into(), self.raft.client_write(cmd.clone()));
            match attempt.await {
                Err(_) => {
                    return Err(NodeError::Timeout(
                        self.request_timeout,
                        "the write to commit",
                    ))
                }
                Ok(Ok(resp)) => return Ok((resp.log_id.index, resp.data)),
                Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f)))) => {
                    match (f.leader_id, f.leader_node) {
                        (Some(id), Some(node)) if id != self.id => {
                            return self.forward_write(id, &node, &cmd, deadline).await
                        }
                        _ => self.wait_for_leader(deadline).await?,
                    }
                }
                Ok(Err(RaftError::APIError(ClientWriteError::ChangeMembershipError(e)))) => {
                    return Err(NodeError::Raft(e.to_string()))
                }
                Ok(Err(RaftError::Fatal(e))) => return Err(fatal(e)),
            }
        }
    }

    async fn forward_write(
        &self,
        leader_id: NodeId,
        leader: &Member,
        cmd: &Command,
        deadline: Instant,
    ) -> Result<(u64, CommandResult), NodeError> {
        let as_leader_error = |status: tonic::Status| NodeError::Leader {
            leader_id,
            addr: leader.raft_addr.clone(),
            status,
        };
        let mut client = self
            .peers
            .raft_client(&leader.raft_addr)
            .map_err(as_leader_error)?;
        let payload = pb::RaftPayload {
            data: encode(cmd).map_err(as_leader_error)?,
        };
        let reply = tokio::time::timeout_at(deadline.into(), client.forward_write(payload))
            .await
            .map_err(|_| {
                NodeError::Timeout(self.request_timeout, "the leader to commit the write")
            })?
            .map_err(as_leader_error)?;
        decode(&reply.into_inner().data).map_err(as_leader_error)
    }

    /// Leader side of a forwarded write: commit it here, never forward again.
    pub async fn write_as_leader(&self, cmd: Command) -> Result<(u64, CommandResult), NodeError> {
        if let Some(acked) = self.early_ack(&cmd).await? {
            return Ok(acked);
        }
        let attempt = tokio::time::timeout(self.request_timeout, self.raft.client_write(cmd));
        match attempt.await {
            Err(_) => Err(NodeError::Timeout(
                self.request_timeout,
                "the write to commit",
            )),
            Ok(Ok(resp)) => Ok((resp.log_id.index, resp.data)),
            Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(_)))) => {
                Err(NodeError::NoLeader { node_id: self.id })
            }
            Ok(Err(RaftError::APIError(e))) => Err(NodeError::Raft(e.to_string())),
            Ok(Err(RaftError::Fatal(e))) => Err(fatal(e)),
        }
    }

    /// UNSAFE CONTROL (`early-ack`): on a node that believes it is the leader, hands a
    /// client write to Raft without waiting for it to commit, and answers with the
    /// result it would have had at the next log index. `None`: take the normal path.
    async fn early_ack(&self, cmd: &Command) -> Result<Option<(u64, CommandResult)>, NodeError> {
        if self.unsafe_control != Some(UnsafeControl::EarlyAck) {
            return Ok(None);
        }
        let view = self.view();
        if view.state != ServerState::Leader {
            return Ok(None);
        }
        let index = view.last_log_index + 1;
        let made_up = {
            let catalog = self.catalog.read().expect("catalog lock poisoned");
            unsafe_control::early_ack_result(cmd, &catalog, index)
        };
        let Some(result) = made_up else {
            return Ok(None);
        };
        let outcome = self
            .raft
            .client_write_ff(cmd.clone())
            .await
            .map_err(fatal)?;
        // Keep the receiver until Raft answers (so it has someone to answer to), but
        // never tell the client what that answer was.
        tokio::spawn(async move {
            let _ = outcome.await;
        });
        Ok(Some((index, result)))
    }

    /// Linearizable read barrier (ReadIndex): returns once this node's applied state
    /// includes every write committed before the call began. On a follower the read
    /// index comes from the leader; the read is still answered locally.
    pub async fn read_barrier(&self) -> Result<u64, NodeError> {
        if self.unsafe_control == Some(UnsafeControl::StaleReads) {
            // UNSAFE CONTROL (`stale-reads`): no ReadIndex, no leader confirmation;
            // whatever this replica has applied is passed off as linearizable.
            return Ok(self
                .catalog
                .read()
                .expect("catalog lock poisoned")
                .applied_index());
        }
        let deadline = Instant::now() + self.request_timeout;
        loop {
            let attempt = tokio::time::timeout_at(deadline.into(), self.raft.get_read_log_id());
            let read_index = match attempt.await {
                Err(_) => {
                    return Err(NodeError::Timeout(
                        self.request_timeout,
                        "a quorum to confirm the leader",
                    ))
                }
                Ok(Ok((read_log_id, _))) => read_log_id.map(|l| l.index).unwrap_or(0),
                Ok(Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(f)))) => {
                    match (f.leader_id, f.leader_node) {
                        (Some(id), Some(node)) if id != self.id => {
                            self.remote_read_index(id, &node, deadline).await?
                        }
                        _ => {
                            self.wait_for_leader(deadline).await?;
                            continue;
                        }
                    }
                }
                Ok(Err(RaftError::APIError(CheckIsLeaderError::QuorumNotEnough(e)))) => {
                    return Err(NodeError::Raft(format!(
                        "leader could not reach a quorum: {e}"
                    )))
                }
                Ok(Err(RaftError::Fatal(e))) => return Err(fatal(e)),
            };
            self.wait_applied(read_index, deadline).await?;
            return Ok(read_index);
        }
    }

    /// Leader side of ReadIndex: confirm leadership with a quorum, return the index.
    pub async fn read_index_as_leader(&self) -> Result<u64, NodeError> {
        let attempt = tokio::time::timeout(self.request_timeout, self.raft.get_read_log_id());
        match attempt.await {
            Err(_) => Err(NodeError::Timeout(
                self.request_timeout,
                "a quorum to confirm the leader",
            )),
            Ok(Ok((read_log_id, _))) => Ok(read_log_id.map(|l| l.index).unwrap_or(0)),
            Ok(Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(_)))) => {
                Err(NodeError::NoLeader { node_id: self.id })
            }
            Ok(Err(RaftError::APIError(e))) => Err(NodeError::Raft(e.to_string())),
            Ok(Err(RaftError::Fatal(e))) => Err(fatal(e)),
        }
    }

    async fn remote_read_index(
        &self,
        leader_id: NodeId,
        leader: &Member,
        deadline: Instant,
    ) -> Result<u64, NodeError> {
        let as_leader_error = |status: tonic::Status| NodeError::Leader {
            leader_id,
            addr: leader.raft_addr.clone(),
            status,
        };
        let mut client = self
            .peers
            .raft_client(&leader.raft_addr)
            .map_err(as_leader_error)?;
        let reply =
            tokio::time::timeout_at(deadline.into(), client.read_index(pb::ReadIndexRequest {}))
                .await
                .map_err(|_| NodeError::Timeout(self.request_timeout, "the leader's read index"))?
                .map_err(as_leader_error)?;
        Ok(reply.into_inner().read_index)
    }

    async fn wait_applied(&self, index: u64, deadline: Instant) -> Result<(), NodeError> {
        if self
            .catalog
            .read()
            .expect("catalog lock poisoned")
            .applied_index()
            >= index
        {
            return Ok(());
        }
        let remaining = deadline.saturating_duration_since(Instant::now());
        self.raft
            .wait(Some(remaining))
            .applied_index_at_least(Some(index), "read index")
            .await
            .map(|_| ())
            .map_err(|e| match e {
                openraft::metrics::WaitError::Timeout(..) => NodeError::Timeout(
                    self.request_timeout,
                    "this node to apply up to the read index",
                ),
                openraft::metrics::WaitError::ShuttingDown => NodeError::ShuttingDown,
            })
    }

    async fn wait_for_leader(&self, deadline: Instant) -> Result<(), NodeError> {
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err(NodeError::NoLeader { node_id: self.id });
        }
        let me = self.id;
        // Wait for a leader other than a stale view of ourselves to appear; a short pause
        // keeps a retry loop from spinning while an election settles.
        let res = self
            .raft
            .wait(Some(remaining))
            .metrics(
                |m| {
                    m.current_leader.is_some()
                        && (m.current_leader != Some(me) || m.state == ServerState::Leader)
                },
                "a leader",
            )
            .await;
        tokio::time::sleep(Duration::from_millis(20).min(remaining)).await;
        res.map(|_| ())
            .map_err(|_| NodeError::NoLeader { node_id: self.id })
    }

    /// Adds a node as a learner, waits for it to catch up, then promotes it to voter.
    pub async fn add_member(&self, id: NodeId, member: Member) -> Result<u64, NodeError> {
        if let Some(fwd) = self.leader_api_if_not_leader()? {
            return self
                .forward_membership(fwd, |mut c| async move {
                    c.add_member(pb::AddMemberRequest {
                        node_id: id,
                        api_addr: member.api_addr,
                        raft_addr: member.raft_addr,
                    })
                    .await
                    .map(|r| r.into_inner().index)
                })
                .await;
        }
        self.raft
            .add_learner(id, member, true)
            .await
            .map_err(membership_error)?;
        let resp = self
            .raft
            .change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([id])), false)
            .await
            .map_err(membership_error)?;
        Ok(resp.log_id.index)
    }

    /// Removes a voter or learner from the cluster.
    pub async fn remove_member(&self, id: NodeId) -> Result<u64, NodeError> {
        if let Some(fwd) = self.leader_api_if_not_leader()? {
            return self
                .forward_membership(fwd, |mut c| async move {
                    c.remove_member(pb::RemoveMemberRequest { node_id: id })
                        .await
                        .map(|r| r.into_inner().index)
                })
                .await;
        }
        let view = self.view();
        let change = match view.members.iter().find(|(nid, _, _)| *nid == id) {
            None => return Err(NodeError::Membership(format!("node {id} is not a member"))),
            Some((_, _, true)) => ChangeMembers::RemoveVoters(BTreeSet::from([id])),
            Some((_, _, false)) => ChangeMembers::RemoveNodes(BTreeSet::from([id])),
        };
        let resp = self
            .raft
            .change_membership(change, false)
            .await
            .map_err(membership_error)?;
        Ok(resp.log_id.index)
    }

    /// `Some(leader)` when membership calls must go to another node's API.
    fn leader_api_if_not_leader(&self) -> Result<Option<(NodeId, String)>, NodeError> {
        let view = self.view();
        match view.leader {
            Some((id, _)) if id == self.id => Ok(None),
            Some((id, Some(m))) => Ok(Some((id, m.api_addr))),
            _ => Err(NodeError::NoLeader { node_id: self.id }),
        }
    }

    async fn forward_membership<F, Fut>(
        &self,
        (leader_id, addr): (NodeId, String),
        call: F,
    ) -> Result<u64, NodeError>
    where
        F: FnOnce(pb::cluster_client::ClusterClient<tonic::transport::Channel>) -> Fut,
        Fut: std::future::Future<Output = Result<u64, tonic::Status>>,
    {
        let as_leader_error = |status: tonic::Status| NodeError::Leader {
            leader_id,
            addr: addr.clone(),
            status,
        };
        let channel = self.peers.channel(&addr).map_err(as_leader_error)?;
        call(pb::cluster_client::ClusterClient::new(channel))
            .await
            .map_err(as_leader_error)
    }

    /// Initializes a brand-new cluster with the given voters. A node that already has
    /// Raft state (or was initialized by a peer first) keeps it.
    pub async fn initialize(&self, voters: BTreeMap<NodeId, Member>) -> Result<(), NodeError> {
        match self.raft.initialize(voters).await {
            Ok(()) => Ok(()),
            Err(RaftError::APIError(openraft::error::InitializeError::NotAllowed(_))) => Ok(()),
            Err(RaftError::APIError(e)) => Err(NodeError::Membership(e.to_string())),
            Err(RaftError::Fatal(e)) => Err(fatal(e)),
        }
    }
}

fn fatal(e: openraft::error::Fatal<NodeId>) -> NodeError {
    match e {
        openraft::error::Fatal::Stopped => NodeError::ShuttingDown,
        other => NodeError::Raft(other.to_string()),
    }
}

fn membership_error(e: RaftError<NodeId, ClientWriteError<NodeId, Member>>) -> NodeError {
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(_)) => {
            NodeError::Membership("leadership changed during the membership change; retry".into())
        }
        RaftError::APIError(ClientWriteError::ChangeMembershipError(e)) => {
            NodeError::Membership(e.to_string())
        }
        RaftError::Fatal(e) => fatal(e),
    }
}
