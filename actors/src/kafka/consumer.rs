//! Creating the group consumer, checking its topic, subscribing.

use std::sync::Arc;
use std::time::Duration;

use actix::Recipient;
use rdkafka::consumer::{BaseConsumer, Consumer};
use tracing::{info, warn};

use super::client_config::consumer_config;
use super::context::{KafkaEvent, SinkContext};
use super::KafkaSetupError;
use crate::memory::prefetch;
use crate::settings::SourceSettings;
use crate::status::StatusBoard;

/// The process's one group consumer.
pub type SinkConsumer = BaseConsumer<SinkContext>;

/// Creates the group consumer (not yet subscribed) and checks that the topic exists.
pub fn create_consumer(
    source: &SourceSettings,
    drain_timeout: Duration,
    upload_attempt_timeout: Duration,
    status: StatusBoard,
) -> Result<Arc<SinkConsumer>, KafkaSetupError> {
    create_consumer_within(source, drain_timeout, upload_attempt_timeout, status, None)
}

/// [`create_consumer`] with librdkafka's pre-fetching sized to stay within `prefetch_share`
/// bytes ([`prefetch::size`]) for the topic's partition count, read first with a short-lived
/// client (the consumer's own properties cannot change once it exists).
pub fn create_consumer_within(
    source: &SourceSettings,
    drain_timeout: Duration,
    upload_attempt_timeout: Duration,
    status: StatusBoard,
    prefetch_share: Option<usize>,
) -> Result<Arc<SinkConsumer>, KafkaSetupError> {
    let mut config = consumer_config(source);
    let mut sized_for = 0;
    if let Some(share) = prefetch_share {
        let partitions = partition_count(source)?;
        sized_for = partitions;
        let sizing = prefetch::size(share, partitions, &source.client_properties.0);
        for (key, value) in &sizing.properties {
            config.set(*key, value);
        }
        for warning in &sizing.warnings {
            warn!("{warning}");
        }
        let set: Vec<String> = sizing
            .properties
            .iter()
            .map(|(key, value)| format!("{key}={value}"))
            .collect();
        info!(partitions, prefetch_share = share, bound = sizing.bound, properties = %set.join(" "),
            "librdkafka pre-fetching sized for the memory budget");
    }
    let context = SinkContext::new(
        &source.topic,
        source.start_offset,
        drain_timeout,
        upload_attempt_timeout,
        status.clone(),
    );
    let consumer: Arc<SinkConsumer> = Arc::new(
        config
            .create_with_context(context)
            .map_err(KafkaSetupError::Client)?,
    );
    consumer.context().set_consumer(&consumer);
    consumer
        .context()
        .sized_for_partitions
        .store(sized_for, std::sync::atomic::Ordering::Release);

    let metadata = consumer
        .fetch_metadata(Some(&source.topic), Duration::from_secs(15))
        .map_err(|error| KafkaSetupError::metadata(source, error))?;
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

/// The topic's partition count, from a short-lived client's metadata.
fn partition_count(source: &SourceSettings) -> Result<usize, KafkaSetupError> {
    let client: BaseConsumer = super::consumer_base_config(source)
        .create()
        .map_err(KafkaSetupError::Client)?;
    let metadata = client
        .fetch_metadata(Some(&source.topic), Duration::from_secs(15))
        .map_err(|error| KafkaSetupError::metadata(source, error))?;
    Ok(metadata
        .topics()
        .iter()
        .find(|topic| topic.name() == source.topic)
        .map_or(1, |topic| topic.partitions().len().max(1)))
}

/// Connects the consumer to the supervisor and subscribes.
pub fn subscribe(
    consumer: &SinkConsumer,
    supervisor: Recipient<KafkaEvent>,
) -> Result<(), KafkaSetupError> {
    let topic = consumer.context().topic().to_owned();
    consumer.context().set_supervisor(supervisor);
    consumer
        .subscribe(&[&topic])
        .map_err(|error| KafkaSetupError::Subscribe { topic, error })
}
