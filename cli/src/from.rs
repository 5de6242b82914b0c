//! The source repository of `copy` and `init --copy-chunker-params`: `--from-repo` and the
//! options of its password and storage, named as restic names them.

use std::path::PathBuf;

use anyhow::Context;
use floe_engine::Repository;

use crate::GlobalArgs;

/// Where the source repository is and how to open it.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Source repository")]
pub struct FromArgs {
    /// The repository to copy from (a local path or an s3: location, as for -r)
    #[arg(
        long,
        env = "FLOE_FROM_REPOSITORY",
        value_name = "REPOSITORY",
        value_parser = clap::builder::NonEmptyStringValueParser::new()
    )]
    pub from_repo: Option<String>,
    /// Read the source's password from this file (first line)
    #[arg(long, env = "FLOE_FROM_PASSWORD_FILE", value_name = "FILE")]
    pub from_password_file: Option<PathBuf>,
    /// Run this shell command and read the source's password from its output (first line)
    #[arg(long, env = "FLOE_FROM_PASSWORD_COMMAND", value_name = "COMMAND")]
    pub from_password_command: Option<String>,
    /// AWS region of the source (default: as for the destination)
    #[arg(long, env = "FLOE_FROM_S3_REGION", value_name = "REGION")]
    pub from_s3_region: Option<String>,
    /// AWS profile for the source's credentials and region (default: as for the destination)
    #[arg(long, env = "FLOE_FROM_S3_PROFILE", value_name = "PROFILE")]
    pub from_s3_profile: Option<String>,
    /// Path-style addressing for the source (default: true for custom endpoints)
    #[arg(long, env = "FLOE_FROM_S3_PATH_STYLE", value_name = "BOOL", value_parser = clap::builder::BoolishValueParser::new())]
    pub from_s3_path_style: Option<bool>,
    /// Also trust the authorities in this PEM file for the source's endpoint (repeatable)
    #[arg(long, env = "FLOE_FROM_CACERT", value_name = "FILE")]
    pub from_cacert: Vec<PathBuf>,
    /// Client certificate and key, in one PEM file, for the source's endpoint
    #[arg(long, env = "FLOE_FROM_TLS_CLIENT_CERT", value_name = "FILE")]
    pub from_tls_client_cert: Option<PathBuf>,
    /// Accept any certificate from the source's endpoint (test endpoints only)
    #[arg(long)]
    pub from_insecure_tls: bool,
}

impl FromArgs {
    /// The source's location.
    pub fn location(&self) -> anyhow::Result<&str> {
        self.from_repo
            .as_deref()
            .context("no source repository given: use --from-repo or set FLOE_FROM_REPOSITORY")
    }

    /// The source's S3 options: its own where given, else the destination's. The limits on
    /// requests (connections, timeout, attempts) are shared.
    fn s3(&self, g: &GlobalArgs) -> crate::S3Args {
        let mut s3 = g.s3.clone();
        s3.s3_region = self.from_s3_region.clone().or(s3.s3_region);
        s3.s3_profile = self.from_s3_profile.clone().or(s3.s3_profile);
        s3.s3_path_style = self.from_s3_path_style.or(s3.s3_path_style);
        s3.cacert = self.from_cacert.clone();
        s3.tls_client_cert = self.from_tls_client_cert.clone();
        s3.insecure_tls = self.from_insecure_tls;
        s3.insecure_flag = "--from-insecure-tls";
        s3.data_storage_class = None;
        s3
    }

    /// Opens the source repository with its own password.
    pub fn open(&self, g: &GlobalArgs) -> anyhow::Result<Repository> {
        let loc = self.location()?;
        let backend = crate::repo::existing(crate::repo::backend_at(loc, &self.s3(g))?)
            .with_context(|| format!("source repository {loc}"))?;
        let password = crate::password::get_from(
            &crate::password::Source {
                file: self.from_password_file.as_deref(),
                command: self.from_password_command.as_deref(),
                env: "FLOE_FROM_PASSWORD",
                prompt: "source repository password: ",
                hint: "give --from-password-file or --from-password-command, or set \
                       FLOE_FROM_PASSWORD_FILE, FLOE_FROM_PASSWORD_COMMAND or FLOE_FROM_PASSWORD",
            },
            false,
        )?;
        Repository::open(backend, &password).with_context(|| format!("source repository {loc}"))
    }
}
