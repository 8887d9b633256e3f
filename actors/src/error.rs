//! The connector's stable error codes and the partition states.
//!
//! Every coded log line, metric label, status-topic record, `/status` error and dead-letter
//! header uses an [`ErrorCode`]; README.md's error-code table lists exactly these (a test
//! compares the two both ways). Codes are part of the interface: alert rules and dashboards
//! match on them, so a code is never renamed, only added.

use std::fmt;

/// A stable, documented error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ErrorCode {
    /// The config file is invalid.
    ConfigInvalid,
    /// A credential variable is missing.
    ConfigCredentials,
    /// The bucket does not exist.
    UploadNoSuchBucket,
    /// The store refused the credentials or the request (HTTP 401/403).
    UploadAccessDenied,
    /// The store rejected a request for another reason (HTTP 4xx).
    UploadRejected,
    /// The store is unreachable, timed out, throttled or answered 5xx.
    UploadUnavailable,
    /// A conditional create found the key taken (HTTP 412, or OSS 409 `FileAlreadyExists`).
    UploadObjectExists,
    /// An object under the prefix holds other records than the topic's at its offsets.
    BucketForeignObject,
    /// A key or value is not valid UTF-8.
    RecordInvalidUtf8,
    /// A value is larger than `failure.max_value_bytes`.
    RecordOversize,
    /// The dead-letter or abnormal-data topic refused a record.
    KafkaErrorTopic,
    /// Kafka-side resources missing or wrong.
    KafkaResources,
    /// A state change could not be written to the status topic.
    KafkaStatus,
    /// librdkafka logged an error.
    KafkaClient,
    /// librdkafka rejected a property.
    KafkaConfig,
    /// The brokers cannot be reached.
    KafkaUnavailable,
    /// The source topic does not exist.
    KafkaTopicMissing,
    /// An error while reading a partition.
    KafkaConsume,
    /// An offset commit or store failed.
    KafkaCommit,
    /// A partition's position was out of range: retention removed records before they were
    /// read, or the position is past the partition's end.
    KafkaOffsetOutOfRange,
    /// A rebalance failed.
    KafkaRebalance,
    /// The consumer cannot go on.
    KafkaFatal,
    /// A record arrived outside its partition queue.
    KafkaQueueLeak,
    /// The admin server cannot listen on its address.
    AdminBind,
    /// Buffered records were not stored before the drain deadline.
    DrainTimeout,
}

impl ErrorCode {
    /// Every code, in README order.
    pub const ALL: &'static [ErrorCode] = &[
        ErrorCode::ConfigInvalid,
        ErrorCode::ConfigCredentials,
        ErrorCode::UploadNoSuchBucket,
        ErrorCode::UploadAccessDenied,
        ErrorCode::UploadRejected,
        ErrorCode::UploadUnavailable,
        ErrorCode::UploadObjectExists,
        ErrorCode::BucketForeignObject,
        ErrorCode::RecordInvalidUtf8,
        ErrorCode::RecordOversize,
        ErrorCode::KafkaErrorTopic,
        ErrorCode::KafkaResources,
        ErrorCode::KafkaStatus,
        ErrorCode::KafkaClient,
        ErrorCode::KafkaConfig,
        ErrorCode::KafkaUnavailable,
        ErrorCode::KafkaTopicMissing,
        ErrorCode::KafkaConsume,
        ErrorCode::KafkaCommit,
        ErrorCode::KafkaOffsetOutOfRange,
        ErrorCode::KafkaRebalance,
        ErrorCode::KafkaFatal,
        ErrorCode::KafkaQueueLeak,
        ErrorCode::AdminBind,
        ErrorCode::DrainTimeout,
    ];

    /// The code as it appears in logs, metrics, the status topic and README.md.
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorCode::ConfigInvalid => "CONFIG_INVALID",
            ErrorCode::ConfigCredentials => "CONFIG_CREDENTIALS",
            ErrorCode::UploadNoSuchBucket => "UPLOAD_NO_SUCH_BUCKET",
            ErrorCode::UploadAccessDenied => "UPLOAD_ACCESS_DENIED",
            ErrorCode::UploadRejected => "UPLOAD_REJECTED",
            ErrorCode::UploadUnavailable => "UPLOAD_UNAVAILABLE",
            ErrorCode::UploadObjectExists => "UPLOAD_OBJECT_EXISTS",
            ErrorCode::BucketForeignObject => "BUCKET_FOREIGN_OBJECT",
            ErrorCode::RecordInvalidUtf8 => "RECORD_INVALID_UTF8",
            ErrorCode::RecordOversize => "RECORD_OVERSIZE",
            ErrorCode::KafkaErrorTopic => "KAFKA_ERROR_TOPIC",
            ErrorCode::KafkaResources => "KAFKA_RESOURCES",
            ErrorCode::KafkaStatus => "KAFKA_STATUS",
            ErrorCode::KafkaClient => "KAFKA_CLIENT",
            ErrorCode::KafkaConfig => "KAFKA_CONFIG",
            ErrorCode::KafkaUnavailable => "KAFKA_UNAVAILABLE",
            ErrorCode::KafkaTopicMissing => "KAFKA_TOPIC_MISSING",
            ErrorCode::KafkaConsume => "KAFKA_CONSUME",
            ErrorCode::KafkaCommit => "KAFKA_COMMIT",
            ErrorCode::KafkaOffsetOutOfRange => "KAFKA_OFFSET_OUT_OF_RANGE",
            ErrorCode::KafkaRebalance => "KAFKA_REBALANCE",
            ErrorCode::KafkaFatal => "KAFKA_FATAL",
            ErrorCode::KafkaQueueLeak => "KAFKA_QUEUE_LEAK",
            ErrorCode::AdminBind => "ADMIN_BIND",
            ErrorCode::DrainTimeout => "DRAIN_TIMEOUT",
        }
    }

    /// The code named `text`, if it is one.
    pub fn parse(text: &str) -> Option<ErrorCode> {
        ErrorCode::ALL
            .iter()
            .copied()
            .find(|code| code.as_str() == text)
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The state of a partition, or of the connector as a whole, as written to the status topic,
/// `/status` and the `kafka_oss_sink_partition_state{state}` gauge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// Consuming and storing.
    Running,
    /// Paused by an operator.
    Paused,
    /// Stopped by the failure policy (or an error topic that refused a record).
    Failed,
    /// A paused or failed partition goes on (a transition, written to the status topic before
    /// `Running`).
    Resumed,
    /// The connector stopped (status topic only).
    Stopped,
}

impl State {
    /// Partition states that have a gauge series even when no partition is in them.
    pub const GAUGED: &'static [State] = &[State::Running, State::Failed];

    pub const fn as_str(self) -> &'static str {
        match self {
            State::Running => "RUNNING",
            State::Paused => "PAUSED",
            State::Failed => "FAILED",
            State::Resumed => "RESUMED",
            State::Stopped => "STOPPED",
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn codes_parse_back_and_are_distinct() {
        let names: BTreeSet<&str> = ErrorCode::ALL.iter().map(|code| code.as_str()).collect();
        assert_eq!(names.len(), ErrorCode::ALL.len());
        for code in ErrorCode::ALL {
            assert_eq!(ErrorCode::parse(code.as_str()), Some(*code));
        }
        assert_eq!(ErrorCode::parse("NOT_A_CODE"), None);
    }

    /// README.md's error-code table lists every code, and nothing else.
    #[test]
    fn readme_error_table_matches_the_enum_both_ways() {
        let readme = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md"),
        )
        .expect("README.md");
        let start = readme
            .find("| Code | Meaning | What to do |")
            .expect("README.md has the error-code table");
        let documented: BTreeSet<&str> = readme[start..]
            .lines()
            .skip(2)
            .take_while(|line| line.starts_with('|'))
            .filter_map(|line| line.split('`').nth(1))
            .collect();
        let defined: BTreeSet<&str> = ErrorCode::ALL.iter().map(|code| code.as_str()).collect();
        let undocumented: Vec<_> = defined.difference(&documented).collect();
        let unknown: Vec<_> = documented.difference(&defined).collect();
        assert!(
            undocumented.is_empty() && unknown.is_empty(),
            "codes missing from README.md: {undocumented:?}; README codes not in ErrorCode: {unknown:?}"
        );
    }
}
