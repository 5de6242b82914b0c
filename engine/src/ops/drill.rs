//! Proof that a restore works (`floe drill`): a random sample of files from the latest snapshot
//! of each group (host and paths) is restored into a scratch folder and read back, and the time
//! it took gives an estimate of what restoring the whole snapshots would take and cost.
//!
//! Two steps, as with restore: [`plan`] walks the snapshots' trees (no data pack is read), finds
//! which files need archived packs, and draws the sample; [`run`] restores each snapshot's
//! sample and judges every sampled file. The sample is a pure function of the files' sizes, the
//! amount asked for and a seed ([`sample`]), so that a drill that failed can be replayed on the
//! same files. Operations do not call one another, so [`run`] does not restore by itself: the
//! caller passes the function that restores a snapshot's sample with verification (the CLI
//! passes the engine's restore with its `verify` option), and `run` checks that every sampled
//! file came back verified.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::{DateTime, FixedOffset};
use serde::Serialize;

use crate::cold::thaw::{PackStatus, ThawPlan};
use crate::cold::tiers::{estimate, Prices};
use crate::error::{Error, Object, Result};
use crate::format::snapshot::{Snapshot, SnapshotEntry};
use crate::format::tree::NodeKind;
use crate::id::{BlobId, PackId, SnapshotId};
use crate::repo::index::Index;
use crate::repo::repository::Repository;
use crate::storage::{StorageClass, ThawTier};

/// Files a drill samples from each group when not told otherwise.
pub const DEFAULT_FILES: usize = 10;

/// How much a drill samples from the latest snapshot of each group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SampleSize {
    /// This many files (every file when the snapshot has fewer).
    Files(usize),
    /// Files until their sizes add up to this many bytes: files are taken in random order,
    /// those that would go past the total are passed over, and when every file is larger than
    /// the total the smallest one is taken.
    Bytes(u64),
}

impl Default for SampleSize {
    fn default() -> Self {
        SampleSize::Files(DEFAULT_FILES)
    }
}

/// How to drill.
#[derive(Debug, Clone)]
pub struct DrillOptions {
    /// How much to sample from each group.
    pub size: SampleSize,
    /// The sample's seed; `None`: a random one, which the plan and the report give.
    pub seed: Option<u64>,
    /// Sample files whose data packs are archived too (the caller thaws the sample's packs);
    /// otherwise only files whose packs are readable now are sampled.
    pub thaw: bool,
    /// The retrieval tier the estimate of a full restore prices archived packs with.
    pub tier: ThawTier,
    /// The prices of that estimate.
    pub prices: Prices,
}

impl Default for DrillOptions {
    fn default() -> Self {
        DrillOptions {
            size: SampleSize::default(),
            seed: None,
            thaw: false,
            tier: ThawTier::Standard,
            prices: Prices::default(),
        }
    }
}

/// A small, fixed generator (SplitMix64): the same seed gives the same sample in every build,
/// which a library generator whose algorithm may change between versions would not promise.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number below `n` (`n` > 0), by multiplying rather than by a remainder.
    fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }
}

/// Draws a sample from files of these `sizes`: the positions of the files chosen, in
/// ascending order. A pure function: the same sizes, amount and seed give the same sample.
pub fn sample(sizes: &[u64], amount: SampleSize, seed: u64) -> Vec<usize> {
    let mut rng = SplitMix64(seed);
    let mut order: Vec<usize> = (0..sizes.len()).collect();
    let mut picked = Vec::new();
    let mut total = 0u64;
    for i in 0..order.len() {
        let done = match amount {
            SampleSize::Files(n) => picked.len() >= n,
            SampleSize::Bytes(b) => total >= b,
        };
        if done {
            break;
        }
        // One more step of a Fisher-Yates shuffle: order[i] is the next file in random order.
        let j = i + rng.below(order.len() - i);
        order.swap(i, j);
        let k = order[i];
        match amount {
            SampleSize::Files(_) => picked.push(k),
            SampleSize::Bytes(b) => {
                if total.saturating_add(sizes[k]) <= b {
                    total += sizes[k];
                    picked.push(k);
                }
            }
        }
    }
    if let SampleSize::Bytes(b) = amount {
        if picked.is_empty() && b > 0 {
            // Every file is larger than the total asked for: the smallest one stands for them.
            picked.extend((0..sizes.len()).min_by_key(|&k| (sizes[k], k)));
        }
    }
    picked.sort_unstable();
    picked
}

/// The seed of one group's sample: the drill's seed mixed with the group's host and paths, so
/// that each group's sample depends on its own files only, whatever other groups there are.
fn group_seed(seed: u64, host: &str, paths: &[String]) -> u64 {
    let mut h = blake3::Hasher::new();
    h.update(&seed.to_le_bytes());
    h.update(host.as_bytes());
    for p in paths {
        h.update(&[0]);
        h.update(p.as_bytes());
    }
    let mut first = [0u8; 8];
    first.copy_from_slice(&h.finalize().as_bytes()[..8]);
    u64::from_le_bytes(first)
}

/// A regular file of a snapshot that can be sampled.
#[derive(Debug, Clone)]
struct Candidate {
    /// Its path in the snapshot (`/home/ann/notes.txt`).
    path: String,
    size: u64,
    /// The data packs its chunks are in, as the index says.
    packs: Vec<PackId>,
}

/// What a walk of one snapshot's trees found.
#[derive(Default)]
struct Contents {
    /// Regular files whose path a restore filter can name, sorted by path.
    files: Vec<Candidate>,
    /// Regular files in all (hard links once), and their bytes.
    file_count: u64,
    bytes: u64,
    /// Files whose names are not UTF-8 or hold a line break: no filter names them.
    unnamed: u64,
    /// Every data pack the snapshot's files need.
    packs: BTreeSet<PackId>,
}

/// A snapshot path component a restore filter can name exactly.
fn nameable(name: &str) -> bool {
    !name.contains(['\n', '\r'])
}

/// Walks a snapshot's trees (tree packs only) and lists its regular files.
fn contents(repo: &Repository, index: &Index, snap: &SnapshotEntry) -> Result<Contents> {
    let mut out = Contents::default();
    let mut linked: HashSet<(u64, u64)> = HashSet::new();
    // (tree, its path, whether every component so far is nameable)
    let mut stack: Vec<(BlobId, Option<String>)> = vec![(snap.snapshot.tree, Some(String::new()))];
    while let Some((id, dir)) = stack.pop() {
        let tree = repo.load_tree(index, &id)?;
        for node in &tree.nodes {
            let path = match (&dir, std::str::from_utf8(&node.name.0)) {
                (Some(d), Ok(name)) if nameable(name) => Some(format!("{d}/{name}")),
                _ => None,
            };
            match node.kind {
                NodeKind::Dir => {
                    let sub = node
                        .subtree
                        .ok_or_else(|| Error::corrupt(Object::BlobId(id), "folder without tree"))?;
                    stack.push((sub, path));
                }
                NodeKind::File => {
                    let content = node.content.as_deref().unwrap_or_default();
                    let mut packs: Vec<PackId> = content
                        .iter()
                        .filter_map(|b| index.get(b).map(|loc| loc.pack))
                        .collect();
                    packs.sort_unstable();
                    packs.dedup();
                    out.packs.extend(packs.iter().copied());
                    if node.links <= 1 || linked.insert((node.device_id, node.inode)) {
                        out.file_count += 1;
                        out.bytes += node.size;
                    }
                    match path {
                        Some(path) => out.files.push(Candidate {
                            path,
                            size: node.size,
                            packs,
                        }),
                        None => out.unnamed += 1,
                    }
                }
                _ => {}
            }
        }
    }
    out.files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

/// The latest snapshot of each group (host and paths) among `snapshots`, by host and paths.
fn latest_of_groups(snapshots: &[SnapshotEntry]) -> Vec<&SnapshotEntry> {
    let mut latest: BTreeMap<(String, Vec<String>), &SnapshotEntry> = BTreeMap::new();
    for s in snapshots {
        let paths = s.snapshot.paths.iter().map(|p| p.lossy().into_owned());
        let e = latest
            .entry((s.snapshot.hostname.clone(), paths.collect()))
            .or_insert(s);
        if s.snapshot.time > e.snapshot.time {
            *e = s;
        }
    }
    latest.into_values().collect()
}

/// What thawing some archived packs takes and costs.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ColdEstimate {
    /// Archived packs (needing a thaw, or thawing already).
    pub packs: usize,
    /// Their bytes.
    pub bytes: u64,
    /// The longest documented wait of the tier for their classes, in seconds.
    pub wait_seconds: u64,
    /// That wait as the store documents it (`up to 12 hours`), `none` when nothing is archived.
    pub wait: String,
    /// Retrieval cost in USD.
    pub cost_usd: f64,
    /// Classes the tier cannot retrieve from (Expedited from DEEP_ARCHIVE).
    pub unavailable: Vec<String>,
}

impl ColdEstimate {
    fn of(packs: Vec<PackStatus>, tier: ThawTier, prices: &Prices) -> Self {
        let s = ThawPlan { packs }.summary(tier, prices);
        let wait_seconds = s
            .by_class
            .keys()
            .filter_map(|c| estimate(&StorageClass::parse(c), tier))
            .map(|e| e.max_wait.as_secs())
            .max()
            .unwrap_or(0);
        ColdEstimate {
            packs: s.archived_packs + s.in_progress_packs,
            bytes: s.archived_bytes + s.in_progress_bytes,
            wait_seconds,
            wait: s.wait,
            cost_usd: s.cost_usd,
            unavailable: s.unavailable,
        }
    }
}

/// One group's part of a drill.
#[derive(Debug, Clone)]
struct GroupPlan {
    snapshot: SnapshotEntry,
    host: String,
    paths: Vec<String>,
    files: u64,
    bytes: u64,
    sample: Vec<Candidate>,
    left_out_cold: u64,
    left_out_unnamed: u64,
    cold: ColdEstimate,
}

/// A drill worked out, not yet run: the sample of each group and what a full restore needs.
#[derive(Debug, Clone)]
pub struct DrillPlan {
    seed: u64,
    groups: Vec<GroupPlan>,
}

impl DrillPlan {
    /// The seed the sample was drawn with.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The latest snapshot of each group, by host and paths.
    pub fn snapshots(&self) -> impl Iterator<Item = &SnapshotEntry> {
        self.groups.iter().map(|g| &g.snapshot)
    }

    /// Files sampled, in all groups.
    pub fn files(&self) -> usize {
        self.groups.iter().map(|g| g.sample.len()).sum()
    }

    /// Bytes of the files sampled.
    pub fn bytes(&self) -> u64 {
        self.groups
            .iter()
            .flat_map(|g| &g.sample)
            .map(|c| c.size)
            .sum()
    }

    /// Files left out of the sampling because their data is archived (none with `thaw`).
    pub fn left_out_cold(&self) -> u64 {
        self.groups.iter().map(|g| g.left_out_cold).sum()
    }

    /// The data packs the sample's files are in: those to thaw, with `thaw`.
    pub fn needed_packs(&self) -> BTreeSet<PackId> {
        self.groups
            .iter()
            .flat_map(|g| &g.sample)
            .flat_map(|c| c.packs.iter().copied())
            .collect()
    }
}

/// Plans a drill of `snapshots` (those the caller's filters select): the latest snapshot of
/// each group, its files and the state of their data packs (one listing of `data/`, and a HEAD
/// per pack in an archive class), and the sample. Reads tree packs only.
pub fn plan(
    repo: &Repository,
    index: &Index,
    snapshots: &[SnapshotEntry],
    opts: &DrillOptions,
) -> Result<DrillPlan> {
    let seed = opts
        .seed
        .unwrap_or_else(|| u64::from(rand::random::<u32>()));
    let mut walked = Vec::new();
    for s in latest_of_groups(snapshots) {
        walked.push((s, contents(repo, index, s)?));
    }
    let all: BTreeSet<PackId> = walked.iter().flat_map(|(_, c)| c.packs.clone()).collect();
    let status: HashMap<PackId, PackStatus> = ThawPlan::of(repo, &all)?
        .packs
        .into_iter()
        .map(|p| (p.id, p))
        .collect();
    let cold = |p: &PackId| status.get(p).is_some_and(|s| !s.readable());
    let groups = walked
        .into_iter()
        .map(|(s, c)| {
            let host = s.snapshot.hostname.clone();
            let paths: Vec<String> = s
                .snapshot
                .paths
                .iter()
                .map(|p| p.lossy().into_owned())
                .collect();
            let (eligible, archived): (Vec<Candidate>, Vec<Candidate>) = c
                .files
                .into_iter()
                .partition(|f| opts.thaw || !f.packs.iter().any(cold));
            let sizes: Vec<u64> = eligible.iter().map(|f| f.size).collect();
            let picked = sample(&sizes, opts.size, group_seed(seed, &host, &paths));
            let packs = c.packs.iter().filter_map(|p| status.get(p)).cloned();
            GroupPlan {
                snapshot: s.clone(),
                files: c.file_count,
                bytes: c.bytes,
                sample: picked.into_iter().map(|k| eligible[k].clone()).collect(),
                left_out_cold: archived.len() as u64,
                left_out_unnamed: c.unnamed,
                cold: ColdEstimate::of(packs.collect(), opts.tier, &opts.prices),
                host,
                paths,
            }
        })
        .collect();
    Ok(DrillPlan { seed, groups })
}

/// A file of the sample that did not come back as the snapshot has it, as the caller's restore
/// reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SampleFailure {
    /// Where the file was to be restored.
    pub path: PathBuf,
    /// The data pack the failure points at, when it points at one.
    pub pack: Option<PackId>,
    /// What went wrong.
    pub message: String,
}

/// What the caller's restore of one snapshot's sample reported.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SampleRestore {
    /// Files restored, read back and found equal to the snapshot.
    pub files_verified: u64,
    /// Files (or other entries) that failed to restore or to verify.
    pub failures: Vec<SampleFailure>,
}

/// A sampled file.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DrillFile {
    /// The snapshot it is from.
    pub snapshot: SnapshotId,
    /// Its path in the snapshot.
    pub path: String,
    /// Its size.
    pub size: u64,
    /// True when it was restored and read back equal to the snapshot.
    pub ok: bool,
}

/// A sampled file (or an entry on its way) that failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DamagedFile {
    /// The snapshot it is from.
    pub snapshot: SnapshotId,
    /// Its path in the snapshot.
    pub path: String,
    /// The data pack the damage is in, when known.
    pub pack: Option<PackId>,
    /// What went wrong.
    pub message: String,
}

/// One group's results.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DrillGroup {
    /// The group's latest snapshot, the one sampled.
    pub snapshot: SnapshotId,
    /// Its time.
    pub time: DateTime<FixedOffset>,
    /// The group's host.
    pub host: String,
    /// The group's paths.
    pub paths: Vec<String>,
    /// Regular files of the snapshot (hard links once).
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Files sampled.
    pub files_sampled: u64,
    /// Files of the sample verified.
    pub files_verified: u64,
    /// Bytes of those.
    pub bytes_verified: u64,
    /// Files not sampled because their data is archived.
    pub left_out_cold: u64,
    /// Files not sampled because their names are not UTF-8 or hold a line break.
    pub left_out_unnamed: u64,
    /// The archived part of the snapshot's data: what a thaw of it takes and costs.
    pub cold: ColdEstimate,
    /// Seconds a restore of the whole snapshot would take: its bytes at the drill's
    /// throughput, plus the thaw wait. `None` when nothing was restored to measure.
    pub estimated_recovery_seconds: Option<f64>,
}

/// What a drill found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DrillReport {
    /// The seed of the sample (`--seed` replays it).
    pub seed: u64,
    /// The snapshots sampled, one per group.
    pub snapshots: Vec<SnapshotId>,
    /// Files of the sample restored and read back equal to the snapshot.
    pub files_verified: u64,
    /// Their bytes.
    pub bytes_verified: u64,
    /// Every failure, with the pack it points at.
    pub files_damaged: Vec<DamagedFile>,
    /// Files not sampled because their data is archived (none with `thaw`).
    pub left_out_cold: u64,
    /// Seconds the restores and the reading back took.
    pub duration_seconds: f64,
    /// Bytes verified per second.
    pub throughput_bytes_per_second: f64,
    /// Bytes of all the groups' latest snapshots.
    pub total_bytes: u64,
    /// Seconds a restore of all of them would take: their bytes at the measured throughput,
    /// plus the longest thaw wait. `None` when nothing was restored to measure.
    pub estimated_recovery_seconds: Option<f64>,
    /// The longest thaw wait of their archived packs, in seconds.
    pub cold_wait_seconds: u64,
    /// The retrieval cost of their archived packs, in USD.
    pub cold_cost_usd: f64,
    /// Per group.
    pub groups: Vec<DrillGroup>,
    /// Every sampled file.
    pub files: Vec<DrillFile>,
}

impl DrillReport {
    /// True when every sampled file verified.
    pub fn ok(&self) -> bool {
        self.files_damaged.is_empty()
    }
}

/// A filter pattern that matches exactly this snapshot path: glob characters escaped.
fn exact_pattern(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for ch in path.chars() {
        if matches!(ch, '\\' | '*' | '?' | '[' | ']' | '{' | '}') {
            out.push('\\');
        }
        out.push(ch);
    }
    out
}

/// Runs a drill: each group's sample is restored by `restore` (snapshot, filter patterns that
/// select exactly the sampled files, folder to restore into, which must not exist) into a
/// folder of `target` named after the snapshot, then judged: a sampled file is verified when
/// `restore` reports no failure for it and it is in place at its size, and `restore` must have
/// read back every such file (its verification). The folders are left for the caller to
/// remove.
pub fn run<F>(plan: &DrillPlan, target: &Path, mut restore: F) -> Result<DrillReport>
where
    F: FnMut(&Snapshot, Vec<String>, &Path) -> Result<SampleRestore>,
{
    let started = Instant::now();
    let mut judged = Vec::new();
    for g in &plan.groups {
        if g.sample.is_empty() {
            judged.push((Vec::new(), Vec::new()));
            continue;
        }
        let dir = target.join(g.snapshot.id.short());
        if fs::symlink_metadata(&dir).is_ok() {
            return Err(Error::InvalidOptions(format!(
                "{} exists already: a drill restores into a new folder",
                dir.display()
            )));
        }
        let patterns = g.sample.iter().map(|c| exact_pattern(&c.path)).collect();
        let restored = restore(&g.snapshot.snapshot, patterns, &dir)?;
        judged.push(judge(g, &dir, restored)?);
    }
    let elapsed = started.elapsed();
    Ok(report(plan, judged, elapsed))
}

/// The sampled files of one group, each verified or not, and every failure.
fn judge(
    g: &GroupPlan,
    dir: &Path,
    restored: SampleRestore,
) -> Result<(Vec<DrillFile>, Vec<DamagedFile>)> {
    let in_snapshot = |p: &Path| match p.strip_prefix(dir) {
        Ok(rel) => format!("/{}", rel.display()),
        Err(_) => p.display().to_string(),
    };
    let mut damaged: Vec<DamagedFile> = restored
        .failures
        .into_iter()
        .map(|f| DamagedFile {
            snapshot: g.snapshot.id,
            path: in_snapshot(&f.path),
            pack: f.pack,
            message: f.message,
        })
        .collect();
    let failed: HashSet<String> = damaged.iter().map(|d| d.path.clone()).collect();
    let mut files = Vec::new();
    for c in &g.sample {
        let mut ok = !failed.contains(&c.path);
        if ok {
            let at = dir.join(c.path.trim_start_matches('/'));
            let size = fs::symlink_metadata(&at).ok().filter(|m| m.is_file());
            if size.as_ref().map(fs::Metadata::len) != Some(c.size) {
                ok = false;
                damaged.push(DamagedFile {
                    snapshot: g.snapshot.id,
                    path: c.path.clone(),
                    pack: None,
                    message: match size {
                        Some(m) => format!("restored with {} bytes of {}", m.len(), c.size),
                        None => "was not restored".to_string(),
                    },
                });
            }
        }
        files.push(DrillFile {
            snapshot: g.snapshot.id,
            path: c.path.clone(),
            size: c.size,
            ok,
        });
    }
    let in_place = files.iter().filter(|f| f.ok).count() as u64;
    if restored.files_verified < in_place {
        return Err(Error::InvalidOptions(format!(
            "the restore read back {} of the {in_place} sampled files it restored: a drill \
             needs each one verified",
            restored.files_verified
        )));
    }
    Ok((files, damaged))
}

fn report(
    plan: &DrillPlan,
    judged: Vec<(Vec<DrillFile>, Vec<DamagedFile>)>,
    elapsed: Duration,
) -> DrillReport {
    let secs = elapsed.as_secs_f64();
    let verified = |files: &[DrillFile]| -> (u64, u64) {
        files
            .iter()
            .filter(|f| f.ok)
            .fold((0, 0), |(n, b), f| (n + 1, b + f.size))
    };
    let all_files: Vec<DrillFile> = judged.iter().flat_map(|(f, _)| f.clone()).collect();
    let (files_verified, bytes_verified) = verified(&all_files);
    let throughput = if secs > 0.0 {
        bytes_verified as f64 / secs
    } else {
        0.0
    };
    let recovery =
        |bytes: u64, wait: u64| (throughput > 0.0).then(|| bytes as f64 / throughput + wait as f64);
    let mut groups = Vec::new();
    let mut files_damaged = Vec::new();
    for (g, (files, damaged)) in plan.groups.iter().zip(judged) {
        let (n, b) = verified(&files);
        groups.push(DrillGroup {
            snapshot: g.snapshot.id,
            time: g.snapshot.snapshot.time,
            host: g.host.clone(),
            paths: g.paths.clone(),
            files: g.files,
            bytes: g.bytes,
            files_sampled: g.sample.len() as u64,
            files_verified: n,
            bytes_verified: b,
            left_out_cold: g.left_out_cold,
            left_out_unnamed: g.left_out_unnamed,
            cold: g.cold.clone(),
            estimated_recovery_seconds: recovery(g.bytes, g.cold.wait_seconds),
        });
        files_damaged.extend(damaged);
    }
    let total_bytes = plan.groups.iter().map(|g| g.bytes).sum();
    // The groups' thaws run side by side: the longest wait is the wait.
    let cold_wait_seconds = groups
        .iter()
        .map(|g| g.cold.wait_seconds)
        .max()
        .unwrap_or(0);
    DrillReport {
        seed: plan.seed,
        snapshots: plan.groups.iter().map(|g| g.snapshot.id).collect(),
        files_verified,
        bytes_verified,
        files_damaged,
        left_out_cold: plan.left_out_cold(),
        duration_seconds: secs,
        throughput_bytes_per_second: throughput,
        total_bytes,
        estimated_recovery_seconds: recovery(total_bytes, cold_wait_seconds),
        cold_wait_seconds,
        cold_cost_usd: plan.groups.iter().map(|g| g.cold.cost_usd).sum(),
        groups,
        files: all_files,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::restore::{restore, RestoreOptions};
    use crate::testing::{backup_dir, memory_repo, noise, write_files};

    #[test]
    fn a_seed_gives_the_same_sample_and_another_seed_another() {
        let sizes: Vec<u64> = (0..1000).map(|i| i * 7 % 113).collect();
        let a = sample(&sizes, SampleSize::Files(10), 42);
        assert_eq!(a, sample(&sizes, SampleSize::Files(10), 42));
        assert_eq!(a.len(), 10);
        assert!(
            a.windows(2).all(|w| w[0] < w[1]),
            "distinct, in order: {a:?}"
        );
        assert_ne!(a, sample(&sizes, SampleSize::Files(10), 43));
        // Fewer files than asked for: all of them.
        assert_eq!(sample(&sizes[..4], SampleSize::Files(10), 1), [0, 1, 2, 3]);
        assert!(sample(&[], SampleSize::Files(10), 1).is_empty());
    }

    #[test]
    fn a_sample_by_size_stays_within_the_size_asked_for() {
        let sizes: Vec<u64> = (0..500).map(|i| 1000 + i * 37 % 5000).collect();
        for seed in 0..20 {
            let s = sample(&sizes, SampleSize::Bytes(50_000), seed);
            let total: u64 = s.iter().map(|&k| sizes[k]).sum();
            assert!(total <= 50_000 && total > 40_000, "seed {seed}: {total}");
            assert_eq!(s, sample(&sizes, SampleSize::Bytes(50_000), seed));
        }
        // Everything fits: everything is taken.
        assert_eq!(sample(&[5, 6, 7], SampleSize::Bytes(1 << 20), 9), [0, 1, 2]);
        // Nothing fits: the smallest file is taken.
        assert_eq!(sample(&[900, 300, 700], SampleSize::Bytes(100), 9), [1]);
    }

    /// A drill of `repo` that restores with the engine's restore, verifying.
    fn drill(repo: &Repository, snapshots: &[SnapshotEntry], opts: &DrillOptions) -> DrillReport {
        let index = repo.load_index().unwrap();
        let p = plan(repo, &index, snapshots, opts).unwrap();
        let out = tempfile::tempdir().unwrap();
        run(&p, out.path(), |snap, includes, dir| {
            let opts = RestoreOptions {
                target: dir.to_path_buf(),
                includes,
                verify: true,
                ..Default::default()
            };
            let s = restore(repo, &index, snap, "", &opts)?;
            Ok(SampleRestore {
                files_verified: s.files_verified,
                failures: s
                    .errors
                    .into_iter()
                    .chain(s.verify_errors)
                    .map(|e| SampleFailure {
                        path: e.path,
                        pack: e.pack,
                        message: e.message,
                    })
                    .collect(),
            })
        })
        .unwrap()
    }

    #[test]
    fn each_group_is_sampled_from_its_latest_snapshot_and_verified() {
        let repo = memory_repo();
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let names: Vec<String> = (0..8).map(|i| format!("d{}/f[{i}]*", i % 3)).collect();
        let files: Vec<(&str, Vec<u8>)> = names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.as_str(), noise(i as u64 + 1, 1000 + i * 300)))
            .collect();
        let refs: Vec<(&str, &[u8])> = files.iter().map(|(n, b)| (*n, b.as_slice())).collect();
        write_files(a.path(), &refs);
        write_files(b.path(), &[("only", b"one file")]);
        backup_dir(&repo, a.path(), &[]);
        backup_dir(&repo, b.path(), &[]);
        // A newer snapshot of the first group, with one more file.
        write_files(a.path(), &[("new", b"newest")]);
        let newest = backup_dir(&repo, a.path(), &[]);
        let snaps = repo.snapshots_present().unwrap();

        let opts = DrillOptions {
            size: SampleSize::Files(3),
            seed: Some(7),
            ..Default::default()
        };
        let r = drill(&repo, &snaps, &opts);
        assert!(r.ok(), "{:?}", r.files_damaged);
        assert_eq!(r.snapshots.len(), 2);
        assert!(r.snapshots.contains(&newest));
        assert_eq!(r.files_verified, 4, "3 of the first group, 1 of the second");
        let by_group: Vec<u64> = r.groups.iter().map(|g| g.files_verified).collect();
        assert!(
            by_group.contains(&3) && by_group.contains(&1),
            "{by_group:?}"
        );
        assert!(r.groups.iter().any(|g| g.files == 9), "the latest: 9 files");
        assert_eq!(r.seed, 7);
        assert!(r.estimated_recovery_seconds.is_some_and(|s| s > 0.0));

        // The same seed, the same files; the whole of a group with --files above its count.
        let again = drill(&repo, &snaps, &opts);
        let paths = |r: &DrillReport| r.files.iter().map(|f| f.path.clone()).collect::<Vec<_>>();
        assert_eq!(paths(&r), paths(&again));
        let all = drill(
            &repo,
            &snaps,
            &DrillOptions {
                size: SampleSize::Files(100),
                ..Default::default()
            },
        );
        assert_eq!(all.files_verified, 10, "{:?}", all.files_damaged);
    }

    #[test]
    fn a_damaged_pack_names_the_file_and_the_pack() {
        let repo = memory_repo();
        let src = tempfile::tempdir().unwrap();
        write_files(src.path(), &[("victim", &noise(3, 200_000))]);
        backup_dir(&repo, src.path(), &[]);
        let backend = repo.backend();
        let packs = backend.list(crate::storage::FileType::DataPack).unwrap();
        assert_eq!(packs.len(), 1);
        let id = packs[0].id;
        let mut bytes = backend
            .read(crate::storage::FileType::DataPack, &id)
            .unwrap();
        bytes[100] ^= 1;
        backend
            .write(crate::storage::FileType::DataPack, &id, &bytes)
            .unwrap();
        let snaps = repo.snapshots_present().unwrap();
        let r = drill(&repo, &snaps, &DrillOptions::default());
        assert!(!r.ok());
        assert_eq!(r.files_verified, 0);
        let d = &r.files_damaged[0];
        assert!(d.path.ends_with("/victim"), "{d:?}");
        assert_eq!(d.pack, Some(PackId::from_bytes(id)));
        assert_eq!(r.files.len(), 1);
        assert!(!r.files[0].ok);
    }

    #[test]
    fn glob_characters_in_names_are_matched_literally() {
        assert_eq!(
            exact_pattern("/a/f[1]*?{x}\\"),
            "/a/f\\[1\\]\\*\\?\\{x\\}\\\\"
        );
        let m = crate::exclude::PathMatcher::new(&[exact_pattern("/a/f[1]*")]).unwrap();
        assert!(m.matches(Path::new("/a/f[1]*")));
        assert!(!m.matches(Path::new("/a/f1x")));
    }
}
