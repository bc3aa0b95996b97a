//! A burst of requests that a peer cancelled while this node could not read them (the
//! node was paused: a GC-like stall, a SIGSTOP, a slow disk) must not make the Raft
//! port close the whole connection, and with it the peer's other streams.

mod common;

use std::time::Duration;

use common::process::{wait_for_agreed_leader, Procs};
use common::*;
use nix::sys::signal::Signal;
use tokio_stream::wrappers::ReceiverStream;
use waymark_proto::pb;

const FORWARDED_REGISTER: &str = r#"{"Register":{"service":"web","id":"web-1",
    "address":"10.0.0.1","port":8080,"tags":[],"meta":{},"weight_passing":1,
    "weight_warning":1,"lease_id":null,"on_lease_expiry":"Remove",
    "deregister_critical_after_ms":0}}"#;

/// Cancelled requests the test piles up: more than h2's default of 20 pending-accept
/// resets per connection, after which a server sends GOAWAY (ENHANCE_YOUR_CALM).
const CANCELLED: usize = 60;

fn forwarded(seq: u64) -> pb::ForwardedWrites {
    let value: serde_json::Value = serde_json::from_str(FORWARDED_REGISTER).unwrap();
    pb::ForwardedWrites {
        writes: vec![pb::ForwardedWrite {
            seq,
            command: waymark_registry::codec::to_vec(&value).unwrap(),
        }],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_nodes_backlog_of_cancelled_requests_keeps_the_peer_connection() {
    let dir = tempfile::tempdir().unwrap();
    let procs = Procs::start(dir.path(), 1, &[]);
    wait_for_agreed_leader(&procs.apis()).await;
    let node = &procs.0[0];
    // One connection, as a peer has: a long-lived forwarding stream on it first.
    let mut raft = pb::raft_client::RaftClient::new(channel(&node.raft).await);
    let (send, outgoing) = tokio::sync::mpsc::channel(4);
    send.send(forwarded(1)).await.unwrap();
    let mut answers = raft
        .forward_writes(ReceiverStream::new(outgoing))
        .await
        .unwrap()
        .into_inner();
    let first = answers.message().await.unwrap().expect("an answer");
    assert_eq!(first.results[0].seq, 1);

    // The node stops reading; the peer's requests time out and are cancelled
    // (RST_STREAM), all queued in the socket behind their HEADERS.
    node.signal(Signal::SIGSTOP);
    let cancelled = (0..CANCELLED).map(|_| {
        let mut client = raft.clone();
        async move {
            let request = pb::TimeoutNowRequest {
                leader_id: 1,
                term: 1,
            };
            tokio::time::timeout(Duration::from_millis(300), client.timeout_now(request)).await
        }
    });
    let outcomes = futures::future::join_all(cancelled).await;
    assert!(
        outcomes.iter().all(|o| o.is_err()),
        "a request was answered by a stopped node"
    );
    node.signal(Signal::SIGCONT);

    // The node reads the whole backlog at once; the stream opened before must live on.
    send.send(forwarded(2)).await.unwrap();
    let second = answers
        .message()
        .await
        .expect("the forwarding stream survived the burst of cancelled requests")
        .expect("an answer");
    assert_eq!(second.results[0].seq, 2);
}
