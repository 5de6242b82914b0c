//! Restores that are killed and run again, `--overwrite` modes, `--delete`, `--dry-run` and
//! `--verify`.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};

use crate::common::*;

/// Three large incompressible files and many small ones.
fn source(env: &Env) -> PathBuf {
    let src = env.path("src");
    for i in 0..3u64 {
        let dir = src.join(format!("big{i}"));
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("data.bin"), random_bytes(100 + i, 40 << 20)).unwrap();
    }
    fs::create_dir_all(src.join("small")).unwrap();
    for i in 0..400u64 {
        let body = random_bytes(i, 1000 + (i as usize * 37) % 20_000);
        fs::write(src.join(format!("small/f{i:03}")), body).unwrap();
    }
    src
}

/// Every regular file of `root`, by path below it, with its content.
fn files_of(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    dir_contents(root)
}

fn restore_args<'a>(target: &'a Path, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["restore", "latest", "--target", target.to_str().unwrap()];
    args.extend_from_slice(extra);
    args
}

/// The JSON summary of a restore that succeeded.
fn restore_json(env: &Env, target: &Path, extra: &[&str]) -> serde_json::Value {
    let mut args = restore_args(target, extra);
    args.push("--json");
    let out = env.run(&args);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    summary_json(&out.stdout)
}

/// A restore running in the background, its output discarded.
fn spawn_restore(env: &Env, target: &Path, extra: &[&str]) -> std::process::Child {
    env.cmd()
        .args(restore_args(target, extra))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

/// Kills a restore with SIGKILL, as a reboot or the OOM killer would.
fn kill(mut child: std::process::Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// No file at its final name holds other bytes than the source's: each is absent or exact.
fn assert_nothing_wrong_in_place(target: &Path, src: &Path) {
    let root = restored(target, src);
    if !root.exists() {
        return; // killed before the first folder was made
    }
    let want = files_of(src);
    let have = files_of(&root);
    for (path, bytes) in &have {
        let name = path.file_name().unwrap().to_string_lossy();
        if name.starts_with(".floe-part.") {
            continue; // a temporary file: not at a final name
        }
        let expected = want
            .get(path)
            .unwrap_or_else(|| panic!("{} is not in the source", path.display()));
        assert!(
            bytes == expected,
            "{} is at its final name with other bytes than the snapshot's",
            path.display()
        );
    }
}

#[test]
fn a_restore_killed_at_any_moment_leaves_no_wrong_file_and_resumes() {
    let env = Env::init();
    let src = source(&env);
    env.ok(&["backup", src.to_str().unwrap()]);
    let full_target = env.path("full");
    let started = Instant::now();
    let full = restore_json(&env, &full_target, &[]);
    let full_time = started.elapsed();
    let full_read = full["bytes_read"].as_u64().unwrap();
    assert!(full_read > 120 << 20, "{full}");

    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    for round in 0..4 {
        let target = env.path(&format!("killed-{round}"));
        // Killed at random moments, several times over the same target.
        for _ in 0..2 {
            let at = full_time.mul_f64(rng.gen_range(0.1..0.9));
            let child = spawn_restore(&env, &target, &["--overwrite", "if-changed"]);
            std::thread::sleep(at);
            kill(child);
            assert_nothing_wrong_in_place(&target, &src);
        }
        let resumed = restore_json(&env, &target, &["--overwrite", "if-changed"]);
        assert_same_tree(&src, &restored(&target, &src), false);
        let leftovers: Vec<_> = files_of(&target)
            .into_keys()
            .filter(|p| p.to_string_lossy().contains(".floe-part."))
            .collect();
        assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
        assert!(
            resumed["bytes_read"].as_u64().unwrap() <= full_read,
            "{resumed}"
        );
    }

    // Killed as soon as a large file is in place: the rerun reads less than the whole
    // snapshot, and says what was in place.
    let target = env.path("half");
    let mut child = spawn_restore(&env, &target, &[]);
    let copy = restored(&target, &src);
    let started = Instant::now();
    while !(0..3).any(|i| copy.join(format!("big{i}/data.bin")).exists()) {
        if child.try_wait().unwrap().is_some() || started.elapsed() > Duration::from_secs(120) {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    kill(child);
    assert_nothing_wrong_in_place(&target, &src);
    let resumed = restore_json(&env, &target, &["--overwrite", "if-changed"]);
    let read = resumed["bytes_read"].as_u64().unwrap();
    assert!(read < full_read, "read {read} of {full_read}: {resumed}");
    assert!(resumed["files_skipped"].as_u64().unwrap() > 0, "{resumed}");
    assert_eq!(resumed["total_files"].as_u64(), Some(403), "{resumed}");
    assert_same_tree(&src, &restored(&target, &src), false);
}

#[test]
fn verify_catches_a_change_the_quick_check_cannot_see() {
    let env = Env::init();
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("report.txt"), b"the quarterly numbers: 42").unwrap();
    fs::write(src.join("other.txt"), b"unchanged").unwrap();
    env.ok(&["backup", src.to_str().unwrap()]);
    let target = env.path("out");
    env.ok(&restore_args(&target, &[]));
    let report = restored(&target, &src).join("report.txt");
    // Same size, same modification time, other bytes.
    let mtime = fs::metadata(&report).unwrap().modified().unwrap();
    fs::write(&report, b"the quarterly numbers: 24").unwrap();
    fs::File::options()
        .write(true)
        .open(&report)
        .unwrap()
        .set_modified(mtime)
        .unwrap();

    let quick = restore_json(&env, &target, &["--overwrite", "if-changed"]);
    assert_eq!(quick["files_skipped"].as_u64(), Some(2), "{quick}");
    assert_eq!(fs::read(&report).unwrap(), b"the quarterly numbers: 24");

    let out = env.run(&restore_args(
        &target,
        &["--overwrite", "if-changed", "--verify"],
    ));
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "--verify: {} differs from the snapshot",
            report.display()
        )),
        "{err}"
    );
    assert!(!err.contains("other.txt"), "{err}");

    let fixed = restore_json(&env, &target, &["--overwrite", "always", "--verify"]);
    assert_eq!(fixed["files_verified"].as_u64(), Some(2), "{fixed}");
    assert_eq!(fs::read(&report).unwrap(), b"the quarterly numbers: 42");
}

#[test]
fn delete_removes_only_what_the_snapshot_lacks_and_dry_run_changes_nothing() {
    let env = Env::init();
    let src = env.path("src");
    fs::create_dir_all(src.join("docs")).unwrap();
    fs::write(src.join("docs/a.txt"), b"alpha").unwrap();
    fs::write(src.join("docs/b.txt"), b"beta").unwrap();
    env.ok(&["backup", src.to_str().unwrap()]);
    let target = env.path("out");
    env.ok(&restore_args(&target, &[]));
    let docs = restored(&target, &src).join("docs");
    // Things the snapshot does not have, and a file that changed.
    fs::write(docs.join("stray.txt"), b"not in the snapshot").unwrap();
    fs::create_dir_all(docs.join("old/deeper")).unwrap();
    fs::write(docs.join("old/deeper/x"), b"x").unwrap();
    fs::write(
        docs.join("old/deeper/inner.keep"),
        b"protected inside a deleted folder",
    )
    .unwrap();
    fs::write(docs.join("notes.keep"), b"excluded, so protected").unwrap();
    fs::write(docs.join("a.txt"), b"ALPHA, edited").unwrap();

    let before = describe(&target, false);
    let args = [
        "--overwrite",
        "if-changed",
        "--delete",
        "--exclude",
        "*.keep",
    ];
    let mut dry = args.to_vec();
    dry.push("--dry-run");
    let out = env.run(&restore_args(&target, &dry));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(text.contains("would replace 1 file(s)"), "{text}");
    assert!(text.contains("would leave 1 file(s) alone"), "{text}");
    assert!(
        text.contains("would delete 2 file(s) or folder(s)"),
        "{text}"
    );
    assert!(
        text.contains(&format!("delete {}", docs.join("old").display())),
        "{text}"
    );
    assert!(
        text.contains(&format!("delete {}", docs.join("stray.txt").display())),
        "{text}"
    );
    assert!(!text.contains("notes.keep"), "{text}");
    assert_eq!(
        before,
        describe(&target, false),
        "--dry-run changed the target"
    );

    let done = restore_json(&env, &target, &args);
    assert_eq!(done["files_deleted"].as_u64(), Some(2), "{done}");
    assert_eq!(done["files_restored"].as_u64(), Some(1), "{done}");
    assert!(!docs.join("stray.txt").exists() && !docs.join("old/deeper/x").exists());
    assert!(docs.join("old/deeper/inner.keep").exists());
    assert_eq!(
        fs::read(docs.join("notes.keep")).unwrap(),
        b"excluded, so protected"
    );
    assert_eq!(fs::read(docs.join("a.txt")).unwrap(), b"alpha");
    let mut left = files_of(&restored(&target, &src));
    left.remove(Path::new("docs/notes.keep"));
    left.remove(Path::new("docs/old/deeper/inner.keep"));
    assert_eq!(left, files_of(&src));

    // --delete alone would remove without replacing: refused as a usage error.
    let out = env.run(&restore_args(&target, &["--delete"]));
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--overwrite"), "{}", stderr(&out));
}

#[test]
fn overwrite_modes_never_and_if_newer() {
    let env = Env::init();
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("older-here"), b"snapshot").unwrap();
    fs::write(src.join("newer-here"), b"snapshot").unwrap();
    env.ok(&["backup", src.to_str().unwrap()]);
    let target = env.path("out");
    env.ok(&restore_args(&target, &[]));
    let dir = restored(&target, &src);
    let set = |name: &str, secs: i64| {
        let p = dir.join(name);
        fs::write(&p, b"local edit").unwrap();
        set_mtime(&p, secs, 0);
    };
    set("older-here", 1_000_000_000); // 2001: older than the snapshot's
    set("newer-here", 4_000_000_000); // 2096: newer

    let never = restore_json(&env, &target, &["--overwrite", "never"]);
    assert_eq!(never["files_skipped"].as_u64(), Some(2), "{never}");
    assert_eq!(fs::read(dir.join("older-here")).unwrap(), b"local edit");

    let newer = restore_json(&env, &target, &["--overwrite", "if-newer"]);
    assert_eq!(
        (
            newer["files_restored"].as_u64(),
            newer["files_skipped"].as_u64()
        ),
        (Some(1), Some(1)),
        "{newer}"
    );
    assert_eq!(fs::read(dir.join("older-here")).unwrap(), b"snapshot");
    assert_eq!(fs::read(dir.join("newer-here")).unwrap(), b"local edit");

    let out = env.run(&restore_args(&target, &["--overwrite", "sometimes"]));
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("expected always, if-changed, if-newer or never"));
}
