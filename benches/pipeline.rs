//! Per-chunk pipeline costs: chunking, keyed hashing, compress + seal, pack, and the reverse.
//!
//! `cargo bench --bench pipeline`. Inputs are 1 MiB chunks (the default average) of random and of
//! text-like data, so the figures bracket real files.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use floe_engine::format::chunker::{ChunkReader, Chunker, ChunkerParams};
use floe_engine::format::crypto::{MasterKey, NONCE_LEN};
use floe_engine::format::pack::{open_blob, BlobSealer, BlobType, PackEntry, Packer};
use floe_engine::PackId;
use rand::{RngCore, SeedableRng};

const CHUNK: usize = 1 << 20;

fn random(len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    rand::rngs::StdRng::seed_from_u64(1).fill_bytes(&mut v);
    v
}

fn text(len: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(len + 64);
    let mut i = 0u64;
    while v.len() < len {
        v.extend_from_slice(
            format!(
                "{i:08} GET /api/v1/items/{} 200 {}ms\n",
                i * 7919 % 10007,
                i % 97
            )
            .as_bytes(),
        );
        i += 1;
    }
    v.truncate(len);
    v
}

fn bench(c: &mut Criterion) {
    let key = MasterKey::generate();
    for (name, data) in [("random", random(CHUNK)), ("text", text(CHUNK))] {
        let mut g = c.benchmark_group(format!("chunk_1MiB_{name}"));
        g.throughput(Throughput::Bytes(CHUNK as u64));
        g.bench_function("keyed_blake3", |b| {
            b.iter(|| key.blob_id(BlobType::Data, black_box(&data)))
        });
        let mut sealer = BlobSealer::new(3).unwrap();
        let mut buf = Vec::with_capacity(CHUNK + 64);
        g.bench_function("compress_seal", |b| {
            b.iter(|| {
                buf.clear();
                buf.resize(NONCE_LEN, 0);
                buf.extend_from_slice(&data);
                let id = key.blob_id(BlobType::Data, &data);
                let s = sealer.seal(&key, BlobType::Data, id, std::mem::take(&mut buf));
                buf = s.bytes;
            })
        });
        let mut packer = Packer::new(BlobType::Data, 16 << 20);
        g.bench_function("hash_seal_pack", |b| {
            b.iter(|| {
                let id = key.blob_id(BlobType::Data, &data);
                let mut v = Vec::with_capacity(CHUNK + 64);
                v.resize(NONCE_LEN, 0);
                v.extend_from_slice(&data);
                let s = sealer.seal(&key, BlobType::Data, id, v);
                packer.add(&s);
                if packer.is_full() {
                    black_box(packer.finish(&key));
                }
            })
        });
        let mut v = vec![0u8; NONCE_LEN];
        v.extend_from_slice(&data);
        let s = sealer.seal(&key, BlobType::Data, key.blob_id(BlobType::Data, &data), v);
        let entry = PackEntry {
            blob_type: BlobType::Data,
            compressed: s.compressed,
            id: s.id,
            offset: 0,
            length: s.bytes.len() as u32,
            uncompressed_length: s.uncompressed_length,
        };
        g.bench_function("open_verify", |b| {
            b.iter_batched(
                || s.bytes.clone(),
                |sealed| open_blob(&key, &PackId::default(), &entry, sealed).unwrap(),
                BatchSize::LargeInput,
            )
        });
        g.finish();
    }
    let stream = random(64 << 20);
    let chunker = Chunker::new(ChunkerParams::default(), key.chunker_seed()).unwrap();
    let mut g = c.benchmark_group("fastcdc_64MiB_random");
    g.throughput(Throughput::Bytes(stream.len() as u64));
    g.sample_size(10);
    g.bench_function("chunk_stream", |b| {
        b.iter(|| {
            let mut r = ChunkReader::with_buffer(&stream[..], chunker.clone(), Vec::new());
            let mut n = 0;
            while let Some(c) = r.next_chunk().unwrap() {
                n += c.len();
            }
            n
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
