//! Mesh identity on the registry side: the `[mesh]` settings, the CA's cryptography
//! (`ca.rs`), and the leader's bootstrap of the first root. The roots themselves are
//! replicated records (`model::CaRoot`); the services are `api/identity_service.rs`
//! and `api/intention_service.rs`.

pub mod ca;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;

use serde::{Deserialize, Serialize};
use waymark_proto::mesh::spiffe;

use crate::limits::{Limits, LimitsConfig};
use crate::model::{CaCommand, Command, NewRoot};

/// The `[mesh]` table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MeshConfig {
    /// SPIFFE trust domain of the CA the leader creates at bootstrap. Unset: a
    /// random cluster id, `<8 hex>.waymark`. Read once, when the first root is made.
    pub trust_domain: Option<String>,
    /// Lifetime of the leaves `Identity.Sign` issues.
    pub leaf_ttl_ms: u64,
    /// Signatures one caller (token, else IP) may ask for per second, sustained
    /// (0: no limit).
    pub signs_per_second_per_token: u32,
    /// Signatures one caller may ask for at once above that rate.
    pub sign_burst: u32,
    /// Import the first root instead of generating one: a CA certificate (a root, or
    /// an intermediate signed by an external root) and its private key, PEM.
    pub ca_cert_file: Option<PathBuf>,
    pub ca_key_file: Option<PathBuf>,
    /// With an intermediate: the certificates between it and the external root, and
    /// that root (PEM).
    pub ca_chain_file: Option<PathBuf>,
    pub ca_trust_anchor_file: Option<PathBuf>,
}

/// Shortest leaf lifetime (tests use minutes; a proxy renews at about 70 %).
pub const MIN_LEAF_TTL_MS: u64 = 10_000;

impl Default for MeshConfig {
    fn default() -> Self {
        Self {
            trust_domain: None,
            leaf_ttl_ms: 24 * 3600 * 1000,
            signs_per_second_per_token: 100,
            sign_burst: 1000,
            ca_cert_file: None,
            ca_key_file: None,
            ca_chain_file: None,
            ca_trust_anchor_file: None,
        }
    }
}

impl MeshConfig {
    pub fn validate(&self) -> anyhow::Result<()> {
        if let Some(td) = &self.trust_domain {
            spiffe::check_trust_domain("mesh.trust_domain", td)
                .map_err(|e| anyhow::anyhow!("invalid {e}"))?;
        }
        if self.ca_cert_file.is_some() != self.ca_key_file.is_some() {
            anyhow::bail!(
                "invalid mesh.ca_cert_file / mesh.ca_key_file: give both (an imported CA) or neither (a generated one)"
            );
        }
        if self.ca_cert_file.is_none()
            && (self.ca_chain_file.is_some() || self.ca_trust_anchor_file.is_some())
        {
            anyhow::bail!(
                "invalid mesh.ca_chain_file / mesh.ca_trust_anchor_file: only with mesh.ca_cert_file"
            );
        }
        if self.ca_cert_file.is_some() {
            // Read and checked now, so a bad file stops the node before it serves.
            self.imported_root("0.waymark")?;
        }
        if self.leaf_ttl_ms < MIN_LEAF_TTL_MS {
            anyhow::bail!(
                "invalid mesh.leaf_ttl_ms: must be at least {MIN_LEAF_TTL_MS} (got {})",
                self.leaf_ttl_ms
            );
        }
        Ok(())
    }

    pub fn leaf_ttl(&self) -> Duration {
        Duration::from_millis(self.leaf_ttl_ms)
    }

    /// The per-caller limits on `Identity.Sign`.
    pub fn sign_limits(&self) -> Limits {
        Limits::new(LimitsConfig {
            requests_per_second_per_token: self.signs_per_second_per_token,
            request_burst: self.sign_burst,
            ..LimitsConfig::default()
        })
    }

    /// The trust domain for a new CA.
    fn new_trust_domain(&self) -> String {
        self.trust_domain
            .clone()
            .unwrap_or_else(|| format!("{:08x}.waymark", rand::random::<u32>()))
    }
}

impl MeshConfig {
    /// The root the `ca_*_file`s hold, for `trust_domain`.
    fn imported_root(&self, trust_domain: &str) -> anyhow::Result<NewRoot> {
        let read = |key: &str, path: &Option<PathBuf>| -> anyhow::Result<String> {
            match path {
                None => Ok(String::new()),
                Some(p) => crate::tls::read_pem(p).with_context(|| format!("mesh.{key}")),
            }
        };
        let chain = read("ca_chain_file", &self.ca_chain_file)?;
        let chain = split_certificates(&chain);
        ca::import_root(
            trust_domain,
            &read("ca_cert_file", &self.ca_cert_file)?,
            &read("ca_key_file", &self.ca_key_file)?,
            &chain,
            &read("ca_trust_anchor_file", &self.ca_trust_anchor_file)?,
        )
        .map_err(|e| anyhow::anyhow!("invalid mesh CA files: {e}"))
    }
}

/// Each certificate of a PEM bundle, as its own PEM text.
pub fn split_certificates(text: &str) -> Vec<String> {
    const END: &str = "-----END CERTIFICATE-----";
    text.split_inclusive(END)
        .filter(|part| part.contains("-----BEGIN CERTIFICATE-----"))
        .map(|part| format!("{}\n", part.trim()))
        .collect()
}

/// The command that creates the first root, made by the leader when it finds none:
/// imported from `[mesh] ca_*_file`, else generated here (never in apply).
pub fn initial_root_command(config: &MeshConfig) -> anyhow::Result<Command> {
    let trust_domain = config.new_trust_domain();
    let root = if config.ca_cert_file.is_some() {
        config.imported_root(&trust_domain)?
    } else {
        ca::generate_root(&trust_domain)?
    };
    Ok(Command::Ca(CaCommand::Initialize(root)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bundle_splits_into_certificates() {
        let one = "-----BEGIN CERTIFICATE-----\nAAA\n-----END CERTIFICATE-----";
        let two = "-----BEGIN CERTIFICATE-----\nBBB\n-----END CERTIFICATE-----";
        let parts = split_certificates(&format!("{one}\n{two}\n"));
        assert_eq!(parts, [format!("{one}\n"), format!("{two}\n")]);
        assert!(split_certificates("").is_empty());
    }

    #[test]
    fn each_rule_names_its_key() {
        let bad = |c: MeshConfig| c.validate().unwrap_err().to_string();
        let half = MeshConfig {
            ca_cert_file: Some("ca.pem".into()),
            ..MeshConfig::default()
        };
        assert!(bad(half).contains("mesh.ca_key_file"));
        let chain_alone = MeshConfig {
            ca_chain_file: Some("chain.pem".into()),
            ..MeshConfig::default()
        };
        assert!(bad(chain_alone).contains("mesh.ca_chain_file"));
        let short = MeshConfig {
            leaf_ttl_ms: 1000,
            ..MeshConfig::default()
        };
        assert!(bad(short).contains("mesh.leaf_ttl_ms"));
        let td = MeshConfig {
            trust_domain: Some("Bad_Domain".into()),
            ..MeshConfig::default()
        };
        assert!(bad(td).contains("mesh.trust_domain"));
        let missing = MeshConfig {
            ca_cert_file: Some("/nonexistent/ca.pem".into()),
            ca_key_file: Some("/nonexistent/ca.key".into()),
            ..MeshConfig::default()
        };
        assert!(bad(missing).contains("mesh.ca_cert_file"));
    }

    #[test]
    fn the_first_root_is_imported_from_files_when_given() {
        let dir = tempfile::tempdir().unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::default();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "Corp Mesh CA");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let cert = params.self_signed(&key).unwrap();
        std::fs::write(dir.path().join("ca.pem"), cert.pem()).unwrap();
        std::fs::write(dir.path().join("ca.key"), key.serialize_pem()).unwrap();
        let config = MeshConfig {
            trust_domain: Some("corp.example".into()),
            ca_cert_file: Some(dir.path().join("ca.pem")),
            ca_key_file: Some(dir.path().join("ca.key")),
            ..MeshConfig::default()
        };
        config.validate().unwrap();
        let Command::Ca(CaCommand::Initialize(root)) = initial_root_command(&config).unwrap()
        else {
            panic!("not an Initialize");
        };
        assert!(root.imported);
        assert_eq!(root.trust_domain, "corp.example");
        assert_eq!(root.signing_cert_pem, cert.pem());

        let generated = initial_root_command(&MeshConfig::default()).unwrap();
        let Command::Ca(CaCommand::Initialize(root)) = generated else {
            panic!("not an Initialize");
        };
        assert!(!root.imported && root.trust_domain.ends_with(".waymark"));
    }
}
