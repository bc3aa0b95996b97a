//! The client gRPC API: the `Catalog` and `Cluster` services, conversions between
//! stored records and wire messages, and the one place errors become gRPC statuses.

pub mod catalog_service;
pub mod cluster_service;
pub mod convert;
pub mod errors;
pub mod lease_service;
