//! Actor-level tests of streamed objects (`crate::staging`): a real batcher and real uploaders
//! against the in-memory store (through a `FaultyStore`, which counts and fails calls).

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;

use super::tests::{chunk, offsets_in, start_full, FakeSupervisor, Harness, PARTITION, TOPIC};
use crate::key_template::KeyTemplate;
use crate::memory::{Kind, MemoryBudget};
use crate::messages::{Drain, DrainReport, Records};
use crate::metadata::ObjectMetadata;
use crate::settings::RollPolicy;
use crate::staging::{staging_key, Retry, StreamSettings};
use crate::store::{FaultyStore, MemoryStore, Operation, StoreError};
use crate::supervisor::policy::{Disposition, FailureKind};

const PART: usize = 64 << 10;
/// Records per chunk (about 110 bytes each as JSON).
const CHUNK: i64 = 100;

fn settings() -> StreamSettings {
    StreamSettings {
        part_size: PART,
        retry: Retry {
            initial_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(4),
            max_attempts: Some(2),
        },
    }
}

fn policy(max_bytes: usize) -> RollPolicy {
    RollPolicy {
        max_records: 1 << 30,
        max_bytes,
        max_interval: Duration::from_secs(600),
        seal_when_caught_up: false,
    }
}

fn start(
    max_bytes: usize,
    store: &Arc<MemoryStore>,
    faulty: &Arc<FaultyStore>,
    memory: MemoryBudget,
) -> Harness {
    let supervisor = FakeSupervisor {
        answer: Disposition::Hold { resumable: false },
        reports: Arc::default(),
        dead_letter: Ok(()),
        later: None,
    };
    start_full(
        policy(max_bytes),
        supervisor,
        store.clone(),
        faulty.clone(),
        KeyTemplate::default(),
        Some(settings()),
        memory,
    )
}

/// Sends the chunks numbered `chunks` to the batcher (chunk `i` holds offsets `i * CHUNK` on).
async fn feed(batcher: &Addr<super::Batcher>, chunks: std::ops::Range<i64>) {
    for index in chunks {
        batcher
            .send(Records(chunk(index * CHUNK, CHUNK, None)))
            .await
            .unwrap();
    }
}

async fn drain(harness: &Harness) -> DrainReport {
    tokio::time::timeout(
        Duration::from_secs(10),
        harness.batcher.send(Drain::Shutdown),
    )
    .await
    .expect("drained in time")
    .expect("batcher alive")
}

fn staging_left(store: &MemoryStore) -> Vec<String> {
    store
        .keys()
        .into_iter()
        .filter(|key| key.contains(".staging/"))
        .collect()
}

#[actix::test]
async fn an_object_past_the_part_size_streams_out_part_by_part_and_is_stored_once() {
    let store = Arc::new(MemoryStore::new("b"));
    let faulty = Arc::new(FaultyStore::new(store.clone(), 1));
    // Objects of up to 1 MiB, parts of 64 KiB.
    let harness = start(1 << 20, &store, &faulty, MemoryBudget::unlimited());
    feed(&harness.batcher, 0..250).await;
    assert_eq!(drain(&harness).await.committable, Some(250 * CHUNK));

    assert_eq!(staging_left(&store), Vec::<String>::new());
    assert!(store.uploads().is_empty(), "{:?}", store.uploads());
    let expected: Vec<i64> = (0..250 * CHUNK).collect();
    assert_eq!(offsets_in(&store), expected);
    let objects = store.keys();
    assert!(objects.len() >= 2, "{objects:?}");
    // Every object but maybe the last (sealed at the drain) went through a staging upload.
    let copied = faulty.calls(Operation::CopyCreate) as usize;
    assert!(copied >= objects.len() - 1, "{copied} of {objects:?}");
    assert!(faulty.calls(Operation::UploadPart) as usize >= copied * 10);
    assert_eq!(faulty.calls(Operation::Delete) as usize, copied);
    for key in &objects {
        let metadata = ObjectMetadata::from_map(&store.metadata(key).unwrap()).unwrap();
        let (first, last) = crate::object_key::parse_offsets(key).unwrap();
        assert_eq!((metadata.first_offset, metadata.last_offset), (first, last));
        assert_eq!(metadata.records as i64, last - first + 1);
    }
}

#[actix::test]
async fn a_streamed_object_holds_about_two_parts_in_memory() {
    let store = Arc::new(MemoryStore::new("b"));
    let faulty = Arc::new(FaultyStore::new(store.clone(), 1));
    // Parts take a while: the batcher must wait for them rather than buffer the object.
    faulty.delay(Operation::UploadPart, Duration::from_millis(3));
    let memory = MemoryBudget::unlimited();
    let harness = start(2 << 20, &store, &faulty, memory.clone());
    let batcher = harness.batcher.clone();
    let feeding = actix::spawn(async move { feed(&batcher, 0..400).await });
    let mut peak = 0;
    while !feeding.is_finished() {
        let snapshot = memory.snapshot();
        let held = [Kind::Open, Kind::Sealed, Kind::Uploading]
            .iter()
            .map(|kind| snapshot.used(*kind))
            .sum::<usize>();
        peak = peak.max(held);
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
    assert_eq!(drain(&harness).await.committable, Some(400 * CHUNK));
    assert_eq!(offsets_in(&store), (0..400 * CHUNK).collect::<Vec<_>>());
    // 4.4 MB of records in objects of up to 2 MiB; the open object, the part being stored and
    // a sealed object's rest stay within a few parts.
    assert!(faulty.calls(Operation::UploadPart) >= 60);
    assert!(peak > 0);
    assert!(peak <= 5 * PART, "peak {peak} bytes, parts of {PART}");
}

#[actix::test]
async fn a_crash_between_the_staging_object_and_the_object_leaves_what_the_next_owner_sweeps() {
    let store = Arc::new(MemoryStore::new("b"));
    // What a writer killed after completing a staging upload leaves (`after-staging-complete`),
    // and one killed between parts.
    let completed = staging_key("kafka/", TOPIC, PARTITION, 0);
    store.insert(&completed, bytes::Bytes::from_static(b"[{\"offset\":0}"));
    let incomplete = staging_key("kafka/", TOPIC, PARTITION, 0);
    store.begin_upload(
        &incomplete,
        std::time::SystemTime::now() - Duration::from_secs(1),
    );
    tokio::time::sleep(Duration::from_millis(2)).await;
    let faulty = Arc::new(FaultyStore::new(store.clone(), 1));
    let harness = start(1 << 20, &store, &faulty, MemoryBudget::unlimited());
    feed(&harness.batcher, 0..30).await;
    assert_eq!(drain(&harness).await.committable, Some(30 * CHUNK));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !(staging_left(&store).is_empty() && store.uploads().is_empty()) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "left: {:?} {:?}",
            staging_left(&store),
            store.uploads()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(offsets_in(&store), (0..30 * CHUNK).collect::<Vec<_>>());
}

/// The lost object's report, and what was committed.
async fn lost(harness: &Harness, report: DrainReport) -> (String, Option<i64>) {
    let reports = harness.reports.lock().unwrap().clone();
    let [failure] = &reports[..] else {
        panic!("one failure expected: {reports:?}");
    };
    let FailureKind::StreamLost { key, .. } = &failure.kind else {
        panic!("a lost stream expected: {failure:?}");
    };
    (key.clone(), report.committable)
}

#[actix::test]
async fn a_refused_part_fails_the_partition_and_commits_nothing_of_its_object() {
    let store = Arc::new(MemoryStore::new("b"));
    let faulty = Arc::new(FaultyStore::new(store.clone(), 1));
    let harness = start(1 << 20, &store, &faulty, MemoryBudget::unlimited());
    // The first object (about 9,500 records) is stored; the second one's parts are refused.
    feed(&harness.batcher, 0..100).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while store.keys().is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the first object is stored"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let refused = StoreError::Rejected {
        bucket: "b".into(),
        status: 400,
        code: "InvalidArgument".into(),
        message: String::new(),
    };
    faulty.fail_always(Operation::UploadPart, refused);
    feed(&harness.batcher, 100..130).await;
    let report = drain(&harness).await;
    let (key, committed) = lost(&harness, report).await;
    let stored = offsets_in(&store);
    let first_lost = stored.len() as i64;
    assert!(first_lost > 0 && first_lost < 100 * CHUNK, "{first_lost}");
    assert_eq!(stored, (0..first_lost).collect::<Vec<_>>());
    // Named by its key, and nothing committed from its first offset on: a restart reads it.
    assert!(key.contains(&format!("{first_lost:020}-")), "{key}");
    assert_eq!(committed, Some(first_lost));
    assert_eq!(harness.offsets.last(), Some(first_lost));
    // The staging upload is aborted; no record went anywhere else.
    assert!(store.uploads().is_empty(), "{:?}", store.uploads());
    assert_eq!(staging_left(&store), Vec::<String>::new());
    assert_eq!(faulty.calls(Operation::CopyCreate), 1);
}

#[actix::test]
async fn a_staging_upload_aborted_under_the_writer_fails_the_partition() {
    let store = Arc::new(MemoryStore::new("b"));
    let faulty = Arc::new(FaultyStore::new(store.clone(), 1));
    let harness = start(8 << 20, &store, &faulty, MemoryBudget::unlimited());
    feed(&harness.batcher, 0..20).await;
    // Another writer's sweep (or a lifecycle rule) aborts the upload while the assignment runs.
    let uploads = store.uploads();
    let [upload] = &uploads[..] else {
        panic!("one staging upload expected: {uploads:?}");
    };
    crate::store::ObjectStore::abort_upload(&*store, &upload.key, &upload.upload_id)
        .await
        .unwrap();
    feed(&harness.batcher, 20..40).await;
    let report = drain(&harness).await;
    let (key, committed) = lost(&harness, report).await;
    assert!(key.contains(&format!("{:020}-", 0)), "{key}");
    assert_eq!(committed, None);
    assert_eq!(harness.offsets.last(), None);
    assert!(store.keys().is_empty(), "{:?}", store.keys());
}

/// A batcher writing objects of 1,000 records (cut by count, about 110 KB: a streamed part and
/// the rest), fed 3,000 records; the key of the second object is taken, after the recovery
/// listing, by an object with the metadata of its records (`shift` 0) or of others.
async fn with_a_taken_key(shift: i64) -> (Harness, Arc<FaultyStore>) {
    let store = Arc::new(MemoryStore::new("b"));
    let faulty = Arc::new(FaultyStore::new(store.clone(), 1));
    let supervisor = FakeSupervisor {
        answer: Disposition::Hold { resumable: false },
        reports: Arc::default(),
        dead_letter: Ok(()),
        later: None,
    };
    let mut policy = policy(8 << 20);
    policy.max_records = 1000;
    let harness = start_full(
        policy,
        supervisor,
        store.clone(),
        faulty.clone(),
        KeyTemplate::default(),
        Some(settings()),
        MemoryBudget::unlimited(),
    );
    // Listed (empty) with the first records; the key is taken only afterwards, as by a
    // writer that stored the same object meanwhile (or another one).
    feed(&harness.batcher, 0..1).await;
    let key = crate::object_key::object_key("kafka/", TOPIC, PARTITION, 1000, 1999);
    store.insert_with_metadata(
        &key,
        bytes::Bytes::from_static(b"[]"),
        super::tests::stored_metadata(1000, 1999, shift),
    );
    feed(&harness.batcher, 1..30).await;
    (harness, faulty)
}

#[actix::test]
async fn a_streamed_object_whose_key_holds_the_same_records_counts_as_stored() {
    let (harness, faulty) = with_a_taken_key(0).await;
    assert_eq!(drain(&harness).await.committable, Some(30 * CHUNK));
    assert!(harness.reports.lock().unwrap().is_empty());
    let key = crate::object_key::object_key("kafka/", TOPIC, PARTITION, 1000, 1999);
    // Not overwritten; its staging object deleted like the others'.
    assert_eq!(harness.store.object(&key).as_deref(), Some(&b"[]"[..]));
    assert_eq!(staging_left(&harness.store), Vec::<String>::new());
    assert_eq!(faulty.calls(Operation::CopyCreate), 3);
    assert_eq!(faulty.calls(Operation::Delete), 3);
}

#[actix::test]
async fn a_streamed_object_whose_key_holds_other_records_stops_the_partition() {
    let (harness, _faulty) = with_a_taken_key(7).await;
    let report = drain(&harness).await;
    let reports = harness.reports.lock().unwrap().clone();
    assert!(
        matches!(&reports[..], [failure] if matches!(failure.kind, FailureKind::ForeignObject { .. })),
        "{reports:?}"
    );
    assert_eq!(report.committable, Some(1000));
    assert_eq!(staging_left(&harness.store), Vec::<String>::new());
    assert!(harness.store.uploads().is_empty());
}
