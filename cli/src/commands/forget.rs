//! `floe forget`

use anyhow::bail;
use floe_engine::{CalendarDuration, ForgetGroup, ForgetPlan, GroupBy, KeepPolicy, SnapshotEntry};

use crate::{exit, output, GlobalArgs};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Snapshots to remove by id (or unique prefix); no policy flags then
    #[arg(value_name = "ID")]
    ids: Vec<String>,
    /// Keep the newest N snapshots
    #[arg(short = 'l', long, value_name = "N", default_value_t = 0, value_parser = crate::args::parse_count, allow_negative_numbers = true)]
    keep_last: u32,
    /// Keep the newest snapshot of each of the last N hours that have one
    #[arg(short = 'H', long, value_name = "N", default_value_t = 0, value_parser = crate::args::parse_count, allow_negative_numbers = true)]
    keep_hourly: u32,
    /// Keep the newest snapshot of each of the last N days that have one
    #[arg(short = 'd', long, value_name = "N", default_value_t = 0, value_parser = crate::args::parse_count, allow_negative_numbers = true)]
    keep_daily: u32,
    /// Keep the newest snapshot of each of the last N ISO weeks that have one
    #[arg(short = 'w', long, value_name = "N", default_value_t = 0, value_parser = crate::args::parse_count, allow_negative_numbers = true)]
    keep_weekly: u32,
    /// Keep the newest snapshot of each of the last N months that have one
    #[arg(short = 'm', long, value_name = "N", default_value_t = 0, value_parser = crate::args::parse_count, allow_negative_numbers = true)]
    keep_monthly: u32,
    /// Keep the newest snapshot of each of the last N years that have one
    #[arg(short = 'y', long, value_name = "N", default_value_t = 0, value_parser = crate::args::parse_count, allow_negative_numbers = true)]
    keep_yearly: u32,
    /// Keep every snapshot within DURATION (e.g. 1y2m3d4h) of the group's newest
    #[arg(long, value_name = "DURATION")]
    keep_within: Option<CalendarDuration>,
    /// Keep the newest snapshot of every hour within DURATION of the group's newest
    #[arg(long, value_name = "DURATION")]
    keep_within_hourly: Option<CalendarDuration>,
    /// Keep the newest snapshot of every day within DURATION of the group's newest
    #[arg(long, value_name = "DURATION")]
    keep_within_daily: Option<CalendarDuration>,
    /// Keep the newest snapshot of every week within DURATION of the group's newest
    #[arg(long, value_name = "DURATION")]
    keep_within_weekly: Option<CalendarDuration>,
    /// Keep the newest snapshot of every month within DURATION of the group's newest
    #[arg(long, value_name = "DURATION")]
    keep_within_monthly: Option<CalendarDuration>,
    /// Keep the newest snapshot of every year within DURATION of the group's newest
    #[arg(long, value_name = "DURATION")]
    keep_within_yearly: Option<CalendarDuration>,
    /// Keep snapshots with this tag (repeatable; `a,b` needs both)
    #[arg(long = "keep-tag", value_name = "TAG")]
    keep_tags: Vec<String>,
    /// Apply the policy to each group of snapshots sharing these fields (host, paths, tags)
    #[arg(short = 'g', long, default_value = "host,paths")]
    group_by: GroupBy,
    #[command(flatten)]
    filter: crate::select::ForgetFilter,
    /// Allow a policy to remove every snapshot of a group
    #[arg(long)]
    unsafe_allow_remove_all: bool,
    /// Show what would be removed, remove nothing
    #[arg(short = 'n', long)]
    dry_run: bool,
    /// Prune the repository afterwards
    #[arg(long)]
    prune: bool,
    #[command(flatten)]
    prune_args: super::prune::PruneArgs,
}

impl Args {
    fn policy(&self) -> KeepPolicy {
        KeepPolicy {
            last: self.keep_last,
            hourly: self.keep_hourly,
            daily: self.keep_daily,
            weekly: self.keep_weekly,
            monthly: self.keep_monthly,
            yearly: self.keep_yearly,
            within: self.keep_within,
            within_hourly: self.keep_within_hourly,
            within_daily: self.keep_within_daily,
            within_weekly: self.keep_within_weekly,
            within_monthly: self.keep_within_monthly,
            within_yearly: self.keep_within_yearly,
            tags: self.keep_tags.clone(),
        }
    }

    fn selects(&self, s: &SnapshotEntry) -> bool {
        self.filter.selects(s)
    }
}

#[derive(serde::Serialize)]
struct JsonGroup<'a> {
    group: floe_engine::GroupKey,
    keep: Vec<JsonDecision<'a>>,
    remove: Vec<JsonDecision<'a>>,
}

#[derive(serde::Serialize)]
struct JsonDecision<'a> {
    id: String,
    time: &'a chrono::DateTime<chrono::FixedOffset>,
    reasons: Vec<String>,
}

pub fn run(g: &GlobalArgs, a: Args) -> anyhow::Result<u8> {
    let policy = a.policy();
    if !a.ids.is_empty() && !policy.is_empty() {
        bail!("give snapshot ids or a --keep policy, not both");
    }
    let repo = crate::repo::open(g)?;
    let by_policy = a.ids.is_empty() && !policy.is_empty();
    let read = || {
        if by_policy {
            // A damaged snapshot file is left out (and so kept): `forget ID` removes it.
            let listing = repo.snapshots_readable()?;
            crate::select::warn_damaged(&listing);
            Ok(Some(listing))
        } else {
            Ok(None)
        }
    };
    let (lock, snaps) = if a.dry_run && !a.prune {
        // A dry run of forget alone changes nothing and depends on no pack: a shared lock (none
        // with --no-lock), which holds up no backup, taken while the snapshots are read.
        crate::repo::read_locked(g, &repo, "forget", read)?
    } else {
        let lock = crate::repo::lock(g, &repo, true, "forget")?;
        (Some(lock), read()?)
    };
    if a.ids.is_empty() && policy.is_empty() {
        output::summary(&serde_json::json!({ "groups": [], "removed": [] }), g.json)?;
        if !g.json {
            output::note("no policy given (--keep-*): nothing removed")?;
        }
        return Ok(exit::OK);
    }
    let mut damaged = Vec::new();
    let plan = if let Some(listing) = snaps {
        damaged.extend(listing.damaged.iter().map(|(id, _)| *id));
        let snaps: Vec<SnapshotEntry> = listing
            .readable
            .into_iter()
            .filter(|s| a.selects(s))
            .collect();
        let now = floe_engine::now_local();
        floe_engine::plan_forget_by_policy(
            snaps,
            &policy,
            a.group_by,
            now,
            a.unsafe_allow_remove_all,
        )?
    } else {
        floe_engine::plan_forget_by_ids(&repo, &a.ids)?
    };
    let json_groups = if g.json {
        plan.groups
            .iter()
            .map(json_group)
            .collect::<Result<_, _>>()?
    } else {
        print_plan(&plan)?;
        Vec::new()
    };
    if a.prune {
        refuse_prune_beside_damage(&repo, &plan.remove, by_policy.then_some(damaged))?;
    }
    let held = lock.as_ref().filter(|_| !a.dry_run);
    if let Some(lock) = held {
        floe_engine::forget(&repo, &plan, &lock.health())?;
    }
    let remove = &plan.remove;
    if !g.json {
        if a.dry_run {
            output::note(format!(
                "dry run: {} snapshot(s) would be removed",
                remove.len()
            ))?;
        } else {
            output::note(format!("removed {} snapshot(s)", remove.len()))?;
        }
    }
    let prune = if a.prune {
        let mut opts = super::prune::lifecycle_aware(&repo, a.prune_args.options());
        // A dry run plans as if the snapshots were already gone.
        opts.ignore_snapshots = remove.clone();
        Some(super::prune::prune_locked(g, &repo, held, &opts)?)
    } else {
        None
    };
    output::summary(
        &serde_json::json!({
            "dry_run": a.dry_run,
            "groups": json_groups,
            "removed": remove.iter().map(|id| id.to_hex()).collect::<Vec<_>>(),
            "prune": prune,
        }),
        g.json,
    )?;
    Ok(exit::OK)
}

const TIME_FORMAT: &str = "%Y-%m-%d %H:%M:%S %:z";

/// The plan as text: the snapshots named, or each group with its decisions.
fn print_plan(plan: &ForgetPlan) -> anyhow::Result<()> {
    for n in &plan.named {
        match n.time {
            Some(t) => output::note(format!("remove {} {}", n.id.short(), t.format(TIME_FORMAT)))?,
            None => output::note(format!("remove {}", n.id.short()))?,
        }
    }
    for group in &plan.groups {
        output::note(format!("group {}", group.key))?;
        for d in &group.decisions {
            let Some(s) = group.snapshot(&d.id) else {
                continue;
            };
            let reasons: Vec<String> = d.reasons.iter().map(|r| r.to_string()).collect();
            output::note(format!(
                "  {:<6}  {}  {}  {}",
                if d.keep { "keep" } else { "remove" },
                d.id.short(),
                s.snapshot.time.format(TIME_FORMAT),
                reasons.join(", ")
            ))?;
        }
    }
    Ok(())
}

fn json_group(group: &ForgetGroup) -> serde_json::Result<serde_json::Value> {
    let decisions = |keep: bool| {
        group
            .decisions
            .iter()
            .filter(|d| d.keep == keep)
            .filter_map(|d| {
                group.snapshot(&d.id).map(|s| JsonDecision {
                    id: d.id.to_hex(),
                    time: &s.snapshot.time,
                    reasons: d.reasons.iter().map(|r| r.to_string()).collect(),
                })
            })
            .collect::<Vec<_>>()
    };
    serde_json::to_value(JsonGroup {
        group: group.key.clone(),
        keep: decisions(true),
        remove: decisions(false),
    })
}

/// Before anything is forgotten: a prune would refuse to run beside a damaged snapshot file
/// that stays, so `forget --prune` refuses at once rather than forget and then stop.
/// `damaged` is what the policy's reading found (`None`: read them now).
fn refuse_prune_beside_damage(
    repo: &floe_engine::Repository,
    remove: &[floe_engine::SnapshotId],
    damaged: Option<Vec<floe_engine::SnapshotId>>,
) -> anyhow::Result<()> {
    let damaged = match damaged {
        Some(d) => d,
        None => repo
            .snapshots_readable()?
            .damaged
            .into_iter()
            .map(|(id, _)| id)
            .collect(),
    };
    if let Some(id) = damaged.iter().find(|id| !remove.contains(id)) {
        bail!(
            "snapshot {} is damaged, and prune deletes nothing while a damaged snapshot file \
             remains: nothing was forgotten (`floe forget {}` removes it)",
            id.short(),
            id.to_hex()
        );
    }
    Ok(())
}
