//! `floe restore`

use std::path::PathBuf;

use floe_engine::{plan_restore, restore_planned, RestoreOptions};

use crate::{exit, output, GlobalArgs};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Snapshot id (or a unique prefix) or `latest`, optionally with `:SUBPATH`
    #[arg(value_name = "SNAPSHOT[:SUBPATH]")]
    snapshot: String,
    #[command(flatten)]
    filter: crate::select::SnapshotFilter,
    /// Folder to restore into
    #[arg(short, long, value_name = "DIR")]
    target: PathBuf,
    /// Restore only paths matching PATTERN (and what they contain)
    #[arg(short = 'i', long = "include", value_name = "PATTERN")]
    includes: Vec<String>,
    /// Leave out paths matching PATTERN (and what they contain)
    #[arg(short = 'e', long = "exclude", value_name = "PATTERN")]
    excludes: Vec<String>,
    /// Replace files that already exist in the target
    #[arg(long)]
    overwrite: bool,
    /// Restore only the extended attributes whose name matches PATTERN (`user.*`); all by default
    #[arg(long = "include-xattr", value_name = "PATTERN", value_parser = crate::args::parse_xattr_pattern)]
    include_xattrs: Vec<String>,
    /// Do not restore the extended attributes whose name matches PATTERN (`security.selinux`)
    #[arg(long = "exclude-xattr", value_name = "PATTERN", value_parser = crate::args::parse_xattr_pattern)]
    exclude_xattrs: Vec<String>,
    #[command(flatten)]
    thaw: crate::thaw::ThawArgs,
}

#[derive(serde::Serialize)]
struct JsonSummary<'a> {
    message_type: &'static str,
    #[serde(flatten)]
    summary: &'a floe_engine::RestoreSummary,
}

pub fn run(g: &GlobalArgs, a: Args) -> anyhow::Result<u8> {
    let repo = crate::repo::open(g)?;
    let _lock = crate::repo::read_lock(g, &repo, "restore")?;
    let (snap, sub) = crate::repo::find_snapshot_path(&repo, &a.snapshot, None, &a.filter)?;
    let index = crate::repo::index_for_reading(&repo)?;
    let mut opts = RestoreOptions {
        target: a.target,
        includes: a.includes,
        excludes: a.excludes,
        overwrite: a.overwrite,
        threads: 0,
        gate: None,
        progress: Default::default(),
        include_xattrs: a.include_xattrs,
        exclude_xattrs: a.exclude_xattrs,
    };
    // One walk of the snapshot's trees serves the thaw plan and the restore.
    let plan = plan_restore(&repo, &index, &snap.snapshot, &sub, &opts)
        .map_err(|e| crate::repo::hint_relative(e, &sub))?;
    if !opts.includes.is_empty() && plan.is_empty() {
        anyhow::bail!(
            "--include {} matches nothing in snapshot {}: nothing to restore",
            opts.includes.join(", "),
            snap.id.short()
        );
    }
    match crate::thaw::prepare(&repo, &plan.needed_packs(&index), &a.thaw, "this restore")? {
        crate::thaw::Next::Go(gate) => opts.gate = gate,
        crate::thaw::Next::Stop(code) => return Ok(code),
    }
    let display = crate::progress::Display::start(g, false);
    let (bytes, files) = plan.totals();
    display.set_totals(files as u64, bytes);
    opts.progress = display.sink();
    let summary = restore_planned(&repo, &index, plan, &opts);
    drop(display);
    let summary = summary?;
    for e in &summary.errors {
        eprintln!("error: {}: {}", e.path.display(), e.message);
    }
    for w in &summary.xattr_warnings {
        eprintln!(
            "warning: {} extended attribute(s) of the {}.* namespace{} not restored: {} (first: {})",
            w.count,
            w.namespace,
            if w.namespace == "system" { " (ACLs)" } else { "" },
            w.reason,
            w.first_path.display()
        );
    }
    if g.json {
        output::json(&JsonSummary {
            message_type: "summary",
            summary: &summary,
        })?;
    } else {
        output::note(format!(
            "restored snapshot {}: {} file(s) ({}), {} folder(s), {} other(s)",
            snap.id.short(),
            summary.files,
            output::bytes(summary.bytes),
            summary.dirs,
            summary.others
        ))?;
        if summary.skipped > 0 {
            output::note(format!(
                "skipped {} socket(s) or device node(s) (device nodes need root)",
                summary.skipped
            ))?;
        }
    }
    if summary.errors.is_empty() {
        Ok(if summary.xattr_warnings.is_empty() {
            exit::OK
        } else {
            exit::PARTIAL
        })
    } else {
        Err(floe_engine::Error::RestoreIncomplete {
            failed: summary.errors.len(),
            first: format!(
                "{}: {}",
                summary.errors[0].path.display(),
                summary.errors[0].message
            ),
        }
        .into())
    }
}
