//! `floe dump`

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use floe_engine::plan_dump;

use crate::{exit, GlobalArgs};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Snapshot id (or a unique prefix) or `latest`, with `:PATH` of a file or folder; a folder
    /// (or the whole snapshot) is written as a tar stream
    #[arg(value_name = "SNAPSHOT[:PATH]", value_parser = crate::args::lossy())]
    snapshot: String,
    /// The file or folder to dump, as restic takes it (instead of `:PATH`)
    #[arg(value_name = "PATH", value_parser = crate::args::lossy())]
    path: Option<String>,
    #[command(flatten)]
    filter: crate::select::SnapshotFilter,
    /// Write to this file instead of standard output (replaced only once complete); restic's
    /// `-t, --target` is the same
    #[arg(
        short,
        long,
        value_name = "FILE",
        visible_alias = "target",
        short_alias = 't'
    )]
    output: Option<PathBuf>,
    /// The archive format of a folder: tar, the only one (restic's `--archive tar`)
    #[arg(short = 'a', long, value_name = "FORMAT", value_parser = ["tar"], default_value = "tar")]
    archive: String,
    #[command(flatten)]
    thaw: crate::thaw::ThawArgs,
}

/// A writer that reports the bytes written as progress.
struct Counted<W> {
    inner: W,
    sink: floe_engine::ProgressSink,
}

impl<W: Write> Write for Counted<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.sink.bytes_done(n as u64);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

fn report(stats: floe_engine::DumpStats) {
    if stats.skipped > 0 {
        eprintln!(
            "left out {} socket(s): a tar stream cannot hold them",
            stats.skipped
        );
    }
}

pub fn run(g: &GlobalArgs, a: Args) -> anyhow::Result<u8> {
    let repo = crate::repo::open(g)?;
    let _lock = crate::repo::read_lock(g, &repo, "dump")?;
    let (snap, sub) =
        crate::repo::find_snapshot_path(&repo, &a.snapshot, a.path.as_deref(), &a.filter)?;
    let index = crate::repo::index_for_reading(&repo)?;
    let plan = plan_dump(&repo, &index, &snap.snapshot, &sub)
        .map_err(|e| crate::repo::hint_relative(e, &sub))?;
    if a.output.is_none() && plan.single_file.is_none() && std::io::stdout().is_terminal() {
        anyhow::bail!(
            "{sub:?} is a folder, dumped as a tar stream: redirect standard output or use --output"
        );
    }
    match crate::thaw::prepare(&repo, &plan.needed_packs(&index), &a.thaw, "this dump")? {
        crate::thaw::Next::Go(gate) => {
            // A dump writes in order: it starts once every pack it needs is readable.
            if let Some(gate) = gate {
                gate.wait_all()?;
            }
        }
        crate::thaw::Next::Stop(code) => return Ok(code),
    }
    match &a.output {
        None => {
            let out = std::io::BufWriter::with_capacity(1 << 20, std::io::stdout());
            report(plan.write(&repo, &index, out)?);
        }
        Some(path) => {
            let dir = match path.parent() {
                Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
                _ => PathBuf::from("."),
            };
            let tmp = tempfile::Builder::new()
                .prefix(".floe-dump-")
                // What a new file gets (0666 less the umask), not tempfile's 0600.
                .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666))
                .tempfile_in(&dir)
                .map_err(|e| anyhow::anyhow!("cannot write in {}: {e}", dir.display()))?;
            let display = crate::progress::Display::start(g, false);
            let (count, bytes) = plan.totals();
            display.set_totals(count, bytes);
            let out = Counted {
                inner: std::io::BufWriter::with_capacity(1 << 20, tmp.as_file().try_clone()?),
                sink: display.sink(),
            };
            let stats = plan.write(&repo, &index, out);
            drop(display);
            report(stats?);
            tmp.as_file().sync_all()?;
            tmp.persist(path)
                .map_err(|e| anyhow::anyhow!("cannot create {}: {}", path.display(), e.error))?
                .flush()?;
        }
    }
    Ok(exit::OK)
}
