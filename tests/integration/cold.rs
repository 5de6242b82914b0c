//! Data packs in archive classes (moto's S3 server emulates them: a GET on a GLACIER or
//! DEEP_ARCHIVE object fails with InvalidObjectState until RestoreObject).
//!
//! A recording proxy in front of moto logs every request, so that the tests can show which
//! objects were read and how many thaws were asked for.

use std::fs;
use std::path::Path;

use floe_engine::{Backend, FileType};

use crate::common::*;
use crate::s3::{moto, FlakyProxy, Server};

/// A repository on moto whose data packs go to DEEP_ARCHIVE, seen through a recording proxy.
struct Cold {
    server: Server,
    url: String,
    env: Env,
    log: std::path::PathBuf,
    _proxy: FlakyProxy,
}

impl Cold {
    fn new(test: &str) -> Option<Self> {
        let s = moto(test)?;
        let scratch = Env::new();
        let log = scratch.path("requests.log");
        let proxy = FlakyProxy::recording(&s.endpoint, scratch.path("stats.json"), &log);
        let server = Server {
            endpoint: proxy.endpoint.clone(),
            bucket: s.bucket.clone(),
            region: s.region.clone(),
        };
        let url = server.url("cold");
        let mut env = server.env(&url);
        env.dir = scratch.dir;
        env.vars
            .push(("FLOE_DATA_STORAGE_CLASS".into(), "DEEP_ARCHIVE".into()));
        env.ok(&["init", "--pack-size-mib", "1"]);
        Some(Cold {
            server,
            url,
            env,
            log,
            _proxy: proxy,
        })
    }

    /// The requests logged so far, as "METHOD PATH" lines.
    fn requests(&self) -> Vec<String> {
        fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// The path prefix of the repository's data packs in request lines.
    fn data_prefix(&self) -> String {
        let key_prefix = self
            .url
            .rsplit_once(&format!("/{}/", self.server.bucket))
            .unwrap()
            .1;
        format!("/{}/{key_prefix}/data/", self.server.bucket)
    }

    fn data_gets(&self) -> Vec<String> {
        let prefix = format!("GET {}", self.data_prefix());
        self.requests()
            .into_iter()
            .filter(|l| l.starts_with(&prefix))
            .collect()
    }

    fn thaw_requests(&self) -> Vec<String> {
        let prefix = format!("POST {}", self.data_prefix());
        self.requests()
            .into_iter()
            .filter(|l| l.starts_with(&prefix) && l.contains("?restore"))
            .collect()
    }

    fn data_packs(&self) -> usize {
        self.server
            .backend(&self.url)
            .list(FileType::DataPack)
            .unwrap()
            .len()
    }
}

fn write_random(path: &Path, seed: u64, len: usize) -> Vec<u8> {
    let bytes = random_bytes(seed, len);
    fs::write(path, &bytes).unwrap();
    bytes
}

#[test]
fn a_restore_of_archived_data_stops_with_a_plan_then_thaws_only_what_it_needs() {
    let Some(c) =
        Cold::new("a_restore_of_archived_data_stops_with_a_plan_then_thaws_only_what_it_needs")
    else {
        return;
    };
    let src = c.env.path("src");
    fs::create_dir_all(&src).unwrap();
    let a = write_random(&src.join("a"), 1, 4 << 20);
    write_random(&src.join("b"), 2, 8 << 20);
    c.env.ok(&["backup", src.to_str().unwrap()]);
    let total = c.data_packs();
    let spec = format!("latest:{}", src.join("a").display());
    let target = c.env.path("out");
    let restore = |extra: &[&str]| {
        let mut args = vec!["restore", &spec, "--target", target.to_str().unwrap()];
        args.extend_from_slice(extra);
        c.env.run(&args)
    };

    // Without --thaw: the plan, exit 13, nothing read or written.
    let out = restore(&[]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(13), "{err}");
    assert!(
        err.contains("are archived") && err.contains("in DEEP_ARCHIVE") && err.contains("--thaw"),
        "{err}"
    );
    assert!(err.contains("up to 12 hours") && err.contains('$'), "{err}");
    assert!(!target.join("a").exists());
    assert!(c.data_gets().is_empty(), "{:?}", c.data_gets());
    assert!(c.thaw_requests().is_empty());

    // --thaw --no-wait: asks for the packs the file needs, and only those, then stops.
    let out = restore(&["--thaw", "--thaw-tier", "bulk", "--no-wait"]);
    assert_eq!(out.status.code(), Some(13), "{}", stderr(&out));
    let asked = c.thaw_requests();
    assert!(
        !asked.is_empty() && asked.len() < total,
        "{} thaw requests for {total} data packs",
        asked.len()
    );
    assert!(asked.iter().all(|l| l.contains("?restore")));

    // The next run continues: no pack is asked for again, and the file comes back exact.
    let out = restore(&["--thaw", "--thaw-poll", "1s"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        c.thaw_requests().len(),
        asked.len(),
        "a pack was asked for twice"
    );
    // A single file is restored under its own name.
    assert_eq!(fs::read(target.join("a")).unwrap(), a);
    assert_eq!(fs::read_dir(&target).unwrap().count(), 1);
}

#[test]
fn dump_of_an_archived_file_thaws_its_packs_then_writes_it_exactly() {
    let Some(c) = Cold::new("dump_of_an_archived_file_thaws_its_packs_then_writes_it_exactly")
    else {
        return;
    };
    let src = c.env.path("src");
    fs::create_dir_all(&src).unwrap();
    let a = write_random(&src.join("a"), 5, 3 << 20);
    write_random(&src.join("b"), 6, 6 << 20);
    c.env.ok(&["backup", src.to_str().unwrap()]);
    let spec = format!("latest:{}/a", src.display());
    let out = c.env.run(&["dump", &spec]);
    assert_eq!(out.status.code(), Some(13), "{}", stderr(&out));
    assert!(out.stdout.is_empty());
    let out = c.env.run(&["dump", &spec, "--thaw", "--thaw-poll", "1s"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(out.stdout == a, "dumped bytes differ");
    let asked = c.thaw_requests().len();
    assert!(
        asked > 0 && asked < c.data_packs(),
        "{asked} thaws for {} packs",
        c.data_packs()
    );
}

#[test]
fn with_every_data_pack_in_deep_archive_only_reading_contents_touches_data() {
    let Some(c) =
        Cold::new("with_every_data_pack_in_deep_archive_only_reading_contents_touches_data")
    else {
        return;
    };
    let src = c.env.path("src");
    fs::create_dir_all(&src).unwrap();
    write_random(&src.join("a"), 3, 2 << 20);
    fs::write(src.join("notes.txt"), "cold\n".repeat(1000)).unwrap();
    c.env.ok(&["backup", src.to_str().unwrap()]);
    // A second backup with a change and a new file deduplicates through the index alone.
    fs::write(src.join("notes.txt"), "colder\n".repeat(1000)).unwrap();
    write_random(&src.join("c"), 4, 1 << 20);
    c.env.ok(&["backup", src.to_str().unwrap()]);
    c.env.ok(&["backup", src.to_str().unwrap()]);
    let out = c.env.ok(&["snapshots"]);
    assert!(out.contains("3 snapshots"), "{out}");
    let out = c.env.ok(&["ls", "-l", "latest"]);
    assert!(out.contains("notes.txt"), "{out}");
    let out = c.env.ok(&["find", "notes.txt", "c"]);
    assert!(out.contains("/notes.txt") && out.contains("/c\n"), "{out}");
    let snaps: serde_json::Value =
        serde_json::from_str(&c.env.ok(&["snapshots", "--json"])).unwrap();
    let first = snaps[0]["id"].as_str().unwrap();
    let out = c.env.ok(&["diff", first, "latest"]);
    assert!(out.contains("M    ") && out.contains("+    "), "{out}");
    // dump needs the data: it stops with the plan.
    let notes = format!("latest:{}/notes.txt", src.display());
    let out = c.env.run(&["dump", &notes]);
    assert_eq!(out.status.code(), Some(13), "{}", stderr(&out));
    assert!(stderr(&out).contains("this dump needs"), "{}", stderr(&out));
    c.env.ok(&["forget", "--keep-last", "2"]);
    c.env.ok(&["prune", "--dry-run"]);
    c.env.ok(&["prune"]);
    let out = c.env.ok(&["check"]);
    assert!(out.contains(" 0 error(s)"), "{out}");
    // check --read-data needs the data: it stops with the plan instead.
    let out = c.env.run(&["check", "--read-data"]);
    assert_eq!(out.status.code(), Some(13), "{}", stderr(&out));
    assert!(stderr(&out).contains("are archived"), "{}", stderr(&out));

    assert!(c.data_packs() > 0);
    assert!(
        c.requests().iter().any(|l| l.starts_with("PUT ")),
        "the proxy saw no upload: is it in the way?"
    );
    assert!(
        c.data_gets().is_empty(),
        "data packs were read: {:?}",
        c.data_gets()
    );
}

#[test]
fn prune_keeps_young_archived_packs_until_their_minimum_duration() {
    let Some(c) = Cold::new("prune_keeps_young_archived_packs_until_their_minimum_duration") else {
        return;
    };
    let src = c.env.path("src");
    fs::create_dir_all(&src).unwrap();
    write_random(&src.join("a"), 5, 2 << 20);
    write_random(&src.join("b"), 6, 4 << 20);
    c.env.ok(&["backup", src.to_str().unwrap()]);
    fs::remove_file(src.join("b")).unwrap();
    c.env.ok(&["backup", src.to_str().unwrap()]);
    c.env.ok(&["forget", "--keep-last", "1"]);
    let before = c.data_packs();

    // The packs only b needed are unused, but DEEP_ARCHIVE bills 180 days: they stay.
    let out = c.env.ok(&["prune", "--dry-run"]);
    assert!(
        out.contains("DEEP_ARCHIVE") && out.contains("until their minimum storage duration"),
        "{out}"
    );
    let out = c.env.ok(&["prune"]);
    assert!(out.contains("avoiding $"), "{out}");
    assert_eq!(
        c.data_packs(),
        before,
        "a young DEEP_ARCHIVE pack was deleted"
    );

    // Asked to, prune deletes them and reports the charge.
    let out = c.env.ok(&["prune", "--ignore-min-duration"]);
    assert!(out.contains("early-deletion charges incurred"), "{out}");
    assert!(c.data_packs() < before, "{out}");
    assert!(
        c.data_gets().is_empty(),
        "prune read data: {:?}",
        c.data_gets()
    );
}

#[test]
fn tier_apply_adds_its_rule_keeps_unrelated_ones_and_reads_back_as_written() {
    use floe_engine::LifecycleRule as Rule;
    use floe_engine::StorageClass;
    let Some(c) =
        Cold::new("tier_apply_adds_its_rule_keeps_unrelated_ones_and_reads_back_as_written")
    else {
        return;
    };
    let b = c.server.backend(&c.url);
    let logs = Rule {
        id: "logs-expire".into(),
        enabled: true,
        prefix: "logs/".into(),
        other_conditions: false,
        transitions: vec![],
        expiration_days: Some(14),
        abort_incomplete_multipart_days: None,
        noncurrent_expiration_days: None,
        expired_delete_markers: false,
    };
    b.put_lifecycle_rule(&logs).unwrap();
    let out = c.env.ok(&["tier", "show"]);
    assert!(
        out.contains("logs-expire") && out.contains("reaches in this repository: nothing"),
        "{out}"
    );
    assert!(
        out.contains("no rule moves this repository's data packs"),
        "{out}"
    );

    // A dry run prints the rule and writes nothing.
    let out = c.env.ok(&["tier", "apply", "--dry-run"]);
    let j: serde_json::Value = serde_json::from_str(&out).unwrap();
    let rule = &j["Rules"][0];
    assert_eq!(rule["Filter"]["Prefix"], format!("{}/data/", b.prefix()));
    assert_eq!(rule["Transitions"].as_array().unwrap().len(), 3);
    assert_eq!(b.lifecycle_rules().unwrap(), vec![logs.clone()]);

    c.env.ok(&["tier", "apply"]);
    let rules = b.lifecycle_rules().unwrap();
    assert_eq!(rules.len(), 2, "{rules:?}");
    assert!(
        rules.contains(&logs),
        "the unrelated rule changed: {rules:?}"
    );
    let ours = rules.iter().find(|r| r.id != "logs-expire").unwrap();
    assert_eq!(ours.prefix, format!("{}/data/", b.prefix()));
    assert_eq!(
        ours.transitions,
        vec![
            (30, StorageClass::StandardIa),
            (90, StorageClass::Glacier),
            (365, StorageClass::DeepArchive)
        ]
    );
    assert_eq!(ours.abort_incomplete_multipart_days, Some(7));
    let out = c.env.ok(&["tier", "show"]);
    assert!(out.contains("reaches in this repository: data/"), "{out}");

    // Applying again replaces floe's rule only.
    c.env.ok(&[
        "tier",
        "apply",
        "--transition",
        "60:GLACIER",
        "--abort-multipart-days",
        "0",
    ]);
    let rules = b.lifecycle_rules().unwrap();
    assert_eq!(rules.len(), 2, "{rules:?}");
    let ours = rules.iter().find(|r| r.id != "logs-expire").unwrap();
    assert_eq!(ours.transitions, vec![(60, StorageClass::Glacier)]);
    assert_eq!(ours.abort_incomplete_multipart_days, None);

    // A rule over the whole bucket would freeze the index and snapshots too: a warning.
    let wide = Rule {
        id: "everything-cold".into(),
        prefix: String::new(),
        transitions: vec![(30, StorageClass::Glacier)],
        expiration_days: None,
        ..logs
    };
    b.put_lifecycle_rule(&wide).unwrap();
    let out = c.env.run(&["tier", "show"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(
        err.contains("warning: rule everything-cold") && err.contains("index/"),
        "{err}"
    );
    // Bad steps are refused before anything is sent.
    let out = c
        .env
        .run(&["tier", "apply", "--transition", "10:STANDARD_IA"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("30 days"), "{}", stderr(&out));
}

#[test]
fn stats_tiers_counts_bytes_per_class_and_prices_them() {
    let Some(c) = Cold::new("stats_tiers_counts_bytes_per_class_and_prices_them") else {
        return;
    };
    let src = c.env.path("src");
    fs::create_dir_all(&src).unwrap();
    write_random(&src.join("a"), 9, 3 << 20);
    c.env.ok(&["backup", src.to_str().unwrap()]);
    let out = c.env.ok(&["stats", "--tiers"]);
    assert!(
        out.contains("DEEP_ARCHIVE") && out.contains("STANDARD"),
        "{out}"
    );
    assert!(out.contains("thawing all") && out.contains("bulk"), "{out}");
    let j: serde_json::Value =
        serde_json::from_str(&c.env.ok(&["stats", "--tiers", "--json"])).unwrap();
    let rows = j["stats"]["rows"].as_array().unwrap();
    let data: Vec<_> = rows.iter().filter(|r| r["folder"] == "data").collect();
    assert_eq!(data.len(), 1, "{rows:?}");
    assert_eq!(data[0]["class"], "DEEP_ARCHIVE");
    let listed: u64 = c
        .server
        .backend(&c.url)
        .list(FileType::DataPack)
        .unwrap()
        .iter()
        .map(|e| e.size)
        .sum();
    assert_eq!(data[0]["bytes"].as_u64(), Some(listed));
    let gib = (1u64 << 30) as f64;
    let monthly = data[0]["monthly_usd"].as_f64().unwrap();
    assert!(
        (monthly - 0.00099 * listed as f64 / gib).abs() < 1e-12,
        "{monthly}"
    );
    // A price file replaces the built-in price.
    let prices = c.env.path("prices.json");
    fs::write(
        &prices,
        r#"{"as_of": "test prices", "storage": {"DEEP_ARCHIVE": 1.0}}"#,
    )
    .unwrap();
    let j: serde_json::Value = serde_json::from_str(&c.env.ok(&[
        "stats",
        "--tiers",
        "--json",
        "--prices",
        prices.to_str().unwrap(),
    ]))
    .unwrap();
    let row = j["stats"]["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["folder"] == "data")
        .unwrap()
        .clone();
    assert!((row["monthly_usd"].as_f64().unwrap() - listed as f64 / gib).abs() < 1e-12);
    assert_eq!(j["stats"]["prices_as_of"], "test prices");
}

#[test]
fn regression_walking_many_folders_fetches_each_tree_pack_once() {
    // Walking a snapshot used to send one range request per folder: 25 s to restore 500 small
    // files in 234 folders through Garage.
    let Some(c) = Cold::new("regression_walking_many_folders_fetches_each_tree_pack_once") else {
        return;
    };
    let src = c.env.path("src");
    for i in 0..150 {
        let d = src.join(format!("d{}/e{i}", i % 10));
        fs::create_dir_all(&d).unwrap();
        fs::write(d.join("f"), format!("{i}")).unwrap();
    }
    c.env.ok(&["backup", src.to_str().unwrap()]);
    let before = c.requests().len();
    let out = c.env.ok(&["ls", "latest"]);
    assert!(out.lines().count() > 300, "{out}");
    let tree_prefix = format!("GET {}", c.data_prefix().replace("/data/", "/tree/"));
    let tree_gets = c.requests()[before..]
        .iter()
        .filter(|l| l.starts_with(&tree_prefix))
        .count();
    let tree_packs = c
        .server
        .backend(&c.url)
        .list(FileType::TreePack)
        .unwrap()
        .len();
    assert!(
        tree_gets <= tree_packs,
        "{tree_gets} tree reads for {tree_packs} tree pack(s)"
    );
}

#[test]
fn a_cold_restore_killed_half_way_resumes_without_asking_for_a_thaw_again() {
    let Some(c) =
        Cold::new("a_cold_restore_killed_half_way_resumes_without_asking_for_a_thaw_again")
    else {
        return;
    };
    let src = c.env.path("src");
    fs::create_dir_all(&src).unwrap();
    for i in 0..8u64 {
        write_random(&src.join(format!("f{i}")), 10 + i, 3 << 20);
    }
    c.env.ok(&["backup", src.to_str().unwrap()]);
    let target = c.env.path("out");
    let args = |extra: &[&str]| {
        let mut a = vec!["restore", "latest", "--target", target.to_str().unwrap()];
        a.extend_from_slice(&["--thaw", "--thaw-poll", "1s"]);
        a.extend_from_slice(extra);
        a.into_iter().map(String::from).collect::<Vec<_>>()
    };
    let mut child = c
        .env
        .cmd()
        .args(args(&[]))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Killed as soon as the first file is in place.
    let copy = restored(&target, &src);
    let started = std::time::Instant::now();
    while !(0..8).any(|i| copy.join(format!("f{i}")).exists()) {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the restore ended before any file was in place"
        );
        assert!(
            started.elapsed().as_secs() < 120,
            "no file in place after 2 minutes"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    let asked = c.thaw_requests().len();
    assert!(asked > 0);
    let gets_before = c.data_gets().len();

    let out = c.env.run(&args(&["--overwrite", "if-changed", "--json"]));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(c.thaw_requests().len(), asked, "a thaw was asked for again");
    let summary = summary_json(&out.stdout);
    assert!(summary["files_skipped"].as_u64().unwrap() >= 1, "{summary}");
    assert!(
        c.data_gets().len() - gets_before < c.data_packs(),
        "the resumed restore read every pack again"
    );
    assert_same_tree(&src, &copy, false);
}
