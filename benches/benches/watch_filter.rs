//! Watch fan-out micro-benchmarks: what every watch stream pays for every change
//! (`WatchFilter::form`, then `changes_frame`: the bytes of a message already assembled
//! for another watcher of the same selection), beside what is paid once per change per
//! node (`convert::instance` and prost encoding), which each watcher paid itself
//! before changes were encoded once.

mod common;

use std::collections::BTreeSet;

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use prost::Message;
use waymark_proto::{pb, InstanceSelection, WatchSelection};
use waymark_registry::acl::Authorizer;
use waymark_registry::api::convert;
use waymark_registry::api::watch_stream::WatchFilter;
use waymark_registry::metrics::Metrics;
use waymark_registry::model::{Change, InstanceRecord, RecordChange};
use waymark_registry::watch::encoded::Form;
use waymark_registry::watch::hub::IndexChanges;

const INDEX: u64 = 10_001;

fn record(service: &str) -> InstanceRecord {
    common::new_instance(service, "i-042", 42).record(5_042, INDEX)
}

fn put(service: &str) -> Change {
    RecordChange::Put(record(service)).into()
}

/// A watcher of one service (`svc-050`), all instances (not passing-only): the
/// commonest watch, a client following the service it calls (ACLs off).
fn one_service_watcher() -> WatchFilter {
    WatchFilter::new(
        WatchSelection {
            instances: vec![InstanceSelection {
                services: Some(BTreeSet::from(["svc-050".to_string()])),
                passing_only: false,
            }],
            ..WatchSelection::default()
        },
        Authorizer::everything(),
    )
}

fn form(c: &mut Criterion) {
    let filter = one_service_watcher();
    let hit = put("svc-050");
    let miss = put("svc-051");
    assert_eq!(
        (filter.form(&hit), filter.form(&miss)),
        (Form::Shown, Form::Skipped)
    );
    let mut group = c.benchmark_group("watch_filter/form_one_service");
    group.throughput(Throughput::Elements(1));
    group.bench_function("match", |b| {
        b.iter(|| black_box(&filter).form(black_box(&hit)))
    });
    group.bench_function("miss", |b| {
        b.iter(|| black_box(&filter).form(black_box(&miss)))
    });
    group.finish();
}

fn per_watcher(c: &mut Criterion) {
    // Everything one matching watcher costs per change, from the hub's entry to the
    // bytes for its stream, once another watcher has encoded the change.
    let filter = one_service_watcher();
    let metrics = Metrics::default();
    let entry = IndexChanges::new(INDEX, vec![put("svc-050")]);
    let mut forms = Vec::new();
    assert!(filter.changes_frame(&entry, &mut forms, &metrics).is_some());
    let mut group = c.benchmark_group("watch_filter/per_watcher");
    group.throughput(Throughput::Elements(1));
    group.bench_function("form_and_shared_bytes", |b| {
        b.iter(|| black_box(&filter).changes_frame(black_box(&entry), &mut forms, &metrics))
    });
    group.finish();
}

fn once_per_change(c: &mut Criterion) {
    let r = record("svc-050");
    let response = pb::WatchResponse {
        index: INDEX,
        event: Some(pb::watch_response::Event::Changes(pb::WatchChanges {
            changes: vec![pb::RecordChange {
                change: Some(pb::record_change::Change::Upsert(convert::instance(&r))),
            }],
        })),
    };
    let mut group = c.benchmark_group("watch_filter/once_per_change");
    group.throughput(Throughput::Elements(1));
    group.bench_function("convert_instance", |b| {
        b.iter(|| convert::instance(black_box(&r)))
    });
    group.throughput(Throughput::Bytes(response.encoded_len() as u64));
    group.bench_function("encode_to_vec_watch_response", |b| {
        b.iter(|| black_box(&response).encode_to_vec())
    });
    group.finish();
}

criterion_group!(benches, form, per_watcher, once_per_change);
criterion_main!(benches);
