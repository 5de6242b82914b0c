//! `floe`: the command line. It parses arguments, calls the engine and prints; nothing more.

mod args;
mod cache;
mod commands;
mod from;
mod output;
mod password;
mod progress;
mod repo;
mod select;
mod sources;
mod thaw;
mod unattended;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use floe_cli::profile;

/// Backup and restore move many multi-megabyte buffers between threads; mimalloc keeps them in
/// thread-local pages instead of mapping and unmapping memory for each.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc 3 keeps freed memory for a second before it hands it back to the system. A backup's
/// pack and chunk buffers come and go faster than that, and its peak held 40 to 56 MiB of freed
/// ones (192 and 174 MiB against 136 and 134 MiB on a 1.3 GB tree). Ten milliseconds, mimalloc 2's delay, is enough
/// to reuse a buffer that comes back at once. A delay set by the user in the environment wins.
#[allow(unsafe_code)] // One FFI call that stores an integer: measured above, docs/benchmarks.md.
fn return_freed_memory_promptly() {
    // mimalloc also reads the option's older name.
    let named = |n: &str| std::env::vars_os().any(|(k, _)| k.eq_ignore_ascii_case(n));
    if named("MIMALLOC_PURGE_DELAY") || named("MIMALLOC_RESET_DELAY") {
        return;
    }
    // `mi_option_purge_delay` in mimalloc.h (versions 2 and 3), which the bindings do not name.
    const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
    // SAFETY: mi_option_set stores a value in mimalloc's option table; it has no preconditions,
    // may be called from any thread at any time, and an option index is only ever looked up.
    unsafe { libmimalloc_sys::mi_option_set(PURGE_DELAY, 10) }
}

/// mimalloc asks the kernel for transparent huge pages on its arenas, so that each 2 MiB of
/// them becomes one page as soon as any of it is touched. That pays where zstd compresses (its
/// match tables are read at random: the first backup of a 1.3 GB tree took 7.2 s with them and
/// 8.0 s without), but elsewhere it only holds partly used memory: a restore through S3 peaked at
/// 168 to 184 MiB with huge pages and at 123 to 127 MiB without (docs/benchmarks.md). So only
/// the commands that compress new blobs keep them (prune copies sealed blobs as they are). The
/// setting passes to the processes a command starts (hooks, password commands); a
/// `MIMALLOC_ALLOW_THP` in the environment wins.
fn keep_huge_pages_only_for(command: &Command) {
    let compresses = matches!(
        command,
        Command::Backup(_)
            | Command::Copy(_)
            | Command::Rewrite(_)
            | Command::Repair(_)
            | Command::Migrate(_)
            | Command::Job(_)
    );
    if !compresses && std::env::var_os("MIMALLOC_ALLOW_THP").is_none() {
        // Only a hint to the kernel: a kernel without the call keeps huge pages.
        let _ = nix::sys::prctl::set_thp_disable(true);
    }
}

/// Exit codes, documented in docs/exit-codes.md.
pub mod exit {
    /// Success.
    pub const OK: u8 = 0;
    /// Any error.
    pub const ERROR: u8 = 1;
    /// Invalid command line (clap reports most of these itself).
    pub const USAGE: u8 = 2;
    /// Backup finished, but some source files could not be read.
    pub const PARTIAL: u8 = 3;
    /// The repository does not exist.
    pub const NO_REPOSITORY: u8 = 10;
    /// The repository is locked.
    pub const LOCKED: u8 = 11;
    /// Wrong password.
    pub const WRONG_PASSWORD: u8 = 12;
    /// Data the command needs is archived and not readable yet (thaw needed, or asked for).
    pub const NEEDS_THAW: u8 = 13;
    /// `health`: a group's newest snapshot is older than `--max-age`, or there is none.
    pub const STALE: u8 = 14;
}

#[derive(Debug, Parser)]
#[command(name = "floe", version, about = "Deduplicating, encrypted backups", long_about = None)]
// A profile's values come first on the command line: the user's own, later, override them.
#[command(args_override_self = true)]
struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

/// Options every command takes.
#[derive(Debug, clap::Args)]
#[command(next_help_heading = "Global options")]
pub struct GlobalArgs {
    /// Repository location: a local path, s3:BUCKET/PREFIX (AWS), or
    /// s3:http(s)://HOST:PORT/BUCKET/PREFIX (S3-compatible stores)
    #[arg(
        short = 'r',
        long = "repo",
        env = "FLOE_REPOSITORY",
        global = true,
        value_name = "REPOSITORY",
        value_parser = clap::builder::NonEmptyStringValueParser::new()
    )]
    pub repo: Option<String>,
    /// Read the repository location from this file (its first line)
    #[arg(
        long,
        env = "FLOE_REPOSITORY_FILE",
        global = true,
        value_name = "FILE",
        conflicts_with = "repo"
    )]
    pub repository_file: Option<std::path::PathBuf>,
    /// Take options from profile NAME: ~/.config/floe/NAME.toml, else /etc/floe/NAME.toml (a
    /// value with a / or ending in .toml is a path)
    #[arg(
        short = 'P',
        long,
        env = "FLOE_PROFILE",
        global = true,
        value_name = "NAME"
    )]
    pub profile: Option<String>,
    /// Read the password from this file (first line)
    #[arg(
        short = 'p',
        long,
        env = "FLOE_PASSWORD_FILE",
        global = true,
        value_name = "FILE"
    )]
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
    /// Take no lock, for commands that only read (ls, find, diff, dump, restore, check), e.g.
    /// with read-only credentials; a prune running meanwhile can make them fail
    #[arg(long, env = "FLOE_NO_LOCK", global = true, value_parser = clap::builder::BoolishValueParser::new())]
    pub no_lock: bool,
    /// Open the repository as it was at TIME, from the versions an S3 bucket with versioning
    /// (Object Lock) keeps, for commands that only read: restore from before an attack
    #[arg(long, global = true, value_name = "TIME", value_parser = args::parse_time)]
    pub as_of: Option<chrono::DateTime<chrono::FixedOffset>>,
    /// When the command ends, POST a JSON document saying how it went to this URL (repeatable;
    /// for backup, restore, check, forget, prune, copy, drill, health, stats and job)
    #[arg(long, env = "FLOE_NOTIFY_URL", global = true, value_name = "URL")]
    pub notify_url: Vec<String>,
    /// After the command, write its outcome and figures to this file in Prometheus' text format
    /// (for node_exporter's textfile collector), keeping other commands' lines
    #[arg(long, env = "FLOE_METRICS_FILE", global = true, value_name = "FILE")]
    pub metrics_file: Option<std::path::PathBuf>,
    /// After the command, send the same metrics to a Prometheus pushgateway
    /// (http://HOST:9091/metrics/job/NAME)
    #[arg(long, env = "FLOE_METRICS_PUSH", global = true, value_name = "URL")]
    pub metrics_push: Option<String>,
    /// Print JSON on stdout, where the command has a JSON form
    #[arg(long, global = true)]
    pub json: bool,
    /// Print errors only
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Print more: with backup, every file with whether it is new, changed or unchanged
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// How new data is compressed: auto (the repository's level), off, fastest, better, max, or
    /// a zstd level; with init, the repository's level
    #[arg(
        long,
        env = "FLOE_COMPRESSION",
        global = true,
        value_name = "MODE",
        default_value = "auto",
        allow_negative_numbers = true,
        value_parser = args::parse_compression
    )]
    pub compression: args::CompressionMode,
    /// `--compression` came from FLOE_COMPRESSION, which `init` leaves alone.
    #[arg(skip)]
    pub compression_from_env: bool,
    #[command(flatten)]
    pub s3: S3Args,
    #[command(flatten)]
    pub cache: cache::CacheArgs,
}

/// Options of S3 repositories. Credentials come from the standard AWS chain only (environment,
/// shared config and profiles, web identity, instance metadata).
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "S3 options")]
pub struct S3Args {
    /// AWS region (default: from AWS_REGION or the AWS profile; us-east-1 for custom endpoints)
    #[arg(long, env = "FLOE_S3_REGION", global = true, value_name = "REGION")]
    pub s3_region: Option<String>,
    /// AWS profile for credentials and region (default: AWS_PROFILE, else "default")
    #[arg(long, env = "FLOE_S3_PROFILE", global = true, value_name = "PROFILE")]
    pub s3_profile: Option<String>,
    /// Path-style addressing (host/bucket/key): default true for custom endpoints, false on AWS
    #[arg(long, env = "FLOE_S3_PATH_STYLE", global = true, value_name = "BOOL", value_parser = clap::builder::BoolishValueParser::new())]
    pub s3_path_style: Option<bool>,
    /// Storage class of data packs written from now on (every other object stays STANDARD):
    /// STANDARD, STANDARD_IA, ONEZONE_IA, INTELLIGENT_TIERING, GLACIER_IR, GLACIER, DEEP_ARCHIVE
    #[arg(long, env = "FLOE_DATA_STORAGE_CLASS", global = true, value_name = "CLASS", value_parser = repo::parse_storage_class)]
    pub data_storage_class: Option<floe_engine::StorageClass>,
    /// Requests to the object store in flight at once (each upload holds one pack in memory)
    #[arg(long, env = "FLOE_CONNECTIONS", global = true, value_name = "N", default_value_t = floe_engine::DEFAULT_S3_CONNECTIONS as u32, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub connections: u32,
    /// Limit for one attempt of one request to the object store, e.g. 30s or 5m
    #[arg(long, env = "FLOE_S3_TIMEOUT", global = true, value_name = "DURATION", value_parser = repo::parse_wait, default_value = "5m")]
    pub s3_timeout: std::time::Duration,
    /// Attempts per request to the object store before giving up (backoff with jitter between)
    #[arg(long, env = "FLOE_S3_ATTEMPTS", global = true, value_name = "N", default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub s3_attempts: u32,
    /// Also trust the authorities in this PEM file for the endpoint (repeatable; wins over
    /// AWS_CA_BUNDLE and the AWS profile's ca_bundle; the system's authorities stay trusted)
    #[arg(long, env = "FLOE_CACERT", global = true, value_name = "FILE")]
    pub cacert: Vec<std::path::PathBuf>,
    /// Client certificate and its private key, in one PEM file, for stores that want mutual TLS
    #[arg(long, env = "FLOE_TLS_CLIENT_CERT", global = true, value_name = "FILE")]
    pub tls_client_cert: Option<std::path::PathBuf>,
    /// Accept any certificate from the endpoint (for a test endpoint only: anyone on the path
    /// can then read and change what is sent)
    #[arg(long, global = true)]
    pub insecure_tls: bool,
    /// The option that set `insecure_tls`, for its warning.
    #[arg(skip = "--insecure-tls")]
    pub insecure_flag: &'static str,
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
    /// Find files and folders by name, path, blob or pack in every snapshot (reads no data)
    Find(commands::find::Args),
    /// Show what changed between two snapshots (reads no data)
    Diff(commands::diff::Args),
    /// Write a file of a snapshot to stdout, or a folder as a tar stream
    Dump(commands::dump::Args),
    /// Verify the repository's structure and, on demand, its data
    Check(commands::check::Args),
    /// Whether each host and paths has a snapshot younger than --max-age (exit 14 if not);
    /// reads no pack and takes no lock, for monitoring
    Health(commands::health::Args),
    /// Restore a random sample of files into a scratch folder and verify them: proof that a
    /// restore works, with its speed and the time and cost of a full restore
    Drill(commands::drill::Args),
    /// Copy snapshots from another repository (--from-repo) into this one
    Copy(commands::copy::Args),
    /// Remove snapshots by a retention policy or by id
    Forget(commands::forget::Args),
    /// Delete data no snapshot needs
    Prune(commands::prune::Args),
    /// Repair a damaged repository
    Repair(commands::repair::Args),
    /// Manage the passwords (key files) of the repository
    Key(commands::key::Args),
    /// Add, remove or set the tags of snapshots
    Tag(commands::tag::Args),
    /// Make new snapshots without paths matching exclude patterns
    Rewrite(commands::rewrite::Args),
    /// Upgrade the repository's format (list the upgrades that apply, or run one)
    Migrate(commands::migrate::Args),
    /// Print a stored object, decrypted, as JSON (a blob: its bytes)
    Cat(commands::cat::Args),
    /// List the ids of the objects of one kind
    List(commands::list::Args),
    /// Print the version of floe and of the repository format it writes
    Version(commands::version::Args),
    /// Write shell completions and man pages
    Generate(commands::generate::Args),
    /// Remove stale locks (or all locks)
    Unlock(commands::unlock::Args),
    /// Lifecycle rules that move data packs to colder S3 storage classes
    Tier(commands::tier::Args),
    /// S3 Object Lock: how far ahead the objects the snapshots need are locked
    ObjectLock(commands::object_lock::Args),
    /// Bring a repository in a versioned S3 bucket back to how it was at an earlier time
    Rollback(commands::rollback::Args),
    /// What the repository stores, by folder and (with --tiers) storage class and cost
    Stats(commands::stats::Args),
    /// Run a profile's job: backup, forget (and prune), check, then its drill and copies
    Job(commands::job::Args),
    /// Print a systemd timer or a crontab line that runs a profile's job
    Schedule(commands::schedule::Args),
    /// Print the settings in effect (with -P, a profile's) and where each one comes from
    Config(commands::config::Args),
    /// List the local caches of remote repositories, or remove old ones
    Cache(commands::cache::Args),
}

fn run(cli: Cli) -> anyhow::Result<u8> {
    match cli.command {
        Command::Init(a) => commands::init::run(&cli.global, a),
        Command::Backup(a) => commands::backup::run(&cli.global, a),
        Command::Restore(a) => commands::restore::run(&cli.global, a),
        Command::Snapshots(a) => commands::snapshots::run(&cli.global, a),
        Command::Ls(a) => commands::ls::run(&cli.global, a),
        Command::Find(a) => commands::find::run(&cli.global, a),
        Command::Diff(a) => commands::diff::run(&cli.global, a),
        Command::Dump(a) => commands::dump::run(&cli.global, a),
        Command::Check(a) => commands::check::run(&cli.global, a),
        Command::Health(a) => commands::health::run(&cli.global, a),
        Command::Drill(a) => commands::drill::run(&cli.global, a),
        Command::Copy(a) => commands::copy::run(&cli.global, a),
        Command::Forget(a) => commands::forget::run(&cli.global, a),
        Command::Prune(a) => commands::prune::run(&cli.global, a),
        Command::Repair(a) => commands::repair::run(&cli.global, a),
        Command::Key(a) => commands::key::run(&cli.global, a),
        Command::Tag(a) => commands::tag::run(&cli.global, a),
        Command::Rewrite(a) => commands::rewrite::run(&cli.global, a),
        Command::Migrate(a) => commands::migrate::run(&cli.global, a),
        Command::Cat(a) => commands::cat::run(&cli.global, a),
        Command::List(a) => commands::list::run(&cli.global, a),
        Command::Version(a) => commands::version::run(&cli.global, a),
        Command::Generate(a) => {
            commands::generate::run(<Cli as clap::CommandFactory>::command(), a)
        }
        Command::Unlock(a) => commands::unlock::run(&cli.global, a),
        Command::Tier(a) => commands::tier::run(&cli.global, a),
        Command::ObjectLock(a) => commands::object_lock::run(&cli.global, a),
        Command::Rollback(a) => commands::rollback::run(&cli.global, a),
        Command::Stats(a) => commands::stats::run(&cli.global, a),
        Command::Job(a) => commands::job::run(&cli.global, a),
        Command::Schedule(a) => commands::schedule::run(&cli.global, a),
        Command::Config(a) => commands::config::run(&cli.global, a),
        Command::Cache(a) => commands::cache::run(&cli.global, a),
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
                e if e.needs_thaw() => exit::NEEDS_THAW,
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

/// Empty `FLOE_*` variables count as unset (`FLOE_PASSWORD_FILE=` in a crontab, say), as in
/// most tools, rather than as an empty value that clap would refuse.
fn drop_empty_variables() {
    let empty: Vec<_> = std::env::vars_os()
        .filter(|(k, v)| v.is_empty() && k.to_string_lossy().starts_with("FLOE_"))
        .map(|(k, _)| k)
        .collect();
    for k in empty {
        // Single-threaded still: nothing else reads the environment yet.
        std::env::remove_var(k);
    }
}

/// True when global option `id` took its value from the environment, neither before the
/// command's name nor after it.
fn from_environment(m: &clap::ArgMatches, id: &str) -> bool {
    use clap::parser::ValueSource;
    let sub = m.subcommand().map(|(_, sm)| sm);
    let sources = std::iter::once(m).chain(sub).map(|m| m.value_source(id));
    let sources: Vec<_> = sources.collect();
    sources.contains(&Some(ValueSource::EnvVariable))
        && !sources.contains(&Some(ValueSource::CommandLine))
}

/// The parsed command line and its command's name. On a usage error the line is parsed once
/// more without the `FLOE_*` variables, so that the usage line printed shows what the user
/// typed, not options that came from the environment as if they had to be given.
fn parse(args: &[std::ffi::OsString], profile: Option<&profile::Profile>) -> (Cli, String) {
    use clap::{CommandFactory, FromArgMatches};
    let line = || std::iter::once("floe".into()).chain(args.iter().cloned());
    let parsed = Cli::command()
        .try_get_matches_from(line())
        .and_then(|m| Ok((Cli::from_arg_matches(&m)?, m)));
    match parsed {
        Ok((mut cli, m)) => {
            cli.global.compression_from_env = from_environment(&m, "compression");
            (cli, m.subcommand_name().unwrap_or_default().to_string())
        }
        Err(e) if e.use_stderr() => {
            // A typo in a cron line must not fail in silence.
            let message = e.to_string();
            let first = message.lines().next().unwrap_or_default();
            unattended::notify_early(profile, first.trim_start_matches("error: "));
            let from_env: Vec<_> = std::env::vars_os()
                .map(|(k, _)| k)
                .filter(|k| k.to_string_lossy().starts_with("FLOE_"))
                .collect();
            for k in from_env {
                // Single-threaded still, and the process exits below.
                std::env::remove_var(k);
            }
            Cli::try_parse_from(line()).err().unwrap_or(e).exit()
        }
        Err(e) => e.exit(),
    }
}

/// The command line with the profile's options placed before the user's (`-P`), and the
/// profile. A password written in the profile is handed on as `FLOE_PASSWORD`, unless that is
/// set already.
fn with_profile(
    args: Vec<std::ffi::OsString>,
) -> anyhow::Result<(Vec<std::ffi::OsString>, Option<profile::Profile>)> {
    let Some(name) = profile::requested(&args) else {
        return Ok((args, None));
    };
    let mut cmd = <Cli as clap::CommandFactory>::command();
    cmd.build();
    let profile = profile::load(&name, &cmd)?;
    if let Some(p) = profile.password() {
        if std::env::var_os("FLOE_PASSWORD").is_none() {
            // Single-threaded still: nothing else reads the environment yet.
            std::env::set_var("FLOE_PASSWORD", p);
        }
    }
    let out = profile::apply(&profile, &cmd, args);
    Ok((out, Some(profile)))
}

/// The layers under a network failure, which `-v` prints after the one-line message.
fn network_causes(err: &anyhow::Error) -> &[String] {
    err.chain()
        .find_map(|c| match c.downcast_ref::<floe_engine::Error>() {
            Some(floe_engine::Error::Backend(b)) => Some(b.causes()),
            _ => c
                .downcast_ref::<floe_engine::BackendError>()
                .map(|b| b.causes()),
        })
        .unwrap_or(&[])
}

fn main() -> ExitCode {
    return_freed_memory_promptly();
    drop_empty_variables();
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    profile::remember_args(&args);
    let (args, profile) = match with_profile(args) {
        Ok(x) => x,
        Err(e) => {
            // A typo in a profile is one in the command line.
            eprintln!("error: {e:#}");
            unattended::notify_early(None, &format!("{e:#}"));
            return ExitCode::from(exit::USAGE);
        }
    };
    let (mut cli, name) = parse(&args, profile.as_ref());
    if let Err(e) = repo::read_repository_file(&mut cli.global) {
        eprintln!("error: {e:#}");
        unattended::notify_early(profile.as_ref(), &format!("{e:#}"));
        return ExitCode::from(exit::ERROR);
    }
    keep_huge_pages_only_for(&cli.command);
    output::set_quiet(cli.global.quiet);
    let verbose = cli.global.verbose > 0;
    if let Some(p) = &profile {
        profile::set_current(p.clone());
    }
    let report = unattended::Run::start(&name, &cli.global, profile);
    let result = report.before().and_then(|()| run(cli));
    let outcome = match &result {
        Ok(code) => unattended::Outcome {
            exit_code: *code,
            error: output::take_failure(),
        },
        Err(e) if is_broken_pipe(e) => unattended::Outcome {
            exit_code: exit::OK,
            error: None,
        },
        Err(e) => {
            eprintln!("error: {e:#}");
            if verbose {
                for cause in network_causes(e) {
                    eprintln!("  caused by: {cause}");
                }
            }
            unattended::Outcome {
                exit_code: exit_code_of(e),
                error: Some(format!("{e:#}")),
            }
        }
    };
    report.finish(&outcome);
    ExitCode::from(outcome.exit_code)
}
