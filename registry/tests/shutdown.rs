//! A node with connected watch and keep-alive clients shuts down cleanly: its streams
//! end with the shutdown instead of holding the node until the drain deadline. A node
//! whose Raft core stops on its own does not: it stops with an error naming that.

mod common;

use common::watch::{next, watch_request};
use common::*;
use std::time::Duration;
use waymark_proto::pb;
use waymark_proto::pb::leases_client::LeasesClient;
use waymark_registry::leader_handoff::HandoffOutcome;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn open_watch_and_keep_alive_streams_do_not_hold_shutdown() {
    let mut cluster = TestCluster::start(1, |_| {}).await;
    cluster.wait_for_leader().await;
    let addr = cluster.node(1).config.api_addr.clone();
    let mut catalog = cluster.catalog(1).await;
    let mut watch = catalog
        .watch(watch_request(&["web"], 0))
        .await
        .unwrap()
        .into_inner();
    next(&mut watch).await;

    let mut leases = LeasesClient::new(channel(&addr).await);
    let lease = leases
        .create_lease(pb::CreateLeaseRequest { ttl_ms: 10_000 })
        .await
        .unwrap()
        .into_inner();
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tx.send(pb::KeepAliveRequest {
        lease_id: lease.lease_id,
    })
    .await
    .unwrap();
    let mut replies = leases
        .keep_alive(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    let first = replies.message().await.unwrap().unwrap();
    assert_eq!(first.ttl_ms, 10_000);

    // Both streams are open (the client still holds `tx` and `watch`).
    let stopped = cluster.stop(1).await;
    assert!(
        stopped.drained,
        "the node had to abort tasks to stop: {stopped:?}"
    );
    // A one-node cluster's leader has no one to hand leadership to.
    assert_eq!(stopped.handoff, Some(HandoffOutcome::OnlyVoter));
    // And the clients saw their streams end.
    while let Ok(Some(_)) = watch.message().await {}
    while let Ok(Some(_)) = replies.message().await {}
    drop(tx);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_whose_raft_core_stops_on_its_own_exits_with_an_error() {
    let mut cluster = TestCluster::start(1, |_| {}).await;
    cluster.wait_for_leader().await;
    let node = cluster.nodes[0].take().unwrap();
    // The core quits without the server asking, as openraft's does on a fatal error.
    node.node.raft.shutdown().await.unwrap();
    let err = node
        .exited(Duration::from_secs(30))
        .await
        .expect_err("the node carried on (or stopped cleanly) without Raft");
    let text = format!("{err:#}");
    assert!(text.contains("the Raft core stopped"), "{text}");
}
