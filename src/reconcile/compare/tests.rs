use super::*;
use crate::reconcile::objects::Body;

fn key(partition: i32, first: i64, last: i64) -> String {
    actors::object_key::object_key("p/", "orders", partition, first, last)
}

fn object(partition: i32, first: i64, last: i64) -> ListedObject {
    ListedObject {
        key: key(partition, first, last),
        metadata: labelled(partition, first, last, (last - first + 1) as u64, ""),
        body: None,
    }
}

fn labelled(
    partition: i32,
    first: i64,
    last: i64,
    records: u64,
    routed: &str,
) -> BTreeMap<String, String> {
    let mut map: BTreeMap<String, String> = [
        ("kos-format", "1".to_owned()),
        ("kos-topic", "orders".to_owned()),
        ("kos-partition", partition.to_string()),
        ("kos-first-offset", first.to_string()),
        ("kos-last-offset", last.to_string()),
        ("kos-records", records.to_string()),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_owned(), value))
    .collect();
    if !routed.is_empty() {
        map.insert("kos-routed".into(), routed.into());
    }
    map
}

fn routed(partition: i32, offset: i64, topic: &str, at: i64) -> Routed {
    Routed {
        partition,
        offset,
        topic: topic.to_owned(),
        location: format!("{topic}[0]@{at}"),
        oversize: false,
    }
}

fn inputs(partitions: &[(i32, i64, i64, Option<i64>)], objects: Vec<ListedObject>) -> Inputs {
    Inputs {
        topic: "orders".into(),
        folder: "p/orders/".into(),
        partitions: partitions
            .iter()
            .map(|&(p, low, high, committed)| {
                (
                    p,
                    PartitionOffsets {
                        low,
                        high,
                        committed,
                    },
                )
            })
            .collect(),
        objects,
        ..Inputs::default()
    }
}

#[test]
fn a_complete_bucket_is_clean() {
    let report = compare(&inputs(
        &[(0, 0, 100, Some(100)), (1, 0, 0, None)],
        vec![object(0, 0, 49), object(0, 50, 99)],
    ));
    assert!(report.is_clean(), "{report:#?}");
    assert_eq!(report.partitions[0].stored, 100);
    assert_eq!(report.partitions[0].objects, 2);
    assert!(report.partitions[0].uncommitted.is_empty());
    assert!(report.partitions[1].missing.is_empty());
}

#[test]
fn a_deleted_object_is_exactly_its_missing_range() {
    let report = compare(&inputs(
        &[(0, 0, 150, Some(150))],
        vec![object(0, 0, 49), object(0, 100, 149)],
    ));
    assert!(!report.is_clean());
    assert_eq!(report.partitions[0].missing, Offsets::range(50, 99));
    assert_eq!(report.missing(), 50);
    assert!(report.partitions[0].duplicated.is_empty());
    assert!(report.foreign.is_empty());
}

#[test]
fn missing_is_looked_for_from_the_low_watermark_or_from_offset_to_the_commit() {
    let objects = vec![object(0, 100, 149), object(0, 150, 199)];
    let report = compare(&inputs(&[(0, 100, 250, Some(200))], objects.clone()));
    assert!(report.is_clean(), "{report:#?}");
    assert_eq!(report.partitions[0].uncommitted, vec![]);
    let mut from_zero = inputs(&[(0, 100, 250, Some(200))], objects.clone());
    from_zero.from_offset = Some(90);
    let report = compare(&from_zero);
    assert_eq!(report.partitions[0].missing, Offsets::range(90, 99));
    assert_eq!(
        report.partitions[0].missing_below_low,
        Offsets::range(90, 99)
    );
    let mut from_later = inputs(&[(0, 0, 250, Some(200))], objects);
    from_later.from_offset = Some(100);
    assert!(compare(&from_later).is_clean());
}

#[test]
fn routed_offsets_count_and_metadata_routed_offsets_must_be_in_an_error_topic() {
    let mut object = object(0, 0, 9);
    object.metadata = labelled(0, 0, 9, 8, "3,7");
    let mut input = inputs(&[(0, 0, 10, Some(10))], vec![object]);
    input.routed = vec![routed(0, 3, "dlq", 0)];
    let report = compare(&input);
    assert_eq!(report.partitions[0].missing, Offsets::range(7, 7));
    assert_eq!(report.partitions[0].routed, 1);
    input.routed.push(routed(0, 7, "dlq", 1));
    let report = compare(&input);
    assert!(report.is_clean(), "{report:#?}");
    // The same record routed twice is a repeat (error topics are at-least-once).
    input.routed.push(routed(0, 7, "dlq", 2));
    let report = compare(&input);
    assert!(report.is_clean(), "{report:#?}");
    assert_eq!(
        report.partitions[0].repeated_routed,
        vec![(7, vec!["dlq[0]@1".to_owned(), "dlq[0]@2".to_owned()])]
    );
}

#[test]
fn an_offset_in_an_object_and_an_error_topic_is_duplicated_unless_an_oversize_copy() {
    let mut input = inputs(&[(0, 0, 10, Some(10))], vec![object(0, 0, 9)]);
    input.routed = vec![routed(0, 4, "dlq", 0)];
    let report = compare(&input);
    assert_eq!(
        report.partitions[0].duplicated,
        vec![Duplicate {
            first: 4,
            last: 4,
            holders: vec![key(0, 0, 9), "error topic dlq".to_owned()]
        }]
    );
    assert!(!report.is_clean());
    input.routed[0].oversize = true;
    assert!(compare(&input).is_clean());
}

#[test]
fn a_copy_with_an_overlapping_key_is_an_overlap_and_its_offsets_duplicates() {
    // Unlabelled objects (no metadata) counted by key.
    let objects = vec![
        ListedObject {
            key: key(0, 0, 49),
            ..ListedObject::default()
        },
        ListedObject {
            key: key(0, 50, 99),
            ..ListedObject::default()
        },
        ListedObject {
            key: key(0, 40, 89),
            ..ListedObject::default()
        },
    ];
    let mut input = inputs(&[(0, 0, 100, Some(100))], objects);
    input.accept_unlabelled = true;
    let report = compare(&input);
    let partition = &report.partitions[0];
    assert_eq!(
        partition.overlapping,
        vec![
            Overlap {
                keys: [key(0, 0, 49), key(0, 40, 89)],
                first: 40,
                last: 49
            },
            Overlap {
                keys: [key(0, 40, 89), key(0, 50, 99)],
                first: 50,
                last: 89
            },
        ]
    );
    assert_eq!(
        partition.duplicated,
        vec![
            Duplicate {
                first: 40,
                last: 49,
                holders: vec![key(0, 0, 49), key(0, 40, 89)]
            },
            Duplicate {
                first: 50,
                last: 89,
                holders: vec![key(0, 40, 89), key(0, 50, 99)]
            },
        ]
    );
    assert!(report.foreign.is_empty());
    assert_eq!(report.unlabelled, 3);
    assert!(!report.is_clean());
}

#[test]
fn a_labelled_copy_under_another_key_is_foreign_and_counts_for_nothing() {
    let mut copy = object(0, 0, 49);
    copy.key = key(0, 40, 89);
    let report = compare(&inputs(
        &[(0, 0, 100, Some(100))],
        vec![object(0, 0, 49), object(0, 50, 99), copy],
    ));
    assert_eq!(report.partitions[0].overlapping.len(), 2);
    assert!(report.partitions[0].duplicated.is_empty());
    assert_eq!(report.foreign.len(), 1);
    assert_eq!(report.foreign[0].key, key(0, 40, 89));
    assert!(report.foreign[0].reason.contains("offsets 0-49"));
}

#[test]
fn unlabelled_objects_are_foreign_unless_accepted_and_count_either_way() {
    let objects = vec![ListedObject {
        key: key(0, 0, 9),
        ..ListedObject::default()
    }];
    let mut input = inputs(&[(0, 0, 10, Some(10))], objects);
    let report = compare(&input);
    assert_eq!(report.foreign.len(), 1);
    assert!(report.partitions[0].missing.is_empty());
    input.accept_unlabelled = true;
    assert!(compare(&input).is_clean());
}

#[test]
fn unlabelled_objects_read_by_key_lack_the_offsets_routed_from_their_range() {
    let objects = vec![ListedObject {
        key: key(0, 0, 9),
        ..ListedObject::default()
    }];
    let mut input = inputs(&[(0, 0, 10, Some(10))], objects);
    input.accept_unlabelled = true;
    input.routed = vec![routed(0, 4, "dlq", 0)];
    let report = compare(&input);
    assert!(report.is_clean(), "{report:#?}");
    assert_eq!(report.partitions[0].stored, 9);
    assert_eq!(report.partitions[0].routed, 1);
}

#[test]
fn keys_not_ours_and_unknown_partitions_and_offsets_past_the_end_are_foreign() {
    let stray = ListedObject {
        key: "p/orders/0/notes.txt".into(),
        ..ListedObject::default()
    };
    let report = compare(&inputs(
        &[(0, 0, 10, Some(10))],
        vec![object(0, 0, 9), object(3, 0, 9), object(0, 10, 19), stray],
    ));
    let foreign: Vec<(&str, &str)> = report
        .foreign
        .iter()
        .map(|f| (f.key.as_str(), f.reason.as_str()))
        .collect();
    assert_eq!(foreign.len(), 3, "{foreign:#?}");
    assert!(foreign[0].1.contains("no partition 3"));
    assert!(foreign[1].1.contains("past the partition's end 10"));
    assert_eq!(foreign[2].0, "p/orders/0/notes.txt");
    assert!(foreign[2].1.contains("its key is not"));
    assert_eq!(report.partitions[0].stored, 10);
}

#[test]
fn uncommitted_objects_are_listed_but_clean() {
    let report = compare(&inputs(
        &[(0, 0, 100, Some(50))],
        vec![object(0, 0, 49), object(0, 50, 99)],
    ));
    assert!(report.is_clean());
    assert_eq!(
        report.partitions[0].uncommitted,
        vec![Span {
            key: key(0, 50, 99),
            first: 50,
            last: 99
        }]
    );
}

#[test]
fn deep_tells_offsets_the_broker_does_not_have_from_lost_ones() {
    // Compaction removed 10-14 and 30; 20-24 were lost.
    let body = |offsets: Vec<i64>| {
        let records: Vec<_> = offsets
            .iter()
            .map(|o| {
                serde_json::json!({"key": null, "offset": o, "overflowFlag": false,
                "partition": 0, "timestamp": 1, "topic": "orders", "value": "v", "valueSize": 1})
            })
            .collect();
        Some(Body::parse(&serde_json::to_vec(&records).unwrap()))
    };
    let objects = vec![
        ListedObject {
            key: key(0, 0, 9),
            metadata: labelled(0, 0, 9, 10, ""),
            body: body((0..10).collect()),
        },
        ListedObject {
            key: key(0, 15, 19),
            metadata: labelled(0, 15, 19, 5, ""),
            body: body((15..20).collect()),
        },
        ListedObject {
            key: key(0, 25, 39),
            metadata: labelled(0, 25, 39, 14, ""),
            body: body((25..40).filter(|&o| o != 30).collect()),
        },
    ];
    let mut input = inputs(&[(0, 0, 40, Some(40))], objects);
    input.deep = true;
    input.scans.insert(
        0,
        BrokerScan {
            from: 0,
            to: 40,
            present: Offsets::from_ranges([(0, 9), (15, 29), (31, 39)]),
            prints: HashMap::new(),
        },
    );
    let report = compare(&input);
    let partition = &report.partitions[0];
    assert_eq!(partition.missing, Offsets::range(20, 24));
    assert_eq!(partition.not_on_broker.to_string(), "10-14, 30");
    assert_eq!(partition.stored, 29);
    assert!(partition.notes.is_empty(), "{:?}", partition.notes);
}

#[test]
fn metadata_gaps_are_noted_not_missing() {
    let mut object = object(0, 0, 9);
    object.metadata = labelled(0, 0, 9, 7, "");
    let report = compare(&inputs(&[(0, 0, 10, Some(10))], vec![object]));
    assert!(report.is_clean());
    assert_eq!(report.partitions[0].stored, 7);
    assert!(report.partitions[0].notes[0].contains("3 offset(s) of its range 0-9"));
}

#[test]
fn duplicates_merge_ranges_with_the_same_holders() {
    let holders = vec![
        ("a".to_owned(), Offsets::from_ranges([(0, 9), (20, 29)])),
        ("b".to_owned(), Offsets::from_ranges([(5, 24)])),
        ("c".to_owned(), Offsets::from_ranges([(7, 7)])),
    ];
    assert_eq!(
        duplicates(&holders),
        vec![
            (5, 6, vec![0, 1]),
            (7, 7, vec![0, 1, 2]),
            (8, 9, vec![0, 1]),
            (20, 24, vec![0, 1]),
        ]
    );
    let edge = vec![
        ("a".to_owned(), Offsets::range(i64::MAX - 1, i64::MAX)),
        ("b".to_owned(), Offsets::range(i64::MAX, i64::MAX)),
    ];
    assert_eq!(duplicates(&edge), vec![(i64::MAX, i64::MAX, vec![0, 1])]);
}
