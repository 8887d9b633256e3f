//! [`Stack`]: a tansu broker (memory storage) and an s3s-fs server on free loopback ports, one
//! pair per test, stopped (and their directory removed unless the test failed) on drop. Tests of
//! the object store alone start only the s3s-fs server ([`Stack::start_s3_only`]); tests that
//! stop and restart the broker use sqlite storage ([`Stack::start_sqlite`]), which outlives it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;

use super::{free_port, unique, ACCESS_KEY_ID};

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

/// The tansu for `storage`: `TANSU_SQLITE_BIN` for sqlite storage, `TANSU_BIN` for memory
/// storage, each by default the crates.io build in the cache. Not the prebuilt memory-only
/// binary the quickstart uses: it refuses a commit from outside the group (UNKNOWN_MEMBER_ID),
/// which several tests do to set a group's offsets (tests/README.md).
fn tansu_bin(storage: &str) -> PathBuf {
    if storage.starts_with("sqlite:") {
        return cached_binary("TANSU_SQLITE_BIN", "tansu-0.6.0/bin/tansu");
    }
    cached_binary("TANSU_BIN", "tansu-0.6.0/bin/tansu")
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

/// A tansu broker and an s3s-fs server for one test.
pub struct Stack {
    /// `None` for [`Stack::start_s3_only`].
    broker: Option<Child>,
    s3: Child,
    s3s_bin: PathBuf,
    pub kafka_port: u16,
    pub s3_port: u16,
    pub dir: PathBuf,
    /// A random secret per stack: tests grep outputs for it.
    pub secret: String,
    /// tansu keeps its data in `tansu.db` in `dir` ([`Stack::start_sqlite`]), not in memory.
    sqlite: bool,
    /// [`Stack::start_broker`] starts tansu with `--authentication` (SASL/SCRAM-SHA-512 for the
    /// users of [`Stack::create_user`]; tests/README.md).
    pub authentication: bool,
    /// [`Stack::start_broker`] makes tansu advertise this port instead of its own: a
    /// [`TlsFront`](super::tls::TlsFront)'s, so that clients reach the broker through it.
    pub advertised_port: Option<u16>,
    /// Runs the async S3 and Kafka admin calls of the helpers.
    pub(super) runtime: tokio::runtime::Runtime,
}

impl Stack {
    pub fn start() -> Stack {
        Stack::start_with(true)
    }

    /// Only the s3s-fs server (`kafka_port` is 0): for tests of the object store side.
    pub fn start_s3_only() -> Stack {
        Stack::start_with(false)
    }

    fn start_with(with_broker: bool) -> Stack {
        let s3s = cached_binary("S3S_FS_BIN", "s3s-fs-0.14.1/bin/s3s-fs");
        let dir = std::env::temp_dir().join(unique("kos-e2e"));
        std::fs::create_dir_all(dir.join("s3")).unwrap();
        let secret = format!("secret-{}", unique("canary"));
        let (broker, kafka_port) = if with_broker {
            let (broker, kafka_port) = spawn_tansu(&dir);
            (Some(broker), kafka_port)
        } else {
            (None, 0)
        };
        let s3_port = free_port();
        let s3 = spawn_s3s(&s3s, s3_port, &secret, &dir);
        if with_broker {
            wait_port(kafka_port, "tansu");
        }
        wait_port(s3_port, "s3s-fs");
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        Stack {
            broker,
            s3,
            s3s_bin: s3s,
            kafka_port,
            s3_port,
            dir,
            secret,
            sqlite: false,
            authentication: false,
            advertised_port: None,
            runtime,
        }
    }

    /// Like [`Stack::start`], with tansu's sqlite storage (`tansu.db` in the stack's directory):
    /// topics, records and committed offsets survive [`Stack::stop_broker`] and
    /// [`Stack::start_broker`] (a memory broker starts empty again).
    pub fn start_sqlite() -> Stack {
        let mut stack = Stack::start_with(false);
        stack.sqlite = true;
        stack.kafka_port = free_port();
        stack.start_broker();
        stack
    }

    /// Starts the broker again on the same port (after [`Stack::stop_broker`]) and waits until
    /// it listens. It has its data back only with [`Stack::start_sqlite`].
    pub fn start_broker(&mut self) {
        self.stop_broker();
        let storage = if self.sqlite {
            "sqlite://tansu.db"
        } else {
            "memory://tansu/"
        };
        let mut broker = spawn_tansu_on(
            &self.dir,
            self.kafka_port,
            self.advertised_port.unwrap_or(self.kafka_port),
            storage,
            self.authentication,
        );
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", self.kafka_port)).is_err() {
            if let Ok(Some(status)) = broker.try_wait() {
                // E.g. a tansu built without sqlite storage (TANSU_SQLITE_BIN).
                panic!(
                    "tansu ({storage}) exited ({status}):\n{}",
                    std::fs::read_to_string(self.dir.join("broker.log")).unwrap_or_default()
                );
            }
            assert!(
                Instant::now() < deadline,
                "tansu did not listen on port {}",
                self.kafka_port
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        self.broker = Some(broker);
    }
    /// Raises the topic's partition count to `total` while the broker runs, and waits until its
    /// metadata shows them. tansu 0.6.0 has no CreatePartitions (API key 37 is not in its
    /// ApiVersions; librdkafka's admin client answers "Required feature not supported by
    /// broker"), so this does in tansu's database what CreatePartitions would: the topic's
    /// partition count, and each new partition's row with an empty watermark, as `topic create`
    /// writes them. tansu reads both on every request. Needs [`Stack::start_sqlite`].
    pub fn add_partitions(&self, topic: &str, total: usize) {
        assert!(
            self.sqlite,
            "add_partitions needs a Stack::start_sqlite stack"
        );
        let script = r#"
import sqlite3, sys
db, topic, total = sys.argv[1], sys.argv[2], int(sys.argv[3])
c = sqlite3.connect(db, timeout=30)
(topic_id, count) = c.execute("select id, partitions from topic where name = ?", (topic,)).fetchone()
assert count <= total, (count, total)
c.execute("update topic set partitions = ? where id = ?", (total, topic_id))
for partition in range(count, total):
    c.execute("insert into topition (topic, partition) values (?, ?)", (topic_id, partition))
    row = c.execute("select id from topition where topic = ? and partition = ?", (topic_id, partition)).fetchone()
    c.execute("insert into watermark (topition, low, high) values (?, null, null)", row)
c.commit()
"#;
        let output = Command::new("python3")
            .arg("-c")
            .arg(script)
            .arg(self.dir.join("tansu.db"))
            .arg(topic)
            .arg(total.to_string())
            .output()
            .expect("python3 (adds partitions in tansu's database)");
        assert!(
            output.status.success(),
            "adding partitions: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.topic_partitions(topic) != Some(total) {
            assert!(
                Instant::now() < deadline,
                "topic {topic} has {:?} partitions 30 s after raising it to {total}",
                self.topic_partitions(topic)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Restarts the S3 server on the same port and directory with another secret: from then on
    /// the connector's uploads fail authentication (`SignatureDoesNotMatch`).
    pub fn restart_s3_with_secret(&mut self, secret: &str) {
        let _ = self.s3.kill();
        let _ = self.s3.wait();
        self.s3 = spawn_s3s(&self.s3s_bin, self.s3_port, secret, &self.dir);
        wait_port(self.s3_port, "s3s-fs");
    }

    /// Creates a SASL user (tansu stores SCRAM credentials for it, for `mechanism`: `"scram512"`
    /// or `"scram256"`). On a broker without `--authentication`: the admin commands cannot
    /// authenticate.
    pub fn create_user(&self, name: &str, password: &str, mechanism: &str) {
        let status = Command::new(tansu_bin("memory://"))
            .args(["user", "create", name, password, "--mechanism", mechanism])
            .args(["--broker", &format!("tcp://127.0.0.1:{}", self.kafka_port)])
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "creating user {name}");
    }

    /// Kills the broker (the connector sees it as unreachable).
    pub fn stop_broker(&mut self) {
        if let Some(broker) = &mut self.broker.take() {
            let _ = broker.kill();
            let _ = broker.wait();
        }
    }

    /// A librdkafka client config for this stack's broker.
    pub(super) fn client_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", self.bootstrap());
        config
    }

    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.kafka_port)
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.s3_port)
    }

    /// s3s-fs's root directory: a bucket is a directory in it, an object a file below that
    /// (at its key's path), and its metadata hidden files in the root.
    pub fn s3_root(&self) -> PathBuf {
        self.dir.join("s3")
    }

    /// Runs a future (e.g. an S3 call) on the stack's runtime.
    pub fn block_on<F: std::future::Future>(&self, future: F) -> F::Output {
        self.runtime.block_on(future)
    }

    pub fn create_topic(&self, topic: &str, partitions: u32) {
        let status = Command::new(tansu_bin("memory://"))
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
}

fn spawn_tansu(dir: &Path) -> (Child, u16) {
    let tansu = tansu_bin("memory://");
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
    (broker, kafka_port)
}

/// tansu on `port`, advertising `advertised`, with `storage` (a relative `sqlite://` path is
/// taken from `dir`), appending to `broker.log`.
fn spawn_tansu_on(
    dir: &Path,
    port: u16,
    advertised: u16,
    storage: &str,
    authentication: bool,
) -> Child {
    let listener = format!("tcp://127.0.0.1:{port}");
    let advertised = format!("tcp://127.0.0.1:{advertised}");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("broker.log"))
        .unwrap();
    Command::new(tansu_bin(storage))
        .args(["broker", "--listener-url", &listener])
        .args(["--advertised-listener-url", &advertised])
        .args(["--storage-engine", storage])
        .args(authentication.then_some("--authentication"))
        .current_dir(dir)
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("starting tansu")
}

fn spawn_s3s(binary: &Path, port: u16, secret: &str, dir: &Path) -> Child {
    Command::new(binary)
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .args(["--access-key", ACCESS_KEY_ID, "--secret-key", secret])
        .arg(dir.join("s3"))
        .stdout(Stdio::null())
        .stderr(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(dir.join("s3.log"))
                .unwrap(),
        )
        .spawn()
        .expect("starting s3s-fs")
}

impl Drop for Stack {
    fn drop(&mut self) {
        self.stop_broker();
        let _ = self.s3.kill();
        let _ = self.s3.wait();
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        } else {
            eprintln!("test stack kept for inspection in {}", self.dir.display());
        }
    }
}
