//! The deliberately unsafe positive-control modes (`--unsafe-control`) really break
//! what they claim to: one small scenario each, so the Jepsen harness's controls are
//! known to be live (stale-bound and dns-guard-off with the node cut off past its
//! bound). The harness itself exercises them under faults.

mod common;

use common::watch::{kind, next, watch_request};
use common::*;
use waymark_proto::pb;
use waymark_proto::pb::watch_response::Event;
use waymark_registry::unsafe_control::{UnsafeControl, ALLOW_ENV};

/// A three-node cluster whose nodes all run with `control`.
async fn cluster_with(control: UnsafeControl) -> TestCluster {
    // Every test in this binary wants the same value, so setting it is race-free.
    std::env::set_var(ALLOW_ENV, "1");
    TestCluster::start(3, |c| {
        c.unsafe_control = Some(control);
        c.request_timeout_ms = 1_000;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stale_reads_serve_a_cut_off_follower_as_consistent() {
    let mut cluster = cluster_with(UnsafeControl::StaleReads).await;
    let leader = cluster.wait_for_leader().await;
    let follower = cluster
        .running_ids()
        .into_iter()
        .find(|id| *id != leader)
        .unwrap();
    let mut f = cluster.catalog(follower).await;
    let reg = f
        .register(registration("db", "db-1", 5432))
        .await
        .unwrap()
        .into_inner();
    wait_for("the follower to apply the write", || {
        let mut f = f.clone();
        async move {
            let (ids, _) = list_ids(&mut f, "db", stale(0)).await.ok()?;
            (!ids.is_empty()).then_some(())
        }
    })
    .await;
    for id in cluster.running_ids() {
        if id != follower {
            cluster.stop(id).await;
        }
    }
    // A safe node answers UNAVAILABLE here (see cluster.rs); this one claims CONSISTENT.
    let (ids, meta) = list_ids(&mut f, "db", consistent())
        .await
        .expect("stale-reads answers without a quorum");
    assert_eq!(ids, vec!["db-1"]);
    assert_eq!(meta.consistency, pb::Consistency::Consistent as i32);
    assert!(meta.index >= reg.index);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn early_ack_acknowledges_a_write_a_lone_leader_cannot_commit() {
    let mut cluster = cluster_with(UnsafeControl::EarlyAck).await;
    let leader = cluster.wait_for_leader().await;
    let mut l = cluster.catalog(leader).await;
    l.register(registration("db", "db-1", 5432)).await.unwrap();
    // Early-ack answered at once: wait until db-1 is really applied (so committed)
    // before taking the quorum away.
    wait_for("db-1 applied on the leader", || {
        let mut l = l.clone();
        async move {
            let (ids, _) = list_ids(&mut l, "db", stale(0)).await.ok()?;
            (ids == ["db-1"]).then_some(())
        }
    })
    .await;
    for id in cluster.running_ids() {
        if id != leader {
            cluster.stop(id).await;
        }
    }
    // Still leader until its lease runs out, but with no one to replicate to.
    let acked = l
        .register(registration("db", "db-2", 5432))
        .await
        .expect("early-ack acknowledges without a quorum")
        .into_inner();
    let instance = acked.instance.unwrap();
    assert_eq!((instance.id.as_str(), instance.port), ("db-2", 5432));
    assert_eq!(instance.modify_index, acked.index);
    let removed = l
        .deregister(pb::DeregisterRequest {
            service: "db".into(),
            id: "db-1".into(),
        })
        .await
        .expect("early-ack acknowledges without a quorum")
        .into_inner();
    assert!(removed.removed);
    // Neither write was applied (there is no quorum to commit them): the replica still
    // has the old state. A correct server would not have acknowledged them at all.
    let (ids, _) = list_ids(&mut l, "db", stale(0)).await.unwrap();
    assert_eq!(ids, vec!["db-1"]);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn watch_skip_drops_the_first_change_of_a_resumed_watch() {
    let cluster = cluster_with(UnsafeControl::WatchSkip).await;
    let leader = cluster.wait_for_leader().await;
    let mut l = cluster.catalog(leader).await;
    let mut indexes = Vec::new();
    for id in ["a", "b", "c"] {
        let r = l.register(registration("web", id, 80)).await.unwrap();
        indexes.push(r.into_inner().index);
    }
    let mut s = l
        .watch(watch_request(&["web"], indexes[0]))
        .await
        .unwrap()
        .into_inner();
    // A safe node sends b's index first; this one goes straight to c's.
    let m = next(&mut s).await;
    assert_eq!(kind(&m), "changes");
    assert_eq!(m.index, indexes[2]);
    let Some(Event::Changes(changes)) = m.event else {
        unreachable!()
    };
    assert_eq!(changes.changes.len(), 1);
    // A watch from now is untouched: it starts with the full snapshot.
    let mut s = l
        .watch(watch_request(&["web"], 0))
        .await
        .unwrap()
        .into_inner();
    let m = next(&mut s).await;
    let Some(Event::Snapshot(snapshot)) = m.event else {
        panic!("expected a snapshot, got {m:?}")
    };
    assert_eq!(snapshot.instances.len(), 3);
    cluster.shutdown().await;
}

/// Stops every node but `keep`; returns when it is alone.
async fn leave_alone(cluster: &mut TestCluster, keep: u64) -> std::time::Instant {
    for id in cluster.running_ids() {
        if id != keep {
            cluster.stop(id).await;
        }
    }
    std::time::Instant::now()
}

/// Waits until `since` is more than `ms` ago: the node has been alone that long.
async fn alone_for_more_than(since: std::time::Instant, ms: u64) {
    wait_for("the node to be alone past the bound", || async move {
        (since.elapsed() > std::time::Duration::from_millis(ms)).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stale_bound_answers_past_the_bound_and_claims_fresh_contact() {
    let mut cluster = cluster_with(UnsafeControl::StaleBound).await;
    let leader = cluster.wait_for_leader().await;
    let follower = cluster.follower_of(leader);
    let mut f = cluster.catalog(follower).await;
    f.register(registration("db", "db-1", 5432)).await.unwrap();
    let cut = leave_alone(&mut cluster, follower).await;
    alone_for_more_than(cut, 600).await;
    // A safe node refuses a 200 ms bound here (TooStale); this one answers and says it
    // heard from a leader 0 ms ago.
    let (_, meta) = list_ids(&mut f, "db", stale(200))
        .await
        .expect("stale-bound answers past its bound");
    assert_eq!(meta.last_contact_ms, Some(0));
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dns_guard_off_keeps_answering_when_cut_off() {
    std::env::set_var(ALLOW_ENV, "1");
    let mut cluster = TestCluster::start(3, |c| {
        c.unsafe_control = Some(UnsafeControl::DnsGuardOff);
        c.dns.max_stale_ms = 200;
    })
    .await;
    let leader = cluster.wait_for_leader().await;
    let lonely = cluster.follower_of(leader);
    let dns = cluster.node(lonely).config.dns_addr.clone();
    let cut = leave_alone(&mut cluster, lonely).await;
    alone_for_more_than(cut, 600).await;
    // A safe node answers SERVFAIL past max_stale (dns_cluster.rs); this one does not.
    assert_eq!(common::dig::dig(&dns, "waymark.", "SOA").0, "NOERROR");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lease_early_ends_inherited_leases_at_a_leader_change() {
    let mut cluster = cluster_with(UnsafeControl::LeaseEarly).await;
    let leader = cluster.wait_for_leader().await;
    let follower = cluster.follower_of(leader);
    let addr = cluster.node(follower).config.api_addr.clone();
    let mut leases = pb::leases_client::LeasesClient::new(channel(&addr).await);
    // A TTL far longer than this test: a correct new leader extends it by a minute.
    let lease = leases
        .create_lease(pb::CreateLeaseRequest { ttl_ms: 60_000 })
        .await
        .unwrap()
        .into_inner();
    let mut f = cluster.catalog(follower).await;
    let mut reg = registration("db", "db-1", 5432);
    reg.lease_id = lease.lease_id;
    f.register(reg).await.unwrap();
    cluster.stop(leader).await;
    // The new leader (one of the two left) ends the lease at its first tick.
    wait_for("the new leader to end the minute-long lease", || {
        let mut f = f.clone();
        async move {
            let (ids, _) = list_ids(&mut f, "db", consistent()).await.ok()?;
            ids.is_empty().then_some(())
        }
    })
    .await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replica_diverge_leaves_node_1_with_a_different_state_at_the_same_index() {
    let cluster = cluster_with(UnsafeControl::ReplicaDiverge).await;
    let leader = cluster.wait_for_leader().await;
    let mut l = cluster.catalog(leader).await;
    // Eight registrations: one of them lands at an index divisible by 8.
    for i in 0..8 {
        l.register(registration("web", &format!("w{i}"), 80))
            .await
            .unwrap();
    }
    // Every node at the same index, and node 1 alone with another digest.
    let digests = wait_for("all three nodes at one index", || {
        let cluster = &cluster;
        async move {
            let mut all = Vec::new();
            for id in cluster.running_ids() {
                let mut c = cluster.cluster(id).await;
                let s = c.status(pb::StatusRequest {}).await.ok()?.into_inner();
                all.push((id, s.digest_index, s.state_digest));
            }
            all.windows(2).all(|w| w[0].1 == w[1].1).then_some(all)
        }
    })
    .await;
    let digest = |id: u64| digests.iter().find(|d| d.0 == id).unwrap().2.clone();
    assert_eq!(digest(2), digest(3), "{digests:?}");
    assert_ne!(digest(1), digest(2), "{digests:?}");
    cluster.shutdown().await;
}
