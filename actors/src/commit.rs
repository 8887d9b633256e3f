//! Which offset of a partition may be committed.
//!
//! A partition's records are cut into *units*, in offset order: one unit per object, covering
//! every offset from the unit's first record to its last, including records that did not go into
//! the object (they went to the dead-letter topic instead). A unit is done when it is sealed and
//! everything it launched is acknowledged: its object is in the bucket (or its records are in the
//! abnormal-data topic) and each of its dead-letter records was acknowledged by the broker.
//!
//! The tracker commits only the contiguous prefix of done units: offset `last + 1` of a unit
//! becomes committable once it and every unit opened before it are done. A later unit finishing
//! first never moves the commit past an earlier one still in flight, and a unit that can never
//! finish (its partition failed) holds the commit exactly where it is.

use std::collections::VecDeque;

/// Identifies a unit of one partition.
pub type UnitId = u64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Unit {
    id: UnitId,
    /// Last offset covered; meaningful once sealed.
    last: i64,
    sealed: bool,
    /// Acknowledgements still awaited (uploads, dead-letter produces).
    outstanding: u32,
}

/// Per-partition commit bookkeeping. Pure; no I/O.
#[derive(Debug, Default)]
pub struct CommitTracker {
    units: VecDeque<Unit>,
    next_id: UnitId,
    /// The highest offset known committable (`last + 1` of the done prefix).
    committable: Option<i64>,
}

impl CommitTracker {
    /// Opens a unit; units must be opened (and sealed) in offset order.
    pub fn open(&mut self) -> UnitId {
        let id = self.next_id;
        self.next_id += 1;
        self.units.push_back(Unit {
            id,
            last: -1,
            sealed: false,
            outstanding: 0,
        });
        id
    }

    /// One more acknowledgement to wait for before the unit is done.
    pub fn expect(&mut self, id: UnitId) {
        if let Some(unit) = self.unit(id) {
            unit.outstanding += 1;
        }
    }

    /// No more records go into the unit; `last` is the last offset it covers.
    /// Returns the new committable offset if the prefix advanced.
    pub fn seal(&mut self, id: UnitId, last: i64) -> Option<i64> {
        if let Some(unit) = self.unit(id) {
            debug_assert!(!unit.sealed);
            unit.sealed = true;
            unit.last = last;
        }
        self.advance()
    }

    /// Forgets a unit that covers no offset (opened, then closed before any record went in).
    /// Returns the new committable offset if that unblocked the prefix.
    pub fn discard(&mut self, id: UnitId) -> Option<i64> {
        self.units
            .retain(|unit| unit.id != id || unit.outstanding > 0 || unit.sealed);
        self.advance()
    }

    /// One awaited acknowledgement arrived. Returns the new committable offset if the prefix
    /// advanced. An unknown id changes nothing.
    pub fn acknowledged(&mut self, id: UnitId) -> Option<i64> {
        match self.unit(id) {
            Some(unit) if unit.outstanding > 0 => unit.outstanding -= 1,
            _ => return None,
        }
        self.advance()
    }

    /// Acknowledgements the unit still waits for (0 for an unknown or done unit).
    pub fn outstanding(&self, id: UnitId) -> u32 {
        self.units
            .iter()
            .find(|unit| unit.id == id)
            .map_or(0, |unit| unit.outstanding)
    }

    fn unit(&mut self, id: UnitId) -> Option<&mut Unit> {
        self.units.iter_mut().find(|unit| unit.id == id)
    }

    fn advance(&mut self) -> Option<i64> {
        let mut advanced = None;
        while let Some(front) = self.units.front() {
            if !front.sealed || front.outstanding > 0 {
                break;
            }
            advanced = Some(front.last + 1);
            self.units.pop_front();
        }
        if advanced.is_some() {
            self.committable = advanced;
        }
        advanced
    }

    /// Units opened but not yet done.
    pub fn in_flight(&self) -> usize {
        self.units.len()
    }

    pub fn committable(&self) -> Option<i64> {
        self.committable
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A unit holding one object: open, expect the upload, seal.
    fn object(tracker: &mut CommitTracker, last: i64) -> UnitId {
        let id = tracker.open();
        tracker.expect(id);
        assert_eq!(tracker.seal(id, last), None);
        id
    }

    #[test]
    fn commits_only_the_contiguous_done_prefix() {
        let mut tracker = CommitTracker::default();
        let a = object(&mut tracker, 9);
        let b = object(&mut tracker, 19);
        let c = object(&mut tracker, 30); // a gap (compaction, control records) is fine
        assert_eq!(tracker.acknowledged(b), None, "later unit first: no commit");
        assert_eq!(tracker.acknowledged(c), None);
        assert_eq!(tracker.in_flight(), 3);
        assert_eq!(
            tracker.acknowledged(a),
            Some(31),
            "prefix done: jump to the end"
        );
        assert_eq!(tracker.in_flight(), 0);
        assert_eq!(tracker.committable(), Some(31));
    }

    #[test]
    fn commit_is_last_plus_one_for_single_records() {
        let mut tracker = CommitTracker::default();
        let a = object(&mut tracker, 0);
        assert_eq!(tracker.acknowledged(a), Some(1));
        let b = object(&mut tracker, 1);
        let c = object(&mut tracker, 999);
        assert_eq!(tracker.acknowledged(b), Some(2));
        assert_eq!(tracker.acknowledged(c), Some(1000));
    }

    #[test]
    fn a_unit_waits_for_its_dead_letter_records_and_its_object() {
        let mut tracker = CommitTracker::default();
        let unit = tracker.open();
        tracker.expect(unit); // a dead-letter produce
        tracker.expect(unit); // another
        tracker.expect(unit); // the object
        assert_eq!(tracker.seal(unit, 50), None);
        assert_eq!(tracker.acknowledged(unit), None);
        assert_eq!(tracker.acknowledged(unit), None);
        assert_eq!(tracker.acknowledged(unit), Some(51));
    }

    #[test]
    fn acknowledgements_before_sealing_do_not_commit_an_open_unit() {
        let mut tracker = CommitTracker::default();
        let unit = tracker.open();
        tracker.expect(unit);
        assert_eq!(tracker.acknowledged(unit), None, "still open");
        assert_eq!(
            tracker.seal(unit, 7),
            Some(8),
            "sealed with nothing outstanding"
        );
    }

    #[test]
    fn a_unit_of_only_dead_letter_records_commits_once_they_are_acknowledged() {
        let mut tracker = CommitTracker::default();
        let unit = tracker.open();
        tracker.expect(unit);
        assert_eq!(tracker.seal(unit, 3), None);
        assert_eq!(tracker.acknowledged(unit), Some(4));
    }

    #[test]
    fn a_unit_that_never_finishes_holds_the_commit() {
        let mut tracker = CommitTracker::default();
        let stuck = object(&mut tracker, 9);
        let later = object(&mut tracker, 19);
        assert_eq!(tracker.acknowledged(later), None);
        assert_eq!(tracker.committable(), None);
        let _ = stuck;
    }

    #[test]
    fn an_empty_unit_is_discarded_and_does_not_hold_the_commit() {
        let mut tracker = CommitTracker::default();
        let a = object(&mut tracker, 9);
        let empty = tracker.open();
        let b = object(&mut tracker, 19);
        assert_eq!(
            tracker.discard(empty),
            None,
            "the first unit is still in flight"
        );
        assert_eq!(tracker.acknowledged(a), Some(10));
        assert_eq!(tracker.acknowledged(b), Some(20));
        assert_eq!(tracker.in_flight(), 0);
    }

    #[test]
    fn unknown_or_extra_acknowledgements_change_nothing() {
        let mut tracker = CommitTracker::default();
        let unit = object(&mut tracker, 9);
        assert_eq!(tracker.acknowledged(unit + 100), None);
        assert_eq!(tracker.in_flight(), 1);
        assert_eq!(tracker.acknowledged(unit), Some(10));
        assert_eq!(tracker.acknowledged(unit), None);
        assert_eq!(tracker.committable(), Some(10));
    }
}
