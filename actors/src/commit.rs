//! Which offset of a partition may be committed.
//!
//! Objects of a partition are sealed in offset order but may finish uploading in any order. The
//! tracker commits only the contiguous prefix: offset `last + 1` of an object becomes committable
//! once that object and every object sealed before it are stored. A later object finishing first
//! never moves the commit past an earlier one still in flight.

use std::collections::VecDeque;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Pending {
    first: i64,
    last: i64,
    stored: bool,
}

/// Per-partition commit bookkeeping. Pure; no I/O.
#[derive(Debug, Default)]
pub struct CommitTracker {
    pending: VecDeque<Pending>,
    /// The highest offset known committable (`last + 1` of the stored prefix).
    committable: Option<i64>,
}

impl CommitTracker {
    /// Registers an object when it is sealed. Objects must be sealed in offset order.
    pub fn sealed(&mut self, first: i64, last: i64) {
        debug_assert!(first <= last);
        debug_assert!(self
            .pending
            .back()
            .is_none_or(|previous| previous.last < first));
        self.pending.push_back(Pending {
            first,
            last,
            stored: false,
        });
    }

    /// Marks an object stored. Returns the new committable offset if the prefix advanced.
    pub fn stored(&mut self, first: i64, last: i64) -> Option<i64> {
        let entry = self
            .pending
            .iter_mut()
            .find(|pending| pending.first == first && pending.last == last)?;
        entry.stored = true;
        let mut advanced = None;
        while let Some(front) = self.pending.front() {
            if !front.stored {
                break;
            }
            advanced = Some(front.last + 1);
            self.pending.pop_front();
        }
        if advanced.is_some() {
            self.committable = advanced;
        }
        advanced
    }

    /// Objects sealed but not yet stored.
    pub fn in_flight(&self) -> usize {
        self.pending.len()
    }

    pub fn committable(&self) -> Option<i64> {
        self.committable
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commits_only_the_contiguous_stored_prefix() {
        let mut tracker = CommitTracker::default();
        tracker.sealed(0, 9);
        tracker.sealed(10, 19);
        tracker.sealed(25, 30); // a gap (compaction, control records) is fine
        assert_eq!(
            tracker.stored(10, 19),
            None,
            "later object first: no commit"
        );
        assert_eq!(tracker.stored(25, 30), None);
        assert_eq!(tracker.in_flight(), 3);
        assert_eq!(
            tracker.stored(0, 9),
            Some(31),
            "prefix complete: jump to the end"
        );
        assert_eq!(tracker.in_flight(), 0);
        assert_eq!(tracker.committable(), Some(31));
    }

    #[test]
    fn commit_is_last_plus_one_for_single_records() {
        let mut tracker = CommitTracker::default();
        tracker.sealed(0, 0);
        assert_eq!(tracker.stored(0, 0), Some(1));
        tracker.sealed(1, 1);
        tracker.sealed(2, 999);
        assert_eq!(tracker.stored(1, 1), Some(2));
        assert_eq!(tracker.stored(2, 999), Some(1000));
    }

    #[test]
    fn unknown_receipt_changes_nothing() {
        let mut tracker = CommitTracker::default();
        tracker.sealed(0, 9);
        assert_eq!(tracker.stored(3, 9), None);
        assert_eq!(tracker.in_flight(), 1);
        assert_eq!(tracker.committable(), None);
    }
}
