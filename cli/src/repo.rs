//! Opening the repository named on the command line.

use std::sync::Arc;

use anyhow::{bail, Context};
use floe_engine::{Backend, LocalBackend, Repository, StorageClass};
use floe_engine::{S3Backend, S3Options};

use crate::{GlobalArgs, S3Args};

/// Takes the location from `--repository-file` (its first line that is not blank, trimmed) when
/// one is given.
pub fn read_repository_file(g: &mut GlobalArgs) -> anyhow::Result<()> {
    let Some(path) = &g.repository_file else {
        return Ok(());
    };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the repository file {}", path.display()))?;
    let Some(location) = text.lines().map(str::trim).find(|l| !l.is_empty()) else {
        bail!("the repository file {} is empty", path.display());
    };
    g.repo = Some(location.to_string());
    Ok(())
}

/// The backend for `-r/--repo` or `FLOE_REPOSITORY`.
pub fn backend(g: &GlobalArgs) -> anyhow::Result<Arc<dyn Backend>> {
    let Some(loc) = g.repo.as_deref() else {
        bail!("no repository given: use -r/--repo or --repository-file, or set FLOE_REPOSITORY");
    };
    match g.as_of {
        None => backend_at(loc, &g.s3),
        Some(t) if loc.starts_with("s3:") => Ok(Arc::new(s3_at(&g.s3, loc)?.as_of(t.to_utc())?)),
        Some(_) => bail!(
            "--as-of reads earlier versions of the repository's objects, which only an S3 bucket \
             with versioning keeps; {loc} is not on S3"
        ),
    }
}

/// The backend of location `loc`, with the S3 options `s3` when it is on S3.
pub fn backend_at(loc: &str, s3: &S3Args) -> anyhow::Result<Arc<dyn Backend>> {
    if let Some(rest) = loc.strip_prefix("local:") {
        return Ok(Arc::new(LocalBackend::new(rest)));
    }
    if loc.starts_with("s3:") {
        return Ok(Arc::new(s3_at(s3, loc)?));
    }
    Ok(Arc::new(LocalBackend::new(loc)))
}

/// The S3 backend of the repository location; other locations are refused.
pub fn s3_backend(g: &GlobalArgs) -> anyhow::Result<S3Backend> {
    if g.as_of.is_some() {
        bail!("--as-of is for commands that read snapshots; this one works on the bucket as it is");
    }
    match g.repo.as_deref() {
        Some(loc) if loc.starts_with("s3:") => s3_at(&g.s3, loc),
        Some(loc) => bail!(
            "{loc} is not an S3 repository: storage classes and lifecycle rules exist on S3 only"
        ),
        None => {
            bail!("no repository given: use -r/--repo or --repository-file, or set FLOE_REPOSITORY")
        }
    }
}

fn s3_at(s3: &S3Args, loc: &str) -> anyhow::Result<S3Backend> {
    let mut o = S3Options::parse_url(loc)?;
    o.region = s3.s3_region.clone();
    o.profile = s3.s3_profile.clone();
    o.path_style = s3.s3_path_style;
    o.data_storage_class = s3.data_storage_class.clone();
    o.connections = s3.connections as usize;
    o.attempt_timeout = s3.s3_timeout;
    o.max_attempts = s3.s3_attempts;
    o.tls = floe_engine::TlsOptions {
        cacert: s3.cacert.clone(),
        client_cert: s3.tls_client_cert.clone(),
        insecure: s3.insecure_tls,
    };
    if s3.insecure_tls {
        eprintln!(
            "warning: {}: the store's certificate is not checked; anyone on the path can \
             read and change what is sent",
            s3.insecure_flag
        );
    }
    Ok(S3Backend::new(&o)?)
}

/// Parses a storage class name; only the classes S3 documents are accepted.
pub fn parse_storage_class(s: &str) -> Result<StorageClass, String> {
    match StorageClass::parse(&s.to_ascii_uppercase()) {
        StorageClass::Other(_) => Err(format!(
            "unknown storage class {s:?}: expected STANDARD, STANDARD_IA, ONEZONE_IA, \
             INTELLIGENT_TIERING, GLACIER_IR, GLACIER or DEEP_ARCHIVE"
        )),
        c => Ok(c),
    }
}

/// Durations on the command line, read as in profiles.
pub use floe_cli::profile::parse_wait;

/// Locks the repository for `command`, waiting up to `--retry-lock`. Commands that change the
/// repository always lock: they refuse `--no-lock`.
pub fn lock(
    g: &GlobalArgs,
    repo: &Repository,
    exclusive: bool,
    command: &str,
) -> anyhow::Result<floe_engine::RepoLock> {
    if g.no_lock {
        anyhow::bail!(
            "{command} changes the repository and always takes a lock; --no-lock is for \
             commands that only read"
        );
    }
    write_lock(g, repo, exclusive, command)
}

/// As [`lock`], whatever `--no-lock` says (`copy` applies it to the source only).
pub fn write_lock(
    g: &GlobalArgs,
    repo: &Repository,
    exclusive: bool,
    command: &str,
) -> anyhow::Result<floe_engine::RepoLock> {
    if g.as_of.is_some() {
        anyhow::bail!(
            "{command} changes the repository; --as-of opens it as it was, for commands that \
             only read"
        );
    }
    repo.ensure_writable()?;
    take_lock(g, repo, exclusive, command)
}

fn take_lock(
    g: &GlobalArgs,
    repo: &Repository,
    exclusive: bool,
    command: &str,
) -> anyhow::Result<floe_engine::RepoLock> {
    Ok(floe_engine::lock(
        repo,
        &floe_engine::LockOptions {
            exclusive,
            retry: g.retry_lock,
            command: command.to_string(),
            ..Default::default()
        },
    )?)
}

/// A shared lock for a command that only reads, or none with `--no-lock`.
pub fn read_lock(
    g: &GlobalArgs,
    repo: &Repository,
    command: &str,
) -> anyhow::Result<Option<floe_engine::RepoLock>> {
    // A view of the past is read only: it cannot hold a lock, and nothing can change it.
    if g.no_lock || g.as_of.is_some() {
        return Ok(None);
    }
    take_lock(g, repo, false, command)
        .map(Some)
        .map_err(|e| hint_no_lock(e, command))
}

/// Runs `read` while the shared lock of a command that only reads is taken, rather than after:
/// against a distant store, the lock's round trips overlap the listings `read` starts with. A
/// lock that cannot be taken (an exclusive holder, a read-only user) fails the command as
/// [`read_lock`] does, whatever `read` did meanwhile. The cost is a window of a few requests in
/// which a prune that ends just then can leave `read` with a listing from before it: the command
/// then reports a missing pack, and changes nothing. With `--retry-lock` the lock may wait for a
/// whole prune, so `read` runs after it. Commands that write never take it.
pub fn read_locked<R: Send>(
    g: &GlobalArgs,
    repo: &Repository,
    command: &str,
    read: impl FnOnce() -> anyhow::Result<R> + Send,
) -> anyhow::Result<(Option<floe_engine::RepoLock>, R)> {
    if !g.retry_lock.is_zero() {
        let lock = read_lock(g, repo, command)?;
        return Ok((lock, read()?));
    }
    let (result, lock) = floe_engine::both(read, || read_lock(g, repo, command));
    let lock = lock?;
    Ok((lock, result?))
}

/// A read-only user cannot write the lock a reading command takes: say how to go without one.
fn hint_no_lock(err: anyhow::Error, command: &str) -> anyhow::Error {
    use floe_engine::BackendError;
    let refused = err.chain().any(|c| {
        // The engine's error is transparent over the backend's: look inside it.
        let backend = match c.downcast_ref::<floe_engine::Error>() {
            Some(floe_engine::Error::Backend(b)) => Some(b),
            _ => c.downcast_ref::<BackendError>(),
        };
        match backend {
            Some(BackendError::Io { op, source, .. }) => {
                *op == "write" && source.kind() == std::io::ErrorKind::PermissionDenied
            }
            Some(BackendError::Remote { op, code, .. }) => *op == "write" && code == "AccessDenied",
            _ => false,
        }
    });
    if !refused {
        return err;
    }
    err.context(format!(
        "{command} could not take its lock: this user may not write to the repository \
         (`--no-lock` runs commands that only read without one)"
    ))
}

/// The snapshot a `SNAPSHOT[:PATH]` argument names among those `filter` selects, and the path
/// inside it (empty for all), given after the colon or, as restic takes it, as the separate
/// argument `path`.
pub fn find_snapshot_path(
    repo: &Repository,
    spec: &str,
    path: Option<&str>,
    filter: &crate::select::SnapshotFilter,
) -> anyhow::Result<(floe_engine::SnapshotEntry, String)> {
    let (snap, sub) = spec.split_once(':').unwrap_or((spec, ""));
    let sub = match (sub, path) {
        (s, Some(p)) if !s.is_empty() => {
            bail!("the path is given twice ({s:?} and {p:?}): give SNAPSHOT:PATH or SNAPSHOT PATH")
        }
        (_, Some(p)) => p,
        (s, None) => s,
    };
    Ok((filter.find(repo, snap)?, sub.to_string()))
}

/// `err`, with a hint when it is a path not found in a snapshot and `path` is relative.
pub fn hint_relative(err: floe_engine::Error, path: &str) -> anyhow::Error {
    let relative = !path.is_empty() && !path.starts_with('/');
    match err {
        e @ floe_engine::Error::PathNotFound(_) if relative => anyhow::anyhow!(
            "{e}; paths in a snapshot are absolute, as `floe ls SNAPSHOT` lists them (e.g. /etc/hosts)"
        ),
        e => e.into(),
    }
}

/// The index for a command that reads file contents: of blobs stored twice, lookups answer
/// with the copy that needs no thaw.
pub fn index_for_reading(repo: &Repository) -> anyhow::Result<floe_engine::Index> {
    let mut index = repo.load_index()?;
    floe_engine::prefer_readable_copies(repo, &mut index)?;
    Ok(index)
}

/// On an Object Lock repository, moves ahead the retention of the objects the snapshots need
/// (after backup, copy and prune); prints a line when a date moved, unless `--json`.
pub fn keep_locked(
    g: &GlobalArgs,
    repo: &Repository,
    lock: &floe_engine::RepoLock,
) -> anyhow::Result<Option<floe_engine::RetentionReport>> {
    if repo.config().object_lock.is_none() {
        return Ok(None);
    }
    let index = repo.load_index()?;
    let r = floe_engine::extend_retention(repo, &index, floe_engine::now_utc(), &lock.health())?;
    if let (Some(until), false) = (r.extended_until, g.json) {
        crate::output::note(format!(
            "Object Lock: extended the retention of {} object(s) to {}",
            r.extended,
            until.format("%Y-%m-%d %H:%M:%S UTC")
        ))?;
    }
    Ok(Some(r))
}

/// Opens the repository with the password from the usual sources; a remote one through the
/// local cache of its metadata (unless `--no-cache`).
pub fn open(g: &GlobalArgs) -> anyhow::Result<Repository> {
    open_with(g, g.as_of.is_none())
}

/// Opens the repository without the cache, so that what is read is what is stored (`check`).
pub fn open_uncached(g: &GlobalArgs) -> anyhow::Result<Repository> {
    open_with(g, false)
}

fn open_with(g: &GlobalArgs, use_cache: bool) -> anyhow::Result<Repository> {
    // Before a prompt (or a password command, which may prompt itself), make sure there is a
    // repository to ask the password of; otherwise opening says so, without a round trip of
    // its own.
    let backend = if crate::password::may_ask(g) {
        existing_backend(g)?
    } else {
        backend(g)?
    };
    let password = crate::password::get(g, false)?;
    let cached = use_cache
        .then(|| crate::cache::wrap(&g.cache, &backend))
        .flatten();
    let opened: Arc<dyn Backend> = match &cached {
        None => backend,
        Some(cache) => cache.clone(),
    };
    let mut repo = Repository::open(opened, &password)?;
    if let Some(cache) = cached {
        cache.attach(&repo.config().id);
    }
    if let crate::args::CompressionMode::Set(c) = g.compression {
        repo.set_blob_compression(c)?;
    }
    Ok(repo)
}

/// The backend of a location that holds a repository (exit 10 otherwise), without asking for
/// the password.
pub fn existing_backend(g: &GlobalArgs) -> anyhow::Result<Arc<dyn Backend>> {
    existing(backend(g)?)
}

/// `backend`, when it holds a repository (exit 10 otherwise).
pub fn existing(backend: Arc<dyn Backend>) -> anyhow::Result<Arc<dyn Backend>> {
    if !Repository::exists(backend.as_ref())? {
        return Err(floe_engine::Error::RepositoryNotFound {
            location: backend.location(),
        }
        .into());
    }
    Ok(backend)
}
