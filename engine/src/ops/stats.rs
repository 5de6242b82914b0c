//! Stats of snapshots: what a restore of them would write, and what of the repository they hold.
//! One walk of their trees; a folder met again (the same tree id, in this snapshot or another)
//! is counted from memory, not read again.

use std::collections::{HashMap, HashSet};

use serde::Serialize;

use crate::error::{Error, Object, Result};
use crate::format::snapshot::SnapshotEntry;
use crate::format::tree::NodeKind;
use crate::id::BlobId;
use crate::repo::index::Index;
use crate::repo::repository::Repository;

/// The figures of some snapshots.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SnapshotStats {
    /// Snapshots counted.
    pub snapshots: u64,
    /// Regular files a restore of each of them, one after the other, would write.
    pub files: u64,
    /// Their bytes (restic's restore-size).
    pub restore_bytes: u64,
    /// Distinct blobs, data and tree, the snapshots refer to.
    pub blobs: u64,
    /// The bytes of those blobs as stored (compressed and sealed; restic's raw-data).
    pub stored_bytes: u64,
    /// The bytes of those blobs once decrypted and decompressed.
    pub raw_bytes: u64,
}

struct Counter<'a> {
    repo: &'a Repository,
    index: &'a Index,
    /// (files, bytes) below each tree already met.
    trees: HashMap<BlobId, (u64, u64)>,
    blobs: HashSet<BlobId>,
    stats: SnapshotStats,
}

impl Counter<'_> {
    fn blob(&mut self, id: &BlobId) -> Result<()> {
        if !self.blobs.insert(*id) {
            return Ok(());
        }
        let loc = self.index.get(id).ok_or(Error::MissingBlob(*id))?;
        self.stats.blobs += 1;
        self.stats.stored_bytes += u64::from(loc.entry.length);
        self.stats.raw_bytes += u64::from(loc.entry.uncompressed_length);
        Ok(())
    }

    /// The files and bytes below tree `id`.
    fn tree(&mut self, id: &BlobId) -> Result<(u64, u64)> {
        if let Some(known) = self.trees.get(id) {
            return Ok(*known);
        }
        self.blob(id)?;
        let tree = self.repo.load_tree(self.index, id)?;
        let (mut files, mut bytes) = (0, 0);
        for node in &tree.nodes {
            match node.kind {
                NodeKind::File => {
                    files += 1;
                    bytes += node.size;
                    for b in node.content.iter().flatten() {
                        self.blob(b)?;
                    }
                }
                NodeKind::Dir => {
                    let sub = node.subtree.ok_or_else(|| {
                        Error::corrupt(Object::BlobId(*id), "folder without a tree")
                    })?;
                    let (f, b) = self.tree(&sub)?;
                    files += f;
                    bytes += b;
                }
                _ => {}
            }
        }
        self.trees.insert(*id, (files, bytes));
        Ok((files, bytes))
    }
}

/// The stats of `snapshots`.
pub fn snapshot_stats(
    repo: &Repository,
    index: &Index,
    snapshots: &[SnapshotEntry],
) -> Result<SnapshotStats> {
    let mut c = Counter {
        repo,
        index,
        trees: HashMap::new(),
        blobs: HashSet::new(),
        stats: SnapshotStats::default(),
    };
    for s in snapshots {
        let (files, bytes) = c.tree(&s.snapshot.tree)?;
        c.stats.snapshots += 1;
        c.stats.files += files;
        c.stats.restore_bytes += bytes;
    }
    Ok(c.stats)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{backup_dir, memory_repo, noise, write_files};

    #[test]
    fn restore_size_counts_every_snapshot_and_blobs_count_once() {
        let repo = memory_repo();
        let src = tempfile::tempdir().unwrap();
        write_files(src.path(), &[("a", &noise(1, 300_000)), ("d/b", b"small")]);
        backup_dir(&repo, src.path(), &[]);
        backup_dir(&repo, src.path(), &[]);
        let index = repo.load_index().unwrap();
        let snaps = repo.snapshots().unwrap();
        let one = snapshot_stats(&repo, &index, &snaps[..1]).unwrap();
        assert_eq!((one.files, one.restore_bytes), (2, 300_005));
        let both = snapshot_stats(&repo, &index, &snaps).unwrap();
        assert_eq!(
            (both.snapshots, both.files, both.restore_bytes),
            (2, 4, 600_010)
        );
        // The second snapshot adds no data blob. The trees of the folders above the source
        // (`/tmp` and on) may differ: other tests create files there between the two backups.
        let above = src.path().components().count() as u64;
        assert!(
            both.blobs >= one.blobs && both.blobs - one.blobs <= above,
            "the second snapshot adds blobs: {} then {}",
            one.blobs,
            both.blobs
        );
        assert!(one.raw_bytes >= 300_005 && one.stored_bytes > 0);
    }
}
