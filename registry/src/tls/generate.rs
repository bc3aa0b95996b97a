//! A small local CA for `waymark tls`, `waymark dev --tls` and tests: an ECDSA P-256
//! CA and node certificates it signs, valid for a year by default, naming the
//! addresses nodes are dialled at. Clusters with a PKI of their own bring its files
//! (`[tls]`) instead.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, SanType,
};
use time::{Duration, OffsetDateTime};

use super::{read_pem, TlsConfig};

/// A CA that can sign node certificates.
pub struct LocalCa {
    cert: rcgen::Certificate,
    key: KeyPair,
    /// The CA certificate as it was written (a reloaded CA re-creates `cert` to sign
    /// with; this keeps the bytes the nodes already trust).
    cert_pem: String,
    /// How long the certificates it issues are valid.
    leaf_days: i64,
}

/// A certificate and its key, PEM.
pub struct Issued {
    pub cert_pem: String,
    pub key_pem: String,
}

/// The default lifetime of a CA and of the certificates it issues.
pub const DEFAULT_DAYS: i64 = 365;

/// `days` from now, with an hour of leeway for clocks that are a little behind.
fn validity(params: &mut CertificateParams, days: i64) {
    let now = OffsetDateTime::now_utc();
    params.not_before = now - Duration::hours(1);
    params.not_after = now + Duration::days(days);
}

impl LocalCa {
    /// A new self-signed CA named `common_name`, valid for a year.
    pub fn new(common_name: &str) -> anyhow::Result<Self> {
        Self::with_days(common_name, DEFAULT_DAYS)
    }

    /// A new self-signed CA valid for `days`; what it issues is valid as long.
    pub fn with_days(common_name: &str, days: i64) -> anyhow::Result<Self> {
        let key = KeyPair::generate().context("generating the CA key")?;
        let mut params = CertificateParams::default();
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        validity(&mut params, days);
        let cert = params
            .self_signed(&key)
            .context("signing the CA certificate")?;
        Ok(Self {
            cert_pem: cert.pem(),
            cert,
            key,
            leaf_days: days,
        })
    }

    /// The CA `waymark tls ca create` wrote: its certificate and private key files.
    /// Certificates it issues are valid for `leaf_days`.
    pub fn load(cert_file: &Path, key_file: &Path, leaf_days: i64) -> anyhow::Result<Self> {
        let cert_pem = read_pem(cert_file)?;
        let key_pem = read_pem(key_file)?;
        let key = KeyPair::from_pem(&key_pem)
            .map_err(|e| anyhow::anyhow!("{}: not a private key: {e}", key_file.display()))?;
        let params = CertificateParams::from_ca_cert_pem(&cert_pem)
            .map_err(|e| anyhow::anyhow!("{}: not a CA certificate: {e}", cert_file.display()))?;
        if !matches!(params.is_ca, IsCa::Ca(_)) {
            anyhow::bail!(
                "{}: not a CA certificate (no CA basic constraint)",
                cert_file.display()
            );
        }
        // rcgen signs with an issuer `Certificate`: re-create one from the same name
        // and key. What it issues names that issuer and is signed by that key, so it
        // verifies against the CA file the nodes hold.
        let cert = params.self_signed(&key).with_context(|| {
            format!(
                "{} does not belong to the CA certificate {}",
                key_file.display(),
                cert_file.display()
            )
        })?;
        if !same_public_key(&cert_pem, &key_pem)? {
            anyhow::bail!(
                "{} is not the private key of {}",
                key_file.display(),
                cert_file.display()
            );
        }
        Ok(Self {
            cert,
            key,
            cert_pem,
            leaf_days,
        })
    }

    pub fn cert_pem(&self) -> String {
        self.cert_pem.clone()
    }

    /// Writes the CA certificate to `DIR/ca.pem` and its key to `DIR/ca-key.pem` (mode
    /// 0600), refusing to replace either; the two paths.
    pub fn write_ca(&self, dir: &Path) -> anyhow::Result<(PathBuf, PathBuf)> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let cert_file = dir.join("ca.pem");
        let key_file = dir.join("ca-key.pem");
        for file in [&cert_file, &key_file] {
            if file.exists() {
                anyhow::bail!(
                    "{} already exists; not replacing a CA (move it away first)",
                    file.display()
                );
            }
        }
        write_file(&cert_file, &self.cert_pem, 0o644)?;
        write_file(&key_file, &self.key.serialize_pem(), 0o600)?;
        Ok((cert_file, key_file))
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
        validity(&mut params, self.leaf_days);
        let cert = params
            .signed_by(&key, &self.cert, &self.key)
            .with_context(|| format!("signing the certificate for {common_name}"))?;
        Ok(Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// Writes `ca.pem` (once) and `NAME.pem` / `NAME-key.pem` (key mode 0600) under
    /// `dir`, replacing an earlier `NAME`; the `[tls]` table that uses them.
    pub fn write_node(&self, dir: &Path, name: &str, sans: &[&str]) -> anyhow::Result<TlsConfig> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let ca_file = dir.join("ca.pem");
        if !ca_file.exists() {
            write_file(&ca_file, &self.cert_pem, 0o644)?;
        }
        let leaf = self.leaf_files(dir, name);
        self.write_issued(&leaf, name, sans)?;
        Ok(TlsConfig {
            ca_file,
            cert_file: leaf.cert_file,
            key_file: leaf.key_file,
        })
    }

    /// Writes `NAME.pem` / `NAME-key.pem` (key mode 0600) under `dir`, refusing to
    /// replace either.
    pub fn write_leaf(&self, dir: &Path, name: &str, sans: &[&str]) -> anyhow::Result<LeafFiles> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let leaf = self.leaf_files(dir, name);
        for file in [&leaf.cert_file, &leaf.key_file] {
            if file.exists() {
                anyhow::bail!("{} already exists; not replacing it", file.display());
            }
        }
        self.write_issued(&leaf, name, sans)?;
        Ok(leaf)
    }

    fn leaf_files(&self, dir: &Path, name: &str) -> LeafFiles {
        LeafFiles {
            cert_file: dir.join(format!("{name}.pem")),
            key_file: dir.join(format!("{name}-key.pem")),
        }
    }

    fn write_issued(&self, leaf: &LeafFiles, name: &str, sans: &[&str]) -> anyhow::Result<()> {
        let issued = self.issue(name, sans)?;
        write_file(&leaf.cert_file, &issued.cert_pem, 0o644)?;
        write_file(&leaf.key_file, &issued.key_pem, 0o600)
    }
}

/// Where a node certificate and its key were written.
pub struct LeafFiles {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

/// Whether `key_pem` is the private key of the certificate in `cert_pem` (rustls
/// compares the public key infos).
fn same_public_key(cert_pem: &str, key_pem: &str) -> anyhow::Result<bool> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let cert = CertificateDer::from_pem_slice(cert_pem.as_bytes())
        .map_err(|e| anyhow::anyhow!("not a PEM certificate: {e}"))?;
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
        .map_err(|e| anyhow::anyhow!("not a PEM private key: {e}"))?;
    Ok(rustls::sign::CertifiedKey::from_der(vec![cert], key, &super::crypto_provider()).is_ok())
}

/// Writes `text` to `path` created with `mode` (0o600 for private keys).
pub fn write_file(path: &Path, text: &str, mode: u32) -> anyhow::Result<()> {
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
