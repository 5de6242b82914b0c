//! `floe find`

use floe_engine::{BlobId, FindOptions, PackId, SnapshotEntry};

use crate::{exit, output, GlobalArgs};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Name pattern (`*.pdf`), path pattern (`/home/*/notes.txt`, `src/*.rs`); `**` crosses
    /// folders. An entry matching any pattern (or --blob, --pack) is shown
    #[arg(value_name = "PATTERN", value_parser = crate::args::lossy())]
    patterns: Vec<String>,
    /// Search only this snapshot (id, unique prefix or `latest`; repeatable); default: all
    #[arg(short, long = "snapshot", value_name = "ID")]
    snapshots: Vec<String>,
    #[command(flatten)]
    filter: crate::select::SnapshotFilter,
    /// Files whose content includes this blob, folders whose tree is this blob (repeatable)
    #[arg(long = "blob", value_name = "ID")]
    blobs: Vec<BlobId>,
    /// Files with content in this pack, e.g. one that check reported damaged (repeatable)
    #[arg(long = "pack", value_name = "ID")]
    packs: Vec<PackId>,
    /// Show type, mode, owner, size and modification time
    #[arg(short, long)]
    long: bool,
}

#[derive(serde::Serialize)]
struct JsonMatch<'a> {
    snapshot: String,
    time: &'a chrono::DateTime<chrono::FixedOffset>,
    hostname: &'a str,
    #[serde(flatten)]
    entry: output::EntryJson<'a>,
}

pub fn run(g: &GlobalArgs, a: Args) -> anyhow::Result<u8> {
    let repo = crate::repo::open(g)?;
    let (_lock, (all, index)) = crate::repo::read_locked(g, &repo, "find", || {
        let (all, index) =
            floe_engine::both(|| crate::select::readable(&repo), || repo.load_index());
        Ok((all?, index?))
    })?;
    // --host, --tag and --path narrow the snapshots first; `latest` is then the newest of those.
    let mut all = all;
    all.retain(|s| a.filter.selects(s));
    let snaps: Vec<SnapshotEntry> = if a.snapshots.is_empty() {
        all
    } else {
        let mut picked = Vec::new();
        for spec in &a.snapshots {
            let s = floe_engine::pick_snapshot(&all, spec)?;
            if !picked.iter().any(|p: &SnapshotEntry| p.id == s.id) {
                picked.push(s);
            }
        }
        picked.sort_by(|x, y| x.snapshot.time.cmp(&y.snapshot.time).then(x.id.cmp(&y.id)));
        picked
    };
    let opts = FindOptions {
        patterns: a.patterns,
        blobs: a.blobs,
        packs: a.packs,
    };
    let mut last = None;
    let mut snapshots_with_matches = 0u64;
    let stats = floe_engine::find(&repo, &index, &snaps, &opts, |snap, path, node| {
        let shown = path.to_string_lossy();
        let result = if g.json {
            output::json(&JsonMatch {
                snapshot: snap.id.to_hex(),
                time: &snap.snapshot.time,
                hostname: &snap.snapshot.hostname,
                entry: output::EntryJson::new(node, &shown),
            })
            .map_err(|e| std::io::Error::other(e.to_string()))
        } else {
            let mut r = Ok(());
            if last != Some(snap.id) {
                snapshots_with_matches += 1;
                r = output::line(format!(
                    "snapshot {} of {} on {}:",
                    snap.id.short(),
                    snap.snapshot.time.format("%Y-%m-%d %H:%M:%S %:z"),
                    snap.snapshot.hostname
                ));
            }
            r.and_then(|()| {
                if a.long {
                    output::line(format!("  {}", output::long_entry(node, &shown)))
                } else {
                    output::line(format!("  {shown}"))
                }
            })
        };
        last = Some(snap.id);
        result.map_err(|e| floe_engine::Error::io("writing to", "standard output", e))
    })?;
    for (snap, path, why) in &stats.unreadable {
        eprintln!(
            "error: snapshot {}: {} could not be searched: {why}",
            snap.short(),
            path.display()
        );
    }
    if !g.json {
        if stats.matches == 0 {
            eprintln!("no match in {} snapshot(s)", stats.snapshots);
        } else {
            eprintln!(
                "{} match(es) in {} of {} snapshot(s)",
                stats.matches, snapshots_with_matches, stats.snapshots
            );
        }
    }
    if !stats.unreadable.is_empty() {
        anyhow::bail!(
            "{} folder(s) could not be searched (damaged repository data); `floe check` tells \
             what is damaged",
            stats.unreadable.len()
        );
    }
    Ok(exit::OK)
}
