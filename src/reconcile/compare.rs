//! The comparison itself, pure: listed objects, the partitions' offsets on the broker and the
//! group, and the records routed to the error topics go in; a [`Report`] comes out.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::objects::{judge, parse_object_key, ListedObject, Print, Verdict};
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
    /// `sink.key_template`: how keys under `folder` are parsed.
    pub template: actors::key_template::KeyTemplate,
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
        let Some((partition, first, last)) =
            parse_object_key(&inputs.template, &inputs.folder, &inputs.topic, &object.key)
        else {
            report.foreign.push(Foreign {
                key: object.key.clone(),
                reason: format!(
                    "its key is not {}{} (sink.key_template)",
                    inputs.folder,
                    inputs
                        .template
                        .text()
                        .trim_start_matches("{prefix}")
                        .trim_start_matches("{topic}/"),
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
mod tests;
