//! Snapshots: enough writes trigger a snapshot and a log purge, and a fourth node
//! added with AddMember catches up through InstallSnapshot (in chunks, each written
//! to a file as it arrives) and serves consistent reads;
//! a catalog holding every record kind arrives whole and survives a restart; a watch
//! open on the node that installs it gets a Reset and the new state.

mod common;

use common::watch::{kind, next, watch_request};
use common::*;
use waymark_proto::pb;
use waymark_proto::pb::watch_response::Event;
use waymark_registry::ServerConfig;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn new_member_catches_up_from_a_snapshot_after_the_log_was_purged() {
    let mut cluster = TestCluster::start(3, |c| {
        c.snapshot_threshold = 50;
        c.logs_to_keep = 0;
        // The snapshot of 150 instances is tens of KB: it goes in several chunks.
        c.snapshot_chunk_bytes = 4096;
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

    let (fourth, api) = add_fourth_node(&cluster, leader).await;

    // AddMember made it a voter only once it had caught up, which it could only do
    // through InstallSnapshot: the log prefix is gone.
    let node4 = fourth.node.clone();
    assert_eq!(node4.metrics.snapshots_installed.get(), 1);
    let mut c4 = catalog_client(&api).await;
    let (ids, meta) = list_ids(&mut c4, "store", consistent()).await.unwrap();
    assert_eq!(ids, expected);
    assert_eq!(meta.node_id, 4);
    let chunks = node4.metrics.snapshot_chunks_received.get();
    assert!(chunks >= 2, "the snapshot came in {chunks} chunk(s)");
    // Received into a file, then stored as the node's snapshot; nothing left over.
    let snapshots: Vec<String> = std::fs::read_dir(cluster.dir.path().join("node-4/snapshots"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(snapshots, ["current.snap"]);
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

/// Starts a fourth, empty node and adds it through a follower.
async fn add_fourth_node(cluster: &TestCluster, leader: u64) -> (TestNode, String) {
    let (fourth, api, raft) = start_fourth_node(cluster).await;
    add_fourth_member(cluster, leader, &api, raft).await;
    (fourth, api)
}

/// A fourth node, started empty and not yet a member: (node, API, Raft address).
async fn start_fourth_node(cluster: &TestCluster) -> (TestNode, String, String) {
    let (listeners, api, raft, admin) = bind_listeners().await;
    let mut cfg = ServerConfig::new(4, cluster.dir.path().join("node-4"));
    cfg.api_addr = api.clone();
    cfg.raft_addr = raft.clone();
    cfg.admin_addr = admin;
    cfg.dns_addr = listeners.dns.local_addr().unwrap().to_string();
    (start_node(cfg, listeners).await, api, raft)
}

/// Adds node 4 as a voter through a follower.
async fn add_fourth_member(cluster: &TestCluster, leader: u64, api: &str, raft: String) {
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
            api_addr: api.to_string(),
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
}

/// The next message that is not Progress, with the Progress seen before it.
async fn next_event(
    stream: &mut tonic::Streaming<pb::WatchResponse>,
) -> (pb::WatchResponse, Vec<pb::WatchProgress>) {
    let mut progress = Vec::new();
    loop {
        let m = next(stream).await;
        match m.event {
            Some(Event::Progress(p)) => progress.push(p),
            _ => return (m, progress),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_watch_on_a_node_that_installs_a_snapshot_is_reset_to_the_new_state() {
    let mut cluster = TestCluster::start(3, |c| {
        c.snapshot_threshold = 50;
        c.logs_to_keep = 0;
    })
    .await;
    let leader = cluster.wait_for_leader().await;
    let mut c = cluster.catalog(leader).await;
    for i in 0..60 {
        let id = format!("s-{i:02}");
        c.register(registration("store", &id, 7000)).await.unwrap();
    }
    let leader_node = cluster.node(leader).node.clone();
    wait_for("a snapshot and a purge on the leader", || {
        let v = leader_node.view();
        async move { (v.snapshot_index > 0 && v.purged_index > 0).then_some(()) }
    })
    .await;

    // Watch the empty node before it joins: an empty snapshot, then Progress saying it
    // has never heard from a leader.
    let (fourth, api, raft) = start_fourth_node(&cluster).await;
    let mut w = catalog_client(&api)
        .await
        .watch(watch_request(&["store"], 0))
        .await
        .unwrap()
        .into_inner();
    let (first, _) = next_event(&mut w).await;
    let Some(Event::Snapshot(empty)) = &first.event else {
        panic!("expected a snapshot first, got {first:?}");
    };
    assert!(empty.instances.is_empty());
    let lonely = loop {
        let m = next(&mut w).await;
        if let Some(Event::Progress(p)) = m.event {
            break p;
        }
    };
    assert_eq!(lonely.last_contact_ms, None);
    assert!(lonely.leader_lost, "{lonely:?}");

    add_fourth_member(&cluster, leader, &api, raft).await;
    let (reset, _) = next_event(&mut w).await;
    let Some(Event::Reset(r)) = &reset.event else {
        panic!("expected a reset, got {reset:?}");
    };
    assert_eq!(r.reason, pb::ResetReason::SnapshotInstalled as i32);
    let (snapshot, _) = next_event(&mut w).await;
    assert_eq!(kind(&snapshot), "snapshot");
    assert_eq!(snapshot.index, reset.index);
    let Some(Event::Snapshot(s)) = &snapshot.event else {
        unreachable!()
    };
    assert!(
        s.instances.len() <= 60 && !s.instances.is_empty(),
        "{}",
        s.instances.len()
    );
    // The stream carries on to the rest, and Progress now reports a leader's contact.
    let mut seen = s.instances.len();
    let mut in_touch = None;
    while seen < 60 || in_touch.is_none() {
        let m = next(&mut w).await;
        match m.event {
            Some(Event::Changes(ch)) => seen += ch.changes.len(),
            Some(Event::Progress(p)) if p.last_contact_ms.is_some() && !p.leader_lost => {
                in_touch = Some(p)
            }
            Some(Event::Progress(_)) => {}
            other => panic!("unexpected after the snapshot: {other:?}"),
        }
    }
    assert_eq!(seen, 60);
    cluster.nodes.push(Some(fourth));
    cluster.shutdown().await;
}

/// (state digest, index it is at) of every running node.
async fn digests(cluster: &TestCluster) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    for id in cluster.running_ids() {
        let s = cluster
            .cluster(id)
            .await
            .status(pb::StatusRequest {})
            .await
            .unwrap()
            .into_inner();
        out.push((s.state_digest, s.digest_index));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_record_kind_survives_snapshot_install_and_restart() {
    let mut cluster = TestCluster::start(3, |c| {
        c.snapshot_threshold = 40;
        c.logs_to_keep = 0;
    })
    .await;
    let leader = cluster.wait_for_leader().await;
    let addr = cluster.node(leader).config.api_addr.clone();
    let mut c = cluster.catalog(leader).await;
    let mut leases = pb::leases_client::LeasesClient::new(channel(&addr).await);
    let mut config = pb::config_client::ConfigClient::new(channel(&addr).await);
    let lease = leases
        .create_lease(pb::CreateLeaseRequest { ttl_ms: 600_000 })
        .await
        .unwrap()
        .into_inner()
        .lease_id;
    // ACL records too (ACLs are off here, so no token is needed to write them).
    let mut acl = pb::acl_client::AclClient::new(channel(&addr).await);
    acl.bootstrap(pb::BootstrapAclRequest {}).await.unwrap();
    acl.put_policy(pb::PutPolicyRequest {
        name: "api-read".into(),
        description: String::new(),
        rules: vec![pb::AclRule {
            resource: pb::AclResource::Service as i32,
            name: "api".into(),
            prefix: false,
            access: pb::AclAccess::Read as i32,
        }],
    })
    .await
    .unwrap();
    acl.put_auth_method(pb::PutAuthMethodRequest {
        method: Some(pb::AclAuthMethod {
            name: "ci".into(),
            r#type: "jwt".into(),
            issuer: "https://ci.example".into(),
            audiences: vec!["waymark".into()],
            jwks: common::jwt::Issuer::es256("k").jwks(),
            ..Default::default()
        }),
    })
    .await
    .unwrap();
    acl.create_binding_rule(pb::CreateBindingRuleRequest {
        method: "ci".into(),
        selector: "service=api".into(),
        policies: vec!["api-read".into()],
        description: String::new(),
    })
    .await
    .unwrap();
    // Mesh records: an intention (the CA root is the leader's own, from bootstrap).
    let mut intentions = pb::intentions_client::IntentionsClient::new(channel(&addr).await);
    intentions
        .put(pb::PutIntentionRequest {
            source: "web".into(),
            destination: "api".into(),
            action: pb::IntentionAction::Deny as i32,
            description: "kept through snapshots".into(),
        })
        .await
        .unwrap();
    for i in 0..30 {
        let mut r = registration("api", &format!("i-{i:02}"), 9000);
        if i % 2 == 0 {
            r.lease_id = lease;
        }
        c.register(r).await.unwrap();
        config
            .put(pb::PutConfigRequest {
                key: format!("proxy/api/k{i:02}"),
                value: format!("v{i}").into_bytes(),
                expected_modify_index: None,
            })
            .await
            .unwrap();
    }
    let leader_node = cluster.node(leader).node.clone();
    wait_for("a snapshot and a purge on the leader", || {
        let v = leader_node.view();
        async move { (v.snapshot_index > 0 && v.purged_index > 0).then_some(()) }
    })
    .await;

    let (fourth, api) = add_fourth_node(&cluster, leader).await;
    let node4 = fourth.node.clone();
    let config4 = fourth.config.clone();
    cluster.nodes.push(Some(fourth));
    wait_for("node 4 to install a snapshot", || {
        let n = node4.metrics.snapshots_installed.get();
        async move { (n >= 1).then_some(()) }
    })
    .await;
    let agreed = wait_for("every node at one digest", || async {
        let d = digests(&cluster).await;
        d.iter().all(|x| *x == d[0]).then(|| d[0].clone())
    })
    .await;
    // The snapshot carried each kind: leases (the instances under one still say so),
    // config entries, ACL tokens, policies, the bootstrap marker, auth methods and
    // binding rules (which name their method).
    let mut config4_client = pb::config_client::ConfigClient::new(channel(&api).await);
    let listed = config4_client
        .list(pb::ListConfigRequest {
            prefix: "proxy/api".into(),
            read: stale(0),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.entries.len(), 30);
    let a = catalog_client(&api)
        .await
        .get_instance(pb::GetInstanceRequest {
            service: "api".into(),
            id: "i-00".into(),
            read: stale(0),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(a.instance.unwrap().lease_id, lease);
    let mut acl4 = pb::acl_client::AclClient::new(channel(&api).await);
    let tokens = acl4
        .list_tokens(pb::ListTokensRequest { read: stale(0) })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(tokens.tokens.len(), 1);
    assert_eq!(tokens.tokens[0].origin, "bootstrap");
    let policies = acl4
        .list_policies(pb::ListPoliciesRequest { read: stale(0) })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(policies.policies.len(), 1);
    let rules = acl4
        .list_binding_rules(pb::ListBindingRulesRequest {
            method: "ci".into(),
            read: stale(0),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(rules.rules.len(), 1);
    assert_eq!(rules.rules[0].selector, "service=api");
    let listed = pb::intentions_client::IntentionsClient::new(channel(&api).await)
        .list(pb::ListIntentionsRequest {
            destination: String::new(),
            read: stale(0),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.intentions.len(), 1);
    assert_eq!(listed.intentions[0].description, "kept through snapshots");
    let roots = pb::identity_client::IdentityClient::new(channel(&api).await)
        .list_roots(pb::ListRootsRequest { read: stale(0) })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(roots.roots.len(), 1, "the CA root came with the snapshot");
    assert!(roots.roots[0].active);

    // Restarted on its data dir, node 4 comes back to the same state.
    cluster.stop(4).await;
    cluster.restart(4, config4).await;
    let after = wait_for("every node at one digest after the restart", || async {
        let d = digests(&cluster).await;
        d.iter().all(|x| *x == d[0]).then(|| d[0].clone())
    })
    .await;
    assert_eq!(after, agreed, "the state changed across the restart");
    // Bootstrap stays done through the new node too (the refusal is itself an entry,
    // so this comes after the digests are compared).
    let again = acl4.bootstrap(pb::BootstrapAclRequest {}).await;
    assert_eq!(again.unwrap_err().code(), tonic::Code::FailedPrecondition);
    cluster.shutdown().await;
}
