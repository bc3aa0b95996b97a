//! SIGTERM drains a server proxy: the instance leaves the peers' rotation while its
//! listener still accepts (the grace period), a request in flight through it
//! completes, and then the proxy exits and the instance leaves the catalog.

mod common;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_leaves_the_rotation_before_the_listener_closes_and_finishes_in_flight_requests() {
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::start(dir.path()).await;
    let b = Instance::start(&registry, "api", "api-b", dir.path(), "");
    // a drains with a long grace period, so the order below is not a race.
    let (app_port, inbound, a_admin) = (free_port(), free_port(), free_port());
    let _a_app = sample_app("api-a", app_port, dir.path());
    let config = server_proxy_config(&registry, "api", "api-a", app_port, inbound, a_admin, "")
        .replace("grace = \"500ms\"", "grace = \"5s\"");
    let mut a_proxy = proxy("api-a", &config, dir.path());
    let (_client, admin, listen) = client_proxy(&registry, dir.path(), "round_robin", "");
    wait_endpoints(admin, &listen, &["api-a", "api-b"]).await;
    let traffic = Traffic::start(&listen);
    traffic.progress(50).await;

    // A slow request in flight through a's proxy (as a peer's would be).
    let slow = tokio::spawn(async move {
        let mut c = H1::connect(&format!("127.0.0.1:{inbound}")).await.unwrap();
        c.get("/slow?ms=2000").await
    });
    wait_for("the slow request to reach a's app", || async {
        let open = metric(a_admin, "waymark_proxy_inbound_open_connections").await?;
        (open >= 1.0).then_some(())
    })
    .await;

    a_proxy.signal(nix::sys::signal::Signal::SIGTERM);
    wait_endpoints(admin, &listen, &["api-b"]).await;
    // Out of the rotation, and still accepting.
    let (status, body) = get_once(&format!("127.0.0.1:{inbound}"), "/")
        .await
        .expect("a's listener is open during the grace period");
    assert_eq!((status, body.trim()), (200, "api-a"));
    let (status, ready) = get_once(&format!("127.0.0.1:{a_admin}"), "/ready")
        .await
        .unwrap();
    assert_eq!(status, 503, "{ready}");
    assert!(ready.contains("draining"), "{ready}");

    let reply = slow
        .await
        .unwrap()
        .expect("the in-flight request completes");
    assert_eq!((reply.status, reply.body.trim()), (200, "api-a"));
    let exit = a_proxy.wait_exit().await;
    assert!(exit.success(), "{exit:?}");
    assert!(
        tokio::net::TcpStream::connect(("127.0.0.1", inbound))
            .await
            .is_err(),
        "the listener is closed after the drain"
    );
    let ids = registry.passing_ids("api").await;
    assert_eq!(ids, ["api-b"]);
    let log = a_proxy.log_text();
    let marked = log.find("marked critical").expect("drain logged");
    let stopped = log.find("stopped").expect("stop logged");
    assert!(marked < stopped);

    let (ok, failed, errors) = traffic.stop().await;
    assert_eq!(
        failed,
        0,
        "{failed} of {} requests failed: {errors:?}",
        ok + failed
    );
    drop(b);
}
