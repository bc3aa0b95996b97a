//! Waymark's Jepsen-style harness: it runs a real cluster in network namespaces,
//! injects faults, records every operation with its real-time interval, and checks
//! the history against the consistency contract.
//!
//! - [`cluster`]: network namespaces, the bridge, and the `waymark server` processes.
//! - [`nemesis`]: faults (kill, pause, partitions, packet loss) scheduled from a seed.
//! - [`workload`]: the clients that drive the cluster and record what they saw.
//! - [`history`]: the recorded events, as JSON lines.
//! - [`checks`]: the workload checkers, [`checker`] the linearizability search.
//! - [`report`]: summary and HTML page per run.
//! - [`run`]: one whole test run, start to verdict.

pub mod checker;
pub mod checks;
pub mod cluster;
pub mod control_gate;
pub mod history;
pub mod nemesis;
pub mod report;
pub mod run;
pub mod workload;
