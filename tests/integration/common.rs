//! Helpers shared by the integration tests.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use rand::{RngCore, SeedableRng};

pub const PASSWORD: &str = "correct horse battery staple";

/// A repository in a temporary folder and a way to run floe against it.
pub struct Env {
    pub dir: tempfile::TempDir,
    /// A local path, or any repository location (`s3:...`).
    pub repo: PathBuf,
    /// Extra environment for every run (S3 region, credentials).
    pub vars: Vec<(String, String)>,
}

impl Env {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let repo = dir.path().join("repo");
        Self {
            dir,
            repo,
            vars: Vec::new(),
        }
    }

    /// A new environment with an initialized repository.
    pub fn init() -> Self {
        let env = Self::new();
        env.ok(&["init"]);
        env
    }

    pub fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    pub fn cmd(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_floe"));
        c.arg("-r").arg(&self.repo);
        c.env_remove("FLOE_PASSWORD_FILE")
            .env_remove("FLOE_PASSWORD_COMMAND")
            .env_remove("FLOE_REPOSITORY")
            .env_remove("FLOE_REPOSITORY_FILE")
            .env_remove("FLOE_COMPRESSION")
            .env("FLOE_PASSWORD", PASSWORD)
            // Each test's own cache of remote metadata, never the user's.
            .env("FLOE_CACHE_DIR", self.dir.path().join("cache"))
            .env_remove("FLOE_NO_CACHE");
        c.envs(self.vars.iter().map(|(k, v)| (k, v)));
        c
    }

    pub fn run<S: AsRef<OsStr>>(&self, args: &[S]) -> Output {
        self.cmd().args(args).output().expect("run floe")
    }

    /// Runs and asserts exit 0; returns stdout.
    pub fn ok<S: AsRef<OsStr>>(&self, args: &[S]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "floe {:?} failed with {:?}\nstdout: {}\nstderr: {}",
            args.iter()
                .map(|a| a.as_ref().to_string_lossy().into_owned())
                .collect::<Vec<_>>(),
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf-8 stdout")
    }

    /// Backs up with `--json` and returns the parsed summary object.
    pub fn backup_json<S: AsRef<OsStr>>(&self, args: &[S]) -> serde_json::Value {
        let mut all: Vec<&OsStr> = vec![OsStr::new("backup"), OsStr::new("--json")];
        all.extend(args.iter().map(|a| a.as_ref()));
        let out = self.ok(&all);
        summary_json(out.as_bytes())
    }

    /// Restores `spec` into a new folder and returns it.
    pub fn restore(&self, spec: &str, name: &str) -> PathBuf {
        let target = self.path(name);
        self.ok(&[
            OsStr::new("restore"),
            OsStr::new(spec),
            OsStr::new("--target"),
            target.as_os_str(),
        ]);
        target
    }

    /// The repository opened through the engine, for tests that plant or inspect objects.
    pub fn open_repo(&self) -> floe_engine::Repository {
        floe_engine::Repository::open(
            std::sync::Arc::new(floe_engine::LocalBackend::new(&self.repo)),
            PASSWORD.as_bytes(),
        )
        .expect("open the test repository")
    }

    /// The repository's master key, unwrapped from its key file with the password as any tool
    /// that reads the format would, for tests that forge objects the engine would never write.
    pub fn master_key(&self) -> floe_engine::format::crypto::MasterKey {
        let entry = fs::read_dir(self.repo.join("keys"))
            .expect("list keys/")
            .next()
            .expect("a key file")
            .expect("read keys/");
        let bytes = fs::read(entry.path()).expect("read the key file");
        let key: floe_engine::format::key::KeyFile =
            serde_json::from_slice(&bytes).expect("a key file parses");
        key.open(PASSWORD.as_bytes())
            .expect("the key file is well formed")
            .expect("the password opens it")
    }

    /// Total bytes under the repository's `data/` folder.
    pub fn data_bytes(&self) -> u64 {
        dir_bytes(&self.repo.join("data"))
    }
}

pub fn dir_bytes(p: &Path) -> u64 {
    let mut total = 0;
    if let Ok(rd) = fs::read_dir(p) {
        for e in rd.flatten() {
            let m = e.metadata().expect("metadata");
            total += if m.is_dir() {
                dir_bytes(&e.path())
            } else {
                m.len()
            };
        }
    }
    total
}

/// Every file under `p`, by path relative to it, with its bytes: two calls compare equal only
/// when no file was added, removed or changed.
/// Sets the modification time of a file or folder.
pub fn set_mtime(p: &Path, secs: i64, nanos: u32) {
    let t = std::time::UNIX_EPOCH + std::time::Duration::new(secs as u64, nanos);
    let f = fs::File::options()
        .write(true)
        .open(p)
        .or_else(|_| fs::File::open(p))
        .expect("open");
    f.set_modified(t).expect("set mtime");
}

pub fn dir_contents(p: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![p.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in fs::read_dir(&dir).expect("read a folder").flatten() {
            let path = e.path();
            if e.file_type().expect("file type").is_dir() {
                stack.push(path);
            } else {
                let rel = path.strip_prefix(p).expect("under the root").to_path_buf();
                out.insert(rel, fs::read(&path).expect("read a file"));
            }
        }
    }
    out
}

/// Reproducible random bytes.
pub fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    rand::rngs::StdRng::seed_from_u64(seed).fill_bytes(&mut v);
    v
}

/// The summary object that ends the output of `backup --json` or `restore --json`; every line
/// before it must be a status object.
pub fn summary_json(stdout: &[u8]) -> serde_json::Value {
    let text = std::str::from_utf8(stdout).expect("utf-8 stdout");
    let mut lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let last = lines.pop().expect("a summary line");
    assert_eq!(last["message_type"], "summary", "{text}");
    for l in &lines {
        assert_eq!(l["message_type"], "status", "{text}");
    }
    last
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub fn is_root() -> bool {
    nix_euid() == 0
}

fn nix_euid() -> u32 {
    // SAFETY-free: read from /proc rather than calling libc.
    let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|u| u.parse().ok())
        .unwrap_or(u32::MAX)
}

/// The restored copy of `source` under `target` (restore mirrors absolute paths).
pub fn restored(target: &Path, source: &Path) -> PathBuf {
    target.join(source.strip_prefix("/").expect("absolute source"))
}

fn file_hash(p: &Path) -> blake3::Hash {
    let mut h = blake3::Hasher::new();
    let mut f = fs::File::open(p).expect("open");
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).expect("read");
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    h.finalize()
}

/// Everything a restore must reproduce about one entry.
#[derive(Debug, PartialEq, Eq)]
pub struct Snapshot {
    pub kind: &'static str,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: (i64, i64),
    pub size: u64,
    pub content: Option<String>,
    pub link: Option<Vec<u8>>,
    pub rdev: u64,
    /// Index of the first entry sharing this inode (hard links), in walk order.
    pub hardlink_group: Option<usize>,
}

/// Walks `root` and records every entry by its relative path (as bytes).
pub fn describe(root: &Path, check_owner: bool) -> BTreeMap<Vec<u8>, Snapshot> {
    let mut out = BTreeMap::new();
    let mut inodes: BTreeMap<(u64, u64), usize> = BTreeMap::new();
    let mut order = 0usize;
    walk(root, root, check_owner, &mut out, &mut inodes, &mut order);
    out
}

fn walk(
    root: &Path,
    p: &Path,
    check_owner: bool,
    out: &mut BTreeMap<Vec<u8>, Snapshot>,
    inodes: &mut BTreeMap<(u64, u64), usize>,
    order: &mut usize,
) {
    let mut entries: Vec<_> = fs::read_dir(p)
        .expect("read_dir")
        .map(|e| e.expect("entry").path())
        .collect();
    entries.sort();
    for e in entries {
        let m = fs::symlink_metadata(&e).expect("lstat");
        let ft = m.file_type();
        let rel = e
            .strip_prefix(root)
            .expect("prefix")
            .as_os_str()
            .as_bytes()
            .to_vec();
        *order += 1;
        let hardlink_group = (ft.is_file() && m.nlink() > 1)
            .then(|| *inodes.entry((m.dev(), m.ino())).or_insert(*order));
        let kind = if ft.is_dir() {
            "dir"
        } else if ft.is_file() {
            "file"
        } else if ft.is_symlink() {
            "symlink"
        } else if ft.is_fifo() {
            "fifo"
        } else if ft.is_char_device() {
            "chardev"
        } else if ft.is_block_device() {
            "blockdev"
        } else {
            "socket"
        };
        out.insert(
            rel,
            Snapshot {
                kind,
                mode: if ft.is_symlink() {
                    0
                } else {
                    m.mode() & 0o7777
                },
                uid: if check_owner { m.uid() } else { 0 },
                gid: if check_owner { m.gid() } else { 0 },
                mtime: (m.mtime(), m.mtime_nsec()),
                size: if ft.is_file() { m.len() } else { 0 },
                content: ft.is_file().then(|| file_hash(&e).to_hex().to_string()),
                link: ft.is_symlink().then(|| {
                    fs::read_link(&e)
                        .expect("readlink")
                        .as_os_str()
                        .as_bytes()
                        .to_vec()
                }),
                rdev: if ft.is_char_device() || ft.is_block_device() {
                    m.rdev()
                } else {
                    0
                },
                hardlink_group,
            },
        );
        if ft.is_dir() {
            walk(root, &e, check_owner, out, inodes, order);
        }
    }
}

/// Asserts two trees are identical in everything `describe` records.
pub fn assert_same_tree(a: &Path, b: &Path, check_owner: bool) {
    let da = describe(a, check_owner);
    let db = describe(b, check_owner);
    let names_a: Vec<_> = da
        .keys()
        .map(|k| String::from_utf8_lossy(k).into_owned())
        .collect();
    let names_b: Vec<_> = db
        .keys()
        .map(|k| String::from_utf8_lossy(k).into_owned())
        .collect();
    assert_eq!(names_a, names_b, "entry names differ");
    for (k, va) in &da {
        assert_eq!(
            Some(va),
            db.get(k),
            "entry {:?} differs",
            String::from_utf8_lossy(k)
        );
    }
}

/// Unmounts on drop, so that a failed assertion does not leave a mount behind.
pub struct Mounted(pub PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}
