//! `--metrics-file` and `--metrics-push`: a command's outcome and figures in Prometheus' text
//! format, for node_exporter's textfile collector or a pushgateway.
//!
//! The file gathers every command: a run replaces its own samples (same name and labels) and
//! keeps the others', so that a check written after a backup leaves the backup's lines, and the
//! time of the last success stays when a later run fails. It is written to a temporary file
//! renamed into place, under a lock, so a collector never reads half a file and two commands
//! never lose each other's lines.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;

use anyhow::Context;
use chrono::{DateTime, Utc};
use serde_json::Value;

/// One finished command, as metrics see it.
pub struct Record<'a> {
    pub command: &'a str,
    pub repository: &'a str,
    pub host: &'a str,
    pub finished: DateTime<Utc>,
    pub duration: f64,
    pub exit_code: u8,
    pub summary: Option<&'a Value>,
}

/// Every metric floe writes, with its help text.
const HELP: [(&str, &str); 22] = [
    (
        "floe_last_run_timestamp_seconds",
        "When the command last ended (Unix time).",
    ),
    (
        "floe_last_success_timestamp_seconds",
        "When the command last ended with exit code 0 or 3 (Unix time).",
    ),
    (
        "floe_last_exit_code",
        "Exit code of the command's last run.",
    ),
    (
        "floe_duration_seconds",
        "How long the command's last run took.",
    ),
    ("floe_backup_files_new", "Files the last backup found new."),
    (
        "floe_backup_files_changed",
        "Files the last backup found changed.",
    ),
    (
        "floe_backup_files_unchanged",
        "Files the last backup found unchanged.",
    ),
    (
        "floe_backup_bytes_read",
        "Bytes the last backup read from its sources.",
    ),
    (
        "floe_backup_bytes_added",
        "Bytes the last backup added to the repository (after deduplication and compression).",
    ),
    (
        "floe_check_errors",
        "Errors the last check found (0: the repository is sound).",
    ),
    ("floe_check_packs_read", "Packs the last check read."),
    (
        "floe_prune_bytes_freed",
        "Bytes of packs the last prune deleted, less what it wrote again.",
    ),
    (
        "floe_prune_bytes_repacked",
        "Bytes the last prune copied into new packs.",
    ),
    (
        "floe_forget_snapshots_removed",
        "Snapshots the last forget removed.",
    ),
    (
        "floe_copy_snapshots_copied",
        "Snapshots the last copy copied.",
    ),
    (
        "floe_drill_files_verified",
        "Files the last restore drill restored and verified.",
    ),
    (
        "floe_drill_bytes_verified",
        "Bytes the last restore drill restored and verified.",
    ),
    (
        "floe_drill_files_damaged",
        "Files the last restore drill found damaged.",
    ),
    (
        "floe_drill_estimated_recovery_seconds",
        "Time a restore of the whole snapshot would take, estimated by the last drill.",
    ),
    (
        "floe_health_stale_groups",
        "Groups of snapshots older than health's --max-age.",
    ),
    (
        "floe_stats_bytes",
        "Bytes the repository stores, by storage class.",
    ),
    (
        "floe_stats_objects",
        "Objects the repository stores, by storage class.",
    ),
];

/// One sample: `name{labels} value`.
#[derive(Debug, Clone, PartialEq)]
struct Sample {
    name: &'static str,
    extra: Vec<(&'static str, String)>,
    value: f64,
}

impl Sample {
    /// A sample with the record's labels only.
    fn new(name: &'static str, value: f64) -> Self {
        Sample {
            name,
            extra: Vec::new(),
            value,
        }
    }
}

/// The samples of a record.
fn samples(r: &Record<'_>) -> Vec<Sample> {
    let s = Sample::new;
    let ok = matches!(r.exit_code, crate::exit::OK | crate::exit::PARTIAL);
    let ts = r.finished.timestamp_millis() as f64 / 1000.0;
    let mut out = vec![
        s("floe_last_run_timestamp_seconds", ts),
        s("floe_last_exit_code", f64::from(r.exit_code)),
        s("floe_duration_seconds", r.duration),
    ];
    if ok {
        out.push(s("floe_last_success_timestamp_seconds", ts));
        if let Some(summary) = r.summary {
            out.extend(figures(r.command, summary));
        }
    }
    out
}

fn num(v: &Value, path: &[&str]) -> Option<f64> {
    path.iter().try_fold(v, |v, k| v.get(k))?.as_f64()
}

fn count(v: &Value, path: &[&str]) -> Option<f64> {
    Some(path.iter().try_fold(v, |v, k| v.get(k))?.as_array()?.len() as f64)
}

/// A command's own figures, from its summary.
fn figures(command: &str, v: &Value) -> Vec<Sample> {
    let one = |name, value: Option<f64>| value.map(|value| Sample::new(name, value));
    let list: Vec<Option<Sample>> = match command {
        "backup" => vec![
            one("floe_backup_files_new", num(v, &["summary", "files_new"])),
            one(
                "floe_backup_files_changed",
                num(v, &["summary", "files_changed"]),
            ),
            one(
                "floe_backup_files_unchanged",
                num(v, &["summary", "files_unchanged"]),
            ),
            one("floe_backup_bytes_read", num(v, &["summary", "bytes_read"])),
            one(
                "floe_backup_bytes_added",
                num(v, &["summary", "bytes_added"]),
            ),
        ],
        "check" => vec![
            one("floe_check_errors", check_errors(v)),
            one("floe_check_packs_read", num(v, &["packs_read"])),
        ],
        "prune" => prune(v).into_iter().map(Some).collect(),
        "forget" => {
            let mut l = vec![one("floe_forget_snapshots_removed", count(v, &["removed"]))];
            l.extend(
                v.get("prune")
                    .map(prune)
                    .unwrap_or_default()
                    .into_iter()
                    .map(Some),
            );
            l
        }
        "copy" => vec![one("floe_copy_snapshots_copied", count(v, &["copied"]))],
        "drill" => vec![
            one("floe_drill_files_verified", num(v, &["files_verified"])),
            one("floe_drill_bytes_verified", num(v, &["bytes_verified"])),
            one("floe_drill_files_damaged", count(v, &["files_damaged"])),
            one(
                "floe_drill_estimated_recovery_seconds",
                num(v, &["estimated_recovery_seconds"]),
            ),
        ],
        "health" => vec![one("floe_health_stale_groups", stale_groups(v))],
        "stats" => return by_class(v),
        _ => Vec::new(),
    };
    list.into_iter().flatten().collect()
}

fn check_errors(v: &Value) -> Option<f64> {
    let problems = v.get("problems")?.as_array()?;
    Some(
        problems
            .iter()
            .filter(|p| p.get("severity").and_then(Value::as_str) == Some("error"))
            .count() as f64,
    )
}

fn stale_groups(v: &Value) -> Option<f64> {
    let groups = v.get("groups")?.as_array()?;
    Some(
        groups
            .iter()
            .filter(|g| g.get("stale").and_then(Value::as_bool) == Some(true))
            .count() as f64,
    )
}

/// Bytes freed and repacked, from a prune's plan (a dry run frees nothing).
fn prune(v: &Value) -> Vec<Sample> {
    if v.get("dry_run").and_then(Value::as_bool) != Some(false) {
        return Vec::new();
    }
    let Some(plan) = v.get("plan") else {
        return Vec::new();
    };
    let sum = |key: &str, field: &str| -> f64 {
        plan.get(key)
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(|p| p.get(field)?.as_f64()).sum())
            .unwrap_or(0.0)
    };
    let repacked = sum("repack", "used_bytes");
    let freed = sum("delete", "size") + sum("orphans", "size") + sum("repack", "size") - repacked;
    vec![
        Sample::new("floe_prune_bytes_freed", freed),
        Sample::new("floe_prune_bytes_repacked", repacked),
    ]
}

/// `stats`' bytes and objects by storage class, summed over folders.
fn by_class(v: &Value) -> Vec<Sample> {
    let mut classes: BTreeMap<String, (f64, f64)> = BTreeMap::new();
    let rows = v
        .get("stats")
        .and_then(|s| s.get("rows"))
        .and_then(Value::as_array);
    for row in rows.into_iter().flatten() {
        let class = row.get("class").and_then(Value::as_str).unwrap_or("none");
        let e = classes.entry(class.to_string()).or_default();
        e.0 += num(row, &["bytes"]).unwrap_or(0.0);
        e.1 += num(row, &["objects"]).unwrap_or(0.0);
    }
    let mut out = Vec::new();
    for (class, (bytes, objects)) in classes {
        for (name, value) in [("floe_stats_bytes", bytes), ("floe_stats_objects", objects)] {
            out.push(Sample {
                name,
                extra: vec![("storage_class", class.clone())],
                value,
            });
        }
    }
    out
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// `name{labels}`, the key a sample is replaced by.
fn key(r: &Record<'_>, s: &Sample) -> String {
    let mut labels = vec![
        ("command", r.command.to_string()),
        ("repository", r.repository.to_string()),
        ("host", r.host.to_string()),
    ];
    labels.extend(s.extra.iter().cloned());
    let inner: Vec<String> = labels
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
        .collect();
    format!("{}{{{}}}", s.name, inner.join(","))
}

/// The record's samples as `key -> value` lines.
fn new_lines(r: &Record<'_>) -> BTreeMap<String, String> {
    samples(r)
        .iter()
        .map(|s| (key(r, s), format_value(s.value)))
        .collect()
}

fn format_value(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

/// The samples of an exposition, by key; comments and blank lines are dropped.
fn parse(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((k.to_string(), v.to_string()))
        })
        .collect()
}

/// The exposition of `lines`, each family under its `# HELP` and `# TYPE`.
fn render(lines: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    let mut family = "";
    for (k, v) in lines {
        let name = k.split('{').next().unwrap_or(k);
        if name != family {
            family = name;
            let help = HELP.iter().find(|(n, _)| *n == name).map(|(_, h)| *h);
            let _ = writeln!(out, "# HELP {name} {}", help.unwrap_or("Written by floe."));
            let _ = writeln!(out, "# TYPE {name} gauge");
        }
        let _ = writeln!(out, "{k} {v}");
    }
    out
}

/// Merges the record into the file at `path`.
pub fn write_file(path: &Path, r: &Record<'_>) -> anyhow::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .context("not a file name")?
        .to_string_lossy();
    let lock_path = dir.join(format!(".{name}.lock"));
    let lock = std::fs::File::create(&lock_path)
        .with_context(|| format!("creating {}", lock_path.display()))?;
    lock.lock().context("locking the metrics file")?;
    let mut lines = match std::fs::read_to_string(path) {
        Ok(text) => parse(&text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
        Err(e) => return Err(e).context("reading it"),
    };
    lines.extend(new_lines(r));
    // The textfile collector reads only files ending in .prom, so the temporary file does not.
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".tmp")
        .tempfile_in(dir)
        .context("creating a temporary file beside it")?;
    tmp.write_all(render(&lines).as_bytes())?;
    tmp.as_file().sync_all()?;
    // Readable by the collector, which often runs as another user.
    std::fs::set_permissions(
        tmp.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )?;
    tmp.persist(path)
        .map_err(|e| e.error)
        .context("renaming it into place")?;
    Ok(())
}

/// Sends the record's samples to a pushgateway (`http://HOST:9091/metrics/job/NAME`), in a group
/// of their own (command, host and repository added to the URL's grouping key): a push
/// replaces the metrics of its group only, so each command keeps its own figures, and the time
/// of a command's last success stays when a later run of it fails (no sample of that name is
/// sent then).
pub fn push(url: &str, r: &Record<'_>, tls: &floe_engine::TlsOptions) -> anyhow::Result<()> {
    let url = group_url(url, r);
    let url = url.as_str();
    let body = render(&new_lines(r)).into_bytes();
    let timeout = std::time::Duration::from_secs(10);
    let status =
        floe_engine::http_send("POST", url, "text/plain; version=0.0.4", body, tls, timeout)?;
    if !(200..300).contains(&status) {
        anyhow::bail!("the pushgateway answered HTTP {status}");
    }
    Ok(())
}

/// `url` with the record's labels appended to the grouping key, each value in URL-safe base64
/// (`label@base64/value`), which the pushgateway reads for values that hold a `/`.
fn group_url(url: &str, r: &Record<'_>) -> String {
    use base64::Engine;
    let b64 = |v: &str| match v {
        "" => "=".to_string(),
        v => base64::engine::general_purpose::URL_SAFE.encode(v),
    };
    format!(
        "{}/command@base64/{}/host@base64/{}/repository@base64/{}",
        url.trim_end_matches('/'),
        b64(r.command),
        b64(r.host),
        b64(r.repository)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record<'a>(command: &'a str, exit_code: u8, summary: Option<&'a Value>) -> Record<'a> {
        Record {
            command,
            repository: "/srv/r",
            host: "h",
            finished: DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
            duration: 1.5,
            exit_code,
            summary,
        }
    }

    #[test]
    fn a_failure_keeps_the_last_success_and_other_commands_lines() {
        let summary = serde_json::json!({"summary": {"files_new": 3, "bytes_added": 10}});
        let mut lines = new_lines(&record("backup", 0, Some(&summary)));
        lines.extend(new_lines(&record("check", 0, None)));
        let mut failed = record("backup", 1, None);
        failed.finished = DateTime::from_timestamp(1_700_000_100, 0).unwrap();
        lines.extend(new_lines(&failed));
        let text = render(&lines);
        let get = |k: &str| parse(&text).get(k).cloned();
        let labels = r#"{command="backup",repository="/srv/r",host="h"}"#;
        assert_eq!(
            get(&format!("floe_last_success_timestamp_seconds{labels}")).as_deref(),
            Some("1700000000")
        );
        assert_eq!(
            get(&format!("floe_last_run_timestamp_seconds{labels}")).as_deref(),
            Some("1700000100")
        );
        assert_eq!(
            get(&format!("floe_last_exit_code{labels}")).as_deref(),
            Some("1")
        );
        assert_eq!(
            get(&format!("floe_backup_files_new{labels}")).as_deref(),
            Some("3")
        );
        assert!(
            text.contains(r#"floe_last_exit_code{command="check",repository="/srv/r",host="h"} 0"#)
        );
        assert_eq!(text.matches("# TYPE floe_last_exit_code gauge").count(), 1);
    }

    #[test]
    fn labels_are_escaped() {
        let mut r = record("backup", 0, None);
        r.repository = "/a \"b\"\\c";
        let s = samples(&r);
        assert!(key(&r, &s[0]).contains(r#"repository="/a \"b\"\\c""#));
    }
}
