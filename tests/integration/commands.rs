//! The commands that change or show snapshots and objects: tag, rewrite, cat, list, stats with
//! snapshots, check of some snapshots, version and generate.

use std::fs;

use crate::common::*;

fn json(env: &Env, args: &[&str]) -> serde_json::Value {
    serde_json::from_str(&env.ok(args)).unwrap()
}

fn one_snapshot(env: &Env) -> serde_json::Value {
    let v = json(env, &["snapshots", "--json"]);
    assert_eq!(v.as_array().unwrap().len(), 1, "{v}");
    v[0].clone()
}

#[test]
fn tag_writes_new_snapshots_with_the_same_tree() {
    let env = Env::init();
    let f = env.path("f");
    fs::write(&f, b"x").unwrap();
    env.ok(&["backup", f.to_str().unwrap(), "--tag", "old,keep"]);
    let before = one_snapshot(&env);
    env.ok(&["tag", "latest", "--add", "new", "--remove", "old"]);
    let after = one_snapshot(&env);
    assert_eq!(after["tags"], serde_json::json!(["keep", "new"]));
    assert_eq!(after["tree"], before["tree"]);
    assert_eq!(after["original"], before["id"]);
    assert_ne!(after["id"], before["id"]);
    // --set "" clears; the original stays the first one.
    env.ok(&["tag", "--set", "", "--tag", "new"]);
    let cleared = one_snapshot(&env);
    assert_eq!(cleared["tags"], serde_json::json!([]));
    assert_eq!(cleared["original"], before["id"]);
    let out = env.run(&["tag", "latest"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("give --add, --remove or --set"));
}

#[test]
fn rewrite_removes_a_secret_and_prune_frees_its_data() {
    let env = Env::init();
    let dir = env.path("src");
    fs::create_dir_all(dir.join("keep")).unwrap();
    fs::write(dir.join("keep/a"), random_bytes(1, 200_000)).unwrap();
    fs::write(dir.join("secret.key"), random_bytes(2, 3 << 20)).unwrap();
    env.ok(&["backup", dir.to_str().unwrap()]);
    let original = one_snapshot(&env);
    let dry = env.ok(&["rewrite", "-e", "*.key", "--dry-run", "latest"]);
    assert!(
        dry.contains("secret.key") && dry.contains("would be rewritten"),
        "{dry}"
    );
    assert_eq!(
        json(&env, &["snapshots", "--json"])
            .as_array()
            .unwrap()
            .len(),
        1
    );

    env.ok(&["rewrite", "-e", "*.key", "--forget"]);
    let new = one_snapshot(&env);
    assert_eq!(new["original"], original["id"]);
    assert!(new["excludes"]
        .as_array()
        .unwrap()
        .contains(&"*.key".into()));
    let listed = env.ok(&["ls", "latest"]);
    assert!(
        !listed.contains("secret.key") && listed.contains("keep/a"),
        "{listed}"
    );
    let before = env.data_bytes();
    env.ok(&["prune"]);
    let after = env.data_bytes();
    assert!(
        before - after >= 3 << 20,
        "prune freed {} bytes",
        before - after
    );
    let target = env.restore("latest", "out");
    assert_eq!(
        fs::read(restored(&target, &dir.join("keep/a"))).unwrap(),
        fs::read(dir.join("keep/a")).unwrap()
    );
    env.ok(&["check", "--read-data"]);
}

#[test]
fn cat_and_list_show_every_kind_of_object() {
    let env = Env::init();
    let f = env.path("f");
    fs::write(&f, b"the content of f").unwrap();
    env.ok(&["backup", f.to_str().unwrap()]);
    let config = json(&env, &["cat", "config"]);
    assert_eq!(config["version"], 2);
    assert!(config["chunker_seed"].is_u64(), "{config}");
    let snap_id = env.ok(&["list", "snapshots"]).trim().to_string();
    assert_eq!(snap_id.len(), 64);
    let snap = json(&env, &["cat", "snapshot", &snap_id[..8]]);
    assert_eq!(snap["paths"], serde_json::json!([f]));
    let key_id = env.ok(&["list", "keys"]).trim().to_string();
    assert!(json(&env, &["cat", "key", &key_id])["kdf"]["algorithm"] == "argon2id");
    let index_id = env
        .ok(&["list", "index"])
        .lines()
        .next()
        .unwrap()
        .to_string();
    let index = json(&env, &["cat", "index", &index_id]);
    assert!(!index["packs"].as_array().unwrap().is_empty());
    // A pack's header, read from the pack, is what the index records.
    let packs = env.ok(&["list", "packs"]);
    assert_eq!(
        packs.lines().count(),
        2,
        "one tree and one data pack: {packs}"
    );
    for pack in packs.lines() {
        let header = json(&env, &["cat", "pack", pack]);
        let recorded = index["packs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["id"] == pack)
            .expect("the index names the pack");
        assert_eq!(&header, recorded);
    }
    let tree = json(
        &env,
        &[
            "cat",
            "tree",
            &format!("latest:{}", f.parent().unwrap().display()),
        ],
    );
    let node = &tree["nodes"][0];
    assert_eq!(node["name"], "f");
    let blob = node["content"][0].as_str().unwrap();
    let out = env.run(&["cat", "blob", blob]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(out.stdout, b"the content of f");
    // Every blob the index records, by type, as restic lists them: the data blob of `f` and one
    // tree per folder from the root down.
    let blobs = env.ok(&["list", "blobs"]);
    let indexed: Vec<&str> = index["packs"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["blobs"].as_array().unwrap())
        .map(|b| b["id"].as_str().unwrap())
        .collect();
    assert_eq!(blobs.lines().count(), indexed.len(), "{blobs}");
    assert!(
        blobs.lines().any(|l| l == format!("data {blob}")),
        "{blobs}"
    );
    let trees = blobs.lines().filter(|l| l.starts_with("tree ")).count();
    assert_eq!(trees, f.ancestors().count() - 1, "{blobs}");
    let out = env.run(&["cat", "snapshot", "ffff"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(env.ok(&["list", "locks"]).is_empty());
}

#[test]
fn stats_of_snapshots_and_check_of_a_host() {
    let env = Env::init();
    let f = env.path("f");
    for host in ["a", "b"] {
        fs::write(
            &f,
            random_bytes(host.len() as u64 + host.as_bytes()[0] as u64, 1 << 20),
        )
        .unwrap();
        env.ok(&["backup", f.to_str().unwrap(), "--host", host]);
    }
    let a = json(&env, &["stats", "--json", "--host", "a"]);
    assert_eq!(
        (a["snapshots"].as_u64(), a["files"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(a["restore_bytes"], 1 << 20);
    let all = json(&env, &["stats", "--json", "--host", "a", "--host", "b"]);
    assert_eq!(all["restore_bytes"], 2 << 20);
    let text = env.ok(&["stats", "latest"]);
    assert!(
        text.contains("restore size:  1.00 MiB in 1 file(s)"),
        "{text}"
    );

    // Damage the data of host b only: a check of host a reads only a's data and passes.
    let b_snap = json(&env, &["snapshots", "--json", "--host", "b"]);
    let tree_spec = format!(
        "{}:{}",
        &b_snap[0]["id"].as_str().unwrap()[..8],
        f.parent().unwrap().display()
    );
    let tree = json(&env, &["cat", "tree", &tree_spec]);
    let blob = tree["nodes"][0]["content"][0].as_str().unwrap().to_string();
    let mut damaged = None;
    for v in env.ok(&["list", "index"]).lines() {
        let idx = json(&env, &["cat", "index", v]);
        for p in idx["packs"].as_array().unwrap() {
            if p["blobs"]
                .as_array()
                .unwrap()
                .iter()
                .any(|b| b["id"] == blob.as_str())
            {
                damaged = Some(p["id"].as_str().unwrap().to_string());
            }
        }
    }
    let pack = damaged.expect("the pack of b's blob");
    let path = env.repo.join("data").join(&pack[..2]).join(&pack);
    let mut bytes = fs::read(&path).unwrap();
    bytes[100] ^= 0xff;
    fs::write(&path, bytes).unwrap();
    let out = env.run(&["check", "--read-data", "--host", "a"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let out = env.run(&["check", "--read-data"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "the whole check finds the damage"
    );
}

#[test]
fn a_filter_that_selects_nothing_is_an_error_and_set_excludes_add() {
    let env = Env::init();
    let f = env.path("f");
    fs::write(&f, b"x").unwrap();
    env.ok(&["backup", f.to_str().unwrap(), "--host", "a"]);
    // Not a check of nothing that passes.
    for cmd in ["check", "stats"] {
        let out = env.run(&[cmd, "--host", "typo"]);
        assert_eq!(out.status.code(), Some(1), "{cmd}");
        assert!(
            stderr(&out).contains("no snapshot matches the filters"),
            "{cmd}: {}",
            stderr(&out)
        );
    }
    let out = env.run(&["tag", "latest", "--set", "a", "--add", "b"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("without --add and --remove"));
}

#[test]
fn version_and_generated_completions_and_man_pages() {
    let env = Env::new();
    let text = env.ok(&["version"]);
    assert!(
        text.starts_with(&format!("floe {}", env!("CARGO_PKG_VERSION"))),
        "{text}"
    );
    let v = json(&env, &["version", "--json"]);
    assert_eq!(v["format_version"], 2);
    assert_eq!(v["oldest_format_version"], 1);
    assert!(
        text.contains("(repository format 2, reads 1 to 2)"),
        "{text}"
    );
    let dir = env.path("gen");
    let (bash, zsh, fish, man) = (
        dir.join("floe.bash"),
        dir.join("_floe"),
        dir.join("floe.fish"),
        dir.join("man"),
    );
    fs::create_dir(&dir).unwrap();
    env.ok(&[
        "generate",
        "--bash-completion",
        bash.to_str().unwrap(),
        "--zsh-completion",
        zsh.to_str().unwrap(),
        "--fish-completion",
        fish.to_str().unwrap(),
        "--man",
        man.to_str().unwrap(),
    ]);
    for f in [&bash, &zsh, &fish] {
        let text = fs::read_to_string(f).unwrap();
        assert!(
            text.contains("stdin-from-command") && text.contains("rewrite"),
            "{}",
            f.display()
        );
    }
    let mut pages: Vec<String> = fs::read_dir(&man)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    pages.sort();
    for page in [
        "floe.1",
        "floe-backup.1",
        "floe-key.1",
        "floe-key-add.1",
        "floe-rewrite.1",
    ] {
        assert!(
            pages.iter().any(|p| p == page),
            "{page} missing from {pages:?}"
        );
    }
    assert!(!pages.iter().any(|p| p.contains("help")), "{pages:?}");
    let page = fs::read_to_string(man.join("floe-backup.1")).unwrap();
    assert!(
        page.contains(".TH") && page.contains("exclude\\-caches"),
        "a roff page"
    );
    let out = env.run(&["generate"]);
    assert_eq!(out.status.code(), Some(1));
}
