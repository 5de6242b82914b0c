//! `floe rewrite`

use std::path::PathBuf;

use floe_engine::{plan_rewrite, rewrite};

use crate::{exit, output, GlobalArgs};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Snapshots to rewrite (ids or unique prefixes); without ids, those the filters select
    #[arg(value_name = "ID")]
    ids: Vec<String>,
    /// Leave out paths matching PATTERN, as backup's --exclude (repeatable)
    #[arg(short = 'e', long = "exclude", value_name = "PATTERN")]
    excludes: Vec<String>,
    /// Read exclude patterns from FILE, one per line (# starts a comment)
    #[arg(long = "exclude-file", value_name = "FILE")]
    exclude_files: Vec<PathBuf>,
    /// Remove the original snapshots once the new ones are saved
    #[arg(long)]
    forget: bool,
    /// Show what would be removed, write nothing
    #[arg(short = 'n', long)]
    dry_run: bool,
    #[command(flatten)]
    filter: crate::select::SnapshotFilter,
}

pub fn run(g: &GlobalArgs, a: Args) -> anyhow::Result<u8> {
    let excludes = crate::args::patterns(&a.excludes, &a.exclude_files)?;
    if excludes
        .iter()
        .all(|p| p.trim().is_empty() || p.starts_with('#'))
    {
        anyhow::bail!("nothing to rewrite: give --exclude PATTERN or --exclude-file FILE");
    }
    let repo = crate::repo::open(g)?;
    // Removing originals needs what forget needs; writing new snapshots, what backup needs.
    let lock = crate::repo::lock(g, &repo, a.forget && !a.dry_run, "rewrite")?;
    let snaps = crate::select::chosen(&repo, &a.ids, &a.filter)?;
    let index = repo.load_index()?;
    let plan = plan_rewrite(&repo, &index, snaps, &excludes)?;
    for r in &plan.rewrites {
        output::note(format!(
            "snapshot {}: {} path(s) to remove",
            r.original.id.short(),
            r.removed.len()
        ))?;
        if !g.quiet {
            for p in &r.removed {
                output::note(format!("  {}", p.display()))?;
            }
        }
    }
    if a.dry_run {
        output::note(format!(
            "dry run: {} snapshot(s) would be rewritten",
            plan.rewrites.len()
        ))?;
        return Ok(exit::OK);
    }
    let report = rewrite(&repo, &index, plan, a.forget, &lock.health())?;
    for (old, new) in &report.rewritten {
        output::note(format!(
            "snapshot {} rewritten as {}",
            old.short(),
            new.short()
        ))?;
    }
    output::note(format!(
        "{} snapshot(s) rewritten, {} original(s) removed",
        report.rewritten.len(),
        report.removed.len()
    ))?;
    Ok(exit::OK)
}
