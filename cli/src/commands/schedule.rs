//! `floe -P NAME schedule --print systemd|cron`: the units or the crontab line that run a
//! profile's job, to be installed as the README shows.

use anyhow::Context;

use crate::{output, profile, GlobalArgs};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// What to print: systemd (the service, then the timer), systemd-service, systemd-timer,
    /// or cron (one crontab line)
    #[arg(long, value_name = "FORMAT")]
    print: Format,
    /// The time of day the job runs, HH:MM in local time
    #[arg(long, value_name = "HH:MM", default_value = "03:00", value_parser = parse_at)]
    at: (u32, u32),
    /// A systemd calendar expression instead of --at (e.g. "hourly", "Mon *-*-* 02:00")
    #[arg(long, value_name = "EXPR")]
    on_calendar: Option<String>,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Format {
    Systemd,
    SystemdService,
    SystemdTimer,
    Cron,
}

fn parse_at(s: &str) -> Result<(u32, u32), String> {
    let t = chrono::NaiveTime::parse_from_str(s, "%H:%M")
        .map_err(|_| "expected a time of day as HH:MM, e.g. 03:00".to_string())?;
    Ok((chrono::Timelike::hour(&t), chrono::Timelike::minute(&t)))
}

pub fn run(_: &GlobalArgs, a: Args) -> anyhow::Result<u8> {
    let Some(p) = profile::current() else {
        eprintln!("error: schedule runs a profile's job: give -P NAME (or set FLOE_PROFILE)");
        return Ok(crate::exit::USAGE);
    };
    if matches!(a.print, Format::Cron) && a.on_calendar.is_some() && !typed("--at") {
        eprintln!("error: --on-calendar is a systemd calendar; a crontab line takes --at HH:MM");
        return Ok(crate::exit::USAGE);
    }
    warn_left_out();
    let exe = std::env::current_exe().context("finding floe's own executable")?;
    // The file's absolute path: a system unit runs without the user's ~/.config.
    let file = p.files.first().context("the profile has no file")?;
    let file = std::fs::canonicalize(file).with_context(|| format!("{}", file.display()))?;
    let words = [
        exe.display().to_string(),
        "-P".into(),
        file.display().to_string(),
        "job".into(),
    ];
    let command: Vec<String> = words.iter().map(|w| quote(w)).collect();
    let command = command.join(" ");
    let unit = format!("floe-{}", unit_name(&p.name));
    let text = match a.print {
        Format::Systemd => format!(
            "# {unit}.service\n{}\n# {unit}.timer\n{}",
            service(&p.name, &command.replace('%', "%%")),
            timer(&p.name, &a)
        ),
        Format::SystemdService => service(&p.name, &command.replace('%', "%%")),
        Format::SystemdTimer => timer(&p.name, &a),
        Format::Cron => format!(
            "{} {} * * * {} >>{} 2>&1\n",
            a.at.1,
            a.at.0,
            command.replace('%', "\\%"),
            log_file(&unit)
        ),
    };
    output::line(text.trim_end())?;
    Ok(crate::exit::OK)
}

/// Whether the command line as typed holds `option`.
fn typed(option: &str) -> bool {
    profile::typed_args().iter().any(|a| {
        let a = a.to_string_lossy();
        a == option || a.starts_with(&format!("{option}="))
    })
}

/// The units run `floe -P FILE job` and nothing else: options typed here and the variables of
/// this shell are not in them.
fn warn_left_out() {
    let own = [
        "-P",
        "--profile",
        "schedule",
        "--print",
        "--at",
        "--on-calendar",
    ];
    let mut skip_value = false;
    let mut extra = Vec::new();
    for a in profile::typed_args() {
        let a = a.to_string_lossy();
        if std::mem::take(&mut skip_value) {
            continue;
        }
        let name = a.split('=').next().unwrap_or_default();
        if own.contains(&name) {
            skip_value = !a.contains('=') && name != "schedule";
        } else if !name.starts_with("-P") {
            extra.push(a.into_owned());
        }
    }
    if !extra.is_empty() {
        eprintln!(
            "warning: the job runs with its profile's options only; {} given here are not in \
             what is printed: put them in the profile",
            extra.join(" ")
        );
    }
    let vars: Vec<String> = std::env::vars()
        .map(|(k, _)| k)
        .filter(|k| k.starts_with("FLOE_") && k != "FLOE_PROFILE")
        .collect();
    if !vars.is_empty() {
        eprintln!(
            "warning: {} set in this shell will not be set when the job runs: put what they \
             say in the profile",
            vars.join(", ")
        );
    }
}

/// Where a crontab line sends the job's output: `/var/log` for root, the home folder for
/// anyone else (who cannot write to `/var/log`).
fn log_file(unit: &str) -> String {
    use std::os::unix::fs::MetadataExt;
    // /proc/self belongs to the user the process runs as.
    let root = std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0);
    match (root, std::env::var("HOME")) {
        (false, Ok(home)) => quote(&format!("{home}/{unit}.log")),
        _ => format!("/var/log/{unit}.log"),
    }
}

fn service(name: &str, command: &str) -> String {
    format!(
        "[Unit]
Description=floe job of profile {name}
Wants=network-online.target
After=network-online.target

[Service]
Type=oneshot
ExecStart={command}
# Backups yield to everything else the machine does.
Nice=10
IOSchedulingClass=idle
"
    )
}

fn timer(name: &str, a: &Args) -> String {
    // An --at typed here wins over a calendar from the profile.
    let calendar = match &a.on_calendar {
        Some(c) if !typed("--at") => c.clone(),
        _ => format!("*-*-* {:02}:{:02}:00", a.at.0, a.at.1),
    };
    format!(
        "[Unit]
Description=Run the floe job of profile {name}

[Timer]
OnCalendar={calendar}
# Machines that share a store do not all start at once.
RandomizedDelaySec=15m
# A run missed while the machine was off happens at the next boot.
Persistent=true

[Install]
WantedBy=timers.target
"
    )
}

/// A profile name as a unit name: characters other than letters, digits, `-` and `_` become `-`.
fn unit_name(name: &str) -> String {
    let base = name
        .rsplit('/')
        .next()
        .unwrap_or(name)
        .trim_end_matches(".toml");
    base.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

/// A word for a shell (and for systemd's ExecStart, which reads the same quotes).
fn quote(s: &str) -> String {
    if s.chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-+:=@".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}
