//! The registry failing under a running mesh: the leader killed (the proxies' watches
//! and leases move to another node), then every node stopped (the client proxy keeps
//! routing on its last endpoint set — fail static — and says so in `/ready` and its
//! metrics), then the nodes restarted (watches resume from the last index: the set's
//! index never goes back, nothing is refused as stale, and new changes arrive).
//! Requests flow through all of it without one failing.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_mesh_routes_through_a_leader_kill_and_a_full_registry_outage() {
    let dir = tempfile::tempdir().unwrap();
    let mut registry = Registry::start(dir.path()).await;
    // Leases long enough to outlive the outage (the keeper gives up after two TTLs).
    let a = Instance::start(&registry, "api", "api-a", dir.path(), "lease_ttl = \"20s\"");
    let b = Instance::start(&registry, "api", "api-b", dir.path(), "lease_ttl = \"20s\"");
    let (_client, admin, listen) = client_proxy(&registry, dir.path(), "round_robin", "");
    wait_endpoints(admin, &listen, &["api-a", "api-b"]).await;
    let index_series =
        format!("waymark_proxy_upstream_catalog_index{{upstream=\"api\",listen=\"{listen}\"}}");

    // Every index the client proxy's endpoint set reflects, as often as we can read it.
    let seen: Arc<Mutex<Vec<f64>>> = Arc::default();
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = {
        let (seen, sampling, series) = (seen.clone(), sampling.clone(), index_series.clone());
        tokio::spawn(async move {
            while sampling.load(Ordering::Relaxed) {
                if let Some(i) = metric(admin, &series).await {
                    seen.lock().unwrap().push(i);
                }
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        })
    };

    let traffic = Traffic::start(&listen);
    traffic.progress(50).await;

    // 1. The leader dies; a change made afterwards still reaches the client proxy.
    let leader = registry.wait_leader().await;
    registry.nodes[leader - 1].kill9();
    registry.wait_leader().await;
    post(&format!("127.0.0.1:{}", b.app_port), "/fail").await;
    wait_endpoints(admin, &listen, &["api-a"]).await;
    post(&format!("127.0.0.1:{}", b.app_port), "/recover").await;
    wait_endpoints(admin, &listen, &["api-a", "api-b"]).await;
    traffic.progress(100).await;

    // 2. Every node down: routing goes on with the last set, and says so.
    for node in &mut registry.nodes {
        node.kill9();
    }
    wait_for("fail static in the metrics", || async {
        let v = metric(
            admin,
            &format!("waymark_proxy_upstream_fail_static{{upstream=\"api\",listen=\"{listen}\"}}"),
        )
        .await?;
        (v == 1.0).then_some(())
    })
    .await;
    let (status, body) = get_once(&format!("127.0.0.1:{admin}"), "/ready")
        .await
        .unwrap();
    assert_eq!(
        status, 200,
        "still ready: it serves on the last set\n{body}"
    );
    assert!(body.contains("failing static"), "{body}");
    traffic.progress(200).await;
    let before_restart = seen.lock().unwrap().last().copied().unwrap();

    // 3. The nodes return: the watch resumes, no step back, and new changes arrive.
    for node in &mut registry.nodes {
        node.spawn();
    }
    registry.wait_leader().await;
    wait_for("fail static to clear", || async {
        let v = metric(
            admin,
            &format!("waymark_proxy_upstream_fail_static{{upstream=\"api\",listen=\"{listen}\"}}"),
        )
        .await?;
        (v == 0.0).then_some(())
    })
    .await;
    post(&format!("127.0.0.1:{}", b.app_port), "/fail").await;
    wait_endpoints(admin, &listen, &["api-a"]).await;
    post(&format!("127.0.0.1:{}", b.app_port), "/recover").await;
    wait_endpoints(admin, &listen, &["api-a", "api-b"]).await;
    traffic.progress(100).await;

    sampling.store(false, Ordering::Relaxed);
    sampler.await.unwrap();
    let seen = seen.lock().unwrap().clone();
    assert!(
        seen.windows(2).all(|w| w[0] <= w[1]),
        "the endpoint set's index went back: {seen:?}"
    );
    assert!(
        *seen.last().unwrap() > before_restart,
        "no change after the restart: {seen:?}"
    );
    let refused = metric(admin, &format!("waymark_proxy_upstream_stale_updates_refused_total{{upstream=\"api\",listen=\"{listen}\"}}")).await;
    assert_eq!(refused, Some(0.0));
    let (ok, failed, errors) = traffic.stop().await;
    assert_eq!(
        failed,
        0,
        "{failed} of {} requests failed: {errors:?}",
        ok + failed
    );
    drop((a, b));
}
