//! The local cache of a remote repository's metadata, against the Garage cluster through a
//! proxy that records every request: what a command still fetches once the cache holds the
//! metadata, a damaged cached file, a stale cache after a prune elsewhere, two backups sharing
//! one cache, a cache that cannot be written, and `floe cache`.

use std::fs;
use std::path::{Path, PathBuf};

use crate::common::*;
use crate::s3::{garage, make_source, FlakyProxy, Server};

/// A repository on Garage seen through a recording proxy, with its own cache folder.
struct Recorded {
    _proxy: FlakyProxy,
    _scratch: tempfile::TempDir,
    log: PathBuf,
    env: Env,
}

impl Recorded {
    fn new(test: &str) -> Option<Self> {
        let s = garage(test)?;
        let scratch = tempfile::tempdir().unwrap();
        let log = scratch.path().join("requests.log");
        let proxy = FlakyProxy::recording(&s.endpoint, scratch.path().join("stats.json"), &log);
        let through = Server {
            endpoint: proxy.endpoint.clone(),
            bucket: s.bucket.clone(),
            region: s.region.clone(),
        };
        let env = through.env(&through.url("cache"));
        Some(Recorded {
            _proxy: proxy,
            _scratch: scratch,
            log,
            env,
        })
    }

    /// The GETs of objects (not listings) sent while `f` ran, as repository paths.
    fn gets_during(&self, f: impl FnOnce()) -> Vec<String> {
        let before = fs::read_to_string(&self.log).unwrap_or_default().len();
        f();
        let all = fs::read_to_string(&self.log).unwrap_or_default();
        all[before..]
            .lines()
            .filter_map(|l| l.strip_prefix("GET "))
            // The object's path; a listing's is the bucket's, with the folder in the query.
            .filter_map(|p| p.split('?').next())
            .map(|p| p.rsplit_once("/cache-").map_or(p, |x| x.1).to_string())
            .collect()
    }

    fn cache_dir(&self) -> PathBuf {
        self.env.dir.path().join("cache")
    }
}

/// Metadata objects among request paths: key, snapshot and index files, tree packs.
fn metadata(gets: &[String]) -> Vec<&String> {
    gets.iter()
        .filter(|p| {
            ["/keys/", "/snapshots/", "/index/", "/tree/"]
                .iter()
                .any(|d| p.contains(d))
        })
        .collect()
}

/// The cached files of one kind (`index`, `snapshots`, `tree`, ...).
fn cached_files(cache: &Path, kind: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(repos) = fs::read_dir(cache) else {
        return out;
    };
    for r in repos.flatten() {
        let mut stack = vec![r.path().join(kind)];
        while let Some(d) = stack.pop() {
            for e in fs::read_dir(&d).into_iter().flatten().flatten() {
                if e.path().is_dir() {
                    stack.push(e.path());
                } else {
                    out.push(e.path());
                }
            }
        }
    }
    out
}

#[test]
fn a_command_after_a_backup_fetches_no_metadata_the_cache_holds() {
    let Some(r) = Recorded::new("a_command_after_a_backup_fetches_no_metadata_the_cache_holds")
    else {
        return;
    };
    let env = &r.env;
    env.ok(&["init"]);
    let src = make_source(env, 2 << 20);
    env.ok(&["backup", src.to_str().unwrap()]);
    assert!(r.cache_dir().join("CACHEDIR.TAG").exists());

    // The backup wrote its index, snapshot and tree packs through the cache: nothing of them
    // is fetched again, from the first command on.
    for args in [&["snapshots"][..], &["ls", "latest"], &["find", "note-3*"]] {
        let gets = r.gets_during(|| {
            env.ok(args);
        });
        assert!(metadata(&gets).is_empty(), "{args:?} fetched {gets:?}");
    }
    // An unchanged backup reads the parent's trees from the cache.
    let gets = r.gets_during(|| {
        env.ok(&["backup", src.to_str().unwrap()]);
    });
    assert!(metadata(&gets).is_empty(), "{gets:?}");

    // Without the cache, the same listing fetches them.
    let gets = r.gets_during(|| {
        env.ok(&["--no-cache", "ls", "latest"]);
    });
    assert!(
        metadata(&gets).iter().any(|p| p.contains("/index/")),
        "{gets:?}"
    );
    assert!(
        metadata(&gets).iter().any(|p| p.contains("/tree/")),
        "{gets:?}"
    );

    // check reads what is stored, unless told to trust the cache.
    let gets = r.gets_during(|| {
        env.ok(&["check"]);
    });
    assert!(gets.iter().any(|p| p.contains("/index/")), "{gets:?}");
    let gets = r.gets_during(|| {
        env.ok(&["check", "--with-cache"]);
    });
    assert!(metadata(&gets).is_empty(), "{gets:?}");

    // Data packs are never cached.
    assert!(cached_files(&r.cache_dir(), "data").is_empty());
    let target = env.restore("latest", "out");
    assert_same_tree(&src, &restored(&target, &src), false);
}

#[test]
fn a_damaged_cached_index_file_is_detected_and_fetched_again() {
    let Some(r) = Recorded::new("a_damaged_cached_index_file_is_detected_and_fetched_again") else {
        return;
    };
    let env = &r.env;
    env.ok(&["init"]);
    let src = make_source(env, 1 << 20);
    env.ok(&["backup", src.to_str().unwrap()]);
    let index = cached_files(&r.cache_dir(), "index");
    assert_eq!(index.len(), 1, "{index:?}");
    let good = fs::read(&index[0]).unwrap();
    let mut bad = good.clone();
    bad[good.len() / 2] ^= 1;
    fs::write(&index[0], &bad).unwrap();

    let gets = r.gets_during(|| {
        let out = env.run(&["ls", "latest"]);
        assert!(out.status.success(), "{}", stderr(&out));
        let err = stderr(&out);
        assert!(
            err.contains("does not match its name: removed, and read again"),
            "{err}"
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains("note-3.txt"));
    });
    let index_gets = metadata(&gets)
        .into_iter()
        .filter(|p| p.contains("/index/"))
        .count();
    assert_eq!(index_gets, 1, "{gets:?}");
    assert_eq!(
        fs::read(&index[0]).unwrap(),
        good,
        "the cache holds the stored bytes again"
    );
}

#[test]
fn a_stale_cache_after_a_prune_elsewhere_never_deduplicates_against_a_removed_pack() {
    let Some(r) = Recorded::new(
        "a_stale_cache_after_a_prune_elsewhere_never_deduplicates_against_a_removed_pack",
    ) else {
        return;
    };
    let env = &r.env;
    env.ok(&["init"]);
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("a"), random_bytes(1, 3 << 20)).unwrap();
    env.ok(&["backup", src.to_str().unwrap()]);
    let first: serde_json::Value = serde_json::from_str(&env.ok(&["snapshots", "--json"])).unwrap();
    let first_id = first[0]["id"].as_str().unwrap().to_string();

    // Another machine (another cache) forgets that snapshot and prunes its data away.
    let other_cache = env.path("other-cache");
    let elsewhere = |args: &[&str]| {
        let out = env
            .cmd()
            .env("FLOE_CACHE_DIR", &other_cache)
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    };
    fs::write(src.join("a"), random_bytes(2, 3 << 20)).unwrap();
    elsewhere(&["backup", src.to_str().unwrap()]);
    elsewhere(&["forget", &first_id, "--prune"]);

    // This machine's cache still holds the old index; the old content comes back.
    fs::write(src.join("a"), random_bytes(1, 3 << 20)).unwrap();
    env.ok(&["backup", src.to_str().unwrap()]);
    let out = env.ok(&["check", "--read-data"]);
    assert!(out.contains(" 0 error(s)"), "{out}");
    let target = env.restore("latest", "out");
    assert_eq!(
        fs::read(restored(&target, &src).join("a")).unwrap(),
        random_bytes(1, 3 << 20)
    );
}

#[test]
fn two_backups_sharing_one_cache_at_once_both_succeed() {
    let Some(r) = Recorded::new("two_backups_sharing_one_cache_at_once_both_succeed") else {
        return;
    };
    let env = &r.env;
    env.ok(&["init"]);
    let sources: Vec<PathBuf> = (0..2u64)
        .map(|i| {
            let d = env.path(&format!("src{i}"));
            fs::create_dir_all(&d).unwrap();
            for f in 0..20u64 {
                fs::write(d.join(format!("f{f}")), random_bytes(i * 100 + f, 50_000)).unwrap();
            }
            d
        })
        .collect();
    let children: Vec<_> = sources
        .iter()
        .map(|s| env.cmd().arg("backup").arg(s).spawn().unwrap())
        .collect();
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    for s in &sources {
        let target = env.path(&format!(
            "restore-{}",
            s.file_name().unwrap().to_string_lossy()
        ));
        env.ok(&[
            "restore",
            "latest",
            "--path",
            s.to_str().unwrap(),
            "--target",
            target.to_str().unwrap(),
        ]);
        assert_eq!(dir_contents(&restored(&target, s)), dir_contents(s));
    }
    assert!(
        !cached_files(&r.cache_dir(), "index").iter().any(|p| p
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with(".tmp")),
        "no temporary file is left"
    );
}

#[test]
fn a_cache_that_cannot_be_written_warns_once_and_the_command_reads_directly() {
    let Some(r) =
        Recorded::new("a_cache_that_cannot_be_written_warns_once_and_the_command_reads_directly")
    else {
        return;
    };
    let env = &r.env;
    env.ok(&["init"]);
    let src = make_source(env, 1 << 20);
    // A path under a regular file can never be created, whoever runs the test.
    let blocker = env.path("not-a-folder");
    fs::write(&blocker, b"").unwrap();
    let out = env
        .cmd()
        .env("FLOE_CACHE_DIR", blocker.join("cache"))
        .args(["backup", src.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert_eq!(err.matches("cannot be written").count(), 1, "{err}");
    assert!(
        err.contains("reading from the repository directly"),
        "{err}"
    );
}

#[test]
fn floe_cache_lists_caches_and_removes_old_ones() {
    let Some(r) = Recorded::new("floe_cache_lists_caches_and_removes_old_ones") else {
        return;
    };
    let env = &r.env;
    env.ok(&["init"]);
    let src = make_source(env, 1 << 20);
    env.ok(&["backup", src.to_str().unwrap()]);
    let list: serde_json::Value = serde_json::from_str(&env.ok(&["cache", "--json"])).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    let id = list[0]["id"].as_str().unwrap().to_string();
    assert!(list[0]["bytes"].as_u64().unwrap() > 0);

    let out = env.ok(&["cache", "--cleanup"]);
    assert!(out.contains("no cache unused for 30 days"), "{out}");
    // Last used 40 days ago.
    let stamp = r.cache_dir().join(&id).join("last-used");
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(40 * 86400);
    fs::File::options()
        .write(true)
        .open(&stamp)
        .unwrap()
        .set_modified(old)
        .unwrap();
    let out = env.ok(&["cache", "--cleanup"]);
    assert!(
        out.contains(&format!("removed the cache of {}", &id[..8])),
        "{out}"
    );
    assert!(!r.cache_dir().join(&id).exists());

    env.ok(&["snapshots"]);
    env.ok(&["cache", "--remove", &id[..6]]);
    assert!(!r.cache_dir().join(&id).exists());
    let out = env.run(&["cache", "--remove", "ffff"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("no cache of a repository ffff"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_local_repository_is_not_cached() {
    let env = Env::init();
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("f"), b"x").unwrap();
    env.ok(&["backup", src.to_str().unwrap()]);
    env.ok(&["ls", "latest"]);
    assert!(!env.dir.path().join("cache").exists());
}
