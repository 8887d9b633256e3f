//! The watcher's progress: the objects seen so far (ranges parsed from their keys with the
//! product's `actors::object_key` parser), whether they cover every produced offset, and the
//! clock conversions between log lines, listings and this process's `Instant`s.

use std::collections::{BTreeMap, HashMap};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use actors::object_key;

/// An object of the topic, as first seen in a listing.
pub(super) struct SeenObject {
    pub(super) partition: i32,
    pub(super) first: i64,
    pub(super) last: i64,
    pub(super) size: u64,
    /// Milliseconds since the epoch when stored (see `StoredTime`).
    pub(super) stored_ms: i64,
    /// Seconds since the watcher started when stored.
    pub(super) stored_s: u64,
    pub(super) stored_at: Instant,
}

/// The timestamp (RFC 3339, the first field of the connector's text log) of the first line
/// holding `needle`.
pub(super) fn logged_at(log: &str, needle: &str) -> Option<SystemTime> {
    use aws_sdk_s3::primitives::{DateTime, DateTimeFormat};
    let line = log.lines().find(|line| line.contains(needle))?;
    let stamp = line.split_whitespace().next()?;
    SystemTime::try_from(DateTime::from_str(stamp, DateTimeFormat::DateTime).ok()?).ok()
}

/// The `Instant` of wall-clock time `at`, given one moment known on both clocks.
pub(super) fn instant_at(at: SystemTime, start: Instant, start_wall: SystemTime) -> Instant {
    match at.duration_since(start_wall) {
        Ok(after) => start + after,
        Err(before) => start.checked_sub(before.duration()).unwrap_or(start),
    }
}

pub(super) fn millis(at: SystemTime) -> i64 {
    at.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// `(partition, first offset, last offset)` from the part of an object key after the topic's
/// prefix, `{partition}/{first:020}-{last:020}.json`; the offsets as the connector's own
/// recovery parses them.
pub(super) fn parse_key(rest: &str) -> Option<(i32, i64, i64)> {
    let (partition, name) = rest.split_once('/')?;
    if name.contains('/') {
        return None;
    }
    let (first, last) = object_key::parse_offsets(name)?;
    Some((partition.parse().ok()?, first, last))
}

/// Whether the ranges of `objects` cover every range in `expected` (per partition).
pub(super) fn covered(
    expected: &BTreeMap<i32, Vec<[i64; 2]>>,
    objects: &HashMap<String, SeenObject>,
) -> bool {
    let mut have: HashMap<i32, Vec<(i64, i64)>> = HashMap::new();
    for object in objects.values() {
        have.entry(object.partition)
            .or_default()
            .push((object.first, object.last));
    }
    for ranges in have.values_mut() {
        ranges.sort_unstable();
    }
    expected.iter().all(|(partition, wanted)| {
        let Some(ranges) = have.get(partition) else {
            return wanted.is_empty();
        };
        wanted.iter().all(|[from, to]| {
            let mut next = *from;
            for (first, last) in ranges {
                if *first <= next && *last >= next {
                    next = last + 1;
                }
                if next > *to {
                    return true;
                }
            }
            next > *to
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn seen(partition: i32, first: i64, last: i64) -> SeenObject {
        SeenObject {
            partition,
            first,
            last,
            size: 0,
            stored_ms: 0,
            stored_s: 0,
            stored_at: Instant::now(),
        }
    }

    #[test]
    fn keys_parse() {
        assert_eq!(
            parse_key("3/00000000000000000010-00000000000000000019.json"),
            Some((3, 10, 19))
        );
        assert_eq!(parse_key("3/garbage.json"), None);
        assert_eq!(
            parse_key("3/x/00000000000000000010-00000000000000000019.json"),
            None
        );
        let key = object_key::object_key("kafka/", "orders", 7, 0, 99);
        assert_eq!(
            key.strip_prefix("kafka/orders/").and_then(parse_key),
            Some((7, 0, 99))
        );
    }

    #[test]
    fn coverage_needs_every_expected_offset() {
        let expected: BTreeMap<i32, Vec<[i64; 2]>> = [(0, vec![[0, 9]]), (1, vec![[0, 4]])].into();
        let mut objects = HashMap::new();
        objects.insert("a".to_owned(), seen(0, 0, 4));
        objects.insert("b".to_owned(), seen(1, 0, 4));
        assert!(!covered(&expected, &objects));
        objects.insert("c".to_owned(), seen(0, 6, 9));
        assert!(!covered(&expected, &objects));
        objects.insert("d".to_owned(), seen(0, 5, 5));
        assert!(covered(&expected, &objects));
    }

    #[test]
    fn the_assignment_time_is_the_log_line_s_own() {
        let log = "2026-11-25T13:55:03.331638Z  INFO pipeline: connector running name=bench\n\
                   2026-11-25T13:55:03.332972Z  INFO kafka: partitions assigned topic=t\n";
        let at = logged_at(log, "partitions assigned").unwrap();
        let micros = at.duration_since(UNIX_EPOCH).unwrap().as_micros();
        assert_eq!(micros % 1_000_000, 332_972);
        assert_eq!(logged_at(log, "partitions revoked"), None);
        let (start, wall) = (Instant::now(), at + Duration::from_millis(250));
        assert_eq!(
            start.duration_since(instant_at(at, start, wall)),
            Duration::from_millis(250)
        );
    }
}
