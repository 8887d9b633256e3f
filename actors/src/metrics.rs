//! Every metric the connector exports: names, help texts, and the recording helpers.
//!
//! Recording goes through the `metrics` facade; the binary installs the Prometheus recorder and
//! serves `/metrics`. Without a recorder (unit tests) every call is a no-op.
//!
//! Cost: nothing here runs per record. Consumers count per chunk, batchers per object, uploaders
//! per upload. Per-partition handles are created once, when the partition is assigned
//! ([`PartitionMetrics`]), so recording is an atomic add without a registry lookup.
//!
//! Naming follows Prometheus conventions: `kafka_oss_sink_` prefix, base units in the name
//! (`_bytes`, `_seconds`, `_records`), `_total` for counters. README.md ("Monitoring") lists them.

use std::sync::Arc;
use std::time::Duration;

use metrics::{Counter, Gauge, Histogram, Unit};

use crate::error::{ErrorCode, State};

pub const CONSUMED_RECORDS: &str = "kafka_oss_sink_consumed_records_total";
pub const CONSUMED_BYTES: &str = "kafka_oss_sink_consumed_bytes_total";
pub const WRITTEN_RECORDS: &str = "kafka_oss_sink_written_records_total";
pub const WRITTEN_BYTES: &str = "kafka_oss_sink_written_bytes_total";
pub const WRITTEN_OBJECTS: &str = "kafka_oss_sink_written_objects_total";
pub const OBJECT_SIZE: &str = "kafka_oss_sink_object_size_bytes";
pub const OBJECT_RECORDS: &str = "kafka_oss_sink_object_records";
pub const UPLOAD_DURATION: &str = "kafka_oss_sink_upload_duration_seconds";
pub const FRESHNESS: &str = "kafka_oss_sink_freshness_seconds";
pub const CONSUMER_LAG: &str = "kafka_oss_sink_consumer_lag_records";
pub const HIGH_WATERMARK: &str = "kafka_oss_sink_high_watermark_offset";
pub const COMMITTED_OFFSET: &str = "kafka_oss_sink_committed_offset";
pub const RETRIES: &str = "kafka_oss_sink_retries_total";
/// Offset commits the group coordinator refused (or that never reached it), per partition.
pub const COMMIT_FAILURES: &str = "kafka_oss_sink_commit_failures_total";
/// Offsets retention removed before they were read (a position older than the log start).
pub const RETENTION_REMOVED: &str = "kafka_oss_sink_retention_removed_offsets_total";
pub const FAILED_RECORDS: &str = "kafka_oss_sink_failed_records_total";
pub const PARTITION_STATE: &str = "kafka_oss_sink_partition_state";
/// Objects sealed, by reason. (The metric keeps its first name, which dashboards and alert rules
/// use.)
pub const SEALS: &str = "kafka_oss_sink_rotations_total";
pub const BUFFERED_BYTES: &str = "kafka_oss_sink_buffered_bytes";
pub const ERRORS: &str = "kafka_oss_sink_errors_total";
pub const READY: &str = "kafka_oss_sink_ready";
pub const RESIDENT_MEMORY: &str = "kafka_oss_sink_resident_memory_bytes";
pub const STORE_CAPABILITY: &str = "kafka_oss_sink_store_capability";
/// Incomplete multipart uploads of earlier owners aborted when the partition was assigned.
pub const ORPHANED_UPLOADS_ABORTED: &str = "kafka_oss_sink_orphaned_uploads_aborted_total";
/// Parts of open objects streamed to their staging upload (objects larger than the part size).
pub const PARTS_STREAMED: &str = "kafka_oss_sink_parts_streamed_total";
/// Streamed objects created from their staging object by a server-side copy.
pub const OBJECTS_COPIED: &str = "kafka_oss_sink_objects_copied_total";

/// The [`STORE_CAPABILITY`] check of listing incomplete multipart uploads: set by the start-up
/// probe and again whenever a partition's sweep lists them (or is refused).
pub const LIST_UPLOADS_CHECK: &str = "list uploads";
/// `memory.max_bytes` and its shares (`share`: total, prefetch, buffers).
pub const MEMORY_BUDGET: &str = "kafka_oss_sink_memory_budget_bytes";
/// Bytes of the budget in use, by `kind` (prefetch is librdkafka's, estimated).
pub const MEMORY_USED: &str = "kafka_oss_sink_memory_used_bytes";
/// Partitions waiting for memory before they read on.
pub const MEMORY_PAUSED_PARTITIONS: &str = "kafka_oss_sink_memory_paused_partitions";
/// Partitions that may fetch at once.
pub const MEMORY_FETCH_SLOTS: &str = "kafka_oss_sink_memory_fetch_slots";

/// Every metric name, with its Prometheus type.
pub const ALL: &[(&str, &str)] = &[
    (CONSUMED_RECORDS, "counter"),
    (CONSUMED_BYTES, "counter"),
    (WRITTEN_RECORDS, "counter"),
    (WRITTEN_BYTES, "counter"),
    (WRITTEN_OBJECTS, "counter"),
    (OBJECT_SIZE, "histogram"),
    (OBJECT_RECORDS, "histogram"),
    (UPLOAD_DURATION, "histogram"),
    (FRESHNESS, "histogram"),
    (CONSUMER_LAG, "gauge"),
    (HIGH_WATERMARK, "gauge"),
    (COMMITTED_OFFSET, "gauge"),
    (RETRIES, "counter"),
    (COMMIT_FAILURES, "counter"),
    (RETENTION_REMOVED, "counter"),
    (FAILED_RECORDS, "counter"),
    (PARTITION_STATE, "gauge"),
    (SEALS, "counter"),
    (BUFFERED_BYTES, "gauge"),
    (ERRORS, "counter"),
    (READY, "gauge"),
    (RESIDENT_MEMORY, "gauge"),
    (STORE_CAPABILITY, "gauge"),
    (ORPHANED_UPLOADS_ABORTED, "counter"),
    (PARTS_STREAMED, "counter"),
    (OBJECTS_COPIED, "counter"),
    (MEMORY_BUDGET, "gauge"),
    (MEMORY_USED, "gauge"),
    (MEMORY_PAUSED_PARTITIONS, "gauge"),
    (MEMORY_FETCH_SLOTS, "gauge"),
];

/// Histogram buckets (upper bounds), by metric. The exporter renders these as Prometheus
/// histograms, so dashboards can use `histogram_quantile`.
pub const BUCKETS: &[(&str, &[f64])] = &[
    (
        OBJECT_SIZE,
        &[
            1024.0,
            4096.0,
            16384.0,
            65536.0,
            262144.0,
            1048576.0,
            4194304.0,
            16777216.0,
            67108864.0,
            268435456.0,
            1073741824.0,
        ],
    ),
    (
        OBJECT_RECORDS,
        &[
            1.0, 10.0, 100.0, 1000.0, 10000.0, 100000.0, 1000000.0, 10000000.0,
        ],
    ),
    (
        UPLOAD_DURATION,
        &[
            0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
        ],
    ),
    (
        FRESHNESS,
        &[
            0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0,
        ],
    ),
];

/// Why an object was sealed: the `reason` label of [`SEALS`].
pub const SEAL_REASONS: &[&str] = &[
    "count",
    "bytes",
    "interval",
    "shutdown",
    "rebalance",
    "record_error",
    "recovered",
    "caught_up",
    "memory",
    "partition_boundary",
];

/// Error codes pre-registered with zero in [`RETRIES`], so the series exist before the first retry.
pub const RETRY_REASONS: &[ErrorCode] = &[
    ErrorCode::UploadUnavailable,
    ErrorCode::UploadAccessDenied,
    ErrorCode::UploadRejected,
    ErrorCode::UploadNoSuchBucket,
    ErrorCode::KafkaCommit,
];

/// Partition states: the `state` label of [`PARTITION_STATE`]. The current state's series is 1,
/// every other state's series of the partition is 0.
pub const PARTITION_STATES: &[State] = State::GAUGED;

/// Registers the help text and unit of every metric. Call once, after installing the recorder.
pub fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        CONSUMED_RECORDS,
        Unit::Count,
        "Records read from the partition"
    );
    describe_counter!(
        CONSUMED_BYTES,
        Unit::Bytes,
        "Key and value bytes read from the partition"
    );
    describe_counter!(WRITTEN_RECORDS, Unit::Count, "Records stored in the bucket");
    describe_counter!(
        WRITTEN_BYTES,
        Unit::Bytes,
        "Object bytes stored in the bucket"
    );
    describe_counter!(WRITTEN_OBJECTS, Unit::Count, "Objects stored in the bucket");
    describe_histogram!(OBJECT_SIZE, Unit::Bytes, "Size of each stored object");
    describe_histogram!(OBJECT_RECORDS, Unit::Count, "Records in each stored object");
    describe_histogram!(
        UPLOAD_DURATION,
        Unit::Seconds,
        "Duration of each successful upload attempt (PutObject, or a whole multipart upload)"
    );
    describe_histogram!(
        FRESHNESS,
        Unit::Seconds,
        "Per stored object: time from its oldest record's timestamp to the object being stored"
    );
    describe_gauge!(
        CONSUMER_LAG,
        Unit::Count,
        "Records between the committed offset and the partition's high watermark (librdkafka statistics)"
    );
    describe_gauge!(
        HIGH_WATERMARK,
        "The partition's high watermark offset (librdkafka statistics)"
    );
    describe_gauge!(
        COMMITTED_OFFSET,
        "Last offset committed for the partition (the next record to read)"
    );
    describe_counter!(
        RETRIES,
        Unit::Count,
        "Retried operations, by the error code that caused the retry"
    );
    describe_counter!(
        RETENTION_REMOVED,
        Unit::Count,
        "Offsets retention removed before they were read (the position was older than the log start)"
    );
    describe_counter!(
        COMMIT_FAILURES,
        Unit::Count,
        "Partitions whose offset commit failed (the offset is committed again at the next commit)"
    );
    describe_counter!(
        FAILED_RECORDS,
        Unit::Count,
        "Records that could not be written, by error code and where they went"
    );
    describe_gauge!(
        PARTITION_STATE,
        "1 for the partition's current state, 0 for its other states"
    );
    describe_counter!(SEALS, Unit::Count, "Objects sealed, by reason");
    describe_gauge!(
        BUFFERED_BYTES,
        Unit::Bytes,
        "Bytes held in memory for the partition: the open object and objects not yet stored"
    );
    describe_counter!(
        ERRORS,
        Unit::Count,
        "Warning and error log lines, by error code and level"
    );
    describe_gauge!(READY, "1 when /readyz answers 200, else 0");
    describe_gauge!(
        RESIDENT_MEMORY,
        Unit::Bytes,
        "Resident memory of the process (Linux: VmRSS of /proc/self/status), set at each scrape"
    );
    describe_gauge!(
        STORE_CAPABILITY,
        "Start-up capability probe of the bucket, by check: 1 ok, 0 degraded or failed"
    );
    describe_counter!(
        ORPHANED_UPLOADS_ABORTED,
        Unit::Count,
        "Incomplete multipart uploads of earlier owners of the partition aborted at its assignment"
    );
    describe_counter!(
        PARTS_STREAMED,
        Unit::Count,
        "Parts of open objects larger than the part size uploaded while the object grows"
    );
    describe_counter!(
        OBJECTS_COPIED,
        Unit::Count,
        "Streamed objects created from their staging object by a server-side copy"
    );
    describe_gauge!(
        MEMORY_BUDGET,
        Unit::Bytes,
        "memory.max_bytes, and its prefetch and buffer shares"
    );
    describe_gauge!(
        MEMORY_USED,
        Unit::Bytes,
        "Bytes of the memory budget in use, by kind (prefetch: librdkafka's queues, estimated)"
    );
    describe_gauge!(
        MEMORY_PAUSED_PARTITIONS,
        "Partitions waiting before they read on, for memory or for a fetch slot"
    );
    describe_gauge!(MEMORY_FETCH_SLOTS, "Partitions that may fetch at once");
    for reason in RETRY_REASONS {
        metrics::counter!(RETRIES, "reason" => reason.as_str()).absolute(0);
    }
}

/// Exports the capability probe's checks.
pub fn set_capabilities(capabilities: &crate::store::Capabilities) {
    for check in &capabilities.checks {
        let value = if check.outcome == crate::store::Outcome::Ok {
            1.0
        } else {
            0.0
        };
        metrics::gauge!(STORE_CAPABILITY, "check" => check.action).set(value);
    }
}

/// Sets one capability check's series: 1 ok, 0 degraded or failed.
pub fn set_capability(check: &'static str, ok: bool) {
    metrics::gauge!(STORE_CAPABILITY, "check" => check).set(if ok { 1.0 } else { 0.0 });
}

/// Counts orphaned uploads aborted for a partition (0 registers the series).
pub fn record_orphans_aborted(topic: &str, partition: i32, aborted: u64) {
    metrics::counter!(
        ORPHANED_UPLOADS_ABORTED,
        "topic" => topic.to_owned(),
        "partition" => partition.to_string(),
    )
    .increment(aborted);
}

/// Counts one part streamed for a partition.
pub fn record_part_streamed(topic: &str, partition: i32) {
    metrics::counter!(
        PARTS_STREAMED,
        "topic" => topic.to_owned(),
        "partition" => partition.to_string(),
    )
    .increment(1);
}

/// Counts one streamed object finished by a server-side copy.
pub fn record_object_copied(topic: &str, partition: i32) {
    metrics::counter!(
        OBJECTS_COPIED,
        "topic" => topic.to_owned(),
        "partition" => partition.to_string(),
    )
    .increment(1);
}

/// Counts one retry of an operation that failed with `code`.
pub fn record_retry(code: ErrorCode) {
    metrics::counter!(RETRIES, "reason" => code.as_str()).increment(1);
}

/// Counts a partition whose offset commit failed (`None`: librdkafka named no partition).
pub fn record_commit_failure(topic: &str, partition: Option<i32>) {
    metrics::counter!(
        COMMIT_FAILURES,
        "topic" => topic.to_owned(),
        "partition" => partition.map_or_else(|| "none".to_owned(), |p| p.to_string()),
    )
    .increment(1);
}

/// Counts records that could not be written. `destination` is where they went: `"none"` (the
/// partition stopped before it), `"dead_letter"` or `"abnormal_data"`.
pub fn record_failed(
    topic: &str,
    partition: i32,
    code: ErrorCode,
    destination: &'static str,
    records: u64,
) {
    metrics::counter!(
        FAILED_RECORDS,
        "topic" => topic.to_owned(),
        "partition" => partition.to_string(),
        "code" => code.as_str(),
        "destination" => destination,
    )
    .increment(records);
}

/// Counts a warning or error log line that carries an error code.
pub fn record_error(code: &str, level: &'static str) {
    metrics::counter!(ERRORS, "code" => code.to_owned(), "level" => level).increment(1);
}

/// Sets the partition's state series: 1 for `state` (none: revoked), 0 for `previous` and every
/// state in [`PARTITION_STATES`]. States outside that list work too.
pub fn set_partition_state(
    topic: &str,
    partition: i32,
    previous: Option<State>,
    state: Option<State>,
) {
    let partition = partition.to_string();
    let mut states: Vec<State> = PARTITION_STATES.to_vec();
    for extra in [previous, state].into_iter().flatten() {
        if !states.contains(&extra) {
            states.push(extra);
        }
    }
    for known in states {
        let value = if Some(known) == state { 1.0 } else { 0.0 };
        metrics::gauge!(
            PARTITION_STATE,
            "topic" => topic.to_owned(),
            "partition" => partition.clone(),
            "state" => known.as_str(),
        )
        .set(value);
    }
}

/// Sets lag and high watermark from librdkafka statistics.
pub fn set_lag(topic: &str, partition: i32, lag: i64, high_watermark: i64) {
    let labels = [
        ("topic", topic.to_owned()),
        ("partition", partition.to_string()),
    ];
    metrics::gauge!(CONSUMER_LAG, &labels).set(lag as f64);
    metrics::gauge!(HIGH_WATERMARK, &labels).set(high_watermark as f64);
}

pub fn set_committed(topic: &str, partition: i32, offset: i64) {
    metrics::gauge!(
        COMMITTED_OFFSET,
        "topic" => topic.to_owned(),
        "partition" => partition.to_string(),
    )
    .set(offset as f64);
}

/// One partition's handles, created once at assignment and shared by its consumer, batcher and
/// (through each `SealedObject`) the uploaders.
pub struct PartitionMetrics {
    pub consumed_records: Counter,
    pub consumed_bytes: Counter,
    pub written_records: Counter,
    pub written_bytes: Counter,
    pub written_objects: Counter,
    pub buffered_bytes: Gauge,
    /// Offsets retention removed before the partition consumer read them.
    pub retention_removed: Counter,
    /// Indexed like [`SEAL_REASONS`].
    seals: Vec<Counter>,
    object_size: Histogram,
    object_records: Histogram,
    upload_duration: Histogram,
    freshness: Histogram,
}

impl PartitionMetrics {
    pub fn new(topic: &str, partition: i32) -> Arc<Self> {
        let labels = [
            ("topic", topic.to_owned()),
            ("partition", partition.to_string()),
        ];
        // Histograms are labelled by topic only: one set of buckets per partition would
        // multiply the series count for little gain.
        let topic_label = [("topic", topic.to_owned())];
        // Registered (not reset) so the series exists before the first failure.
        metrics::counter!(COMMIT_FAILURES, &labels).increment(0);
        Arc::new(PartitionMetrics {
            consumed_records: metrics::counter!(CONSUMED_RECORDS, &labels),
            consumed_bytes: metrics::counter!(CONSUMED_BYTES, &labels),
            written_records: metrics::counter!(WRITTEN_RECORDS, &labels),
            written_bytes: metrics::counter!(WRITTEN_BYTES, &labels),
            written_objects: metrics::counter!(WRITTEN_OBJECTS, &labels),
            buffered_bytes: metrics::gauge!(BUFFERED_BYTES, &labels),
            retention_removed: metrics::counter!(RETENTION_REMOVED, &labels),
            seals: SEAL_REASONS
                .iter()
                .map(|reason| {
                    metrics::counter!(
                        SEALS,
                        "topic" => topic.to_owned(),
                        "partition" => partition.to_string(),
                        "reason" => *reason,
                    )
                })
                .collect(),
            object_size: metrics::histogram!(OBJECT_SIZE, &topic_label),
            object_records: metrics::histogram!(OBJECT_RECORDS, &topic_label),
            upload_duration: metrics::histogram!(UPLOAD_DURATION, &topic_label),
            freshness: metrics::histogram!(FRESHNESS, &topic_label),
        })
    }

    /// Counts one sealed object; `reason` is one of [`SEAL_REASONS`].
    pub fn sealed(&self, reason: &str) {
        if let Some(index) = SEAL_REASONS.iter().position(|known| *known == reason) {
            self.seals[index].increment(1);
        }
    }

    /// Records one object stored in the bucket.
    pub fn stored(
        &self,
        records: usize,
        bytes: usize,
        upload: Duration,
        oldest_timestamp_ms: Option<i64>,
    ) {
        self.written_objects.increment(1);
        self.written_records.increment(records as u64);
        self.written_bytes.increment(bytes as u64);
        self.object_size.record(bytes as f64);
        self.object_records.record(records as f64);
        self.upload_duration.record(upload.as_secs_f64());
        if let Some(oldest) = oldest_timestamp_ms.filter(|ts| *ts >= 0) {
            let now_ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|elapsed| elapsed.as_millis() as i64)
                .unwrap_or(0);
            self.freshness
                .record((now_ms - oldest).max(0) as f64 / 1000.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_prometheus_conventions() {
        let mut seen = std::collections::BTreeSet::new();
        for (name, kind) in ALL {
            assert!(seen.insert(*name), "{name} listed twice");
            assert!(name.starts_with("kafka_oss_sink_"), "{name}");
            assert!(
                name.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
                "{name}"
            );
            assert_eq!(
                name.ends_with("_total"),
                *kind == "counter",
                "{name}: counters and only counters end with _total"
            );
        }
        for (name, _) in BUCKETS {
            assert!(
                ALL.contains(&(*name, "histogram")),
                "{name} has buckets but is no histogram"
            );
        }
        for (name, kind) in ALL {
            if *kind == "histogram" {
                assert!(
                    BUCKETS.iter().any(|(n, _)| n == name),
                    "{name}: a histogram without buckets renders as a summary"
                );
            }
        }
    }

    #[test]
    fn every_metric_is_documented_in_the_operations_guide() {
        let guide = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/operations.md"),
        )
        .unwrap();
        let monitoring = guide
            .split("## Metrics")
            .nth(1)
            .expect("docs/operations.md has a Metrics section");
        let monitoring = monitoring.split("\n## ").next().unwrap_or(monitoring);
        for (name, kind) in ALL {
            let row = monitoring
                .lines()
                .find(|line| line.starts_with(&format!("| `{name}`")))
                .unwrap_or_else(|| panic!("{name} is not in docs/operations.md's metrics table"));
            assert!(
                row.contains(kind),
                "{name}: the table's row does not say {kind}"
            );
        }
        for reason in SEAL_REASONS {
            assert!(
                monitoring.contains(&format!("`{reason}`")),
                "rotation reason {reason}"
            );
        }
    }
}
