//! `list`: `--total` ListInstances calls for one service (etcd `benchmark range` over a
//! prefix). `--consistency consistent` is a linearizable read (Waymark: ReadIndex; etcd:
//! a linearizable range), `stale` a local one (Waymark: STALE; etcd: serializable).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use etcd_client::GetOptions;
use serde_json::json;
use waymark_proto::pb;

use crate::conn::{Backend, ClientOpts, Pool};
use crate::etcd::{self, EtcdPool, MAX_MESSAGE_BYTES};
use crate::report::Summary;
use crate::runner::{self, RunConfig};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Consistency {
    /// Linearizable reads.
    Consistent,
    /// Reads served from the local replica.
    Stale,
}

impl Consistency {
    pub fn as_str(self) -> &'static str {
        match self {
            Consistency::Consistent => "consistent",
            Consistency::Stale => "stale",
        }
    }

    /// The Waymark read options for this mode.
    pub fn read_options(self) -> pb::ReadOptions {
        pb::ReadOptions {
            consistency: match self {
                Consistency::Consistent => pb::Consistency::Consistent,
                Consistency::Stale => pb::Consistency::Stale,
            } as i32,
            max_stale_ms: 0,
        }
    }

    /// The etcd range options for this mode: the whole prefix, serializable if stale.
    pub fn etcd_options(self) -> GetOptions {
        let o = GetOptions::new().with_prefix();
        match self {
            Consistency::Consistent => o,
            Consistency::Stale => o.with_serializable(),
        }
    }
}

#[derive(Debug, Clone, clap::Args)]
pub struct ListArgs {
    /// List calls to make, over all clients.
    #[arg(long, default_value_t = 10_000)]
    pub total: u64,

    /// Read consistency.
    #[arg(long, value_enum, default_value_t = Consistency::Consistent)]
    pub consistency: Consistency,

    /// List calls per second over all clients; 0 = unlimited.
    #[arg(long, default_value_t = 0)]
    pub rate: u64,

    /// Service to list (etcd: the keys under /<service>/).
    #[arg(long, default_value = "bench")]
    pub service: String,

    /// Only passing instances (Waymark only; etcd has no equivalent).
    #[arg(long)]
    pub passing_only: bool,
}

/// Fewest and most items a successful call returned.
#[derive(Debug)]
struct ItemRange {
    min: AtomicU64,
    max: AtomicU64,
}

impl ItemRange {
    fn new() -> Self {
        Self {
            min: AtomicU64::new(u64::MAX),
            max: AtomicU64::new(0),
        }
    }

    fn record(&self, n: usize) {
        let n = n as u64;
        self.min.fetch_min(n, Ordering::Relaxed);
        self.max.fetch_max(n, Ordering::Relaxed);
    }

    fn get(&self) -> (u64, u64) {
        let min = self.min.load(Ordering::Relaxed);
        let max = self.max.load(Ordering::Relaxed);
        if min == u64::MAX {
            (0, 0)
        } else {
            (min, max)
        }
    }
}

pub async fn run(opts: &ClientOpts, args: &ListArgs) -> anyhow::Result<Summary> {
    let cfg = RunConfig {
        clients: opts.clients as usize,
        total: args.total,
        rate: args.rate,
    };
    let items = Arc::new(ItemRange::new());
    let counter = Arc::clone(&items);
    let (endpoints, outcome) = match opts.backend {
        Backend::Waymark => {
            let pool = Arc::new(Pool::connect(opts).await?);
            let op_pool = Arc::clone(&pool);
            let request = pb::ListInstancesRequest {
                service: args.service.clone(),
                read: Some(args.consistency.read_options()),
                passing_only: args.passing_only,
            };
            let outcome = runner::run(cfg, move |client, _| {
                let mut catalog =
                    pb::catalog_client::CatalogClient::new(op_pool.channel_for(client))
                        .max_decoding_message_size(MAX_MESSAGE_BYTES);
                let request = request.clone();
                let items = Arc::clone(&counter);
                async move {
                    let resp = catalog.list_instances(request).await?;
                    items.record(resp.get_ref().instances.len());
                    Ok(())
                }
            })
            .await?;
            (pool.endpoints(), outcome)
        }
        Backend::Etcd => {
            if args.passing_only {
                anyhow::bail!("--passing-only has no etcd equivalent");
            }
            let pool = Arc::new(EtcdPool::connect(opts).await?);
            let op_pool = Arc::clone(&pool);
            let prefix = etcd::prefix(&args.service);
            let consistency = args.consistency;
            let outcome = runner::run(cfg, move |client, _| {
                let mut kv = op_pool
                    .client_for(client)
                    .kv_client()
                    .max_decoding_message_size(MAX_MESSAGE_BYTES);
                let prefix = prefix.clone();
                let items = Arc::clone(&counter);
                async move {
                    let resp = kv
                        .get(prefix, Some(consistency.etcd_options()))
                        .await
                        .map_err(etcd::to_status)?;
                    items.record(resp.kvs().len());
                    Ok(())
                }
            })
            .await?;
            (pool.endpoints(), outcome)
        }
    };
    let (items_min, items_max) = items.get();
    let params = vec![
        ("backend", json!(opts.backend.as_str())),
        ("endpoints", json!(endpoints)),
        ("target_leader", json!(opts.target_leader)),
        ("clients", json!(opts.clients)),
        ("conns", json!(opts.conns)),
        ("total", json!(args.total)),
        ("rate", json!(args.rate)),
        ("consistency", json!(args.consistency.as_str())),
        ("service", json!(args.service)),
        ("passing_only", json!(args.passing_only)),
    ];
    Ok(Summary::new("list", params, &outcome).with_extra(
        "successful requests",
        vec![
            ("items_min", json!(items_min)),
            ("items_max", json!(items_max)),
        ],
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::{opts, FakeNode};

    #[test]
    fn consistency_maps_onto_both_backends() {
        assert_eq!(
            Consistency::Consistent.read_options().consistency,
            pb::Consistency::Consistent as i32
        );
        assert_eq!(
            Consistency::Stale.read_options().consistency,
            pb::Consistency::Stale as i32
        );
        assert_eq!(Consistency::Stale.read_options().max_stale_ms, 0);
    }

    #[test]
    fn item_range_tracks_min_and_max() {
        let r = ItemRange::new();
        assert_eq!(r.get(), (0, 0));
        r.record(5);
        r.record(3);
        r.record(9);
        assert_eq!(r.get(), (3, 9));
    }

    #[tokio::test]
    async fn lists_with_the_requested_consistency() {
        let node = FakeNode::start(None).await;
        for i in 0..7 {
            node.put("bench", &format!("i-{i}"));
        }
        node.put("other", "i-1");
        for (consistency, expect) in [
            (Consistency::Consistent, pb::Consistency::Consistent),
            (Consistency::Stale, pb::Consistency::Stale),
        ] {
            let args = ListArgs {
                total: 50,
                consistency,
                rate: 0,
                service: "bench".into(),
                passing_only: true,
            };
            let s = run(&opts(vec![node.addr()], 4, 2), &args).await.unwrap();
            assert_eq!(s.ok, 50);
            assert_eq!(s.error_count(), 0);
            let j = s.to_json();
            assert_eq!(j["workload"], "list");
            assert_eq!(j["consistency"], consistency.as_str());
            assert_eq!(j["items_min"], 7);
            assert_eq!(j["items_max"], 7);
            let reads = node.list_reads();
            assert_eq!(reads.len(), 50);
            assert!(
                reads.iter().all(|r| *r == (expect as i32, true)),
                "{reads:?}"
            );
            node.clear_list_reads();
        }
    }
}
