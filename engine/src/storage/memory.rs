//! An in-memory backend, for tests and for the conformance suite's own sanity.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use super::{Backend, FileType, ObjectEntry, Staged};
use crate::id::RawId;
use crate::storage::BackendError;

/// An object's bytes and when it was written.
type Stored = (Vec<u8>, SystemTime);

/// The objects, by type and id.
type Objects = Arc<Mutex<BTreeMap<(FileType, RawId), Stored>>>;

/// Objects held in a map; nothing persists. Objects written in pieces are gathered apart and
/// join the map when committed, as the local backend's temporary files do.
#[derive(Debug, Default)]
pub struct MemoryBackend {
    objects: Objects,
}

/// An object being written in pieces to a [`MemoryBackend`].
struct StagedBytes {
    objects: Objects,
    file_type: FileType,
    bytes: Vec<u8>,
}

impl Staged for StagedBytes {
    fn append(&mut self, bytes: &[u8]) -> Result<(), BackendError> {
        self.bytes.extend_from_slice(bytes);
        Ok(())
    }

    fn len(&self) -> u64 {
        self.bytes.len() as u64
    }

    fn commit(self: Box<Self>, id: &RawId) -> Result<(), BackendError> {
        let Self {
            objects,
            file_type,
            bytes,
        } = *self;
        lock(&objects).insert((file_type, *id), (bytes, SystemTime::now()));
        Ok(())
    }
}

/// The map, whatever a panicking holder left: every operation on it is a single map call, so a
/// panic cannot leave it half-updated.
fn lock(objects: &Objects) -> std::sync::MutexGuard<'_, BTreeMap<(FileType, RawId), Stored>> {
    objects.lock().unwrap_or_else(|e| e.into_inner())
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
        lock(&self.objects)
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

    fn stage(&self, t: FileType) -> Result<Option<Box<dyn Staged + '_>>, BackendError> {
        Ok(Some(Box::new(StagedBytes {
            objects: self.objects.clone(),
            file_type: t,
            bytes: Vec::new(),
        })))
    }
}
