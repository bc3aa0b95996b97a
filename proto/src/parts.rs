//! Large answers in pieces: a watch snapshot or an instance list is sent as parts of
//! about `PART_BYTES` each, so a stock gRPC client (4 MiB default message limit) reads
//! a 100k-instance service without raising its limit. Every part is at the same index;
//! all but the last say `more`.

use prost::Message;

use crate::pb;

/// Encoded bytes per part (a part holds at least one item, however large): a quarter
/// of gRPC's default 4 MiB limit.
pub const PART_BYTES: usize = 1 << 20;

/// Splits `items` into consecutive runs of at most `budget` encoded bytes each (a
/// single larger item is a run of its own); never returns an empty list of runs.
pub fn split_by_size<T: Message>(items: Vec<T>, budget: usize) -> Vec<Vec<T>> {
    let mut runs = vec![Vec::new()];
    let mut size = 0;
    for item in items {
        let len = item.encoded_len() + 8; // key and length prefix, roughly
        let current = runs.last_mut().expect("runs is never empty");
        if !current.is_empty() && size + len > budget {
            runs.push(Vec::new());
            size = 0;
        }
        size += len;
        runs.last_mut().expect("runs is never empty").push(item);
    }
    runs
}

/// A watch snapshot as its parts, in order (`more` on all but the last).
pub fn snapshot_parts(snapshot: pb::WatchSnapshot, budget: usize) -> Vec<pb::WatchSnapshot> {
    if snapshot.encoded_len() <= budget {
        return vec![pb::WatchSnapshot {
            more: false,
            ..snapshot
        }];
    }
    let mut parts = Vec::new();
    let mut current = pb::WatchSnapshot::default();
    let mut size = 0;
    // One closure per list would need four copies; a macro keeps the one rule.
    macro_rules! take {
        ($field:ident) => {
            for item in snapshot.$field {
                let len = item.encoded_len() + 8;
                if size > 0 && size + len > budget {
                    parts.push(std::mem::take(&mut current));
                    size = 0;
                }
                size += len;
                current.$field.push(item);
            }
        };
    }
    take!(instances);
    take!(config_entries);
    take!(ca_roots);
    take!(intentions);
    parts.push(current);
    let last = parts.len() - 1;
    for (i, part) in parts.iter_mut().enumerate() {
        part.more = i < last;
    }
    parts
}

/// Joins snapshot parts back into one snapshot (what a client applies).
pub fn join_snapshot(parts: impl IntoIterator<Item = pb::WatchSnapshot>) -> pb::WatchSnapshot {
    let mut whole = pb::WatchSnapshot::default();
    for part in parts {
        whole.instances.extend(part.instances);
        whole.config_entries.extend(part.config_entries);
        whole.ca_roots.extend(part.ca_roots);
        whole.intentions.extend(part.intentions);
    }
    whole
}

#[cfg(test)]
mod tests {
    use super::*;

    fn instance(id: usize, meta_bytes: usize) -> pb::Instance {
        pb::Instance {
            service: "web".into(),
            id: format!("web-{id}"),
            meta: [("k".to_string(), "x".repeat(meta_bytes))].into(),
            ..Default::default()
        }
    }

    fn snapshot(n: usize, meta_bytes: usize) -> pb::WatchSnapshot {
        pb::WatchSnapshot {
            instances: (0..n).map(|i| instance(i, meta_bytes)).collect(),
            config_entries: (0..3)
                .map(|i| pb::ConfigEntry {
                    key: format!("app/{i}"),
                    value: vec![1; 100],
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn a_small_snapshot_is_one_part() {
        let s = snapshot(10, 10);
        assert_eq!(snapshot_parts(s.clone(), PART_BYTES), vec![s]);
    }

    #[test]
    fn a_large_snapshot_is_parts_under_the_budget_that_join_to_the_whole() {
        let whole = snapshot(2000, 3000); // about 6 MB
        let parts = snapshot_parts(whole.clone(), PART_BYTES);
        assert!(parts.len() >= 6, "{} parts", parts.len());
        for (i, p) in parts.iter().enumerate() {
            assert!(
                p.encoded_len() <= PART_BYTES,
                "part {i}: {}",
                p.encoded_len()
            );
            assert_eq!(p.more, i + 1 < parts.len(), "part {i}");
        }
        assert_eq!(join_snapshot(parts), whole);
    }

    #[test]
    fn an_item_larger_than_the_budget_is_a_part_of_its_own() {
        let items: Vec<pb::Instance> = vec![instance(0, 10), instance(1, 5000), instance(2, 10)];
        let runs = split_by_size(items.clone(), 1000);
        assert_eq!(runs.iter().map(Vec::len).collect::<Vec<_>>(), [1, 1, 1]);
        assert_eq!(runs.concat(), items);
        assert_eq!(
            split_by_size(Vec::<pb::Instance>::new(), 1000),
            vec![vec![]]
        );
    }
}
