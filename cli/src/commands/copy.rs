//! `floe copy`

use floe_engine::{copy, plan_copy, CopyOptions, CopyPlan, CopyReport, Index, Repository};

use crate::{exit, output, GlobalArgs};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Source snapshots to copy (ids, unique prefixes or `latest`); without ids, every one the
    /// filters select
    #[arg(value_name = "ID")]
    ids: Vec<String>,
    #[command(flatten)]
    from: crate::from::FromArgs,
    #[command(flatten)]
    filter: crate::select::SnapshotFilter,
    /// Show the snapshots the copy would add and what it would read; write nothing
    #[arg(short = 'n', long)]
    dry_run: bool,
    #[command(flatten)]
    thaw: crate::thaw::ThawArgs,
}

pub fn run(g: &GlobalArgs, a: Args) -> anyhow::Result<u8> {
    if let Err(e) = a.from.location() {
        // A missing option is a usage error, as clap reports the others.
        eprintln!("error: {e}");
        return Ok(exit::USAGE);
    }
    let dest = crate::repo::open(g)?;
    let src = a.from.open(g)?;
    let _src_lock = crate::repo::read_lock(g, &src, "copy")?;
    let lock = match a.dry_run {
        true => None,
        // --no-lock spares the source (read-only credentials); the destination is written.
        false => Some(crate::repo::write_lock(g, &dest, false, "copy")?),
    };
    let chosen = crate::select::chosen(&src, &a.ids, &a.filter)?;
    let src_index = crate::repo::index_for_reading(&src)?;
    let plan = plan_copy(&src, &src_index, &dest, dest.load_index()?, chosen)?;
    if a.dry_run {
        return dry_run(g, &src, &src_index, &plan, &a.thaw);
    }
    let mut opts = CopyOptions {
        lock: lock.as_ref().map(|l| l.health()).unwrap_or_default(),
        ..Default::default()
    };
    if !plan.is_empty() {
        let packs = plan.source_packs(&src_index);
        match crate::thaw::prepare(&src, &packs, &a.thaw, "this copy")? {
            crate::thaw::Next::Go(gate) => opts.gate = gate,
            crate::thaw::Next::Stop(code) => return Ok(code),
        }
    }
    let display = crate::progress::Display::start(g, false);
    display.set_totals(0, plan.plain_bytes_to_read);
    opts.progress = display.sink();
    let copies = describe(&plan);
    let report = copy(&src, &src_index, &dest, plan, &opts);
    drop(display);
    let report = report?;
    print_report(g, &copies, &report)?;
    if let Some(lock) = &lock {
        crate::repo::keep_locked(g, &dest, lock)?;
    }
    // As a backup into such a repository: the copies are saved, but without what was dropped.
    Ok(match report.xattrs_dropped {
        0 => exit::OK,
        _ => exit::PARTIAL,
    })
}

/// "snapshot 1a2b3c4d of [/home] at 2026-01-01 03:00:00 by ann@host", per snapshot to copy.
fn describe(plan: &CopyPlan) -> Vec<String> {
    plan.snapshots
        .iter()
        .map(|s| {
            let sn = &s.snapshot;
            let paths: Vec<String> = sn.paths.iter().map(|p| p.lossy().into_owned()).collect();
            format!(
                "snapshot {} of [{}] at {} by {}@{}",
                s.id.short(),
                paths.join(", "),
                sn.time.format("%Y-%m-%d %H:%M:%S"),
                sn.username,
                sn.hostname
            )
        })
        .collect()
}

#[derive(serde::Serialize)]
struct Copied {
    source: String,
    snapshot: String,
}

#[derive(serde::Serialize)]
struct JsonReport<'a> {
    message_type: &'static str,
    copied: Vec<Copied>,
    #[serde(flatten)]
    report: &'a CopyReport,
}

fn print_report(g: &GlobalArgs, copies: &[String], r: &CopyReport) -> anyhow::Result<()> {
    if r.xattrs_dropped > 0 {
        eprintln!(
            "warning: the destination is of format version 1 and records no extended \
             attributes: {} entries were copied without theirs (`floe migrate` upgrades it)",
            r.xattrs_dropped
        );
    }
    let copied = r
        .copied
        .iter()
        .map(|(s, d)| Copied {
            source: s.to_hex(),
            snapshot: d.to_hex(),
        })
        .collect();
    let json = JsonReport {
        message_type: "summary",
        copied,
        report: r,
    };
    output::summary(&json, g.json)?;
    if g.json {
        return Ok(());
    }
    if r.leftover_packs_indexed > 0 {
        output::note(format!(
            "indexed {} pack(s) an interrupted run had uploaded",
            r.leftover_packs_indexed
        ))?;
    }
    if r.copied.is_empty() {
        output::note(match r.snapshots_present {
            0 => "nothing to copy: the source has no snapshot".to_string(),
            n => format!("nothing to copy: the {n} snapshot(s) selected are here already"),
        })?;
        return Ok(());
    }
    for (text, (_, new)) in copies.iter().zip(&r.copied) {
        output::note(format!("{text}: copied as {}", new.short()))?;
    }
    output::note(format!(
        "copied {} snapshot(s), {} already there; read {} data blob(s) ({}), of which {} were \
         there already; added {} data and {} tree blob(s) ({}) in {} pack(s)",
        r.copied.len(),
        r.snapshots_present,
        r.data_blobs_read,
        output::bytes(r.bytes_read),
        r.data_blobs_present,
        r.data_blobs_added,
        r.tree_blobs_added,
        output::bytes(r.bytes_added),
        r.packs_written
    ))?;
    Ok(())
}

/// `--dry-run`: the snapshots the copy would add, and what it would read and may upload.
fn dry_run(
    g: &GlobalArgs,
    src: &Repository,
    src_index: &Index,
    plan: &CopyPlan,
    thaw: &crate::thaw::ThawArgs,
) -> anyhow::Result<u8> {
    if g.json {
        #[derive(serde::Serialize)]
        struct Json {
            message_type: &'static str,
            snapshots: Vec<String>,
            snapshots_present: usize,
            blobs_to_read: usize,
            bytes_to_read: u64,
            plain_bytes_to_read: u64,
            trees_to_translate: usize,
            leftover_packs: usize,
        }
        output::json(&Json {
            message_type: "dry_run",
            snapshots: plan.snapshots.iter().map(|s| s.id.to_hex()).collect(),
            snapshots_present: plan.present.len(),
            blobs_to_read: plan.blobs_to_read,
            bytes_to_read: plan.bytes_to_read,
            plain_bytes_to_read: plan.plain_bytes_to_read,
            trees_to_translate: plan.trees_to_translate,
            leftover_packs: plan.leftover_packs,
        })?;
    } else {
        for line in describe(plan) {
            output::line(format!("would copy {line}"))?;
        }
        output::line(format!(
            "would copy {} snapshot(s); {} already there",
            plan.snapshots.len(),
            plan.present.len()
        ))?;
        output::line(format!(
            "would read {} data blob(s) ({}) and upload those the destination lacks, at most \
             {} before compression; would write {} folder(s)",
            plan.blobs_to_read,
            output::bytes(plan.bytes_to_read),
            output::bytes(plan.plain_bytes_to_read),
            plan.trees_to_translate
        ))?;
    }
    if !plan.is_empty() {
        crate::thaw::show(src, &plan.source_packs(src_index), thaw, "this copy")?;
    }
    Ok(exit::OK)
}
