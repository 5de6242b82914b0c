//! A repository: a backend, the master key and the config, with typed reads and writes of every
//! kind of file (format-spec/format.md, "Files" and "Ordering rules").

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, FixedOffset};
use rayon::prelude::*;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{BackendError, Error, Object, Result};
use crate::format::chunker::ChunkerParams;
use crate::format::compress;
use crate::format::config::XATTRS_VERSION;
pub use crate::format::config::{Config, FORMAT_VERSION, OLDEST_FORMAT_VERSION};
use crate::format::crypto::MasterKey;
use crate::format::index_file::IndexPack;
use crate::format::key::{KdfParams, KeyFile};
use crate::format::pack::{self, BlobType, MAX_PACK_TARGET};
use crate::format::sealed::{decode_file, encode_file};
use crate::format::snapshot::{Snapshot, SnapshotEntry};
use crate::format::tree::Tree;
use crate::id::{BlobId, IndexId, KeyId, PackId, RawId, RepoId, SnapshotId};
use crate::repo::index::{Index, IndexFile, LoadedIndex};
use crate::storage::{Backend, FileType, CONFIG_ID};

/// Blobs an index file written by prune or repair describes at most: about 40 MB of JSON, far
/// below the limit a reader accepts for one file.
pub const BLOBS_PER_INDEX_FILE: usize = 250_000;

/// Settings for a new repository.
#[derive(Debug, Clone)]
pub struct InitOptions {
    /// Chunk size bounds.
    pub chunker: ChunkerParams,
    /// zstd level.
    pub compression_level: i32,
    /// Target size of data packs.
    pub data_pack_size: u32,
    /// Target size of tree packs.
    pub tree_pack_size: u32,
    /// Argon2id costs of the first key.
    pub kdf: KdfParams,
    /// The format version to create ([`FORMAT_VERSION`] by default; 1 for repositories that
    /// older floe builds must still read).
    pub version: u32,
    /// The chunker seed of a version 2 repository (random when `None`).
    pub chunker_seed: Option<u64>,
    /// S3 Object Lock: the retention of every object written (version 2, S3 only).
    pub object_lock: Option<crate::storage::Retention>,
}

impl Default for InitOptions {
    fn default() -> Self {
        Self {
            chunker: ChunkerParams::default(),
            compression_level: compress::DEFAULT_LEVEL,
            data_pack_size: 16 << 20,
            tree_pack_size: 4 << 20,
            kdf: KdfParams::default(),
            version: FORMAT_VERSION,
            chunker_seed: None,
            object_lock: None,
        }
    }
}

/// Host and user names of the running process.
pub fn host_and_user() -> (String, String, u32, u32) {
    let host = nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "localhost".into());
    let uid = nix::unistd::getuid();
    let gid = nix::unistd::getgid();
    let user = nix::unistd::User::from_uid(uid)
        .ok()
        .flatten()
        .map(|u| u.name)
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| uid.to_string());
    (host, user, uid.as_raw(), gid.as_raw())
}

/// The current local time with its UTC offset.
pub fn now_local() -> DateTime<FixedOffset> {
    chrono::Local::now().fixed_offset()
}

/// The current time in UTC, for retention dates (tests of the `failpoints` feature may move it).
pub fn now_utc() -> chrono::DateTime<chrono::Utc> {
    crate::failpoint::fake_now().unwrap_or_else(chrono::Utc::now)
}

/// An open repository.
pub struct Repository {
    backend: Arc<dyn Backend>,
    key: MasterKey,
    key_id: KeyId,
    config: Config,
    /// The config asks for Object Lock, and the storage has none: read only.
    lock_unsupported: bool,
    /// Whole tree packs, on remote storage (see [`TreePackCache`]).
    tree_packs: TreePackCache,
    /// The pool of [`Repository::in_io_pool`], made when first needed; `None` when it could not
    /// be made.
    io_pool: std::sync::OnceLock<Option<rayon::ThreadPool>>,
    /// How this handle compresses new blobs, when not at the config's level.
    blob_compression: Option<compress::Compression>,
}

/// Most bytes of whole tree packs kept in memory for remote storage.
const TREE_CACHE_BYTES: usize = 32 << 20;

/// On remote storage, a request costs far more than its bytes: walking a snapshot tree by one
/// range read per folder took 100 ms a folder through a 3-node Garage cluster. Tree packs are
/// small and stay hot, so the first tree read from a pack fetches the whole pack and later
/// ones are served from memory (least recently used packs are dropped past
/// [`TREE_CACHE_BYTES`]). Local storage reads ranges as before.
#[derive(Default)]
struct TreePackCache {
    packs: std::sync::Mutex<std::collections::VecDeque<(PackId, Arc<Vec<u8>>)>>,
}

impl TreePackCache {
    fn get(&self, id: &PackId) -> Option<Arc<Vec<u8>>> {
        let mut packs = self.packs.lock().unwrap_or_else(|p| p.into_inner());
        let at = packs.iter().position(|(p, _)| p == id)?;
        let hit = packs.remove(at)?;
        let bytes = hit.1.clone();
        packs.push_front(hit);
        Some(bytes)
    }

    fn put(&self, id: PackId, bytes: Arc<Vec<u8>>) {
        let mut packs = self.packs.lock().unwrap_or_else(|p| p.into_inner());
        packs.retain(|(p, _)| *p != id);
        packs.push_front((id, bytes));
        // The newest pack always stays; older ones go once the total is over the limit.
        let mut total = 0;
        let mut newest = true;
        packs.retain(|(_, b)| {
            total += b.len();
            std::mem::replace(&mut newest, false) || total <= TREE_CACHE_BYTES
        });
    }
}

impl std::fmt::Debug for Repository {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Repository")
            .field("location", &self.backend.location())
            .field("config", &self.config)
            .finish()
    }
}

fn config_exists(backend: &dyn Backend) -> Result<bool> {
    match backend.list(FileType::Config) {
        Ok(l) => Ok(!l.is_empty()),
        Err(e) if e.is_absent() => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Runs `a` and `b` at once (`b` on this thread) and returns both results: for requests that
/// do not depend on each other, so that a distant store costs one round trip for the two.
pub fn both<A: Send, B>(a: impl FnOnce() -> A + Send, b: impl FnOnce() -> B) -> (A, B) {
    std::thread::scope(|s| {
        let first = s.spawn(a);
        let second = b();
        match first.join() {
            Ok(first) => (first, second),
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}

/// Most days of an Object Lock (format-spec/format.md, "Config").
pub const MAX_LOCK_DAYS: u32 = 36500;

/// The Object Lock settings a new repository may have.
fn check_object_lock(version: u32, r: crate::storage::Retention) -> Result<()> {
    if version < XATTRS_VERSION {
        return Err(Error::InvalidOptions(
            "Object Lock needs repository format version 2".into(),
        ));
    }
    if !(1..=MAX_LOCK_DAYS).contains(&r.days) {
        return Err(Error::InvalidOptions(
            "Object Lock days must be between 1 and 36500".into(),
        ));
    }
    Ok(())
}

/// Refuses a zstd level that zstd does not have (for `init` and a command's `--compression`).
fn check_level(level: i32) -> Result<()> {
    let levels = compress::levels();
    if levels.contains(&level) {
        return Ok(());
    }
    Err(Error::InvalidOptions(format!(
        "invalid zstd level {level} (it must be between {} and {})",
        levels.start(),
        levels.end()
    )))
}

/// The checks of a config read from storage (format-spec/format.md, "Config").
pub(crate) fn check_config(config: &Config) -> Result<()> {
    if !(OLDEST_FORMAT_VERSION..=FORMAT_VERSION).contains(&config.version) {
        return Err(Error::UnsupportedVersion {
            found: config.version,
            supported: FORMAT_VERSION,
        });
    }
    config.chunker.validate()?;
    let corrupt = |why: &str| {
        Error::corrupt(
            Object::File {
                file_type: FileType::Config,
                name: "config".into(),
            },
            why,
        )
    };
    if !(1..=MAX_PACK_TARGET).contains(&config.data_pack_size)
        || !(1..=MAX_PACK_TARGET).contains(&config.tree_pack_size)
    {
        return Err(corrupt("pack sizes out of range"));
    }
    if !zstd::compression_level_range().contains(&config.compression_level) {
        return Err(corrupt("compression level out of range"));
    }
    match (config.version >= XATTRS_VERSION, config.object_lock) {
        (false, Some(_)) => return Err(corrupt("a version 1 config has no object_lock")),
        (_, Some(r)) if !(1..=MAX_LOCK_DAYS).contains(&r.days) => {
            return Err(corrupt("object_lock days must be between 1 and 36500"))
        }
        _ => {}
    }
    match (config.version >= XATTRS_VERSION, config.chunker_seed) {
        (false, Some(_)) => Err(corrupt("a version 1 config has no chunker_seed")),
        (true, None) => Err(corrupt("the chunker_seed member is missing")),
        _ => Ok(()),
    }
}

impl Repository {
    /// True when the storage holds a repository (its config exists).
    pub fn exists(backend: &dyn Backend) -> Result<bool> {
        config_exists(backend)
    }

    /// Creates a repository in empty storage and returns it open.
    pub fn init(backend: Arc<dyn Backend>, password: &[u8], opts: &InitOptions) -> Result<Self> {
        if password.is_empty() {
            return Err(Error::InvalidOptions(
                "an empty password is not accepted".into(),
            ));
        }
        opts.chunker.validate()?;
        if !(OLDEST_FORMAT_VERSION..=FORMAT_VERSION).contains(&opts.version) {
            return Err(Error::InvalidOptions(format!(
                "repository format version {} is not one this build writes \
                 ({OLDEST_FORMAT_VERSION} to {FORMAT_VERSION})",
                opts.version
            )));
        }
        if !(1..=MAX_PACK_TARGET).contains(&opts.data_pack_size)
            || !(1..=MAX_PACK_TARGET).contains(&opts.tree_pack_size)
        {
            return Err(Error::InvalidOptions(format!(
                "pack sizes must be between 1 and {MAX_PACK_TARGET} bytes"
            )));
        }
        check_level(opts.compression_level)?;
        if config_exists(backend.as_ref())? || !backend.list(FileType::Key)?.is_empty() {
            return Err(Error::RepositoryExists {
                location: backend.location(),
            });
        }
        if let Some(r) = opts.object_lock {
            check_object_lock(opts.version, r)?;
            backend.set_retention(r)?;
        }
        backend.create()?;
        let key = MasterKey::generate();
        let (host, user, _, _) = host_and_user();
        let key_file = KeyFile::create(&key, password, opts.kdf, now_local(), host, user)?;
        let key_bytes = serde_json::to_vec_pretty(&key_file).map_err(|e| Error::Encode {
            what: "a key file",
            reason: e.to_string(),
        })?;
        let key_id = KeyId::hash_of(&key_bytes);
        let config = Config {
            version: opts.version,
            id: RepoId::from_bytes(rand::random()),
            chunker: opts.chunker,
            chunker_seed: (opts.version >= XATTRS_VERSION)
                .then(|| opts.chunker_seed.unwrap_or_else(rand::random)),
            compression_level: opts.compression_level,
            data_pack_size: opts.data_pack_size,
            tree_pack_size: opts.tree_pack_size,
            object_lock: opts.object_lock,
            unknown: Default::default(),
        };
        let repo = Self {
            backend,
            key,
            key_id,
            config,
            lock_unsupported: false,
            tree_packs: TreePackCache::default(),
            io_pool: Default::default(),
            blob_compression: None,
        };
        // The key first, then the config: a repository is complete once its config exists.
        repo.backend
            .write(FileType::Key, key_id.as_bytes(), &key_bytes)?;
        let sealed = repo.seal_file(FileType::Config, &repo.config)?;
        repo.backend.write(FileType::Config, &CONFIG_ID, &sealed)?;
        Ok(repo)
    }

    /// Opens an existing repository with a password.
    pub fn open(backend: Arc<dyn Backend>, password: &[u8]) -> Result<Self> {
        // The config and the key listing do not depend on each other: one round trip to a
        // distant store for both, rather than one after the other.
        let (sealed, keys) = both(
            || backend.read(FileType::Config, &CONFIG_ID),
            || backend.list(FileType::Key),
        );
        let sealed = match sealed {
            Err(e) if e.is_absent() => {
                return Err(Error::RepositoryNotFound {
                    location: backend.location(),
                })
            }
            other => other?,
        };
        let keys = keys?;
        let mut found = None;
        // A damaged key file must not lock users out while another one opens: remember the first
        // problem and report it only if no key file opens.
        let mut damaged: Option<Error> = None;
        for k in &keys {
            let parsed = match read_key_file(backend.as_ref(), &k.id) {
                // Storage that fails is not a damaged key: stop, as for any read.
                Err(e @ Error::Backend(_)) => return Err(e),
                other => other,
            }
            .and_then(|kf| {
                kf.open(password)
                    .map_err(|e| Error::corrupt(key_object(&k.id), e.to_string()))
            });
            match parsed {
                Ok(Some(master)) => {
                    found = Some((master, KeyId::from_bytes(k.id)));
                    break;
                }
                Ok(None) => {}
                Err(e) => {
                    damaged.get_or_insert(e);
                }
            }
        }
        let (key, key_id) = match (found, damaged) {
            (Some(f), _) => f,
            (None, Some(e)) => return Err(e),
            (None, None) => return Err(Error::WrongPassword { keys: keys.len() }),
        };
        let config: Config = decode_file(&key, FileType::Config, &CONFIG_ID, sealed)?;
        check_config(&config)?;
        // Storage without Object Lock (a copy of the bucket on disk) reads the repository, but
        // may not write to it: see `ensure_writable`.
        let lock_unsupported = match config.object_lock {
            Some(r) => match backend.set_retention(r) {
                Ok(()) => false,
                Err(BackendError::Unsupported { .. }) => true,
                Err(e) => return Err(e.into()),
            },
            None => false,
        };
        Ok(Self {
            backend,
            key,
            key_id,
            config,
            lock_unsupported,
            tree_packs: TreePackCache::default(),
            io_pool: Default::default(),
            blob_compression: None,
        })
    }

    /// The backend.
    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.backend
    }

    /// The master key.
    pub(crate) fn key(&self) -> &MasterKey {
        &self.key
    }

    /// The key file this session opened.
    pub fn key_id(&self) -> KeyId {
        self.key_id
    }

    /// The header of pack `id` of `size` bytes, read from the pack itself, as the index would
    /// record it.
    pub fn read_pack_header(&self, bt: BlobType, id: &PackId, size: u64) -> Result<IndexPack> {
        let tl = pack::TRAILER_LEN as u64;
        if size < tl {
            return Err(Error::corrupt(
                Object::Pack(*id),
                "shorter than its trailer",
            ));
        }
        let trailer = self.read_pack_range(bt, id, size - tl, tl)?;
        let hl = pack::header_length(id, &trailer, size)? as u64;
        let sealed = self.read_pack_range(bt, id, size - tl - hl, hl)?;
        let entries = pack::decode_header(self.key(), id, bt, sealed, size)?;
        let mut f = IndexFile::default();
        f.add_pack(*id, bt, size, &entries);
        f.packs.pop().ok_or(Error::Encode {
            what: "a pack record",
            reason: "no pack was recorded".into(),
        })
    }

    /// From now on, the key file this handle counts as having opened it.
    pub(crate) fn set_key_id(&mut self, id: KeyId) {
        self.key_id = id;
    }

    /// The config.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// How new blobs are compressed: as [`Repository::set_blob_compression`] said, else at the
    /// config's level.
    pub fn blob_compression(&self) -> compress::Compression {
        self.blob_compression
            .unwrap_or(compress::Compression::Level(self.config.compression_level))
    }

    /// Compresses the blobs this handle writes as `compression` says (a backup's
    /// `--compression`), without changing the repository's default. Files other than packs keep
    /// the config's level.
    pub fn set_blob_compression(&mut self, compression: compress::Compression) -> Result<()> {
        if let compress::Compression::Level(level) = compression {
            check_level(level)?;
        }
        self.blob_compression = Some(compression);
        Ok(())
    }

    /// The seed of the chunker's gear tables (format-spec/format.md, "Chunking").
    pub fn chunker_seed(&self) -> u64 {
        self.config.effective_chunker_seed(self.key.chunker_seed())
    }

    /// Fails unless this build may add to, change or delete from the repository: a config with
    /// members it does not know (a feature of a newer floe, such as Object Lock) may be read
    /// but not written.
    pub fn ensure_writable(&self) -> Result<()> {
        if self.lock_unsupported {
            return Err(Error::ObjectLockUnsupported {
                location: self.backend.location(),
            });
        }
        if self.config.unknown.is_empty() {
            return Ok(());
        }
        Err(Error::ReadOnlyFeatures {
            members: self.config.unknown.keys().cloned().collect(),
        })
    }

    /// Replaces the config with `config` (a format upgrade), atomically.
    pub(crate) fn replace_config(&mut self, config: Config) -> Result<()> {
        check_config(&config)?;
        let sealed = self.seal_file(FileType::Config, &config)?;
        self.backend.write(FileType::Config, &CONFIG_ID, &sealed)?;
        self.config = config;
        Ok(())
    }

    /// Returns a handle to the same repository on another backend (a dry-run wrapper, say).
    pub fn with_backend(&self, backend: Arc<dyn Backend>) -> Self {
        Self {
            backend,
            key: self.key.clone(),
            key_id: self.key_id,
            config: self.config.clone(),
            lock_unsupported: self.lock_unsupported,
            tree_packs: TreePackCache::default(),
            io_pool: Default::default(),
            blob_compression: self.blob_compression,
        }
    }

    /// Encodes a file: JSON, one zstd frame, sealed with the file type as AAD.
    pub fn seal_file<T: Serialize>(&self, file_type: FileType, value: &T) -> Result<Vec<u8>> {
        encode_file(&self.key, self.config.compression_level, file_type, value)
    }

    /// Stores a file under the hash of its sealed bytes and returns that id.
    pub fn save_file<T: Serialize>(&self, file_type: FileType, value: &T) -> Result<RawId> {
        let sealed = self.seal_file(file_type, value)?;
        let id = *blake3::hash(&sealed).as_bytes();
        self.backend.write(file_type, &id, &sealed)?;
        Ok(id)
    }

    /// Loads and decodes a file, checking that its bytes hash to its name.
    pub fn load_file<T: DeserializeOwned>(&self, file_type: FileType, id: &RawId) -> Result<T> {
        let sealed = self.backend.read(file_type, id)?;
        if *blake3::hash(&sealed).as_bytes() != *id {
            return Err(Error::corrupt(
                Object::File {
                    file_type,
                    name: hex::encode(id),
                },
                "content does not hash to its name",
            ));
        }
        decode_file(&self.key, file_type, id, sealed)
    }

    /// Loads every index file into one in-memory index.
    pub fn load_index(&self) -> Result<Index> {
        Ok(self.load_index_split()?.index)
    }

    /// Loads every index file, splits off the superseded ones and indexes the rest.
    pub fn load_index_split(&self) -> Result<LoadedIndex> {
        Ok(LoadedIndex::from_files(self.load_index_files()?))
    }

    /// Every blob the index names, once, by type then id (`floe list blobs`).
    pub fn indexed_blobs(&self) -> Result<Vec<(BlobType, BlobId)>> {
        let packs = self.load_index_split()?.packs();
        let mut blobs: Vec<(BlobType, BlobId)> = packs
            .values()
            .flat_map(|p| p.blobs.iter().map(|b| (p.blob_type, b.id)))
            .collect();
        blobs.sort();
        blobs.dedup();
        Ok(blobs)
    }

    /// Lists both pack folders: every stored pack once, as the listing describes it.
    pub fn list_packs(&self) -> Result<HashMap<PackId, StoredPack>> {
        let mut stored = HashMap::new();
        for blob_type in [BlobType::Data, BlobType::Tree] {
            for e in self.backend.list(blob_type.pack_file_type())? {
                let pack = StoredPack {
                    blob_type,
                    size: e.size,
                    modified: e.modified,
                    storage_class: e.storage_class,
                };
                stored.insert(PackId::from_bytes(e.id), pack);
            }
        }
        Ok(stored)
    }

    /// Every index file as stored, superseded ones included (see [`LoadedIndex`]).
    pub fn load_index_files(&self) -> Result<Vec<(IndexId, IndexFile)>> {
        let files = self.backend.list(FileType::Index)?;
        self.in_io_pool(|| {
            files
                .par_iter()
                .map(|f| {
                    Ok((
                        IndexId::from_bytes(f.id),
                        self.load_file::<IndexFile>(FileType::Index, &f.id)?,
                    ))
                })
                .collect()
        })
    }

    /// Runs `f` on a thread pool with as many threads as the storage serves requests at once
    /// (at least one per core), for parallel iterators whose work is mostly waiting on reads.
    pub fn in_io_pool<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let threads = self.backend.connections().max(cores);
        if threads <= rayon::current_num_threads() {
            return f();
        }
        let pool = self.io_pool.get_or_init(|| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads);
            pool.build().ok()
        });
        match pool {
            Some(pool) => pool.install(f),
            None => f(),
        }
    }

    /// Writes an index file.
    pub fn save_index(&self, file: &IndexFile) -> Result<IndexId> {
        Ok(IndexId::from_bytes(self.save_file(FileType::Index, file)?))
    }

    /// Writes index files describing `packs` (at most [`BLOBS_PER_INDEX_FILE`] blobs each), the
    /// last of them superseding `old`: the new index takes effect only once it is complete
    /// (format-spec/format.md, "Deleting"). Returns how many files were written.
    pub fn save_superseding_index(
        &self,
        packs: &[crate::repo::index::IndexPack],
        old: &[IndexId],
    ) -> Result<usize> {
        let mut chunks: Vec<&[crate::repo::index::IndexPack]> = Vec::new();
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
        for chunk in &chunks {
            self.save_index(&IndexFile {
                packs: chunk.to_vec(),
                supersedes: Vec::new(),
            })?;
        }
        self.save_index(&IndexFile {
            packs: last.to_vec(),
            supersedes: old.to_vec(),
        })?;
        Ok(chunks.len() + 1)
    }

    /// Writes a snapshot file.
    pub fn save_snapshot(&self, snap: &Snapshot) -> Result<SnapshotId> {
        Ok(SnapshotId::from_bytes(
            self.save_file(FileType::Snapshot, snap)?,
        ))
    }

    /// Every snapshot, oldest first. A snapshot listed but not found when read, or damaged, is an
    /// error: for the commands that must see every snapshot (extending Object Lock retention,
    /// counting snapshots for a rollback; prune reads the same strict listing itself).
    pub fn snapshots(&self) -> Result<Vec<SnapshotEntry>> {
        let listing = self.load_snapshots(false)?;
        match listing.damaged.into_iter().next() {
            Some((_, e)) => Err(e),
            None => Ok(listing.readable),
        }
    }

    /// As [`Repository::snapshots`], leaving out a snapshot listed but gone when read: it was
    /// forgotten meanwhile (commands that only read snapshots take no lock), or the storage
    /// still lists it after its deletion. For commands that only read.
    /// Damaged snapshot files are left out too (see [`Repository::snapshots_readable`]).
    pub fn snapshots_present(&self) -> Result<Vec<SnapshotEntry>> {
        Ok(self.snapshots_readable()?.readable)
    }

    /// As [`Repository::snapshots_present`], with the snapshot files that are damaged (they do
    /// not decrypt or decode) apart, each with its error: one damaged file must not stop every
    /// command that reads snapshots. Only `check` fails on them, and `forget ID` removes them.
    pub fn snapshots_readable(&self) -> Result<SnapshotListing> {
        self.load_snapshots(true)
    }

    pub(crate) fn load_snapshots(&self, skip_vanished: bool) -> Result<SnapshotListing> {
        let files = self.backend.list(FileType::Snapshot)?;
        let loaded: Vec<(SnapshotId, Result<Snapshot>)> = self.in_io_pool(|| {
            files
                .par_iter()
                .map(|f| {
                    (
                        SnapshotId::from_bytes(f.id),
                        self.load_file(FileType::Snapshot, &f.id),
                    )
                })
                .collect()
        });
        let mut listing = SnapshotListing::default();
        for (id, loaded) in loaded {
            match loaded {
                Ok(snapshot) => listing.readable.push(SnapshotEntry { id, snapshot }),
                Err(Error::Backend(BackendError::NotFound { .. })) if skip_vanished => {}
                Err(e) if e.is_corruption() => listing.damaged.push((id, e)),
                Err(e) => return Err(e),
            }
        }
        let readable = &mut listing.readable;
        readable.sort_by(|a, b| a.snapshot.time.cmp(&b.snapshot.time).then(a.id.cmp(&b.id)));
        listing.damaged.sort_by_key(|d| d.0);
        Ok(listing)
    }

    /// Finds a snapshot by `latest` or by a unique hex prefix of its id. A prefix that names a
    /// damaged snapshot gets its damage as the error.
    pub fn find_snapshot(&self, spec: &str) -> Result<SnapshotEntry> {
        match self.snapshots_readable()?.pick(spec)? {
            Picked::Readable(s) => Ok(*s),
            Picked::Damaged(id, Error::Corrupt { object, reason }) => Err(Error::Corrupt {
                object,
                reason: format!("{reason} (`floe forget {}` removes it)", id.to_hex()),
            }),
            Picked::Damaged(_, e) => Err(e),
        }
    }

    /// Reads `length` bytes at `offset` of a pack. A missing or short pack is corruption of that
    /// pack, not an I/O error.
    pub fn read_pack_range(
        &self,
        blob_type: BlobType,
        pack: &PackId,
        offset: u64,
        length: u64,
    ) -> Result<Vec<u8>> {
        let mut buf = Vec::new();
        self.read_pack_range_into(blob_type, pack, offset, length, &mut buf)?;
        Ok(buf)
    }

    /// As [`Repository::read_pack_range`], into `buf` (its allocation reused).
    pub fn read_pack_range_into(
        &self,
        blob_type: BlobType,
        pack: &PackId,
        offset: u64,
        length: u64,
        buf: &mut Vec<u8>,
    ) -> Result<()> {
        self.backend
            .read_range_into(
                blob_type.pack_file_type(),
                pack.as_bytes(),
                offset,
                length,
                buf,
            )
            .map_err(|err| pack_read_error(pack, err))
    }

    /// As [`Repository::read_pack_range_into`], handing the bytes to `sink` as they arrive.
    pub fn read_pack_range_with(
        &self,
        blob_type: BlobType,
        pack: &PackId,
        offset: u64,
        length: u64,
        sink: &mut dyn FnMut(&[u8]),
    ) -> Result<()> {
        self.backend
            .read_range_with(
                blob_type.pack_file_type(),
                pack.as_bytes(),
                offset,
                length,
                sink,
            )
            .map_err(|err| pack_read_error(pack, err))
    }

    /// Reads, authenticates and decompresses one blob.
    pub fn read_blob(&self, index: &Index, id: &BlobId) -> Result<Vec<u8>> {
        let loc = index.get(id).ok_or(Error::MissingBlob(*id))?;
        let e = loc.entry;
        // Whole packs only when several fit in the cache (tree packs are 4 MiB by default).
        let whole = e.blob_type == BlobType::Tree
            && self.backend.is_remote()
            && self.config.tree_pack_size as usize <= TREE_CACHE_BYTES / 4;
        let sealed = if whole {
            let pack = match self.tree_packs.get(&loc.pack) {
                Some(p) => p,
                None => {
                    let bytes = Arc::new(
                        self.backend
                            .read(FileType::TreePack, loc.pack.as_bytes())
                            .map_err(|err| pack_read_error(&loc.pack, err))?,
                    );
                    self.tree_packs.put(loc.pack, bytes.clone());
                    bytes
                }
            };
            let (start, end) = (e.offset as usize, e.offset as usize + e.length as usize);
            pack.get(start..end)
                .ok_or_else(|| {
                    Error::corrupt(
                        Object::Pack(loc.pack),
                        format!(
                            "the index puts a blob at {start}..{end} of a pack of {} bytes",
                            pack.len()
                        ),
                    )
                })?
                .to_vec()
        } else {
            self.read_pack_range(e.blob_type, &loc.pack, e.offset as u64, e.length as u64)?
        };
        pack::open_blob(&self.key, &loc.pack, &e, sealed)
    }

    /// Loads and decodes a tree blob.
    pub fn load_tree(&self, index: &Index, id: &BlobId) -> Result<Tree> {
        let loc = index.get(id).ok_or(Error::MissingBlob(*id))?;
        if loc.entry.blob_type != BlobType::Tree {
            return Err(Error::corrupt(
                Object::BlobId(*id),
                "a tree reference names a data blob",
            ));
        }
        let bytes = self.read_blob(index, id)?;
        Tree::decode(&bytes).map_err(|e| {
            Error::corrupt(
                Object::Blob {
                    pack: loc.pack,
                    blob: *id,
                },
                format!("tree does not decode: {e}"),
            )
        })
    }
}

/// The snapshots of a repository that read back, and those that do not.
#[derive(Debug, Default)]
pub struct SnapshotListing {
    /// Readable snapshots, oldest first.
    pub readable: Vec<SnapshotEntry>,
    /// Snapshot files that fail to decrypt or decode, by id, each with its error.
    pub damaged: Vec<(SnapshotId, Error)>,
}

/// The snapshot a reference names, readable or damaged.
#[derive(Debug)]
pub enum Picked {
    /// A snapshot that reads back.
    Readable(Box<SnapshotEntry>),
    /// A damaged snapshot file, with its error.
    Damaged(SnapshotId, Error),
}

impl SnapshotListing {
    /// The snapshot `spec` names: `latest` is the newest readable one; a hex prefix must name
    /// exactly one snapshot, readable or damaged, so that a damaged one never stands in for an
    /// ambiguous or mistyped prefix.
    pub fn pick(self, spec: &str) -> Result<Picked> {
        if spec == "latest" {
            return pick_snapshot(&self.readable, spec).map(|s| Picked::Readable(Box::new(s)));
        }
        let readable = self
            .readable
            .into_iter()
            .map(|s| Picked::Readable(Box::new(s)));
        let damaged = self
            .damaged
            .into_iter()
            .map(|(id, e)| Picked::Damaged(id, e));
        let id = |p: &Picked| match p {
            Picked::Readable(s) => s.id.to_hex(),
            Picked::Damaged(id, _) => id.to_hex(),
        };
        one_snapshot(match_prefix(readable.chain(damaged), id, spec), spec)
    }
}

/// What a hex prefix names among some objects.
pub(crate) enum PrefixMatch<T> {
    /// The prefix is empty or not hex.
    NotHex,
    /// No object.
    Nothing,
    /// Exactly this one.
    One(T),
    /// This many.
    Several(usize),
}

/// The one of `items` whose id (`hex` gives it in lowercase hex) starts with `spec`, in either
/// case, or why there is not one.
pub(crate) fn match_prefix<T>(
    items: impl IntoIterator<Item = T>,
    hex: impl Fn(&T) -> String,
    spec: &str,
) -> PrefixMatch<T> {
    let prefix = spec.to_ascii_lowercase();
    if prefix.is_empty() || !prefix.bytes().all(|b| b.is_ascii_hexdigit()) {
        return PrefixMatch::NotHex;
    }
    let mut hits = items.into_iter().filter(|i| hex(i).starts_with(&prefix));
    match (hits.next(), hits.count()) {
        (None, _) => PrefixMatch::Nothing,
        (Some(one), 0) => PrefixMatch::One(one),
        (Some(_), more) => PrefixMatch::Several(more + 1),
    }
}

/// The snapshot a prefix matched, or the error that says why there is not one.
fn one_snapshot<T>(found: PrefixMatch<T>, spec: &str) -> Result<T> {
    match found {
        PrefixMatch::One(s) => Ok(s),
        PrefixMatch::NotHex => Err(Error::SnapshotNotFound(format!(
            "{spec:?} is not a snapshot id (hex digits) or \"latest\""
        ))),
        PrefixMatch::Nothing => Err(Error::SnapshotNotFound(format!(
            "no snapshot matches {spec:?}"
        ))),
        PrefixMatch::Several(n) => Err(Error::SnapshotNotFound(format!(
            "{n} snapshots match {spec:?}: give more digits"
        ))),
    }
}

/// Picks the snapshot `spec` names among `all` (oldest first): `latest`, or a unique hex prefix
/// of its id.
pub fn pick_snapshot(all: &[SnapshotEntry], spec: &str) -> Result<SnapshotEntry> {
    if spec == "latest" {
        return all.last().cloned().ok_or_else(|| {
            Error::SnapshotNotFound("there is no snapshot (to take as latest)".into())
        });
    }
    one_snapshot(match_prefix(all, |s| s.id.to_hex(), spec), spec).cloned()
}

/// What a damaged key file is reported as.
fn key_object(id: &RawId) -> Object {
    Object::File {
        file_type: FileType::Key,
        name: hex::encode(id),
    }
}

/// Reads key file `id` and checks it: named by the hash of its bytes, and of the shape of a key
/// file. Opening it with a password is the caller's step.
pub fn read_key_file(backend: &dyn Backend, id: &RawId) -> Result<KeyFile> {
    let bytes = backend.read(FileType::Key, id)?;
    if *blake3::hash(&bytes).as_bytes() != *id {
        return Err(Error::corrupt(
            key_object(id),
            "content does not hash to its name",
        ));
    }
    serde_json::from_slice::<KeyFile>(&bytes)
        .map_err(|e| Error::corrupt(key_object(id), format!("does not decode: {e}")))
}

/// A stored pack as a listing of its folder describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPack {
    /// The blob type its folder holds.
    pub blob_type: BlobType,
    /// Its size in bytes.
    pub size: u64,
    /// When it was last written, if the storage tells.
    pub modified: Option<std::time::SystemTime>,
    /// Its storage class, if the storage tells.
    pub storage_class: Option<crate::storage::StorageClass>,
}

/// A pack the index names that storage cannot give in full is damage, not an I/O error.
fn pack_read_error(pack: &PackId, err: BackendError) -> Error {
    match err {
        BackendError::ShortRead { .. } => Error::corrupt(Object::Pack(*pack), err.to_string()),
        BackendError::NotFound { .. } => Error::corrupt(Object::Pack(*pack), "pack is missing"),
        other => other.into(),
    }
}

/// A repository on `backend` with the cheapest Argon2id costs, for tests.
#[cfg(test)]
pub(crate) fn test_repository(backend: Arc<dyn Backend>) -> Repository {
    let opts = InitOptions {
        kdf: KdfParams {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
        },
        ..InitOptions::default()
    };
    Repository::init(backend, b"pw", &opts).expect("init a test repository")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::MemoryBackend;
    use crate::testing::{backup_dir, write_files};

    fn store() -> (Arc<MemoryBackend>, Repository) {
        let backend = Arc::new(MemoryBackend::new());
        let repo = test_repository(backend.clone());
        (backend, repo)
    }

    #[test]
    fn a_config_breaking_the_version_rules_or_bounds_is_refused() {
        let (_, repo) = store();
        let good = repo.config().clone();
        assert_eq!(good.version, FORMAT_VERSION);
        assert!(good.chunker_seed.is_some());
        check_config(&good).unwrap();
        let bad = [
            (
                "a version 1 config has no chunker_seed",
                Config {
                    version: 1,
                    ..good.clone()
                },
            ),
            (
                "chunker_seed member is missing",
                Config {
                    chunker_seed: None,
                    ..good.clone()
                },
            ),
            (
                "compression level out of range",
                Config {
                    compression_level: 99,
                    ..good.clone()
                },
            ),
            (
                "pack sizes out of range",
                Config {
                    data_pack_size: 0,
                    ..good.clone()
                },
            ),
            (
                "is not supported",
                Config {
                    version: 3,
                    ..good.clone()
                },
            ),
            (
                "is not supported",
                Config {
                    version: 0,
                    ..good.clone()
                },
            ),
        ];
        for (why, config) in bad {
            let err = check_config(&config).unwrap_err().to_string();
            assert!(err.contains(why), "{why}: {err}");
        }
        let empty = Repository::init(Arc::new(MemoryBackend::new()), b"", &InitOptions::default());
        assert!(matches!(empty, Err(Error::InvalidOptions(_))));
    }

    #[test]
    fn a_zstd_level_zstd_lacks_is_refused_by_init_and_by_a_command() {
        let refused = |r: Result<()>| match r {
            Err(Error::InvalidOptions(m)) => assert!(m.contains("invalid zstd level 99"), "{m}"),
            other => panic!("expected InvalidOptions, got {other:?}"),
        };
        let (_, mut repo) = store();
        refused(repo.set_blob_compression(compress::Compression::Level(99)));
        assert_eq!(repo.blob_compression(), compress::Compression::Level(3));
        repo.set_blob_compression(compress::Compression::Level(-5))
            .unwrap();
        assert_eq!(repo.blob_compression(), compress::Compression::Level(-5));

        let opts = InitOptions {
            compression_level: 99,
            ..InitOptions::default()
        };
        let backend: Arc<dyn Backend> = Arc::new(MemoryBackend::new());
        refused(Repository::init(backend.clone(), b"pw", &opts).map(|_| ()));
        assert!(!Repository::exists(backend.as_ref()).unwrap());
    }

    #[test]
    fn a_prefix_names_one_snapshot_readable_or_damaged_and_never_stands_for_an_ambiguous_one() {
        let (_, repo) = store();
        let src = tempfile::tempdir().unwrap();
        write_files(src.path(), &[("a", b"a")]);
        backup_dir(&repo, src.path(), &[]);
        let real = repo.snapshots().unwrap().remove(0).snapshot;
        let id = |prefix: &str| format!("{prefix:0<64}").parse::<SnapshotId>().unwrap();
        let listing = |readable: &[&str], damaged: &[&str]| SnapshotListing {
            readable: readable
                .iter()
                .map(|p| SnapshotEntry {
                    id: id(p),
                    snapshot: real.clone(),
                })
                .collect(),
            damaged: damaged
                .iter()
                .map(|p| {
                    (
                        id(p),
                        Error::corrupt(Object::BlobId(BlobId::default()), "bad"),
                    )
                })
                .collect(),
        };
        let refused = |r: Result<Picked>, what: &str| match r {
            Err(Error::SnapshotNotFound(m)) => assert!(m.contains(what), "{m}"),
            other => panic!("expected a refusal, got {other:?}"),
        };
        refused(
            listing(&["abc1", "abc2"], &["abc3"]).pick("abc"),
            "3 snapshots match",
        );
        refused(
            listing(&["abc1"], &["abc3"]).pick("abc"),
            "2 snapshots match",
        );
        refused(listing(&["abc1"], &["abc3"]).pick(""), "not a snapshot id");
        refused(
            listing(&["abc1"], &["abc3"]).pick("abz"),
            "not a snapshot id",
        );
        match listing(&["abc1"], &["abc3"]).pick("ABC3").unwrap() {
            Picked::Damaged(found, _) => assert_eq!(found, id("abc3")),
            other => panic!("{other:?}"),
        }
        for spec in ["abc1", "latest"] {
            match listing(&["abc1"], &["abc3"]).pick(spec).unwrap() {
                Picked::Readable(s) => assert_eq!(s.id, id("abc1")),
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn opening_tells_a_wrong_password_from_a_missing_or_existing_repository() {
        let (backend, repo) = store();
        let id = repo.config().id;
        assert!(matches!(
            Repository::open(backend.clone(), b"other"),
            Err(Error::WrongPassword { keys: 1 })
        ));
        assert_eq!(
            Repository::open(backend.clone(), b"pw")
                .unwrap()
                .config()
                .id,
            id
        );
        assert!(matches!(
            Repository::init(backend, b"pw", &InitOptions::default()),
            Err(Error::RepositoryExists { .. })
        ));
        assert!(matches!(
            Repository::open(Arc::new(MemoryBackend::new()), b"pw"),
            Err(Error::RepositoryNotFound { .. })
        ));
    }

    #[test]
    fn a_damaged_key_file_does_not_hide_a_good_one_but_is_reported_alone() {
        let (backend, _) = store();
        let junk = b"{\"not\": \"a key\"}";
        backend
            .write(FileType::Key, KeyId::hash_of(junk).as_bytes(), junk)
            .unwrap();
        assert!(Repository::open(backend.clone(), b"pw").is_ok());
        let err = Repository::open(backend.clone(), b"wrong").unwrap_err();
        assert!(err.is_corruption(), "the damaged key is named: {err}");
        // Without the good key, the damage is what is reported.
        for k in backend.list(FileType::Key).unwrap() {
            if k.id != *KeyId::hash_of(junk).as_bytes() {
                backend.remove(FileType::Key, &k.id).unwrap();
            }
        }
        assert!(Repository::open(backend, b"pw")
            .unwrap_err()
            .is_corruption());
    }

    #[test]
    fn snapshots_are_found_by_prefix_and_latest() {
        let (_, repo) = store();
        let src = tempfile::tempdir().unwrap();
        write_files(src.path(), &[("f", b"1")]);
        let first = backup_dir(&repo, src.path(), &[]);
        write_files(src.path(), &[("f", b"2")]);
        let second = backup_dir(&repo, src.path(), &[]);
        assert_eq!(repo.find_snapshot("latest").unwrap().id, second);
        assert_eq!(repo.find_snapshot(&first.short()).unwrap().id, first);
        assert!(matches!(
            repo.find_snapshot("0000000000"),
            Err(Error::SnapshotNotFound(_))
        ));
    }

    #[test]
    fn a_file_whose_bytes_do_not_hash_to_its_name_is_corrupt() {
        let (backend, repo) = store();
        let src = tempfile::tempdir().unwrap();
        write_files(src.path(), &[("f", b"1")]);
        let id = backup_dir(&repo, src.path(), &[]);
        let sealed = backend.read(FileType::Snapshot, id.as_bytes()).unwrap();
        let other = SnapshotId::hash_of(b"elsewhere");
        backend
            .write(FileType::Snapshot, other.as_bytes(), &sealed)
            .unwrap();
        let err = repo
            .load_file::<Snapshot>(FileType::Snapshot, other.as_bytes())
            .unwrap_err();
        assert!(err.is_corruption(), "{err}");
        assert!(
            err.to_string().contains("does not hash to its name"),
            "{err}"
        );
    }
}
