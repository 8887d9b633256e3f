//! The Kafka side: the group consumer, its rebalance callbacks, the driver thread that commits,
//! the partition queues, the offset store the batchers write to, and the Kafka-side resources.
//!
//! One `BaseConsumer` subscribes to the topic for the whole process. On assignment, the rebalance
//! callback reads the committed offsets, splits each assigned partition's queue off the consumer
//! queue *before* assigning it (so no fetch can deliver into the consumer queue), resumes it
//! (librdkafka keeps a pause across assignments), assigns it,
//! and hands the queues to the supervisor ([`KafkaEvent`]), which starts one partition consumer
//! actor per queue. Each assignment of a partition is an [`Assignment`]: its queue reads and
//! its batcher's offset stores stop, and its uploads are cancelled, when it is revoked or lost
//! (see `context.rs` for the order of a rebalance). The main queue keeps being polled by a
//! dedicated driver thread ([`Driver`]): it serves rebalance callbacks, errors and logs, keeps
//! the member alive even while every partition is paused by backpressure, and is the only place
//! offsets are committed.
//!
//! Offsets: `enable.auto.commit` and `enable.auto.offset.store` are off. A batcher *stores* an
//! offset through [`OffsetStore`] (in memory) only once every record below it is in the bucket;
//! the driver *commits* the stored offsets every second, synchronously before a revocation
//! completes, and once more at shutdown.
//!
//! | file | owns |
//! |---|---|
//! | `assignment.rs` | [`Assignment`]: one partition's assignment; its reads and offset stores stop when it ends |
//! | `client_config.rs` | the librdkafka properties of the consumer, producers and admin clients |
//! | `consumer.rs` | creating the group consumer, checking the topic, subscribing |
//! | `context.rs` | the consumer context: rebalance callbacks, statistics, logs; [`KafkaEvent`] |
//! | `driver.rs` | the thread that polls the main queue and commits stored offsets |
//! | `offsets.rs` | [`OffsetStore`] and [`FetchControl`]: what the actors may do to the consumer |
//! | `partition_queue.rs` | one partition's split-off queue, read in batches |
//! | `provision.rs` | the group's topics (create or check), the config topic record |
//! | `status_topic.rs` | state changes written to the status topic |

mod assignment;
mod client_config;
mod consumer;
mod context;
mod driver;
mod offsets;
mod partition_queue;
pub mod provision;
mod status_topic;
#[cfg(test)]
pub(crate) mod tests;

use rdkafka::error::KafkaError;

use crate::error::ErrorCode;

pub use assignment::Assignment;
pub use client_config::{consumer_base_config, consumer_config, producer_config};
pub use consumer::{create_consumer, create_consumer_within, subscribe, SinkConsumer};
pub use context::{AssignedPartition, KafkaEvent, SinkContext};
pub use driver::Driver;
pub use offsets::{AssignedOffsets, FetchControl, OffsetStore};
pub use partition_queue::PartitionQueue;
pub use provision::ResourceError;
pub use status_topic::{StatusChange, StatusTopic};

/// How often librdkafka reports statistics (lag, high watermarks, broker states).
pub const STATISTICS_INTERVAL_MS: &str = "1000";

/// librdkafka's default `max.poll.interval.ms`.
pub const DEFAULT_MAX_POLL_INTERVAL_MS: i64 = 300_000;

/// A revocation waits for the drain inside the rebalance callback, that is inside librdkafka's
/// poll: up to the drain timeout plus [`REVOCATION_GRACE`], then a synchronous commit. A member
/// that does not return to poll within `max.poll.interval.ms` leaves the group, and its
/// partitions move while it still drains them. So the drain timeout must stay this far below
/// `max.poll.interval.ms` (the config refuses more).
pub const MAX_POLL_INTERVAL_MARGIN_MS: i64 = 10_000;

/// How much longer than the drain timeout the rebalance callback waits for the supervisor's
/// answer (stopping the actors after a drain that timed out).
pub const REVOCATION_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// Why the connector cannot start on the Kafka side.
#[derive(Debug, thiserror::Error)]
pub enum KafkaSetupError {
    #[error("kafka client configuration rejected: {0}")]
    Client(#[source] KafkaError),
    #[error("cannot read metadata of topic `{topic}` from {servers}: {error}{reported}{hint}")]
    Metadata {
        topic: String,
        servers: String,
        error: Box<KafkaError>,
        /// The last error librdkafka reported while trying (`; the client reported: ...`), which
        /// says what a transport failure was: refused TLS certificate, connection refused, ...
        reported: String,
        /// What else the failure may mean, given the client's settings (or empty).
        hint: String,
    },
    #[error("topic `{topic}` does not exist on {servers}")]
    TopicMissing { topic: String, servers: String },
    #[error("cannot subscribe to topic `{topic}`: {error}")]
    Subscribe { topic: String, error: KafkaError },
}

impl KafkaSetupError {
    /// A failed metadata request. With SASL configured, it may be a refused authentication:
    /// some brokers (tansu) close the connection instead of answering the SASL handshake with
    /// an error, which librdkafka reports as a transport failure. Names the user, never the
    /// password. `reported`: the last error the client reported while trying, if any.
    pub fn metadata(
        source: &crate::settings::SourceSettings,
        error: KafkaError,
        reported: Option<String>,
    ) -> Self {
        let properties = &source.client_properties.0;
        let protocol = properties
            .get("security.protocol")
            .map(|p| p.to_ascii_uppercase())
            .unwrap_or_default();
        let hint =
            if protocol.starts_with("SASL") {
                format!(
                "; with SASL (`security.protocol` {protocol}, `sasl.mechanism` {}, user `{}`) a \
                 refused user or password can also end like this: check `sasl.username` and \
                 the password (KAFKA_SASL_PASSWORD, or the file `sasl.password` in \
                 `source.secrets_dir`)",
                properties.get("sasl.mechanism").map_or("GSSAPI", String::as_str),
                properties.get("sasl.username").map_or("", String::as_str),
            )
            } else {
                String::new()
            };
        KafkaSetupError::Metadata {
            topic: source.topic.clone(),
            servers: source.bootstrap_servers.clone(),
            error: Box::new(error),
            reported: reported
                .map(|reason| format!("; the client reported: {reason}"))
                .unwrap_or_default(),
            hint,
        }
    }

    pub fn code(&self) -> ErrorCode {
        match self {
            KafkaSetupError::Client(_) => ErrorCode::KafkaConfig,
            KafkaSetupError::Metadata { .. } => ErrorCode::KafkaUnavailable,
            KafkaSetupError::TopicMissing { .. } => ErrorCode::KafkaTopicMissing,
            KafkaSetupError::Subscribe { .. } => ErrorCode::KafkaUnavailable,
        }
    }
}
