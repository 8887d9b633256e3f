//! End-to-end tests of the failure policy and the Kafka-side resources, against a real tansu
//! broker and a real s3s-fs server. Each test checks the no-loss rule by reading the bucket and
//! the error topics back: every produced offset is in the bucket, in the abnormal-data topic or
//! in the dead-letter topic, or its partition is stopped before it.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::s3_proxy::{Fault, FaultId, Operation, When};
use support::{
    set_sink_endpoint, set_sink_keys, unique, Consumed, Produced, S3Proxy, Stack, TestRecord,
};

/// `(partition, offset)` of every record in the bucket, with the record's JSON.
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
                "{id:?} written twice (object {key})"
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
        let partition: i32 = record
            .header("__connect.errors.partition")
            .unwrap()
            .parse()
            .unwrap();
        let offset: i64 = record
            .header("__connect.errors.offset")
            .unwrap()
            .parse()
            .unwrap();
        out.insert((partition, offset), record);
    }
    out
}

/// Records `k<i>` / `v<i>` for each `i` of `range`, all to partition 0.
fn numbered(range: std::ops::Range<usize>) -> Vec<TestRecord> {
    range
        .map(|i| {
            (
                0,
                Some(format!("k{i}").into_bytes()),
                Some(format!("v{i}").into_bytes()),
            )
        })
        .collect()
}

/// Makes the store refuse every PutObject for reasons of the object itself (400
/// `InvalidArgument`, as OSS answers a request it will not take): a record-level failure that
/// counts against `max_upload_attempts` and then goes to the failure policy. (A store that is
/// down or answers 5xx is retried until it is back: tests/store_faults.rs.) The returned id
/// clears it.
fn refuse_uploads(proxy: &S3Proxy) -> FaultId {
    proxy.fault(
        Operation::PutObject,
        Fault::error(400, "InvalidArgument"),
        When::Always,
    )
}

fn wait_until(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn original_headers(record: &Consumed) -> Vec<(String, Option<Vec<u8>>)> {
    record
        .headers
        .iter()
        .filter(|(name, _)| {
            !name.starts_with("__connect.errors.") && !name.starts_with("kafka-oss-sink.")
        })
        .cloned()
        .collect()
}

fn test_headers(index: usize) -> Vec<(String, Option<Vec<u8>>)> {
    vec![
        ("trace".to_owned(), Some(format!("t-{index}").into_bytes())),
        ("bin".to_owned(), Some(vec![0, 0xff, index as u8])),
        ("trace".to_owned(), None),
    ]
}

/// `log`: records that cannot be converted and oversize values go to the dead-letter topic with
/// their key, value and headers byte for byte and Kafka Connect's error headers; the partition
/// keeps going; oversize values are also in the bucket as `null` with `overflowFlag`; every
/// offset is committed.
#[test]
fn log_policy_sends_bad_records_to_the_dead_letter_topic_and_keeps_going() {
    let stack = Stack::start();
    let (topic, bucket, name) = (unique("mixed"), "log-bucket", unique("log"));
    stack.create_topic(&topic, 2);
    stack.create_bucket(bucket);
    let mut records: Vec<TestRecord> = Vec::new();
    for index in 0..600usize {
        let partition = (index % 2) as i32;
        let (key, value) = match index % 50 {
            7 => (Some(b"k".to_vec()), Some(b"bad \xff\xfe value".to_vec())),
            19 => (Some(b"bad key \xc3".to_vec()), Some(b"fine value".to_vec())),
            23 => (
                Some(format!("big-{index}").into_bytes()),
                Some("é".repeat(80).into_bytes()),
            ), // 160 bytes
            31 => (None, Some(b"\xff".repeat(300))), // oversize and not UTF-8: still written as null
            _ => (
                Some(format!("k{index}").into_bytes()),
                Some(format!("value {index}").into_bytes()),
            ),
        };
        records.push((partition, key, value));
    }
    let produced = stack.produce_with_headers(&topic, &records, test_headers);
    let config = stack.config(
        &name,
        &topic,
        bucket,
        "max_records = 40\nmax_interval_ms = 300",
        "[failure]\nmax_value_bytes = 100",
    );
    let mut connector = stack.connector(&config, None);
    let error_topic = format!("connect-error-{name}");

    let is_invalid = |p: &Produced| {
        p.key
            .as_deref()
            .is_some_and(|k| std::str::from_utf8(k).is_err())
            || (p.value.as_ref().is_some_and(|v| v.len() <= 100)
                && p.value
                    .as_deref()
                    .is_some_and(|v| std::str::from_utf8(v).is_err()))
    };
    let is_oversize = |p: &Produced| p.value.as_ref().is_some_and(|v| v.len() > 100);
    let expected_in_bucket = produced.values().filter(|p| !is_invalid(p)).count();
    let expected_dead = produced
        .values()
        .filter(|p| is_invalid(p) || is_oversize(p))
        .count();
    assert_eq!(expected_dead, 600 / 50 * 4);
    wait_until(
        "the bucket and the dead-letter topic",
        Duration::from_secs(90),
        || {
            bucket_records(&stack, bucket, &topic).len() >= expected_in_bucket
                && error_records(&stack, &error_topic, &topic).len() >= expected_dead
        },
    );
    connector.stop();

    let in_bucket = bucket_records(&stack, bucket, &topic);
    let dead = error_records(&stack, &error_topic, &topic);
    // `produce` stamps record `i` with the first timestamp + i.
    let first_timestamp = produced.values().map(|p| p.timestamp).min().unwrap();
    assert_eq!(in_bucket.len(), expected_in_bucket);
    assert_eq!(dead.len(), expected_dead);
    for (id, produced_record) in &produced {
        let bucket_record = in_bucket.get(id);
        let dead_record = dead.get(id);
        if is_invalid(produced_record) {
            assert!(
                bucket_record.is_none(),
                "{id:?} cannot be converted and must not be in the bucket"
            );
        } else {
            let record = bucket_record.unwrap_or_else(|| panic!("{id:?} missing from the bucket"));
            let size = produced_record.value.as_ref().map_or(0, Vec::len);
            assert_eq!(record["valueSize"], size, "{id:?}");
            if is_oversize(produced_record) {
                assert_eq!(record["value"], Value::Null, "{id:?}");
                assert_eq!(record["overflowFlag"], true, "{id:?}");
            } else {
                assert_eq!(
                    record["value"].as_str().unwrap().as_bytes(),
                    produced_record.value.as_deref().unwrap()
                );
                assert_eq!(record["overflowFlag"], false);
            }
        }
        if is_invalid(produced_record) || is_oversize(produced_record) {
            let dead_record =
                dead_record.unwrap_or_else(|| panic!("{id:?} missing from the dead-letter topic"));
            assert_eq!(
                dead_record.key, produced_record.key,
                "{id:?}: key byte for byte"
            );
            assert_eq!(
                dead_record.value, produced_record.value,
                "{id:?}: value byte for byte"
            );
            let index = (produced_record.timestamp - first_timestamp) as usize;
            assert_eq!(
                original_headers(dead_record),
                test_headers(index),
                "{id:?}: headers byte for byte, in order"
            );
            assert_eq!(
                dead_record
                    .header("__connect.errors.connector.name")
                    .as_deref(),
                Some(name.as_str())
            );
            let code = dead_record.header("kafka-oss-sink.error.code").unwrap();
            let expected_code = if is_oversize(produced_record) {
                "RECORD_OVERSIZE"
            } else {
                "RECORD_INVALID_UTF8"
            };
            assert_eq!(code, expected_code, "{id:?}");
            assert!(dead_record
                .header("__connect.errors.exception.class.name")
                .is_some());
            let message = dead_record
                .header("__connect.errors.exception.message")
                .unwrap();
            assert!(message.contains(&format!("offset {}", id.1)), "{message}");
        } else {
            assert!(
                dead_record.is_none(),
                "{id:?} is fine and must not be in the dead-letter topic"
            );
        }
    }
    let committed = stack.committed(&format!("connect-{name}"), &topic, 2);
    for partition in 0..2 {
        let end = produced
            .keys()
            .filter(|(p, _)| *p == partition)
            .map(|(_, o)| o + 1)
            .max();
        assert_eq!(
            committed.get(&partition).copied(),
            end,
            "partition {partition} committed to its end"
        );
    }
    assert!(!connector.logs().contains(&stack.secret));
}

/// A bucket that refuses objects for reasons of the objects (400 `InvalidArgument` on every
/// PutObject, injected by the S3 proxy) under `log`: after the attempts are spent, the object's
/// records go to the abnormal-data topic byte for byte with the upload error's code
/// (`UPLOAD_REJECTED`); the partition keeps going and every offset is committed; once the
/// bucket takes objects again, records land in it again.
#[test]
fn log_policy_sends_records_of_refused_objects_to_the_abnormal_data_topic() {
    let stack = Stack::start();
    let (topic, bucket, name) = (unique("refused"), "refused-bucket", unique("abnormal"));
    stack.create_topic(&topic, 1);
    stack.create_bucket(bucket);
    let config = stack.config(
        &name,
        &topic,
        bucket,
        "max_records = 50\nmax_interval_ms = 200",
        "[resources]\nabnormal_topic = \"abnormal-data\"\ndead_letter_topic = \"dead-letter\"",
    );
    set_sink_keys(&config, "max_upload_attempts = 2");
    let proxy = stack.s3_proxy();
    set_sink_endpoint(&config, &proxy.endpoint());
    let mut produced = stack.produce(&topic, &numbered(0..100));
    let mut connector = stack.connector(&config, None);
    wait_until(
        "the first records in the bucket",
        Duration::from_secs(60),
        || bucket_records(&stack, bucket, &topic).len() == 100,
    );

    let refusal = refuse_uploads(&proxy);
    let refused = stack.produce_with_headers(&topic, &numbered(100..200), test_headers);
    wait_until(
        "the refused records in the abnormal-data topic",
        Duration::from_secs(90),
        || error_records(&stack, "abnormal-data", &topic).len() >= 100,
    );
    proxy.clear_fault(refusal);
    produced.extend(stack.produce(&topic, &numbered(200..300)));
    wait_until(
        "records in the bucket again",
        Duration::from_secs(60),
        || bucket_records(&stack, bucket, &topic).len() == 200,
    );
    connector.stop();

    let in_bucket = bucket_records(&stack, bucket, &topic);
    let abnormal = error_records(&stack, "abnormal-data", &topic);
    assert_eq!(
        abnormal.len(),
        100,
        "each refused record once in the abnormal-data topic"
    );
    assert!(
        stack.read_topic("dead-letter").is_empty(),
        "no record went to the dead-letter topic"
    );
    let first_timestamp = refused.values().map(|p| p.timestamp).min().unwrap();
    for (id, record) in &refused {
        assert!(
            !in_bucket.contains_key(id),
            "{id:?} is in the bucket and the abnormal-data topic"
        );
        let forwarded = abnormal.get(id).unwrap_or_else(|| panic!("{id:?} lost"));
        assert_eq!(forwarded.key, record.key);
        assert_eq!(forwarded.value, record.value);
        assert_eq!(
            original_headers(forwarded),
            test_headers((record.timestamp - first_timestamp) as usize)
        );
        assert_eq!(
            forwarded.header("kafka-oss-sink.error.code").as_deref(),
            Some("UPLOAD_REJECTED")
        );
    }
    for id in produced.keys() {
        assert!(in_bucket.contains_key(id), "{id:?} missing from the bucket");
    }
    let committed = stack.committed(&format!("connect-{name}"), &topic, 1);
    assert_eq!(committed.get(&0), Some(&300), "every offset committed");
    let logs = connector.logs();
    assert!(logs.contains("abnormal-data topic"), "{logs}");
    assert!(!logs.contains(&stack.secret));
}

/// `automatic` on an empty broker creates the product page's topics with their settings, writes
/// the effective config (without the secret) to the config topic and the states to the status
/// topic; the group `connect-<name>` exists once the connector joined.
#[test]
fn automatic_mode_creates_the_kafka_resources_on_an_empty_broker() {
    let stack = Stack::start();
    let (topic, bucket, name) = (unique("auto"), "auto-bucket", unique("auto"));
    stack.create_topic(&topic, 2);
    stack.create_bucket(bucket);
    let records: Vec<TestRecord> = (0..10)
        .map(|i: i32| (i % 2, None, Some(b"v".to_vec())))
        .collect();
    stack.produce(&topic, &records);
    let config = stack.config(&name, &topic, bucket, "max_interval_ms = 200", "");
    let mut connector = stack.connector(&config, None);
    connector.wait_for_log("partitions assigned", Duration::from_secs(60));
    for (kind, partitions, compacted) in [
        ("offset", 12, true),
        ("config", 1, true),
        ("status", 6, true),
        ("error", 6, false),
    ] {
        let resource = format!("connect-{kind}-{name}");
        assert_eq!(
            stack.topic_partitions(&resource),
            Some(partitions),
            "{resource} partitions"
        );
        let policy = stack
            .topic_config(&resource, "cleanup.policy")
            .unwrap_or_default();
        assert_eq!(
            policy.contains("compact"),
            compacted,
            "{resource} cleanup.policy = {policy}"
        );
    }
    let configs = stack.read_topic(&format!("connect-config-{name}"));
    assert_eq!(configs.len(), 1);
    assert_eq!(
        configs[0].key.as_deref(),
        Some(format!("config-connector-{name}").as_bytes())
    );
    let text = String::from_utf8(configs[0].value.clone().unwrap()).unwrap();
    assert!(text.contains(&format!("topic = \"{topic}\"")), "{text}");
    assert!(
        !text.contains(&stack.secret),
        "the config topic holds the secret"
    );
    wait_until("the status records", Duration::from_secs(30), || {
        stack.read_topic(&format!("connect-status-{name}")).len() >= 3
    });
    let statuses: BTreeSet<(String, String)> = stack
        .read_topic(&format!("connect-status-{name}"))
        .into_iter()
        .map(|record| {
            let value: Value = serde_json::from_slice(record.value.as_deref().unwrap()).unwrap();
            (
                String::from_utf8(record.key.unwrap()).unwrap(),
                value["state"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    for key in [
        format!("status-connector-{name}"),
        format!("status-partition-{name}-{topic}-0"),
        format!("status-partition-{name}-{topic}-1"),
    ] {
        assert!(
            statuses.contains(&(key.clone(), "RUNNING".to_owned())),
            "{key} RUNNING in {statuses:?}"
        );
    }
    // The broker lists a group once it holds committed offsets.
    wait_until("the group's first commit", Duration::from_secs(30), || {
        stack.committed(&format!("connect-{name}"), &topic, 2).len() == 2
    });
    assert!(
        stack.groups().contains(&format!("connect-{name}")),
        "group connect-{name} exists"
    );
    connector.stop();
}

/// `manual` with resources missing or wrong: the connector refuses to start with one message
/// that lists every problem, and creates nothing.
#[test]
fn manual_mode_refuses_to_start_and_lists_everything_missing_or_wrong() {
    let stack = Stack::start();
    let (topic, bucket, name) = (unique("manual"), "manual-bucket", unique("manual"));
    stack.create_topic(&topic, 1);
    stack.create_bucket(bucket);
    stack.create_topic_with(
        &format!("connect-offset-{name}"),
        3,
        &[("cleanup.policy", "compact")],
    );
    stack.create_topic_with(
        &format!("connect-config-{name}"),
        2,
        &[("cleanup.policy", "compact")],
    );
    stack.create_topic_with(&format!("connect-status-{name}"), 6, &[]);
    let config = stack.config(
        &name,
        &topic,
        bucket,
        "",
        "[resources]\ncreate = \"manual\"",
    );
    let mut connector = stack.connector(&config, None);
    let status = connector.wait_exit(Duration::from_secs(60));
    let logs = connector.logs();
    assert_eq!(status.code(), Some(3), "{logs}");
    let line = logs
        .lines()
        .find(|line| line.contains("KAFKA_RESOURCES"))
        .unwrap_or_else(|| panic!("no KAFKA_RESOURCES error:\n{logs}"));
    for problem in [
        format!("config topic `connect-config-{name}` has 2 partitions, needs exactly 1"),
        format!("status topic `connect-status-{name}` has cleanup.policy=delete, needs compact"),
        format!("abnormal-data topic `connect-error-{name}` does not exist"),
        format!("consumer group `connect-{name}` does not exist"),
    ] {
        assert!(line.contains(&problem), "missing {problem:?} in:\n{line}");
    }
    assert!(
        !line.contains(&format!("offset topic `connect-offset-{name}`")),
        "the offset topic is fine:\n{line}"
    );
    assert_eq!(
        stack.topic_partitions(&format!("connect-error-{name}")),
        None,
        "manual mode creates nothing"
    );
}

/// Runs `kafka-oss-sink <action> --config FILE --partition N`; returns (success, output).
fn partition_command(config: &std::path::Path, action: &str, partition: i32) -> (bool, String) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_kafka-oss-sink"))
        .args([action, "--config"])
        .arg(config)
        .args(["--partition", &partition.to_string()])
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

/// The states written to the status topic for one partition, in order.
fn partition_states(stack: &Stack, name: &str, topic: &str, partition: i32) -> Vec<String> {
    let key = format!("status-partition-{name}-{topic}-{partition}");
    stack
        .read_topic(&format!("connect-status-{name}"))
        .into_iter()
        .filter(|record| record.key.as_deref() == Some(key.as_bytes()))
        .map(|record| {
            let value: Value = serde_json::from_slice(record.value.as_deref().unwrap()).unwrap();
            value["state"].as_str().unwrap().to_owned()
        })
        .collect()
}

// Tests that pause fetching produce one record per batch: librdkafka fetches again from the
// consumed position after a pause, and tansu 0.6.0 cannot fetch from inside a batch
// (tests/README.md, "Broker quirks").

/// `fail`: the partition stops exactly at a record that cannot be converted (nothing at or after
/// it committed, FAILED visible in /status and the status topic); `resume` sends that record to
/// the dead-letter topic and the partition goes on, until the next bad record.
#[test]
fn fail_policy_stops_at_the_bad_record_and_resume_skips_it_to_the_dead_letter_topic() {
    let stack = Stack::start();
    let (topic, bucket, name) = (unique("poison"), "fail-bucket", unique("fail"));
    stack.create_topic(&topic, 1);
    stack.create_bucket(bucket);
    let records: Vec<TestRecord> = (0..100)
        .map(|i| {
            let value = if i == 40 || i == 70 {
                b"bad \xff".to_vec()
            } else if i == 20 {
                "x".repeat(150).into_bytes() // oversize: not a failure, also under `fail`
            } else {
                format!("v{i}").into_bytes()
            };
            (0, Some(format!("k{i}").into_bytes()), Some(value))
        })
        .collect();
    let produced = stack.produce_one_per_batch(&topic, &records);
    let config = stack.config(
        &name,
        &topic,
        bucket,
        "max_records = 10\nmax_interval_ms = 200",
        "[failure]\npolicy = \"fail\"\nmax_value_bytes = 100",
    );
    let mut connector = stack.connector(&config, None);
    connector.wait_for_log("partition stopped", Duration::from_secs(60));
    wait_until(
        "the commit up to the bad record",
        Duration::from_secs(30),
        || {
            stack
                .committed(&format!("connect-{name}"), &topic, 1)
                .get(&0)
                == Some(&40)
        },
    );
    let (_, status) = connector.admin_get("/status");
    assert!(
        status.contains("FAILED") && status.contains("RECORD_INVALID_UTF8"),
        "{status}"
    );
    let in_bucket = bucket_records(&stack, bucket, &topic);
    assert_eq!(
        in_bucket.keys().map(|(_, o)| *o).collect::<Vec<_>>(),
        (0..40).collect::<Vec<_>>(),
        "exactly the records before the bad one"
    );

    let (ok, answer) = partition_command(&config, "resume", 0);
    assert!(ok, "{answer}");
    assert!(answer.contains("partition 0 resumed"), "{answer}");
    wait_until(
        "the stop at the second bad record",
        Duration::from_secs(60),
        || connector.logs().matches("partition stopped").count() == 2,
    );
    wait_until(
        "the commit up to the second bad record",
        Duration::from_secs(30),
        || {
            stack
                .committed(&format!("connect-{name}"), &topic, 1)
                .get(&0)
                == Some(&70)
        },
    );
    let (ok, answer) = partition_command(&config, "resume", 0);
    assert!(ok, "{answer}");
    let (ok, answer) = partition_command(&config, "resume", 0);
    assert!(ok && answer.contains("already RUNNING"), "{answer}");
    let (ok, answer) = partition_command(&config, "resume", 7);
    assert!(!ok && answer.contains("not assigned"), "{answer}");
    wait_until(
        "every good record in the bucket",
        Duration::from_secs(60),
        || bucket_records(&stack, bucket, &topic).len() == 98,
    );
    connector.stop();

    let in_bucket = bucket_records(&stack, bucket, &topic);
    let dead = error_records(&stack, &format!("connect-error-{name}"), &topic);
    assert_eq!(
        dead.keys().map(|(_, o)| *o).collect::<Vec<_>>(),
        [20, 40, 70],
        "the oversize record and the skipped records are in the dead-letter topic"
    );
    assert_eq!(in_bucket[&(0, 20)]["overflowFlag"], true);
    assert_eq!(in_bucket[&(0, 20)]["valueSize"], 150);
    for (id, record) in &produced {
        match dead.get(id) {
            Some(forwarded) if id.1 == 20 => {
                assert_eq!(forwarded.value, record.value);
                assert_eq!(
                    forwarded.header("kafka-oss-sink.error.code").as_deref(),
                    Some("RECORD_OVERSIZE")
                );
            }
            Some(forwarded) => {
                assert_eq!(forwarded.value, record.value);
                assert_eq!(
                    forwarded.header("kafka-oss-sink.error.code").as_deref(),
                    Some("RECORD_INVALID_UTF8")
                );
                assert!(!in_bucket.contains_key(id));
            }
            None => assert!(in_bucket.contains_key(id), "{id:?} lost"),
        }
    }
    assert_eq!(
        stack
            .committed(&format!("connect-{name}"), &topic, 1)
            .get(&0),
        Some(&100)
    );
    let states = partition_states(&stack, &name, &topic, 0);
    assert_eq!(
        states,
        ["RUNNING", "FAILED", "RESUMED", "RUNNING", "FAILED", "RESUMED", "RUNNING"],
        "status topic history"
    );
}

/// `fail` with a bucket that refuses objects for reasons of the objects (400 `InvalidArgument`
/// on every PutObject): the partition stops at the refused object, commits nothing past it and
/// sends nothing to the abnormal-data topic; once the bucket takes objects again, `resume`
/// uploads the held object and the partition goes on.
#[test]
fn fail_policy_holds_a_refused_object_until_resume() {
    let stack = Stack::start();
    let (topic, bucket, name) = (unique("held"), "held-bucket", unique("held"));
    stack.create_topic(&topic, 1);
    stack.create_bucket(bucket);
    let config = stack.config(
        &name,
        &topic,
        bucket,
        "max_records = 50\nmax_interval_ms = 200",
        "[failure]\npolicy = \"fail\"",
    );
    set_sink_keys(&config, "max_upload_attempts = 2");
    let proxy = stack.s3_proxy();
    set_sink_endpoint(&config, &proxy.endpoint());
    let mut produced = stack.produce_one_per_batch(&topic, &numbered(0..50));
    let mut connector = stack.connector(&config, None);
    wait_until(
        "the first records in the bucket",
        Duration::from_secs(60),
        || bucket_records(&stack, bucket, &topic).len() == 50,
    );

    let refusal = refuse_uploads(&proxy);
    produced.extend(stack.produce_one_per_batch(&topic, &numbered(50..100)));
    connector.wait_for_log("partition stopped", Duration::from_secs(60));
    assert!(
        connector.logs().contains("UPLOAD_REJECTED"),
        "{}",
        connector.logs()
    );
    produced.extend(stack.produce_one_per_batch(&topic, &numbered(100..150)));
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        stack
            .committed(&format!("connect-{name}"), &topic, 1)
            .get(&0),
        Some(&50),
        "nothing past the refused object is committed"
    );

    proxy.clear_fault(refusal);
    let (ok, answer) = partition_command(&config, "resume", 0);
    assert!(ok, "{answer}");
    wait_until(
        "every record in the bucket",
        Duration::from_secs(60),
        || bucket_records(&stack, bucket, &topic).len() == 150,
    );
    connector.stop();
    let in_bucket = bucket_records(&stack, bucket, &topic);
    for id in produced.keys() {
        assert!(in_bucket.contains_key(id), "{id:?} lost");
    }
    assert!(
        error_records(&stack, &format!("connect-error-{name}"), &topic).is_empty(),
        "nothing forwarded under fail"
    );
    assert_eq!(
        stack
            .committed(&format!("connect-{name}"), &topic, 1)
            .get(&0),
        Some(&150)
    );
}

/// An operator pauses a partition (nothing more is read from it) and resumes it.
#[test]
fn pause_and_resume_a_partition() {
    let stack = Stack::start();
    let (topic, bucket, name) = (unique("paused"), "pause-bucket", unique("pause"));
    stack.create_topic(&topic, 1);
    stack.create_bucket(bucket);
    let config = stack.config(&name, &topic, bucket, "max_interval_ms = 200", "");
    let mut connector = stack.connector(&config, None);
    connector.wait_for_log("partitions assigned", Duration::from_secs(60));
    let (ok, answer) = partition_command(&config, "pause", 0);
    assert!(ok && answer.contains("paused"), "{answer}");
    let (_, status) = connector.admin_get("/status");
    assert!(status.contains("PAUSED"), "{status}");
    let records: Vec<TestRecord> = (0..20)
        .map(|i| (0, None, Some(format!("v{i}").into_bytes())))
        .collect();
    stack.produce_one_per_batch(&topic, &records);
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        bucket_records(&stack, bucket, &topic).is_empty(),
        "a paused partition is not read"
    );
    let (ok, answer) = partition_command(&config, "resume", 0);
    assert!(ok && answer.contains("resumed"), "{answer}");
    wait_until("the records in the bucket", Duration::from_secs(30), || {
        bucket_records(&stack, bucket, &topic).len() == 20
    });
    connector.stop();
    assert_eq!(
        partition_states(&stack, &name, &topic, 0),
        ["RUNNING", "PAUSED", "RESUMED", "RUNNING"]
    );
}
