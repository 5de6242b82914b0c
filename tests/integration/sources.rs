//! Where a backup's data comes from: standard input, a command's output, lists of paths; and
//! what it does with sources that are missing, special, marked or changing while read.

use std::fs;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::common::*;

/// Runs floe with `input` on its standard input.
fn run_with_stdin(env: &Env, args: &[&str], input: &[u8]) -> std::process::Output {
    let mut child = env
        .cmd()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start floe");
    let mut stdin = child.stdin.take().expect("stdin");
    let data = input.to_vec();
    let feeder = std::thread::spawn(move || stdin.write_all(&data));
    let out = child.wait_with_output().expect("floe runs");
    feeder.join().expect("feeder").expect("write stdin");
    out
}

fn snapshot_count(env: &Env) -> usize {
    let v: serde_json::Value = serde_json::from_str(&env.ok(&["snapshots", "--json"])).unwrap();
    v.as_array().unwrap().len()
}

fn dump(env: &Env, args: &[&str]) -> Vec<u8> {
    let out = env.run(args);
    assert!(out.status.success(), "dump failed: {}", stderr(&out));
    out.stdout
}

#[test]
fn stdin_is_stored_as_one_file_and_deduplicates() {
    let env = Env::init();
    let data = random_bytes(7, 5 << 20);
    let args = ["backup", "--json", "--stdin", "--stdin-filename", "db.sql"];
    let out = run_with_stdin(&env, &args, &data);
    assert!(out.status.success(), "{}", stderr(&out));
    let first: serde_json::Value = summary_json(&out.stdout);
    assert_eq!(first["summary"]["files_new"], 1);
    assert_eq!(first["summary"]["bytes_read"], data.len() as u64);
    assert_eq!(dump(&env, &["dump", "latest", "/db.sql"]), data);
    // Restic's `SNAPSHOT:PATH` and `SNAPSHOT PATH` forms name the same file.
    assert_eq!(dump(&env, &["dump", "latest:/db.sql"]), data);
    let snaps: serde_json::Value = serde_json::from_str(&env.ok(&["snapshots", "--json"])).unwrap();
    assert_eq!(snaps[0]["paths"], serde_json::json!(["/db.sql"]));

    // The same dump again adds no data blob.
    let out = run_with_stdin(&env, &args, &data);
    assert!(out.status.success(), "{}", stderr(&out));
    let second: serde_json::Value = summary_json(&out.stdout);
    assert_eq!(second["summary"]["data_blobs_added"], 0, "{second}");
}

#[test]
fn stdin_refuses_paths_and_bad_names() {
    let env = Env::init();
    let out = run_with_stdin(&env, &["backup", "--stdin", "/etc/hostname"], b"x");
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("give no paths"), "{}", stderr(&out));
    let out = run_with_stdin(
        &env,
        &["backup", "--stdin", "--stdin-filename", "a/b"],
        b"x",
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("invalid stream file name"),
        "{}",
        stderr(&out)
    );
    assert_eq!(snapshot_count(&env), 0);
}

#[test]
fn stdin_from_command_backs_up_its_output_and_passes_its_stderr() {
    let env = Env::init();
    let src = env.path("payload");
    fs::write(&src, random_bytes(3, 3 << 20)).unwrap();
    let script = format!(
        "cat {}; echo 'progress from the command' >&2",
        src.display()
    );
    let out = env.run(&[
        "backup",
        "--stdin-from-command",
        "--stdin-filename",
        "out.bin",
        "--",
        "sh",
        "-c",
        &script,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("progress from the command"));
    assert_eq!(
        dump(&env, &["dump", "latest", "/out.bin"]),
        fs::read(&src).unwrap()
    );
}

#[test]
fn a_failing_or_killed_command_saves_no_snapshot() {
    let env = Env::init();
    for (script, status) in [
        ("head -c 3000000 /dev/zero; exit 3", "exit status: 3"),
        ("head -c 100 /dev/zero; kill -9 $$", "signal: 9"),
    ] {
        let out = env.run(&["backup", "--stdin-from-command", "--", "sh", "-c", script]);
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        let err = stderr(&out);
        assert!(err.contains(&format!("sh -c {script}")), "{err}");
        assert!(
            err.contains(status) && err.contains("no snapshot was saved"),
            "{err}"
        );
        assert_eq!(err.matches(status).count(), 1, "the cause said once: {err}");
    }
    let out = env.run(&[
        "backup",
        "--stdin-from-command",
        "--",
        "no-such-command-floe",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("starting the command `no-such-command-floe`"));
    assert_eq!(snapshot_count(&env), 0);
}

#[test]
fn files_from_lists_combine_with_paths() {
    let env = Env::init();
    let dir = env.path("src");
    fs::create_dir(&dir).unwrap();
    for name in ["a", "b", "#c", "d", "e\nf", "given"] {
        fs::write(dir.join(name), name).unwrap();
    }
    let p = |n: &str| dir.join(n).to_str().unwrap().to_string();
    let lines = env.path("lines");
    fs::write(&lines, format!("# a comment\n{}\n\n{}\r\n", p("a"), p("b"))).unwrap();
    let verbatim = env.path("verbatim");
    fs::write(&verbatim, format!("{}\n", p("#c"))).unwrap();
    let raw = env.path("raw");
    let mut raw_bytes = dir.join("d").as_os_str().as_bytes().to_vec();
    raw_bytes.push(0);
    raw_bytes.extend_from_slice(dir.join("e\nf").as_os_str().as_bytes());
    raw_bytes.push(0);
    fs::write(&raw, raw_bytes).unwrap();
    env.ok(&[
        "backup",
        &p("given"),
        "--files-from",
        lines.to_str().unwrap(),
        "--files-from-verbatim",
        verbatim.to_str().unwrap(),
        "--files-from-raw",
        raw.to_str().unwrap(),
    ]);
    let listed = env.ok(&["ls", "--json", "latest", dir.to_str().unwrap()]);
    let mut names: Vec<String> = listed
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["path"].to_string())
        .filter_map(|p| {
            p.trim_matches('"')
                .strip_prefix(dir.to_str().unwrap())
                .map(String::from)
        })
        .collect();
    names.sort();
    assert_eq!(names, ["/#c", "/a", "/b", "/d", "/e\\nf", "/given"]);

    let empty = env.path("empty");
    fs::write(&empty, "# nothing\n").unwrap();
    let out = env.run(&["backup", "--files-from", empty.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("name no path"), "{}", stderr(&out));
}

#[test]
fn a_missing_source_is_a_warning_and_the_rest_is_backed_up() {
    let env = Env::init();
    let here = env.path("here");
    fs::write(&here, b"kept").unwrap();
    let gone = env.path("gone");
    let out = env.run(&["backup", here.to_str().unwrap(), gone.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("warning: {}", gone.display())),
        "{err}"
    );
    assert_eq!(
        dump(&env, &["dump", "latest", here.to_str().unwrap()]),
        b"kept"
    );

    // Nothing readable at all: an error, and no snapshot.
    let out = env.run(&["backup", gone.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("none of the 1 source(s) could be read"),
        "{}",
        stderr(&out)
    );
    assert_eq!(snapshot_count(&env), 1);
}

#[test]
fn a_fifo_or_dev_stdin_source_is_refused_with_a_hint() {
    let env = Env::init();
    let fifo = env.path("fifo");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let out = env.run(&["backup", fifo.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("is a fifo") && err.contains("backup --stdin"),
        "{err}"
    );
    // `pg_dump | floe backup /dev/stdin` backed up nothing and said so nowhere.
    let out = run_with_stdin(&env, &["backup", "/dev/stdin"], b"data");
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("backup --stdin"), "{}", stderr(&out));
    assert_eq!(snapshot_count(&env), 0);
    // In a --files-from list (find's output, say), a FIFO is recorded as one, as in a folder.
    let list = env.path("list");
    fs::write(&list, format!("{}\n", fifo.display())).unwrap();
    env.ok(&["backup", "--files-from", list.to_str().unwrap()]);
    let listed = env.ok(&["ls", "--long", "latest", fifo.to_str().unwrap()]);
    assert!(listed.starts_with('p'), "{listed}");
}

#[test]
fn a_file_growing_during_the_backup_is_reported() {
    let env = Env::init();
    let dir = env.path("src");
    fs::create_dir(&dir).unwrap();
    fs::write(dir.join("still"), b"unchanging").unwrap();
    let growing = dir.join("growing");
    fs::write(&growing, random_bytes(1, 64 << 20)).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (stop, path) = (stop.clone(), growing.clone());
        std::thread::spawn(move || {
            let mut f = fs::OpenOptions::new().append(true).open(path).unwrap();
            while !stop.load(Ordering::Relaxed) {
                f.write_all(b"more").unwrap();
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
        })
    };
    let out = env.run(&["backup", "--json", dir.to_str().unwrap()]);
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let v: serde_json::Value = summary_json(&out.stdout);
    assert_eq!(v["changed_while_read"], serde_json::json!([growing]));
    assert_eq!(v["summary"]["files_changed_while_read"], 1);
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "warning: {}: changed while it was read",
            growing.display()
        )),
        "{err}"
    );
}

#[test]
fn exclude_options_leave_out_marked_folders_large_files_and_any_case() {
    let env = Env::init();
    let dir = env.path("src");
    for sub in ["cache", "fake-cache", "marked", "plain"] {
        fs::create_dir_all(dir.join(sub)).unwrap();
        fs::write(dir.join(sub).join("file"), b"x").unwrap();
    }
    fs::write(
        dir.join("cache/CACHEDIR.TAG"),
        b"Signature: 8a477f597d28d172789f06886806bc55\n# a cache\n",
    )
    .unwrap();
    fs::write(dir.join("fake-cache/CACHEDIR.TAG"), b"not a signature").unwrap();
    fs::write(dir.join("marked/.nobackup"), b"").unwrap();
    fs::create_dir(dir.join("custom")).unwrap();
    fs::write(dir.join("custom/file"), b"x").unwrap();
    fs::write(dir.join("custom/.skip"), b"SKIP ME please").unwrap();
    fs::create_dir(dir.join("custom-wrong")).unwrap();
    fs::write(dir.join("custom-wrong/.skip"), b"keep me").unwrap();
    // A FIFO named like a marker is never opened (that would block the backup).
    assert!(std::process::Command::new("mkfifo")
        .arg(dir.join("plain/.skip"))
        .status()
        .unwrap()
        .success());
    let iexcludes = env.path("iexcludes");
    fs::write(&iexcludes, "# pictures\n*.PNG\n").unwrap();
    fs::write(dir.join("plain/shot.png"), b"png").unwrap();
    fs::write(dir.join("plain/PHOTO.JPG"), b"jpeg").unwrap();
    fs::write(dir.join("plain/big"), vec![1u8; 2 << 20]).unwrap();
    fs::write(dir.join("plain/small"), vec![1u8; 1 << 20]).unwrap();
    env.ok(&[
        "backup",
        dir.to_str().unwrap(),
        "--exclude-caches",
        "--exclude-if-present",
        ".nobackup",
        "--exclude-if-present",
        ".skip:SKIP ME",
        "--iexclude",
        "*.jpg",
        "--iexclude-file",
        iexcludes.to_str().unwrap(),
        "--exclude-larger-than",
        "1M",
    ]);
    let listed = env.ok(&["ls", "latest", dir.to_str().unwrap()]);
    let mut names: Vec<&str> = listed
        .lines()
        .filter_map(|l| l.strip_prefix(dir.to_str().unwrap()))
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            // A marked folder keeps its marker, as restic keeps it.
            "/cache",
            "/cache/CACHEDIR.TAG",
            "/custom",
            "/custom-wrong",
            "/custom-wrong/.skip",
            "/custom/.skip",
            "/fake-cache",
            "/fake-cache/CACHEDIR.TAG",
            "/fake-cache/file",
            "/marked",
            "/marked/.nobackup",
            "/plain",
            "/plain/.skip",
            "/plain/file",
            // Exactly 1 MiB: not larger than 1M, kept.
            "/plain/small"
        ]
    );
}

#[test]
fn a_comma_in_tag_gives_two_tags_and_filters_need_both() {
    let env = Env::init();
    let f = env.path("f");
    fs::write(&f, b"x").unwrap();
    env.ok(&[
        "backup",
        f.to_str().unwrap(),
        "--tag",
        "automated,nightly",
        "--tag",
        "db",
    ]);
    let v: serde_json::Value = serde_json::from_str(&env.ok(&["snapshots", "--json"])).unwrap();
    assert_eq!(
        v[0]["tags"],
        serde_json::json!(["automated", "db", "nightly"])
    );
    let count = |tags: &[&str]| {
        let mut args = vec!["snapshots", "--json"];
        for t in tags {
            args.extend(["--tag", t]);
        }
        let v: serde_json::Value = serde_json::from_str(&env.ok(&args)).unwrap();
        v.as_array().unwrap().len()
    };
    assert_eq!(count(&["nightly"]), 1);
    assert_eq!(count(&["automated,nightly"]), 1);
    assert_eq!(count(&["automated,weekly"]), 0);
    assert_eq!(count(&["weekly", "db"]), 1);
    // `--tag ""` selects the snapshots without tags, as in restic.
    env.ok(&["backup", f.to_str().unwrap()]);
    assert_eq!(count(&[""]), 1);
    assert_eq!(count(&["", "db"]), 2);
}

#[test]
fn excludes_apply_to_the_sources_named_too_as_in_restic() {
    let env = Env::init();
    let src = env.path("src");
    fs::create_dir_all(src.join("b")).unwrap();
    for name in ["b/lower.tmp", "b/UPPER.TMP", "b/keep.txt"] {
        fs::write(src.join(name), name).unwrap();
    }
    let list = env.path("list");
    let named: String = ["lower.tmp", "UPPER.TMP", "keep.txt"]
        .iter()
        .map(|n| format!("{}\n", src.join("b").join(n).display()))
        .collect();
    fs::write(&list, named).unwrap();
    env.ok(&[
        "backup".as_ref(),
        "--files-from".as_ref(),
        list.as_os_str(),
        "--iexclude".as_ref(),
        "*.tmp".as_ref(),
    ]);
    let listed = env.ok(&["ls", "latest"]);
    assert!(listed.contains("keep.txt"), "{listed}");
    assert!(
        !listed.contains("lower.tmp") && !listed.contains("UPPER.TMP"),
        "{listed}"
    );
    // Sources on the command line as well.
    env.ok(&[
        "backup".as_ref(),
        "--exclude".as_ref(),
        "*.txt".as_ref(),
        src.join("b/keep.txt").as_os_str(),
        src.join("b/lower.tmp").as_os_str(),
    ]);
    let listed = env.ok(&["ls", "latest"]);
    assert!(
        listed.contains("lower.tmp") && !listed.contains("keep.txt"),
        "{listed}"
    );
}
