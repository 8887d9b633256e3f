//! `bench-watch`: end-to-end measurement of a running connector through the bucket.
//!
//! While the connector runs, the watcher only LISTs the bucket (every `--poll-ms`), so it takes
//! little CPU from the connector: an object's key names its partition and offset range, which
//! gives the drain progress. An object's "stored" time is its `LastModified` in the listing
//! (`--stored-time last-modified`, the default: milliseconds on s3s-fs, which stamps the file's
//! modification time, on this machine's clock), or the time it first shows up in a listing
//! (`first-listed`: resolution the poll interval plus one LIST round trip; for a remote store whose
//! clock may differ). It samples the connector's CPU seconds and RSS from `/proc/<pid>/stat` and
//! `/proc/<pid>/status` (`VmHWM` is the peak).
//!
//! Once the keys cover every offset the load generator's delivery reports list (`--produced`,
//! the JSON of `loadgen --json`, which may appear later: the watcher waits for it), it GETs every
//! object and checks each produced `(partition, offset)` is stored exactly once and nothing else
//! is; the end-to-end latency of a record is its stored time minus its Kafka timestamp (set by the
//! producer at send, milliseconds).

mod coverage;
mod summary;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use serde::Deserialize;

use crate::measure::{proc_stats, Percentiles, ProcStats, Throughput};
use coverage::{covered, instant_at, logged_at, millis, parse_key, SeenObject};
pub use summary::{print_summary, Bin, ExactlyOnce, WatchSummary};

/// End-to-end measurement of a running connector through the bucket: drain throughput,
/// record-to-object latency, CPU and peak RSS, and an exactly-once check.
#[derive(Debug, clap::Parser)]
#[command(name = "bench-watch", version)]
pub struct WatchArgs {
    /// S3 endpoint URL (path-style addressing).
    #[arg(long)]
    pub endpoint: String,
    #[arg(long)]
    pub bucket: String,
    #[arg(long, default_value = "us-east-1")]
    pub region: String,
    /// Object key prefix of the topic: `{sink.key_prefix}{topic}/`.
    #[arg(long)]
    pub prefix: String,
    /// The `loadgen --json` summary of the records to expect (waited for if not there yet).
    #[arg(long)]
    pub produced: PathBuf,
    /// The connector's process id (for CPU seconds and peak RSS).
    #[arg(long)]
    pub pid: Option<u32>,
    /// The connector's log: the time `partitions assigned` appears starts the
    /// "since assignment" drain figure.
    #[arg(long)]
    pub connector_log: Option<PathBuf>,
    /// The connector's `batching.max_records`: also report the drain rate of the objects sealed
    /// by record count alone, without each partition's last, shorter object.
    #[arg(long)]
    pub full_object_records: Option<i64>,
    /// Another process on the same machine, `name=pid` (repeatable; e.g. the broker and the S3
    /// server): its CPU seconds from the watcher's start to the last object are reported too.
    #[arg(long = "other-pid", value_parser = crate::parse_property)]
    pub other_pids: Vec<(String, String)>,
    #[arg(long, default_value_t = 100)]
    pub poll_ms: u64,
    /// What an object's "stored" time is.
    #[arg(long, value_enum, default_value_t = StoredTime::LastModified)]
    pub stored_time: StoredTime,
    #[arg(long, default_value_t = 900)]
    pub timeout_s: u64,
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Chart of throughput and latency over time (SVG).
    #[arg(long)]
    pub svg: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StoredTime {
    /// The object's `LastModified` from the listing (same clock as this machine's).
    LastModified,
    /// When the object first appeared in a listing.
    FirstListed,
}

#[derive(Deserialize)]
struct Produced {
    offsets: BTreeMap<String, Vec<[i64; 2]>>,
}

fn s3_client(args: &WatchArgs) -> Result<aws_sdk_s3::Client, String> {
    let id = std::env::var("OSS_ACCESS_KEY_ID")
        .or_else(|_| std::env::var("AWS_ACCESS_KEY_ID"))
        .map_err(|_| "set OSS_ACCESS_KEY_ID (or AWS_ACCESS_KEY_ID)".to_owned())?;
    let secret = std::env::var("OSS_ACCESS_KEY_SECRET")
        .or_else(|_| std::env::var("AWS_SECRET_ACCESS_KEY"))
        .map_err(|_| "set OSS_ACCESS_KEY_SECRET (or AWS_SECRET_ACCESS_KEY)".to_owned())?;
    let config = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(args.region.clone()))
        .endpoint_url(&args.endpoint)
        .force_path_style(true)
        .credentials_provider(Credentials::new(id, secret, None, None, "bench"))
        .build();
    Ok(aws_sdk_s3::Client::from_conf(config))
}

async fn list(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    prefix: &str,
) -> Result<Vec<(String, u64, Option<SystemTime>)>, String> {
    let objects = actors::store::list_objects(client, bucket, prefix, None)
        .await
        .map_err(|error| {
            format!(
                "listing s3://{bucket}/{prefix}: {}",
                aws_sdk_s3::error::DisplayErrorContext(error)
            )
        })?;
    Ok(objects
        .into_iter()
        .filter_map(|object| {
            Some((
                object.key?,
                object.size.unwrap_or(0).max(0) as u64,
                object
                    .last_modified
                    .and_then(|at| SystemTime::try_from(at).ok()),
            ))
        })
        .collect())
}

pub fn run(args: &WatchArgs) -> Result<WatchSummary, String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|error| error.to_string())?;
    runtime.block_on(watch(args))
}

async fn watch(args: &WatchArgs) -> Result<WatchSummary, String> {
    let client = s3_client(args)?;
    let (start, start_wall) = (Instant::now(), SystemTime::now());
    let deadline = start + Duration::from_secs(args.timeout_s);
    let pid = args.pid.map(|pid| pid.to_string());
    let mut objects: HashMap<String, SeenObject> = HashMap::new();
    let mut expected: Option<BTreeMap<i32, Vec<[i64; 2]>>> = None;
    let mut assigned_at: Option<Instant> = None;
    let mut connector: Option<ProcStats> = None;
    let mut samples: BTreeMap<u64, ProcStats> = BTreeMap::new();
    let mut last_stored = start;
    let others_before: Vec<(String, String, f64)> = args
        .other_pids
        .iter()
        .map(|(name, pid)| {
            let cpu = proc_stats(pid).map_or(0.0, |stats| stats.cpu_seconds);
            (name.clone(), pid.clone(), cpu)
        })
        .collect();
    let mut others_cpu_s = BTreeMap::new();
    let mut complete = false;
    while Instant::now() < deadline {
        let polled_at = Instant::now();
        if expected.is_none() {
            if let Ok(text) = std::fs::read_to_string(&args.produced) {
                // The file may be half written: retry on the next poll.
                if let Ok(produced) = serde_json::from_str::<Produced>(&text) {
                    expected = Some(
                        produced
                            .offsets
                            .into_iter()
                            .filter_map(|(p, r)| Some((p.parse().ok()?, r)))
                            .collect(),
                    );
                }
            }
        }
        if assigned_at.is_none() {
            if let Some(log) = &args.connector_log {
                // The log line's own timestamp, not the time this poll saw it.
                assigned_at = std::fs::read_to_string(log)
                    .ok()
                    .and_then(|text| logged_at(&text, "partitions assigned"))
                    .map(|at| instant_at(at, start, start_wall));
            }
        }
        let listing = list(&client, &args.bucket, &args.prefix).await?;
        let listed_at = SystemTime::now();
        for (key, size, modified) in listing {
            if objects.contains_key(&key) {
                continue;
            }
            let Some((partition, first, last)) = key.strip_prefix(&args.prefix).and_then(parse_key)
            else {
                continue;
            };
            let stored = match (args.stored_time, modified) {
                (StoredTime::LastModified, Some(modified)) => modified,
                _ => listed_at,
            };
            let stored_at = instant_at(stored, start, start_wall);
            last_stored = last_stored.max(stored_at);
            objects.insert(
                key,
                SeenObject {
                    partition,
                    first,
                    last,
                    size,
                    stored_ms: millis(stored),
                    stored_s: stored_at.saturating_duration_since(start).as_secs(),
                    stored_at,
                },
            );
        }
        if let Some(pid) = &pid {
            if let Some(stats) = proc_stats(pid) {
                connector = Some(stats);
                samples.insert(Instant::now().duration_since(start).as_secs(), stats);
            }
        }
        for (name, pid, before) in &others_before {
            if let Some(stats) = proc_stats(pid) {
                others_cpu_s.insert(name.clone(), stats.cpu_seconds - before);
            }
        }
        if expected
            .as_ref()
            .is_some_and(|expected| covered(expected, &objects))
        {
            complete = true;
            break;
        }
        let next = polled_at + Duration::from_millis(args.poll_ms);
        tokio::time::sleep_until(next.into()).await;
    }
    let expected = expected.unwrap_or_default();

    // Read everything back: exactly-once check, payload bytes, latencies.
    let mut counts: HashMap<i32, (i64, Vec<u8>)> = HashMap::new();
    for (partition, ranges) in &expected {
        let low = ranges.iter().map(|r| r[0]).min().unwrap_or(0);
        let high = ranges.iter().map(|r| r[1]).max().unwrap_or(-1);
        let mut marks = vec![2u8; (high - low + 1).max(0) as usize];
        for [from, to] in ranges {
            for offset in *from..=*to {
                marks[(offset - low) as usize] = 0;
            }
        }
        // 0 = expected, not seen; 1 = seen once; 2 = not expected (gap); 3 = seen more than once.
        counts.insert(*partition, (low, marks));
    }
    let mut unexpected = 0u64;
    let mut latencies_us: Vec<u64> = Vec::new();
    let mut bins: BTreeMap<u64, (u64, u64, Vec<u64>)> = BTreeMap::new();
    let (mut payload_bytes, mut stored_records, mut object_bytes) = (0u64, 0u64, 0u64);
    // Records, payload bytes and the last stored time of the objects sealed by record count.
    let (mut full_records, mut full_bytes, mut full_last) = (0u64, 0u64, None::<Instant>);
    let mut keys: Vec<&String> = objects.keys().collect();
    keys.sort();
    for key in keys {
        let object = &objects[key];
        object_bytes += object.size;
        let body = client
            .get_object()
            .bucket(&args.bucket)
            .key(key)
            .send()
            .await
            .map_err(|error| {
                format!(
                    "get {key}: {}",
                    aws_sdk_s3::error::DisplayErrorContext(error)
                )
            })?;
        let bytes = body
            .body
            .collect()
            .await
            .map_err(|error| format!("read {key}: {error}"))?
            .into_bytes();
        // Any format the connector writes ([format]), told by the key's extension.
        let records = actors::encode::read::read_object(key, &bytes)
            .map_err(|error| format!("object {key}: {error}"))?;
        let bin = bins.entry(object.stored_s).or_default();
        let full = args
            .full_object_records
            .is_some_and(|n| object.last - object.first + 1 == n && records.len() as i64 == n);
        if full {
            full_records += records.len() as u64;
            full_last =
                Some(full_last.map_or(object.stored_at, |at: Instant| at.max(object.stored_at)));
        }
        for record in records {
            stored_records += 1;
            let size = record.value_size as u64 + record.key.as_ref().map_or(0, |k| k.len() as u64);
            payload_bytes += size;
            if full {
                full_bytes += size;
            }
            bin.0 += 1;
            bin.1 += size;
            if record.timestamp >= 0 {
                let latency = (object.stored_ms - record.timestamp).max(0) as u64 * 1000;
                latencies_us.push(latency);
                bin.2.push(latency);
            }
            let slot = counts.get_mut(&record.partition).and_then(|(low, marks)| {
                let index = usize::try_from(record.offset - *low).ok()?;
                marks.get_mut(index)
            });
            match slot {
                Some(mark @ 0) => *mark = 1,
                Some(mark @ 1) => *mark = 3,
                Some(3) => {}
                _ => unexpected += 1,
            }
        }
    }
    let (mut expected_count, mut stored, mut missing, mut duplicated) = (0u64, 0u64, 0u64, 0u64);
    for (_, marks) in counts.values() {
        for mark in marks {
            match mark {
                0 => missing += 1,
                1 => stored += 1,
                3 => {
                    stored += 1;
                    duplicated += 1
                }
                _ => continue,
            }
            expected_count += 1;
        }
    }
    let drain_elapsed = last_stored.saturating_duration_since(start);
    let series = bins
        .into_iter()
        .map(|(t_s, (records, bytes, mut latencies))| {
            let p = Percentiles::from_micros(&mut latencies);
            let sample = samples
                .range(..=t_s)
                .next_back()
                .map(|(_, s)| *s)
                .unwrap_or_default();
            Bin {
                t_s,
                records,
                payload_bytes: bytes,
                latency_p50_ms: p.p50_ms,
                latency_p99_ms: p.p99_ms,
                latency_max_ms: p.max_ms,
                connector_rss_mib: sample.rss_bytes as f64 / 1048576.0,
                connector_cpu_s: sample.cpu_seconds,
            }
        })
        .collect();
    Ok(WatchSummary {
        prefix: args.prefix.clone(),
        complete,
        objects: objects.len() as u64,
        object_bytes,
        drain_total: Throughput::new(stored_records, payload_bytes, drain_elapsed),
        drain_since_assignment: assigned_at.map(|at| {
            Throughput::new(
                stored_records,
                payload_bytes,
                last_stored.saturating_duration_since(at),
            )
        }),
        assigned_after_s: assigned_at.map(|at| at.duration_since(start).as_secs_f64()),
        drain_full_objects: full_last.map(|last| {
            let from = assigned_at.unwrap_or(start);
            Throughput::new(
                full_records,
                full_bytes,
                last.saturating_duration_since(from),
            )
        }),
        e2e_latency: Percentiles::from_micros(&mut latencies_us),
        stored_time: match args.stored_time {
            StoredTime::LastModified => {
                "LastModified in a LIST of the bucket (record timestamps are in ms)".to_owned()
            }
            StoredTime::FirstListed => format!(
                "first seen in a LIST of the bucket, polled every {} ms (record timestamps are in ms)",
                args.poll_ms
            ),
        },
        exactly_once: ExactlyOnce {
            expected: expected_count,
            stored,
            missing,
            duplicated,
            unexpected,
            ok: expected_count > 0 && missing == 0 && duplicated == 0 && unexpected == 0,
        },
        connector_cpu_s_per_million: connector
            .map(|c| c.cpu_seconds / (stored_records.max(1) as f64) * 1e6),
        connector,
        others_cpu_s,
        series,
    })
}
