//! `floe ls`

use std::path::{Path, PathBuf};

use floe_engine::{Index, NodeKind, Repository, Tree};

use crate::{exit, output, GlobalArgs};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Snapshot id (or a unique prefix) or `latest`, optionally with `:PATH`
    #[arg(value_name = "SNAPSHOT[:PATH]", value_parser = crate::args::lossy())]
    snapshot: String,
    /// List only below this path (absolute, as listed)
    #[arg(value_parser = crate::args::lossy())]
    path: Option<String>,
    #[command(flatten)]
    filter: crate::select::SnapshotFilter,
    /// Show type, mode, owner, size and modification time
    #[arg(short, long)]
    long: bool,
}

struct Lister<'a> {
    repo: &'a Repository,
    index: &'a Index,
    long: bool,
    json: bool,
}

impl Lister<'_> {
    fn walk(&self, tree: &Tree, at: &Path) -> anyhow::Result<()> {
        for n in &tree.nodes {
            let path = at.join(n.name.as_os());
            let shown = path.to_string_lossy();
            if self.json {
                output::json(&output::EntryJson::new(n, &shown))?;
            } else if self.long {
                output::line(output::long_entry(n, &shown))?;
            } else {
                output::line(&shown)?;
            }
            if let (NodeKind::Dir, Some(id)) = (n.kind, n.subtree) {
                let sub = self.repo.load_tree(self.index, &id)?;
                self.walk(&sub, &path)?;
            }
        }
        Ok(())
    }
}

pub fn run(g: &GlobalArgs, a: Args) -> anyhow::Result<u8> {
    let repo = crate::repo::open(g)?;
    let (_lock, ((snap, sub), index)) = crate::repo::read_locked(g, &repo, "ls", || {
        let (found, index) = floe_engine::both(
            || crate::repo::find_snapshot_path(&repo, &a.snapshot, a.path.as_deref(), &a.filter),
            || repo.load_index(),
        );
        Ok((found?, index?))
    })?;
    let mut at = PathBuf::from("/");
    for c in sub.split('/').filter(|c| !c.is_empty() && *c != ".") {
        at.push(c);
    }
    let resolved = floe_engine::resolve(&repo, &index, &snap.snapshot, &sub)
        .map_err(|e| crate::repo::hint_relative(e, &sub))?;
    let tree = match resolved {
        (_, Some(tree)) => tree,
        // A single entry: list it alone, under its folder.
        (Some(node), None) => {
            at.pop();
            Tree { nodes: vec![node] }
        }
        (None, None) => Tree::default(),
    };
    let lister = Lister {
        repo: &repo,
        index: &index,
        long: a.long,
        json: g.json,
    };
    lister.walk(&tree, &at)?;
    Ok(exit::OK)
}
