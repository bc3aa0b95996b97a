//! Config entries: replicated key → value settings, written with an optional
//! compare-and-set on the modify index.

use serde::{Deserialize, Serialize};

use super::table::Record;

/// One config entry as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigEntry {
    /// `/`-separated DNS labels.
    pub key: String,
    #[serde(with = "base64_bytes")]
    pub value: Vec<u8>,
    pub create_index: u64,
    pub modify_index: u64,
}

impl Record for ConfigEntry {
    type Key = String;
    const KIND: &'static str = "config";
    const STORE: &'static str = "sm_config";
    const SNAPSHOT_FIELD: &'static str = "config";

    fn key(&self) -> String {
        self.key.clone()
    }

    fn key_bytes(key: &String) -> Vec<u8> {
        key.as_bytes().to_vec()
    }
}

/// Whether `key` is under `prefix` by whole segments.
pub fn key_in_prefix(key: &str, prefix: &str) -> bool {
    prefix.is_empty()
        || key == prefix
        || (key.starts_with(prefix) && key.as_bytes().get(prefix.len()) == Some(&b'/'))
}

/// Config commands, nested under `Command::Config` (existing log entries keep their
/// encoding).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConfigCommand {
    Put {
        key: String,
        #[serde(with = "base64_bytes")]
        value: Vec<u8>,
        /// Compare-and-set as for instances: `Some(0)` = only if absent.
        if_modify_index: Option<u64>,
    },
    Delete {
        key: String,
        if_modify_index: Option<u64>,
    },
}

/// Byte values as base64 strings in the JSON log and mirror (a JSON array of numbers
/// would be about four times larger).
mod base64_bytes {
    use base64::Engine;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(v))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        base64::engine::general_purpose::STANDARD
            .decode(s)
            .map_err(serde::de::Error::custom)
    }
}
