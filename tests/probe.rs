//! End-to-end tests of the bucket capability probe (`kafka-oss-sink check --probe`, and the
//! same probe at `run`'s start-up) against a real s3s-fs server, with the fault-injecting S3
//! proxy playing the stores that behave differently (OSS's conditional header, a store that
//! ignores conditional writes, a key pair without list permission).

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use support::s3_proxy::{Conditional, Fault, Operation, When};
use support::{set_sink_endpoint, set_sink_keys, unique, Stack, ACCESS_KEY_ID};

struct Probed {
    code: i32,
    stdout: String,
    stderr: String,
}

fn probe(stack: &Stack, config: &Path) -> Probed {
    let output = Command::new(env!("CARGO_BIN_EXE_kafka-oss-sink"))
        .args(["check", "--probe", "--config"])
        .arg(config)
        .env("OSS_ACCESS_KEY_ID", ACCESS_KEY_ID)
        .env("OSS_ACCESS_KEY_SECRET", &stack.secret)
        .output()
        .expect("running check --probe");
    let probed = Probed {
        code: output.status.code().expect("an exit code"),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    };
    assert!(
        !probed.stdout.contains(&stack.secret) && !probed.stderr.contains(&stack.secret),
        "the secret was printed"
    );
    probed
}

/// The probe's line for `action`.
fn line<'a>(probed: &'a Probed, action: &str) -> &'a str {
    probed
        .stdout
        .lines()
        .skip_while(|line| !line.starts_with("# bucket `"))
        .find(|line| line.starts_with(action))
        .unwrap_or_else(|| panic!("no `{action}` line in:\n{}", probed.stdout))
}

fn config(stack: &Stack, bucket: &str) -> std::path::PathBuf {
    stack.create_bucket(bucket);
    stack.config(&unique("probe"), "unused-topic", bucket, "", "")
}

#[test]
fn every_capability_of_a_standard_store_is_reported_ok() {
    let stack = Stack::start_s3_only();
    let config = config(&stack, "probe-bucket");
    let probed = probe(&stack, &config);
    assert_eq!(probed.code, 0, "{}\n{}", probed.stdout, probed.stderr);
    for action in [
        "bucket",
        "write",
        "read",
        "list",
        "conditional create",
        "delete",
    ] {
        assert!(
            line(&probed, action).contains(" ok "),
            "{action}: {}",
            probed.stdout
        );
    }
    assert!(line(&probed, "conditional create").contains("If-None-Match"));
    // The probe cleans up after itself: nothing is left under the prefix.
    let keys = stack.object_sizes("probe-bucket", "e2e/");
    assert!(keys.is_empty(), "{keys:?}");
}

/// Instances of one connector started together (a deployment scaled to three) probe the same
/// bucket and prefix at once: each probes an object of its own, so none sees another's write,
/// overwrite or delete and fails to start (seen: B6's instances B and C, one exited with "the
/// object just written is not listed" when the probe key was shared).
#[test]
fn probes_running_at_once_do_not_disturb_each_other() {
    let stack = Stack::start_s3_only();
    let config = config(&stack, "probe-bucket");
    let runs: Vec<Probed> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..4)
            .map(|_| scope.spawn(|| probe(&stack, &config)))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for probed in &runs {
        assert_eq!(probed.code, 0, "{}\n{}", probed.stdout, probed.stderr);
        assert!(line(probed, "conditional create").contains("If-None-Match"));
    }
    let keys = stack.object_sizes("probe-bucket", "e2e/");
    assert!(keys.is_empty(), "{keys:?}");
}

#[test]
fn a_store_that_ignores_conditional_writes_is_reported_and_still_usable() {
    let stack = Stack::start_s3_only();
    let proxy = stack.s3_proxy();
    proxy.set_conditional(Conditional::Ignore);
    let config = config(&stack, "probe-bucket");
    set_sink_endpoint(&config, &proxy.endpoint());
    let probed = probe(&stack, &config);
    assert_eq!(probed.code, 0, "{}\n{}", probed.stdout, probed.stderr);
    let conditional = line(&probed, "conditional create");
    assert!(
        conditional.contains("degraded") && conditional.contains("overwrote"),
        "{conditional}"
    );
    assert!(probed.stdout.contains("still runs"), "{}", probed.stdout);
}

/// OSS's S3 API answers `If-None-Match` with 501 and honours `x-oss-forbid-overwrite`: the probe
/// tells the two settings apart.
#[test]
fn oss_conditional_header_is_told_apart_from_if_none_match() {
    let stack = Stack::start_s3_only();
    let proxy = stack.s3_proxy();
    proxy.set_conditional(Conditional::Oss);
    let config = config(&stack, "probe-bucket");
    set_sink_endpoint(&config, &proxy.endpoint());

    let probed = probe(&stack, &config);
    assert_eq!(probed.code, 0, "{}", probed.stdout);
    let conditional = line(&probed, "conditional create");
    assert!(
        conditional.contains("degraded") && conditional.contains("501"),
        "{conditional}"
    );

    set_sink_keys(&config, "conditional_create = \"oss_forbid_overwrite\"");
    let probed = probe(&stack, &config);
    assert_eq!(probed.code, 0, "{}", probed.stdout);
    let conditional = line(&probed, "conditional create");
    assert!(
        conditional.contains(" ok ") && conditional.contains("x-oss-forbid-overwrite"),
        "{conditional}"
    );
}

/// A key pair without list permission cannot recover by listing: the probe names the
/// permission, `check --probe` exits 3, and so does `run` at start-up.
#[test]
fn a_denied_listing_names_the_permission_and_stops_the_start() {
    let stack = Stack::start_s3_only();
    let proxy = stack.s3_proxy();
    proxy.fault(Operation::ListObjects, Fault::access_denied(), When::Always);
    let config = config(&stack, "probe-bucket");
    set_sink_endpoint(&config, &proxy.endpoint());
    let probed = probe(&stack, &config);
    assert_eq!(probed.code, 3, "{}", probed.stdout);
    let list = line(&probed, "list");
    assert!(
        list.contains("FAILED") && list.contains("oss:ListObjects"),
        "{list}"
    );

    let mut connector = stack.connector(&config, None);
    let status = connector.wait_exit(Duration::from_secs(30));
    assert_eq!(status.code(), Some(3), "{}", connector.logs());
    assert!(
        connector.logs().contains("oss:ListObjects"),
        "{}",
        connector.logs()
    );
}

/// A key pair without `s3:ListBucketMultipartUploads` only degrades the probe: the line names
/// the permission and the lifecycle rule then needed, and `check --probe` exits 0.
#[test]
fn a_denied_upload_listing_names_the_permission_and_the_lifecycle_rule() {
    let stack = Stack::start_s3_only();
    let proxy = stack.s3_proxy();
    proxy.fault(
        Operation::ListMultipartUploads,
        Fault::access_denied(),
        When::Always,
    );
    let config = config(&stack, "probe-bucket");
    set_sink_endpoint(&config, &proxy.endpoint());
    let probed = probe(&stack, &config);
    assert_eq!(probed.code, 0, "{}", probed.stdout);
    let uploads = line(&probed, "list uploads");
    assert!(
        uploads.contains("degraded")
            && uploads.contains("oss:ListMultipartUploads")
            && uploads.contains("s3:ListBucketMultipartUploads")
            && uploads.contains("lifecycle rule"),
        "{uploads}"
    );
}

/// s3s-fs does not implement ListMultipartUploads (501): the connector says so once, at
/// start-up with the lifecycle rule it calls for, not again for each partition's sweep, exports
/// it as `store_capability{check="list uploads"} 0`, and copies the topic as usual.
#[test]
fn a_store_that_cannot_list_uploads_is_said_once_and_the_connector_goes_on() {
    let stack = Stack::start();
    let (topic, name, bucket) = (unique("nolist"), unique("nolist"), "nolist-bucket");
    stack.create_topic(&topic, 2);
    stack.create_bucket(bucket);
    let records: Vec<support::TestRecord> = (0..20)
        .map(|i| (i % 2, None, Some(format!("value {i}").into_bytes())))
        .collect();
    stack.produce(&topic, &records);
    let config = stack.config(&name, &topic, bucket, "max_records = 5", "");
    let mut connector = stack.connector(&config, None);
    connector.wait_admin(Duration::from_secs(30));
    stack.wait_for_records(bucket, "e2e/", records.len(), Duration::from_secs(60));
    // Both partitions' sweeps ran (each registers its counter), refused.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let samples = loop {
        let samples = connector.scrape();
        let swept = samples
            .iter()
            .filter(|(name, labels, _)| {
                name == "kafka_oss_sink_orphaned_uploads_aborted_total"
                    && labels.get("topic") == Some(&topic)
            })
            .count();
        if swept == 2 || std::time::Instant::now() > deadline {
            break samples;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    connector.stop();
    let logs = connector.logs();
    let series = |name: &str, label: (&str, &str)| -> Vec<f64> {
        samples
            .iter()
            .filter(|(n, labels, _)| {
                n == name && labels.get(label.0).map(String::as_str) == Some(label.1)
            })
            .map(|(_, _, value)| *value)
            .collect()
    };
    assert_eq!(
        series(
            "kafka_oss_sink_orphaned_uploads_aborted_total",
            ("topic", &topic)
        ),
        [0.0, 0.0],
        "{logs}"
    );
    assert_eq!(
        series("kafka_oss_sink_store_capability", ("check", "list uploads")),
        [0.0]
    );
    let said: Vec<&str> = logs
        .lines()
        .filter(|line| line.contains("lifecycle rule"))
        .collect();
    assert_eq!(said.len(), 1, "{said:#?}");
    assert!(
        said[0].contains("WARN") && said[0].contains("NotImplemented"),
        "{}",
        said[0]
    );
}
