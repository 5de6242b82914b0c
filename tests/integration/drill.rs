//! `floe drill`: a random sample restored into a scratch folder and read back, replayable by its
//! seed, with every damaged file named with its pack, and archived data left out or thawed.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;

use crate::common::*;

/// A source of 24 files of assorted sizes in three folders, backed up; returns the source.
fn backed_up_source(env: &Env) -> PathBuf {
    let src = env.path("src");
    for i in 0..24u64 {
        let p = src.join(format!("d{}/file-{i}", i % 3));
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, random_bytes(i, (i as usize * 7919) % 300_000)).unwrap();
    }
    env.ok(&["backup".as_ref(), src.as_os_str()]);
    src
}

/// Runs `floe drill ARGS` with temporary folders made under the test's own folder.
fn drill(env: &Env, args: &[&str]) -> Output {
    let tmp = env.path("tmp");
    fs::create_dir_all(&tmp).unwrap();
    env.cmd()
        .env("TMPDIR", &tmp)
        .arg("drill")
        .args(args)
        .output()
        .expect("run floe")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The seed a drill printed.
fn seed_of(out: &str) -> String {
    let at = out.find("with seed ").expect("the seed is printed") + "with seed ".len();
    out[at..]
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .unwrap()
        .to_string()
}

/// The paths of the `OK` lines of `drill -v`.
fn ok_paths(out: &str) -> Vec<String> {
    out.lines()
        .filter(|l| l.starts_with("OK "))
        .map(|l| l.split_whitespace().nth(2).unwrap().to_string())
        .collect()
}

fn json_of(out: &Output) -> serde_json::Value {
    serde_json::from_str(stdout(out).trim()).unwrap_or_else(|e| panic!("{e}: {}", stdout(out)))
}

#[test]
fn a_drill_verifies_its_sample_and_its_seed_replays_the_same_files() {
    let env = Env::init();
    let src = backed_up_source(&env);

    let out = drill(&env, &["-v"]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}{}", stderr(&out));
    assert!(text.contains("verified 10 file(s)"), "{text}");
    assert!(
        text.contains("MiB/s") && text.contains("a full restore of"),
        "{text}"
    );
    let first = ok_paths(&text);
    assert_eq!(first.len(), 10, "{text}");
    assert!(first.iter().all(|p| p.starts_with(src.to_str().unwrap())));

    // The seed printed replays the same sample; another seed draws another.
    let seed = seed_of(&text);
    let again = stdout(&drill(&env, &["-v", "--seed", &seed]));
    assert_eq!(ok_paths(&again), first, "{again}");
    let other: u64 = seed.parse::<u64>().unwrap() + 1;
    let other = stdout(&drill(&env, &["-v", "--seed", &other.to_string()]));
    assert_ne!(ok_paths(&other), first, "{other}");

    let out = drill(&env, &["-v", "--files", "3"]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}{}", stderr(&out));
    assert_eq!(ok_paths(&text).len(), 3, "{text}");
    assert!(text.contains("verified 3 file(s)"), "{text}");

    // --size: files until their sizes reach the total, none past it.
    let out = drill(&env, &["--size", "400K", "--json"]);
    let v = json_of(&out);
    let bytes = v["bytes_verified"].as_u64().unwrap();
    assert!(bytes > 0 && bytes <= 400 << 10, "{v}");

    // Nothing is left behind in the temporary folder.
    let left: Vec<_> = fs::read_dir(env.path("tmp")).unwrap().collect();
    assert!(left.is_empty(), "{left:?}");
}

/// The data pack holding the blob of `second` (the newer of the two data packs).
fn newest_data_pack(env: &Env) -> PathBuf {
    let mut packs: Vec<PathBuf> = Vec::new();
    for d in fs::read_dir(env.repo.join("data")).unwrap().flatten() {
        packs.extend(fs::read_dir(d.path()).unwrap().flatten().map(|e| e.path()));
    }
    packs.sort_by_key(|p| fs::metadata(p).unwrap().modified().unwrap());
    packs.pop().unwrap()
}

#[test]
fn a_flipped_byte_in_a_data_pack_fails_the_drill_naming_the_file_and_its_pack() {
    let env = Env::init();
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("first"), random_bytes(1, 2_000_000)).unwrap();
    env.ok(&["backup".as_ref(), src.as_os_str()]);
    fs::write(src.join("second"), random_bytes(2, 2_000_000)).unwrap();
    env.ok(&["backup".as_ref(), src.as_os_str()]);
    let pack = newest_data_pack(&env);
    let mut bytes = fs::read(&pack).unwrap();
    bytes[5000] ^= 0x10;
    fs::write(&pack, &bytes).unwrap();
    let pack_id = pack.file_name().unwrap().to_string_lossy().into_owned();

    let out = drill(&env, &[]);
    let (text, err) = (stdout(&out), stderr(&out));
    assert_eq!(out.status.code(), Some(1), "{text}{err}");
    let second = src.join("second");
    let damaged = err
        .lines()
        .find(|l| l.starts_with("DAMAGED"))
        .unwrap_or_else(|| panic!("{err}"));
    assert!(
        damaged.contains(second.to_str().unwrap()) && damaged.contains(&pack_id),
        "{damaged}"
    );
    assert_eq!(
        err.matches("DAMAGED").count(),
        1,
        "only the damaged file: {err}"
    );
    assert!(
        err.contains("1 of the 2 sampled file(s) are damaged"),
        "{err}"
    );
    assert!(err.contains("--seed"), "the seed to replay it: {err}");
    // The file that verified is listed too, on a failure.
    assert!(text.contains("OK ") && text.contains("first"), "{text}");
    assert!(!err.contains("panicked"), "{err}");

    let v = json_of(&drill(&env, &["--json"]));
    assert_eq!(v["ok"], false);
    assert_eq!(v["files_verified"], 1);
    let d = &v["files_damaged"][0];
    assert_eq!(d["path"], second.to_str().unwrap());
    assert_eq!(d["pack"], pack_id.as_str());
    assert!(!d["message"].as_str().unwrap().is_empty());
}

#[test]
fn keep_with_a_target_leaves_the_sample_as_the_source_has_it() {
    let env = Env::init();
    let src = backed_up_source(&env);
    let target = env.path("drill");
    let out = drill(
        &env,
        &[
            "--files",
            "100",
            "--keep",
            "--target",
            target.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("kept in"), "{}", stdout(&out));
    // One folder per snapshot, named by its short id, with the snapshot's paths under it.
    let folders: Vec<PathBuf> = fs::read_dir(&target)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(folders.len(), 1, "{folders:?}");
    assert_eq!(
        dir_contents(&restored(&folders[0], &src)),
        dir_contents(&src),
        "every file back, byte for byte"
    );

    // Without --keep, a folder the drill made is removed; one that was there stays, emptied
    // of what the drill restored.
    let made = env.path("made");
    let out = drill(&env, &["--target", made.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(!made.exists());
    let out = drill(&env, &["--target", target.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "its folder is taken: {}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("exists already"), "{}", stderr(&out));
    fs::remove_dir_all(&folders[0]).unwrap();
    let out = drill(&env, &["--target", target.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(target.is_dir() && fs::read_dir(&target).unwrap().next().is_none());
}

#[test]
fn json_gives_the_seed_the_figures_and_the_estimate() {
    let env = Env::init();
    let src = backed_up_source(&env);
    let other = env.path("other");
    fs::create_dir_all(&other).unwrap();
    fs::write(other.join("alone"), b"a group of its own").unwrap();
    env.ok(&["backup".as_ref(), other.as_os_str()]);

    let out = drill(&env, &["--json", "--files", "4", "--seed", "12345"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v = json_of(&out);
    assert_eq!(v["ok"], true);
    assert_eq!(v["seed"], 12345);
    assert_eq!(
        v["files_verified"], 5,
        "4 of one group, the 1 file of the other: {v}"
    );
    assert!(v["bytes_verified"].as_u64().unwrap() > 0);
    assert_eq!(v["files_damaged"], serde_json::json!([]));
    assert!(v["duration_seconds"].as_f64().unwrap() > 0.0);
    assert!(v["throughput_bytes_per_second"].as_f64().unwrap() > 0.0);
    assert!(v["estimated_recovery_seconds"].as_f64().unwrap() > 0.0);
    assert_eq!(v["left_out_cold"], 0);
    let snaps = v["snapshots"].as_array().unwrap();
    assert_eq!(snaps.len(), 2);
    assert!(snaps.iter().all(|s| s.as_str().unwrap().len() == 64));
    assert_eq!(v["files"].as_array().unwrap().len(), 5);
    let groups = v["groups"].as_array().unwrap();
    let big = groups
        .iter()
        .find(|g| g["paths"][0] == src.to_str().unwrap())
        .unwrap();
    assert_eq!(big["files"], 24);
    assert_eq!(big["files_sampled"], 4);

    // The filters choose the groups.
    let out = drill(&env, &["--json", "--path", other.to_str().unwrap()]);
    let v = json_of(&out);
    assert_eq!(v["files_verified"], 1, "{v}");
    assert_eq!(v["snapshots"].as_array().unwrap().len(), 1);
}

#[test]
fn with_archived_data_a_drill_leaves_it_out_or_thaws_only_the_sample() {
    use floe_engine::{Backend, FileType, ThawState};
    let test = "with_archived_data_a_drill_leaves_it_out_or_thaws_only_the_sample";
    let Some(s) = crate::s3::moto(test) else {
        return;
    };
    let url = s.url("drill");
    let env = s.env(&url);
    env.ok(&["init", "--pack-size-mib", "1"]);
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("hot"), random_bytes(1, 500_000)).unwrap();
    env.ok(&["backup".as_ref(), src.as_os_str()]);
    // One backup per cold file, so that each lies in packs of its own whatever the chunker
    // and the packers make of it: thawing one file's packs must leave the others archived.
    for i in 0..3 {
        fs::write(
            src.join(format!("cold-{i}")),
            random_bytes(10 + i, 1_500_000),
        )
        .unwrap();
        env.ok(&[
            "--data-storage-class".as_ref(),
            "DEEP_ARCHIVE".as_ref(),
            "backup".as_ref(),
            src.as_os_str(),
        ]);
    }
    let backend = s.backend(&url);
    let states = || -> Vec<ThawState> {
        backend
            .list(FileType::DataPack)
            .unwrap()
            .iter()
            .map(|p| backend.stat(FileType::DataPack, &p.id).unwrap().thaw)
            .collect()
    };
    let archived = states()
        .iter()
        .filter(|t| **t == ThawState::Archived)
        .count();
    assert!(archived >= 3, "{:?}", states());

    // Without --thaw: only the file whose pack is readable, and how many were left out.
    let out = drill(&env, &["-v"]);
    let (text, err) = (stdout(&out), stderr(&out));
    assert_eq!(out.status.code(), Some(0), "{text}{err}");
    assert_eq!(
        ok_paths(&text),
        [src.join("hot").to_str().unwrap()],
        "{text}"
    );
    assert!(
        err.contains("left out 3 file(s) whose data is archived"),
        "{err}"
    );
    assert!(
        text.contains("archived pack(s)") && text.contains('$'),
        "{text}"
    );
    let v = json_of(&drill(&env, &["--json"]));
    assert_eq!(v["left_out_cold"], 3, "{v}");
    assert_eq!(v["files_verified"], 1);
    assert_eq!(
        v["cold_wait_seconds"],
        12 * 3600,
        "DEEP_ARCHIVE, standard tier: {v}"
    );
    assert!(v["estimated_recovery_seconds"].as_f64().unwrap() >= 12.0 * 3600.0);
    assert!(v["cold_cost_usd"].as_f64().unwrap() > 0.0);
    assert_eq!(
        states()
            .iter()
            .filter(|t| **t == ThawState::Archived)
            .count(),
        archived,
        "nothing was thawed"
    );

    // With --thaw: archived files are sampled too, and only the sample's packs are thawed
    // (a seed that draws the hot file thaws nothing: the next one is tried).
    for seed in 0..20 {
        let seed = seed.to_string();
        let out = drill(
            &env,
            &[
                "--json",
                "--thaw",
                "--thaw-poll",
                "1s",
                "--files",
                "1",
                "--seed",
                &seed,
            ],
        );
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let v = json_of(&out);
        assert_eq!(v["left_out_cold"], 0, "{v}");
        assert_eq!(v["files_verified"], 1);
        let still = states()
            .iter()
            .filter(|t| **t == ThawState::Archived)
            .count();
        let sampled = v["files"][0]["path"].as_str().unwrap();
        if Path::new(sampled).ends_with("hot") {
            assert_eq!(still, archived, "a hot file needs no thaw");
            continue;
        }
        assert!(
            still > 0 && still < archived,
            "{still} of {archived} still archived"
        );
        return;
    }
    panic!("no seed drew an archived file");
}
