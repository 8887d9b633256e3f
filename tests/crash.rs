//! Crash and restart tests (reliability.md §8.2, A1–A3 and A5–A9) against the real stack: a tansu
//! broker, s3s-fs behind the fault-injecting [`S3Proxy`], and the connector binary, killed with
//! `kill -9` or stopped with SIGTERM at precise points given by the proxy's hooks (a request held
//! before the store saw it, half-way through its body, or after the store answered), not by
//! sleeps. Every test ends with the same check ([`Rig::assert_exactly_once`]): `reconcile
//! --deep` exits 0 (nothing missing up to the committed offsets, nothing duplicated, no overlap,
//! nothing foreign, nothing stored left uncommitted) with everything produced committed, and the
//! bucket read back holds every produced record exactly once, byte for byte.
//!
//! tansu 0.6.0 quirks (tests/README.md): records are produced one per batch (a fetch that starts
//! inside a batch skips the rest of it, and its high watermarks are unreliable for multi-record
//! batches, which reconcile relies on); and a member killed with `kill -9` whose session expires
//! after another member joined is never replaced, so a killed connector is restarted only after
//! its session timed out (`session.timeout.ms` is 3 s here).

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use support::exactly_once;
use support::s3_proxy::{Down, HoldAt, Operation};
use support::{set_sink_endpoint, set_sink_keys, unique, Connector, Produced, S3Proxy, Stack};

const WAIT: Duration = Duration::from_secs(60);

/// The connector's `session.timeout.ms` (tansu accepts short ones): how long a crashed member
/// holds its partitions.
const SESSION_TIMEOUT: Duration = Duration::from_millis(3000);

/// A topic copied through the proxy into a bucket by one connector name (one consumer group).
struct Rig {
    stack: Stack,
    proxy: S3Proxy,
    topic: String,
    name: String,
    bucket: &'static str,
    prefix: String,
    partitions: i32,
}

impl Rig {
    fn new(label: &str, partitions: i32) -> Rig {
        let stack = Stack::start();
        let proxy = stack.s3_proxy();
        let (topic, name, bucket) = (unique(label), unique(label), "crash-bucket");
        stack.create_topic(&topic, partitions as u32);
        stack.create_bucket(bucket);
        Rig {
            proxy,
            prefix: format!("e2e/{topic}/"),
            stack,
            topic,
            name,
            bucket,
            partitions,
        }
    }

    fn group(&self) -> String {
        format!("connect-{}", self.name)
    }

    /// A config file of its own (`label`) for this connector: `batching` is the `[batching]`
    /// table, `sink` lines go into `[sink]`, `top` replaces the top-level `drain_timeout_ms`
    /// line. The store is reached through the proxy.
    fn config(&self, label: &str, batching: &str, sink: &str, top: &str) -> PathBuf {
        let written = self
            .stack
            .config(&self.name, &self.topic, self.bucket, batching, "");
        let path = self.stack.dir.join(format!("{}-{label}.toml", self.name));
        std::fs::rename(&written, &path).unwrap();
        let mut text = std::fs::read_to_string(&path).unwrap().replace(
            "\"session.timeout.ms\" = \"6000\"",
            &format!(
                "\"session.timeout.ms\" = \"{}\"",
                SESSION_TIMEOUT.as_millis()
            ),
        );
        if !top.is_empty() {
            text = text.replace("drain_timeout_ms = 20000\n", &format!("{top}\n"));
        }
        std::fs::write(&path, text).unwrap();
        set_sink_endpoint(&path, &self.proxy.endpoint());
        if !sink.is_empty() {
            set_sink_keys(&path, sink);
        }
        path
    }

    fn start(&self, config: &Path) -> Connector {
        let mut connector = self.stack.connector(config, None);
        connector.wait_admin(WAIT);
        connector
    }

    /// `kill -9`, then waits out the killed member's session, so that the next connector's
    /// join finds it expired and gets every partition (tansu quirk, module doc). A wait, not a
    /// poll: tansu expires members only when a member of the group joins, syncs, heartbeats or
    /// leaves, so no request shows the session over before the next join.
    fn crash(&self, connector: &mut Connector) {
        connector.kill();
        std::thread::sleep(SESSION_TIMEOUT + Duration::from_millis(300));
    }

    fn committed(&self) -> BTreeMap<i32, i64> {
        self.stack
            .committed(&self.group(), &self.topic, self.partitions)
    }

    /// Keys under the topic's folder, read from s3s-fs directly (not through the proxy).
    fn keys(&self) -> Vec<String> {
        self.stack
            .object_sizes(self.bucket, &self.prefix)
            .into_iter()
            .map(|(key, _, _)| key)
            .collect()
    }

    /// Waits until the bucket holds `count` records.
    fn wait_stored(&self, connector: &Connector, count: usize) {
        let objects = self
            .stack
            .wait_for_records(self.bucket, &self.prefix, count, WAIT);
        let found: usize = objects.iter().map(|(_, records)| records.len()).sum();
        assert!(
            found >= count,
            "{found} of {count} records stored:\n{}\nrequests:\n{}",
            connector.logs(),
            self.proxy.summary()
        );
    }

    /// Keys of the topic's objects the connector tried to write (PutObject or
    /// CreateMultipartUpload, whatever the answer: a conditional create refused as "already
    /// there" is a write attempt too) from request `from` of the proxy log on.
    fn uploads_since(&self, from: usize) -> Vec<String> {
        self.proxy.requests()[from..]
            .iter()
            .filter(|r| {
                matches!(
                    r.operation,
                    Operation::PutObject | Operation::CreateMultipartUpload
                )
            })
            .filter_map(|r| r.key.clone())
            .filter(|key| key.starts_with(&self.prefix))
            .collect()
    }

    /// Exactly once, checked twice: `reconcile --deep` on the bucket, the topic and the group's
    /// offsets exits 0 with every produced record committed and nothing stored uncommitted; and
    /// the bucket read back holds each produced record once, byte for byte, in an object whose
    /// key names its offsets.
    fn assert_exactly_once(&self, produced: &BTreeMap<(i32, i64), Produced>) {
        let config = self.config("reconcile", "", "", "");
        set_sink_endpoint(&config, &self.stack.endpoint());
        let run = self.stack.reconcile(&config, &["--json", "--deep"]);
        exactly_once::assert_reconcile_clean(&run);
        exactly_once::assert_committed_to_end(&run, produced);
        let objects = self.stack.objects(self.bucket, &self.prefix);
        exactly_once::assert_bucket_once(&objects, &self.topic, produced, &BTreeSet::new());
    }
}

/// `(partition, key, value)` records: `count` per partition, round robin.
fn records(partitions: i32, count: usize, value_len: usize) -> Vec<support::TestRecord> {
    (0..count * partitions as usize)
        .map(|index| {
            let partition = index as i32 % partitions;
            let head = format!("record {index} ");
            let value = format!("{head}{}", "v".repeat(value_len.saturating_sub(head.len())));
            (
                partition,
                Some(format!("{partition}:{index}").into_bytes()),
                Some(value.into_bytes()),
            )
        })
        .collect()
}

/// `(first, last)` offsets in an object key.
fn offsets(key: &str) -> (i64, i64) {
    actors::object_key::parse_offsets(key).unwrap()
}

/// The partition in an object key (`.../{topic}/{partition}/{first}-{last}.json`).
fn partition_of(key: &str) -> i32 {
    key.rsplit('/').nth(1).unwrap().parse().unwrap()
}

/// A1: `kill -9` after the store answered 200 to a PutObject, before the connector heard it (so
/// before any commit covering it). The object is in the bucket and not committed; the restart
/// finds it by listing and does not write it again.
#[test]
fn a1_kill_after_put_before_commit_does_not_write_the_object_again() {
    let rig = Rig::new("a1", 2);
    let produced = rig
        .stack
        .produce_one_per_batch(&rig.topic, &records(2, 150, 40));
    let config = rig.config("run", "max_records = 50\nmax_interval_ms = 1000", "", "");
    // The third object: the first ones may be committed, this one cannot be.
    let hold =
        rig.proxy
            .hold_nth_under(Operation::PutObject, &rig.prefix, 3, HoldAt::BeforeResponse);
    let mut connector = rig.start(&config);
    let held = hold.wait_held(WAIT);
    rig.crash(&mut connector);
    drop(hold);
    let key = held.key.clone().unwrap();
    assert!(
        rig.keys().contains(&key),
        "the store has the object it answered 200 for: {key}"
    );
    let (partition, (first, _)) = (partition_of(&key), offsets(&key));
    let committed = rig.committed().get(&partition).copied().unwrap_or(0);
    assert!(
        committed <= first,
        "committed {committed} past the first offset {first} of an object the connector never heard stored"
    );

    let mark = rig.proxy.requests().len();
    let mut restarted = rig.start(&config);
    rig.wait_stored(&restarted, produced.len());
    restarted.stop();
    let written = rig.uploads_since(mark);
    assert!(
        !written.contains(&key),
        "{key} written again after the restart: {written:?}"
    );
    rig.assert_exactly_once(&produced);
}

/// A2: `kill -9` while a PutObject body is half sent (the store is mid-write): no partial
/// object is ever visible, and the restart stores everything once.
#[test]
fn a2_kill_in_the_middle_of_a_put_body_leaves_no_partial_object() {
    let rig = Rig::new("a2", 2);
    let produced = rig
        .stack
        .produce_one_per_batch(&rig.topic, &records(2, 150, 200));
    let config = rig.config("run", "max_records = 50\nmax_interval_ms = 1000", "", "");
    let hold = rig
        .proxy
        .hold_nth_under(Operation::PutObject, &rig.prefix, 2, HoldAt::MidBody);
    let mut connector = rig.start(&config);
    let held = hold.wait_held(WAIT);
    rig.crash(&mut connector);
    drop(hold);
    // The proxy notices the client is gone and cuts the store's body short.
    rig.proxy.wait_done(held.id, WAIT);
    let key = held.key.clone().unwrap();
    assert!(held.body_len > 0);
    assert!(
        !rig.keys().contains(&key),
        "a torn PutObject left an object: {key}"
    );
    assert!(
        !rig.stack.s3_root().join(rig.bucket).join(&key).exists(),
        "a torn PutObject left a file for {key}"
    );
    let (partition, (first, _)) = (partition_of(&key), offsets(&key));
    assert!(rig.committed().get(&partition).copied().unwrap_or(0) <= first);

    let mut restarted = rig.start(&config);
    rig.wait_stored(&restarted, produced.len());
    restarted.stop();
    rig.assert_exactly_once(&produced);
}

/// A3: `kill -9` after 2 of the 3 parts of a multipart upload were stored: no object is visible
/// under the key, and the restart uploads it whole once. The orphaned upload (its 2 parts) is
/// aborted by the restarted connector when the partition's first records arrive (counted in
/// `kafka_oss_sink_orphaned_uploads_aborted_total`): no incomplete upload remains. s3s-fs does
/// not implement ListMultipartUploads, so the proxy answers it from s3s-fs's directory.
#[test]
fn a3_kill_between_multipart_parts_leaves_no_object() {
    let rig = Rig::new("a3", 1);
    // 240 values of 64 KiB (15 MiB): one 12 MiB object (parts of 5, 5 and 2 MiB) and a rest
    // under the part size (one PutObject), so every UploadPart is the first object's.
    let produced = rig
        .stack
        .produce_one_per_batch(&rig.topic, &records(1, 240, 64 * 1024));
    let config = rig.config(
        "run",
        // A long interval: only max_bytes cuts the first object, whatever the read speed; the
        // rest is sealed when the partition is caught up.
        "max_bytes = 12582912\nmax_interval_ms = 10000",
        "part_size_bytes = 5242880",
        "",
    );
    rig.proxy.emulate_list_uploads();
    let hold = rig.proxy.hold_nth_under(
        Operation::UploadPart,
        &rig.prefix,
        3,
        HoldAt::BeforeUpstream,
    );
    let mut connector = rig.start(&config);
    let held = hold.wait_held(WAIT);
    assert_eq!(held.query_param("partNumber").as_deref(), Some("3"));
    rig.crash(&mut connector);
    drop(hold);
    rig.proxy.wait_done(held.id, WAIT);
    let key = held.key.clone().unwrap();
    let stored_parts = rig
        .proxy
        .requests_of(Operation::UploadPart)
        .iter()
        .filter(|r| r.outcome == support::s3_proxy::Outcome::Sent && r.status == Some(200))
        .count();
    assert_eq!(stored_parts, 2, "{}", rig.proxy.summary());
    assert!(
        rig.proxy
            .requests_of(Operation::CompleteMultipartUpload)
            .is_empty(),
        "{}",
        rig.proxy.summary()
    );
    assert!(
        !rig.keys().contains(&key),
        "an unfinished multipart upload is visible as {key}"
    );
    assert_eq!(rig.committed().get(&0).copied().unwrap_or(0), 0);
    let orphans = rig.proxy.incomplete_uploads(rig.bucket, &rig.prefix);
    assert_eq!(orphans.len(), 1, "{orphans:?}");
    let (orphan_key, orphan_id, _) = orphans[0].clone();
    assert_eq!(orphan_key, key);

    let mut restarted = rig.start(&config);
    rig.wait_stored(&restarted, produced.len());
    let deadline = Instant::now() + WAIT;
    let aborted = loop {
        let aborted: f64 = restarted
            .scrape()
            .iter()
            .filter(|(name, labels, _)| {
                name == "kafka_oss_sink_orphaned_uploads_aborted_total"
                    && labels.get("topic") == Some(&rig.topic)
                    && labels.get("partition").map(String::as_str) == Some("0")
            })
            .map(|(_, _, value)| value)
            .sum();
        if aborted > 0.0 || Instant::now() > deadline {
            break aborted;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    restarted.stop();
    assert_eq!(aborted, 1.0, "{}", restarted.logs());
    let remaining = rig.proxy.incomplete_uploads(rig.bucket, "");
    assert!(remaining.is_empty(), "{remaining:?}");
    let aborts = rig.proxy.requests_of(Operation::AbortMultipartUpload);
    assert!(
        aborts.iter().any(
            |r| r.query_param("uploadId").as_deref() == Some(orphan_id.as_str())
                && matches!(r.status, Some(200..=299))
        ),
        "{}",
        rig.proxy.summary()
    );
    // The connector's own upload of the key was not aborted: it is the object.
    assert_eq!(aborts.len(), 1, "{}", rig.proxy.summary());
    let sizes = rig.stack.object_sizes(rig.bucket, &rig.prefix);
    let (_, _, etag) = sizes.iter().find(|(k, _, _)| *k == key).unwrap();
    assert!(
        etag.trim_matches('"').ends_with("-3"),
        "{key} is stored whole by a new 3-part upload (ETag {etag})"
    );
    rig.assert_exactly_once(&produced);
}

/// A5: SIGTERM while records keep arriving: the connector exits 0 well within the drain
/// deadline, having stored and committed everything it read (reconcile right after: clean,
/// nothing stored uncommitted); a restart copies the rest, exactly once.
#[test]
fn a5_sigterm_under_load_exits_0_within_the_drain_deadline() {
    let rig = Rig::new("a5", 3);
    let producing = rig.stack.produce_continuously(&rig.topic, 3, 300);
    let config = rig.config(
        "run",
        "max_records = 100\nmax_interval_ms = 500",
        "",
        "drain_timeout_ms = 10000",
    );
    let mut connector = rig.start(&config);
    rig.proxy
        .wait_for_under(Operation::PutObject, &rig.prefix, 6, WAIT);
    let asked = Instant::now();
    connector.terminate();
    let status = connector.wait_exit(Duration::from_secs(20));
    let took = asked.elapsed();
    assert!(status.success(), "exit {status}:\n{}", connector.logs());
    assert!(
        took < Duration::from_secs(10),
        "the drain took {took:?}, past drain_timeout_ms"
    );
    let config_direct = rig.config("check", "", "", "");
    set_sink_endpoint(&config_direct, &rig.stack.endpoint());
    let run = rig.stack.reconcile(&config_direct, &["--json"]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    let report = run.json();
    for partition in report["partitions"].as_array().unwrap() {
        assert!(
            partition["uncommitted"].as_array().unwrap().is_empty(),
            "a clean stop commits everything it stored: {partition:#}"
        );
        assert!(
            partition["committed"].as_i64().unwrap() > 0,
            "{partition:#}"
        );
    }

    let mut restarted = rig.start(&config);
    producing.wait_sent(producing.sent() + 300, WAIT);
    let produced = producing.stop();
    rig.wait_stored(&restarted, produced.len());
    restarted.stop();
    rig.assert_exactly_once(&produced);
}

/// A6: SIGTERM while the store is down (connections refused): the connector cannot store what
/// it buffered, so it exits 1 (README "Exit codes": records not stored before the drain
/// deadline) at `drain_timeout_ms`, having committed nothing past the last stored object; with
/// the store back, a restart stores everything once.
#[test]
fn a6_sigterm_while_the_store_is_down_exits_1_at_the_drain_deadline() {
    let rig = Rig::new("a6", 2);
    let mut produced = rig
        .stack
        .produce_one_per_batch(&rig.topic, &records(2, 100, 40));
    let config = rig.config(
        "run",
        "max_records = 50\nmax_interval_ms = 300",
        "",
        "drain_timeout_ms = 2000",
    );
    let mut connector = rig.start(&config);
    rig.wait_stored(&connector, produced.len());
    rig.proxy.down(Down::Refuse);
    let more: Vec<_> = records(2, 130, 40).split_off(200);
    produced.extend(rig.stack.produce_one_per_batch(&rig.topic, &more));
    // The connector has read the new records and is failing to store them.
    let deadline = Instant::now() + WAIT;
    while retries(&connector) == 0.0 {
        assert!(Instant::now() < deadline, "no retry:\n{}", connector.logs());
        std::thread::sleep(Duration::from_millis(100));
    }
    let asked = Instant::now();
    connector.terminate();
    let status = connector.wait_exit(Duration::from_secs(20));
    let took = asked.elapsed();
    assert_eq!(status.code(), Some(1), "{}", connector.logs());
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(8),
        "exited {took:?} after SIGTERM, drain_timeout_ms is 2000"
    );
    assert!(
        connector.logs().contains("DRAIN_TIMEOUT"),
        "{}",
        connector.logs()
    );
    let keys = rig.keys();
    for (partition, committed) in rig.committed() {
        let stored_end = keys
            .iter()
            .filter(|key| partition_of(key) == partition)
            .map(|key| offsets(key).1 + 1)
            .max()
            .unwrap_or(0);
        assert_eq!(
            committed, stored_end,
            "partition {partition}: committed up to what is stored, no further"
        );
    }

    rig.proxy.up();
    let mut restarted = rig.start(&config);
    rig.wait_stored(&restarted, produced.len());
    restarted.stop();
    rig.assert_exactly_once(&produced);
}

/// The sum of `kafka_oss_sink_retries_total`.
fn retries(connector: &Connector) -> f64 {
    connector
        .scrape()
        .iter()
        .filter(|(name, _, _)| name == "kafka_oss_sink_retries_total")
        .map(|(_, _, value)| value)
        .sum()
}

/// SplitMix64, for a seeded kill schedule.
fn next_u64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A7 ("Jepsen-lite"): 10 `kill -9` at seeded random intervals of 0.5 to 5 s while records keep
/// arriving, each followed by a restart (once the killed member's session expired); at the end
/// everything is stored exactly once. The kill times are the test's input, hence the sleeps.
#[test]
fn a7_ten_kills_under_continuous_produce_lose_and_duplicate_nothing() {
    let rig = Rig::new("a7", 2);
    let producing = rig.stack.produce_continuously(&rig.topic, 2, 100);
    let config = rig.config("run", "max_records = 40\nmax_interval_ms = 300", "", "");
    let mut seed: u64 = 0xa7;
    let mut connector = rig.start(&config);
    let (mut schedule, mut recovered) = (Vec::new(), 0);
    for _ in 0..10 {
        let interval = Duration::from_millis(500 + next_u64(&mut seed) % 4500);
        schedule.push(interval);
        std::thread::sleep(interval);
        rig.crash(&mut connector);
        recovered += connector.logs().matches("not written again").count();
        connector = rig.start(&config);
    }
    let produced = producing.stop();
    rig.wait_stored(&connector, produced.len());
    connector.stop();
    recovered += connector.logs().matches("not written again").count();
    eprintln!(
        "{} records, kills after {schedule:?}, {recovered} stored-uncommitted objects recovered",
        produced.len()
    );
    rig.assert_exactly_once(&produced);
}

/// A8: a low-rate topic whose objects are sealed by `max_interval_ms`; `kill -9` after the
/// store answered an interval object's PutObject, before the connector heard it; the restart
/// with other `max_interval_ms` and `max_records` finds the object by listing, does not write it
/// again, and cuts the rest its own way: exactly once.
#[test]
fn a8_interval_sealed_object_stored_before_a_crash_is_kept_across_other_timing() {
    let rig = Rig::new("a8", 1);
    let producing = rig.stack.produce_continuously(&rig.topic, 1, 10);
    let config = rig.config(
        "run",
        "max_records = 1000\nmax_interval_ms = 1000\nseal_when_caught_up = false",
        "",
        "",
    );
    let hold =
        rig.proxy
            .hold_nth_under(Operation::PutObject, &rig.prefix, 2, HoldAt::BeforeResponse);
    let mut connector = rig.start(&config);
    let held = hold.wait_held(WAIT);
    let interval_seals: f64 = connector
        .scrape()
        .iter()
        .filter(|(name, labels, _)| {
            name == "kafka_oss_sink_rotations_total"
                && labels.get("reason").map(String::as_str) == Some("interval")
        })
        .map(|(_, _, value)| value)
        .sum();
    assert!(interval_seals >= 2.0, "objects sealed by the interval");
    rig.crash(&mut connector);
    drop(hold);
    let key = held.key.clone().unwrap();
    let (first, last) = offsets(&key);
    assert!(
        last > first,
        "a trickle object holds several records: {key}"
    );
    assert!(rig.keys().contains(&key));
    assert!(rig.committed().get(&0).copied().unwrap_or(0) <= first);

    let mark = rig.proxy.requests().len();
    let other = rig.config(
        "restart",
        "max_records = 3\nmax_interval_ms = 700\nseal_when_caught_up = false",
        "",
        "",
    );
    let mut restarted = rig.start(&other);
    restarted.wait_for_log("not written again", WAIT);
    producing.wait_sent(producing.sent() + 20, WAIT);
    let produced = producing.stop();
    rig.wait_stored(&restarted, produced.len());
    restarted.stop();
    let written = rig.uploads_since(mark);
    assert!(!written.contains(&key), "{key} written again: {written:?}");
    rig.assert_exactly_once(&produced);
}

/// A9: objects stored but not committed (one object's upload, usually the first's, is stuck
/// before the store, so the commit cannot pass it, while the next ones are stored), `kill -9`,
/// restart with another
/// `max_records`: the stored objects are found by listing and kept as they are, the missing
/// range is cut anew around them, and reconcile finds no overlap.
#[test]
fn a9_restart_with_other_max_records_keeps_stored_uncommitted_objects() {
    let rig = Rig::new("a9", 1);
    let produced = rig
        .stack
        .produce_one_per_batch(&rig.topic, &records(1, 300, 40));
    let config = rig.config(
        "run",
        "max_records = 50\nmax_interval_ms = 1000",
        "upload_concurrency = 4",
        "",
    );
    let hold =
        rig.proxy
            .hold_nth_under(Operation::PutObject, &rig.prefix, 1, HoldAt::BeforeUpstream);
    let mut connector = rig.start(&config);
    let held = hold.wait_held(WAIT);
    // Usually 0-49; another object when its uploader was quicker to send.
    let held_key = held.key.clone().unwrap();
    let (held_first, held_last) = offsets(&held_key);
    // Every other object of the 6 is stored.
    rig.proxy
        .wait_for_under(Operation::PutObject, &rig.prefix, 5, WAIT);
    let committed = rig.committed().get(&0).copied().unwrap_or(0);
    assert!(
        committed <= held_first,
        "committed {committed} past a held object"
    );
    rig.crash(&mut connector);
    drop(hold);
    rig.proxy.wait_done(held.id, WAIT);
    let before = rig.keys();
    assert!(!before.contains(&held_key));
    let uncommitted: Vec<&String> = before
        .iter()
        .filter(|key| offsets(key).0 > held_last)
        .collect();
    assert!(
        !uncommitted.is_empty(),
        "objects after the held one are stored, uncommitted: {before:?}"
    );

    let mark = rig.proxy.requests().len();
    let other = rig.config(
        "restart",
        "max_records = 35\nmax_interval_ms = 1000",
        "upload_concurrency = 4",
        "",
    );
    let mut restarted = rig.start(&other);
    rig.wait_stored(&restarted, produced.len());
    restarted.stop();
    let written = rig.uploads_since(mark);
    assert!(
        before.iter().all(|key| !written.contains(key)),
        "stored objects written again: {written:?} (stored before: {before:?})"
    );
    let after = rig.keys();
    assert!(before.iter().all(|key| after.contains(key)));
    assert!(
        written
            .iter()
            .any(|key| offsets(key) == (held_first, held_first + 34)),
        "the missing range {held_first}-{held_last} is cut with the new max_records: {written:?}"
    );
    rig.assert_exactly_once(&produced);
}

/// Key templates (issue 13; E7–E9): under a template partitioned by the record timestamp's date
/// and hour and by a hostile field of the record value, a `kill -9` after the store answered a
/// PutObject (the object stored, not committed) is recovered by listing the topic's folder: the
/// restart does not write the object again, and every record is stored once. Every key is the
/// template rendered from each of its object's records (an object never spans two hours or
/// field values), stays under the prefix as one escaped segment per value, and `reconcile
/// --deep` parses the keys by the template and finds the copy clean. Timestamps include 1970
/// and 9999's last millisecond.
#[test]
fn kill_under_a_time_and_field_template_stores_every_record_once() {
    use actors::key_template::{KeyTemplate, MAX_KEY_BYTES, MAX_TIMESTAMP_MS};
    // Compact: s3s-fs keeps an object's metadata in a file named after the base64 of its key,
    // which a long key (a 64-byte field) pushes over the file system's 255 bytes (OSS has no
    // such limit).
    const TEMPLATE: &str = "{topic}/{yyyy}{MM}{dd}{HH}/{partition}/{field}/{first}-{last}{ext}";
    const HOUR: i64 = 3_600_000;
    let rig = Rig::new("tpl", 2);
    let long = "long".repeat(100);
    let regions = [
        "eu",
        "../../../escape",
        "a/b\\c",
        "nul\0bell\u{7}",
        long.as_str(),
        "..",
    ];
    let count = 300;
    let records: Vec<support::TestRecord> = (0..count)
        .map(|index| {
            let partition = index as i32 % 2;
            let region = regions[(index / 20) % regions.len()];
            let value = serde_json::json!({ "region": region, "n": index }).to_string();
            (
                partition,
                Some(format!("{partition}:{index}").into_bytes()),
                Some(value.into_bytes()),
            )
        })
        .collect();
    // 2024-02-29T10:00Z on, a new hour every 50 records (25 per partition); 1970 first, 9999 last.
    let base = 1_709_200_800_000;
    let timestamp = |index: usize| match index {
        0 | 1 => 1,
        index if index >= count - 2 => MAX_TIMESTAMP_MS,
        index => base + (index as i64 / 50) * HOUR + index as i64,
    };
    let produced = rig
        .stack
        .produce_one_per_batch_at(&rig.topic, &records, &timestamp);
    let sink = format!(
        "key_template = \"{TEMPLATE}\"\nkey_field = \"value.region\"\nkey_field_default = \"none\""
    );
    let config = rig.config("run", "max_records = 50\nmax_interval_ms = 1000", &sink, "");
    let hold =
        rig.proxy
            .hold_nth_under(Operation::PutObject, &rig.prefix, 5, HoldAt::BeforeResponse);
    let mut connector = rig.start(&config);
    let held = hold.wait_held(WAIT);
    rig.crash(&mut connector);
    drop(hold);
    let key = held.key.clone().unwrap();
    assert!(rig.keys().contains(&key), "stored before the kill: {key}");

    let mark = rig.proxy.requests().len();
    let mut restarted = rig.start(&config);
    rig.wait_stored(&restarted, produced.len());
    restarted.stop();
    let written = rig.uploads_since(mark);
    assert!(
        !written.contains(&key),
        "{key} written again after the restart: {written:?}"
    );

    let template = KeyTemplate::parse(TEMPLATE, "UTC", Some("value.region"), "none").unwrap();
    let mut objects = rig.stack.objects(rig.bucket, &rig.prefix);
    // In offset order per partition (keys sort by hour first), as the check below reads them.
    objects.sort_by_key(|(_, stored)| {
        (
            stored[0]["partition"].as_i64().unwrap(),
            stored[0]["offset"].as_i64().unwrap(),
        )
    });
    let mut hours = BTreeSet::new();
    for (key, stored) in &objects {
        assert!(key.len() <= MAX_KEY_BYTES, "{key}");
        assert_eq!(
            key.matches('/').count(),
            5,
            "one segment per value: {key:?}"
        );
        assert!(
            !key.split('/')
                .any(|segment| segment == ".." || segment == "."),
            "{key:?}"
        );
        assert!(
            !key.contains('\\') && !key.chars().any(char::is_control),
            "{key:?}"
        );
        for record in stored {
            let bytes = |field: &str| record[field].as_str().map(str::as_bytes);
            let parts = template.parts(
                record["timestamp"].as_i64().unwrap(),
                bytes("key"),
                bytes("value"),
            );
            let (first, last) = (
                stored[0]["offset"].as_i64().unwrap(),
                stored.last().unwrap()["offset"].as_i64().unwrap(),
            );
            let partition = record["partition"].as_i64().unwrap() as i32;
            assert_eq!(
                &template.render("e2e/", &rig.topic, partition, first, last, Some(&parts)),
                key,
                "record {record} is not in its time and field partition"
            );
        }
        hours.insert(key.split('/').nth(2).unwrap().to_owned());
    }
    assert!(hours.len() >= 6, "several hours, 1970 and 9999: {hours:?}");
    assert!(
        hours.contains("1970010100") && hours.contains("9999123123"),
        "{hours:?}"
    );

    let reconcile = rig.config("reconcile", "", &sink, "");
    set_sink_endpoint(&reconcile, &rig.stack.endpoint());
    let run = rig.stack.reconcile(&reconcile, &["--json", "--deep"]);
    exactly_once::assert_reconcile_clean(&run);
    exactly_once::assert_committed_to_end(&run, &produced);
    exactly_once::assert_bucket_once_keyed(
        &objects,
        &rig.topic,
        &produced,
        &BTreeSet::new(),
        &|key, partition, first, last| {
            template.parse_key("e2e/", &rig.topic, Some(partition), key)
                == Some((partition, first, last))
        },
    );
}
