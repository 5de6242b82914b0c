//! The profile's `[hooks]`: shell commands run before a command, after it (on success or on
//! failure), and in every case at the end. They learn what happened from their environment,
//! which never holds a password or a secret key.

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::bail;
use nix::errno::Errno;
use nix::sys::signal::{killpg, Signal};
use nix::sys::wait::{waitid, Id, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

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

/// How long a hook is given to end once it was told to stop, before it is killed.
const GRACE: Duration = Duration::from_secs(5);

/// How a hook ended.
enum Ended {
    Exited(ExitStatus),
    /// It ran past `[hooks] timeout` and was stopped.
    TimedOut(Duration),
}

impl Ended {
    /// What went wrong, to follow the hook's name in a message; `None` when it succeeded.
    fn problem(&self) -> Option<String> {
        match self {
            Ended::Exited(s) if s.success() => None,
            Ended::Exited(s) => Some(format!("failed ({s})")),
            Ended::TimedOut(l) => Some(format!(
                "ran past its timeout of {}s and was stopped",
                l.as_secs()
            )),
        }
    }
}

/// Runs a hook to its end, or until `limit` has passed: then the hook and everything it started
/// (its process group) get SIGTERM, and SIGKILL once the hook's shell has ended or [`GRACE`]
/// later, whichever comes first.
fn run(mut shell: Command, limit: Option<Duration>) -> std::io::Result<Ended> {
    let deadline = limit.and_then(|l| Instant::now().checked_add(l));
    let (Some(limit), Some(deadline)) = (limit, deadline) else {
        return shell.status().map(Ended::Exited);
    };
    // A group of its own, so that a stop reaches what the hook started too, and no terminal
    // input, which would stop a process outside the terminal's group. (Without a limit the hook
    // stays in floe's group, where Ctrl-C in a terminal reaches it; with one, Ctrl-C stops floe
    // only: docs/unattended.md.)
    let mut child = shell.process_group(0).stdin(Stdio::null()).spawn()?;
    let pid = Pid::from_raw(child.id() as i32);
    if ended_by(pid, deadline)? {
        return child.wait().map(Ended::Exited);
    }
    let _ = killpg(pid, Signal::SIGTERM);
    let _ = killpg(pid, Signal::SIGCONT);
    ended_by(pid, Instant::now() + GRACE)?;
    // What is left of the group. The shell, even ended, holds the group's id until it is
    // reaped, so the id cannot have passed to another group meanwhile.
    let _ = killpg(pid, Signal::SIGKILL);
    child.wait()?;
    Ok(Ended::TimedOut(limit))
}

/// Waits until child process `pid` has ended or `deadline` has passed, without reaping it:
/// true when it ended.
fn ended_by(pid: Pid, deadline: Instant) -> std::io::Result<bool> {
    let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT;
    loop {
        match waitid(Id::Pid(pid), flags) {
            Ok(WaitStatus::StillAlive) | Err(Errno::EINTR) => {}
            Ok(_) => return Ok(true),
            Err(e) => return Err(e.into()),
        }
        if Instant::now() >= deadline {
            return Ok(false);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs the `before` hook; a failure stops the command.
pub fn before(cmd: &str, command: &str, limit: Option<Duration>) -> anyhow::Result<()> {
    let shell = shell(cmd, &[("FLOE_COMMAND", command.to_string())]);
    let ended = run(shell, limit)
        .map_err(|e| anyhow::anyhow!("before hook {cmd:?} could not start: {e}"))?;
    match ended.problem() {
        None => Ok(()),
        Some(p) => bail!("before hook {cmd:?} {p}: {command} did not run"),
    }
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
        match run(shell(&cmd, &vars), profile.hook_timeout()) {
            Ok(ended) => {
                if let Some(p) = ended.problem() {
                    eprintln!("warning: {name} hook {cmd:?} {p}");
                }
            }
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
