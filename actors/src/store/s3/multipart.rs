//! The multipart steps of [`S3Store`]: whole objects larger than a part, the staging uploads
//! of streamed objects and their server-side copy to the object's key, and the listing and
//! aborting of incomplete uploads (the orphan sweep).
//!
//! Every upload that creates an object under its key (a whole object's, a streamed object's
//! copy) goes through [`S3Store::create_conditional`] and [`S3Store::complete_conditional`]:
//! OSS's `x-oss-forbid-overwrite` on both, `If-None-Match: *` on the complete, so that no
//! multipart upload ever replaces an object. A failed one is aborted, best effort.

use std::time::SystemTime;

use aws_sdk_s3::error::SdkError;
use aws_sdk_s3::operation::complete_multipart_upload::builders::CompleteMultipartUploadFluentBuilder;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use bytes::Bytes;

use super::{encode_key, forbid_overwrite, lock, user_metadata, Running, S3Store};
use crate::settings::ConditionalCreate;
use crate::store::{IncompleteUpload, StoreError, UploadedPart};

/// The largest range one UploadPartCopy may copy (S3's limit).
const COPY_PART_BYTES: u64 = 5 << 30;

impl S3Store {
    /// CreateMultipartUpload of `key` with its metadata (and OSS's condition: refused at once
    /// when the key is taken, before any part is sent); its upload id.
    async fn create_conditional(
        &self,
        key: &str,
        metadata: &[(&'static str, String)],
    ) -> Result<String, StoreError> {
        let mut create = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .content_type(crate::object_key::content_type(key))
            .set_metadata(Some(user_metadata(metadata)))
            .customize();
        if self.conditional == ConditionalCreate::OssForbidOverwrite {
            create = create.mutate_request(forbid_overwrite);
        }
        let created = create.send().await.map_err(|error| self.classify(error))?;
        Ok(created.upload_id.unwrap_or_default())
    }

    /// CompleteMultipartUpload of `key` from `parts`, without a condition.
    fn complete_request(
        &self,
        key: &str,
        upload_id: &str,
        parts: Vec<CompletedPart>,
    ) -> CompleteMultipartUploadFluentBuilder {
        self.client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
    }

    /// CompleteMultipartUpload with the conditional create; the object's ETag.
    async fn complete_conditional(
        &self,
        key: &str,
        upload_id: &str,
        parts: Vec<CompletedPart>,
    ) -> Result<String, StoreError> {
        let mut complete = self.complete_request(key, upload_id, parts);
        if self.conditional == ConditionalCreate::IfNoneMatch {
            complete = complete.if_none_match("*");
        }
        let mut complete = complete.customize();
        if self.conditional == ConditionalCreate::OssForbidOverwrite {
            complete = complete.mutate_request(forbid_overwrite);
        }
        let completed = complete
            .send()
            .await
            .map_err(|error| self.classify(error))?;
        Ok(completed.e_tag.unwrap_or_default())
    }

    /// Best effort: an upload left behind is billed until the orphan sweep or a lifecycle rule
    /// removes it.
    async fn abort_quietly(&self, key: &str, upload_id: &str) {
        let _ = self.abort(key, upload_id).await;
    }

    pub(super) async fn put_multipart(
        &self,
        key: &str,
        body: Bytes,
        metadata: &[(&'static str, String)],
    ) -> Result<String, StoreError> {
        let upload_id = self.create_conditional(key, metadata).await?;
        let _running = Running::new(&self.running, &upload_id);
        let result = async {
            let parts = self.upload_parts(key, &upload_id, &body).await?;
            self.complete_conditional(key, &upload_id, parts).await
        }
        .await;
        if result.is_err() {
            self.abort_quietly(key, &upload_id).await;
        }
        result
    }

    async fn upload_parts(
        &self,
        key: &str,
        upload_id: &str,
        body: &Bytes,
    ) -> Result<Vec<CompletedPart>, StoreError> {
        let mut parts = Vec::with_capacity(body.len().div_ceil(self.part_size));
        for (index, start) in (0..body.len()).step_by(self.part_size).enumerate() {
            let number = index as i32 + 1;
            let part = body.slice(start..body.len().min(start + self.part_size));
            let e_tag = self.send_part(key, upload_id, number, part).await?;
            // Crash tests: some parts are uploaded, the upload is not complete.
            fail::fail_point!("between-parts");
            parts.push(
                CompletedPart::builder()
                    .part_number(number)
                    .set_e_tag(Some(e_tag).filter(|tag| !tag.is_empty()))
                    .build(),
            );
        }
        Ok(parts)
    }

    pub(super) async fn list_incomplete(
        &self,
        prefix: &str,
    ) -> Result<Vec<IncompleteUpload>, StoreError> {
        let mut uploads = Vec::new();
        let (mut key_marker, mut upload_id_marker) = (None, None);
        loop {
            let page = self
                .client
                .list_multipart_uploads()
                .bucket(&self.bucket)
                .prefix(prefix)
                .set_key_marker(key_marker)
                .set_upload_id_marker(upload_id_marker)
                .send()
                .await
                .map_err(|error| self.classify(error))?;
            let running = lock(&self.running);
            uploads.extend(
                page.uploads
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|upload| {
                        let (key, upload_id) = (upload.key?, upload.upload_id?);
                        if running.contains(&upload_id) {
                            return None;
                        }
                        Some(IncompleteUpload {
                            key,
                            upload_id,
                            initiated: upload
                                .initiated
                                .and_then(|at| SystemTime::try_from(at).ok()),
                        })
                    }),
            );
            drop(running);
            match (page.next_key_marker, page.next_upload_id_marker) {
                (Some(key), upload_id) if page.is_truncated == Some(true) => {
                    key_marker = Some(key);
                    upload_id_marker = upload_id;
                }
                _ => return Ok(uploads),
            }
        }
    }

    pub(super) async fn abort(&self, key: &str, upload_id: &str) -> Result<(), StoreError> {
        match self
            .client
            .abort_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            // Completed or aborted meanwhile.
            Err(SdkError::ServiceError(service)) if service.err().is_no_such_upload() => Ok(()),
            Err(error) => Err(self.classify(error)),
        }
    }

    pub(super) async fn create_staging(&self, key: &str) -> Result<String, StoreError> {
        let created = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .content_type("application/octet-stream")
            .send()
            .await
            .map_err(|error| self.classify(error))?;
        Ok(created.upload_id.unwrap_or_default())
    }

    pub(super) async fn send_part(
        &self,
        key: &str,
        upload_id: &str,
        number: i32,
        body: Bytes,
    ) -> Result<String, StoreError> {
        let request = self
            .client
            .upload_part()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .part_number(number)
            .content_length(body.len() as i64)
            .body(ByteStream::from(body));
        let uploaded = if self.sign_payload {
            request.send().await
        } else {
            request.customize().disable_payload_signing().send().await
        }
        .map_err(|error| self.classify(error))?;
        Ok(uploaded.e_tag.unwrap_or_default())
    }

    pub(super) async fn complete_staging(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[UploadedPart],
    ) -> Result<(), StoreError> {
        let parts = parts
            .iter()
            .map(|part| {
                CompletedPart::builder()
                    .part_number(part.number)
                    .e_tag(&part.etag)
                    .build()
            })
            .collect();
        self.complete_request(key, upload_id, parts)
            .send()
            .await
            .map_err(|error| self.classify(error))?;
        Ok(())
    }

    /// CreateMultipartUpload of `key` (metadata, OSS's condition), UploadPartCopy of `source`
    /// in ranges of at most [`COPY_PART_BYTES`], CompleteMultipartUpload with the conditional
    /// create; the upload is aborted if any step fails.
    pub(super) async fn copy_object(
        &self,
        source: &str,
        length: u64,
        key: &str,
        metadata: &[(&'static str, String)],
    ) -> Result<String, StoreError> {
        let upload_id = self.create_conditional(key, metadata).await?;
        let _running = Running::new(&self.running, &upload_id);
        let result = async {
            let parts = self.copy_parts(source, length, key, &upload_id).await?;
            self.complete_conditional(key, &upload_id, parts).await
        }
        .await;
        if result.is_err() {
            self.abort_quietly(key, &upload_id).await;
        }
        result.map_err(|error| match error {
            StoreError::AlreadyExists { bucket, .. } => StoreError::AlreadyExists {
                bucket,
                key: key.to_owned(),
            },
            other => other,
        })
    }

    async fn copy_parts(
        &self,
        source: &str,
        length: u64,
        key: &str,
        upload_id: &str,
    ) -> Result<Vec<CompletedPart>, StoreError> {
        let copy_source = format!("{}/{}", self.bucket, encode_key(source));
        let mut parts = Vec::new();
        let mut start = 0;
        let mut number = 1;
        while start < length || number == 1 {
            let end = length.min(start + COPY_PART_BYTES);
            let mut request = self
                .client
                .upload_part_copy()
                .bucket(&self.bucket)
                .key(key)
                .upload_id(upload_id)
                .part_number(number)
                .copy_source(&copy_source);
            if length > 0 {
                request = request.copy_source_range(format!("bytes={start}-{}", end - 1));
            }
            let copied = request.send().await.map_err(|error| self.classify(error))?;
            parts.push(
                CompletedPart::builder()
                    .part_number(number)
                    .set_e_tag(copied.copy_part_result.and_then(|result| result.e_tag))
                    .build(),
            );
            start = end;
            number += 1;
            if length == 0 {
                break;
            }
        }
        Ok(parts)
    }
}
