//! Waymark's sidecar proxy (`waymark-proxy`): one process next to each service
//! instance. It registers the instance under a lease and keeps it alive, health-checks
//! the local app, follows each upstream's passing instances over a watch (never
//! applying an older state than one it has applied, failing static when no registry
//! node answers), balances TCP connections and HTTP requests over them, and carries the
//! traffic. It talks to the registry only through `waymark-client`.

pub mod admin;
pub mod balance;
pub mod config;
pub mod discovery;
pub mod endpoints;
pub mod forward;
pub mod health;
pub mod load;
pub mod mesh;
pub mod metrics;
pub mod outlier;
pub mod registration;
pub mod run;
pub mod scheduling;
pub mod upstream;
