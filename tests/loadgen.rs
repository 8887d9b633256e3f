//! The `loadgen` tool end to end against a real tansu broker: the records arrive with the
//! requested count, size and keys; the same seed gives the same records; a rate is kept.

mod support;
mod tool_bin;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use serde_json::Value;
use support::{unique, Stack};

/// `(partition, offset) -> (key, value)`.
type Topic = BTreeMap<(i32, i64), (Option<Vec<u8>>, Vec<u8>)>;

fn loadgen(stack: &Stack, topic: &str, args: &[&str]) -> Value {
    let json = stack.dir.join(format!("{topic}.json"));
    let output = Command::new(tool_bin::tool("loadgen"))
        .args(["--bootstrap", &stack.bootstrap(), "--topic", topic])
        .args(args)
        .arg("--json")
        .arg(&json)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "loadgen failed: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("records/s") && stdout.contains("produce latency"),
        "{stdout}"
    );
    serde_json::from_slice(&std::fs::read(json).unwrap()).unwrap()
}

fn read_topic(stack: &Stack, topic: &str, partitions: i32, count: usize) -> Topic {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", stack.bootstrap())
        .set("group.id", unique("loadgen-check"))
        .set("fetch.wait.max.ms", "10")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut list = TopicPartitionList::new();
    for partition in 0..partitions {
        list.add_partition_offset(topic, partition, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&list).unwrap();
    let mut records = Topic::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while records.len() < count && Instant::now() < deadline {
        if let Some(message) = consumer.poll(Duration::from_millis(100)) {
            let message = message.unwrap();
            records.insert(
                (message.partition(), message.offset()),
                (
                    message.key().map(<[u8]>::to_vec),
                    message.payload().unwrap_or_default().to_vec(),
                ),
            );
        }
    }
    // Anything beyond `count` would show up within a short extra wait.
    let extra_until = Instant::now() + Duration::from_millis(500);
    while Instant::now() < extra_until {
        if let Some(Ok(message)) = consumer.poll(Duration::from_millis(50)) {
            records.insert((message.partition(), message.offset()), (None, Vec::new()));
        }
    }
    records
}

#[test]
fn loadgen_produces_the_requested_records_repeatably() {
    let stack = Stack::start();
    let (a, b, c) = (unique("lg-a"), unique("lg-b"), unique("lg-c"));
    for topic in [&a, &b, &c] {
        stack.create_topic(topic, 3);
    }
    let args = [
        "--records",
        "300",
        "--value-size",
        "50",
        "--keys",
        "seq",
        "--seed",
        "7",
    ];
    let summary = loadgen(&stack, &a, &args);
    assert_eq!(summary["produced"]["records"], 300);
    assert_eq!(summary["errors"], 0);
    assert_eq!(summary["partitions"], 3);
    assert_eq!(summary["offsets"]["0"], serde_json::json!([[0, 99]]));
    loadgen(&stack, &b, &args);
    let mut other_seed = args;
    other_seed[7] = "8";
    loadgen(&stack, &c, &other_seed);

    let first = read_topic(&stack, &a, 3, 300);
    assert_eq!(first.len(), 300, "exactly the requested count");
    let mut numbers = Vec::new();
    for ((partition, offset), (key, value)) in &first {
        assert_eq!(value.len(), 50, "value size at {partition}/{offset}");
        assert!(std::str::from_utf8(value).is_ok());
        let number: i64 = std::str::from_utf8(&value[..10]).unwrap().parse().unwrap();
        assert_eq!(key.as_deref(), Some(format!("key-{number}").as_bytes()));
        assert_eq!(
            number % 3,
            i64::from(*partition),
            "record i goes to partition i % 3"
        );
        assert_eq!(number / 3, *offset, "in order within the partition");
        numbers.push(number);
    }
    numbers.sort_unstable();
    assert_eq!(numbers, (0..300).collect::<Vec<_>>());

    assert_eq!(
        read_topic(&stack, &b, 3, 300),
        first,
        "same seed, same records"
    );
    let third = read_topic(&stack, &c, 3, 300);
    assert_eq!(third.len(), 300);
    assert!(
        third
            .iter()
            .zip(&first)
            .all(|((_, (_, x)), (_, (_, y)))| x[11..] != y[11..]),
        "another seed gives other values"
    );
}

#[test]
fn loadgen_keeps_a_rate_for_a_duration_without_keys() {
    let stack = Stack::start();
    let topic = unique("lg-rate");
    stack.create_topic(&topic, 2);
    let summary = loadgen(
        &stack,
        &topic,
        &[
            "--duration-s",
            "2",
            "--rate",
            "100",
            "--keys",
            "none",
            "--value-size",
            "8",
        ],
    );
    let produced = summary["produced"]["records"].as_u64().unwrap();
    assert!(
        (150..=202).contains(&produced),
        "{produced} records in 2 s at 100/s"
    );
    let records = read_topic(&stack, &topic, 2, produced as usize);
    assert_eq!(records.len() as u64, produced);
    assert!(records
        .values()
        .all(|(key, value)| key.is_none() && value.len() == 8));
}
