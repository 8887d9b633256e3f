//! End-to-end tests of `kafka-oss-sink reconcile` against a real tansu broker and s3s-fs server:
//! the connector copies a topic, then the bucket is damaged by hand (an object deleted, one
//! copied under an overlapping key, strangers' objects put under the prefix) and reconcile must
//! report exactly that, with exit code 1; a clean copy reports clean with exit code 0.
//!
//! Objects without `kos-format` metadata are foreign unless `--accept-unlabelled`. The tests
//! look at the connector's objects: when they carry metadata, reconcile runs without the flag;
//! when they do not (a connector before object metadata), the tests check that each object is
//! reported foreign without the flag and then pass it.

mod support;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use aws_sdk_s3::primitives::ByteStream;
use serde_json::{json, Value};
use support::{unique, Stack, TestRecord, ACCESS_KEY_ID};

/// A reconcile run: exit code, outputs, and the report when `--json` was given.
struct Reconciled {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Reconciled {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|error| panic!("not JSON ({error}):\n{}\n{}", self.stdout, self.stderr))
    }
}

fn reconcile(stack: &Stack, config: &Path, args: &[&str]) -> Reconciled {
    reconcile_with_secret(stack, config, &stack.secret, args)
}

fn reconcile_with_secret(stack: &Stack, config: &Path, secret: &str, args: &[&str]) -> Reconciled {
    let output = Command::new(env!("CARGO_BIN_EXE_kafka-oss-sink"))
        .args(["reconcile", "--config"])
        .arg(config)
        .args(args)
        .env("OSS_ACCESS_KEY_ID", ACCESS_KEY_ID)
        .env("OSS_ACCESS_KEY_SECRET", secret)
        .output()
        .expect("running reconcile");
    let run = Reconciled {
        code: output.status.code().expect("reconcile exits with a code"),
        stdout: String::from_utf8(output.stdout).unwrap(),
        stderr: String::from_utf8(output.stderr).unwrap(),
    };
    for text in [&run.stdout, &run.stderr] {
        assert!(
            !text.contains(&stack.secret),
            "the secret is printed:\n{text}"
        );
        assert!(!text.contains(secret), "the secret is printed:\n{text}");
    }
    run
}

/// A topic copied into a bucket by the connector, stopped gracefully (everything committed).
struct Copied {
    topic: String,
    bucket: &'static str,
    config: std::path::PathBuf,
    prefix: String,
    runtime: tokio::runtime::Runtime,
    s3: aws_sdk_s3::Client,
    /// `--accept-unlabelled` when the connector writes no object metadata.
    flags: Vec<&'static str>,
}

impl Copied {
    /// Copies `records` into a new bucket with `max_records = 40`.
    fn new(stack: &Stack, partitions: u32, records: &[TestRecord], extra: &str) -> Copied {
        let (topic, bucket, name) = (unique("rec"), "reconcile-bucket", unique("rec"));
        stack.create_topic(&topic, partitions);
        stack.create_bucket(bucket);
        // One record per batch: tansu's high watermarks are too low after multi-record batches
        // (tests/README.md), and reconcile holds objects past the high watermark foreign.
        stack.produce_one_per_batch(&topic, records);
        let config = stack.config(
            &name,
            &topic,
            bucket,
            "max_records = 40\nmax_interval_ms = 300",
            extra,
        );
        let prefix = format!("e2e/{topic}/");
        let mut connector = stack.connector(&config, None);
        let stored = records
            .iter()
            .filter(|(_, key, value)| {
                key.as_deref()
                    .is_none_or(|k| std::str::from_utf8(k).is_ok())
                    && value
                        .as_deref()
                        .is_none_or(|v| v.len() > 100 || std::str::from_utf8(v).is_ok())
            })
            .count();
        let objects = stack.wait_for_records(bucket, &prefix, stored, Duration::from_secs(60));
        let found: usize = objects.iter().map(|(_, records)| records.len()).sum();
        assert_eq!(
            found,
            stored,
            "the connector stored every record:\n{}",
            connector.logs()
        );
        connector.stop();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let mut copied = Copied {
            topic,
            bucket,
            config,
            prefix,
            runtime,
            s3: stack.s3(),
            flags: Vec::new(),
        };
        let first = copied.keys()[0].clone();
        if !copied.metadata(&first).contains_key("kos-format") {
            copied.flags.push("--accept-unlabelled");
        }
        copied
    }

    fn keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = self.runtime.block_on(async {
            actors::store::list_objects(&self.s3, self.bucket, &self.prefix, None)
                .await
                .unwrap()
                .into_iter()
                .filter_map(|object| object.key)
                .collect()
        });
        keys.sort();
        keys
    }

    fn key(&self, partition: i32, first: i64, last: i64) -> String {
        actors::object_key::object_key("e2e/", &self.topic, partition, first, last)
    }

    /// `(first, last)` of each object of `partition`, in order.
    fn ranges(&self, partition: i32) -> Vec<(i64, i64)> {
        let folder = format!("{}{partition}/", self.prefix);
        self.keys()
            .iter()
            .filter(|key| key.starts_with(&folder))
            .map(|key| actors::object_key::parse_offsets(key).unwrap())
            .collect()
    }

    fn metadata(&self, key: &str) -> std::collections::HashMap<String, String> {
        self.runtime.block_on(async {
            let head = self
                .s3
                .head_object()
                .bucket(self.bucket)
                .key(key)
                .send()
                .await
                .unwrap();
            head.metadata().cloned().unwrap_or_default()
        })
    }

    fn delete(&self, key: &str) {
        self.runtime.block_on(async {
            self.s3
                .delete_object()
                .bucket(self.bucket)
                .key(key)
                .send()
                .await
                .unwrap();
        });
    }

    /// Puts `body` under `key` with `metadata`, as someone with write access to the bucket would.
    fn put(&self, key: &str, body: Vec<u8>, metadata: std::collections::HashMap<String, String>) {
        self.runtime.block_on(async {
            self.s3
                .put_object()
                .bucket(self.bucket)
                .key(key)
                .set_metadata(Some(metadata))
                .body(ByteStream::from(body))
                .send()
                .await
                .unwrap();
        });
    }

    /// Copies `from` to `to`, body and metadata.
    fn copy(&self, from: &str, to: &str) {
        let body = self.runtime.block_on(async {
            let object = self
                .s3
                .get_object()
                .bucket(self.bucket)
                .key(from)
                .send()
                .await
                .unwrap();
            object.body.collect().await.unwrap().into_bytes().to_vec()
        });
        self.put(to, body, self.metadata(from));
    }

    fn run(&self, stack: &Stack, args: &[&str]) -> Reconciled {
        let mut all: Vec<&str> = self.flags.clone();
        all.extend(args);
        reconcile(stack, &self.config, &all)
    }
}

/// Values with quotes, backslashes, unicode, empty and null, so that `--deep`'s comparison of
/// stored records with the broker's is tried on what users send.
fn records(partitions: i32, count: usize) -> Vec<TestRecord> {
    (0..count)
        .map(|index| {
            let partition = (index as i32) % partitions;
            let key = match index % 4 {
                0 => None,
                1 => Some(Vec::new()),
                _ => Some(format!("ключ \"{index}\"").into_bytes()),
            };
            let value = match index % 5 {
                0 => None,
                1 => Some(Vec::new()),
                2 => Some(format!("{{\"id\": {index}, \"q\": \"\\\\ \\\"\"}}\n").into_bytes()),
                _ => Some(format!("value é 🎉 {index}").into_bytes()),
            };
            (partition, key, value)
        })
        .collect()
}

fn empty(value: &Value) -> bool {
    value.as_array().is_some_and(Vec::is_empty)
}

/// Every finding list of every partition is empty except those named in `except`.
fn assert_nothing_else(report: &Value, except: &[&str]) {
    for partition in report["partitions"].as_array().unwrap() {
        for list in ["missing", "duplicated", "overlapping"] {
            if !except.contains(&list) {
                assert!(empty(&partition[list]), "{list}: {report:#}");
            }
        }
    }
    if !except.contains(&"foreign") {
        assert!(empty(&report["foreign"]), "{report:#}");
    }
}

/// Without metadata (a connector before object metadata) each object is foreign unless
/// `--accept-unlabelled`, and its offsets still count.
fn assert_unlabelled_objects_are_foreign_by_default(stack: &Stack, copied: &Copied) {
    if copied.flags.is_empty() {
        return;
    }
    let run = reconcile(stack, &copied.config, &["--json"]);
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    let report = run.json();
    let foreign: BTreeSet<&str> = report["foreign"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            assert!(
                f["reason"]
                    .as_str()
                    .unwrap()
                    .contains("no kos-format metadata"),
                "{f}"
            );
            f["key"].as_str().unwrap()
        })
        .collect();
    let keys = copied.keys();
    assert_eq!(foreign, keys.iter().map(String::as_str).collect());
    assert_nothing_else(&report, &["foreign"]);
}

/// A clean copy reports clean (exit 0), with and without `--deep`; deleting one object makes
/// reconcile report exactly that object's range as missing (exit 1), and nothing else.
#[test]
fn a_clean_copy_is_clean_and_a_deleted_object_is_exactly_its_missing_range() {
    let stack = Stack::start();
    let copied = Copied::new(&stack, 3, &records(3, 360), "");
    assert_unlabelled_objects_are_foreign_by_default(&stack, &copied);

    let run = copied.run(&stack, &[]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("\nclean: "), "{}", run.stdout);
    for deep in [&[][..], &["--deep"][..]] {
        let mut args = vec!["--json"];
        args.extend(deep);
        let run = copied.run(&stack, &args);
        assert_eq!(run.code, 0, "{args:?}: {}{}", run.stdout, run.stderr);
        let report = run.json();
        assert_eq!(report["clean"], true);
        assert_eq!(report["deep"], !deep.is_empty());
        for partition in report["partitions"].as_array().unwrap() {
            assert_eq!(partition["committed"], 120, "{partition:#}");
            assert_eq!(partition["start"], 0, "{partition:#}");
            assert_eq!(partition["stored"], 120, "{partition:#}");
            assert!(empty(&partition["uncommitted"]), "{partition:#}");
            assert!(empty(&partition["not_on_broker"]), "{partition:#}");
        }
        assert_nothing_else(&report, &[]);
    }

    let ranges = copied.ranges(1);
    assert!(ranges.len() >= 3, "{ranges:?}");
    let (first, last) = ranges[1];
    copied.delete(&copied.key(1, first, last));
    for deep in [&[][..], &["--deep"][..]] {
        let mut args = vec!["--json"];
        args.extend(deep);
        let run = copied.run(&stack, &args);
        assert_eq!(run.code, 1, "{args:?}: {}{}", run.stdout, run.stderr);
        let report = run.json();
        assert_eq!(report["clean"], false);
        assert_eq!(report["missing"], last - first + 1);
        let partitions = report["partitions"].as_array().unwrap();
        assert_eq!(
            partitions[1]["missing"],
            json!([{"first": first, "last": last}]),
            "{report:#}"
        );
        assert!(empty(&partitions[1]["not_on_broker"]), "{report:#}");
        assert!(empty(&partitions[0]["missing"]) && empty(&partitions[2]["missing"]));
        assert_nothing_else(&report, &["missing"]);
    }
    let run = copied.run(&stack, &[]);
    assert_eq!(run.code, 1);
    assert!(
        run.stdout.contains(&format!(
            "partition 1: offsets {first}-{last} ({}) in no object and no error topic",
            last - first + 1
        )),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("NOT CLEAN: "), "{}", run.stdout);
}

/// A copy of an object under a key whose range overlaps its neighbours' is reported as two
/// overlaps; strangers' objects under the prefix (a key not in the connector's layout, and one
/// in the layout past the partition's end) are foreign.
#[test]
fn an_overlapping_copy_and_strangers_objects_are_reported() {
    let stack = Stack::start();
    let copied = Copied::new(&stack, 1, &records(1, 120), "");
    let ranges = copied.ranges(0);
    assert!(ranges.len() >= 3, "{ranges:?}");
    let (a, b) = (ranges[0], ranges[1]);
    // Starts inside the first object and ends inside the second.
    let (copy_first, copy_last) = (a.0 + 1, b.0 + 1);
    let (original, copy) = (
        copied.key(0, a.0, a.1),
        copied.key(0, copy_first, copy_last),
    );
    copied.copy(&original, &copy);
    let labelled = copied.flags.is_empty();

    let report = copied.run(&stack, &["--json"]);
    assert_eq!(report.code, 1, "{}{}", report.stdout, report.stderr);
    let report = report.json();
    let partition = &report["partitions"][0];
    assert_eq!(
        partition["overlapping"],
        json!([
            {"keys": [original, copy], "first": copy_first, "last": a.1},
            {"keys": [copy, copied.key(0, b.0, b.1)], "first": b.0, "last": copy_last},
        ]),
        "{report:#}"
    );
    if labelled {
        // Its metadata names the original's range: not ours, so its offsets count for nothing.
        assert_eq!(report["foreign"][0]["key"], copy.as_str(), "{report:#}");
        assert_nothing_else(&report, &["overlapping", "foreign"]);
    } else {
        // Judged by its key, its offsets are stored twice.
        assert_eq!(
            partition["duplicated"],
            json!([
                {"first": copy_first, "last": a.1, "holders": [original, copy]},
                {"first": b.0, "last": copy_last, "holders": [copy, copied.key(0, b.0, b.1)]},
            ]),
            "{report:#}"
        );
        assert_nothing_else(&report, &["overlapping", "duplicated"]);
    }
    // The body says which offsets it holds, whatever the metadata.
    let deep = copied.run(&stack, &["--json", "--deep"]);
    assert_eq!(deep.code, 1);
    let deep = deep.json();
    assert_eq!(deep["foreign"].as_array().unwrap().len(), 1, "{deep:#}");
    assert_eq!(deep["foreign"][0]["key"], copy.as_str());
    assert_eq!(
        deep["partitions"][0]["overlapping"],
        partition["overlapping"]
    );
    assert_nothing_else(&deep, &["overlapping", "foreign"]);
    let text = copied.run(&stack, &[]);
    assert!(
        text.stdout.contains(&format!(
            "partition 0: {original} and {copy} both claim offsets {copy_first}-{}",
            a.1
        )),
        "{}",
        text.stdout
    );

    copied.delete(&copy);
    let stray = format!("{}0/notes.txt", copied.prefix);
    copied.put(&stray, b"hello".to_vec(), Default::default());
    // In the connector's layout, but past the partition's end: from another cluster, say.
    let late = copied.key(0, 500, 501);
    let late_body = json!([
        {"key": null, "offset": 500, "overflowFlag": false, "partition": 0, "timestamp": 1,
         "topic": copied.topic, "value": "x", "valueSize": 1},
        {"key": null, "offset": 501, "overflowFlag": false, "partition": 0, "timestamp": 1,
         "topic": copied.topic, "value": "y", "valueSize": 1},
    ]);
    let mut late_metadata = copied.metadata(&copied.key(0, a.0, a.1));
    for (name, value) in [
        ("kos-first-offset", "500"),
        ("kos-last-offset", "501"),
        ("kos-records", "2"),
    ] {
        if labelled {
            late_metadata.insert(name.to_owned(), value.to_owned());
        }
    }
    copied.put(
        &late,
        serde_json::to_vec(&late_body).unwrap(),
        late_metadata,
    );
    let run = copied.run(&stack, &["--json"]);
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    let report = run.json();
    let foreign = report["foreign"].as_array().unwrap();
    assert_eq!(foreign.len(), 2, "{report:#}");
    assert_eq!(foreign[0]["key"], late.as_str());
    assert!(
        foreign[0]["reason"]
            .as_str()
            .unwrap()
            .contains("past the partition's end 120"),
        "{report:#}"
    );
    assert_eq!(foreign[1]["key"], stray.as_str());
    assert!(
        foreign[1]["reason"]
            .as_str()
            .unwrap()
            .contains("its key is not"),
        "{report:#}"
    );
    assert_nothing_else(&report, &["foreign"]);
}

/// Records routed to the dead-letter topic (not UTF-8) count as delivered, and an oversize
/// record, in the bucket with `overflowFlag` and whole in the dead-letter topic, is not a
/// duplicate.
#[test]
fn records_in_the_dead_letter_topic_count_and_oversize_copies_are_no_duplicates() {
    let stack = Stack::start();
    let mut input = records(2, 200);
    for (index, record) in input.iter_mut().enumerate() {
        match index % 30 {
            7 => record.2 = Some(b"bad \xff value".to_vec()),
            13 => record.2 = Some("big".repeat(50).into_bytes()),
            _ => {}
        }
    }
    let invalid = input
        .iter()
        .filter(|r| r.2.as_deref().is_some_and(|v| v.starts_with(b"bad \xff")))
        .count();
    let oversize = input
        .iter()
        .filter(|r| r.2.as_deref().is_some_and(|v| v.len() > 100))
        .count();
    assert!(invalid > 2 && oversize > 2);
    let copied = Copied::new(&stack, 2, &input, "[failure]\nmax_value_bytes = 100");
    for deep in [&[][..], &["--deep"][..]] {
        let mut args = vec!["--json"];
        args.extend(deep);
        let run = copied.run(&stack, &args);
        assert_eq!(run.code, 0, "{args:?}: {}{}", run.stdout, run.stderr);
        let report = run.json();
        let partitions = report["partitions"].as_array().unwrap();
        let routed: u64 = partitions
            .iter()
            .map(|p| p["routed"].as_u64().unwrap())
            .sum();
        let stored: u64 = partitions
            .iter()
            .map(|p| p["stored"].as_u64().unwrap())
            .sum();
        assert_eq!(routed as usize, invalid + oversize, "{report:#}");
        assert_eq!(stored as usize, 200 - invalid, "{report:#}");
        assert_nothing_else(&report, &[]);
    }
}

/// What cannot be read is named, with exit code 3: a missing topic, a missing bucket, refused
/// credentials (never printing the secret).
#[test]
fn a_missing_topic_or_bucket_or_refused_credentials_exit_3_naming_the_cause() {
    let stack = Stack::start();
    let topic = unique("present");
    stack.create_topic(&topic, 1);
    stack.create_bucket("there");
    let missing_topic = stack.config(&unique("a"), "absent-topic", "there", "", "");
    let run = reconcile(&stack, &missing_topic, &[]);
    assert_eq!(run.code, 3, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stderr.contains("topic `absent-topic` does not exist"),
        "{}",
        run.stderr
    );
    let missing_bucket = stack.config(&unique("b"), &topic, "not-there", "", "");
    let run = reconcile(&stack, &missing_bucket, &[]);
    assert_eq!(run.code, 3, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stderr.contains("bucket `not-there` does not exist"),
        "{}",
        run.stderr
    );
    let config = stack.config(&unique("c"), &topic, "there", "", "");
    let run = reconcile_with_secret(&stack, &config, "wrong-secret-canary", &[]);
    assert_eq!(run.code, 3, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stderr.contains("access to bucket `there` denied"),
        "{}",
        run.stderr
    );
    let run = reconcile(&stack, &config, &["--json"]);
    assert_eq!(
        run.code, 0,
        "an empty bucket and topic are clean: {}{}",
        run.stdout, run.stderr
    );
}
