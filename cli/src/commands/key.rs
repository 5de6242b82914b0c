//! `floe key`: the passwords that open the repository, one key file each.

use std::path::PathBuf;

use anyhow::bail;
use floe_engine::{KeyId, KeyInfo, Repository};

use crate::{exit, output, GlobalArgs};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: KeyCommand,
}

#[derive(Debug, clap::Subcommand)]
enum KeyCommand {
    /// List the key files (the current one is marked with *)
    List,
    /// Add a password: a new key file for the same repository
    Add {
        /// Read the new password from this file (first line) instead of asking twice
        #[arg(long, value_name = "FILE")]
        new_password_file: Option<PathBuf>,
    },
    /// Remove a key file (not the current one, nor the last)
    Remove {
        /// Key id or a unique prefix
        id: String,
    },
    /// Change the password that opened the repository
    Passwd {
        /// Read the new password from this file (first line) instead of asking twice
        #[arg(long, value_name = "FILE")]
        new_password_file: Option<PathBuf>,
    },
}

fn find_key(keys: &[KeyInfo], prefix: &str) -> anyhow::Result<KeyId> {
    let p = prefix.to_ascii_lowercase();
    let hits: Vec<_> = keys
        .iter()
        .filter(|k| k.id.to_hex().starts_with(&p))
        .collect();
    match hits.as_slice() {
        [one] if !p.is_empty() => Ok(one.id),
        [] | [_] => Err(floe_engine::Error::KeyNotFound(prefix.to_string()).into()),
        more => bail!("{} keys match {prefix:?}: give more digits", more.len()),
    }
}

fn list(repo: &Repository, json: bool) -> anyhow::Result<()> {
    let keys = repo.list_keys()?;
    if json {
        return output::json(&keys);
    }
    output::line(format!(
        "  {:<8}  {:<16}  {:<16}  created",
        "id", "user", "host"
    ))?;
    for k in &keys {
        let created = match (&k.damaged, k.created) {
            (Some(why), _) => format!("damaged: {why}"),
            (None, Some(t)) => t.format("%Y-%m-%d %H:%M:%S %:z").to_string(),
            (None, None) => String::new(),
        };
        output::line(format!(
            "{} {:<8}  {:<16}  {:<16}  {created}",
            if k.current { '*' } else { ' ' },
            k.id.short(),
            k.username.as_deref().unwrap_or("-"),
            k.hostname.as_deref().unwrap_or("-"),
        ))?;
    }
    Ok(())
}

pub fn run(g: &GlobalArgs, a: Args) -> anyhow::Result<u8> {
    let mut repo = crate::repo::open(g)?;
    // Changing keys takes the repository alone: two removals at once could leave no key.
    let _lock = match a.command {
        KeyCommand::List => crate::repo::read_lock(g, &repo, "key list")?,
        _ => Some(crate::repo::lock(g, &repo, true, "key")?),
    };
    match a.command {
        KeyCommand::List => list(&repo, g.json)?,
        KeyCommand::Add { new_password_file } => {
            let password = crate::password::new_password(new_password_file.as_deref())?;
            let id = repo.add_key(&password)?;
            output::note(format!("added key {}", id.short()))?;
        }
        KeyCommand::Remove { id } => {
            let id = find_key(&repo.list_keys()?, &id)?;
            repo.remove_key(id)?;
            output::note(format!("removed key {}", id.short()))?;
        }
        KeyCommand::Passwd { new_password_file } => {
            let password = crate::password::new_password(new_password_file.as_deref())?;
            let id = repo.change_password(&password)?;
            output::note(format!(
                "changed the password: key {} replaces the old one",
                id.short()
            ))?;
        }
    }
    Ok(exit::OK)
}
