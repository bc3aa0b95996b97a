//! Backups as an operator takes them, through the `waymark` binary: `snapshot save`
//! from a follower, `snapshot inspect`, and `snapshot restore` of every member of a
//! fresh cluster, which then holds exactly the saved state (same digest) and takes
//! new writes. A damaged file is refused by both inspect and restore.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::*;
use waymark_proto::pb;
use waymark_registry::catalog::Catalog;

fn waymark(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_waymark"))
        .args(args)
        .output()
        .expect("running waymark")
}

fn text(out: &[u8]) -> String {
    String::from_utf8_lossy(out).into_owned()
}

/// Runs `waymark` off the async runtime and insists that it succeeded.
async fn waymark_ok(args: Vec<String>) -> String {
    let out = tokio::task::spawn_blocking(move || {
        waymark(&args.iter().map(String::as_str).collect::<Vec<_>>())
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "waymark failed: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

async fn write_some_of_every_kind(cluster: &TestCluster, node: u64) {
    let api = cluster.node(node).config.api_addr.clone();
    let mut catalog = cluster.catalog(node).await;
    let lease = pb::leases_client::LeasesClient::new(channel(&api).await)
        .create_lease(pb::CreateLeaseRequest { ttl_ms: 600_000 })
        .await
        .unwrap()
        .into_inner()
        .lease_id;
    for i in 0..20 {
        let mut r = registration("web", &format!("w{i}"), 8000 + i);
        if i % 2 == 0 {
            r.lease_id = lease;
        }
        catalog.register(r).await.unwrap();
    }
    let mut config = pb::config_client::ConfigClient::new(channel(&api).await);
    for key in ["proxy/web/timeout", "proxy/db/timeout"] {
        config
            .put(pb::PutConfigRequest {
                key: key.into(),
                value: b"5s".to_vec(),
                ..Default::default()
            })
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_saved_backup_restores_onto_a_fresh_cluster_with_the_same_digest() {
    let original = TestCluster::start(3, |_| {}).await;
    let leader = original.wait_for_leader().await;
    let follower = original
        .running_ids()
        .into_iter()
        .find(|&id| id != leader)
        .unwrap();
    write_some_of_every_kind(&original, leader).await;

    let work = tempfile::tempdir().unwrap();
    let file = work.path().join("backup.snap");
    let saved = waymark_ok(vec![
        "snapshot".into(),
        "save".into(),
        file.display().to_string(),
        "--addr".into(),
        original.node(follower).config.api_addr.clone(),
    ])
    .await;
    assert!(saved.contains("saved snapshot at index"), "{saved}");
    // Nothing was written since, so the leader's state is the saved one.
    let (want_digest, want_index, want_tables) = {
        let c = original.node(leader).node.catalog.read().unwrap();
        (c.digest(), c.applied_index(), c.tables().clone())
    };
    original.shutdown().await;

    let inspected: serde_json::Value = serde_json::from_str(
        &waymark_ok(vec![
            "snapshot".into(),
            "inspect".into(),
            file.display().to_string(),
            "--json".into(),
        ])
        .await,
    )
    .unwrap();
    assert_eq!(inspected["index"], want_index);
    assert_eq!(inspected["records"]["instance"], 20);
    assert_eq!(inspected["records"]["lease"], 1);
    assert_eq!(inspected["records"]["config"], 2);

    // Restore every member of a new cluster (new addresses) from the file.
    let restored = TestCluster::start(3, |cfg| {
        let peers: Vec<String> = cfg
            .initial_cluster
            .iter()
            .map(|p| format!("{}={}/{}", p.node_id, p.raft_addr, p.api_addr))
            .collect();
        let out = waymark(&[
            "snapshot",
            "restore",
            &file.display().to_string(),
            "--node-id",
            &cfg.node_id.to_string(),
            "--data-dir",
            &cfg.data_dir.display().to_string(),
            "--initial-cluster",
            &peers.join(","),
        ]);
        assert!(
            out.status.success(),
            "restore: {}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
    })
    .await;
    let leader = restored.wait_for_leader().await;
    for id in restored.running_ids() {
        let (tables, index) = wait_for("the restored member to serve the backup", || async {
            let c = restored.node(id).node.catalog.read().unwrap();
            (c.applied_index() >= want_index).then(|| (c.tables().clone(), c.applied_index()))
        })
        .await;
        assert!(index >= want_index);
        assert_eq!(tables, want_tables, "node {id} restored other records");
        assert_eq!(
            Catalog::from_tables(tables, want_index).digest(),
            want_digest,
            "node {id}: digest at the backup's index"
        );
    }
    // The new cluster is live: consistent reads and new writes past the backup.
    let mut c = restored.catalog(leader).await;
    let (ids, _) = list_ids(&mut c, "web", consistent()).await.unwrap();
    assert_eq!(ids.len(), 20);
    let resp = c
        .register(registration("web", "new", 9000))
        .await
        .unwrap()
        .into_inner();
    assert!(resp.index > want_index);
    restored.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_damaged_backup_is_refused_by_inspect_and_restore() {
    let cluster = TestCluster::start(1, |_| {}).await;
    let leader = cluster.wait_for_leader().await;
    write_some_of_every_kind(&cluster, leader).await;
    let work = tempfile::tempdir().unwrap();
    let file = work.path().join("backup.snap");
    waymark_ok(vec![
        "snapshot".into(),
        "save".into(),
        file.display().to_string(),
        "--addr".into(),
        cluster.node(leader).config.api_addr.clone(),
    ])
    .await;
    cluster.shutdown().await;

    let good = std::fs::read(&file).unwrap();
    let damaged = work.path().join("damaged.snap");
    let mut bytes = good.clone();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    std::fs::write(&damaged, &bytes).unwrap();
    let truncated = work.path().join("truncated.snap");
    std::fs::write(&truncated, &good[..good.len() * 2 / 3]).unwrap();

    for bad in [&damaged, &truncated] {
        let out = waymark(&["snapshot", "inspect", &bad.display().to_string()]);
        assert!(!out.status.success());
        assert!(
            text(&out.stderr).contains("checksum"),
            "{}",
            text(&out.stderr)
        );

        let data_dir = work.path().join("restored");
        let out = waymark(&[
            "snapshot",
            "restore",
            &bad.display().to_string(),
            "--node-id",
            "1",
            "--data-dir",
            &data_dir.display().to_string(),
            "--initial-cluster",
            "1=127.0.0.1:1/127.0.0.1:2",
        ]);
        assert!(!out.status.success());
        assert!(
            text(&out.stderr).contains("checksum"),
            "{}",
            text(&out.stderr)
        );
        assert!(
            !Path::new(&data_dir).exists(),
            "a refused restore wrote nothing"
        );
    }
}
