//! `floe copy`: snapshots copied between repositories with different passwords, locally and
//! between S3 servers; restores of the copies are byte-exact, repeated copies add nothing, and
//! a copy stopped half way finishes on the next run.

use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;

use crate::common::*;
use crate::s3::{garage, make_source, moto};

const SOURCE_PASSWORD: &str = "the source has its own password";

/// A source repository with its own password.
fn source_env() -> Env {
    let mut env = Env::new();
    env.vars
        .push(("FLOE_PASSWORD".into(), SOURCE_PASSWORD.into()));
    env
}

/// Runs `floe copy` into `dest` from `src`, with the source's password in FLOE_FROM_PASSWORD.
fn copy<S: AsRef<OsStr>>(dest: &Env, src: &Env, args: &[S]) -> Output {
    dest.cmd()
        .arg("copy")
        .arg("--from-repo")
        .arg(&src.repo)
        .env("FLOE_FROM_PASSWORD", SOURCE_PASSWORD)
        .args(args)
        .output()
        .expect("run floe copy")
}

/// As [`copy`] with `--json`, asserting exit 0; the summary.
fn copy_json(dest: &Env, src: &Env, args: &[&str]) -> serde_json::Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let out = copy(dest, src, &all);
    assert!(out.status.success(), "copy failed: {}", stderr(&out));
    summary_json(&out.stdout)
}

fn snapshot_count(env: &Env) -> usize {
    let out = env.ok(&["snapshots", "--json"]);
    serde_json::from_str::<Vec<serde_json::Value>>(&out)
        .expect("a JSON list")
        .len()
}

fn restore_latest(env: &Env, name: &str, src: &Path) -> PathBuf {
    let target = env.restore("latest", name);
    restored(&target, src)
}

fn a_tree(env: &Env, big: usize) -> PathBuf {
    let src = env.path("src");
    fs::create_dir_all(src.join("d/e")).unwrap();
    fs::write(src.join("big"), random_bytes(1, big)).unwrap();
    fs::write(src.join("d/small"), b"small\n").unwrap();
    fs::write(src.join("d/e/empty"), b"").unwrap();
    std::os::unix::fs::symlink("d/small", src.join("link")).unwrap();
    src
}

#[test]
fn a_copy_restores_byte_exact_and_copying_again_or_back_adds_nothing() {
    let (src_repo, dest) = (source_env(), Env::new());
    src_repo.ok(&["init"]);
    dest.ok(&["init"]);
    let tree = a_tree(&src_repo, 3 << 20);
    src_repo.ok(&["backup", "--tag", "nightly", tree.to_str().unwrap()]);

    // A dry run names the snapshot and writes nothing.
    let out = copy(&dest, &src_repo, &["--dry-run"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("would copy 1 snapshot(s)"), "{text}");
    assert_eq!(snapshot_count(&dest), 0);
    assert_eq!(dest.data_bytes(), 0);

    let first = copy_json(&dest, &src_repo, &[]);
    assert_eq!(first["copied"].as_array().unwrap().len(), 1, "{first}");
    // `big` is one chunk or more (where it is cut depends on the repository's chunker seed),
    // `d/small` one.
    assert!(first["data_blobs_added"].as_u64().unwrap() >= 2, "{first}");
    let out = dest.ok(&["snapshots", "--json"]);
    assert!(out.contains("nightly"), "tags are kept: {out}");
    assert!(
        out.contains(first["copied"][0]["source"].as_str().unwrap()),
        "the copy names its source snapshot as original: {out}"
    );
    assert_same_tree(&tree, &restore_latest(&dest, "out", &tree), false);
    let check = dest.ok(&["check", "--read-data"]);
    assert!(check.contains(" 0 error(s), 0 warning(s)"), "{check}");

    let again = copy_json(&dest, &src_repo, &[]);
    assert_eq!(again["copied"].as_array().unwrap().len(), 0, "{again}");
    assert_eq!(again["snapshots_present"], 1, "{again}");
    assert_eq!(again["data_blobs_read"], 0, "{again}");

    // Back into the source, with the passwords swapped: the copy is recognised as its original.
    let back = src_repo
        .cmd()
        .args(["copy", "--json", "--from-repo"])
        .arg(&dest.repo)
        .env("FLOE_FROM_PASSWORD", PASSWORD)
        .output()
        .unwrap();
    assert!(back.status.success(), "{}", stderr(&back));
    let back = summary_json(&back.stdout);
    assert_eq!(back["copied"].as_array().unwrap().len(), 0, "{back}");
    assert_eq!(snapshot_count(&src_repo), 1);
}

#[test]
fn a_later_copy_reads_only_the_new_data() {
    let (src_repo, dest) = (source_env(), Env::new());
    src_repo.ok(&["init"]);
    dest.ok(&["init"]);
    let tree = a_tree(&src_repo, 6 << 20);
    src_repo.ok(&["backup", tree.to_str().unwrap()]);
    let first = copy_json(&dest, &src_repo, &[]);
    fs::write(tree.join("d/new"), random_bytes(9, 100_000)).unwrap();
    src_repo.ok(&["backup", tree.to_str().unwrap()]);

    let second = copy_json(&dest, &src_repo, &[]);
    assert_eq!(second["copied"].as_array().unwrap().len(), 1, "{second}");
    assert_eq!(
        second["data_blobs_read"], 1,
        "only the new file is read: {second}"
    );
    assert!(
        second["bytes_read"].as_u64().unwrap() < first["bytes_read"].as_u64().unwrap() / 10,
        "{second}"
    );
    assert_same_tree(&tree, &restore_latest(&dest, "out", &tree), false);
}

#[test]
fn filters_and_ids_choose_what_is_copied() {
    let (src_repo, dest) = (source_env(), Env::new());
    src_repo.ok(&["init"]);
    dest.ok(&["init"]);
    let tree = a_tree(&src_repo, 1000);
    src_repo.ok(&["backup", "--tag", "a", tree.to_str().unwrap()]);
    src_repo.ok(&["backup", "--tag", "b", tree.to_str().unwrap()]);
    let r = copy_json(&dest, &src_repo, &["--tag", "b"]);
    assert_eq!(r["copied"].as_array().unwrap().len(), 1, "{r}");
    let listed = dest.ok(&["snapshots", "--tag", "b", "--json"]);
    assert!(listed.contains(r["copied"][0]["snapshot"].as_str().unwrap()));
    let r = copy_json(&dest, &src_repo, &["latest"]);
    assert_eq!(
        r["snapshots_present"], 1,
        "latest is the one copied already: {r}"
    );
    let out = copy(&dest, &src_repo, &["--host", "no-such-host"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("no snapshot matches"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_wrong_or_missing_source_says_which_repository_and_exits_as_documented() {
    let (src_repo, dest) = (source_env(), Env::init());
    src_repo.ok(&["init"]);
    let out = dest
        .cmd()
        .args(["copy", "--from-repo"])
        .arg(&src_repo.repo)
        .env("FLOE_FROM_PASSWORD", "wrong")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(12), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("source repository"),
        "{}",
        stderr(&out)
    );
    let missing = dest.path("nothing-here");
    let out = dest
        .cmd()
        .args(["copy", "--from-repo"])
        .arg(&missing)
        .env("FLOE_FROM_PASSWORD", SOURCE_PASSWORD)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(10), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("source repository"),
        "{}",
        stderr(&out)
    );
    let out = dest.run(&["copy"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "a missing option is a usage error"
    );
    assert!(stderr(&out).contains("--from-repo"), "{}", stderr(&out));
    // A repository into itself.
    let out = dest
        .cmd()
        .args(["copy", "--from-repo"])
        .arg(&dest.repo)
        .env("FLOE_FROM_PASSWORD", PASSWORD)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("same repository"), "{}", stderr(&out));
}

#[test]
fn copied_chunker_params_let_later_backups_deduplicate_against_copied_data() {
    let src_repo = source_env();
    src_repo.ok(&["init"]);
    let tree = a_tree(&src_repo, 8 << 20);
    src_repo.ok(&["backup", tree.to_str().unwrap()]);
    // The same content under another path, as the destination's own machine would have it.
    let elsewhere = src_repo.path("elsewhere");
    fs::create_dir_all(&elsewhere).unwrap();
    fs::copy(tree.join("big"), elsewhere.join("big-copy")).unwrap();

    let added_after_copy = |shared: bool| {
        let dest = Env::new();
        let mut init = dest.cmd();
        init.arg("init");
        if shared {
            init.args(["--copy-chunker-params", "--from-repo"])
                .arg(&src_repo.repo)
                .env("FLOE_FROM_PASSWORD", SOURCE_PASSWORD);
        }
        let out = init.output().unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        copy_json(&dest, &src_repo, &[]);
        let r = dest.backup_json(&[&elsewhere]);
        r["summary"]["bytes_added"].as_u64().unwrap()
    };
    let shared = added_after_copy(true);
    let own = added_after_copy(false);
    assert!(
        shared < 64 << 10,
        "{shared} bytes added with shared chunking"
    );
    assert!(
        own > 7 << 20,
        "{own} bytes added with the destination's own chunking"
    );
}

#[test]
fn copy_chunker_params_needs_a_source_and_a_version_2_destination() {
    let dest = Env::new();
    let out = dest.run(&["init", "--copy-chunker-params"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--from-repo"), "{}", stderr(&out));
    let src_repo = source_env();
    src_repo.ok(&["init"]);
    let out = dest
        .cmd()
        .args(["init", "--repository-version", "1", "--copy-chunker-params"])
        .arg("--from-repo")
        .arg(&src_repo.repo)
        .env("FLOE_FROM_PASSWORD", SOURCE_PASSWORD)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("version 2"), "{}", stderr(&out));
    assert!(!dest.repo.exists(), "nothing was created");
}

/// Kills a copy after its third pack has landed: the destination still checks clean, and the
/// next run indexes what landed instead of uploading it again.
#[cfg(feature = "failpoints")]
#[test]
fn a_copy_killed_half_way_finishes_on_the_next_run_without_uploading_again() {
    let src_repo = source_env();
    src_repo.ok(&["init", "--pack-size-mib", "1"]);
    let tree = a_tree(&src_repo, 12 << 20);
    src_repo.ok(&["backup", tree.to_str().unwrap()]);
    let (dest, reference) = (Env::new(), Env::new());
    for d in [&dest, &reference] {
        d.ok(&["init", "--pack-size-mib", "1"]);
    }
    let whole = copy_json(&reference, &src_repo, &[]);

    let mut killed = dest.cmd();
    killed
        .args(["copy", "--from-repo"])
        .arg(&src_repo.repo)
        .env("FLOE_FROM_PASSWORD", SOURCE_PASSWORD)
        .env("FLOE_FAILPOINT", "copy-after-pack-3");
    let out = killed.output().unwrap();
    assert!(!out.status.success(), "the failpoint stops the copy");
    assert_eq!(snapshot_count(&dest), 0);
    let check = dest.ok(&["check"]);
    assert!(check.contains(" 0 error(s)"), "{check}");
    // The killed process left its lock behind, as any killed command does.
    dest.ok(&["unlock"]);

    let resumed = copy_json(&dest, &src_repo, &[]);
    // Packs finish on several threads: others may land while the third one stops the run.
    let leftovers = resumed["leftover_packs_indexed"].as_u64().unwrap();
    assert!((3..=5).contains(&leftovers), "{resumed}");
    let landed = resumed["data_blobs_present"].as_u64().unwrap();
    assert!(landed > 0, "{resumed}");
    assert_eq!(
        resumed["data_blobs_added"].as_u64().unwrap() + landed,
        whole["data_blobs_added"].as_u64().unwrap(),
        "every blob is in the destination once: {resumed} vs {whole}"
    );
    let check = dest.ok(&["check", "--read-data"]);
    assert!(check.contains(" 0 error(s), 0 warning(s)"), "{check}");
    assert_same_tree(&tree, &restore_latest(&dest, "out", &tree), false);
}

#[cfg(not(feature = "failpoints"))]
#[test]
#[ignore = "needs the failpoints feature: cargo test --all-features (what .ci/run does)"]
fn a_copy_killed_half_way_finishes_on_the_next_run_without_uploading_again() {}

#[test]
fn local_to_garage_then_garage_to_moto_with_three_passwords() {
    let test = "local_to_garage_then_garage_to_moto_with_three_passwords";
    let (Some(g), Some(m)) = (garage(test), moto(test)) else {
        return;
    };
    let local = source_env();
    local.ok(&["init"]);
    let tree = make_source(&local, 5 << 20);
    local.ok(&["backup", tree.to_str().unwrap()]);

    let on_garage = g.env(&g.url("copy"));
    on_garage.ok(&["init"]);
    let r = copy_json(&on_garage, &local, &[]);
    assert_eq!(r["copied"].as_array().unwrap().len(), 1, "{r}");

    let mut on_moto = m.env(&m.url("copy"));
    on_moto
        .vars
        .push(("FLOE_PASSWORD".into(), "moto has a third password".into()));
    on_moto.ok(&["init"]);
    let out = on_moto
        .cmd()
        .args(["copy", "--json", "--from-repo"])
        .arg(&on_garage.repo)
        .env("FLOE_FROM_PASSWORD", PASSWORD)
        .env("FLOE_FROM_S3_REGION", &g.region)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let r = summary_json(&out.stdout);
    assert_eq!(r["copied"].as_array().unwrap().len(), 1, "{r}");

    assert_same_tree(&tree, &restore_latest(&on_moto, "out", &tree), false);
    let check = on_moto.ok(&["check", "--read-data"]);
    assert!(check.contains(" 0 error(s), 0 warning(s)"), "{check}");
    let again = copy_json(&on_garage, &local, &[]);
    assert_eq!(again["copied"].as_array().unwrap().len(), 0, "{again}");
}

#[test]
fn a_source_in_deep_archive_gets_a_thaw_plan_then_copies_after_the_thaw() {
    let test = "a_source_in_deep_archive_gets_a_thaw_plan_then_copies_after_the_thaw";
    let Some(m) = moto(test) else {
        return;
    };
    let mut cold = m.env(&m.url("cold-copy"));
    cold.vars
        .push(("FLOE_PASSWORD".into(), SOURCE_PASSWORD.into()));
    cold.vars
        .push(("FLOE_DATA_STORAGE_CLASS".into(), "DEEP_ARCHIVE".into()));
    cold.ok(&["init"]);
    let tree = a_tree(&cold, 3 << 20);
    cold.ok(&["backup", tree.to_str().unwrap()]);
    let dest = Env::init();
    let run = |extra: &[&str]| {
        dest.cmd()
            .args(["copy", "--from-repo"])
            .arg(&cold.repo)
            .env("FLOE_FROM_PASSWORD", SOURCE_PASSWORD)
            .env("FLOE_FROM_S3_REGION", &m.region)
            .args(extra)
            .output()
            .unwrap()
    };
    let out = run(&[]);
    assert_eq!(out.status.code(), Some(13), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("in DEEP_ARCHIVE") && stderr(&out).contains("--thaw"),
        "{}",
        stderr(&out)
    );
    assert_eq!(snapshot_count(&dest), 0);
    assert_eq!(
        dest.data_bytes(),
        0,
        "nothing is written before the data can be read"
    );

    let out = run(&["--thaw", "--thaw-poll", "1s"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_same_tree(&tree, &restore_latest(&dest, "out", &tree), false);
}

#[test]
fn a_copy_compresses_its_blobs_as_its_compression_option_says() {
    let src = source_env();
    src.ok(&["init"]);
    let dir = src.path("src");
    fs::create_dir_all(&dir).unwrap();
    let text: String = (0..150_000)
        .map(|i| format!("{i} an entry of the log\n"))
        .collect();
    fs::write(dir.join("log"), &text).unwrap();
    src.ok(&[OsStr::new("backup"), dir.as_os_str()]);
    assert!(
        src.data_bytes() * 4 < text.len() as u64,
        "{}",
        src.data_bytes()
    );

    let dest = Env::init();
    let out = copy(&dest, &src, &["--compression", "off"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        dest.data_bytes() >= text.len() as u64,
        "{}",
        dest.data_bytes()
    );
    let back = restore_latest(&dest, "r", &dir);
    assert_eq!(fs::read(back.join("log")).unwrap(), text.as_bytes());
    dest.ok(&["check", "--read-data"]);
}
