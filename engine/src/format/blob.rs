//! Blob types (format-spec/format.md, "Blobs"): the type byte that blob ids, pack headers and
//! associated data all carry.

use serde::{Deserialize, Serialize};

use crate::storage::FileType;

/// What a blob holds; data and tree blobs never share a pack.
/// In index files it is written `"data"` or `"tree"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[repr(u8)]
pub enum BlobType {
    /// A chunk of file content.
    Data = 0,
    /// An encoded tree (one directory).
    Tree = 1,
}

impl BlobType {
    /// The pack folder for blobs of this type.
    pub fn pack_file_type(self) -> FileType {
        match self {
            BlobType::Data => FileType::DataPack,
            BlobType::Tree => FileType::TreePack,
        }
    }

    /// Decodes the type byte.
    pub fn from_u8(b: u8) -> Option<Self> {
        match b {
            0 => Some(BlobType::Data),
            1 => Some(BlobType::Tree),
            _ => None,
        }
    }

    /// Lower-case name used in JSON.
    pub fn name(self) -> &'static str {
        match self {
            BlobType::Data => "data",
            BlobType::Tree => "tree",
        }
    }
}

impl std::fmt::Display for BlobType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
