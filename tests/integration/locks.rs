//! Repository locks: concurrent backups, a blocked command (exit 11), waiting, unlock.

use std::fs;
use std::time::Duration;

use floe_engine::LockOptions;

use crate::common::*;

fn exclusive(command: &str) -> LockOptions {
    LockOptions {
        exclusive: true,
        command: command.into(),
        ..LockOptions::default()
    }
}

#[test]
fn two_backups_at_once_both_succeed_and_restore() {
    let env = Env::init();
    let (a, b) = (env.path("a"), env.path("b"));
    // Large enough that each backup takes a good part of a second, so that they overlap.
    for (dir, seed) in [(&a, 1), (&b, 2)] {
        fs::create_dir_all(dir).unwrap();
        fs::write(dir.join("f"), random_bytes(seed, 24_000_000)).unwrap();
    }
    let first = env
        .cmd()
        .args(["backup".as_ref(), a.as_os_str()])
        .spawn()
        .unwrap();
    let second = env
        .cmd()
        .args(["backup".as_ref(), b.as_os_str()])
        .spawn()
        .unwrap();
    for child in [first, second] {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let snaps: serde_json::Value = serde_json::from_str(&env.ok(&["snapshots", "--json"])).unwrap();
    assert_eq!(snaps.as_array().unwrap().len(), 2);
    // They ran at the same time: each started before the other ended.
    let span = |s: &serde_json::Value| {
        let t = |k: &str| {
            chrono::DateTime::parse_from_rfc3339(s["summary"][k].as_str().unwrap()).unwrap()
        };
        (t("backup_start"), t("backup_end"))
    };
    let (x, y) = (span(&snaps[0]), span(&snaps[1]));
    assert!(
        x.0 < y.1 && y.0 < x.1,
        "the backups did not overlap: {x:?} and {y:?}"
    );
    for (i, s) in snaps.as_array().unwrap().iter().enumerate() {
        let t = env.restore(s["id"].as_str().unwrap(), &format!("out{i}"));
        let src = std::path::PathBuf::from(s["paths"][0].as_str().unwrap());
        assert_eq!(
            fs::read(restored(&t, &src).join("f")).unwrap(),
            fs::read(src.join("f")).unwrap()
        );
    }
    assert!(
        fs::read_dir(env.repo.join("locks"))
            .unwrap()
            .next()
            .is_none(),
        "locks are removed"
    );
}

#[test]
fn an_exclusive_lock_blocks_backup_with_exit_11_until_released() {
    let env = Env::init();
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("f"), b"x").unwrap();
    let repo = env.open_repo();
    let held = floe_engine::lock(&repo, &exclusive("prune")).unwrap();
    let out = env.run(&["backup".as_ref(), src.as_os_str()]);
    assert_eq!(out.status.code(), Some(11), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("an exclusive lock held by")
            && err.contains(&format!("pid {}", std::process::id()))
            && err.contains("prune"),
        "{err}"
    );

    // With --retry-lock, the backup waits for the holder to finish.
    let releaser = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(1500));
        drop(held);
    });
    let started = std::time::Instant::now();
    let out = env.run(&[
        "--retry-lock".as_ref(),
        "30s".as_ref(),
        "backup".as_ref(),
        src.as_os_str(),
    ]);
    let waited = started.elapsed();
    assert!(out.status.success(), "{}", stderr(&out));
    releaser.join().unwrap();
    assert!(
        waited >= Duration::from_millis(1400) && waited < Duration::from_secs(30),
        "the backup waited {waited:?} for a lock released after 1.5 s"
    );
}

#[test]
fn unlock_removes_stale_locks_only_unless_asked() {
    let env = Env::init();
    let repo = env.open_repo();
    // A lock of a live process (this test) is not stale.
    let held = floe_engine::lock(&repo, &exclusive("prune")).unwrap();
    std::mem::forget(held); // leave its file behind, as a crashed holder on another host would
    assert_eq!(env.ok(&["unlock"]).trim(), "removed 0 lock(s)");
    assert_eq!(
        env.ok(&["unlock", "--remove-all"]).trim(),
        "removed 1 lock(s)"
    );
    assert!(fs::read_dir(env.repo.join("locks"))
        .unwrap()
        .next()
        .is_none());
}

#[test]
fn a_dry_run_of_forget_shares_the_repository_and_listings_still_meet_an_exclusive_lock() {
    let env = Env::init();
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("f"), b"one").unwrap();
    env.ok(&["backup".as_ref(), src.as_os_str()]);
    fs::write(src.join("f"), b"two").unwrap();
    env.ok(&["backup".as_ref(), src.as_os_str()]);
    let repo = env.open_repo();

    // A backup holds the repository: a dry run plans beside it, a real forget waits its turn.
    let backup = LockOptions {
        command: "backup".into(),
        ..LockOptions::default()
    };
    let held = floe_engine::lock(&repo, &backup).unwrap();
    let dry = env.ok(&["forget", "--keep-last", "1", "--dry-run"]);
    assert!(dry.contains("1 snapshot(s) would be removed"), "{dry}");
    for args in [
        &["forget", "--keep-last", "1"][..],
        &["forget", "--keep-last", "1", "--dry-run", "--prune"][..],
    ] {
        let out = env.run(args);
        assert_eq!(out.status.code(), Some(11), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains("backup"), "{}", stderr(&out));
    }
    // With --no-lock, the dry run writes no lock of its own.
    let locks = || fs::read_dir(env.repo.join("locks")).unwrap().count();
    assert_eq!(locks(), 1);
    env.ok(&["--no-lock", "forget", "--keep-last", "1", "--dry-run"]);
    assert_eq!(locks(), 1);
    drop(held);

    // Listings read while their lock is taken, and still stop at an exclusive holder.
    let held = floe_engine::lock(&repo, &exclusive("prune")).unwrap();
    for args in [
        &["ls", "latest"][..],
        &["find", "f"][..],
        &["forget", "--keep-last", "1", "--dry-run"][..],
    ] {
        let out = env.run(args);
        assert_eq!(out.status.code(), Some(11), "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("an exclusive lock held by"),
            "{}",
            stderr(&out)
        );
        assert!(out.stdout.is_empty(), "{args:?} printed before failing");
    }
    drop(held);
    let snaps: serde_json::Value = serde_json::from_str(&env.ok(&["snapshots", "--json"])).unwrap();
    assert_eq!(snaps.as_array().unwrap().len(), 2, "nothing was removed");
    assert_eq!(locks(), 0);
}
