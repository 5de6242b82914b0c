//! `floe rollback`

use crate::{exit, output, GlobalArgs};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Bring the repository's objects back to how they were at this time (RFC 3339, or local
    /// time as 2024-05-01 03:00:00)
    #[arg(long, value_name = "TIME", value_parser = crate::args::parse_time)]
    to: chrono::DateTime<chrono::FixedOffset>,
    /// Change the bucket; without it, only print what would change
    #[arg(long)]
    write: bool,
}

#[derive(serde::Serialize)]
struct Json<'a> {
    to: String,
    write: bool,
    snapshots_then: usize,
    #[serde(flatten)]
    plan: &'a floe_engine::RollbackPlan,
}

pub fn run(g: &GlobalArgs, a: Args) -> anyhow::Result<u8> {
    if g.as_of.is_some() {
        anyhow::bail!("rollback changes the bucket: give the time with --to, not --as-of");
    }
    if let Some(loc) = g.repo.as_deref().filter(|l| !l.starts_with("s3:")) {
        anyhow::bail!(
            "rollback brings back earlier versions of objects, which only an S3 bucket with \
             versioning keeps; {loc} is not on S3"
        );
    }
    let to = a.to.to_utc();
    // The repository as it was then must open: that proves the time is a good one, and gives
    // the retention that copied-back objects must carry.
    let then = {
        let s3 = crate::repo::s3_backend(g)?;
        let backend = std::sync::Arc::new(s3.as_of(to)?);
        let backend = crate::repo::existing(backend)
            .map_err(|e| e.context(format!("the repository as of {}", a.to)))?;
        let password = crate::password::get(g, false)?;
        floe_engine::Repository::open(backend, &password)
            .map_err(|e| anyhow::Error::from(e).context(format!("the repository as of {}", a.to)))?
    };
    let snapshots_then = then.snapshots()?.len();
    let s3 = crate::repo::s3_backend(g)?;
    if let Some(r) = then.config().object_lock {
        floe_engine::Backend::set_retention(&s3, r)?;
    }
    if a.write {
        refuse_while_busy(&s3)?;
    }
    let plan = floe_engine::plan_rollback(&s3.versions()?, to);
    if g.json {
        output::json(&Json {
            to: to.to_rfc3339(),
            write: a.write,
            snapshots_then,
            plan: &plan,
        })?;
    } else {
        print_plan(&plan, snapshots_then, &a)?;
    }
    if a.write && !plan.is_empty() {
        let n = floe_engine::rollback(&s3, &plan)?;
        output::note(format!(
            "rolled back {n} object(s); run `floe check` to confirm"
        ))?;
    } else if !plan.is_empty() {
        output::note("nothing was changed: run again with --write to roll back")?;
    }
    Ok(exit::OK)
}

/// A lock file younger than the age at which locks turn stale may belong to a running command
/// (a backup would write a snapshot over packs the rollback hides): refuse until it is gone.
fn refuse_while_busy(s3: &floe_engine::S3Backend) -> anyhow::Result<()> {
    use floe_engine::{Backend, FileType};
    let stale_after = floe_engine::LOCK_STALE_AFTER;
    let now = std::time::SystemTime::now();
    let busy = s3.list(FileType::Lock)?.into_iter().filter(|l| {
        l.modified
            .is_none_or(|m| now.duration_since(m).unwrap_or_default() < stale_after)
    });
    if let Some(l) = busy.into_iter().next() {
        anyhow::bail!(
            "lock {} is less than {} minutes old: a command may be running on the repository; \
             stop scheduled jobs and run the rollback again once no lock is that recent",
            crate::output::hex(&l.id[..4]),
            stale_after.as_secs() / 60
        );
    }
    Ok(())
}

fn print_plan(
    plan: &floe_engine::RollbackPlan,
    snapshots_then: usize,
    a: &Args,
) -> anyhow::Result<()> {
    output::line(format!(
        "as of {}, the repository had {snapshots_then} snapshot(s)",
        a.to
    ))?;
    if plan.is_empty() {
        output::line("no object changed since then: nothing to roll back")?;
        return Ok(());
    }
    let verb = |now: &'static str, later: &'static str| if a.write { now } else { later };
    output::line(format!(
        "{} {} deleted object(s) (removing the delete markers made since)",
        verb("bringing back", "would bring back"),
        plan.undelete.len()
    ))?;
    output::line(format!(
        "{} {} overwritten object(s) to the version current then",
        verb("reverting", "would revert"),
        plan.revert.len()
    ))?;
    output::line(format!(
        "{} {} object(s) written since",
        verb("hiding", "would hide"),
        plan.hide.len()
    ))?;
    if output::quiet() {
        return Ok(());
    }
    for (k, _) in &plan.undelete {
        output::line(format!("  bring back {k}"))?;
    }
    for (k, _) in &plan.revert {
        output::line(format!("  revert {k}"))?;
    }
    for k in &plan.hide {
        output::line(format!("  hide {k}"))?;
    }
    Ok(())
}
