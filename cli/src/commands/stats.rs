//! `floe stats`: what the repository stores, and with `--tiers` what it costs per storage class.

use crate::{exit, output, GlobalArgs};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Break down by storage class, with monthly storage cost and the cost of thawing
    /// everything archived
    #[arg(long)]
    tiers: bool,
    /// JSON file of prices replacing the built-in ones (same shape as `--json`'s "prices")
    #[arg(long, value_name = "FILE", requires = "tiers")]
    prices: Option<std::path::PathBuf>,
    /// Count these snapshots instead (ids, prefixes or `latest`): their restore size and the
    /// blobs they hold
    #[arg(value_name = "ID", conflicts_with = "tiers")]
    ids: Vec<String>,
    /// With a filter, count the snapshots it selects
    #[command(flatten)]
    filter: crate::select::SnapshotFilter,
}

fn of_snapshots(g: &GlobalArgs, a: &Args) -> anyhow::Result<u8> {
    let repo = crate::repo::open(g)?;
    let _lock = crate::repo::read_lock(g, &repo, "stats")?;
    let snaps = crate::select::chosen(&repo, &a.ids, &a.filter)?;
    let index = repo.load_index()?;
    let s = floe_engine::snapshot_stats(&repo, &index, &snaps)?;
    if g.json {
        output::json(&s)?;
        return Ok(exit::OK);
    }
    output::line(format!("snapshots:     {}", s.snapshots))?;
    output::line(format!(
        "restore size:  {} in {} file(s)",
        output::bytes(s.restore_bytes),
        s.files
    ))?;
    output::line(format!(
        "blobs:         {} holding {} ({} as stored)",
        s.blobs,
        output::bytes(s.raw_bytes),
        output::bytes(s.stored_bytes)
    ))?;
    Ok(exit::OK)
}

pub fn run(g: &GlobalArgs, a: Args) -> anyhow::Result<u8> {
    if !a.ids.is_empty() || !a.filter.is_empty() {
        return of_snapshots(g, &a);
    }
    let backend = crate::repo::existing_backend(g)?;
    let prices = crate::thaw::load_prices(a.prices.as_deref())?;
    let stats = floe_engine::tier_stats(backend.as_ref(), &prices)?;
    output::summary(
        &serde_json::json!({ "stats": stats, "prices": prices }),
        g.json,
    )?;
    if g.json {
        return Ok(exit::OK);
    }
    if !a.tiers {
        let mut by_folder: std::collections::BTreeMap<&str, (u64, u64)> = Default::default();
        for r in &stats.rows {
            let e = by_folder.entry(r.folder.as_str()).or_default();
            e.0 += r.objects;
            e.1 += r.bytes;
        }
        for (folder, (n, b)) in by_folder {
            output::line(format!(
                "{folder:<10} {n:>8} object(s) {:>12}",
                output::bytes(b)
            ))?;
        }
        return Ok(exit::OK);
    }
    output::line(format!(
        "{:<10} {:<20} {:>9} {:>12} {:>12}",
        "folder", "class", "objects", "bytes", "USD/month"
    ))?;
    for r in &stats.rows {
        output::line(format!(
            "{:<10} {:<20} {:>9} {:>12} {:>12}",
            r.folder,
            r.class,
            r.objects,
            output::bytes(r.bytes),
            r.monthly_usd.map_or("-".to_string(), |c| format!("{c:.4}"))
        ))?;
    }
    output::line(format!(
        "storage: about ${:.4} per month ({})",
        stats.monthly_usd, stats.prices_as_of
    ))?;
    for t in &stats.restore_all {
        if t.packs == 0 {
            continue;
        }
        output::line(format!(
            "thawing all {} archived pack(s) ({}) with the {} tier: {}, {}",
            t.packs,
            output::bytes(t.bytes),
            t.tier,
            t.cost_usd
                .map_or("not available for every class".to_string(), |c| format!(
                    "about ${c:.2}"
                )),
            t.wait
        ))?;
    }
    if stats.restore_all.iter().all(|t| t.packs == 0) {
        output::line("nothing is archived: every object is readable at once")?;
    }
    Ok(exit::OK)
}
