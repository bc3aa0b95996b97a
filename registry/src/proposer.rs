//! Group commit on the leader: concurrent writes are gathered into one log entry
//! (`Command::Batch`), so they share one append, one fsync on every node and one
//! AppendEntries, instead of one each.
//!
//! openraft 0.10 already shares fsyncs between entries (its log IO does not block the
//! core, and the log store syncs whatever was written meanwhile in one go), but every
//! entry still costs its own encoding, log row, AppendEntries slot, apply step and
//! response. Here a single task forms batches: while `MAX_IN_FLIGHT` entries are being
//! written and replicated, new writes queue up and become the next, larger, batch. At
//! low load a write goes alone and is proposed as the plain command.
//!
//! What stays exact (see `model::Footprint`): every write in a batch is answered with
//! the batch entry's index, the index watchers see its change at. No two commands in
//! one entry touch the same record, so a record's modify index still names one write
//! and compare-and-set stays sound; a lease's id is its entry's index, so one
//! `CreateLease` per entry; commands with effects they cannot name in advance
//! (`EndLease`) go alone.

use std::collections::hash_map::DefaultHasher;
use std::collections::{HashSet, VecDeque};
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use openraft::error::{ClientWriteError, RaftError};
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};

use crate::metrics::Metrics;
use crate::model::{Command, CommandResult, Footprint};
use crate::raft_types::{Raft, TypeConfig};

/// The most commands in one entry. Bounds an entry (a register is about 0.5 KB), and
/// with it each AppendEntries (`MAX_PAYLOAD_ENTRIES` entries).
pub const MAX_BATCH: usize = 128;

/// Entries handed to Raft and not yet answered. More split the waiting writes into
/// smaller entries: on openraft 0.9, with 16 clients, 4 gave 1,305 writes/s at 2.7
/// per entry, 2 gave 1,630 at 4.9.
const MAX_IN_FLIGHT: usize = 2;

/// Longest an entry holds its in-flight slot. openraft 0.9 could leave a write
/// unanswered when its leader was deposed with it in flight (seen in the Jepsen smoke:
/// a node paused as leader, re-elected later, then timed out every write it proposed
/// for the rest of the run); 0.10 answers such a write with `LogEntryDiscarded`, and
/// this limit stays as the guard that two lost answers can never stop a leader from
/// writing. Callers give up long before (`Node` waits `request_timeout`, 5 s by
/// default, and says the write may have applied), so freeing the slot changes no answer.
const SLOT_HOLD_LIMIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Writes waiting for the batching task. A full queue makes callers wait (back
/// pressure) rather than grow memory without bound.
const QUEUE: usize = 8 * MAX_BATCH;

/// Why Raft did not take a write: the caller decides (forward, wait for a leader).
pub type WriteError = RaftError<TypeConfig, ClientWriteError<TypeConfig>>;

/// A committed write: the index of its entry and its own result.
pub type WriteReply = Result<(u64, CommandResult), WriteError>;

struct Proposal {
    cmd: Command,
    reply: oneshot::Sender<WriteReply>,
}

/// Hands writes to the batching task. Cheap to clone.
#[derive(Clone)]
pub struct Proposer {
    tx: mpsc::Sender<Proposal>,
    /// The in-flight slots the batching task takes one of per entry.
    slots: Arc<Semaphore>,
}

/// While held, no new entry is proposed: writes wait in the queue (see `Proposer::pause`).
pub struct Paused {
    _slots: OwnedSemaphorePermit,
}

impl Proposer {
    /// Starts the batching task for `raft` (it ends when every `Proposer` is dropped).
    pub fn start(raft: Raft, metrics: Arc<Metrics>) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        let slots = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
        tokio::spawn(run(raft, rx, slots.clone(), metrics));
        Self { tx, slots }
    }

    /// Waits until every entry this node proposed has been answered, then holds
    /// every in-flight slot: until the guard is dropped no new entry is proposed and
    /// writes queue up, so the log stops growing (a leadership handoff needs a
    /// follower whose log is as long as the leader's). `None`: the task has stopped.
    pub async fn pause(&self) -> Option<Paused> {
        let all = u32::try_from(MAX_IN_FLIGHT).expect("a handful of slots");
        self.slots
            .clone()
            .acquire_many_owned(all)
            .await
            .ok()
            .map(|_slots| Paused { _slots })
    }

    /// Proposes `cmd` and waits for its own result. `None`: the task has stopped
    /// (Raft shut down).
    pub async fn write(&self, cmd: Command) -> Option<WriteReply> {
        let (reply, answer) = oneshot::channel();
        self.tx.send(Proposal { cmd, reply }).await.ok()?;
        answer.await.ok()
    }
}

async fn run(
    raft: Raft,
    mut rx: mpsc::Receiver<Proposal>,
    slots: Arc<Semaphore>,
    metrics: Arc<Metrics>,
) {
    let mut held = VecDeque::new();
    loop {
        if held.is_empty() {
            match rx.recv().await {
                Some(p) => held.push_back(p),
                None => return,
            }
        }
        // Then a slot: while none is free, writes keep queueing and the next batch
        // grows. (Not before the first write: an idle task must hold no slot, or
        // `pause` could never take them all.)
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        while held.len() < 2 * MAX_BATCH {
            match rx.try_recv() {
                Ok(p) => held.push_back(p),
                Err(_) => break,
            }
        }
        let batch = take_batch(&mut held);
        metrics.proposal_batch_size.observe(batch.len() as f64);
        let raft = raft.clone();
        tokio::spawn(async move {
            if tokio::time::timeout(SLOT_HOLD_LIMIT, commit(&raft, batch))
                .await
                .is_err()
            {
                // Its callers (already gone) get no answer: the entry may still commit.
                tracing::warn!(
                    limit = ?SLOT_HOLD_LIMIT,
                    "a proposed entry was not answered in time; freeing its slot"
                );
            }
            drop(slot);
        });
    }
}

/// The next entry's proposals: the oldest held one, then every later one that can
/// share its entry, in arrival order, up to `MAX_BATCH`. The rest stay held, in order.
fn take_batch(held: &mut VecDeque<Proposal>) -> Vec<Proposal> {
    let mut entry = EntryFootprints::default();
    let mut batch = Vec::new();
    let mut rest = VecDeque::with_capacity(held.len());
    for p in held.drain(..) {
        if batch.len() < MAX_BATCH && entry.admit(&p.cmd) {
            batch.push(p);
        } else {
            rest.push_back(p);
        }
    }
    *held = rest;
    batch
}

/// The footprints already in one entry.
#[derive(Default)]
struct EntryFootprints {
    /// Hashes of the footprints taken: a collision only keeps a command for the next
    /// entry, never lets two conflicting ones share one.
    taken: HashSet<u64>,
    exclusive: bool,
}

impl EntryFootprints {
    /// Whether `cmd` may join the entry (and if so, counts it in).
    fn admit(&mut self, cmd: &Command) -> bool {
        if self.exclusive {
            return false;
        }
        let footprint = cmd.footprint();
        if footprint == Footprint::Exclusive {
            self.exclusive = self.taken.is_empty();
            return self.exclusive;
        }
        let mut h = DefaultHasher::new();
        footprint.hash(&mut h);
        self.taken.insert(h.finish())
    }
}

/// Proposes one entry and hands each proposal its own result.
async fn commit(raft: &Raft, mut batch: Vec<Proposal>) {
    if batch.len() == 1 {
        let Proposal { cmd, reply } = batch.pop().expect("one proposal");
        let result = raft.client_write(cmd).await;
        let _ = reply.send(result.map(|resp| (resp.log_id.index, resp.data)));
        return;
    }
    let (cmds, replies): (Vec<_>, Vec<_>) = batch.into_iter().map(|p| (p.cmd, p.reply)).unzip();
    match raft.client_write(Command::Batch(cmds.into())).await {
        Ok(resp) => {
            let index = resp.log_id.index;
            let results = match resp.data {
                CommandResult::Batch(results) if results.len() == replies.len() => results,
                // A bug: each caller then reports "applied with another command's
                // result" rather than being handed someone else's outcome.
                other => {
                    tracing::error!(?other, "a batch entry applied without a result per command");
                    vec![CommandResult::None; replies.len()]
                }
            };
            for (reply, result) in replies.into_iter().zip(results) {
                let _ = reply.send(Ok((index, result)));
            }
        }
        Err(e) => {
            for reply in replies {
                let _ = reply.send(Err(e.clone()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ConfigCommand, Health, NewInstance};

    fn register(service: &str, id: &str) -> Command {
        Command::Register(NewInstance::example(service, id, 80))
    }

    fn health(service: &str, id: &str) -> Command {
        Command::UpdateHealth {
            service: service.into(),
            id: id.into(),
            health: Health::Critical,
            output: String::new(),
        }
    }

    fn held(cmds: Vec<Command>) -> VecDeque<Proposal> {
        cmds.into_iter()
            .map(|cmd| Proposal {
                cmd,
                reply: oneshot::channel().0,
            })
            .collect()
    }

    fn cmds(batch: &[Proposal]) -> Vec<&Command> {
        batch.iter().map(|p| &p.cmd).collect()
    }

    #[test]
    fn writes_to_different_records_share_an_entry() {
        let all = vec![
            register("web", "a"),
            register("web", "b"),
            health("db", "a"),
            Command::Config(ConfigCommand::Delete {
                key: "web/a".into(),
                if_modify_index: None,
            }),
            Command::CreateLease { ttl_ms: 1000 },
        ];
        let mut q = held(all.clone());
        let batch = take_batch(&mut q);
        assert_eq!(cmds(&batch), all.iter().collect::<Vec<_>>());
        assert!(q.is_empty());
    }

    #[test]
    fn a_second_write_to_one_record_waits_for_the_next_entry_in_order() {
        let mut q = held(vec![
            register("web", "a"),
            health("web", "a"),
            register("web", "b"),
            Command::Deregister {
                service: "web".into(),
                id: "a".into(),
            },
            Command::CreateLease { ttl_ms: 1 },
            Command::CreateLease { ttl_ms: 2 },
        ]);
        let first = take_batch(&mut q);
        assert_eq!(
            cmds(&first),
            vec![
                &register("web", "a"),
                &register("web", "b"),
                &Command::CreateLease { ttl_ms: 1 }
            ]
        );
        let second = take_batch(&mut q);
        assert_eq!(
            cmds(&second),
            vec![&health("web", "a"), &Command::CreateLease { ttl_ms: 2 }]
        );
        let third = take_batch(&mut q);
        assert_eq!(third.len(), 1);
        assert_eq!(third[0].cmd.name(), "Deregister");
        assert!(q.is_empty());
    }

    #[test]
    fn ending_a_lease_goes_alone() {
        let end = Command::EndLease {
            lease_id: 3,
            reason: "expired".into(),
        };
        let mut q = held(vec![
            register("web", "a"),
            end.clone(),
            register("web", "b"),
        ]);
        assert_eq!(
            cmds(&take_batch(&mut q)),
            vec![&register("web", "a"), &register("web", "b")]
        );
        assert_eq!(cmds(&take_batch(&mut q)), vec![&end]);
        let mut q = held(vec![end.clone(), register("web", "c")]);
        assert_eq!(cmds(&take_batch(&mut q)), vec![&end]);
        assert_eq!(q.len(), 1);
    }

    #[test]
    fn a_batch_holds_at_most_max_batch_commands() {
        let mut q = held(
            (0..MAX_BATCH + 5)
                .map(|i| register("web", &i.to_string()))
                .collect(),
        );
        assert_eq!(take_batch(&mut q).len(), MAX_BATCH);
        assert_eq!(take_batch(&mut q).len(), 5);
    }
}
