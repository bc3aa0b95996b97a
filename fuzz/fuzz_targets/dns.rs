//! The DNS request handler: arbitrary bytes as a query (UDP or TCP, chosen by the
//! first byte) answered by `waymark_dns::answer_wire` from a small fixed catalog.
//! Never a panic; and every answer must decode, carry the query's id, fit the UDP
//! size the query allows, and not be SERVFAIL (the catalog is fresh, so SERVFAIL here
//! could only mean the response failed to encode).
#![no_main]

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use hickory_server::proto::op::{Message, ResponseCode};
use libfuzzer_sys::fuzz_target;
use tokio::runtime::Runtime;
use waymark_dns::{
    answer_wire, CatalogView, DnsConfig, DnsInstance, DnsMember, Health, MAX_UDP_PAYLOAD,
    PLAIN_UDP_PAYLOAD,
};

/// A few services covering every kind of record the handler builds: IPv4, IPv6 and
/// hostname addresses, tags, meta (TXT), every health state, two members.
struct Fixed(BTreeMap<&'static str, Vec<DnsInstance>>);

fn inst(service: &str, id: &str, address: &str, health: Health, tags: &[&str]) -> DnsInstance {
    DnsInstance {
        service: service.into(),
        id: id.into(),
        address: address.into(),
        port: 8080,
        tags: tags.iter().map(|t| (*t).into()).collect(),
        meta: [("version".to_string(), "1.2".to_string())].into(),
        weight_passing: 10,
        weight_warning: 1,
        health,
    }
}

impl Fixed {
    fn new() -> Self {
        let web = (0..12)
            .map(|k| {
                let health = [Health::Passing, Health::Warning, Health::Critical][k % 3];
                inst(
                    "web",
                    &format!("web-{k}"),
                    &format!("10.0.0.{k}"),
                    health,
                    &["v1", "canary"][..k % 3],
                )
            })
            .collect();
        let api = vec![
            inst("api", "api-1", "fd00::1", Health::Passing, &["grpc"]),
            inst("api", "api-2", "api.example.com", Health::Passing, &[]),
            inst("api", "api-3", "10.0.1.3", Health::Warning, &["grpc"]),
        ];
        let down = vec![inst("down", "down-1", "10.0.2.1", Health::Critical, &[])];
        Self([("web", web), ("api", api), ("down", down)].into())
    }
}

impl CatalogView for Fixed {
    fn instances(&self, service: &str) -> Vec<DnsInstance> {
        self.0.get(service).cloned().unwrap_or_default()
    }
    fn members(&self) -> Vec<DnsMember> {
        vec![
            DnsMember {
                node_id: 1,
                name: "node-1".into(),
                address: IpAddr::V4(Ipv4Addr::new(10, 9, 0, 1)),
            },
            DnsMember {
                node_id: 2,
                name: "Not A Label!".into(),
                address: IpAddr::V6(Ipv6Addr::LOCALHOST),
            },
        ]
    }
    fn last_leader_contact(&self) -> Option<Duration> {
        Some(Duration::ZERO)
    }
    fn index(&self) -> u64 {
        42
    }
}

struct Env {
    rt: Runtime,
    view: Arc<dyn CatalogView>,
    config: DnsConfig,
    warning: DnsConfig,
}

fn env() -> &'static Env {
    static ENV: OnceLock<Env> = OnceLock::new();
    ENV.get_or_init(|| Env {
        // Nothing in the handler awaits I/O or timers: a bare current-thread runtime.
        rt: tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("tokio runtime"),
        view: Arc::new(Fixed::new()),
        config: DnsConfig::default(),
        warning: DnsConfig {
            admit_warning: true,
            service_ttl_secs: [("api".to_string(), 60)].into(),
            ..DnsConfig::default()
        },
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, query)) = data.split_first() else {
        return;
    };
    let env = env();
    let over_tcp = mode & 1 == 1;
    let config = if mode & 2 == 2 {
        &env.warning
    } else {
        &env.config
    };
    let answer = env
        .rt
        .block_on(answer_wire(config, env.view.clone(), query, over_tcp))
        .expect("the fixed config is valid");
    let Some(answer) = answer else {
        return;
    };
    let response = Message::from_vec(&answer).expect("our answer decodes");
    assert_eq!(response.metadata.id.to_be_bytes(), [query[0], query[1]]);
    assert_ne!(
        response.metadata.response_code,
        ResponseCode::ServFail,
        "fresh catalog answered SERVFAIL: the response did not encode"
    );
    if !over_tcp {
        // The client's EDNS size as the handler reads it; hickory's server decodes
        // requests with its own reader, so a query this decoder refuses gets the cap.
        let limit = match Message::from_vec(query) {
            Ok(request) => request.edns.as_ref().map_or(PLAIN_UDP_PAYLOAD, |e| {
                e.max_payload().clamp(PLAIN_UDP_PAYLOAD, MAX_UDP_PAYLOAD)
            }),
            Err(_) => MAX_UDP_PAYLOAD,
        };
        assert!(
            answer.len() <= usize::from(limit),
            "{} > {limit}",
            answer.len()
        );
    }
});
