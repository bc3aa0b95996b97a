//! The UDP answer cache against the full path: plain queries (no EDNS options) sent
//! over real UDP sockets, their answers decoded with hickory and compared record by
//! record with what the full path (`answer_wire`, the same handler without the cache)
//! answers for the same bytes; the cache's hits counted in `DnsStats`.

mod common;

use std::collections::HashMap;
use std::net::UdpSocket;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{catalog, inst, TestServer};
use hickory_server::proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_server::proto::rr::{Name, Record, RecordType};
use waymark_dns::{answer_wire, CatalogView, DnsConfig, DnsInstance};

/// A client socket connected to the server.
fn client(s: &TestServer) -> UdpSocket {
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind client");
    sock.connect(s.addr).expect("connect");
    sock
}

fn query(id: u16, name: &str, qtype: RecordType, edns: Option<u16>) -> Vec<u8> {
    let mut msg = Message::new(id, MessageType::Query, OpCode::Query);
    msg.metadata.recursion_desired = id.is_multiple_of(2);
    msg.add_query(Query::query(Name::from_ascii(name).expect("name"), qtype));
    if let Some(size) = edns {
        let mut e = Edns::new();
        e.set_max_payload(size);
        msg.set_edns(e);
    }
    msg.to_vec().expect("encode query")
}

/// Sends `packet` and returns the answer carrying its ID (10 s deadline).
fn ask(sock: &UdpSocket, packet: &[u8]) -> Vec<u8> {
    let id = u16::from_be_bytes([packet[0], packet[1]]);
    sock.send(packet).expect("send query");
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut buf = [0u8; 4096];
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        sock.set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .expect("timeout");
        match sock.recv(&mut buf) {
            Ok(n) if n >= 12 && u16::from_be_bytes([buf[0], buf[1]]) == id => {
                return buf[..n].to_vec();
            }
            Ok(_) => continue,
            Err(e) => panic!("no answer to query {id}: {e}"),
        }
    }
    panic!("no answer to query {id} within 10 s");
}

/// Asks a plain `name`/`qtype` query (no EDNS) and decodes the answer.
fn exchange(sock: &UdpSocket, id: u16, name: &str, qtype: RecordType) -> Message {
    Message::from_vec(&ask(sock, &query(id, name, qtype, None))).expect("decode answer")
}

/// The full path's answer to the same bytes, from the same view.
fn full_path(s: &TestServer, packet: &[u8]) -> Vec<u8> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let view: Arc<dyn CatalogView> = s.view.clone();
    rt.block_on(answer_wire(&DnsConfig::default(), view, packet, false))
        .expect("valid config")
        .expect("an answer")
}

/// A record as comparable text: names lowercased (DNS compares them without case).
fn text(r: &Record) -> String {
    r.to_string().to_ascii_lowercase()
}

/// Everything an answer says, sections in a normalised (sorted) order.
#[derive(Debug, PartialEq, Eq)]
struct Normalised {
    id: u16,
    rcode: ResponseCode,
    flags: String,
    question: Vec<String>,
    answers: Vec<String>,
    authority: Vec<String>,
    additional: Vec<String>,
    edns_payload: Option<u16>,
}

fn normalised(wire: &[u8]) -> Normalised {
    let m = Message::from_vec(wire).expect("decode answer");
    let sorted = |records: &[Record]| {
        let mut v: Vec<String> = records.iter().map(text).collect();
        v.sort();
        v
    };
    Normalised {
        id: m.metadata.id,
        rcode: m.metadata.response_code,
        flags: m.metadata.flags().to_string(),
        question: m.queries.iter().map(|q| q.to_string()).collect(),
        answers: sorted(&m.answers),
        authority: sorted(&m.authorities),
        additional: sorted(&m.additionals),
        edns_payload: m.edns.as_ref().map(Edns::max_payload),
    }
}

/// The question name as sent in `wire` (byte for byte, case included).
fn question_bytes(wire: &[u8], name_len: usize) -> &[u8] {
    &wire[12..12 + name_len]
}

/// Every name form, with types that give answers, NODATA and NXDOMAIN.
fn name_forms() -> Vec<(&'static str, RecordType)> {
    vec![
        ("web.service.waymark.", RecordType::A),
        ("web.service.waymark.", RecordType::AAAA),
        ("web.service.waymark.", RecordType::SRV),
        ("web.service.waymark.", RecordType::TXT),
        ("v1.web.service.waymark.", RecordType::A),
        ("v1.eu.web.service.waymark.", RecordType::SRV),
        ("_web._tcp.service.waymark.", RecordType::SRV),
        ("_web._v1.service.waymark.", RecordType::SRV),
        ("ext.service.waymark.", RecordType::SRV),
        ("ext.service.waymark.", RecordType::A),
        ("web-1.web.instance.waymark.", RecordType::A),
        ("web-1.web.instance.waymark.", RecordType::TXT),
        ("web-3.web.instance.waymark.", RecordType::AAAA),
        ("web-4.web.instance.waymark.", RecordType::A),
        ("web.instance.waymark.", RecordType::A),
        ("node-1.node.waymark.", RecordType::A),
        ("2.node.waymark.", RecordType::AAAA),
        ("waymark.", RecordType::SOA),
        ("waymark.", RecordType::NS),
        ("service.waymark.", RecordType::A),
        ("db.service.waymark.", RecordType::A),
        ("nope.service.waymark.", RecordType::SRV),
        ("x.y.z.waymark.", RecordType::A),
    ]
}

/// Mixes the case of a name the way a 0x20 resolver does, from `seed`.
fn mixed_case(name: &str, seed: usize) -> String {
    name.chars()
        .enumerate()
        .map(|(k, c)| {
            if (k + seed).is_multiple_of(3) {
                c.to_ascii_uppercase()
            } else {
                c
            }
        })
        .collect()
}

#[test]
fn every_name_form_answers_from_the_cache_as_the_full_path_does() {
    let s = TestServer::default_with(catalog());
    let sock = client(&s);
    let mut id = 100u16;
    for (name, qtype) in name_forms() {
        for edns in [None, Some(1232), Some(4096), Some(700)] {
            let hits_before = s.stats.udp_cached.get();
            // Enough repeats to fill the 8 orders of an ordered answer (about 21
            // queries on average) and then hit them.
            for round in 0..60 {
                id += 1;
                let asked = mixed_case(name, round);
                let packet = query(id, &asked, qtype, edns);
                let served = ask(&sock, &packet);
                let name_len = packet.len() - 12 - 4 - if edns.is_some() { 11 } else { 0 };
                assert_eq!(
                    question_bytes(&served, name_len),
                    question_bytes(&packet, name_len),
                    "{asked} {qtype}: the question is echoed byte for byte"
                );
                let reference = full_path(&s, &packet);
                let served = normalised(&served);
                assert_eq!(
                    served,
                    normalised(&reference),
                    "{asked} {qtype} edns {edns:?}, round {round}"
                );
                assert_ne!(served.rcode, ResponseCode::ServFail);
            }
            let hits = s.stats.udp_cached.get() - hits_before;
            assert!(
                hits >= 10,
                "{name} {qtype} edns {edns:?}: only {hits} of 60 answers came from the cache"
            );
        }
    }
}

#[test]
fn answers_cut_to_the_udp_size_match_the_full_path() {
    let many: Vec<DnsInstance> = (1..=60)
        .map(|k| inst("big", &format!("big-{k}"), &format!("10.1.0.{k}")))
        .collect();
    let s = TestServer::default_with(many);
    let sock = client(&s);
    for (qtype, edns) in [
        (RecordType::A, None),
        (RecordType::A, Some(700)),
        (RecordType::SRV, None),
        (RecordType::SRV, Some(1232)),
    ] {
        for round in 0..30u16 {
            let packet = query(round, "big.service.waymark.", qtype, edns);
            let served = normalised(&ask(&sock, &packet));
            let reference = normalised(&full_path(&s, &packet));
            // Which records survive the cut is a weighted draw; how many, the flags
            // and the rest are not.
            assert_eq!(served.flags, reference.flags, "{qtype} {edns:?}");
            assert!(served.flags.contains("TC"), "{qtype} {edns:?}");
            assert_eq!(served.answers.len(), reference.answers.len());
            assert_eq!(served.rcode, reference.rcode);
        }
    }
    assert!(s.stats.udp_cached.get() > 0);
}

#[test]
fn the_next_index_drops_what_the_cache_held() {
    let s = TestServer::default_with(catalog());
    let sock = client(&s);
    let a_records = |id: u16| {
        let m = exchange(&sock, id, "web.service.waymark.", RecordType::A);
        let mut v: Vec<String> = m.answers.iter().map(|r| r.data.to_string()).collect();
        v.sort();
        v
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut id = 0;
    while s.stats.udp_cached.get() < 10 {
        assert!(Instant::now() < deadline, "the cache never answered");
        id += 1;
        assert_eq!(a_records(id), ["10.0.0.1", "10.0.0.2"]);
    }
    // Deregister web-2: the fake's index moves, as the registry's does.
    s.view.set(|st| st.instances.retain(|i| i.id != "web-2"));
    for _ in 0..50 {
        id += 1;
        assert_eq!(
            a_records(id),
            ["10.0.0.1"],
            "web-2 is gone from every answer"
        );
    }
}

#[test]
fn a_stale_node_answers_servfail_for_cached_names_too() {
    let config = DnsConfig {
        max_stale_ms: 2_000,
        ..DnsConfig::default()
    };
    let s = TestServer::start(config, catalog());
    let sock = client(&s);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut id = 0;
    while s.stats.udp_cached.get() < 5 {
        assert!(Instant::now() < deadline, "the cache never answered");
        id += 1;
        let m = exchange(&sock, id, "web-1.web.instance.waymark.", RecordType::A);
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    }
    // Lose the leader without the index moving: the cache still holds the answer.
    s.view.0.lock().expect("fake lock").contact = Some(Duration::from_millis(2_001));
    let hits = s.stats.udp_cached.get();
    for _ in 0..20 {
        id += 1;
        let m = exchange(&sock, id, "web-1.web.instance.waymark.", RecordType::A);
        assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
        assert!(m.answers.is_empty());
    }
    assert_eq!(
        s.stats.udp_cached.get(),
        hits,
        "no answer came from the cache"
    );
    s.view.0.lock().expect("fake lock").contact = Some(Duration::from_millis(10));
    let m = exchange(&sock, id + 1, "web-1.web.instance.waymark.", RecordType::A);
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
}

#[test]
fn weighted_order_varies_per_query_and_follows_the_weights() {
    let mut heavy = inst("w", "w-heavy", "10.2.0.1");
    heavy.weight_passing = 20;
    let instances = vec![
        heavy,
        inst("w", "w-2", "10.2.0.2"),
        inst("w", "w-3", "10.2.0.3"),
    ];
    // Weights 20 : 10 : 10, so the heavy one is first half of the time.
    let s = TestServer::default_with(instances);
    let sock = client(&s);
    let mut first: HashMap<String, usize> = HashMap::new();
    let mut orders = std::collections::HashSet::new();
    let queries = 4_000u16;
    for id in 0..queries {
        let m = exchange(&sock, id, "w.service.waymark.", RecordType::A);
        let order: Vec<String> = m.answers.iter().map(|r| r.data.to_string()).collect();
        assert_eq!(order.len(), 3);
        *first.entry(order[0].clone()).or_default() += 1;
        orders.insert(order);
    }
    let share = first["10.2.0.1"] as f64 / f64::from(queries);
    assert!(
        (0.35..=0.65).contains(&share),
        "heavy first in {share:.3} of answers: {first:?}"
    );
    assert!(orders.len() >= 4, "only {} orders seen", orders.len());
    let (cached, full) = (s.stats.udp_cached.get(), s.stats.udp_full_path.get());
    assert!(
        cached > full * 4,
        "mostly from the cache: {cached} cached, {full} full"
    );
}
