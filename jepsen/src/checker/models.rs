//! Sequential models: a single register (etcd's read/write/cas) and a key-value store
//! (get/put/append per key, split by key).

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use super::{Model, Operation};

/// A single integer register that starts empty.
#[derive(Clone, Copy, Debug, Default)]
pub struct RegisterModel;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegisterInput {
    Read,
    Write(i64),
    /// Set the value to `to` if it is `from`.
    Cas {
        from: i64,
        to: i64,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegisterOutput {
    /// The value read; `None` for the empty register.
    Read(Option<i64>),
    Write,
    /// Whether the compare matched and the swap happened.
    Cas(bool),
}

impl Model for RegisterModel {
    type State = Option<i64>;
    type Input = RegisterInput;
    type Output = RegisterOutput;

    fn init(&self) -> Self::State {
        None
    }

    fn step(
        &self,
        state: &Self::State,
        input: &Self::Input,
        output: Option<&Self::Output>,
    ) -> Option<Self::State> {
        // An output of the wrong kind for the input is impossible, hence `None`.
        match (input, output) {
            (RegisterInput::Read, None) => Some(*state),
            (RegisterInput::Read, Some(RegisterOutput::Read(value))) => {
                (value == state).then_some(*state)
            }
            (RegisterInput::Write(value), None | Some(RegisterOutput::Write)) => Some(Some(*value)),
            (RegisterInput::Cas { from, to }, output) => {
                let swapped = *state == Some(*from);
                match output {
                    None => {}
                    Some(RegisterOutput::Cas(reported)) if *reported == swapped => {}
                    Some(_) => return None,
                }
                Some(if swapped { Some(*to) } else { *state })
            }
            _ => None,
        }
    }
}

/// A key-value store of strings in which every key starts as the empty string.
#[derive(Clone, Copy, Debug, Default)]
pub struct KvModel;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KvInput {
    pub key: String,
    pub op: KvOp,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KvOp {
    Get,
    Put(String),
    /// Concatenate to the current value.
    Append(String),
}

impl KvInput {
    pub fn get(key: &str) -> Self {
        Self {
            key: key.to_owned(),
            op: KvOp::Get,
        }
    }

    pub fn put(key: &str, value: &str) -> Self {
        Self {
            key: key.to_owned(),
            op: KvOp::Put(value.to_owned()),
        }
    }

    pub fn append(key: &str, value: &str) -> Self {
        Self {
            key: key.to_owned(),
            op: KvOp::Append(value.to_owned()),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KvOutput {
    /// What a get returned.
    Value(String),
    /// A put or append was applied.
    Done,
}

/// The keys of a [`KvModel`] store that are not empty. A whole store rather than one
/// value so that the model stays right when a history is not split by key; after
/// the split a part only ever holds its own key.
///
/// The search clones, hashes and compares states on almost every step and keeps
/// every one it meets, so values are shared rather than copied, and the hash is kept
/// up to date as entries change instead of being recomputed over every value.
#[derive(Clone, Debug, Default)]
pub struct KvState {
    /// Sorted by key; no empty values, so that equal stores are equal states.
    entries: Vec<KvEntry>,
    /// The wrapping sum of the entries' hashes, which an update can adjust.
    digest: u64,
}

#[derive(Clone, Debug)]
struct KvEntry {
    key: Arc<str>,
    value: Arc<str>,
    hash: u64,
}

impl KvState {
    /// The value of `key`; absent keys are empty.
    pub fn get(&self, key: &str) -> &str {
        match self.find(key) {
            Ok(i) => &self.entries[i].value,
            Err(_) => "",
        }
    }

    /// A copy of this state with `key` set to `value`.
    fn with(&self, key: &str, value: &str) -> Self {
        let mut next = self.clone();
        let slot = next.find(key);
        if let Ok(i) = slot {
            let old = next.entries.remove(i);
            next.digest = next.digest.wrapping_sub(old.hash);
        }
        if !value.is_empty() {
            let key: Arc<str> = match slot {
                Ok(i) => Arc::clone(&self.entries[i].key),
                Err(_) => Arc::from(key),
            };
            let mut hasher = DefaultHasher::new();
            (&*key, value).hash(&mut hasher);
            let hash = hasher.finish();
            next.digest = next.digest.wrapping_add(hash);
            let at = slot.unwrap_or_else(|i| i);
            next.entries.insert(
                at,
                KvEntry {
                    key,
                    value: Arc::from(value),
                    hash,
                },
            );
        }
        next
    }

    fn find(&self, key: &str) -> Result<usize, usize> {
        self.entries.binary_search_by(|e| (*e.key).cmp(key))
    }
}

impl PartialEq for KvState {
    fn eq(&self, other: &Self) -> bool {
        self.digest == other.digest
            && self.entries.len() == other.entries.len()
            && self.entries.iter().zip(&other.entries).all(|(a, b)| {
                a.hash == b.hash
                    && a.key == b.key
                    && (Arc::ptr_eq(&a.value, &b.value) || a.value == b.value)
            })
    }
}

impl Eq for KvState {}

impl Hash for KvState {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.digest);
    }
}

impl Model for KvModel {
    type State = KvState;
    type Input = KvInput;
    type Output = KvOutput;

    fn init(&self) -> Self::State {
        KvState::default()
    }

    fn step(
        &self,
        state: &Self::State,
        input: &Self::Input,
        output: Option<&Self::Output>,
    ) -> Option<Self::State> {
        match (&input.op, output) {
            (KvOp::Get, None) => Some(state.clone()),
            (KvOp::Get, Some(KvOutput::Value(value))) => {
                (value == state.get(&input.key)).then(|| state.clone())
            }
            (KvOp::Put(value), None | Some(KvOutput::Done)) => Some(state.with(&input.key, value)),
            (KvOp::Append(value), None | Some(KvOutput::Done)) => {
                let current = state.get(&input.key);
                Some(state.with(&input.key, &format!("{current}{value}")))
            }
            _ => None,
        }
    }

    /// One part per key, in the order the keys first appear.
    fn partition(&self, history: &[Operation<KvInput, KvOutput>]) -> Vec<Vec<usize>> {
        let mut part_of: HashMap<&str, usize> = HashMap::new();
        let mut parts: Vec<Vec<usize>> = Vec::new();
        for (index, op) in history.iter().enumerate() {
            let part = *part_of.entry(&op.input.key).or_insert_with(|| {
                parts.push(Vec::new());
                parts.len() - 1
            });
            parts[part].push(index);
        }
        parts
    }

    fn part_name(&self, input: &KvInput) -> Option<String> {
        Some(format!("key {:?}", input.key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn register_read_must_match() {
        let m = RegisterModel;
        let read = |v| Some(RegisterOutput::Read(v));
        assert_eq!(
            m.step(&None, &RegisterInput::Read, read(None).as_ref()),
            Some(None)
        );
        assert_eq!(
            m.step(&Some(3), &RegisterInput::Read, read(None).as_ref()),
            None
        );
        assert_eq!(
            m.step(&Some(3), &RegisterInput::Read, read(Some(3)).as_ref()),
            Some(Some(3))
        );
        assert_eq!(m.step(&Some(3), &RegisterInput::Read, None), Some(Some(3)));
    }

    #[test]
    fn register_cas_swaps_only_on_match() {
        let m = RegisterModel;
        let cas = RegisterInput::Cas { from: 1, to: 2 };
        let reply = |ok| Some(RegisterOutput::Cas(ok));
        assert_eq!(m.step(&Some(1), &cas, reply(true).as_ref()), Some(Some(2)));
        assert_eq!(m.step(&Some(1), &cas, reply(false).as_ref()), None);
        assert_eq!(m.step(&Some(0), &cas, reply(false).as_ref()), Some(Some(0)));
        assert_eq!(m.step(&None, &cas, reply(true).as_ref()), None);
        // Unknown outcome: the effect still follows the state.
        assert_eq!(m.step(&Some(1), &cas, None), Some(Some(2)));
        assert_eq!(m.step(&Some(0), &cas, None), Some(Some(0)));
    }

    #[test]
    fn register_rejects_outputs_of_the_wrong_kind() {
        let m = RegisterModel;
        let write = RegisterInput::Write(1);
        assert_eq!(
            m.step(&None, &write, Some(&RegisterOutput::Cas(true))),
            None
        );
        assert_eq!(
            m.step(&None, &RegisterInput::Read, Some(&RegisterOutput::Write)),
            None
        );
    }

    #[test]
    fn kv_append_concatenates_and_missing_keys_read_empty() {
        let m = KvModel;
        let s0 = m.init();
        let got = |v: &str| KvOutput::Value(v.to_owned());
        assert!(m.step(&s0, &KvInput::get("k"), Some(&got(""))).is_some());
        let s1 = m
            .step(&s0, &KvInput::append("k", "ab"), Some(&KvOutput::Done))
            .expect("the model accepts it");
        let s2 = m
            .step(&s1, &KvInput::append("k", "cd"), None)
            .expect("the model accepts it");
        assert!(m
            .step(&s2, &KvInput::get("k"), Some(&got("abcd")))
            .is_some());
        assert!(m.step(&s2, &KvInput::get("k"), Some(&got("ab"))).is_none());
        let s3 = m
            .step(&s2, &KvInput::put("k", "x"), Some(&KvOutput::Done))
            .expect("the model accepts it");
        assert!(m.step(&s3, &KvInput::get("k"), Some(&got("x"))).is_some());
        assert!(m
            .step(&s3, &KvInput::get("other"), Some(&got("")))
            .is_some());
    }

    #[test]
    fn kv_states_are_equal_whatever_the_path_to_them() {
        let m = KvModel;
        let done = Some(&KvOutput::Done);
        let step =
            |s: &KvState, input: KvInput| m.step(s, &input, done).expect("the model accepts it");
        let hash = |s: &KvState| {
            let mut h = DefaultHasher::new();
            s.hash(&mut h);
            h.finish()
        };
        let s0 = m.init();
        let by_appends = step(
            &step(
                &step(&s0, KvInput::append("b", "1")),
                KvInput::append("a", "x"),
            ),
            KvInput::append("a", "y"),
        );
        let by_puts = step(&step(&s0, KvInput::put("a", "xy")), KvInput::put("b", "1"));
        assert_eq!(by_appends, by_puts);
        assert_eq!(hash(&by_appends), hash(&by_puts));
        assert_ne!(by_appends, by_puts.with("b", "2"));
        // An empty value is the same as an absent key.
        assert_eq!(step(&s0, KvInput::put("a", "")), s0);
        assert_eq!(
            step(&by_puts, KvInput::put("b", "")),
            step(&s0, KvInput::put("a", "xy"))
        );
    }

    #[test]
    fn kv_partitions_by_key_in_order_of_appearance() {
        let op = |key: &str| Operation::indeterminate(0, KvInput::get(key), 0);
        let history = [op("b"), op("a"), op("b"), op("c"), op("a")];
        assert_eq!(
            KvModel.partition(&history),
            vec![vec![0, 2], vec![1, 4], vec![3]]
        );
    }
}
