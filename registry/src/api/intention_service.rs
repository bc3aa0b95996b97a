//! The `Intentions` gRPC service: intentions put and deleted through Raft, listed by
//! destination, and checked for a source and destination with the one precedence
//! rule the proxies enforce (`waymark_proto::intention::decide`).

use std::sync::Arc;

use tonic::{Request, Response, Status};
use waymark_proto::intention::{self, Action};
use waymark_proto::pb;

use super::errors::respond;
use super::{auth, convert, read};
use crate::acl::Need;
use crate::model::{
    AclAccess, AclResource, Command, Intention, IntentionCommand, IntentionDeleted,
};
use crate::node::Node;

pub struct IntentionService {
    node: Arc<Node>,
}

impl IntentionService {
    pub fn new(node: Arc<Node>) -> Self {
        Self { node }
    }
}

fn need(access: AclAccess) -> Need {
    Need::global(AclResource::Intention, access)
}

#[tonic::async_trait]
impl pb::intentions_server::Intentions for IntentionService {
    async fn put(
        &self,
        req: Request<pb::PutIntentionRequest>,
    ) -> Result<Response<pb::PutIntentionResponse>, Status> {
        let audit = self.node.audit.begin("IntentionPut", req.remote_addr());
        let result = async {
            let caller = auth::writer(&self.node, req.metadata(), &audit).await?;
            let req = req.into_inner();
            let action = intention::check_put_intention(&req)?;
            caller.require(need(AclAccess::Write))?;
            let cmd = Command::Intention(IntentionCommand::Put {
                source: req.source,
                destination: req.destination,
                action: convert::intention_action_from(action),
                description: req.description,
            });
            let written = self.node.propose::<Intention>(cmd).await?;
            Ok(pb::PutIntentionResponse {
                intention: Some(convert::intention(&written.outcome)),
                index: written.index,
            })
        }
        .await;
        audit.finish(respond(&self.node, "IntentionPut", result), |r| r.index)
    }

    async fn delete(
        &self,
        req: Request<pb::DeleteIntentionRequest>,
    ) -> Result<Response<pb::DeleteIntentionResponse>, Status> {
        let audit = self.node.audit.begin("IntentionDelete", req.remote_addr());
        let result = async {
            let caller = auth::writer(&self.node, req.metadata(), &audit).await?;
            let req = req.into_inner();
            intention::check_intention_service("source", &req.source)?;
            intention::check_intention_service("destination", &req.destination)?;
            caller.require(need(AclAccess::Write))?;
            let cmd = Command::Intention(IntentionCommand::Delete {
                source: req.source,
                destination: req.destination,
            });
            let written = self.node.propose::<IntentionDeleted>(cmd).await?;
            Ok(pb::DeleteIntentionResponse {
                removed: written.outcome.removed,
                index: written.index,
            })
        }
        .await;
        audit.finish(respond(&self.node, "IntentionDelete", result), |r| r.index)
    }

    async fn list(
        &self,
        req: Request<pb::ListIntentionsRequest>,
    ) -> Result<Response<pb::ListIntentionsResponse>, Status> {
        let result = async {
            let caller = auth::caller(&self.node, req.metadata()).await?;
            let req = req.into_inner();
            if !req.destination.is_empty() {
                intention::check_intention_service("destination", &req.destination)?;
            }
            caller.require(need(AclAccess::Read))?;
            let destination = (!req.destination.is_empty()).then_some(req.destination.as_str());
            let (intentions, meta) = read(&self.node, req.read, |c| {
                c.intentions(destination).map(convert::intention).collect()
            })
            .await?;
            Ok(pb::ListIntentionsResponse {
                intentions,
                meta: Some(meta),
            })
        }
        .await;
        respond(&self.node, "IntentionList", result)
    }

    async fn check(
        &self,
        req: Request<pb::CheckIntentionRequest>,
    ) -> Result<Response<pb::CheckIntentionResponse>, Status> {
        let result = async {
            let caller = auth::caller(&self.node, req.metadata()).await?;
            let req = req.into_inner();
            intention::check_intention_service("source", &req.source)?;
            intention::check_intention_service("destination", &req.destination)?;
            let default = Action::from_wire("default_action", req.default_action)?;
            caller.require(need(AclAccess::Read))?;
            let (decided, meta) = read(&self.node, req.read, |c| {
                intention::decide(
                    c.intentions(Some(&req.destination)).map(|i| {
                        (
                            i.source.as_str(),
                            i.destination.as_str(),
                            convert::intention_action(i.action),
                            convert::intention(i),
                        )
                    }),
                    &req.source,
                    &req.destination,
                )
            })
            .await?;
            let (action, matched) = match decided {
                Some((action, matched)) => (action, Some(matched)),
                None => (default, None),
            };
            Ok(pb::CheckIntentionResponse {
                allowed: action == Action::Allow,
                matched,
                meta: Some(meta),
            })
        }
        .await;
        respond(&self.node, "IntentionCheck", result)
    }
}
