//! What `bench-watch` reports: the summary it prints and writes as JSON, and the per-second
//! series the chart is drawn from.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::measure::{Percentiles, ProcStats, Throughput};

/// One second of the run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Bin {
    /// Seconds since the watcher started.
    pub t_s: u64,
    /// Records whose object was first seen in this second.
    pub records: u64,
    /// Key plus value bytes of those records (known after the final read; 0 before).
    pub payload_bytes: u64,
    pub latency_p50_ms: f64,
    pub latency_p99_ms: f64,
    pub latency_max_ms: f64,
    pub connector_rss_mib: f64,
    pub connector_cpu_s: f64,
}

#[derive(Debug, Serialize)]
pub struct ExactlyOnce {
    pub expected: u64,
    /// Distinct produced `(partition, offset)` found in the bucket.
    pub stored: u64,
    pub missing: u64,
    /// Produced records found more than once (counted once each).
    pub duplicated: u64,
    /// Records in the bucket that the load generator did not produce.
    pub unexpected: u64,
    pub ok: bool,
}

#[derive(Debug, Serialize)]
pub struct WatchSummary {
    pub prefix: String,
    pub complete: bool,
    pub objects: u64,
    pub object_bytes: u64,
    /// From the watcher's start (started with the connector) to the last object.
    pub drain_total: Throughput,
    /// From `partitions assigned` in the connector log to the last object.
    pub drain_since_assignment: Option<Throughput>,
    pub assigned_after_s: Option<f64>,
    /// Only the objects holding `--full-object-records` records, from assignment (or the start)
    /// to the last of them: the drain without each partition's last, shorter object.
    pub drain_full_objects: Option<Throughput>,
    /// Record timestamp to the object's stored time.
    pub e2e_latency: Percentiles,
    pub stored_time: String,
    pub exactly_once: ExactlyOnce,
    /// The connector's CPU seconds (since it started) and peak RSS, sampled when the last
    /// object was seen.
    pub connector: Option<ProcStats>,
    pub connector_cpu_s_per_million: Option<f64>,
    /// CPU seconds of the `--other-pid` processes from the watcher's start to the last object.
    pub others_cpu_s: BTreeMap<String, f64>,
    pub series: Vec<Bin>,
}

pub fn print_summary(summary: &WatchSummary) {
    let e = &summary.exactly_once;
    println!(
        "connector stored {} records in {} objects ({:.1} MB of objects) under {}{}",
        summary.drain_total.records,
        summary.objects,
        summary.object_bytes as f64 / 1e6,
        summary.prefix,
        if summary.complete {
            ""
        } else {
            " (INCOMPLETE: timed out)"
        }
    );
    let t = &summary.drain_total;
    println!(
        "  {:<34} {:>12.0}",
        "drain records/s (from start)", t.records_per_s
    );
    println!(
        "  {:<34} {:>12.2}",
        "drain MB/s key+value (from start)", t.mb_per_s
    );
    if let Some(a) = &summary.drain_since_assignment {
        println!(
            "  {:<34} {:>12.0}",
            "drain records/s (since assignment)", a.records_per_s
        );
        println!(
            "  {:<34} {:>12.2}",
            "drain MB/s (since assignment)", a.mb_per_s
        );
    }
    if let Some(f) = &summary.drain_full_objects {
        println!(
            "  {:<34} {:>12.0} ({:.2} MB/s, {} records)",
            "drain records/s (full objects)", f.records_per_s, f.mb_per_s, f.records
        );
    }
    let l = &summary.e2e_latency;
    println!(
        "  {:<34} p50 {:.0} ms, p90 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        "end-to-end latency", l.p50_ms, l.p90_ms, l.p99_ms, l.max_ms
    );
    if let Some(c) = &summary.connector {
        println!("  {:<34} {:>12.2}", "connector CPU seconds", c.cpu_seconds);
        println!(
            "  {:<34} {:>12.3}",
            "connector CPU s per million records",
            summary.connector_cpu_s_per_million.unwrap_or(0.0)
        );
        for (name, cpu) in &summary.others_cpu_s {
            println!("  {:<34} {:>12.2}", format!("{name} CPU seconds"), cpu);
        }
        println!(
            "  {:<34} {:>12.1}",
            "connector peak RSS MiB",
            c.peak_rss_bytes as f64 / 1048576.0
        );
    }
    println!(
        "  {:<34} {} (expected {}, stored {}, missing {}, duplicated {}, unexpected {})",
        "exactly once",
        if e.ok { "yes" } else { "NO" },
        e.expected,
        e.stored,
        e.missing,
        e.duplicated,
        e.unexpected
    );
}
