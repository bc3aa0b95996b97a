//! The workload checkers: each reads the whole run history and says whether what the
//! clients saw is allowed by Waymark's consistency contract, with the evidence if not.
//!
//! - [`register`]: per-key read/write/CAS, checked for linearizability; every value
//!   read with its write's modify index; no CAS refused while its index held.
//! - [`set`]: every acknowledged registration survives; nothing appears from nowhere.
//! - [`watch`]: streams are ordered, unique, gap-free, atomic per index, resume
//!   exactly (no snapshot without a reset), reset only for a reason the server has,
//!   carry each write's index as its modify index, agree with each other and with
//!   acknowledged writes, and converge.
//! - [`stale`]: stale reads per node never go back in index, respect their bound (as
//!   the node reports its contact, and as the nemesis's isolation windows show it), and
//!   never answer above the final reads' index.
//! - [`dns`]: DNS SOA serials per node never go back, nor above the final reads' index;
//!   a node cut off past the DNS guard answers SERVFAIL.
//! - [`lease`]: a lease never ends before its last acknowledged renewal plus its TTL,
//!   is gone once revoked, and ends no later than the documented bound.

pub mod activity;
pub mod dns;
mod final_index;
pub mod isolation;
pub mod lease;
pub mod register;
mod register_indexes;
pub mod set;
pub mod stale;
pub mod watch;
mod watch_protocol;
mod watch_snapshots;

/// What the checkers' unit tests share.
#[cfg(test)]
pub(crate) mod test_support {
    use super::CheckerReport;
    use crate::history::{Change, InstanceState, WatchEvent};

    /// A stream's first message, opened from `from_index`.
    pub fn connected(from_index: u64) -> WatchEvent {
        WatchEvent::Connected { from_index }
    }

    pub fn snapshot(index: u64, instances: &[InstanceState]) -> WatchEvent {
        let instances = instances.to_vec();
        WatchEvent::Snapshot { index, instances }
    }

    /// A Changes message holding one upsert.
    pub fn upsert(index: u64, instance: InstanceState) -> WatchEvent {
        let changes = vec![Change::Upsert(instance)];
        WatchEvent::Changes { index, changes }
    }

    /// The kinds of a report's anomalies, in order: what most tests assert on.
    pub fn kinds(report: &CheckerReport) -> Vec<&str> {
        report.anomalies.iter().map(|a| a.kind.as_str()).collect()
    }
}

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::history::Nanos;

/// The service whose instances are the register workload's keys (id = key).
pub const REGISTER_SERVICE: &str = "jepsen-register";
/// The service the set workload adds to and removes from.
pub const SET_SERVICE: &str = "jepsen-set";
/// The service whose instances the lease workload registers under its leases.
pub const LEASE_SERVICE: &str = "jepsen-lease";
/// The meta key that holds a register's value.
pub const VALUE_META: &str = "value";

/// What the checkers need to know about the run besides its history.
#[derive(Clone, Debug)]
pub struct CheckContext {
    /// Give up on a linearizability search after this long (verdict `unknown`).
    pub linearizability_time_limit: Duration,
}

impl Default for CheckContext {
    fn default() -> Self {
        Self {
            linearizability_time_limit: crate::checker::DEFAULT_TIME_LIMIT,
        }
    }
}

/// A checker's verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// No anomaly.
    Valid,
    /// At least one anomaly, listed in the report.
    Invalid,
    /// The checker could not decide (a linearizability search ran out of time).
    Unknown,
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Verdict::Valid => "valid",
            Verdict::Invalid => "INVALID",
            Verdict::Unknown => "unknown",
        })
    }
}

/// One violation of the contract, with what shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Anomaly {
    /// A short, stable name: `not-linearizable`, `wrong-modify-index`,
    /// `cas-wrongly-refused`, `lost-write`, `phantom`, `gap`, `duplicate`,
    /// `out-of-order`, `disagreement`, `snapshot-without-reset`, `implausible-reset`,
    /// `not-converged`, `stale-index`, `staleness-bound`, `uncommitted-index`, ...
    pub kind: String,
    /// One sentence a person can act on.
    pub description: String,
    /// The smallest window of the run (in ns since its start) that shows it, if any.
    pub window: Option<(Nanos, Nanos)>,
    /// The history lines (JSON) that make the case.
    pub evidence: Vec<String>,
}

/// What one checker found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckerReport {
    /// `register`, `set`, `watch`, `stale`, `dns` or `cluster`.
    pub checker: String,
    pub verdict: Verdict,
    pub anomalies: Vec<Anomaly>,
    /// Counts worth showing in the summary (e.g. `acknowledged_adds`, `watch_events`).
    pub stats: BTreeMap<String, u64>,
}

/// The anomaly kind of a note saying why a checker could not decide (a search that ran
/// out of time, a final read that never succeeded). Such a note makes the verdict
/// `Unknown` rather than `Invalid`, unless a real anomaly is there too.
pub const UNDECIDED: &str = "undecided";

/// A report keeps at most this many anomalies of one kind: one broken node can make
/// every later read wrong, and a thousand copies of the same finding hide the others.
/// The full count per kind is in the stats as `anomalies_<kind>`.
pub const MAX_ANOMALIES_PER_KIND: usize = 20;

impl CheckerReport {
    /// A report whose verdict follows from its findings: `Invalid` if any anomaly is
    /// not an [`UNDECIDED`] note, else `Unknown` if there is such a note, else `Valid`.
    pub fn from_findings(
        checker: &str,
        anomalies: Vec<Anomaly>,
        mut stats: BTreeMap<String, u64>,
    ) -> Self {
        let verdict = if anomalies.iter().any(|a| a.kind != UNDECIDED) {
            Verdict::Invalid
        } else if anomalies.is_empty() {
            Verdict::Valid
        } else {
            Verdict::Unknown
        };
        let mut kept = Vec::new();
        for anomaly in anomalies {
            let count = stats
                .entry(format!("anomalies_{}", anomaly.kind))
                .or_insert(0);
            *count += 1;
            if *count <= MAX_ANOMALIES_PER_KIND as u64 {
                kept.push(anomaly);
            }
        }
        Self {
            checker: checker.to_string(),
            verdict,
            anomalies: kept,
            stats,
        }
    }
}

/// One line of an anomaly's evidence: the event exactly as `history.jsonl` has it.
pub fn evidence_line(event: &crate::history::Event) -> String {
    // Serialising these plain types cannot fail; if it ever did, say so in the line
    // rather than lose the rest of the report.
    serde_json::to_string(event).unwrap_or_else(|e| format!("(event not serialisable: {e})"))
}

/// The operations of a history together with the events that hold them, so that a
/// checker can quote an operation as its history line.
pub fn op_events(
    events: &[crate::history::Event],
) -> impl Iterator<Item = (&crate::history::Event, &crate::history::OpRecord)> {
    events.iter().filter_map(|e| match e {
        crate::history::Event::Op(op) => Some((e, op)),
        _ => None,
    })
}

/// The watch records of a history with their events, grouped by watcher (in watcher
/// order), each watcher's in the order received.
pub fn watch_events_by_watcher(
    events: &[crate::history::Event],
) -> BTreeMap<u64, Vec<(&crate::history::Event, &crate::history::WatchRecord)>> {
    let mut by_watcher: BTreeMap<u64, Vec<_>> = BTreeMap::new();
    for e in events {
        if let crate::history::Event::Watch(w) = e {
            by_watcher.entry(w.watcher).or_default().push((e, w));
        }
    }
    by_watcher
}

/// A time in the run as seconds, for descriptions.
pub fn secs(t: Nanos) -> String {
    format!("{:.3}s", t as f64 / 1e9)
}
