//! Snapshots: enough writes trigger a snapshot and a log purge, and a fourth node
//! added with AddMember catches up through InstallSnapshot and serves consistent reads.

mod common;

use common::*;
use waymark_proto::pb;
use waymark_registry::ServerConfig;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn new_member_catches_up_from_a_snapshot_after_the_log_was_purged() {
    let mut cluster = TestCluster::start(3, |c| {
        c.snapshot_threshold = 50;
        c.logs_to_keep = 0;
    })
    .await;
    let leader = cluster.wait_for_leader().await;
    let mut c = cluster.catalog(leader).await;
    let mut expected = Vec::new();
    for i in 0..150 {
        let id = format!("s-{i:03}");
        c.register(registration("store", &id, 7000)).await.unwrap();
        expected.push(id);
    }
    // The leader has snapshotted and purged the log behind the snapshot.
    let leader_node = cluster.node(leader).node.clone();
    wait_for("a snapshot and a purge on the leader", || {
        let v = leader_node.view();
        async move { (v.snapshot_index > 0 && v.purged_index > 0).then_some(()) }
    })
    .await;

    // Start a fourth, empty node and add it through a follower.
    let (listeners, api, raft, admin) = bind_listeners().await;
    let mut cfg = ServerConfig::new(4, cluster.dir.path().join("node-4"));
    cfg.api_addr = api.clone();
    cfg.raft_addr = raft.clone();
    cfg.admin_addr = admin;
    cfg.dns_addr = listeners.dns.local_addr().unwrap().to_string();
    let fourth = start_node(cfg, listeners).await;
    let follower = cluster
        .running_ids()
        .into_iter()
        .find(|id| *id != leader)
        .unwrap();
    let added = cluster
        .cluster(follower)
        .await
        .add_member(pb::AddMemberRequest {
            node_id: 4,
            api_addr: api.clone(),
            raft_addr: raft,
        })
        .await
        .expect("add member through a follower")
        .into_inner();
    let voters: Vec<u64> = added
        .members
        .iter()
        .filter(|m| m.role == pb::MemberRole::Voter as i32)
        .map(|m| m.node_id)
        .collect();
    assert_eq!(voters, vec![1, 2, 3, 4]);

    // It could only have caught up through InstallSnapshot: the log prefix is gone.
    let node4 = fourth.node.clone();
    wait_for("node 4 to install a snapshot", || {
        let n = node4.metrics.snapshots_installed.get();
        async move { (n >= 1).then_some(()) }
    })
    .await;
    let mut c4 = catalog_client(&api).await;
    let (ids, meta) = list_ids(&mut c4, "store", consistent()).await.unwrap();
    assert_eq!(ids, expected);
    assert_eq!(meta.node_id, 4);
    let status = cluster_client(&api)
        .await
        .status(pb::StatusRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(status.snapshot_index > 0);
    assert_eq!(status.role, "follower");
    cluster.nodes.push(Some(fourth));
    cluster.shutdown().await;
}
