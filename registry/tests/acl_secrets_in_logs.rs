//! Secrets never reach the logs: three real `waymark server` processes logging at
//! `debug`, with ACLs on (default deny) and an audit log, go through a bootstrap, a
//! token's creation, writes with it, a write it may not make, and calls with an
//! unknown secret. Afterwards no node's log and no audit line holds any of the
//! secrets, while the audit log does name the token's accessor id (so it was written).

mod common;

use common::acl::{acl_client, service_rule, token_with_rules};
use common::process::Procs;
use common::*;
use tonic::Code;
use waymark_proto::pb;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_secret_appears_in_any_node_log_or_the_audit_log() {
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.log");
    // One file for every node: the flags Procs passes (node id, data dir) override the
    // file's, which a config file must still name.
    let config = dir.path().join("waymark.toml");
    std::fs::write(
        &config,
        format!(
            "node_id = 1\ndata_dir = {:?}\n\n[acl]\nenabled = true\ndefault_policy = \
             \"deny\"\n\n[audit]\npath = {:?}\n",
            dir.path().join("unused").display().to_string(),
            audit.display().to_string()
        ),
    )
    .unwrap();
    // The children inherit it: every node logs at debug, where leaks would hide.
    std::env::set_var("RUST_LOG", "debug,h2=info,hyper=info,tower=info");
    let config_arg = config.display().to_string();
    let procs = Procs::start(dir.path(), 3, &["--config", &config_arg]);
    let apis = procs.apis();
    // Status needs a token under default deny, so the first sign of a leader is a
    // bootstrap that goes through (before that: UNAVAILABLE, no leader yet).
    let management = wait_for("an ACL bootstrap through any node", || {
        let apis = apis.clone();
        async move {
            for api in &apis {
                let reply = acl_client(api)
                    .await
                    .bootstrap(pb::BootstrapAclRequest {})
                    .await;
                if let Ok(reply) = reply {
                    return Some(reply.into_inner().secret);
                }
            }
            None
        }
    })
    .await;
    let leader = cluster_client(&apis[0])
        .await
        .status(authed(pb::StatusRequest {}, &management))
        .await
        .expect("status with the management token")
        .into_inner()
        .leader_id
        .expect("a leader after bootstrap");
    let addr = apis[(leader - 1) as usize].clone();
    let follower = apis[(leader % 3) as usize].clone();
    let (accessor, web) = token_with_rules(
        &addr,
        &management,
        "web-writer",
        vec![service_rule("web", pb::AclAccess::Write)],
        0,
    )
    .await;

    // Accepted writes through a follower (forwarded) and the leader; a refused one.
    for (id, node) in [("w-1", &follower), ("w-2", &addr)] {
        catalog_client(node)
            .await
            .register(authed(registration("web", id, 80), &web))
            .await
            .expect("web may register web");
    }
    let denied = catalog_client(&follower)
        .await
        .register(authed(registration("api", "a1", 80), &web))
        .await
        .expect_err("web may not register api");
    assert_eq!(denied.code(), Code::PermissionDenied);
    // A secret no node knows: refused, after a read barrier on each node asked.
    let unknown = "2f1c9a7e4b6d8f0a2f1c9a7e4b6d8f0a";
    for node in &apis {
        let refused = catalog_client(node)
            .await
            .register(authed(registration("web", "w-x", 80), unknown))
            .await
            .expect_err("an unknown secret");
        assert_eq!(refused.code(), Code::Unauthenticated);
    }

    let audit_text = std::fs::read_to_string(&audit).expect("the audit log exists");
    assert!(
        audit_text.contains(&accessor),
        "the audit log names the token's accessor id:\n{audit_text}"
    );
    assert!(
        audit_text.contains("refused"),
        "refused writes are audited:\n{audit_text}"
    );
    let mut logged = 0;
    for id in 1..=3 {
        let log = std::fs::read_to_string(dir.path().join(format!("node-{id}.log"))).unwrap();
        assert!(
            log.contains("DEBUG"),
            "node {id} logged at debug (else this test checks little)"
        );
        logged += log.len();
        for (what, secret) in [
            ("management", management.as_str()),
            ("web", web.as_str()),
            ("unknown", unknown),
        ] {
            assert!(
                !log.contains(secret),
                "node {id}'s log holds the {what} secret"
            );
            assert!(
                !audit_text.contains(secret),
                "the audit log holds the {what} secret"
            );
        }
    }
    assert!(logged > 0);
    drop(procs);
}
