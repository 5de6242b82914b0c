//! Progress reports that long operations (backup, restore) make while they run, for a caller
//! to show. The engine only reports; drawing a bar, and how often, is the caller's business.

use std::path::Path;
use std::sync::Arc;

/// What a backup did with one regular file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FileChange {
    /// Not in the parent snapshot: read.
    New,
    /// In the parent, but changed: read again.
    Changed,
    /// Unchanged since the parent: its content taken from it, not read.
    Unchanged,
}

/// Receives progress reports. Every method does nothing unless overridden. They are called from
/// the operation's threads, often (once per chunk): they must be cheap and never block for long.
pub trait Progress: Send + Sync {
    /// Work on the file at `path` starts (a backup reads it, a restore writes to it).
    fn file_started(&self, _path: &Path) {}
    /// `bytes` more bytes of file content are done (read, or taken unchanged from the parent, or
    /// written).
    fn bytes_done(&self, _bytes: u64) {}
    /// A backup is done with the regular file at `path` of `size` bytes.
    fn file_done(&self, _path: &Path, _change: FileChange, _size: u64) {}
}

struct Silent;

impl Progress for Silent {}

/// A shared [`Progress`]; the default one ignores every report.
#[derive(Clone)]
pub struct ProgressSink(Arc<dyn Progress>);

impl ProgressSink {
    /// Reports go to `p`.
    pub fn new(p: Arc<dyn Progress>) -> Self {
        Self(p)
    }
}

impl Default for ProgressSink {
    fn default() -> Self {
        Self(Arc::new(Silent))
    }
}

impl std::fmt::Debug for ProgressSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ProgressSink")
    }
}

impl std::ops::Deref for ProgressSink {
    type Target = dyn Progress;
    fn deref(&self) -> &Self::Target {
        self.0.as_ref()
    }
}
