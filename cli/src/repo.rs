//! Opening the repository named on the command line.

use std::sync::Arc;

use anyhow::bail;
use floe_engine::{Backend, LocalBackend, Repository};

use crate::GlobalArgs;

/// The backend for `-r/--repo` or `FLOE_REPOSITORY`.
pub fn backend(g: &GlobalArgs) -> anyhow::Result<Arc<dyn Backend>> {
    let Some(loc) = g.repo.as_deref() else {
        bail!("no repository given: use -r/--repo or set FLOE_REPOSITORY");
    };
    if let Some(rest) = loc.strip_prefix("local:") {
        return Ok(Arc::new(LocalBackend::new(rest)));
    }
    if loc.starts_with("s3:") {
        bail!("S3 repositories are not supported by this build yet: {loc}");
    }
    Ok(Arc::new(LocalBackend::new(loc)))
}

/// Opens the repository with the password from the usual sources.
pub fn open(g: &GlobalArgs) -> anyhow::Result<Repository> {
    let backend = backend(g)?;
    if !Repository::exists(backend.as_ref())? {
        return Err(floe_engine::Error::RepositoryNotFound {
            location: backend.location(),
        }
        .into());
    }
    let password = crate::password::get(g, false)?;
    Ok(Repository::open(backend, &password)?)
}
