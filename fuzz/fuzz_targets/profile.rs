//! Profiles (`-P`): the bytes as the text of a profile file (when they are UTF-8), parsed and
//! checked as the command line checks a profile, against a model of floe's command line that
//! holds every kind of option a profile can meet (flags, counts, lists, single values with value
//! parsers, positionals, options that conflict or require others, a command with commands).
//!
//! Where a profile passes the checks:
//! - resolving it alone and inheriting from a copy of itself must give the same single values
//!   and each list twice, and what either resolves to must pass the checks again;
//! - for no command and for each command, the command line the profile stands for must be one
//!   that the model takes, unless options conflict or one the profile lacks is required: a value
//!   that the checks accepted is never refused, and nothing the model does not know is added;
//! - an `inherit` name must be looked for in the same places every time.
#![no_main]

use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::OnceLock;

use clap::builder::{BoolishValueParser, NonEmptyStringValueParser};
use clap::error::ErrorKind;
use clap::{value_parser, Arg, ArgAction, Command};
use floe_cli::profile::{self, Profile};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        one(text);
    }
});

fn one(text: &str) {
    let cli = model();
    let Ok(table) = profile::parse(text, cli) else {
        return;
    };
    let alone = Profile::from_chain("fuzz", vec![("fuzz.toml".into(), table.clone())]);
    let twice = Profile::from_chain(
        "fuzz",
        vec![
            ("fuzz.toml".into(), table.clone()),
            ("base.toml".into(), table.clone()),
        ],
    );
    same_but_lists_twice(&alone.top, &twice.top);
    assert_eq!(
        alone.sections.keys().collect::<Vec<_>>(),
        twice.sections.keys().collect::<Vec<_>>()
    );
    for (name, section) in &alone.sections {
        same_but_lists_twice(section, &twice.sections[name]);
    }
    for p in [&alone, &twice] {
        if let Err(e) = profile::check(&as_table(p), cli) {
            panic!("a resolved profile fails the checks it passed: {e:#}\n{p:#?}");
        }
        expansions_parse(p, cli);
    }
    if let Some(name) = table.get("inherit").and_then(toml::Value::as_str) {
        let places = profile::candidates(name);
        assert!(!places.is_empty());
        assert_eq!(places, profile::candidates(name));
    }
}

/// `twice` is `alone` inheriting from itself: the same keys, single values unchanged, lists
/// doubled.
fn same_but_lists_twice(
    alone: &std::collections::BTreeMap<String, profile::Setting>,
    twice: &std::collections::BTreeMap<String, profile::Setting>,
) {
    assert_eq!(
        alone.keys().collect::<Vec<_>>(),
        twice.keys().collect::<Vec<_>>()
    );
    for (key, a) in alone {
        let t = &twice[key];
        match (&a.value, &t.value) {
            (toml::Value::Array(one), toml::Value::Array(two)) => {
                assert_eq!(two.len(), 2 * one.len(), "{key}");
                assert_eq!(t.files.len(), 2 * a.files.len(), "{key}");
            }
            (one, two) => {
                // Written as text: a NaN is not equal to itself.
                assert_eq!(one.to_string(), two.to_string(), "{key}");
                assert_eq!(t.files.len(), 1, "{key}");
            }
        }
    }
}

/// A resolved profile written back as the table of one file.
fn as_table(p: &Profile) -> toml::Table {
    let mut out: toml::Table = p
        .top
        .iter()
        .map(|(k, s)| (k.clone(), s.value.clone()))
        .collect();
    for (name, section) in &p.sections {
        let t: toml::Table = section
            .iter()
            .map(|(k, s)| (k.clone(), s.value.clone()))
            .collect();
        out.insert(name.clone(), toml::Value::Table(t));
    }
    out
}

/// For no command and for each command of the model, the line the profile stands for parses,
/// unless options conflict or a required one is missing (what a user's own line can do too).
fn expansions_parse(p: &Profile, cli: &Command) {
    let subs = cli
        .get_subcommands()
        .map(|c| c.get_name().to_string())
        .filter(|n| n != "help");
    for sub in std::iter::once(None).chain(subs.map(Some)) {
        let typed: Vec<OsString> = sub.iter().map(OsString::from).collect();
        let line = profile::apply(p, cli, typed);
        let args = std::iter::once(OsString::from("floe")).chain(line.iter().cloned());
        let Err(e) = cli.clone().try_get_matches_from(args) else {
            continue;
        };
        let fine = matches!(
            e.kind(),
            ErrorKind::ArgumentConflict
                | ErrorKind::MissingRequiredArgument
                | ErrorKind::MissingSubcommand
                | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
        );
        assert!(
            fine,
            "the line a checked profile stands for is refused ({:?}): {e}\nline: {line:?}\n{p:#?}",
            e.kind()
        );
    }
}

/// The model of floe's command line, built once.
fn model() -> &'static Command {
    static MODEL: OnceLock<Command> = OnceLock::new();
    MODEL.get_or_init(|| {
        let mut cli = global_options(Command::new("floe").subcommand_required(true))
            .subcommand(backup())
            .subcommand(forget())
            .subcommand(
                Command::new("prune")
                    .arg(
                        Arg::new("max_unused")
                            .long("max-unused")
                            .default_value("5%")
                            .value_parser(|s: &str| s.parse::<floe_engine::MaxUnused>()),
                    )
                    .arg(size("max-repack-size"))
                    .arg(flag("dry-run").short('n')),
            )
            .subcommand(
                Command::new("check").arg(flag("read-data")).arg(
                    Arg::new("read_data_subset")
                        .long("read-data-subset")
                        .value_name("SUBSET")
                        .value_parser(|s: &str| s.parse::<floe_engine::ReadData>())
                        .conflicts_with("read-data"),
                ),
            )
            .subcommand(
                Command::new("drill")
                    .arg(
                        Arg::new("files")
                            .long("files")
                            .value_parser(value_parser!(u32).range(1..))
                            .conflicts_with("size"),
                    )
                    .arg(size("size"))
                    .arg(
                        Arg::new("seed")
                            .long("seed")
                            .value_parser(value_parser!(u64)),
                    )
                    .arg(path("target").short('t'))
                    .arg(flag("keep")),
            )
            .subcommand(
                Command::new("restore")
                    .arg(Arg::new("snapshot").value_name("SNAPSHOT[:SUBPATH]"))
                    .arg(path("target").short('t').required(true))
                    .arg(list("include").short('i'))
                    .arg(
                        Arg::new("overwrite")
                            .long("overwrite")
                            .num_args(0..=1)
                            .default_missing_value("always")
                            .value_parser(["always", "if-changed", "if-newer", "never"]),
                    )
                    .arg(flag("delete").requires("overwrite")),
            )
            .subcommand(
                Command::new("init")
                    .arg(
                        Arg::new("level")
                            .long("compression-level")
                            .allow_negative_numbers(true)
                            .value_parser(value_parser!(i32).range(-7..=22)),
                    )
                    .arg(flag("copy-chunker-params").requires("from-repo"))
                    .arg(Arg::new("from-repo").long("from-repo")),
            )
            .subcommand(
                Command::new("key")
                    .subcommand_required(true)
                    .subcommand(Command::new("add").arg(path("new-password-file")))
                    .subcommand(Command::new("list")),
            )
            .subcommand(Command::new("job").arg(flag("no-copy")))
            .subcommand(Command::new("copy").arg(Arg::new("ids").action(ArgAction::Append)));
        cli.build();
        cli
    })
}

/// The options every command takes (`GlobalArgs`).
fn global_options(cli: Command) -> Command {
    let global = |a: Arg| a.global(true);
    cli.arg(global(
        Arg::new("repo")
            .short('r')
            .long("repo")
            .env("FLOE_FUZZ_REPOSITORY")
            .value_parser(NonEmptyStringValueParser::new()),
    ))
    .arg(global(
        Arg::new("profile")
            .short('P')
            .long("profile")
            .env("FLOE_FUZZ_PROFILE"),
    ))
    .arg(global(path("password-file").env("FLOE_FUZZ_PASSWORD_FILE")))
    .arg(global(
        Arg::new("password_command").long("password-command"),
    ))
    .arg(global(
        Arg::new("retry_lock")
            .long("retry-lock")
            .value_parser(|s: &str| s.parse::<floe_engine::CalendarDuration>()),
    ))
    .arg(global(
        Arg::new("no_lock")
            .long("no-lock")
            .env("FLOE_FUZZ_NO_LOCK")
            .action(ArgAction::SetTrue)
            .value_parser(BoolishValueParser::new()),
    ))
    .arg(global(
        Arg::new("as_of")
            .long("as-of")
            .value_name("TIME")
            .value_parser(value_parser!(u64)),
    ))
    .arg(global(list("notify-url").env("FLOE_FUZZ_NOTIFY_URL")))
    .arg(global(path("metrics-file")))
    .arg(global(Arg::new("metrics_push").long("metrics-push")))
    .arg(global(flag("json")))
    .arg(global(flag("quiet").short('q').conflicts_with("verbose")))
    .arg(global(
        Arg::new("verbose")
            .short('v')
            .long("verbose")
            .action(ArgAction::Count),
    ))
    .arg(global(Arg::new("s3_region").long("s3-region")))
    .arg(global(Arg::new("s3_profile").long("s3-profile")))
    .arg(global(
        Arg::new("s3_path_style")
            .long("s3-path-style")
            .value_parser(BoolishValueParser::new()),
    ))
    .arg(global(
        Arg::new("connections")
            .long("connections")
            .default_value("16")
            .value_parser(value_parser!(u32).range(1..=256)),
    ))
    .arg(global(
        Arg::new("data_storage_class")
            .long("data-storage-class")
            .value_parser(["STANDARD", "STANDARD_IA", "GLACIER_IR", "DEEP_ARCHIVE"]),
    ))
    .arg(global(
        Arg::new("s3_attempts")
            .long("s3-attempts")
            .default_value("8")
            .value_parser(value_parser!(u32).range(1..=100)),
    ))
    .arg(global(list("cacert").value_parser(value_parser!(PathBuf))))
    .arg(global(path("tls-client-cert")))
    .arg(global(flag("insecure-tls")))
    .arg(global(path("cache-dir")))
    .arg(global(
        Arg::new("no_cache")
            .long("no-cache")
            .action(ArgAction::SetTrue)
            .value_parser(BoolishValueParser::new()),
    ))
    .arg(global(size("cache-size").default_value("4G")))
}

fn backup() -> Command {
    Command::new("backup")
        .arg(
            Arg::new("paths")
                .value_name("PATH")
                .action(ArgAction::Append),
        )
        .arg(flag("stdin-from-command").conflicts_with("files-from"))
        .arg(path("files-from"))
        .arg(Arg::new("stdin_filename").long("stdin-filename"))
        .arg(Arg::new("host").long("host"))
        .arg(list("tag"))
        .arg(list("exclude").short('e'))
        .arg(list("exclude-file").value_parser(value_parser!(PathBuf)))
        .arg(list("exclude-if-present").value_name("NAME[:HEADER]"))
        .arg(size("exclude-larger-than"))
        .arg(flag("one-file-system").short('x'))
        .arg(flag("dry-run").short('n'))
        .arg(flag("force"))
        .arg(flag("skip-if-unchanged").conflicts_with("force"))
}

fn forget() -> Command {
    let keep = |n: &str| {
        Arg::new(n.replace('-', "_"))
            .long(n.to_string())
            .default_value("0")
            .allow_negative_numbers(true)
            .value_parser(value_parser!(u32))
    };
    let within = |n: &str| {
        Arg::new(n.replace('-', "_"))
            .long(n.to_string())
            .value_name("DURATION")
            .value_parser(|s: &str| s.parse::<floe_engine::CalendarDuration>())
    };
    Command::new("forget")
        .arg(Arg::new("ids").value_name("ID").action(ArgAction::Append))
        .args(["keep-last", "keep-hourly", "keep-daily", "keep-weekly"].map(keep))
        .args(["keep-monthly", "keep-yearly"].map(keep))
        .args(["keep-within", "keep-within-daily", "keep-within-weekly"].map(within))
        .arg(list("keep-tag"))
        .arg(
            Arg::new("group_by")
                .long("group-by")
                .default_value("host,paths")
                .value_parser(|s: &str| s.parse::<floe_engine::GroupBy>()),
        )
        .arg(flag("prune"))
        .arg(flag("dry-run").short('n'))
}

fn flag(long: &'static str) -> Arg {
    Arg::new(long).long(long).action(ArgAction::SetTrue)
}

fn list(long: &'static str) -> Arg {
    Arg::new(long).long(long).action(ArgAction::Append)
}

fn path(long: &'static str) -> Arg {
    Arg::new(long)
        .long(long)
        .value_name("FILE")
        .value_parser(value_parser!(PathBuf))
}

fn size(long: &'static str) -> Arg {
    Arg::new(long)
        .long(long)
        .value_name("SIZE")
        .value_parser(|s: &str| floe_engine::parse_size(s))
}
