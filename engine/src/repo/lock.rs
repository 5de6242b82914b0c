//! Repository locks (format-spec/format.md, "Locks").
//!
//! A lock is a sealed file in `locks/` saying who holds the repository, how (shared or
//! exclusive), and since when it was last refreshed. Backups and restores share the repository;
//! commands that delete (forget, prune) take it exclusively. A lock is stale, and ignored, once it
//! has gone 30 minutes without a refresh, or at once when it names a process of this host that no
//! longer runs. A held lock is refreshed every five minutes by a background thread and removed
//! when its guard is dropped.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use chrono::{DateTime, FixedOffset};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::id::LockId;
use crate::repo::repository::{host_and_user, now_local, Repository};
use crate::storage::FileType;

/// A lock older than this without a refresh is stale.
pub const STALE_AFTER: Duration = Duration::from_secs(30 * 60);
/// How often a held lock is refreshed.
pub const REFRESH_EVERY: Duration = Duration::from_secs(5 * 60);

/// The content of a lock file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockFile {
    /// When the lock was taken or last refreshed.
    #[serde(deserialize_with = "crate::format::timestamp::fixed")]
    pub time: DateTime<FixedOffset>,
    /// True for an exclusive lock.
    pub exclusive: bool,
    /// Host of the holder.
    pub hostname: String,
    /// User of the holder.
    pub username: String,
    /// Process id of the holder.
    pub pid: u32,
    /// What the holder is doing (`backup`, `prune`...).
    pub command: String,
}

impl LockFile {
    /// True when the lock no longer protects anything: too old, or its process is gone.
    pub fn is_stale(&self, now: DateTime<FixedOffset>, this_host: &str) -> bool {
        let age = now.signed_duration_since(self.time);
        if age.to_std().is_ok_and(|a| a > STALE_AFTER) {
            return true;
        }
        self.hostname == this_host && !process_exists(self.pid)
    }

    /// "exclusive lock held by ann@host (pid 42, prune) since 2024-05-01 03:00:00 +02:00".
    pub fn describe(&self) -> String {
        format!(
            "{} lock held by {}@{} (pid {}, {}) since {}",
            if self.exclusive {
                "an exclusive"
            } else {
                "a shared"
            },
            self.username,
            self.hostname,
            self.pid,
            self.command,
            self.time.format("%Y-%m-%d %H:%M:%S %:z")
        )
    }
}

fn process_exists(pid: u32) -> bool {
    let Ok(pid) = i32::try_from(pid) else {
        return false;
    };
    // Signal 0 checks existence; EPERM means it exists under another user.
    match nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None) {
        Ok(()) => true,
        Err(nix::errno::Errno::ESRCH) => false,
        Err(_) => true,
    }
}

/// How to take a lock.
#[derive(Debug, Clone)]
pub struct LockOptions {
    /// Exclusive or shared.
    pub exclusive: bool,
    /// Keep trying this long while the repository is locked.
    pub retry: Duration,
    /// Name of the command, recorded in the lock.
    pub command: String,
    /// Refresh interval (tests shorten it).
    pub refresh_every: Duration,
}

impl Default for LockOptions {
    fn default() -> Self {
        Self {
            exclusive: false,
            retry: Duration::ZERO,
            command: String::new(),
            refresh_every: REFRESH_EVERY,
        }
    }
}

/// Every lock in the repository, with its id. Lock files that cannot be read are returned as
/// errors in place, so that callers decide (a damaged lock still blocks until `unlock`).
pub fn list_locks(repo: &Repository) -> Result<Vec<(LockId, Result<LockFile>)>> {
    others_locks(repo, None)
}

/// As [`list_locks`], leaving out `ours` (whose content its holder knows: one read fewer).
fn others_locks(
    repo: &Repository,
    ours: Option<LockId>,
) -> Result<Vec<(LockId, Result<LockFile>)>> {
    Ok(repo
        .backend()
        .list(FileType::Lock)?
        .into_iter()
        .filter(|e| Some(LockId::from_bytes(e.id)) != ours)
        .map(|e| {
            (
                LockId::from_bytes(e.id),
                repo.load_file::<LockFile>(FileType::Lock, &e.id),
            )
        })
        .collect())
}

/// The first lock that conflicts with taking one of kind `exclusive`, ignoring `ours`.
fn conflict(repo: &Repository, exclusive: bool, ours: Option<LockId>) -> Result<Option<String>> {
    let now = now_local();
    let (host, ..) = host_and_user();
    // A lock that vanished between listing and reading may have been replaced by its holder's
    // refresh (new file first, old one removed): list again rather than conclude it was released.
    // A store whose listings lag deletions (Garage right after a node came back) can also keep
    // listing a lock already deleted. Every listed lock is read again on every pass, so a lock
    // that reads fine on any pass counts. For a shared lock, a lock that was listed and could
    // not be read on two passes in a row is taken as deleted: at worst a restore or check runs
    // beside a prune and reports missing data. An exclusive lock (forget, prune, repair) never
    // makes that guess: deleting data beside a live backup loses data, so it stops instead.
    let mut unreadable: std::collections::HashMap<LockId, u32> = Default::default();
    const PASSES: u32 = 5;
    let mut last = LockId::default();
    for pass in 0..PASSES {
        let mut vanished = None;
        for (id, lock) in others_locks(repo, ours)? {
            match lock {
                Ok(l) if l.is_stale(now, &host) => {}
                Ok(l) if l.exclusive || exclusive => return Ok(Some(l.describe())),
                Ok(_) => {}
                Err(Error::Backend(crate::error::BackendError::NotFound { .. })) => {
                    let seen = unreadable.entry(id).or_default();
                    *seen += 1;
                    if exclusive || *seen < 2 {
                        vanished = Some(id);
                    }
                }
                // A damaged lock blocks until removed by hand; a storage error is just an error.
                Err(e) if e.is_corruption() => {
                    return Ok(Some(format!(
                        "an unreadable lock {} ({e}); `floe unlock --remove-all` removes it",
                        id.short()
                    )))
                }
                Err(e) => return Err(e),
            }
        }
        let Some(id) = vanished else {
            return Ok(None);
        };
        last = id;
        if pass + 1 < PASSES {
            std::thread::sleep(Duration::from_millis(20 << pass));
        }
    }
    Ok(Some(format!(
        "lock {} is listed but cannot be read: it was just released, or the storage still \
         lists it after its deletion; try again in a minute (--retry-lock)",
        last.short()
    )))
}

/// A held lock: refreshed in the background, removed on drop.
pub struct RepoLock {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
    health: LockHealth,
}

/// Whether a held lock still protects its holder: shared with the work the lock protects, which
/// checks it before each step that others could undo (saving index files and snapshots, deleting).
#[derive(Debug, Clone, Default)]
pub struct LockHealth(Arc<AtomicBool>);

impl LockHealth {
    /// A health that is never lost (for callers that hold no lock: tests, tools).
    pub fn unlocked() -> Self {
        Self::default()
    }

    /// Fails once the lock was lost: removed by someone else, or not refreshed for so long
    /// (suspend, storage errors) that others may already treat it as stale.
    pub fn check(&self) -> Result<()> {
        if self.0.load(Ordering::SeqCst) {
            Err(Error::Locked {
                holder: "this process lost its own lock (removed by another process, or not refreshed in time); stopping before changing the repository further".into(),
            })
        } else {
            Ok(())
        }
    }
}

/// Past this long without a successful refresh (wall clock, so a suspend counts), a lock is
/// treated as lost by its own holder, well before others may call it stale.
const LOST_AFTER: Duration = Duration::from_secs(20 * 60);

impl std::fmt::Debug for RepoLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RepoLock")
    }
}

fn write_lock(repo: &Repository, opts: &LockOptions) -> Result<LockId> {
    let (hostname, username, ..) = host_and_user();
    let file = LockFile {
        time: now_local(),
        exclusive: opts.exclusive,
        hostname,
        username,
        pid: std::process::id(),
        command: opts.command.clone(),
    };
    Ok(LockId::from_bytes(repo.save_file(FileType::Lock, &file)?))
}

/// Takes a lock, waiting up to `opts.retry` for conflicting locks to go.
pub fn lock(repo: &Repository, opts: &LockOptions) -> Result<RepoLock> {
    let deadline = Instant::now() + opts.retry;
    let mut pause = Duration::from_millis(200);
    let mut first = true;
    let id = loop {
        // Announce first, then look: two processes racing both see each other and back off,
        // rather than both going ahead. A shared lock's first attempt announces at once (one
        // round trip fewer when nothing is in the way). An exclusive lock looks first, so that
        // a backup starting beside a running one is not turned away by a prune that was never
        // going to proceed; so does every retry, so that waiting processes do not keep writing
        // and removing locks that block each other.
        let announce_at_once = std::mem::take(&mut first) && !opts.exclusive;
        if announce_at_once || conflict(repo, opts.exclusive, None)?.is_none() {
            let id = write_lock(repo, opts)?;
            match conflict(repo, opts.exclusive, Some(id))? {
                None => break id,
                Some(holder) => {
                    let _ = repo.backend().remove(FileType::Lock, id.as_bytes());
                    if Instant::now() >= deadline {
                        return Err(Error::Locked { holder });
                    }
                }
            }
        } else if Instant::now() >= deadline {
            let holder =
                conflict(repo, opts.exclusive, None)?.unwrap_or_else(|| "another process".into());
            return Err(Error::Locked { holder });
        }
        // Jitter, so that two processes waiting for the same holder fall out of step.
        let jittered = pause.mul_f64(rand::Rng::gen_range(&mut rand::thread_rng(), 0.75..1.25));
        std::thread::sleep(
            jittered
                .min(deadline.saturating_duration_since(Instant::now()))
                .max(Duration::from_millis(10)),
        );
        pause = (pause * 2).min(Duration::from_secs(5));
    };

    let (stop_tx, stop_rx) = mpsc::channel::<()>();
    let owned = repo.with_backend(repo.backend().clone());
    let opts = opts.clone();
    let health = LockHealth::default();
    let lost = health.0.clone();
    let thread = std::thread::spawn(move || {
        let mut current = Some(id);
        let mut last_ok = SystemTime::now();
        // Until the guard is dropped (the channel closes), refresh at every tick.
        while let Err(RecvTimeoutError::Timeout) = stop_rx.recv_timeout(opts.refresh_every) {
            let Some(old) = current else { continue };
            if SystemTime::now()
                .duration_since(last_ok)
                .unwrap_or_default()
                > LOST_AFTER
            {
                lost.store(true, Ordering::SeqCst);
            }
            // Write the fresh lock before removing the old one, so the repository is never
            // unlocked in between. A failed write is retried at the next tick.
            let Ok(new) = write_lock(&owned, &opts) else {
                continue;
            };
            match owned.backend().remove(FileType::Lock, old.as_bytes()) {
                Err(crate::error::BackendError::NotFound { .. }) => {
                    // Someone removed our lock: others may have gone ahead. Do not re-take it.
                    lost.store(true, Ordering::SeqCst);
                    let _ = owned.backend().remove(FileType::Lock, new.as_bytes());
                    current = None;
                }
                _ => {
                    current = Some(new);
                    last_ok = SystemTime::now();
                }
            }
        }
        if let Some(id) = current {
            let _ = owned.backend().remove(FileType::Lock, id.as_bytes());
        }
    });
    Ok(RepoLock {
        stop: Some(stop_tx),
        thread: Some(thread),
        health,
    })
}

impl RepoLock {
    /// The lock's health, to check before steps that others could undo.
    pub fn health(&self) -> LockHealth {
        self.health.clone()
    }
}

impl Drop for RepoLock {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Removes stale locks, or every lock with `all`. Returns how many were removed.
pub fn unlock(repo: &Repository, all: bool) -> Result<usize> {
    let now = now_local();
    let (host, ..) = host_and_user();
    let mut removed = 0;
    for (id, lock) in list_locks(repo)? {
        let stale = match &lock {
            Ok(l) => l.is_stale(now, &host),
            Err(_) => false,
        };
        if all || stale {
            match repo.backend().remove(FileType::Lock, id.as_bytes()) {
                Ok(()) => removed += 1,
                // Gone already: released meanwhile, or a deleted lock still listed.
                Err(crate::error::BackendError::NotFound { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::MemoryBackend;
    use std::sync::Arc;

    fn repo() -> Repository {
        crate::repo::repository::test_repository(Arc::new(MemoryBackend::new()))
    }

    fn opts(exclusive: bool) -> LockOptions {
        LockOptions {
            exclusive,
            command: "test".into(),
            ..LockOptions::default()
        }
    }

    #[test]
    fn shared_locks_coexist_and_block_exclusive() {
        let r = repo();
        let a = lock(&r, &opts(false)).unwrap();
        let b = lock(&r, &opts(false)).unwrap();
        let err = lock(&r, &opts(true)).unwrap_err();
        assert!(matches!(err, Error::Locked { .. }));
        assert!(err.to_string().contains("a shared lock held by"), "{err}");
        drop(a);
        drop(b);
        assert!(
            list_locks(&r).unwrap().is_empty(),
            "dropping a guard removes its lock"
        );
        let x = lock(&r, &opts(true)).unwrap();
        assert!(lock(&r, &opts(false)).is_err());
        drop(x);
        assert!(lock(&r, &opts(false)).is_ok());
    }

    #[test]
    fn retry_waits_for_the_holder() {
        let r = repo();
        let held = lock(&r, &opts(true)).unwrap();
        let releaser = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            drop(held);
        });
        let mut o = opts(false);
        o.retry = Duration::from_secs(10);
        let started = Instant::now();
        assert!(lock(&r, &o).is_ok());
        assert!(started.elapsed() >= Duration::from_millis(250));
        releaser.join().unwrap();
    }

    #[test]
    fn stale_locks_are_ignored_and_unlocked() {
        let r = repo();
        let (host, user, ..) = host_and_user();
        let old = LockFile {
            time: now_local() - chrono::Duration::minutes(31),
            exclusive: true,
            hostname: "elsewhere".into(),
            username: user.clone(),
            pid: 1,
            command: "prune".into(),
        };
        r.save_file(FileType::Lock, &old).unwrap();
        // A process of this host that does not exist (pid numbers this high are not handed out).
        let dead = LockFile {
            time: now_local(),
            exclusive: true,
            hostname: host,
            username: user,
            pid: 0x7fff_fff0,
            command: "prune".into(),
        };
        r.save_file(FileType::Lock, &dead).unwrap();
        let l = lock(&r, &opts(true)).unwrap();
        drop(l);
        assert_eq!(unlock(&r, false).unwrap(), 2);
        assert!(list_locks(&r).unwrap().is_empty());
    }

    #[test]
    fn a_lock_removed_by_someone_else_is_reported_lost_and_not_retaken() {
        let r = repo();
        let mut o = opts(true);
        o.refresh_every = Duration::from_millis(50);
        let l = lock(&r, &o).unwrap();
        assert!(l.health().check().is_ok());
        assert_eq!(unlock(&r, true).unwrap(), 1);
        std::thread::sleep(Duration::from_millis(300));
        let err = l.health().check().unwrap_err();
        assert!(err.to_string().contains("lost its own lock"), "{err}");
        assert!(
            list_locks(&r).unwrap().is_empty(),
            "a lost lock is not written again"
        );
        drop(l);
    }

    /// Storage whose listing of `locks/` keeps showing objects already deleted, as an
    /// eventually consistent store does for a while (a replica back from an outage).
    /// A store whose listing keeps deleted locks (ghosts), and whose reads can lag.
    #[derive(Default)]
    struct GhostListing {
        ghosts: std::sync::Mutex<Vec<crate::storage::ObjectEntry>>,
        /// Objects whose next read says "not found" although they exist (a read that lags).
        lagging_reads: std::sync::Mutex<std::collections::HashSet<crate::id::RawId>>,
    }

    type Ghostly = crate::storage::faulty::Faulty<GhostListing>;

    fn ghost_store() -> (Arc<Ghostly>, Repository) {
        let hooks = crate::storage::faulty::Hooks {
            list: |b: &Ghostly, t, all: &mut Vec<_>| {
                if t == FileType::Lock {
                    all.extend(b.state.ghosts.lock().unwrap().iter().cloned());
                }
            },
            read: |b: &Ghostly, _, id| {
                if b.state.lagging_reads.lock().unwrap().remove(id) {
                    return Err(crate::storage::BackendError::NotFound {
                        location: hex::encode(id),
                    });
                }
                Ok(())
            },
            removing: |b: &Ghostly, t, e| {
                if t == FileType::Lock {
                    b.state.ghosts.lock().unwrap().push(e.clone());
                }
            },
            ..Default::default()
        };
        let store = Arc::new(Ghostly::new(GhostListing::default(), hooks));
        let r = crate::repo::repository::test_repository(store.clone());
        (store, r)
    }

    #[test]
    fn a_deleted_lock_still_listed_lets_readers_in_but_not_deleters() {
        let (store, r) = ghost_store();
        // An exclusive holder comes and goes; the store keeps listing its lock.
        drop(lock(&r, &opts(true)).unwrap());
        assert_eq!(store.state.ghosts.lock().unwrap().len(), 1);
        let shared = lock(&r, &opts(false)).expect("a listed but deleted lock holds nothing");
        // A live lock is still seen through the ghosts.
        let err = lock(&r, &opts(true)).unwrap_err();
        assert!(err.to_string().contains("a shared lock held by"), "{err}");
        drop(shared);
        // An exclusive lock does not guess: it stops, saying why.
        let err = lock(&r, &opts(true)).unwrap_err();
        assert!(
            err.to_string().contains("is listed but cannot be read"),
            "{err}"
        );
        assert_eq!(unlock(&r, true).unwrap(), 0, "only ghosts are left");
        // Once the listing catches up, it goes ahead.
        store.state.ghosts.lock().unwrap().clear();
        assert!(lock(&r, &opts(true)).is_ok());
    }

    #[test]
    fn a_live_lock_that_fails_one_read_still_blocks() {
        let (store, r) = ghost_store();
        let held = lock(&r, &opts(true)).unwrap();
        for (id, _) in list_locks(&r).unwrap() {
            store
                .state
                .lagging_reads
                .lock()
                .unwrap()
                .insert(*id.as_bytes());
        }
        let err = lock(&r, &opts(false)).unwrap_err();
        assert!(
            err.to_string().contains("an exclusive lock held by"),
            "{err}"
        );
        assert!(store.state.lagging_reads.lock().unwrap().is_empty());
        drop(held);
    }

    #[test]
    fn locks_are_refreshed_in_the_background() {
        let r = repo();
        let mut o = opts(false);
        o.refresh_every = Duration::from_millis(50);
        let l = lock(&r, &o).unwrap();
        let first: Vec<_> = list_locks(&r)
            .unwrap()
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        std::thread::sleep(Duration::from_millis(300));
        let later: Vec<_> = list_locks(&r)
            .unwrap()
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        assert_eq!(
            later.len(),
            1,
            "the old lock is removed after the new one is written"
        );
        assert_ne!(first, later);
        drop(l);
        assert!(list_locks(&r).unwrap().is_empty());
    }
}
