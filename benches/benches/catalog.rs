//! Catalog micro-benchmarks: `Catalog::apply` of a Register, `Catalog::digest` and
//! `Catalog::service_records` on a catalog of 10,000 instances in 100 services, the
//! state-machine costs that every write, every `Cluster.Status` call and every
//! `ListInstances` / DNS answer pays (apply and digest run under the catalog lock).

mod common;

use std::time::{Duration, Instant};

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use waymark_registry::catalog::Catalog;
use waymark_registry::model::Command;

const SERVICES: usize = 100;
const PER_SERVICE: usize = 100;
/// New registrations applied per timed chunk before they are deregistered again
/// (untimed), so the catalog stays between 10,000 and 10,100 instances.
const CHUNK: u64 = 100;

fn service(s: usize) -> String {
    format!("svc-{s:03}")
}

fn register(service: &str, id: &str, n: usize) -> Command {
    Command::Register(common::new_instance(service, id, n as u32))
}

/// 10,000 instances (`svc-000`..`svc-099` × `i-000`..`i-099`), one entry each; and
/// the next free log index.
fn catalog_10k() -> (Catalog, u64) {
    let mut catalog = Catalog::default();
    let mut index = 0;
    for s in 0..SERVICES {
        for i in 0..PER_SERVICE {
            index += 1;
            catalog.apply(
                index,
                &register(&service(s), &format!("i-{i:03}"), s * PER_SERVICE + i),
            );
        }
    }
    assert_eq!(catalog.instance_count(), SERVICES * PER_SERVICE);
    (catalog, index + 1)
}

fn apply_register(c: &mut Criterion) {
    let mut group = c.benchmark_group("catalog/apply_register_10k");
    group.throughput(Throughput::Elements(1));

    // Re-registering an existing instance: the catalog keeps its size, so one catalog
    // serves every iteration. Cycles through all 10,000 ids (not one hot key).
    let (mut catalog, mut index) = catalog_10k();
    let existing: Vec<Command> = (0..SERVICES * PER_SERVICE)
        .map(|n| {
            let (s, i) = (n % SERVICES, n / SERVICES);
            register(&service(s), &format!("i-{i:03}"), n)
        })
        .collect();
    let mut next = 0;
    group.bench_function("existing_id", |b| {
        b.iter(|| {
            let cmd = &existing[next];
            next = (next + 1) % existing.len();
            index += 1;
            black_box(catalog.apply(index, black_box(cmd)))
        })
    });

    // A new id: timed in chunks of CHUNK registrations (spread over the services),
    // each chunk deregistered again untimed so the catalog does not grow.
    let (mut catalog, mut index) = catalog_10k();
    let fresh: Vec<(Command, Command)> = (0..CHUNK as usize)
        .map(|n| {
            let (svc, id) = (service(n % SERVICES), format!("new-{n:03}"));
            let dereg = Command::Deregister {
                service: svc.clone(),
                id: id.clone(),
            };
            (register(&svc, &id, 100_000 + n), dereg)
        })
        .collect();
    group.bench_function("new_id", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut left = iters;
            while left > 0 {
                let n = left.min(CHUNK) as usize;
                let start = Instant::now();
                for (reg, _) in &fresh[..n] {
                    index += 1;
                    black_box(catalog.apply(index, black_box(reg)));
                }
                total += start.elapsed();
                for (_, dereg) in &fresh[..n] {
                    index += 1;
                    catalog.apply(index, dereg);
                }
                left -= n as u64;
            }
            total
        })
    });

    group.finish();
}

fn digest(c: &mut Criterion) {
    let (catalog, _) = catalog_10k();
    let mut group = c.benchmark_group("catalog/digest_10k");
    group.throughput(Throughput::Elements(catalog.instance_count() as u64));
    group.sample_size(20);
    group.bench_function("digest", |b| b.iter(|| black_box(&catalog).digest()));
    group.finish();
}

fn service_records(c: &mut Criterion) {
    let (catalog, _) = catalog_10k();
    let svc = service(SERVICES / 2);
    let mut group = c.benchmark_group("catalog/service_100_of_10k");
    group.throughput(Throughput::Elements(PER_SERVICE as u64));
    group.bench_function("service_records", |b| {
        b.iter(|| {
            let mut n = 0usize;
            for r in black_box(&catalog).service_records(black_box(&svc)) {
                n += black_box(r).port as usize;
            }
            n
        })
    });
    // For comparison: the copying variant (`Catalog::instances`).
    group.bench_function("instances_cloned", |b| {
        b.iter(|| black_box(&catalog).instances(black_box(&svc)))
    });
    group.finish();
}

criterion_group!(benches, apply_register, digest, service_records);
criterion_main!(benches);
