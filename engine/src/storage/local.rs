//! A repository in a local directory (format-spec/format.md, "Local layout").
//!
//! Every write goes to a temporary file in the destination folder, is fsynced, renamed into place,
//! and the folder is fsynced, so a crash leaves either the old state or the new one. Files are
//! created 0600 and folders 0700.

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use rand::RngCore;

use super::{parse_name, Backend, FileType, Leftover, ObjectEntry, Staged};
use crate::id::RawId;
use crate::storage::BackendError;

/// Mode of every file written.
pub const FILE_MODE: u32 = 0o600;
/// Mode of every folder created.
pub const DIR_MODE: u32 = 0o700;

/// A repository rooted at a local path.
#[derive(Debug, Clone)]
pub struct LocalBackend {
    root: PathBuf,
}

impl LocalBackend {
    /// A backend at `root` (not created until [`Backend::create`]).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The root folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path(&self, t: FileType, id: &RawId) -> PathBuf {
        self.root.join(t.object_path(id))
    }

    fn err(op: &'static str, path: &Path, source: io::Error) -> BackendError {
        if source.kind() == io::ErrorKind::NotFound {
            BackendError::NotFound {
                location: path.display().to_string(),
            }
        } else {
            BackendError::Io {
                op,
                location: path.display().to_string(),
                source,
            }
        }
    }

    fn mkdir(path: &Path) -> io::Result<()> {
        DirBuilder::new()
            .recursive(true)
            .mode(DIR_MODE)
            .create(path)
    }

    /// Makes a pack sub-folder on its first use. Its parent is synced so that the new folder,
    /// and the pack about to go in it, survive a crash.
    fn make_pack_folder(&self, dir: &Path) -> io::Result<()> {
        Self::mkdir(dir)?;
        File::open(dir.parent().unwrap_or(&self.root))?.sync_all()
    }

    /// The entries of folder `dir`; `None` when there is no such folder.
    fn entries(dir: &Path) -> Result<Option<fs::ReadDir>, BackendError> {
        match fs::read_dir(dir) {
            Ok(e) => Ok(Some(e)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Self::err("list", dir, e)),
        }
    }

    fn list_dir(dir: &Path, out: &mut Vec<ObjectEntry>) -> Result<(), BackendError> {
        let Some(entries) = Self::entries(dir)? else {
            return Ok(());
        };
        for entry in entries {
            let entry = entry.map_err(|e| Self::err("list", dir, e))?;
            let name = entry.file_name();
            let Some(id) = name.to_str().and_then(parse_name) else {
                continue;
            };
            let meta = entry
                .metadata()
                .map_err(|e| Self::err("stat", &entry.path(), e))?;
            if meta.is_file() {
                out.push(ObjectEntry {
                    id,
                    size: meta.len(),
                    modified: meta.modified().ok(),
                    storage_class: None,
                });
            }
        }
        Ok(())
    }

    /// The folders where temporary files can be: the root, each type's folder and the pack
    /// sub-folders, relative to the root.
    fn folders(&self) -> Result<Vec<String>, BackendError> {
        let mut out = vec![String::new()];
        for t in FileType::ALL.into_iter().filter(|t| *t != FileType::Config) {
            out.push(t.dir_name().to_string());
            if !t.is_pack() {
                continue;
            }
            let dir = self.root.join(t.dir_name());
            for sub in Self::entries(&dir)?.into_iter().flatten() {
                let name = sub.map_err(|e| Self::err("list", &dir, e))?.file_name();
                if let Some(name) = name.to_str().filter(|n| pack_folder_byte(n).is_some()) {
                    out.push(format!("{}/{name}", t.dir_name()));
                }
            }
        }
        Ok(out)
    }

    /// The temporary files in `folder` (relative to the root).
    fn leftovers_in(&self, folder: &str, out: &mut Vec<Leftover>) -> Result<(), BackendError> {
        let dir = self.root.join(folder);
        for entry in Self::entries(&dir)?.into_iter().flatten() {
            let entry = entry.map_err(|e| Self::err("list", &dir, e))?;
            let name = entry.file_name();
            let Some(name) = name.to_str().filter(|n| is_leftover_name(n)) else {
                continue;
            };
            let meta = entry
                .metadata()
                .map_err(|e| Self::err("stat", &entry.path(), e))?;
            if meta.is_file() {
                out.push(Leftover {
                    path: if folder.is_empty() {
                        name.to_string()
                    } else {
                        format!("{folder}/{name}")
                    },
                    size: meta.len(),
                    modified: meta.modified().ok(),
                });
            }
        }
        Ok(())
    }
}

/// True for a folder (relative to the root) where writers put temporary files: the root, a
/// type's folder or a pack sub-folder.
fn is_writers_folder(folder: &str) -> bool {
    let mut parts = folder.splitn(2, '/');
    let top = parts.next().unwrap_or_default();
    let typed = FileType::ALL
        .into_iter()
        .find(|t| *t != FileType::Config && t.dir_name() == top);
    match (typed, parts.next()) {
        _ if folder.is_empty() => true,
        (Some(_), None) => true,
        (Some(t), Some(sub)) => t.is_pack() && pack_folder_byte(sub).is_some(),
        (None, _) => false,
    }
}

/// True for one of [`temp_path`]'s names.
fn is_leftover_name(name: &str) -> bool {
    name.strip_prefix(".tmp-")
        .is_some_and(|hex| hex.len() == 16 && hex.bytes().all(is_lower_hex))
}

/// A digit of lowercase hex, as names in a repository are written.
fn is_lower_hex(b: u8) -> bool {
    matches!(b, b'0'..=b'9' | b'a'..=b'f')
}

/// Writes `data` to `path` atomically and durably: temporary file, fsync, rename, fsync of the
/// folder.
pub(crate) fn write_atomic(path: &Path, data: &[u8]) -> io::Result<()> {
    write_atomic_with(path, |f| f.write_all(data))
}

/// [`write_atomic`] with the content written by `fill`.
fn write_atomic_with(
    path: &Path,
    fill: impl FnOnce(&mut File) -> io::Result<()>,
) -> io::Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| io::Error::other("path has no parent folder"))?;
    let tmp = temp_path(dir);
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(FILE_MODE)
            .open(&tmp)?;
        fill(&mut f)?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, path)?;
        File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// A temporary file beside where objects of its type go: `.tmp-` and 16 hex digits, which no
/// listing takes for an object.
fn temp_path(dir: &Path) -> PathBuf {
    let mut suffix = [0u8; 8];
    rand::thread_rng().fill_bytes(&mut suffix);
    dir.join(format!(".tmp-{}", hex::encode(suffix)))
}

/// An object written in pieces to a temporary file in its type's folder, renamed into place by
/// [`Staged::commit`] and removed when dropped before.
struct StagedFile {
    backend: LocalBackend,
    file_type: FileType,
    tmp: PathBuf,
    file: File,
    len: u64,
    committed: bool,
}

impl Staged for StagedFile {
    fn append(&mut self, bytes: &[u8]) -> Result<(), BackendError> {
        self.file
            .write_all(bytes)
            .map_err(|e| LocalBackend::err("write", &self.tmp, e))?;
        self.len += bytes.len() as u64;
        Ok(())
    }

    fn len(&self) -> u64 {
        self.len
    }

    fn commit(mut self: Box<Self>, id: &RawId) -> Result<(), BackendError> {
        let path = self.backend.path(self.file_type, id);
        let result = self.file.sync_all().and_then(|_| self.move_to(&path));
        result.map_err(|e| LocalBackend::err("write", &path, e))
    }
}

impl StagedFile {
    /// Renames the synced temporary file to `path` and syncs both folders. A pack folder
    /// linked to another file system cannot take a rename: the bytes are copied there
    /// atomically instead (through the kernel, not memory), and the temporary file is left for
    /// the drop to remove.
    fn move_to(&mut self, path: &Path) -> io::Result<()> {
        let dir = path.parent().unwrap_or(&self.backend.root).to_path_buf();
        let renamed = match fs::rename(&self.tmp, path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                self.backend.make_pack_folder(&dir)?;
                fs::rename(&self.tmp, path)
            }
            r => r,
        };
        match renamed {
            Err(e) if e.kind() == io::ErrorKind::CrossesDevices => {
                let mut from = File::open(&self.tmp)?;
                return write_atomic_with(path, |to| io::copy(&mut from, to).map(drop));
            }
            r => r?,
        }
        self.committed = true;
        File::open(&dir)?.sync_all()?;
        // The name left the folder of the temporary file: that folder changed too.
        match self.tmp.parent() {
            Some(from) if from != dir => File::open(from)?.sync_all(),
            _ => Ok(()),
        }
    }
}

impl Drop for StagedFile {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

/// The byte a pack sub-folder stands for: its name is two lowercase hex digits.
fn pack_folder_byte(name: &str) -> Option<u8> {
    if name.len() != 2 || !name.bytes().all(is_lower_hex) {
        return None;
    }
    u8::from_str_radix(name, 16).ok()
}

impl Backend for LocalBackend {
    fn location(&self) -> String {
        self.root.display().to_string()
    }

    fn create(&self) -> Result<(), BackendError> {
        for t in FileType::ALL {
            if t != FileType::Config {
                let dir = self.root.join(t.dir_name());
                Self::mkdir(&dir).map_err(|e| Self::err("create", &dir, e))?;
            }
        }
        File::open(&self.root)
            .and_then(|d| d.sync_all())
            .map_err(|e| Self::err("sync", &self.root, e))
    }

    fn list(&self, t: FileType) -> Result<Vec<ObjectEntry>, BackendError> {
        let mut out = Vec::new();
        let dir = self.root.join(t.dir_name());
        match t {
            FileType::Config => {
                if let Ok(m) = fs::metadata(&dir) {
                    out.push(ObjectEntry {
                        id: super::CONFIG_ID,
                        size: m.len(),
                        modified: m.modified().ok(),
                        storage_class: None,
                    });
                }
            }
            t if t.is_pack() => {
                let Some(subs) = Self::entries(&dir)? else {
                    return Ok(out);
                };
                for sub in subs {
                    let sub = sub.map_err(|e| Self::err("list", &dir, e))?;
                    // Only `00` … `ff` folders hold packs, and each only the packs whose id
                    // starts with its byte; anything else is not part of the repository.
                    let name = sub.file_name();
                    let Some(first) = name.to_str().and_then(pack_folder_byte) else {
                        continue;
                    };
                    // A folder, or a link to one (a pack folder moved to another disk).
                    if !fs::metadata(sub.path()).is_ok_and(|m| m.is_dir()) {
                        continue;
                    }
                    let mut listed = Vec::new();
                    Self::list_dir(&sub.path(), &mut listed)?;
                    out.extend(listed.into_iter().filter(|e| e.id[0] == first));
                }
            }
            _ => Self::list_dir(&dir, &mut out)?,
        }
        Ok(out)
    }

    fn read(&self, t: FileType, id: &RawId) -> Result<Vec<u8>, BackendError> {
        let p = self.path(t, id);
        fs::read(&p).map_err(|e| Self::err("read", &p, e))
    }

    fn stat(&self, t: FileType, id: &RawId) -> Result<super::ObjectState, BackendError> {
        let p = self.path(t, id);
        let m = fs::metadata(&p).map_err(|e| Self::err("stat", &p, e))?;
        Ok(super::ObjectState {
            size: m.len(),
            storage_class: None,
            thaw: super::ThawState::Readable,
        })
    }

    fn read_range(
        &self,
        t: FileType,
        id: &RawId,
        offset: u64,
        length: u64,
    ) -> Result<Vec<u8>, BackendError> {
        let mut buf = Vec::new();
        self.read_range_into(t, id, offset, length, &mut buf)?;
        Ok(buf)
    }

    fn read_range_into(
        &self,
        t: FileType,
        id: &RawId,
        offset: u64,
        length: u64,
        buf: &mut Vec<u8>,
    ) -> Result<(), BackendError> {
        let p = self.path(t, id);
        let f = File::open(&p).map_err(|e| Self::err("open", &p, e))?;
        let len = usize::try_from(length)
            .map_err(|_| Self::err("read", &p, io::Error::other("range too large")))?;
        buf.clear();
        buf.resize(len, 0);
        let mut done = 0;
        while done < len {
            match f.read_at(&mut buf[done..], offset + done as u64) {
                Ok(0) => {
                    return Err(BackendError::ShortRead {
                        location: p.display().to_string(),
                        offset,
                        wanted: length,
                        got: done as u64,
                    })
                }
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Self::err("read", &p, e)),
            }
        }
        Ok(())
    }

    fn write(&self, t: FileType, id: &RawId, data: &[u8]) -> Result<(), BackendError> {
        let p = self.path(t, id);
        let result = match write_atomic(&p, data) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => self
                .make_pack_folder(p.parent().unwrap_or(&self.root))
                .and_then(|_| write_atomic(&p, data)),
            r => r,
        };
        result.map_err(|e| Self::err("write", &p, e))
    }

    fn remove(&self, t: FileType, id: &RawId) -> Result<(), BackendError> {
        let p = self.path(t, id);
        fs::remove_file(&p).map_err(|e| Self::err("remove", &p, e))
    }

    fn leftovers(&self) -> Result<Vec<Leftover>, BackendError> {
        let mut out = Vec::new();
        for folder in self.folders()? {
            self.leftovers_in(&folder, &mut out)?;
        }
        Ok(out)
    }

    fn remove_leftover(&self, l: &Leftover) -> Result<(), BackendError> {
        let path = Path::new(&l.path);
        let p = self.root.join(path);
        let folder = path.parent().and_then(Path::to_str);
        let named = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(is_leftover_name);
        if !named || !folder.is_some_and(is_writers_folder) {
            let why = io::Error::new(io::ErrorKind::InvalidInput, "not a temporary file");
            return Err(Self::err("remove", &p, why));
        }
        match fs::remove_file(&p) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(Self::err("remove", &p, e)),
            _ => Ok(()),
        }
    }

    fn stage(&self, t: FileType) -> Result<Option<Box<dyn Staged + '_>>, BackendError> {
        let dir = match t {
            FileType::Config => self.root.clone(),
            t => self.root.join(t.dir_name()),
        };
        let tmp = temp_path(&dir);
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(FILE_MODE)
            .open(&tmp)
            .map_err(|e| Self::err("create", &tmp, e))?;
        Ok(Some(Box::new(StagedFile {
            backend: self.clone(),
            file_type: t,
            tmp,
            file,
            len: 0,
            committed: false,
        })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn temporary_files(dir: &Path) -> Vec<String> {
        fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(".tmp-"))
            .collect()
    }

    #[test]
    fn leftovers_are_the_temporary_files_of_writers_and_only_those_can_be_removed() {
        let dir = tempfile::tempdir().unwrap();
        let b = LocalBackend::new(dir.path().join("r"));
        b.create().unwrap();
        b.write(FileType::DataPack, &[0xab; 32], b"a pack").unwrap();
        let mut cut_short = b.stage(FileType::DataPack).unwrap().unwrap();
        cut_short.append(b"half a pack").unwrap();
        std::mem::forget(cut_short); // as a kill leaves it
        let root = dir.path().join("r");
        fs::write(root.join("data/ab/.tmp-0011223344556677"), b"x").unwrap();
        fs::write(root.join("index/.tmp-8899aabbccddeeff"), b"").unwrap();
        fs::write(root.join("data/ab/.tmp-short"), b"not ours").unwrap();
        fs::write(root.join("data/.tmp-0011223344556677.txt"), b"not ours").unwrap();

        let mut found = b.leftovers().unwrap();
        found.sort_by(|a, b| a.path.cmp(&b.path));
        let paths: Vec<&str> = found.iter().map(|l| l.path.as_str()).collect();
        assert_eq!(paths.len(), 3, "{paths:?}");
        assert!(paths[0].starts_with("data/.tmp-") && found[0].size == 11);
        assert_eq!(
            paths[1..],
            [
                "data/ab/.tmp-0011223344556677",
                "index/.tmp-8899aabbccddeeff"
            ]
        );
        for l in &found {
            b.remove_leftover(l).unwrap();
        }
        assert!(b.leftovers().unwrap().is_empty());
        assert_eq!(b.read(FileType::DataPack, &[0xab; 32]).unwrap(), b"a pack");

        for path in [
            "data/ab/.tmp-short",
            "../.tmp-0011223344556677",
            "src/.tmp-0011223344556677",
        ] {
            let l = Leftover {
                path: path.into(),
                size: 0,
                modified: None,
            };
            let err = b.remove_leftover(&l).unwrap_err();
            let why = std::error::Error::source(&err).map(|e| e.to_string());
            assert_eq!(
                why.as_deref(),
                Some("not a temporary file"),
                "{path}: {err}"
            );
        }
        assert!(root.join("data/ab/.tmp-short").exists());
    }

    #[test]
    fn a_staged_pack_is_a_temporary_file_until_named_and_leaves_none_behind() {
        let dir = tempfile::tempdir().unwrap();
        let b = LocalBackend::new(dir.path().join("r"));
        b.create().unwrap();
        let data = dir.path().join("r/data");
        let mut staged = b.stage(FileType::DataPack).unwrap().unwrap();
        staged.append(b"blob one,").unwrap();
        staged.append(b" blob two").unwrap();
        assert_eq!(temporary_files(&data).len(), 1);
        staged.commit(&[0x5b; 32]).unwrap();
        let f = dir
            .path()
            .join("r")
            .join(FileType::DataPack.object_path(&[0x5b; 32]));
        assert_eq!(fs::read(&f).unwrap(), b"blob one, blob two");
        assert_eq!(
            fs::metadata(&f).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert!(temporary_files(&data).is_empty());

        let mut dropped = b.stage(FileType::DataPack).unwrap().unwrap();
        dropped.append(b"a pack cut short").unwrap();
        drop(dropped);
        assert!(temporary_files(&data).is_empty());
    }

    #[test]
    fn a_staged_pack_reaches_a_pack_folder_linked_to_another_file_system() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let Ok(elsewhere) = tempfile::tempdir_in("/dev/shm") else {
            eprintln!("skipped: no /dev/shm to link a pack folder to");
            return;
        };
        if fs::metadata("/dev/shm").unwrap().dev() == fs::metadata(dir.path()).unwrap().dev() {
            eprintln!("skipped: /dev/shm is on the same file system as the repository");
            return;
        }
        let b = LocalBackend::new(dir.path().join("r"));
        b.create().unwrap();
        std::os::unix::fs::symlink(elsewhere.path(), dir.path().join("r/data/5c")).unwrap();
        let mut staged = b.stage(FileType::DataPack).unwrap().unwrap();
        staged.append(b"a pack on the other disk").unwrap();
        staged.commit(&[0x5c; 32]).unwrap();
        let name = hex::encode([0x5c; 32]);
        assert_eq!(
            fs::read(elsewhere.path().join(&name)).unwrap(),
            b"a pack on the other disk"
        );
        assert_eq!(b.list(FileType::DataPack).unwrap().len(), 1);
        assert!(temporary_files(&dir.path().join("r/data")).is_empty());
        assert!(temporary_files(elsewhere.path()).is_empty());
    }

    #[test]
    fn a_staged_pack_on_a_missing_repository_fails_naming_the_folder() {
        let dir = tempfile::tempdir().unwrap();
        let b = LocalBackend::new(dir.path().join("gone"));
        let err = b
            .stage(FileType::DataPack)
            .err()
            .expect("no folder to stage in");
        assert!(err.to_string().contains("gone/data"), "{err}");
    }

    #[test]
    fn files_are_0600_and_folders_0700() {
        let dir = tempfile::tempdir().unwrap();
        let b = LocalBackend::new(dir.path().join("r"));
        b.create().unwrap();
        b.write(FileType::DataPack, &[0x5a; 32], b"pack").unwrap();
        let f = dir
            .path()
            .join("r")
            .join(FileType::DataPack.object_path(&[0x5a; 32]));
        assert_eq!(
            fs::metadata(&f).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(
            fs::metadata(f.parent().unwrap())
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o700
        );
        assert_eq!(
            fs::metadata(dir.path().join("r/keys"))
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o700
        );
    }

    #[test]
    fn temporary_files_are_not_listed() {
        let dir = tempfile::tempdir().unwrap();
        let b = LocalBackend::new(dir.path());
        b.create().unwrap();
        fs::write(dir.path().join("snapshots/.tmp-0011"), b"partial").unwrap();
        assert!(b.list(FileType::Snapshot).unwrap().is_empty());
    }

    #[test]
    fn names_that_are_not_lowercase_ids_in_their_own_folder_are_not_listed() {
        let dir = tempfile::tempdir().unwrap();
        let b = LocalBackend::new(dir.path());
        b.create().unwrap();
        b.write(FileType::DataPack, &[0x5a; 32], b"pack").unwrap();
        let name = hex::encode([0x5a; 32]);
        let data = dir.path().join("data");
        // The same pack copied into another byte's folder, an uppercase copy, a file where a
        // folder belongs and an uppercase folder: none of them is listed, nothing fails.
        fs::create_dir_all(data.join("6b")).unwrap();
        fs::write(data.join("6b").join(&name), b"pack").unwrap();
        fs::write(data.join("5a").join(name.to_uppercase()), b"pack").unwrap();
        fs::write(data.join("7c"), b"stray").unwrap();
        fs::create_dir_all(data.join("5A")).unwrap();
        fs::write(data.join("5A").join(&name), b"pack").unwrap();
        let listed = b.list(FileType::DataPack).unwrap();
        assert_eq!(listed.len(), 1, "{listed:?}");
        assert_eq!(listed[0].id, [0x5a; 32]);
        // A pack folder that is a link to a folder elsewhere is listed through it.
        let elsewhere = dir.path().join("elsewhere");
        fs::create_dir_all(&elsewhere).unwrap();
        let other = hex::encode([0x7d; 32]);
        fs::write(elsewhere.join(&other), b"pack").unwrap();
        std::os::unix::fs::symlink(&elsewhere, data.join("7d")).unwrap();
        let mut ids: Vec<_> = b
            .list(FileType::DataPack)
            .unwrap()
            .iter()
            .map(|e| e.id)
            .collect();
        ids.sort();
        assert_eq!(ids, [[0x5a; 32], [0x7d; 32]]);
        fs::write(dir.path().join("snapshots").join(name.to_uppercase()), b"s").unwrap();
        assert!(b.list(FileType::Snapshot).unwrap().is_empty());
    }
}
