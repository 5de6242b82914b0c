//! The engine's error type.
//!
//! Corruption (bytes that fail authentication, decoding or a hash check) is always its own variant,
//! never folded into I/O: a user must be able to tell "the disk is full" from "the backup is
//! damaged". Context (which pack, which blob, which path) travels in fields.

use std::fmt;
use std::io;
use std::path::PathBuf;

use crate::backend::FileType;
use crate::id::{BlobId, PackId};

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

/// Errors of the backend layer: storage that cannot be reached, read or written.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// The object does not exist.
    #[error("{location}: not found")]
    NotFound {
        /// Where it was looked for.
        location: String,
    },
    /// An I/O error while accessing the object.
    #[error("{op} {location}")]
    Io {
        /// What was being done (read, write, list, remove).
        op: &'static str,
        /// Which object or folder.
        location: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// An object store refused a request, or could not be reached after every retry.
    #[error("{op} {location}: {code}{}{}", status.map(|s| format!(" (HTTP {s})")).unwrap_or_default(), if message.is_empty() { String::new() } else { format!(": {message}") })]
    Remote {
        /// What was being done (read, write, list, remove, create).
        op: &'static str,
        /// The bucket and key (`s3://bucket/key`).
        location: String,
        /// The store's error code (`AccessDenied`, `NoSuchBucket`, `SlowDown`), or what failed
        /// on the way (`timeout`, `connection failed`).
        code: String,
        /// The store's message, or the cause.
        message: String,
        /// The HTTP status, when a response arrived.
        status: Option<u16>,
    },
    /// The object is in an archive storage class and must be restored (thawed) before reading.
    #[error("{location} is in storage class {storage_class} and must be restored from the archive before it can be read")]
    NeedsThaw {
        /// The object.
        location: String,
        /// Its storage class.
        storage_class: String,
    },
    /// A read returned fewer bytes than asked for (the object is shorter than the index says).
    #[error("{location}: short read, wanted {wanted} bytes at offset {offset}, got {got}")]
    ShortRead {
        /// The object.
        location: String,
        /// Offset of the read.
        offset: u64,
        /// Bytes asked for.
        wanted: u64,
        /// Bytes available.
        got: u64,
    },
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
        "repository format version {found} is not supported (this floe reads version {supported})"
    )]
    UnsupportedVersion {
        /// Version found in the config.
        found: u32,
        /// Version this build supports.
        supported: u32,
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
    #[error("restore would overwrite {count} existing file(s), the first being {first}; pass --overwrite to replace them")]
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
    /// Bad arguments (an invalid pattern, a bad chunker setting...).
    #[error("{0}")]
    InvalidInput(String),
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

    /// True when this error means stored data is damaged.
    pub fn is_corruption(&self) -> bool {
        matches!(self, Error::Corrupt { .. } | Error::MissingBlob(_))
    }
}
