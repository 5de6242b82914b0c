//! Copying snapshots from one repository into another (`floe copy`).
//!
//! Blob ids are keyed with each repository's id key, so the same content has different ids in
//! the two repositories: a copy reads each data blob it needs from the source, computes its id
//! under the destination's key, and uploads it only when the destination lacks it. Trees are
//! written again with every id translated, children before parents; each copied snapshot keeps
//! time, host, paths and tags and names its source snapshot as `original`.
//!
//! Reading every blob again on each run would make a daily copy as slow as the first one. The
//! planner avoids it with the snapshots copied before: a destination snapshot whose `original`
//! is a source snapshot (or the reverse, after a copy back) has the same folders, files and
//! content lists, with translated ids. Walking a new snapshot beside such a pair gives the
//! destination id of every unchanged folder (not opened at all) and of the blobs of every file
//! whose content list the pair shows; only new content is read.
//!
//! A run is planned first ([`plan`], which reads trees only), so that the caller can show it
//! or thaw the archived data packs it needs, then carried out ([`execute`]).

mod transfer;

use std::collections::{BTreeSet, HashMap, HashSet};

use crate::error::{Error, Result};
use crate::format::index_file::IndexFile;
use crate::format::snapshot::SnapshotEntry;
use crate::format::tree::{Node, Tree};
use crate::id::{BlobId, PackId, SnapshotId};
use crate::repo::index::Index;
use crate::repo::repository::Repository;

pub use transfer::{execute, CopyOptions, CopyReport};

/// What a copy will do.
#[derive(Debug)]
pub struct CopyPlan {
    /// Source snapshots to copy, oldest first.
    pub snapshots: Vec<SnapshotEntry>,
    /// Source snapshots the destination has already: (source id, destination id).
    pub present: Vec<(SnapshotId, SnapshotId)>,
    /// Data blobs to read from the source (their ids under the destination's key are not known
    /// yet), and their stored bytes.
    pub blobs_to_read: usize,
    /// Stored bytes of those.
    pub bytes_to_read: u64,
    /// Plaintext bytes of those.
    pub plain_bytes_to_read: u64,
    /// Source folders to write again under the destination's ids.
    pub trees_to_translate: usize,
    /// Packs an interrupted run left in the destination, named by no index: the copy adds them
    /// to the index first, so that what landed is not uploaded again.
    pub leftover_packs: usize,
    /// Source ids whose destination ids are known, for blobs the destination holds.
    known: HashMap<BlobId, BlobId>,
    /// Source trees to translate, children before parents.
    trees: Vec<BlobId>,
    /// Source data blobs to read.
    data: Vec<BlobId>,
    /// Index of the leftover packs.
    leftovers: IndexFile,
    /// The destination's index, with the leftover packs.
    dest_index: Index,
}

impl CopyPlan {
    /// The source data packs the copy reads (for a thaw plan).
    pub fn source_packs(&self, src_index: &Index) -> BTreeSet<PackId> {
        self.data
            .iter()
            .filter_map(|b| src_index.get(b).map(|l| l.pack))
            .collect()
    }

    /// True when there is nothing to copy.
    pub fn is_empty(&self) -> bool {
        self.snapshots.is_empty()
    }
}

/// The source snapshot a destination snapshot was copied from, or the reverse: `(source,
/// destination)` pairs. A copy rewritten or repaired since still pairs (the destination has
/// the snapshot: it is not copied again), but see [`exact`].
fn pairs(sources: &[SnapshotEntry], dest: &[SnapshotEntry]) -> Vec<(SnapshotEntry, SnapshotEntry)> {
    let by_id: HashMap<SnapshotId, &SnapshotEntry> = sources.iter().map(|s| (s.id, s)).collect();
    let mut out = Vec::new();
    for d in dest {
        if let Some(s) = d.snapshot.original.and_then(|o| by_id.get(&o)) {
            out.push(((*s).clone(), d.clone()));
        }
    }
    for s in sources {
        if let Some(d) = dest.iter().find(|d| s.snapshot.original == Some(d.id)) {
            out.push((s.clone(), d.clone()));
        }
    }
    out
}

/// A destination snapshot that is another copy of the snapshot `s` is a copy of (both name the
/// same `original`, with the same time and tags): copies made through a third repository. It
/// counts as present, but is no reference for the walk.
fn sibling<'d>(s: &SnapshotEntry, dest: &'d [SnapshotEntry]) -> Option<&'d SnapshotEntry> {
    let origin = s.snapshot.original?;
    dest.iter().find(|d| {
        d.snapshot.original == Some(origin)
            && d.snapshot.time == s.snapshot.time
            && d.snapshot.tags == s.snapshot.tags
    })
}

/// True when the copy in a pair still has the tree the copy wrote: its folders are exact
/// translations of the other side's, and may stand for them.
fn exact((s, d): &(SnapshotEntry, SnapshotEntry)) -> bool {
    let copy = if d.snapshot.original == Some(s.id) {
        &d.snapshot
    } else {
        &s.snapshot
    };
    copy.copied_tree == Some(copy.tree)
}

/// The copied pair to walk beside `s`: the latest of the same host and paths, else the latest.
fn reference<'p>(
    s: &SnapshotEntry,
    pairs: &'p [(SnapshotEntry, SnapshotEntry)],
) -> Option<&'p (SnapshotEntry, SnapshotEntry)> {
    let latest = |it: &mut dyn Iterator<Item = &'p (SnapshotEntry, SnapshotEntry)>| {
        it.max_by_key(|(src, _)| src.snapshot.time)
    };
    latest(&mut pairs.iter().filter(|p| {
        exact(p)
            && p.0
                .snapshot
                .same_source(&s.snapshot.hostname, &s.snapshot.paths)
    }))
    .or_else(|| latest(&mut pairs.iter().filter(|p| exact(p))))
}

/// Plans copying `chosen` (source snapshots) from `src` into `dest`. Reads source and
/// destination trees, no data.
pub fn plan(
    src: &Repository,
    src_index: &Index,
    dest: &Repository,
    mut dest_index: Index,
    chosen: Vec<SnapshotEntry>,
) -> Result<CopyPlan> {
    if src.config().id == dest.config().id {
        return Err(Error::InvalidOptions(
            "the source and the destination are the same repository".into(),
        ));
    }
    let leftovers = transfer::leftover_packs(dest, &dest_index)?;
    dest_index.add_file(&leftovers);
    dest_index.finish();
    // A damaged snapshot on either side pairs with nothing: the source's is not copied (the
    // caller chose from what reads back), and one whose copy is damaged is copied again.
    let dest_snaps = dest.snapshots_present()?;
    let pairs = pairs(&src.snapshots_present()?, &dest_snaps);
    let mut walker = Walker {
        src,
        src_index,
        dest,
        dest_index: &dest_index,
        known: HashMap::new(),
        planned: HashSet::new(),
        trees: Vec::new(),
        data: Vec::new(),
        wanted: HashSet::new(),
    };
    let (mut snapshots, mut present) = (Vec::new(), Vec::new());
    for s in chosen {
        let paired = pairs.iter().find(|(src, _)| src.id == s.id).map(|(_, d)| d);
        match paired.or_else(|| sibling(&s, &dest_snaps)) {
            Some(d) => present.push((s.id, d.id)),
            None => snapshots.push(s),
        }
    }
    snapshots.sort_by_key(|s| s.snapshot.time);
    for s in &snapshots {
        let r = reference(s, &pairs).map(|(a, b)| (a.snapshot.tree, b.snapshot.tree));
        walker.walk(s.snapshot.tree, r)?;
    }
    let (mut bytes, mut plain) = (0, 0);
    for b in &walker.data {
        let e = src_index.get(b).ok_or(Error::MissingBlob(*b))?.entry;
        bytes += u64::from(e.length);
        plain += u64::from(e.uncompressed_length);
    }
    Ok(CopyPlan {
        blobs_to_read: walker.data.len(),
        bytes_to_read: bytes,
        plain_bytes_to_read: plain,
        trees_to_translate: walker.trees.len(),
        leftover_packs: leftovers.packs.len(),
        known: walker.known,
        trees: walker.trees,
        data: walker.data,
        snapshots,
        present,
        leftovers,
        dest_index,
    })
}

/// Walks source trees beside a copied pair, learning destination ids and listing what must be
/// read and translated.
struct Walker<'a> {
    src: &'a Repository,
    src_index: &'a Index,
    dest: &'a Repository,
    dest_index: &'a Index,
    known: HashMap<BlobId, BlobId>,
    /// Source trees walked already.
    planned: HashSet<BlobId>,
    trees: Vec<BlobId>,
    data: Vec<BlobId>,
    wanted: HashSet<BlobId>,
}

impl Walker<'_> {
    /// True when the destination holds the translation of source blob `id`.
    fn held(&self, id: &BlobId) -> bool {
        self.known
            .get(id)
            .is_some_and(|d| self.dest_index.contains(d))
    }

    /// Plans source tree `id`, with `pair` its counterpart (source tree, destination tree) in
    /// a copied pair, when there is one.
    fn walk(&mut self, id: BlobId, pair: Option<(BlobId, BlobId)>) -> Result<()> {
        if let Some((s, d)) = pair {
            if s == id && self.dest_index.contains(&d) {
                self.known.insert(id, d);
            }
        }
        if self.held(&id) || !self.planned.insert(id) {
            return Ok(());
        }
        let tree = self.src.load_tree(self.src_index, &id)?;
        let (ref_src, ref_dest) = self.load_pair(pair)?;
        let ref_src = by_name(&ref_src);
        let ref_dest = by_name(&ref_dest);
        for node in &tree.nodes {
            let name = node.name.0.as_slice();
            let (s, d) = (ref_src.get(name), ref_dest.get(name));
            if let Some(sub) = node.subtree {
                let child = s.and_then(|s| s.subtree).zip(d.and_then(|d| d.subtree));
                self.walk(sub, child)?;
            }
            if let (Some(s), Some(d)) = (s, d) {
                self.learn(s, d);
            }
            for b in node.content.iter().flatten() {
                if !self.held(b) && self.wanted.insert(*b) {
                    self.data.push(*b);
                }
            }
        }
        self.trees.push(id);
        Ok(())
    }

    /// The trees of a copied pair, when both can be read (a damaged destination tree only
    /// means more is read from the source).
    fn load_pair(&self, pair: Option<(BlobId, BlobId)>) -> Result<(Tree, Tree)> {
        let Some((s, d)) = pair else {
            return Ok(Default::default());
        };
        if !self.dest_index.contains(&d) || !self.src_index.contains(&s) {
            return Ok(Default::default());
        }
        match self.dest.load_tree(self.dest_index, &d) {
            Ok(dt) => Ok((self.src.load_tree(self.src_index, &s)?, dt)),
            Err(Error::Corrupt { .. }) => Ok(Default::default()),
            Err(e) => Err(e),
        }
    }

    /// Learns the destination ids of a file's content from a copied pair: the same file in
    /// both, of the same size and number of blobs (a repaired copy truncates damaged files, so
    /// its lists are shorter and teach nothing).
    fn learn(&mut self, s: &Node, d: &Node) {
        let (Some(sc), Some(dc)) = (&s.content, &d.content) else {
            return;
        };
        if s.size != d.size || sc.len() != dc.len() || s.kind != d.kind {
            return;
        }
        for (a, b) in sc.iter().zip(dc) {
            self.known.insert(*a, *b);
        }
    }
}

fn by_name(t: &Tree) -> HashMap<&[u8], &Node> {
    t.nodes.iter().map(|n| (n.name.0.as_slice(), n)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::restore::{restore, RestoreOptions};
    use crate::testing::{backup_dir, entry, memory_repo, noise, write_files};

    fn copy_all(src: &Repository, dest: &Repository) -> (CopyPlan, CopyReport) {
        let src_index = src.load_index().unwrap();
        let chosen = src.snapshots().unwrap();
        let p = plan(src, &src_index, dest, dest.load_index().unwrap(), chosen).unwrap();
        let shown = CopyPlan {
            snapshots: p.snapshots.clone(),
            present: p.present.clone(),
            known: HashMap::new(),
            trees: Vec::new(),
            data: Vec::new(),
            leftovers: IndexFile::default(),
            dest_index: Index::new(),
            ..p
        };
        let report = execute(src, &src_index, dest, p, &CopyOptions::default()).unwrap();
        (shown, report)
    }

    fn restored(repo: &Repository, id: SnapshotId, dir: &std::path::Path) {
        let index = repo.load_index().unwrap();
        let opts = RestoreOptions {
            target: dir.to_path_buf(),
            ..Default::default()
        };
        restore(repo, &index, &entry(repo, id).snapshot, "", &opts).unwrap();
    }

    fn file(dir: &std::path::Path, src: &std::path::Path, name: &str) -> Vec<u8> {
        let rel = src.strip_prefix("/").unwrap().join(name);
        std::fs::read(dir.join(rel)).unwrap()
    }

    #[test]
    fn a_copy_restores_the_same_bytes_and_a_second_copy_adds_nothing() {
        let (src, dest) = (memory_repo(), memory_repo());
        let dir = tempfile::tempdir().unwrap();
        let big = noise(3, 3_000_000);
        write_files(dir.path(), &[("big", &big), ("d/small", b"hello")]);
        let sid = backup_dir(&src, dir.path(), &["daily"]);

        let (p, r) = copy_all(&src, &dest);
        assert_eq!(p.snapshots.len(), 1);
        assert_eq!(r.copied.len(), 1);
        assert!(r.data_blobs_added >= 2, "{r:?}");
        assert_eq!(r.data_blobs_present, 0);
        let (from, to) = r.copied[0];
        assert_eq!(from, sid);
        let copied = entry(&dest, to).snapshot;
        let original = entry(&src, sid).snapshot;
        assert_eq!(copied.original, Some(sid));
        assert_eq!(
            (copied.time, &copied.hostname, &copied.paths, &copied.tags),
            (
                original.time,
                &original.hostname,
                &original.paths,
                &original.tags
            )
        );
        assert_ne!(copied.tree, original.tree, "ids are keyed per repository");

        let out = tempfile::tempdir().unwrap();
        restored(&dest, to, out.path());
        assert_eq!(file(out.path(), dir.path(), "big"), big);
        assert_eq!(file(out.path(), dir.path(), "d/small"), b"hello");

        let (again, r2) = copy_all(&src, &dest);
        assert!(again.is_empty());
        assert_eq!(again.present, vec![(sid, to)]);
        assert_eq!((r2.copied.len(), r2.snapshots_present), (0, 1));
        let (back, _) = copy_all(&dest, &src);
        assert!(back.is_empty(), "copying a copy back copies nothing");
    }

    #[test]
    fn a_later_copy_reads_only_what_changed_since_the_copied_snapshot() {
        let (src, dest) = (memory_repo(), memory_repo());
        let dir = tempfile::tempdir().unwrap();
        let files: Vec<(String, Vec<u8>)> = (0..20)
            .map(|i| (format!("sub{}/f{i}", i % 4), noise(i, 40_000)))
            .collect();
        let refs: Vec<(&str, &[u8])> = files
            .iter()
            .map(|(n, b)| (n.as_str(), b.as_slice()))
            .collect();
        write_files(dir.path(), &refs);
        backup_dir(&src, dir.path(), &[]);
        copy_all(&src, &dest);

        write_files(dir.path(), &[("sub1/new", &noise(99, 50_000))]);
        let second = backup_dir(&src, dir.path(), &[]);
        let (p, r) = copy_all(&src, &dest);
        assert_eq!(p.snapshots.len(), 1);
        assert_eq!(p.blobs_to_read, 1, "only the new file's one chunk is read");
        // sub1 and the folders above it change; sub0, sub2 and sub3 are taken as they are.
        let changed = dir.path().components().count() + 1;
        assert_eq!(p.trees_to_translate, changed);
        assert_eq!(r.data_blobs_added, 1);
        assert_eq!(r.tree_blobs_added as usize, changed);
        let out = tempfile::tempdir().unwrap();
        restored(&dest, r.copied[0].1, out.path());
        assert_eq!(file(out.path(), dir.path(), "sub1/new"), noise(99, 50_000));
        assert_eq!(file(out.path(), dir.path(), "sub2/f2"), noise(2, 40_000));
        assert_eq!(r.copied[0].0, second);
    }

    #[test]
    fn a_copy_rewritten_since_is_not_taken_for_a_translation_of_its_source() {
        let (src, dest) = (memory_repo(), memory_repo());
        let dir = tempfile::tempdir().unwrap();
        write_files(
            dir.path(),
            &[("keep", &noise(1, 50_000)), ("sub/secret", b"s")],
        );
        backup_dir(&src, dir.path(), &[]);
        copy_all(&src, &dest);
        // The copy loses a file in the destination; its original keeps it.
        let index = dest.load_index().unwrap();
        let excludes = ["secret".to_string()];
        let plan = crate::ops::rewrite::plan(&dest, &index, dest.snapshots().unwrap(), &excludes);
        let lock = crate::repo::lock::LockHealth::unlocked();
        crate::ops::rewrite::execute(&dest, &index, plan.unwrap(), true, &lock).unwrap();
        write_files(dir.path(), &[("new", b"n")]);
        let second = backup_dir(&src, dir.path(), &[]);
        let (p, r) = copy_all(&src, &dest);
        assert_eq!(
            p.present.len(),
            1,
            "the rewritten copy still stands for its original"
        );
        let out = tempfile::tempdir().unwrap();
        restored(&dest, r.copied[0].1, out.path());
        // sub/ is unchanged in the source: the rewritten copy of it must not stand for it.
        assert_eq!(file(out.path(), dir.path(), "sub/secret"), b"s");
        assert_eq!(r.copied[0].0, second);
    }

    #[test]
    fn data_the_destination_holds_already_is_read_but_not_added() {
        let (src, dest) = (memory_repo(), memory_repo());
        let dir = tempfile::tempdir().unwrap();
        write_files(dir.path(), &[("a", &noise(5, 100_000))]);
        backup_dir(&src, dir.path(), &[]);
        backup_dir(&dest, dir.path(), &[]);
        let (_, r) = copy_all(&src, &dest);
        assert_eq!(r.data_blobs_read, 1);
        assert_eq!((r.data_blobs_present, r.data_blobs_added), (1, 0));
    }

    #[test]
    fn copies_of_one_snapshot_made_through_another_repository_are_the_same_snapshot() {
        let (a, b, c) = (memory_repo(), memory_repo(), memory_repo());
        let dir = tempfile::tempdir().unwrap();
        write_files(dir.path(), &[("f", b"x")]);
        backup_dir(&a, dir.path(), &[]);
        copy_all(&a, &b);
        copy_all(&a, &c);
        let (p, _) = copy_all(&c, &b);
        assert!(p.is_empty() && p.present.len() == 1, "{:?}", p.present);
        // A tag changed since makes it another snapshot, as restic counts it.
        let change = crate::ops::tag::TagChange {
            add: vec!["kept".into()],
            remove: vec![],
            set: None,
        };
        let t = crate::ops::tag::plan(c.snapshots().unwrap(), &change).unwrap();
        let lock = crate::repo::lock::LockHealth::unlocked();
        crate::ops::tag::execute(&c, t, &lock).unwrap();
        let (p, _) = copy_all(&c, &b);
        assert_eq!(p.snapshots.len(), 1, "{:?}", p.present);
    }

    #[test]
    fn a_repository_is_not_copied_into_itself() {
        let src = memory_repo();
        let index = src.load_index().unwrap();
        let err = plan(&src, &index, &src, src.load_index().unwrap(), vec![]).unwrap_err();
        assert!(err.to_string().contains("same repository"), "{err}");
    }
}
