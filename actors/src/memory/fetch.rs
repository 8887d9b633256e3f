//! Fetch slots: how many partitions librdkafka may fetch for at once.
//!
//! A fetch returns whole record batches, however small `max.partition.fetch.bytes` is: one
//! producer batch (up to 1 MB with librdkafka's default `batch.size`) is the least a partition's
//! queue can hold once it fetched. With a thousand partitions that floor alone is a gigabyte,
//! whatever the queue limits say. So only `slots` partitions fetch at once (the prefetch share
//! divided by [`SLOT_BYTES`], two floors); the others are paused in librdkafka and wait for a
//! slot in a FIFO queue. A holder gives its slot up (and is paused again, its queued records discarded, to be
//! fetched again from its position) once it has read its queue empty and is caught up or has
//! read [`SLOT_QUANTUM`] bytes, and only while others wait: with fewer partitions than slots,
//! nothing is ever paused. The slots are also at most the partition count librdkafka's queues
//! were sized for at start (even below [`MIN_SLOTS`]), so partitions added later do not take the
//! pre-fetch past its share: librdkafka's queue limits are fixed when the consumer is created,
//! and each was sized for the start count's slice of the share.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;

use super::Waiter;

/// What one partition's fetch is assumed to bring at most: one producer batch of librdkafka's
/// default `batch.size`.
pub const FETCH_FLOOR: usize = 1 << 20;
/// What one slot holder's fetch is counted for: twice [`FETCH_FLOOR`], because librdkafka keeps a
/// fetch response in memory until the last of its records is read, while the records read out
/// of it are already in the consumer's chunks. With one floor per slot, 1,000 partitions'
/// backlog peaked 35 to 45 MiB higher at the same drain rate (docs/performance.md).
pub const SLOT_BYTES: usize = 2 * FETCH_FLOOR;
/// Fewer slots than this would serialize reading too much.
pub const MIN_SLOTS: usize = 4;
/// A slot is given up (when others wait) after reading this much since taking it.
pub const SLOT_QUANTUM: usize = 4 << 20;

#[derive(Default)]
pub(super) struct FetchSlots {
    pub slots: usize,
    /// Waiter ids holding a slot.
    pub holders: HashSet<u64>,
    pub waiting: VecDeque<Arc<Waiter>>,
    pub queued: HashSet<u64>,
}

impl FetchSlots {
    pub fn new(prefetch_share: usize) -> Self {
        FetchSlots {
            slots: (prefetch_share / SLOT_BYTES).max(MIN_SLOTS),
            ..Default::default()
        }
    }

    /// Takes a slot for `waiter` if one is free and nobody waits ahead of it; else queues it.
    pub fn acquire(&mut self, waiter: &Arc<Waiter>) -> bool {
        if self.holders.contains(&waiter.id) {
            return true;
        }
        let first = self.waiting.front().is_none_or(|head| head.id == waiter.id);
        if self.holders.len() < self.slots && first {
            if self.queued.remove(&waiter.id) {
                self.waiting.pop_front();
            }
            self.holders.insert(waiter.id);
            return true;
        }
        if self.queued.insert(waiter.id) {
            self.waiting.push_back(waiter.clone());
        }
        false
    }

    /// Gives `waiter`'s slot (or place) up; `requeue`: it waits for a slot again, at the back.
    /// Returns the waiter to wake: the head of the queue, if a slot is free for it.
    pub fn release(&mut self, waiter: &Arc<Waiter>, requeue: bool) -> Option<Arc<Waiter>> {
        self.holders.remove(&waiter.id);
        if self.queued.remove(&waiter.id) {
            self.waiting.retain(|queued| queued.id != waiter.id);
        }
        if requeue {
            self.queued.insert(waiter.id);
            self.waiting.push_back(waiter.clone());
        }
        self.next()
    }

    /// The head of the queue, if a slot is free for it.
    pub fn next(&self) -> Option<Arc<Waiter>> {
        (self.holders.len() < self.slots)
            .then(|| self.waiting.front().cloned())
            .flatten()
    }
}
