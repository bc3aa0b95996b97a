//! The `Acl` gRPC service: bootstrap, tokens, policies, auth methods, binding rules
//! and login. Secrets (and binding rule ids) are made here, on the node that receives
//! the request (randomness stays out of apply); only their hashes enter the log, and
//! the secret is returned once, to the caller. A login's JWT is verified here too,
//! before anything is proposed (apply never sees a JWT or a clock).

use std::sync::Arc;

use tonic::{Request, Response, Status};
use waymark_proto::{acl as checks, pb};

use super::errors::{respond, ApiError};
use super::{auth, convert, read};
use crate::acl::{self, binding, jwt, secret, AclError, Need};
use crate::audit::AuditEntry;
use crate::model::{
    AclAccess, AclCommand, AclDeleted, AclResource, AuthMethodConfig, AuthMethodDeleted,
    AuthMethodWritten, BindingRuleOutcome, Command, NewBindingRule, NewToken, PolicyWritten,
    TokenOrigin, TokenOutcome, GLOBAL_MANAGEMENT,
};
use crate::node::Node;

pub struct AclService {
    node: Arc<Node>,
}

impl AclService {
    pub fn new(node: Arc<Node>) -> Self {
        Self { node }
    }

    async fn require(
        &self,
        metadata: &tonic::metadata::MetadataMap,
        access: AclAccess,
    ) -> Result<acl::Authorizer, ApiError> {
        let caller = auth::caller(&self.node, metadata).await?;
        caller.require(Need::global(AclResource::Acl, access))?;
        Ok(caller)
    }

    /// `acl write`, the caller recorded in the write's audit entry.
    async fn require_write(
        &self,
        metadata: &tonic::metadata::MetadataMap,
        audit: &AuditEntry<'_>,
    ) -> Result<acl::Authorizer, ApiError> {
        let caller = auth::writer(&self.node, metadata, audit).await?;
        caller.require(Need::global(AclResource::Acl, AclAccess::Write))?;
        Ok(caller)
    }

    /// Proposes a new token; returns it with its secret.
    async fn create(
        &self,
        build: impl FnOnce(NewToken) -> AclCommand,
        description: String,
        policies: Vec<String>,
        expires_at_unix_ms: Option<u64>,
        origin: TokenOrigin,
    ) -> Result<(pb::AclToken, String, u64), ApiError> {
        let secret = secret::new_secret();
        let new = NewToken {
            accessor_id: secret::new_accessor_id(),
            secret_hash: secret::hash_secret(&secret),
            description,
            policies,
            expires_at_unix_ms,
            origin,
        };
        let written = self
            .node
            .propose::<TokenOutcome>(Command::Acl(build(new)))
            .await?;
        match written.outcome {
            TokenOutcome::Created(token) => Ok((convert::acl_token(&token), secret, written.index)),
            TokenOutcome::AlreadyBootstrapped(at) => Err(ApiError::Conflict(format!(
                "ACLs were already bootstrapped (at index {at}); bootstrap happens once per cluster: use a management token to create more"
            ))),
            TokenOutcome::UnknownPolicy(name) => Err(ApiError::NotFound(format!(
                "policy {name:?} does not exist (at index {}); create it first",
                written.index
            ))),
            TokenOutcome::Duplicate => Err(ApiError::Conflict(
                "a token with this accessor id already exists; try again".into(),
            )),
        }
    }

    /// A login: the method and its rules as committed (a read barrier, so a method
    /// written a moment ago on another node counts), the JWT verified and matched
    /// here, then one token creation through the log.
    async fn login_with_jwt(
        &self,
        req: pb::LoginRequest,
        audit: &AuditEntry<'_>,
    ) -> Result<pb::LoginResponse, ApiError> {
        checks::check_login(&req)?;
        let (found, meta) = read(&self.node, None, |c| {
            c.auth_method(&req.method).cloned().map(|m| {
                let rules: Vec<_> = c.binding_rules_of(&req.method).cloned().collect();
                (m, rules)
            })
        })
        .await?;
        let Some((method, rules)) = found else {
            return Err(ApiError::NotFound(format!(
                "auth method {:?} not found (at index {})",
                req.method, meta.index
            )));
        };
        let AuthMethodConfig::Jwt(config) = &method.config;
        let refused = |why: String| -> ApiError {
            tracing::info!(method = %method.name, reason = %why, "login refused");
            AclError::Unauthenticated(format!("login refused: {why}")).into()
        };
        let now = acl::now_unix_ms();
        let checked = if config.jwks_url.is_empty() {
            jwt::verify(&method.name, config, &req.jwt, now)
        } else {
            // Keys from the URL, through this node's cache (fetched on first use).
            self.node
                .jwks
                .verify(&method.name, config, &req.jwt, now)
                .await
                .inspect_err(|e| {
                    tracing::info!(method = %method.name, reason = %e, "login unavailable");
                })?
        };
        let verified = checked.map_err(|r| refused(r.to_string()))?;
        let policies = binding::bound_policies(&rules, &verified.claims);
        if policies.is_empty() {
            return Err(refused(format!(
                "the JWT is valid, but no binding rule of auth method {:?} matched its claims ({} rule(s) checked)",
                method.name,
                rules.len()
            )));
        }
        if policies.len() > checks::MAX_TOKEN_POLICIES {
            return Err(refused(format!(
                "the binding rules of auth method {:?} grant {} policies to this JWT; a token carries at most {}",
                method.name,
                policies.len(),
                checks::MAX_TOKEN_POLICIES
            )));
        }
        // Short-lived: the method's TTL, and never past the JWT's own expiry.
        let expires = (now + config.max_token_ttl_ms).min(verified.exp_unix_ms);
        if expires <= now {
            return Err(refused(
                "the JWT expires within the allowed clock skew: its token would be born expired"
                    .into(),
            ));
        }
        let mut description = format!("login via {}", method.name);
        if let Some(sub) = verified.subject() {
            description.push_str(&format!(" (sub {sub})"));
        }
        let (token, secret, index) = self
            .create(
                AclCommand::CreateToken,
                jwt::shorten(description, checks::MAX_DESCRIPTION_LEN),
                policies,
                Some(expires),
                TokenOrigin::Login(method.name.clone()),
            )
            .await?;
        audit.created(&token.accessor_id);
        tracing::info!(method = %method.name, accessor = %token.accessor_id, index, "login");
        Ok(pb::LoginResponse {
            token: Some(token),
            secret,
            index,
        })
    }
}

#[tonic::async_trait]
impl pb::acl_server::Acl for AclService {
    async fn bootstrap(
        &self,
        req: Request<pb::BootstrapAclRequest>,
    ) -> Result<Response<pb::BootstrapAclResponse>, Status> {
        let audit = self.node.audit.begin("AclBootstrap", req.remote_addr());
        let result = async {
            let (token, secret, index) = self
                .create(
                    AclCommand::Bootstrap,
                    "bootstrap management token".into(),
                    vec![GLOBAL_MANAGEMENT.into()],
                    None,
                    TokenOrigin::Bootstrap,
                )
                .await?;
            tracing::info!(accessor = %token.accessor_id, index, "ACLs bootstrapped");
            Ok(pb::BootstrapAclResponse {
                token: Some(token),
                secret,
                index,
            })
        }
        .await;
        audit.finish(respond(&self.node, "AclBootstrap", result), |r| r.index)
    }

    async fn create_token(
        &self,
        req: Request<pb::CreateTokenRequest>,
    ) -> Result<Response<pb::CreateTokenResponse>, Status> {
        let audit = self.node.audit.begin("AclCreateToken", req.remote_addr());
        let result = async {
            self.require_write(req.metadata(), &audit).await?;
            let req = req.into_inner();
            checks::check_create_token(&req)?;
            let expires = (req.ttl_ms > 0).then(|| acl::now_unix_ms() + req.ttl_ms);
            let (token, secret, index) = self
                .create(
                    AclCommand::CreateToken,
                    req.description,
                    req.policies,
                    expires,
                    TokenOrigin::Create,
                )
                .await?;
            Ok(pb::CreateTokenResponse {
                token: Some(token),
                secret,
                index,
            })
        }
        .await;
        audit.finish(respond(&self.node, "AclCreateToken", result), |r| r.index)
    }

    async fn read_token(
        &self,
        req: Request<pb::ReadTokenRequest>,
    ) -> Result<Response<pb::ReadTokenResponse>, Status> {
        let result = async {
            self.require(req.metadata(), AclAccess::Read).await?;
            let req = req.into_inner();
            checks::check_accessor_id(&req.accessor_id)?;
            let (found, meta) = read(&self.node, req.read, |c| {
                c.token(&req.accessor_id).map(convert::acl_token)
            })
            .await?;
            match found {
                Some(token) => Ok(pb::ReadTokenResponse {
                    token: Some(token),
                    meta: Some(meta),
                }),
                None => Err(ApiError::NotFound(format!(
                    "token {} not found (at index {})",
                    req.accessor_id, meta.index
                ))),
            }
        }
        .await;
        respond(&self.node, "AclReadToken", result)
    }

    async fn list_tokens(
        &self,
        req: Request<pb::ListTokensRequest>,
    ) -> Result<Response<pb::ListTokensResponse>, Status> {
        let result = async {
            self.require(req.metadata(), AclAccess::Read).await?;
            let (tokens, meta) = read(&self.node, req.into_inner().read, |c| {
                c.tokens().map(convert::acl_token).collect()
            })
            .await?;
            Ok(pb::ListTokensResponse {
                tokens,
                meta: Some(meta),
            })
        }
        .await;
        respond(&self.node, "AclListTokens", result)
    }

    async fn delete_token(
        &self,
        req: Request<pb::DeleteTokenRequest>,
    ) -> Result<Response<pb::DeleteTokenResponse>, Status> {
        let audit = self.node.audit.begin("AclDeleteToken", req.remote_addr());
        let result = async {
            self.require_write(req.metadata(), &audit).await?;
            let req = req.into_inner();
            checks::check_accessor_id(&req.accessor_id)?;
            let cmd = Command::Acl(AclCommand::DeleteToken {
                accessor_id: req.accessor_id,
                reason: "deleted".into(),
            });
            let written = self.node.propose::<AclDeleted>(cmd).await?;
            Ok(pb::DeleteTokenResponse {
                removed: written.outcome.removed,
                index: written.index,
            })
        }
        .await;
        audit.finish(respond(&self.node, "AclDeleteToken", result), |r| r.index)
    }

    async fn put_policy(
        &self,
        req: Request<pb::PutPolicyRequest>,
    ) -> Result<Response<pb::PutPolicyResponse>, Status> {
        let audit = self.node.audit.begin("AclPutPolicy", req.remote_addr());
        let result = async {
            self.require_write(req.metadata(), &audit).await?;
            let req = req.into_inner();
            checks::check_put_policy(&req)?;
            let rules = req
                .rules
                .iter()
                .map(|r| {
                    convert::acl_rule_from_wire(r).ok_or_else(|| {
                        waymark_proto::ValidationError::new("rules", "unknown resource or access")
                    })
                })
                .collect::<Result<_, _>>()?;
            let cmd = Command::Acl(AclCommand::PutPolicy {
                name: req.name,
                description: req.description,
                rules,
            });
            let written = self.node.propose::<PolicyWritten>(cmd).await?;
            Ok(pb::PutPolicyResponse {
                policy: Some(convert::acl_policy(&written.outcome.0)),
                index: written.index,
            })
        }
        .await;
        audit.finish(respond(&self.node, "AclPutPolicy", result), |r| r.index)
    }

    async fn read_policy(
        &self,
        req: Request<pb::ReadPolicyRequest>,
    ) -> Result<Response<pb::ReadPolicyResponse>, Status> {
        let result = async {
            self.require(req.metadata(), AclAccess::Read).await?;
            let req = req.into_inner();
            checks::check_policy_name("name", &req.name)?;
            let (found, meta) = read(&self.node, req.read, |c| {
                c.policy(&req.name).map(convert::acl_policy)
            })
            .await?;
            match found {
                Some(policy) => Ok(pb::ReadPolicyResponse {
                    policy: Some(policy),
                    meta: Some(meta),
                }),
                None => Err(ApiError::NotFound(format!(
                    "policy {:?} not found (at index {})",
                    req.name, meta.index
                ))),
            }
        }
        .await;
        respond(&self.node, "AclReadPolicy", result)
    }

    async fn list_policies(
        &self,
        req: Request<pb::ListPoliciesRequest>,
    ) -> Result<Response<pb::ListPoliciesResponse>, Status> {
        let result = async {
            self.require(req.metadata(), AclAccess::Read).await?;
            let (policies, meta) = read(&self.node, req.into_inner().read, |c| {
                c.policies().map(convert::acl_policy).collect()
            })
            .await?;
            Ok(pb::ListPoliciesResponse {
                policies,
                meta: Some(meta),
            })
        }
        .await;
        respond(&self.node, "AclListPolicies", result)
    }

    async fn delete_policy(
        &self,
        req: Request<pb::DeletePolicyRequest>,
    ) -> Result<Response<pb::DeletePolicyResponse>, Status> {
        let audit = self.node.audit.begin("AclDeletePolicy", req.remote_addr());
        let result = async {
            self.require_write(req.metadata(), &audit).await?;
            let req = req.into_inner();
            checks::check_policy_name("name", &req.name)?;
            let cmd = Command::Acl(AclCommand::DeletePolicy { name: req.name });
            let written = self.node.propose::<AclDeleted>(cmd).await?;
            Ok(pb::DeletePolicyResponse {
                removed: written.outcome.removed,
                index: written.index,
            })
        }
        .await;
        audit.finish(respond(&self.node, "AclDeletePolicy", result), |r| r.index)
    }

    async fn who_am_i(
        &self,
        req: Request<pb::WhoAmIRequest>,
    ) -> Result<Response<pb::WhoAmIResponse>, Status> {
        let result = async {
            let caller = auth::caller(&self.node, req.metadata()).await?;
            let token = caller.accessor.as_ref().and_then(|a| {
                let catalog = self.node.catalog.read().expect("catalog lock poisoned");
                catalog.token(a).map(convert::acl_token)
            });
            Ok::<_, ApiError>(pb::WhoAmIResponse {
                token,
                enabled: self.node.acl.enabled,
                default_policy: self.node.acl.default_policy.name().into(),
            })
        }
        .await;
        respond(&self.node, "AclWhoAmI", result)
    }
    async fn put_auth_method(
        &self,
        req: Request<pb::PutAuthMethodRequest>,
    ) -> Result<Response<pb::PutAuthMethodResponse>, Status> {
        let audit = self.node.audit.begin("AclPutAuthMethod", req.remote_addr());
        let result = async {
            self.require_write(req.metadata(), &audit).await?;
            let req = req.into_inner();
            checks::check_put_auth_method(&req)?;
            let wire = req.method.unwrap_or_default();
            let spec = convert::auth_method_spec(&wire);
            let AuthMethodConfig::Jwt(config) = &spec.config;
            crate::acl::jwks::check_method_keys(config)?;
            let cmd = Command::Acl(AclCommand::PutAuthMethod(spec));
            let written = self.node.propose::<AuthMethodWritten>(cmd).await?;
            Ok(pb::PutAuthMethodResponse {
                method: Some(convert::acl_auth_method(&written.outcome.0)),
                index: written.index,
            })
        }
        .await;
        audit.finish(respond(&self.node, "AclPutAuthMethod", result), |r| r.index)
    }

    async fn read_auth_method(
        &self,
        req: Request<pb::ReadAuthMethodRequest>,
    ) -> Result<Response<pb::ReadAuthMethodResponse>, Status> {
        let result = async {
            self.require(req.metadata(), AclAccess::Read).await?;
            let req = req.into_inner();
            checks::check_auth_method_name("name", &req.name)?;
            let (found, meta) = read(&self.node, req.read, |c| {
                c.auth_method(&req.name).map(convert::acl_auth_method)
            })
            .await?;
            match found {
                Some(method) => Ok(pb::ReadAuthMethodResponse {
                    method: Some(method),
                    meta: Some(meta),
                }),
                None => Err(ApiError::NotFound(format!(
                    "auth method {:?} not found (at index {})",
                    req.name, meta.index
                ))),
            }
        }
        .await;
        respond(&self.node, "AclReadAuthMethod", result)
    }

    async fn list_auth_methods(
        &self,
        req: Request<pb::ListAuthMethodsRequest>,
    ) -> Result<Response<pb::ListAuthMethodsResponse>, Status> {
        let result = async {
            self.require(req.metadata(), AclAccess::Read).await?;
            let (methods, meta) = read(&self.node, req.into_inner().read, |c| {
                c.auth_methods().map(convert::acl_auth_method).collect()
            })
            .await?;
            Ok(pb::ListAuthMethodsResponse {
                methods,
                meta: Some(meta),
            })
        }
        .await;
        respond(&self.node, "AclListAuthMethods", result)
    }

    async fn delete_auth_method(
        &self,
        req: Request<pb::DeleteAuthMethodRequest>,
    ) -> Result<Response<pb::DeleteAuthMethodResponse>, Status> {
        let audit = self
            .node
            .audit
            .begin("AclDeleteAuthMethod", req.remote_addr());
        let result = async {
            self.require_write(req.metadata(), &audit).await?;
            let req = req.into_inner();
            checks::check_auth_method_name("name", &req.name)?;
            let cmd = Command::Acl(AclCommand::DeleteAuthMethod { name: req.name });
            let written = self.node.propose::<AuthMethodDeleted>(cmd).await?;
            Ok(pb::DeleteAuthMethodResponse {
                removed: written.outcome.removed,
                binding_rules_removed: written.outcome.binding_rules_removed,
                index: written.index,
            })
        }
        .await;
        audit.finish(respond(&self.node, "AclDeleteAuthMethod", result), |r| {
            r.index
        })
    }

    async fn create_binding_rule(
        &self,
        req: Request<pb::CreateBindingRuleRequest>,
    ) -> Result<Response<pb::CreateBindingRuleResponse>, Status> {
        let audit = self
            .node
            .audit
            .begin("AclCreateBindingRule", req.remote_addr());
        let result = async {
            self.require_write(req.metadata(), &audit).await?;
            let req = req.into_inner();
            checks::check_create_binding_rule(&req)?;
            let cmd = Command::Acl(AclCommand::CreateBindingRule(NewBindingRule {
                id: secret::new_accessor_id(),
                description: req.description,
                method: req.method,
                selector: req.selector,
                policies: req.policies,
            }));
            let written = self.node.propose::<BindingRuleOutcome>(cmd).await?;
            match written.outcome {
                BindingRuleOutcome::Created(rule) => Ok(pb::CreateBindingRuleResponse {
                    rule: Some(convert::acl_binding_rule(&rule)),
                    index: written.index,
                }),
                BindingRuleOutcome::UnknownMethod(name) => Err(ApiError::NotFound(format!(
                    "auth method {name:?} does not exist (at index {}); create it first",
                    written.index
                ))),
                BindingRuleOutcome::Duplicate => Err(ApiError::Conflict(
                    "a binding rule with this id already exists; try again".into(),
                )),
            }
        }
        .await;
        audit.finish(respond(&self.node, "AclCreateBindingRule", result), |r| {
            r.index
        })
    }

    async fn list_binding_rules(
        &self,
        req: Request<pb::ListBindingRulesRequest>,
    ) -> Result<Response<pb::ListBindingRulesResponse>, Status> {
        let result = async {
            self.require(req.metadata(), AclAccess::Read).await?;
            let req = req.into_inner();
            if !req.method.is_empty() {
                checks::check_auth_method_name("method", &req.method)?;
            }
            let (rules, meta) = read(&self.node, req.read, |c| {
                c.binding_rules()
                    .filter(|r| req.method.is_empty() || r.method == req.method)
                    .map(convert::acl_binding_rule)
                    .collect()
            })
            .await?;
            Ok(pb::ListBindingRulesResponse {
                rules,
                meta: Some(meta),
            })
        }
        .await;
        respond(&self.node, "AclListBindingRules", result)
    }

    async fn delete_binding_rule(
        &self,
        req: Request<pb::DeleteBindingRuleRequest>,
    ) -> Result<Response<pb::DeleteBindingRuleResponse>, Status> {
        let audit = self
            .node
            .audit
            .begin("AclDeleteBindingRule", req.remote_addr());
        let result = async {
            self.require_write(req.metadata(), &audit).await?;
            let req = req.into_inner();
            checks::check_binding_rule_id(&req.id)?;
            let cmd = Command::Acl(AclCommand::DeleteBindingRule { id: req.id });
            let written = self.node.propose::<AclDeleted>(cmd).await?;
            Ok(pb::DeleteBindingRuleResponse {
                removed: written.outcome.removed,
                index: written.index,
            })
        }
        .await;
        audit.finish(respond(&self.node, "AclDeleteBindingRule", result), |r| {
            r.index
        })
    }

    async fn login(
        &self,
        req: Request<pb::LoginRequest>,
    ) -> Result<Response<pb::LoginResponse>, Status> {
        let audit = self.node.audit.begin("AclLogin", req.remote_addr());
        let result = self.login_with_jwt(req.into_inner(), &audit).await;
        audit.finish(respond(&self.node, "AclLogin", result), |r| r.index)
    }
}
