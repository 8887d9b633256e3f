//! Kafka broker faults end to end (../shared/reliability.md §8.4): the broker process stopped
//! under load and started again (C1), restarted right after an upload, before its offsets are
//! committed (C2), and a dead-letter topic that does not take records under `log` (C5).
//!
//! Each test proves exactly-once twice: `kafka-oss-sink reconcile` must report the copy clean
//! (exit 0) with every partition committed to its end (or, for a stopped partition, to the
//! record it stopped at), and the bucket read back must hold every record of the topic exactly
//! once, byte for byte (or the record is in the dead-letter topic, never in both).
//!
//! C1 and C2 need a broker that keeps its data across a restart: tansu with sqlite storage
//! ([`Stack::start_sqlite`]). Every record is produced one per batch (tests/README.md, "Broker
//! quirks"). Waits are hooks of the S3 proxy, log lines and polls with deadlines; the only
//! timed wait is C1's outage itself.

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use serde_json::Value;
use support::s3_proxy::{HoldAt, Operation, Outcome, S3Proxy};
use support::{
    add_source_properties, set_sink_endpoint, unique, Connector, Consumed, Stack, TestRecord,
    ACCESS_KEY_ID,
};

/// How long C1 keeps the broker stopped.
const OUTAGE: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------------------------------------
// Checks shared by the tests.

fn wait_until(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Records `k<i>` / `v<i> ...` for each `i` of `range`, round robin over `partitions`.
fn numbered(partitions: i32, range: std::ops::Range<usize>) -> Vec<TestRecord> {
    range
        .map(|i| {
            (
                i as i32 % partitions,
                Some(format!("k{i}").into_bytes()),
                Some(format!("v{i} é \"quoted\"").into_bytes()),
            )
        })
        .collect()
}

/// `(partition, offset)` of every record in the bucket, with its JSON; panics on a record stored
/// twice (in two objects or twice in one).
fn bucket_records(stack: &Stack, bucket: &str, topic: &str) -> BTreeMap<(i32, i64), Value> {
    let mut out = BTreeMap::new();
    for (key, records) in stack.objects(bucket, &format!("e2e/{topic}/")) {
        for record in records {
            let id = (
                record["partition"].as_i64().unwrap() as i32,
                record["offset"].as_i64().unwrap(),
            );
            assert!(
                out.insert(id, record).is_none(),
                "{id:?} stored twice (again in object {key})"
            );
        }
    }
    out
}

/// Records of an error topic that came from `topic`, by their original `(partition, offset)`.
fn error_records(stack: &Stack, error_topic: &str, topic: &str) -> BTreeMap<(i32, i64), Consumed> {
    let mut out = BTreeMap::new();
    for record in stack.read_topic(error_topic) {
        if record.header("__connect.errors.topic").as_deref() != Some(topic) {
            continue;
        }
        let id = (
            record
                .header("__connect.errors.partition")
                .unwrap()
                .parse()
                .unwrap(),
            record
                .header("__connect.errors.offset")
                .unwrap()
                .parse()
                .unwrap(),
        );
        out.insert(id, record);
    }
    out
}

/// Runs `kafka-oss-sink reconcile --config F --json`; asserts exit 0 (clean) and returns the
/// report.
fn reconcile_clean(stack: &Stack, config: &Path) -> Value {
    let output = Command::new(env!("CARGO_BIN_EXE_kafka-oss-sink"))
        .args(["reconcile", "--config"])
        .arg(config)
        .arg("--json")
        .env("OSS_ACCESS_KEY_ID", ACCESS_KEY_ID)
        .env("OSS_ACCESS_KEY_SECRET", &stack.secret)
        .output()
        .expect("running reconcile");
    let (stdout, stderr) = (
        String::from_utf8(output.stdout).unwrap(),
        String::from_utf8(output.stderr).unwrap(),
    );
    assert!(!stdout.contains(&stack.secret) && !stderr.contains(&stack.secret));
    assert_eq!(
        output.status.code(),
        Some(0),
        "reconcile finds the copy not clean:\n{stdout}\n{stderr}"
    );
    let report: Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|error| panic!("not JSON ({error}):\n{stdout}\n{stderr}"));
    assert_eq!(report["clean"], true, "{report:#}");
    report
}

/// The reconcile report of `partition`.
fn partition_report(report: &Value, partition: i32) -> &Value {
    report["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["partition"] == partition)
        .unwrap_or_else(|| panic!("no partition {partition} in {report:#}"))
}

/// Exactly-once for a topic the connector copied and committed to its end: reconcile is clean
/// and every partition committed to its end; every record of the topic (read back from the
/// broker) is either in the bucket once, with its key and value, or (only those in `routed`)
/// in the dead-letter topic and not in the bucket; the bucket holds nothing else.
fn assert_exactly_once(
    stack: &Stack,
    config: &Path,
    bucket: &str,
    topic: &str,
    routed: &BTreeMap<(i32, i64), Consumed>,
) {
    let report = reconcile_clean(stack, config);
    let records = stack.read_topic(topic);
    let stored = bucket_records(stack, bucket, topic);
    let mut ends: BTreeMap<i32, i64> = BTreeMap::new();
    for record in &records {
        let end = ends.entry(record.partition).or_default();
        *end = (*end).max(record.offset + 1);
        let id = (record.partition, record.offset);
        if let Some(dead) = routed.get(&id) {
            assert!(
                !stored.contains_key(&id),
                "{id:?} is in the bucket and the dead-letter topic"
            );
            assert_eq!(
                (&dead.key, &dead.value),
                (&record.key, &record.value),
                "{id:?}"
            );
            continue;
        }
        let json = stored
            .get(&id)
            .unwrap_or_else(|| panic!("{id:?} is in neither the bucket nor the dead-letter topic"));
        assert_eq!(
            json["key"].as_str().map(str::as_bytes),
            record.key.as_deref(),
            "{id:?}"
        );
        assert_eq!(
            json["value"].as_str().map(str::as_bytes),
            record.value.as_deref(),
            "{id:?}"
        );
    }
    assert_eq!(
        stored.len() + routed.len(),
        records.len(),
        "the bucket or the dead-letter topic holds records the topic does not"
    );
    for (partition, end) in ends {
        let p = partition_report(&report, partition);
        let routed_here = routed.keys().filter(|(p, _)| *p == partition).count() as i64;
        assert_eq!(p["committed"], end, "partition {partition}: {report:#}");
        assert_eq!(
            p["stored"],
            end - routed_here,
            "partition {partition}: {report:#}"
        );
        assert_eq!(
            p["routed"], routed_here,
            "partition {partition}: {report:#}"
        );
    }
}

/// The data objects (under `e2e/{topic}/`) the proxy saw stored: their keys, in order, one per
/// 2xx PutObject answered to the connector.
fn stored_keys(proxy: &S3Proxy, topic: &str) -> Vec<String> {
    let folder = format!("e2e/{topic}/");
    proxy
        .requests_of(Operation::PutObject)
        .into_iter()
        .filter(|r| {
            r.outcome == Outcome::Sent
                && matches!(r.status, Some(200..=299))
                && r.key.as_deref().is_some_and(|k| k.starts_with(&folder))
        })
        .filter_map(|r| r.key)
        .collect()
}

/// `/readyz` until it answers `wanted`; returns the body. Panics if the connector exits.
fn wait_ready(connector: &mut Connector, wanted: u16, timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = connector.exited() {
            panic!("connector exited ({status}):\n{}", connector.logs());
        }
        let (status, body) = connector.admin_get("/readyz");
        if status == wanted {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "/readyz never answered {wanted} in {timeout:?}; last: {status} {body}\n{}",
            connector.logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

// ---------------------------------------------------------------------------------------------
// A producer that keeps going while the broker is away.

/// Produces `k<i>`/`v<i>` round robin over the partitions at a steady rate from a thread, one
/// record per batch, until stopped. Records produced while the broker is down wait in
/// librdkafka's queue. Delivery reports are not kept: the topic read back afterwards is the
/// truth the tests compare with (a produce retried across the restart may be there twice,
/// which is the topic's business, not the connector's).
struct Load {
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicUsize>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Load {
    fn start(stack: &Stack, topic: &str, partitions: i32, per_second: u32) -> Load {
        let producer: BaseProducer = ClientConfig::new()
            .set("bootstrap.servers", stack.bootstrap())
            .set("batch.num.messages", "1")
            .set("linger.ms", "0")
            .set("acks", "all")
            .set("message.timeout.ms", "120000")
            .set("reconnect.backoff.max.ms", "1000")
            .create()
            .expect("producer");
        let (stop, sent) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicUsize::new(0)),
        );
        let topic = topic.to_owned();
        let thread = {
            let (stop, sent) = (stop.clone(), sent.clone());
            std::thread::spawn(move || {
                let start = Instant::now();
                let mut index = 0usize;
                while !stop.load(Ordering::SeqCst) {
                    let due = (start.elapsed().as_secs_f64() * f64::from(per_second)) as usize;
                    while index < due {
                        let (key, value) = (format!("load{index}"), format!("load value {index}"));
                        let record = BaseRecord::<str, str>::to(&topic)
                            .partition(index as i32 % partitions)
                            .key(&key)
                            .payload(&value);
                        match producer.send(record) {
                            Ok(()) => {
                                index += 1;
                                sent.store(index, Ordering::SeqCst);
                            }
                            Err(_) => break, // queue full: poll, then try again
                        }
                    }
                    producer.poll(Duration::from_millis(10));
                }
                producer.flush(Duration::from_secs(60)).expect("flush");
            })
        };
        Load {
            stop,
            sent,
            thread: Some(thread),
        }
    }

    fn sent(&self) -> usize {
        self.sent.load(Ordering::SeqCst)
    }

    fn wait_sent(&self, n: usize, timeout: Duration) {
        wait_until(&format!("{n} records sent"), timeout, || self.sent() >= n);
    }

    /// Stops producing and waits until librdkafka's queue is empty.
    fn finish(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.take().unwrap().join().unwrap();
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// C1

/// C1: the broker process is stopped for 20 s while the connector drains a backlog and records
/// keep being produced, then started again on the same port with the same (sqlite) data. The
/// connector keeps running throughout (no crash loop), `/readyz` and `/status` say the broker is
/// unreachable meanwhile, it is ready again after the restart, and every record of the topic is
/// in the bucket exactly once.
#[test]
fn c1_broker_stopped_under_load_and_restarted_loses_and_duplicates_nothing() {
    let mut stack = Stack::start_sqlite();
    let (topic, bucket, name) = (unique("c1"), "c1-bucket", unique("c1"));
    stack.create_topic(&topic, 3);
    stack.create_bucket(bucket);
    stack.produce_one_per_batch(&topic, &numbered(3, 0..300));
    let proxy = stack.s3_proxy();
    let config = stack.config(
        &name,
        &topic,
        bucket,
        "max_records = 20\nmax_interval_ms = 300",
        "",
    );
    set_sink_endpoint(&config, &proxy.endpoint());
    // librdkafka's default backoff grows to 10 s between reconnection attempts; 1 s keeps the
    // test short without changing what is tested.
    add_source_properties(&config, "\"reconnect.backoff.max.ms\" = \"1000\"");
    let load = Load::start(&stack, &topic, 3, 40);
    let mut connector = stack.connector(&config, None);
    connector.wait_admin(Duration::from_secs(30));
    wait_until("4 objects stored", Duration::from_secs(60), || {
        stored_keys(&proxy, &topic).len() >= 4
    });

    stack.stop_broker();
    let stopped = Instant::now();
    let body = wait_ready(&mut connector, 503, Duration::from_secs(15));
    let reasons: Value = serde_json::from_str(&body).unwrap();
    assert!(
        reasons["reasons"]
            .as_array()
            .unwrap()
            .iter()
            .any(|reason| reason.as_str().unwrap().contains("broker")),
        "/readyz names the broker: {body}"
    );
    let (_, status) = connector.admin_get("/status");
    let status: Value = serde_json::from_str(&status).unwrap();
    assert_eq!(status["broker"]["reachable"], false, "{status:#}");
    while stopped.elapsed() < OUTAGE {
        if let Some(exit) = connector.exited() {
            panic!(
                "the connector exited while the broker was away ({exit}):\n{}",
                connector.logs()
            );
        }
        assert_eq!(
            connector.admin_get("/healthz").0,
            200,
            "alive while the broker is away"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    let sent_before_restart = load.sent();

    stack.start_broker();
    wait_ready(&mut connector, 200, Duration::from_secs(45));
    let (_, status) = connector.admin_get("/status");
    let status: Value = serde_json::from_str(&status).unwrap();
    assert_eq!(status["broker"]["reachable"], true, "{status:#}");
    // Records go on arriving after the restart.
    load.wait_sent(sent_before_restart + 120, Duration::from_secs(10));
    load.finish();
    let total = stack.read_topic(&topic).len();
    assert!(
        total >= 300 + sent_before_restart,
        "{total} records in the topic"
    );
    let objects = stack.wait_for_records(
        bucket,
        &format!("e2e/{topic}/"),
        total,
        Duration::from_secs(45),
    );
    let found: usize = objects.iter().map(|(_, records)| records.len()).sum();
    assert_eq!(found, total, "every record stored:\n{}", connector.logs());
    connector.stop();

    assert_exactly_once(&stack, &config, bucket, &topic, &BTreeMap::new());
    let keys = stored_keys(&proxy, &topic);
    let mut unique_keys = keys.clone();
    unique_keys.sort();
    unique_keys.dedup();
    assert_eq!(
        keys.len(),
        unique_keys.len(),
        "an object was uploaded twice: {keys:#?}"
    );
}

// ---------------------------------------------------------------------------------------------
// C2

/// Holds the next `nth` data PUT after s3s-fs stored the object, stops the broker, then lets the
/// 200 reach the connector (its offsets cannot be committed now). Returns the object's key.
fn stop_broker_in_commit_window(
    stack: &mut Stack,
    proxy: &S3Proxy,
    nth: u32,
    produce: impl FnOnce(&Stack),
) -> String {
    let hold = proxy.hold_nth(Operation::PutObject, nth, HoldAt::BeforeResponse);
    produce(stack);
    let held = hold.wait_held(Duration::from_secs(60));
    let key = held.key.clone().unwrap();
    stack.stop_broker();
    hold.release();
    let answered = proxy.wait_done(held.id, Duration::from_secs(10));
    assert_eq!(
        (answered.outcome, answered.status),
        (Outcome::Sent, Some(200)),
        "the connector heard the 200 of {key}"
    );
    key
}

/// Whether a log line says recovery by listing found `key` in the bucket and skipped its range.
fn recovered(connector: &Connector, key: &str) -> bool {
    connector
        .logs()
        .lines()
        .any(|line| line.contains("offsets already in the bucket") && line.contains(key))
}

/// C2: the broker goes away right after an object is stored, before its offsets can be
/// committed (the PUT is held after s3s-fs stored it, the broker is stopped, then the 200 is let
/// through). Three times:
/// 1. the broker is back at once: the member keeps its partitions, the commit goes through;
/// 2. it is back only after the member's session timed out and its partitions were revoked
///    (the drain's commit fails); on tansu the commit still reaches the restarted broker;
/// 3. the connector is killed while the broker is away, so the commit is lost for good: the
///    next connector starts from the old committed offset, and recovery by listing must find
///    the object and not write its records again.
///
/// Each object is uploaded once, and the topic ends up in the bucket exactly once.
#[test]
fn c2_broker_restarted_right_after_a_put_before_its_commit() {
    let mut stack = Stack::start_sqlite();
    let (topic, bucket, name) = (unique("c2"), "c2-bucket", unique("c2"));
    stack.create_topic(&topic, 2);
    stack.create_bucket(bucket);
    let proxy = stack.s3_proxy();
    let config = stack.config(
        &name,
        &topic,
        bucket,
        "max_records = 25\nmax_interval_ms = 300",
        "",
    );
    set_sink_endpoint(&config, &proxy.endpoint());
    add_source_properties(&config, "\"reconnect.backoff.max.ms\" = \"1000\"");
    let mut connector = stack.connector(&config, None);
    // The start-up probe's PUTs are done once partitions are assigned (the topic is empty).
    connector.wait_for_log("partitions assigned", Duration::from_secs(30));
    let folder = format!("e2e/{topic}/");

    // 1. Back at once.
    let first = stop_broker_in_commit_window(&mut stack, &proxy, 3, |stack| {
        stack.produce_one_per_batch(&topic, &numbered(2, 0..200));
    });
    assert!(first.starts_with(&folder), "{first}");
    stack.start_broker();
    wait_ready(&mut connector, 200, Duration::from_secs(30));

    // 2. Back after the partitions were taken away (lost: the session expired while the broker
    // was down, so nothing of them is committed; their next owner, this member again, recovers
    // by listing).
    let taken = |logs: &str| {
        logs.matches("partitions revoked").count() + logs.matches("partitions lost").count()
    };
    let revoked = taken(&connector.logs());
    let second = stop_broker_in_commit_window(&mut stack, &proxy, 2, |stack| {
        stack.produce_one_per_batch(&topic, &numbered(2, 200..400));
    });
    assert!(second.starts_with(&folder), "{second}");
    wait_until(
        "the partitions revoked or lost",
        Duration::from_secs(30),
        || taken(&connector.logs()) > revoked,
    );
    stack.start_broker();
    wait_until(
        "the records of the second round",
        Duration::from_secs(45),
        || stored_records(&stack, bucket, &folder) == 400,
    );

    // 3. The connector killed while the broker is away.
    let third = stop_broker_in_commit_window(&mut stack, &proxy, 2, |stack| {
        stack.produce_one_per_batch(&topic, &numbered(2, 400..500));
    });
    assert!(third.starts_with(&folder), "{third}");
    drop(connector); // kill -9
    stack.start_broker();
    let mut connector = stack.connector(&config, None);
    wait_until(
        "recovery by listing to find the object stored before the crash",
        Duration::from_secs(45),
        || recovered(&connector, &third),
    );
    stack.produce_one_per_batch(&topic, &numbered(2, 500..600));
    let objects = stack.wait_for_records(bucket, &folder, 600, Duration::from_secs(45));
    let found: usize = objects.iter().map(|(_, records)| records.len()).sum();
    assert_eq!(found, 600, "every record stored:\n{}", connector.logs());
    connector.stop();

    assert_exactly_once(&stack, &config, bucket, &topic, &BTreeMap::new());
    let mut keys = stored_keys(&proxy, &topic);
    assert!(keys.contains(&first) && keys.contains(&second) && keys.contains(&third));
    let uploads = keys.len();
    keys.sort();
    keys.dedup();
    assert_eq!(
        keys.len(),
        uploads,
        "an object was uploaded twice: {keys:#?}"
    );
}

/// How many records the objects under `folder` hold.
fn stored_records(stack: &Stack, bucket: &str, folder: &str) -> usize {
    stack
        .objects(bucket, folder)
        .iter()
        .map(|(_, records)| records.len())
        .sum()
}

// ---------------------------------------------------------------------------------------------
// C5

/// Deletes a topic through the admin API and waits until the broker no longer lists it.
fn delete_topic(stack: &Stack, topic: &str) {
    use rdkafka::admin::{AdminClient, AdminOptions};
    let admin: AdminClient<rdkafka::client::DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", stack.bootstrap())
        .create()
        .unwrap();
    stack.block_on(async {
        let results = admin
            .delete_topics(&[topic], &AdminOptions::new())
            .await
            .unwrap();
        results.into_iter().next().unwrap().expect("deleting topic");
    });
    wait_until(&format!("{topic} deleted"), Duration::from_secs(30), || {
        stack.topic_partitions(topic).is_none()
    });
}

/// `(first, last)` of the objects of `partition` in the keys the connector sent a PUT for,
/// whatever became of the PUT.
fn put_ranges(proxy: &S3Proxy, topic: &str, partition: i32) -> Vec<(i64, i64)> {
    let folder = format!("e2e/{topic}/{partition}/");
    proxy
        .requests_of(Operation::PutObject)
        .into_iter()
        .filter_map(|r| r.key)
        .filter(|key| key.starts_with(&folder))
        .map(|key| actors::object_key::parse_offsets(&key).unwrap())
        .collect()
}

/// C5: under `log`, the dead-letter topic does not take records (deleted; the error producer
/// does not create topics, and the broker does not either) while records that cannot be
/// converted (invalid UTF-8) arrive. The partition with the bad record stops at it with
/// KAFKA_ERROR_TOPIC and commits nothing at or past it; no object covering it is ever uploaded
/// (the records before it in the same object wait for the acknowledgement and are dropped with
/// the object when it is refused); the other partition keeps going. Once the topic is back and
/// the connector restarted, every record is in the bucket or the dead-letter topic, exactly once.
#[test]
fn c5_dead_letter_topic_unwritable_stops_the_partition_at_the_bad_record_and_skips_nothing() {
    let stack = Stack::start();
    let (topic, bucket, name) = (unique("c5"), "c5-bucket", unique("c5"));
    let dead_letter = format!("{name}-dead");
    stack.create_topic(&topic, 2);
    stack.create_bucket(bucket);
    let proxy = stack.s3_proxy();
    let config = stack.config(
        &name,
        &topic,
        bucket,
        "max_records = 10\nmax_interval_ms = 300",
        &format!(
            "[failure]\npolicy = \"log\"\n\n[resources]\ndead_letter_topic = \"{dead_letter}\"\nabnormal_topic = \"{name}-abnormal\""
        ),
    );
    set_sink_endpoint(&config, &proxy.endpoint());
    // A record for a topic the producer does not know fails after this long (30 s by default),
    // and the producer must not create the topic itself.
    add_source_properties(&config, "\"topic.metadata.propagation.max.ms\" = \"3000\"");
    let mut connector = stack.connector(&config, None);
    connector.wait_for_log("partitions assigned", Duration::from_secs(30));
    assert!(stack.topic_partitions(&dead_letter).is_some());
    stack.produce_one_per_batch(&topic, &numbered(2, 0..40));
    wait_until("the first records stored", Duration::from_secs(30), || {
        stored_records(&stack, bucket, &format!("e2e/{topic}/")) == 40
    });

    delete_topic(&stack, &dead_letter);
    // Partition 0: offsets 20..=34, the bad one at 25; partition 1: 20..=34, all good.
    let bad_offset = 25;
    let records: Vec<TestRecord> = (40..70)
        .map(|i| {
            let value = if i == 40 + 2 * (bad_offset as usize - 20) {
                b"bad \xff value".to_vec()
            } else {
                format!("v{i}").into_bytes()
            };
            (
                (i % 2) as i32,
                Some(format!("k{i}").into_bytes()),
                Some(value),
            )
        })
        .collect();
    let produced = stack.produce_one_per_batch(&topic, &records);
    assert!(produced[&(0, bad_offset)].value.as_deref() == Some(&b"bad \xff value"[..]));
    // Usually within seconds (the producer learns the topic is gone and gives up after
    // topic.metadata.propagation.max.ms); but a record sent while the producer still knew the
    // topic is retried until the error producer's message.timeout.ms (120 s) on tansu.
    connector.wait_for_log("KAFKA_ERROR_TOPIC", Duration::from_secs(140));

    // Partition 0 is held at the bad record; partition 1 goes on.
    let (_, status) = connector.admin_get("/status");
    let status: Value = serde_json::from_str(&status).unwrap();
    let (p0, p1) = (&status["partitions"][0], &status["partitions"][1]);
    assert_eq!(p0["state"], "FAILED", "{status:#}");
    assert_eq!(p0["last_error"]["code"], "KAFKA_ERROR_TOPIC", "{status:#}");
    assert_eq!(p0["last_error"]["offset"], bad_offset, "{status:#}");
    assert_eq!(p1["state"], "RUNNING", "{status:#}");
    stack.produce_one_per_batch(&topic, &numbered(2, 70..90));
    let group = format!("connect-{name}");
    wait_until(
        "partition 1 stored and committed to its end",
        Duration::from_secs(30),
        || stack.committed(&group, &topic, 2).get(&1) == Some(&45),
    );
    let committed = stack.committed(&group, &topic, 2);
    assert!(
        committed[&0] <= bad_offset,
        "committed past the bad record: {committed:?}"
    );
    let stored = bucket_records(&stack, bucket, &topic);
    assert_eq!(stored.keys().filter(|(p, _)| *p == 1).count(), 45);
    assert!(!stored.contains_key(&(0, bad_offset)));
    for (first, last) in put_ranges(&proxy, &topic, 0) {
        assert!(
            !(first..=last).contains(&bad_offset),
            "an object covering offset {bad_offset} was sent while the record is in no topic: \
             {first}-{last}\n{}",
            proxy.summary()
        );
    }
    // Still held: nothing more of partition 0 is committed.
    assert_eq!(stack.committed(&group, &topic, 2)[&0], committed[&0]);

    // The topic back, the connector restarted: the partition goes on from its committed offset.
    stack.create_topic(&dead_letter, 6);
    connector.stop();
    let mut connector = stack.connector(&config, None);
    wait_until(
        "every record stored or routed",
        Duration::from_secs(60),
        || stack.committed(&group, &topic, 2) == BTreeMap::from([(0, 45), (1, 45)]),
    );
    connector.stop();
    let routed = error_records(&stack, &dead_letter, &topic);
    assert_eq!(
        routed.keys().collect::<Vec<_>>(),
        [&(0, bad_offset)],
        "{routed:?}"
    );
    assert_eq!(
        routed[&(0, bad_offset)]
            .header("kafka-oss-sink.error.code")
            .as_deref(),
        Some("RECORD_INVALID_UTF8")
    );
    assert_exactly_once(&stack, &config, bucket, &topic, &routed);
}
