//! Every error carries a machine-readable detail a client can act on: a CAS mismatch
//! and an invalid argument (never retry, not applied), a follower with no leader
//! (another node, not applied), and a stale-read refusal (another node).

mod common;

use common::*;
use waymark_proto::errors::{Applied, ErrorDetail, Reason, Retry};

fn detail(status: &tonic::Status) -> ErrorDetail {
    ErrorDetail::from_status(status)
        .unwrap_or_else(|| panic!("no machine-readable detail on {status:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn each_failure_says_what_to_do() {
    // No leadership handoff: the node left alone below must end up knowing no leader,
    // and a stopping leader would otherwise hand it the leadership.
    let mut cluster = TestCluster::start(3, |c| {
        c.request_timeout_ms = 1_500;
        c.leader_handoff_ms = 0;
    })
    .await;
    let leader = cluster.wait_for_leader().await;
    let follower = cluster
        .running_ids()
        .into_iter()
        .find(|id| *id != leader)
        .unwrap();
    // Through a follower, so the leader's classification survives forwarding.
    let mut c = cluster.catalog(follower).await;
    let first = c
        .register(registration("web", "a", 80))
        .await
        .unwrap()
        .into_inner();

    let mut cas = registration("web", "a", 81);
    cas.expected_modify_index = Some(first.index + 100);
    let e = c.register(cas).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::FailedPrecondition);
    let d = detail(&e);
    assert_eq!(
        (d.reason, d.retry, d.applied),
        (Reason::CasMismatch, Retry::Never, Applied::No)
    );
    assert_eq!(
        d.leader_id,
        Some(leader),
        "the serving node names the leader it knows"
    );
    assert_eq!(
        d.leader_api_addr.as_deref(),
        Some(cluster.node(leader).config.api_addr.as_str())
    );

    let e = c
        .register(registration("web", "Bad_Id", 80))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    let d = detail(&e);
    assert_eq!(
        (d.reason, d.retry, d.applied),
        (Reason::InvalidArgument, Retry::Never, Applied::No)
    );
    assert_eq!(d.field.as_deref(), Some("id"));

    // Leave one node alone: once it knows no leader, a write fails before proposing.
    let lone = follower;
    for id in cluster.running_ids() {
        if id != lone {
            cluster.stop(id).await;
        }
    }
    let node = cluster.node(lone).node.clone();
    wait_for("the lone node to know no leader", || {
        let known = node.view().leader.is_some();
        async move { (!known).then_some(()) }
    })
    .await;
    let e = c.register(registration("web", "b", 80)).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unavailable);
    let d = detail(&e);
    assert_eq!(
        (d.reason, d.retry, d.applied),
        (Reason::NoLeader, Retry::OtherNode, Applied::No)
    );
    assert_eq!(d.leader_id, None);

    // A stale read bounded tighter than the time since it last heard from a leader.
    let e = wait_for("a stale read to be refused", || {
        let mut c = c.clone();
        async move { list_ids(&mut c, "web", stale(1)).await.err() }
    })
    .await;
    let d = detail(&e);
    assert_eq!(
        (d.reason, d.retry, d.applied),
        (Reason::StaleRefused, Retry::OtherNode, Applied::No)
    );
    cluster.shutdown().await;
}
