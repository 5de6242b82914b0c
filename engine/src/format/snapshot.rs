//! Snapshots: one backup run (format-spec/format.md, "Snapshots").

use chrono::{DateTime, FixedOffset};
use serde::{Deserialize, Serialize};

use crate::format::tree::ByteString;
use crate::id::{BlobId, SnapshotId};

/// What a backup run did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SnapshotSummary {
    /// Regular files not in the parent snapshot.
    pub files_new: u64,
    /// Regular files in the parent whose metadata changed (they were read again).
    pub files_changed: u64,
    /// Regular files unchanged since the parent (not read).
    pub files_unchanged: u64,
    /// Directories recorded.
    pub dirs: u64,
    /// Other entries recorded (symlinks, devices, fifos, sockets).
    pub others: u64,
    /// Bytes of file content read from the source.
    pub bytes_read: u64,
    /// Total size of the files in the snapshot.
    pub total_bytes: u64,
    /// Bytes added to the repository (sealed blobs, before pack headers).
    pub bytes_added: u64,
    /// New data blobs.
    pub data_blobs_added: u64,
    /// New tree blobs.
    pub tree_blobs_added: u64,
    /// Entries that could not be read and were left out.
    pub errors: u64,
    /// Regular files whose size, times or inode differed after they were read (stored as
    /// read). Absent in snapshots of older writers: 0.
    #[serde(default)]
    pub files_changed_while_read: u64,
    /// When the run started.
    #[serde(deserialize_with = "crate::format::timestamp::fixed")]
    pub backup_start: DateTime<FixedOffset>,
    /// When it ended.
    #[serde(deserialize_with = "crate::format::timestamp::fixed")]
    pub backup_end: DateTime<FixedOffset>,
    /// Wall-clock seconds.
    pub duration_seconds: f64,
}

/// A snapshot file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Time of the snapshot, with the UTC offset of the host that made it.
    #[serde(deserialize_with = "crate::format::timestamp::fixed")]
    pub time: DateTime<FixedOffset>,
    /// Host name.
    pub hostname: String,
    /// User name.
    pub username: String,
    /// User id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
    /// Absolute source paths, sorted.
    pub paths: Vec<ByteString>,
    /// Tags, sorted.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Root tree.
    pub tree: BlobId,
    /// The snapshot used for change detection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<SnapshotId>,
    /// The snapshot this one replaces, when `tag` or `rewrite` made it from another (the first
    /// of a chain of such changes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original: Option<SnapshotId>,
    /// In a snapshot `copy` wrote, the tree it wrote: a later copy trusts the snapshot as an
    /// exact translation of its `original` only while `tree` still equals it (`rewrite` and
    /// `repair` change `tree` and keep this).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copied_tree: Option<BlobId>,
    /// Exclude patterns in force.
    #[serde(default)]
    pub excludes: Vec<String>,
    /// `floe <version>`.
    pub program_version: String,
    /// Statistics of the run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<SnapshotSummary>,
}

/// A snapshot together with its id.
#[derive(Debug, Clone, PartialEq)]
pub struct SnapshotEntry {
    /// Its id.
    pub id: SnapshotId,
    /// Its content.
    pub snapshot: Snapshot,
}

impl Snapshot {
    /// True when `other` backs up the same host and paths (a candidate parent).
    pub fn same_source(&self, host: &str, paths: &[ByteString]) -> bool {
        self.hostname == host && self.paths == paths
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(host: &str, paths: &[&str]) -> Snapshot {
        Snapshot {
            time: DateTime::parse_from_rfc3339("2026-01-02T03:04:05+01:00").unwrap(),
            hostname: host.into(),
            username: "u".into(),
            uid: 1,
            gid: 1,
            paths: paths
                .iter()
                .map(|p| ByteString(p.as_bytes().to_vec()))
                .collect(),
            tags: vec!["t".into()],
            tree: BlobId::hash_of(b"tree"),
            parent: None,
            original: None,
            copied_tree: None,
            excludes: Vec::new(),
            program_version: "floe test".into(),
            summary: None,
        }
    }

    #[test]
    fn the_same_source_is_the_same_host_and_the_same_paths() {
        let s = snapshot("h", &["/a", "/b"]);
        let paths = |p: &[&str]| -> Vec<ByteString> {
            p.iter()
                .map(|p| ByteString(p.as_bytes().to_vec()))
                .collect()
        };
        assert!(s.same_source("h", &paths(&["/a", "/b"])));
        assert!(!s.same_source("other", &paths(&["/a", "/b"])));
        assert!(!s.same_source("h", &paths(&["/a"])));
    }

    #[test]
    fn optional_fields_are_left_out_of_the_json_and_read_back() {
        let s = snapshot("h", &["/a"]);
        let json = serde_json::to_value(&s).unwrap();
        assert!(
            json.get("parent").is_none() && json.get("summary").is_none(),
            "{json}"
        );
        let back: Snapshot = serde_json::from_value(json).unwrap();
        assert_eq!(back, s);
    }
}
