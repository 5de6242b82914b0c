//! `floe unlock`

use crate::{exit, output, GlobalArgs};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Remove every lock, not only stale ones (only when no other floe process uses the repository)
    #[arg(long)]
    remove_all: bool,
}

pub fn run(g: &GlobalArgs, a: Args) -> anyhow::Result<u8> {
    let repo = crate::repo::open(g)?;
    let n = floe_engine::unlock(&repo, a.remove_all)?;
    output::note(format!("removed {n} lock(s)"))?;
    Ok(exit::OK)
}
