//! The mesh CA and intentions on a real three-node cluster: the leader creates a root
//! at bootstrap and every node serves it (never its key); `Identity.Sign` issues a
//! SPIFFE leaf only for a service the token may write, from any node, rate-limited;
//! a rotation adds a root cross-signed by the old one and a retire removes the old
//! one, both seen on a ca_roots watch; intentions are written, checked by precedence,
//! watched by destination and guarded by the `intention` ACL rule.

mod common;

use common::acl::{bootstrap, service_rule, token_with_rules};
use common::watch::next;
use common::*;
use rcgen::{CertificateParams, KeyPair};
use tonic::Code;
use waymark_proto::errors::{ErrorDetail, Reason};
use waymark_proto::pb;
use waymark_proto::pb::record_change::Change;
use waymark_proto::pb::watch_response::Event;
use waymark_registry::acl::{AclConfig, DefaultPolicy};
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::*;

type Identity = pb::identity_client::IdentityClient<tonic::transport::Channel>;
type Intentions = pb::intentions_client::IntentionsClient<tonic::transport::Channel>;

async fn identity(addr: &str) -> Identity {
    pb::identity_client::IdentityClient::new(channel(addr).await)
}

async fn intentions(addr: &str) -> Intentions {
    pb::intentions_client::IntentionsClient::new(channel(addr).await)
}

fn csr_for(name: &str) -> String {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec!["ignored.example".to_string()]).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    params.serialize_request(&key).unwrap().pem().unwrap()
}

fn der(pem_text: &str) -> Vec<u8> {
    ::pem::parse(pem_text).unwrap().into_contents()
}

fn uris(cert: &X509Certificate<'_>) -> Vec<String> {
    let mut out = Vec::new();
    for ext in cert.extensions() {
        if let ParsedExtension::SubjectAlternativeName(san) = ext.parsed_extension() {
            for n in &san.general_names {
                match n {
                    GeneralName::URI(u) => out.push(u.to_string()),
                    other => out.push(format!("{other:?}")),
                }
            }
        }
    }
    out
}

/// Every node's roots (stale reads), once they all list one active root.
async fn roots_everywhere(cluster: &TestCluster) -> Vec<pb::ListRootsResponse> {
    wait_for("every node to serve the CA root", || async {
        let mut all = Vec::new();
        for id in cluster.running_ids() {
            let addr = cluster.node(id).config.api_addr.clone();
            let r = identity(&addr)
                .await
                .list_roots(pb::ListRootsRequest { read: stale(0) })
                .await
                .ok()?
                .into_inner();
            if r.roots.iter().filter(|r| r.active).count() != 1 {
                return None;
            }
            all.push(r);
        }
        Some(all)
    })
    .await
}

fn sign_req(service: &str, secret: Option<&str>) -> tonic::Request<pb::SignRequest> {
    let msg = pb::SignRequest {
        service: service.into(),
        csr_pem: csr_for(service),
    };
    match secret {
        Some(s) => authed(msg, s),
        None => tonic::Request::new(msg),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_leader_creates_a_root_that_every_node_serves_without_its_key() {
    let cluster = TestCluster::start(3, |_| {}).await;
    cluster.wait_for_leader().await;
    let all = roots_everywhere(&cluster).await;
    let first = &all[0];
    assert!(
        all.iter().all(|r| r.roots == first.roots),
        "nodes disagree on the roots"
    );
    let td = &first.trust_domain;
    let (cluster_id, rest) = td.split_once('.').unwrap();
    assert_eq!(rest, "waymark", "trust domain {td}");
    assert!(cluster_id.len() == 8 && cluster_id.bytes().all(|b| b.is_ascii_hexdigit()));
    let root = &first.roots[0];
    assert_eq!(
        root.signing_cert_pem, root.trust_anchor_pem,
        "a generated root is its own anchor"
    );
    let text = format!("{:?}", first);
    assert!(
        !text.contains("PRIVATE KEY"),
        "a response carries a private key"
    );
    let cert_der = der(&root.signing_cert_pem);
    let (_, cert) = parse_x509_certificate(&cert_der).unwrap();
    assert!(cert.is_ca());
    assert_eq!(uris(&cert), [format!("spiffe://{td}")]);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_configured_trust_domain_names_the_root() {
    let cluster =
        TestCluster::start(1, |c| c.mesh.trust_domain = Some("prod.example".into())).await;
    cluster.wait_for_leader().await;
    let all = roots_everywhere(&cluster).await;
    assert_eq!(all[0].trust_domain, "prod.example");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sign_issues_a_spiffe_leaf_only_for_a_service_the_token_may_write() {
    let cluster = TestCluster::start(3, |c| {
        c.acl = AclConfig {
            enabled: true,
            default_policy: DefaultPolicy::Deny,
            ..AclConfig::default()
        };
        c.mesh.signs_per_second_per_token = 1;
        c.mesh.sign_burst = 50;
    })
    .await;
    let leader = cluster.wait_for_leader().await;
    let addr = cluster.node(leader).config.api_addr.clone();
    let management = bootstrap(&addr).await;
    let (_, web) = token_with_rules(
        &addr,
        &management,
        "web-write",
        vec![service_rule("web", pb::AclAccess::Write)],
        0,
    )
    .await;
    let roots = roots_everywhere(&cluster).await.remove(0);
    let active = roots.roots.iter().find(|r| r.active).unwrap();
    let root_der = der(&active.signing_cert_pem);
    let (_, root_cert) = parse_x509_certificate(&root_der).unwrap();

    // From a follower: signed by the active root, one URI SAN for web, not a CA.
    let follower = cluster.follower_of(leader);
    let faddr = cluster.node(follower).config.api_addr.clone();
    let resp = identity(&faddr)
        .await
        .sign(sign_req("web", Some(&web)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        resp.spiffe_id,
        format!("spiffe://{}/svc/web", roots.trust_domain)
    );
    assert_eq!(resp.root_id, active.id);
    assert!(
        resp.chain_pem.is_empty(),
        "no intermediate before a rotation"
    );
    assert!(resp.not_after_ms > resp.not_before_ms);
    let leaf_der = der(&resp.cert_pem);
    let (_, leaf) = parse_x509_certificate(&leaf_der).unwrap();
    assert_eq!(
        uris(&leaf),
        std::slice::from_ref(&resp.spiffe_id),
        "the CSR's DNS name is not granted"
    );
    assert!(!leaf.is_ca());
    leaf.verify_signature(Some(root_cert.public_key())).unwrap();
    assert_eq!(hex::encode(leaf.raw_serial()), resp.serial);

    // A service the token may not write, no token, a garbled CSR.
    let denied = identity(&addr)
        .await
        .sign(sign_req("api", Some(&web)))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied, "{denied:?}");
    assert!(denied.message().contains("api"), "{}", denied.message());
    let anonymous = identity(&addr)
        .await
        .sign(sign_req("web", None))
        .await
        .unwrap_err();
    assert_eq!(anonymous.code(), Code::Unauthenticated);
    let garbled = identity(&addr)
        .await
        .sign(authed(
            pb::SignRequest {
                service: "web".into(),
                csr_pem:
                    "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n"
                        .into(),
            },
            &web,
        ))
        .await
        .unwrap_err();
    assert_eq!(garbled.code(), Code::InvalidArgument);
    assert_eq!(
        ErrorDetail::from_status(&garbled).unwrap().field.as_deref(),
        Some("csr_pem")
    );

    // Past the burst, the caller is limited (the bucket refills at 1/s).
    let mut limited = None;
    for _ in 0..60 {
        if let Err(s) = identity(&addr)
            .await
            .sign(sign_req("web", Some(&web)))
            .await
        {
            limited = Some(s);
            break;
        }
    }
    let limited = limited.expect("never rate limited");
    assert_eq!(limited.code(), Code::ResourceExhausted, "{limited:?}");
    assert_eq!(
        ErrorDetail::from_status(&limited).unwrap().reason,
        Reason::ResourceExhausted
    );
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rotation_cross_signs_the_new_root_and_retire_removes_the_old_one() {
    let cluster = TestCluster::start(3, |_| {}).await;
    let leader = cluster.wait_for_leader().await;
    let addr = cluster.node(leader).config.api_addr.clone();
    let before = roots_everywhere(&cluster).await.remove(0);
    let old = before.roots[0].clone();

    let follower = cluster.follower_of(leader);
    let faddr = cluster.node(follower).config.api_addr.clone();
    let mut watch = catalog_client(&faddr)
        .await
        .watch(pb::WatchRequest {
            topics: vec![pb::WatchTopic {
                topic: Some(pb::watch_topic::Topic::CaRoots(pb::CaRootsTopic {})),
            }],
            progress_interval_ms: 60_000,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let snapshot = next(&mut watch).await;
    let Some(Event::Snapshot(s)) = snapshot.event else {
        panic!("{snapshot:?}")
    };
    assert_eq!(s.ca_roots, before.roots);

    // Rotated through a follower (forwarded to the leader).
    let rotated = identity(&faddr)
        .await
        .rotate_root(pb::RotateRootRequest::default())
        .await
        .unwrap()
        .into_inner();
    let new = rotated.root.unwrap();
    assert_eq!(rotated.previous_id, old.id);
    assert!(new.active && new.id != old.id);
    assert_eq!(new.chain_pem.len(), 1, "the cross-signed copy");
    let changes = next(&mut watch).await;
    assert_eq!(changes.index, rotated.index);
    let Some(Event::Changes(c)) = changes.event else {
        panic!("{changes:?}")
    };
    let upserts: Vec<(String, bool)> = c
        .changes
        .iter()
        .map(|c| match &c.change {
            Some(Change::CaRootUpsert(r)) => (r.id.clone(), r.active),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(upserts, [(old.id.clone(), false), (new.id.clone(), true)]);

    // The cross-signed copy: the new root's name and key, issued by the old root.
    let cross_der = der(&new.chain_pem[0]);
    let (_, cross) = parse_x509_certificate(&cross_der).unwrap();
    let new_der = der(&new.signing_cert_pem);
    let (_, new_cert) = parse_x509_certificate(&new_der).unwrap();
    let old_der = der(&old.signing_cert_pem);
    let (_, old_cert) = parse_x509_certificate(&old_der).unwrap();
    assert_eq!(cross.subject(), new_cert.subject());
    assert_eq!(cross.public_key().raw, new_cert.public_key().raw);
    cross.verify_signature(Some(old_cert.public_key())).unwrap();

    // New leaves come from the new root and carry the cross-signed copy.
    let signed = identity(&addr)
        .await
        .sign(sign_req("web", None))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(signed.root_id, new.id);
    assert_eq!(signed.chain_pem, new.chain_pem);
    assert!(signed.index >= rotated.index);
    let leaf_der = der(&signed.cert_pem);
    let (_, leaf) = parse_x509_certificate(&leaf_der).unwrap();
    leaf.verify_signature(Some(new_cert.public_key())).unwrap();

    // The active root cannot be retired; the old one can, once.
    let refused = identity(&addr)
        .await
        .retire_root(pb::RetireRootRequest { id: new.id.clone() })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);
    let retired = identity(&addr)
        .await
        .retire_root(pb::RetireRootRequest { id: old.id.clone() })
        .await
        .unwrap()
        .into_inner();
    assert!(retired.removed);
    let removal = next(&mut watch).await;
    let Some(Event::Changes(c)) = removal.event else {
        panic!("{removal:?}")
    };
    assert_eq!(
        c.changes[0].change,
        Some(Change::CaRootRemove(old.id.clone()))
    );
    let bad = identity(&addr)
        .await
        .retire_root(pb::RetireRootRequest {
            id: "Not-An-Id".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_imported_intermediate_becomes_the_signer_and_a_bad_import_is_named() {
    let cluster = TestCluster::start(1, |_| {}).await;
    let leader = cluster.wait_for_leader().await;
    let addr = cluster.node(leader).config.api_addr.clone();
    roots_everywhere(&cluster).await;

    // An organisation's root and the intermediate it signed for the mesh.
    let corp_key = KeyPair::generate().unwrap();
    let mut corp = CertificateParams::default();
    corp.distinguished_name
        .push(rcgen::DnType::CommonName, "Corp Root");
    corp.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let corp_cert = corp.self_signed(&corp_key).unwrap();
    let int_key = KeyPair::generate().unwrap();
    let mut int = CertificateParams::default();
    int.distinguished_name
        .push(rcgen::DnType::CommonName, "Corp Mesh Intermediate");
    int.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let int_cert = int.signed_by(&int_key, &corp_cert, &corp_key).unwrap();

    let mismatched = identity(&addr)
        .await
        .rotate_root(pb::RotateRootRequest {
            cert_pem: int_cert.pem(),
            key_pem: corp_key.serialize_pem(),
            chain_pem: vec![],
            trust_anchor_pem: corp_cert.pem(),
        })
        .await
        .unwrap_err();
    assert_eq!(mismatched.code(), Code::InvalidArgument);
    assert_eq!(
        ErrorDetail::from_status(&mismatched)
            .unwrap()
            .field
            .as_deref(),
        Some("key_pem")
    );

    let imported = identity(&addr)
        .await
        .rotate_root(pb::RotateRootRequest {
            cert_pem: int_cert.pem(),
            key_pem: int_key.serialize_pem(),
            chain_pem: vec![],
            trust_anchor_pem: corp_cert.pem(),
        })
        .await
        .unwrap()
        .into_inner()
        .root
        .unwrap();
    assert!(imported.imported && imported.active);
    assert_eq!(imported.trust_anchor_pem, corp_cert.pem());
    let signed = identity(&addr)
        .await
        .sign(sign_req("web", None))
        .await
        .unwrap()
        .into_inner();
    let leaf_der = der(&signed.cert_pem);
    let (_, leaf) = parse_x509_certificate(&leaf_der).unwrap();
    let (_, int_parsed) = parse_x509_certificate(int_cert.der()).unwrap();
    assert_eq!(leaf.issuer(), int_parsed.subject());
    leaf.verify_signature(Some(int_parsed.public_key()))
        .unwrap();
    cluster.shutdown().await;
}

fn put(source: &str, destination: &str, action: pb::IntentionAction) -> pb::PutIntentionRequest {
    pb::PutIntentionRequest {
        source: source.into(),
        destination: destination.into(),
        action: action as i32,
        description: format!("{source} to {destination}"),
    }
}

fn check(
    source: &str,
    destination: &str,
    default: pb::IntentionAction,
) -> pb::CheckIntentionRequest {
    pb::CheckIntentionRequest {
        source: source.into(),
        destination: destination.into(),
        default_action: default as i32,
        read: consistent(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn intentions_decide_by_precedence_are_watched_by_destination_and_need_the_acl_rule() {
    use pb::IntentionAction::{Allow, Deny};
    let cluster = TestCluster::start(3, |c| {
        c.acl = AclConfig {
            enabled: true,
            default_policy: DefaultPolicy::Deny,
            ..AclConfig::default()
        };
    })
    .await;
    let leader = cluster.wait_for_leader().await;
    let addr = cluster.node(leader).config.api_addr.clone();
    let management = bootstrap(&addr).await;
    let (_, web) = token_with_rules(
        &addr,
        &management,
        "web-write",
        vec![service_rule("web", pb::AclAccess::Write)],
        0,
    )
    .await;
    let follower = cluster.follower_of(leader);
    let faddr = cluster.node(follower).config.api_addr.clone();

    // Writing intentions needs intention:write, not a service rule.
    let refused = intentions(&faddr)
        .await
        .put(authed(put("web", "api", Deny), &web))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
    assert!(
        refused.message().contains("intention"),
        "{}",
        refused.message()
    );

    let mut watch = catalog_client(&faddr)
        .await
        .watch(authed(
            pb::WatchRequest {
                topics: vec![pb::WatchTopic {
                    topic: Some(pb::watch_topic::Topic::Intentions(pb::IntentionsTopic {
                        destination: "api".into(),
                    })),
                }],
                progress_interval_ms: 60_000,
                ..Default::default()
            },
            &management,
        ))
        .await
        .unwrap()
        .into_inner();
    let first = next(&mut watch).await;
    assert!(matches!(first.event, Some(Event::Snapshot(ref s)) if s.intentions.is_empty()));

    let mut client = intentions(&faddr).await;
    let wild = client
        .put(authed(put("*", "api", Deny), &management))
        .await
        .unwrap()
        .into_inner();
    let exact = client
        .put(authed(put("web", "api", Allow), &management))
        .await
        .unwrap()
        .into_inner();
    client
        .put(authed(put("web", "db", Deny), &management))
        .await
        .unwrap();
    let bad = client
        .put(authed(put("web", "API", Allow), &management))
        .await
        .unwrap_err();
    assert_eq!(
        ErrorDetail::from_status(&bad).unwrap().field.as_deref(),
        Some("destination")
    );

    // The watch of api saw exactly its two intentions, each at its index.
    for want in [&wild, &exact] {
        let m = next(&mut watch).await;
        assert_eq!(m.index, want.index);
        let Some(Event::Changes(c)) = m.event else {
            panic!("{m:?}")
        };
        assert_eq!(
            c.changes[0].change,
            Some(Change::IntentionUpsert(want.intention.clone().unwrap()))
        );
    }

    let checker = client.clone();
    let verdict = |s: &str, d: &str, default| {
        let mut client = checker.clone();
        let management = management.clone();
        let req = authed(check(s, d, default), &management);
        async move { client.check(req).await.unwrap().into_inner() }
    };
    let r = verdict("web", "api", Deny).await;
    assert!(r.allowed, "exact allow beats the wildcard deny");
    assert_eq!(r.matched.unwrap().source, "web");
    assert!(
        !verdict("ops", "api", Allow).await.allowed,
        "the wildcard deny"
    );
    let r = verdict("ops", "db", Deny).await;
    assert!(
        !r.allowed && r.matched.is_none(),
        "nothing matches: the default"
    );
    assert!(verdict("ops", "db", Allow).await.allowed);

    let listed = client
        .list(authed(
            pb::ListIntentionsRequest {
                destination: "api".into(),
                read: consistent(),
            },
            &management,
        ))
        .await
        .unwrap()
        .into_inner();
    let pairs: Vec<_> = listed
        .intentions
        .iter()
        .map(|i| (i.source.as_str(), i.destination.as_str()))
        .collect();
    assert_eq!(pairs, [("*", "api"), ("web", "api")]);

    let gone = client
        .delete(authed(
            pb::DeleteIntentionRequest {
                source: "web".into(),
                destination: "api".into(),
            },
            &management,
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(gone.removed);
    let m = next(&mut watch).await;
    assert_eq!(m.index, gone.index);
    assert!(
        !verdict("web", "api", Allow).await.allowed,
        "the wildcard decides again"
    );
    cluster.shutdown().await;
}
