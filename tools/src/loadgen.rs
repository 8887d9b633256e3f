//! `loadgen`: a repeatable load generator.
//!
//! Produces `--records N` records (or for `--duration-s`) to a topic, as fast as possible or at
//! `--rate` records per second, and prints a summary: records/s, MB/s and the produce latency
//! percentiles (from `send` to the broker's acknowledgement). `--json FILE` also writes the summary
//! with the offsets every record landed at, which `bench-watch` uses for its exactly-once check.
//!
//! Repeatable: record `i` is a pure function of `(seed, i)`. It goes to partition
//! `i % partitions`, its key follows `--keys`, and its value is `--value-size` ASCII bytes: the
//! record number (`i`, 10 digits, then `:`) followed by pseudo-random letters, digits, `-` and `_`
//! (valid UTF-8 that needs no JSON escaping). Only the timestamps (the producer's clock) differ
//! between runs with the same seed.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseRecord, Producer, ProducerContext, ThreadedProducer};
use rdkafka::{ClientContext, Message};
use serde::Serialize;

use crate::measure::{Percentiles, Throughput};

/// How record keys are made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyPattern {
    /// No key.
    None,
    /// `key-<i>`: every key distinct.
    Seq,
    /// `key-<r>` with `r` pseudo-random below the given count.
    Random(u64),
    /// The same key on every record.
    Fixed(String),
}

impl std::str::FromStr for KeyPattern {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "none" => Ok(KeyPattern::None),
            "seq" => Ok(KeyPattern::Seq),
            _ => {
                if let Some(count) = text.strip_prefix("random:") {
                    match count.parse::<u64>() {
                        Ok(count) if count > 0 => Ok(KeyPattern::Random(count)),
                        _ => Err(format!("--keys {text}: random:N needs N >= 1")),
                    }
                } else if let Some(key) = text.strip_prefix("fixed:") {
                    Ok(KeyPattern::Fixed(key.to_owned()))
                } else {
                    Err(format!(
                        "--keys {text}: expected none, seq, random:N or fixed:KEY"
                    ))
                }
            }
        }
    }
}

/// Load generator: produce N records (or for a duration) of a given size and key pattern,
/// repeatably (seeded), at a fixed rate or as fast as possible; print records/s, MB/s and
/// produce latency percentiles.
#[derive(Debug, clap::Parser)]
#[command(name = "loadgen", version)]
pub struct LoadgenArgs {
    /// Kafka bootstrap servers.
    #[arg(long)]
    pub bootstrap: String,
    /// Topic to produce to (must exist).
    #[arg(long)]
    pub topic: String,
    /// Number of records to produce.
    #[arg(long, required_unless_present = "duration_s")]
    pub records: Option<u64>,
    /// Produce for this many seconds instead of a record count.
    #[arg(long, conflicts_with = "records")]
    pub duration_s: Option<f64>,
    /// Value size in bytes.
    #[arg(long, default_value_t = 100)]
    pub value_size: usize,
    /// Keys: none, seq (key-<i>), random:N (key-<0..N>) or fixed:KEY.
    #[arg(long, default_value = "seq")]
    pub keys: KeyPattern,
    /// Records per second; 0 means as fast as possible.
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
    /// Seed: the same seed gives the same records.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Extra librdkafka producer property, `name=value` (repeatable).
    #[arg(long = "property", value_parser = crate::parse_property)]
    pub properties: Vec<(String, String)>,
    /// Write the summary (with the delivered offsets) as JSON to this file.
    #[arg(long)]
    pub json: Option<std::path::PathBuf>,
}

/// Deterministic generator for record `index` of a run with `seed`.
pub struct RecordGen {
    seed: u64,
    value_size: usize,
    keys: KeyPattern,
}

/// SplitMix64 step: a small, well-mixed, dependency-free generator.
fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

impl RecordGen {
    pub fn new(seed: u64, value_size: usize, keys: KeyPattern) -> Self {
        RecordGen {
            seed,
            value_size,
            keys,
        }
    }

    /// Writes record `index`'s key (if any) and value into the buffers; returns whether it has a key.
    pub fn fill(&self, index: u64, key: &mut Vec<u8>, value: &mut Vec<u8>) -> bool {
        let mut state = self.seed ^ index.wrapping_mul(0xD1B5_4A32_D192_ED03);
        let first = splitmix(&mut state);
        key.clear();
        value.clear();
        use std::io::Write;
        let _ = write!(value, "{index:010}:");
        value.truncate(self.value_size);
        while value.len() < self.value_size {
            let mut bits = splitmix(&mut state);
            for _ in 0..10 {
                if value.len() == self.value_size {
                    break;
                }
                value.push(ALPHABET[(bits & 63) as usize]);
                bits >>= 6;
            }
        }
        match &self.keys {
            KeyPattern::None => return false,
            KeyPattern::Seq => {
                let _ = write!(key, "key-{index}");
            }
            KeyPattern::Random(count) => {
                let _ = write!(key, "key-{}", first % count);
            }
            KeyPattern::Fixed(fixed) => key.extend_from_slice(fixed.as_bytes()),
        }
        true
    }
}

/// What the delivery callback collects.
#[derive(Default)]
struct Deliveries {
    /// Send-to-acknowledgement latencies, microseconds.
    latencies_us: Vec<u64>,
    /// Delivered offsets, per partition.
    offsets: Vec<Vec<i64>>,
    errors: u64,
    first_error: Option<String>,
}

struct LoadContext {
    start: Instant,
    delivered: AtomicU64,
    deliveries: Mutex<Deliveries>,
}

impl ClientContext for LoadContext {}

impl ProducerContext for LoadContext {
    /// Nanoseconds from the start of the run to the `send` call: no allocation per record.
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &rdkafka::message::DeliveryResult<'_>, sent_at: usize) {
        let latency_us =
            (self.start.elapsed().as_nanos() as u64).saturating_sub(sent_at as u64) / 1000;
        let mut deliveries = self.deliveries.lock().expect("deliveries lock");
        match result {
            Ok(message) => {
                let partition = message.partition() as usize;
                if deliveries.offsets.len() <= partition {
                    deliveries.offsets.resize_with(partition + 1, Vec::new);
                }
                deliveries.offsets[partition].push(message.offset());
                deliveries.latencies_us.push(latency_us);
            }
            Err((error, _)) => {
                deliveries.errors += 1;
                deliveries
                    .first_error
                    .get_or_insert_with(|| error.to_string());
            }
        }
        drop(deliveries);
        self.delivered.fetch_add(1, Ordering::Relaxed);
    }
}

/// The run's summary, printed and written as JSON.
#[derive(Debug, Serialize)]
pub struct LoadgenSummary {
    pub topic: String,
    pub seed: u64,
    pub partitions: usize,
    pub value_size: usize,
    pub keys: KeyPattern,
    /// Records per second asked for; 0 for as fast as possible.
    pub target_rate: f64,
    /// Records the broker acknowledged (and key plus value bytes of those sent).
    pub produced: Throughput,
    /// Send to acknowledgement.
    pub produce_latency: Percentiles,
    pub errors: u64,
    pub first_error: Option<String>,
    /// Wall clock (ms since the epoch) of the first send and of the last acknowledgement.
    pub started_at_ms: i64,
    pub finished_at_ms: i64,
    /// Per partition, the delivered offsets as inclusive `[first, last]` ranges.
    pub offsets: std::collections::BTreeMap<String, Vec<[i64; 2]>>,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Collapses offsets into inclusive ranges.
pub fn ranges(mut offsets: Vec<i64>) -> Vec<[i64; 2]> {
    offsets.sort_unstable();
    let mut out: Vec<[i64; 2]> = Vec::new();
    for offset in offsets {
        match out.last_mut() {
            Some(last) if last[1] + 1 == offset => last[1] = offset,
            _ => out.push([offset, offset]),
        }
    }
    out
}

pub fn run(args: &LoadgenArgs) -> Result<LoadgenSummary, String> {
    if !(args.rate >= 0.0 && args.rate.is_finite()) {
        return Err(format!(
            "--rate {}: must be 0 or a positive number",
            args.rate
        ));
    }
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &args.bootstrap)
        .set("acks", "all")
        .set("linger.ms", "5")
        .set("batch.size", "1000000")
        .set("queue.buffering.max.messages", "500000")
        .set("queue.buffering.max.kbytes", "1048576")
        .set("message.timeout.ms", "60000");
    for (name, value) in &args.properties {
        config.set(name, value);
    }
    let context = LoadContext {
        start: Instant::now(),
        delivered: AtomicU64::new(0),
        deliveries: Mutex::new(Deliveries::default()),
    };
    let producer: ThreadedProducer<LoadContext> = config
        .create_with_context(context)
        .map_err(|error| format!("kafka producer configuration rejected: {error}"))?;
    let metadata = producer
        .client()
        .fetch_metadata(Some(&args.topic), Duration::from_secs(30))
        .map_err(|error| {
            format!(
                "cannot read metadata of topic `{}` from {}: {error}",
                args.topic, args.bootstrap
            )
        })?;
    let partitions = metadata
        .topics()
        .iter()
        .find(|topic| topic.name() == args.topic && topic.error().is_none())
        .map(|topic| topic.partitions().len())
        .filter(|count| *count > 0)
        .ok_or_else(|| {
            format!(
                "topic `{}` does not exist on {}",
                args.topic, args.bootstrap
            )
        })?;

    let generator = RecordGen::new(args.seed, args.value_size, args.keys.clone());
    let progress = match args.records {
        Some(records) => indicatif::ProgressBar::new(records),
        None => indicatif::ProgressBar::new((args.duration_s.unwrap_or(0.0).max(0.0)) as u64),
    };
    progress.set_style(
        indicatif::ProgressStyle::with_template(if args.records.is_some() {
            "{elapsed_precise} [{bar:40}] {pos}/{len} records ({per_sec}) {msg}"
        } else {
            "{elapsed_precise} [{bar:40}] {pos}/{len} s {msg}"
        })
        .expect("valid template")
        .progress_chars("=> "),
    );
    let start = producer.context().start;
    let started_at_ms = now_ms();
    let deadline = args
        .duration_s
        .map(|s| start + Duration::from_secs_f64(s.max(0.0)));
    let (mut key, mut value) = (Vec::new(), Vec::new());
    let mut sent: u64 = 0;
    let mut bytes: u64 = 0;
    loop {
        if args.records.is_some_and(|records| sent >= records) {
            break;
        }
        if let Some(deadline) = deadline {
            if Instant::now() >= deadline {
                break;
            }
        }
        if sent.is_multiple_of(4096) {
            if args.records.is_some() {
                progress.set_position(sent);
            } else {
                progress.set_position(start.elapsed().as_secs());
            }
        }
        if args.rate > 0.0 {
            let due = start + Duration::from_secs_f64(sent as f64 / args.rate);
            let now = Instant::now();
            if due > now + Duration::from_millis(1) {
                std::thread::sleep(due - now);
            }
        }
        let has_key = generator.fill(sent, &mut key, &mut value);
        bytes += (value.len() + if has_key { key.len() } else { 0 }) as u64;
        let partition = (sent % partitions as u64) as i32;
        loop {
            let sent_at = start.elapsed().as_nanos() as usize;
            let mut record: BaseRecord<'_, [u8], [u8], usize> =
                BaseRecord::with_opaque_to(&args.topic, sent_at)
                    .partition(partition)
                    .payload(value.as_slice());
            if has_key {
                record = record.key(key.as_slice());
            }
            match producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err((error, _)) => {
                    return Err(format!("cannot send to topic `{}`: {error}", args.topic))
                }
            }
        }
        sent += 1;
    }
    progress.set_message("waiting for acknowledgements");
    producer
        .flush(Duration::from_secs(120))
        .map_err(|error| format!("not every record was acknowledged within 120 s: {error}"))?;
    let elapsed = start.elapsed();
    let finished_at_ms = now_ms();
    progress.finish_and_clear();
    let context = producer.context();
    let mut deliveries = std::mem::take(&mut *context.deliveries.lock().expect("deliveries lock"));
    let delivered = deliveries.latencies_us.len() as u64;
    // Every record of a run has the same size up to its key's length: scale to the delivered.
    let produced_bytes = (bytes * delivered).checked_div(sent).unwrap_or(0);
    Ok(LoadgenSummary {
        topic: args.topic.clone(),
        seed: args.seed,
        partitions,
        value_size: args.value_size,
        keys: args.keys.clone(),
        target_rate: args.rate,
        produced: Throughput::new(delivered, produced_bytes, elapsed),
        produce_latency: Percentiles::from_micros(&mut deliveries.latencies_us),
        errors: deliveries.errors,
        first_error: deliveries.first_error.take(),
        started_at_ms,
        finished_at_ms,
        offsets: deliveries
            .offsets
            .into_iter()
            .enumerate()
            .filter(|(_, offsets)| !offsets.is_empty())
            .map(|(partition, offsets)| (partition.to_string(), ranges(offsets)))
            .collect(),
    })
}

/// The human-readable summary.
pub fn print_summary(summary: &LoadgenSummary) {
    let p = &summary.produced;
    let l = &summary.produce_latency;
    println!(
        "produced {} records ({} B values, keys {:?}) to `{}` ({} partitions), seed {}",
        p.records,
        summary.value_size,
        summary.keys,
        summary.topic,
        summary.partitions,
        summary.seed
    );
    println!("  {:<22} {:>12.0}", "records/s", p.records_per_s);
    println!("  {:<22} {:>12.2}", "MB/s (key+value)", p.mb_per_s);
    println!("  {:<22} {:>12.2}", "seconds", p.seconds);
    println!(
        "  {:<22} p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        "produce latency", l.p50_ms, l.p90_ms, l.p99_ms, l.max_ms
    );
    if summary.errors > 0 {
        println!(
            "  {:<22} {} (first: {})",
            "delivery errors",
            summary.errors,
            summary.first_error.as_deref().unwrap_or("")
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_records_and_sizes_hold() {
        let a = RecordGen::new(7, 100, KeyPattern::Seq);
        let b = RecordGen::new(7, 100, KeyPattern::Seq);
        let c = RecordGen::new(8, 100, KeyPattern::Seq);
        let (mut ka, mut va, mut kb, mut vb, mut kc, mut vc) =
            (vec![], vec![], vec![], vec![], vec![], vec![]);
        for index in [0, 1, 12345] {
            assert!(a.fill(index, &mut ka, &mut va));
            b.fill(index, &mut kb, &mut vb);
            c.fill(index, &mut kc, &mut vc);
            assert_eq!((&ka, &va), (&kb, &vb));
            assert_ne!(va, vc);
            assert_eq!(va.len(), 100);
            assert_eq!(ka, format!("key-{index}").into_bytes());
            assert!(va.starts_with(format!("{index:010}:").as_bytes()));
            assert!(std::str::from_utf8(&va).is_ok());
        }
        let small = RecordGen::new(1, 4, KeyPattern::None);
        assert!(!small.fill(3, &mut ka, &mut va));
        assert_eq!(va, b"0000");
        let random = RecordGen::new(1, 10, KeyPattern::Random(3));
        for index in 0..50 {
            random.fill(index, &mut ka, &mut va);
            assert!(["key-0", "key-1", "key-2"].contains(&std::str::from_utf8(&ka).unwrap()));
        }
    }

    #[test]
    fn key_patterns_parse_with_clear_errors() {
        assert_eq!("random:5".parse::<KeyPattern>(), Ok(KeyPattern::Random(5)));
        assert_eq!(
            "fixed:k".parse::<KeyPattern>(),
            Ok(KeyPattern::Fixed("k".into()))
        );
        assert!("random:0"
            .parse::<KeyPattern>()
            .unwrap_err()
            .contains("N >= 1"));
        assert!("bogus"
            .parse::<KeyPattern>()
            .unwrap_err()
            .contains("expected none"));
    }

    #[test]
    fn offsets_collapse_into_ranges() {
        assert_eq!(
            ranges(vec![3, 1, 2, 7, 8, 10]),
            vec![[1, 3], [7, 8], [10, 10]]
        );
    }
}
