//! A node with connected watch and keep-alive clients shuts down cleanly: its streams
//! end with the shutdown instead of holding the node until the drain deadline.

mod common;

use common::watch::{next, watch_request};
use common::*;
use waymark_proto::pb;
use waymark_proto::pb::leases_client::LeasesClient;

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
    // And the clients saw their streams end.
    while let Ok(Some(_)) = watch.message().await {}
    while let Ok(Some(_)) = replies.message().await {}
    drop(tx);
}
