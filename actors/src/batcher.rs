//! `Batcher`: turns one partition's records into objects, applies the failure policy to the
//! records and objects that cannot be delivered, and stores the offset that may be committed.
//!
//! - Receives: `Records` (mailbox capacity `MAILBOX`, so a blocked batcher blocks its consumer),
//!   `UploadOutcome` from the uploaders, `Drain`, `ResumeBatcher`, `Stop`.
//! - Sends: `SealedObject`s into the shared bounded upload queue (awaited inside `ctx.wait`: while
//!   the queue is full the batcher takes no more records), failed records to the dead-letter or
//!   abnormal-data topic (acknowledgements awaited), and `PartitionFailed` to the supervisor.
//! - Owns: the open object's encoder and the partition's [`CommitTracker`]. When the contiguous
//!   prefix of units is done, it stores that offset (the driver thread commits stored offsets).
//! - Seals an object when it reaches `max_records` or `max_bytes`, when `max_interval` has passed
//!   since its first record, on drain, and (`seal_when_caught_up`) on `CaughtUp` from its consumer
//!   when the partition was behind by a full object or for `max_interval` before: the tail of a
//!   backlog is stored at once, while a partition that keeps up still fills its objects (at most
//!   one such seal per full object or per `max_interval`, so no stream of tiny objects).
//!
//! Failure policy:
//! - A record that cannot be converted (key or value not UTF-8): `log` sends it to the
//!   dead-letter topic and goes on; `fail` seals the records before it (so the commit ends exactly
//!   at the bad record), holds it and everything after it, and reports the partition failed.
//! - A value over `max_value_bytes` is written with `"value": null, "overflowFlag": true`, and the
//!   whole record also goes to the dead-letter topic, under either policy.
//! - An object the bucket refused after the upload attempts: `log` forwards its records (rebuilt
//!   from the object and its header sidecar) to the abnormal-data topic; `fail` holds the object and stops the partition.
//! - A held partition goes on with `ResumeBatcher`: held objects are uploaded again, a held bad
//!   record goes to the dead-letter topic (the operator chose to skip it), held records follow.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use actix::prelude::*;
use rdkafka::consumer::Consumer;
use tokio::sync::oneshot;
use tracing::{debug, error, info, warn};

use crate::buffer_pool::BufferPool;
use crate::commit::{CommitTracker, UnitId};
use crate::encode::{decode_object, ObjectEncoder, Pushed, RecordError};
use crate::error_topics::{Destination, ErrorTopics, Failure};
use crate::kafka::SinkConsumer;
use crate::messages::{
    CaughtUp, Drain, DrainReport, PartitionFailed, PartitionResumed, Records, ResumeBatcher,
    SealedObject, Stop, UploadOutcome,
};
use crate::metrics::{self, PartitionMetrics};
use crate::object_key::object_key;
use crate::object_key::{list_start_after, parse_offsets, partition_prefix};
use crate::record::RecordChunk;
use crate::settings::{FailurePolicy, FailureSettings, RollPolicy};
use crate::status::StatusBoard;
use crate::store::{SharedStore, StoreError};

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
    /// The next offsets are already in the bucket (recovered at assignment).
    Recovered,
    /// The partition caught up after a backlog.
    CaughtUp,
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
            SealReason::Recovered => "recovered",
            SealReason::CaughtUp => "caught_up",
        }
    }
}

/// The object being built and the commit unit it belongs to.
struct OpenObject {
    encoder: ObjectEncoder,
    unit: UnitId,
    /// Last offset handled in this unit (written, or sent to the dead-letter topic).
    last_seen: i64,
}

/// Records read since the partition was last caught up.
#[derive(Debug, Clone, Copy)]
struct Behind {
    since: Instant,
    records: usize,
    bytes: usize,
}

impl Behind {
    /// Whether catching up now should seal the open object: the partition was behind by a full
    /// object or for the interval. A partition that keeps up is never behind that much, so it
    /// still fills its objects; the number of such seals is at most one per full object or per
    /// interval.
    fn warrants_seal(&self, policy: &RollPolicy, now: Instant) -> bool {
        self.records >= policy.max_records
            || self.bytes >= policy.max_bytes
            || now.duration_since(self.since) >= policy.max_interval
    }
}

/// Whether the partition goes on.
#[derive(Debug, Clone)]
enum Mode {
    Running,
    /// Stopped by the failure policy; holds records and/or objects until resumed.
    Failed {
        /// The held first record failed conversion: on resume it goes to the dead-letter topic.
        bad_record: Option<Failure>,
        /// `false` when resuming in-process cannot help (an error topic refused a record): the
        /// partition restarts from its committed offset after a restart of the connector.
        resumable: bool,
    },
}

/// Everything the batcher needs besides its partition.
#[derive(Clone)]
pub struct BatcherContext {
    pub topic: Arc<str>,
    pub key_prefix: Arc<str>,
    pub policy: RollPolicy,
    pub failure: FailureSettings,
    pub consumer: Arc<SinkConsumer>,
    pub upload_queue: async_channel::Sender<SealedObject>,
    pub error_topics: ErrorTopics,
    /// Lists what is already in the bucket when the partition starts (recovery); `None`
    /// disables the recovery (benchmarks without a bucket).
    pub store: Option<SharedStore>,
    pub supervisor: Recipient<PartitionFailed>,
    pub resumed: Recipient<PartitionResumed>,
    /// Object buffers, reused once their object is stored.
    pub buffers: BufferPool,
}

pub struct Batcher {
    cx: BatcherContext,
    partition: i32,
    metrics: Arc<PartitionMetrics>,
    status: StatusBoard,
    /// Bytes of sealed objects not yet stored (for the buffered-bytes gauge).
    in_flight_bytes: usize,
    open: Option<OpenObject>,
    /// The interval timer of the open object.
    interval_timer: Option<SpawnHandle>,
    tracker: CommitTracker,
    /// Objects handed to the uploaders (or being forwarded to the abnormal-data topic) whose
    /// outcome is not known yet.
    pending: usize,
    /// Answered once nothing is buffered or in flight.
    drain_waiters: Vec<oneshot::Sender<DrainReport>>,
    mode: Mode,
    /// Records not processed because the partition failed: (chunk, index of the first one).
    held_records: VecDeque<(RecordChunk, usize)>,
    /// Objects the bucket refused under the `fail` policy, uploaded again on resume.
    held_objects: Vec<SealedObject>,
    /// `(first, last)` of objects already in the bucket at or after the first offset read, found
    /// when the partition started; `None` until the first records arrive.
    recovered: Option<VecDeque<(i64, i64)>>,
    /// Records up to this offset are in a recovered object: not written again.
    skip_until: i64,
    /// `None` while the partition is caught up.
    behind: Option<Behind>,
}

impl Batcher {
    pub fn new(
        cx: BatcherContext,
        partition: i32,
        metrics: Arc<PartitionMetrics>,
        status: StatusBoard,
    ) -> Self {
        Batcher {
            cx,
            partition,
            metrics,
            status,
            in_flight_bytes: 0,
            open: None,
            interval_timer: None,
            tracker: CommitTracker::default(),
            pending: 0,
            drain_waiters: Vec::new(),
            mode: Mode::Running,
            held_records: VecDeque::new(),
            held_objects: Vec::new(),
            recovered: None,
            skip_until: -1,
            behind: None,
        }
    }

    /// Updates the buffered-bytes gauge: the open object plus the objects not yet stored.
    fn report_buffered(&self) {
        let open = self.open.as_ref().map_or(0, |open| open.encoder.len());
        self.metrics
            .buffered_bytes
            .set((open + self.in_flight_bytes) as f64);
    }

    fn open_object(&mut self, ctx: &mut Context<Self>) -> &mut OpenObject {
        if self.open.is_none() {
            // A pooled buffer if one is idle, else a small one that grows: most partitions never
            // fill an object.
            let encoder = ObjectEncoder::pooled(
                &self.cx.topic,
                self.partition,
                self.cx.policy.max_bytes.min(64 * 1024),
                &self.cx.buffers,
            );
            let unit = self.tracker.open();
            self.open = Some(OpenObject {
                encoder,
                unit,
                last_seen: -1,
            });
            let timer = ctx.run_later(self.cx.policy.max_interval, |actor, ctx| {
                actor.interval_timer = None;
                if let Some(object) = actor.seal(SealReason::Interval, ctx) {
                    actor.enqueue(vec![object], ctx);
                }
            });
            self.interval_timer = Some(timer);
        }
        self.open.as_mut().expect("just opened")
    }

    /// Closes the open unit; returns its object for upload if it holds any record.
    fn seal(&mut self, reason: SealReason, ctx: &mut Context<Self>) -> Option<SealedObject> {
        let open = self.open.take()?;
        if let Some(timer) = self.interval_timer.take() {
            ctx.cancel_future(timer);
        }
        let OpenObject {
            encoder,
            unit,
            last_seen,
        } = open;
        let object = if encoder.is_empty() {
            None
        } else {
            let (first, last, records, oldest_timestamp) = (
                encoder.first_offset(),
                encoder.last_offset(),
                encoder.records(),
                encoder.min_timestamp(),
            );
            let (body, headers) = encoder.finish_with_headers();
            self.metrics.rotated(reason.label());
            self.in_flight_bytes += body.len();
            debug!(topic = %self.cx.topic, partition = self.partition, first, last, records, bytes = body.len(), ?reason, "object sealed");
            self.tracker.expect(unit);
            self.pending += 1;
            Some(SealedObject {
                key: object_key(
                    &self.cx.key_prefix,
                    &self.cx.topic,
                    self.partition,
                    first,
                    last,
                ),
                body,
                topic: self.cx.topic.clone(),
                partition: self.partition,
                first_offset: first,
                last_offset: last,
                records,
                unit,
                headers,
                oldest_timestamp,
                metrics: self.metrics.clone(),
                reply: ctx.address().recipient(),
            })
        };
        let advanced = if last_seen >= 0 {
            self.tracker.seal(unit, last_seen)
        } else {
            // Opened for a record that did not go in (the partition failed on it).
            self.tracker.discard(unit)
        };
        self.store(advanced);
        object
    }

    /// Stores the offset the done prefix reached, if it moved.
    fn store(&self, advanced: Option<i64>) {
        let Some(next_offset) = advanced else {
            return;
        };
        debug!(topic = %self.cx.topic, partition = self.partition, next_offset, "committable offset advanced");
        // In memory only; the driver thread commits. Fails with `_STATE` if the partition was
        // revoked meanwhile: then the new owner re-reads from the last commit.
        if let Err(error) = store_next_offset(
            &self.cx.consumer,
            &self.cx.topic,
            self.partition,
            next_offset,
        ) {
            warn!(code = "KAFKA_COMMIT", topic = %self.cx.topic, partition = self.partition, next_offset, %error, "cannot store offset");
        }
    }

    /// Hands sealed objects to the upload queue; the batcher handles nothing else until they are in.
    fn enqueue(&mut self, objects: Vec<SealedObject>, ctx: &mut Context<Self>) {
        if objects.is_empty() {
            return;
        }
        let queue = self.cx.upload_queue.clone();
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
                    warn!(topic = %actor.cx.topic, partition = actor.partition, "upload queue closed; batcher stops");
                    ctx.stop();
                }
            }),
        );
    }

    /// Processes records from `start` on. Stops (and holds the rest) when the partition fails.
    fn process(&mut self, chunk: RecordChunk, start: usize, ctx: &mut Context<Self>) {
        let mut sealed = Vec::new();
        let mut forwards = Vec::new();
        let max_value_bytes = self.cx.failure.max_value_bytes;
        let mut held_from = None;
        for index in start..chunk.len() {
            let record = &chunk.records()[index];
            if self.already_stored(record.offset, &mut sealed, ctx) {
                continue;
            }
            let policy = self.cx.policy;
            let open = self.open_object(ctx);
            let encoder = &mut open.encoder;
            let (len_before, records_before, last_before) =
                (encoder.len(), encoder.records(), encoder.last_offset());
            match encoder.push_limited(&chunk, record, max_value_bytes) {
                Ok(Pushed::Written) => {}
                Ok(Pushed::Overflowed { value_size }) => {
                    let failure = Failure {
                        code: "RECORD_OVERSIZE",
                        class_name: "kafka_oss_sink.ValueTooLarge",
                        stage: "VALUE_CONVERTER",
                        message: format!(
                            "value at offset {} is {value_size} bytes, over failure.max_value_bytes ({}); written to the bucket as null with overflowFlag",
                            record.offset,
                            max_value_bytes.unwrap_or(0)
                        ),
                    };
                    let unit = open.unit;
                    forwards.push(self.forward(&chunk, index, unit, &failure));
                }
                Err(record_error) => match self.cx.failure.policy {
                    FailurePolicy::Log => {
                        let failure = record_failure(&record_error);
                        let open = self.open.as_mut().expect("an object is open");
                        open.last_seen = record.offset;
                        let unit = open.unit;
                        warn!(code = failure.code, topic = %self.cx.topic, partition = self.partition, offset = record.offset, "{}; sent to the dead-letter topic", failure.message);
                        forwards.push(self.forward(&chunk, index, unit, &failure));
                        continue;
                    }
                    FailurePolicy::Fail => {
                        metrics::record_failed(
                            &self.cx.topic,
                            self.partition,
                            record_error.code(),
                            "none",
                            1,
                        );
                        sealed.extend(self.seal(SealReason::RecordError, ctx));
                        self.fail(
                            record.offset,
                            record_error.code(),
                            record_error.to_string(),
                            Some(record_failure(&record_error)),
                            true,
                        );
                        held_from = Some(index);
                        break;
                    }
                },
            }
            let open = self.open.as_mut().expect("an object is open");
            open.last_seen = record.offset;
            if open.encoder.len() > policy.max_bytes && records_before > 0 {
                // This record made the object too large: it starts the next object instead.
                open.encoder
                    .pop_last(len_before, records_before, last_before);
                // Everything before this record stays in the sealed unit.
                open.last_seen = record.offset - 1;
                sealed.extend(self.seal(SealReason::Bytes, ctx));
                let next = self.open_object(ctx);
                next.encoder
                    .push_limited(&chunk, record, max_value_bytes)
                    .expect("the record was just encoded once");
                next.last_seen = record.offset;
            }
            let open = self.open.as_ref().expect("an object is open");
            if open.encoder.records() >= policy.max_records {
                sealed.extend(self.seal(SealReason::Records, ctx));
            } else if open.encoder.len() >= policy.max_bytes {
                sealed.extend(self.seal(SealReason::Bytes, ctx));
            }
        }
        if let Some(index) = held_from {
            self.held_records.push_back((chunk, index));
        }
        self.enqueue(sealed, ctx);
        self.await_forwards(forwards, ctx);
    }

    /// Whether the record at `offset` is in an object that was already in the bucket when the
    /// partition started (uploaded before a crash or a rebalance, but not committed). Such
    /// objects are not written again, whatever the batching settings now: the open object is
    /// sealed just before one, and its offsets become committable at once.
    fn already_stored(
        &mut self,
        offset: i64,
        sealed: &mut Vec<SealedObject>,
        ctx: &mut Context<Self>,
    ) -> bool {
        if offset <= self.skip_until {
            return true;
        }
        let Some(recovered) = self.recovered.as_mut() else {
            return false;
        };
        while recovered.front().is_some_and(|&(_, last)| last < offset) {
            recovered.pop_front();
        }
        let Some(&(first, last)) = recovered.front() else {
            return false;
        };
        if offset < first {
            return false;
        }
        recovered.pop_front();
        sealed.extend(self.seal(SealReason::Recovered, ctx));
        let unit = self.tracker.open();
        let advanced = self.tracker.seal(unit, last);
        self.store(advanced);
        self.skip_until = last;
        info!(topic = %self.cx.topic, partition = self.partition, first, last,
            "offsets already in the bucket (stored before a restart or rebalance, not committed); not written again");
        true
    }

    /// Lists the partition's objects from the chunk's first offset on, once, then processes the
    /// chunk (one `ctx.wait`: actix runs waits last-in first-out, so the two must not be split).
    /// A failed listing (e.g. a key pair without list permission) only disables the recovery:
    /// records are then written again, under the same keys if cut the same way.
    fn recover_then_process(&mut self, chunk: RecordChunk, ctx: &mut Context<Self>) {
        let (Some(store), Some(first_offset)) = (self.cx.store.clone(), chunk.first_offset())
        else {
            self.recovered = Some(VecDeque::new());
            self.process(chunk, 0, ctx);
            return;
        };
        let prefix = partition_prefix(&self.cx.key_prefix, &self.cx.topic, self.partition);
        let start_after = list_start_after(
            &self.cx.key_prefix,
            &self.cx.topic,
            self.partition,
            first_offset,
        );
        debug!(topic = %self.cx.topic, partition = self.partition, first_offset, "first records: listing the bucket for objects stored but not committed");
        ctx.wait(
            async move { store.list(&prefix, Some(&start_after)).await }
                .into_actor(self)
                .map(move |listed, actor, ctx| {
                    debug!(topic = %actor.cx.topic, partition = actor.partition, "listing done");
                    let keys = listed.unwrap_or_else(|error| {
                        warn!(code = error.code(), topic = %actor.cx.topic, partition = actor.partition,
                            "cannot list the bucket to find objects stored but not committed; they may be written again: {error}");
                        Vec::new()
                    });
                    let mut ranges: Vec<(i64, i64)> =
                        keys.iter().filter_map(|key| parse_offsets(key)).collect();
                    ranges.sort_unstable();
                    actor.recovered = Some(ranges.into());
                    actor.process(chunk, 0, ctx);
                    actor.report_buffered();
                }),
        );
    }

    /// Enqueues one record for an error topic; the unit waits for its acknowledgement.
    fn forward(
        &mut self,
        chunk: &RecordChunk,
        index: usize,
        unit: UnitId,
        failure: &Failure,
    ) -> impl std::future::Future<Output = (UnitId, i64, Result<(), String>)> + 'static {
        let record = &chunk.records()[index];
        self.tracker.expect(unit);
        metrics::record_failed(
            &self.cx.topic,
            self.partition,
            failure.code,
            Destination::DeadLetter.as_str(),
            1,
        );
        let offset = record.offset;
        let delivered = self.cx.error_topics.forward(
            Destination::DeadLetter,
            &self.cx.topic,
            self.partition,
            chunk,
            record,
            failure,
        );
        async move { (unit, offset, delivered.await) }
    }

    /// Waits (taking no other message) until the broker acknowledged the forwarded records, so
    /// a partition of bad records is slowed by the broker, not buffered in memory.
    fn await_forwards(
        &mut self,
        forwards: Vec<
            impl std::future::Future<Output = (UnitId, i64, Result<(), String>)> + 'static,
        >,
        ctx: &mut Context<Self>,
    ) {
        if forwards.is_empty() {
            return;
        }
        ctx.wait(
            futures_util::future::join_all(forwards)
                .into_actor(self)
                .map(|results, actor, _ctx| {
                    debug!(topic = %actor.cx.topic, partition = actor.partition, records = results.len(), "dead-letter records acknowledged");
                    for (unit, offset, result) in results {
                        match result {
                            Ok(()) => {
                                let advanced = actor.tracker.acknowledged(unit);
                                actor.store(advanced);
                            }
                            Err(reason) => {
                                let message = format!("record at offset {offset} could not be written to the dead-letter topic: {reason}");
                                error!(code = "KAFKA_ERROR_TOPIC", topic = %actor.cx.topic, partition = actor.partition, offset, "{message}");
                                actor.fail(offset, "KAFKA_ERROR_TOPIC", message, None, false);
                            }
                        }
                    }
                    actor.answer_drain_waiters();
                }),
        );
    }

    /// Enters the failed mode (once) and tells the supervisor, which halts the consumer.
    fn fail(
        &mut self,
        offset: i64,
        code: &'static str,
        message: String,
        bad_record: Option<Failure>,
        resumable: bool,
    ) {
        if let Mode::Failed { resumable: was, .. } = &mut self.mode {
            *was &= resumable;
            return;
        }
        self.mode = Mode::Failed {
            bad_record,
            resumable,
        };
        self.cx.supervisor.do_send(PartitionFailed {
            partition: self.partition,
            offset,
            code,
            error: message,
        });
    }

    /// The bucket refused an object: `log` forwards its records to the abnormal-data topic,
    /// `fail` holds the object until the partition is resumed.
    fn upload_failed(&mut self, object: SealedObject, error: StoreError, ctx: &mut Context<Self>) {
        if self.cx.failure.policy == FailurePolicy::Fail {
            self.pending -= 1;
            self.in_flight_bytes = self.in_flight_bytes.saturating_sub(object.body.len());
            let (offset, code) = (object.first_offset, error.code());
            let message = format!("object {} was not stored: {error}", object.key);
            self.held_objects.push(object);
            self.fail(offset, code, message, None, true);
            return;
        }
        warn!(code = error.code(), topic = %self.cx.topic, partition = self.partition, key = %object.key,
            "object not stored ({error}); sending its records to the abnormal-data topic");
        let error_topics = self.cx.error_topics.clone();
        let topic = self.cx.topic.clone();
        let partition = self.partition;
        let failure = Failure {
            code: error.code(),
            class_name: "kafka_oss_sink.UploadFailed",
            stage: "TASK_PUT",
            message: format!("object {} was not stored: {error}", object.key),
        };
        let (first, last) = (object.first_offset, object.last_offset);
        let code = error.code();
        self.in_flight_bytes = self.in_flight_bytes.saturating_sub(object.body.len());
        let chunk = decode_object(&object.body, &object.headers);
        let forwarded = async move {
            let chunk = chunk?;
            let expected = chunk.len();
            debug!(topic = %topic, partition, records = expected, "forwarding a refused object's records");
            let deliveries: Vec<_> = chunk
                .records()
                .iter()
                .map(|record| {
                    error_topics.forward(
                        Destination::AbnormalData,
                        &topic,
                        partition,
                        &chunk,
                        record,
                        &failure,
                    )
                })
                .collect();
            for delivery in deliveries {
                delivery.await?;
            }
            Ok::<usize, String>(expected)
        };
        ctx.spawn(forwarded.into_actor(self).map(move |result, actor, _ctx| {
            match result {
                Ok(count) => {
                    metrics::record_failed(&actor.cx.topic, actor.partition, code, Destination::AbnormalData.as_str(), count as u64);
                    info!(topic = %actor.cx.topic, partition = actor.partition, first, last, records = count,
                        "records of the refused object are in the abnormal-data topic");
                    actor.pending -= 1;
                    let advanced = actor.tracker.acknowledged(object.unit);
                    actor.store(advanced);
                }
                Err(reason) => {
                    actor.pending -= 1;
                    let message = format!(
                        "records {first}..={last} could not be written to the abnormal-data topic: {reason}"
                    );
                    actor.held_objects.push(object);
                    actor.fail(first, "KAFKA_ERROR_TOPIC", message, None, true);
                }
            }
            actor.answer_drain_waiters();
        }));
    }

    fn answer_drain_waiters(&mut self) {
        if self.drain_waiters.is_empty() || self.open.is_some() || self.pending > 0 {
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

/// The failure of a record that cannot be converted.
fn record_failure(error: &RecordError) -> Failure {
    Failure {
        code: error.code(),
        class_name: "kafka_oss_sink.InvalidUtf8",
        stage: match error {
            RecordError::InvalidUtf8 {
                field: crate::encode::Field::Key,
                ..
            } => "KEY_CONVERTER",
            RecordError::InvalidUtf8 { .. } => "VALUE_CONVERTER",
        },
        message: error.to_string(),
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
        let behind = self.behind.get_or_insert_with(|| Behind {
            since: Instant::now(),
            records: 0,
            bytes: 0,
        });
        behind.records += chunk.len();
        behind.bytes += chunk.payload_bytes();
        if !matches!(self.mode, Mode::Running) {
            // Arrived after the failure (the consumer is halted now): kept for a resume.
            self.held_records.push_back((chunk, 0));
            return;
        }
        if self.recovered.is_none() {
            // The first records since assignment: look for objects stored but not committed.
            self.recover_then_process(chunk, ctx);
            self.report_buffered();
            return;
        }
        self.process(chunk, 0, ctx);
        self.report_buffered();
    }
}

impl Handler<CaughtUp> for Batcher {
    type Result = ();

    fn handle(&mut self, _: CaughtUp, ctx: &mut Self::Context) {
        let Some(behind) = self.behind.take() else {
            return;
        };
        let policy = &self.cx.policy;
        if !policy.seal_when_caught_up
            || !behind.warrants_seal(policy, Instant::now())
            || !matches!(self.mode, Mode::Running)
        {
            return;
        }
        if let Some(object) = self.seal(SealReason::CaughtUp, ctx) {
            self.enqueue(vec![object], ctx);
        }
        self.report_buffered();
    }
}

impl Handler<UploadOutcome> for Batcher {
    type Result = ();

    fn handle(&mut self, outcome: UploadOutcome, ctx: &mut Self::Context) {
        match outcome {
            UploadOutcome::Stored { unit, key, bytes } => {
                self.pending -= 1;
                self.in_flight_bytes = self.in_flight_bytes.saturating_sub(bytes);
                self.status.set_last_object(self.partition, &key);
                let advanced = self.tracker.acknowledged(unit);
                self.store(advanced);
            }
            UploadOutcome::Failed { object, error } => self.upload_failed(*object, error, ctx),
        }
        self.report_buffered();
        self.answer_drain_waiters();
    }
}

impl Handler<ResumeBatcher> for Batcher {
    type Result = Result<(), String>;

    fn handle(&mut self, _: ResumeBatcher, ctx: &mut Self::Context) -> Self::Result {
        let bad_record = match &self.mode {
            Mode::Running => return Ok(()),
            Mode::Failed {
                resumable: false, ..
            } => {
                return Err("an error topic refused a record; restart the connector to go on from the committed offset".into())
            }
            Mode::Failed { bad_record, .. } => bad_record.clone(),
        };
        self.mode = Mode::Running;
        self.cx.resumed.do_send(PartitionResumed {
            partition: self.partition,
        });
        let objects: Vec<SealedObject> = self.held_objects.drain(..).collect();
        self.pending += objects.len();
        self.enqueue(objects, ctx);
        let mut held: VecDeque<(RecordChunk, usize)> = std::mem::take(&mut self.held_records);
        if let (Some(failure), Some((chunk, index))) = (bad_record, held.front_mut()) {
            // The operator resumed past the bad record: it goes to the dead-letter topic.
            let record_offset = chunk.records()[*index].offset;
            let open = self.open_object(ctx);
            open.last_seen = record_offset;
            let unit = open.unit;
            let forward = self.forward(chunk, *index, unit, &failure);
            *index += 1;
            self.await_forwards(vec![forward], ctx);
        }
        while let Some((chunk, index)) = held.pop_front() {
            if !matches!(self.mode, Mode::Running) {
                self.held_records.push_back((chunk, index));
                continue;
            }
            if index < chunk.len() {
                self.process(chunk, index, ctx);
            }
        }
        Ok(())
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
        if let Mode::Failed { .. } = self.mode {
            error!(topic = %self.cx.topic, partition, held_records = self.held_records.iter().map(|(c, i)| c.len() - i).sum::<usize>(),
                held_objects = self.held_objects.len(), "partition failed: its held records are not committed and are read again on restart");
        }
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn catching_up_seals_only_after_a_full_object_or_the_interval_behind() {
        let policy = RollPolicy {
            max_records: 100,
            max_bytes: 1000,
            max_interval: Duration::from_secs(1),
            seal_when_caught_up: true,
        };
        let since = Instant::now();
        let behind = |records, bytes| Behind {
            since,
            records,
            bytes,
        };
        // A trickle: caught up again right after a few records.
        assert!(!behind(3, 300).warrants_seal(&policy, since + Duration::from_millis(5)));
        assert!(!behind(99, 999).warrants_seal(&policy, since + Duration::from_millis(999)));
        // The tail of a backlog: a full object's records or bytes, or the interval, behind.
        assert!(behind(100, 10).warrants_seal(&policy, since));
        assert!(behind(1, 1000).warrants_seal(&policy, since));
        assert!(behind(1, 1).warrants_seal(&policy, since + Duration::from_secs(1)));
    }
}
