//! The real local stack for end-to-end tests: a tansu broker and an s3s-fs server on loopback,
//! started per test on free ports, plus helpers to produce records, run the connector binary and
//! read the bucket back through the S3 API.
//!
//! The server binaries come from `TANSU_BIN` / `S3S_FS_BIN` (set by `scripts/test`), or from the
//! cache `scripts/lib.sh` installs into. A missing binary fails the test with a message saying
//! how to install it; it is never skipped silently.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseRecord, Producer, ThreadedProducer};
use serde_json::Value;

/// `(partition, key, value)` of a record to produce.
pub type TestRecord = (i32, Option<Vec<u8>>, Option<Vec<u8>>);

pub const ACCESS_KEY_ID: &str = "test-access-key";

fn cached_binary(env: &str, relative: &str) -> PathBuf {
    if let Ok(path) = std::env::var(env) {
        return PathBuf::from(path);
    }
    let cache = std::env::var("KOS_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(std::env::var("HOME").expect("HOME")).join(".cache/kafka-oss-sink")
        });
    let path = cache.join(relative);
    assert!(
        path.exists(),
        "{} not found: run the tests with scripts/test, which installs it (or set {env})",
        path.display()
    );
    path
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_port(port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "{what} did not listen on port {port}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A unique name per test run, so tests can share nothing by accident.
pub fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{prefix}-{}", nanos % 1_000_000_000)
}

pub struct Stack {
    broker: Child,
    s3: Child,
    pub kafka_port: u16,
    pub s3_port: u16,
    pub dir: PathBuf,
    /// A random secret per stack: tests grep outputs for it.
    pub secret: String,
    runtime: tokio::runtime::Runtime,
}

impl Stack {
    pub fn start() -> Stack {
        let tansu = cached_binary("TANSU_BIN", "tansu-0.6.0/bin/tansu");
        let s3s = cached_binary("S3S_FS_BIN", "s3s-fs-0.14.1/bin/s3s-fs");
        let dir = std::env::temp_dir().join(unique("kos-e2e"));
        std::fs::create_dir_all(dir.join("s3")).unwrap();
        let secret = format!("secret-{}", unique("canary"));
        let kafka_port = free_port();
        let listener = format!("tcp://127.0.0.1:{kafka_port}");
        let broker = Command::new(tansu)
            .args([
                "broker",
                "--listener-url",
                &listener,
                "--advertised-listener-url",
                &listener,
            ])
            .args(["--storage-engine", "memory://tansu/"])
            .stdout(std::fs::File::create(dir.join("broker.log")).unwrap())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting tansu");
        let s3_port = free_port();
        let s3 = Command::new(s3s)
            .args(["--host", "127.0.0.1", "--port", &s3_port.to_string()])
            .args(["--access-key", ACCESS_KEY_ID, "--secret-key", &secret])
            .arg(dir.join("s3"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("s3.log")).unwrap())
            .spawn()
            .expect("starting s3s-fs");
        wait_port(kafka_port, "tansu");
        wait_port(s3_port, "s3s-fs");
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        Stack {
            broker,
            s3,
            kafka_port,
            s3_port,
            dir,
            secret,
            runtime,
        }
    }

    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.kafka_port)
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.s3_port)
    }

    pub fn create_topic(&self, topic: &str, partitions: u32) {
        let status = Command::new(cached_binary("TANSU_BIN", "tansu-0.6.0/bin/tansu"))
            .args([
                "topic",
                "create",
                topic,
                "--partitions",
                &partitions.to_string(),
            ])
            .args(["--broker", &format!("tcp://127.0.0.1:{}", self.kafka_port)])
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "creating topic {topic}");
    }

    /// s3s-fs keeps a bucket as a directory under its root.
    pub fn create_bucket(&self, bucket: &str) {
        std::fs::create_dir_all(self.dir.join("s3").join(bucket)).unwrap();
    }

    pub fn remove_bucket(&self, bucket: &str) {
        let _ = std::fs::remove_dir_all(self.dir.join("s3").join(bucket));
    }

    /// Produces records (in order) and returns them keyed by the `(partition, offset)` the
    /// broker assigned, read from the delivery reports.
    pub fn produce(&self, topic: &str, records: &[TestRecord]) -> BTreeMap<(i32, i64), Produced> {
        let producer: ThreadedProducer<Capture> = ClientConfig::new()
            .set("bootstrap.servers", self.bootstrap())
            .set("linger.ms", "5")
            .set("acks", "all")
            .create_with_context(Capture::default())
            .expect("producer");
        let base_ts = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
        for (index, (partition, key, value)) in records.iter().enumerate() {
            let mut record: BaseRecord<'_, [u8], [u8], Box<usize>> =
                BaseRecord::with_opaque_to(topic, Box::new(index))
                    .partition(*partition)
                    .timestamp(base_ts + index as i64);
            if let Some(key) = key {
                record = record.key(key.as_slice());
            }
            if let Some(value) = value {
                record = record.payload(value.as_slice());
            }
            let mut pending = record;
            loop {
                match producer.send(pending) {
                    Ok(()) => break,
                    Err((
                        rdkafka::error::KafkaError::MessageProduction(
                            rdkafka::types::RDKafkaErrorCode::QueueFull,
                        ),
                        back,
                    )) => {
                        pending = back;
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    Err((error, _)) => panic!("enqueue record: {error}"),
                }
            }
        }
        producer.flush(Duration::from_secs(60)).expect("flush");
        let delivered = std::mem::take(&mut *producer.context().0.lock().unwrap());
        assert_eq!(delivered.len(), records.len(), "every record delivered");
        delivered
            .into_iter()
            .map(|(index, partition, offset)| {
                let (expected_partition, key, value) = &records[index];
                assert_eq!(partition, *expected_partition);
                (
                    (partition, offset),
                    Produced {
                        key: key.clone(),
                        value: value.clone(),
                        timestamp: base_ts + index as i64,
                    },
                )
            })
            .collect()
    }

    /// The offsets committed by a consumer group, per partition.
    pub fn committed(&self, group: &str, topic: &str, partitions: i32) -> BTreeMap<i32, i64> {
        use rdkafka::consumer::{BaseConsumer, Consumer};
        use rdkafka::{Offset, TopicPartitionList};
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", self.bootstrap())
            .set("group.id", group)
            .create()
            .unwrap();
        let mut list = TopicPartitionList::new();
        for partition in 0..partitions {
            list.add_partition(topic, partition);
        }
        let committed = consumer
            .committed_offsets(list, Duration::from_secs(10))
            .unwrap();
        committed
            .elements()
            .iter()
            .filter_map(|element| match element.offset() {
                Offset::Offset(offset) => Some((element.partition(), offset)),
                _ => None,
            })
            .collect()
    }

    pub fn s3(&self) -> aws_sdk_s3::Client {
        let config = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .endpoint_url(self.endpoint())
            .force_path_style(true)
            .credentials_provider(Credentials::new(
                ACCESS_KEY_ID,
                &self.secret,
                None,
                None,
                "test",
            ))
            .build();
        aws_sdk_s3::Client::from_conf(config)
    }

    /// Every object under `prefix` in key order, with its parsed JSON array.
    pub fn objects(&self, bucket: &str, prefix: &str) -> Vec<(String, Vec<Value>)> {
        let client = self.s3();
        self.runtime.block_on(async {
            let mut keys = Vec::new();
            let mut token = None;
            loop {
                let page = client
                    .list_objects_v2()
                    .bucket(bucket)
                    .prefix(prefix)
                    .set_continuation_token(token)
                    .send()
                    .await
                    .expect("list objects");
                keys.extend(
                    page.contents()
                        .iter()
                        .filter_map(|object| object.key().map(str::to_owned)),
                );
                match page.next_continuation_token {
                    Some(next) if page.is_truncated == Some(true) => token = Some(next),
                    _ => break,
                }
            }
            keys.sort();
            let mut objects = Vec::new();
            for key in keys {
                let body = client
                    .get_object()
                    .bucket(bucket)
                    .key(&key)
                    .send()
                    .await
                    .expect("get object");
                let bytes = body.body.collect().await.unwrap().into_bytes();
                let array: Vec<Value> = serde_json::from_slice(&bytes)
                    .unwrap_or_else(|error| panic!("object {key} is not a JSON array: {error}"));
                objects.push((key, array));
            }
            objects
        })
    }

    /// `(key, size, ETag)` of every object under `prefix`, in key order.
    pub fn object_sizes(&self, bucket: &str, prefix: &str) -> Vec<(String, i64, String)> {
        let client = self.s3();
        self.runtime.block_on(async {
            let page = client
                .list_objects_v2()
                .bucket(bucket)
                .prefix(prefix)
                .send()
                .await
                .expect("list objects");
            let mut out = Vec::new();
            for object in page.contents() {
                let key = object.key().unwrap().to_owned();
                let head = client
                    .head_object()
                    .bucket(bucket)
                    .key(&key)
                    .send()
                    .await
                    .expect("head object");
                out.push((
                    key,
                    head.content_length().unwrap_or(-1),
                    head.e_tag().unwrap_or("").to_owned(),
                ));
            }
            out
        })
    }

    /// Polls the bucket until `count` records are in it (or the deadline passes), returns them.
    pub fn wait_for_records(
        &self,
        bucket: &str,
        prefix: &str,
        count: usize,
        timeout: Duration,
    ) -> Vec<(String, Vec<Value>)> {
        let deadline = Instant::now() + timeout;
        loop {
            let objects = self.objects(bucket, prefix);
            let found: usize = objects.iter().map(|(_, records)| records.len()).sum();
            if found >= count || Instant::now() > deadline {
                return objects;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Writes a connector config for this stack. `extra` is appended verbatim (TOML tables).
    pub fn config(
        &self,
        name: &str,
        topic: &str,
        bucket: &str,
        batching: &str,
        extra: &str,
    ) -> PathBuf {
        let path = self.dir.join(format!("{name}.toml"));
        let text = format!(
            r#"name = "{name}"
drain_timeout_ms = 20000

[source]
bootstrap_servers = "{bootstrap}"
topic = "{topic}"
start_offset = "earliest"
concurrency = 2

[source.properties]
"fetch.wait.max.ms" = "10"
"session.timeout.ms" = "6000"
"heartbeat.interval.ms" = "500"

[sink]
bucket = "{bucket}"
endpoint = "{endpoint}"
region = "us-east-1"
key_prefix = "e2e/"
addressing = "path"
retry_initial_backoff_ms = 50
retry_max_backoff_ms = 500

[batching]
{batching}
{extra}
"#,
            bootstrap = self.bootstrap(),
            endpoint = self.endpoint(),
        );
        std::fs::write(&path, text).unwrap();
        path
    }

    /// Starts the connector binary with this stack's credentials (or `secret` instead).
    pub fn connector(&self, config: &Path, secret: Option<&str>) -> Connector {
        let log = self.dir.join(format!("connector-{}.log", unique("run")));
        let child = Command::new(env!("CARGO_BIN_EXE_kafka-oss-sink"))
            .args(["run", "--config"])
            .arg(config)
            .env("OSS_ACCESS_KEY_ID", ACCESS_KEY_ID)
            .env("OSS_ACCESS_KEY_SECRET", secret.unwrap_or(&self.secret))
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("starting the connector");
        Connector { child, log }
    }
}

/// Records `(index, partition, offset)` of every successful delivery; panics on a failed one.
#[derive(Default)]
pub struct Capture(std::sync::Mutex<Vec<(usize, i32, i64)>>);

impl rdkafka::ClientContext for Capture {}

impl rdkafka::producer::ProducerContext for Capture {
    type DeliveryOpaque = Box<usize>;

    fn delivery(&self, result: &rdkafka::message::DeliveryResult<'_>, index: Box<usize>) {
        use rdkafka::Message;
        match result {
            Ok(message) => {
                self.0
                    .lock()
                    .unwrap()
                    .push((*index, message.partition(), message.offset()))
            }
            Err((error, _)) => panic!("record {index} not delivered: {error}"),
        }
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        let _ = self.broker.kill();
        let _ = self.s3.kill();
        let _ = self.broker.wait();
        let _ = self.s3.wait();
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        } else {
            eprintln!("test stack kept for inspection in {}", self.dir.display());
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Produced {
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub timestamp: i64,
}

pub struct Connector {
    child: Child,
    pub log: PathBuf,
}

impl Connector {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn logs(&self) -> String {
        let mut text = String::new();
        if let Ok(mut file) = std::fs::File::open(&self.log) {
            let _ = file.read_to_string(&mut text);
        }
        text
    }

    /// Waits until the log contains `needle`; panics with the log otherwise.
    pub fn wait_for_log(&mut self, needle: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while !self.logs().contains(needle) {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "connector exited ({status}) before logging {needle:?}:\n{}",
                    self.logs()
                );
            }
            assert!(
                Instant::now() < deadline,
                "no {needle:?} in the log after {timeout:?}:\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn terminate(&mut self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!(
                    "connector still running after {timeout:?}:\n{}",
                    self.logs()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Connector {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
