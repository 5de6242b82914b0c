//! Walking a snapshot's trees: resolving a path inside a snapshot.

use crate::error::{Error, Object, Result};
use crate::format::snapshot::Snapshot;
use crate::format::tree::{Node, NodeKind, Tree};
use crate::id::BlobId;
use crate::repo::index::Index;
use crate::repo::repository::Repository;

/// Every blob, tree and data, reachable from the trees `roots`. A tree that cannot be read is
/// skipped with what lies below it: callers that must report damage walk on their own.
pub fn reachable_blobs(
    repo: &Repository,
    index: &Index,
    roots: &[BlobId],
) -> std::collections::HashSet<BlobId> {
    let mut seen = std::collections::HashSet::new();
    let mut stack: Vec<BlobId> = roots.to_vec();
    while let Some(id) = stack.pop() {
        if !seen.insert(id) {
            continue;
        }
        let Ok(tree) = repo.load_tree(index, &id) else {
            continue;
        };
        for node in &tree.nodes {
            seen.extend(node.content.iter().flatten().copied());
            stack.extend(node.subtree.filter(|_| node.kind == NodeKind::Dir));
        }
    }
    seen
}

/// Resolves `subpath` inside a snapshot: the node found (`None` for the root, when `subpath` is
/// empty or `/`) and, when it is a folder (or the root), its tree. A path that continues below a
/// file is not found.
pub fn resolve(
    repo: &Repository,
    index: &Index,
    snap: &Snapshot,
    subpath: &str,
) -> Result<(Option<Node>, Option<Tree>)> {
    let mut tree = repo.load_tree(index, &snap.tree)?;
    let comps: Vec<&str> = subpath
        .split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect();
    let mut node: Option<Node> = None;
    for (i, c) in comps.iter().enumerate() {
        let n = named(&tree, c)
            .cloned()
            .ok_or_else(|| Error::PathNotFound(subpath.to_string()))?;
        if n.kind == NodeKind::Dir {
            let id = n
                .subtree
                .ok_or_else(|| Error::corrupt(Object::BlobId(snap.tree), "folder without tree"))?;
            tree = repo.load_tree(index, &id)?;
        } else if i + 1 != comps.len() {
            return Err(Error::PathNotFound(subpath.to_string()));
        }
        node = Some(n);
    }
    let is_dir = node.as_ref().is_none_or(|n| n.kind == NodeKind::Dir);
    Ok((node, is_dir.then_some(tree)))
}

/// The entry of `tree` named `name`: by its bytes, else the one entry whose name, not UTF-8,
/// shows as `name` with U+FFFD in place of its invalid bytes (as listings print it, and as a
/// command line that is not UTF-8 arrives).
fn named<'a>(tree: &'a Tree, name: &str) -> Option<&'a Node> {
    if let Some(n) = tree.get(name.as_bytes()) {
        return Some(n);
    }
    if !name.contains(char::REPLACEMENT_CHARACTER) {
        return None;
    }
    let mut lossy = tree
        .nodes
        .iter()
        .filter(|n| String::from_utf8_lossy(&n.name.0) == name);
    match (lossy.next(), lossy.next()) {
        (Some(n), None) => Some(n),
        _ => None,
    }
}
