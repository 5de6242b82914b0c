//! Index files (format-spec/format.md, "Index files"): JSON lists of packs and the blobs inside
//! them, sealed as files.

use serde::{Deserialize, Serialize};

use crate::format::blob::BlobType;
use crate::format::pack::PackEntry;
use crate::id::{BlobId, IndexId, PackId};

/// One blob in an index file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexBlob {
    /// Blob id.
    pub id: BlobId,
    /// Offset in the pack.
    pub offset: u32,
    /// Sealed length, below 2^31: the top bit is reserved (format-spec, "Index files").
    #[serde(deserialize_with = "below_2_31")]
    pub length: u32,
    /// Plaintext length.
    pub uncompressed_length: u32,
    /// Whether the plaintext is a zstd frame.
    pub compressed: bool,
}

fn below_2_31<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    let n = u32::deserialize(d)?;
    if n >= 1 << 31 {
        return Err(serde::de::Error::custom(format!(
            "blob length {n} has the reserved top bit set"
        )));
    }
    Ok(n)
}

/// One pack in an index file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexPack {
    /// Pack id.
    pub id: PackId,
    /// `data` or `tree`.
    #[serde(rename = "type")]
    pub blob_type: BlobType,
    /// Size of the whole pack in bytes, so that its presence and length can be checked by
    /// listing storage, without reading it (a cold pack cannot be read).
    pub size: u64,
    /// Its blobs in pack order.
    pub blobs: Vec<IndexBlob>,
}

impl IndexPack {
    /// The pack's blobs as pack-header entries.
    pub fn entries(&self) -> Vec<PackEntry> {
        self.blobs
            .iter()
            .map(|b| PackEntry {
                blob_type: self.blob_type,
                compressed: b.compressed,
                id: b.id,
                offset: b.offset,
                length: b.length,
                uncompressed_length: b.uncompressed_length,
            })
            .collect()
    }
}

/// The content of one index file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexFile {
    /// Packs described.
    pub packs: Vec<IndexPack>,
    /// Index files this one replaces (written by prune): readers ignore them even while they
    /// still exist, and the packs only they name are obsolete.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub supersedes: Vec<IndexId>,
}

impl IndexFile {
    /// Records a pack.
    pub fn add_pack(&mut self, id: PackId, blob_type: BlobType, size: u64, entries: &[PackEntry]) {
        self.packs.push(IndexPack {
            id,
            blob_type,
            size,
            blobs: entries
                .iter()
                .map(|e| IndexBlob {
                    id: e.id,
                    offset: e.offset,
                    length: e.length,
                    uncompressed_length: e.uncompressed_length,
                    compressed: e.compressed,
                })
                .collect(),
        });
    }

    /// Number of blobs described.
    pub fn blob_count(&self) -> usize {
        self.packs.iter().map(|p| p.blobs.len()).sum()
    }
}
