//! Trust for TLS to the registry's client API: the CA certificates that signed the
//! nodes' certificates (`--ca-file` / `WAYMARK_CACERT` in the CLI). Checked when it
//! is loaded, so a wrong file is named before any connection is tried.

use std::path::Path;

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
