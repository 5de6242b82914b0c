//! `floe diff`

use std::path::PathBuf;

use floe_engine::{ChangeKind, Node, NodeKind, Tree};

use crate::{exit, output, GlobalArgs};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The older snapshot (id, unique prefix or `latest`), optionally with `:SUBPATH`
    #[arg(value_name = "SNAPSHOT1[:SUBPATH]", value_parser = crate::args::lossy())]
    first: String,
    /// The newer snapshot, optionally with `:SUBPATH`
    #[arg(value_name = "SNAPSHOT2[:SUBPATH]", value_parser = crate::args::lossy())]
    second: String,
    /// Also list entries whose mode, owner, modification time or extended attributes alone changed
    #[arg(long)]
    metadata: bool,
    /// Filters that choose what `latest` means
    #[command(flatten)]
    filter: crate::select::SnapshotFilter,
}

#[derive(serde::Serialize)]
struct JsonChange<'a> {
    change: ChangeKind,
    path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    old: Option<output::EntryJson<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    new: Option<output::EntryJson<'a>>,
    /// For a metadata change: what changed (`mode`, `owner`, `mtime`, `xattrs`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    changed: Vec<&'static str>,
}

#[derive(serde::Serialize)]
struct JsonTotals<'a> {
    totals: &'a floe_engine::DiffStats,
}

/// One side: the snapshot's folder at SUBPATH (with its own entry, except for the root), or
/// the single entry found there.
enum Side {
    Folder(Tree, Option<Box<Node>>),
    Entry(Box<Node>),
}

fn side(
    repo: &floe_engine::Repository,
    index: &floe_engine::Index,
    spec: &str,
    filter: &crate::select::SnapshotFilter,
) -> anyhow::Result<(Side, String)> {
    let (snap, sub) = crate::repo::find_snapshot_path(repo, spec, None, filter)?;
    let (node, tree) = floe_engine::resolve(repo, index, &snap.snapshot, &sub)
        .map_err(|e| crate::repo::hint_relative(e, &sub))?;
    Ok(match (node, tree) {
        (None, Some(t)) => (Side::Folder(t, None), sub),
        (Some(n), Some(t)) if n.kind == NodeKind::Dir => (Side::Folder(t, Some(Box::new(n))), sub),
        (Some(n), _) => (Side::Entry(Box::new(n)), sub),
        (None, None) => (Side::Folder(Tree::default(), None), sub),
    })
}

fn snapshot_path(sub: &str) -> PathBuf {
    let mut p = PathBuf::from("/");
    for c in sub.split('/').filter(|c| !c.is_empty() && *c != ".") {
        p.push(c);
    }
    p
}

pub fn run(g: &GlobalArgs, a: Args) -> anyhow::Result<u8> {
    let repo = crate::repo::open(g)?;
    let _lock = crate::repo::read_lock(g, &repo, "diff")?;
    let index = repo.load_index()?;
    let (first, _) = side(&repo, &index, &a.first, &a.filter)?;
    let (second, sub) = side(&repo, &index, &a.second, &a.filter)?;
    let mut at = snapshot_path(&sub);
    // Two folders: compare what they hold. Otherwise compare the two entries under one name
    // (a folder that became a file is a type change, with the folder's entries removed).
    let (ta, tb) = match (first, second) {
        (Side::Folder(x, _), Side::Folder(y, _)) => (x, y),
        (x, y) => {
            let name = match &y {
                Side::Entry(n) | Side::Folder(_, Some(n)) => n.name.clone(),
                Side::Folder(_, None) => floe_engine::ByteString::from_os(
                    at.file_name().unwrap_or(std::ffi::OsStr::new("/")),
                ),
            };
            at.pop();
            let one = |s: Side| -> Tree {
                match s {
                    Side::Entry(mut n) | Side::Folder(_, Some(mut n)) => {
                        n.name = name.clone();
                        Tree { nodes: vec![*n] }
                    }
                    // The whole snapshot against a file: its entries count as added or removed.
                    Side::Folder(t, None) => t,
                }
            };
            (one(x), one(y))
        }
    };
    let show_meta = a.metadata;
    let json = g.json;
    let stats = floe_engine::diff_trees(&repo, &index, &ta, &tb, &at, |kind, path, old, new| {
        if kind == ChangeKind::Metadata && !show_meta {
            return Ok(());
        }
        let shown = path.to_string_lossy();
        let changed = match (kind, old, new) {
            (ChangeKind::Metadata, Some(a), Some(b)) => floe_engine::metadata_changes(a, b),
            _ => Vec::new(),
        };
        let r = if json {
            output::json(&JsonChange {
                change: kind,
                path: shown.to_string(),
                old: old.map(|n| output::EntryJson::new(n, &shown)),
                new: new.map(|n| output::EntryJson::new(n, &shown)),
                changed,
            })
            .map_err(|e| std::io::Error::other(e.to_string()))
        } else {
            let dir = new.or(old).is_some_and(|n| n.kind == NodeKind::Dir);
            output::line(format!(
                "{}    {}{}",
                kind.code(),
                shown,
                if dir { "/" } else { "" }
            ))
        };
        r.map_err(|e| floe_engine::Error::io("writing to", "standard output", e))
    })?;
    if json {
        output::json(&JsonTotals { totals: &stats })?;
        return Ok(exit::OK);
    }
    output::line(format!(
        "\n{} added, {} removed, {} modified, {} changed type, {} with only metadata changes",
        stats.added, stats.removed, stats.modified, stats.type_changed, stats.metadata
    ))?;
    output::line(format!(
        "file sizes: {} more, {} less (new files and grown ones; removed files and shrunk ones)",
        output::bytes(stats.bytes_added),
        output::bytes(stats.bytes_removed)
    ))?;
    if stats.suspect > 0 {
        output::line(format!(
            "{} file(s) marked ? changed content but kept their size and modification time: \
             usually a tool that restores times, sometimes silent corruption of the source disk",
            stats.suspect
        ))?;
    }
    Ok(exit::OK)
}
