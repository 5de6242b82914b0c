//! The engine's error type.
//!
//! Corruption (bytes that fail authentication, decoding or a hash check) is always its own variant,
//! never folded into I/O: a user must be able to tell "the disk is full" from "the backup is
//! damaged". Context (which pack, which blob, which path) travels in fields.

use std::fmt;
use std::io;
use std::path::PathBuf;

use crate::id::{BlobId, PackId};
pub use crate::storage::BackendError;
use crate::storage::FileType;

/// Result alias used throughout the engine.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What a corruption report is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Object {
    /// A whole pack file.
    Pack(PackId),
    /// One blob inside a pack.
    Blob {
        /// The pack holding it (as the index says).
        pack: PackId,
        /// The blob.
        blob: BlobId,
    },
    /// A blob looked up by id (the pack is not known or not relevant).
    BlobId(BlobId),
    /// A file of the repository other than a pack.
    File {
        /// Its type.
        file_type: FileType,
        /// Its name (hex id, or `config`).
        name: String,
    },
}

impl fmt::Display for Object {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Object::Pack(p) => write!(f, "pack {p}"),
            Object::Blob { pack, blob } => write!(f, "blob {blob} in pack {pack}"),
            Object::BlobId(b) => write!(f, "blob {b}"),
            Object::File { file_type, name } => write!(f, "{} file {name}", file_type.dir_name()),
        }
    }
}

/// Every error the engine returns.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No repository at the given location.
    #[error("repository does not exist at {location} (run `floe init` to create one)")]
    RepositoryNotFound {
        /// The location given.
        location: String,
    },
    /// `init` on a location that already holds a repository.
    #[error("a repository already exists at {location}")]
    RepositoryExists {
        /// The location given.
        location: String,
    },
    /// No key file opens with the password.
    #[error("wrong password: none of the repository's {keys} key file(s) opens with it")]
    WrongPassword {
        /// How many key files were tried.
        keys: usize,
    },
    /// The repository's format version is not one this build reads.
    #[error(
        "repository format version {found} is not supported (this floe reads versions 1 to {supported}): upgrade floe"
    )]
    UnsupportedVersion {
        /// Version found in the config.
        found: u32,
        /// Version this build supports.
        supported: u32,
    },
    /// The config names features this build does not implement: it may read, not write.
    #[error(
        "this repository uses features this build of floe does not know (config members: {}): \
         it can be read, but writing to it needs a newer floe",
        members.join(", ")
    )]
    ReadOnlyFeatures {
        /// The config members not understood.
        members: Vec<String>,
    },
    /// The config asks for S3 Object Lock, and the storage has none.
    #[error(
        "this repository uses S3 Object Lock, which {location} does not have: it can be read, \
         but not written there"
    )]
    ObjectLockUnsupported {
        /// The storage.
        location: String,
    },
    /// `migrate` with a name no migration has.
    #[error("no migration is called {name:?} (known: {})", known.join(", "))]
    UnknownMigration {
        /// The name given.
        name: String,
        /// The names this build knows.
        known: Vec<&'static str>,
    },
    /// `migrate` of a repository that does not need it.
    #[error(
        "migration {name} does not apply: the repository is already at format version {version}"
    )]
    MigrationNotNeeded {
        /// The migration.
        name: &'static str,
        /// The repository's version.
        version: u32,
    },
    /// Stored bytes failed authentication, decoding or a hash check.
    #[error("corrupted {object}: {reason}")]
    Corrupt {
        /// What is damaged.
        object: Object,
        /// How the damage showed.
        reason: String,
    },
    /// A blob the repository should hold is not in the index.
    #[error("blob {0} is not in the index: the repository is incomplete")]
    MissingBlob(BlobId),
    /// The storage failed.
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// A local file system operation failed.
    #[error("{op} {path}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// On which path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A snapshot reference did not match any snapshot, or matched several.
    #[error("{0}")]
    SnapshotNotFound(String),
    /// A path inside a snapshot does not exist.
    #[error("path {0:?} not found in snapshot")]
    PathNotFound(String),
    /// Restore would overwrite files that exist.
    #[error("restore would overwrite {count} existing file(s), the first being {first}; pass --overwrite to replace them, or --overwrite if-changed to leave those already in place (to continue a restore that stopped)")]
    TargetExists {
        /// How many targets exist.
        count: usize,
        /// The first of them.
        first: PathBuf,
    },
    /// The repository is locked by another process.
    #[error("repository is locked: {holder}")]
    Locked {
        /// Who holds the conflicting lock.
        holder: String,
    },
    /// A key file that does not have the shape of one (its name is added by the caller).
    #[error("malformed key file: {0}")]
    MalformedKey(String),
    /// Options an operation cannot take: chunk or pack sizes out of bounds, Argon2id costs above
    /// the accepted maximum, nothing to back up or to find.
    #[error("{0}")]
    InvalidOptions(String),
    /// A pattern (exclude, include, find) that does not parse.
    #[error("invalid pattern {pattern:?}: {reason}")]
    InvalidPattern {
        /// The pattern as given.
        pattern: String,
        /// Why it does not parse.
        reason: String,
    },
    /// Something to be written would exceed a limit of the format.
    #[error("{what} of {size} bytes exceeds the {limit}-byte limit")]
    TooLarge {
        /// What it is (`a folder's listing`, `an index file`).
        what: String,
        /// Its size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// A retention policy would remove every snapshot of a group.
    #[error("the policy would remove every snapshot of group {group}; pass --unsafe-allow-remove-all to allow it")]
    WouldRemoveAll {
        /// The group, as printed.
        group: String,
    },
    /// A data pack that must be read is archived and no thaw of it is under way.
    #[error("pack {pack} is archived and no thaw of it is under way any more; run again with --thaw to ask for it")]
    NotThawed {
        /// The pack.
        pack: PackId,
    },
    /// Thawed packs did not all become readable before the deadline.
    #[error("{pending} pack(s) still thawing after {waited:?}; run again later to continue")]
    ThawTimeout {
        /// Packs still thawing.
        pending: usize,
        /// How long was waited.
        waited: std::time::Duration,
    },
    /// The chosen retrieval tier is not offered for some storage classes.
    #[error("the {tier} retrieval tier is not available for {classes}; use --thaw-tier standard or bulk")]
    TierUnavailable {
        /// The tier, lower case.
        tier: String,
        /// The classes, comma-separated.
        classes: String,
    },
    /// A thread of the engine panicked; the operation stopped without finishing.
    #[error("a {0} panicked")]
    WorkerPanicked(&'static str),
    /// The operation stopped because another part of it failed first (the first failure is the
    /// error reported; this one is never returned alongside it).
    #[error("{0} aborted")]
    Aborted(&'static str),
    /// The system refused a resource the engine needs (a thread pool, the key derivation memory).
    #[error("{what}: {reason}")]
    Resource {
        /// What was asked for.
        what: &'static str,
        /// The cause.
        reason: String,
    },
    /// Encoding a value for storage failed (a bug: every stored value encodes).
    #[error("encoding {what}: {reason}")]
    Encode {
        /// What was encoded.
        what: &'static str,
        /// The cause.
        reason: String,
    },
    /// The stream of a stream backup failed before its end (a read error, or the command that
    /// produced it failed); no snapshot was saved.
    #[error("the stream for /{name} failed, no snapshot was saved")]
    StreamFailed {
        /// The file name the stream was to be saved as.
        name: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// None of the backup's sources could be read; no snapshot was saved.
    #[error(
        "none of the {count} source(s) could be read (the first: {first}); no snapshot was saved"
    )]
    NoSourceReadable {
        /// How many sources were given.
        count: usize,
        /// The first of them.
        first: PathBuf,
    },
    /// No key file has this id (or prefix).
    #[error("no key file matches {0:?}")]
    KeyNotFound(String),
    /// A key file that must stay: the one in use, or the last.
    #[error("key {id} cannot be removed: {reason}")]
    KeyRefused {
        /// The key's short id.
        id: String,
        /// Why it stays.
        reason: &'static str,
    },
    /// Restore finished, but some files could not be restored.
    #[error("{failed} file(s) could not be restored; the first: {first}")]
    RestoreIncomplete {
        /// How many files failed.
        failed: usize,
        /// The first error, formatted.
        first: String,
    },
}

impl Error {
    /// Builds a corruption error.
    pub fn corrupt(object: Object, reason: impl Into<String>) -> Self {
        Error::Corrupt {
            object,
            reason: reason.into(),
        }
    }

    /// Builds an I/O error with the path it concerns.
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Error::Io {
            op,
            path: path.into(),
            source,
        }
    }

    /// True when the operation cannot go on until archived data packs are thawed: restore, dump or
    /// check stopped before an archived pack (exit code 13 in the CLI).
    pub fn needs_thaw(&self) -> bool {
        matches!(
            self,
            Error::NotThawed { .. } | Error::Backend(BackendError::NeedsThaw { .. })
        )
    }

    /// True when this error means stored data is damaged.
    pub fn is_corruption(&self) -> bool {
        matches!(self, Error::Corrupt { .. } | Error::MissingBlob(_))
    }
}
