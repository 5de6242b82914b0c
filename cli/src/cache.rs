//! The local cache of remote repositories' metadata: where it lives and when it is used.

use std::path::PathBuf;
use std::sync::Arc;

use floe_engine::{Backend, CachedBackend};

/// Options of the cache.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Cache options")]
pub struct CacheArgs {
    /// Folder of the cache of remote repositories' metadata (default: $XDG_CACHE_HOME/floe,
    /// else ~/.cache/floe)
    #[arg(long, env = "FLOE_CACHE_DIR", global = true, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Read every object from the repository, keeping nothing in the cache
    #[arg(long, env = "FLOE_NO_CACHE", global = true, value_parser = clap::builder::BoolishValueParser::new())]
    pub no_cache: bool,
    /// Most bytes of tree packs the cache keeps for one repository (least recently used go
    /// first); index, snapshot and key files are always kept
    #[arg(long, env = "FLOE_CACHE_SIZE", global = true, value_name = "SIZE", default_value = "4G", value_parser = crate::args::parse_size)]
    pub cache_size: u64,
}

/// The cache's folder: `--cache-dir`, else `$XDG_CACHE_HOME/floe`, else `~/.cache/floe`.
pub fn base(a: &CacheArgs) -> Option<PathBuf> {
    if let Some(d) = &a.cache_dir {
        return Some(d.clone());
    }
    let xdg = std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty());
    let home = || std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache"));
    xdg.map(PathBuf::from).or_else(home).map(|d| d.join("floe"))
}

/// `backend` behind the cache, when it is remote and the cache is not turned off.
pub fn wrap(a: &CacheArgs, backend: &Arc<dyn Backend>) -> Option<Arc<CachedBackend>> {
    if a.no_cache || !backend.is_remote() {
        return None;
    }
    let base = base(a)?;
    let warn: floe_engine::CacheWarn = Arc::new(|s: &str| eprintln!("warning: {s}"));
    Some(Arc::new(CachedBackend::new(
        backend.clone(),
        &base,
        a.cache_size,
        warn,
    )))
}
