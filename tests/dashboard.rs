//! The shipped Grafana dashboard, checked without a broker or a connector: it is valid Grafana
//! JSON with the expected panels, its queries use only PromQL words and metrics the connector
//! defines, and it covers the key metrics. `tests/monitoring.rs` checks the same queries against
//! a live scrape.

mod support;

use std::collections::BTreeSet;
use std::path::Path;

use support::grafana::{dashboard, dashboard_queries, metric_names, used_metric_names};

/// The dashboard has queries on the metrics an operator looks at first.
#[test]
fn dashboard_queries_cover_the_key_metrics() {
    let dashboard = dashboard();
    let queries = dashboard_queries(&dashboard);
    assert!(queries.len() >= 20, "{} queries", queries.len());
    let used = used_metric_names(&dashboard);
    for wanted in [
        "kafka_oss_sink_consumer_lag_records",
        "kafka_oss_sink_freshness_seconds_bucket",
        "kafka_oss_sink_object_size_bytes_bucket",
        "kafka_oss_sink_upload_duration_seconds_bucket",
        "kafka_oss_sink_errors_total",
        "kafka_oss_sink_partition_state",
        "kafka_oss_sink_buffered_bytes",
        "kafka_oss_sink_written_records_total",
        "kafka_oss_sink_memory_used_bytes",
        "kafka_oss_sink_memory_paused_partitions",
    ] {
        assert!(
            used.contains(wanted),
            "the dashboard has no panel on {wanted}"
        );
    }
}

/// Every metric a dashboard query uses is one the connector defines (`actors::metrics::ALL`; a
/// histogram through its `_bucket`, `_sum` and `_count` series).
#[test]
fn dashboard_uses_only_metrics_the_connector_defines() {
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
    let unknown: Vec<String> = used_metric_names(&dashboard())
        .into_iter()
        .filter(|name| !known.contains(name))
        .collect();
    assert!(
        unknown.is_empty(),
        "dashboard metrics the connector does not define: {unknown:?}"
    );
}

#[test]
fn dashboard_is_grafana_json_with_panels_and_queries() {
    let dashboard = dashboard();
    assert_eq!(dashboard["uid"], "kafka-oss-sink");
    assert!(dashboard["schemaVersion"].as_i64().unwrap() >= 30);
    let titles: Vec<&str> = dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["title"].as_str())
        .collect();
    for wanted in [
        "lag",
        "Freshness",
        "Object size",
        "Upload latency",
        "Errors by code",
        "state",
        "Memory",
        "per second",
    ] {
        assert!(
            titles.iter().any(|t| t.contains(wanted)),
            "no panel about {wanted}: {titles:?}"
        );
    }
    let mut ids = BTreeSet::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        assert!(
            ids.insert(panel["id"].as_i64().unwrap()),
            "duplicate panel id"
        );
        let grid = &panel["gridPos"];
        for key in ["x", "y", "w", "h"] {
            assert!(
                grid[key].is_i64(),
                "panel {} has no gridPos.{key}",
                panel["title"]
            );
        }
        if panel["type"] != "row" {
            assert_eq!(panel["datasource"]["uid"], "kafka-oss-sink-prometheus");
            assert!(!panel["targets"].as_array().unwrap().is_empty());
        }
    }
    // The provisioned data source has the uid the panels use.
    let datasource = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("grafana/provisioning/datasources/prometheus.yml"),
    )
    .unwrap();
    assert!(
        datasource.contains("uid: kafka-oss-sink-prometheus"),
        "{datasource}"
    );
    // Metric-name extraction itself: rejects foreign identifiers.
    assert_eq!(
        metric_names("histogram_quantile(0.99, sum by (le) (rate(kafka_oss_sink_freshness_seconds_bucket{topic=~\"$topic\"}[$__rate_interval])))"),
        BTreeSet::from(["kafka_oss_sink_freshness_seconds_bucket".to_owned()])
    );
    assert!(std::panic::catch_unwind(|| metric_names("rate(node_cpu_seconds_total[1m])")).is_err());
}
