//! Group commit: many concurrent writes share log entries (and fsyncs) on the leader,
//! yet each is answered with its own result and the index it was applied at, and a
//! watcher sees every one of them at exactly that index, in index order. Followers
//! forward the writes they receive over one stream, several writes per message.

mod common;

use std::collections::BTreeMap;

use common::watch::{next, watch_request, WatchModel};
use common::*;
use waymark_proto::pb;

const WRITERS: usize = 200;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writes_share_fsyncs_and_each_gets_its_own_result_and_index() {
    let cluster = TestCluster::start(3, |_| {}).await;
    let leader = cluster.wait_for_leader().await;
    let follower = cluster
        .running_ids()
        .into_iter()
        .find(|&id| id != leader)
        .unwrap();

    // A watcher on a follower, from the current state.
    let mut watch = cluster
        .catalog(follower)
        .await
        .watch(watch_request(&["gc"], 0))
        .await
        .unwrap()
        .into_inner();
    let mut model = WatchModel::default();
    model.apply(&next(&mut watch).await);

    let metrics = cluster.node(leader).node.metrics.clone();
    let syncs_before = metrics.log_syncs.get();
    let forwarded_before = forwarding(&cluster, leader);

    // Writes arrive at every node over several connections, all at once.
    let mut clients = Vec::new();
    for id in cluster.running_ids() {
        for _ in 0..3 {
            clients.push(cluster.catalog(id).await);
        }
    }
    let writes = (0..WRITERS).map(|i| {
        let mut client = clients[i % clients.len()].clone();
        tokio::spawn(async move {
            let id = format!("i{i}");
            let resp = client
                .register(registration("gc", &id, 1000 + i as u32))
                .await
                .unwrap_or_else(|s| panic!("register {id}: {s}"))
                .into_inner();
            (id, i as u32, resp)
        })
    });
    let mut acked: BTreeMap<String, u64> = BTreeMap::new();
    for write in futures::future::join_all(writes).await {
        let (id, i, resp) = write.unwrap();
        let inst = resp.instance.expect("instance in the answer");
        // Its own result, not a neighbour's from the same entry.
        assert_eq!((inst.id.as_str(), inst.port), (id.as_str(), 1000 + i));
        assert_eq!(
            inst.modify_index, resp.index,
            "{id} answered with index {} but its record says {}",
            resp.index, inst.modify_index
        );
        acked.insert(id, resp.index);
    }
    let syncs = metrics.log_syncs.get() - syncs_before;
    let entries: std::collections::BTreeSet<u64> = acked.values().copied().collect();
    eprintln!(
        "{WRITERS} concurrent writes: {} log entries, {syncs} leader log fsyncs",
        entries.len()
    );
    assert!(
        syncs <= WRITERS as u64 / 2,
        "{WRITERS} concurrent writes cost {syncs} fsyncs on the leader: no group commit"
    );

    // Every write a follower received went to the leader on its stream, and writes
    // that waited together went in one message.
    let (writes, messages) = forwarding(&cluster, leader);
    let (writes, messages) = (writes - forwarded_before.0, messages - forwarded_before.1);
    let sent_to_followers = (0..WRITERS)
        .filter(|i| cluster.running_ids()[(i % clients.len()) / 3] != leader)
        .count() as u64;
    eprintln!("followers forwarded {writes} writes in {messages} messages");
    assert_eq!(writes, sent_to_followers);
    assert!(
        messages < writes,
        "{writes} concurrent forwarded writes took {messages} messages: no batching"
    );

    // The watcher sees each write at the index it was acknowledged at, in order.
    let last = *entries.last().unwrap();
    while !model.caught_up_to(last) {
        model.apply(&next(&mut watch).await);
    }
    let mut seen: BTreeMap<String, u64> = BTreeMap::new();
    for (index, change) in &model.log {
        if let Some(pb::record_change::Change::Upsert(i)) = &change.change {
            assert!(
                seen.insert(i.id.clone(), *index).is_none(),
                "{} delivered twice",
                i.id
            );
        }
    }
    assert_eq!(seen, acked, "watched indexes differ from acknowledged ones");
    cluster.shutdown().await;
}

/// Writes forwarded by the followers, and the stream messages that carried them.
fn forwarding(cluster: &TestCluster, leader: u64) -> (u64, u64) {
    cluster
        .running_ids()
        .into_iter()
        .filter(|&id| id != leader)
        .map(|id| {
            let m = &cluster.node(id).node.metrics;
            (m.forwarded_writes.get(), m.forward_messages.get())
        })
        .fold((0, 0), |(w, n), (a, b)| (w + a, n + b))
}
