//! `S3Store`: aws-sdk-s3 configured for OSS and other S3-compatible servers.
//!
//! Forced settings, each for a reason:
//! - request checksums only when an operation requires one (configurable): since 2025 the SDK
//!   adds CRC32 checksums, sent as `aws-chunked` trailers for streaming bodies, which OSS and
//!   other S3-compatible stores reject;
//! - bodies are always in-memory `Bytes`, so the SDK never switches to `aws-chunked` framing;
//! - three SDK attempts for quick blips; the uploader wraps every call in its own unbounded,
//!   backed-off retry loop, because a store error is never a reason to drop or skip data;
//! - a per-attempt timeout so a hung connection cannot stall a partition forever;
//! - conditional create (`If-None-Match: *`, or OSS's `x-oss-forbid-overwrite: true`) on
//!   PutObject and on CompleteMultipartUpload, so that no write ever replaces an object.
//!
//! The store remembers the multipart uploads it is running, so that listing incomplete uploads
//! (to abort what a crashed writer left) never returns one of its own.
//!
//! The multipart steps (whole objects larger than a part, streamed objects' staging uploads and
//! server-side copies, listing and aborting incomplete uploads) are in `s3/multipart.rs`.

use std::collections::{HashMap, HashSet};
use std::error::Error;
use std::fmt::Debug;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{
    BehaviorVersion, IdentityCache, Region, RequestChecksumCalculation, ResponseChecksumValidation,
};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::operation::list_objects_v2::ListObjectsV2Error;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::Object;
use bytes::Bytes;
use futures_util::future::{BoxFuture, FutureExt};

use super::credentials::RotatingCredentials;
use super::{classify_status, IncompleteUpload, ObjectStore, StoreError};
use crate::settings::{ChecksumMode, ConditionalCreate, SinkSettings};

/// A bucket and the client that writes to it. Cheap to clone.
#[derive(Clone)]
pub struct S3Store {
    pub(super) client: aws_sdk_s3::Client,
    pub(super) bucket: String,
    /// The endpoint URL, or which AWS region's endpoint: for messages.
    endpoint: String,
    request_timeout: Duration,
    part_size: usize,
    sign_payload: bool,
    pub(super) conditional: ConditionalCreate,
    /// Upload ids of the multipart uploads this store (and its clones) is running.
    running: Arc<Mutex<HashSet<String>>>,
}

/// Marks a multipart upload as this store's own while it lives (also when the upload's future
/// is dropped half-way: the upload is then an orphan like any other).
struct Running<'a> {
    uploads: &'a Mutex<HashSet<String>>,
    upload_id: String,
}

impl<'a> Running<'a> {
    fn new(uploads: &'a Mutex<HashSet<String>>, upload_id: &str) -> Self {
        lock(uploads).insert(upload_id.to_owned());
        Running {
            uploads,
            upload_id: upload_id.to_owned(),
        }
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        lock(self.uploads).remove(&self.upload_id);
    }
}

fn lock(uploads: &Mutex<HashSet<String>>) -> std::sync::MutexGuard<'_, HashSet<String>> {
    // Inserts and removes cannot leave the set half-written.
    uploads
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl S3Store {
    /// Builds the client. Does no I/O; see [`ObjectStore::probe`].
    pub fn new(settings: &SinkSettings) -> Self {
        // The client asks the provider before every request (no identity cache of its own): the
        // provider caches, re-reads a changed credentials file and refreshes temporary
        // credentials before they expire (`credentials/`).
        let credentials = RotatingCredentials::new(&settings.credentials);
        let checksum = match settings.checksum {
            ChecksumMode::WhenRequired => RequestChecksumCalculation::WhenRequired,
            ChecksumMode::WhenSupported => RequestChecksumCalculation::WhenSupported,
        };
        let mut builder = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(settings.region.clone()))
            .credentials_provider(credentials)
            .identity_cache(IdentityCache::no_cache())
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
        S3Store {
            client: aws_sdk_s3::Client::from_conf(builder.build()),
            bucket: settings.bucket.clone(),
            endpoint: match &settings.endpoint {
                Some(url) => url.clone(),
                None => format!("of region {}", settings.region),
            },
            request_timeout: settings.request_timeout,
            part_size: settings.part_size,
            sign_payload: settings.sign_payload,
            conditional: settings.conditional_create,
            running: Arc::default(),
        }
    }

    /// The client, for tools and tests that need more than the trait (e.g. [`list_objects`]).
    pub fn client(&self) -> &aws_sdk_s3::Client {
        &self.client
    }

    async fn head_bucket(&self) -> Result<(), StoreError> {
        self.client
            .head_bucket()
            .bucket(&self.bucket)
            .send()
            .await
            .map(|_| ())
            .map_err(|error| self.classify(error))
    }

    async fn put_object(
        &self,
        key: &str,
        body: Bytes,
        metadata: &[(&'static str, String)],
    ) -> Result<String, StoreError> {
        let result = if body.len() > self.part_size {
            self.put_multipart(key, body, metadata).await
        } else {
            self.put_single(key, body, metadata).await
        };
        result.map_err(|error| match error {
            StoreError::AlreadyExists { bucket, .. } => StoreError::AlreadyExists {
                bucket,
                key: key.to_owned(),
            },
            other => other,
        })
    }

    async fn put_single(
        &self,
        key: &str,
        body: Bytes,
        metadata: &[(&'static str, String)],
    ) -> Result<String, StoreError> {
        let mut request = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(crate::object_key::content_type(key))
            .content_length(body.len() as i64)
            .set_metadata(Some(user_metadata(metadata)))
            .body(ByteStream::from(body));
        if self.conditional == ConditionalCreate::IfNoneMatch {
            request = request.if_none_match("*");
        }
        let mut operation = request.customize();
        if self.conditional == ConditionalCreate::OssForbidOverwrite {
            operation = operation.mutate_request(forbid_overwrite);
        }
        if !self.sign_payload {
            operation = operation.disable_payload_signing();
        }
        let output = operation
            .send()
            .await
            .map_err(|error| self.classify(error))?;
        Ok(output.e_tag.unwrap_or_default())
    }

    async fn head_object(&self, key: &str) -> Result<Option<HashMap<String, String>>, StoreError> {
        match self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(output) => Ok(Some(
                output
                    .metadata
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(name, value)| (name.to_ascii_lowercase(), value))
                    .collect(),
            )),
            Err(SdkError::ServiceError(service)) if service.err().is_not_found() => Ok(None),
            Err(error) => Err(self.classify(error)),
        }
    }

    async fn get_object(&self, key: &str) -> Result<Option<Bytes>, StoreError> {
        let output = match self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(output) => output,
            Err(SdkError::ServiceError(service)) if service.err().is_no_such_key() => {
                return Ok(None)
            }
            Err(error) => return Err(self.classify(error)),
        };
        let body = output
            .body
            .collect()
            .await
            .map_err(|error| StoreError::Transient {
                bucket: self.bucket.clone(),
                detail: format!(
                    "reading object {key} from the S3 endpoint {} failed: {}",
                    self.endpoint,
                    innermost_cause(&error)
                ),
            })?;
        Ok(Some(body.into_bytes()))
    }

    async fn list_keys(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        delimiter: Option<&str>,
    ) -> Result<Vec<String>, StoreError> {
        let objects = list_objects_in(&self.client, &self.bucket, prefix, start_after, delimiter)
            .await
            .map_err(|error| self.classify(error))?;
        Ok(objects
            .into_iter()
            .filter_map(|object| object.key)
            .collect())
    }

    async fn delete_object(&self, key: &str) -> Result<(), StoreError> {
        match self
            .client
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(SdkError::ServiceError(service)) if service.raw().status().as_u16() == 404 => {
                Ok(())
            }
            Err(error) => Err(self.classify(error)),
        }
    }

    pub(super) fn classify<E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static>(
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
                detail: transport_detail(&self.endpoint, self.request_timeout, other),
            },
        }
    }
}

impl ObjectStore for S3Store {
    fn bucket(&self) -> &str {
        &self.bucket
    }

    fn probe(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        self.head_bucket().boxed()
    }

    fn put<'a>(
        &'a self,
        key: &'a str,
        body: Bytes,
        metadata: &'a [(&'static str, String)],
    ) -> BoxFuture<'a, Result<String, StoreError>> {
        self.put_object(key, body, metadata).boxed()
    }

    fn head<'a>(
        &'a self,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Option<HashMap<String, String>>, StoreError>> {
        self.head_object(key).boxed()
    }

    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Bytes>, StoreError>> {
        self.get_object(key).boxed()
    }

    fn list<'a>(
        &'a self,
        prefix: &'a str,
        start_after: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Vec<String>, StoreError>> {
        self.list_keys(prefix, start_after, None).boxed()
    }

    fn list_folder<'a>(
        &'a self,
        prefix: &'a str,
        start_after: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Vec<String>, StoreError>> {
        self.list_keys(prefix, start_after, Some("/")).boxed()
    }

    fn list_uploads<'a>(
        &'a self,
        prefix: &'a str,
    ) -> BoxFuture<'a, Result<Vec<IncompleteUpload>, StoreError>> {
        self.list_incomplete(prefix).boxed()
    }

    fn abort_upload<'a>(
        &'a self,
        key: &'a str,
        upload_id: &'a str,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        self.abort(key, upload_id).boxed()
    }

    fn create_upload<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<String, StoreError>> {
        self.create_staging(key).boxed()
    }

    fn upload_part<'a>(
        &'a self,
        key: &'a str,
        upload_id: &'a str,
        number: i32,
        body: Bytes,
    ) -> BoxFuture<'a, Result<String, StoreError>> {
        self.send_part(key, upload_id, number, body).boxed()
    }

    fn complete_upload<'a>(
        &'a self,
        key: &'a str,
        upload_id: &'a str,
        parts: &'a [super::UploadedPart],
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        self.complete_staging(key, upload_id, parts).boxed()
    }

    fn copy_create<'a>(
        &'a self,
        source: &'a str,
        length: u64,
        key: &'a str,
        metadata: &'a [(&'static str, String)],
    ) -> BoxFuture<'a, Result<String, StoreError>> {
        self.copy_object(source, length, key, metadata).boxed()
    }

    fn delete<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<(), StoreError>> {
        self.delete_object(key).boxed()
    }
}

/// A key as `x-amz-copy-source` wants it: percent-encoded, `/` kept.
fn encode_key(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for byte in key.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'/' | b'-' | b'_' | b'.' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// User metadata as the SDK sends it (`x-amz-meta-{name}`).
fn user_metadata(metadata: &[(&'static str, String)]) -> HashMap<String, String> {
    metadata
        .iter()
        .map(|(name, value)| ((*name).to_owned(), value.clone()))
        .collect()
}

/// OSS's conditional create: its S3-compatible API answers `If-None-Match` with 501.
fn forbid_overwrite(request: &mut aws_sdk_s3::config::http::HttpRequest) {
    request
        .headers_mut()
        .insert("x-oss-forbid-overwrite", "true");
}

/// A request that got no HTTP answer, in words: "cannot connect to the S3 endpoint
/// http://127.0.0.1:1: connection refused", not the SDK's nested `Debug` output.
fn transport_detail<E, R>(
    endpoint: &str,
    request_timeout: Duration,
    error: &SdkError<E, R>,
) -> String
where
    E: Error + 'static,
    R: Debug + 'static,
{
    let cause = innermost_cause(error);
    match error {
        SdkError::TimeoutError(_) => {
            format!("no answer from the S3 endpoint {endpoint} within {request_timeout:?}")
        }
        SdkError::DispatchFailure(_) if connecting(error) => {
            format!("cannot connect to the S3 endpoint {endpoint}: {cause}")
        }
        SdkError::DispatchFailure(failure) if failure.is_timeout() => {
            format!("timed out talking to the S3 endpoint {endpoint}: {cause}")
        }
        SdkError::DispatchFailure(failure) if failure.is_io() => {
            format!("the connection to the S3 endpoint {endpoint} failed: {cause}")
        }
        SdkError::ResponseError(_) => {
            format!("cannot read the answer of the S3 endpoint {endpoint}: {cause}")
        }
        SdkError::ConstructionFailure(_) => format!("cannot build the request: {cause}"),
        _ => format!("the request to the S3 endpoint {endpoint} failed: {cause}"),
    }
}

/// Whether the failure happened before a connection was established. The SDK does not say, so
/// this looks at the causes: an OS error that only connecting gives, or one of the HTTP client's
/// (hyper-util) connect-phase labels.
fn connecting(error: &(dyn Error + 'static)) -> bool {
    causes(error).any(|cause| {
        if let Some(io) = cause.downcast_ref::<io::Error>() {
            return matches!(
                io.kind(),
                io::ErrorKind::ConnectionRefused
                    | io::ErrorKind::HostUnreachable
                    | io::ErrorKind::NetworkUnreachable
                    | io::ErrorKind::AddrNotAvailable
            );
        }
        let label = cause.to_string();
        label == "tcp connect error"
            || label == "dns error"
            || label.starts_with("client error (Connect)")
            || label.contains("HTTP connect timeout")
    })
}

/// The deepest cause worth showing: the innermost I/O error if there is one (an OS error without
/// its number: "connection refused"), otherwise the innermost error.
fn innermost_cause(error: &(dyn Error + 'static)) -> String {
    let innermost_io = causes(error)
        .filter_map(|cause| cause.downcast_ref::<io::Error>())
        .last();
    match innermost_io {
        Some(io) if io.raw_os_error().is_some() => {
            let text = io.to_string();
            let text = text.split(" (os error").next().unwrap_or(&text);
            let mut chars = text.chars();
            match chars.next() {
                Some(first) => first.to_lowercase().chain(chars).collect(),
                None => io.kind().to_string(),
            }
        }
        Some(io) => io.to_string(),
        None => causes(error)
            .last()
            .map(ToString::to_string)
            .unwrap_or_default(),
    }
}

fn causes<'a>(error: &'a (dyn Error + 'static)) -> impl Iterator<Item = &'a (dyn Error + 'static)> {
    std::iter::successors(Some(error), |&error| error.source())
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
    list_objects_in(client, bucket, prefix, start_after, None).await
}

/// [`list_objects`], with a `delimiter`: keys with it after the prefix are left out (they are
/// rolled up into common prefixes, which are not returned).
pub async fn list_objects_in(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    prefix: &str,
    start_after: Option<&str>,
    delimiter: Option<&str>,
) -> Result<Vec<Object>, SdkError<ListObjectsV2Error, HttpResponse>> {
    let mut objects = Vec::new();
    let mut token = None;
    loop {
        let page = client
            .list_objects_v2()
            .bucket(bucket)
            .prefix(prefix)
            .set_start_after(start_after.map(str::to_owned))
            .set_delimiter(delimiter.map(str::to_owned))
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

mod multipart;
#[cfg(test)]
pub(crate) mod tests;
