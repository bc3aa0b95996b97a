//! Waymark's wire format: the generated `waymark.v1` gRPC/protobuf code and the
//! validated value types that the registry accepts from it.

pub mod validate;

/// Generated code for the `waymark.v1` package.
pub mod pb {
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("waymark.v1");
}

pub use validate::{
    check_health_update, check_instance_key, check_lease_ttl, Registration, ValidationError,
    Weights, LIMITS_DOC,
};
