//! The mesh's CA roots and intentions in the catalog: initialize, rotate and retire
//! roots (exactly one active once initialized), put and delete intentions, and the
//! queries the Identity and Intentions services answer from.

use super::{Catalog, Effects};
use crate::model::{
    CaCommand, CaInitOutcome, CaRetireOutcome, CaRoot, CaRotateOutcome, CommandResult, Intention,
    IntentionCommand, IntentionDeleted, RecordChange,
};

impl Catalog {
    pub(super) fn apply_ca(&mut self, index: u64, cmd: &CaCommand) -> Effects {
        match cmd {
            CaCommand::Initialize(root) => {
                if !self.tables.ca_roots.is_empty() {
                    return Effects::result(CommandResult::CaInit(
                        CaInitOutcome::AlreadyInitialized,
                    ));
                }
                let record = root.clone().into_record(index, true);
                self.tables.ca_roots.put(record.clone());
                Effects {
                    result: CommandResult::CaInit(CaInitOutcome::Initialized(record.clone())),
                    changes: vec![RecordChange::Put(record).into()],
                }
            }
            CaCommand::Rotate { root, if_active } => {
                let active = self.active_root().map(|r| r.id.clone());
                if active.as_deref() != Some(if_active.as_str())
                    || self.tables.ca_roots.contains(&root.id)
                {
                    return Effects::result(CommandResult::CaRotate(
                        CaRotateOutcome::ActiveChanged { active },
                    ));
                }
                let mut previous = self
                    .tables
                    .ca_roots
                    .get(if_active)
                    .cloned()
                    .expect("the active root is in the table");
                previous.active = false;
                previous.modify_index = index;
                let record = root.clone().into_record(index, true);
                self.tables.ca_roots.put(previous.clone());
                self.tables.ca_roots.put(record.clone());
                Effects {
                    result: CommandResult::CaRotate(CaRotateOutcome::Rotated {
                        root: record.clone(),
                        previous_id: previous.id.clone(),
                    }),
                    changes: vec![
                        RecordChange::Put(previous).into(),
                        RecordChange::Put(record).into(),
                    ],
                }
            }
            CaCommand::Retire { id } => {
                let outcome = match self.tables.ca_roots.get(id) {
                    Some(r) if r.active => CaRetireOutcome::IsActive,
                    Some(_) => CaRetireOutcome::Retired { removed: true },
                    None => CaRetireOutcome::Retired { removed: false },
                };
                let changes = if outcome == (CaRetireOutcome::Retired { removed: true }) {
                    self.tables.ca_roots.remove(id);
                    vec![RecordChange::<CaRoot>::Delete(id.clone()).into()]
                } else {
                    Vec::new()
                };
                Effects {
                    result: CommandResult::CaRetire(outcome),
                    changes,
                }
            }
        }
    }

    pub(super) fn apply_intention(&mut self, index: u64, cmd: &IntentionCommand) -> Effects {
        match cmd {
            IntentionCommand::Put {
                source,
                destination,
                action,
                description,
            } => {
                let key = (destination.clone(), source.clone());
                let old = self.tables.intentions.get(&key);
                let record = Intention {
                    source: source.clone(),
                    destination: destination.clone(),
                    action: *action,
                    description: description.clone(),
                    create_index: old.map_or(index, |i| i.create_index),
                    modify_index: index,
                };
                self.tables.intentions.put(record.clone());
                Effects {
                    result: CommandResult::IntentionPut(record.clone()),
                    changes: vec![RecordChange::Put(record).into()],
                }
            }
            IntentionCommand::Delete {
                source,
                destination,
            } => {
                let key = (destination.clone(), source.clone());
                let removed = self.tables.intentions.remove(&key).is_some();
                Effects {
                    result: CommandResult::IntentionDelete(IntentionDeleted { removed }),
                    changes: removed
                        .then(|| RecordChange::<Intention>::Delete(key).into())
                        .into_iter()
                        .collect(),
                }
            }
        }
    }

    /// The root new leaves are signed by (`None` before the CA is initialized).
    pub fn active_root(&self) -> Option<&CaRoot> {
        self.tables.ca_roots.iter().find(|r| r.active)
    }

    /// Every root the mesh trusts, by id.
    pub fn ca_roots(&self) -> impl Iterator<Item = &CaRoot> {
        self.tables.ca_roots.iter()
    }

    /// Intentions whose destination is `destination` or `*` (`None`: all), sorted
    /// by (destination, source).
    pub fn intentions<'a>(
        &'a self,
        destination: Option<&'a str>,
    ) -> impl Iterator<Item = &'a Intention> + 'a {
        self.tables.intentions.iter().filter(move |i| {
            destination.is_none_or(|d| {
                i.destination == d || i.destination == waymark_proto::intention::WILDCARD
            })
        })
    }
}
