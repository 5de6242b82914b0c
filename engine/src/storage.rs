//! Storage backends: a small trait keyed by (file type, id).
//!
//! A backend stores opaque bytes; it knows nothing of encryption or the format beyond the layout of
//! folders (format-spec/format.md, "Repository layout"). Wrappers add behaviour without copying a
//! backend: [`DryRunBackend`] discards writes. Every backend passes the same conformance suite
//! ([`conformance`]).

use std::sync::Arc;

use crate::id::RawId;
pub use error::BackendError;

mod cache;
mod dry_run;
mod error;
#[cfg(test)]
pub(crate) mod faulty;
mod http;
pub mod lifecycle;
mod local;
mod memory;
pub mod s3;

pub mod conformance;

pub use cache::{list_caches, CacheEntry, CacheStats, CacheWarn, CachedBackend};
pub use dry_run::DryRunBackend;
pub use http::{choose_ca_files, send, CaFile, NetworkProblem, TlsOptions};
pub use local::LocalBackend;
pub use memory::MemoryBackend;
pub use s3::{S3Backend, S3Options};

/// How S3 Object Lock protects an object version until its retention date.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RetentionMode {
    /// Nobody without `s3:BypassGovernanceRetention` can destroy the version or shorten its date.
    Governance,
    /// Nobody at all can, the account's root user included.
    Compliance,
}

impl RetentionMode {
    /// The name S3 uses.
    pub fn s3_name(self) -> &'static str {
        match self {
            RetentionMode::Governance => "GOVERNANCE",
            RetentionMode::Compliance => "COMPLIANCE",
        }
    }

    /// `governance` or `compliance`, as given on the command line.
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "governance" => Some(RetentionMode::Governance),
            "compliance" => Some(RetentionMode::Compliance),
            _ => None,
        }
    }
}

/// The retention an Object Lock repository gives every object it writes, except lock files:
/// `mode` until `days` days after the write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Retention {
    /// The mode.
    pub mode: RetentionMode,
    /// Days from the write.
    pub days: u32,
}

/// The id passed for the single `config` file, whose name carries no id.
pub const CONFIG_ID: RawId = [0u8; 32];

/// The kinds of file in a repository, each with its own folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FileType {
    /// `config`: the repository's settings, encrypted.
    Config,
    /// `keys/<id>`: key files, each wrapping the master key under a password.
    Key,
    /// `snapshots/<id>`.
    Snapshot,
    /// `index/<id>`.
    Index,
    /// `locks/<id>`.
    Lock,
    /// `tree/<2 hex>/<id>`: packs of tree blobs. Stays in a hot storage class.
    TreePack,
    /// `data/<2 hex>/<id>`: packs of file-content blobs. The only prefix that may go cold.
    DataPack,
}

impl FileType {
    /// Every file type.
    pub const ALL: [FileType; 7] = [
        FileType::Config,
        FileType::Key,
        FileType::Snapshot,
        FileType::Index,
        FileType::Lock,
        FileType::TreePack,
        FileType::DataPack,
    ];

    /// The folder (or, for config, the file) name.
    pub fn dir_name(self) -> &'static str {
        match self {
            FileType::Config => "config",
            FileType::Key => "keys",
            FileType::Snapshot => "snapshots",
            FileType::Index => "index",
            FileType::Lock => "locks",
            FileType::TreePack => "tree",
            FileType::DataPack => "data",
        }
    }

    /// True for pack folders, which are split into 256 sub-folders by the first byte of the id.
    pub fn is_pack(self) -> bool {
        matches!(self, FileType::TreePack | FileType::DataPack)
    }

    /// The path of an object relative to the repository root, with `/` separators.
    pub fn object_path(self, id: &RawId) -> String {
        match self {
            FileType::Config => "config".to_string(),
            t if t.is_pack() => {
                let h = hex::encode(id);
                format!("{}/{}/{}", t.dir_name(), &h[..2], h)
            }
            t => format!("{}/{}", t.dir_name(), hex::encode(id)),
        }
    }
}

/// `length` bytes at `offset` of a whole object held in memory (the memory backend, the cache);
/// fewer bytes than that is [`BackendError::ShortRead`] at `location`.
pub(crate) fn range_of(
    data: &[u8],
    offset: u64,
    length: u64,
    location: impl FnOnce() -> String,
) -> Result<Vec<u8>, BackendError> {
    let end = offset
        .checked_add(length)
        .filter(|e| *e <= data.len() as u64);
    match end {
        Some(end) => Ok(data[offset as usize..end as usize].to_vec()),
        None => Err(BackendError::ShortRead {
            location: location(),
            offset,
            wanted: length,
            got: (data.len() as u64).saturating_sub(offset),
        }),
    }
}

/// Parses a stored file name into an id; `None` for anything that is not 64 hex digits
/// (temporary files, strays).
pub fn parse_name(name: &str) -> Option<RawId> {
    let mut out = [0u8; 32];
    // Exactly 64 lowercase hex digits: `ABCD...` names no object (format-spec, "Listings").
    if name.len() != 64 || !name.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    hex::decode_to_slice(name, &mut out).ok()?;
    Some(out)
}

/// A stored object as a listing returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectEntry {
    /// The id.
    pub id: RawId,
    /// Size in bytes.
    pub size: u64,
    /// Last modification time, when the storage tells.
    pub modified: Option<std::time::SystemTime>,
    /// Storage class, when the storage has classes (object stores).
    pub storage_class: Option<StorageClass>,
}

/// A temporary file an interrupted writer left in the repository (on local storage: a pack cut
/// short by a kill, or a file whose rename never came). No listing takes it for an object.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Leftover {
    /// Its path relative to the repository root, with `/` separators.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// Last modification time, when the storage tells.
    #[serde(skip)]
    pub modified: Option<std::time::SystemTime>,
}

/// An object store's storage class.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum StorageClass {
    /// Hot storage.
    Standard,
    /// Infrequent access.
    StandardIa,
    /// Infrequent access in one zone.
    OnezoneIa,
    /// Automatic tiering.
    IntelligentTiering,
    /// Glacier with instant retrieval (readable at once).
    GlacierIr,
    /// Glacier flexible retrieval: must be restored before reading.
    Glacier,
    /// Glacier deep archive: must be restored before reading.
    DeepArchive,
    /// A class this build does not know.
    Other(String),
}

impl StorageClass {
    /// From the S3 name (`STANDARD_IA`, `DEEP_ARCHIVE`...).
    pub fn parse(s: &str) -> Self {
        match s {
            "STANDARD" => StorageClass::Standard,
            "STANDARD_IA" => StorageClass::StandardIa,
            "ONEZONE_IA" => StorageClass::OnezoneIa,
            "INTELLIGENT_TIERING" => StorageClass::IntelligentTiering,
            "GLACIER_IR" => StorageClass::GlacierIr,
            "GLACIER" => StorageClass::Glacier,
            "DEEP_ARCHIVE" => StorageClass::DeepArchive,
            other => StorageClass::Other(other.to_string()),
        }
    }

    /// The S3 name.
    pub fn name(&self) -> &str {
        match self {
            StorageClass::Standard => "STANDARD",
            StorageClass::StandardIa => "STANDARD_IA",
            StorageClass::OnezoneIa => "ONEZONE_IA",
            StorageClass::IntelligentTiering => "INTELLIGENT_TIERING",
            StorageClass::GlacierIr => "GLACIER_IR",
            StorageClass::Glacier => "GLACIER",
            StorageClass::DeepArchive => "DEEP_ARCHIVE",
            StorageClass::Other(s) => s,
        }
    }

    /// True when objects of this class cannot be read without a restore (thaw) first.
    pub fn needs_thaw(&self) -> bool {
        matches!(self, StorageClass::Glacier | StorageClass::DeepArchive)
    }

    /// True when an object of this class may need a thaw: the archive classes, and those whose
    /// objects may sit in an archive tier (Intelligent-Tiering) or that this build does not know.
    pub fn may_be_archived(&self) -> bool {
        self.needs_thaw()
            || matches!(
                self,
                StorageClass::IntelligentTiering | StorageClass::Other(_)
            )
    }
}

/// Whether an archived object can be read, as the storage reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ThawState {
    /// Readable now: the class needs no restore.
    Readable,
    /// Archived, and no restore has been asked for (or the last one expired).
    Archived,
    /// A restore was asked for and is under way.
    InProgress,
    /// A restored copy is readable until `expires` (when the storage tells).
    Restored {
        /// When the temporary copy goes away.
        expires: Option<std::time::SystemTime>,
    },
}

/// How fast (and how dearly) an archived object is brought back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ThawTier {
    /// Minutes (GLACIER only), most expensive.
    Expedited,
    /// Hours.
    Standard,
    /// Slowest, cheapest.
    Bulk,
}

impl ThawTier {
    /// The S3 name.
    pub fn name(self) -> &'static str {
        match self {
            ThawTier::Expedited => "Expedited",
            ThawTier::Standard => "Standard",
            ThawTier::Bulk => "Bulk",
        }
    }

    /// From `expedited`, `standard` or `bulk` (any case).
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "expedited" => Some(ThawTier::Expedited),
            "standard" => Some(ThawTier::Standard),
            "bulk" => Some(ThawTier::Bulk),
            _ => None,
        }
    }
}

/// What a request to thaw an object found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThawRequest {
    /// The restore was started (or a restored copy's expiry extended).
    Started,
    /// A restore of this object is already under way; nothing new was asked.
    AlreadyInProgress,
    /// The object is readable without a restore.
    NotNeeded,
}

/// What the storage knows of one object beyond its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectState {
    /// Size in bytes.
    pub size: u64,
    /// Storage class, when the storage has classes.
    pub storage_class: Option<StorageClass>,
    /// Whether it can be read now.
    pub thaw: ThawState,
}

/// An object being written in pieces ([`Backend::stage`]). Readers see nothing of it until
/// [`Staged::commit`]; dropped without a commit, it leaves nothing behind.
pub trait Staged: Send {
    /// Appends `bytes`.
    fn append(&mut self, bytes: &[u8]) -> Result<(), BackendError>;

    /// Bytes appended so far.
    fn len(&self) -> u64;

    /// True when nothing was appended.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Stores what was appended as object `id`, atomically and durably, as
    /// [`Backend::write`] does.
    fn commit(self: Box<Self>, id: &RawId) -> Result<(), BackendError>;
}

/// Storage for a repository.
pub trait Backend: Send + Sync {
    /// A human-readable location, for messages.
    fn location(&self) -> String;

    /// Prepares empty storage for a new repository (folders, where the storage has them).
    fn create(&self) -> Result<(), BackendError>;

    /// Every object of one type, in no particular order.
    fn list(&self, file_type: FileType) -> Result<Vec<ObjectEntry>, BackendError>;

    /// A whole object.
    fn read(&self, file_type: FileType, id: &RawId) -> Result<Vec<u8>, BackendError>;

    /// `length` bytes at `offset`; fewer bytes available is an error.
    fn read_range(
        &self,
        file_type: FileType,
        id: &RawId,
        offset: u64,
        length: u64,
    ) -> Result<Vec<u8>, BackendError>;

    /// As [`Backend::read_range`], into `buf` (its allocation reused).
    fn read_range_into(
        &self,
        file_type: FileType,
        id: &RawId,
        offset: u64,
        length: u64,
        buf: &mut Vec<u8>,
    ) -> Result<(), BackendError> {
        *buf = self.read_range(file_type, id, offset, length)?;
        Ok(())
    }

    /// As [`Backend::read_range`], handing the bytes to `sink` in order as they arrive, each
    /// once, so that a caller need not hold the whole range (a remote store's body is handed on
    /// in the pieces it comes in). On an error, what `sink` got is a prefix of the range.
    fn read_range_with(
        &self,
        file_type: FileType,
        id: &RawId,
        offset: u64,
        length: u64,
        sink: &mut dyn FnMut(&[u8]),
    ) -> Result<(), BackendError> {
        sink(&self.read_range(file_type, id, offset, length)?);
        Ok(())
    }

    /// Stores an object atomically: readers see all of it or nothing, and it is durable on return.
    fn write(&self, file_type: FileType, id: &RawId, data: &[u8]) -> Result<(), BackendError>;

    /// Removes an object. Removing one that does not exist is an error.
    fn remove(&self, file_type: FileType, id: &RawId) -> Result<(), BackendError>;

    /// As [`Backend::write`], taking the bytes so that a backend which hands them to another
    /// task (an HTTP client) need not copy them. Returns the buffer when the backend is done
    /// with it, for reuse.
    fn write_owned(
        &self,
        file_type: FileType,
        id: &RawId,
        data: Vec<u8>,
    ) -> Result<Option<Vec<u8>>, BackendError> {
        self.write(file_type, id, &data)?;
        Ok(Some(data))
    }

    /// Starts an object of `file_type` written in pieces and named once complete (a pack whose
    /// id, a hash of all its bytes, is known only at its end), so that the writer need not hold
    /// it whole in memory. `None` from storage that takes objects whole only: the caller then
    /// assembles the object and calls [`Backend::write_owned`].
    fn stage(&self, _file_type: FileType) -> Result<Option<Box<dyn Staged + '_>>, BackendError> {
        Ok(None)
    }

    /// Temporary files interrupted writers left behind. Only prune removes them, under the
    /// exclusive lock and once they are old. Stores that take objects whole have none.
    fn leftovers(&self) -> Result<Vec<Leftover>, BackendError> {
        Ok(Vec::new())
    }

    /// Removes one of [`Backend::leftovers`].
    fn remove_leftover(&self, _leftover: &Leftover) -> Result<(), BackendError> {
        Err(self.unsupported("removing leftover files"))
    }

    /// Size, storage class and restore state of one object. Storage without classes reports
    /// every object readable.
    fn stat(&self, file_type: FileType, id: &RawId) -> Result<ObjectState, BackendError> {
        let size = self
            .list(file_type)?
            .into_iter()
            .find(|e| &e.id == id)
            .map(|e| e.size)
            .ok_or_else(|| BackendError::NotFound {
                location: format!("{} {}", self.location(), file_type.object_path(id)),
            })?;
        Ok(ObjectState {
            size,
            storage_class: None,
            thaw: ThawState::Readable,
        })
    }

    /// Asks for a temporary readable copy of an archived object, kept `days` days.
    /// Storage without archive classes answers [`ThawRequest::NotNeeded`].
    fn request_thaw(
        &self,
        _file_type: FileType,
        _id: &RawId,
        _days: u32,
        _tier: ThawTier,
    ) -> Result<ThawRequest, BackendError> {
        Ok(ThawRequest::NotNeeded)
    }

    /// True for storage behind a network, where a request costs far more than its bytes:
    /// readers then fetch small hot objects (tree packs) whole and keep them.
    fn is_remote(&self) -> bool {
        false
    }

    /// How many requests the storage serves well at once: backup runs this many pack writers
    /// and restore at least this many readers.
    fn connections(&self) -> usize {
        2
    }

    /// The lifecycle rules of a bucket and the repository's prefix in it; `None` for storage
    /// without lifecycle rules.
    fn lifecycle(&self) -> Result<Option<lifecycle::Lifecycle>, BackendError> {
        Ok(None)
    }

    /// From now on, every object written except lock files carries `r` (S3 Object Lock), and
    /// [`Backend::create`] makes or checks a bucket with Object Lock. No request is sent here.
    /// Storage without Object Lock refuses.
    fn set_retention(&self, _r: Retention) -> Result<(), BackendError> {
        Err(self.unsupported("S3 Object Lock"))
    }

    /// The retention date of an object, `None` when it has none.
    fn retention(
        &self,
        _t: FileType,
        _id: &RawId,
    ) -> Result<Option<chrono::DateTime<chrono::Utc>>, BackendError> {
        Err(self.unsupported("S3 Object Lock"))
    }

    /// Moves an object's retention date to `until`, in the mode set by
    /// [`Backend::set_retention`]. S3 refuses to shorten it.
    fn extend_retention(
        &self,
        _t: FileType,
        _id: &RawId,
        _until: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), BackendError> {
        Err(self.unsupported("S3 Object Lock"))
    }

    /// The error of a feature this storage does not have.
    fn unsupported(&self, feature: &'static str) -> BackendError {
        BackendError::Unsupported {
            feature,
            location: self.location(),
        }
    }
}

macro_rules! forward_backend {
    ($($ty:ty),*) => {$(
impl<B: Backend + ?Sized> Backend for $ty {
    fn location(&self) -> String {
        (**self).location()
    }
    fn create(&self) -> Result<(), BackendError> {
        (**self).create()
    }
    fn list(&self, t: FileType) -> Result<Vec<ObjectEntry>, BackendError> {
        (**self).list(t)
    }
    fn read(&self, t: FileType, id: &RawId) -> Result<Vec<u8>, BackendError> {
        (**self).read(t, id)
    }
    fn read_range(&self, t: FileType, id: &RawId, o: u64, l: u64) -> Result<Vec<u8>, BackendError> {
        (**self).read_range(t, id, o, l)
    }
    fn read_range_into(&self, t: FileType, id: &RawId, o: u64, l: u64, buf: &mut Vec<u8>) -> Result<(), BackendError> {
        (**self).read_range_into(t, id, o, l, buf)
    }
    fn read_range_with(&self, t: FileType, id: &RawId, o: u64, l: u64, sink: &mut dyn FnMut(&[u8])) -> Result<(), BackendError> {
        (**self).read_range_with(t, id, o, l, sink)
    }
    fn write(&self, t: FileType, id: &RawId, d: &[u8]) -> Result<(), BackendError> {
        (**self).write(t, id, d)
    }
    fn remove(&self, t: FileType, id: &RawId) -> Result<(), BackendError> {
        (**self).remove(t, id)
    }
    fn write_owned(&self, t: FileType, id: &RawId, d: Vec<u8>) -> Result<Option<Vec<u8>>, BackendError> {
        (**self).write_owned(t, id, d)
    }
    fn stat(&self, t: FileType, id: &RawId) -> Result<ObjectState, BackendError> {
        (**self).stat(t, id)
    }
    fn stage(&self, t: FileType) -> Result<Option<Box<dyn Staged + '_>>, BackendError> {
        (**self).stage(t)
    }
    fn leftovers(&self) -> Result<Vec<Leftover>, BackendError> {
        (**self).leftovers()
    }
    fn remove_leftover(&self, l: &Leftover) -> Result<(), BackendError> {
        (**self).remove_leftover(l)
    }
    fn connections(&self) -> usize {
        (**self).connections()
    }
    fn is_remote(&self) -> bool {
        (**self).is_remote()
    }
    fn request_thaw(&self, t: FileType, id: &RawId, days: u32, tier: ThawTier) -> Result<ThawRequest, BackendError> {
        (**self).request_thaw(t, id, days, tier)
    }
    fn lifecycle(&self) -> Result<Option<lifecycle::Lifecycle>, BackendError> {
        (**self).lifecycle()
    }
    fn set_retention(&self, r: Retention) -> Result<(), BackendError> {
        (**self).set_retention(r)
    }
    fn retention(&self, t: FileType, id: &RawId) -> Result<Option<chrono::DateTime<chrono::Utc>>, BackendError> {
        (**self).retention(t, id)
    }
    fn extend_retention(&self, t: FileType, id: &RawId, until: chrono::DateTime<chrono::Utc>) -> Result<(), BackendError> {
        (**self).extend_retention(t, id, until)
    }
}
    )*};
}
forward_backend!(Arc<B>, &B, Box<B>);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_paths() {
        let id = [0xabu8; 32];
        let h = hex::encode(id);
        assert_eq!(FileType::Config.object_path(&id), "config");
        assert_eq!(FileType::DataPack.object_path(&id), format!("data/ab/{h}"));
        assert_eq!(FileType::TreePack.object_path(&id), format!("tree/ab/{h}"));
        assert_eq!(
            FileType::Snapshot.object_path(&id),
            format!("snapshots/{h}")
        );
        assert_eq!(parse_name(&h), Some(id));
        assert_eq!(parse_name(".tmp-1234"), None);
    }

    #[test]
    fn memory_backend_conforms() {
        conformance::run_all(&MemoryBackend::new());
    }

    #[test]
    fn local_backend_conforms() {
        let dir = tempfile::tempdir().unwrap();
        let b = LocalBackend::new(dir.path().join("repo"));
        b.create().unwrap();
        conformance::run_all(&b);
    }
}
