//! Per-record cost of the encoder: JSON for 100 B and 1 KiB values, plain ASCII and with
//! characters that need escaping. `cargo bench -p kafka-oss-sink-actors --bench encode`.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use kafka_oss_sink_actors::encode::ObjectEncoder;
use kafka_oss_sink_actors::record::RecordChunk;

const RECORDS: usize = 4096;

fn chunk(value: &[u8]) -> RecordChunk {
    let mut chunk = RecordChunk::with_capacity(RECORDS, RECORDS * (value.len() + 16));
    for offset in 0..RECORDS as i64 {
        let key = format!("key-{offset}");
        chunk.push(
            offset,
            1_795_608_269_111 + offset,
            Some(key.as_bytes()),
            Some(value),
        );
    }
    chunk
}

fn ascii(size: usize) -> Vec<u8> {
    (0..size)
        .map(|i| b"abcdefghijklmnopqrstuvwxyz0123456789"[i % 36])
        .collect()
}

fn escaped(size: usize) -> Vec<u8> {
    // A JSON document as a value: quotes every few bytes, a newline per line.
    let line = "{\"id\": 12, \"name\": \"caf\u{e9}\"}\n";
    line.bytes().cycle().take(size).collect()
}

fn bench_encode(c: &mut Criterion) {
    let mut group = c.benchmark_group("encode");
    group.throughput(Throughput::Elements(RECORDS as u64));
    for (name, value) in [
        ("ascii-100B", ascii(100)),
        ("ascii-1KiB", ascii(1024)),
        ("escaped-100B", escaped(100)),
        ("escaped-1KiB", escaped(1024)),
    ] {
        let chunk = chunk(&value);
        group.bench_with_input(BenchmarkId::from_parameter(name), &chunk, |b, chunk| {
            b.iter(|| {
                let mut encoder = ObjectEncoder::new("bench-topic", 3, 1 << 20);
                for record in chunk.records() {
                    encoder.push(chunk, record).unwrap();
                }
                encoder.finish()
            })
        });
    }
    group.finish();

    // The consumer side: copying records into a chunk.
    let mut group = c.benchmark_group("chunk");
    group.throughput(Throughput::Elements(RECORDS as u64));
    let value = ascii(100);
    let keys: Vec<String> = (0..RECORDS).map(|i| format!("key-{i}")).collect();
    group.bench_function("push-100B", |b| {
        b.iter(|| {
            let mut chunk = RecordChunk::with_capacity(64, 0);
            for (offset, key) in keys.iter().enumerate() {
                chunk.push(offset as i64, 1, Some(key.as_bytes()), Some(&value));
            }
            chunk
        })
    });
    group.finish();
}

criterion_group!(benches, bench_encode);
criterion_main!(benches);
