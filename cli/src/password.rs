//! Where the password comes from: a file, a command, the environment, or a prompt without echo.

use std::io::IsTerminal;
use std::process::Command;

use anyhow::{bail, Context};

use crate::GlobalArgs;

fn first_line(bytes: Vec<u8>) -> Vec<u8> {
    let end = bytes
        .iter()
        .position(|&b| b == b'\n')
        .unwrap_or(bytes.len());
    let mut line = bytes[..end].to_vec();
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    line
}

/// Where one repository's password comes from.
pub struct Source<'a> {
    /// `--password-file` or `--from-password-file`.
    pub file: Option<&'a std::path::Path>,
    /// `--password-command` or `--from-password-command`.
    pub command: Option<&'a str>,
    /// The variable holding the password itself.
    pub env: &'static str,
    /// The prompt on a terminal.
    pub prompt: &'static str,
    /// The options and variables to name when none is given.
    pub hint: &'static str,
}

impl<'a> Source<'a> {
    /// The repository of `-r`.
    pub fn of(g: &'a GlobalArgs) -> Self {
        Self {
            file: g.password_file.as_deref(),
            command: g.password_command.as_deref(),
            env: "FLOE_PASSWORD",
            prompt: "repository password: ",
            hint: "set FLOE_PASSWORD_FILE, FLOE_PASSWORD_COMMAND or FLOE_PASSWORD",
        }
    }
}

/// The password of the repository of `-r`, from (in order) `--password-file`/
/// `FLOE_PASSWORD_FILE`, `--password-command`/`FLOE_PASSWORD_COMMAND`, `FLOE_PASSWORD`, or a
/// prompt on the terminal. `confirm` asks twice at the prompt (for `init`).
pub fn get(g: &GlobalArgs, confirm: bool) -> anyhow::Result<Vec<u8>> {
    get_from(&Source::of(g), confirm)
}

/// True when [`get`] may ask someone: on the terminal, or through a password command (which
/// may prompt itself, as pinentry does). False when a file or the variable gives the password.
pub fn may_ask(g: &GlobalArgs) -> bool {
    let src = Source::of(g);
    src.file.is_none() && std::env::var_os(src.env).is_none_or(|p| p.is_empty())
}

/// The password from `src`, in the order of [`get`].
pub fn get_from(src: &Source<'_>, confirm: bool) -> anyhow::Result<Vec<u8>> {
    if let Some(path) = src.file {
        let bytes = std::fs::read(path)
            .with_context(|| format!("reading password file {}", path.display()))?;
        return Ok(first_line(bytes));
    }
    if let Some(cmd) = src.command {
        let out = Command::new("sh")
            .arg("-c")
            .arg(cmd)
            // A password command learns no other repository's password (a job's copy step
            // holds its source's).
            .env_remove("FLOE_PASSWORD")
            .env_remove("FLOE_FROM_PASSWORD")
            .stderr(std::process::Stdio::inherit())
            .output()
            .with_context(|| format!("running password command {cmd:?}"))?;
        if !out.status.success() {
            bail!("password command {cmd:?} failed with {}", out.status);
        }
        return Ok(first_line(out.stdout));
    }
    if let Some(p) = std::env::var_os(src.env).filter(|p| !p.is_empty()) {
        return Ok(std::os::unix::ffi::OsStrExt::as_bytes(p.as_os_str()).to_vec());
    }
    if !std::io::stdin().is_terminal() {
        bail!("no password given: {}, or run on a terminal", src.hint);
    }
    let p = rpassword::prompt_password(src.prompt).context("reading the password")?;
    if confirm {
        let again =
            rpassword::prompt_password("repeat the password: ").context("reading the password")?;
        if again != p {
            bail!("the passwords do not match");
        }
    }
    if p.is_empty() {
        bail!("an empty password is not accepted");
    }
    Ok(p.into_bytes())
}

/// A new password (for `key add` and `key passwd`): the first line of `file`, or asked twice on
/// the terminal.
pub fn new_password(file: Option<&std::path::Path>) -> anyhow::Result<Vec<u8>> {
    let p = match file {
        Some(path) => first_line(
            std::fs::read(path)
                .with_context(|| format!("reading new password file {}", path.display()))?,
        ),
        None => {
            if !std::io::stdin().is_terminal() {
                bail!("no new password given: use --new-password-file FILE, or run on a terminal");
            }
            let p = rpassword::prompt_password("new password: ").context("reading the password")?;
            let again = rpassword::prompt_password("repeat the new password: ")
                .context("reading the password")?;
            if again != p {
                bail!("the passwords do not match");
            }
            p.into_bytes()
        }
    };
    if p.is_empty() {
        bail!("an empty password is not accepted");
    }
    Ok(p)
}
