//! floe's engine: deduplicating, encrypted backups with cold object storage as a native tier.
//!
//! The modules are layers, each importing only the ones below it (ARCHITECTURE.md, "Layers"):
//! `storage` keeps bytes under (file type, id) names; `format` encodes every stored object, and
//! does no I/O; `repo` opens a repository and holds its index, locks and snapshot selection;
//! `cold` prices storage classes and thaws archived packs; `ops` are the operations (backup,
//! restore, copy, check, prune, forget, repair, find, diff, dump, object lock, rollback), which never import one another.
//! Everything a caller needs is re-exported below; `format` stays public for tools that read or
//! write the bytes themselves (the format's test vectors, benchmarks).
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

mod attrs;
mod cold;
mod error;
mod exclude;
mod failpoint;
// Entry points for the fuzz targets of fuzz/ (docs/fuzzing.md).
pub mod format;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
mod id;
mod ops;
mod progress;
mod repo;
mod report;
mod storage;
#[cfg(test)]
mod testing;
mod units;

// The whole API the CLI uses.
pub use attrs::{check_pattern as check_xattr_pattern, XattrWarning};
pub use cold::thaw::{
    prefer_readable_copies, request as request_thaw, PackGate, PollOptions, ThawPlan, ThawSummary,
    Waiter,
};
pub use cold::tiers::{
    class_entry_days, data_rule, describe as describe_rules, rule_json, tier_stats, PriceFileError,
    Prices, RuleError, PRICES_AS_OF,
};
pub use error::{Error, Object, Result};
pub use id::{BlobId, IndexId, KeyId, LockId, PackId, ParseIdError, RepoId, SnapshotId};
pub use ops::backup::{
    backup, backup_stream, scan as scan_sources, BackupOptions, BackupReport, ScanTotals,
    SourceError,
};
pub use ops::check::{check, check_gated, CheckReport, ReadData, ReadGate};
pub use ops::copy::{execute as copy, plan as plan_copy, CopyOptions, CopyPlan, CopyReport};
pub use ops::diff::{diff_trees, metadata_changes, ChangeKind, DiffStats};
pub use ops::drill::{
    plan as plan_drill, run as drill, sample as drill_sample, ColdEstimate, DamagedFile, DrillFile,
    DrillGroup, DrillOptions, DrillPlan, DrillReport, SampleFailure, SampleRestore, SampleSize,
    DEFAULT_FILES as DRILL_DEFAULT_FILES,
};
pub use ops::dump::{plan_dump, DumpPlan, DumpStats};
pub use ops::find::{find, FindOptions, FindStats};
pub use ops::forget::retention::{
    apply_policy, group_snapshots, CalendarDuration, Decision, GroupBy, GroupKey, KeepPolicy,
    KeepReason,
};
pub use ops::forget::{
    execute as forget, plan_by_ids as plan_forget_by_ids, plan_by_policy as plan_forget_by_policy,
    ForgetGroup, ForgetPlan, Named,
};
pub use ops::health::{assess as assess_health, health, GroupHealth, HealthReport};
pub use ops::migrate::{available as available_migrations, run as migrate, Migration, MIGRATIONS};
pub use ops::object_lock::{
    extend as extend_retention, status as retention_status, versions_rule, RetentionReport,
    VERSIONS_MARGIN_DAYS,
};
pub use ops::prune::{
    execute as prune, plan as plan_prune, plan_salvage, MaxUnused, PruneOptions, PrunePlan,
    PruneReport, SalvagedPack,
};
pub use ops::repair::{repair_index, repair_snapshots, RepairIndexReport, RepairSnapshotsReport};
pub use ops::restore::{
    needed_packs, plan_restore, restore, restore_planned, Overwrite, RestoreError, RestoreOptions,
    RestorePlan, RestorePreview, RestoreSummary,
};
pub use ops::rewrite::{
    execute as rewrite, plan as plan_rewrite, Rewrite, RewritePlan, RewriteReport,
};
pub use ops::rollback::{execute as rollback, plan as plan_rollback, RollbackPlan};
pub use ops::stats::{snapshot_stats, SnapshotStats};
pub use ops::tag::{execute as tag, plan as plan_tag, TagChange, TagPlan};
pub use progress::{FileChange, Progress, ProgressSink};
pub use repo::index::Index;
pub use repo::keys::KeyInfo;
pub use repo::lock::{
    lock, unlock, LockHealth, LockOptions, RepoLock, STALE_AFTER as LOCK_STALE_AFTER,
};
pub use repo::repository::{
    both, host_and_user, now_local, now_utc, pick_snapshot, read_key_file, InitOptions, Picked,
    Repository, SnapshotListing, StoredPack,
};
pub use repo::walk::resolve;
pub use report::{lossy_path, lossy_paths};
pub use storage::lifecycle::Rule as LifecycleRule;
pub use storage::s3::{
    LocationError, LocationProblem, ObjectVersion, DEFAULT_CONNECTIONS as DEFAULT_S3_CONNECTIONS,
};
pub use storage::{
    choose_ca_files, conformance, list_caches, send as http_send, Backend, BackendError, CaFile,
    CacheEntry, CacheStats, CacheWarn, CachedBackend, DryRunBackend, FileType, Leftover,
    LocalBackend, MemoryBackend, NetworkProblem, Retention, RetentionMode, S3Backend, S3Options,
    StorageClass, ThawState, ThawTier, TlsOptions,
};
pub use units::{parse_size, ParseError};

pub use format::blob::BlobType;
pub use format::chunker::ChunkerParams;
pub use format::compress::{levels as compression_levels, Compression};
pub use format::config::{Config, FORMAT_VERSION, OLDEST_FORMAT_VERSION};
pub use format::index_file::{IndexFile, IndexPack};
pub use format::key::{KdfParams, KeyFile};
pub use format::snapshot::{Snapshot, SnapshotEntry, SnapshotSummary};
pub use format::tree::{ByteString, Node, NodeKind, Tree, TreeError, Xattr};
