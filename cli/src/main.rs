//! `floe`: the command line. It parses arguments, calls the engine and prints; nothing more.

mod commands;
mod output;
mod password;
mod repo;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Backup and restore move many multi-megabyte buffers between threads; mimalloc keeps them in
/// thread-local pages instead of mapping and unmapping memory for each (measured in README.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Exit codes, documented in README.md ("Exit codes").
pub mod exit {
    /// Success.
    pub const OK: u8 = 0;
    /// Any error.
    pub const ERROR: u8 = 1;
    /// Backup finished, but some source files could not be read.
    pub const PARTIAL: u8 = 3;
    /// The repository does not exist.
    pub const NO_REPOSITORY: u8 = 10;
    /// The repository is locked.
    pub const LOCKED: u8 = 11;
    /// Wrong password.
    pub const WRONG_PASSWORD: u8 = 12;
}

#[derive(Debug, Parser)]
#[command(name = "floe", version, about = "Deduplicating, encrypted backups", long_about = None)]
struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

/// Options every command takes.
#[derive(Debug, clap::Args)]
pub struct GlobalArgs {
    /// Repository location: a local path
    #[arg(
        short = 'r',
        long = "repo",
        env = "FLOE_REPOSITORY",
        global = true,
        value_name = "REPOSITORY"
    )]
    pub repo: Option<String>,
    /// Read the password from this file (first line)
    #[arg(long, env = "FLOE_PASSWORD_FILE", global = true, value_name = "FILE")]
    pub password_file: Option<std::path::PathBuf>,
    /// Run this shell command and read the password from its output (first line)
    #[arg(
        long,
        env = "FLOE_PASSWORD_COMMAND",
        global = true,
        value_name = "COMMAND"
    )]
    pub password_command: Option<String>,
    /// Wait this long for a locked repository (e.g. 30s, 5m, 1h30m) before giving up
    #[arg(long, global = true, value_name = "DURATION", value_parser = repo::parse_wait, default_value = "0s")]
    pub retry_lock: std::time::Duration,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create a new repository
    Init(commands::init::Args),
    /// Back up files and folders into a new snapshot
    Backup(commands::backup::Args),
    /// Restore a snapshot, or part of it, into a folder
    Restore(commands::restore::Args),
    /// List snapshots
    Snapshots(commands::snapshots::Args),
    /// List the files of a snapshot
    Ls(commands::ls::Args),
    /// Verify the repository's structure and, on demand, its data
    Check(commands::check::Args),
    /// Remove snapshots by a retention policy or by id
    Forget(commands::forget::Args),
    /// Delete data no snapshot needs
    Prune(commands::prune::Args),
    /// Repair a damaged repository
    Repair(commands::repair::Args),
    /// Remove stale locks (or all locks)
    Unlock(commands::unlock::Args),
}

fn run(cli: Cli) -> anyhow::Result<u8> {
    match cli.command {
        Command::Init(a) => commands::init::run(&cli.global, a),
        Command::Backup(a) => commands::backup::run(&cli.global, a),
        Command::Restore(a) => commands::restore::run(&cli.global, a),
        Command::Snapshots(a) => commands::snapshots::run(&cli.global, a),
        Command::Ls(a) => commands::ls::run(&cli.global, a),
        Command::Check(a) => commands::check::run(&cli.global, a),
        Command::Forget(a) => commands::forget::run(&cli.global, a),
        Command::Prune(a) => commands::prune::run(&cli.global, a),
        Command::Repair(a) => commands::repair::run(&cli.global, a),
        Command::Unlock(a) => commands::unlock::run(&cli.global, a),
    }
}

/// Maps an error to its documented exit code.
fn exit_code_of(err: &anyhow::Error) -> u8 {
    for cause in err.chain() {
        if let Some(e) = cause.downcast_ref::<floe_engine::Error>() {
            return match e {
                floe_engine::Error::RepositoryNotFound { .. } => exit::NO_REPOSITORY,
                floe_engine::Error::WrongPassword { .. } => exit::WRONG_PASSWORD,
                floe_engine::Error::Locked { .. } => exit::LOCKED,
                _ => exit::ERROR,
            };
        }
    }
    exit::ERROR
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) if is_broken_pipe(&e) => ExitCode::from(exit::OK),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(exit_code_of(&e))
        }
    }
}
