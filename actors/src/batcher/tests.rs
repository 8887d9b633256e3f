//! Actor-level tests of the batcher: a real batcher and real uploaders against the in-memory
//! store, a recording offset store, and a stand-in supervisor that answers failure reports. No
//! broker, no S3 server.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::prelude::*;
use rdkafka::error::KafkaResult;

use super::*;
use crate::messages::{Forwarded, Resume};
use crate::settings::RollPolicy;
use crate::store::{MemoryStore, ObjectStore};
use crate::supervisor::policy::{Destination, Disposition};
use crate::uploader::Uploader;

const TOPIC: &str = "orders";
const PARTITION: i32 = 3;

/// Records every stored offset.
#[derive(Default)]
struct RecordedOffsets(Mutex<Vec<i64>>);

impl OffsetStore for RecordedOffsets {
    fn store(&self, topic: &str, partition: i32, next_offset: i64) -> KafkaResult<()> {
        assert_eq!((topic, partition), (TOPIC, PARTITION));
        self.0.lock().unwrap().push(next_offset);
        Ok(())
    }
}

impl RecordedOffsets {
    fn last(&self) -> Option<i64> {
        self.0.lock().unwrap().last().copied()
    }
}

/// Answers failure reports with a fixed disposition; acknowledges routed records at once.
struct FakeSupervisor {
    answer: Disposition,
    reports: Arc<Mutex<Vec<Failure>>>,
}

impl Actor for FakeSupervisor {
    type Context = Context<Self>;
}

impl Handler<ReportFailure> for FakeSupervisor {
    type Result = Disposition;

    fn handle(&mut self, report: ReportFailure, _ctx: &mut Self::Context) -> Disposition {
        let failure = report.failure;
        let mut answer = self.answer;
        if failure.resumed || matches!(failure.kind, FailureKind::Oversize { .. }) {
            answer =
                crate::supervisor::policy::decide(crate::settings::FailurePolicy::Fail, &failure);
        }
        if let Disposition::Route(destination) = answer {
            report.reply.do_send(Forwarded {
                unit: report.unit,
                destination,
                first_offset: failure.offset,
                last_offset: failure.offset,
                records: report.records.len(),
                code: failure.code(),
                result: Ok(()),
            });
        }
        self.reports.lock().unwrap().push(failure);
        answer
    }
}

struct Harness {
    batcher: Addr<Batcher>,
    store: Arc<MemoryStore>,
    offsets: Arc<RecordedOffsets>,
    reports: Arc<Mutex<Vec<Failure>>>,
}

fn start(policy: RollPolicy, answer: Disposition, store: Arc<MemoryStore>) -> Harness {
    let offsets = Arc::new(RecordedOffsets::default());
    let reports = Arc::new(Mutex::new(Vec::new()));
    let supervisor = FakeSupervisor {
        answer,
        reports: reports.clone(),
    }
    .start();
    let (upload_tx, upload_rx) = async_channel::bounded(2);
    let shared: crate::store::SharedStore = store.clone();
    for id in 0..2 {
        let (store, queue) = (shared.clone(), upload_rx.clone());
        Uploader::new(
            id,
            store,
            queue,
            Duration::from_millis(1),
            Duration::from_millis(5),
            Some(3),
            StatusBoard::new(TOPIC),
        )
        .start();
    }
    let cx = BatcherContext {
        topic: Arc::from(TOPIC),
        key_prefix: Arc::from("kafka/"),
        policy,
        max_value_bytes: Some(50),
        offsets: offsets.clone(),
        upload_queue: upload_tx,
        store: shared,
        supervisor: supervisor.recipient(),
        buffers: BufferPool::new(),
    };
    let batcher = Batcher::new(
        cx,
        PARTITION,
        PartitionMetrics::new(TOPIC, PARTITION),
        StatusBoard::new(TOPIC),
    )
    .start();
    Harness {
        batcher,
        store,
        offsets,
        reports,
    }
}

fn policy(max_records: usize) -> RollPolicy {
    RollPolicy {
        max_records,
        max_bytes: 1 << 20,
        max_interval: Duration::from_secs(600),
        seal_when_caught_up: false,
    }
}

/// Records `first..first + count` with value `v<offset>`; `bad` gets a value that is not UTF-8.
fn chunk(first: i64, count: i64, bad: Option<i64>) -> RecordChunk {
    let mut chunk = RecordChunk::default();
    for offset in first..first + count {
        let value = if Some(offset) == bad {
            vec![0xff, 0xfe]
        } else {
            format!("v{offset}").into_bytes()
        };
        chunk.push(offset, 1_700_000_000_000, Some(b"k"), Some(&value));
    }
    chunk
}

fn offsets_in(store: &MemoryStore) -> Vec<i64> {
    let mut offsets: Vec<i64> = store
        .objects()
        .values()
        .flat_map(|body| {
            let records: Vec<serde_json::Value> = serde_json::from_slice(body).unwrap();
            records
                .into_iter()
                .map(|record| record["offset"].as_i64().unwrap())
                .collect::<Vec<_>>()
        })
        .collect();
    offsets.sort_unstable();
    offsets
}

async fn drain(harness: &Harness) -> DrainReport {
    tokio::time::timeout(
        Duration::from_secs(5),
        harness.batcher.send(Drain::Shutdown),
    )
    .await
    .expect("drained in time")
    .expect("batcher alive")
}

#[actix::test]
async fn objects_are_cut_by_count_and_the_commit_follows_the_stored_prefix() {
    let harness = start(
        policy(10),
        Disposition::Hold { resumable: true },
        Arc::new(MemoryStore::new("b")),
    );
    harness
        .batcher
        .send(Records(chunk(0, 25, None)))
        .await
        .unwrap();
    let report = drain(&harness).await;
    assert_eq!(report.committable, Some(25));
    assert_eq!(harness.offsets.last(), Some(25));
    assert_eq!(
        harness.store.keys(),
        vec![
            "kafka/orders/3/00000000000000000000-00000000000000000009.json",
            "kafka/orders/3/00000000000000000010-00000000000000000019.json",
            "kafka/orders/3/00000000000000000020-00000000000000000024.json",
        ]
    );
    assert_eq!(offsets_in(&harness.store), (0..25).collect::<Vec<_>>());
}

#[actix::test]
async fn objects_already_in_the_bucket_are_skipped_and_committed() {
    let store = Arc::new(MemoryStore::new("b"));
    // Stored before a crash, not committed: offsets 10..=19.
    let earlier = "kafka/orders/3/00000000000000000010-00000000000000000019.json";
    store.insert(earlier, bytes::Bytes::from_static(b"[]"));
    let harness = start(policy(10), Disposition::Hold { resumable: true }, store);
    harness
        .batcher
        .send(Records(chunk(5, 20, None)))
        .await
        .unwrap();
    let report = drain(&harness).await;
    assert_eq!(report.committable, Some(25));
    assert_eq!(
        harness.store.keys(),
        vec![
            "kafka/orders/3/00000000000000000005-00000000000000000009.json",
            earlier,
            "kafka/orders/3/00000000000000000020-00000000000000000024.json",
        ]
    );
    // The recovered object was not written again.
    assert_eq!(harness.store.object(earlier).unwrap().as_ref(), b"[]");
}

#[actix::test]
async fn a_routed_bad_record_is_reported_and_the_commit_waits_for_its_acknowledgement() {
    let harness = start(
        policy(100),
        Disposition::Route(Destination::DeadLetter),
        Arc::new(MemoryStore::new("b")),
    );
    harness
        .batcher
        .send(Records(chunk(0, 10, Some(4))))
        .await
        .unwrap();
    let report = drain(&harness).await;
    assert_eq!(report.committable, Some(10));
    let reports = harness.reports.lock().unwrap().clone();
    assert_eq!(reports.len(), 1);
    assert_eq!(reports[0].offset, 4);
    assert_eq!(reports[0].code(), ErrorCode::RecordInvalidUtf8);
    let expected: Vec<i64> = (0..10).filter(|offset| *offset != 4).collect();
    assert_eq!(offsets_in(&harness.store), expected);
}

#[actix::test]
async fn a_held_bad_record_stops_the_commit_exactly_there_until_resumed() {
    let harness = start(
        policy(100),
        Disposition::Hold { resumable: true },
        Arc::new(MemoryStore::new("b")),
    );
    harness
        .batcher
        .send(Records(chunk(0, 10, Some(4))))
        .await
        .unwrap();
    harness
        .batcher
        .send(Records(chunk(10, 5, None)))
        .await
        .unwrap();
    let report = drain(&harness).await;
    // Offsets 0..=3 are stored and committed; nothing at or after the bad record.
    assert_eq!(report.committable, Some(4));
    assert_eq!(offsets_in(&harness.store), vec![0, 1, 2, 3]);
    // The operator resumes: the bad record is reported again as resumed past (the policy
    // routes it), and the held records follow, in order.
    harness.batcher.send(Resume).await.unwrap();
    let report = drain(&harness).await;
    assert_eq!(report.committable, Some(15));
    let expected: Vec<i64> = (0..15).filter(|offset| *offset != 4).collect();
    assert_eq!(offsets_in(&harness.store), expected);
    let reports = harness.reports.lock().unwrap().clone();
    assert_eq!(
        reports
            .iter()
            .map(|r| (r.offset, r.resumed))
            .collect::<Vec<_>>(),
        vec![(4, false), (4, true)]
    );
}

#[actix::test]
async fn an_oversize_value_is_stored_with_overflow_flag_and_reported() {
    let harness = start(
        policy(100),
        Disposition::Hold { resumable: true },
        Arc::new(MemoryStore::new("b")),
    );
    let mut records = RecordChunk::default();
    records.push(0, 1, None, Some(b"small"));
    records.push(1, 1, None, Some(&[b'x'; 80]));
    records.push(2, 1, None, Some(b"small"));
    harness.batcher.send(Records(records)).await.unwrap();
    let report = drain(&harness).await;
    assert_eq!(report.committable, Some(3));
    let body = harness.store.objects().into_values().next().unwrap();
    let stored: Vec<serde_json::Value> = serde_json::from_slice(&body).unwrap();
    assert_eq!(stored[1]["overflowFlag"], true);
    assert_eq!(stored[1]["value"], serde_json::Value::Null);
    assert_eq!(stored[1]["valueSize"], 80);
    let reports = harness.reports.lock().unwrap().clone();
    assert_eq!(reports.len(), 1);
    assert_eq!(reports[0].code(), ErrorCode::RecordOversize);
}

#[actix::test]
async fn the_store_is_listed_from_the_first_offset_read() {
    let store = Arc::new(MemoryStore::new("b"));
    // An object below the first offset read must not be taken as recovered.
    store.insert(
        "kafka/orders/3/00000000000000000000-00000000000000000009.json",
        bytes::Bytes::from_static(b"[]"),
    );
    let harness = start(
        policy(100),
        Disposition::Hold { resumable: true },
        store.clone(),
    );
    harness
        .batcher
        .send(Records(chunk(10, 5, None)))
        .await
        .unwrap();
    let report = drain(&harness).await;
    assert_eq!(report.committable, Some(15));
    assert_eq!(store.keys().len(), 2);
    let listed = store.list("kafka/orders/3/", None).await.unwrap();
    assert_eq!(listed.len(), 2);
}
