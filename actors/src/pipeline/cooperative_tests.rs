//! Reliability matrix B6 (`cooperative-sticky`, scale 1 → 3 → 1 under continuous produce)
//! against librdkafka's mock cluster, whose group coordinator follows the incremental protocol:
//! a partition moves to a new member only after its old owner revoked it. tansu 0.6.0 does not
//! (it can hand a partition to a joining member while the old owner still holds it; see
//! tests/README.md), so this is where the connector's side of B6 is proven exactly once; the
//! end-to-end B6 in tests/rebalance.rs runs against tansu as far as tansu allows.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::ClientConfig;

use super::tests::{cluster, settings, stored, wait_until, Instance};
use super::RunOutcome;
use crate::settings::{AssignmentStrategy, StartOffset};
use crate::store::MemoryStore;

const PARTITIONS: i32 = 6;

/// Produces one record per batch to every partition, round after round, until `stop`; returns
/// how many records went to each partition.
fn produce_until(bootstrap: String, topic: &'static str, stop: Arc<AtomicBool>) -> Vec<i64> {
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", "0")
        .set("batch.num.messages", "1")
        .create()
        .expect("producer");
    let mut sent = vec![0_i64; PARTITIONS as usize];
    while !stop.load(Ordering::Relaxed) {
        for partition in 0..PARTITIONS {
            let value = format!("{partition}:{}", sent[partition as usize]);
            let record = BaseRecord::<str, str>::to(topic)
                .partition(partition)
                .key("k")
                .payload(&value);
            producer.send(record).map_err(|(e, _)| e).expect("queued");
            sent[partition as usize] += 1;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    producer.flush(Duration::from_secs(30)).expect("flush");
    sent
}

#[actix::test]
async fn cooperative_scale_out_and_in_under_load_stores_every_record_once() {
    let (topic, name) = ("coop", "coop");
    let mock = cluster(topic, PARTITIONS, name);
    let store = Arc::new(MemoryStore::new("bucket"));
    let config = || {
        let mut config = settings(&mock, topic, name, StartOffset::Earliest);
        config.source.assignment = AssignmentStrategy::CooperativeSticky;
        config
    };
    let stop = Arc::new(AtomicBool::new(false));
    let producer = std::thread::spawn({
        let (bootstrap, stop) = (mock.bootstrap_servers(), stop.clone());
        move || produce_until(bootstrap, topic, stop)
    });

    let first = Instance::start(config(), store.clone()).await;
    wait_until(
        "the first instance owns every partition",
        Duration::from_secs(30),
        || first.assigned().len() == PARTITIONS as usize,
    )
    .await;
    // Instances join one at a time, each once the previous rebalance settled.
    let second = Instance::start(config(), store.clone()).await;
    wait_until(
        "the second instance's share",
        Duration::from_secs(30),
        || !second.assigned().is_empty() && first.assigned().len() < PARTITIONS as usize,
    )
    .await;
    let third = Instance::start(config(), store.clone()).await;
    wait_until("three instances sharing", Duration::from_secs(30), || {
        let shares = [first.assigned(), second.assigned(), third.assigned()];
        shares.iter().all(|share| !share.is_empty())
            && shares.iter().map(Vec::len).sum::<usize>() == PARTITIONS as usize
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    // And leave one at a time.
    assert_eq!(third.stop().await, RunOutcome::Drained);
    wait_until("two instances sharing", Duration::from_secs(30), || {
        first.assigned().len() + second.assigned().len() == PARTITIONS as usize
    })
    .await;
    assert_eq!(second.stop().await, RunOutcome::Drained);
    wait_until(
        "the first instance owns every partition again",
        Duration::from_secs(30),
        || first.assigned().len() == PARTITIONS as usize,
    )
    .await;

    stop.store(true, Ordering::Relaxed);
    let sent = tokio::task::spawn_blocking(move || producer.join().unwrap())
        .await
        .unwrap();
    let total: i64 = sent.iter().sum();
    wait_until(
        "every record in the bucket",
        Duration::from_secs(30),
        || stored(&store).len() as i64 == total,
    )
    .await;
    assert_eq!(first.stop().await, RunOutcome::Drained);

    let copies = stored(&store);
    let duplicated: Vec<_> = copies.iter().filter(|(_, &n)| n != 1).collect();
    assert!(
        duplicated.is_empty(),
        "stored more than once: {duplicated:?}"
    );
    for (partition, &count) in sent.iter().enumerate() {
        for offset in 0..count {
            assert!(
                copies.contains_key(&(partition as i32, offset)),
                "partition {partition} offset {offset} missing"
            );
        }
    }
}
