//! Running with nobody watching: profiles (`-P`), `config`, `job`, `schedule`, hooks,
//! notifications to a real HTTP receiver, and metrics read by the Prometheus client's parser.
//!
//! The receiver is `tests/servers/receiver.py` under the system's python3. The metrics tests
//! need the Prometheus client, installed into the test servers' virtual environment
//! (`FLOE_TEST_PYTHON`, set by tests/servers/with-s3-servers.sh); without it they skip and say
//! so, unless `CI=true` or `FLOE_TEST_REQUIRE_S3=1`.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::*;

/// A folder with profiles (`$XDG_CONFIG_HOME/floe/`), a password file, a source folder and a
/// repository.
struct Setup {
    dir: tempfile::TempDir,
}

impl Setup {
    fn new() -> Self {
        let s = Setup {
            dir: tempfile::tempdir().unwrap(),
        };
        fs::create_dir_all(s.path("cfg/floe")).unwrap();
        fs::write(s.path("pw"), PASSWORD).unwrap();
        fs::create_dir_all(s.path("src/sub")).unwrap();
        fs::write(s.path("src/keep.txt"), b"keep me").unwrap();
        fs::write(s.path("src/sub/data.bin"), random_bytes(7, 300_000)).unwrap();
        fs::write(s.path("src/skip.tmp"), b"excluded by the base profile").unwrap();
        fs::write(s.path("src/skip.bak"), b"excluded by the home profile").unwrap();
        s
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    fn s(&self, p: &str) -> String {
        self.path(p).display().to_string()
    }

    /// Writes profile `name`.
    fn profile(&self, name: &str, text: &str) -> PathBuf {
        let p = self.path(&format!("cfg/floe/{name}.toml"));
        fs::write(&p, text).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o600)).unwrap();
        p
    }

    /// A base profile with shared excludes, and `home` inheriting it; `extra` ends `home`.
    fn home(&self, extra: &str) {
        self.profile(
            "base",
            &format!(
                "password-file = {:?}\n[backup]\nexclude = [\"*.tmp\"]\n",
                self.s("pw")
            ),
        );
        self.profile(
            "home",
            &format!(
                "inherit = \"base\"\nrepository = {:?}\n{extra}\n[backup]\nsources = [{:?}]\n\
                 exclude = [\"*.bak\"]\ntags = [\"nightly\"]\n",
                self.s("repo"),
                self.s("src")
            ),
        );
    }

    fn cmd(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_floe"));
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("FLOE_") && k != "FLOE_TEST_PYTHON" {
                c.env_remove(k);
            }
        }
        c.env("XDG_CONFIG_HOME", self.path("cfg"));
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().expect("run floe")
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "floe {args:?}: {:?}\n{}\n{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            stderr(&out)
        );
        String::from_utf8(out.stdout).unwrap()
    }
}

fn json_of(out: &str) -> Value {
    serde_json::from_str(out.lines().last().unwrap_or_default()).expect("JSON")
}

#[test]
fn a_profile_sets_options_and_the_command_line_wins_over_it() {
    let s = Setup::new();
    s.home("");
    s.ok(&["-P", "home", "init"]);
    let out = s.ok(&["-P", "home", "backup", "--json"]);
    assert_eq!(json_of(&out)["summary"]["files_new"], 2, "{out}");
    let ls = s.ok(&["-P", "home", "ls", "latest"]);
    assert!(ls.contains("keep.txt") && ls.contains("data.bin"), "{ls}");
    assert!(
        !ls.contains("skip.tmp"),
        "the inherited exclude applies: {ls}"
    );
    assert!(
        !ls.contains("skip.bak"),
        "the profile's own exclude applies: {ls}"
    );

    // Lists add up: the command line's tag joins the profile's.
    s.ok(&["-P", "home", "backup", "--tag", "manual"]);
    let snaps: Value =
        serde_json::from_str(&s.ok(&["-P", "home", "snapshots", "--json", "--tag", "manual"]))
            .unwrap();
    let tags = &snaps[0]["tags"];
    assert_eq!(tags, &serde_json::json!(["manual", "nightly"]), "{snaps}");

    // One value: the command line wins, and sources given replace the profile's.
    let other = s.s("other");
    s.ok(&["-P", "home", "-r", &other, "init"]);
    s.ok(&["-P", "home", "-r", &other, "backup", &s.s("src/sub")]);
    let ls = s.ok(&["-P", "home", "-r", &other, "ls", "latest"]);
    assert!(ls.contains("data.bin") && !ls.contains("keep.txt"), "{ls}");
    // A variable wins over the profile too.
    let out = s
        .cmd()
        .args(["-P", "home", "snapshots", "--json"])
        .env("FLOE_REPOSITORY", &other)
        .output()
        .unwrap();
    assert_eq!(
        json_of(&String::from_utf8_lossy(&out.stdout))
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // A profile given as a path.
    let path = s.s("cfg/floe/home.toml");
    s.ok(&["--profile", &path, "snapshots"]);
}

#[test]
fn a_typo_in_a_profile_is_an_error_naming_the_key_and_the_file() {
    let s = Setup::new();
    s.home("");
    s.ok(&["-P", "home", "init"]);
    let typo = s.profile(
        "typo",
        "inherit = \"home\"\n[backup]\nexlude = [\"*.iso\"]\n",
    );
    let out = s.run(&["-P", "typo", "backup"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("profile {}", typo.display())),
        "{err}"
    );
    assert!(err.contains("unknown key \"exlude\" in [backup]"), "{err}");
    assert!(
        !s.path("repo/snapshots").read_dir().unwrap().any(|_| true),
        "nothing was backed up"
    );

    let cases = [
        (
            "[forget]\nkeep-daily = \"many\"\n",
            "[forget] keep-daily: invalid value 'many'",
        ),
        ("[backupp]\n", "unknown section [backupp]"),
        ("s3-regoin = \"x\"\n", "unknown key \"s3-regoin\""),
        (
            "[backup]\none-file-system = \"yes\"\n",
            "[backup] one-file-system: expected true or false",
        ),
        (
            "[hooks]\nbefor = \"true\"\n",
            "unknown key \"befor\" in [hooks]",
        ),
        ("repository = \n", "profile"),
    ];
    for (text, message) in cases {
        s.profile("bad", text);
        let out = s.run(&["-P", "bad", "snapshots"]);
        assert_eq!(out.status.code(), Some(2), "{text}");
        assert!(stderr(&out).contains(message), "{text}: {}", stderr(&out));
    }
    let out = s.run(&["-P", "missing", "snapshots"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("profile \"missing\" not found: looked for"),
        "{}",
        stderr(&out)
    );

    s.profile("loop1", "inherit = \"loop2\"\n");
    s.profile("loop2", "inherit = \"loop1\"\n");
    let out = s.run(&["-P", "loop1", "snapshots"]);
    assert!(
        stderr(&out).contains("inherit makes a loop"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_profile_holding_a_password_must_be_private() {
    let s = Setup::new();
    let p = s.profile(
        "pw",
        &format!("repository = {:?}\npassword = {PASSWORD:?}\n", s.s("repo")),
    );
    fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).unwrap();
    let out = s.run(&["-P", "pw", "init"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("can be read by group or others (mode 644): run chmod 600"),
        "{err}"
    );
    assert!(!s.path("repo").exists());
    fs::set_permissions(&p, fs::Permissions::from_mode(0o600)).unwrap();
    s.ok(&["-P", "pw", "init"]);
    s.ok(&["-P", "pw", "snapshots"]);
    // The config shows that there is one, never what it is.
    let config = s.ok(&["-P", "pw", "config"]);
    assert!(config.contains("password = \"(hidden)\""), "{config}");
    assert!(!config.contains(PASSWORD), "{config}");
}

#[test]
fn config_says_where_each_setting_comes_from() {
    let s = Setup::new();
    s.home("s3-region = \"eu-west-3\"");
    let out = s
        .cmd()
        .args(["-P", "home", "-r", "/elsewhere", "config"])
        .env("FLOE_S3_REGION", "us-east-2")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let line = |key: &str| {
        text.lines()
            .find(|l| l.starts_with(&format!("{key} = ")))
            .unwrap_or_else(|| panic!("no {key} in {text}"))
            .to_string()
    };
    assert!(
        line("repo").contains("\"/elsewhere\"") && line("repo").ends_with("# command line"),
        "{text}"
    );
    assert!(
        line("s3-region").contains("us-east-2")
            && line("s3-region").contains("environment FLOE_S3_REGION"),
        "{text}"
    );
    assert!(line("password-file").contains("base.toml"), "{text}");
    let exclude = line("exclude");
    assert!(
        exclude.contains("[\"*.tmp\", \"*.bak\"]"),
        "base's list first: {exclude}"
    );
    assert!(
        exclude.contains("base.toml + ") && exclude.contains("home.toml"),
        "{exclude}"
    );
    assert!(text.contains("inherits"), "{text}");
}

/// Flips a byte in the middle of every data pack.
fn damage_data_packs(repo: &Path) {
    let mut stack = vec![repo.join("data")];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let mut bytes = fs::read(&p).unwrap();
                let mid = bytes.len() / 2;
                bytes[mid] ^= 0xff;
                fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).unwrap();
                fs::write(&p, bytes).unwrap();
            }
        }
    }
}

#[test]
fn a_job_runs_its_steps_and_exits_with_the_worst_code() {
    let s = Setup::new();
    s.home("");
    let errors = s.s("errors.log");
    fs::write(
        s.path("cfg/floe/home.toml"),
        fs::read_to_string(s.path("cfg/floe/home.toml")).unwrap()
            + "[forget]\nkeep-last = 1\nprune = true\n[check]\nread-data-subset = \"100%\"\n[drill]\nfiles = 2\n"
            + &format!("[hooks]\nfailure = \"echo $FLOE_ERROR >> {errors}\"\n"),
    )
    .unwrap();
    s.ok(&["-P", "home", "init"]);
    s.ok(&["-P", "home", "backup"]);
    // Another profile's snapshots in the same repository: the job's forget leaves them be.
    s.profile(
        "other",
        &format!(
            "repository = {:?}\npassword-file = {:?}\n[backup]\nsources = [{:?}]\ntags = [\"nightly\"]\n",
            s.s("repo"),
            s.s("pw"),
            s.s("src/sub")
        ),
    );
    s.ok(&["-P", "other", "backup", "--tag", "other"]);
    s.ok(&["-P", "other", "backup", "--tag", "other"]);
    let out = s.ok(&["-P", "home", "job", "--json"]);
    let job = json_of(&out);
    let steps: Vec<(&str, i64)> = job["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["command"].as_str().unwrap(),
                s["exit_code"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        steps,
        [("backup", 0), ("forget", 0), ("check", 0), ("drill", 0)],
        "{out}"
    );
    assert_eq!(
        job["steps"][1]["summary"]["removed"]
            .as_array()
            .unwrap()
            .len(),
        1,
        "keep-last = 1, among this profile's snapshots only"
    );
    let others = s.ok(&["-P", "home", "snapshots", "--json", "--tag", "other"]);
    assert_eq!(json_of(&others).as_array().unwrap().len(), 2, "{others}");
    assert!(
        job["steps"][2]["summary"]["packs_read"].as_u64().unwrap() > 0,
        "the profile's subset"
    );
    assert_eq!(job["steps"][3]["summary"]["files_verified"], 2);

    // A damaged pack: check and drill fail, the job exits 1 and says which steps failed.
    damage_data_packs(&s.path("repo"));
    let out = s.run(&["-P", "home", "job"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    let logged = fs::read_to_string(&errors).unwrap();
    assert!(logged.contains("check failed (exit 1)"), "{logged}");
    let line = |step: &str| {
        text.lines()
            .find(|l| l.starts_with(&format!("  {step} ")))
            .unwrap_or_default()
            .to_string()
    };
    assert!(line("backup").contains(" ok "), "{text}");
    assert!(line("check").contains("exit 1"), "{text}");

    // A backup that fails stops the job: nothing else runs.
    fs::write(s.path("pw"), "wrong").unwrap();
    let out = s.run(&["-P", "home", "job"]);
    assert_eq!(out.status.code(), Some(12), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    for step in ["forget", "check", "drill"] {
        assert!(
            text.lines()
                .any(|l| l.contains(step) && l.contains("skipped")),
            "{text}"
        );
    }
}

#[test]
fn a_job_copies_to_the_profiles_it_names() {
    let s = Setup::new();
    fs::write(s.path("pw2"), "another password").unwrap();
    s.profile(
        "offsite",
        &format!(
            "repository = {:?}\npassword-file = {:?}\n",
            s.s("copy"),
            s.s("pw2")
        ),
    );
    s.home("");
    fs::write(
        s.path("cfg/floe/home.toml"),
        fs::read_to_string(s.path("cfg/floe/home.toml")).unwrap()
            + "[copy]\ndestinations = [\"offsite\"]\n",
    )
    .unwrap();
    s.ok(&["-P", "home", "init"]);
    s.ok(&["-P", "offsite", "init"]);
    s.ok(&["-P", "home", "job"]);
    // As a timer runs it: the profile by its path, no ~/.config; the destination is found
    // beside it.
    let file = s.s("cfg/floe/home.toml");
    let out = s
        .cmd()
        .args(["-P", &file, "job"])
        .env_remove("XDG_CONFIG_HOME")
        .env("HOME", s.path("elsewhere"))
        .current_dir("/")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let copies: Value =
        serde_json::from_str(&s.ok(&["-P", "offsite", "snapshots", "--json"])).unwrap();
    assert_eq!(copies.as_array().unwrap().len(), 2);
    let target = s.path("restored");
    s.ok(&[
        "-P",
        "offsite",
        "restore",
        "latest",
        "--target",
        target.to_str().unwrap(),
    ]);
    assert_eq!(
        fs::read(restored(&target, &s.path("src")).join("sub/data.bin")).unwrap(),
        fs::read(s.path("src/sub/data.bin")).unwrap()
    );
}

#[test]
fn hooks_run_around_a_command_and_never_see_a_password() {
    let s = Setup::new();
    let log = s.s("hooks.log");
    s.profile("base", &format!("password = {PASSWORD:?}\n"));
    s.profile(
        "home",
        &format!(
            "inherit = \"base\"\nrepository = {:?}\n[backup]\nsources = [{:?}]\n[hooks]\n\
             before = \"echo before $FLOE_COMMAND >> {log}; echo noise from the hook\"\n\
             after = \"echo after $FLOE_COMMAND $FLOE_EXIT_CODE $FLOE_SNAPSHOT_ID >> {log}; cp $FLOE_SUMMARY_FILE {log}.json; env > {log}.env\"\n\
             failure = \"echo failure $FLOE_COMMAND $FLOE_EXIT_CODE >> {log}\"\n\
             finally = \"echo finally >> {log}\"\n",
            s.s("repo"),
            s.s("src")
        ),
    );
    s.ok(&["-P", "home", "init"]);
    let out = s
        .cmd()
        .args(["-P", "home", "backup", "--json"])
        .env("AWS_SECRET_ACCESS_KEY", "aws-secret")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    // The hook's own output went to stderr: stdout is the JSON alone.
    let doc: Value = serde_json::from_slice(&out.stdout).expect("stdout is one JSON document");
    assert!(stderr(&out).contains("noise from the hook"));
    let id = doc["snapshot_id"].as_str().unwrap().to_string();
    let lines = fs::read_to_string(&log).unwrap();
    assert_eq!(
        lines,
        format!("before backup\nafter backup 0 {id}\nfinally\n")
    );
    let summary: Value =
        serde_json::from_str(&fs::read_to_string(format!("{log}.json")).unwrap()).unwrap();
    assert_eq!(summary["snapshot_id"], id.as_str());
    let env = fs::read_to_string(format!("{log}.env")).unwrap();
    assert!(
        !env.contains(PASSWORD) && !env.contains("aws-secret"),
        "{env}"
    );
    assert!(env.contains("FLOE_COMMAND=backup"));

    // Browsing runs no hook.
    fs::remove_file(&log).unwrap();
    s.ok(&["-P", "home", "snapshots"]);
    assert!(!Path::new(&log).exists());

    // A restore is not a scheduled job: no hook.
    s.run(&["-P", "home", "restore", "latest", "--target", &s.s("t")]);
    assert!(!Path::new(&log).exists());

    // A failure runs `failure`, then `finally`; a hook's output stays off stdout.
    let out = s.run(&["-P", "home", "forget", "deadbeef", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        fs::read_to_string(&log).unwrap(),
        "before forget\nfailure forget 1\nfinally\n"
    );

    // A failing `before` stops the command with exit 1.
    fs::remove_file(&log).unwrap();
    let text = fs::read_to_string(s.path("cfg/floe/home.toml")).unwrap();
    s.profile(
        "home",
        &text.replace("before = \"echo", "before = \"exit 3; echo"),
    );
    let out = s.run(&["-P", "home", "backup"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("before hook") && stderr(&out).contains("backup did not run"),
        "{}",
        stderr(&out)
    );
    let snaps: Value = serde_json::from_str(&s.ok(&["-P", "home", "snapshots", "--json"])).unwrap();
    assert_eq!(snaps.as_array().unwrap().len(), 1, "no new snapshot");
    assert_eq!(
        fs::read_to_string(&log).unwrap(),
        "failure backup 1\nfinally\n"
    );
}

#[test]
fn a_hook_past_its_timeout_is_stopped_with_what_it_started() {
    let s = Setup::new();
    let log = s.s("hooks.log");
    let pid_file = s.s("sleeper.pid");
    // `before` starts a sleeper of its own that ignores SIGTERM, and waits for it; `finally`
    // hangs too.
    s.profile(
        "home",
        &format!(
            "password = {PASSWORD:?}\nrepository = {:?}\n[backup]\nsources = [{:?}]\n[hooks]\n\
             timeout = \"1s\"\n\
             before = \"(trap '' TERM; sleep 60) & echo $! > {pid_file}; wait\"\n\
             finally = \"echo finally >> {log}; sleep 60\"\n",
            s.s("repo"),
            s.s("src")
        ),
    );
    s.ok(&["-P", "home", "init"]);
    let started = std::time::Instant::now();
    let out = s.run(&["-P", "home", "backup"]);
    // Stopped after a second each, not a minute: the before hook, then the finally hook.
    assert!(started.elapsed().as_secs() < 30, "{:?}", started.elapsed());
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("ran past its timeout of 1s and was stopped: backup did not run"),
        "{err}"
    );
    assert!(
        err.contains("warning: finally hook") && err.contains("ran past its timeout of 1s"),
        "{err}"
    );
    assert_eq!(fs::read_to_string(&log).unwrap(), "finally\n");
    // What the hook started was stopped with it.
    let pid: i32 = fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let gone = (0..100).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(50));
        // Gone, or a zombie waiting for whoever inherited it to reap it.
        let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        stat.is_empty()
            || stat
                .rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with('Z')
    });
    assert!(gone, "the hook's sleeper {pid} still runs");
    let snaps: Value = serde_json::from_str(&s.ok(&["-P", "home", "snapshots", "--json"])).unwrap();
    assert!(snaps.as_array().unwrap().is_empty(), "no snapshot");

    // A timeout that is not a duration, or is none, is refused with the profile.
    let text = fs::read_to_string(s.path("cfg/floe/home.toml")).unwrap();
    for (bad, says) in [
        ("\"soon\"", "[hooks] timeout: invalid duration \"soon\""),
        ("\"0\"", "[hooks] timeout: 0 would stop every hook at once"),
    ] {
        s.profile("home", &text.replace("\"1s\"", bad));
        let out = s.run(&["-P", "home", "snapshots"]);
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        assert!(stderr(&out).contains(says), "{}", stderr(&out));
    }
}

/// `tests/servers/receiver.py` on a free port, killed when dropped.
struct Receiver {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Receiver {
    fn start(python: &str, dir: &Path, args: &[&str]) -> Self {
        let port_file = dir.join(format!("port-{}", rand::random::<u32>()));
        let log = dir.join(format!("received-{}.jsonl", rand::random::<u32>()));
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/servers/receiver.py");
        let child = Command::new(python)
            .arg(script)
            .arg(&port_file)
            .arg(&log)
            .args(args)
            .spawn()
            .expect("start the receiver");
        let start = Instant::now();
        while !port_file.exists() {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "the receiver did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let port = fs::read_to_string(&port_file)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        Receiver { child, port, log }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn received(&self) -> Vec<Value> {
        fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_notification_says_how_each_command_ended() {
    let s = Setup::new();
    s.home("");
    let rx = Receiver::start("python3", s.dir.path(), &[]);
    s.ok(&["-P", "home", "init"]);
    s.ok(&["-P", "home", "backup", "--notify-url", &rx.url("/hook")]);
    let got = rx.received();
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0]["method"], "POST");
    assert_eq!(got[0]["content_type"], "application/json");
    let doc: Value = serde_json::from_str(got[0]["body"].as_str().unwrap()).unwrap();
    assert_eq!(doc["command"], "backup");
    assert_eq!(doc["exit_code"], 0);
    assert_eq!(doc["ok"], true);
    assert_eq!(doc["repository"], s.s("repo").as_str());
    assert_eq!(doc["profile"], "home");
    assert_eq!(doc["summary"]["summary"]["files_new"], 2);
    assert!(doc["duration_seconds"].as_f64().unwrap() > 0.0);
    assert!(doc["host"].as_str().is_some_and(|h| !h.is_empty()));
    chrono::DateTime::parse_from_rfc3339(doc["started"].as_str().unwrap()).unwrap();

    // An early failure is notified too (wrong password: exit 12), from the environment's URL.
    fs::write(s.path("pw"), "wrong").unwrap();
    let out = s
        .cmd()
        .args(["-P", "home", "backup"])
        .env("FLOE_NOTIFY_URL", rx.url("/hook"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(12));
    let doc: Value = serde_json::from_str(rx.received()[1]["body"].as_str().unwrap()).unwrap();
    assert_eq!(
        (doc["exit_code"].as_i64(), doc["ok"].as_bool()),
        (Some(12), Some(false))
    );
    assert!(
        doc["error"].as_str().unwrap().contains("wrong password"),
        "{doc}"
    );
    assert!(doc.get("summary").is_none());

    // A typo in a cron line is notified too: exit 2.
    let out = s
        .cmd()
        .args(["-P", "home", "backup", "--tga", "x"])
        .env("FLOE_NOTIFY_URL", rx.url("/hook"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let doc: Value = serde_json::from_str(rx.received()[2]["body"].as_str().unwrap()).unwrap();
    assert_eq!(doc["exit_code"], 2);
    assert!(doc["error"].as_str().unwrap().contains("--tga"), "{doc}");
}

#[test]
fn a_notification_is_retried_never_holds_credentials_and_never_changes_the_exit_code() {
    let s = Setup::new();
    s.home("");
    s.ok(&["-P", "home", "init"]);
    // Two failures, then delivered.
    let rx = Receiver::start("python3", s.dir.path(), &["--fail", "2"]);
    s.ok(&["-P", "home", "check", "--notify-url", &rx.url("/n")]);
    let got = rx.received();
    let answers: Vec<i64> = got
        .iter()
        .map(|r| r["answered"].as_i64().unwrap())
        .collect();
    assert_eq!(answers, [500, 500, 200]);

    // A repository URL with credentials in it is named without them.
    let rx = Receiver::start("python3", s.dir.path(), &[]);
    let out = s.run(&[
        "-P",
        "home",
        "-r",
        "s3:http://keyid:topsecret@127.0.0.1:9/bucket/p",
        "check",
        "--s3-attempts",
        "1",
        "--notify-url",
        &rx.url("/n"),
    ]);
    assert_ne!(out.status.code(), Some(0));
    let body = rx.received()[0]["body"].as_str().unwrap().to_string();
    assert!(
        !body.contains("topsecret") && !body.contains("keyid"),
        "{body}"
    );
    assert!(body.contains("s3:http://127.0.0.1:9/bucket/p"), "{body}");

    // Nobody listening: a warning, and the command's own exit code.
    let out = s.run(&[
        "-P",
        "home",
        "check",
        "--notify-url",
        "http://127.0.0.1:9/n",
    ]);
    assert_eq!(out.status.code(), Some(0));
    let err = stderr(&out);
    assert!(
        err.contains(
            "warning: notification to http://127.0.0.1:9/n not delivered after 3 attempts"
        ),
        "{err}"
    );
}

/// The test environment's Python with the Prometheus client, or `None` (the test then skips).
fn prometheus_python(test: &str) -> Option<String> {
    if let Ok(p) = std::env::var("FLOE_TEST_PYTHON") {
        return Some(p);
    }
    let required = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
        || std::env::var("FLOE_TEST_REQUIRE_S3").is_ok_and(|v| v == "1");
    assert!(
        !required,
        "{test}: FLOE_TEST_PYTHON is not set: run under tests/servers/with-s3-servers.sh"
    );
    eprintln!("skipping {test}: FLOE_TEST_PYTHON (the Prometheus client) is not set; run under tests/servers/with-s3-servers.sh");
    None
}

/// The samples of a metrics file, as the Prometheus client's parser reads them.
fn parse_metrics(python: &str, file: &Path) -> Vec<(String, Value, f64)> {
    parse_exposition(python, file, false)
}

fn parse_exposition(python: &str, file: &Path, any_type: bool) -> Vec<(String, Value, f64)> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/servers/parse_metrics.py");
    let mut cmd = Command::new(python);
    cmd.arg(script).arg(file);
    if any_type {
        cmd.arg("--any-type");
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "the parser rejects the file: {}",
        stderr(&out)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap().to_string(),
                s["labels"].clone(),
                s["value"].as_f64().unwrap(),
            )
        })
        .collect()
}

fn sample(samples: &[(String, Value, f64)], name: &str, command: &str) -> Option<f64> {
    samples
        .iter()
        .find(|(n, l, _)| n == name && l["command"] == command)
        .map(|s| s.2)
}

#[test]
fn metrics_are_written_for_node_exporter_and_pushed_to_a_gateway() {
    let Some(python) =
        prometheus_python("metrics_are_written_for_node_exporter_and_pushed_to_a_gateway")
    else {
        return;
    };
    let s = Setup::new();
    let prom = s.path("textfile/floe.prom");
    fs::create_dir_all(prom.parent().unwrap()).unwrap();
    s.home(&format!("metrics-file = {:?}", prom.display().to_string()));
    s.ok(&["-P", "home", "init"]);
    s.ok(&["-P", "home", "backup"]);
    let first = parse_metrics(&python, &prom);
    let success = sample(&first, "floe_last_success_timestamp_seconds", "backup").unwrap();
    let now = chrono::Utc::now().timestamp() as f64;
    assert!((now - success).abs() < 60.0, "{success} vs {now}");
    assert_eq!(sample(&first, "floe_backup_files_new", "backup"), Some(2.0));
    assert_eq!(sample(&first, "floe_last_exit_code", "backup"), Some(0.0));
    let labels = &first
        .iter()
        .find(|s| s.0 == "floe_last_exit_code")
        .unwrap()
        .1;
    assert_eq!(labels["repository"], s.s("repo").as_str());
    assert!(labels["host"].as_str().is_some_and(|h| !h.is_empty()));

    // A check adds its lines and keeps the backup's; a failed backup keeps its last success.
    s.ok(&["-P", "home", "check"]);
    fs::write(s.path("pw"), "wrong").unwrap();
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(s.run(&["-P", "home", "backup"]).status.code(), Some(12));
    let later = parse_metrics(&python, &prom);
    assert_eq!(sample(&later, "floe_check_errors", "check"), Some(0.0));
    assert_eq!(sample(&later, "floe_last_exit_code", "backup"), Some(12.0));
    assert_eq!(
        sample(&later, "floe_last_success_timestamp_seconds", "backup"),
        Some(success)
    );
    assert!(sample(&later, "floe_last_run_timestamp_seconds", "backup").unwrap() > success);
    assert_eq!(
        fs::metadata(&prom).unwrap().permissions().mode() & 0o777,
        0o644
    );
    let leftovers: Vec<_> = fs::read_dir(prom.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".prom"))
        .collect();
    assert_eq!(leftovers, ["floe.prom"], "only the file ends in .prom");

    // The same lines to a pushgateway, parsed on arrival by the same parser.
    fs::write(s.path("pw"), PASSWORD).unwrap();
    let rx = Receiver::start(&python, s.dir.path(), &[]);
    s.ok(&[
        "-P",
        "home",
        "backup",
        "--metrics-push",
        &rx.url("/metrics/job/floe"),
    ]);
    let got = rx.received();
    assert_eq!(got.len(), 1);
    let path = got[0]["path"].as_str().unwrap();
    assert!(
        path.starts_with("/metrics/job/floe/command@base64/YmFja3Vw/host@base64/"),
        "{path}"
    );
    let pushed: Vec<(String, Value, f64)> = got[0]["samples"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap().to_string(),
                s["labels"].clone(),
                s["value"].as_f64().unwrap(),
            )
        })
        .collect();
    assert_eq!(sample(&pushed, "floe_last_exit_code", "backup"), Some(0.0));
    assert_eq!(
        sample(&pushed, "floe_backup_files_unchanged", "backup"),
        Some(2.0)
    );
    assert!(
        pushed.iter().all(|s| s.1["command"] == "backup"),
        "only this run's samples"
    );
}

#[test]
fn schedule_prints_units_and_a_crontab_line_that_run_the_job() {
    let s = Setup::new();
    s.home("");
    s.ok(&["-P", "home", "init"]);
    let units = s.ok(&[
        "-P", "home", "schedule", "--print", "systemd", "--at", "02:30",
    ]);
    let file = fs::canonicalize(s.path("cfg/floe/home.toml")).unwrap();
    let exec = format!(
        "ExecStart={} -P {} job",
        env!("CARGO_BIN_EXE_floe"),
        file.display()
    );
    for want in [
        "# floe-home.service",
        "Type=oneshot",
        exec.as_str(),
        "Nice=10",
        "IOSchedulingClass=idle",
        "# floe-home.timer",
        "OnCalendar=*-*-* 02:30:00",
        "Persistent=true",
        "RandomizedDelaySec=",
        "WantedBy=timers.target",
    ] {
        assert!(
            units.lines().any(|l| l.starts_with(want)),
            "no {want} in\n{units}"
        );
    }
    let timer = s.ok(&[
        "-P",
        "home",
        "schedule",
        "--print",
        "systemd-timer",
        "--on-calendar",
        "hourly",
    ]);
    assert!(
        timer.contains("OnCalendar=hourly") && !timer.contains("ExecStart"),
        "{timer}"
    );

    // The crontab line's command runs the job.
    let cron = s.ok(&["-P", "home", "schedule", "--print", "cron", "--at", "04:05"]);
    let fields: Vec<&str> = cron.trim().splitn(6, ' ').collect();
    assert_eq!(&fields[..5], ["5", "4", "*", "*", "*"], "{cron}");
    let command = fields[5].split(" >>").next().unwrap();
    let out = Command::new("sh")
        .arg("-c")
        .arg(command)
        .env("PATH", "/usr/bin:/bin")
        .output()
        .unwrap();
    assert!(out.status.success(), "{command}: {}", stderr(&out));
    let snaps: Value = serde_json::from_str(&s.ok(&["-P", "home", "snapshots", "--json"])).unwrap();
    assert_eq!(snaps.as_array().unwrap().len(), 1);

    let out = s.run(&["schedule", "--print", "cron"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("give -P NAME"), "{}", stderr(&out));
}

/// The ```toml blocks of a document.
fn toml_blocks(doc: &str) -> Vec<String> {
    let text = fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(doc)).unwrap();
    text.split("```toml\n")
        .skip(1)
        .map(|b| b.split("```").next().unwrap().to_string())
        .collect()
}

#[test]
fn the_profiles_of_the_readme_and_the_guide_are_valid_as_written() {
    let s = Setup::new();
    // The guide's profile inherits from a base that it describes but does not show.
    s.profile("base", "");
    let blocks: Vec<String> = ["README.md", "docs/unattended.md"]
        .iter()
        .flat_map(|d| toml_blocks(d))
        .collect();
    assert!(blocks.len() >= 3, "{blocks:?}");
    for (i, block) in blocks.iter().enumerate() {
        let p = s.profile(&format!("doc{i}"), block);
        let out = s.run(&["-P", p.to_str().unwrap(), "config"]);
        assert!(out.status.success(), "{block}\n{}", stderr(&out));
    }
    // The README's profile, as `config` reads it.
    let readme = s.path("cfg/floe/doc0.toml");
    let config = s.ok(&["-P", readme.to_str().unwrap(), "config"]);
    for want in [
        "keep-daily = 7",
        "keep-weekly = 4",
        "keep-monthly = 12",
        "prune = true",
    ] {
        assert!(config.contains(want), "{config}");
    }
}

/// Debian's Prometheus pushgateway on a free port, stopped when dropped.
struct Pushgateway {
    child: Child,
    port: u16,
}

impl Pushgateway {
    fn start(test: &str) -> Option<Self> {
        let found = Command::new("sh")
            .args(["-c", "command -v prometheus-pushgateway"])
            .output()
            .is_ok_and(|o| o.status.success());
        if !found {
            let required = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
            assert!(
                !required,
                "{test}: prometheus-pushgateway is not installed (.ci/run installs it)"
            );
            eprintln!("skipping {test}: prometheus-pushgateway is not installed (apt-get install prometheus-pushgateway)");
            return None;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("prometheus-pushgateway")
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "the pushgateway did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(Pushgateway { child, port })
    }

    /// The gateway's /metrics page.
    fn page(&self) -> String {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        write!(s, "GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
        let mut text = String::new();
        s.read_to_string(&mut text).unwrap();
        text.split_once("\r\n\r\n")
            .map(|x| x.1.to_string())
            .unwrap_or_default()
    }
}

impl Drop for Pushgateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_pushgateway_keeps_each_commands_figures_and_the_last_success() {
    let test = "a_pushgateway_keeps_each_commands_figures_and_the_last_success";
    let Some(python) = prometheus_python(test) else {
        return;
    };
    let Some(gw) = Pushgateway::start(test) else {
        return;
    };
    let s = Setup::new();
    s.home(&format!(
        "metrics-push = \"http://127.0.0.1:{}/metrics/job/floe\"",
        gw.port
    ));
    s.ok(&["-P", "home", "init"]);
    s.ok(&["-P", "home", "backup"]);
    s.ok(&["-P", "home", "check"]);
    let samples = || {
        let file = s.path("page.prom");
        fs::write(&file, gw.page()).unwrap();
        parse_exposition(&python, &file, true)
    };
    let first = samples();
    let success = sample(&first, "floe_last_success_timestamp_seconds", "backup").unwrap();
    assert_eq!(
        sample(&first, "floe_check_errors", "check"),
        Some(0.0),
        "the check's group"
    );
    assert_eq!(
        sample(&first, "floe_backup_files_new", "backup"),
        Some(2.0),
        "the backup's group"
    );

    fs::write(s.path("pw"), "wrong").unwrap();
    assert_eq!(s.run(&["-P", "home", "backup"]).status.code(), Some(12));
    let later = samples();
    assert_eq!(sample(&later, "floe_last_exit_code", "backup"), Some(12.0));
    assert_eq!(
        sample(&later, "floe_last_success_timestamp_seconds", "backup"),
        Some(success)
    );
    assert_eq!(sample(&later, "floe_check_errors", "check"), Some(0.0));
}

#[test]
fn a_conflict_in_a_steps_options_stops_the_job_before_anything_runs() {
    let s = Setup::new();
    s.home("");
    s.ok(&["-P", "home", "init"]);
    let text = fs::read_to_string(s.path("cfg/floe/home.toml")).unwrap();
    s.profile(
        "home",
        &(text.clone() + "[check]\nread-data = true\nread-data-subset = \"5%\"\n"),
    );
    let out = s.run(&["-P", "home", "job"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("home.toml: the check step:") && err.contains("--read-data"),
        "{err}"
    );
    assert!(
        !s.path("repo/snapshots").read_dir().unwrap().any(|_| true),
        "no backup ran"
    );

    // A destination that does not exist is found out first too.
    s.profile("home", &text);
    s.profile(
        "home2",
        "inherit = \"home\"\n[copy]\ndestinations = [\"nowhere\"]\n",
    );
    let out = s.run(&["-P", "home2", "job"]);
    assert!(
        stderr(&out).contains("[copy] destination \"nowhere\""),
        "{}",
        stderr(&out)
    );
    assert!(
        !s.path("repo/snapshots").read_dir().unwrap().any(|_| true),
        "no backup ran"
    );
}

#[test]
fn a_profile_backs_up_a_commands_output_whose_arguments_start_with_a_dash() {
    let s = Setup::new();
    s.profile(
        "dump",
        &format!(
            "repository = {:?}\npassword-file = {:?}\n[backup]\nstdin-from-command = true\n\
             stdin-filename = \"db.sql\"\nsources = [\"sh\", \"-c\", \"echo dumped\"]\n",
            s.s("repo"),
            s.s("pw")
        ),
    );
    s.ok(&["-P", "dump", "init"]);
    s.ok(&["-P", "dump", "backup"]);
    assert_eq!(
        s.ok(&["-P", "dump", "dump", "latest", "/db.sql"]),
        "dumped\n"
    );
}
