//! `Batcher`: turns one partition's records into objects and stores the offset up to which the
//! partition is in the bucket.
//!
//! - Receives: `Records` (mailbox capacity `MAILBOX`, so a blocked batcher blocks its consumer),
//!   `CaughtUp`, `UploadOutcome` from the uploaders, `Forwarded` from the error-topic producer,
//!   `SealForMemory` from the supervisor (seal now: the memory budget is used up), `Drain`,
//!   `Resume`, `Stop`.
//! - Sends: `SealedObject`s into the shared bounded upload queue (awaited inside `ctx.wait`: while
//!   the queue is full the batcher takes no more records), and `ReportFailure` to the supervisor
//!   for every record or object it cannot store (awaited: the supervisor answers with the
//!   failure policy's disposition, and the batcher goes on, or holds, accordingly).
//! - Owns: the open object's encoder and the partition's [`CommitTracker`]. When the contiguous
//!   prefix of units is done, it stores that offset through the Kafka side's [`OffsetStore`]
//!   (the driver thread commits stored offsets). Charges its open object and each sealed
//!   object to the memory budget (`batcher/memory.rs`).
//! - Seals an object by the rules in [`roll`]; skips what is already in the bucket by
//!   [`recovery`]; aborts the incomplete multipart uploads earlier owners left, and deletes their
//!   staging objects (`orphans`).
//! - Streams an open object larger than the part size to a staging upload, part by part, while
//!   it grows (`stream`, `crate::staging`): it cuts the next part only once the previous one is
//!   stored, taking no records meanwhile. A streamed object that cannot be finished comes back
//!   as `UploadOutcome::Lost` and stops the partition (its records are read again on restart).
//!
//! A record routed to an error topic stays in its unit until the broker acknowledged it, so the
//! commit never passes a record that is in neither the bucket nor an error topic. A held
//! partition (the policy said `Hold`) keeps the records from the failure on until `Resume`: held
//! objects are uploaded again, the held record is reported again as resumed past, then the held
//! records are processed.

mod failures;
mod listing;
mod memory;
pub(crate) mod orphans;
mod process;
pub mod recovery;
#[cfg(test)]
mod recovery_tests;
pub mod roll;
mod stream;
#[cfg(test)]
mod stream_tests;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use actix::prelude::*;
use tokio::sync::oneshot;
use tracing::{debug, error, warn};

use crate::buffer_pool::BufferPool;
use crate::commit::{CommitTracker, UnitId};
use crate::encode::{ObjectEncoder, RecordError};
use crate::error::ErrorCode;
use crate::kafka::OffsetStore;
use crate::key_template::{KeyParts, KeyTemplate};
use crate::memory::{Charge, Kind, MemoryBudget};
use crate::messages::{
    CancelFlag, CaughtUp, Drain, DrainReport, Records, ReportFailure, SealedObject, Stop,
    UploadOutcome, UploadsInFlight,
};
use crate::metadata::ObjectMetadata;
use crate::metrics::PartitionMetrics;
use crate::object_key::BodyFormat;
use crate::record::RecordChunk;
use crate::settings::{FormatSettings, RollPolicy};
use crate::staging::{StreamSettings, Streamer};
use crate::status::StatusBoard;
use crate::store::SharedStore;
use crate::supervisor::policy::Failure;
use listing::Skip;
use recovery::Recovery;
use roll::{Behind, SealReason};

/// Records messages buffered ahead of the batcher: enough to overlap polling and encoding,
/// small enough that backpressure reaches the consumer quickly.
const MAILBOX: usize = 2;

/// Everything the batcher needs besides its partition.
#[derive(Clone)]
pub struct BatcherContext {
    pub topic: Arc<str>,
    /// The connector's name, in every object's metadata.
    pub connector: Arc<str>,
    pub key_prefix: Arc<str>,
    /// Where objects land under `key_prefix` (`sink.key_template`).
    pub key_template: Arc<KeyTemplate>,
    pub policy: RollPolicy,
    /// Values larger than this are written as `null` with `overflowFlag` (and dead-lettered).
    pub max_value_bytes: Option<usize>,
    /// How objects are written (`[format]`).
    pub format: FormatSettings,
    /// Where committable offsets go (the group consumer).
    pub offsets: Arc<dyn OffsetStore>,
    pub upload_queue: async_channel::Sender<SealedObject>,
    /// Lists what is already in the bucket when the partition starts (recovery).
    pub store: SharedStore,
    /// Applies the failure policy.
    pub supervisor: Recipient<ReportFailure>,
    /// Object buffers, reused once their object is stored.
    pub buffers: BufferPool,
    /// Set when the partition's assignment ends (per partition: the supervisor gives each
    /// batcher its assignment's flag); travels with every sealed object to the uploaders.
    pub cancel: CancelFlag,
    /// The partition's upload attempts in flight in this process, earlier assignments'
    /// included: recovery lists the bucket once they ended.
    pub in_flight: UploadsInFlight,
    /// The process's memory budget: open objects and sealed ones are charged to it.
    pub memory: MemoryBudget,
    /// Open objects past the part size stream out part by part (`crate::staging`); `None`:
    /// objects are uploaded whole (Parquet, and tests that need no streaming).
    pub stream: Option<StreamSettings>,
}

/// The object being built and the commit unit it belongs to.
struct OpenObject {
    encoder: ObjectEncoder,
    unit: UnitId,
    /// Last offset handled in this unit (written, or sent to the dead-letter topic).
    last_seen: i64,
    /// Offsets of this unit that went to the dead-letter topic instead of the object.
    routed: Vec<i64>,
    /// The key parts of its records (a partitioned template only): a record with other parts
    /// seals it ([`SealReason::PartitionBoundary`]).
    parts: Option<KeyParts>,
    /// Its staging upload, once a part was cut (an object past the part size).
    streamer: Option<Streamer>,
}

/// Whether the partition goes on.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Mode {
    Running,
    /// Held by the failure policy until `Resume`. `bad_record`: the first held record could not
    /// be converted; on resume it is reported again, as resumed past.
    Held {
        bad_record: Option<RecordError>,
    },
}

/// A failure found while processing, reported once the records before it are handed on.
struct Found {
    failure: Failure,
    records: RecordChunk,
    unit: UnitId,
    /// Where processing goes on if the partition is not held.
    next: usize,
    /// The first record held if it is.
    held_from: usize,
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
    /// Dead-letter forwards not acknowledged yet.
    forwards: usize,
    /// Refused objects whose records are on their way to the abnormal-data topic, by unit.
    forwarding: HashMap<UnitId, SealedObject>,
    /// Answered once nothing is buffered or in flight.
    drain_waiters: Vec<oneshot::Sender<DrainReport>>,
    mode: Mode,
    /// Records not processed because the partition is held: (chunk, index of the first one).
    held_records: VecDeque<(RecordChunk, usize)>,
    /// Objects the bucket refused while the partition is held, uploaded again on resume.
    held_objects: Vec<SealedObject>,
    /// `None` until the first records arrive and the bucket was listed.
    recovery: Option<Recovery>,
    /// The object found in the bucket that the records being read are in: not written again.
    skip: Option<Skip>,
    /// Sealed objects waiting for their unit's dead-letter acknowledgements before upload: an
    /// object in the bucket must never cover a record that is in no topic (a restart would skip
    /// it as stored).
    deferred: HashMap<UnitId, SealedObject>,
    /// Units with a record the dead-letter topic refused: their objects are never uploaded.
    refused_units: HashSet<UnitId>,
    /// `None` while the partition is caught up.
    behind: Option<Behind>,
    /// A failure is being reported: processing waits for the answer.
    reporting: bool,
    /// Aborts what earlier owners left of their multipart uploads ([`orphans`]).
    orphans: orphans::OrphanSweep,
    /// The open object's buffer in the memory budget.
    open_memory: Charge,
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
            forwards: 0,
            forwarding: HashMap::new(),
            drain_waiters: Vec::new(),
            mode: Mode::Running,
            held_records: VecDeque::new(),
            held_objects: Vec::new(),
            recovery: None,
            skip: None,
            deferred: HashMap::new(),
            refused_units: HashSet::new(),
            behind: None,
            reporting: false,
            orphans: orphans::OrphanSweep::new(),
            open_memory: Charge::none(),
        }
    }

    fn open_object(&mut self, ctx: &mut Context<Self>) -> &mut OpenObject {
        if self.open.is_none() {
            // A pooled buffer if one is idle, else a small one that grows: most partitions never
            // fill an object.
            let encoder = ObjectEncoder::with_format(
                self.cx.format,
                &self.cx.topic,
                self.partition,
                self.cx.policy.max_bytes.min(64 * 1024),
                Some(&self.cx.buffers),
            );
            let unit = self.tracker.open();
            self.open = Some(OpenObject {
                encoder,
                unit,
                last_seen: -1,
                routed: Vec::new(),
                parts: None,
                streamer: None,
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

    /// Closes the open unit; returns its object for upload if it holds any record and nothing
    /// of its unit still waits for the dead-letter topic (else the object waits in `deferred`).
    fn seal(&mut self, reason: SealReason, ctx: &mut Context<Self>) -> Option<SealedObject> {
        let open = self.open.take()?;
        if let Some(timer) = self.interval_timer.take() {
            ctx.cancel_future(timer);
        }
        let OpenObject {
            encoder,
            unit,
            last_seen,
            routed,
            parts,
            streamer,
        } = open;
        let staged = streamer.and_then(Streamer::finish);
        let object = match encoder.fingerprints() {
            None => None,
            Some((first_record, last_record)) => {
                let (first, last, records, oldest_timestamp) = (
                    encoder.first_offset(),
                    encoder.last_offset(),
                    encoder.records(),
                    encoder.min_timestamp(),
                );
                let capacity = encoder.resident_bytes();
                let (body, headers) = encoder.finish_with_headers();
                // The buffer is the sealed object's now.
                self.open_memory.set(0);
                self.cx.memory.set_open(self.partition, 0);
                let memory = self.cx.memory.charge(Kind::Sealed, capacity);
                self.metrics.sealed(reason.label());
                self.in_flight_bytes += body.len();
                debug!(topic = %self.cx.topic, partition = self.partition, first, last, records, bytes = body.len(), ?reason, "object sealed");
                // Dead-letter records of the unit not acknowledged yet (before the object's own).
                let awaiting_dead_letter = self.tracker.outstanding(unit) > 0;
                self.tracker.expect(unit);
                self.pending += 1;
                let body_format = BodyFormat::of(&self.cx.format);
                let metadata = ObjectMetadata {
                    topic: self.cx.topic.to_string(),
                    partition: self.partition,
                    first_offset: first,
                    last_offset: last,
                    records,
                    first_record,
                    last_record,
                    connector: self.cx.connector.to_string(),
                    generation: self.cx.offsets.generation(),
                    routed: routed
                        .into_iter()
                        .filter(|offset| (first..=last).contains(offset))
                        .collect(),
                    body_format: body_format.label().to_owned(),
                };
                let object = SealedObject {
                    key: self.cx.key_template.render(
                        &self.cx.key_prefix,
                        &self.cx.topic,
                        self.partition,
                        first,
                        last,
                        parts.as_ref(),
                    ),
                    body,
                    topic: self.cx.topic.clone(),
                    partition: self.partition,
                    first_offset: first,
                    last_offset: last,
                    records,
                    unit,
                    headers,
                    metadata,
                    oldest_timestamp,
                    metrics: self.metrics.clone(),
                    reply: ctx.address().recipient(),
                    cancel: self.cx.cancel.clone(),
                    memory,
                    staged,
                };
                if self.refused_units.contains(&unit) {
                    self.drop_object(object, "a record it covers is in no topic");
                    None
                } else if awaiting_dead_letter {
                    self.deferred.insert(unit, object);
                    None
                } else {
                    Some(object)
                }
            }
        };
        let advanced = if last_seen >= 0 {
            self.tracker.seal(unit, last_seen)
        } else {
            // Opened for a record that did not go in (the partition was held on it).
            self.tracker.discard(unit)
        };
        self.store_offset(advanced);
        object
    }

    /// Gives up an object that must not be uploaded; its unit never completes, so nothing at or
    /// after it is committed and a restart reads its records again.
    fn drop_object(&mut self, object: SealedObject, why: &str) {
        self.pending -= 1;
        self.in_flight_bytes = self.in_flight_bytes.saturating_sub(object.body.len());
        warn!(topic = %self.cx.topic, partition = self.partition, key = %object.key,
            "object not uploaded ({why}); its records are read again after a restart");
    }

    /// Stores the offset the done prefix reached, if it moved.
    fn store_offset(&self, advanced: Option<i64>) {
        let Some(next_offset) = advanced else {
            return;
        };
        debug!(topic = %self.cx.topic, partition = self.partition, next_offset, "committable offset advanced");
        if let Err(error) = self
            .cx
            .offsets
            .store(&self.cx.topic, self.partition, next_offset)
        {
            warn!(code = %ErrorCode::KafkaCommit, topic = %self.cx.topic, partition = self.partition, next_offset, %error, "cannot store offset");
        }
    }

    /// Hands sealed objects to the upload queue; the batcher handles nothing else until they are in.
    fn enqueue(&mut self, objects: Vec<SealedObject>, ctx: &mut Context<Self>) {
        if objects.is_empty() {
            return;
        }
        let queue = self.cx.upload_queue.clone();
        ctx.wait(
            send_all(queue, objects)
                .into_actor(self)
                .map(|delivered, actor, ctx| {
                    if !delivered {
                        actor.upload_queue_closed(ctx);
                    }
                }),
        );
    }

    fn upload_queue_closed(&mut self, ctx: &mut Context<Self>) {
        warn!(topic = %self.cx.topic, partition = self.partition, "upload queue closed; batcher stops");
        ctx.stop();
    }

    fn answer_drain_waiters(&mut self) {
        if self.drain_waiters.is_empty()
            || self.open.is_some()
            || self.pending > 0
            || self.forwards > 0
        {
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

    fn held_record_count(&self) -> usize {
        self.held_records
            .iter()
            .map(|(chunk, index)| chunk.len() - index)
            .sum()
    }
}

/// Sends objects into the upload queue in order; `false` if it closed.
async fn send_all(queue: async_channel::Sender<SealedObject>, objects: Vec<SealedObject>) -> bool {
    for object in objects {
        if queue.send(object).await.is_err() {
            return false;
        }
    }
    true
}

impl Actor for Batcher {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(MAILBOX);
        self.open_memory = self.cx.memory.charge(Kind::Open, 0);
    }

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        self.cx.memory.set_open(self.partition, 0);
    }
}

impl Handler<Records> for Batcher {
    type Result = ();

    fn handle(&mut self, Records(chunk): Records, ctx: &mut Self::Context) {
        let behind = self
            .behind
            .get_or_insert_with(|| Behind::new(Instant::now()));
        behind.records += chunk.len();
        behind.bytes += chunk.payload_bytes();
        if self.mode != Mode::Running || !self.held_records.is_empty() {
            // Arrived after the failure (the consumer is paused now), or behind held records
            // still being processed after a resume: kept in order.
            self.held_records.push_back((chunk, 0));
            self.process_held(ctx);
            return;
        }
        if self.recovery.is_none() {
            // The first records since assignment: look for objects stored but not committed.
            self.recover_then_process(chunk, ctx);
        } else {
            self.process(chunk, 0, ctx);
        }
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
            || self.mode != Mode::Running
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
                self.store_offset(advanced);
            }
            UploadOutcome::Failed { object, error } => self.upload_failed(*object, error, ctx),
            UploadOutcome::Foreign { object, reason } => self.upload_foreign(*object, reason, ctx),
            UploadOutcome::Lost { object, error } => self.upload_lost(*object, error, ctx),
        }
        self.report_buffered();
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
        if self.mode != Mode::Running {
            error!(topic = %self.cx.topic, partition, held_records = self.held_record_count(),
                held_objects = self.held_objects.len(), "partition held: its held records are not committed and are read again on restart");
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
