//! The exact bytes a format-3 data dir holds for each shape it stores (log entries of
//! every payload kind, the vote, log ids, membership, snapshot metadata, a catalog
//! record), pinned. A change that alters any of them — our types, `rmp-serde`, or
//! openraft's serde shapes (an openraft upgrade) — fails here, and must either keep
//! the bytes or bump `format::CURRENT` with a way for old dirs to be refused.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;

use openraft::EntryPayload;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::codec;
use crate::model::{Command, NewInstance};
use crate::raft_types::{log_id, Entry, Member, Membership, SnapshotMeta, StoredMembership, Vote};

/// Asserts `value` encodes to exactly `golden` (hex) and `golden` decodes to `value`.
fn pinned<T: Serialize + DeserializeOwned + PartialEq + Debug>(
    what: &str,
    value: &T,
    golden: &str,
) {
    let bytes = codec::to_vec(value).unwrap();
    assert_eq!(
        hex::encode(&bytes),
        golden,
        "{what}: the stored bytes changed (see this file's header)"
    );
    let decoded: T = codec::from_slice(&hex::decode(golden).unwrap()).unwrap();
    assert_eq!(
        &decoded, value,
        "{what}: the stored bytes no longer decode to the value"
    );
}

fn membership() -> Membership {
    let member = |i: u64| Member {
        api_addr: format!("127.0.0.1:850{i}"),
        raft_addr: format!("127.0.0.1:830{i}"),
    };
    let nodes: BTreeMap<u64, Member> = (1..=3).map(|i| (i, member(i))).collect();
    Membership::new(vec![BTreeSet::from([1, 2, 3])], nodes).unwrap()
}

fn entry(payload: EntryPayload<Command, u64, Member>) -> Entry {
    Entry {
        log_id: log_id(3, 2, 42),
        payload,
    }
}

#[test]
fn log_ids_and_votes_keep_their_bytes() {
    pinned("log id", &log_id(3, 2, 42), GOLDEN_LOG_ID);
    pinned(
        "committed vote",
        &Vote::new_committed(3, 2),
        GOLDEN_VOTE_COMMITTED,
    );
    pinned(
        "uncommitted vote",
        &Vote::new(4, 1),
        GOLDEN_VOTE_UNCOMMITTED,
    );
}

#[test]
fn log_entries_of_every_payload_kind_keep_their_bytes() {
    let register = Command::Register(NewInstance::example("web", "web-1", 8080));
    pinned(
        "blank entry",
        &entry(EntryPayload::Blank),
        GOLDEN_ENTRY_BLANK,
    );
    pinned(
        "command entry",
        &entry(EntryPayload::Normal(register.clone())),
        GOLDEN_ENTRY_COMMAND,
    );
    let batch = Command::Batch(
        vec![
            register,
            Command::Deregister {
                service: "web".into(),
                id: "web-2".into(),
            },
        ]
        .into(),
    );
    pinned(
        "batch entry",
        &entry(EntryPayload::Normal(batch)),
        GOLDEN_ENTRY_BATCH,
    );
    pinned(
        "membership entry",
        &entry(EntryPayload::Membership(membership())),
        GOLDEN_ENTRY_MEMBERSHIP,
    );
}

#[test]
fn membership_and_snapshot_metadata_keep_their_bytes() {
    let stored = StoredMembership::new(Some(log_id(1, 1, 1)), membership());
    pinned("stored membership", &stored, GOLDEN_STORED_MEMBERSHIP);
    let meta = SnapshotMeta {
        last_log_id: Some(log_id(3, 2, 42)),
        last_membership: stored,
    };
    pinned("snapshot meta", &meta, GOLDEN_SNAPSHOT_META);
    // Images written by openraft 0.9 carry a snapshot id in their metadata: read, and
    // ignored.
    let old: SnapshotMeta =
        codec::from_slice(&hex::decode(GOLDEN_SNAPSHOT_META_WITH_ID).unwrap()).unwrap();
    assert_eq!(old, meta);
}

#[test]
fn catalog_records_keep_their_bytes() {
    let record = NewInstance::example("web", "web-1", 8080).record(5, 7);
    pinned("instance record", &record, GOLDEN_INSTANCE_RECORD);
}

const GOLDEN_ENTRY_BLANK: &str =
    "82a66c6f675f696482a96c65616465725f696482a47465726d03a76e6f64655f696402a5696e6465782aa77061796c6f6164a5426c616e6b";
const GOLDEN_ENTRY_COMMAND: &str =
    "82a66c6f675f696482a96c65616465725f696482a47465726d03a76e6f64655f696402a5696e6465782aa77061796c6f616481a64e6f726d616c81a852656769737465728ba773657276696365a3776562a26964a57765622d31a761646472657373a831302e302e302e31a4706f7274cd1f90a47461677391a27631a46d65746180ae7765696768745f70617373696e6701ae7765696768745f7761726e696e6701a86c656173655f6964c0af6f6e5f6c656173655f657870697279a652656d6f7665bc646572656769737465725f637269746963616c5f61667465725f6d7300";
const GOLDEN_INSTANCE_RECORD: &str =
    "8fa773657276696365a3776562a26964a57765622d31a761646472657373a831302e302e302e31a4706f7274cd1f90a47461677391a27631a46d65746180ae7765696768745f70617373696e6701ae7765696768745f7761726e696e6701a66865616c7468a750617373696e67ad6865616c74685f6f7574707574a0ac6372656174655f696e64657805ac6d6f646966795f696e64657807a86c656173655f6964c0af6f6e5f6c656173655f657870697279a652656d6f7665bc646572656769737465725f637269746963616c5f61667465725f6d7300";
const GOLDEN_ENTRY_BATCH: &str =
    "82a66c6f675f696482a96c65616465725f696482a47465726d03a76e6f64655f696402a5696e6465782aa77061796c6f616481a64e6f726d616c81a542617463689281a852656769737465728ba773657276696365a3776562a26964a57765622d31a761646472657373a831302e302e302e31a4706f7274cd1f90a47461677391a27631a46d65746180ae7765696768745f70617373696e6701ae7765696768745f7761726e696e6701a86c656173655f6964c0af6f6e5f6c656173655f657870697279a652656d6f7665bc646572656769737465725f637269746963616c5f61667465725f6d730081aa4465726567697374657282a773657276696365a3776562a26964a57765622d32";
const GOLDEN_LOG_ID: &str = "82a96c65616465725f696482a47465726d03a76e6f64655f696402a5696e6465782a";
const GOLDEN_ENTRY_MEMBERSHIP: &str =
    "82a66c6f675f696482a96c65616465725f696482a47465726d03a76e6f64655f696402a5696e6465782aa77061796c6f616481aa4d656d6265727368697082a7636f6e666967739193010203a56e6f646573830182a86170695f61646472ae3132372e302e302e313a38353031a9726166745f61646472ae3132372e302e302e313a383330310282a86170695f61646472ae3132372e302e302e313a38353032a9726166745f61646472ae3132372e302e302e313a383330320382a86170695f61646472ae3132372e302e302e313a38353033a9726166745f61646472ae3132372e302e302e313a38333033";
const GOLDEN_VOTE_COMMITTED: &str =
    "82a96c65616465725f696482a47465726d03a76e6f64655f696402a9636f6d6d6974746564c3";
const GOLDEN_VOTE_UNCOMMITTED: &str =
    "82a96c65616465725f696482a47465726d04a76e6f64655f696401a9636f6d6d6974746564c2";
const GOLDEN_STORED_MEMBERSHIP: &str =
    "82a66c6f675f696482a96c65616465725f696482a47465726d01a76e6f64655f696401a5696e64657801aa6d656d6265727368697082a7636f6e666967739193010203a56e6f646573830182a86170695f61646472ae3132372e302e302e313a38353031a9726166745f61646472ae3132372e302e302e313a383330310282a86170695f61646472ae3132372e302e302e313a38353032a9726166745f61646472ae3132372e302e302e313a383330320382a86170695f61646472ae3132372e302e302e313a38353033a9726166745f61646472ae3132372e302e302e313a38333033";
const GOLDEN_SNAPSHOT_META: &str =
    "83ab6c6173745f6c6f675f696482a96c65616465725f696482a47465726d03a76e6f64655f696402a5696e6465782aaf6c6173745f6d656d6265727368697082a66c6f675f696482a96c65616465725f696482a47465726d01a76e6f64655f696401a5696e64657801aa6d656d6265727368697082a7636f6e666967739193010203a56e6f646573830182a86170695f61646472ae3132372e302e302e313a38353031a9726166745f61646472ae3132372e302e302e313a383330310282a86170695f61646472ae3132372e302e302e313a38353032a9726166745f61646472ae3132372e302e302e313a383330320382a86170695f61646472ae3132372e302e302e313a38353033a9726166745f61646472ae3132372e302e302e313a38333033ab736e617073686f745f6964a0";
const GOLDEN_SNAPSHOT_META_WITH_ID: &str =
    "83ab6c6173745f6c6f675f696482a96c65616465725f696482a47465726d03a76e6f64655f696402a5696e6465782aaf6c6173745f6d656d6265727368697082a66c6f675f696482a96c65616465725f696482a47465726d01a76e6f64655f696401a5696e64657801aa6d656d6265727368697082a7636f6e666967739193010203a56e6f646573830182a86170695f61646472ae3132372e302e302e313a38353031a9726166745f61646472ae3132372e302e302e313a383330310282a86170695f61646472ae3132372e302e302e313a38353032a9726166745f61646472ae3132372e302e302e313a383330320382a86170695f61646472ae3132372e302e302e313a38353033a9726166745f61646472ae3132372e302e302e313a38333033ab736e617073686f745f6964a8332d322d34322d31";
