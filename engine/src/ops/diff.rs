//! Diff: what changed between two snapshots (or two folders of snapshots). Reads trees only,
//! never a data pack; folders whose tree is the same in both are skipped without being read, so
//! the cost follows what changed, not the size of the snapshots.

use std::path::Path;

use crate::error::Result;
use crate::format::tree::{Node, NodeKind, Tree};
use crate::repo::index::Index;
use crate::repo::repository::Repository;

/// How an entry differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    /// Only in the second.
    Added,
    /// Only in the first.
    Removed,
    /// Content (or link target, or device number) differs.
    Modified,
    /// A different kind of entry under the same name (a file became a folder...).
    TypeChanged,
    /// Same content; mode, owner or modification time differ.
    Metadata,
    /// Content differs although size and modification time are the same: the file changed
    /// without its time changing, which is what silent corruption of the source looks like.
    SuspectContent,
}

impl ChangeKind {
    /// One-letter code for listings: `+ - M T U ?`.
    pub fn code(self) -> char {
        match self {
            ChangeKind::Added => '+',
            ChangeKind::Removed => '-',
            ChangeKind::Modified => 'M',
            ChangeKind::TypeChanged => 'T',
            ChangeKind::Metadata => 'U',
            ChangeKind::SuspectContent => '?',
        }
    }
}

/// Counts of a diff.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct DiffStats {
    /// Entries only in the second snapshot.
    pub added: u64,
    /// Entries only in the first.
    pub removed: u64,
    /// Entries with different content (including suspect ones).
    pub modified: u64,
    /// Entries whose kind changed.
    pub type_changed: u64,
    /// Entries with only metadata changes.
    pub metadata: u64,
    /// Files whose content changed with the same size and modification time.
    pub suspect: u64,
    /// Bytes of files only in the second, and the growth of modified files.
    pub bytes_added: u64,
    /// Bytes of files only in the first, and the shrinking of modified files.
    pub bytes_removed: u64,
    /// Folders read; folders with the same tree on both sides are not.
    pub trees_read: u64,
}

/// Receives each change: kind, path, the entry before, the entry after.
type OnChange<'f> = dyn FnMut(ChangeKind, &Path, Option<&Node>, Option<&Node>) -> Result<()> + 'f;

struct Differ<'a, 'f> {
    repo: &'a Repository,
    index: &'a Index,
    stats: DiffStats,
    on_change: &'f mut OnChange<'f>,
}

fn same_content(a: &Node, b: &Node) -> bool {
    a.content == b.content && a.link_target == b.link_target && a.rdev == b.rdev
}

/// What differs between two entries' metadata, by name: `mode`, `owner`, `mtime`, `xattrs`.
/// Empty when they are the same.
pub fn metadata_changes(a: &Node, b: &Node) -> Vec<&'static str> {
    let mut out = Vec::new();
    if a.mode != b.mode {
        out.push("mode");
    }
    if (a.uid, a.gid) != (b.uid, b.gid) {
        out.push("owner");
    }
    if a.mtime != b.mtime {
        out.push("mtime");
    }
    if a.xattrs != b.xattrs {
        out.push("xattrs");
    }
    out
}

fn same_metadata(a: &Node, b: &Node) -> bool {
    metadata_changes(a, b).is_empty()
}

impl Differ<'_, '_> {
    /// A folder's entries (a folder recorded without a tree is empty, as restore treats it;
    /// `check` reports it).
    fn tree(&mut self, node: &Node) -> Result<Tree> {
        match node.subtree {
            Some(id) => {
                self.stats.trees_read += 1;
                self.repo.load_tree(self.index, &id)
            }
            None => Ok(Tree::default()),
        }
    }

    fn emit(
        &mut self,
        kind: ChangeKind,
        path: &Path,
        old: Option<&Node>,
        new: Option<&Node>,
    ) -> Result<()> {
        let s = &mut self.stats;
        let size = |n: Option<&Node>| n.filter(|n| n.kind == NodeKind::File).map_or(0, |n| n.size);
        match kind {
            ChangeKind::Added => s.added += 1,
            ChangeKind::Removed => s.removed += 1,
            ChangeKind::Modified => s.modified += 1,
            ChangeKind::SuspectContent => {
                s.modified += 1;
                s.suspect += 1;
            }
            ChangeKind::TypeChanged => s.type_changed += 1,
            ChangeKind::Metadata => s.metadata += 1,
        }
        let (before, after) = (size(old), size(new));
        s.bytes_added += after.saturating_sub(before);
        s.bytes_removed += before.saturating_sub(after);
        (self.on_change)(kind, path, old, new)
    }

    /// Reports `node` and, for a folder, everything inside it as added or removed.
    fn whole(&mut self, kind: ChangeKind, node: &Node, path: &Path) -> Result<()> {
        let (old, new) = match kind {
            ChangeKind::Added => (None, Some(node)),
            _ => (Some(node), None),
        };
        self.emit(kind, path, old, new)?;
        if node.kind == NodeKind::Dir {
            let t = self.tree(node)?;
            for n in &t.nodes {
                self.whole(kind, n, &path.join(n.name.as_os()))?;
            }
        }
        Ok(())
    }

    fn pair(&mut self, a: &Node, b: &Node, path: &Path) -> Result<()> {
        if a.kind != b.kind {
            self.emit(ChangeKind::TypeChanged, path, Some(a), Some(b))?;
            // What was inside a folder that is gone, or is new inside one that appeared.
            for (n, kind) in [(a, ChangeKind::Removed), (b, ChangeKind::Added)] {
                if n.kind == NodeKind::Dir {
                    let t = self.tree(n)?;
                    for c in &t.nodes {
                        self.whole(kind, c, &path.join(c.name.as_os()))?;
                    }
                }
            }
            return Ok(());
        }
        if a.kind == NodeKind::Dir {
            if !same_metadata(a, b) {
                self.emit(ChangeKind::Metadata, path, Some(a), Some(b))?;
            }
            if a.subtree != b.subtree {
                let (ta, tb) = (self.tree(a)?, self.tree(b)?);
                self.trees(&ta, &tb, path)?;
            }
            return Ok(());
        }
        if !same_content(a, b) {
            let suspect = a.kind == NodeKind::File && a.size == b.size && a.mtime == b.mtime;
            let kind = if suspect {
                ChangeKind::SuspectContent
            } else {
                ChangeKind::Modified
            };
            self.emit(kind, path, Some(a), Some(b))
        } else if !same_metadata(a, b) {
            self.emit(ChangeKind::Metadata, path, Some(a), Some(b))
        } else {
            Ok(())
        }
    }

    /// Merges two sorted folders.
    fn trees(&mut self, a: &Tree, b: &Tree, at: &Path) -> Result<()> {
        let (mut i, mut j) = (0, 0);
        while i < a.nodes.len() || j < b.nodes.len() {
            let order = match (a.nodes.get(i), b.nodes.get(j)) {
                (Some(x), Some(y)) => x.name.cmp(&y.name),
                (Some(_), None) => std::cmp::Ordering::Less,
                _ => std::cmp::Ordering::Greater,
            };
            match order {
                std::cmp::Ordering::Less => {
                    let n = &a.nodes[i];
                    self.whole(ChangeKind::Removed, n, &at.join(n.name.as_os()))?;
                    i += 1;
                }
                std::cmp::Ordering::Greater => {
                    let n = &b.nodes[j];
                    self.whole(ChangeKind::Added, n, &at.join(n.name.as_os()))?;
                    j += 1;
                }
                std::cmp::Ordering::Equal => {
                    let (x, y) = (&a.nodes[i], &b.nodes[j]);
                    self.pair(x, y, &at.join(x.name.as_os()))?;
                    i += 1;
                    j += 1;
                }
            }
        }
        Ok(())
    }
}

/// Compares two folders (`a` and `b`, read with `index`) and calls `on_change(kind, path, old,
/// new)` for each difference, in path order, paths under `at`.
pub fn diff_trees(
    repo: &Repository,
    index: &Index,
    a: &Tree,
    b: &Tree,
    at: &Path,
    mut on_change: impl FnMut(ChangeKind, &Path, Option<&Node>, Option<&Node>) -> Result<()>,
) -> Result<DiffStats> {
    let mut d = Differ {
        repo,
        index,
        stats: DiffStats::default(),
        on_change: &mut on_change,
    };
    d.trees(a, b, at)?;
    Ok(d.stats)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{backup_dir, entry, memory_repo, write_files};

    #[test]
    fn changes_between_two_snapshots_are_named_and_counted() {
        let repo = memory_repo();
        let src = tempfile::tempdir().unwrap();
        write_files(
            src.path(),
            &[("gone", b"a"), ("same/deep", b"b"), ("grows", b"c")],
        );
        let first = backup_dir(&repo, src.path(), &[]);
        std::fs::remove_file(src.path().join("gone")).unwrap();
        write_files(src.path(), &[("new", b"dd"), ("grows", b"cccc")]);
        let second = backup_dir(&repo, src.path(), &[]);
        let index = repo.load_index().unwrap();
        let tree = |id| {
            repo.load_tree(&index, &entry(&repo, id).snapshot.tree)
                .unwrap()
        };
        let mut seen = Vec::new();
        let stats = diff_trees(
            &repo,
            &index,
            &tree(first),
            &tree(second),
            Path::new("/"),
            |k, p, _, _| {
                seen.push((k, p.file_name().unwrap().to_string_lossy().into_owned()));
                Ok(())
            },
        )
        .unwrap();
        seen.sort_by(|a, b| a.1.cmp(&b.1));
        let named = |name: &str| seen.iter().find(|(_, n)| n == name).map(|(k, _)| *k);
        assert_eq!(named("gone"), Some(ChangeKind::Removed), "{seen:?}");
        assert_eq!(named("new"), Some(ChangeKind::Added), "{seen:?}");
        assert_eq!(named("grows"), Some(ChangeKind::Modified), "{seen:?}");
        assert_eq!(
            named("deep"),
            None,
            "an unchanged folder is not reported: {seen:?}"
        );
        assert_eq!((stats.added, stats.removed, stats.modified), (1, 1, 1));
    }
}
