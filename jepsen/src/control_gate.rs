//! When a positive-control run counts as caught: the checker built for the control
//! reported the kind of anomaly the control causes, and the harness itself found
//! nothing (a crashed server or a cluster that never settled is an infrastructure
//! failure, which must not pass as a catch).

use std::fmt;
use std::str::FromStr;

use crate::report::Summary;

/// The cluster checker's findings that say the run itself went wrong, not the
/// contract.
pub const HARNESS_FINDINGS: &[&str] = &["not-settled", "server-crashed"];

/// `--expect-anomaly CHECKER:KIND`, e.g. `register:not-linearizable`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExpectedAnomaly {
    pub checker: String,
    pub kind: String,
}

impl FromStr for ExpectedAnomaly {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let valid = |part: &str| {
            !part.is_empty()
                && part
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        };
        match s.split_once(':') {
            Some((checker, kind)) if valid(checker) && valid(kind) => Ok(Self {
                checker: checker.to_string(),
                kind: kind.to_string(),
            }),
            _ => Err(format!(
                "{s:?} is not CHECKER:KIND (e.g. register:not-linearizable, set:lost-write, \
                 watch:gap)"
            )),
        }
    }
}

impl fmt::Display for ExpectedAnomaly {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.checker, self.kind)
    }
}

/// How one control run went.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ControlOutcome {
    Caught,
    /// The expected anomaly was not reported (what was, if anything).
    Missed {
        reported: Vec<String>,
    },
    /// The harness found its own failure; the run proves nothing either way.
    HarnessFailure {
        findings: Vec<String>,
    },
}

impl ControlOutcome {
    pub fn caught(&self) -> bool {
        matches!(self, ControlOutcome::Caught)
    }
}

impl fmt::Display for ControlOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ControlOutcome::Caught => f.write_str("caught"),
            ControlOutcome::Missed { reported } if reported.is_empty() => {
                f.write_str("MISSED (no anomaly reported)")
            }
            ControlOutcome::Missed { reported } => {
                write!(f, "MISSED (reported only {})", reported.join(", "))
            }
            ControlOutcome::HarnessFailure { findings } => {
                write!(f, "HARNESS FAILURE ({})", findings.join(", "))
            }
        }
    }
}

/// Judges one run of a control that should cause `expected`.
pub fn judge(summary: &Summary, expected: &ExpectedAnomaly) -> ControlOutcome {
    let reported: Vec<String> = summary
        .checkers
        .iter()
        .flat_map(|c| {
            c.anomalies
                .iter()
                .map(move |a| format!("{}:{}", c.checker, a.kind))
        })
        .collect();
    let harness: Vec<String> = summary
        .checkers
        .iter()
        .filter(|c| c.checker == "cluster")
        .flat_map(|c| &c.anomalies)
        .filter(|a| HARNESS_FINDINGS.contains(&a.kind.as_str()))
        .map(|a| a.kind.clone())
        .collect();
    if !harness.is_empty() {
        return ControlOutcome::HarnessFailure { findings: harness };
    }
    if reported.iter().any(|r| *r == expected.to_string()) {
        ControlOutcome::Caught
    } else {
        ControlOutcome::Missed { reported }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::checks::{Anomaly, CheckerReport};
    use crate::report::RunMeta;

    fn anomaly(kind: &str) -> Anomaly {
        Anomaly {
            kind: kind.into(),
            description: String::new(),
            window: None,
            evidence: Vec::new(),
        }
    }

    fn summary(findings: &[(&str, &str)]) -> Summary {
        let names = ["register", "set", "watch", "cluster"];
        let checkers = names
            .iter()
            .map(|name| {
                let anomalies: Vec<Anomaly> = findings
                    .iter()
                    .filter(|(c, _)| c == name)
                    .map(|(_, k)| anomaly(k))
                    .collect();
                CheckerReport::from_findings(name, anomalies, BTreeMap::new())
            })
            .collect();
        let meta = RunMeta {
            run: 1,
            seed: 7,
            nodes: 3,
            workloads: vec!["register".into()],
            nemeses: vec!["partition".into()],
            time_limit_s: 30,
            control: Some("stale-reads".into()),
            secure: false,
            started_at: String::new(),
            duration_ns: 0,
        };
        crate::report::summarize(meta, &[], checkers)
    }

    fn expected(s: &str) -> ExpectedAnomaly {
        s.parse().unwrap()
    }

    #[test]
    fn only_the_expected_kind_from_the_expected_checker_is_a_catch() {
        let want = expected("register:not-linearizable");
        assert!(judge(&summary(&[("register", "not-linearizable")]), &want).caught());
        let other_kind = judge(&summary(&[("register", "wrong-modify-index")]), &want);
        assert_eq!(
            other_kind,
            ControlOutcome::Missed {
                reported: vec!["register:wrong-modify-index".into()]
            }
        );
        // The same kind from another checker is not what this control is for.
        assert!(!judge(&summary(&[("watch", "not-linearizable")]), &want).caught());
        assert_eq!(
            judge(&summary(&[]), &want),
            ControlOutcome::Missed { reported: vec![] }
        );
    }

    #[test]
    fn a_harness_finding_fails_the_control_run_even_beside_the_expected_anomaly() {
        let want = expected("set:lost-write");
        for finding in HARNESS_FINDINGS {
            let outcome = judge(
                &summary(&[("set", "lost-write"), ("cluster", finding)]),
                &want,
            );
            assert_eq!(
                outcome,
                ControlOutcome::HarnessFailure {
                    findings: vec![finding.to_string()]
                }
            );
        }
        // A real cluster-level anomaly is not a harness failure.
        assert!(judge(
            &summary(&[("set", "lost-write"), ("cluster", "replicas-diverged")]),
            &want
        )
        .caught());
    }

    #[test]
    fn expectations_must_name_a_checker_and_a_kind() {
        assert_eq!(
            expected("watch:gap"),
            ExpectedAnomaly {
                checker: "watch".into(),
                kind: "gap".into()
            }
        );
        for bad in ["", "watch", "watch:", ":gap", "Watch:gap", "watch:gap:x"] {
            let err = bad.parse::<ExpectedAnomaly>().unwrap_err();
            assert!(err.contains("CHECKER:KIND"), "{bad:?}: {err}");
        }
    }
}
