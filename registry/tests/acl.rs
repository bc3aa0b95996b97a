//! ACLs on a real three-node cluster with `default_policy = "deny"`: every kind of
//! call refused without a token and nothing written; bootstrap once; a token allowed
//! `service "web" write` cannot touch `api`; a new token works at once on a follower;
//! a deleted token ends its watch and stops working; an expired one is refused and
//! removed by the leader; secrets are nowhere but in the creating response; a
//! hand-made forwarded write on the Raft port is refused by the leader's validation;
//! DNS (the real `dig`) answers only what `[acl] dns_token` may read; and the audit
//! log has a line per accepted or refused write, with accessor ids, never secrets.

mod common;

use std::time::Duration;

use common::acl::{acl_client, bootstrap, service_rule, token_with_rules};
use common::dig::dig;
use common::*;
use futures::StreamExt;
use tonic::Code;
use waymark_proto::errors::{ErrorDetail, Reason};
use waymark_proto::pb;
use waymark_registry::acl::{AclConfig, DefaultPolicy};

fn deny() -> AclConfig {
    AclConfig {
        enabled: true,
        default_policy: DefaultPolicy::Deny,
        dns_token: None,
        ..AclConfig::default()
    }
}

fn reason(status: &tonic::Status) -> Reason {
    ErrorDetail::from_status(status)
        .unwrap_or_else(|| panic!("no detail on {status:?}"))
        .reason
}

fn assert_unauthenticated<T: std::fmt::Debug>(what: &str, r: Result<T, tonic::Status>) {
    let status = r.expect_err(what);
    assert_eq!(status.code(), Code::Unauthenticated, "{what}: {status:?}");
    assert_eq!(reason(&status), Reason::Unauthenticated, "{what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn default_deny_refuses_every_call_without_a_token_and_writes_nothing() {
    let cluster = TestCluster::start(3, |c| c.acl = deny()).await;
    let leader = cluster.wait_for_leader().await;
    let addr = cluster.node(leader).config.api_addr.clone();
    let mut catalog = cluster.catalog(leader).await;
    let mut config = pb::config_client::ConfigClient::new(channel(&addr).await);
    let mut leases = pb::leases_client::LeasesClient::new(channel(&addr).await);
    let mut members = cluster.cluster(leader).await;

    assert_unauthenticated(
        "register",
        catalog.register(registration("web", "w1", 80)).await,
    );
    assert_unauthenticated(
        "deregister",
        catalog
            .deregister(pb::DeregisterRequest {
                service: "web".into(),
                id: "w1".into(),
            })
            .await,
    );
    assert_unauthenticated(
        "health update",
        catalog
            .update_health(pb::UpdateHealthRequest {
                service: "web".into(),
                id: "w1".into(),
                status: pb::HealthStatus::Critical as i32,
                output: String::new(),
            })
            .await,
    );
    assert_unauthenticated(
        "lease create",
        leases
            .create_lease(pb::CreateLeaseRequest { ttl_ms: 10_000 })
            .await,
    );
    assert_unauthenticated(
        "lease end",
        leases
            .revoke_lease(pb::RevokeLeaseRequest { lease_id: 1 })
            .await,
    );
    assert_unauthenticated(
        "watch",
        catalog
            .watch(pb::WatchRequest {
                services: vec!["web".into()],
                ..Default::default()
            })
            .await,
    );
    assert_unauthenticated(
        "config read",
        config
            .get(pb::GetConfigRequest {
                key: "proxy/web".into(),
                read: None,
            })
            .await,
    );
    assert_unauthenticated(
        "config write",
        config
            .put(pb::PutConfigRequest {
                key: "proxy/web".into(),
                value: b"x".to_vec(),
                expected_modify_index: None,
            })
            .await,
    );
    assert_unauthenticated(
        "add member",
        members
            .add_member(pb::AddMemberRequest {
                node_id: 9,
                api_addr: "127.0.0.1:1".into(),
                raft_addr: "127.0.0.1:2".into(),
            })
            .await,
    );
    // A secret no token has is refused too, on the leader and on a follower.
    let follower = cluster
        .running_ids()
        .into_iter()
        .find(|i| *i != leader)
        .unwrap();
    let follower_addr = cluster.node(follower).config.api_addr.clone();
    assert_unauthenticated(
        "unknown token",
        catalog_client(&follower_addr)
            .await
            .register(authed(registration("web", "w1", 80), "not-a-token"))
            .await,
    );

    // Nothing was written: the management token sees an empty catalog, no config,
    // one member set of three.
    let management = bootstrap(&addr).await;
    let services = catalog
        .list_services(authed(
            pb::ListServicesRequest { read: consistent() },
            &management,
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(services.services.is_empty(), "{services:?}");
    let entries = config
        .list(authed(
            pb::ListConfigRequest {
                prefix: String::new(),
                read: consistent(),
            },
            &management,
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(entries.entries.is_empty());
    let m = members
        .members(authed(pb::MembersRequest {}, &management))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(m.members.len(), 3);
    // The same calls with the management token succeed.
    catalog
        .register(authed(registration("web", "w1", 80), &management))
        .await
        .expect("register with the management token");
    let lease = leases
        .create_lease(authed(
            pb::CreateLeaseRequest { ttl_ms: 10_000 },
            &management,
        ))
        .await
        .expect("lease with the management token")
        .into_inner();
    leases
        .revoke_lease(authed(
            pb::RevokeLeaseRequest {
                lease_id: lease.lease_id,
            },
            &management,
        ))
        .await
        .expect("revoke with the management token");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bootstrap_once_and_a_service_token_writes_only_its_service() {
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
    let management = bootstrap(&addr).await;
    let again = acl_client(&addr)
        .await
        .bootstrap(pb::BootstrapAclRequest {})
        .await
        .expect_err("second bootstrap");
    assert_eq!(again.code(), Code::FailedPrecondition);
    assert_eq!(reason(&again), Reason::Conflict);

    let (web_accessor, web) = token_with_rules(
        &addr,
        &management,
        "web-writer",
        vec![service_rule("web", pb::AclAccess::Write)],
        0,
    )
    .await;
    // Created on the leader, used at once on a follower (which may not have applied
    // it yet: it waits for a read barrier before refusing).
    let follower = cluster
        .running_ids()
        .into_iter()
        .find(|i| *i != leader)
        .unwrap();
    let mut on_follower = cluster.catalog(follower).await;
    on_follower
        .register(authed(registration("web", "w1", 80), &web))
        .await
        .expect("the web token registers web on a follower");
    let denied = on_follower
        .register(authed(registration("api", "a1", 80), &web))
        .await
        .expect_err("the web token registers api");
    assert_eq!(denied.code(), Code::PermissionDenied);
    assert_eq!(reason(&denied), Reason::PermissionDenied);
    assert!(
        denied.message().contains("service \"api\" write"),
        "{}",
        denied.message()
    );
    let denied = on_follower
        .deregister(authed(
            pb::DeregisterRequest {
                service: "api".into(),
                id: "a1".into(),
            },
            &web,
        ))
        .await
        .expect_err("the web token deregisters api");
    assert_eq!(denied.code(), Code::PermissionDenied);
    // The follower's audit log has a line for each of those writes, naming the
    // token by accessor id and never by secret.
    let audit_path = cluster.node(follower).config.audit.path.clone().unwrap();
    let audit = std::fs::read_to_string(&audit_path).unwrap();
    let lines: Vec<serde_json::Value> = audit
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let summary: Vec<(&str, &str, &str)> = lines
        .iter()
        .map(|l| {
            let field = |f: &str| l[f].as_str().unwrap_or("");
            (field("method"), field("outcome"), field("code"))
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("Register", "accepted", ""),
            ("Register", "refused", "PERMISSION_DENIED"),
            ("Deregister", "refused", "PERMISSION_DENIED"),
        ],
        "{audit}"
    );
    assert!(lines.iter().all(|l| l["accessor"] == web_accessor.as_str()));
    assert!(lines[0]["index"].as_u64().unwrap() > 0);
    assert!(!audit.contains(&web) && !audit.contains(&management));
    // A list shows only what the token may read.
    let mut catalog = cluster.catalog(leader).await;
    catalog
        .register(authed(registration("api", "a1", 80), &management))
        .await
        .unwrap();
    let listed = catalog
        .list_services(authed(pb::ListServicesRequest { read: consistent() }, &web))
        .await
        .unwrap()
        .into_inner();
    let names: Vec<_> = listed.services.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["web"]);
    // Tokens and policies are the acl resource's: the web token cannot mint more.
    let denied = acl_client(&addr)
        .await
        .create_token(authed(
            pb::CreateTokenRequest {
                description: String::new(),
                policies: vec!["web-writer".into()],
                ttl_ms: 0,
            },
            &web,
        ))
        .await
        .expect_err("the web token creates a token");
    assert_eq!(denied.code(), Code::PermissionDenied);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_deleted_token_ends_its_watch_and_an_expired_one_stops_working() {
    let cluster = TestCluster::start(3, |c| c.acl = deny()).await;
    let leader = cluster.wait_for_leader().await;
    let addr = cluster.node(leader).config.api_addr.clone();
    let management = bootstrap(&addr).await;
    let (accessor, web) = token_with_rules(
        &addr,
        &management,
        "web-reader",
        vec![service_rule("web", pb::AclAccess::Read)],
        0,
    )
    .await;
    let follower = cluster
        .running_ids()
        .into_iter()
        .find(|i| *i != leader)
        .unwrap();
    let mut stream = cluster
        .catalog(follower)
        .await
        .watch(authed(
            pb::WatchRequest {
                services: vec!["web".into()],
                ..Default::default()
            },
            &web,
        ))
        .await
        .expect("watch web with the web token")
        .into_inner();
    let first = stream.next().await.unwrap().unwrap();
    assert!(matches!(
        first.event,
        Some(pb::watch_response::Event::Snapshot(_))
    ));
    let mut acl = acl_client(&addr).await;
    acl.delete_token(authed(
        pb::DeleteTokenRequest {
            accessor_id: accessor.clone(),
        },
        &management,
    ))
    .await
    .unwrap();
    let ended = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            match stream.next().await {
                Some(Ok(_)) => continue,
                Some(Err(status)) => return Some(status),
                None => return None,
            }
        }
    })
    .await
    .expect("the watch to end after its token was deleted")
    .expect("the watch to end with a status");
    assert_eq!(ended.code(), Code::PermissionDenied, "{ended:?}");
    assert!(ended.message().contains(&accessor), "{}", ended.message());
    // The next call is refused on every node.
    for id in cluster.running_ids() {
        assert_unauthenticated(
            "a deleted token",
            cluster
                .catalog(id)
                .await
                .list_instances(authed(
                    pb::ListInstancesRequest {
                        service: "web".into(),
                        read: consistent(),
                        passing_only: false,
                    },
                    &web,
                ))
                .await,
        );
    }

    // A token with a TTL is refused once it has passed, and the leader removes it.
    let (short, short_secret) = token_with_rules(
        &addr,
        &management,
        "web-reader-2",
        vec![service_rule("web", pb::AclAccess::Read)],
        1_000,
    )
    .await;
    wait_for("the short token to be removed by the leader", || {
        let mut acl = acl.clone();
        let management = management.clone();
        let short = short.clone();
        async move {
            let tokens = acl
                .list_tokens(authed(
                    pb::ListTokensRequest { read: consistent() },
                    &management,
                ))
                .await
                .ok()?
                .into_inner()
                .tokens;
            (!tokens.iter().any(|t| t.accessor_id == short)).then_some(())
        }
    })
    .await;
    assert_unauthenticated(
        "an expired token",
        cluster
            .catalog(leader)
            .await
            .list_instances(authed(
                pb::ListInstancesRequest {
                    service: "web".into(),
                    read: None,
                    passing_only: false,
                },
                &short_secret,
            ))
            .await,
    );
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn secrets_appear_only_in_the_response_that_created_them() {
    let cluster = TestCluster::start(3, |c| c.acl = deny()).await;
    let leader = cluster.wait_for_leader().await;
    let addr = cluster.node(leader).config.api_addr.clone();
    let management = bootstrap(&addr).await;
    let (web_accessor, web) = token_with_rules(
        &addr,
        &management,
        "web-writer",
        vec![service_rule("web", pb::AclAccess::Write)],
        0,
    )
    .await;
    cluster
        .catalog(leader)
        .await
        .register(authed(registration("web", "w1", 80), &web))
        .await
        .unwrap();
    let listed = acl_client(&addr)
        .await
        .list_tokens(authed(
            pb::ListTokensRequest { read: consistent() },
            &management,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.tokens.len(), 2);
    let listing = format!("{listed:?}");
    assert!(
        listing.contains(web_accessor.as_str()),
        "token list shows accessors"
    );
    let mut backup = Vec::new();
    let mut chunks = cluster
        .cluster(leader)
        .await
        .save_snapshot(authed(pb::SaveSnapshotRequest { read: None }, &management))
        .await
        .unwrap()
        .into_inner();
    while let Some(chunk) = chunks.next().await {
        backup.extend(chunk.unwrap().data);
    }
    let backup = String::from_utf8_lossy(&backup).to_string();
    assert!(backup.contains("web-writer"), "the backup holds the tokens");
    let metrics = reqwest_metrics(&cluster.node(leader).config.admin_addr).await;
    for secret in [&management, &web] {
        assert!(
            !listing.contains(secret.as_str()),
            "token list shows a secret"
        );
        assert!(
            !backup.contains(secret.as_str()),
            "the backup holds a secret"
        );
        assert!(!metrics.contains(secret.as_str()), "metrics show a secret");
    }
    cluster.shutdown().await;
}

/// The admin port's /metrics text, over a plain TCP HTTP/1.0 request.
async fn reqwest_metrics(admin: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(admin).await.unwrap();
    s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hand_made_forwarded_write_is_refused_and_nothing_is_written() {
    let cluster = TestCluster::start(3, |_| {}).await;
    let leader = cluster.wait_for_leader().await;
    let raft_addr = cluster.node(leader).config.raft_addr.clone();
    // What the issue sent from outside the cluster: a Register no API accepts.
    let forged = r#"{"Register":{"service":"Evil.Service","id":"../../x",
        "address":"not an address!!","port":0,"tags":[],"meta":{},"weight_passing":0,
        "weight_warning":0,"lease_id":null,"on_lease_expiry":"Remove",
        "deregister_critical_after_ms":0}}"#;
    let mut raft = pb::raft_client::RaftClient::new(channel(&raft_addr).await);
    let refused = forward_one(&mut raft, forged)
        .await
        .expect_err("the forged write");
    assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
    assert_eq!(reason(&refused), Reason::InvalidArgument);
    // A leader-only decision is not taken from outside either.
    let reap = r#"{"ReapCritical":{"service":"web","id":"a","if_modify_index":1}}"#;
    let refused = forward_one(&mut raft, reap)
        .await
        .expect_err("a forwarded ReapCritical");
    assert_eq!(refused.code(), Code::InvalidArgument);
    let services = cluster
        .catalog(leader)
        .await
        .list_services(pb::ListServicesRequest { read: consistent() })
        .await
        .unwrap()
        .into_inner();
    assert!(services.services.is_empty(), "{services:?}");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dns_answers_only_what_the_dns_token_may_read() {
    let mut cluster = TestCluster::start(3, |c| c.acl = deny()).await;
    let leader = cluster.wait_for_leader().await;
    let addr = cluster.node(leader).config.api_addr.clone();
    let management = bootstrap(&addr).await;
    let mut catalog = catalog_client(&addr).await;
    let mut index = 0;
    for (service, ip) in [("api", "10.0.0.2"), ("web", "10.0.0.1")] {
        let mut r = registration(service, &format!("{service}-1"), 8080);
        r.address = ip.into();
        index = catalog
            .register(authed(r, &management))
            .await
            .expect("register with the management token")
            .into_inner()
            .index;
    }
    let (_, dns_secret) = token_with_rules(
        &addr,
        &management,
        "dns",
        vec![service_rule("web", pb::AclAccess::Read)],
        0,
    )
    .await;

    // A follower restarted with `[acl] dns_token` answers web, and only web.
    let follower = cluster
        .running_ids()
        .into_iter()
        .find(|&id| id != leader)
        .unwrap();
    let mut config = cluster.node(follower).config.clone();
    cluster.stop(follower).await;
    config.acl.dns_token = Some(dns_secret);
    cluster.restart(follower, config.clone()).await;
    wait_for("web in the dns token's view", || async {
        let (status, a) = dig(&config.dns_addr, "web.service.waymark", "A");
        (status == "NOERROR" && a == ["10.0.0.1"]).then_some(())
    })
    .await;
    let (status, a) = dig(&config.dns_addr, "api.service.waymark", "A");
    assert_eq!((status.as_str(), a.len()), ("NXDOMAIN", 0), "api: {a:?}");

    // A node without a dns token, having applied both, answers neither: anonymous
    // DNS under default deny sees nothing.
    let other = cluster
        .running_ids()
        .into_iter()
        .find(|&id| id != follower)
        .unwrap();
    let node = cluster.node(other);
    wait_for("the other node to apply both registrations", || async {
        let applied = node.node.catalog.read().unwrap().applied_index();
        (applied >= index).then_some(())
    })
    .await;
    for service in ["web", "api"] {
        let name = format!("{service}.service.waymark");
        let (status, a) = dig(&node.config.dns_addr, &name, "A");
        assert_eq!((status.as_str(), a.len()), ("NXDOMAIN", 0), "{name}: {a:?}");
    }
    cluster.shutdown().await;
}
