//! `kafka-oss-sink send`: the product page's "Send Message" panel on the command line.
//!
//! Produces one record to the config's source topic (same brokers, same pass-through security
//! properties), waits for the broker's acknowledgement and prints where it landed.

use std::time::Duration;

use rdkafka::producer::{BaseRecord, Producer, ThreadedProducer};
use rdkafka::ClientContext;

use crate::config::ConnectorConfig;

/// Where the record landed.
pub struct Sent {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
}

#[derive(Default)]
struct Delivery(std::sync::Mutex<Option<Result<(i32, i64), String>>>);

impl ClientContext for Delivery {}

impl rdkafka::producer::ProducerContext for Delivery {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &rdkafka::message::DeliveryResult<'_>, _: ()) {
        use rdkafka::Message;
        let outcome = match result {
            Ok(message) => Ok((message.partition(), message.offset())),
            Err((error, _)) => Err(error.to_string()),
        };
        *self.0.lock().expect("delivery lock") = Some(outcome);
    }
}

/// Produces one record and waits (up to `timeout`) for its acknowledgement.
pub fn send(
    config: &ConnectorConfig,
    partition: Option<i32>,
    key: Option<&str>,
    value: &str,
    timeout: Duration,
) -> Result<Sent, String> {
    let mut client = actors::kafka::producer_config(&config.source_settings());
    client
        .set("acks", "all")
        .set("message.timeout.ms", timeout.as_millis().to_string());
    let producer: ThreadedProducer<Delivery> = client
        .create_with_context(Delivery::default())
        .map_err(|error| format!("kafka producer configuration rejected: {error}"))?;
    let topic = config.topic();
    let mut record: BaseRecord<'_, str, str, ()> = BaseRecord::to(topic).payload(value);
    if let Some(partition) = partition {
        record = record.partition(partition);
    }
    if let Some(key) = key {
        record = record.key(key);
    }
    producer
        .send(record)
        .map_err(|(error, _)| format!("cannot send to topic `{topic}`: {error}"))?;
    producer.flush(timeout).map_err(|error| {
        format!(
            "no acknowledgement from {} for topic `{topic}`: {error}",
            config.bootstrap_servers()
        )
    })?;
    let outcome = producer.context().0.lock().expect("delivery lock").take();
    match outcome {
        Some(Ok((partition, offset))) => Ok(Sent {
            topic: topic.to_owned(),
            partition,
            offset,
        }),
        Some(Err(error)) => Err(format!("topic `{topic}` refused the record: {error}")),
        None => Err(format!(
            "no delivery report for topic `{topic}` within {timeout:?}"
        )),
    }
}
