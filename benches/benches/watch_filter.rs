//! Watch fan-out micro-benchmarks: what every watch stream pays for every change
//! today (`WatchFilter::map`, which converts the record with `convert::instance`, then
//! prost-encoding its own `pb::WatchResponse`), the per-watcher cost that encoding a
//! change once for all watchers would remove.

mod common;

use std::collections::BTreeSet;

use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use prost::Message;
use waymark_proto::{pb, InstanceSelection, WatchSelection};
use waymark_registry::acl::Authorizer;
use waymark_registry::api::convert;
use waymark_registry::api::watch_stream::WatchFilter;
use waymark_registry::model::{Change, InstanceRecord, RecordChange};

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

/// The Changes message a stream sends for one index holding these changes.
fn changes_response(changes: Vec<pb::RecordChange>) -> pb::WatchResponse {
    pb::WatchResponse {
        index: INDEX,
        event: Some(pb::watch_response::Event::Changes(pb::WatchChanges {
            changes,
        })),
    }
}

fn map(c: &mut Criterion) {
    let filter = one_service_watcher();
    let hit = put("svc-050");
    let miss = put("svc-051");
    assert!(filter.map(&hit).is_some() && filter.map(&miss).is_none());

    let mut group = c.benchmark_group("watch_filter/map_one_service");
    group.throughput(Throughput::Elements(1));
    group.bench_function("match", |b| {
        b.iter(|| black_box(&filter).map(black_box(&hit)))
    });
    group.bench_function("miss", |b| {
        b.iter(|| black_box(&filter).map(black_box(&miss)))
    });
    group.finish();
}

fn encode(c: &mut Criterion) {
    let r = record("svc-050");
    let upsert = |i: pb::Instance| pb::RecordChange {
        change: Some(pb::record_change::Change::Upsert(i)),
    };
    let response = changes_response(vec![upsert(convert::instance(&r))]);
    let encoded_len = response.encoded_len() as u64;

    let mut group = c.benchmark_group("watch_filter/encode");
    group.throughput(Throughput::Elements(1));
    group.bench_function("convert_instance", |b| {
        b.iter(|| convert::instance(black_box(&r)))
    });

    group.throughput(Throughput::Bytes(encoded_len));
    group.bench_function("encode_to_vec_watch_response", |b| {
        b.iter(|| black_box(&response).encode_to_vec())
    });
    // Wrapping a converted instance consumes it: a fresh one per call, untimed.
    group.bench_function("wrap_and_encode", |b| {
        b.iter_batched(
            || convert::instance(&r),
            |i| changes_response(vec![upsert(i)]).encode_to_vec(),
            BatchSize::SmallInput,
        )
    });
    group.finish();

    // Everything one matching watcher costs per change today, from the hub's Change
    // to the bytes on its stream: map (with the conversion), wrap, encode.
    let filter = one_service_watcher();
    let change = put("svc-050");
    let mut group = c.benchmark_group("watch_filter/per_watcher");
    group.throughput(Throughput::Elements(1));
    group.bench_function("map_wrap_encode", |b| {
        b.iter(|| {
            black_box(&filter)
                .map(black_box(&change))
                .map(|rc| changes_response(vec![rc]).encode_to_vec())
        })
    });
    group.finish();
}

criterion_group!(benches, map, encode);
criterion_main!(benches);
