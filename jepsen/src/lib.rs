//! Waymark's Jepsen-style harness; for now the checker its histories go through.
//!
//! The harness will hold cluster control in network namespaces, nemeses (kill, pause,
//! partition), workloads and run reports, treating the cluster as a black box (real
//! processes and the public gRPC/DNS APIs only). Today it has the Porcupine-style
//! linearizability checker in [`checker`], which the `waymark-jepsen check` command
//! runs over recorded histories.

pub mod checker;
