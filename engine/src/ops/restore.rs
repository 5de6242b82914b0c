//! Restore: plan every file's blobs, read each pack once, decrypt and write in parallel, then set
//! metadata bottom-up (ARCHITECTURE.md, "Restore").
//!
//! Files are written under a temporary name in their folder, at their final size, with zero
//! blocks left as holes (sparse files stay sparse); when every chunk is written, the file gets
//! its metadata and is renamed into place. A killed restore thus never leaves a file at its final
//! name whose bytes are not the snapshot's, and a restore run again continues from what the
//! killed one wrote: chunks already in place, in the temporary file or in the file being
//! replaced, are found by their keyed hashes and not read from the repository again
//! ([`local`]). A file whose blobs fail to read or authenticate is reported and never renamed
//! into place.

mod local;
mod stream;
mod unnamed;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

pub use local::Overwrite;
use local::{part_path, Chunk};

use rayon::prelude::*;

use crate::attrs::{self, Entry, XattrFilter, XattrProblems, XattrWarning};
use crate::cold::thaw::PackGate;
use crate::error::{Error, Result};
use crate::exclude::PathMatcher;
use crate::format::blob::BlobType;
use crate::format::pack::{self, BlobOpener, PackEntry};
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
/// The largest buffer a reader of a remote store keeps between ranges: twice the default chunker's
/// average, so that most blobs reuse it and the few larger ones are not held on to.
const KEEP_BUFFER: usize = 2 << 20;

/// How to restore.
#[derive(Debug, Clone, Default)]
pub struct RestoreOptions {
    /// Destination folder (created if missing).
    pub target: PathBuf,
    /// Restore only entries matching (or inside an entry matching) one of these patterns.
    pub includes: Vec<String>,
    /// Leave out entries matching (or inside an entry matching) one of these patterns.
    pub excludes: Vec<String>,
    /// What to do with entries already in the target.
    pub overwrite: Overwrite,
    /// Remove entries of the target's folders that the snapshot's folders do not have (and no
    /// `excludes` pattern protects).
    pub delete: bool,
    /// Read every file back after the restore and compare its chunks with the snapshot's.
    pub verify: bool,
    /// Parallel pack readers (0: one per core on local storage, two per core on remote storage).
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

/// A file that could not be restored, or that differs from the snapshot when read back.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RestoreError {
    /// Where it was to be written.
    #[serde(serialize_with = "crate::report::lossy_path")]
    pub path: PathBuf,
    /// Why it was not.
    pub message: String,
    /// The data pack the failure points at: the pack that could not be read or whose blob
    /// failed to open, or the pack of the chunk that differs; `None` for local failures.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pack: Option<PackId>,
}

/// The outcome of a restore (its JSON uses restic's names where restic has them).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct RestoreSummary {
    /// Regular files of the snapshot the restore covered.
    pub total_files: u64,
    /// Their bytes.
    pub total_bytes: u64,
    /// Regular files written.
    pub files_restored: u64,
    /// Regular files already in place, left alone (`--overwrite if-changed|if-newer|never`).
    pub files_skipped: u64,
    /// Entries `--delete` removed (a folder counts once).
    pub files_deleted: u64,
    /// Bytes of the files written.
    pub bytes_restored: u64,
    /// Bytes of the files left alone.
    pub bytes_skipped: u64,
    /// Bytes of the written files that were already in place on disk and not read again.
    pub bytes_in_place: u64,
    /// Bytes read from the repository (encrypted and compressed, as stored).
    pub bytes_read: u64,
    /// Folders restored.
    pub dirs: u64,
    /// Links, fifos and devices restored.
    pub others: u64,
    /// Entries recorded but not restored: sockets, and device nodes when not run as root.
    pub others_skipped: u64,
    /// Files read back and found equal to the snapshot (`--verify`).
    pub files_verified: u64,
    /// Files read back and found different (`--verify`).
    pub verify_errors: Vec<RestoreError>,
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
    /// Leave the file in the target alone (`--overwrite`).
    skip: bool,
    /// The file's chunks, from the index.
    chunks: Vec<Chunk>,
    /// Chunks the working file already holds.
    have: Vec<bool>,
    /// Where the working (temporary) file starts from.
    base: Base,
    /// Why the file cannot be restored, known before reading (a blob missing from the index).
    problem: Option<String>,
}

/// What the temporary file of a file being written starts as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Base {
    /// A new, empty file: unwritten ranges are holes.
    Fresh,
    /// The temporary file a killed restore left.
    Part,
    /// A copy of the file being replaced.
    Final,
}

/// A folder of the snapshot and the names it holds, for `--delete`.
struct Listing {
    dir: PathBuf,
    snap: PathBuf,
    inherited: bool,
    names: HashSet<OsString>,
}

#[derive(Default)]
struct Plan {
    dirs: Vec<(PathBuf, Node)>,
    files: Vec<PlannedFile>,
    others: Vec<(PathBuf, Node)>,
    listings: Vec<Listing>,
    /// Entries `--delete` removes, with their paths in the snapshot's terms.
    deletes: Vec<(PathBuf, PathBuf)>,
    /// Temporary files of an earlier restore that no file continues from.
    leftovers: Vec<PathBuf>,
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
    /// Record folder listings (a whole folder is restored, not one entry of it).
    list: bool,
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
    if ctx.list {
        plan.listings.push(Listing {
            dir: dest.to_path_buf(),
            snap: snap_path.to_path_buf(),
            inherited,
            names: tree
                .nodes
                .iter()
                .map(|n| n.name.as_os().to_owned())
                .collect(),
        });
    }
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
                    skip: false,
                    chunks: Vec::new(),
                    have: Vec::new(),
                    base: Base::Fresh,
                    problem: None,
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

/// Writes `data` at `offset`, leaving its zero blocks unwritten (holes in a fresh file); returns
/// where the last byte written ends.
fn write_sparse(f: &File, offset: u64, data: &[u8]) -> io::Result<u64> {
    let mut pos = 0;
    let mut end_written = offset;
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
        end_written = offset + run_end as u64;
    }
    Ok(end_written)
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
        // A temporary name is never followed elsewhere.
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)?;
    f.set_len(size)?;
    Ok(f)
}

fn set_owner(at: Entry<'_>, node: &Node) -> io::Result<()> {
    if !is_root() {
        return Ok(());
    }
    let (uid, gid) = (Some(node.uid), Some(node.gid));
    match at {
        Entry::Path(p) => std::os::unix::fs::lchown(p, uid, gid),
        Entry::Open(f, _) => std::os::unix::fs::fchown(f, uid, gid),
    }
}

fn set_mode(at: Entry<'_>, node: &Node) -> io::Result<()> {
    let mode = fs::Permissions::from_mode(node.mode);
    match at {
        Entry::Path(p) => fs::set_permissions(p, mode),
        Entry::Open(f, _) => f.set_permissions(mode),
    }
}

/// Sets atime and mtime to the node's mtime: by path without following a symlink and without
/// opening the entry (opening a fifo would block), or through the open file.
fn set_times(at: Entry<'_>, node: &Node) -> io::Result<()> {
    use nix::sys::stat::{futimens, utimensat, UtimensatFlags};
    use nix::sys::time::TimeSpec;
    use std::os::fd::AsRawFd;
    // A leap second (second 60) is held as nanoseconds past 10^9, which utimensat refuses
    // or, at two values, takes for UTIME_NOW or UTIME_OMIT.
    let t = TimeSpec::new(
        node.mtime.timestamp(),
        node.mtime.timestamp_subsec_nanos().min(999_999_999) as _,
    );
    match at {
        Entry::Path(p) => utimensat(None, p, &t, &t, UtimensatFlags::NoFollowSymlink),
        Entry::Open(f, _) => futimens(f.as_raw_fd(), &t, &t),
    }
    .map_err(io::Error::from)
}

/// Sets entries' metadata, and gathers the extended attributes it could not set. Shared by the
/// writing threads, which lock it only to count a problem.
struct MetaWriter {
    xattrs: XattrFilter,
    problems: Mutex<XattrProblems>,
    /// The snapshot's repository records attributes (format version 2 on): an entry without
    /// any had none, rather than none recorded.
    recorded: bool,
}

impl MetaWriter {
    fn new(repo: &Repository, opts: &RestoreOptions) -> Result<Self> {
        Ok(Self {
            xattrs: XattrFilter::new(&opts.include_xattrs, &opts.exclude_xattrs)?,
            problems: Mutex::default(),
            recorded: repo.config().records_xattrs(),
        })
    }

    /// Owner, then extended attributes (chown drops `security.capability`), then mode (after
    /// chown, which clears setuid and setgid bits; its group bits are an ACL's mask), then times.
    /// `made`: the restore created this entry, so attributes the snapshot lacks are removed
    /// from it; a folder that was already there keeps its own.
    fn set(&self, at: Entry<'_>, node: &Node, made: bool) -> io::Result<()> {
        let mut problems = XattrProblems::default();
        let set = self.set_noting(at, node, made, &mut problems);
        self.count(problems);
        set
    }

    /// As [`MetaWriter::set`], noting the attributes it could not set in `problems` rather than
    /// counting them: for an entry that may yet be given up and made again.
    fn set_noting(
        &self,
        at: Entry<'_>,
        node: &Node,
        made: bool,
        problems: &mut XattrProblems,
    ) -> io::Result<()> {
        set_owner(at, node)?;
        self.write_xattrs(at, node, made, problems);
        set_mode(at, node)?;
        set_times(at, node)
    }

    fn set_xattrs(&self, at: Entry<'_>, node: &Node, made: bool) {
        let mut problems = XattrProblems::default();
        self.write_xattrs(at, node, made, &mut problems);
        self.count(problems);
    }

    fn write_xattrs(&self, at: Entry<'_>, node: &Node, made: bool, problems: &mut XattrProblems) {
        let mode = attrs::WriteMode {
            is_root: is_root(),
            remove_extra: made && self.recorded,
        };
        attrs::write(at, &node.xattrs, &self.xattrs, mode, problems);
    }

    /// Counts the attributes an entry kept could not be given.
    fn count(&self, problems: XattrProblems) {
        if !problems.is_empty() {
            self.problems
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .merge(problems);
        }
    }

    fn warnings(&self) -> Vec<XattrWarning> {
        self.problems
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .warnings()
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

/// A restore worked out from the snapshot's trees and the target, not yet carried out:
/// [`plan_restore`] makes it, [`restore_planned`] runs it, and in between a caller can see which
/// packs it reads, or show it instead (`--dry-run`).
pub struct RestorePlan(Plan);

/// What a restore would do (`--dry-run`).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct RestorePreview {
    /// Files written where nothing is.
    pub files_new: u64,
    /// Their bytes.
    pub bytes_new: u64,
    /// Files written in place of an existing entry.
    pub files_replaced: u64,
    /// Their bytes.
    pub bytes_replaced: u64,
    /// Files left alone (`--overwrite`).
    pub files_skipped: u64,
    /// Their bytes.
    pub bytes_skipped: u64,
    /// Bytes of the files to write that are already in place on disk.
    pub bytes_in_place: u64,
    /// Bytes of the files to write that come from the repository.
    pub bytes_to_read: u64,
    /// Entries `--delete` would remove.
    #[serde(serialize_with = "crate::report::lossy_paths")]
    pub deletes: Vec<PathBuf>,
}

impl RestorePlan {
    /// Bytes the restore writes from the repository (hard links counted once) and the files.
    pub fn totals(&self) -> (u64, usize) {
        let bytes = self.0.writes().map(pending_bytes).sum();
        (bytes, self.0.files.len())
    }

    /// True when the plan restores no entry at all (the filters matched nothing).
    pub fn is_empty(&self) -> bool {
        self.0.dirs.is_empty() && self.0.files.is_empty() && self.0.others.is_empty()
    }

    /// The data packs the restore reads: those of the chunks not already in place.
    pub fn needed_packs(&self, index: &Index) -> std::collections::BTreeSet<PackId> {
        let mut out = std::collections::BTreeSet::new();
        for f in self.0.writes() {
            for (c, _) in f.chunks.iter().zip(&f.have).filter(|(_, have)| !**have) {
                if let Some(loc) = index.get(&c.id) {
                    out.insert(loc.pack);
                }
            }
        }
        out
    }

    /// What the restore would write, leave alone and delete.
    pub fn preview(&self) -> RestorePreview {
        let mut p = RestorePreview {
            deletes: self.0.deletes.iter().map(|(p, _)| p.clone()).collect(),
            ..Default::default()
        };
        for f in self.0.files.iter().filter(|f| f.link_to.is_none()) {
            let size = f.node.size;
            match (f.skip, fs::symlink_metadata(&f.path).is_ok()) {
                (true, _) => {
                    (p.files_skipped, p.bytes_skipped) =
                        (p.files_skipped + 1, p.bytes_skipped + size)
                }
                (false, true) => {
                    (p.files_replaced, p.bytes_replaced) =
                        (p.files_replaced + 1, p.bytes_replaced + size)
                }
                (false, false) => {
                    (p.files_new, p.bytes_new) = (p.files_new + 1, p.bytes_new + size)
                }
            }
        }
        p.bytes_to_read = self.0.writes().map(pending_bytes).sum();
        p.bytes_in_place = self
            .0
            .writes()
            .map(|f| f.node.size - pending_bytes(f))
            .sum();
        p
    }
}

impl Plan {
    /// The files whose content the restore writes.
    fn writes(&self) -> impl Iterator<Item = &PlannedFile> {
        self.files
            .iter()
            .filter(|f| f.link_to.is_none() && !f.skip && f.problem.is_none())
    }
}

/// Bytes of a file's chunks not yet in place.
fn pending_bytes(f: &PlannedFile) -> u64 {
    f.chunks
        .iter()
        .zip(&f.have)
        .filter(|(_, have)| !**have)
        .map(|(c, _)| c.len as u64)
        .sum()
}

/// Plans a restore of `subpath` (empty for everything) without reading any data pack: what the
/// target holds is looked at, and the chunks already in place there are read and hashed. Fails
/// as the restore would when files are in the way without `opts.overwrite`, so that nothing is
/// thawed for a restore that cannot run.
pub fn plan_restore(
    repo: &Repository,
    index: &Index,
    snap: &Snapshot,
    subpath: &str,
    opts: &RestoreOptions,
) -> Result<RestorePlan> {
    if fs::metadata(&opts.target).is_ok_and(|m| !m.is_dir()) {
        return Err(Error::InvalidOptions(format!(
            "the target {} is not a folder",
            opts.target.display()
        )));
    }
    MetaWriter::new(repo, opts)?;
    let mut plan = build_plan(repo, index, snap, subpath, opts)?;
    existing_targets(&plan, opts)?;
    inspect(repo, index, &mut plan, opts)?;
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
    let plan = plan_restore(repo, index, snap, subpath, opts)?;
    run_plan(repo, index, plan.0, opts)
}

/// Carries out a plan of [`plan_restore`].
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
    let mut ctx = Planner {
        repo,
        index,
        filter: Filter {
            includes: PathMatcher::new(&opts.includes)?,
            excludes: PathMatcher::new(&opts.excludes)?,
        },
        list: opts.delete,
    };
    let (node, tree) = resolve(repo, index, snap, subpath)?;
    let snap_root = Path::new("/").join(subpath.trim_start_matches('/'));
    let mut plan = Plan::default();
    match (node, tree) {
        (_, Some(tree)) => {
            plan_tree(&ctx, &tree, &opts.target, &snap_root, false, &mut plan)?;
        }
        (Some(n), None) => {
            // A single entry: it is restored into the target folder under its own name, and
            // --delete leaves the rest of the target alone.
            ctx.list = false;
            let one = Tree { nodes: vec![n] };
            let parent = snap_root.parent().unwrap_or(Path::new("/")).to_path_buf();
            plan_tree(&ctx, &one, &opts.target, &parent, false, &mut plan)?;
        }
        (None, None) => unreachable!("resolve returns a tree for the root"),
    }
    link_hard_links(&mut plan);
    Ok(plan)
}

/// Hard links: the first file of each (device, inode) carries the content.
fn link_hard_links(plan: &mut Plan) {
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
}

/// Without `--overwrite`, anything in the way of the plan is an error, before anything is
/// written.
fn existing_targets(plan: &Plan, opts: &RestoreOptions) -> Result<()> {
    if opts.overwrite != Overwrite::Refuse || fs::symlink_metadata(&opts.target).is_err() {
        return Ok(());
    }
    let existing: Vec<&PathBuf> = plan
        .files
        .iter()
        .map(|f| &f.path)
        .chain(plan.others.iter().map(|(p, _)| p))
        .filter(|p| fs::symlink_metadata(p).is_ok())
        .chain(
            // Something that is not a folder where the snapshot has one would be replaced too.
            plan.dirs
                .iter()
                .map(|(p, _)| p)
                .filter(|p| fs::symlink_metadata(p).is_ok_and(|m| !m.is_dir())),
        )
        .collect();
    match existing.first() {
        Some(first) => Err(Error::TargetExists {
            count: existing.len(),
            first: (*first).clone(),
        }),
        None => Ok(()),
    }
}

/// Looks at the target: which files `--overwrite` leaves alone, which chunks of the others are
/// already in place, which temporary files are left over, and what `--delete` removes.
fn inspect(repo: &Repository, index: &Index, plan: &mut Plan, opts: &RestoreOptions) -> Result<()> {
    let hash = |d: &[u8]| repo.key().blob_id(BlobType::Data, d);
    // Under a folder that does not exist yet nothing is in the way: no need to look.
    let target_exists = fs::metadata(&opts.target).is_ok_and(|m| m.is_dir());
    let existing: HashSet<&Path> = std::iter::once(opts.target.as_path())
        .filter(|_| target_exists)
        .chain(
            plan.dirs
                .iter()
                .map(|(p, _)| p.as_path())
                .filter(|d| fs::symlink_metadata(d).is_ok_and(|m| m.is_dir())),
        )
        .collect();
    plan.files
        .par_iter_mut()
        .filter(|f| f.link_to.is_none())
        .for_each(|f| {
            if f.path.parent().is_some_and(|d| existing.contains(d)) {
                inspect_file(f, index, opts.overwrite, &hash);
            } else if chunk_list(f, index) {
                f.have = vec![false; f.chunks.len()];
            }
        });
    for f in plan.files.iter_mut().filter(|f| f.link_to.is_some()) {
        // A hard link is judged by what is at its own name.
        f.skip = fs::symlink_metadata(&f.path)
            .is_ok_and(|m| local::leave_alone(opts.overwrite, &m, &f.node));
    }
    // Temporary files files continue from, and entries of the snapshot whose names merely look
    // like temporary files, are never leftovers.
    let claimed: HashSet<PathBuf> = plan
        .writes()
        .filter(|f| f.base == Base::Part)
        .map(|f| part_path(&f.path))
        .chain(plan.files.iter().map(|f| f.path.clone()))
        .chain(plan.others.iter().map(|(p, _)| p.clone()))
        .chain(plan.dirs.iter().map(|(p, _)| p.clone()))
        .filter(|p| p.file_name().is_some_and(local::is_part_name))
        .collect();
    let folders: Vec<&Path> = existing.into_iter().collect();
    plan.leftovers = folders
        .iter()
        .flat_map(|d| local::leftovers(d, &claimed))
        .collect();
    if opts.delete {
        plan.deletes = deletes(plan, &folders, opts)?;
    }
    Ok(())
}

/// A file's chunks, whether it is left alone, and what its temporary file starts from.
fn inspect_file(
    f: &mut PlannedFile,
    index: &Index,
    mode: Overwrite,
    hash: &(dyn Fn(&[u8]) -> BlobId + Sync),
) {
    if !chunk_list(f, index) {
        return;
    }
    let existing = fs::symlink_metadata(&f.path).ok();
    if existing
        .as_ref()
        .is_some_and(|m| local::leave_alone(mode, m, &f.node))
    {
        f.skip = true;
        return;
    }
    let part = part_path(&f.path);
    let (base, from) = if fs::symlink_metadata(&part).is_ok_and(|m| m.is_file()) {
        (Base::Part, part)
    } else if existing.is_some_and(|m| m.is_file()) {
        (Base::Final, f.path.clone())
    } else {
        (Base::Fresh, part)
    };
    f.have = match base {
        Base::Fresh => vec![false; f.chunks.len()],
        _ => local::chunks_in_place(&from, &f.chunks, hash),
    };
    // A file being replaced that shares nothing with the snapshot's is not copied first.
    f.base = match base {
        Base::Final if !f.have.contains(&true) => Base::Fresh,
        b => b,
    };
}

/// Fills in a file's chunks from the index; false (with the problem noted) when a blob is
/// missing or they do not add up to the file.
fn chunk_list(f: &mut PlannedFile, index: &Index) -> bool {
    let mut offset = 0u64;
    for id in f.node.content.iter().flatten() {
        let Some(loc) = index.get(id) else {
            f.problem = Some(Error::MissingBlob(*id).to_string());
            return false;
        };
        let len = loc.entry.uncompressed_length;
        f.chunks.push(Chunk {
            id: *id,
            offset,
            len,
        });
        offset += len as u64;
    }
    if offset != f.node.size {
        // The tree and the index disagree: the file would be cut short or padded with zeros.
        let size = f.node.size;
        f.problem = Some(format!(
            "its blobs hold {offset} bytes but the snapshot records {size}"
        ));
        return false;
    }
    true
}

/// Entries of the restored folders that the snapshot's folders lack; an entry an `--exclude`
/// pattern matches, or outside every `--include`, is kept.
fn deletes(
    plan: &Plan,
    folders: &[&Path],
    opts: &RestoreOptions,
) -> Result<Vec<(PathBuf, PathBuf)>> {
    let filter = Filter {
        includes: PathMatcher::new(&opts.includes)?,
        excludes: PathMatcher::new(&opts.excludes)?,
    };
    let restored: HashSet<&Path> = folders.iter().copied().collect();
    Ok(plan
        .listings
        .iter()
        .filter(|l| restored.contains(l.dir.as_path()))
        .flat_map(|l| {
            let extra = local::extras(&l.dir, &l.names, |name| {
                filter.select(&l.snap.join(name), l.inherited) != Some(true)
            });
            extra.into_iter().map(|p| {
                let snap = l.snap.join(p.file_name().unwrap_or_default());
                (p, snap)
            })
        })
        .collect())
}

/// A file's first failure: the message and the data pack it points at, if any.
type Failure = (String, Option<PackId>);

/// Failures of a restore, by file number; the first failure of a file is kept.
#[derive(Default)]
struct Failures(Mutex<BTreeMap<usize, Failure>>);

impl Failures {
    /// True once file `i` failed.
    fn has(&self, i: usize) -> bool {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(&i)
    }

    fn fail(&self, i: usize, msg: String) {
        self.fail_in(i, msg, None);
    }

    fn fail_in(&self, i: usize, msg: String, pack: Option<PackId>) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(i)
            .or_insert((msg, pack));
    }

    /// Fails every file that one of `blobs`, from `pack`, goes to.
    fn fail_blobs(&self, pack: &PackId, blobs: &[BlobJob], msg: &str) {
        for b in blobs {
            for (i, _) in &b.targets {
                self.fail_in(*i, msg.to_string(), Some(*pack));
            }
        }
    }

    fn into_inner(self) -> BTreeMap<usize, Failure> {
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
    let meta = MetaWriter::new(repo, opts)?;
    make_folders(&plan, opts)?;
    let mut summary = RestoreSummary::default();
    clear_target(&plan, &PathMatcher::new(&opts.excludes)?, &mut summary);
    let failures = Failures::default();
    let (packs, pending) = group_by_pack(&plan, index, &failures);
    let done = Finisher {
        files: &plan.files,
        pending,
        meta: &meta,
        failures: &failures,
        linker: unnamed::Linker::new(),
    };
    prepare_files(&plan, &done);
    let pool = reader_pool(repo, opts)?;
    let bytes_read = AtomicU64::new(0);
    let reading = Reading {
        repo,
        done: &done,
        progress: &opts.progress,
        bytes_read: &bytes_read,
    };
    read_packs(&reading, &packs, opts.gate.as_ref(), &pool);
    finish_files(&plan, failures.into_inner(), &mut summary);
    finish_others_and_folders(&plan, opts.overwrite, &meta, &mut summary);
    summary.bytes_read = bytes_read.into_inner();
    summary.xattr_warnings = meta.warnings();
    if opts.verify {
        verify_files(repo, index, &plan, &mut summary);
    }
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

/// Removes the temporary files no file continues from, and what `--delete` removes (keeping
/// what an exclude pattern matches inside a folder it removes).
fn clear_target(plan: &Plan, excludes: &PathMatcher, summary: &mut RestoreSummary) {
    for p in &plan.leftovers {
        let _ = fs::remove_file(p);
    }
    for (p, snap) in &plan.deletes {
        match local::remove_entry(p, snap, &|s| excludes.matches(s)) {
            Ok(_) => summary.files_deleted += 1,
            Err(e) => summary.errors.push(RestoreError {
                path: p.clone(),
                message: format!("delete: {e}"),
                pack: None,
            }),
        }
    }
}

/// Files every chunk still to write under its pack, with the places its plaintext goes to; a
/// blob used several times is read once. Also counts each file's pending writes.
fn group_by_pack(
    plan: &Plan,
    index: &Index,
    failures: &Failures,
) -> (Vec<PackJob>, Vec<AtomicUsize>) {
    let mut by_pack: HashMap<PackId, HashMap<BlobId, BlobJob>> = HashMap::new();
    let mut pending = vec![0usize; plan.files.len()];
    for (i, f) in plan.files.iter().enumerate() {
        if let Some(p) = &f.problem {
            failures.fail(i, p.clone());
        }
        if f.link_to.is_some() || f.skip || f.problem.is_some() {
            continue;
        }
        for (c, _) in f.chunks.iter().zip(&f.have).filter(|(_, have)| !**have) {
            let Some(loc) = index.get(&c.id) else {
                failures.fail(i, Error::MissingBlob(c.id).to_string());
                break;
            };
            by_pack
                .entry(loc.pack)
                .or_default()
                .entry(c.id)
                .or_insert_with(|| BlobJob {
                    entry: loc.entry,
                    targets: Vec::new(),
                })
                .targets
                .push((i, c.offset));
            pending[i] += 1;
        }
    }
    let packs = by_pack
        .into_iter()
        .map(|(p, blobs)| {
            let mut v: Vec<BlobJob> = blobs.into_values().collect();
            v.sort_by_key(|b| b.entry.offset);
            (p, v)
        })
        .collect();
    (packs, pending.into_iter().map(AtomicUsize::new).collect())
}

/// Readies the temporary files that continue from something (a copy of the file being
/// replaced, or a killed restore's), and completes the files with nothing left to read.
/// Files that start fresh are created when their first chunk is written.
fn prepare_files(plan: &Plan, done: &Finisher) {
    for (i, f) in plan.files.iter().enumerate() {
        if f.link_to.is_some() || f.skip || f.problem.is_some() {
            continue;
        }
        let part = part_path(&f.path);
        let ready = match f.base {
            Base::Fresh => Ok(()),
            Base::Final => copy_to_part(&f.path, &part),
            // A killed restore may have set the final mode (read-only, say) already.
            Base::Part => fs::set_permissions(&part, fs::Permissions::from_mode(0o600)),
        };
        if let Err(e) = ready {
            done.failures
                .fail(i, format!("prepare {}: {e}", part.display()));
            continue;
        }
        if done.pending[i].load(Ordering::Acquire) == 0 {
            match open_at_size(&part, f.node.size) {
                Ok(_) => done.complete(i),
                Err(e) => done.failures.fail(i, format!("create: {e}")),
            }
        }
    }
}

/// Copies the file being replaced to its temporary name, which is made anew (mode 0600, never
/// through a symlink) rather than taking the old file's mode.
fn copy_to_part(path: &Path, part: &Path) -> io::Result<()> {
    let _ = fs::remove_file(part);
    let mut to = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(part)?;
    let from = File::open(path)?;
    copy_sparse(&from, &mut to)
}

/// Copies `from` into the empty file `to`, keeping holes: only the ranges the file system says
/// hold data are read, and zero blocks in them are left unwritten too.
fn copy_sparse(from: &File, to: &mut File) -> io::Result<()> {
    use nix::unistd::{lseek, Whence};
    use std::os::fd::AsRawFd;
    let fd = from.as_raw_fd();
    let len = from.metadata()?.len();
    to.set_len(len)?;
    let mut buf = vec![0u8; 1 << 20];
    let mut pos = 0u64;
    while pos < len {
        let data = match lseek(fd, pos as i64, Whence::SeekData) {
            Ok(at) => at as u64,
            // No data after `pos`: the rest is a hole.
            Err(nix::errno::Errno::ENXIO) => break,
            // A file system without SEEK_DATA: read everything.
            Err(nix::errno::Errno::EINVAL) => pos,
            Err(e) => return Err(e.into()),
        };
        let hole = lseek(fd, data as i64, Whence::SeekHole)
            .map_or(len, |at| at as u64)
            .min(len);
        let mut at = data;
        while at < hole {
            let want = buf.len().min((hole - at) as usize);
            let n = from.read_at(&mut buf[..want], at)?;
            if n == 0 {
                break;
            }
            write_sparse(to, at, &buf[..n])?;
            at += n as u64;
        }
        pos = hole.max(at);
    }
    Ok(())
}

/// Completes files: when the last chunk of a file is written, its temporary file gets the
/// metadata and the final name.
struct Finisher<'a> {
    files: &'a [PlannedFile],
    /// Writes still to come, per file.
    pending: Vec<AtomicUsize>,
    meta: &'a MetaWriter,
    failures: &'a Failures,
    linker: unnamed::Linker,
}

impl Finisher<'_> {
    fn chunk_written(&self, i: usize) {
        if self.pending[i].fetch_sub(1, Ordering::AcqRel) == 1 {
            self.complete(i);
        }
    }

    fn complete(&self, i: usize) {
        if self.failures.has(i) {
            return; // its temporary file is removed at the end, never renamed into place
        }
        let f = &self.files[i];
        let part = part_path(&f.path);
        let placed = self
            .meta
            .set(Entry::Path(&part), &f.node, true)
            .map_err(|e| format!("metadata: {e}"))
            .and_then(|()| place(&part, &f.path).map_err(|e| format!("rename into place: {e}")));
        if let Err(m) = placed {
            self.failures.fail(i, m);
        }
    }
}

/// True when `plain` at `off` is the whole of a file that starts fresh.
fn is_whole(f: &PlannedFile, off: u64, plain: &[u8]) -> bool {
    f.base == Base::Fresh && off == 0 && f.chunks.len() == 1 && plain.len() as u64 == f.node.size
}

/// A file written whole by one blob gets an unnamed file, its metadata through the descriptor,
/// and its name only then ([`unnamed`]). False when unnamed files are not to be had here: the
/// caller writes it under its temporary name.
fn write_whole(done: &Finisher, i: usize, plain: &[u8]) -> bool {
    let f = &done.files[i];
    let Some(file) = f.path.parent().and_then(|dir| done.linker.create(dir)) else {
        return false;
    };
    let written = write_sparse(&file, 0, plain)
        .and_then(|end| match end < f.node.size {
            true => file.set_len(f.node.size), // it ends in a hole
            false => Ok(()),
        })
        .map_err(|e| format!("write: {e}"));
    // Counted only once the file is kept: when it cannot be linked it is made again under a
    // temporary name, whose metadata counts instead.
    let mut problems = XattrProblems::default();
    let placed = written
        .and_then(|()| {
            let at = Entry::Open(&file, &f.path);
            let set = done.meta.set_noting(at, &f.node, true, &mut problems);
            set.map_err(|e| format!("metadata: {e}"))
        })
        .and_then(|()| link_whole(&done.linker, &file, &f.path));
    if !matches!(placed, Ok(false)) {
        done.meta.count(problems);
    }
    match placed {
        Ok(false) => return false,
        Ok(true) => {}
        Err(m) => done.failures.fail(i, m),
    }
    done.pending[i].fetch_sub(1, Ordering::AcqRel);
    true
}

/// Links a complete unnamed file in under its final name; what holds the name (an older file,
/// an empty folder) is replaced through the temporary name, as [`place`] does. `Ok(false)`:
/// unnamed files cannot be linked here.
fn link_whole(linker: &unnamed::Linker, file: &File, path: &Path) -> Result<bool, String> {
    let taken = match linker.link(file, path) {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => e,
        other => return other.map_err(|e| format!("link into place: {e}")),
    };
    let part = part_path(path);
    let _ = fs::remove_file(&part);
    match linker.link(file, &part) {
        Ok(true) => place(&part, path).map(|()| true),
        Ok(false) => Err(taken),
        Err(e) => Err(e),
    }
    .map_err(|e| format!("rename into place: {e}"))
}

/// Renames a complete temporary file to its final name, replacing what is there (an empty
/// folder, where the snapshot has a file, is removed first).
fn place(part: &Path, path: &Path) -> io::Result<()> {
    match fs::rename(part, path) {
        Err(e) if fs::symlink_metadata(path).is_ok_and(|m| m.is_dir()) => {
            fs::remove_dir(path).map_err(|_| e)?;
            fs::rename(part, path)
        }
        r => r,
    }
}

/// The readers: one per CPU on local storage, two per CPU on remote storage, and at least as many
/// as the backend has connections.
fn reader_pool(repo: &Repository, opts: &RestoreOptions) -> Result<rayon::ThreadPool> {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    // Each reader holds a range of up to `MAX_READ` bytes and a blob's plaintext. Local reads come
    // from the page cache or a disk that queues them, so one reader per core keeps the cores busy;
    // remote stores answer slowly, and twice as many readers keep requests in flight.
    let threads = if opts.threads != 0 {
        opts.threads
    } else if repo.backend().is_remote() {
        (2 * cores).max(repo.backend().connections())
    } else {
        cores.max(repo.backend().connections())
    };
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|e| Error::Resource {
            what: "thread pool",
            reason: e.to_string(),
        })
}

/// What the pack readers share.
struct Reading<'a> {
    repo: &'a Repository,
    done: &'a Finisher<'a>,
    progress: &'a crate::progress::ProgressSink,
    /// Bytes read from the repository.
    bytes_read: &'a AtomicU64,
}

/// Reads every pack and writes its blobs into the files. Readable packs go to the readers at
/// once; packs behind the gate as the waiter reports them thawed.
fn read_packs(r: &Reading, packs: &[PackJob], gate: Option<&PackGate>, pool: &rayon::ThreadPool) {
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
    let failures = r.done.failures;
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
                    let mut writer = FileWriter::new(r.done, r.progress);
                    restore_pack(r, pack_id, blobs, data, opener, &mut writer);
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
                for (pack, blobs) in &gated {
                    failures.fail_blobs(pack, blobs, &e.to_string());
                }
                return;
            }
        }
    }
}

/// The blobs of one pack: neighbours are read together, each blob is opened and written at its
/// places. From a remote store each blob is opened as soon as its bytes are in, so that a reader
/// holds one blob rather than its whole range.
fn restore_pack(
    r: &Reading,
    pack_id: &PackId,
    blobs: &[BlobJob],
    data: &mut Vec<u8>,
    opener: &mut BlobOpener,
    writer: &mut FileWriter,
) {
    let failures = r.done.failures;
    let streamed = r.repo.backend().is_remote();
    let mut start = 0;
    while start < blobs.len() {
        let end = coalesce(blobs, start);
        let group = &blobs[start..end];
        start = end;
        let mut open = |b: &BlobJob, sealed: &mut [u8]| match opener.open(
            r.repo.key(),
            pack_id,
            &b.entry,
            sealed,
        ) {
            Ok(plain) => writer.write(&b.targets, plain),
            Err(e) => failures.fail_blobs(pack_id, std::slice::from_ref(b), &e.to_string()),
        };
        let range = Span::of(group);
        let (read, done) = match streamed {
            true => read_streamed(r.repo, pack_id, &range, group, data, &mut open),
            false => read_whole(r.repo, pack_id, &range, group, data, &mut open),
        };
        if streamed {
            // A remote reader waits on the network between ranges; meanwhile it should not hold
            // buffers as large as the largest blob it has seen.
            pack::release_above(data, KEEP_BUFFER);
            opener.release_above(KEEP_BUFFER);
        }
        match read {
            Ok(bytes) => {
                r.bytes_read.fetch_add(bytes, Ordering::Relaxed);
            }
            Err(e) => failures.fail_blobs(pack_id, &group[done..], &e.to_string()),
        }
    }
}

/// The range of a pack that one read covers.
struct Span {
    blob_type: BlobType,
    offset: u64,
    len: u64,
}

impl Span {
    /// The range from the first blob of `group` (sorted by offset, not empty) to its last byte.
    fn of(group: &[BlobJob]) -> Self {
        let offset = group[0].entry.offset as u64;
        let end = group
            .iter()
            .map(|b| b.entry.offset as u64 + b.entry.length as u64)
            .max()
            .unwrap_or(offset);
        Self {
            blob_type: group[0].entry.blob_type,
            offset,
            len: end - offset,
        }
    }
}

/// Reads a group's range into `data`, then hands each blob to `open`. Returns the bytes read, or
/// the error and how many blobs were handed on before it.
fn read_whole(
    repo: &Repository,
    pack_id: &PackId,
    range: &Span,
    group: &[BlobJob],
    data: &mut Vec<u8>,
    open: &mut dyn FnMut(&BlobJob, &mut [u8]),
) -> (Result<u64>, usize) {
    let Span {
        blob_type,
        offset,
        len,
    } = *range;
    if let Err(e) = repo.read_pack_range_into(blob_type, pack_id, offset, len, data) {
        return (Err(e), 0);
    }
    for b in group {
        let lo = (b.entry.offset as u64 - offset) as usize;
        open(b, &mut data[lo..lo + b.entry.length as usize]);
    }
    (Ok(len), group.len())
}

/// As [`read_whole`], handing each blob to `open` as soon as its bytes have arrived.
fn read_streamed(
    repo: &Repository,
    pack_id: &PackId,
    range: &Span,
    group: &[BlobJob],
    data: &mut Vec<u8>,
    open: &mut dyn FnMut(&BlobJob, &mut [u8]),
) -> (Result<u64>, usize) {
    let mut asm = stream::Assembler::new(group, data);
    let read = repo.read_pack_range_with(
        range.blob_type,
        pack_id,
        range.offset,
        range.len,
        &mut |bytes| asm.push(bytes, open),
    );
    (read.map(|()| range.len), asm.done)
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

/// Writes plaintext into the temporary files, keeping a bounded number of them open.
struct FileWriter<'a> {
    done: &'a Finisher<'a>,
    handles: HashMap<usize, File>,
    progress: &'a crate::progress::ProgressSink,
}

impl<'a> FileWriter<'a> {
    fn new(done: &'a Finisher<'a>, progress: &'a crate::progress::ProgressSink) -> Self {
        Self {
            done,
            handles: HashMap::new(),
            progress,
        }
    }

    /// Writes `plain` at each (file, offset) of `targets`.
    fn write(&mut self, targets: &[(usize, u64)], plain: &[u8]) {
        for (i, off) in targets {
            let f = &self.done.files[*i];
            self.progress.file_started(&f.path);
            if is_whole(f, *off, plain) && write_whole(self.done, *i, plain) {
                self.progress.bytes_done(plain.len() as u64);
                continue;
            }
            if self.handles.len() >= MAX_OPEN_FILES && !self.handles.contains_key(i) {
                // A pack may hold blobs of thousands of small files: keep the number of open
                // descriptors bounded.
                self.handles.clear();
            }
            let h = match self.handles.entry(*i) {
                std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
                std::collections::hash_map::Entry::Vacant(v) => {
                    match open_at_size(&part_path(&f.path), f.node.size) {
                        Ok(h) => v.insert(h),
                        Err(e) => {
                            self.done.failures.fail(*i, format!("open: {e}"));
                            continue;
                        }
                    }
                }
            };
            // A temporary file that continues from older bytes gets every byte written; a
            // fresh one keeps its zero blocks as holes.
            let written = match f.base {
                Base::Fresh => write_sparse(h, *off, plain).map(|_| ()),
                _ => h.write_all_at(plain, *off),
            };
            match written {
                Ok(()) => {
                    self.progress.bytes_done(plain.len() as u64);
                    self.done.chunk_written(*i);
                }
                Err(e) => self.done.failures.fail(*i, format!("write: {e}")),
            }
        }
    }
}

/// Hard links, then the counts; a file with any failure loses its temporary file and is
/// reported: it never reaches its final name.
fn finish_files(plan: &Plan, mut failures: BTreeMap<usize, Failure>, summary: &mut RestoreSummary) {
    for (i, f) in plan.files.iter().enumerate() {
        let Some(j) = f.link_to.filter(|_| !f.skip) else {
            continue;
        };
        if let Some((msg, pack)) = failures.get(&j).cloned() {
            failures.insert(i, (format!("hard link to a file that failed: {msg}"), pack));
            continue;
        }
        if let Err(e) = clear(&f.path).and_then(|_| fs::hard_link(&plan.files[j].path, &f.path)) {
            failures.insert(i, (format!("hard link: {e}"), None));
        }
    }
    for (i, f) in plan.files.iter().enumerate() {
        let size = f.node.size;
        summary.total_files += 1;
        summary.total_bytes += size;
        if failures.contains_key(&i) {
            if f.link_to.is_none() {
                let _ = fs::remove_file(part_path(&f.path));
            }
        } else if f.skip {
            summary.files_skipped += 1;
            summary.bytes_skipped += size;
        } else {
            summary.files_restored += 1;
            summary.bytes_restored += size;
            if f.link_to.is_none() {
                summary.bytes_in_place += size - pending_bytes(f);
            }
        }
    }
    for (i, (message, pack)) in failures {
        summary.errors.push(RestoreError {
            path: plan.files[i].path.clone(),
            message,
            pack,
        });
    }
}

/// Links, fifos and devices, then folder metadata, deepest first, so that setting a child's
/// mtime does not change its parent's. `--overwrite never` leaves existing entries alone.
fn finish_others_and_folders(
    plan: &Plan,
    overwrite: Overwrite,
    meta: &MetaWriter,
    summary: &mut RestoreSummary,
) {
    for (path, node) in &plan.others {
        if overwrite == Overwrite::Never && fs::symlink_metadata(path).is_ok() {
            continue;
        }
        match restore_other(path, node, meta) {
            Ok(true) => summary.others += 1,
            Ok(false) => summary.others_skipped += 1,
            Err(e) => summary.errors.push(RestoreError {
                path: path.clone(),
                message: e.to_string(),
                pack: None,
            }),
        }
    }
    for (path, node) in plan.dirs.iter().rev() {
        match meta.set(Entry::Path(path), node, false) {
            Ok(()) => summary.dirs += 1,
            Err(e) => summary.errors.push(RestoreError {
                path: path.clone(),
                message: format!("metadata: {e}"),
                pack: None,
            }),
        }
    }
}

/// `--verify`: every file the restore covered and did not fail, restored or left alone, is
/// read back and its chunks hashed. A chunk that differs is reported with its pack.
fn verify_files(repo: &Repository, index: &Index, plan: &Plan, summary: &mut RestoreSummary) {
    let hash = |d: &[u8]| repo.key().blob_id(BlobType::Data, d);
    let failed: HashSet<&Path> = summary.errors.iter().map(|e| e.path.as_path()).collect();
    let results: Vec<(PathBuf, std::result::Result<(), local::Mismatch>, &[Chunk])> = plan
        .files
        .par_iter()
        .filter(|f| f.problem.is_none() && !failed.contains(f.path.as_path()))
        .map(|f| {
            let chunks = match f.link_to {
                Some(j) => &plan.files[j].chunks,
                None => &f.chunks,
            };
            let r = local::verify(&f.path, f.node.size, chunks, &hash);
            (f.path.clone(), r, chunks.as_slice())
        })
        .collect();
    for (path, r, chunks) in results {
        match r {
            Ok(()) => summary.files_verified += 1,
            Err(m) => summary.verify_errors.push(RestoreError {
                path,
                pack: m
                    .chunk
                    .and_then(|k| chunks.get(k))
                    .and_then(|c| index.get(&c.id))
                    .map(|loc| loc.pack),
                message: m.message,
            }),
        }
    }
}

/// Restores a symlink, fifo or device. `Ok(false)` when the kind is skipped (sockets, or devices
/// when not root).
fn restore_other(path: &Path, node: &Node, meta: &MetaWriter) -> io::Result<bool> {
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
            let at = Entry::Path(path);
            set_owner(at, node)?;
            meta.set_xattrs(at, node, true);
            set_times(at, node)?;
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
    meta.set(Entry::Path(path), node, true)?;
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
        assert_eq!((summary.files_restored, summary.others), (3, 1));
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
            overwrite: Overwrite::Always,
            ..opts(out.path())
        };
        restore(&repo, &index, &snap, "", &again).unwrap();
        assert_eq!(fs::read(at.join("dir/small")).unwrap(), b"abc");
    }

    #[test]
    fn a_killed_restore_is_continued_from_its_temporary_file() {
        let repo = memory_repo();
        let src = tempfile::tempdir().unwrap();
        let big = noise(9, 6 << 20);
        write_files(src.path(), &[("big", &big), ("small", b"abc")]);
        let id = backup_dir(&repo, src.path(), &[]);
        let index = repo.load_index().unwrap();
        let snap = entry(&repo, id).snapshot;
        let out = tempfile::tempdir().unwrap();
        let at = out.path().join(src.path().strip_prefix("/").unwrap());
        fs::create_dir_all(&at).unwrap();
        // What a restore killed half-way through "big" leaves: its first half, under the
        // temporary name; and a leftover of a file the snapshot does not have.
        let part = local::part_path(&at.join("big"));
        fs::write(&part, &big[..3 << 20]).unwrap();
        fs::write(local::part_path(&at.join("gone")), b"stale").unwrap();
        let summary = restore(&repo, &index, &snap, "", &opts(out.path())).unwrap();
        assert!(summary.errors.is_empty(), "{:?}", summary.errors);
        assert!(fs::read(at.join("big")).unwrap() == big);
        assert!(!part.exists() && !local::part_path(&at.join("gone")).exists());
        assert!(summary.bytes_in_place > 1 << 20, "{summary:?}");
        assert!(summary.bytes_read < 5 << 20, "{summary:?}");
    }

    #[test]
    fn if_changed_leaves_matching_files_and_verify_reads_them_back() {
        let repo = memory_repo();
        let src = tempfile::tempdir().unwrap();
        write_files(src.path(), &[("a", b"first"), ("b", b"second")]);
        let id = backup_dir(&repo, src.path(), &[]);
        let index = repo.load_index().unwrap();
        let snap = entry(&repo, id).snapshot;
        let out = tempfile::tempdir().unwrap();
        let at = out.path().join(src.path().strip_prefix("/").unwrap());
        restore(&repo, &index, &snap, "", &opts(out.path())).unwrap();
        // Same size and time, other bytes: the quick check cannot tell, --verify can.
        let a = at.join("a");
        let mtime = fs::metadata(&a).unwrap().modified().unwrap();
        fs::write(&a, b"FIRST").unwrap();
        File::options()
            .write(true)
            .open(&a)
            .unwrap()
            .set_modified(mtime)
            .unwrap();
        let again = RestoreOptions {
            overwrite: Overwrite::IfChanged,
            verify: true,
            ..opts(out.path())
        };
        let summary = restore(&repo, &index, &snap, "", &again).unwrap();
        assert_eq!(
            (summary.files_skipped, summary.files_restored),
            (2, 0),
            "{summary:?}"
        );
        assert_eq!(summary.verify_errors.len(), 1, "{summary:?}");
        assert_eq!(summary.verify_errors[0].path, a);
        assert!(
            summary.verify_errors[0].pack.is_some(),
            "the differing chunk's pack is named"
        );
        assert_eq!(summary.files_verified, 1);
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
