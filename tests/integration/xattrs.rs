//! Extended attributes and ACLs: backed up, restored, shown, dumped, and never lost silently;
//! repository format versions 1 and 2 and the upgrade between them.

use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::*;

fn n(v: &serde_json::Value, k: &str) -> u64 {
    v["summary"][k]
        .as_u64()
        .unwrap_or_else(|| panic!("summary.{k} missing in {v}"))
}

/// Every extended attribute of `p` (not following a symlink), sorted by name.
fn attrs_of(p: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<_> = xattr::list(p)
        .unwrap_or_else(|e| panic!("list attributes of {}: {e}", p.display()))
        .map(|name| {
            let value = xattr::get(p, &name).unwrap().unwrap_or_default();
            (name.to_string_lossy().into_owned(), value)
        })
        .collect();
    out.sort();
    out
}

/// The attributes of `p` in the `user` namespace.
fn user_attrs(p: &Path) -> Vec<(String, Vec<u8>)> {
    attrs_of(p)
        .into_iter()
        .filter(|(n, _)| n.starts_with("user."))
        .collect()
}

/// True when the test folder takes user attributes; tests print why they skip otherwise.
fn user_xattrs_work(env: &Env) -> bool {
    let probe = env.path("probe");
    fs::write(&probe, b"").unwrap();
    let ok = xattr::set(&probe, "user.probe", b"1").is_ok();
    fs::remove_file(&probe).unwrap();
    if !ok {
        eprintln!("SKIPPED: the temporary folder's file system refuses user attributes");
    }
    ok
}

/// A tool from Debian's packages; CI installs them, so there a missing one fails the test.
fn tool(name: &str, package: &str) -> bool {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "{name} is missing: CI must install Debian's {package} package (.ci/run does)"
        );
        eprintln!("SKIPPED: {name} is not installed (apt-get install {package})");
    }
    found
}

fn run(cmd: &str, args: &[&OsStr]) -> String {
    let out = Command::new(cmd).args(args).output().unwrap();
    assert!(out.status.success(), "{cmd} {args:?}: {}", stderr(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Source tree: a file with several user attributes (binary, empty, long values), a folder and
/// a plain file. Returns the value length the file system took for the long attribute.
fn tree_with_user_attrs(src: &Path) -> usize {
    fs::create_dir_all(src.join("dir")).unwrap();
    fs::write(src.join("f"), b"content of f").unwrap();
    fs::write(src.join("plain"), b"no attributes").unwrap();
    fs::write(src.join("dir/inner"), b"inner").unwrap();
    let f = src.join("f");
    xattr::set(&f, "user.text", b"hello").unwrap();
    xattr::set(&f, "user.empty", b"").unwrap();
    xattr::set(&f, "user.binary", &[0, 1, 2, 0xff, 0xfe, b'"', b'\\']).unwrap();
    // The kernel takes values up to 64 KiB; ext4 without large attribute inodes, one block.
    let long = [65_000usize, 3_000]
        .into_iter()
        .find(|&len| xattr::set(&f, "user.long", &random_bytes(5, len)).is_ok())
        .expect("a 3000-byte attribute value fits");
    xattr::set(src.join("dir"), "user.folder", b"on a folder").unwrap();
    long
}

/// A new repository and the source tree of [`tree_with_user_attrs`], or `None` (with the reason
/// printed) when the test folder takes no user attributes.
fn repository_and_source() -> Option<(Env, PathBuf)> {
    let env = Env::init();
    if !user_xattrs_work(&env) {
        return None;
    }
    let src = env.path("src");
    tree_with_user_attrs(&src);
    Some((env, src))
}

#[test]
fn user_attributes_of_files_and_folders_round_trip() {
    let env = Env::init();
    if !user_xattrs_work(&env) {
        return;
    }
    let src = env.path("src");
    let long = tree_with_user_attrs(&src);
    env.ok(&[OsStr::new("backup"), src.as_os_str()]);
    let target = env.restore("latest", "out");
    let out = restored(&target, &src);
    for rel in ["f", "dir", "plain", "dir/inner"] {
        assert_eq!(
            user_attrs(&out.join(rel)),
            user_attrs(&src.join(rel)),
            "attributes of {rel}"
        );
    }
    let f = user_attrs(&out.join("f"));
    assert_eq!(f.len(), 4, "{f:?}");
    assert_eq!(
        f.iter().find(|(n, _)| n == "user.long").unwrap().1.len(),
        long
    );
    assert_eq!(fs::read(out.join("f")).unwrap(), b"content of f");

    // ls -l marks entries with attributes; --json names them.
    let listing = env.ok(&[OsStr::new("ls"), OsStr::new("-l"), OsStr::new("latest")]);
    let line = |name: &str| {
        listing
            .lines()
            .find(|l| l.ends_with(name))
            .unwrap_or_else(|| panic!("{name} in {listing}"))
            .to_string()
    };
    assert!(line("/src/f").starts_with("-0644@ "), "{listing}");
    assert!(!line("/src/plain").contains('@'), "{listing}");
    let json = env.ok(&[OsStr::new("ls"), OsStr::new("--json"), OsStr::new("latest")]);
    let f_entry = json
        .lines()
        .find(|l| l.contains("/src/f\""))
        .unwrap_or_else(|| panic!("{json}"));
    assert!(
        f_entry.contains(r#""xattrs":["user.binary","user.empty","user.long","user.text"]"#),
        "{f_entry}"
    );
}

#[test]
fn a_symlinks_own_attributes_are_read_and_never_its_targets() {
    let env = Env::init();
    if !user_xattrs_work(&env) {
        return;
    }
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("target"), b"t").unwrap();
    xattr::set(src.join("target"), "user.of_target", b"x").unwrap();
    std::os::unix::fs::symlink("target", src.join("link")).unwrap();
    env.ok(&[OsStr::new("backup"), src.as_os_str()]);
    // The link's node records none of its target's attributes.
    let json = env.ok(&[OsStr::new("ls"), OsStr::new("--json"), OsStr::new("latest")]);
    let node = |name: &str| {
        json.lines()
            .find(|l| l.contains(&format!("/src/{name}\"")))
            .unwrap_or_else(|| panic!("{name} in {json}"))
            .to_string()
    };
    assert!(
        node("target").contains(r#""xattrs":["user.of_target"]"#),
        "{json}"
    );
    assert!(!node("link").contains("xattrs"), "{json}");
    let out = restored(&env.restore("latest", "out"), &src);
    assert!(user_attrs(&out.join("link")).is_empty());
    assert_eq!(
        user_attrs(&out.join("target")),
        vec![("user.of_target".into(), b"x".to_vec())]
    );
}

#[test]
fn an_unchanged_tree_with_attributes_adds_no_tree_blob_and_a_changed_attribute_is_recorded() {
    let Some((env, src)) = repository_and_source() else {
        return;
    };
    let first = env.backup_json(&[&src]);
    let again = env.backup_json(&[&src]);
    // The source's own tree, attributes included, is stored once: the second snapshot points
    // at the same tree. Only the trees of the folders above it (`/tmp` and on) may be new,
    // when other tests changed them in between.
    let tree_of_src = |report: &serde_json::Value| {
        let repo = env.open_repo();
        let index = repo.load_index().unwrap();
        let id = report["snapshot_id"].as_str().unwrap();
        let snap = repo.find_snapshot(id).unwrap().snapshot;
        let (node, _) = floe_engine::resolve(&repo, &index, &snap, src.to_str().unwrap()).unwrap();
        node.and_then(|n| n.subtree)
            .expect("the source folder's tree")
    };
    assert_eq!(tree_of_src(&first), tree_of_src(&again));
    let above = src.components().count() as u64 - 1;
    assert!(n(&again, "tree_blobs_added") <= above, "{again}");
    assert_eq!(n(&again, "files_unchanged"), 3, "{again}");

    // Only an attribute changes: the file's ctime moves, the backup notices and records it.
    xattr::set(src.join("f"), "user.text", b"changed").unwrap();
    let third = env.backup_json(&[&src]);
    assert!(n(&third, "tree_blobs_added") >= 1, "{third}");
    assert_eq!(n(&third, "data_blobs_added"), 0, "{third}");
    let snaps: serde_json::Value = serde_json::from_str(&env.ok(&["snapshots", "--json"])).unwrap();
    let second = snaps[1]["id"].as_str().unwrap().to_string();
    let diff = env.ok(&["diff", "--metadata", &second, "latest"]);
    let f = format!("{}/f", src.display());
    assert!(diff.lines().any(|l| l == format!("U    {f}")), "{diff}");
    let json = env.ok(&["diff", "--json", "--metadata", &second, "latest"]);
    assert!(
        json.lines()
            .any(|l| l.contains(&format!("\"path\":\"{f}\""))
                && l.contains(r#""changed":["xattrs"]"#)),
        "{json}"
    );
    let plain = env.ok(&["diff", &second, "latest"]);
    assert!(!plain.contains(&f), "without --metadata: {plain}");
    let out = restored(&env.restore("latest", "out"), &src);
    assert!(user_attrs(&out.join("f")).contains(&("user.text".into(), b"changed".to_vec())));
}

#[test]
fn attribute_filters_on_backup_and_restore() {
    let Some((env, src)) = repository_and_source() else {
        return;
    };
    let s = src.as_os_str();
    env.ok(&[
        OsStr::new("backup"),
        OsStr::new("--exclude-xattr"),
        OsStr::new("user.long"),
        s,
    ]);
    let names = |p: &Path| -> Vec<String> { user_attrs(p).into_iter().map(|a| a.0).collect() };
    let all = restored(&env.restore("latest", "all"), &src);
    assert_eq!(
        names(&all.join("f")),
        ["user.binary", "user.empty", "user.text"]
    );

    let t = env.path("only-text");
    env.ok(&[
        OsStr::new("restore"),
        OsStr::new("latest"),
        OsStr::new("--include-xattr"),
        OsStr::new("user.t*"),
        OsStr::new("--target"),
        t.as_os_str(),
    ]);
    assert_eq!(names(&restored(&t, &src).join("f")), ["user.text"]);

    let t = env.path("no-binary");
    env.ok(&[
        OsStr::new("restore"),
        OsStr::new("latest"),
        OsStr::new("--exclude-xattr"),
        OsStr::new("user.binary"),
        OsStr::new("--target"),
        t.as_os_str(),
    ]);
    assert_eq!(
        names(&restored(&t, &src).join("f")),
        ["user.empty", "user.text"]
    );

    // A typo in a pattern is a usage error, found before the password is needed.
    for cmd in ["backup", "restore"] {
        let out = env
            .cmd()
            .env("FLOE_PASSWORD", "not the password")
            .args([cmd, "--exclude-xattr", "user.[", src.to_str().unwrap()])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{cmd}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("--exclude-xattr") && stderr(&out).contains("user.["),
            "{cmd}: {}",
            stderr(&out)
        );
    }
}

#[test]
fn acls_of_files_and_default_acls_of_folders_come_back_identical() {
    let env = Env::init();
    if !tool("setfacl", "acl") {
        return;
    }
    let src = env.path("src");
    fs::create_dir_all(src.join("shared")).unwrap();
    fs::write(src.join("shared/report"), b"acl'd").unwrap();
    let (file, dir) = (src.join("shared/report"), src.join("shared"));
    run(
        "setfacl",
        &[
            OsStr::new("-m"),
            OsStr::new("u:1234:rw-,g:5678:r--"),
            file.as_os_str(),
        ],
    );
    run(
        "setfacl",
        &[
            OsStr::new("-d"),
            OsStr::new("-m"),
            OsStr::new("u:1234:rwx"),
            dir.as_os_str(),
        ],
    );
    let getfacl = |p: &Path| {
        run(
            "getfacl",
            &[OsStr::new("-n"), OsStr::new("--omit-header"), p.as_os_str()],
        )
    };
    let before = (getfacl(&file), getfacl(&dir));
    assert!(before.0.contains("user:1234:rw-"), "{}", before.0);
    assert!(before.1.contains("default:user:1234:rwx"), "{}", before.1);

    env.ok(&[OsStr::new("backup"), src.as_os_str()]);
    let out = restored(&env.restore("latest", "out"), &src);
    assert_eq!(getfacl(&out.join("shared/report")), before.0);
    assert_eq!(getfacl(&out.join("shared")), before.1);
}

#[test]
fn file_capabilities_come_back_as_root() {
    if !is_root() {
        eprintln!("SKIPPED: setting and restoring security.capability needs root");
        return;
    }
    if !tool("setcap", "libcap2-bin") {
        return;
    }
    let env = Env::init();
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    let bin = src.join("pinger");
    fs::copy("/bin/true", &bin).unwrap();
    run("setcap", &[OsStr::new("cap_net_raw+ep"), bin.as_os_str()]);
    // Owned by someone else: a restore's chown would drop the capability if it came later.
    std::os::unix::fs::chown(&bin, Some(4321), Some(4321)).unwrap();
    run("setcap", &[OsStr::new("cap_net_raw+ep"), bin.as_os_str()]);
    let before = run("getcap", &[bin.as_os_str()]);
    assert!(before.contains("cap_net_raw=ep"), "{before}");

    env.ok(&[OsStr::new("backup"), src.as_os_str()]);
    let out = restored(&env.restore("latest", "out"), &src).join("pinger");
    let after = run("getcap", &[out.as_os_str()]);
    assert_eq!(
        after.replace(out.to_str().unwrap(), "X"),
        before.replace(bin.to_str().unwrap(), "X")
    );
}

#[test]
fn a_target_that_refuses_attributes_gives_one_warning_per_kind_and_exit_3() {
    if !is_root() {
        eprintln!("SKIPPED: mounting a ramfs (which takes no user attributes) needs root");
        return;
    }
    let Some((env, src)) = repository_and_source() else {
        return;
    };
    xattr::set(src.join("plain"), "user.second", b"2").unwrap();
    env.ok(&[OsStr::new("backup"), src.as_os_str()]);

    let mnt = env.path("ramfs");
    fs::create_dir_all(&mnt).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "ramfs", "ramfs"])
        .arg(&mnt)
        .status()
        .is_ok_and(|s| s.success());
    assert!(mounted, "mount a ramfs as root");
    let _guard = Mounted(mnt.clone());
    let out = env.run(&[
        OsStr::new("restore"),
        OsStr::new("latest"),
        OsStr::new("--target"),
        mnt.as_os_str(),
    ]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(3), "{err}");
    let warnings: Vec<_> = err.lines().filter(|l| l.starts_with("warning:")).collect();
    assert_eq!(warnings.len(), 1, "{err}");
    assert!(
        warnings[0].contains("6 extended attribute(s) of the user.* namespace not restored")
            && warnings[0].contains("does not support them"),
        "{err}"
    );
    let out = restored(&mnt, &src);
    assert_eq!(fs::read(out.join("f")).unwrap(), b"content of f");
    assert_eq!(fs::read(out.join("dir/inner")).unwrap(), b"inner");
}

#[test]
fn dump_writes_attributes_that_gnu_tar_extracts() {
    let Some((env, src)) = repository_and_source() else {
        return;
    };
    env.ok(&[OsStr::new("backup"), src.as_os_str()]);
    let tar_file = env.path("dump.tar");
    env.ok(&[
        OsStr::new("dump"),
        OsStr::new("-o"),
        tar_file.as_os_str(),
        OsStr::new("latest"),
        src.as_os_str(),
    ]);
    let out = env.path("extracted");
    fs::create_dir_all(&out).unwrap();
    run(
        "tar",
        &[
            OsStr::new("--xattrs"),
            OsStr::new("--xattrs-include=*"),
            OsStr::new("-xf"),
            tar_file.as_os_str(),
            OsStr::new("-C"),
            out.as_os_str(),
        ],
    );
    let root = fs::read_dir(&out).unwrap().next().unwrap().unwrap().path();
    let found = |rel: &str| {
        walk_find(&root, rel).unwrap_or_else(|| panic!("{rel} under {}", root.display()))
    };
    assert_eq!(user_attrs(&found("f")), user_attrs(&src.join("f")));
    assert_eq!(user_attrs(&found("dir")), user_attrs(&src.join("dir")));
}

/// The first path under `root` ending in `rel`.
fn walk_find(root: &Path, rel: &str) -> Option<PathBuf> {
    if root.ends_with(rel) {
        return Some(root.to_path_buf());
    }
    if root.is_dir() && !root.is_symlink() {
        for e in fs::read_dir(root).ok()?.flatten() {
            if let Some(p) = walk_find(&e.path(), rel) {
                return Some(p);
            }
        }
    }
    None
}

#[test]
fn a_version_1_repository_warns_that_attributes_are_not_recorded_until_upgraded() {
    let env = Env::new();
    let out = env.ok(&["init", "--repository-version", "1"]);
    assert!(out.contains("(format version 1)"), "{out}");
    if !user_xattrs_work(&env) {
        return;
    }
    let src = env.path("src");
    tree_with_user_attrs(&src);
    fs::write(src.join("big"), random_bytes(3, 3_000_000)).unwrap();
    let s = src.to_str().unwrap();

    let out = env.run(&["backup", "--json", s]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    // Nothing was left out: a warning, not an error of the snapshot.
    let summary = summary_json(&out.stdout);
    assert_eq!(n(&summary, "errors"), 0, "{summary}");
    assert_eq!(
        summary["errors"].as_array().map(Vec::len),
        Some(0),
        "{summary}"
    );
    assert_eq!(
        summary["warnings"].as_array().map(Vec::len),
        Some(1),
        "{summary}"
    );
    assert!(
        stderr(&out).contains("format version 1")
            && stderr(&out).contains("2 entries have some")
            && stderr(&out).contains("floe migrate upgrade_repo_v2"),
        "{}",
        stderr(&out)
    );
    let listing = env.ok(&["migrate"]);
    assert!(
        listing.contains("repository format version 1") && listing.contains("upgrade_repo_v2:"),
        "{listing}"
    );
    let cat = env.ok(&["cat", "config"]);
    assert!(!cat.contains("chunker_seed"), "{cat}");

    let out = env.ok(&["migrate", "upgrade_repo_v2"]);
    assert!(out.contains("at format version 2"), "{out}");
    assert!(env.ok(&["migrate"]).contains("no migration applies"));
    let cat = env.ok(&["cat", "config"]);
    assert!(
        cat.contains("\"version\": 2") || cat.contains("\"version\":2"),
        "{cat}"
    );
    assert!(cat.contains("chunker_seed"), "{cat}");
    let typo = env.run(&["migrate", "upgrade_repo_v9"]);
    assert_eq!(typo.status.code(), Some(2), "{}", stderr(&typo));
    assert!(
        stderr(&typo).contains("known: upgrade_repo_v2"),
        "{}",
        stderr(&typo)
    );
    let again = env.run(&["migrate", "upgrade_repo_v2"]);
    assert_eq!(again.status.code(), Some(1));
    assert!(
        stderr(&again).contains("already at format version 2"),
        "{}",
        stderr(&again)
    );

    // The chunker cuts where it did: the same content adds no data, and attributes now travel.
    let v2 = env.backup_json(&[&src]);
    assert_eq!(n(&v2, "data_blobs_added"), 0, "{v2}");
    let out = restored(&env.restore("latest", "out"), &src);
    assert_eq!(user_attrs(&out.join("f")), user_attrs(&src.join("f")));
    env.ok(&["check", "--read-data"]);
}

/// Rewrites the repository's config through `edit`, sealed as the format says.
fn edit_config(env: &Env, edit: impl FnOnce(&mut serde_json::Value)) {
    use floe_engine::format::sealed::{decode_file, encode_file};
    use floe_engine::FileType;
    let key = env.master_key();
    let path = env.repo.join("config");
    let sealed = fs::read(&path).unwrap();
    let mut config: serde_json::Value =
        decode_file(&key, FileType::Config, &[0; 32], sealed).unwrap();
    edit(&mut config);
    fs::write(
        &path,
        encode_file(&key, 3, FileType::Config, &config).unwrap(),
    )
    .unwrap();
}

/// Writes refused on a repository whose config `edit` changed: each command exits 1 with a
/// message containing every one of `says`; restore and check still work.
fn only_reading_works(edit: impl FnOnce(&mut serde_json::Value), says: &[&str]) {
    let env = Env::init();
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("a"), b"before the change").unwrap();
    env.ok(&[OsStr::new("backup"), src.as_os_str()]);
    edit_config(&env, edit);
    for args in [
        vec!["backup", src.to_str().unwrap()],
        vec!["forget", "--keep-last", "1", "--prune"],
        vec!["prune"],
        vec!["tag", "--add", "x", "latest"],
        vec!["rewrite", "--exclude", "a", "--forget"],
        vec!["repair", "index"],
        vec!["key", "add", "--new-password-file", "/dev/null"],
        vec!["migrate", "upgrade_repo_v2"],
    ] {
        let out = env.run(&args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stderr(&out));
        assert!(
            says.iter().all(|s| stderr(&out).contains(s)),
            "{args:?}: {}",
            stderr(&out)
        );
    }
    let out = restored(&env.restore("latest", "out"), &src);
    assert_eq!(fs::read(out.join("a")).unwrap(), b"before the change");
    env.ok(&["check"]);
}

#[test]
fn a_config_member_this_build_does_not_know_allows_reading_but_not_writing() {
    only_reading_works(
        |c| c["immutable_packs"] = serde_json::json!({"after": 30}),
        &["config members: immutable_packs", "needs a newer floe"],
    );
}

#[test]
fn an_object_lock_repository_copied_to_disk_is_read_only_there() {
    only_reading_works(
        |c| c["object_lock"] = serde_json::json!({"mode": "compliance", "days": 30}),
        &["uses S3 Object Lock", "can be read, but not written there"],
    );
}

#[test]
fn a_newer_format_version_is_refused_with_a_hint() {
    let env = Env::init();
    edit_config(&env, |c| c["version"] = serde_json::json!(3));
    let out = env.run(&["snapshots"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("repository format version 3 is not supported")
            && stderr(&out).contains("upgrade floe"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_restore_keeps_the_attributes_of_folders_it_did_not_make_and_of_version_1_entries() {
    let env = Env::init();
    if !user_xattrs_work(&env) {
        return;
    }
    let src = env.path("src");
    fs::create_dir_all(src.join("dir")).unwrap();
    fs::write(src.join("dir/file"), b"v2").unwrap();
    env.ok(&[OsStr::new("backup"), src.as_os_str()]);
    // The target's folder exists already, with an attribute the snapshot does not have.
    let target = env.path("out");
    let dir = restored(&target, &src).join("dir");
    fs::create_dir_all(&dir).unwrap();
    xattr::set(&dir, "user.mine", b"kept").unwrap();
    env.ok(&[
        OsStr::new("restore"),
        OsStr::new("latest"),
        OsStr::new("--target"),
        target.as_os_str(),
    ]);
    assert_eq!(
        user_attrs(&dir),
        vec![("user.mine".into(), b"kept".to_vec())]
    );

    // A new file in a folder with a default ACL inherits an ACL. A version 2 snapshot says the
    // file had none, so the restore removes it; a version 1 snapshot does not know, so it stays.
    if !tool("setfacl", "acl") {
        return;
    }
    let v1 = Env::new();
    v1.ok(&["init", "--repository-version", "1"]);
    v1.ok(&[OsStr::new("backup"), src.as_os_str()]);
    let acl_of_file = |env: &Env, name: &str| {
        let target = env.path(name);
        let dir = restored(&target, &src).join("dir");
        fs::create_dir_all(&dir).unwrap();
        run(
            "setfacl",
            &[
                OsStr::new("-d"),
                OsStr::new("-m"),
                OsStr::new("u:1234:rwx"),
                dir.as_os_str(),
            ],
        );
        env.ok(&[
            OsStr::new("restore"),
            OsStr::new("latest"),
            OsStr::new("--target"),
            target.as_os_str(),
        ]);
        attrs_of(&dir.join("file"))
            .into_iter()
            .map(|(n, _)| n)
            .filter(|n| n.starts_with("system.posix_acl"))
            .collect::<Vec<_>>()
    };
    assert_eq!(acl_of_file(&env, "v2-acl"), Vec::<String>::new());
    assert_eq!(acl_of_file(&v1, "v1-acl"), ["system.posix_acl_access"]);
}

#[test]
fn a_copy_into_a_version_1_repository_says_attributes_were_dropped_and_exits_3() {
    let Some((env, src)) = repository_and_source() else {
        return;
    };
    env.ok(&["backup".as_ref(), src.as_os_str()]);
    let old = Env::new();
    old.ok(&["init", "--repository-version", "1"]);
    let out = old
        .cmd()
        .args([
            "copy".as_ref(),
            "--from-repo".as_ref(),
            env.repo.as_os_str(),
        ])
        .env("FLOE_FROM_PASSWORD", PASSWORD)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("copied without theirs"),
        "{}",
        stderr(&out)
    );
    // The copy itself is whole: its files restore byte for byte.
    let back = restored(&old.restore("latest", "r"), &src);
    assert_eq!(dir_contents(&back), dir_contents(&src));
}
