//! `floe backup`

use std::path::PathBuf;

use anyhow::Context;
use chrono::DateTime;
use floe_engine::{backup, BackupOptions, SnapshotId};

use crate::{exit, output, GlobalArgs};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Files and folders to back up
    #[arg(required = true, value_name = "PATH")]
    paths: Vec<PathBuf>,
    /// Tag the snapshot (repeatable)
    #[arg(long = "tag", value_name = "TAG")]
    tags: Vec<String>,
    /// Record this host name instead of the machine's
    #[arg(long)]
    host: Option<String>,
    /// Record this snapshot time (RFC 3339, e.g. 2024-05-01T03:00:00+02:00)
    #[arg(long, value_parser = parse_time)]
    time: Option<DateTime<chrono::FixedOffset>>,
    /// Leave out paths matching PATTERN (a name glob, or a path glob when it contains /)
    #[arg(short = 'e', long = "exclude", value_name = "PATTERN")]
    excludes: Vec<String>,
    /// Read exclude patterns from FILE, one per line (# starts a comment)
    #[arg(long = "exclude-file", value_name = "FILE")]
    exclude_files: Vec<PathBuf>,
    /// Do not cross file system boundaries
    #[arg(short = 'x', long)]
    one_file_system: bool,
    /// Do everything but write to the repository
    #[arg(short = 'n', long)]
    dry_run: bool,
    /// Use this snapshot as the parent for change detection
    #[arg(long)]
    parent: Option<String>,
    /// Read every file even if unchanged since the parent
    #[arg(long)]
    force: bool,
    /// Print one JSON summary object on stdout
    #[arg(long)]
    json: bool,
}

fn parse_time(s: &str) -> Result<DateTime<chrono::FixedOffset>, String> {
    DateTime::parse_from_rfc3339(s)
        .map_err(|e| format!("{e} (expected RFC 3339, e.g. 2024-05-01T03:00:00+02:00)"))
}

#[derive(serde::Serialize)]
struct JsonSummary<'a> {
    snapshot_id: String,
    dry_run: bool,
    parent: Option<String>,
    summary: &'a Option<floe_engine::SnapshotSummary>,
    errors: &'a [floe_engine::SourceError],
}

pub fn run(g: &GlobalArgs, a: Args) -> anyhow::Result<u8> {
    let repo = crate::repo::open(g)?;
    let lock = crate::repo::lock(g, &repo, false, "backup")?;
    let mut excludes = a.excludes;
    for f in &a.exclude_files {
        let text = std::fs::read_to_string(f)
            .with_context(|| format!("reading exclude file {}", f.display()))?;
        excludes.extend(text.lines().map(str::to_string));
    }
    let parent = match &a.parent {
        Some(p) => Some(repo.find_snapshot(p)?.id),
        None => None,
    };
    let index = repo.load_index()?;
    let opts = BackupOptions {
        paths: a.paths,
        tags: a.tags,
        host: a.host,
        time: a.time,
        excludes,
        one_file_system: a.one_file_system,
        dry_run: a.dry_run,
        parent,
        force: a.force,
        threads: 0,
        lock: lock.health(),
    };
    let report = backup(&repo, &index, &opts)?;
    for e in &report.errors {
        eprintln!("error: {}: {}", e.path.display(), e.message);
    }
    if a.json {
        output::json(&JsonSummary {
            snapshot_id: report.snapshot_id.to_hex(),
            dry_run: report.dry_run,
            parent: report.snapshot.parent.map(|p: SnapshotId| p.to_hex()),
            summary: &report.snapshot.summary,
            errors: &report.errors,
        })?;
    } else if let Some(s) = &report.snapshot.summary {
        output::line(format!(
            "files: {} new, {} changed, {} unchanged; {} folders, {} others",
            s.files_new, s.files_changed, s.files_unchanged, s.dirs, s.others
        ))?;
        output::line(format!(
            "read {} of {}, added {} to the repository in {:.2}s",
            output::bytes(s.bytes_read),
            output::bytes(s.total_bytes),
            output::bytes(s.bytes_added),
            s.duration_seconds
        ))?;
        if report.dry_run {
            output::line("dry run: nothing was written")?;
        } else {
            output::line(format!("snapshot {} saved", report.snapshot_id.short()))?;
        }
    }
    if report.errors.is_empty() {
        Ok(exit::OK)
    } else {
        eprintln!(
            "warning: {} source entr{} could not be read and {} left out",
            report.errors.len(),
            if report.errors.len() == 1 { "y" } else { "ies" },
            if report.errors.len() == 1 {
                "was"
            } else {
                "were"
            }
        );
        Ok(exit::PARTIAL)
    }
}
