//! A local cache of a remote repository's metadata: key files, snapshot files, index files and
//! tree packs, so that a command reads from the store only what changed since the last one.
//!
//! Every cached object is named by the BLAKE3 hash of its bytes, as in the repository, so a
//! cached file is checked against its name each time it is read: a damaged or tampered file is
//! removed and fetched again, never trusted. Objects stay sealed, as stored. The store's listing
//! says what exists: objects the listing no longer has (superseded index files, forgotten
//! snapshots, pruned tree packs) leave the cache when their folder is listed. Data packs are
//! never cached, nor is the config (the one object not named by its hash) or a lock.
//!
//! Files are written to a temporary name and renamed, so two processes sharing a cache never
//! read half a file. When the cache cannot be written (a full disk), the command goes on reading
//! from the store, with one warning.

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use super::{Backend, FileType, ObjectEntry, ObjectState};
use crate::id::{RawId, RepoId};
use crate::storage::BackendError;

/// The tag that backup tools (floe included, with `--exclude-caches`) recognise.
const CACHEDIR_TAG: &str = "Signature: 8a477f597d28d172789f06886806bc55\n\
# This file is a cache directory tag created by floe.\n\
# For information about cache directory tags see https://bford.info/cachedir/\n";

/// The folder under the cache's base that maps a location to its repository's id.
const LOCATIONS: &str = "locations";

/// The file whose time says when a repository's cache was last used.
pub const LAST_USED: &str = "last-used";

/// Whether objects of this type are kept.
fn cached(t: FileType) -> bool {
    matches!(
        t,
        FileType::Key | FileType::Snapshot | FileType::Index | FileType::TreePack
    )
}

/// Called with a sentence for the user (a damaged cached file, a full disk, a cache too small).
pub type CacheWarn = Arc<dyn Fn(&str) + Send + Sync>;

/// Counts of one command's use of the cache.
#[derive(Debug, Default)]
pub struct CacheStats {
    /// Objects read from the cache.
    pub hits: AtomicU64,
    /// Objects read from the store and kept.
    pub misses: AtomicU64,
    /// Cached files that did not match their name, removed and fetched again.
    pub damaged: AtomicU64,
}

/// A [`Backend`] that keeps metadata in a local folder.
pub struct CachedBackend {
    inner: Arc<dyn Backend>,
    base: PathBuf,
    /// `<base>/<repository id>`, once known.
    dir: RwLock<Option<PathBuf>>,
    /// Most bytes of tree packs kept; the least recently used go first.
    max_tree_bytes: u64,
    /// Bytes of the cached tree packs, counted on the first tree pack kept (not at start-up:
    /// most commands keep none).
    tree_bytes: std::sync::Mutex<Option<u64>>,
    /// Set when the cache could not be written: from then on, reads go to the store.
    broken: AtomicBool,
    too_small_warned: AtomicBool,
    /// Tree packs this command read or wrote: evicting one of them means the cache is too small.
    used: std::sync::Mutex<HashSet<RawId>>,
    warn: CacheWarn,
    stats: CacheStats,
    /// Objects read before the folder was known (the key files of a first run), kept once it is.
    pending: std::sync::Mutex<Vec<(FileType, RawId, Vec<u8>)>>,
}

impl CachedBackend {
    /// A cache for `inner` under `base`. The repository's folder is known at once when this
    /// location was opened before (its key files then come from the cache); otherwise after
    /// [`CachedBackend::attach`].
    pub fn new(inner: Arc<dyn Backend>, base: &Path, max_tree_bytes: u64, warn: CacheWarn) -> Self {
        let known = std::fs::read_to_string(location_file(base, &inner.location()))
            .ok()
            .and_then(|id| id.trim().parse::<RepoId>().ok());
        let cache = CachedBackend {
            inner,
            base: base.to_path_buf(),
            dir: RwLock::new(None),
            max_tree_bytes,
            tree_bytes: std::sync::Mutex::new(None),
            broken: AtomicBool::new(false),
            too_small_warned: AtomicBool::new(false),
            used: std::sync::Mutex::new(HashSet::new()),
            warn,
            stats: CacheStats::default(),
            pending: std::sync::Mutex::new(Vec::new()),
        };
        if let Some(id) = known {
            cache.use_dir(&id);
        }
        cache
    }

    /// Uses the folder of repository `id` from now on, and remembers that this location holds it.
    pub fn attach(&self, id: &RepoId) {
        let file = location_file(&self.base, &self.inner.location());
        let written = std::fs::create_dir_all(self.base.join(LOCATIONS))
            .and_then(|()| write_atomic(&file, id.to_hex().as_bytes()));
        if let Err(e) = written {
            self.disable(&e);
        }
        self.use_dir(id);
        let pending = std::mem::take(&mut *self.pending.lock().unwrap_or_else(|p| p.into_inner()));
        for (t, id, bytes) in pending {
            self.put(t, &id, &bytes);
        }
    }

    fn use_dir(&self, id: &RepoId) {
        let dir = self.base.join(id.to_hex());
        if self.dir().as_deref() == Some(dir.as_path()) {
            return;
        }
        if let Err(e) = prepare(&self.base, &dir) {
            return self.disable(&e);
        }
        *self.tree_total() = None;
        if let Ok(mut d) = self.dir.write() {
            *d = Some(dir);
        }
    }

    fn dir(&self) -> Option<PathBuf> {
        if self.broken.load(Ordering::Relaxed) {
            return None;
        }
        self.dir.read().ok().and_then(|d| d.clone())
    }

    /// How the cache served this command.
    pub fn stats(&self) -> &CacheStats {
        &self.stats
    }

    fn disable(&self, e: &std::io::Error) {
        if !self.broken.swap(true, Ordering::Relaxed) {
            (self.warn)(&format!(
                "the cache in {} cannot be written ({e}): reading from the repository directly",
                self.base.display()
            ));
        }
    }

    fn path(&self, t: FileType, id: &RawId) -> Option<PathBuf> {
        Some(self.dir()?.join(t.object_path(id)))
    }

    /// The cached bytes of an object, checked against its name.
    fn get(&self, t: FileType, id: &RawId) -> Option<Vec<u8>> {
        let path = self.path(t, id)?;
        let bytes = std::fs::read(&path).ok()?;
        if blake3::hash(&bytes).as_bytes() != id {
            self.stats.damaged.fetch_add(1, Ordering::Relaxed);
            let _ = std::fs::remove_file(&path);
            (self.warn)(&format!(
                "cached {} does not match its name: removed, and read again from the repository",
                path.display()
            ));
            return None;
        }
        if t == FileType::TreePack {
            self.note_used(id);
            // Its time is its last use, for eviction.
            let _ = std::fs::File::options()
                .write(true)
                .open(&path)
                .and_then(|f| f.set_modified(SystemTime::now()));
        }
        self.stats.hits.fetch_add(1, Ordering::Relaxed);
        Some(bytes)
    }

    /// Keeps an object read from or written to the store.
    fn put(&self, t: FileType, id: &RawId, bytes: &[u8]) {
        let Some(path) = self.path(t, id) else {
            if t == FileType::Key && !self.broken.load(Ordering::Relaxed) {
                let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
                pending.push((t, *id, bytes.to_vec()));
            }
            return;
        };
        if path.exists() {
            return;
        }
        if t == FileType::TreePack {
            // Counted before this pack lands, so that it is counted once.
            let dir = path.parent().and_then(Path::parent).map(Path::to_path_buf);
            self.tree_total()
                .get_or_insert_with(|| dir.map_or(0, |d| files(&d).iter().map(|f| f.1).sum()));
        }
        let written = path
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| write_atomic(&path, bytes));
        if let Err(e) = written {
            return self.disable(&e);
        }
        if t == FileType::TreePack {
            self.note_used(id);
            let over = {
                let mut total = self.tree_total();
                let known = total.get_or_insert(0);
                *known += bytes.len() as u64;
                *known > self.max_tree_bytes
            };
            if over {
                self.evict();
            }
        }
    }

    fn tree_total(&self) -> std::sync::MutexGuard<'_, Option<u64>> {
        self.tree_bytes.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn note_used(&self, id: &RawId) {
        self.used
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(*id);
    }

    /// Removes the least recently used tree packs until they fit in 90% of the limit.
    fn evict(&self) {
        let Some(dir) = self.dir() else { return };
        let mut packs = files(&dir.join(FileType::TreePack.dir_name()));
        packs.sort_by_key(|p| p.2);
        let mut total: u64 = packs.iter().map(|p| p.1).sum();
        let goal = self.max_tree_bytes / 10 * 9;
        for (path, size, _) in packs {
            if total <= goal {
                break;
            }
            if std::fs::remove_file(&path).is_ok() {
                total -= size;
            }
            let id = path
                .file_name()
                .and_then(|n| super::parse_name(&n.to_string_lossy()));
            let in_use = id.is_some_and(|id| {
                let used = self.used.lock().unwrap_or_else(|p| p.into_inner());
                used.contains(&id)
            });
            if in_use && !self.too_small_warned.swap(true, Ordering::Relaxed) {
                (self.warn)(&format!(
                    "the cache holds at most {} MiB of tree packs (--cache-size), less than this \
                     repository's trees need: some are read again from the repository",
                    self.max_tree_bytes >> 20
                ));
            }
        }
        *self.tree_total() = Some(total);
    }

    /// Drops cached objects of type `t` that the store's listing no longer has.
    fn retain(&self, t: FileType, listing: &[ObjectEntry]) {
        let Some(dir) = self.dir() else { return };
        let live: HashSet<&RawId> = listing.iter().map(|e| &e.id).collect();
        let mut removed = 0;
        for (path, size, _) in files(&dir.join(t.dir_name())) {
            let id = path
                .file_name()
                .and_then(|n| super::parse_name(&n.to_string_lossy()));
            if id.is_some_and(|id| !live.contains(&id)) && std::fs::remove_file(&path).is_ok() {
                removed += size;
            }
        }
        if let (FileType::TreePack, Some(total)) = (t, self.tree_total().as_mut()) {
            *total = total.saturating_sub(removed);
        }
    }
}

fn location_file(base: &Path, location: &str) -> PathBuf {
    base.join(LOCATIONS)
        .join(blake3::hash(location.as_bytes()).to_hex().as_str())
}

/// Creates the base with its `CACHEDIR.TAG` and the repository's folder, and marks it used now.
fn prepare(base: &Path, dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let tag = base.join("CACHEDIR.TAG");
    if !tag.exists() {
        write_atomic(&tag, CACHEDIR_TAG.as_bytes())?;
    }
    write_atomic(&dir.join(LAST_USED), b"")
}

/// Writes `bytes` to a temporary file beside `path`, then renames it there.
fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let name = format!(".tmp-{}-{n}", std::process::id());
    let tmp = path.with_file_name(name);
    let written = std::fs::File::create(&tmp).and_then(|mut f| f.write_all(bytes));
    match written.and_then(|()| std::fs::rename(&tmp, path)) {
        Ok(()) => Ok(()),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

/// The files under `dir` (one level of sub-folders for packs): path, size, modification time.
fn files(dir: &Path) -> Vec<(PathBuf, u64, SystemTime)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let Ok(meta) = e.metadata() else { continue };
            if meta.is_dir() {
                stack.push(e.path());
            } else if !e.file_name().to_string_lossy().starts_with(".tmp-") {
                let used = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
                out.push((e.path(), meta.len(), used));
            }
        }
    }
    out
}

impl Backend for CachedBackend {
    fn location(&self) -> String {
        self.inner.location()
    }
    fn create(&self) -> Result<(), BackendError> {
        self.inner.create()
    }
    fn list(&self, t: FileType) -> Result<Vec<ObjectEntry>, BackendError> {
        let listing = self.inner.list(t)?;
        if cached(t) {
            self.retain(t, &listing);
        }
        Ok(listing)
    }
    fn read(&self, t: FileType, id: &RawId) -> Result<Vec<u8>, BackendError> {
        if !cached(t) {
            return self.inner.read(t, id);
        }
        if let Some(bytes) = self.get(t, id) {
            return Ok(bytes);
        }
        let bytes = self.inner.read(t, id)?;
        // Only what matches its name is kept.
        if blake3::hash(&bytes).as_bytes() == id {
            self.stats.misses.fetch_add(1, Ordering::Relaxed);
            self.put(t, id, &bytes);
        }
        Ok(bytes)
    }
    fn read_range(&self, t: FileType, id: &RawId, o: u64, l: u64) -> Result<Vec<u8>, BackendError> {
        let cached_whole = cached(t).then(|| self.get(t, id)).flatten();
        match cached_whole {
            Some(bytes) => super::range_of(&bytes, o, l, || self.location_of(t, id)),
            None => self.inner.read_range(t, id, o, l),
        }
    }
    fn read_range_into(
        &self,
        t: FileType,
        id: &RawId,
        o: u64,
        l: u64,
        buf: &mut Vec<u8>,
    ) -> Result<(), BackendError> {
        if cached(t) {
            if let Some(bytes) = self.get(t, id) {
                *buf = super::range_of(&bytes, o, l, || self.location_of(t, id))?;
                return Ok(());
            }
        }
        self.inner.read_range_into(t, id, o, l, buf)
    }
    fn read_range_with(
        &self,
        t: FileType,
        id: &RawId,
        o: u64,
        l: u64,
        sink: &mut dyn FnMut(&[u8]),
    ) -> Result<(), BackendError> {
        if cached(t) {
            if let Some(bytes) = self.get(t, id) {
                sink(&super::range_of(&bytes, o, l, || self.location_of(t, id))?);
                return Ok(());
            }
        }
        self.inner.read_range_with(t, id, o, l, sink)
    }
    fn write(&self, t: FileType, id: &RawId, d: &[u8]) -> Result<(), BackendError> {
        self.inner.write(t, id, d)?;
        if cached(t) {
            self.put(t, id, d);
        }
        Ok(())
    }
    fn write_owned(
        &self,
        t: FileType,
        id: &RawId,
        data: Vec<u8>,
    ) -> Result<Option<Vec<u8>>, BackendError> {
        if !cached(t) || self.dir().is_none() {
            return self.inner.write_owned(t, id, data);
        }
        let copy = data.clone();
        let back = self.inner.write_owned(t, id, data)?;
        self.put(t, id, &copy);
        Ok(back)
    }
    fn remove(&self, t: FileType, id: &RawId) -> Result<(), BackendError> {
        self.inner.remove(t, id)?;
        if let Some(path) = cached(t).then(|| self.path(t, id)).flatten() {
            let _ = std::fs::remove_file(path);
        }
        Ok(())
    }
    // What the cache keeps is written whole, so that it can keep a copy; the rest (data packs)
    // goes the storage's way.
    fn stage(&self, t: FileType) -> Result<Option<Box<dyn super::Staged + '_>>, BackendError> {
        if cached(t) {
            return Ok(None);
        }
        self.inner.stage(t)
    }
    fn leftovers(&self) -> Result<Vec<super::Leftover>, BackendError> {
        self.inner.leftovers()
    }
    fn remove_leftover(&self, l: &super::Leftover) -> Result<(), BackendError> {
        self.inner.remove_leftover(l)
    }
    fn stat(&self, t: FileType, id: &RawId) -> Result<ObjectState, BackendError> {
        self.inner.stat(t, id)
    }
    fn request_thaw(
        &self,
        t: FileType,
        id: &RawId,
        days: u32,
        tier: super::ThawTier,
    ) -> Result<super::ThawRequest, BackendError> {
        self.inner.request_thaw(t, id, days, tier)
    }
    fn is_remote(&self) -> bool {
        self.inner.is_remote()
    }
    fn connections(&self) -> usize {
        self.inner.connections()
    }
    fn lifecycle(&self) -> Result<Option<super::lifecycle::Lifecycle>, BackendError> {
        self.inner.lifecycle()
    }
    fn set_retention(&self, r: super::Retention) -> Result<(), BackendError> {
        self.inner.set_retention(r)
    }
    fn retention(
        &self,
        t: FileType,
        id: &RawId,
    ) -> Result<Option<chrono::DateTime<chrono::Utc>>, BackendError> {
        self.inner.retention(t, id)
    }
    fn extend_retention(
        &self,
        t: FileType,
        id: &RawId,
        until: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), BackendError> {
        self.inner.extend_retention(t, id, until)
    }
}

impl CachedBackend {
    fn location_of(&self, t: FileType, id: &RawId) -> String {
        format!("{} {}", self.inner.location(), t.object_path(id))
    }
}

/// One repository's cache, as `floe cache` lists it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CacheEntry {
    /// The repository's id (the folder's name).
    pub id: String,
    /// Its folder.
    pub path: PathBuf,
    /// Bytes held.
    pub bytes: u64,
    /// When a command last used it.
    pub last_used: Option<chrono::DateTime<chrono::Utc>>,
}

/// The repositories' caches under `base`.
pub fn list_caches(base: &Path) -> std::io::Result<Vec<CacheEntry>> {
    let mut out = Vec::new();
    let entries = match std::fs::read_dir(base) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e),
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.parse::<RepoId>().is_err() || !e.path().is_dir() {
            continue;
        }
        let path = e.path();
        let last_used = std::fs::metadata(path.join(LAST_USED))
            .and_then(|m| m.modified())
            .ok()
            .map(chrono::DateTime::<chrono::Utc>::from);
        let bytes = files(&path).iter().map(|f| f.1).sum();
        out.push(CacheEntry {
            id: name,
            path,
            bytes,
            last_used,
        });
    }
    out.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::MemoryBackend;
    use std::sync::Mutex;

    fn setup(
        max: u64,
    ) -> (
        Arc<MemoryBackend>,
        CachedBackend,
        tempfile::TempDir,
        Arc<Mutex<Vec<String>>>,
    ) {
        let inner = Arc::new(MemoryBackend::new());
        let dir = tempfile::tempdir().unwrap();
        let warnings = Arc::new(Mutex::new(Vec::new()));
        let w = warnings.clone();
        let cache = CachedBackend::new(
            inner.clone(),
            dir.path(),
            max,
            Arc::new(move |s: &str| w.lock().unwrap().push(s.to_string())),
        );
        cache.attach(&RepoId::from_bytes([9; 32]));
        (inner, cache, dir, warnings)
    }

    fn id_of(b: &[u8]) -> RawId {
        *blake3::hash(b).as_bytes()
    }

    #[test]
    fn a_second_read_comes_from_the_cache_and_a_damaged_file_is_fetched_again() {
        let (inner, cache, dir, warnings) = setup(1 << 30);
        let bytes = b"an index file".to_vec();
        let id = id_of(&bytes);
        inner.write(FileType::Index, &id, &bytes).unwrap();
        assert_eq!(cache.read(FileType::Index, &id).unwrap(), bytes);
        inner.remove(FileType::Index, &id).unwrap();
        assert_eq!(
            cache.read(FileType::Index, &id).unwrap(),
            bytes,
            "from the cache"
        );
        assert_eq!(cache.stats().hits.load(Ordering::Relaxed), 1);

        let path = dir
            .path()
            .join(hex::encode([9; 32]))
            .join(FileType::Index.object_path(&id));
        std::fs::write(&path, b"an index filf").unwrap();
        inner.write(FileType::Index, &id, &bytes).unwrap();
        assert_eq!(cache.read(FileType::Index, &id).unwrap(), bytes);
        assert!(warnings.lock().unwrap()[0].contains("does not match its name"));
        assert_eq!(
            std::fs::read(&path).unwrap(),
            bytes,
            "fetched and kept again"
        );
        assert!(dir.path().join("CACHEDIR.TAG").exists());
    }

    #[test]
    fn the_listing_drops_what_the_store_no_longer_has() {
        let (inner, cache, _dir, _) = setup(1 << 30);
        let (a, b) = (b"snapshot a".to_vec(), b"snapshot b".to_vec());
        cache.write(FileType::Snapshot, &id_of(&a), &a).unwrap();
        cache.write(FileType::Snapshot, &id_of(&b), &b).unwrap();
        inner.remove(FileType::Snapshot, &id_of(&a)).unwrap();
        assert_eq!(cache.list(FileType::Snapshot).unwrap().len(), 1);
        assert!(cache.get(FileType::Snapshot, &id_of(&a)).is_none());
        assert!(cache.get(FileType::Snapshot, &id_of(&b)).is_some());
        // Data packs and locks are never kept.
        let d = b"data".to_vec();
        cache.write(FileType::DataPack, &id_of(&d), &d).unwrap();
        assert!(cache
            .path(FileType::DataPack, &id_of(&d))
            .is_some_and(|p| !p.exists()));
    }

    #[test]
    fn tree_packs_past_the_limit_are_evicted_least_recently_used_first() {
        let (_inner, cache, _dir, warnings) = setup(25_000);
        let packs: Vec<Vec<u8>> = (0..4u8).map(|i| vec![i; 10_000]).collect();
        for p in &packs[..2] {
            cache.write(FileType::TreePack, &id_of(p), p).unwrap();
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert!(cache.get(FileType::TreePack, &id_of(&packs[0])).is_some());
        std::thread::sleep(std::time::Duration::from_millis(20));
        cache
            .write(FileType::TreePack, &id_of(&packs[2]), &packs[2])
            .unwrap();
        assert!(
            cache
                .path(FileType::TreePack, &id_of(&packs[0]))
                .unwrap()
                .exists(),
            "used last"
        );
        assert!(!cache
            .path(FileType::TreePack, &id_of(&packs[1]))
            .unwrap()
            .exists());
        assert!(warnings
            .lock()
            .unwrap()
            .iter()
            .any(|w| w.contains("--cache-size")));
    }

    #[test]
    fn a_known_location_finds_its_folder_before_the_id_is_read() {
        let (inner, cache, dir, _) = setup(1 << 30);
        let key = b"a key file".to_vec();
        cache.write(FileType::Key, &id_of(&key), &key).unwrap();
        inner.remove(FileType::Key, &id_of(&key)).unwrap();
        let again = CachedBackend::new(inner, dir.path(), 1 << 30, Arc::new(|_: &str| {}));
        assert_eq!(again.read(FileType::Key, &id_of(&key)).unwrap(), key);
        let listed = list_caches(dir.path()).unwrap();
        assert_eq!(listed.len(), 1);
        assert!(listed[0].bytes >= key.len() as u64 && listed[0].last_used.is_some());
    }
}
