//! `floe -P NAME job`: what a nightly cron line runs. Backup, then forget (which prunes when the
//! profile's `[forget]` says `prune = true`), then check, then the drill and the copies when the
//! profile has them. Each step is floe itself run again with the same options, so that each has
//! its own exit code, metrics and output; the job sends the one notification and runs the hooks.

use std::ffi::OsString;
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{bail, Context};

use crate::profile::{self, Profile};
use crate::unattended::JOB_STEP_SUMMARY;
use crate::{exit, output, GlobalArgs};

#[derive(Debug, clap::Args)]
pub struct Args {}

/// How one step went.
#[derive(serde::Serialize)]
struct Step {
    command: String,
    /// The destination profile, for a copy.
    #[serde(skip_serializing_if = "Option::is_none")]
    destination: Option<String>,
    /// `None`: not run, because an earlier step failed.
    exit_code: Option<u8>,
    duration_seconds: f64,
    summary: serde_json::Value,
}

pub fn run(g: &GlobalArgs, _: Args) -> anyhow::Result<u8> {
    let Some(p) = profile::current() else {
        bail!("job runs a profile's steps: give -P NAME (or set FLOE_PROFILE)");
    };
    let mut steps = Vec::new();
    let mut stopped = false;
    for (command, destination) in plan(p) {
        if stopped {
            steps.push(skipped(command, destination));
            continue;
        }
        if !g.json {
            let to = destination
                .as_deref()
                .map(|d| format!(" to {d}"))
                .unwrap_or_default();
            output::note(format!("== {command}{to} =="))?;
        }
        let step = run_step(g, &command, destination)?;
        // A backup that failed outright leaves nothing for the later steps to act on.
        stopped = command == "backup" && !ok(step.exit_code);
        steps.push(step);
    }
    let code = worst(&steps);
    let summary = serde_json::json!({ "profile": p.name, "exit_code": code, "steps": steps });
    output::summary(&summary, g.json)?;
    if !g.json {
        print(&p.name, &steps)?;
    }
    Ok(code)
}

/// The steps of the profile's job, in order, with the destination of each copy.
fn plan(p: &Profile) -> Vec<(String, Option<String>)> {
    let mut steps = vec![("backup".to_string(), None)];
    if p.has_section("forget") {
        steps.push(("forget".into(), None));
    }
    steps.push(("check".into(), None));
    if p.has_section("drill") {
        steps.push(("drill".into(), None));
    }
    for d in p.strings("copy", "destinations") {
        steps.push(("copy".into(), Some(d)));
    }
    steps
}

fn ok(code: Option<u8>) -> bool {
    matches!(code, Some(exit::OK | exit::PARTIAL))
}

/// The first failure's code; else 3 when a step left something out; else 0.
fn worst(steps: &[Step]) -> u8 {
    let codes = steps.iter().filter_map(|s| s.exit_code);
    let failed = codes
        .clone()
        .find(|c| !matches!(*c, exit::OK | exit::PARTIAL));
    failed.unwrap_or(if codes.clone().any(|c| c == exit::PARTIAL) {
        exit::PARTIAL
    } else {
        exit::OK
    })
}

fn skipped(command: String, destination: Option<String>) -> Step {
    Step {
        command,
        destination,
        exit_code: None,
        duration_seconds: 0.0,
        summary: serde_json::Value::Null,
    }
}

/// Runs one step: floe with the job's command line, the step in place of `job`; a copy runs
/// under the destination's profile, with this repository as its source.
fn run_step(g: &GlobalArgs, command: &str, destination: Option<String>) -> anyhow::Result<Step> {
    let summary_file = tempfile::Builder::new()
        .prefix("floe-step-")
        .tempfile()
        .context("creating a file for the step's summary")?;
    let exe = std::env::current_exe().context("finding floe's own executable")?;
    let mut cmd = Command::new(exe);
    match &destination {
        None => {
            cmd.args(step_args(command));
        }
        Some(d) => copy_to(&mut cmd, g, d),
    }
    cmd.env(JOB_STEP_SUMMARY, summary_file.path());
    if g.json {
        // The job prints one document; each step's is in its summary file.
        cmd.stdout(Stdio::null());
    }
    let clock = Instant::now();
    let status = cmd
        .status()
        .with_context(|| format!("starting the {command} step"))?;
    let summary = std::fs::read(summary_file.path())
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or(serde_json::Value::Null);
    Ok(Step {
        command: command.to_string(),
        destination,
        // Killed by a signal: an error like any other.
        exit_code: Some(status.code().map_or(exit::ERROR, |c| c as u8)),
        duration_seconds: clock.elapsed().as_secs_f64(),
        summary,
    })
}

/// The command line as typed, `job` replaced by `command`.
fn step_args(command: &str) -> Vec<OsString> {
    let mut cli = <crate::Cli as clap::CommandFactory>::command();
    cli.build();
    let mut args = profile::typed_args().to_vec();
    if let Some((at, _)) = profile::locate_subcommand(&cli, &args) {
        args[at] = command.into();
    }
    args
}

/// `floe -P DEST copy`, with this run's repository and password as the source.
fn copy_to(cmd: &mut Command, g: &GlobalArgs, destination: &str) {
    cmd.args(["-P", destination, "copy"]);
    if g.quiet {
        cmd.arg("-q");
    }
    if g.json {
        cmd.arg("--json");
    }
    let vars = [
        ("FLOE_FROM_REPOSITORY", g.repo.clone().map(OsString::from)),
        (
            "FLOE_FROM_PASSWORD_FILE",
            g.password_file.clone().map(OsString::from),
        ),
        (
            "FLOE_FROM_PASSWORD_COMMAND",
            g.password_command.clone().map(OsString::from),
        ),
        ("FLOE_FROM_PASSWORD", std::env::var_os("FLOE_PASSWORD")),
        (
            "FLOE_FROM_S3_REGION",
            g.s3.s3_region.clone().map(OsString::from),
        ),
        (
            "FLOE_FROM_S3_PROFILE",
            g.s3.s3_profile.clone().map(OsString::from),
        ),
    ];
    for (k, v) in vars {
        cmd.env_remove(k);
        if let Some(v) = v {
            cmd.env(k, v);
        }
    }
    // The destination has its own repository and password, from its profile.
    for k in [
        "FLOE_PROFILE",
        "FLOE_REPOSITORY",
        "FLOE_PASSWORD",
        "FLOE_PASSWORD_FILE",
        "FLOE_PASSWORD_COMMAND",
    ] {
        cmd.env_remove(k);
    }
}

/// One line per step, then the job's result.
fn print(name: &str, steps: &[Step]) -> anyhow::Result<()> {
    output::note(format!("job {name}:"))?;
    for s in steps {
        let what = match &s.destination {
            Some(d) => format!("{} to {d}", s.command),
            None => s.command.clone(),
        };
        let line = match s.exit_code {
            None => format!("  {what:<16} skipped (an earlier step failed)"),
            Some(c) => format!(
                "  {what:<16} {:<8} {:>7.1}s  {}",
                match c {
                    exit::OK => "ok".to_string(),
                    exit::PARTIAL => "partial".to_string(),
                    c => format!("exit {c}"),
                },
                s.duration_seconds,
                brief(&s.command, &s.summary)
            ),
        };
        match s.exit_code {
            Some(exit::OK) => output::note(line)?,
            _ => output::line(line)?,
        }
    }
    Ok(())
}

/// A few words on what a step did, from its summary.
fn brief(command: &str, v: &serde_json::Value) -> String {
    let n = |path: &[&str]| {
        path.iter()
            .try_fold(v, |v, k| v.get(k))
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(0)
    };
    let len = |k: &str| v.get(k).and_then(|a| a.as_array()).map_or(0, Vec::len);
    match command {
        "backup" => match v.get("snapshot_id").and_then(|s| s.as_str()) {
            Some(id) => format!(
                "snapshot {}: {} new, {} changed files, {} added",
                &id[..id.len().min(8)],
                n(&["summary", "files_new"]),
                n(&["summary", "files_changed"]),
                output::bytes(n(&["summary", "bytes_added"]))
            ),
            None => String::new(),
        },
        "forget" => format!("{} snapshot(s) removed", len("removed")),
        "check" if !v.is_null() => format!("{} problem(s)", len("problems")),
        "drill" if !v.is_null() => format!(
            "{} file(s) verified, {} damaged",
            n(&["files_verified"]),
            len("files_damaged")
        ),
        "copy" if !v.is_null() => format!("{} snapshot(s) copied", len("copied")),
        _ => String::new(),
    }
}
