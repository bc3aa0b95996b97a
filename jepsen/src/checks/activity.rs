//! No vacuous pass: a checker that saw too little of its workload (clients that could
//! not connect, a run cut short, final reads that never succeeded) has proven nothing,
//! so its verdict becomes `unknown` with a note saying what was missing, never `valid`.

use super::{Anomaly, CheckerReport, Verdict, UNDECIDED};

/// Fewer successful operations than this and a checker cannot vouch for anything.
pub const MIN_OK_OPS: u64 = 10;

/// What one checker must have seen: the sum of these stats, at least `min`.
struct Requirement {
    checker: &'static str,
    what: &'static str,
    stats: &'static [&'static str],
    min: u64,
}

const REQUIREMENTS: &[Requirement] = &[
    Requirement {
        checker: "register",
        what: "successful reads, writes and CASes",
        stats: &["read_ok", "write_ok", "cas_ok"],
        min: MIN_OK_OPS,
    },
    Requirement {
        checker: "register",
        what: "successful final reads",
        stats: &["final_read_ok"],
        min: 1,
    },
    Requirement {
        checker: "set",
        what: "acknowledged adds",
        stats: &["adds_ok"],
        min: MIN_OK_OPS,
    },
    Requirement {
        checker: "watch",
        what: "changes delivered to watchers",
        stats: &["changes_delivered"],
        min: MIN_OK_OPS,
    },
    Requirement {
        checker: "stale",
        what: "successful stale reads",
        stats: &["stale_reads_ok"],
        min: MIN_OK_OPS,
    },
    Requirement {
        checker: "lease",
        what: "acknowledged keep-alives",
        stats: &["keepalives_ok"],
        min: MIN_OK_OPS,
    },
    Requirement {
        checker: "lease",
        what: "lease expiries observed",
        stats: &["expiries_observed"],
        min: 1,
    },
    Requirement {
        checker: "dns",
        what: "answered DNS queries",
        stats: &["dns_noerror"],
        min: MIN_OK_OPS,
    },
];

/// Adds an `undecided` note to `report` for every requirement of its checker that the
/// run fell short of; a `valid` verdict becomes `unknown`.
pub fn require_activity(report: &mut CheckerReport) {
    for req in REQUIREMENTS.iter().filter(|r| r.checker == report.checker) {
        let seen: u64 = req
            .stats
            .iter()
            .map(|s| report.stats.get(*s).copied().unwrap_or(0))
            .sum();
        if seen >= req.min {
            continue;
        }
        *report
            .stats
            .entry(format!("anomalies_{UNDECIDED}"))
            .or_insert(0) += 1;
        report.anomalies.push(Anomaly {
            kind: UNDECIDED.to_string(),
            description: format!(
                "only {seen} {} (at least {} needed): too little happened for this checker \
                 to vouch for the run",
                req.what, req.min
            ),
            window: None,
            evidence: Vec::new(),
        });
        if report.verdict == Verdict::Valid {
            report.verdict = Verdict::Unknown;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn report(checker: &str, stats: &[(&str, u64)], anomalies: Vec<Anomaly>) -> CheckerReport {
        let stats: BTreeMap<String, u64> = stats.iter().map(|(k, v)| (k.to_string(), *v)).collect();
        CheckerReport::from_findings(checker, anomalies, stats)
    }

    #[test]
    fn a_busy_run_keeps_its_verdict() {
        let mut r = report(
            "register",
            &[
                ("read_ok", 5),
                ("write_ok", 4),
                ("cas_ok", 1),
                ("final_read_ok", 3),
            ],
            vec![],
        );
        require_activity(&mut r);
        assert_eq!(r.verdict, Verdict::Valid);
        assert!(r.anomalies.is_empty());
    }

    #[test]
    fn too_few_operations_or_no_final_read_is_undecided_not_valid() {
        let mut idle = report("set", &[("adds_ok", 3), ("final_reads_ok", 3)], vec![]);
        require_activity(&mut idle);
        assert_eq!(idle.verdict, Verdict::Unknown);
        assert!(idle.anomalies[0]
            .description
            .contains("only 3 acknowledged adds"));

        let mut no_final = report("register", &[("read_ok", 50), ("write_ok", 50)], vec![]);
        require_activity(&mut no_final);
        assert_eq!(no_final.verdict, Verdict::Unknown);
        assert!(no_final.anomalies[0].description.contains("final reads"));

        let mut empty = report("watch", &[], vec![]);
        require_activity(&mut empty);
        assert_eq!(empty.verdict, Verdict::Unknown);
    }

    #[test]
    fn an_anomaly_found_in_a_short_run_still_makes_it_invalid() {
        let lost = Anomaly {
            kind: "lost-write".into(),
            description: String::new(),
            window: None,
            evidence: Vec::new(),
        };
        let mut r = report("set", &[("adds_ok", 1)], vec![lost]);
        require_activity(&mut r);
        assert_eq!(r.verdict, Verdict::Invalid);
        assert_eq!(r.anomalies.len(), 2);
    }

    #[test]
    fn checkers_without_requirements_are_left_alone() {
        let mut r = report("cluster", &[], vec![]);
        require_activity(&mut r);
        assert_eq!(r.verdict, Verdict::Valid);
    }
}
