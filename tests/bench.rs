//! `bench-consume` and `bench-watch` end to end: the real broker, the real S3 server and the
//! real connector. The watcher's exactly-once check must pass on a clean run and fail when the
//! bucket holds records the load generator did not produce.

mod support;
mod tool_bin;

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use serde_json::Value;
use support::{unique, Stack, ACCESS_KEY_ID};

/// Runs the tools binary `name` (`loadgen`, `bench-consume`, `bench-watch`).
fn bin(stack: &Stack, name: &str, args: &[&str]) -> Output {
    Command::new(tool_bin::tool(name))
        .args(args)
        .env("OSS_ACCESS_KEY_ID", ACCESS_KEY_ID)
        .env("OSS_ACCESS_KEY_SECRET", &stack.secret)
        .output()
        .unwrap()
}

fn json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn text(output: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn baseline_and_watcher_measure_a_real_run_and_check_exactly_once() {
    let stack = Stack::start();
    let topic = unique("bench");
    let bucket = "bench-bucket";
    stack.create_topic(&topic, 3);
    stack.create_bucket(bucket);
    let produced = stack.dir.join("produced.json");
    let output = bin(
        &stack,
        "loadgen",
        &[
            "--bootstrap",
            &stack.bootstrap(),
            "--topic",
            &topic,
            "--records",
            "3000",
            "--value-size",
            "64",
            "--json",
            produced.to_str().unwrap(),
        ],
    );
    assert!(output.status.success(), "{}", text(&output));

    let baseline = stack.dir.join("baseline.json");
    let output = bin(
        &stack,
        "bench-consume",
        &[
            "--bootstrap",
            &stack.bootstrap(),
            "--topic",
            &topic,
            "--expect",
            "3000",
            "--json",
            baseline.to_str().unwrap(),
        ],
    );
    assert!(output.status.success(), "{}", text(&output));
    let baseline = json(&baseline);
    assert_eq!(baseline["total"]["records"], 3000);
    assert_eq!(baseline["complete"], true);
    assert!(baseline["process"]["cpu_seconds"].as_f64().unwrap() >= 0.0);
    // Measured from the assignment, like the connector: the first record comes after it.
    assert_eq!(baseline["since_assignment"]["records"], 3000);
    assert!(
        baseline["since_assignment"]["seconds"].as_f64().unwrap()
            >= baseline["since_first_record"]["seconds"].as_f64().unwrap()
    );

    let config = stack.config(&unique("c"), &topic, bucket, "max_interval_ms = 500", "");
    let mut connector = stack.connector(&config, None);
    let (report, svg) = (stack.dir.join("watch.json"), stack.dir.join("chart.svg"));
    let prefix = format!("e2e/{topic}/");
    let watch = |report: &Path| {
        bin(
            &stack,
            "bench-watch",
            &[
                "--endpoint",
                &stack.endpoint(),
                "--bucket",
                bucket,
                "--prefix",
                &prefix,
                "--produced",
                produced.to_str().unwrap(),
                "--pid",
                &connector.pid().to_string(),
                "--connector-log",
                connector.log.to_str().unwrap(),
                "--timeout-s",
                "60",
                "--json",
                report.to_str().unwrap(),
                "--svg",
                svg.to_str().unwrap(),
            ],
        )
    };
    let output = watch(&report);
    assert!(
        output.status.success(),
        "{}\n{}",
        text(&output),
        connector.logs()
    );
    let summary = json(&report);
    assert_eq!(summary["complete"], true);
    assert_eq!(summary["exactly_once"]["expected"], 3000);
    assert_eq!(summary["exactly_once"]["stored"], 3000);
    assert_eq!(summary["exactly_once"]["ok"], true);
    assert_eq!(summary["drain_total"]["records"], 3000);
    // Timed from the `partitions assigned` line's own timestamp in the real connector log.
    assert_eq!(
        summary["drain_since_assignment"]["records"], 3000,
        "{summary}"
    );
    assert!(summary["assigned_after_s"].as_f64().is_some(), "{summary}");
    assert_eq!(summary["e2e_latency"]["count"], 3000);
    let p99 = summary["e2e_latency"]["p99_ms"].as_f64().unwrap();
    assert!(p99 > 0.0 && p99 < 60_000.0, "p99 {p99}");
    assert!(summary["connector"]["peak_rss_bytes"].as_u64().unwrap() > 1 << 20);
    assert!(summary["connector"]["cpu_seconds"].as_f64().unwrap() > 0.0);
    let chart = std::fs::read_to_string(&svg).unwrap();
    assert!(
        chart.starts_with("<svg") && chart.contains("<polyline"),
        "{chart}"
    );

    // Records the load generator did not report: the exactly-once check must say so.
    stack.produce(&topic, &[(0, None, Some(b"stray".to_vec()))]);
    let found: usize = stack
        .wait_for_records(bucket, &prefix, 3001, Duration::from_secs(30))
        .iter()
        .map(|(_, records)| records.len())
        .sum();
    assert_eq!(found, 3001, "{}", connector.logs());
    let stray_report = stack.dir.join("watch-stray.json");
    let output = watch(&stray_report);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    let summary = json(&stray_report);
    assert_eq!(summary["exactly_once"]["ok"], false);
    assert_eq!(summary["exactly_once"]["unexpected"], 1);
    assert!(text(&output).contains("exactly once"), "{}", text(&output));
    connector.stop();
}
