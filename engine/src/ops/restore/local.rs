//! What the target already holds: files `--overwrite` leaves alone, chunks already in place (in
//! a file being replaced, or in the temporary file of a restore that was killed), and entries
//! `--delete` removes. Also `--verify`, which reads restored files back.
//!
//! A file is written under a temporary name in its folder ([`part_path`]) and renamed into
//! place when complete, so a file at its final name always holds the snapshot's bytes.

use std::collections::HashSet;
use std::ffi::{OsStr, OsString};
use std::fs::{self, File};
use std::io;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};

use crate::format::tree::Node;
use crate::id::BlobId;

/// Prefix of the temporary files a restore writes before renaming them into place.
pub const PART_PREFIX: &str = ".floe-part.";

/// Longest file name on the file systems restores write to.
const NAME_MAX: usize = 255;

/// When an existing entry at a file's place is replaced (restic's `--overwrite` modes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Overwrite {
    /// Refuse the whole restore when anything is in the way (no `--overwrite`).
    #[default]
    Refuse,
    /// Replace it.
    Always,
    /// Replace it unless it is a regular file of the snapshot's size and modification time.
    IfChanged,
    /// Replace it when the snapshot's modification time is later than its own.
    IfNewer,
    /// Leave it alone.
    Never,
}

impl Overwrite {
    /// Parses restic's names: `always`, `if-changed`, `if-newer`, `never`.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "always" => Overwrite::Always,
            "if-changed" => Overwrite::IfChanged,
            "if-newer" => Overwrite::IfNewer,
            "never" => Overwrite::Never,
            _ => return None,
        })
    }
}

/// The temporary name of `path`: in the same folder, so that the rename is atomic, and the
/// same in every run, so that a restore run again finds what a killed one wrote.
pub fn part_path(path: &Path) -> PathBuf {
    let name = path.file_name().unwrap_or_default().as_bytes();
    let part = if name.len() + PART_PREFIX.len() <= NAME_MAX {
        [PART_PREFIX.as_bytes(), name].concat()
    } else {
        let hash = blake3::hash(name).to_hex();
        format!("{PART_PREFIX}{}", &hash[..32]).into_bytes()
    };
    path.with_file_name(OsString::from_vec(part))
}

/// True for a name [`part_path`] makes.
pub fn is_part_name(name: &OsStr) -> bool {
    name.as_bytes().starts_with(PART_PREFIX.as_bytes())
}

/// The node's modification time as the file system stores it (seconds, nanoseconds).
fn node_mtime(node: &Node) -> (i64, i64) {
    let nanos = node.mtime.timestamp_subsec_nanos().min(999_999_999);
    (node.mtime.timestamp(), nanos as i64)
}

/// True when `mode` leaves the existing entry `existing` in place of `node`'s file alone.
pub fn leave_alone(mode: Overwrite, existing: &fs::Metadata, node: &Node) -> bool {
    let theirs = (existing.mtime(), existing.mtime_nsec());
    match mode {
        Overwrite::Refuse | Overwrite::Always => false,
        Overwrite::Never => true,
        Overwrite::IfChanged => {
            existing.is_file() && existing.len() == node.size && theirs == node_mtime(node)
        }
        Overwrite::IfNewer => node_mtime(node) <= theirs,
    }
}

/// One chunk of a file: its blob, where it starts and how long it is.
#[derive(Debug, Clone, Copy)]
pub struct Chunk {
    pub id: BlobId,
    pub offset: u64,
    pub len: u32,
}

/// Which of `chunks` the file at `path` holds at their offsets, by their keyed hashes.
/// A file that cannot be read holds none.
pub fn chunks_in_place(path: &Path, chunks: &[Chunk], hash: &dyn Fn(&[u8]) -> BlobId) -> Vec<bool> {
    let Ok(f) = File::open(path) else {
        return vec![false; chunks.len()];
    };
    let mut buf = Vec::new();
    chunks
        .iter()
        .map(|c| read_chunk(&f, c, &mut buf).is_ok_and(|()| hash(&buf) == c.id))
        .collect()
}

fn read_chunk(f: &File, c: &Chunk, buf: &mut Vec<u8>) -> io::Result<()> {
    buf.resize(c.len as usize, 0);
    f.read_exact_at(buf, c.offset)
}

/// The first difference [`verify`] found between a restored file and the snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    /// The difference, in words.
    pub message: String,
    /// The number of the chunk that differs, when one does (not for a wrong length or a local
    /// read error).
    pub chunk: Option<usize>,
}

impl Mismatch {
    fn whole(message: String) -> Self {
        Mismatch {
            message,
            chunk: None,
        }
    }
}

/// Reads a restored file back: its length must be `size` and every chunk must hash to its
/// blob's id. The first difference, in words.
pub fn verify(
    path: &Path,
    size: u64,
    chunks: &[Chunk],
    hash: &dyn Fn(&[u8]) -> BlobId,
) -> Result<(), Mismatch> {
    let unreadable = |e: io::Error| Mismatch::whole(format!("cannot be read back: {e}"));
    let f = File::open(path).map_err(unreadable)?;
    let len = f.metadata().map_err(unreadable)?.len();
    if len != size {
        return Err(Mismatch::whole(format!(
            "is {len} bytes long, the snapshot's file {size}"
        )));
    }
    let mut buf = Vec::new();
    for (k, c) in chunks.iter().enumerate() {
        read_chunk(&f, c, &mut buf).map_err(unreadable)?;
        if hash(&buf) != c.id {
            return Err(Mismatch {
                message: format!(
                    "differs from the snapshot in the {} bytes at offset {}",
                    c.len, c.offset
                ),
                chunk: Some(k),
            });
        }
    }
    Ok(())
}

/// Entries of folder `dir` that are neither in `names` (the snapshot's folder) nor temporary
/// files, and that `keep` does not protect. Nothing when the folder does not exist.
pub fn extras(
    dir: &Path,
    names: &HashSet<OsString>,
    keep: impl Fn(&OsStr) -> bool,
) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.file_name())
        .filter(|n| !names.contains(n) && !is_part_name(n) && !keep(n))
        .map(|n| dir.join(n))
        .collect();
    out.sort();
    out
}

/// Temporary files in `dir` that no file of this restore continues from.
pub fn leftovers(dir: &Path, claimed: &HashSet<PathBuf>) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|e| is_part_name(&e.file_name()))
        .map(|e| e.path())
        .filter(|p| !claimed.contains(p))
        .collect()
}

/// Removes an entry `--delete` found (`snap`: its path in the snapshot's terms), a folder with
/// everything in it, except what `keep` protects: a protected entry inside stays, with the
/// folders that lead to it. True when the entry is gone whole.
pub fn remove_entry(path: &Path, snap: &Path, keep: &dyn Fn(&Path) -> bool) -> io::Result<bool> {
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(true),
        Err(e) => return Err(e),
    };
    if !meta.is_dir() {
        fs::remove_file(path)?;
        return Ok(true);
    }
    let mut whole = true;
    for e in fs::read_dir(path)? {
        let name = e?.file_name();
        let (p, s) = (path.join(&name), snap.join(&name));
        whole &= !keep(&s) && remove_entry(&p, &s, keep)?;
    }
    if whole {
        fs::remove_dir(path)?;
    }
    Ok(whole)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temporary_names_stay_in_the_folder_and_within_the_name_limit() {
        let p = part_path(Path::new("/t/a/report.pdf"));
        assert_eq!(p, Path::new("/t/a/.floe-part.report.pdf"));
        assert!(is_part_name(p.file_name().unwrap()));
        let long = "x".repeat(250);
        let p = part_path(&Path::new("/t").join(&long));
        assert_eq!(p.parent(), Some(Path::new("/t")));
        assert!(p.file_name().unwrap().len() <= NAME_MAX);
        assert_eq!(
            p,
            part_path(&Path::new("/t").join(&long)),
            "the same in every run"
        );
    }

    #[test]
    fn overwrite_modes_read_as_restic_spells_them() {
        assert_eq!(Overwrite::parse("if-changed"), Some(Overwrite::IfChanged));
        assert_eq!(Overwrite::parse("if-newer"), Some(Overwrite::IfNewer));
        assert_eq!(Overwrite::parse("sometimes"), None);
    }
}
