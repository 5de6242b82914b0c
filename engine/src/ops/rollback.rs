//! Bringing a repository in a versioned bucket back to how it was at an earlier time, after
//! someone with the backup's credentials deleted or overwrote its objects (`floe rollback`).
//!
//! floe never overwrites an object (the config is replaced only by a format upgrade), so a key
//! with a version written after the chosen time is damage, and so is a delete marker that prune
//! did not leave. For each key the plan compares the version current at that time with the
//! current one:
//! - only delete markers since: they are removed, and the old version shows again;
//! - new versions since: the old version is copied over them, as a new current version;
//! - no version then, one now: the key is hidden behind a delete marker.
//!
//! Nothing is destroyed but delete markers; lock files are left alone.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::error::Result;
use crate::storage::s3::{current_at, ObjectVersion, S3Backend};

/// What a rollback changes, key by key (keys relative to the repository's prefix).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RollbackPlan {
    /// Keys whose delete markers since the time are removed: (key, marker version ids).
    pub undelete: Vec<(String, Vec<String>)>,
    /// Keys overwritten since: (key, the version current at the time, copied back).
    pub revert: Vec<(String, String)>,
    /// Keys written since, hidden again.
    pub hide: Vec<String>,
}

impl RollbackPlan {
    /// True when the repository is as it was.
    pub fn is_empty(&self) -> bool {
        self.undelete.is_empty() && self.revert.is_empty() && self.hide.is_empty()
    }
}

/// The changes that bring `versions` back to how they were at `to`.
pub fn plan(versions: &[ObjectVersion], to: DateTime<Utc>) -> RollbackPlan {
    let mut by_key: BTreeMap<&str, Vec<&ObjectVersion>> = BTreeMap::new();
    for v in versions.iter().filter(|v| !v.key.starts_with("locks/")) {
        by_key.entry(v.key.as_str()).or_default().push(v);
    }
    let then = current_at(versions, to);
    let mut out = RollbackPlan::default();
    for (key, all) in by_key {
        let since: Vec<&&ObjectVersion> = all.iter().filter(|v| v.modified > to).collect();
        if since.is_empty() {
            continue;
        }
        let overwritten = since.iter().any(|v| !v.delete_marker);
        match then.get(key) {
            Some(old) if overwritten => out.revert.push((key.to_string(), old.version_id.clone())),
            Some(_) => out.undelete.push((
                key.to_string(),
                since.iter().map(|v| v.version_id.clone()).collect(),
            )),
            None => {
                let now = all.iter().max_by_key(|v| (v.modified, v.latest));
                if now.is_some_and(|v| !v.delete_marker) {
                    out.hide.push(key.to_string());
                }
            }
        }
    }
    out
}

/// Carries out `plan` on `s3`. Returns how many keys were changed.
///
/// Reverts come first: a copy of an archived version fails (it must be thawed first), and
/// should fail before anything else changed. A rollback stopped half way is finished by running
/// it again.
pub fn execute(s3: &S3Backend, plan: &RollbackPlan) -> Result<usize> {
    for (key, version) in &plan.revert {
        s3.restore_version(key, version)?;
    }
    for (key, markers) in &plan.undelete {
        for m in markers {
            s3.delete_version(key, m)?;
        }
    }
    for key in &plan.hide {
        s3.hide(key)?;
    }
    Ok(plan.undelete.len() + plan.revert.len() + plan.hide.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::storage::s3::test_version as v;

    #[test]
    fn deleted_keys_come_back_overwritten_ones_are_reverted_and_new_ones_hidden() {
        let versions = [
            // Deleted twice after the time: both markers go.
            v("snapshots/a", 10, false),
            v("snapshots/a", 30, true),
            v("snapshots/a", 40, true),
            // Overwritten, then deleted: the old version is copied back.
            v("config", 5, false),
            v("config", 31, false),
            v("config", 32, true),
            // Written after the time: hidden.
            v("snapshots/new", 35, false),
            // Written and deleted after the time: nothing to do.
            v("snapshots/gone", 33, false),
            v("snapshots/gone", 34, true),
            // Untouched since.
            v("keys/k", 1, false),
            // Deleted before the time (prune): stays deleted.
            v("data/00/p", 2, false),
            v("data/00/p", 3, true),
            // Locks are left alone.
            v("locks/l", 36, false),
        ];
        let p = plan(&versions, DateTime::from_timestamp(20, 0).unwrap());
        assert_eq!(
            p.undelete,
            vec![(
                "snapshots/a".to_string(),
                vec!["snapshots/a@30".to_string(), "snapshots/a@40".to_string()]
            )]
        );
        assert_eq!(
            p.revert,
            vec![("config".to_string(), "config@5".to_string())]
        );
        assert_eq!(p.hide, vec!["snapshots/new".to_string()]);
        assert!(plan(&versions, DateTime::from_timestamp(50, 0).unwrap()).is_empty());
    }
}
