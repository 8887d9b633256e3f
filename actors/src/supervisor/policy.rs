//! The failure policy as data and one pure function, [`decide`]: what happens to a record or an
//! object that cannot be stored. Unit-tested for every combination.
//!
//! | failure | `log` | `fail` | `fail`, resumed by an operator |
//! |---|---|---|---|
//! | key or value not UTF-8 | dead-letter topic, go on | hold the partition at the record | dead-letter topic, go on |
//! | value over `max_value_bytes` (written with `overflowFlag`) | dead-letter topic | dead-letter topic | — |
//! | object refused by the bucket after the attempts | abnormal-data topic, go on | hold the object | upload it again |
//! | the dead-letter topic refused a record | hold, not resumable in-process | same | — |
//! | the abnormal-data topic refused records | hold the object | same | upload it again |
//! | an object in the bucket holds other records at these offsets | hold, not resumable in-process | same | — |
//! | a streamed object cannot be finished (its records are no longer in memory) | hold, not resumable in-process | same | — |
//!
//! A held partition commits nothing at or after the failure; "not resumable in-process" means
//! the partition goes on only after a restart, from its committed offset.

use crate::encode::{Field, RecordError};
use crate::error::ErrorCode;
use crate::settings::FailurePolicy;
use crate::store::StoreError;

/// Which error topic records go to.
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

/// What went wrong.
#[derive(Debug, Clone)]
pub enum FailureKind {
    /// The key or value is not valid UTF-8.
    Unconvertible(RecordError),
    /// The value is over `failure.max_value_bytes`; the record is in the bucket with
    /// `"value": null, "overflowFlag": true`.
    Oversize { value_size: usize, limit: usize },
    /// The bucket refused an object after the upload attempts were spent.
    ObjectRefused { key: String, error: StoreError },
    /// An error topic did not take records.
    ErrorTopicRefused {
        destination: Destination,
        reason: String,
    },
    /// An object under the prefix covers these offsets but holds other records (or is not the
    /// connector's): neither skipping the records nor replacing the object is safe.
    ForeignObject { key: String, reason: String },
    /// A streamed object (`crate::staging`) cannot be finished: a part was refused, or its
    /// staging upload was aborted. Its records are no longer in memory.
    StreamLost { key: String, error: StoreError },
}

/// A failure of one record (or of one object: `offset` is then its first offset).
#[derive(Debug, Clone)]
pub struct Failure {
    pub topic: std::sync::Arc<str>,
    pub partition: i32,
    pub offset: i64,
    pub kind: FailureKind,
    /// An operator resumed the partition past this failure.
    pub resumed: bool,
}

impl Failure {
    pub fn code(&self) -> ErrorCode {
        match &self.kind {
            FailureKind::Unconvertible(error) => error.code(),
            FailureKind::Oversize { .. } => ErrorCode::RecordOversize,
            FailureKind::ObjectRefused { error, .. } => error.code(),
            FailureKind::ErrorTopicRefused { .. } => ErrorCode::KafkaErrorTopic,
            FailureKind::ForeignObject { .. } => ErrorCode::BucketForeignObject,
            FailureKind::StreamLost { error, .. } => error.code(),
        }
    }

    /// What went wrong, in words (logs, status, the forwarded records' error headers).
    pub fn message(&self) -> String {
        match &self.kind {
            FailureKind::Unconvertible(error) => error.to_string(),
            FailureKind::Oversize { value_size, limit } => format!(
                "value at offset {} is {value_size} bytes, over failure.max_value_bytes ({limit}); \
                 written to the bucket as null with overflowFlag",
                self.offset
            ),
            FailureKind::ObjectRefused { key, error } => {
                format!("object {key} was not stored: {error}")
            }
            FailureKind::ErrorTopicRefused {
                destination: Destination::DeadLetter,
                reason,
            } => format!(
                "record at offset {} could not be written to the dead-letter topic: {reason}",
                self.offset
            ),
            FailureKind::ErrorTopicRefused {
                destination: Destination::AbnormalData,
                reason,
            } => format!(
                "records from offset {} could not be written to the abnormal-data topic: {reason}",
                self.offset
            ),
            FailureKind::ForeignObject { key, reason } => format!(
                "object {key} in the bucket covers offset {} but is not this topic's: {reason}; \
                 nothing was skipped or overwritten. Give the connector a prefix of its own \
                 (sink.key_prefix) or move the object away, then restart",
                self.offset
            ),
            FailureKind::StreamLost { key, error } => format!(
                "object {key} was streamed to the bucket part by part and cannot be finished \
                 ({error}); its records from offset {} are no longer in memory and go nowhere: \
                 nothing is committed from there, restart to read them again",
                self.offset
            ),
        }
    }

    /// A class-like name for tools that group by `__connect.errors.exception.class.name`.
    pub fn class_name(&self) -> &'static str {
        match &self.kind {
            FailureKind::Unconvertible(_) => "kafka_oss_sink.InvalidUtf8",
            FailureKind::Oversize { .. } => "kafka_oss_sink.ValueTooLarge",
            FailureKind::ObjectRefused { .. } => "kafka_oss_sink.UploadFailed",
            FailureKind::ErrorTopicRefused { .. } => "kafka_oss_sink.ErrorTopicRefused",
            FailureKind::ForeignObject { .. } => "kafka_oss_sink.ForeignObject",
            FailureKind::StreamLost { .. } => "kafka_oss_sink.StreamLost",
        }
    }

    /// Kafka Connect's stage: `KEY_CONVERTER`, `VALUE_CONVERTER` or `TASK_PUT`.
    pub fn stage(&self) -> &'static str {
        match &self.kind {
            FailureKind::Unconvertible(RecordError::InvalidUtf8 {
                field: Field::Key, ..
            }) => "KEY_CONVERTER",
            FailureKind::Unconvertible(_) | FailureKind::Oversize { .. } => "VALUE_CONVERTER",
            FailureKind::ObjectRefused { .. }
            | FailureKind::ErrorTopicRefused { .. }
            | FailureKind::ForeignObject { .. }
            | FailureKind::StreamLost { .. } => "TASK_PUT",
        }
    }
}

/// What to do about a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, actix::MessageResponse)]
pub enum Disposition {
    /// Send the record(s) to an error topic and go on; the commit waits for the broker's
    /// acknowledgement.
    Route(Destination),
    /// Upload the held object again.
    Retry,
    /// Stop the partition at the failure (the records from it on are held, nothing past it is
    /// committed). `resumable`: whether an operator's resume can go on in-process.
    Hold { resumable: bool },
}

/// The failure policy.
pub fn decide(policy: FailurePolicy, failure: &Failure) -> Disposition {
    use Disposition::*;
    match (&failure.kind, policy, failure.resumed) {
        (FailureKind::Oversize { .. }, _, _) => Route(Destination::DeadLetter),
        (FailureKind::Unconvertible(_), FailurePolicy::Log, _) => Route(Destination::DeadLetter),
        (FailureKind::Unconvertible(_), FailurePolicy::Fail, true) => {
            Route(Destination::DeadLetter)
        }
        (FailureKind::Unconvertible(_), FailurePolicy::Fail, false) => Hold { resumable: true },
        (FailureKind::ObjectRefused { .. }, _, true) => Retry,
        (FailureKind::ObjectRefused { .. }, FailurePolicy::Log, false) => {
            Route(Destination::AbnormalData)
        }
        (FailureKind::ObjectRefused { .. }, FailurePolicy::Fail, false) => Hold { resumable: true },
        (
            FailureKind::ErrorTopicRefused {
                destination: Destination::DeadLetter,
                ..
            },
            _,
            _,
        ) => Hold { resumable: false },
        (
            FailureKind::ErrorTopicRefused {
                destination: Destination::AbnormalData,
                ..
            },
            _,
            _,
        ) => Hold { resumable: true },
        (FailureKind::ForeignObject { .. }, _, _) => Hold { resumable: false },
        (FailureKind::StreamLost { .. }, _, _) => Hold { resumable: false },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Disposition::*;

    fn failure(kind: FailureKind, resumed: bool) -> Failure {
        Failure {
            topic: "t".into(),
            partition: 0,
            offset: 7,
            kind,
            resumed,
        }
    }

    fn unconvertible() -> FailureKind {
        FailureKind::Unconvertible(RecordError::InvalidUtf8 {
            offset: 7,
            field: Field::Value,
            valid_up_to: 0,
        })
    }

    fn foreign() -> FailureKind {
        FailureKind::ForeignObject {
            key: "k".into(),
            reason: "other records".into(),
        }
    }

    fn refused() -> FailureKind {
        FailureKind::ObjectRefused {
            key: "k".into(),
            error: StoreError::Rejected {
                bucket: "b".into(),
                status: 400,
                code: "InvalidArgument".into(),
                message: String::new(),
            },
        }
    }

    fn topic_refused(destination: Destination) -> FailureKind {
        FailureKind::ErrorTopicRefused {
            destination,
            reason: "no".into(),
        }
    }

    #[test]
    fn every_failure_under_every_policy() {
        let oversize = || FailureKind::Oversize {
            value_size: 10,
            limit: 5,
        };
        let cases = [
            (
                unconvertible(),
                FailurePolicy::Log,
                false,
                Route(Destination::DeadLetter),
            ),
            (
                unconvertible(),
                FailurePolicy::Fail,
                false,
                Hold { resumable: true },
            ),
            (
                unconvertible(),
                FailurePolicy::Fail,
                true,
                Route(Destination::DeadLetter),
            ),
            (
                oversize(),
                FailurePolicy::Log,
                false,
                Route(Destination::DeadLetter),
            ),
            (
                oversize(),
                FailurePolicy::Fail,
                false,
                Route(Destination::DeadLetter),
            ),
            (
                refused(),
                FailurePolicy::Log,
                false,
                Route(Destination::AbnormalData),
            ),
            (
                refused(),
                FailurePolicy::Fail,
                false,
                Hold { resumable: true },
            ),
            (refused(), FailurePolicy::Fail, true, Retry),
            (refused(), FailurePolicy::Log, true, Retry),
            (
                foreign(),
                FailurePolicy::Log,
                false,
                Hold { resumable: false },
            ),
            (
                foreign(),
                FailurePolicy::Fail,
                false,
                Hold { resumable: false },
            ),
            (
                topic_refused(Destination::DeadLetter),
                FailurePolicy::Log,
                false,
                Hold { resumable: false },
            ),
            (
                topic_refused(Destination::DeadLetter),
                FailurePolicy::Fail,
                false,
                Hold { resumable: false },
            ),
            (
                topic_refused(Destination::AbnormalData),
                FailurePolicy::Log,
                false,
                Hold { resumable: true },
            ),
            (
                topic_refused(Destination::AbnormalData),
                FailurePolicy::Log,
                true,
                Hold { resumable: true },
            ),
        ];
        for (kind, policy, resumed, expected) in cases {
            let failure = failure(kind, resumed);
            assert_eq!(
                decide(policy, &failure),
                expected,
                "{:?} under {policy:?} (resumed: {resumed})",
                failure.kind
            );
        }
    }

    #[test]
    fn codes_stages_and_messages() {
        let bad_key = failure(
            FailureKind::Unconvertible(RecordError::InvalidUtf8 {
                offset: 7,
                field: Field::Key,
                valid_up_to: 0,
            }),
            false,
        );
        assert_eq!(bad_key.code(), ErrorCode::RecordInvalidUtf8);
        assert_eq!(bad_key.stage(), "KEY_CONVERTER");
        assert_eq!(failure(unconvertible(), false).stage(), "VALUE_CONVERTER");
        let oversize = failure(
            FailureKind::Oversize {
                value_size: 10,
                limit: 5,
            },
            false,
        );
        assert_eq!(oversize.code(), ErrorCode::RecordOversize);
        assert!(
            oversize.message().contains("10 bytes"),
            "{}",
            oversize.message()
        );
        let refused = failure(refused(), false);
        assert_eq!(refused.code(), ErrorCode::UploadRejected);
        assert_eq!(refused.stage(), "TASK_PUT");
        assert!(refused.message().starts_with("object k was not stored"));
        let dead_letter = failure(topic_refused(Destination::DeadLetter), false);
        assert_eq!(dead_letter.code(), ErrorCode::KafkaErrorTopic);
        assert!(dead_letter.message().contains("dead-letter topic"));
    }
}
