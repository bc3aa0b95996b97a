//! Workloads, one module each: a clap `Args` struct for its flags and an async `run`
//! that drives the shared runner and returns a `report::Summary`.

pub mod list;
pub mod register;
pub mod watch;
pub mod write_gaps;
