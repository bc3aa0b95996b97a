//! Leases and health: instances leave (or turn critical) when their lease is not kept
//! alive, stay through a leader change while it is (a graceful stop here; the Jepsen
//! lease workload kills, pauses and cuts off leaders), and critical instances are
//! hidden from passing-only reads and watches and reaped after
//! `deregister_critical_after`.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::watch::{next, watch_request, WatchModel};
use common::*;
use tonic::transport::Channel;
use waymark_proto::pb;
use waymark_proto::pb::leases_client::LeasesClient;

async fn leases(addr: &str) -> LeasesClient<Channel> {
    LeasesClient::new(channel(addr).await)
}

fn leased(id: &str, lease_id: u64, action: pb::LeaseExpiryAction) -> pb::RegisterRequest {
    let mut r = registration("web", id, 80);
    r.lease_id = lease_id;
    r.on_lease_expiry = action as i32;
    r
}

async fn get(c: &mut pb::catalog_client::CatalogClient<Channel>, id: &str) -> Option<pb::Instance> {
    match c
        .get_instance(pb::GetInstanceRequest {
            service: "web".into(),
            id: id.into(),
            read: consistent(),
        })
        .await
    {
        Ok(r) => r.into_inner().instance,
        Err(s) if s.code() == tonic::Code::NotFound => None,
        Err(s) => panic!("get {id}: {s:?}"),
    }
}

/// Keeps `lease_id` alive from a client, moving between nodes on errors, the way a
/// sidecar does. Counts renewals; flags a renewal answered "lease gone".
fn keep_alive(
    addrs: Vec<String>,
    lease_id: u64,
    renewals: Arc<AtomicU64>,
    lost: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut target = 0;
        while !stop.load(Ordering::Relaxed) {
            let mut client = leases(&addrs[target % addrs.len()]).await;
            let (tx, rx) = tokio::sync::mpsc::channel(1);
            let Ok(resp) = client
                .keep_alive(tokio_stream::wrappers::ReceiverStream::new(rx))
                .await
            else {
                target += 1;
                continue;
            };
            let mut replies = resp.into_inner();
            loop {
                if stop.load(Ordering::Relaxed)
                    || tx.send(pb::KeepAliveRequest { lease_id }).await.is_err()
                {
                    break;
                }
                match tokio::time::timeout(Duration::from_secs(2), replies.message()).await {
                    Ok(Ok(Some(r))) if r.ttl_ms > 0 => {
                        renewals.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(Ok(Some(_))) => lost.store(true, Ordering::Relaxed),
                    _ => break,
                }
                // A client renews at a fraction of the TTL (here 2 s).
                tokio::time::sleep(Duration::from_millis(400)).await;
            }
            target += 1;
        }
    })
}

/// One keep-alive round trip on a fresh stream: the server's answer for `lease_id`.
async fn keep_alive_once(addr: &str, lease_id: u64) -> pb::KeepAliveResponse {
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    tx.send(pb::KeepAliveRequest { lease_id }).await.unwrap();
    let mut replies = leases(addr)
        .await
        .keep_alive(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .expect("keep-alive stream")
        .into_inner();
    tokio::time::timeout(DEADLINE, replies.message())
        .await
        .expect("a keep-alive answer within the deadline")
        .expect("keep-alive answer")
        .expect("the stream answers before it ends")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn leases_expire_without_keep_alive_and_survive_a_leader_stop_with_it() {
    let mut cluster = TestCluster::start(3, |_| {}).await;
    let leader = cluster.wait_for_leader().await;
    let follower = cluster
        .running_ids()
        .into_iter()
        .find(|id| *id != leader)
        .unwrap();
    let api = cluster.node(follower).config.api_addr.clone();
    let mut l = leases(&api).await;
    let mut c = cluster.catalog(follower).await;

    let err = l
        .create_lease(pb::CreateLeaseRequest { ttl_ms: 100 })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(
        err.message().starts_with("invalid ttl_ms:"),
        "{}",
        err.message()
    );
    let err = c
        .register(leased("z", 999_999, pb::LeaseExpiryAction::Remove))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound);

    let idle = l
        .create_lease(pb::CreateLeaseRequest { ttl_ms: 2_000 })
        .await
        .unwrap()
        .into_inner()
        .lease_id;
    let kept = l
        .create_lease(pb::CreateLeaseRequest { ttl_ms: 2_000 })
        .await
        .unwrap()
        .into_inner()
        .lease_id;
    c.register(leased("a", idle, pb::LeaseExpiryAction::Remove))
        .await
        .unwrap();
    c.register(leased("b", idle, pb::LeaseExpiryAction::MarkCritical))
        .await
        .unwrap();
    let kept_reg = c
        .register(leased("k", kept, pb::LeaseExpiryAction::Remove))
        .await
        .unwrap()
        .into_inner();

    let addrs: Vec<String> = cluster
        .running_ids()
        .iter()
        .map(|id| cluster.node(*id).config.api_addr.clone())
        .collect();
    let (renewals, lost, stop) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicBool::new(false)),
    );
    let keeper = keep_alive(addrs, kept, renewals.clone(), lost.clone(), stop.clone());

    // Without keep-alives the first lease ends: a is removed, b turns critical.
    wait_for("the idle lease to expire", || {
        let mut c = c.clone();
        async move {
            let b = get(&mut c, "b").await?;
            (get(&mut c, "a").await.is_none() && b.status == pb::HealthStatus::Critical as i32)
                .then_some(())
        }
    })
    .await;
    // An expired lease is gone: a keep-alive for it is answered with TTL 0.
    let reply = keep_alive_once(&api, idle).await;
    assert_eq!((reply.lease_id, reply.ttl_ms), (idle, 0));

    // Stop the leader (gracefully); the kept lease must outlive the election and
    // several TTLs.
    cluster.stop(leader).await;
    cluster.wait_for_leader().await;
    let survivor = cluster.running_ids()[0];
    let mut c = cluster.catalog(survivor).await;
    let base = renewals.load(Ordering::Relaxed);
    wait_for("renewals for three TTLs after the election", || {
        let n = renewals.load(Ordering::Relaxed);
        async move { (n >= base + 15).then_some(()) }
    })
    .await;
    let k = get(&mut c, "k")
        .await
        .expect("a kept-alive lease never expires early");
    assert_eq!(
        k.create_index, kept_reg.index,
        "k was never removed and re-added"
    );
    assert!(
        !lost.load(Ordering::Relaxed),
        "no renewal was answered 'lease gone'"
    );

    // Stop renewing: now it goes.
    stop.store(true, Ordering::Relaxed);
    keeper.await.unwrap();
    wait_for("the kept lease to expire once renewals stop", || {
        let mut c = c.clone();
        async move { get(&mut c, "k").await.is_none().then_some(()) }
    })
    .await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn critical_instances_are_hidden_from_passing_reads_and_watches_then_reaped() {
    let cluster = TestCluster::start(3, |_| {}).await;
    let leader = cluster.wait_for_leader().await;
    let follower = cluster
        .running_ids()
        .into_iter()
        .find(|id| *id != leader)
        .unwrap();
    let mut c = cluster.catalog(leader).await;
    let mut x = registration("web", "x", 80);
    x.deregister_critical_after_ms = 1_000;
    c.register(x).await.unwrap();
    c.register(registration("web", "y", 80)).await.unwrap();

    let mut req = watch_request(&["web"], 0);
    req.passing_only = true;
    let mut s = cluster
        .catalog(leader)
        .await
        .watch(req)
        .await
        .unwrap()
        .into_inner();
    let mut model = WatchModel::default();
    model.apply(&next(&mut s).await);
    assert_eq!(model.ids("web"), vec!["x", "y"]);

    let mut f = cluster.catalog(follower).await;
    let err = f
        .update_health(pb::UpdateHealthRequest {
            service: "web".into(),
            id: "x".into(),
            status: 0,
            output: String::new(),
        })
        .await
        .unwrap_err();
    assert!(
        err.message().starts_with("invalid status:"),
        "{}",
        err.message()
    );
    let err = f
        .update_health(pb::UpdateHealthRequest {
            service: "web".into(),
            id: "nope".into(),
            status: pb::HealthStatus::Critical as i32,
            output: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound);
    let crit = f
        .update_health(pb::UpdateHealthRequest {
            service: "web".into(),
            id: "x".into(),
            status: pb::HealthStatus::Critical as i32,
            output: "connection refused".into(),
        })
        .await
        .unwrap()
        .into_inner();

    let passing = f
        .list_instances(pb::ListInstancesRequest {
            service: "web".into(),
            read: consistent(),
            passing_only: true,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        passing
            .instances
            .iter()
            .map(|i| i.id.as_str())
            .collect::<Vec<_>>(),
        vec!["y"]
    );
    let all = get(&mut f, "x").await.unwrap();
    assert_eq!(all.status, pb::HealthStatus::Critical as i32);
    assert_eq!(all.status_output, "connection refused");

    while model.last_change_index < crit.index {
        model.apply(&next(&mut s).await);
    }
    assert_eq!(
        model.ids("web"),
        vec!["y"],
        "the passing-only watch saw x leave"
    );

    wait_for("x to be reaped after deregister_critical_after", || {
        let mut f = f.clone();
        async move { get(&mut f, "x").await.is_none().then_some(()) }
    })
    .await;
    assert!(get(&mut f, "y").await.is_some());
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn revoke_lease_ends_its_instances_at_once_and_keep_alive_then_answers_gone() {
    let cluster = TestCluster::start(3, |_| {}).await;
    let leader = cluster.wait_for_leader().await;
    // Through a follower: revoke and keep-alive are forwarded to the leader.
    let follower = cluster
        .running_ids()
        .into_iter()
        .find(|id| *id != leader)
        .unwrap();
    let api = cluster.node(follower).config.api_addr.clone();
    let mut l = leases(&api).await;
    let mut c = cluster.catalog(follower).await;
    // A TTL far longer than the test: only the revoke can end this lease.
    let lease = l
        .create_lease(pb::CreateLeaseRequest { ttl_ms: 600_000 })
        .await
        .unwrap()
        .into_inner()
        .lease_id;
    c.register(leased("a", lease, pb::LeaseExpiryAction::Remove))
        .await
        .unwrap();
    c.register(leased("b", lease, pb::LeaseExpiryAction::MarkCritical))
        .await
        .unwrap();
    c.register(registration("web", "free", 80)).await.unwrap();
    let reply = keep_alive_once(&api, lease).await;
    assert_eq!((reply.lease_id, reply.ttl_ms), (lease, 600_000));

    let revoked = l
        .revoke_lease(pb::RevokeLeaseRequest { lease_id: lease })
        .await
        .unwrap()
        .into_inner();
    assert!(revoked.revoked);
    // Acknowledged, so a consistent read right after reflects it: a is removed, b is
    // critical and no longer under the lease, the unleased instance is untouched.
    assert!(get(&mut c, "a").await.is_none());
    let b = get(&mut c, "b").await.expect("b stays, marked critical");
    assert_eq!(b.status, pb::HealthStatus::Critical as i32);
    assert_eq!(b.lease_id, 0);
    assert_eq!(b.modify_index, revoked.index);
    assert!(get(&mut c, "free").await.is_some());

    // Revoking again changes nothing and says so; keep-alives answer "gone".
    let again = l
        .revoke_lease(pb::RevokeLeaseRequest { lease_id: lease })
        .await
        .unwrap()
        .into_inner();
    assert!(!again.revoked);
    let reply = keep_alive_once(&api, lease).await;
    assert_eq!((reply.lease_id, reply.ttl_ms), (lease, 0));
    let reply = keep_alive_once(&api, 999_999).await;
    assert_eq!((reply.lease_id, reply.ttl_ms), (999_999, 0));
    let err = l
        .revoke_lease(pb::RevokeLeaseRequest { lease_id: 0 })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(
        err.message().starts_with("invalid lease_id:"),
        "{}",
        err.message()
    );
    cluster.shutdown().await;
}
