//! S3 repositories against real servers: a 3-node Garage cluster and moto's S3 server, both
//! started by `tests/servers/with-s3-servers.sh` (which `.ci/run` uses).
//!
//! Without those servers the tests skip and say so, unless `CI=true` or `FLOE_TEST_REQUIRE_S3=1`,
//! where a missing server is a failure.

use std::fs;
use std::process::Command;
use std::time::{Duration, Instant};

use floe_engine::conformance;
use floe_engine::{Backend, FileType, StorageClass};
use floe_engine::{S3Backend, S3Options, ThawState};

use crate::common::*;

/// One S3 server of the test setup.
#[derive(Clone)]
pub struct Server {
    pub endpoint: String,
    pub bucket: String,
    pub region: String,
}

fn required() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
        || std::env::var("FLOE_TEST_REQUIRE_S3").is_ok_and(|v| v == "1")
}

fn server(name: &str, test: &str) -> Option<Server> {
    let var = |k: &str| std::env::var(format!("FLOE_TEST_{name}_{k}")).ok();
    match var("ENDPOINT") {
        Some(endpoint) => Some(Server {
            endpoint,
            bucket: var("BUCKET").unwrap_or_else(|| format!("floe-{}", unique())),
            region: var("REGION").unwrap_or_else(|| "us-east-1".into()),
        }),
        None if required() => panic!(
            "{test}: FLOE_TEST_{name}_ENDPOINT is not set, but S3 tests are required here; run \
             the suite under tests/servers/with-s3-servers.sh"
        ),
        None => {
            eprintln!(
                "SKIPPED {test}: no {name} server (FLOE_TEST_{name}_ENDPOINT is not set); run \
                 tests/servers/with-s3-servers.sh cargo test to include it"
            );
            None
        }
    }
}

pub fn garage(test: &str) -> Option<Server> {
    server("GARAGE", test)
}

pub fn moto(test: &str) -> Option<Server> {
    server("MOTO", test)
}

pub fn unique() -> String {
    hex::encode(rand::random::<[u8; 6]>())
}

impl Server {
    /// A repository location under a prefix no other test uses.
    pub fn url(&self, test: &str) -> String {
        format!("s3:{}/{}/{test}-{}", self.endpoint, self.bucket, unique())
    }

    pub fn backend(&self, url: &str) -> S3Backend {
        let mut o = S3Options::parse_url(url).expect("parse test url");
        o.region = Some(self.region.clone());
        S3Backend::new(&o).expect("S3 backend")
    }

    /// A test environment whose repository is `url`.
    pub fn env(&self, url: &str) -> Env {
        let mut env = Env::new();
        env.repo = url.into();
        env.vars
            .push(("FLOE_S3_REGION".into(), self.region.clone()));
        env
    }
}

/// A source tree with small, empty, chunked and incompressible files.
pub fn make_source(env: &Env, big: usize) -> std::path::PathBuf {
    let src = env.path("src");
    fs::create_dir_all(src.join("docs/deep")).unwrap();
    fs::write(src.join("empty"), b"").unwrap();
    for i in 0..40u64 {
        fs::write(
            src.join(format!("docs/note-{i}.txt")),
            format!("note {i}\n").repeat(i as usize * 50),
        )
        .unwrap();
    }
    fs::write(src.join("docs/deep/random.bin"), random_bytes(7, big)).unwrap();
    fs::write(src.join("docs/deep/one"), b"1").unwrap();
    std::os::unix::fs::symlink("docs/note-3.txt", src.join("link")).unwrap();
    src
}

#[test]
fn conformance_on_garage() {
    let Some(s) = garage("conformance_on_garage") else {
        return;
    };
    let b = s.backend(&s.url("conformance"));
    b.create().expect("create");
    conformance::run_all(&b);
}

#[test]
fn conformance_on_moto() {
    let Some(s) = moto("conformance_on_moto") else {
        return;
    };
    let b = s.backend(&s.url("conformance"));
    b.create().expect("create (makes the bucket)");
    conformance::run_all(&b);
}

#[test]
fn backup_and_restore_through_garage_are_byte_exact() {
    let Some(s) = garage("backup_and_restore_through_garage_are_byte_exact") else {
        return;
    };
    let env = s.env(&s.url("roundtrip"));
    env.ok(&["init"]);
    let src = make_source(&env, 24 << 20);
    let report = env.backup_json(&[&src]);
    assert_eq!(
        report["summary"]["files_new"].as_u64(),
        Some(43),
        "{report}"
    );
    let target = env.restore("latest", "out");
    assert_same_tree(&src, &restored(&target, &src), false);
    // A second backup of the same tree finds every file unchanged and adds no data.
    let again = env.backup_json(&[&src]);
    assert_eq!(
        again["summary"]["files_unchanged"].as_u64(),
        Some(43),
        "{again}"
    );
    assert_eq!(
        again["summary"]["data_blobs_added"].as_u64(),
        Some(0),
        "{again}"
    );
    let out = env.ok(&["check", "--read-data"]);
    assert!(out.contains(" 0 error(s)"), "{out}");
    // The objects are where the layout says, with data packs under data/ only.
    let b = s.backend(&env.repo.to_string_lossy());
    assert!(!b.list(FileType::DataPack).unwrap().is_empty());
    assert!(!b.list(FileType::TreePack).unwrap().is_empty());
    assert_eq!(b.list(FileType::Config).unwrap().len(), 1);
}

#[test]
fn packs_reach_the_bucket_through_temporary_files_in_tmpdir() {
    let Some(s) = garage("packs_reach_the_bucket_through_temporary_files_in_tmpdir") else {
        return;
    };
    let env = s.env(&s.url("spool"));
    env.ok(&["init"]);
    let src = make_source(&env, 40 << 20);
    let spool = env.path("spool");
    fs::create_dir_all(&spool).unwrap();
    // What a backup killed two days ago left, and a file a running backup is writing.
    let killed = spool.join("floe-pack-Xk3q9Z");
    fs::write(&killed, vec![1u8; 1000]).unwrap();
    let two_days_ago = std::time::SystemTime::now() - Duration::from_secs(2 * 86400);
    let f = fs::File::options().write(true).open(&killed).unwrap();
    f.set_modified(two_days_ago).unwrap();
    fs::write(spool.join("floe-pack-running"), b"").unwrap();
    let out = env
        .cmd()
        .env("TMPDIR", &spool)
        .args(["backup".as_ref(), src.as_os_str()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let left: Vec<String> = fs::read_dir(&spool)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        left,
        ["floe-pack-running"],
        "its own files and the killed one's removed"
    );
    let target = env.restore("latest", "out");
    assert_same_tree(&src, &restored(&target, &src), false);

    // A temporary folder that cannot take them fails the backup clearly, and stores nothing.
    fs::write(src.join("new file"), random_bytes(9, 3 << 20)).unwrap();
    let out = env
        .cmd()
        .env("TMPDIR", env.path("no such folder"))
        .args(["backup".as_ref(), src.as_os_str()])
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("no such folder") && err.contains("TMPDIR"),
        "{err}"
    );
    let listed = env.ok(&["snapshots", "--json"]);
    assert_eq!(listed.matches("\"id\"").count(), 1, "{listed}");
    env.ok(&["check"]);
}

#[test]
fn a_garage_node_down_during_backup_loses_nothing() {
    let Some(s) = garage("a_garage_node_down_during_backup_loses_nothing") else {
        return;
    };
    let ctl = std::env::var("FLOE_TEST_GARAGE_CTL").expect("FLOE_TEST_GARAGE_CTL");
    let env = s.env(&s.url("node-down"));
    env.ok(&["init"]);
    let src = make_source(&env, 160 << 20);
    let mut backup = env
        .cmd()
        .args(["backup", "--json"])
        .arg(&src)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start backup");
    // Stop node 3 once the backup has written its first packs.
    let b = s.backend(&env.repo.to_string_lossy());
    let started = Instant::now();
    while b.list(FileType::DataPack).unwrap().len() < 2 {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "backup wrote no pack in 2 minutes"
        );
        if let Some(status) = backup.try_wait().unwrap() {
            panic!("backup ended ({status}) before the node could be stopped");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let stop = Command::new(&ctl)
        .args(["stop-node", "3"])
        .status()
        .unwrap();
    assert!(stop.success(), "could not stop node 3");
    let restart = || {
        let st = Command::new(&ctl)
            .args(["start-node", "3"])
            .status()
            .unwrap();
        assert!(st.success(), "could not restart node 3");
    };
    let out = backup.wait_with_output().unwrap();
    if !out.status.success() {
        restart();
        panic!(
            "backup failed with a node down: {:?}\n{}",
            out.status.code(),
            stderr(&out)
        );
    }
    // Restore with the node still down, then again with it back.
    let target = env.restore("latest", "out-degraded");
    assert_same_tree(&src, &restored(&target, &src), false);
    restart();
    let target = env.restore("latest", "out-healed");
    assert_same_tree(&src, &restored(&target, &src), false);
    let out = env.ok(&["check", "--read-data"]);
    assert!(out.contains(" 0 error(s)"), "{out}");
}

#[test]
fn data_packs_get_the_chosen_storage_class_and_nothing_else_does() {
    let Some(s) = moto("data_packs_get_the_chosen_storage_class_and_nothing_else_does") else {
        return;
    };
    let url = s.url("classes");
    let mut env = s.env(&url);
    env.vars
        .push(("FLOE_DATA_STORAGE_CLASS".into(), "DEEP_ARCHIVE".into()));
    env.ok(&["init"]);
    let src = make_source(&env, 6 << 20);
    env.ok(&["backup", src.to_str().unwrap()]);
    let b = s.backend(&url);
    let data = b.list(FileType::DataPack).unwrap();
    assert!(!data.is_empty());
    for e in &data {
        assert_eq!(e.storage_class, Some(StorageClass::DeepArchive), "{e:?}");
        let st = b.stat(FileType::DataPack, &e.id).unwrap();
        assert_eq!(st.storage_class, Some(StorageClass::DeepArchive));
        assert_eq!(st.thaw, ThawState::Archived);
    }
    for t in FileType::ALL {
        if t == FileType::DataPack {
            continue;
        }
        for e in b.list(t).unwrap() {
            assert_eq!(e.storage_class, Some(StorageClass::Standard), "{t:?} {e:?}");
            assert_eq!(b.stat(t, &e.id).unwrap().thaw, ThawState::Readable);
        }
    }
    // Everything but file contents still works; reading the contents asks for a thaw.
    let out = env.ok(&["snapshots"]);
    assert!(out.lines().any(|l| l.trim() == "1 snapshot"), "{out}");
    env.ok(&["ls", "latest"]);
    let out = env.run(&[
        "restore",
        "latest",
        "--target",
        env.path("out").to_str().unwrap(),
    ]);
    // Exit 13 and a plan (tests/integration/cold.rs covers thawing).
    assert_eq!(out.status.code(), Some(13), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("in DEEP_ARCHIVE") && err.contains("--thaw"),
        "{err}"
    );
}

#[test]
fn init_creates_a_missing_bucket_and_a_missing_repository_is_exit_10() {
    let Some(mut s) = moto("init_creates_a_missing_bucket_and_a_missing_repository_is_exit_10")
    else {
        return;
    };
    s.bucket = format!("floe-new-{}", unique());
    let env = s.env(&s.url("fresh"));
    let out = env.run(&["snapshots"]);
    assert_eq!(out.status.code(), Some(10), "{}", stderr(&out));
    assert!(stderr(&out).contains(&s.bucket), "{}", stderr(&out));
    env.ok(&["init"]);
    let out = env.ok(&["snapshots"]);
    assert!(out.contains("0 snapshots"), "{out}");
}

#[test]
fn read_only_credentials_browse_and_restore_with_no_lock() {
    let Some(s) = garage("read_only_credentials_browse_and_restore_with_no_lock") else {
        return;
    };
    let url = s.url("read-only");
    let env = s.env(&url);
    env.ok(&["init"]);
    let src = make_source(&env, 3 << 20);
    env.ok(&["backup", src.to_str().unwrap()]);

    let mut ro = s.env(&url);
    let var = |k: &str| std::env::var(k).unwrap_or_else(|_| panic!("{k} is not set"));
    ro.vars.extend([
        (
            "AWS_ACCESS_KEY_ID".into(),
            var("FLOE_TEST_GARAGE_RO_KEY_ID"),
        ),
        (
            "AWS_SECRET_ACCESS_KEY".into(),
            var("FLOE_TEST_GARAGE_RO_SECRET"),
        ),
    ]);
    // Without --no-lock the lock cannot be written, and the error says so.
    let out = ro.run(&["ls", "latest"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("/locks/") && stderr(&out).contains("HTTP 403"),
        "{}",
        stderr(&out)
    );
    // With it, every command that only reads works.
    let out = ro.ok(&["--no-lock", "ls", "latest"]);
    assert!(out.contains("/docs/deep"), "{out}");
    let out = ro.ok(&["--no-lock", "find", "deep"]);
    assert!(out.contains("/docs/deep\n"), "{out}");
    ro.ok(&["--no-lock", "diff", "latest", "latest"]);
    let target = ro.path("out");
    ro.ok(&[
        "--no-lock",
        "restore",
        "latest",
        "--target",
        target.to_str().unwrap(),
    ]);
    assert_same_tree(&src, &restored(&target, &src), false);
    let out = ro.ok(&["--no-lock", "check", "--read-data"]);
    assert!(out.contains(" 0 error(s)"), "{out}");
    // Commands that write refuse it.
    let out = ro.run(&["--no-lock", "backup", src.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("backup changes the repository and always takes a lock"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn refused_credentials_name_bucket_key_and_code_and_are_not_retried() {
    let Some(s) = garage("refused_credentials_name_bucket_key_and_code_and_are_not_retried") else {
        return;
    };
    let mut env = s.env(&s.url("denied"));
    env.vars.extend([
        (
            "AWS_ACCESS_KEY_ID".into(),
            "GK0123456789abcdef01234567".into(),
        ),
        (
            "AWS_SECRET_ACCESS_KEY".into(),
            "0000000000000000000000000000000000000000000000000000000000000000".into(),
        ),
        // Many attempts: a retried 403 would take minutes, an unretried one returns at once.
        ("FLOE_S3_ATTEMPTS".into(), "100".into()),
    ]);
    let started = Instant::now();
    let out = env.run(&["snapshots"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!("s3://{}/", s.bucket)) && err.contains("HTTP 403"),
        "{err}"
    );
    assert!(
        err.contains("InvalidAccessKeyId") || err.contains("AccessDenied"),
        "{err}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "a refused request was retried ({:?})",
        started.elapsed()
    );
}

/// The fault-injecting proxy of `tests/servers/flaky_proxy.py`, in front of a server.
pub struct FlakyProxy {
    child: std::process::Child,
    pub endpoint: String,
    stats: std::path::PathBuf,
}

impl FlakyProxy {
    pub fn start(upstream: &str, stats: std::path::PathBuf) -> Self {
        Self::spawn(upstream, stats, &[])
    }

    /// A proxy that injects nothing and logs every request ("METHOD PATH") to `log`.
    pub fn recording(upstream: &str, stats: std::path::PathBuf, log: &std::path::Path) -> Self {
        Self::spawn(upstream, stats, &["--record".as_ref(), log.as_os_str()])
    }

    /// A proxy that meets each request with a fault with probability `rate`, replayable by
    /// `seed`.
    pub fn random(upstream: &str, stats: std::path::PathBuf, rate: f64, seed: u64) -> Self {
        let (rate, seed) = (rate.to_string(), seed.to_string());
        let args = ["--random", &rate, "--seed", &seed];
        Self::spawn(upstream, stats, &args.map(std::ffi::OsStr::new))
    }

    fn spawn(upstream: &str, stats: std::path::PathBuf, args: &[&std::ffi::OsStr]) -> Self {
        use std::io::BufRead;
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/servers/flaky_proxy.py");
        let mut cmd = Command::new("python3");
        cmd.arg(script).arg(upstream).arg(&stats).args(args);
        let mut child = cmd
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("start the flaky proxy (python3)");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port: u16 = line.trim().parse().expect("proxy prints its port");
        FlakyProxy {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
            stats,
        }
    }

    pub fn stats(&self) -> serde_json::Value {
        serde_json::from_slice(&fs::read(&self.stats).expect("proxy stats")).unwrap()
    }
}

impl Drop for FlakyProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn throttling_server_errors_dropped_connections_and_cut_bodies_are_retried() {
    let Some(s) = garage("throttling_server_errors_dropped_connections_and_cut_bodies_are_retried")
    else {
        return;
    };
    let scratch = tempfile::tempdir().unwrap();
    let proxy = FlakyProxy::start(&s.endpoint, scratch.path().join("stats.json"));
    let flaky = Server {
        endpoint: proxy.endpoint.clone(),
        bucket: s.bucket.clone(),
        region: s.region.clone(),
    };
    let env = flaky.env(&flaky.url("flaky"));
    env.ok(&["init"]);
    let src = make_source(&env, 40 << 20);
    env.ok(&["backup", src.to_str().unwrap()]);
    let target = env.restore("latest", "out");
    assert_same_tree(&src, &restored(&target, &src), false);
    let out = env.ok(&["check", "--read-data"]);
    assert!(out.contains(" 0 error(s)"), "{out}");
    let stats = proxy.stats();
    for fault in ["slowdown", "internal_error", "dropped", "cut_body"] {
        assert!(
            stats[fault].as_u64().unwrap_or(0) > 0,
            "no {fault} was injected: {stats}"
        );
    }
}

#[test]
fn a_lost_pack_on_s3_costs_only_the_files_that_need_it() {
    let Some(s) = garage("a_lost_pack_on_s3_costs_only_the_files_that_need_it") else {
        return;
    };
    let url = s.url("lost-pack");
    let env = s.env(&url);
    env.ok(&["init", "--pack-size-mib", "1"]);
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("a"), random_bytes(11, 3 << 20)).unwrap();
    env.ok(&["backup", src.to_str().unwrap()]);
    fs::write(src.join("b"), random_bytes(12, 3 << 20)).unwrap();
    env.ok(&["backup", src.to_str().unwrap()]);
    // Remove a pack only b needs: the newest data pack.
    let b = s.backend(&url);
    let repo =
        floe_engine::Repository::open(std::sync::Arc::new(s.backend(&url)), PASSWORD.as_bytes())
            .unwrap();
    let index = repo.load_index().unwrap();
    let snaps = repo.snapshots().unwrap();
    let opts = floe_engine::RestoreOptions::default();
    let first = floe_engine::needed_packs(&repo, &index, &snaps[0].snapshot, "", &opts).unwrap();
    let second = floe_engine::needed_packs(&repo, &index, &snaps[1].snapshot, "", &opts).unwrap();
    let only_b = *second
        .difference(&first)
        .next()
        .expect("b has packs of its own");
    b.remove(FileType::DataPack, only_b.as_bytes()).unwrap();

    let target = env.path("out");
    let out = env.run(&["restore", "latest", "--target", target.to_str().unwrap()]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&only_b.to_hex()) && err.contains("/b"),
        "{err}"
    );
    let restored_src = restored(&target, &src);
    assert_eq!(
        fs::read(restored_src.join("a")).unwrap(),
        random_bytes(11, 3 << 20)
    );
    assert!(
        !restored_src.join("b").exists(),
        "a damaged file was left behind"
    );
}
