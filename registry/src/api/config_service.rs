//! The `Config` gRPC service: config entries put and deleted through Raft (with an
//! optional compare-and-set), read by key or prefix in the requested consistency mode.

use std::sync::Arc;

use tonic::{Request, Response, Status};
use waymark_proto::{check_config_key, check_config_prefix, check_config_value, pb};

use super::errors::{respond, ApiError};
use super::{auth, convert, read};
use crate::acl::Need;
use crate::model::{AclAccess, Command, ConfigCommand, ConfigDeleteOutcome, ConfigPutOutcome};
use crate::node::Node;

pub struct ConfigService {
    node: Arc<Node>,
}

impl ConfigService {
    pub fn new(node: Arc<Node>) -> Self {
        Self { node }
    }
}

fn entry_name(key: &str) -> String {
    format!("config entry {key}")
}

#[tonic::async_trait]
impl pb::config_server::Config for ConfigService {
    async fn put(
        &self,
        req: Request<pb::PutConfigRequest>,
    ) -> Result<Response<pb::PutConfigResponse>, Status> {
        let audit = self.node.audit.begin("ConfigPut", req.remote_addr());
        let result = async {
            let caller = auth::writer(&self.node, req.metadata(), &audit).await?;
            let req = req.into_inner();
            check_config_key("key", &req.key)?;
            check_config_value(&req.value)?;
            caller.require(Need::config(&req.key, AclAccess::Write))?;
            let name = entry_name(&req.key);
            let cmd = Command::Config(ConfigCommand::Put {
                key: req.key,
                value: req.value,
                if_modify_index: req.expected_modify_index,
            });
            let written = self.node.propose::<ConfigPutOutcome>(cmd).await?;
            match written.outcome {
                ConfigPutOutcome::Written(entry) => Ok(pb::PutConfigResponse {
                    entry: Some(convert::config_entry(&entry)),
                    index: written.index,
                }),
                ConfigPutOutcome::PreconditionFailed(m) => Err(ApiError::cas(name, m)),
            }
        }
        .await;
        audit.finish(respond(&self.node, "ConfigPut", result), |r| r.index)
    }

    async fn get(
        &self,
        req: Request<pb::GetConfigRequest>,
    ) -> Result<Response<pb::GetConfigResponse>, Status> {
        let result = async {
            let caller = auth::caller(&self.node, req.metadata()).await?;
            let req = req.into_inner();
            check_config_key("key", &req.key)?;
            caller.require(Need::config(&req.key, AclAccess::Read))?;
            let (found, meta) = read(&self.node, req.read, |c| {
                c.config_entry(&req.key).map(convert::config_entry)
            })
            .await?;
            match found {
                Some(entry) => Ok(pb::GetConfigResponse {
                    entry: Some(entry),
                    meta: Some(meta),
                }),
                None => Err(ApiError::NotFound(format!(
                    "config entry {:?} not found (at index {})",
                    req.key, meta.index
                ))),
            }
        }
        .await;
        respond(&self.node, "ConfigGet", result)
    }

    async fn list(
        &self,
        req: Request<pb::ListConfigRequest>,
    ) -> Result<Response<pb::ListConfigResponse>, Status> {
        let result = async {
            let caller = auth::caller(&self.node, req.metadata()).await?;
            let req = req.into_inner();
            check_config_prefix("prefix", &req.prefix)?;
            let (entries, meta) = read(&self.node, req.read, |c| {
                c.config_entries(&req.prefix)
                    // What the token may not read is left out, as in Consul.
                    .filter(|e| caller.may_read_config(&e.key))
                    .map(convert::config_entry)
                    .collect()
            })
            .await?;
            Ok(pb::ListConfigResponse {
                entries,
                meta: Some(meta),
            })
        }
        .await;
        respond(&self.node, "ConfigList", result)
    }

    async fn delete(
        &self,
        req: Request<pb::DeleteConfigRequest>,
    ) -> Result<Response<pb::DeleteConfigResponse>, Status> {
        let audit = self.node.audit.begin("ConfigDelete", req.remote_addr());
        let result = async {
            let caller = auth::writer(&self.node, req.metadata(), &audit).await?;
            let req = req.into_inner();
            check_config_key("key", &req.key)?;
            caller.require(Need::config(&req.key, AclAccess::Write))?;
            if req.expected_modify_index == Some(0) {
                return Err(waymark_proto::ValidationError::new(
                    "expected_modify_index",
                    "must be the entry's modify index (0, \"absent\", cannot be deleted)",
                )
                .into());
            }
            let name = entry_name(&req.key);
            let cmd = Command::Config(ConfigCommand::Delete {
                key: req.key,
                if_modify_index: req.expected_modify_index,
            });
            let written = self.node.propose::<ConfigDeleteOutcome>(cmd).await?;
            match written.outcome {
                ConfigDeleteOutcome::Deleted { removed } => Ok(pb::DeleteConfigResponse {
                    removed,
                    index: written.index,
                }),
                ConfigDeleteOutcome::PreconditionFailed(m) => Err(ApiError::cas(name, m)),
            }
        }
        .await;
        audit.finish(respond(&self.node, "ConfigDelete", result), |r| r.index)
    }
}
