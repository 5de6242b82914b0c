//! `floe init`

use floe_engine::{ChunkerParams, Compression, InitOptions, Repository};

use crate::args::CompressionMode;
use crate::{exit, output, GlobalArgs};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Minimum chunk size in bytes
    #[arg(long, default_value_t = ChunkerParams::default().min_size, hide = true)]
    chunk_min: u32,
    /// Average chunk size in bytes
    #[arg(long, default_value_t = ChunkerParams::default().avg_size, hide = true)]
    chunk_avg: u32,
    /// Maximum chunk size in bytes
    #[arg(long, default_value_t = ChunkerParams::default().max_size, hide = true)]
    chunk_max: u32,
    /// Target size of data packs, in MiB
    #[arg(long, default_value_t = 16)]
    pack_size_mib: u32,
    /// Repository format version: 1 (readable by floe before 0.2, records no extended
    /// attributes), 2, or `latest`
    #[arg(long, value_name = "VERSION", default_value = "latest", value_parser = parse_version)]
    repository_version: u32,
    /// Take the chunker parameters of the repository --from-repo names, so that backups into
    /// this one cut the same chunks and deduplicate against snapshots copied from it
    #[arg(long, requires = "from_repo")]
    copy_chunker_params: bool,
    #[command(flatten)]
    from: crate::from::FromArgs,
    /// S3 Object Lock: every object but lock files is locked in this mode, governance or
    /// compliance, for --object-lock-days; the bucket is created with Object Lock (and so
    /// versioning), or must have it
    #[arg(long, value_name = "MODE", requires = "object_lock_days", value_parser = parse_mode)]
    object_lock_mode: Option<floe_engine::RetentionMode>,
    /// Days each object stays locked after it is written; backups and prunes extend the lock of
    /// what the snapshots still need
    #[arg(long, value_name = "DAYS", requires = "object_lock_mode", value_parser = clap::value_parser!(u32).range(1..=36500))]
    object_lock_days: Option<u32>,
}

/// The level stored in the new repository's config: `--compression` names it, or the default.
/// FLOE_COMPRESSION is for the runs that write data, so it does not choose it.
fn default_level(g: &GlobalArgs) -> anyhow::Result<i32> {
    let default = floe_engine::InitOptions::default().compression_level;
    if g.compression_from_env {
        if g.compression != CompressionMode::Auto {
            eprintln!(
                "note: FLOE_COMPRESSION applies to backups and the other commands that write \
                 data; the repository's own level is {default} (give --compression to choose it)"
            );
        }
        return Ok(default);
    }
    match g.compression {
        CompressionMode::Auto => Ok(default),
        CompressionMode::Set(Compression::Level(level)) => Ok(level),
        CompressionMode::Set(Compression::Off) => anyhow::bail!(
            "--compression off is for the commands that write data (backup, copy, rewrite, \
             repair snapshots); a repository's own setting is a zstd level or fastest, better, max"
        ),
    }
}

fn parse_mode(s: &str) -> Result<floe_engine::RetentionMode, String> {
    floe_engine::RetentionMode::parse(s)
        .ok_or_else(|| format!("unknown mode {s:?}: expected governance or compliance"))
}

fn parse_version(s: &str) -> Result<u32, String> {
    let (oldest, latest) = (
        floe_engine::OLDEST_FORMAT_VERSION,
        floe_engine::FORMAT_VERSION,
    );
    match s {
        "latest" | "stable" => Ok(latest),
        _ => s
            .parse()
            .ok()
            .filter(|v| (oldest..=latest).contains(v))
            .ok_or_else(|| format!("expected {oldest}, {latest} or latest")),
    }
}

/// The chunker parameters and seed of the source repository, for `--copy-chunker-params`.
fn chunking_of(g: &GlobalArgs, a: &Args) -> anyhow::Result<(ChunkerParams, u64)> {
    if a.repository_version < 2 {
        anyhow::bail!(
            "--copy-chunker-params needs format version 2: a version 1 repository derives its \
             chunker seed from its own key"
        );
    }
    let src = a.from.open(g)?;
    Ok((src.config().chunker, src.chunker_seed()))
}

/// Installs the bucket's rule for the versions a locked repository leaves behind.
fn lock_rule(g: &GlobalArgs, r: floe_engine::Retention) -> anyhow::Result<()> {
    let s3 = crate::repo::s3_backend(g)?;
    let rule = floe_engine::versions_rule(s3.prefix(), r);
    s3.put_lifecycle_rule(&rule)?;
    output::note(format!(
        "Object Lock: every object but lock files is locked ({}) for {} day(s) from its write; \
         lifecycle rule {} removes replaced versions {} days after they stop being current",
        r.mode.s3_name().to_lowercase(),
        r.days,
        rule.id,
        r.days.saturating_add(floe_engine::VERSIONS_MARGIN_DAYS)
    ))?;
    Ok(())
}

pub fn run(g: &GlobalArgs, a: Args) -> anyhow::Result<u8> {
    let compression_level = default_level(g)?;
    let backend = crate::repo::backend(g)?;
    if Repository::exists(backend.as_ref())? {
        return Err(floe_engine::Error::RepositoryExists {
            location: backend.location(),
        }
        .into());
    }
    let from = match a.copy_chunker_params {
        true => Some(chunking_of(g, &a)?),
        false => None,
    };
    if !a.copy_chunker_params && a.from.from_repo.is_some() {
        eprintln!(
            "warning: init reads --from-repo (FLOE_FROM_REPOSITORY) only with \
             --copy-chunker-params; the new repository gets chunker settings of its own"
        );
    }
    let password = crate::password::get(g, true)?;
    if password.is_empty() {
        anyhow::bail!("an empty password is not accepted");
    }
    let mut opts = InitOptions {
        chunker: ChunkerParams {
            min_size: a.chunk_min,
            avg_size: a.chunk_avg,
            max_size: a.chunk_max,
        },
        compression_level,
        data_pack_size: a.pack_size_mib.saturating_mul(1 << 20),
        version: a.repository_version,
        ..InitOptions::default()
    };
    if let Some((chunker, seed)) = from {
        opts.chunker = chunker;
        opts.chunker_seed = Some(seed);
    }
    opts.object_lock = a
        .object_lock_mode
        .zip(a.object_lock_days)
        .map(|(mode, days)| floe_engine::Retention { mode, days });
    let repo = Repository::init(backend, &password, &opts)?;
    if let Some(r) = opts.object_lock {
        // The repository exists and is locked by now: a rule that cannot be written is for
        // `tier apply` to put in later, not a failed init.
        if let Err(e) = lock_rule(g, r) {
            eprintln!(
                "warning: the lifecycle rule for old versions was not written ({e:#}); \
                 `floe tier apply` writes it, with the right to change lifecycle rules"
            );
        }
    }
    output::note(format!(
        "created repository {} at {} (format version {})",
        repo.config().id.short(),
        repo.backend().location(),
        repo.config().version
    ))?;
    Ok(exit::OK)
}
