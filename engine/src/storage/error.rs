//! What can go wrong with storage: objects that are missing, unreachable, refused, archived or
//! shorter than asked for.

use std::io;

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
    /// The object store could not be reached, or not safely (after every retry that could
    /// help). Says what happened and what to do; the layers under it are in `causes`.
    #[error("{problem}")]
    Unreachable {
        /// What was being done (read, write, list, remove, create).
        op: &'static str,
        /// The bucket and key (`s3://bucket/key`).
        location: String,
        /// What went wrong.
        problem: Box<super::http::NetworkProblem>,
        /// The errors of the HTTP stack, outermost first (printed with `-v`).
        causes: Vec<String>,
    },
    /// A file of TLS settings (`--cacert`, `AWS_CA_BUNDLE`, `--tls-client-cert`) is unusable.
    #[error("{setting} {}: {problem}", path.display())]
    TlsSetup {
        /// The setting that named the file.
        setting: String,
        /// The file.
        path: std::path::PathBuf,
        /// What is wrong with it.
        problem: String,
    },
    /// The object is in an archive storage class and must be restored (thawed) before reading.
    #[error("{location} is in storage class {storage_class} and must be restored from the archive before it can be read")]
    NeedsThaw {
        /// The object.
        location: String,
        /// Its storage class.
        storage_class: String,
    },
    /// The storage does not have a feature the repository needs.
    #[error("{location} does not support {feature}")]
    Unsupported {
        /// The feature.
        feature: &'static str,
        /// The storage.
        location: String,
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

impl BackendError {
    /// True when the object is not there, nor the bucket or folder that would hold it (a file
    /// where the repository's folder should be: `-r` naming a file).
    pub fn is_absent(&self) -> bool {
        match self {
            BackendError::NotFound { .. } => true,
            BackendError::Io { source, .. } => source.kind() == io::ErrorKind::NotADirectory,
            BackendError::Remote { code, .. } => code == "NoSuchBucket",
            _ => false,
        }
    }

    /// The errors under a network failure, outermost first; empty for every other error.
    pub fn causes(&self) -> &[String] {
        match self {
            BackendError::Unreachable { causes, .. } => causes,
            _ => &[],
        }
    }
}
