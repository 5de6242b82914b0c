//! Profiles: a command's options kept in a TOML file (`-P NAME`), so that a cron line or a
//! systemd unit says `floe -P home job` instead of twenty flags.
//!
//! A profile's keys are the long names of the options. Top-level keys are the options every
//! command takes (`repository`, `password-file`, the S3 options, `notify-url`, ...); a section
//! named after a command (`[backup]`, `[forget]`, `[check]`, ...) holds that command's options;
//! `[hooks]` holds shell commands run around a command, and `[copy]` the profiles of the
//! repositories a job copies its snapshots to. The profile becomes arguments placed before those
//! of the command line, so clap checks every value, the command line wins over the profile for
//! options that take one value, and lists (excludes, tags) add up. A variable (`FLOE_*`) wins over
//! the profile too. An unknown key is an error that names it and its file: a typo must not
//! silently drop an exclude.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context};
use clap::{Arg, ArgAction, Command};

/// Keys of `[hooks]`.
pub const HOOKS: [&str; 4] = ["before", "after", "failure", "finally"];

/// How many profiles an `inherit` chain may hold before it is taken for a loop.
const MAX_INHERIT: usize = 16;

/// One value of a profile and the files it came from (more than one for a list that an
/// inheriting profile extends).
#[derive(Debug, Clone)]
pub struct Setting {
    pub value: toml::Value,
    pub files: Vec<PathBuf>,
}

/// A profile with its `inherit` chain resolved.
#[derive(Debug, Clone, Default)]
pub struct Profile {
    /// The name it was asked for by.
    pub name: String,
    /// Its file, then the files it inherits from, nearest first.
    pub files: Vec<PathBuf>,
    /// Top-level settings, keyed by option name (`repo`, not `repository`).
    pub top: BTreeMap<String, Setting>,
    /// Sections (`backup`, `hooks`, ...), each keyed by option name.
    pub sections: BTreeMap<String, BTreeMap<String, Setting>>,
}

/// The command line as typed, and the profile in effect, for `config` and `job`.
static ARGS: std::sync::OnceLock<Vec<OsString>> = std::sync::OnceLock::new();
static CURRENT: std::sync::OnceLock<Profile> = std::sync::OnceLock::new();

/// Keeps the command line as typed (without the program name).
pub fn remember_args(args: &[OsString]) {
    let _ = ARGS.set(args.to_vec());
}

/// The command line as typed (without the program name).
pub fn typed_args() -> &'static [OsString] {
    ARGS.get().map(Vec::as_slice).unwrap_or_default()
}

/// Keeps the profile in effect.
pub fn set_current(p: Profile) {
    let _ = CURRENT.set(p);
}

/// The profile in effect (`-P`), if any.
pub fn current() -> Option<&'static Profile> {
    CURRENT.get()
}

/// Where `-P NAME` looks: a value with a `/` or ending in `.toml` is a path; otherwise
/// `$XDG_CONFIG_HOME/floe/NAME.toml` (`~/.config/floe/`), then `/etc/floe/NAME.toml`.
pub fn candidates(name: &str) -> Vec<PathBuf> {
    if name.contains('/') || name.ends_with(".toml") {
        return vec![PathBuf::from(name)];
    }
    let file = format!("{name}.toml");
    let config = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".config")));
    let mut out: Vec<PathBuf> = config
        .map(|c| c.join("floe").join(&file))
        .into_iter()
        .collect();
    out.push(Path::new("/etc/floe").join(file));
    out
}

/// Where profile `name` is: for one named by `inherit`, the inheriting file's folder comes
/// first (and a relative path is taken from there), so that a profile given by its path finds
/// its base beside it.
fn locate(name: &str, beside: Option<&Path>) -> anyhow::Result<PathBuf> {
    let mut places = candidates(name);
    if let Some(dir) = beside.and_then(Path::parent) {
        let own = if name.contains('/') || name.ends_with(".toml") {
            dir.join(name)
        } else {
            dir.join(format!("{name}.toml"))
        };
        places.insert(0, own);
    }
    if let Some(p) = places.iter().find(|p| p.is_file()) {
        return Ok(p.clone());
    }
    let looked: Vec<String> = places.iter().map(|p| p.display().to_string()).collect();
    bail!(
        "profile {name:?} not found: looked for {}",
        looked.join(", ")
    )
}

/// Reads profile `name` and those it inherits from, checking every key against the options of
/// `cli` (the whole command line's definition).
pub fn load(name: &str, cli: &Command) -> anyhow::Result<Profile> {
    let mut chain = Vec::new();
    let mut next = Some(name.to_string());
    while let Some(n) = next.take() {
        let beside = chain.last().map(|(f, _): &(PathBuf, _)| f.as_path());
        let file = locate(&n, beside)?;
        if chain.iter().any(|(f, _): &(PathBuf, _)| *f == file) {
            bail!("profile {}: inherit makes a loop", file.display());
        }
        if chain.len() == MAX_INHERIT {
            bail!("profile {name:?}: more than {MAX_INHERIT} profiles inherit one another");
        }
        let table = read(&file, cli)?;
        // `parse` has checked that it is a string.
        next = table
            .get("inherit")
            .and_then(toml::Value::as_str)
            .map(String::from);
        chain.push((file, table));
    }
    Ok(Profile::from_chain(name, chain))
}

/// Parses the text of one profile file and checks its keys and values against the options of
/// `cli` (the whole command line's definition, built); reads no file. The table is what
/// [`Profile::from_chain`] takes; its `inherit`, if any, is a string.
pub fn parse(text: &str, cli: &Command) -> anyhow::Result<toml::Table> {
    let table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| anyhow!("{}", e.to_string().trim_end()))?;
    check(&table, cli)?;
    Ok(table)
}

/// Reads one profile file, parses it and checks its keys and values.
fn read(file: &Path, cli: &Command) -> anyhow::Result<toml::Table> {
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("reading profile {}", file.display()))?;
    let table = parse(&text, cli).map_err(|e| anyhow!("profile {}: {e}", file.display()))?;
    if table.contains_key("password") {
        refuse_readable(file)?;
    }
    Ok(table)
}

/// A profile holding a password must be readable by its owner only.
fn refuse_readable(file: &Path) -> anyhow::Result<()> {
    let mode = std::fs::metadata(file)
        .with_context(|| format!("reading profile {}", file.display()))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        bail!(
            "profile {} holds a password but can be read by group or others (mode {:o}): \
             run chmod 600 on it, or use password-file",
            file.display(),
            mode & 0o777
        );
    }
    Ok(())
}

impl Profile {
    /// The profile `name` made of `chain`: its own file and table, then those it inherits from,
    /// nearest first, each table as [`parse`] returns it.
    pub fn from_chain(name: &str, chain: Vec<(PathBuf, toml::Table)>) -> Profile {
        let mut profile = Profile {
            name: name.to_string(),
            files: chain.iter().map(|(f, _)| f.clone()).collect(),
            ..Default::default()
        };
        // The farthest ancestor first, so that nearer profiles override it.
        for (file, table) in chain.into_iter().rev() {
            profile.merge(&file, table);
        }
        profile
    }

    /// Adds `table` (from `file`) over what the profile holds: single values are replaced, lists
    /// extended.
    fn merge(&mut self, file: &Path, table: toml::Table) {
        for (key, value) in table {
            match (key.as_str(), value) {
                ("inherit", _) => {}
                (_, toml::Value::Table(section)) => {
                    let into = self.sections.entry(key).or_default();
                    for (k, v) in section {
                        put(into, k, v, file);
                    }
                }
                (_, v) => put(&mut self.top, canonical_top(&key).to_string(), v, file),
            }
        }
    }

    /// The hooks of `[hooks]`.
    pub fn hook(&self, which: &str) -> Option<String> {
        match &self.sections.get("hooks")?.get(which)?.value {
            toml::Value::String(s) => Some(s.clone()),
            _ => None,
        }
    }

    /// `[hooks] timeout`: how long one hook may run (checked when the profile is read).
    pub fn hook_timeout(&self) -> Option<std::time::Duration> {
        parse_wait(&self.hook("timeout")?).ok()
    }

    /// The password written in the profile itself.
    pub fn password(&self) -> Option<&str> {
        self.top.get("password")?.value.as_str()
    }

    /// A list of strings of a section (`[copy] destinations`).
    pub fn strings(&self, section: &str, key: &str) -> Vec<String> {
        let Some(s) = self.sections.get(section).and_then(|s| s.get(key)) else {
            return Vec::new();
        };
        match &s.value {
            toml::Value::Array(a) => a
                .iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect(),
            toml::Value::String(v) => vec![v.clone()],
            _ => Vec::new(),
        }
    }

    /// Whether the profile has section `name`.
    pub fn has_section(&self, name: &str) -> bool {
        self.sections.contains_key(name)
    }
}

fn put(into: &mut BTreeMap<String, Setting>, key: String, value: toml::Value, file: &Path) {
    match (into.get_mut(&key), value) {
        (Some(old), toml::Value::Array(more)) if old.value.is_array() => {
            if let toml::Value::Array(list) = &mut old.value {
                list.extend(more);
            }
            old.files.push(file.to_path_buf());
        }
        (_, value) => {
            into.insert(
                key,
                Setting {
                    value,
                    files: vec![file.to_path_buf()],
                },
            );
        }
    }
}

/// `repository` names `--repo`, as restic's profiles of other tools name it.
fn canonical_top(key: &str) -> &str {
    match key {
        "repository" => "repo",
        k => k,
    }
}

/// Checks every key of a profile against the options of `cli` (built) it may set.
pub fn check(table: &toml::Table, cli: &Command) -> anyhow::Result<()> {
    if table.contains_key("repository") && table.contains_key("repo") {
        bail!("repository and repo are two names of one setting: set one of them");
    }
    for (key, value) in table {
        match (key.as_str(), value) {
            ("inherit", toml::Value::String(_)) => {}
            ("inherit", _) => bail!("inherit must be a profile name"),
            ("password", toml::Value::String(_)) => {}
            ("password", _) => bail!("password must be a string"),
            ("hooks", toml::Value::Table(t)) => check_hooks(t)?,
            ("copy", toml::Value::Table(t)) => check_copy(t)?,
            (name, toml::Value::Table(t)) => {
                // clap's `help` command takes no options a profile could set.
                let sub = cli.find_subcommand(name).filter(|_| name != "help");
                let sub = sub.ok_or_else(|| {
                    anyhow!("unknown section [{name}]: sections are named after commands (backup, forget, check, ...), or are [hooks] or [copy]")
                })?;
                for (k, v) in t {
                    let arg = section_arg(sub, k).ok_or_else(|| {
                        anyhow!(
                            "unknown key {k:?} in [{name}]: `floe {name} --help` lists the options"
                        )
                    })?;
                    check_value(sub, arg, v).map_err(|e| anyhow!("[{name}] {k}: {e}"))?;
                }
            }
            (k, v) => {
                let arg = global_arg(cli, canonical_top(k)).ok_or_else(|| {
                    anyhow!("unknown key {k:?}: at the top only the options every command takes (repository, password-file, s3-region, notify-url, ...) may be set; a command's own options go in its section")
                })?;
                check_value(cli, arg, v).map_err(|e| anyhow!("{k}: {e}"))?;
            }
        }
    }
    Ok(())
}

fn check_hooks(t: &toml::Table) -> anyhow::Result<()> {
    for (k, v) in t {
        if k == "timeout" {
            let limit = v.as_str().ok_or_else(|| {
                anyhow!("[hooks] timeout: expected a duration in a string, such as \"10m\"")
            })?;
            let limit = parse_wait(limit).map_err(|e| anyhow!("[hooks] timeout: {e}"))?;
            if limit.is_zero() {
                bail!("[hooks] timeout: 0 would stop every hook at once; leave timeout out for no limit");
            }
            continue;
        }
        if !HOOKS.contains(&k.as_str()) {
            bail!(
                "unknown key {k:?} in [hooks]: the hooks are {}, and timeout limits them",
                HOOKS.join(", ")
            );
        }
        if !v.is_str() {
            bail!("[hooks] {k}: expected a shell command in a string");
        }
    }
    Ok(())
}

fn check_copy(t: &toml::Table) -> anyhow::Result<()> {
    for (k, v) in t {
        if k != "destinations" {
            bail!("unknown key {k:?} in [copy]: [copy] has destinations, a list of profiles");
        }
        let names = v.as_array().filter(|a| a.iter().all(|n| n.is_str()));
        if names.is_none() {
            bail!("[copy] destinations: expected a list of profile names");
        }
    }
    Ok(())
}

/// Options every command takes that a profile may set (not `--profile` itself, nor `--help`).
fn global_arg<'a>(cli: &'a Command, key: &str) -> Option<&'a Arg> {
    cli.get_arguments()
        .filter(|a| a.is_global_set())
        .filter(|a| !matches!(a.get_id().as_str(), "profile" | "help" | "version"))
        .find(|a| a.get_long() == Some(key))
}

/// Options every command takes that a command's section may set for that command alone
/// (`[backup] compression = "max"`).
const PER_COMMAND_GLOBALS: [&str; 1] = ["compression"];

/// An option of a command by its long name, its positional's name (`paths`, or `sources` for
/// backup's), or its plural (`tags` for `--tag`).
pub fn section_arg<'a>(sub: &'a Command, key: &str) -> Option<&'a Arg> {
    let own = || {
        sub.get_arguments()
            .filter(|a| !a.is_global_set() || PER_COMMAND_GLOBALS.contains(&a.get_id().as_str()))
            .filter(|a| !shows_help(a))
    };
    let long = |k: &str| own().find(|a| a.get_long() == Some(k));
    long(key)
        .or_else(|| {
            let one = key.strip_suffix('s')?;
            long(one).filter(|a| matches!(a.get_action(), ArgAction::Append))
        })
        .or_else(|| {
            let positional = own().find(|a| a.is_positional())?;
            let id = positional.get_id().as_str().replace('_', "-");
            (key == id || key == "sources" && sub.get_name() == "backup").then_some(positional)
        })
}

/// `--help` or `--version`, which clap gives every command: not an option a profile sets.
fn shows_help(a: &Arg) -> bool {
    matches!(
        a.get_action(),
        ArgAction::Help | ArgAction::HelpShort | ArgAction::HelpLong | ArgAction::Version
    )
}

/// A profile value's type fits the option, and clap accepts it.
fn check_value(cmd: &Command, arg: &Arg, v: &toml::Value) -> anyhow::Result<()> {
    match (arg.get_action(), v) {
        (ArgAction::SetTrue | ArgAction::SetFalse, toml::Value::Boolean(_)) => Ok(()),
        (ArgAction::SetTrue | ArgAction::SetFalse, _) => bail!("expected true or false"),
        (ArgAction::Count, toml::Value::Integer(n)) if (0..=8).contains(n) => Ok(()),
        (ArgAction::Count, _) => bail!("expected a count from 0 to 8"),
        (ArgAction::Append, toml::Value::Array(items)) => {
            items.iter().try_for_each(|i| check_scalar(cmd, arg, i))
        }
        (_, toml::Value::Array(_)) if arg.is_positional() => bail!("expected one value"),
        (_, toml::Value::Array(_)) => bail!("takes one value, not a list"),
        (_, v) => check_scalar(cmd, arg, v),
    }
}

fn check_scalar(cmd: &Command, arg: &Arg, v: &toml::Value) -> anyhow::Result<()> {
    let text = scalar(v).ok_or_else(|| anyhow!("expected a string, a number or true/false"))?;
    // The option alone, with its own parser: clap's message then names it as the user knows it.
    let long = arg.get_long().unwrap_or(arg.get_id().as_str()).to_string();
    let mut alone = Arg::new(arg.get_id().clone())
        .long(long.clone())
        .action(ArgAction::Set)
        .value_parser(arg.get_value_parser().clone());
    if let Some(names) = arg.get_value_names() {
        alone = alone.value_names(names.to_vec());
    }
    Command::new(cmd.get_name().to_string())
        .no_binary_name(true)
        .arg(alone)
        .try_get_matches_from([format!("--{long}={text}")])
        .map(|_| ())
        .map_err(|e| anyhow!("{}", clap_message(&e)))
}

/// The first line of a clap error, without its `error: ` prefix.
fn clap_message(e: &clap::Error) -> String {
    let s = e.to_string();
    let first = s.lines().next().unwrap_or_default();
    first.trim_start_matches("error: ").to_string()
}

/// A scalar as the command line would write it.
pub fn scalar(v: &toml::Value) -> Option<String> {
    match v {
        toml::Value::String(s) => Some(s.clone()),
        toml::Value::Integer(i) => Some(i.to_string()),
        toml::Value::Float(f) => Some(f.to_string()),
        toml::Value::Boolean(b) => Some(b.to_string()),
        toml::Value::Datetime(d) => Some(d.to_string()),
        _ => None,
    }
}

/// A variable that sets `arg` is in the environment, so it wins over the profile.
pub fn set_by_environment(arg: &Arg) -> Option<String> {
    let var = arg.get_env()?;
    std::env::var_os(var)
        .filter(|v| !v.is_empty())
        .map(|_| var.to_string_lossy().into_owned())
}

/// The arguments a setting stands for: `--name=value` once or per list item, `--name` for a
/// true flag, bare values for a positional.
fn arguments(arg: &Arg, value: &toml::Value) -> Vec<OsString> {
    let long = arg.get_long().unwrap_or_default();
    let items: Vec<&toml::Value> = match value {
        toml::Value::Array(a) => a.iter().collect(),
        v => vec![v],
    };
    match arg.get_action() {
        ArgAction::SetTrue if value.as_bool() == Some(true) => vec![format!("--{long}").into()],
        ArgAction::SetTrue | ArgAction::SetFalse => Vec::new(),
        ArgAction::Count => {
            let n = value.as_integer().unwrap_or(0).max(0) as usize;
            vec![format!("--{long}").into(); n]
        }
        _ if arg.is_positional() => items
            .iter()
            .filter_map(|v| scalar(v))
            .map(Into::into)
            .collect(),
        _ => items
            .iter()
            .filter_map(|v| scalar(v))
            .map(|v| format!("--{long}={v}").into())
            .collect(),
    }
}

/// What the profile adds to the command line: its top-level settings (placed before all of the
/// user's arguments), the options of `[sub]` (placed right after the subcommand's name) and the
/// positionals of `[sub]` (placed last). Settings that a `FLOE_*` variable also sets are left
/// out (the variable wins), and so are `[sub]`'s positionals when `user_gave_positionals`.
pub struct Expansion {
    pub top: Vec<OsString>,
    pub options: Vec<OsString>,
    pub positionals: Vec<OsString>,
}

/// The arguments `profile` stands for, for subcommand `sub`.
pub fn expand(
    profile: &Profile,
    cli: &Command,
    sub: Option<&str>,
    user_gave_positionals: bool,
) -> Expansion {
    let mut top = Vec::new();
    for (key, s) in &profile.top {
        if let Some(arg) = global_arg(cli, key).filter(|a| set_by_environment(a).is_none()) {
            top.extend(arguments(arg, &s.value));
        }
    }
    let (mut options, mut positionals) = (Vec::new(), Vec::new());
    let section = sub.and_then(|n| Some((cli.find_subcommand(n)?, profile.sections.get(n)?)));
    if let Some((cmd, settings)) = section {
        for (key, s) in settings {
            let Some(arg) = section_arg(cmd, key) else {
                continue;
            };
            if arg.is_positional() {
                if !user_gave_positionals {
                    positionals.extend(arguments(arg, &s.value));
                }
            } else if set_by_environment(arg).is_none() {
                options.extend(arguments(arg, &s.value));
            }
        }
    }
    Expansion {
        top,
        options,
        positionals,
    }
}

/// The command line `args` (without the program name) with `profile`'s arguments in place.
/// Positionals from the profile follow a `--`, so that one starting with `-` (a command's
/// option, for `stdin-from-command`) stays a positional.
pub fn apply(profile: &Profile, cli: &Command, args: Vec<OsString>) -> Vec<OsString> {
    let located = locate_subcommand(cli, &args);
    let sub = located.and_then(|(at, _)| {
        let c = cli.find_subcommand(args[at].to_string_lossy().as_ref())?;
        Some(c.get_name().to_string())
    });
    let more = located.is_some_and(|(_, more)| more);
    let e = expand(profile, cli, sub.as_deref(), more);
    let mut out = e.top;
    let Some((at, _)) = located else {
        out.extend(args);
        return out;
    };
    let has_separator = args[at + 1..].iter().any(|a| a == "--");
    out.extend(args[..=at].iter().cloned());
    out.extend(e.options);
    out.extend(args[at + 1..].iter().cloned());
    if !e.positionals.is_empty() && !has_separator {
        out.push("--".into());
    }
    out.extend(e.positionals);
    out
}

/// Where profile `name` is, looked for beside `file` first (for `inherit` and `[copy]`
/// destinations).
pub fn resolve(name: &str, file: Option<&Path>) -> anyhow::Result<PathBuf> {
    locate(name, file)
}

/// Where the subcommand sits in `args` (without the program name), skipping the values of the
/// options before it; and whether any positional follows it.
pub fn locate_subcommand(cli: &Command, args: &[OsString]) -> Option<(usize, bool)> {
    let at = position_of_first_positional(cli, args, 0)?;
    let name = args[at].to_string_lossy();
    let sub = cli.find_subcommand(name.as_ref())?;
    let more = position_of_first_positional(sub, args, at + 1).is_some();
    Some((at, more))
}

/// The index of the first argument from `from` on that is neither an option nor an option's
/// value, by the options `cmd` (and its global options) define.
fn position_of_first_positional(cmd: &Command, args: &[OsString], from: usize) -> Option<usize> {
    let takes_value = |a: &Arg| matches!(a.get_action(), ArgAction::Set | ArgAction::Append);
    let mut i = from;
    while i < args.len() {
        let s = args[i].to_string_lossy();
        if s == "--" {
            return (i + 1 < args.len()).then_some(i + 1);
        }
        if let Some(long) = s.strip_prefix("--") {
            let skip = !long.contains('=')
                && cmd
                    .get_arguments()
                    .any(|a| a.get_long() == Some(long) && takes_value(a));
            i += 1 + usize::from(skip);
        } else if s.len() > 1 && s.starts_with('-') {
            // A cluster of short options: the last may take the next argument as its value.
            let last = s.chars().last().unwrap_or('-');
            let skip = s.len() == 2
                && cmd
                    .get_arguments()
                    .any(|a| a.get_short() == Some(last) && takes_value(a));
            i += 1 + usize::from(skip);
        } else {
            return Some(i);
        }
    }
    None
}

/// The profile name given as `-P NAME`, `-PNAME`, `--profile NAME` or `--profile=NAME`, else
/// `FLOE_PROFILE`.
pub fn requested(args: &[OsString]) -> Option<String> {
    let mut it = args.iter().map(|a| a.to_string_lossy());
    while let Some(a) = it.next() {
        if a == "--" {
            break;
        }
        if a == "-P" || a == "--profile" {
            return it.next().map(|v| v.into_owned());
        }
        if let Some(v) = a.strip_prefix("--profile=") {
            return Some(v.to_string());
        }
        if let Some(v) = a
            .strip_prefix("-P")
            .filter(|v| !v.is_empty() && !a.starts_with("--"))
        {
            return Some(v.to_string());
        }
    }
    std::env::var("FLOE_PROFILE").ok().filter(|v| !v.is_empty())
}

/// Parses a wait such as `30s`, `5m`, `1h30m` or `0`.
pub fn parse_wait(s: &str) -> Result<std::time::Duration, String> {
    let bad = || format!("invalid duration {s:?}: expected for example 30s, 5m, 1h30m or 7d");
    if s == "0" {
        return Ok(std::time::Duration::ZERO);
    }
    let mut total = 0u64;
    let mut num = String::new();
    for c in s.chars() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let n: u64 = num.parse().map_err(|_| bad())?;
        num.clear();
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86400,
            _ => return Err(bad()),
        };
        total = total
            .checked_add(n.checked_mul(unit).ok_or_else(bad)?)
            .ok_or_else(bad)?;
    }
    if !num.is_empty() || s.is_empty() {
        return Err(bad());
    }
    Ok(std::time::Duration::from_secs(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cli() -> Command {
        Command::new("t")
            .arg(
                Arg::new("repo")
                    .long("repo")
                    .global(true)
                    .env("T_REPO_UNSET"),
            )
            .arg(Arg::new("profile").short('P').long("profile").global(true))
            .subcommand(
                Command::new("backup")
                    .arg(Arg::new("tag").long("tag").action(ArgAction::Append))
                    .arg(
                        Arg::new("one")
                            .long("one-file-system")
                            .action(ArgAction::SetTrue),
                    )
                    .arg(
                        Arg::new("n")
                            .long("limit")
                            .value_parser(clap::value_parser!(u32)),
                    )
                    .arg(Arg::new("paths").num_args(0..).action(ArgAction::Append)),
            )
    }

    fn table(s: &str) -> toml::Table {
        s.parse().unwrap()
    }

    #[test]
    fn waits() {
        assert_eq!(parse_wait("0"), Ok(std::time::Duration::ZERO));
        assert_eq!(parse_wait("30s"), Ok(std::time::Duration::from_secs(30)));
        assert_eq!(
            parse_wait("1h30m"),
            Ok(std::time::Duration::from_secs(5400))
        );
        assert!(parse_wait("5").is_err());
        assert!(parse_wait("5x").is_err());
        assert!(parse_wait("").is_err());
    }

    #[test]
    fn keys_are_checked_against_the_options() {
        let cli = cli();
        assert!(check(&table("repository = '/r'\n[backup]\ntags = ['a']\n"), &cli).is_ok());
        let e = check(&table("[backup]\nexlude = ['a']\n"), &cli).unwrap_err();
        assert!(
            e.to_string().contains("unknown key \"exlude\" in [backup]"),
            "{e}"
        );
        let e = check(&table("[backup]\nlimit = 'many'\n"), &cli).unwrap_err();
        assert!(
            e.to_string()
                .contains("[backup] limit: invalid value 'many'"),
            "{e}"
        );
        let e = check(&table("[backupp]\n"), &cli).unwrap_err();
        assert!(e.to_string().contains("unknown section [backupp]"), "{e}");
        let e = check(&table("[backup]\none-file-system = 'yes'\n"), &cli).unwrap_err();
        assert!(e.to_string().contains("true or false"), "{e}");
        assert!(check(&table("profile = 'x'\n"), &cli).is_err());
    }

    #[test]
    fn a_help_section_and_both_names_of_the_repository_are_refused() {
        let mut cli = cli();
        cli.build();
        assert!(cli.find_subcommand("help").is_some());
        let e = check(&table("[help]\n"), &cli).unwrap_err();
        assert!(e.to_string().contains("unknown section [help]"), "{e}");
        let e = check(&table("repository = '/a'\nrepo = '/b'\n"), &cli).unwrap_err();
        assert!(e.to_string().contains("set one of them"), "{e}");
        for one in ["repository = '/a'\n", "repo = '/a'\n"] {
            assert!(check(&table(one), &cli).is_ok(), "{one}");
        }
    }

    /// Found with the `profile` fuzz target, run on a seed: `help` in a section named the
    /// `--help` that clap gives every command, whose check then built a command line with two
    /// `--help` options (a panic where debug assertions are on, else a profile that passed and
    /// put `--help=true` on the command line).
    #[test]
    fn a_help_key_in_a_section_is_an_unknown_key_not_a_second_help_option() {
        let mut cli = cli();
        cli.build();
        for text in ["[backup]\nhelp = true\n", "[backup]\nhelp = 'x'\n"] {
            let e = parse(text, &cli).unwrap_err();
            assert!(
                e.to_string().contains("unknown key \"help\" in [backup]"),
                "{e}"
            );
        }
        assert!(parse("[backup]\ntags = ['a']\n", &cli).is_ok());
    }

    #[test]
    fn a_profile_becomes_arguments_before_the_command_lines() {
        let cli = cli();
        let mut p = Profile::default();
        p.merge(
            Path::new("a.toml"),
            table("repository = '/r'\n[backup]\ntags = ['a', 'b']\none-file-system = true\nsources = ['/home']\n"),
        );
        p.merge(Path::new("b.toml"), table("[backup]\ntags = ['c']\n"));
        let e = expand(&p, &cli, Some("backup"), false);
        let s = |v: Vec<OsString>| {
            v.into_iter()
                .map(|o| o.into_string().unwrap())
                .collect::<Vec<_>>()
        };
        assert_eq!(s(e.top), ["--repo=/r"]);
        let (opts, pos) = (e.options, e.positionals);
        assert_eq!(
            s(opts),
            ["--one-file-system", "--tag=a", "--tag=b", "--tag=c"]
        );
        assert_eq!(s(pos), ["/home"]);
        assert_eq!(p.sections["backup"]["tags"].files.len(), 2);
        assert!(expand(&p, &cli, Some("backup"), true)
            .positionals
            .is_empty());
    }

    #[test]
    fn the_subcommand_is_found_past_option_values() {
        let cli = cli();
        let args = |v: &[&str]| v.iter().map(OsString::from).collect::<Vec<_>>();
        assert_eq!(
            locate_subcommand(&cli, &args(&["--repo", "backup", "backup"])),
            Some((2, false))
        );
        assert_eq!(
            locate_subcommand(&cli, &args(&["-P", "x", "backup", "--tag", "t", "/a"])),
            Some((2, true))
        );
        assert_eq!(
            locate_subcommand(&cli, &args(&["--repo=/r", "nothing"])),
            None
        );
        assert_eq!(requested(&args(&["-Phome", "backup"])), Some("home".into()));
        assert_eq!(
            requested(&args(&["--profile=w", "backup"])),
            Some("w".into())
        );
    }
}
