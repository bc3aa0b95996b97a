//! Watch streams: from now, resumed from a past index on another node, from before
//! the history window (Reset), from a future index (waits), across the stop of the
//! serving node, for a watcher that stops reading (bounded, then Reset), a
//! passing-only watch as an instance leaves and comes back, watchers of one
//! selection sharing one encoding of each change, watchers of one service not
//! woken by changes to services of other shards, and one event reaching many
//! watchers on a connection in a few writes.

mod common;

use common::watch::{kind, next, watch_request, WatchModel};
use common::*;
use waymark_proto::pb;
use waymark_proto::pb::watch_response::Event;

fn deregistration(service: &str, id: &str) -> pb::DeregisterRequest {
    pb::DeregisterRequest {
        service: service.into(),
        id: id.into(),
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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn watch_from_now_then_resume_from_a_past_index_on_another_node() {
    let cluster = TestCluster::start(3, |_| {}).await;
    let leader = cluster.wait_for_leader().await;
    let mut w = cluster.catalog(leader).await;
    w.register(registration("web", "a", 80)).await.unwrap();
    w.register(registration("web", "b", 80)).await.unwrap();
    w.register(registration("other", "x", 80)).await.unwrap();

    // On the leader, the snapshot includes every acknowledged write.
    let mut s1 = cluster
        .catalog(leader)
        .await
        .watch(watch_request(&["web"], 0))
        .await
        .unwrap()
        .into_inner();
    let first = next(&mut s1).await;
    assert_eq!(kind(&first), "snapshot");
    let mut model = WatchModel::default();
    model.apply(&first);
    assert_eq!(model.ids("web"), vec!["a", "b"]);
    let snapshot_index = first.index;

    let c = w
        .register(registration("web", "c", 80))
        .await
        .unwrap()
        .into_inner()
        .index;
    w.register(registration("other", "y", 80)).await.unwrap();
    let d = w
        .deregister(deregistration("web", "a"))
        .await
        .unwrap()
        .into_inner()
        .index;
    read_until(&mut s1, &mut model, d).await;
    assert_eq!(model.ids("web"), vec!["b", "c"]);
    assert!(
        model.ids("other").is_empty(),
        "changes of other services must be filtered out"
    );
    let indexes: Vec<u64> = model.log.iter().map(|(i, _)| *i).collect();
    assert_eq!(indexes, vec![c, d]);

    // Resume on node 3 from the snapshot's index: exactly the same changes, no snapshot.
    let mut s2 = cluster
        .catalog(3)
        .await
        .watch(watch_request(&["web"], snapshot_index))
        .await
        .unwrap()
        .into_inner();
    let mut resumed = WatchModel {
        index: snapshot_index,
        last_change_index: snapshot_index,
        ..Default::default()
    };
    while resumed.last_change_index < d {
        let m = next(&mut s2).await;
        assert_ne!(
            kind(&m),
            "snapshot",
            "a resume inside the window sends no snapshot"
        );
        resumed.apply(&m);
    }
    assert_eq!(resumed.log, model.log);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn watch_from_before_the_history_window_gets_a_reset_and_a_snapshot() {
    let cluster = TestCluster::start(3, |c| c.watch_history = 3).await;
    let leader = cluster.wait_for_leader().await;
    let mut w = cluster.catalog(leader).await;
    let mut last = 0;
    for i in 0..10 {
        last = w
            .register(registration("web", &format!("i{i}"), 80))
            .await
            .unwrap()
            .into_inner()
            .index;
    }
    let mut s = cluster
        .catalog(leader)
        .await
        .watch(watch_request(&["web"], 1))
        .await
        .unwrap()
        .into_inner();
    let reset = next(&mut s).await;
    match reset.event {
        Some(Event::Reset(r)) => assert_eq!(r.reason, pb::ResetReason::Compacted as i32),
        other => panic!("expected a reset, got {other:?}"),
    }
    let snap = next(&mut s).await;
    assert_eq!(kind(&snap), "snapshot");
    assert!(snap.index >= last);
    let mut model = WatchModel::default();
    model.apply(&snap);
    assert_eq!(model.ids("web").len(), 10);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn watch_from_a_future_index_waits_then_delivers_or_gives_up() {
    let cluster = TestCluster::start(3, |c| c.request_timeout_ms = 2_000).await;
    let leader = cluster.wait_for_leader().await;
    let mut w = cluster.catalog(leader).await;
    let (_, meta) = list_ids(&mut w, "web", consistent()).await.unwrap();
    let from = meta.index + 2;

    let follower = cluster
        .running_ids()
        .into_iter()
        .find(|id| *id != leader)
        .unwrap();
    let mut wc = cluster.catalog(follower).await;
    let pending = tokio::spawn(async move { wc.watch(watch_request(&["web"], from)).await });
    let mut written = Vec::new();
    for i in 0..4 {
        written.push(
            w.register(registration("web", &format!("f{i}"), 80))
                .await
                .unwrap()
                .into_inner()
                .index,
        );
    }
    let mut s = pending
        .await
        .unwrap()
        .expect("the watch starts once the node catches up")
        .into_inner();
    let mut model = WatchModel {
        index: from,
        last_change_index: from,
        ..Default::default()
    };
    read_until(&mut s, &mut model, *written.last().unwrap()).await;
    let delivered: Vec<u64> = model.log.iter().map(|(i, _)| *i).collect();
    let expected: Vec<u64> = written.iter().copied().filter(|i| *i > from).collect();
    assert_eq!(delivered, expected);

    // An index the cluster never reaches: the node gives up rather than go back in time.
    let err = cluster
        .catalog(follower)
        .await
        .watch(watch_request(&["web"], from + 1_000))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unavailable);
    assert!(err.message().contains("from_index"), "{}", err.message());
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_watcher_whose_node_stops_resumes_elsewhere_with_exactly_the_committed_changes() {
    let mut cluster = TestCluster::start(3, |_| {}).await;
    let leader = cluster.wait_for_leader().await;
    let follower = cluster
        .running_ids()
        .into_iter()
        .find(|id| *id != leader)
        .unwrap();
    let other = cluster
        .running_ids()
        .into_iter()
        .find(|id| *id != leader && *id != follower)
        .unwrap();
    let leader_api = cluster.node(leader).config.api_addr.clone();

    let mut s = cluster
        .catalog(follower)
        .await
        .watch(watch_request(&["kv"], 0))
        .await
        .unwrap()
        .into_inner();
    let mut model = WatchModel::default();
    model.apply(&next(&mut s).await);
    let snapshot_index = model.index;

    // The committed sequence, as acknowledged to the writer: (index, is_upsert, id).
    let writer = tokio::spawn(async move {
        let mut c = catalog_client(&leader_api).await;
        let mut committed = Vec::new();
        for i in 0..40 {
            let id = format!("k{i}");
            let idx = c
                .register(registration("kv", &id, 80))
                .await
                .unwrap()
                .into_inner()
                .index;
            committed.push((idx, true, id));
            if i % 3 == 2 {
                let id = format!("k{}", i - 1);
                let idx = c
                    .deregister(deregistration("kv", &id))
                    .await
                    .unwrap()
                    .into_inner()
                    .index;
                committed.push((idx, false, id));
            }
        }
        committed
    });

    // Follow on the follower for a while, then lose it (a graceful stop; the Jepsen
    // watch workload resumes across kills, pauses and partitions).
    while model.log.len() < 10 {
        model.apply(&next(&mut s).await);
    }
    drop(s);
    cluster.stop(follower).await;
    let mut s = cluster
        .catalog(other)
        .await
        .watch(watch_request(&["kv"], model.index))
        .await
        .unwrap()
        .into_inner();
    let committed = writer.await.unwrap();
    let last = committed.last().unwrap().0;
    read_until(&mut s, &mut model, last).await;

    let seen: Vec<(u64, bool, String)> = model
        .log
        .iter()
        .map(|(i, ch)| match ch.change.as_ref().unwrap() {
            pb::record_change::Change::Upsert(inst) => (*i, true, inst.id.clone()),
            pb::record_change::Change::Remove(k) => (*i, false, k.id.clone()),
            other => panic!("config change on an instance watch: {other:?}"),
        })
        .collect();
    let expected: Vec<(u64, bool, String)> = committed
        .into_iter()
        .filter(|(i, _, _)| *i > snapshot_index)
        .collect();
    assert_eq!(
        seen, expected,
        "the watch must equal the committed sequence exactly"
    );
    let mut c = cluster.catalog(other).await;
    let (ids, _) = list_ids(&mut c, "kv", consistent()).await.unwrap();
    let mut watched = model.ids("kv");
    watched.sort();
    let mut ids = ids;
    ids.sort();
    assert_eq!(watched, ids);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_watcher_that_stops_reading_is_reset_and_then_converges() {
    let cluster = TestCluster::start(3, |c| c.watch_queue = 4).await;
    let leader = cluster.wait_for_leader().await;
    let mut w = cluster.catalog(leader).await;
    let mut s = cluster
        .catalog(leader)
        .await
        .watch(watch_request(&["big"], 0))
        .await
        .unwrap()
        .into_inner();
    let mut model = WatchModel::default();
    model.apply(&next(&mut s).await);

    // Large instances fill the transport's flow-control window quickly, so the
    // server-side queue of this unread stream overflows. Writes must not stall.
    let mut last = 0;
    // ~32 KiB per change, 250 changes: far more than the transport buffers hold.
    for i in 0..250 {
        let mut r = registration("big", &format!("b{i}"), 80);
        r.meta = (0..64)
            .map(|k| (format!("k{k}"), "x".repeat(500)))
            .collect();
        last = w
            .register(r)
            .await
            .expect("apply never waits for watchers")
            .into_inner()
            .index;
    }

    while !model.caught_up_to(last) {
        let m = next(&mut s).await;
        model.apply(&m);
    }

    assert!(model
        .resets
        .contains(&(pb::ResetReason::SlowConsumer as i32)));
    assert!(cluster.node(leader).node.metrics.watch_resets.get() >= 1);
    let (ids, _) = list_ids(&mut w, "big", consistent()).await.unwrap();
    assert_eq!(model.ids("big"), ids);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_passing_only_watch_sees_an_instance_leave_when_critical_and_return_when_passing() {
    let cluster = TestCluster::start(1, |_| {}).await;
    let leader = cluster.wait_for_leader().await;
    let mut c = cluster.catalog(leader).await;
    c.register(registration("web", "a", 80)).await.unwrap();
    let mut request = watch_request(&["web"], 0);
    request.passing_only = true;
    let mut s = c.watch(request).await.unwrap().into_inner();
    let mut model = WatchModel::default();
    model.apply(&next(&mut s).await);
    assert_eq!(model.ids("web"), vec!["a"]);
    let health = |status: pb::HealthStatus| pb::UpdateHealthRequest {
        service: "web".into(),
        id: "a".into(),
        status: status as i32,
        output: String::new(),
    };
    let critical = c
        .update_health(health(pb::HealthStatus::Critical))
        .await
        .unwrap()
        .into_inner();
    read_until(&mut s, &mut model, critical.index).await;
    assert!(
        model.ids("web").is_empty(),
        "a critical instance is not passing"
    );
    let passing = c
        .update_health(health(pb::HealthStatus::Passing))
        .await
        .unwrap()
        .into_inner();
    read_until(&mut s, &mut model, passing.index).await;
    assert_eq!(model.ids("web"), vec!["a"]);
    // It came back as an upsert carrying its new state, at the index that made it so.
    let (index, change) = model.log.last().unwrap();
    assert_eq!(*index, passing.index);
    let Some(pb::record_change::Change::Upsert(back)) = &change.change else {
        panic!("expected an upsert, got {change:?}");
    };
    assert_eq!(back.status, pb::HealthStatus::Passing as i32);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn watchers_of_the_same_selection_share_one_encoding_of_each_change() {
    let cluster = TestCluster::start(1, |_| {}).await;
    let leader = cluster.wait_for_leader().await;
    let metrics = cluster.node(leader).node.metrics.clone();
    let mut c = cluster.catalog(leader).await;
    c.register(registration("web", "a", 80)).await.unwrap();
    // 12 watchers of `web`, 4 of `web` passing only, 4 of everything.
    let mut watchers = Vec::new();
    for i in 0..20 {
        let mut request = watch_request(&["web"], 0);
        request.passing_only = (12..16).contains(&i);
        if i >= 16 {
            request.services.clear();
            request.all = true;
        }
        let passing_only = request.passing_only;
        let mut s = c.watch(request).await.unwrap().into_inner();
        let mut model = WatchModel::default();
        model.apply(&next(&mut s).await);
        assert_eq!(model.ids("web"), vec!["a"]);
        watchers.push((s, model, passing_only));
    }
    let encodings = metrics.watch_change_encodings.get();
    let assembled = metrics.watch_messages_assembled.get();
    let shared = metrics.watch_messages_shared.get();

    // One change, seen two ways: as it is (critical), and as a removal by the
    // passing-only watchers.
    let critical = c
        .update_health(pb::UpdateHealthRequest {
            service: "web".into(),
            id: "a".into(),
            status: pb::HealthStatus::Critical as i32,
            output: "down".into(),
        })
        .await
        .unwrap()
        .into_inner();
    for (s, model, passing_only) in &mut watchers {
        read_until(s, model, critical.index).await;
        if *passing_only {
            assert!(model.ids("web").is_empty(), "{model:?}");
        } else {
            let a = &model.instances[&("web".to_string(), "a".to_string())];
            assert_eq!(a.status, pb::HealthStatus::Critical as i32);
            assert_eq!(a.status_output, "down");
        }
    }
    assert_eq!(
        metrics.watch_change_encodings.get() - encodings,
        1,
        "the change is converted and encoded once for all 20 streams"
    );
    assert_eq!(
        metrics.watch_messages_assembled.get() - assembled,
        2,
        "one message as it is, one as a removal"
    );
    assert_eq!(metrics.watch_messages_shared.get() - shared, 18);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_watcher_of_one_service_is_not_woken_by_changes_to_other_shards() {
    use waymark_registry::watch::hub::shard_of;
    let cluster = TestCluster::start(1, |_| {}).await;
    let leader = cluster.wait_for_leader().await;
    let metrics = cluster.node(leader).node.metrics.clone();
    let mut c = cluster.catalog(leader).await;
    let mut watchers = Vec::new();
    for i in 0..21 {
        let mut request = watch_request(&["web"], 0);
        if i == 20 {
            // One watcher of everything, for contrast.
            request.services.clear();
            request.all = true;
        }
        let mut s = c.watch(request).await.unwrap().into_inner();
        let mut model = WatchModel::default();
        model.apply(&next(&mut s).await);
        watchers.push((s, model));
    }
    let examined = metrics.watch_entries_examined.get();
    let others: Vec<String> = (0..)
        .map(|i| format!("svc-{i}"))
        .filter(|s| shard_of(s) != shard_of("web"))
        .take(100)
        .collect();
    for service in &others {
        c.register(registration(service, "x", 80)).await.unwrap();
    }
    let web = c
        .register(registration("web", "a", 80))
        .await
        .unwrap()
        .into_inner()
        .index;
    // Each stream examines entries in order, so once every watcher has the web change
    // each has examined everything it was woken for before it.
    for (s, model) in &mut watchers {
        read_until(s, model, web).await;
        assert_eq!(model.ids("web"), vec!["a"]);
    }
    assert_eq!(watchers[20].1.instances.len(), 101);
    assert_eq!(
        metrics.watch_entries_examined.get() - examined,
        20 + 101,
        "the web watchers examine only the web entry; the watcher of everything all 101"
    );
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_event_to_many_watchers_on_a_connection_leaves_in_a_few_writes() {
    use waymark_registry::tls::incoming::Port;
    const WATCHERS: usize = 200;
    let cluster = TestCluster::start(1, |_| {}).await;
    let leader = cluster.wait_for_leader().await;
    let metrics = cluster.node(leader).node.metrics.clone();
    // One client, so one HTTP/2 connection carries every stream.
    let mut c = cluster.catalog(leader).await;
    let mut watchers = Vec::new();
    for _ in 0..WATCHERS {
        let mut s = c
            .watch(watch_request(&["web"], 0))
            .await
            .unwrap()
            .into_inner();
        let mut model = WatchModel::default();
        model.apply(&next(&mut s).await);
        watchers.push((s, model));
    }
    // An event above h2's own 256-byte copy threshold, as instance records with some
    // metadata are.
    let mut request = registration("web", "a", 80);
    request.meta.insert("build".into(), "x".repeat(400));
    let writes = metrics.grpc_writes(Port::Api).get();
    let index = c.register(request).await.unwrap().into_inner().index;
    for (s, model) in &mut watchers {
        read_until(s, model, index).await;
        assert_eq!(model.ids("web"), vec!["a"]);
    }
    let used = metrics.grpc_writes(Port::Api).get() - writes;
    // Frame by frame it was one write per watcher (202 measured); with frames copied
    // but each flushed at once, 29; with flushes deferred, 6-12.
    assert!(
        used <= (WATCHERS / 10) as u64,
        "{used} writes carried one event to {WATCHERS} watchers on one connection"
    );
    cluster.shutdown().await;
}
