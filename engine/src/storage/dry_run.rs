//! A wrapper that reads through and discards writes and removals, for `--dry-run`.

use std::sync::atomic::{AtomicU64, Ordering};

use super::{Backend, FileType, ObjectEntry, ObjectState};
use crate::id::RawId;
use crate::storage::BackendError;

/// Passes reads to the inner backend; counts and drops writes and removals.
#[derive(Debug)]
pub struct DryRunBackend<B> {
    inner: B,
    bytes_not_written: AtomicU64,
    objects_not_written: AtomicU64,
}

impl<B> DryRunBackend<B> {
    /// Wraps `inner`.
    pub fn new(inner: B) -> Self {
        Self {
            inner,
            bytes_not_written: AtomicU64::new(0),
            objects_not_written: AtomicU64::new(0),
        }
    }

    /// Bytes that a real run would have written.
    pub fn bytes_not_written(&self) -> u64 {
        self.bytes_not_written.load(Ordering::Relaxed)
    }

    /// Objects that a real run would have written.
    pub fn objects_not_written(&self) -> u64 {
        self.objects_not_written.load(Ordering::Relaxed)
    }
}

impl<B: Backend> Backend for DryRunBackend<B> {
    fn location(&self) -> String {
        self.inner.location()
    }
    fn create(&self) -> Result<(), BackendError> {
        Ok(())
    }
    fn list(&self, t: FileType) -> Result<Vec<ObjectEntry>, BackendError> {
        self.inner.list(t)
    }
    fn read(&self, t: FileType, id: &RawId) -> Result<Vec<u8>, BackendError> {
        self.inner.read(t, id)
    }
    fn read_range(&self, t: FileType, id: &RawId, o: u64, l: u64) -> Result<Vec<u8>, BackendError> {
        self.inner.read_range(t, id, o, l)
    }
    fn read_range_into(
        &self,
        t: FileType,
        id: &RawId,
        o: u64,
        l: u64,
        buf: &mut Vec<u8>,
    ) -> Result<(), BackendError> {
        self.inner.read_range_into(t, id, o, l, buf)
    }
    fn read_range_with(
        &self,
        t: FileType,
        id: &RawId,
        o: u64,
        l: u64,
        sink: &mut dyn FnMut(&[u8]),
    ) -> Result<(), BackendError> {
        self.inner.read_range_with(t, id, o, l, sink)
    }
    fn write(&self, _t: FileType, _id: &RawId, data: &[u8]) -> Result<(), BackendError> {
        self.bytes_not_written
            .fetch_add(data.len() as u64, Ordering::Relaxed);
        self.objects_not_written.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
    fn remove(&self, _t: FileType, _id: &RawId) -> Result<(), BackendError> {
        Ok(())
    }
    fn leftovers(&self) -> Result<Vec<super::Leftover>, BackendError> {
        self.inner.leftovers()
    }
    fn remove_leftover(&self, _l: &super::Leftover) -> Result<(), BackendError> {
        Ok(())
    }
    fn stat(&self, t: FileType, id: &RawId) -> Result<ObjectState, BackendError> {
        self.inner.stat(t, id)
    }
    fn connections(&self) -> usize {
        self.inner.connections()
    }
    fn is_remote(&self) -> bool {
        self.inner.is_remote()
    }
    fn lifecycle(&self) -> Result<Option<super::lifecycle::Lifecycle>, BackendError> {
        self.inner.lifecycle()
    }
    fn set_retention(&self, r: super::Retention) -> Result<(), BackendError> {
        self.inner.set_retention(r)
    }
    fn retention(
        &self,
        t: FileType,
        id: &RawId,
    ) -> Result<Option<chrono::DateTime<chrono::Utc>>, BackendError> {
        self.inner.retention(t, id)
    }
    // Extending changes nothing: a dry run leaves dates as they are.
    fn extend_retention(
        &self,
        _t: FileType,
        _id: &RawId,
        _until: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), BackendError> {
        Ok(())
    }
    // A thaw request changes nothing a dry run could undo cheaply: it is dropped too.
    fn request_thaw(
        &self,
        _t: FileType,
        _id: &RawId,
        _days: u32,
        _tier: super::ThawTier,
    ) -> Result<super::ThawRequest, BackendError> {
        Ok(super::ThawRequest::Started)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::MemoryBackend;

    #[test]
    fn writes_are_discarded_and_counted() {
        let inner = MemoryBackend::new();
        inner.write(FileType::Snapshot, &[1; 32], b"kept").unwrap();
        let dry = DryRunBackend::new(&inner);
        dry.write(FileType::Snapshot, &[2; 32], b"dropped").unwrap();
        dry.remove(FileType::Snapshot, &[1; 32]).unwrap();
        assert_eq!(dry.read(FileType::Snapshot, &[1; 32]).unwrap(), b"kept");
        assert!(inner.read(FileType::Snapshot, &[2; 32]).is_err());
        assert_eq!(dry.bytes_not_written(), 7);
        assert_eq!(dry.objects_not_written(), 1);
    }
}
