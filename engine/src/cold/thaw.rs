//! Reading archived data packs: which packs a read needs, in what state they are, what a thaw
//! would cost and take, asking for it, and waiting for it.
//!
//! Packs in GLACIER or DEEP_ARCHIVE must be restored (thawed) to a temporary readable copy
//! before a GET succeeds. A restore, `restore`'s readers or `check --read-data` first build a
//! [`ThawPlan`] from the packs they will read (a HEAD per pack, no GET), then either stop with
//! the plan, or [`request`] thaws for the archived packs only (never for one already under way)
//! and wait with a [`Waiter`], which polls with backoff and hands over packs as they become
//! readable.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;
use std::time::Duration;

use rayon::prelude::*;

use crate::cold::tiers::Prices;
use crate::error::{Error, Result};
use crate::id::PackId;
use crate::repo::repository::Repository;
use crate::storage::{Backend, FileType, StorageClass, ThawRequest, ThawState, ThawTier};

/// One pack's state as the storage reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackStatus {
    /// The pack.
    pub id: PackId,
    /// Its size.
    pub size: u64,
    /// Its storage class, when the storage has classes.
    pub storage_class: Option<StorageClass>,
    /// Whether it can be read now.
    pub thaw: ThawState,
}

impl PackStatus {
    /// True when a GET would succeed now.
    pub fn readable(&self) -> bool {
        matches!(self.thaw, ThawState::Readable | ThawState::Restored { .. })
    }
}

/// The state of every data pack a read needs.
#[derive(Debug, Clone, Default)]
pub struct ThawPlan {
    /// Every needed pack.
    pub packs: Vec<PackStatus>,
}

/// Totals of a plan for one retrieval tier.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct ThawSummary {
    /// Packs readable now.
    pub readable_packs: usize,
    /// Bytes of those.
    pub readable_bytes: u64,
    /// Archived packs that need a thaw request.
    pub archived_packs: usize,
    /// Bytes of those.
    pub archived_bytes: u64,
    /// Packs whose thaw is already under way.
    pub in_progress_packs: usize,
    /// Bytes of those.
    pub in_progress_bytes: u64,
    /// Archived packs and bytes by storage class.
    pub by_class: BTreeMap<String, (usize, u64)>,
    /// The retrieval tier.
    pub tier: String,
    /// Expected wait (the slowest class's).
    pub wait: String,
    /// Retrieval cost of the archived packs in USD, at the prices the summary was asked with.
    pub cost_usd: f64,
    /// Classes the tier cannot retrieve from (Expedited from DEEP_ARCHIVE).
    pub unavailable: Vec<String>,
}

/// When some blobs are stored in more than one data pack (two backups of the same new data at
/// once), points the index at copies in packs that can be read without a thaw, so that a
/// restore does not thaw a pack it can do without. One listing of `data/`, only when the index
/// holds such blobs. Returns how many blobs changed pack.
pub fn prefer_readable_copies(
    repo: &Repository,
    index: &mut crate::repo::index::Index,
) -> Result<usize> {
    if index.data_duplicate_count() == 0 {
        return Ok(0);
    }
    let instant: HashSet<PackId> = repo
        .backend()
        .list(FileType::DataPack)?
        .into_iter()
        .filter(|e| {
            !e.storage_class
                .as_ref()
                .is_some_and(StorageClass::may_be_archived)
        })
        .map(|e| PackId::from_bytes(e.id))
        .collect();
    Ok(index.prefer(|p| instant.contains(p)))
}

impl ThawPlan {
    /// Finds the state of each pack without reading any: one listing of `data/` gives every
    /// pack's class, then a HEAD per pack in a class that may need a thaw gives its restore
    /// state. A needed pack missing from the listing is left out: the read that needs it
    /// reports it, file by file, as it does on any storage.
    pub fn of(repo: &Repository, packs: &BTreeSet<PackId>) -> Result<ThawPlan> {
        let backend = repo.backend();
        let mut listed: BTreeMap<PackId, (u64, Option<StorageClass>)> = BTreeMap::new();
        for e in backend.list(FileType::DataPack)? {
            let id = PackId::from_bytes(e.id);
            if packs.contains(&id) {
                listed.insert(id, (e.size, e.storage_class));
            }
        }
        let listed: Vec<(PackId, u64, Option<StorageClass>)> =
            listed.into_iter().map(|(id, (s, c))| (id, s, c)).collect();
        let packs = repo.in_io_pool(|| {
            listed
                .par_iter()
                .map(|(id, size, class)| {
                    // Instant classes are readable; archive classes, and classes this build
                    // does not know (Intelligent-Tiering may have archived the object), are asked.
                    let may_be_archived = class.as_ref().is_some_and(StorageClass::may_be_archived);
                    if !may_be_archived {
                        return Ok(PackStatus {
                            id: *id,
                            size: *size,
                            storage_class: class.clone(),
                            thaw: ThawState::Readable,
                        });
                    }
                    let st = backend.stat(FileType::DataPack, id.as_bytes())?;
                    Ok(PackStatus {
                        id: *id,
                        size: st.size,
                        storage_class: st.storage_class,
                        thaw: st.thaw,
                    })
                })
                .collect::<Result<Vec<_>>>()
        })?;
        Ok(ThawPlan { packs })
    }

    /// Packs that cannot be read yet (archived, or thawing).
    pub fn pending(&self) -> HashSet<PackId> {
        self.packs
            .iter()
            .filter(|p| !p.readable())
            .map(|p| p.id)
            .collect()
    }

    /// True when every pack is readable now.
    pub fn all_readable(&self) -> bool {
        self.packs.iter().all(PackStatus::readable)
    }

    /// Counts, bytes, wait and cost for `tier`, at `prices`.
    pub fn summary(&self, tier: ThawTier, prices: &Prices) -> ThawSummary {
        let mut s = ThawSummary {
            tier: tier.name().to_string(),
            ..Default::default()
        };
        let mut requests: BTreeMap<String, (usize, u64)> = BTreeMap::new();
        for p in &self.packs {
            match p.thaw {
                ThawState::Readable | ThawState::Restored { .. } => {
                    s.readable_packs += 1;
                    s.readable_bytes += p.size;
                }
                ThawState::InProgress => {
                    s.in_progress_packs += 1;
                    s.in_progress_bytes += p.size;
                }
                ThawState::Archived => {
                    s.archived_packs += 1;
                    s.archived_bytes += p.size;
                    let class = p
                        .storage_class
                        .as_ref()
                        .map_or("unknown".to_string(), |c| c.name().to_string());
                    let e = requests.entry(class).or_default();
                    e.0 += 1;
                    e.1 += p.size;
                }
            }
        }
        let cost = prices.retrieval_cost(&requests, tier);
        s.cost_usd = cost.cost_usd;
        s.wait = cost.wait;
        s.unavailable = cost.unavailable;
        s.by_class = requests;
        s
    }
}

/// Outcome of [`request`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct RequestReport {
    /// Thaws started now.
    pub started: usize,
    /// Packs whose thaw was already under way (found so when asking).
    pub already_in_progress: usize,
}

/// Asks for a thaw of every archived pack of the plan, and of no other: a pack whose thaw is
/// under way is never asked twice.
pub fn request(
    repo: &Repository,
    plan: &ThawPlan,
    tier: ThawTier,
    days: u32,
) -> Result<RequestReport> {
    let s = plan.summary(tier, &Prices::default());
    if !s.unavailable.is_empty() {
        return Err(Error::TierUnavailable {
            tier: tier.name().to_lowercase(),
            classes: s.unavailable.join(", "),
        });
    }
    let archived: Vec<PackId> = plan
        .packs
        .iter()
        .filter(|p| p.thaw == ThawState::Archived)
        .map(|p| p.id)
        .collect();
    let backend = repo.backend();
    let answers = repo.in_io_pool(|| {
        archived
            .par_iter()
            .map(|id| Ok(backend.request_thaw(FileType::DataPack, id.as_bytes(), days, tier)?))
            .collect::<Result<Vec<_>>>()
    })?;
    let mut r = RequestReport::default();
    for a in answers {
        match a {
            ThawRequest::Started => r.started += 1,
            ThawRequest::AlreadyInProgress => r.already_in_progress += 1,
            ThawRequest::NotNeeded => {}
        }
    }
    Ok(r)
}

/// How a [`Waiter`] polls.
#[derive(Debug, Clone, Copy)]
pub struct PollOptions {
    /// First pause between two polls.
    pub first: Duration,
    /// Longest pause between two polls.
    pub max: Duration,
    /// Give up after this long without every pack readable (`None`: never).
    pub deadline: Option<Duration>,
}

impl Default for PollOptions {
    fn default() -> Self {
        PollOptions {
            first: Duration::from_secs(60),
            max: Duration::from_secs(15 * 60),
            deadline: None,
        }
    }
}

/// Packs a restore must wait for, and the waiter that hands them over as they thaw.
#[derive(Debug, Clone)]
pub struct PackGate {
    /// Packs not readable yet.
    pub pending: HashSet<PackId>,
    /// Polls their state.
    pub waiter: std::sync::Arc<Waiter>,
}

impl PackGate {
    /// Blocks until every pending pack is readable, for callers that read in one pass (check,
    /// dump).
    pub fn wait_all(&self) -> Result<()> {
        let mut pending: Vec<PackId> = self.pending.iter().copied().collect();
        while !pending.is_empty() {
            let ready: HashSet<PackId> = self.waiter.wait_any(&pending)?.into_iter().collect();
            pending.retain(|p| !ready.contains(p));
        }
        Ok(())
    }
}

/// Progress of a wait: packs readable so far out of those that were pending.
pub type ThawProgress = dyn Fn(usize, usize) + Send + Sync;

/// Waits for thawing packs: polls their state with backoff and returns those that became
/// readable. Used by restore to start on packs as they thaw, not when all have.
pub struct Waiter {
    backend: Arc<dyn Backend>,
    poll: PollOptions,
    sleep: Box<dyn Fn(Duration) + Send + Sync>,
    progress: Box<ThawProgress>,
    total: usize,
    done: std::sync::atomic::AtomicUsize,
    /// When the first wait began, and the pause the next poll will use: kept across calls, so
    /// that the deadline covers the whole wait and the backoff does not start over.
    clock: std::sync::Mutex<(Option<std::time::Instant>, Duration)>,
}

impl std::fmt::Debug for Waiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Waiter")
            .field("poll", &self.poll)
            .field("total", &self.total)
            .finish_non_exhaustive()
    }
}

impl Waiter {
    /// A waiter for `total` pending packs that sleeps for real between polls.
    pub fn new(repo: &Repository, total: usize, poll: PollOptions) -> Self {
        Waiter {
            backend: repo.backend().clone(),
            poll,
            sleep: Box::new(std::thread::sleep),
            progress: Box::new(|_, _| {}),
            total,
            done: Default::default(),
            clock: std::sync::Mutex::new((None, poll.first)),
        }
    }

    /// Replaces the pause between polls (tests pass one that does not sleep).
    pub fn with_sleep(mut self, sleep: impl Fn(Duration) + Send + Sync + 'static) -> Self {
        self.sleep = Box::new(sleep);
        self
    }

    /// Calls `progress(readable, total)` after each poll.
    pub fn with_progress(
        mut self,
        progress: impl Fn(usize, usize) + Send + Sync + 'static,
    ) -> Self {
        self.progress = Box::new(progress);
        self
    }

    /// Blocks until at least one of `pending` is readable; returns every one that is. Fails
    /// when a pack is archived again with no thaw under way (the request was lost or its copy
    /// expired), or past the deadline.
    pub fn wait_any(&self, pending: &[PackId]) -> Result<Vec<PackId>> {
        let started = *self
            .clock
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .0
            .get_or_insert_with(std::time::Instant::now);
        loop {
            let mut ready = Vec::new();
            for id in pending {
                let st = self.backend.stat(FileType::DataPack, id.as_bytes())?;
                match st.thaw {
                    ThawState::Readable | ThawState::Restored { .. } => ready.push(*id),
                    ThawState::InProgress => {}
                    ThawState::Archived => return Err(Error::NotThawed { pack: *id }),
                }
            }
            if !ready.is_empty() {
                let done = self
                    .done
                    .fetch_add(ready.len(), std::sync::atomic::Ordering::Relaxed)
                    + ready.len();
                (self.progress)(done, self.total);
                return Ok(ready);
            }
            (self.progress)(
                self.done.load(std::sync::atomic::Ordering::Relaxed),
                self.total,
            );
            if let Some(d) = self.poll.deadline {
                if started.elapsed() >= d {
                    return Err(Error::ThawTimeout {
                        pending: pending.len(),
                        waited: d,
                    });
                }
            }
            let pause = {
                let mut clock = self.clock.lock().unwrap_or_else(|p| p.into_inner());
                let now = clock.1;
                clock.1 = (now * 2).min(self.poll.max);
                now
            };
            (self.sleep)(pause);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;

    use super::*;
    use crate::id::RawId;
    use crate::ops::restore::RestoreOptions;
    use crate::storage::BackendError;
    use crate::storage::{ObjectEntry, ObjectState};

    /// Data packs in DEEP_ARCHIVE: unreadable until a thaw was asked for and `polls` state
    /// queries have answered "ongoing-request=true".
    /// The store's side of an archive: data packs are DEEP_ARCHIVE unless written "hot", and
    /// thaw in `polls` polls once requested.
    struct Archive {
        polls: u32,
        /// Per pack: polls left before the thaw completes (present once requested).
        thawing: Mutex<HashMap<RawId, u32>>,
        requests: AtomicUsize,
        denied_reads: AtomicUsize,
        /// Once set, data packs written are STANDARD: readable, listed as such.
        write_hot: std::sync::atomic::AtomicBool,
        hot: Mutex<std::collections::HashSet<RawId>>,
    }

    type Archival = crate::storage::faulty::Faulty<Archive>;

    fn is_hot(b: &Archival, t: FileType, id: &RawId) -> bool {
        t != FileType::DataPack || b.state.hot.lock().unwrap().contains(id)
    }

    fn archive_store(polls: u32) -> Archival {
        let state = Archive {
            polls,
            thawing: Mutex::new(HashMap::new()),
            requests: AtomicUsize::new(0),
            denied_reads: AtomicUsize::new(0),
            write_hot: Default::default(),
            hot: Default::default(),
        };
        let hooks = crate::storage::faulty::Hooks {
            list: |b: &Archival, t, all: &mut Vec<ObjectEntry>| {
                for e in all.iter_mut() {
                    e.storage_class = Some(if is_hot(b, t, &e.id) {
                        StorageClass::Standard
                    } else {
                        StorageClass::DeepArchive
                    });
                }
            },
            read: |b: &Archival, t, id| {
                let thawed = b.state.thawing.lock().unwrap().get(id) == Some(&0);
                if !thawed && !is_hot(b, t, id) {
                    b.state.denied_reads.fetch_add(1, Ordering::SeqCst);
                    return Err(BackendError::NeedsThaw {
                        location: hex::encode(id),
                        storage_class: "DEEP_ARCHIVE".into(),
                    });
                }
                Ok(())
            },
            written: |b: &Archival, t, id| {
                if t == FileType::DataPack && b.state.write_hot.load(Ordering::SeqCst) {
                    b.state.hot.lock().unwrap().insert(*id);
                }
            },
            stat: Some(archive_stat),
            request_thaw: Some(|b: &Archival, _, id| {
                let mut thawing = b.state.thawing.lock().unwrap();
                if thawing.contains_key(id) {
                    return Ok(ThawRequest::AlreadyInProgress);
                }
                b.state.requests.fetch_add(1, Ordering::SeqCst);
                thawing.insert(*id, b.state.polls);
                Ok(ThawRequest::Started)
            }),
            ..Default::default()
        };
        Archival::new(state, hooks)
    }

    /// Archived data packs report their thaw: archived, thawing for `polls` polls, restored.
    fn archive_stat(b: &Archival, t: FileType, id: &RawId) -> Result<ObjectState, BackendError> {
        let size = b.inner.stat(t, id)?.size;
        if is_hot(b, t, id) {
            return Ok(ObjectState {
                size,
                storage_class: Some(StorageClass::Standard),
                thaw: ThawState::Readable,
            });
        }
        let mut thawing = b.state.thawing.lock().unwrap();
        let thaw = match thawing.get_mut(id) {
            None => ThawState::Archived,
            Some(0) => ThawState::Restored { expires: None },
            Some(n) => {
                *n -= 1;
                ThawState::InProgress
            }
        };
        Ok(ObjectState {
            size,
            storage_class: Some(StorageClass::DeepArchive),
            thaw,
        })
    }

    /// A repository on an [`Archive`] with one snapshot of `files` (name, bytes), in packs of
    /// about 1 MiB, and the snapshot's tree.
    fn archived_repo(
        polls: u32,
        files: &[(&str, Vec<u8>)],
    ) -> (Arc<Archival>, Repository, tempfile::TempDir) {
        let archive = Arc::new(archive_store(polls));
        let opts = crate::repo::repository::InitOptions {
            kdf: crate::format::key::KdfParams {
                memory_kib: 64,
                iterations: 1,
                parallelism: 1,
            },
            data_pack_size: 1 << 20,
            // Chunks of at most 1 MiB: a 2 MiB or larger file always spans two packs or more
            // (with the default 8 MiB maximum, one chunk could hold a whole test file).
            chunker: crate::format::chunker::ChunkerParams {
                min_size: 64 * 1024,
                avg_size: 256 * 1024,
                max_size: 1 << 20,
            },
            ..Default::default()
        };
        let repo = Repository::init(archive.clone(), b"pw", &opts).unwrap();
        let src = tempfile::tempdir().unwrap();
        for (name, bytes) in files {
            std::fs::write(src.path().join(name), bytes).unwrap();
        }
        let index = repo.load_index().unwrap();
        crate::ops::backup::backup(
            &repo,
            &index,
            &crate::ops::backup::BackupOptions {
                paths: vec![src.path().to_path_buf()],
                ..Default::default()
            },
        )
        .unwrap();
        (archive, repo, src)
    }

    fn random(seed: u8, len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(len);
        let mut x = blake3::hash(&[seed]);
        while out.len() < len {
            out.extend_from_slice(x.as_bytes());
            x = blake3::hash(x.as_bytes());
        }
        out.truncate(len);
        out
    }

    #[test]
    fn a_restore_reads_the_hot_copy_of_a_blob_stored_twice_and_thaws_nothing() {
        let a = random(7, 3 << 20);
        let (archive, repo, src) = archived_repo(3, &[("a", a.clone())]);
        // A second backup of the same data that did not see the first one's index (two hosts
        // at once) stores every blob again, in STANDARD packs.
        archive.state.write_hot.store(true, Ordering::SeqCst);
        crate::ops::backup::backup(
            &repo,
            &crate::repo::index::Index::new(),
            &crate::ops::backup::BackupOptions {
                paths: vec![src.path().to_path_buf()],
                ..Default::default()
            },
        )
        .unwrap();
        let mut index = repo.load_index().unwrap();
        assert!(index.data_duplicate_count() > 0);
        // Which copy answers first depends on the order index files are listed: start from
        // the archived ones.
        let hot = archive.state.hot.lock().unwrap().clone();
        index.prefer(|p| !hot.contains(p.as_bytes()));
        let snap = repo.snapshots().unwrap().remove(0).snapshot;
        let out = tempfile::tempdir().unwrap();
        let opts = RestoreOptions {
            target: out.path().to_path_buf(),
            ..Default::default()
        };
        let needed = crate::ops::restore::needed_packs(&repo, &index, &snap, "", &opts).unwrap();
        assert!(!ThawPlan::of(&repo, &needed).unwrap().all_readable());

        let moved = prefer_readable_copies(&repo, &mut index).unwrap();
        assert!(moved > 0);
        let needed = crate::ops::restore::needed_packs(&repo, &index, &snap, "", &opts).unwrap();
        assert!(ThawPlan::of(&repo, &needed).unwrap().all_readable());
        let summary = crate::ops::restore::restore(&repo, &index, &snap, "", &opts).unwrap();
        assert!(summary.errors.is_empty(), "{:?}", summary.errors);
        let name = src.path().strip_prefix("/").unwrap().join("a");
        assert!(std::fs::read(out.path().join(name)).unwrap() == a);
        assert_eq!(archive.state.denied_reads.load(Ordering::SeqCst), 0);
        assert_eq!(archive.state.requests.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn a_restore_thaws_only_what_it_needs_and_starts_as_packs_thaw() {
        let files = [("a", random(1, 3 << 20)), ("b", random(2, 3 << 20))];
        let (archive, repo, src) = archived_repo(3, &files);
        let index = repo.load_index().unwrap();
        let snap = repo.snapshots().unwrap().pop().unwrap().snapshot;
        let sub = src.path().join("a");
        let sub = sub.to_str().unwrap();
        let out = tempfile::tempdir().unwrap();
        let mut opts = RestoreOptions {
            target: out.path().to_path_buf(),
            ..Default::default()
        };
        let needed = crate::ops::restore::needed_packs(&repo, &index, &snap, sub, &opts).unwrap();
        let all = archive.list(FileType::DataPack).unwrap().len();
        assert!(
            needed.len() >= 2 && needed.len() < all,
            "{} of {all}",
            needed.len()
        );

        // The plan reads no data pack and prices the thaw.
        let plan = ThawPlan::of(&repo, &needed).unwrap();
        assert_eq!(archive.state.denied_reads.load(Ordering::SeqCst), 0);
        let s = plan.summary(ThawTier::Bulk, &Prices::default());
        assert_eq!((s.archived_packs, s.in_progress_packs), (needed.len(), 0));
        assert_eq!(s.wait, "up to 48 hours");
        assert!(s.cost_usd > 0.0);
        assert_eq!(
            plan.summary(ThawTier::Expedited, &Prices::default())
                .unavailable,
            vec!["DEEP_ARCHIVE".to_string()]
        );
        assert!(request(&repo, &plan, ThawTier::Expedited, 1).is_err());
        assert_eq!(archive.state.requests.load(Ordering::SeqCst), 0);

        // Ask for half now (as a run with --no-wait that was interrupted would have).
        let first: BTreeSet<PackId> = needed.iter().take(needed.len() / 2).copied().collect();
        let r = request(
            &repo,
            &ThawPlan::of(&repo, &first).unwrap(),
            ThawTier::Bulk,
            1,
        )
        .unwrap();
        assert_eq!(r.started, first.len());
        // The next run asks only for the others.
        let plan = ThawPlan::of(&repo, &needed).unwrap();
        let s = plan.summary(ThawTier::Bulk, &Prices::default());
        assert_eq!(s.archived_packs, needed.len() - first.len());
        assert!(s.in_progress_packs > 0);
        let r = request(&repo, &plan, ThawTier::Bulk, 1).unwrap();
        assert_eq!(r.started, needed.len() - first.len());
        assert_eq!(archive.state.requests.load(Ordering::SeqCst), needed.len());

        // Restore waits at the gate, polling without sleeping for real.
        let sleeps = Arc::new(AtomicUsize::new(0));
        let sl = sleeps.clone();
        let waiter = Waiter::new(
            &repo,
            needed.len(),
            PollOptions {
                first: Duration::from_millis(1),
                max: Duration::from_millis(4),
                deadline: None,
            },
        )
        .with_sleep(move |_| {
            sl.fetch_add(1, Ordering::SeqCst);
        });
        opts.gate = Some(PackGate {
            pending: plan.pending(),
            waiter: Arc::new(waiter),
        });
        let summary = crate::ops::restore::restore(&repo, &index, &snap, sub, &opts).unwrap();
        assert!(summary.errors.is_empty(), "{:?}", summary.errors);
        assert_eq!(
            std::fs::read(out.path().join("a")).unwrap(),
            files[0].1,
            "restored file differs"
        );
        assert!(
            sleeps.load(Ordering::SeqCst) > 0,
            "the waiter never had to wait"
        );
        // No pack was asked for twice, none that was not needed was read.
        assert_eq!(archive.state.requests.load(Ordering::SeqCst), needed.len());
        assert_eq!(archive.state.denied_reads.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn a_thaw_that_is_lost_while_waiting_is_an_error_not_a_hang() {
        let (archive, repo, _src) = archived_repo(2, &[("a", random(3, 2 << 20))]);
        let packs: Vec<PackId> = archive
            .list(FileType::DataPack)
            .unwrap()
            .iter()
            .map(|e| PackId::from_bytes(e.id))
            .collect();
        let waiter = Waiter::new(&repo, packs.len(), PollOptions::default()).with_sleep(|_| {});
        let e = waiter.wait_any(&packs).unwrap_err().to_string();
        assert!(e.contains("no thaw of it is under way"), "{e}");

        let deadline = Waiter::new(
            &repo,
            packs.len(),
            PollOptions {
                first: Duration::from_millis(1),
                max: Duration::from_millis(1),
                deadline: Some(Duration::ZERO),
            },
        )
        .with_sleep(|_| {});
        let set: BTreeSet<PackId> = packs.iter().copied().collect();
        request(
            &repo,
            &ThawPlan::of(&repo, &set).unwrap(),
            ThawTier::Standard,
            1,
        )
        .unwrap();
        let e = deadline.wait_any(&packs).unwrap_err().to_string();
        assert!(e.contains("still thawing"), "{e}");
    }
}
