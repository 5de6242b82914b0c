//! Format upgrades of an existing repository (format-spec/format.md, "Versioning"), named as
//! restic names its migrations.

use crate::error::{Error, Result};
use crate::format::config::{Config, XATTRS_VERSION};
use crate::repo::repository::Repository;

/// A format upgrade.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Migration {
    /// Its name on the command line.
    pub name: &'static str,
    /// What it does.
    pub description: &'static str,
}

/// Upgrades a version 1 repository to version 2.
pub const UPGRADE_REPO_V2: Migration = Migration {
    name: "upgrade_repo_v2",
    description: "upgrade a format version 1 repository to version 2 (extended attributes \
                  in trees, the chunker seed in the config); floe builds older than 0.2 can \
                  then no longer open it",
};

/// Every migration this build knows.
pub const MIGRATIONS: &[Migration] = &[UPGRADE_REPO_V2];

/// The migrations that apply to `repo` now.
pub fn available(repo: &Repository) -> Vec<Migration> {
    MIGRATIONS
        .iter()
        .copied()
        .filter(|m| applies(m, repo.config()))
        .collect()
}

fn applies(m: &Migration, config: &Config) -> bool {
    m.name == UPGRADE_REPO_V2.name && config.version < XATTRS_VERSION
}

/// The config `upgrade_repo_v2` writes: version 2, with the seed version 1 derived from the id
/// key made explicit, so that chunks are cut where they were and keep deduplicating.
pub fn upgraded_config(config: &Config, derived_seed: u64) -> Config {
    Config {
        version: XATTRS_VERSION,
        chunker_seed: Some(derived_seed),
        ..config.clone()
    }
}

/// Runs the migration called `name` on `repo` (the caller holds an exclusive lock). Writes the
/// new config in one atomic replacement; nothing else changes.
pub fn run(repo: &mut Repository, name: &str) -> Result<Migration> {
    let Some(m) = MIGRATIONS.iter().find(|m| m.name == name) else {
        return Err(Error::UnknownMigration {
            name: name.to_string(),
            known: MIGRATIONS.iter().map(|m| m.name).collect(),
        });
    };
    repo.ensure_writable()?;
    if !applies(m, repo.config()) {
        return Err(Error::MigrationNotNeeded {
            name: m.name,
            version: repo.config().version,
        });
    }
    let new = upgraded_config(repo.config(), repo.key().chunker_seed());
    repo.replace_config(new)?;
    Ok(*m)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::repo::repository::InitOptions;
    use crate::storage::MemoryBackend;

    fn v1_repo() -> (Arc<MemoryBackend>, Repository) {
        let backend = Arc::new(MemoryBackend::new());
        let opts = InitOptions {
            version: 1,
            kdf: crate::format::key::KdfParams {
                memory_kib: 64,
                iterations: 1,
                parallelism: 1,
            },
            ..Default::default()
        };
        let repo = Repository::init(backend.clone(), b"pw", &opts).unwrap();
        (backend, repo)
    }

    #[test]
    fn the_upgrade_keeps_the_derived_seed_and_is_seen_on_the_next_open() {
        let (backend, mut repo) = v1_repo();
        let seed_before = repo.chunker_seed();
        assert_eq!(available(&repo), vec![UPGRADE_REPO_V2]);
        run(&mut repo, "upgrade_repo_v2").unwrap();
        let again = Repository::open(backend, b"pw").unwrap();
        assert_eq!(again.config().version, 2);
        assert_eq!(again.config().chunker_seed, Some(seed_before));
        assert_eq!(again.chunker_seed(), seed_before);
        assert!(available(&again).is_empty());
        let err = run(&mut repo, "upgrade_repo_v2").unwrap_err();
        assert!(err.to_string().contains("already"), "{err}");
    }

    #[test]
    fn an_unknown_migration_names_the_known_ones() {
        let (_, mut repo) = v1_repo();
        let err = run(&mut repo, "upgrade_repo_v3").unwrap_err().to_string();
        assert!(
            err.contains("upgrade_repo_v3") && err.contains("upgrade_repo_v2"),
            "{err}"
        );
    }
}
