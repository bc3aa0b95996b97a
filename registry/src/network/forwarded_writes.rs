//! Leader side of write forwarding: serves one follower's `ForwardWrites` stream.
//! Every write in a message is proposed at once (they join the same group-commit
//! entries as the leader's own clients), and answers go back as they commit, as many
//! per message as are ready together.

use std::sync::Arc;

use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tonic::{Status, Streaming};
use waymark_proto::{pb, ValidationError};

use crate::api::admission;
use crate::api::errors::status;
use crate::codec;
use crate::model::Command;
use crate::node::Node;

pub type Results = mpsc::Sender<Result<pb::ForwardedResults, Status>>;

/// Runs one stream until the follower closes its side or the server stops (`stop`:
/// no new writes are taken, those in flight are answered, then the stream ends, so a
/// follower's idle stream never holds the leader's shutdown drain).
pub async fn serve(
    node: Arc<Node>,
    mut incoming: Streaming<pb::ForwardedWrites>,
    results: Results,
    stop: CancellationToken,
) {
    let mut in_flight = FuturesUnordered::new();
    let mut taking = true;
    loop {
        tokio::select! {
            message = incoming.message(), if taking => match message {
                Ok(Some(batch)) => {
                    for write in batch.writes {
                        in_flight.push(answer(node.clone(), write));
                    }
                }
                Ok(None) => taking = false,
                Err(e) => {
                    tracing::debug!(error = %e, "a forwarding stream broke");
                    taking = false;
                }
            },
            _ = stop.cancelled(), if taking => taking = false,
            Some(first) = in_flight.next() => {
                let mut ready = pb::ForwardedResults { results: vec![first] };
                while let Some(Some(more)) = in_flight.next().now_or_never() {
                    ready.results.push(more);
                }
                if results.send(Ok(ready)).await.is_err() {
                    return; // The follower is gone.
                }
            }
            else => return,
        }
    }
}

/// Commits one forwarded write and says how it went.
async fn answer(node: Arc<Node>, write: pb::ForwardedWrite) -> pb::ForwardedResult {
    use pb::forwarded_result::Outcome;
    let outcome = match commit(&node, &write.command).await {
        Ok(written) => Outcome::Written(written),
        Err(s) => Outcome::Error(pb::ForwardError {
            code: s.code() as i32,
            message: s.message().to_string(),
            details: s.details().to_vec(),
        }),
    };
    pb::ForwardedResult {
        seq: write.seq,
        outcome: Some(outcome),
    }
}

async fn commit(node: &Node, command: &[u8]) -> Result<Vec<u8>, Status> {
    let cmd: Command = codec::from_slice(command).map_err(|e| {
        status(
            node,
            ValidationError::new("command", format!("does not decode: {e}")),
        )
    })?;
    if let Err(e) = admission::check_forwarded(&cmd) {
        tracing::warn!(command = cmd.name(), error = %e, "refused a forwarded write");
        return Err(status(node, e));
    }
    let written = node
        .write_as_leader(cmd)
        .await
        .map_err(|e| status(node, e))?;
    codec::to_vec(&written).map_err(|e| Status::internal(format!("encoding a write's answer: {e}")))
}
