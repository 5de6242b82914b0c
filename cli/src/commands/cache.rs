//! `floe cache`: the local caches of remote repositories, their size and last use; removing
//! those unused for a while, or one by its repository id.

use anyhow::{bail, Context};

use crate::{output, GlobalArgs};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Remove the caches unused for --max-age days
    #[arg(long)]
    cleanup: bool,
    /// With --cleanup: the days since last use past which a cache is removed
    #[arg(long, value_name = "DAYS", default_value_t = 30)]
    max_age: u32,
    /// Remove the cache of this repository (its id, or a unique prefix of it)
    #[arg(long, value_name = "ID", conflicts_with = "cleanup")]
    remove: Option<String>,
}

pub fn run(g: &GlobalArgs, a: Args) -> anyhow::Result<u8> {
    let Some(base) = crate::cache::base(&g.cache) else {
        bail!("no cache folder: set --cache-dir, FLOE_CACHE_DIR, XDG_CACHE_HOME or HOME");
    };
    let caches = floe_engine::list_caches(&base)
        .with_context(|| format!("reading the cache folder {}", base.display()))?;
    let now = chrono::Utc::now();
    let chosen: Vec<&floe_engine::CacheEntry> = match (&a.remove, a.cleanup) {
        (Some(prefix), _) => {
            let m: Vec<_> = caches
                .iter()
                .filter(|c| c.id.starts_with(prefix.as_str()))
                .collect();
            match m.len() {
                1 => m,
                0 => bail!("no cache of a repository {prefix} in {}", base.display()),
                n => bail!("{prefix} names {n} caches: give more digits"),
            }
        }
        (None, true) => caches
            .iter()
            .filter(|c| {
                c.last_used
                    .is_none_or(|t| (now - t).num_days() >= i64::from(a.max_age))
            })
            .collect(),
        (None, false) => return list(g, &base, &caches, now),
    };
    for c in &chosen {
        std::fs::remove_dir_all(&c.path)
            .with_context(|| format!("removing {}", c.path.display()))?;
        output::note(format!(
            "removed the cache of {} ({})",
            &c.id[..8],
            output::bytes(c.bytes)
        ))?;
    }
    if chosen.is_empty() {
        output::note(format!("no cache unused for {} days or more", a.max_age))?;
    }
    Ok(crate::exit::OK)
}

fn list(
    g: &GlobalArgs,
    base: &std::path::Path,
    caches: &[floe_engine::CacheEntry],
    now: chrono::DateTime<chrono::Utc>,
) -> anyhow::Result<u8> {
    if g.json {
        output::json(&caches)?;
        return Ok(crate::exit::OK);
    }
    output::line(format!("caches in {}:", base.display()))?;
    for c in caches {
        let used = match c.last_used {
            Some(t) => format!("used {} day(s) ago", (now - t).num_days()),
            None => "never used".into(),
        };
        output::line(format!(
            "{}  {:>11}  {used}",
            &c.id[..8],
            output::bytes(c.bytes)
        ))?;
    }
    if caches.is_empty() {
        output::line("none")?;
    }
    Ok(crate::exit::OK)
}
