//! Monitoring end-to-end tests: the admin server (`/metrics`, `/healthz`, `/readyz`, `/status`)
//! of a connector running against a real broker (tansu) and a real S3 server (s3s-fs), the
//! shipped Grafana dashboard against a live scrape, and a real Prometheus scraping the connector
//! with the shipped `grafana/prometheus.yml` and its alerting rules. The dashboard checks that
//! need no connector are in `tests/dashboard.rs`, the alerting rules' unit tests in
//! `tests/alerts.rs`.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::grafana::{dashboard, used_metric_names};
use support::{http_get, sum_of as sum, unique, Connector, Samples, Stack, TestRecord};

/// The value of the one sample with `name` whose labels include `labels`; 0 when absent.
fn value(samples: &Samples, name: &str, labels: &[(&str, &str)]) -> f64 {
    let matching: Vec<f64> = samples
        .iter()
        .filter(|(n, l, _)| {
            n == name
                && labels
                    .iter()
                    .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|(_, _, v)| *v)
        .collect();
    assert!(
        matching.len() <= 1,
        "{name} {labels:?} matches {} series",
        matching.len()
    );
    matching.first().copied().unwrap_or(0.0)
}

/// Scrapes until `check` holds (or panics with the last scrape after `timeout`).
fn scrape_until(
    connector: &Connector,
    timeout: Duration,
    what: &str,
    check: impl Fn(&Samples) -> bool,
) -> Samples {
    let deadline = Instant::now() + timeout;
    loop {
        let samples = connector.scrape();
        if check(&samples) {
            return samples;
        }
        if Instant::now() > deadline {
            let names: Vec<String> = samples
                .iter()
                .map(|(n, l, v)| format!("{n}{l:?} {v}"))
                .collect();
            panic!(
                "{what}: not reached after {timeout:?}; last scrape:\n{}\nlog:\n{}",
                names.join("\n"),
                connector.logs()
            );
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// During a run: the scraped counters equal what was produced and uploaded; lag, committed
/// offsets, partition states and /status match the broker and the bucket; every metric the
/// dashboard queries is exported.
#[test]
fn scraped_metrics_match_what_was_produced_and_uploaded() {
    let stack = Stack::start();
    let (topic, bucket, name) = (unique("metrics"), "metrics-bucket", unique("metrics"));
    stack.create_topic(&topic, 3);
    stack.create_bucket(bucket);
    // Partitions 0 and 1 carry good records; partition 2 carries 30 good records, then one that
    // is not UTF-8 (the partition stops there), then 5 more.
    let mut records: Vec<TestRecord> = Vec::new();
    for index in 0..300 {
        records.push((
            index % 2,
            Some(format!("k{index}").into_bytes()),
            Some(format!("value-{index}-{}", "x".repeat(index as usize % 50)).into_bytes()),
        ));
    }
    for index in 0..36 {
        let value = if index == 30 {
            b"\xff\xfe not utf-8".to_vec()
        } else {
            format!("p2-{index}").into_bytes()
        };
        records.push((2, None, Some(value)));
    }
    let produced = stack.produce(&topic, &records);

    let config = stack.config(
        &name,
        &topic,
        bucket,
        "max_records = 40\nmax_interval_ms = 300",
        // Partition 2 stops at its invalid record, so its lag and FAILED state are visible.
        "[failure]\npolicy = \"fail\"",
    );
    let mut connector = stack.connector(&config, None);
    connector.wait_admin(Duration::from_secs(30));
    let (status, body) = connector.admin_get("/healthz");
    assert_eq!((status, body.as_str()), (200, "ok\n"));

    let good: BTreeMap<i32, u64> = (0..3)
        .map(|partition| {
            let count = if partition == 2 { 30 } else { 150 };
            (partition, count)
        })
        .collect();
    let total_good: u64 = good.values().sum();
    let objects = stack.wait_for_records(
        bucket,
        &format!("e2e/{topic}/"),
        total_good as usize,
        Duration::from_secs(60),
    );
    let stored: usize = objects.iter().map(|(_, records)| records.len()).sum();
    assert_eq!(stored as u64, total_good, "{}", connector.logs());

    // Counters and gauges once the commits and the statistics have caught up.
    let samples = scrape_until(
        &connector,
        Duration::from_secs(30),
        "committed offsets and lag",
        |samples| {
            (0..3).all(|p| {
                let p_label = p.to_string();
                let labels = [("topic", topic.as_str()), ("partition", p_label.as_str())];
                let committed = value(samples, "kafka_oss_sink_committed_offset", &labels);
                let lag = value(samples, "kafka_oss_sink_consumer_lag_records", &labels);
                let end = if p == 2 { 36.0 } else { 150.0 };
                committed == good[&p] as f64 && lag == end - good[&p] as f64
            })
        },
    );
    let sizes = stack.object_sizes(bucket, &format!("e2e/{topic}/"));
    for partition in 0..3 {
        let p_label = partition.to_string();
        let labels = [("topic", topic.as_str()), ("partition", p_label.as_str())];
        let prefix = format!("e2e/{topic}/{partition}/");
        let objects_here: Vec<&(String, i64, String)> = sizes
            .iter()
            .filter(|(key, _, _)| key.starts_with(&prefix))
            .collect();
        let bytes_here: i64 = objects_here.iter().map(|(_, size, _)| size).sum();
        assert_eq!(
            value(&samples, "kafka_oss_sink_written_records_total", &labels),
            good[&partition] as f64,
            "records written, partition {partition}"
        );
        assert_eq!(
            value(&samples, "kafka_oss_sink_written_objects_total", &labels),
            objects_here.len() as f64,
            "objects written, partition {partition}"
        );
        assert_eq!(
            value(&samples, "kafka_oss_sink_written_bytes_total", &labels),
            bytes_here as f64,
            "bytes written = object sizes in the bucket, partition {partition}"
        );
        assert_eq!(
            sum(&samples, "kafka_oss_sink_rotations_total", &labels),
            objects_here.len() as f64,
            "one rotation per object, partition {partition}"
        );
        assert_eq!(
            value(&samples, "kafka_oss_sink_buffered_bytes", &labels),
            0.0,
            "nothing buffered once everything is stored, partition {partition}"
        );
        let produced_bytes: usize = produced
            .iter()
            .filter(|((p, _), _)| *p == partition)
            .map(|(_, record)| {
                record.key.as_ref().map_or(0, Vec::len) + record.value.as_ref().map_or(0, Vec::len)
            })
            .sum();
        if partition != 2 {
            // Partition 2 may stop reading at the bad record's chunk; 0 and 1 read everything.
            assert_eq!(
                value(&samples, "kafka_oss_sink_consumed_records_total", &labels),
                good[&partition] as f64
            );
            assert_eq!(
                value(&samples, "kafka_oss_sink_consumed_bytes_total", &labels),
                produced_bytes as f64,
                "key + value bytes consumed, partition {partition}"
            );
        } else {
            assert!(value(&samples, "kafka_oss_sink_consumed_records_total", &labels) >= 31.0);
        }
    }
    // max_records = 40: partitions 0 and 1 rotate by count (150 = 3 × 40 + 30).
    assert_eq!(
        value(
            &samples,
            "kafka_oss_sink_rotations_total",
            &[("topic", &topic), ("partition", "0"), ("reason", "count")]
        ),
        3.0
    );
    assert_eq!(
        value(
            &samples,
            "kafka_oss_sink_rotations_total",
            &[("partition", "2"), ("reason", "record_error")]
        ),
        1.0
    );
    // Histograms: one observation per object, sums match the counters.
    let all_objects = sizes.len() as f64;
    let topic_label = [("topic", topic.as_str())];
    assert_eq!(
        value(
            &samples,
            "kafka_oss_sink_object_size_bytes_count",
            &topic_label
        ),
        all_objects
    );
    assert_eq!(
        value(
            &samples,
            "kafka_oss_sink_object_size_bytes_sum",
            &topic_label
        ),
        sizes.iter().map(|(_, size, _)| *size).sum::<i64>() as f64
    );
    assert_eq!(
        value(&samples, "kafka_oss_sink_object_records_sum", &topic_label),
        total_good as f64
    );
    assert_eq!(
        value(
            &samples,
            "kafka_oss_sink_upload_duration_seconds_count",
            &topic_label
        ),
        all_objects
    );
    assert_eq!(
        value(
            &samples,
            "kafka_oss_sink_freshness_seconds_count",
            &topic_label
        ),
        all_objects
    );
    let freshness = value(
        &samples,
        "kafka_oss_sink_freshness_seconds_sum",
        &topic_label,
    );
    assert!(
        freshness > 0.0 && freshness < all_objects * 120.0,
        "freshness sum {freshness} for {all_objects} objects"
    );
    // The failure: counted by code and destination, state FAILED, shown in /status.
    let p2 = [("topic", topic.as_str()), ("partition", "2")];
    assert_eq!(
        value(
            &samples,
            "kafka_oss_sink_failed_records_total",
            &[
                ("partition", "2"),
                ("code", "RECORD_INVALID_UTF8"),
                ("destination", "none")
            ]
        ),
        1.0
    );
    assert_eq!(
        value(
            &samples,
            "kafka_oss_sink_partition_state",
            &[p2[0], p2[1], ("state", "FAILED")]
        ),
        1.0
    );
    assert_eq!(
        value(
            &samples,
            "kafka_oss_sink_partition_state",
            &[p2[0], p2[1], ("state", "RUNNING")]
        ),
        0.0
    );
    assert_eq!(
        value(
            &samples,
            "kafka_oss_sink_partition_state",
            &[("topic", &topic), ("partition", "0"), ("state", "RUNNING")]
        ),
        1.0
    );
    assert_eq!(
        value(
            &samples,
            "kafka_oss_sink_errors_total",
            &[("code", "RECORD_INVALID_UTF8"), ("level", "error")]
        ),
        1.0
    );
    assert!(value(&samples, "kafka_oss_sink_resident_memory_bytes", &[]) > 1e6);

    let (status, body) = connector.admin_get("/readyz");
    assert_eq!(status, 200, "{body}");
    assert_eq!(value(&connector.scrape(), "kafka_oss_sink_ready", &[]), 1.0);
    let (status, body) = connector.admin_get("/status");
    assert_eq!(status, 200);
    let document: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(document["connector"], name.as_str());
    assert_eq!(document["ready"], true);
    let partitions = document["partitions"].as_array().unwrap();
    assert_eq!(partitions.len(), 3, "{body}");
    for entry in partitions {
        let partition = entry["partition"].as_i64().unwrap() as i32;
        assert_eq!(entry["committed_offset"], good[&partition], "{body}");
        let last_key = entry["last_object_key"].as_str().unwrap();
        let last_in_bucket = sizes
            .iter()
            .map(|(key, _, _)| key)
            .filter(|key| key.starts_with(&format!("e2e/{topic}/{partition}/")))
            .max()
            .unwrap();
        assert_eq!(last_key, last_in_bucket, "{body}");
        if partition == 2 {
            assert_eq!(entry["state"], "FAILED", "{body}");
            assert_eq!(entry["lag"], 6, "{body}");
            assert_eq!(entry["last_error"]["code"], "RECORD_INVALID_UTF8", "{body}");
            assert_eq!(entry["last_error"]["offset"], 30, "{body}");
        } else {
            assert_eq!(entry["state"], "RUNNING", "{body}");
            assert_eq!(entry["lag"], 0, "{body}");
            assert!(entry["last_error"].is_null(), "{body}");
        }
    }

    // Every metric name in the dashboard's queries is exported by this live connector.
    let exported: BTreeSet<&str> = samples.iter().map(|(n, _, _)| n.as_str()).collect();
    let used = used_metric_names(&dashboard());
    let missing: Vec<&String> = used
        .iter()
        .filter(|n| !exported.contains(n.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "dashboard metrics not exported: {missing:?}"
    );

    connector.stop();
    let logs = connector.logs();
    assert!(!logs.contains(&stack.secret), "secret in the log");
}

/// The AccessKey secret appears in no log line, metric or status output, even while the bucket
/// refuses the credentials; JSON log lines about a partition carry topic and partition, and
/// every error line carries its code.
#[test]
fn secret_never_appears_in_logs_metrics_or_status_even_on_auth_failures() {
    let mut stack = Stack::start();
    let (topic, bucket, name) = (unique("secret"), "secret-bucket", unique("secret"));
    stack.create_topic(&topic, 2);
    stack.create_bucket(bucket);
    let config = stack.config(&name, &topic, bucket, "max_interval_ms = 200", "");
    let mut connector = stack.connector_with_args(&config, None, &["--log-format", "json"]);
    connector.wait_admin(Duration::from_secs(30));
    let records: Vec<TestRecord> = (0..20)
        .map(|i| (i % 2, None, Some(format!("before-{i}").into_bytes())))
        .collect();
    stack.produce(&topic, &records);
    stack.wait_for_records(
        bucket,
        &format!("e2e/{topic}/"),
        20,
        Duration::from_secs(60),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while connector.admin_get("/readyz").0 != 200 {
        assert!(
            Instant::now() < deadline,
            "never ready:\n{}",
            connector.logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // The bucket now refuses the connector's AccessKey pair.
    let other = format!("rotated-{}", unique("secret"));
    stack.restart_s3_with_secret(&other);
    let records: Vec<TestRecord> = (0..10)
        .map(|i| (i % 2, None, Some(format!("after-{i}").into_bytes())))
        .collect();
    stack.produce(&topic, &records);
    connector.wait_for_log("UPLOAD_ACCESS_DENIED", Duration::from_secs(60));
    let samples = scrape_until(
        &connector,
        Duration::from_secs(30),
        "access-denied retries",
        |s| {
            value(
                s,
                "kafka_oss_sink_retries_total",
                &[("reason", "UPLOAD_ACCESS_DENIED")],
            ) >= 1.0
        },
    );
    assert!(
        value(
            &samples,
            "kafka_oss_sink_errors_total",
            &[("code", "UPLOAD_ACCESS_DENIED"), ("level", "error")]
        ) >= 1.0
    );
    let (ready_status, ready_body) = connector.admin_get("/readyz");
    assert_eq!(
        ready_status, 503,
        "not ready while the bucket refuses: {ready_body}"
    );
    assert!(ready_body.contains("bucket"), "{ready_body}");
    let (_, status_body) = connector.admin_get("/status");
    let document: Value = serde_json::from_str(&status_body).unwrap();
    assert_eq!(document["bucket"]["reachable"], false, "{status_body}");
    assert_eq!(
        document["bucket"]["last_error"]["code"], "UPLOAD_ACCESS_DENIED",
        "{status_body}"
    );
    let (_, metrics_body) = connector.admin_get("/metrics");
    let (_, health_body) = connector.admin_get("/healthz");
    // `check` prints the effective config; it must not show the secret either.
    let check = Command::new(env!("CARGO_BIN_EXE_kafka-oss-sink"))
        .args(["check", "--config"])
        .arg(&config)
        .env("OSS_ACCESS_KEY_ID", support::ACCESS_KEY_ID)
        .env("OSS_ACCESS_KEY_SECRET", &stack.secret)
        .output()
        .unwrap();

    connector.terminate();
    let _ = connector.wait_exit(Duration::from_secs(60));
    let logs = connector.logs();
    let outputs = [
        ("log", logs.clone()),
        ("/metrics", metrics_body),
        ("/status", status_body),
        ("/readyz", ready_body),
        ("/healthz", health_body),
        (
            "check stdout",
            String::from_utf8_lossy(&check.stdout).into_owned(),
        ),
        (
            "check stderr",
            String::from_utf8_lossy(&check.stderr).into_owned(),
        ),
    ];
    for (what, text) in &outputs {
        assert!(
            !text.is_empty() || *what == "check stderr",
            "{what} is empty"
        );
        assert!(
            !text.contains(&stack.secret),
            "the AccessKey secret appears in {what}"
        );
        assert!(
            !text.contains(&other),
            "the server's secret appears in {what}"
        );
    }

    // Log structure (JSON): partition lines carry the topic, error lines carry their code.
    let mut partition_lines = 0;
    let mut error_lines = 0;
    for line in logs.lines() {
        let entry: Value = serde_json::from_str(line)
            .unwrap_or_else(|error| panic!("not a JSON log line ({error}): {line}"));
        let fields = &entry["fields"];
        if !fields["partition"].is_null() {
            partition_lines += 1;
            assert!(
                fields["topic"].is_string(),
                "partition line without topic: {line}"
            );
        }
        if entry["level"] == "ERROR" {
            error_lines += 1;
            assert!(
                fields["code"].is_string(),
                "error line without code: {line}"
            );
        }
    }
    assert!(partition_lines > 0 && error_lines > 0, "{logs}");
}

/// `/readyz` follows the broker: ready while it is up, 503 naming the broker once it is gone,
/// while `/healthz` still answers.
#[test]
fn readyz_reports_an_unreachable_broker() {
    let mut stack = Stack::start();
    let (topic, bucket, name) = (unique("ready"), "ready-bucket", unique("ready"));
    stack.create_topic(&topic, 1);
    stack.create_bucket(bucket);
    let config = stack.config(&name, &topic, bucket, "max_interval_ms = 200", "");
    let mut connector = stack.connector(&config, None);
    connector.wait_admin(Duration::from_secs(30));
    let wait_for = |connector: &Connector, wanted: u16| {
        let deadline = Instant::now() + Duration::from_secs(60);
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
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    wait_for(&connector, 200);
    stack.stop_broker();
    let body = wait_for(&connector, 503);
    let reasons: Value = serde_json::from_str(&body).unwrap();
    assert!(
        reasons["reasons"]
            .as_array()
            .unwrap()
            .iter()
            .any(|reason| reason.as_str().unwrap().contains("broker")),
        "{body}"
    );
    assert_eq!(connector.admin_get("/healthz").0, 200);
    let (_, status) = connector.admin_get("/status");
    let document: Value = serde_json::from_str(&status).unwrap();
    assert_eq!(document["broker"]["reachable"], false, "{status}");
    assert_eq!(
        document["broker"]["last_error"]["code"], "KAFKA_UNAVAILABLE",
        "{status}"
    );
}

/// An admin address that is taken is a clear startup error (exit 3, code ADMIN_BIND).
#[test]
fn admin_address_in_use_is_a_clear_startup_error() {
    let stack = Stack::start();
    let topic = unique("bind");
    stack.create_topic(&topic, 1);
    stack.create_bucket("bind-bucket");
    let config = stack.config(&unique("bind"), &topic, "bind-bucket", "", "");
    let text = std::fs::read_to_string(&config).unwrap();
    let address = text
        .lines()
        .find_map(|line| line.strip_prefix("address = \""))
        .unwrap()
        .trim_end_matches('"')
        .to_owned();
    let _taken = std::net::TcpListener::bind(&address).expect("the admin port is free");
    let mut connector = stack.connector(&config, None);
    let status = connector.wait_exit(Duration::from_secs(60));
    let logs = connector.logs();
    assert_eq!(status.code(), Some(3), "{logs}");
    assert!(
        logs.contains("ADMIN_BIND") && logs.contains(&address),
        "{logs}"
    );
}

fn prometheus_binary() -> PathBuf {
    if let Ok(path) = std::env::var("PROMETHEUS_BIN") {
        return PathBuf::from(path);
    }
    for dir in std::env::var("PATH").unwrap_or_default().split(':') {
        let candidate = Path::new(dir).join("prometheus");
        if candidate.is_file() {
            return candidate;
        }
    }
    panic!(
        "prometheus not found: run the tests with scripts/test, which installs Debian's \
         `prometheus` package (apt-get install prometheus), or set PROMETHEUS_BIN"
    );
}

struct Prometheus(Child);

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A real Prometheus scrapes a running connector with the shipped grafana/prometheus.yml (only
/// the target address is changed), and a query through its HTTP API returns the expected series.
#[test]
fn prometheus_scrapes_the_connector_with_the_shipped_config() {
    let binary = prometheus_binary();
    let stack = Stack::start();
    let (topic, bucket, name) = (unique("prom"), "prom-bucket", unique("prom"));
    stack.create_topic(&topic, 2);
    stack.create_bucket(bucket);
    let config = stack.config(&name, &topic, bucket, "max_interval_ms = 200", "");
    let mut connector = stack.connector(&config, None);
    connector.wait_admin(Duration::from_secs(30));
    let records: Vec<TestRecord> = (0..50)
        .map(|i| (i % 2, None, Some(format!("v{i}").into_bytes())))
        .collect();
    stack.produce(&topic, &records);
    stack.wait_for_records(
        bucket,
        &format!("e2e/{topic}/"),
        50,
        Duration::from_secs(60),
    );

    let shipped = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("grafana/prometheus.yml"),
    )
    .unwrap();
    assert!(shipped.contains("127.0.0.1:9464"), "{shipped}");
    let admin = connector.admin.clone().unwrap();
    let dir = stack.dir.join("prometheus");
    std::fs::create_dir_all(&dir).unwrap();
    let config_file = dir.join("prometheus.yml");
    std::fs::write(&config_file, shipped.replace("127.0.0.1:9464", &admin)).unwrap();
    // The config loads the alerting rules from beside it.
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("grafana/alerts.yml"),
        dir.join("alerts.yml"),
    )
    .unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let _prometheus = Prometheus(
        Command::new(&binary)
            .arg(format!("--config.file={}", config_file.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address={listen}"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("prometheus.log")).unwrap())
            .spawn()
            .expect("starting prometheus"),
    );

    let query = format!(
        "sum(kafka_oss_sink_written_records_total{{job=\"kafka-oss-sink\",topic=\"{topic}\"}})"
    );
    let path = format!("/api/v1/query?query={}", encode(&query));
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        if let Ok((200, body)) = http_get(&listen, &path) {
            let answer: Value = serde_json::from_str(&body).unwrap();
            assert_eq!(answer["status"], "success", "{body}");
            if let Some(result) = answer["data"]["result"].as_array().and_then(|r| r.first()) {
                assert_eq!(result["value"][1], "50", "{body}");
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "prometheus returned no series for {query}; its log:\n{}",
            std::fs::read_to_string(dir.join("prometheus.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    // The target is healthy and labelled as the shipped config says.
    let (_, body) = http_get(&listen, "/api/v1/targets").unwrap();
    let targets: Value = serde_json::from_str(&body).unwrap();
    let active = &targets["data"]["activeTargets"][0];
    assert_eq!(active["health"], "up", "{body}");
    assert_eq!(active["labels"]["job"], "kafka-oss-sink", "{body}");
    // The shipped alerting rules are loaded and evaluated without errors.
    let (_, body) = http_get(&listen, "/api/v1/rules").unwrap();
    let answer: Value = serde_json::from_str(&body).unwrap();
    let rules = answer["data"]["groups"][0]["rules"].as_array().unwrap();
    assert!(rules.len() >= 7, "{body}");
    assert!(rules.iter().all(|rule| rule["health"] != "err"), "{body}");
    // Per-partition series are there too.
    let query = format!("kafka_oss_sink_written_records_total{{topic=\"{topic}\"}}");
    let (_, body) = http_get(&listen, &format!("/api/v1/query?query={}", encode(&query))).unwrap();
    let answer: Value = serde_json::from_str(&body).unwrap();
    let partitions: BTreeSet<String> = answer["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|series| series["metric"]["partition"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        partitions,
        BTreeSet::from(["0".to_owned(), "1".to_owned()]),
        "{body}"
    );
}

/// Percent-encodes a query parameter.
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}
