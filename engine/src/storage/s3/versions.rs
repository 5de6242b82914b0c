//! S3 Object Lock and object versions: buckets created with Object Lock, retention dates set on
//! write and extended later, the version history of the repository's keys (for `rollback`), and a
//! read-only view of the repository as it was at an earlier time (`--as-of`).

use std::collections::HashMap;

use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::primitives::DateTime as SdkTime;
use aws_sdk_s3::types::{
    ObjectLockEnabled, ObjectLockMode, ObjectLockRetention, ObjectLockRetentionMode,
};
use chrono::{DateTime, Utc};

use super::S3Backend;
use crate::storage::{BackendError, Retention, RetentionMode, StorageClass};

/// One version of one key, or a delete marker, as the bucket lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectVersion {
    /// The key, relative to the repository's prefix (`data/ab/ab12...`, `config`).
    pub key: String,
    /// The version id.
    pub version_id: String,
    /// When this version was written (or the object deleted, for a marker).
    pub modified: DateTime<Utc>,
    /// True for a delete marker.
    pub delete_marker: bool,
    /// True for the key's current version (or marker).
    pub latest: bool,
    /// Bytes (0 for a marker).
    pub size: u64,
    /// Storage class (`None` for a marker).
    pub storage_class: Option<StorageClass>,
}

/// The repository as it was at a time: for each key, the version then current.
#[derive(Debug, Default)]
pub(super) struct AsOf {
    pub(super) time: DateTime<Utc>,
    /// Full key → the version current then.
    pub(super) current: HashMap<String, ObjectVersion>,
}

fn to_sdk(t: DateTime<Utc>) -> SdkTime {
    SdkTime::from_secs(t.timestamp())
}

fn from_sdk(t: &SdkTime) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(t.secs(), t.subsec_nanos())
}

/// The retention date of an object written now.
fn retain_until(r: Retention) -> DateTime<Utc> {
    crate::failpoint::fake_now().unwrap_or_else(Utc::now) + chrono::Days::new(r.days.into())
}

fn sdk_mode(m: RetentionMode) -> ObjectLockMode {
    ObjectLockMode::from(m.s3_name())
}

/// For each key, the version current at `time`: the latest version written at or before it,
/// unless that is a delete marker. Keys are as listed.
pub fn current_at(
    versions: &[ObjectVersion],
    time: DateTime<Utc>,
) -> HashMap<&str, &ObjectVersion> {
    let mut at: HashMap<&str, &ObjectVersion> = HashMap::new();
    for v in versions.iter().filter(|v| v.modified <= time) {
        let e = at.entry(v.key.as_str()).or_insert(v);
        if v.modified > e.modified {
            *e = v;
        }
    }
    at.retain(|_, v| !v.delete_marker);
    at
}

impl S3Backend {
    /// The retention set by `set_retention`, if any.
    pub(super) fn retention_policy(&self) -> Option<Retention> {
        *self.retention.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A PUT of an object other than a lock file, with the retention headers Object Lock needs.
    /// S3 also asks for a checksum of the body with them: the caller sets its `Content-MD5` (an
    /// algorithm named without a value would be refused, as the SDK computes none here).
    pub(super) fn with_retention(
        &self,
        req: aws_sdk_s3::operation::put_object::builders::PutObjectFluentBuilder,
    ) -> aws_sdk_s3::operation::put_object::builders::PutObjectFluentBuilder {
        match self.retention_policy() {
            Some(r) => req
                .object_lock_mode(sdk_mode(r.mode))
                .object_lock_retain_until_date(to_sdk(retain_until(r))),
            None => req,
        }
    }

    /// Creates the bucket with Object Lock, or checks that an existing one has it.
    pub(super) async fn create_locked(&self, exists: bool) -> Result<(), BackendError> {
        if !exists {
            let mut req = self
                .client
                .create_bucket()
                .bucket(&self.bucket)
                .object_lock_enabled_for_bucket(true);
            if let Some(c) = self.bucket_configuration() {
                req = req.create_bucket_configuration(c);
            }
            return req
                .send()
                .await
                .map(|_| ())
                .map_err(|e| self.error("create bucket", "", e));
        }
        if self.lock_enabled().await? {
            return Ok(());
        }
        Err(self.failure(
            "use",
            "",
            "ObjectLockNotEnabled",
            "the bucket exists without Object Lock: use a new bucket (floe creates it with \
             Object Lock), or turn Object Lock on for this one first"
                .into(),
        ))
    }

    /// True when the bucket has Object Lock enabled.
    pub fn object_lock_enabled(&self) -> Result<bool, BackendError> {
        self.rt.block_on(self.lock_enabled())
    }

    async fn lock_enabled(&self) -> Result<bool, BackendError> {
        let conf = self
            .client
            .get_object_lock_configuration()
            .bucket(&self.bucket)
            .send()
            .await;
        match conf {
            Ok(c) => Ok(c
                .object_lock_configuration()
                .and_then(|c| c.object_lock_enabled())
                .is_some_and(|e| *e == ObjectLockEnabled::Enabled)),
            Err(e) if e.code() == Some("ObjectLockConfigurationNotFoundError") => Ok(false),
            Err(e) => Err(self.error("read the Object Lock setting of", "", e)),
        }
    }

    /// The retention date of `key`'s current version, from its headers (a HEAD, which S3
    /// answers with the date for callers allowed `s3:GetObjectRetention`).
    pub(super) fn retention_of(&self, key: &str) -> Result<Option<DateTime<Utc>>, BackendError> {
        let version = self.version_at(key)?;
        self.rt.block_on(async {
            let _permit = self.permits.acquire().await.ok();
            self.client
                .head_object()
                .bucket(&self.bucket)
                .key(key)
                .set_version_id(version)
                .send()
                .await
                .map(|h| h.object_lock_retain_until_date().and_then(from_sdk))
                .map_err(|e| self.error("read the retention of", key, e))
        })
    }

    /// Sets `key`'s retention date to `until`, in the repository's mode.
    pub(super) fn extend_retention_of(
        &self,
        key: &str,
        until: DateTime<Utc>,
    ) -> Result<(), BackendError> {
        let Some(r) = self.retention_policy() else {
            return Err(self.failure(
                "extend the retention of",
                key,
                "no retention",
                "the repository has no Object Lock".into(),
            ));
        };
        let retention = ObjectLockRetention::builder()
            .mode(ObjectLockRetentionMode::from(r.mode.s3_name()))
            .retain_until_date(to_sdk(until))
            .build();
        self.rt.block_on(async {
            let _permit = self.permits.acquire().await.ok();
            self.client
                .put_object_retention()
                .bucket(&self.bucket)
                .key(key)
                .retention(retention)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| self.error("extend the retention of", key, e))
        })
    }

    /// Every version and delete marker under the repository's prefix, keys relative to it.
    pub fn versions(&self) -> Result<Vec<ObjectVersion>, BackendError> {
        self.rt.block_on(self.list_versions())
    }

    async fn list_versions(&self) -> Result<Vec<ObjectVersion>, BackendError> {
        let _permit = self.permits.acquire().await.ok();
        let mut out = Vec::new();
        let (mut key_marker, mut version_marker) = (None, None);
        loop {
            let page = self
                .client
                .list_object_versions()
                .bucket(&self.bucket)
                .prefix(&self.prefix)
                .set_key_marker(key_marker.take())
                .set_version_id_marker(version_marker.take())
                .send()
                .await
                .map_err(|e| self.error("list the versions of", &self.prefix, e))?;
            for v in page.versions() {
                let class = v.storage_class().map_or("STANDARD", |c| c.as_str());
                out.extend(
                    self.version(
                        v.key(),
                        v.version_id(),
                        v.last_modified(),
                        v.is_latest(),
                        v.size(),
                    )
                    .map(|o| ObjectVersion {
                        storage_class: Some(StorageClass::parse(class)),
                        ..o
                    }),
                );
            }
            for m in page.delete_markers() {
                out.extend(
                    self.version(
                        m.key(),
                        m.version_id(),
                        m.last_modified(),
                        m.is_latest(),
                        None,
                    )
                    .map(|o| ObjectVersion {
                        delete_marker: true,
                        ..o
                    }),
                );
            }
            if !page.is_truncated().unwrap_or(false) {
                return Ok(out);
            }
            key_marker = page.next_key_marker().map(str::to_string);
            version_marker = page.next_version_id_marker().map(str::to_string);
            if key_marker.is_none() {
                return Ok(out);
            }
        }
    }

    /// One listed version, keyed relative to the prefix.
    fn version(
        &self,
        key: Option<&str>,
        version_id: Option<&str>,
        modified: Option<&SdkTime>,
        latest: Option<bool>,
        size: Option<i64>,
    ) -> Option<ObjectVersion> {
        Some(ObjectVersion {
            key: key?.strip_prefix(&self.prefix)?.to_string(),
            version_id: version_id.unwrap_or("null").to_string(),
            modified: modified.and_then(from_sdk)?,
            delete_marker: false,
            latest: latest.unwrap_or(false),
            size: size.unwrap_or(0).max(0) as u64,
            storage_class: None,
        })
    }

    /// Removes one version for good: a delete marker (which brings back the version under it),
    /// or a version that no retention protects.
    pub fn delete_version(&self, key: &str, version_id: &str) -> Result<(), BackendError> {
        let full = format!("{}{key}", self.prefix);
        self.rt.block_on(async {
            let _permit = self.permits.acquire().await.ok();
            self.client
                .delete_object()
                .bucket(&self.bucket)
                .key(&full)
                .version_id(version_id)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| self.error("remove a version of", &full, e))
        })
    }

    /// Makes version `version_id` of `key` current again, as a new version with the same bytes
    /// (and, on a locked repository, a fresh retention date).
    pub fn restore_version(&self, key: &str, version_id: &str) -> Result<(), BackendError> {
        let full = format!("{}{key}", self.prefix);
        let source = format!("{}/{full}?versionId={version_id}", self.bucket);
        self.rt.block_on(async {
            let _permit = self.permits.acquire().await.ok();
            let mut req = self
                .client
                .copy_object()
                .bucket(&self.bucket)
                .key(&full)
                .copy_source(source);
            if let Some(r) = self.retention_policy() {
                req = req
                    .object_lock_mode(sdk_mode(r.mode))
                    .object_lock_retain_until_date(to_sdk(retain_until(r)));
            }
            req.send()
                .await
                .map(|_| ())
                .map_err(|e| self.error("restore a version of", &full, e))
        })
    }

    /// Hides `key` behind a delete marker (its versions stay).
    pub fn hide(&self, key: &str) -> Result<(), BackendError> {
        let full = format!("{}{key}", self.prefix);
        self.rt.block_on(async {
            let _permit = self.permits.acquire().await.ok();
            self.client
                .delete_object()
                .bucket(&self.bucket)
                .key(&full)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| self.error("hide", &full, e))
        })
    }

    /// This backend, showing the repository as it was at `time` and refusing every change. The
    /// bucket must keep versions.
    pub fn as_of(mut self, time: DateTime<Utc>) -> Result<Self, BackendError> {
        if !self.versioning_enabled()? {
            return Err(BackendError::Unsupported {
                feature: "reading earlier versions (versioning is not enabled on the bucket)",
                location: self.location.clone(),
            });
        }
        let versions = self.versions()?;
        let current = current_at(&versions, time)
            .into_iter()
            .map(|(k, v)| (format!("{}{k}", self.prefix), v.clone()))
            .collect();
        self.as_of = Some(AsOf { time, current });
        Ok(self)
    }

    /// True when the bucket keeps every version: Object Lock is on (it needs versioning, which
    /// can then never be suspended), or versioning is enabled.
    pub fn versioning_enabled(&self) -> Result<bool, BackendError> {
        // Stores without Object Lock may not know the request: ask about versioning then.
        if self.object_lock_enabled().unwrap_or(false) {
            return Ok(true);
        }
        self.rt.block_on(async {
            let _permit = self.permits.acquire().await.ok();
            self.client
                .get_bucket_versioning()
                .bucket(&self.bucket)
                .send()
                .await
                .map(|v| v.status() == Some(&aws_sdk_s3::types::BucketVersioningStatus::Enabled))
                .map_err(|e| self.error("read the versioning setting of", "", e))
        })
    }

    /// The version to read of `key` in an `--as-of` view (`Err` when the key did not exist
    /// then), or `None` outside one.
    pub(super) fn version_at(&self, key: &str) -> Result<Option<String>, BackendError> {
        let Some(a) = &self.as_of else {
            return Ok(None);
        };
        match a.current.get(key) {
            Some(v) => Ok(Some(v.version_id.clone())),
            None => Err(BackendError::NotFound {
                location: format!("{} (as of {})", self.url(key), a.time.to_rfc3339()),
            }),
        }
    }

    /// Refuses a change in an `--as-of` view.
    pub(super) fn writable(&self) -> Result<(), BackendError> {
        match &self.as_of {
            Some(a) => Err(BackendError::Unsupported {
                feature: "changes while the repository is opened with --as-of",
                location: format!("{} (as of {})", self.location, a.time.to_rfc3339()),
            }),
            None => Ok(()),
        }
    }
}

/// A version of `key` written at `secs` (seconds since the epoch), with id `key@secs`.
#[cfg(test)]
pub(crate) fn test_version(key: &str, secs: i64, marker: bool) -> ObjectVersion {
    ObjectVersion {
        key: key.into(),
        version_id: format!("{key}@{secs}"),
        modified: DateTime::from_timestamp(secs, 0).unwrap_or_default(),
        delete_marker: marker,
        latest: false,
        size: 1,
        storage_class: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use super::test_version as v;

    #[test]
    fn the_version_current_at_a_time_is_the_latest_before_it_unless_deleted() {
        let all = [
            v("a", 10, false),
            v("a", 30, true),
            v("b", 10, false),
            v("b", 20, false),
            v("c", 40, false),
            v("d", 5, false),
            v("d", 8, true),
        ];
        let at = current_at(&all, DateTime::from_timestamp(25, 0).unwrap());
        assert_eq!(
            at["a"].version_id, "a@10",
            "deleted later: still there at 25"
        );
        assert_eq!(at["b"].version_id, "b@20", "the newer write counts");
        assert!(!at.contains_key("c"), "written after 25");
        assert!(!at.contains_key("d"), "deleted before 25");
    }
}
