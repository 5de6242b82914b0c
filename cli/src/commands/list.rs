//! `floe list`: the ids of the objects of one kind, one a line.

use floe_engine::FileType;

use crate::{exit, output, GlobalArgs};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// What to list
    #[arg(value_enum)]
    kind: Kind,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Kind {
    /// Snapshot files
    Snapshots,
    /// Index files
    Index,
    /// Packs, tree and data
    Packs,
    /// Key files
    Keys,
    /// Lock files
    Locks,
    /// Blobs the index names, as `data ID` or `tree ID`
    Blobs,
}

pub fn run(g: &GlobalArgs, a: Args) -> anyhow::Result<u8> {
    let repo = crate::repo::open(g)?;
    let types: &[FileType] = match a.kind {
        Kind::Snapshots => &[FileType::Snapshot],
        Kind::Index => &[FileType::Index],
        Kind::Packs => &[FileType::TreePack, FileType::DataPack],
        Kind::Keys => &[FileType::Key],
        Kind::Locks => &[FileType::Lock],
        Kind::Blobs => return list_blobs(&repo),
    };
    let mut ids = Vec::new();
    for &t in types {
        ids.extend(repo.backend().list(t)?.iter().map(|e| output::hex(&e.id)));
    }
    ids.sort();
    for id in ids {
        output::line(id)?;
    }
    Ok(exit::OK)
}

/// `list blobs`: each blob of the index as restic lists it, `data ID` or `tree ID`.
fn list_blobs(repo: &floe_engine::Repository) -> anyhow::Result<u8> {
    for (blob_type, id) in repo.indexed_blobs()? {
        output::line(format!("{blob_type} {id}"))?;
    }
    Ok(exit::OK)
}
