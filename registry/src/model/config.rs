//! Config entries: replicated key → value settings, written with an optional
//! compare-and-set on the modify index.

use serde::{Deserialize, Serialize};

use super::table::Record;

/// One config entry as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigEntry {
    /// `/`-separated DNS labels.
    pub key: String,
    #[serde(with = "super::codec::bytes_or_base64")]
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
        #[serde(with = "super::codec::bytes_or_base64")]
        value: Vec<u8>,
        /// Compare-and-set as for instances: `Some(0)` = only if absent.
        if_modify_index: Option<u64>,
    },
    Delete {
        key: String,
        if_modify_index: Option<u64>,
    },
}
