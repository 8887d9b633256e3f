//! `Uploader`: writes sealed objects to the bucket, one at a time.
//!
//! - Receives: `SealedObject`s from the shared bounded upload queue (a multi-consumer channel:
//!   whichever uploader is free takes the next object). `ctx.wait` around each upload means an
//!   uploader takes the next object only when the previous one is stored, so the number of
//!   uploaders is the number of uploads in flight, and a slow store fills the queue, which
//!   blocks the batchers, which block their consumers.
//! - Sends: `UploadReceipt` to the object's batcher (`do_send`; see `UploadReceipt`).
//! - Retries every failure with capped, jittered exponential backoff, up to `max_attempts`
//!   (or forever); then the object goes back to its batcher as `UploadOutcome::Failed`, which
//!   applies the failure policy. Each failed attempt is logged with its code.

use std::pin::Pin;
use std::time::{Duration, Instant};

use actix::prelude::*;
use tracing::{debug, error, warn};

use crate::messages::{SealedObject, UploadOutcome};
use crate::metrics;
use crate::status::StatusBoard;
use crate::store::{SharedStore, StoreError};

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
    fn handle(&mut self, object: SealedObject, ctx: &mut Self::Context) {
        let store = self.store.clone();
        let (initial, max, attempts) = (self.initial_backoff, self.max_backoff, self.max_attempts);
        let id = self.id;
        let status = self.status.clone();
        ctx.wait(
            async move {
                let reply = object.reply.clone();
                match upload_with_retries(&store, &object, initial, max, attempts, &status).await {
                    Ok(took) => {
                        object.metrics.stored(
                            object.records,
                            object.body.len(),
                            took,
                            object.oldest_timestamp,
                        );
                        debug!(uploader = id, topic = %object.topic, partition = object.partition, key = %object.key, bytes = object.body.len(), "object stored");
                        reply.do_send(UploadOutcome::Stored {
                            unit: object.unit,
                            bytes: object.body.len(),
                            key: object.key,
                        });
                    }
                    Err(error) => reply.do_send(UploadOutcome::Failed {
                        object: Box::new(object),
                        error,
                    }),
                }
            }
            .into_actor(self),
        );
    }

    fn finished(&mut self, _ctx: &mut Self::Context) {
        // The queue closed: the pipeline is shutting down. Nothing to do.
    }
}

/// Puts the object until the store accepts it or `max_attempts` are spent; returns how long
/// the successful attempt took.
async fn upload_with_retries(
    store: &SharedStore,
    object: &SealedObject,
    initial: Duration,
    max: Duration,
    max_attempts: Option<u32>,
    status: &StatusBoard,
) -> Result<Duration, StoreError> {
    let mut backoff = initial;
    let mut attempt: u32 = 0;
    loop {
        attempt += 1;
        let started = Instant::now();
        match store.put(&object.key, object.body.clone()).await {
            Ok(_etag) => {
                status.set_bucket(Ok(()));
                return Ok(started.elapsed());
            }
            Err(failure) if max_attempts.is_some_and(|max| attempt >= max) => {
                metrics::record_retry(failure.code());
                status.set_bucket(Err((failure.code(), failure.to_string())));
                error!(
                    code = %failure.code(), topic = %object.topic, partition = object.partition,
                    key = %object.key, attempt, "upload failed, attempts spent: {failure}"
                );
                return Err(failure);
            }
            Err(failure) => {
                metrics::record_retry(failure.code());
                status.set_bucket(Err((failure.code(), failure.to_string())));
                status.set_error(
                    object.partition,
                    failure.code(),
                    &failure.to_string(),
                    Some(object.first_offset),
                );
                log_failure(&failure, object, attempt, backoff);
                tokio::time::sleep(jitter(backoff)).await;
                backoff = (backoff * 2).min(max);
            }
        }
    }
}

fn log_failure(failure: &StoreError, object: &SealedObject, attempt: u32, backoff: Duration) {
    let retry_in_ms = backoff.as_millis() as u64;
    match failure {
        StoreError::Transient { .. } => warn!(
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
fn jitter(backoff: Duration) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.subsec_nanos())
        .unwrap_or(0);
    let fraction = 0.5 + (nanos % 1000) as f64 / 2000.0;
    backoff.mul_f64(fraction)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_between_half_and_full_backoff() {
        for _ in 0..100 {
            let delay = jitter(Duration::from_millis(1000));
            assert!(
                delay >= Duration::from_millis(500) && delay <= Duration::from_millis(1000),
                "{delay:?}"
            );
        }
    }
}
