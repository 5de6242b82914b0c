//! `floe ls`

use std::path::{Path, PathBuf};

use floe_engine::{Index, NodeKind, Repository, Tree};

use crate::{exit, output, GlobalArgs};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Snapshot id (or a unique prefix) or `latest`
    snapshot: String,
    /// List only below this path
    path: Option<String>,
    /// Show type, mode, owner, size and modification time
    #[arg(short, long)]
    long: bool,
    /// Print one JSON object per entry
    #[arg(long)]
    json: bool,
}

#[derive(serde::Serialize)]
struct JsonEntry<'a> {
    path: String,
    #[serde(rename = "type")]
    kind: NodeKind,
    mode: u32,
    size: u64,
    uid: u32,
    gid: u32,
    mtime: &'a chrono::DateTime<chrono::Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    link_target: Option<String>,
}

fn type_char(k: NodeKind) -> char {
    match k {
        NodeKind::File => '-',
        NodeKind::Dir => 'd',
        NodeKind::Symlink => 'l',
        NodeKind::Fifo => 'p',
        NodeKind::Chardev => 'c',
        NodeKind::Blockdev => 'b',
        NodeKind::Socket => 's',
    }
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
                output::json(&JsonEntry {
                    path: shown.to_string(),
                    kind: n.kind,
                    mode: n.mode,
                    size: n.size,
                    uid: n.uid,
                    gid: n.gid,
                    mtime: &n.mtime,
                    link_target: n.link_target.as_ref().map(|t| t.lossy().into_owned()),
                })?;
            } else if self.long {
                let link = n
                    .link_target
                    .as_ref()
                    .map(|t| format!(" -> {}", t.lossy()))
                    .unwrap_or_default();
                output::line(format!(
                    "{}{:04o} {:>8} {:>8} {:>12} {} {}{}",
                    type_char(n.kind),
                    n.mode,
                    n.user.clone().unwrap_or_else(|| n.uid.to_string()),
                    n.group.clone().unwrap_or_else(|| n.gid.to_string()),
                    n.size,
                    n.mtime.format("%Y-%m-%d %H:%M:%S"),
                    shown,
                    link
                ))?;
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
    let _lock = crate::repo::lock(g, &repo, false, "ls")?;
    let snap = repo.find_snapshot(&a.snapshot)?;
    let index = repo.load_index()?;
    let sub = a.path.unwrap_or_default();
    let mut at = PathBuf::from("/");
    for c in sub.split('/').filter(|c| !c.is_empty() && *c != ".") {
        at.push(c);
    }
    let tree = match floe_engine::resolve(&repo, &index, &snap.snapshot, &sub)? {
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
        json: a.json,
    };
    lister.walk(&tree, &at)?;
    Ok(exit::OK)
}
