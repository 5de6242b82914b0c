//! Where a backup's sources come from besides the command line: lists of paths in files
//! (`--files-from*`), and streams (`--stdin`, `--stdin-from-command`).

use std::ffi::OsString;
use std::io::{self, Read};
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};

use anyhow::Context;

/// How a file of paths is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListFormat {
    /// One path a line; empty lines and lines starting with `#` are skipped.
    Lines,
    /// One path a line, every line a path (only empty lines are skipped).
    Verbatim,
    /// Paths separated by NUL bytes (`find -print0`).
    Raw,
}

/// The paths listed in `file` (`-` for standard input).
pub fn read_list(file: &Path, format: ListFormat) -> anyhow::Result<Vec<PathBuf>> {
    let bytes = if file == Path::new("-") {
        let mut b = Vec::new();
        io::stdin().lock().read_to_end(&mut b).map(|_| b)
    } else {
        std::fs::read(file)
    }
    .with_context(|| format!("reading the list of paths {}", file.display()))?;
    Ok(parse_list(&bytes, format))
}

/// The paths of a list in `format`.
pub fn parse_list(bytes: &[u8], format: ListFormat) -> Vec<PathBuf> {
    let sep = if format == ListFormat::Raw {
        b'\0'
    } else {
        b'\n'
    };
    bytes
        .split(|&b| b == sep)
        .map(|item| match format {
            ListFormat::Raw => item,
            _ => item.strip_suffix(b"\r").unwrap_or(item),
        })
        .filter(|item| match format {
            ListFormat::Lines => {
                !item.starts_with(b"#") && !item.iter().all(|b| b.is_ascii_whitespace())
            }
            _ => !item.is_empty(),
        })
        .map(|item| PathBuf::from(OsString::from_vec(item.to_vec())))
        .collect()
}

/// Refuses a path given on the command line that is, or links to, a FIFO, a device or a socket:
/// `pg_dump | floe backup /dev/stdin` would store a FIFO node and none of the data. Such entries
/// inside a folder, or in a `--files-from` list, are recorded as they are.
pub fn refuse_streams(paths: &[OsString]) -> anyhow::Result<()> {
    use std::os::unix::fs::FileTypeExt;
    for p in paths {
        let Ok(ft) = std::fs::metadata(p).map(|m| m.file_type()) else {
            continue; // reported as a missing source by the backup
        };
        let kind = if ft.is_fifo() {
            "a fifo"
        } else if ft.is_char_device() {
            "a character device"
        } else if ft.is_block_device() {
            "a block device"
        } else if ft.is_socket() {
            "a socket"
        } else {
            continue;
        };
        anyhow::bail!(
            "{} is {kind}, not a file or folder; to back up the data read from it, pipe it \
             into a stream backup (backup --stdin, or --stdin-from-command)",
            Path::new(p).display()
        );
    }
    Ok(())
}

/// The standard output of a running command, read as a stream. At its end the command is
/// waited for, and a command that failed turns the end into an error, so that a failed dump
/// never looks like a complete one.
pub struct CommandStream {
    child: Child,
    stdout: ChildStdout,
    shown: String,
    finished: bool,
}

impl CommandStream {
    /// Starts `argv` with its standard error passed through.
    pub fn start(argv: &[OsString]) -> anyhow::Result<Self> {
        let (program, args) = argv
            .split_first()
            .context("--stdin-from-command needs the command after --, e.g. -- pg_dump mydb")?;
        let shown = argv
            .iter()
            .map(|a| a.to_string_lossy())
            .collect::<Vec<_>>()
            .join(" ");
        let mut child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("starting the command `{shown}`"))?;
        let stdout = child.stdout.take().context("the command has no stdout")?;
        Ok(Self {
            child,
            stdout,
            shown,
            finished: false,
        })
    }
}

impl Read for CommandStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.stdout.read(buf)?;
        if n == 0 && !buf.is_empty() && !self.finished {
            self.finished = true;
            let status = self.child.wait()?;
            if !status.success() {
                return Err(io::Error::other(format!(
                    "the command `{}` failed ({status})",
                    self.shown
                )));
            }
        }
        Ok(n)
    }
}

impl Drop for CommandStream {
    /// A backup that stopped before the end of the output stops the command too.
    fn drop(&mut self) {
        if !self.finished {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists() {
        let text = b"/a\r\n# comment\n\n  \n/b c\n";
        assert_eq!(
            parse_list(text, ListFormat::Lines),
            [PathBuf::from("/a"), PathBuf::from("/b c")]
        );
        assert_eq!(
            parse_list(b"#x\n/y\n", ListFormat::Verbatim),
            [PathBuf::from("#x"), PathBuf::from("/y")]
        );
        assert_eq!(
            parse_list(b"/a\nb\0/c\0", ListFormat::Raw),
            [PathBuf::from("/a\nb"), PathBuf::from("/c")]
        );
    }
}
