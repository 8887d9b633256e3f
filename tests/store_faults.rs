//! End-to-end tests of object-store faults (docs: ../shared/reliability.md §8.5, D1 to D11, and
//! issue 11: finding 4 and the recreated topic) against the real stack: tansu, s3s-fs behind the
//! fault-injecting S3 proxy (tests/support/s3_proxy.rs), and the connector binary.
//!
//! Each test that expects the copy to go through checks exactly-once twice: the bucket read back
//! holds every produced record once with its key and value (and no error topic holds any of
//! them), and `kafka-oss-sink reconcile --deep` exits 0. Tests where the connector must stop
//! check where it stopped, that nothing was committed past it, and that the object in its way
//! is unchanged (same bytes, same file: never overwritten).
//!
//! Records are produced one per batch: reconcile reads tansu's high watermarks, which are only
//! right after single-record batches (tests/README.md, "Broker quirks"). Waits are polls with
//! deadlines or the proxy's hooks; the only timed parts are the outages themselves.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::ByteStream;
use serde_json::Value;
use support::s3_proxy::{Conditional, Down, Fault, HoldAt, Operation, Outcome, Request, When};
use support::{
    set_sink_endpoint, set_sink_keys, sum_of, unique, Connector, Produced, S3Proxy, Samples, Stack,
    TestRecord, ACCESS_KEY_ID, DEBUG_PROCESS_ALLOWANCE,
};

const BUCKET: &str = "faults";
const WAIT: Duration = Duration::from_secs(60);
/// The smallest part size the connector accepts; objects above it go up as multipart uploads.
const PART_SIZE: usize = 5 * 1024 * 1024;

/// One test's world: a one-partition topic, a bucket behind the proxy, a connector config.
struct Rig {
    stack: Stack,
    proxy: S3Proxy,
    topic: String,
    name: String,
    config: PathBuf,
    /// `e2e/<topic>/`: where the connector's objects go.
    prefix: String,
}

impl Rig {
    /// The connector's config points at the proxy, with `batching`, and quick retries (50 ms
    /// doubling up to 500 ms) plus the `[sink]` lines `sink`; the per-attempt timeout is 2 s
    /// unless `sink` sets it. Failure policy and `max_upload_attempts` are the defaults (`log`,
    /// 10).
    fn start(label: &str, batching: &str, sink: &str) -> Rig {
        Rig::start_with(label, 1, batching, sink, "")
    }

    /// Like [`Rig::start`], with `partitions` partitions and `extra` (more sections) in the
    /// config.
    fn start_with(label: &str, partitions: u32, batching: &str, sink: &str, extra: &str) -> Rig {
        let stack = Stack::start();
        let (topic, name) = (unique(label), unique(label));
        stack.create_topic(&topic, partitions);
        stack.create_bucket(BUCKET);
        let proxy = stack.s3_proxy();
        let config = stack.config(&name, &topic, BUCKET, batching, extra);
        set_sink_endpoint(&config, &proxy.endpoint());
        let mut lines = sink.to_owned();
        if !sink.contains("request_timeout_ms") {
            lines.push_str("\nrequest_timeout_ms = 2000");
        }
        set_sink_keys(&config, &lines);
        let prefix = format!("e2e/{topic}/");
        Rig {
            stack,
            proxy,
            topic,
            name,
            config,
            prefix,
        }
    }

    /// Starts the connector on `config` and waits until its start-up capability probe is done
    /// (the probe writes, lists and deletes `e2e/.kafka-oss-sink-probe-{pid}-{nanos}` through the proxy; its
    /// delete comes last). Faults and holds meant for the uploads are set after this: the first
    /// upload needs the group joined, seconds later.
    fn run(&self, config: &Path) -> Connector {
        let deletes = self
            .proxy
            .requests_of(Operation::DeleteObject)
            .iter()
            .filter(|r| r.outcome == Outcome::Sent && r.status == Some(204))
            .count();
        let mut connector = self.stack.connector(config, None);
        connector.wait_admin(WAIT);
        let probed = self
            .proxy
            .wait_for(Operation::DeleteObject, deletes + 1, WAIT);
        assert!(
            probed
                .key
                .as_deref()
                .unwrap()
                .contains(".kafka-oss-sink-probe-"),
            "{}",
            self.proxy.summary()
        );
        connector
    }

    /// The PutObject requests for the topic's objects (not the probe's), in arrival order.
    fn puts(&self) -> Vec<Request> {
        self.proxy
            .requests_of(Operation::PutObject)
            .into_iter()
            .filter(|r| r.key.as_deref().unwrap_or("").starts_with(&self.prefix))
            .collect()
    }

    /// Records `k<i>` / `value-<i>` for each `i` of `range`, one per batch.
    fn produce(&self, range: Range<usize>) -> BTreeMap<(i32, i64), Produced> {
        let records: Vec<TestRecord> = range
            .map(|i| {
                (
                    0,
                    Some(format!("k{i}").into_bytes()),
                    Some(format!("value-{i}").into_bytes()),
                )
            })
            .collect();
        self.stack.produce_one_per_batch(&self.topic, &records)
    }

    /// Like [`Rig::produce`] with values of `size` bytes, to make objects past the part size.
    fn produce_large(&self, range: Range<usize>, size: usize) -> BTreeMap<(i32, i64), Produced> {
        let records: Vec<TestRecord> = range
            .map(|i| {
                let head = format!("large-{i}-");
                let value = format!("{head}{}", "x".repeat(size - head.len()));
                (
                    0,
                    Some(format!("k{i}").into_bytes()),
                    Some(value.into_bytes()),
                )
            })
            .collect();
        self.stack.produce_one_per_batch(&self.topic, &records)
    }

    /// Every object of the topic in the bucket (read from s3s-fs itself, not through the
    /// proxy), with its records.
    fn objects(&self) -> Vec<(String, Vec<Value>)> {
        self.stack.objects(BUCKET, &self.prefix)
    }

    fn stored_count(&self) -> usize {
        self.objects()
            .iter()
            .map(|(_, records)| records.len())
            .sum()
    }

    /// Polls the bucket until it holds `count` records; panics with the connector's log and the
    /// proxy's request log otherwise.
    fn wait_stored(&self, count: usize, connector: &Connector) {
        let deadline = Instant::now() + WAIT;
        loop {
            let found = self.stored_count();
            if found >= count {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{found} of {count} records in the bucket after {WAIT:?}\nconnector log:\n{}\nrequests:\n{}",
                connector.logs(),
                self.proxy.summary()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The offset the group `connect-<name>` committed for partition 0.
    fn committed(&self, name: &str) -> Option<i64> {
        self.stack
            .committed(&format!("connect-{name}"), &self.topic, 1)
            .get(&0)
            .copied()
    }

    /// Records of the connector's error topics (dead-letter and abnormal-data: both
    /// `connect-error-<name>` by default) that came from the topic.
    fn routed(&self, name: &str) -> Vec<i64> {
        self.stack
            .read_topic(&format!("connect-error-{name}"))
            .into_iter()
            .filter(|record| {
                record.header("__connect.errors.topic").as_deref() == Some(self.topic.as_str())
            })
            .map(|record| {
                record
                    .header("__connect.errors.offset")
                    .unwrap()
                    .parse()
                    .unwrap()
            })
            .collect()
    }

    /// `kafka-oss-sink reconcile --config <config> <args>` against s3s-fs itself (whatever the
    /// proxy is doing): exit code and output.
    fn reconcile(&self, config: &Path, args: &[&str]) -> (i32, String) {
        let direct = config.with_extension("reconcile.toml");
        std::fs::copy(config, &direct).unwrap();
        set_sink_endpoint(&direct, &self.stack.endpoint());
        let output = Command::new(env!("CARGO_BIN_EXE_kafka-oss-sink"))
            .args(["reconcile", "--config"])
            .arg(&direct)
            .args(args)
            .env("OSS_ACCESS_KEY_ID", ACCESS_KEY_ID)
            .env("OSS_ACCESS_KEY_SECRET", &self.stack.secret)
            .output()
            .expect("running reconcile");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(
            !text.contains(&self.stack.secret),
            "secret printed:\n{text}"
        );
        (output.status.code().expect("an exit code"), text)
    }

    /// Exactly once: the bucket holds each produced record once, with its key and value, and
    /// nothing else; no error topic holds a record of the topic; everything is committed; and
    /// `reconcile --deep` agrees (exit 0).
    fn assert_exactly_once(&self, produced: &BTreeMap<(i32, i64), Produced>) {
        let objects = self.objects();
        if objects
            .iter()
            .map(|(_, records)| records.len())
            .sum::<usize>()
            != produced.len()
        {
            eprintln!("requests:\n{}", self.proxy.summary());
        }
        support::exactly_once::assert_bucket_once(
            &objects,
            &self.topic,
            produced,
            &BTreeSet::new(),
        );
        assert_eq!(
            self.routed(&self.name),
            Vec::<i64>::new(),
            "records in an error topic"
        );
        assert_eq!(
            self.committed(&self.name),
            Some(produced.len() as i64),
            "everything committed"
        );
        let (code, report) = self.reconcile(&self.config, &["--deep"]);
        assert_eq!(code, 0, "reconcile:\n{report}");
    }

    /// The object file s3s-fs keeps for `key`: its bytes, inode and modification time. An
    /// overwrite (s3s-fs writes a temporary file and renames it) changes the inode.
    fn object_file(&self, key: &str) -> (Vec<u8>, u64, i64) {
        let path = self.stack.s3_root().join(BUCKET).join(key);
        let metadata =
            std::fs::metadata(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
        (
            std::fs::read(&path).unwrap(),
            metadata.ino(),
            metadata.mtime_nsec() + metadata.mtime() * 1_000_000_000,
        )
    }

    /// Puts an object straight into s3s-fs (not through the proxy), with user metadata.
    fn put_object(&self, key: &str, body: &[u8], metadata: &[(&str, String)]) {
        let client = self.stack.s3();
        self.stack.block_on(async {
            let mut request = client
                .put_object()
                .bucket(BUCKET)
                .key(key)
                .body(ByteStream::from(body.to_vec()));
            for (name, value) in metadata {
                request = request.metadata(*name, value);
            }
            request.send().await.expect("seeding an object");
        });
    }

    /// Polls `/readyz` until it answers 200 (`ready`) or 503 (not ready); returns the body.
    fn wait_readyz(&self, connector: &Connector, ready: bool) -> String {
        let wanted = if ready { 200 } else { 503 };
        let deadline = Instant::now() + WAIT;
        loop {
            let (status, body) = connector.admin_get("/readyz");
            if status == wanted {
                return body;
            }
            assert!(
                Instant::now() < deadline,
                "/readyz never answered {wanted}; last: {status} {body}\n{}",
                connector.logs()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// The sum of a counter's samples with the label `reason`.
fn retries(connector: &Connector, reason: &str) -> f64 {
    connector
        .scrape()
        .iter()
        .filter(|(name, labels, _)| {
            name == "kafka_oss_sink_retries_total"
                && labels.get("reason").map(String::as_str) == Some(reason)
        })
        .map(|(_, _, value)| value)
        .sum()
}

/// The highest `attempt` of the uploader's "upload failed, retrying" log lines.
fn most_attempts(logs: &str) -> u32 {
    logs.lines()
        .filter(|line| line.contains("upload failed, retrying"))
        .filter_map(|line| line.split(" attempt=").nth(1))
        .filter_map(|rest| rest.split_whitespace().next()?.parse().ok())
        .max()
        .unwrap_or(0)
}

/// The PutObject requests for `key`, in arrival order.
fn puts_of(proxy: &S3Proxy, key: &str) -> Vec<Request> {
    proxy
        .requests_of(Operation::PutObject)
        .into_iter()
        .filter(|request| request.key.as_deref() == Some(key))
        .collect()
}

fn object_key(prefix: &str, first: i64, last: i64) -> String {
    format!("{prefix}0/{first:020}-{last:020}.json")
}

// ---------------------------------------------------------------------------------------------
// Issue 11, finding 4: an unavailable or unauthorised store is waited for, never a reason to
// route records to an error topic.

/// Runs the connector with the defaults (`log`, `max_upload_attempts = 10`) through an outage:
/// records keep arriving while `break_store` is in effect for `outage`, then `mend_store`.
/// Checks that `/readyz` says not ready (naming the bucket) during the outage and ready after,
/// that nothing is committed or stored meanwhile, and that afterwards every record is in the
/// bucket once and none in an error topic. Returns the connector (stopped) for more checks.
///
/// Before 43460cb every failed attempt counted against `max_upload_attempts`: with 50 ms to
/// 500 ms between attempts, ten attempts take about 3 s, so an outage of this length sent the
/// objects' records to the abnormal-data topic and committed them.
fn ride_out(
    label: &str,
    outage: Duration,
    break_store: impl FnOnce(&S3Proxy),
    mend_store: impl FnOnce(&S3Proxy),
) -> (Rig, Connector) {
    let rig = Rig::start(label, "max_records = 10\nmax_interval_ms = 300", "");
    let mut produced = rig.produce(0..30);
    let mut connector = rig.run(&rig.config);
    rig.wait_stored(30, &connector);
    rig.wait_readyz(&connector, true);

    break_store(&rig.proxy);
    let started = Instant::now();
    let mut next = 30;
    let mut not_ready = None;
    while started.elapsed() < outage {
        produced.extend(rig.produce(next..next + 3));
        next += 3;
        if not_ready.is_none() {
            let (status, body) = connector.admin_get("/readyz");
            if status == 503 {
                not_ready = Some(body);
            }
        }
        // Paces the load over the outage; not a wait for anything.
        std::thread::sleep(Duration::from_millis(300));
    }
    let body = not_ready.unwrap_or_else(|| rig.wait_readyz(&connector, false));
    assert!(body.contains("bucket"), "{body}");
    assert_eq!(
        rig.committed(&rig.name),
        Some(30),
        "nothing committed during the outage"
    );
    assert_eq!(rig.stored_count(), 30, "nothing stored during the outage");
    assert_eq!(rig.routed(&rig.name), Vec::<i64>::new());
    let attempts = most_attempts(&connector.logs());
    assert!(
        attempts > 10,
        "an object was tried more often than max_upload_attempts (10) during the outage, \
         and kept: {attempts} attempts"
    );

    mend_store(&rig.proxy);
    rig.wait_stored(next, &connector);
    rig.wait_readyz(&connector, true);
    connector.stop();
    rig.assert_exactly_once(&produced);
    (rig, connector)
}

/// The bucket unreachable (connections refused) for 20 s while records keep arriving: the
/// connector waits, reports it in `/readyz`, and stores everything once it is back.
#[test]
fn a_bucket_down_for_20_s_is_waited_for_and_no_record_is_routed() {
    let (_rig, connector) = ride_out(
        "down",
        Duration::from_secs(20),
        |proxy| proxy.down(Down::Refuse),
        |proxy| proxy.up(),
    );
    let logs = connector.logs();
    assert!(logs.contains("UPLOAD_UNAVAILABLE"), "{logs}");
    assert!(!logs.contains("abnormal-data topic"), "{logs}");
}

/// D3 under the memory budget (issue 12): the store unreachable for 45 s while records of 6 KiB
/// keep arriving at about 3.7 MB/s over four partitions, with `memory.max_bytes` = 32 MiB. What
/// is read fills the budget (sealed objects wait for the store) and consumption pauses: the
/// connector reads at most the budget's worth during the outage, while the producer adds about
/// five times as much, which waits in Kafka; partitions wait for memory; peak RSS stays under
/// the budget plus [`DEBUG_PROCESS_ALLOWANCE`] (a debug process's own memory, as in
/// tests/memory.rs). Without the budget librdkafka alone would pre-fetch what the outage adds
/// (64 MiB per partition by default), past that bound. Once the store is back the connector
/// catches up under the same load and every record is stored exactly once.
#[test]
fn the_store_down_for_45_s_under_steady_load_pauses_consumption_within_the_budget() {
    const PARTITIONS: i32 = 4;
    const RATE: u32 = 600;
    const VALUE: usize = 6 * 1024;
    const BUDGET: u64 = 32 << 20;
    const OUTAGE: Duration = Duration::from_secs(45);
    let rig = Rig::start_with(
        "d3-budget",
        PARTITIONS as u32,
        // Objects of 4 MiB (sealed by size): the per-partition bounds (one sealed object
        // waiting per partition, the shared upload queue) then hold more than the budget, so
        // the budget is what stops consumption.
        "max_bytes = 4194304\nmax_interval_ms = 10000",
        "part_size_bytes = 5242880",
        &format!("[memory]\nmax_bytes = {BUDGET}\n"),
    );
    let mut connector = rig.run(&rig.config);
    let metric = |samples: &Samples, name: &str| sum_of(samples, name, &[]);
    let written = |connector: &Connector| {
        metric(&connector.scrape(), "kafka_oss_sink_written_records_total") as usize
    };
    let wait_written = |connector: &Connector, count: usize, within: Duration| {
        let deadline = Instant::now() + within;
        while written(connector) < count {
            assert!(
                Instant::now() < deadline,
                "{} of {count} records stored after {within:?}\n{}",
                written(connector),
                connector.logs()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    let producing = rig
        .stack
        .produce_continuously_sized(&rig.topic, PARTITIONS, RATE, VALUE);
    // Steady state: two seconds' worth of records stored.
    wait_written(&connector, 2 * RATE as usize, WAIT);

    rig.proxy.down(Down::Refuse);
    let started = Instant::now();
    let sent_before = producing.sent();
    let consumed_before = metric(&connector.scrape(), "kafka_oss_sink_consumed_bytes_total");
    // (seconds into the outage, bytes consumed since it began)
    let mut consumed = Vec::new();
    let (mut peak_rss, mut most_paused) = (0, 0.0_f64);
    while started.elapsed() < OUTAGE {
        let samples = connector.scrape();
        consumed.push((
            started.elapsed().as_secs_f64(),
            metric(&samples, "kafka_oss_sink_consumed_bytes_total") - consumed_before,
        ));
        most_paused = most_paused.max(sum_of(
            &samples,
            "kafka_oss_sink_memory_paused_partitions",
            &[("waiting_for", "memory")],
        ));
        peak_rss = peak_rss.max(connector.status_bytes("VmRSS"));
        // Paces the sampling; the outage itself is the timed part.
        std::thread::sleep(Duration::from_millis(250));
    }
    let peak_outage = connector.status_bytes("VmHWM");
    let sent_outage = producing.sent() - sent_before;
    let stored_outage = written(&connector);
    rig.proxy.up();

    // Catches up under the same load: what was sent by the end of the outage, then the rest.
    let back = Instant::now();
    wait_written(&connector, sent_before + sent_outage, WAIT);
    let caught_up = back.elapsed();
    let produced = producing.stop();
    wait_written(&connector, produced.len(), WAIT);
    let peak = connector.status_bytes("VmHWM");
    connector.stop();

    let (_, in_outage) = *consumed.last().unwrap();
    let last_10_s = consumed
        .iter()
        .find(|(at, _)| *at >= OUTAGE.as_secs_f64() - 10.0)
        .map(|(_, bytes)| in_outage - bytes)
        .unwrap();
    eprintln!(
        "outage: {sent_outage} records sent ({} MiB), {} MiB consumed ({} MiB in its last 10 s), \
         {stored_outage} records stored before and during it, at most {most_paused} partitions \
         waiting for memory; peak RSS {} MiB during it ({} MiB sampled), {} MiB in all; caught \
         up {caught_up:?} after",
        (sent_outage * VALUE) >> 20,
        in_outage as u64 >> 20,
        last_10_s as u64 >> 20,
        peak_outage >> 20,
        peak_rss >> 20,
        peak >> 20,
    );
    assert!(
        (sent_outage * VALUE) as u64 > 4 * BUDGET,
        "the load during the outage is many times the budget"
    );
    assert!(
        in_outage <= BUDGET as f64,
        "consumption paused within the budget's worth: {in_outage} bytes read during the outage"
    );
    assert!(
        last_10_s < (1 << 20) as f64,
        "consumption stopped: {last_10_s} bytes read in the outage's last 10 s"
    );
    assert!(most_paused >= 1.0, "partitions waited for memory");
    assert!(
        peak_outage < BUDGET + DEBUG_PROCESS_ALLOWANCE && peak < BUDGET + DEBUG_PROCESS_ALLOWANCE,
        "peak RSS {} MiB during the outage, {} MiB in all, with a {} MiB budget",
        peak_outage >> 20,
        peak >> 20,
        BUDGET >> 20
    );

    // Exactly once: the bucket, the committed offsets, the error topics, reconcile.
    support::exactly_once::assert_bucket_once(
        &rig.objects(),
        &rig.topic,
        &produced,
        &BTreeSet::new(),
    );
    let mut ends: BTreeMap<i32, i64> = BTreeMap::new();
    for (partition, offset) in produced.keys() {
        let end = ends.entry(*partition).or_default();
        *end = (*end).max(offset + 1);
    }
    assert_eq!(
        rig.stack
            .committed(&format!("connect-{}", rig.name), &rig.topic, PARTITIONS),
        ends,
        "everything committed"
    );
    assert_eq!(rig.routed(&rig.name), Vec::<i64>::new());
    let (code, report) = rig.reconcile(&rig.config, &["--deep"]);
    assert_eq!(code, 0, "reconcile:\n{report}");
}

/// D6: 403 `AccessDenied` on every PutObject for 12 s (a revoked policy) while records keep
/// arriving: an infrastructure failure, retried well past `max_upload_attempts`, no record
/// routed, everything stored once the permission is back.
#[test]
fn access_denied_for_a_while_is_waited_for_and_no_record_is_routed() {
    let denial = std::cell::Cell::new(None);
    let (rig, connector) = ride_out(
        "denied",
        Duration::from_secs(12),
        |proxy| {
            denial.set(Some(proxy.fault(
                Operation::PutObject,
                Fault::access_denied(),
                When::Always,
            )))
        },
        |proxy| proxy.clear_fault(denial.take().unwrap()),
    );
    let mut denied_per_key: BTreeMap<String, usize> = BTreeMap::new();
    for request in rig.proxy.requests_of(Operation::PutObject) {
        if request.status == Some(403) {
            *denied_per_key.entry(request.key.unwrap()).or_default() += 1;
        }
    }
    let most = denied_per_key.values().copied().max().unwrap_or(0);
    assert!(
        most > 10,
        "one object was denied more often than max_upload_attempts (10) and still stored: \
         {denied_per_key:?}"
    );
    assert!(connector.logs().contains("UPLOAD_ACCESS_DENIED"));
}

// ---------------------------------------------------------------------------------------------
// D1, D2: errors the store answers, retried until the object is stored.

/// D1: 500 `InternalError` on a seeded 20 % of PutObject, UploadPart and
/// CompleteMultipartUpload, with small objects and objects past the part size (multipart), plus
/// the first CompleteMultipartUpload failing on all three of the SDK's attempts, so that the
/// connector's own retry redoes a whole multipart upload: every object stored once, the retry
/// metric counts the failed upload.
#[test]
fn internal_errors_on_a_fifth_of_uploads_are_retried_to_exactly_once() {
    let rig = Rig::start(
        "internal",
        "max_records = 10\nmax_bytes = 6291456\nmax_interval_ms = 10000",
        "part_size_bytes = 5242880\nupload_concurrency = 1",
    );
    let mut produced = rig.produce(0..60);
    // 30 values of 600 KiB: objects of 10 records, about 6 MiB, each in two parts.
    produced.extend(rig.produce_large(60..90, 600 * 1024));
    produced.extend(rig.produce(90..150));
    let mut connector = rig.run(&rig.config);
    let proxy = &rig.proxy;
    proxy.fault(
        Operation::CompleteMultipartUpload,
        Fault::internal_error(),
        When::Next(3),
    );
    proxy.fault(
        [
            Operation::PutObject,
            Operation::UploadPart,
            Operation::CompleteMultipartUpload,
        ],
        Fault::internal_error(),
        When::Fraction {
            rate: 0.2,
            seed: 11,
        },
    );
    rig.wait_stored(150, &connector);
    let retried = retries(&connector, "UPLOAD_UNAVAILABLE");
    connector.stop();

    let requests = proxy.requests();
    for operation in [
        Operation::PutObject,
        Operation::UploadPart,
        Operation::CompleteMultipartUpload,
    ] {
        assert!(
            requests
                .iter()
                .any(|r| r.operation == operation && r.status == Some(500)),
            "no 500 on {operation:?}:\n{}",
            proxy.summary()
        );
    }
    let completed = proxy
        .requests_of(Operation::CompleteMultipartUpload)
        .into_iter()
        .filter(|r| r.status == Some(200))
        .count();
    assert!(completed >= 2, "objects past the part size are multipart");
    assert!(
        retried >= 1.0,
        "the failed multipart upload is counted as a retry"
    );
    let sizes = rig.stack.object_sizes(BUCKET, &rig.prefix);
    assert!(
        sizes.iter().any(|(_, size, _)| *size > PART_SIZE as i64),
        "{sizes:?}"
    );
    rig.assert_exactly_once(&produced);
}

/// D2: bursts of 503 `SlowDown` (eight in a row, longer than the SDK's three attempts, twice
/// while records arrive): backed off and retried, no partition stops, every object once.
#[test]
fn bursts_of_slow_down_are_backed_off_and_retried() {
    let rig = Rig::start("slowdown", "max_records = 10\nmax_interval_ms = 300", "");
    let mut produced = rig.produce(0..20);
    let mut connector = rig.run(&rig.config);
    rig.wait_stored(20, &connector);
    for burst in 0..2 {
        let stored = rig
            .proxy
            .requests_of(Operation::PutObject)
            .iter()
            .filter(|r| r.status == Some(200))
            .count();
        rig.proxy
            .fault(Operation::PutObject, Fault::slow_down(), When::Next(8));
        let first = 20 + burst * 20;
        produced.extend(rig.produce(first..first + 20));
        rig.proxy.wait_for(Operation::PutObject, stored + 1, WAIT);
    }
    rig.wait_stored(60, &connector);
    let slowed = rig
        .proxy
        .requests_of(Operation::PutObject)
        .iter()
        .filter(|r| r.error_code.as_deref() == Some("SlowDown"))
        .count();
    assert_eq!(slowed, 16, "{}", rig.proxy.summary());
    assert!(retries(&connector, "UPLOAD_UNAVAILABLE") >= 2.0);
    let (_, status) = connector.admin_get("/status");
    assert!(!status.contains("FAILED"), "{status}");
    connector.stop();
    rig.assert_exactly_once(&produced);
}

// ---------------------------------------------------------------------------------------------
// D4, D5: requests that break or never end.

/// D4: the connection reset in the middle of a PutObject body and of an UploadPart body: the
/// store keeps no partial object (nothing under the key while the retry waits), the retry
/// stores it, every object once.
#[test]
fn a_connection_reset_mid_body_leaves_no_partial_object() {
    let rig = Rig::start(
        "reset",
        "max_records = 20\nmax_bytes = 6291456\nmax_interval_ms = 10000",
        "part_size_bytes = 5242880\nupload_concurrency = 1",
    );
    let mut produced = rig.produce(0..20);
    produced.extend(rig.produce_large(20..35, 400 * 1024));
    let mut connector = rig.run(&rig.config);
    let proxy = &rig.proxy;
    proxy.fault(Operation::PutObject, Fault::ResetMidBody, When::Next(1));
    proxy.fault(Operation::UploadPart, Fault::ResetMidBody, When::Next(1));
    // A reset request never reaches the hold, so the PutObject held is the reset one's retry.
    let hold = proxy.hold_next(Operation::PutObject, HoldAt::BeforeUpstream);

    let retry = hold.wait_held(WAIT);
    let reset = &rig.puts()[0];
    assert_eq!(reset.outcome, Outcome::Reset);
    assert_eq!(retry.key, reset.key, "{}", proxy.summary());
    let key = reset.key.clone().unwrap();
    assert!(
        !rig.stack.s3_root().join(BUCKET).join(&key).exists(),
        "a partial object is stored under {key}"
    );
    drop(hold);
    rig.wait_stored(35, &connector);
    connector.stop();

    let parts = proxy.requests_of(Operation::UploadPart);
    assert_eq!(parts[0].outcome, Outcome::Reset, "{}", proxy.summary());
    assert!(proxy
        .requests_of(Operation::CompleteMultipartUpload)
        .iter()
        .any(|r| r.status == Some(200)));
    rig.assert_exactly_once(&produced);
}

/// D5: PutObject hangs (the store accepts and never answers) on the SDK's three attempts: each
/// attempt's timeout (`request_timeout_ms = 1000`) fires, the connector logs the timeout and
/// retries, and the object is stored on the next attempt.
#[test]
fn a_hung_request_times_out_and_the_object_is_stored_on_a_retry() {
    let rig = Rig::start(
        "hung",
        "max_records = 10\nmax_interval_ms = 300",
        "request_timeout_ms = 1000\nupload_concurrency = 1",
    );
    let produced = rig.produce(0..20);
    let mut connector = rig.run(&rig.config);
    let hang = rig
        .proxy
        .fault(Operation::PutObject, Fault::Hang, When::Next(3));
    rig.wait_stored(20, &connector);
    let retried = retries(&connector, "UPLOAD_UNAVAILABLE");
    rig.proxy.clear_fault(hang);
    connector.stop();

    let key = rig.puts()[0].key.clone().unwrap();
    let attempts = puts_of(&rig.proxy, &key);
    assert!(attempts.len() >= 4, "{}", rig.proxy.summary());
    for hung in &attempts[..3] {
        assert_eq!(hung.injected.as_deref(), Some("hang"));
        assert_eq!(hung.outcome, Outcome::ClientGone, "the client gave up");
    }
    assert_eq!(attempts[3].status, Some(200), "{}", rig.proxy.summary());
    assert!(retried >= 1.0);
    let logs = connector.logs();
    assert!(
        logs.contains("no answer from the S3 endpoint") && logs.contains("within 1s"),
        "{logs}"
    );
    rig.assert_exactly_once(&produced);
}

// ---------------------------------------------------------------------------------------------
// D10, D11: the key is taken.

/// D10, same records: (1) a PutObject whose answer is lost (held until the SDK's attempt times
/// out, after s3s-fs stored it): the retry gets 412, the connector reads the object's metadata,
/// finds its own records and counts the object as stored, not overwritten; (2) a second
/// connector (another name, so no committed offsets) on the same prefix finds the objects by
/// listing, trusts them after checking the records' fingerprints, commits without uploading.
#[test]
fn a_key_holding_the_same_records_counts_as_stored_and_is_not_overwritten() {
    let rig = Rig::start(
        "same",
        "max_records = 10\nmax_interval_ms = 300",
        "request_timeout_ms = 1000\nupload_concurrency = 1",
    );
    let produced = rig.produce(0..20);
    let mut connector = rig.run(&rig.config);
    let hold = rig
        .proxy
        .hold_next(Operation::PutObject, HoldAt::BeforeResponse);
    let held = hold.wait_held(WAIT);
    assert_eq!(held.status, Some(200), "stored by s3s-fs");
    let key = held.key.clone().unwrap();
    rig.proxy.wait_done(held.id, WAIT);
    let stored = rig.object_file(&key);
    drop(hold);
    rig.wait_stored(20, &connector);
    connector.stop();

    let attempts = puts_of(&rig.proxy, &key);
    assert_eq!(attempts[0].outcome, Outcome::ClientGone);
    assert_eq!(
        attempts[1].error_code.as_deref(),
        Some("PreconditionFailed"),
        "{}",
        rig.proxy.summary()
    );
    assert!(
        attempts.iter().skip(1).all(|r| r.status == Some(412)),
        "{}",
        rig.proxy.summary()
    );
    assert!(rig
        .proxy
        .requests_of(Operation::HeadObject)
        .iter()
        .any(|r| r.key.as_deref() == Some(key.as_str())));
    assert_eq!(rig.object_file(&key), stored, "{key} overwritten");
    assert!(connector
        .logs()
        .contains("object already in the bucket with the same records"));
    rig.assert_exactly_once(&produced);

    // A second connector on the same prefix.
    let files: Vec<_> = rig
        .objects()
        .iter()
        .map(|(key, _)| (key.clone(), rig.object_file(key)))
        .collect();
    let second = unique("second");
    let config = rig.stack.config(
        &second,
        &rig.topic,
        BUCKET,
        "max_records = 7\nmax_interval_ms = 300",
        "",
    );
    set_sink_endpoint(&config, &rig.proxy.endpoint());
    let puts_before = rig.puts().len();
    let mut connector = rig.run(&config);
    let deadline = Instant::now() + WAIT;
    while rig.committed(&second) != Some(20) {
        assert!(
            Instant::now() < deadline,
            "the second connector did not commit:\n{}",
            connector.logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    connector.stop();
    assert!(connector.logs().contains("not written again"));
    assert_eq!(
        rig.puts().len(),
        puts_before,
        "nothing uploaded:\n{}",
        rig.proxy.summary()
    );
    let after: Vec<_> = rig
        .objects()
        .iter()
        .map(|(key, _)| (key.clone(), rig.object_file(key)))
        .collect();
    assert_eq!(after, files, "the objects are untouched");
    let (code, report) = rig.reconcile(&config, &["--deep"]);
    assert_eq!(code, 0, "{report}");
}

/// The metadata of an object of `topic`'s partition 0 holding offsets `first..=last` whose
/// records are not the topic's (other fingerprints).
fn forged_metadata(topic: &str, first: i64, last: i64) -> Vec<(&'static str, String)> {
    vec![
        ("kos-format", "1".into()),
        ("kos-topic", topic.into()),
        ("kos-partition", "0".into()),
        ("kos-first-offset", first.to_string()),
        ("kos-last-offset", last.to_string()),
        ("kos-records", (last - first + 1).to_string()),
        ("kos-first-record", "1000-0badf00d".into()),
        ("kos-last-record", "2000-0badf00d".into()),
        ("kos-connector", "someone-else".into()),
        ("kos-generation", "-1".into()),
    ]
}

/// Waits until `/status` shows partition 0 FAILED with BUCKET_FOREIGN_OBJECT; returns the
/// offset its error names (where the partition stopped).
fn wait_foreign(connector: &mut Connector) -> Option<i64> {
    connector.wait_for_log("BUCKET_FOREIGN_OBJECT", WAIT);
    let deadline = Instant::now() + WAIT;
    loop {
        let (_, body) = connector.admin_get("/status");
        let status: Value = serde_json::from_str(&body).unwrap();
        let partition = &status["partitions"][0];
        if partition["state"] == "FAILED"
            && partition["last_error"]["code"] == "BUCKET_FOREIGN_OBJECT"
        {
            return partition["last_error"]["offset"].as_i64();
        }
        assert!(Instant::now() < deadline, "{body}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// D10, other records: (1) an object already under the first key the connector would write
/// (its metadata claims the range, its fingerprints differ) stops the partition at offset 0 with
/// BUCKET_FOREIGN_OBJECT naming the key, found by the listing at start; (2) one put there while
/// the connector's PutObject is on its way (after the listing) is refused by the conditional
/// create (412), and stops the partition the same way. Nothing is committed or written past it
/// and the object is unchanged; reconcile reports it.
#[test]
fn a_key_holding_other_records_stops_the_partition_and_is_kept() {
    // (1) Found by listing.
    let rig = Rig::start("foreign", "max_records = 10\nmax_interval_ms = 300", "");
    let key = object_key(&rig.prefix, 0, 9);
    let body = br#"[{"note":"someone else's records"}]"#;
    rig.put_object(&key, body, &forged_metadata(&rig.topic, 0, 9));
    let seeded = rig.object_file(&key);
    rig.produce(0..20);
    let mut connector = rig.run(&rig.config);
    let stopped_at = wait_foreign(&mut connector);
    connector.stop();
    assert!(connector.logs().contains(&key), "{}", connector.logs());
    assert_eq!(stopped_at, Some(0));
    assert!(puts_of(&rig.proxy, &key).is_empty());
    assert_eq!(rig.object_file(&key), seeded, "the object is unchanged");
    assert_eq!(
        rig.objects().len(),
        1,
        "nothing written past the foreign object"
    );
    assert!(matches!(rig.committed(&rig.name), None | Some(0)));
    let (code, report) = rig.reconcile(&rig.config, &["--deep"]);
    assert_eq!(code, 1, "{report}");
    assert!(report.contains(&key), "{report}");

    // (2) Put while the connector's PutObject is held, after its listing.
    let rig = Rig::start("racing", "max_records = 10\nmax_interval_ms = 300", "");
    rig.produce(0..20);
    let mut connector = rig.run(&rig.config);
    let hold = rig
        .proxy
        .hold_next(Operation::PutObject, HoldAt::BeforeUpstream);
    let held = hold.wait_held(WAIT);
    let key = held.key.clone().unwrap();
    // The first object: offsets 0..=9 (`max_records`), or fewer when the interval sealed it
    // first on a loaded machine.
    let (first, last) = actors::object_key::parse_offsets(&key).expect("an object key");
    assert_eq!(key, object_key(&rig.prefix, first, last));
    assert_eq!(first, 0, "{key}");
    rig.put_object(&key, body, &forged_metadata(&rig.topic, 0, last));
    let seeded = rig.object_file(&key);
    drop(hold);
    let stopped_at = wait_foreign(&mut connector);
    connector.stop();
    assert_eq!(stopped_at, Some(0));
    let attempts = puts_of(&rig.proxy, &key);
    assert_eq!(attempts[0].status, Some(412), "{}", rig.proxy.summary());
    assert!(connector.logs().contains(&key));
    assert_eq!(rig.object_file(&key), seeded, "the object is unchanged");
    assert!(
        rig.objects()
            .iter()
            .all(|(stored, _)| stored == &key || !stored.contains(&format!("-{last:020}"))),
        "nothing else written over it"
    );
    assert!(matches!(rig.committed(&rig.name), None | Some(0)));
}

/// D11: a store that ignores `If-None-Match` and overwrites. What happens: the start-up probe
/// warns that it overwrote its probe object, and the connector runs; a PutObject whose
/// answer was lost is retried and overwrites the object with the same bytes (no record lost or
/// duplicated, reconcile clean); an object someone else put under the key after the
/// connector's listing is overwritten by the connector's (the connector's records are all
/// stored; the stranger's object is gone: without conditional creates the protection against
/// other writers is only the listing at start, which still stops at an object that is there
/// before, as in the D10 test).
#[test]
fn a_store_that_ignores_conditional_creates_overwrites_but_loses_no_record() {
    // Objects of exactly 10 records, whenever they arrive: the test knows the keys.
    let rig = Rig::start(
        "ignore",
        "max_records = 10\nmax_interval_ms = 10000\nseal_when_caught_up = false",
        "request_timeout_ms = 1000\nupload_concurrency = 1",
    );
    rig.proxy.set_conditional(Conditional::Ignore);
    let mut produced = rig.produce(0..20);
    let mut connector = rig.run(&rig.config);
    // The start-up probe found out (a warning; the connector runs without conditional creates).
    connector.wait_for_log("the store ignored If-None-Match", WAIT);
    let lost_answer = rig
        .proxy
        .hold_next(Operation::PutObject, HoldAt::BeforeResponse);
    let held = lost_answer.wait_held(WAIT);
    let key = held.key.clone().unwrap();
    rig.proxy.wait_done(held.id, WAIT);
    drop(lost_answer);
    rig.wait_stored(20, &connector);
    let retry = &puts_of(&rig.proxy, &key)[1];
    assert_eq!(
        retry.injected.as_deref(),
        Some("ignore: removed existing object"),
        "{}",
        rig.proxy.summary()
    );
    assert_eq!(retry.status, Some(200));

    // A stranger's object under the next key, put after the partition's listing (which runs
    // once, when its first records arrive).
    let next = object_key(&rig.prefix, 20, 29);
    rig.put_object(&next, b"[]", &forged_metadata(&rig.topic, 20, 29));
    produced.extend(rig.produce(20..30));
    rig.wait_stored(30, &connector);
    connector.stop();
    let overwrite = &puts_of(&rig.proxy, &next)[0];
    assert_eq!(
        (overwrite.injected.as_deref(), overwrite.status),
        (Some("ignore: removed existing object"), Some(200)),
        "{}",
        rig.proxy.summary()
    );
    assert!(!connector.logs().contains("BUCKET_FOREIGN_OBJECT"));
    rig.assert_exactly_once(&produced);
}

// ---------------------------------------------------------------------------------------------
// Issue 11, verified loss: a recreated topic.

/// Connector A stored offsets 0-99 of a topic; the topic is deleted and recreated and 150 new
/// records produced; connector B (another name, same bucket and prefix) must not take A's
/// objects for the new records: it stops at offset 0 with BUCKET_FOREIGN_OBJECT naming the
/// first object's key, commits nothing, writes nothing, and A's objects are unchanged. (Before
/// the fix B logged "not written again" for 0-99, stored 100-149 and committed 150: 100 records
/// lost.)
#[test]
fn a_recreated_topic_stops_at_offset_0_instead_of_skipping_the_new_records() {
    let rig = Rig::start("rt", "max_records = 50\nmax_interval_ms = 300", "");
    rig.produce(0..100);
    let mut connector = rig.run(&rig.config);
    rig.wait_stored(100, &connector);
    connector.stop();
    let before: Vec<_> = rig
        .objects()
        .iter()
        .map(|(key, _)| (key.clone(), rig.object_file(key)))
        .collect();
    assert_eq!(
        before
            .iter()
            .map(|(key, _)| key.clone())
            .collect::<Vec<_>>(),
        [
            object_key(&rig.prefix, 0, 49),
            object_key(&rig.prefix, 50, 99)
        ]
    );

    rig.stack.delete_topic(&rig.topic);
    rig.stack.create_topic(&rig.topic, 1);
    let records: Vec<TestRecord> = (0..150)
        .map(|i| {
            (
                0,
                Some(format!("new-k{i}").into_bytes()),
                Some(format!("new-{i}").into_bytes()),
            )
        })
        .collect();
    let produced = rig.stack.produce_one_per_batch(&rig.topic, &records);
    assert_eq!(
        produced.keys().next(),
        Some(&(0, 0)),
        "offsets start at 0 again"
    );

    let second = unique("rt-b");
    let config = rig.stack.config(
        &second,
        &rig.topic,
        BUCKET,
        "max_records = 50\nmax_interval_ms = 300",
        "",
    );
    set_sink_endpoint(&config, &rig.proxy.endpoint());
    let mut connector = rig.run(&config);
    let stopped_at = wait_foreign(&mut connector);
    connector.stop();
    assert_eq!(stopped_at, Some(0));
    let logs = connector.logs();
    assert!(logs.contains(&object_key(&rig.prefix, 0, 49)), "{logs}");
    assert!(!logs.contains("not written again"), "{logs}");
    assert!(matches!(rig.committed(&second), None | Some(0)));
    let after: Vec<_> = rig
        .objects()
        .iter()
        .map(|(key, _)| (key.clone(), rig.object_file(key)))
        .collect();
    assert_eq!(after, before, "A's objects unchanged, nothing else written");
    assert_eq!(rig.routed(&second), Vec::<i64>::new());
    let (code, report) = rig.reconcile(&config, &["--deep"]);
    assert_eq!(code, 1, "{report}");
    assert!(report.contains(&object_key(&rig.prefix, 0, 49)), "{report}");
}

// ---------------------------------------------------------------------------------------------
// D8: what goes over the wire.

/// D8: no request carries `aws-chunked` framing, a trailer or a streaming payload hash (stores
/// like OSS reject them); PutObject and CompleteMultipartUpload carry `If-None-Match: *`;
/// PutObject and CreateMultipartUpload carry the `x-amz-meta-kos-*` metadata, which agrees
/// with the key.
#[test]
fn uploads_carry_conditional_create_and_metadata_and_no_aws_chunked_framing() {
    let rig = Rig::start(
        "headers",
        "max_records = 20\nmax_bytes = 6291456\nmax_interval_ms = 10000",
        "part_size_bytes = 5242880",
    );
    let mut produced = rig.produce(0..20);
    produced.extend(rig.produce_large(20..35, 400 * 1024));
    let mut connector = rig.run(&rig.config);
    rig.wait_stored(35, &connector);
    connector.stop();

    let requests = rig.proxy.requests();
    for request in &requests {
        let summary = || format!("{request:?}");
        assert!(
            !request
                .header("content-encoding")
                .unwrap_or("")
                .contains("aws-chunked"),
            "{}",
            summary()
        );
        assert_eq!(request.header("x-amz-trailer"), None, "{}", summary());
        assert!(
            !request
                .header("x-amz-content-sha256")
                .unwrap_or("")
                .starts_with("STREAMING-"),
            "{}",
            summary()
        );
    }
    // The connector's objects; the start-up probe's object is not one.
    let uploads: Vec<&Request> = requests
        .iter()
        .filter(|r| r.key.as_deref().unwrap_or("").starts_with(&rig.prefix))
        .collect();
    let creates: Vec<&Request> = uploads
        .iter()
        .copied()
        .filter(|r| {
            matches!(
                r.operation,
                Operation::PutObject | Operation::CreateMultipartUpload
            )
        })
        .collect();
    assert!(creates.iter().any(|r| r.operation == Operation::PutObject));
    assert!(creates
        .iter()
        .any(|r| r.operation == Operation::CreateMultipartUpload));
    for request in &creates {
        let key = request.key.clone().unwrap();
        let range = key.rsplit('/').next().unwrap().trim_end_matches(".json");
        let (first, last) = range.split_once('-').unwrap();
        let meta = |name: &str| {
            request
                .header(&format!("x-amz-meta-{name}"))
                .unwrap_or_else(|| panic!("no x-amz-meta-{name} on {request:?}"))
                .to_owned()
        };
        assert_eq!(meta("kos-format"), "1");
        assert_eq!(meta("kos-topic"), rig.topic);
        assert_eq!(meta("kos-partition"), "0");
        let (first, last): (i64, i64) = (first.parse().unwrap(), last.parse().unwrap());
        assert_eq!(meta("kos-first-offset"), first.to_string());
        assert_eq!(meta("kos-last-offset"), last.to_string());
        assert_eq!(meta("kos-connector"), rig.name);
        assert_eq!(meta("kos-body-format"), "json_array");
        // The consumer group generation of the member that wrote it: known once the member
        // joined, so never -1 for an object of an assigned partition.
        let generation: i32 = meta("kos-generation").parse().expect("a generation number");
        assert!(generation >= 0, "kos-generation {generation}");
        for name in ["kos-records", "kos-first-record", "kos-last-record"] {
            meta(name);
        }
    }
    let conditional: Vec<&Request> = uploads
        .iter()
        .copied()
        .filter(|r| {
            matches!(
                r.operation,
                Operation::PutObject | Operation::CompleteMultipartUpload
            )
        })
        .collect();
    assert!(conditional
        .iter()
        .any(|r| r.operation == Operation::CompleteMultipartUpload));
    for request in conditional {
        assert_eq!(request.header("if-none-match"), Some("*"), "{request:?}");
    }
    rig.assert_exactly_once(&produced);
}
