//! Choosing snapshots by host, tag and path, the same way in every command that takes
//! snapshots: the filters narrow the list, and `latest` is the latest snapshot they select.

use anyhow::bail;
use floe_engine::{pick_snapshot, Repository, SnapshotEntry};

/// Options that narrow the snapshots a command considers; `-H` is `--host` where the const
/// parameter says so (every command but forget, where `-H` keeps hourly snapshots, as in
/// restic).
#[derive(Debug, Clone, Default, clap::Args)]
#[command(next_help_heading = "Snapshot filters")]
pub struct Filter<const SHORT_HOST: bool> {
    /// Only snapshots of this host (repeatable: any of them)
    #[arg(long = "host", short = host_short(SHORT_HOST), value_name = "HOST")]
    pub hosts: Vec<String>,
    /// Only snapshots with this tag (repeatable: any of them; `a,b` needs both)
    #[arg(long = "tag", value_name = "TAG[,TAG]")]
    pub tags: Vec<String>,
    /// Only snapshots that include this path (repeatable: all of them)
    #[arg(long = "path", value_name = "PATH")]
    pub paths: Vec<String>,
}

/// The filters of most commands, with `-H` for `--host`.
pub type SnapshotFilter = Filter<true>;

/// forget's filters: `-H` there is `--keep-hourly`.
pub type ForgetFilter = Filter<false>;

const fn host_short(short: bool) -> Option<char> {
    if short {
        Some('H')
    } else {
        None
    }
}

impl<const SHORT_HOST: bool> Filter<SHORT_HOST> {
    /// True when no filter was given.
    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty() && self.tags.is_empty() && self.paths.is_empty()
    }

    /// True when `s` passes every option given.
    pub fn selects(&self, s: &SnapshotEntry) -> bool {
        let sn = &s.snapshot;
        // `--tag ""` selects the snapshots without tags, as in restic.
        let has_tags = |group: &String| {
            let mut wanted = group.split(',').map(str::trim).filter(|t| !t.is_empty());
            match wanted.next() {
                None => sn.tags.is_empty(),
                Some(first) => std::iter::once(first)
                    .chain(wanted)
                    .all(|one| sn.tags.iter().any(|st| st == one)),
            }
        };
        let same_path = |p: &String, sp: &floe_engine::ByteString| {
            let p = if p.len() > 1 {
                p.trim_end_matches('/')
            } else {
                p
            };
            sp.lossy() == p
        };
        (self.hosts.is_empty() || self.hosts.contains(&sn.hostname))
            && (self.tags.is_empty() || self.tags.iter().any(has_tags))
            && self
                .paths
                .iter()
                .all(|p| sn.paths.iter().any(|sp| same_path(p, sp)))
    }

    /// The snapshots of the repository the filters select, oldest first.
    pub fn snapshots(&self, repo: &Repository) -> anyhow::Result<Vec<SnapshotEntry>> {
        let mut all = readable(repo)?;
        all.retain(|s| self.selects(s));
        Ok(all)
    }

    /// As [`Self::snapshots`], refusing a filter that selects nothing (a typo in a host name
    /// must not pass for a check of nothing).
    pub fn some_snapshots(&self, repo: &Repository) -> anyhow::Result<Vec<SnapshotEntry>> {
        let selected = self.snapshots(repo)?;
        if selected.is_empty() && !self.is_empty() {
            bail!("no snapshot matches the filters (--host, --tag, --path)");
        }
        Ok(selected)
    }

    /// The snapshot `spec` names: `latest` is the latest the filters select; an id (or a
    /// unique prefix) names its snapshot whatever the filters.
    /// `latest` warns of damaged snapshot files, which it passes over.
    pub fn find(&self, repo: &Repository, spec: &str) -> anyhow::Result<SnapshotEntry> {
        if spec != "latest" {
            return Ok(repo.find_snapshot(spec)?);
        }
        let selected = self.snapshots(repo)?;
        if selected.is_empty() && !self.is_empty() {
            bail!("no snapshot matches the filters (--host, --tag, --path) to take as latest");
        }
        Ok(pick_snapshot(&selected, "latest")?)
    }
}

/// The snapshots of the repository that read back, oldest first, with a warning for each
/// damaged snapshot file, which is left out.
pub fn readable(repo: &Repository) -> anyhow::Result<Vec<SnapshotEntry>> {
    let listing = repo.snapshots_readable()?;
    warn_damaged(&listing);
    Ok(listing.readable)
}

/// A warning for each damaged snapshot file of `listing`.
pub fn warn_damaged(listing: &floe_engine::SnapshotListing) {
    for (id, e) in &listing.damaged {
        eprintln!(
            "warning: snapshot {} left out: {e} (`floe forget {}` removes it)",
            id.short(),
            id.to_hex()
        );
    }
}

/// The snapshots a command that changes snapshots works on: those named by `ids` (or `latest`),
/// or, without ids, every snapshot the filters select.
pub fn chosen(
    repo: &Repository,
    ids: &[String],
    filter: &SnapshotFilter,
) -> anyhow::Result<Vec<SnapshotEntry>> {
    if ids.is_empty() {
        return filter.some_snapshots(repo);
    }
    let mut out: Vec<SnapshotEntry> = Vec::new();
    for id in ids {
        let s = filter.find(repo, id)?;
        if !out.iter().any(|o| o.id == s.id) {
            out.push(s);
        }
    }
    Ok(out)
}
