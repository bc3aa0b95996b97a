//! Waymark's wire format: the generated `waymark.v1` gRPC/protobuf code and the
//! validated value types that the registry accepts from it.

pub mod errors;
pub mod validate;

/// Generated code for the `waymark.v1` package.
pub mod pb {
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("waymark.v1");

    /// Encoded descriptors of every `waymark.v1` file, for gRPC server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("waymark_descriptor");
}

pub use validate::{
    check_health_update, check_instance_key, check_lease_ttl, Registration, ValidationError,
    Weights, LIMITS_DOC,
};
