//! Actor-level tests of the batcher's recovery: what it finds in the bucket when a partition is
//! assigned (objects already stored, objects of other records or other key shapes, failed or
//! hanging listings) and the orphaned multipart uploads it aborts. The harness is `tests.rs`'s.

use std::sync::Arc;
use std::time::Duration;

use super::tests::*;
use super::*;
use crate::metadata::Fingerprint;
use crate::store::{FaultyStore, MemoryStore, ObjectStore, Operation, StoreError};
use crate::supervisor::policy::Disposition;

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

/// A recreated topic (or another cluster writing the prefix): an object at the partition's
/// offsets whose first record differs. Nothing is skipped and nothing overwritten: the records
/// before it are stored, the partition stops at it.
#[actix::test]
async fn an_object_with_other_records_stops_the_partition_at_its_first_offset() {
    for metadata in [stored_metadata(10, 19, 5), std::collections::HashMap::new()] {
        let store = Arc::new(MemoryStore::new("b"));
        store.insert_with_metadata(EARLIER, bytes::Bytes::from_static(b"old"), metadata);
        let harness = start(
            policy(100),
            Disposition::Hold { resumable: false },
            store.clone(),
        );
        harness
            .batcher
            .send(Records(chunk(5, 20, None)))
            .await
            .unwrap();
        let report = drain(&harness).await;
        assert_eq!(report.committable, Some(10));
        let reports = harness.reports.lock().unwrap().clone();
        assert_eq!(reports.len(), 1, "{reports:?}");
        assert_eq!(
            (reports[0].offset, reports[0].code()),
            (10, ErrorCode::BucketForeignObject)
        );
        assert!(reports[0].message().contains(EARLIER));
        assert_eq!(store.object(EARLIER).as_deref(), Some(&b"old"[..]));
        assert_eq!(
            store.keys(),
            [
                "kafka/orders/3/00000000000000000005-00000000000000000009.json",
                EARLIER
            ]
        );
    }
}

/// Read from inside a stored object's range (its first records are gone): its last record
/// decides, and the range is committed only once it matched.
#[actix::test]
async fn an_object_entered_midway_is_checked_at_its_last_record() {
    for (shift_last, committable) in [(false, 25), (true, 10)] {
        let store = Arc::new(MemoryStore::new("b"));
        let mut metadata = stored_metadata(10, 19, 0);
        if shift_last {
            let other = Fingerprint::of(1, None, None).to_string();
            metadata.insert("kos-last-record".into(), other);
        }
        store.insert_with_metadata(EARLIER, bytes::Bytes::from_static(b"[]"), metadata);
        let harness = start(
            policy(100),
            Disposition::Hold { resumable: false },
            store.clone(),
        );
        // Offsets 10 and 11 are gone (compaction): the object is entered at 12.
        let mut records = chunk(5, 5, None);
        for offset in 12..25 {
            let value = format!("v{offset}");
            records.push(
                offset,
                1_700_000_000_000,
                Some(b"k"),
                Some(value.as_bytes()),
            );
        }
        harness.batcher.send(Records(records)).await.unwrap();
        let report = drain(&harness).await;
        let reports = harness.reports.lock().unwrap().clone();
        assert_eq!(report.committable, Some(committable));
        if shift_last {
            assert_eq!(reports.len(), 1);
            assert_eq!(
                (reports[0].offset, reports[0].code()),
                (19, ErrorCode::BucketForeignObject)
            );
        } else {
            assert!(reports.is_empty(), "{reports:?}");
            assert_eq!(
                offsets_in_objects_of(&store, "kafka/orders/3/000000000000000000"),
                {
                    let mut expected: Vec<i64> = (5..10).collect();
                    expected.extend(20..25);
                    expected
                }
            );
        }
    }
}

/// A key that parses but is not directly under the partition's folder, or has a negative
/// offset, is no object of ours: the records are written as usual.
#[actix::test]
async fn keys_of_another_shape_are_neither_skipped_nor_trusted() {
    let store = Arc::new(MemoryStore::new("b"));
    for key in [
        "kafka/orders/3/backup/00000000000000000000-00000000000000000099.json",
        "kafka/orders/3/-0000000000000000001-00000000000000000099.json",
    ] {
        store.insert(key, bytes::Bytes::from_static(b"[]"));
    }
    let harness = start(
        policy(100),
        Disposition::Hold { resumable: false },
        store.clone(),
    );
    harness
        .batcher
        .send(Records(chunk(0, 10, None)))
        .await
        .unwrap();
    assert_eq!(drain(&harness).await.committable, Some(10));
    assert!(harness.reports.lock().unwrap().is_empty());
    assert_eq!(
        offsets_in_objects_of(&store, "kafka/orders/3/0"),
        (0..10).collect::<Vec<_>>()
    );
}

fn offsets_in_objects_of(store: &MemoryStore, prefix: &str) -> Vec<i64> {
    let only = MemoryStore::new("b");
    for (key, body) in store.objects() {
        if key.starts_with(prefix) {
            only.insert(&key, body);
        }
    }
    offsets_in(&only)
}

/// A failed listing is retried: the partition writes nothing until it knows what the bucket
/// holds (before: recovery was silently off, and the records were written again as an object
/// overlapping the stored one).
#[actix::test]
async fn a_failed_listing_is_retried_before_anything_is_written() {
    let store = Arc::new(MemoryStore::new("b"));
    store.insert_with_metadata(
        EARLIER,
        bytes::Bytes::from_static(b"[]"),
        stored_metadata(10, 19, 0),
    );
    let faulty = Arc::new(FaultyStore::new(store.clone(), 1));
    let unavailable = StoreError::Transient {
        bucket: "b".into(),
        detail: "injected".into(),
    };
    faulty.fail_next(Operation::List, 2, unavailable);
    let supervisor = FakeSupervisor {
        answer: Disposition::Hold { resumable: false },
        reports: Arc::default(),
        dead_letter: Ok(()),
        later: None,
    };
    let harness = start_with(policy(100), supervisor, store.clone(), faulty.clone());
    harness
        .batcher
        .send(Records(chunk(5, 20, None)))
        .await
        .unwrap();
    assert_eq!(drain(&harness).await.committable, Some(25));
    assert_eq!(faulty.calls(Operation::List), 3);
    assert_eq!(
        store.keys(),
        [
            "kafka/orders/3/00000000000000000005-00000000000000000009.json",
            EARLIER,
            "kafka/orders/3/00000000000000000020-00000000000000000024.json",
        ]
    );
}

/// Issue 11, A3: the multipart uploads an earlier owner of the partition left incomplete are
/// aborted once the partition's first records arrive; uploads created since the assignment
/// began, and other partitions', are kept.
#[actix::test]
async fn orphaned_uploads_of_earlier_owners_are_aborted_at_the_first_records() {
    use std::time::SystemTime;
    let store = Arc::new(MemoryStore::new("b"));
    let now = SystemTime::now();
    store.begin_upload(EARLIER, now - Duration::from_secs(60));
    let since = "kafka/orders/3/00000000000000000030-00000000000000000039.json";
    store.begin_upload(since, now + Duration::from_secs(3600));
    let other = "kafka/orders/30/00000000000000000010-00000000000000000019.json";
    store.begin_upload(other, now - Duration::from_secs(60));
    let harness = start(
        policy(100),
        Disposition::Hold { resumable: false },
        store.clone(),
    );
    harness
        .batcher
        .send(Records(chunk(0, 5, None)))
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while store.uploads().len() == 3 {
        assert!(std::time::Instant::now() < deadline, "orphan not aborted");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let left: Vec<String> = store.uploads().into_iter().map(|u| u.key).collect();
    assert_eq!(left, [since, other]);
    assert_eq!(drain(&harness).await.committable, Some(5));
}

/// The sweep is not in the records' way: with ListMultipartUploads hanging, the partition
/// stores and commits as usual.
#[actix::test]
async fn a_hanging_upload_listing_does_not_hold_the_records() {
    let store = Arc::new(MemoryStore::new("b"));
    let faulty = Arc::new(FaultyStore::new(store.clone(), 1));
    faulty.hang(Operation::ListUploads);
    let supervisor = FakeSupervisor {
        answer: Disposition::Hold { resumable: false },
        reports: Arc::default(),
        dead_letter: Ok(()),
        later: None,
    };
    let harness = start_with(policy(10), supervisor, store.clone(), faulty.clone());
    harness
        .batcher
        .send(Records(chunk(0, 25, None)))
        .await
        .unwrap();
    assert_eq!(drain(&harness).await.committable, Some(25));
    assert_eq!(faulty.calls(Operation::ListUploads), 1);
    assert_eq!(offsets_in(&store), (0..25).collect::<Vec<_>>());
}
