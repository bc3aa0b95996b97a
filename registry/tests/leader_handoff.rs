//! A leader asked to stop hands leadership to a caught-up follower before it goes, so
//! the cluster has its next leader when the old one is gone (no election timeout);
//! writes sent through a follower meanwhile all reach the new leader; a TimeoutNow
//! that does not come from the current leader in its term is refused.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use common::*;
use openraft::ServerState;
use tokio_util::sync::CancellationToken;
use waymark_proto::pb;
use waymark_proto::pb::raft_client::RaftClient;
use waymark_registry::leader_handoff::HandoffOutcome;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stopping_leader_hands_over_and_writes_meanwhile_reach_the_new_leader() {
    let mut cluster = TestCluster::start(3, |_| {}).await;
    let leader = cluster.wait_for_leader().await;
    let old_term = cluster.node(leader).node.view().term;
    let follower = cluster.follower_of(leader);

    // Registers through a follower without pause until told to stop; any failed write
    // fails the test.
    let acked = Arc::new(AtomicU64::new(0));
    let stop_writing = CancellationToken::new();
    let writer = tokio::spawn({
        let addr = cluster.node(follower).config.api_addr.clone();
        let (acked, stop) = (acked.clone(), stop_writing.clone());
        async move {
            let mut catalog = catalog_client(&addr).await;
            let mut ids = Vec::new();
            while !stop.is_cancelled() {
                let id = format!("w-{}", ids.len());
                catalog
                    .register(registration("web", &id, 8080))
                    .await
                    .map_err(|s| format!("register {id}: {s}"))?;
                ids.push(id);
                acked.fetch_add(1, Ordering::SeqCst);
            }
            Ok::<_, String>(ids)
        }
    });
    wait_for("writes before the stop", || async {
        (acked.load(Ordering::SeqCst) >= 20).then_some(())
    })
    .await;

    let stopped = cluster.stop(leader).await;
    let Some(HandoffOutcome::HandedOff { to, term }) = stopped.handoff else {
        panic!("the leader did not hand over: {stopped:?}");
    };
    assert_ne!(to, leader);
    assert!(term > old_term, "new term {term} after {old_term}");
    // Already leading when the old leader's stop returned: no election timeout passed.
    let view = cluster.node(to).node.view();
    assert_eq!((view.state, view.term), (ServerState::Leader, term));
    assert_eq!(cluster.node(to).node.metrics.handoff_elections.get(), 1);

    let after_stop = acked.load(Ordering::SeqCst);
    wait_for("writes after the stop", || async {
        (acked.load(Ordering::SeqCst) >= after_stop + 20).then_some(())
    })
    .await;
    stop_writing.cancel();
    let ids = writer.await.unwrap().expect("every write was acknowledged");
    let (listed, _) = list_ids(&mut cluster.catalog(to).await, "web", consistent())
        .await
        .unwrap();
    for id in &ids {
        assert!(listed.contains(id), "acknowledged {id} is missing");
    }
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_timeout_now_not_from_the_current_leader_is_refused() {
    let cluster = TestCluster::start(3, |_| {}).await;
    let leader = cluster.wait_for_leader().await;
    let follower = cluster.follower_of(leader);
    let other = (1..=3).find(|id| *id != leader && *id != follower).unwrap();
    let term = cluster.node(leader).node.view().term;
    let mut raft = RaftClient::new(channel(&cluster.node(follower).config.raft_addr).await);

    for (leader_id, term, what) in [
        (other, term, "a node that is not the leader"),
        (leader, term - 1, "the leader's previous term"),
    ] {
        let answer = raft
            .timeout_now(pb::TimeoutNowRequest { leader_id, term })
            .await
            .unwrap()
            .into_inner();
        assert!(!answer.started, "started an election for {what}");
        assert!(
            answer
                .reason
                .contains(&format!("not node {leader_id} in term {term}")),
            "{what}: {}",
            answer.reason
        );
    }
    let view = cluster.node(follower).node.view();
    assert_eq!(view.leader.map(|(id, _)| id), Some(leader));
    assert_eq!(view.term, cluster.node(leader).node.view().term);
    assert_eq!(
        cluster.node(follower).node.metrics.handoff_elections.get(),
        0
    );
    cluster.shutdown().await;
}
