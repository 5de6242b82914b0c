//! The in-memory index at ten million blobs: bytes per blob, build time, lookups.
//!
//! `cargo bench --bench index`. Blob ids are random, 16 to a pack (a 16 MiB data pack of 1 MiB
//! chunks). The memory and build figures are printed once; criterion then measures building the
//! index, and lookups of ids it holds and of ids it does not.

use std::hint::black_box;
use std::time::Instant;

use criterion::{criterion_group, criterion_main, Criterion};
use floe_engine::format::pack::{BlobType, PackEntry};
use floe_engine::{BlobId, Index, PackId};
use rand::{RngCore, SeedableRng};

const BLOBS: usize = 10_000_000;
const PER_PACK: usize = 16;

fn random_ids(seed: u64, n: usize) -> Vec<BlobId> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            let mut b = [0u8; 32];
            rng.fill_bytes(&mut b);
            BlobId::from_bytes(b)
        })
        .collect()
}

fn build(ids: &[BlobId]) -> Index {
    let mut index = Index::new();
    let mut entries = Vec::with_capacity(PER_PACK);
    for (n, pack) in ids.chunks(PER_PACK).enumerate() {
        entries.clear();
        let mut offset = 0;
        for id in pack {
            entries.push(PackEntry {
                blob_type: BlobType::Data,
                compressed: true,
                id: *id,
                offset,
                length: 700_000,
                uncompressed_length: 1 << 20,
            });
            offset += 700_000;
        }
        let mut pack_id = [0u8; 32];
        pack_id[..8].copy_from_slice(&(n as u64).to_le_bytes());
        index.add_pack(PackId::from_bytes(pack_id), BlobType::Data, &entries);
    }
    index.finish();
    index
}

fn bench(c: &mut Criterion) {
    let ids = random_ids(1, BLOBS);
    let absent = random_ids(2, 1 << 16);
    let started = Instant::now();
    let index = build(&ids);
    let took = started.elapsed();
    let bytes = index.heap_bytes();
    println!(
        "index: {} blobs in {} packs: {:.1} bytes per blob ({:.0} MiB), built in {:.2} s",
        index.len(),
        index.pack_count(),
        bytes as f64 / index.len() as f64,
        bytes as f64 / (1 << 20) as f64,
        took.as_secs_f64()
    );
    let mut lookups = c.benchmark_group("index of 10M blobs");
    let mut i = 0usize;
    lookups.bench_function("lookup, present", |b| {
        b.iter(|| {
            i = (i + 7919) % BLOBS;
            black_box(index.get(&ids[i]))
        })
    });
    let mut j = 0usize;
    lookups.bench_function("lookup, absent", |b| {
        b.iter(|| {
            j = (j + 1) % absent.len();
            black_box(index.contains(&absent[j]))
        })
    });
    lookups.sample_size(10);
    lookups.bench_function("build", |b| b.iter(|| black_box(build(&ids).len())));
    lookups.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
