//! The connector under test: its config file for a stack, and [`Connector`], the running
//! binary (admin server, logs, stop and exit).

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use super::prometheus::{http_get, parse_exposition, Samples};
use super::{free_port, unique, Stack, ACCESS_KEY_ID};

impl Stack {
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

[admin]
address = "127.0.0.1:{admin_port}"

[batching]
{batching}
{extra}
"#,
            bootstrap = self.bootstrap(),
            endpoint = self.endpoint(),
            admin_port = free_port(),
        );
        std::fs::write(&path, text).unwrap();
        path
    }

    /// Starts the connector binary with this stack's credentials (or `secret` instead).
    pub fn connector(&self, config: &Path, secret: Option<&str>) -> Connector {
        self.connector_with_args(config, secret, &[])
    }

    /// Like [`Stack::connector`], with extra command-line arguments (e.g. `--log-format json`).
    pub fn connector_with_args(
        &self,
        config: &Path,
        secret: Option<&str>,
        args: &[&str],
    ) -> Connector {
        self.connector_with_env(config, secret, args, &[])
    }

    /// Like [`Stack::connector_with_args`], with extra environment variables (e.g.
    /// `FAILPOINTS`, honoured by a binary built with the `failpoints` feature).
    pub fn connector_with_env(
        &self,
        config: &Path,
        secret: Option<&str>,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Connector {
        let log = self.dir.join(format!("connector-{}.log", unique("run")));
        let admin = std::fs::read_to_string(config)
            .unwrap()
            .lines()
            .find_map(|line| line.strip_prefix("address = \""))
            .map(|rest| rest.trim_end_matches('"').to_owned());
        let child = Command::new(env!("CARGO_BIN_EXE_kafka-oss-sink"))
            .args(args)
            .args(["run", "--config"])
            .arg(config)
            .env("OSS_ACCESS_KEY_ID", ACCESS_KEY_ID)
            .env("OSS_ACCESS_KEY_SECRET", secret.unwrap_or(&self.secret))
            .env(
                "RUST_LOG",
                std::env::var("KOS_TEST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("starting the connector");
        Connector { child, log, admin }
    }
}

/// Adds librdkafka properties (TOML lines) to the `[source.properties]` table of a config
/// written by [`Stack::config`].
pub fn add_source_properties(config: &Path, lines: &str) {
    let text = std::fs::read_to_string(config).unwrap().replace(
        "[source.properties]\n",
        &format!("[source.properties]\n{lines}\n"),
    );
    std::fs::write(config, text).unwrap();
}

/// Adds `lines` to the `[sink]` table of a config written by [`Stack::config`].
pub fn set_sink_keys(config: &Path, lines: &str) {
    let text = std::fs::read_to_string(config)
        .unwrap()
        .replace("[sink]\n", &format!("[sink]\n{lines}\n"));
    std::fs::write(config, text).unwrap();
}

/// Points a config written by [`Stack::config`] at another S3 endpoint, e.g. an
/// [`S3Proxy`](super::S3Proxy)'s (`set_sink_endpoint(&config, &proxy.endpoint())`).
pub fn set_sink_endpoint(config: &Path, endpoint: &str) {
    let text = std::fs::read_to_string(config).unwrap();
    let mut replaced = false;
    let text: String = text
        .lines()
        .map(|line| {
            if !replaced && line.starts_with("endpoint = ") {
                replaced = true;
                format!("endpoint = \"{endpoint}\"\n")
            } else {
                format!("{line}\n")
            }
        })
        .collect();
    assert!(replaced, "no endpoint line in {}", config.display());
    std::fs::write(config, text).unwrap();
}

/// What a debug build of the connector holds besides the record data `memory.max_bytes` bounds:
/// code and runtimes, librdkafka's per-record bookkeeping, allocator slack (97 MiB seen over a
/// 32 MiB budget on a loaded machine, tests/memory.rs). Peak RSS under a budget is checked
/// against the budget plus this.
pub const DEBUG_PROCESS_ALLOWANCE: u64 = 112 << 20;

/// The connector binary running `run` against a stack; killed on drop.
pub struct Connector {
    child: Child,
    pub log: PathBuf,
    /// `host:port` of the admin server, from the config's `[admin] address`.
    pub admin: Option<String>,
}

impl Connector {
    /// GET on the admin server: `(status, body)`.
    pub fn admin_get(&self, path: &str) -> (u16, String) {
        let address = self
            .admin
            .as_deref()
            .expect("the config has an [admin] address");
        http_get(address, path).unwrap_or_else(|error| panic!("GET {path}: {error}"))
    }

    /// Waits until the admin server answers.
    pub fn wait_admin(&mut self, timeout: Duration) {
        let address = self
            .admin
            .clone()
            .expect("the config has an [admin] address");
        let deadline = Instant::now() + timeout;
        while http_get(&address, "/healthz").map(|(s, _)| s).unwrap_or(0) != 200 {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("connector exited ({status}):\n{}", self.logs());
            }
            assert!(
                Instant::now() < deadline,
                "admin server not up after {timeout:?}:\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Every sample of `/metrics`.
    pub fn scrape(&self) -> Samples {
        let (status, body) = self.admin_get("/metrics");
        assert_eq!(status, 200, "{body}");
        parse_exposition(&body)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A size field of the process's `/proc/<pid>/status`, in bytes (`VmRSS`: resident now;
    /// `VmHWM`: peak resident).
    pub fn status_bytes(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        let line = status
            .lines()
            .find(|line| line.starts_with(&format!("{field}:")))
            .unwrap_or_else(|| panic!("{field} in /proc/{}/status", self.pid()));
        let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
        kib * 1024
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

    /// `kill -9`: no drain, no commit, no leaving the group.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then asserts a clean exit (status 0) within 30 s.
    pub fn stop(&mut self) {
        self.terminate();
        let status = self.wait_exit(Duration::from_secs(30));
        assert!(
            status.success(),
            "graceful stop exits 0, got {status}:\n{}",
            self.logs()
        );
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

impl Connector {
    /// The exit status if the connector has exited (without waiting), `None` while it runs.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().unwrap()
    }
}
