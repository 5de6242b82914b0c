//! `floe restore`: byte-exact round trips of every kind of entry.

use std::fs;
use std::io::{Seek, SeekFrom, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;

use crate::common::*;

const MIN: usize = 512 * 1024;
const AVG: usize = 1024 * 1024;
const MAX: usize = 8 * 1024 * 1024;

/// Builds a tree with every node kind and the file sizes the format cares about.
fn build_tree(src: &Path) {
    fs::create_dir_all(src.join("dir/nested/empty")).unwrap();
    let sizes = [0usize, 1, MIN - 1, AVG, 3 * MAX + 1];
    for (i, n) in sizes.iter().enumerate() {
        fs::write(src.join(format!("size-{n}")), random_bytes(i as u64, *n)).unwrap();
    }
    // At least 100 MB, half compressible text, half random.
    let mut big = Vec::with_capacity(104_000_000);
    while big.len() < 52_000_000 {
        big.extend_from_slice(
            format!("line {} of a compressible log file\n", big.len()).as_bytes(),
        );
    }
    big.extend_from_slice(&random_bytes(99, 52_000_000));
    fs::write(src.join("dir/big.bin"), &big).unwrap();
    // Non-UTF-8 name.
    let odd = std::ffi::OsStr::new(std::str::from_utf8(b"odd-").unwrap()).to_owned();
    let mut odd = odd.into_encoded_bytes();
    odd.extend_from_slice(&[0xff, 0xfe, b'!']);
    // SAFETY-free: a Unix file name is any bytes but '/' and NUL.
    let odd = std::os::unix::ffi::OsStringExt::from_vec(odd);
    let odd: std::ffi::OsString = odd;
    fs::write(src.join(&odd), b"non-utf8 name").unwrap();
    // Sparse file: 64 MiB with data only at the start and the end.
    {
        let mut f = fs::File::create(src.join("sparse.img")).unwrap();
        f.write_all(b"head").unwrap();
        f.seek(SeekFrom::Start(64 << 20)).unwrap();
        f.write_all(b"tail").unwrap();
    }
    // Links.
    std::os::unix::fs::symlink("size-1", src.join("link-rel")).unwrap();
    std::os::unix::fs::symlink("/nonexistent/target", src.join("dir/link-dangling")).unwrap();
    fs::write(src.join("dir/hard-a"), b"shared by two names").unwrap();
    fs::hard_link(src.join("dir/hard-a"), src.join("dir/nested/hard-b")).unwrap();
    // A fifo.
    assert!(Command::new("mkfifo")
        .arg(src.join("fifo"))
        .status()
        .unwrap()
        .success());
    // Permission bits, including setgid and sticky on folders and an executable.
    fs::write(src.join("script.sh"), b"#!/bin/sh\necho hi\n").unwrap();
    fs::set_permissions(src.join("script.sh"), fs::Permissions::from_mode(0o750)).unwrap();
    fs::set_permissions(src.join("size-1"), fs::Permissions::from_mode(0o400)).unwrap();
    fs::set_permissions(src.join("dir/nested"), fs::Permissions::from_mode(0o3751)).unwrap();
    if is_root() {
        assert!(Command::new("mknod")
            .arg(src.join("null-dev"))
            .args(["c", "1", "3"])
            .status()
            .unwrap()
            .success());
        std::os::unix::fs::chown(src.join("size-0"), Some(1234), Some(5678)).unwrap();
        std::os::unix::fs::lchown(src.join("link-rel"), Some(4321), Some(8765)).unwrap();
        std::os::unix::fs::chown(src.join("dir/nested/empty"), Some(42), Some(43)).unwrap();
    }
    // Distinct mtimes with nanoseconds, folders last.
    set_mtime(&src.join("size-1"), 1_000_000_000, 123_456_789);
    set_mtime(&src.join("dir/big.bin"), 1_600_000_000, 1);
    set_mtime(&src.join("dir/nested/empty"), 1_500_000_000, 999_999_999);
    set_mtime(&src.join("dir"), 1_400_000_000, 5);
}

#[test]
fn round_trip_of_every_node_kind_is_exact() {
    let env = Env::init();
    let src = env.path("src");
    build_tree(&src);
    let summary = env.backup_json(&[&src]);
    assert_eq!(summary["errors"].as_array().unwrap().len(), 0);
    let target = env.restore("latest", "out");
    let copy = restored(&target, &src);
    assert_same_tree(&src, &copy, is_root());
    // The restored folder itself carries the source's metadata.
    let (a, b) = (fs::metadata(&src).unwrap(), fs::metadata(&copy).unwrap());
    assert_eq!(
        (a.mode(), a.mtime(), a.mtime_nsec()),
        (b.mode(), b.mtime(), b.mtime_nsec())
    );
    // Sparse stays sparse: far fewer blocks than its 64 MiB length.
    let sparse = fs::metadata(copy.join("sparse.img")).unwrap();
    assert_eq!(sparse.len(), (64 << 20) + 4);
    assert!(
        sparse.blocks() * 512 < 4 << 20,
        "sparse file restored with {} blocks",
        sparse.blocks()
    );
    // Hard links are hard links again.
    let a = fs::metadata(copy.join("dir/hard-a")).unwrap();
    let b = fs::metadata(copy.join("dir/nested/hard-b")).unwrap();
    assert_eq!((a.ino(), a.nlink()), (b.ino(), 2));
}

#[test]
fn subpath_include_and_exclude() {
    let env = Env::init();
    let src = env.path("src");
    fs::create_dir_all(src.join("a/deep")).unwrap();
    fs::create_dir_all(src.join("b")).unwrap();
    fs::write(src.join("a/deep/keep.txt"), b"keep").unwrap();
    fs::write(src.join("a/deep/skip.log"), b"skip").unwrap();
    fs::write(src.join("b/other.txt"), b"other").unwrap();
    env.ok(&["backup".as_ref(), src.as_os_str()]);

    // SNAPSHOT:SUBPATH restores the folder's contents into the target.
    let sub = format!("latest:{}/a", src.display());
    let t = env.restore(&sub, "sub");
    assert_eq!(fs::read(t.join("deep/keep.txt")).unwrap(), b"keep");
    assert!(!t.join("b").exists());

    // A single file.
    let one = format!("latest:{}/b/other.txt", src.display());
    let t = env.restore(&one, "one");
    assert_eq!(fs::read(t.join("other.txt")).unwrap(), b"other");

    let t = env.path("filtered");
    env.ok(&[
        "restore".as_ref(),
        "latest".as_ref(),
        "--target".as_ref(),
        t.as_os_str(),
        "--include".as_ref(),
        "*/a".as_ref(),
        "--exclude".as_ref(),
        "*.log".as_ref(),
    ]);
    let base = restored(&t, &src);
    assert!(base.join("a/deep/keep.txt").exists());
    assert!(!base.join("a/deep/skip.log").exists());
    assert!(!base.join("b").exists());
}

#[test]
fn existing_files_are_not_overwritten_without_overwrite() {
    let env = Env::init();
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("f"), b"from the backup").unwrap();
    env.ok(&["backup".as_ref(), src.as_os_str()]);
    let t = env.path("out");
    let dest = restored(&t, &src).join("f");
    fs::create_dir_all(dest.parent().unwrap()).unwrap();
    fs::write(&dest, b"precious local edit").unwrap();
    let args = [
        "restore".as_ref(),
        "latest".as_ref(),
        "--target".as_ref(),
        t.as_os_str(),
    ];
    let out = env.run(&args);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("--overwrite"), "{}", stderr(&out));
    assert_eq!(fs::read(&dest).unwrap(), b"precious local edit");
    let mut with = args.to_vec();
    with.push("--overwrite".as_ref());
    env.ok(&with);
    assert_eq!(fs::read(&dest).unwrap(), b"from the backup");
}

#[test]
fn a_sparse_file_restored_over_its_old_copy_stays_sparse() {
    let env = Env::init();
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    {
        let mut f = fs::File::create(src.join("sparse.img")).unwrap();
        f.write_all(b"head").unwrap();
        f.seek(SeekFrom::Start(64 << 20)).unwrap();
        f.write_all(b"tail").unwrap();
    }
    env.ok(&["backup".as_ref(), src.as_os_str()]);
    let t = env.path("out");
    let args = [
        "restore".as_ref(),
        "latest".as_ref(),
        "--target".as_ref(),
        t.as_os_str(),
    ];
    env.ok(&args);
    let dest = restored(&t, &src).join("sparse.img");
    // The copy changes at its end, so the restore continues from the old copy.
    let mut f = fs::OpenOptions::new().write(true).open(&dest).unwrap();
    f.seek(SeekFrom::Start(64 << 20)).unwrap();
    f.write_all(b"TAIL").unwrap();
    drop(f);
    let mut again = args.to_vec();
    again.push("--overwrite".as_ref());
    env.ok(&again);
    assert_eq!(
        fs::read(&dest).unwrap(),
        fs::read(src.join("sparse.img")).unwrap()
    );
    let blocks = fs::metadata(&dest).unwrap().blocks();
    assert!(blocks * 512 < 4 << 20, "restored with {blocks} blocks");
}

/// A file holding exactly the bytes of an encoded empty folder once shared the folder's blob id,
/// and restores then failed with "a tree reference names a data blob".
#[test]
fn regression_file_with_the_bytes_of_an_empty_tree() {
    let env = Env::init();
    let src = env.path("src");
    fs::create_dir_all(src.join("b-empty-dir")).unwrap();
    fs::write(src.join("a-file"), br#"{"nodes":[]}"#).unwrap();
    env.ok(&["backup".as_ref(), src.as_os_str()]);
    let t = env.restore("latest", "out");
    let copy = restored(&t, &src);
    assert_eq!(fs::read(copy.join("a-file")).unwrap(), br#"{"nodes":[]}"#);
    assert!(copy.join("b-empty-dir").is_dir());
}

#[test]
fn a_file_where_the_snapshot_has_a_folder_is_not_replaced_without_overwrite() {
    let env = Env::init();
    let src = env.path("src");
    fs::create_dir_all(src.join("d")).unwrap();
    fs::write(src.join("d/inner"), b"x").unwrap();
    env.ok(&["backup".as_ref(), src.as_os_str()]);
    let t = env.path("out");
    let clash = restored(&t, &src).join("d");
    fs::create_dir_all(clash.parent().unwrap()).unwrap();
    fs::write(&clash, b"a local file named like the folder").unwrap();
    let out = env.run(&[
        "restore".as_ref(),
        "latest".as_ref(),
        "--target".as_ref(),
        t.as_os_str(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(
        fs::read(&clash).unwrap(),
        b"a local file named like the folder"
    );
}

/// Restoring a pack holding blobs of thousands of small files once kept a descriptor open per
/// file and failed with "Too many open files".
#[test]
fn regression_thousands_of_small_files_in_one_pack() {
    let env = Env::init();
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    for i in 0..3000u64 {
        fs::write(
            src.join(format!("f{i}")),
            random_bytes(i, 100 + (i as usize % 500)),
        )
        .unwrap();
    }
    env.ok(&["backup".as_ref(), src.as_os_str()]);
    // Restore under a limit of 256 descriptors, far below the 3000 files of the pack.
    let t = env.path("out");
    let mut cmd = std::process::Command::new("sh");
    cmd.arg("-c")
        .arg("ulimit -n 256 && exec \"$0\" -r \"$1\" restore latest --target \"$2\"")
        .arg(env!("CARGO_BIN_EXE_floe"))
        .arg(&env.repo)
        .arg(&t)
        .env("FLOE_PASSWORD", PASSWORD);
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_same_tree(&src, &restored(&t, &src), is_root());
}
