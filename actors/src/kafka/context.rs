//! The consumer's context: librdkafka's logs into `tracing`, statistics into the status board
//! and the metrics, commit outcomes into the logs and metrics, and rebalances to the supervisor.
//!
//! Assignment (the rebalance callback, on the driver thread), in this order:
//! 1. the committed offsets of the new partitions are read from the coordinator; a partition
//!    with one starts there, one without starts where `source.start_offset` says. librdkafka's
//!    own `auto.offset.reset` is always `earliest`: it applies only when a position is out of
//!    range (retention removed the records), and then the oldest retained record is next, never
//!    the end of the partition;
//! 2. each partition's queue is split off the consumer queue, under a new [`Assignment`](super::Assignment);
//! 3. each partition is resumed: librdkafka keeps an application pause across assignments, so a
//!    partition paused or failed under an earlier assignment would otherwise never fetch again;
//! 4. the partitions are assigned (fetching starts), and the supervisor is told.
//!
//! Revocation: the supervisor drains the partitions (the callback waits, bounded by the drain
//! timeout), their assignments end (nothing of them is read or stored afterwards), the stored
//! offsets are committed synchronously, and the partitions are unassigned. A *lost* assignment
//! (session expired, fenced) is not drained and nothing of it is committed: its assignments end
//! at once (their batchers' offset stores are refused and their objects are not uploaded any
//! more) and the supervisor abandons the partitions.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use actix::prelude::*;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{CommitMode, Consumer, ConsumerContext, RebalanceProtocol};
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::statistics::Statistics;
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use tracing::{debug, error, info, warn};

use super::assignment::Assignments;
use super::consumer::SinkConsumer;
use super::driver::commit_stored;
use super::partition_queue::PartitionQueue;
use crate::error::ErrorCode;
use crate::metrics;
use crate::settings::StartOffset;
use crate::status::StatusBoard;

/// Rebalance events, sent from librdkafka's rebalance callback (on the driver thread) to the
/// supervisor. Control messages, one per rebalance: sent with `do_send`.
#[derive(Message)]
#[rtype(result = "()")]
pub enum KafkaEvent {
    /// Partitions were assigned; their queues are split off the consumer queue and fetching
    /// has started.
    Assigned(Vec<AssignedPartition>),
    /// Partitions are being revoked. The callback blocks until `ack` is sent (or a deadline),
    /// then ends their assignments, commits what was stored and lets the rebalance proceed.
    Revoked {
        partitions: Vec<i32>,
        ack: crossbeam_channel::Sender<()>,
    },
    /// Partitions were lost (the member's session expired, or it was fenced): another member may
    /// own them already. Their assignments have ended; nothing buffered for them may be uploaded
    /// or committed any more.
    Lost { partitions: Vec<i32> },
}

/// One newly assigned partition.
pub struct AssignedPartition {
    pub queue: PartitionQueue,
    /// The group's committed offset, where reading starts; `None` if the group has none (reading
    /// starts at `source.start_offset`) or it could not be read.
    pub committed: Option<i64>,
}

impl AssignedPartition {
    pub fn partition(&self) -> i32 {
        self.queue.assignment().partition()
    }
}

/// How long the assignment callback waits for the committed offsets.
const COMMITTED_TIMEOUT: Duration = Duration::from_secs(10);

/// The consumer's context: routes librdkafka's logs into `tracing` and rebalances to the supervisor.
pub struct SinkContext {
    topic: String,
    /// Where a partition without a committed offset starts.
    start_offset: StartOffset,
    /// Set once, right after the consumer is created, so the assignment callback can split queues.
    consumer: OnceLock<Weak<SinkConsumer>>,
    /// Set once the supervisor runs, before subscribing.
    supervisor: OnceLock<Recipient<KafkaEvent>>,
    /// How long a revocation may wait for the partitions to drain.
    drain_timeout: Duration,
    /// How long one upload attempt may take (`sink.request_timeout_ms`): after the drain, a
    /// revocation waits up to this long for the partitions' attempts already sent to end.
    upload_attempt_timeout: Duration,
    /// Set when the consumer's stream can no longer be trusted: no commit happens afterwards.
    fenced: AtomicBool,
    /// The current assignment of each partition.
    assignments: Assignments,
    /// Lag, committed offsets and broker reachability go here (and into the metrics).
    status: StatusBoard,
    /// Tests: how long the assignment callback waits once the partitions are assigned (and
    /// fetching), to show that no record can reach the consumer queue meanwhile.
    #[cfg(test)]
    pub(super) pause_after_assign: std::sync::Mutex<Duration>,
    /// Set when wiring: gets librdkafka's pre-fetch estimate from the statistics.
    memory: OnceLock<crate::memory::MemoryBudget>,
    /// The topic's partition count the pre-fetch queues were sized for (0: not sized).
    pub(super) sized_for_partitions: std::sync::atomic::AtomicUsize,
    /// The highest partition count past `sized_for_partitions` already warned about.
    grown_warned: std::sync::atomic::AtomicUsize,
}

impl SinkContext {
    pub fn new(
        topic: &str,
        start_offset: StartOffset,
        drain_timeout: Duration,
        upload_attempt_timeout: Duration,
        status: StatusBoard,
    ) -> Self {
        SinkContext {
            topic: topic.to_owned(),
            start_offset,
            consumer: OnceLock::new(),
            supervisor: OnceLock::new(),
            drain_timeout,
            upload_attempt_timeout,
            fenced: AtomicBool::new(false),
            assignments: Assignments::default(),
            #[cfg(test)]
            pause_after_assign: Default::default(),
            status,
            memory: OnceLock::new(),
            sized_for_partitions: Default::default(),
            grown_warned: Default::default(),
        }
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Called once, right after the consumer is created.
    pub(super) fn set_consumer(&self, consumer: &Arc<SinkConsumer>) {
        let _ = self.consumer.set(Arc::downgrade(consumer));
    }

    /// The budget whose prefetch estimate the statistics update. Called once, when wiring.
    /// Its fetch slots are limited to the partition count the queues were sized for: with more
    /// partitions later, as many fetch at once as the sizing allowed for.
    pub fn set_memory(&self, memory: crate::memory::MemoryBudget) {
        let partitions = self.sized_for_partitions.load(Ordering::Acquire);
        if partitions > 0 {
            memory.limit_fetch_slots(partitions);
        }
        let _ = self.memory.set(memory);
    }

    /// Called once, before subscribing.
    pub(super) fn set_supervisor(&self, supervisor: Recipient<KafkaEvent>) {
        let _ = self.supervisor.set(supervisor);
    }

    /// Whether the consumer's stream can no longer be trusted (no commit happens any more).
    pub(super) fn is_fenced(&self) -> bool {
        self.fenced.load(Ordering::SeqCst)
    }

    pub(super) fn fence(&self) {
        self.fenced.store(true, Ordering::SeqCst);
    }

    /// Lag per assigned partition and broker reachability, from one statistics report.
    fn record_statistics(&self, statistics: &Statistics) {
        let broker_up = statistics
            .brokers
            .values()
            .any(|broker| broker.nodeid >= 0 && broker.state == "UP");
        if broker_up {
            self.status.set_broker(Ok(()));
        } else {
            self.status.set_broker(Err((
                ErrorCode::KafkaUnavailable,
                "no connection to a broker is up".to_owned(),
            )));
        }
        let Some(topic) = statistics.topics.get(&self.topic) else {
            return;
        };
        if let Some(memory) = self.memory.get() {
            let queued: u64 = topic
                .partitions
                .values()
                .map(|stats| stats.fetchq_size)
                .sum();
            memory.set_prefetch_estimate(queued as usize);
        }
        for (partition, stats) in &topic.partitions {
            if *partition < 0 {
                continue; // librdkafka's internal "unassigned" partition
            }
            // read_committed consumers (the default) read up to the last stable offset.
            let end = if stats.ls_offset >= 0 {
                stats.ls_offset
            } else {
                stats.hi_offset
            };
            if end < 0 {
                continue;
            }
            if stats.committed_offset >= 0 {
                self.status
                    .set_committed(*partition, stats.committed_offset);
            }
            // Before the first commit of a partition (a new group), lag is counted from the
            // fetch position instead.
            let base = self
                .status
                .partition(*partition)
                .and_then(|status| status.committed_offset)
                .or((stats.next_offset >= 0).then_some(stats.next_offset));
            if let Some(base) = base {
                self.status
                    .set_lag(*partition, (end - base).max(0), stats.hi_offset);
            }
        }
    }
}

/// One partition of a commit request, with its outcome.
pub(super) struct CommitEntry<'a> {
    pub topic: &'a str,
    pub partition: i32,
    /// `-1` when the list carries no offset.
    pub offset: i64,
    pub error: Option<RDKafkaErrorCode>,
}

impl SinkContext {
    /// The outcome of one commit request, synchronous or not: the one place where commit failures
    /// are logged (`KAFKA_COMMIT`) and counted, and where successful commits reach the status
    /// board. A partition fails if its own entry carries an error, or the whole request failed.
    pub(super) fn commit_done(
        &self,
        mode: CommitMode,
        error: Option<RDKafkaErrorCode>,
        entries: &[CommitEntry<'_>],
    ) {
        // Nothing was stored since the last commit: not a failure.
        if error == Some(RDKafkaErrorCode::NoOffset) {
            return;
        }
        let mode = match mode {
            CommitMode::Sync => "sync",
            CommitMode::Async => "async",
        };
        let mut reported = false;
        for entry in entries.iter().filter(|entry| entry.topic == self.topic) {
            match entry.error.or(error) {
                Some(code) => {
                    reported = true;
                    metrics::record_retry(ErrorCode::KafkaCommit);
                    metrics::record_commit_failure(&self.topic, Some(entry.partition));
                    warn!(
                        code = %ErrorCode::KafkaCommit, topic = %self.topic, partition = entry.partition,
                        offset = entry.offset, error = %code, mode,
                        "offset commit failed; the stored offset is committed again at the next commit"
                    );
                }
                None if entry.offset >= 0 => {
                    self.status.set_committed(entry.partition, entry.offset);
                }
                None => {}
            }
        }
        if let (Some(code), false) = (error, reported) {
            metrics::record_retry(ErrorCode::KafkaCommit);
            metrics::record_commit_failure(&self.topic, None);
            warn!(code = %ErrorCode::KafkaCommit, topic = %self.topic, error = %code, mode,
                "offset commit failed; the stored offsets are committed again at the next commit");
        }
    }
}

impl ClientContext for SinkContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        match level {
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error => {
                error!(target: "librdkafka", code = %ErrorCode::KafkaClient, facility = fac, "{log_message}")
            }
            RDKafkaLogLevel::Warning => {
                warn!(target: "librdkafka", facility = fac, "{log_message}")
            }
            RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
                info!(target: "librdkafka", facility = fac, "{log_message}")
            }
            RDKafkaLogLevel::Debug => debug!(target: "librdkafka", facility = fac, "{log_message}"),
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        // librdkafka recovers from these by itself (broker down, reconnecting); they are logged,
        // never treated as record errors.
        warn!(code = %ErrorCode::KafkaUnavailable, %error, "kafka client error: {reason}");
        self.status.set_broker(Err((
            ErrorCode::KafkaUnavailable,
            format!("{error}: {reason}"),
        )));
    }

    fn stats(&self, statistics: Statistics) {
        self.record_statistics(&statistics);
    }
}

impl ConsumerContext for SinkContext {
    /// The outcome of an asynchronous commit (see `commit_stored`), served by the driver's poll.
    fn commit_callback(&self, result: KafkaResult<()>, offsets: &TopicPartitionList) {
        let error = match result {
            Err(KafkaError::ConsumerCommit(code)) => Some(code),
            Err(other) => other.rdkafka_error_code(),
            Ok(()) => None,
        };
        let elements = offsets.elements();
        let entries: Vec<CommitEntry<'_>> = elements
            .iter()
            .map(|element| CommitEntry {
                topic: element.topic(),
                partition: element.partition(),
                offset: match element.offset() {
                    rdkafka::Offset::Offset(offset) => offset,
                    _ => -1,
                },
                error: element.error().err().and_then(|e| e.rdkafka_error_code()),
            })
            .collect();
        self.commit_done(CommitMode::Async, error, &entries);
    }

    fn rebalance(
        &self,
        consumer: &SinkConsumer,
        err: RDKafkaRespErr,
        partitions: &mut TopicPartitionList,
    ) {
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                self.assign(consumer, partitions)
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                self.revoke(consumer, partitions)
            }
            other => {
                // librdkafka documents only the two above; give everything up, as if lost.
                let error = RDKafkaErrorCode::from(other);
                let ours = self.assignments.partitions();
                error!(code = %ErrorCode::KafkaRebalance, %error, partitions = ?ours, "rebalance failed; giving up the assignment");
                self.lose(&ours);
                self.unassign(consumer, partitions);
            }
        }
    }
}

impl SinkContext {
    /// This topic's partitions of a rebalance's list.
    fn ours(&self, list: &TopicPartitionList) -> Vec<i32> {
        list.elements_for_topic(&self.topic)
            .iter()
            .map(|element| element.partition())
            .collect()
    }

    fn cooperative(consumer: &SinkConsumer) -> bool {
        matches!(
            consumer.rebalance_protocol(),
            RebalanceProtocol::Cooperative
        )
    }

    /// Warns (once per growth) when an assigned partition is numbered past the count the
    /// pre-fetch queues were sized for: partitions were added to the topic while running.
    /// librdkafka's queue limits cannot change once the consumer exists; the fetch slots keep
    /// pre-fetching within its share (`MemoryBudget::limit_fetch_slots`).
    fn warn_if_grown(&self, partitions: &[i32]) {
        let sized_for = self.sized_for_partitions.load(Ordering::Acquire);
        let Some(&highest) = partitions.iter().max() else {
            return;
        };
        let at_least = usize::try_from(highest).unwrap_or(0) + 1;
        if sized_for == 0
            || at_least <= sized_for
            || self.grown_warned.fetch_max(at_least, Ordering::AcqRel) >= at_least
        {
            return;
        }
        let slots = self
            .memory
            .get()
            .map(|memory| memory.snapshot().fetch_slots);
        warn!(topic = %self.topic, sized_for, at_least, ?slots,
            "the topic has more partitions than librdkafka's pre-fetching was sized for at start: \
             at most `slots` of them fetch at once, so pre-fetching stays within its share of \
             memory.max_bytes; restart the connector to size it for the new partition count");
    }

    fn assign(&self, consumer: &SinkConsumer, list: &mut TopicPartitionList) {
        let partitions = self.ours(list);
        self.warn_if_grown(&partitions);
        let committed = self.committed_offsets(consumer, &partitions);
        for &partition in &partitions {
            let start = match &committed {
                Some(committed) => match committed.get(&partition) {
                    Some(&offset) => Offset::Offset(offset),
                    None => match self.start_offset {
                        StartOffset::Earliest => Offset::Beginning,
                        StartOffset::Latest => Offset::End,
                    },
                },
                // librdkafka reads the committed offset itself; without one, `earliest` applies.
                None => Offset::Invalid,
            };
            if let Err(error) = list.set_partition_offset(&self.topic, partition, start) {
                warn!(code = %ErrorCode::KafkaRebalance, topic = %self.topic, partition, %error, "cannot set the start offset");
            }
        }

        // Split before assigning: fetching starts with the assignment, and a record fetched
        // before the split would land on the consumer queue (KAFKA_QUEUE_LEAK).
        let mut assigned = Vec::new();
        if let Some(owner) = self.consumer.get().and_then(Weak::upgrade) {
            for &partition in &partitions {
                let assignment = self.assignments.begin(partition);
                match PartitionQueue::split(&owner, &self.topic, assignment) {
                    Some(queue) => assigned.push(AssignedPartition {
                        queue,
                        committed: committed
                            .as_ref()
                            .and_then(|committed| committed.get(&partition).copied()),
                    }),
                    None => error!(
                        code = %ErrorCode::KafkaUnavailable, topic = %self.topic, partition,
                        "cannot split the partition queue; partition not consumed"
                    ),
                }
            }
        }

        // An application pause outlives assignments in librdkafka: a partition paused (or held
        // FAILED) under an earlier assignment would show RUNNING and never fetch.
        let mut ours = TopicPartitionList::with_capacity(partitions.len());
        for &partition in &partitions {
            ours.add_partition(&self.topic, partition);
        }
        if let Err(error) = consumer.resume(&ours) {
            warn!(code = %ErrorCode::KafkaRebalance, topic = %self.topic, ?partitions, %error, "cannot resume the assigned partitions");
        }

        let result = if Self::cooperative(consumer) {
            consumer.incremental_assign(list)
        } else {
            consumer.assign(list)
        };
        if let Err(error) = result {
            error!(code = %ErrorCode::KafkaRebalance, topic = %self.topic, ?partitions, %error, "cannot assign the partitions");
            for &partition in &partitions {
                self.assignments.end(partition);
            }
            return;
        }
        #[cfg(test)]
        std::thread::sleep(*self.pause_after_assign.lock().unwrap());
        info!(topic = %self.topic, partitions = ?assigned.iter().map(AssignedPartition::partition).collect::<Vec<_>>(),
            starts = ?assigned.iter().map(|a| a.committed).collect::<Vec<_>>(), "partitions assigned");
        if let Some(supervisor) = self.supervisor.get() {
            // Control message, one per rebalance (see `revoke`).
            supervisor.do_send(KafkaEvent::Assigned(assigned));
        }
    }

    /// The group's committed offsets of `partitions` (those without one are absent); `None`
    /// if they could not be read.
    fn committed_offsets(
        &self,
        consumer: &SinkConsumer,
        partitions: &[i32],
    ) -> Option<HashMap<i32, i64>> {
        if partitions.is_empty() {
            return Some(HashMap::new());
        }
        let mut list = TopicPartitionList::with_capacity(partitions.len());
        for &partition in partitions {
            list.add_partition(&self.topic, partition);
        }
        let failed = |error: String| {
            warn!(code = %ErrorCode::KafkaUnavailable, topic = %self.topic, ?partitions, %error,
                "cannot read the committed offsets; librdkafka reads them itself, and a partition without one starts at the earliest offset");
            None
        };
        let committed = match consumer.committed_offsets(list, COMMITTED_TIMEOUT) {
            Ok(committed) => committed,
            Err(error) => return failed(error.to_string()),
        };
        let mut offsets = HashMap::new();
        for element in committed.elements_for_topic(&self.topic) {
            if let Err(error) = element.error() {
                return failed(error.to_string());
            }
            if let Offset::Offset(offset) = element.offset() {
                offsets.insert(element.partition(), offset);
            }
        }
        Some(offsets)
    }

    fn revoke(&self, consumer: &SinkConsumer, list: &mut TopicPartitionList) {
        let partitions = self.ours(list);
        if consumer.assignment_lost() {
            warn!(code = %ErrorCode::KafkaRebalance, topic = %self.topic, ?partitions,
                "partitions lost (the session expired or the member was fenced): their buffered records and uploads are abandoned and nothing of them is committed; their next owner reads them again");
            self.lose(&partitions);
        } else {
            info!(topic = %self.topic, ?partitions, "partitions revoked, draining");
            // Nothing to drain: no wait (at close the supervisor may have stopped already, and a
            // message to it would only time out).
            if let Some(supervisor) = self.supervisor.get().filter(|_| !partitions.is_empty()) {
                let (ack, acked) = crossbeam_channel::bounded(1);
                // A control message, one per rebalance: `do_send` (which ignores the mailbox
                // capacity) is fine here. The callback blocks until the partitions are drained
                // so their offsets are committed before another member can take them over. If
                // the supervisor is gone, the message and its `ack` are dropped and the wait
                // ends at once.
                supervisor.do_send(KafkaEvent::Revoked {
                    partitions: partitions.clone(),
                    ack,
                });
                if let Err(crossbeam_channel::RecvTimeoutError::Timeout) =
                    acked.recv_timeout(self.drain_timeout + super::REVOCATION_GRACE)
                {
                    warn!(topic = %self.topic, "revocation drain did not finish in time; committing what is stored");
                }
            }
            // From here on nothing of these assignments is read or stored, whatever their actors
            // still do; then what they stored is committed.
            for &partition in &partitions {
                self.assignments.end(partition);
            }
            self.wait_for_uploads_in_flight(&partitions);
            commit_stored(consumer, CommitMode::Sync);
        }
        self.unassign(consumer, list);
    }

    /// After a drain that timed out, an upload attempt already sent may still create its
    /// object. The partition's next owner (another member) must find it by listing, or it cuts
    /// its own object around the same records: so the partitions are handed over only once
    /// their attempts ended (each within `sink.request_timeout_ms`; no new one begins, the
    /// assignments ended). Not for lost partitions: they have a new owner already.
    fn wait_for_uploads_in_flight(&self, partitions: &[i32]) {
        let deadline = std::time::Instant::now() + self.upload_attempt_timeout;
        let in_flight = || -> usize {
            partitions
                .iter()
                .filter_map(|&partition| self.assignments.in_flight(partition))
                .map(|uploads| uploads.count())
                .sum()
        };
        let waiting = in_flight();
        if waiting == 0 {
            return;
        }
        info!(topic = %self.topic, ?partitions, uploads = waiting, "revoked partitions still have uploads in flight: handing them over once these end");
        while in_flight() > 0 {
            if std::time::Instant::now() >= deadline {
                warn!(topic = %self.topic, ?partitions, uploads = in_flight(), "uploads still in flight after sink.request_timeout_ms: handing the partitions over; a late object may duplicate records of their next owner (reconcile reports it)");
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Ends the assignments of lost partitions and tells the supervisor to abandon them.
    fn lose(&self, partitions: &[i32]) {
        for &partition in partitions {
            self.assignments.end(partition);
        }
        if let Some(supervisor) = self.supervisor.get() {
            supervisor.do_send(KafkaEvent::Lost {
                partitions: partitions.to_vec(),
            });
        }
    }

    fn unassign(&self, consumer: &SinkConsumer, list: &TopicPartitionList) {
        let result = if Self::cooperative(consumer) {
            consumer.incremental_unassign(list)
        } else {
            consumer.unassign()
        };
        if let Err(error) = result {
            error!(code = %ErrorCode::KafkaRebalance, topic = %self.topic, %error, "cannot unassign the revoked partitions");
        }
    }
}
