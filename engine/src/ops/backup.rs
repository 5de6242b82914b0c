//! Backup: list the sources and read their metadata on a lister thread, compare, chunk and hash
//! on the walking thread, compress, seal and pack on worker threads, write packs on writer
//! threads (ARCHITECTURE.md, "Backup pipeline").
//!
//! ```text
//! lister ──(bounded: entries)──> walker ──(bounded: chunks)──> workers ×N
//!   stat, xattrs,                   parent compare, read,            zstd, XChaCha20-Poly1305
//!   link targets                    FastCDC, keyed BLAKE3,           in place
//!                                   dedup, trees                         │
//!                                                         (packers)──(bounded: packs)──> writers ──> backend
//!                                                                                        pack files, then
//!                                                                                        index files
//! ```
//!
//! Hashing on the walker is cheap (BLAKE3 runs an order of magnitude faster than zstd) and gives
//! each blob its id at once, so trees are built in walk order while the costly stages run in
//! parallel on many chunks of the same file. Bounded queues give backpressure; chunk buffers are
//! recycled through a pool. Ordering: packs are written before the index files naming them, and
//! index files before the snapshot.

use std::collections::{HashMap, HashSet};
use std::fs::{self, File, Metadata};
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use chrono::{DateTime, FixedOffset, Utc};
use crossbeam_channel::{bounded, Receiver, Sender};

use crate::error::{Error, Result};
use crate::format::chunker::{ChunkReader, Chunker};
use crate::format::crypto::MasterKey;
use crate::format::crypto::NONCE_LEN;
use crate::format::pack::{BlobSealer, BlobType, PackEntry, Packer, SealedBlob, UnhashedPack};
use crate::format::snapshot::{Snapshot, SnapshotSummary};
use crate::format::tree::{ByteString, Node, NodeKind, Tree, Xattr};
use crate::id::{BlobId, PackHasher, PackId, SnapshotId};
use crate::progress::FileChange;
use crate::repo::index::{Index, IndexFile};
use crate::repo::repository::{host_and_user, now_local, Repository};
use crate::storage::{Backend, DryRunBackend, Staged};

mod sources;

use sources::{prepare_sources, start_lister, Entry, Listed, Role, Rules};
pub use sources::{scan, ScanTotals};

/// Packs written between two index files during a long backup, so that a backup cut short
/// leaves most of its work indexed and reusable.
const PACKS_PER_INDEX_FILE: usize = 64;
/// Pack writers at least: each write ends with an fsync, and two in flight keep the disk busy
/// while the other waits for its flush. Object stores ask for more
/// ([`crate::storage::Backend::connections`]).
const MIN_WRITERS: usize = 2;
/// Largest encoded tree (pack entry lengths stay below 2^31; format-spec "Pack header").
const MAX_TREE_BLOB: usize = 1 << 30;

/// What to back up and how.
#[derive(Debug, Clone, Default)]
pub struct BackupOptions {
    /// Source paths (files or folders).
    pub paths: Vec<PathBuf>,
    /// Tags for the snapshot.
    pub tags: Vec<String>,
    /// Host name to record instead of this machine's.
    pub host: Option<String>,
    /// Snapshot time instead of now.
    pub time: Option<DateTime<FixedOffset>>,
    /// Exclude patterns (see [`crate::exclude::PathMatcher`]).
    pub excludes: Vec<String>,
    /// Exclude patterns matched without regard to case.
    pub iexcludes: Vec<String>,
    /// Leave out folders that hold an entry of this name; `NAME:HEADER` also needs that entry
    /// to be a file starting with the bytes of HEADER (`CACHEDIR.TAG:Signature: 8a47…`).
    pub exclude_if_present: Vec<String>,
    /// Leave out regular files larger than this many bytes.
    pub exclude_larger_than: Option<u64>,
    /// Do not descend into other file systems.
    pub one_file_system: bool,
    /// Extended attributes not to record, by name pattern (`security.selinux`, `user.*`).
    pub exclude_xattrs: Vec<String>,
    /// Do everything but write to the repository.
    pub dry_run: bool,
    /// Use this snapshot as the parent instead of the latest of the same host and paths.
    pub parent: Option<SnapshotId>,
    /// Read every file, ignoring any parent.
    pub force: bool,
    /// Worker threads (0: one per core).
    pub threads: usize,
    /// The health of the lock the caller holds: checked before index files and the snapshot
    /// are saved.
    pub lock: crate::repo::lock::LockHealth,
    /// Where the backup reports the files and bytes it has done.
    pub progress: crate::progress::ProgressSink,
}

/// A source entry that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SourceError {
    /// Its path.
    #[serde(serialize_with = "crate::report::lossy_path")]
    pub path: PathBuf,
    /// Why.
    pub message: String,
}

/// The outcome of a backup.
#[derive(Debug, Clone)]
pub struct BackupReport {
    /// Id of the snapshot (as it was or would have been written).
    pub snapshot_id: SnapshotId,
    /// The snapshot.
    pub snapshot: Snapshot,
    /// Entries left out because they could not be read.
    pub errors: Vec<SourceError>,
    /// Entries kept without some of their metadata: extended attributes that could not be read,
    /// or that a version 1 repository cannot hold (one entry for all of those).
    pub warnings: Vec<SourceError>,
    /// Files whose size, times or inode differed after they were read: stored as read, which
    /// may be a mix of old and new content.
    pub changed_while_read: Vec<PathBuf>,
    /// True when nothing was written.
    pub dry_run: bool,
}

/// A chunk on its way to a worker.
struct Job {
    blob_type: BlobType,
    id: BlobId,
    /// `NONCE_LEN` bytes of room, then the plaintext.
    buf: Vec<u8>,
}

/// A pack being filled: held in memory, or written to the storage blob by blob as it fills
/// when the storage takes objects in pieces ([`crate::storage::Backend::stage`]), which keeps
/// whole packs out of memory.
struct OpenPack<'r> {
    packer: Packer,
    /// Whether the storage takes packs in pieces: known from the first blob on.
    streams: Option<bool>,
    /// The storage's object for this pack and the hash of what went into it, once a blob did.
    out: Option<(Box<dyn Staged + 'r>, PackHasher)>,
}

/// A full pack on its way to a writer.
enum ReadyPack<'r> {
    /// Held whole, to be hashed and stored.
    Held(UnhashedPack),
    /// Written to the storage already, to be named.
    Staged {
        staged: Box<dyn Staged + 'r>,
        id: PackId,
        entries: Vec<PackEntry>,
        blob_type: BlobType,
    },
}

impl<'r> OpenPack<'r> {
    /// An empty pack; the storage is asked for a file on its first blob, so a backup that adds
    /// nothing creates none.
    fn new(packer: Packer) -> Self {
        Self {
            packer,
            streams: None,
            out: None,
        }
    }

    /// Adds a sealed blob; returns the pack once full.
    fn add(
        &mut self,
        backend: &'r dyn Backend,
        key: &MasterKey,
        blob: &SealedBlob,
    ) -> Result<Option<ReadyPack<'r>>> {
        if self.out.is_none() && self.streams != Some(false) {
            let staged = backend.stage(self.packer.blob_type().pack_file_type())?;
            self.streams = Some(staged.is_some());
            self.out = staged.map(|s| (s, PackHasher::default()));
        }
        match self.out.as_mut() {
            Some((staged, hasher)) => {
                let appended = self.packer.add_with(blob, |bytes| {
                    hasher.update(bytes);
                    staged.append(bytes)
                });
                if appended.is_err() {
                    self.abandon();
                }
                appended?;
            }
            None => self.packer.add(blob),
        }
        if !self.packer.is_full() {
            return Ok(None);
        }
        Ok(Some(self.finish(key)?))
    }

    /// Drops a pack that cannot be completed, blobs and entries: the next blob starts a new
    /// pack. Its file goes at once, so that on a full disk its room is back for the index of the
    /// packs already stored.
    fn abandon(&mut self) {
        self.out = None;
        self.packer.discard();
    }

    /// Seals the pack's header and hands the pack out; the next blob starts a new one.
    fn finish(&mut self, key: &MasterKey) -> Result<ReadyPack<'r>> {
        let pack = self.packer.finish_unhashed(key);
        if self.streams != Some(true) {
            return Ok(ReadyPack::Held(pack));
        }
        // A pack written in pieces has its file from its first blob on; without one, its blobs
        // were abandoned and there is nothing to store.
        let (mut staged, mut hasher) = self.out.take().ok_or(Error::Aborted("backup"))?;
        let (rest, entries, blob_type) = pack.into_parts();
        hasher.update(&rest);
        staged.append(&rest)?;
        Ok(ReadyPack::Staged {
            staged,
            id: hasher.finish(),
            entries,
            blob_type,
        })
    }
}

/// State shared by workers and the writer.
struct Shared<'r> {
    repo: &'r Repository,
    data_packer: Mutex<OpenPack<'r>>,
    tree_packer: Mutex<OpenPack<'r>>,
    bytes_added: AtomicU64,
    failed: AtomicBool,
    error: Mutex<Option<Error>>,
    pool_tx: Sender<Vec<u8>>,
    /// Buffers of written data packs, for the data packer to fill again.
    pack_pool: (Sender<Vec<u8>>, Receiver<Vec<u8>>),
    /// Packs written and not yet named by an index file.
    pending_index: Mutex<IndexFile>,
    lock: crate::repo::lock::LockHealth,
}

impl<'r> Shared<'r> {
    fn fail(&self, e: Error) {
        self.failed.store(true, Ordering::SeqCst);
        let mut slot = self.error.lock().unwrap_or_else(|p| p.into_inner());
        slot.get_or_insert(e);
    }

    fn packer(&self, t: BlobType) -> &Mutex<OpenPack<'r>> {
        match t {
            BlobType::Data => &self.data_packer,
            BlobType::Tree => &self.tree_packer,
        }
    }
}

fn worker<'r>(shared: &Shared<'r>, jobs: Receiver<Job>, packs: Sender<ReadyPack<'r>>) {
    let mut sealer = match BlobSealer::with(shared.repo.blob_compression()) {
        Ok(s) => s,
        Err(e) => return shared.fail(Error::io("start zstd", "compressor", e)),
    };
    let (key, backend) = (shared.repo.key(), shared.repo.backend().as_ref());
    for job in jobs {
        if shared.failed.load(Ordering::SeqCst) {
            continue; // drain so that the walker never blocks
        }
        let sealed = sealer.seal(key, job.blob_type, job.id, job.buf);
        shared
            .bytes_added
            .fetch_add(sealed.bytes.len() as u64, Ordering::Relaxed);
        let full = {
            let mut p = shared
                .packer(job.blob_type)
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            // Checked under the lock, and failures recorded under it: once a pack failed, no
            // other worker adds to the packer it left.
            if shared.failed.load(Ordering::SeqCst) {
                continue;
            }
            if p.packer.is_empty() && p.streams == Some(false) && job.blob_type == BlobType::Data {
                if let Ok(buf) = shared.pack_pool.1.try_recv() {
                    p.packer.recycle(buf);
                }
            }
            p.add(backend, key, &sealed).unwrap_or_else(|e| {
                shared.fail(e);
                None
            })
        };
        let _ = shared.pool_tx.try_send(sealed.bytes);
        if let Some(pack) = full {
            if packs.send(pack).is_err() {
                return; // the writers stopped
            }
        }
    }
}

/// Stores a full pack: whole, or by naming what was written as it filled. Returns its id, type,
/// size and entries, and the buffer of a pack held whole for reuse.
fn store(repo: &Repository, pack: ReadyPack<'_>) -> Result<(StoredPack, Option<Vec<u8>>)> {
    match pack {
        ReadyPack::Held(pack) => {
            let pack = pack.hash();
            let size = pack.bytes.len() as u64;
            let returned = repo.backend().write_owned(
                pack.blob_type.pack_file_type(),
                pack.id.as_bytes(),
                pack.bytes,
            )?;
            let stored = StoredPack {
                id: pack.id,
                blob_type: pack.blob_type,
                size,
                entries: pack.entries,
            };
            Ok((stored, returned))
        }
        ReadyPack::Staged {
            staged,
            id,
            entries,
            blob_type,
        } => {
            let size = staged.len();
            staged.commit(id.as_bytes())?;
            let stored = StoredPack {
                id,
                blob_type,
                size,
                entries,
            };
            Ok((stored, None))
        }
    }
}

/// A pack that is durable in the storage.
struct StoredPack {
    id: PackId,
    blob_type: BlobType,
    size: u64,
    entries: Vec<PackEntry>,
}

fn writer<'r>(shared: &Shared<'r>, packs: Receiver<ReadyPack<'r>>) {
    let repo = shared.repo;
    for pack in packs {
        if shared.failed.load(Ordering::SeqCst) {
            continue; // drain so that senders never block
        }
        // Hashing a held pack here keeps it off the packer's lock and the compressing threads.
        let r = store(repo, pack).and_then(|(stored, returned)| {
            // Only a pack that is durable joins the pending index.
            let full = {
                let mut pending = shared
                    .pending_index
                    .lock()
                    .unwrap_or_else(|p| p.into_inner());
                pending.add_pack(stored.id, stored.blob_type, stored.size, &stored.entries);
                (pending.packs.len() >= PACKS_PER_INDEX_FILE).then(|| std::mem::take(&mut *pending))
            };
            if let Some(file) = full {
                shared.lock.check()?;
                repo.save_index(&file)?;
            }
            Ok(returned.filter(|_| stored.blob_type == BlobType::Data))
        });
        match r {
            Err(e) => shared.fail(e),
            Ok(Some(buf)) => {
                let _ = shared.pack_pool.0.try_send(buf);
            }
            Ok(None) => {}
        }
    }
}

/// Cache of user and group names.
#[derive(Default)]
struct Names {
    users: HashMap<u32, Option<String>>,
    groups: HashMap<u32, Option<String>>,
}

impl Names {
    fn user(&mut self, uid: u32) -> Option<String> {
        self.users
            .entry(uid)
            .or_insert_with(|| {
                nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
                    .ok()
                    .flatten()
                    .map(|u| u.name)
            })
            .clone()
    }
    fn group(&mut self, gid: u32) -> Option<String> {
        self.groups
            .entry(gid)
            .or_insert_with(|| {
                nix::unistd::Group::from_gid(nix::unistd::Gid::from_raw(gid))
                    .ok()
                    .flatten()
                    .map(|g| g.name)
            })
            .clone()
    }
}

fn timestamp(secs: i64, nanos: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(secs, nanos.clamp(0, 999_999_999) as u32).unwrap_or_default()
}

/// A reader that reports the bytes read as progress, as they come (a chunk may take long to fill
/// from a slow stream).
struct Counted<R> {
    inner: R,
    progress: crate::progress::ProgressSink,
}

impl<R: io::Read> io::Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.progress.bytes_done(n as u64);
        Ok(n)
    }
}

/// The walker: everything that runs on the thread that reads the sources.
struct Walker<'a, 'r> {
    repo: &'a Repository,
    index: &'a Index,
    chunker: Chunker,
    jobs: Sender<Job>,
    pool: Receiver<Vec<u8>>,
    shared: &'a Shared<'r>,
    /// What the lister read of the sources, in walk order (nothing for a stream).
    listed: Receiver<Listed>,
    progress: crate::progress::ProgressSink,
    /// Blobs submitted during this run (the index holds the rest).
    seen: HashSet<BlobId>,
    /// Content of files with several links, by (device, inode), so each is read once.
    hardlinks: HashMap<(u64, u64), (u64, i64, Vec<BlobId>)>,
    names: Names,
    read_buf: Vec<u8>,
    /// Largest data chunk.
    max_chunk: usize,
    summary: SnapshotSummary,
    errors: Vec<SourceError>,
    warnings: Vec<SourceError>,
    changed: Vec<PathBuf>,
    /// True when the repository's trees can hold extended attributes (format version 2 on).
    records_xattrs: bool,
    /// In a version 1 repository: entries whose attributes could not be recorded, and the first.
    xattrs_dropped: (u64, Option<PathBuf>),
}

/// Stops the walk once a worker or the writer has failed.
struct Aborted;

impl<'a, 'r> Walker<'a, 'r> {
    fn check(&self) -> std::result::Result<(), Aborted> {
        if self.shared.failed.load(Ordering::Relaxed) {
            Err(Aborted)
        } else {
            Ok(())
        }
    }

    fn submit(
        &mut self,
        blob_type: BlobType,
        id: BlobId,
        data: &[u8],
    ) -> std::result::Result<(), Aborted> {
        if self.index.contains(&id) || !self.seen.insert(id) {
            return Ok(());
        }
        match blob_type {
            BlobType::Data => self.summary.data_blobs_added += 1,
            BlobType::Tree => self.summary.tree_blobs_added += 1,
        }
        let mut buf = self.pool.try_recv().unwrap_or_default();
        buf.clear();
        // Data buffers are sized for the largest chunk once, so that recycled buffers never
        // grow again: a reallocation would copy and fault in fresh pages for every chunk.
        let room = match blob_type {
            BlobType::Data => data.len().max(self.max_chunk),
            BlobType::Tree => data.len(),
        };
        buf.reserve(NONCE_LEN + room + crate::format::crypto::TAG_LEN);
        buf.resize(NONCE_LEN, 0);
        buf.extend_from_slice(data);
        self.jobs
            .send(Job { blob_type, id, buf })
            .map_err(|_| Aborted)
    }

    fn error(&mut self, path: &Path, e: impl std::fmt::Display) {
        self.summary.errors += 1;
        self.errors.push(SourceError {
            path: path.to_path_buf(),
            message: e.to_string(),
        });
    }

    fn warn(&mut self, path: &Path, message: String) {
        self.warnings.push(SourceError {
            path: path.to_path_buf(),
            message,
        });
    }

    /// The entry's extended attributes as the lister read them; when they could not be read,
    /// a warning, and the entry is kept without them. A version 1 repository records none: the
    /// entries that had some are counted.
    fn xattrs(&mut self, path: &Path, read: io::Result<Vec<Xattr>>) -> Vec<Xattr> {
        match read {
            Ok(found) if !self.records_xattrs => {
                if !found.is_empty() {
                    let (count, first) = &mut self.xattrs_dropped;
                    *count += 1;
                    first.get_or_insert_with(|| path.to_path_buf());
                }
                Vec::new()
            }
            Ok(found) => found,
            Err(e) => {
                self.warn(path, format!("extended attributes not recorded: {e}"));
                Vec::new()
            }
        }
    }

    /// In a version 1 repository, one warning for all the attributes that were left out.
    fn report_dropped_xattrs(&mut self) {
        if let (count @ 1.., Some(first)) = std::mem::take(&mut self.xattrs_dropped) {
            self.warn(
                &first,
                format!(
                    "extended attributes not recorded: this repository is of format version 1, \
                     which cannot hold them ({count} entries have some, the first named here); \
                     `floe migrate upgrade_repo_v2` upgrades it"
                ),
            );
        }
    }

    fn base_node(
        &mut self,
        path: &Path,
        name: &[u8],
        meta: &Metadata,
        kind: NodeKind,
        xattrs: io::Result<Vec<Xattr>>,
    ) -> Node {
        let xattrs = self.xattrs(path, xattrs);
        Node {
            name: ByteString(name.to_vec()),
            kind,
            mode: meta.mode() & 0o7777,
            uid: meta.uid(),
            gid: meta.gid(),
            user: self.names.user(meta.uid()),
            group: self.names.group(meta.gid()),
            mtime: timestamp(meta.mtime(), meta.mtime_nsec()),
            ctime: timestamp(meta.ctime(), meta.ctime_nsec()),
            inode: meta.ino(),
            device_id: meta.dev(),
            links: meta.nlink(),
            size: 0,
            content: None,
            subtree: None,
            link_target: None,
            rdev: None,
            xattrs,
        }
    }

    /// Reads a file's content into blobs. Errors are the file's own (unreadable, vanished).
    fn read_content(
        &mut self,
        path: &Path,
    ) -> io::Result<std::result::Result<(Vec<BlobId>, u64), Aborted>> {
        self.read_chunks(File::open(path)?)
    }

    /// Cuts what `source` yields into data blobs and submits the new ones.
    fn read_chunks(
        &mut self,
        source: impl io::Read,
    ) -> io::Result<std::result::Result<(Vec<BlobId>, u64), Aborted>> {
        let buf = std::mem::take(&mut self.read_buf);
        let source = Counted {
            inner: source,
            progress: self.progress.clone(),
        };
        let mut reader = ChunkReader::with_buffer(source, self.chunker.clone(), buf);
        let mut ids = Vec::new();
        let result = loop {
            match reader.next_chunk() {
                Ok(Some(chunk)) => {
                    let id = self.repo.key().blob_id(BlobType::Data, chunk);
                    ids.push(id);
                    // `submit` needs `self`; the chunk borrows the reader, not `self`.
                    if self.submit(BlobType::Data, id, chunk).is_err() {
                        break Ok(Err(Aborted));
                    }
                }
                Ok(None) => break Ok(Ok((ids, reader.bytes_read()))),
                Err(e) => break Err(e),
            }
        };
        self.read_buf = reader.into_buffer();
        result
    }

    fn file_node(
        &mut self,
        path: &Path,
        name: &[u8],
        meta: &Metadata,
        xattrs: io::Result<Vec<Xattr>>,
        parent: Option<&Node>,
    ) -> std::result::Result<Option<Node>, Aborted> {
        let mut node = self.base_node(path, name, meta, NodeKind::File, xattrs);
        let unchanged = parent.filter(|p| {
            p.kind == NodeKind::File
                && p.size == meta.size()
                && p.mtime == node.mtime
                && p.ctime == node.ctime
                && p.inode == node.inode
                && p.content.as_ref().is_some_and(|c| {
                    c.iter()
                        .all(|id| self.index.contains(id) || self.seen.contains(id))
                })
        });
        if let Some(p) = unchanged {
            self.summary.files_unchanged += 1;
            self.summary.total_bytes += p.size;
            self.progress.bytes_done(p.size);
            self.progress.file_done(path, FileChange::Unchanged, p.size);
            node.size = p.size;
            node.content = p.content.clone();
            return Ok(Some(node));
        }
        let change = if parent.is_some() {
            FileChange::Changed
        } else {
            FileChange::New
        };
        let progress = self.progress.clone();
        let count = |s: &mut SnapshotSummary, size: u64| {
            s.total_bytes += size;
            match change {
                FileChange::Changed => s.files_changed += 1,
                _ => s.files_new += 1,
            }
            progress.file_done(path, change, size);
        };
        let link_key = (meta.dev(), meta.ino());
        if meta.nlink() > 1 {
            if let Some((size, mtime, content)) = self.hardlinks.get(&link_key) {
                if *size == meta.size() && *mtime == meta.mtime() {
                    progress.bytes_done(*size);
                    count(&mut self.summary, *size);
                    node.size = *size;
                    node.content = Some(content.clone());
                    return Ok(Some(node));
                }
            }
        }
        // The lister read the metadata up to a thousand entries ago: read it again before the
        // content, so that the node and the check for changes during the read go by the file
        // as it is now.
        let fresh = match fs::symlink_metadata(path) {
            Ok(m) if m.is_file() => m,
            Ok(_) => {
                self.error(path, "no longer a regular file");
                return Ok(None);
            }
            Err(e) => {
                self.error(path, e);
                return Ok(None);
            }
        };
        if !same_file_state(meta, &fresh) {
            let xattrs = Ok(std::mem::take(&mut node.xattrs));
            node = self.base_node(path, name, &fresh, NodeKind::File, xattrs);
        }
        let meta = &fresh;
        self.progress.file_started(path);
        match self.read_content(path) {
            Ok(Ok((content, read))) => {
                count(&mut self.summary, read);
                self.summary.bytes_read += read;
                if changed_while_read(path, meta, read) {
                    self.summary.files_changed_while_read += 1;
                    self.changed.push(path.to_path_buf());
                }
                node.size = read;
                if meta.nlink() > 1 {
                    self.hardlinks
                        .insert(link_key, (read, meta.mtime(), content.clone()));
                }
                node.content = Some(content);
                Ok(Some(node))
            }
            Ok(Err(Aborted)) => Err(Aborted),
            Err(e) => {
                self.error(path, e);
                Ok(None)
            }
        }
    }

    /// The entries of a folder as the lister sends them, up to the folder's end, with `parent`
    /// the folder's tree in the parent snapshot.
    fn children(&mut self, parent: Option<&Tree>) -> std::result::Result<Tree, Aborted> {
        let mut tree = Tree::default();
        // Entries come in name order, as the parent's nodes are stored.
        let mut cursor = 0;
        loop {
            self.check()?;
            let Ok(listed) = self.listed.recv() else {
                // The lister ends with the root's `End`: a channel closed before means it died.
                self.shared.fail(Error::WorkerPanicked("source lister"));
                return Err(Aborted);
            };
            match listed {
                Listed::End => return Ok(tree),
                Listed::Failed { path, error } => self.error(&path, error),
                Listed::Entry(entry) => {
                    let prev = parent.and_then(|t| t.get_from(&mut cursor, entry.name()));
                    if let Some(node) = self.entry_node(*entry, prev)? {
                        tree.nodes.push(node);
                    }
                }
            }
        }
    }

    /// Builds the node of one entry (with a folder's entries). `None` when it was left out.
    fn entry_node(
        &mut self,
        entry: Entry,
        parent: Option<&Node>,
    ) -> std::result::Result<Option<Node>, Aborted> {
        let Entry {
            path,
            meta,
            xattrs,
            link,
            role,
        } = entry;
        let name = sources::name_of(&path);
        let ft = meta.file_type();
        // A folder above the sources is one whatever its metadata says now: the lister sends
        // its entries and its end after it (it may have been replaced since the sources were
        // found).
        if ft.is_file() && role != Role::Above {
            return self.file_node(&path, name, &meta, xattrs, parent);
        }
        if ft.is_dir() || role == Role::Above {
            let mut node = self.base_node(&path, name, &meta, NodeKind::Dir, xattrs);
            let parent_tree = match role {
                Role::Marked => None,
                Role::Source | Role::Above => self.parent_subtree(parent),
            };
            let tree = self.children(parent_tree.as_ref().map(|(_, t)| t))?;
            if role != Role::Above {
                self.summary.dirs += 1;
            }
            node.subtree = Some(match parent_tree {
                // The same nodes as in the parent: the same tree, stored already.
                Some((id, old)) if old.nodes == tree.nodes => id,
                _ => self.save_tree(&tree)?,
            });
            return Ok(Some(node));
        }
        self.summary.others += 1;
        let kind = if ft.is_symlink() {
            NodeKind::Symlink
        } else if ft.is_fifo() {
            NodeKind::Fifo
        } else if ft.is_char_device() {
            NodeKind::Chardev
        } else if ft.is_block_device() {
            NodeKind::Blockdev
        } else {
            NodeKind::Socket
        };
        let mut node = self.base_node(&path, name, &meta, kind, xattrs);
        match (kind, link) {
            (NodeKind::Symlink, Some(Ok(t))) => {
                node.link_target = Some(ByteString::from_os(t.as_os_str()))
            }
            (NodeKind::Symlink, Some(Err(e))) => {
                self.error(&path, e);
                return Ok(None);
            }
            (NodeKind::Chardev | NodeKind::Blockdev, _) => node.rdev = Some(meta.rdev()),
            _ => {}
        }
        Ok(Some(node))
    }

    /// The root tree of a stream backup: one file, `name`, holding what `stream` yields.
    fn stream_tree(
        &mut self,
        name: &str,
        stream: impl io::Read,
        parent: Option<&Tree>,
    ) -> std::result::Result<Tree, Aborted> {
        let (content, size) = match self.read_chunks(stream) {
            Ok(Ok(read)) => read,
            Ok(Err(Aborted)) => return Err(Aborted),
            Err(source) => {
                let name = name.to_string();
                self.shared.fail(Error::StreamFailed { name, source });
                return Err(Aborted);
            }
        };
        if parent.and_then(|t| t.get(name.as_bytes())).is_some() {
            self.summary.files_changed += 1;
        } else {
            self.summary.files_new += 1;
        }
        self.summary.total_bytes += size;
        self.summary.bytes_read += size;
        let node = self.stream_node(name.as_bytes(), size, content);
        Ok(Tree { nodes: vec![node] })
    }

    /// The node of a stream: a file of the user running the backup, mode 0644, dated when the
    /// backup started.
    fn stream_node(&mut self, name: &[u8], size: u64, content: Vec<BlobId>) -> Node {
        let (uid, gid) = (
            nix::unistd::getuid().as_raw(),
            nix::unistd::getgid().as_raw(),
        );
        let time = self.summary.backup_start.with_timezone(&Utc);
        Node {
            name: ByteString(name.to_vec()),
            kind: NodeKind::File,
            mode: 0o644,
            uid,
            gid,
            user: self.names.user(uid),
            group: self.names.group(gid),
            mtime: time,
            ctime: time,
            inode: 0,
            device_id: 0,
            links: 1,
            size,
            content: Some(content),
            subtree: None,
            link_target: None,
            rdev: None,
            xattrs: Vec::new(),
        }
    }

    /// The tree of a folder in the parent snapshot, with its id.
    fn parent_subtree(&mut self, parent: Option<&Node>) -> Option<(BlobId, Tree)> {
        let id = parent.filter(|p| p.kind == NodeKind::Dir)?.subtree?;
        // A parent tree that cannot be read only costs change detection.
        self.repo.load_tree(self.index, &id).ok().map(|t| (id, t))
    }

    fn save_tree(&mut self, tree: &Tree) -> std::result::Result<BlobId, Aborted> {
        let bytes = tree.encode();
        if bytes.len() > MAX_TREE_BLOB {
            self.shared.fail(Error::TooLarge {
                what: "a folder's listing".into(),
                size: bytes.len(),
                limit: MAX_TREE_BLOB,
            });
            return Err(Aborted);
        }
        let id = self.repo.key().blob_id(BlobType::Tree, &bytes);
        self.submit(BlobType::Tree, id, &bytes)?;
        Ok(id)
    }
}

/// True when the file read from `path` changed during the read: the bytes read differ from the
/// size seen before, or its size, times or inode differ now (it is gone, say).
fn changed_while_read(path: &Path, before: &Metadata, read: u64) -> bool {
    let Ok(after) = fs::symlink_metadata(path) else {
        return true;
    };
    read != before.size() || !same_file_state(before, &after)
}

/// True when two readings of a file's metadata agree on its size, times and inode.
fn same_file_state(a: &Metadata, b: &Metadata) -> bool {
    a.size() == b.size()
        && (a.mtime(), a.mtime_nsec()) == (b.mtime(), b.mtime_nsec())
        && (a.ctime(), a.ctime_nsec()) == (b.ctime(), b.ctime_nsec())
        && a.ino() == b.ino()
}

/// Finds the parent for change detection: the latest snapshot of the same host and paths.
fn find_parent(
    repo: &Repository,
    host: &str,
    paths: &[ByteString],
) -> Result<Option<(SnapshotId, Snapshot)>> {
    Ok(repo
        .snapshots_present()?
        .into_iter()
        .rev()
        .find(|s| s.snapshot.same_source(host, paths))
        .map(|s| (s.id, s.snapshot)))
}

/// A parent snapshot with its id.
type ParentSnapshot = (SnapshotId, Snapshot);

/// The parent snapshot (`--parent`, none with `--force`, otherwise the latest with the same
/// host and paths) and its root tree, when it loads.
fn choose_parent(
    repo: &Repository,
    index: &Index,
    opts: &BackupOptions,
    host: &str,
    paths: &[ByteString],
) -> Result<(Option<ParentSnapshot>, Option<Tree>)> {
    let parent = if opts.force {
        None
    } else if let Some(id) = opts.parent {
        let s = repo.find_snapshot(&id.to_hex())?;
        Some((s.id, s.snapshot))
    } else {
        find_parent(repo, host, paths)?
    };
    let root = match &parent {
        Some((_, s)) => repo.load_tree(index, &s.tree).ok(),
        None => None,
    };
    Ok((parent, root))
}

/// The state the pipeline's threads share, with empty packers.
fn new_shared<'r>(
    repo: &'r Repository,
    opts: &BackupOptions,
    writers: usize,
    pool_tx: Sender<Vec<u8>>,
) -> Shared<'r> {
    let cfg = repo.config();
    let data = Packer::with_max_blob(
        BlobType::Data,
        cfg.data_pack_size,
        cfg.chunker.max_size as usize + crate::format::crypto::OVERHEAD,
    );
    let tree = Packer::new(BlobType::Tree, cfg.tree_pack_size);
    Shared {
        repo,
        data_packer: Mutex::new(OpenPack::new(data)),
        tree_packer: Mutex::new(OpenPack::new(tree)),
        bytes_added: AtomicU64::new(0),
        failed: AtomicBool::new(false),
        error: Mutex::new(None),
        pool_tx,
        pack_pool: bounded(writers),
        pending_index: Mutex::new(IndexFile::default()),
        lock: opts.lock.clone(),
    }
}

/// Runs a backup. `index` must be the repository's loaded index. The walker reads on the calling
/// thread, workers seal and writers store packs beside it, and the snapshot is written once
/// everything it names is durable.
pub fn backup(repo: &Repository, index: &Index, opts: &BackupOptions) -> Result<BackupReport> {
    // The lister starts at once, so that it reads ahead while the parent is found.
    let sources = Sources::list(opts, repo.config().records_xattrs())?;
    run_backup(repo, index, opts, sources, |walker, parent| {
        walker.children(parent)
    })
}

/// Backs up what `stream` yields until its end as the file `/name` of a new snapshot (a database
/// dump piped in, say). The stream goes through the pipeline chunk by chunk, never whole in
/// memory. A read error, which is how a failed producer shows (see [`Error::StreamFailed`]),
/// saves no snapshot. `opts.paths` and the exclude options are not used.
pub fn backup_stream(
    repo: &Repository,
    index: &Index,
    opts: &BackupOptions,
    name: &str,
    stream: impl io::Read,
) -> Result<BackupReport> {
    let name = stream_name(name)?;
    let sources = Sources {
        paths: vec![ByteString(format!("/{name}").into_bytes())],
        missing: Vec::new(),
        listed: crossbeam_channel::never(),
    };
    run_backup(repo, index, opts, sources, |walker, parent| {
        walker.stream_tree(&name, stream, parent)
    })
}

/// The file name of a stream backup: one path component, with or without a leading `/`.
fn stream_name(name: &str) -> Result<String> {
    let bare = name.strip_prefix('/').unwrap_or(name);
    if bare.is_empty() || bare == "." || bare == ".." || bare.contains(['/', '\0']) {
        return Err(Error::InvalidOptions(format!(
            "invalid stream file name {name:?}: give one file name, such as db.sql"
        )));
    }
    Ok(bare.to_string())
}

/// The members of a new snapshot that come from the options alone (tags sorted and without
/// duplicates, excludes, the writer's version); the others are placeholders.
fn described_by(opts: &BackupOptions) -> Snapshot {
    let mut tags = opts.tags.clone();
    tags.sort();
    tags.dedup();
    Snapshot {
        time: now_local(),
        hostname: String::new(),
        username: String::new(),
        uid: 0,
        gid: 0,
        paths: Vec::new(),
        tags,
        tree: BlobId::default(),
        parent: None,
        original: None,
        copied_tree: None,
        excludes: opts.excludes.clone(),
        program_version: format!("floe {}", env!("CARGO_PKG_VERSION")),
        summary: None,
    }
}

/// What a backup reads from: the snapshot's paths, the sources found unreadable, and what the
/// lister reads of the others.
struct Sources {
    paths: Vec<ByteString>,
    missing: Vec<SourceError>,
    listed: Receiver<Listed>,
}

impl Sources {
    /// Starts listing `opts.paths`, leaving out what its exclude options say, with the values of
    /// extended attributes when the repository records them.
    fn list(opts: &BackupOptions, xattr_values: bool) -> Result<Self> {
        let rules = Rules::new(opts)?;
        let (sources, root, missing) = prepare_sources(opts)?;
        let paths = sources
            .iter()
            .map(|s| ByteString::from_os(s.as_os_str()))
            .collect();
        Ok(Self {
            paths,
            missing,
            listed: start_lister(rules, root, xattr_values)?,
        })
    }
}

/// The steps every backup shares: the parent, the pipeline with `walk` on this thread building
/// the root tree, then the snapshot.
fn run_backup(
    repo: &Repository,
    index: &Index,
    opts: &BackupOptions,
    sources: Sources,
    walk: impl FnOnce(&mut Walker<'_, '_>, Option<&Tree>) -> std::result::Result<Tree, Aborted>,
) -> Result<BackupReport> {
    repo.ensure_writable()?;
    let started = Instant::now();
    let start_time = now_local();
    let (this_host, user, uid, gid) = host_and_user();
    let host = opts.host.clone().unwrap_or(this_host);
    let Sources {
        paths,
        missing,
        listed,
    } = sources;
    let (parent, parent_root) = choose_parent(repo, index, opts, &host, &paths)?;

    let dry;
    let repo: &Repository = if opts.dry_run {
        dry = repo.with_backend(Arc::new(DryRunBackend::new(repo.backend().clone())));
        &dry
    } else {
        repo
    };
    let threads = if opts.threads == 0 {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
    } else {
        opts.threads
    };
    let writers = repo.backend().connections().max(MIN_WRITERS);
    // One chunk waiting per worker and one spare buffer each: every buffer may hold the largest
    // chunk, so deeper queues cost memory without keeping the workers any busier.
    let (pool_tx, pool_rx) = bounded::<Vec<u8>>(threads);
    let shared = new_shared(repo, opts, writers, pool_tx);
    let (job_tx, job_rx) = bounded::<Job>(threads);
    let mut walker = Walker::new(repo, index, opts, &shared, job_tx, pool_rx, start_time)?;
    walker.summary.errors = missing.len() as u64;
    walker.errors = missing;
    walker.listed = listed;
    let pipeline = Pipeline {
        threads,
        writers,
        shared: &shared,
    };
    let Walked {
        root: walk_result,
        mut summary,
        errors,
        warnings,
        changed: changed_while_read,
    } = pipeline.run(walker, job_rx, |w| walk(w, parent_root.as_ref()));
    if let Some(e) = shared
        .error
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take()
    {
        return Err(e);
    }
    let (root_id, _) = walk_result.map_err(|Aborted| Error::Aborted("backup"))?;

    summary.backup_end = now_local();
    summary.duration_seconds = started.elapsed().as_secs_f64();
    summary.bytes_added = shared.bytes_added.load(Ordering::Relaxed);
    let snapshot = Snapshot {
        time: opts.time.unwrap_or(start_time),
        hostname: host,
        username: user,
        uid,
        gid,
        paths,
        tree: root_id,
        parent: parent.map(|(id, _)| id),
        summary: Some(summary),
        ..described_by(opts)
    };
    // Every pack and index file is durable by now: the snapshot comes last, and only while the
    // lock still keeps prune away.
    opts.lock.check()?;
    let snapshot_id = repo.save_snapshot(&snapshot)?;
    Ok(BackupReport {
        snapshot_id,
        snapshot,
        errors,
        warnings,
        changed_while_read,
        dry_run: opts.dry_run,
    })
}

/// What the walk returns.
struct Walked {
    /// The root tree, or the abort.
    root: std::result::Result<(BlobId, Tree), Aborted>,
    /// The run's figures.
    summary: SnapshotSummary,
    /// Entries left out.
    errors: Vec<SourceError>,
    /// Entries kept without some of their metadata.
    warnings: Vec<SourceError>,
    /// Files that changed while they were read.
    changed: Vec<PathBuf>,
}

/// The threads of a backup and what they share.
struct Pipeline<'s, 'r> {
    threads: usize,
    writers: usize,
    shared: &'s Shared<'r>,
}

impl<'r> Pipeline<'_, 'r> {
    /// Runs the walker on the calling thread, with the workers and writers beside it, until the
    /// walk is over and every pack and the last index file are written.
    fn run(
        &self,
        mut walker: Walker,
        job_rx: Receiver<Job>,
        walk: impl FnOnce(&mut Walker<'_, '_>) -> std::result::Result<Tree, Aborted>,
    ) -> Walked {
        let shared = self.shared;
        std::thread::scope(|scope| {
            // A rendezvous: a finished pack waits in its worker until a writer takes it, so packs
            // in memory are at most one being filled, one per writer and one per worker.
            let (pack_tx, pack_rx) = bounded::<ReadyPack>(0);
            let writers: Vec<_> = (0..self.writers)
                .map(|_| {
                    let rx = pack_rx.clone();
                    scope.spawn(move || writer(shared, rx))
                })
                .collect();
            drop(pack_rx);
            let workers: Vec<_> = (0..self.threads)
                .map(|_| {
                    let rx = job_rx.clone();
                    let tx = pack_tx.clone();
                    scope.spawn(move || worker(shared, rx, tx))
                })
                .collect();
            drop(job_rx);
            let walked = walk(&mut walker).and_then(|t| walker.save_tree(&t).map(|id| (id, t)));
            walker.report_dropped_xattrs();
            let Walker {
                jobs,
                summary,
                errors,
                warnings,
                changed,
                ..
            } = walker;
            drop(jobs);
            for w in workers {
                if w.join().is_err() {
                    shared.fail(Error::WorkerPanicked("backup worker"));
                }
            }
            self.flush(pack_tx);
            for w in writers {
                if w.join().is_err() {
                    shared.fail(Error::WorkerPanicked("pack writer"));
                }
            }
            self.write_last_index();
            Walked {
                root: walked,
                summary,
                errors,
                warnings,
                changed,
            }
        })
    }

    /// Hands the last, partly filled packs to the writers, then closes their channel.
    fn flush(&self, pack_tx: Sender<ReadyPack<'r>>) {
        let shared = self.shared;
        for t in [BlobType::Data, BlobType::Tree] {
            let mut p = shared.packer(t).lock().unwrap_or_else(|p| p.into_inner());
            if shared.failed.load(Ordering::SeqCst) || p.packer.is_empty() {
                p.abandon();
                continue;
            }
            let pack = p.finish(shared.repo.key());
            drop(p);
            match pack {
                Ok(pack) => {
                    let _ = pack_tx.send(pack);
                }
                Err(e) => shared.fail(e),
            }
        }
    }

    /// The last index file, once every pack it names is durable. After a failure too: the next
    /// backup then finds the blobs of the packs already written instead of writing them again
    /// (on a full disk, it would need their room twice). Packs that cannot be indexed stay for
    /// prune (a backup deletes nothing: a write reported failed may have landed and been
    /// indexed); with the lock lost, nothing is written.
    fn write_last_index(&self) {
        let shared = self.shared;
        let rest = std::mem::take(
            &mut *shared
                .pending_index
                .lock()
                .unwrap_or_else(|p| p.into_inner()),
        );
        if rest.packs.is_empty() {
            return;
        }
        if let Err(e) = shared.lock.check() {
            return shared.fail(e);
        }
        if let Err(e) = shared.repo.save_index(&rest) {
            shared.fail(e);
        }
    }
}

impl<'a, 'r> Walker<'a, 'r> {
    /// A walker that sends its jobs to `jobs` and takes buffers back from `pool`.
    fn new(
        repo: &'a Repository,
        index: &'a Index,
        opts: &BackupOptions,
        shared: &'a Shared<'r>,
        jobs: Sender<Job>,
        pool: Receiver<Vec<u8>>,
        start_time: DateTime<FixedOffset>,
    ) -> Result<Self> {
        let cfg = repo.config();
        Ok(Walker {
            repo,
            index,
            chunker: Chunker::new(cfg.chunker, repo.chunker_seed())?,
            jobs,
            pool,
            shared,
            listed: crossbeam_channel::never(),
            progress: opts.progress.clone(),
            seen: HashSet::new(),
            hardlinks: HashMap::new(),
            names: Names::default(),
            read_buf: Vec::new(),
            max_chunk: cfg.chunker.max_size as usize,
            summary: SnapshotSummary {
                backup_start: start_time,
                backup_end: start_time,
                ..SnapshotSummary::default()
            },
            errors: Vec::new(),
            warnings: Vec::new(),
            changed: Vec::new(),
            records_xattrs: cfg.records_xattrs(),
            xattrs_dropped: (0, None),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::pack::parse_pack;
    use crate::storage::{BackendError, FileType, MemoryBackend};

    /// Storage that is full: every append fails.
    struct FullDisk;

    impl Staged for FullDisk {
        fn append(&mut self, _: &[u8]) -> std::result::Result<(), BackendError> {
            Err(BackendError::Io {
                op: "write",
                location: "data/.tmp-0".into(),
                source: io::Error::from_raw_os_error(28),
            })
        }
        fn len(&self) -> u64 {
            0
        }
        fn commit(self: Box<Self>, _: &crate::id::RawId) -> std::result::Result<(), BackendError> {
            panic!("a pack that failed to write was committed")
        }
    }

    fn sealed(key: &MasterKey, data: &[u8]) -> SealedBlob {
        let mut buf = vec![0u8; NONCE_LEN];
        buf.extend_from_slice(data);
        let id = key.blob_id(BlobType::Data, data);
        BlobSealer::new(3)
            .unwrap()
            .seal(key, BlobType::Data, id, buf)
    }

    #[test]
    fn a_pack_that_failed_to_write_leaves_no_blob_behind_in_the_next_pack() {
        let (backend, key) = (MemoryBackend::new(), MasterKey::generate());
        let mut open = OpenPack {
            packer: Packer::new(BlobType::Data, 1 << 20),
            streams: Some(true),
            out: Some((Box::new(FullDisk), PackHasher::default())),
        };
        let Err(err) = open.add(&backend, &key, &sealed(&key, b"lost")) else {
            panic!("a blob was added to a full disk")
        };
        let chain: Vec<String> =
            std::iter::successors(Some(&err as &dyn std::error::Error), |e| e.source())
                .map(|e| e.to_string())
                .collect();
        assert!(
            chain.join(": ").contains("No space left on device"),
            "{chain:?}"
        );
        assert!(open.packer.is_empty() && open.out.is_none());
        // Nothing of the failed pack can be stored on its own.
        assert!(open.finish(&key).is_err());

        let kept = sealed(&key, b"kept");
        assert!(open.add(&backend, &key, &kept).unwrap().is_none());
        let Ok(ReadyPack::Staged {
            staged,
            id,
            entries,
            ..
        }) = open.finish(&key)
        else {
            panic!("a pack written in pieces")
        };
        staged.commit(id.as_bytes()).unwrap();
        let bytes = backend.read(FileType::DataPack, id.as_bytes()).unwrap();
        assert_eq!(PackId::hash_of(&bytes), id);
        assert_eq!(
            parse_pack(&key, &id, BlobType::Data, &bytes).unwrap(),
            entries
        );
        assert_eq!(entries.len(), 1);
        assert_eq!((entries[0].id, entries[0].offset), (kept.id, 0));
    }
}
