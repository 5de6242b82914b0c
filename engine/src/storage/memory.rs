//! An in-memory backend, for tests and for the conformance suite's own sanity.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::SystemTime;

use super::{Backend, FileType, ObjectEntry};
use crate::id::RawId;
use crate::storage::BackendError;

/// An object's bytes and when it was written.
type Stored = (Vec<u8>, SystemTime);

/// Objects held in a map; nothing persists.
#[derive(Debug, Default)]
pub struct MemoryBackend {
    objects: Mutex<BTreeMap<(FileType, RawId), Stored>>,
}

impl MemoryBackend {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn not_found(t: FileType, id: &RawId) -> BackendError {
        BackendError::NotFound {
            location: format!("memory:{}", t.object_path(id)),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<(FileType, RawId), Stored>> {
        // A panic while holding the lock cannot leave the map half-updated: every operation is a
        // single map call. Recover the guard.
        self.objects.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Backend for MemoryBackend {
    fn location(&self) -> String {
        "memory:".to_string()
    }

    fn create(&self) -> Result<(), BackendError> {
        Ok(())
    }

    fn list(&self, t: FileType) -> Result<Vec<ObjectEntry>, BackendError> {
        Ok(self
            .lock()
            .iter()
            .filter(|((ft, _), _)| *ft == t)
            .map(|((_, id), (data, modified))| ObjectEntry {
                id: *id,
                size: data.len() as u64,
                modified: Some(*modified),
                storage_class: None,
            })
            .collect())
    }

    fn read(&self, t: FileType, id: &RawId) -> Result<Vec<u8>, BackendError> {
        self.lock()
            .get(&(t, *id))
            .map(|(d, _)| d.clone())
            .ok_or_else(|| Self::not_found(t, id))
    }

    fn read_range(
        &self,
        t: FileType,
        id: &RawId,
        offset: u64,
        length: u64,
    ) -> Result<Vec<u8>, BackendError> {
        let map = self.lock();
        let (data, _) = map.get(&(t, *id)).ok_or_else(|| Self::not_found(t, id))?;
        super::range_of(data, offset, length, || {
            format!("memory:{}", t.object_path(id))
        })
    }

    fn write(&self, t: FileType, id: &RawId, data: &[u8]) -> Result<(), BackendError> {
        self.lock()
            .insert((t, *id), (data.to_vec(), SystemTime::now()));
        Ok(())
    }

    fn remove(&self, t: FileType, id: &RawId) -> Result<(), BackendError> {
        self.lock()
            .remove(&(t, *id))
            .map(|_| ())
            .ok_or_else(|| Self::not_found(t, id))
    }
}
