//! `floe snapshots`

use crate::{exit, output, GlobalArgs};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print a JSON array on stdout
    #[arg(long)]
    json: bool,
}

#[derive(serde::Serialize)]
struct JsonSnapshot<'a> {
    id: String,
    short_id: String,
    #[serde(flatten)]
    snapshot: &'a floe_engine::Snapshot,
}

pub fn run(g: &GlobalArgs, a: Args) -> anyhow::Result<u8> {
    let repo = crate::repo::open(g)?;
    let snaps = repo.snapshots_present()?;
    if a.json {
        let v: Vec<_> = snaps
            .iter()
            .map(|s| JsonSnapshot {
                id: s.id.to_hex(),
                short_id: s.id.short(),
                snapshot: &s.snapshot,
            })
            .collect();
        output::json(&v)?;
        return Ok(exit::OK);
    }
    output::line(format!(
        "{:<8}  {:<25}  {:<16}  {:<16}  paths",
        "id", "time", "host", "tags"
    ))?;
    for s in &snaps {
        let sn = &s.snapshot;
        let paths: Vec<_> = sn.paths.iter().map(|p| p.lossy().into_owned()).collect();
        output::line(format!(
            "{:<8}  {:<25}  {:<16}  {:<16}  {}",
            s.id.short(),
            sn.time.format("%Y-%m-%d %H:%M:%S %:z"),
            sn.hostname,
            sn.tags.join(","),
            paths.join(" ")
        ))?;
    }
    output::line(format!(
        "{} snapshot{}",
        snaps.len(),
        if snaps.len() == 1 { "" } else { "s" }
    ))?;
    Ok(exit::OK)
}
