//! Watch machinery: the hub of applied changes of every kind, in index order. The
//! per-stream logic that turns it into wire messages is at the API edge
//! (`api/watch_stream.rs`); `encoded` keeps what it encodes, once per index, for
//! every stream to share.

pub mod encoded;
pub mod hub;
