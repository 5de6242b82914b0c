//! `floe repair`

use crate::{exit, output, GlobalArgs};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    what: What,
}

#[derive(Debug, clap::Subcommand)]
enum What {
    /// Rebuild the index from the pack headers (reads the tail of every pack)
    Index {
        /// Report what the new index would hold, write nothing
        #[arg(short = 'n', long)]
        dry_run: bool,
    },
    /// Rewrite snapshots that need missing or damaged blobs (a dry run unless --write)
    Snapshots {
        /// Write the repaired snapshots (tagged `repaired`, the original as parent)
        #[arg(long)]
        write: bool,
        /// Remove the original snapshots once the repaired ones are written
        #[arg(long, requires = "write")]
        forget: bool,
        /// Read every data blob to find damage the index does not show
        #[arg(long)]
        read_data: bool,
    },
    /// Rewrite damaged packs (as `check --read-data` names them) with the blobs of theirs that
    /// still open, and remove them (a dry run unless --write); then run `repair snapshots`
    Packs {
        /// The packs: ids or unique prefixes
        #[arg(value_name = "PACK", required = true)]
        ids: Vec<String>,
        /// Write the new packs and index, and remove the damaged packs
        #[arg(long)]
        write: bool,
    },
}

pub fn run(g: &GlobalArgs, a: Args) -> anyhow::Result<u8> {
    // Repairs start from what is stored, not from a copy of it.
    let repo = crate::repo::open_uncached(g)?;
    let lock = crate::repo::lock(g, &repo, true, "repair")?;
    match a.what {
        What::Index { dry_run } => {
            let display = crate::progress::Display::counting(g, "pack headers read");
            let progress = |done: usize, total: usize| display.set_count(done, total);
            let r = floe_engine::repair_index(&repo, dry_run, &lock.health(), &progress);
            drop(display);
            let r = r?;
            if g.json {
                output::json(&r)?;
            } else {
                for (id, why) in &r.unreadable_packs {
                    output::line(format!("unreadable pack {id}: {why}"))?;
                }
                output::note(format!(
                    "indexed {} blob(s) in {} pack(s); wrote {} index file(s), removed {}{}",
                    r.blobs_indexed,
                    r.packs_indexed,
                    r.index_files_written,
                    r.index_files_deleted,
                    if dry_run {
                        " (dry run: nothing written)"
                    } else {
                        ""
                    }
                ))?;
            }
        }
        What::Snapshots {
            write,
            forget,
            read_data,
        } => {
            let r = floe_engine::repair_snapshots(&repo, write, forget, read_data, &lock.health())?;
            if g.json {
                output::json(&r)?;
            } else {
                for p in &r.paths {
                    output::note(format!(
                        "snapshot {} {}: {}",
                        p.snapshot,
                        p.path.display(),
                        p.action
                    ))?;
                }
                for d in &r.damaged {
                    let fate = if write && forget {
                        "removed"
                    } else {
                        "cannot be repaired; --write --forget removes it"
                    };
                    output::note(format!(
                        "snapshot {}: {}: {fate}",
                        &d.snapshot[..8],
                        d.error
                    ))?;
                }
                if write {
                    let damaged = if forget { r.damaged.len() } else { 0 };
                    output::note(format!(
                        "wrote {} repaired snapshot(s), removed {} original(s) and {damaged} \
                         damaged snapshot file(s)",
                        r.new_snapshots.len(),
                        r.removed.len().saturating_sub(damaged)
                    ))?;
                } else {
                    output::note("dry run: nothing written (use --write)")?;
                }
            }
        }
        What::Packs { ids, write } => salvage(g, &repo, &lock, &ids, write)?,
    }
    Ok(exit::OK)
}

/// `repair packs`: the plan, then (with `write`) prune's steps carry it out.
fn salvage(
    g: &GlobalArgs,
    repo: &floe_engine::Repository,
    lock: &floe_engine::RepoLock,
    ids: &[String],
    write: bool,
) -> anyhow::Result<()> {
    let (plan, found) = floe_engine::plan_salvage(repo, ids)?;
    let lost: usize = found.iter().map(|p| p.blobs_lost).sum();
    let report = match write && lost > 0 {
        true => Some(super::prune::execute(
            g,
            repo,
            &plan,
            lock,
            "packs rewritten",
        )?),
        false => None,
    };
    output::summary(
        &serde_json::json!({ "packs": found, "written": report, "blobs_lost": lost }),
        g.json,
    )?;
    if g.json {
        return Ok(());
    }
    for p in &found {
        output::note(format!(
            "pack {}: {} blob(s) sound, {} damaged",
            p.id.short(),
            p.blobs_kept,
            p.blobs_lost
        ))?;
    }
    match report {
        _ if lost == 0 => output::note("every blob opens: nothing to repair")?,
        None => output::note("dry run: nothing written (use --write)")?,
        Some(r) => output::note(format!(
            "wrote {} pack(s), removed {} damaged pack(s); now run `floe repair snapshots \
             --write` for the files that needed the lost blobs",
            r.packs_written, r.packs_deleted
        ))?,
    }
    Ok(())
}
