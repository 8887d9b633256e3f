//! The shipped Grafana dashboard (`grafana/dashboards/kafka-oss-sink.json`): its PromQL queries
//! and the connector metrics they use. Read by `tests/dashboard.rs` (no stack) and by
//! `tests/monitoring.rs` (against a live scrape).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::Value;

pub fn dashboard_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("grafana/dashboards/kafka-oss-sink.json")
}

/// Every PromQL expression in the dashboard: panel targets (rows included) and templating queries.
pub fn dashboard_queries(dashboard: &Value) -> Vec<String> {
    fn panels(list: &Value, out: &mut Vec<String>) {
        for panel in list.as_array().into_iter().flatten() {
            for target in panel["targets"].as_array().into_iter().flatten() {
                if let Some(expr) = target["expr"].as_str() {
                    out.push(expr.to_owned());
                }
            }
            panels(&panel["panels"], out);
        }
    }
    let mut out = Vec::new();
    panels(&dashboard["panels"], &mut out);
    for variable in dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
    {
        match &variable["query"] {
            Value::String(query) => out.push(query.clone()),
            Value::Object(query) => out.extend(query["query"].as_str().map(str::to_owned)),
            _ => {}
        }
    }
    out
}

/// PromQL functions, keywords and the label names the dashboard may use: every other identifier
/// in a query must be a metric name.
pub const PROMQL_WORDS: &[&str] = &[
    "sum",
    "min",
    "max",
    "avg",
    "count",
    "by",
    "without",
    "rate",
    "irate",
    "increase",
    "histogram_quantile",
    "label_values",
    "and",
    "or",
    "unless",
    "bool",
    "on",
    "ignoring",
    "le",
    "topic",
    "partition",
    "reason",
    "code",
    "level",
    "destination",
    "kind",
    "waiting_for",
    "share",
    "state",
    "instance",
    "job",
];

/// The metric names a query uses. Panics on an identifier that is neither a PromQL word nor a
/// connector metric, so a typo or a foreign metric fails the test too.
pub fn metric_names(query: &str) -> BTreeSet<String> {
    // Drop string literals ("..."), range selectors ([5m]) and Grafana variables ($__x, $x).
    let mut cleaned = String::new();
    let mut chars = query.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                for d in chars.by_ref() {
                    if d == '"' {
                        break;
                    }
                }
                cleaned.push(' ');
            }
            '[' => {
                for d in chars.by_ref() {
                    if d == ']' {
                        break;
                    }
                }
                cleaned.push(' ');
            }
            '$' => {
                while chars
                    .peek()
                    .is_some_and(|d| d.is_ascii_alphanumeric() || *d == '_')
                {
                    chars.next();
                }
                cleaned.push(' ');
            }
            other => cleaned.push(other),
        }
    }
    let mut names = BTreeSet::new();
    let mut token = String::new();
    for c in cleaned.chars().chain([' ']) {
        if c.is_ascii_alphanumeric() || c == '_' || c == ':' || c == '.' {
            token.push(c);
            continue;
        }
        if !token.is_empty() && !token.starts_with(|d: char| d.is_ascii_digit() || d == '.') {
            if token.starts_with("kafka_oss_sink_") {
                names.insert(token.clone());
            } else {
                assert!(
                    PROMQL_WORDS.contains(&token.as_str()),
                    "dashboard query uses `{token}`, which is neither a PromQL word nor a kafka_oss_sink metric: {query}"
                );
            }
        }
        token.clear();
    }
    names
}

/// The dashboard, parsed.
pub fn dashboard() -> Value {
    serde_json::from_str(&std::fs::read_to_string(dashboard_path()).unwrap()).unwrap()
}

/// Every metric name the dashboard's queries use.
pub fn used_metric_names(dashboard: &Value) -> BTreeSet<String> {
    let mut used = BTreeSet::new();
    for query in &dashboard_queries(dashboard) {
        used.extend(metric_names(query));
    }
    used
}
