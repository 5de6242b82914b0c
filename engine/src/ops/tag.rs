//! Tag: new snapshot files with changed tags, the trees untouched. Planned first (a pure
//! function of the snapshots and the change), then written: each new snapshot is saved before
//! the one it replaces is removed, so a snapshot is never missing.

use crate::error::{Error, Result};
use crate::format::snapshot::{Snapshot, SnapshotEntry};
use crate::id::SnapshotId;
use crate::repo::lock::LockHealth;
use crate::repo::repository::Repository;
use crate::storage::FileType;

/// How tags change: `set` replaces them all (an empty list removes them), then `add` and
/// `remove` apply.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TagChange {
    /// Tags to add.
    pub add: Vec<String>,
    /// Tags to remove.
    pub remove: Vec<String>,
    /// The tags to have instead of the present ones.
    pub set: Option<Vec<String>>,
}

/// The snapshots whose tags change, each with its replacement.
#[derive(Debug, Clone, Default)]
pub struct TagPlan {
    /// (snapshot as it is, snapshot as it will be).
    pub changes: Vec<(SnapshotEntry, Snapshot)>,
}

/// The tags of `current` after `change`, sorted and without duplicates.
fn new_tags(current: &[String], change: &TagChange) -> Vec<String> {
    let mut tags = change.set.clone().unwrap_or_else(|| current.to_vec());
    tags.extend(change.add.iter().cloned());
    tags.retain(|t| !change.remove.contains(t));
    tags.sort();
    tags.dedup();
    tags
}

/// Plans `change` on `snapshots`; snapshots whose tags stay the same are left out.
pub fn plan(snapshots: Vec<SnapshotEntry>, change: &TagChange) -> Result<TagPlan> {
    if change.add.is_empty() && change.remove.is_empty() && change.set.is_none() {
        return Err(Error::InvalidOptions(
            "nothing to change: give --add, --remove or --set".into(),
        ));
    }
    let mut plan = TagPlan::default();
    for entry in snapshots {
        let tags = new_tags(&entry.snapshot.tags, change);
        if tags == entry.snapshot.tags {
            continue;
        }
        let mut snapshot = entry.snapshot.clone();
        snapshot.tags = tags;
        snapshot.original = Some(entry.snapshot.original.unwrap_or(entry.id));
        plan.changes.push((entry, snapshot));
    }
    Ok(plan)
}

/// Writes the plan; returns the (old, new) ids.
pub fn execute(
    repo: &Repository,
    plan: TagPlan,
    lock: &LockHealth,
) -> Result<Vec<(SnapshotId, SnapshotId)>> {
    repo.ensure_writable()?;
    let mut done = Vec::new();
    for (old, snapshot) in plan.changes {
        lock.check()?;
        let id = repo.save_snapshot(&snapshot)?;
        repo.backend()
            .remove(FileType::Snapshot, old.id.as_bytes())?;
        done.push((old.id, id));
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{backup_dir, entry, memory_repo, write_files};

    fn tags(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn set_then_add_then_remove() {
        let change = TagChange {
            add: tags(&["b", "c"]),
            remove: tags(&["a"]),
            set: None,
        };
        assert_eq!(
            new_tags(&tags(&["a", "z"]), &change),
            tags(&["b", "c", "z"])
        );
        let set = TagChange {
            set: Some(vec![]),
            ..TagChange::default()
        };
        assert!(new_tags(&tags(&["a"]), &set).is_empty());
    }

    #[test]
    fn new_files_keep_the_tree_and_name_the_original() {
        let repo = memory_repo();
        let src = tempfile::tempdir().unwrap();
        write_files(src.path(), &[("f", b"x")]);
        let id = backup_dir(&repo, src.path(), &["old"]);
        let before = entry(&repo, id);
        let change = TagChange {
            add: tags(&["new"]),
            ..TagChange::default()
        };
        let plan = plan(vec![before.clone()], &change).unwrap();
        let done = execute(&repo, plan, &LockHealth::unlocked()).unwrap();
        let all = repo.snapshots().unwrap();
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].id, done[0].1);
        assert_eq!(all[0].snapshot.tree, before.snapshot.tree);
        assert_eq!(all[0].snapshot.tags, tags(&["new", "old"]));
        assert_eq!(all[0].snapshot.original, Some(id));
        // The same change again changes nothing.
        assert!(super::plan(all, &change).unwrap().changes.is_empty());
    }
}
