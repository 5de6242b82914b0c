//! floe's engine: deduplicating, encrypted backups.
//!
//! The pipeline, one module per stage: [`chunker`] splits files with FastCDC, [`crypto`] names
//! blobs with keyed BLAKE3 and seals them with XChaCha20-Poly1305, [`compress`] applies zstd,
//! [`pack`] groups blobs into packs, [`index`] records where each blob lives, [`tree`] and
//! [`snapshot`] describe what was backed up. [`backend`] stores bytes; [`repository`] ties the
//! format together; [`archiver`] and [`restorer`] run backups and restores.
//!
//! ```no_run
//! use std::sync::Arc;
//! use floe_engine::{backup, restore, BackupOptions, InitOptions, LocalBackend, Repository, RestoreOptions};
//!
//! let repo = Repository::init(Arc::new(LocalBackend::new("/tmp/repo")), b"pw", &InitOptions::default())?;
//! let index = repo.load_index()?;
//! let report = backup(&repo, &index, &BackupOptions { paths: vec!["/etc".into()], ..Default::default() })?;
//! let index = repo.load_index()?;
//! restore(&repo, &index, &report.snapshot, "", &RestoreOptions { target: "/tmp/out".into(), ..Default::default() })?;
//! # Ok::<(), floe_engine::Error>(())
//! ```

pub mod archiver;
pub mod backend;
pub mod check;
pub mod chunker;
pub mod compress;
pub mod crypto;
pub mod diff;
pub mod dump;
pub mod error;
pub mod exclude;
pub mod failpoint;
pub mod find;
pub mod id;
pub mod index;
pub mod key;
pub mod lock;
pub mod pack;
pub mod prune;
pub mod repair;
pub mod repository;
pub mod restorer;
pub mod retention;
pub mod snapshot;
pub mod thaw;
pub mod tiers;
pub mod tree;

pub use archiver::{backup, BackupOptions, BackupReport, SourceError};
pub use backend::{
    Backend, DryRunBackend, FileType, LocalBackend, MemoryBackend, S3Backend, S3Options,
    StorageClass, ThawState, ThawTier,
};
pub use check::{check, CheckReport, ReadData};
pub use chunker::ChunkerParams;
pub use diff::{diff_trees, ChangeKind, DiffStats};
pub use dump::{plan_dump, DumpPlan, DumpStats};
pub use error::{BackendError, Error, Object, Result};
pub use find::{find, FindOptions, FindStats};
pub use id::{BlobId, IndexId, KeyId, PackId, SnapshotId};
pub use index::Index;
pub use key::KdfParams;
pub use lock::{lock, unlock, LockHealth, LockOptions, RepoLock};
pub use prune::{MaxUnused, PruneOptions, PrunePlan, PruneReport};
pub use repository::{Config, InitOptions, Repository, FORMAT_VERSION};
pub use restorer::{
    needed_packs, plan_restore, resolve, restore, restore_planned, PackGate, RestoreError,
    RestoreOptions, RestorePlan, RestoreSummary,
};
pub use snapshot::{Snapshot, SnapshotEntry, SnapshotSummary};
pub use tree::{ByteString, Node, NodeKind, Tree};
