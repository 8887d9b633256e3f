//! The Kafka side of reconcile (blocking librdkafka calls): the topic's partitions and
//! watermarks, the group's committed offsets, the records routed to the error topics, and with
//! `--deep` which offsets the broker still has.
//!
//! One assign-only consumer with the connector's group id and properties: it never subscribes,
//! so it never joins the group or disturbs a running connector, and it never commits.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use actors::error::ErrorCode;
use actors::settings::SourceSettings;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Headers};
use rdkafka::{Message, Offset, TopicPartitionList};

use super::compare::{BrokerScan, Routed};
use super::objects::Print;
use super::ranges::Offsets;

/// Metadata, committed-offset and watermark requests.
const TIMEOUT: Duration = Duration::from_secs(15);
/// A read that gets no record and no end-of-partition for this long has failed.
const STALL: Duration = Duration::from_secs(30);

pub struct Kafka {
    consumer: BaseConsumer,
    servers: String,
}

impl Kafka {
    pub fn connect(source: &SourceSettings) -> Result<Kafka, String> {
        let mut config = actors::kafka::consumer_base_config(source);
        config
            .set("group.id", &source.group_id)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            // The reads stop at the end of each partition, which only this tells reliably (the
            // last offsets of a compacted or transactional partition may hold no record).
            .set("enable.partition.eof", "true")
            .set("auto.offset.reset", "earliest");
        // A static member id would fence the running connector's member if this consumer ever
        // joined; it never does, but it has no use for one either.
        config.remove("group.instance.id");
        let consumer = config
            .create()
            .map_err(|error| format!("kafka client configuration rejected: {error}"))?;
        Ok(Kafka {
            consumer,
            servers: source.bootstrap_servers.clone(),
        })
    }

    /// The topic's partitions; `Ok(None)` when the topic does not exist.
    pub fn partitions(&self, topic: &str) -> Result<Option<Vec<i32>>, String> {
        let metadata = self
            .consumer
            .fetch_metadata(Some(topic), TIMEOUT)
            .map_err(|error| {
                format!(
                    "cannot read metadata of topic `{topic}` from {}: {error}",
                    self.servers
                )
            })?;
        Ok(metadata
            .topics()
            .iter()
            .find(|found| found.name() == topic && found.error().is_none())
            .map(|found| found.partitions().iter().map(|p| p.id()).collect())
            .filter(|partitions: &Vec<i32>| !partitions.is_empty()))
    }

    /// The group's committed offset per partition (`None`: nothing committed).
    pub fn committed(
        &self,
        group: &str,
        topic: &str,
        partitions: &[i32],
    ) -> Result<BTreeMap<i32, Option<i64>>, String> {
        let mut list = TopicPartitionList::new();
        for &partition in partitions {
            list.add_partition(topic, partition);
        }
        let committed = self
            .consumer
            .committed_offsets(list, TIMEOUT)
            .map_err(|error| {
                format!("cannot read the committed offsets of group `{group}`: {error}")
            })?;
        Ok(committed
            .elements()
            .iter()
            .map(|element| {
                let offset = match element.offset() {
                    Offset::Offset(offset) => Some(offset),
                    _ => None,
                };
                (element.partition(), offset)
            })
            .collect())
    }

    /// Low and high watermark per partition.
    pub fn watermarks(
        &self,
        topic: &str,
        partitions: &[i32],
    ) -> Result<BTreeMap<i32, (i64, i64)>, String> {
        partitions
            .iter()
            .map(|&partition| {
                self.consumer
                    .fetch_watermarks(topic, partition, TIMEOUT)
                    .map(|marks| (partition, marks))
                    .map_err(|error| {
                        format!("cannot read the offsets of topic `{topic}` partition {partition}: {error}")
                    })
            })
            .collect()
    }

    /// Every record of `source_topic` in the error topics `names` (by their
    /// `__connect.errors.topic` header), read from the start to their current end. Topics that
    /// do not exist are skipped with a note: nothing was routed there.
    pub fn routed(
        &self,
        names: &[String],
        source_topic: &str,
    ) -> Result<(Vec<Routed>, Vec<String>), String> {
        let mut routed = Vec::new();
        let mut notes = Vec::new();
        for name in names {
            let Some(partitions) = self.partitions(name)? else {
                notes.push(format!(
                    "error topic `{name}` does not exist: nothing was routed there"
                ));
                continue;
            };
            // To their end as the broker reports it while reading, not to the high watermarks:
            // tansu's are too low after multi-record batches (which the connector's producer
            // writes), and an error topic is small.
            let ranges: BTreeMap<i32, (i64, Option<i64>)> = partitions
                .iter()
                .map(|&partition| (partition, (0, None)))
                .collect();
            self.read(name, &ranges, |message| {
                if let Some(record) = routed_record(name, source_topic, message) {
                    routed.push(record);
                }
            })?;
        }
        Ok((routed, notes))
    }

    /// Reads `topic` over `ranges` (`partition -> (from, to)`): which offsets the broker
    /// returns, and the records at the `wanted` offsets.
    pub fn scan(
        &self,
        topic: &str,
        ranges: &BTreeMap<i32, (i64, i64)>,
        wanted: &BTreeMap<i32, BTreeSet<i64>>,
    ) -> Result<BTreeMap<i32, BrokerScan>, String> {
        let mut present: BTreeMap<i32, Vec<(i64, i64)>> = BTreeMap::new();
        let mut scans: BTreeMap<i32, BrokerScan> = ranges
            .iter()
            .map(|(&partition, &(from, to))| {
                (
                    partition,
                    BrokerScan {
                        from,
                        to,
                        ..BrokerScan::default()
                    },
                )
            })
            .collect();
        let bounded: BTreeMap<i32, (i64, Option<i64>)> = ranges
            .iter()
            .map(|(&partition, &(from, to))| (partition, (from, Some(to))))
            .collect();
        self.read(topic, &bounded, |message| {
            let (partition, offset) = (message.partition(), message.offset());
            // Offsets arrive in order per partition: extend the last range or start one.
            let ranges = present.entry(partition).or_default();
            match ranges.last_mut() {
                Some(last) if last.1 + 1 == offset => last.1 = offset,
                _ => ranges.push((offset, offset)),
            }
            if wanted
                .get(&partition)
                .is_some_and(|offsets| offsets.contains(&offset))
            {
                let print = Print::of(
                    offset,
                    message.timestamp().to_millis().unwrap_or(-1),
                    message.key(),
                    message.payload(),
                );
                if let Some(scan) = scans.get_mut(&partition) {
                    scan.prints.insert(offset, print);
                }
            }
        })?;
        for (partition, ranges) in present {
            if let Some(scan) = scans.get_mut(&partition) {
                scan.present = Offsets::from_ranges(ranges);
            }
        }
        Ok(scans)
    }

    /// Reads each partition of `topic` from `from` until its end: offset `to - 1` read, or the
    /// broker says there is nothing more (end of partition); `each` sees the records before
    /// `to` (all of them when `to` is `None`).
    fn read(
        &self,
        topic: &str,
        ranges: &BTreeMap<i32, (i64, Option<i64>)>,
        mut each: impl FnMut(&BorrowedMessage<'_>),
    ) -> Result<(), String> {
        let mut list = TopicPartitionList::new();
        // partition -> (next offset expected, end)
        let mut open: BTreeMap<i32, (i64, i64)> = BTreeMap::new();
        for (&partition, &(from, to)) in ranges {
            let to = to.unwrap_or(i64::MAX);
            if from < to {
                list.add_partition_offset(topic, partition, Offset::Offset(from))
                    .map_err(|error| format!("cannot read topic `{topic}`: {error}"))?;
                open.insert(partition, (from, to));
            }
        }
        if open.is_empty() {
            return Ok(());
        }
        self.consumer
            .assign(&list)
            .map_err(|error| format!("cannot read topic `{topic}`: {error}"))?;
        let mut progress = Instant::now();
        let result = loop {
            if open.is_empty() {
                break Ok(());
            }
            match self.consumer.poll(Duration::from_millis(200)) {
                Some(Ok(message)) => {
                    progress = Instant::now();
                    let partition = message.partition();
                    if message.topic() != topic {
                        continue;
                    }
                    let Some((next, to)) = open.get_mut(&partition) else {
                        continue;
                    };
                    if message.offset() < *to {
                        each(&message);
                    }
                    *next = message.offset() + 1;
                    if *next >= *to {
                        open.remove(&partition);
                    }
                }
                Some(Err(KafkaError::PartitionEOF(partition))) => {
                    progress = Instant::now();
                    open.remove(&partition);
                }
                Some(Err(error)) => break Err(format!("cannot read topic `{topic}`: {error}")),
                None if progress.elapsed() > STALL => {
                    let (partition, (next, _)) =
                        open.iter().next().expect("a partition is still open");
                    break Err(format!(
                        "reading topic `{topic}` partition {partition} stalled at offset {next}: \
                         neither a record nor its end from {} for {STALL:?}",
                        self.servers
                    ));
                }
                None => {}
            }
        };
        let _ = self.consumer.unassign();
        result
    }
}

/// The record as a [`Routed`] if its `__connect.errors.*` headers name `source_topic`.
fn routed_record(
    error_topic: &str,
    source_topic: &str,
    message: &BorrowedMessage<'_>,
) -> Option<Routed> {
    let headers = message.headers()?;
    let header = |name: &str| {
        headers
            .iter()
            .find(|header| header.key == name)
            .and_then(|header| header.value)
            .and_then(|value| std::str::from_utf8(value).ok())
    };
    if header("__connect.errors.topic")? != source_topic {
        return None;
    }
    Some(Routed {
        partition: header("__connect.errors.partition")?.parse().ok()?,
        offset: header("__connect.errors.offset")?.parse().ok()?,
        topic: error_topic.to_owned(),
        location: format!(
            "{error_topic}[{}]@{}",
            message.partition(),
            message.offset()
        ),
        oversize: header("kafka-oss-sink.error.code") == Some(ErrorCode::RecordOversize.as_str()),
    })
}
