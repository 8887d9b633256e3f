//! When an object is sealed: the seal reasons and the caught-up guard. Pure; the batcher asks.

use std::time::Instant;

use crate::messages::Drain;
use crate::settings::RollPolicy;

/// Why an object was sealed (logged, and the `reason` label of the seal counter).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SealReason {
    Records,
    Bytes,
    Interval,
    Drain(Drain),
    RecordError,
    /// The next offsets are already in the bucket (recovered at assignment).
    Recovered,
    /// The partition caught up after a backlog.
    CaughtUp,
    /// The memory budget is used up: the largest open objects are sealed early.
    Memory,
    /// The next record belongs to another time bucket or field value of the key template: an
    /// object never spans two.
    PartitionBoundary,
}

impl SealReason {
    /// The label value; one of [`crate::metrics::SEAL_REASONS`].
    pub fn label(self) -> &'static str {
        match self {
            SealReason::Records => "count",
            SealReason::Bytes => "bytes",
            SealReason::Interval => "interval",
            SealReason::Drain(Drain::Shutdown) => "shutdown",
            SealReason::Drain(Drain::Rebalance) => "rebalance",
            SealReason::RecordError => "record_error",
            SealReason::Recovered => "recovered",
            SealReason::CaughtUp => "caught_up",
            SealReason::Memory => "memory",
            SealReason::PartitionBoundary => "partition_boundary",
        }
    }
}

/// Whether an open object of `records` records and `bytes` bytes is full.
pub fn full(policy: &RollPolicy, records: usize, bytes: usize) -> Option<SealReason> {
    if records >= policy.max_records {
        Some(SealReason::Records)
    } else if bytes >= policy.max_bytes {
        Some(SealReason::Bytes)
    } else {
        None
    }
}

/// Records read since the partition was last caught up.
#[derive(Debug, Clone, Copy)]
pub struct Behind {
    pub since: Instant,
    pub records: usize,
    pub bytes: usize,
}

impl Behind {
    pub fn new(now: Instant) -> Self {
        Behind {
            since: now,
            records: 0,
            bytes: 0,
        }
    }

    /// Whether catching up now should seal the open object: the partition was behind by a full
    /// object or for the interval. A partition that keeps up is never behind that much, so it
    /// still fills its objects; the number of such seals is at most one per full object or per
    /// interval.
    pub fn warrants_seal(&self, policy: &RollPolicy, now: Instant) -> bool {
        self.records >= policy.max_records
            || self.bytes >= policy.max_bytes
            || now.duration_since(self.since) >= policy.max_interval
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn policy() -> RollPolicy {
        RollPolicy {
            max_records: 100,
            max_bytes: 1000,
            max_interval: Duration::from_secs(1),
            seal_when_caught_up: true,
        }
    }

    #[test]
    fn catching_up_seals_only_after_a_full_object_or_the_interval_behind() {
        let policy = policy();
        let since = Instant::now();
        let behind = |records, bytes| Behind {
            since,
            records,
            bytes,
        };
        // A trickle: caught up again right after a few records.
        assert!(!behind(3, 300).warrants_seal(&policy, since + Duration::from_millis(5)));
        assert!(!behind(99, 999).warrants_seal(&policy, since + Duration::from_millis(999)));
        // The tail of a backlog: a full object's records or bytes, or the interval, behind.
        assert!(behind(100, 10).warrants_seal(&policy, since));
        assert!(behind(1, 1000).warrants_seal(&policy, since));
        assert!(behind(1, 1).warrants_seal(&policy, since + Duration::from_secs(1)));
    }

    #[test]
    fn full_by_records_first_then_bytes() {
        let policy = policy();
        assert_eq!(full(&policy, 99, 999), None);
        assert_eq!(full(&policy, 100, 0), Some(SealReason::Records));
        assert_eq!(full(&policy, 100, 5000), Some(SealReason::Records));
        assert_eq!(full(&policy, 1, 1000), Some(SealReason::Bytes));
    }
}
