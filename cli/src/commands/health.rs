//! `floe health`: is every machine still backed up?

use crate::{exit, output, GlobalArgs};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The age past which a group's newest snapshot counts as missing its backup (e.g. 26h,
    /// 8d): a daily job with some slack
    #[arg(long, value_name = "DURATION", value_parser = crate::repo::parse_wait)]
    max_age: std::time::Duration,
    #[command(flatten)]
    filter: crate::select::SnapshotFilter,
}

/// "3d 4h", "2h 5m", "40s".
fn age(secs: u64) -> String {
    let (d, h, m) = (secs / 86_400, secs % 86_400 / 3600, secs % 3600 / 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{secs}s"),
        (0, 0, m) => format!("{m}m"),
        (0, h, m) => format!("{h}h {m}m"),
        (d, h, _) => format!("{d}d {h}h"),
    }
}

pub fn run(g: &GlobalArgs, a: Args) -> anyhow::Result<u8> {
    let repo = crate::repo::open(g)?;
    // Reads snapshot and lock files only, and writes no lock: a monitor may run it often.
    let snapshots = a.filter.snapshots(&repo)?;
    let report = floe_engine::health(&repo, &snapshots, a.max_age, floe_engine::now_local())?;
    #[derive(serde::Serialize)]
    struct Json<'a> {
        ok: bool,
        #[serde(flatten)]
        report: &'a floe_engine::HealthReport,
    }
    let json = Json {
        ok: report.ok(),
        report: &report,
    };
    output::summary(&json, g.json)?;
    if !g.json {
        print(&report, &a)?;
    }
    Ok(if report.ok() { exit::OK } else { exit::STALE })
}

fn print(r: &floe_engine::HealthReport, a: &Args) -> anyhow::Result<()> {
    if r.groups.is_empty() {
        output::line(if a.filter.is_empty() {
            "STALE  the repository has no snapshot"
        } else {
            "STALE  no snapshot matches the filters (--host, --tag, --path)"
        })?;
    }
    for gr in &r.groups {
        if gr.in_future {
            eprintln!(
                "warning: the newest snapshot of {} [{}] is dated {}, in the future: is that \
                 host's clock wrong?",
                gr.host,
                gr.paths.join(", "),
                gr.newest.format("%Y-%m-%d %H:%M:%S")
            );
        }
        // Under -q only what is wrong is printed.
        let print = |s: String| match gr.stale {
            true => output::line(s),
            false => output::note(s),
        };
        print(format!(
            "{}  {} [{}]  newest {} ago ({}, {}){}",
            if gr.stale { "STALE" } else { "ok   " },
            gr.host,
            gr.paths.join(", "),
            age(gr.age_seconds),
            gr.newest.format("%Y-%m-%d %H:%M:%S"),
            &gr.newest_id[..8],
            if gr.stale {
                format!(": older than {}", age(r.max_age_seconds))
            } else {
                String::new()
            }
        ))?;
    }
    for l in &r.stale_locks {
        eprintln!("warning: stale lock: {l} (`floe unlock` removes it)");
    }
    if r.damaged_locks > 0 {
        eprintln!(
            "warning: {} lock file(s) cannot be read (`floe unlock --remove-all` removes them)",
            r.damaged_locks
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn ages_read_at_a_glance() {
        assert_eq!(super::age(40), "40s");
        assert_eq!(super::age(125), "2m");
        assert_eq!(super::age(3 * 3600 + 60), "3h 1m");
        assert_eq!(super::age(2 * 86_400 + 5 * 3600 + 7), "2d 5h");
    }
}
