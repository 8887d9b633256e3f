//! The shipped alerting rules (`grafana/alerts.yml`), checked without a broker or a connector:
//! `promtool test rules` runs their unit tests (`grafana/alerts_test.yml`), `promtool check
//! config` validates `grafana/prometheus.yml` with the rules it loads, every rule has a test case
//! and the labels and annotations an Alertmanager route needs, and the rules use only metrics the
//! connector defines. `tests/deploy.rs` checks that the Kubernetes PrometheusRule holds the same
//! rules.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_yaml_ng::Value;

fn grafana_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("grafana")
}

/// `promtool`, from `PROMTOOL_BIN` or the `PATH` (Debian's `prometheus` package ships it; the
/// tests never skip without it).
fn promtool() -> PathBuf {
    if let Ok(path) = std::env::var("PROMTOOL_BIN") {
        return PathBuf::from(path);
    }
    for dir in std::env::var("PATH").unwrap_or_default().split(':') {
        let candidate = Path::new(dir).join("promtool");
        if candidate.is_file() {
            return candidate;
        }
    }
    panic!(
        "promtool not found: run the tests with scripts/test, which installs Debian's \
         `prometheus` package (apt-get install prometheus, it ships promtool), or set PROMTOOL_BIN"
    );
}

/// Runs promtool in `grafana/` and panics with its output unless it succeeds.
fn run_promtool(args: &[&str]) -> String {
    let output = Command::new(promtool())
        .args(args)
        .current_dir(grafana_dir())
        .output()
        .expect("running promtool");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "promtool {args:?} failed:\n{text}");
    text
}

fn yaml(file: &str) -> Value {
    let text = std::fs::read_to_string(grafana_dir().join(file)).unwrap();
    serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("{file}: {e}"))
}

/// The rules of `alerts.yml`, across its groups.
fn rules() -> Vec<Value> {
    yaml("alerts.yml")["groups"]
        .as_sequence()
        .expect("groups")
        .iter()
        .flat_map(|group| group["rules"].as_sequence().expect("rules").clone())
        .collect()
}

#[test]
fn alert_unit_tests_pass() {
    let out = run_promtool(&["test", "rules", "alerts_test.yml"]);
    assert!(out.contains("SUCCESS"), "{out}");
}

#[test]
fn prometheus_config_with_the_rules_is_valid() {
    let out = run_promtool(&["check", "config", "prometheus.yml"]);
    // check config also loads and checks the rule files it names: the alerts must be among them.
    assert!(out.contains("Checking alerts.yml"), "{out}");
    assert!(
        out.contains(&format!("{} rules found", rules().len())),
        "{out}"
    );
}

/// The list of alerts is all there, and each rule fires in a test case of its own.
#[test]
fn every_alert_is_shipped_and_tested() {
    let names: BTreeSet<String> = rules()
        .iter()
        .map(|rule| {
            rule["alert"]
                .as_str()
                .expect("alerting rules only")
                .to_owned()
        })
        .collect();
    for wanted in [
        "KafkaOssSinkLagGrowing",
        "KafkaOssSinkNotReady",
        "KafkaOssSinkPartitionFailed",
        "KafkaOssSinkUploadsFailing",
        "KafkaOssSinkRecordsRoutedToErrorTopic",
        "KafkaOssSinkFreshnessHigh",
        "KafkaOssSinkMemoryNearBudget",
    ] {
        assert!(names.contains(wanted), "no rule {wanted} in {names:?}");
    }
    let tests = yaml("alerts_test.yml");
    let mut fired = BTreeSet::new();
    let mut quiet = BTreeSet::new();
    for case in tests["tests"].as_sequence().unwrap() {
        for check in case["alert_rule_test"].as_sequence().unwrap() {
            let name = check["alertname"].as_str().unwrap().to_owned();
            match check["exp_alerts"].as_sequence().map(Vec::len) {
                Some(0) | None => quiet.insert(name),
                Some(_) => fired.insert(name),
            };
        }
    }
    for name in &names {
        assert!(fired.contains(name), "no test case where {name} fires");
        assert!(
            quiet.contains(name),
            "no test case where {name} stays quiet"
        );
    }
}

/// Every alert has a severity to route on and a summary and description for the notification.
#[test]
fn every_alert_has_severity_and_annotations() {
    for rule in rules() {
        let name = rule["alert"].as_str().unwrap();
        let severity = rule["labels"]["severity"].as_str();
        assert!(
            matches!(severity, Some("critical" | "warning")),
            "{name}: severity {severity:?}"
        );
        for annotation in ["summary", "description"] {
            assert!(
                rule["annotations"][annotation]
                    .as_str()
                    .is_some_and(|text| !text.is_empty()),
                "{name}: no {annotation}"
            );
        }
    }
}

/// The rules use only metrics the connector defines (a histogram through its `_bucket`, `_sum`
/// and `_count` series), besides Prometheus's own `up`.
#[test]
fn alerts_use_only_metrics_the_connector_defines() {
    let mut known = BTreeSet::new();
    for (name, kind) in actors::metrics::ALL {
        if *kind == "histogram" {
            for suffix in ["_bucket", "_sum", "_count"] {
                known.insert(format!("{name}{suffix}"));
            }
        } else {
            known.insert((*name).to_owned());
        }
    }
    // The memory budget's metrics come with the budget itself: until the connector defines them,
    // the memory rule is only checked by its unit test.
    let budget_defined = known
        .iter()
        .any(|name| name.starts_with("kafka_oss_sink_memory_"));
    let mut used = BTreeSet::new();
    for rule in rules() {
        let expr = rule["expr"].as_str().unwrap();
        let mut rest = expr;
        while let Some(start) = rest.find("kafka_oss_sink_") {
            let tail = &rest[start..];
            let end = tail
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(tail.len());
            used.insert(tail[..end].to_owned());
            rest = &tail[end..];
        }
    }
    assert!(used.len() >= 8, "{used:?}");
    let unknown: Vec<&String> = used
        .iter()
        .filter(|name| !known.contains(*name))
        .filter(|name| budget_defined || !name.starts_with("kafka_oss_sink_memory_"))
        .collect();
    assert!(
        unknown.is_empty(),
        "alert metrics the connector does not define: {unknown:?}"
    );
}
