//! End-to-end DNS tests: `serve` on 127.0.0.1 port 0 with a fake catalog view, queried
//! with the real `dig` (Debian dnsutils) over UDP and TCP. dig sends an EDNS cookie by
//! default, so these exercise the full path; `fast_path.rs` covers the answer cache.

mod common;

use std::io::Write;
use std::net::{TcpStream, UdpSocket};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{catalog, inst, Fake, State, TestServer};
use tokio_util::sync::CancellationToken;
use waymark_dns::{serve, CatalogView, DnsConfig, DnsInstance, DnsListeners, DnsStats, Health};

// ---------------------------------------------------------------------------
// Tests

#[test]
fn service_a_aaaa_and_tags() {
    let s = TestServer::default_with(catalog());
    let d = s.dig(&["web.service.waymark.", "A"]);
    assert_eq!(d.status, "NOERROR", "{}", d.raw);
    assert!(d.has_flag("aa"), "{}", d.raw);
    // web-4 is critical, web-5 warning (not admitted by default): hidden.
    assert_eq!(d.data("A"), ["10.0.0.1", "10.0.0.2"], "{}", d.raw);
    assert!(d.answer.iter().all(|r| r.ttl == 5), "{}", d.raw);

    let d = s.dig(&["web.service.waymark.", "AAAA"]);
    assert_eq!(d.data("AAAA"), ["fd00::3"], "{}", d.raw);

    let d = s.dig(&["v1.web.service.waymark.", "A"]);
    assert_eq!(d.data("A"), ["10.0.0.1", "10.0.0.2"], "{}", d.raw);
    let d = s.dig(&["eu.v1.web.service.waymark.", "A"]);
    assert_eq!(d.data("A"), ["10.0.0.1"], "{}", d.raw);
    let d = s.dig(&["v2.v1.web.service.waymark.", "A"]);
    d.assert_negative("NXDOMAIN", 5);
}

#[test]
fn srv_with_weights_targets_and_glue() {
    let s = TestServer::default_with(catalog());
    for name in ["web.service.waymark.", "_web._tcp.service.waymark."] {
        let d = s.dig(&[name, "SRV"]);
        assert_eq!(d.status, "NOERROR", "{}", d.raw);
        assert_eq!(
            d.data("SRV"),
            [
                "1 10 8080 web-2.web.instance.waymark.",
                "1 10 8080 web-3.web.instance.waymark.",
                "1 30 8080 web-1.web.instance.waymark.",
            ],
            "{}",
            d.raw
        );
        let mut glue: Vec<String> = d
            .additional
            .iter()
            .map(|r| format!("{} {} {}", r.name, r.rtype, r.data))
            .collect();
        glue.sort();
        assert_eq!(
            glue,
            [
                "web-1.web.instance.waymark. A 10.0.0.1",
                "web-2.web.instance.waymark. A 10.0.0.2",
                "web-3.web.instance.waymark. AAAA fd00::3",
            ],
            "{}",
            d.raw
        );
    }
    // RFC 2782 with a tag filter.
    let d = s.dig(&["_web._v1.service.waymark.", "SRV"]);
    assert_eq!(d.data("SRV").len(), 2, "{}", d.raw);
    // A hostname address is its own SRV target, without glue, and has no A record.
    let d = s.dig(&["ext.service.waymark.", "SRV"]);
    assert_eq!(d.data("SRV"), ["1 10 8080 app.example.com."], "{}", d.raw);
    assert!(d.additional.is_empty(), "{}", d.raw);
    let d = s.dig(&["ext.service.waymark.", "A"]);
    d.assert_negative("NOERROR", 5);
}

#[test]
fn instance_names_and_meta_txt() {
    let s = TestServer::default_with(catalog());
    let d = s.dig(&["web-1.web.instance.waymark.", "A"]);
    assert_eq!(d.data("A"), ["10.0.0.1"], "{}", d.raw);
    let d = s.dig(&["web-3.web.instance.waymark.", "AAAA"]);
    assert_eq!(d.data("AAAA"), ["fd00::3"], "{}", d.raw);
    let d = s.dig(&["web-1.web.instance.waymark.", "TXT"]);
    assert_eq!(
        d.data("TXT"),
        ["\"owner=team-x\"", "\"zone=a\""],
        "{}",
        d.raw
    );
    let d = s.dig(&["web-9.web.instance.waymark.", "A"]);
    d.assert_negative("NXDOMAIN", 5);
    let d = s.dig(&["web-1.web.instance.waymark.", "MX"]);
    d.assert_negative("NOERROR", 5);
}

#[test]
fn nodes_soa_and_ns() {
    let s = TestServer::default_with(catalog());
    let d = s.dig(&["node-1.node.waymark.", "A"]);
    assert_eq!(d.data("A"), ["127.0.0.1"], "{}", d.raw);
    let d = s.dig(&["2.node.waymark.", "AAAA"]);
    assert_eq!(d.data("AAAA"), ["::1"], "{}", d.raw);
    let d = s.dig(&["node-3.node.waymark.", "A"]);
    d.assert_negative("NXDOMAIN", 5);

    let d = s.dig(&["waymark.", "SOA"]);
    assert_eq!(d.status, "NOERROR", "{}", d.raw);
    assert_eq!(
        d.data("SOA"),
        ["node-1.node.waymark. hostmaster.waymark. 77 3600 600 86400 5"],
        "{}",
        d.raw
    );
    let d = s.dig(&["waymark.", "NS"]);
    assert_eq!(
        d.data("NS"),
        ["node-1.node.waymark.", "node-2.node.waymark."],
        "{}",
        d.raw
    );
    assert_eq!(d.additional.len(), 2, "{}", d.raw);
}

#[test]
fn nxdomain_and_nodata_carry_the_soa() {
    let config = DnsConfig {
        negative_ttl_secs: 17,
        ..DnsConfig::default()
    };
    let s = TestServer::start(config, catalog());
    // Unknown service, service with only critical instances, unknown form.
    for name in [
        "nope.service.waymark.",
        "db.service.waymark.",
        "x.y.waymark.",
    ] {
        s.dig(&[name, "A"]).assert_negative("NXDOMAIN", 17);
    }
    // Existing names without the type; structural names.
    for (name, t) in [
        ("web.service.waymark.", "TXT"),
        ("_web._tcp.service.waymark.", "A"),
        ("waymark.", "A"),
        ("service.waymark.", "A"),
        ("web.instance.waymark.", "A"),
    ] {
        s.dig(&[name, t]).assert_negative("NOERROR", 17);
    }
}

#[test]
fn matching_ignores_case() {
    let s = TestServer::default_with(catalog());
    let d = s.dig(&["V1.WEB.Service.WayMark.", "A"]);
    assert_eq!(d.status, "NOERROR", "{}", d.raw);
    assert_eq!(d.data("A"), ["10.0.0.1", "10.0.0.2"], "{}", d.raw);
    let d = s.dig(&["_WEB._TCP.SERVICE.WAYMARK.", "SRV"]);
    assert_eq!(d.data("SRV").len(), 3, "{}", d.raw);
    let d = s.dig(&["Web-1.Web.Instance.Waymark.", "TXT"]);
    assert_eq!(d.data("TXT").len(), 2, "{}", d.raw);
}

#[test]
fn warning_admitted_when_configured_and_ttl_override() {
    let config = DnsConfig {
        admit_warning: true,
        service_ttl_secs: [("web".to_string(), 42)].into(),
        ..DnsConfig::default()
    };
    let s = TestServer::start(config, catalog());
    let d = s.dig(&["web.service.waymark.", "A"]);
    assert_eq!(
        d.data("A"),
        ["10.0.0.1", "10.0.0.2", "10.0.0.5"],
        "{}",
        d.raw
    );
    assert!(d.answer.iter().all(|r| r.ttl == 42), "{}", d.raw);
    let d = s.dig(&["web.service.waymark.", "SRV"]);
    assert!(
        d.data("SRV")
            .contains(&"1 1 8080 web-5.web.instance.waymark.".to_string()),
        "warning weight: {}",
        d.raw
    );
    // Critical stays hidden.
    assert!(!d.raw.contains("web-4"), "{}", d.raw);
}

fn many(n: usize) -> Vec<DnsInstance> {
    (0..n)
        .map(|k| {
            inst(
                "big",
                &format!("big-{k}"),
                &format!("10.1.{}.{}", k / 200, k % 200 + 1),
            )
        })
        .collect()
}

#[test]
fn udp_truncates_and_tcp_returns_everything() {
    let s = TestServer::default_with(many(100));
    // No EDNS: 512 bytes at most, TC set, partial answer (+ignore: no TCP retry).
    let d = s.dig(&["+noedns", "+ignore", "big.service.waymark.", "A"]);
    assert_eq!(d.status, "NOERROR", "{}", d.raw);
    assert!(d.has_flag("tc"), "{}", d.raw);
    assert!(d.size <= 512 && d.size > 0, "{}", d.raw);
    assert!(!d.answer.is_empty() && d.answer.len() < 100, "{}", d.raw);

    // EDNS with a 1000-byte buffer: within it, TC set.
    let d = s.dig(&["+bufsize=1000", "+ignore", "big.service.waymark.", "A"]);
    assert!(d.has_flag("tc"), "{}", d.raw);
    assert!(d.size <= 1000 && d.size > 512, "{}", d.raw);

    // EDNS with 4096 bytes offered: capped at 1232 (DNS Flag Day 2020), TC set.
    let d = s.dig(&["+bufsize=4096", "+ignore", "big.service.waymark.", "A"]);
    assert!(d.has_flag("tc"), "{}", d.raw);
    assert!(d.size <= 1232 && d.size > 1000, "{}", d.raw);

    // TCP: the full set, no TC.
    let d = s.dig(&["+tcp", "big.service.waymark.", "A"]);
    assert!(!d.has_flag("tc"), "{}", d.raw);
    assert_eq!(d.answer.len(), 100, "{}", d.raw);
    let d = s.dig(&["+tcp", "big.service.waymark.", "SRV"]);
    assert_eq!(d.answer.len(), 100, "{}", d.raw);
    assert_eq!(d.additional.len(), 100, "{}", d.raw);

    // A plain dig retries over TCP on TC, like any resolver, and gets everything.
    let d = s.dig(&["big.service.waymark.", "A"]);
    assert_eq!(d.answer.len(), 100, "{}", d.raw);
}

#[test]
fn names_outside_the_domain_are_refused() {
    let s = TestServer::default_with(catalog());
    for (name, t) in [
        ("example.com.", "A"),
        (".", "NS"),
        ("waymark.example.", "A"),
    ] {
        let d = s.dig(&[name, t]);
        assert_eq!(d.status, "REFUSED", "{name}: {}", d.raw);
        assert!(d.answer.is_empty(), "{}", d.raw);
    }
    // Zone transfers and other classes too.
    let d = s.dig(&["+tcp", "waymark.", "AXFR"]);
    assert!(
        d.raw.contains("REFUSED") || d.raw.contains("Transfer failed"),
        "{}",
        d.raw
    );
    let d = s.dig(&["-c", "CH", "-t", "TXT", "version.bind."]);
    assert_eq!(d.status, "REFUSED", "{}", d.raw);
}

#[test]
fn servfail_when_the_replica_is_too_stale() {
    let config = DnsConfig {
        max_stale_ms: 2_000,
        ..DnsConfig::default()
    };
    let s = TestServer::start(config, catalog());
    let q = ["web.service.waymark.", "A"];
    assert_eq!(s.dig(&q).status, "NOERROR");

    s.view
        .set(|st| st.contact = Some(Duration::from_millis(2_001)));
    let d = s.dig(&q);
    assert_eq!(d.status, "SERVFAIL", "{}", d.raw);
    assert!(d.answer.is_empty(), "{}", d.raw);
    // Also for negative answers: NXDOMAIN from old data would be just as stale.
    assert_eq!(s.dig(&["nope.service.waymark.", "A"]).status, "SERVFAIL");

    s.view.set(|st| st.contact = None);
    assert_eq!(s.dig(&q).status, "SERVFAIL", "never heard from a leader");

    s.view
        .set(|st| st.contact = Some(Duration::from_millis(2_000)));
    assert_eq!(s.dig(&q).status, "NOERROR", "at the bound is still fresh");
    // Out-of-domain stays REFUSED whatever the staleness.
    s.view.set(|st| st.contact = None);
    assert_eq!(s.dig(&["example.com.", "A"]).status, "REFUSED");
}

#[test]
fn catalog_changes_show_up_in_the_next_answer() {
    let s = TestServer::default_with(catalog());
    s.dig(&["new.service.waymark.", "A"])
        .assert_negative("NXDOMAIN", 5);
    s.view
        .set(|st| st.instances.push(inst("new", "new-1", "10.9.9.9")));
    assert_eq!(
        s.dig(&["new.service.waymark.", "A"]).data("A"),
        ["10.9.9.9"]
    );
    s.view.set(|st| st.instances[0].health = Health::Critical);
    assert_eq!(
        s.dig(&["web.service.waymark.", "A"]).data("A"),
        ["10.0.0.2"]
    );
}

/// Receives one datagram with `id` from `sock` before `deadline`; `None` if none came.
fn recv_reply(sock: &UdpSocket, id: u16, deadline: Instant) -> Option<Vec<u8>> {
    let mut buf = [0u8; 4096];
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        sock.set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .expect("timeout");
        match sock.recv(&mut buf) {
            Ok(n) if n >= 12 && u16::from_be_bytes([buf[0], buf[1]]) == id => {
                return Some(buf[..n].to_vec());
            }
            Ok(_) => continue,
            Err(_) => return None,
        }
    }
    None
}

#[test]
fn malformed_packets_never_crash_the_server() {
    let s = TestServer::default_with(catalog());
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind client");
    sock.connect(s.addr).expect("connect");

    // Shorter than a header; pseudo-random junk; a response (QR set); a header that
    // promises a question and ends; a question whose name pointer loops on itself.
    let mut junk = vec![0u8; 300];
    let mut x: u32 = 0x1234_5678;
    for b in junk.iter_mut() {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        *b = x as u8;
    }
    let packets: Vec<Vec<u8>> = vec![
        vec![0xde, 0xad, 0xbe],
        junk,
        vec![0x00, 0x01, 0x80, 0x00, 0, 1, 0, 0, 0, 0, 0, 0],
        vec![0xab, 0xcd, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0],
        vec![
            0xab, 0xce, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 0x0c, 0, 1, 0, 1,
        ],
    ];
    for p in &packets {
        sock.send(p).expect("send garbage");
    }
    // The truncated question is a decodable header: FORMERR with its id.
    let reply = recv_reply(&sock, 0xabcd, Instant::now() + Duration::from_secs(10))
        .expect("FORMERR reply for the truncated question");
    assert_eq!(reply[3] & 0x0f, 1, "rcode FORMERR: {reply:?}");
    assert_ne!(reply[2] & 0x80, 0, "QR set");

    // Over TCP: a short junk message, then half a length prefix, left hanging open
    // while the other queries run (it must not hold anything up).
    let mut hanging = TcpStream::connect(s.addr).expect("tcp connect");
    hanging
        .write_all(&[0, 5, 1, 2, 3, 4, 5, 0])
        .expect("send tcp garbage");

    // Still serving, both ways.
    let d = s.dig(&["web.service.waymark.", "A"]);
    assert_eq!(d.status, "NOERROR", "{}", d.raw);
    let d = s.dig(&["+tcp", "web.service.waymark.", "A"]);
    assert_eq!(d.status, "NOERROR", "{}", d.raw);
    drop(hanging);
}

#[test]
fn several_reuseport_sockets_all_answer() {
    let config = DnsConfig {
        udp_sockets: 4,
        ..DnsConfig::default()
    };
    let s = TestServer::start(config, catalog());
    // Each dig uses a fresh source port, so the kernel's flow hash spreads them over
    // the sockets; every one must be served.
    for _ in 0..12 {
        let d = s.dig(&["web.service.waymark.", "A"]);
        assert_eq!(d.data("A"), ["10.0.0.1", "10.0.0.2"], "{}", d.raw);
    }
}

#[test]
fn shutdown_returns_and_frees_the_port() {
    let s = TestServer::default_with(catalog());
    assert_eq!(s.dig(&["web.service.waymark.", "A"]).status, "NOERROR");
    let addr = s.addr;
    s.stop().expect("serve returns Ok on shutdown");
    DnsListeners::bind(addr, 2).expect("port free again after shutdown");
}

#[test]
fn an_aborted_server_stops_its_udp_threads_and_frees_the_port() {
    // A node whose task is aborted (or whose runtime shuts down) without the shutdown
    // token: the UDP loops are threads, and a runtime waits for them when it shuts
    // down, so they must stop on their own.
    let listeners = DnsListeners::bind("127.0.0.1:0".parse().expect("addr"), 2).expect("bind");
    let addr = listeners.local_addr().expect("addr");
    let view: std::sync::Arc<dyn waymark_dns::CatalogView> =
        std::sync::Arc::new(common::Fake(std::sync::Mutex::new(common::State {
            instances: catalog(),
            members: Vec::new(),
            contact: Some(std::time::Duration::from_millis(20)),
            index: 1,
        })));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let never_cancelled = tokio_util::sync::CancellationToken::new();
    let task = rt.spawn(waymark_dns::serve(
        DnsConfig::default(),
        listeners,
        view,
        std::sync::Arc::new(waymark_dns::DnsStats::default()),
        never_cancelled.clone(),
    ));
    assert_eq!(
        common::dig(addr, &["web.service.waymark.", "A"]).status,
        "NOERROR"
    );
    task.abort();
    // Dropping a runtime returns only once every blocking thread has ended.
    let (dropped, done) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        drop(rt);
        let _ = dropped.send(());
    });
    done.recv_timeout(std::time::Duration::from_secs(30))
        .expect("the runtime's shutdown waited 30 s for UDP loops that never stopped");
    assert!(!never_cancelled.is_cancelled());
    DnsListeners::bind(addr, 2).expect("port free again once the threads ended");
}

#[test]
fn invalid_config_is_rejected_before_serving() {
    let listeners = DnsListeners::bind("127.0.0.1:0".parse().expect("addr"), 1).expect("bind");
    let config = DnsConfig {
        domain: "bad domain".into(),
        ..DnsConfig::default()
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let view: Arc<dyn CatalogView> = Arc::new(Fake(Mutex::new(State {
        instances: Vec::new(),
        members: Vec::new(),
        contact: None,
        index: 0,
    })));
    let err = rt
        .block_on(serve(
            config,
            listeners,
            view,
            Arc::new(DnsStats::default()),
            CancellationToken::new(),
        ))
        .expect_err("invalid domain");
    assert!(err.to_string().starts_with("invalid dns.domain:"), "{err}");
}
