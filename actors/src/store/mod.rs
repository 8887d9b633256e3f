//! The object store: where sealed objects go, behind the [`ObjectStore`] trait.
//!
//! - [`S3Store`]: aws-sdk-s3, configured for OSS and other S3-compatible servers (production).
//! - [`MemoryStore`]: a bucket in a map, with S3's listing order (actor-level tests, tools).
//! - [`FaultyStore`]: wraps any store and fails, delays or hangs its calls on demand (tests).
//!
//! The actors hold a [`SharedStore`] and never know which one they talk to. Every failure is a
//! [`StoreError`], classified the same way for every store, so the uploader's retries and the
//! failure policy behave the same in tests as against a real bucket.

use crate::error::ErrorCode;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use futures_util::future::BoxFuture;

mod credentials;
mod faulty;
mod memory;
mod probe;
mod s3;

pub use credentials::{RotatingCredentials, REFRESH_BEFORE};
pub use faulty::{FaultyStore, Operation};
pub use memory::MemoryStore;
pub use probe::{Capabilities, Check, Outcome};
pub use s3::{list_objects, S3Store};

/// A bucket the connector writes objects to and lists to recover.
///
/// Object-safe: the pipeline holds an `Arc<dyn ObjectStore>` ([`SharedStore`]). The futures
/// are boxed (rather than `async fn`) so that the trait stays usable as a trait object.
pub trait ObjectStore: Send + Sync + 'static {
    /// The bucket's name, for messages.
    fn bucket(&self) -> &str;

    /// Checks that the bucket exists and the credentials are accepted (S3: HeadBucket).
    fn probe(&self) -> BoxFuture<'_, Result<(), StoreError>>;

    /// Creates one object with user metadata (`(name, value)`, names without `x-amz-meta-`;
    /// S3: a multipart upload when larger than the part size) and returns the ETag the store
    /// answered with. Never overwrites where the store supports a conditional create: a key
    /// that is taken fails with [`StoreError::AlreadyExists`].
    fn put<'a>(
        &'a self,
        key: &'a str,
        body: Bytes,
        metadata: &'a [(&'static str, String)],
    ) -> BoxFuture<'a, Result<String, StoreError>>;

    /// An object's user metadata (names without `x-amz-meta-`, lowercase); `None` if there is
    /// no object under `key`.
    fn head<'a>(
        &'a self,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Option<HashMap<String, String>>, StoreError>>;

    /// Reads one object back; `None` if there is no object under `key`.
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Bytes>, StoreError>>;

    /// Keys under `prefix` that sort after `start_after` (all of them if `None`), in
    /// lexicographic (byte) order, as S3 ListObjectsV2 returns them.
    fn list<'a>(
        &'a self,
        prefix: &'a str,
        start_after: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Vec<String>, StoreError>>;

    /// Like [`list`](Self::list), for a folder (`prefix` ends with `/`) whose keys hold no
    /// further `/` (a partition's objects): a store may leave deeper keys out (S3 lists with
    /// delimiter `/`, which spares a store that walks its whole tree for a listing, s3s-fs, the
    /// other partitions' folders).
    fn list_folder<'a>(
        &'a self,
        prefix: &'a str,
        start_after: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Vec<String>, StoreError>> {
        self.list(prefix, start_after)
    }
    /// Incomplete multipart uploads of keys under `prefix` (S3: ListMultipartUploads, every
    /// page), except the ones this store is running itself: what a crashed or fenced writer left
    /// behind, or a writer elsewhere is still sending. Stores that cannot list them answer 501
    /// `NotImplemented` ([`StoreError::Rejected`]) or [`StoreError::AccessDenied`].
    fn list_uploads<'a>(
        &'a self,
        prefix: &'a str,
    ) -> BoxFuture<'a, Result<Vec<IncompleteUpload>, StoreError>>;

    /// Aborts an incomplete multipart upload: its parts are deleted and a later
    /// CompleteMultipartUpload of it fails (S3: `NoSuchUpload`). An upload that is gone already
    /// is no error.
    fn abort_upload<'a>(
        &'a self,
        key: &'a str,
        upload_id: &'a str,
    ) -> BoxFuture<'a, Result<(), StoreError>>;

    /// Starts a multipart upload of `key` without metadata or condition (a staging object of a
    /// streamed object, see `crate::staging`) and returns its upload id.
    fn create_upload<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<String, StoreError>>;

    /// Uploads part `number` (from 1) of an upload begun with
    /// [`create_upload`](Self::create_upload); returns the part's ETag. An aborted upload fails
    /// with [`StoreError::is_upload_gone`].
    fn upload_part<'a>(
        &'a self,
        key: &'a str,
        upload_id: &'a str,
        number: i32,
        body: Bytes,
    ) -> BoxFuture<'a, Result<String, StoreError>>;

    /// Completes an upload begun with [`create_upload`](Self::create_upload) from `parts`, in
    /// order (unconditionally: staging keys are unique).
    fn complete_upload<'a>(
        &'a self,
        key: &'a str,
        upload_id: &'a str,
        parts: &'a [UploadedPart],
    ) -> BoxFuture<'a, Result<(), StoreError>>;

    /// Creates `key` with user metadata from the `length` bytes of the object `source`, on the
    /// store's side (S3: a multipart upload of `UploadPartCopy` ranges of at most 5 GiB), with
    /// the same conditional create as [`put`](Self::put): a taken key fails with
    /// [`StoreError::AlreadyExists`]. Returns the new object's ETag.
    fn copy_create<'a>(
        &'a self,
        source: &'a str,
        length: u64,
        key: &'a str,
        metadata: &'a [(&'static str, String)],
    ) -> BoxFuture<'a, Result<String, StoreError>>;

    /// Deletes an object; a key with no object is no error.
    fn delete<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<(), StoreError>>;
}

/// A part uploaded with [`ObjectStore::upload_part`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadedPart {
    pub number: i32,
    pub etag: String,
}

/// `StoreError::Transient`'s detail for an aborted multipart upload (S3 `NoSuchUpload`).
pub(crate) const UPLOAD_GONE: &str = "HTTP 404 NoSuchUpload";

/// A multipart upload that was created and neither completed nor aborted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncompleteUpload {
    pub key: String,
    pub upload_id: String,
    /// When the store created it (the store's clock); `None` if the store did not say.
    pub initiated: Option<SystemTime>,
}

/// The store as the actors hold it.
pub type SharedStore = Arc<dyn ObjectStore>;

/// Why the store refused or failed a request.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("bucket `{bucket}` does not exist")]
    NoSuchBucket { bucket: String },
    #[error(
        "access to bucket `{bucket}` denied ({code}): check the AccessKey pair (in \
         OSS_ACCESS_KEY_ID / OSS_ACCESS_KEY_SECRET, or from the [sink.credentials] source) and \
         that it may write to the bucket"
    )]
    AccessDenied { bucket: String, code: String },
    #[error("bucket `{bucket}` rejected the request: HTTP {status} {code}: {message}")]
    Rejected {
        bucket: String,
        status: u16,
        code: String,
        message: String,
    },
    /// Worth retrying: unreachable, timed out, throttled, 5xx. `detail` says which, in words.
    #[error("bucket `{bucket}` is unreachable or failing: {detail}")]
    Transient { bucket: String, detail: String },
    /// A conditional create found the key taken.
    #[error("bucket `{bucket}` already holds an object under `{key}`")]
    AlreadyExists { bucket: String, key: String },
}

impl StoreError {
    /// Stable error code, documented in README.md.
    pub fn code(&self) -> ErrorCode {
        match self {
            StoreError::NoSuchBucket { .. } => ErrorCode::UploadNoSuchBucket,
            StoreError::AccessDenied { .. } => ErrorCode::UploadAccessDenied,
            StoreError::Rejected { .. } => ErrorCode::UploadRejected,
            StoreError::Transient { .. } => ErrorCode::UploadUnavailable,
            StoreError::AlreadyExists { .. } => ErrorCode::UploadObjectExists,
        }
    }

    /// Whether the error is about the store (down, unauthorised, missing bucket) rather than
    /// about the one object: such errors are retried until the store is back and never make the
    /// failure policy route records elsewhere.
    pub fn is_infrastructure(&self) -> bool {
        match self {
            StoreError::NoSuchBucket { .. }
            | StoreError::AccessDenied { .. }
            | StoreError::Transient { .. } => true,
            StoreError::Rejected { .. } | StoreError::AlreadyExists { .. } => false,
        }
    }

    /// Whether the multipart upload the request was about was aborted (S3 `NoSuchUpload`):
    /// retrying the whole object is a new upload, but a streamed object's parts are gone.
    pub fn is_upload_gone(&self) -> bool {
        matches!(self, StoreError::Transient { detail, .. } if detail.starts_with(UPLOAD_GONE))
    }
}

/// Maps an HTTP status and S3 error code to a [`StoreError`]. Pure, so it is unit-tested.
pub(crate) fn classify_status(
    bucket: String,
    status: u16,
    code: String,
    message: String,
) -> StoreError {
    let throttled = matches!(
        code.as_str(),
        "SlowDown" | "Throttling" | "RequestLimitExceeded" | "RequestTimeout"
    );
    match status {
        // S3 answers a taken key 412 (`If-None-Match: *`); OSS answers 409 `FileAlreadyExists`
        // (`x-oss-forbid-overwrite`).
        412 => StoreError::AlreadyExists {
            bucket,
            key: String::new(),
        },
        409 if matches!(code.as_str(), "FileAlreadyExists" | "PreconditionFailed") => {
            StoreError::AlreadyExists {
                bucket,
                key: String::new(),
            }
        }
        // HeadBucket answers a bodiless 404, which the SDK reports as `NotFound`.
        404 if matches!(code.as_str(), "" | "NoSuchBucket" | "NotFound") => {
            StoreError::NoSuchBucket { bucket }
        }
        // A multipart upload aborted under the writer: by the partition's new owner, which
        // aborts the uploads it finds at assignment (a writer that lost the partition is fenced
        // this way), or by a lifecycle rule. No fault of the object: the next attempt is a new
        // upload, and conditional create keeps it from replacing the new owner's object.
        404 if code == "NoSuchUpload" => StoreError::Transient {
            bucket,
            detail: "HTTP 404 NoSuchUpload: the multipart upload was aborted (by the partition's \
                     new owner at its assignment, or a lifecycle rule); the object is uploaded \
                     again"
                .to_owned(),
        },
        401 | 403 => StoreError::AccessDenied {
            bucket,
            code: if code.is_empty() {
                format!("HTTP {status}")
            } else {
                code
            },
        },
        // Not implemented (e.g. OSS answering `If-None-Match`) will not be on the next attempt.
        501 => StoreError::Rejected {
            bucket,
            status,
            code,
            message,
        },
        408 | 429 | 500..=599 => StoreError::Transient {
            bucket,
            detail: format!("HTTP {status} {code} {message}")
                .trim_end()
                .to_owned(),
        },
        _ if throttled => StoreError::Transient {
            bucket,
            detail: format!("HTTP {status} {code}"),
        },
        _ => StoreError::Rejected {
            bucket,
            status,
            code,
            message,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classify(status: u16, code: &str) -> StoreError {
        classify_status("b".into(), status, code.into(), String::new())
    }

    #[test]
    fn statuses_map_to_the_documented_codes() {
        assert_eq!(classify(404, "").code().as_str(), "UPLOAD_NO_SUCH_BUCKET");
        assert_eq!(
            classify(404, "NotFound").code().as_str(),
            "UPLOAD_NO_SUCH_BUCKET"
        );
        assert_eq!(
            classify(404, "NoSuchKey").code().as_str(),
            "UPLOAD_REJECTED"
        );
        // An aborted upload (a fenced writer): retried as a new upload, never refused.
        assert_eq!(
            classify(404, "NoSuchUpload").code().as_str(),
            "UPLOAD_UNAVAILABLE"
        );
        assert!(classify(404, "NoSuchUpload").is_infrastructure());
        assert_eq!(
            classify(404, "NoSuchBucket").code().as_str(),
            "UPLOAD_NO_SUCH_BUCKET"
        );
        assert_eq!(
            classify(403, "SignatureDoesNotMatch").code().as_str(),
            "UPLOAD_ACCESS_DENIED"
        );
        assert_eq!(classify(403, "").code().as_str(), "UPLOAD_ACCESS_DENIED");
        assert_eq!(
            classify(503, "SlowDown").code().as_str(),
            "UPLOAD_UNAVAILABLE"
        );
        assert_eq!(
            classify(500, "InternalError").code().as_str(),
            "UPLOAD_UNAVAILABLE"
        );
        assert_eq!(
            classify(400, "RequestTimeout").code().as_str(),
            "UPLOAD_UNAVAILABLE"
        );
        assert_eq!(
            classify(400, "InvalidArgument").code().as_str(),
            "UPLOAD_REJECTED"
        );
        assert_eq!(
            classify(412, "PreconditionFailed").code().as_str(),
            "UPLOAD_OBJECT_EXISTS"
        );
        assert_eq!(
            classify(409, "FileAlreadyExists").code().as_str(),
            "UPLOAD_OBJECT_EXISTS"
        );
        assert_eq!(
            classify(409, "BucketNotEmpty").code().as_str(),
            "UPLOAD_REJECTED"
        );
    }

    #[test]
    fn only_errors_about_one_object_are_not_infrastructure() {
        assert!(classify(503, "SlowDown").is_infrastructure());
        assert!(classify(403, "AccessDenied").is_infrastructure());
        assert!(classify(404, "NoSuchBucket").is_infrastructure());
        assert!(!classify(400, "InvalidArgument").is_infrastructure());
        assert!(!classify(412, "").is_infrastructure());
    }

    #[test]
    fn messages_name_the_bucket() {
        let error = classify_status(
            "my-bucket".into(),
            403,
            "SignatureDoesNotMatch".into(),
            String::new(),
        );
        assert!(error.to_string().contains("`my-bucket`"), "{error}");
        assert!(
            error.to_string().contains("SignatureDoesNotMatch"),
            "{error}"
        );
    }
}
