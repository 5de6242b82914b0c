//! The test vectors of format-spec/vectors/ decode as the spec says.
//!
//! `cargo test -p floe-engine --test format_vectors -- --ignored regenerate` rewrites the
//! version 1 set and `regenerate_v2` the files version 2 added; a change to their bytes is a
//! change to the format and belongs with a format-spec update. Envelopes take random nonces, so
//! regenerating changes bytes even when nothing else changed: regenerate only what changed.

use std::fs;
use std::path::PathBuf;

use floe_engine::format::chunker::Chunker;
use floe_engine::format::chunker::ChunkerParams;
use floe_engine::format::config::Config;
use floe_engine::format::crypto::{MasterKey, NONCE_LEN};
use floe_engine::format::key::{KdfParams, KeyFile};
use floe_engine::format::pack::{self, BlobSealer, BlobType, Packer};
use floe_engine::format::sealed::{decode_file, encode_file};
use floe_engine::format::tree::{ByteString, Node, NodeKind, Tree, Xattr};
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

/// The version 1 config of `config.bin`: no seed member, the seed derives from the id key.
fn config() -> Config {
    Config {
        version: 1,
        id: RepoId::from_bytes([0x42; 32]),
        chunker: ChunkerParams::default(),
        chunker_seed: None,
        compression_level: 3,
        data_pack_size: 16 << 20,
        tree_pack_size: 4 << 20,
        object_lock: None,
        unknown: Default::default(),
    }
}

/// The version 2 config of `config-v2-lock.bin`: a repository with S3 Object Lock.
fn config_v2_lock() -> Config {
    Config {
        object_lock: Some(floe_engine::Retention {
            mode: floe_engine::RetentionMode::Governance,
            days: 30,
        }),
        ..config_v2()
    }
}

/// The version 2 config of `config-v2.bin`.
fn config_v2() -> Config {
    Config {
        version: 2,
        chunker_seed: Some(0x8000_0000_0000_0001),
        ..config()
    }
}

/// The tree of `tree-pack.bin`: a file with attributes (binary, empty, text) and a folder
/// with an ACL-like binary attribute, and a symlink with none.
fn tree_v2() -> Tree {
    let t = |s: i64, n: u32| chrono::DateTime::from_timestamp(s, n).unwrap();
    let x = |name: &[u8], value: &[u8]| Xattr {
        name: ByteString(name.to_vec()),
        value: ByteString(value.to_vec()),
    };
    let base = |name: &str, kind: NodeKind| Node {
        name: ByteString(name.as_bytes().to_vec()),
        kind,
        mode: 0o644,
        uid: 1000,
        gid: 1000,
        user: Some("ann".into()),
        group: Some("ann".into()),
        mtime: t(1_795_000_000, 123_456_789),
        ctime: t(1_795_000_000, 123_456_789),
        inode: 1_835_113,
        device_id: 64_769,
        links: 1,
        size: 0,
        content: None,
        subtree: None,
        link_target: None,
        rdev: None,
        xattrs: Vec::new(),
    };
    let mut file = base("ping", NodeKind::File);
    file.mode = 0o755;
    file.size = 12;
    file.content = Some(vec![master().blob_id(BlobType::Data, b"hello, floe\n")]);
    file.xattrs = vec![
        x(
            b"security.capability",
            &[
                1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
            ],
        ),
        x(b"user.empty", b""),
        x(b"user.note", b"checked \xe2\x9c\x93"),
    ];
    let mut dir = base("shared", NodeKind::Dir);
    dir.mode = 0o2775;
    dir.links = 2;
    dir.subtree = Some(master().blob_id(BlobType::Tree, br#"{"nodes":[]}"#));
    dir.xattrs = vec![x(
        b"system.posix_acl_default",
        &[
            2, 0, 0, 0, 1, 0, 7, 0, 0xff, 0xff, 0xff, 0xff, 4, 0, 5, 0, 0xff, 0xff, 0xff, 0xff,
            0x20, 0, 5, 0, 0xff, 0xff, 0xff, 0xff,
        ],
    )];
    let mut link = base("to-ping", NodeKind::Symlink);
    link.mode = 0o777;
    link.link_target = Some(ByteString(b"ping".to_vec()));
    Tree {
        nodes: vec![file, dir, link],
    }
}

/// The chunking vectors: (name, parameters, seed, input length, generator state).
fn chunking_cases() -> Vec<(&'static str, ChunkerParams, u64, usize, u64)> {
    let small = ChunkerParams {
        min_size: 2048,
        avg_size: 8192,
        max_size: 32768,
    };
    vec![
        ("small", small, 0x0123_4567_89ab_cdef, 262_144, 1),
        (
            "default",
            ChunkerParams::default(),
            master().chunker_seed(),
            12 << 20,
            2,
        ),
    ]
}

/// The input bytes of a chunking vector: xorshift64 (13, 7, 17) from `state`, the low byte of
/// the state after each step.
fn chunking_input(len: usize, mut state: u64) -> Vec<u8> {
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

/// The chunk lengths of `data`, cut with `params` and `seed`.
fn chunk_lengths(params: ChunkerParams, seed: u64, data: &[u8]) -> Vec<usize> {
    let chunker = Chunker::new(params, seed).unwrap();
    let mut out = Vec::new();
    let mut at = 0;
    while at < data.len() {
        let n = chunker.cut(&data[at..]);
        out.push(n);
        at += n;
    }
    out
}

fn sealed(key: &MasterKey, sealer: &mut BlobSealer, data: &[u8]) -> pack::SealedBlob {
    sealed_as(key, sealer, BlobType::Data, data)
}

fn sealed_as(
    key: &MasterKey,
    sealer: &mut BlobSealer,
    t: BlobType,
    data: &[u8],
) -> pack::SealedBlob {
    let mut buf = vec![0u8; NONCE_LEN];
    buf.extend_from_slice(data);
    sealer.seal(key, t, key.blob_id(t, data), buf)
}

#[test]
#[ignore = "rewrites the version 2 files of format-spec/vectors; run by hand when they change"]
fn regenerate_v2() {
    let key = master();
    let d = dir();
    let cfg = encode_file(&key, 3, FileType::Config, &config_v2()).unwrap();
    fs::write(d.join("config-v2.bin"), &cfg).unwrap();

    let plain = tree_v2().encode();
    let mut sealer = BlobSealer::new(3).unwrap();
    let blob = sealed_as(&key, &mut sealer, BlobType::Tree, &plain);
    let empty = sealed_as(&key, &mut sealer, BlobType::Tree, br#"{"nodes":[]}"#);
    let mut packer = Packer::new(BlobType::Tree, 1 << 20);
    packer.add(&blob);
    packer.add(&empty);
    let p = packer.finish(&key);
    fs::write(d.join("tree-pack.bin"), &p.bytes).unwrap();

    let mut v = vectors();
    v["config_v2"] =
        json!({"file": "config-v2.bin", "value": serde_json::to_value(config_v2()).unwrap()});
    v["tree"] = json!({"file": "tree-pack.bin", "pack_id": p.id.to_hex(), "id": blob.id.to_hex(),
                       "plaintext": String::from_utf8(plain).unwrap()});
    v["chunking"] = chunking_cases()
        .into_iter()
        .map(|(name, params, seed, len, state)| {
            let lengths = chunk_lengths(params, seed, &chunking_input(len, state));
            json!({"name": name, "min_size": params.min_size, "avg_size": params.avg_size,
                   "max_size": params.max_size, "seed": seed, "input_length": len,
                   "xorshift_state": state, "chunk_lengths": lengths})
        })
        .collect();
    fs::write(
        d.join("vectors.json"),
        serde_json::to_vec_pretty(&v).unwrap(),
    )
    .unwrap();
}

#[test]
#[ignore = "rewrites the Object Lock config of format-spec/vectors; run by hand when it changes"]
fn regenerate_object_lock() {
    let d = dir();
    let cfg = encode_file(&master(), 3, FileType::Config, &config_v2_lock()).unwrap();
    fs::write(d.join("config-v2-lock.bin"), &cfg).unwrap();
    let mut v = vectors();
    v["config_v2_lock"] = json!({"file": "config-v2-lock.bin",
                                 "value": serde_json::to_value(config_v2_lock()).unwrap()});
    fs::write(
        d.join("vectors.json"),
        serde_json::to_vec_pretty(&v).unwrap(),
    )
    .unwrap();
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
    let version_2 = vectors();

    let entries: Vec<Value> = p
        .entries
        .iter()
        .map(|e| {
            json!({"id": e.id.to_hex(), "type": "data", "compressed": e.compressed, "offset": e.offset,
                   "length": e.length, "uncompressed_length": e.uncompressed_length})
        })
        .collect();
    let mut v = json!({
        "password": PASSWORD,
        "master_key": {"encryption": hex::encode(key.encryption_key()), "id": hex::encode(key.id_key())},
        "chunker_seed": key.chunker_seed(),
        "key_file": {"file": "key.json", "id": blake3::hash(&fs::read(d.join("key.json")).unwrap()).to_hex().to_string()},
        "blob": {"file": "blob.bin", "type": "data", "id": blob.id.to_hex(), "plaintext_hex": hex::encode(hello), "compressed": false},
        "pack": {"file": "pack.bin", "id": p.id.to_hex(), "type": "data", "entries": entries,
                 "plaintexts_hex": [hex::encode(compressible()), hex::encode(raw_blob())]},
        "config": {"file": "config.bin", "value": serde_json::to_value(config()).unwrap()},
    });
    for k in ["config_v2", "tree", "chunking"] {
        v[k] = version_2[k].clone();
    }
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

#[test]
fn version_2_config_decodes_with_its_seed() {
    let v = vectors();
    let cfg: Config =
        decode_file(&master(), FileType::Config, &[0; 32], read("config-v2.bin")).unwrap();
    assert_eq!(serde_json::to_value(&cfg).unwrap(), v["config_v2"]["value"]);
    assert_eq!(cfg, config_v2());
    assert_eq!(
        cfg.effective_chunker_seed(master().chunker_seed()),
        0x8000_0000_0000_0001
    );
}

#[test]
fn object_lock_config_decodes_with_mode_and_days() {
    let v = vectors();
    let cfg: Config = decode_file(
        &master(),
        FileType::Config,
        &[0; 32],
        read("config-v2-lock.bin"),
    )
    .unwrap();
    assert_eq!(
        serde_json::to_value(&cfg).unwrap(),
        v["config_v2_lock"]["value"]
    );
    assert_eq!(
        v["config_v2_lock"]["value"]["object_lock"]["mode"],
        "governance"
    );
    assert_eq!(cfg, config_v2_lock());
    assert!(
        cfg.unknown.is_empty(),
        "object_lock is a member this build knows"
    );
}

#[test]
fn tree_with_attributes_decodes_and_encodes_to_the_same_bytes() {
    let v = vectors();
    let key = master();
    let bytes = read("tree-pack.bin");
    let pack_id: PackId = v["tree"]["pack_id"].as_str().unwrap().parse().unwrap();
    assert_eq!(PackId::hash_of(&bytes), pack_id);
    let entries = pack::parse_pack(&key, &pack_id, BlobType::Tree, &bytes).unwrap();
    assert_eq!(entries.len(), 2);
    let open = |e: &pack::PackEntry| {
        let sealed = bytes[e.offset as usize..(e.offset + e.length) as usize].to_vec();
        let plain = pack::open_blob(&key, &pack_id, e, sealed).unwrap();
        assert_eq!(key.blob_id(BlobType::Tree, &plain), e.id);
        plain
    };
    let e = &entries[0];
    assert_eq!(e.id.to_hex(), v["tree"]["id"]);
    let plain = open(e);
    assert_eq!(plain, v["tree"]["plaintext"].as_str().unwrap().as_bytes());
    let tree = Tree::decode(&plain).unwrap();
    assert_eq!(tree, tree_v2());
    // The folder's subtree is the pack's other blob, the empty tree.
    assert_eq!(tree.nodes[1].subtree, Some(entries[1].id));
    assert_eq!(Tree::decode(&open(&entries[1])).unwrap(), Tree::default());
    assert_eq!(tree.encode(), plain, "the reference encoding is canonical");
    // The same tree blob does not open as a data pack.
    assert!(pack::parse_pack(&key, &pack_id, BlobType::Data, &bytes).is_err());
}

#[test]
fn chunking_vectors_cut_where_listed() {
    let v = vectors();
    let cases = v["chunking"].as_array().unwrap();
    assert_eq!(cases.len(), 2);
    for c in cases {
        let params = ChunkerParams {
            min_size: c["min_size"].as_u64().unwrap() as u32,
            avg_size: c["avg_size"].as_u64().unwrap() as u32,
            max_size: c["max_size"].as_u64().unwrap() as u32,
        };
        let input = chunking_input(
            c["input_length"].as_u64().unwrap() as usize,
            c["xorshift_state"].as_u64().unwrap(),
        );
        let want: Vec<usize> = c["chunk_lengths"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n.as_u64().unwrap() as usize)
            .collect();
        assert!(
            want.len() > 2,
            "{}: a vector cuts more than once",
            c["name"]
        );
        assert_eq!(want.iter().sum::<usize>(), input.len());
        assert_eq!(
            chunk_lengths(params, c["seed"].as_u64().unwrap(), &input),
            want,
            "{}",
            c["name"]
        );
    }
}
