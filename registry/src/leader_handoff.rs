//! Planned leadership handoff (Raft thesis §3.10, "leadership transfer"): a leader
//! asked to stop first hands leadership to a follower whose log is as long as its own,
//! so a rolling restart costs one vote round instead of an election timeout.
//!
//! Driven from here rather than by openraft 0.10's leader-side `transfer_leader`,
//! whose transfer cannot be abandoned once started (a failed one then costs an
//! election timeout with no heartbeats meanwhile); only the follower's election is
//! openraft's transfer election:
//! 1. pause proposals, so the log stops growing once the entries in flight are answered;
//! 2. wait for a voter whose replicated log reaches this node's last entry;
//! 3. send it `TimeoutNow`: it starts a leadership-transfer election at once
//!    (`Raft::handle_transfer_leader` with this leader's vote), which every voter
//!    grants although its lease has not expired (openraft 0.10 skips both lease
//!    checks for a vote request marked as a transfer); its log is as long as ours,
//!    so we grant the vote and step down;
//! 4. wait until a new leader is known, then let the paused writes go (to it).
//!
//! On openraft 0.9 a voter refused every vote until a lease after its own vote last
//! changed, so a leader elected moments before first had to wait out that lease; 0.10
//! needs no such wait, and a leader can hand over right after its election.
//!
//! Safety never depends on any of this: it is an ordinary Raft election.

use std::time::{Duration, Instant};

use openraft::async_runtime::WatchReceiver;
use openraft::raft::TransferLeaderRequest;
use openraft::{Instant as _, ServerState};
use waymark_proto::pb;

use crate::node::Node;
use crate::raft_types::{Member, MetricsReceiver, NodeId, RaftMetrics};

/// How a stopping node's handoff went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandoffOutcome {
    /// This node was not the leader: nothing to hand off.
    NotLeader,
    /// This node is the only voter: there is no one to hand off to.
    OnlyVoter,
    /// `to` leads now, in `term`.
    HandedOff { to: NodeId, term: u64 },
    /// Leadership could not be handed off within the limit (no follower caught up,
    /// the chosen one did not win); the node stops anyway and the cluster elects a
    /// leader after an election timeout, as after a crash.
    GaveUp { reason: String },
}

/// Hands leadership to an up-to-date follower, spending at most `limit`. `lease` is
/// the Raft leader lease (`election_timeout_max`).
pub async fn hand_off(node: &Node, limit: Duration, lease: Duration) -> HandoffOutcome {
    let deadline = Instant::now() + limit;
    let mut metrics = node.raft.metrics();
    let term = {
        let m = metrics.borrow_watched();
        if m.state != ServerState::Leader {
            return HandoffOutcome::NotLeader;
        }
        if m.membership_config
            .membership()
            .voter_ids()
            .all(|id| id == node.id)
        {
            return HandoffOutcome::OnlyVoter;
        }
        m.current_term
    };
    let Ok(Some(_paused)) = tokio::time::timeout_at(deadline.into(), node.pause_proposals()).await
    else {
        return gave_up("the writes in flight were not answered in time");
    };
    let (target_id, member) = match wait_until(&mut metrics, deadline, |m| {
        caught_up_follower(m, node.id, lease)
    })
    .await
    {
        Ok(Some(target)) => target,
        Ok(None) => {
            return gave_up("this node stopped leading, lost its quorum, or Raft stopped first")
        }
        Err(Expired) => return gave_up("no follower's log reached this leader's last entry"),
    };
    if let Err(reason) = send_timeout_now(node, &member, term, deadline).await {
        return gave_up(&format!(
            "node {target_id} did not start an election: {reason}"
        ));
    }
    match wait_until(&mut metrics, deadline, |m| new_leader(m, node.id, term)).await {
        Ok(Some((to, term))) => HandoffOutcome::HandedOff { to, term },
        Ok(None) => gave_up("Raft stopped"),
        Err(Expired) => gave_up(&format!("node {target_id} was not elected in time")),
    }
}

fn gave_up(reason: &str) -> HandoffOutcome {
    HandoffOutcome::GaveUp {
        reason: reason.to_string(),
    }
}

struct Expired;

/// How often a wait looks at the metrics again even if they have not changed (the
/// time since the last quorum acknowledgement grows without a change being sent).
const RECHECK: Duration = Duration::from_millis(50);

/// Waits until `decide` returns `Some` on the latest metrics, or `deadline`.
/// `decide` returning `Some(None)`, or Raft stopping, ends the wait with nothing.
async fn wait_until<T>(
    metrics: &mut MetricsReceiver,
    deadline: Instant,
    mut decide: impl FnMut(&RaftMetrics) -> Option<Option<T>>,
) -> Result<Option<T>, Expired> {
    loop {
        if let Some(decided) = decide(&metrics.borrow_and_update()) {
            return Ok(decided);
        }
        if Instant::now() >= deadline {
            return Err(Expired);
        }
        let wake = deadline.min(Instant::now() + RECHECK);
        if let Ok(Err(_)) = tokio::time::timeout_at(wake.into(), metrics.changed()).await {
            return Ok(None);
        }
    }
}

/// The voter (lowest id first) whose replicated log reaches the leader's last entry.
/// `Some(None)`: this node no longer leads, or has heard from no quorum for a lease
/// (its peers are stopping too, as when a whole cluster is shut down); `None`: none
/// has caught up yet.
fn caught_up_follower(
    m: &RaftMetrics,
    me: NodeId,
    lease: Duration,
) -> Option<Option<(NodeId, Member)>> {
    let quorum_silent = m
        .last_quorum_acked
        .as_ref()
        .is_none_or(|at| at.elapsed() > lease);
    if m.state != ServerState::Leader || quorum_silent {
        return Some(None);
    }
    let last = m.last_log_index?;
    let membership = m.membership_config.membership();
    let replication = m.replication.as_ref()?;
    membership
        .voter_ids()
        .filter(|id| *id != me)
        .find(|id| {
            replication
                .get(id)
                .is_some_and(|matched| matched.is_some_and(|l| l.index >= last))
        })
        .and_then(|id| Some(Some((id, membership.get_node(&id)?.clone()))))
}

/// Another node leading a later term than `term`.
fn new_leader(m: &RaftMetrics, me: NodeId, term: u64) -> Option<Option<(NodeId, u64)>> {
    match m.current_leader {
        Some(leader) if leader != me && m.current_term > term => {
            Some(Some((leader, m.current_term)))
        }
        _ => None,
    }
}

async fn send_timeout_now(
    node: &Node,
    target: &Member,
    term: u64,
    deadline: Instant,
) -> Result<(), String> {
    let mut client = node
        .peers
        .raft_client(&target.raft_addr)
        .map_err(|s| s.message().to_string())?;
    let request = pb::TimeoutNowRequest {
        leader_id: node.id,
        term,
    };
    let answer = tokio::time::timeout_at(deadline.into(), client.timeout_now(request))
        .await
        .map_err(|_| "no answer in time".to_string())?
        .map_err(|s| s.message().to_string())?
        .into_inner();
    if answer.started {
        Ok(())
    } else {
        Err(answer.reason)
    }
}

/// The follower side of `TimeoutNow`: starts an election now if `leader_id` is this
/// node's leader in `term` (a delayed or forged request from an old term is refused).
pub async fn start_election(node: &Node, leader_id: NodeId, term: u64) -> Result<(), String> {
    let leaders_vote = {
        let m = node.raft.metrics();
        let m = m.borrow_watched();
        if m.current_leader != Some(leader_id) || m.current_term != term {
            return Err(format!(
                "node {} follows {:?} in term {}, not node {leader_id} in term {term}",
                node.id, m.current_leader, m.current_term
            ));
        }
        if !m
            .membership_config
            .membership()
            .voter_ids()
            .any(|id| id == node.id)
        {
            return Err(format!("node {} is not a voter", node.id));
        }
        m.vote
    };
    // A transfer election: the leader grants it although a quorum still acknowledges
    // it (its lease is valid), which a plain election would be refused for. No log
    // position to wait for: the leader sent this once our log reached its last entry.
    let request = TransferLeaderRequest::new(leaders_vote, node.id, None);
    node.raft
        .handle_transfer_leader(request)
        .await
        .map_err(|e| format!("Raft stopped: {e}"))?
        .map_err(|e| e.to_string())?;
    node.metrics.handoff_elections.inc();
    tracing::info!(
        from = leader_id,
        term,
        "leadership handed to this node; election started"
    );
    Ok(())
}
