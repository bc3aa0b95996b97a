//! Endpoints changing under traffic, with real processes: an instance whose app fails
//! its check turns critical, leaves the peers' rotation and DNS, and comes back when
//! it passes; instances added and drained while requests run cost zero failed
//! requests; a backend killed with SIGKILL has its connects retried elsewhere and is
//! ejected.

mod common;

use common::*;
use waymark_proto::pb;

/// SRV targets' ports for `api` from a registry node's DNS, with `dig`.
fn dns_ports(dns: &str) -> Vec<u16> {
    let (host, port) = dns.rsplit_once(':').unwrap();
    let out = std::process::Command::new("dig")
        .args([
            &format!("@{host}"),
            "-p",
            port,
            "+short",
            "api.service.waymark",
            "SRV",
        ])
        .output()
        .expect("dig (installed by scripts/install-deps.sh test)");
    let mut ports: Vec<u16> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().nth(2)?.parse().ok())
        .collect();
    ports.sort();
    ports
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failing_check_leaves_rotation_and_dns_and_changes_under_traffic_fail_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::start(dir.path()).await;
    let a = Instance::start(&registry, "api", "api-a", dir.path(), "");
    let b = Instance::start(&registry, "api", "api-b", dir.path(), "");
    let (_client, admin, listen) = client_proxy(&registry, dir.path(), "round_robin", "");
    wait_endpoints(admin, &listen, &["api-a", "api-b"]).await;
    let mut both = vec![a.app_port, b.app_port];
    both.sort();
    wait_for("DNS to list both apps", || async {
        (dns_ports(&registry.dns[1]) == both).then_some(())
    })
    .await;

    let traffic = Traffic::start(&listen);
    traffic.progress(50).await;

    // b's app starts failing its check: critical in the registry, out of rotation and DNS.
    post(&format!("127.0.0.1:{}", b.app_port), "/fail").await;
    wait_endpoints(admin, &listen, &["api-a"]).await;
    let passing = registry.passing_ids("api").await;
    assert_eq!(passing, ["api-a"]);
    let client = registry.client();
    let b_record = client
        .call(waymark_client::CallPolicy::read(3), |ch| async move {
            waymark_client::catalog(ch)
                .get_instance(pb::GetInstanceRequest {
                    service: "api".into(),
                    id: "api-b".into(),
                    ..Default::default()
                })
                .await
        })
        .await
        .unwrap()
        .instance
        .unwrap();
    assert_eq!(b_record.status, pb::HealthStatus::Critical as i32);
    assert!(
        b_record.status_output.contains("503"),
        "{}",
        b_record.status_output
    );
    wait_for("DNS to drop the failing app", || async {
        (dns_ports(&registry.dns[2]) == vec![a.app_port]).then_some(())
    })
    .await;
    traffic.progress(50).await;

    // A third instance joins while requests run, then b passes again.
    let c = Instance::start(&registry, "api", "api-c", dir.path(), "");
    wait_endpoints(admin, &listen, &["api-a", "api-c"]).await;
    traffic.progress(50).await;
    post(&format!("127.0.0.1:{}", b.app_port), "/recover").await;
    wait_endpoints(admin, &listen, &["api-a", "api-b", "api-c"]).await;
    traffic.progress(50).await;

    // c is drained (SIGTERM): it leaves the rotation first, then its proxy exits.
    let mut c = c;
    c.proxy.signal(nix::sys::signal::Signal::SIGTERM);
    wait_endpoints(admin, &listen, &["api-a", "api-b"]).await;
    let status = c.proxy.wait_exit().await;
    assert!(
        status.success(),
        "the drained proxy exits cleanly: {status:?}"
    );
    traffic.progress(50).await;

    let (ok, failed, errors) = traffic.stop().await;
    assert_eq!(
        failed,
        0,
        "{failed} of {} requests failed: {errors:?}",
        ok + failed
    );
    let ids = registry.passing_ids("api").await;
    assert_eq!(
        ids,
        ["api-a", "api-b"],
        "a drained instance leaves the catalog"
    );
    drop((a, b));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_backend_killed_with_sigkill_is_retried_elsewhere_and_ejected() {
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::start(dir.path()).await;
    let a = Instance::start(&registry, "api", "api-a", dir.path(), "");
    let mut b = Instance::start(&registry, "api", "api-b", dir.path(), "");
    let (_client, admin, listen) = client_proxy(
        &registry,
        dir.path(),
        "round_robin",
        "eject_after_failures = 2\nejection_base = \"30s\"",
    );
    wait_endpoints(admin, &listen, &["api-a", "api-b"]).await;
    let warm = Traffic::start(&listen);
    warm.progress(50).await;
    let (_, warm_failed, errors) = warm.stop().await;
    assert_eq!(warm_failed, 0, "{errors:?}");

    // The whole instance dies at once (app and proxy): its registration stays until
    // the lease expires, but connects to it are refused. Its pooled connections close.
    b.proxy.kill9();
    b.app.kill9();
    let traffic = Traffic::start(&listen);
    traffic.progress(200).await;
    wait_for("b to be ejected", || async {
        let json = endpoints_json(admin).await?;
        let eps = json["upstreams"][0]["endpoints"].as_array()?.clone();
        eps.iter()
            .any(|e| e["id"] == "api-b" && e["state"] == "ejected")
            .then_some(())
    })
    .await;
    let connect_errors = metric(
        admin,
        &format!(
            "waymark_proxy_upstream_connect_errors_total{{upstream=\"api\",listen=\"{listen}\"}}"
        ),
    )
    .await
    .unwrap();
    let retries = metric(
        admin,
        &format!("waymark_proxy_upstream_retries_total{{upstream=\"api\",listen=\"{listen}\"}}"),
    )
    .await
    .unwrap();
    assert!(
        connect_errors >= 1.0 && retries >= 1.0,
        "connect errors {connect_errors}, retries {retries}"
    );
    // Then its lease expires and it leaves the set altogether.
    wait_endpoints(admin, &listen, &["api-a"]).await;
    traffic.progress(50).await;

    let (ok, failed, errors) = traffic.stop().await;
    // Nothing was in flight when b died; a request could only fail by taking a pooled
    // connection to b in the moment before its close was seen (at most one per
    // traffic connection). Every refused connect was retried elsewhere.
    eprintln!(
        "after SIGKILL of a backend: {failed} of {} requests failed: {errors:?}",
        ok + failed
    );
    assert!(failed <= 4, "{failed} failed: {errors:?}");
    assert!(
        errors.iter().all(|e| !e.contains("connect")),
        "a refused connect reached the app: {errors:?}"
    );
    drop(a);
}
