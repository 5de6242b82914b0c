//! `repair packs`: packs that `check --read-data` found damaged are rewritten with the blobs of
//! theirs that still open, through prune's crash-safe steps. The blobs that do not open leave the
//! index; `repair snapshots` then cuts them out of the snapshots that need them.

use serde::Serialize;

use super::{PackSummary, PrunePlan};
use crate::error::{Error, Object, Result};
use crate::format::pack::{parse_pack, BlobOpener, PackEntry};
use crate::id::PackId;
use crate::repo::index::IndexPack;
use crate::repo::repository::{match_prefix, PrefixMatch, Repository};

/// What reading one of the named packs found.
#[derive(Debug, Clone, Serialize)]
pub struct SalvagedPack {
    /// The pack.
    pub id: PackId,
    /// Blobs that open: copied into new packs.
    pub blobs_kept: usize,
    /// Blobs that fail to decrypt or to hash to their id: their content is lost.
    pub blobs_lost: usize,
}

/// Plans the rewrite of the packs named by `specs` (whole ids or unique prefixes of packs the
/// index names): each is read once, every blob checked. [`super::execute`] carries it out.
pub fn plan_salvage(repo: &Repository, specs: &[String]) -> Result<(PrunePlan, Vec<SalvagedPack>)> {
    let loaded = repo.load_index_split()?;
    let packs = loaded.packs();
    let stored = repo.list_packs()?;
    let superseded = loaded.superseded.len();
    let mut plan = PrunePlan::new(&loaded.index, &[], &stored, superseded, loaded.ids);
    let mut found = Vec::new();
    for spec in specs {
        let pack = named_pack(&packs, spec)?;
        if found.iter().any(|f: &SalvagedPack| f.id == pack.id) {
            continue;
        }
        let (kept, lost) = sound_blobs(repo, pack)?;
        found.push(SalvagedPack {
            id: pack.id,
            blobs_kept: kept.len(),
            blobs_lost: lost,
        });
        // A sound pack stays as it is.
        if lost == 0 {
            continue;
        }
        let kept_bytes: u64 = kept.iter().map(|e| e.length as u64).sum();
        let summary = PackSummary {
            id: pack.id,
            blob_type: pack.blob_type,
            size: pack.size,
            used_bytes: kept_bytes,
            storage_class: None,
        };
        // A pack with nothing left to keep is only deleted.
        if kept.is_empty() {
            plan.delete.push(summary);
            continue;
        }
        plan.bytes_to_read += pack.size;
        plan.bytes_to_write += kept_bytes;
        plan.repack.push(summary);
        plan.repack_blobs.insert(pack.id, kept);
    }
    plan.packs = packs;
    Ok((plan, found))
}

/// The pack of the index that `spec` names.
fn named_pack<'a>(
    packs: &'a std::collections::HashMap<PackId, IndexPack>,
    spec: &str,
) -> Result<&'a IndexPack> {
    let spec = spec.to_ascii_lowercase();
    match match_prefix(packs.values(), |p| p.id.to_hex(), &spec) {
        PrefixMatch::One(p) => Ok(p),
        PrefixMatch::Several(_) => Err(Error::InvalidOptions(format!(
            "pack prefix {spec} is ambiguous"
        ))),
        PrefixMatch::NotHex | PrefixMatch::Nothing => Err(Error::InvalidOptions(format!(
            "no pack {spec} in the index (a pack that is missing altogether leaves the index \
             with `repair index`)"
        ))),
    }
}

/// The entries of `pack` whose blobs open, and the number that do not. A pack whose own header
/// (when it reads) disagrees with the index is refused: its blobs may be sound where the header
/// says, and `repair index` is the repair for that.
fn sound_blobs(repo: &Repository, pack: &IndexPack) -> Result<(Vec<PackEntry>, usize)> {
    // Whatever is stored, even cut short: the blobs before the damage are kept.
    let bytes = repo
        .backend()
        .read(pack.blob_type.pack_file_type(), pack.id.as_bytes())?;
    let indexed = pack.entries();
    if let Ok(mut header) = parse_pack(repo.key(), &pack.id, pack.blob_type, &bytes) {
        let mut listed = indexed.clone();
        header.sort_by_key(|e| (e.offset, e.id));
        listed.sort_by_key(|e| (e.offset, e.id));
        if header != listed {
            return Err(Error::corrupt(
                Object::Pack(pack.id),
                "its header and the index disagree: run `floe repair index`, which rebuilds \
                 the index from the headers, then check again",
            ));
        }
    }
    let mut opener = BlobOpener::new();
    let mut scratch = Vec::new();
    let (mut kept, mut lost) = (Vec::new(), 0);
    for e in indexed {
        let range = e.offset as usize..e.offset as usize + e.length as usize;
        let Some(sealed) = bytes.get(range) else {
            lost += 1;
            continue;
        };
        scratch.clear();
        scratch.extend_from_slice(sealed);
        match opener.open(repo.key(), &pack.id, &e, &mut scratch) {
            Ok(_) => kept.push(e),
            Err(_) => lost += 1,
        }
    }
    Ok((kept, lost))
}
