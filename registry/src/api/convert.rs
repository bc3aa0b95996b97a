//! Hand-written conversions between wire messages and the registry's own types, in
//! both directions (the two encodings are kept separate on purpose: see
//! ARCHITECTURE.md).

use waymark_proto::{pb, Registration};

use crate::catalog::ServiceSummary;
use crate::model::{
    AclAccess, AclAuthMethod, AclBindingRule, AclPolicy, AclResource, AclRule, AclToken,
    AuthMethodConfig, AuthMethodSpec, CaRoot, ConfigEntry, Health, InstanceRecord, Intention,
    IntentionAction, JwtMethod, LeaseExpiry, NewInstance, TokenOrigin,
};
use crate::node::{Node, RaftView};

/// A validated registration as it travels in the log.
pub fn new_instance(r: Registration) -> NewInstance {
    NewInstance {
        service: r.service,
        id: r.id,
        address: r.address,
        port: r.port,
        tags: r.tags,
        meta: r.meta,
        weight_passing: r.weights.passing,
        weight_warning: r.weights.warning,
        lease_id: r.lease_id,
        on_lease_expiry: if r.mark_critical_on_lease_expiry {
            LeaseExpiry::MarkCritical
        } else {
            LeaseExpiry::Remove
        },
        deregister_critical_after_ms: r.deregister_critical_after_ms,
        if_modify_index: r.expected_modify_index,
        initial_health: match r.initial_status {
            pb::HealthStatus::Warning => Some(Health::Warning),
            pb::HealthStatus::Critical => Some(Health::Critical),
            _ => None,
        },
    }
}

pub fn config_entry(e: &ConfigEntry) -> pb::ConfigEntry {
    pb::ConfigEntry {
        key: e.key.clone(),
        value: e.value.clone(),
        create_index: e.create_index,
        modify_index: e.modify_index,
    }
}

pub fn instance(r: &InstanceRecord) -> pb::Instance {
    pb::Instance {
        service: r.service.clone(),
        id: r.id.clone(),
        address: r.address.clone(),
        port: r.port as u32,
        tags: r.tags.clone(),
        meta: r.meta.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        weights: Some(pb::Weights {
            passing: r.weight_passing as u32,
            warning: r.weight_warning as u32,
        }),
        status: health(r.health) as i32,
        status_output: r.health_output.clone(),
        create_index: r.create_index,
        modify_index: r.modify_index,
        lease_id: r.lease_id.unwrap_or(0),
        on_lease_expiry: match r.on_lease_expiry {
            LeaseExpiry::Remove => pb::LeaseExpiryAction::Remove as i32,
            LeaseExpiry::MarkCritical => pb::LeaseExpiryAction::MarkCritical as i32,
        },
        deregister_critical_after_ms: r.deregister_critical_after_ms,
    }
}

pub fn health(h: Health) -> pb::HealthStatus {
    match h {
        Health::Passing => pb::HealthStatus::Passing,
        Health::Warning => pb::HealthStatus::Warning,
        Health::Critical => pb::HealthStatus::Critical,
    }
}

pub fn service_summary(s: ServiceSummary) -> pb::ServiceSummary {
    pb::ServiceSummary {
        name: s.name,
        instance_count: s.instance_count as u32,
        tags: s.tags,
    }
}

/// What a read response says about the state it reflects.
pub fn response_meta(
    node: &Node,
    view: &RaftView,
    index: u64,
    consistency: pb::Consistency,
) -> pb::ResponseMeta {
    pb::ResponseMeta {
        index,
        node_id: node.id,
        leader_id: view.leader.as_ref().map(|(id, _)| *id),
        leader_api_addr: view.leader_api_addr(),
        last_contact_ms: node.last_contact_ms(view),
        consistency: consistency as i32,
    }
}

pub fn members(view: &RaftView) -> Vec<pb::Member> {
    view.members
        .iter()
        .map(|(id, m, voter)| pb::Member {
            node_id: *id,
            api_addr: m.api_addr.clone(),
            raft_addr: m.raft_addr.clone(),
            role: if *voter {
                pb::MemberRole::Voter as i32
            } else {
                pb::MemberRole::Learner as i32
            },
        })
        .collect()
}

/// A registration in the log as the request that would make it, so commands entering
/// the log are checked by the very rules the API applies (`api/admission.rs`).
pub fn register_request(n: &NewInstance) -> pb::RegisterRequest {
    pb::RegisterRequest {
        service: n.service.clone(),
        id: n.id.clone(),
        address: n.address.clone(),
        port: n.port.into(),
        tags: n.tags.clone(),
        meta: n.meta.clone().into_iter().collect(),
        weights: Some(pb::Weights {
            passing: n.weight_passing.into(),
            warning: n.weight_warning.into(),
        }),
        lease_id: n.lease_id.unwrap_or(0),
        on_lease_expiry: match n.on_lease_expiry {
            LeaseExpiry::MarkCritical => pb::LeaseExpiryAction::MarkCritical,
            LeaseExpiry::Remove => pb::LeaseExpiryAction::Remove,
        } as i32,
        deregister_critical_after_ms: n.deregister_critical_after_ms,
        expected_modify_index: n.if_modify_index,
        initial_status: match n.initial_health {
            None => pb::HealthStatus::Unspecified,
            Some(h) => health(h),
        } as i32,
    }
}

pub fn acl_token(t: &AclToken) -> pb::AclToken {
    pb::AclToken {
        accessor_id: t.accessor_id.clone(),
        description: t.description.clone(),
        policies: t.policies.clone(),
        expires_at_unix_ms: t.expires_at_unix_ms.unwrap_or(0),
        create_index: t.create_index,
        origin: match &t.origin {
            TokenOrigin::Bootstrap => "bootstrap".into(),
            TokenOrigin::Create => "create".into(),
            TokenOrigin::Login(method) => format!("login:{method}"),
        },
    }
}

pub fn acl_auth_method(m: &AclAuthMethod) -> pb::AclAuthMethod {
    let AuthMethodConfig::Jwt(jwt) = &m.config;
    pb::AclAuthMethod {
        name: m.name.clone(),
        r#type: waymark_proto::acl::AUTH_METHOD_JWT.into(),
        description: m.description.clone(),
        issuer: jwt.issuer.clone(),
        audiences: jwt.audiences.clone(),
        jwks: jwt.jwks.clone(),
        public_keys: jwt.public_keys.clone(),
        jwks_url: jwt.jwks_url.clone(),
        jwks_ca_cert: jwt.jwks_ca_cert.clone(),
        max_token_ttl_ms: jwt.max_token_ttl_ms,
        clock_skew_ms: jwt.clock_skew_ms,
        create_index: m.create_index,
        modify_index: m.modify_index,
    }
}

/// An auth method write from the wire (validated first), with the defaults for the
/// TTL and skew it left at 0 spelt out, so every node stores the same values.
pub fn auth_method_spec(m: &pb::AclAuthMethod) -> AuthMethodSpec {
    use waymark_proto::acl::{DEFAULT_CLOCK_SKEW_MS, DEFAULT_MAX_TOKEN_TTL_MS};
    AuthMethodSpec {
        name: m.name.clone(),
        description: m.description.clone(),
        config: AuthMethodConfig::Jwt(JwtMethod {
            issuer: m.issuer.clone(),
            audiences: m.audiences.clone(),
            jwks: m.jwks.clone(),
            public_keys: m.public_keys.clone(),
            jwks_url: m.jwks_url.clone(),
            jwks_ca_cert: m.jwks_ca_cert.clone(),
            max_token_ttl_ms: match m.max_token_ttl_ms {
                0 => DEFAULT_MAX_TOKEN_TTL_MS,
                ttl => ttl,
            },
            clock_skew_ms: match m.clock_skew_ms {
                0 => DEFAULT_CLOCK_SKEW_MS,
                skew => skew,
            },
        }),
    }
}

/// The request that would have made `spec` (for the leader's admission check).
pub fn put_auth_method_request(spec: &AuthMethodSpec) -> pb::PutAuthMethodRequest {
    pb::PutAuthMethodRequest {
        method: Some(acl_auth_method(&AclAuthMethod {
            name: spec.name.clone(),
            description: spec.description.clone(),
            config: spec.config.clone(),
            create_index: 0,
            modify_index: 0,
        })),
    }
}

pub fn acl_binding_rule(r: &AclBindingRule) -> pb::AclBindingRule {
    pb::AclBindingRule {
        id: r.id.clone(),
        description: r.description.clone(),
        method: r.method.clone(),
        selector: r.selector.clone(),
        policies: r.policies.clone(),
        create_index: r.create_index,
    }
}

pub fn acl_policy(p: &AclPolicy) -> pb::AclPolicy {
    pb::AclPolicy {
        name: p.name.clone(),
        description: p.description.clone(),
        rules: p.rules.iter().map(acl_rule_to_wire).collect(),
        create_index: p.create_index,
        modify_index: p.modify_index,
    }
}

pub fn acl_rule_to_wire(r: &AclRule) -> pb::AclRule {
    pb::AclRule {
        resource: match r.resource {
            AclResource::Service => pb::AclResource::Service,
            AclResource::Config => pb::AclResource::Config,
            AclResource::Intention => pb::AclResource::Intention,
            AclResource::Node => pb::AclResource::Node,
            AclResource::Operator => pb::AclResource::Operator,
            AclResource::Acl => pb::AclResource::Acl,
        } as i32,
        name: r.name.clone(),
        prefix: r.prefix,
        access: match r.access {
            AclAccess::Read => pb::AclAccess::Read,
            AclAccess::Write => pb::AclAccess::Write,
            AclAccess::Deny => pb::AclAccess::Deny,
        } as i32,
    }
}

/// A rule from the wire; `None` for an unknown resource or access (validation
/// refuses those first, with the field named).
pub fn acl_rule_from_wire(r: &pb::AclRule) -> Option<AclRule> {
    let resource = match pb::AclResource::try_from(r.resource).ok()? {
        pb::AclResource::Unspecified => return None,
        pb::AclResource::Service => AclResource::Service,
        pb::AclResource::Config => AclResource::Config,
        pb::AclResource::Intention => AclResource::Intention,
        pb::AclResource::Node => AclResource::Node,
        pb::AclResource::Operator => AclResource::Operator,
        pb::AclResource::Acl => AclResource::Acl,
    };
    let access = match pb::AclAccess::try_from(r.access).ok()? {
        pb::AclAccess::Unspecified => return None,
        pb::AclAccess::Read => AclAccess::Read,
        pb::AclAccess::Write => AclAccess::Write,
        pb::AclAccess::Deny => AclAccess::Deny,
    };
    Some(AclRule {
        resource,
        name: r.name.clone(),
        prefix: r.prefix,
        access,
    })
}

/// A CA root as clients see it: never its private key.
pub fn ca_root(r: &CaRoot) -> pb::CaRoot {
    pb::CaRoot {
        id: r.id.clone(),
        signing_cert_pem: r.signing_cert_pem.clone(),
        trust_anchor_pem: r.trust_anchor_pem.clone(),
        chain_pem: r.chain_pem.clone(),
        active: r.active,
        trust_domain: r.trust_domain.clone(),
        not_after_ms: r.not_after_ms,
        imported: r.imported,
        create_index: r.create_index,
        modify_index: r.modify_index,
    }
}

pub fn intention_action(a: IntentionAction) -> waymark_proto::intention::Action {
    match a {
        IntentionAction::Allow => waymark_proto::intention::Action::Allow,
        IntentionAction::Deny => waymark_proto::intention::Action::Deny,
    }
}

pub fn intention_action_from(a: waymark_proto::intention::Action) -> IntentionAction {
    match a {
        waymark_proto::intention::Action::Allow => IntentionAction::Allow,
        waymark_proto::intention::Action::Deny => IntentionAction::Deny,
    }
}

pub fn intention(i: &Intention) -> pb::Intention {
    pb::Intention {
        source: i.source.clone(),
        destination: i.destination.clone(),
        action: intention_action(i.action).to_wire() as i32,
        description: i.description.clone(),
        create_index: i.create_index,
        modify_index: i.modify_index,
    }
}
