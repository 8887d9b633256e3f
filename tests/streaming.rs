//! Streamed objects against a real broker and S3 server (s3s-fs): an object larger than the
//! part size goes to a staging upload part by part while it grows, and is created under its
//! key from the staging object (UploadPartCopy, conditional CompleteMultipartUpload) at seal.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use support::exactly_once::assert_bucket_once;
use support::s3_proxy::{Conditional, Operation};
use support::{
    set_sink_endpoint, set_sink_keys, sum_of, unique, Produced, Samples, Stack, TestRecord,
};

const RECORDS: usize = 40_000;
const VALUE_BYTES: usize = 1024;
const PART: u64 = 5 << 20;
/// Four parts: the least `memory.max_bytes` may be when objects stream.
const BUDGET: u64 = 4 * PART;

/// A one-partition topic holding `count` records of [`VALUE_BYTES`] (values filled with
/// `fill`), its bucket, and a config whose objects stream: up to 64 MiB, sealed `interval_ms`
/// after their first record, in parts of [`PART`] under a budget of [`BUDGET`].
fn streaming_topic(
    stack: &Stack,
    (topic, bucket, name): (&str, &str, &str),
    count: usize,
    fill: char,
    interval_ms: u64,
) -> (BTreeMap<(i32, i64), Produced>, PathBuf) {
    stack.create_topic(topic, 1);
    stack.create_bucket(bucket);
    let records: Vec<TestRecord> = (0..count)
        .map(|index| {
            let value = format!("{index:08}-{}", fill.to_string().repeat(VALUE_BYTES - 9));
            (
                0,
                Some(format!("k{index}").into_bytes()),
                Some(value.into_bytes()),
            )
        })
        .collect();
    let produced = stack.produce(topic, &records);
    let config = stack.config(
        name,
        topic,
        bucket,
        &format!("max_bytes = 67108864\nmax_records = 1000000\nmax_interval_ms = {interval_ms}"),
        &format!("[memory]\nmax_bytes = {BUDGET}\n"),
    );
    set_sink_keys(&config, &format!("part_size_bytes = {PART}"));
    (produced, config)
}

/// Sum of a metric's samples (every label set).
fn sum(samples: &Samples, name: &str) -> f64 {
    sum_of(samples, name, &[])
}

/// Peak resident memory of `pid` (`VmHWM`), in bytes.
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status
        .lines()
        .find(|line| line.starts_with("VmHWM:"))
        .expect("VmHWM in /proc/<pid>/status");
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

/// A backlog of about 44 MB of JSON in one partition, objects of up to 64 MiB, parts of 5 MiB and
/// a 20 MiB memory budget: the object, twice the budget, streams out in parts and is created
/// from its staging object; every record is stored exactly once, the object and upload metrics
/// count it once, peak RSS stays bounded, and no staging object or incomplete upload remains.
#[test]
fn an_object_larger_than_the_memory_budget_streams_out_in_parts_exactly_once() {
    let stack = Stack::start();
    let (topic, bucket, name) = (unique("stream"), "stream-bucket", unique("stream"));
    // Sealed by the interval once the backlog is read (it is read in a few seconds).
    let (produced, config) = streaming_topic(&stack, (&topic, bucket, &name), RECORDS, 's', 12_000);
    let mut connector = stack.connector(&config, None);
    connector.wait_admin(Duration::from_secs(30));

    let expected = produced.len() as f64;
    let deadline = Instant::now() + Duration::from_secs(60);
    let samples = loop {
        let samples = connector.scrape();
        // The copy counter's series is new when the object is stored: a scrape may render it
        // only after the records counter.
        if sum(&samples, "kafka_oss_sink_written_records_total") >= expected
            && sum(&samples, "kafka_oss_sink_objects_copied_total") >= 1.0
        {
            break samples;
        }
        assert!(
            Instant::now() < deadline,
            "not stored in time: {} of {expected} records\n{}",
            sum(&samples, "kafka_oss_sink_written_records_total"),
            connector.logs()
        );
        std::thread::sleep(Duration::from_millis(250));
    };
    let peak = peak_rss(connector.pid());
    connector.stop();

    let prefix = format!("e2e/{topic}/");
    let sizes = stack.object_sizes(bucket, &prefix);
    let largest = sizes.iter().map(|(_, size, _)| *size as u64).max().unwrap();
    let parts = sum(&samples, "kafka_oss_sink_parts_streamed_total");
    let copied = sum(&samples, "kafka_oss_sink_objects_copied_total");
    eprintln!(
        "objects {sizes:?}, {parts} parts streamed, {copied} objects copied, peak RSS {} MiB",
        peak >> 20
    );
    assert!(
        largest > 2 * BUDGET,
        "objects larger than the memory budget: {sizes:?}"
    );
    // Parts of 5 to 6 MiB (cut at the end of a chunk of up to 1 MiB), the rest sent at seal.
    let most = PART + (1 << 20);
    assert!(
        parts >= (largest / most) as f64 && parts * PART as f64 <= largest as f64,
        "{parts} parts streamed"
    );
    assert!(copied >= 1.0, "{copied} objects created from staging");
    // The object and upload metrics count each object once, under its key.
    assert_eq!(
        sum(&samples, "kafka_oss_sink_written_objects_total"),
        sizes.len() as f64
    );
    assert_eq!(
        sum(&samples, "kafka_oss_sink_written_bytes_total"),
        sizes.iter().map(|(_, size, _)| *size as f64).sum::<f64>()
    );
    // The budget plus the process itself (a debug build, librdkafka); the object alone is more
    // than twice the budget.
    assert!(
        peak < BUDGET + (112 << 20),
        "peak RSS {} MiB with a {} MiB budget",
        peak >> 20,
        BUDGET >> 20
    );

    // Exactly once, committed to the end.
    let objects = stack.objects(bucket, &prefix);
    assert_bucket_once(&objects, &topic, &produced, &BTreeSet::new());
    let committed = stack.committed(&format!("connect-{name}"), &topic, 1);
    assert_eq!(committed, BTreeMap::from([(0, RECORDS as i64)]));

    // No staging object, no incomplete upload (s3s-fs 0.14 does not implement
    // ListMultipartUploads: it keeps `.upload-<id>.json` in its directory until the upload is
    // completed or aborted).
    let client = stack.s3();
    let staging = stack.block_on(async {
        actors::store::list_objects(&client, bucket, "e2e/.staging/", None)
            .await
            .unwrap()
    });
    assert!(staging.is_empty(), "staging objects left: {staging:?}");
    let uploads: Vec<String> = std::fs::read_dir(stack.s3_root())
        .unwrap()
        .flatten()
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with(".upload-") && name.ends_with(".json"))
        .collect();
    assert!(uploads.is_empty(), "incomplete uploads left: {uploads:?}");
}

/// Staging objects left in the bucket (`e2e/.staging/`).
fn staging_objects(stack: &Stack, bucket: &str) -> Vec<String> {
    let client = stack.s3();
    stack.block_on(async {
        actors::store::list_objects(&client, bucket, "e2e/.staging/", None)
            .await
            .unwrap()
            .into_iter()
            .filter_map(|object| object.key)
            .collect()
    })
}

/// `kill -9` after a streamed object's staging upload is complete and before the object is
/// created from it (`after-staging-complete`): the staging object stays, no object holds the
/// records and nothing is committed. The restarted connector deletes the staging object when
/// the partition is assigned, streams the records again and stores each once.
#[test]
fn a_crash_between_the_staging_object_and_the_object_loses_nothing_and_leaves_nothing() {
    if !cfg!(feature = "failpoints") {
        panic!("build with `--features kafka-oss-sink/failpoints` (scripts/test does)");
    }
    let stack = Stack::start();
    let (topic, bucket, name) = (
        unique("stream-crash"),
        "stream-crash",
        unique("stream-crash"),
    );
    let (produced, config) = streaming_topic(&stack, (&topic, bucket, &name), 15_000, 'c', 4_000);

    let mut first = stack.connector_with_env(
        &config,
        None,
        &[],
        &[("FAILPOINTS", "after-staging-complete=pause")],
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while staging_objects(&stack, bucket).is_empty() {
        assert!(
            Instant::now() < deadline,
            "no staging object completed\n{}",
            first.logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let left = staging_objects(&stack, bucket);
    assert!(stack.objects(bucket, &format!("e2e/{topic}/")).is_empty());
    first.kill();
    // Let the killed member's session expire (tansu quirk, tests/README.md).
    std::thread::sleep(Duration::from_secs(7));
    let committed = stack.committed(&format!("connect-{name}"), &topic, 1);
    assert!(
        committed.get(&0).is_none_or(|offset| *offset == 0),
        "{committed:?}"
    );

    let mut second = stack.connector(&config, None);
    let prefix = format!("e2e/{topic}/");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let stored: usize = stack
            .objects(bucket, &prefix)
            .iter()
            .map(|(_, records)| records.len())
            .sum();
        let committed = stack.committed(&format!("connect-{name}"), &topic, 1);
        if stored >= produced.len()
            && committed.get(&0) == Some(&(produced.len() as i64))
            && staging_objects(&stack, bucket).is_empty()
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not recovered in time: {stored} records stored, committed {committed:?}, staging \
             {:?}\n{}",
            staging_objects(&stack, bucket),
            second.logs()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    second.wait_for_log(
        "deleted a staging object left by an earlier owner",
        Duration::from_secs(5),
    );
    second.stop();
    assert!(!left.is_empty());
    assert_bucket_once(
        &stack.objects(bucket, &prefix),
        &topic,
        &produced,
        &BTreeSet::new(),
    );
}

/// Against a store that behaves like OSS's S3 API (`If-None-Match` answered 501, an existing key
/// refused by `x-oss-forbid-overwrite`, emulated by the proxy), with
/// `conditional_create = "oss_forbid_overwrite"`: the object is created from its staging object
/// with OSS's header on CreateMultipartUpload and CompleteMultipartUpload, never
/// `If-None-Match`; the staging upload carries neither (its key is unique); every record is
/// stored once and nothing is left under the staging folder.
#[test]
fn a_streamed_object_is_created_with_oss_conditional_header() {
    let stack = Stack::start();
    let proxy = stack.s3_proxy();
    proxy.set_conditional(Conditional::Oss);
    let (topic, bucket, name) = (unique("stream-oss"), "stream-oss", unique("stream-oss"));
    let (produced, config) = streaming_topic(&stack, (&topic, bucket, &name), 20_000, 'o', 4_000);
    set_sink_keys(&config, "conditional_create = \"oss_forbid_overwrite\"");
    set_sink_endpoint(&config, &proxy.endpoint());
    let mut connector = stack.connector(&config, None);
    let prefix = format!("e2e/{topic}/");
    let objects = stack.wait_for_records(bucket, &prefix, produced.len(), Duration::from_secs(60));
    connector.stop();
    assert_bucket_once(&objects, &topic, &produced, &BTreeSet::new());

    let requests = proxy.requests();
    let of = |operation: Operation, object: bool| -> Vec<_> {
        requests
            .iter()
            .filter(|request| request.operation == operation)
            .filter(|request| {
                request
                    .key
                    .as_deref()
                    .is_some_and(|key| key.starts_with(&prefix) == object)
            })
            .collect()
    };
    let copies: Vec<_> = requests
        .iter()
        .filter(|request| request.query.contains("x-id=UploadPartCopy"))
        .collect();
    assert!(
        !copies.is_empty(),
        "the object is copied from its staging object"
    );
    for request in of(Operation::CompleteMultipartUpload, true)
        .into_iter()
        .chain(of(Operation::CreateMultipartUpload, true))
    {
        assert_eq!(
            request.header("x-oss-forbid-overwrite"),
            Some("true"),
            "{request:?}"
        );
    }
    assert!(!of(Operation::CompleteMultipartUpload, true).is_empty());
    let staging = of(Operation::UploadPart, false);
    assert!(staging.len() >= 2, "parts streamed: {}", staging.len());
    // (The start-up probe's own requests, under another key, test the header on purpose.)
    let ours = |request: &&support::s3_proxy::Request| {
        request.key.as_deref().is_some_and(|key| {
            key.starts_with(&prefix) || key.starts_with(&format!("e2e/.staging/{topic}/"))
        })
    };
    for request in requests.iter().filter(ours) {
        assert!(request.header("if-none-match").is_none(), "{request:?}");
        assert_eq!(request.injected, None, "{request:?}");
    }
    for request in of(Operation::CompleteMultipartUpload, false) {
        assert_eq!(
            request.header("x-oss-forbid-overwrite"),
            None,
            "{request:?}"
        );
    }
    assert!(staging_objects(&stack, bucket).is_empty());
}
