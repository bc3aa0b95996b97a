//! `register`: `--total` Register calls, each for a new instance `i-<n>` of service
//! `bench` carrying one meta value of `--val-size` bytes (etcd `benchmark put`). With
//! `--backend etcd`: one put each of the key `/<service>/i-<n>` with a `--val-size`-byte
//! value.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::json;
use waymark_proto::pb;
use waymark_proto::validate::MAX_META_VALUE_LEN;

use crate::conn::{Backend, ClientOpts, Pool};
use crate::etcd::{self, EtcdPool};
use crate::report::Summary;
use crate::runner::{self, RunConfig};

/// Meta key that carries the `--val-size` payload.
pub const PAYLOAD_KEY: &str = "payload";

#[derive(Debug, Clone, clap::Args)]
pub struct RegisterArgs {
    /// Register calls to make, over all clients.
    #[arg(long, default_value_t = 10_000)]
    pub total: u64,

    /// Size in bytes of the one meta value each instance carries (server limit: 512).
    #[arg(long, default_value_t = 256, value_parser = parse_val_size)]
    pub val_size: usize,

    /// Register calls per second over all clients; 0 = unlimited.
    #[arg(long, default_value_t = 0)]
    pub rate: u64,

    /// Service the instances are registered under.
    #[arg(long, default_value = "bench")]
    pub service: String,

    /// Spread the instances over this many services, `<service>-<n mod services>`
    /// (1: all under `--service` itself), for catalogs of many services.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    pub services: u64,

    /// First instance number: ids run from i-<offset> to i-<offset+total-1>, so
    /// consecutive runs against one cluster can register new instances each time.
    #[arg(long, default_value_t = 0)]
    pub id_offset: u64,
}

pub fn parse_val_size(s: &str) -> Result<usize, String> {
    let n: usize = s.parse().map_err(|e| format!("{e}"))?;
    if n > MAX_META_VALUE_LEN {
        return Err(format!(
            "at most {MAX_META_VALUE_LEN} bytes (the server's meta value limit)"
        ));
    }
    Ok(n)
}

/// The instance number in an id made by `instance_id` (`i-<n>`).
pub fn instance_number(id: &str) -> Option<u64> {
    let digits = id.strip_prefix("i-")?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The id of the instance registered by operation `seq`.
pub fn instance_id(offset: u64, seq: u64) -> String {
    format!("i-{}", offset.wrapping_add(seq))
}

/// A distinct IPv4 address in 10.0.0.0/8 per instance number (wrapping every 2^24).
pub fn instance_address(n: u64) -> String {
    format!("10.{}.{}.{}", (n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff)
}

/// What every request of a run shares.
#[derive(Debug, Clone)]
pub struct Plan {
    pub service: String,
    /// Services the instances are spread over (`RegisterArgs::services`).
    pub services: u64,
    pub id_offset: u64,
    pub payload: String,
}

impl Plan {
    pub fn new(args: &RegisterArgs) -> Self {
        Self {
            services: args.services,
            ..Self::with(&args.service, args.id_offset, args.val_size)
        }
    }

    pub fn with(service: &str, id_offset: u64, val_size: usize) -> Self {
        Self {
            service: service.to_string(),
            services: 1,
            id_offset,
            payload: "x".repeat(val_size),
        }
    }

    /// The service of instance number `n`.
    pub fn service_of(&self, n: u64) -> String {
        match self.services {
            1 => self.service.clone(),
            k => format!("{}-{}", self.service, n % k),
        }
    }

    /// The etcd key and value that stand for operation `seq`'s instance.
    pub fn etcd_put(&self, seq: u64) -> (String, String) {
        let n = self.id_offset.wrapping_add(seq);
        (
            etcd::key(&self.service_of(n), &instance_id(self.id_offset, seq)),
            self.payload.clone(),
        )
    }

    /// The Register request for operation `seq`.
    pub fn request(&self, seq: u64) -> pb::RegisterRequest {
        let n = self.id_offset.wrapping_add(seq);
        pb::RegisterRequest {
            service: self.service_of(n),
            id: instance_id(self.id_offset, seq),
            address: instance_address(n),
            port: 8080,
            tags: vec!["bench".into()],
            meta: HashMap::from([(PAYLOAD_KEY.to_string(), self.payload.clone())]),
            weights: None,
            ..Default::default()
        }
    }
}

pub async fn run(opts: &ClientOpts, args: &RegisterArgs) -> anyhow::Result<Summary> {
    let plan = Arc::new(Plan::new(args));
    let cfg = RunConfig {
        clients: opts.clients as usize,
        total: args.total,
        rate: args.rate,
    };
    let (endpoints, outcome) = match opts.backend {
        Backend::Waymark => {
            let pool = Arc::new(Pool::connect(opts).await?);
            let op_pool = Arc::clone(&pool);
            let outcome = runner::run(cfg, move |client, seq| {
                let mut catalog =
                    pb::catalog_client::CatalogClient::new(op_pool.channel_for(client));
                let request = plan.request(seq);
                async move { catalog.register(request).await.map(|_| ()) }
            })
            .await?;
            (pool.endpoints(), outcome)
        }
        Backend::Etcd => {
            let pool = Arc::new(EtcdPool::connect(opts).await?);
            let op_pool = Arc::clone(&pool);
            let outcome = runner::run(cfg, move |client, seq| {
                let mut kv = op_pool.client_for(client).kv_client();
                let (key, value) = plan.etcd_put(seq);
                async move {
                    kv.put(key, value, None)
                        .await
                        .map(|_| ())
                        .map_err(etcd::to_status)
                }
            })
            .await?;
            (pool.endpoints(), outcome)
        }
    };
    let params = vec![
        ("backend", json!(opts.backend.as_str())),
        ("endpoints", json!(endpoints)),
        ("target_leader", json!(opts.target_leader)),
        ("clients", json!(opts.clients)),
        ("conns", json!(opts.conns)),
        ("total", json!(args.total)),
        ("rate", json!(args.rate)),
        ("val_size", json!(args.val_size)),
        ("service", json!(args.service)),
        ("services", json!(args.services)),
        ("id_offset", json!(args.id_offset)),
    ];
    Ok(Summary::new("register", params, &outcome))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::{opts, FakeNode};
    use std::time::Duration;
    use waymark_proto::Registration;

    fn args(total: u64) -> RegisterArgs {
        RegisterArgs {
            total,
            val_size: 256,
            rate: 0,
            service: "bench".into(),
            services: 1,
            id_offset: 0,
        }
    }

    #[test]
    fn instances_spread_over_services_by_number() {
        let plan = Plan::new(&RegisterArgs {
            services: 3,
            ..args(10)
        });
        let services: Vec<String> = (0..4).map(|seq| plan.request(seq).service).collect();
        assert_eq!(services, ["bench-0", "bench-1", "bench-2", "bench-0"]);
        assert!(
            plan.etcd_put(4).0.contains("/bench-1/"),
            "{:?}",
            plan.etcd_put(4)
        );
        assert_eq!(Plan::new(&args(10)).request(5).service, "bench");
    }

    #[test]
    fn ids_are_unique_and_valid_labels() {
        assert_eq!(instance_id(0, 0), "i-0");
        assert_eq!(instance_id(0, 41), "i-41");
        assert_eq!(instance_id(1000, 5), "i-1005");
        // The longest possible id is still a valid DNS label.
        assert!(instance_id(u64::MAX, 0).len() <= 63);
        let ids: std::collections::HashSet<String> =
            (0..10_000).map(|s| instance_id(7, s)).collect();
        assert_eq!(ids.len(), 10_000);
    }

    #[test]
    fn instance_numbers_come_back_out_of_ids() {
        assert_eq!(instance_number(&instance_id(5, 37)), Some(42));
        assert_eq!(instance_number(&instance_id(u64::MAX, 0)), Some(u64::MAX));
        for bad in [
            "i-",
            "x-1",
            "i-1a",
            "i--1",
            "i-+1",
            "",
            "i-99999999999999999999999",
        ] {
            assert_eq!(instance_number(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn etcd_puts_use_the_same_ids_under_the_service_prefix() {
        let plan = Plan::with("bench", 10, 5);
        assert_eq!(
            plan.etcd_put(2),
            ("/bench/i-12".to_string(), "xxxxx".to_string())
        );
    }

    #[test]
    fn addresses_differ_per_instance() {
        assert_eq!(instance_address(0), "10.0.0.0");
        assert_eq!(instance_address(1), "10.0.0.1");
        assert_eq!(instance_address(256), "10.0.1.0");
        assert_eq!(instance_address(0x01_02_03), "10.1.2.3");
    }

    #[test]
    fn requests_pass_the_servers_validation() {
        for val_size in [0, 1, 256, MAX_META_VALUE_LEN] {
            let plan = Plan::new(&RegisterArgs {
                val_size,
                id_offset: u64::MAX - 3,
                ..args(1)
            });
            for seq in [0, 1, 3] {
                let req = plan.request(seq);
                assert_eq!(req.meta[PAYLOAD_KEY].len(), val_size);
                Registration::try_from(req.clone())
                    .unwrap_or_else(|e| panic!("{req:?} rejected: {e}"));
            }
        }
    }

    #[test]
    fn val_size_is_bounded_by_the_meta_limit() {
        assert_eq!(parse_val_size("512"), Ok(512));
        assert!(parse_val_size("513").is_err());
        assert!(parse_val_size("-1").is_err());
    }

    #[tokio::test]
    async fn registers_every_id_once_over_all_endpoints_and_counts_errors() {
        let a = FakeNode::start(None).await;
        let b = FakeNode::start(None).await;
        // The fake fails every id ending in 3 with UNAVAILABLE.
        let summary = run(&opts(vec![a.addr(), b.addr()], 8, 3), &args(200))
            .await
            .unwrap();

        assert_eq!(summary.ok, 180);
        assert_eq!(summary.errors["UNAVAILABLE"].count, 20);
        let mut ids = a.registered();
        let (from_a, from_b) = (ids.len(), b.registered().len());
        assert!(from_a > 0 && from_b > 0, "round-robin: {from_a} / {from_b}");
        ids.extend(b.registered());
        ids.sort_by_key(|id| id[2..].parse::<u64>().unwrap());
        assert_eq!(ids, (0..200).map(|s| instance_id(0, s)).collect::<Vec<_>>());

        let json = summary.to_json();
        assert_eq!(json["endpoints"], json!([a.addr(), b.addr()]));
        assert_eq!(json["errors_by_code"], json!({"UNAVAILABLE": 20}));
        assert_eq!(json["total"], 200);
    }

    #[tokio::test]
    async fn target_leader_sends_everything_to_the_leader() {
        let leader = FakeNode::start(None).await;
        let follower = FakeNode::start(Some(leader.addr())).await;
        let mut o = opts(vec![follower.addr()], 4, 2);
        o.target_leader = true;
        let summary = run(
            &o,
            &RegisterArgs {
                id_offset: 10,
                ..args(40)
            },
        )
        .await
        .unwrap();

        assert!(follower.registered().is_empty());
        assert_eq!(leader.registered().len(), 40);
        assert_eq!(summary.ok + summary.error_count(), 40);
        assert_eq!(summary.to_json()["endpoints"], json!([leader.addr()]));
    }

    #[tokio::test]
    async fn unreachable_endpoint_fails_before_the_run() {
        // A port nobody listens on any more: bound, then closed.
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .to_string();
        let mut o = opts(vec![addr.clone()], 1, 1);
        o.dial_timeout = Duration::from_secs(2);
        let err = run(&o, &args(1)).await.unwrap_err();
        assert!(format!("{err:#}").contains(&addr), "{err:#}");
    }
}
