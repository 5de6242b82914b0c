//! `floe object-lock status`

use crate::{exit, output, GlobalArgs};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Sub,
}

#[derive(Debug, clap::Subcommand)]
enum Sub {
    /// The mode and days of the repository's Object Lock, and the earliest retention date
    /// among the objects the snapshots need (one request per object)
    Status,
}

#[derive(serde::Serialize)]
struct Status {
    mode: &'static str,
    days: u32,
    needed_objects: usize,
    earliest_retention: Option<String>,
    unprotected_objects: usize,
}

pub fn run(g: &GlobalArgs, a: Args) -> anyhow::Result<u8> {
    let Sub::Status = a.command;
    let repo = crate::repo::open(g)?;
    let Some(r) = repo.config().object_lock else {
        anyhow::bail!(
            "this repository has no Object Lock (it is set when the repository is created: \
             floe init --object-lock-mode MODE --object-lock-days N)"
        );
    };
    let _lock = crate::repo::read_lock(g, &repo, "object-lock status")?;
    let index = repo.load_index()?;
    let report = floe_engine::retention_status(&repo, &index)?;
    let earliest = report
        .earliest
        .map(|d| d.format("%Y-%m-%d %H:%M:%S UTC").to_string());
    if g.json {
        return output::json(&Status {
            mode: r.mode.s3_name(),
            days: r.days,
            needed_objects: report.needed,
            earliest_retention: earliest,
            unprotected_objects: report.unprotected,
        })
        .map(|_| exit::OK);
    }
    output::line(format!(
        "mode {}, {} day(s) from each write",
        r.mode.s3_name().to_lowercase(),
        r.days
    ))?;
    output::line(format!(
        "{} object(s) needed by the snapshots; the earliest retention among them ends {}",
        report.needed,
        earliest.unwrap_or_else(|| "(none has a retention date)".into())
    ))?;
    if report.unprotected > 0 {
        eprintln!(
            "warning: {} needed object(s) have no retention date: nothing protects them",
            report.unprotected
        );
    }
    Ok(exit::OK)
}
