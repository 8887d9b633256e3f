//! Fetch slots: how many partitions librdkafka may fetch for at once.
//!
//! A fetch returns whole record batches, however small `max.partition.fetch.bytes` is: one
//! producer batch (up to 1 MB with librdkafka's default `batch.size`) is the least a partition's
//! queue can hold once it fetched. With a thousand partitions that floor alone is a gigabyte,
//! whatever the queue limits say. So only `slots` partitions fetch at once (the prefetch share
//! divided by [`FETCH_FLOOR`]); the others are paused in librdkafka and wait for a slot in a FIFO
//! queue. A holder gives its slot up (and is paused again, its queued records discarded, to be
//! fetched again from its position) once it has read its queue empty and is caught up or has
//! read [`SLOT_QUANTUM`] bytes, and only while others wait: with fewer partitions than slots,
//! nothing is ever paused. One whose turn ended caught up waits in a second FIFO queue, which
//! gets every [`IDLE_TURN`]th slot while partitions with a backlog wait (all of them otherwise):
//! a caught-up partition holds its slot through a fetch's wait only to look for new records. The slots are also at most the partition count librdkafka's queues
//! were sized for at start (even below [`MIN_SLOTS`]), so partitions added later do not take the
//! pre-fetch past its share: librdkafka's queue limits are fixed when the consumer is created,
//! and each was sized for the start count's slice of the share.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;

use super::Waiter;

/// What one partition's fetch is assumed to bring at most: one producer batch of librdkafka's
/// default `batch.size`.
pub const FETCH_FLOOR: usize = 1 << 20;
/// Fewer slots than this would serialize reading too much.
pub const MIN_SLOTS: usize = 4;
/// A slot is given up (when others wait) after reading this much since taking it.
pub const SLOT_QUANTUM: usize = 4 << 20;

#[derive(Default)]
pub(super) struct FetchSlots {
    pub slots: usize,
    /// Waiter ids holding a slot.
    pub holders: HashSet<u64>,
    /// Waiting for a slot, with records to fetch or not known to be caught up.
    pub waiting: VecDeque<Arc<Waiter>>,
    /// Waiting for a slot after a turn that ended caught up: they only look for new records,
    /// so they get every [`IDLE_TURN`]th slot while others wait with a backlog.
    pub idle: VecDeque<Arc<Waiter>>,
    /// Ids in `waiting` or `idle`.
    pub queued: HashSet<u64>,
    /// Slots handed out, for the idle queue's turn.
    grants: u64,
}

/// While partitions with a backlog wait for a slot, a caught-up one gets every this many'th.
/// A caught-up partition holds its slot for a fetch's wait without reading anything: in a FIFO
/// with the others, the partitions already drained took most turns during a backlog.
pub const IDLE_TURN: u64 = 8;

impl FetchSlots {
    pub fn new(prefetch_share: usize) -> Self {
        FetchSlots {
            slots: (prefetch_share / FETCH_FLOOR).max(MIN_SLOTS),
            ..Default::default()
        }
    }

    /// Who is next for a free slot: the head of `waiting`, or of `idle` on its turn (or when
    /// nobody else waits).
    fn head(&self) -> Option<&Arc<Waiter>> {
        let idle_turn = self.grants % IDLE_TURN == IDLE_TURN - 1;
        match (self.waiting.front(), self.idle.front()) {
            (Some(backlog), Some(idle)) => Some(if idle_turn { idle } else { backlog }),
            (backlog, idle) => backlog.or(idle),
        }
    }

    /// Takes a slot for `waiter` if one is free and it is next; else queues it.
    pub fn acquire(&mut self, waiter: &Arc<Waiter>) -> bool {
        if self.holders.contains(&waiter.id) {
            return true;
        }
        let first = self.head().is_none_or(|head| head.id == waiter.id);
        if self.holders.len() < self.slots && first {
            if self.queued.remove(&waiter.id) {
                self.unqueue(waiter.id);
            }
            self.holders.insert(waiter.id);
            self.grants += 1;
            return true;
        }
        if self.queued.insert(waiter.id) {
            self.waiting.push_back(waiter.clone());
        }
        false
    }

    /// Gives `waiter`'s slot (or place) up; `requeue`: it waits for a slot again, at the back
    /// (of the idle queue if `caught_up`). Returns the waiter to wake: the next one, if a slot
    /// is free for it.
    pub fn release(
        &mut self,
        waiter: &Arc<Waiter>,
        requeue: bool,
        caught_up: bool,
    ) -> Option<Arc<Waiter>> {
        self.holders.remove(&waiter.id);
        if self.queued.remove(&waiter.id) {
            self.unqueue(waiter.id);
        }
        if requeue {
            self.queued.insert(waiter.id);
            if caught_up {
                self.idle.push_back(waiter.clone());
            } else {
                self.waiting.push_back(waiter.clone());
            }
        }
        self.next()
    }

    /// The next waiter, if a slot is free for it.
    pub fn next(&self) -> Option<Arc<Waiter>> {
        (self.holders.len() < self.slots)
            .then(|| self.head().cloned())
            .flatten()
    }

    /// Waiting for a slot, both queues.
    pub fn waiting_count(&self) -> usize {
        self.waiting.len() + self.idle.len()
    }

    fn unqueue(&mut self, id: u64) {
        self.waiting.retain(|queued| queued.id != id);
        self.idle.retain(|queued| queued.id != id);
    }
}
