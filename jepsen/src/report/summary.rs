//! The run's numbers in one serializable value: what ran, how each kind of operation
//! ended, which faults were injected, and what every checker concluded.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::checks::{CheckerReport, Verdict};
use crate::history::{Event, Op, Outcome};

/// What was run: enough to tell runs apart and to reproduce one from its seed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunMeta {
    /// The run's number within one invocation, from 1.
    pub run: u32,
    pub seed: u64,
    pub nodes: u32,
    pub workloads: Vec<String>,
    pub nemeses: Vec<String>,
    pub time_limit_s: u64,
    /// The unsafe server control the run was started with, if any (a run that
    /// deliberately breaks the contract, to show the checkers catch it).
    pub control: Option<String>,
    /// ACLs (default deny) and TLS on both ports (`--secure`). Absent in reports
    /// written before the flag existed.
    #[serde(default)]
    pub secure: bool,
    /// Wall-clock start of the run, RFC 3339-ish.
    pub started_at: String,
    /// How long the run took, in ns.
    pub duration_ns: u64,
}

/// One run in numbers; written as `summary.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub meta: RunMeta,
    /// Operation counts by `f` (`read`, `cas`, ...) and then by outcome (`ok`, `fail`,
    /// `info`); an outcome that never happened for an `f` is absent.
    pub ops: BTreeMap<String, BTreeMap<String, u64>>,
    pub total_ops: u64,
    /// Fault counts by kind (`kill`, `pause`, `partition`, `loss`, ...).
    pub faults: BTreeMap<String, u64>,
    /// Watch records (messages, connects and disconnects) in the history.
    pub watch_events: u64,
    pub checkers: Vec<CheckerReport>,
    /// Anomalies over all checkers.
    pub anomalies: u64,
    /// No checker found the history invalid.
    pub valid: bool,
    /// At least one checker could not decide.
    pub unknown: bool,
}

impl Summary {
    /// The run's verdict: `Invalid` if any checker says so, else `Unknown` if any
    /// checker could not decide, else `Valid`.
    pub fn verdict(&self) -> Verdict {
        if !self.valid {
            Verdict::Invalid
        } else if self.unknown {
            Verdict::Unknown
        } else {
            Verdict::Valid
        }
    }
}

/// Counts the history and gathers the checkers' reports into a [`Summary`].
pub fn summarize(meta: RunMeta, events: &[Event], checkers: Vec<CheckerReport>) -> Summary {
    let mut ops: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    let mut total_ops = 0;
    let mut faults: BTreeMap<String, u64> = BTreeMap::new();
    let mut watch_events = 0;
    for event in events {
        match event {
            Event::Op(op) => {
                *ops.entry(op_name(&op.op).to_string())
                    .or_default()
                    .entry(outcome_name(op.outcome).to_string())
                    .or_default() += 1;
                total_ops += 1;
            }
            Event::Fault(fault) => *faults.entry(fault.fault.clone()).or_default() += 1,
            Event::Watch(_) => watch_events += 1,
        }
    }
    let anomalies = checkers.iter().map(|c| c.anomalies.len() as u64).sum();
    let valid = checkers.iter().all(|c| c.verdict != Verdict::Invalid);
    let unknown = checkers.iter().any(|c| c.verdict == Verdict::Unknown);
    Summary {
        meta,
        ops,
        total_ops,
        faults,
        watch_events,
        checkers,
        anomalies,
        valid,
        unknown,
    }
}

/// Every `f`, in the order reports list them (the history's own tag names).
pub(super) const OP_NAMES: [&str; 13] = [
    "read",
    "write",
    "cas",
    "add",
    "remove",
    "list_all",
    "stale_read",
    "dns_soa",
    "lease_create",
    "lease_attach",
    "keep_alive",
    "lease_scan",
    "lease_revoke",
];

/// Every outcome, in the order reports list them.
pub(super) const OUTCOME_NAMES: [&str; 3] = ["ok", "fail", "info"];

/// An operation's `f`, as the history spells it.
pub(super) fn op_name(op: &Op) -> &'static str {
    match op {
        Op::Read { .. } => "read",
        Op::Write { .. } => "write",
        Op::Cas { .. } => "cas",
        Op::Add { .. } => "add",
        Op::Remove { .. } => "remove",
        Op::ListAll { .. } => "list_all",
        Op::StaleRead { .. } => "stale_read",
        Op::DnsSoa { .. } => "dns_soa",
        Op::LeaseCreate { .. } => "lease_create",
        Op::LeaseAttach { .. } => "lease_attach",
        Op::KeepAlive { .. } => "keep_alive",
        Op::LeaseScan { .. } => "lease_scan",
        Op::LeaseRevoke { .. } => "lease_revoke",
    }
}

/// An outcome, as the history spells it.
pub(super) fn outcome_name(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Ok => "ok",
        Outcome::Fail => "fail",
        Outcome::Info => "info",
    }
}

/// The `f` names present in `ops`, known ones first in [`OP_NAMES`] order (so tables
/// read the same from run to run), then any others.
pub(super) fn ordered_fs(ops: &BTreeMap<String, BTreeMap<String, u64>>) -> Vec<&str> {
    let mut fs: Vec<&str> = OP_NAMES
        .iter()
        .copied()
        .filter(|f| ops.contains_key(*f))
        .collect();
    fs.extend(
        ops.keys()
            .map(String::as_str)
            .filter(|f| !OP_NAMES.contains(f)),
    );
    fs
}
