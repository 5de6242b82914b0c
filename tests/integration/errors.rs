//! Bad input: wrong password, missing repository, damaged packs.

use std::ffi::OsStr;
use std::fs;

use crate::common::*;

fn list_files(p: &std::path::Path, out: &mut Vec<(std::path::PathBuf, Vec<u8>)>) {
    for e in fs::read_dir(p).unwrap().flatten() {
        if e.file_type().unwrap().is_dir() {
            list_files(&e.path(), out);
        } else {
            out.push((e.path(), fs::read(e.path()).unwrap()));
        }
    }
}

#[test]
fn wrong_password_exits_12_and_writes_nothing() {
    let env = Env::init();
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("f"), b"data").unwrap();
    env.ok(&["backup".as_ref(), src.as_os_str()]);
    let mut before = Vec::new();
    list_files(&env.repo, &mut before);
    for args in [
        vec!["backup".as_ref(), src.as_os_str()],
        vec!["snapshots".as_ref()],
    ] {
        let out = env
            .cmd()
            .env("FLOE_PASSWORD", "not the password")
            .args(&args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(12));
        assert!(stderr(&out).contains("wrong password"), "{}", stderr(&out));
    }
    let mut after = Vec::new();
    list_files(&env.repo, &mut after);
    before.sort();
    after.sort();
    assert_eq!(before, after, "a failed open must not write");
}

#[test]
fn password_from_file_and_command() {
    let env = Env::init();
    let pw = env.path("pw");
    fs::write(&pw, format!("{PASSWORD}\n")).unwrap();
    let out = env
        .cmd()
        .env_remove("FLOE_PASSWORD")
        .env("FLOE_PASSWORD_FILE", &pw)
        .arg("snapshots")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let out = env
        .cmd()
        .env_remove("FLOE_PASSWORD")
        .env("FLOE_PASSWORD_COMMAND", format!("echo '{PASSWORD}'"))
        .arg("snapshots")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let out = env
        .cmd()
        .env_remove("FLOE_PASSWORD")
        .arg("snapshots")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("no password given"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn missing_repository_exits_10() {
    let env = Env::new();
    let out = env.run(&["snapshots"]);
    assert_eq!(out.status.code(), Some(10));
    assert!(
        stderr(&out).contains("repository does not exist"),
        "{}",
        stderr(&out)
    );
    // And init refuses to run twice.
    env.ok(&["init"]);
    let out = env.run(&["init"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("already exists"), "{}", stderr(&out));
}

#[test]
fn a_flipped_byte_in_a_data_pack_fails_the_restore_naming_the_pack() {
    let env = Env::init();
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    let content = random_bytes(11, 3_000_000);
    fs::write(src.join("victim"), &content).unwrap();
    env.ok(&["backup".as_ref(), src.as_os_str()]);
    let mut packs = Vec::new();
    list_files(&env.repo.join("data"), &mut packs);
    assert_eq!(packs.len(), 1);
    let (pack_path, mut bytes) = packs.remove(0);
    bytes[1000] ^= 0x01;
    fs::write(&pack_path, &bytes).unwrap();
    let pack_id = pack_path
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();

    let t = env.path("out");
    let out = env.run(&[
        "restore".as_ref(),
        "latest".as_ref(),
        "--target".as_ref(),
        t.as_os_str(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains(&pack_id),
        "error should name pack {pack_id}: {err}"
    );
    assert!(err.contains("victim") && err.contains("corrupted"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    // Nothing that looks like the file was left behind.
    assert!(!restored(&t, &src).join("victim").exists());
}

#[test]
fn a_damaged_extra_key_file_does_not_lock_users_out() {
    let env = Env::init();
    let junk = b"{ this is not a key file";
    let name = blake3::hash(junk).to_hex().to_string();
    fs::write(env.repo.join("keys").join(&name), junk).unwrap();
    env.ok(&["snapshots"]);
    // With only the damaged key left, the error names it instead of claiming a wrong password.
    for e in fs::read_dir(env.repo.join("keys")).unwrap().flatten() {
        if e.file_name().to_string_lossy() != name {
            fs::remove_file(e.path()).unwrap();
        }
    }
    let out = env.run(&["snapshots"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains(&format!("corrupted keys file {name}")),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_user_who_may_not_write_the_repository_is_told_about_no_lock() {
    if !is_root() {
        eprintln!("SKIPPED: running floe as another user needs root");
        return;
    }
    let env = Env::init();
    let src = env.path("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("a"), b"readable by all").unwrap();
    env.ok(&["backup", src.to_str().unwrap()]);
    // Everything readable by others, nothing writable: a read-only copy of the repository.
    let status = std::process::Command::new("chmod")
        .args(["-R", "a+rX"])
        .arg(env.dir.path())
        .status()
        .unwrap();
    assert!(status.success());
    let as_nobody = |args: &[&str]| {
        let c = env.cmd();
        let floe = c.get_program().to_owned();
        let mut cmd = std::process::Command::new("setpriv");
        cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(floe)
            .args(c.get_args())
            .args(args)
            .envs(c.get_envs().filter_map(|(k, v)| v.map(|v| (k, v))));
        cmd.output().unwrap()
    };
    let out = as_nobody(&["ls", "latest"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("ls could not take its lock") && stderr(&out).contains("--no-lock"),
        "{}",
        stderr(&out)
    );
    let out = as_nobody(&["--no-lock", "ls", "latest"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let listing = String::from_utf8_lossy(&out.stdout);
    assert!(listing.contains("/src/a"), "{listing}");
}

#[test]
fn a_file_where_a_folder_belongs_is_named_as_such() {
    let env = Env::init();
    let file = env.path("a-file");
    std::fs::write(&file, "not a folder").unwrap();
    // A repository location that is a file: no repository there (exit 10).
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_floe"))
        .args([OsStr::new("-r"), file.as_os_str(), OsStr::new("snapshots")])
        .env_remove("FLOE_REPOSITORY")
        .env_remove("FLOE_REPOSITORY_FILE")
        .env("FLOE_PASSWORD", PASSWORD)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(10), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("repository does not exist"),
        "{}",
        stderr(&out)
    );
    // A restore target that is a file.
    let src = env.path("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("f"), "x").unwrap();
    env.ok(&[OsStr::new("backup"), src.as_os_str()]);
    let out = env.run(&[
        OsStr::new("restore"),
        OsStr::new("latest"),
        OsStr::new("--target"),
        file.as_os_str(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let expected = format!("the target {} is not a folder", file.display());
    assert!(stderr(&out).contains(&expected), "{}", stderr(&out));
    assert_eq!(std::fs::read(&file).unwrap(), b"not a folder");
    // An empty --host is refused rather than recorded.
    let out = env.run(&[
        OsStr::new("backup"),
        OsStr::new("--host"),
        OsStr::new(""),
        src.as_os_str(),
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}
