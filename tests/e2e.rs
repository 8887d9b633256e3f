//! End-to-end tests against a real Kafka-API broker (tansu) and a real S3-API server (s3s-fs).

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde_json::Value;
use support::{set_sink_keys, unique, Produced, Stack, TestRecord};

/// Checks the bucket against what was produced: every record exactly once, in offset order
/// within its partition, with every field right. Returns the number of objects.
fn assert_exactly_once(
    objects: &[(String, Vec<Value>)],
    topic: &str,
    produced: &BTreeMap<(i32, i64), Produced>,
) -> usize {
    support::exactly_once::assert_bucket_once(objects, topic, produced, &BTreeSet::new());
    objects.len()
}

/// Values users send: unicode, empty, JSON-looking text with quotes, backslashes and newlines.
fn tricky_value(index: usize) -> Option<Vec<u8>> {
    let value = match index % 8 {
        0 => format!("plain value {index}"),
        1 => String::new(),
        2 => format!("{{\"id\": {index}, \"text\": \"quote \\\" backslash \\\\ end\"}}"),
        3 => format!("line one\nline two\r\n\ttabbed {index}"),
        4 => format!("unicode é ü 日本語 🎉 {index}"),
        5 => format!("control \u{1} \u{1f} {index}"),
        6 => return None, // a tombstone
        _ => "x".repeat(index % 500),
    };
    Some(value.into_bytes())
}

fn tricky_key(index: usize) -> Option<Vec<u8>> {
    match index % 5 {
        0 => None,
        1 => Some(Vec::new()),
        2 => Some(format!("key-{index}").into_bytes()),
        3 => Some(format!("ключ \"{index}\"").into_bytes()),
        _ => Some(index.to_string().into_bytes()),
    }
}

/// A user's promise: every record of the topic lands in the bucket exactly once, in the product
/// page's format, and the group's offsets are committed past it after a graceful stop.
#[test]
fn every_record_lands_once_in_offset_order_with_every_field_right() {
    let stack = Stack::start();
    let (topic, bucket, name) = (unique("orders"), "e2e-bucket", unique("copy-all"));
    stack.create_topic(&topic, 4);
    stack.create_bucket(bucket);
    let records: Vec<_> = (0..4000)
        .map(|index| ((index % 4) as i32, tricky_key(index), tricky_value(index)))
        .collect();
    let produced = stack.produce(&topic, &records);
    assert_eq!(produced.len(), 4000);

    let config = stack.config(
        &name,
        &topic,
        bucket,
        "max_records = 300\nmax_bytes = 65536\nmax_interval_ms = 500",
        "",
    );
    let mut connector = stack.connector(&config, None);
    connector.wait_for_log("partitions assigned", Duration::from_secs(30));
    let objects = stack.wait_for_records(
        bucket,
        &format!("e2e/{topic}/"),
        4000,
        Duration::from_secs(90),
    );
    let count = assert_exactly_once(&objects, &topic, &produced);
    assert!(
        count >= 4000 / 300,
        "objects are cut at max_records: {count} objects"
    );
    for (key, records) in &objects {
        assert!(
            records.len() <= 300,
            "{key} holds {} records, over max_records",
            records.len()
        );
    }

    connector.stop();
    let committed = stack.committed(&format!("connect-{name}"), &topic, 4);
    for partition in 0..4 {
        let end = produced
            .keys()
            .filter(|(p, _)| *p == partition)
            .map(|(_, offset)| offset + 1)
            .max();
        assert_eq!(
            committed.get(&partition).copied(),
            end,
            "partition {partition} committed to its end"
        );
    }
    assert!(
        !connector.logs().contains(&stack.secret),
        "the secret appears in the log"
    );
}

/// Stopping the connector mid-stream and starting it again loses nothing and duplicates nothing.
#[test]
fn restart_mid_stream_loses_and_duplicates_nothing() {
    let stack = Stack::start();
    let (topic, bucket, name) = (unique("events"), "restart-bucket", unique("restart"));
    stack.create_topic(&topic, 3);
    stack.create_bucket(bucket);
    let config = stack.config(
        &name,
        &topic,
        bucket,
        "max_records = 50\nmax_interval_ms = 300",
        "",
    );
    let prefix = format!("e2e/{topic}/");

    let first: Vec<_> = (0..1500)
        .map(|index| ((index % 3) as i32, tricky_key(index), tricky_value(index)))
        .collect();
    let mut produced = stack.produce_one_per_batch(&topic, &first);
    let mut connector = stack.connector(&config, None);
    connector.wait_for_log("partitions assigned", Duration::from_secs(30));
    // Stop while the backlog is still being copied.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while stack.objects(bucket, &prefix).is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "no object appeared:\n{}",
            connector.logs()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    connector.stop();

    // More records while it is down, then start again.
    let second: Vec<_> = (1500..3000)
        .map(|index| ((index % 3) as i32, tricky_key(index), tricky_value(index)))
        .collect();
    produced.extend(stack.produce_one_per_batch(&topic, &second));
    let mut restarted = stack.connector(&config, None);
    restarted.wait_for_log("partitions assigned", Duration::from_secs(60));
    let objects = stack.wait_for_records(bucket, &prefix, 3000, Duration::from_secs(90));
    assert_exactly_once(&objects, &topic, &produced);
    restarted.stop();
}

/// A wrong secret is a clear startup error naming the bucket, never the secret.
#[test]
fn wrong_secret_names_the_bucket_never_the_secret() {
    let stack = Stack::start();
    let topic = unique("auth");
    stack.create_topic(&topic, 1);
    stack.create_bucket("auth-bucket");
    let config = stack.config(&unique("auth"), &topic, "auth-bucket", "", "");
    let wrong = format!("wrong-{}", unique("secret"));
    let mut connector = stack.connector(&config, Some(&wrong));
    let status = connector.wait_exit(Duration::from_secs(60));
    let logs = connector.logs();
    assert_eq!(status.code(), Some(3), "startup failure exit code:\n{logs}");
    assert!(
        logs.contains("`auth-bucket`"),
        "the error names the bucket:\n{logs}"
    );
    assert!(
        logs.contains("UPLOAD_ACCESS_DENIED"),
        "the error carries its code:\n{logs}"
    );
    assert!(
        logs.contains("OSS_ACCESS_KEY_SECRET"),
        "the error says where the credentials come from:\n{logs}"
    );
    assert!(
        !logs.contains(&wrong),
        "the wrong secret appears in the log"
    );
    assert!(
        !logs.contains(&stack.secret),
        "the real secret appears in the log"
    );
}

/// A missing bucket is a clear startup error naming the bucket.
#[test]
fn missing_bucket_is_a_clear_error() {
    let stack = Stack::start();
    let topic = unique("nobucket");
    stack.create_topic(&topic, 1);
    let config = stack.config(&unique("nobucket"), &topic, "no-such-bucket", "", "");
    let mut connector = stack.connector(&config, None);
    let status = connector.wait_exit(Duration::from_secs(60));
    let logs = connector.logs();
    assert_eq!(status.code(), Some(3), "startup failure exit code:\n{logs}");
    assert!(
        logs.contains("bucket `no-such-bucket` does not exist"),
        "{logs}"
    );
    assert!(logs.contains("UPLOAD_NO_SUCH_BUCKET"), "{logs}");
    assert!(
        !logs.contains(&stack.secret),
        "the secret appears in the log"
    );
}

/// A record that is not UTF-8 is never mangled: its partition stops exactly before it, with an
/// error naming topic, partition and offset, while the other partitions keep flowing.
#[test]
fn invalid_utf8_stops_its_partition_exactly_at_the_record() {
    let stack = Stack::start();
    let (topic, bucket, name) = (unique("binary"), "utf8-bucket", unique("utf8"));
    stack.create_topic(&topic, 2);
    stack.create_bucket(bucket);
    let mut records: Vec<TestRecord> = Vec::new();
    for index in 0..200 {
        records.push((0, None, Some(format!("p0-{index}").into_bytes())));
        let value = if index == 120 {
            b"bad \xff\xfe bytes".to_vec()
        } else {
            format!("p1-{index}").into_bytes()
        };
        records.push((1, Some(b"k".to_vec()), Some(value)));
    }
    let produced = stack.produce(&topic, &records);
    let bad_offset = produced
        .iter()
        .find(|(_, record)| {
            record
                .value
                .as_deref()
                .is_some_and(|value| std::str::from_utf8(value).is_err())
        })
        .map(|((_, offset), _)| *offset)
        .unwrap();

    let config = stack.config(
        &name,
        &topic,
        bucket,
        "max_records = 25\nmax_interval_ms = 300",
        "[failure]\npolicy = \"fail\"",
    );
    let mut connector = stack.connector(&config, None);
    connector.wait_for_log("partition stopped", Duration::from_secs(60));
    let logs = connector.logs();
    assert!(logs.contains("RECORD_INVALID_UTF8"), "{logs}");
    assert!(
        logs.contains(&format!("offset={bad_offset}")) && logs.contains("partition=1"),
        "{logs}"
    );

    let expected: BTreeMap<_, _> = produced
        .into_iter()
        .filter(|((partition, offset), _)| *partition == 0 || *offset < bad_offset)
        .collect();
    let objects = stack.wait_for_records(
        bucket,
        &format!("e2e/{topic}/"),
        expected.len(),
        Duration::from_secs(60),
    );
    assert_exactly_once(&objects, &topic, &expected);

    connector.stop();
    let committed = stack.committed(&format!("connect-{name}"), &topic, 2);
    assert_eq!(
        committed.get(&1),
        Some(&bad_offset),
        "partition 1 committed exactly up to the bad record"
    );
    let end0 = expected
        .keys()
        .filter(|(p, _)| *p == 0)
        .map(|(_, offset)| offset + 1)
        .max();
    assert_eq!(
        committed.get(&0).copied(),
        end0,
        "partition 0 committed to its end"
    );
    let partitions: BTreeSet<i64> = objects
        .iter()
        .map(|(_, records)| records[0]["partition"].as_i64().unwrap())
        .collect();
    assert_eq!(partitions, BTreeSet::from([0, 1]));
}

/// An object larger than the part size goes up as a multipart upload and reads back intact, with
/// `sign_payload = false` (PutObject and UploadPart sent as UNSIGNED-PAYLOAD, which s3s-fs accepts
/// after checking the rest of the SigV4 signature).
#[test]
fn objects_over_the_part_size_go_up_as_multipart_and_read_back_intact() {
    let stack = Stack::start();
    let (topic, bucket, name) = (unique("large"), "large-bucket", unique("large"));
    stack.create_topic(&topic, 1);
    stack.create_bucket(bucket);
    // 800 values of 16 KiB: about 13 MiB, cut into one object of at most 12 MiB and a rest.
    let records: Vec<_> = (0..800)
        .map(|index| {
            (
                0,
                Some(format!("k{index}").into_bytes()),
                Some(format!("{index:05}-{}", "v".repeat(16 * 1024 - 6)).into_bytes()),
            )
        })
        .collect();
    let produced = stack.produce(&topic, &records);
    let config = stack.config(
        &name,
        &topic,
        bucket,
        "max_bytes = 12582912\nmax_interval_ms = 2000",
        "",
    );
    set_sink_keys(&config, "part_size_bytes = 5242880\nsign_payload = false");
    let mut connector = stack.connector(&config, None);
    let objects = stack.wait_for_records(
        bucket,
        &format!("e2e/{topic}/"),
        800,
        Duration::from_secs(120),
    );
    assert_exactly_once(&objects, &topic, &produced);
    let sizes = stack.object_sizes(bucket, &format!("e2e/{topic}/"));
    let largest = sizes.iter().map(|(_, size, _)| *size).max().unwrap();
    assert!(
        largest > 10 * 1024 * 1024 && largest <= 12582912,
        "the large object is cut at max_bytes: {sizes:?}"
    );
    let (_, _, etag) = sizes.iter().find(|(_, size, _)| *size == largest).unwrap();
    assert!(
        etag.trim_matches('"').ends_with("-3"),
        "a 12 MiB object in 5 MiB parts is a 3-part multipart upload (ETag {etag})"
    );
    connector.stop();
}

/// A crash after objects were stored but before their offsets were committed, then a restart with
/// different batching: the objects already in the bucket are found by listing and not written
/// again (no duplicate, although the new cut would give them other keys), and their offsets are
/// committed.
#[test]
fn objects_stored_but_not_committed_are_not_written_again_after_a_crash() {
    let stack = Stack::start();
    let (topic, bucket, name) = (unique("crash"), "crash-bucket", unique("crash"));
    stack.create_topic(&topic, 1);
    stack.create_bucket(bucket);
    let prefix = format!("e2e/{topic}/");
    let records = |range: std::ops::Range<usize>| -> Vec<TestRecord> {
        range.map(|i| (0, tricky_key(i), tricky_value(i))).collect()
    };
    let mut produced = stack.produce_one_per_batch(&topic, &records(0..300));
    let first = stack.config(
        &name,
        &topic,
        bucket,
        "max_records = 50\nmax_interval_ms = 300",
        "",
    );
    let mut connector = stack.connector(&first, None);
    stack.wait_for_records(bucket, &prefix, 300, Duration::from_secs(60));
    let status = std::process::Command::new("kill")
        .args(["-KILL", &connector.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    connector.wait_exit(Duration::from_secs(10));
    // As if the crash came before the commit: the group is back at the start.
    stack.commit(&format!("connect-{name}"), &topic, 0, 0);
    let before: Vec<String> = stack
        .objects(bucket, &prefix)
        .into_iter()
        .map(|(key, _)| key)
        .collect();
    assert_eq!(before.len(), 6, "{before:?}");

    let second = stack.config(
        &name,
        &topic,
        bucket,
        "max_records = 70\nmax_interval_ms = 300",
        "",
    );
    let mut restarted = stack.connector(&second, None);
    restarted.wait_for_log("not written again", Duration::from_secs(60));
    produced.extend(stack.produce_one_per_batch(&topic, &records(300..400)));
    let objects = stack.wait_for_records(bucket, &prefix, 400, Duration::from_secs(60));
    assert_exactly_once(&objects, &topic, &produced);
    let keys: Vec<&String> = objects.iter().map(|(key, _)| key).collect();
    assert!(
        before.iter().all(|key| keys.contains(&key)),
        "the stored objects are kept"
    );
    restarted.stop();
    assert_eq!(
        stack
            .committed(&format!("connect-{name}"), &topic, 1)
            .get(&0),
        Some(&400)
    );
}

/// A backlog's last object is stored as soon as its partition is caught up, not after
/// `max_interval_ms`; a partition that keeps up with a trickle still fills its objects instead of
/// storing one tiny object per record.
#[test]
fn a_backlog_tail_is_stored_when_caught_up_while_a_trickle_still_fills_its_object() {
    let stack = Stack::start();
    let (topic, bucket, name) = (unique("tail"), "tail-bucket", unique("tail"));
    stack.create_topic(&topic, 1);
    stack.create_bucket(bucket);
    let backlog: Vec<_> = (0..250)
        .map(|index| (0, tricky_key(index), tricky_value(index)))
        .collect();
    let mut produced = stack.produce(&topic, &backlog);
    // An interval far longer than the test: only the catch-up can seal the tail this early.
    let config = stack.config(
        &name,
        &topic,
        bucket,
        "max_records = 100\nmax_interval_ms = 600000",
        "",
    );
    let prefix = format!("e2e/{topic}/");
    let mut connector = stack.connector(&config, None);
    connector.wait_admin(Duration::from_secs(30));
    let objects = stack.wait_for_records(bucket, &prefix, 250, Duration::from_secs(30));
    let keys: Vec<&str> = objects.iter().map(|(key, _)| key.as_str()).collect();
    assert_eq!(
        keys,
        [0, 100, 200]
            .map(|first| format!("{prefix}0/{first:020}-{:020}.json", (first + 99).min(249))),
        "the tail (200-249) is stored once the partition is caught up:\n{}",
        connector.logs()
    );
    let rotations = |reason: &str| {
        connector
            .scrape()
            .iter()
            .find(|(name, labels, _)| {
                name == "kafka_oss_sink_rotations_total"
                    && labels.get("reason").map(String::as_str) == Some(reason)
            })
            .map_or(0.0, |(_, _, value)| *value)
    };
    assert_eq!(rotations("count"), 2.0);
    assert_eq!(rotations("caught_up"), 1.0);

    // A trickle: the partition is caught up after every record, but was never behind by a full
    // object or for the interval, so nothing is sealed until the drain at shutdown.
    for index in 250..270 {
        let record = [(0, tricky_key(index), tricky_value(index))];
        produced.extend(stack.produce(&topic, &record));
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        stack.objects(bucket, &prefix).len(),
        3,
        "a trickle must not seal an object per record:\n{}",
        connector.logs()
    );
    assert_eq!(rotations("caught_up"), 1.0);
    connector.stop();
    let objects = stack.objects(bucket, &prefix);
    assert_exactly_once(&objects, &topic, &produced);
    assert_eq!(
        objects
            .last()
            .map(|(key, records)| (key.as_str(), records.len())),
        Some((
            format!("{prefix}0/{:020}-{:020}.json", 250, 269).as_str(),
            20
        )),
        "the trickle's 20 records are one object, sealed at shutdown"
    );
}
