//! Exponential backoff with jitter, capped, reset after a success: how long to wait
//! before the next attempt when a node (or every node) keeps failing.

use std::time::Duration;

use rand::Rng;

/// Delays grow from `start`, doubling up to `max`. Each delay is drawn from the upper
/// half of the current step (so clients that failed together do not retry together,
/// yet the wait never collapses to nothing).
#[derive(Debug, Clone)]
pub struct Backoff {
    start: Duration,
    max: Duration,
    step: Duration,
}

impl Backoff {
    pub fn new(start: Duration, max: Duration) -> Self {
        let start = start.min(max);
        Self {
            start,
            max,
            step: start,
        }
    }

    /// The next delay to wait, advancing the step.
    pub fn next_delay(&mut self) -> Duration {
        let step = self.step;
        self.step = (self.step * 2).min(self.max);
        let low = step / 2;
        if low >= step {
            return step;
        }
        rand::thread_rng().gen_range(low..=step)
    }

    /// Waits for the next delay and returns it.
    pub async fn wait(&mut self) -> Duration {
        let d = self.next_delay();
        tokio::time::sleep(d).await;
        d
    }

    /// After a success: the next failure starts from `start` again.
    pub fn reset(&mut self) {
        self.step = self.start;
    }
}

impl Default for Backoff {
    /// 250 ms doubling to 5 s: a leader election usually ends within the first steps.
    fn default() -> Self {
        Self::new(Duration::from_millis(250), Duration::from_secs(5))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_jittered_capped_and_resets() {
        let ms = Duration::from_millis;
        let mut b = Backoff::new(ms(100), ms(350));
        let steps = [100, 200, 350, 350];
        for step in steps {
            let d = b.next_delay();
            assert!(d >= ms(step) / 2 && d <= ms(step), "{d:?} for step {step}");
        }
        b.reset();
        assert!(b.next_delay() <= ms(100));
    }
}
