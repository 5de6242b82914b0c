//! `floe check`

use floe_engine::ReadData;

use crate::{exit, output, GlobalArgs};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Also read every pack: hash, header, and every blob authenticated
    #[arg(long)]
    read_data: bool,
    /// Read only part of the packs: n/t (slice n of t), x% (random share) or a size (2G)
    #[arg(long, value_name = "SUBSET", value_parser = |s: &str| s.parse::<ReadData>(), conflicts_with = "read_data")]
    read_data_subset: Option<ReadData>,
    /// Read index files, snapshots and tree packs from the local cache where it has them,
    /// instead of from the repository (by default check reads what is stored)
    #[arg(long)]
    with_cache: bool,
    #[command(flatten)]
    thaw: crate::thaw::ThawArgs,
    /// Check only the trees of the snapshots these select (and read only their data)
    #[command(flatten)]
    filter: crate::select::SnapshotFilter,
}

/// The problems (printed even with `-q`), the damaged paths and the totals.
fn print_report(g: &GlobalArgs, report: &floe_engine::CheckReport) -> anyhow::Result<()> {
    output::summary(report, g.json)?;
    if g.json {
        return Ok(());
    }
    for p in &report.problems {
        output::line(format!("{}: {}: {}", p.severity, p.object, p.message))?;
    }
    for d in &report.damaged_paths {
        output::line(format!(
            "damaged: snapshot {} {}",
            d.snapshot,
            d.path.display()
        ))?;
    }
    output::note(format!(
        "checked {} snapshot(s), {} pack(s), {} blob(s); read {} pack(s) ({}); {} error(s), {} warning(s)",
        report.snapshots,
        report.packs,
        report.blobs,
        report.packs_read,
        output::bytes(report.bytes_read),
        report.errors(),
        report.problems.len() - report.errors()
    ))?;
    Ok(())
}

pub fn run(g: &GlobalArgs, a: Args) -> anyhow::Result<u8> {
    let repo = match a.with_cache {
        true => crate::repo::open(g)?,
        false => crate::repo::open_uncached(g)?,
    };
    let _lock = crate::repo::read_lock(g, &repo, "check")?;
    let how = match (a.read_data, a.read_data_subset) {
        (_, Some(s)) => s,
        (true, None) => ReadData::All,
        (false, None) => ReadData::None,
    };
    let display = crate::progress::Display::counting(g, "packs read");
    let progress = |done: usize, total: usize| display.set_count(done, total);
    let stopped = std::cell::Cell::new(None);
    // A failure while preparing the thaw stops the check at once; it is what the check returns.
    let failed = std::cell::RefCell::new(None);
    let gate = |packs: &std::collections::BTreeSet<floe_engine::PackId>| match crate::thaw::prepare(
        &repo,
        packs,
        &a.thaw,
        "this check",
    ) {
        Ok(crate::thaw::Next::Go(g)) => Ok(floe_engine::ReadGate::Go(g)),
        Ok(crate::thaw::Next::Stop(code)) => {
            stopped.set(Some(code));
            Ok(floe_engine::ReadGate::Stop)
        }
        Err(e) => {
            failed.replace(Some(e));
            Err(floe_engine::Error::Aborted("check"))
        }
    };
    let only: Option<std::collections::HashSet<floe_engine::SnapshotId>> = match a.filter.is_empty()
    {
        true => None,
        false => Some(
            a.filter
                .some_snapshots(&repo)?
                .iter()
                .map(|s| s.id)
                .collect(),
        ),
    };
    let checked = floe_engine::check_gated(&repo, only.as_ref(), how, &progress, &gate);
    drop(display);
    if let Some(e) = failed.take() {
        return Err(e);
    }
    let report = checked?;
    print_report(g, &report)?;
    if report.errors() > 0 {
        anyhow::bail!(
            "the repository is damaged: {} error(s) (`floe repair --help` lists the repairs: \
             index for lost packs or index files, packs for damaged packs, then snapshots; \
             `floe forget ID` removes a damaged snapshot file)",
            report.errors()
        );
    }
    if let Some(code) = stopped.get() {
        if !g.json {
            output::note(format!(
                "{} archived data pack(s) were not read",
                report.data_not_read
            ))?;
        }
        return Ok(code);
    }
    Ok(exit::OK)
}
