//! `Uploader`: writes sealed objects to the bucket, one at a time.
//!
//! - Receives: `SealedObject`s from the shared bounded upload queue (a multi-consumer channel:
//!   whichever uploader is free takes the next object). `ctx.wait` around each upload means an
//!   uploader takes the next object only when the previous one is stored, so the number of
//!   uploaders is the number of uploads in flight, and a slow store fills the queue, which
//!   blocks the batchers, which block their consumers.
//! - Sends: `UploadReceipt` to the object's batcher (`do_send`; see `UploadReceipt`).
//! - Retries every failure with capped, jittered exponential backoff. A store that is down,
//!   refuses the credentials or lost its bucket is retried until it is back, however long: that
//!   is no fault of the records, so they never go to an error topic for it (their partition
//!   waits, and `/readyz` reports the bucket). Only an object the store refuses for itself (a
//!   4xx about the request) counts against `max_attempts`; then the object goes back to its
//!   batcher as `UploadOutcome::Failed`, which applies the failure policy. Each failed attempt
//!   is logged with its code. A multipart upload aborted under it (`NoSuchUpload`: the
//!   partition's new owner fenced this writer, see `batcher::orphans`) is a transient failure:
//!   the next attempt is a new upload.
//! - Makes no attempt for an object whose `cancel` flag is set (its partition's assignment
//!   ended: revoked after a drain that timed out, or lost): it is dropped without an outcome.
//!   An attempt already sent is counted in the partition's `UploadsInFlight` until it ends.
//! - Never overwrites: uploads are conditional creates. A taken key is compared with the object
//!   by its metadata: identical means it was stored before (a retry whose answer was lost, a
//!   restart), anything else goes back as `UploadOutcome::Foreign`.
//! - A streamed object (`crate::staging`: its first parts are in a staging upload already) is
//!   finished here: the uploader waits for its parts, sends its body as the last part,
//!   completes the staging upload, creates the object from the staging object (the same
//!   conditional create and taken-key check) and deletes the staging object. If it cannot be
//!   finished (a part refused, the staging upload aborted), it goes back as
//!   `UploadOutcome::Lost`: its records are no longer in memory, so the failure policy does not
//!   apply, the partition stops.

use std::pin::Pin;
use std::time::{Duration, Instant};

use actix::prelude::*;
use tracing::{debug, error, info, warn};

use crate::messages::{CancelFlag, SealedObject, UploadOutcome};
use crate::metadata::ObjectMetadata;
use crate::metrics;
use crate::staging::{self, Attempts, Retry, Staged, StagedObject, StreamError};
use crate::status::StatusBoard;
use crate::store::{ObjectStore, SharedStore, StoreError, UploadedPart};

pub struct Uploader {
    id: usize,
    store: SharedStore,
    /// Boxed because the receiver is not `Unpin`; taken when the actor starts.
    queue: Option<Pin<Box<async_channel::Receiver<SealedObject>>>>,
    initial_backoff: Duration,
    max_backoff: Duration,
    /// `None`: retry until the bucket accepts the object.
    max_attempts: Option<u32>,
    status: StatusBoard,
}

impl Uploader {
    pub fn new(
        id: usize,
        store: SharedStore,
        queue: async_channel::Receiver<SealedObject>,
        initial_backoff: Duration,
        max_backoff: Duration,
        max_attempts: Option<u32>,
        status: StatusBoard,
    ) -> Self {
        Uploader {
            id,
            store,
            queue: Some(Box::pin(queue)),
            initial_backoff,
            max_backoff,
            max_attempts,
            status,
        }
    }
}

impl Actor for Uploader {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        if let Some(queue) = self.queue.take() {
            ctx.add_stream(queue);
        }
    }
}

impl StreamHandler<SealedObject> for Uploader {
    fn handle(&mut self, mut object: SealedObject, ctx: &mut Self::Context) {
        object.memory.move_to(crate::memory::Kind::Uploading);
        let store = self.store.clone();
        let (initial, max, attempts) = (self.initial_backoff, self.max_backoff, self.max_attempts);
        let id = self.id;
        let status = self.status.clone();
        ctx.wait(
            async move {
                let reply = object.reply.clone();
                if object.cancel.is_cancelled() {
                    debug!(uploader = id, topic = %object.topic, partition = object.partition, key = %object.key, "upload abandoned: the partition's assignment ended");
                    return;
                }
                // Streamed parts and body: the object's size in the bucket.
                let size = object.size();
                let uploaded = match object.staged.take() {
                    None => upload_with_retries(&*store, &object, initial, max, attempts, &status).await,
                    Some(staged) => {
                        let retry = Retry {
                            initial_backoff: initial,
                            max_backoff: max,
                            max_attempts: attempts,
                        };
                        let uploaded = upload_staged(&*store, &object, staged, retry, &status).await;
                        if uploaded.is_ok() {
                            metrics::record_object_copied(&object.topic, object.partition);
                        }
                        uploaded
                    }
                };
                match uploaded {
                    Ok(took) => {
                        status.set_bucket(Ok(()));
                        object.metrics.stored(
                            object.records,
                            size,
                            took,
                            object.oldest_timestamp,
                        );
                        debug!(uploader = id, topic = %object.topic, partition = object.partition, key = %object.key, bytes = size, "object stored");
                        reply.do_send(UploadOutcome::Stored {
                            unit: object.unit,
                            bytes: object.body.len(),
                            key: object.key,
                        });
                    }
                    // Nobody would act on the outcome: not the failure policy's either.
                    Err(Refusal::Abandoned) => {
                        debug!(uploader = id, topic = %object.topic, partition = object.partition, key = %object.key, "upload abandoned: the partition's assignment ended");
                    }
                    Err(Refusal::Failed(error)) => reply.do_send(UploadOutcome::Failed {
                        object: Box::new(object),
                        error,
                    }),
                    Err(Refusal::Lost(error)) => {
                        error!(code = %error.code(), topic = %object.topic, partition = object.partition,
                            key = %object.key, first_offset = object.first_offset,
                            "streamed object cannot be finished, its records are no longer in memory: \
                             the partition stops and they are read again after a restart: {error}");
                        reply.do_send(UploadOutcome::Lost {
                            object: Box::new(object),
                            error,
                        })
                    }
                    Err(Refusal::Foreign(reason)) => {
                        error!(code = %crate::error::ErrorCode::BucketForeignObject, topic = %object.topic,
                            partition = object.partition, key = %object.key, "not uploaded: the key is taken by another object: {reason}");
                        reply.do_send(UploadOutcome::Foreign {
                            object: Box::new(object),
                            reason,
                        })
                    }
                }
            }
            .into_actor(self),
        );
    }

    fn finished(&mut self, _ctx: &mut Self::Context) {
        // The queue closed: the pipeline is shutting down. Nothing to do.
    }
}

/// Why an object was not stored.
enum Refusal {
    /// The store refused it `max_attempts` times for reasons of the object itself.
    Failed(StoreError),
    /// The key holds an object with other records.
    Foreign(String),
    /// The partition's assignment ended: no further attempt.
    Abandoned,
    /// A streamed object's parts cannot be completed into it (`crate::staging`).
    Lost(StoreError),
}

/// What [`staging::retried`] needs of a streamed object being finished.
struct Finishing<'a> {
    retry: Retry,
    object: &'a SealedObject,
    status: &'a StatusBoard,
}

impl Attempts for Finishing<'_> {
    fn retry(&self) -> Retry {
        self.retry
    }
    fn cancel(&self) -> &CancelFlag {
        &self.object.cancel
    }
    fn topic(&self) -> &str {
        &self.object.topic
    }
    fn partition(&self) -> i32 {
        self.object.partition
    }
    fn status(&self) -> &StatusBoard {
        self.status
    }
}

fn refusal(error: StreamError) -> Refusal {
    match error {
        StreamError::Abandoned => Refusal::Abandoned,
        StreamError::Lost(error) => Refusal::Lost(error),
    }
}

/// Finishes a streamed object (`crate::staging`): waits for its parts, uploads its body as the
/// last part, completes the staging upload, creates the object from the staging object (a
/// conditional create, like [`upload_with_retries`]) and deletes the staging object. Returns
/// how long it took from the wait on.
async fn upload_staged(
    store: &dyn ObjectStore,
    object: &SealedObject,
    staged: StagedObject,
    retry: Retry,
    status: &StatusBoard,
) -> Result<Duration, Refusal> {
    let started = Instant::now();
    let live = staged.key.clone();
    let key = live.key();
    let parts = match staged.done.await {
        Ok(Ok(parts)) => parts,
        Ok(Err(error)) => return Err(refusal(error)),
        Err(_) if object.cancel.is_cancelled() => return Err(Refusal::Abandoned),
        Err(_) => {
            return Err(Refusal::Lost(StoreError::Transient {
                bucket: store.bucket().to_owned(),
                detail: "the task streaming the object's parts ended".to_owned(),
            }))
        }
    };
    let finishing = Finishing {
        retry,
        object,
        status,
    };
    let mut completed = false;
    let result = finish_staged(store, object, &finishing, key, &parts, &mut completed).await;
    match &result {
        Ok(()) => {
            // The object is stored: a staging object left behind is only billed, and the next
            // assignment's sweep deletes it.
            for _ in 0..3 {
                if store.delete(key).await.is_ok() {
                    break;
                }
                tokio::time::sleep(jitter(retry.initial_backoff)).await;
            }
        }
        // Best effort; otherwise the next assignment's sweep does it.
        Err(_) if completed => {
            let _ = store.delete(key).await;
        }
        Err(_) => {
            let _ = store.abort_upload(key, &parts.upload_id).await;
        }
    }
    result.map(|()| started.elapsed())
}

async fn finish_staged(
    store: &dyn ObjectStore,
    object: &SealedObject,
    finishing: &Finishing<'_>,
    key: &str,
    staged: &Staged,
    completed: &mut bool,
) -> Result<(), Refusal> {
    let upload_id = staged.upload_id.as_str();
    let mut parts = staged.parts.clone();
    if !object.body.is_empty() {
        let number = parts.len() as i32 + 1;
        let etag = staging::retried("upload the last part", key, finishing, || {
            store.upload_part(key, upload_id, number, object.body.clone())
        })
        .await
        .map_err(refusal)?;
        parts.push(UploadedPart { number, etag });
    }
    let complete = staging::retried("complete the staging upload", key, finishing, || {
        store.complete_upload(key, upload_id, &parts)
    })
    .await;
    match complete {
        Ok(()) => {}
        // Completed by an attempt whose answer was lost: the staging object is there.
        Err(StreamError::Lost(error))
            if error.is_upload_gone() && matches!(store.head(key).await, Ok(Some(_))) => {}
        Err(error) => return Err(refusal(error)),
    }
    *completed = true;
    // Crash tests: the staging object is complete, the object is not created yet.
    fail::fail_point!("after-staging-complete");
    let length = staged.bytes + object.body.len() as u64;
    let metadata = object.metadata.to_pairs();
    let mut backoff = finishing.retry.initial_backoff;
    loop {
        let created = staging::retried(
            "create the object from its staging object",
            key,
            finishing,
            || store.copy_create(key, length, &object.key, &metadata),
        )
        .await;
        match created {
            Ok(_etag) => {
                // Crash tests: the object is stored, its offsets are not committed yet.
                fail::fail_point!("after-upload");
                return Ok(());
            }
            Err(StreamError::Lost(StoreError::AlreadyExists { .. })) => {
                match already_there(store, object).await {
                    Ok(true) => {
                        info!(topic = %object.topic, partition = object.partition, key = %object.key,
                            "object already in the bucket with the same records (stored before a retry or a restart)");
                        return Ok(());
                    }
                    // Gone since, or the read failed: create it again after the backoff.
                    Ok(false) | Err(Refusal::Failed(_)) => {}
                    Err(refusal) => return Err(refusal),
                }
                tokio::time::sleep(jitter(backoff)).await;
                backoff = (backoff * 2).min(finishing.retry.max_backoff);
                if object.cancel.is_cancelled() {
                    return Err(Refusal::Abandoned);
                }
            }
            Err(error) => return Err(refusal(error)),
        }
    }
}

/// Puts the object until the store accepts it (or already holds it), or refuses it for itself
/// `max_attempts` times; returns how long the successful attempt took.
async fn upload_with_retries(
    store: &dyn ObjectStore,
    object: &SealedObject,
    initial: Duration,
    max: Duration,
    max_attempts: Option<u32>,
    status: &StatusBoard,
) -> Result<Duration, Refusal> {
    let metadata = object.metadata.to_pairs();
    let mut backoff = initial;
    let mut attempt: u32 = 0;
    let mut refusals: u32 = 0;
    loop {
        attempt += 1;
        let started = Instant::now();
        // Counted while in flight: the partition's next assignment lists the bucket only once
        // no attempt of an ended one can still create an object.
        let Some(in_flight) = object.cancel.begin_attempt() else {
            return Err(Refusal::Abandoned);
        };
        let put = store.put(&object.key, object.body.clone(), &metadata).await;
        drop(in_flight);
        let failure = match put {
            Ok(_etag) => {
                status.set_bucket(Ok(()));
                // Crash tests: the object is stored, its offsets are not committed yet.
                fail::fail_point!("after-upload");
                return Ok(started.elapsed());
            }
            Err(StoreError::AlreadyExists { .. }) => {
                match already_there(store, object).await {
                    Ok(true) => {
                        status.set_bucket(Ok(()));
                        info!(topic = %object.topic, partition = object.partition, key = %object.key,
                            "object already in the bucket with the same records (stored before a retry or a restart)");
                        return Ok(started.elapsed());
                    }
                    Ok(false) => {
                        // Removed between the create and the read: create it again, after the
                        // backoff (a store that keeps answering both ways is not hammered).
                        tokio::time::sleep(jitter(backoff)).await;
                        backoff = (backoff * 2).min(max);
                        continue;
                    }
                    Err(Refusal::Failed(error)) => error,
                    Err(refusal) => return Err(refusal),
                }
            }
            Err(failure) => failure,
        };
        metrics::record_retry(failure.code());
        status.set_bucket(Err((failure.code(), failure.to_string())));
        if !failure.is_infrastructure() {
            refusals += 1;
            if max_attempts.is_some_and(|max| refusals >= max) {
                error!(
                    code = %failure.code(), topic = %object.topic, partition = object.partition,
                    key = %object.key, attempt, "upload refused, attempts spent: {failure}"
                );
                return Err(Refusal::Failed(failure));
            }
        }
        status.set_error(
            object.partition,
            failure.code(),
            &failure.to_string(),
            Some(object.first_offset),
        );
        log_failure(&failure, object, attempt, backoff);
        tokio::time::sleep(jitter(backoff)).await;
        backoff = (backoff * 2).min(max);
        if object.cancel.is_cancelled() {
            return Err(Refusal::Abandoned);
        }
    }
}

/// After a conditional create found the key taken: whether the object there holds the same
/// records (`Ok(false)`: there is no object any more).
async fn already_there(store: &dyn ObjectStore, object: &SealedObject) -> Result<bool, Refusal> {
    let Some(found) = store.head(&object.key).await.map_err(Refusal::Failed)? else {
        return Ok(false);
    };
    match ObjectMetadata::from_map(&found) {
        Ok(found) if object.metadata.same_records(&found) => Ok(true),
        Ok(found) => Err(Refusal::Foreign(object.metadata.difference(&found))),
        Err(error) => Err(Refusal::Foreign(error.to_string())),
    }
}

fn log_failure(failure: &StoreError, object: &SealedObject, attempt: u32, backoff: Duration) {
    let retry_in_ms = backoff.as_millis() as u64;
    // A store that is down or throttles is a warning; refused credentials, a missing bucket or
    // a refused object need an operator: errors, although retried.
    match failure {
        StoreError::Transient { .. } => warn!(
            code = %failure.code(), topic = %object.topic, partition = object.partition,
            key = %object.key, attempt, retry_in_ms, "upload failed, retrying: {failure}"
        ),
        _ if failure.is_infrastructure() => error!(
            code = %failure.code(), topic = %object.topic, partition = object.partition,
            key = %object.key, attempt, retry_in_ms, "upload failed, retrying: {failure}"
        ),
        _ => error!(
            code = %failure.code(), topic = %object.topic, partition = object.partition,
            key = %object.key, attempt, retry_in_ms, "upload refused, retrying: {failure}"
        ),
    }
}

/// Between 50% and 100% of `backoff`, so that uploaders that failed together do not retry together.
pub(crate) fn jitter(backoff: Duration) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.subsec_nanos())
        .unwrap_or(0);
    let fraction = 0.5 + (nanos % 1000) as f64 / 2000.0;
    backoff.mul_f64(fraction)
}

#[cfg(test)]
mod tests;
