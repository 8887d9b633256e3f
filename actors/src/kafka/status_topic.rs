//! Connector and partition state changes, written to the status topic, keyed so that
//! compaction keeps the latest per connector and per partition.

use rdkafka::producer::{FutureProducer, FutureRecord};
use tracing::warn;

use crate::error::{ErrorCode, State};

/// Connector and partition state changes, written to the status topic.
#[derive(Clone)]
pub struct StatusTopic {
    producer: FutureProducer,
    topic: String,
    connector_name: String,
}

/// One state change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusChange<'a> {
    pub state: State,
    /// `None`: the connector as a whole.
    pub partition: Option<(&'a str, i32)>,
    pub code: Option<ErrorCode>,
    pub offset: Option<i64>,
    pub message: Option<&'a str>,
}

impl StatusTopic {
    pub fn new(producer: FutureProducer, topic: &str, connector_name: &str) -> Self {
        StatusTopic {
            producer,
            topic: topic.to_owned(),
            connector_name: connector_name.to_owned(),
        }
    }

    /// The record key: one per connector and one per partition, so compaction keeps the latest.
    pub fn key(&self, partition: Option<(&str, i32)>) -> String {
        match partition {
            None => format!("status-connector-{}", self.connector_name),
            Some((topic, partition)) => {
                format!(
                    "status-partition-{}-{topic}-{partition}",
                    self.connector_name
                )
            }
        }
    }

    /// Enqueues the change; a failure to write it is logged (the status topic is informational).
    pub fn report(&self, change: &StatusChange<'_>) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|elapsed| elapsed.as_millis() as i64)
            .unwrap_or(0);
        let value = serde_json::json!({
            "connector": self.connector_name,
            "state": change.state.as_str(),
            "topic": change.partition.map(|(topic, _)| topic),
            "partition": change.partition.map(|(_, partition)| partition),
            "code": change.code.map(ErrorCode::as_str),
            "offset": change.offset,
            "message": change.message,
            "timestamp": now,
        })
        .to_string();
        let key = self.key(change.partition);
        let record = FutureRecord::to(&self.topic).key(&key).payload(&value);
        if let Err((error, _)) = self.producer.send_result(record) {
            warn!(code = %ErrorCode::KafkaStatus, topic = %self.topic, %error, "cannot write a status change");
        }
    }
}
