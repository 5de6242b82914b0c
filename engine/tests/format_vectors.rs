//! The test vectors of format-spec/vectors/ decode as the spec says.
//!
//! `cargo test -p floe-engine --test format_vectors -- --ignored regenerate` rewrites them; a
//! change to their bytes is a change to the format and belongs with a format-spec update.

use std::fs;
use std::path::PathBuf;

use floe_engine::format::chunker::ChunkerParams;
use floe_engine::format::config::{Config, FORMAT_VERSION};
use floe_engine::format::crypto::{MasterKey, NONCE_LEN};
use floe_engine::format::key::{KdfParams, KeyFile};
use floe_engine::format::pack::{self, BlobSealer, BlobType, Packer};
use floe_engine::format::sealed::{decode_file, encode_file};
use floe_engine::FileType;
use floe_engine::{BlobId, PackId, RepoId};
use serde_json::{json, Value};

const PASSWORD: &str = "floe-test-vector";

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../format-spec/vectors")
}

fn master() -> MasterKey {
    let mut enc = [0u8; 32];
    let mut id = [0u8; 32];
    for i in 0..32 {
        enc[i] = i as u8;
        id[i] = 0x20 + i as u8;
    }
    MasterKey::from_parts(enc, id)
}

fn compressible() -> Vec<u8> {
    b"floe packs blobs; ".repeat(200)
}

fn raw_blob() -> Vec<u8> {
    (0..64u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect()
}

fn config() -> Config {
    Config {
        version: FORMAT_VERSION,
        id: RepoId::from_bytes([0x42; 32]),
        chunker: ChunkerParams::default(),
        compression_level: 3,
        data_pack_size: 16 << 20,
        tree_pack_size: 4 << 20,
    }
}

fn sealed(key: &MasterKey, sealer: &mut BlobSealer, data: &[u8]) -> pack::SealedBlob {
    let mut buf = vec![0u8; NONCE_LEN];
    buf.extend_from_slice(data);
    sealer.seal(key, BlobType::Data, key.blob_id(BlobType::Data, data), buf)
}

#[test]
#[ignore = "rewrites format-spec/vectors; run by hand when the format changes"]
fn regenerate() {
    let key = master();
    let d = dir();
    fs::create_dir_all(&d).unwrap();
    let params = KdfParams {
        memory_kib: 1024,
        iterations: 1,
        parallelism: 1,
    };
    let created = chrono::DateTime::parse_from_rfc3339("2026-11-23T12:00:00+01:00").unwrap();
    let kf = KeyFile::create_with_salt(
        &key,
        PASSWORD.as_bytes(),
        params,
        &[0x5a; 32],
        created,
        "vector-host".into(),
        "vector-user".into(),
    )
    .unwrap();
    fs::write(d.join("key.json"), serde_json::to_vec_pretty(&kf).unwrap()).unwrap();

    let mut sealer = BlobSealer::new(3).unwrap();
    let hello = b"hello, floe\n";
    let blob = sealed(&key, &mut sealer, hello);
    fs::write(d.join("blob.bin"), &blob.bytes).unwrap();

    let mut packer = Packer::new(BlobType::Data, 1 << 20);
    packer.add(&sealed(&key, &mut sealer, &compressible()));
    packer.add(&sealed(&key, &mut sealer, &raw_blob()));
    let p = packer.finish(&key);
    fs::write(d.join("pack.bin"), &p.bytes).unwrap();

    let cfg = encode_file(&key, 3, FileType::Config, &config()).unwrap();
    fs::write(d.join("config.bin"), &cfg).unwrap();

    let entries: Vec<Value> = p
        .entries
        .iter()
        .map(|e| {
            json!({"id": e.id.to_hex(), "type": "data", "compressed": e.compressed, "offset": e.offset,
                   "length": e.length, "uncompressed_length": e.uncompressed_length})
        })
        .collect();
    let v = json!({
        "password": PASSWORD,
        "master_key": {"encryption": hex::encode(key.encryption_key()), "id": hex::encode(key.id_key())},
        "chunker_seed": key.chunker_seed(),
        "key_file": {"file": "key.json", "id": blake3::hash(&fs::read(d.join("key.json")).unwrap()).to_hex().to_string()},
        "blob": {"file": "blob.bin", "type": "data", "id": blob.id.to_hex(), "plaintext_hex": hex::encode(hello), "compressed": false},
        "pack": {"file": "pack.bin", "id": p.id.to_hex(), "type": "data", "entries": entries,
                 "plaintexts_hex": [hex::encode(compressible()), hex::encode(raw_blob())]},
        "config": {"file": "config.bin", "value": serde_json::to_value(config()).unwrap()},
    });
    fs::write(
        d.join("vectors.json"),
        serde_json::to_vec_pretty(&v).unwrap(),
    )
    .unwrap();
}

fn vectors() -> Value {
    serde_json::from_slice(
        &fs::read(dir().join("vectors.json")).expect("format-spec/vectors/vectors.json"),
    )
    .unwrap()
}

fn read(name: &str) -> Vec<u8> {
    fs::read(dir().join(name)).unwrap()
}

#[test]
fn key_file_opens_with_the_vector_password_only() {
    let v = vectors();
    let bytes = read("key.json");
    assert_eq!(blake3::hash(&bytes).to_hex().as_str(), v["key_file"]["id"]);
    let kf: KeyFile = serde_json::from_slice(&bytes).unwrap();
    let key = kf
        .open(PASSWORD.as_bytes())
        .unwrap()
        .expect("vector password opens the key file");
    assert_eq!(
        hex::encode(key.encryption_key()),
        v["master_key"]["encryption"]
    );
    assert_eq!(hex::encode(key.id_key()), v["master_key"]["id"]);
    assert!(kf.open(b"floe-test-vectors").unwrap().is_none());
}

#[test]
fn chunker_seed_derives_from_the_id_key() {
    assert_eq!(
        master().chunker_seed(),
        vectors()["chunker_seed"].as_u64().unwrap()
    );
}

#[test]
fn blob_opens_to_its_plaintext_and_id() {
    let v = vectors();
    let key = master();
    let id: BlobId = v["blob"]["id"].as_str().unwrap().parse().unwrap();
    let plain = hex::decode(v["blob"]["plaintext_hex"].as_str().unwrap()).unwrap();
    assert_eq!(
        key.blob_id(BlobType::Data, &plain),
        id,
        "blob id is keyed BLAKE3 of the plaintext"
    );
    let bytes = read("blob.bin");
    let entry = pack::PackEntry {
        blob_type: BlobType::Data,
        compressed: false,
        id,
        offset: 0,
        length: bytes.len() as u32,
        uncompressed_length: plain.len() as u32,
    };
    assert_eq!(
        pack::open_blob(&key, &PackId::default(), &entry, bytes.clone()).unwrap(),
        plain
    );
    // Relabelled as a tree blob, it fails authentication.
    let as_tree = pack::PackEntry {
        blob_type: BlobType::Tree,
        ..entry
    };
    assert!(pack::open_blob(&key, &PackId::default(), &as_tree, bytes)
        .unwrap_err()
        .is_corruption());
}

#[test]
fn pack_header_and_blobs_decode() {
    let v = vectors();
    let key = master();
    let bytes = read("pack.bin");
    let id: PackId = v["pack"]["id"].as_str().unwrap().parse().unwrap();
    assert_eq!(
        PackId::hash_of(&bytes),
        id,
        "pack id is BLAKE3 of the pack bytes"
    );
    let entries = pack::parse_pack(&key, &id, BlobType::Data, &bytes).unwrap();
    let want = v["pack"]["entries"].as_array().unwrap();
    assert_eq!(entries.len(), want.len());
    assert!(entries[0].compressed && !entries[1].compressed);
    for ((e, w), plain) in entries
        .iter()
        .zip(want)
        .zip(v["pack"]["plaintexts_hex"].as_array().unwrap())
    {
        assert_eq!(e.id.to_hex(), w["id"]);
        assert_eq!(e.offset as u64, w["offset"].as_u64().unwrap());
        assert_eq!(e.length as u64, w["length"].as_u64().unwrap());
        assert_eq!(
            e.uncompressed_length as u64,
            w["uncompressed_length"].as_u64().unwrap()
        );
        let sealed = bytes[e.offset as usize..(e.offset + e.length) as usize].to_vec();
        assert_eq!(
            pack::open_blob(&key, &id, e, sealed).unwrap(),
            hex::decode(plain.as_str().unwrap()).unwrap()
        );
    }
}

#[test]
fn config_decodes() {
    let v = vectors();
    let cfg: Config =
        decode_file(&master(), FileType::Config, &[0; 32], read("config.bin")).unwrap();
    assert_eq!(serde_json::to_value(&cfg).unwrap(), v["config"]["value"]);
    assert_eq!(cfg, config());
    // The same bytes do not open as another kind of file.
    assert!(
        decode_file::<Config>(&master(), FileType::Snapshot, &[0; 32], read("config.bin")).is_err()
    );
}
