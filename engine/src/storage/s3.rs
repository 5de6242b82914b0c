//! S3 and S3-compatible object stores (AWS, Garage, MinIO, Ceph) through aws-sdk-s3.
//!
//! The [`Backend`] trait is blocking; this backend owns a small tokio runtime and blocks on it, so
//! that the rest of the engine stays free of async code. Callers get parallelism from their own
//! threads (backup runs [`Backend::connections`] pack writers, restore at least as many readers);
//! a semaphore caps requests in flight at that number.
//!
//! Objects are keyed `PREFIX/<layout path>` (format-spec/format.md, "Repository layout"). Data
//! packs may be written in a cheaper storage class; everything else stays STANDARD so that
//! listing, planning and checking never wait for an archive.
//!
//! Retries: the SDK's standard strategy (exponential backoff with jitter) retries throttling
//! (503 SlowDown), 5xx, timeouts and broken connections, and never a 4xx such as AccessDenied or
//! NoSuchBucket. A download whose body breaks after the headers arrived resumes where it stopped.

use std::io::{self, Write};
use std::path::Path;
use std::time::{Duration, SystemTime};

use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::ResponseChecksumValidation;
use aws_sdk_s3::config::{BehaviorVersion, Region, RequestChecksumCalculation};
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::operation::put_object::builders::PutObjectFluentBuilder;
use aws_sdk_s3::primitives::{ByteStream, Length};
use aws_sdk_s3::types::{BucketLocationConstraint, CreateBucketConfiguration};
use bytes::Bytes;
use md5::Digest;
use tokio::sync::Semaphore;

use super::http::{self, NetworkFailure, NetworkProblem, TlsOptions};
use super::{
    Backend, FileType, ObjectEntry, ObjectState, Retention, Staged, StorageClass, ThawRequest,
    ThawState, ThawTier, CONFIG_ID,
};

mod versions;
use crate::id::RawId;
use crate::storage::BackendError;
#[cfg(test)]
pub(crate) use versions::test_version;
pub use versions::{current_at, ObjectVersion};

/// Requests in flight at once unless told otherwise.
pub const DEFAULT_CONNECTIONS: usize = 5;

/// How to reach a bucket, and how to behave there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Options {
    /// `http(s)://host:port` of an S3-compatible store; `None` for AWS.
    pub endpoint: Option<String>,
    /// The bucket.
    pub bucket: String,
    /// Key prefix of the repository inside the bucket, without leading or trailing `/`.
    pub prefix: String,
    /// Region; `None` takes it from the AWS configuration (environment, profile).
    pub region: Option<String>,
    /// AWS profile; `None` takes `AWS_PROFILE` or the default profile.
    pub profile: Option<String>,
    /// Path-style addressing (`host/bucket/key`); `None`: on for custom endpoints, off for AWS.
    pub path_style: Option<bool>,
    /// Storage class of data packs; `None` writes them STANDARD like everything else.
    pub data_storage_class: Option<StorageClass>,
    /// Requests in flight at once.
    pub connections: usize,
    /// Limit for establishing a connection.
    pub connect_timeout: Duration,
    /// Limit for one attempt of one request, from sending it to the end of the response body.
    pub attempt_timeout: Duration,
    /// Attempts per request, the first included.
    pub max_attempts: u32,
    /// Trust and client certificate for an `https` endpoint (and AWS).
    pub tls: TlsOptions,
}

/// An S3 location that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{location:?}{problem}")]
pub struct LocationError {
    /// The location as given.
    pub location: String,
    /// What is wrong with it.
    pub problem: LocationProblem,
}

/// What is wrong with an S3 location.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LocationProblem {
    /// It does not start with `s3:`.
    #[error(" is not an S3 location (s3:...)")]
    NotS3,
    /// `s3:http://` with no host.
    #[error(": no host in the endpoint")]
    NoHost,
    /// No bucket after the endpoint.
    #[error(": no bucket; expected s3:BUCKET/PREFIX or s3:https://HOST:PORT/BUCKET/PREFIX")]
    NoBucket,
    /// A bucket name no store accepts.
    #[error(": {0:?} is not a valid bucket name")]
    BadBucket(String),
}

impl S3Options {
    /// Parses `s3:BUCKET[/PREFIX]` (AWS) or `s3:http(s)://HOST[:PORT]/BUCKET[/PREFIX]`.
    pub fn parse_url(url: &str) -> Result<Self, LocationError> {
        let bad = |problem| LocationError {
            location: url.to_string(),
            problem,
        };
        let Some(rest) = url.strip_prefix("s3:") else {
            return Err(bad(LocationProblem::NotS3));
        };
        let (endpoint, path) = if let Some(after) = rest
            .strip_prefix("http://")
            .map(|a| ("http", a))
            .or_else(|| rest.strip_prefix("https://").map(|a| ("https", a)))
        {
            let (scheme, after) = after;
            let (host, path) = after.split_once('/').unwrap_or((after, ""));
            if host.is_empty() {
                return Err(bad(LocationProblem::NoHost));
            }
            (Some(format!("{scheme}://{host}")), path)
        } else {
            (None, rest.strip_prefix("//").unwrap_or(rest))
        };
        let path = path.trim_matches('/');
        let (bucket, prefix) = path.split_once('/').unwrap_or((path, ""));
        if bucket.is_empty() {
            return Err(bad(LocationProblem::NoBucket));
        }
        if bucket
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '\\')
        {
            return Err(bad(LocationProblem::BadBucket(bucket.to_string())));
        }
        Ok(S3Options {
            endpoint,
            bucket: bucket.to_string(),
            prefix: prefix.trim_matches('/').to_string(),
            region: None,
            profile: None,
            path_style: None,
            data_storage_class: None,
            connections: DEFAULT_CONNECTIONS,
            connect_timeout: Duration::from_secs(10),
            attempt_timeout: Duration::from_secs(300),
            max_attempts: 8,
            tls: TlsOptions::default(),
        })
    }
}

/// An S3 bucket (and prefix) holding one repository.
pub struct S3Backend {
    rt: tokio::runtime::Runtime,
    client: aws_sdk_s3::Client,
    bucket: String,
    /// Empty, or the prefix followed by `/`.
    prefix: String,
    location: String,
    region: String,
    data_class: Option<aws_sdk_s3::types::StorageClass>,
    permits: Semaphore,
    connections: usize,
    max_attempts: u32,
    attempt_timeout: Duration,
    /// Object Lock retention for every object written but lock files.
    retention: std::sync::Mutex<Option<Retention>>,
    /// A read-only view of an earlier time (`--as-of`).
    as_of: Option<versions::AsOf>,
    /// Set once this process looked for the temporary files of killed backups.
    spools_swept: std::sync::Once,
}

impl std::fmt::Debug for S3Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Backend")
            .field("location", &self.location)
            .finish_non_exhaustive()
    }
}

/// A failed GET: before a response (or with an error response), or while reading the body.
enum GetError {
    Request(BackendError),
    Body(String),
}

impl S3Backend {
    /// Connects (lazily: no request is sent here) with credentials from the standard AWS chain.
    pub fn new(opts: &S3Options) -> Result<Self, BackendError> {
        let location = match &opts.endpoint {
            Some(e) => format!("s3:{e}/{}/{}", opts.bucket, opts.prefix),
            None => format!("s3:{}/{}", opts.bucket, opts.prefix),
        };
        let location = location.trim_end_matches('/').to_string();
        let fail = |message: String| BackendError::Remote {
            op: "connect to",
            location: location.clone(),
            code: "configuration".into(),
            message,
            status: None,
        };
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("floe-s3")
            .enable_all()
            .build()
            .map_err(|e| fail(format!("cannot start the I/O runtime: {e}")))?;
        let https = opts
            .endpoint
            .as_deref()
            .is_none_or(|e| e.starts_with("https://"));
        let ca_files = if https {
            let env = std::env::var_os("AWS_CA_BUNDLE")
                .filter(|v| !v.is_empty())
                .map(std::path::PathBuf::from);
            http::choose_ca_files(&opts.tls.cacert, env, || {
                rt.block_on(profile_ca_bundle(opts.profile.as_deref()))
            })
        } else {
            Vec::new()
        };
        let http_client = http::client(&opts.tls, &ca_files, https, opts.connect_timeout)?;
        // The credential providers (STS, SSO, instance metadata) keep the SDK's own client:
        // the trust settings are for the repository's endpoint only.
        let mut loader = aws_config::defaults(BehaviorVersion::latest());
        if let Some(p) = &opts.profile {
            loader = loader.profile_name(p);
        }
        if let Some(r) = &opts.region {
            loader = loader.region(Region::new(r.clone()));
        }
        let sdk = rt.block_on(loader.load());
        let region =
            match (sdk.region(), &opts.endpoint) {
                (Some(r), _) => r.to_string(),
                // S3-compatible stores mostly ignore the region, but requests are signed with one.
                (None, Some(_)) => "us-east-1".to_string(),
                (None, None) => return Err(fail(
                    "no AWS region: set AWS_REGION, a region in the AWS profile, or --s3-region"
                        .into(),
                )),
            };
        let connections = opts.connections.max(1);
        let mut conf = aws_sdk_s3::config::Builder::from(&sdk)
            .http_client(http_client)
            .region(Region::new(region.clone()))
            .force_path_style(opts.path_style.unwrap_or(opts.endpoint.is_some()))
            // Several S3-compatible stores refuse the SDK's default CRC32 trailers. A body in
            // memory is covered by the SigV4 signature, one sent from a file by its Content-MD5,
            // and every pack by its own hash.
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
            .retry_config(
                RetryConfig::standard()
                    .with_max_attempts(opts.max_attempts.max(1))
                    .with_initial_backoff(Duration::from_millis(250))
                    .with_max_backoff(Duration::from_secs(20)),
            )
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(opts.connect_timeout)
                    .operation_attempt_timeout(opts.attempt_timeout)
                    .build(),
            );
        if let Some(e) = &opts.endpoint {
            conf = conf.endpoint_url(e);
        }
        let client = aws_sdk_s3::Client::from_conf(conf.build());
        let prefix = if opts.prefix.is_empty() {
            String::new()
        } else {
            format!("{}/", opts.prefix)
        };
        Ok(S3Backend {
            rt,
            client,
            bucket: opts.bucket.clone(),
            prefix,
            location,
            region,
            data_class: opts
                .data_storage_class
                .as_ref()
                .map(|c| aws_sdk_s3::types::StorageClass::from(c.name())),
            permits: Semaphore::new(connections),
            connections,
            max_attempts: opts.max_attempts.max(1),
            attempt_timeout: opts.attempt_timeout,
            retention: Default::default(),
            as_of: None,
            spools_swept: std::sync::Once::new(),
        })
    }

    /// The location constraint a new bucket needs outside us-east-1.
    fn bucket_configuration(&self) -> Option<CreateBucketConfiguration> {
        (self.region != "us-east-1").then(|| {
            CreateBucketConfiguration::builder()
                .location_constraint(BucketLocationConstraint::from(self.region.as_str()))
                .build()
        })
    }

    fn key(&self, t: FileType, id: &RawId) -> String {
        format!("{}{}", self.prefix, t.object_path(id))
    }

    fn url(&self, key: &str) -> String {
        format!("s3://{}/{key}", self.bucket)
    }

    /// A failure of `op` on `key` that no response status describes.
    fn failure(&self, op: &'static str, key: &str, code: &str, message: String) -> BackendError {
        BackendError::Remote {
            op,
            location: self.url(key),
            code: code.to_string(),
            message,
            status: None,
        }
    }

    /// Maps an SDK error to a backend error naming bucket, key and the store's code.
    fn error<E>(&self, op: &'static str, key: &str, err: SdkError<E>) -> BackendError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let location = self.url(key);
        if let Some((problem, causes)) = self.network_problem(&err) {
            return BackendError::Unreachable {
                op,
                location,
                problem: Box::new(problem),
                causes,
            };
        }
        let (code, status, message) = match &err {
            SdkError::ServiceError(se) => {
                let status = se.raw().status().as_u16();
                let code = se
                    .err()
                    .code()
                    .map(str::to_string)
                    .unwrap_or_else(|| status_name(status).to_string());
                let message = se.err().message().unwrap_or_default().to_string();
                (code, Some(status), message)
            }
            SdkError::TimeoutError(_) => (
                "timeout".into(),
                None,
                DisplayErrorContext(&err).to_string(),
            ),
            SdkError::DispatchFailure(d) => {
                let code = if d.is_timeout() {
                    "timeout"
                } else if d.is_io() {
                    "connection failed"
                } else {
                    "request failed"
                };
                (code.into(), None, DisplayErrorContext(&err).to_string())
            }
            SdkError::ResponseError(_) => (
                "unreadable response".into(),
                None,
                DisplayErrorContext(&err).to_string(),
            ),
            _ => (
                "request failed".into(),
                None,
                DisplayErrorContext(&err).to_string(),
            ),
        };
        match (status, code.as_str()) {
            (Some(404), "NoSuchKey" | "NotFound" | "Not Found") => {
                BackendError::NotFound { location }
            }
            (Some(416), _) | (_, "InvalidRange") => BackendError::ShortRead {
                location,
                offset: 0,
                wanted: 0,
                got: 0,
            },
            _ => BackendError::Remote {
                op,
                location,
                code,
                message,
                status,
            },
        }
    }

    /// The network problem under a failed request: one the HTTP client named, or a timeout of
    /// the last attempt. `None` when the store answered.
    fn network_problem<E>(&self, err: &SdkError<E>) -> Option<(NetworkProblem, Vec<String>)>
    where
        E: std::error::Error + Send + Sync + 'static,
    {
        if let SdkError::TimeoutError(_) = err {
            let problem = NetworkProblem::AttemptTimeout {
                limit: self.attempt_timeout,
                attempts: self.max_attempts,
            };
            return Some((problem, vec![DisplayErrorContext(err).to_string()]));
        }
        http::chain(err)
            .find_map(|e| e.downcast_ref::<NetworkFailure>())
            .map(|f| (f.problem.clone(), f.causes.clone()))
    }

    /// GETs `key` (or a range of it), appending the body to `buf`.
    async fn get(
        &self,
        key: &str,
        range: Option<String>,
        sink: &mut dyn FnMut(&[u8]),
        got: &mut u64,
        limit: u64,
    ) -> Result<(), GetError> {
        // The SDK's attempt timeout ends with the response headers of a streamed body: the
        // body gets the rest of the attempt's time here, and a body cut short resumes.
        let deadline = tokio::time::Instant::now() + self.attempt_timeout;
        let ranged = range.is_some();
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|e| GetError::Body(e.to_string()))?;
        let version = self.version_at(key).map_err(GetError::Request)?;
        let resp = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .set_version_id(version)
            .set_range(range)
            .send()
            .await;
        let resp = match resp {
            Ok(r) => r,
            Err(e) => {
                let code = e.code().map(str::to_string);
                let mut err = self.error("read", key, e);
                if code.as_deref() == Some("InvalidObjectState") {
                    err = BackendError::NeedsThaw {
                        location: self.url(key),
                        storage_class: self
                            .head_class(key)
                            .await
                            .unwrap_or_else(|| "an archive class".into()),
                    };
                }
                return Err(GetError::Request(err));
            }
        };
        if ranged && resp.content_range().is_none() {
            // A store that ignores Range sends the whole object: appending it would corrupt
            // the read (a resumed one above all).
            return Err(GetError::Request(self.failure(
                "read",
                key,
                "unexpected response",
                "the store ignored the Range header".into(),
            )));
        }
        let mut body = resp.body;
        let mut this_body = 0u64;
        loop {
            let next = match tokio::time::timeout_at(deadline, body.try_next()).await {
                Ok(next) => next,
                Err(_) => {
                    return Err(GetError::Body(format!(
                        "the body did not arrive within the attempt timeout ({:?})",
                        self.attempt_timeout
                    )))
                }
            };
            match next {
                Ok(Some(chunk)) => {
                    this_body += chunk.len() as u64;
                    if this_body > limit {
                        return Err(GetError::Request(self.failure(
                            "read",
                            key,
                            "unexpected response",
                            "the store sent more bytes than asked for".into(),
                        )));
                    }
                    sink(&chunk);
                    *got += chunk.len() as u64;
                }
                Ok(None) => return Ok(()),
                Err(e) => return Err(GetError::Body(DisplayErrorContext(&e).to_string())),
            }
        }
    }

    async fn head_class(&self, key: &str) -> Option<String> {
        let r = self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .set_version_id(self.version_at(key).ok().flatten())
            .send()
            .await
            .ok()?;
        Some(
            r.storage_class()
                .map(|c| c.as_str().to_string())
                .unwrap_or_else(|| "STANDARD".into()),
        )
    }

    /// Reads `length` bytes at `offset` (the whole object when `length` is `None`) into `buf`.
    fn read_into(
        &self,
        t: FileType,
        id: &RawId,
        range: Option<(u64, u64)>,
        buf: &mut Vec<u8>,
    ) -> Result<(), BackendError> {
        buf.clear();
        if let Some((_, len)) = range {
            buf.reserve(len.min(64 << 20) as usize);
        }
        self.read_stream(t, id, range, &mut |bytes| buf.extend_from_slice(bytes))
    }

    /// Reads `length` bytes at `offset` (the whole object when `length` is `None`), handing them
    /// to `sink` as they arrive and resuming a body that breaks off where it broke.
    fn read_stream(
        &self,
        t: FileType,
        id: &RawId,
        range: Option<(u64, u64)>,
        sink: &mut dyn FnMut(&[u8]),
    ) -> Result<(), BackendError> {
        let key = self.key(t, id);
        if let Some((_, 0)) = range {
            return Ok(());
        }
        let mut got = 0u64;
        self.rt.block_on(async {
            let mut broken = 0;
            loop {
                if range.is_some_and(|(_, len)| got >= len) {
                    break; // the body broke off after its last byte
                }
                let (header, limit) = match range {
                    Some((off, len)) => (
                        Some(format!("bytes={}-{}", off + got, off + len - 1)),
                        len - got,
                    ),
                    None if got == 0 => (None, u64::MAX),
                    None => (Some(format!("bytes={got}-")), u64::MAX),
                };
                match self.get(&key, header, &mut *sink, &mut got, limit).await {
                    Ok(()) => break,
                    Err(GetError::Request(e)) => return Err(e),
                    Err(GetError::Body(msg)) => {
                        broken += 1;
                        if broken >= self.max_attempts {
                            return Err(self.failure("read", &key, "connection broken", msg));
                        }
                        tokio::time::sleep(Duration::from_millis(250 << broken.min(6))).await;
                    }
                }
            }
            Ok(())
        })?;
        if let Some((offset, length)) = range {
            if got != length {
                return Err(BackendError::ShortRead {
                    location: self.url(&key),
                    offset,
                    wanted: length,
                    got,
                });
            }
        }
        Ok(())
    }

    /// The objects of type `t` in an `--as-of` view.
    fn list_as_of(&self, a: &versions::AsOf, t: FileType, prefix: &str) -> Vec<ObjectEntry> {
        let mut out = Vec::new();
        for (key, v) in &a.current {
            let id = match t {
                FileType::Config if key == prefix => CONFIG_ID,
                FileType::Config => continue,
                _ if !key.starts_with(prefix) => continue,
                _ => match super::parse_name(key.rsplit('/').next().unwrap_or_default()) {
                    Some(id) if self.key(t, &id) == *key => id,
                    _ => continue,
                },
            };
            out.push(ObjectEntry {
                id,
                size: v.size,
                modified: Some(v.modified.into()),
                storage_class: v.storage_class.clone(),
            });
        }
        out
    }

    fn list_prefix(&self, t: FileType) -> String {
        match t {
            FileType::Config => format!("{}config", self.prefix),
            t => format!("{}{}/", self.prefix, t.dir_name()),
        }
    }

    /// The region requests are signed for.
    pub fn region(&self) -> &str {
        &self.region
    }
}

/// The `ca_bundle` of the AWS profile in use (`profile`, else `AWS_PROFILE`, else `default`),
/// with the profile's name. `None` when there is none, or no AWS configuration at all.
async fn profile_ca_bundle(profile: Option<&str>) -> Option<(String, std::path::PathBuf)> {
    use aws_types::os_shim_internal::{Env, Fs};
    let set = aws_config::profile::load(
        &Fs::real(),
        &Env::real(),
        &aws_runtime::env_config::file::EnvConfigFiles::default(),
        profile.map(|p| std::borrow::Cow::Owned(p.to_string())),
    )
    .await
    .ok()?;
    let path = set.get("ca_bundle")?;
    Some((set.selected_profile().to_string(), path.into()))
}

fn status_name(status: u16) -> &'static str {
    match status {
        400 => "BadRequest",
        403 => "Forbidden",
        404 => "NotFound",
        409 => "Conflict",
        416 => "InvalidRange",
        500 => "InternalError",
        503 => "ServiceUnavailable",
        _ => "HTTP error",
    }
}

/// Parses the `x-amz-restore` header: `ongoing-request="true"`, or
/// `ongoing-request="false", expiry-date="Fri, 21 Dec 2012 00:00:00 GMT"`.
pub fn parse_restore_header(h: &str) -> ThawState {
    if h.contains("ongoing-request=\"true\"") {
        return ThawState::InProgress;
    }
    let expires = h.split_once("expiry-date=\"").and_then(|(_, rest)| {
        let date = rest.split('"').next()?;
        chrono::DateTime::parse_from_rfc2822(date)
            .ok()
            .map(|d| SystemTime::from(d.with_timezone(&chrono::Utc)))
    });
    ThawState::Restored { expires }
}

impl Backend for S3Backend {
    fn location(&self) -> String {
        self.location.clone()
    }

    fn create(&self) -> Result<(), BackendError> {
        self.writable()?;
        self.rt.block_on(async {
            let head = self.client.head_bucket().bucket(&self.bucket).send().await;
            let exists = match head {
                Ok(_) => true,
                Err(SdkError::ServiceError(se)) if se.raw().status().as_u16() == 404 => false,
                // A policy may allow listing only under the repository's prefix, which HEAD on
                // the bucket does not satisfy: go on, and let the writes tell.
                Err(SdkError::ServiceError(se)) if se.raw().status().as_u16() == 403 => {
                    if self.retention_policy().is_some() {
                        return self.create_locked(true).await;
                    }
                    return Ok(());
                }
                Err(e) => return Err(self.error("open bucket", "", e)),
            };
            if self.retention_policy().is_some() {
                return self.create_locked(exists).await;
            }
            if exists {
                return Ok(());
            }
            let req = self
                .client
                .create_bucket()
                .bucket(&self.bucket)
                .set_create_bucket_configuration(self.bucket_configuration());
            match req.send().await {
                Ok(_) => Ok(()),
                Err(e) if e.code() == Some("BucketAlreadyOwnedByYou") => Ok(()),
                Err(e) => Err(self.error("create bucket", "", e)),
            }
        })
    }

    fn list(&self, t: FileType) -> Result<Vec<ObjectEntry>, BackendError> {
        let prefix = self.list_prefix(t);
        if let Some(a) = &self.as_of {
            return Ok(self.list_as_of(a, t, &prefix));
        }
        self.rt.block_on(async {
            let _permit = self.permits.acquire().await.ok();
            let mut out = Vec::new();
            let mut pages = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(&prefix)
                .into_paginator()
                .send();
            while let Some(page) = pages.next().await {
                let page = match page {
                    Ok(p) => p,
                    // A bucket that does not exist holds no repository; `create` makes it.
                    Err(e) if e.code() == Some("NoSuchBucket") => return Ok(Vec::new()),
                    Err(e) => return Err(self.error("list", &prefix, e)),
                };
                for o in page.contents() {
                    let Some(key) = o.key() else { continue };
                    let id = if t == FileType::Config {
                        if key != prefix {
                            continue;
                        }
                        CONFIG_ID
                    } else {
                        let name = key.rsplit('/').next().unwrap_or_default();
                        match super::parse_name(name) {
                            Some(id) if self.key(t, &id) == key => id,
                            _ => continue, // strays and temporary names
                        }
                    };
                    out.push(ObjectEntry {
                        id,
                        size: o.size().unwrap_or(0).max(0) as u64,
                        modified: o
                            .last_modified()
                            .and_then(|d| SystemTime::try_from(*d).ok()),
                        storage_class: Some(StorageClass::parse(
                            o.storage_class().map(|c| c.as_str()).unwrap_or("STANDARD"),
                        )),
                    });
                }
            }
            Ok(out)
        })
    }

    fn read(&self, t: FileType, id: &RawId) -> Result<Vec<u8>, BackendError> {
        let mut buf = Vec::new();
        self.read_into(t, id, None, &mut buf)?;
        Ok(buf)
    }

    fn read_range(
        &self,
        t: FileType,
        id: &RawId,
        offset: u64,
        length: u64,
    ) -> Result<Vec<u8>, BackendError> {
        let mut buf = Vec::new();
        self.read_into(t, id, Some((offset, length)), &mut buf)?;
        Ok(buf)
    }

    fn read_range_into(
        &self,
        t: FileType,
        id: &RawId,
        offset: u64,
        length: u64,
        buf: &mut Vec<u8>,
    ) -> Result<(), BackendError> {
        self.read_into(t, id, Some((offset, length)), buf)
    }

    fn read_range_with(
        &self,
        t: FileType,
        id: &RawId,
        offset: u64,
        length: u64,
        sink: &mut dyn FnMut(&[u8]),
    ) -> Result<(), BackendError> {
        self.read_stream(t, id, Some((offset, length)), sink)
    }

    fn write(&self, t: FileType, id: &RawId, data: &[u8]) -> Result<(), BackendError> {
        self.put(t, id, Bytes::copy_from_slice(data)).map(|_| ())
    }

    fn write_owned(
        &self,
        t: FileType,
        id: &RawId,
        data: Vec<u8>,
    ) -> Result<Option<Vec<u8>>, BackendError> {
        self.put(t, id, Bytes::from(data))
    }

    fn stage(&self, t: FileType) -> Result<Option<Box<dyn Staged + '_>>, BackendError> {
        self.writable()?;
        self.spools_swept.call_once(|| {
            let dir = std::env::temp_dir();
            for stale in stale_spools(&dir, SystemTime::now()) {
                let _ = std::fs::remove_file(stale);
            }
        });
        let file = tempfile::Builder::new()
            .prefix(SPOOL_PREFIX)
            .tempfile()
            .map_err(|e| spool_error("create", &std::env::temp_dir(), e))?;
        Ok(Some(Box::new(SpooledPut {
            backend: self,
            file_type: t,
            file: io::BufWriter::with_capacity(1 << 16, file),
            len: 0,
            md5: md5::Md5::new(),
        })))
    }

    fn remove(&self, t: FileType, id: &RawId) -> Result<(), BackendError> {
        self.writable()?;
        let key = self.key(t, id);
        self.rt.block_on(async {
            let _permit = self.permits.acquire().await.ok();
            // S3 deletes are idempotent; the trait promises NotFound for a missing object (lock
            // refresh relies on it), so look first.
            if let Err(e) = self
                .client
                .head_object()
                .bucket(&self.bucket)
                .key(&key)
                .send()
                .await
            {
                return Err(self.error("remove", &key, e));
            }
            self.client
                .delete_object()
                .bucket(&self.bucket)
                .key(&key)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| self.error("remove", &key, e))
        })
    }

    fn stat(&self, t: FileType, id: &RawId) -> Result<ObjectState, BackendError> {
        let key = self.key(t, id);
        let version = self.version_at(&key)?;
        let h = self.rt.block_on(async {
            let _permit = self.permits.acquire().await.ok();
            self.client
                .head_object()
                .bucket(&self.bucket)
                .key(&key)
                .set_version_id(version)
                .send()
                .await
                .map_err(|e| self.error("stat", &key, e))
        })?;
        let class =
            StorageClass::parse(h.storage_class().map(|c| c.as_str()).unwrap_or("STANDARD"));
        // Intelligent-Tiering's opt-in archive tiers also need a restore.
        let archived = class.needs_thaw() || h.archive_status().is_some();
        let thaw = match (archived, h.restore()) {
            (false, _) => ThawState::Readable,
            (true, None) => ThawState::Archived,
            (true, Some(r)) => parse_restore_header(r),
        };
        Ok(ObjectState {
            size: h.content_length().unwrap_or(0).max(0) as u64,
            storage_class: Some(class),
            thaw,
        })
    }

    fn connections(&self) -> usize {
        self.connections
    }

    fn is_remote(&self) -> bool {
        true
    }

    fn lifecycle(&self) -> Result<Option<crate::storage::lifecycle::Lifecycle>, BackendError> {
        Ok(Some(crate::storage::lifecycle::Lifecycle {
            rules: self.lifecycle_rules()?,
            prefix: self.prefix().to_string(),
        }))
    }

    fn set_retention(&self, r: Retention) -> Result<(), BackendError> {
        *self.retention.lock().unwrap_or_else(|p| p.into_inner()) = Some(r);
        Ok(())
    }

    fn retention(
        &self,
        t: FileType,
        id: &RawId,
    ) -> Result<Option<chrono::DateTime<chrono::Utc>>, BackendError> {
        self.retention_of(&self.key(t, id))
    }

    fn extend_retention(
        &self,
        t: FileType,
        id: &RawId,
        until: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), BackendError> {
        self.writable()?;
        self.extend_retention_of(&self.key(t, id), until)
    }

    fn request_thaw(
        &self,
        t: FileType,
        id: &RawId,
        days: u32,
        tier: ThawTier,
    ) -> Result<ThawRequest, BackendError> {
        use aws_sdk_s3::types::{GlacierJobParameters, RestoreRequest, Tier};
        let key = self.key(t, id);
        let params = GlacierJobParameters::builder()
            .tier(Tier::from(tier.name()))
            .build()
            .map_err(|e| self.failure("thaw", &key, "request not built", e.to_string()))?;
        let request = RestoreRequest::builder()
            .days(days.min(i32::MAX as u32) as i32)
            .glacier_job_parameters(params)
            .build();
        let version = self.version_at(&key)?;
        self.rt.block_on(async {
            let _permit = self.permits.acquire().await.ok();
            match self
                .client
                .restore_object()
                .bucket(&self.bucket)
                .key(&key)
                .set_version_id(version)
                .restore_request(request)
                .send()
                .await
            {
                Ok(_) => Ok(ThawRequest::Started),
                Err(e) if e.code() == Some("RestoreAlreadyInProgress") => {
                    Ok(ThawRequest::AlreadyInProgress)
                }
                // Objects in instant classes cannot be restored: they need not be.
                Err(e) if e.code() == Some("InvalidObjectState") => Ok(ThawRequest::NotNeeded),
                Err(e) => Err(self.error("thaw", &key, e)),
            }
        })
    }
}

impl S3Backend {
    /// PUTs one object; returns the buffer when the HTTP client let go of it.
    fn put(&self, t: FileType, id: &RawId, data: Bytes) -> Result<Option<Vec<u8>>, BackendError> {
        self.writable()?;
        let key = self.key(t, id);
        let body = data.clone();
        self.rt.block_on(async {
            let _permit = self.permits.acquire().await.ok();
            let mut req = self.put_request(t, &key).body(ByteStream::from(body));
            if t != FileType::Lock && self.retention_policy().is_some() {
                // What S3 asks for with a retention: the body's own checksum.
                req = req.content_md5(content_md5(md5::Md5::new_with_prefix(&data)));
            }
            req.send().await.map_err(|e| self.error("write", &key, e))
        })?;
        Ok(data.try_into_mut().ok().map(Vec::from))
    }

    /// PUTs one object from a file, read as it is sent (and again for a retry).
    fn put_file(
        &self,
        t: FileType,
        id: &RawId,
        file: &SpooledBody<'_>,
    ) -> Result<(), BackendError> {
        self.writable()?;
        let key = self.key(t, id);
        self.rt.block_on(async {
            let _permit = self.permits.acquire().await.ok();
            let body = ByteStream::read_from()
                .path(file.path)
                .length(Length::Exact(file.len))
                .build()
                .await
                .map_err(|e| spool_error("read", file.path, io::Error::other(e)))?;
            let req = self
                .put_request(t, &key)
                .body(body)
                .content_length(file.len as i64)
                .content_md5(&file.md5);
            req.send().await.map_err(|e| self.error("write", &key, e))
        })?;
        Ok(())
    }

    /// A PUT of `key` with what every write carries: the data packs' storage class, and the
    /// retention of an Object Lock repository on everything but lock files.
    fn put_request(&self, t: FileType, key: &str) -> PutObjectFluentBuilder {
        let class = (t == FileType::DataPack)
            .then(|| self.data_class.clone())
            .flatten();
        let req = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .set_storage_class(class);
        if t == FileType::Lock {
            req
        } else {
            self.with_retention(req)
        }
    }
}

/// A pack written to a temporary file as it fills, then sent from the file in one PUT, so that
/// no whole pack waits in memory for its upload. The file is in the system's temporary folder
/// (`TMPDIR`) and goes when this is dropped, uploaded or not.
struct SpooledPut<'a> {
    backend: &'a S3Backend,
    file_type: FileType,
    file: io::BufWriter<tempfile::NamedTempFile>,
    len: u64,
    /// The MD5 of what was written, sent as `Content-MD5`: a body read from a file is not
    /// covered by the request's signature, and the store checks this instead.
    md5: md5::Md5,
}

impl Staged for SpooledPut<'_> {
    fn append(&mut self, bytes: &[u8]) -> Result<(), BackendError> {
        self.file
            .write_all(bytes)
            .map_err(|e| spool_error("write", self.file.get_ref().path(), e))?;
        self.md5.update(bytes);
        self.len += bytes.len() as u64;
        Ok(())
    }

    fn len(&self) -> u64 {
        self.len
    }

    fn commit(self: Box<Self>, id: &RawId) -> Result<(), BackendError> {
        let path = self.file.get_ref().path().to_path_buf();
        let file = self
            .file
            .into_inner()
            .map_err(|e| spool_error("write", &path, e.into_error()))?;
        let body = SpooledBody {
            path: file.path(),
            len: self.len,
            md5: content_md5(self.md5),
        };
        self.backend.put_file(self.file_type, id, &body)
    }
}

/// How the temporary files of packs on their way to the bucket are named.
const SPOOL_PREFIX: &str = "floe-pack-";

/// The temporary files of packs in `dir` that no backup has written to for a day: a killed
/// backup's. A running backup writes its files from start to upload within minutes.
fn stale_spools(dir: &Path, now: SystemTime) -> Vec<std::path::PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let day = Duration::from_secs(24 * 3600);
    entries
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with(SPOOL_PREFIX))
        .filter(|e| {
            e.metadata().is_ok_and(|m| {
                m.is_file()
                    && m.modified()
                        .ok()
                        .and_then(|t| now.duration_since(t).ok())
                        .is_some_and(|age| age >= day)
            })
        })
        .map(|e| e.path())
        .collect()
}

/// The `Content-MD5` of what went into `md5`: base64 of the digest.
fn content_md5(md5: md5::Md5) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(md5.finalize())
}

/// A complete temporary file to send.
struct SpooledBody<'a> {
    path: &'a Path,
    len: u64,
    /// Base64 of the MD5 of its bytes.
    md5: String,
}

/// An error of the temporary file a pack is written to before its upload.
fn spool_error(op: &'static str, path: &Path, source: io::Error) -> BackendError {
    BackendError::Io {
        op,
        location: format!(
            "{} (a pack on its way to the bucket; TMPDIR moves it)",
            path.display()
        ),
        source,
    }
}

type SdkLifecycle = (
    Vec<aws_sdk_s3::types::LifecycleRule>,
    Option<aws_sdk_s3::types::TransitionDefaultMinimumObjectSize>,
);

/// Bucket lifecycle rules (`floe tier`): read, and add or replace floe's rule while keeping
/// every other rule as it is.
impl S3Backend {
    /// The rules as the SDK read them, and the bucket-wide minimum object size setting, so
    /// that a write-back keeps both.
    async fn sdk_rules(&self) -> Result<SdkLifecycle, BackendError> {
        match self
            .client
            .get_bucket_lifecycle_configuration()
            .bucket(&self.bucket)
            .send()
            .await
        {
            Ok(o) => Ok((
                o.rules().to_vec(),
                o.transition_default_minimum_object_size().cloned(),
            )),
            Err(e) if e.code() == Some("NoSuchLifecycleConfiguration") => Ok((Vec::new(), None)),
            Err(e) => Err(self.error("read the lifecycle rules of", "", e)),
        }
    }

    /// The bucket's lifecycle rules.
    pub fn lifecycle_rules(&self) -> Result<Vec<crate::storage::lifecycle::Rule>, BackendError> {
        let (rules, _) = self.rt.block_on(self.sdk_rules())?;
        Ok(rules.iter().map(rule_from_sdk).collect())
    }

    /// Adds `rule`, replacing a rule with the same id; other rules are written back unchanged.
    pub fn put_lifecycle_rule(
        &self,
        rule: &crate::storage::lifecycle::Rule,
    ) -> Result<(), BackendError> {
        use aws_sdk_s3::types::BucketLifecycleConfiguration;
        let bad = |e: aws_sdk_s3::error::BuildError| {
            self.failure(
                "write the lifecycle rules of",
                "",
                "request not built",
                e.to_string(),
            )
        };
        self.rt.block_on(async {
            let (mut rules, min_size) = self.sdk_rules().await?;
            rules.retain(|r| r.id() != Some(rule.id.as_str()));
            rules.push(rule_to_sdk(rule).map_err(bad)?);
            let conf = BucketLifecycleConfiguration::builder()
                .set_rules(Some(rules))
                .build()
                .map_err(bad)?;
            self.client
                .put_bucket_lifecycle_configuration()
                .bucket(&self.bucket)
                .lifecycle_configuration(conf)
                .set_transition_default_minimum_object_size(min_size)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| self.error("write the lifecycle rules of", "", e))
        })
    }

    /// The repository's key prefix, without trailing `/`.
    pub fn prefix(&self) -> &str {
        self.prefix.trim_end_matches('/')
    }
}

pub(crate) fn rule_from_sdk(
    r: &aws_sdk_s3::types::LifecycleRule,
) -> crate::storage::lifecycle::Rule {
    use aws_sdk_s3::types::ExpirationStatus;
    #[allow(deprecated)]
    let legacy_prefix = r.prefix();
    let (prefix, other) = match r.filter() {
        Some(f) => {
            let and = f.and();
            let prefix = f
                .prefix()
                .or_else(|| and.and_then(|a| a.prefix()))
                .unwrap_or_default();
            let other = f.tag().is_some()
                || f.object_size_greater_than().is_some()
                || f.object_size_less_than().is_some()
                || and.is_some_and(|a| {
                    !a.tags().is_empty()
                        || a.object_size_greater_than().is_some()
                        || a.object_size_less_than().is_some()
                });
            (prefix.to_string(), other)
        }
        None => (legacy_prefix.unwrap_or_default().to_string(), false),
    };
    crate::storage::lifecycle::Rule {
        id: r.id().unwrap_or("(no id)").to_string(),
        enabled: r.status() == &ExpirationStatus::Enabled,
        prefix,
        other_conditions: other,
        transitions: r
            .transitions()
            .iter()
            .map(|t| {
                (
                    t.days().unwrap_or(0).max(0) as u32,
                    StorageClass::parse(t.storage_class().map_or("", |c| c.as_str())),
                )
            })
            .collect(),
        expiration_days: r
            .expiration()
            .and_then(|e| e.days())
            .map(|d| d.max(0) as u32),
        abort_incomplete_multipart_days: r
            .abort_incomplete_multipart_upload()
            .and_then(|a| a.days_after_initiation())
            .map(|d| d.max(0) as u32),
        noncurrent_expiration_days: r
            .noncurrent_version_expiration()
            .and_then(|n| n.noncurrent_days())
            .map(|d| d.max(0) as u32),
        expired_delete_markers: r
            .expiration()
            .and_then(|e| e.expired_object_delete_marker())
            .unwrap_or(false),
    }
}

pub(crate) fn rule_to_sdk(
    r: &crate::storage::lifecycle::Rule,
) -> Result<aws_sdk_s3::types::LifecycleRule, aws_sdk_s3::error::BuildError> {
    use aws_sdk_s3::types::{
        AbortIncompleteMultipartUpload, ExpirationStatus, LifecycleExpiration, LifecycleRule,
        LifecycleRuleFilter, NoncurrentVersionExpiration, Transition, TransitionStorageClass,
    };
    let mut b = LifecycleRule::builder()
        .id(&r.id)
        .status(if r.enabled {
            ExpirationStatus::Enabled
        } else {
            ExpirationStatus::Disabled
        })
        .filter(LifecycleRuleFilter::builder().prefix(&r.prefix).build());
    for (days, class) in &r.transitions {
        b = b.transitions(
            Transition::builder()
                .days((*days).min(i32::MAX as u32) as i32)
                .storage_class(TransitionStorageClass::from(class.name()))
                .build(),
        );
    }
    if let Some(d) = r.expiration_days {
        b = b.expiration(
            LifecycleExpiration::builder()
                .days(d.min(i32::MAX as u32) as i32)
                .build(),
        );
    } else if r.expired_delete_markers {
        b = b.expiration(
            LifecycleExpiration::builder()
                .expired_object_delete_marker(true)
                .build(),
        );
    }
    if let Some(d) = r.noncurrent_expiration_days {
        b = b.noncurrent_version_expiration(
            NoncurrentVersionExpiration::builder()
                .noncurrent_days(d.min(i32::MAX as u32) as i32)
                .build(),
        );
    }
    if let Some(d) = r.abort_incomplete_multipart_days {
        b = b.abort_incomplete_multipart_upload(
            AbortIncompleteMultipartUpload::builder()
                .days_after_initiation(d.min(i32::MAX as u32) as i32)
                .build(),
        );
    }
    b.build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pack_files_of_killed_backups_are_those_a_day_old() {
        let dir = tempfile::tempdir().unwrap();
        let now = SystemTime::now();
        let day_and_more = now - Duration::from_secs(25 * 3600);
        let make = |name: &str, old: bool| {
            let p = dir.path().join(name);
            let f = std::fs::File::create(&p).unwrap();
            if old {
                f.set_modified(day_and_more).unwrap();
            }
            p
        };
        let killed = make("floe-pack-a1B2c3", true);
        make("floe-pack-d4E5f6", false);
        make("restic-temp-pack-123", true);
        let folder = dir.path().join("floe-pack-folder");
        std::fs::create_dir(&folder).unwrap();
        let f = std::fs::File::open(&folder).unwrap();
        f.set_modified(day_and_more).unwrap();
        assert_eq!(stale_spools(dir.path(), now), vec![killed]);
        assert!(stale_spools(&dir.path().join("none"), now).is_empty());
    }

    #[test]
    fn content_md5_is_the_base64_of_the_digest_of_all_that_went_in() {
        // RFC 1321's test suite ("" and "message digest"), in base64 as S3 expects it.
        assert_eq!(content_md5(md5::Md5::new()), "1B2M2Y8AsgTpgAmY7PhCfg==");
        let mut pieces = md5::Md5::new();
        pieces.update(b"message ");
        pieces.update(b"digest");
        assert_eq!(content_md5(pieces), "+WtpfXy3k41SWi8xqvFh0A==");
    }

    #[test]
    fn urls() {
        let o = S3Options::parse_url("s3:my-bucket/backups/laptop").unwrap();
        assert_eq!(o.endpoint, None);
        assert_eq!(
            (o.bucket.as_str(), o.prefix.as_str()),
            ("my-bucket", "backups/laptop")
        );
        let o = S3Options::parse_url("s3:http://127.0.0.1:3900/b/").unwrap();
        assert_eq!(o.endpoint.as_deref(), Some("http://127.0.0.1:3900"));
        assert_eq!((o.bucket.as_str(), o.prefix.as_str()), ("b", ""));
        let o = S3Options::parse_url("s3:https://s3.example.org/b/p/q").unwrap();
        assert_eq!(o.endpoint.as_deref(), Some("https://s3.example.org"));
        assert_eq!((o.bucket.as_str(), o.prefix.as_str()), ("b", "p/q"));
        assert_eq!(S3Options::parse_url("s3://b/p").unwrap().bucket, "b");
        assert!(S3Options::parse_url("s3:").is_err());
        assert!(S3Options::parse_url("s3:http://host:9000/").is_err());
        assert!(S3Options::parse_url("s3:http:///b").is_err());
        assert!(S3Options::parse_url("/local/path").is_err());
    }

    #[test]
    fn restore_headers() {
        assert_eq!(
            parse_restore_header("ongoing-request=\"true\""),
            ThawState::InProgress
        );
        let ThawState::Restored { expires: Some(t) } = parse_restore_header(
            "ongoing-request=\"false\", expiry-date=\"Fri, 21 Dec 2012 00:00:00 GMT\"",
        ) else {
            panic!("not parsed as restored with an expiry");
        };
        assert_eq!(
            t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs(),
            1_356_048_000
        );
    }

    #[test]
    fn creating_a_backend_sends_nothing() {
        // No server listens on port 9; building the client must not contact it.
        let mut o = S3Options::parse_url("s3:http://127.0.0.1:9/bucket/prefix").unwrap();
        o.region = Some("test".into());
        let b = S3Backend::new(&o).unwrap();
        assert_eq!(b.location(), "s3:http://127.0.0.1:9/bucket/prefix");
        assert_eq!(b.key(FileType::Config, &CONFIG_ID), "prefix/config");
        assert_eq!(
            b.key(FileType::DataPack, &[0xab; 32]),
            format!("prefix/data/ab/{}", hex::encode([0xab; 32]))
        );
    }
}
