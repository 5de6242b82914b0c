//! Repairs (format-spec/format.md, "Repair").
//!
//! `repair_index` rebuilds the index from the packs themselves, reading only each pack's tail
//! (trailer and sealed header): new index files are written, the last one superseding every old
//! index file, and only then are the old files deleted, so a crash leaves a usable index.

use rayon::prelude::*;
use serde::Serialize;

use crate::error::Result;
use crate::format::pack::BlobType;
use crate::id::PackId;
use crate::repo::index::IndexPack;
use crate::repo::lock::LockHealth;
use crate::repo::repository::Repository;
use crate::repo::tree_writer::TreeWriter;
use crate::storage::FileType;

/// What `repair_index` did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RepairIndexReport {
    /// Packs described by the new index.
    pub packs_indexed: usize,
    /// Blobs described by the new index.
    pub blobs_indexed: usize,
    /// Packs left out because their header could not be read; each with the reason.
    pub unreadable_packs: Vec<(String, String)>,
    /// Index files written.
    pub index_files_written: usize,
    /// Old index files deleted.
    pub index_files_deleted: usize,
}

/// Rebuilds the index from the pack headers. `dry_run` reads and reports without writing.
/// `progress(done, total)` is called as pack headers are read (from several threads).
pub fn repair_index(
    repo: &Repository,
    dry_run: bool,
    lock: &LockHealth,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<RepairIndexReport> {
    repo.ensure_writable()?;
    let mut listed: Vec<(BlobType, PackId, u64)> = repo
        .list_packs()?
        .into_iter()
        .map(|(id, p)| (p.blob_type, id, p.size))
        .collect();
    listed.sort();
    let done = std::sync::atomic::AtomicUsize::new(0);
    let results: Vec<(PackId, Result<IndexPack>)> = repo.in_io_pool(|| {
        listed
            .par_iter()
            .map(|(bt, id, size)| {
                let header = repo.read_pack_header(*bt, id, *size);
                let n = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                progress(n, listed.len());
                (*id, header)
            })
            .collect()
    });
    let mut report = RepairIndexReport::default();
    let mut packs = Vec::new();
    for (id, r) in results {
        match r {
            Ok(p) => packs.push(p),
            Err(e) => report.unreadable_packs.push((id.to_hex(), e.to_string())),
        }
    }
    packs.sort_by_key(|p| p.id);
    report.packs_indexed = packs.len();
    report.blobs_indexed = packs.iter().map(|p| p.blobs.len()).sum();
    if dry_run {
        return Ok(report);
    }
    let old: Vec<crate::id::IndexId> = repo
        .backend()
        .list(FileType::Index)?
        .into_iter()
        .map(|e| crate::id::IndexId::from_bytes(e.id))
        .collect();
    lock.check()?;
    report.index_files_written = repo.save_superseding_index(&packs, &old)?;
    lock.check()?;
    for id in &old {
        repo.backend().remove(FileType::Index, id.as_bytes())?;
        report.index_files_deleted += 1;
    }
    Ok(report)
}

/// A file changed by `repair_snapshots`.
#[derive(Debug, Clone, Serialize)]
pub struct RepairedPath {
    /// The snapshot (short id).
    pub snapshot: String,
    /// The path.
    #[serde(serialize_with = "crate::report::lossy_path")]
    pub path: std::path::PathBuf,
    /// What was done: `truncated to N bytes` or `emptied folder`.
    pub action: String,
}

/// What `repair_snapshots` did or would do.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RepairSnapshotsReport {
    /// Files and folders changed.
    pub paths: Vec<RepairedPath>,
    /// New snapshots written (id), one per damaged snapshot.
    pub new_snapshots: Vec<String>,
    /// Original snapshots removed (with `forget`), damaged snapshot files among them.
    pub removed: Vec<String>,
    /// Snapshot files that do not decrypt or decode (id, error): nothing in them can be
    /// repaired; `forget` removes them.
    pub damaged: Vec<DamagedSnapshot>,
}

/// A snapshot file that does not decrypt or decode.
#[derive(Debug, Clone, Serialize)]
pub struct DamagedSnapshot {
    /// Its id.
    pub snapshot: String,
    /// What is wrong with it.
    pub error: String,
}

struct Repairer<'a> {
    repo: &'a Repository,
    index: &'a crate::repo::index::Index,
    verify_data: bool,
    bad: std::collections::HashSet<crate::id::BlobId>,
    good: std::collections::HashSet<crate::id::BlobId>,
    trees: TreeWriter<'a>,
}

impl Repairer<'_> {
    fn blob_ok(&mut self, id: &crate::id::BlobId) -> bool {
        if self.bad.contains(id) {
            return false;
        }
        if self.good.contains(id) {
            return true;
        }
        let ok = self.index.contains(id)
            && (!self.verify_data || self.repo.read_blob(self.index, id).is_ok());
        if ok {
            self.good.insert(*id);
        } else {
            self.bad.insert(*id);
        }
        ok
    }

    fn save_tree(&mut self, tree: &crate::format::tree::Tree) -> Result<crate::id::BlobId> {
        self.trees.save(self.index, tree)
    }

    /// Returns the repaired tree id, or `None` when nothing below changed.
    fn tree(
        &mut self,
        id: &crate::id::BlobId,
        at: &std::path::Path,
        snap: &str,
        out: &mut Vec<RepairedPath>,
    ) -> Result<Option<crate::id::BlobId>> {
        let mut tree = self.repo.load_tree(self.index, id)?;
        let mut changed = false;
        for node in &mut tree.nodes {
            let path = at.join(node.name.as_os());
            if let Some(content) = node.content.clone() {
                if let Some(first_bad) = content.iter().position(|b| !self.blob_ok(b)) {
                    let keep: Vec<_> = content[..first_bad].to_vec();
                    let size: u64 = keep
                        .iter()
                        .filter_map(|b| self.index.get(b))
                        .map(|l| l.entry.uncompressed_length as u64)
                        .sum();
                    node.content = Some(keep);
                    node.size = size;
                    out.push(RepairedPath {
                        snapshot: snap.to_string(),
                        path: path.clone(),
                        action: format!(
                            "truncated to {size} bytes (from the first damaged blob on)"
                        ),
                    });
                    changed = true;
                }
            }
            if let (crate::format::tree::NodeKind::Dir, Some(sub)) = (node.kind, node.subtree) {
                let fixed = if self.index.contains(&sub) {
                    match self.tree(&sub, &path, snap, out) {
                        Ok(f) => f,
                        Err(e) if e.is_corruption() => {
                            self.bad.insert(sub);
                            None
                        }
                        Err(e) => return Err(e),
                    }
                } else {
                    self.bad.insert(sub);
                    None
                };
                if self.bad.contains(&sub) {
                    out.push(RepairedPath {
                        snapshot: snap.to_string(),
                        path: path.clone(),
                        action: "emptied folder (its listing is damaged or missing)".into(),
                    });
                    node.subtree = Some(self.save_tree(&crate::format::tree::Tree::default())?);
                    changed = true;
                } else if let Some(f) = fixed {
                    node.subtree = Some(f);
                    changed = true;
                }
            }
        }
        if changed {
            Ok(Some(self.save_tree(&tree)?))
        } else {
            Ok(None)
        }
    }
}

/// Writes, for every snapshot that needs a missing or damaged blob, a new snapshot in which
/// damaged files are truncated before their first bad blob and unreadable folders are empty
/// (tagged `repaired`, with the original as parent). Nothing is written unless `write`;
/// originals are removed only with `forget`. `verify_data` reads every data blob to find damage
/// that the index does not show.
pub fn repair_snapshots(
    repo: &Repository,
    write: bool,
    forget: bool,
    verify_data: bool,
    lock: &LockHealth,
) -> Result<RepairSnapshotsReport> {
    repo.ensure_writable()?;
    let index = repo.load_index()?;
    let mut r = Repairer {
        repo,
        index: &index,
        verify_data,
        bad: Default::default(),
        good: Default::default(),
        trees: TreeWriter::new(repo, !write)?,
    };
    let mut report = RepairSnapshotsReport::default();
    let mut fixed = Vec::new();
    let listing = repo.snapshots_readable()?;
    for (id, e) in &listing.damaged {
        report.damaged.push(DamagedSnapshot {
            snapshot: id.to_hex(),
            error: e.to_string(),
        });
    }
    for s in listing.readable {
        let short = s.id.short();
        let mut paths = Vec::new();
        let root = if !index.contains(&s.snapshot.tree) {
            paths.push(RepairedPath {
                snapshot: short.clone(),
                path: "/".into(),
                action: "emptied snapshot (its root listing is missing)".into(),
            });
            Some(r.save_tree(&crate::format::tree::Tree::default())?)
        } else {
            r.tree(
                &s.snapshot.tree,
                std::path::Path::new("/"),
                &short,
                &mut paths,
            )?
        };
        if let Some(root) = root {
            report.paths.extend(paths);
            fixed.push((s, root));
        }
    }
    if !write {
        return Ok(report);
    }
    // Trees before the index that names them, the index before the snapshots that need it.
    r.trees.finish(lock)?;
    for (s, root) in fixed {
        let mut snap = s.snapshot.clone();
        snap.tree = root;
        snap.parent = Some(s.id);
        if !snap.tags.iter().any(|t| t == "repaired") {
            snap.tags.push("repaired".into());
            snap.tags.sort();
        }
        let id = repo.save_snapshot(&snap)?;
        report.new_snapshots.push(id.to_hex());
        if forget {
            repo.backend().remove(FileType::Snapshot, s.id.as_bytes())?;
            report.removed.push(s.id.to_hex());
        }
    }
    if forget {
        for (id, _) in &listing.damaged {
            repo.backend().remove(FileType::Snapshot, id.as_bytes())?;
            report.removed.push(id.to_hex());
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{backup_dir, memory_repo, noise, write_files};

    #[test]
    fn the_index_is_rebuilt_from_the_packs_after_every_index_file_is_lost() {
        let repo = memory_repo();
        let src = tempfile::tempdir().unwrap();
        write_files(src.path(), &[("a", &noise(1, 200_000)), ("b/c", b"small")]);
        backup_dir(&repo, src.path(), &[]);
        let before = repo.load_index().unwrap();
        for f in repo.backend().list(FileType::Index).unwrap() {
            repo.backend().remove(FileType::Index, &f.id).unwrap();
        }
        assert_eq!(repo.load_index().unwrap().len(), 0);

        let dry = repair_index(&repo, true, &LockHealth::unlocked(), &|_, _| {}).unwrap();
        assert_eq!(dry.index_files_written, 0, "a dry run writes nothing");
        assert!(repo.backend().list(FileType::Index).unwrap().is_empty());

        let r = repair_index(&repo, false, &LockHealth::unlocked(), &|_, _| {}).unwrap();
        assert!(r.unreadable_packs.is_empty(), "{:?}", r.unreadable_packs);
        assert_eq!(r.blobs_indexed, before.len());
        assert_eq!(repo.load_index().unwrap().len(), before.len());
        let report =
            crate::ops::check::check(&repo, crate::ops::check::ReadData::All, &|_, _| {}).unwrap();
        assert_eq!(report.errors(), 0, "{:?}", report.problems);
        assert_eq!(report.packs_read, r.packs_indexed);
    }
}
