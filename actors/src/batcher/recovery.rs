//! Recovery by listing: which offsets are already in the bucket when a partition starts.
//!
//! After a crash or a rebalance between an upload and its commit, objects past the committed
//! offset may already be stored. When a partition's first records arrive, its batcher lists the
//! partition's objects from the first offset read on and builds a [`Recovery`] from their keys.
//! A listed object is trusted only after [`verify`]: its metadata must name this topic,
//! partition and range, and the fingerprint of the record just read at its first (or last)
//! offset must match. Then its records are not written again (the open object is sealed just
//! before the range, and the range becomes committable). Anything else is a foreign object: the
//! partition stops rather than skip records that may be in no object at all (a recreated topic,
//! another cluster writing the same prefix, a copied folder). Pure: no I/O here.

use std::collections::{HashMap, VecDeque};

use crate::metadata::{Fingerprint, ObjectMetadata};
use crate::object_key::parse_partition_key;

/// A listed object that may hold offsets `first..=last` of the partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub first: i64,
    pub last: i64,
    pub key: String,
}

/// Listed objects not yet reached, in offset order.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Recovery {
    candidates: VecDeque<Candidate>,
}

impl Recovery {
    /// From the keys listed under `partition_prefix`; keys that are not object keys of this
    /// partition (another shape, a subfolder) are ignored: they can never collide with ours.
    pub fn from_keys<'a>(partition_prefix: &str, keys: impl IntoIterator<Item = &'a str>) -> Self {
        Recovery::from_parsed(keys, |key| parse_partition_key(partition_prefix, key))
    }

    /// From listed keys, with `parse` giving the offsets of the partition's object keys (`None`
    /// for any other key; see [`crate::key_template::KeyTemplate::parse_key`]).
    pub fn from_parsed<'a>(
        keys: impl IntoIterator<Item = &'a str>,
        parse: impl Fn(&str) -> Option<(i64, i64)>,
    ) -> Self {
        let mut candidates: Vec<Candidate> = keys
            .into_iter()
            .filter_map(|key| {
                let (first, last) = parse(key)?;
                Some(Candidate {
                    first,
                    last,
                    key: key.to_owned(),
                })
            })
            .collect();
        candidates.sort_unstable_by_key(|candidate| (candidate.first, candidate.last));
        Recovery {
            candidates: candidates.into(),
        }
    }

    /// Nothing listed.
    pub fn empty() -> Self {
        Recovery::default()
    }

    /// The listed object that starts at or before `offset` and holds it, taken out of the
    /// recovery (each is reported once). Offsets must be asked in increasing order: objects that
    /// end before `offset` are dropped.
    pub fn take_covering(&mut self, offset: i64) -> Option<Candidate> {
        while self
            .candidates
            .front()
            .is_some_and(|candidate| candidate.last < offset)
        {
            self.candidates.pop_front();
        }
        if self.candidates.front()?.first > offset {
            return None;
        }
        self.candidates.pop_front()
    }
}

/// What a listed object turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The object holds the partition's records from `first` to `last`: they are not written
    /// again. `check_last`: the record read was not the object's first, so the fingerprint of
    /// the last record is still to compare when it is read.
    Ours { check_last: Option<Fingerprint> },
    /// The object went away between the listing and now: write the records as usual.
    Gone,
    /// Not this partition's records; the reason in words.
    Foreign(String),
}

/// Compares a listed object's metadata (`None`: no object any more) with the record just read
/// at `offset` (inside the candidate's range), whose fingerprint is `record`.
pub fn verify(
    candidate: &Candidate,
    metadata: Option<&HashMap<String, String>>,
    topic: &str,
    partition: i32,
    offset: i64,
    record: Fingerprint,
) -> Verdict {
    let Some(metadata) = metadata else {
        return Verdict::Gone;
    };
    let found = match ObjectMetadata::from_map(metadata) {
        Ok(found) => found,
        Err(error) => return Verdict::Foreign(error.to_string()),
    };
    if (found.topic.as_str(), found.partition) != (topic, partition) {
        return Verdict::Foreign(format!(
            "it holds records of {}/{}",
            found.topic, found.partition
        ));
    }
    if (found.first_offset, found.last_offset) != (candidate.first, candidate.last) {
        return Verdict::Foreign(format!(
            "its metadata says offsets {}..={}, its key {}..={}",
            found.first_offset, found.last_offset, candidate.first, candidate.last
        ));
    }
    let (expected, which) = if offset == found.first_offset {
        (found.first_record, "first")
    } else if offset == found.last_offset {
        (found.last_record, "last")
    } else {
        // Started inside the range (the records before it are gone: compaction, retention):
        // the last record decides.
        return Verdict::Ours {
            check_last: Some(found.last_record),
        };
    };
    if expected == record {
        Verdict::Ours { check_last: None }
    } else {
        Verdict::Foreign(mismatch(which, offset, expected, record))
    }
}

/// The reason given when a record read differs from the one an object says it holds.
pub fn mismatch(which: &str, offset: i64, expected: Fingerprint, read: Fingerprint) -> String {
    format!(
        "its {which} record (offset {offset}) differs from the topic's: fingerprint {expected} in \
         the bucket, {read} read (the topic was recreated, or another cluster or connector writes \
         this prefix)"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::object_key::{object_key, partition_prefix};

    fn keys(ranges: &[(i64, i64)]) -> Vec<String> {
        ranges
            .iter()
            .map(|&(first, last)| object_key("p/", "t", 0, first, last))
            .collect()
    }

    fn recovery(listed: &[String]) -> Recovery {
        Recovery::from_keys(
            &partition_prefix("p/", "t", 0),
            listed.iter().map(String::as_str),
        )
    }

    fn range(candidate: Option<Candidate>) -> Option<(i64, i64)> {
        candidate.map(|candidate| (candidate.first, candidate.last))
    }

    #[test]
    fn ranges_are_found_in_order_once() {
        let listed = keys(&[(20, 29), (0, 9), (10, 19)]);
        let mut recovery = recovery(&listed);
        let first = recovery.take_covering(5).unwrap();
        assert_eq!((first.first, first.last), (0, 9));
        assert_eq!(first.key, listed[1]);
        // Taken: the rest of the range is skipped by the caller, not found again.
        assert_eq!(recovery.take_covering(6), None);
        assert_eq!(range(recovery.take_covering(10)), Some((10, 19)));
        assert_eq!(recovery.take_covering(40), None);
        assert_eq!(recovery, Recovery::empty());
    }

    #[test]
    fn an_offset_before_a_range_is_not_covered() {
        let listed = keys(&[(10, 19)]);
        let mut recovery = recovery(&listed);
        assert_eq!(recovery.take_covering(3), None);
        assert_eq!(range(recovery.take_covering(12)), Some((10, 19)));
    }

    #[test]
    fn keys_in_subfolders_or_of_another_shape_are_not_candidates() {
        let mut listed = keys(&[(0, 9)]);
        listed.push(format!(
            "p/t/0/backup/{}",
            listed[0].rsplit('/').next().unwrap()
        ));
        listed.push("p/t/0/-0000000000000000001-00000000000000000005.json".into());
        let mut recovery = recovery(&listed);
        assert_eq!(range(recovery.take_covering(0)), Some((0, 9)));
        assert_eq!(recovery, Recovery::empty());
    }

    fn ours(first: i64, last: i64) -> (Candidate, HashMap<String, String>) {
        let metadata = ObjectMetadata {
            topic: "t".into(),
            partition: 0,
            first_offset: first,
            last_offset: last,
            records: (last - first + 1) as usize,
            first_record: Fingerprint::of(100, None, Some(b"first")),
            last_record: Fingerprint::of(200, None, Some(b"last")),
            connector: "c".into(),
            generation: -1,
            routed: Vec::new(),
            body_format: "json_array".into(),
        };
        let map = metadata
            .to_pairs()
            .into_iter()
            .map(|(name, value)| (name.to_owned(), value))
            .collect();
        (
            Candidate {
                first,
                last,
                key: object_key("p/", "t", 0, first, last),
            },
            map,
        )
    }

    #[test]
    fn an_object_is_ours_only_if_the_record_read_matches() {
        let (candidate, map) = ours(10, 19);
        let first = Fingerprint::of(100, None, Some(b"first"));
        let last = Fingerprint::of(200, None, Some(b"last"));
        let other = Fingerprint::of(101, None, Some(b"first"));
        let check = |offset, record| verify(&candidate, Some(&map), "t", 0, offset, record);
        assert_eq!(check(10, first), Verdict::Ours { check_last: None });
        assert_eq!(check(19, last), Verdict::Ours { check_last: None });
        assert_eq!(
            check(12, other),
            Verdict::Ours {
                check_last: Some(last)
            }
        );
        let Verdict::Foreign(reason) = check(10, other) else {
            panic!("a different first record must be foreign");
        };
        assert!(reason.contains("recreated"), "{reason}");
        assert!(matches!(check(19, first), Verdict::Foreign(_)));
    }

    #[test]
    fn objects_without_metadata_or_of_another_partition_are_foreign() {
        let (candidate, mut map) = ours(10, 19);
        let first = Fingerprint::of(100, None, Some(b"first"));
        assert_eq!(verify(&candidate, None, "t", 0, 10, first), Verdict::Gone);
        assert!(matches!(
            verify(&candidate, Some(&map), "t", 1, 10, first),
            Verdict::Foreign(reason) if reason.contains("t/0")
        ));
        assert!(matches!(
            verify(&candidate, Some(&map), "u", 0, 10, first),
            Verdict::Foreign(_)
        ));
        map.insert("kos-last-offset".into(), "18".into());
        assert!(matches!(
            verify(&candidate, Some(&map), "t", 0, 10, first),
            Verdict::Foreign(reason) if reason.contains("10..=18")
        ));
        assert!(matches!(
            verify(&candidate, Some(&HashMap::new()), "t", 0, 10, first),
            Verdict::Foreign(reason) if reason.contains("no kafka-oss-sink metadata")
        ));
    }
}
