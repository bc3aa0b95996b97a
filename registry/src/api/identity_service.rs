//! The `Identity` gRPC service: the mesh CA's roots (public parts only), leaves signed
//! from CSRs for a service the caller may write, and root rotation and retirement
//! through Raft.

use std::sync::Arc;
use std::time::Instant;

use tonic::{Request, Response, Status};
use waymark_proto::mesh::spiffe;
use waymark_proto::{pb, ValidationError};

use super::errors::{respond, ApiError};
use super::{auth, convert, read};
use crate::acl::Need;
use crate::identity::ca::{self, CaError};
use crate::limits::Caller;
use crate::model::{
    AclAccess, AclResource, CaCommand, CaRetireOutcome, CaRoot, CaRotateOutcome, Command,
};
use crate::node::Node;

pub struct IdentityService {
    node: Arc<Node>,
}

impl IdentityService {
    pub fn new(node: Arc<Node>) -> Self {
        Self { node }
    }
}

fn ca_error(e: CaError) -> ApiError {
    match e {
        CaError::BadCsr(reason) => ValidationError::new("csr_pem", reason).into(),
        CaError::BadImport { field, reason } => ValidationError::new(field, reason).into(),
        CaError::NotInitialized => ApiError::CaNotReady(e.to_string()),
        CaError::Signing(_) => ApiError::Node(crate::node::NodeError::Internal(e.to_string())),
    }
}

/// Every root, the active one first.
fn roots_in_order(roots: impl Iterator<Item = CaRoot>) -> Vec<CaRoot> {
    let mut roots: Vec<CaRoot> = roots.collect();
    roots.sort_by_key(|r| (!r.active, r.id.clone()));
    roots
}

#[tonic::async_trait]
impl pb::identity_server::Identity for IdentityService {
    async fn list_roots(
        &self,
        req: Request<pb::ListRootsRequest>,
    ) -> Result<Response<pb::ListRootsResponse>, Status> {
        let result = async {
            // Roots are public (certificates only): any caller may read them, as in
            // Consul, so a proxy can verify peers before it has a token of its own.
            let req = req.into_inner();
            let (roots, meta) = read(&self.node, req.read, |c| {
                roots_in_order(c.ca_roots().cloned())
            })
            .await?;
            Ok(pb::ListRootsResponse {
                trust_domain: roots
                    .first()
                    .map(|r| r.trust_domain.clone())
                    .unwrap_or_default(),
                roots: roots.iter().map(convert::ca_root).collect(),
                meta: Some(meta),
            })
        }
        .await;
        respond(&self.node, "IdentityListRoots", result)
    }

    async fn sign(
        &self,
        req: Request<pb::SignRequest>,
    ) -> Result<Response<pb::SignResponse>, Status> {
        let peer = req.remote_addr().map(|a| a.ip());
        let result = async {
            let secret = auth::presented(req.metadata())?;
            self.node
                .sign_limits
                .admit(Caller::of(secret.as_deref(), peer), Instant::now())
                .map_err(|l| ApiError::Limited(format!("Identity.Sign: {l}")))?;
            let caller = auth::caller(&self.node, req.metadata()).await?;
            let req = req.into_inner();
            spiffe::check_sign_request(&req.service, &req.csr_pem)?;
            caller.require(Need::service(&req.service, AclAccess::Write))?;
            // A consistent read: the leaf is signed by the root committed as active
            // when the request arrived, never by one a rotation already replaced.
            let (roots, meta) =
                read(&self.node, None, |c| roots_in_order(c.ca_roots().cloned())).await?;
            let active = roots
                .iter()
                .find(|r| r.active)
                .ok_or_else(|| ca_error(CaError::NotInitialized))?;
            let leaf = ca::sign_leaf(
                active,
                &req.service,
                &req.csr_pem,
                self.node.mesh.leaf_ttl(),
            )
            .map_err(ca_error)?;
            tracing::info!(
                service = %req.service,
                serial = %leaf.serial,
                root = %active.id,
                not_after_ms = leaf.not_after_ms,
                "issued leaf certificate"
            );
            Ok(pb::SignResponse {
                cert_pem: leaf.cert_pem,
                chain_pem: active.chain_pem.clone(),
                spiffe_id: leaf.spiffe_id,
                serial: leaf.serial,
                not_before_ms: leaf.not_before_ms,
                not_after_ms: leaf.not_after_ms,
                root_id: active.id.clone(),
                roots: roots.iter().map(convert::ca_root).collect(),
                index: meta.index,
            })
        }
        .await;
        respond(&self.node, "IdentitySign", result)
    }

    async fn rotate_root(
        &self,
        req: Request<pb::RotateRootRequest>,
    ) -> Result<Response<pb::RotateRootResponse>, Status> {
        let audit = self
            .node
            .audit
            .begin("IdentityRotateRoot", req.remote_addr());
        let result = async {
            let caller = auth::writer(&self.node, req.metadata(), &audit).await?;
            caller.require(Need::global(AclResource::Operator, AclAccess::Write))?;
            let req = req.into_inner();
            let (active, _) = read(&self.node, None, |c| c.active_root().cloned()).await?;
            let active = active.ok_or_else(|| ca_error(CaError::NotInitialized))?;
            let mut root = if req.cert_pem.is_empty() && req.key_pem.is_empty() {
                ca::generate_root(&active.trust_domain)
            } else {
                ca::import_root(
                    &active.trust_domain,
                    &req.cert_pem,
                    &req.key_pem,
                    &req.chain_pem,
                    &req.trust_anchor_pem,
                )
            }
            .map_err(ca_error)?;
            // Peers that trust only the previous root accept the new root's leaves
            // through this cross-signed copy, sent in every new leaf's chain.
            ca::cross_sign(&mut root, &active).map_err(ca_error)?;
            let cmd = Command::Ca(CaCommand::Rotate {
                root,
                if_active: active.id.clone(),
            });
            let written = self.node.propose::<CaRotateOutcome>(cmd).await?;
            match written.outcome {
                CaRotateOutcome::Rotated { root, previous_id } => Ok(pb::RotateRootResponse {
                    root: Some(convert::ca_root(&root)),
                    previous_id,
                    index: written.index,
                }),
                CaRotateOutcome::ActiveChanged { active: now } => Err(ApiError::Conflict(format!(
                    "the active root changed from {} to {} while rotating: retry",
                    active.id,
                    now.as_deref().unwrap_or("none")
                ))),
            }
        }
        .await;
        audit.finish(respond(&self.node, "IdentityRotateRoot", result), |r| {
            r.index
        })
    }

    async fn retire_root(
        &self,
        req: Request<pb::RetireRootRequest>,
    ) -> Result<Response<pb::RetireRootResponse>, Status> {
        let audit = self
            .node
            .audit
            .begin("IdentityRetireRoot", req.remote_addr());
        let result = async {
            let caller = auth::writer(&self.node, req.metadata(), &audit).await?;
            caller.require(Need::global(AclResource::Operator, AclAccess::Write))?;
            let req = req.into_inner();
            super::admission::check_root_id(&req.id)?;
            let cmd = Command::Ca(CaCommand::Retire { id: req.id.clone() });
            let written = self.node.propose::<CaRetireOutcome>(cmd).await?;
            match written.outcome {
                CaRetireOutcome::Retired { removed } => Ok(pb::RetireRootResponse {
                    removed,
                    index: written.index,
                }),
                CaRetireOutcome::IsActive => Err(ApiError::Conflict(format!(
                    "root {} is the active root: rotate to a new one before retiring it",
                    req.id
                ))),
            }
        }
        .await;
        audit.finish(respond(&self.node, "IdentityRetireRoot", result), |r| {
            r.index
        })
    }
}
