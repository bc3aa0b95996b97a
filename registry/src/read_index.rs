//! Batched ReadIndex: concurrent consistent reads share one leadership confirmation
//! (one heartbeat round to a quorum) instead of costing one each.
//!
//! The rule that keeps them linearizable (etcd's `linearizableReadLoop` follows the
//! same one): a read may only use a confirmation that *started after the read
//! arrived*. A confirmation that was already under way may have been answered by a
//! quorum before a write the reader has seen acknowledged committed, so its index
//! could miss that write. Confirmations run one at a time; a read that arrives while
//! one is running waits for the next, which also serves everyone else who arrived
//! meanwhile.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};

/// Runs confirmations one at a time and shares each one's result with every caller
/// that arrived before it started.
pub struct Coalescer<T> {
    /// Confirmations started so far (the number of the latest one).
    started: AtomicU64,
    /// Held while a confirmation runs; FIFO, so callers are served in arrival order.
    turn: tokio::sync::Mutex<()>,
    /// The latest finished confirmation: its number and result.
    last: std::sync::Mutex<Option<(u64, T)>>,
}

impl<T: Clone> Default for Coalescer<T> {
    fn default() -> Self {
        Self {
            started: AtomicU64::new(0),
            turn: tokio::sync::Mutex::new(()),
            last: std::sync::Mutex::new(None),
        }
    }
}

impl<T: Clone> Coalescer<T> {
    /// The result of a confirmation that started after this call began: a finished
    /// one if there is such, else a new one run with `confirm`.
    pub async fn run<F, Fut>(&self, confirm: F) -> T
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = T>,
    {
        let arrived_after = self.started.load(Ordering::SeqCst);
        let _turn = self.turn.lock().await;
        if let Some((round, result)) = &*self.last.lock().expect("read index lock poisoned") {
            if *round > arrived_after {
                return result.clone();
            }
        }
        // Counted before it starts: a caller that sees this number may not use it.
        let round = self.started.fetch_add(1, Ordering::SeqCst) + 1;
        let result = confirm().await;
        *self.last.lock().expect("read index lock poisoned") = Some((round, result.clone()));
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use tokio::sync::Notify;

    #[tokio::test]
    async fn callers_waiting_together_share_one_confirmation() {
        let c = Arc::new(Coalescer::<u64>::default());
        let release = Arc::new(Notify::new());
        let rounds = Arc::new(AtomicU64::new(0));
        let confirm = |rounds: Arc<AtomicU64>, release: Arc<Notify>| async move {
            let n = rounds.fetch_add(1, Ordering::SeqCst) + 1;
            release.notified().await;
            n
        };
        // The first caller starts round 1 and holds it open.
        let first = tokio::spawn({
            let (c, r, rel) = (c.clone(), rounds.clone(), release.clone());
            async move { c.run(|| confirm(r, rel)).await }
        });
        while rounds.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        // Five more arrive while round 1 runs: none may use round 1.
        let later: Vec<_> = (0..5)
            .map(|_| {
                let (c, r, rel) = (c.clone(), rounds.clone(), release.clone());
                tokio::spawn(async move { c.run(|| confirm(r, rel)).await })
            })
            .collect();
        for _ in 0..50 {
            tokio::task::yield_now().await;
        }
        release.notify_one();
        assert_eq!(first.await.unwrap(), 1);
        while rounds.load(Ordering::SeqCst) < 2 {
            tokio::task::yield_now().await;
        }
        release.notify_one();
        for h in later {
            assert_eq!(
                h.await.unwrap(),
                2,
                "served by the round that began after it"
            );
        }
        assert_eq!(rounds.load(Ordering::SeqCst), 2, "one round for all five");
    }

    #[tokio::test]
    async fn a_finished_confirmation_is_never_reused_by_a_later_caller() {
        let c = Coalescer::<u64>::default();
        assert_eq!(c.run(|| async { 1 }).await, 1);
        // Round 1 finished before this call began: it must run its own.
        assert_eq!(c.run(|| async { 2 }).await, 2);
    }
}
