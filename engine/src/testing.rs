//! Fixtures for unit tests: repositories in memory with real backups of real folders in them.

use std::path::Path;
use std::sync::Arc;

use crate::format::snapshot::SnapshotEntry;
use crate::id::SnapshotId;
use crate::ops::backup::{backup, BackupOptions};
use crate::repo::repository::{test_repository, Repository};
use crate::storage::MemoryBackend;

/// A repository in memory with the cheapest key derivation.
pub(crate) fn memory_repo() -> Repository {
    test_repository(Arc::new(MemoryBackend::new()))
}

/// Writes `files` (path relative to `dir`, bytes), creating their folders.
pub(crate) fn write_files(dir: &Path, files: &[(&str, &[u8])]) {
    for (name, bytes) in files {
        let path = dir.join(name);
        std::fs::create_dir_all(path.parent().expect("a file has a parent")).expect("mkdir");
        std::fs::write(&path, bytes).expect("write a test file");
    }
}

/// Backs up `dir` with `tags` and returns the new snapshot's id.
pub(crate) fn backup_dir(repo: &Repository, dir: &Path, tags: &[&str]) -> SnapshotId {
    let index = repo.load_index().expect("load the index");
    let opts = BackupOptions {
        paths: vec![dir.to_path_buf()],
        tags: tags.iter().map(|t| t.to_string()).collect(),
        ..Default::default()
    };
    let report = backup(repo, &index, &opts).expect("backup");
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    report.snapshot_id
}

/// The snapshot `id` with its content.
pub(crate) fn entry(repo: &Repository, id: SnapshotId) -> SnapshotEntry {
    repo.find_snapshot(&id.to_hex())
        .expect("the snapshot exists")
}

/// Deterministic bytes that do not compress (a simple xorshift), `n` of them.
pub(crate) fn noise(seed: u64, n: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}
