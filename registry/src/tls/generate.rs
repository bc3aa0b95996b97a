//! Throwaway certificates for `waymark dev --tls` and tests: an ECDSA P-256 CA and
//! node certificates it signs, valid for a year, naming the addresses nodes are
//! dialled at. Production clusters bring their own files (`[tls]`).

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, SanType,
};
use time::{Duration, OffsetDateTime};

use super::TlsConfig;

/// A CA that can sign node certificates.
pub struct DevCa {
    cert: rcgen::Certificate,
    key: KeyPair,
}

/// A certificate and its key, PEM.
pub struct Issued {
    pub cert_pem: String,
    pub key_pem: String,
}

/// An hour of leeway for clocks that are a little behind.
fn validity(params: &mut CertificateParams) {
    let now = OffsetDateTime::now_utc();
    params.not_before = now - Duration::hours(1);
    params.not_after = now + Duration::days(365);
}

impl DevCa {
    /// A new self-signed CA named `common_name`.
    pub fn new(common_name: &str) -> anyhow::Result<Self> {
        let key = KeyPair::generate().context("generating the CA key")?;
        let mut params = CertificateParams::default();
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        validity(&mut params);
        let cert = params
            .self_signed(&key)
            .context("signing the CA certificate")?;
        Ok(Self { cert, key })
    }

    pub fn cert_pem(&self) -> String {
        self.cert.pem()
    }

    /// A node certificate for `names` (IP addresses become IP SANs, the rest DNS
    /// SANs), usable as a TLS server and client.
    pub fn issue(&self, common_name: &str, names: &[&str]) -> anyhow::Result<Issued> {
        let key = KeyPair::generate().context("generating a node key")?;
        let mut params = CertificateParams::default();
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        for name in names {
            params.subject_alt_names.push(match name.parse::<IpAddr>() {
                Ok(ip) => SanType::IpAddress(ip),
                Err(_) => SanType::DnsName(
                    (*name)
                        .try_into()
                        .with_context(|| format!("{name:?} is not a DNS name"))?,
                ),
            });
        }
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        validity(&mut params);
        let cert = params
            .signed_by(&key, &self.cert, &self.key)
            .with_context(|| format!("signing the certificate for {common_name}"))?;
        Ok(Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// Writes `ca.pem` (once) and `NAME.pem` / `NAME-key.pem` (key mode 0600) under
    /// `dir`; the `[tls]` table that uses them.
    pub fn write_node(&self, dir: &Path, name: &str, sans: &[&str]) -> anyhow::Result<TlsConfig> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let ca_file = dir.join("ca.pem");
        if !ca_file.exists() {
            write(&ca_file, &self.cert_pem(), 0o644)?;
        }
        let issued = self.issue(name, sans)?;
        let cert_file = dir.join(format!("{name}.pem"));
        let key_file = dir.join(format!("{name}-key.pem"));
        write(&cert_file, &issued.cert_pem, 0o644)?;
        write(&key_file, &issued.key_pem, 0o600)?;
        Ok(TlsConfig {
            ca_file,
            cert_file,
            key_file,
        })
    }
}

fn write(path: &PathBuf, text: &str, mode: u32) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(mode)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(text.as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}
