//! `floe config`: the settings in effect and where each comes from (the command line, a
//! variable, a profile file), so that a profile can be checked before cron runs it.

use std::ffi::OsString;

use clap::{Arg, CommandFactory};

use crate::profile::{self, Profile};
use crate::{output, GlobalArgs};

#[derive(Debug, clap::Args)]
pub struct Args {}

/// One setting in effect.
#[derive(serde::Serialize)]
struct Row {
    /// `None` at the top; the command's name in a section.
    #[serde(skip_serializing_if = "Option::is_none")]
    section: Option<String>,
    key: String,
    value: toml::Value,
    /// `command line`, `environment FLOE_X`, or the profile files.
    source: String,
}

pub fn run(g: &GlobalArgs, _: Args) -> anyhow::Result<u8> {
    let mut cli = crate::Cli::command();
    cli.build();
    let current = profile::current();
    let rows = rows(&cli, current);
    if g.json {
        output::json(&serde_json::json!({
            "profile": current.map(|p| &p.name),
            "files": current.map(|p| &p.files),
            "settings": rows,
        }))?;
        return Ok(crate::exit::OK);
    }
    match current {
        Some(p) => output::line(format!("# profile {}: {}", p.name, describe_files(p)))?,
        None => output::line("# no profile (-P NAME or FLOE_PROFILE)")?,
    }
    let mut section = None;
    for r in &rows {
        if r.section != section {
            section = r.section.clone();
            output::line(format!("\n[{}]", section.as_deref().unwrap_or_default()))?;
        }
        output::line(format!("{} = {}    # {}", r.key, r.value, r.source))?;
    }
    Ok(crate::exit::OK)
}

fn describe_files(p: &Profile) -> String {
    let mut files = p.files.iter().map(|f| f.display().to_string());
    let first = files.next().unwrap_or_default();
    let rest: Vec<String> = files.collect();
    if rest.is_empty() {
        first
    } else {
        format!("{first} (inherits {})", rest.join(", then "))
    }
}

/// Every setting in effect: the options every command takes, then the profile's sections.
fn rows(cli: &clap::Command, current: Option<&Profile>) -> Vec<Row> {
    let mut rows = Vec::new();
    for arg in cli.get_arguments().filter(|a| a.is_global_set()) {
        let Some(long) = arg.get_long() else { continue };
        if matches!(long, "profile" | "help" | "version") {
            continue;
        }
        let from_profile = current.and_then(|p| p.top.get(long));
        if let Some(row) = top_row(arg, long, from_profile) {
            rows.push(row);
        }
    }
    if let Some(p) = current {
        if p.password().is_some() && !rows.iter().any(|r| r.key == "password") {
            rows.push(Row {
                section: None,
                key: "password".into(),
                value: toml::Value::String("(hidden)".into()),
                source: files(&p.top["password"]),
            });
        }
        for (name, settings) in &p.sections {
            for (key, s) in settings {
                let arg = cli
                    .find_subcommand(name)
                    .and_then(|c| profile::section_arg(c, key));
                let source = match arg.and_then(profile::set_by_environment) {
                    Some(var) => format!("{}; environment {var} wins", files(s)),
                    None => files(s),
                };
                rows.push(Row {
                    section: Some(name.clone()),
                    key: key.clone(),
                    value: s.value.clone(),
                    source,
                });
            }
        }
    }
    rows
}

fn files(s: &profile::Setting) -> String {
    let names: Vec<String> = s.files.iter().map(|f| f.display().to_string()).collect();
    names.join(" + ")
}

/// A top-level setting: from the command line as typed, else a variable, else the profile.
fn top_row(arg: &Arg, long: &str, from_profile: Option<&profile::Setting>) -> Option<Row> {
    let row = |value, source| Row {
        section: None,
        key: long.to_string(),
        value,
        source,
    };
    let env = profile::set_by_environment(arg);
    if let Some(v) = typed_value(arg, long) {
        // A list given on the command line adds to the profile's.
        let list = matches!(arg.get_action(), clap::ArgAction::Append);
        return Some(match (from_profile, v) {
            (Some(s), toml::Value::Array(more)) if list && env.is_none() => {
                let mut all = s.value.as_array().cloned().unwrap_or_default();
                all.extend(more);
                row(
                    toml::Value::Array(all),
                    format!("{} + command line", files(s)),
                )
            }
            (_, v) => row(v, "command line".into()),
        });
    }
    if let Some(var) = env {
        let v = std::env::var(&var).unwrap_or_default();
        return Some(row(toml::Value::String(v), format!("environment {var}")));
    }
    from_profile.map(|s| row(s.value.clone(), files(s)))
}

/// The value of `arg` on the command line as typed: `--long V`, `--long=V`, `-s V`, `-sV`, or
/// `true` (a count for `-vv`) for a flag.
fn typed_value(arg: &Arg, long: &str) -> Option<toml::Value> {
    let flag = !matches!(
        arg.get_action(),
        clap::ArgAction::Set | clap::ArgAction::Append
    );
    let short = arg.get_short().map(|c| format!("-{c}"));
    let args: Vec<String> = profile::typed_args()
        .iter()
        .map(|a: &OsString| a.to_string_lossy().into_owned())
        .take_while(|a| a != "--")
        .collect();
    let mut values = Vec::new();
    let mut count = 0;
    for (i, a) in args.iter().enumerate() {
        let next = || args.get(i + 1).cloned();
        let long_flag = format!("--{long}");
        if *a == long_flag || short.as_deref() == Some(a.as_str()) {
            count += 1;
            if !flag {
                values.extend(next());
            }
        } else if let Some(v) = a.strip_prefix(&format!("--{long}=")) {
            values.push(v.to_string());
        } else if let Some(v) = short
            .as_deref()
            .and_then(|s| a.strip_prefix(s))
            .filter(|v| !v.is_empty() && !a.starts_with("--"))
        {
            if flag {
                count += 1 + v.len();
            } else {
                values.push(v.to_string());
            }
        }
    }
    match (flag, values.len()) {
        (true, _) if count == 0 => None,
        (true, _) if matches!(arg.get_action(), clap::ArgAction::Count) => {
            Some(toml::Value::Integer(count as i64))
        }
        (true, _) => Some(toml::Value::Boolean(true)),
        (false, 0) => None,
        (false, 1) if !matches!(arg.get_action(), clap::ArgAction::Append) => {
            Some(toml::Value::String(values.remove(0)))
        }
        (false, _) => Some(toml::Value::Array(
            values.into_iter().map(toml::Value::String).collect(),
        )),
    }
}
