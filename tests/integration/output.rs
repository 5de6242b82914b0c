//! What floe prints while it runs: progress on a terminal, JSON status lines, -v and -q.

use std::fs;
use std::process::{Command, Stdio};

use crate::common::*;

/// A stream backup that lasts about `seconds`: the command pauses between two writes.
fn slow_stream(seconds: f32) -> Vec<String> {
    let script =
        format!("head -c 100000 /dev/urandom; sleep {seconds}; head -c 100000 /dev/urandom");
    ["--stdin-from-command", "--", "sh", "-c", &script]
        .map(String::from)
        .to_vec()
}

#[test]
fn json_backups_and_restores_print_status_lines_then_the_summary() {
    let env = Env::init();
    let mut args = vec!["backup".to_string(), "--json".into()];
    args.extend(slow_stream(2.5));
    let out = env.run(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8(out.stdout.clone()).unwrap();
    let statuses: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|v: &serde_json::Value| v["message_type"] == "status")
        .collect();
    assert!(
        statuses.len() >= 2,
        "status lines while the backup ran: {text}"
    );
    assert!(
        statuses[0]["bytes_done"].as_u64().unwrap() >= 100000,
        "{text}"
    );
    let summary = summary_json(&out.stdout);
    assert_eq!(summary["summary"]["bytes_read"], 200000);
    // --json before the command works as after it.
    let out = env.run(&["--json", "snapshots"]);
    assert!(serde_json::from_slice::<serde_json::Value>(&out.stdout)
        .unwrap()
        .is_array());
    let target = env.path("out");
    let out = env.run(&[
        "restore",
        "latest",
        "--target",
        target.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(summary_json(&out.stdout)["files_restored"], 1);
}

#[test]
fn verbose_lists_every_file_and_quiet_prints_nothing() {
    let env = Env::init();
    let dir = env.path("src");
    fs::create_dir(&dir).unwrap();
    fs::write(dir.join("a"), b"a").unwrap();
    fs::write(dir.join("b"), b"b").unwrap();
    let d = dir.to_str().unwrap();
    let out = env.ok(&["backup", "-v", d]);
    assert!(out.contains(&format!("new       {d}/a")), "{out}");
    fs::write(dir.join("b"), b"bb").unwrap();
    let out = env.ok(&["-v", "backup", d]);
    assert!(out.contains(&format!("unchanged {d}/a")), "{out}");
    assert!(out.contains(&format!("changed   {d}/b")), "{out}");
    let out = env.run(&["backup", "-q", d]);
    assert!(out.status.success());
    assert!(
        out.stdout.is_empty() && out.stderr.is_empty(),
        "-q printed {:?}",
        out
    );
    let out = env.run(&["backup", "-q", "-v", d]);
    assert_eq!(out.status.code(), Some(2), "-q and -v conflict");
}

#[test]
fn a_terminal_shows_a_progress_line_that_is_cleared_at_the_end() {
    let env = Env::init();
    let mut args = String::from("backup");
    for a in slow_stream(1.5) {
        args.push_str(&format!(" '{a}'"));
    }
    let text = on_terminal(&env, &args);
    assert!(text.contains("B/s"), "a rate was drawn: {text:?}");
    assert!(text.contains("\u{1b}[2K"), "the line is cleared: {text:?}");
    assert!(
        text.contains("snapshot ") && text.contains(" saved"),
        "{text}"
    );
    // Without a terminal, no progress at all.
    let mut args = vec!["backup".to_string()];
    args.extend(slow_stream(0.5));
    let out = env.run(&args);
    assert!(!stderr(&out).contains("B/s"), "{}", stderr(&out));
}

/// Runs floe under `script`, so that its stderr is a terminal; returns what it drew.
fn on_terminal(env: &Env, args: &str) -> String {
    let cmd = format!(
        "{} -r {} {args}",
        env!("CARGO_BIN_EXE_floe"),
        env.repo.display()
    );
    let out = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .env("FLOE_PASSWORD", PASSWORD)
        .stdin(Stdio::null())
        .output()
        .expect("the `script` program (util-linux) runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{args}: {text}");
    text
}

#[test]
fn check_repair_and_prune_count_packs_on_a_terminal() {
    let env = Env::init();
    let dir = env.path("src");
    fs::create_dir(&dir).unwrap();
    for i in 0..3u64 {
        fs::write(dir.join(format!("f{i}")), random_bytes(i, 1 << 20)).unwrap();
        env.ok(&["backup", dir.to_str().unwrap()]);
    }
    let check = on_terminal(&env, "check --read-data");
    assert!(check.contains("packs read"), "{check:?}");
    let repair = on_terminal(&env, "repair index");
    assert!(repair.contains("pack headers read"), "{repair:?}");
    env.ok(&["forget", "--keep-last", "1"]);
    fs::remove_file(dir.join("f0")).unwrap();
    env.ok(&["backup", dir.to_str().unwrap()]);
    env.ok(&["forget", "--keep-last", "1"]);
    let prune = on_terminal(&env, "prune --max-unused 0");
    assert!(prune.contains("packs repacked or deleted"), "{prune:?}");
    // The counts are drawn on stderr only: without a terminal, none of it.
    let out = env.run(&["check", "--read-data"]);
    assert!(!stderr(&out).contains("packs read"), "{}", stderr(&out));
}
