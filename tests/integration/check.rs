//! `floe check`: each kind of damage is found by the mode that must find it, named precisely,
//! with the paths it breaks, and never a panic.

use std::fs;
use std::path::{Path, PathBuf};

use crate::common::*;

/// A repository with two files in separate data packs (two backups) and returns the source.
fn repo_with_two_files(env: &Env) -> PathBuf {
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("first"), random_bytes(1, 2_000_000)).unwrap();
    env.ok(&["backup".as_ref(), src.as_os_str()]);
    fs::write(src.join("second"), random_bytes(2, 2_000_000)).unwrap();
    env.ok(&["backup".as_ref(), src.as_os_str()]);
    src
}

fn files_under(p: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in fs::read_dir(p).unwrap().flatten() {
        if e.file_type().unwrap().is_dir() {
            out.extend(files_under(&e.path()));
        } else {
            out.push(e.path());
        }
    }
    out.sort();
    out
}

/// The data pack holding the blob of `second` (the newer of the two data packs).
fn newest_data_pack(env: &Env) -> PathBuf {
    let mut packs = files_under(&env.repo.join("data"));
    packs.sort_by_key(|p| fs::metadata(p).unwrap().modified().unwrap());
    packs.pop().unwrap()
}

fn check(env: &Env, args: &[&str]) -> (Option<i32>, String, String) {
    let mut all = vec!["check"];
    all.extend_from_slice(args);
    let out = env.run(&all);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr(&out),
    )
}

fn name(p: &Path) -> String {
    p.file_name().unwrap().to_string_lossy().into_owned()
}

#[test]
fn a_clean_repository_checks_clean_in_both_modes() {
    let env = Env::init();
    repo_with_two_files(&env);
    for args in [vec![], vec!["--read-data"]] {
        let (code, out, err) = check(&env, &args);
        assert_eq!(code, Some(0), "{out}{err}");
        assert!(out.contains("0 error(s)"), "{out}");
    }
    // Slices 1/2 and 2/2 together read every pack once.
    let read = |s: &str| -> u64 {
        let (_, out, _) = check(&env, &["--read-data-subset", s, "--json"]);
        serde_json::from_str::<serde_json::Value>(out.trim()).unwrap()["packs_read"]
            .as_u64()
            .unwrap()
    };
    let total =
        files_under(&env.repo.join("data")).len() + files_under(&env.repo.join("tree")).len();
    assert_eq!(read("1/2") + read("2/2"), total as u64);
}

#[test]
fn a_flipped_bit_in_a_data_pack_body_is_found_by_read_data_only() {
    let env = Env::init();
    let src = repo_with_two_files(&env);
    let pack = newest_data_pack(&env);
    let mut bytes = fs::read(&pack).unwrap();
    bytes[5000] ^= 0x10;
    fs::write(&pack, &bytes).unwrap();
    let (code, ..) = check(&env, &[]);
    assert_eq!(code, Some(0), "the structure check reads no data pack");
    let (code, out, err) = check(&env, &["--read-data"]);
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(
        out.contains(&format!("error: pack {}", name(&pack))),
        "{out}"
    );
    assert!(out.contains("fail to authenticate"), "{out}");
    assert!(
        out.contains(&format!("{}", src.join("second").display())),
        "damaged path named: {out}"
    );
    assert!(
        !out.contains(&format!("{}\n", src.join("first").display())),
        "{out}"
    );
    assert!(
        err.contains("damaged") && !err.contains("panicked"),
        "{err}"
    );
}

#[test]
fn a_missing_or_truncated_pack_is_found_by_the_structure_check() {
    for damage in ["missing", "truncated"] {
        let env = Env::init();
        let src = repo_with_two_files(&env);
        let pack = newest_data_pack(&env);
        if damage == "missing" {
            fs::remove_file(&pack).unwrap();
        } else {
            let bytes = fs::read(&pack).unwrap();
            fs::write(&pack, &bytes[..bytes.len() - 100]).unwrap();
        }
        let (code, out, err) = check(&env, &[]);
        assert_eq!(code, Some(1), "{damage}: {out}{err}");
        assert!(
            out.contains(&format!("error: pack {}", name(&pack))),
            "{damage}: {out}"
        );
        assert!(
            out.contains(&format!("{}", src.join("second").display())),
            "{damage}: {out}"
        );
    }
}

#[test]
fn a_flipped_bit_in_a_tree_pack_header_is_found_by_the_structure_check() {
    let env = Env::init();
    repo_with_two_files(&env);
    let pack = files_under(&env.repo.join("tree")).remove(0);
    let mut bytes = fs::read(&pack).unwrap();
    let n = bytes.len();
    bytes[n - 20] ^= 0x01;
    fs::write(&pack, &bytes).unwrap();
    let (code, out, _) = check(&env, &[]);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains(&format!("error: pack {}", name(&pack))) && out.contains("header"),
        "{out}"
    );
}

#[test]
fn a_missing_index_file_and_a_corrupted_snapshot_are_named() {
    let env = Env::init();
    repo_with_two_files(&env);
    // The newer index file (naming the pack of `second`) goes; the older snapshot is damaged, so
    // the newer one, which needs `second`, is left to find the hole.
    let by_age = |dir: &str| {
        let mut v = files_under(&env.repo.join(dir));
        v.sort_by_key(|p| fs::metadata(p).unwrap().modified().unwrap());
        v
    };
    fs::remove_file(by_age("index").pop().unwrap()).unwrap();
    let snap = by_age("snapshots").remove(0);
    let mut bytes = fs::read(&snap).unwrap();
    bytes[40] ^= 0x01;
    fs::write(&snap, &bytes).unwrap();
    let (code, out, _) = check(&env, &["--json"]);
    assert_eq!(code, Some(1), "{out}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    let problems = v["problems"].as_array().unwrap();
    assert!(
        problems
            .iter()
            .any(|p| p["object"].as_str().unwrap().contains(&name(&snap))),
        "{out}"
    );
    assert!(
        problems
            .iter()
            .any(|p| p["message"].as_str().unwrap().contains("not in the index")),
        "{out}"
    );
    assert!(!v["damaged_paths"].as_array().unwrap().is_empty(), "{out}");
}

#[test]
fn repair_index_rebuilds_a_lost_index_and_check_passes() {
    let env = Env::init();
    let src = repo_with_two_files(&env);
    for f in files_under(&env.repo.join("index")) {
        fs::remove_file(f).unwrap();
    }
    let (code, ..) = check(&env, &[]);
    assert_eq!(code, Some(1), "a repository without index is damaged");
    let out = env.ok(&["repair", "index"]);
    assert!(
        out.contains("indexed") && out.contains("wrote 1 index file(s)"),
        "{out}"
    );
    let (code, out, _) = check(&env, &["--read-data"]);
    assert_eq!(code, Some(0), "{out}");
    let t = env.restore("latest", "out");
    assert_same_tree(&src, &restored(&t, &src), is_root());
}

#[test]
fn repair_index_fixes_an_index_entry_with_a_wrong_offset() {
    let env = Env::init();
    let src = repo_with_two_files(&env);
    // Rewrite an index file with one offset shifted, through the engine (the files are sealed).
    let repo = env.open_repo();
    let (id, mut file) = repo.load_index_files().unwrap().remove(0);
    let blob = file
        .packs
        .iter_mut()
        .flat_map(|p| p.blobs.iter_mut())
        .find(|b| b.length > 1000)
        .unwrap();
    blob.offset += 16;
    repo.save_index(&file).unwrap();
    repo.backend()
        .remove(floe_engine::FileType::Index, id.as_bytes())
        .unwrap();
    let (code, out, _) = check(&env, &["--read-data"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("disagree"), "{out}");
    env.ok(&["repair", "index"]);
    let (code, out, _) = check(&env, &["--read-data"]);
    assert_eq!(code, Some(0), "{out}");
    let t = env.restore("latest", "out");
    assert_same_tree(&src, &restored(&t, &src), is_root());
}

#[test]
fn repair_snapshots_truncates_damaged_files_and_check_then_passes() {
    let env = Env::init();
    let src = repo_with_two_files(&env);
    fs::remove_file(newest_data_pack(&env)).unwrap();
    env.ok(&["repair", "index"]);
    let dry = env.ok(&["repair", "snapshots"]);
    assert!(
        dry.contains(&format!(
            "{}: truncated to 0 bytes",
            src.join("second").display()
        )),
        "{dry}"
    );
    assert!(dry.contains("dry run"), "{dry}");
    let (code, ..) = check(&env, &[]);
    assert_eq!(code, Some(1), "still damaged after a dry run");
    let out = env.ok(&["repair", "snapshots", "--write", "--forget"]);
    assert!(
        out.contains("wrote 1 repaired snapshot(s), removed 1 original(s)"),
        "{out}"
    );
    let (code, out, _) = check(&env, &["--read-data"]);
    assert_eq!(code, Some(0), "{out}");
    let t = env.restore("latest", "out");
    let base = restored(&t, &src);
    assert_eq!(
        fs::read(base.join("first")).unwrap(),
        random_bytes(1, 2_000_000)
    );
    assert_eq!(fs::metadata(base.join("second")).unwrap().len(), 0);
    let snaps: serde_json::Value = serde_json::from_str(&env.ok(&["snapshots", "--json"])).unwrap();
    // The undamaged first snapshot stays as it was; the second was replaced by a repaired one.
    let tagged: Vec<bool> = snaps
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            s["tags"]
                .as_array()
                .unwrap()
                .iter()
                .any(|t| t == "repaired")
        })
        .collect();
    assert_eq!(tagged.len(), 2, "{snaps}");
    assert_eq!(tagged.iter().filter(|t| **t).count(), 1, "{snaps}");
}

#[test]
fn a_blob_sealed_under_another_key_is_found_and_named() {
    use floe_engine::format::crypto::{MasterKey, NONCE_LEN};
    use floe_engine::format::index_file::IndexFile;
    use floe_engine::format::pack::{BlobSealer, BlobType, Packer};

    let env = Env::init();
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    let content = random_bytes(9, 100_000);
    fs::write(src.join("planted"), &content).unwrap();
    // Plant the file's blob in a pack whose header is genuine but whose blob was sealed under
    // another master key; the backup then deduplicates against it.
    let repo = env.open_repo();
    let key = env.master_key();
    let id = key.blob_id(BlobType::Data, &content);
    let mut buf = vec![0u8; NONCE_LEN];
    buf.extend_from_slice(&content);
    let sealed = BlobSealer::new(3)
        .unwrap()
        .seal(&MasterKey::generate(), BlobType::Data, id, buf);
    let mut packer = Packer::new(BlobType::Data, 1 << 20);
    packer.add(&sealed);
    let pack = packer.finish(&key);
    repo.backend()
        .write(
            floe_engine::FileType::DataPack,
            pack.id.as_bytes(),
            &pack.bytes,
        )
        .unwrap();
    let mut file = IndexFile::default();
    file.add_pack(
        pack.id,
        BlobType::Data,
        pack.bytes.len() as u64,
        &pack.entries,
    );
    repo.save_index(&file).unwrap();
    env.ok(&["backup".as_ref(), src.as_os_str()]);

    let (code, ..) = check(&env, &[]);
    assert_eq!(code, Some(0), "structure is intact");
    let (code, out, _) = check(&env, &["--read-data"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains(&format!("error: pack {}", pack.id)) && out.contains(&id.to_string()),
        "{out}"
    );
    assert!(
        out.contains(&format!("{}", src.join("planted").display())),
        "{out}"
    );
    // Restore refuses the file rather than writing what the wrong key would give.
    let t = env.path("out");
    let out = env.run(&[
        "restore".as_ref(),
        "latest".as_ref(),
        "--target".as_ref(),
        t.as_os_str(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains(&pack.id.to_string()),
        "{}",
        stderr(&out)
    );
    assert!(!restored(&t, &src).join("planted").exists());
}

#[test]
fn a_missing_tree_pack_is_found_and_names_the_folders_it_breaks() {
    let env = Env::init();
    repo_with_two_files(&env);
    let packs = files_under(&env.repo.join("tree"));
    for p in &packs {
        fs::remove_file(p).unwrap();
    }
    let (code, out, err) = check(&env, &[]);
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(
        out.contains(&format!("error: pack {}", name(&packs[0]))),
        "{out}"
    );
    assert!(
        out.contains("damaged: snapshot") && !err.contains("panicked"),
        "{out}{err}"
    );
}
