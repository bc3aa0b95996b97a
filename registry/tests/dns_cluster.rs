//! DNS against a real three-node cluster, with the real `dig`: a registration shows
//! up on every node, a critical instance disappears, and a node cut off from its
//! peers answers SERVFAIL once it is past `dns.max_stale_ms`.

mod common;

use common::dig::*;
use common::*;
use waymark_proto::pb;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn registrations_reach_every_nodes_dns_and_a_cut_off_node_goes_servfail() {
    let mut cluster = TestCluster::start(3, |c| c.dns.max_stale_ms = 1_000).await;
    let leader = cluster.wait_for_leader().await;
    let dns: Vec<(u64, String)> = cluster
        .running_ids()
        .into_iter()
        .map(|id| (id, cluster.node(id).config.dns_addr.clone()))
        .collect();
    let mut c = cluster.catalog(leader).await;
    let mut r = registration("web", "web-1", 8080);
    r.address = "10.0.0.1".into();
    c.register(r).await.unwrap();
    let mut r = registration("web", "web-2", 8081);
    r.address = "10.0.0.2".into();
    c.register(r).await.unwrap();

    for (id, addr) in &dns {
        // Returns only once the node answers both addresses: that is the check.
        wait_for(&format!("node {id} to answer both instances"), || {
            let addr = addr.clone();
            async move {
                let (status, mut a) = dig(&addr, "web.service.waymark", "A");
                a.sort();
                (status == "NOERROR" && a == ["10.0.0.1", "10.0.0.2"]).then_some(())
            }
        })
        .await;
        let (status, srv) = dig(addr, "web.service.waymark", "SRV");
        assert_eq!(status, "NOERROR");
        assert_eq!(srv.len(), 2, "one SRV per instance: {srv:?}");
    }

    // An instance set critical disappears from every node's answers.
    c.update_health(pb::UpdateHealthRequest {
        service: "web".into(),
        id: "web-1".into(),
        status: pb::HealthStatus::Critical as i32,
        output: "down".into(),
    })
    .await
    .unwrap();
    for (id, addr) in &dns {
        wait_for(&format!("node {id} to drop the critical instance"), || {
            let addr = addr.clone();
            async move {
                let (status, a) = dig(&addr, "web.service.waymark", "A");
                (status == "NOERROR" && a == ["10.0.0.2"]).then_some(())
            }
        })
        .await;
    }
    let d = &dns[0].1;
    let (status, _) = dig(d, "nothing.service.waymark", "A");
    assert_eq!(status, "NXDOMAIN");
    let (status, _) = dig(d, "example.com", "A");
    assert_eq!(status, "REFUSED");

    // Every name form, case-insensitively, on a real replica.
    assert_eq!(
        dig(d, "V1.WEB.service.waymark", "A"),
        ("NOERROR".into(), vec!["10.0.0.2".into()])
    );
    let (status, srv) = dig(d, "_web._tcp.service.waymark", "SRV");
    assert_eq!((status.as_str(), srv.len()), ("NOERROR", 1));
    assert!(srv[0].starts_with("web-2.web.instance.waymark"), "{srv:?}");
    assert_eq!(
        dig(d, "web-2.web.instance.waymark", "A").1,
        vec!["10.0.0.2"]
    );
    assert_eq!(
        dig(d, "web-2.web.instance.waymark", "TXT").1,
        vec!["\"zone=a\""]
    );
    assert_eq!(
        dig(d, &format!("node-{leader}.node.waymark"), "A").1,
        vec!["127.0.0.1"]
    );
    assert_eq!(dig(d, "waymark", "SOA").0, "NOERROR");
    assert_eq!(dig(d, "waymark", "NS").1.len(), 3);
    // NODATA: the name exists, the type does not (SOA in authority, no answer).
    let raw = dig_raw(d, "web.service.waymark", "AAAA", &[]);
    assert!(
        raw.contains("status: NOERROR")
            && raw.contains("ANSWER: 0")
            && raw.contains("AUTHORITY: 1"),
        "{raw}"
    );

    // Many instances: plain UDP is cut at 512 bytes with TC; TCP returns them all.
    for i in 0..60 {
        let mut r = registration("many", &format!("m{i}"), 9000);
        r.address = format!("10.1.{}.{}", i / 200, i % 200 + 1);
        c.register(r).await.unwrap();
    }
    wait_for("node 1 to have all 60 instances", || {
        let d = d.clone();
        async move { (dig_with(&d, "many.service.waymark", "A", &["+tcp"]).1.len() == 60).then_some(()) }
    })
    .await;
    let udp = dig_raw(d, "many.service.waymark", "A", &["+noedns", "+ignore"]);
    assert!(udp.contains(" tc"), "expected TC over plain UDP:\n{udp}");
    let msg_size: usize = udp
        .split("MSG SIZE  rcvd: ")
        .nth(1)
        .and_then(|s| s.trim().parse().ok())
        .expect("dig reports the message size");
    assert!(msg_size <= 512, "UDP answer of {msg_size} bytes");

    // A malformed packet leaves the server answering.
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.send_to(b"\x00\x01garbage that is not DNS", d.as_str())
        .unwrap();
    sock.send_to(&[0xff; 3], d.as_str()).unwrap();
    assert_eq!(dig(d, "web.service.waymark", "A").0, "NOERROR");

    // Cut one node off by stopping its peers: past max_stale it refuses to answer.
    let lonely = cluster
        .running_ids()
        .into_iter()
        .find(|id| *id != leader)
        .unwrap();
    let lonely_dns = cluster.node(lonely).config.dns_addr.clone();
    for id in cluster.running_ids() {
        if id != lonely {
            cluster.stop(id).await;
        }
    }
    wait_for("the cut-off node to answer SERVFAIL", || {
        let addr = lonely_dns.clone();
        async move { (dig(&addr, "web.service.waymark", "A").0 == "SERVFAIL").then_some(()) }
    })
    .await;
    cluster.shutdown().await;
}

/// The UDP answer cache on real replicas: plain queries (`+nocookie`) are answered from
/// it, and a deregistration reaches every node's next answer, since the cache belongs
/// to the index it was filled at.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cached_answers_follow_each_replicas_index() {
    let cluster = TestCluster::start(3, |_| {}).await;
    let leader = cluster.wait_for_leader().await;
    let mut c = cluster.catalog(leader).await;
    for (id, address) in [("web-1", "10.0.0.1"), ("web-2", "10.0.0.2")] {
        let mut r = registration("web", id, 8080);
        r.address = address.into();
        c.register(r).await.unwrap();
    }
    let plain = |addr: &str| {
        let (status, mut a) = dig_with(addr, "web.service.waymark", "A", &["+nocookie"]);
        a.sort();
        (status, a)
    };
    for id in cluster.running_ids() {
        let addr = cluster.node(id).config.dns_addr.clone();
        wait_for(&format!("node {id} to answer both instances"), || {
            let addr = addr.clone();
            async move { (plain(&addr).1 == ["10.0.0.1", "10.0.0.2"]).then_some(()) }
        })
        .await;
        let stats = &cluster.node(id).node.metrics.dns;
        let before = stats.udp_cached.get();
        for _ in 0..40 {
            assert_eq!(
                plain(&addr),
                ("NOERROR".into(), vec!["10.0.0.1".into(), "10.0.0.2".into()])
            );
        }
        assert!(
            stats.udp_cached.get() > before,
            "node {id}: no answer came from the cache"
        );
    }

    c.deregister(pb::DeregisterRequest {
        service: "web".into(),
        id: "web-1".into(),
    })
    .await
    .unwrap();
    for id in cluster.running_ids() {
        let addr = cluster.node(id).config.dns_addr.clone();
        wait_for(&format!("node {id} to drop web-1"), || {
            let addr = addr.clone();
            async move { (plain(&addr).1 == ["10.0.0.2"]).then_some(()) }
        })
        .await;
        // Once gone, gone from every later answer (no cached order brings it back).
        for _ in 0..20 {
            assert_eq!(plain(&addr).1, ["10.0.0.2"], "node {id}");
        }
    }
    cluster.shutdown().await;
}
