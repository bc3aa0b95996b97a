//! JWT login through an auth method whose keys come from a `jwks_url`, served by a
//! real HTTP(S) server on loopback: a JWT signed by the served key logs in; after the
//! server rotates to a new key (new kid) a JWT under the new kid logs in once the
//! node refetches on the kid miss, and the old key stops working; with the server
//! down the cached keys keep working (the failed fetches are counted); a URL never
//! reached, a response too large or one that is not a JWKS refuse the login
//! UNAVAILABLE naming the URL and the cause, until the URL serves keys (a method's
//! inline keys beside its URL work meanwhile); the keys are
//! refreshed in the background; https works with the method's own CA and fails
//! clearly with a foreign one; bad URLs are refused when the method is written.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use common::jwt::{claims, Issuer};
use common::*;
use serde_json::json;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tonic::Code;
use waymark_proto::errors::{ErrorDetail, Reason, Retry};
use waymark_proto::pb;
use waymark_registry::acl::{AclConfig, DefaultPolicy};
use waymark_registry::tls::generate::LocalCa;

const ISS: &str = "https://idp.example";

/// What the JWKS server answers every request with.
#[derive(Clone)]
struct Answer {
    status: u16,
    body: Vec<u8>,
    /// Send a Content-Length (else the body ends when the connection closes).
    with_length: bool,
}

/// A JWKS server on 127.0.0.1: plain HTTP or TLS, answering every request with the
/// current `Answer` and counting them. Stopping it closes its port.
struct JwksServer {
    addr: SocketAddr,
    https: bool,
    answer: Arc<Mutex<Answer>>,
    hits: Arc<AtomicUsize>,
    accept: tokio::task::JoinHandle<()>,
}

impl JwksServer {
    async fn start(body: String) -> Self {
        Self::start_with(body, None).await
    }

    async fn start_with(body: String, tls: Option<tokio_rustls::TlsAcceptor>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let answer = Arc::new(Mutex::new(Answer {
            status: 200,
            body: body.into_bytes(),
            with_length: true,
        }));
        let hits = Arc::new(AtomicUsize::new(0));
        let https = tls.is_some();
        let (a, h) = (answer.clone(), hits.clone());
        let accept = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (a, h, tls) = (a.clone(), h.clone(), tls.clone());
                tokio::spawn(async move {
                    match tls {
                        Some(acceptor) => {
                            if let Ok(stream) = acceptor.accept(tcp).await {
                                answer_one(stream, &a, &h).await;
                            }
                        }
                        None => answer_one(tcp, &a, &h).await,
                    }
                });
            }
        });
        Self {
            addr,
            https,
            answer,
            hits,
            accept,
        }
    }

    fn url(&self) -> String {
        let scheme = if self.https { "https" } else { "http" };
        format!("{scheme}://{}/.well-known/jwks.json", self.addr)
    }

    fn serve(&self, status: u16, body: impl Into<Vec<u8>>, with_length: bool) {
        *self.answer.lock().unwrap() = Answer {
            status,
            body: body.into(),
            with_length,
        };
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    /// Stops accepting: the listener is dropped, so its port refuses connections.
    async fn stop(self) {
        self.accept.abort();
        let _ = self.accept.await;
    }
}

/// Reads one request head and writes the current answer, then closes.
async fn answer_one<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    answer: &Mutex<Answer>,
    hits: &AtomicUsize,
) {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
        if head.len() > 16 * 1024 {
            return;
        }
    }
    let head = String::from_utf8_lossy(&head);
    if !head.starts_with("GET /.well-known/jwks.json HTTP/1.1\r\n") {
        return;
    }
    hits.fetch_add(1, Ordering::SeqCst);
    let a = answer.lock().unwrap().clone();
    let mut out = format!(
        "HTTP/1.1 {} X\r\nContent-Type: application/json\r\nConnection: close\r\n",
        a.status
    );
    if a.with_length {
        out.push_str(&format!("Content-Length: {}\r\n", a.body.len()));
    }
    out.push_str("\r\n");
    let _ = stream.write_all(out.as_bytes()).await;
    let _ = stream.write_all(&a.body).await;
    let _ = stream.shutdown().await;
}

fn acl(tweak: impl Fn(&mut AclConfig)) -> AclConfig {
    let mut acl = AclConfig {
        enabled: true,
        default_policy: DefaultPolicy::Deny,
        jwks_min_refresh_interval_ms: 300,
        ..AclConfig::default()
    };
    tweak(&mut acl);
    acl
}

async fn acl_client(addr: &str) -> pb::acl_client::AclClient<tonic::transport::Channel> {
    pb::acl_client::AclClient::new(channel(addr).await)
}

/// Bootstraps and writes the policy `web-writer`; returns the management secret.
async fn bootstrap(addr: &str) -> String {
    let mut acl = acl_client(addr).await;
    let management = acl
        .bootstrap(pb::BootstrapAclRequest {})
        .await
        .expect("bootstrap")
        .into_inner()
        .secret;
    acl.put_policy(authed(
        pb::PutPolicyRequest {
            name: "web-writer".into(),
            description: String::new(),
            rules: vec![pb::AclRule {
                resource: pb::AclResource::Service as i32,
                name: "web".into(),
                prefix: false,
                access: pb::AclAccess::Write as i32,
            }],
        },
        &management,
    ))
    .await
    .expect("put policy");
    management
}

fn url_method(name: &str, url: &str, ca: &str) -> pb::AclAuthMethod {
    pb::AclAuthMethod {
        name: name.into(),
        r#type: "jwt".into(),
        issuer: ISS.into(),
        audiences: vec!["waymark".into()],
        jwks_url: url.into(),
        jwks_ca_cert: ca.into(),
        ..Default::default()
    }
}

/// Writes auth method `name` with keys from `url` (trusting `ca`, may be empty) and
/// the binding rule `service=web` → web-writer.
async fn put_method(addr: &str, management: &str, name: &str, url: &str, ca: &str) {
    let mut acl = acl_client(addr).await;
    let written = acl
        .put_auth_method(authed(
            pb::PutAuthMethodRequest {
                method: Some(url_method(name, url, ca)),
            },
            management,
        ))
        .await
        .expect("put auth method")
        .into_inner()
        .method
        .unwrap();
    assert_eq!(written.jwks_url, url);
    assert!(written.jwks.is_empty(), "no keys are stored, only the URL");
    acl.create_binding_rule(authed(
        pb::CreateBindingRuleRequest {
            method: name.into(),
            selector: "service=web".into(),
            policies: vec!["web-writer".into()],
            description: String::new(),
        },
        management,
    ))
    .await
    .expect("create binding rule");
}

async fn login(addr: &str, method: &str, jwt: &str) -> Result<pb::LoginResponse, tonic::Status> {
    acl_client(addr)
        .await
        .login(pb::LoginRequest {
            method: method.into(),
            jwt: jwt.into(),
        })
        .await
        .map(tonic::Response::into_inner)
}

fn web_jwt(key: &Issuer) -> String {
    key.sign(&claims(ISS, "waymark", 600, json!({"service": "web"})))
}

fn fetch_failures(node: &TestNode, method: &str) -> u64 {
    let mut out = String::new();
    node.node.metrics.render(&mut out);
    let series = format!("waymark_jwks_fetch_failures_total{{method=\"{method}\"}} ");
    out.lines()
        .find_map(|l| l.strip_prefix(&series))
        .map_or(0, |n| n.parse().unwrap())
}

/// Asserts `status` is the UNAVAILABLE a login gets while its method has no keys:
/// retry here, naming the URL and saying `says`.
fn assert_unavailable(status: &tonic::Status, url: &str, says: &str) {
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    let detail = ErrorDetail::from_status(status).expect("an error detail");
    assert_eq!(detail.reason, Reason::JwksUnavailable);
    assert_eq!(detail.retry, Retry::Here);
    let msg = status.message();
    assert!(msg.contains(url), "{msg:?} should name {url}");
    assert!(msg.contains(says), "{msg:?} should say {says:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn keys_from_a_url_are_fetched_rotated_and_kept_while_it_is_down() {
    let cluster = TestCluster::start(3, |c| c.acl = acl(|_| {})).await;
    let leader = cluster.wait_for_leader().await;
    let addr = cluster.node(leader).config.api_addr.clone();
    let management = bootstrap(&addr).await;
    let old = Issuer::es256("2026-01");
    let server = JwksServer::start(old.jwks()).await;
    put_method(&addr, &management, "ci", &server.url(), "").await;
    assert_eq!(server.hits(), 0, "writing the method fetches nothing");

    // Logins go to a follower: it fetches the keys on the first one, then uses them.
    let follower = cluster
        .running_ids()
        .into_iter()
        .find(|i| *i != leader)
        .unwrap();
    let faddr = cluster.node(follower).config.api_addr.clone();
    let token = login(&faddr, "ci", &web_jwt(&old))
        .await
        .expect("a JWT signed by the served key")
        .token
        .unwrap();
    assert_eq!(token.policies, ["web-writer"]);
    assert_eq!(server.hits(), 1);
    login(&faddr, "ci", &web_jwt(&old))
        .await
        .expect("a second login");
    assert_eq!(server.hits(), 1, "the second login used the cached keys");

    // The provider rotates: only a new key, under a new kid.
    let new = Issuer::es256("2026-02");
    server.serve(200, new.jwks(), true);
    let jwt = web_jwt(&new);
    wait_for("a login under the new kid", || {
        let (faddr, jwt) = (faddr.clone(), jwt.clone());
        async move {
            match login(&faddr, "ci", &jwt).await {
                Ok(_) => Some(()),
                // Refetches on a kid miss are rate-limited: until one is allowed the
                // JWT is refused naming its unknown kid.
                Err(s) => {
                    assert_eq!(s.code(), Code::Unauthenticated, "{s:?}");
                    assert!(s.message().contains("no key with kid"), "{s:?}");
                    None
                }
            }
        }
    })
    .await;
    assert!(server.hits() >= 2);
    let gone = login(&faddr, "ci", &web_jwt(&old))
        .await
        .expect_err("the rotated-out key");
    assert_eq!(gone.code(), Code::Unauthenticated);
    assert!(gone.message().contains("\"2026-01\""), "{gone:?}");

    // The server goes away: the cached keys keep working.
    let url = server.url();
    server.stop().await;
    assert_eq!(fetch_failures(cluster.node(follower), "ci"), 0);
    login(&faddr, "ci", &jwt)
        .await
        .expect("cached keys while the URL is down");
    // A kid miss makes the node try the URL again; the failure is counted and the
    // last good keys stay.
    let stranger = Issuer::es256("2026-03");
    wait_for("a failed refetch to be counted", || {
        let (faddr, jwt) = (faddr.clone(), web_jwt(&stranger));
        let follower = cluster.node(follower);
        async move {
            let s = login(&faddr, "ci", &jwt).await.expect_err("an unknown key");
            assert_eq!(s.code(), Code::Unauthenticated, "keys are cached: {s:?}");
            (fetch_failures(follower, "ci") >= 1).then_some(())
        }
    })
    .await;
    login(&faddr, "ci", &jwt)
        .await
        .unwrap_or_else(|s| panic!("cached keys after a failed refetch of {url}: {s:?}"));
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_url_that_never_served_keys_refuses_logins_naming_it_and_why() {
    let cluster = TestCluster::start(1, |c| c.acl = acl(|_| {})).await;
    let leader = cluster.wait_for_leader().await;
    let addr = cluster.node(leader).config.api_addr.clone();
    let management = bootstrap(&addr).await;
    let key = Issuer::es256("k1");
    let jwt = web_jwt(&key);

    // Nothing listens there.
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead = format!(
        "http://{}/.well-known/jwks.json",
        closed.local_addr().unwrap()
    );
    drop(closed);
    put_method(&addr, &management, "dead", &dead, "").await;
    let s = login(&addr, "dead", &jwt).await.expect_err("no server");
    assert_unavailable(&s, &dead, "connecting to");
    assert!(s.message().contains("no signing keys yet"), "{s:?}");
    assert_eq!(fetch_failures(cluster.node(leader), "dead"), 1);
    // With inline keys beside the URL, those still log in while it is unreachable.
    let inline = Issuer::es256("inline");
    let mut both = url_method("both", &dead, "");
    both.jwks = inline.jwks();
    acl_client(&addr)
        .await
        .put_auth_method(authed(
            pb::PutAuthMethodRequest { method: Some(both) },
            &management,
        ))
        .await
        .expect("a method with inline keys and a URL");
    acl_client(&addr)
        .await
        .create_binding_rule(authed(
            pb::CreateBindingRuleRequest {
                method: "both".into(),
                selector: String::new(),
                policies: vec!["web-writer".into()],
                description: String::new(),
            },
            &management,
        ))
        .await
        .expect("create binding rule");
    login(&addr, "both", &web_jwt(&inline))
        .await
        .expect("an inline key while the URL is down");
    let s = login(&addr, "both", &jwt)
        .await
        .expect_err("a key from nowhere");
    assert_unavailable(&s, &dead, "connecting to");

    // Served, but each answer is unusable.
    let big = vec![b' '; 2 * 1024 * 1024];
    let cases: Vec<(&str, u16, Vec<u8>, bool, &str)> = vec![
        ("big", 200, big.clone(), true, "too large"),
        ("big-stream", 200, big, false, "too large"),
        (
            "html",
            200,
            b"<html>hi</html>".to_vec(),
            true,
            "not a JSON document",
        ),
        (
            "no-keys",
            200,
            br#"{"issuer":"x"}"#.to_vec(),
            true,
            "not a JSON Web Key Set",
        ),
        (
            "symmetric",
            200,
            br#"{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}"#.to_vec(),
            true,
            "no usable signing key",
        ),
        ("missing", 404, b"not here".to_vec(), true, "HTTP 404"),
    ];
    let mut servers = Vec::new();
    for (name, status, body, with_length, says) in cases {
        let server = JwksServer::start(String::new()).await;
        server.serve(status, body, with_length);
        put_method(&addr, &management, name, &server.url(), "").await;
        let s = login(&addr, name, &jwt).await.expect_err(name);
        assert_unavailable(&s, &server.url(), says);
        servers.push((name, server));
    }

    // Once the URL serves the key, logins work (after the retry interval).
    let (name, server) = servers.pop().unwrap();
    server.serve(200, key.jwks(), true);
    wait_for("a login once the URL serves keys", || {
        let (addr, jwt) = (addr.clone(), jwt.clone());
        async move {
            match login(&addr, name, &jwt).await {
                Ok(_) => Some(()),
                Err(s) => {
                    assert_eq!(s.code(), Code::Unavailable, "{s:?}");
                    None
                }
            }
        }
    })
    .await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn keys_are_refreshed_in_the_background() {
    let cluster = TestCluster::start(1, |c| {
        c.acl = acl(|a| {
            a.jwks_refresh_interval_ms = 200;
            // Logins never refetch here: only the background loop does.
            a.jwks_min_refresh_interval_ms = 600_000;
        })
    })
    .await;
    let leader = cluster.wait_for_leader().await;
    let addr = cluster.node(leader).config.api_addr.clone();
    let management = bootstrap(&addr).await;
    let old = Issuer::es256("a");
    let server = JwksServer::start(old.jwks()).await;
    put_method(&addr, &management, "ci", &server.url(), "").await;
    login(&addr, "ci", &web_jwt(&old)).await.expect("login");
    // A rotation reaches the node with no login asking for it.
    let new = Issuer::es256("b");
    server.serve(200, new.jwks(), true);
    let seen = server.hits();
    wait_for("background refetches", || {
        let hits = server.hits();
        async move { (hits >= seen + 2).then_some(()) }
    })
    .await;
    login(&addr, "ci", &web_jwt(&new))
        .await
        .expect("the new key, fetched in the background");
    let s = login(&addr, "ci", &web_jwt(&old))
        .await
        .expect_err("the old key is gone");
    assert_eq!(s.code(), Code::Unauthenticated);
    cluster.shutdown().await;
}

/// A TLS acceptor for 127.0.0.1 with a certificate from `ca`.
#[allow(deprecated)]
fn tls_acceptor(ca: &LocalCa) -> tokio_rustls::TlsAcceptor {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let issued = ca.issue("jwks", &["127.0.0.1"]).unwrap();
    let certs = CertificateDer::pem_slice_iter(issued.cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_slice(issued.key_pem.as_bytes()).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .unwrap();
    tokio_rustls::TlsAcceptor::from(Arc::new(config))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn https_urls_trust_the_methods_ca_and_bad_urls_are_refused() {
    let cluster = TestCluster::start(1, |c| c.acl = acl(|_| {})).await;
    let leader = cluster.wait_for_leader().await;
    let addr = cluster.node(leader).config.api_addr.clone();
    let management = bootstrap(&addr).await;
    let key = Issuer::es256("k1");
    let ca = LocalCa::new("idp ca").unwrap();
    let server = JwksServer::start_with(key.jwks(), Some(tls_acceptor(&ca))).await;
    put_method(&addr, &management, "tls", &server.url(), &ca.cert_pem()).await;
    login(&addr, "tls", &web_jwt(&key))
        .await
        .expect("https with the method's CA");
    let foreign = LocalCa::new("another ca").unwrap();
    put_method(
        &addr,
        &management,
        "foreign",
        &server.url(),
        &foreign.cert_pem(),
    )
    .await;
    let s = login(&addr, "foreign", &web_jwt(&key))
        .await
        .expect_err("a certificate the method does not trust");
    assert_unavailable(&s, &server.url(), "TLS handshake");

    // Refused on write, naming the field; nothing is written.
    let mut acl = acl_client(&addr).await;
    for (method, field) in [
        (
            url_method("x", "ftp://idp.example/jwks", ""),
            "method.jwks_url",
        ),
        (
            url_method("x", "https://u:p@idp.example/", ""),
            "method.jwks_url",
        ),
        (
            url_method("x", "http://idp.example/jwks", &ca.cert_pem()),
            "method.jwks_ca_cert",
        ),
        (
            url_method(
                "x",
                "https://idp.example/jwks",
                "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
            ),
            "method.jwks_ca_cert",
        ),
        (url_method("x", "", ""), "method.jwks"),
    ] {
        let s = acl
            .put_auth_method(authed(
                pb::PutAuthMethodRequest {
                    method: Some(method.clone()),
                },
                &management,
            ))
            .await
            .expect_err(field);
        assert_eq!(s.code(), Code::InvalidArgument, "{method:?}: {s:?}");
        assert_eq!(
            ErrorDetail::from_status(&s).unwrap().field.as_deref(),
            Some(field),
            "{method:?}: {s:?}"
        );
    }
    let s = login(&addr, "x", &web_jwt(&key))
        .await
        .expect_err("no method x");
    assert_eq!(s.code(), Code::NotFound);
    cluster.shutdown().await;
}
