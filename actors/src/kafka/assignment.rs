//! [`Assignment`]: one partition assigned to this member, from the assignment callback until
//! the partition is revoked or lost. What belongs to an assignment (its partition queue reads
//! and its batcher's offset stores) happens only while it is current, and its objects are not
//! uploaded (again) once it ended.
//!
//! Why: librdkafka keeps one fetch queue per partition for the life of the client, and every
//! split of that partition's queue is a handle on the same queue. When a partition comes back to
//! this member, the previous assignment's actors may still be around (a drain that timed out
//! leaves a consumer blocked on its batcher, then woken by its safety tick). Without a fence such
//! a consumer would read records of the new assignment and hand them to a stopped batcher, and
//! the new batcher would commit over the gap; a late batcher would store offsets for the new
//! assignment. The revocation callback ends the assignment (under the partition's lock) before
//! it commits and lets the rebalance go on, so neither can happen.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::messages::{CancelFlag, UploadsInFlight};

/// One assignment of one partition. Cheap to clone; every clone sees the end.
#[derive(Clone, Debug)]
pub struct Assignment {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    partition: i32,
    /// Shared by every assignment of the partition: reads and stores of an assignment hold it,
    /// and ending an assignment takes it, so nothing of an ended assignment is in progress once
    /// [`Assignment::end`] returns.
    lock: Arc<Mutex<()>>,
    /// Set when the assignment ends; also cancels the uploads of its objects. Counts their
    /// attempts in the partition's [`UploadsInFlight`].
    ended: CancelFlag,
    /// Shared by every assignment of the partition: the next one waits for the attempts of the
    /// earlier ones to end before it lists the bucket.
    in_flight: UploadsInFlight,
}

fn lock(mutex: &Mutex<()>) -> MutexGuard<'_, ()> {
    // The guarded data is `()`: a panic while holding it cannot leave anything half-done.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Assignment {
    /// An assignment that is not tracked by a consumer (tests and tools).
    pub fn detached(partition: i32) -> Self {
        Assignment {
            inner: Arc::new(Inner {
                partition,
                lock: Arc::new(Mutex::new(())),
                ended: CancelFlag::default(),
                in_flight: UploadsInFlight::default(),
            }),
        }
    }

    pub fn partition(&self) -> i32 {
        self.inner.partition
    }

    /// Whether the partition is still assigned under this assignment.
    pub fn is_current(&self) -> bool {
        !self.inner.ended.is_cancelled()
    }

    /// Runs `f` if the assignment is current, holding the partition's lock so that the
    /// assignment cannot end meanwhile; `None` once it ended.
    pub fn while_current<R>(&self, f: impl FnOnce() -> R) -> Option<R> {
        let _guard = lock(&self.inner.lock);
        self.is_current().then(f)
    }

    /// Ends the assignment: waits for a read or store in progress, then refuses every later one.
    pub fn end(&self) {
        let _guard = lock(&self.inner.lock);
        self.inner.ended.cancel();
    }

    /// Set when the assignment ends: for the uploads of the partition's objects.
    pub fn cancel_flag(&self) -> CancelFlag {
        self.inner.ended.clone()
    }

    /// The partition's upload attempts in flight in this process, this assignment's and the
    /// earlier ones'.
    pub fn uploads_in_flight(&self) -> UploadsInFlight {
        self.inner.in_flight.clone()
    }
}

/// The current assignment of each partition, and each partition's lock.
#[derive(Default)]
pub(super) struct Assignments {
    inner: Mutex<AssignmentsInner>,
}

#[derive(Default)]
struct AssignmentsInner {
    current: HashMap<i32, Assignment>,
    locks: HashMap<i32, Arc<Mutex<()>>>,
    in_flight: HashMap<i32, UploadsInFlight>,
}

impl Assignments {
    /// A new assignment of `partition`; a current one (assigned twice without a revocation in
    /// between) ends first.
    pub fn begin(&self, partition: i32) -> Assignment {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let lock = inner.locks.entry(partition).or_default().clone();
        let in_flight = inner.in_flight.entry(partition).or_default().clone();
        let assignment = Assignment {
            inner: Arc::new(Inner {
                partition,
                lock,
                ended: CancelFlag::counting_in(in_flight.clone()),
                in_flight,
            }),
        };
        if let Some(previous) = inner.current.insert(partition, assignment.clone()) {
            previous.end();
        }
        assignment
    }

    /// The upload attempts in flight of `partition`'s assignments, if it was ever assigned.
    pub fn in_flight(&self, partition: i32) -> Option<UploadsInFlight> {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.in_flight.get(&partition).cloned()
    }

    /// Ends the current assignment of `partition`, if any.
    pub fn end(&self, partition: i32) {
        let previous = self
            .inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .current
            .remove(&partition);
        if let Some(previous) = previous {
            previous.end();
        }
    }

    /// The partitions currently assigned.
    pub fn partitions(&self) -> Vec<i32> {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let mut partitions: Vec<i32> = inner.current.keys().copied().collect();
        partitions.sort_unstable();
        partitions
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ended_assignment_runs_nothing_and_a_new_one_of_the_partition_does() {
        let assignments = Assignments::default();
        let first = assignments.begin(3);
        assert_eq!(first.while_current(|| 1), Some(1));
        assignments.end(3);
        assert!(!first.is_current());
        assert_eq!(first.while_current(|| 1), None);
        let second = assignments.begin(3);
        assert_eq!(second.while_current(|| 2), Some(2));
        assert_eq!(first.while_current(|| 1), None, "still ended");
        assert_eq!(assignments.partitions(), [3]);
    }

    #[test]
    fn assigning_again_ends_the_previous_assignment() {
        let assignments = Assignments::default();
        let first = assignments.begin(0);
        let second = assignments.begin(0);
        assert!(!first.is_current());
        assert!(second.is_current());
    }

    #[tokio::test]
    async fn the_next_assignment_sees_the_attempts_of_an_ended_one_until_they_end() {
        let assignments = Assignments::default();
        let first = assignments.begin(0);
        let attempt = first.cancel_flag().begin_attempt().expect("current");
        assignments.end(0);
        assert!(
            first.cancel_flag().begin_attempt().is_none(),
            "no new attempt once ended"
        );
        let second = assignments.begin(0);
        let in_flight = second.uploads_in_flight();
        assert_eq!(in_flight.count(), 1);
        let settled = tokio::spawn(async move { in_flight.settled().await });
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        assert!(
            !settled.is_finished(),
            "the first assignment's attempt is in flight"
        );
        drop(attempt);
        tokio::time::timeout(std::time::Duration::from_secs(5), settled)
            .await
            .expect("settled once the attempt ended")
            .unwrap();
        assert!(second.cancel_flag().begin_attempt().is_some());
    }

    #[test]
    fn ending_waits_for_a_read_in_progress() {
        let assignments = Assignments::default();
        let assignment = assignments.begin(0);
        let (started_tx, started_rx) = std::sync::mpsc::channel();
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let reader = {
            let assignment = assignment.clone();
            std::thread::spawn(move || {
                assignment.while_current(|| {
                    started_tx.send(()).unwrap();
                    release_rx.recv().unwrap();
                })
            })
        };
        started_rx.recv().unwrap();
        let ender = std::thread::spawn(move || assignments.end(0));
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert!(
            assignment.is_current(),
            "not ended while a read holds the lock"
        );
        release_tx.send(()).unwrap();
        ender.join().unwrap();
        assert_eq!(reader.join().unwrap(), Some(()));
        assert!(!assignment.is_current());
    }
}
