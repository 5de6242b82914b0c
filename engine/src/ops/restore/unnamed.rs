//! Unnamed files (`O_TMPFILE`): a file written whole in one go is made without a name in its
//! folder, gets its bytes and metadata through its descriptor, and is linked in under its final
//! name only then. It never has a temporary name, so it costs no rename, and its metadata calls
//! need no path lookups. A restore killed before the link leaves nothing behind: the file system
//! frees an unnamed file when its last descriptor closes.
//!
//! Where the file system has no unnamed files, or the process may not link one in, the caller
//! writes under a temporary name instead; the first refusal is remembered for the rest of the
//! restore.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicU8, Ordering};

use nix::errno::Errno;
use nix::fcntl::AtFlags;
use nix::unistd::linkat;

/// Link by the descriptor itself (`AT_EMPTY_PATH`: root, or kernels from 6.10 for the opener).
const BY_DESCRIPTOR: u8 = 0;
/// Link through `/proc/self/fd`.
const THROUGH_PROC: u8 = 1;
/// No unnamed files here: use temporary names.
const UNAVAILABLE: u8 = 2;

/// How unnamed files are made and linked in, as the first attempts found out.
pub struct Linker {
    how: AtomicU8,
}

impl Linker {
    /// Tries unnamed files first.
    pub fn new() -> Self {
        Self {
            how: AtomicU8::new(BY_DESCRIPTOR),
        }
    }

    /// A writable unnamed file in `dir`, mode 0600; `None` when there is none to be had (the
    /// caller then writes under a temporary name, and reports what that fails with).
    pub fn create(&self, dir: &Path) -> Option<File> {
        if self.how.load(Ordering::Relaxed) == UNAVAILABLE {
            return None;
        }
        let made = OpenOptions::new()
            .write(true)
            .mode(0o600)
            .custom_flags(libc::O_TMPFILE)
            .open(dir);
        match made {
            Ok(f) => Some(f),
            Err(e) => {
                // EOPNOTSUPP: this file system has none; EISDIR or EINVAL: this kernel has none.
                if matches!(
                    e.raw_os_error(),
                    Some(libc::EOPNOTSUPP | libc::EISDIR | libc::EINVAL)
                ) {
                    self.how.store(UNAVAILABLE, Ordering::Relaxed);
                }
                None
            }
        }
    }

    /// Links `file` in as `path`. `Ok(false)`: this process cannot link unnamed files (the
    /// caller writes the file again under a temporary name); an error of kind `AlreadyExists`
    /// when an entry holds the name.
    pub fn link(&self, file: &File, path: &Path) -> io::Result<bool> {
        let fd = file.as_raw_fd();
        if self.how.load(Ordering::Relaxed) == BY_DESCRIPTOR {
            match linkat(Some(fd), Path::new(""), None, path, AtFlags::AT_EMPTY_PATH) {
                Ok(()) => return Ok(true),
                // Without the capability the kernel answers as if the empty path named nothing.
                Err(Errno::ENOENT | Errno::EPERM | Errno::EINVAL) => {
                    self.how.store(THROUGH_PROC, Ordering::Relaxed);
                }
                Err(e) => return Err(e.into()),
            }
        }
        if self.how.load(Ordering::Relaxed) == THROUGH_PROC {
            let proc = format!("/proc/self/fd/{fd}");
            match linkat(
                None,
                Path::new(&proc),
                None,
                path,
                AtFlags::AT_SYMLINK_FOLLOW,
            ) {
                Ok(()) => return Ok(true),
                Err(Errno::ENOENT) if !Path::new("/proc/self/fd").exists() => {
                    self.how.store(UNAVAILABLE, Ordering::Relaxed);
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::unix::fs::FileExt;

    /// Both ways of linking: by the descriptor (as root) and through `/proc/self/fd` (as
    /// anyone), whichever this process would find first.
    fn linkers() -> [Linker; 2] {
        [BY_DESCRIPTOR, THROUGH_PROC].map(|how| Linker {
            how: AtomicU8::new(how),
        })
    }

    #[test]
    fn an_unnamed_file_is_invisible_until_linked_and_a_taken_name_is_refused() {
        for (n, linker) in linkers().iter().enumerate() {
            let dir = tempfile::tempdir().unwrap();
            let Some(f) = linker.create(dir.path()) else {
                // Some file systems (overlayfs on old kernels) have no unnamed files.
                eprintln!("skipped: no O_TMPFILE on {}", dir.path().display());
                return;
            };
            f.write_all_at(b"whole", 0).unwrap();
            assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
            let path = dir.path().join("a");
            assert!(linker.link(&f, &path).unwrap(), "linker {n}");
            let mut got = String::new();
            File::open(&path).unwrap().read_to_string(&mut got).unwrap();
            assert_eq!(got, "whole");

            let g = linker.create(dir.path()).unwrap();
            let err = linker.link(&g, &path).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::AlreadyExists, "{err}");
            drop(g);
            assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        }
    }

    #[test]
    fn once_unavailable_no_unnamed_file_is_tried() {
        let linker = Linker {
            how: AtomicU8::new(UNAVAILABLE),
        };
        let dir = tempfile::tempdir().unwrap();
        assert!(linker.create(dir.path()).is_none());
        let f = File::create(dir.path().join("named")).unwrap();
        assert!(!linker.link(&f, &dir.path().join("other")).unwrap());
        assert!(!dir.path().join("other").exists());
    }
}
