//! TLS on the node's two gRPC ports, from the `[tls]` files: the client API presents
//! the node's certificate (clients verify it with the CA file), and the Raft port is
//! mutual: a peer is accepted only with a certificate the cluster CA signed, and this
//! node dials its peers presenting the same certificate. TLS 1.3 only, ring provider.

pub mod generate;
pub mod incoming;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use serde::{Deserialize, Serialize};
use tokio_rustls::TlsAcceptor;

/// The `[tls]` table. Present: TLS on the client API and mutual TLS on Raft.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM: the CA (one or more certificates) that signs every node's certificate.
    /// Raft peers must present a certificate it signed; clients verify with it too.
    pub ca_file: PathBuf,
    /// PEM: this node's certificate (then any intermediates). It must name the
    /// addresses clients and peers dial (IP or DNS SANs) and allow both serverAuth
    /// and clientAuth: the node presents it when it dials its peers.
    pub cert_file: PathBuf,
    /// PEM: the certificate's private key (PKCS#8, SEC1 or PKCS#1).
    pub key_file: PathBuf,
}

/// The loaded TLS state of one node.
#[derive(Clone)]
pub struct NodeTls {
    /// Client API: server certificate, no client certificate asked for.
    pub api: TlsAcceptor,
    /// Raft port: server certificate, and a client certificate signed by the CA.
    pub raft: TlsAcceptor,
    /// How this node dials its peers' Raft ports (its certificate, the CA as roots).
    pub peer_client: tonic::transport::ClientTlsConfig,
}

impl NodeTls {
    /// Reads and checks the files; every error names the `[tls]` key and the path.
    pub fn load(config: &TlsConfig) -> anyhow::Result<Self> {
        let ca = read_certs("tls.ca_file", &config.ca_file)?;
        let chain = read_certs("tls.cert_file", &config.cert_file)?;
        let key_pem = read_pem(&config.key_file).context("tls.key_file")?;
        let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|e| {
            anyhow::anyhow!(
                "tls.key_file {}: no usable private key: {e}",
                config.key_file.display()
            )
        })?;
        let mut roots = RootCertStore::empty();
        for cert in &ca {
            roots.add(cert.clone()).with_context(|| {
                format!(
                    "tls.ca_file {}: not a usable CA certificate",
                    config.ca_file.display()
                )
            })?;
        }
        let roots = Arc::new(roots);
        let provider = crypto_provider();

        let server_config = |client_auth: Option<Arc<RootCertStore>>| -> anyhow::Result<_> {
            let builder = ServerConfig::builder_with_provider(provider.clone())
                .with_protocol_versions(&[&rustls::version::TLS13])
                .context("configuring TLS 1.3")?;
            let builder = match client_auth {
                Some(roots) => builder.with_client_cert_verifier(
                    WebPkiClientVerifier::builder_with_provider(roots, provider.clone())
                        .build()
                        .context("building the Raft port's client certificate verifier")?,
                ),
                None => builder.with_no_client_auth(),
            };
            let mut server = builder
                .with_single_cert(chain.clone(), key.clone_key())
                .with_context(|| {
                    format!(
                        "tls.cert_file {} with tls.key_file {}: the key does not fit the certificate",
                        config.cert_file.display(),
                        config.key_file.display()
                    )
                })?;
            server.alpn_protocols = vec![b"h2".to_vec()];
            Ok(TlsAcceptor::from(Arc::new(server)))
        };

        let pem = |path: &Path| {
            std::fs::read(path).with_context(|| format!("reading {}", path.display()))
        };
        let peer_client = tonic::transport::ClientTlsConfig::new()
            .ca_certificate(tonic::transport::Certificate::from_pem(pem(
                &config.ca_file
            )?))
            .identity(tonic::transport::Identity::from_pem(
                pem(&config.cert_file)?,
                pem(&config.key_file)?,
            ));
        Ok(Self {
            api: server_config(None)?,
            raft: server_config(Some(roots))?,
            peer_client,
        })
    }
}

/// The one provider every Waymark TLS endpoint uses (`waymark_client::crypto_provider`:
/// ring, X25519 first).
pub(crate) fn crypto_provider() -> Arc<rustls::crypto::CryptoProvider> {
    waymark_client::crypto_provider()
}

/// Every certificate in the PEM file at `path`; at least one.
fn read_certs(key: &str, path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let pem = read_pem(path).with_context(|| key.to_string())?;
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow::anyhow!("{key} {}: not PEM certificates: {e}", path.display()))?;
    if certs.is_empty() {
        bail!("{key} {}: no certificate in the file", path.display());
    }
    Ok(certs)
}

/// The most a certificate or key file may hold: they are a few KiB, and a mistyped
/// path (a device, a log) must fail rather than be read whole.
const MAX_PEM_BYTES: u64 = 1 << 20;

/// Reads a PEM file of at most [`MAX_PEM_BYTES`].
pub(crate) fn read_pem(path: &Path) -> anyhow::Result<String> {
    use std::io::Read;
    let file = std::fs::File::open(path).with_context(|| format!("reading {}", path.display()))?;
    let mut text = String::new();
    file.take(MAX_PEM_BYTES + 1)
        .read_to_string(&mut text)
        .with_context(|| format!("reading {}", path.display()))?;
    if text.len() as u64 > MAX_PEM_BYTES {
        anyhow::bail!("{}: larger than {MAX_PEM_BYTES} bytes", path.display());
    }
    Ok(text)
}

#[cfg(test)]
mod tests;
