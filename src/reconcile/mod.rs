//! `kafka-oss-sink reconcile`: checks that the bucket holds every committed record exactly once.
//!
//! Per partition of the config's topic it compares three things:
//! - the bucket: every object under `{key_prefix}{topic}/`, its `kos-*` user metadata (which
//!   offsets it holds: `[kos-first-offset, kos-last-offset]` minus `kos-routed`) and, with
//!   `--deep`, its body (the offsets themselves);
//! - the error topics (dead-letter and abnormal-data): records whose `__connect.errors.topic`
//!   header names the topic were routed there instead of the bucket;
//! - the broker: the group's committed offset and the partition's watermarks, and with `--deep`
//!   the records themselves (which offsets still exist, and whether the objects' first and last
//!   records are the topic's).
//!
//! It reports offsets below the committed offset that are in neither the bucket nor an error
//! topic (missing), offsets stored twice (duplicated), objects whose key ranges intersect
//! (overlapping), and objects that are not the connector's (foreign). See [`compare`] for the
//! rules, which are pure and unit-tested; `bucket.rs` and `kafka.rs` only read.
//!
//! The reads are ordered so that a connector running meanwhile cannot cause a false finding:
//! committed offsets first (everything below them was stored or routed before they were
//! committed), then the bucket, then the error topics, then the watermarks (at least as high as
//! any stored offset).

mod bucket;
pub mod compare;
mod kafka;
pub mod objects;
pub mod ranges;
mod render;

use std::collections::{BTreeMap, BTreeSet};

use actors::settings::PipelineSettings;
use actors::store::{ObjectStore, S3Store};

use compare::{Inputs, PartitionOffsets, Report};
use objects::parse_object_key;

/// The command line's choices.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Read every object's body and the topic's records.
    pub deep: bool,
    /// Look for missing offsets from here instead of each partition's low watermark.
    pub from_offset: Option<i64>,
    /// Objects without `kos-format` metadata (written before object metadata) are not foreign.
    pub accept_unlabelled: bool,
    pub json: bool,
}

/// What a reconcile run found, printed.
pub struct Outcome {
    pub output: String,
    pub clean: bool,
}

/// Reads the bucket, the error topics and the broker, compares them and renders the report.
/// `Err`: something could not be read (the message names it; it never holds a secret).
pub fn run(settings: &PipelineSettings, options: Options) -> Result<Outcome, String> {
    let source = &settings.source;
    let topic = source.topic.as_str();
    let folder = format!("{}{topic}/", settings.sink.key_prefix);
    let kafka = kafka::Kafka::connect(source)?;
    let partitions = kafka.partitions(topic)?.ok_or_else(|| {
        format!(
            "topic `{topic}` does not exist on {}",
            source.bootstrap_servers
        )
    })?;
    let committed = kafka.committed(&source.group_id, topic, &partitions)?;

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|error| format!("cannot start the async runtime: {error}"))?;
    let store = S3Store::new(&settings.sink);
    let objects = runtime.block_on(async {
        store.probe().await.map_err(|error| error.to_string())?;
        bucket::read(&store, &folder, options.deep).await
    })?;

    let mut error_topics = vec![settings.resources.dead_letter_topic.clone()];
    if settings.resources.abnormal_topic != settings.resources.dead_letter_topic {
        error_topics.push(settings.resources.abnormal_topic.clone());
    }
    let (routed, notes) = kafka.routed(&error_topics, topic)?;
    let watermarks = kafka.watermarks(topic, &partitions)?;
    let partitions: BTreeMap<i32, PartitionOffsets> = watermarks
        .iter()
        .map(|(&partition, &(low, high))| {
            let committed = committed.get(&partition).copied().flatten();
            (
                partition,
                PartitionOffsets {
                    low,
                    high,
                    committed,
                },
            )
        })
        .collect();

    let scans = if options.deep {
        let mut wanted: BTreeMap<i32, BTreeSet<i64>> = BTreeMap::new();
        for object in &objects {
            if let Some((partition, first, last)) =
                parse_object_key(&settings.sink.key_template, &folder, topic, &object.key)
            {
                wanted.entry(partition).or_default().extend([first, last]);
            }
        }
        let ranges: BTreeMap<i32, (i64, i64)> = partitions
            .iter()
            .map(|(&partition, offsets)| {
                let start = options.from_offset.unwrap_or(offsets.low).max(offsets.low);
                (partition, (start, offsets.high))
            })
            .collect();
        kafka.scan(topic, &ranges, &wanted)?
    } else {
        BTreeMap::new()
    };

    let report: Report = compare::compare(&Inputs {
        topic: topic.to_owned(),
        folder: folder.clone(),
        template: settings.sink.key_template.clone(),
        partitions,
        objects,
        routed,
        scans,
        from_offset: options.from_offset,
        accept_unlabelled: options.accept_unlabelled,
        deep: options.deep,
    });
    let context = render::Context {
        topic,
        bucket: store.bucket(),
        folder: &folder,
        group: &source.group_id,
        notes: &notes,
    };
    let output = if options.json {
        format!("{}\n", render::json(&report, &context))
    } else {
        render::text(&report, &context)
    };
    Ok(Outcome {
        output,
        clean: report.is_clean(),
    })
}
