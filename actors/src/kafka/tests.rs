//! The Kafka side against librdkafka's in-process mock cluster (no broker needed): faults a real
//! broker cannot be made to produce on demand (request errors, retention, coordinator moves).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};

use super::driver::commit_stored;
use super::*;
use crate::settings::{ClientProperties, SourceSettings, StartOffset};
use crate::status::StatusBoard;

/// A one-broker mock cluster with `topic` (`partitions` partitions).
pub(crate) fn mock_cluster(
    topic: &str,
    partitions: i32,
) -> MockCluster<'static, DefaultProducerContext> {
    let cluster = MockCluster::new(1).expect("mock cluster");
    cluster.create_topic(topic, partitions, 1).expect("topic");
    cluster
}

/// Source settings for a mock cluster, with the short timeouts the tests need.
pub(crate) fn source(
    bootstrap: &str,
    topic: &str,
    group: &str,
    start: StartOffset,
) -> SourceSettings {
    let properties = [
        ("session.timeout.ms", "6000"),
        ("heartbeat.interval.ms", "300"),
        ("fetch.wait.max.ms", "10"),
        ("topic.metadata.refresh.interval.ms", "500"),
    ];
    SourceSettings {
        bootstrap_servers: bootstrap.to_owned(),
        topic: topic.to_owned(),
        group_id: group.to_owned(),
        start_offset: start,
        // Eager: these tests revoke and assign whole assignments.
        assignment: crate::settings::AssignmentStrategy::Range,
        concurrency: 1,
        client_properties: ClientProperties(
            properties
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        ),
    }
}

/// Polls `consumer` (serving its callbacks on this thread) until `done` or `timeout`.
pub(crate) fn poll_until(
    consumer: &SinkConsumer,
    timeout: Duration,
    mut done: impl FnMut() -> bool,
) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        let _ = consumer.poll(Duration::from_millis(50));
    }
    done()
}

/// Sums a counter's increments across snapshots (a debugging snapshot resets counters).
pub(crate) struct CounterTotal<'a> {
    snapshotter: &'a Snapshotter,
    name: &'static str,
    total: std::cell::Cell<u64>,
}

impl<'a> CounterTotal<'a> {
    pub(crate) fn new(snapshotter: &'a Snapshotter, name: &'static str) -> Self {
        CounterTotal {
            snapshotter,
            name,
            total: std::cell::Cell::new(0),
        }
    }

    pub(crate) fn get(&self) -> u64 {
        let added: u64 = self
            .snapshotter
            .snapshot()
            .into_vec()
            .into_iter()
            .filter(|(key, ..)| key.key().name() == self.name)
            .map(|(_, _, _, value)| match value {
                DebugValue::Counter(count) => count,
                other => panic!("{} is not a counter: {other:?}", self.name),
            })
            .sum();
        self.total.set(self.total.get() + added);
        self.total.get()
    }
}

/// Finding 10 of issue 11: a commit the coordinator refuses is reported (log line with
/// `KAFKA_COMMIT`, counted in `kafka_oss_sink_commit_failures_total`), for the driver's
/// periodic asynchronous commits as well as for the synchronous one of a revocation.
#[test]
fn refused_offset_commits_are_logged_and_counted() {
    let topic = "commits";
    let cluster = mock_cluster(topic, 1);
    let consumer = create_consumer(
        &source(
            &cluster.bootstrap_servers(),
            topic,
            "g-commit",
            StartOffset::Earliest,
        ),
        Duration::from_secs(5),
        Duration::from_secs(5),
        StatusBoard::new(topic),
    )
    .expect("consumer");
    consumer.subscribe(&[topic]).unwrap();
    assert!(
        poll_until(&consumer, Duration::from_secs(20), || consumer
            .assignment()
            .is_ok_and(|list| list.count() == 1)),
        "partition assigned"
    );
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let failures = CounterTotal::new(&snapshotter, crate::metrics::COMMIT_FAILURES);
    metrics::with_local_recorder(&recorder, || {
        cluster.request_errors(
            RDKafkaApiKey::OffsetCommit,
            &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED],
        );
        OffsetStore::store(&*consumer, topic, 0, 5).unwrap();
        commit_stored(&consumer, CommitMode::Async);
        assert!(
            poll_until(&consumer, Duration::from_secs(5), || failures.get() == 1),
            "the failed asynchronous commit is counted once"
        );

        cluster.request_errors(
            RDKafkaApiKey::OffsetCommit,
            &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED],
        );
        commit_stored(&consumer, CommitMode::Sync);
        assert!(
            poll_until(&consumer, Duration::from_secs(5), || failures.get() == 2),
            "the failed synchronous commit is counted once"
        );

        // Once the coordinator accepts commits again, the stored offset goes through.
        commit_stored(&consumer, CommitMode::Sync);
        let _ = consumer.poll(Duration::from_millis(200));
        assert_eq!(failures.get(), 2);
    });
    let mut list = rdkafka::TopicPartitionList::new();
    list.add_partition(topic, 0);
    let committed = consumer
        .committed_offsets(list, Duration::from_secs(5))
        .unwrap();
    assert_eq!(
        committed.elements()[0].offset(),
        rdkafka::Offset::Offset(5),
        "committed once the coordinator accepts it"
    );
}

/// Finding 8 of issue 11: fetching starts as soon as the partitions are assigned (at once, since
/// the assignment carries the committed offsets), so their queues are split off before the
/// assignment. A record on the consumer queue would stop the connector (`KAFKA_QUEUE_LEAK`);
/// none arrives, even while the callback lingers after assigning.
#[test]
fn no_record_reaches_the_consumer_queue_when_fetching_starts_at_once() {
    use rdkafka::producer::{BaseRecord, Producer, ThreadedProducer};
    let topic = "splits";
    let cluster = mock_cluster(topic, 4);
    let producer: ThreadedProducer<DefaultProducerContext> = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", cluster.bootstrap_servers())
        .create()
        .unwrap();
    for partition in 0..4 {
        for index in 0..20 {
            let value = format!("v{index}");
            producer
                .send(
                    BaseRecord::<str, str>::to(topic)
                        .partition(partition)
                        .payload(&value),
                )
                .unwrap();
        }
    }
    producer.flush(Duration::from_secs(10)).unwrap();
    let group = "g-splits";
    {
        let committer: rdkafka::consumer::BaseConsumer = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", cluster.bootstrap_servers())
            .set("group.id", group)
            .create()
            .unwrap();
        let mut list = rdkafka::TopicPartitionList::new();
        for partition in 0..4 {
            list.add_partition_offset(topic, partition, rdkafka::Offset::Offset(3))
                .unwrap();
        }
        committer.commit(&list, CommitMode::Sync).unwrap();
    }

    let consumer = create_consumer(
        &source(
            &cluster.bootstrap_servers(),
            topic,
            group,
            StartOffset::Earliest,
        ),
        Duration::from_secs(5),
        Duration::from_secs(5),
        StatusBoard::new(topic),
    )
    .expect("consumer");
    *consumer.context().pause_after_assign.lock().unwrap() = Duration::from_millis(500);
    consumer.subscribe(&[topic]).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut assigned_at = None;
    while assigned_at.is_none_or(|at: Instant| at.elapsed() < Duration::from_secs(2)) {
        assert!(Instant::now() < deadline, "partitions assigned");
        if let Some(Ok(message)) = consumer.poll(Duration::from_millis(50)) {
            panic!(
                "record of partition {} offset {} on the consumer queue",
                rdkafka::Message::partition(&message),
                rdkafka::Message::offset(&message)
            );
        }
        if assigned_at.is_none() && consumer.assignment().is_ok_and(|list| list.count() == 4) {
            assigned_at = Some(Instant::now());
        }
    }
}

/// Stands in for the supervisor: keeps the assigned queues, acknowledges revocations at once.
#[derive(Default)]
struct Capture {
    assigned: Arc<Mutex<Vec<AssignedPartition>>>,
    revocations: Arc<Mutex<usize>>,
}

impl actix::Actor for Capture {
    type Context = actix::Context<Self>;
}

impl actix::Handler<KafkaEvent> for Capture {
    type Result = ();

    fn handle(&mut self, event: KafkaEvent, _: &mut Self::Context) {
        match event {
            KafkaEvent::Assigned(partitions) => self.assigned.lock().unwrap().extend(partitions),
            KafkaEvent::Revoked { ack, .. } => {
                *self.revocations.lock().unwrap() += 1;
                let _ = ack.send(());
            }
            KafkaEvent::Lost { .. } => {}
        }
    }
}

async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Finding 2 of issue 11: every split of a partition's queue is a handle on librdkafka's one
/// fetch queue of the partition. A partition consumer of an earlier assignment that still holds
/// its queue (a drain that timed out left it blocked on its batcher, then its safety tick woke
/// it) must read nothing once the partition is assigned again: the records belong to the new
/// assignment's consumer, and taking them would leave a gap the new batcher commits over.
#[actix::test]
async fn a_queue_of_an_ended_assignment_reads_nothing_of_the_next_one() {
    use actix::Actor;
    let topic = "reassigned";
    let cluster = mock_cluster(topic, 1);
    let consumer = create_consumer(
        &source(
            &cluster.bootstrap_servers(),
            topic,
            "g-reassigned",
            StartOffset::Earliest,
        ),
        Duration::from_secs(5),
        Duration::from_secs(5),
        StatusBoard::new(topic),
    )
    .expect("consumer");
    let capture = Capture::default();
    let (assigned, revocations) = (capture.assigned.clone(), capture.revocations.clone());
    subscribe(&consumer, capture.start().recipient()).unwrap();
    let driver = Driver::spawn(consumer.clone(), |reason| panic!("{reason}"));

    wait_for("the first assignment", || {
        assigned.lock().unwrap().len() == 1
    })
    .await;
    let first = assigned.lock().unwrap().pop().unwrap().queue;
    // The member leaves and joins again: partition 0 is revoked, then assigned to it again.
    consumer.unsubscribe();
    wait_for("the revocation", || *revocations.lock().unwrap() == 1).await;
    consumer.subscribe(&[topic]).unwrap();
    wait_for("the second assignment", || {
        assigned.lock().unwrap().len() == 1
    })
    .await;
    let second = assigned.lock().unwrap().pop().unwrap().queue;
    assert!(!first.assignment().is_current() && second.assignment().is_current());

    {
        use rdkafka::producer::{BaseRecord, Producer, ThreadedProducer};
        let producer: ThreadedProducer<DefaultProducerContext> = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", cluster.bootstrap_servers())
            .create()
            .unwrap();
        for index in 0..10 {
            let value = format!("v{index}");
            producer
                .send(
                    BaseRecord::<str, str>::to(topic)
                        .partition(0)
                        .payload(&value),
                )
                .unwrap();
        }
        producer.flush(Duration::from_secs(10)).unwrap();
    }
    let (mut stolen, mut read) = (Vec::new(), Vec::new());
    wait_for("the records on the new assignment's queue", || {
        // The old queue reads first: before the fence it took the records.
        first.read(256, |record| stolen.push(record.offset), |_, _| {});
        second.read(256, |record| read.push(record.offset), |_, _| {});
        read.len() + stolen.len() >= 10
    })
    .await;
    assert_eq!(
        stolen,
        Vec::<i64>::new(),
        "read by the ended assignment's queue"
    );
    assert_eq!(read, (0..10).collect::<Vec<_>>());
    drop((first, second));
    tokio::task::spawn_blocking(move || driver.shutdown())
        .await
        .unwrap();
}
