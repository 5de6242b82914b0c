//! `floe find`, `floe diff` and `floe dump`: looking into snapshots without restoring them.

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::common::*;

/// Names of the data packs now in the repository.
fn data_packs(env: &Env) -> BTreeSet<String> {
    fn walk(p: &Path, out: &mut BTreeSet<String>) {
        for e in fs::read_dir(p).into_iter().flatten().flatten() {
            if e.file_type().unwrap().is_dir() {
                walk(&e.path(), out);
            } else {
                out.insert(e.file_name().to_string_lossy().into_owned());
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(&env.repo.join("data"), &mut out);
    out
}

fn snapshot_ids(env: &Env) -> Vec<String> {
    let v: serde_json::Value = serde_json::from_str(&env.ok(&["snapshots", "--json"])).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect()
}

fn lines(s: &str) -> Vec<&str> {
    s.lines().filter(|l| !l.is_empty()).collect()
}

#[test]
fn find_names_paths_and_the_files_a_pack_holds() {
    let env = Env::init();
    let src = env.path("src");
    fs::create_dir_all(src.join("docs/old")).unwrap();
    fs::write(src.join("docs/report.pdf"), b"pdf one").unwrap();
    fs::write(src.join("docs/old/report.pdf"), b"pdf two").unwrap();
    fs::write(src.join("docs/notes.txt"), b"notes").unwrap();
    env.ok(&["backup".as_ref(), src.as_os_str()]);
    let before = data_packs(&env);
    fs::write(src.join("docs/new.pdf"), random_bytes(5, 200_000)).unwrap();
    env.ok(&["backup".as_ref(), src.as_os_str()]);
    let ids = snapshot_ids(&env);
    let s = |p: &str| format!("{}/{p}", src.display());

    // By name, in every snapshot, grouped under each snapshot.
    let out = env.ok(&["find", "*.pdf"]);
    let expected = [
        format!("snapshot {} of", &ids[0][..8]),
        format!("  {}", s("docs/old/report.pdf")),
        format!("  {}", s("docs/report.pdf")),
        format!("snapshot {} of", &ids[1][..8]),
        format!("  {}", s("docs/new.pdf")),
        format!("  {}", s("docs/old/report.pdf")),
        format!("  {}", s("docs/report.pdf")),
    ];
    let got = lines(&out);
    assert_eq!(got.len(), expected.len(), "{out}");
    for (g, e) in got.iter().zip(&expected) {
        assert!(
            g.starts_with(e.as_str()),
            "{g:?} should start with {e:?}\n{out}"
        );
    }

    // By path pattern, in one snapshot, as JSON.
    let out = env.ok(&["find", "--json", "-s", &ids[0], "docs/*.pdf"]);
    let found: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(found.len(), 1, "{out}");
    assert_eq!(found[0]["path"], s("docs/report.pdf"));
    assert_eq!(found[0]["snapshot"], ids[0]);
    assert_eq!(found[0]["size"], 7);

    // By pack: only the file whose content went into the pack the second backup wrote.
    let new: Vec<_> = data_packs(&env).difference(&before).cloned().collect();
    assert_eq!(new.len(), 1, "{new:?}");
    let out = env.ok(&["find", "--pack", &new[0]]);
    let got = lines(&out);
    assert_eq!(got.len(), 2, "{out}");
    assert_eq!(got[1], format!("  {}", s("docs/new.pdf")));

    // Nothing found is not an error; no criterion at all is.
    let out = env.run(&["find", "*.doc"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(stderr(&out).contains("no match in 2 snapshot(s)"));
    let out = env.run(&["find"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("give a pattern, a blob or a pack"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn diff_reports_each_kind_of_change() {
    let env = Env::init();
    let src = env.path("src");
    fs::create_dir_all(src.join("keep/deep")).unwrap();
    fs::create_dir_all(src.join("gone")).unwrap();
    fs::write(src.join("keep/same.txt"), b"unchanged").unwrap();
    fs::write(src.join("keep/deep/grows.txt"), b"short").unwrap();
    fs::write(src.join("keep/mode.sh"), b"#!/bin/sh\n").unwrap();
    fs::write(src.join("keep/quiet.bin"), b"AAAAAAAA").unwrap();
    fs::write(src.join("gone/a"), b"a").unwrap();
    fs::write(src.join("gone/b"), b"bb").unwrap();
    fs::write(src.join("becomes-dir"), b"file first").unwrap();
    env.ok(&["backup".as_ref(), src.as_os_str()]);

    fs::write(src.join("keep/deep/grows.txt"), b"much longer now").unwrap();
    fs::set_permissions(src.join("keep/mode.sh"), fs::Permissions::from_mode(0o755)).unwrap();
    // Same size, same modification time, different bytes: what bit rot looks like.
    let quiet = src.join("keep/quiet.bin");
    let mtime = fs::metadata(&quiet).unwrap().modified().unwrap();
    fs::write(&quiet, b"AAAABAAA").unwrap();
    fs::File::options()
        .write(true)
        .open(&quiet)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    fs::remove_dir_all(src.join("gone")).unwrap();
    fs::remove_file(src.join("becomes-dir")).unwrap();
    fs::create_dir(src.join("becomes-dir")).unwrap();
    fs::write(src.join("becomes-dir/inside"), b"new").unwrap();
    fs::write(src.join("added.txt"), b"hello").unwrap();
    env.ok(&["backup".as_ref(), src.as_os_str()]);
    let ids = snapshot_ids(&env);

    let out = env.ok(&["diff", &ids[0], &ids[1]]);
    let s = |p: &str| format!("{}/{p}", src.display());
    let expected = [
        format!("+    {}", s("added.txt")),
        format!("T    {}/", s("becomes-dir")),
        format!("+    {}", s("becomes-dir/inside")),
        format!("-    {}/", s("gone")),
        format!("-    {}", s("gone/a")),
        format!("-    {}", s("gone/b")),
        format!("M    {}", s("keep/deep/grows.txt")),
        format!("?    {}", s("keep/quiet.bin")),
    ];
    let got = lines(&out);
    assert_eq!(got[..expected.len()], expected[..], "{out}");
    assert!(
        got[expected.len()].starts_with("2 added, 3 removed, 2 modified, 1 changed type,"),
        "{out}"
    );
    assert!(out.contains("1 file(s) marked ?"), "{out}");

    // --metadata adds the mode change (and the folders whose times changed).
    let out = env.ok(&["diff", "--metadata", &ids[0], &ids[1]]);
    assert!(
        out.contains(&format!("U    {}\n", s("keep/mode.sh"))),
        "{out}"
    );

    // A subfolder against itself, and as JSON with totals.
    let sub = format!("{}:{}", ids[1], s("keep"));
    let out = env.ok(&["diff", "--json", &format!("{}:{}", ids[0], s("keep")), &sub]);
    let v: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(v.len(), 3, "{out}");
    assert_eq!(v[0]["change"], "modified");
    assert_eq!(v[0]["old"]["size"], 5);
    assert_eq!(v[0]["new"]["size"], 15);
    assert_eq!(v[1]["change"], "suspect_content");
    assert_eq!(v[2]["totals"]["modified"], 2);
    assert_eq!(v[2]["totals"]["bytes_added"], 10);

    // Identical snapshots: nothing listed.
    let out = env.ok(&["diff", &ids[1], &ids[1]]);
    assert!(
        out.trim_start()
            .starts_with("0 added, 0 removed, 0 modified"),
        "{out}"
    );
}

/// Sets every entry's modification time below `root` (not following links).
fn touch_all(root: &Path, stamp: &str) {
    let st = Command::new("find")
        .arg(root)
        .args(["-exec", "touch", "-h", "-d", stamp, "{}", "+"])
        .status()
        .unwrap();
    assert!(st.success());
}

#[test]
fn dump_writes_a_file_exactly_and_a_folder_as_a_tar_that_extracts_to_the_same_tree() {
    let env = Env::init();
    let src = env.path("src");
    fs::create_dir_all(src.join("tree/sub/empty")).unwrap();
    // Several blobs (more than one read-ahead window of 8) and a few small files.
    let big = random_bytes(7, 30 << 20);
    fs::write(src.join("tree/big.bin"), &big).unwrap();
    fs::write(src.join("tree/sub/small"), b"small").unwrap();
    fs::write(src.join("tree/zero"), b"").unwrap();
    std::os::unix::fs::symlink("sub/small", src.join("tree/link")).unwrap();
    fs::write(src.join("tree/hard-a"), b"two names").unwrap();
    fs::hard_link(src.join("tree/hard-a"), src.join("tree/sub/hard-b")).unwrap();
    assert!(Command::new("mkfifo")
        .arg(src.join("tree/fifo"))
        .status()
        .unwrap()
        .success());
    let odd: std::ffi::OsString =
        std::os::unix::ffi::OsStringExt::from_vec(b"odd-\xff-name".to_vec());
    fs::write(src.join("tree").join(&odd), b"non-utf8").unwrap();
    // Names and link targets longer than a tar header holds (GNU long-name entries).
    let long = format!("{}-long-name", "n".repeat(140));
    fs::write(src.join("tree/sub").join(&long), b"long name").unwrap();
    std::os::unix::fs::symlink(format!("sub/{long}"), src.join("tree/long-link")).unwrap();
    fs::set_permissions(src.join("tree/sub"), fs::Permissions::from_mode(0o750)).unwrap();
    // Nanoseconds, which only the PAX records of the tar stream carry.
    touch_all(&src, "2024-02-03 04:05:06.123456789");
    env.ok(&["backup", src.to_str().unwrap()]);

    // A file, to standard output and to --output.
    let spec = format!("latest:{}/tree/big.bin", src.display());
    let out = env.cmd().args(["dump", &spec]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(out.stdout == big, "dumped bytes differ");
    let file = env.path("big.out");
    env.ok(&["dump", &spec, "--output", file.to_str().unwrap()]);
    assert!(fs::read(&file).unwrap() == big);

    // A folder: a tar stream that GNU tar extracts into the same tree.
    let spec = format!("latest:{}/tree", src.display());
    let tar = env.path("tree.tar");
    env.ok(&["dump", &spec, "-o", tar.to_str().unwrap()]);
    let dest = env.path("extracted");
    fs::create_dir(&dest).unwrap();
    let st = Command::new("tar")
        .args(["-xpf", tar.to_str().unwrap(), "-C", dest.to_str().unwrap()])
        .status()
        .unwrap();
    assert!(st.success());
    assert_same_tree(&src.join("tree"), &dest.join("tree"), false);
    // The whole snapshot, streamed through a pipe.
    let mut dump = env
        .cmd()
        .args(["dump", "latest"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let all = env.path("all");
    fs::create_dir(&all).unwrap();
    let st = Command::new("tar")
        .args(["-xpf", "-", "-C", all.to_str().unwrap()])
        .stdin(dump.stdout.take().unwrap())
        .status()
        .unwrap();
    assert!(dump.wait().unwrap().success() && st.success());
    assert_same_tree(&src, &restored(&all, &src), false);
}

#[test]
fn dump_of_damaged_data_fails_naming_the_pack_and_leaves_no_output() {
    let env = Env::init();
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("victim"), random_bytes(3, 3_000_000)).unwrap();
    env.ok(&["backup".as_ref(), src.as_os_str()]);
    let packs = data_packs(&env);
    assert_eq!(packs.len(), 1);
    let pack = packs.iter().next().unwrap().clone();
    let path = env.repo.join("data").join(&pack[..2]).join(&pack);
    let mut bytes = fs::read(&path).unwrap();
    bytes[1000] ^= 1;
    fs::write(&path, &bytes).unwrap();

    for spec in [
        format!("latest:{}/victim", src.display()),
        format!("latest:{}", src.display()),
    ] {
        let target = env.path("out");
        let out = env.run(&["dump", &spec, "-o", target.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        assert!(stderr(&out).contains(&pack), "{}", stderr(&out));
        assert!(!target.exists(), "a damaged dump was left behind");
        let leftovers: Vec<_> = fs::read_dir(env.dir.path())
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with(".floe-dump"))
            .collect();
        assert!(leftovers.is_empty(), "temporary file left: {leftovers:?}");
    }
    // To standard output: the stream stops where the damage is, without the end-of-archive
    // blocks that would let tar take it for complete.
    let out = env.run(&["dump", &format!("latest:{}", src.display())]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains(&pack), "{}", stderr(&out));
    assert!(
        !out.stdout.ends_with(&[0u8; 1024]),
        "a failed tar stream ends like a complete one"
    );
    let partial = env.path("partial.tar");
    fs::write(&partial, &out.stdout).unwrap();
    let listed = Command::new("tar")
        .arg("-tf")
        .arg(&partial)
        .stderr(Stdio::null())
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(!listed.success(), "tar accepted a cut stream");
}

#[test]
fn diff_of_a_folder_that_became_a_file_is_a_type_change() {
    let env = Env::init();
    let src = env.path("src");
    fs::create_dir_all(src.join("a")).unwrap();
    fs::write(src.join("a/b"), b"b").unwrap();
    fs::write(src.join("a/c"), b"c").unwrap();
    env.ok(&["backup".as_ref(), src.as_os_str()]);
    fs::remove_dir_all(src.join("a")).unwrap();
    fs::write(src.join("a"), b"now a file").unwrap();
    env.ok(&["backup".as_ref(), src.as_os_str()]);
    let ids = snapshot_ids(&env);
    let a = format!("{}/a", src.display());
    let out = env.ok(&[
        "diff",
        &format!("{}:{a}", ids[0]),
        &format!("{}:{a}", ids[1]),
    ]);
    let got = lines(&out);
    assert_eq!(
        got[..3],
        [
            format!("T    {a}"),
            format!("-    {a}/b"),
            format!("-    {a}/c")
        ],
        "{out}"
    );
}

#[test]
fn find_by_tree_pack_and_past_a_damaged_one() {
    let env = Env::init();
    let src = env.path("src");
    fs::create_dir_all(src.join("old")).unwrap();
    fs::write(src.join("old/one.txt"), b"one").unwrap();
    env.ok(&["backup".as_ref(), src.as_os_str()]);
    let tree_packs = |env: &Env| {
        let mut out = BTreeSet::new();
        for d in fs::read_dir(env.repo.join("tree")).unwrap().flatten() {
            for f in fs::read_dir(d.path()).unwrap().flatten() {
                out.insert(f.path());
            }
        }
        out
    };
    let before = tree_packs(&env);
    fs::create_dir_all(src.join("new")).unwrap();
    fs::write(src.join("new/two.txt"), b"two").unwrap();
    env.ok(&["backup".as_ref(), src.as_os_str()]);
    let added: Vec<_> = tree_packs(&env).difference(&before).cloned().collect();
    assert_eq!(added.len(), 1);
    let name = added[0].file_name().unwrap().to_string_lossy().into_owned();
    let ids = snapshot_ids(&env);

    // The folders whose listings the second backup wrote: the new one and those above it.
    let out = env.ok(&["find", "--pack", &name]);
    let got = lines(&out);
    assert!(
        got[0].starts_with(&format!("snapshot {}", &ids[1][..8])),
        "{out}"
    );
    assert!(
        got.contains(&format!("  {}/new", src.display()).as_str()),
        "{out}"
    );
    assert!(!out.contains("/old"), "{out}");

    // That pack damaged: the first snapshot is still searched, the error says what was not.
    let mut bytes = fs::read(&added[0]).unwrap();
    bytes[10] ^= 1;
    fs::write(&added[0], &bytes).unwrap();
    let out = env.run(&["find", "*.txt"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("/old/one.txt"), "{stdout}");
    assert!(
        stderr(&out).contains(&format!("snapshot {}", &ids[1][..8]))
            && stderr(&out).contains("could not be searched"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_file_name_that_is_not_utf8_is_reached_by_its_bytes_or_as_ls_shows_it() {
    use std::ffi::{OsStr, OsString};
    use std::os::unix::ffi::{OsStrExt, OsStringExt};
    let env = Env::init();
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    let odd = OsStr::from_bytes(b"bad\xff\xfename");
    fs::write(src.join(odd), b"odd content").unwrap();
    fs::write(src.join("plain"), b"plain content").unwrap();
    env.ok(&["backup".as_ref(), src.as_os_str()]);

    let raw = src.join(odd).into_os_string();
    let shown = OsString::from(format!("{}/bad\u{fffd}\u{fffd}name", src.display()));
    let listed = env.ok(&["ls".as_ref(), "latest".as_ref(), src.as_os_str()]);
    assert!(listed.lines().any(|l| OsStr::new(l) == shown), "{listed}");
    for path in [&raw, &shown] {
        let out = env.run(&["dump".as_ref(), "latest".as_ref(), path.as_os_str()]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        assert_eq!(out.stdout, b"odd content");
    }
    // An include pattern with the raw bytes restores that file alone, under its own name.
    let target = env.path("out");
    let pattern = OsString::from_vec(b"*\xff*".to_vec());
    env.ok(&[
        OsStr::new("restore"),
        OsStr::new("latest"),
        OsStr::new("--target"),
        target.as_os_str(),
        OsStr::new("--include"),
        &pattern,
    ]);
    let back = restored(&target, &src);
    assert_eq!(fs::read(back.join(odd)).unwrap(), b"odd content");
    assert!(!back.join("plain").exists());
}
