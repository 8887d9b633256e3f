use super::*;

const FOLDER: &str = "p/orders/";

fn key(partition: i32, first: i64, last: i64) -> String {
    actors::object_key::object_key("p/", "orders", partition, first, last)
}

/// The metadata the connector writes for an object of `orders`.
pub fn metadata(
    partition: i32,
    first: i64,
    last: i64,
    records: u64,
    routed: &str,
) -> BTreeMap<String, String> {
    let mut map: BTreeMap<String, String> = [
        ("kos-format", FORMAT.to_owned()),
        ("kos-topic", "orders".to_owned()),
        ("kos-partition", partition.to_string()),
        ("kos-first-offset", first.to_string()),
        ("kos-last-offset", last.to_string()),
        ("kos-records", records.to_string()),
        ("kos-first-record", "1-00000000".to_owned()),
        ("kos-last-record", "1-00000000".to_owned()),
        ("kos-connector", "c".to_owned()),
        ("kos-generation", "-1".to_owned()),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_owned(), value))
    .collect();
    if !routed.is_empty() {
        map.insert("kos-routed".into(), routed.into());
    }
    map
}

fn body(topic: &str, partition: i32, offsets: &[i64]) -> Vec<u8> {
    let records: Vec<_> = offsets
        .iter()
        .map(|offset| {
            serde_json::json!({"key": format!("k{offset}"), "offset": offset, "overflowFlag": false,
                "partition": partition, "timestamp": 1000 + offset, "topic": topic,
                "value": format!("v{offset}"), "valueSize": 3})
        })
        .collect();
    serde_json::to_vec(&records).unwrap()
}

fn judged(object: ListedObject) -> Verdict {
    let parsed = parse_key(FOLDER, &object.key).expect("our key");
    judge(&object, "orders", parsed, |_| None)
}

#[test]
fn keys_parse_only_in_the_connector_layout() {
    assert_eq!(parse_key(FOLDER, &key(3, 42, 99)), Some((3, 42, 99)));
    assert_eq!(parse_key(FOLDER, &key(0, 0, 0)), Some((0, 0, 0)));
    for foreign in [
        "p/orders/0/backup/00000000000000000000-00000000000000000099.json",
        "p/orders/00/00000000000000000000-00000000000000000099.json",
        "p/orders/+1/00000000000000000000-00000000000000000099.json",
        "p/orders/-1/00000000000000000000-00000000000000000099.json",
        "p/orders/1/-0000000000000000001-00000000000000000099.json",
        "p/orders/1/00000000000000000099-00000000000000000000.json",
        "p/orders/1/0000000000000000000-00000000000000000099.json",
        "p/orders/1/00000000000000000000-00000000000000000099.json.bak",
        "p/orders/1/notes.txt",
        "p/orders/notes.txt",
        "p/orders/99999999999/00000000000000000000-00000000000000000099.json",
        "q/orders/1/00000000000000000000-00000000000000000099.json",
    ] {
        assert_eq!(parse_key(FOLDER, foreign), None, "{foreign}");
    }
}

#[test]
fn metadata_gives_the_range_minus_routed_offsets() {
    let verdict = judged(ListedObject {
        key: key(1, 10, 19),
        metadata: metadata(1, 10, 19, 8, "12,17"),
        body: None,
    });
    assert_eq!(
        verdict,
        Verdict::Ours {
            offsets: Offsets::from_ranges([(10, 11), (13, 16), (18, 19)]),
            unknown_gaps: 0
        }
    );
    // Two records fewer than the range minus routed: gaps the metadata cannot place.
    let verdict = judged(ListedObject {
        key: key(1, 10, 19),
        metadata: metadata(1, 10, 19, 6, "12,17"),
        body: None,
    });
    assert!(
        matches!(
            verdict,
            Verdict::Ours {
                unknown_gaps: 2,
                ..
            }
        ),
        "{verdict:?}"
    );
}

#[test]
fn metadata_that_disagrees_with_the_key_or_itself_is_foreign() {
    let cases: [(BTreeMap<String, String>, &str); 7] = [
        (metadata(2, 10, 19, 10, ""), "partition 2"),
        (metadata(1, 0, 19, 10, ""), "offsets 0-19"),
        (
            {
                let mut m = metadata(1, 10, 19, 10, "");
                m.insert("kos-topic".into(), "payments".into());
                m
            },
            "topic `payments`",
        ),
        (metadata(1, 10, 19, 10, "12"), "more than its range"),
        (metadata(1, 10, 19, 5, "9"), "outside 10-19"),
        (metadata(1, 10, 19, 5, "x"), "not a list of offsets"),
        (
            {
                let mut m = metadata(1, 10, 19, 10, "");
                m.insert("kos-format".into(), "2".into());
                m
            },
            "kos-format=2",
        ),
    ];
    for (metadata, expected) in cases {
        match judged(ListedObject {
            key: key(1, 10, 19),
            metadata,
            body: None,
        }) {
            Verdict::Foreign(reason) => assert!(reason.contains(expected), "{reason}"),
            other => panic!("expected foreign ({expected}), got {other:?}"),
        }
    }
}

#[test]
fn without_metadata_the_key_or_the_body_gives_the_offsets() {
    let by_key = judged(ListedObject {
        key: key(1, 10, 19),
        ..ListedObject::default()
    });
    assert_eq!(
        by_key,
        Verdict::Unlabelled {
            offsets: Offsets::range(10, 19),
            by_key: true
        }
    );
    let by_body = judged(ListedObject {
        key: key(1, 10, 19),
        body: Some(Body::parse(&body("orders", 1, &[10, 11, 15, 19]))),
        ..ListedObject::default()
    });
    assert_eq!(
        by_body,
        Verdict::Unlabelled {
            offsets: Offsets::from_ranges([(10, 11), (15, 15), (19, 19)]),
            by_key: false
        }
    );
}

#[test]
fn a_body_that_disagrees_with_the_key_or_the_metadata_is_foreign() {
    let cases: [(Vec<u8>, BTreeMap<String, String>, &str); 7] = [
        (
            body("orders", 1, &[10, 12]),
            BTreeMap::new(),
            "offsets 10-12, its key says 10-19",
        ),
        (body("orders", 2, &[10, 19]), BTreeMap::new(), "partition 2"),
        (
            body("payments", 1, &[10, 19]),
            BTreeMap::new(),
            "topic `payments`",
        ),
        (
            body("orders", 1, &[10, 15, 15, 19]),
            BTreeMap::new(),
            "not increasing",
        ),
        (b"not json".to_vec(), BTreeMap::new(), "not a JSON array"),
        (
            body("orders", 1, &[10, 19]),
            metadata(1, 10, 19, 3, ""),
            "counts 3 records",
        ),
        (
            body("orders", 1, &[10, 12, 19]),
            metadata(1, 10, 19, 3, "12"),
            "offsets 12 are in its body",
        ),
    ];
    for (bytes, metadata, expected) in cases {
        match judged(ListedObject {
            key: key(1, 10, 19),
            metadata,
            body: Some(Body::parse(&bytes)),
        }) {
            Verdict::Foreign(reason) => assert!(reason.contains(expected), "{reason}"),
            other => panic!("expected foreign ({expected}), got {other:?}"),
        }
    }
    let mut mixed: Vec<serde_json::Value> =
        serde_json::from_slice(&body("orders", 1, &[10, 19])).unwrap();
    mixed[1]["partition"] = 4.into();
    let verdict = judged(ListedObject {
        key: key(1, 10, 19),
        body: Some(Body::parse(&serde_json::to_vec(&mixed).unwrap())),
        ..ListedObject::default()
    });
    assert_eq!(
        verdict,
        Verdict::Foreign(
            "its body mixes partitions: offset 19 is from topic `orders` partition 4".into()
        )
    );
}

#[test]
fn with_metadata_and_body_the_body_places_the_gaps() {
    let verdict = judged(ListedObject {
        key: key(1, 10, 19),
        metadata: metadata(1, 10, 19, 3, "12"),
        body: Some(Body::parse(&body("orders", 1, &[10, 11, 19]))),
    });
    assert_eq!(
        verdict,
        Verdict::Ours {
            offsets: Offsets::from_ranges([(10, 11), (19, 19)]),
            unknown_gaps: 0
        }
    );
}

#[test]
fn records_that_differ_from_the_brokers_make_the_object_foreign() {
    let object = ListedObject {
        key: key(1, 10, 19),
        metadata: metadata(1, 10, 19, 2, ""),
        body: Some(Body::parse(&body("orders", 1, &[10, 19]))),
    };
    let same = |offset: i64| {
        let (k, v) = (format!("k{offset}"), format!("v{offset}"));
        Some(Print::of(
            offset,
            1000 + offset,
            Some(k.as_bytes()),
            Some(v.as_bytes()),
        ))
    };
    assert!(matches!(
        judge(&object, "orders", (1, 10, 19), same),
        Verdict::Ours { .. }
    ));
    let recreated = |offset: i64| Some(Print::of(offset, 5, Some(b"other"), None));
    match judge(&object, "orders", (1, 10, 19), recreated) {
        Verdict::Foreign(reason) => assert!(reason.contains("offset 10 differs"), "{reason}"),
        other => panic!("{other:?}"),
    }
    // An overflowed value is not in the object, so only key and timestamp are compared.
    let mut records: Vec<serde_json::Value> =
        serde_json::from_slice(&body("orders", 1, &[10, 19])).unwrap();
    records[0]["value"] = serde_json::Value::Null;
    records[0]["overflowFlag"] = true.into();
    let object = ListedObject {
        body: Some(Body::parse(&serde_json::to_vec(&records).unwrap())),
        ..object
    };
    assert!(matches!(
        judge(&object, "orders", (1, 10, 19), same),
        Verdict::Ours { .. }
    ));
}
