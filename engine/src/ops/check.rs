//! Integrity checks (format-spec/format.md, "Reading").
//!
//! The structure check reads keys, config, index files, snapshots, trees and the headers of tree
//! packs, and lists storage; it never reads a data pack, so it runs while data packs sit in a
//! cold storage class. `read_data` downloads packs, checks each pack id against the BLAKE3 of its
//! bytes, its header against the index, and authenticates every blob and its keyed hash. Every
//! problem names the pack or blob, and the snapshots and paths it damages.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::PathBuf;

use rayon::prelude::*;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::format::pack::{self, BlobOpener, BlobType};
use crate::format::snapshot::Snapshot;
use crate::format::tree::{Node, NodeKind, Tree};
use crate::id::{BlobId, IndexId, PackHasher, PackId, SnapshotId};
use crate::repo::index::{Index, IndexFile, IndexPack, LoadedIndex};
use crate::repo::lock::list_locks;
use crate::repo::repository::{host_and_user, now_local, read_key_file, Repository};
use crate::storage::FileType;
use crate::units::{parse_percent, parse_size, ParseError};

/// Which packs `--read-data` covers.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub enum ReadData {
    /// None: structure only.
    None,
    /// Every pack.
    All,
    /// Slice `n` of `t` (1-based): packs whose id's first 8 bytes, modulo `t`, equal `n - 1`.
    Slice(u32, u32),
    /// A random share, in percent.
    Percent(f64),
    /// Random packs up to this many bytes.
    Bytes(u64),
}

impl std::str::FromStr for ReadData {
    type Err = ParseError;
    fn from_str(s: &str) -> std::result::Result<Self, ParseError> {
        if let Some((n, t)) = s.split_once('/') {
            let bad = || ParseError::Subset(s.to_string());
            let n: u32 = n.parse().map_err(|_| bad())?;
            let t: u32 = t.parse().map_err(|_| bad())?;
            if n == 0 || t == 0 || n > t {
                return Err(ParseError::SubsetBounds(s.to_string()));
            }
            return Ok(ReadData::Slice(n, t));
        }
        if let Some(p) = s.strip_suffix('%') {
            let v = parse_percent(p, s)?;
            if !(v > 0.0 && v <= 100.0) {
                return Err(ParseError::PercentRange {
                    input: s.to_string(),
                    allowed: "must be above 0 and at most 100",
                });
            }
            return Ok(ReadData::Percent(v));
        }
        // A bare number is refused: 10 would read 10 bytes where 10% was meant.
        if !s.ends_with(|c: char| c.is_ascii_alphabetic()) {
            return Err(ParseError::Subset(s.to_string()));
        }
        parse_size(s)
            .map(ReadData::Bytes)
            .map_err(|_| ParseError::Subset(s.to_string()))
    }
}

/// How bad a problem is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Damage: data a snapshot needs is missing or does not verify.
    Error,
    /// Wasted space or a stale lock: nothing is lost.
    Warning,
}

impl std::fmt::Display for Severity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        })
    }
}

/// One problem found.
#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    /// Damage, or wasted space and stale locks.
    pub severity: Severity,
    /// What is affected: `pack <id>`, `blob <id>`, `index file <id>`...
    pub object: String,
    /// What is wrong.
    pub message: String,
}

/// A file or folder a damaged blob breaks.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, PartialOrd, Ord)]
pub struct DamagedPath {
    /// The snapshot.
    pub snapshot: String,
    /// The path inside it.
    #[serde(serialize_with = "crate::report::lossy_path")]
    pub path: PathBuf,
}

/// The outcome of a check.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CheckReport {
    /// Every problem, errors first.
    pub problems: Vec<Problem>,
    /// Snapshot paths that need a damaged or missing blob.
    pub damaged_paths: Vec<DamagedPath>,
    /// Snapshots checked.
    pub snapshots: usize,
    /// Packs in the index.
    pub packs: usize,
    /// Blobs in the index.
    pub blobs: usize,
    /// Packs whose contents were read.
    pub packs_read: usize,
    /// Bytes read for `--read-data`.
    pub bytes_read: u64,
    /// Data packs selected for reading but left unread because they are archived.
    pub data_not_read: usize,
}

impl CheckReport {
    /// Number of errors (damage).
    pub fn errors(&self) -> usize {
        self.problems
            .iter()
            .filter(|p| p.severity == Severity::Error)
            .count()
    }
}

struct Checker {
    report: CheckReport,
    /// Blobs found damaged or missing.
    bad_blobs: HashSet<BlobId>,
}

impl Checker {
    fn error(&mut self, object: String, message: impl Into<String>) {
        self.report.problems.push(Problem {
            severity: Severity::Error,
            object,
            message: message.into(),
        });
    }
    fn warning(&mut self, object: String, message: impl Into<String>) {
        self.report.problems.push(Problem {
            severity: Severity::Warning,
            object,
            message: message.into(),
        });
    }
}

fn selected(id: &PackId, how: ReadData, size: u64, budget: &mut u64) -> bool {
    let key = u64::from_le_bytes(id.as_bytes()[..8].try_into().unwrap_or([0; 8]));
    match how {
        ReadData::None => false,
        ReadData::All => true,
        ReadData::Slice(n, t) => key % t as u64 == (n - 1) as u64,
        ReadData::Percent(p) => rand::random::<f64>() * 100.0 < p,
        ReadData::Bytes(_) => {
            if *budget >= size {
                *budget -= size;
                true
            } else {
                false
            }
        }
    }
}

/// What to do with the data packs a check is about to read, some of which may be archived.
pub enum ReadGate {
    /// Read them, waiting at the gate for those still thawing (`None`: all are readable).
    Go(Option<crate::cold::thaw::PackGate>),
    /// Read no data pack: the report says so ([`CheckReport::data_not_read`]).
    Stop,
}

/// Checks the repository; `read_data` selects packs whose contents are read and verified.
/// `progress(done, total)` is called as packs are read (from several threads).
pub fn check(
    repo: &Repository,
    read_data: ReadData,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<CheckReport> {
    check_gated(repo, None, read_data, progress, &|_| Ok(ReadGate::Go(None)))
}

/// As [`check`]; before reading, `gate` is shown the data packs to be read and decides whether
/// and how to go on (see [`crate::cold::thaw`]).
/// `only` names the snapshots whose trees are walked (`None`: all). With a selection, the data
/// packs `read_data` chooses from are those holding blobs of the selected snapshots, and blobs no
/// selected snapshot uses are not reported as unused.
pub fn check_gated(
    repo: &Repository,
    only: Option<&HashSet<SnapshotId>>,
    read_data: ReadData,
    progress: &(dyn Fn(usize, usize) + Sync),
    gate: &dyn Fn(&BTreeSet<PackId>) -> Result<ReadGate>,
) -> Result<CheckReport> {
    let mut c = Checker {
        report: CheckReport::default(),
        bad_blobs: HashSet::new(),
    };
    c.check_keys(repo)?;
    let loaded = c.load_index(repo)?;
    let packs: BTreeMap<PackId, IndexPack> = loaded.packs().into_iter().collect();
    c.report.packs = packs.len();
    c.report.blobs = loaded.index.len();
    let mut present = c.check_packs(repo, &packs)?;
    let snapshots = c.load_snapshots(repo, only)?;
    if only.is_some() {
        let roots: Vec<BlobId> = snapshots.iter().map(|(_, s)| s.tree).collect();
        let needed = crate::repo::walk::reachable_blobs(repo, &loaded.index, &roots);
        let holding: HashSet<PackId> = needed
            .iter()
            .filter_map(|b| loaded.index.get(b).map(|l| l.pack))
            .collect();
        present.retain(|p| p.blob_type == BlobType::Tree || holding.contains(&p.id));
    }
    c.read_packs(repo, &present, read_data, progress, gate)?;
    c.check_trees(repo, &loaded.index, &snapshots, only.is_none());
    c.check_locks(repo)?;
    c.report
        .problems
        .sort_by_key(|p| p.severity != Severity::Error);
    Ok(c.report)
}

impl Checker {
    /// Key files: each must be named by its hash and parse.
    fn check_keys(&mut self, repo: &Repository) -> Result<()> {
        for k in repo.backend().list(FileType::Key)? {
            let object = format!("key file {}", hex::encode(k.id));
            match read_key_file(repo.backend().as_ref(), &k.id) {
                Ok(_) => {}
                Err(Error::Corrupt { reason, .. }) => self.error(object, reason),
                Err(e) => self.error(object, e.to_string()),
            }
        }
        Ok(())
    }

    /// Index files, one by one, so that one damaged file is reported, not fatal.
    fn load_index(&mut self, repo: &Repository) -> Result<LoadedIndex> {
        let mut files = Vec::new();
        for f in repo.backend().list(FileType::Index)? {
            match repo.load_file::<IndexFile>(FileType::Index, &f.id) {
                Ok(file) => files.push((IndexId::from_bytes(f.id), file)),
                Err(e) => self.error(format!("index file {}", hex::encode(f.id)), e.to_string()),
            }
        }
        Ok(LoadedIndex::from_files(files))
    }

    /// Packs: present, of the recorded size; orphans are warnings. Returns the present ones.
    fn check_packs<'p>(
        &mut self,
        repo: &Repository,
        packs: &'p BTreeMap<PackId, IndexPack>,
    ) -> Result<Vec<&'p IndexPack>> {
        let stored = repo.list_packs()?;
        let mut present = Vec::new();
        for (id, p) in packs {
            match stored.get(id).map(|s| s.size) {
                None => {
                    self.error(
                        format!("pack {id}"),
                        format!("missing: the index names it with {} blob(s)", p.blobs.len()),
                    );
                    self.bad_blobs.extend(p.blobs.iter().map(|b| b.id));
                }
                Some(size) if size != p.size => {
                    self.error(
                        format!("pack {id}"),
                        format!("holds {size} bytes, the index says {}", p.size),
                    );
                    self.bad_blobs.extend(p.blobs.iter().map(|b| b.id));
                }
                Some(_) => present.push(p),
            }
        }
        let orphans = stored.keys().filter(|id| !packs.contains_key(id)).count();
        if orphans > 0 {
            self.warning("packs".into(), format!("{orphans} pack(s) are named by no index (left by an interrupted backup; prune removes them)"));
        }
        Ok(present)
    }

    /// Tree pack headers are read (tree packs stay hot); data packs only with `read_data`, once
    /// the gate lets them be read.
    fn read_packs(
        &mut self,
        repo: &Repository,
        present: &[&IndexPack],
        read_data: ReadData,
        progress: &(dyn Fn(usize, usize) + Sync),
        gate: &dyn Fn(&BTreeSet<PackId>) -> Result<ReadGate>,
    ) -> Result<()> {
        let mut budget = match read_data {
            ReadData::Bytes(b) => b,
            _ => 0,
        };
        let mut to_read: Vec<&IndexPack> = present
            .iter()
            .copied()
            .filter(|p| selected(&p.id, read_data, p.size, &mut budget))
            .collect();
        let read_set: HashSet<PackId> = to_read.iter().map(|p| p.id).collect();
        for p in present
            .iter()
            .filter(|p| p.blob_type == BlobType::Tree && !read_set.contains(&p.id))
        {
            if let Err(e) = check_header(repo, p) {
                self.error(format!("pack {}", p.id), e.to_string());
                self.bad_blobs.extend(p.blobs.iter().map(|b| b.id));
            }
        }
        let data_to_read: BTreeSet<PackId> = to_read
            .iter()
            .filter(|p| p.blob_type == BlobType::Data)
            .map(|p| p.id)
            .collect();
        if !data_to_read.is_empty() {
            match gate(&data_to_read)? {
                ReadGate::Go(None) => {}
                // Every pack is verified in one pass: wait until all have thawed.
                ReadGate::Go(Some(g)) => g.wait_all()?,
                ReadGate::Stop => {
                    self.report.data_not_read = data_to_read.len();
                    to_read.retain(|p| p.blob_type == BlobType::Tree);
                }
            }
        }
        self.verify_packs(repo, &to_read, progress);
        Ok(())
    }

    /// Reads and verifies `to_read` in parallel.
    fn verify_packs(
        &mut self,
        repo: &Repository,
        to_read: &[&IndexPack],
        progress: &(dyn Fn(usize, usize) + Sync),
    ) {
        let (done, total) = (std::sync::atomic::AtomicUsize::new(0), to_read.len());
        let results: Vec<(PackId, u64, PackVerdict)> = repo.in_io_pool(|| {
            to_read
                .par_iter()
                .map(|p| {
                    let r = read_pack(repo, p);
                    progress(
                        done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1,
                        total,
                    );
                    (p.id, p.size, r)
                })
                .collect()
        });
        for (id, size, r) in results {
            if r == Ok(false) {
                self.report.data_not_read += 1;
                self.warning(
                    format!("pack {id}"),
                    "archived and not readable: not verified".to_string(),
                );
                continue;
            }
            self.report.packs_read += 1;
            self.report.bytes_read += size;
            if let Err((msg, blobs)) = r {
                self.error(format!("pack {id}"), msg);
                self.bad_blobs.extend(blobs);
            }
        }
    }

    /// Every snapshot file that decodes (of `only`, when given); the others are errors.
    fn load_snapshots(
        &mut self,
        repo: &Repository,
        only: Option<&HashSet<SnapshotId>>,
    ) -> Result<Vec<(SnapshotId, Snapshot)>> {
        let mut snapshots = Vec::new();
        for s in repo.backend().list(FileType::Snapshot)? {
            let id = SnapshotId::from_bytes(s.id);
            if only.is_some_and(|o| !o.contains(&id)) {
                continue;
            }
            match repo.load_file::<Snapshot>(FileType::Snapshot, &s.id) {
                Ok(snap) => snapshots.push((id, snap)),
                Err(e) => self.error(format!("snapshot {id}"), e.to_string()),
            }
        }
        self.report.snapshots = snapshots.len();
        Ok(snapshots)
    }

    /// Walks every snapshot's trees: each tree readable, each needed blob indexed; the paths that
    /// need a damaged blob are reported, and indexed blobs no snapshot uses are a warning.
    fn check_trees(
        &mut self,
        repo: &Repository,
        index: &Index,
        snapshots: &[(SnapshotId, Snapshot)],
        all_snapshots: bool,
    ) {
        let mut walk = TreeWalk {
            used: HashSet::new(),
            seen_trees: HashSet::new(),
        };
        for (_, snap) in snapshots {
            self.walk_snapshot(repo, index, snap, &mut walk);
        }
        if self.bad_blobs.iter().any(|b| walk.used.contains(b)) {
            self.report.damaged_paths = self.damaged_paths(repo, index, snapshots);
        }
        let used = walk.used;
        let unused = index
            .len()
            .saturating_sub(used.iter().filter(|b| index.contains(b)).count());
        if unused > 0 && all_snapshots {
            self.warning(
                "blobs".into(),
                format!("{unused} indexed blob(s) are used by no snapshot (prune removes them)"),
            );
        }
    }

    /// One snapshot's trees, depth first; a tree already walked is not walked again. Finds the
    /// damaged and missing blobs; [`Checker::damaged_paths`] then names the paths they break.
    fn walk_snapshot(
        &mut self,
        repo: &Repository,
        index: &Index,
        snap: &Snapshot,
        walk: &mut TreeWalk,
    ) {
        let mut stack = vec![snap.tree];
        while let Some(tree_id) = stack.pop() {
            walk.used.insert(tree_id);
            let first_visit = walk.seen_trees.insert(tree_id);
            let Some(tree) = self.load_tree(repo, index, &tree_id, first_visit) else {
                continue;
            };
            for node in &tree.nodes {
                self.check_node(index, node, &mut walk.used);
                if let (NodeKind::Dir, Some(sub), true) = (node.kind, node.subtree, first_visit) {
                    stack.push(sub);
                }
            }
        }
    }

    /// Every path, in every snapshot, that needs a damaged or missing blob. A tree shared by
    /// snapshots (or folders) was walked once; here each snapshot is walked again, but only into
    /// the trees with damage at or below them. Finding those reads every tree once more, which
    /// is paid only when some snapshot needs a damaged blob; each of them is then read once.
    fn damaged_paths(
        &self,
        repo: &Repository,
        index: &Index,
        snapshots: &[(SnapshotId, Snapshot)],
    ) -> Vec<DamagedPath> {
        let roots: Vec<BlobId> = snapshots.iter().map(|(_, s)| s.tree).collect();
        let tainted = self.tainted_trees(repo, index, &roots);
        let mut read: HashMap<BlobId, Option<Tree>> = HashMap::new();
        let mut damaged = Vec::new();
        for (sid, snap) in snapshots {
            let mut stack = vec![(snap.tree, PathBuf::from("/"))];
            while let Some((tree_id, at)) = stack.pop() {
                if !tainted.contains(&tree_id) {
                    continue;
                }
                let tree = read
                    .entry(tree_id)
                    .or_insert_with(|| self.readable_tree(repo, index, &tree_id));
                let Some(tree) = tree else {
                    damaged.push(DamagedPath {
                        snapshot: sid.short(),
                        path: at,
                    });
                    continue;
                };
                for node in &tree.nodes {
                    let path = at.join(node.name.as_os());
                    if self.needs_bad_blob(node) {
                        damaged.push(DamagedPath {
                            snapshot: sid.short(),
                            path: path.clone(),
                        });
                    }
                    if let (NodeKind::Dir, Some(sub)) = (node.kind, node.subtree) {
                        stack.push((sub, path));
                    }
                }
            }
        }
        damaged.sort();
        damaged.dedup();
        damaged
    }

    /// The trees under `roots` with a damaged or missing blob at or below them, each tree read
    /// once (children before their parent, on an explicit stack).
    fn tainted_trees(&self, repo: &Repository, index: &Index, roots: &[BlobId]) -> HashSet<BlobId> {
        let mut known: HashMap<BlobId, bool> = HashMap::new();
        let mut stack: Vec<(BlobId, Option<Tree>)> = roots.iter().map(|r| (*r, None)).collect();
        while let Some((id, read)) = stack.pop() {
            if let Some(tree) = read {
                let bad = tree.nodes.iter().any(|n| {
                    self.needs_bad_blob(n)
                        || n.subtree.is_some_and(|s| known.get(&s) == Some(&true))
                });
                known.insert(id, bad);
                continue;
            }
            if known.contains_key(&id) {
                continue;
            }
            let Some(tree) = self.readable_tree(repo, index, &id) else {
                known.insert(id, true);
                continue;
            };
            let subtrees: Vec<BlobId> = tree.nodes.iter().filter_map(|n| n.subtree).collect();
            stack.push((id, Some(tree)));
            stack.extend(subtrees.into_iter().map(|s| (s, None)));
        }
        known
            .into_iter()
            .filter(|(_, bad)| *bad)
            .map(|(id, _)| id)
            .collect()
    }

    /// A tree the walk found sound, read again; `None` for one found damaged or missing.
    fn readable_tree(&self, repo: &Repository, index: &Index, id: &BlobId) -> Option<Tree> {
        if self.bad_blobs.contains(id) || !index.contains(id) {
            return None;
        }
        repo.load_tree(index, id).ok()
    }

    /// True when a node's content needs a damaged or missing blob.
    fn needs_bad_blob(&self, node: &Node) -> bool {
        node.content
            .iter()
            .flatten()
            .any(|b| self.bad_blobs.contains(b))
    }

    /// A tree, or `None` when it is damaged (reported on the first visit only).
    fn load_tree(
        &mut self,
        repo: &Repository,
        index: &Index,
        tree_id: &BlobId,
        first_visit: bool,
    ) -> Option<Tree> {
        if self.bad_blobs.contains(tree_id) {
            return None;
        }
        match repo.load_tree(index, tree_id) {
            Ok(t) => Some(t),
            Err(e) => {
                if first_visit {
                    self.error(format!("tree blob {tree_id}"), e.to_string());
                }
                self.bad_blobs.insert(*tree_id);
                None
            }
        }
    }

    /// Marks a node's blobs used and reports those not indexed.
    fn check_node(&mut self, index: &Index, node: &Node, used: &mut HashSet<BlobId>) {
        for b in node.content.iter().flatten() {
            used.insert(*b);
            if !index.contains(b) && self.bad_blobs.insert(*b) {
                self.error(format!("blob {b}"), "needed by a file but not in the index");
            }
        }
        if let (NodeKind::Dir, Some(sub)) = (node.kind, node.subtree) {
            if !index.contains(&sub) && self.bad_blobs.insert(sub) {
                self.error(
                    format!("tree blob {sub}"),
                    "needed by a folder but not in the index",
                );
            }
        }
    }

    /// Locks: stale ones are warnings, unreadable ones errors.
    fn check_locks(&mut self, repo: &Repository) -> Result<()> {
        let (host, ..) = host_and_user();
        let now = now_local();
        for (id, l) in list_locks(repo)? {
            match l {
                Ok(l) if l.is_stale(now, &host) => self.warning(
                    format!("lock {}", id.short()),
                    format!("stale: {}", l.describe()),
                ),
                Ok(_) => {}
                // Released (or refreshed under a new name) between listing and reading.
                Err(Error::Backend(crate::storage::BackendError::NotFound { .. })) => {}
                Err(e) => self.error(format!("lock {}", id.short()), e.to_string()),
            }
        }
        Ok(())
    }
}

/// What the walk of every snapshot's trees gathers.
struct TreeWalk {
    /// Blobs some snapshot uses.
    used: HashSet<BlobId>,
    /// Trees already walked.
    seen_trees: HashSet<BlobId>,
}

fn check_header(repo: &Repository, p: &IndexPack) -> Result<()> {
    let header = repo.read_pack_header(p.blob_type, &p.id, p.size)?;
    if header.entries() != p.entries() {
        return Err(Error::corrupt(
            crate::error::Object::Pack(p.id),
            "pack header and index disagree",
        ));
    }
    Ok(())
}

/// The result of reading a pack: `Ok(true)` read and sound, `Ok(false)` not readable because it
/// is archived (not damage), on failure the message and the blobs affected.
type PackVerdict = std::result::Result<bool, (String, Vec<BlobId>)>;

/// Reads a whole pack: id, header, every blob. Local storage is read blob by blob, so that a
/// reader holds one blob rather than a pack; remote storage in one request. A pack that does
/// not read cleanly that way is read again whole, for the diagnosis.
fn read_pack(repo: &Repository, p: &IndexPack) -> PackVerdict {
    if repo.backend().is_remote() {
        return read_whole_pack(repo, p);
    }
    match read_pack_in_pieces(repo, p) {
        Some(verdict) => verdict,
        None => read_whole_pack(repo, p),
    }
}

/// Reads a pack blob by blob in pack order, hashing as it goes, then the header. `None` when
/// something did not read, or the index does not describe a pack laid out as the format lays
/// packs out: the whole pack is then read to say what is wrong.
fn read_pack_in_pieces(repo: &Repository, p: &IndexPack) -> Option<PackVerdict> {
    let (bt, entries) = (p.blob_type, p.entries());
    let mut end = 0u64;
    for e in &entries {
        if e.offset as u64 != end {
            return None;
        }
        end += e.length as u64;
    }
    if end + pack::TRAILER_LEN as u64 > p.size {
        return None;
    }
    let backend = repo.backend();
    let read = |offset: u64, length: u64, buf: &mut Vec<u8>| {
        backend
            .read_range_into(bt.pack_file_type(), p.id.as_bytes(), offset, length, buf)
            .ok()
    };
    let (mut hasher, mut buf, mut opener) = (PackHasher::default(), Vec::new(), BlobOpener::new());
    let mut bad = Vec::new();
    for e in &entries {
        read(e.offset as u64, e.length as u64, &mut buf)?;
        hasher.update(&buf);
        if opener.open(repo.key(), &p.id, e, &mut buf).is_err() {
            bad.push(e.id);
        }
    }
    read(end, p.size.checked_sub(end)?, &mut buf)?;
    hasher.update(&buf);
    if hasher.finish() != p.id {
        return None;
    }
    // The pack is the one written: its header must say what the index says.
    let tl = pack::TRAILER_LEN;
    let header_ok = buf.len() >= tl
        && pack::header_length(&p.id, &buf[buf.len() - tl..], p.size)
            .is_ok_and(|hl| hl as usize + tl == buf.len())
        && {
            buf.truncate(buf.len() - tl);
            pack::decode_header(repo.key(), &p.id, bt, buf, p.size).is_ok_and(|h| h == entries)
        };
    if !header_ok {
        return None;
    }
    Some(blobs_verdict(bad))
}

/// Reads a whole pack in one request: id, header, every blob.
fn read_whole_pack(repo: &Repository, p: &IndexPack) -> PackVerdict {
    let all = || p.blobs.iter().map(|b| b.id).collect::<Vec<_>>();
    let bt = p.blob_type;
    let mut bytes = match repo.backend().read(bt.pack_file_type(), p.id.as_bytes()) {
        Ok(b) => b,
        // Archived since the plan was made (a thawed copy expired): not read, not damaged.
        Err(crate::error::BackendError::NeedsThaw { .. }) => return Ok(false),
        Err(e) => return Err((e.to_string(), all())),
    };
    if PackId::hash_of(&bytes) != p.id {
        // The bytes changed; find which blobs are still good.
        let mut opener = BlobOpener::new();
        let bad: Vec<BlobId> = p
            .entries()
            .iter()
            .filter(|e| {
                let range = e.offset as usize..e.offset as usize + e.length as usize;
                match bytes.get(range) {
                    Some(s) => opener.open(repo.key(), &p.id, e, &mut s.to_vec()).is_err(),
                    None => true,
                }
            })
            .map(|e| e.id)
            .collect();
        let msg = if bad.is_empty() {
            "content does not hash to its id (the damage is outside the blobs)".to_string()
        } else {
            format!(
                "content does not hash to its id; {} blob(s) fail to authenticate: {}",
                bad.len(),
                bad.iter()
                    .map(|b| b.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        return Err((msg, if bad.is_empty() { all() } else { bad }));
    }
    match pack::parse_pack(repo.key(), &p.id, bt, &bytes) {
        Ok(h) if h == p.entries() => {}
        Ok(_) => return Err(("pack header and index disagree".into(), all())),
        Err(e) => return Err((e.to_string(), all())),
    }
    let mut opener = BlobOpener::new();
    let mut bad = Vec::new();
    // The pack's hash and header are verified: each blob is opened in place, no copy.
    for e in p.entries() {
        let sealed = &mut bytes[e.offset as usize..e.offset as usize + e.length as usize];
        if opener.open(repo.key(), &p.id, &e, sealed).is_err() {
            bad.push(e.id);
        }
    }
    blobs_verdict(bad)
}

/// The verdict on a pack whose bytes are the ones written, given the blobs that did not open.
fn blobs_verdict(bad: Vec<BlobId>) -> PackVerdict {
    if bad.is_empty() {
        Ok(true)
    } else {
        let names: Vec<String> = bad.iter().map(|b| b.to_string()).collect();
        Err((
            format!(
                "{} blob(s) fail to authenticate: {}",
                bad.len(),
                names.join(", ")
            ),
            bad,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{backup_dir, memory_repo, noise, write_files};
    use std::path::Path;

    fn quiet(_: usize, _: usize) {}

    #[test]
    fn a_clean_repository_has_no_errors_and_a_lost_pack_names_what_it_breaks() {
        let repo = memory_repo();
        let src = tempfile::tempdir().unwrap();
        write_files(src.path(), &[("a", &noise(2, 50_000)), ("b", b"tiny")]);
        backup_dir(&repo, src.path(), &[]);
        let clean = check(&repo, ReadData::All, &quiet).unwrap();
        assert_eq!(clean.errors(), 0, "{:?}", clean.problems);
        assert_eq!(clean.snapshots, 1);
        assert_eq!(clean.packs_read, clean.packs);

        let data = repo.backend().list(FileType::DataPack).unwrap();
        assert_eq!(data.len(), 1, "both files fit one data pack");
        repo.backend()
            .remove(FileType::DataPack, &data[0].id)
            .unwrap();
        let report = check(&repo, ReadData::None, &quiet).unwrap();
        assert!(report.errors() >= 1);
        let lost = PackId::from_bytes(data[0].id);
        assert!(
            report.problems.iter().any(|p| p.severity == Severity::Error
                && p.object == format!("pack {lost}")
                && p.message.starts_with("missing")),
            "{:?}",
            report.problems
        );
        let damaged: Vec<&Path> = report
            .damaged_paths
            .iter()
            .map(|d| d.path.as_path())
            .collect();
        assert!(
            damaged.contains(&src.path().join("a").as_path()),
            "{damaged:?}"
        );
        assert!(
            damaged.contains(&src.path().join("b").as_path()),
            "{damaged:?}"
        );
        assert_eq!(
            report.problems[0].severity,
            Severity::Error,
            "errors come first"
        );
    }

    #[test]
    fn subsets_parse_and_bad_ones_say_why() {
        assert_eq!("2/5".parse::<ReadData>(), Ok(ReadData::Slice(2, 5)));
        assert_eq!("10%".parse::<ReadData>(), Ok(ReadData::Percent(10.0)));
        assert_eq!("1M".parse::<ReadData>(), Ok(ReadData::Bytes(1 << 20)));
        assert_eq!(
            "0/5".parse::<ReadData>().unwrap_err().to_string(),
            "subset \"0/5\": need 1 <= n <= t"
        );
        assert_eq!(
            "0%".parse::<ReadData>().unwrap_err().to_string(),
            "percentage \"0%\" must be above 0 and at most 100"
        );
        let bare = "10".parse::<ReadData>().unwrap_err().to_string();
        assert!(
            bare.contains("n/t") && bare.contains("x%") && bare.contains("2G"),
            "{bare}"
        );
        assert!("10X".parse::<ReadData>().is_err());
    }
}
