//! End-to-end tests of rebalances between connector instances, against a real tansu broker and
//! a real s3s-fs server: instances join and leave a group under load, and every produced record
//! must be in the bucket exactly once.
//!
//! tansu 0.6.0 quirks (tests/README.md): records are produced one per batch, since the instance
//! that takes a partition over resumes from a committed offset in the middle of the stream; and
//! instances leave gracefully (a member killed with `kill -9` that expires after another member
//! joined is never replaced in the assignment).
//!
//! Faults tansu cannot produce (lost sessions, out-of-range offsets, refused commits) are tested
//! in-process against librdkafka's mock cluster: `actors/src/kafka/tests.rs` and
//! `actors/src/pipeline/tests.rs`.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use support::{free_port, unique, Connector, Produced, Stack, TestRecord};

/// How many copies of each `(partition, offset)` the bucket holds under `prefix`; objects must
/// hold their offsets in order.
fn copies_in_bucket(stack: &Stack, bucket: &str, prefix: &str) -> BTreeMap<(i32, i64), usize> {
    let mut copies = BTreeMap::new();
    for (key, records) in stack.objects(bucket, prefix) {
        let mut previous = None;
        for record in records {
            let id = (
                record["partition"].as_i64().unwrap() as i32,
                record["offset"].as_i64().unwrap(),
            );
            assert!(previous < Some(id.1), "object {key}: offsets out of order");
            previous = Some(id.1);
            *copies.entry(id).or_insert(0) += 1;
        }
    }
    copies
}

fn wait_until(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A second instance's config: the same connector (name, group, bucket) on another admin port.
fn second_instance(config: &Path, suffix: &str) -> PathBuf {
    let text = std::fs::read_to_string(config).unwrap();
    let admin = text
        .lines()
        .find(|line| line.starts_with("address = \""))
        .unwrap()
        .to_owned();
    let path = config.with_file_name(format!(
        "{}-{suffix}.toml",
        config.file_stem().unwrap().to_string_lossy()
    ));
    std::fs::write(
        &path,
        text.replace(&admin, &format!("address = \"127.0.0.1:{}\"", free_port())),
    )
    .unwrap();
    path
}

/// The `partitions=[..]` list of a log line.
fn partitions_of(line: &str) -> Vec<i32> {
    line.split("partitions=[")
        .nth(1)
        .and_then(|rest| rest.split(']').next())
        .unwrap_or("")
        .split(',')
        .filter_map(|p| p.trim().parse().ok())
        .collect()
}

/// The partitions the instance owns now, replaying its "partitions assigned" and "partitions
/// revoked" lines (cooperative rebalances list only the partitions that move), and every
/// partition it was ever assigned.
fn ownership(connector: &Connector) -> (BTreeSet<i32>, BTreeSet<i32>) {
    let (mut owned, mut ever) = (BTreeSet::new(), BTreeSet::new());
    for line in connector.logs().lines() {
        if line.contains("partitions assigned") {
            owned.extend(partitions_of(line));
            ever.extend(partitions_of(line));
        } else if line.contains("partitions revoked") || line.contains("partitions lost") {
            for partition in partitions_of(line) {
                owned.remove(&partition);
            }
        }
    }
    (owned, ever)
}

/// The instance's `rotations_total{reason="rebalance"}` per partition: objects sealed because a
/// revocation drained the partition.
fn rebalance_seals(connector: &Connector, topic: &str) -> BTreeMap<i32, f64> {
    connector
        .scrape()
        .into_iter()
        .filter(|(name, labels, _)| {
            name == "kafka_oss_sink_rotations_total"
                && labels.get("reason").map(String::as_str) == Some("rebalance")
                && labels.get("topic").map(String::as_str) == Some(topic)
        })
        .map(|(_, labels, value)| (labels["partition"].parse().unwrap(), value))
        .collect()
}

/// Produces `per_round` records to each of `partitions` partitions every 100 ms until `stop`.
fn produce_until(
    stack: &Stack,
    topic: &str,
    partitions: i32,
    per_round: usize,
    stop: &AtomicBool,
    produced: &Mutex<BTreeMap<(i32, i64), Produced>>,
) {
    let mut index = 0usize;
    while !stop.load(Ordering::SeqCst) {
        let records: Vec<TestRecord> = (0..per_round * partitions as usize)
            .map(|i| {
                index += 1;
                (
                    (i % partitions as usize) as i32,
                    Some(format!("k{index}").into_bytes()),
                    Some(format!("value {index}").into_bytes()),
                )
            })
            .collect();
        let batch = stack.produce_one_per_batch(topic, &records);
        produced.lock().unwrap().extend(batch);
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `cooperative-sticky` (the default): a second instance joins under load and leaves again
/// (1 -> 2 -> 1). Nothing is lost or duplicated, and the partitions that stay with the first
/// instance keep flowing through both rebalances: only the partitions that move are drained.
#[test]
fn instances_joining_and_leaving_under_load_move_only_their_partitions() {
    let stack = Stack::start();
    let (topic, bucket, name) = (unique("coop"), "coop-bucket", unique("coop"));
    stack.create_topic(&topic, 4);
    stack.create_bucket(bucket);
    let config = stack.config(
        &name,
        &topic,
        bucket,
        "max_records = 25\nmax_interval_ms = 3000",
        "",
    );
    let second_config = second_instance(&config, "b");
    let prefix = format!("e2e/{topic}/");
    let (stop, produced) = (AtomicBool::new(false), Mutex::new(BTreeMap::new()));

    let mut first = stack.connector(&config, None);
    first.wait_for_log("partitions assigned", Duration::from_secs(30));
    wait_until(
        "the first instance to own the 4 partitions",
        Duration::from_secs(30),
        || ownership(&first).0.len() == 4,
    );
    let (first, moved) = std::thread::scope(|scope| {
        scope.spawn(|| produce_until(&stack, &topic, 4, 5, &stop, &produced));
        wait_until(
            "records in every partition",
            Duration::from_secs(30),
            || {
                let stored: BTreeSet<i32> = copies_in_bucket(&stack, bucket, &prefix)
                    .keys()
                    .map(|(partition, _)| *partition)
                    .collect();
                stored.len() == 4
            },
        );

        // 1 -> 2: the second instance takes over some partitions.
        let mut second = stack.connector(&second_config, None);
        wait_until(
            "the second instance's partitions",
            Duration::from_secs(40),
            || !ownership(&second).0.is_empty(),
        );
        let moved: Vec<i32> = ownership(&second).1.into_iter().collect();
        assert!(
            !moved.is_empty() && moved.len() < 4,
            "the partitions are shared: {moved:?}\n{}",
            second.logs()
        );
        let before = copies_in_bucket(&stack, bucket, &prefix).len();
        wait_until("both instances storing", Duration::from_secs(30), || {
            let now = copies_in_bucket(&stack, bucket, &prefix);
            now.len() > before + 100
        });

        // 2 -> 1: the second instance leaves; its partitions come back to the first.
        second.stop();
        wait_until(
            "the first instance to own the 4 partitions again",
            Duration::from_secs(40),
            || ownership(&first).0.len() == 4,
        );
        let before = copies_in_bucket(&stack, bucket, &prefix).len();
        wait_until(
            "records stored after the second rebalance",
            Duration::from_secs(30),
            || copies_in_bucket(&stack, bucket, &prefix).len() > before + 100,
        );
        stop.store(true, Ordering::SeqCst);
        (first, moved)
    });
    let mut first = first;
    let produced = produced.into_inner().unwrap();
    wait_until(
        "every record in the bucket",
        Duration::from_secs(60),
        || copies_in_bucket(&stack, bucket, &prefix).len() >= produced.len(),
    );

    // The first instance gave up only the partitions the second one took: the others were never
    // revoked, never drained (no `rebalance` seal), and kept flowing through both rebalances.
    let revoked: BTreeSet<i32> = first
        .logs()
        .lines()
        .filter(|line| line.contains("partitions revoked"))
        .flat_map(partitions_of)
        .collect();
    assert!(
        revoked.iter().all(|partition| moved.contains(partition)),
        "revoked {revoked:?}, but only {moved:?} moved:\n{}",
        first.logs()
    );
    let seals = rebalance_seals(&first, &topic);
    for partition in (0..4).filter(|partition| !moved.contains(partition)) {
        assert_eq!(
            seals.get(&partition).copied().unwrap_or(0.0),
            0.0,
            "partition {partition} stayed with the first instance: not drained ({seals:?})"
        );
    }
    first.stop();

    let copies = copies_in_bucket(&stack, bucket, &prefix);
    let duplicated: Vec<_> = copies.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        duplicated.is_empty(),
        "written more than once: {duplicated:?}"
    );
    let missing: Vec<_> = produced
        .keys()
        .filter(|id| !copies.contains_key(id))
        .collect();
    assert!(
        missing.is_empty(),
        "{} records lost, first {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    assert_eq!(
        copies.len(),
        produced.len(),
        "nothing but the produced records"
    );
    let mut ends: BTreeMap<i32, i64> = BTreeMap::new();
    for (partition, offset) in produced.keys() {
        let end = ends.entry(*partition).or_insert(0);
        *end = (*end).max(offset + 1);
    }
    assert_eq!(
        stack.committed(&format!("connect-{name}"), &topic, 4),
        ends,
        "every offset committed"
    );
}

/// Sets `source.assignment_strategy` in a config written by `Stack::config`.
fn set_strategy(config: &Path, strategy: &str) {
    let text = std::fs::read_to_string(config).unwrap().replace(
        "[source]\n",
        &format!("[source]\nassignment_strategy = \"{strategy}\"\n"),
    );
    std::fs::write(config, text).unwrap();
}

/// Issue 11, finding 5, as reported: under `fail`, a partition stopped at a bad record, then a
/// second member joined and left (an eager strategy revokes every partition). The partition came
/// back to the first member showing RUNNING but was never fetched again (librdkafka kept the
/// pause). It must be read again from its committed offset, and stop again at the bad record.
#[test]
fn a_failed_partition_assigned_back_to_its_member_is_read_again() {
    let stack = Stack::start();
    let (topic, bucket, name) = (unique("refail"), "refail-bucket", unique("refail"));
    stack.create_topic(&topic, 1);
    stack.create_bucket(bucket);
    let records: Vec<TestRecord> = (0..50)
        .map(|i| {
            let value = if i == 20 {
                b"bad \xff".to_vec()
            } else {
                format!("v{i}").into_bytes()
            };
            (0, Some(format!("k{i}").into_bytes()), Some(value))
        })
        .collect();
    stack.produce_one_per_batch(&topic, &records);
    let config = stack.config(
        &name,
        &topic,
        bucket,
        "max_records = 10\nmax_interval_ms = 200",
        "[failure]\npolicy = \"fail\"",
    );
    set_strategy(&config, "range");
    let second_config = second_instance(&config, "b");

    let mut first = stack.connector(&config, None);
    first.wait_for_log("partition stopped", Duration::from_secs(60));
    let mut second = stack.connector(&second_config, None);
    second.wait_for_log("partitions assigned", Duration::from_secs(40));
    second.stop();
    wait_until(
        "the first member to read the partition again and stop at the bad record",
        Duration::from_secs(40),
        || first.logs().matches("partition stopped").count() == 2,
    );
    let (_, status) = first.admin_get("/status");
    assert!(
        status.contains("FAILED") && status.contains("RECORD_INVALID_UTF8"),
        "{status}"
    );
    first.stop();
    assert_eq!(
        stack
            .committed(&format!("connect-{name}"), &topic, 1)
            .get(&0),
        Some(&20),
        "nothing at or after the bad record committed"
    );
}
