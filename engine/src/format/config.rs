//! The repository config (format-spec/format.md, "Config"): the one file whose name is not a hash.

use serde::{Deserialize, Serialize};

use crate::format::chunker::ChunkerParams;
use crate::id::RepoId;

/// The repository format version this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;

/// The repository config (`config`, encrypted).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Config {
    /// Format version.
    pub version: u32,
    /// Random repository id.
    pub id: RepoId,
    /// Chunk size bounds.
    pub chunker: ChunkerParams,
    /// zstd level for blobs and files.
    pub compression_level: i32,
    /// Target size of data packs.
    pub data_pack_size: u32,
    /// Target size of tree packs.
    pub tree_pack_size: u32,
}
