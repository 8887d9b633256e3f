//! Messages that flow between the actors. Data messages are nouns, commands imperatives.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use actix::prelude::*;
use bytes::Bytes;

use crate::commit::UnitId;
use crate::error::ErrorCode;
use crate::metrics::PartitionMetrics;
use crate::record::RecordChunk;
use crate::store::StoreError;
use crate::supervisor::policy::{Destination, Disposition, Failure};

/// Consecutive records of one partition, from its consumer to its batcher.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct Records(pub RecordChunk);

/// The partition consumer reached the end of its partition (librdkafka's partition EOF): every
/// record written to the partition so far has been sent to the batcher.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "()")]
pub struct CaughtUp;

/// Set once the work it belongs to is abandoned: the partition's assignment ended (revoked after
/// a drain that timed out, or lost) and another member may own the partition. Shared by every
/// clone.
///
/// It also counts the partition's upload attempts in flight ([`UploadsInFlight`], shared by
/// every assignment of the partition in this process): cancelling stops new attempts, but one
/// already sent may still create its object. The partition's next assignment waits for
/// [`UploadsInFlight::settled`] before it lists the bucket, so that listing sees such a late
/// object and is not cut differently around it (B5: assigned back before the drain finished).
#[derive(Clone, Debug, Default)]
pub struct CancelFlag {
    cancelled: Arc<AtomicBool>,
    in_flight: UploadsInFlight,
}

impl CancelFlag {
    /// A flag whose attempts count in `in_flight` (the partition's).
    pub fn counting_in(in_flight: UploadsInFlight) -> Self {
        CancelFlag {
            cancelled: Arc::default(),
            in_flight,
        }
    }

    pub fn cancel(&self) {
        self.cancelled.store(true, Ordering::SeqCst);
    }

    pub fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::SeqCst)
    }

    /// An upload attempt begins: counted until the guard drops. `None` once cancelled. Counted
    /// before the check, so that whoever waits for [`UploadsInFlight::settled`] after the cancel
    /// either sees this attempt or the attempt sees the cancel.
    pub fn begin_attempt(&self) -> Option<AttemptGuard> {
        let guard = self.in_flight.begin();
        (!self.is_cancelled()).then_some(guard)
    }
}

/// Upload attempts in flight for one partition in this process.
#[derive(Clone, Debug, Default)]
pub struct UploadsInFlight(Arc<InFlightInner>);

#[derive(Debug, Default)]
struct InFlightInner {
    count: AtomicUsize,
    settled: tokio::sync::Notify,
}

impl UploadsInFlight {
    fn begin(&self) -> AttemptGuard {
        self.0.count.fetch_add(1, Ordering::SeqCst);
        AttemptGuard(self.clone())
    }

    pub fn count(&self) -> usize {
        self.0.count.load(Ordering::SeqCst)
    }

    /// Resolves when no attempt is in flight. Meant for the partition's next assignment, once
    /// every earlier one is cancelled (then no new attempt of theirs begins).
    pub async fn settled(&self) {
        loop {
            let notified = self.0.settled.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.count() == 0 {
                return;
            }
            notified.await;
        }
    }
}

/// One upload attempt in flight; see [`CancelFlag::begin_attempt`].
#[derive(Debug)]
pub struct AttemptGuard(UploadsInFlight);

impl Drop for AttemptGuard {
    fn drop(&mut self) {
        if self.0 .0.count.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0 .0.settled.notify_waiters();
        }
    }
}

/// One object ready to be written: deterministic key, encoded body and the offsets it covers.
/// Travels through the bounded upload queue (not an actix mailbox) to whichever uploader is free.
pub struct SealedObject {
    pub key: String,
    pub body: Bytes,
    pub topic: Arc<str>,
    pub partition: i32,
    /// Inclusive offset range held by the object.
    pub first_offset: i64,
    pub last_offset: i64,
    pub records: usize,
    /// The commit unit the object belongs to.
    pub unit: UnitId,
    /// Headers of the object's records, to forward them byte for byte if the bucket refuses it.
    pub headers: crate::encode::HeaderSidecar,
    /// What the object says about itself in the bucket (user metadata).
    pub metadata: crate::metadata::ObjectMetadata,
    /// The smallest record timestamp in the object (ms since the epoch), for freshness.
    pub oldest_timestamp: Option<i64>,
    /// The partition's metric handles: the uploader records the stored object there.
    pub metrics: Arc<PartitionMetrics>,
    /// Where the outcome goes (the partition's batcher).
    pub reply: Recipient<UploadOutcome>,
    /// Set when the partition's assignment ended: the object is not attempted (again), since
    /// nobody would commit it and a late object could overlap the partition's new owner's.
    pub cancel: CancelFlag,
    /// The body's bytes in the memory budget (sealed, then uploading), released with the object.
    pub memory: crate::memory::Charge,
    /// A streamed object (`crate::staging`): its first parts are in its staging upload, and
    /// `body` is the rest.
    pub staged: Option<crate::staging::StagedObject>,
}

impl SealedObject {
    /// The object's size in the bucket: its streamed parts and its body.
    pub fn size(&self) -> usize {
        self.body.len()
            + self
                .staged
                .as_ref()
                .map_or(0, |staged| staged.bytes as usize)
    }
}

impl std::fmt::Debug for SealedObject {
    /// Never prints the body.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealedObject")
            .field("key", &self.key)
            .field("bytes", &self.size())
            .field("records", &self.records)
            .finish()
    }
}

/// How an upload ended.
///
/// Sent with `do_send`: the number of outcomes in flight for a partition is bounded by the
/// number of its objects in the upload queue and in the uploaders, so this cannot grow a mailbox
/// without bound, and a blocking send here could deadlock against a batcher waiting for room in
/// the upload queue.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub enum UploadOutcome {
    /// The object is durable in the bucket.
    Stored {
        unit: UnitId,
        key: String,
        bytes: usize,
    },
    /// The bucket refused the object after the upload attempts were spent.
    Failed {
        object: Box<SealedObject>,
        error: StoreError,
    },
    /// A streamed object cannot be finished (a part refused, its staging upload aborted): its
    /// records are no longer in memory (`crate::staging`).
    Lost {
        object: Box<SealedObject>,
        error: StoreError,
    },
    /// The key is taken by an object with other records: nothing was written.
    Foreign {
        object: Box<SealedObject>,
        reason: String,
    },
}

/// Stop consuming, upload everything buffered, and answer once it is all stored (or never, if
/// the store stays down: the caller bounds the wait). The variant says why (a metric label).
#[derive(Message, Debug, Clone, Copy, PartialEq, Eq)]
#[rtype(result = "DrainReport")]
pub enum Drain {
    Shutdown,
    Rebalance,
}

/// The outcome of a [`Drain`].
#[derive(Debug, Clone, Copy)]
pub struct DrainReport {
    pub partition: i32,
    /// `last + 1` of the last stored object, if any object was stored since assignment.
    pub committable: Option<i64>,
}

/// Stop the actor now (after a drain, or when giving up on one).
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct Stop;

/// Stop reading (consumer: the partition queue is kept, so reading goes on where it stopped;
/// records already handed on are still uploaded).
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "()")]
pub struct Pause;

/// Seal the open object now: the memory budget is used up and uploads must free some (seal
/// reason `memory`). Sent by the supervisor with `do_send`, at most one queued per batcher (the
/// budget marks the partition as asked until the batcher handled it).
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "()")]
pub struct SealForMemory;

/// Go on after a [`Pause`] (consumer) or a failure (batcher: held objects are uploaded again,
/// the held record is reported again as resumed past, then the held records are processed).
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "()")]
pub struct Resume;

/// A batcher reports a record or object it cannot store; the supervisor answers with what to do
/// (the failure policy, [`crate::supervisor::policy::decide`]). When the answer routes records
/// to an error topic, the supervisor has handed them to the error-topic producer, which tells
/// `reply` once the broker acknowledged them.
#[derive(Message)]
#[rtype(result = "Disposition")]
pub struct ReportFailure {
    pub failure: Failure,
    /// The records concerned (one bad record, or a refused object's records rebuilt).
    pub records: RecordChunk,
    /// The commit unit that waits for them.
    pub unit: UnitId,
    pub reply: Recipient<Forwarded>,
}

/// Records for an error topic; from the supervisor to the error-topic producer.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Forward {
    pub destination: Destination,
    pub partition: i32,
    pub records: RecordChunk,
    pub failure: Failure,
    pub unit: UnitId,
    pub reply: Recipient<Forwarded>,
}

impl Forward {
    /// What the batcher is told about this forward.
    pub fn outcome(&self, result: Result<(), String>) -> Forwarded {
        Forwarded {
            unit: self.unit,
            destination: self.destination,
            first_offset: self.records.first_offset().unwrap_or(self.failure.offset),
            last_offset: self.records.last_offset().unwrap_or(self.failure.offset),
            records: self.records.len(),
            code: self.failure.code(),
            result,
        }
    }
}

/// The outcome of a [`Forward`], sent to the partition's batcher (`do_send`: one per failure
/// the batcher reported, which it paces).
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct Forwarded {
    pub unit: UnitId,
    pub destination: Destination,
    /// Offsets of the first and last record forwarded.
    pub first_offset: i64,
    pub last_offset: i64,
    pub records: usize,
    /// The failure's code (a metric label).
    pub code: ErrorCode,
    /// `Err`: why the topic did not take the records.
    pub result: Result<(), String>,
}

/// An operator's command for one partition (`kafka-oss-sink pause|resume`, or the admin API).
#[derive(Message, Debug, Clone, Copy, PartialEq, Eq)]
#[rtype(result = "Result<String, CommandError>")]
pub struct PartitionCommand {
    pub partition: i32,
    pub action: PartitionAction,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartitionAction {
    Pause,
    Resume,
}

/// Why a [`PartitionCommand`] was not carried out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    #[error("partition {partition} of topic `{topic}` is not assigned to this instance")]
    NotAssigned { topic: String, partition: i32 },
    #[error("partition {partition} is {state}, not RUNNING")]
    NotRunning {
        partition: i32,
        state: crate::error::State,
    },
    #[error(
        "partition {partition} cannot resume: an error topic refused a record; restart the \
         connector to go on from the committed offset"
    )]
    NotResumable { partition: i32 },
}

/// Drain every partition and stop; answers `true` if everything buffered was stored in time.
#[derive(Message, Debug)]
#[rtype(result = "bool")]
pub struct Shutdown;
