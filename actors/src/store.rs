//! The object store: aws-sdk-s3 configured for OSS and other S3-compatible servers.
//!
//! Forced settings, each for a reason:
//! - request checksums only when an operation requires one (configurable): since 2025 the SDK
//!   adds CRC32 checksums, sent as `aws-chunked` trailers for streaming bodies, which OSS and
//!   other S3-compatible stores reject;
//! - bodies are always in-memory `Bytes`, so the SDK never switches to `aws-chunked` framing;
//! - three SDK attempts for quick blips; the uploader wraps every call in its own unbounded,
//!   backed-off retry loop, because a store error is never a reason to drop or skip data;
//! - a per-attempt timeout so a hung connection cannot stall a partition forever.

use std::time::Duration;

use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{
    BehaviorVersion, Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::operation::list_objects_v2::ListObjectsV2Error;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, Object};
use bytes::Bytes;

use crate::error::ErrorCode;
use crate::settings::{ChecksumMode, SinkSettings};

/// Why the store refused or failed a request.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("bucket `{bucket}` does not exist")]
    NoSuchBucket { bucket: String },
    #[error(
        "access to bucket `{bucket}` denied ({code}): check the AccessKey pair in \
         OSS_ACCESS_KEY_ID / OSS_ACCESS_KEY_SECRET and that it may write to the bucket"
    )]
    AccessDenied { bucket: String, code: String },
    #[error("bucket `{bucket}` rejected the request: HTTP {status} {code}: {message}")]
    Rejected {
        bucket: String,
        status: u16,
        code: String,
        message: String,
    },
    #[error("bucket `{bucket}` is unreachable or failing: {detail}")]
    Transient { bucket: String, detail: String },
}

impl StoreError {
    /// Stable error code, documented in README.md.
    pub fn code(&self) -> ErrorCode {
        match self {
            StoreError::NoSuchBucket { .. } => ErrorCode::UploadNoSuchBucket,
            StoreError::AccessDenied { .. } => ErrorCode::UploadAccessDenied,
            StoreError::Rejected { .. } => ErrorCode::UploadRejected,
            StoreError::Transient { .. } => ErrorCode::UploadUnavailable,
        }
    }
}

/// The S3 implementation (until the store trait lands).
pub type S3Store = ObjectStore;
/// The store as the actors hold it.
pub type SharedStore = std::sync::Arc<ObjectStore>;

/// A bucket and the client that writes to it. Cheap to clone.
#[derive(Clone)]
pub struct ObjectStore {
    client: aws_sdk_s3::Client,
    bucket: String,
    part_size: usize,
    sign_payload: bool,
}

impl ObjectStore {
    /// Builds the client. Does no I/O; see [`ObjectStore::probe`].
    pub fn new(settings: &SinkSettings) -> Self {
        let credentials = Credentials::new(
            settings.credentials.access_key_id.expose(),
            settings.credentials.access_key_secret.expose(),
            settings
                .credentials
                .session_token
                .as_ref()
                .map(|token| token.expose().to_owned()),
            None,
            "environment",
        );
        let checksum = match settings.checksum {
            ChecksumMode::WhenRequired => RequestChecksumCalculation::WhenRequired,
            ChecksumMode::WhenSupported => RequestChecksumCalculation::WhenSupported,
        };
        let mut builder = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(settings.region.clone()))
            .credentials_provider(credentials)
            // Virtual-hosted addressing for OSS (which denies path style), path style for local servers.
            .force_path_style(settings.path_style)
            .request_checksum_calculation(checksum)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
            .retry_config(RetryConfig::standard().with_max_attempts(3))
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(10))
                    .operation_attempt_timeout(settings.request_timeout)
                    .build(),
            )
            .sleep_impl(aws_smithy_async::rt::sleep::TokioSleep::new());
        if let Some(endpoint) = &settings.endpoint {
            builder = builder.endpoint_url(endpoint);
        }
        ObjectStore {
            client: aws_sdk_s3::Client::from_conf(builder.build()),
            bucket: settings.bucket.clone(),
            part_size: settings.part_size,
            sign_payload: settings.sign_payload,
        }
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// Checks that the bucket exists and the credentials are accepted (HeadBucket).
    pub async fn probe(&self) -> Result<(), StoreError> {
        self.client
            .head_bucket()
            .bucket(&self.bucket)
            .send()
            .await
            .map(|_| ())
            .map_err(|error| self.classify(error))
    }

    /// Writes one object; a multipart upload when it is larger than the part size.
    /// Returns the ETag the store answered with.
    pub async fn put(&self, key: &str, body: Bytes) -> Result<String, StoreError> {
        if body.len() > self.part_size {
            return self.put_multipart(key, body).await;
        }
        let request = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type("application/json")
            .content_length(body.len() as i64)
            .body(ByteStream::from(body));
        let output = if self.sign_payload {
            request.send().await
        } else {
            request.customize().disable_payload_signing().send().await
        }
        .map_err(|error| self.classify(error))?;
        Ok(output.e_tag.unwrap_or_default())
    }

    async fn put_multipart(&self, key: &str, body: Bytes) -> Result<String, StoreError> {
        let created = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .content_type("application/json")
            .send()
            .await
            .map_err(|error| self.classify(error))?;
        let upload_id = created.upload_id.unwrap_or_default();
        let result = self.upload_parts(key, &upload_id, &body).await;
        if result.is_err() {
            // Best effort: an upload we leave behind is billed until a lifecycle rule expires it.
            let _ = self
                .client
                .abort_multipart_upload()
                .bucket(&self.bucket)
                .key(key)
                .upload_id(&upload_id)
                .send()
                .await;
        }
        result
    }

    async fn upload_parts(
        &self,
        key: &str,
        upload_id: &str,
        body: &Bytes,
    ) -> Result<String, StoreError> {
        let mut parts = Vec::with_capacity(body.len().div_ceil(self.part_size));
        for (index, start) in (0..body.len()).step_by(self.part_size).enumerate() {
            let part_number = index as i32 + 1;
            let part = body.slice(start..body.len().min(start + self.part_size));
            let request = self
                .client
                .upload_part()
                .bucket(&self.bucket)
                .key(key)
                .upload_id(upload_id)
                .part_number(part_number)
                .content_length(part.len() as i64)
                .body(ByteStream::from(part));
            let uploaded = if self.sign_payload {
                request.send().await
            } else {
                request.customize().disable_payload_signing().send().await
            }
            .map_err(|error| self.classify(error))?;
            parts.push(
                CompletedPart::builder()
                    .part_number(part_number)
                    .set_e_tag(uploaded.e_tag)
                    .build(),
            );
        }
        let completed = self
            .client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .send()
            .await
            .map_err(|error| self.classify(error))?;
        Ok(completed.e_tag.unwrap_or_default())
    }

    /// Keys under `prefix` that sort after `start_after`, in the store's (lexicographic) order.
    pub async fn list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
    ) -> Result<Vec<String>, StoreError> {
        let objects = list_objects(&self.client, &self.bucket, prefix, start_after)
            .await
            .map_err(|error| self.classify(error))?;
        Ok(objects
            .into_iter()
            .filter_map(|object| object.key)
            .collect())
    }

    fn classify<E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static>(
        &self,
        error: SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
    ) -> StoreError {
        let bucket = self.bucket.clone();
        match &error {
            SdkError::ServiceError(service) => {
                let status = service.raw().status().as_u16();
                let code = service.err().code().unwrap_or("").to_owned();
                let message = service.err().message().unwrap_or("").to_owned();
                classify_status(bucket, status, code, message)
            }
            // Timeouts, connection failures, truncated responses: all worth retrying.
            other => StoreError::Transient {
                bucket,
                detail: aws_sdk_s3::error::DisplayErrorContext(other).to_string(),
            },
        }
    }
}

/// Maps an HTTP status and S3 error code to a [`StoreError`]. Pure, so it is unit-tested.
fn classify_status(bucket: String, status: u16, code: String, message: String) -> StoreError {
    let throttled = matches!(
        code.as_str(),
        "SlowDown" | "Throttling" | "RequestLimitExceeded" | "RequestTimeout"
    );
    match status {
        // HeadBucket answers a bodiless 404, which the SDK reports as `NotFound`.
        404 if matches!(code.as_str(), "" | "NoSuchBucket" | "NotFound") => {
            StoreError::NoSuchBucket { bucket }
        }
        401 | 403 => StoreError::AccessDenied {
            bucket,
            code: if code.is_empty() {
                format!("HTTP {status}")
            } else {
                code
            },
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

/// Every object under `prefix` that sorts after `start_after` (all of them if `None`), in the
/// store's order, following `ListObjectsV2` continuation tokens. Shared by the connector, the
/// benchmark watcher and the tests.
pub async fn list_objects(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    prefix: &str,
    start_after: Option<&str>,
) -> Result<Vec<Object>, SdkError<ListObjectsV2Error, HttpResponse>> {
    let mut objects = Vec::new();
    let mut token = None;
    loop {
        let page = client
            .list_objects_v2()
            .bucket(bucket)
            .prefix(prefix)
            .set_start_after(start_after.map(str::to_owned))
            .set_continuation_token(token)
            .send()
            .await?;
        objects.extend(page.contents.unwrap_or_default());
        match page.next_continuation_token {
            Some(next) if page.is_truncated == Some(true) => token = Some(next),
            _ => return Ok(objects),
        }
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
        assert_eq!(classify(404, "NotFound").code().as_str(), "UPLOAD_NO_SUCH_BUCKET");
        assert_eq!(classify(404, "NoSuchKey").code().as_str(), "UPLOAD_REJECTED");
        assert_eq!(
            classify(404, "NoSuchBucket").code().as_str(),
            "UPLOAD_NO_SUCH_BUCKET"
        );
        assert_eq!(
            classify(403, "SignatureDoesNotMatch").code().as_str(),
            "UPLOAD_ACCESS_DENIED"
        );
        assert_eq!(classify(403, "").code().as_str(), "UPLOAD_ACCESS_DENIED");
        assert_eq!(classify(503, "SlowDown").code().as_str(), "UPLOAD_UNAVAILABLE");
        assert_eq!(classify(500, "InternalError").code().as_str(), "UPLOAD_UNAVAILABLE");
        assert_eq!(classify(400, "RequestTimeout").code().as_str(), "UPLOAD_UNAVAILABLE");
        assert_eq!(classify(400, "InvalidArgument").code().as_str(), "UPLOAD_REJECTED");
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
