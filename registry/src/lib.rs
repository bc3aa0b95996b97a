//! Waymark registry: the Raft-replicated service catalog on RocksDB, its gRPC API,
//! admin HTTP endpoint, and the `waymark` command line (server, dev cluster, client).

pub mod acl;
pub mod admin;
pub mod api;
pub mod audit;
pub mod catalog;
pub mod cli;
pub mod config;
pub mod dns_view;
pub mod frame_coalescing;
pub mod identity;
pub mod leader_handoff;
pub mod leader_loop;
pub mod leader_timers;
pub mod limits;
pub mod metrics;
pub mod model;
pub mod network;
pub mod node;
pub mod proposer;
pub mod raft_runtime;
pub mod raft_types;
pub mod read_index;
pub mod server;
pub mod store;
pub mod tls;
pub mod unsafe_control;
pub mod watch;

pub use config::ServerConfig;
/// The binary encoding lives in `model` (which must import nothing from the crate, and
/// stores its records with it); everything else names it `crate::codec`.
pub use model::codec;
pub use server::{run, Listeners};
