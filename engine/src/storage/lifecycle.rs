//! Bucket lifecycle rules as floe reads and writes them: the storage-neutral form that the S3
//! backend translates to and from the SDK's types. What a rule means for a repository is the cold
//! tier's business (`cold::tiers`).

use super::StorageClass;

/// One lifecycle rule of a bucket, as far as floe reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// The rule's id.
    pub id: String,
    /// Whether S3 applies it.
    pub enabled: bool,
    /// Key prefix it is limited to (empty: the whole bucket).
    pub prefix: String,
    /// True when it is further limited by tags or object sizes (floe does not evaluate those).
    pub other_conditions: bool,
    /// Moves to other classes: (days after creation, class), in order.
    pub transitions: Vec<(u32, StorageClass)>,
    /// Deletes objects this many days after creation.
    pub expiration_days: Option<u32>,
    /// Aborts multipart uploads left incomplete this many days.
    pub abort_incomplete_multipart_days: Option<u32>,
    /// Deletes versions this many days after they stopped being current (versioned buckets).
    pub noncurrent_expiration_days: Option<u32>,
    /// Removes delete markers that no longer hide any version.
    pub expired_delete_markers: bool,
}

/// A bucket's lifecycle rules, with the prefix of the repository they are read for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lifecycle {
    /// Every rule of the bucket.
    pub rules: Vec<Rule>,
    /// The repository's key prefix in the bucket (without trailing `/`).
    pub prefix: String,
}
