//! The Raft transport over gRPC on its own listener: the client side openraft uses
//! to reach peers (`raft_client`), the server side that feeds their messages into
//! the local Raft (`raft_service`), and a small channel cache shared by both.

pub mod peers;
pub mod raft_client;
pub mod raft_service;

use serde::{de::DeserializeOwned, Serialize};

/// Encodes an openraft message for the wire. Raft payloads are an internal protocol
/// between Waymark nodes of the same version, so serde JSON is enough.
pub(crate) fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, tonic::Status> {
    serde_json::to_vec(value)
        .map_err(|e| tonic::Status::internal(format!("encoding raft message: {e}")))
}

pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, tonic::Status> {
    serde_json::from_slice(bytes)
        .map_err(|e| tonic::Status::invalid_argument(format!("decoding raft message: {e}")))
}
