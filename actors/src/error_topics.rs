//! The dead-letter and abnormal-data topics, and the producer that writes them.
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
//! Every forwarded record keeps its original key, value, headers and timestamp, and carries Kafka
//! Connect's error headers (`__connect.errors.topic`, `.partition`, `.offset`, `.connector.name`,
//! `.exception.class.name`, `.exception.message`, ...) plus our code in
//! `kafka-oss-sink.error.code`. The caller awaits the broker's acknowledgement before it counts
//! the record as delivered: an offset is never committed past a record that is in neither the
//! bucket nor one of these topics.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};

use crate::kafka::{producer_config, KafkaSetupError};
use crate::record::{RecordChunk, RecordMeta};
use crate::settings::{ResourceSettings, SourceSettings};

/// Which error topic a record goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Destination {
    DeadLetter,
    AbnormalData,
}

impl Destination {
    /// Label used in logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Destination::DeadLetter => "dead_letter",
            Destination::AbnormalData => "abnormal_data",
        }
    }
}

/// Why a record is forwarded, as carried in its error headers.
#[derive(Debug, Clone)]
pub struct Failure {
    /// Stable error code (README.md lists them).
    pub code: &'static str,
    /// A class-like name for tools that group by `__connect.errors.exception.class.name`.
    pub class_name: &'static str,
    /// Kafka Connect's stage: `VALUE_CONVERTER`, `KEY_CONVERTER` or `TASK_PUT`.
    pub stage: &'static str,
    pub message: String,
}

/// How long a produce may wait for room in librdkafka's queue before it is reported failed.
const QUEUE_TIMEOUT: Duration = Duration::from_secs(30);

/// Writes failed records to the dead-letter and abnormal-data topics. Cheap to clone.
#[derive(Clone)]
pub struct ErrorTopics {
    producer: FutureProducer,
    connector_name: Arc<str>,
    dead_letter_topic: Arc<str>,
    abnormal_topic: Arc<str>,
}

impl ErrorTopics {
    pub fn new(
        producer: FutureProducer,
        connector_name: &str,
        resources: &ResourceSettings,
    ) -> Self {
        ErrorTopics {
            producer,
            connector_name: Arc::from(connector_name),
            dead_letter_topic: Arc::from(resources.dead_letter_topic.as_str()),
            abnormal_topic: Arc::from(resources.abnormal_topic.as_str()),
        }
    }

    pub fn topic(&self, destination: Destination) -> &str {
        match destination {
            Destination::DeadLetter => &self.dead_letter_topic,
            Destination::AbnormalData => &self.abnormal_topic,
        }
    }

    /// Enqueues one record of `chunk` and returns a future that resolves once the broker
    /// acknowledged it (or with the reason it never will). The record's bytes are copied into
    /// librdkafka before this returns.
    pub fn forward(
        &self,
        destination: Destination,
        topic: &str,
        partition: i32,
        chunk: &RecordChunk,
        record: &RecordMeta,
        failure: &Failure,
    ) -> impl Future<Output = Result<(), String>> + 'static {
        let target = self.topic(destination).to_owned();
        let mut headers = OwnedHeaders::new_with_capacity(
            (record.headers.end - record.headers.start) as usize + 10,
        );
        for (name, value) in chunk.headers(record) {
            let name = String::from_utf8_lossy(name);
            headers = headers.insert(Header { key: &name, value });
        }
        let (partition_text, offset_text) = (partition.to_string(), record.offset.to_string());
        for (key, value) in [
            ("__connect.errors.topic", topic),
            ("__connect.errors.partition", partition_text.as_str()),
            ("__connect.errors.offset", offset_text.as_str()),
            ("__connect.errors.connector.name", &*self.connector_name),
            ("__connect.errors.task.id", "0"),
            ("__connect.errors.stage", failure.stage),
            ("__connect.errors.class.name", "kafka_oss_sink"),
            ("__connect.errors.exception.class.name", failure.class_name),
            (
                "__connect.errors.exception.message",
                failure.message.as_str(),
            ),
            ("kafka-oss-sink.error.code", failure.code),
        ] {
            headers = headers.insert(Header {
                key,
                value: Some(value),
            });
        }
        let mut future_record: FutureRecord<'_, [u8], [u8]> =
            FutureRecord::to(&target).headers(headers);
        if record.timestamp >= 0 {
            future_record = future_record.timestamp(record.timestamp);
        }
        if let Some(key) = chunk.bytes(&record.key) {
            future_record = future_record.key(key);
        }
        if let Some(value) = chunk.bytes(&record.value) {
            future_record = future_record.payload(value);
        }
        let enqueued = enqueue(&self.producer, future_record);
        async move {
            match enqueued {
                Err(error) => Err(format!("cannot produce to topic `{target}`: {error}")),
                Ok(delivery) => match delivery.await {
                    Ok(Ok(_)) => Ok(()),
                    Ok(Err((error, _))) => {
                        Err(format!("topic `{target}` did not take the record: {error}"))
                    }
                    Err(_) => Err(format!("producer for topic `{target}` shut down")),
                },
            }
        }
    }
}

/// Enqueues a record, waiting for room in the queue up to [`QUEUE_TIMEOUT`].
fn enqueue(
    producer: &FutureProducer,
    mut record: FutureRecord<'_, [u8], [u8]>,
) -> Result<rdkafka::producer::DeliveryFuture, KafkaError> {
    let deadline = Instant::now() + QUEUE_TIMEOUT;
    loop {
        match producer.send_result(record) {
            Ok(delivery) => return Ok(delivery),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back))
                if Instant::now() < deadline =>
            {
                record = back;
                std::thread::sleep(Duration::from_millis(5));
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
