//! Trust for TLS to the registry's client API: the CA certificates that signed the
//! nodes' certificates (`--ca-file` / `WAYMARK_CACERT` in the CLI). Checked when it
//! is loaded, so a wrong file is named before any connection is tried.

use std::path::Path;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use tonic::transport::{Certificate, ClientTlsConfig};

use crate::error::ClientError;

/// The CA a client verifies the nodes' certificates with.
#[derive(Clone, Debug)]
pub struct ClientTls {
    ca_pem: Vec<u8>,
}

impl ClientTls {
    /// Reads the PEM file at `path`; it must hold at least one certificate.
    pub fn from_ca_file(path: &Path) -> Result<Self, ClientError> {
        let pem = std::fs::read(path)
            .map_err(|e| ClientError::Tls(format!("reading CA file {}: {e}", path.display())))?;
        Self::from_ca_pem(pem)
            .map_err(|e| ClientError::Tls(format!("CA file {}: {e}", path.display())))
    }

    /// From PEM text; it must hold at least one certificate.
    pub fn from_ca_pem(ca_pem: Vec<u8>) -> Result<Self, String> {
        let certs = CertificateDer::pem_slice_iter(&ca_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("not PEM certificates: {e}"))?;
        if certs.is_empty() {
            return Err("no certificate in it".into());
        }
        Ok(Self { ca_pem })
    }

    pub(crate) fn config(&self) -> ClientTlsConfig {
        ClientTlsConfig::new().ca_certificate(Certificate::from_pem(&self.ca_pem))
    }
}

/// The rustls provider every Waymark TLS endpoint builds on (the nodes' ports, Raft,
/// JWKS fetches, mTLS between proxies): ring, with ECDHE over X25519 then P-256, and
/// AES-128-GCM first. ring's defaults in rustls 0.23.48 put P-384 first, which cost
/// each handshake about three times as much CPU (benches/results/proxy-compare.md,
/// mTLS rows); rustls deprecates the ring provider for lacking post-quantum key
/// exchange, which only its aws-lc-rs provider has (cmake and a long C build), and
/// classical ECDHE is what every Waymark peer offers.
#[allow(deprecated)]
pub fn crypto_provider() -> Arc<CryptoProvider> {
    use rustls::crypto::ring::{cipher_suite, default_provider, kx_group};
    let mut provider = default_provider();
    provider.kx_groups = vec![kx_group::X25519, kx_group::SECP256R1];
    provider.cipher_suites = vec![
        cipher_suite::TLS13_AES_128_GCM_SHA256,
        cipher_suite::TLS13_CHACHA20_POLY1305_SHA256,
        cipher_suite::TLS13_AES_256_GCM_SHA384,
        cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        cipher_suite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        cipher_suite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    ];
    Arc::new(provider)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_provider_prefers_x25519_and_never_offers_p384() {
        let p = crypto_provider();
        let groups: Vec<_> = p.kx_groups.iter().map(|g| g.name()).collect();
        assert_eq!(
            groups,
            [rustls::NamedGroup::X25519, rustls::NamedGroup::secp256r1]
        );
        assert_eq!(
            p.cipher_suites[0].suite(),
            rustls::CipherSuite::TLS13_AES_128_GCM_SHA256
        );
    }
}
