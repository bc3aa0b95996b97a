//! JWT login on a real three-node cluster with `default_policy = "deny"`: an auth
//! method with an ES256 key made at test time and binding rules; a valid JWT gets a
//! token with exactly the bound policies (it registers the bound service and is
//! refused another); expired, wrong-issuer, wrong-audience, unsigned (`alg: none`),
//! wrongly signed and unmatched JWTs are each refused with UNAUTHENTICATED naming the
//! cause, and write nothing; every login is audited; a login's token expires after
//! the method's `max_token_ttl` and is removed by the leader.

mod common;

use common::jwt::{claims, now_s, unsigned, Issuer};
use common::*;
use serde_json::json;
use tonic::Code;
use waymark_proto::errors::{ErrorDetail, Reason};
use waymark_proto::pb;
use waymark_registry::acl::{AclConfig, DefaultPolicy};

const ISS: &str = "https://ci.example";

fn deny() -> AclConfig {
    AclConfig {
        enabled: true,
        default_policy: DefaultPolicy::Deny,
        dns_token: None,
        ..AclConfig::default()
    }
}

async fn acl_client(addr: &str) -> pb::acl_client::AclClient<tonic::transport::Channel> {
    pb::acl_client::AclClient::new(channel(addr).await)
}

fn service_rule(name: &str, access: pb::AclAccess) -> pb::AclRule {
    pb::AclRule {
        resource: pb::AclResource::Service as i32,
        name: name.into(),
        prefix: false,
        access: access as i32,
    }
}

/// Bootstraps, writes the policies `web-writer` and `api-writer`, the auth method
/// `ci` (ES256 JWKS of `key`, audience `waymark`, `max_token_ttl_ms`) and two binding
/// rules: `service=web` → web-writer, `service=api and groups contains deploy` →
/// api-writer. Returns the management secret.
async fn set_up(addr: &str, key: &Issuer, max_token_ttl_ms: u64) -> String {
    let mut acl = acl_client(addr).await;
    let management = acl
        .bootstrap(pb::BootstrapAclRequest {})
        .await
        .expect("bootstrap")
        .into_inner()
        .secret;
    for (policy, service) in [("web-writer", "web"), ("api-writer", "api")] {
        acl.put_policy(authed(
            pb::PutPolicyRequest {
                name: policy.into(),
                description: String::new(),
                rules: vec![service_rule(service, pb::AclAccess::Write)],
            },
            &management,
        ))
        .await
        .expect("put policy");
    }
    let method = acl
        .put_auth_method(authed(
            pb::PutAuthMethodRequest {
                method: Some(pb::AclAuthMethod {
                    name: "ci".into(),
                    r#type: "jwt".into(),
                    issuer: ISS.into(),
                    audiences: vec!["waymark".into()],
                    jwks: key.jwks(),
                    max_token_ttl_ms,
                    ..Default::default()
                }),
            },
            &management,
        ))
        .await
        .expect("put auth method")
        .into_inner()
        .method
        .unwrap();
    assert_eq!(method.max_token_ttl_ms, max_token_ttl_ms);
    assert_eq!(
        method.clock_skew_ms, 10_000,
        "the default skew is spelt out"
    );
    for (selector, policy) in [
        ("service=web", "web-writer"),
        ("service=api and groups contains deploy", "api-writer"),
    ] {
        acl.create_binding_rule(authed(
            pb::CreateBindingRuleRequest {
                method: "ci".into(),
                selector: selector.into(),
                policies: vec![policy.into()],
                description: String::new(),
            },
            &management,
        ))
        .await
        .expect("create binding rule");
    }
    management
}

async fn login(addr: &str, jwt: &str) -> Result<pb::LoginResponse, tonic::Status> {
    acl_client(addr)
        .await
        .login(pb::LoginRequest {
            method: "ci".into(),
            jwt: jwt.into(),
        })
        .await
        .map(tonic::Response::into_inner)
}

async fn token_accessors(addr: &str, management: &str) -> Vec<String> {
    acl_client(addr)
        .await
        .list_tokens(authed(
            pb::ListTokensRequest { read: consistent() },
            management,
        ))
        .await
        .expect("list tokens")
        .into_inner()
        .tokens
        .into_iter()
        .map(|t| t.accessor_id)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_valid_jwt_gets_the_bound_policies_and_each_bad_one_is_refused() {
    let cluster = TestCluster::start(3, |c| {
        c.acl = deny();
        c.audit.path = Some(
            c.data_dir
                .with_file_name(format!("audit-{}.log", c.node_id)),
        );
    })
    .await;
    let leader = cluster.wait_for_leader().await;
    let addr = cluster.node(leader).config.api_addr.clone();
    let key = Issuer::es256("ci-2026");
    let management = set_up(&addr, &key, 3_600_000).await;
    // Logins go to a follower: it reads the method after a read barrier and forwards
    // the token's creation.
    let follower = cluster
        .running_ids()
        .into_iter()
        .find(|i| *i != leader)
        .unwrap();
    let faddr = cluster.node(follower).config.api_addr.clone();

    let valid = claims(
        ISS,
        "waymark",
        600,
        json!({"sub": "build-17", "service": "web"}),
    );
    let exp_ms = valid["exp"].as_u64().unwrap() * 1000;
    let before_ms = now_s() * 1000;
    let valid_jwt = key.sign(&valid);
    let resp = login(&faddr, &valid_jwt).await.expect("a valid login");
    let token = resp.token.unwrap();
    assert_eq!(token.policies, ["web-writer"], "exactly the bound policies");
    assert_eq!(token.origin, "login:ci");
    assert!(token.description.contains("build-17"), "{token:?}");
    // The method allows an hour; the JWT only ten minutes: the token ends with it.
    assert_eq!(token.expires_at_unix_ms, exp_ms);
    assert!(token.expires_at_unix_ms > before_ms);
    let web = resp.secret;

    let mut catalog = cluster.catalog(follower).await;
    catalog
        .register(authed(registration("web", "web-1", 80), &web))
        .await
        .expect("the login's token registers web");
    let denied = catalog
        .register(authed(registration("api", "api-1", 80), &web))
        .await
        .expect_err("the login's token registers api");
    assert_eq!(denied.code(), Code::PermissionDenied, "{denied:?}");

    // A JWT that matches the second rule too gets both policies.
    let both = claims(
        ISS,
        "waymark",
        600,
        json!({"sub": "deployer", "service": "api", "groups": ["deploy"]}),
    );
    let token = login(&faddr, &key.sign(&both))
        .await
        .unwrap()
        .token
        .unwrap();
    assert_eq!(token.policies, ["api-writer"]);
    let tokens_before = token_accessors(&addr, &management).await;
    assert_eq!(tokens_before.len(), 3, "bootstrap and two logins");

    let web_claims = json!({"sub": "build-17", "service": "web"});
    let impostor = Issuer::es256("ci-2026");
    let bad = [
        (
            "expired",
            key.sign(&claims(ISS, "waymark", -120, web_claims.clone())),
            "JWT expired",
        ),
        (
            "wrong issuer",
            key.sign(&claims(
                "https://evil.example",
                "waymark",
                600,
                web_claims.clone(),
            )),
            "wrong issuer: the JWT's iss is \"https://evil.example\"",
        ),
        (
            "wrong audience",
            key.sign(&claims(ISS, "vault", 600, web_claims.clone())),
            "wrong audience: the JWT's aud is \"vault\"",
        ),
        (
            "alg none",
            unsigned(&claims(ISS, "waymark", 600, web_claims.clone())),
            "unsigned JWT (alg \"none\")",
        ),
        (
            "signed by another key",
            impostor.sign(&claims(ISS, "waymark", 600, web_claims.clone())),
            "bad signature",
        ),
        (
            "no binding rule matches",
            key.sign(&claims(
                ISS,
                "waymark",
                600,
                json!({"sub": "x", "service": "db"}),
            )),
            "no binding rule of auth method \"ci\" matched",
        ),
    ];
    for (case, jwt, says) in &bad {
        let status = login(&faddr, jwt).await.expect_err(case);
        assert_eq!(status.code(), Code::Unauthenticated, "{case}: {status:?}");
        let detail = ErrorDetail::from_status(&status).expect("an error detail");
        assert_eq!(detail.reason, Reason::Unauthenticated, "{case}");
        assert!(
            status.message().contains(says),
            "{case}: {:?} should say {says:?}",
            status.message()
        );
        assert!(
            !status.message().contains(jwt.as_str()),
            "{case}: the JWT is echoed"
        );
    }
    // Nothing was written by the refused logins.
    assert_eq!(token_accessors(&addr, &management).await, tokens_before);
    // An unknown method is NOT_FOUND, naming it.
    let unknown = acl_client(&faddr)
        .await
        .login(pb::LoginRequest {
            method: "gitlab".into(),
            jwt: valid_jwt.clone(),
        })
        .await
        .expect_err("an unknown method");
    assert_eq!(unknown.code(), Code::NotFound);
    assert!(unknown.message().contains("\"gitlab\""), "{unknown:?}");

    // The follower audited every login: the accepted ones name the token created,
    // the refused ones say why, and no JWT or secret is in the file.
    let audit_path = cluster.node(follower).config.audit.path.clone().unwrap();
    let audit = std::fs::read_to_string(&audit_path).unwrap();
    let logins: Vec<serde_json::Value> = audit
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|l| l["method"] == "AclLogin")
        .collect();
    let outcomes: Vec<&str> = logins
        .iter()
        .map(|l| l["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes.iter().filter(|o| **o == "accepted").count(), 2);
    assert_eq!(
        outcomes.iter().filter(|o| **o == "refused").count(),
        bad.len() + 1
    );
    assert!(tokens_before.contains(&logins[0]["accessor"].as_str().unwrap().to_string()));
    assert!(!audit.contains(&web));
    for jwt in bad.iter().map(|(_, jwt, _)| jwt).chain([&valid_jwt]) {
        let signature = &jwt[jwt.rfind('.').unwrap()..];
        assert!(
            signature.len() < 2 || !audit.contains(signature),
            "a JWT in the audit log"
        );
    }
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_login_token_expires_after_the_methods_ttl() {
    let cluster = TestCluster::start(3, |c| c.acl = deny()).await;
    let leader = cluster.wait_for_leader().await;
    let addr = cluster.node(leader).config.api_addr.clone();
    let key = Issuer::es256("k");
    let management = set_up(&addr, &key, 1_000).await;
    let jwt = key.sign(&claims(ISS, "waymark", 600, json!({"service": "web"})));
    let resp = login(&addr, &jwt).await.expect("login");
    let token = resp.token.unwrap();
    let accessor = token.accessor_id.clone();
    // A JWT good for ten minutes still gets a one-second token.
    assert!(
        token.expires_at_unix_ms <= (now_s() + 2) * 1000,
        "{token:?}"
    );
    // The leader deletes it through the log once it has expired.
    wait_for("the login's token to be removed by the leader", || {
        let (addr, management, accessor) = (addr.clone(), management.clone(), accessor.clone());
        async move {
            let tokens = token_accessors(&addr, &management).await;
            (!tokens.contains(&accessor)).then_some(())
        }
    })
    .await;
    let refused = cluster
        .catalog(leader)
        .await
        .register(authed(registration("web", "web-1", 80), &resp.secret))
        .await
        .expect_err("an expired login token");
    assert_eq!(refused.code(), Code::Unauthenticated, "{refused:?}");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn auth_methods_and_binding_rules_are_validated_and_managed() {
    let cluster = TestCluster::start(3, |c| c.acl = deny()).await;
    let leader = cluster.wait_for_leader().await;
    let addr = cluster.node(leader).config.api_addr.clone();
    let key = Issuer::es256("k");
    let management = set_up(&addr, &key, 60_000).await;
    let mut acl = acl_client(&addr).await;

    // Bad key material and bad selectors are refused naming the field; nothing is
    // written.
    let status = acl
        .put_auth_method(authed(
            pb::PutAuthMethodRequest {
                method: Some(pb::AclAuthMethod {
                    name: "bad".into(),
                    r#type: "jwt".into(),
                    issuer: ISS.into(),
                    audiences: vec!["waymark".into()],
                    jwks: r#"{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}"#.into(),
                    ..Default::default()
                }),
            },
            &management,
        ))
        .await
        .expect_err("a symmetric key");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(
        ErrorDetail::from_status(&status).unwrap().field.as_deref(),
        Some("method.jwks")
    );
    let status = acl
        .create_binding_rule(authed(
            pb::CreateBindingRuleRequest {
                method: "ci".into(),
                selector: "service = ".into(),
                policies: vec!["web-writer".into()],
                description: String::new(),
            },
            &management,
        ))
        .await
        .expect_err("a bad selector");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("selector"), "{status:?}");
    let status = acl
        .create_binding_rule(authed(
            pb::CreateBindingRuleRequest {
                method: "nope".into(),
                selector: String::new(),
                policies: vec!["web-writer".into()],
                description: String::new(),
            },
            &management,
        ))
        .await
        .expect_err("a rule for no method");
    assert_eq!(status.code(), Code::NotFound);

    // Reading them needs acl read: a login's token cannot.
    let jwt = key.sign(&claims(ISS, "waymark", 600, json!({"service": "web"})));
    let web = login(&addr, &jwt).await.unwrap().secret;
    let denied = acl
        .list_auth_methods(authed(pb::ListAuthMethodsRequest { read: None }, &web))
        .await
        .expect_err("listing methods with a web token");
    assert_eq!(denied.code(), Code::PermissionDenied);
    let methods = acl
        .list_auth_methods(authed(
            pb::ListAuthMethodsRequest { read: None },
            &management,
        ))
        .await
        .unwrap()
        .into_inner()
        .methods;
    let names: Vec<_> = methods.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["ci"]);
    let rules = acl
        .list_binding_rules(authed(
            pb::ListBindingRulesRequest {
                method: "ci".into(),
                read: None,
            },
            &management,
        ))
        .await
        .unwrap()
        .into_inner()
        .rules;
    assert_eq!(rules.len(), 2);

    // Deleting one rule stops the logins it granted; deleting the method takes its
    // other rule along.
    let web_rule = rules.iter().find(|r| r.selector == "service=web").unwrap();
    let removed = acl
        .delete_binding_rule(authed(
            pb::DeleteBindingRuleRequest {
                id: web_rule.id.clone(),
            },
            &management,
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(removed.removed);
    let status = login(&addr, &jwt)
        .await
        .expect_err("login after its rule went");
    assert_eq!(status.code(), Code::Unauthenticated);
    let gone = acl
        .delete_auth_method(authed(
            pb::DeleteAuthMethodRequest { name: "ci".into() },
            &management,
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(gone.removed);
    assert_eq!(gone.binding_rules_removed, 1);
    let status = login(&addr, &jwt)
        .await
        .expect_err("login after the method went");
    assert_eq!(status.code(), Code::NotFound);
    cluster.shutdown().await;
}
