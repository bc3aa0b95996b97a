//! One check's status from its results in a row, with Consul's thresholds: passing
//! after `success_before_passing` successes, warning after `failures_before_warning`
//! failures and critical after `failures_before_critical`. A check starts critical:
//! nothing routes to an app that has not yet passed.

use crate::config::CheckConfig;

/// An instance's health, as the registry knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Status {
    // Ordered best to worst: an instance is as healthy as its worst check.
    Passing,
    Warning,
    Critical,
}

impl Status {
    pub fn name(self) -> &'static str {
        match self {
            Status::Passing => "passing",
            Status::Warning => "warning",
            Status::Critical => "critical",
        }
    }
}

/// What one probe found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Pass(String),
    /// The app answered but asked to be used less (HTTP 429): warning at once.
    Warn(String),
    Fail(String),
}

/// The counters of one check.
#[derive(Debug, Clone)]
pub struct Thresholds {
    success_before_passing: u32,
    failures_before_warning: u32,
    failures_before_critical: u32,
    successes: u32,
    failures: u32,
    status: Status,
    output: String,
}

impl Thresholds {
    pub fn new(config: &CheckConfig) -> Self {
        Self {
            success_before_passing: config.success_before_passing,
            failures_before_warning: config.failures_before_warning,
            failures_before_critical: config.failures_before_critical,
            successes: 0,
            failures: 0,
            status: Status::Critical,
            output: "not checked yet".into(),
        }
    }

    pub fn status(&self) -> Status {
        self.status
    }

    /// The output of the probe that last set or kept the status.
    pub fn output(&self) -> &str {
        &self.output
    }

    /// Counts one probe's outcome; returns whether the status changed.
    pub fn record(&mut self, outcome: Outcome) -> bool {
        let before = self.status;
        match outcome {
            Outcome::Pass(output) => {
                self.failures = 0;
                self.successes = self.successes.saturating_add(1);
                if self.successes >= self.success_before_passing {
                    self.status = Status::Passing;
                }
                self.output = output;
            }
            Outcome::Warn(output) => {
                self.failures = 0;
                self.successes = 0;
                self.status = Status::Warning;
                self.output = output;
            }
            Outcome::Fail(output) => {
                self.successes = 0;
                self.failures = self.failures.saturating_add(1);
                if self.failures >= self.failures_before_critical {
                    self.status = Status::Critical;
                } else if self.failures >= self.failures_before_warning {
                    self.status = Status::Warning;
                }
                self.output = output;
            }
        }
        self.status != before
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{CheckConfig, CheckTarget};
    use std::time::Duration;

    fn check(pass: u32, warn: u32, crit: u32) -> Thresholds {
        Thresholds::new(&CheckConfig {
            name: "c".into(),
            target: CheckTarget::Tcp {
                addr: "127.0.0.1:1".into(),
            },
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            jitter: Duration::ZERO,
            success_before_passing: pass,
            failures_before_warning: warn,
            failures_before_critical: crit,
            deregister_critical_after: None,
        })
    }

    fn pass() -> Outcome {
        Outcome::Pass("ok".into())
    }
    fn fail() -> Outcome {
        Outcome::Fail("refused".into())
    }

    #[test]
    fn starts_critical_and_passes_after_enough_successes() {
        let mut t = check(2, 1, 1);
        assert_eq!(t.status(), Status::Critical);
        assert!(!t.record(pass()));
        assert_eq!(t.status(), Status::Critical);
        assert!(t.record(pass()));
        assert_eq!(t.status(), Status::Passing);
    }

    #[test]
    fn a_failure_resets_the_success_count() {
        let mut t = check(2, 1, 1);
        t.record(pass());
        t.record(fail());
        t.record(pass());
        assert_eq!(t.status(), Status::Critical, "successes must be in a row");
        t.record(pass());
        assert_eq!(t.status(), Status::Passing);
    }

    #[test]
    fn warning_then_critical_by_failures_in_a_row() {
        let mut t = check(1, 2, 3);
        t.record(pass());
        assert!(!t.record(fail()));
        assert_eq!(t.status(), Status::Passing);
        assert!(t.record(fail()));
        assert_eq!(t.status(), Status::Warning);
        assert!(t.record(fail()));
        assert_eq!(t.status(), Status::Critical);
        assert_eq!(t.output(), "refused");
        // One success is enough to pass again with success_before_passing = 1.
        assert!(t.record(pass()));
        assert_eq!(t.status(), Status::Passing);
    }

    #[test]
    fn too_many_requests_warns_at_once() {
        let mut t = check(1, 3, 3);
        t.record(pass());
        assert!(t.record(Outcome::Warn("429".into())));
        assert_eq!(t.status(), Status::Warning);
    }

    #[test]
    fn statuses_order_from_best_to_worst() {
        assert!(Status::Passing < Status::Warning && Status::Warning < Status::Critical);
    }
}
