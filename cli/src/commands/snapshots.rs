//! `floe snapshots`

use floe_engine::{group_snapshots, GroupBy, GroupKey, SnapshotEntry};

use crate::{exit, output, GlobalArgs};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Show only these snapshots (ids, unique prefixes of ids, or `latest`)
    #[arg(value_name = "ID")]
    ids: Vec<String>,
    /// Show only the latest N snapshots of each group (by host and paths, or by --group-by);
    /// 0 shows all
    #[arg(long, value_name = "N", value_parser = crate::args::parse_count)]
    latest: Option<u32>,
    /// Show snapshots in groups sharing these fields: host, paths, tags (comma-separated)
    #[arg(short = 'g', long, value_name = "FIELDS")]
    group_by: Option<GroupBy>,
    #[command(flatten)]
    filter: crate::select::SnapshotFilter,
}

#[derive(serde::Serialize)]
struct JsonSnapshot<'a> {
    id: String,
    short_id: String,
    #[serde(flatten)]
    snapshot: &'a floe_engine::Snapshot,
}

#[derive(serde::Serialize)]
struct JsonGroup<'a> {
    group_key: &'a GroupKey,
    snapshots: Vec<JsonSnapshot<'a>>,
}

fn json_list(snaps: &[SnapshotEntry]) -> Vec<JsonSnapshot<'_>> {
    snaps
        .iter()
        .map(|s| JsonSnapshot {
            id: s.id.to_hex(),
            short_id: s.id.short(),
            snapshot: &s.snapshot,
        })
        .collect()
}

fn print_table(snaps: &[SnapshotEntry]) -> anyhow::Result<()> {
    output::line(format!(
        "{:<8}  {:<25}  {:<16}  {:<16}  paths",
        "id", "time", "host", "tags"
    ))?;
    for s in snaps {
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
    Ok(())
}

pub fn run(g: &GlobalArgs, a: Args) -> anyhow::Result<u8> {
    let repo = crate::repo::open(g)?;
    let snaps = if a.ids.is_empty() {
        a.filter.snapshots(&repo)?
    } else {
        let mut chosen = crate::select::chosen(&repo, &a.ids, &a.filter)?;
        chosen.sort_by(|x, y| x.snapshot.time.cmp(&y.snapshot.time).then(x.id.cmp(&y.id)));
        chosen
    };
    let by = a.group_by.unwrap_or(if a.latest.is_some() {
        GroupBy {
            host: true,
            paths: true,
            tags: false,
        }
    } else {
        GroupBy::default()
    });
    let mut groups = group_snapshots(snaps, by);
    if let Some(n) = a.latest.filter(|n| *n > 0) {
        for (_, list) in &mut groups {
            let drop = list.len().saturating_sub(n as usize);
            list.drain(..drop);
        }
    }
    let grouped = a.group_by.is_some();
    if g.json {
        if grouped {
            let v: Vec<_> = groups
                .iter()
                .map(|(k, l)| JsonGroup {
                    group_key: k,
                    snapshots: json_list(l),
                })
                .collect();
            output::json(&v)?;
        } else {
            let mut all: Vec<SnapshotEntry> = groups.into_iter().flat_map(|(_, l)| l).collect();
            all.sort_by_key(|s| (s.snapshot.time, s.id));
            output::json(&json_list(&all))?;
        }
        return Ok(exit::OK);
    }
    if grouped {
        for (key, list) in &groups {
            output::line(format!("snapshots of {key}:"))?;
            print_table(list)?;
            output::line("")?;
        }
        return Ok(exit::OK);
    }
    let mut all: Vec<SnapshotEntry> = groups.into_iter().flat_map(|(_, l)| l).collect();
    all.sort_by_key(|s| (s.snapshot.time, s.id));
    print_table(&all)?;
    Ok(exit::OK)
}
