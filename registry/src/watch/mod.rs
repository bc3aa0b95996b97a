//! Watch machinery: the hub of applied changes (`hub`) and the per-stream logic that
//! turns it into snapshot / changes / progress / reset messages (`stream`).

pub mod hub;
pub mod stream;
