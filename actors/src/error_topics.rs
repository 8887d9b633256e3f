//! `ErrorTopicProducer`: writes failed records to the dead-letter and abnormal-data topics.
//!
//! - Dead-letter topic: records that cannot be converted into the product page's format (key or
//!   value not UTF-8) and records whose value is over `failure.max_value_bytes` (those are also
//!   written to the bucket with `"value": null, "overflowFlag": true`), as Kafka Connect's
//!   framework does with converter failures.
//! - Abnormal-data topic: records of an object the bucket refused after the upload attempts were
//!   spent (the connector's runtime errors), as the product page's connector does. They are
//!   rebuilt from the object's body (whose strings are the records' exact UTF-8) and the headers
//!   kept beside it ([`crate::encode::HeaderSidecar`]), so no second copy of every buffered record
//!   is kept in memory. Records already in the dead-letter topic are not repeated.
//!
//! - Receives: `Forward` from the supervisor (which applied the failure policy). Mailbox capacity
//!   `MAILBOX`, so a slow broker slows the supervisor's answers, and so the batchers that report
//!   failures.
//! - Sends: `Forwarded` to the partition's batcher once the broker acknowledged every record (or
//!   with the reason it did not).
//! - Enqueues into librdkafka inside `ctx.wait` (records keep their order); while librdkafka's
//!   queue is full it waits asynchronously (never sleeping the thread: it runs on an arbiter of its
//!   own, and no partition waits on it except through its answers) for up to `QUEUE_TIMEOUT`.
//!   Acknowledgements are awaited outside the wait, so many forwards are in flight at once.
//!
//! Every forwarded record keeps its original key, value, headers and timestamp, and carries Kafka
//! Connect's error headers (`__connect.errors.topic`, `.partition`, `.offset`, `.connector.name`,
//! `.exception.class.name`, `.exception.message`, ...) plus our code in
//! `kafka-oss-sink.error.code`. The caller awaits the broker's acknowledgement before it counts
//! the record as delivered: an offset is never committed past a record that is in neither the
//! bucket nor one of these topics.

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use tracing::debug;

use crate::kafka::{producer_config, KafkaSetupError};
use crate::messages::Forward;
use crate::record::{RecordChunk, RecordMeta};
use crate::settings::{ResourceSettings, SourceSettings};
use crate::supervisor::policy::{Destination, Failure};

/// Forwards queued ahead of the producer: a handful, so backpressure reaches the batchers soon.
const MAILBOX: usize = 16;
/// How long a produce may wait for room in librdkafka's queue before it is reported failed.
const QUEUE_TIMEOUT: Duration = Duration::from_secs(30);
/// How often a full queue is tried again.
const QUEUE_FULL_RETRY: Duration = Duration::from_millis(5);

/// The error-topic producer actor.
pub struct ErrorTopicProducer {
    producer: FutureProducer,
    connector_name: Arc<str>,
    dead_letter_topic: Arc<str>,
    abnormal_topic: Arc<str>,
}

impl ErrorTopicProducer {
    pub fn new(
        producer: FutureProducer,
        connector_name: &str,
        resources: &ResourceSettings,
    ) -> Self {
        ErrorTopicProducer {
            producer,
            connector_name: Arc::from(connector_name),
            dead_letter_topic: Arc::from(resources.dead_letter_topic.as_str()),
            abnormal_topic: Arc::from(resources.abnormal_topic.as_str()),
        }
    }

    fn topic(&self, destination: Destination) -> Arc<str> {
        match destination {
            Destination::DeadLetter => self.dead_letter_topic.clone(),
            Destination::AbnormalData => self.abnormal_topic.clone(),
        }
    }
}

impl Actor for ErrorTopicProducer {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(MAILBOX);
    }
}

impl Handler<Forward> for ErrorTopicProducer {
    type Result = ();

    fn handle(&mut self, forward: Forward, ctx: &mut Self::Context) {
        let producer = self.producer.clone();
        let target = self.topic(forward.destination);
        let connector_name = self.connector_name.clone();
        // Enqueue in order (the wait), then await the acknowledgements beside other forwards.
        ctx.wait(
            async move {
                let enqueued = enqueue_all(&producer, &target, &connector_name, &forward).await;
                (forward, target, enqueued)
            }
            .into_actor(self)
            .map(|(forward, target, enqueued), actor, ctx| {
                ctx.spawn(
                    async move {
                        let result = match enqueued {
                            Ok(deliveries) => acknowledged(&target, deliveries).await,
                            Err(error) => Err(error),
                        };
                        // Crash tests: the broker took the records, the batcher does not know.
                        fail::fail_point!("dead-letter-acknowledged");
                        debug!(
                            destination = forward.destination.as_str(),
                            partition = forward.partition,
                            records = forward.records.len(),
                            ok = result.is_ok(),
                            "forward done"
                        );
                        forward.reply.do_send(forward.outcome(result));
                    }
                    .into_actor(actor),
                );
            }),
        );
    }
}

/// Enqueues every record of the forward; the error names the topic.
async fn enqueue_all(
    producer: &FutureProducer,
    target: &str,
    connector_name: &str,
    forward: &Forward,
) -> Result<Vec<DeliveryFuture>, String> {
    let message = forward.failure.message();
    let mut deliveries = Vec::with_capacity(forward.records.len());
    for record in forward.records.records() {
        let built = build(
            target,
            connector_name,
            &forward.failure,
            &message,
            &forward.records,
            record,
        );
        let delivery = enqueue(producer, built)
            .await
            .map_err(|error| format!("cannot produce to topic `{target}`: {error}"))?;
        deliveries.push(delivery);
    }
    Ok(deliveries)
}

/// Resolves once the broker acknowledged every delivery, or with the first reason it did not.
async fn acknowledged(target: &str, deliveries: Vec<DeliveryFuture>) -> Result<(), String> {
    for delivery in deliveries {
        match delivery.await {
            Ok(Ok(_)) => {}
            Ok(Err((error, _))) => {
                return Err(format!("topic `{target}` did not take the record: {error}"))
            }
            Err(_) => return Err(format!("producer for topic `{target}` shut down")),
        }
    }
    Ok(())
}

/// One forwarded record: the original key, value, headers and timestamp, plus Kafka Connect's
/// error headers and our code.
fn build<'a>(
    target: &'a str,
    connector_name: &'a str,
    failure: &'a Failure,
    message: &'a str,
    chunk: &'a RecordChunk,
    record: &'a RecordMeta,
) -> FutureRecord<'a, [u8], [u8]> {
    let mut headers =
        OwnedHeaders::new_with_capacity((record.headers.end - record.headers.start) as usize + 10);
    for (name, value) in chunk.headers(record) {
        let name = String::from_utf8_lossy(name);
        headers = headers.insert(Header { key: &name, value });
    }
    let (partition_text, offset_text) = (failure.partition.to_string(), record.offset.to_string());
    for (key, value) in [
        ("__connect.errors.topic", &*failure.topic),
        ("__connect.errors.partition", partition_text.as_str()),
        ("__connect.errors.offset", offset_text.as_str()),
        ("__connect.errors.connector.name", connector_name),
        ("__connect.errors.task.id", "0"),
        ("__connect.errors.stage", failure.stage()),
        ("__connect.errors.class.name", "kafka_oss_sink"),
        (
            "__connect.errors.exception.class.name",
            failure.class_name(),
        ),
        ("__connect.errors.exception.message", message),
        ("kafka-oss-sink.error.code", failure.code().as_str()),
    ] {
        headers = headers.insert(Header {
            key,
            value: Some(value),
        });
    }
    let mut future_record: FutureRecord<'a, [u8], [u8]> = FutureRecord::to(target).headers(headers);
    if record.timestamp >= 0 {
        future_record = future_record.timestamp(record.timestamp);
    }
    if let Some(key) = chunk.bytes(&record.key) {
        future_record = future_record.key(key);
    }
    if let Some(value) = chunk.bytes(&record.value) {
        future_record = future_record.payload(value);
    }
    future_record
}

/// Enqueues a record, waiting (asynchronously) for room in the queue up to [`QUEUE_TIMEOUT`].
async fn enqueue(
    producer: &FutureProducer,
    mut record: FutureRecord<'_, [u8], [u8]>,
) -> Result<DeliveryFuture, KafkaError> {
    let deadline = tokio::time::Instant::now() + QUEUE_TIMEOUT;
    loop {
        match producer.send_result(record) {
            Ok(delivery) => return Ok(delivery),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back))
                if tokio::time::Instant::now() < deadline =>
            {
                record = back;
                tokio::time::sleep(QUEUE_FULL_RETRY).await;
            }
            Err((error, _)) => return Err(error),
        }
    }
}

/// The producer for the error, config and status topics: idempotent, acknowledged by all
/// in-sync replicas.
pub fn create_producer(source: &SourceSettings) -> Result<FutureProducer, KafkaSetupError> {
    producer_config(source)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "5")
        .set("message.timeout.ms", "120000")
        .create()
        .map_err(KafkaSetupError::Client)
}
