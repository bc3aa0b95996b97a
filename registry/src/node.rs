//! One running registry node: the Raft handle, the catalog read view, and the
//! operations the APIs build on — writes that reach the leader from any node,
//! linearizable read barriers (ReadIndex), stale-read bounds and membership changes.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use openraft::async_runtime::WatchReceiver;
use openraft::error::{ClientWriteError, LinearizableReadError, RaftError};
use openraft::{ChangeMembers, Instant as _, LinearizerOption, ReadPolicy, ServerState};
use waymark_proto::errors::{Applied, ErrorDetail, Reason};
use waymark_proto::pb;

use crate::acl::jwks::{JwksCache, JwksSettings};
use crate::acl::AclConfig;
use crate::audit::AuditLog;
use crate::codec;
use crate::identity::MeshConfig;
use crate::leader_timers::LeaderTimers;
use crate::limits::{Limits, LimitsConfig};
use crate::metrics::Metrics;
use crate::model::{Command, CommandResult};
use crate::network::forward_link::Forwarder;
use crate::network::peers::PeerChannels;
use crate::proposer::{Paused, Proposer, WriteError};
use crate::raft_types::{Member, NodeId, Raft, RaftMetrics, TypeConfig};
use crate::read_index::Coalescer;
use crate::store::state_machine::{BackupSource, SharedCatalog, StateMachineStore};
use crate::unsafe_control::{self, UnsafeControl};
use crate::watch::hub::WatchHub;

/// Why a node could not serve a request. Mapped to a gRPC status once, at the API edge.
/// (Clone: one batched ReadIndex answers many callers, failures included.)
#[derive(Debug, Clone, thiserror::Error)]
pub enum NodeError {
    #[error("no leader is known to node {node_id}; the cluster may be electing one or may have lost quorum (retry, or check `waymark status` on each node)")]
    NoLeader { node_id: NodeId },
    #[error("timed out after {waited:?} waiting for {what}; the cluster may have lost quorum")]
    Timeout {
        waited: Duration,
        what: &'static str,
        /// Whether a write may have committed regardless.
        applied: Applied,
    },
    #[error("stale read refused: node {node_id} {last_contact}; max_stale is {max_stale_ms} ms")]
    TooStale {
        node_id: NodeId,
        last_contact: String,
        max_stale_ms: u64,
    },
    #[error("node {node_id} has applied up to index {applied}, behind from_index {wanted}, and did not catch up within {waited:?}; try another node")]
    Behind {
        node_id: NodeId,
        applied: u64,
        wanted: u64,
        waited: Duration,
    },
    #[error("could not reach leader {leader_id} at {addr}: {reason}")]
    LeaderUnreachable {
        leader_id: NodeId,
        addr: String,
        reason: String,
        applied: Applied,
    },
    #[error("leader {leader_id} at {addr} answered: {}", .status.message())]
    Leader {
        leader_id: NodeId,
        addr: String,
        status: tonic::Status,
    },
    #[error("the leader could not reach a quorum: {0}")]
    QuorumLost(String),
    #[error("invalid membership change: {0}")]
    Membership(String),
    #[error("node is shutting down")]
    ShuttingDown,
    #[error("internal error: {0}")]
    Internal(String),
    /// A command the leader refused to propose (`api/admission.rs`).
    #[error(transparent)]
    Invalid(#[from] waymark_proto::ValidationError),
}

impl NodeError {
    fn timeout(waited: Duration, what: &'static str, applied: Applied) -> Self {
        NodeError::Timeout {
            waited,
            what,
            applied,
        }
    }
}

/// A committed write: the index it was applied at and its typed outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written<T> {
    pub index: u64,
    pub outcome: T,
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
    /// Gathers this node's writes as leader into shared log entries (group commit).
    proposer: Proposer,
    /// As a follower, the stream that carries client writes to the leader.
    forwarder: Forwarder,
    /// Batched ReadIndex: as leader, the quorum confirmations; as follower, the calls
    /// for the leader's read index.
    leader_reads: Coalescer<Result<u64, NodeError>>,
    forwarded_reads: Coalescer<Result<u64, NodeError>>,
    /// Highest committed index this node has heard of (saved by the log store).
    committed: Arc<AtomicU64>,
    /// When this node last accepted a message from a leader (followers and learners).
    leader_contact: Mutex<Option<Instant>>,
    request_timeout: Duration,
    /// Applied changes, for watch streams.
    pub hub: Arc<WatchHub>,
    /// Lease deadlines and critical timers (acted on while leader).
    pub timers: std::sync::Mutex<LeaderTimers>,
    /// A deliberately unsafe behaviour for the Jepsen harness (normally `None`).
    pub unsafe_control: Option<UnsafeControl>,
    /// Reads backups from the state machine's storage.
    backups: BackupSource,
    /// The `[acl]` settings the API edge authenticates callers by.
    pub acl: AclConfig,
    /// Where accepted and refused writes are recorded (`[audit]`; off by default).
    pub audit: AuditLog,
    /// Per-caller request rate and watch-stream limits (`[limits]`).
    pub limits: Limits,
    /// Keys fetched from auth methods' `jwks_url`s, for the logins this node serves.
    pub jwks: Arc<JwksCache>,
    /// The `[mesh]` settings: the trust domain of a new CA, leaf lifetime.
    pub mesh: MeshConfig,
    /// Per-caller limits on `Identity.Sign` (from `[mesh]`).
    pub sign_limits: Limits,
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
            proposer: Proposer::start(raft.clone(), metrics.clone()),
            forwarder: Forwarder::new(peers.clone(), metrics.clone()),
            leader_reads: Coalescer::default(),
            forwarded_reads: Coalescer::default(),
            jwks: Arc::new(JwksCache::new(
                JwksSettings::from_acl(&AclConfig::default()),
                metrics.clone(),
            )),
            raft,
            catalog: state_machine.catalog(),
            hub: state_machine.hub(),
            metrics,
            peers,
            committed,
            leader_contact: Mutex::new(None),
            request_timeout,
            timers: std::sync::Mutex::new(LeaderTimers::default()),
            unsafe_control: None,
            backups: state_machine.backup_source(),
            acl: AclConfig::default(),
            audit: AuditLog::default(),
            limits: Limits::new(LimitsConfig::default()),
            sign_limits: MeshConfig::default().sign_limits(),
            mesh: MeshConfig::default(),
        }
    }

    /// Sets the mesh identity settings (`[mesh]`).
    pub fn with_mesh(mut self, mesh: MeshConfig) -> Self {
        self.sign_limits = mesh.sign_limits();
        self.mesh = mesh;
        self
    }

    /// Sets how callers are authenticated and authorized (`[acl]`).
    pub fn with_acl(mut self, acl: AclConfig) -> Self {
        self.jwks = Arc::new(JwksCache::new(
            JwksSettings::from_acl(&acl),
            self.metrics.clone(),
        ));
        self.acl = acl;
        self
    }

    /// Sets the per-caller limits (`[limits]`).
    pub fn with_limits(mut self, limits: LimitsConfig) -> Self {
        self.limits = Limits::new(limits);
        self
    }

    /// Sets where writes are audited (`[audit]`).
    pub fn with_audit(mut self, audit: AuditLog) -> Self {
        self.audit = audit;
        self
    }

    /// Turns on a deliberately unsafe behaviour (see `unsafe_control.rs`).
    pub fn with_unsafe_control(mut self, control: Option<UnsafeControl>) -> Self {
        self.unsafe_control = control;
        if control == Some(UnsafeControl::LeaseEarly) {
            self.timers = std::sync::Mutex::new(LeaderTimers::without_new_leader_extension());
        }
        self
    }

    pub fn request_timeout(&self) -> Duration {
        self.request_timeout
    }

    /// Renews a lease from now: on the leader after confirming its leadership with a
    /// quorum (so a deposed leader cannot promise time it does not have), elsewhere by
    /// forwarding to the leader. Returns the TTL granted, 0 if the lease is gone (or
    /// expired on the leader's clock, its end decided).
    pub async fn keep_alive(&self, lease_id: u64) -> Result<u64, NodeError> {
        let view = self.view();
        match view.leader {
            Some((id, _)) if id == self.id => self.keep_alive_as_leader(lease_id).await,
            Some((leader_id, Some(leader))) => {
                let deadline = Instant::now() + self.request_timeout;
                let call = |mut c: RaftClient| async move {
                    c.forward_keep_alive(pb::KeepAliveRequest { lease_id })
                        .await
                };
                let reply = self
                    .call_leader(
                        leader_id,
                        &leader,
                        deadline,
                        "the leader to renew the lease",
                        Applied::No,
                        call,
                    )
                    .await?;
                Ok(reply.ttl_ms)
            }
            _ => Err(NodeError::NoLeader { node_id: self.id }),
        }
    }

    /// Leader side of a keep-alive (direct or forwarded).
    pub async fn keep_alive_as_leader(&self, lease_id: u64) -> Result<u64, NodeError> {
        self.read_index_as_leader().await?;
        let ttl = self
            .catalog
            .read()
            .expect("catalog lock poisoned")
            .lease(lease_id)
            .map(|l| l.ttl_ms);
        let Some(ttl) = ttl else { return Ok(0) };
        // Renewed only now, after the quorum check: never promise time not held. A
        // lease this leader already found expired is gone for the client (its end
        // may be committing), so it is answered as gone.
        let renewed =
            self.timers
                .lock()
                .expect("timers lock poisoned")
                .renew(lease_id, ttl, Instant::now());
        Ok(if renewed { ttl } else { 0 })
    }

    /// Calls the leader's Raft listener, bounded by `deadline`. `applied` says whether
    /// a call lost on the way (timeout) may have taken effect.
    async fn call_leader<T, F, Fut>(
        &self,
        leader_id: NodeId,
        leader: &Member,
        deadline: Instant,
        what: &'static str,
        applied: Applied,
        call: F,
    ) -> Result<T, NodeError>
    where
        F: FnOnce(RaftClient) -> Fut,
        Fut: std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        let client = self
            .peers
            .raft_client(&leader.raft_addr)
            .map_err(|status| NodeError::LeaderUnreachable {
                leader_id,
                addr: leader.raft_addr.clone(),
                reason: status.message().to_string(),
                applied: Applied::No,
            })?;
        let reply = tokio::time::timeout_at(deadline.into(), call(client))
            .await
            .map_err(|_| NodeError::timeout(self.request_timeout, what, applied))?;
        reply
            .map(tonic::Response::into_inner)
            .map_err(|status| NodeError::Leader {
                leader_id,
                addr: leader.raft_addr.clone(),
                status,
            })
    }

    /// Called by the Raft service when a current leader's message was accepted.
    pub fn record_leader_contact(&self) {
        *self.leader_contact.lock().expect("contact lock poisoned") = Some(Instant::now());
    }

    pub fn view(&self) -> RaftView {
        let m = self.raft.metrics();
        let m = m.borrow_watched();
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
            millis_since_quorum_ack(&m)
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
            millis_since_quorum_ack: millis_since_quorum_ack(&m),
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
        if self.unsafe_control == Some(UnsafeControl::StaleBound) {
            // UNSAFE CONTROL (`stale-bound`): always "just heard from a leader", so no
            // stale read is refused for its bound and none reports its real age.
            return Some(0);
        }
        view.last_contact_ms
    }

    /// Like `last_contact_ms`, without building a full `RaftView` (DNS asks per query).
    pub fn leader_contact_age(&self) -> Option<u64> {
        if self.unsafe_control == Some(UnsafeControl::DnsGuardOff) {
            // UNSAFE CONTROL (`dns-guard-off`): DNS's staleness guard never trips.
            return Some(0);
        }
        let (state, quorum_ack) = {
            let m = self.raft.metrics();
            let m = m.borrow_watched();
            (m.state, millis_since_quorum_ack(&m))
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

    /// Proposes `cmd`, forwarding it to the leader when this node is not the leader,
    /// and returns its typed outcome once it is committed and applied.
    pub async fn propose<T>(&self, cmd: Command) -> Result<Written<T>, NodeError>
    where
        T: TryFrom<CommandResult, Error = CommandResult>,
    {
        let name = cmd.name();
        let (index, result) = self.write(cmd).await?;
        typed(name, index, result)
    }

    /// Like `propose`, on the leader only (forwarded writes, leader decisions).
    pub async fn propose_as_leader<T>(&self, cmd: Command) -> Result<Written<T>, NodeError>
    where
        T: TryFrom<CommandResult, Error = CommandResult>,
    {
        let name = cmd.name();
        let (index, result) = self.write_as_leader(cmd).await?;
        typed(name, index, result)
    }

    /// Proposes `cmd` and waits until it is committed and applied, forwarding it to the
    /// leader when this node is not the leader.
    ///
    /// A follower that knows the leader forwards at once, without asking its own Raft
    /// core first; the leader still refuses a write if it has been deposed, so a stale
    /// view of who leads costs a retry, never a wrong answer.
    pub async fn write(&self, cmd: Command) -> Result<(u64, CommandResult), NodeError> {
        if let Some(acked) = self.early_ack(&cmd).await? {
            return Ok(acked);
        }
        let deadline = Instant::now() + self.request_timeout;
        loop {
            let leader = match self.leader_hint() {
                Some((id, _)) if id == self.id => None,
                Some((id, Some(member))) => Some((id, member)),
                Some((_, None)) | None => {
                    self.wait_for_leader(deadline).await?;
                    continue;
                }
            };
            if let Some((id, member)) = leader {
                match self.forward_write(id, &member, &cmd, deadline).await {
                    // It stepped down (a handoff, an election) before taking the write:
                    // nothing applied, so it goes to the next leader instead.
                    Err(NodeError::Leader { status, .. }) if no_longer_leader(&status) => {
                        self.wait_for_leader_other_than(id, deadline).await?;
                        continue;
                    }
                    answer => return answer,
                }
            }
            match self.propose_here(cmd.clone(), deadline).await? {
                Ok(written) => return Ok(written),
                Err(ClientWriteError::ForwardToLeader(f)) => match (f.leader_id, f.leader_node) {
                    (Some(id), Some(node)) if id != self.id => {
                        return self.forward_write(id, &node, &cmd, deadline).await
                    }
                    _ => self.wait_for_leader(deadline).await?,
                },
                Err(ClientWriteError::LogEntryDiscarded(_)) => return Err(discarded()),
                Err(
                    e @ (ClientWriteError::ChangeMembershipError(_)
                    | ClientWriteError::PreconditionFailed(_)),
                ) => return Err(NodeError::Internal(e.to_string())),
            }
        }
    }

    /// The leader this node knows of, if any, with its address when it is a member.
    fn leader_hint(&self) -> Option<(NodeId, Option<Member>)> {
        let m = self.raft.metrics();
        let m = m.borrow_watched();
        let id = m.current_leader?;
        Some((id, m.membership_config.membership().get_node(&id).cloned()))
    }

    /// Stops proposing new entries until the guard is dropped, once those in flight are
    /// answered (a leadership handoff; see `Proposer::pause`).
    pub async fn pause_proposals(&self) -> Option<Paused> {
        self.proposer.pause().await
    }

    /// Hands `cmd` to this node's Raft through the group-commit proposer, bounded by
    /// `deadline`. The inner error is Raft refusing the write (not the leader, ...).
    async fn propose_here(
        &self,
        cmd: Command,
        deadline: Instant,
    ) -> Result<Result<(u64, CommandResult), ClientWriteError<TypeConfig>>, NodeError> {
        crate::api::admission::check_command(&cmd)?;
        let answer = tokio::time::timeout_at(deadline.into(), self.proposer.write(cmd)).await;
        match answer {
            Err(_) => Err(NodeError::timeout(
                self.request_timeout,
                "the write to commit",
                Applied::Maybe,
            )),
            Ok(None) => Err(NodeError::ShuttingDown),
            Ok(Some(Ok(written))) => Ok(Ok(written)),
            Ok(Some(Err(WriteError::APIError(e)))) => Ok(Err(e)),
            Ok(Some(Err(WriteError::Fatal(e)))) => Err(fatal(e)),
        }
    }

    async fn forward_write(
        &self,
        leader_id: NodeId,
        leader: &Member,
        cmd: &Command,
        deadline: Instant,
    ) -> Result<(u64, CommandResult), NodeError> {
        let command = codec::to_vec(cmd).map_err(|e| NodeError::Internal(e.to_string()))?;
        let answer = self
            .forwarder
            .send(&leader.raft_addr, command)
            .map_err(|status| NodeError::LeaderUnreachable {
                leader_id,
                addr: leader.raft_addr.clone(),
                reason: status.message().to_string(),
                applied: Applied::No,
            })?;
        let leader_failed = |status| NodeError::Leader {
            leader_id,
            addr: leader.raft_addr.clone(),
            status,
        };
        match tokio::time::timeout_at(deadline.into(), answer).await {
            Err(_) => Err(NodeError::timeout(
                self.request_timeout,
                "the leader to commit the write",
                Applied::Maybe,
            )),
            Ok(Err(_)) => Err(leader_failed(tonic::Status::unavailable(
                "the forwarding stream to the leader ended",
            ))),
            Ok(Ok(answer)) => answer.map_err(leader_failed),
        }
    }

    /// Leader side of a forwarded write: commit it here, never forward again.
    pub async fn write_as_leader(&self, cmd: Command) -> Result<(u64, CommandResult), NodeError> {
        if let Some(acked) = self.early_ack(&cmd).await? {
            return Ok(acked);
        }
        let deadline = Instant::now() + self.request_timeout;
        match self.propose_here(cmd, deadline).await? {
            Ok(written) => Ok(written),
            Err(ClientWriteError::ForwardToLeader(_)) => {
                Err(NodeError::NoLeader { node_id: self.id })
            }
            Err(ClientWriteError::LogEntryDiscarded(_)) => Err(discarded()),
            Err(e) => Err(NodeError::Internal(e.to_string())),
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
        // No responder: Raft's answer goes nowhere, and the client never hears it.
        self.raft
            .client_write_ff(cmd.clone(), None)
            .await
            .map_err(fatal)?;
        Ok(Some((index, result)))
    }

    /// Linearizable read barrier (ReadIndex): returns once this node's applied state
    /// includes every write committed before the call began. On a follower the read
    /// index comes from the leader; the read is still answered locally. Concurrent
    /// reads share confirmations (`read_index.rs`).
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
            let read_index = match self.leader_hint() {
                Some((id, _)) if id == self.id => {
                    let confirmed =
                        tokio::time::timeout_at(deadline.into(), self.read_index_as_leader());
                    match confirmed.await {
                        // Deposed since: find the new leader and ask again.
                        Ok(Err(NodeError::NoLeader { .. })) => {
                            self.wait_for_leader(deadline).await?;
                            continue;
                        }
                        Ok(other) => other?,
                        Err(_) => {
                            return Err(NodeError::timeout(
                                self.request_timeout,
                                "a quorum to confirm the leader",
                                Applied::No,
                            ))
                        }
                    }
                }
                Some((id, Some(leader))) => {
                    match self.remote_read_index(id, &leader, deadline).await {
                        // The leader this node knew of is gone (killed, partitioned):
                        // a read is safe to retry, so wait out the election instead.
                        Err(NodeError::Leader { status, .. })
                            if status.code() == tonic::Code::Unavailable
                                && Instant::now() < deadline =>
                        {
                            self.wait_for_leader(deadline).await?;
                            continue;
                        }
                        Err(NodeError::LeaderUnreachable { .. }) if Instant::now() < deadline => {
                            self.wait_for_leader(deadline).await?;
                            continue;
                        }
                        other => other?,
                    }
                }
                Some((_, None)) | None => {
                    self.wait_for_leader(deadline).await?;
                    continue;
                }
            };
            self.wait_applied(read_index, deadline).await?;
            return Ok(read_index);
        }
    }

    /// Leader side of ReadIndex: confirm leadership with a quorum, return the index.
    /// One confirmation serves every caller that arrived before it started.
    pub async fn read_index_as_leader(&self) -> Result<u64, NodeError> {
        self.leader_reads.run(|| self.confirm_leadership()).await
    }

    async fn confirm_leadership(&self) -> Result<u64, NodeError> {
        // ReadIndex: a quorum acknowledges a heartbeat sent after this call (no lease).
        let option =
            LinearizerOption::from(ReadPolicy::ReadIndex).with_wait_timeout(self.request_timeout);
        let attempt = tokio::time::timeout(self.request_timeout, self.raft.get_read_log_id(option));
        match attempt.await {
            Err(_) => Err(NodeError::timeout(
                self.request_timeout,
                "a quorum to confirm the leader",
                Applied::No,
            )),
            Ok(Ok((read_log_id, _))) => Ok(read_log_id.index()),
            Ok(Err(RaftError::APIError(LinearizableReadError::ForwardToLeader(_)))) => {
                Err(NodeError::NoLeader { node_id: self.id })
            }
            Ok(Err(RaftError::APIError(LinearizableReadError::QuorumNotEnough(e)))) => {
                Err(NodeError::QuorumLost(e.to_string()))
            }
            Ok(Err(RaftError::Fatal(e))) => Err(fatal(e)),
        }
    }

    /// The leader's read index, asked once for every caller that arrived before the
    /// call started (any leader's answer confirmed after that is a valid one).
    async fn remote_read_index(
        &self,
        leader_id: NodeId,
        leader: &Member,
        deadline: Instant,
    ) -> Result<u64, NodeError> {
        let ask = || async {
            let call =
                |mut c: RaftClient| async move { c.read_index(pb::ReadIndexRequest {}).await };
            let reply = self
                .call_leader(
                    leader_id,
                    leader,
                    deadline,
                    "the leader's read index",
                    Applied::No,
                    call,
                )
                .await?;
            Ok(reply.read_index)
        };
        tokio::time::timeout_at(deadline.into(), self.forwarded_reads.run(ask))
            .await
            .unwrap_or_else(|_| {
                Err(NodeError::timeout(
                    self.request_timeout,
                    "the leader's read index",
                    Applied::No,
                ))
            })
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
                openraft::metrics::WaitError::Timeout(..) => NodeError::timeout(
                    self.request_timeout,
                    "this node to apply up to the read index",
                    Applied::No,
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

    /// Waits until this node knows a leader other than `old` (bounded by `deadline`).
    async fn wait_for_leader_other_than(
        &self,
        old: NodeId,
        deadline: Instant,
    ) -> Result<(), NodeError> {
        let remaining = deadline.saturating_duration_since(Instant::now());
        self.raft
            .wait(Some(remaining))
            .metrics(
                |m| m.current_leader.is_some_and(|l| l != old),
                "a new leader",
            )
            .await
            .map(|_| ())
            .map_err(|_| NodeError::NoLeader { node_id: self.id })
    }

    /// A backup image of the replicated state, with the index it is at. `consistent`:
    /// it includes every write committed before the call (a ReadIndex first).
    pub async fn backup(&self, consistent: bool) -> Result<(u64, Vec<u8>), NodeError> {
        let wanted = if consistent {
            self.read_barrier().await?
        } else {
            0
        };
        let deadline = Instant::now() + self.request_timeout;
        loop {
            let (meta, image) = self
                .backups
                .image()
                .await
                .ok_or(NodeError::ShuttingDown)?
                .map_err(|e| NodeError::Internal(format!("building the backup: {e}")))?;
            let index = meta.last_log_id.map_or(0, |l| l.index);
            // The in-memory catalog (which the barrier waited on) is updated just
            // before the storage mirror the image is read from: wait for the mirror.
            if index >= wanted {
                return Ok((index, image));
            }
            if Instant::now() >= deadline {
                return Err(NodeError::timeout(
                    self.request_timeout,
                    "the storage mirror to reach the read index",
                    Applied::No,
                ));
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// Adds a node as a learner, waits for it to catch up, then promotes it to voter.
    /// `token`: the caller's secret, passed on when the call is forwarded to the leader.
    pub async fn add_member(
        &self,
        id: NodeId,
        member: Member,
        token: Option<&str>,
    ) -> Result<u64, NodeError> {
        if let Some(fwd) = self.leader_api_if_not_leader()? {
            let req = with_token(
                pb::AddMemberRequest {
                    node_id: id,
                    api_addr: member.api_addr,
                    raft_addr: member.raft_addr,
                },
                token,
            );
            return self
                .forward_membership(fwd, |mut c| async move {
                    c.add_member(req).await.map(|r| r.into_inner().index)
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
    pub async fn remove_member(&self, id: NodeId, token: Option<&str>) -> Result<u64, NodeError> {
        if let Some(fwd) = self.leader_api_if_not_leader()? {
            let req = with_token(pb::RemoveMemberRequest { node_id: id }, token);
            return self
                .forward_membership(fwd, |mut c| async move {
                    c.remove_member(req).await.map(|r| r.into_inner().index)
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
        let channel = self
            .peers
            .channel(&addr)
            .map_err(|status| NodeError::LeaderUnreachable {
                leader_id,
                addr: addr.clone(),
                reason: status.message().to_string(),
                applied: Applied::No,
            })?;
        call(pb::cluster_client::ClusterClient::new(channel))
            .await
            .map_err(|status| NodeError::Leader {
                leader_id,
                addr: addr.clone(),
                status,
            })
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

/// Whether a forwarded write's refusal says the node it went to no longer leads and
/// did not apply it (`write_as_leader`'s `NoLeader`).
fn no_longer_leader(status: &tonic::Status) -> bool {
    ErrorDetail::from_status(status)
        .is_some_and(|d| d.reason == Reason::NoLeader && d.applied == Applied::No)
}

/// The raft client type the forwarding calls use.
type RaftClient = pb::raft_client::RaftClient<tonic::transport::Channel>;

/// The outcome `T` of a command named `name`, or an internal error if the state
/// machine answered with another command's result (a bug).
fn typed<T>(name: &'static str, index: u64, result: CommandResult) -> Result<Written<T>, NodeError>
where
    T: TryFrom<CommandResult, Error = CommandResult>,
{
    T::try_from(result)
        .map(|outcome| Written { index, outcome })
        .map_err(|other| {
            NodeError::Internal(format!(
                "{name} at index {index} applied with another command's result {other:?}"
            ))
        })
}

/// Waits (bounded) until this node has applied `index`, so a resumed watch never
/// starts from a state older than one the client has already seen.
pub async fn wait_for_index(node: &Node, index: u64) -> Result<(), NodeError> {
    let mut applied = node.hub.applied_watch();
    let waited = node.request_timeout();
    let reached = tokio::time::timeout(waited, applied.wait_for(|a| *a >= index)).await;
    match reached {
        Ok(Ok(_)) => Ok(()),
        _ => Err(NodeError::Behind {
            node_id: node.id,
            applied: node.hub.applied_index(),
            wanted: index,
            waited,
        }),
    }
}

/// A request carrying the caller's token (for calls forwarded to the leader's API).
fn with_token<T>(msg: T, token: Option<&str>) -> tonic::Request<T> {
    let mut req = tonic::Request::new(msg);
    if let Some(value) = token.and_then(|t| format!("Bearer {t}").parse().ok()) {
        req.metadata_mut().insert("authorization", value);
    }
    req
}

/// How long ago a quorum last acknowledged this leader (metrics of a leader).
fn millis_since_quorum_ack(m: &RaftMetrics) -> Option<u64> {
    m.last_quorum_acked
        .as_ref()
        .map(|at| at.elapsed().as_millis() as u64)
}

/// The write's entry was dropped when this node took another leader's log: it may
/// still commit through that leader, so the caller cannot be told it did not apply.
fn discarded() -> NodeError {
    NodeError::timeout(
        Duration::ZERO,
        "the write, whose entry this node dropped on losing leadership (it may still commit)",
        Applied::Maybe,
    )
}

fn fatal(e: openraft::error::Fatal<TypeConfig>) -> NodeError {
    match e {
        openraft::error::Fatal::Stopped => NodeError::ShuttingDown,
        other => NodeError::Internal(other.to_string()),
    }
}

fn membership_error(e: RaftError<TypeConfig, ClientWriteError<TypeConfig>>) -> NodeError {
    match e {
        RaftError::APIError(
            ClientWriteError::ForwardToLeader(_) | ClientWriteError::LogEntryDiscarded(_),
        ) => NodeError::Membership("leadership changed during the membership change; retry".into()),
        RaftError::APIError(e) => NodeError::Membership(e.to_string()),
        RaftError::Fatal(e) => fatal(e),
    }
}
