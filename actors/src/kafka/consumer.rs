//! Creating the group consumer, checking its topic, subscribing.

use std::sync::Arc;
use std::time::Duration;

use actix::Recipient;
use rdkafka::consumer::{BaseConsumer, Consumer};

use super::client_config::consumer_config;
use super::context::{KafkaEvent, SinkContext};
use super::KafkaSetupError;
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
    let config = consumer_config(source);
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
    let topic = consumer.context().topic().to_owned();
    consumer.context().set_supervisor(supervisor);
    consumer
        .subscribe(&[&topic])
        .map_err(|error| KafkaSetupError::Subscribe { topic, error })
}
