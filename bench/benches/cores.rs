//! Criterion micro-benchmarks of Herald's hot pure cores: hashing a recipient to its slot and
//! shard, rendezvous placement, and the shard key layout.
//!
//! Short run (what the docs quote):
//!   bash .ci/cargo bench -p herald-bench --bench cores -- --warm-up-time 1 --measurement-time 2
//! `cargo test --benches` runs every benchmark once as a smoke test.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use herald_shard::{keys, rendezvous_replicas, shard_of_slot, slot_of, USERS_COLLECTION};

const SHARDS: u32 = 64;
const NODES: [u64; 5] = [1, 2, 3, 4, 5];
const REPLICAS: usize = 3;

fn hashing(c: &mut Criterion) {
    c.bench_function("slot_of user-123456", |b| {
        b.iter(|| slot_of(black_box("user-123456")))
    });
    c.bench_function("shard_of_slot 64 shards", |b| {
        b.iter(|| shard_of_slot(black_box(2741), black_box(SHARDS)))
    });
    c.bench_function("slot_of + shard_of_slot", |b| {
        b.iter(|| shard_of_slot(slot_of(black_box("user-123456")), SHARDS))
    });
}

fn placement(c: &mut Criterion) {
    c.bench_function("rendezvous_replicas 1 shard, 3 of 5", |b| {
        b.iter(|| rendezvous_replicas(black_box(17), black_box(&NODES), REPLICAS))
    });
    c.bench_function("rendezvous_replicas all 64 shards, 3 of 5", |b| {
        b.iter(|| {
            for shard in 0..SHARDS {
                black_box(rendezvous_replicas(shard, black_box(&NODES), REPLICAS));
            }
        })
    });
}

fn key_layout(c: &mut Criterion) {
    let id = "user-123456";
    let recipient = keys::recipient(USERS_COLLECTION, id).unwrap();
    let channel = keys::channel_data(USERS_COLLECTION, id, "9f3c1a52-7d0b-4c1e").unwrap();
    let preference = keys::preference_set(USERS_COLLECTION, id, "default").unwrap();
    let index = keys::collection_index(USERS_COLLECTION, 1_700_000_000_000, id).unwrap();
    let count = keys::encode_count(42);

    let mut g = c.benchmark_group("keys");
    g.bench_function("recipient encode", |b| {
        b.iter(|| keys::recipient(black_box(USERS_COLLECTION), black_box(id)))
    });
    g.bench_function("recipient decode", |b| {
        b.iter(|| keys::decode_recipient(black_box(&recipient)))
    });
    g.bench_function("channel_data encode", |b| {
        b.iter(|| keys::channel_data(black_box(USERS_COLLECTION), black_box(id), "9f3c1a52"))
    });
    g.bench_function("channel_data decode", |b| {
        b.iter(|| keys::decode_channel_data(black_box(&channel)))
    });
    g.bench_function("preference_set encode", |b| {
        b.iter(|| keys::preference_set(black_box(USERS_COLLECTION), black_box(id), "default"))
    });
    g.bench_function("preference_set decode", |b| {
        b.iter(|| keys::decode_preference_set(black_box(&preference)))
    });
    g.bench_function("collection_index encode", |b| {
        b.iter(|| {
            keys::collection_index(
                black_box(USERS_COLLECTION),
                black_box(1_700_000_000_000),
                black_box(id),
            )
        })
    });
    g.bench_function("collection_index decode", |b| {
        b.iter(|| keys::decode_collection_index(black_box(&index)))
    });
    g.bench_function("count encode", |b| {
        b.iter(|| keys::encode_count(black_box(42)))
    });
    g.bench_function("count decode", |b| {
        b.iter(|| keys::decode_count(black_box(&count)))
    });
    g.finish();
}

criterion_group!(benches, hashing, placement, key_layout);
criterion_main!(benches);
