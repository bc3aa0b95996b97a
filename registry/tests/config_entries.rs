//! Config entries over gRPC: compare-and-set puts and deletes, reads by key and by
//! prefix in both consistency modes, bad input named by field, and config entries
//! watched together with instances on one stream in one index order, resumed on
//! another node with nothing missed or repeated.

mod common;

use common::watch::{kind, next, WatchModel};
use common::*;
use tonic::transport::Channel;
use waymark_proto::errors::{ErrorDetail, Reason};
use waymark_proto::pb;
use waymark_proto::pb::config_client::ConfigClient;

async fn config_client(addr: &str) -> ConfigClient<Channel> {
    ConfigClient::new(channel(addr).await)
}

fn put(key: &str, value: &str, cas: Option<u64>) -> pb::PutConfigRequest {
    pb::PutConfigRequest {
        key: key.into(),
        value: value.as_bytes().to_vec(),
        expected_modify_index: cas,
    }
}

fn keys(entries: &[pb::ConfigEntry]) -> Vec<&str> {
    entries.iter().map(|e| e.key.as_str()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn put_get_list_delete_with_compare_and_set() {
    let cluster = TestCluster::start(3, |_| {}).await;
    let leader = cluster.wait_for_leader().await;
    let follower = cluster
        .running_ids()
        .into_iter()
        .find(|id| *id != leader)
        .unwrap();
    // Writes through a follower are forwarded.
    let mut c = config_client(&cluster.node(follower).config.api_addr).await;

    let first = c
        .put(put("proxy/web/timeouts", "5s", Some(0)))
        .await
        .unwrap()
        .into_inner();
    let entry = first.entry.unwrap();
    assert_eq!(
        (entry.create_index, entry.modify_index),
        (first.index, first.index)
    );
    let again = c
        .put(put("proxy/web/timeouts", "9s", Some(0)))
        .await
        .unwrap_err();
    assert_eq!(again.code(), tonic::Code::FailedPrecondition);
    assert!(
        again.message().contains(&format!(
            "config entry proxy/web/timeouts already exists with modify index {}",
            first.index
        )),
        "{}",
        again.message()
    );
    let second = c
        .put(put("proxy/web/timeouts", "7s", Some(first.index)))
        .await
        .unwrap()
        .into_inner();
    c.put(put("proxy/web", "on", None)).await.unwrap();
    c.put(put("proxy/webx", "other", None)).await.unwrap();
    c.put(put("dns/ttl", "30", None)).await.unwrap();

    let got = c
        .get(pb::GetConfigRequest {
            key: "proxy/web/timeouts".into(),
            read: consistent(),
        })
        .await
        .unwrap()
        .into_inner();
    let e = got.entry.unwrap();
    assert_eq!(e.value, b"7s");
    assert_eq!(
        (e.create_index, e.modify_index),
        (first.index, second.index)
    );
    assert!(got.meta.unwrap().index >= second.index);

    let listed = c
        .list(pb::ListConfigRequest {
            prefix: "proxy/web".into(),
            read: consistent(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(keys(&listed.entries), ["proxy/web", "proxy/web/timeouts"]);
    let all = c
        .list(pb::ListConfigRequest {
            prefix: String::new(),
            read: stale(0),
        })
        .await
        .unwrap()
        .into_inner();
    let meta = all.meta.unwrap();
    assert_eq!(meta.consistency, pb::Consistency::Stale as i32);

    // Delete with a stale expectation changes nothing; with the right one it goes.
    let refused = c
        .delete(pb::DeleteConfigRequest {
            key: "proxy/web/timeouts".into(),
            expected_modify_index: Some(first.index),
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::FailedPrecondition);
    let deleted = c
        .delete(pb::DeleteConfigRequest {
            key: "proxy/web/timeouts".into(),
            expected_modify_index: Some(second.index),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(deleted.removed);
    let missing = c
        .get(pb::GetConfigRequest {
            key: "proxy/web/timeouts".into(),
            read: consistent(),
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), tonic::Code::NotFound);
    assert_eq!(
        ErrorDetail::from_status(&missing).map(|d| d.reason),
        Some(Reason::NotFound)
    );
    let idempotent = c
        .delete(pb::DeleteConfigRequest {
            key: "proxy/web/timeouts".into(),
            expected_modify_index: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!idempotent.removed);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_keys_and_oversized_values_name_the_field() {
    let cluster = TestCluster::start(1, |_| {}).await;
    cluster.wait_for_leader().await;
    let mut c = config_client(&cluster.node(1).config.api_addr).await;
    let cases = [
        (put("Proxy/web", "v", None), "key"),
        (put("proxy//web", "v", None), "key"),
        (put("", "v", None), "key"),
        (
            pb::PutConfigRequest {
                key: "big".into(),
                value: vec![b'x'; 64 * 1024 + 1],
                expected_modify_index: None,
            },
            "value",
        ),
    ];
    for (req, field) in cases {
        let key = req.key.clone();
        let e = c.put(req).await.unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument, "{key:?}");
        assert!(
            e.message().starts_with(&format!("invalid {field}:")),
            "{}",
            e.message()
        );
        let detail = ErrorDetail::from_status(&e).expect("a machine-readable detail");
        assert_eq!(detail.field.as_deref(), Some(field));
    }
    let e = c
        .list(pb::ListConfigRequest {
            prefix: "a/".into(),
            read: None,
        })
        .await
        .unwrap_err();
    assert_eq!(
        ErrorDetail::from_status(&e).unwrap().field.as_deref(),
        Some("prefix")
    );
    // Nothing was written.
    let all = c
        .list(pb::ListConfigRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(all.entries.is_empty());
    cluster.shutdown().await;
}

fn topics_request(from_index: u64) -> pb::WatchRequest {
    use pb::watch_topic::Topic;
    pb::WatchRequest {
        from_index,
        progress_interval_ms: 200,
        topics: vec![
            pb::WatchTopic {
                topic: Some(Topic::Instances(pb::InstancesTopic {
                    services: vec!["web".into()],
                    ..Default::default()
                })),
            },
            pb::WatchTopic {
                topic: Some(Topic::Config(pb::ConfigTopic {
                    prefix: "proxy".into(),
                })),
            },
        ],
        ..Default::default()
    }
}

/// Reads until the model has seen a change at or after `index`.
async fn read_until(
    stream: &mut tonic::Streaming<pb::WatchResponse>,
    model: &mut WatchModel,
    index: u64,
) {
    while model.last_change_index < index {
        let m = next(stream).await;
        model.apply(&m);
    }
}

/// The committed writes this test makes, by index: what a watcher of `web` instances
/// and `proxy` config must see, in order.
#[derive(Debug, PartialEq, Eq, Clone)]
enum Seen {
    Instance(String, bool),
    Config(String, bool),
}

fn seen(change: &pb::RecordChange) -> Seen {
    use pb::record_change::Change;
    match change.change.as_ref().unwrap() {
        Change::Upsert(i) => Seen::Instance(i.id.clone(), true),
        Change::Remove(k) => Seen::Instance(k.id.clone(), false),
        Change::ConfigUpsert(e) => Seen::Config(e.key.clone(), true),
        Change::ConfigRemove(k) => Seen::Config(k.clone(), false),
        other => panic!("not asked for: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn config_and_instances_on_one_stream_in_index_order_resumed_elsewhere() {
    let cluster = TestCluster::start(3, |_| {}).await;
    let leader = cluster.wait_for_leader().await;
    let addr = |id: u64| cluster.node(id).config.api_addr.clone();
    let mut cat = cluster.catalog(leader).await;
    let mut cfg = config_client(&addr(leader)).await;
    cat.register(registration("web", "a", 80)).await.unwrap();
    cfg.put(put("proxy/web", "v0", None)).await.unwrap();
    cfg.put(put("other/x", "not watched", None)).await.unwrap();

    let mut stream = cat.watch(topics_request(0)).await.unwrap().into_inner();
    let first = next(&mut stream).await;
    assert_eq!(kind(&first), "snapshot");
    let mut model = WatchModel::default();
    model.apply(&first);
    assert_eq!(model.ids("web"), ["a"]);
    assert_eq!(model.config.keys().collect::<Vec<_>>(), ["proxy/web"]);

    // Interleaved writes of both kinds, some not watched.
    let mut committed: Vec<(u64, Seen)> = Vec::new();
    for round in 0..4 {
        let i = cat
            .register(registration("web", &format!("w{round}"), 80))
            .await
            .unwrap()
            .into_inner()
            .index;
        committed.push((i, Seen::Instance(format!("w{round}"), true)));
        cat.register(registration("db", &format!("d{round}"), 80))
            .await
            .unwrap();
        let key = format!("proxy/web/r{round}");
        let i = cfg
            .put(put(&key, "v", None))
            .await
            .unwrap()
            .into_inner()
            .index;
        committed.push((i, Seen::Config(key.clone(), true)));
        cfg.put(put(&format!("other/r{round}"), "v", None))
            .await
            .unwrap();
        if round % 2 == 1 {
            let i = cfg
                .delete(pb::DeleteConfigRequest {
                    key: key.clone(),
                    expected_modify_index: None,
                })
                .await
                .unwrap()
                .into_inner()
                .index;
            committed.push((i, Seen::Config(key, false)));
            let i = cat
                .deregister(pb::DeregisterRequest {
                    service: "web".into(),
                    id: format!("w{round}"),
                })
                .await
                .unwrap()
                .into_inner()
                .index;
            committed.push((i, Seen::Instance(format!("w{round}"), false)));
        }
    }
    // Read the first half here, then resume the rest on another node.
    let half = committed[committed.len() / 2 - 1].0;
    read_until(&mut stream, &mut model, half).await;
    drop(stream);
    let other = cluster
        .running_ids()
        .into_iter()
        .find(|id| *id != leader)
        .unwrap();
    let mut resumed = cluster
        .catalog(other)
        .await
        .watch(topics_request(model.last_change_index))
        .await
        .unwrap()
        .into_inner();
    let last = committed.last().unwrap().0;
    read_until(&mut resumed, &mut model, last).await;

    let got: Vec<(u64, Seen)> = model.log.iter().map(|(i, c)| (*i, seen(c))).collect();
    assert_eq!(
        got, committed,
        "watched changes differ from the committed writes"
    );
    assert_eq!(model.ids("web"), ["a", "w0", "w2"]);
    assert_eq!(
        model.config.keys().collect::<Vec<_>>(),
        ["proxy/web", "proxy/web/r0", "proxy/web/r2"]
    );
    cluster.shutdown().await;
}
