//! `floe generate`: shell completions and man pages, from the command-line definition itself.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap_complete::Shell;

use crate::{exit, output};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Write the bash completion script to FILE
    #[arg(long, value_name = "FILE")]
    bash_completion: Option<PathBuf>,
    /// Write the zsh completion script to FILE
    #[arg(long, value_name = "FILE")]
    zsh_completion: Option<PathBuf>,
    /// Write the fish completion script to FILE
    #[arg(long, value_name = "FILE")]
    fish_completion: Option<PathBuf>,
    /// Write man pages into DIR: floe.1, and floe-COMMAND.1 for every command
    #[arg(long, value_name = "DIR")]
    man: Option<PathBuf>,
}

fn completion(cmd: &mut clap::Command, shell: Shell, file: &Path) -> anyhow::Result<()> {
    let mut out = Vec::new();
    clap_complete::generate(shell, cmd, "floe", &mut out);
    std::fs::write(file, out).with_context(|| format!("writing {}", file.display()))?;
    output::line(format!(
        "wrote the {shell} completion to {}",
        file.display()
    ))?;
    Ok(())
}

/// `cmd` without the `help` subcommands, which need no man page of their own.
fn without_help(cmd: clap::Command) -> clap::Command {
    cmd.disable_help_subcommand(true)
        .mut_subcommands(without_help)
}

pub fn run(mut cmd: clap::Command, a: Args) -> anyhow::Result<u8> {
    let shells = [
        (Shell::Bash, &a.bash_completion),
        (Shell::Zsh, &a.zsh_completion),
        (Shell::Fish, &a.fish_completion),
    ];
    if shells.iter().all(|(_, f)| f.is_none()) && a.man.is_none() {
        bail!("nothing to generate: give --bash-completion, --zsh-completion, --fish-completion or --man");
    }
    // Before completions build `cmd` (building adds the `help` subcommands).
    let man_cmd = without_help(cmd.clone());
    for (shell, file) in shells {
        if let Some(f) = file {
            completion(&mut cmd, shell, f)?;
        }
    }
    if let Some(dir) = &a.man {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        clap_mangen::generate_to(man_cmd, dir)
            .with_context(|| format!("writing man pages into {}", dir.display()))?;
        output::line(format!("wrote man pages into {}", dir.display()))?;
    }
    Ok(exit::OK)
}
