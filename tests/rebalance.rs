//! End-to-end tests of rebalances between connector instances, against a real tansu broker and
//! a real s3s-fs server: instances join and leave a group under load, and every produced record
//! must be in the bucket exactly once.
//!
//! tansu 0.6.0 quirks (tests/README.md): records are produced one per batch, since the instance
//! that takes a partition over resumes from a committed offset in the middle of the stream; and
//! instances leave gracefully (a member killed with `kill -9` that expires after another member
//! joined is never replaced in the assignment). And a frozen (SIGSTOP) group leader stalls the
//! group: tansu keeps naming it leader in every JoinGroup answer and the others' SyncGroup never
//! gets an assignment until it is back; B3 freezes a member that is not the leader.
//!
//! Reliability matrix §8.3: B1 and B2 (an instance joins under load and leaves gracefully), B3,
//! B5 and B6. B3, B5 and B6 end with [`assert_exactly_once`]: `reconcile --deep` exits 0 and the
//! bucket read back holds every produced record once, byte for byte.
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

use serde_json::Value;
use support::exactly_once;
use support::s3_proxy::{Fault, Operation, When};
use support::{
    free_port, records_with_bad_values, set_sink_endpoint, unique, Connector, Produced, Stack,
    TestRecord,
};

/// How many copies of each `(partition, offset)` the bucket holds under `prefix`; objects must
/// hold their offsets in order.
/// The tests of this file run one at a time: each runs two or three connector instances whose
/// rebalances are timed by sessions and heartbeats, which two such tests at once on 2 cores can
/// push past their deadlines.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

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

/// Partitions the broker handed to an instance while another instance still held them: the
/// instances' "partitions assigned", "revoked" and "lost" lines replayed in the order of their
/// timestamps (one clock: the processes share the machine). A coordinator that follows the
/// incremental protocol never does this: the old owner revokes before the rebalance that gives
/// the partition away ends. tansu 0.6.0 does (tests/README.md, "Known broker quirks"); plain
/// librdkafka consumers show the same on it.
fn double_owned(instances: &[&Connector]) -> BTreeSet<i32> {
    let mut events: Vec<(String, usize, bool, Vec<i32>)> = Vec::new();
    for (index, instance) in instances.iter().enumerate() {
        for line in instance.logs().lines() {
            let assigned = line.contains("partitions assigned");
            if assigned || line.contains("partitions revoked") || line.contains("partitions lost") {
                let stamp = line
                    .split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .to_owned();
                events.push((stamp, index, assigned, partitions_of(line)));
            }
        }
    }
    events.sort();
    let (mut owners, mut doubled) = (BTreeMap::<i32, BTreeSet<usize>>::new(), BTreeSet::new());
    for (_, index, assigned, partitions) in events {
        for partition in partitions {
            let holders = owners.entry(partition).or_default();
            if assigned {
                if holders.iter().any(|&holder| holder != index) {
                    doubled.insert(partition);
                }
                holders.insert(index);
            } else {
                holders.remove(&index);
            }
        }
    }
    doubled
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

/// B1 and B2 (reliability.md §8.3) with `cooperative-sticky` (the default): a second instance
/// joins under load and leaves again gracefully (1 -> 2 -> 1). Nothing is lost or duplicated, and the partitions that stay with the first
/// instance keep flowing through both rebalances: only the partitions that move are drained.
#[test]
fn instances_joining_and_leaving_under_load_move_only_their_partitions() {
    let _serial = one_at_a_time();
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
    let _serial = one_at_a_time();
    let stack = Stack::start();
    let (topic, bucket, name) = (unique("refail"), "refail-bucket", unique("refail"));
    stack.create_topic(&topic, 1);
    stack.create_bucket(bucket);
    stack.produce_one_per_batch(&topic, &records_with_bad_values(50, &[20]));
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
        // At least twice: tansu may give the partition straight back to the first member at
        // the second's join, and again when it leaves.
        || first.logs().matches("partition stopped").count() >= 2,
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

/// Exactly once, checked twice (as in tests/crash.rs): `reconcile --deep` on the bucket, the
/// topic and the group's offsets exits 0 (nothing missing, duplicated, overlapping or foreign)
/// with every produced record committed and nothing stored uncommitted; and the bucket read back
/// holds each produced record once, byte for byte, in an object whose key names its offsets.
///
/// `late` names objects a frozen zombie had in flight when it was frozen and that reached the
/// store after its partition was taken over (B3): an overlap or a duplicate is accepted only
/// where one of its objects is late, and then reconcile may exit 1 for that reason alone.
fn assert_exactly_once(
    stack: &Stack,
    name: &str,
    topic: &str,
    bucket: &str,
    produced: &BTreeMap<(i32, i64), Produced>,
    late: &BTreeSet<String>,
) {
    let written = stack.config(name, topic, bucket, "", "");
    let config = stack.dir.join(format!("{name}-reconcile.toml"));
    std::fs::rename(&written, &config).unwrap();
    let run = stack.reconcile(&config, &["--json", "--deep"]);
    let report = run.json();
    let involves_late = |entries: &Value, field: &str| {
        entries.as_array().unwrap().iter().all(|entry| {
            entry[field]
                .as_array()
                .unwrap()
                .iter()
                .any(|key| late.contains(key.as_str().unwrap()))
        })
    };
    let excused = report["partitions"].as_array().unwrap().iter().all(|p| {
        involves_late(&p["overlapping"], "keys") && involves_late(&p["duplicated"], "holders")
    }) && report["missing"] == 0
        && report["foreign"].as_array().is_some_and(|f| f.is_empty());
    assert!(
        run.code == 0 || (run.code == 1 && !late.is_empty() && excused),
        "reconcile finds the copy clean (late objects {late:?}):\n{}{}",
        run.stdout,
        run.stderr
    );
    assert!(report["clean"] == true || excused, "{report:#}");
    exactly_once::assert_committed_to_end(&run, produced);
    let objects = stack.objects(bucket, &format!("e2e/{topic}/"));
    exactly_once::assert_bucket_once(&objects, topic, produced, late);
}

/// Sends `signal` (`STOP`, `CONT`) to the connector's process.
fn signal(connector: &Connector, signal: &str) {
    let status = std::process::Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(connector.pid().to_string())
        .status()
        .unwrap();
    assert!(status.success(), "kill -{signal}");
}

/// Waits until the bucket holds every produced record (reconcile and the read-back then say
/// whether once).
fn wait_all_stored(stack: &Stack, bucket: &str, topic: &str, count: usize, logs: &[&Connector]) {
    let objects = stack.wait_for_records(
        bucket,
        &format!("e2e/{topic}/"),
        count,
        Duration::from_secs(60),
    );
    let found: usize = objects.iter().map(|(_, records)| records.len()).sum();
    assert!(
        found >= count,
        "{found} of {count} records stored:\n{}",
        logs.iter()
            .map(|c| c.logs())
            .collect::<Vec<_>>()
            .join("\n-----\n")
    );
}

/// B3, a zombie: two instances share a topic under load; instance A is frozen (SIGSTOP) past
/// its session timeout, so the group expires it (tansu expires a silent member when another
/// member's request arrives: B's heartbeats) and B takes A's partition over and stores it from
/// A's committed offset on. A is then resumed (SIGCONT): it must find its assignment lost, drop
/// what it buffered, abandon its uploads and commit nothing of the partition; and the copy stays
/// exactly once.
///
/// A's store (its own proxy) refuses A's uploads (503) from the freeze until A owns a partition
/// again after the loss. Without that, an object A sealed before the freeze (or sealed by its interval timer the
/// moment it resumes) can be uploaded in the instant between SIGCONT and librdkafka reporting
/// the loss: a zombie write no client-side fence can prevent. It never overwrites (conditional
/// create: B's object under the same key is kept, A's counts as "already there") and it loses
/// nothing, but under another key it overlaps B's objects, which reconcile reports. Holding the
/// store back makes the test exercise the fence itself (in-flight uploads abandoned on the loss)
/// deterministically instead of that race. What it cannot hold back is an upload A had already
/// sent when it was frozen: the store answers it when A resumes, before librdkafka has told A of
/// the loss (seen: 3 ms before). Such a late object is stored under A's cut, so it overlaps B's
/// objects and its records are in the bucket twice, which reconcile reports (exit 1). That is the
/// one zombie write no client-side fence can stop (the store has no fencing token); the test
/// accepts overlaps and duplicates only from such late objects, with the records identical, and
/// still requires nothing missing, nothing foreign and every offset committed.
#[test]
fn b3_a_frozen_instance_whose_partition_was_taken_over_writes_and_commits_nothing_of_it() {
    let _serial = one_at_a_time();
    let stack = Stack::start();
    let (proxy_a, proxy_b) = (stack.s3_proxy(), stack.s3_proxy());
    let (topic, bucket, name) = (unique("b3"), "b3-bucket", unique("b3"));
    stack.create_topic(&topic, 2);
    stack.create_bucket(bucket);
    let prefix = format!("e2e/{topic}/");
    // session.timeout.ms is 6000 in Stack::config.
    let config_a = stack.config(
        &name,
        &topic,
        bucket,
        "max_records = 20\nmax_interval_ms = 300",
        "",
    );
    let config_b = second_instance(&config_a, "b");
    set_sink_endpoint(&config_a, &proxy_a.endpoint());
    set_sink_endpoint(&config_b, &proxy_b.endpoint());
    let producing = stack.produce_continuously(&topic, 2, 100);

    // B joins first, so it is the group's leader: tansu keeps naming a frozen leader in every
    // JoinGroup answer and the group never completes a rebalance without it (module doc).
    let mut b = stack.connector(&config_b, None);
    wait_until("B to own both partitions", Duration::from_secs(30), || {
        ownership(&b).0.len() == 2
    });
    let mut a = stack.connector(&config_a, None);
    wait_until("A to own one partition", Duration::from_secs(40), || {
        ownership(&a).0.len() == 1 && ownership(&b).0.len() == 1
    });
    let taken = *ownership(&a).0.iter().next().unwrap();
    let stores = |proxy: &support::S3Proxy, partition: i32, from: usize| -> Vec<String> {
        proxy.requests()[from..]
            .iter()
            .filter(|r| r.operation == Operation::PutObject && r.status == Some(200))
            .filter_map(|r| r.key.clone())
            .filter(|key| key.starts_with(&format!("{prefix}{partition}/")))
            .collect()
    };
    wait_until("A and B storing", Duration::from_secs(30), || {
        !stores(&proxy_a, taken, 0).is_empty() && !stores(&proxy_b, 1 - taken, 0).is_empty()
    });

    signal(&a, "STOP");
    // Whatever A sends from now on is refused as an outage (503 SlowDown: retried, never given
    // up by itself); what A had in flight at the freeze is answered while A is frozen.
    let outage = proxy_a.fault(
        &[Operation::PutObject, Operation::CreateMultipartUpload][..],
        Fault::slow_down(),
        When::Always,
    );
    let frozen = Instant::now();
    let mark_b = proxy_b.requests().len();
    wait_until(
        "B to take A's partition over and store it",
        Duration::from_secs(40),
        || ownership(&b).0.len() == 2 && !stores(&proxy_b, taken, mark_b).is_empty(),
    );
    assert!(
        frozen.elapsed() >= Duration::from_secs(5),
        "B took the partition over {:?} after the freeze, before A's session could expire",
        frozen.elapsed()
    );
    let committed_by_b = stack.committed(&format!("connect-{name}"), &topic, 2)[&taken];

    let keys_before_cont: BTreeSet<String> = stack
        .object_sizes(bucket, &prefix)
        .into_iter()
        .map(|(key, _, _)| key)
        .collect();
    let mark_a = proxy_a.requests().len();
    signal(&a, "CONT");
    a.wait_for_log("partitions lost", Duration::from_secs(30));
    let lost: Vec<i32> = a
        .logs()
        .lines()
        .filter(|line| line.contains("partitions lost"))
        .flat_map(partitions_of)
        .collect();
    assert_eq!(lost, vec![taken], "{}", a.logs());
    // A may have tried to store what it had (refused), and gives up once the loss is known:
    // nothing of the lost assignment reaches the store when it answers again.
    let tried = proxy_a.requests()[mark_a..]
        .iter()
        .filter(|r| r.operation == Operation::PutObject)
        .count();
    let committed_now = stack.committed(&format!("connect-{name}"), &topic, 2)[&taken];
    assert!(
        committed_now >= committed_by_b,
        "partition {taken}: committed offset went back from {committed_by_b} to {committed_now} (a zombie commit)"
    );

    // The group goes on: A rejoins and the partitions are shared again. A's store answers
    // again only then: an upload of the lost assignment that A started in the instant between
    // SIGCONT and the loss (its interval timer fires on resume) is refused, not raced.
    wait_until(
        "A to own a partition again",
        Duration::from_secs(40),
        || !ownership(&a).0.is_empty() && ownership(&a).0.len() + ownership(&b).0.len() == 2,
    );
    proxy_a.clear_fault(outage);
    let stored_after = producing.sent();
    producing.wait_sent(stored_after + 200, Duration::from_secs(30));
    let produced = producing.stop();
    wait_all_stored(&stack, bucket, &topic, produced.len(), &[&a, &b]);
    a.stop();
    b.stop();

    // Nothing of the lost assignment written by A after SIGCONT: every object of the partition
    // A stored from then on belongs to a later assignment of it, so it starts at or after the
    // offset that assignment started from (the `starts` of A's next "partitions assigned").
    let logs = a.logs();
    let after_loss = &logs[logs.find("partitions lost").unwrap()..];
    let reassigned_from: Option<i64> = after_loss
        .lines()
        .find(|line| line.contains("partitions assigned") && partitions_of(line).contains(&taken))
        .and_then(|line| {
            let index = partitions_of(line).iter().position(|p| *p == taken)?;
            let starts = line.split("starts=[").nth(1)?.split(']').next()?;
            let start = starts.split(", ").nth(index)?;
            start.strip_prefix("Some(")?.strip_suffix(')')?.parse().ok()
        });
    for key in stores(&proxy_a, taken, mark_a) {
        let (first, _) = actors::object_key::parse_offsets(&key).unwrap();
        assert!(
            reassigned_from.is_some_and(|from| first >= from),
            "A stored {key} of partition {taken} after SIGCONT, but its next assignment of the \
             partition started at {reassigned_from:?}: a write of the lost assignment\n{logs}"
        );
    }
    // Late: uploads A had sent before the freeze (arrived before SIGCONT) that the store had not
    // answered when A was resumed.
    let late: BTreeSet<String> = proxy_a.requests()[..mark_a]
        .iter()
        .filter(|r| r.operation == Operation::PutObject && r.status == Some(200))
        .filter_map(|r| r.key.clone())
        .filter(|key| key.starts_with(&format!("{prefix}{taken}/")))
        .filter(|key| !keys_before_cont.contains(key))
        .collect();
    eprintln!(
        "A froze with partition {taken}; {tried} uploads of A refused after SIGCONT; late objects {late:?}; {} records",
        produced.len()
    );
    assert_exactly_once(&stack, &name, &topic, bucket, &produced, &late);
}

/// B6: `cooperative-sticky`, 1 -> 3 -> 1 instances under continuous produce. The first
/// instance keeps the partitions it is not asked to give up flowing through both rebalances
/// (never revoked); the others store their share; at the end the copy is exactly once.
#[test]
fn b6_scaling_1_to_3_to_1_instances_under_load_is_exactly_once() {
    let _serial = one_at_a_time();
    let stack = Stack::start();
    let (topic, bucket, name) = (unique("b6"), "b6-bucket", unique("b6"));
    let partitions = 6;
    stack.create_topic(&topic, partitions as u32);
    stack.create_bucket(bucket);
    let prefix = format!("e2e/{topic}/");
    let config = stack.config(
        &name,
        &topic,
        bucket,
        "max_records = 25\nmax_interval_ms = 500",
        "",
    );
    let (config_b, config_c) = (second_instance(&config, "b"), second_instance(&config, "c"));
    let producing = stack.produce_continuously(&topic, partitions, 150);
    let stored_per_partition = || {
        let mut counts: BTreeMap<i32, usize> = BTreeMap::new();
        for ((partition, _), _) in copies_in_bucket(&stack, bucket, &prefix) {
            *counts.entry(partition).or_default() += 1;
        }
        counts
    };

    let mut a = stack.connector(&config, None);
    wait_until("A to own every partition", Duration::from_secs(30), || {
        ownership(&a).0.len() == partitions as usize
    });
    wait_until(
        "records of every partition stored",
        Duration::from_secs(30),
        || stored_per_partition().len() == partitions as usize,
    );

    // 1 -> 3.
    let mut b = stack.connector(&config_b, None);
    let mut c = stack.connector(&config_c, None);
    wait_until(
        "the partitions shared by the three instances",
        Duration::from_secs(60),
        || {
            let (oa, ob, oc) = (ownership(&a).0, ownership(&b).0, ownership(&c).0);
            !oa.is_empty()
                && !ob.is_empty()
                && !oc.is_empty()
                && oa.len() + ob.len() + oc.len() == partitions as usize
        },
    );
    let kept = ownership(&a).0;
    let before = stored_per_partition();
    wait_until(
        "every partition storing with three instances",
        Duration::from_secs(30),
        || {
            let now = stored_per_partition();
            (0..partitions).all(|p| now.get(&p) > before.get(&p))
        },
    );

    // 3 -> 1, both leaving at once: tansu may give a partition to a member while its previous
    // owner still holds it when a member leaves a group of three (seen: B left, A was assigned
    // partition 0 that C still owned and stored, C revoked it 3 s later: overlapping objects).
    b.terminate();
    c.terminate();
    for instance in [&mut b, &mut c] {
        let status = instance.wait_exit(Duration::from_secs(30));
        assert!(status.success(), "{status}:\n{}", instance.logs());
    }
    wait_until(
        "A to own every partition again",
        Duration::from_secs(40),
        || ownership(&a).0.len() == partitions as usize,
    );
    let before = stored_per_partition();
    wait_until(
        "every partition storing with one instance",
        Duration::from_secs(30),
        || {
            let now = stored_per_partition();
            (0..partitions).all(|p| now.get(&p) > before.get(&p))
        },
    );
    let produced = producing.stop();
    wait_all_stored(&stack, bucket, &topic, produced.len(), &[&a, &b, &c]);

    // Cooperative: the partitions A kept through the scale-out were never revoked from it.
    let revoked: BTreeSet<i32> = a
        .logs()
        .lines()
        .filter(|line| line.contains("partitions revoked") || line.contains("partitions lost"))
        .flat_map(partitions_of)
        .collect();
    assert!(
        revoked.is_disjoint(&kept),
        "A kept {kept:?} but had {revoked:?} revoked:\n{}",
        a.logs()
    );
    a.stop();
    // Where tansu gave a partition to two instances at once, both stored it for a while: under
    // distinct keys (nothing overwritten), and nothing may be missing; elsewhere exactly once.
    let doubled = double_owned(&[&a, &b, &c]);
    let excused: BTreeSet<String> = stack
        .objects(bucket, &prefix)
        .into_iter()
        .map(|(key, _)| key)
        .filter(|key| {
            doubled
                .iter()
                .any(|partition| key.starts_with(&format!("{prefix}{partition}/")))
        })
        .collect();
    if !doubled.is_empty() {
        eprintln!(
            "tansu held partitions {doubled:?} on two instances at once (a broker bug, tests/README.md): duplicates there are reported, not failed; loss is still checked"
        );
    }
    eprintln!("{} records; A kept {kept:?}", produced.len());
    assert_exactly_once(&stack, &name, &topic, bucket, &produced, &excused);
}

/// B5 (reliability.md §8.3): partitions revoked and assigned back before their drain finished.
/// Eager `range` assignment, so a member joining or leaving revokes every partition; uploads
/// through the first instance's proxy take 3 s while its drain may take 1 s, so each revocation
/// ends at the drain deadline with uploads still in flight: they are waited for before the
/// partitions are let go, and a partition that comes back lists the bucket only once they ended
/// (without either wait, their late objects duplicated records the next assignment stored). A second instance joins and leaves at once, twice. No
/// partition is left stuck: once the store is quick again, everything produced is stored within
/// a bound, and nothing is missing or duplicated.
#[test]
fn b5_partitions_assigned_back_before_their_drain_finished_are_not_stuck() {
    let _serial = one_at_a_time();
    let stack = Stack::start();
    let proxy = stack.s3_proxy();
    let (topic, bucket, name) = (unique("b5"), "b5-bucket", unique("b5"));
    stack.create_topic(&topic, 2);
    stack.create_bucket(bucket);
    let config = stack.config(
        &name,
        &topic,
        bucket,
        "max_records = 20\nmax_interval_ms = 300",
        "",
    );
    set_strategy(&config, "range");
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(text.contains("drain_timeout_ms = 20000"));
    std::fs::write(
        &config,
        text.replace("drain_timeout_ms = 20000", "drain_timeout_ms = 1000"),
    )
    .unwrap();
    let config_b = second_instance(&config, "b");
    set_sink_endpoint(&config, &proxy.endpoint());
    let producing = stack.produce_continuously(&topic, 2, 100);

    let mut a = stack.connector(&config, None);
    wait_until("A to own both partitions", Duration::from_secs(30), || {
        ownership(&a).0.len() == 2
    });
    wait_until("A storing", Duration::from_secs(30), || {
        !copies_in_bucket(&stack, bucket, &format!("e2e/{topic}/")).is_empty()
    });
    let slow = proxy.fault(
        Operation::PutObject,
        Fault::Latency(Duration::from_secs(3)),
        When::Always,
    );
    for round in 1..=2 {
        let mut b = stack.connector(&config_b, None);
        wait_until(
            &format!("B assigned (round {round})"),
            Duration::from_secs(30),
            || !ownership(&b).1.is_empty(),
        );
        b.terminate();
        let status = b.wait_exit(Duration::from_secs(30));
        assert!(status.success(), "{status}:\n{}", b.logs());
        wait_until(
            &format!("A to own both partitions again (round {round})"),
            Duration::from_secs(30),
            || ownership(&a).0.len() == 2,
        );
    }
    let timed_out = a
        .logs()
        .matches("not stored before the drain deadline")
        .count();
    proxy.clear_fault(slow);
    let produced = producing.stop();
    // The bound: with uploads quick again, A catches up within 30 s (wait_all_stored).
    wait_all_stored(&stack, bucket, &topic, produced.len(), &[&a]);
    a.stop();
    eprintln!("{} records; {timed_out} drains timed out", produced.len());
    assert!(
        timed_out > 0,
        "no revocation found uploads still in flight:\n{}",
        a.logs()
    );
    assert_exactly_once(&stack, &name, &topic, bucket, &produced, &BTreeSet::new());
}
