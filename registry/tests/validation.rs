//! Bad input over gRPC: every validation rule answers INVALID_ARGUMENT naming the
//! field, and nothing is written.

mod common;

use common::*;
use waymark_proto::pb;

fn with(f: impl FnOnce(&mut pb::RegisterRequest)) -> pb::RegisterRequest {
    let mut r = registration("web", "web-1", 80);
    f(&mut r);
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_rule_names_its_field_and_writes_nothing() {
    let cluster = TestCluster::start(3, |_| {}).await;
    let leader = cluster.wait_for_leader().await;
    let follower = cluster
        .running_ids()
        .into_iter()
        .find(|id| *id != leader)
        .unwrap();
    let mut c = cluster.catalog(follower).await;
    let before = c
        .list_services(pb::ListServicesRequest { read: consistent() })
        .await
        .unwrap()
        .into_inner();

    let cases: Vec<(&str, pb::RegisterRequest)> = vec![
        ("service", with(|r| r.service = "".into())),
        ("service", with(|r| r.service = "Web".into())),
        ("service", with(|r| r.service = "web_api".into())),
        ("service", with(|r| r.service = "-web".into())),
        ("service", with(|r| r.service = "x".repeat(64))),
        ("id", with(|r| r.id = "web 1".into())),
        ("id", with(|r| r.id = "".into())),
        ("address", with(|r| r.address = "".into())),
        ("address", with(|r| r.address = "999.1.1.1".into())),
        ("address", with(|r| r.address = "bad..host".into())),
        ("port", with(|r| r.port = 0)),
        ("port", with(|r| r.port = 70000)),
        (
            "tags",
            with(|r| r.tags = (0..33).map(|i| format!("t{i}")).collect()),
        ),
        (
            "tags[1]",
            with(|r| r.tags = vec!["ok".into(), "NOT_OK".into()]),
        ),
        (
            "tags[1]",
            with(|r| r.tags = vec!["dup".into(), "dup".into()]),
        ),
        (
            "meta",
            with(|r| r.meta = (0..65).map(|i| (format!("k{i}"), "v".into())).collect()),
        ),
        (
            "meta[\"bad key\"]",
            with(|r| r.meta = [("bad key".to_string(), "v".to_string())].into()),
        ),
        (
            "meta[\"big\"]",
            with(|r| r.meta = [("big".to_string(), "v".repeat(513))].into()),
        ),
        (
            "weights.passing",
            with(|r| {
                r.weights = Some(pb::Weights {
                    passing: 0,
                    warning: 1,
                })
            }),
        ),
        (
            "weights.warning",
            with(|r| {
                r.weights = Some(pb::Weights {
                    passing: 1,
                    warning: 65536,
                })
            }),
        ),
    ];
    for (field, req) in cases {
        let err = c.register(req).await.unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument, "{field}: {err:?}");
        assert!(
            err.message().starts_with(&format!("invalid {field}:")),
            "expected the message to name {field}: {}",
            err.message()
        );
    }

    let err = c
        .deregister(pb::DeregisterRequest {
            service: "web".into(),
            id: "Bad".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(err.message().starts_with("invalid id:"));
    let err = c
        .list_instances(pb::ListInstancesRequest {
            service: "web".into(),
            read: Some(pb::ReadOptions {
                consistency: 99,
                max_stale_ms: 0,
            }),
            passing_only: false,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(
        err.message().starts_with("invalid read.consistency:"),
        "{}",
        err.message()
    );
    let err = c
        .list_instances(pb::ListInstancesRequest {
            service: "web".into(),
            read: Some(pb::ReadOptions {
                consistency: pb::Consistency::Consistent as i32,
                max_stale_ms: 10,
            }),
            passing_only: false,
        })
        .await
        .unwrap_err();
    assert!(
        err.message().starts_with("invalid read.max_stale_ms:"),
        "{}",
        err.message()
    );
    let err = cluster
        .cluster(follower)
        .await
        .add_member(pb::AddMemberRequest {
            node_id: 9,
            api_addr: "nowhere".into(),
            raft_addr: "127.0.0.1:1".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(
        err.message().starts_with("invalid api_addr:"),
        "{}",
        err.message()
    );

    // Nothing was written: no services, and the catalog index has not moved.
    let after = c
        .list_services(pb::ListServicesRequest { read: consistent() })
        .await
        .unwrap()
        .into_inner();
    assert!(after.services.is_empty());
    assert_eq!(after.meta.unwrap().index, before.meta.unwrap().index);
    cluster.shutdown().await;
}
