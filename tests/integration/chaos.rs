//! Chaos: commands killed with SIGKILL at random moments, a disk that fills up, a store that
//! fails requests at random. After each blow the repository must check clean; at the end every
//! snapshot left must restore byte for byte.
//!
//! `FLOE_CHAOS_KILLS` sets how many kills the kill test deals (default 15, a short run for CI; the
//! long run is `FLOE_CHAOS_KILLS=150 cargo test --all-features --test integration chaos --
//! --nocapture`), and `FLOE_CHAOS_SEED` (each run prints its own) draws the same delays and
//! faults again; where they land still depends on how fast the machine runs.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};

use crate::common::*;

/// Files in each generation of the source tree.
const FILES: u64 = 24;

/// Writes generation `g` of the source tree into `src`: most files are shared with other
/// generations (deduplicated), a quarter differ, and `gen` names the generation.
fn write_generation(src: &Path, g: u64) {
    let _ = fs::remove_dir_all(src);
    fs::create_dir_all(src.join("sub")).unwrap();
    for (name, content) in generation(g) {
        fs::write(src.join(name), content).unwrap();
    }
}

/// The files of generation `g`, by path relative to the source.
fn generation(g: u64) -> Vec<(String, Vec<u8>)> {
    let mut files = vec![("gen".to_string(), g.to_string().into_bytes())];
    for i in 0..FILES {
        let version = if i % 4 == g % 4 { g } else { 0 };
        let len = 150_000 + i as usize * 25_000;
        let folder = if i % 3 == 0 { "sub/" } else { "" };
        files.push((
            format!("{folder}f{i}"),
            random_bytes(i * 1_000_003 + version, len),
        ));
    }
    files
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The commands the kill test deals blows to.
#[derive(Clone, Copy, Debug)]
enum Victim {
    Backup,
    Forget,
    Prune,
    RepairIndex,
    Copy,
}

const VICTIMS: [Victim; 5] = [
    Victim::Backup,
    Victim::Forget,
    Victim::Prune,
    Victim::RepairIndex,
    Victim::Copy,
];

struct Chaos {
    env: Env,
    copy: Env,
    src: std::path::PathBuf,
    next_generation: u64,
}

impl Chaos {
    fn new() -> Self {
        let env = Env::init();
        let copy = Env::init();
        let src = env.path("src");
        let mut chaos = Self {
            env,
            copy,
            src,
            next_generation: 1,
        };
        // Something to forget, prune, repair and copy from the first blow on.
        for _ in 0..3 {
            chaos.spawn(Victim::Backup).wait().unwrap();
        }
        chaos
    }

    /// Starts `victim`; a backup first writes the next generation of the source.
    fn spawn(&mut self, victim: Victim) -> Child {
        let mut cmd = match victim {
            Victim::Copy => {
                let mut c = self.copy.cmd();
                c.arg("copy").arg("--from-repo").arg(&self.env.repo);
                c.env("FLOE_FROM_PASSWORD", PASSWORD);
                c
            }
            _ => self.env.cmd(),
        };
        match victim {
            Victim::Backup => {
                let g = self.next_generation;
                self.next_generation += 1;
                write_generation(&self.src, g);
                cmd.args(["backup", "--tag", &format!("gen{g}")])
                    .arg(&self.src)
            }
            Victim::Forget => cmd.args(["forget", "--keep-last", "3"]),
            // Repacking every partly used pack, so that a kill can land in the middle of it.
            Victim::Prune => cmd.args(["prune", "--max-unused", "0"]),
            Victim::RepairIndex => cmd.args(["repair", "index"]),
            Victim::Copy => &mut cmd,
        };
        cmd.stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap()
    }

    /// How long `victim` takes when left alone.
    fn time(&mut self, victim: Victim) -> Duration {
        let started = Instant::now();
        let status = self.spawn(victim).wait().unwrap();
        assert!(status.success(), "{victim:?} failed undisturbed");
        started.elapsed()
    }

    /// Both repositories pass the structure check.
    fn assert_checks(&self, after: &str) {
        for (name, env) in [("source", &self.env), ("copy", &self.copy)] {
            let out = env.run(&["check"]);
            assert!(
                out.status.success(),
                "{after}: check of the {name} failed:\n{}{}",
                String::from_utf8_lossy(&out.stdout),
                stderr(&out)
            );
        }
    }
}

/// Every snapshot of `env` restores to exactly the generation its tag names.
fn assert_snapshots_exact(env: &Env, label: &str) -> usize {
    let snaps: serde_json::Value = serde_json::from_str(&env.ok(&["snapshots", "--json"])).unwrap();
    let snaps = snaps.as_array().unwrap();
    for (n, s) in snaps.iter().enumerate() {
        let id = s["id"].as_str().unwrap();
        let tag = s["tags"][0].as_str().unwrap();
        let g: u64 = tag.trim_start_matches("gen").parse().unwrap();
        let target = env.restore(id, &format!("{label}-{n}"));
        let src = Path::new(s["paths"][0].as_str().unwrap());
        let root = restored(&target, src);
        let want = generation(g);
        for (name, content) in &want {
            let got = fs::read(root.join(name)).unwrap_or_default();
            assert!(
                got == *content,
                "{label}: snapshot {id} ({tag}): {name} differs"
            );
        }
        let count = dir_contents(&root).len();
        assert_eq!(count, want.len(), "{label}: snapshot {id} has extra files");
        fs::remove_dir_all(&target).unwrap();
    }
    snaps.len()
}

#[test]
fn commands_killed_at_random_moments_lose_nothing() {
    let kills = env_number("FLOE_CHAOS_KILLS", 15);
    let seed = env_number("FLOE_CHAOS_SEED", rand::random::<u32>() as u64);
    eprintln!("chaos: {kills} kills, FLOE_CHAOS_SEED={seed}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut chaos = Chaos::new();
    // How long each command runs: a moving average of the runs that ended before their blow.
    let mut took: Vec<Duration> = VICTIMS.iter().map(|v| chaos.time(*v)).collect();
    let mut landed = [0u64; 5];
    let mut round = 0;
    // Rounds until `kills` blows landed on a running process (a command may end first).
    while landed.iter().sum::<u64>() < kills {
        assert!(round < kills * 4, "too few kills landed: {landed:?}");
        let which = round as usize % VICTIMS.len();
        let victim = VICTIMS[which];
        // Anywhere from the start to a little past the usual end, where snapshots and index
        // files are written and deletions happen.
        let window = took[which].as_millis() as u64 * 5 / 4;
        let delay = Duration::from_millis(rng.gen_range(0..=window));
        let started = Instant::now();
        let mut child = chaos.spawn(victim);
        let ended = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break Some(status);
            }
            if started.elapsed() >= delay {
                break None;
            }
            std::thread::sleep(Duration::from_millis(2));
        };
        match ended {
            Some(status) => {
                assert!(
                    status.success(),
                    "round {round}: {victim:?} failed undisturbed"
                );
                took[which] = (took[which] + started.elapsed()) / 2;
            }
            None => {
                let _ = child.kill();
                child.wait().unwrap();
                landed[which] += 1;
            }
        }
        chaos.assert_checks(&format!(
            "round {round} (seed {seed}): {victim:?} killed after {delay:?}"
        ));
        round += 1;
    }
    eprintln!(
        "chaos: kills that landed while running: {}",
        VICTIMS
            .iter()
            .zip(landed)
            .map(|(v, n)| format!("{v:?} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    // Everything finishes undisturbed afterwards, and loses nothing. Packs a kill cut short are
    // left as temporary files; made older than prune's grace period, prune removes them.
    let cut_short = temporary_files(&chaos.env.repo);
    for f in &cut_short {
        let two_days_ago = std::time::SystemTime::now() - Duration::from_secs(2 * 86400);
        fs::File::options()
            .write(true)
            .open(f)
            .and_then(|f| f.set_modified(two_days_ago))
            .unwrap();
    }
    for victim in VICTIMS {
        chaos.time(victim);
    }
    assert_eq!(temporary_files(&chaos.env.repo), Vec::<PathBuf>::new());
    eprintln!(
        "chaos: {} unfinished files removed by prune",
        cut_short.len()
    );
    for env in [&chaos.env, &chaos.copy] {
        env.ok(&["check", "--read-data"]);
    }
    let kept = assert_snapshots_exact(&chaos.env, "source");
    let copied = assert_snapshots_exact(&chaos.copy, "copy");
    eprintln!("chaos: {kept} snapshots restored exactly, {copied} from the copy");
    assert!(kept >= 3 && copied >= kept);
}

/// The temporary files anywhere in a local repository.
fn temporary_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).unwrap().map(Result::unwrap) {
        let path = entry.path();
        if entry.file_type().unwrap().is_dir() {
            out.extend(temporary_files(&path));
        } else if entry.file_name().to_string_lossy().starts_with(".tmp-") {
            out.push(path);
        }
    }
    out
}

/// A tmpfs of `mib` MiB mounted at `dir`, unmounted on drop; `None` where this process may not
/// mount (not root, or a container without the right), which CI must not be.
fn tmpfs(dir: &Path, mib: u32) -> Option<Mounted> {
    fs::create_dir_all(dir).unwrap();
    let mounted = is_root()
        && Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs"])
            .arg(dir)
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
    if !mounted {
        assert!(
            std::env::var_os("CI").is_none(),
            "the full-disk test needs to mount a tmpfs (as root), and CI runs it"
        );
        eprintln!("skipped: mounting a small tmpfs needs root");
        return None;
    }
    Some(Mounted(dir.to_path_buf()))
}

#[test]
fn a_full_disk_fails_clearly_and_loses_nothing() {
    let mut env = Env::new();
    let Some(disk) = tmpfs(&env.path("disk"), 32) else {
        return;
    };
    env.repo = disk.0.join("repo");
    // Packs of 1 MiB: the failed backup leaves many whole packs behind, not one that never was.
    env.ok(&["init", "--pack-size-mib", "1"]);
    let src = env.path("src");
    write_generation(&src, 1);
    env.ok(&["backup".as_ref(), src.as_os_str()]);
    // Something else fills part of the disk: about 13 MB stay free, and 15 MB of random bytes
    // (which do not compress) cannot fit.
    let filler = disk.0.join("filler");
    fs::write(&filler, random_bytes(800, 10_000_000)).unwrap();
    let big = env.path("big");
    fs::create_dir_all(&big).unwrap();
    for i in 0..3 {
        fs::write(big.join(format!("b{i}")), random_bytes(900 + i, 5_000_000)).unwrap();
    }
    let out = env.run(&["backup".as_ref(), big.as_os_str()]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("No space left on device"),
        "the error says the disk is full: {err}"
    );
    env.ok(&["check", "--read-data"]);
    assert_restores_generation(&env, "latest", &src, 1);

    // With the other files gone, 23 MB are free less what the failed backup stored: the same
    // backup fits only because it reuses that data instead of sending it again.
    fs::remove_file(&filler).unwrap();
    let summary = env.backup_json(&[big.as_os_str()]);
    let added = summary["summary"]["bytes_added"].as_u64().unwrap();
    assert!(
        added < 7_000_000,
        "{added} bytes added: the failed backup's data was not reused"
    );
    env.ok(&["check", "--read-data"]);
    let target = env.restore("latest", "big-restored");
    assert!(dir_contents(&restored(&target, &big)) == dir_contents(&big));

    // A restore into a full disk fails clearly and leaves no file that looks complete.
    let target_disk = tmpfs(&env.path("target"), 8).expect("mounted once already");
    let out = env.run(&[
        "restore".as_ref(),
        "latest".as_ref(),
        "--target".as_ref(),
        target_disk.0.as_os_str(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("full") || stderr(&out).contains("No space left"),
        "{}",
        stderr(&out)
    );
    // Files still being written carry the ".floe-part." prefix; a file at its own name is whole.
    let mut whole = 0;
    for (path, content) in dir_contents(&target_disk.0) {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with(".floe-part.") {
            continue;
        }
        assert!(
            fs::read(big.join(&name)).ok().as_deref() == Some(&content[..]),
            "{} is at its final name but is not the original",
            path.display()
        );
        whole += 1;
    }
    assert!(whole < 3, "{whole} files restored into 8 MiB");
}

/// Snapshot `spec` of `src` restores to exactly generation `g`.
fn assert_restores_generation(env: &Env, spec: &str, src: &Path, g: u64) {
    let target = env.restore(spec, "generation");
    let root = restored(&target, src);
    for (name, content) in generation(g) {
        assert!(
            fs::read(root.join(&name)).unwrap() == content,
            "{name} differs"
        );
    }
    fs::remove_dir_all(&target).unwrap();
}

#[test]
fn a_store_failing_one_request_in_twenty_loses_nothing() {
    let Some(s) = crate::s3::garage("a_store_failing_one_request_in_twenty_loses_nothing") else {
        return;
    };
    let seed = env_number("FLOE_CHAOS_SEED", rand::random::<u32>() as u64);
    eprintln!("flaky store: FLOE_CHAOS_SEED={seed}");
    let scratch = tempfile::tempdir().unwrap();
    let proxy =
        crate::s3::FlakyProxy::random(&s.endpoint, scratch.path().join("stats.json"), 0.05, seed);
    let flaky = crate::s3::Server {
        endpoint: proxy.endpoint.clone(),
        ..s.clone()
    };
    let env = flaky.env(&flaky.url("chaos"));
    // Small packs: more requests, so more faults, in a short run.
    env.ok(&["init", "--pack-size-mib", "1"]);
    let src = env.path("src");
    for g in 1..=3 {
        write_generation(&src, g);
        env.ok(&["backup", "--tag", &format!("gen{g}"), src.to_str().unwrap()]);
    }
    env.ok(&["forget", "--keep-last", "2"]);
    env.ok(&["prune", "--max-unused", "0"]);
    let out = env.ok(&["check", "--read-data"]);
    assert!(out.contains(" 0 error(s)"), "{out}");
    let kept = assert_snapshots_exact(&env, "flaky");
    assert_eq!(kept, 2);
    let stats = proxy.stats();
    eprintln!("flaky store (seed {seed}): {stats}");
    let requests = stats["requests"].as_u64().unwrap();
    let faults: u64 = [
        "slowdown",
        "internal_error",
        "dropped",
        "cut_body",
        "slow_body",
    ]
    .iter()
    .map(|f| stats[f].as_u64().unwrap())
    .sum();
    // About one in twenty, with room for chance.
    assert!(
        requests > 100 && faults * 100 > requests && faults * 100 < requests * 10,
        "{faults} faults in {requests} requests: {stats}"
    );
}
