//! `StatusBoard`: what `/status` and `/readyz` show, shared by the actors and the admin server.
//!
//! Writers (supervisor, batchers, uploaders, the Kafka driver) update it a few times per object
//! or per second, never per record; readers (HTTP handlers) take a read lock and copy. The
//! partition state also drives the `kafka_oss_sink_partition_state` gauge, so the two never
//! disagree.
//!
//! Nothing here may hold a secret: errors are stored as code + message, and every message comes
//! from an error type whose `Display` names the bucket or topic, never the credentials.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use serde_json::{json, Value};

use crate::error::{ErrorCode, State};
use crate::metrics;

/// An error with its stable code (README.md lists the codes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorInfo {
    pub code: ErrorCode,
    pub message: String,
    /// The offset the error is about, if it is about a record.
    pub offset: Option<i64>,
}

impl ErrorInfo {
    fn to_json(&self) -> Value {
        json!({ "code": self.code.as_str(), "message": self.message, "offset": self.offset })
    }
}

/// One assigned partition.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PartitionStatus {
    /// `None` only for an instant after assignment.
    pub state: Option<State>,
    /// The last committed offset (the next record a restart reads).
    pub committed_offset: Option<i64>,
    /// Records between the committed offset and the high watermark.
    pub lag: Option<i64>,
    pub high_watermark: Option<i64>,
    pub last_object_key: Option<String>,
    pub last_error: Option<ErrorInfo>,
}

struct Inner {
    topic: String,
    partitions: RwLock<BTreeMap<i32, PartitionStatus>>,
    /// The last interaction with a broker succeeded (metadata, statistics showing a broker up).
    broker_ok: AtomicBool,
    /// The last interaction with the bucket succeeded (probe, upload).
    bucket_ok: AtomicBool,
    bucket_error: RwLock<Option<ErrorInfo>>,
    broker_error: RwLock<Option<ErrorInfo>>,
    /// Why the pipeline failed (a fatal consumer error), once it has; it then drains and exits.
    failure: RwLock<Option<String>>,
    /// Told when the bucket goes from answering to failing and back (the status topic).
    bucket_listener: RwLock<Option<BucketListener>>,
}

/// Called with the error when the bucket starts failing, `None` when it answers again.
pub type BucketListener = Arc<dyn Fn(Option<(ErrorCode, &str)>) + Send + Sync>;

/// Cheap to clone; every clone shows the same board.
#[derive(Clone)]
pub struct StatusBoard(Arc<Inner>);

impl StatusBoard {
    pub fn new(topic: &str) -> Self {
        StatusBoard(Arc::new(Inner {
            topic: topic.to_owned(),
            partitions: RwLock::new(BTreeMap::new()),
            broker_ok: AtomicBool::new(false),
            bucket_ok: AtomicBool::new(false),
            bucket_error: RwLock::new(None),
            broker_error: RwLock::new(None),
            failure: RwLock::new(None),
            bucket_listener: RwLock::new(None),
        }))
    }

    pub fn topic(&self) -> &str {
        &self.0.topic
    }

    fn update(&self, partition: i32, change: impl FnOnce(&mut PartitionStatus)) {
        let mut partitions = self.0.partitions.write().unwrap_or_else(|e| e.into_inner());
        change(partitions.entry(partition).or_default());
    }

    /// A partition was assigned: it starts `RUNNING` with no error.
    pub fn assigned(&self, partition: i32) {
        self.update(partition, |status| {
            status.last_error = None;
        });
        self.set_state(partition, State::Running);
    }

    /// A partition was revoked: it leaves the board, its state series go to 0 and its lag to 0
    /// (its new owner reports it), so sums over all members stay right.
    pub fn revoked(&self, partition: i32) {
        let mut partitions = self.0.partitions.write().unwrap_or_else(|e| e.into_inner());
        let previous = partitions.remove(&partition);
        if let Some(status) = &previous {
            metrics::set_lag(
                &self.0.topic,
                partition,
                0,
                status.high_watermark.unwrap_or(0),
            );
        }
        let previous_state = previous.as_ref().and_then(|status| status.state);
        metrics::set_partition_state(&self.0.topic, partition, previous_state, None);
    }

    /// Sets the state and its gauge series.
    pub fn set_state(&self, partition: i32, state: State) {
        let mut previous = None;
        self.update(partition, |status| previous = status.state.replace(state));
        metrics::set_partition_state(&self.0.topic, partition, previous, Some(state));
    }

    pub fn set_error(&self, partition: i32, code: ErrorCode, message: &str, offset: Option<i64>) {
        self.update(partition, |status| {
            status.last_error = Some(ErrorInfo {
                code,
                message: message.to_owned(),
                offset,
            })
        });
    }

    /// Only for partitions on the board: a commit can arrive just after a revocation.
    pub fn set_committed(&self, partition: i32, offset: i64) {
        let mut partitions = self.0.partitions.write().unwrap_or_else(|e| e.into_inner());
        if let Some(status) = partitions.get_mut(&partition) {
            status.committed_offset = Some(offset);
            metrics::set_committed(&self.0.topic, partition, offset);
        }
    }

    /// Only for partitions on the board (statistics also list unassigned ones).
    pub fn set_lag(&self, partition: i32, lag: i64, high_watermark: i64) {
        let mut partitions = self.0.partitions.write().unwrap_or_else(|e| e.into_inner());
        if let Some(status) = partitions.get_mut(&partition) {
            status.lag = Some(lag);
            status.high_watermark = Some(high_watermark);
            metrics::set_lag(&self.0.topic, partition, lag, high_watermark);
        }
    }

    pub fn set_last_object(&self, partition: i32, key: &str) {
        let mut partitions = self.0.partitions.write().unwrap_or_else(|e| e.into_inner());
        if let Some(status) = partitions.get_mut(&partition) {
            // Objects of a partition may be stored out of order (several uploads in flight);
            // keys of one partition sort by offset, so the greatest is the latest object.
            if status
                .last_object_key
                .as_deref()
                .is_none_or(|last| last < key)
            {
                status.last_object_key = Some(key.to_owned());
            }
        }
    }

    /// The outcome of the last bucket interaction; an error keeps its code and message.
    pub fn set_bucket(&self, result: Result<(), (ErrorCode, String)>) {
        let was_ok = self.0.bucket_ok.swap(result.is_ok(), Ordering::Relaxed);
        if was_ok != result.is_ok() {
            let listener = self
                .0
                .bucket_listener
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .clone();
            if let Some(listener) = listener {
                listener(
                    result
                        .as_ref()
                        .err()
                        .map(|(code, message)| (*code, message.as_str())),
                );
            }
        }
        if let Err((code, message)) = result {
            *self
                .0
                .bucket_error
                .write()
                .unwrap_or_else(|e| e.into_inner()) = Some(ErrorInfo {
                code,
                message,
                offset: None,
            });
        }
    }

    /// Registers who hears about the bucket failing and recovering (one listener).
    pub fn on_bucket_change(&self, listener: BucketListener) {
        *self
            .0
            .bucket_listener
            .write()
            .unwrap_or_else(|e| e.into_inner()) = Some(listener);
    }

    /// The outcome of the last broker interaction.
    pub fn set_broker(&self, result: Result<(), (ErrorCode, String)>) {
        self.0.broker_ok.store(result.is_ok(), Ordering::Relaxed);
        if let Err((code, message)) = result {
            *self
                .0
                .broker_error
                .write()
                .unwrap_or_else(|e| e.into_inner()) = Some(ErrorInfo {
                code,
                message,
                offset: None,
            });
        }
    }

    /// The last broker error recorded (it stays after the broker recovered).
    pub fn broker_error(&self) -> Option<ErrorInfo> {
        self.0
            .broker_error
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The pipeline failed (the connector, not one partition): it drains and the process exits.
    pub fn set_failed(&self, reason: &str) {
        *self.0.failure.write().unwrap_or_else(|e| e.into_inner()) = Some(reason.to_owned());
    }

    /// Why the pipeline failed, if it has.
    pub fn failure(&self) -> Option<String> {
        self.0
            .failure
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// A copy of every assigned partition's status, by partition.
    pub fn partitions(&self) -> BTreeMap<i32, PartitionStatus> {
        self.0
            .partitions
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn partition(&self, partition: i32) -> Option<PartitionStatus> {
        let partitions = self.0.partitions.read().unwrap_or_else(|e| e.into_inner());
        partitions.get(&partition).cloned()
    }

    /// `Ok` when ready; otherwise every reason it is not.
    ///
    /// Ready means: the group has assigned at least one partition to this member, and the last
    /// interaction with the brokers and the last one with the bucket succeeded.
    pub fn readiness(&self) -> Result<(), Vec<String>> {
        let mut reasons = Vec::new();
        let assigned = !self
            .0
            .partitions
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .is_empty();
        if !assigned {
            reasons.push("no partition assigned".to_owned());
        }
        if !self.0.broker_ok.load(Ordering::Relaxed) {
            reasons.push("the last broker interaction failed".to_owned());
        }
        if !self.0.bucket_ok.load(Ordering::Relaxed) {
            reasons.push("the last bucket interaction failed".to_owned());
        }
        let ready = reasons.is_empty();
        ::metrics::gauge!(metrics::READY).set(if ready { 1.0 } else { 0.0 });
        if ready {
            Ok(())
        } else {
            Err(reasons)
        }
    }

    /// The `/status` document.
    pub fn to_json(&self) -> Value {
        let readiness = self.readiness();
        let partitions: Vec<Value> = self
            .0
            .partitions
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(partition, status)| {
                json!({
                    "partition": partition,
                    "state": status.state.map(State::as_str),
                    "committed_offset": status.committed_offset,
                    "lag": status.lag,
                    "high_watermark": status.high_watermark,
                    "last_object_key": status.last_object_key,
                    "last_error": status.last_error.as_ref().map(ErrorInfo::to_json),
                })
            })
            .collect();
        let read_error = |lock: &RwLock<Option<ErrorInfo>>| {
            lock.read()
                .unwrap_or_else(|e| e.into_inner())
                .as_ref()
                .map(ErrorInfo::to_json)
        };
        json!({
            "topic": self.0.topic,
            "ready": readiness.is_ok(),
            "not_ready_reasons": readiness.err().unwrap_or_default(),
            "broker": {
                "reachable": self.0.broker_ok.load(Ordering::Relaxed),
                "last_error": read_error(&self.0.broker_error),
            },
            "bucket": {
                "reachable": self.0.bucket_ok.load(Ordering::Relaxed),
                "last_error": read_error(&self.0.bucket_error),
            },
            "partitions": partitions,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_listener_hears_the_bucket_fail_and_recover_once_each() {
        let board = StatusBoard::new("t");
        board.set_bucket(Ok(()));
        let heard = Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = heard.clone();
        board.on_bucket_change(Arc::new(move |error| {
            sink.lock()
                .unwrap()
                .push(error.map(|(code, message)| (code, message.to_owned())));
        }));
        board.set_bucket(Ok(()));
        board.set_bucket(Err((ErrorCode::UploadUnavailable, "down".into())));
        board.set_bucket(Err((ErrorCode::UploadUnavailable, "still down".into())));
        board.set_bucket(Ok(()));
        assert_eq!(
            *heard.lock().unwrap(),
            vec![
                Some((ErrorCode::UploadUnavailable, "down".to_owned())),
                None
            ]
        );
    }

    #[test]
    fn a_pipeline_failure_is_kept_with_its_reason() {
        let board = StatusBoard::new("t");
        assert_eq!(board.failure(), None);
        board.set_failed("fatal consumer error: x");
        assert_eq!(board.failure().as_deref(), Some("fatal consumer error: x"));
    }

    #[test]
    fn readiness_needs_partitions_broker_and_bucket() {
        let board = StatusBoard::new("t");
        assert_eq!(board.readiness().unwrap_err().len(), 3);
        board.set_broker(Ok(()));
        board.set_bucket(Ok(()));
        assert_eq!(
            board.readiness().unwrap_err(),
            vec!["no partition assigned".to_owned()]
        );
        board.assigned(0);
        assert!(board.readiness().is_ok());
        board.set_bucket(Err((ErrorCode::UploadUnavailable, "down".into())));
        assert_eq!(
            board.readiness().unwrap_err(),
            vec!["the last bucket interaction failed".to_owned()]
        );
        board.set_bucket(Ok(()));
        board.revoked(0);
        assert!(board.readiness().is_err());
    }

    #[test]
    fn state_gauge_follows_every_transition_including_new_states() {
        use metrics_util::debugging::{DebugValue, DebuggingRecorder};
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        ::metrics::with_local_recorder(&recorder, || {
            let board = StatusBoard::new("t");
            board.assigned(3);
            board.set_state(3, State::Paused);
            board.set_state(3, State::Running);
            board.set_state(3, State::Failed);
        });
        let states: BTreeMap<String, f64> = snapshotter
            .snapshot()
            .into_vec()
            .into_iter()
            .filter(|(key, ..)| key.key().name() == metrics::PARTITION_STATE)
            .map(|(key, _, _, value)| {
                let state = key
                    .key()
                    .labels()
                    .find(|label| label.key() == "state")
                    .unwrap()
                    .value()
                    .to_owned();
                let DebugValue::Gauge(value) = value else {
                    panic!("{value:?}")
                };
                (state, value.into_inner())
            })
            .collect();
        assert_eq!(
            states,
            BTreeMap::from([
                ("FAILED".to_owned(), 1.0),
                ("PAUSED".to_owned(), 0.0),
                ("RUNNING".to_owned(), 0.0),
            ])
        );
    }

    #[test]
    fn status_json_shows_each_partition() {
        let board = StatusBoard::new("t");
        board.assigned(1);
        board.assigned(0);
        board.set_committed(0, 42);
        board.set_committed(7, 1); // not assigned: ignored
        board.set_lag(0, 3, 45);
        board.set_last_object(0, "p/t/0/0010-0019.json");
        // Stored out of order: the later object stays the last one.
        board.set_last_object(0, "p/t/0/0000-0009.json");
        board.set_state(1, State::Failed);
        board.set_error(
            1,
            ErrorCode::RecordInvalidUtf8,
            "value at offset 5",
            Some(5),
        );
        let json = board.to_json();
        let partitions = json["partitions"].as_array().unwrap();
        assert_eq!(partitions.len(), 2);
        assert_eq!(partitions[0]["partition"], 0);
        assert_eq!(partitions[0]["state"], "RUNNING");
        assert_eq!(partitions[0]["committed_offset"], 42);
        assert_eq!(partitions[0]["lag"], 3);
        assert_eq!(partitions[0]["last_object_key"], "p/t/0/0010-0019.json");
        assert_eq!(partitions[1]["state"], "FAILED");
        assert_eq!(partitions[1]["last_error"]["code"], "RECORD_INVALID_UTF8");
        assert_eq!(partitions[1]["last_error"]["offset"], 5);
    }
}
