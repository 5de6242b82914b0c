//! `floe drill`: restore a random sample of files into a scratch folder, read them back, and
//! estimate what a full restore would take and cost.

use std::path::{Path, PathBuf};

use floe_engine::{
    DrillOptions, DrillReport, RestoreOptions, SampleFailure, SampleRestore, SampleSize,
};

use crate::{exit, output, GlobalArgs};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub filter: crate::select::SnapshotFilter,
    /// Files to sample from the latest snapshot of each group (host and paths) [default: 10]
    #[arg(long, value_name = "N", conflicts_with = "size", value_parser = clap::value_parser!(u32).range(1..))]
    pub files: Option<u32>,
    /// Sample files from each group until their sizes add up to SIZE (e.g. 500M, 2G), instead
    /// of a number of files
    #[arg(long, value_name = "SIZE", value_parser = parse_sample_size)]
    pub size: Option<u64>,
    /// Draw the sample with this seed: every drill prints its own, so that a failed drill can
    /// be replayed on the same files
    #[arg(long, value_name = "S")]
    pub seed: Option<u64>,
    /// Restore into this folder (created if missing) instead of a temporary one
    #[arg(short, long, value_name = "DIR")]
    pub target: Option<PathBuf>,
    /// Leave the restored files in place instead of removing them at the end
    #[arg(long)]
    pub keep: bool,
    #[command(flatten)]
    pub thaw: crate::thaw::ThawArgs,
}

fn parse_sample_size(s: &str) -> Result<u64, String> {
    match crate::args::parse_size(s)? {
        0 => Err("expected a size above 0".to_string()),
        n => Ok(n),
    }
}

pub fn run(g: &GlobalArgs, a: Args) -> anyhow::Result<u8> {
    let repo = crate::repo::open(g)?;
    let _lock = crate::repo::read_lock(g, &repo, "drill")?;
    let snapshots = a.filter.some_snapshots(&repo)?;
    if snapshots.is_empty() {
        anyhow::bail!("the repository has no snapshot to drill");
    }
    let index = crate::repo::index_for_reading(&repo)?;
    let opts = DrillOptions {
        size: match (a.files, a.size) {
            (_, Some(bytes)) => SampleSize::Bytes(bytes),
            (Some(n), None) => SampleSize::Files(n as usize),
            (None, None) => SampleSize::default(),
        },
        seed: a.seed,
        thaw: a.thaw.thaw,
        tier: a.thaw.thaw_tier,
        prices: crate::thaw::load_prices(a.thaw.prices.as_deref())?,
    };
    let plan = floe_engine::plan_drill(&repo, &index, &snapshots, &opts)?;
    let seed = plan.seed();
    if !g.json {
        output::note(format!(
            "drill of {} snapshot(s) with seed {seed}: {} file(s), {}",
            plan.snapshots().count(),
            plan.files(),
            output::bytes(plan.bytes())
        ))?;
    }
    if plan.left_out_cold() > 0 {
        eprintln!(
            "note: left out {} file(s) whose data is archived (--thaw samples them too)",
            plan.left_out_cold()
        );
    }
    // Without --thaw only readable files were sampled: there is nothing to thaw.
    let gate = if a.thaw.thaw {
        match crate::thaw::prepare(&repo, &plan.needed_packs(), &a.thaw, "this drill")? {
            crate::thaw::Next::Go(gate) => gate,
            crate::thaw::Next::Stop(code) => return Ok(code),
        }
    } else {
        None
    };
    let mut scratch = Scratch::new(a.target, plan.snapshots().map(|s| s.id.short()))?;
    scratch.keep = a.keep;
    scratch.quiet = g.json;
    let drilled = floe_engine::drill(&plan, scratch.dir(), |snap, includes, dir| {
        let opts = RestoreOptions {
            target: dir.to_path_buf(),
            includes,
            verify: true,
            gate: gate.clone(),
            ..Default::default()
        };
        let s = floe_engine::restore(&repo, &index, snap, "", &opts)?;
        Ok(SampleRestore {
            files_verified: s.files_verified,
            failures: s
                .errors
                .into_iter()
                .chain(s.verify_errors)
                .map(|e| SampleFailure {
                    path: e.path,
                    pack: e.pack,
                    message: e.message,
                })
                .collect(),
        })
    });
    drop(scratch);
    let report =
        drilled.map_err(|e| anyhow::Error::from(e).context(format!("drill with seed {seed}")))?;
    print(g, &report, a.thaw.thaw_tier)?;
    #[derive(serde::Serialize)]
    struct Json<'a> {
        ok: bool,
        #[serde(flatten)]
        report: &'a DrillReport,
    }
    output::summary(
        &Json {
            ok: report.ok(),
            report: &report,
        },
        g.json,
    )?;
    if !report.ok() {
        let message = format!(
            "{} of the {} sampled file(s) are damaged; the same command with --seed {seed} \
             replays this drill",
            report.files.iter().filter(|f| !f.ok).count(),
            report.files.len()
        );
        eprintln!("error: {message}");
        output::set_failure(message);
        return Ok(exit::ERROR);
    }
    if report.files.is_empty() && plan.left_out_cold() > 0 {
        eprintln!(
            "error: every file's data is archived: nothing was sampled; run again with --thaw"
        );
        return Ok(exit::NEEDS_THAW);
    }
    Ok(exit::OK)
}

/// "3d 4h", "2h 5m", "4m 10s", "1.5s".
fn duration(secs: f64) -> String {
    let s = secs.round() as u64;
    let (d, h, m) = (s / 86_400, s % 86_400 / 3600, s % 3600 / 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{secs:.1}s"),
        (0, 0, m) => format!("{m}m {}s", s % 60),
        (0, h, m) => format!("{h}h {m}m"),
        (d, h, _) => format!("{d}d {h}h"),
    }
}

/// Each file's verdict (damaged ones always, on stderr; verified ones with -v), then the
/// summary and the estimate.
fn print(g: &GlobalArgs, r: &DrillReport, tier: floe_engine::ThawTier) -> anyhow::Result<()> {
    for d in &r.files_damaged {
        let pack = d
            .pack
            .map(|p| format!(" (pack {})", p.to_hex()))
            .unwrap_or_default();
        eprintln!(
            "DAMAGED  {} {}{pack}: {}",
            d.snapshot.short(),
            d.path,
            d.message
        );
    }
    if g.json {
        return Ok(());
    }
    if g.verbose > 0 || !r.ok() {
        for f in r.files.iter().filter(|f| f.ok) {
            output::line(format!(
                "OK       {} {} ({})",
                f.snapshot.short(),
                f.path,
                output::bytes(f.size)
            ))?;
        }
    }
    let estimate = match r.estimated_recovery_seconds {
        Some(s) => format!(
            "; a full restore of {} would take about {}",
            output::bytes(r.total_bytes),
            duration(s)
        ),
        None => String::new(),
    };
    output::note(format!(
        "verified {} file(s) ({}) in {}, {:.1} MiB/s{estimate}",
        r.files_verified,
        output::bytes(r.bytes_verified),
        duration(r.duration_seconds),
        r.throughput_bytes_per_second / (1u64 << 20) as f64,
    ))?;
    let (packs, bytes) = r
        .groups
        .iter()
        .fold((0, 0), |(p, b), gr| (p + gr.cold.packs, b + gr.cold.bytes));
    if packs > 0 {
        let unavailable: Vec<&str> = r
            .groups
            .iter()
            .flat_map(|gr| gr.cold.unavailable.iter().map(String::as_str))
            .collect();
        output::note(format!(
            "of which {} in {packs} archived pack(s): a thaw adds up to {} and costs about ${:.2} ({} tier){}",
            output::bytes(bytes),
            duration(r.cold_wait_seconds as f64),
            r.cold_cost_usd,
            tier.name().to_lowercase(),
            if unavailable.is_empty() {
                String::new()
            } else {
                format!("; the tier cannot retrieve {}", unavailable.join(", "))
            }
        ))?;
    }
    Ok(())
}

/// The folder the drill restores into. Unless kept, what the drill restored there (a folder per
/// snapshot, which must not exist before) is removed when the drill ends, however it ends, and
/// so is the folder itself when the drill made it.
struct Scratch {
    dir: PathBuf,
    made: bool,
    restored: Vec<PathBuf>,
    /// Leave everything in place (`--keep`).
    keep: bool,
    /// Say nothing on stdout (`--json`).
    quiet: bool,
}

impl Scratch {
    fn new(
        target: Option<PathBuf>,
        snapshots: impl Iterator<Item = String>,
    ) -> anyhow::Result<Self> {
        let (dir, made) = match target {
            Some(dir) => {
                let made = !dir.exists();
                std::fs::create_dir_all(&dir)
                    .map_err(|e| anyhow::anyhow!("create {}: {e}", dir.display()))?;
                (dir, made)
            }
            None => {
                let tmp = tempfile::Builder::new()
                    .prefix("floe-drill-")
                    .tempdir()
                    .map_err(|e| anyhow::anyhow!("create a temporary folder: {e}"))?;
                (tmp.keep(), true)
            }
        };
        let restored: Vec<PathBuf> = snapshots.map(|s| dir.join(s)).collect();
        // Checked here, before anything is made, so that what was there is never removed.
        if let Some(taken) = restored.iter().find(|d| d.symlink_metadata().is_ok()) {
            anyhow::bail!(
                "{} exists already: a drill restores into a new folder",
                taken.display()
            );
        }
        Ok(Scratch {
            dir,
            made,
            restored,
            keep: false,
            quiet: false,
        })
    }

    fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if self.keep {
            if !self.quiet {
                let _ = output::note(format!("restored files kept in {}", self.dir.display()));
            }
            return;
        }
        for d in &self.restored {
            if let Err(e) = remove_tree(d) {
                eprintln!("warning: cannot remove {}: {e}", d.display());
            }
        }
        if self.made {
            let _ = std::fs::remove_dir(&self.dir);
        }
    }
}

/// Removes a restored folder, first making each folder in it writable (a restore gives folders
/// their snapshot modes, which may forbid removing what they hold).
fn remove_tree(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fn open_up(dir: &Path) {
        let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                open_up(&e.path());
            }
        }
    }
    match std::fs::symlink_metadata(dir) {
        Ok(m) if m.is_dir() => {
            open_up(dir);
            std::fs::remove_dir_all(dir)
        }
        Ok(_) => std::fs::remove_file(dir),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn durations_read_at_a_glance() {
        assert_eq!(super::duration(1.54), "1.5s");
        assert_eq!(super::duration(250.0), "4m 10s");
        assert_eq!(super::duration(2.0 * 3600.0 + 300.0), "2h 5m");
        assert_eq!(super::duration(3.0 * 86_400.0 + 4.0 * 3600.0), "3d 4h");
    }
}
