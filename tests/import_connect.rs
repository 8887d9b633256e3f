//! `kafka-oss-sink import-connect FILE.json` on Kafka Connect S3 sink configs taken from
//! Confluent's documentation (`tests/fixtures/connect/`): the quickstart (Avro, default
//! partitioner), an hourly JSON layout with gzip and a dead-letter queue, a bare config map for
//! OSS with Parquet, consumer overrides and credentials, and a MinIO config. Each run exits 0, its
//! output passes `kafka-oss-sink check`, the keys land where they should, every key it cannot
//! map is listed with a reason, and no secret of the JSON appears anywhere.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

struct Run {
    stdout: String,
    stderr: String,
    config: toml::Table,
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/connect")
        .join(name)
}

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_kafka-oss-sink"))
}

fn text(output: &[u8]) -> String {
    String::from_utf8(output.to_vec()).unwrap()
}

/// Imports the fixture, then checks the output with `check` (credentials in the environment).
fn import(name: &str) -> Run {
    let output: Output = bin()
        .arg("import-connect")
        .arg(fixture(name))
        .output()
        .expect("run import-connect");
    let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
    assert!(output.status.success(), "{name}: {stderr}");
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("import-{name}.toml"));
    std::fs::write(&path, &stdout).unwrap();
    let check = bin()
        .args(["check", "--config"])
        .arg(&path)
        .env("OSS_ACCESS_KEY_ID", "import-test-id")
        .env("OSS_ACCESS_KEY_SECRET", "import-test-secret")
        .env("KAFKA_SASL_PASSWORD", "import-test-kafka-password")
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{name}: the imported config fails check:\n{}\n{stdout}",
        text(&check.stderr)
    );
    let config = stdout.parse().expect("TOML");
    Run {
        stdout,
        stderr,
        config,
    }
}

fn get<'a>(config: &'a toml::Table, path: &str) -> &'a toml::Value {
    if let Some(property) = path.strip_prefix("source.properties.") {
        return &config["source"]["properties"][property];
    }
    let mut parts = path.split('.');
    let mut value = &config[parts.next().unwrap()];
    for part in parts {
        value = &value[part];
    }
    value
}

fn assert_keys(run: &Run, expected: &[(&str, toml::Value)]) {
    for (path, value) in expected {
        assert_eq!(get(&run.config, path), value, "{path}\n{}", run.stdout);
    }
}

/// The "Not mapped" list at the end of the output, as (key, reason).
fn not_mapped(run: &Run) -> Vec<(String, String)> {
    let Some((_, list)) = run.stdout.split_once("# Not mapped (") else {
        return Vec::new();
    };
    let mut entries: Vec<(String, String)> = Vec::new();
    for line in list.lines().skip(1) {
        if let Some(rest) = line.strip_prefix("#     ") {
            entries.last_mut().unwrap().1.push_str(&format!(" {rest}"));
        } else if let Some(rest) = line.strip_prefix("#   ") {
            let (key, reason) = rest.split_once(": ").unwrap();
            entries.push((key.to_owned(), reason.to_owned()));
        }
    }
    entries
}

/// A key of the format support being built: live when `check` accepts it, else a comment.
fn assert_format_key(run: &Run, path: &str, line: &str) {
    let (section, key) = path.split_once('.').unwrap();
    match run.config.get(section).and_then(|s| s.get(key)) {
        Some(value) => assert_eq!(&format!("{key} = {value}"), line),
        None => {
            assert!(
                run.stdout.contains(&format!("# {line}")),
                "{path}: `{line}` neither set nor commented:\n{}",
                run.stdout
            );
            assert!(run.stderr.contains(path), "{}", run.stderr);
            assert!(run.stderr.contains("need format support"), "{}", run.stderr);
        }
    }
}

#[test]
fn confluent_quickstart() {
    let run = import("quickstart-avro.json");
    assert_keys(
        &run,
        &[
            ("name", "s3-sink".into()),
            ("source.topic", "s3_topic".into()),
            ("source.group_id", "connect-s3-sink".into()),
            ("source.start_offset", "earliest".into()),
            ("source.concurrency", 1.into()),
            ("sink.bucket", "confluent-kafka-connect-s3-testing".into()),
            ("sink.region", "us-west-2".into()),
            ("sink.part_size_bytes", 5_242_880.into()),
            ("sink.key_prefix", "topics/".into()),
            ("sink.addressing", "path".into()),
            ("sink.conditional_create", "auto".into()),
            ("batching.max_records", 3.into()),
            ("failure.policy", "fail".into()),
        ],
    );
    let unmapped = not_mapped(&run);
    let keys: Vec<&str> = unmapped.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        keys,
        ["format.class", "schema.compatibility", "storage.class"]
    );
    assert!(unmapped[0].1.contains("Avro"), "{unmapped:?}");
    assert!(
        run.stderr.contains("3 Connect key(s) not mapped"),
        "{}",
        run.stderr
    );
    assert!(run.stdout.contains("Confluent's default is path-style"));
}

#[test]
fn hourly_json_with_gzip_and_a_dead_letter_queue() {
    let run = import("hourly-json-gzip.json");
    assert_keys(
        &run,
        &[
            ("source.topic", "pageviews".into()),
            ("source.concurrency", 4.into()),
            ("sink.region", "us-east-1".into()),
            ("sink.key_prefix", "kafka-data/".into()),
            ("batching.max_records", 1000.into()),
            ("batching.max_interval_ms", 600_000.into()),
            ("failure.policy", "log".into()),
            ("resources.dead_letter_topic", "dlq-s3-sink".into()),
            ("resources.replication_factor", 3.into()),
        ],
    );
    assert_format_key(&run, "format.type", r#"type = "jsonl""#);
    assert_format_key(&run, "format.compression", r#"compression = "gzip""#);
    assert!(run.stdout.contains(
        r#"key_template = "{topic}/year={yyyy}/month={MM}/day={dd}/hour={HH}/{partition}/{first}-{last}{ext}""#
    ));
    for note in [
        "partition.duration.ms = 3600000",
        "timezone = UTC",
        "timestamp.extractor = Record",
    ] {
        assert!(run.stdout.contains(note), "{note}\n{}", run.stdout);
    }
    let keys: Vec<String> = not_mapped(&run).into_iter().map(|(k, _)| k).collect();
    assert_eq!(
        keys,
        [
            "behavior.on.null.values",
            "key.converter",
            "storage.class",
            "value.converter",
            "value.converter.schemas.enable",
        ]
    );
}

#[test]
fn oss_parquet_bare_config_with_overrides_and_secrets() {
    let run = import("oss-parquet-bare.json");
    assert_keys(
        &run,
        &[
            ("name", "orders-archive".into()),
            ("source.topic", "orders".into()),
            ("source.group_id", "connect-Orders_Archive".into()),
            ("source.start_offset", "latest".into()),
            ("source.concurrency", 12.into()),
            ("source.properties.max.poll.interval.ms", "600000".into()),
            ("source.properties.fetch.wait.max.ms", "500".into()),
            ("source.properties.security.protocol", "sasl_ssl".into()),
            ("source.properties.sasl.mechanisms", "PLAIN".into()),
            (
                "sink.endpoint",
                "https://oss-cn-hangzhou.aliyuncs.com".into(),
            ),
            ("sink.region", "oss-cn-hangzhou".into()),
            ("sink.addressing", "virtual_hosted".into()),
            ("batching.max_records", 50_000.into()),
            ("batching.max_interval_ms", 3_600_000.into()),
        ],
    );
    // Confluent's path-style default and conditional writes, said where they differ for OSS.
    assert!(run.stdout.contains("(SecondLevelDomainForbidden)"));
    assert!(run.stdout.contains("x-oss-forbid-overwrite"));
    assert_format_key(&run, "format.type", r#"type = "parquet""#);
    assert_format_key(
        &run,
        "format.parquet_compression",
        r#"parquet_compression = "snappy""#,
    );
    // The real template syntax, uncommented, with Confluent's zone (no daylight saving).
    assert!(
        run.stdout.contains(
            r#"key_template = "{topic}/year={yyyy}/month={MM}/day={dd}/{partition}/{first}-{last}{ext}""#
        ),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains(r#"key_time_zone = "Asia/Shanghai""#),
        "{}",
        run.stdout
    );
    // The JAAS line's user name is copied, its password is not (the environment's).
    assert!(
        run.stdout.contains(r#""sasl.username" = "connector""#),
        "{}",
        run.stdout
    );
    let unmapped = not_mapped(&run);
    for key in [
        "topics",
        "aws.access.key.id",
        "aws.secret.access.key",
        "consumer.override.max.poll.records",
        "consumer.override.sasl.jaas.config",
        "s3.sse.kms.key.id",
        "s3.object.tagging",
        "transforms",
        "transforms.route.type",
        "value.converter",
        "value.converter.schema.registry.url",
    ] {
        let reason = unmapped.iter().find(|(k, _)| k == key).map(|(_, r)| r);
        assert!(
            reason.is_some_and(|r| !r.is_empty()),
            "{key} not listed with a reason: {unmapped:?}"
        );
    }
    assert_eq!(unmapped.len(), 11, "{unmapped:?}");
    // No secret of the JSON in any output.
    for secret in [
        "wJalrXUtnFEMI-EXAMPLE-SECRET-9f3k",
        "jaas-EXAMPLE-password-77",
        "LTAI5tEXAMPLEKEYID",
    ] {
        assert!(!run.stdout.contains(secret), "{secret} in stdout");
        assert!(!run.stderr.contains(secret), "{secret} in stderr");
    }
}

#[test]
fn minio_json_with_scheduled_rotation() {
    let run = import("minio-json.json");
    assert_keys(
        &run,
        &[
            ("sink.endpoint", "http://minio:9000".into()),
            ("sink.addressing", "path".into()),
            ("sink.region", "us-west-2".into()),
            ("batching.max_records", 10_000.into()),
            ("batching.max_interval_ms", 60_000.into()),
            ("failure.policy", "fail".into()),
        ],
    );
    assert_format_key(&run, "format.type", r#"type = "jsonl""#);
    let keys: Vec<String> = not_mapped(&run).into_iter().map(|(k, _)| k).collect();
    assert_eq!(keys, ["keys.format.class"]);
    assert!(run.stdout.contains("behavior.on.null.values = write"));
}

#[test]
fn a_file_that_is_not_a_sink_config_exits_2() {
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join("import-not-a-sink.json");
    std::fs::write(&path, r#"{"name": "x", "config": {"topics": "t"}}"#).unwrap();
    let output = bin().arg("import-connect").arg(&path).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(text(&output.stderr).contains("s3.bucket.name"));
    assert!(output.stdout.is_empty());
}
