//! Dump: one file of a snapshot written out as it was, or a folder as a tar stream, without
//! restoring to disk (`floe dump latest:/etc/fstab`, `floe dump latest:/home/ann | tar -t`).
//!
//! The plan is worked out from the trees first, so that a caller can see which data packs the
//! dump reads (and thaw archived ones) before a byte is written. Each file's blobs are read a few
//! at a time in parallel, in order, and the bytes written must add up to the size the snapshot
//! recorded: a short or damaged file ends the dump with an error rather than a tar entry padded
//! with zeros.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use crate::error::{Error, Object, Result};
use crate::format::snapshot::Snapshot;
use crate::format::tree::{Node, NodeKind, Tree};
use crate::id::{BlobId, PackId};
use crate::repo::index::Index;
use crate::repo::repository::Repository;

/// Blobs of one file read at once (blobs are at most 8 MiB by default).
const READ_AHEAD: usize = 8;

/// A dump worked out, not yet written.
#[derive(Debug)]
pub struct DumpPlan {
    /// What the path names: a file is written as is, anything else as a tar stream.
    pub single_file: Option<Node>,
    /// Entries of the tar stream, paths relative (parents before children).
    entries: Vec<(PathBuf, Node)>,
}

/// What a dump wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DumpStats {
    /// Entries written (files, folders, links...).
    pub entries: u64,
    /// Bytes of file content.
    pub bytes: u64,
    /// Sockets, which tar cannot hold.
    pub skipped: u64,
}

fn collect(
    repo: &Repository,
    index: &Index,
    tree: &Tree,
    at: &Path,
    out: &mut Vec<(PathBuf, Node)>,
) -> Result<()> {
    for n in &tree.nodes {
        let path = at.join(n.name.as_os());
        out.push((path.clone(), n.clone()));
        if n.kind == NodeKind::Dir {
            if let Some(id) = n.subtree {
                collect(repo, index, &repo.load_tree(index, &id)?, &path, out)?;
            }
        }
    }
    Ok(())
}

/// Plans a dump of `subpath` (empty or `/` for the whole snapshot). A folder's entries are
/// named from the folder itself (`ann/notes.txt` for `/home/ann`); the whole snapshot's from
/// its top level.
pub fn plan_dump(
    repo: &Repository,
    index: &Index,
    snap: &Snapshot,
    subpath: &str,
) -> Result<DumpPlan> {
    let (node, tree) = crate::repo::walk::resolve(repo, index, snap, subpath)?;
    let mut entries = Vec::new();
    match (node, tree) {
        (Some(n), None) if n.kind == NodeKind::File => {
            return Ok(DumpPlan {
                single_file: Some(n),
                entries,
            })
        }
        (Some(n), tree) => {
            let name = PathBuf::from(n.name.as_os());
            entries.push((name.clone(), n));
            if let Some(t) = tree {
                collect(repo, index, &t, &name, &mut entries)?;
            }
        }
        (None, Some(t)) => collect(repo, index, &t, Path::new(""), &mut entries)?,
        (None, None) => {}
    }
    Ok(DumpPlan {
        single_file: None,
        entries,
    })
}

impl DumpPlan {
    /// The entries the dump writes and their bytes of file content.
    pub fn totals(&self) -> (u64, u64) {
        let files = self
            .single_file
            .iter()
            .chain(self.entries.iter().map(|(_, n)| n));
        files.fold((0, 0), |(count, bytes), n| (count + 1, bytes + n.size))
    }

    /// The data packs the dump reads.
    pub fn needed_packs(&self, index: &Index) -> BTreeSet<PackId> {
        let files = self
            .single_file
            .iter()
            .chain(self.entries.iter().map(|(_, n)| n));
        files
            .flat_map(|n| n.content.iter().flatten())
            .filter_map(|id| index.get(id).map(|loc| loc.pack))
            .collect()
    }

    /// Writes the dump: the file's bytes, or a tar stream of the folder.
    pub fn write<W: Write + Send>(
        &self,
        repo: &Repository,
        index: &Index,
        out: W,
    ) -> Result<DumpStats> {
        repo.in_io_pool(|| match &self.single_file {
            Some(n) => write_file(repo, index, n, out),
            None => write_tar(repo, index, &self.entries, out),
        })
    }
}

/// A failed write of the output (a full disk, a closed pipe).
fn output_error(e: io::Error) -> Error {
    Error::io("writing the dump to", "the output", e)
}

fn write_file<W: Write>(
    repo: &Repository,
    index: &Index,
    node: &Node,
    mut out: W,
) -> Result<DumpStats> {
    let mut r = ContentReader::new(repo, index, node);
    let bytes = io::copy(&mut r, &mut out).map_err(|e| r.error(e))?;
    out.flush().map_err(output_error)?;
    Ok(DumpStats {
        entries: 1,
        bytes,
        skipped: 0,
    })
}

fn header(node: &Node, kind: tar::EntryType) -> Result<tar::Header> {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(node.mode);
    h.set_uid(node.uid.into());
    h.set_gid(node.gid.into());
    h.set_mtime(node.mtime.timestamp().max(0) as u64);
    h.set_size(0);
    // Names too long for the header are left out; the numeric ids are there.
    if let Some(u) = &node.user {
        let _ = h.set_username(u);
    }
    if let Some(g) = &node.group {
        let _ = h.set_groupname(g);
    }
    if let Some(rdev) = node.rdev {
        let (major, minor) = (nix::sys::stat::major(rdev), nix::sys::stat::minor(rdev));
        h.set_device_major(major as u32).map_err(output_error)?;
        h.set_device_minor(minor as u32).map_err(output_error)?;
    }
    Ok(h)
}

/// One PAX record, `"LEN KEY=VALUE\n"`, LEN counting the whole record with its own digits.
fn pax_record(key: &[u8], value: &[u8]) -> Vec<u8> {
    let body = key.len() + value.len() + 3; // space, '=', newline
    let mut len = body + 1;
    while len.to_string().len() + body != len {
        len = len.to_string().len() + body;
    }
    let mut r = format!("{len} ").into_bytes();
    r.extend_from_slice(key);
    r.push(b'=');
    r.extend_from_slice(value);
    r.push(b'\n');
    r
}

/// The PAX records of `node`: the nanoseconds of its modification time, which a tar header
/// cannot hold, and its extended attributes as `SCHILY.xattr.NAME` (GNU tar and bsdtar apply
/// both when extracting, the attributes with `--xattrs`).
fn pax_records(node: &Node) -> Vec<u8> {
    let mut out = Vec::new();
    // A leap second's nanoseconds run past 10^9: keep the fraction below one second.
    let secs = node.mtime.timestamp();
    let nanos = node.mtime.timestamp_subsec_nanos().min(999_999_999);
    if nanos != 0 && secs >= 0 {
        out.extend(pax_record(
            b"mtime",
            format!("{secs}.{nanos:09}").as_bytes(),
        ));
    }
    for x in &node.xattrs {
        let mut key = b"SCHILY.xattr.".to_vec();
        // GNU tar reads `%` and `=` in an attribute's name percent-encoded.
        for &b in &x.name.0 {
            match b {
                b'%' => key.extend_from_slice(b"%25"),
                b'=' => key.extend_from_slice(b"%3D"),
                _ => key.push(b),
            }
        }
        out.extend(pax_record(&key, &x.value.0));
    }
    out
}

/// Writes the PAX extended header of `node`, when it has records.
fn pax_header<W: Write>(tar: &mut tar::Builder<W>, node: &Node) -> io::Result<()> {
    let records = pax_records(node);
    if records.is_empty() {
        return Ok(());
    }
    let mut h = tar::Header::new_ustar();
    h.set_path("././@PaxHeader")?;
    h.set_entry_type(tar::EntryType::XHeader);
    h.set_mode(0o644);
    h.set_size(records.len() as u64);
    h.set_mtime(node.mtime.timestamp().max(0) as u64);
    h.set_cksum();
    tar.append(&h, records.as_slice())
}

/// A writer that fails every write once poisoned: a tar stream cut short by an error must not
/// get the end-of-archive blocks that `tar::Builder` writes when dropped, or a reader could take
/// it for complete (zeros in place of the last bytes of a file).
struct Poisonable<'a, W> {
    inner: W,
    poisoned: &'a std::cell::Cell<bool>,
}

impl<W: Write> Write for Poisonable<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.poisoned.get() {
            return Err(io::Error::other("the dump failed"));
        }
        self.inner.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.poisoned.get() {
            return Err(io::Error::other("the dump failed"));
        }
        self.inner.flush()
    }
}

fn write_tar<W: Write>(
    repo: &Repository,
    index: &Index,
    entries: &[(PathBuf, Node)],
    out: W,
) -> Result<DumpStats> {
    let poisoned = std::cell::Cell::new(false);
    let mut tar = tar::Builder::new(Poisonable {
        inner: out,
        poisoned: &poisoned,
    });
    match write_entries(repo, index, entries, &mut tar) {
        Ok(stats) => {
            tar.into_inner()
                .and_then(|mut w| w.flush())
                .map_err(output_error)?;
            Ok(stats)
        }
        Err(e) => {
            poisoned.set(true);
            Err(e)
        }
    }
}

fn write_entries<W: Write>(
    repo: &Repository,
    index: &Index,
    entries: &[(PathBuf, Node)],
    tar: &mut tar::Builder<W>,
) -> Result<DumpStats> {
    let mut stats = DumpStats::default();
    // Hard links: the first path of each (device, inode) carries the content; a later name is
    // a link to it when the snapshot recorded the same content for both.
    let mut first_of: HashMap<(u64, u64), (&Path, &Node)> = HashMap::new();
    for (path, n) in entries {
        if n.kind != NodeKind::Socket {
            pax_header(tar, n).map_err(output_error)?;
        }
        match n.kind {
            NodeKind::Dir => {
                let mut h = header(n, tar::EntryType::Directory)?;
                tar.append_data(&mut h, path, io::empty())
                    .map_err(output_error)?;
            }
            NodeKind::File => {
                if n.links > 1 {
                    match first_of.get(&(n.device_id, n.inode)) {
                        Some((first, f)) if f.content == n.content && f.size == n.size => {
                            let mut h = header(n, tar::EntryType::Link)?;
                            tar.append_link(&mut h, path, first).map_err(output_error)?;
                            stats.entries += 1;
                            continue;
                        }
                        Some(_) => {}
                        None => {
                            first_of.insert((n.device_id, n.inode), (path, n));
                        }
                    }
                }
                let mut h = header(n, tar::EntryType::Regular)?;
                h.set_size(n.size);
                let mut r = ContentReader::new(repo, index, n);
                tar.append_data(&mut h, path, &mut r)
                    .map_err(|e| r.error(e))?;
                stats.bytes += n.size;
            }
            NodeKind::Symlink => {
                let mut h = header(n, tar::EntryType::Symlink)?;
                let target = n
                    .link_target
                    .as_ref()
                    .map(|t| t.to_os())
                    .unwrap_or_default();
                tar.append_link(&mut h, path, target)
                    .map_err(output_error)?;
            }
            NodeKind::Fifo | NodeKind::Chardev | NodeKind::Blockdev => {
                let kind = match n.kind {
                    NodeKind::Fifo => tar::EntryType::Fifo,
                    NodeKind::Chardev => tar::EntryType::Char,
                    _ => tar::EntryType::Block,
                };
                let mut h = header(n, kind)?;
                tar.append_data(&mut h, path, io::empty())
                    .map_err(output_error)?;
            }
            NodeKind::Socket => {
                stats.skipped += 1;
                continue;
            }
        }
        stats.entries += 1;
    }
    Ok(stats)
}

/// A file's content as a reader: blobs fetched a few at a time in parallel, in order, checked
/// against the size the snapshot recorded.
struct ContentReader<'a> {
    repo: &'a Repository,
    index: &'a Index,
    node: &'a Node,
    blobs: &'a [BlobId],
    next: usize,
    ready: VecDeque<Vec<u8>>,
    current: Vec<u8>,
    pos: usize,
    produced: u64,
    /// The engine error behind the last failed read, returned instead of its io::Error.
    failure: Option<Error>,
}

impl<'a> ContentReader<'a> {
    fn new(repo: &'a Repository, index: &'a Index, node: &'a Node) -> Self {
        Self {
            repo,
            index,
            node,
            blobs: node.content.as_deref().unwrap_or(&[]),
            next: 0,
            ready: VecDeque::new(),
            current: Vec::new(),
            pos: 0,
            produced: 0,
            failure: None,
        }
    }

    /// The error to report for a failed copy: the engine's own when a read failed.
    fn error(&mut self, e: io::Error) -> Error {
        self.failure.take().unwrap_or_else(|| output_error(e))
    }

    fn size_mismatch(&self, found: u64) -> Error {
        let first = self
            .blobs
            .first()
            .copied()
            .unwrap_or_else(|| BlobId::hash_of(b""));
        Error::corrupt(
            Object::BlobId(first),
            format!(
                "the content of {:?} adds up to {found} bytes, the snapshot records {}",
                self.node.name.lossy(),
                self.node.size
            ),
        )
    }

    fn fail(&mut self, e: Error) -> io::Error {
        let msg = e.to_string();
        self.failure = Some(e);
        io::Error::other(msg)
    }

    fn refill(&mut self) -> Result<bool> {
        if self.ready.is_empty() {
            if self.next == self.blobs.len() {
                return Ok(false);
            }
            let end = (self.next + READ_AHEAD).min(self.blobs.len());
            let window = &self.blobs[self.next..end];
            let read: Vec<Vec<u8>> = if window.len() == 1 {
                vec![self.repo.read_blob(self.index, &window[0])?]
            } else {
                window
                    .par_iter()
                    .map(|id| self.repo.read_blob(self.index, id))
                    .collect::<Result<_>>()?
            };
            self.next = end;
            self.ready.extend(read);
        }
        self.current = self.ready.pop_front().unwrap_or_default();
        self.pos = 0;
        Ok(true)
    }
}

impl Read for ContentReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.current.len() {
            match self.refill() {
                Ok(true) => {}
                Ok(false) if self.produced == self.node.size => return Ok(0),
                Ok(false) => {
                    let e = self.size_mismatch(self.produced);
                    return Err(self.fail(e));
                }
                Err(e) => return Err(self.fail(e)),
            }
        }
        let n = buf.len().min(self.current.len() - self.pos);
        if self.produced + n as u64 > self.node.size {
            let e = self.size_mismatch(self.produced + (self.current.len() - self.pos) as u64);
            return Err(self.fail(e));
        }
        buf[..n].copy_from_slice(&self.current[self.pos..self.pos + n]);
        self.pos += n;
        self.produced += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{backup_dir, entry, memory_repo, noise, write_files};
    use std::collections::BTreeMap;

    #[test]
    fn a_file_is_dumped_byte_for_byte_and_a_folder_as_a_tar_that_reads_back() {
        let repo = memory_repo();
        let src = tempfile::tempdir().unwrap();
        let big = noise(7, 3 << 20);
        write_files(src.path(), &[("d/big", &big), ("d/small", b"hello")]);
        let id = backup_dir(&repo, src.path(), &[]);
        let index = repo.load_index().unwrap();
        let snap = entry(&repo, id).snapshot;
        let sub = src.path().join("d");
        let sub = sub.to_str().unwrap();

        let plan = plan_dump(&repo, &index, &snap, &format!("{sub}/big")).unwrap();
        let mut out = Vec::new();
        let stats = plan.write(&repo, &index, &mut out).unwrap();
        assert!(out == big, "the file's bytes, exactly");
        assert_eq!(stats.bytes, big.len() as u64);

        let plan = plan_dump(&repo, &index, &snap, sub).unwrap();
        let mut tar_bytes = Vec::new();
        plan.write(&repo, &index, &mut tar_bytes).unwrap();
        let mut archive = tar::Archive::new(&tar_bytes[..]);
        let mut files = BTreeMap::new();
        for e in archive.entries().unwrap() {
            let mut e = e.unwrap();
            if e.header().entry_type().is_file() {
                let mut body = Vec::new();
                e.read_to_end(&mut body).unwrap();
                let name = e
                    .path()
                    .unwrap()
                    .file_name()
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                files.insert(name, body);
            }
        }
        assert_eq!(files.len(), 2);
        assert!(files["big"] == big);
        assert_eq!(files["small"], b"hello");
        assert!(plan_dump(&repo, &index, &snap, "/no/such/path").is_err());
    }
}
