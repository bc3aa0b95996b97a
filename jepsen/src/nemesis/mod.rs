//! The nemesis: faults injected on a schedule drawn from the run's seed. It alternates
//! a quiet interval and a fault interval: pick a fault, inject it, wait, heal it, and
//! record it in the history with its window.
//!
//! Faults: `kill` (SIGKILL, then restart on the same data), `restart` (SIGTERM: a
//! planned stop, with the leader's handoff; started again when healed), `pause` (SIGSTOP, then
//! SIGCONT), `partition` (nftables drops between namespaces, in the shapes of
//! [`partition::Shape`]), `partition-leader` (only the shape that cuts the current
//! leader off) and `loss` (random packet loss between nodes). Targets are a
//! random node or the current leader; kills sometimes take down every node at once.

pub mod partition;

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio_util::sync::CancellationToken;

use crate::cluster::Cluster;
use crate::history::{Event, FaultRecord, Recorder};
use partition::{Blocked, Shape};

/// A fault family the user can ask for with `--nemesis`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum NemesisKind {
    Kill,
    /// A planned stop (SIGTERM) and a start again: a rolling restart's step, where a
    /// stopping leader hands its leadership over while clients write.
    Restart,
    Pause,
    Partition,
    /// Partitions that always isolate the current leader: the one shape where a
    /// leader that acknowledges too early, or serves reads without confirming its
    /// leadership, is caught every time rather than when the draw is lucky.
    PartitionLeader,
    Loss,
}

impl FromStr for NemesisKind {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> anyhow::Result<Self> {
        Ok(match s {
            "kill" => Self::Kill,
            "restart" => Self::Restart,
            "pause" => Self::Pause,
            "partition" => Self::Partition,
            "partition-leader" => Self::PartitionLeader,
            "loss" => Self::Loss,
            other => bail!(
                "unknown nemesis {other:?} (expected kill, restart, pause, partition, partition-leader or loss)"
            ),
        })
    }
}

impl NemesisKind {
    pub fn name(self) -> &'static str {
        match self {
            Self::Kill => "kill",
            Self::Restart => "restart",
            Self::Pause => "pause",
            Self::Partition => "partition",
            Self::PartitionLeader => "partition-leader",
            Self::Loss => "loss",
        }
    }
}

/// One concrete fault, with its targets resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    Kill { nodes: Vec<u32>, why: &'static str },
    Restart { nodes: Vec<u32>, why: &'static str },
    Pause { nodes: Vec<u32>, why: &'static str },
    Partition { shape: Shape, cut: Blocked },
    Loss { percent: u8 },
}

impl Fault {
    fn kind(&self) -> NemesisKind {
        match self {
            Fault::Kill { .. } => NemesisKind::Kill,
            Fault::Restart { .. } => NemesisKind::Restart,
            Fault::Pause { .. } => NemesisKind::Pause,
            Fault::Partition { .. } => NemesisKind::Partition,
            Fault::Loss { .. } => NemesisKind::Loss,
        }
    }

    /// Nodes this fault cuts off from every other node.
    fn alone(&self, all: u32) -> Vec<u32> {
        match self {
            Fault::Partition { cut, .. } => (1..=all)
                .filter(|n| cut[(n - 1) as usize].len() as u32 == all - 1)
                .collect(),
            _ => Vec::new(),
        }
    }

    fn nodes(&self, all: u32) -> Vec<u32> {
        match self {
            Fault::Kill { nodes, .. }
            | Fault::Restart { nodes, .. }
            | Fault::Pause { nodes, .. } => nodes.clone(),
            Fault::Partition { cut, .. } => (1..=all)
                .filter(|n| !cut[(n - 1) as usize].is_empty())
                .collect(),
            Fault::Loss { .. } => (1..=all).collect(),
        }
    }

    fn describe(&self) -> String {
        let list = |nodes: &[u32]| {
            let mut s = String::new();
            for n in nodes {
                let _ = write!(s, "{}n{n}", if s.is_empty() { "" } else { "," });
            }
            s
        };
        match self {
            Fault::Kill { nodes, why } => format!("kill -9 {} ({why}), then restart", list(nodes)),
            Fault::Restart { nodes, why } => {
                format!("SIGTERM {} ({why}), then start again", list(nodes))
            }
            Fault::Pause { nodes, why } => format!("SIGSTOP {} ({why}), then SIGCONT", list(nodes)),
            Fault::Partition { shape, cut } => {
                format!("{}: {}", shape.name(), partition::describe(cut))
            }
            Fault::Loss { percent } => format!("{percent}% packet loss between all nodes"),
        }
    }
}

/// Draws faults from a seeded generator, so a seed names a schedule.
pub struct Planner {
    kinds: Vec<NemesisKind>,
    nodes: u32,
    rng: StdRng,
}

impl Planner {
    pub fn new(kinds: &[NemesisKind], nodes: u32, seed: u64) -> Self {
        let mut kinds = kinds.to_vec();
        kinds.sort();
        kinds.dedup();
        Self {
            kinds,
            nodes,
            rng: StdRng::seed_from_u64(seed),
        }
    }

    /// The next fault; `leader` is the current leader if one is known.
    pub fn next(&mut self, leader: Option<u32>) -> Option<Fault> {
        let kind = *self
            .kinds
            .get(self.rng.gen_range(0..self.kinds.len().max(1)))?;
        let random_node = self.rng.gen_range(1..=self.nodes);
        let (target, why) = match (self.rng.gen_bool(0.5), leader) {
            (true, Some(l)) => (l, "leader"),
            _ => (random_node, "random node"),
        };
        Some(match kind {
            NemesisKind::Kill if self.rng.gen_ratio(1, 6) => Fault::Kill {
                nodes: (1..=self.nodes).collect(),
                why: "every node",
            },
            NemesisKind::Kill => Fault::Kill {
                nodes: vec![target],
                why,
            },
            NemesisKind::Restart => Fault::Restart {
                nodes: vec![target],
                why,
            },
            NemesisKind::Pause => Fault::Pause {
                nodes: vec![target],
                why,
            },
            NemesisKind::Partition => {
                let shapes = Shape::for_nodes(self.nodes);
                let shape = shapes[self.rng.gen_range(0..shapes.len())];
                let cut = partition::blocked(shape, self.nodes, leader, &mut self.rng);
                Fault::Partition { shape, cut }
            }
            NemesisKind::PartitionLeader => {
                let shape = Shape::IsolateLeader;
                let cut = partition::blocked(shape, self.nodes, leader, &mut self.rng);
                Fault::Partition { shape, cut }
            }
            NemesisKind::Loss => Fault::Loss {
                percent: self.rng.gen_range(10..=40),
            },
        })
    }
}

/// Puts `fault` into effect.
pub fn inject(cluster: &mut Cluster, fault: &Fault) -> anyhow::Result<()> {
    // A server that died on its own since the last look must be noted before a kill
    // reaps it, or the crash would pass for the fault.
    cluster.collect_crashes();
    match fault {
        Fault::Kill { nodes, .. } => {
            for &n in nodes {
                cluster.server(n).kill();
            }
        }
        Fault::Restart { nodes, .. } => {
            for &n in nodes {
                // A server already down (noted as a crash above) has nothing to stop.
                if cluster.server(n).is_running() {
                    cluster.server(n).terminate()?;
                }
            }
        }
        Fault::Pause { nodes, .. } => {
            for &n in nodes {
                cluster.server(n).pause()?;
            }
        }
        Fault::Partition { cut, .. } => {
            for n in 1..=cluster.nodes() {
                let peers = &cut[(n - 1) as usize];
                if !peers.is_empty() {
                    let ips: Vec<String> = peers
                        .iter()
                        .map(|&p| cluster.node_ip(p).to_string())
                        .collect();
                    cluster.network().apply_rules(n, &drop_rules(&ips, None))?;
                }
            }
        }
        Fault::Loss { percent } => {
            for n in 1..=cluster.nodes() {
                let ips: Vec<String> = (1..=cluster.nodes())
                    .filter(|&p| p != n)
                    .map(|p| cluster.node_ip(p).to_string())
                    .collect();
                cluster
                    .network()
                    .apply_rules(n, &drop_rules(&ips, Some(*percent)))?;
            }
        }
    }
    Ok(())
}

/// The longest a planned stop may take: the handoff (`leader_handoff_ms`, 3 s) plus
/// the drain deadline (5 s), with room to spare. Longer is reported as a crash.
const PLANNED_STOP_LIMIT: Duration = Duration::from_secs(15);

/// Undoes every fault there could be: network rules flushed, paused servers
/// continued, dead servers restarted.
pub fn heal_all(cluster: &mut Cluster) -> anyhow::Result<()> {
    // Servers sent SIGTERM get the time a planned stop takes (handoff, drain) to exit.
    cluster.finish_stops(PLANNED_STOP_LIMIT);
    cluster.collect_crashes();
    let mut first_error = None;
    for n in 1..=cluster.nodes() {
        if let Err(e) = cluster.network().flush_rules(n) {
            first_error.get_or_insert(e);
        }
        let server = cluster.server(n);
        // Dead first: a paused server that was then killed must be restarted, not
        // continued.
        let result = if !server.is_running() {
            server.restart()
        } else if server.is_paused() {
            server.resume()
        } else {
            Ok(())
        };
        if let Err(e) = result {
            first_error.get_or_insert(e.context(format!("healing n{n}")));
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// An nftables ruleset dropping traffic to and from `peers` (all of it, or a random
/// `percent` of packets). Client traffic from the host is left alone: the faults are
/// between nodes, and clients must still reach a cut-off node to see what it does.
fn drop_rules(peers: &[String], percent: Option<u8>) -> String {
    let set = peers.join(", ");
    let rate = percent
        .map(|p| format!("numgen random mod 100 < {p} "))
        .unwrap_or_default();
    format!(
        "table inet waymark_jepsen {{\n\
         \x20 chain input {{ type filter hook input priority 0; policy accept; \
         ip saddr {{ {set} }} {rate}drop; }}\n\
         \x20 chain output {{ type filter hook output priority 0; policy accept; \
         ip daddr {{ {set} }} {rate}drop; }}\n\
         }}\n"
    )
}

/// Runs faults until `stop`: quiet for `interval`, faulty for `interval`, and so on.
/// Each healed fault goes into the history. Returns the number injected.
pub async fn run(
    cluster: Arc<Mutex<Cluster>>,
    targets: crate::cluster::ApiTargets,
    recorder: Recorder,
    mut planner: Planner,
    interval: Duration,
    stop: CancellationToken,
) -> anyhow::Result<u64> {
    let mut injected = 0;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return Ok(injected),
            _ = tokio::time::sleep(interval) => {}
        }
        let leader = crate::cluster::leader(&targets).await;
        let Some(fault) = planner.next(leader) else {
            // No nemesis asked for: just wait for the end.
            stop.cancelled().await;
            return Ok(injected);
        };
        let start = recorder.now();
        {
            let mut c = lock(&cluster);
            inject(&mut c, &fault).with_context(|| format!("injecting {}", fault.describe()))?;
        }
        let in_effect_from = recorder.now();
        injected += 1;
        tokio::select! {
            _ = stop.cancelled() => {}
            _ = tokio::time::sleep(interval) => {}
        }
        let in_effect_until = recorder.now();
        {
            let mut c = lock(&cluster);
            heal_all(&mut c).with_context(|| format!("healing {}", fault.describe()))?;
        }
        recorder.record(Event::Fault(FaultRecord {
            fault: fault.kind().name().to_string(),
            detail: fault.describe(),
            nodes: fault.nodes(planner.nodes),
            start,
            end: recorder.now(),
            in_effect: Some((in_effect_from, in_effect_until)),
            alone: fault.alone(planner.nodes),
        }));
        if stop.is_cancelled() {
            return Ok(injected);
        }
    }
}

/// The cluster lock; a panic elsewhere must not stop the harness from healing.
pub fn lock(cluster: &Mutex<Cluster>) -> std::sync::MutexGuard<'_, Cluster> {
    cluster.lock().unwrap_or_else(|e| e.into_inner())
}

/// The distinct fault kinds in a comma-separated `--nemesis` list (`none` for none).
pub fn parse_kinds(list: &str) -> anyhow::Result<Vec<NemesisKind>> {
    let mut kinds = BTreeSet::new();
    for part in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        if part != "none" {
            kinds.insert(part.parse()?);
        }
    }
    Ok(kinds.into_iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_schedule() {
        let kinds = [
            NemesisKind::Kill,
            NemesisKind::Pause,
            NemesisKind::Partition,
        ];
        let plan = |seed| {
            let mut p = Planner::new(&kinds, 3, seed);
            (0..20).map(|_| p.next(Some(2))).collect::<Vec<_>>()
        };
        assert_eq!(plan(42), plan(42));
        assert_ne!(plan(42), plan(43));
        let all = plan(42);
        assert!(all.iter().any(|f| matches!(f, Some(Fault::Kill { .. }))));
        assert!(all
            .iter()
            .any(|f| matches!(f, Some(Fault::Partition { .. }))));
    }

    #[test]
    fn partition_leader_always_cuts_the_leader_off_alone() {
        let mut planner = Planner::new(&[NemesisKind::PartitionLeader], 3, 7);
        for leader in [1, 2, 3, 2, 1] {
            let fault = planner.next(Some(leader)).unwrap();
            assert!(
                matches!(
                    fault,
                    Fault::Partition {
                        shape: Shape::IsolateLeader,
                        ..
                    }
                ),
                "{fault:?}"
            );
            assert_eq!(fault.alone(3), vec![leader], "{}", fault.describe());
        }
        assert_eq!(
            parse_kinds("partition-leader").unwrap(),
            vec![NemesisKind::PartitionLeader]
        );
    }

    #[test]
    fn restart_stops_one_node_half_the_time_the_leader() {
        assert_eq!(parse_kinds("restart").unwrap(), vec![NemesisKind::Restart]);
        let mut planner = Planner::new(&[NemesisKind::Restart], 3, 11);
        let mut leader_picked = 0;
        for _ in 0..40 {
            match planner.next(Some(2)) {
                Some(Fault::Restart { nodes, why }) => {
                    assert_eq!(nodes.len(), 1, "{nodes:?}");
                    leader_picked += usize::from(why == "leader");
                }
                other => panic!("expected a restart, got {other:?}"),
            }
        }
        assert!((5..=35).contains(&leader_picked), "{leader_picked} of 40");
    }

    #[test]
    fn no_kinds_means_no_faults() {
        assert_eq!(Planner::new(&[], 3, 1).next(None), None);
    }

    #[test]
    fn nemesis_lists_parse_and_unknown_names_are_named() {
        assert_eq!(
            parse_kinds("kill, partition,kill").unwrap(),
            vec![NemesisKind::Kill, NemesisKind::Partition]
        );
        assert!(parse_kinds("none").unwrap().is_empty());
        let err = parse_kinds("kill,explode").unwrap_err().to_string();
        assert!(err.contains("explode"), "{err}");
    }

    #[test]
    fn drop_rules_cover_both_directions_and_the_rate() {
        let rules = drop_rules(&["10.0.0.12".into(), "10.0.0.13".into()], Some(25));
        assert!(rules.contains("ip saddr { 10.0.0.12, 10.0.0.13 } numgen random mod 100 < 25 drop"));
        assert!(rules.contains("ip daddr { 10.0.0.12, 10.0.0.13 }"));
        assert!(!drop_rules(&["10.0.0.12".into()], None).contains("numgen"));
    }
}
