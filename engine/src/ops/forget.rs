//! Forgetting snapshots: which to remove, then removing their files.
//!
//! A plan comes first, from ids ([`plan_by_ids`]) or from a retention policy
//! ([`plan_by_policy`], a pure function of the snapshots, the policy and `now`); [`execute`]
//! removes the snapshot files the plan names and nothing else. The data they alone referenced
//! stays until `prune`.

pub mod retention;

use chrono::{DateTime, FixedOffset};

use crate::error::{Error, Result};
use crate::format::snapshot::SnapshotEntry;
use crate::id::SnapshotId;
use crate::repo::lock::LockHealth;
use crate::repo::repository::{Picked, Repository};
use crate::storage::FileType;
use retention::{apply_policy, group_snapshots, Decision, GroupBy, GroupKey, KeepPolicy};

/// One group of snapshots and what the policy decided for each.
#[derive(Debug, Clone)]
pub struct ForgetGroup {
    /// What the group's snapshots share.
    pub key: GroupKey,
    /// The group's snapshots.
    pub snapshots: Vec<SnapshotEntry>,
    /// One decision per snapshot, newest first.
    pub decisions: Vec<Decision>,
}

impl ForgetGroup {
    /// The snapshot a decision is about.
    pub fn snapshot(&self, id: &SnapshotId) -> Option<&SnapshotEntry> {
        self.snapshots.iter().find(|s| s.id == *id)
    }
}

/// A snapshot named for removal, with its metadata when it was decoded.
#[derive(Debug, Clone)]
pub struct Named {
    /// Its id.
    pub id: SnapshotId,
    /// When it was taken; `None` for a whole id removed without decoding its file.
    pub time: Option<DateTime<FixedOffset>>,
}

/// What a forget would remove.
#[derive(Debug, Clone, Default)]
pub struct ForgetPlan {
    /// The groups a policy was applied to (empty when snapshots were named by id).
    pub groups: Vec<ForgetGroup>,
    /// The snapshots named by id, in the order given (empty under a policy).
    pub named: Vec<Named>,
    /// Every snapshot to remove, once each.
    pub remove: Vec<SnapshotId>,
}

/// Plans the removal of the snapshots `specs` name (whole ids or unique prefixes, or `latest`).
/// A whole id that storage lists is taken without decoding the file, so that a damaged snapshot
/// can be forgotten.
pub fn plan_by_ids(repo: &Repository, specs: &[String]) -> Result<ForgetPlan> {
    let listed: Vec<SnapshotId> = repo
        .backend()
        .list(FileType::Snapshot)?
        .into_iter()
        .map(|e| SnapshotId::from_bytes(e.id))
        .collect();
    let mut plan = ForgetPlan::default();
    for spec in specs {
        let whole = spec
            .parse::<SnapshotId>()
            .ok()
            .filter(|id| listed.contains(id));
        let named = match whole {
            Some(id) => Named { id, time: None },
            None => by_prefix(repo, spec)?,
        };
        if !plan.remove.contains(&named.id) {
            plan.remove.push(named.id);
            plan.named.push(named);
        }
    }
    Ok(plan)
}

/// The snapshot a prefix (or `latest`) names, readable or damaged (a damaged one without its
/// time).
fn by_prefix(repo: &Repository, spec: &str) -> Result<Named> {
    Ok(match repo.snapshots_readable()?.pick(spec)? {
        Picked::Readable(s) => Named {
            id: s.id,
            time: Some(s.snapshot.time),
        },
        Picked::Damaged(id, _) => Named { id, time: None },
    })
}

/// Plans a policy: groups `snapshots` by `group_by` and applies `policy` to each group at `now`.
/// Every group is decided before anything is removed; a group the policy would empty is refused
/// ([`Error::WouldRemoveAll`]) unless `allow_remove_all`.
pub fn plan_by_policy(
    snapshots: Vec<SnapshotEntry>,
    policy: &KeepPolicy,
    group_by: GroupBy,
    now: DateTime<FixedOffset>,
    allow_remove_all: bool,
) -> Result<ForgetPlan> {
    let mut plan = ForgetPlan::default();
    for (key, group) in group_snapshots(snapshots, group_by) {
        let decisions = apply_policy(&group, policy, now);
        if !decisions.is_empty() && decisions.iter().all(|d| !d.keep) && !allow_remove_all {
            return Err(Error::WouldRemoveAll {
                group: key.to_string(),
            });
        }
        plan.remove
            .extend(decisions.iter().filter(|d| !d.keep).map(|d| d.id));
        plan.groups.push(ForgetGroup {
            key,
            snapshots: group,
            decisions,
        });
    }
    Ok(plan)
}

/// Removes the snapshot files of `plan`, once the lock is known to be still held. Returns how many
/// were removed.
pub fn execute(repo: &Repository, plan: &ForgetPlan, lock: &LockHealth) -> Result<usize> {
    repo.ensure_writable()?;
    lock.check()?;
    for id in &plan.remove {
        repo.backend().remove(FileType::Snapshot, id.as_bytes())?;
    }
    Ok(plan.remove.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{backup_dir, memory_repo, write_files};

    fn keep_last(n: u32) -> KeepPolicy {
        KeepPolicy {
            last: n,
            ..KeepPolicy::default()
        }
    }

    fn listed(repo: &Repository) -> Vec<SnapshotId> {
        let mut ids: Vec<SnapshotId> = repo
            .backend()
            .list(FileType::Snapshot)
            .unwrap()
            .into_iter()
            .map(|e| SnapshotId::from_bytes(e.id))
            .collect();
        ids.sort();
        ids
    }

    #[test]
    fn a_policy_removes_what_it_does_not_keep_and_nothing_else() {
        let repo = memory_repo();
        let src = tempfile::tempdir().unwrap();
        let mut ids = Vec::new();
        for round in 0..3u8 {
            write_files(src.path(), &[("f", &[round; 100])]);
            ids.push(backup_dir(&repo, src.path(), &[]));
        }
        let now = chrono::Local::now().fixed_offset() + chrono::Duration::hours(1);
        let plan = plan_by_policy(
            repo.snapshots().unwrap(),
            &keep_last(1),
            GroupBy::default(),
            now,
            false,
        )
        .unwrap();
        assert_eq!(plan.groups.len(), 1);
        let mut planned = plan.remove.clone();
        planned.sort();
        let mut older = ids[..2].to_vec();
        older.sort();
        assert_eq!(planned, older, "the two older snapshots go");
        assert_eq!(execute(&repo, &plan, &LockHealth::unlocked()).unwrap(), 2);
        assert_eq!(listed(&repo), vec![ids[2]], "the newest stays");
    }

    #[test]
    fn a_policy_that_would_empty_a_group_is_refused_unless_allowed() {
        let repo = memory_repo();
        let src = tempfile::tempdir().unwrap();
        write_files(src.path(), &[("f", b"x")]);
        let id = backup_dir(&repo, src.path(), &[]);
        let only_tagged = KeepPolicy {
            tags: vec!["never-set".into()],
            ..KeepPolicy::default()
        };
        let now = chrono::Local::now().fixed_offset();
        let snaps = repo.snapshots().unwrap();
        let err = plan_by_policy(snaps.clone(), &only_tagged, GroupBy::default(), now, false)
            .unwrap_err();
        assert!(matches!(err, Error::WouldRemoveAll { .. }), "{err:?}");
        assert!(
            err.to_string().contains("--unsafe-allow-remove-all"),
            "{err}"
        );
        assert_eq!(listed(&repo), vec![id], "a refusal removes nothing");
        let plan = plan_by_policy(snaps, &only_tagged, GroupBy::default(), now, true).unwrap();
        assert_eq!(plan.remove, vec![id]);
    }

    #[test]
    fn a_damaged_snapshot_named_by_its_whole_id_can_be_forgotten() {
        let repo = memory_repo();
        let src = tempfile::tempdir().unwrap();
        write_files(src.path(), &[("f", b"kept")]);
        let good = backup_dir(&repo, src.path(), &[]);
        // A snapshot file that does not decode, stored under the hash of its bytes.
        let junk = b"not a sealed snapshot";
        let bad = SnapshotId::hash_of(junk);
        repo.backend()
            .write(FileType::Snapshot, bad.as_bytes(), junk)
            .unwrap();
        let plan = plan_by_ids(&repo, &[bad.to_hex()]).unwrap();
        assert_eq!(plan.named.len(), 1);
        assert!(plan.named[0].time.is_none(), "taken without decoding");
        execute(&repo, &plan, &LockHealth::unlocked()).unwrap();
        assert_eq!(listed(&repo), vec![good]);
        // A prefix is resolved by decoding, and a repeated name counts once.
        let short = good.short();
        let plan = plan_by_ids(&repo, &[short.clone(), good.to_hex()]).unwrap();
        assert_eq!(plan.remove, vec![good]);
        assert!(plan.named[0].time.is_some());
        assert!(plan_by_ids(&repo, &["ffffffff".to_string()]).is_err());
    }
}
