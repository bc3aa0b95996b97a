//! Config entries in the catalog: put and delete (each with an optional
//! compare-and-set on the modify index), and reads by key and by prefix.

use super::{Catalog, Effects};
use crate::model::{
    key_in_prefix, CasMismatch, CommandResult, ConfigCommand, ConfigDeleteOutcome, ConfigEntry,
    ConfigPutOutcome, RecordChange,
};

impl Catalog {
    pub(super) fn apply_config(&mut self, index: u64, cmd: &ConfigCommand) -> Effects {
        match cmd {
            ConfigCommand::Put {
                key,
                value,
                if_modify_index,
            } => {
                let old = self.tables.config.get(key);
                if let Err(m) = CasMismatch::check(old.map(|e| e.modify_index), *if_modify_index) {
                    return Effects::result(CommandResult::ConfigPut(
                        ConfigPutOutcome::PreconditionFailed(m),
                    ));
                }
                let entry = ConfigEntry {
                    key: key.clone(),
                    value: value.clone(),
                    create_index: old.map_or(index, |e| e.create_index),
                    modify_index: index,
                };
                self.tables.config.put(entry.clone());
                Effects {
                    result: CommandResult::ConfigPut(ConfigPutOutcome::Written(entry.clone())),
                    changes: vec![RecordChange::Put(entry).into()],
                }
            }
            ConfigCommand::Delete {
                key,
                if_modify_index,
            } => {
                let current = self.tables.config.get(key).map(|e| e.modify_index);
                if let Err(m) = CasMismatch::check(current, *if_modify_index) {
                    return Effects::result(CommandResult::ConfigDelete(
                        ConfigDeleteOutcome::PreconditionFailed(m),
                    ));
                }
                let removed = self.tables.config.remove(key).is_some();
                Effects {
                    result: CommandResult::ConfigDelete(ConfigDeleteOutcome::Deleted { removed }),
                    changes: removed
                        .then(|| RecordChange::<ConfigEntry>::Delete(key.clone()).into())
                        .into_iter()
                        .collect(),
                }
            }
        }
    }

    pub fn config_entry(&self, key: &str) -> Option<&ConfigEntry> {
        self.tables.config.get(&key.to_string())
    }

    /// Entries under `prefix` by whole segments ("a" matches "a" and "a/b", not
    /// "ab"), in key order; every entry for an empty prefix.
    pub fn config_entries<'a>(&'a self, prefix: &'a str) -> impl Iterator<Item = &'a ConfigEntry> {
        self.tables
            .config
            .range(prefix.to_string()..)
            .take_while(move |(k, _)| k.starts_with(prefix))
            .filter(move |(k, _)| key_in_prefix(k, prefix))
            .map(|(_, e)| e)
    }
}
