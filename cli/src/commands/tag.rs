//! `floe tag`

use floe_engine::{plan_tag, tag, TagChange};

use crate::{exit, output, GlobalArgs};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Snapshots to change (ids or unique prefixes); without ids, those the filters select
    #[arg(value_name = "ID")]
    ids: Vec<String>,
    /// Add this tag (repeatable; `a,b` adds two)
    #[arg(long, value_name = "TAG")]
    add: Vec<String>,
    /// Remove this tag (repeatable; `a,b` removes two)
    #[arg(long, value_name = "TAG")]
    remove: Vec<String>,
    /// Replace all tags with these (repeatable; `--set ""` removes every tag)
    #[arg(long, value_name = "TAG")]
    set: Vec<String>,
    #[command(flatten)]
    filter: crate::select::SnapshotFilter,
}

#[derive(serde::Serialize)]
struct Changed {
    old: String,
    new: String,
}

pub fn run(g: &GlobalArgs, a: Args) -> anyhow::Result<u8> {
    let repo = crate::repo::open(g)?;
    // Snapshot files are removed: no check or other tag may run meanwhile.
    let lock = crate::repo::lock(g, &repo, true, "tag")?;
    let snaps = crate::select::chosen(&repo, &a.ids, &a.filter)?;
    let split = crate::args::split_tags;
    let adds_or_removes = !a.add.is_empty() || !a.remove.is_empty();
    if !a.set.is_empty() && adds_or_removes {
        anyhow::bail!("--set replaces every tag: give it without --add and --remove");
    }
    let change = TagChange {
        add: split(&a.add),
        remove: split(&a.remove),
        set: (!a.set.is_empty()).then(|| split(&a.set)),
    };
    let plan = plan_tag(snaps, &change)?;
    let done = tag(&repo, plan, &lock.health())?;
    if g.json {
        let v: Vec<_> = done
            .iter()
            .map(|(o, n)| Changed {
                old: o.to_hex(),
                new: n.to_hex(),
            })
            .collect();
        output::json(&v)?;
    } else {
        for (old, new) in &done {
            output::note(format!("snapshot {} is now {}", old.short(), new.short()))?;
        }
        output::note(format!("{} snapshot(s) changed", done.len()))?;
    }
    Ok(exit::OK)
}
