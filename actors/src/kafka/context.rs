//! The consumer's context: librdkafka's logs into `tracing`, statistics into the status board
//! and the metrics, and rebalances to the supervisor.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use actix::prelude::*;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{CommitMode, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::statistics::Statistics;
use rdkafka::{ClientContext, TopicPartitionList};
use tracing::{debug, error, info, warn};

use super::consumer::SinkConsumer;
use super::driver::commit_stored;
use super::partition_queue::PartitionQueue;
use crate::error::ErrorCode;
use crate::metrics;
use crate::status::StatusBoard;

/// Rebalance events, sent from librdkafka's rebalance callback (on the driver thread) to the
/// supervisor. Control messages, one per rebalance: sent with `do_send`.
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

/// The consumer's context: routes librdkafka's logs into `tracing` and rebalances to the supervisor.
pub struct SinkContext {
    topic: String,
    /// Set once, right after the consumer is created, so the assignment callback can split queues.
    consumer: OnceLock<Weak<SinkConsumer>>,
    /// Set once the supervisor runs, before subscribing.
    supervisor: OnceLock<Recipient<KafkaEvent>>,
    /// How long a revocation may wait for the partitions to drain.
    drain_timeout: Duration,
    /// Set when the consumer's stream can no longer be trusted: no commit happens afterwards.
    fenced: AtomicBool,
    /// Lag, committed offsets and broker reachability go here (and into the metrics).
    status: StatusBoard,
}

impl SinkContext {
    pub fn new(topic: &str, drain_timeout: Duration, status: StatusBoard) -> Self {
        SinkContext {
            topic: topic.to_owned(),
            consumer: OnceLock::new(),
            supervisor: OnceLock::new(),
            drain_timeout,
            fenced: AtomicBool::new(false),
            status,
        }
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Called once, right after the consumer is created.
    pub(super) fn set_consumer(&self, consumer: &Arc<SinkConsumer>) {
        let _ = self.consumer.set(Arc::downgrade(consumer));
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

    fn pre_rebalance(&self, consumer: &SinkConsumer, rebalance: &Rebalance<'_>) {
        let Rebalance::Revoke(list) = rebalance else {
            return;
        };
        let partitions: Vec<i32> = list
            .elements()
            .iter()
            .filter(|element| element.topic() == self.topic)
            .map(|element| element.partition())
            .collect();
        info!(topic = %self.topic, ?partitions, "partitions revoked, draining");
        if let Some(supervisor) = self.supervisor.get() {
            let (ack, acked) = crossbeam_channel::bounded(1);
            // A control message, one per rebalance: `do_send` (which ignores the mailbox
            // capacity) is fine here. The callback blocks until the partitions are drained so
            // their offsets are committed before another member can take them over. If the
            // supervisor is gone, the message and its `ack` are dropped and the wait ends at once.
            supervisor.do_send(KafkaEvent::Revoked { partitions, ack });
            if let Err(crossbeam_channel::RecvTimeoutError::Timeout) =
                acked.recv_timeout(self.drain_timeout + Duration::from_secs(5))
            {
                warn!(topic = %self.topic, "revocation drain did not finish in time; committing what is stored");
            }
        }
        commit_stored(consumer, CommitMode::Sync);
    }

    fn post_rebalance(&self, _consumer: &SinkConsumer, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(list) => {
                let Some(consumer) = self.consumer.get().and_then(Weak::upgrade) else {
                    return;
                };
                let mut queues = Vec::new();
                for element in list.elements() {
                    if element.topic() != self.topic {
                        continue;
                    }
                    match PartitionQueue::split(&consumer, &self.topic, element.partition()) {
                        Some(queue) => queues.push((element.partition(), queue)),
                        None => error!(
                            code = %ErrorCode::KafkaUnavailable,
                            topic = %self.topic,
                            partition = element.partition(),
                            "cannot split the partition queue; partition not consumed"
                        ),
                    }
                }
                info!(topic = %self.topic, partitions = ?queues.iter().map(|(p, _)| *p).collect::<Vec<_>>(), "partitions assigned");
                if let Some(supervisor) = self.supervisor.get() {
                    // Control message, one per rebalance (see above).
                    supervisor.do_send(KafkaEvent::Assigned(queues));
                }
            }
            Rebalance::Revoke(_) => {}
            Rebalance::Error(error) => {
                error!(code = %ErrorCode::KafkaRebalance, %error, "rebalance failed")
            }
        }
    }
}
