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
        .map_err(|error| {
            let reported = status.broker_error().map(|info| info.message);
            KafkaSetupError::metadata(source, error, reported)
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

/// The topic's partition count, from a short-lived client's metadata.
fn partition_count(source: &SourceSettings) -> Result<usize, KafkaSetupError> {
    let client: BaseConsumer<SetupContext> = super::consumer_base_config(source)
        .create_with_context(SetupContext::default())
        .map_err(KafkaSetupError::Client)?;
    let metadata = client
        .fetch_metadata(Some(&source.topic), Duration::from_secs(15))
        .map_err(|error| {
            // The client's error events wait in its queue until served.
            let _ = client.poll(Duration::from_millis(100));
            let reported = client.context().last_error();
            KafkaSetupError::metadata(source, error, reported)
        })?;
    Ok(metadata
        .topics()
        .iter()
        .find(|topic| topic.name() == source.topic)
        .map_or(1, |topic| topic.partitions().len().max(1)))
}

/// The context of the short-lived start-up client: remembers the last error librdkafka
/// reported, because a failed request only says "transport failure" while the error callback
/// says why (a broker certificate that could not be verified, a refused connection).
#[derive(Default)]
struct SetupContext {
    last_error: std::sync::Mutex<Option<String>>,
}

impl SetupContext {
    fn last_error(&self) -> Option<String> {
        self.last_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl rdkafka::ClientContext for SetupContext {
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, message: &str) {
        use rdkafka::config::RDKafkaLogLevel as Level;
        match level {
            Level::Emerg | Level::Alert | Level::Critical | Level::Error | Level::Warning => {
                warn!(target: "librdkafka", facility = fac, "{message}")
            }
            _ => tracing::debug!(target: "librdkafka", facility = fac, "{message}"),
        }
    }

    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        warn!(code = %crate::error::ErrorCode::KafkaUnavailable, %error, "kafka client error: {reason}");
        *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(reason.to_owned());
    }
}

impl rdkafka::consumer::ConsumerContext for SetupContext {}

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
