//! The repository config (format-spec/format.md, "Config"): the one file whose name is not a hash.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::format::chunker::ChunkerParams;
use crate::id::RepoId;
use crate::storage::Retention;

/// The repository format version this build writes into new repositories.
pub const FORMAT_VERSION: u32 = 2;

/// The oldest repository format version this build reads and writes.
pub const OLDEST_FORMAT_VERSION: u32 = 1;

/// The first version whose trees may record extended attributes and whose config carries the
/// chunker seed (format-spec/format.md, "Versioning").
pub const XATTRS_VERSION: u32 = 2;

/// The repository config (`config`, encrypted).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Config {
    /// Format version.
    pub version: u32,
    /// Random repository id.
    pub id: RepoId,
    /// Chunk size bounds.
    pub chunker: ChunkerParams,
    /// The chunker's gear seed (version 2 on; required there). Version 1 derives it from the id
    /// key instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chunker_seed: Option<u64>,
    /// zstd level for blobs and files.
    pub compression_level: i32,
    /// Target size of data packs.
    pub data_pack_size: u32,
    /// Target size of tree packs.
    pub tree_pack_size: u32,
    /// S3 Object Lock: the retention every object written carries, except lock files (version
    /// 2 on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_lock: Option<Retention>,
    /// Members this build does not know, kept as read. A repository whose config has any may be
    /// read but not written (format-spec/format.md, "Config").
    #[serde(flatten)]
    pub unknown: BTreeMap<String, serde_json::Value>,
}

impl Config {
    /// True when trees of this repository may record extended attributes.
    pub fn records_xattrs(&self) -> bool {
        self.version >= XATTRS_VERSION
    }

    /// The chunker seed: the config's own from version 2 on, else `derived` (from the id key).
    pub fn effective_chunker_seed(&self, derived: u64) -> u64 {
        self.chunker_seed.unwrap_or(derived)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(version: u32, seed: Option<u64>) -> Config {
        Config {
            version,
            id: RepoId::from_bytes([7; 32]),
            chunker: ChunkerParams::default(),
            chunker_seed: seed,
            compression_level: 3,
            data_pack_size: 16 << 20,
            tree_pack_size: 4 << 20,
            object_lock: None,
            unknown: BTreeMap::new(),
        }
    }

    #[test]
    fn a_version_1_config_has_no_seed_member_and_uses_the_derived_seed() {
        let c = config(1, None);
        let text = serde_json::to_string(&c).unwrap();
        assert!(!text.contains("chunker_seed"), "{text}");
        assert_eq!(serde_json::from_str::<Config>(&text).unwrap(), c);
        assert_eq!(c.effective_chunker_seed(99), 99);
        assert!(!c.records_xattrs());
    }

    #[test]
    fn a_version_2_seed_keeps_all_64_bits() {
        let c = config(2, Some(u64::MAX - 1));
        let text = serde_json::to_string(&c).unwrap();
        assert!(
            text.contains("\"chunker_seed\":18446744073709551614"),
            "{text}"
        );
        let back: Config = serde_json::from_str(&text).unwrap();
        assert_eq!(back.effective_chunker_seed(5), u64::MAX - 1);
        assert!(back.records_xattrs());
    }

    #[test]
    fn unknown_members_are_kept_and_written_back() {
        let mut text = serde_json::to_string(&config(2, Some(1))).unwrap();
        text.pop();
        text.push_str(r#","immutable_packs":{"after":30}}"#);
        let c: Config = serde_json::from_str(&text).unwrap();
        assert_eq!(c.unknown.keys().collect::<Vec<_>>(), ["immutable_packs"]);
        let again: Config = serde_json::from_str(&serde_json::to_string(&c).unwrap()).unwrap();
        assert_eq!(again, c);
    }

    #[test]
    fn object_lock_reads_as_the_spec_writes_it() {
        let mut text = serde_json::to_string(&config(2, Some(1))).unwrap();
        assert!(!text.contains("object_lock"), "absent unless set: {text}");
        text.pop();
        text.push_str(r#","object_lock":{"mode":"compliance","days":30}}"#);
        let c: Config = serde_json::from_str(&text).unwrap();
        assert!(c.unknown.is_empty());
        assert_eq!(
            c.object_lock,
            Some(Retention {
                mode: crate::storage::RetentionMode::Compliance,
                days: 30
            })
        );
    }
}
