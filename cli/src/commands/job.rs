//! `floe -P NAME job`: what a nightly cron line runs. Backup, then forget (which prunes when the
//! profile's `[forget]` says `prune = true`), then check, then the drill and the copies when the
//! profile has them. Each step is floe itself run again with the same options, so that each has
//! its own exit code, metrics and output; the job sends the one notification and runs the hooks.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
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
    let planned = plan(p)?;
    // A typo or a conflict in any step's options stops the job before anything runs.
    if let Err(e) = validate(p, &planned) {
        let message = format!("{e:#}");
        eprintln!("error: {message}");
        output::set_failure(message);
        return Ok(exit::USAGE);
    }
    let mut steps = Vec::new();
    let mut stopped = false;
    for (command, destination) in planned {
        let name = destination.as_ref().map(|d| d.0.clone());
        if stopped {
            steps.push(skipped(command, name));
            continue;
        }
        if !g.json {
            let to = name.as_deref().map(|d| format!(" to {d}"));
            output::note(format!("== {command}{} ==", to.unwrap_or_default()))?;
        }
        let step = run_step(g, p, &command, destination)?;
        // A backup that failed outright leaves nothing for the later steps to act on.
        stopped = command == "backup" && !ok(step.exit_code);
        steps.push(step);
    }
    let code = worst(&steps);
    if !ok(Some(code)) {
        output::set_failure(failures(&steps));
    }
    let summary = serde_json::json!({ "profile": p.name, "exit_code": code, "steps": steps });
    output::summary(&summary, g.json)?;
    if !g.json {
        print(&p.name, &steps)?;
    }
    Ok(code)
}

/// A copy's destination: its name in `[copy]` and its profile's file.
type Destination = (String, PathBuf);

/// The steps of the profile's job, in order, with the destination of each copy (looked for
/// beside the profile first, as `inherit` is).
fn plan(p: &Profile) -> anyhow::Result<Vec<(String, Option<Destination>)>> {
    let mut steps = vec![("backup".to_string(), None)];
    if p.has_section("forget") {
        steps.push(("forget".into(), None));
    }
    steps.push(("check".into(), None));
    if p.has_section("drill") {
        steps.push(("drill".into(), None));
    }
    for d in p.strings("copy", "destinations") {
        let file = profile::resolve(&d, p.files.first().map(PathBuf::as_path))
            .with_context(|| format!("[copy] destination {d:?}"))?;
        steps.push(("copy".into(), Some((d, file))));
    }
    Ok(steps)
}

/// Every step's command line parses, and every destination's profile reads.
fn validate(p: &Profile, steps: &[(String, Option<Destination>)]) -> anyhow::Result<()> {
    let mut cli = <crate::Cli as clap::CommandFactory>::command();
    cli.build();
    for (command, destination) in steps {
        if let Some((name, file)) = destination {
            profile::load(&file.to_string_lossy(), &cli)
                .with_context(|| format!("[copy] destination {name:?}"))?;
            continue;
        }
        let args = profile::apply(p, &cli, step_args(p, command));
        let line = std::iter::once(OsString::from("floe")).chain(args);
        if let Err(e) = cli.clone().try_get_matches_from(line) {
            let text = e.to_string();
            let first = text.lines().next().unwrap_or_default();
            let file = p.files.first().map(|f| f.display().to_string());
            bail!(
                "profile {}: the {command} step: {}",
                file.unwrap_or_default(),
                first.trim_start_matches("error: ")
            );
        }
    }
    Ok(())
}

fn ok(code: Option<u8>) -> bool {
    matches!(code, Some(exit::OK | exit::PARTIAL))
}

/// The first failure's code; else 3 when a step left something out; else 0.
fn worst(steps: &[Step]) -> u8 {
    let mut codes = steps.iter().filter_map(|s| s.exit_code);
    match codes.clone().find(|c| !ok(Some(*c))) {
        Some(failed) => failed,
        None if codes.any(|c| c == exit::PARTIAL) => exit::PARTIAL,
        None => exit::OK,
    }
}

/// The failed steps, in words (for hooks' `FLOE_ERROR` and the notification).
fn failures(steps: &[Step]) -> String {
    let failed: Vec<String> = steps
        .iter()
        .filter_map(|s| {
            let code = s.exit_code.filter(|c| !ok(Some(*c)))?;
            Some(match s.summary.get("error").and_then(|e| e.as_str()) {
                Some(why) => format!("{} failed (exit {code}): {why}", s.command),
                None => format!("{} failed (exit {code})", s.command),
            })
        })
        .collect();
    failed.join("; ")
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
fn run_step(
    g: &GlobalArgs,
    p: &Profile,
    command: &str,
    destination: Option<Destination>,
) -> anyhow::Result<Step> {
    let summary_file = tempfile::Builder::new()
        .prefix("floe-step-")
        .tempfile()
        .context("creating a file for the step's summary")?;
    let exe = std::env::current_exe().context("finding floe's own executable")?;
    let mut cmd = Command::new(exe);
    match &destination {
        None => {
            cmd.args(step_args(p, command));
        }
        Some((_, file)) => copy_to(&mut cmd, g, file),
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
        destination: destination.map(|d| d.0),
        // Killed by a signal: an error like any other.
        exit_code: Some(status.code().map_or(exit::ERROR, |c| c as u8)),
        duration_seconds: clock.elapsed().as_secs_f64(),
        summary,
    })
}

/// The command line as typed, `job` replaced by `command`; forget and drill limited to the
/// snapshots of this profile's backups.
fn step_args(p: &Profile, command: &str) -> Vec<OsString> {
    let mut cli = <crate::Cli as clap::CommandFactory>::command();
    cli.build();
    let mut args = profile::typed_args().to_vec();
    if let Some((at, _)) = profile::locate_subcommand(&cli, &args) {
        args[at] = command.into();
        if matches!(command, "forget" | "drill") {
            args.splice(at + 1..at + 1, scope(p, command));
        }
    }
    args
}

/// `--host`, `--tag` and `--path` options that select this profile's backups: its host (this
/// machine's unless `[backup] host`), all its tags, its absolute sources. None when the step's
/// own section filters already.
fn scope(p: &Profile, command: &str) -> Vec<OsString> {
    let has = |section: &str, keys: &[&str]| {
        let s = p.sections.get(section);
        keys.iter().any(|k| s.is_some_and(|s| s.contains_key(*k)))
    };
    if has(command, &["host", "tag", "tags", "path", "paths"]) {
        return Vec::new();
    }
    let backup = |k: &str| p.strings("backup", k);
    let host = backup("host").into_iter().next();
    let host = host.unwrap_or_else(|| floe_engine::host_and_user().0);
    let mut out = vec![OsString::from(format!("--host={host}"))];
    let tags: Vec<String> = backup("tags").into_iter().chain(backup("tag")).collect();
    if !tags.is_empty() {
        out.push(format!("--tag={}", tags.join(",")).into());
    }
    // A stream's snapshot is named by its file name, not by these.
    if !has("backup", &["stdin", "stdin-from-command"]) {
        let sources = backup("sources").into_iter().chain(backup("paths"));
        let absolute = sources.filter(|s| s.starts_with('/'));
        out.extend(absolute.map(|s| OsString::from(format!("--path={s}"))));
    }
    out
}

/// `floe -P DEST copy`, with this run's repository and password as the source, and this run's
/// metrics and compression options.
fn copy_to(cmd: &mut Command, g: &GlobalArgs, destination: &Path) {
    cmd.arg("-P").arg(destination).arg("copy");
    if let Some(f) = &g.metrics_file {
        cmd.arg("--metrics-file").arg(f);
    }
    if let Some(u) = &g.metrics_push {
        cmd.arg("--metrics-push").arg(u);
    }
    if g.quiet {
        cmd.arg("-q");
    }
    if g.json {
        cmd.arg("--json");
    }
    // As typed or from this profile; FLOE_COMPRESSION reaches the copy by itself.
    if let Some(c) = g.compression.arg().filter(|_| !g.compression_from_env) {
        cmd.arg(c);
    }
    let os = |v: &Option<String>| v.clone().map(OsString::from);
    let vars = [
        ("FLOE_FROM_REPOSITORY", os(&g.repo)),
        (
            "FLOE_FROM_PASSWORD_FILE",
            g.password_file.clone().map(OsString::from),
        ),
        ("FLOE_FROM_PASSWORD_COMMAND", os(&g.password_command)),
        ("FLOE_FROM_PASSWORD", std::env::var_os("FLOE_PASSWORD")),
        ("FLOE_FROM_S3_REGION", os(&g.s3.s3_region)),
        ("FLOE_FROM_S3_PROFILE", os(&g.s3.s3_profile)),
    ];
    for (k, v) in vars {
        cmd.env_remove(k);
        if let Some(v) = v {
            cmd.env(k, v);
        }
    }
    // The destination has its own repository and password, from its profile.
    let own = [
        "FLOE_PROFILE",
        "FLOE_REPOSITORY",
        "FLOE_REPOSITORY_FILE",
        "FLOE_PASSWORD",
        "FLOE_PASSWORD_FILE",
    ];
    for k in own.into_iter().chain(["FLOE_PASSWORD_COMMAND"]) {
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
    if let Some(e) = v.get("error").and_then(|e| e.as_str()) {
        return e.to_string();
    }
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
        "check" if !v.is_null() => {
            let problems = v.get("problems").and_then(|a| a.as_array());
            let is_error = |p: &&serde_json::Value| p["severity"] == "error";
            let errors = problems.map_or(0, |a| a.iter().filter(is_error).count());
            format!("{errors} error(s)")
        }
        "drill" if !v.is_null() => format!(
            "{} file(s) verified, {} damaged",
            n(&["files_verified"]),
            len("files_damaged")
        ),
        "copy" if !v.is_null() => format!("{} snapshot(s) copied", len("copied")),
        _ => String::new(),
    }
}
