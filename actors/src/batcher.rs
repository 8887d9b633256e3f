//! `Batcher`: turns one partition's records into objects and commits what is stored.
//!
//! - Receives: `Records` (mailbox capacity `MAILBOX`, so a blocked batcher blocks its consumer),
//!   `UploadReceipt` from the uploaders, `Drain`, `Stop`.
//! - Sends: `SealedObject`s into the shared bounded upload queue (awaited inside `ctx.wait`: while
//!   the queue is full the batcher takes no more records), and `PartitionFailed` to the supervisor.
//! - Owns: the open object's encoder and the partition's [`CommitTracker`]. When the contiguous
//!   prefix of objects is stored, it stores `last + 1` as the partition's offset (the driver
//!   thread commits stored offsets).
//! - Seals an object when it reaches `max_records` or `max_bytes`, when `max_interval` has passed
//!   since its first record, and on drain.
//! - A record that cannot be encoded (not UTF-8) stops the partition: the records before it are
//!   sealed and uploaded, so the committed offset ends exactly at the bad record; the records
//!   after it are never written and the supervisor reports the error with its code.

use std::sync::Arc;
use std::time::Instant;

use actix::prelude::*;
use rdkafka::consumer::Consumer;
use tokio::sync::oneshot;
use tracing::{debug, warn};

use crate::commit::CommitTracker;
use crate::encode::ObjectEncoder;
use crate::kafka::SinkConsumer;
use crate::messages::{
    Drain, DrainReport, PartitionFailed, Records, SealedObject, Stop, UploadReceipt,
};
use crate::metrics::{self, PartitionMetrics};
use crate::object_key::object_key;
use crate::settings::RollPolicy;
use crate::status::StatusBoard;

/// Records messages buffered ahead of the batcher: enough to overlap polling and encoding,
/// small enough that backpressure reaches the consumer quickly.
const MAILBOX: usize = 2;

/// Why an object was sealed (logged, and the `reason` label of the rotation counter).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SealReason {
    Records,
    Bytes,
    Interval,
    Drain(Drain),
    RecordError,
}

impl SealReason {
    /// The label value; one of [`metrics::ROTATION_REASONS`].
    pub fn label(self) -> &'static str {
        match self {
            SealReason::Records => "count",
            SealReason::Bytes => "bytes",
            SealReason::Interval => "interval",
            SealReason::Drain(Drain::Shutdown) => "shutdown",
            SealReason::Drain(Drain::Rebalance) => "rebalance",
            SealReason::RecordError => "record_error",
        }
    }
}

pub struct Batcher {
    topic: Arc<str>,
    partition: i32,
    key_prefix: Arc<str>,
    policy: RollPolicy,
    consumer: Arc<SinkConsumer>,
    upload_queue: async_channel::Sender<SealedObject>,
    supervisor: Recipient<PartitionFailed>,
    /// The object being built, if it holds at least one record.
    open: Option<ObjectEncoder>,
    /// When the open object got its first record.
    opened_at: Option<Instant>,
    /// The interval timer of the open object.
    interval_timer: Option<SpawnHandle>,
    tracker: CommitTracker,
    /// Answered once nothing is buffered or in flight.
    drain_waiters: Vec<oneshot::Sender<DrainReport>>,
    /// Set at the first record error; later records are ignored.
    failed: bool,
    metrics: Arc<PartitionMetrics>,
    status: StatusBoard,
    /// Bytes of sealed objects not yet stored (for the buffered-bytes gauge).
    in_flight_bytes: usize,
}

impl Batcher {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        topic: Arc<str>,
        partition: i32,
        key_prefix: Arc<str>,
        policy: RollPolicy,
        consumer: Arc<SinkConsumer>,
        upload_queue: async_channel::Sender<SealedObject>,
        supervisor: Recipient<PartitionFailed>,
        metrics: Arc<PartitionMetrics>,
        status: StatusBoard,
    ) -> Self {
        Batcher {
            topic,
            partition,
            key_prefix,
            policy,
            consumer,
            upload_queue,
            supervisor,
            open: None,
            opened_at: None,
            interval_timer: None,
            tracker: CommitTracker::default(),
            drain_waiters: Vec::new(),
            failed: false,
            metrics,
            status,
            in_flight_bytes: 0,
        }
    }

    /// Updates the buffered-bytes gauge: the open object plus the objects not yet stored.
    fn report_buffered(&self) {
        let open = self.open.as_ref().map_or(0, ObjectEncoder::len);
        self.metrics
            .buffered_bytes
            .set((open + self.in_flight_bytes) as f64);
    }

    fn new_encoder(&self) -> ObjectEncoder {
        // Start small and let the Vec grow: most partitions never fill an object.
        ObjectEncoder::new(
            &self.topic,
            self.partition,
            self.policy.max_bytes.min(64 * 1024),
        )
    }

    /// Closes the open object, registers it with the tracker and returns it for upload.
    fn seal(&mut self, reason: SealReason, ctx: &mut Context<Self>) -> Option<SealedObject> {
        let encoder = self.open.take()?;
        if let Some(timer) = self.interval_timer.take() {
            ctx.cancel_future(timer);
        }
        self.opened_at = None;
        let (first, last, records, oldest_timestamp) = (
            encoder.first_offset(),
            encoder.last_offset(),
            encoder.records(),
            encoder.min_timestamp(),
        );
        let body = encoder.finish();
        self.metrics.rotated(reason.label());
        self.in_flight_bytes += body.len();
        debug!(topic = %self.topic, partition = self.partition, first, last, records, bytes = body.len(), ?reason, "object sealed");
        self.tracker.sealed(first, last);
        Some(SealedObject {
            key: object_key(&self.key_prefix, &self.topic, self.partition, first, last),
            body,
            topic: self.topic.clone(),
            partition: self.partition,
            first_offset: first,
            last_offset: last,
            records,
            oldest_timestamp,
            metrics: self.metrics.clone(),
            reply: ctx.address().recipient(),
        })
    }

    /// Hands sealed objects to the upload queue; the batcher handles nothing else until they are in.
    fn enqueue(&mut self, objects: Vec<SealedObject>, ctx: &mut Context<Self>) {
        if objects.is_empty() {
            return;
        }
        let queue = self.upload_queue.clone();
        ctx.wait(
            async move {
                for object in objects {
                    if queue.send(object).await.is_err() {
                        return false;
                    }
                }
                true
            }
            .into_actor(self)
            .map(|delivered, actor, ctx| {
                if !delivered {
                    warn!(topic = %actor.topic, partition = actor.partition, "upload queue closed; batcher stops");
                    ctx.stop();
                }
            }),
        );
    }

    fn arm_interval_timer(&mut self, ctx: &mut Context<Self>) {
        self.opened_at = Some(Instant::now());
        self.interval_timer = Some(ctx.run_later(self.policy.max_interval, |actor, ctx| {
            actor.interval_timer = None;
            if let Some(object) = actor.seal(SealReason::Interval, ctx) {
                actor.enqueue(vec![object], ctx);
            }
        }));
    }

    fn answer_drain_waiters(&mut self) {
        if self.drain_waiters.is_empty() || self.open.is_some() || self.tracker.in_flight() > 0 {
            return;
        }
        let report = DrainReport {
            partition: self.partition,
            committable: self.tracker.committable(),
        };
        for waiter in self.drain_waiters.drain(..) {
            let _ = waiter.send(report);
        }
    }
}

/// Stores `next_offset` (the offset of the next record to read) as the partition's position.
///
/// Not `Consumer::store_offset`: that one wraps `rd_kafka_offset_store`, which stores its
/// argument *plus one* and would skip a record on restart. `store_offsets` stores the list's
/// offsets as given.
pub fn store_next_offset(
    consumer: &SinkConsumer,
    topic: &str,
    partition: i32,
    next_offset: i64,
) -> rdkafka::error::KafkaResult<()> {
    let mut list = rdkafka::TopicPartitionList::with_capacity(1);
    list.add_partition_offset(topic, partition, rdkafka::Offset::Offset(next_offset))?;
    consumer.store_offsets(&list)
}

impl Actor for Batcher {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(MAILBOX);
    }
}

impl Handler<Records> for Batcher {
    type Result = ();

    fn handle(&mut self, Records(chunk): Records, ctx: &mut Self::Context) {
        if self.failed {
            return;
        }
        let mut sealed = Vec::new();
        for record in chunk.records() {
            let encoder = match &mut self.open {
                Some(encoder) => encoder,
                None => {
                    self.open = Some(self.new_encoder());
                    self.arm_interval_timer(ctx);
                    self.open.as_mut().expect("just opened")
                }
            };
            let (len_before, records_before, last_before) =
                (encoder.len(), encoder.records(), encoder.last_offset());
            if let Err(error) = encoder.push(&chunk, record) {
                self.failed = true;
                sealed.extend(self.seal(SealReason::RecordError, ctx));
                metrics::record_failed(&self.topic, self.partition, error.code(), "none");
                self.supervisor.do_send(PartitionFailed {
                    partition: self.partition,
                    offset: error.offset(),
                    code: error.code(),
                    error: error.to_string(),
                });
                break;
            }
            if encoder.len() > self.policy.max_bytes && records_before > 0 {
                // This record made the object too large: it starts the next object instead.
                encoder.pop_last(len_before, records_before, last_before);
                sealed.extend(self.seal(SealReason::Bytes, ctx));
                let mut next = self.new_encoder();
                next.push(&chunk, record)
                    .expect("the record was just encoded once");
                self.open = Some(next);
                self.arm_interval_timer(ctx);
            }
            let encoder = self.open.as_ref().expect("an object is open");
            if encoder.records() >= self.policy.max_records {
                sealed.extend(self.seal(SealReason::Records, ctx));
            } else if encoder.len() >= self.policy.max_bytes {
                sealed.extend(self.seal(SealReason::Bytes, ctx));
            }
        }
        self.enqueue(sealed, ctx);
        self.report_buffered();
    }
}

impl Handler<UploadReceipt> for Batcher {
    type Result = ();

    fn handle(&mut self, receipt: UploadReceipt, _ctx: &mut Self::Context) {
        self.in_flight_bytes = self.in_flight_bytes.saturating_sub(receipt.bytes);
        self.report_buffered();
        self.status.set_last_object(self.partition, &receipt.key);
        if let Some(next_offset) = self
            .tracker
            .stored(receipt.first_offset, receipt.last_offset)
        {
            // In memory only; the driver thread commits. Fails with `_STATE` if the partition was
            // revoked meanwhile: then the new owner re-reads from the last commit.
            if let Err(error) =
                store_next_offset(&self.consumer, &self.topic, self.partition, next_offset)
            {
                warn!(code = "KAFKA_COMMIT", topic = %self.topic, partition = self.partition, next_offset, %error, "cannot store offset");
            }
        }
        self.answer_drain_waiters();
    }
}

impl Handler<Drain> for Batcher {
    type Result = ResponseFuture<DrainReport>;

    fn handle(&mut self, drain: Drain, ctx: &mut Self::Context) -> Self::Result {
        let objects = self
            .seal(SealReason::Drain(drain), ctx)
            .into_iter()
            .collect();
        self.enqueue(objects, ctx);
        let (sender, receiver) = oneshot::channel();
        self.drain_waiters.push(sender);
        self.answer_drain_waiters();
        let partition = self.partition;
        Box::pin(async move {
            receiver.await.unwrap_or(DrainReport {
                partition,
                committable: None,
            })
        })
    }
}

impl Handler<Stop> for Batcher {
    type Result = ();

    fn handle(&mut self, _: Stop, ctx: &mut Self::Context) {
        ctx.stop();
    }
}
