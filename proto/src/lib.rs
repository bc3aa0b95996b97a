//! Waymark's wire format: the generated `waymark.v1` gRPC/protobuf code and the
//! validated value types that the registry accepts from it.

pub mod acl;
pub mod codec;
pub mod config_key;
pub mod errors;
pub mod intention;
pub mod mesh;
pub mod parts;
pub mod selector;
pub mod validate;
pub mod watch_frame;
pub mod watch_selection;

/// Generated code for the `waymark.v1` package.
pub mod pb {
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("waymark.v1");
    pub use super::servers::*;

    /// Encoded descriptors of every `waymark.v1` file, for gRPC server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        tonic::include_file_descriptor_set!("waymark_descriptor");
}

/// Generated servers of the `waymark.v1` services (see `build.rs`), re-exported in `pb`.
mod servers {
    #![allow(clippy::all, missing_docs)]
    include!(concat!(env!("OUT_DIR"), "/servers/waymark.v1.rs"));
}

pub use config_key::{check_config_key, check_config_prefix, check_config_value};
pub use validate::{
    check_health_update, check_host_port, check_instance_key, check_lease_id, check_lease_ttl,
    check_node_id, Registration, ValidationError, Weights, LIMITS_DOC,
};
pub use watch_frame::WatchFrame;
pub use watch_selection::{InstanceSelection, WatchSelection};
