//! One index's changes in wire form, shared by every watcher: each change encoded once
//! (as it is, and an instance upsert also as its removal, for passing-only watchers of
//! an instance that is not passing), and each distinct message assembled from them
//! once. Watchers that select the same changes send the same bytes; a watcher never
//! converts or encodes a record itself. What a change looks like on the wire is the API
//! edge's business (`api/watch_stream.rs` builds this); this is only the shared store.

use std::sync::Mutex;

use bytes::Bytes;
use waymark_proto::watch_frame;

/// How one change appears in one watcher's message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// Not in the message.
    Skipped,
    /// As it is.
    Shown,
    /// An instance upsert sent as the instance's removal.
    AsRemoved,
}

/// Where a message's bytes came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Assembly {
    /// Assembled for this caller.
    Assembled,
    /// Assembled earlier for another caller with the same forms.
    Shared,
}

/// Assembled messages kept per index: watchers of a few distinct selections share
/// them; a watcher with yet another selection assembles its own.
const MESSAGES_KEPT: usize = 8;

#[derive(Debug)]
pub struct EncodedChanges {
    /// Per change, its `WatchChanges` element as it is (`None`: never sent to watchers).
    shown: Vec<Option<Bytes>>,
    /// Per change, an instance upsert's element as a removal (`None` for other changes).
    as_removed: Vec<Option<Bytes>>,
    /// Messages already assembled, by the form of each change in them.
    messages: Mutex<Vec<(Box<[Form]>, Bytes)>>,
}

impl EncodedChanges {
    pub fn new(shown: Vec<Option<Bytes>>, as_removed: Vec<Option<Bytes>>) -> Self {
        debug_assert_eq!(shown.len(), as_removed.len());
        Self {
            shown,
            as_removed,
            messages: Mutex::new(Vec::new()),
        }
    }

    /// The encoded Changes message at `index` with each change in its `forms` entry
    /// (and whether another caller assembled it first), or `None` when it would carry
    /// no change.
    pub fn message(&self, index: u64, forms: &[Form]) -> Option<(Bytes, Assembly)> {
        let elements = forms.iter().enumerate().filter_map(|(i, form)| match form {
            Form::Skipped => None,
            Form::Shown => self.shown.get(i)?.as_ref(),
            Form::AsRemoved => self.as_removed.get(i)?.as_ref(),
        });
        elements.clone().next()?;
        let mut kept = self.messages.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, bytes)) = kept.iter().find(|(f, _)| **f == *forms) {
            return Some((bytes.clone(), Assembly::Shared));
        }
        let bytes = watch_frame::changes_message(index, elements);
        if kept.len() < MESSAGES_KEPT {
            kept.push((forms.into(), bytes.clone()));
        }
        Some((bytes, Assembly::Assembled))
    }
}
