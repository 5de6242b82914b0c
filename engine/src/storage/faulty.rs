//! A memory backend with hooks, through which unit tests play what real stores do: listings that
//! lag deletions, reads that fail once, archived objects that must be thawed. Each test keeps its
//! own state in `S`; a hook left at its default passes the call through.

use super::{Backend, FileType, MemoryBackend, ObjectEntry, ObjectState, ThawRequest, ThawTier};
use crate::id::RawId;
use crate::storage::BackendError;

/// What the hooks see: the memory store and the test's state.
pub(crate) struct Faulty<S> {
    /// The objects.
    pub inner: MemoryBackend,
    /// The test's state.
    pub state: S,
    hooks: Hooks<S>,
}

/// A hook that answers for the store.
type Answer<S, T> = fn(&Faulty<S>, FileType, &RawId) -> Result<T, BackendError>;

/// The hooks, each a plain function of the backend.
pub(crate) struct Hooks<S> {
    /// Rewrites a listing (adds ghosts, sets storage classes).
    pub list: fn(&Faulty<S>, FileType, &mut Vec<ObjectEntry>),
    /// Runs before every read, whole or ranged; an error fails the read.
    pub read: Answer<S, ()>,
    /// Runs after a write.
    pub written: fn(&Faulty<S>, FileType, &RawId),
    /// Runs before a removal, with the entry as listed before it.
    pub removing: fn(&Faulty<S>, FileType, &ObjectEntry),
    /// Answers `stat` instead of the memory store.
    pub stat: Option<Answer<S, ObjectState>>,
    /// Answers a thaw request (the memory store needs none).
    pub request_thaw: Option<Answer<S, ThawRequest>>,
}

impl<S> Default for Hooks<S> {
    fn default() -> Self {
        Hooks {
            list: |_, _, _| {},
            read: |_, _, _| Ok(()),
            written: |_, _, _| {},
            removing: |_, _, _| {},
            stat: None,
            request_thaw: None,
        }
    }
}

impl<S> Faulty<S> {
    /// An empty store with `state` and `hooks`.
    pub fn new(state: S, hooks: Hooks<S>) -> Self {
        Faulty {
            inner: MemoryBackend::new(),
            state,
            hooks,
        }
    }
}

impl<S: Send + Sync> Backend for Faulty<S> {
    fn location(&self) -> String {
        self.inner.location()
    }
    fn create(&self) -> Result<(), BackendError> {
        self.inner.create()
    }
    fn list(&self, t: FileType) -> Result<Vec<ObjectEntry>, BackendError> {
        let mut all = self.inner.list(t)?;
        (self.hooks.list)(self, t, &mut all);
        Ok(all)
    }
    fn read(&self, t: FileType, id: &RawId) -> Result<Vec<u8>, BackendError> {
        (self.hooks.read)(self, t, id)?;
        self.inner.read(t, id)
    }
    fn read_range(
        &self,
        t: FileType,
        id: &RawId,
        offset: u64,
        length: u64,
    ) -> Result<Vec<u8>, BackendError> {
        (self.hooks.read)(self, t, id)?;
        self.inner.read_range(t, id, offset, length)
    }
    fn write(&self, t: FileType, id: &RawId, data: &[u8]) -> Result<(), BackendError> {
        self.inner.write(t, id, data)?;
        (self.hooks.written)(self, t, id);
        Ok(())
    }
    fn remove(&self, t: FileType, id: &RawId) -> Result<(), BackendError> {
        if let Some(e) = self.inner.list(t)?.into_iter().find(|e| &e.id == id) {
            (self.hooks.removing)(self, t, &e);
        }
        self.inner.remove(t, id)
    }
    fn stat(&self, t: FileType, id: &RawId) -> Result<ObjectState, BackendError> {
        match self.hooks.stat {
            Some(stat) => stat(self, t, id),
            None => self.inner.stat(t, id),
        }
    }
    fn request_thaw(
        &self,
        t: FileType,
        id: &RawId,
        days: u32,
        tier: ThawTier,
    ) -> Result<ThawRequest, BackendError> {
        match self.hooks.request_thaw {
            Some(request) => request(self, t, id),
            None => self.inner.request_thaw(t, id, days, tier),
        }
    }
}
