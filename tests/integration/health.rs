//! `floe health`: the age of each group's newest snapshot against `--max-age`, exit 14 when one
//! is too old, and stale locks reported; for monitoring, so it reads no pack and takes no lock.

use std::fs;
use std::time::{Duration, Instant};

use crate::common::*;

fn health(env: &Env, args: &[&str]) -> (Option<i32>, String, String) {
    let mut all = vec!["health"];
    all.extend_from_slice(args);
    let out = env.run(&all);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr(&out),
    )
}

#[test]
fn a_group_without_a_recent_snapshot_is_named_and_exits_14() {
    let env = Env::init();
    let (code, out, _) = health(&env, &["--max-age", "26h"]);
    assert_eq!(code, Some(14), "{out}");
    assert!(out.contains("has no snapshot"), "{out}");

    let (old, new) = (env.path("old"), env.path("new"));
    for d in [&old, &new] {
        fs::create_dir_all(d).unwrap();
        fs::write(d.join("f"), b"x").unwrap();
    }
    let three_days_ago = (chrono::Local::now() - chrono::Duration::days(3)).to_rfc3339();
    env.ok(&["backup", "--time", &three_days_ago, old.to_str().unwrap()]);
    env.ok(&["backup", new.to_str().unwrap()]);
    let locks_before = fs::read_dir(env.repo.join("locks")).unwrap().count();

    let (code, out, _) = health(&env, &["--max-age", "26h"]);
    assert_eq!(code, Some(14), "{out}");
    let stale = out.lines().find(|l| l.starts_with("STALE")).unwrap();
    assert!(
        stale.contains(old.to_str().unwrap()) && stale.contains("3d"),
        "{out}"
    );
    assert!(stale.contains("older than 1d 2h"), "{out}");
    assert!(out
        .lines()
        .any(|l| l.starts_with("ok") && l.contains(new.to_str().unwrap())));

    let (code, out, _) = health(&env, &["--max-age", "4d"]);
    assert_eq!(code, Some(0), "{out}");
    let (code, out, _) = health(&env, &["--max-age", "26h", "--path", new.to_str().unwrap()]);
    assert_eq!(code, Some(0), "the filters choose the groups: {out}");
    let (code, out, _) = health(&env, &["--max-age", "26h", "--host", "no-such-host"]);
    assert_eq!(code, Some(14));
    assert!(out.contains("no snapshot matches the filters"), "{out}");

    // Under -q only what is wrong is printed.
    let (_, quiet, _) = health(&env, &["-q", "--max-age", "26h"]);
    assert_eq!(quiet.lines().count(), 1, "{quiet}");
    assert!(quiet.starts_with("STALE"), "{quiet}");

    let (code, json, _) = health(&env, &["--max-age", "26h", "--json"]);
    assert_eq!(code, Some(14));
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["ok"], false);
    assert_eq!(v["max_age_seconds"], 26 * 3600);
    let groups = v["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 2);
    assert_eq!(groups[0]["stale"], true);
    assert!(groups[0]["age_seconds"].as_u64().unwrap() >= 3 * 86_400 - 60);
    // Nothing was written: no lock taken.
    assert_eq!(
        fs::read_dir(env.repo.join("locks")).unwrap().count(),
        locks_before
    );
}

#[test]
fn a_lock_left_by_a_killed_backup_is_reported_and_a_missing_repository_exits_10() {
    let env = Env::init();
    let mut child = env
        .cmd()
        .args(["backup", "--stdin-from-command", "--", "sleep", "30"])
        .spawn()
        .unwrap();
    let started = Instant::now();
    // A lock file, not the temporary file it is written through.
    let lock_written = || {
        fs::read_dir(env.repo.join("locks"))
            .unwrap()
            .any(|e| !e.unwrap().file_name().to_string_lossy().starts_with('.'))
    };
    while !lock_written() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no lock appeared"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let (code, _, err) = health(&env, &["--max-age", "1h"]);
    assert_eq!(code, Some(14), "no snapshot yet");
    assert!(
        err.contains("warning: stale") && err.contains("backup"),
        "{err}"
    );

    let mut missing = Env::new();
    missing.repo = env.path("nothing-here");
    let (code, _, err) = health(&missing, &["--max-age", "1h"]);
    assert_eq!(code, Some(10), "{err}");
    let out = missing.run(&["health"]);
    assert_eq!(out.status.code(), Some(2), "--max-age is required");
}

#[test]
fn a_snapshot_dated_in_the_future_is_warned_about() {
    let env = Env::init();
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("f"), b"x").unwrap();
    let ahead = (chrono::Local::now() + chrono::Duration::days(30)).to_rfc3339();
    env.ok(&["backup", "--time", &ahead, src.to_str().unwrap()]);
    let (code, _, err) = health(&env, &["--max-age", "26h"]);
    assert_eq!(code, Some(0));
    assert!(
        err.contains("in the future") && err.contains("clock"),
        "{err}"
    );
}
