//! Shared by the DNS integration tests: a fake catalog view, `serve` on 127.0.0.1
//! port 0 in its own runtime, and the real `dig` (Debian dnsutils) with its output
//! parsed.

#![allow(dead_code)] // each test binary uses its own subset

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use waymark_dns::{
    serve, CatalogView, DnsConfig, DnsError, DnsInstance, DnsListeners, DnsMember, DnsStats, Health,
};

// ---------------------------------------------------------------------------
// Fake catalog

pub struct State {
    pub instances: Vec<DnsInstance>,
    pub members: Vec<DnsMember>,
    pub contact: Option<Duration>,
    pub index: u64,
}

pub struct Fake(pub Mutex<State>);

impl Fake {
    /// Changes the fake's state and, as the registry does for every applied change,
    /// advances its index (UDP answers are cached per index).
    pub fn set(&self, f: impl FnOnce(&mut State)) {
        let mut state = self.0.lock().expect("fake lock");
        f(&mut state);
        state.index += 1;
    }
}

impl CatalogView for Fake {
    fn instances(&self, service: &str) -> Vec<DnsInstance> {
        let s = self.0.lock().expect("fake lock");
        s.instances
            .iter()
            .filter(|i| i.service == service)
            .cloned()
            .collect()
    }
    fn members(&self) -> Vec<DnsMember> {
        self.0.lock().expect("fake lock").members.clone()
    }
    fn last_leader_contact(&self) -> Option<Duration> {
        self.0.lock().expect("fake lock").contact
    }
    fn index(&self) -> u64 {
        self.0.lock().expect("fake lock").index
    }
}

pub fn inst(service: &str, id: &str, address: &str) -> DnsInstance {
    DnsInstance {
        service: service.into(),
        id: id.into(),
        address: address.into(),
        port: 8080,
        tags: Vec::new(),
        meta: BTreeMap::new(),
        weight_passing: 10,
        weight_warning: 1,
        health: Health::Passing,
    }
}

pub fn tagged(mut i: DnsInstance, tags: &[&str]) -> DnsInstance {
    i.tags = tags.iter().map(|t| t.to_string()).collect();
    i
}

pub fn with_health(mut i: DnsInstance, health: Health) -> DnsInstance {
    i.health = health;
    i
}

/// A small catalog covering every name form.
pub fn catalog() -> Vec<DnsInstance> {
    let mut web1 = tagged(inst("web", "web-1", "10.0.0.1"), &["v1", "eu"]);
    web1.meta = [
        ("zone".to_string(), "a".to_string()),
        ("owner".to_string(), "team-x".to_string()),
    ]
    .into();
    web1.weight_passing = 30;
    vec![
        web1,
        tagged(inst("web", "web-2", "10.0.0.2"), &["v1"]),
        tagged(inst("web", "web-3", "fd00::3"), &["v2"]),
        with_health(
            tagged(inst("web", "web-4", "10.0.0.4"), &["v1"]),
            Health::Critical,
        ),
        with_health(inst("web", "web-5", "10.0.0.5"), Health::Warning),
        inst("ext", "ext-1", "app.example.com"),
        with_health(inst("db", "db-1", "10.0.1.1"), Health::Critical),
    ]
}

// ---------------------------------------------------------------------------
// Server under test

pub struct TestServer {
    pub addr: SocketAddr,
    pub view: Arc<Fake>,
    pub stats: Arc<DnsStats>,
    shutdown: CancellationToken,
    thread: Option<JoinHandle<Result<(), DnsError>>>,
}

impl TestServer {
    pub fn start(config: DnsConfig, instances: Vec<DnsInstance>) -> Self {
        let view = Arc::new(Fake(Mutex::new(State {
            instances,
            members: vec![
                DnsMember {
                    node_id: 1,
                    name: "node-1".into(),
                    address: "127.0.0.1".parse().expect("ip"),
                },
                DnsMember {
                    node_id: 2,
                    name: "node-2".into(),
                    address: "::1".parse().expect("ip"),
                },
            ],
            contact: Some(Duration::from_millis(20)),
            index: 77,
        })));
        let listeners = DnsListeners::bind(
            "127.0.0.1:0".parse().expect("addr"),
            config.udp_socket_count(),
        )
        .expect("bind dns listeners");
        let addr = listeners.local_addr().expect("local addr");
        let shutdown = CancellationToken::new();
        let stats = Arc::new(DnsStats::default());
        let (v, st, s) = (
            view.clone() as Arc<dyn CatalogView>,
            stats.clone(),
            shutdown.clone(),
        );
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(serve(config, listeners, v, st, s))
        });
        Self {
            addr,
            view,
            stats,
            shutdown,
            thread: Some(thread),
        }
    }

    pub fn default_with(instances: Vec<DnsInstance>) -> Self {
        Self::start(DnsConfig::default(), instances)
    }

    pub fn dig(&self, args: &[&str]) -> Dig {
        dig(self.addr, args)
    }

    /// Cancels and waits for `serve` to return.
    pub fn stop(mut self) -> Result<(), DnsError> {
        self.shutdown.cancel();
        self.thread
            .take()
            .expect("running")
            .join()
            .expect("server thread panicked")
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.shutdown.cancel();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

// ---------------------------------------------------------------------------
// dig

#[derive(Debug, Clone)]
pub struct Rr {
    pub name: String,
    pub ttl: u32,
    pub rtype: String,
    pub data: String,
}

#[derive(Debug)]
pub struct Dig {
    pub status: String,
    pub flags: Vec<String>,
    pub answer: Vec<Rr>,
    pub authority: Vec<Rr>,
    pub additional: Vec<Rr>,
    pub size: usize,
    pub raw: String,
}

impl Dig {
    pub fn has_flag(&self, f: &str) -> bool {
        self.flags.iter().any(|x| x == f)
    }

    /// Sorted data of the answer records of `rtype`.
    pub fn data(&self, rtype: &str) -> Vec<String> {
        let mut v: Vec<String> = self
            .answer
            .iter()
            .filter(|r| r.rtype == rtype)
            .map(|r| r.data.clone())
            .collect();
        v.sort();
        v
    }

    /// Asserts a negative answer: `status`, no answers, the SOA in authority with the
    /// negative TTL as its TTL and its MINIMUM.
    pub fn assert_negative(&self, status: &str, negative_ttl: u32) {
        assert_eq!(self.status, status, "{}", self.raw);
        assert!(self.answer.is_empty(), "{}", self.raw);
        assert_eq!(self.authority.len(), 1, "{}", self.raw);
        let soa = &self.authority[0];
        assert_eq!(soa.rtype, "SOA", "{}", self.raw);
        assert_eq!(soa.name, "waymark.", "{}", self.raw);
        assert_eq!(soa.ttl, negative_ttl, "{}", self.raw);
        let minimum: u32 = soa
            .data
            .split_whitespace()
            .last()
            .and_then(|m| m.parse().ok())
            .expect("SOA minimum");
        assert_eq!(minimum, negative_ttl, "{}", self.raw);
    }
}

pub fn dig(addr: SocketAddr, args: &[&str]) -> Dig {
    let out = Command::new("dig")
        .arg(format!("@{}", addr.ip()))
        .args(["-p", &addr.port().to_string(), "+time=5", "+tries=2"])
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run `dig` ({e}); install Debian's dnsutils \
                 (scripts/test.sh does it via scripts/install-deps.sh test)"
            )
        });
    let raw = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "dig {args:?} failed:\n{raw}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    parse_dig(raw)
}

pub fn parse_dig(raw: String) -> Dig {
    let mut d = Dig {
        status: String::new(),
        flags: Vec::new(),
        answer: Vec::new(),
        authority: Vec::new(),
        additional: Vec::new(),
        size: 0,
        raw: String::new(),
    };
    let mut section: Option<&str> = None;
    for line in raw.lines() {
        if let Some(rest) = line.split("status: ").nth(1) {
            d.status = rest.split(',').next().unwrap_or_default().to_string();
        } else if let Some(rest) = line.strip_prefix(";; flags:") {
            d.flags = rest
                .split(';')
                .next()
                .unwrap_or_default()
                .split_whitespace()
                .map(str::to_string)
                .collect();
        } else if let Some(rest) = line.strip_prefix(";; MSG SIZE  rcvd:") {
            d.size = rest.trim().parse().unwrap_or(0);
        } else if line.starts_with(";; ANSWER SECTION") {
            section = Some("answer");
        } else if line.starts_with(";; AUTHORITY SECTION") {
            section = Some("authority");
        } else if line.starts_with(";; ADDITIONAL SECTION") {
            section = Some("additional");
        } else if line.trim().is_empty() {
            section = None;
        } else if let Some(s) = section {
            if line.starts_with(';') {
                continue;
            }
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 5 {
                continue;
            }
            let rr = Rr {
                name: f[0].to_string(),
                ttl: f[1].parse().unwrap_or(u32::MAX),
                rtype: f[3].to_string(),
                data: f[4..].join(" "),
            };
            match s {
                "answer" => d.answer.push(rr),
                "authority" => d.authority.push(rr),
                _ => d.additional.push(rr),
            }
        }
    }
    d.raw = raw;
    d
}
