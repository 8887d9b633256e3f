//! Actor-level tests of the batcher: a real batcher and real uploaders against the in-memory
//! store, a recording offset store, and a stand-in supervisor that answers failure reports. No
//! broker, no S3 server.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::prelude::*;
use rdkafka::error::KafkaResult;

use super::*;
use crate::messages::{Forwarded, Resume};
use crate::metadata::Fingerprint;
use crate::settings::RollPolicy;
use crate::store::MemoryStore;
use crate::supervisor::policy::{Destination, Disposition, FailureKind};
use crate::uploader::Uploader;

pub(super) const TOPIC: &str = "orders";
pub(super) const PARTITION: i32 = 3;

/// Records every stored offset.
#[derive(Default)]
pub(super) struct RecordedOffsets(Mutex<Vec<i64>>);

impl OffsetStore for RecordedOffsets {
    fn store(&self, topic: &str, partition: i32, next_offset: i64) -> KafkaResult<()> {
        assert_eq!((topic, partition), (TOPIC, PARTITION));
        self.0.lock().unwrap().push(next_offset);
        Ok(())
    }
}

impl RecordedOffsets {
    pub(super) fn last(&self) -> Option<i64> {
        self.0.lock().unwrap().last().copied()
    }
}

/// Answers failure reports with a fixed disposition; answers routed records at once with
/// `dead_letter` (or keeps the answers in `later` for the test to send).
pub(super) struct FakeSupervisor {
    pub(super) answer: Disposition,
    pub(super) reports: Arc<Mutex<Vec<Failure>>>,
    pub(super) dead_letter: Result<(), String>,
    pub(super) later: Option<Arc<Mutex<Vec<Forwarded>>>>,
}

impl Actor for FakeSupervisor {
    type Context = Context<Self>;
}

impl Handler<ReportFailure> for FakeSupervisor {
    type Result = Disposition;

    fn handle(&mut self, report: ReportFailure, _ctx: &mut Self::Context) -> Disposition {
        let failure = report.failure;
        let mut answer = self.answer;
        let fixed = matches!(
            failure.kind,
            FailureKind::Unconvertible(_) | FailureKind::ObjectRefused { .. }
        );
        if failure.resumed || !fixed {
            answer =
                crate::supervisor::policy::decide(crate::settings::FailurePolicy::Fail, &failure);
        }
        if let Disposition::Route(destination) = answer {
            let forwarded = Forwarded {
                unit: report.unit,
                destination,
                first_offset: failure.offset,
                last_offset: failure.offset,
                records: report.records.len(),
                code: failure.code(),
                result: self.dead_letter.clone(),
            };
            match &self.later {
                Some(later) => later.lock().unwrap().push(forwarded),
                None => report.reply.do_send(forwarded),
            }
        }
        self.reports.lock().unwrap().push(failure);
        answer
    }
}

pub(super) struct Harness {
    pub(super) batcher: Addr<Batcher>,
    pub(super) store: Arc<MemoryStore>,
    pub(super) offsets: Arc<RecordedOffsets>,
    pub(super) reports: Arc<Mutex<Vec<Failure>>>,
}

pub(super) fn start(policy: RollPolicy, answer: Disposition, store: Arc<MemoryStore>) -> Harness {
    let supervisor = FakeSupervisor {
        answer,
        reports: Arc::default(),
        dead_letter: Ok(()),
        later: None,
    };
    start_with(policy, supervisor, store.clone(), store)
}

/// A batcher reading and writing `shared`, which wraps `store`.
pub(super) fn start_with(
    policy: RollPolicy,
    supervisor: FakeSupervisor,
    store: Arc<MemoryStore>,
    shared: crate::store::SharedStore,
) -> Harness {
    start_templated(policy, supervisor, store, shared, KeyTemplate::default())
}

pub(super) fn start_templated(
    policy: RollPolicy,
    supervisor: FakeSupervisor,
    store: Arc<MemoryStore>,
    shared: crate::store::SharedStore,
    key_template: KeyTemplate,
) -> Harness {
    start_full(
        policy,
        supervisor,
        store,
        shared,
        key_template,
        None,
        crate::memory::MemoryBudget::unlimited(),
    )
}

/// A batcher with every setting the other starters default: streaming, the memory budget.
pub(super) fn start_full(
    policy: RollPolicy,
    supervisor: FakeSupervisor,
    store: Arc<MemoryStore>,
    shared: crate::store::SharedStore,
    key_template: KeyTemplate,
    stream: Option<crate::staging::StreamSettings>,
    memory: crate::memory::MemoryBudget,
) -> Harness {
    let offsets = Arc::new(RecordedOffsets::default());
    let reports = supervisor.reports.clone();
    let supervisor = supervisor.start();
    let (upload_tx, upload_rx) = async_channel::bounded(2);
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
        connector: Arc::from("c"),
        key_prefix: Arc::from("kafka/"),
        key_template: Arc::new(key_template),
        policy,
        max_value_bytes: Some(50),
        format: Default::default(),
        offsets: offsets.clone(),
        upload_queue: upload_tx,
        store: shared,
        supervisor: supervisor.recipient(),
        buffers: BufferPool::new(),
        cancel: Default::default(),
        in_flight: Default::default(),
        memory,
        stream,
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

pub(super) fn policy(max_records: usize) -> RollPolicy {
    RollPolicy {
        max_records,
        max_bytes: 1 << 20,
        max_interval: Duration::from_secs(600),
        seal_when_caught_up: false,
    }
}

/// Records `first..first + count` with value `v<offset>`; `bad` gets a value that is not UTF-8.
pub(super) fn chunk(first: i64, count: i64, bad: Option<i64>) -> RecordChunk {
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

pub(super) fn offsets_in(store: &MemoryStore) -> Vec<i64> {
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

pub(super) async fn drain(harness: &Harness) -> DrainReport {
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

/// What the batcher writes as the metadata of an object holding `first..=last` of [`chunk`]'s
/// records, with the first record's timestamp moved by `shift` (a recreated topic).
pub(super) fn stored_metadata(
    first: i64,
    last: i64,
    shift: i64,
) -> std::collections::HashMap<String, String> {
    let fingerprint = |offset: i64, shift| {
        Fingerprint::of(
            1_700_000_000_000 + shift,
            Some(b"k"),
            Some(format!("v{offset}").as_bytes()),
        )
    };
    ObjectMetadata {
        topic: TOPIC.into(),
        partition: PARTITION,
        first_offset: first,
        last_offset: last,
        records: (last - first + 1) as usize,
        first_record: fingerprint(first, shift),
        last_record: fingerprint(last, 0),
        connector: "earlier".into(),
        generation: -1,
        routed: Vec::new(),
        body_format: "json_array".into(),
    }
    .to_pairs()
    .into_iter()
    .map(|(name, value)| (name.to_owned(), value))
    .collect()
}

pub(super) const EARLIER: &str = "kafka/orders/3/00000000000000000010-00000000000000000019.json";

#[actix::test]
async fn objects_already_in_the_bucket_are_skipped_and_committed() {
    let store = Arc::new(MemoryStore::new("b"));
    // Stored before a crash, not committed: offsets 10..=19.
    let earlier = EARLIER;
    store.insert_with_metadata(
        earlier,
        bytes::Bytes::from_static(b"[]"),
        stored_metadata(10, 19, 0),
    );
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

/// A record the dead-letter topic refused is in no topic: no object covering its offset may
/// reach the bucket, or a restart would take it as stored (before: the drain, or the interval
/// timer, sealed and uploaded the open object over it).
#[actix::test]
async fn no_object_covers_a_record_the_dead_letter_topic_refused() {
    let store = Arc::new(MemoryStore::new("b"));
    let supervisor = FakeSupervisor {
        answer: Disposition::Route(Destination::DeadLetter),
        reports: Arc::default(),
        dead_letter: Err("topic gone".into()),
        later: None,
    };
    let harness = start_with(policy(100), supervisor, store.clone(), store.clone());
    harness
        .batcher
        .send(Records(chunk(0, 10, Some(4))))
        .await
        .unwrap();
    let report = drain(&harness).await;
    assert!(
        report.committable.is_none_or(|offset| offset <= 4),
        "{report:?}"
    );
    for key in store.keys() {
        let (first, last) = crate::object_key::parse_offsets(&key).unwrap();
        assert!(
            !(first..=last).contains(&4),
            "{key} covers the refused record"
        );
    }
}

/// An object whose unit has a dead-letter record waits for the broker's acknowledgement before
/// it is uploaded.
#[actix::test]
async fn an_object_waits_for_its_dead_letter_acknowledgements() {
    let store = Arc::new(MemoryStore::new("b"));
    let later = Arc::new(Mutex::new(Vec::new()));
    let supervisor = FakeSupervisor {
        answer: Disposition::Route(Destination::DeadLetter),
        reports: Arc::default(),
        dead_letter: Ok(()),
        later: Some(later.clone()),
    };
    let harness = start_with(policy(5), supervisor, store.clone(), store.clone());
    harness
        .batcher
        .send(Records(chunk(0, 6, Some(2))))
        .await
        .unwrap();
    // Sealed at 5 records (0, 1, 3, 4, 5), not uploaded: offset 2 is not acknowledged yet.
    harness.batcher.send(CaughtUp).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(store.keys().is_empty(), "{:?}", store.keys());
    let acks: Vec<Forwarded> = later.lock().unwrap().drain(..).collect();
    assert_eq!(acks.len(), 1);
    for ack in acks {
        harness.batcher.send(ack).await.unwrap();
    }
    assert_eq!(drain(&harness).await.committable, Some(6));
    assert_eq!(offsets_in(&store), vec![0, 1, 3, 4, 5]);
}

/// Under a time-partitioned template, an object never spans two hours (sealed at the boundary,
/// also when records go back to an earlier hour), and recovery by listing finds the objects in
/// their hour folders: a restart from offset 0 writes nothing again.
#[actix::test]
async fn a_time_template_seals_at_each_hour_and_recovery_finds_its_objects() {
    const HOUR: i64 = 3_600_000;
    let at = 1_709_200_800_000; // 2024-02-29T10:00Z
    let template = || {
        KeyTemplate::parse(
            "{topic}/dt={yyyy}-{MM}-{dd}/{HH}/{partition}/{first}-{last}{ext}",
            "UTC",
            None,
            "none",
        )
        .unwrap()
    };
    let records = || {
        let mut chunk = RecordChunk::default();
        for offset in 0..20 {
            let hour = match offset {
                0..10 => 0,
                10..15 => 1,
                _ => 0,
            };
            let value = format!("v{offset}");
            chunk.push(
                offset,
                at + hour * HOUR + offset,
                Some(b"k"),
                Some(value.as_bytes()),
            );
        }
        chunk
    };
    let supervisor = || FakeSupervisor {
        answer: Disposition::Hold { resumable: true },
        reports: Arc::default(),
        dead_letter: Ok(()),
        later: None,
    };
    let store = Arc::new(MemoryStore::new("b"));
    let harness = start_templated(
        policy(100),
        supervisor(),
        store.clone(),
        store.clone(),
        template(),
    );
    harness.batcher.send(Records(records())).await.unwrap();
    assert_eq!(drain(&harness).await.committable, Some(20));
    let keys = store.keys();
    assert_eq!(
        keys,
        vec![
            "kafka/orders/dt=2024-02-29/10/3/00000000000000000000-00000000000000000009.json",
            "kafka/orders/dt=2024-02-29/10/3/00000000000000000015-00000000000000000019.json",
            "kafka/orders/dt=2024-02-29/11/3/00000000000000000010-00000000000000000014.json",
        ]
    );
    assert_eq!(offsets_in(&store), (0..20).collect::<Vec<_>>());
    let boundary = harness.batcher.send(Stop).await;
    assert!(boundary.is_ok());

    // Uploaded, not committed: a new owner reads from 0 again and finds all three objects.
    let again = start_templated(
        policy(7),
        supervisor(),
        store.clone(),
        store.clone(),
        template(),
    );
    again.batcher.send(Records(records())).await.unwrap();
    assert_eq!(drain(&again).await.committable, Some(20));
    assert_eq!(store.keys(), keys, "nothing written again");
    assert!(again.reports.lock().unwrap().is_empty());
}
