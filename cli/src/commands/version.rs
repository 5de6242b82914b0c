//! `floe version`

use crate::{exit, output, GlobalArgs};

#[derive(Debug, clap::Args)]
pub struct Args {}

#[derive(serde::Serialize)]
struct Version {
    version: &'static str,
    format_version: u32,
    oldest_format_version: u32,
    os: &'static str,
    arch: &'static str,
}

pub fn run(g: &GlobalArgs, _a: Args) -> anyhow::Result<u8> {
    let v = Version {
        version: env!("CARGO_PKG_VERSION"),
        format_version: floe_engine::FORMAT_VERSION,
        oldest_format_version: floe_engine::OLDEST_FORMAT_VERSION,
        os: std::env::consts::OS,
        arch: std::env::consts::ARCH,
    };
    if g.json {
        output::json(&v)?;
    } else {
        output::line(format!(
            "floe {} (repository format {}, reads {} to {}) on {}/{}",
            v.version, v.format_version, v.oldest_format_version, v.format_version, v.os, v.arch
        ))?;
    }
    Ok(exit::OK)
}
