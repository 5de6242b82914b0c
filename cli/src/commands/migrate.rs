//! `floe migrate`

use crate::{exit, output, GlobalArgs};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The migration to run (`upgrade_repo_v2`); without one, list those that apply
    #[arg(value_name = "NAME", value_parser = migration_name)]
    name: Option<String>,
}

/// A migration this build knows, checked before the password is asked for.
fn migration_name(s: &str) -> Result<String, String> {
    let known: Vec<&str> = floe_engine::MIGRATIONS.iter().map(|m| m.name).collect();
    if known.contains(&s) {
        Ok(s.to_string())
    } else {
        Err(format!(
            "no migration is called {s:?} (known: {})",
            known.join(", ")
        ))
    }
}

#[derive(serde::Serialize)]
struct JsonList {
    format_version: u32,
    available: Vec<floe_engine::Migration>,
}

pub fn run(g: &GlobalArgs, a: Args) -> anyhow::Result<u8> {
    let mut repo = crate::repo::open(g)?;
    let Some(name) = a.name else {
        return list(g, &repo);
    };
    let _lock = crate::repo::lock(g, &repo, true, "migrate")?;
    let m = floe_engine::migrate(&mut repo, &name)?;
    output::note(format!(
        "migration {} done: the repository is at format version {}",
        m.name,
        repo.config().version
    ))?;
    Ok(exit::OK)
}

fn list(g: &GlobalArgs, repo: &floe_engine::Repository) -> anyhow::Result<u8> {
    let available = floe_engine::available_migrations(repo);
    if g.json {
        output::json(&JsonList {
            format_version: repo.config().version,
            available,
        })?;
        return Ok(exit::OK);
    }
    output::line(format!(
        "repository format version {}",
        repo.config().version
    ))?;
    if available.is_empty() {
        output::line("no migration applies")?;
    }
    for m in available {
        output::line(format!("{}: {}", m.name, m.description))?;
    }
    Ok(exit::OK)
}
