//! Recovery by listing: which offsets are already in the bucket when a partition starts.
//!
//! After a crash or a rebalance between an upload and its commit, objects past the committed
//! offset may already be stored. When a partition's first records arrive, its batcher lists the
//! partition's objects from the first offset read on and builds a [`Recovery`] from their keys;
//! records inside a listed range are not written again (the open object is sealed just before
//! the range, and the range's offsets become committable at once). Pure: no I/O here.

use std::collections::VecDeque;

use crate::object_key::parse_offsets;

/// Offset ranges `(first, last)` (inclusive) already stored, in offset order.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Recovery {
    ranges: VecDeque<(i64, i64)>,
}

impl Recovery {
    /// From listed object keys; keys that do not parse as object keys are ignored.
    pub fn from_keys<'a>(keys: impl IntoIterator<Item = &'a str>) -> Self {
        let mut ranges: Vec<(i64, i64)> = keys.into_iter().filter_map(parse_offsets).collect();
        ranges.sort_unstable();
        Recovery {
            ranges: ranges.into(),
        }
    }

    /// Nothing stored (or the listing is not available).
    pub fn empty() -> Self {
        Recovery::default()
    }

    /// The stored range that starts at or before `offset` and holds it, taken out of the
    /// recovery (each range is reported once). Offsets must be asked in increasing order:
    /// ranges that end before `offset` are dropped.
    pub fn take_covering(&mut self, offset: i64) -> Option<(i64, i64)> {
        while self.ranges.front().is_some_and(|&(_, last)| last < offset) {
            self.ranges.pop_front();
        }
        let &(first, last) = self.ranges.front()?;
        if offset < first {
            return None;
        }
        self.ranges.pop_front();
        Some((first, last))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::object_key::object_key;

    fn keys(ranges: &[(i64, i64)]) -> Vec<String> {
        ranges
            .iter()
            .map(|&(first, last)| object_key("p/", "t", 0, first, last))
            .collect()
    }

    #[test]
    fn ranges_are_found_in_order_once() {
        let listed = keys(&[(20, 29), (0, 9), (10, 19)]);
        let mut recovery = Recovery::from_keys(listed.iter().map(String::as_str));
        assert_eq!(recovery.take_covering(5), Some((0, 9)));
        // Taken: the rest of the range is skipped by the caller, not found again.
        assert_eq!(recovery.take_covering(6), None);
        assert_eq!(recovery.take_covering(10), Some((10, 19)));
        assert_eq!(recovery.take_covering(40), None);
        assert_eq!(recovery, Recovery::empty());
    }

    #[test]
    fn an_offset_before_a_range_is_not_covered() {
        let listed = keys(&[(10, 19)]);
        let mut recovery = Recovery::from_keys(listed.iter().map(String::as_str));
        assert_eq!(recovery.take_covering(3), None);
        assert_eq!(recovery.take_covering(12), Some((10, 19)));
    }

    #[test]
    fn keys_that_do_not_parse_are_ignored() {
        let mut recovery = Recovery::from_keys(["p/t/0/notes.txt", "p/t/0/x-y.json"]);
        assert_eq!(recovery.take_covering(0), None);
    }
}
