//! Choosing snapshots the same way everywhere (--host, --tag, --path, `latest`), and input that
//! is refused with a message saying what was expected.

use std::fs;

use crate::common::*;

/// Two hosts, each with its own content for one file; host `b` backs up last.
fn two_hosts() -> (Env, std::path::PathBuf) {
    let env = Env::init();
    let file = env.path("f");
    for (host, tag, time) in [
        ("a", "x", "2024-01-01 02:30:00"),
        ("b", "y", "2024-01-02T02:30:00+00:00"),
    ] {
        fs::write(&file, format!("content of {host}")).unwrap();
        let f = file.to_str().unwrap();
        env.ok(&["backup", f, "--host", host, "--tag", tag, "--time", time]);
    }
    (env, file)
}

fn json(env: &Env, args: &[&str]) -> serde_json::Value {
    serde_json::from_str(&env.ok(args)).unwrap()
}

#[test]
fn latest_is_the_latest_the_filters_select_in_every_command() {
    let (env, file) = two_hosts();
    let f = file.to_str().unwrap();
    let a_id = json(&env, &["snapshots", "--json", "--host", "a"])[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    // dump and restore take the snapshot of host a, not the newest of all.
    let out = env.run(&["dump", "--host", "a", "latest", f]);
    assert_eq!(out.stdout, b"content of a", "{}", stderr(&out));
    let out = env.run(&["dump", "--tag", "y", "latest", f]);
    assert_eq!(out.stdout, b"content of b");
    let target = env.path("out");
    env.ok(&[
        "restore",
        "latest",
        "--host",
        "a",
        "--target",
        target.to_str().unwrap(),
    ]);
    assert_eq!(fs::read(restored(&target, &file)).unwrap(), b"content of a");
    // ls and diff too.
    let listed = env.ok(&["ls", "--json", "--host", "a", "latest", f]);
    let entry: serde_json::Value = serde_json::from_str(listed.lines().next().unwrap()).unwrap();
    assert_eq!(entry["size"], "content of a".len());
    let out = env.ok(&["diff", "--host", "a", "latest", &a_id]);
    assert!(
        out.contains("0 added, 0 removed, 0 changed") || !out.contains(f),
        "{out}"
    );
    // No snapshot matches: said so, exit 1.
    let out = env.run(&["ls", "--host", "nobody", "latest"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("no snapshot matches the filters"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn snapshots_latest_and_group_by() {
    let (env, file) = two_hosts();
    let f = file.to_str().unwrap();
    env.ok(&["backup", f, "--host", "a", "--time", "2024-01-03 00:00:00"]);
    assert_eq!(
        json(&env, &["snapshots", "--json"])
            .as_array()
            .unwrap()
            .len(),
        3
    );
    assert_eq!(
        json(&env, &["snapshots", "--json", "--host", "a"])
            .as_array()
            .unwrap()
            .len(),
        2
    );
    // --latest 1: one per host and paths.
    let latest = json(&env, &["snapshots", "--json", "--latest", "1"]);
    let hosts: Vec<&str> = latest
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["hostname"].as_str().unwrap())
        .collect();
    assert_eq!(
        hosts,
        ["b", "a"],
        "sorted by time: b's (Jan 2) before a's newest (Jan 3)"
    );
    let groups = json(&env, &["snapshots", "--json", "--group-by", "host"]);
    let groups = groups.as_array().unwrap();
    assert_eq!(groups.len(), 2);
    assert_eq!(groups[0]["group_key"]["hostname"], "a");
    assert_eq!(groups[0]["snapshots"].as_array().unwrap().len(), 2);
    let text = env.ok(&["snapshots", "--group-by", "host"]);
    assert!(text.contains("snapshots of host [a]:") && text.contains("snapshots of host [b]:"));
}

#[test]
fn snapshot_path_as_two_arguments_and_a_hint_for_relative_paths() {
    let env = Env::init();
    let dir = env.path("etc");
    fs::create_dir(&dir).unwrap();
    fs::write(dir.join("hosts"), b"127.0.0.1 localhost\n").unwrap();
    env.ok(&["backup", dir.to_str().unwrap()]);
    let d = dir.to_str().unwrap();
    assert_eq!(
        env.ok(&["ls", "latest", d]),
        env.ok(&["ls", &format!("latest:{d}")])
    );
    let relative = d.trim_start_matches('/').to_string() + "/nothing";
    let out = env.run(&["dump", "latest", &relative]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("paths in a snapshot are absolute"),
        "{}",
        stderr(&out)
    );
    let out = env.run(&["dump", &format!("latest:{d}"), d]);
    assert!(
        stderr(&out).contains("the path is given twice"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn restic_time_format_is_local_time() {
    let env = Env::init();
    let f = env.path("f");
    fs::write(&f, b"x").unwrap();
    env.ok(&[
        "backup",
        f.to_str().unwrap(),
        "--time",
        "2024-01-01 02:30:00",
    ]);
    let v = json(&env, &["snapshots", "--json"]);
    let t = chrono::DateTime::parse_from_rfc3339(v[0]["time"].as_str().unwrap()).unwrap();
    assert_eq!(t.naive_local().to_string(), "2024-01-01 02:30:00");
    let out = env.run(&["backup", f.to_str().unwrap(), "--time", "soon"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("or local time (2024-05-01 03:00:00)"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn bad_values_name_the_flag_and_what_was_expected() {
    let env = Env::init();
    let cases: &[(&[&str], &[&str])] = &[
        (
            &["check", "--read-data-subset", "10"],
            &["--read-data-subset", "n/t", "x%", "2G"],
        ),
        (
            &["forget", "--keep-daily", "abc"],
            &["--keep-daily", "whole number"],
        ),
        (
            &["forget", "--keep-daily", "-1"],
            &["--keep-daily", "whole number"],
        ),
        (
            &["check", "--read-data", "--read-data-subset", "1/2"],
            &["cannot be used with"],
        ),
        (
            &["backup", "/etc", "--force", "--parent", "abc"],
            &["cannot be used with"],
        ),
        (
            &["backup", "/etc", "--exclude-larger-than", "big"],
            &["--exclude-larger-than", "500M"],
        ),
    ];
    for (args, wanted) in cases {
        let out = env.run(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        let err = stderr(&out);
        for w in *wanted {
            assert!(err.contains(w), "{args:?}: {w:?} not in {err}");
        }
    }
}

#[test]
fn an_include_that_matches_nothing_fails_the_restore() {
    let env = Env::init();
    let f = env.path("f");
    fs::write(&f, b"x").unwrap();
    env.ok(&["backup", f.to_str().unwrap()]);
    let target = env.path("out");
    let out = env.run(&[
        "restore",
        "latest",
        "--target",
        target.to_str().unwrap(),
        "--include",
        "*.nope",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("matches nothing"), "{}", stderr(&out));
}

#[test]
fn environment_booleans_and_empty_values() {
    let env = Env::init();
    let f = env.path("f");
    fs::write(&f, b"x").unwrap();
    env.ok(&["backup", f.to_str().unwrap()]);
    for v in ["1", "true", "yes", "0", "false", "no"] {
        let out = env
            .cmd()
            .env("FLOE_NO_LOCK", v)
            .args(["ls", "latest"])
            .output()
            .unwrap();
        assert!(out.status.success(), "FLOE_NO_LOCK={v}: {}", stderr(&out));
    }
    // FLOE_NO_LOCK=1 really means no lock: backup refuses it.
    let out = env
        .cmd()
        .env("FLOE_NO_LOCK", "1")
        .args(["backup", f.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("always takes a lock"));
    let out = env
        .cmd()
        .env("FLOE_NO_LOCK", "maybe")
        .args(["ls", "latest"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    // An empty variable counts as unset: FLOE_PASSWORD still opens the repository.
    let out = env
        .cmd()
        .env("FLOE_PASSWORD_FILE", "")
        .args(["snapshots"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let out = floe_bin().args(["-r", "", "snapshots"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--repo"), "{}", stderr(&out));
}

fn floe_bin() -> std::process::Command {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_floe"));
    c.env_remove("FLOE_REPOSITORY");
    c
}

#[test]
fn restic_short_flags_and_repository_file_work_as_in_restic_scripts() {
    let (env, file) = two_hosts();
    let f = file.to_str().unwrap();
    // -H is --host for backup and the filters, -f is --force.
    env.ok(&["backup", "-H", "a", "-f", f]);
    let of_a = json(&env, &["snapshots", "--json", "-H", "a"]);
    assert_eq!(of_a.as_array().unwrap().len(), 2, "{of_a}");
    // forget: -l keeps the last, -g groups, -H is --keep-hourly there (as in restic).
    let plan = json(&env, &["forget", "-l", "1", "-g", "host", "-n", "--json"]);
    assert_eq!(plan["removed"].as_array().unwrap().len(), 1, "{plan}");
    let plan = json(
        &env,
        &[
            "forget", "-H", "1", "-d", "1", "-w", "1", "-m", "1", "-y", "1", "-n", "--json",
        ],
    );
    assert_eq!(plan["removed"].as_array().unwrap().len(), 1, "{plan}");
    assert_eq!(
        json(&env, &["snapshots", "-g", "host", "--json"])
            .as_array()
            .unwrap()
            .len(),
        2
    );

    // --repository-file and -p, with no FLOE_* variable.
    // As restic trims the file, a blank line before the location does not count.
    let location = env.path("repository");
    fs::write(&location, format!("\n  {}\n", env.repo.display())).unwrap();
    let password = env.path("password");
    fs::write(&password, format!("{PASSWORD}\n")).unwrap();
    let bare = |args: &[&std::ffi::OsStr]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_floe"))
            .args(args)
            .env_clear()
            .output()
            .unwrap()
    };
    let out = bare(&[
        "--repository-file".as_ref(),
        location.as_os_str(),
        "-p".as_ref(),
        password.as_os_str(),
        "snapshots".as_ref(),
        "--json".as_ref(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let listed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 3);
    // With --repo too: a usage error; an empty file: said so.
    let out = bare(&[
        "--repository-file".as_ref(),
        location.as_os_str(),
        "-r".as_ref(),
        env.repo.as_os_str(),
        "snapshots".as_ref(),
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    fs::write(&location, "\n").unwrap();
    let out = bare(&[
        "--repository-file".as_ref(),
        location.as_os_str(),
        "snapshots".as_ref(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("is empty"), "{}", stderr(&out));
}

#[test]
fn snapshots_takes_ids_and_dump_takes_restics_archive_and_target() {
    let (env, file) = two_hosts();
    let f = file.to_str().unwrap();
    let all = json(&env, &["snapshots", "--json"]);
    let a_id = all[0]["id"].as_str().unwrap();
    let shown = json(&env, &["snapshots", "--json", &a_id[..8]]);
    assert_eq!(shown.as_array().unwrap().len(), 1);
    assert_eq!(shown[0]["id"], a_id);
    let out = env.run(&["snapshots", "0000000000"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));

    let target = env.path("dumped");
    env.ok(&[
        "dump",
        "--archive",
        "tar",
        "--target",
        target.to_str().unwrap(),
        a_id,
        f,
    ]);
    assert_eq!(fs::read(&target).unwrap(), b"content of a");
    let out = env.run(&["dump", "--archive", "zip", a_id, f]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}
