//! Keeping the objects of an S3 Object Lock repository locked for as long as snapshots need
//! them (format-spec/format.md, "Object Lock").
//!
//! Every object floe writes, except lock files, is locked for the config's `days` from its
//! write. A pack written a year ago and still needed by today's snapshot would have lost its
//! lock long since, so after backups and prunes the retention of every object a snapshot needs
//! (its snapshot file, the packs holding its blobs, the index files naming those packs, the key
//! files and the config) whose date falls within `days / 2` is moved to `now + days`. Objects
//! only forgotten snapshots needed are left to expire.
//!
//! Retention dates are read with one request per object, so only objects whose write date
//! (from the listing) does not already guarantee the margin are asked about, and when none is,
//! no tree is walked. Past the first `days / 2` days of an object's life, every pass asks about
//! it again (its write date no longer tells): on a large repository a pass costs one HEAD per
//! such object, and a walk of the trees.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use rayon::prelude::*;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::format::tree::NodeKind;
use crate::id::{BlobId, PackId, RawId};
use crate::repo::index::Index;
use crate::repo::lock::LockHealth;
use crate::repo::repository::Repository;
use crate::storage::lifecycle::Rule;
use crate::storage::{FileType, Retention, CONFIG_ID};

/// What an extension pass did, or what `object-lock status` found.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RetentionReport {
    /// Objects the snapshots need.
    pub needed: usize,
    /// Of those, whose retention date was read (the others were written recently enough).
    pub checked: usize,
    /// Of those, whose date was moved.
    pub extended: usize,
    /// The date they were moved to.
    pub extended_until: Option<DateTime<Utc>>,
    /// The earliest retention date among the needed objects checked, after the pass; `None`
    /// when none was checked.
    pub earliest: Option<DateTime<Utc>>,
    /// Needed objects with no retention at all (written before the repository had Object
    /// Lock, or by another program): nothing protects them.
    pub unprotected: usize,
}

/// One stored object with the write date its listing gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stored {
    file_type: FileType,
    id: RawId,
    modified: Option<DateTime<Utc>>,
}

/// True when `o`'s retention may end before `margin_end`: its write date does not prove
/// otherwise (written at least `days` before its retention date).
fn may_need_extension(o: &Stored, r: Retention, margin_end: DateTime<Utc>) -> bool {
    match o.modified {
        Some(m) => m + chrono::Days::new(r.days.into()) < margin_end,
        None => true,
    }
}

/// The end of the margin (`now + days / 2`) and the new date (`now + days`).
fn window(r: Retention, now: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
    let half = chrono::Duration::hours(i64::from(r.days) * 12);
    (now + half, now + chrono::Days::new(r.days.into()))
}

/// Every stored object of the kinds snapshots need.
fn stored(repo: &Repository) -> Result<Vec<Stored>> {
    let mut out = Vec::new();
    for t in [
        FileType::Config,
        FileType::Key,
        FileType::Snapshot,
        FileType::Index,
        FileType::TreePack,
        FileType::DataPack,
    ] {
        for e in repo.backend().list(t)? {
            out.push(Stored {
                file_type: t,
                id: e.id,
                modified: e.modified.map(DateTime::<Utc>::from),
            });
        }
    }
    Ok(out)
}

/// Every blob reachable from `roots`. A storage failure stops the walk (a pass that skipped a
/// folder would leave its packs to expire); a damaged or missing tree is passed over, since
/// there is nothing below it to keep, and `check` reports it.
fn reachable(repo: &Repository, index: &Index, roots: &[BlobId]) -> Result<HashSet<BlobId>> {
    let mut seen = HashSet::new();
    let mut stack: Vec<BlobId> = roots.to_vec();
    while let Some(id) = stack.pop() {
        if !seen.insert(id) {
            continue;
        }
        let tree = match repo.load_tree(index, &id) {
            Ok(t) => t,
            Err(Error::Corrupt { .. } | Error::MissingBlob(_)) => continue,
            Err(e) => return Err(e),
        };
        for node in &tree.nodes {
            seen.extend(node.content.iter().flatten().copied());
            stack.extend(node.subtree.filter(|_| node.kind == NodeKind::Dir));
        }
    }
    Ok(seen)
}

/// The objects the snapshots need: every snapshot file, key file and the config, the packs
/// holding blobs reachable from the snapshots, and the index files naming those packs.
fn needed(repo: &Repository, index: &Index) -> Result<HashSet<(FileType, RawId)>> {
    let snaps = repo.snapshots()?;
    let roots: Vec<_> = snaps.iter().map(|s| s.snapshot.tree).collect();
    let packs: HashSet<PackId> = reachable(repo, index, &roots)?
        .iter()
        .filter_map(|b| index.get(b).map(|l| l.pack))
        .collect();
    let mut out: HashSet<(FileType, RawId)> = HashSet::new();
    out.insert((FileType::Config, CONFIG_ID));
    for k in repo.backend().list(FileType::Key)? {
        out.insert((FileType::Key, k.id));
    }
    out.extend(snaps.iter().map(|s| (FileType::Snapshot, *s.id.as_bytes())));
    for (id, file) in repo.load_index_files()? {
        let mut names_needed = false;
        for p in file.packs.iter().filter(|p| packs.contains(&p.id)) {
            out.insert((p.blob_type.pack_file_type(), *p.id.as_bytes()));
            names_needed = true;
        }
        if names_needed {
            out.insert((FileType::Index, *id.as_bytes()));
        }
    }
    Ok(out)
}

/// Moves to `now + days` the retention of every object the snapshots need whose date falls
/// before `now + days / 2`. Does nothing on a repository without Object Lock.
pub fn extend(
    repo: &Repository,
    index: &Index,
    now: DateTime<Utc>,
    lock: &LockHealth,
) -> Result<RetentionReport> {
    let Some(r) = repo.config().object_lock else {
        return Ok(RetentionReport::default());
    };
    repo.ensure_writable()?;
    let (margin_end, until) = window(r, now);
    let all = stored(repo)?;
    if !all.iter().any(|o| may_need_extension(o, r, margin_end)) {
        return Ok(RetentionReport::default());
    }
    let needed = needed(repo, index)?;
    let candidates: Vec<Stored> = all
        .into_iter()
        .filter(|o| needed.contains(&(o.file_type, o.id)))
        .filter(|o| may_need_extension(o, r, margin_end))
        .collect();
    lock.check()?;
    let dates: Vec<Result<(bool, DateTime<Utc>)>> = repo.in_io_pool(|| {
        candidates
            .par_iter()
            .map(|o| {
                let b = repo.backend();
                match b.retention(o.file_type, &o.id)? {
                    Some(d) if d >= margin_end => Ok((false, d)),
                    _ => {
                        b.extend_retention(o.file_type, &o.id, until)?;
                        Ok((true, until))
                    }
                }
            })
            .collect()
    });
    let mut report = RetentionReport {
        needed: needed.len(),
        checked: candidates.len(),
        ..Default::default()
    };
    for d in dates {
        let (moved, date) = d?;
        report.extended += usize::from(moved);
        report.earliest = Some(report.earliest.map_or(date, |e| e.min(date)));
    }
    report.extended_until = (report.extended > 0).then_some(until);
    Ok(report)
}

/// The retention dates of every object the snapshots need, read one by one: how far ahead the
/// repository is protected (`object-lock status`).
pub fn status(repo: &Repository, index: &Index) -> Result<RetentionReport> {
    let needed: Vec<(FileType, RawId)> = needed(repo, index)?.into_iter().collect();
    let dates: Vec<Result<Option<DateTime<Utc>>>> = repo.in_io_pool(|| {
        needed
            .par_iter()
            .map(|(t, id)| Ok(repo.backend().retention(*t, id)?))
            .collect()
    });
    let mut report = RetentionReport {
        needed: needed.len(),
        checked: needed.len(),
        ..Default::default()
    };
    for d in dates {
        match d? {
            Some(d) => report.earliest = Some(report.earliest.map_or(d, |e| e.min(d))),
            None => report.unprotected += 1,
        }
    }
    Ok(report)
}

/// Days after a version stops being current that the versions rule deletes it: its retention
/// ends at most the config's `days` after that (it was no longer extended once unneeded), and
/// this margin more.
pub const VERSIONS_MARGIN_DAYS: u32 = 7;

/// The lifecycle rule of a locked repository at `prefix` (without trailing `/`): versions that
/// prune or forget replaced by a delete marker go `days + 7` days later, when their retention has
/// ended, and markers with nothing left under them go too, so that space is freed in the end.
pub fn versions_rule(prefix: &str, r: Retention) -> Rule {
    Rule {
        id: format!("floe-versions:{prefix}"),
        enabled: true,
        prefix: if prefix.is_empty() {
            String::new()
        } else {
            format!("{prefix}/")
        },
        other_conditions: false,
        transitions: Vec::new(),
        expiration_days: None,
        abort_incomplete_multipart_days: None,
        noncurrent_expiration_days: Some(r.days.saturating_add(VERSIONS_MARGIN_DAYS)),
        expired_delete_markers: true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::RetentionMode;

    fn at(days: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + days * 86_400, 0).unwrap()
    }

    #[test]
    fn only_objects_whose_write_date_leaves_less_than_half_the_days_are_asked_about() {
        let r = Retention {
            mode: RetentionMode::Governance,
            days: 30,
        };
        let now = at(100);
        let (margin_end, until) = window(r, now);
        assert_eq!((margin_end, until), (at(115), at(130)));
        let written = |d: Option<i64>| Stored {
            file_type: FileType::DataPack,
            id: [0; 32],
            modified: d.map(at),
        };
        assert!(
            !may_need_extension(&written(Some(90)), r, margin_end),
            "locked to day 120"
        );
        assert!(
            !may_need_extension(&written(Some(85)), r, margin_end),
            "day 115: the margin"
        );
        assert!(may_need_extension(&written(Some(84)), r, margin_end));
        assert!(
            may_need_extension(&written(None), r, margin_end),
            "no date: ask"
        );
    }
}
