//! Repairs (format-spec/format.md, "Repair").
//!
//! `repair_index` rebuilds the index from the packs themselves, reading only each pack's tail
//! (trailer and sealed header): new index files are written, the last one superseding every old
//! index file, and only then are the old files deleted, so a crash leaves a usable index.

use rayon::prelude::*;
use serde::Serialize;

use crate::backend::FileType;
use crate::error::{Error, Result};
use crate::id::PackId;
use crate::index::{IndexFile, IndexPack};
use crate::lock::LockHealth;
use crate::pack::{self, BlobType};
use crate::repository::Repository;

/// Blobs per rebuilt index file.
const BLOBS_PER_INDEX_FILE: usize = 250_000;

/// What `repair_index` did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RepairIndexReport {
    /// Packs described by the new index.
    pub packs_indexed: usize,
    /// Blobs described by the new index.
    pub blobs_indexed: usize,
    /// Packs left out because their header could not be read; each with the reason.
    pub unreadable_packs: Vec<(String, String)>,
    /// Index files written.
    pub index_files_written: usize,
    /// Old index files deleted.
    pub index_files_deleted: usize,
}

fn read_header(repo: &Repository, bt: BlobType, id: &PackId, size: u64) -> Result<IndexPack> {
    let tl = pack::TRAILER_LEN as u64;
    if size < tl {
        return Err(Error::corrupt(
            crate::error::Object::Pack(*id),
            "shorter than its trailer",
        ));
    }
    let trailer = repo.read_pack_range(bt, id, size - tl, tl)?;
    let hl = pack::header_length(id, &trailer, size)? as u64;
    let sealed = repo.read_pack_range(bt, id, size - tl - hl, hl)?;
    let entries = pack::decode_header(repo.key(), id, bt, sealed, size)?;
    let mut f = IndexFile::default();
    f.add_pack(*id, bt, size, &entries);
    f.packs
        .pop()
        .ok_or_else(|| Error::InvalidInput("empty pack record".into()))
}

/// Rebuilds the index from the pack headers. `dry_run` reads and reports without writing.
pub fn repair_index(
    repo: &Repository,
    dry_run: bool,
    lock: &LockHealth,
) -> Result<RepairIndexReport> {
    let mut listed = Vec::new();
    for bt in [BlobType::Data, BlobType::Tree] {
        for e in repo.backend().list(bt.pack_file_type())? {
            listed.push((bt, PackId::from_bytes(e.id), e.size));
        }
    }
    let results: Vec<(PackId, Result<IndexPack>)> = listed
        .par_iter()
        .map(|(bt, id, size)| (*id, read_header(repo, *bt, id, *size)))
        .collect();
    let mut report = RepairIndexReport::default();
    let mut packs = Vec::new();
    for (id, r) in results {
        match r {
            Ok(p) => packs.push(p),
            Err(e) => report.unreadable_packs.push((id.to_hex(), e.to_string())),
        }
    }
    packs.sort_by_key(|p| p.id);
    report.packs_indexed = packs.len();
    report.blobs_indexed = packs.iter().map(|p| p.blobs.len()).sum();
    if dry_run {
        return Ok(report);
    }
    let old: Vec<crate::id::IndexId> = repo
        .backend()
        .list(FileType::Index)?
        .into_iter()
        .map(|e| crate::id::IndexId::from_bytes(e.id))
        .collect();
    let mut chunks: Vec<&[IndexPack]> = Vec::new();
    let (mut start, mut blobs) = (0, 0);
    for (i, p) in packs.iter().enumerate() {
        if blobs > 0 && blobs + p.blobs.len() > BLOBS_PER_INDEX_FILE {
            chunks.push(&packs[start..i]);
            start = i;
            blobs = 0;
        }
        blobs += p.blobs.len();
    }
    let last = &packs[start..];
    lock.check()?;
    for chunk in chunks {
        repo.save_index(&IndexFile {
            packs: chunk.to_vec(),
            supersedes: Vec::new(),
        })?;
        report.index_files_written += 1;
    }
    repo.save_index(&IndexFile {
        packs: last.to_vec(),
        supersedes: old.clone(),
    })?;
    report.index_files_written += 1;
    lock.check()?;
    for id in &old {
        repo.backend().remove(FileType::Index, id.as_bytes())?;
        report.index_files_deleted += 1;
    }
    Ok(report)
}
