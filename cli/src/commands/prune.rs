//! `floe prune`

use floe_engine::Repository;
use floe_engine::{parse_size, MaxUnused, PruneOptions, PrunePlan};

use crate::{exit, output, GlobalArgs};

/// Prune settings shared with `forget --prune`.
#[derive(Debug, clap::Args)]
pub struct PruneArgs {
    /// Unused space allowed to remain: a percentage of the repository (5%), a size (2G) or `unlimited`
    #[arg(long, default_value = "5%", value_parser = |s: &str| s.parse::<MaxUnused>())]
    max_unused: MaxUnused,
    /// Repack at most this many bytes of packs in one run (e.g. 10G)
    #[arg(long, value_parser = parse_size)]
    max_repack: Option<u64>,
    /// Delete or repack packs younger than their storage class's minimum storage duration
    /// (STANDARD_IA, ONEZONE_IA 30 days; GLACIER_IR, GLACIER 90; DEEP_ARCHIVE 180), paying the
    /// early-deletion charge
    #[arg(long)]
    ignore_min_duration: bool,
}

impl PruneArgs {
    pub fn options(&self) -> PruneOptions {
        PruneOptions {
            max_unused: self.max_unused,
            max_repack: self.max_repack,
            ignore_min_duration: self.ignore_min_duration,
            ..PruneOptions::default()
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    prune: PruneArgs,
    /// Print the plan and change nothing
    #[arg(short = 'n', long)]
    dry_run: bool,
}

fn print_plan(plan: &PrunePlan) -> anyhow::Result<()> {
    output::note(format!(
        "blobs: {} used, {} unused; memory {:.1} bytes per indexed blob",
        plan.used_blobs, plan.unused_blobs, plan.memory_bytes_per_blob
    ))?;
    output::note(format!(
        "packs: {} to delete, {} to repack, {} orphaned to delete ({} too recent to touch), {} kept",
        plan.delete.len(),
        plan.repack.len(),
        plan.orphans.len(),
        plan.young_orphans,
        plan.keep
    ))?;
    for p in &plan.delete {
        output::note(format!(
            "  delete  {} pack {} ({})",
            p.blob_type,
            p.id.short(),
            output::bytes(p.size)
        ))?;
    }
    for p in &plan.repack {
        output::note(format!(
            "  repack  {} pack {} ({}, {} used)",
            p.blob_type,
            p.id.short(),
            output::bytes(p.size),
            output::bytes(p.used_bytes)
        ))?;
    }
    for p in &plan.orphans {
        output::note(format!(
            "  orphan  {} pack {} ({})",
            p.blob_type,
            p.id.short(),
            output::bytes(p.size)
        ))?;
    }
    if !plan.leftovers.is_empty() {
        output::note(format!(
            "unfinished files of interrupted writes: {} to delete ({})",
            plan.leftovers.len(),
            output::bytes(plan.leftovers.iter().map(|l| l.size).sum())
        ))?;
        for l in &plan.leftovers {
            output::note(format!("  remove  {} ({})", l.path, output::bytes(l.size)))?;
        }
    }
    output::note(format!(
        "frees {} of {}; reads {} and writes {} to repack; {} unused left",
        output::bytes(plan.bytes_freed),
        output::bytes(plan.bytes_before),
        output::bytes(plan.bytes_to_read),
        output::bytes(plan.bytes_to_write),
        output::bytes(plan.unused_bytes_after)
    ))?;
    if plan.by_class.keys().any(|c| c != "none") {
        for (class, c) in &plan.by_class {
            output::note(format!(
                "  {class:<19} delete {} ({}), repack {} ({}), keep {} ({}){}",
                c.delete.0,
                output::bytes(c.delete.1),
                c.repack.0,
                output::bytes(c.repack.1),
                c.keep.0,
                output::bytes(c.keep.1),
                if c.kept_for_min_duration > 0 {
                    format!(
                        ", of which {} until their minimum storage duration",
                        c.kept_for_min_duration
                    )
                } else {
                    String::new()
                }
            ))?;
        }
    }
    if plan.min_duration_kept > 0 {
        output::note(format!(
            "kept {} pack(s) ({}) younger than their class's minimum storage duration, avoiding \
             ${:.2} of early-deletion charges (--ignore-min-duration deletes them)",
            plan.min_duration_kept,
            output::bytes(plan.min_duration_kept_bytes),
            plan.early_deletion_avoided_usd
        ))?;
    }
    if plan.early_deletion_charged_usd > 0.0 {
        output::note(format!(
            "early-deletion charges incurred: about ${:.2} ({})",
            plan.early_deletion_charged_usd,
            floe_engine::PRICES_AS_OF
        ))?;
    }
    Ok(())
}

/// Adds what the bucket's lifecycle rules say of data packs' classes, so that minimum storage
/// durations count from the transition into a class, not from the upload.
pub fn lifecycle_aware(repo: &Repository, mut opts: PruneOptions) -> PruneOptions {
    if let Some(r) = repo.config().object_lock {
        opts.versions_kept_days = r.days.saturating_add(floe_engine::VERSIONS_MARGIN_DAYS);
    }
    match repo.backend().lifecycle() {
        Ok(Some(l)) => opts.class_entry_days = floe_engine::class_entry_days(&l.rules, &l.prefix),
        Ok(None) => {}
        Err(e) => eprintln!(
            "warning: cannot read the bucket's lifecycle rules ({e:#}); packs' ages in their \
             storage class are counted from their upload"
        ),
    }
    opts
}

/// Plans a prune and, given the exclusive lock the caller holds, executes it; without one (a dry
/// run) it only plans. Prints the plan unless `--json`; returns it (and the report) as JSON.
pub fn prune_locked(
    g: &GlobalArgs,
    repo: &Repository,
    lock: Option<&floe_engine::RepoLock>,
    opts: &PruneOptions,
) -> anyhow::Result<serde_json::Value> {
    let json = g.json;
    let dry_run = lock.is_none();
    let plan = floe_engine::plan_prune(repo, opts)?;
    if !json {
        print_plan(&plan)?;
    }
    let report = match lock {
        Some(lock) => Some(execute(g, repo, &plan, lock, "packs repacked or deleted")?),
        None => None,
    };
    if !json {
        match &report {
            None => output::note("dry run: nothing was changed")?,
            Some(r) => output::note(format!(
                "deleted {} pack(s), wrote {} pack(s) and {} index file(s), removed {} index \
                 file(s) and {} unfinished file(s)",
                r.packs_deleted,
                r.packs_written,
                r.index_files_written,
                r.index_files_deleted,
                r.leftovers_deleted
            ))?,
        }
    }
    for kept in report.iter().flat_map(|r| &r.leftovers_kept) {
        eprintln!("warning: unfinished file not removed (the next prune tries again): {kept}");
    }
    let retention = match (report.is_some(), lock) {
        (true, Some(lock)) => locked_note(g, repo, lock)?,
        _ => None,
    };
    Ok(
        serde_json::json!({ "dry_run": dry_run, "plan": plan, "report": report, "retention": retention }),
    )
}

/// On an Object Lock repository: what deleting means there, and the retention moved ahead.
fn locked_note(
    g: &GlobalArgs,
    repo: &Repository,
    lock: &floe_engine::RepoLock,
) -> anyhow::Result<Option<floe_engine::RetentionReport>> {
    let Some(r) = repo.config().object_lock else {
        return Ok(None);
    };
    if !g.json {
        let last = floe_engine::now_utc() + chrono::Days::new(r.days.into());
        output::note(format!(
            "Object Lock: each deleted object left a delete marker; its locked version stays, \
             and is billed, until its retention ends (by {} at the latest), then the bucket's \
             versions rule removes it",
            last.format("%Y-%m-%d")
        ))?;
    }
    crate::repo::keep_locked(g, repo, lock)
}

pub fn run(g: &GlobalArgs, a: Args) -> anyhow::Result<u8> {
    let repo = crate::repo::open(g)?;
    // Even a dry run holds the exclusive lock: a backup writing beside it would show its new
    // packs as unused in the plan.
    let lock = crate::repo::lock(g, &repo, true, "prune")?;
    let opts = lifecycle_aware(&repo, a.prune.options());
    let v = prune_locked(g, &repo, Some(&lock).filter(|_| !a.dry_run), &opts)?;
    output::summary(&v, g.json)?;
    Ok(exit::OK)
}

/// Carries out a plan of prune's (or of `repair packs`) with a progress line counting `what`.
pub fn execute(
    g: &GlobalArgs,
    repo: &floe_engine::Repository,
    plan: &floe_engine::PrunePlan,
    lock: &floe_engine::RepoLock,
    what: &'static str,
) -> anyhow::Result<floe_engine::PruneReport> {
    let display = crate::progress::Display::counting(g, what);
    let progress = |done: usize, total: usize| display.set_count(done, total);
    let report = floe_engine::prune(repo, plan, &lock.health(), &progress);
    drop(display);
    Ok(report?)
}
