//! The Raft transport over gRPC on its own listener: the client side openraft uses
//! to reach peers (`raft_client`), the server side that feeds their messages into
//! the local Raft (`raft_service`), and a small channel cache shared by both.

pub mod forward_link;
mod forwarded_writes;
pub mod peers;
pub mod raft_client;
pub mod raft_service;

use serde::{de::DeserializeOwned, Serialize};

use crate::codec;

/// Encodes a Raft message or forwarded write for the wire, in the same binary
/// encoding as the log (`codec`): these are an internal protocol between Waymark
/// nodes of the same storage format.
pub(crate) fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, tonic::Status> {
    codec::to_vec(value).map_err(|e| tonic::Status::internal(format!("raft message: {e}")))
}

pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, tonic::Status> {
    codec::from_slice(bytes)
        .map_err(|e| tonic::Status::invalid_argument(format!("raft message: {e}")))
}

/// An InstallSnapshot chunk as it travels: openraft's request with its bytes as one
/// byte string (openraft declares them a plain `Vec<u8>`, which serde would send as
/// a list of numbers).
#[derive(serde::Serialize, serde::Deserialize)]
pub(crate) struct SnapshotChunk {
    vote: crate::raft_types::Vote,
    meta: openraft_legacy::network_v1::SnapshotMeta<crate::raft_types::TypeConfig>,
    offset: u64,
    #[serde(with = "serde_bytes")]
    data: Vec<u8>,
    done: bool,
}

type InstallSnapshot =
    openraft_legacy::network_v1::InstallSnapshotRequest<crate::raft_types::TypeConfig>;

impl From<InstallSnapshot> for SnapshotChunk {
    fn from(r: InstallSnapshot) -> Self {
        Self {
            vote: r.vote,
            meta: r.meta,
            offset: r.offset,
            data: r.data,
            done: r.done,
        }
    }
}

impl From<SnapshotChunk> for InstallSnapshot {
    fn from(c: SnapshotChunk) -> Self {
        Self {
            vote: c.vote,
            meta: c.meta,
            offset: c.offset,
            data: c.data,
            done: c.done,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_chunk_travels_as_raw_bytes_and_round_trips() {
        let request = InstallSnapshot {
            vote: crate::raft_types::Vote::new(3, 1),
            meta: openraft_legacy::network_v1::SnapshotMeta {
                last_log_id: None,
                last_membership: Default::default(),
                snapshot_id: "1".into(),
            },
            offset: 4096,
            data: vec![0xff; 1000],
            done: false,
        };
        let wire = encode(&SnapshotChunk::from(request.clone())).unwrap();
        // 0xff as a number would take two bytes each.
        assert!(wire.len() < 1000 + 200, "{} bytes", wire.len());
        let back: InstallSnapshot = decode::<SnapshotChunk>(&wire).unwrap().into();
        assert_eq!(back, request);
    }
}
