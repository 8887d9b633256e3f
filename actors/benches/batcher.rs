//! Per-record cost of a batcher actor: chunks of 4096 records sent to a real `Batcher` (actix
//! mailbox, encoding, sealing by `max_records`, handing objects to the upload queue, which a task
//! empties). `cargo bench -p kafka-oss-sink-actors --bench batcher`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use kafka_oss_sink_actors::batcher::{Batcher, BatcherContext};
use kafka_oss_sink_actors::buffer_pool::BufferPool;
use kafka_oss_sink_actors::kafka::OffsetStore;
use kafka_oss_sink_actors::key_template::KeyTemplate;
use kafka_oss_sink_actors::messages::{Records, ReportFailure, SealedObject};
use kafka_oss_sink_actors::metrics::PartitionMetrics;
use kafka_oss_sink_actors::record::RecordChunk;
use kafka_oss_sink_actors::settings::RollPolicy;
use kafka_oss_sink_actors::status::StatusBoard;
use kafka_oss_sink_actors::store::MemoryStore;
use kafka_oss_sink_actors::supervisor::policy::Disposition;

const CHUNK: usize = 4096;

/// Every benchmark record is valid: a failure report is a bug in the benchmark.
struct Supervisor;

impl Actor for Supervisor {
    type Context = Context<Self>;
}

impl Handler<ReportFailure> for Supervisor {
    type Result = Disposition;
    fn handle(&mut self, report: ReportFailure, _: &mut Context<Self>) -> Disposition {
        panic!("benchmark record failed: {}", report.failure.message());
    }
}

/// Stored offsets go nowhere (the driver thread's commit is not what is measured).
struct NoOffsets;

impl OffsetStore for NoOffsets {
    fn store(&self, _: &str, _: i32, _: i64) -> rdkafka::error::KafkaResult<()> {
        Ok(())
    }
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
    // The default key template, and one with the record timestamp's hour (its per-record cost:
    // the hour of each record; all records are in one hour, so no extra seals).
    let hourly = || {
        KeyTemplate::parse(
            "{topic}/{yyyy}{MM}{dd}{HH}/{partition}/{first}-{last}{ext}",
            "+08:00",
            None,
            "none",
        )
        .expect("valid")
    };
    for (name, size, template) in [
        ("100B", 100usize, KeyTemplate::default()),
        ("1KiB", 1024, KeyTemplate::default()),
        ("100B hourly template", 100, hourly()),
    ] {
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
                    let supervisor = Supervisor.start();
                    let context = BatcherContext {
                        topic: Arc::from("bench-topic"),
                        connector: Arc::from("c"),
                        key_prefix: Arc::from("bench/"),
                        key_template: Arc::new(template.clone()),
                        policy: RollPolicy {
                            max_records: 10_000,
                            max_bytes: 16 << 20,
                            max_interval: Duration::from_secs(3600),
                            seal_when_caught_up: true,
                        },
                        max_value_bytes: None,
                        format: Default::default(),
                        offsets: Arc::new(NoOffsets),
                        upload_queue: queue,
                        // Empty: the one recovery listing at the first chunk finds nothing.
                        store: Arc::new(MemoryStore::new("bench-bucket")),
                        supervisor: supervisor.recipient(),
                        buffers: BufferPool::new(),
                        cancel: Default::default(),
                        in_flight: Default::default(),
                        memory: kafka_oss_sink_actors::memory::MemoryBudget::unlimited(),
                        stream: None,
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
