//! In-process three-node cluster tests: writes through followers, consistent and
//! stale reads on every node, deregistration, leader loss, loss of quorum, and
//! compare-and-set registration.

mod common;

use common::*;
use waymark_proto::pb;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn register_via_follower_is_read_consistently_everywhere_then_deregistered() {
    let cluster = TestCluster::start(3, |_| {}).await;
    let leader = cluster.wait_for_leader().await;
    let follower = cluster
        .running_ids()
        .into_iter()
        .find(|id| *id != leader)
        .unwrap();

    let mut via_follower = cluster.catalog(follower).await;
    let reg = via_follower
        .register(registration("web", "web-1", 8080))
        .await
        .expect("register through a follower")
        .into_inner();
    assert!(reg.index > 0);
    let inst = reg.instance.unwrap();
    assert_eq!(
        (inst.create_index, inst.modify_index),
        (reg.index, reg.index)
    );

    // A consistent read on every node sees the write at once, and says who served it.
    for id in cluster.running_ids() {
        let mut c = cluster.catalog(id).await;
        let (ids, meta) = list_ids(&mut c, "web", consistent()).await.unwrap();
        assert_eq!(ids, vec!["web-1"], "node {id}");
        assert!(
            meta.index >= reg.index,
            "node {id} answered at {} < {}",
            meta.index,
            reg.index
        );
        assert_eq!(meta.node_id, id);
        assert_eq!(meta.leader_id, Some(leader));
        assert_eq!(meta.consistency, pb::Consistency::Consistent as i32);
    }

    // A stale read on a follower reports its index and its last contact with the leader.
    let mut c = cluster.catalog(follower).await;
    let (ids, meta) = list_ids(&mut c, "web", stale(0)).await.unwrap();
    assert_eq!(ids, vec!["web-1"]);
    assert_eq!(meta.consistency, pb::Consistency::Stale as i32);
    assert!(meta.index >= reg.index);
    assert!(
        meta.last_contact_ms.is_some(),
        "a follower that applied a write has heard from the leader"
    );
    // GetInstance and ListServices agree.
    let got = c
        .get_instance(pb::GetInstanceRequest {
            service: "web".into(),
            id: "web-1".into(),
            read: consistent(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.instance.unwrap().port, 8080);
    let services = c
        .list_services(pb::ListServicesRequest { read: consistent() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(services.services.len(), 1);
    assert_eq!(services.services[0].name, "web");
    assert_eq!(services.services[0].instance_count, 1);

    // Deregister (through the other follower) is idempotent and reports what it did.
    let other = cluster
        .running_ids()
        .into_iter()
        .find(|id| *id != leader && *id != follower)
        .unwrap();
    let mut c = cluster.catalog(other).await;
    let del = pb::DeregisterRequest {
        service: "web".into(),
        id: "web-1".into(),
    };
    let first = c.deregister(del.clone()).await.unwrap().into_inner();
    assert!(first.removed);
    let second = c.deregister(del).await.unwrap().into_inner();
    assert!(!second.removed);
    assert!(second.index > first.index);
    for id in cluster.running_ids() {
        let mut c = cluster.catalog(id).await;
        let (ids, _) = list_ids(&mut c, "web", consistent()).await.unwrap();
        assert!(ids.is_empty(), "node {id} still lists {ids:?}");
        let err = c
            .get_instance(pb::GetInstanceRequest {
                service: "web".into(),
                id: "web-1".into(),
                read: consistent(),
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::NotFound);
    }
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn leader_shutdown_elects_a_new_leader_and_loses_nothing_acknowledged() {
    let mut cluster = TestCluster::start(3, |_| {}).await;
    let leader = cluster.wait_for_leader().await;
    let mut acknowledged = Vec::new();
    for i in 0..20 {
        let target = cluster.running_ids()[i % 3];
        let mut c = cluster.catalog(target).await;
        let id = format!("a-{i}");
        c.register(registration("api", &id, 9000)).await.unwrap();
        acknowledged.push(id);
    }

    cluster.stop(leader).await;
    let new_leader = cluster.wait_for_leader().await;
    assert_ne!(new_leader, leader);

    for i in 0..20 {
        let survivors = cluster.running_ids();
        let mut c = cluster.catalog(survivors[i % survivors.len()]).await;
        let id = format!("b-{i}");
        c.register(registration("api", &id, 9000))
            .await
            .expect("writes continue with two of three nodes");
        acknowledged.push(id);
    }
    acknowledged.sort();
    for id in cluster.running_ids() {
        let mut c = cluster.catalog(id).await;
        let (ids, _) = list_ids(&mut c, "api", consistent()).await.unwrap();
        assert_eq!(ids, acknowledged, "node {id}");
    }
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_without_quorum_refuses_consistent_and_too_stale_reads() {
    let mut cluster = TestCluster::start(3, |c| c.request_timeout_ms = 1_000).await;
    let leader = cluster.wait_for_leader().await;
    let mut c = cluster.catalog(leader).await;
    c.register(registration("db", "db-1", 5432)).await.unwrap();
    let follower = cluster
        .running_ids()
        .into_iter()
        .find(|id| *id != leader)
        .unwrap();
    // Make sure the follower has applied the write before it is cut off.
    let mut f = cluster.catalog(follower).await;
    list_ids(&mut f, "db", consistent()).await.unwrap();

    for id in cluster.running_ids() {
        if id != follower {
            cluster.stop(id).await;
        }
    }
    // Stale reads without a bound still answer from the replica, saying how old it is.
    let (ids, meta) = list_ids(&mut f, "db", stale(0)).await.unwrap();
    assert_eq!(ids, vec!["db-1"]);
    assert!(meta.last_contact_ms.is_some());
    // With a bound, the answer turns into an error once the bound is passed.
    let err = wait_for("a stale read to be refused", || {
        let mut f = f.clone();
        async move { list_ids(&mut f, "db", stale(500)).await.err() }
    })
    .await;
    assert_eq!(err.code(), tonic::Code::Unavailable);
    assert!(err.message().contains("max_stale"), "{}", err.message());
    // Consistent reads and writes cannot be served without a quorum.
    let err = list_ids(&mut f, "db", consistent()).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unavailable, "{err:?}");
    let err = f
        .register(registration("db", "db-2", 5432))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unavailable, "{err:?}");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn compare_and_set_registration_commits_only_on_the_expected_modify_index() {
    let cluster = TestCluster::start(3, |_| {}).await;
    let leader = cluster.wait_for_leader().await;
    let follower = cluster
        .running_ids()
        .into_iter()
        .find(|id| *id != leader)
        .unwrap();
    let cas = |port: u32, expected: u64| pb::RegisterRequest {
        expected_modify_index: Some(expected),
        ..registration("jepsen", "k1", port)
    };
    let get = |mut c: pb::catalog_client::CatalogClient<_>| async move {
        c.get_instance(pb::GetInstanceRequest {
            service: "jepsen".into(),
            id: "k1".into(),
            read: consistent(),
        })
        .await
        .map(|r| r.into_inner().instance.unwrap())
    };

    // 0 = create only if absent; through a follower, so the command is forwarded.
    let mut via_follower = cluster.catalog(follower).await;
    let created = via_follower
        .register(cas(1, 0))
        .await
        .expect("cas=0 on an absent instance")
        .into_inner();
    let created_index = created.instance.unwrap().modify_index;
    let err = via_follower.register(cas(2, 0)).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::FailedPrecondition, "{err:?}");
    assert_eq!(
        err.message(),
        format!(
            "instance jepsen/k1 already exists with modify index {created_index}, expected 0 (absent)"
        )
    );

    // The right index commits.
    let mut on_leader = cluster.catalog(leader).await;
    let updated = on_leader
        .register(cas(3, created_index))
        .await
        .expect("cas with the current modify index")
        .into_inner();
    let current = updated.instance.unwrap();
    assert_eq!(current.port, 3);
    assert_eq!(current.modify_index, updated.index);
    assert_eq!(current.create_index, created_index);

    // A stale index fails (on the leader and through a follower) and changes nothing.
    for (c, what) in [(&mut on_leader, "leader"), (&mut via_follower, "follower")] {
        let err = c.register(cas(4, created_index)).await.unwrap_err();
        assert_eq!(
            err.code(),
            tonic::Code::FailedPrecondition,
            "{what}: {err:?}"
        );
        assert_eq!(
            err.message(),
            format!(
                "instance jepsen/k1 has modify index {}, expected {created_index}",
                current.modify_index
            ),
            "{what}"
        );
    }
    for id in cluster.running_ids() {
        assert_eq!(
            get(cluster.catalog(id).await).await.unwrap(),
            current,
            "node {id}"
        );
    }

    // A non-zero expectation on an absent instance names the instance too.
    let err = on_leader
        .register(pb::RegisterRequest {
            expected_modify_index: Some(7),
            ..registration("jepsen", "k2", 1)
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::FailedPrecondition);
    assert_eq!(
        err.message(),
        "instance jepsen/k2 does not exist, expected 7"
    );
    cluster.shutdown().await;
}
