//! `PartitionConsumer`: reads one assigned partition's queue and feeds its batcher.
//!
//! - Receives: `Wake` (from librdkafka's non-empty callback, coalesced to at most one queued, and
//!   from a slow safety tick), `Drain`, `Pause` / `Resume` (stop and go on reading, keeping the
//!   queue; the supervisor also pauses the partition's fetching meanwhile), `Stop`.
//! - Sends: `Records` to its batcher with `send().await` inside `ctx.wait`, so while the batcher's
//!   small mailbox is full this actor does not read the queue. librdkafka then stops fetching the
//!   partition once its pre-fetch queue is full: a slow bucket slows consumption instead of
//!   growing memory, while the driver thread keeps the group membership alive.
//! - Owns: the partition queue. Dropping it (on `Drain` or stop) removes the non-empty
//!   callback; this happens before the revocation is acknowledged, so an old queue can never
//!   outlive a newer split of the same partition.
//! - Tells the batcher `CaughtUp` (after the records, in the same wait) when the queue is empty
//!   and the last record read is at the partition's high watermark, once per catch-up.
//! - Per poll it copies up to `CHUNK_RECORDS` records / `CHUNK_BYTES` bytes into one
//!   [`RecordChunk`]: one message and two allocations per chunk, none per record.
//! - Reads only with a grant of the memory budget ([`MemoryBudget::admit`]), at most that many
//!   bytes, and the chunk holds the grant until it is dropped. Without one it waits in the
//!   budget's queue and is woken (`Wake`) when memory frees up; its records wait in librdkafka's
//!   queue meanwhile, which stops fetching once that queue is full.
//! - Fetches only while it holds one of the budget's fetch slots ([`crate::memory::fetch`]):
//!   without one its partition is paused in librdkafka (and what its queue held is discarded,
//!   to be fetched again from its position); see `partition_consumer/slots.rs`.
//! - Compares each record's offset with the one expected (the committed offset at assignment,
//!   then the offset after the last record read). A jump past offsets older than the partition's
//!   log start means retention removed them before they were read (librdkafka then resets to the
//!   oldest retained record): logged with `KAFKA_OFFSET_OUT_OF_RANGE` and counted. Other gaps
//!   (compaction, transaction markers) are normal.
//! - Stops reading once its partition's assignment ended (revoked or lost): a later assignment
//!   of the same partition shares librdkafka's fetch queue, and its records are not this
//!   actor's.

mod slots;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use tracing::{debug, error, warn};

use crate::batcher::Batcher;
use crate::error::ErrorCode;
use crate::kafka::{FetchControl, PartitionQueue};
use crate::memory::{Charge, MemoryBudget, Waiter};
use crate::messages::{CaughtUp, Drain, DrainReport, Pause, Records, Resume, Stop};
use crate::metrics::PartitionMetrics;
use crate::record::RecordChunk;

const CHUNK_RECORDS: usize = 4096;
const CHUNK_BYTES: usize = 1 << 20;
/// Catches a missed non-empty notification; cheap when idle.
const SAFETY_TICK: Duration = Duration::from_millis(500);

/// Read the partition queue now.
#[derive(Message)]
#[rtype(result = "()")]
struct Wake;

pub struct PartitionConsumer {
    topic: Arc<str>,
    partition: i32,
    /// `None` once draining or stopped.
    queue: Option<PartitionQueue>,
    batcher: Addr<Batcher>,
    /// `true` while a `Wake` from the non-empty callback is queued, so at most one is.
    wake_queued: Arc<AtomicBool>,
    /// `true` while a chunk is being handed to the batcher.
    sending: bool,
    /// `true` between `Pause` and `Resume`: the queue is kept but not read.
    paused: bool,
    /// Records and bytes of the previous chunk.
    last_chunk: (usize, usize),
    /// The offset after the last record read (at first: the committed offset); `-1` if unknown.
    next_offset: i64,
    /// Records were read since the last `CaughtUp`.
    unannounced: bool,
    /// Bytes per chunk are capped at the smaller of this and `CHUNK_BYTES`.
    chunk_records: usize,
    metrics: Arc<PartitionMetrics>,
    memory: MemoryBudget,
    /// Its place in the budget's queues; set when the actor starts.
    waiter: Option<Arc<Waiter>>,
    /// Pauses and resumes the partition's fetching for fetch slots; `None`: no slots (tests).
    fetch: Option<Arc<dyn FetchControl>>,
    /// Holds a fetch slot.
    fetch_slot: bool,
    /// Paused in librdkafka for want of a fetch slot.
    fetch_paused: bool,
    /// The queue still holds records fetched before the pause: read (librdkafka drops them).
    discard_pending: bool,
    /// Bytes read since the fetch slot was taken, and when.
    slot_read: usize,
    slot_since: Instant,
}

impl PartitionConsumer {
    pub fn new(
        topic: Arc<str>,
        partition: i32,
        queue: PartitionQueue,
        committed: Option<i64>,
        batcher: Addr<Batcher>,
        max_records: usize,
        metrics: Arc<PartitionMetrics>,
    ) -> Self {
        PartitionConsumer {
            topic,
            partition,
            queue: Some(queue),
            batcher,
            wake_queued: Arc::new(AtomicBool::new(false)),
            sending: false,
            paused: false,
            last_chunk: (0, 0),
            next_offset: committed.unwrap_or(-1),
            unannounced: false,
            chunk_records: max_records.clamp(1, CHUNK_RECORDS),
            metrics,
            memory: MemoryBudget::unlimited(),
            waiter: None,
            fetch: None,
            fetch_slot: false,
            fetch_paused: false,
            discard_pending: false,
            slot_read: 0,
            slot_since: Instant::now(),
        }
    }

    /// Reads within `memory` (grants and fetch slots); `fetch` pauses and resumes the
    /// partition's fetching for the slots (`None`: no slots).
    pub fn within(mut self, memory: MemoryBudget, fetch: Option<Arc<dyn FetchControl>>) -> Self {
        self.memory = memory;
        self.fetch = fetch;
        self
    }

    /// Copies what the queue holds now (up to the chunk limits and about `max_bytes`) into one
    /// chunk.
    fn poll_chunk(&mut self, max_bytes: usize) -> Polled {
        // Sized like the previous chunk: a busy partition's chunks are alike, and growing a
        // chunk by doubling copies it again and again.
        let (records, bytes) = self.last_chunk;
        let max_bytes = max_bytes.clamp(1, CHUNK_BYTES);
        let mut chunk = RecordChunk::with_capacity(records.max(64), bytes.min(max_bytes));
        let Some(queue) = &self.queue else {
            return Polled {
                chunk,
                more: false,
                caught_up: false,
            };
        };
        let chunk_records = self.chunk_records;
        let (topic, partition) = (&self.topic, self.partition);
        let mut last_offset = None;
        let mut emptied = false;
        let mut ended = false;
        // Read before the records: the fetch that delivered them updated it.
        let log_start = queue.low_watermark();
        let mut expected = self.next_offset;
        let mut jumps = Vec::new();
        // Checked between batches: one batch may take the chunk past `CHUNK_BYTES`.
        while chunk.len() < chunk_records && chunk.payload_bytes() < max_bytes {
            let outcome = queue.read(
                chunk_records - chunk.len(),
                |record| {
                    if expected >= 0
                        && record.offset != expected
                        && (record.offset < expected || expected < log_start)
                    {
                        jumps.push((expected, record.offset, log_start));
                    }
                    expected = record.offset + 1;
                    last_offset = Some(record.offset);
                    if record.has_headers() {
                        chunk.push_with_headers(
                            record.offset,
                            record.timestamp,
                            record.key,
                            record.payload,
                            record.headers(),
                        );
                    } else {
                        chunk.push(record.offset, record.timestamp, record.key, record.payload);
                    }
                },
                |code, offset| {
                    warn!(code = %ErrorCode::KafkaConsume, topic = %topic, partition, offset, error = %code, "error reading partition")
                },
            );
            if outcome.ended {
                ended = true;
            }
            if outcome.emptied {
                emptied = true;
                break;
            }
        }
        for (expected, found, log_start) in jumps {
            self.report_jump(expected, found, log_start);
        }
        if ended {
            debug!(topic = %self.topic, partition = self.partition, "assignment ended; the partition consumer reads no more");
            self.queue = None;
        }
        if !chunk.is_empty() {
            self.last_chunk = (chunk.len(), chunk.payload_bytes());
        }
        if let Some(offset) = last_offset {
            self.next_offset = offset + 1;
            self.unannounced = true;
        }
        // Caught up: the queue is empty and the last record read is the last one the broker
        // reported; announced once per catch-up.
        let caught_up = emptied
            && self.unannounced
            && self
                .queue
                .as_ref()
                .is_some_and(|queue| queue.caught_up(self.next_offset));
        if caught_up {
            self.unannounced = false;
        }
        Polled {
            chunk,
            more: !emptied,
            caught_up,
        }
    }
}

impl PartitionConsumer {
    /// A record's offset was not the one expected: either before it (the committed offset is
    /// past the partition's end: the topic was recreated, or the position was set by hand) or
    /// past offsets that retention already removed.
    fn report_jump(&self, expected: i64, found: i64, log_start: i64) {
        let (topic, partition) = (&self.topic, self.partition);
        if found < expected {
            warn!(
                code = %ErrorCode::KafkaOffsetOutOfRange, topic = %topic, partition, expected, offset = found,
                "the position {expected} is past the partition's end (was the topic recreated?); reading from the oldest record, offset {found}"
            );
            return;
        }
        let last_removed = found.min(log_start) - 1;
        let removed = last_removed - expected + 1;
        self.metrics
            .retention_removed
            .increment(removed.max(0) as u64);
        error!(
            code = %ErrorCode::KafkaOffsetOutOfRange, topic = %topic, partition,
            first_removed = expected, last_removed, removed, offset = found,
            "offsets {expected} to {last_removed} were removed by retention before they were read: they are in neither the bucket nor an error topic; reading goes on at the oldest retained record, offset {found}"
        );
    }
}

/// One poll of the partition queue.
struct Polled {
    chunk: RecordChunk,
    /// The chunk limit was reached before the queue was empty: poll again.
    more: bool,
    /// The partition is caught up after the chunk's records.
    caught_up: bool,
}

impl Actor for PartitionConsumer {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let weak = ctx.address().downgrade();
        let wake_queued = self.wake_queued.clone();
        let wake = {
            let (weak, wake_queued) = (weak.clone(), wake_queued.clone());
            move || {
                if !wake_queued.swap(true, Ordering::AcqRel) {
                    if let Some(addr) = weak.upgrade() {
                        addr.do_send(Wake);
                    }
                }
            }
        };
        // Called by the budget when memory frees up; coalesced like the non-empty callback.
        self.waiter = Some(self.memory.waiter(self.partition, wake));
        if let Some(queue) = &mut self.queue {
            // Runs on a librdkafka thread: keep it tiny. At most one Wake is ever queued, so
            // `do_send` cannot grow the mailbox.
            queue.set_nonempty_callback(move || {
                if !wake_queued.swap(true, Ordering::AcqRel) {
                    if let Some(addr) = weak.upgrade() {
                        addr.do_send(Wake);
                    }
                }
            });
        }
        ctx.run_interval(SAFETY_TICK, |_, ctx| ctx.notify(Wake));
        // Records may have arrived before the callback was installed.
        ctx.notify(Wake);
    }

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        self.queue = None;
        self.leave_memory_queue();
        self.leave_fetch_slot();
        debug!(topic = %self.topic, partition = self.partition, "partition consumer stopped");
    }
}

impl Handler<Wake> for PartitionConsumer {
    type Result = ();

    fn handle(&mut self, _: Wake, ctx: &mut Self::Context) {
        self.wake_queued.store(false, Ordering::Release);
        if self.sending || self.paused || self.queue.is_none() {
            return;
        }
        if !self.hold_fetch_slot(ctx) {
            // Queued for a fetch slot: woken when one is free.
            return;
        }
        let Some(grant) = self.grant() else {
            // Queued for memory: woken when it frees up.
            return;
        };
        let polled = self.poll_chunk(grant.bytes());
        self.slot_read += polled.chunk.payload_bytes();
        if !polled.more {
            self.maybe_yield_fetch_slot();
        }
        self.send(polled, grant, ctx);
    }
}

impl PartitionConsumer {
    /// Hands what a poll read to the batcher (holding `grant` for it), then polls again if the
    /// queue had more.
    fn send(&mut self, polled: Polled, grant: Charge, ctx: &mut Context<Self>) {
        let Polled {
            mut chunk,
            more,
            caught_up,
        } = polled;
        if chunk.is_empty() && !caught_up {
            return;
        }
        chunk.hold(grant);
        self.metrics.consumed_records.increment(chunk.len() as u64);
        self.metrics
            .consumed_bytes
            .increment(chunk.payload_bytes() as u64);
        self.sending = true;
        let batcher = self.batcher.clone();
        // `ctx.wait`: no other message (Drain included) is handled until the batcher took the
        // chunk, so a drain sees every record read so far.
        let send = async move {
            if !chunk.is_empty() {
                batcher.send(Records(chunk)).await?;
            }
            if caught_up {
                batcher.send(CaughtUp).await?;
            }
            Ok::<(), MailboxError>(())
        };
        ctx.wait(send.into_actor(self).map(move |result, actor, ctx| {
            actor.sending = false;
            if result.is_err() {
                warn!(topic = %actor.topic, partition = actor.partition, "batcher gone; partition consumer stops");
                ctx.stop();
            } else if more || actor.discard_pending {
                ctx.notify(Wake);
            }
        }));
    }
}

impl Handler<Drain> for PartitionConsumer {
    type Result = ResponseFuture<DrainReport>;

    fn handle(&mut self, drain: Drain, _ctx: &mut Self::Context) -> Self::Result {
        self.queue = None;
        self.leave_memory_queue();
        self.leave_fetch_slot();
        let batcher = self.batcher.clone();
        let partition = self.partition;
        Box::pin(async move {
            batcher.send(drain).await.unwrap_or(DrainReport {
                partition,
                committable: None,
            })
        })
    }
}

impl Handler<Pause> for PartitionConsumer {
    type Result = ();

    fn handle(&mut self, _: Pause, _ctx: &mut Self::Context) {
        self.paused = true;
        // A paused consumer reads nothing: its turn for memory and its fetch slot go to others.
        // (The supervisor paused its fetching.)
        self.leave_memory_queue();
        self.leave_fetch_slot();
        self.fetch_paused = true;
    }
}

impl Handler<Resume> for PartitionConsumer {
    type Result = ();

    fn handle(&mut self, _: Resume, ctx: &mut Self::Context) {
        self.paused = false;
        // The supervisor resumed its fetching: without a slot it is paused again.
        self.fetch_paused = false;
        ctx.notify(Wake);
    }
}

impl Handler<Stop> for PartitionConsumer {
    type Result = ();

    fn handle(&mut self, _: Stop, ctx: &mut Self::Context) {
        ctx.stop();
    }
}
