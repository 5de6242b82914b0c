//! Writes seed inputs for the fuzz targets of `fuzz/` (docs/fuzzing.md) from the format's test
//! vectors and from a local repository, in the shape each target takes: for a sealed format, its
//! plaintext, since the target seals what it is given.
//!
//! ```text
//! cargo run -p floe-engine --example fuzz_seeds -- \
//!     format-spec/vectors REPO PASSWORD fuzz/corpus
//! ```

use std::fs;
use std::path::{Path, PathBuf};

use floe_engine::format::aad;
use floe_engine::format::blob::BlobType;
use floe_engine::format::compress;
use floe_engine::format::crypto::MasterKey;
use floe_engine::format::key::KeyFile;
use floe_engine::format::pack::{self, PackEntry};
use floe_engine::{FileType, PackId, Prices};

/// Blobs and packs larger than this make poor seeds: they are left out.
const MAX_SEED: usize = 16 << 10;

struct Out(PathBuf);

impl Out {
    fn put(&self, target: &str, bytes: &[u8]) {
        let dir = self.0.join(target);
        fs::create_dir_all(&dir).expect("create the corpus folder");
        let name = blake3::hash(bytes).to_hex();
        fs::write(dir.join(&name[..16]), bytes).expect("write a seed");
    }
}

fn open_key(key_file: &[u8], password: &[u8]) -> MasterKey {
    let kf: KeyFile = serde_json::from_slice(key_file).expect("a key file");
    kf.open(password)
        .expect("a well-formed key file")
        .expect("the password opens the key file")
}

/// A sealed file's zstd frame and its JSON.
fn unseal(key: &MasterKey, file_type: FileType, sealed: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    let frame = key.open(&aad::file(file_type), sealed).ok()?;
    let json = compress::decompress_bounded(&frame, 1 << 30).ok()?;
    Some((frame, json))
}

/// Seeds of the `pack` and `blob` targets from one pack.
fn pack_seeds(out: &Out, key: &MasterKey, bytes: &[u8], blob_type: BlobType) {
    let id = PackId::hash_of(bytes);
    let Ok(entries) = pack::parse_pack(key, &id, blob_type, bytes) else {
        return;
    };
    let n = bytes.len();
    let hl = u32::from_le_bytes(bytes[n - 4..].try_into().expect("4 bytes")) as usize;
    let header = key
        .open(&aad::pack_header(blob_type), &bytes[n - 4 - hl..n - 4])
        .expect("the header opens");
    let flags = u8::from(blob_type == BlobType::Tree);
    if n <= MAX_SEED {
        let mut seed = vec![flags];
        seed.extend_from_slice(&(header.len() as u16).to_le_bytes());
        seed.extend_from_slice(&header);
        seed.extend_from_slice(&bytes[..n - 4 - hl]);
        out.put("pack", &seed);
    }
    for e in entries {
        blob_seeds(
            out,
            key,
            &id,
            &e,
            &bytes[e.offset as usize..(e.offset + e.length) as usize],
        );
    }
}

fn blob_seeds(out: &Out, key: &MasterKey, pack_id: &PackId, e: &PackEntry, sealed: &[u8]) {
    let Ok(stored) = key.open(&aad::blob(e.blob_type, &e.id), sealed) else {
        return;
    };
    if stored.len() <= MAX_SEED {
        let flags = u8::from(e.blob_type == BlobType::Tree) | if e.compressed { 2 } else { 0 };
        let mut seed = vec![flags];
        seed.extend_from_slice(&e.uncompressed_length.to_le_bytes());
        seed.extend_from_slice(&stored);
        out.put("blob", &seed);
    }
    if e.blob_type == BlobType::Tree {
        if let Ok(plain) = pack::open_blob(key, pack_id, e, sealed.to_vec()) {
            out.put("tree", &plain);
        }
    }
}

fn vectors(out: &Out, dir: &Path) {
    let v: serde_json::Value =
        serde_json::from_slice(&fs::read(dir.join("vectors.json")).expect("vectors.json"))
            .expect("vectors.json is JSON");
    let key_json = fs::read(dir.join("key.json")).expect("key.json");
    out.put("key_file", &key_json);
    let password = v["password"].as_str().expect("a password").as_bytes();
    let key = open_key(&key_json, password);
    for name in ["config.bin", "config-v2.bin", "config-v2-lock.bin"] {
        let sealed = fs::read(dir.join(name)).expect("a config vector");
        if let Some((frame, json)) = unseal(&key, FileType::Config, &sealed) {
            out.put("sealed_file", &frame);
            out.put("config", &json);
        }
    }
    let data = fs::read(dir.join("pack.bin")).expect("pack.bin");
    pack_seeds(out, &key, &data, BlobType::Data);
    let tree = fs::read(dir.join("tree-pack.bin")).expect("tree-pack.bin");
    pack_seeds(out, &key, &tree, BlobType::Tree);
    if let Some(t) = v["tree"]["plaintext"].as_str() {
        out.put("tree", t.as_bytes());
    }
}

fn repository(out: &Out, repo: &Path, password: &[u8]) {
    let files = |folder: &str| -> Vec<PathBuf> {
        let mut found = Vec::new();
        let mut stack = vec![repo.join(folder)];
        while let Some(d) = stack.pop() {
            for e in fs::read_dir(&d).into_iter().flatten().flatten() {
                let p = e.path();
                if p.is_dir() {
                    stack.push(p);
                } else {
                    found.push(p);
                }
            }
        }
        found.sort();
        found
    };
    let key_path = files("keys").into_iter().next().expect("a key file");
    let key_json = fs::read(key_path).expect("read the key file");
    out.put("key_file", &key_json);
    let key = open_key(&key_json, password);
    let config = fs::read(repo.join("config")).expect("read the config");
    if let Some((frame, json)) = unseal(&key, FileType::Config, &config) {
        out.put("sealed_file", &frame);
        out.put("config", &json);
    }
    for (folder, file_type, target) in [
        ("index", FileType::Index, "index_file"),
        ("snapshots", FileType::Snapshot, "snapshot"),
        ("locks", FileType::Lock, "lock_file"),
    ] {
        for p in files(folder) {
            let sealed = fs::read(&p).expect("read a file");
            if let Some((frame, json)) = unseal(&key, file_type, &sealed) {
                out.put("sealed_file", &frame);
                out.put(target, &json);
            }
        }
    }
    for (folder, blob_type) in [("tree", BlobType::Tree), ("data", BlobType::Data)] {
        for p in files(folder) {
            pack_seeds(out, &key, &fs::read(&p).expect("read a pack"), blob_type);
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [vector_dir, repo, password, corpus] = args.as_slice() else {
        eprintln!("usage: fuzz_seeds VECTORS_DIR REPO PASSWORD CORPUS_DIR");
        std::process::exit(2);
    };
    let out = Out(PathBuf::from(corpus));
    vectors(&out, Path::new(vector_dir));
    repository(&out, Path::new(repo), password.as_bytes());
    let prices = serde_json::to_vec_pretty(&Prices::default()).expect("prices encode");
    out.put("price_file", &prices);
}
