//! Per-record cost of a batcher actor: chunks of 4096 records sent to a real `Batcher` (actix
//! mailbox, encoding, sealing by `max_records`, handing objects to the upload queue, which a task
//! empties). `cargo bench -p kafka-oss-sink-actors --bench batcher`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use kafka_oss_sink_actors::batcher::{Batcher, BatcherContext};
use kafka_oss_sink_actors::buffer_pool::BufferPool;
use kafka_oss_sink_actors::error_topics::ErrorTopics;
use kafka_oss_sink_actors::kafka::detached_consumer;
use kafka_oss_sink_actors::messages::{PartitionFailed, PartitionResumed, Records, SealedObject};
use kafka_oss_sink_actors::metrics::PartitionMetrics;
use kafka_oss_sink_actors::record::RecordChunk;
use kafka_oss_sink_actors::settings::{
    CreateMode, FailurePolicy, FailureSettings, ResourceSettings, RollPolicy,
};
use kafka_oss_sink_actors::status::StatusBoard;

const CHUNK: usize = 4096;

struct Supervisor;

impl Actor for Supervisor {
    type Context = Context<Self>;
}

impl Handler<PartitionFailed> for Supervisor {
    type Result = ();
    fn handle(&mut self, failed: PartitionFailed, _: &mut Context<Self>) {
        panic!("benchmark record failed: {}", failed.error);
    }
}

impl Handler<PartitionResumed> for Supervisor {
    type Result = ();
    fn handle(&mut self, _: PartitionResumed, _: &mut Context<Self>) {}
}

/// Error topics that are never written to (every benchmark record is valid).
fn unused_error_topics() -> ErrorTopics {
    let producer = rdkafka::ClientConfig::new()
        .set("log_level", "0")
        .create()
        .expect("producer");
    let resources = ResourceSettings {
        create: CreateMode::Automatic,
        offset_topic: "o".into(),
        offset_topic_partitions: 2,
        config_topic: "c".into(),
        status_topic: "s".into(),
        status_topic_partitions: 1,
        abnormal_topic: "e".into(),
        dead_letter_topic: "e".into(),
        error_topic_partitions: 1,
        replication_factor: -1,
    };
    ErrorTopics::new(producer, "bench", &resources)
}

fn chunk(first_offset: i64, value: &[u8]) -> RecordChunk {
    let mut chunk = RecordChunk::with_capacity(CHUNK, CHUNK * (value.len() + 16));
    for offset in first_offset..first_offset + CHUNK as i64 {
        let key = format!("key-{offset}");
        chunk.push(offset, 1_795_608_269_111, Some(key.as_bytes()), Some(value));
    }
    chunk
}

fn bench_batcher(c: &mut Criterion) {
    let mut group = c.benchmark_group("batcher");
    group.throughput(Throughput::Elements(CHUNK as u64));
    for (name, size) in [("100B", 100usize), ("1KiB", 1024)] {
        let value: Vec<u8> = (0..size).map(|i| b"abcdefghij"[i % 10]).collect();
        group.bench_function(name, |b| {
            b.iter_custom(|iterations| {
                let system = System::new();
                system.block_on(async {
                    let (queue, objects) = async_channel::bounded::<SealedObject>(4);
                    let drained = tokio::spawn(async move {
                        let mut records = 0usize;
                        while let Ok(object) = objects.recv().await {
                            records += object.records;
                        }
                        records
                    });
                    let consumer = detached_consumer("bench-topic").expect("consumer");
                    let supervisor = Supervisor.start();
                    let context = BatcherContext {
                        topic: Arc::from("bench-topic"),
                        key_prefix: Arc::from("bench/"),
                        policy: RollPolicy {
                            max_records: 10_000,
                            max_bytes: 16 << 20,
                            max_interval: Duration::from_secs(3600),
                            seal_when_caught_up: true,
                        },
                        failure: FailureSettings {
                            policy: FailurePolicy::Log,
                            max_value_bytes: None,
                        },
                        consumer,
                        upload_queue: queue,
                        error_topics: unused_error_topics(),
                        store: None,
                        supervisor: supervisor.clone().recipient(),
                        resumed: supervisor.recipient(),
                        buffers: BufferPool::new(),
                    };
                    let batcher = Batcher::new(
                        context,
                        0,
                        PartitionMetrics::new("bench-topic", 0),
                        StatusBoard::new("bench-topic"),
                    )
                    .start();
                    // Chunks are built outside the timed part.
                    let chunks: Vec<RecordChunk> = (0..iterations)
                        .map(|i| chunk(i as i64 * CHUNK as i64, &value))
                        .collect();
                    let start = Instant::now();
                    for chunk in chunks {
                        batcher.send(Records(chunk)).await.expect("batcher alive");
                    }
                    let elapsed = start.elapsed();
                    drop(batcher);
                    drop(drained);
                    elapsed
                })
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench_batcher);
criterion_main!(benches);
