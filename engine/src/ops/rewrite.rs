//! Rewrite: new snapshots without the paths that match exclude patterns (a secret backed up by
//! mistake), planned first, then written. Trees are rebuilt bottom-up; a subtree with nothing
//! to remove keeps its id, so only the folders above a removed entry are new. The originals stay
//! unless asked to go; prune then frees what only they used.

use std::path::{Path, PathBuf};

use crate::error::Result;
use crate::exclude::PathMatcher;
use crate::format::snapshot::{Snapshot, SnapshotEntry};
use crate::format::tree::{NodeKind, Tree};
use crate::id::{BlobId, SnapshotId};
use crate::repo::index::Index;
use crate::repo::lock::LockHealth;
use crate::repo::repository::Repository;
use crate::repo::tree_writer::TreeWriter;
use crate::storage::FileType;

/// One snapshot to rewrite.
#[derive(Debug, Clone)]
pub struct Rewrite {
    /// The snapshot as it is.
    pub original: SnapshotEntry,
    /// The paths that go, in walk order (a folder stands for everything below it).
    pub removed: Vec<PathBuf>,
    /// The new snapshot.
    pub snapshot: Snapshot,
    /// The new trees, children before parents, the new root last; a tree another rewrite of
    /// the plan already holds is not repeated.
    trees: Vec<(BlobId, Tree)>,
}

/// What a rewrite would do: only snapshots with something to remove are listed.
#[derive(Debug, Clone, Default)]
pub struct RewritePlan {
    /// The snapshots that change.
    pub rewrites: Vec<Rewrite>,
}

/// What a rewrite did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RewriteReport {
    /// (original, new) snapshot ids.
    pub rewritten: Vec<(SnapshotId, SnapshotId)>,
    /// Originals removed (with `forget`).
    pub removed: Vec<SnapshotId>,
}

struct Planner<'a> {
    repo: &'a Repository,
    index: &'a Index,
    excludes: PathMatcher,
}

impl Planner<'_> {
    /// The tree `id` at `at` without the matching entries, with the new trees it needs pushed
    /// to `trees`; `None` when nothing below matches.
    fn tree(
        &self,
        id: &BlobId,
        at: &Path,
        removed: &mut Vec<PathBuf>,
        trees: &mut Vec<(BlobId, Tree)>,
    ) -> Result<Option<(BlobId, Tree)>> {
        let tree = self.repo.load_tree(self.index, id)?;
        let mut out = Tree::default();
        let mut changed = false;
        for mut node in tree.nodes {
            let path = at.join(node.name.as_os());
            if self.excludes.matches(&path) {
                removed.push(path);
                changed = true;
                continue;
            }
            if let (NodeKind::Dir, Some(sub)) = (node.kind, node.subtree) {
                if let Some((new_id, new_tree)) = self.tree(&sub, &path, removed, trees)? {
                    trees.push((new_id, new_tree));
                    node.subtree = Some(new_id);
                    changed = true;
                }
            }
            out.nodes.push(node);
        }
        if !changed {
            return Ok(None);
        }
        let new_id = self
            .repo
            .key()
            .blob_id(crate::format::blob::BlobType::Tree, &out.encode());
        Ok(Some((new_id, out)))
    }
}

/// Plans the rewrite of `snapshots` without the paths matching `excludes` (the patterns of
/// backup's `--exclude`). Reads trees only.
pub fn plan(
    repo: &Repository,
    index: &Index,
    snapshots: Vec<SnapshotEntry>,
    excludes: &[String],
) -> Result<RewritePlan> {
    let planner = Planner {
        repo,
        index,
        excludes: PathMatcher::new(excludes)?,
    };
    let mut plan = RewritePlan::default();
    let mut planned = std::collections::HashSet::new();
    for original in snapshots {
        let (mut removed, mut trees) = (Vec::new(), Vec::new());
        let root = original.snapshot.tree;
        let Some((new_root, root_tree)) =
            planner.tree(&root, Path::new("/"), &mut removed, &mut trees)?
        else {
            continue;
        };
        trees.push((new_root, root_tree));
        // Snapshots of the same folders share most new trees: each is kept once.
        trees.retain(|(id, _)| planned.insert(*id));
        let mut snapshot = original.snapshot.clone();
        snapshot.tree = new_root;
        snapshot.original = Some(original.snapshot.original.unwrap_or(original.id));
        snapshot.excludes.extend(excludes.iter().cloned());
        plan.rewrites.push(Rewrite {
            original,
            removed,
            snapshot,
            trees,
        });
    }
    Ok(plan)
}

/// Writes the plan: the new trees and their index file, then the new snapshots, then (with
/// `forget`) removes the originals.
pub fn execute(
    repo: &Repository,
    index: &Index,
    plan: RewritePlan,
    forget: bool,
    lock: &LockHealth,
) -> Result<RewriteReport> {
    repo.ensure_writable()?;
    let mut writer = TreeWriter::new(repo, false)?;
    for r in &plan.rewrites {
        for (_, t) in &r.trees {
            writer.save(index, t)?;
        }
    }
    writer.finish(lock)?;
    let mut report = RewriteReport::default();
    for r in plan.rewrites {
        lock.check()?;
        let id = repo.save_snapshot(&r.snapshot)?;
        report.rewritten.push((r.original.id, id));
        if forget {
            repo.backend()
                .remove(FileType::Snapshot, r.original.id.as_bytes())?;
            report.removed.push(r.original.id);
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{backup_dir, memory_repo, write_files};

    #[test]
    fn matching_paths_go_and_untouched_folders_keep_their_trees() {
        let repo = memory_repo();
        let src = tempfile::tempdir().unwrap();
        write_files(
            src.path(),
            &[
                ("keep/a", b"a"),
                ("docs/secret.key", b"s"),
                ("docs/b", b"b"),
            ],
        );
        backup_dir(&repo, src.path(), &[]);
        let index = repo.load_index().unwrap();
        let snaps = repo.snapshots().unwrap();
        let planned = super::plan(&repo, &index, snaps.clone(), &["*.key".to_string()]).unwrap();
        assert_eq!(planned.rewrites.len(), 1);
        let r = &planned.rewrites[0];
        assert_eq!(r.removed, [src.path().join("docs/secret.key")]);
        assert_eq!(r.snapshot.original, Some(snaps[0].id));

        let report = execute(&repo, &index, planned, false, &LockHealth::unlocked()).unwrap();
        assert_eq!(report.rewritten.len(), 1);
        let index = repo.load_index().unwrap();
        let new = repo.find_snapshot(&report.rewritten[0].1.to_hex()).unwrap();
        let at = |snap: &Snapshot, p: &Path| {
            crate::repo::walk::resolve(&repo, &index, snap, p.to_str().unwrap()).map(|(n, _)| n)
        };
        assert!(at(&new.snapshot, &src.path().join("docs/secret.key")).is_err());
        assert!(at(&new.snapshot, &src.path().join("docs/b"))
            .unwrap()
            .is_some());
        // The folder with nothing removed is the same tree in both snapshots.
        let keep = src.path().join("keep");
        let old_keep = at(&snaps[0].snapshot, &keep).unwrap().unwrap().subtree;
        assert_eq!(at(&new.snapshot, &keep).unwrap().unwrap().subtree, old_keep);
        assert_eq!(repo.snapshots().unwrap().len(), 2, "the original stays");

        // Nothing left to remove: nothing planned.
        let again = super::plan(&repo, &index, vec![new], &["*.key".to_string()]).unwrap();
        assert!(again.rewrites.is_empty());
    }
}
