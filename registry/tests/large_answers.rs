//! Large answers in pieces: a service whose instances encode to about 6 MB is read by
//! a stock gRPC client (tonic's default 4 MiB message limit) through StreamInstances
//! and through a watch snapshot in parts, all at one index; waymark-client's follower
//! delivers the snapshot joined as one; and `waymark instances` prints the whole
//! service, text and JSON, from the streamed parts.

mod common;

use std::process::Command;

use common::*;
use prost::Message;
use waymark_client::{ConnectOptions, Endpoints, WatchFollower, WatchItem};
use waymark_proto::pb;
use waymark_proto::pb::catalog_client::CatalogClient;
use waymark_proto::pb::watch_response::Event;

const SERVICE: &str = "big";
const INSTANCES: usize = 200;
/// gRPC's default message limit, which stock clients keep.
const STOCK_LIMIT: usize = 4 << 20;

/// About 30 KB of metadata per instance: 200 of them are about 6 MB.
fn big_registration(id: usize) -> pb::RegisterRequest {
    let mut r = registration(SERVICE, &format!("big-{id:03}"), 80);
    r.meta = (0..60)
        .map(|k| (format!("key-{k:02}"), format!("{id:03}-").repeat(120)))
        .collect();
    r
}

async fn fill(addr: &str) {
    let mut tasks = tokio::task::JoinSet::new();
    for shard in 0..8 {
        let addr = addr.to_string();
        tasks.spawn(async move {
            let mut c = catalog_client(&addr).await;
            for id in (shard..INSTANCES).step_by(8) {
                c.register(big_registration(id)).await.unwrap();
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
}

fn ids(instances: &[pb::Instance]) -> Vec<String> {
    instances.iter().map(|i| i.id.clone()).collect()
}

fn all_ids() -> Vec<String> {
    (0..INSTANCES).map(|id| format!("big-{id:03}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_service_larger_than_the_stock_message_limit_is_read_in_parts() {
    let cluster = TestCluster::start(1, |_| {}).await;
    let leader = cluster.wait_for_leader().await;
    let addr = cluster.node(leader).config.api_addr.clone();
    fill(&addr).await;
    let mut stock = CatalogClient::new(channel(&addr).await);
    let request = pb::ListInstancesRequest {
        service: SERVICE.into(),
        ..Default::default()
    };

    // The unary answer is too large for a stock client: that is what parts are for.
    let whole = stock.list_instances(request.clone()).await.unwrap_err();
    assert_eq!(whole.code(), tonic::Code::OutOfRange, "{whole:?}");

    // StreamInstances: parts under the limit, one meta, the last marked.
    let mut parts = stock.stream_instances(request).await.unwrap().into_inner();
    let mut listed = Vec::new();
    let mut metas = Vec::new();
    let mut more = Vec::new();
    while let Some(part) = parts.message().await.unwrap() {
        assert!(part.encoded_len() < STOCK_LIMIT);
        listed.extend(ids(&part.instances));
        metas.push(part.meta.unwrap().index);
        more.push(part.more);
    }
    assert!(more.len() >= 2, "{} parts", more.len());
    assert_eq!(more.last(), Some(&false));
    assert!(more[..more.len() - 1].iter().all(|m| *m), "{more:?}");
    assert!(metas.iter().all(|i| *i == metas[0]), "{metas:?}");
    assert_eq!(listed, all_ids(), "every instance once, in id order");

    // A watch snapshot in parts, at one index, then the next change after them.
    let mut stream = stock
        .watch(pb::WatchRequest {
            services: vec![SERVICE.into()],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut snapshot = Vec::new();
    let mut at = None;
    loop {
        let m = stream.message().await.unwrap().expect("stream open");
        assert!(m.encoded_len() < STOCK_LIMIT);
        let Some(Event::Snapshot(part)) = m.event else {
            panic!("expected snapshot parts first, got {m:?}");
        };
        assert_eq!(*at.get_or_insert(m.index), m.index);
        snapshot.push(part.instances.len());
        if !part.more {
            break;
        }
    }
    assert!(snapshot.len() >= 2, "{snapshot:?}");
    assert_eq!(snapshot.iter().sum::<usize>(), INSTANCES);
    let mut c = catalog_client(&addr).await;
    let added = c
        .register(registration(SERVICE, "small", 81))
        .await
        .unwrap()
        .into_inner()
        .index;
    loop {
        let m = stream.message().await.unwrap().expect("stream open");
        match m.event {
            Some(Event::Progress(_)) => continue,
            Some(Event::Changes(_)) => {
                assert_eq!(m.index, added);
                break;
            }
            other => panic!("expected the change, got {other:?}"),
        }
    }

    // waymark-client's follower joins the parts into the one snapshot it delivers.
    let client = waymark_client::Client::new(
        Endpoints::new([addr.as_str()]).unwrap(),
        ConnectOptions::default(),
    );
    let mut follower = WatchFollower::new(
        client,
        pb::WatchRequest {
            services: vec![SERVICE.into()],
            ..Default::default()
        },
    );
    let first = loop {
        if let WatchItem::Message(m) = follower.next().await.unwrap() {
            break m;
        }
    };
    let Some(Event::Snapshot(joined)) = first.event else {
        panic!("expected the snapshot, got {first:?}");
    };
    assert!(!joined.more);
    assert_eq!(joined.instances.len(), INSTANCES + 1);
    assert_eq!(first.index, added);

    // The CLI prints the whole service from the parts, as JSON and as a table.
    let cli = |json: bool| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_waymark"));
        cmd.args(["instances", SERVICE, "--addr", &addr]);
        if json {
            cmd.arg("--json");
        }
        cmd.env_remove("WAYMARK_CACERT").env_remove("WAYMARK_TOKEN");
        tokio::task::spawn_blocking(move || cmd.output().expect("running waymark"))
    };
    let out = cli(true).await.unwrap();
    assert!(out.status.success(), "{out:?}");
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let printed = doc["instances"].as_array().unwrap();
    assert_eq!(printed.len(), INSTANCES + 1);
    assert_eq!(doc["meta"]["index"], serde_json::json!(added));
    let out = cli(false).await.unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("ID "), "{}", lines[0]);
    assert_eq!(lines.iter().filter(|l| l.starts_with("ID ")).count(), 1);
    assert_eq!(
        lines.iter().filter(|l| l.starts_with("big-")).count(),
        INSTANCES
    );
    assert!(lines.iter().any(|l| l.starts_with("small ")));
    assert!(
        lines
            .last()
            .unwrap()
            .starts_with(&format!("index {added} ")),
        "{}",
        lines.last().unwrap()
    );
    cluster.shutdown().await;
}
