//! Prune: free the space that no snapshot needs (format-spec/format.md, "Prune").
//!
//! Planning reads only the index, the snapshots and the trees: never a data pack. It marks every
//! blob a snapshot needs in a bitmap over the index (one bit per blob), then classifies packs:
//! fully unused packs are deleted, partly used packs are repacked when the repository's unused
//! share is above the limit (most wasteful first, within the repack budget), packs that no index
//! names are deleted once older than a grace period. Executing follows an order that keeps every
//! snapshot restorable if the process dies at any point:
//!
//! 1. write new packs holding the used blobs of the packs to repack;
//! 2. write new index files describing every pack that stays, and the new packs, the last of
//!    them superseding every old index file (readers then ignore the old files);
//! 3. delete the packs no index names any more;
//! 4. delete the superseded index files;
//! 5. delete the temporary files interrupted writes left (a pack cut short by a kill) once
//!    older than the grace period.
//!
//! A rerun after a crash finishes the job: packs that only superseded index files name are
//! deleted whatever their age; packs a crash left before step 2 are ordinary orphans, deleted
//! once older than the grace period.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::error::{Error, Object, Result};
use crate::failpoint;
use crate::format::pack::{BlobOpener, BlobType, PackEntry, Packer, SealedBlob};
use crate::format::tree::NodeKind;
use crate::id::{BlobId, IndexId, PackId};
use crate::repo::index::{Index, IndexFile, IndexPack};
use crate::repo::repository::{Repository, StoredPack};
use crate::storage::{FileType, Leftover, StorageClass};
use crate::units::{parse_percent, parse_size, ParseError};

mod salvage;
pub use salvage::{plan_salvage, SalvagedPack};

/// How much unused space may stay.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub enum MaxUnused {
    /// A share of the repository's size, in percent.
    Percent(f64),
    /// An absolute number of bytes.
    Bytes(u64),
    /// Never repack for space (fully unused packs are still deleted).
    Unlimited,
}

impl std::str::FromStr for MaxUnused {
    type Err = ParseError;
    fn from_str(s: &str) -> std::result::Result<Self, ParseError> {
        if s == "unlimited" {
            return Ok(MaxUnused::Unlimited);
        }
        if let Some(p) = s.strip_suffix('%') {
            let v = parse_percent(p, s)?;
            if !(0.0..=100.0).contains(&v) {
                return Err(ParseError::PercentRange {
                    input: s.to_string(),
                    allowed: "is not between 0 and 100",
                });
            }
            return Ok(MaxUnused::Percent(v));
        }
        parse_size(s).map(MaxUnused::Bytes)
    }
}

/// Prune settings.
#[derive(Debug, Clone)]
pub struct PruneOptions {
    /// Unused space allowed to remain (default 5% of the repository).
    pub max_unused: MaxUnused,
    /// Most bytes of packs to repack in one run.
    pub max_repack: Option<u64>,
    /// Packs no index names are deleted only when older than this.
    pub orphan_grace: Duration,
    /// Snapshots to treat as already removed (a dry run of `forget --prune`).
    pub ignore_snapshots: Vec<crate::id::SnapshotId>,
    /// Delete or repack packs younger than their storage class's minimum storage duration
    /// anyway, paying the early-deletion charge.
    pub ignore_min_duration: bool,
    /// The time ages are measured against (orphan grace, minimum storage durations).
    pub now: SystemTime,
    /// Days after upload at which lifecycle rules move data packs into a class, by class name
    /// ([`crate::cold::tiers::class_entry_days`]). A transition does not change an object's
    /// modification time, but the minimum storage duration counts from the transition.
    pub class_entry_days: BTreeMap<String, u32>,
    /// Days a deleted pack's version stays in the bucket after the delete (S3 Object Lock: its
    /// retention, then the versions rule): it is billed until then, and its age when it really
    /// goes is what the minimum storage duration is measured against.
    pub versions_kept_days: u32,
}

impl Default for PruneOptions {
    fn default() -> Self {
        Self {
            max_unused: MaxUnused::Percent(5.0),
            max_repack: None,
            orphan_grace: Duration::from_secs(24 * 3600),
            ignore_snapshots: Vec::new(),
            ignore_min_duration: false,
            now: SystemTime::now(),
            class_entry_days: BTreeMap::new(),
            versions_kept_days: 0,
        }
    }
}

/// One pack in the plan.
#[derive(Debug, Clone, Serialize)]
pub struct PackSummary {
    /// The pack.
    pub id: PackId,
    /// Data or tree (`data`, `tree` in JSON).
    pub blob_type: BlobType,
    /// Stored size.
    pub size: u64,
    /// Bytes of blobs some snapshot needs.
    pub used_bytes: u64,
    /// Storage class, when the storage tells.
    pub storage_class: Option<String>,
}

/// What prune does to the packs of one storage class.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ClassPlan {
    /// Packs deleted (unused or orphaned) and their bytes.
    pub delete: (usize, u64),
    /// Packs repacked and their bytes.
    pub repack: (usize, u64),
    /// Packs kept and their bytes.
    pub keep: (usize, u64),
    /// Of those kept, packs kept only because of the minimum storage duration.
    pub kept_for_min_duration: usize,
}

/// What prune will do; `execute` carries it out.
#[derive(Debug, Clone, Serialize)]
pub struct PrunePlan {
    /// Packs to delete: no blob in them is needed.
    pub delete: Vec<PackSummary>,
    /// Packs to rewrite keeping only their needed blobs.
    pub repack: Vec<PackSummary>,
    /// Packs no index names, old enough to delete.
    pub orphans: Vec<PackSummary>,
    /// Packs no index names, too recent to delete (a backup may be writing them).
    pub young_orphans: usize,
    /// Packs that stay as they are.
    pub keep: usize,
    /// Index files left by an interrupted prune, superseded and still to delete.
    pub superseded_files: usize,
    /// Temporary files interrupted writes left (a pack cut short by a kill), old enough to
    /// delete.
    pub leftovers: Vec<Leftover>,
    /// Partly used packs left alone because their storage class must be thawed before a read.
    pub cold_not_repacked: usize,
    /// Packs that would be deleted or repacked but are younger than their storage class's
    /// minimum storage duration, so they stay (unless `ignore_min_duration`).
    pub min_duration_kept: usize,
    /// Bytes of those.
    pub min_duration_kept_bytes: u64,
    /// Early-deletion charges avoided by keeping them, USD at list prices.
    pub early_deletion_avoided_usd: f64,
    /// Early-deletion charges this prune incurs (with `ignore_min_duration`), USD.
    pub early_deletion_charged_usd: f64,
    /// Per storage class: what is deleted, repacked and kept.
    pub by_class: BTreeMap<String, ClassPlan>,
    /// Blobs needed by the remaining snapshots.
    pub used_blobs: u64,
    /// Blobs no snapshot needs.
    pub unused_blobs: u64,
    /// Repository size before (packs only).
    pub bytes_before: u64,
    /// Bytes freed by deletions and repacking (estimate: repacked blobs are written again).
    pub bytes_freed: u64,
    /// Bytes read to repack.
    pub bytes_to_read: u64,
    /// Bytes written by repacking.
    pub bytes_to_write: u64,
    /// Unused bytes left after the run.
    pub unused_bytes_after: u64,
    /// Heap bytes of the in-memory index and the used-blob bitmap, per indexed blob.
    pub memory_bytes_per_blob: f64,
    #[serde(skip)]
    packs: HashMap<PackId, IndexPack>,
    #[serde(skip)]
    repack_blobs: HashMap<PackId, Vec<PackEntry>>,
    #[serde(skip)]
    index_files: Vec<IndexId>,
}

impl PrunePlan {
    /// True when there is nothing to do.
    pub fn is_empty(&self) -> bool {
        !self.touches_packs() && self.leftovers.is_empty()
    }

    /// True when packs or index files are to go: the steps that write a new index.
    fn touches_packs(&self) -> bool {
        !self.delete.is_empty()
            || !self.repack.is_empty()
            || !self.orphans.is_empty()
            || self.superseded_files > 0
    }
}

/// Every snapshot but those in `ignore` (being forgotten), strictly: one listed but gone, or
/// damaged, is an error, since prune would delete the data it needs.
fn kept_snapshots(
    repo: &Repository,
    ignore: &[crate::id::SnapshotId],
) -> Result<Vec<crate::format::snapshot::SnapshotEntry>> {
    let listing = repo.load_snapshots(false)?;
    let mut damaged = listing.damaged.into_iter();
    if let Some((id, e)) = damaged.find(|(id, _)| !ignore.contains(id)) {
        return Err(match e {
            Error::Corrupt { object, reason } => Error::Corrupt {
                object,
                reason: format!(
                    "{reason}; prune deletes nothing while a snapshot file is damaged: \
                     `floe forget {}` removes it",
                    id.to_hex()
                ),
            },
            other => other,
        });
    }
    let mut kept = listing.readable;
    kept.retain(|s| !ignore.contains(&s.id));
    Ok(kept)
}

/// Marks every blob the snapshots need. Fails when a snapshot needs a blob the index lacks:
/// pruning a damaged repository could lose data, so it is refused.
fn mark_used(
    repo: &Repository,
    index: &Index,
    ignore: &[crate::id::SnapshotId],
) -> Result<Vec<bool>> {
    let mut used = vec![false; index.len()];
    let mark = |id: &BlobId, used: &mut Vec<bool>| -> Result<bool> {
        let pos = index.position(id).ok_or(Error::MissingBlob(*id))?;
        Ok(!std::mem::replace(&mut used[pos], true))
    };
    for snap in kept_snapshots(repo, ignore)? {
        let mut stack = vec![snap.snapshot.tree];
        while let Some(tree_id) = stack.pop() {
            if !mark(&tree_id, &mut used)? {
                continue; // already walked
            }
            let tree = repo.load_tree(index, &tree_id)?;
            for node in &tree.nodes {
                for blob in node.content.iter().flatten() {
                    mark(blob, &mut used)?;
                }
                if let (NodeKind::Dir, Some(sub)) = (node.kind, node.subtree) {
                    stack.push(sub);
                }
            }
        }
    }
    Ok(used)
}

/// What the decisions about packs read: the options, and which blobs are needed.
struct Decider<'a> {
    opts: &'a PruneOptions,
    index: &'a Index,
    used: &'a [bool],
}

impl Decider<'_> {
    /// True when the copy of blob `b` in pack `p` is the one kept, and some snapshot needs it.
    fn is_used(&self, p: &PackId, b: &BlobId) -> bool {
        self.index.position(b).is_some_and(|pos| {
            self.used[pos] && self.index.get(b).is_some_and(|loc| loc.pack == *p)
        })
    }

    /// The early-deletion charge of removing a pack now, when its class has a minimum storage
    /// duration it has not reached (an unknown age counts as new).
    fn early_charge(
        &self,
        class: &Option<StorageClass>,
        size: u64,
        modified: Option<SystemTime>,
    ) -> Option<f64> {
        let class = class.as_ref()?;
        let mut age = modified
            .and_then(|m| self.opts.now.duration_since(m).ok())
            .unwrap_or_default();
        // Moved in by a rule: its time in the class began at the transition. A pack younger
        // than the transition day was written in the class directly.
        if let Some(days) = self.opts.class_entry_days.get(class.name()) {
            let entered = Duration::from_secs(u64::from(*days) * 24 * 3600);
            if age >= entered {
                age -= entered;
            }
        }
        // A locked version outlives its delete: its age counts until it really goes.
        age += Duration::from_secs(u64::from(self.opts.versions_kept_days) * 24 * 3600);
        (age < crate::cold::tiers::min_storage_duration(class))
            .then(|| crate::cold::tiers::early_deletion_charge(class, size, age))
    }
}

/// What classifying the packs leaves for the later steps.
#[derive(Default)]
struct Tally {
    /// Partly used packs in instant classes, which may be repacked.
    candidates: Vec<PackSummary>,
    /// Unused bytes in the candidates.
    unused_total: u64,
    /// Packs kept only for their minimum storage duration.
    min_kept: HashSet<PackId>,
    /// Early-deletion charges of candidates (with `ignore_min_duration`), due if repacked.
    repack_charges: HashMap<PackId, f64>,
}

/// Plans a prune. Reads index files, snapshots and trees only, and one listing of each pack
/// folder.
pub fn plan(repo: &Repository, opts: &PruneOptions) -> Result<PrunePlan> {
    let loaded = repo.load_index_split()?;
    let packs = loaded.packs();
    let mut index = loaded.index;
    let used = mark_used(repo, &index, &opts.ignore_snapshots)?;
    let stored = repo.list_packs()?;
    // Of a blob stored twice, keep the copy that is stored and readable without a thaw: the
    // other becomes unused in its pack (positions, and so `used`, do not change).
    index.prefer(|p| {
        stored.get(p).is_some_and(|s| {
            !s.storage_class
                .as_ref()
                .is_some_and(StorageClass::may_be_archived)
        })
    });
    let mut plan = PrunePlan::new(&index, &used, &stored, loaded.superseded.len(), loaded.ids);
    let decider = Decider {
        opts,
        index: &index,
        used: &used,
    };
    let mut tally = Tally::default();
    classify_indexed(&decider, &packs, &stored, &mut plan, &mut tally)?;
    let obsolete: HashSet<PackId> = loaded
        .superseded
        .iter()
        .flat_map(|(_, f)| f.packs.iter().map(|p| p.id))
        .collect();
    classify_orphans(&decider, &packs, &stored, &obsolete, &mut plan, &mut tally);
    select_repacks(opts, &mut plan, &mut tally);
    tally_by_class(&mut plan, &stored, &tally.min_kept);
    plan.delete.sort_by_key(|p| p.id);
    plan.orphans.sort_by_key(|p| p.id);
    for r in &plan.repack {
        if let Some(p) = packs.get(&r.id) {
            let keep = p
                .entries()
                .into_iter()
                .filter(|e| decider.is_used(&r.id, &e.id))
                .collect();
            plan.repack_blobs.insert(r.id, keep);
        }
    }
    plan.packs = packs;
    plan.leftovers = old_leftovers(repo, opts)?;
    Ok(plan)
}

/// The temporary files of interrupted writes older than the grace period: a file a running
/// writer appends to is younger.
fn old_leftovers(repo: &Repository, opts: &PruneOptions) -> Result<Vec<Leftover>> {
    let mut old: Vec<Leftover> = repo
        .backend()
        .leftovers()?
        .into_iter()
        .filter(|l| {
            l.modified
                .and_then(|m| opts.now.duration_since(m).ok())
                .is_some_and(|age| age >= opts.orphan_grace)
        })
        .collect();
    old.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(old)
}

impl PrunePlan {
    /// A plan that does nothing yet, with the figures known before any pack is classified.
    fn new(
        index: &Index,
        used: &[bool],
        stored: &HashMap<PackId, StoredPack>,
        superseded_files: usize,
        index_files: Vec<IndexId>,
    ) -> Self {
        PrunePlan {
            delete: Vec::new(),
            repack: Vec::new(),
            orphans: Vec::new(),
            young_orphans: 0,
            keep: 0,
            superseded_files,
            leftovers: Vec::new(),
            cold_not_repacked: 0,
            min_duration_kept: 0,
            min_duration_kept_bytes: 0,
            early_deletion_avoided_usd: 0.0,
            early_deletion_charged_usd: 0.0,
            by_class: BTreeMap::new(),
            used_blobs: used.iter().filter(|u| **u).count() as u64,
            unused_blobs: used.iter().filter(|u| !**u).count() as u64,
            bytes_before: stored.values().map(|s| s.size).sum(),
            bytes_freed: 0,
            bytes_to_read: 0,
            bytes_to_write: 0,
            unused_bytes_after: 0,
            memory_bytes_per_blob: if index.is_empty() {
                0.0
            } else {
                (index.heap_bytes() + used.len()) as f64 / index.len() as f64
            },
            packs: HashMap::new(),
            repack_blobs: HashMap::new(),
            index_files,
        }
    }
}

/// Decides each pack the index names: delete (unused), keep (fully used, cold, or within its
/// minimum storage duration), or leave as a repack candidate.
fn classify_indexed(
    d: &Decider,
    packs: &HashMap<PackId, IndexPack>,
    stored: &HashMap<PackId, StoredPack>,
    plan: &mut PrunePlan,
    tally: &mut Tally,
) -> Result<()> {
    for (id, p) in packs {
        let Some(StoredPack {
            size,
            modified,
            storage_class: class,
            ..
        }) = stored.get(id)
        else {
            return Err(Error::corrupt(
                Object::Pack(*id),
                "the index names this pack but storage does not hold it; the repository is damaged, and prune refuses to run on it",
            ));
        };
        let size = *size;
        let used_bytes: u64 = p
            .blobs
            .iter()
            .filter(|b| d.is_used(id, &b.id))
            .map(|b| b.length as u64)
            .sum();
        if used_bytes > size {
            return Err(Error::corrupt(
                Object::Pack(*id),
                format!(
                    "the index puts {used_bytes} bytes of needed blobs in a pack of {size} bytes"
                ),
            ));
        }
        let summary = PackSummary {
            id: *id,
            blob_type: p.blob_type,
            size,
            used_bytes,
            storage_class: class.as_ref().map(|c| c.name().to_string()),
        };
        let charge = d.early_charge(class, size, *modified);
        let partly_used = used_bytes > 0 && !p.blobs.iter().all(|b| d.is_used(id, &b.id));
        // Intelligent-Tiering may have moved the pack to an archive tier, and a class this build
        // does not know may need a thaw: neither is read to repack.
        let cold = class.as_ref().is_some_and(StorageClass::may_be_archived);
        // A partly used cold pack is never repacked (below); an unused one, or a partly used one
        // in an instant class, waits for its minimum storage duration.
        let removable = used_bytes == 0 || (partly_used && !cold);
        if removable && charge.is_some() && !d.opts.ignore_min_duration {
            // Deleting it now would be billed as if it stayed its minimum duration anyway.
            plan.keep += 1;
            tally.min_kept.insert(*id);
            plan.min_duration_kept += 1;
            plan.min_duration_kept_bytes += size;
            // Only a deletion is certain; a repack would depend on --max-unused. Its unused
            // bytes stay out of the tally, as a cold pack's do, so that other packs are not
            // repacked to make up for it.
            if used_bytes == 0 {
                plan.early_deletion_avoided_usd += charge.unwrap_or(0.0);
            }
        } else if used_bytes == 0 {
            plan.early_deletion_charged_usd += charge.unwrap_or(0.0);
            plan.bytes_freed += size;
            plan.delete.push(summary);
        } else if !partly_used {
            plan.keep += 1;
        } else if cold {
            // Repacking would need a thaw: leave the pack, and its unused bytes, where they are.
            plan.keep += 1;
            plan.cold_not_repacked += 1;
        } else {
            tally.unused_total += size - used_bytes;
            if let Some(c) = charge {
                tally.repack_charges.insert(*id, c);
            }
            tally.candidates.push(summary);
        }
    }
    Ok(())
}

/// Decides the stored packs no live index file names. Those named only by superseded index
/// files were condemned by a prune that did not finish: they go now, whatever their age; others
/// once older than the grace period.
fn classify_orphans(
    d: &Decider,
    packs: &HashMap<PackId, IndexPack>,
    stored: &HashMap<PackId, StoredPack>,
    obsolete: &HashSet<PackId>,
    plan: &mut PrunePlan,
    tally: &mut Tally,
) {
    for (id, s) in stored {
        let StoredPack {
            size,
            modified,
            blob_type: bt,
            storage_class: class,
        } = s;
        let (size, modified, bt) = (*size, *modified, *bt);
        if packs.contains_key(id) {
            continue;
        }
        let old = obsolete.contains(id)
            || modified
                .and_then(|m| d.opts.now.duration_since(m).ok())
                .is_some_and(|age| age >= d.opts.orphan_grace);
        let charge = d.early_charge(class, size, modified);
        if old && charge.is_some() && !d.opts.ignore_min_duration {
            tally.min_kept.insert(*id);
            plan.min_duration_kept += 1;
            plan.min_duration_kept_bytes += size;
            plan.early_deletion_avoided_usd += charge.unwrap_or(0.0);
        } else if old {
            plan.early_deletion_charged_usd += charge.unwrap_or(0.0);
            plan.bytes_freed += size;
            plan.orphans.push(PackSummary {
                id: *id,
                blob_type: bt,
                size,
                used_bytes: 0,
                storage_class: class.as_ref().map(|c| c.name().to_string()),
            });
        } else {
            plan.young_orphans += 1;
        }
    }
}

/// Repacks the most wasteful candidates first until the unused share is within the limit.
fn select_repacks(opts: &PruneOptions, plan: &mut PrunePlan, tally: &mut Tally) {
    let repo_size = plan.bytes_before - plan.bytes_freed;
    let limit = match opts.max_unused {
        MaxUnused::Percent(p) => (repo_size as f64 * p / 100.0) as u64,
        MaxUnused::Bytes(b) => b,
        MaxUnused::Unlimited => u64::MAX,
    };
    let mut candidates = std::mem::take(&mut tally.candidates);
    candidates.sort_by(|a, b| {
        let wa = (a.size - a.used_bytes) as f64 / a.size.max(1) as f64;
        let wb = (b.size - b.used_bytes) as f64 / b.size.max(1) as f64;
        wb.total_cmp(&wa).then(a.id.cmp(&b.id))
    });
    for c in candidates {
        let fits = opts
            .max_repack
            .is_none_or(|m| plan.bytes_to_read + c.size <= m);
        if tally.unused_total > limit && fits {
            tally.unused_total -= c.size - c.used_bytes;
            plan.bytes_to_read += c.size;
            plan.bytes_to_write += c.used_bytes;
            plan.bytes_freed += c.size - c.used_bytes;
            plan.early_deletion_charged_usd +=
                tally.repack_charges.get(&c.id).copied().unwrap_or(0.0);
            plan.repack.push(c);
        } else {
            plan.keep += 1;
        }
    }
    plan.unused_bytes_after = tally.unused_total;
}

/// Per class: deleted and repacked from the lists, kept as the rest of what is stored.
fn tally_by_class(
    plan: &mut PrunePlan,
    stored: &HashMap<PackId, StoredPack>,
    min_kept: &HashSet<PackId>,
) {
    let class_of = |c: &Option<String>| c.clone().unwrap_or_else(|| "none".to_string());
    let mut changed: HashSet<PackId> = HashSet::new();
    for p in plan.delete.iter().chain(&plan.orphans) {
        let e = plan.by_class.entry(class_of(&p.storage_class)).or_default();
        e.delete.0 += 1;
        e.delete.1 += p.size;
        changed.insert(p.id);
    }
    for p in &plan.repack {
        let e = plan.by_class.entry(class_of(&p.storage_class)).or_default();
        e.repack.0 += 1;
        e.repack.1 += p.size;
        changed.insert(p.id);
    }
    for (id, s) in stored {
        let (size, class) = (s.size, &s.storage_class);
        if changed.contains(id) {
            continue;
        }
        let e = plan
            .by_class
            .entry(class_of(&class.as_ref().map(|c| c.name().to_string())))
            .or_default();
        e.keep.0 += 1;
        e.keep.1 += size;
        if min_kept.contains(id) {
            e.kept_for_min_duration += 1;
        }
    }
}

/// What an executed prune did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PruneReport {
    /// Packs deleted (unused, repacked and orphaned).
    pub packs_deleted: u64,
    /// Packs written by repacking.
    pub packs_written: u64,
    /// Index files written.
    pub index_files_written: u64,
    /// Index files deleted.
    pub index_files_deleted: u64,
    /// Temporary files of interrupted writes deleted.
    pub leftovers_deleted: u64,
    /// Those that could not be deleted, and why: the rest of the prune is done, and the next
    /// prune tries them again.
    pub leftovers_kept: Vec<String>,
}

/// Copies the needed blobs of the packs to repack into new packs, each verified before it is
/// copied, and writes them. Returns the new packs as the index will record them.
fn repack(
    repo: &Repository,
    plan: &PrunePlan,
    report: &mut PruneReport,
    progress: &dyn Fn(usize),
) -> Result<Vec<IndexPack>> {
    let cfg = repo.config();
    let mut new_packs: Vec<IndexPack> = Vec::new();
    let mut packers = [
        Packer::new(BlobType::Data, cfg.data_pack_size),
        Packer::new(BlobType::Tree, cfg.tree_pack_size),
    ];
    let mut opener = BlobOpener::new();
    let mut scratch = Vec::new();
    let store = |packer: &mut Packer, new_packs: &mut Vec<IndexPack>| -> Result<()> {
        let pack = packer.finish(repo.key());
        let size = pack.bytes.len() as u64;
        repo.backend().write_owned(
            pack.blob_type.pack_file_type(),
            pack.id.as_bytes(),
            pack.bytes,
        )?;
        let mut f = IndexFile::default();
        f.add_pack(pack.id, pack.blob_type, size, &pack.entries);
        new_packs.extend(f.packs);
        Ok(())
    };
    for (i, r) in plan.repack.iter().enumerate() {
        progress(i);
        let Some(blobs) = plan.repack_blobs.get(&r.id).filter(|b| !b.is_empty()) else {
            continue;
        };
        let bt = r.blob_type;
        let bytes = repo
            .backend()
            .read(bt.pack_file_type(), r.id.as_bytes())
            .map_err(|e| {
                Error::corrupt(
                    Object::Pack(r.id),
                    format!("cannot read pack to repack: {e}"),
                )
            })?;
        let packer = &mut packers[bt as usize];
        for b in blobs {
            let range = b.offset as usize..b.offset as usize + b.length as usize;
            let sealed = bytes
                .get(range)
                .ok_or_else(|| Error::corrupt(Object::Pack(r.id), "shorter than its index says"))?;
            // Verify before copying: a damaged blob must not be carried into a new pack.
            scratch.clear();
            scratch.extend_from_slice(sealed);
            opener.open(repo.key(), &r.id, b, &mut scratch)?;
            packer.add(&SealedBlob {
                id: b.id,
                blob_type: b.blob_type,
                compressed: b.compressed,
                uncompressed_length: b.uncompressed_length,
                bytes: sealed.to_vec(),
            });
            if packer.is_full() {
                store(packer, &mut new_packs)?;
                report.packs_written += 1;
            }
        }
    }
    for packer in &mut packers {
        if !packer.is_empty() {
            store(packer, &mut new_packs)?;
            report.packs_written += 1;
        }
    }
    Ok(new_packs)
}

/// Carries out a plan in the crash-safe order described in the module documentation.
/// `progress(done, total)` counts the packs repacked, then deleted.
pub fn execute(
    repo: &Repository,
    plan: &PrunePlan,
    lock: &crate::repo::lock::LockHealth,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<PruneReport> {
    repo.ensure_writable()?;
    let mut report = PruneReport::default();
    if plan.touches_packs() {
        prune_packs(repo, plan, lock, progress, &mut report)?;
    }
    // 5. What interrupted writes left.
    for l in &plan.leftovers {
        match repo.backend().remove_leftover(l) {
            Ok(()) => report.leftovers_deleted += 1,
            Err(e) => report.leftovers_kept.push(format!("{}: {e}", l.path)),
        }
    }
    Ok(report)
}

/// Steps 1 to 4 of [`execute`].
fn prune_packs(
    repo: &Repository,
    plan: &PrunePlan,
    lock: &crate::repo::lock::LockHealth,
    progress: &(dyn Fn(usize, usize) + Sync),
    report: &mut PruneReport,
) -> Result<()> {
    let gone: HashSet<PackId> = plan
        .delete
        .iter()
        .chain(&plan.repack)
        .map(|p| p.id)
        .collect();

    // Repacked packs count twice: once repacked, once deleted.
    let total = 2 * plan.repack.len() + plan.delete.len() + plan.orphans.len();
    // 1. New packs with the needed blobs of the packs to repack.
    let new_packs = repack(repo, plan, report, &|done| progress(done, total))?;
    failpoint::hit("prune-after-repack");
    lock.check()?;

    // 2. The whole index anew: every pack that stays, and the new ones. The last file written
    // supersedes every old index file, so the new index takes over only once it is complete.
    let mut staying: Vec<&IndexPack> = plan
        .packs
        .values()
        .filter(|p| !gone.contains(&p.id))
        .collect();
    staying.sort_by_key(|p| p.id);
    let all: Vec<IndexPack> = staying.into_iter().cloned().chain(new_packs).collect();
    report.index_files_written += repo.save_superseding_index(&all, &plan.index_files)? as u64;
    failpoint::hit("prune-after-new-index");
    lock.check()?;

    // 3. Packs nothing names any more.
    for (i, p) in plan
        .delete
        .iter()
        .chain(&plan.repack)
        .chain(&plan.orphans)
        .enumerate()
    {
        repo.backend()
            .remove(p.blob_type.pack_file_type(), p.id.as_bytes())?;
        report.packs_deleted += 1;
        progress(plan.repack.len() + i + 1, total);
        if i == 0 {
            failpoint::hit("prune-during-pack-removal");
        }
    }
    failpoint::hit("prune-after-pack-removal");
    lock.check()?;

    // 4. The old index files, now superseded.
    for id in &plan.index_files {
        repo.backend().remove(FileType::Index, id.as_bytes())?;
        report.index_files_deleted += 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::RawId;
    use crate::ops::backup::{backup, BackupOptions};
    use crate::storage::{Backend, ObjectEntry};
    use std::sync::Arc;

    /// Memory storage that reports every data pack as DEEP_ARCHIVE, except those written once
    /// `write_hot` is set, which are STANDARD.
    /// Data packs are DEEP_ARCHIVE unless written "hot"; reading a frozen one fails the test.
    #[derive(Default)]
    struct Frozen {
        write_hot: std::sync::atomic::AtomicBool,
        hot: std::sync::Mutex<HashSet<RawId>>,
    }

    type FrozenStore = crate::storage::faulty::Faulty<Frozen>;

    fn frozen_store() -> FrozenStore {
        let hooks = crate::storage::faulty::Hooks {
            list: |b: &FrozenStore, t, all: &mut Vec<ObjectEntry>| {
                if t == FileType::DataPack {
                    let hot = b.state.hot.lock().unwrap();
                    for e in all.iter_mut() {
                        e.storage_class = Some(if hot.contains(&e.id) {
                            StorageClass::Standard
                        } else {
                            StorageClass::DeepArchive
                        });
                    }
                }
            },
            read: |b: &FrozenStore, t, id| {
                assert!(
                    t != FileType::DataPack || b.state.hot.lock().unwrap().contains(id),
                    "prune must not read a frozen data pack"
                );
                Ok(())
            },
            written: |b: &FrozenStore, t, id| {
                let hot = b.state.write_hot.load(std::sync::atomic::Ordering::SeqCst);
                if t == FileType::DataPack && hot {
                    b.state.hot.lock().unwrap().insert(*id);
                }
            },
            ..Default::default()
        };
        FrozenStore::new(Frozen::default(), hooks)
    }

    #[test]
    fn of_a_blob_stored_twice_prune_keeps_the_copy_that_needs_no_thaw() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        std::fs::create_dir_all(&src).unwrap();
        let content: Vec<u8> = (0..1_500_000u64).map(|i| (i * 7919 % 251) as u8).collect();
        std::fs::write(src.join("a"), &content).unwrap();
        let store = Arc::new(frozen_store());
        let repo = crate::repo::repository::test_repository(store.clone());
        let opts = BackupOptions {
            paths: vec![src.clone()],
            ..Default::default()
        };
        backup(&repo, &repo.load_index().unwrap(), &opts).unwrap();
        let cold: HashSet<RawId> = store
            .inner
            .list(FileType::DataPack)
            .unwrap()
            .into_iter()
            .map(|e| e.id)
            .collect();
        // A second backup that did not see the first one's index stores the same blobs again,
        // in STANDARD packs.
        store
            .state
            .write_hot
            .store(true, std::sync::atomic::Ordering::SeqCst);
        backup(&repo, &Index::new(), &opts).unwrap();
        assert!(repo.load_index().unwrap().data_duplicate_count() > 0);

        let plan = plan(
            &repo,
            &PruneOptions {
                ignore_min_duration: true,
                ..PruneOptions::default()
            },
        )
        .unwrap();
        let deleted: HashSet<RawId> = plan
            .delete
            .iter()
            .filter(|p| p.blob_type == BlobType::Data)
            .map(|p| *p.id.as_bytes())
            .collect();
        assert_eq!(deleted, cold, "{plan:?}");
        execute(
            &repo,
            &plan,
            &crate::repo::lock::LockHealth::unlocked(),
            &|_, _| {},
        )
        .unwrap();
        // Everything is still there, and readable without a thaw.
        let index = repo.load_index().unwrap();
        let out = tempfile::tempdir().unwrap();
        for s in repo.snapshots().unwrap() {
            let r = crate::ops::restore::restore(
                &repo,
                &index,
                &s.snapshot,
                "",
                &crate::ops::restore::RestoreOptions {
                    target: out.path().join(s.id.to_hex()),
                    ..Default::default()
                },
            )
            .unwrap();
            assert!(r.errors.is_empty(), "{:?}", r.errors);
        }
    }

    #[test]
    fn partly_used_cold_packs_are_never_repacked_nor_read() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        std::fs::create_dir_all(&src).unwrap();
        let repo = crate::repo::repository::test_repository(Arc::new(frozen_store()));
        let mut ids = Vec::new();
        for (i, content) in [vec![1u8; 600_000], vec![2u8; 600_000]].iter().enumerate() {
            // The second backup replaces file a: its first pack holds a (unused later) and b (kept).
            std::fs::write(src.join("a"), content).unwrap();
            if i == 0 {
                std::fs::write(src.join("b"), vec![3u8; 600_000]).unwrap();
            }
            let index = repo.load_index().unwrap();
            let r = backup(
                &repo,
                &index,
                &BackupOptions {
                    paths: vec![src.clone()],
                    force: true,
                    ..Default::default()
                },
            )
            .unwrap();
            ids.push(r.snapshot_id);
        }
        repo.backend()
            .remove(FileType::Snapshot, ids[0].as_bytes())
            .unwrap();
        let plan = plan(
            &repo,
            &PruneOptions {
                max_unused: MaxUnused::Bytes(0),
                ..PruneOptions::default()
            },
        )
        .unwrap();
        assert!(plan.repack.is_empty(), "{plan:?}");
        assert_eq!(plan.cold_not_repacked, 1, "{plan:?}");
        execute(
            &repo,
            &plan,
            &crate::repo::lock::LockHealth::unlocked(),
            &|_, _| {},
        )
        .unwrap();
    }

    #[test]
    fn minimum_storage_durations_count_from_the_transition_into_the_class() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("x"), vec![7u8; 600_000]).unwrap();
        let repo = crate::repo::repository::test_repository(Arc::new(frozen_store()));
        let index = repo.load_index().unwrap();
        let r = backup(
            &repo,
            &index,
            &BackupOptions {
                paths: vec![dir.path().to_path_buf()],
                ..Default::default()
            },
        )
        .unwrap();
        repo.backend()
            .remove(FileType::Snapshot, r.snapshot_id.as_bytes())
            .unwrap();
        let day = Duration::from_secs(24 * 3600);
        let data_deleted = |opts: PruneOptions| {
            let p = plan(&repo, &opts).unwrap();
            let n = p
                .delete
                .iter()
                .filter(|d| d.blob_type == BlobType::Data)
                .count();
            (n, p.min_duration_kept, p.early_deletion_avoided_usd > 0.0)
        };
        // Uploaded just now into DEEP_ARCHIVE (180 days): kept, and the charge avoided is told.
        assert_eq!(data_deleted(PruneOptions::default()), (0, 1, true));
        // 400 days later it goes...
        let later = SystemTime::now() + 400 * day;
        let opts = PruneOptions {
            now: later,
            ..PruneOptions::default()
        };
        assert_eq!(data_deleted(opts.clone()).0, 1);
        // ...unless a rule moved it to DEEP_ARCHIVE only at day 365: 35 days in the class.
        let moved = PruneOptions {
            class_entry_days: [("DEEP_ARCHIVE".to_string(), 365)].into(),
            ..opts.clone()
        };
        assert_eq!(data_deleted(moved.clone()), (0, 1, true));
        // With Object Lock keeping deleted versions 150 days more, the delete is not early.
        let locked = PruneOptions {
            versions_kept_days: 150,
            ..moved.clone()
        };
        assert_eq!(data_deleted(locked), (1, 0, false));
        // Asked to, it goes anyway, and the charge is reported.
        let forced = plan(
            &repo,
            &PruneOptions {
                ignore_min_duration: true,
                ..moved
            },
        )
        .unwrap();
        assert_eq!(
            forced
                .delete
                .iter()
                .filter(|d| d.blob_type == BlobType::Data)
                .count(),
            1
        );
        assert!(forced.early_deletion_charged_usd > 0.0, "{forced:?}");
    }
}
