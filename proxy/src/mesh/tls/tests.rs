//! Handshakes over an in-memory pipe between the two sides' configurations: who is
//! accepted, who is refused, and the reason each refusal is counted under.

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, SanType,
};
use rustls::pki_types::PrivatePkcs8KeyDer;
use time::{Duration, OffsetDateTime};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::{TlsAcceptor, TlsConnector};

use super::*;

const TD: &str = "c1.waymark";

struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

impl Ca {
    fn new(name: &str) -> Self {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::default();
        p.distinguished_name.push(DnType::CommonName, name);
        p.is_ca = IsCa::Ca(BasicConstraints::Constrained(1));
        p.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        Self {
            cert: p.self_signed(&key).unwrap(),
            key,
        }
    }

    /// A leaf with these URI SANs, valid from `from` to `until` (relative to now).
    fn leaf(
        &self,
        uris: &[&str],
        from: Duration,
        until: Duration,
    ) -> (CertificateDer<'static>, PrivateKeyDer<'static>) {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::default();
        p.subject_alt_names = uris
            .iter()
            .map(|u| SanType::URI(u.to_string().try_into().unwrap()))
            .collect();
        p.is_ca = IsCa::ExplicitNoCa;
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        p.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let now = OffsetDateTime::now_utc();
        p.not_before = now + from;
        p.not_after = now + until;
        let cert = p.signed_by(&key, &self.cert, &self.key).unwrap();
        (
            cert.der().clone(),
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
    }

    fn service(&self, name: &str) -> Credentials {
        let (cert, key) = self.leaf(
            &[&spiffe::id(TD, name)],
            Duration::minutes(-1),
            Duration::hours(1),
        );
        self.credentials(cert, key)
    }

    fn credentials(
        &self,
        cert: CertificateDer<'static>,
        key: PrivateKeyDer<'static>,
    ) -> Credentials {
        self.credentials_trusting(cert, key, self)
    }

    /// Presents `cert` (issued by this CA) but trusts `roots`' root.
    fn credentials_trusting(
        &self,
        cert: CertificateDer<'static>,
        key: PrivateKeyDer<'static>,
        roots: &Ca,
    ) -> Credentials {
        Credentials::build(Material {
            chain: vec![cert],
            key,
            roots: vec![roots.cert.der().clone()],
            trust_domain: TD.into(),
            not_after_ms: 0,
            root_id: "r".into(),
        })
        .unwrap()
    }
}

/// Dials `service` with `client`, accepted by `server`: the server side's outcome
/// (the caller's service, or the refusal reason) and the client side's.
async fn handshake(
    client: Arc<ClientConfig>,
    server: Arc<ServerConfig>,
    service: &str,
) -> (Result<String, &'static str>, Result<(), &'static str>) {
    let (a, b) = tokio::io::duplex(64 * 1024);
    let accept = async move {
        match TlsAcceptor::from(server).accept(b).await {
            Ok(mut s) => {
                let peer = peer_service(s.get_ref().1, TD).map_err(|_| "bad_identity");
                let mut byte = [0u8; 1];
                let _ = s.read_exact(&mut byte).await;
                peer
            }
            Err(e) => Err(failure_reason(&e)),
        }
    };
    let connect = async move {
        match TlsConnector::from(client)
            .connect(server_name(service), a)
            .await
        {
            Ok(mut s) => {
                // Held open until the server is done with it (it reads one byte and
                // closes), so the server's side of the handshake completes.
                let _ = s.write_all(b"x").await;
                let _ = s.flush().await;
                let mut rest = Vec::new();
                let _ = s.read_to_end(&mut rest).await;
                Ok(())
            }
            Err(e) => Err(failure_reason(&e)),
        }
    };
    tokio::join!(accept, connect)
}

#[tokio::test]
async fn peers_of_one_mesh_know_each_other() {
    let ca = Ca::new("mesh");
    let web = ca.service("web");
    let api = ca.service("api");
    let (server, client) = handshake(web.client.clone(), api.server.clone(), "api").await;
    assert_eq!(server, Ok("web".to_string()), "the caller is known as web");
    assert_eq!(client, Ok(()));
}

#[tokio::test]
async fn the_dialler_refuses_a_peer_that_is_another_service() {
    let ca = Ca::new("mesh");
    let web = ca.service("web");
    let db = ca.service("db");
    // web dials "api" but reaches db's proxy.
    let (_, client) = handshake(web.client.clone(), db.server.clone(), "api").await;
    assert_eq!(client, Err("wrong_identity"));
}

#[tokio::test]
async fn a_foreign_ca_is_refused_on_both_sides() {
    let ours = Ca::new("mesh");
    let theirs = Ca::new("evil");
    let api = ours.service("api");
    // An intruder that trusts our root (so it gets as far as presenting its own
    // certificate) with a leaf from another CA.
    let (cert, key) = theirs.leaf(
        &[&spiffe::id(TD, "web")],
        Duration::minutes(-1),
        Duration::hours(1),
    );
    let intruder = theirs.credentials_trusting(cert, key, &ours);
    let (server, _) = handshake(intruder.client.clone(), api.server.clone(), "api").await;
    assert_eq!(server, Err("unknown_ca"));
    // And a proxy of ours dialling the intruder's server refuses it.
    let web = ours.service("web");
    let (_, client) = handshake(web.client.clone(), intruder.server.clone(), "web").await;
    assert_eq!(client, Err("unknown_ca"));
}

#[tokio::test]
async fn a_caller_without_a_certificate_is_refused() {
    let ca = Ca::new("mesh");
    let api = ca.service("api");
    let mut roots = RootCertStore::empty();
    roots.add(ca.cert.der().clone()).unwrap();
    let anonymous = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(PeerServerVerifier {
            roots: Arc::new(roots),
            trust_domain: TD.into(),
            provider: provider(),
        }))
        .with_no_client_auth();
    let (server, _) = handshake(Arc::new(anonymous), api.server.clone(), "api").await;
    assert_eq!(server, Err("no_certificate"));
}

#[tokio::test]
async fn an_expired_leaf_is_refused() {
    let ca = Ca::new("mesh");
    let api = ca.service("api");
    let (cert, key) = ca.leaf(
        &[&spiffe::id(TD, "web")],
        Duration::hours(-2),
        Duration::hours(-1),
    );
    let stale = ca.credentials(cert, key);
    let (server, _) = handshake(stale.client.clone(), api.server.clone(), "api").await;
    assert_eq!(server, Err("expired"));
}

#[tokio::test]
async fn a_leaf_with_two_uris_or_another_trust_domain_is_refused() {
    let ca = Ca::new("mesh");
    let api = ca.service("api");
    let (cert, key) = ca.leaf(
        &[&spiffe::id(TD, "web"), &spiffe::id(TD, "admin")],
        Duration::minutes(-1),
        Duration::hours(1),
    );
    let two = ca.credentials(cert, key);
    let (server, _) = handshake(two.client.clone(), api.server.clone(), "api").await;
    assert_eq!(server, Err("bad_identity"));

    let (cert, key) = ca.leaf(
        &["spiffe://other.domain/svc/web"],
        Duration::minutes(-1),
        Duration::hours(1),
    );
    let foreign = ca.credentials(cert, key);
    let (server, _) = handshake(foreign.client.clone(), api.server.clone(), "api").await;
    assert_eq!(server, Err("bad_identity"));
}
