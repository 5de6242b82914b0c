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

/// Flips a bit in the body of the newest data pack (inside its first blob), and returns it.
fn damage_newest_data_pack(env: &Env) -> PathBuf {
    let pack = newest_data_pack(env);
    let mut bytes = fs::read(&pack).unwrap();
    bytes[5000] ^= 0x10;
    fs::write(&pack, &bytes).unwrap();
    pack
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
    let pack = damage_newest_data_pack(&env);
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
fn a_damaged_file_is_named_in_every_snapshot_that_holds_it() {
    let env = Env::init();
    let src = env.path("src");
    fs::create_dir_all(src.join("deep/er")).unwrap();
    fs::write(src.join("deep/er/f"), random_bytes(3, 1_000_000)).unwrap();
    // The same tree in three snapshots: the check walks it once.
    for host in ["h1", "h2", "h3"] {
        env.ok(&[
            "backup".as_ref(),
            "--host".as_ref(),
            host.as_ref(),
            src.as_os_str(),
        ]);
    }
    damage_newest_data_pack(&env);
    let (code, out, err) = check(&env, &["--read-data", "--json"]);
    assert_eq!(code, Some(1), "{out}{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    let damaged = v["damaged_paths"].as_array().unwrap();
    let file = src.join("deep/er/f").display().to_string();
    let snapshots: std::collections::BTreeSet<&str> = damaged
        .iter()
        .filter(|d| d["path"].as_str().unwrap().ends_with(&file))
        .map(|d| d["snapshot"].as_str().unwrap())
        .collect();
    assert_eq!(snapshots.len(), 3, "{out}");
}

#[test]
fn damage_under_a_file_name_that_is_not_utf8_is_reported_with_the_name_shown_lossily() {
    use std::os::unix::ffi::OsStrExt;
    let env = Env::init();
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    let odd = src.join(std::ffi::OsStr::from_bytes(b"x\xffy"));
    fs::write(&odd, random_bytes(4, 100_000)).unwrap();
    env.ok(&["backup".as_ref(), src.as_os_str()]);
    for pack in files_under(&env.repo.join("data")) {
        fs::remove_file(pack).unwrap();
    }
    let (code, out, err) = check(&env, &["--json"]);
    assert_eq!(code, Some(1), "{out}{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    let shown = format!("{}/x\u{fffd}y", src.display());
    let damaged = v["damaged_paths"].as_array().unwrap();
    assert!(damaged.iter().any(|d| d["path"] == shown.as_str()), "{out}");
    let (code, out, _) = check(&env, &[]);
    assert_eq!(code, Some(1));
    assert!(out.contains(&shown), "{out}");

    // A backup that leaves out such a name still reports (exit 3, JSON summary).
    let missing = env.path("gone").join(std::ffi::OsStr::from_bytes(b"m\xfe"));
    let out = env.run(&[
        "backup".as_ref(),
        "--json".as_ref(),
        src.as_os_str(),
        missing.as_os_str(),
    ]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let v = summary_json(&out.stdout);
    assert!(
        v["errors"][0]["path"]
            .as_str()
            .unwrap()
            .ends_with("m\u{fffd}"),
        "{v}"
    );
}

#[test]
fn repair_packs_rewrites_a_damaged_pack_and_the_repository_then_checks_clean() {
    let env = Env::init();
    let src = repo_with_two_files(&env);
    let pack = damage_newest_data_pack(&env);
    let (code, out, err) = check(&env, &["--read-data"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        err.contains("`floe repair --help` lists the repairs"),
        "{err}"
    );
    let id = name(&pack);

    // The other data pack is sound: left as it is.
    let sound = files_under(&env.repo.join("data"))
        .into_iter()
        .find(|p| *p != pack)
        .unwrap();
    let sound_bytes = fs::read(&sound).unwrap();
    let out = env.ok(&["repair", "packs", &name(&sound), "--write"]);
    assert!(out.contains("nothing to repair"), "{out}");
    assert_eq!(fs::read(&sound).unwrap(), sound_bytes);

    let dry = env.ok(&["repair", "packs", &id[..12]]);
    assert!(
        dry.contains("1 damaged") && dry.contains("dry run"),
        "{dry}"
    );
    assert!(pack.exists());
    let done = env.ok(&["repair", "packs", &id, "--write"]);
    assert!(done.contains("removed 1 damaged pack(s)"), "{done}");
    assert!(done.contains("floe repair snapshots --write"), "{done}");
    assert!(!pack.exists());
    env.ok(&["repair", "snapshots", "--write", "--forget"]);
    let (code, out, _) = check(&env, &["--read-data"]);
    assert_eq!(code, Some(0), "{out}");
    // What did not need the lost blob restores exactly.
    let back = restored(&env.restore("latest", "r"), &src);
    assert_eq!(
        fs::read(back.join("first")).unwrap(),
        fs::read(src.join("first")).unwrap()
    );
    // A pack the index does not name is refused, saying what to do.
    let out = env.run(&["repair", "packs", "ffffffff"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("no pack ffffffff in the index"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn repair_packs_deletes_a_tree_pack_in_which_no_blob_opens() {
    let env = Env::init();
    repo_with_two_files(&env);
    let mut trees = files_under(&env.repo.join("tree"));
    trees.sort_by_key(|p| fs::metadata(p).unwrap().modified().unwrap());
    let pack = trees.pop().unwrap();
    let len = fs::metadata(&pack).unwrap().len() as usize;
    fs::write(&pack, vec![0u8; len]).unwrap();
    let id = name(&pack);
    let done = env.ok(&["repair", "packs", &id, "--write"]);
    assert!(done.contains("0 blob(s) sound"), "{done}");
    assert!(done.contains("removed 1 damaged pack(s)"), "{done}");
    assert!(!pack.exists());
    env.ok(&["repair", "snapshots", "--write", "--forget"]);
    let (code, out, _) = check(&env, &["--read-data"]);
    assert_eq!(code, Some(0), "{out}");
}

/// Flips a bit in the middle of the snapshot file of `id` (whole hex id).
fn damage_snapshot(env: &Env, id: &str) {
    let path = env.repo.join("snapshots").join(id);
    let mut bytes = fs::read(&path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x10;
    fs::write(&path, &bytes).unwrap();
}

fn snapshot_ids(env: &Env) -> Vec<String> {
    let v: serde_json::Value = serde_json::from_str(&env.ok(&["snapshots", "--json"])).unwrap();
    let ids = v.as_array().unwrap().iter();
    ids.map(|s| s["id"].as_str().unwrap().to_string()).collect()
}

#[test]
fn a_damaged_snapshot_file_is_left_out_with_a_warning_until_forget_removes_it() {
    let env = Env::init();
    let src = repo_with_two_files(&env);
    let ids = snapshot_ids(&env);
    assert_eq!(ids.len(), 2);
    let (bad, good) = (&ids[0], &ids[1]);
    damage_snapshot(&env, bad);

    // Reading commands list and restore the others, with a warning naming the damaged one.
    let out = env.run(&["snapshots"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let listed = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        listed.contains(&good[..8]) && !listed.contains(&bad[..8]),
        "{listed}"
    );
    let warning = format!("warning: snapshot {} left out", &bad[..8]);
    assert!(stderr(&out).contains(&warning), "{}", stderr(&out));
    let back = restored(&env.restore(good, "r"), &src);
    assert_eq!(dir_contents(&back), dir_contents(&src));
    // Named, it is an error that says how to remove it.
    let out = env.run(&["cat", "snapshot", &bad[..8]]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let hint = format!("`floe forget {bad}` removes it");
    assert!(stderr(&out).contains(&hint), "{}", stderr(&out));
    // `latest` passes over it, saying so.
    let out = env.run(&["ls", "latest"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stderr(&out).contains(&warning), "{}", stderr(&out));
    // A prefix it shares with a readable snapshot is ambiguous, not taken as the damaged one.
    let shared = bad
        .chars()
        .zip(good.chars())
        .take_while(|(a, b)| a == b)
        .count();
    let out = env.run(&["forget", &bad[..shared]]);
    assert_ne!(out.status.code(), Some(0), "{}", stderr(&out));
    // Backups go on; forget by policy keeps the damaged one; check and prune refuse it.
    env.ok(&["backup".as_ref(), src.as_os_str()]);
    env.ok(&["forget", "--keep-last", "1", "--dry-run"]);
    let (code, out, _) = check(&env, &[]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains(&bad[..8]), "{out}");
    let out = env.run(&["prune"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("prune deletes nothing while a snapshot file is damaged"),
        "{}",
        stderr(&out)
    );
    // forget --prune refuses before forgetting anything.
    let before = files_under(&env.repo.join("snapshots"));
    let out = env.run(&["forget", "--keep-last", "1", "--prune"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("nothing was forgotten"),
        "{}",
        stderr(&out)
    );
    assert_eq!(files_under(&env.repo.join("snapshots")), before);
    // Named by a prefix, it is forgotten without being read, and the repository is whole.
    env.ok(&["forget", &bad[..8]]);
    assert!(!env.repo.join("snapshots").join(bad).exists());
    env.ok(&["prune"]);
    assert_eq!(check(&env, &["--read-data"]).0, Some(0));
}

#[test]
fn repair_snapshots_forget_removes_a_damaged_snapshot_file() {
    let env = Env::init();
    repo_with_two_files(&env);
    let ids = snapshot_ids(&env);
    damage_snapshot(&env, &ids[1]);
    let dry = env.ok(&["repair", "snapshots"]);
    assert!(dry.contains("cannot be repaired"), "{dry}");
    assert!(env.repo.join("snapshots").join(&ids[1]).exists());
    let out = env.ok(&["repair", "snapshots", "--write", "--forget"]);
    assert!(out.contains(&format!("snapshot {}", &ids[1][..8])), "{out}");
    assert!(
        out.contains("removed 0 original(s) and 1 damaged snapshot file(s)"),
        "{out}"
    );
    assert_eq!(snapshot_ids(&env), vec![ids[0].clone()]);
    assert_eq!(check(&env, &[]).0, Some(0));
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
    let pack = file
        .packs
        .iter_mut()
        .find(|p| p.blobs.iter().any(|b| b.length > 1000))
        .unwrap();
    let pack_id = pack.id.to_string();
    let blob = pack.blobs.iter_mut().find(|b| b.length > 1000).unwrap();
    blob.offset += 16;
    repo.save_index(&file).unwrap();
    repo.backend()
        .remove(floe_engine::FileType::Index, id.as_bytes())
        .unwrap();
    let (code, out, _) = check(&env, &["--read-data"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("disagree"), "{out}");
    // repair packs would count the blob lost where the index puts it: it refuses instead.
    let out = env.run(&["repair", "packs", &pack_id, "--write"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("floe repair index"),
        "{}",
        stderr(&out)
    );
    let pack_file = env.repo.join("data").join(&pack_id[..2]).join(&pack_id);
    assert!(pack_file.exists(), "{}", pack_file.display());
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
        out.contains("wrote 1 repaired snapshot(s), removed 1 original(s) and 0 damaged"),
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
