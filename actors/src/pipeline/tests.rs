//! The whole pipeline (consumer, driver, supervisor, batchers, uploaders) against librdkafka's
//! in-process mock cluster and an in-memory bucket: for what a real broker cannot be made to do
//! on demand (retention removing records, request errors, lost sessions), and for rebalances
//! between instances in one process. The end-to-end tests against tansu and s3s-fs are in the
//! workspace's `tests/`.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use actix::prelude::*;
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use tokio::sync::oneshot;

use super::startup::Started;
use super::{run_started, RunOutcome};
use crate::error_topics;
use crate::kafka::create_consumer;
use crate::messages::PartitionCommand;
use crate::settings::*;
use crate::status::StatusBoard;
use crate::store::{MemoryStore, SharedStore};

pub(crate) type Mock = MockCluster<'static, DefaultProducerContext>;

pub(crate) const PREFIX: &str = "p/";

/// A one-broker mock cluster with the source topic and the connector's topics for `name`.
pub(crate) fn cluster(topic: &str, partitions: i32, name: &str) -> Mock {
    let mock = MockCluster::new(1).expect("mock cluster");
    mock.create_topic(topic, partitions, 1).expect("topic");
    for resource in ["status", "error", "config"] {
        mock.create_topic(&format!("connect-{resource}-{name}"), 1, 1)
            .expect("topic");
    }
    mock
}

/// Settings for one instance of connector `name` on `mock`.
pub(crate) fn settings(
    mock: &Mock,
    topic: &str,
    name: &str,
    start: StartOffset,
) -> PipelineSettings {
    let properties = [
        ("session.timeout.ms", "6000"),
        ("heartbeat.interval.ms", "300"),
        ("fetch.wait.max.ms", "10"),
        ("topic.metadata.refresh.interval.ms", "500"),
    ];
    let secret = || Secret::new("unused".to_owned());
    PipelineSettings {
        connector_name: name.to_owned(),
        source: SourceSettings {
            bootstrap_servers: mock.bootstrap_servers(),
            topic: topic.to_owned(),
            group_id: format!("connect-{name}"),
            start_offset: start,
            // Eager: these tests revoke and assign whole assignments.
            assignment: AssignmentStrategy::Range,
            concurrency: 2,
            client_properties: ClientProperties(
                properties
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
            ),
        },
        sink: SinkSettings {
            bucket: "bucket".to_owned(),
            endpoint: None,
            region: "us-east-1".to_owned(),
            key_prefix: PREFIX.to_owned(),
            key_template: Default::default(),
            path_style: true,
            part_size: 16 << 20,
            checksum: ChecksumMode::WhenRequired,
            conditional_create: ConditionalCreate::IfNoneMatch,
            sign_payload: true,
            upload_concurrency: 2,
            request_timeout: Duration::from_secs(5),
            retry_initial_backoff: Duration::from_millis(10),
            retry_max_backoff: Duration::from_millis(100),
            max_upload_attempts: None,
            credentials: Credentials {
                access_key_id: secret(),
                access_key_secret: secret(),
                session_token: None,
            }
            .into(),
        },
        batching: RollPolicy {
            max_records: 10,
            max_bytes: 1 << 20,
            max_interval: Duration::from_millis(200),
            seal_when_caught_up: true,
        },
        memory_max_bytes: 128 << 20,
        drain_timeout: Duration::from_secs(5),
        failure: FailureSettings {
            policy: FailurePolicy::Log,
            max_value_bytes: None,
        },
        format: Default::default(),
        resources: ResourceSettings {
            create: CreateMode::Automatic,
            offset_topic: format!("connect-offset-{name}"),
            offset_topic_partitions: 1,
            config_topic: format!("connect-config-{name}"),
            status_topic: format!("connect-status-{name}"),
            status_topic_partitions: 1,
            abnormal_topic: format!("connect-error-{name}"),
            dead_letter_topic: format!("connect-error-{name}"),
            error_topic_partitions: 1,
            replication_factor: -1,
        },
        redacted_config: String::new(),
    }
}

/// One running connector instance.
pub(crate) struct Instance {
    pub status: StatusBoard,
    pub commands: Recipient<PartitionCommand>,
    stop: Option<oneshot::Sender<()>>,
    done: Option<tokio::task::JoinHandle<RunOutcome>>,
}

impl Instance {
    pub(crate) async fn start(settings: PipelineSettings, store: SharedStore) -> Instance {
        let status = StatusBoard::new(&settings.source.topic);
        let (source, drain, attempt, board) = (
            settings.source.clone(),
            settings.drain_timeout,
            settings.sink.request_timeout,
            status.clone(),
        );
        let consumer =
            tokio::task::spawn_blocking(move || create_consumer(&source, drain, attempt, board))
                .await
                .unwrap()
                .expect("consumer");
        let producer = error_topics::create_producer(&settings.source).expect("producer");
        let started = Started {
            store,
            consumer,
            producer,
        };
        let (stop, stopped) = oneshot::channel::<()>();
        let (running, commands) = oneshot::channel();
        let done = actix::spawn({
            let status = status.clone();
            async move {
                run_started(
                    settings,
                    started,
                    status,
                    async move {
                        let _ = stopped.await;
                    },
                    move |pipeline| {
                        let _ = running.send(pipeline.commands);
                    },
                )
                .await
                .expect("pipeline runs")
            }
        });
        Instance {
            status,
            commands: commands.await.expect("pipeline wired"),
            stop: Some(stop),
            done: Some(done),
        }
    }

    /// Graceful stop: drains, commits, leaves the group.
    pub(crate) async fn stop(mut self) -> RunOutcome {
        let _ = self.stop.take().unwrap().send(());
        self.done.take().unwrap().await.expect("pipeline task")
    }

    /// The partitions assigned to this instance.
    pub(crate) fn assigned(&self) -> Vec<i32> {
        let json = self.status.to_json();
        let mut partitions: Vec<i32> = json["partitions"]
            .as_array()
            .map(|list| {
                list.iter()
                    .filter_map(|p| p["partition"].as_i64().map(|p| p as i32))
                    .collect()
            })
            .unwrap_or_default();
        partitions.sort_unstable();
        partitions
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Produces `count` records (`value_size` bytes each, one record per batch) to `partition`.
pub(crate) fn produce(mock: &Mock, topic: &str, partition: i32, count: usize, value_size: usize) {
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", mock.bootstrap_servers())
        .set("linger.ms", "0")
        .set("batch.num.messages", "1")
        .create()
        .expect("producer");
    for index in 0..count {
        let key = format!("k{index}");
        let mut value = format!("{index:08}");
        value.push_str(&"v".repeat(value_size.saturating_sub(value.len())));
        let mut record = BaseRecord::<str, str>::to(topic)
            .partition(partition)
            .key(&key)
            .payload(&value);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((_, back)) => {
                    record = back;
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
        }
    }
    producer.flush(Duration::from_secs(30)).expect("flush");
}

/// Commits `offset` for `partition` in `group`, as a member that left would have.
pub(crate) fn commit(mock: &Mock, group: &str, topic: &str, partition: i32, offset: i64) {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", mock.bootstrap_servers())
        .set("group.id", group)
        .create()
        .unwrap();
    let mut list = TopicPartitionList::new();
    list.add_partition_offset(topic, partition, Offset::Offset(offset))
        .unwrap();
    consumer.commit(&list, CommitMode::Sync).expect("commit");
}

/// `(low, high)` watermarks of a partition, from the broker.
pub(crate) fn watermarks(mock: &Mock, topic: &str, partition: i32) -> (i64, i64) {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", mock.bootstrap_servers())
        .create()
        .unwrap();
    consumer
        .fetch_watermarks(topic, partition, Duration::from_secs(10))
        .unwrap()
}

/// Offsets in the bucket by partition, each with how many objects hold it.
pub(crate) fn stored(store: &MemoryStore) -> BTreeMap<(i32, i64), usize> {
    let mut offsets = BTreeMap::new();
    for (key, body) in store.objects() {
        let records: Vec<serde_json::Value> = serde_json::from_slice(&body)
            .unwrap_or_else(|error| panic!("{key} is not a JSON array: {error}"));
        for record in records {
            let id = (
                record["partition"].as_i64().unwrap() as i32,
                record["offset"].as_i64().unwrap(),
            );
            *offsets.entry(id).or_insert(0) += 1;
        }
    }
    offsets
}

/// Polls `done` every 50 ms until it holds; panics after `timeout`.
pub(crate) async fn wait_until(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A process-wide recorder, so that metrics recorded on the actors' threads can be read.
/// Counters are filtered by topic: tests run in parallel.
pub(crate) fn global_metrics() -> &'static Snapshotter {
    static SNAPSHOTTER: OnceLock<Snapshotter> = OnceLock::new();
    SNAPSHOTTER.get_or_init(|| {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        metrics::set_global_recorder(recorder).expect("the only global recorder");
        snapshotter
    })
}

/// The total of counter `name` over the series whose labels include `labels`, since the first
/// call. Every snapshot resets the recorder's counters, so every snapshot (of any test: they run
/// in parallel on one recorder) goes into one process-wide sum.
pub(crate) fn counter_total(name: &str, labels: &[(&str, &str)]) -> u64 {
    type Series = (String, Vec<(String, String)>);
    static TOTALS: OnceLock<std::sync::Mutex<BTreeMap<Series, u64>>> = OnceLock::new();
    let totals = TOTALS.get_or_init(Default::default);
    let mut totals = totals.lock().unwrap();
    for (key, _, _, value) in global_metrics().snapshot().into_vec() {
        if let DebugValue::Counter(count) = value {
            let key = key.key();
            let mut series: Vec<(String, String)> = key
                .labels()
                .map(|l| (l.key().to_owned(), l.value().to_owned()))
                .collect();
            series.sort();
            *totals.entry((key.name().to_owned(), series)).or_insert(0) += count;
        }
    }
    totals
        .iter()
        .filter(|((series_name, series), _)| {
            series_name == name
                && labels
                    .iter()
                    .all(|(k, v)| series.iter().any(|(sk, sv)| sk == k && sv == v))
        })
        .map(|(_, total)| total)
        .sum()
}

/// Finding 3 of issue 11, and C8 of reliability.md §8.4 (tansu cannot delete records, so it runs
/// here): a committed offset that retention removed must not send the partition
/// to its end (`start_offset = "latest"` is only for a group without a committed offset): every
/// retained record is stored, from the oldest one, and the removed range is counted.
#[actix::test]
async fn an_out_of_range_committed_offset_resumes_at_the_oldest_retained_record() {
    let (topic, name) = ("retained", "retention");
    let mock = cluster(topic, 1, name);
    // The mock broker keeps at most 5 MB per partition: 80 records of 100 kB leave the newest.
    produce(&mock, topic, 0, 80, 100_000);
    let (low, high) = watermarks(&mock, topic, 0);
    assert!(
        low > 0 && high == 80,
        "retention removed the oldest: {low}..{high}"
    );
    commit(&mock, &format!("connect-{name}"), topic, 0, 5);

    let _ = global_metrics();
    let store = Arc::new(MemoryStore::new("bucket"));
    let instance = Instance::start(
        settings(&mock, topic, name, StartOffset::Latest),
        store.clone(),
    )
    .await;
    wait_until(
        "every retained record in the bucket",
        Duration::from_secs(30),
        || stored(&store).len() as i64 == high - low,
    )
    .await;
    let offsets: Vec<i64> = stored(&store).keys().map(|(_, offset)| *offset).collect();
    assert_eq!(
        offsets,
        (low..high).collect::<Vec<_>>(),
        "from the oldest retained record on"
    );
    assert_eq!(
        counter_total(crate::metrics::RETENTION_REMOVED, &[("topic", topic)]),
        (low - 5) as u64,
        "offsets 5 to {} were removed before they were read",
        low - 1
    );
    assert_eq!(instance.stop().await, RunOutcome::Drained);
}

/// `start_offset = "latest"` still applies to a group without a committed offset: the records
/// already in the partition are not read, those produced after the assignment are.
#[actix::test]
async fn latest_applies_to_a_partition_without_a_committed_offset() {
    let (topic, name) = ("fresh", "latest");
    let mock = cluster(topic, 1, name);
    produce(&mock, topic, 0, 20, 10);
    let store = Arc::new(MemoryStore::new("bucket"));
    let instance = Instance::start(
        settings(&mock, topic, name, StartOffset::Latest),
        store.clone(),
    )
    .await;
    // The fetch position is known once the lag is.
    wait_until("the partition's position", Duration::from_secs(30), || {
        instance
            .status
            .partition(0)
            .is_some_and(|p| p.lag.is_some())
    })
    .await;
    produce(&mock, topic, 0, 5, 10);
    wait_until(
        "the new records in the bucket",
        Duration::from_secs(30),
        || stored(&store).len() == 5,
    )
    .await;
    let offsets: Vec<i64> = stored(&store).keys().map(|(_, offset)| *offset).collect();
    assert_eq!(offsets, (20..25).collect::<Vec<_>>());
    assert_eq!(instance.stop().await, RunOutcome::Drained);
}

fn state(instance: &Instance, partition: i32) -> Option<crate::error::State> {
    instance.status.partition(partition).and_then(|p| p.state)
}

/// Finding 5 of issue 11: librdkafka keeps an application pause across assignments. A partition
/// paused (by an operator, or held FAILED by the policy) and then assigned back to the same
/// member by a rebalance shows RUNNING: it must also fetch again.
#[actix::test]
async fn a_paused_partition_assigned_back_by_a_rebalance_fetches_again() {
    use crate::error::State;
    use crate::messages::{PartitionAction, PartitionCommand};
    let (topic, name) = ("paused", "reassigned");
    let mock = cluster(topic, 1, name);
    let store = Arc::new(MemoryStore::new("bucket"));
    let first = Instance::start(
        settings(&mock, topic, name, StartOffset::Earliest),
        store.clone(),
    )
    .await;
    wait_until("the assignment", Duration::from_secs(30), || {
        first.assigned() == [0]
    })
    .await;
    first
        .commands
        .send(PartitionCommand {
            partition: 0,
            action: PartitionAction::Pause,
        })
        .await
        .unwrap()
        .expect("paused");
    assert_eq!(state(&first, 0), Some(State::Paused));

    // A second member joins (the eager protocol revokes everything) and leaves again.
    let second = Instance::start(
        settings(&mock, topic, name, StartOffset::Earliest),
        store.clone(),
    )
    .await;
    wait_until("the rebalance", Duration::from_secs(30), || {
        state(&first, 0) == Some(State::Running) || second.assigned() == [0]
    })
    .await;
    assert_eq!(second.stop().await, RunOutcome::Drained);
    wait_until(
        "partition 0 back on the first member",
        Duration::from_secs(30),
        || state(&first, 0) == Some(State::Running),
    )
    .await;

    produce(&mock, topic, 0, 20, 10);
    wait_until("the records in the bucket", Duration::from_secs(20), || {
        stored(&store).len() == 20
    })
    .await;
    assert_eq!(first.stop().await, RunOutcome::Drained);
}

/// Finding 6 of issue 11 (zombie fencing): when the member loses its assignment (its session
/// expired, or the coordinator fenced its generation), another member may own the partition
/// already. Nothing buffered for it is sealed, uploaded or committed by this member any more:
/// the records are read again by the partition's next owner (here the same member, after it
/// rejoined) and stored exactly once.
#[actix::test]
async fn a_lost_assignment_is_abandoned_not_drained() {
    use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
    let (topic, name) = ("lost", "lost");
    let mock = cluster(topic, 1, name);
    let _ = global_metrics();
    let store = Arc::new(MemoryStore::new("bucket"));
    let mut config = settings(&mock, topic, name, StartOffset::Earliest);
    config.batching.max_records = 1000;
    config.batching.max_interval = Duration::from_secs(4);
    config.batching.seal_when_caught_up = false;
    let instance = Instance::start(config, store.clone()).await;
    wait_until("the assignment", Duration::from_secs(30), || {
        instance.assigned() == [0]
    })
    .await;
    produce(&mock, topic, 0, 5, 10);
    wait_until("the records read", Duration::from_secs(10), || {
        counter_total(crate::metrics::CONSUMED_RECORDS, &[("topic", topic)]) == 5
    })
    .await;

    // The coordinator answers the next heartbeat with ILLEGAL_GENERATION: the assignment is lost.
    mock.request_errors(
        RDKafkaApiKey::Heartbeat,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_ILLEGAL_GENERATION],
    );
    wait_until("the records in the bucket", Duration::from_secs(30), || {
        stored(&store).len() == 5
    })
    .await;
    assert_eq!(instance.stop().await, RunOutcome::Drained);
    assert!(
        stored(&store).values().all(|&copies| copies == 1),
        "{:?}",
        stored(&store)
    );
    let seals = |reason: &str| {
        counter_total(
            crate::metrics::SEALS,
            &[("topic", topic), ("reason", reason)],
        )
    };
    assert_eq!(
        seals("rebalance"),
        0,
        "the lost assignment's object was not sealed by a drain"
    );
    assert_eq!(
        watermarks(&mock, topic, 0).1,
        5,
        "and nothing else was produced"
    );
}
