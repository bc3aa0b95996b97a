//! Mesh identity on the registry side: the `[mesh]` settings, the CA's cryptography
//! (`ca.rs`), and the leader's bootstrap of the first root. The roots themselves are
//! replicated records (`model::CaRoot`); the services are `api/identity_service.rs`
//! and `api/intention_service.rs`.

pub mod ca;

use std::time::Duration;

use serde::{Deserialize, Serialize};
use waymark_proto::mesh::spiffe;

use crate::limits::{Limits, LimitsConfig};
use crate::model::{CaCommand, Command};

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
        }
    }
}

impl MeshConfig {
    pub fn validate(&self) -> anyhow::Result<()> {
        if let Some(td) = &self.trust_domain {
            spiffe::check_trust_domain("mesh.trust_domain", td)
                .map_err(|e| anyhow::anyhow!("invalid {e}"))?;
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

/// The command that creates the first root: made by the leader when it finds none
/// (the key is generated here, never in apply).
pub fn initial_root_command(config: &MeshConfig) -> Result<Command, ca::CaError> {
    let root = ca::generate_root(&config.new_trust_domain())?;
    Ok(Command::Ca(CaCommand::Initialize(root)))
}
