//! `floe -P NAME schedule --print systemd|cron`: the units or the crontab line that run a
//! profile's job, to be installed as the README shows.

use anyhow::{bail, Context};

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
        bail!("schedule runs a profile's job: give -P NAME (or set FLOE_PROFILE)");
    };
    let exe = std::env::current_exe().context("finding floe's own executable")?;
    // The file's absolute path: a system unit runs without the user's ~/.config.
    let file = p.files.first().context("the profile has no file")?;
    let file = std::fs::canonicalize(file).with_context(|| format!("{}", file.display()))?;
    let command = format!(
        "{} -P {} job",
        quote(&exe.display().to_string()),
        quote(&file.display().to_string())
    );
    let unit = format!("floe-{}", unit_name(&p.name));
    let text = match a.print {
        Format::Systemd => format!(
            "# {unit}.service\n{}\n# {unit}.timer\n{}",
            service(&p.name, &command),
            timer(&p.name, &a)
        ),
        Format::SystemdService => service(&p.name, &command),
        Format::SystemdTimer => timer(&p.name, &a),
        Format::Cron => format!(
            "{} {} * * * {command} >>/var/log/{unit}.log 2>&1\n",
            a.at.1, a.at.0
        ),
    };
    output::line(text.trim_end())?;
    Ok(crate::exit::OK)
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
    let calendar = a
        .on_calendar
        .clone()
        .unwrap_or_else(|| format!("*-*-* {:02}:{:02}:00", a.at.0, a.at.1));
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
