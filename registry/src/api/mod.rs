//! The client gRPC API: the `Catalog`, `Config`, `Leases` and `Cluster` services, the
//! standard health and reflection services, conversions between stored records and
//! wire messages, the read path shared by every read, and the one place errors become
//! gRPC statuses.

pub mod acl_service;
pub mod admission;
pub mod auth;
pub mod catalog_service;
pub mod cluster_service;
pub mod config_service;
pub mod convert;
pub mod errors;
pub mod identity_service;
pub mod intention_service;
pub mod lease_service;
pub mod rate_limit;
pub mod standard;
pub mod watch_stream;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use waymark_proto::pb;

use crate::catalog::Catalog;
use crate::node::{Node, RaftView};
use errors::ApiError;

/// Where the services spawn their per-request tasks (watch and keep-alive streams):
/// owned by the server, which closes and waits on the tracker at shutdown; every such
/// task ends when `shutdown` is cancelled.
#[derive(Clone)]
pub struct Tasks {
    pub tracker: TaskTracker,
    pub shutdown: CancellationToken,
}

/// Makes the local replica fit to answer in the requested mode, then runs `read` on
/// it. The returned meta carries the index the answer reflects.
pub async fn read<T>(
    node: &Node,
    options: Option<pb::ReadOptions>,
    read: impl FnOnce(&Catalog) -> T,
) -> Result<(T, pb::ResponseMeta), ApiError> {
    let options = options.unwrap_or_default();
    let consistency = waymark_proto::validate::read_consistency(&options)?;
    let view: RaftView = match consistency {
        pb::Consistency::Stale => {
            let view = node.view();
            node.check_staleness(&view, options.max_stale_ms)?;
            view
        }
        _ => {
            node.read_barrier().await?;
            node.view()
        }
    };
    let (value, index) = {
        let catalog = node.catalog.read().expect("catalog lock poisoned");
        (read(&catalog), catalog.applied_index())
    };
    Ok((
        value,
        convert::response_meta(node, &view, index, consistency),
    ))
}
