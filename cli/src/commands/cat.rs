//! `floe cat`: one stored object, decrypted, as JSON (a blob: its bytes).

use std::io::{IsTerminal, Write};

use anyhow::{bail, Context};
use floe_engine::{BlobId, FileType, Repository};

use crate::{exit, output, GlobalArgs};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    object: Object,
}

#[derive(Debug, clap::Subcommand)]
enum Object {
    /// The repository's config
    Config,
    /// A key file (plain JSON: the sealed master key and its KDF parameters)
    Key {
        /// Key id or a unique prefix
        id: String,
    },
    /// A snapshot
    Snapshot {
        /// Snapshot id, a unique prefix, or `latest`
        id: String,
    },
    /// An index file
    Index {
        /// Index file id or a unique prefix
        id: String,
    },
    /// The tree of a folder in a snapshot
    Tree {
        /// Snapshot id (or prefix, or `latest`), optionally with `:PATH` of a folder
        #[arg(value_name = "SNAPSHOT[:PATH]", value_parser = crate::args::lossy())]
        spec: String,
    },
    /// The header of a pack: its blobs, with offsets and lengths
    Pack {
        /// Pack id or a unique prefix
        id: String,
    },
    /// The content of a blob, to standard output (refused on a terminal)
    Blob {
        /// Blob id (all 64 hex digits)
        id: String,
    },
}

/// The one object of `file_type` whose id starts with `prefix`.
pub fn find_id(repo: &Repository, file_type: FileType, prefix: &str) -> anyhow::Result<[u8; 32]> {
    let p = prefix.to_ascii_lowercase();
    if p.is_empty() || !p.bytes().all(|b| b.is_ascii_hexdigit()) {
        bail!("{prefix:?} is not an id: expected hex digits");
    }
    let hits: Vec<[u8; 32]> = repo
        .backend()
        .list(file_type)?
        .into_iter()
        .map(|e| e.id)
        .filter(|id| output::hex(id).starts_with(&p))
        .collect();
    match hits.as_slice() {
        [one] => Ok(*one),
        [] => bail!("no {} matches {prefix:?}", file_type.dir_name()),
        more => bail!(
            "{} objects of {} match {prefix:?}: give more digits",
            more.len(),
            file_type.dir_name()
        ),
    }
}

fn pretty<T: serde::Serialize>(v: &T) -> anyhow::Result<()> {
    output::line(serde_json::to_string_pretty(v)?)?;
    Ok(())
}

fn blob(repo: &Repository, id: &str) -> anyhow::Result<()> {
    let id: BlobId = id.parse().context("a blob id is 64 hex digits")?;
    if std::io::stdout().is_terminal() {
        bail!("a blob is raw bytes: redirect standard output to a file or a pipe");
    }
    let index = repo.load_index()?;
    let bytes = repo.read_blob(&index, &id)?;
    let mut out = std::io::stdout().lock();
    out.write_all(&bytes)?;
    out.flush()?;
    Ok(())
}

pub fn run(g: &GlobalArgs, a: Args) -> anyhow::Result<u8> {
    let repo = crate::repo::open(g)?;
    let _lock = crate::repo::read_lock(g, &repo, "cat")?;
    match a.object {
        Object::Config => pretty(repo.config())?,
        Object::Key { id } => {
            let id = find_id(&repo, FileType::Key, &id)?;
            pretty(&floe_engine::read_key_file(repo.backend().as_ref(), &id)?)?
        }
        Object::Snapshot { id } => {
            let id = repo.find_snapshot(&id)?.id;
            pretty(&repo.load_file::<serde_json::Value>(FileType::Snapshot, id.as_bytes())?)?
        }
        Object::Index { id } => {
            let id = find_id(&repo, FileType::Index, &id)?;
            pretty(&repo.load_file::<serde_json::Value>(FileType::Index, &id)?)?
        }
        Object::Tree { spec } => {
            let filter = crate::select::SnapshotFilter::default();
            let (snap, sub) = crate::repo::find_snapshot_path(&repo, &spec, None, &filter)?;
            let index = repo.load_index()?;
            let resolved = floe_engine::resolve(&repo, &index, &snap.snapshot, &sub)
                .map_err(|e| crate::repo::hint_relative(e, &sub))?;
            match resolved {
                (_, Some(tree)) => pretty(&tree)?,
                (_, None) => bail!("{sub:?} is not a folder: only folders have trees"),
            }
        }
        Object::Pack { id } => {
            let packs = repo.list_packs()?;
            let p = id.to_ascii_lowercase();
            let hits: Vec<_> = packs
                .iter()
                .filter(|(i, _)| i.to_hex().starts_with(&p))
                .collect();
            let [(pack, stored)] = hits.as_slice() else {
                bail!("{} packs match {id:?}: give a unique prefix", hits.len());
            };
            pretty(&repo.read_pack_header(stored.blob_type, pack, stored.size)?)?
        }
        Object::Blob { id } => blob(&repo, &id)?,
    }
    Ok(exit::OK)
}
