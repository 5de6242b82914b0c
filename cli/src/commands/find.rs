//! `floe find`

use floe_engine::{BlobId, FindOptions, PackId, SnapshotEntry};

use crate::{exit, output, GlobalArgs};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Name pattern (`*.pdf`), path pattern (`/home/*/notes.txt`, `src/*.rs`); `**` crosses
    /// folders. An entry matching any pattern (or --blob, --pack) is shown
    #[arg(value_name = "PATTERN")]
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
    /// Print one JSON object per match
    #[arg(long)]
    json: bool,
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
    let _lock = crate::repo::lock(g, &repo, false, "find")?;
    let mut snaps: Vec<SnapshotEntry> = if a.snapshots.is_empty() {
        repo.snapshots()?
    } else {
        a.snapshots
            .iter()
            .map(|s| repo.find_snapshot(s))
            .collect::<Result<_, _>>()?
    };
    snaps.retain(|s| a.filter.selects(s));
    snaps.dedup_by_key(|s| s.id);
    let index = repo.load_index()?;
    let opts = FindOptions {
        patterns: a.patterns,
        blobs: a.blobs,
        packs: a.packs,
    };
    let mut last = None;
    let mut snapshots_with_matches = 0u64;
    let stats = floe_engine::find(&repo, &index, &snaps, &opts, |snap, path, node| {
        let shown = path.to_string_lossy();
        let result = if a.json {
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
    if !a.json {
        if stats.matches == 0 {
            eprintln!("no match in {} snapshot(s)", stats.snapshots);
        } else {
            eprintln!(
                "{} match(es) in {} of {} snapshot(s)",
                stats.matches, snapshots_with_matches, stats.snapshots
            );
        }
    }
    Ok(exit::OK)
}
