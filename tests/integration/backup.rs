//! `floe backup`: deduplication, change detection, excludes, dry runs, unreadable files.

use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;

use crate::common::*;

fn n(v: &serde_json::Value, k: &str) -> u64 {
    v["summary"][k]
        .as_u64()
        .unwrap_or_else(|| panic!("summary.{k} missing in {v}"))
}

#[test]
fn the_same_tree_twice_adds_almost_nothing() {
    let env = Env::init();
    let src = env.path("src");
    fs::create_dir_all(src.join("d")).unwrap();
    fs::write(src.join("d/random"), random_bytes(1, 20_000_000)).unwrap();
    fs::write(src.join("small"), b"small file").unwrap();
    let first = env.backup_json(&[&src]);
    let size1 = env.data_bytes();
    assert!(n(&first, "bytes_added") > 20_000_000);

    // The same content under another path, read again from scratch.
    let copy = env.path("copy");
    fs::create_dir_all(copy.join("d")).unwrap();
    fs::copy(src.join("d/random"), copy.join("d/random")).unwrap();
    fs::copy(src.join("small"), copy.join("small")).unwrap();
    let second = env.backup_json(&[&copy]);
    assert_eq!(n(&second, "bytes_read"), 20_000_010);
    assert_eq!(n(&second, "data_blobs_added"), 0);
    assert!(n(&second, "bytes_added") < 10_000, "{second}");
    assert_eq!(env.data_bytes(), size1);
}

/// The id of the tree of folder `dir` in snapshot `snap`.
fn tree_of(env: &Env, snap: &serde_json::Value, dir: &std::path::Path) -> String {
    let id = &snap["snapshot_id"].as_str().unwrap()[..8];
    let spec = format!("{id}:{}", dir.parent().unwrap().display());
    let tree: serde_json::Value = serde_json::from_str(&env.ok(&["cat", "tree", &spec])).unwrap();
    let name = dir.file_name().unwrap().to_str().unwrap();
    let nodes = tree["nodes"].as_array().unwrap();
    let node = nodes.iter().find(|n| n["name"] == name).unwrap();
    node["subtree"].as_str().unwrap().to_string()
}

#[test]
fn an_unchanged_folder_keeps_its_tree_and_a_changed_file_rewrites_only_the_folders_above_it() {
    let env = Env::init();
    let src = env.path("src");
    for d in ["a/b/c", "x/y"] {
        fs::create_dir_all(src.join(d)).unwrap();
        fs::write(src.join(d).join("f"), d).unwrap();
    }
    fs::write(src.join("top"), b"top").unwrap();
    let first = env.backup_json(&[&src]);
    let again = env.backup_json(&[&src]);
    assert_eq!(n(&again, "files_unchanged"), 3, "{again}");
    assert_eq!(tree_of(&env, &again, &src), tree_of(&env, &first, &src));
    // Only folders above the source may have changed (other tests write in the same /tmp).
    let above = src.components().count() as u64 - 1;
    assert!(n(&again, "tree_blobs_added") <= above, "{again}");

    fs::write(src.join("a/b/c/f"), b"changed").unwrap();
    let changed = env.backup_json(&[&src]);
    assert_eq!(n(&changed, "files_changed"), 1, "{changed}");
    // c, b, a, src and every folder above it, and the root: one new tree each.
    let folders = src.join("a/b/c").components().count() as u64;
    assert_eq!(n(&changed, "tree_blobs_added"), folders, "{changed}");
    let x = src.join("x");
    assert_eq!(tree_of(&env, &changed, &x), tree_of(&env, &again, &x));
    let target = env.restore("latest", "r");
    let back = restored(&target, &src);
    assert_eq!(fs::read(back.join("a/b/c/f")).unwrap(), b"changed");
    assert_eq!(fs::read(back.join("x/y/f")).unwrap(), b"x/y");
    assert_eq!(fs::read(back.join("top")).unwrap(), b"top");
}

#[test]
fn one_byte_inserted_at_the_start_of_100_mb_adds_few_chunks() {
    let env = Env::init();
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    let data = random_bytes(7, 100_000_000);
    fs::write(src.join("big"), &data).unwrap();
    let first = env.backup_json(&[&src]);
    let chunks = n(&first, "data_blobs_added");
    assert!(
        chunks >= 50,
        "expected about 100 chunks of 1 MiB, got {chunks}"
    );

    let mut shifted = vec![b'!'];
    shifted.extend_from_slice(&data);
    fs::write(src.join("big"), &shifted).unwrap();
    let second = env.backup_json(&[&src]);
    assert_eq!(n(&second, "files_changed"), 1);
    let added = n(&second, "data_blobs_added");
    assert!(
        (1..=3).contains(&added),
        "{added} new chunks after a one-byte insertion"
    );
    assert!(n(&second, "bytes_added") < 20_000_000, "{second}");
    let t = env.restore("latest", "out");
    assert_eq!(fs::read(restored(&t, &src).join("big")).unwrap(), shifted);
}

#[test]
fn unchanged_files_are_not_read_again() {
    let env = Env::init();
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("a"), random_bytes(2, 3_000_000)).unwrap();
    fs::write(src.join("b"), b"will change").unwrap();
    let first = env.backup_json(&[&src]);
    let second = env.backup_json(&[&src]);
    assert_eq!(second["parent"], first["snapshot_id"]);
    assert_eq!(n(&second, "bytes_read"), 0);
    assert_eq!(n(&second, "files_unchanged"), 2);

    fs::write(src.join("b"), b"has changed!").unwrap();
    let third = env.backup_json(&[&src]);
    assert_eq!(n(&third, "files_changed"), 1);
    assert_eq!(n(&third, "files_unchanged"), 1);
    assert_eq!(n(&third, "bytes_read"), 12);
    // The same figures under restic's names, at the top of the summary.
    let restic = |k: &str| third[k].as_u64().unwrap_or_else(|| panic!("{k}: {third}"));
    assert_eq!(
        (
            restic("files_new"),
            restic("files_changed"),
            restic("files_unmodified")
        ),
        (0, 1, 1)
    );
    assert_eq!(restic("total_files_processed"), 2);
    assert_eq!(restic("total_bytes_processed"), 3_000_012);
    assert_eq!(restic("data_added_packed"), n(&third, "bytes_added"));
    assert_eq!(restic("data_blobs"), n(&third, "data_blobs_added"));
    let t = env.restore("latest", "out");
    assert_eq!(
        fs::read(restored(&t, &src).join("b")).unwrap(),
        b"has changed!"
    );
}

#[test]
fn excludes_from_flags_and_files() {
    let env = Env::init();
    let src = env.path("src");
    fs::create_dir_all(src.join("cache")).unwrap();
    fs::create_dir_all(src.join("keep")).unwrap();
    fs::write(src.join("cache/blob"), b"x").unwrap();
    fs::write(src.join("keep/a.tmp"), b"x").unwrap();
    fs::write(src.join("keep/a.txt"), b"x").unwrap();
    fs::write(src.join("keep/b.bak"), b"x").unwrap();
    let list = env.path("excludes");
    fs::write(&list, "# comment\n*.bak\n\n").unwrap();
    env.ok(&[
        "backup".as_ref(),
        "--exclude".as_ref(),
        "*.tmp".as_ref(),
        "--exclude".as_ref(),
        format!("{}/cache", src.display()).as_ref(),
        "--exclude-file".as_ref(),
        list.as_os_str(),
        src.as_os_str(),
    ]);
    let listing = env.ok(&["ls", "latest"]);
    assert!(listing.contains("keep/a.txt"), "{listing}");
    for gone in ["cache", "a.tmp", "b.bak"] {
        assert!(
            !listing.contains(gone),
            "{gone} should be excluded:\n{listing}"
        );
    }
}

#[test]
fn dry_run_writes_nothing() {
    let env = Env::init();
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("f"), random_bytes(3, 1_000_000)).unwrap();
    let before = dir_contents(&env.repo);
    let out = env.backup_json(&["--dry-run".as_ref(), src.as_os_str()]);
    assert_eq!(out["dry_run"], true);
    assert!(n(&out, "bytes_added") > 1_000_000);
    assert!(
        dir_contents(&env.repo) == before,
        "a dry run leaves every file of the repository as it was"
    );
    let snaps: serde_json::Value = serde_json::from_str(&env.ok(&["snapshots", "--json"])).unwrap();
    assert_eq!(snaps.as_array().unwrap().len(), 0);
}

#[test]
fn unreadable_files_are_reported_and_exit_3() {
    let env = Env::new();
    // As root, permissions do not stop reads: run floe as an unprivileged user instead.
    let unprivileged = is_root();
    fs::set_permissions(env.dir.path(), fs::Permissions::from_mode(0o777)).unwrap();
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    fs::set_permissions(&src, fs::Permissions::from_mode(0o755)).unwrap();
    fs::write(src.join("ok.txt"), b"readable").unwrap();
    fs::write(src.join("secret"), b"not readable").unwrap();
    fs::set_permissions(src.join("ok.txt"), fs::Permissions::from_mode(0o644)).unwrap();
    fs::set_permissions(src.join("secret"), fs::Permissions::from_mode(0o000)).unwrap();
    // A folder that cannot be listed is kept, empty.
    fs::create_dir(src.join("locked")).unwrap();
    fs::write(src.join("locked/inside"), b"x").unwrap();
    fs::set_permissions(src.join("locked"), fs::Permissions::from_mode(0o000)).unwrap();
    let run = |args: &[&std::ffi::OsStr]| {
        let mut c = env.cmd();
        if unprivileged {
            c.uid(65534).gid(65534);
        }
        c.args(args).output().unwrap()
    };
    assert!(run(&["init".as_ref()]).status.success());
    let out = run(&["backup".as_ref(), src.as_os_str()]);
    fs::set_permissions(src.join("locked"), fs::Permissions::from_mode(0o755)).unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "{}: Permission denied",
            src.join("secret").display()
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "{}: Permission denied",
            src.join("locked").display()
        )),
        "{err}"
    );
    let listing = String::from_utf8(run(&["ls".as_ref(), "latest".as_ref()]).stdout).unwrap();
    assert!(
        listing.contains("ok.txt") && !listing.contains("secret"),
        "{listing}"
    );
    assert!(
        listing.contains("/locked") && !listing.contains("inside"),
        "{listing}"
    );
}

#[test]
fn one_file_system_keeps_the_mount_point_but_not_what_is_mounted_there() {
    if !is_root() {
        eprintln!("SKIPPED one_file_system test: mounting a tmpfs needs root");
        return;
    }
    let env = Env::init();
    let src = env.path("src");
    fs::create_dir_all(src.join("mnt")).unwrap();
    fs::write(src.join("here.txt"), b"same file system").unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "tmpfs"])
        .arg(src.join("mnt"))
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        eprintln!("SKIPPED one_file_system test: this machine refused to mount a tmpfs");
        return;
    }
    let _guard = Mounted(src.join("mnt"));
    fs::write(src.join("mnt/inside.txt"), b"another file system").unwrap();
    let s = src.to_str().unwrap();

    env.ok(&["backup", "--one-file-system", s]);
    let out = env.ok(&["ls", "latest", s]);
    assert!(
        out.contains("/src/here.txt\n") && out.contains("/src/mnt\n"),
        "{out}"
    );
    assert!(!out.contains("inside.txt"), "{out}");

    env.ok(&["backup", s]);
    let out = env.ok(&["ls", "latest", s]);
    assert!(out.contains("/src/mnt/inside.txt\n"), "{out}");
}

/// Text that compresses well, and better at higher zstd levels: numbered lines with words drawn
/// from a small vocabulary.
fn log_lines(len: usize) -> Vec<u8> {
    const WORDS: [&str; 8] = [
        "request", "served", "cache", "miss", "upstream", "latency", "bytes", "retry",
    ];
    let mut out = Vec::with_capacity(len + 100);
    let mut x: u64 = 0x9e37_79b9;
    while out.len() < len {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let w = |k: u32| WORDS[((x >> k) % 8) as usize];
        let line = format!(
            "{} {} {} {} {}\n",
            out.len(),
            w(33),
            w(40),
            w(47),
            (x >> 54) % 1000
        );
        out.extend_from_slice(line.as_bytes());
    }
    out.truncate(len);
    out
}

/// The zstd level the repository's config keeps.
fn stored_level(env: &Env) -> i64 {
    let config: serde_json::Value = serde_json::from_str(&env.ok(&["cat", "config"])).unwrap();
    config["compression_level"].as_i64().unwrap()
}

#[test]
fn compression_modes_change_what_is_stored_and_nothing_of_what_is_restored() {
    let dir = Env::new();
    let src = dir.path("src");
    fs::create_dir_all(&src).unwrap();
    let text = log_lines(4 << 20);
    fs::write(src.join("app.log"), &text).unwrap();

    // One repository per mode; each backup restores byte for byte and checks clean.
    let stored = |mode: &str| {
        let env = Env::init();
        env.backup_json(&[
            OsStr::new("--compression"),
            OsStr::new(mode),
            src.as_os_str(),
        ]);
        let back = restored(&env.restore("latest", "r"), &src);
        assert_eq!(fs::read(back.join("app.log")).unwrap(), text, "{mode}");
        env.ok(&["check", "--read-data"]);
        // The repository's own level is untouched.
        assert_eq!(stored_level(&env), 3, "{mode}");
        env.data_bytes()
    };
    let (off, auto, fastest, max) = (
        stored("off"),
        stored("auto"),
        stored("fastest"),
        stored("max"),
    );
    assert!(
        off >= text.len() as u64,
        "off stored {off} bytes of {}",
        text.len()
    );
    assert!(
        auto * 3 < off && fastest * 3 < off,
        "auto {auto}, fastest {fastest}, off {off}"
    );
    assert!(max < auto * 9 / 10, "max {max}, auto {auto}");
}

#[test]
fn init_takes_a_compression_mode_as_the_repository_level_and_refuses_off() {
    let env = Env::new();
    env.ok(&["init", "--compression", "max"]);
    assert_eq!(stored_level(&env), 11);

    let other = Env::new();
    let out = other.run(&["init", "--compression", "off"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("--compression off is for the commands that write data"));
    assert!(!other.repo.exists(), "a refused init leaves no repository");

    let negative = Env::new();
    negative.ok(&["init", "--compression", "-5"]);
    assert_eq!(stored_level(&negative), -5);
}

#[test]
fn compression_comes_from_the_environment_or_a_profile_section_and_init_keeps_its_level() {
    let env = Env::new();
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    let text = log_lines(2 << 20);
    fs::write(src.join("app.log"), &text).unwrap();

    // FLOE_COMPRESSION is for the runs that write data: init says so and keeps level 3.
    let out = env
        .cmd()
        .arg("init")
        .env("FLOE_COMPRESSION", "off")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("note: FLOE_COMPRESSION applies to backups"),
        "{}",
        stderr(&out)
    );
    assert_eq!(stored_level(&env), 3);
    let out = env
        .cmd()
        .args([OsStr::new("backup"), src.as_os_str()])
        .env("FLOE_COMPRESSION", "off")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        env.data_bytes() >= text.len() as u64,
        "{}",
        env.data_bytes()
    );

    // A profile's [backup] section, for backups alone.
    let other = Env::init();
    let profile = other.path("p.toml");
    fs::write(&profile, "[backup]\ncompression = \"off\"\n").unwrap();
    other.ok(&[
        OsStr::new("-P"),
        profile.as_os_str(),
        OsStr::new("backup"),
        src.as_os_str(),
    ]);
    assert!(
        other.data_bytes() >= text.len() as u64,
        "{}",
        other.data_bytes()
    );
    let back = restored(&other.restore("latest", "r"), &src);
    assert_eq!(fs::read(back.join("app.log")).unwrap(), text);
}
