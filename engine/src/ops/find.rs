//! Find: which snapshots hold entries matching a pattern, or files whose content is in a given
//! blob or pack. Reads trees only, never a data pack, so it works while the data is archived.
//!
//! Snapshots of one machine share most of their trees. A folder already searched at the same
//! path in an earlier snapshot, with nothing found in it, is not searched again: the cost is the
//! number of distinct folders, not snapshots times folders.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use crate::error::{Error, Object, Result};
use crate::exclude::PathMatcher;
use crate::format::snapshot::SnapshotEntry;
use crate::format::tree::{Node, NodeKind, Tree};
use crate::id::{BlobId, PackId, SnapshotId};
use crate::repo::index::Index;
use crate::repo::repository::Repository;

/// What to look for. An entry matches when it matches any one criterion.
#[derive(Debug, Clone, Default)]
pub struct FindOptions {
    /// Patterns as for excludes (`*.pdf`, `/home/*/notes.txt`, `src/*.rs`).
    pub patterns: Vec<String>,
    /// Files whose content includes one of these blobs, and folders whose tree is one of them.
    pub blobs: Vec<BlobId>,
    /// Files with content stored in one of these packs (a damaged or lost pack: what it costs).
    pub packs: Vec<PackId>,
}

/// What a search visited.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FindStats {
    /// Snapshots searched.
    pub snapshots: u64,
    /// Folders read (each distinct folder once, unless it held a match).
    pub trees_read: u64,
    /// Entries that matched, counted once per snapshot.
    pub matches: u64,
    /// Folders that could not be read (damaged or missing tree data), with why: the search
    /// goes on past them.
    pub unreadable: Vec<(SnapshotId, PathBuf, String)>,
}

struct Finder<'a> {
    repo: &'a Repository,
    index: &'a Index,
    names: PathMatcher,
    blobs: HashSet<BlobId>,
    packs: HashSet<PackId>,
    /// Folders (tree id at a path) searched already with no match inside.
    barren: HashSet<(BlobId, PathBuf)>,
    stats: FindStats,
}

impl Finder<'_> {
    fn in_packs(&self, blob: &BlobId) -> bool {
        !self.packs.is_empty()
            && self
                .index
                .get(blob)
                .is_some_and(|loc| self.packs.contains(&loc.pack))
    }

    fn matches(&self, path: &Path, node: &Node) -> bool {
        if self.names.matches(path) {
            return true;
        }
        // A folder matches when its listing is the blob, or lies in the pack, sought.
        if node
            .subtree
            .is_some_and(|t| self.blobs.contains(&t) || self.in_packs(&t))
        {
            return true;
        }
        node.content
            .iter()
            .flatten()
            .any(|b| self.blobs.contains(b) || self.in_packs(b))
    }

    /// Searches one folder; true when something matched in it.
    fn walk(
        &mut self,
        tree_id: BlobId,
        at: &Path,
        snap: &SnapshotEntry,
        on_match: &mut dyn FnMut(&SnapshotEntry, &Path, &Node) -> Result<()>,
    ) -> Result<bool> {
        if self.barren.contains(&(tree_id, at.to_path_buf())) {
            return Ok(false);
        }
        let tree: Tree = match self.repo.load_tree(self.index, &tree_id) {
            Ok(t) => t,
            // Damage costs what lies below this folder, not the rest of the search.
            Err(e) if e.is_corruption() => {
                self.stats
                    .unreadable
                    .push((snap.id, at.to_path_buf(), e.to_string()));
                return Ok(false);
            }
            Err(e) => return Err(e),
        };
        self.stats.trees_read += 1;
        let mut found = false;
        for node in &tree.nodes {
            let path = at.join(node.name.as_os());
            if self.matches(&path, node) {
                self.stats.matches += 1;
                found = true;
                on_match(snap, &path, node)?;
            }
            if node.kind == NodeKind::Dir {
                let sub = node.subtree.ok_or_else(|| {
                    Error::corrupt(Object::BlobId(tree_id), "folder without tree")
                })?;
                found |= self.walk(sub, &path, snap, on_match)?;
            }
        }
        if !found {
            self.barren.insert((tree_id, at.to_path_buf()));
        }
        Ok(found)
    }
}

/// Searches `snapshots` in the order given and calls `on_match(snapshot, path, node)` for each
/// matching entry, in tree order within a snapshot.
pub fn find(
    repo: &Repository,
    index: &Index,
    snapshots: &[SnapshotEntry],
    opts: &FindOptions,
    mut on_match: impl FnMut(&SnapshotEntry, &Path, &Node) -> Result<()>,
) -> Result<FindStats> {
    if opts.patterns.iter().all(|p| p.trim().is_empty())
        && opts.blobs.is_empty()
        && opts.packs.is_empty()
    {
        return Err(Error::InvalidOptions(
            "nothing to find: give a pattern, a blob or a pack".into(),
        ));
    }
    // On the command line a pattern is a pattern, never a comment.
    let patterns: Vec<String> = opts
        .patterns
        .iter()
        .map(|p| match p.strip_prefix('#') {
            Some(rest) => format!("\\#{rest}"),
            None => p.clone(),
        })
        .collect();
    let mut f = Finder {
        repo,
        index,
        names: PathMatcher::new(&patterns)?,
        blobs: opts.blobs.iter().copied().collect(),
        packs: opts.packs.iter().copied().collect(),
        barren: HashSet::new(),
        stats: FindStats::default(),
    };
    for snap in snapshots {
        f.stats.snapshots += 1;
        f.walk(snap.snapshot.tree, Path::new("/"), snap, &mut on_match)?;
    }
    Ok(f.stats)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{backup_dir, memory_repo, write_files};

    #[test]
    fn patterns_match_in_every_snapshot_and_an_empty_search_is_refused() {
        let repo = memory_repo();
        let src = tempfile::tempdir().unwrap();
        write_files(src.path(), &[("a/notes.txt", b"1"), ("a/b/c.pdf", b"2")]);
        backup_dir(&repo, src.path(), &[]);
        write_files(src.path(), &[("a/more.txt", b"3")]);
        backup_dir(&repo, src.path(), &[]);
        let index = repo.load_index().unwrap();
        let snaps = repo.snapshots().unwrap();
        let opts = FindOptions {
            patterns: vec!["*.txt".into()],
            ..Default::default()
        };
        let mut found = Vec::new();
        let stats = find(&repo, &index, &snaps, &opts, |s, p, n| {
            assert_eq!(n.kind, NodeKind::File);
            found.push((s.id, p.file_name().unwrap().to_string_lossy().into_owned()));
            Ok(())
        })
        .unwrap();
        let names = |id: SnapshotId| {
            let mut v: Vec<&str> = found
                .iter()
                .filter(|(s, _)| *s == id)
                .map(|(_, n)| n.as_str())
                .collect();
            v.sort();
            v
        };
        let (old, new) = if snaps[0].snapshot.time < snaps[1].snapshot.time {
            (snaps[0].id, snaps[1].id)
        } else {
            (snaps[1].id, snaps[0].id)
        };
        assert_eq!(names(old), vec!["notes.txt"]);
        assert_eq!(names(new), vec!["more.txt", "notes.txt"]);
        assert_eq!((stats.snapshots, stats.matches), (2, 3));
        assert!(stats.unreadable.is_empty());

        let err = find(&repo, &index, &snaps, &FindOptions::default(), |_, _, _| {
            Ok(())
        })
        .unwrap_err();
        assert!(matches!(err, Error::InvalidOptions(_)), "{err:?}");
    }
}
