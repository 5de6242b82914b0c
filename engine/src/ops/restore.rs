//! Restore: plan every file's blobs, read each pack once, decrypt and write in parallel, then set
//! metadata bottom-up (ARCHITECTURE.md, "Restore").
//!
//! Files are created at their final size and zero blocks are not written, so sparse files stay
//! sparse. A file whose blobs fail to read or authenticate is removed and reported: restore never
//! leaves damaged bytes behind as if they were good.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rayon::prelude::*;

use crate::attrs::{self, XattrFilter, XattrProblems, XattrWarning};
use crate::cold::thaw::PackGate;
use crate::error::{Error, Result};
use crate::exclude::PathMatcher;
use crate::format::pack::{BlobOpener, PackEntry};
use crate::format::snapshot::Snapshot;
use crate::format::tree::{Node, NodeKind, Tree};
use crate::id::{BlobId, PackId};
use crate::repo::index::Index;
use crate::repo::repository::Repository;
use crate::repo::walk::resolve;

/// Holes shorter than this are written as zeros.
const SPARSE_BLOCK: usize = 64 * 1024;
/// Blobs of one pack closer than this are fetched in one read.
const MAX_READ_GAP: u64 = 256 * 1024;
/// Files a restoring thread keeps open at once.
const MAX_OPEN_FILES: usize = 32;
/// Largest single read.
const MAX_READ: u64 = 8 << 20;

/// How to restore.
#[derive(Debug, Clone, Default)]
pub struct RestoreOptions {
    /// Destination folder (created if missing).
    pub target: PathBuf,
    /// Restore only entries matching (or inside an entry matching) one of these patterns.
    pub includes: Vec<String>,
    /// Leave out entries matching (or inside an entry matching) one of these patterns.
    pub excludes: Vec<String>,
    /// Replace existing files instead of refusing.
    pub overwrite: bool,
    /// Parallel pack readers (0: two per core).
    pub threads: usize,
    /// Data packs that are not readable yet (archived, thawing) and how to wait for them;
    /// `None`: every pack is read at once.
    pub gate: Option<PackGate>,
    /// Where the restore reports the bytes it writes.
    pub progress: crate::progress::ProgressSink,
    /// Restore only the extended attributes matching one of these patterns (all when empty).
    pub include_xattrs: Vec<String>,
    /// Do not restore the extended attributes matching one of these patterns.
    pub exclude_xattrs: Vec<String>,
}

/// A file that could not be restored.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RestoreError {
    /// Where it was to be written.
    pub path: PathBuf,
    /// Why it was not.
    pub message: String,
}

/// The outcome of a restore.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct RestoreSummary {
    /// Regular files restored.
    pub files: u64,
    /// Folders restored.
    pub dirs: u64,
    /// Links, fifos and devices restored.
    pub others: u64,
    /// Entries recorded but not restored: sockets, and device nodes when not run as root.
    pub skipped: u64,
    /// Bytes of file content restored.
    pub bytes: u64,
    /// Failures (damaged or missing data, local write errors).
    pub errors: Vec<RestoreError>,
    /// Extended attributes that could not be set, one entry per namespace and reason.
    pub xattr_warnings: Vec<XattrWarning>,
}

struct PlannedFile {
    path: PathBuf,
    node: Node,
    /// Restore as a hard link to this earlier file.
    link_to: Option<usize>,
}

#[derive(Default)]
struct Plan {
    dirs: Vec<(PathBuf, Node)>,
    files: Vec<PlannedFile>,
    others: Vec<(PathBuf, Node)>,
}

struct Filter {
    includes: PathMatcher,
    excludes: PathMatcher,
}

impl Filter {
    /// `Some(true)`: selected with everything below; `Some(false)`: look at children; `None`: skip.
    fn select(&self, snap_path: &Path, inherited: bool) -> Option<bool> {
        if self.excludes.matches(snap_path) {
            return None;
        }
        Some(inherited || self.includes.is_empty() || self.includes.matches(snap_path))
    }
}

fn is_root() -> bool {
    static ROOT: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ROOT.get_or_init(|| nix::unistd::geteuid().is_root())
}

/// What planning needs besides the tree at hand.
struct Planner<'a> {
    repo: &'a Repository,
    index: &'a Index,
    filter: Filter,
}

fn plan_tree(
    ctx: &Planner<'_>,
    tree: &Tree,
    dest: &Path,
    snap_path: &Path,
    inherited: bool,
    plan: &mut Plan,
) -> Result<bool> {
    let filter = &ctx.filter;
    let mut any = false;
    for node in &tree.nodes {
        let name = node.name.as_os();
        let path = dest.join(name);
        let sp = snap_path.join(name);
        let Some(selected) = filter.select(&sp, inherited) else {
            continue;
        };
        match node.kind {
            NodeKind::Dir => {
                let at = plan.dirs.len();
                plan.dirs.push((path.clone(), node.clone()));
                let sub = match node.subtree {
                    Some(id) => ctx.repo.load_tree(ctx.index, &id)?,
                    None => Tree::default(),
                };
                let inner = plan_tree(ctx, &sub, &path, &sp, selected, plan)?;
                if selected || inner {
                    any = true;
                } else {
                    plan.dirs.remove(at);
                }
            }
            _ if !selected => {}
            NodeKind::File => {
                plan.files.push(PlannedFile {
                    path,
                    node: node.clone(),
                    link_to: None,
                });
                any = true;
            }
            _ => {
                plan.others.push((path, node.clone()));
                any = true;
            }
        }
    }
    Ok(any)
}

/// One blob to fetch and where its plaintext goes.
struct BlobJob {
    entry: PackEntry,
    targets: Vec<(usize, u64)>,
}

fn write_sparse(f: &File, offset: u64, data: &[u8]) -> io::Result<()> {
    let mut pos = 0;
    while pos < data.len() {
        // Skip zero blocks, then write the run of blocks up to the next zero block.
        let end = (pos + SPARSE_BLOCK).min(data.len());
        if data[pos..end].iter().all(|&b| b == 0) {
            pos = end;
            continue;
        }
        let mut run_end = end;
        while run_end < data.len() {
            let next = (run_end + SPARSE_BLOCK).min(data.len());
            if data[run_end..next].iter().all(|&b| b == 0) {
                break;
            }
            run_end = next;
        }
        f.write_all_at(&data[pos..run_end], offset + pos as u64)?;
        pos = run_end;
    }
    Ok(())
}

/// Opens a file for writing, creating it (0600 until its metadata is set) at its final length;
/// unwritten ranges stay holes.
fn open_at_size(path: &Path, size: u64) -> io::Result<File> {
    let f = OpenOptions::new()
        .write(true)
        .create(true)
        // Another thread may already have written blobs of this file.
        .truncate(false)
        .mode(0o600)
        .open(path)?;
    f.set_len(size)?;
    Ok(f)
}

fn set_owner(path: &Path, node: &Node) -> io::Result<()> {
    if is_root() {
        std::os::unix::fs::lchown(path, Some(node.uid), Some(node.gid))?;
    }
    Ok(())
}

/// Sets atime and mtime to the node's mtime, without following a symlink and without opening the
/// entry (opening a fifo would block).
fn set_times(path: &Path, node: &Node) -> io::Result<()> {
    use nix::sys::stat::{utimensat, UtimensatFlags};
    use nix::sys::time::TimeSpec;
    // A leap second (second 60) is held as nanoseconds past 10^9, which utimensat refuses
    // or, at two values, takes for UTIME_NOW or UTIME_OMIT.
    let t = TimeSpec::new(
        node.mtime.timestamp(),
        node.mtime.timestamp_subsec_nanos().min(999_999_999) as _,
    );
    utimensat(None, path, &t, &t, UtimensatFlags::NoFollowSymlink).map_err(io::Error::from)
}

/// Sets entries' metadata, and gathers the extended attributes it could not set.
struct MetaWriter {
    xattrs: XattrFilter,
    problems: XattrProblems,
    /// The snapshot's repository records attributes (format version 2 on): an entry without
    /// any had none, rather than none recorded.
    recorded: bool,
}

impl MetaWriter {
    fn new(repo: &Repository, opts: &RestoreOptions) -> Result<Self> {
        Ok(Self {
            xattrs: XattrFilter::new(&opts.include_xattrs, &opts.exclude_xattrs)?,
            problems: XattrProblems::default(),
            recorded: repo.config().records_xattrs(),
        })
    }

    /// Owner, then extended attributes (chown drops `security.capability`), then mode (after
    /// chown, which clears setuid and setgid bits; its group bits are an ACL's mask), then times.
    /// `made`: the restore created this entry, so attributes the snapshot lacks are removed
    /// from it; a folder that was already there keeps its own.
    fn set(&mut self, path: &Path, node: &Node, made: bool) -> io::Result<()> {
        set_owner(path, node)?;
        self.set_xattrs(path, node, made);
        fs::set_permissions(path, fs::Permissions::from_mode(node.mode))?;
        set_times(path, node)
    }

    fn set_xattrs(&mut self, path: &Path, node: &Node, made: bool) {
        let mode = attrs::WriteMode {
            is_root: is_root(),
            remove_extra: made && self.recorded,
        };
        attrs::write(path, &node.xattrs, &self.xattrs, mode, &mut self.problems);
    }
}

/// Removes whatever is at `path` (a file, link or empty folder) before it is replaced.
fn clear(path: &Path) -> io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => fs::remove_dir(path),
        Ok(_) => fs::remove_file(path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// A restore worked out from the snapshot's trees, not yet carried out: [`plan_restore`] makes
/// it, [`restore_planned`] runs it, and in between a caller can see which packs it reads.
pub struct RestorePlan(Plan);

impl RestorePlan {
    /// Bytes of file content the plan writes (hard links counted once) and the files.
    pub fn totals(&self) -> (u64, usize) {
        let bytes = self
            .0
            .files
            .iter()
            .filter(|f| f.link_to.is_none())
            .map(|f| f.node.size)
            .sum();
        (bytes, self.0.files.len())
    }

    /// True when the plan restores no entry at all (the filters matched nothing).
    pub fn is_empty(&self) -> bool {
        self.0.dirs.is_empty() && self.0.files.is_empty() && self.0.others.is_empty()
    }

    /// The data packs the restore reads.
    pub fn needed_packs(&self, index: &Index) -> std::collections::BTreeSet<PackId> {
        let mut out = std::collections::BTreeSet::new();
        for f in self.0.files.iter().filter(|f| f.link_to.is_none()) {
            for id in f.node.content.iter().flatten() {
                if let Some(loc) = index.get(id) {
                    out.insert(loc.pack);
                }
            }
        }
        out
    }
}

/// Plans a restore of `subpath` (empty for everything) without reading any data pack. Fails as
/// the restore would when it would overwrite files without `opts.overwrite`, so that nothing is
/// thawed for a restore that cannot run.
pub fn plan_restore(
    repo: &Repository,
    index: &Index,
    snap: &Snapshot,
    subpath: &str,
    opts: &RestoreOptions,
) -> Result<RestorePlan> {
    MetaWriter::new(repo, opts)?;
    let plan = build_plan(repo, index, snap, subpath, opts)?;
    existing_targets(&plan, opts)?;
    Ok(RestorePlan(plan))
}

/// The data packs a restore of `subpath` with these options reads (see [`plan_restore`]).
pub fn needed_packs(
    repo: &Repository,
    index: &Index,
    snap: &Snapshot,
    subpath: &str,
    opts: &RestoreOptions,
) -> Result<std::collections::BTreeSet<PackId>> {
    Ok(plan_restore(repo, index, snap, subpath, opts)?.needed_packs(index))
}

/// Restores `subpath` (empty for everything) of a snapshot into `opts.target`.
pub fn restore(
    repo: &Repository,
    index: &Index,
    snap: &Snapshot,
    subpath: &str,
    opts: &RestoreOptions,
) -> Result<RestoreSummary> {
    let plan = build_plan(repo, index, snap, subpath, opts)?;
    run_plan(repo, index, plan, opts)
}

/// Carries out a plan of [`plan_restore`] (the target is checked again: time may have passed).
pub fn restore_planned(
    repo: &Repository,
    index: &Index,
    plan: RestorePlan,
    opts: &RestoreOptions,
) -> Result<RestoreSummary> {
    run_plan(repo, index, plan.0, opts)
}

fn build_plan(
    repo: &Repository,
    index: &Index,
    snap: &Snapshot,
    subpath: &str,
    opts: &RestoreOptions,
) -> Result<Plan> {
    let ctx = Planner {
        repo,
        index,
        filter: Filter {
            includes: PathMatcher::new(&opts.includes)?,
            excludes: PathMatcher::new(&opts.excludes)?,
        },
    };
    let (node, tree) = resolve(repo, index, snap, subpath)?;
    let snap_root = Path::new("/").join(subpath.trim_start_matches('/'));
    let mut plan = Plan::default();
    match (node, tree) {
        (_, Some(tree)) => {
            plan_tree(&ctx, &tree, &opts.target, &snap_root, false, &mut plan)?;
        }
        (Some(n), None) => {
            // A single entry: it is restored into the target folder under its own name.
            let one = Tree { nodes: vec![n] };
            let parent = snap_root.parent().unwrap_or(Path::new("/")).to_path_buf();
            plan_tree(&ctx, &one, &opts.target, &parent, false, &mut plan)?;
        }
        (None, None) => unreachable!("resolve returns a tree for the root"),
    }

    // Hard links: the first file of each (device, inode) carries the content.
    let mut first_of: HashMap<(u64, u64), usize> = HashMap::new();
    for i in 0..plan.files.len() {
        let n = &plan.files[i].node;
        if n.links > 1 {
            match first_of.get(&(n.device_id, n.inode)) {
                Some(&j) => plan.files[i].link_to = Some(j),
                None => {
                    first_of.insert((n.device_id, n.inode), i);
                }
            }
        }
    }

    Ok(plan)
}

/// Paths of the plan that exist in the target; an error unless `opts.overwrite`.
fn existing_targets<'p>(plan: &'p Plan, opts: &RestoreOptions) -> Result<Vec<&'p PathBuf>> {
    // A target folder that does not exist yet holds nothing.
    let fresh_target = fs::symlink_metadata(&opts.target).is_err();
    let existing: Vec<&PathBuf> =
        plan.files
            .iter()
            .map(|f| &f.path)
            .chain(plan.others.iter().map(|(p, _)| p))
            .filter(|p| !fresh_target && fs::symlink_metadata(p).is_ok())
            .chain(
                // Something that is not a folder where the snapshot has one would be replaced too.
                plan.dirs.iter().map(|(p, _)| p).filter(|p| {
                    !fresh_target && fs::symlink_metadata(p).is_ok_and(|m| !m.is_dir())
                }),
            )
            .collect();
    if !existing.is_empty() && !opts.overwrite {
        return Err(Error::TargetExists {
            count: existing.len(),
            first: existing[0].clone(),
        });
    }
    Ok(existing)
}

/// Failures of a restore, by file number; the first failure of a file is kept.
#[derive(Default)]
struct Failures(Mutex<BTreeMap<usize, String>>);

impl Failures {
    fn fail(&self, i: usize, msg: String) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(i)
            .or_insert(msg);
    }

    /// Fails every file that one of `blobs` goes to.
    fn fail_blobs(&self, blobs: &[BlobJob], msg: &str) {
        for b in blobs {
            for (i, _) in &b.targets {
                self.fail(*i, msg.to_string());
            }
        }
    }

    fn into_inner(self) -> BTreeMap<usize, String> {
        self.0.into_inner().unwrap_or_else(|p| p.into_inner())
    }
}

/// The blobs to read from one pack, sorted by offset.
type PackJob = (PackId, Vec<BlobJob>);

fn run_plan(
    repo: &Repository,
    index: &Index,
    plan: Plan,
    opts: &RestoreOptions,
) -> Result<RestoreSummary> {
    let mut meta = MetaWriter::new(repo, opts)?;
    let existing = existing_targets(&plan, opts)?;
    make_folders(&plan, opts)?;
    let failures = Failures::default();
    let existing: HashSet<&PathBuf> = existing.into_iter().collect();
    let packs = group_by_pack(&plan, index, &existing, &failures);
    let pool = reader_pool(repo, opts)?;
    read_packs(
        repo,
        &plan.files,
        &packs,
        opts.gate.as_ref(),
        &pool,
        &failures,
        &opts.progress,
    );
    let mut summary = RestoreSummary::default();
    finish_files(&plan, failures.into_inner(), &mut meta, &mut summary);
    finish_others_and_folders(&plan, &mut meta, &mut summary);
    summary.xattr_warnings = meta.problems.warnings();
    Ok(summary)
}

/// Creates the target and every planned folder; something else in a folder's place goes first.
fn make_folders(plan: &Plan, opts: &RestoreOptions) -> Result<()> {
    let mkdir = |p: &Path| {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(p)
            .map_err(|e| Error::io("create folder", p, e))
    };
    mkdir(&opts.target)?;
    for (p, _) in &plan.dirs {
        if fs::symlink_metadata(p).is_ok_and(|m| !m.is_dir()) {
            clear(p).map_err(|e| Error::io("replace", p, e))?;
        }
        mkdir(p)?;
    }
    Ok(())
}

/// Files every blob of every planned file under its pack, with the places its plaintext goes
/// to; a blob used several times is read once. Empty files are created now; the others when
/// their first blob is written, so that each file is opened once per pack that holds its data,
/// never once more just to create it. Existing files in the way are removed first.
fn group_by_pack(
    plan: &Plan,
    index: &Index,
    existing: &HashSet<&PathBuf>,
    failures: &Failures,
) -> Vec<PackJob> {
    let mut by_pack: HashMap<PackId, HashMap<BlobId, BlobJob>> = HashMap::new();
    for (i, f) in plan.files.iter().enumerate() {
        if f.link_to.is_some() {
            continue;
        }
        if existing.contains(&f.path) {
            if let Err(e) = clear(&f.path) {
                failures.fail(i, format!("replace: {e}"));
                continue;
            }
        }
        if f.node.content.as_ref().is_none_or(|c| c.is_empty()) {
            if let Err(e) = open_at_size(&f.path, f.node.size) {
                failures.fail(i, format!("create: {e}"));
            }
            continue;
        }
        let mut offset = 0u64;
        for id in f.node.content.iter().flatten() {
            let Some(loc) = index.get(id) else {
                failures.fail(i, Error::MissingBlob(*id).to_string());
                break;
            };
            by_pack
                .entry(loc.pack)
                .or_default()
                .entry(*id)
                .or_insert_with(|| BlobJob {
                    entry: loc.entry,
                    targets: Vec::new(),
                })
                .targets
                .push((i, offset));
            offset += loc.entry.uncompressed_length as u64;
        }
        if offset != f.node.size {
            // The tree and the index disagree: the file would be cut short or padded with zeros.
            failures.fail(
                i,
                format!(
                    "its blobs hold {offset} bytes but the snapshot records {}",
                    f.node.size
                ),
            );
        }
    }
    by_pack
        .into_iter()
        .map(|(p, blobs)| {
            let mut v: Vec<BlobJob> = blobs.into_values().collect();
            v.sort_by_key(|b| b.entry.offset);
            (p, v)
        })
        .collect()
}

/// The readers: two per CPU, and at least as many as the backend has connections.
fn reader_pool(repo: &Repository, opts: &RestoreOptions) -> Result<rayon::ThreadPool> {
    let threads = if opts.threads == 0 {
        (2 * std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2))
        .max(repo.backend().connections())
    } else {
        opts.threads
    };
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|e| Error::Resource {
            what: "thread pool",
            reason: e.to_string(),
        })
}

/// Reads every pack and writes its blobs into the files. Readable packs go to the readers at
/// once; packs behind the gate as the waiter reports them thawed.
fn read_packs(
    repo: &Repository,
    files: &[PlannedFile],
    packs: &[PackJob],
    gate: Option<&PackGate>,
    pool: &rayon::ThreadPool,
    failures: &Failures,
    progress: &crate::progress::ProgressSink,
) {
    let (ready_tx, ready_rx) = crossbeam_channel::unbounded::<&PackJob>();
    let mut gated: Vec<&PackJob> = Vec::new();
    for p in packs {
        match gate {
            Some(g) if g.pending.contains(&p.0) => gated.push(p),
            _ => {
                let _ = ready_tx.send(p);
            }
        }
    }
    std::thread::scope(|scope| {
        scope.spawn(move || {
            if let Some(gate) = gate {
                feed_thawed(gate, gated, &ready_tx, failures);
            }
            drop(ready_tx);
        });
        pool.install(|| {
            let init = || (Vec::new(), BlobOpener::new());
            ready_rx
                .iter()
                .par_bridge()
                .for_each_init(init, |(data, opener), (pack_id, blobs)| {
                    let mut writer = FileWriter::new(files, failures, progress);
                    restore_pack(repo, pack_id, blobs, data, opener, &mut writer);
                })
        });
    });
}

/// Hands the gated packs to the readers as they thaw; fails their files when waiting fails.
fn feed_thawed<'p>(
    gate: &PackGate,
    mut gated: Vec<&'p PackJob>,
    tx: &crossbeam_channel::Sender<&'p PackJob>,
    failures: &Failures,
) {
    while !gated.is_empty() {
        let ids: Vec<PackId> = gated.iter().map(|p| p.0).collect();
        match gate.waiter.wait_any(&ids) {
            Ok(now) => {
                let now: HashSet<PackId> = now.into_iter().collect();
                gated.retain(|p| {
                    if now.contains(&p.0) {
                        let _ = tx.send(*p);
                        false
                    } else {
                        true
                    }
                });
            }
            Err(e) => {
                for (_, blobs) in &gated {
                    failures.fail_blobs(blobs, &e.to_string());
                }
                return;
            }
        }
    }
}

/// The blobs of one pack: neighbours are read together, each blob is opened and written at its
/// places.
fn restore_pack(
    repo: &Repository,
    pack_id: &PackId,
    blobs: &[BlobJob],
    data: &mut Vec<u8>,
    opener: &mut BlobOpener,
    writer: &mut FileWriter,
) {
    let mut start = 0;
    while start < blobs.len() {
        let end = coalesce(blobs, start);
        let group = &blobs[start..end];
        start = end;
        let first = group[0].entry.offset as u64;
        let last_end = group
            .iter()
            .map(|b| b.entry.offset as u64 + b.entry.length as u64)
            .max()
            .unwrap_or(first);
        let bt = group[0].entry.blob_type;
        if let Err(e) = repo.read_pack_range_into(bt, pack_id, first, last_end - first, data) {
            writer.failures.fail_blobs(group, &e.to_string());
            continue;
        }
        for b in group {
            let lo = (b.entry.offset as u64 - first) as usize;
            let sealed = &mut data[lo..lo + b.entry.length as usize];
            match opener.open(repo.key(), pack_id, &b.entry, sealed) {
                Ok(plain) => writer.write(&b.targets, plain),
                Err(e) => writer
                    .failures
                    .fail_blobs(std::slice::from_ref(b), &e.to_string()),
            }
        }
    }
}

/// The end of the run of blobs from `start` that one range read covers: neighbours less than
/// `MAX_READ_GAP` apart, up to `MAX_READ` bytes in all.
fn coalesce(blobs: &[BlobJob], start: usize) -> usize {
    let first = blobs[start].entry.offset as u64;
    let mut end = start + 1;
    let mut last_end = first + blobs[start].entry.length as u64;
    while end < blobs.len() {
        let e = &blobs[end].entry;
        let e_end = e.offset as u64 + e.length as u64;
        if (e.offset as u64) > last_end + MAX_READ_GAP || e_end - first > MAX_READ {
            break;
        }
        last_end = last_end.max(e_end);
        end += 1;
    }
    end
}

/// Writes plaintext into the planned files, keeping a bounded number of them open.
struct FileWriter<'a> {
    files: &'a [PlannedFile],
    failures: &'a Failures,
    handles: HashMap<usize, File>,
    progress: &'a crate::progress::ProgressSink,
}

impl<'a> FileWriter<'a> {
    fn new(
        files: &'a [PlannedFile],
        failures: &'a Failures,
        progress: &'a crate::progress::ProgressSink,
    ) -> Self {
        Self {
            files,
            failures,
            handles: HashMap::new(),
            progress,
        }
    }

    /// Writes `plain` at each (file, offset) of `targets`.
    fn write(&mut self, targets: &[(usize, u64)], plain: &[u8]) {
        for (i, off) in targets {
            let f = &self.files[*i];
            if self.handles.len() >= MAX_OPEN_FILES && !self.handles.contains_key(i) {
                // A pack may hold blobs of thousands of small files: keep the number of open
                // descriptors bounded.
                self.handles.clear();
            }
            let h = match self.handles.entry(*i) {
                std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
                std::collections::hash_map::Entry::Vacant(v) => {
                    match open_at_size(&f.path, f.node.size) {
                        Ok(h) => v.insert(h),
                        Err(e) => {
                            self.failures.fail(*i, format!("open: {e}"));
                            continue;
                        }
                    }
                }
            };
            self.progress.file_started(&f.path);
            match write_sparse(h, *off, plain) {
                Ok(()) => self.progress.bytes_done(plain.len() as u64),
                Err(e) => self.failures.fail(*i, format!("write: {e}")),
            }
        }
    }
}

/// Hard links, then metadata of the files that were written whole; a file with any failure is
/// removed, never left in place looking complete.
fn finish_files(
    plan: &Plan,
    mut failures: BTreeMap<usize, String>,
    meta: &mut MetaWriter,
    summary: &mut RestoreSummary,
) {
    for (i, f) in plan.files.iter().enumerate() {
        if let Some(j) = f.link_to {
            if let Some(msg) = failures.get(&j).cloned() {
                failures.insert(i, format!("hard link to a file that failed: {msg}"));
                continue;
            }
            if let Err(e) = clear(&f.path).and_then(|_| fs::hard_link(&plan.files[j].path, &f.path))
            {
                failures.insert(i, format!("hard link: {e}"));
            }
        }
    }
    for (i, f) in plan.files.iter().enumerate() {
        if failures.contains_key(&i) {
            if f.link_to.is_none() {
                let _ = fs::remove_file(&f.path);
            }
            continue;
        }
        if f.link_to.is_none() {
            if let Err(e) = meta.set(&f.path, &f.node, true) {
                failures.insert(i, format!("metadata: {e}"));
                continue;
            }
        }
        summary.files += 1;
        summary.bytes += f.node.size;
    }
    for (i, msg) in failures {
        summary.errors.push(RestoreError {
            path: plan.files[i].path.clone(),
            message: msg,
        });
    }
}

/// Links, fifos and devices, then folder metadata, deepest first, so that setting a child's
/// mtime does not change its parent's.
fn finish_others_and_folders(plan: &Plan, meta: &mut MetaWriter, summary: &mut RestoreSummary) {
    for (path, node) in &plan.others {
        match restore_other(path, node, meta) {
            Ok(true) => summary.others += 1,
            Ok(false) => summary.skipped += 1,
            Err(e) => summary.errors.push(RestoreError {
                path: path.clone(),
                message: e.to_string(),
            }),
        }
    }
    for (path, node) in plan.dirs.iter().rev() {
        match meta.set(path, node, false) {
            Ok(()) => summary.dirs += 1,
            Err(e) => summary.errors.push(RestoreError {
                path: path.clone(),
                message: format!("metadata: {e}"),
            }),
        }
    }
}

/// Restores a symlink, fifo or device. `Ok(false)` when the kind is skipped (sockets, or devices
/// when not root).
fn restore_other(path: &Path, node: &Node, meta: &mut MetaWriter) -> io::Result<bool> {
    use nix::sys::stat::{mknod, Mode, SFlag};
    clear(path)?;
    let mode = Mode::from_bits_truncate(node.mode as nix::libc::mode_t);
    match node.kind {
        NodeKind::Symlink => {
            let target = node
                .link_target
                .as_ref()
                .ok_or_else(|| io::Error::other("symlink without target"))?;
            std::os::unix::fs::symlink(target.as_os(), path)?;
            set_owner(path, node)?;
            meta.set_xattrs(path, node, true);
            set_times(path, node)?;
            return Ok(true);
        }
        NodeKind::Fifo => nix::unistd::mkfifo(path, mode).map_err(io::Error::from)?,
        NodeKind::Chardev | NodeKind::Blockdev if is_root() => {
            let kind = if node.kind == NodeKind::Chardev {
                SFlag::S_IFCHR
            } else {
                SFlag::S_IFBLK
            };
            mknod(path, kind, mode, node.rdev.unwrap_or(0) as nix::libc::dev_t)
                .map_err(io::Error::from)?
        }
        _ => return Ok(false),
    }
    meta.set(path, node, true)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{backup_dir, entry, memory_repo, noise, write_files};

    fn opts(target: &Path) -> RestoreOptions {
        RestoreOptions {
            target: target.to_path_buf(),
            ..Default::default()
        }
    }

    #[test]
    fn a_restore_is_exact_and_refuses_to_overwrite_unless_asked() {
        let repo = memory_repo();
        let src = tempfile::tempdir().unwrap();
        let big = noise(3, 5 << 20);
        write_files(
            src.path(),
            &[("big", &big), ("dir/small", b"abc"), ("dir/empty", b"")],
        );
        std::os::unix::fs::symlink("dir/small", src.path().join("link")).unwrap();
        let id = backup_dir(&repo, src.path(), &[]);
        let index = repo.load_index().unwrap();
        let snap = entry(&repo, id).snapshot;
        let out = tempfile::tempdir().unwrap();
        let summary = restore(&repo, &index, &snap, "", &opts(out.path())).unwrap();
        assert!(summary.errors.is_empty(), "{:?}", summary.errors);
        assert_eq!((summary.files, summary.others), (3, 1));
        let at = out.path().join(src.path().strip_prefix("/").unwrap());
        assert!(fs::read(at.join("big")).unwrap() == big);
        assert_eq!(fs::read(at.join("dir/small")).unwrap(), b"abc");
        assert_eq!(fs::read(at.join("dir/empty")).unwrap(), b"");
        assert_eq!(
            fs::read_link(at.join("link")).unwrap(),
            Path::new("dir/small")
        );

        fs::write(at.join("dir/small"), b"changed").unwrap();
        let err = restore(&repo, &index, &snap, "", &opts(out.path())).unwrap_err();
        assert!(
            matches!(err, Error::TargetExists { count: 4, .. }),
            "{err:?}"
        );
        assert_eq!(
            fs::read(at.join("dir/small")).unwrap(),
            b"changed",
            "nothing touched"
        );
        let again = RestoreOptions {
            overwrite: true,
            ..opts(out.path())
        };
        restore(&repo, &index, &snap, "", &again).unwrap();
        assert_eq!(fs::read(at.join("dir/small")).unwrap(), b"abc");
    }

    #[test]
    fn a_file_whose_data_is_gone_is_reported_and_not_left_behind() {
        let repo = memory_repo();
        let src = tempfile::tempdir().unwrap();
        write_files(src.path(), &[("lost", &noise(5, 100_000))]);
        let id = backup_dir(&repo, src.path(), &[]);
        for p in repo
            .backend()
            .list(crate::storage::FileType::DataPack)
            .unwrap()
        {
            repo.backend()
                .remove(crate::storage::FileType::DataPack, &p.id)
                .unwrap();
        }
        let index = repo.load_index().unwrap();
        let snap = entry(&repo, id).snapshot;
        let out = tempfile::tempdir().unwrap();
        let summary = restore(&repo, &index, &snap, "", &opts(out.path())).unwrap();
        assert_eq!(summary.errors.len(), 1, "{:?}", summary.errors);
        assert!(summary.errors[0].path.ends_with("lost"));
        assert!(!summary.errors[0].path.exists(), "a failed file is removed");
    }
}
