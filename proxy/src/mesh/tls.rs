//! Mutual TLS 1.3 between proxies with SPIFFE identities: the rustls configurations
//! built from this proxy's leaf and the mesh's roots, the two verifiers (the dialling
//! side checks the peer is the upstream's service; the accepting side requires a
//! client certificate with exactly one SPIFFE ID of the trust domain), and why a
//! handshake failed, as a metrics label.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ParsedCertificate, WebPkiClientVerifier};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, DistinguishedName, Error, OtherError,
    RootCertStore, ServerConfig, SignatureScheme,
};
use waymark_proto::mesh::spiffe;
use x509_parser::extensions::{GeneralName, ParsedExtension};

/// The DNS-name form a dialling proxy puts in the TLS server name: the upstream's
/// service as the first label. Its verifier reads the expected identity back from it
/// (one client configuration serves every upstream).
const SERVER_NAME_SUFFIX: &str = ".svc.waymark.mesh";

/// The server name to dial `service` with.
pub fn server_name(service: &str) -> ServerName<'static> {
    ServerName::try_from(format!("{service}{SERVER_NAME_SUFFIX}"))
        .expect("a DNS label plus a fixed suffix is a DNS name")
}

fn expected_service(name: &ServerName<'_>) -> Option<String> {
    match name {
        ServerName::DnsName(d) => d
            .as_ref()
            .strip_suffix(SERVER_NAME_SUFFIX)
            .map(str::to_string),
        _ => None,
    }
}

/// Why a peer's certificate was refused beyond the chain checks.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("the certificate has no SPIFFE ID (exactly one URI SAN is required, found {0})")]
    NotOneUri(usize),
    #[error("the certificate could not be parsed: {0}")]
    Unparsable(String),
    #[error("{0} is not a service identity of trust domain {1}")]
    Foreign(String, String),
    #[error("the peer is {found}, not the expected service {expected}")]
    WrongService { found: String, expected: String },
}

fn refuse(e: IdentityError) -> Error {
    Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(e))))
}

/// The single URI SAN of a certificate, as the SPIFFE X.509-SVID rules require.
pub fn spiffe_id_of(cert: &CertificateDer<'_>) -> Result<String, IdentityError> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref())
        .map_err(|e| IdentityError::Unparsable(e.to_string()))?;
    let mut uris = Vec::new();
    for ext in parsed.extensions() {
        if let ParsedExtension::SubjectAlternativeName(san) = ext.parsed_extension() {
            for name in &san.general_names {
                if let GeneralName::URI(u) = name {
                    uris.push(u.to_string());
                }
            }
        }
    }
    match uris.len() {
        1 => Ok(uris.remove(0)),
        n => Err(IdentityError::NotOneUri(n)),
    }
}

/// The service a certificate identifies, within `trust_domain`.
pub fn service_of(cert: &CertificateDer<'_>, trust_domain: &str) -> Result<String, IdentityError> {
    let id = spiffe_id_of(cert)?;
    spiffe::service_of(&id, trust_domain)
        .map(str::to_string)
        .ok_or_else(|| IdentityError::Foreign(id.clone(), trust_domain.to_string()))
}

/// The provider every Waymark TLS endpoint uses (ring, X25519 first: see
/// `waymark_client::crypto_provider`).
pub fn provider() -> Arc<CryptoProvider> {
    waymark_client::crypto_provider()
}

/// What a proxy presents and trusts at one moment: rebuilt when its leaf is renewed
/// or the roots change; connections already open keep the configuration they began
/// with.
pub struct Credentials {
    pub server: Arc<ServerConfig>,
    pub client: Arc<ClientConfig>,
    pub trust_domain: String,
    /// The leaf's expiry (unix ms) and the root that signed it.
    pub not_after_ms: u64,
    pub root_id: String,
}

/// A leaf and its chain (leaf first), its key, and the roots to trust.
pub struct Material {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
    pub roots: Vec<CertificateDer<'static>>,
    pub trust_domain: String,
    pub not_after_ms: u64,
    pub root_id: String,
}

impl Credentials {
    pub fn build(m: Material) -> Result<Self, Error> {
        let provider = provider();
        let mut roots = RootCertStore::empty();
        for r in &m.roots {
            roots.add(r.clone())?;
        }
        let roots = Arc::new(roots);
        let client_verifier = Arc::new(PeerClientVerifier {
            inner: WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
                .build()
                .map_err(|e| Error::General(e.to_string()))?,
            trust_domain: m.trust_domain.clone(),
        });
        let server = ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_client_cert_verifier(client_verifier)
            .with_single_cert(m.chain.clone(), m.key.clone_key())?;
        let client = ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(PeerServerVerifier {
                roots,
                trust_domain: m.trust_domain.clone(),
                provider: provider.clone(),
            }))
            .with_client_auth_cert(m.chain, m.key)?;
        Ok(Self {
            server: Arc::new(server),
            client: Arc::new(client),
            trust_domain: m.trust_domain,
            not_after_ms: m.not_after_ms,
            root_id: m.root_id,
        })
    }
}

/// The dialling side's check of the peer: chained to a trusted root (webpki: dates,
/// signatures, EKU serverAuth) and identified as the service it dialled.
#[derive(Debug)]
struct PeerServerVerifier {
    roots: Arc<RootCertStore>,
    trust_domain: String,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for PeerServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        let cert = ParsedCertificate::try_from(end_entity)?;
        rustls::client::verify_server_cert_signed_by_trust_anchor(
            &cert,
            &self.roots,
            intermediates,
            now,
            self.provider.signature_verification_algorithms.all,
        )?;
        let expected = expected_service(server_name)
            .ok_or_else(|| Error::General(format!("not a mesh server name: {server_name:?}")))?;
        let found = service_of(end_entity, &self.trust_domain).map_err(refuse)?;
        if found != expected {
            return Err(refuse(IdentityError::WrongService { found, expected }));
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// The accepting side's check of a caller: a client certificate is required, chained
/// to a trusted root (webpki, EKU clientAuth), with exactly one URI SAN naming a
/// service of this trust domain. The caller's service is read from it after the
/// handshake (`peer_service`).
#[derive(Debug)]
struct PeerClientVerifier {
    inner: Arc<dyn ClientCertVerifier>,
    trust_domain: String,
}

impl ClientCertVerifier for PeerClientVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        self.inner
            .verify_client_cert(end_entity, intermediates, now)?;
        service_of(end_entity, &self.trust_domain).map_err(refuse)?;
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// The verified caller's service, after a completed handshake.
pub fn peer_service(
    conn: &rustls::ServerConnection,
    trust_domain: &str,
) -> Result<String, IdentityError> {
    let leaf = conn
        .peer_certificates()
        .and_then(|c| c.first())
        .ok_or(IdentityError::NotOneUri(0))?;
    service_of(leaf, trust_domain)
}

/// Why a handshake failed, as a metrics label: `no_certificate`, `unknown_ca`,
/// `expired`, `wrong_identity`, `bad_identity`, `protocol` or `other`.
pub fn failure_reason(e: &std::io::Error) -> &'static str {
    let Some(tls) = e.get_ref().and_then(|inner| inner.downcast_ref::<Error>()) else {
        return "other";
    };
    match tls {
        Error::NoCertificatesPresented => "no_certificate",
        Error::InvalidCertificate(c) => match c {
            CertificateError::UnknownIssuer | CertificateError::BadSignature => "unknown_ca",
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => "expired",
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                "not_yet_valid"
            }
            CertificateError::Other(OtherError(inner)) => {
                match inner.downcast_ref::<IdentityError>() {
                    Some(IdentityError::WrongService { .. }) => "wrong_identity",
                    Some(_) => "bad_identity",
                    None => "other",
                }
            }
            _ => "bad_certificate",
        },
        Error::PeerIncompatible(_) | Error::InvalidMessage(_) => "protocol",
        Error::AlertReceived(alert) => match alert {
            rustls::AlertDescription::CertificateRequired => "no_certificate",
            rustls::AlertDescription::UnknownCA => "peer_refused_unknown_ca",
            rustls::AlertDescription::CertificateExpired => "peer_refused_expired",
            _ => "peer_refused",
        },
        _ => "other",
    }
}

#[cfg(test)]
mod tests;
