//! The comparison itself, pure: listed objects, the partitions' offsets on the broker and the
//! group, and the records routed to the error topics go in; a [`Report`] comes out.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::objects::{judge, parse_key, ListedObject, Print, Verdict};
use super::ranges::Offsets;

/// One partition's offsets on the broker and in the group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionOffsets {
    /// Low and high watermark: the broker holds offsets `low..high`.
    pub low: i64,
    pub high: i64,
    /// The group's committed offset (the next offset to read), if it has one.
    pub committed: Option<i64>,
}

/// A record of the source topic found in an error topic (`__connect.errors.*` headers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Routed {
    pub partition: i32,
    pub offset: i64,
    /// The error topic it is in.
    pub topic: String,
    /// Where in that topic: `topic[partition]@offset`.
    pub location: String,
    /// Forwarded because its value was over `failure.max_value_bytes`: it is also in its object
    /// (`overflowFlag`), so it is a copy, not a second delivery.
    pub oversize: bool,
}

/// What a `--deep` read of a source partition found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BrokerScan {
    /// The offsets read were `from..to`.
    pub from: i64,
    pub to: i64,
    /// The offsets the broker returned in that range.
    pub present: Offsets,
    /// The records at the offsets asked for (first and last record of each object).
    pub prints: HashMap<i64, Print>,
}

/// Everything the comparison looks at.
#[derive(Debug, Clone, Default)]
pub struct Inputs {
    pub topic: String,
    /// `{key_prefix}{topic}/`: every object under it is judged.
    pub folder: String,
    pub partitions: BTreeMap<i32, PartitionOffsets>,
    pub objects: Vec<ListedObject>,
    pub routed: Vec<Routed>,
    /// Per partition, with `--deep`; empty otherwise.
    pub scans: BTreeMap<i32, BrokerScan>,
    /// Check for missing offsets from here instead of the low watermark.
    pub from_offset: Option<i64>,
    /// Objects without `kos-format` metadata are not reported foreign (they still count).
    pub accept_unlabelled: bool,
    pub deep: bool,
}

/// The result, per partition plus the foreign objects.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Report {
    pub partitions: Vec<PartitionReport>,
    pub foreign: Vec<Foreign>,
    /// Objects without metadata whose offsets were counted.
    pub unlabelled: usize,
    pub deep: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Foreign {
    pub key: String,
    pub reason: String,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct PartitionReport {
    pub partition: i32,
    pub low: i64,
    pub high: i64,
    pub committed: Option<i64>,
    /// Missing offsets are looked for in `start..committed`.
    pub start: i64,
    /// Objects whose offsets count (ours, and unlabelled ones).
    pub objects: usize,
    /// Offsets stored in those objects.
    pub stored: u64,
    /// Offsets of this partition in the error topics.
    pub routed: u64,
    /// Offsets in `start..committed` in neither an object nor an error topic.
    pub missing: Offsets,
    /// The part of `missing` below the low watermark: the broker no longer has them, so whether
    /// they ever existed cannot be told.
    pub missing_below_low: Offsets,
    /// Offsets that would be missing, but the broker returned no record for them (`--deep`):
    /// removed by compaction, or transaction markers.
    pub not_on_broker: Offsets,
    pub duplicated: Vec<Duplicate>,
    pub overlapping: Vec<Overlap>,
    /// Objects holding offsets at or past the committed offset: stored but not committed yet,
    /// what a restart's recovery picks up (not a problem).
    pub uncommitted: Vec<Span>,
    /// Offsets routed to the error topics more than once (allowed: those are at-least-once).
    pub repeated_routed: Vec<(i64, Vec<String>)>,
    pub notes: Vec<String>,
}

/// Offsets held by more than one object, or by an object and an error topic.
#[derive(Debug, Clone, PartialEq)]
pub struct Duplicate {
    pub first: i64,
    pub last: i64,
    /// Object keys and `error topic <name>`.
    pub holders: Vec<String>,
}

/// Two objects whose key ranges intersect.
#[derive(Debug, Clone, PartialEq)]
pub struct Overlap {
    pub keys: [String; 2],
    pub first: i64,
    pub last: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Span {
    pub key: String,
    pub first: i64,
    pub last: i64,
}

impl Report {
    /// No missing or duplicated offset, no overlapping or foreign object.
    pub fn is_clean(&self) -> bool {
        self.foreign.is_empty()
            && self.partitions.iter().all(|partition| {
                partition.missing.is_empty()
                    && partition.duplicated.is_empty()
                    && partition.overlapping.is_empty()
            })
    }

    pub fn missing(&self) -> u64 {
        self.partitions.iter().map(|p| p.missing.count()).sum()
    }

    pub fn duplicated(&self) -> u64 {
        self.partitions
            .iter()
            .flat_map(|p| &p.duplicated)
            .map(|d| (d.last - d.first) as u64 + 1)
            .sum()
    }

    pub fn overlapping(&self) -> usize {
        self.partitions.iter().map(|p| p.overlapping.len()).sum()
    }
}

/// What one parsed object is, in its partition.
struct Judged<'a> {
    key: &'a str,
    first: i64,
    last: i64,
    verdict: Verdict,
}

/// Compares the bucket with the broker and the group.
pub fn compare(inputs: &Inputs) -> Report {
    let mut report = Report {
        deep: inputs.deep,
        ..Report::default()
    };
    let mut by_partition: BTreeMap<i32, Vec<Judged<'_>>> = BTreeMap::new();
    for object in &inputs.objects {
        let Some((partition, first, last)) = parse_key(&inputs.folder, &object.key) else {
            report.foreign.push(Foreign {
                key: object.key.clone(),
                reason: format!(
                    "its key is not {}{{partition}}/{{first offset:020}}-{{last offset:020}}.json",
                    inputs.folder
                ),
            });
            continue;
        };
        let Some(offsets) = inputs.partitions.get(&partition) else {
            report.foreign.push(Foreign {
                key: object.key.clone(),
                reason: format!(
                    "topic `{}` has no partition {partition} (partitions 0-{})",
                    inputs.topic,
                    inputs.partitions.len() as i64 - 1
                ),
            });
            continue;
        };
        let scan = inputs.scans.get(&partition);
        let mut verdict = judge(object, &inputs.topic, (partition, first, last), |offset| {
            scan.and_then(|scan| scan.prints.get(&offset).copied())
        });
        if verdict.offsets().is_some() && last >= offsets.high {
            verdict = Verdict::Foreign(format!(
                "it holds offsets up to {last}, past the partition's end {} (the topic was \
                 recreated, or another cluster wrote under this prefix)",
                offsets.high
            ));
        }
        match &verdict {
            Verdict::Foreign(reason) => report.foreign.push(Foreign {
                key: object.key.clone(),
                reason: reason.clone(),
            }),
            Verdict::Unlabelled { .. } => {
                report.unlabelled += 1;
                if !inputs.accept_unlabelled {
                    report.foreign.push(Foreign {
                        key: object.key.clone(),
                        reason: "it has no kos-format metadata (written by another tool, or by a \
                                 version before object metadata); its offsets were counted"
                            .to_owned(),
                    });
                }
            }
            Verdict::Ours { .. } => {}
        }
        by_partition.entry(partition).or_default().push(Judged {
            key: &object.key,
            first,
            last,
            verdict,
        });
    }
    let mut routed: BTreeMap<i32, Vec<&Routed>> = BTreeMap::new();
    for record in &inputs.routed {
        routed.entry(record.partition).or_default().push(record);
    }
    for (&partition, offsets) in &inputs.partitions {
        let objects = by_partition.remove(&partition).unwrap_or_default();
        let routed = routed.remove(&partition).unwrap_or_default();
        report.partitions.push(compare_partition(
            inputs, partition, *offsets, objects, &routed,
        ));
    }
    for (partition, records) in routed {
        if let Some(first) = records.first() {
            report.foreign.push(Foreign {
                key: first.location.clone(),
                reason: format!(
                    "{} record(s) in the error topics name partition {partition} of topic `{}`, \
                     which does not exist",
                    records.len(),
                    inputs.topic
                ),
            });
        }
    }
    report
}

fn compare_partition(
    inputs: &Inputs,
    partition: i32,
    offsets: PartitionOffsets,
    mut objects: Vec<Judged<'_>>,
    routed: &[&Routed],
) -> PartitionReport {
    objects.sort_by(|a, b| (a.first, a.last, a.key).cmp(&(b.first, b.last, b.key)));
    let start = inputs.from_offset.unwrap_or(offsets.low);
    let mut report = PartitionReport {
        partition,
        low: offsets.low,
        high: offsets.high,
        committed: offsets.committed,
        start,
        ..PartitionReport::default()
    };

    // Every object with a key of ours takes its key range, whatever it holds: recovery by
    // listing trusts key ranges, so intersecting ones matter even when one is foreign.
    report.overlapping = overlaps(&objects);

    // The error topics, per topic. A record there twice is a repeat, not a duplicate; an
    // oversize record's copy is expected (its object holds it with `overflowFlag`).
    let mut per_topic: BTreeMap<&str, Vec<i64>> = BTreeMap::new();
    let mut by_offset: BTreeMap<i64, Vec<String>> = BTreeMap::new();
    for record in routed {
        by_offset
            .entry(record.offset)
            .or_default()
            .push(record.location.clone());
        if !record.oversize {
            per_topic
                .entry(record.topic.as_str())
                .or_default()
                .push(record.offset);
        }
    }
    let routed_offsets = Offsets::from_offsets(by_offset.keys().copied());
    let delivered_routed = Offsets::from_offsets(per_topic.values().flatten().copied());

    let mut holders: Vec<(String, Offsets)> = Vec::new();
    let mut unknown_gaps = 0;
    for object in &objects {
        let Some(held) = object.verdict.offsets() else {
            continue;
        };
        report.objects += 1;
        let held = match object.verdict {
            Verdict::Ours {
                unknown_gaps: gaps, ..
            } => {
                if gaps > 0 {
                    unknown_gaps += gaps;
                    report.notes.push(format!(
                        "{}: {gaps} offset(s) of its range {}-{} are neither in it nor routed, by \
                         its metadata (compaction or transaction markers); --deep places them",
                        object.key, object.first, object.last
                    ));
                }
                held.clone()
            }
            // Without metadata or body, which offsets of its range an object lacks is unknown;
            // those routed to an error topic are taken to be the ones (the connector routes a
            // record instead of storing it), as `kos-routed` would say.
            Verdict::Unlabelled { by_key: true, .. } => held.minus(&delivered_routed),
            _ => held.clone(),
        };
        if offsets
            .committed
            .is_none_or(|committed| object.last >= committed)
        {
            report.uncommitted.push(Span {
                key: object.key.to_owned(),
                first: object.first,
                last: object.last,
            });
        }
        holders.push((object.key.to_owned(), held));
    }
    let stored = Offsets::from_ranges(
        holders
            .iter()
            .flat_map(|(_, held)| held.ranges().iter().copied()),
    );
    report.stored = stored.count().saturating_sub(unknown_gaps);

    let object_holders = holders.len();
    for (topic, offsets) in per_topic {
        holders.push((
            format!("error topic {topic}"),
            Offsets::from_offsets(offsets),
        ));
    }
    report.repeated_routed = by_offset
        .iter()
        .filter(|(_, locations)| locations.len() > 1)
        .map(|(offset, locations)| (*offset, locations.clone()))
        .collect();
    report.routed = routed_offsets.count();
    report.duplicated = duplicates(&holders)
        .into_iter()
        .filter(|(_, _, holding)| holding.iter().any(|&holder| holder < object_holders))
        .map(|(first, last, holding)| Duplicate {
            first,
            last,
            holders: holding.iter().map(|&h| holders[h].0.clone()).collect(),
        })
        .collect();

    match offsets.committed {
        None => report.notes.push(format!(
            "the group has no committed offset for partition {partition}: no offset is promised \
             stored yet"
        )),
        Some(committed) => {
            if committed > offsets.high {
                report.notes.push(format!(
                    "the committed offset {committed} is past the partition's end {} (the topic \
                     was recreated, or the group committed on another cluster)",
                    offsets.high
                ));
            }
            let promised = Offsets::range(start, committed - 1);
            let mut missing = promised.minus(&stored.union(&routed_offsets));
            if let Some(scan) = inputs.scans.get(&partition) {
                let scanned = Offsets::range(scan.from, scan.to - 1);
                report.not_on_broker = missing.intersect(&scanned).minus(&scan.present);
                missing = missing.minus(&report.not_on_broker);
            }
            report.missing_below_low = missing.intersect(&Offsets::range(start, offsets.low - 1));
            if !report.missing_below_low.is_empty() {
                report.notes.push(format!(
                    "offsets {} are below the low watermark {}: the broker no longer has them \
                     (retention), so whether they existed cannot be told",
                    report.missing_below_low, offsets.low
                ));
            }
            if !missing.is_empty() && !inputs.deep {
                report.notes.push(
                    "--deep tells offsets the broker does not have (compaction, transaction \
                     markers) from lost ones"
                        .to_owned(),
                );
            }
            report.missing = missing;
        }
    }
    report
}

/// Pairs of objects whose key ranges intersect, with the intersection.
fn overlaps(sorted: &[Judged<'_>]) -> Vec<Overlap> {
    let mut out = Vec::new();
    let mut open: Vec<&Judged<'_>> = Vec::new();
    for object in sorted {
        open.retain(|earlier| earlier.last >= object.first);
        for earlier in &open {
            out.push(Overlap {
                keys: [earlier.key.to_owned(), object.key.to_owned()],
                first: object.first,
                last: earlier.last.min(object.last),
            });
        }
        open.push(object);
    }
    out
}

/// Maximal ranges held by two holders or more, with the holders' indexes. Adjacent ranges with
/// the same holders are one.
fn duplicates(holders: &[(String, Offsets)]) -> Vec<(i64, i64, Vec<usize>)> {
    // (position, +1 start / -1 end, holder); ends at `last + 1`, in i128 so `i64::MAX` fits.
    let mut events: Vec<(i128, i8, usize)> = Vec::new();
    for (index, (_, held)) in holders.iter().enumerate() {
        for &(first, last) in held.ranges() {
            events.push((i128::from(first), 1, index));
            events.push((i128::from(last) + 1, -1, index));
        }
    }
    events.sort_unstable();
    let mut active: BTreeSet<usize> = BTreeSet::new();
    let mut out: Vec<(i64, i64, Vec<usize>)> = Vec::new();
    let mut index = 0;
    while index < events.len() {
        let position = events[index].0;
        while index < events.len() && events[index].0 == position {
            let (_, kind, holder) = events[index];
            if kind > 0 {
                active.insert(holder);
            } else {
                active.remove(&holder);
            }
            index += 1;
        }
        let Some(&(next, _, _)) = events.get(index) else {
            break;
        };
        if active.len() >= 2 {
            let (first, last) = (position as i64, (next - 1) as i64);
            let holding: Vec<usize> = active.iter().copied().collect();
            match out.last_mut() {
                Some(previous) if previous.1 + 1 == first && previous.2 == holding => {
                    previous.1 = last
                }
                _ => out.push((first, last, holding)),
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
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
                .map(|o| serde_json::json!({"key": null, "offset": o, "overflowFlag": false,
                    "partition": 0, "timestamp": 1, "topic": "orders", "value": "v", "valueSize": 1}))
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
}
