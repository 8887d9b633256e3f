//! The Kafka side: the group consumer, its rebalance callbacks, and the driver thread.
//!
//! One `BaseConsumer` subscribes to the topic for the whole process. On assignment, the rebalance
//! callback splits each assigned partition's queue off the consumer queue *inside the callback*,
//! before librdkafka can fetch into it (fetching starts only after the committed offsets were
//! read back from the coordinator), and hands the queues to the supervisor, which starts one
//! partition consumer actor per queue. The main queue keeps being polled by a dedicated driver
//! thread: it serves rebalance callbacks, errors and logs, keeps the member alive even while
//! every partition is paused by backpressure, and is the only place offsets are committed.
//!
//! Offsets: `enable.auto.commit` and `enable.auto.offset.store` are off. A batcher *stores* an
//! offset (`store_offset`, in memory) only once every record below it is in the bucket; the
//! driver *commits* the stored offsets every `COMMIT_INTERVAL`, synchronously before a
//! revocation completes, and once more at shutdown.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use actix::Recipient;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::statistics::Statistics;
use rdkafka::{ClientConfig, ClientContext, Message, TopicPartitionList};
use tracing::{debug, error, info, warn};

use crate::messages::KafkaEvent;
use crate::metrics;
use crate::settings::SourceSettings;
use crate::status::StatusBoard;

pub type SinkConsumer = BaseConsumer<SinkContext>;
pub use crate::partition_queue::PartitionQueue;

/// How often the driver commits stored offsets.
const COMMIT_INTERVAL: Duration = Duration::from_secs(1);
/// How often librdkafka reports statistics (lag, high watermarks, broker states).
pub const STATISTICS_INTERVAL_MS: &str = "1000";

/// Why the connector cannot start on the Kafka side.
#[derive(Debug, thiserror::Error)]
pub enum KafkaSetupError {
    #[error("kafka client configuration rejected: {0}")]
    Client(#[source] KafkaError),
    #[error("cannot read metadata of topic `{topic}` from {servers}: {error}")]
    Metadata {
        topic: String,
        servers: String,
        error: Box<KafkaError>,
    },
    #[error("topic `{topic}` does not exist on {servers}")]
    TopicMissing { topic: String, servers: String },
    #[error("cannot subscribe to topic `{topic}`: {error}")]
    Subscribe { topic: String, error: KafkaError },
}

impl KafkaSetupError {
    pub fn code(&self) -> &'static str {
        match self {
            KafkaSetupError::Client(_) => "KAFKA_CONFIG",
            KafkaSetupError::Metadata { .. } => "KAFKA_UNAVAILABLE",
            KafkaSetupError::TopicMissing { .. } => "KAFKA_TOPIC_MISSING",
            KafkaSetupError::Subscribe { .. } => "KAFKA_UNAVAILABLE",
        }
    }
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
                "KAFKA_UNAVAILABLE",
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

impl ClientContext for SinkContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        match level {
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error => {
                error!(target: "librdkafka", code = "KAFKA_CLIENT", facility = fac, "{log_message}")
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
        warn!(code = "KAFKA_UNAVAILABLE", %error, "kafka client error: {reason}");
        self.status
            .set_broker(Err(("KAFKA_UNAVAILABLE", format!("{error}: {reason}"))));
    }

    fn stats(&self, statistics: Statistics) {
        self.record_statistics(&statistics);
    }
}

impl ConsumerContext for SinkContext {
    fn commit_callback(&self, result: KafkaResult<()>, offsets: &TopicPartitionList) {
        if result.is_err() {
            return;
        }
        for element in offsets.elements_for_topic(&self.topic) {
            if let rdkafka::Offset::Offset(offset) = element.offset() {
                self.status.set_committed(element.partition(), offset);
            }
        }
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
                            code = "KAFKA_UNAVAILABLE",
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
            Rebalance::Error(error) => error!(code = "KAFKA_REBALANCE", %error, "rebalance failed"),
        }
    }
}

/// Bootstrap servers and the pass-through properties: the base of every consumer.
pub fn consumer_base_config(source: &SourceSettings) -> ClientConfig {
    let mut config = ClientConfig::new();
    // Pass-through properties first, so the settings the connector owns win. The config module
    // already rejects the reserved keys.
    for (key, value) in &source.client_properties.0 {
        config.set(key, value);
    }
    config.set("bootstrap.servers", &source.bootstrap_servers);
    config
}

/// Consumer-only librdkafka properties that a producer or admin client would warn about.
fn is_consumer_only(property: &str) -> bool {
    property.starts_with("fetch.")
        || property.starts_with("session.")
        || property.starts_with("heartbeat.")
        || matches!(
            property,
            "max.poll.interval.ms"
                | "partition.assignment.strategy"
                | "isolation.level"
                | "auto.commit.interval.ms"
                | "group.instance.id"
                | "group.protocol"
                | "queued.min.messages"
                | "queued.max.messages.kbytes"
                | "max.partition.fetch.bytes"
                | "check.crcs"
        )
}

/// Bootstrap servers and the pass-through properties that apply to producers and admin
/// clients (security settings, mostly).
pub fn producer_config(source: &SourceSettings) -> ClientConfig {
    let mut config = ClientConfig::new();
    for (key, value) in &source.client_properties.0 {
        if !is_consumer_only(key) {
            config.set(key, value);
        }
    }
    config.set("bootstrap.servers", &source.bootstrap_servers);
    config
}

/// Creates the group consumer (not yet subscribed) and checks that the topic exists.
pub fn create_consumer(
    source: &SourceSettings,
    drain_timeout: Duration,
    status: StatusBoard,
) -> Result<Arc<SinkConsumer>, KafkaSetupError> {
    let mut config = consumer_base_config(source);
    config
        .set("group.id", &source.group_id)
        .set(
            "auto.offset.reset",
            source.start_offset.as_auto_offset_reset(),
        )
        // Offsets are stored only once the data is in the bucket, and committed by the driver.
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        // Must stay off: see `partition_queue`.
        .set("enable.partition.eof", "false")
        .set("statistics.interval.ms", STATISTICS_INTERVAL_MS);
    let context = SinkContext {
        topic: source.topic.clone(),
        consumer: OnceLock::new(),
        supervisor: OnceLock::new(),
        drain_timeout,
        fenced: AtomicBool::new(false),
        status: status.clone(),
    };
    let consumer: Arc<SinkConsumer> = Arc::new(
        config
            .create_with_context(context)
            .map_err(KafkaSetupError::Client)?,
    );
    let _ = consumer.context().consumer.set(Arc::downgrade(&consumer));

    let metadata = consumer
        .fetch_metadata(Some(&source.topic), Duration::from_secs(15))
        .map_err(|error| KafkaSetupError::Metadata {
            topic: source.topic.clone(),
            servers: source.bootstrap_servers.clone(),
            error: Box::new(error),
        })?;
    status.set_broker(Ok(()));
    let found = metadata.topics().iter().any(|topic| {
        topic.name() == source.topic && topic.error().is_none() && !topic.partitions().is_empty()
    });
    if !found {
        return Err(KafkaSetupError::TopicMissing {
            topic: source.topic.clone(),
            servers: source.bootstrap_servers.clone(),
        });
    }
    Ok(consumer)
}

/// Connects the consumer to the supervisor and subscribes.
pub fn subscribe(
    consumer: &SinkConsumer,
    supervisor: Recipient<KafkaEvent>,
) -> Result<(), KafkaSetupError> {
    let topic = consumer.context().topic.clone();
    let _ = consumer.context().supervisor.set(supervisor);
    consumer
        .subscribe(&[&topic])
        .map_err(|error| KafkaSetupError::Subscribe { topic, error })
}

/// Commits the stored offsets of the current assignment. Nothing stored is not an error.
fn commit_stored(consumer: &SinkConsumer, mode: CommitMode) {
    if consumer.context().fenced.load(Ordering::SeqCst) {
        return;
    }
    match consumer.commit_consumer_state(mode) {
        Ok(()) => {}
        Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
        Err(error) => {
            metrics::record_retry("KAFKA_COMMIT");
            warn!(code = "KAFKA_COMMIT", %error, "offset commit failed; will retry")
        }
    }
}

/// The thread that polls the consumer's main queue and commits.
pub struct Driver {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Driver {
    /// Starts polling. `on_fatal` is called (once) if the consumer cannot go on.
    pub fn spawn(
        consumer: Arc<SinkConsumer>,
        on_fatal: impl FnOnce(String) + Send + 'static,
    ) -> Driver {
        let stop = Arc::new(AtomicBool::new(false));
        let stop_flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("kafka-driver".into())
            .spawn(move || drive(consumer, stop_flag, on_fatal))
            .expect("spawning the kafka driver thread");
        Driver {
            stop,
            thread: Some(thread),
        }
    }

    /// Commits what is stored, leaves the group and joins the thread. Blocking.
    pub fn shutdown(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn drive(consumer: Arc<SinkConsumer>, stop: Arc<AtomicBool>, on_fatal: impl FnOnce(String)) {
    let mut on_fatal = Some(on_fatal);
    let mut last_commit = Instant::now();
    while !stop.load(Ordering::SeqCst) {
        match consumer.poll(Duration::from_millis(100)) {
            None => {}
            Some(Ok(message)) => {
                // Every assigned partition's queue is split off inside the assignment callback,
                // so no record should ever arrive here. If one does, records of that partition
                // may be missing from its actor's stream: never commit again, and stop.
                let reason = format!(
                    "record of topic `{}` partition {} offset {} arrived on the consumer queue instead of the partition queue",
                    message.topic(),
                    message.partition(),
                    message.offset()
                );
                consumer.context().fenced.store(true, Ordering::SeqCst);
                error!(
                    code = "KAFKA_QUEUE_LEAK",
                    topic = message.topic(),
                    partition = message.partition(),
                    offset = message.offset(),
                    "{reason}; stopping without further commits"
                );
                if let Some(on_fatal) = on_fatal.take() {
                    on_fatal(reason);
                }
                return;
            }
            Some(Err(KafkaError::MessageConsumptionFatal(code))) => {
                consumer.context().fenced.store(true, Ordering::SeqCst);
                let reason = format!("fatal consumer error: {code}");
                error!(code = "KAFKA_FATAL", "{reason}");
                if let Some(on_fatal) = on_fatal.take() {
                    on_fatal(reason);
                }
                return;
            }
            Some(Err(error)) => warn!(code = "KAFKA_UNAVAILABLE", %error, "consumer error"),
        }
        if last_commit.elapsed() >= COMMIT_INTERVAL {
            commit_stored(&consumer, CommitMode::Async);
            last_commit = Instant::now();
        }
    }
    // Shutdown: the supervisor has drained the partitions. Commit synchronously, then leave the
    // group so that a restarted or another member gets the partitions without waiting for the
    // session timeout.
    commit_stored(&consumer, CommitMode::Sync);
    consumer.unsubscribe();
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline
        && !consumer
            .assignment()
            .map(|list| list.count() == 0)
            .unwrap_or(true)
    {
        let _ = consumer.poll(Duration::from_millis(50));
    }
}

/// A consumer that never connects to a broker nor subscribes: the handle batchers need, for
/// benchmarks (`actors/benches/batcher.rs`) that drive a batcher without Kafka.
#[doc(hidden)]
pub fn detached_consumer(topic: &str) -> Result<Arc<SinkConsumer>, KafkaError> {
    let context = SinkContext {
        topic: topic.to_owned(),
        consumer: OnceLock::new(),
        supervisor: OnceLock::new(),
        drain_timeout: Duration::from_secs(1),
        fenced: AtomicBool::new(false),
        status: StatusBoard::new(topic),
    };
    let consumer: SinkConsumer = ClientConfig::new()
        .set("group.id", "detached")
        .set("log_level", "0")
        .create_with_context(context)?;
    Ok(Arc::new(consumer))
}
