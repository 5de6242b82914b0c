//! `floe backup`

use std::ffi::OsString;
use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::bail;
use chrono::DateTime;
use floe_engine::{backup, backup_stream, BackupOptions, BackupReport, Index, Repository};

use crate::args::{patterns, split_tags};
use crate::sources::{read_list, CommandStream, ListFormat};
use crate::{exit, output, GlobalArgs};

/// The marker of cache folders (https://bford.info/cachedir/).
const CACHEDIR_TAG: &str = "CACHEDIR.TAG:Signature: 8a477f597d28d172789f06886806bc55";

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Files and folders to back up; with --stdin-from-command, the command and its arguments
    #[arg(value_name = "PATH")]
    paths: Vec<OsString>,
    /// Back up standard input as one file (named by --stdin-filename)
    #[arg(long, conflicts_with_all = ["stdin_from_command", "files_from", "files_from_verbatim", "files_from_raw"])]
    stdin: bool,
    /// Run the command given after -- and back up its standard output as one file; a command
    /// that fails saves no snapshot
    #[arg(long, conflicts_with_all = ["files_from", "files_from_verbatim", "files_from_raw"])]
    stdin_from_command: bool,
    /// File name of the stream in the snapshot (default: stdin)
    #[arg(long, value_name = "NAME")]
    stdin_filename: Option<String>,
    /// Read paths to back up from FILE, one a line; # starts a comment (repeatable; - is stdin)
    #[arg(long, value_name = "FILE")]
    files_from: Vec<PathBuf>,
    /// Read paths from FILE, one a line, every line a path (repeatable)
    #[arg(long, value_name = "FILE")]
    files_from_verbatim: Vec<PathBuf>,
    /// Read paths from FILE, separated by NUL bytes, as `find -print0` writes them (repeatable)
    #[arg(long, value_name = "FILE")]
    files_from_raw: Vec<PathBuf>,
    /// Tag the snapshot (repeatable; `a,b` gives two tags)
    #[arg(long = "tag", value_name = "TAG")]
    tags: Vec<String>,
    /// Record this host name instead of the machine's
    #[arg(short = 'H', long, value_parser = clap::builder::NonEmptyStringValueParser::new())]
    host: Option<String>,
    /// Record this snapshot time: RFC 3339 (2024-05-01T03:00:00+02:00) or local time
    /// (2024-05-01 03:00:00)
    #[arg(long, value_parser = crate::args::parse_time)]
    time: Option<DateTime<chrono::FixedOffset>>,
    /// Leave out paths matching PATTERN (a name glob, or a path glob when it contains /)
    #[arg(short = 'e', long = "exclude", value_name = "PATTERN")]
    excludes: Vec<String>,
    /// Read exclude patterns from FILE, one per line (# starts a comment)
    #[arg(long = "exclude-file", value_name = "FILE")]
    exclude_files: Vec<PathBuf>,
    /// Like --exclude, ignoring case
    #[arg(long = "iexclude", value_name = "PATTERN")]
    iexcludes: Vec<String>,
    /// Like --exclude-file, ignoring case
    #[arg(long = "iexclude-file", value_name = "FILE")]
    iexclude_files: Vec<PathBuf>,
    /// Leave out folders that contain an entry NAME (with :HEADER, a file starting with HEADER)
    #[arg(long, value_name = "NAME[:HEADER]")]
    exclude_if_present: Vec<String>,
    /// Leave out folders marked as caches by a CACHEDIR.TAG file
    #[arg(long)]
    exclude_caches: bool,
    /// Leave out files larger than SIZE (e.g. 500M, 2G)
    #[arg(long, value_name = "SIZE", value_parser = crate::args::parse_size)]
    exclude_larger_than: Option<u64>,
    /// Do not cross file system boundaries
    #[arg(short = 'x', long)]
    one_file_system: bool,
    /// Do not record the extended attributes whose name matches PATTERN (`security.selinux`)
    #[arg(long = "exclude-xattr", value_name = "PATTERN", value_parser = crate::args::parse_xattr_pattern)]
    exclude_xattrs: Vec<String>,
    /// Do everything but write to the repository
    #[arg(short = 'n', long)]
    dry_run: bool,
    /// Use this snapshot as the parent for change detection
    #[arg(long, conflicts_with = "force")]
    parent: Option<String>,
    /// Read every file even if unchanged since the parent
    #[arg(short = 'f', long)]
    force: bool,
}

#[derive(serde::Serialize)]
struct JsonSummary<'a> {
    message_type: &'static str,
    snapshot_id: String,
    dry_run: bool,
    parent: Option<String>,
    summary: &'a Option<floe_engine::SnapshotSummary>,
    errors: &'a [floe_engine::SourceError],
    warnings: &'a [floe_engine::SourceError],
    #[serde(serialize_with = "floe_engine::lossy_paths")]
    changed_while_read: &'a [PathBuf],
    /// The figures again under the names of restic's summary, for scripts written for it.
    #[serde(flatten)]
    restic: Option<ResticSummary>,
}

/// restic's `backup --json` summary fields that floe has figures for.
#[derive(serde::Serialize)]
struct ResticSummary {
    files_new: u64,
    files_changed: u64,
    files_unmodified: u64,
    data_blobs: u64,
    tree_blobs: u64,
    data_added_packed: u64,
    total_files_processed: u64,
    total_bytes_processed: u64,
    total_duration: f64,
}

impl ResticSummary {
    fn of(s: &floe_engine::SnapshotSummary) -> Self {
        ResticSummary {
            files_new: s.files_new,
            files_changed: s.files_changed,
            files_unmodified: s.files_unchanged,
            data_blobs: s.data_blobs_added,
            tree_blobs: s.tree_blobs_added,
            data_added_packed: s.bytes_added,
            total_files_processed: s.files_new + s.files_changed + s.files_unchanged,
            total_bytes_processed: s.total_bytes,
            total_duration: s.duration_seconds,
        }
    }
}

/// The paths to back up: those given, then those the lists name.
fn source_paths(a: &Args) -> anyhow::Result<Vec<PathBuf>> {
    let mut paths: Vec<PathBuf> = a.paths.iter().map(PathBuf::from).collect();
    let lists = [
        (&a.files_from, ListFormat::Lines),
        (&a.files_from_verbatim, ListFormat::Verbatim),
        (&a.files_from_raw, ListFormat::Raw),
    ];
    let listed = lists.iter().any(|(files, _)| !files.is_empty());
    for (files, format) in lists {
        for f in files {
            paths.extend(read_list(f, format)?);
        }
    }
    if paths.is_empty() {
        if listed {
            bail!("nothing to back up: the --files-from lists name no path");
        }
        bail!("nothing to back up: give paths, --files-from FILE, --stdin or --stdin-from-command");
    }
    Ok(paths)
}

fn options(
    a: &Args,
    repo: &Repository,
    lock: &floe_engine::RepoLock,
) -> anyhow::Result<BackupOptions> {
    let mut exclude_if_present = a.exclude_if_present.clone();
    if a.exclude_caches {
        exclude_if_present.push(CACHEDIR_TAG.to_string());
    }
    let parent = match &a.parent {
        Some(p) => Some(repo.find_snapshot(p)?.id),
        None => None,
    };
    Ok(BackupOptions {
        paths: Vec::new(),
        tags: split_tags(&a.tags),
        host: a.host.clone(),
        time: a.time,
        excludes: patterns(&a.excludes, &a.exclude_files)?,
        iexcludes: patterns(&a.iexcludes, &a.iexclude_files)?,
        exclude_if_present,
        exclude_larger_than: a.exclude_larger_than,
        one_file_system: a.one_file_system,
        exclude_xattrs: a.exclude_xattrs.clone(),
        dry_run: a.dry_run,
        parent,
        force: a.force,
        threads: 0,
        lock: lock.health(),
        progress: Default::default(),
    })
}

/// Runs the backup the arguments ask for: of paths, of standard input, or of a command's output.
fn run_backup(
    a: &Args,
    repo: &Repository,
    index: &Index,
    opts: BackupOptions,
    display: &crate::progress::Display,
) -> anyhow::Result<BackupReport> {
    if a.stdin_from_command {
        let stream = CommandStream::start(&a.paths)?;
        return Ok(backup_stream(
            repo,
            index,
            &opts,
            a.stdin_filename.as_deref().unwrap_or("stdin"),
            stream,
        )?);
    }
    if a.stdin {
        if !a.paths.is_empty() {
            bail!("--stdin backs up standard input only: give no paths with it");
        }
        let stdin = std::io::stdin();
        if stdin.is_terminal() {
            bail!("--stdin reads the data to back up from standard input, which is a terminal: pipe the data in");
        }
        return Ok(backup_stream(
            repo,
            index,
            &opts,
            a.stdin_filename.as_deref().unwrap_or("stdin"),
            stdin.lock(),
        )?);
    }
    crate::sources::refuse_streams(&a.paths)?;
    let opts = BackupOptions {
        paths: source_paths(a)?,
        ..opts
    };
    // The totals come from a scan beside the backup, when progress is shown; the estimate of
    // the time left appears once it is done. It is not waited for.
    if display.is_shown() {
        let scan_opts = BackupOptions {
            progress: Default::default(),
            ..opts.clone()
        };
        let set_totals = display.totals_setter();
        std::thread::spawn(move || {
            if let Ok(t) = floe_engine::scan_sources(&scan_opts) {
                set_totals(t.files, t.bytes);
            }
        });
    }
    Ok(backup(repo, index, &opts)?)
}

pub fn run(g: &GlobalArgs, a: Args) -> anyhow::Result<u8> {
    if a.stdin_filename.is_some() && !a.stdin && !a.stdin_from_command {
        bail!("--stdin-filename names the stream of --stdin or --stdin-from-command");
    }
    let repo = crate::repo::open(g)?;
    let lock = crate::repo::lock(g, &repo, false, "backup")?;
    let mut opts = options(&a, &repo, &lock)?;
    let index = repo.load_index()?;
    let display = crate::progress::Display::start(g, true);
    opts.progress = display.sink();
    let report = run_backup(&a, &repo, &index, opts, &display);
    drop(display);
    let report = report?;
    print_report(&report, g.json)?;
    crate::repo::keep_locked(g, &repo, &lock)?;
    Ok(warn_partial(&report))
}

fn print_report(report: &BackupReport, json: bool) -> anyhow::Result<()> {
    for e in report.errors.iter().chain(&report.warnings) {
        eprintln!("warning: {}: {}", e.path.display(), e.message);
    }
    for p in &report.changed_while_read {
        eprintln!(
            "warning: {}: changed while it was read; the snapshot holds it as read",
            p.display()
        );
    }
    output::summary(
        &JsonSummary {
            message_type: "summary",
            snapshot_id: report.snapshot_id.to_hex(),
            dry_run: report.dry_run,
            parent: report.snapshot.parent.map(|p| p.to_hex()),
            summary: &report.snapshot.summary,
            errors: &report.errors,
            warnings: &report.warnings,
            changed_while_read: &report.changed_while_read,
            restic: report.snapshot.summary.as_ref().map(ResticSummary::of),
        },
        json,
    )?;
    if json {
        return Ok(());
    }
    let Some(s) = &report.snapshot.summary else {
        return Ok(());
    };
    output::note(format!(
        "files: {} new, {} changed, {} unchanged; {} folders, {} others",
        s.files_new, s.files_changed, s.files_unchanged, s.dirs, s.others
    ))?;
    output::note(format!(
        "read {} of {}, added {} to the repository in {:.2}s",
        output::bytes(s.bytes_read),
        output::bytes(s.total_bytes),
        output::bytes(s.bytes_added),
        s.duration_seconds
    ))?;
    if report.dry_run {
        output::note("dry run: nothing was written")?;
    } else {
        output::note(format!("snapshot {} saved", report.snapshot_id.short()))?;
    }
    Ok(())
}

/// Exit 3 with a warning when some sources were left out, kept without some metadata, or
/// changed while read.
fn warn_partial(report: &BackupReport) -> u8 {
    let (left, changed) = (report.errors.len(), report.changed_while_read.len());
    let partial = report.warnings.len();
    if left == 0 && changed == 0 && partial == 0 {
        return exit::OK;
    }
    let mut parts = Vec::new();
    if left > 0 {
        parts.push(format!(
            "{left} source entr{} could not be read and left out",
            if left == 1 { "y" } else { "ies" }
        ));
    }
    if partial > 0 {
        parts.push(format!(
            "{partial} warning(s) about extended attributes not recorded"
        ));
    }
    if changed > 0 {
        parts.push(format!("{changed} file(s) changed while they were read"));
    }
    eprintln!("warning: {}", parts.join("; "));
    exit::PARTIAL
}
