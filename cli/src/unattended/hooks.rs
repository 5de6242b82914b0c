//! The profile's `[hooks]`: shell commands run before a command, after it (on success or on
//! failure), and in every case at the end. They learn what happened from their environment,
//! which never holds a password or a secret key.

use std::io::Write;
use std::process::Command;

use anyhow::bail;

use super::Outcome;
use crate::profile::Profile;

/// Variables a hook never inherits: floe's passwords and the AWS secrets.
const SECRETS: [&str; 5] = [
    "FLOE_PASSWORD",
    "FLOE_FROM_PASSWORD",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
];

fn shell(cmd: &str, vars: &[(&str, String)]) -> Command {
    let mut c = Command::new("sh");
    // floe's stdout is its report (JSON with --json): a hook's output goes with the messages.
    c.arg("-c").arg(cmd).stdout(std::io::stderr());
    for s in SECRETS {
        c.env_remove(s);
    }
    c.envs(vars.iter().map(|(k, v)| (k, v)));
    c
}

/// Runs the `before` hook; a failure stops the command.
pub fn before(cmd: &str, command: &str) -> anyhow::Result<()> {
    let status = shell(cmd, &[("FLOE_COMMAND", command.to_string())])
        .status()
        .map_err(|e| anyhow::anyhow!("before hook {cmd:?} could not start: {e}"))?;
    if !status.success() {
        bail!("before hook {cmd:?} failed ({status}): {command} did not run");
    }
    Ok(())
}

/// Runs `after` (success) or `failure`, then `finally`, with the outcome in the environment.
/// A hook that fails is a warning.
pub fn after(
    profile: &Profile,
    command: &str,
    outcome: &Outcome,
    summary: Option<&serde_json::Value>,
) {
    let which = match outcome.exit_code {
        crate::exit::OK | crate::exit::PARTIAL => "after",
        _ => "failure",
    };
    let hooks: Vec<(&str, String)> = [which, "finally"]
        .into_iter()
        .filter_map(|h| Some((h, profile.hook(h)?)))
        .collect();
    if hooks.is_empty() {
        return;
    }
    let summary_file = summary.and_then(|s| write_summary(s).ok());
    let mut vars = vec![
        ("FLOE_COMMAND", command.to_string()),
        ("FLOE_EXIT_CODE", outcome.exit_code.to_string()),
    ];
    if let Some(id) = summary.and_then(snapshot_id) {
        vars.push(("FLOE_SNAPSHOT_ID", id));
    }
    if let Some(f) = &summary_file {
        vars.push(("FLOE_SUMMARY_FILE", f.path().display().to_string()));
    }
    if let Some(e) = &outcome.error {
        vars.push(("FLOE_ERROR", e.clone()));
    }
    for (name, cmd) in hooks {
        match shell(&cmd, &vars).status() {
            Ok(s) if s.success() => {}
            Ok(s) => eprintln!("warning: {name} hook {cmd:?} failed ({s})"),
            Err(e) => eprintln!("warning: {name} hook {cmd:?} could not start: {e}"),
        }
    }
}

/// The snapshot a backup (or a job's backup step) saved.
fn snapshot_id(summary: &serde_json::Value) -> Option<String> {
    let direct = summary.get("snapshot_id");
    let in_job = || {
        summary.get("steps")?.as_array()?.iter().find_map(|s| {
            (s.get("command")?.as_str()? == "backup")
                .then(|| s.get("summary")?.get("snapshot_id"))?
        })
    };
    Some(direct.or_else(in_job)?.as_str()?.to_string())
}

fn write_summary(summary: &serde_json::Value) -> std::io::Result<tempfile::NamedTempFile> {
    let mut f = tempfile::Builder::new()
        .prefix("floe-summary-")
        .suffix(".json")
        .tempfile()?;
    f.write_all(summary.to_string().as_bytes())?;
    f.flush()?;
    Ok(f)
}
