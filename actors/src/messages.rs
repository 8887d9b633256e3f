//! Messages that flow between the actors. Data messages are nouns, commands imperatives.

use std::sync::Arc;

use actix::prelude::*;
use bytes::Bytes;

use crate::commit::UnitId;
use crate::kafka::PartitionQueue;
use crate::metrics::PartitionMetrics;
use crate::record::RecordChunk;
use crate::store::StoreError;

/// Consecutive records of one partition, from its consumer to its batcher.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct Records(pub RecordChunk);

/// The partition consumer reached the end of its partition (librdkafka's partition EOF): every
/// record written to the partition so far has been sent to the batcher.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "()")]
pub struct CaughtUp;

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
    /// The smallest record timestamp in the object (ms since the epoch), for freshness.
    pub oldest_timestamp: Option<i64>,
    /// The partition's metric handles: the uploader records the stored object there.
    pub metrics: Arc<PartitionMetrics>,
    /// Where the outcome goes (the partition's batcher).
    pub reply: Recipient<UploadOutcome>,
}

impl std::fmt::Debug for SealedObject {
    /// Never prints the body.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealedObject")
            .field("key", &self.key)
            .field("bytes", &self.body.len())
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

/// A partition cannot go on; sent by its batcher to the supervisor.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct PartitionFailed {
    pub partition: i32,
    pub offset: i64,
    /// Stable error code (README.md lists them).
    pub code: &'static str,
    pub error: String,
}

/// A failed partition's batcher goes on after `ResumeBatcher`; sent before it processes the held
/// records, so the supervisor sees RESUMED before any new failure.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "()")]
pub struct PartitionResumed {
    pub partition: i32,
}

/// Stop reading the partition queue (it is kept, so reading can resume where it stopped);
/// records already handed on are still uploaded.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct Halt;

/// Read the partition queue again after a [`Halt`].
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct Proceed;

/// Go on after a failure: retry held uploads, route the failed record per the `log` policy,
/// then process the held records. Answers why not, if the partition cannot go on in-process.
#[derive(Message, Debug)]
#[rtype(result = "Result<(), String>")]
pub struct ResumeBatcher;

/// An operator's command for one partition (`kafka-oss-sink pause|resume`, or the admin API).
#[derive(Message, Debug, Clone, Copy, PartialEq, Eq)]
#[rtype(result = "Result<String, String>")]
pub struct PartitionCommand {
    pub partition: i32,
    pub action: PartitionAction,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartitionAction {
    Pause,
    Resume,
}

/// Rebalance events, sent from librdkafka's rebalance callback (on the Kafka driver thread).
#[derive(Message)]
#[rtype(result = "()")]
pub enum KafkaEvent {
    /// Partitions were assigned; their queues are already split off the consumer queue.
    Assigned(Vec<(i32, PartitionQueue)>),
    /// Partitions are being revoked. The callback blocks until `ack` is sent (or a deadline),
    /// then commits what was stored and lets the rebalance proceed.
    Revoked {
        partitions: Vec<i32>,
        ack: crossbeam_channel::Sender<()>,
    },
}

/// Drain every partition and stop; answers `true` if everything buffered was stored in time.
#[derive(Message, Debug)]
#[rtype(result = "bool")]
pub struct Shutdown;
