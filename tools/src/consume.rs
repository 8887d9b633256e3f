//! `bench-consume`: the baseline. A bare rdkafka group consumer with the connector's consumer
//! settings reads a topic's backlog to the end (the high watermarks seen at start) and does
//! nothing with the records but touch their bytes. Its rate is the ceiling of this machine and
//! broker; the connector's figures are reported as ratios to it.

use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use actors::kafka;
use actors::settings::{AssignmentStrategy, ClientProperties, SourceSettings, StartOffset};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::{ClientContext, Message};
use serde::Serialize;

use crate::measure::{proc_stats, ProcStats, Throughput};

/// Benchmark baseline: a bare rdkafka consumer (the connector's librdkafka settings) reads a
/// topic's backlog to the end; prints records/s, MB/s and CPU seconds.
#[derive(Debug, clap::Parser)]
#[command(name = "bench-consume", version)]
pub struct ConsumeArgs {
    #[arg(long)]
    pub bootstrap: String,
    #[arg(long)]
    pub topic: String,
    /// Extra librdkafka consumer property, `name=value` (repeatable), passed through like the
    /// connector's `source.properties`; `fetch.wait.max.ms = 10` (as in `scripts/bench`'s
    /// connector config) is set already. The group and offset properties the connector sets
    /// itself are refused.
    #[arg(long = "property", value_parser = crate::parse_property)]
    pub properties: Vec<(String, String)>,
    /// Records to read; by default the sum of the partitions' high minus low watermarks at start.
    #[arg(long)]
    pub expect: Option<u64>,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 600)]
    pub timeout_s: u64,
    #[arg(long)]
    pub json: Option<std::path::PathBuf>,
}

#[derive(Debug, Serialize)]
pub struct ConsumeSummary {
    pub topic: String,
    /// Records to read: `--expect`, or those between the low and high watermarks at start.
    pub expected: u64,
    /// From consumer creation to the last record (includes joining the group).
    pub total: Throughput,
    /// From the first record to the last.
    pub since_first_record: Throughput,
    /// From the partitions' assignment to the last record: the connector's drain is measured
    /// from its assignment too.
    pub since_assignment: Option<Throughput>,
    /// Seconds from consumer creation to the first record.
    pub first_record_after_s: f64,
    /// This process: CPU seconds spent and peak RSS.
    pub process: ProcStats,
    /// CPU seconds per million records.
    pub cpu_s_per_million: f64,
    pub complete: bool,
}

/// Notes when the group assigns the partitions.
#[derive(Default)]
struct BaselineContext {
    assigned: OnceLock<Instant>,
}

impl ClientContext for BaselineContext {}

impl ConsumerContext for BaselineContext {
    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(_) = rebalance {
            let _ = self.assigned.set(Instant::now());
        }
    }
}

/// Properties the baseline sets itself, as the connector does; `--property` cannot change them.
const OWN_PROPERTIES: [&str; 6] = [
    "bootstrap.servers",
    "group.id",
    "auto.offset.reset",
    "enable.auto.commit",
    "enable.auto.offset.store",
    "enable.partition.eof",
];

/// The connector's consumer configuration for this topic, in a group of the baseline's own.
fn consumer_config(args: &ConsumeArgs) -> Result<ClientConfig, String> {
    if let Some((name, _)) = args
        .properties
        .iter()
        .find(|(name, _)| OWN_PROPERTIES.contains(&name.as_str()))
    {
        return Err(format!(
            "--property {name}: bench-consume sets it itself, as the connector does"
        ));
    }
    let mut properties = BTreeMap::from([("fetch.wait.max.ms".to_owned(), "10".to_owned())]);
    properties.extend(args.properties.iter().cloned());
    let source = SourceSettings {
        bootstrap_servers: args.bootstrap.clone(),
        topic: args.topic.clone(),
        group_id: format!("kos-bench-baseline-{}", std::process::id()),
        start_offset: StartOffset::Earliest,
        assignment: AssignmentStrategy::CooperativeSticky,
        concurrency: 1,
        client_properties: ClientProperties(properties),
    };
    // The connector's own consumer properties, without `statistics.interval.ms`: statistics
    // feed the connector's metrics, and the baseline has always been measured without them.
    let mut config = kafka::consumer_config(&source);
    config.remove("statistics.interval.ms");
    Ok(config)
}

pub fn run(args: &ConsumeArgs) -> Result<ConsumeSummary, String> {
    let cpu_before = proc_stats("self").unwrap_or_default().cpu_seconds;
    let start = Instant::now();
    let config = consumer_config(args)?;
    let consumer: BaseConsumer<BaselineContext> = config
        .create_with_context(BaselineContext::default())
        .map_err(|error| format!("kafka consumer configuration rejected: {error}"))?;
    let metadata = consumer
        .fetch_metadata(Some(&args.topic), Duration::from_secs(30))
        .map_err(|error| format!("cannot read metadata of `{}`: {error}", args.topic))?;
    let topic = metadata
        .topics()
        .iter()
        .find(|topic| topic.name() == args.topic && topic.error().is_none())
        .ok_or_else(|| format!("topic `{}` does not exist", args.topic))?;
    let mut expected: u64 = 0;
    for partition in topic.partitions() {
        let (low, high) = consumer
            .fetch_watermarks(&args.topic, partition.id(), Duration::from_secs(30))
            .map_err(|error| format!("watermarks of partition {}: {error}", partition.id()))?;
        expected += (high - low).max(0) as u64;
    }
    if let Some(count) = args.expect {
        expected = count;
    }
    consumer
        .subscribe(&[&args.topic])
        .map_err(|error| format!("cannot subscribe to `{}`: {error}", args.topic))?;
    let deadline = start + Duration::from_secs(args.timeout_s);
    let (mut records, mut bytes, mut checksum) = (0u64, 0u64, 0u64);
    let mut first_at = None;
    let mut last_at = start;
    while records < expected && Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(message)) => {
                let now = Instant::now();
                first_at.get_or_insert(now);
                last_at = now;
                records += 1;
                let key = message.key().unwrap_or_default();
                let value = message.payload().unwrap_or_default();
                bytes += (key.len() + value.len()) as u64;
                // Touch the bytes, as a sink must.
                checksum = checksum
                    .wrapping_add(value.first().copied().unwrap_or(0) as u64)
                    .wrapping_add(value.last().copied().unwrap_or(0) as u64);
            }
            Some(Err(error)) => eprintln!("consume error: {error}"),
            None => {}
        }
    }
    std::hint::black_box(checksum);
    let mut process = proc_stats("self").unwrap_or_default();
    process.cpu_seconds -= cpu_before;
    let first_at = first_at.unwrap_or(last_at);
    Ok(ConsumeSummary {
        topic: args.topic.clone(),
        expected,
        total: Throughput::new(records, bytes, last_at.duration_since(start)),
        since_first_record: Throughput::new(records, bytes, last_at.duration_since(first_at)),
        since_assignment: consumer.context().assigned.get().map(|assigned| {
            Throughput::new(records, bytes, last_at.saturating_duration_since(*assigned))
        }),
        first_record_after_s: first_at.duration_since(start).as_secs_f64(),
        cpu_s_per_million: process.cpu_seconds / (records.max(1) as f64) * 1e6,
        process,
        complete: records >= expected,
    })
}

pub fn print_summary(summary: &ConsumeSummary) {
    println!(
        "bare consumer read {} of {} records of `{}`{}",
        summary.total.records,
        summary.expected,
        summary.topic,
        if summary.complete {
            ""
        } else {
            " (INCOMPLETE)"
        }
    );
    let (t, f) = (&summary.total, &summary.since_first_record);
    if let Some(a) = &summary.since_assignment {
        println!(
            "  {:<28} {:>12.0} {:>12.2}",
            "since assignment rec/s, MB/s", a.records_per_s, a.mb_per_s
        );
    }
    println!(
        "  {:<28} {:>12.0} {:>12.0}",
        "records/s (total, since 1st)", t.records_per_s, f.records_per_s
    );
    println!(
        "  {:<28} {:>12.2} {:>12.2}",
        "MB/s (total, since 1st)", t.mb_per_s, f.mb_per_s
    );
    println!(
        "  {:<28} {:>12.2}",
        "first record after s", summary.first_record_after_s
    );
    println!(
        "  {:<28} {:>12.2}",
        "CPU seconds", summary.process.cpu_seconds
    );
    println!(
        "  {:<28} {:>12.3}",
        "CPU s per million records", summary.cpu_s_per_million
    );
    println!(
        "  {:<28} {:>12.1}",
        "peak RSS MiB",
        summary.process.peak_rss_bytes as f64 / 1048576.0
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn args(extra: &[&str]) -> ConsumeArgs {
        let mut argv = vec!["bench-consume", "--bootstrap", "b:9092", "--topic", "t"];
        argv.extend_from_slice(extra);
        ConsumeArgs::parse_from(argv)
    }

    #[test]
    fn the_consumer_has_the_connector_s_settings_and_its_own_group() {
        let config = consumer_config(&args(&["--property", "client.id=x"])).unwrap();
        for (name, value) in [
            ("bootstrap.servers", "b:9092"),
            ("auto.offset.reset", "earliest"),
            ("enable.auto.commit", "false"),
            ("enable.auto.offset.store", "false"),
            ("enable.partition.eof", "false"),
            ("fetch.wait.max.ms", "10"),
            ("client.id", "x"),
        ] {
            assert_eq!(config.get(name), Some(value), "{name}");
        }
        assert!(config
            .get("group.id")
            .is_some_and(|group| group.starts_with("kos-bench-baseline-")));
        let faster = consumer_config(&args(&["--property", "fetch.wait.max.ms=1"])).unwrap();
        assert_eq!(faster.get("fetch.wait.max.ms"), Some("1"));
    }

    #[test]
    fn properties_the_baseline_owns_are_refused() {
        let error = consumer_config(&args(&["--property", "group.id=g"])).unwrap_err();
        assert!(error.contains("--property group.id"), "{error}");
    }
}
