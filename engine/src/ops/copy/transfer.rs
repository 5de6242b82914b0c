//! Carrying out a copy plan: data blobs read from the source and sealed again for the
//! destination, trees translated children first, then the snapshots. The destination's
//! ordering rules hold throughout (packs, then the index files naming them, then snapshots),
//! so a run stopped at any moment leaves a repository that checks clean, and the next run
//! finds what landed.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

use rayon::prelude::*;
use serde::Serialize;

use super::CopyPlan;
use crate::cold::thaw::PackGate;
use crate::error::{Error, Result};
use crate::failpoint;
use crate::format::blob::BlobType;
use crate::format::crypto::NONCE_LEN;
use crate::format::index_file::IndexFile;
use crate::format::pack::{BlobOpener, BlobSealer, FinishedPack, PackEntry, Packer, SealedBlob};
use crate::format::snapshot::SnapshotEntry;
use crate::id::{BlobId, PackId, SnapshotId};
use crate::progress::ProgressSink;
use crate::repo::index::Index;
use crate::repo::lock::{list_locks, LockHealth};
use crate::repo::repository::{host_and_user, now_local, Repository};

/// Packs written between two index files: a run stopped between them leaves at most this many
/// packs unnamed, and the next run indexes those (see [`leftover_packs`]).
const PACKS_PER_INDEX_FILE: usize = 16;

/// How a copy runs.
#[derive(Debug, Default)]
pub struct CopyOptions {
    /// Archived source packs to wait for (`None`: every pack is readable).
    pub gate: Option<PackGate>,
    /// The destination's lock.
    pub lock: LockHealth,
    /// Receives the plaintext bytes read from the source.
    pub progress: ProgressSink,
}

/// What a copy did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CopyReport {
    /// (source id, new destination id) of each snapshot copied.
    #[serde(skip)]
    pub copied: Vec<(SnapshotId, SnapshotId)>,
    /// Source snapshots the destination had already.
    pub snapshots_present: usize,
    /// Data blobs read from the source.
    pub data_blobs_read: u64,
    /// Stored bytes read from the source for them.
    pub bytes_read: u64,
    /// Of the data blobs read, those the destination had already.
    pub data_blobs_present: u64,
    /// Data blobs added to the destination.
    pub data_blobs_added: u64,
    /// Tree blobs added to the destination.
    pub tree_blobs_added: u64,
    /// Sealed bytes added to the destination (before pack headers).
    pub bytes_added: u64,
    /// Packs written.
    pub packs_written: usize,
    /// Packs a stopped run had left unnamed, indexed by this one.
    pub leftover_packs_indexed: usize,
    /// Entries whose extended attributes a version 1 destination cannot record.
    pub xattrs_dropped: u64,
}

/// Packs in the destination that no index names, with their headers, when nothing else works on
/// the destination now: what a stopped copy or backup uploaded. While another process holds a
/// lock, its packs may be waiting for their index, and none is taken.
pub(super) fn leftover_packs(dest: &Repository, index: &Index) -> Result<IndexFile> {
    let mut file = IndexFile::default();
    if others_at_work(dest)? {
        return Ok(file);
    }
    let named: HashSet<&PackId> = index.pack_ids().collect();
    let stored = dest.list_packs()?;
    let unnamed: Vec<_> = stored
        .iter()
        .filter(|(id, _)| !named.contains(id))
        .collect();
    let headers: Vec<Result<_>> = dest.in_io_pool(|| {
        unnamed
            .par_iter()
            .map(|(id, p)| dest.read_pack_header(p.blob_type, id, p.size))
            .collect()
    });
    for h in headers {
        match h {
            Ok(pack) => file.packs.push(pack),
            // A damaged leftover is only not reused; prune removes it.
            Err(Error::Corrupt { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(file)
}

/// True when a lock other than this process's own is live.
fn others_at_work(repo: &Repository) -> Result<bool> {
    let (host, ..) = host_and_user();
    let now = now_local();
    let pid = std::process::id();
    let ours = |l: &crate::repo::lock::LockFile| l.hostname == host && l.pid == pid;
    Ok(list_locks(repo)?.into_iter().any(|(_, l)| match l {
        Ok(l) => !ours(&l) && !l.is_stale(now, &host),
        Err(_) => true,
    }))
}

/// Copies what `plan` lists from `src` into `dest`.
pub fn execute(
    src: &Repository,
    src_index: &Index,
    dest: &Repository,
    plan: CopyPlan,
    opts: &CopyOptions,
) -> Result<CopyReport> {
    dest.ensure_writable()?;
    let mut report = CopyReport {
        snapshots_present: plan.present.len(),
        ..Default::default()
    };
    if plan.is_empty() {
        return Ok(report);
    }
    let sink = Sink::new(dest, &plan.dest_index, &opts.lock);
    if !plan.leftovers.packs.is_empty() {
        opts.lock.check()?;
        dest.save_index(&plan.leftovers)?;
        report.leftover_packs_indexed = plan.leftovers.packs.len();
    }
    let mut known = plan.known;
    let data = DataCopy {
        src,
        src_index,
        sink: &sink,
        progress: &opts.progress,
        read: Default::default(),
        bytes_read: Default::default(),
    };
    known.extend(data.run(&plan.data, opts.gate.as_ref())?);
    report.data_blobs_read = data.read.load(Ordering::Relaxed);
    report.bytes_read = data.bytes_read.load(Ordering::Relaxed);
    report.data_blobs_added = sink.blobs_added.load(Ordering::Relaxed);
    report.data_blobs_present = report.data_blobs_read - report.data_blobs_added;
    report.xattrs_dropped = translate_trees(src, src_index, &sink, &plan.trees, &mut known)?;
    report.tree_blobs_added = sink.blobs_added.load(Ordering::Relaxed) - report.data_blobs_added;
    sink.finish()?;
    report.packs_written = sink.packs_written.load(Ordering::Relaxed);
    report.bytes_added = sink.bytes_added.load(Ordering::Relaxed);
    for s in &plan.snapshots {
        opts.lock.check()?;
        let id = dest.save_snapshot(&copied_snapshot(s, &known)?)?;
        report.copied.push((s.id, id));
    }
    Ok(report)
}

/// The destination's snapshot for source snapshot `s`: the same description, its tree
/// translated (and recorded as `copied_tree`), the source snapshot as `original`, and no parent
/// (the source's parent is not a snapshot of the destination).
fn copied_snapshot(
    s: &SnapshotEntry,
    known: &HashMap<BlobId, BlobId>,
) -> Result<crate::format::snapshot::Snapshot> {
    let mut snap = s.snapshot.clone();
    snap.tree = translate(known, &s.snapshot.tree)?;
    snap.original = Some(s.id);
    snap.copied_tree = Some(snap.tree);
    snap.parent = None;
    Ok(snap)
}

fn translate(known: &HashMap<BlobId, BlobId>, id: &BlobId) -> Result<BlobId> {
    known.get(id).copied().ok_or(Error::MissingBlob(*id))
}

/// Writes the source trees `trees` (children first) with translated ids. Returns how many
/// entries lost their extended attributes to a version 1 destination.
fn translate_trees(
    src: &Repository,
    src_index: &Index,
    sink: &Sink<'_>,
    trees: &[BlobId],
    known: &mut HashMap<BlobId, BlobId>,
) -> Result<u64> {
    let keep_xattrs = sink.dest.config().records_xattrs();
    let mut sealer = sealer(sink.dest)?;
    let mut dropped = 0;
    for id in trees {
        let mut tree = src.load_tree(src_index, id)?;
        for node in &mut tree.nodes {
            for b in node.content.iter_mut().flatten() {
                *b = translate(known, b)?;
            }
            if let Some(s) = &mut node.subtree {
                *s = translate(known, s)?;
            }
            if !keep_xattrs && !node.xattrs.is_empty() {
                node.xattrs.clear();
                dropped += 1;
            }
        }
        let bytes = tree.encode();
        let new = sink.dest.key().blob_id(BlobType::Tree, &bytes);
        sink.offer(&mut sealer, BlobType::Tree, new, &bytes)?;
        known.insert(*id, new);
    }
    Ok(dropped)
}

fn sealer(dest: &Repository) -> Result<BlobSealer> {
    BlobSealer::with(dest.blob_compression()).map_err(|e| Error::io("start zstd", "compressor", e))
}

/// Reads the source data blobs, pack by pack, and offers each to the sink.
struct DataCopy<'a> {
    src: &'a Repository,
    src_index: &'a Index,
    sink: &'a Sink<'a>,
    progress: &'a ProgressSink,
    read: AtomicU64,
    bytes_read: AtomicU64,
}

impl DataCopy<'_> {
    /// Copies `blobs`, readable packs first, then the others as they thaw. Returns the
    /// destination id of each.
    fn run(&self, blobs: &[BlobId], gate: Option<&PackGate>) -> Result<Vec<(BlobId, BlobId)>> {
        let mut by_pack: BTreeMap<PackId, Vec<PackEntry>> = BTreeMap::new();
        for b in blobs {
            let loc = self.src_index.get(b).ok_or(Error::MissingBlob(*b))?;
            by_pack.entry(loc.pack).or_default().push(loc.entry);
        }
        let pending = gate.map(|g| &g.pending);
        let (mut waiting, ready): (Vec<_>, Vec<_>) = by_pack
            .into_iter()
            .partition(|(p, _)| pending.is_some_and(|w| w.contains(p)));
        let mut out = self.packs(ready)?;
        while let Some(g) = gate.filter(|_| !waiting.is_empty()) {
            let ids: Vec<PackId> = waiting.iter().map(|(p, _)| *p).collect();
            let thawed: HashSet<PackId> = g.waiter.wait_any(&ids)?.into_iter().collect();
            let (now, later) = waiting.into_iter().partition(|(p, _)| thawed.contains(p));
            waiting = later;
            out.extend(self.packs(now)?);
        }
        Ok(out)
    }

    fn packs(&self, packs: Vec<(PackId, Vec<PackEntry>)>) -> Result<Vec<(BlobId, BlobId)>> {
        let per_pack: Vec<Result<Vec<(BlobId, BlobId)>>> = self.src.in_io_pool(|| {
            packs
                .into_par_iter()
                .map(|(pack, entries)| self.pack(pack, entries))
                .collect()
        });
        let mut out = Vec::new();
        for p in per_pack {
            out.extend(p?);
        }
        Ok(out)
    }

    /// One source pack: the span holding the wanted blobs is read in one request.
    fn pack(&self, pack: PackId, mut entries: Vec<PackEntry>) -> Result<Vec<(BlobId, BlobId)>> {
        entries.sort_by_key(|e| e.offset);
        let (Some(first), Some(last)) = (entries.first(), entries.last()) else {
            return Ok(Vec::new());
        };
        let start = u64::from(first.offset);
        let end = u64::from(last.offset) + u64::from(last.length);
        let mut span = self
            .src
            .read_pack_range(BlobType::Data, &pack, start, end - start)?;
        self.bytes_read.fetch_add(end - start, Ordering::Relaxed);
        let mut opener = BlobOpener::new();
        let mut sealer = sealer(self.sink.dest)?;
        let mut out = Vec::with_capacity(entries.len());
        for e in &entries {
            let at = (u64::from(e.offset) - start) as usize;
            let plain = opener.open(
                self.src.key(),
                &pack,
                e,
                &mut span[at..at + e.length as usize],
            )?;
            let new = self.sink.dest.key().blob_id(BlobType::Data, plain);
            self.progress.bytes_done(plain.len() as u64);
            self.read.fetch_add(1, Ordering::Relaxed);
            self.sink.offer(&mut sealer, BlobType::Data, new, plain)?;
            out.push((e.id, new));
        }
        Ok(out)
    }
}

/// Where sealed blobs go: one packer per blob type, packs written as they fill, and an index
/// file every [`PACKS_PER_INDEX_FILE`] packs.
struct Sink<'a> {
    dest: &'a Repository,
    dest_index: &'a Index,
    lock: &'a LockHealth,
    /// Destination ids added by this run.
    written: Mutex<HashSet<BlobId>>,
    data: Mutex<Packer>,
    trees: Mutex<Packer>,
    pending: Mutex<IndexFile>,
    blobs_added: AtomicU64,
    bytes_added: AtomicU64,
    packs_written: AtomicUsize,
}

impl<'a> Sink<'a> {
    fn new(dest: &'a Repository, dest_index: &'a Index, lock: &'a LockHealth) -> Self {
        let c = dest.config();
        Self {
            dest,
            dest_index,
            lock,
            written: Default::default(),
            data: Mutex::new(Packer::new(BlobType::Data, c.data_pack_size)),
            trees: Mutex::new(Packer::new(BlobType::Tree, c.tree_pack_size)),
            pending: Default::default(),
            blobs_added: Default::default(),
            bytes_added: Default::default(),
            packs_written: Default::default(),
        }
    }

    /// Adds blob `id` with `plain` as its content, unless the destination has it.
    fn offer(&self, sealer: &mut BlobSealer, t: BlobType, id: BlobId, plain: &[u8]) -> Result<()> {
        if self.dest_index.contains(&id) || !lock(&self.written).insert(id) {
            return Ok(());
        }
        let mut buf = Vec::with_capacity(NONCE_LEN + plain.len());
        buf.resize(NONCE_LEN, 0);
        buf.extend_from_slice(plain);
        let sealed = sealer.seal(self.dest.key(), t, id, buf);
        self.blobs_added.fetch_add(1, Ordering::Relaxed);
        self.bytes_added
            .fetch_add(sealed.bytes.len() as u64, Ordering::Relaxed);
        self.add(sealed)
    }

    fn add(&self, sealed: SealedBlob) -> Result<()> {
        let full = {
            let mut p = lock(self.packer(sealed.blob_type));
            p.add(&sealed);
            p.is_full().then(|| p.finish(self.dest.key()))
        };
        match full {
            Some(pack) => self.upload(pack),
            None => Ok(()),
        }
    }

    fn packer(&self, t: BlobType) -> &Mutex<Packer> {
        match t {
            BlobType::Data => &self.data,
            BlobType::Tree => &self.trees,
        }
    }

    /// Writes a pack; an index file follows every [`PACKS_PER_INDEX_FILE`] packs.
    fn upload(&self, pack: FinishedPack) -> Result<()> {
        let size = pack.bytes.len() as u64;
        self.dest.backend().write_owned(
            pack.blob_type.pack_file_type(),
            pack.id.as_bytes(),
            pack.bytes,
        )?;
        let n = self.packs_written.fetch_add(1, Ordering::Relaxed) + 1;
        failpoint::hit(&format!("copy-after-pack-{n}"));
        let full = {
            let mut pending = lock(&self.pending);
            pending.add_pack(pack.id, pack.blob_type, size, &pack.entries);
            (pending.packs.len() >= PACKS_PER_INDEX_FILE).then(|| std::mem::take(&mut *pending))
        };
        match full {
            Some(file) => self.save_index(&file),
            None => Ok(()),
        }
    }

    fn save_index(&self, file: &IndexFile) -> Result<()> {
        self.lock.check()?;
        self.dest.save_index(file)?;
        Ok(())
    }

    /// Writes the last packs, then the index file naming them.
    fn finish(&self) -> Result<()> {
        for t in [BlobType::Data, BlobType::Tree] {
            let pack = {
                let mut p = lock(self.packer(t));
                (!p.is_empty()).then(|| p.finish(self.dest.key()))
            };
            if let Some(pack) = pack {
                self.upload(pack)?;
            }
        }
        let rest = std::mem::take(&mut *lock(&self.pending));
        if !rest.packs.is_empty() {
            self.save_index(&rest)?;
        }
        Ok(())
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
