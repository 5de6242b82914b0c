//! `--thaw` and friends: what restore and check do when the data packs they need are archived.

use std::collections::BTreeSet;
use std::io::IsTerminal;
use std::sync::Arc;

use floe_engine::{PackGate, PackId, Repository, ThawTier};
use floe_engine::{PollOptions, Prices, ThawPlan, ThawSummary, Waiter};

use crate::output;

#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Archived data (GLACIER, DEEP_ARCHIVE)")]
pub struct ThawArgs {
    /// Ask the store to restore (thaw) the archived data packs this command needs, then wait
    /// for them; without it, floe stops with the plan: packs, bytes, wait and cost
    #[arg(long)]
    pub thaw: bool,
    /// Retrieval tier: bulk (cheapest, slowest), standard, or expedited (GLACIER only)
    #[arg(long, value_name = "TIER", default_value = "standard", value_parser = parse_tier)]
    pub thaw_tier: ThawTier,
    /// Days the thawed copies stay readable
    #[arg(long, value_name = "DAYS", default_value_t = 7, value_parser = clap::value_parser!(u32).range(1..=3650))]
    pub thaw_days: u32,
    /// With --thaw: ask for the thaw and exit (code 13) without waiting; the same command run
    /// later continues, without asking again for packs already thawing
    #[arg(long, requires = "thaw")]
    pub no_wait: bool,
    /// First pause between two polls of thawing packs (doubles up to 15m)
    #[arg(long, value_name = "DURATION", default_value = "1m", value_parser = crate::repo::parse_wait, hide = true)]
    pub thaw_poll: std::time::Duration,
    /// JSON file of prices replacing the built-in ones in the thaw cost (same shape as
    /// `stats --tiers --json`'s "prices")
    #[arg(long = "prices", value_name = "FILE")]
    pub prices: Option<std::path::PathBuf>,
}

/// The built-in price table, or with the entries of `file` replacing its own.
pub fn load_prices(file: Option<&std::path::Path>) -> anyhow::Result<Prices> {
    match file {
        Some(p) => {
            let bytes =
                std::fs::read(p).map_err(|e| anyhow::anyhow!("read {}: {e}", p.display()))?;
            Ok(Prices::with_overrides(&bytes)?)
        }
        None => Ok(Prices::default()),
    }
}

fn parse_tier(s: &str) -> Result<ThawTier, String> {
    ThawTier::parse(s).ok_or_else(|| {
        format!("unknown retrieval tier {s:?}: expected bulk, standard or expedited")
    })
}

/// What the caller does next.
pub enum Next {
    /// Read now, waiting at the gate for thawing packs (`None`: everything is readable).
    Go(Option<PackGate>),
    /// Stop with this exit code: the plan was printed, or the thaw asked for without waiting.
    Stop(u8),
}

/// Works out the state of the packs a command needs and acts on `--thaw`.
pub fn prepare(
    repo: &Repository,
    packs: &BTreeSet<PackId>,
    a: &ThawArgs,
    what: &str,
) -> anyhow::Result<Next> {
    if !repo.backend().is_remote() {
        return Ok(Next::Go(None)); // local storage has no archive classes
    }
    let plan = ThawPlan::of(repo, packs)?;
    if plan.all_readable() {
        return Ok(Next::Go(None));
    }
    let prices = load_prices(a.prices.as_deref())?;
    let s = plan.summary(a.thaw_tier, &prices);
    print_plan(&plan, &s, a, what, &prices.as_of);
    if !a.thaw {
        eprintln!(
            "nothing was read; run again with --thaw to ask for them \
             (--thaw-tier bulk|standard|expedited, --thaw-days N, --no-wait)"
        );
        return Ok(Next::Stop(crate::exit::NEEDS_THAW));
    }
    let r = floe_engine::request_thaw(repo, &plan, a.thaw_tier, a.thaw_days)?;
    eprintln!(
        "asked to thaw {} pack(s) for {} day(s); {} were already thawing",
        r.started,
        a.thaw_days,
        r.already_in_progress + s.in_progress_packs
    );
    if a.no_wait {
        eprintln!("not waiting (--no-wait): run the same command again to continue");
        return Ok(Next::Stop(crate::exit::NEEDS_THAW));
    }
    let pending = plan.pending();
    let total = pending.len();
    let tty = std::io::stderr().is_terminal();
    let started = std::time::Instant::now();
    let waiter = Waiter::new(
        repo,
        total,
        PollOptions {
            first: a.thaw_poll,
            ..Default::default()
        },
    )
    .with_progress(move |done, total| {
        if tty {
            eprint!(
                "\rthawed {done} of {total} pack(s) after {}s   ",
                started.elapsed().as_secs()
            );
            if done == total {
                eprintln!();
            }
        }
    });
    Ok(Next::Go(Some(PackGate {
        pending,
        waiter: Arc::new(waiter),
    })))
}

/// The thaw a command would need (`--dry-run`), on stderr; nothing when every pack it reads is
/// readable.
pub fn show(
    repo: &Repository,
    packs: &BTreeSet<PackId>,
    a: &ThawArgs,
    what: &str,
) -> anyhow::Result<()> {
    if !repo.backend().is_remote() {
        return Ok(());
    }
    let plan = ThawPlan::of(repo, packs)?;
    if !plan.all_readable() {
        let prices = load_prices(a.prices.as_deref())?;
        let s = plan.summary(a.thaw_tier, &prices);
        print_plan(&plan, &s, a, what, &prices.as_of);
    }
    Ok(())
}

/// The plan on stderr: how many packs are archived, in which classes, and what a thaw with the
/// chosen tier takes and costs.
fn print_plan(plan: &ThawPlan, s: &ThawSummary, a: &ThawArgs, what: &str, prices_as_of: &str) {
    let classes: Vec<String> = s
        .by_class
        .iter()
        .map(|(c, (n, b))| format!("{n} in {c} ({})", output::bytes(*b)))
        .collect();
    eprintln!(
        "{} of the {} data pack(s) {what} needs are archived: {}{}",
        s.archived_packs + s.in_progress_packs,
        plan.packs.len(),
        if classes.is_empty() {
            "none waiting for a request".to_string()
        } else {
            format!("{} not thawed", classes.join(", "))
        },
        if s.in_progress_packs > 0 {
            format!(
                "; {} ({}) already thawing",
                s.in_progress_packs,
                output::bytes(s.in_progress_bytes)
            )
        } else {
            String::new()
        }
    );
    if s.archived_packs > 0 {
        if s.unavailable.is_empty() {
            eprintln!(
                "thawing {} with the {} tier takes {} and costs about ${:.2} ({})",
                output::bytes(s.archived_bytes),
                a.thaw_tier.name().to_lowercase(),
                s.wait,
                s.cost_usd,
                prices_as_of
            );
        } else {
            eprintln!(
                "the {} tier is not available for {}",
                a.thaw_tier.name().to_lowercase(),
                s.unavailable.join(", ")
            );
        }
    }
}
