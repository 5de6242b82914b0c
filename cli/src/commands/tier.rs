//! `floe tier show|apply`: the bucket's lifecycle rules, as they concern this repository.

use floe_engine::{data_rule, describe_rules, rule_json, LifecycleRule};
use floe_engine::{Backend, StorageClass};

use crate::{exit, output, GlobalArgs};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// The bucket's lifecycle rules and what they do to this repository
    Show {
        /// Print the rules and their effects as JSON
        #[arg(long)]
        json: bool,
    },
    /// Add (or replace) the lifecycle rule that moves this repository's data packs to colder
    /// classes; the bucket's other rules are kept as they are
    Apply(ApplyArgs),
}

#[derive(Debug, clap::Args)]
struct ApplyArgs {
    /// A step of the rule, DAYS:CLASS, repeatable; replaces the default steps
    /// 30:STANDARD_IA 90:GLACIER 365:DEEP_ARCHIVE
    #[arg(long = "transition", value_name = "DAYS:CLASS", value_parser = parse_step)]
    transitions: Vec<(u32, StorageClass)>,
    /// Abort multipart uploads left incomplete after this many days (0: no such step)
    #[arg(long, value_name = "DAYS", default_value_t = 7)]
    abort_multipart_days: u32,
    /// Print the rule as JSON (S3's lifecycle format) and change nothing
    #[arg(short = 'n', long)]
    dry_run: bool,
}

fn parse_step(s: &str) -> Result<(u32, StorageClass), String> {
    let (days, class) = s
        .split_once(':')
        .ok_or_else(|| format!("{s:?}: expected DAYS:CLASS, e.g. 90:GLACIER"))?;
    let days: u32 = days
        .parse()
        .map_err(|_| format!("{s:?}: {days:?} is not a number of days"))?;
    Ok((days, crate::repo::parse_storage_class(class)?))
}

/// On a bucket with Object Lock, the rule for the versions a locked repository leaves, with the
/// days of its config (which takes the password).
fn versions_rule(g: &GlobalArgs, s3: &floe_engine::S3Backend) -> anyhow::Result<()> {
    let repo = crate::repo::open(g)?;
    let Some(r) = repo.config().object_lock else {
        return Ok(());
    };
    apply(s3, &floe_engine::versions_rule(s3.prefix(), r))
}

/// Writes `rule` (the bucket's other rules stay) and says what it does.
fn apply(s3: &floe_engine::S3Backend, rule: &LifecycleRule) -> anyhow::Result<()> {
    s3.put_lifecycle_rule(rule)?;
    output::line(format!(
        "rule {} applied to prefix {:?}: {}",
        rule.id,
        rule.prefix,
        describe_rules(std::slice::from_ref(rule), s3.prefix())[0]
            .actions
            .join("; ")
    ))?;
    Ok(())
}

pub fn run(g: &GlobalArgs, a: Args) -> anyhow::Result<u8> {
    let s3 = crate::repo::s3_backend(g)?;
    match a.command {
        Command::Show { json } => {
            let rules = s3.lifecycle_rules()?;
            let impacts = describe_rules(&rules, s3.prefix());
            if json {
                output::json(&impacts)?;
            } else {
                output::line(format!(
                    "{} lifecycle rule(s) on the bucket of {}",
                    rules.len(),
                    s3.location()
                ))?;
                for (r, i) in rules.iter().zip(&impacts) {
                    output::line(format!(
                        "  {} ({}), prefix {:?}{}: {}",
                        i.id,
                        if i.enabled { "enabled" } else { "disabled" },
                        i.prefix,
                        if r.other_conditions {
                            ", with tag or size conditions"
                        } else {
                            ""
                        },
                        if i.actions.is_empty() {
                            "no transition or expiration".to_string()
                        } else {
                            i.actions.join("; ")
                        }
                    ))?;
                    output::line(format!(
                        "    reaches in this repository: {}",
                        if i.affects.is_empty() {
                            "nothing".to_string()
                        } else {
                            i.affects.join(", ")
                        }
                    ))?;
                }
                let cold_data = rules.iter().zip(&impacts).any(|(r, i)| {
                    r.enabled && !r.transitions.is_empty() && i.affects.iter().any(|f| f == "data/")
                });
                if !cold_data {
                    output::line(
                        "no rule moves this repository's data packs to a colder class; \
                         `floe tier apply` adds one",
                    )?;
                }
            }
            for i in &impacts {
                if let Some(w) = &i.warning {
                    eprintln!("warning: rule {}: {w}", i.id);
                }
            }
            Ok(exit::OK)
        }
        Command::Apply(a) => {
            let steps = if a.transitions.is_empty() {
                vec![
                    (30, StorageClass::StandardIa),
                    (90, StorageClass::Glacier),
                    (365, StorageClass::DeepArchive),
                ]
            } else {
                a.transitions
            };
            let abort = (a.abort_multipart_days > 0).then_some(a.abort_multipart_days);
            let rule: LifecycleRule = data_rule(s3.prefix(), &steps, abort)?;
            if a.dry_run {
                output::json(&serde_json::json!({ "Rules": [rule_json(&rule)] }))?;
                return Ok(exit::OK);
            }
            apply(&s3, &rule)?;
            // Stores without Object Lock (Garage) may not know the request: no rule to add.
            if s3.object_lock_enabled().unwrap_or(false) {
                if let Err(e) = versions_rule(g, &s3) {
                    eprintln!(
                        "warning: the bucket has Object Lock, and the rule for old versions of \
                         a locked repository was not written: {e:#}"
                    );
                }
            }
            Ok(exit::OK)
        }
    }
}
