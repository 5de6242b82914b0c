//! The sources of a backup: which entries it meets, in the order it stores them, and a lister
//! that reads their metadata ahead of the walker.
//!
//! The lister runs on a thread of its own. It walks the sources depth first, in the order of the
//! snapshot's trees, applies the exclude rules, and for each entry it keeps reads the metadata,
//! the extended attributes and a link's target: every system call of the walk but the reads of
//! file contents. The walker on the other side compares what it gets with the parent snapshot,
//! reads what changed and builds the trees, so the two halves of an unchanged re-backup (system
//! calls, and tree decoding and encoding) run on two cores at once.
//!
//! The walker takes every decision from what the lister sent (which entries exist, which are
//! folders, which folders are marked), so the two cannot disagree on the order.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::fs::{self, File, Metadata};
use std::io;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

use crossbeam_channel::{bounded, Receiver, Sender};

use super::{BackupOptions, SourceError};
use crate::attrs::{self, XattrFilter};
use crate::error::{Error, Result};
use crate::exclude::PathMatcher;
use crate::format::tree::{ByteString, Xattr};

/// Entries the lister may read ahead of the walker: enough to keep it ahead while the walker
/// decodes a large parent tree. Each holds its path, metadata and extended attributes: a few
/// hundred bytes, unless the attributes are large (up to 64 KiB a value).
const LISTED_AHEAD: usize = 1024;
/// The lister's stack: it recurses once per folder level, as deep as paths go.
const LISTER_STACK: usize = 8 << 20;

/// What the lister sends, in the order the walker stores it.
pub(super) enum Listed {
    /// An entry the backup keeps. A folder's entries follow it, then [`Listed::End`].
    Entry(Box<Entry>),
    /// An entry whose metadata, or a folder whose listing, could not be read: left out.
    Failed { path: PathBuf, error: io::Error },
    /// The end of a folder's entries (the last one closes the virtual root).
    End,
}

/// One entry, as the lister read it.
pub(super) struct Entry {
    pub path: PathBuf,
    pub meta: Metadata,
    /// Its extended attributes, allowed by the filter and sorted by name.
    pub xattrs: io::Result<Vec<Xattr>>,
    /// A symbolic link's target.
    pub link: Option<io::Result<PathBuf>>,
    pub role: Role,
}

/// What a folder's entry stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Role {
    /// A file or folder of the sources (a folder's entries follow it).
    Source,
    /// A folder left out by `--exclude-if-present`: only its marker entries follow it, and they
    /// are stored without a parent to compare with.
    Marked,
    /// A folder above the sources (`home` and `ann` of `/home/ann/docs`).
    Above,
}

impl Entry {
    /// Its name in its folder.
    pub fn name(&self) -> &[u8] {
        name_of(&self.path)
    }
}

/// The name of the entry at `path` in its folder (the lister's paths never end in `..`).
pub(super) fn name_of(path: &Path) -> &[u8] {
    path.file_name().map_or(b"", |n| n.as_bytes())
}

/// The walker has gone: the lister stops.
struct Gone;

/// Starts the lister over `root` (from [`prepare_sources`]) on a thread of its own and returns
/// what it sends. It stops when the receiver is dropped.
/// `xattr_values` is false for a repository that records no extended attributes (format
/// version 1): their names alone then tell which entries had some.
pub(super) fn start_lister(
    rules: Rules,
    root: VirtualDir,
    xattr_values: bool,
) -> Result<Receiver<Listed>> {
    let (tx, rx) = bounded(LISTED_AHEAD);
    // Not joined: a lister the walker has left ends at its next send, and one held up in a
    // system call (a hung network mount) must not hold up the end of the backup.
    std::thread::Builder::new()
        .name("floe-lister".into())
        .stack_size(LISTER_STACK)
        .spawn(move || {
            let lister = Lister {
                rules,
                xattr_values,
                tx,
            };
            let _ = lister
                .above(Path::new("/"), &root)
                .and_then(|()| lister.send(Listed::End));
        })
        .map_err(|e| Error::Resource {
            what: "starting the source lister",
            reason: e.to_string(),
        })?;
    Ok(rx)
}

struct Lister {
    rules: Rules,
    xattr_values: bool,
    tx: Sender<Listed>,
}

impl Lister {
    fn send(&self, listed: Listed) -> std::result::Result<(), Gone> {
        self.tx.send(listed).map_err(|_| Gone)
    }

    fn failed(&self, path: &Path, error: io::Error) -> std::result::Result<(), Gone> {
        let path = path.to_path_buf();
        self.send(Listed::Failed { path, error })
    }

    /// The folders above the sources, and the sources below them, in name order.
    fn above(&self, at: &Path, dir: &VirtualDir) -> std::result::Result<(), Gone> {
        for (name, child) in &dir.children {
            let path = at.join(OsStr::from_bytes(name));
            let VirtualChild::Dir(sub) = child else {
                // Excludes apply to the sources themselves too, as in restic: a list of files
                // (`--files-from`) is filtered like a folder's entries.
                if !self.rules.excluded(&path) {
                    self.entry(path, None)?;
                }
                continue;
            };
            match fs::metadata(&path) {
                Ok(meta) => {
                    self.send(self.read(path.clone(), meta, Role::Above))?;
                    self.above(&path, sub)?;
                    self.send(Listed::End)?;
                }
                Err(e) => self.failed(&path, e)?,
            }
        }
        Ok(())
    }

    /// One entry of the sources, and a folder's entries after it. `root_dev` is the device of
    /// the source it is in (none for a source itself).
    fn entry(&self, path: PathBuf, root_dev: Option<u64>) -> std::result::Result<(), Gone> {
        let meta = match fs::symlink_metadata(&path) {
            Ok(m) => m,
            Err(e) => return self.failed(&path, e),
        };
        if !meta.is_dir() {
            if meta.is_file() && self.rules.too_large(&meta) {
                return Ok(());
            }
            return self.send(self.read(path, meta, Role::Source));
        }
        let root_dev = root_dev.unwrap_or(meta.dev());
        let inside = self.rules.inside(&path, &meta, root_dev);
        let role = match inside {
            Inside::Markers(_) => Role::Marked,
            _ => Role::Source,
        };
        self.send(self.read(path.clone(), meta, role))?;
        match inside {
            Inside::Markers(names) => {
                for name in names {
                    self.entry(path.join(name), Some(root_dev))?;
                }
            }
            Inside::Everything => self.folder(&path, root_dev)?,
            Inside::Nothing => {}
        }
        self.send(Listed::End)
    }

    /// A folder's entries in name order, but those excluded.
    fn folder(&self, path: &Path, root_dev: u64) -> std::result::Result<(), Gone> {
        let entries = match fs::read_dir(path) {
            Ok(rd) => rd,
            Err(e) => return self.failed(path, e),
        };
        let mut names = Vec::new();
        for entry in entries {
            match entry {
                Ok(e) => names.push(e.file_name()),
                Err(e) => self.failed(path, e)?,
            }
        }
        names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        for name in names {
            let child = path.join(&name);
            if !self.rules.excluded(&child) {
                self.entry(child, Some(root_dev))?;
            }
        }
        Ok(())
    }

    /// The entry with its attributes and link target read.
    fn read(&self, path: PathBuf, meta: Metadata, role: Role) -> Listed {
        let xattrs = if self.xattr_values {
            attrs::read(&path, &self.rules.xattrs)
        } else {
            attrs::names(&path, &self.rules.xattrs).map(|names| {
                let name_only = |n: OsString| Xattr {
                    name: ByteString(n.into_vec()),
                    value: ByteString::default(),
                };
                names.into_iter().map(name_only).collect()
            })
        };
        let link = meta.is_symlink().then(|| fs::read_link(&path));
        Listed::Entry(Box::new(Entry {
            path,
            meta,
            xattrs,
            link,
            role,
        }))
    }
}

/// The virtual folders above the sources: `/home/ann/docs` becomes `home` → `ann` → `docs`.
#[derive(Debug, Default)]
pub(super) struct VirtualDir {
    children: BTreeMap<Vec<u8>, VirtualChild>,
}

#[derive(Debug)]
enum VirtualChild {
    Source,
    Dir(VirtualDir),
}

impl VirtualDir {
    fn insert(&mut self, components: &[OsString]) {
        let (first, rest) = match components.split_first() {
            Some(x) => x,
            None => return,
        };
        let key = first.as_bytes().to_vec();
        if rest.is_empty() {
            // A source covers everything below it.
            self.children.insert(key, VirtualChild::Source);
            return;
        }
        match self
            .children
            .entry(key)
            .or_insert_with(|| VirtualChild::Dir(VirtualDir::default()))
        {
            VirtualChild::Source => {}
            VirtualChild::Dir(d) => d.insert(rest),
        }
    }
}

/// What a backup leaves out: shared by the walk and by the scan that counts ahead of it.
pub(super) struct Rules {
    excludes: PathMatcher,
    iexcludes: PathMatcher,
    /// Marker entries that exclude their folder: a name, and the header the file must start with.
    markers: Vec<(OsString, Option<Vec<u8>>)>,
    larger_than: Option<u64>,
    one_file_system: bool,
    xattrs: XattrFilter,
}

/// What a backup takes from inside a folder.
enum Inside {
    Everything,
    /// The folder is marked (`--exclude-if-present`): only these marker entries, as restic
    /// keeps them.
    Markers(Vec<OsString>),
    /// On another file system, with `--one-file-system`.
    Nothing,
}

/// A marker of `--exclude-if-present`, `NAME` or `NAME:HEADER`: the name of an entry in the
/// folder itself (`CACHEDIR.TAG`), never a path.
fn marker(m: &str) -> Result<(OsString, Option<Vec<u8>>)> {
    let (name, header) = match m.split_once(':') {
        Some((name, header)) => (name, Some(header.as_bytes().to_vec())),
        None => (m, None),
    };
    if name.is_empty() || name == "." || name == ".." || name.contains('/') {
        return Err(Error::InvalidOptions(format!(
            "--exclude-if-present {m:?}: give the name of an entry in the folder, not a path"
        )));
    }
    Ok((name.into(), header))
}

impl Rules {
    pub(super) fn new(opts: &BackupOptions) -> Result<Self> {
        Ok(Self {
            excludes: PathMatcher::new(&opts.excludes)?,
            iexcludes: PathMatcher::case_insensitive(&opts.iexcludes)?,
            markers: opts
                .exclude_if_present
                .iter()
                .map(|m| marker(m))
                .collect::<Result<_>>()?,
            larger_than: opts.exclude_larger_than,
            one_file_system: opts.one_file_system,
            xattrs: XattrFilter::new(&[], &opts.exclude_xattrs)?,
        })
    }

    /// True when an exclude pattern matches `path`.
    fn excluded(&self, path: &Path) -> bool {
        self.excludes.matches(path) || self.iexcludes.matches(path)
    }

    /// The names of the marker entries of `--exclude-if-present` that folder `dir` holds,
    /// sorted and without duplicates: empty when the folder is not marked.
    fn markers_in(&self, dir: &Path) -> Vec<OsString> {
        let mut found: Vec<OsString> = self
            .markers
            .iter()
            .filter(|(name, header)| {
                let path = dir.join(name);
                match header {
                    None => fs::symlink_metadata(&path).is_ok(),
                    Some(h) => starts_with(&path, h),
                }
            })
            .map(|(name, _)| name.clone())
            .collect();
        found.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        found.dedup();
        found
    }

    /// What a backup takes from inside the folder at `path` (`meta` its metadata), in a source
    /// on device `root_dev`.
    fn inside(&self, path: &Path, meta: &Metadata, root_dev: u64) -> Inside {
        let markers = self.markers_in(path);
        if !markers.is_empty() {
            Inside::Markers(markers)
        } else if self.one_file_system && meta.dev() != root_dev {
            Inside::Nothing
        } else {
            Inside::Everything
        }
    }

    /// True for a regular file above `--exclude-larger-than`.
    fn too_large(&self, meta: &Metadata) -> bool {
        self.larger_than.is_some_and(|limit| meta.size() > limit)
    }
}

/// What a backup of some sources will meet, counted ahead of it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScanTotals {
    /// Regular files.
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
}

/// Counts the regular files and bytes that a backup with `opts` will meet, by a walk that reads
/// no content and leaves out what the backup leaves out. It runs beside the backup, so that a
/// progress display can show totals and an estimate of the time left; entries it cannot read
/// are skipped (the backup reports them).
pub fn scan(opts: &BackupOptions) -> Result<ScanTotals> {
    let rules = Rules::new(opts)?;
    let mut totals = ScanTotals::default();
    let mut sources: Vec<PathBuf> = opts
        .paths
        .iter()
        .filter_map(|p| clean_absolute(p).ok())
        .collect();
    sources.sort();
    // A source inside another is counted with it, as the backup stores it once.
    let mut outer: Option<&Path> = None;
    for s in &sources {
        if outer.is_some_and(|o| s.starts_with(o)) {
            continue;
        }
        outer = Some(s);
        if !rules.excluded(s) {
            scan_entry(&rules, s, None, &mut totals);
        }
    }
    Ok(totals)
}

fn scan_entry(rules: &Rules, path: &Path, root_dev: Option<u64>, totals: &mut ScanTotals) {
    let Ok(meta) = fs::symlink_metadata(path) else {
        return;
    };
    if meta.is_file() && !rules.too_large(&meta) {
        totals.files += 1;
        totals.bytes += meta.size();
        return;
    }
    if !meta.is_dir() {
        return;
    }
    let root_dev = root_dev.unwrap_or(meta.dev());
    let children: Vec<PathBuf> = match rules.inside(path, &meta, root_dev) {
        Inside::Everything => match fs::read_dir(path) {
            Ok(entries) => entries
                .flatten()
                .map(|e| e.path())
                .filter(|child| !rules.excluded(child))
                .collect(),
            Err(_) => return,
        },
        // As the walk lists them: marker entries are never excluded.
        Inside::Markers(names) => names.iter().map(|n| path.join(n)).collect(),
        Inside::Nothing => return,
    };
    for child in children {
        scan_entry(rules, &child, Some(root_dev), totals);
    }
}

/// True when the entry at `path` is a regular file that starts with `header` (a FIFO of that
/// name is never opened: opening it would block).
fn starts_with(path: &Path, header: &[u8]) -> bool {
    if !fs::symlink_metadata(path).is_ok_and(|m| m.is_file()) {
        return false;
    }
    let mut buf = vec![0; header.len()];
    File::open(path)
        .and_then(|mut f| io::Read::read_exact(&mut f, &mut buf))
        .is_ok_and(|()| buf == header)
}

/// The sources that exist, made absolute and lexically clean and sorted, the tree of virtual
/// folders that leads to them (`/home/ann/docs` gives `home` → `ann` → `docs`), and the sources
/// that could not be read.
pub(super) fn prepare_sources(
    opts: &BackupOptions,
) -> Result<(Vec<PathBuf>, VirtualDir, Vec<SourceError>)> {
    if opts.paths.is_empty() {
        return Err(Error::InvalidOptions(
            "nothing to back up: give at least one path".into(),
        ));
    }
    let mut sources = Vec::new();
    let mut missing = Vec::new();
    for p in &opts.paths {
        let abs = clean_absolute(p).map_err(|e| Error::io("resolve", p, e))?;
        match fs::symlink_metadata(&abs) {
            Ok(_) => sources.push(abs),
            Err(e) => missing.push(SourceError {
                path: abs,
                message: e.to_string(),
            }),
        }
    }
    if sources.is_empty() {
        return Err(Error::NoSourceReadable {
            count: opts.paths.len(),
            first: opts.paths[0].clone(),
        });
    }
    sources.sort();
    sources.dedup();
    let mut root = VirtualDir::default();
    for s in &sources {
        let comps: Vec<OsString> = s
            .components()
            .skip(1)
            .map(|c| c.as_os_str().to_owned())
            .collect();
        if comps.is_empty() {
            return Err(Error::InvalidOptions(
                "backing up / itself is not supported: list its folders".into(),
            ));
        }
        root.insert(&comps);
    }
    Ok((sources, root, missing))
}

/// Makes `path` absolute and lexically clean (no `.`, `..` or repeated separators), without
/// following symlinks.
fn clean_absolute(path: &Path) -> io::Result<PathBuf> {
    let abs = std::path::absolute(path)?;
    let mut out = PathBuf::from("/");
    for c in abs.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn components(p: &str) -> Vec<OsString> {
        Path::new(p)
            .components()
            .skip(1)
            .map(|c| c.as_os_str().to_owned())
            .collect()
    }

    #[test]
    fn virtual_dirs_merge_and_nested_sources_collapse() {
        let mut root = VirtualDir::default();
        for p in ["/a/b/c", "/a/b", "/a/x"] {
            root.insert(&components(p));
        }
        let VirtualChild::Dir(a) = &root.children[&b"a".to_vec()] else {
            panic!("a should be virtual")
        };
        assert!(matches!(a.children[&b"b".to_vec()], VirtualChild::Source));
        assert!(matches!(a.children[&b"x".to_vec()], VirtualChild::Source));
    }

    /// What the lister sends for `opts`, one line per message: `+path role` for an entry
    /// (`role` for folders only), `!path` for a failure, `-` for an end.
    fn listed(opts: &BackupOptions) -> Vec<String> {
        let (_, root, _) = prepare_sources(opts).unwrap();
        let rx = start_lister(Rules::new(opts).unwrap(), root, true).unwrap();
        rx.iter()
            .map(|l| match l {
                Listed::Entry(e) if e.meta.is_dir() => {
                    format!("+{} {:?}", e.path.display(), e.role)
                }
                Listed::Entry(e) => format!("+{}", e.path.display()),
                Listed::Failed { path, .. } => format!("!{}", path.display()),
                Listed::End => "-".into(),
            })
            .collect()
    }

    #[test]
    fn the_lister_sends_entries_in_name_order_and_leaves_out_what_the_rules_say() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        fs::create_dir_all(src.join("b/cache")).unwrap();
        fs::create_dir_all(src.join("a")).unwrap();
        fs::write(src.join("b/cache/CACHEDIR.TAG"), "tag").unwrap();
        fs::write(src.join("b/cache/junk"), "junk").unwrap();
        fs::write(src.join("a/big"), vec![0u8; 2000]).unwrap();
        fs::write(src.join("a/small"), "x").unwrap();
        fs::write(src.join("a/skip.tmp"), "x").unwrap();
        std::os::unix::fs::symlink("small", src.join("a/link")).unwrap();
        let opts = BackupOptions {
            paths: vec![src.join("b"), src.join("a"), src.join("gone")],
            excludes: vec!["*.tmp".into()],
            exclude_if_present: vec!["CACHEDIR.TAG".into()],
            exclude_larger_than: Some(1000),
            ..Default::default()
        };
        let s = src.display();
        let above: Vec<String> = src
            .ancestors()
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .skip(1)
            .map(|p| format!("+{} Above", p.display()))
            .collect();
        let mut want = above.clone();
        want.extend([
            format!("+{s}/a Source"),
            format!("+{s}/a/link"),
            format!("+{s}/a/small"),
            "-".into(),
            format!("+{s}/b Source"),
            format!("+{s}/b/cache Marked"),
            format!("+{s}/b/cache/CACHEDIR.TAG"),
            "-".into(),
            "-".into(),
        ]);
        want.extend(above.iter().map(|_| "-".to_string()));
        want.push("-".into());
        assert_eq!(listed(&opts), want);
        // The scan ahead of a backup counts the regular files the lister sends, marker included.
        let totals = scan(&opts).unwrap();
        assert_eq!((totals.files, totals.bytes), (2, 1 + 3));
    }

    #[test]
    fn markers_are_names_not_paths() {
        for bad in ["", ".", "..", "a/b", "/x", "sub/:Signature"] {
            let opts = BackupOptions {
                exclude_if_present: vec![bad.into()],
                ..Default::default()
            };
            let Err(e) = Rules::new(&opts) else {
                panic!("{bad:?} taken as a marker")
            };
            assert!(e.to_string().contains("not a path"), "{bad:?}: {e}");
        }
        let opts = BackupOptions {
            exclude_if_present: vec!["CACHEDIR.TAG:Signature: 8a47".into(), ".nobackup".into()],
            ..Default::default()
        };
        let markers = Rules::new(&opts).unwrap().markers;
        assert_eq!(
            markers[0],
            ("CACHEDIR.TAG".into(), Some(b"Signature: 8a47".to_vec()))
        );
        assert_eq!(markers[1], (".nobackup".into(), None));
    }

    #[test]
    fn clean_paths() {
        assert_eq!(
            clean_absolute(Path::new("/a/./b/../c//d")).unwrap(),
            PathBuf::from("/a/c/d")
        );
    }
}
