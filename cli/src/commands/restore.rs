//! `floe restore`

use std::path::PathBuf;

use floe_engine::{plan_restore, restore_planned, Overwrite, RestoreOptions, RestoreSummary};

use crate::{exit, output, GlobalArgs};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Snapshot id (or a unique prefix) or `latest`, optionally with `:SUBPATH`
    #[arg(value_name = "SNAPSHOT[:SUBPATH]", value_parser = crate::args::lossy())]
    snapshot: String,
    #[command(flatten)]
    filter: crate::select::SnapshotFilter,
    /// Folder to restore into
    #[arg(short, long, value_name = "DIR")]
    target: PathBuf,
    /// Restore only paths matching PATTERN (and what they contain)
    #[arg(short = 'i', long = "include", value_name = "PATTERN", value_parser = crate::args::lossy())]
    includes: Vec<String>,
    /// Leave out paths matching PATTERN (and what they contain)
    #[arg(short = 'e', long = "exclude", value_name = "PATTERN", value_parser = crate::args::lossy())]
    excludes: Vec<String>,
    /// What to do with files already in the target: always (replace them), if-changed (leave
    /// those of the snapshot's size and modification time), if-newer (replace those older than
    /// the snapshot's), never (leave them); without --overwrite a restore refuses to start when
    /// anything is in the way, and --overwrite alone is always
    #[arg(long, value_name = "MODE", num_args = 0..=1, default_missing_value = "always", value_parser = parse_overwrite)]
    overwrite: Option<Overwrite>,
    /// Remove files and folders of the target that the snapshot does not have (needs
    /// --overwrite; try it with --dry-run first)
    #[arg(long, requires = "overwrite")]
    delete: bool,
    /// Show what would be written, replaced, left alone and deleted, and what it would read;
    /// write nothing
    #[arg(long)]
    dry_run: bool,
    /// Read every restored file back and compare its chunks with the snapshot's (exit 1 on a
    /// difference)
    #[arg(long)]
    verify: bool,
    /// Restore only the extended attributes whose name matches PATTERN (`user.*`); all by default
    #[arg(long = "include-xattr", value_name = "PATTERN", value_parser = crate::args::parse_xattr_pattern)]
    include_xattrs: Vec<String>,
    /// Do not restore the extended attributes whose name matches PATTERN (`security.selinux`)
    #[arg(long = "exclude-xattr", value_name = "PATTERN", value_parser = crate::args::parse_xattr_pattern)]
    exclude_xattrs: Vec<String>,
    #[command(flatten)]
    thaw: crate::thaw::ThawArgs,
}

fn parse_overwrite(s: &str) -> Result<Overwrite, String> {
    Overwrite::parse(s).ok_or_else(|| {
        format!("unknown mode {s:?}: expected always, if-changed, if-newer or never")
    })
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
        overwrite: a.overwrite.unwrap_or_default(),
        delete: a.delete,
        verify: a.verify,
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
    if a.dry_run {
        return dry_run(g, &repo, &plan, &index, &a.thaw);
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
    report(g, &snap.id.short(), &summary)?;
    exit_code(&summary)
}

fn report(g: &GlobalArgs, snap: &str, summary: &RestoreSummary) -> anyhow::Result<()> {
    for e in &summary.errors {
        eprintln!("error: {}: {}", e.path.display(), e.message);
    }
    for e in &summary.verify_errors {
        eprintln!("error: --verify: {} {}", e.path.display(), e.message);
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
        return output::json(&JsonSummary {
            message_type: "summary",
            summary,
        });
    }
    output::note(format!(
        "restored snapshot {snap}: {} file(s) ({}), {} folder(s), {} other(s)",
        summary.files_restored,
        output::bytes(summary.bytes_restored),
        summary.dirs,
        summary.others
    ))?;
    if summary.files_skipped > 0 || summary.bytes_in_place > 0 {
        output::note(format!(
            "already in place: {} file(s) ({}) left alone, {} of the written files not read again; read {} from the repository",
            summary.files_skipped,
            output::bytes(summary.bytes_skipped),
            output::bytes(summary.bytes_in_place),
            output::bytes(summary.bytes_read)
        ))?;
    }
    if summary.files_deleted > 0 {
        output::note(format!(
            "deleted {} file(s) or folder(s) the snapshot does not have",
            summary.files_deleted
        ))?;
    }
    if summary.files_verified > 0 || !summary.verify_errors.is_empty() {
        output::note(format!(
            "verified {} file(s): {} differ",
            summary.files_verified + summary.verify_errors.len() as u64,
            summary.verify_errors.len()
        ))?;
    }
    if summary.others_skipped > 0 {
        output::note(format!(
            "skipped {} socket(s) or device node(s) (device nodes need root)",
            summary.others_skipped
        ))?;
    }
    Ok(())
}

fn exit_code(summary: &RestoreSummary) -> anyhow::Result<u8> {
    if let Some(first) = summary.errors.first() {
        return Err(floe_engine::Error::RestoreIncomplete {
            failed: summary.errors.len(),
            first: format!("{}: {}", first.path.display(), first.message),
        }
        .into());
    }
    if let Some(first) = summary.verify_errors.first() {
        anyhow::bail!(
            "--verify: {} restored file(s) differ from the snapshot (first: {} {})",
            summary.verify_errors.len(),
            first.path.display(),
            first.message
        );
    }
    Ok(if summary.xattr_warnings.is_empty() {
        exit::OK
    } else {
        exit::PARTIAL
    })
}

/// `--dry-run`: the plan in files and bytes, and for archived data the thaw it would need.
fn dry_run(
    g: &GlobalArgs,
    repo: &floe_engine::Repository,
    plan: &floe_engine::RestorePlan,
    index: &floe_engine::Index,
    thaw: &crate::thaw::ThawArgs,
) -> anyhow::Result<u8> {
    let p = plan.preview();
    if g.json {
        #[derive(serde::Serialize)]
        struct Json<'a> {
            message_type: &'static str,
            #[serde(flatten)]
            preview: &'a floe_engine::RestorePreview,
        }
        output::json(&Json {
            message_type: "dry_run",
            preview: &p,
        })?;
    } else {
        let b = output::bytes;
        output::line(format!(
            "would write {} new file(s) ({})",
            p.files_new,
            b(p.bytes_new)
        ))?;
        output::line(format!(
            "would replace {} file(s) ({})",
            p.files_replaced,
            b(p.bytes_replaced)
        ))?;
        output::line(format!(
            "would leave {} file(s) alone ({})",
            p.files_skipped,
            b(p.bytes_skipped)
        ))?;
        output::line(format!(
            "would read {} from the repository; {} already in place",
            b(p.bytes_to_read),
            b(p.bytes_in_place)
        ))?;
        output::line(format!(
            "would delete {} file(s) or folder(s)",
            p.deletes.len()
        ))?;
        for d in &p.deletes {
            output::line(format!("  delete {}", d.display()))?;
        }
    }
    crate::thaw::show(repo, &plan.needed_packs(index), thaw, "this restore")?;
    Ok(exit::OK)
}
