//! Extended attributes on the local file system: read for a backup, written by a restore, and
//! chosen by name patterns (format-spec/format.md, "Extended attributes").
//!
//! Symlinks are never followed. POSIX ACLs travel as their `system.posix_acl_access` and
//! `system.posix_acl_default` attributes, file capabilities as `security.capability`.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use globset::{Glob, GlobSet, GlobSetBuilder};

use crate::error::{Error, Result};
use crate::format::tree::{ByteString, Xattr};

/// Which attribute names to take: those matching an include pattern (all when there is none)
/// and no exclude pattern. Patterns are globs over the whole name (`user.*`, `security.selinux`).
#[derive(Debug, Clone, Default)]
pub struct XattrFilter {
    includes: Option<GlobSet>,
    excludes: Option<GlobSet>,
}

fn glob_set(patterns: &[String]) -> Result<Option<GlobSet>> {
    if patterns.is_empty() {
        return Ok(None);
    }
    let mut b = GlobSetBuilder::new();
    for p in patterns {
        let glob = Glob::new(p).map_err(|e| Error::InvalidPattern {
            pattern: p.clone(),
            reason: e.kind().to_string(),
        })?;
        b.add(glob);
    }
    b.build().map(Some).map_err(|e| Error::InvalidPattern {
        pattern: patterns.join(" "),
        reason: e.kind().to_string(),
    })
}

/// Checks one attribute name pattern, as a filter would take it.
pub fn check_pattern(pattern: &str) -> Result<()> {
    glob_set(&[pattern.to_string()]).map(|_| ())
}

impl XattrFilter {
    /// A filter from include and exclude patterns.
    pub fn new(includes: &[String], excludes: &[String]) -> Result<Self> {
        Ok(Self {
            includes: glob_set(includes)?,
            excludes: glob_set(excludes)?,
        })
    }

    /// True when an attribute of this name is taken.
    pub fn allows(&self, name: &[u8]) -> bool {
        let name = String::from_utf8_lossy(name);
        let name = name.as_ref();
        self.includes.as_ref().is_none_or(|s| s.is_match(name))
            && !self.excludes.as_ref().is_some_and(|s| s.is_match(name))
    }
}

/// True for errors that mean "this file system (or this entry) has no extended attributes".
fn unsupported(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOTSUP))
}

/// The names of the extended attributes of `path` (not following a symlink) that `filter`
/// allows, without reading their values. A file system without attributes gives none.
pub fn names(path: &Path, filter: &XattrFilter) -> io::Result<Vec<OsString>> {
    let names = match xattr::list(path) {
        Ok(names) => names,
        Err(e) if unsupported(&e) => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    Ok(names.filter(|n| filter.allows(n.as_bytes())).collect())
}

/// The extended attributes of `path` (not following a symlink) that `filter` allows, sorted by
/// name. A file system without attributes gives none.
pub fn read(path: &Path, filter: &XattrFilter) -> io::Result<Vec<Xattr>> {
    let mut out = Vec::new();
    for name in names(path, filter)? {
        // An attribute removed between the listing and the read is simply gone.
        if let Some(value) = xattr::get(path, &name)? {
            out.push(Xattr {
                name: ByteString(name.into_vec()),
                value: ByteString(value),
            });
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// The namespace of an attribute name: what comes before the first dot (`user`, `security`).
pub fn namespace(name: &[u8]) -> String {
    let end = name.iter().position(|&b| b == b'.').unwrap_or(name.len());
    String::from_utf8_lossy(&name[..end]).into_owned()
}

/// Attributes only a privileged process may set, whatever the file. Other `security.*`
/// attributes (an SELinux label) may be set by the file's owner when the policy allows it, so
/// they are tried.
fn needs_root(name: &[u8]) -> bool {
    name.starts_with(b"trusted.") || name == b"security.capability"
}

/// Namespaces a restore owns on its files: attributes found there that the snapshot lacks are
/// removed (an ACL inherited from a folder's default ACL, say). Others are left as they are,
/// such as a label the target's security policy gives every new file.
fn owned(namespace: &str, name: &[u8]) -> bool {
    namespace == "user" || name.starts_with(b"system.posix_acl_")
}

/// Attributes a restore could not set, counted by namespace and reason.
#[derive(Debug, Clone, Default)]
pub struct XattrProblems {
    by_kind: BTreeMap<(String, String), (u64, PathBuf)>,
}

/// One kind of attribute that a restore could not set: where, why, how often.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct XattrWarning {
    /// The namespace (`user`, `security`, `trusted`, `system`).
    pub namespace: String,
    /// Why it was not set.
    pub reason: String,
    /// How many attributes were not set for this reason.
    pub count: u64,
    /// The first entry concerned.
    #[serde(serialize_with = "crate::report::lossy_path")]
    pub first_path: PathBuf,
}

impl XattrProblems {
    fn add(&mut self, namespace: String, reason: String, path: &Path) {
        self.by_kind
            .entry((namespace, reason))
            .or_insert_with(|| (0, path.to_path_buf()))
            .0 += 1;
    }

    /// True when nothing went wrong.
    pub fn is_empty(&self) -> bool {
        self.by_kind.is_empty()
    }

    /// Adds the counts of `other` (gathered by another thread).
    pub fn merge(&mut self, other: XattrProblems) {
        for (kind, (count, path)) in other.by_kind {
            self.by_kind.entry(kind).or_insert((0, path)).0 += count;
        }
    }

    /// One warning per kind.
    pub fn warnings(&self) -> Vec<XattrWarning> {
        self.by_kind
            .iter()
            .map(|((ns, reason), (count, path))| XattrWarning {
                namespace: ns.clone(),
                reason: reason.clone(),
                count: *count,
                first_path: path.clone(),
            })
            .collect()
    }
}

fn reason(e: &io::Error, namespace: &str, is_root: bool) -> String {
    match e.raw_os_error() {
        Some(libc::ENOTSUP) => "the target file system does not support them".into(),
        Some(libc::EPERM) | Some(libc::EACCES) if namespace == "security" && !is_root => {
            "restoring them needs root".into()
        }
        Some(libc::EPERM) | Some(libc::EACCES) => "permission denied".into(),
        Some(libc::ENOSPC) | Some(libc::E2BIG) | Some(libc::ERANGE) => {
            "the target file system has no room for them".into()
        }
        _ => e.to_string(),
    }
}

/// How a restore writes attributes.
#[derive(Debug, Clone, Copy)]
pub struct WriteMode {
    /// The process may set `trusted.*` and `security.capability`.
    pub is_root: bool,
    /// Remove the attributes of the namespaces a restore owns that the entry lacks: for an
    /// entry the restore made, from a snapshot that records attributes at all.
    pub remove_extra: bool,
}

/// An entry whose attributes a restore writes: by path, never following a symlink, or through
/// a file it holds open (a file not yet linked into its folder has no path to go by).
#[derive(Debug, Clone, Copy)]
pub enum Entry<'a> {
    /// The entry at this path.
    Path(&'a Path),
    /// This open file, which is to be named `path` (for messages).
    Open(&'a std::fs::File, &'a Path),
}

impl Entry<'_> {
    /// The path it has or is to have.
    pub fn path(&self) -> &Path {
        match self {
            Entry::Path(p) | Entry::Open(_, p) => p,
        }
    }

    fn list(&self) -> io::Result<Vec<OsString>> {
        match self {
            Entry::Path(p) => Ok(xattr::list(p)?.collect()),
            Entry::Open(f, _) => Ok(xattr::FileExt::list_xattr(*f)?.collect()),
        }
    }

    fn set(&self, name: &std::ffi::OsStr, value: &[u8]) -> io::Result<()> {
        match self {
            Entry::Path(p) => xattr::set(p, name, value),
            Entry::Open(f, _) => xattr::FileExt::set_xattr(*f, name, value),
        }
    }

    fn remove(&self, name: &std::ffi::OsStr) -> io::Result<()> {
        match self {
            Entry::Path(p) => xattr::remove(p, name),
            Entry::Open(f, _) => xattr::FileExt::remove_xattr(*f, name),
        }
    }
}

/// Sets `wanted` (those `filter` allows) on `entry`, and, when `mode` says so, removes
/// attributes of the namespaces a restore owns that `wanted` lacks. What cannot be set is
/// counted in `problems`, never silently dropped.
pub fn write(
    entry: Entry<'_>,
    wanted: &[Xattr],
    filter: &XattrFilter,
    mode: WriteMode,
    problems: &mut XattrProblems,
) {
    let path = entry.path();
    if mode.remove_extra {
        remove_extra(entry, wanted, filter, problems);
    }
    for x in wanted.iter().filter(|x| filter.allows(&x.name.0)) {
        let ns = namespace(&x.name.0);
        if needs_root(&x.name.0) && !mode.is_root {
            problems.add(ns, "restoring them needs root".into(), path);
            continue;
        }
        if let Err(e) = entry.set(x.name.as_os(), &x.value.0) {
            let why = reason(&e, &ns, mode.is_root);
            problems.add(ns, why, path);
        }
    }
}

fn remove_extra(
    entry: Entry<'_>,
    wanted: &[Xattr],
    filter: &XattrFilter,
    problems: &mut XattrProblems,
) {
    let Ok(present) = entry.list() else {
        return;
    };
    for name in present {
        let bytes = name.as_bytes();
        let ns = namespace(bytes);
        if owned(&ns, bytes) && filter.allows(bytes) && !wanted.iter().any(|x| x.name.0 == bytes) {
            if let Err(e) = entry.remove(&name) {
                let why = format!("one the snapshot lacks could not be removed: {e}");
                problems.add(ns, why, entry.path());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn x(name: &str, value: &[u8]) -> Xattr {
        Xattr {
            name: ByteString(name.as_bytes().to_vec()),
            value: ByteString(value.to_vec()),
        }
    }

    #[test]
    fn filters_take_includes_then_drop_excludes() {
        let all = XattrFilter::default();
        assert!(all.allows(b"security.selinux"));
        let f = XattrFilter::new(&["user.*".into()], &["user.secret*".into()]).unwrap();
        assert!(f.allows(b"user.comment"));
        assert!(!f.allows(b"user.secret.key"));
        assert!(!f.allows(b"security.capability"));
        let err = XattrFilter::new(&[], &["user.[".into()]).unwrap_err();
        assert!(err.to_string().contains("user.["), "{err}");
    }

    #[test]
    fn namespaces() {
        assert_eq!(namespace(b"user.a.b"), "user");
        assert_eq!(namespace(b"system.posix_acl_access"), "system");
        assert_eq!(namespace(b"odd"), "odd");
    }

    #[test]
    fn attributes_round_trip_through_the_file_system_sorted_and_filtered() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("f");
        std::fs::write(&f, b"x").unwrap();
        let probe = xattr::set(&f, "user.probe", b"1");
        if let Err(e) = probe {
            eprintln!("skipped: the temporary folder's file system refuses user attributes ({e})");
            return;
        }
        xattr::remove(&f, "user.probe").unwrap();
        let wanted = vec![
            x("user.a", b""),
            x("user.b", &[0, 255, 7]),
            x("user.c", &vec![b'v'; 3000]),
        ];
        let mut problems = XattrProblems::default();
        xattr::set(&f, "user.stale", b"old").unwrap();
        let mode = WriteMode {
            is_root: false,
            remove_extra: true,
        };
        write(
            Entry::Path(&f),
            &wanted,
            &XattrFilter::default(),
            mode,
            &mut problems,
        );
        assert!(problems.warnings().is_empty());
        assert_eq!(read(&f, &XattrFilter::default()).unwrap(), wanted);
        let only_b = XattrFilter::new(&["user.b".into()], &[]).unwrap();
        assert_eq!(read(&f, &only_b).unwrap(), vec![wanted[1].clone()]);
        // Without removal, what the entry already has stays.
        xattr::set(&f, "user.kept", b"k").unwrap();
        let keep = WriteMode {
            is_root: false,
            remove_extra: false,
        };
        write(
            Entry::Path(&f),
            &wanted[..1],
            &XattrFilter::default(),
            keep,
            &mut problems,
        );
        assert_eq!(read(&f, &XattrFilter::default()).unwrap().len(), 4);
        // Through an open file, as a restore writes a file before it has a name.
        let open = std::fs::OpenOptions::new().write(true).open(&f).unwrap();
        let at = Entry::Open(&open, &f);
        write(
            at,
            &wanted[1..],
            &XattrFilter::default(),
            mode,
            &mut problems,
        );
        assert!(problems.warnings().is_empty());
        assert_eq!(read(&f, &XattrFilter::default()).unwrap(), &wanted[1..]);
    }

    #[test]
    fn security_attributes_need_root_and_are_counted_once_per_kind() {
        let dir = tempfile::tempdir().unwrap();
        let mut problems = XattrProblems::default();
        for name in ["a", "b"] {
            let f = dir.path().join(name);
            std::fs::write(&f, b"x").unwrap();
            write(
                Entry::Path(&f),
                &[x("security.capability", b"c"), x("trusted.t", b"t")],
                &XattrFilter::default(),
                WriteMode {
                    is_root: false,
                    remove_extra: true,
                },
                &mut problems,
            );
        }
        let w = problems.warnings();
        assert_eq!(w.len(), 2, "{w:?}");
        assert_eq!(w[0].namespace, "security");
        assert_eq!(w[0].count, 2);
        assert_eq!(w[0].reason, "restoring them needs root");
        assert_eq!(w[0].first_path, dir.path().join("a"));
    }
}
