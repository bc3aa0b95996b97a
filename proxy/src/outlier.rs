//! Passive outlier detection for one endpoint: consecutive failures eject it for a
//! time that doubles with each ejection in a row (up to a maximum); when the time is
//! up it is on probation — back in rotation, where one more failure ejects it again
//! at once and one success clears its record.

use std::time::Instant;

use crate::config::OutlierConfig;

#[derive(Debug, Clone, Default)]
pub struct Outlier {
    consecutive_failures: u32,
    /// Ejections in a row without a success in between.
    ejections: u32,
    ejected_until: Option<Instant>,
}

impl Outlier {
    /// Out of rotation at `now`.
    pub fn is_ejected(&self, now: Instant) -> bool {
        self.ejected_until.is_some_and(|t| now < t)
    }

    /// Back from an ejection, not yet confirmed by a success.
    pub fn on_probation(&self, now: Instant) -> bool {
        self.ejected_until.is_some_and(|t| now >= t)
    }

    pub fn success(&mut self) {
        self.consecutive_failures = 0;
        self.ejections = 0;
        self.ejected_until = None;
    }

    /// Counts a failure; returns whether it ejected the endpoint.
    pub fn failure(&mut self, config: &OutlierConfig, now: Instant) -> bool {
        if self.is_ejected(now) {
            // A request picked before the ejection failing late: already out.
            return false;
        }
        self.consecutive_failures += 1;
        if !self.on_probation(now) && self.consecutive_failures < config.consecutive_failures {
            return false;
        }
        self.ejections = self.ejections.saturating_add(1);
        let factor = 1u32 << (self.ejections - 1).min(16);
        let time = config
            .base_ejection
            .saturating_mul(factor)
            .min(config.max_ejection);
        self.ejected_until = Some(now + time);
        self.consecutive_failures = 0;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn config() -> OutlierConfig {
        OutlierConfig {
            consecutive_failures: 3,
            base_ejection: Duration::from_secs(10),
            max_ejection: Duration::from_secs(25),
            panic_threshold_percent: 50,
        }
    }

    #[test]
    fn ejects_after_consecutive_failures_only() {
        let (c, t0) = (config(), Instant::now());
        let mut o = Outlier::default();
        assert!(!o.failure(&c, t0));
        assert!(!o.failure(&c, t0));
        o.success();
        assert!(!o.failure(&c, t0));
        assert!(!o.failure(&c, t0));
        assert!(o.failure(&c, t0), "third failure in a row ejects");
        assert!(o.is_ejected(t0 + Duration::from_secs(9)));
        assert!(!o.is_ejected(t0 + Duration::from_secs(10)));
    }

    #[test]
    fn probation_failure_ejects_again_for_twice_as_long_up_to_the_max() {
        let (c, t0) = (config(), Instant::now());
        let mut o = Outlier::default();
        for _ in 0..3 {
            o.failure(&c, t0);
        }
        let t1 = t0 + Duration::from_secs(10);
        assert!(o.on_probation(t1));
        assert!(o.failure(&c, t1), "one failure on probation ejects");
        assert!(o.is_ejected(t1 + Duration::from_secs(19)));
        assert!(!o.is_ejected(t1 + Duration::from_secs(20)));
        let t2 = t1 + Duration::from_secs(20);
        assert!(o.failure(&c, t2));
        assert!(
            !o.is_ejected(t2 + Duration::from_secs(25)),
            "capped at the maximum"
        );
    }

    #[test]
    fn a_success_on_probation_clears_the_record() {
        let (c, t0) = (config(), Instant::now());
        let mut o = Outlier::default();
        for _ in 0..3 {
            o.failure(&c, t0);
        }
        let t1 = t0 + Duration::from_secs(10);
        o.success();
        assert!(!o.on_probation(t1));
        assert!(!o.failure(&c, t1), "back to needing three in a row");
    }
}
