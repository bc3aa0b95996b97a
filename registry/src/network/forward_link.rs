//! Follower side of write forwarding: one long-lived `ForwardWrites` stream to the
//! leader, opened on the first forwarded write and replaced when the leader changes
//! or the stream ends.
//!
//! Writes that arrive while a message is on its way go together in the next one
//! (batching), and any number of messages are in flight at once (pipelining), so a
//! follower under load sends a few messages per leader round trip instead of one
//! unary call, with its HTTP/2 stream and headers, per write.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;
use waymark_proto::pb;

use super::peers::PeerChannels;
use crate::codec;
use crate::metrics::Metrics;
use crate::model::CommandResult;

/// What the leader answered for one write: its index and result, or the status the
/// leader's API edge gave it (details included).
pub type Answer = Result<(u64, CommandResult), Status>;

/// Most writes put in one message; the rest go in the next.
const MAX_WRITES_PER_MESSAGE: usize = 512;
/// Messages queued for the stream before the link waits for HTTP/2 to take them.
const MESSAGES_QUEUED: usize = 16;

/// A node's forwarding stream to its current leader.
pub struct Forwarder {
    peers: PeerChannels,
    metrics: Arc<Metrics>,
    link: Mutex<Option<Link>>,
}

/// An open stream to one leader: writes go into `queue`, the link task sends them.
struct Link {
    addr: String,
    queue: mpsc::UnboundedSender<Waiting>,
}

struct Waiting {
    command: Vec<u8>,
    reply: oneshot::Sender<Answer>,
}

impl Forwarder {
    pub fn new(peers: PeerChannels, metrics: Arc<Metrics>) -> Self {
        Self {
            peers,
            metrics,
            link: Mutex::new(None),
        }
    }

    /// Queues an encoded command for the leader at `addr` (its Raft address). The
    /// answer arrives on the receiver; if the stream ends first, the receiver gets a
    /// transport status (the write may or may not have reached the leader). An error
    /// here means no stream could be opened: nothing was sent.
    pub fn send(&self, addr: &str, command: Vec<u8>) -> Result<oneshot::Receiver<Answer>, Status> {
        let (reply, answer) = oneshot::channel();
        let mut waiting = Waiting { command, reply };
        let mut link = self.link.lock().expect("forward link lock poisoned");
        // Twice at most: a link can end between the check and the send.
        for _ in 0..2 {
            let usable = link
                .as_ref()
                .is_some_and(|l| l.addr == addr && !l.queue.is_closed());
            if !usable {
                *link = Some(self.open(addr)?);
            }
            let queue = &link.as_ref().expect("a link was just opened").queue;
            match queue.send(waiting) {
                Ok(()) => return Ok(answer),
                Err(mpsc::error::SendError(back)) => {
                    waiting = back;
                    *link = None;
                }
            }
        }
        Err(Status::unavailable(
            "the forwarding stream to the leader kept closing",
        ))
    }

    fn open(&self, addr: &str) -> Result<Link, Status> {
        let client = self.peers.raft_client(addr)?;
        let (queue, writes) = mpsc::unbounded_channel();
        tokio::spawn(run_link(client, writes, self.metrics.clone()));
        Ok(Link {
            addr: addr.to_string(),
            queue,
        })
    }
}

type RaftClient = pb::raft_client::RaftClient<tonic::transport::Channel>;

/// Sends queued writes to the leader and hands each answer to its caller, until the
/// stream ends or the forwarder is dropped; then fails whatever is still waiting.
async fn run_link(
    mut client: RaftClient,
    mut writes: mpsc::UnboundedReceiver<Waiting>,
    metrics: Arc<Metrics>,
) {
    let (messages, outgoing) = mpsc::channel(MESSAGES_QUEUED);
    let mut answers = match client.forward_writes(ReceiverStream::new(outgoing)).await {
        Ok(response) => response.into_inner(),
        Err(status) => {
            fail_all(&mut writes, HashMap::new(), &status);
            return;
        }
    };
    let mut waiting: HashMap<u64, oneshot::Sender<Answer>> = HashMap::new();
    let mut next_seq = 0u64;
    let mut messages = Some(messages);
    let ended = loop {
        tokio::select! {
            first = writes.recv(), if messages.is_some() => {
                let Some(first) = first else {
                    // The forwarder is gone (the node is stopping): send nothing more,
                    // but deliver the answers still owed.
                    messages = None;
                    if waiting.is_empty() {
                        break Status::cancelled("the node is stopping");
                    }
                    continue;
                };
                let mut batch = pb::ForwardedWrites::default();
                let mut next = Some(first);
                while let Some(w) = next {
                    next_seq += 1;
                    batch.writes.push(pb::ForwardedWrite { seq: next_seq, command: w.command });
                    waiting.insert(next_seq, w.reply);
                    next = if batch.writes.len() < MAX_WRITES_PER_MESSAGE {
                        writes.try_recv().ok()
                    } else {
                        None
                    };
                }
                metrics.forwarded_writes.add(batch.writes.len() as u64);
                metrics.forward_messages.inc();
                let sender = messages.as_ref().expect("checked by the branch guard");
                if sender.send(batch).await.is_err() {
                    break Status::unavailable("the forwarding stream to the leader closed");
                }
            }
            answer = answers.message() => match answer {
                Ok(Some(results)) => {
                    for result in results.results {
                        if let Some(reply) = waiting.remove(&result.seq) {
                            let _ = reply.send(decode_answer(result.outcome));
                        }
                    }
                    if messages.is_none() && waiting.is_empty() {
                        break Status::cancelled("the node is stopping");
                    }
                }
                Ok(None) => break Status::unavailable("the leader ended the forwarding stream"),
                Err(status) => break status,
            },
        }
    };
    fail_all(&mut writes, waiting, &ended);
}

/// Answers every write still waiting, and every one queued but not sent, with the
/// reason the stream ended; later sends find the queue closed and open a new link.
fn fail_all(
    writes: &mut mpsc::UnboundedReceiver<Waiting>,
    waiting: HashMap<u64, oneshot::Sender<Answer>>,
    reason: &Status,
) {
    writes.close();
    let transport = || Status::new(reason.code(), reason.message().to_string());
    for reply in waiting.into_values() {
        let _ = reply.send(Err(transport()));
    }
    while let Ok(w) = writes.try_recv() {
        let _ = w.reply.send(Err(transport()));
    }
}

fn decode_answer(outcome: Option<pb::forwarded_result::Outcome>) -> Answer {
    match outcome {
        Some(pb::forwarded_result::Outcome::Written(bytes)) => codec::from_slice(&bytes)
            .map_err(|e| Status::internal(format!("the leader's answer: {e}"))),
        Some(pb::forwarded_result::Outcome::Error(e)) => Err(Status::with_details(
            tonic::Code::from_i32(e.code),
            e.message,
            e.details.into(),
        )),
        None => Err(Status::internal("the leader's answer has no outcome")),
    }
}
