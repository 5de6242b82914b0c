//! Choosing snapshots by host, tag and path (forget, find).

use floe_engine::SnapshotEntry;

/// Options that narrow the snapshots a command considers.
#[derive(Debug, Clone, clap::Args)]
pub struct SnapshotFilter {
    /// Only consider snapshots of this host (repeatable)
    #[arg(long = "host", value_name = "HOST")]
    pub hosts: Vec<String>,
    /// Only consider snapshots with this tag (repeatable; `a,b` needs both)
    #[arg(long = "tag", value_name = "TAG")]
    pub tags: Vec<String>,
    /// Only consider snapshots that include this path (repeatable)
    #[arg(long = "path", value_name = "PATH")]
    pub paths: Vec<String>,
}

impl SnapshotFilter {
    /// True when `s` passes every option given.
    pub fn selects(&self, s: &SnapshotEntry) -> bool {
        let sn = &s.snapshot;
        (self.hosts.is_empty() || self.hosts.contains(&sn.hostname))
            // `--tag a,b` needs both; several --tag options need any one of them.
            && (self.tags.is_empty()
                || self.tags.iter().any(|t| t.split(',').all(|one| sn.tags.iter().any(|st| st == one))))
            // Every --path must be among the snapshot's paths.
            && self.paths.iter().all(|p| sn.paths.iter().any(|sp| sp.lossy() == p.as_str()))
    }
}
