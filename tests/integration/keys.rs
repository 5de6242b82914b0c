//! `floe key`: several passwords for one repository, and changing one.

use std::fs;
use std::process::{Command, Stdio};

use crate::common::*;

fn keys(env: &Env, password: &str) -> serde_json::Value {
    let out = env
        .cmd()
        .env("FLOE_PASSWORD", password)
        .args(["key", "list", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn run_as(env: &Env, password: &str, args: &[&str]) -> std::process::Output {
    env.cmd()
        .env("FLOE_PASSWORD", password)
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn a_second_password_opens_and_the_current_and_last_key_stay() {
    let env = Env::init();
    let first = keys(&env, PASSWORD);
    assert_eq!(first.as_array().unwrap().len(), 1);
    assert_eq!(first[0]["current"], true);
    let first_id = first[0]["id"].as_str().unwrap().to_string();

    let file = env.path("second");
    fs::write(&file, "second password\n").unwrap();
    let out = env.ok(&["key", "add", "--new-password-file", file.to_str().unwrap()]);
    assert!(out.starts_with("added key "), "{out}");
    let seen = keys(&env, "second password");
    assert_eq!(seen.as_array().unwrap().len(), 2);
    let current: Vec<_> = seen
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["current"] == true)
        .collect();
    assert_eq!(current.len(), 1);
    assert_ne!(current[0]["id"], first_id.as_str());

    // The key in use is refused, another one goes.
    let out = run_as(&env, PASSWORD, &["key", "remove", &first_id[..8]]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("it opened the repository"),
        "{}",
        stderr(&out)
    );
    let out = run_as(&env, "second password", &["key", "remove", &first_id[..8]]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        run_as(&env, PASSWORD, &["snapshots"]).status.code(),
        Some(12)
    );
    // The last key is refused too (it is also the current one here).
    let last = keys(&env, "second password")[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let out = run_as(&env, "second password", &["key", "remove", &last]);
    assert_eq!(out.status.code(), Some(1));
    let out = run_as(&env, "second password", &["key", "remove", "ffffffff"]);
    assert!(
        stderr(&out).contains("no key file matches"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn passwd_replaces_the_password() {
    let env = Env::init();
    let file = env.path("new");
    fs::write(&file, "a new password\n").unwrap();
    let out = env.ok(&[
        "key",
        "passwd",
        "--new-password-file",
        file.to_str().unwrap(),
    ]);
    assert!(out.contains("changed the password"), "{out}");
    assert_eq!(
        run_as(&env, PASSWORD, &["snapshots"]).status.code(),
        Some(12)
    );
    assert!(run_as(&env, "a new password", &["snapshots"])
        .status
        .success());
    assert_eq!(keys(&env, "a new password").as_array().unwrap().len(), 1);
    // No file and no terminal: said how to give one.
    let out = env
        .cmd()
        .env("FLOE_PASSWORD", "a new password")
        .args(["key", "add"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("--new-password-file"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn key_add_asks_twice_on_a_terminal() {
    // `script` gives floe a terminal whose input is this test's pipe.
    if Command::new("script").arg("--version").output().is_err() {
        panic!("the `script` program (util-linux) is needed for this test");
    }
    let env = Env::init();
    let cmd = format!(
        "{} -r {} key add",
        env!("CARGO_BIN_EXE_floe"),
        env.repo.display()
    );
    let mut child = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .env("FLOE_PASSWORD", PASSWORD)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    // Both answers at once: the terminal buffers them for the two prompts.
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), b"typed twice\ntyped twice\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("new password:") && text.contains("repeat the new password:"),
        "{text}"
    );
    assert!(run_as(&env, "typed twice", &["snapshots"]).status.success());
}
