//! The part of the `floe` command line that other crates reach: the profile format (`-P`), so
//! that the fuzz targets of `fuzz/` read profiles as the command line does (docs/fuzzing.md).
//! The rest of the command line lives in the binary, whose `main.rs` uses this module.
//!
//! A profile is checked against the definition of a command line: the keys at its top against
//! the global options, each section against the command it is named after.
//!
//! ```
//! use clap::{Arg, ArgAction, Command};
//! use floe_cli::profile::{self, Profile};
//!
//! let tag = Arg::new("tag").long("tag").action(ArgAction::Append);
//! let mut cli = Command::new("floe")
//!     .arg(Arg::new("repo").long("repo").global(true))
//!     .subcommand(Command::new("backup").arg(tag));
//! cli.build();
//! let text = "repository = '/srv/floe'\n[backup]\ntags = ['nightly']\n";
//! let table = profile::parse(text, &cli)?;
//! let home = Profile::from_chain("home", vec![("home.toml".into(), table)]);
//! let line = profile::apply(&home, &cli, vec!["backup".into()]);
//! assert_eq!(line, ["--repo=/srv/floe", "backup", "--tag=nightly"]);
//! assert!(profile::parse("[backup]\ntagz = ['typo']\n", &cli).is_err());
//! # Ok::<(), anyhow::Error>(())
//! ```

pub mod profile;
