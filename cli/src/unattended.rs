//! What happens around a command that runs with nobody watching: the profile's hooks before and
//! after it, one notification when it ends, and its figures in a metrics file. A command records
//! its summary (its `--json` form) with [`crate::output::summary`]; this module hands it on.

mod hooks;
mod metrics;
mod notify;

use std::time::Instant;

use chrono::{DateTime, Utc};

use crate::profile::Profile;
use crate::GlobalArgs;

/// Commands that do a job worth reporting: notifications and metrics apply to these, not to
/// browsing (`ls`, `snapshots`, `config`, ...).
const REPORTED: [&str; 10] = [
    "backup", "restore", "check", "forget", "prune", "copy", "drill", "health", "stats", "job",
];

/// Commands the profile's hooks run around: the scheduled ones, not a restore, nor `health` or
/// `stats`, which monitoring may run every few minutes.
const HOOKED: [&str; 7] = ["backup", "check", "forget", "prune", "copy", "drill", "job"];

/// Set by `job` for the steps it runs: they write metrics, but run no hooks and send no
/// notification (the job does, once); and they write their summary to this file.
pub const JOB_STEP_SUMMARY: &str = "FLOE_JOB_SUMMARY_FILE";

/// How a command ended.
pub struct Outcome {
    pub exit_code: u8,
    /// The error's message, when it failed with one.
    pub error: Option<String>,
}

/// One command's run, from before it starts to after it ends.
pub struct Run {
    command: String,
    reported: bool,
    in_job: bool,
    started: DateTime<Utc>,
    clock: Instant,
    repository: String,
    profile: Option<Profile>,
    notify_urls: Vec<String>,
    metrics_file: Option<std::path::PathBuf>,
    metrics_push: Option<String>,
    tls: floe_engine::TlsOptions,
}

impl Run {
    /// Notes the start of `command`.
    pub fn start(command: &str, g: &GlobalArgs, profile: Option<Profile>) -> Self {
        let in_job = std::env::var_os(JOB_STEP_SUMMARY).is_some();
        Run {
            command: command.to_string(),
            reported: REPORTED.contains(&command),
            in_job,
            started: Utc::now(),
            clock: Instant::now(),
            repository: g.repo.as_deref().map(redact).unwrap_or_default(),
            profile,
            notify_urls: g.notify_url.clone(),
            metrics_file: g.metrics_file.clone(),
            metrics_push: g.metrics_push.clone(),
            tls: floe_engine::TlsOptions {
                cacert: g.s3.cacert.clone(),
                client_cert: g.s3.tls_client_cert.clone(),
                insecure: g.s3.insecure_tls,
            },
        }
    }

    fn hooks(&self) -> Option<&Profile> {
        let hooked = HOOKED.contains(&self.command.as_str());
        self.profile.as_ref().filter(|_| hooked && !self.in_job)
    }

    /// Runs the `before` hook. An error stops the command.
    pub fn before(&self) -> anyhow::Result<()> {
        let Some(p) = self.hooks() else {
            return Ok(());
        };
        match p.hook("before") {
            Some(cmd) => hooks::before(&cmd, &self.command, p.hook_timeout()),
            None => Ok(()),
        }
    }

    /// Hands the outcome on: the job's summary file, the `after` or `failure` hook then
    /// `finally`, the metrics, the notification. Failures here are warnings: the exit code
    /// stays the command's.
    pub fn finish(self, outcome: &Outcome) {
        let summary = crate::output::take_summary();
        let duration = self.clock.elapsed().as_secs_f64();
        if let Some(path) = std::env::var_os(JOB_STEP_SUMMARY) {
            let doc = match (&summary, &outcome.error) {
                (Some(s), _) => s.clone(),
                (None, Some(e)) => serde_json::json!({ "error": e }),
                (None, None) => serde_json::Value::Null,
            };
            if let Err(e) = std::fs::write(&path, doc.to_string()) {
                eprintln!("warning: writing the step's summary for the job: {e}");
            }
        }
        if !self.reported {
            return;
        }
        // Looked up here, not at start-up: most commands report nothing.
        let host = floe_engine::host_and_user().0;
        if let Some(p) = self.hooks() {
            hooks::after(p, &self.command, outcome, summary.as_ref());
        }
        let record = metrics::Record {
            command: &self.command,
            repository: &self.repository,
            host: &host,
            finished: self.started + chrono::Duration::milliseconds((duration * 1000.0) as i64),
            duration,
            exit_code: outcome.exit_code,
            summary: summary.as_ref(),
        };
        if let Some(path) = &self.metrics_file {
            if let Err(e) = metrics::write_file(path, &record) {
                eprintln!("warning: metrics file {}: {e:#}", path.display());
            }
        }
        if let Some(url) = &self.metrics_push {
            if let Err(e) = metrics::push(url, &record, &self.tls) {
                eprintln!("warning: metrics push to {}: {e:#}", redact(url));
            }
        }
        if !self.in_job {
            let doc = notify::Document {
                command: &self.command,
                exit_code: outcome.exit_code,
                ok: outcome.exit_code == crate::exit::OK,
                repository: &self.repository,
                host: &host,
                profile: self.profile.as_ref().map(|p| p.name.as_str()),
                started: self.started,
                duration_seconds: duration,
                summary: summary.as_ref(),
                error: outcome.error.as_deref(),
            };
            for url in &self.notify_urls {
                notify::send(url, &doc, &self.tls);
            }
        }
    }
}

/// Notifies a usage error (exit 2: a typo in the command line or the profile) to the URLs of
/// the profile, if it could be read, and of `FLOE_NOTIFY_URL`.
pub fn notify_early(profile: Option<&Profile>, message: &str) {
    let mut urls: Vec<String> = std::env::var("FLOE_NOTIFY_URL").into_iter().collect();
    if let Some(s) = profile.and_then(|p| p.top.get("notify-url")) {
        match &s.value {
            toml::Value::Array(a) => {
                urls.extend(a.iter().filter_map(|v| v.as_str().map(String::from)))
            }
            toml::Value::String(u) => urls.push(u.clone()),
            _ => {}
        }
    }
    if urls.is_empty() || std::env::var_os(JOB_STEP_SUMMARY).is_some() {
        return;
    }
    let host = floe_engine::host_and_user().0;
    let doc = notify::Document {
        command: "",
        exit_code: crate::exit::USAGE,
        ok: false,
        repository: "",
        host: &host,
        profile: profile.map(|p| p.name.as_str()),
        started: Utc::now(),
        duration_seconds: 0.0,
        summary: None,
        error: Some(message),
    };
    for url in urls {
        notify::send(&url, &doc, &floe_engine::TlsOptions::default());
    }
}

/// A repository location or URL without credentials: the user and password of a URL, and the
/// values of query parameters that may hold keys.
pub fn redact(location: &str) -> String {
    let (scheme_end, rest) = match location.find("://") {
        Some(i) => (i + 3, &location[i + 3..]),
        None => return location.to_string(),
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let host = match authority.rfind('@') {
        Some(at) => &authority[at + 1..],
        None => authority,
    };
    let path = &rest[authority_end..];
    let path = match path.split_once('?') {
        Some((p, _)) => format!("{p}?…"),
        None => path.to_string(),
    };
    format!("{}{host}{path}", &location[..scheme_end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_never_leave_a_location() {
        assert_eq!(
            redact("s3:https://key:secret@s3.example.com/bucket/p"),
            "s3:https://s3.example.com/bucket/p"
        );
        assert_eq!(redact("https://h/x?token=abc"), "https://h/x?…");
        assert_eq!(redact("/srv/repo"), "/srv/repo");
        assert_eq!(redact("s3:bucket/prefix"), "s3:bucket/prefix");
    }
}
