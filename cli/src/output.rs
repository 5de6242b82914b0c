//! Printing helpers: sizes, and writes to stdout that report a closed pipe instead of panicking.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

/// Set by `-q/--quiet`: [`note`] prints nothing.
static QUIET: AtomicBool = AtomicBool::new(false);

/// Makes [`note`] silent (for `-q`).
pub fn set_quiet(quiet: bool) {
    QUIET.store(quiet, Ordering::Relaxed);
}

/// True under `-q`.
pub fn quiet() -> bool {
    QUIET.load(Ordering::Relaxed)
}

/// Writes a line of a command's report (a summary, a plan) to stdout, unless `-q` was given.
/// What a command is asked for (a listing, a dump, JSON) goes through [`line`] instead.
pub fn note(s: impl std::fmt::Display) -> std::io::Result<()> {
    if quiet() {
        return Ok(());
    }
    line(s)
}

/// Writes a line to stdout.
pub fn line(s: impl std::fmt::Display) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{s}")
}

/// The summary of the command that ran, as its `--json` form has it, for hooks
/// (`FLOE_SUMMARY_FILE`), notifications and metrics.
static SUMMARY: std::sync::Mutex<Option<serde_json::Value>> = std::sync::Mutex::new(None);

/// Records a command's summary for hooks, notifications and metrics, and prints it as one line
/// of JSON when `print` (the command's `--json`).
pub fn summary<T: serde::Serialize>(v: &T, print: bool) -> anyhow::Result<()> {
    let value = serde_json::to_value(v)?;
    if print {
        line(serde_json::to_string(&value)?)?;
    }
    if let Ok(mut s) = SUMMARY.lock() {
        *s = Some(value);
    }
    Ok(())
}

/// Why a command that ends without an error value failed (a damaged file a drill found, a
/// step of a job), for hooks (`FLOE_ERROR`) and notifications.
static FAILURE: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);

/// Records why the command failed, when it returns a failing exit code without an error.
pub fn set_failure(message: String) {
    if let Ok(mut f) = FAILURE.lock() {
        *f = Some(message);
    }
}

/// The message recorded by [`set_failure`].
pub fn take_failure() -> Option<String> {
    FAILURE.lock().ok().and_then(|mut f| f.take())
}

/// The summary recorded by [`summary`], if the command recorded one.
pub fn take_summary() -> Option<serde_json::Value> {
    SUMMARY.lock().ok().and_then(|mut s| s.take())
}

/// Writes a value as one line of JSON.
pub fn json<T: serde::Serialize>(v: &T) -> anyhow::Result<()> {
    let s = serde_json::to_string(v)?;
    line(s)?;
    Ok(())
}

/// Bytes as lowercase hex digits (object ids).
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `1.5 GiB`, `320 B`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.2} {}", UNITS[u])
    }
}

/// An entry of a snapshot as JSON (ls, find, diff).
#[derive(serde::Serialize)]
pub struct EntryJson<'a> {
    path: String,
    #[serde(rename = "type")]
    kind: floe_engine::NodeKind,
    mode: u32,
    size: u64,
    uid: u32,
    gid: u32,
    mtime: &'a chrono::DateTime<chrono::Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    link_target: Option<String>,
    /// The names of the entry's extended attributes.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    xattrs: Vec<String>,
}

impl<'a> EntryJson<'a> {
    /// `n` at `path`.
    pub fn new(n: &'a floe_engine::Node, path: &str) -> Self {
        Self {
            path: path.to_string(),
            kind: n.kind,
            mode: n.mode,
            size: n.size,
            uid: n.uid,
            gid: n.gid,
            mtime: &n.mtime,
            link_target: n.link_target.as_ref().map(|t| t.lossy().into_owned()),
            xattrs: n
                .xattrs
                .iter()
                .map(|x| x.name.lossy().into_owned())
                .collect(),
        }
    }
}

fn type_char(k: floe_engine::NodeKind) -> char {
    use floe_engine::NodeKind;
    match k {
        NodeKind::File => '-',
        NodeKind::Dir => 'd',
        NodeKind::Symlink => 'l',
        NodeKind::Fifo => 'p',
        NodeKind::Chardev => 'c',
        NodeKind::Blockdev => 'b',
        NodeKind::Socket => 's',
    }
}

/// An entry as `ls -l` shows it: type and mode, owner, group, size, time, path (and link target).
pub fn long_entry(n: &floe_engine::Node, path: &str) -> String {
    let link = n
        .link_target
        .as_ref()
        .map(|t| format!(" -> {}", t.lossy()))
        .unwrap_or_default();
    // `@` after the mode marks an entry with extended attributes.
    format!(
        "{}{:04o}{} {:>8} {:>8} {:>12} {} {}{}",
        type_char(n.kind),
        n.mode,
        if n.xattrs.is_empty() { ' ' } else { '@' },
        n.user.clone().unwrap_or_else(|| n.uid.to_string()),
        n.group.clone().unwrap_or_else(|| n.gid.to_string()),
        n.size,
        n.mtime.format("%Y-%m-%d %H:%M:%S"),
        path,
        link
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn sizes() {
        assert_eq!(super::bytes(320), "320 B");
        assert_eq!(super::bytes(1536), "1.50 KiB");
        assert_eq!(super::bytes(3 << 30), "3.00 GiB");
    }
}
