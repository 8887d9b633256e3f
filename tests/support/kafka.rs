//! Kafka helpers on the stack's broker: producing records (with their delivery reports), reading
//! a topic back, committing and reading a group's offsets, describing, creating and deleting
//! topics, listing groups.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseRecord, Producer, ThreadedProducer};

use super::{unique, Stack};

/// `(partition, key, value)` of a record to produce.
pub type TestRecord = (i32, Option<Vec<u8>>, Option<Vec<u8>>);

/// `count` records for partition 0, keyed `k<i>` and valued `v<i>`, except at the indexes in
/// `bad`: a value that is not UTF-8 (`bad \xff`), which the JSON format cannot write, so the
/// failure policy acts on it.
pub fn records_with_bad_values(count: usize, bad: &[usize]) -> Vec<TestRecord> {
    (0..count)
        .map(|i| {
            let value = if bad.contains(&i) {
                b"bad \xff".to_vec()
            } else {
                format!("v{i}").into_bytes()
            };
            (0, Some(format!("k{i}").into_bytes()), Some(value))
        })
        .collect()
}

impl Stack {
    /// Produces records (in order) and returns them keyed by the `(partition, offset)` the
    /// broker assigned, read from the delivery reports.
    pub fn produce(&self, topic: &str, records: &[TestRecord]) -> BTreeMap<(i32, i64), Produced> {
        self.produce_with_headers(topic, records, |_| Vec::new())
    }

    /// Like [`Stack::produce`], with `headers(index)` as each record's headers.
    pub fn produce_with_headers(
        &self,
        topic: &str,
        records: &[TestRecord],
        headers: impl Fn(usize) -> Vec<(String, Option<Vec<u8>>)>,
    ) -> BTreeMap<(i32, i64), Produced> {
        self.produce_with(topic, records, headers, false, None)
    }

    /// Like [`Stack::produce`], one record per batch. tansu 0.6.0 answers a fetch that starts
    /// inside a record batch with the *next* batch, so a consumer resuming from a committed
    /// offset in the middle of a batch would never see the rest of it (a broker bug, not ours);
    /// tests that restart mid-stream produce this way.
    pub fn produce_one_per_batch(
        &self,
        topic: &str,
        records: &[TestRecord],
    ) -> BTreeMap<(i32, i64), Produced> {
        self.produce_with(topic, records, |_| Vec::new(), true, None)
    }

    /// Like [`Stack::produce_one_per_batch`], with `timestamp(index)` as each record's
    /// timestamp (milliseconds since the epoch) instead of "now".
    pub fn produce_one_per_batch_at(
        &self,
        topic: &str,
        records: &[TestRecord],
        timestamp: &dyn Fn(usize) -> i64,
    ) -> BTreeMap<(i32, i64), Produced> {
        self.produce_with(topic, records, |_| Vec::new(), true, Some(timestamp))
    }

    /// Like [`Stack::produce_with_headers`], one record per batch if `one_per_batch` (see
    /// [`Stack::produce_one_per_batch`]).
    pub fn produce_with(
        &self,
        topic: &str,
        records: &[TestRecord],
        headers: impl Fn(usize) -> Vec<(String, Option<Vec<u8>>)>,
        one_per_batch: bool,
        timestamp: Option<&dyn Fn(usize) -> i64>,
    ) -> BTreeMap<(i32, i64), Produced> {
        use rdkafka::message::{Header, OwnedHeaders};
        let producer: ThreadedProducer<Capture> = ClientConfig::new()
            .set(
                "batch.num.messages",
                if one_per_batch { "1" } else { "10000" },
            )
            .set("bootstrap.servers", self.bootstrap())
            .set("linger.ms", "5")
            .set("acks", "all")
            .create_with_context(Capture::default())
            .expect("producer");
        let base_ts = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
        let timestamp_of = |index: usize| match timestamp {
            Some(timestamp) => timestamp(index),
            None => base_ts + index as i64,
        };
        for (index, (partition, key, value)) in records.iter().enumerate() {
            let mut record: BaseRecord<'_, [u8], [u8], Box<usize>> =
                BaseRecord::with_opaque_to(topic, Box::new(index))
                    .partition(*partition)
                    .timestamp(timestamp_of(index));
            if let Some(key) = key {
                record = record.key(key.as_slice());
            }
            if let Some(value) = value {
                record = record.payload(value.as_slice());
            }
            let record_headers = headers(index);
            if !record_headers.is_empty() {
                let mut owned = OwnedHeaders::new();
                for (name, value) in &record_headers {
                    owned = owned.insert(Header {
                        key: name.as_str(),
                        value: value.as_deref(),
                    });
                }
                record = record.headers(owned);
            }
            let mut pending = record;
            loop {
                match producer.send(pending) {
                    Ok(()) => break,
                    Err((
                        rdkafka::error::KafkaError::MessageProduction(
                            rdkafka::types::RDKafkaErrorCode::QueueFull,
                        ),
                        back,
                    )) => {
                        pending = back;
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    Err((error, _)) => panic!("enqueue record: {error}"),
                }
            }
        }
        producer.flush(Duration::from_secs(60)).expect("flush");
        let delivered = std::mem::take(&mut *producer.context().0.lock().unwrap());
        assert_eq!(delivered.len(), records.len(), "every record delivered");
        delivered
            .into_iter()
            .map(|(index, partition, offset)| {
                let (expected_partition, key, value) = &records[index];
                assert_eq!(partition, *expected_partition);
                (
                    (partition, offset),
                    Produced {
                        key: key.clone(),
                        value: value.clone(),
                        timestamp: timestamp_of(index),
                    },
                )
            })
            .collect()
    }

    /// Commits `offset` for `topic`/`partition` in `group`, as if its member had (for tests that
    /// simulate a crash before the connector's commit).
    pub fn commit(&self, group: &str, topic: &str, partition: i32, offset: i64) {
        use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
        use rdkafka::{Offset, TopicPartitionList};
        let consumer: BaseConsumer = self
            .client_config()
            .set("group.id", group)
            .create()
            .unwrap();
        let mut list = TopicPartitionList::new();
        list.add_partition_offset(topic, partition, Offset::Offset(offset))
            .unwrap();
        consumer.commit(&list, CommitMode::Sync).expect("commit");
    }

    /// The offsets committed by a consumer group, per partition.
    pub fn committed(&self, group: &str, topic: &str, partitions: i32) -> BTreeMap<i32, i64> {
        use rdkafka::consumer::{BaseConsumer, Consumer};
        use rdkafka::{Offset, TopicPartitionList};
        let consumer: BaseConsumer = self
            .client_config()
            .set("group.id", group)
            .create()
            .unwrap();
        let mut list = TopicPartitionList::new();
        for partition in 0..partitions {
            list.add_partition(topic, partition);
        }
        let committed = consumer
            .committed_offsets(list, Duration::from_secs(10))
            .unwrap();
        committed
            .elements()
            .iter()
            .filter_map(|element| match element.offset() {
                Offset::Offset(offset) => Some((element.partition(), offset)),
                _ => None,
            })
            .collect()
    }

    /// Every record of `topic` (all partitions, from the start until nothing new arrives for a
    /// second). Not by the high watermarks: tansu's are not reliable for multi-record batches.
    pub fn read_topic(&self, topic: &str) -> Vec<Consumed> {
        use rdkafka::consumer::{BaseConsumer, Consumer};
        use rdkafka::message::Headers;
        use rdkafka::{Message, Offset, TopicPartitionList};
        let consumer: BaseConsumer = self
            .client_config()
            .set("group.id", unique("reader"))
            .set("enable.auto.commit", "false")
            .set("fetch.wait.max.ms", "10")
            .create()
            .unwrap();
        let metadata = consumer
            .fetch_metadata(Some(topic), Duration::from_secs(10))
            .unwrap();
        let partitions = metadata.topics()[0].partitions().len() as i32;
        let mut list = TopicPartitionList::new();
        for partition in 0..partitions {
            list.add_partition_offset(topic, partition, Offset::Beginning)
                .unwrap();
        }
        let mut out = Vec::new();
        if partitions == 0 {
            return out;
        }
        consumer.assign(&list).unwrap();
        let mut last_seen = Instant::now();
        while last_seen.elapsed() < Duration::from_secs(1) {
            let Some(message) = consumer.poll(Duration::from_millis(100)) else {
                continue;
            };
            let message = message.expect("reading a topic");
            last_seen = Instant::now();
            let headers = message
                .headers()
                .map(|headers| {
                    headers
                        .iter()
                        .map(|h| (h.key.to_owned(), h.value.map(<[u8]>::to_vec)))
                        .collect()
                })
                .unwrap_or_default();
            out.push(Consumed {
                partition: message.partition(),
                offset: message.offset(),
                key: message.key().map(<[u8]>::to_vec),
                value: message.payload().map(<[u8]>::to_vec),
                headers,
            });
        }
        out
    }

    /// Partition count of a topic, `None` if it does not exist.
    pub fn topic_partitions(&self, topic: &str) -> Option<usize> {
        use rdkafka::consumer::{BaseConsumer, Consumer};
        let consumer: BaseConsumer = self.client_config().create().unwrap();
        let metadata = consumer
            .fetch_metadata(None, Duration::from_secs(10))
            .unwrap();
        metadata
            .topics()
            .iter()
            .find(|t| t.name() == topic && t.error().is_none())
            .map(|t| t.partitions().len())
    }

    /// One config value of a topic, as the broker describes it.
    pub fn topic_config(&self, topic: &str, name: &str) -> Option<String> {
        use rdkafka::admin::{AdminClient, AdminOptions, ResourceSpecifier};
        let admin: AdminClient<rdkafka::client::DefaultClientContext> =
            self.client_config().create().unwrap();
        self.runtime.block_on(async {
            let described = admin
                .describe_configs(&[ResourceSpecifier::Topic(topic)], &AdminOptions::new())
                .await
                .unwrap();
            let config = described.into_iter().next().unwrap().ok()?;
            config
                .get(name)
                .and_then(|entry| entry.value.clone())
                .map(|value| value.trim_matches('"').to_owned())
        })
    }

    /// Consumer groups the broker knows.
    pub fn groups(&self) -> Vec<String> {
        use rdkafka::consumer::{BaseConsumer, Consumer};
        let consumer: BaseConsumer = self.client_config().create().unwrap();
        let groups = consumer
            .fetch_group_list(None, Duration::from_secs(10))
            .unwrap();
        groups
            .groups()
            .iter()
            .map(|group| group.name().to_owned())
            .collect()
    }

    /// Creates a topic with configs (`cleanup.policy=compact`, ...).
    pub fn create_topic_with(&self, topic: &str, partitions: i32, configs: &[(&str, &str)]) {
        use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
        let admin: AdminClient<rdkafka::client::DefaultClientContext> =
            self.client_config().create().unwrap();
        let mut new_topic = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
        for (key, value) in configs {
            new_topic = new_topic.set(key, value);
        }
        self.runtime.block_on(async {
            let results = admin
                .create_topics(&[new_topic], &AdminOptions::new())
                .await
                .unwrap();
            results.into_iter().next().unwrap().expect("creating topic");
        });
    }
}

impl Stack {
    /// Deletes a topic and waits until the broker no longer lists it (e.g. to recreate it with
    /// the same name: its offsets start at 0 again).
    pub fn delete_topic(&self, topic: &str) {
        use rdkafka::admin::{AdminClient, AdminOptions};
        let admin: AdminClient<rdkafka::client::DefaultClientContext> =
            self.client_config().create().unwrap();
        self.runtime.block_on(async {
            let results = admin
                .delete_topics(&[topic], &AdminOptions::new())
                .await
                .unwrap();
            results.into_iter().next().unwrap().expect("deleting topic");
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.topic_partitions(topic).is_some() {
            assert!(
                Instant::now() < deadline,
                "topic {topic} still listed 30 s after its deletion"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Records `(index, partition, offset)` of every successful delivery; panics on a failed one.
#[derive(Default)]
pub struct Capture(std::sync::Mutex<Vec<(usize, i32, i64)>>);

impl rdkafka::ClientContext for Capture {}

impl rdkafka::producer::ProducerContext for Capture {
    type DeliveryOpaque = Box<usize>;

    fn delivery(&self, result: &rdkafka::message::DeliveryResult<'_>, index: Box<usize>) {
        use rdkafka::Message;
        match result {
            Ok(message) => {
                self.0
                    .lock()
                    .unwrap()
                    .push((*index, message.partition(), message.offset()))
            }
            Err((error, _)) => panic!("record {index} not delivered: {error}"),
        }
    }
}

/// A record read back from a topic.
#[derive(Debug, Clone, PartialEq)]
pub struct Consumed {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

impl Consumed {
    /// The value of the first header named `name`, as text.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .find(|(key, _)| key == name)
            .and_then(|(_, value)| value.as_ref())
            .map(|value| String::from_utf8_lossy(value).into_owned())
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Produced {
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub timestamp: i64,
}

impl Stack {
    /// Produces to `topic` from a background thread until [`Producing::stop`]: one record per
    /// batch (tests/README.md), `per_second` records a second in total, round robin over
    /// `partitions`, each value naming its partition and sequence number.
    pub fn produce_continuously(&self, topic: &str, partitions: i32, per_second: u32) -> Producing {
        self.produce_continuously_sized(topic, partitions, per_second, 0)
    }

    /// Like [`Stack::produce_continuously`], each value padded to at least `value_bytes`.
    pub fn produce_continuously_sized(
        &self,
        topic: &str,
        partitions: i32,
        per_second: u32,
        value_bytes: usize,
    ) -> Producing {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let sent = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (bootstrap, topic) = (self.bootstrap(), topic.to_owned());
        let thread = {
            let (stop, sent) = (stop.clone(), sent.clone());
            std::thread::Builder::new()
                .name("producing".into())
                .spawn(move || {
                    produce_loop(
                        &bootstrap,
                        &topic,
                        (partitions, per_second, value_bytes),
                        &stop,
                        &sent,
                    )
                })
                .unwrap()
        };
        Producing {
            stop,
            sent,
            thread: Some(thread),
        }
    }
}

/// A background producer started by [`Stack::produce_continuously`].
pub struct Producing {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    sent: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    thread: Option<std::thread::JoinHandle<BTreeMap<(i32, i64), Produced>>>,
}

impl Producing {
    /// Records handed to the producer so far.
    pub fn sent(&self) -> usize {
        self.sent.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Waits until `n` records were handed to the producer.
    pub fn wait_sent(&self, n: usize, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.sent() < n {
            assert!(
                Instant::now() < deadline,
                "{} of {n} records sent",
                self.sent()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops producing, waits for every delivery report and returns the records by
    /// `(partition, offset)`.
    pub fn stop(mut self) -> BTreeMap<(i32, i64), Produced> {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        match self.thread.take().unwrap().join() {
            Ok(produced) => produced,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }
}

impl Drop for Producing {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// `load`: partitions, records per second, least value size.
fn produce_loop(
    bootstrap: &str,
    topic: &str,
    (partitions, per_second, value_bytes): (i32, u32, usize),
    stop: &std::sync::atomic::AtomicBool,
    sent: &std::sync::atomic::AtomicUsize,
) -> BTreeMap<(i32, i64), Produced> {
    use std::sync::atomic::Ordering;
    let producer: ThreadedProducer<Capture> = ClientConfig::new()
        .set("batch.num.messages", "1")
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", "0")
        .set("acks", "all")
        .create_with_context(Capture::default())
        .expect("producer");
    let run = unique("run");
    let start = Instant::now();
    let mut records: Vec<(TestRecord, i64)> = Vec::new();
    while !stop.load(Ordering::SeqCst) {
        // Paced by the clock, so a slow moment is caught up instead of lowering the rate.
        let due = (start.elapsed().as_secs_f64() * f64::from(per_second)) as usize + 1;
        while records.len() < due {
            let index = records.len();
            let partition = index as i32 % partitions;
            let key = format!("{partition}:{index}").into_bytes();
            let mut value = format!("{run} partition {partition} seq {index}");
            if value.len() < value_bytes {
                value.push(' ');
                value.extend(std::iter::repeat_n(
                    'v',
                    value_bytes.saturating_sub(value.len()),
                ));
            }
            let value = value.into_bytes();
            let timestamp = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis() as i64;
            let mut pending: BaseRecord<'_, [u8], [u8], Box<usize>> =
                BaseRecord::with_opaque_to(topic, Box::new(index))
                    .partition(partition)
                    .timestamp(timestamp)
                    .key(key.as_slice())
                    .payload(value.as_slice());
            loop {
                match producer.send(pending) {
                    Ok(()) => break,
                    Err((
                        rdkafka::error::KafkaError::MessageProduction(
                            rdkafka::types::RDKafkaErrorCode::QueueFull,
                        ),
                        back,
                    )) => {
                        pending = back;
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    Err((error, _)) => panic!("enqueue record: {error}"),
                }
            }
            records.push(((partition, Some(key), Some(value)), timestamp));
            sent.store(records.len(), Ordering::SeqCst);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    producer.flush(Duration::from_secs(60)).expect("flush");
    let delivered = std::mem::take(&mut *producer.context().0.lock().unwrap());
    assert_eq!(delivered.len(), records.len(), "every record delivered");
    delivered
        .into_iter()
        .map(|(index, partition, offset)| {
            let ((_, key, value), timestamp) = &records[index];
            (
                (partition, offset),
                Produced {
                    key: key.clone(),
                    value: value.clone(),
                    timestamp: *timestamp,
                },
            )
        })
        .collect()
}
