//! The exactly-once check the end-to-end and fault tests end with: the bucket read back, and
//! `reconcile`'s view of it against the group's committed offsets.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Value};

use super::reconcile::Reconciled;
use super::Produced;

/// The bucket read back (`objects`: key and records, as [`super::Stack::objects`] returns them,
/// in key order) holds each record of `produced` once, in an object whose key names its
/// partition and first and last offsets, in offset order, every field as produced, and nothing
/// else. Returns the records by `(partition, offset)`.
///
/// `late` names objects allowed to hold records another object holds too (a zombie's upload
/// that reached the store after its partition moved, B3; a partition a broker gave to two
/// members at once, B6): their copies must be byte for byte the same record.
pub fn assert_bucket_once(
    objects: &[(String, Vec<Value>)],
    topic: &str,
    produced: &BTreeMap<(i32, i64), Produced>,
    late: &BTreeSet<String>,
) -> BTreeMap<(i32, i64), Value> {
    assert_bucket_once_keyed(
        objects,
        topic,
        produced,
        late,
        &|key, partition, first, last| {
            key.ends_with(&format!("{topic}/{partition}/{first:020}-{last:020}.json"))
        },
    )
}

/// Like [`assert_bucket_once`], with `key_names(key, partition, first, last)` deciding whether
/// an object's key names its partition and offsets (a key template other than the default).
pub fn assert_bucket_once_keyed(
    objects: &[(String, Vec<Value>)],
    topic: &str,
    produced: &BTreeMap<(i32, i64), Produced>,
    late: &BTreeSet<String>,
    key_names: &dyn Fn(&str, i32, i64, i64) -> bool,
) -> BTreeMap<(i32, i64), Value> {
    let mut seen: BTreeMap<(i32, i64), Value> = BTreeMap::new();
    let mut last_per_partition: BTreeMap<i32, i64> = BTreeMap::new();
    // Late objects last: a record they hold again is checked against its first copy.
    let mut ordered: Vec<&(String, Vec<Value>)> = objects.iter().collect();
    ordered.sort_by_key(|(key, _)| late.contains(key));
    for (key, records) in ordered {
        assert!(!records.is_empty(), "object {key} is empty");
        let offset = |record: &Value| record["offset"].as_i64().unwrap();
        let partition = records[0]["partition"].as_i64().unwrap() as i32;
        let (first, last) = (offset(&records[0]), offset(&records[records.len() - 1]));
        assert!(
            key_names(key, partition, first, last),
            "key {key} does not name its partition and offsets {first}-{last}"
        );
        let is_late = late.contains(key);
        let mut previous_in_object = None;
        for record in records {
            let id = (record["partition"].as_i64().unwrap() as i32, offset(record));
            assert_eq!(id.0, partition, "object {key} mixes partitions");
            if let Some(previous) = previous_in_object.replace(id.1) {
                assert!(id.1 > previous, "{key}: offset {} after {previous}", id.1);
            }
            if is_late {
                if let Some(first) = seen.get(&id) {
                    assert_eq!(first, record, "{key} holds another record at {id:?}");
                    continue;
                }
            } else if let Some(previous) = last_per_partition.insert(id.0, id.1) {
                assert!(
                    id.1 > previous,
                    "partition {}: offset {} after {previous} (object {key})",
                    id.0,
                    id.1
                );
            }
            assert!(
                seen.insert(id, record.clone()).is_none(),
                "partition {} offset {} is stored twice (again in {key})",
                id.0,
                id.1
            );
        }
    }
    let missing: Vec<_> = produced
        .keys()
        .filter(|id| !seen.contains_key(id))
        .collect();
    assert!(
        missing.is_empty(),
        "{} records missing from the bucket, first: {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    assert_eq!(
        seen.len(),
        produced.len(),
        "the bucket holds records that were never produced"
    );
    let text = |bytes: &Option<Vec<u8>>| match bytes {
        Some(bytes) => Value::String(String::from_utf8(bytes.clone()).unwrap()),
        None => Value::Null,
    };
    for (&(partition, offset), expected) in produced {
        let expected_json = json!({
            "key": text(&expected.key),
            "offset": offset,
            "overflowFlag": false,
            "partition": partition,
            "timestamp": expected.timestamp,
            "topic": topic,
            "value": text(&expected.value),
            "valueSize": expected.value.as_ref().map_or(0, Vec::len),
        });
        assert_eq!(
            seen[&(partition, offset)],
            expected_json,
            "record at partition {partition} offset {offset}"
        );
    }
    seen
}

/// `reconcile --json` found every partition of `produced` committed to its end and nothing
/// stored past the committed offset. (Whether it is clean is the caller's question: some
/// callers excuse what [`assert_bucket_once`]'s `late` excuses.)
pub fn assert_committed_to_end(run: &Reconciled, produced: &BTreeMap<(i32, i64), Produced>) {
    let report = run.json();
    for partition in report["partitions"].as_array().unwrap() {
        assert!(
            partition["missing"].as_array().unwrap().is_empty(),
            "{partition:#}"
        );
        let id = partition["partition"].as_i64().unwrap() as i32;
        let end = produced
            .keys()
            .filter(|(p, _)| *p == id)
            .map(|(_, offset)| offset + 1)
            .max()
            .unwrap_or(0);
        assert_eq!(partition["committed"], end, "{partition:#}");
        assert!(
            partition["uncommitted"].as_array().unwrap().is_empty(),
            "{partition:#}"
        );
    }
}

/// `reconcile` exited 0 with a clean report.
pub fn assert_reconcile_clean(run: &Reconciled) {
    assert_eq!(
        run.code, 0,
        "reconcile finds the copy clean:\n{}{}",
        run.stdout, run.stderr
    );
    assert_eq!(run.json()["clean"], true, "{:#}", run.json());
}
