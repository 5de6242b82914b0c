//! Is every machine still backed up? (`floe health`): the age of the newest snapshot of each
//! group (host and paths) against a maximum, and the locks left by processes that died. It reads
//! snapshot and lock files only, never a pack, so a monitoring system can run it every few
//! minutes.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, FixedOffset};
use serde::Serialize;

use crate::error::Result;
use crate::format::snapshot::SnapshotEntry;
use crate::repo::lock::{list_locks, LockFile};
use crate::repo::repository::{host_and_user, Repository};

/// The newest snapshot of one group.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GroupHealth {
    /// Host of the group.
    pub host: String,
    /// Paths of the group.
    pub paths: Vec<String>,
    /// Id of its newest snapshot.
    pub newest_id: String,
    /// Time of its newest snapshot.
    pub newest: DateTime<FixedOffset>,
    /// Its age in seconds (0 for a snapshot dated in the future).
    pub age_seconds: u64,
    /// Snapshots in the group.
    pub snapshots: usize,
    /// True when the newest snapshot is older than the maximum.
    pub stale: bool,
    /// True when the newest snapshot is dated more than 5 minutes ahead of now (a wrong clock
    /// on the host that made it would keep the group looking fresh).
    pub in_future: bool,
}

/// What `health` found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HealthReport {
    /// The maximum age, in seconds.
    pub max_age_seconds: u64,
    /// One entry per group, stale ones first, then by host and paths.
    pub groups: Vec<GroupHealth>,
    /// Locks whose holder is gone or that were not refreshed in time, described.
    pub stale_locks: Vec<String>,
    /// Lock files that cannot be read.
    pub damaged_locks: usize,
}

impl HealthReport {
    /// True when there is at least one group and none is stale.
    pub fn ok(&self) -> bool {
        !self.groups.is_empty() && self.groups.iter().all(|g| !g.stale)
    }
}

/// Assesses `snapshots` (those the caller's filters select) and the repository's `locks` at
/// `now`, on `host` (whose dead processes' locks are recognised as stale).
pub fn assess(
    snapshots: &[SnapshotEntry],
    locks: &[Option<LockFile>],
    max_age: Duration,
    now: DateTime<FixedOffset>,
    host: &str,
) -> HealthReport {
    let mut newest: BTreeMap<(String, Vec<String>), (&SnapshotEntry, usize)> = BTreeMap::new();
    for s in snapshots {
        let paths = s
            .snapshot
            .paths
            .iter()
            .map(|p| p.lossy().into_owned())
            .collect();
        let e = newest
            .entry((s.snapshot.hostname.clone(), paths))
            .or_insert((s, 0));
        e.1 += 1;
        if s.snapshot.time > e.0.snapshot.time {
            e.0 = s;
        }
    }
    let mut groups: Vec<GroupHealth> = newest
        .into_iter()
        .map(|((host, paths), (s, n))| {
            let age = now
                .signed_duration_since(s.snapshot.time)
                .to_std()
                .unwrap_or_default();
            GroupHealth {
                host,
                paths,
                newest_id: s.id.to_hex(),
                newest: s.snapshot.time,
                age_seconds: age.as_secs(),
                snapshots: n,
                stale: age > max_age,
                in_future: s.snapshot.time > now + chrono::Duration::minutes(5),
            }
        })
        .collect();
    groups.sort_by_key(|g| !g.stale);
    HealthReport {
        max_age_seconds: max_age.as_secs(),
        groups,
        stale_locks: locks
            .iter()
            .flatten()
            .filter(|l| l.is_stale(now, host))
            .map(LockFile::describe)
            .collect(),
        damaged_locks: locks.iter().filter(|l| l.is_none()).count(),
    }
}

/// [`assess`] on `snapshots` of `repo`, with its lock files, on this host.
pub fn health(
    repo: &Repository,
    snapshots: &[SnapshotEntry],
    max_age: Duration,
    now: DateTime<FixedOffset>,
) -> Result<HealthReport> {
    let locks: Vec<Option<LockFile>> = list_locks(repo)?.into_iter().map(|(_, l)| l.ok()).collect();
    let (host, ..) = host_and_user();
    Ok(assess(snapshots, &locks, max_age, now, &host))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::snapshot::Snapshot;
    use crate::format::tree::ByteString;
    use crate::id::{BlobId, SnapshotId};

    fn at(hours: i64) -> DateTime<FixedOffset> {
        DateTime::parse_from_rfc3339("2026-12-01T00:00:00+00:00").unwrap()
            + chrono::Duration::hours(hours)
    }

    fn snap(n: u8, host: &str, path: &str, hours: i64) -> SnapshotEntry {
        SnapshotEntry {
            id: SnapshotId::from_bytes([n; 32]),
            snapshot: Snapshot {
                time: at(hours),
                hostname: host.into(),
                username: "u".into(),
                uid: 0,
                gid: 0,
                paths: vec![ByteString(path.as_bytes().to_vec())],
                tags: vec![],
                tree: BlobId::from_bytes([0; 32]),
                parent: None,
                original: None,
                copied_tree: None,
                excludes: vec![],
                program_version: "floe".into(),
                summary: None,
            },
        }
    }

    #[test]
    fn each_group_is_judged_by_its_newest_snapshot() {
        let snaps = [
            snap(1, "laptop", "/home", 0),
            snap(2, "laptop", "/home", 40),
            snap(3, "nas", "/srv", 10),
            snap(4, "laptop", "/etc", 47),
        ];
        let r = assess(&snaps, &[], Duration::from_secs(26 * 3600), at(48), "here");
        let seen: Vec<_> = r
            .groups
            .iter()
            .map(|g| {
                (
                    g.host.as_str(),
                    g.paths[0].as_str(),
                    g.age_seconds / 3600,
                    g.stale,
                )
            })
            .collect();
        assert_eq!(
            seen,
            [
                ("nas", "/srv", 38, true),
                ("laptop", "/etc", 1, false),
                ("laptop", "/home", 8, false),
            ]
        );
        assert!(!r.ok());
        assert_eq!(r.groups[2].snapshots, 2);
        assert!(
            !assess(&[], &[], Duration::from_secs(1), at(0), "h").ok(),
            "nothing backed up"
        );
    }
}
