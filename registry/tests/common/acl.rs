//! ACL set-up the tests share: bootstrap, a service rule, and a policy plus a token
//! holding it.
#![allow(dead_code)]

use waymark_proto::pb;

use super::{authed, channel};

pub async fn acl_client(addr: &str) -> pb::acl_client::AclClient<tonic::transport::Channel> {
    pb::acl_client::AclClient::new(channel(addr).await)
}

/// The cluster's first (and only) bootstrap: the management token's secret.
pub async fn bootstrap(addr: &str) -> String {
    acl_client(addr)
        .await
        .bootstrap(pb::BootstrapAclRequest {})
        .await
        .expect("first bootstrap")
        .into_inner()
        .secret
}

pub fn service_rule(name: &str, access: pb::AclAccess) -> pb::AclRule {
    pb::AclRule {
        resource: pb::AclResource::Service as i32,
        name: name.into(),
        prefix: false,
        access: access as i32,
    }
}

/// Writes policy `policy` with `rules` and creates a token holding it (expiring after
/// `ttl_ms`, 0 for never), with the management secret; (accessor id, secret).
pub async fn token_with_rules(
    addr: &str,
    management: &str,
    policy: &str,
    rules: Vec<pb::AclRule>,
    ttl_ms: u64,
) -> (String, String) {
    let mut acl = acl_client(addr).await;
    acl.put_policy(authed(
        pb::PutPolicyRequest {
            name: policy.into(),
            description: String::new(),
            rules,
        },
        management,
    ))
    .await
    .expect("put policy");
    let created = acl
        .create_token(authed(
            pb::CreateTokenRequest {
                description: format!("{policy} token"),
                policies: vec![policy.into()],
                ttl_ms,
            },
            management,
        ))
        .await
        .expect("create token")
        .into_inner();
    (created.token.unwrap().accessor_id, created.secret)
}
