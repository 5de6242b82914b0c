//! End-to-end tests of the `floe` binary: one module per command or concern.
//!
//! Every test builds real files in a temporary folder, runs the real binary against a real local
//! repository and checks what a user would: exit codes, messages, and byte-exact restores.

#[path = "integration/common.rs"]
mod common;

#[path = "integration/backup.rs"]
mod backup;
#[path = "integration/browse.rs"]
mod browse;
#[path = "integration/cache.rs"]
mod cache;
#[path = "integration/chaos.rs"]
mod chaos;
#[path = "integration/check.rs"]
mod check;
#[path = "integration/cold.rs"]
mod cold;
#[path = "integration/commands.rs"]
mod commands;
#[path = "integration/copy.rs"]
mod copy;
#[path = "integration/drill.rs"]
mod drill;
#[path = "integration/errors.rs"]
mod errors;
#[path = "integration/forget_prune.rs"]
mod forget_prune;
#[path = "integration/health.rs"]
mod health;
#[path = "integration/keys.rs"]
mod keys;
#[path = "integration/locks.rs"]
mod locks;
#[path = "integration/object_lock.rs"]
mod object_lock;
#[path = "integration/output.rs"]
mod output;
#[path = "integration/postgres.rs"]
mod postgres;
#[path = "integration/restore.rs"]
mod restore;
#[path = "integration/resume.rs"]
mod resume;
#[path = "integration/s3.rs"]
mod s3;
#[path = "integration/select.rs"]
mod select;
#[path = "integration/snapshots.rs"]
mod snapshots;
#[path = "integration/sources.rs"]
mod sources;
#[path = "integration/tls.rs"]
mod tls;
#[path = "integration/unattended.rs"]
mod unattended;
#[path = "integration/xattrs.rs"]
mod xattrs;
