//! Mutual TLS between proxies, with real processes: HTTP, gRPC and TCP flow through a
//! client sidecar and server sidecars whose leaves the registry's CA signed; the
//! inbound port refuses a caller without a certificate, with a foreign CA's, with an
//! expired leaf, and the dialling side refuses a peer that is another service — each
//! counted under its reason in `/metrics`. Intentions refuse new connections as soon
//! as the proxy's watch delivers them, close open ones, and give way to exact rules
//! and the default. Leaf renewal and a full root rotation (rotate, renew, retire) run
//! under traffic without one failed request.

mod common;

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use common::*;
use rcgen::{CertificateParams, KeyPair};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;
use waymark_client::{identity, intentions, CallPolicy};
use waymark_proto::pb;
use waymark_proxy::mesh::tls;

const MTLS: &str = "\n[mesh]\nmtls = true\n";

/// A leaf lifetime short enough that the proxies renew during a test.
const SHORT_LEAVES: &str = "[mesh]\nleaf_ttl_ms = 12000\n";

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// A client proxy for `web` with an HTTP and a TCP upstream to `api`, mTLS on;
/// (proxy, admin port, HTTP listen, TCP listen).
fn web_proxy(registry: &Registry, dir: &std::path::Path) -> (Proc, u16, String, String) {
    let admin = free_port();
    let http = format!("127.0.0.1:{}", free_port());
    let tcp = format!("127.0.0.1:{}", free_port());
    let config = format!(
        "{}\n[service]\nname = \"web\"\nport = {}\n\n[inbound]\nlisten = \"127.0.0.1:{}\"\n\n[admin]\nlisten = \"127.0.0.1:{admin}\"\n\n[[upstreams]]\nservice = \"api\"\nlisten = \"{http}\"\nprotocol = \"http\"\npolicy = \"round_robin\"\n\n[[upstreams]]\nservice = \"api\"\nlisten = \"{tcp}\"\nprotocol = \"tcp\"\npolicy = \"round_robin\"\n{MTLS}",
        registry_table(registry),
        free_port(),
        free_port()
    );
    (proxy("web", &config, dir), admin, http, tcp)
}

/// One request on a new TCP connection through a TCP upstream (so a new mTLS
/// connection between the proxies every time).
async fn tcp_get(listen: &str) -> Result<String, String> {
    let mut s = tokio::net::TcpStream::connect(listen)
        .await
        .map_err(|e| e.to_string())?;
    s.write_all(b"GET / HTTP/1.1\r\nHost: api\r\nConnection: close\r\n\r\n")
        .await
        .map_err(|e| e.to_string())?;
    let mut out = String::new();
    tokio::time::timeout(DEADLINE, s.read_to_string(&mut out))
        .await
        .map_err(|_| "no answer".to_string())?
        .map_err(|e| e.to_string())?;
    if out.starts_with("HTTP/1.1 200") {
        Ok(out)
    } else {
        Err(format!(
            "answer: {:?}",
            out.lines().next().unwrap_or("(nothing)")
        ))
    }
}

/// The value of `series` (labels included) on the proxy at `admin`, 0 when absent.
async fn count(admin: u16, series: &str) -> f64 {
    metric(admin, series).await.unwrap_or(0.0)
}

/// What a test client presents: a leaf the registry's CA signed for `service`.
struct Leaf {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    not_after_ms: u64,
}

async fn leaf_for(registry: &Registry, service: &str) -> Leaf {
    let key = KeyPair::generate().unwrap();
    let csr = CertificateParams::default()
        .serialize_request(&key)
        .unwrap()
        .pem()
        .unwrap();
    let request = pb::SignRequest {
        service: service.into(),
        csr_pem: csr,
    };
    let resp = registry
        .client()
        .call(CallPolicy::read(3), |ch| {
            let request = request.clone();
            async move { identity(ch).sign(request).await }
        })
        .await
        .unwrap();
    let cert = |p: &str| CertificateDer::from_pem_slice(p.as_bytes()).unwrap();
    let mut chain = vec![cert(&resp.cert_pem)];
    chain.extend(resp.chain_pem.iter().map(|p| cert(p)));
    Leaf {
        chain,
        key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        not_after_ms: resp.not_after_ms,
    }
}

/// Accepts any server certificate: for clients whose refusal by the server is what
/// is being tested.
#[derive(Debug)]
struct AnyServer;

impl ServerCertVerifier for AnyServer {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn verify_tls13_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        tls::provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

fn client_presenting(
    identity: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
) -> Arc<ClientConfig> {
    let builder = ClientConfig::builder_with_provider(tls::provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyServer));
    Arc::new(match identity {
        Some((chain, key)) => builder.with_client_auth_cert(chain, key).unwrap(),
        None => builder.with_no_client_auth(),
    })
}

/// A GET over mutual TLS straight to a proxy's inbound port: Ok with the answer's
/// first line only if the proxy let the request through to its app.
async fn tls_get(config: Arc<ClientConfig>, inbound: u16) -> Result<String, String> {
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", inbound))
        .await
        .map_err(|e| e.to_string())?;
    let mut s = tokio_rustls::TlsConnector::from(config)
        .connect(tls::server_name("api"), tcp)
        .await
        .map_err(|e| e.to_string())?;
    s.write_all(b"GET / HTTP/1.1\r\nHost: api\r\nConnection: close\r\n\r\n")
        .await
        .map_err(|e| e.to_string())?;
    let mut out = String::new();
    match tokio::time::timeout(DEADLINE, s.read_to_string(&mut out)).await {
        Ok(Ok(_)) if out.starts_with("HTTP/1.1 200") => Ok(out.lines().next().unwrap().into()),
        Ok(Ok(_)) => Err(format!("answer: {out:?}")),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("no answer".into()),
    }
}

/// Until each proxy holds a leaf (its `/ready` says so too).
async fn wait_leaves(admins: &[u16]) {
    for &p in admins {
        wait_count(p, "waymark_proxy_mesh_leaf_renewals_total", 1.0).await;
    }
}

async fn wait_count(admin: u16, series: &str, at_least: f64) {
    wait_for(&format!("{series} >= {at_least}"), || async {
        (count(admin, series).await >= at_least).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mtls_carries_http_grpc_and_tcp_and_refuses_strangers_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::start_with(dir.path(), SHORT_LEAVES).await;
    let a = Instance::start(&registry, "api", "api-a", dir.path(), MTLS);
    let b = Instance::start(&registry, "api", "api-b", dir.path(), MTLS);
    let (_web, admin, http, tcp) = web_proxy(&registry, dir.path());
    wait_endpoints(admin, &http, &["api-a", "api-b"]).await;
    wait_leaves(&[a.admin, b.admin, admin]).await;

    // HTTP/1.1 over kept-alive connections, spread over both instances.
    let mut c = H1::connect(&http).await.unwrap();
    let mut replies = Vec::new();
    for _ in 0..20 {
        replies.push(c.get("/").await.unwrap());
    }
    assert!(replies.iter().all(|r| r.status == 200));
    assert_eq!(tally(&replies).len(), 2, "{:?}", tally(&replies));
    // gRPC (h2) through the same upstream.
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{http}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let status = HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .expect("gRPC over mTLS")
        .into_inner()
        .status;
    assert_eq!(status, 1, "SERVING");
    // TCP, a new mesh connection each time.
    for _ in 0..4 {
        tcp_get(&tcp).await.expect("TCP over mTLS");
    }
    // The callee knows its caller by certificate.
    let allowed = r#"waymark_proxy_mesh_inbound_connections_total{source="web",decision="allow"}"#;
    assert!(count(a.admin, allowed).await + count(b.admin, allowed).await >= 2.0);

    // Strangers at api-a's inbound port, each refused and counted by reason.
    let failures = |reason: &str| {
        format!(
            r#"waymark_proxy_mesh_handshake_failures_total{{side="inbound",reason="{reason}"}}"#
        )
    };
    let refused = tls_get(client_presenting(None), a.inbound).await;
    assert!(refused.is_err(), "no certificate: {refused:?}");
    wait_count(a.admin, &failures("no_certificate"), 1.0).await;

    let foreign_key = KeyPair::generate().unwrap();
    let mut foreign = CertificateParams::default();
    foreign.subject_alt_names = vec![rcgen::SanType::URI(
        "spiffe://evil.example/svc/web".try_into().unwrap(),
    )];
    let foreign = foreign.self_signed(&foreign_key).unwrap();
    let refused = tls_get(
        client_presenting(Some((
            vec![foreign.der().clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(foreign_key.serialize_der())),
        ))),
        a.inbound,
    )
    .await;
    assert!(refused.is_err(), "foreign CA: {refused:?}");
    wait_count(a.admin, &failures("unknown_ca"), 1.0).await;

    // A leaf of this mesh is accepted while valid, refused once expired.
    let leaf = leaf_for(&registry, "web").await;
    let config = client_presenting(Some((leaf.chain.clone(), leaf.key.clone_key())));
    tls_get(config.clone(), a.inbound)
        .await
        .expect("a valid leaf of this mesh");
    wait_for("the test's leaf to expire", || async {
        (now_ms() > leaf.not_after_ms + 1000).then_some(())
    })
    .await;
    let refused = tls_get(config, a.inbound).await;
    assert!(refused.is_err(), "expired: {refused:?}");
    wait_count(a.admin, &failures("expired"), 1.0).await;

    // A peer that answers for api but is another service: the dialling proxy refuses
    // it (and retries the request elsewhere), so no request fails.
    let db = Instance::start(&registry, "db", "db-a", dir.path(), MTLS);
    wait_for("db-a to be passing", || async {
        (registry.passing_ids("db").await == ["db-a"]).then_some(())
    })
    .await;
    // With its leaf: a proxy without one drops connections for another reason.
    wait_leaves(&[db.admin]).await;
    let imposter = pb::RegisterRequest {
        meta: [(
            waymark_proto::mesh::MESH_PORT_META.to_string(),
            db.inbound.to_string(),
        )]
        .into(),
        ..registration_of("api", "api-imposter", db.app_port)
    };
    registry.register(imposter).await;
    wait_endpoints(admin, &http, &["api-a", "api-b", "api-imposter"]).await;
    let mut fresh = H1::connect(&http).await.unwrap();
    for _ in 0..12 {
        let r = fresh.get("/").await.unwrap();
        assert_eq!(r.status, 200, "{}", r.body);
        assert_ne!(
            r.served_by.as_deref(),
            Some("db-a"),
            "routed to the imposter"
        );
    }
    wait_count(
        admin,
        r#"waymark_proxy_mesh_handshake_failures_total{side="outbound",reason="wrong_identity"}"#,
        1.0,
    )
    .await;
    // The mesh series pass promtool, labels and all.
    for p in [admin, a.admin] {
        let (_, text) = get_once(&format!("127.0.0.1:{p}"), "/metrics")
            .await
            .unwrap();
        assert!(text.contains("waymark_proxy_mesh_leaf_expiry_timestamp_seconds"));
        promtool_check(&text);
    }
}

async fn put_intention(
    registry: &Registry,
    source: &str,
    destination: &str,
    action: pb::IntentionAction,
) -> u64 {
    let request = pb::PutIntentionRequest {
        source: source.into(),
        destination: destination.into(),
        action: action as i32,
        description: String::new(),
    };
    registry
        .client()
        .call(CallPolicy::write(3), |ch| {
            let r = request.clone();
            async move { intentions(ch).put(r).await }
        })
        .await
        .unwrap()
        .index
}

async fn delete_intention(registry: &Registry, source: &str, destination: &str) -> u64 {
    let request = pb::DeleteIntentionRequest {
        source: source.into(),
        destination: destination.into(),
    };
    registry
        .client()
        .call(CallPolicy::write(3), |ch| {
            let r = request.clone();
            async move { intentions(ch).delete(r).await }
        })
        .await
        .unwrap()
        .index
}

/// Waits until the proxy at `admin` enforces the mesh state at `index` or later.
async fn enforcing(admin: u16, index: u64) {
    wait_count(admin, "waymark_proxy_mesh_state_index", index as f64).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn intentions_refuse_new_connections_close_open_ones_and_follow_precedence() {
    use pb::IntentionAction::{Allow, Deny};
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::start(dir.path()).await;
    let a = Instance::start(&registry, "api", "api-a", dir.path(), MTLS);
    let (_web, admin, http, tcp) = web_proxy(&registry, dir.path());
    wait_endpoints(admin, &http, &["api-a"]).await;
    wait_leaves(&[a.admin, admin]).await;
    tcp_get(&tcp).await.expect("allowed by default");

    // An open connection (kept alive through the TCP upstream), then a deny.
    let mut open = tokio::net::TcpStream::connect(&tcp).await.unwrap();
    open.write_all(b"GET / HTTP/1.1\r\nHost: api\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 1024];
    let n = open.read(&mut buf).await.unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));

    let index = put_intention(&registry, "web", "api", Deny).await;
    enforcing(a.admin, index).await;
    // Once delivered: new connections refused at once, the open one closed.
    assert!(
        tcp_get(&tcp).await.is_err(),
        "a new connection was let through"
    );
    let closed = tokio::time::timeout(DEADLINE, async {
        loop {
            match open.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the open connection stayed open");
    assert_eq!(
        count(a.admin, "waymark_proxy_mesh_closed_by_intention_total").await,
        1.0
    );
    assert!(
        count(
            a.admin,
            r#"waymark_proxy_mesh_inbound_connections_total{source="web",decision="deny"}"#
        )
        .await
            >= 1.0
    );

    // Allow restores; an exact allow beats a wildcard deny.
    let index = delete_intention(&registry, "web", "api").await;
    enforcing(a.admin, index).await;
    tcp_get(&tcp).await.expect("allowed again");
    put_intention(&registry, "*", "api", Deny).await;
    let index = put_intention(&registry, "web", "api", Allow).await;
    enforcing(a.admin, index).await;
    tcp_get(&tcp).await.expect("the exact allow wins");
    // Another caller falls under the wildcard deny.
    let leaf = leaf_for(&registry, "ops").await;
    let refused = tls_get(
        client_presenting(Some((leaf.chain.clone(), leaf.key.clone_key()))),
        a.inbound,
    )
    .await;
    assert!(refused.is_err(), "ops under * -> api deny: {refused:?}");

    // Default deny: a proxy that no intention names refuses every caller.
    let vault = Instance::start(
        &registry,
        "vault",
        "vault-a",
        dir.path(),
        "\n[mesh]\nmtls = true\ndefault_intention = \"deny\"\n",
    );
    wait_leaves(&[vault.admin]).await;
    let refused = tls_get(
        client_presenting(Some((leaf.chain.clone(), leaf.key.clone_key()))),
        vault.inbound,
    )
    .await;
    assert!(refused.is_err(), "default deny let ops in: {refused:?}");
    wait_count(
        vault.admin,
        r#"waymark_proxy_mesh_inbound_connections_total{source="ops",decision="deny"}"#,
        1.0,
    )
    .await;
}

/// The root each proxy's leaf is from, read from its `/metrics`.
async fn leaf_root(admin: u16) -> Option<String> {
    let (_, body) = get_once(&format!("127.0.0.1:{admin}"), "/metrics")
        .await
        .ok()?;
    body.lines().find_map(|l| {
        l.strip_prefix("waymark_proxy_mesh_leaf_info{root=\"")?
            .split('"')
            .next()
            .map(str::to_string)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn renewal_and_a_root_rotation_under_traffic_fail_no_request() {
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::start_with(dir.path(), SHORT_LEAVES).await;
    let a = Instance::start(&registry, "api", "api-a", dir.path(), MTLS);
    let b = Instance::start(&registry, "api", "api-b", dir.path(), MTLS);
    let (_web, admin, http, tcp) = web_proxy(&registry, dir.path());
    wait_endpoints(admin, &http, &["api-a", "api-b"]).await;
    let proxies = [a.admin, b.admin, admin];
    wait_leaves(&proxies).await;

    // Kept-alive HTTP traffic, and new mesh connections over TCP all along.
    let traffic = Traffic::start(&http);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let tcp_loop = {
        let (stop, tcp) = (stop.clone(), tcp.clone());
        tokio::spawn(async move {
            let (mut ok, mut failed) = (0u64, Vec::new());
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                match tcp_get(&tcp).await {
                    Ok(_) => ok += 1,
                    Err(e) => failed.push(e),
                }
            }
            (ok, failed)
        })
    };
    traffic.progress(50).await;

    // Every proxy renews its 12 s leaf at least once more.
    for p in proxies {
        wait_count(p, "waymark_proxy_mesh_leaf_renewals_total", 2.0).await;
    }
    traffic.progress(50).await;

    // Rotate: new leaves from the new root while both are trusted.
    let old = leaf_root(admin).await.unwrap();
    let rotated = registry
        .client()
        .call(CallPolicy::write(3), |ch| async move {
            identity(ch)
                .rotate_root(pb::RotateRootRequest::default())
                .await
        })
        .await
        .unwrap();
    let new = rotated.root.unwrap().id;
    assert_eq!(rotated.previous_id, old);
    for p in proxies {
        wait_for("every proxy's leaf from the new root", || async {
            (leaf_root(p).await? == new).then_some(())
        })
        .await;
    }
    // What an operator checks before retiring: `waymark proxies` shows the new root
    // on every proxy.
    let out = std::process::Command::new(waymark_bin())
        .args(["proxies", "--addr", &registry.apis.join(",")])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    for id in ["api/api-a", "api/api-b", "web/web"] {
        let line = text
            .lines()
            .find(|l| l.starts_with(id))
            .unwrap_or_else(|| panic!("{id}:\n{text}"));
        assert!(line.contains(&new), "{id} is not on the new root:\n{text}");
    }
    traffic.progress(50).await;

    // Retire the old root: every proxy trusts only the new one.
    registry
        .client()
        .call(CallPolicy::write(3), |ch| {
            let id = old.clone();
            async move { identity(ch).retire_root(pb::RetireRootRequest { id }).await }
        })
        .await
        .unwrap();
    for p in proxies {
        wait_for("every proxy to trust one root", || async {
            (metric(p, "waymark_proxy_mesh_trusted_roots").await? == 1.0).then_some(())
        })
        .await;
    }
    traffic.progress(50).await;

    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (tcp_ok, tcp_failed) = tcp_loop.await.unwrap();
    let (ok, failed, errors) = traffic.stop().await;
    assert_eq!(failed, 0, "HTTP requests failed: {errors:?}");
    assert!(
        tcp_failed.is_empty(),
        "new mesh connections failed: {tcp_failed:?}"
    );
    assert!(
        ok > 200 && tcp_ok > 10,
        "too little traffic: {ok} HTTP, {tcp_ok} TCP"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_http_inbound_decides_each_request_by_intention_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::start(dir.path()).await;
    let (app_port, inbound, api_admin) = (free_port(), free_port(), free_port());
    let _app = sample_app("api-a", app_port, dir.path());
    let config = server_proxy_config(
        &registry, "api", "api-a", app_port, inbound, api_admin, MTLS,
    )
    .replacen("[inbound]\n", "[inbound]\nprotocol = \"http\"\n", 1);
    let _api = proxy("api-a", &config, dir.path());
    let (_web, admin, http, _tcp) = web_proxy(&registry, dir.path());
    wait_endpoints(admin, &http, &["api-a"]).await;
    wait_leaves(&[api_admin, admin]).await;

    // One kept-alive HTTP/1.1 connection and one gRPC channel from the app, both
    // carried by the inbound request by request.
    let mut c = H1::connect(&http).await.unwrap();
    let r = c.get("/").await.unwrap();
    assert_eq!(
        (r.status, r.served_by.as_deref()),
        (200, Some("api-a")),
        "{}",
        r.body
    );
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{http}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let health = || {
        let mut client = HealthClient::new(channel.clone());
        async move {
            client
                .check(HealthCheckRequest {
                    service: String::new(),
                })
                .await
        }
    };
    assert_eq!(health().await.expect("gRPC allowed").into_inner().status, 1);

    // A deny: the same connections now get answers saying why, not a reset.
    let index = put_intention(&registry, "web", "api", pb::IntentionAction::Deny).await;
    enforcing(api_admin, index).await;
    let r = c.get("/").await.unwrap();
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(r.body.contains("web is denied by intention"), "{}", r.body);
    let refused = health().await.expect_err("gRPC denied");
    assert_eq!(refused.code(), tonic::Code::PermissionDenied, "{refused:?}");
    assert!(
        refused.message().contains("web is denied by intention"),
        "{refused:?}"
    );
    let requests = |decision: &str| {
        format!(
            r#"waymark_proxy_mesh_inbound_requests_total{{source="web",decision="{decision}"}}"#
        )
    };
    assert_eq!(count(api_admin, &requests("allow")).await, 2.0);
    assert_eq!(count(api_admin, &requests("deny")).await, 2.0);

    // Deleting it lets the next request on the same connection through again.
    let index = delete_intention(&registry, "web", "api").await;
    enforcing(api_admin, index).await;
    assert_eq!(c.get("/").await.unwrap().status, 200);
    assert_eq!(
        health()
            .await
            .expect("gRPC allowed again")
            .into_inner()
            .status,
        1
    );
    assert_eq!(count(api_admin, &requests("allow")).await, 4.0);
}
