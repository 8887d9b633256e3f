//! The partition consumer's side of the memory budget: its grant to read with, and its fetch
//! slot ([`crate::memory::fetch`]).

use std::time::{Duration, Instant};

use actix::prelude::*;
use tracing::warn;

use super::{PartitionConsumer, CHUNK_BYTES};
use crate::error::ErrorCode;
use crate::memory::fetch::SLOT_QUANTUM;
use crate::memory::{Charge, Kind};

/// A caught-up holder that read nothing keeps its slot at least this long after taking it, so
/// that one fetch (which waits up to librdkafka's `fetch.wait.max.ms`, 500 ms by default, for
/// new records) had its chance: the cached high watermark is from before the pause until then.
/// One that read records knows the high watermark from that fetch.
const MIN_SLOT_HOLD: Duration = Duration::from_millis(600);

impl PartitionConsumer {
    /// Memory to read a chunk with, or `None` (queued for memory).
    pub(super) fn grant(&self) -> Option<Charge> {
        match &self.waiter {
            Some(waiter) => self.memory.admit(waiter, CHUNK_BYTES),
            None => Some(Charge::none()),
        }
    }

    /// Gives up the place in the budget's queue (it passes on to the next waiter).
    pub(super) fn leave_memory_queue(&self) {
        if let Some(waiter) = &self.waiter {
            self.memory.forget(waiter);
        }
    }

    /// Whether the partition may read: it holds a fetch slot, or takes one now (resuming its
    /// fetching). Without one, its fetching is paused (once) and what its queue held before the
    /// pause is read out, which librdkafka drops (it is fetched again from the position when the
    /// partition resumes).
    pub(super) fn hold_fetch_slot(&mut self, ctx: &mut Context<Self>) -> bool {
        let (Some(fetch), Some(waiter)) = (&self.fetch, &self.waiter) else {
            return true;
        };
        if self.fetch_slot {
            return true;
        }
        if self.memory.acquire_fetch(waiter) {
            if self.fetch_paused {
                if let Err(error) = fetch.resume(&self.topic, self.partition) {
                    warn!(code = %ErrorCode::KafkaConsume, topic = %self.topic, partition = self.partition, %error, "cannot resume fetching");
                }
                self.fetch_paused = false;
            }
            self.fetch_slot = true;
            self.slot_read = 0;
            self.slot_since = Instant::now();
            return true;
        }
        if !self.fetch_paused {
            self.pause_fetching();
        }
        if self.discard_pending {
            self.discard_pending = false;
            // Records fetched before the pause are outdated: librdkafka drops them as they are
            // read, and returns none. Any it does return are handed on like any chunk.
            let polled = self.poll_chunk(CHUNK_BYTES);
            let charge = self.memory.charge(Kind::Chunks, 0);
            self.send(polled, charge, ctx);
        }
        false
    }

    fn pause_fetching(&mut self) {
        if let Some(fetch) = &self.fetch {
            if let Err(error) = fetch.pause(&self.topic, self.partition) {
                warn!(code = %ErrorCode::KafkaConsume, topic = %self.topic, partition = self.partition, %error, "cannot pause fetching");
            }
        }
        self.fetch_paused = true;
        self.discard_pending = true;
    }

    /// After reading the queue empty: gives the fetch slot up if others wait for one and the
    /// partition is caught up or had its quantum; it waits for a slot again, at the back.
    pub(super) fn maybe_yield_fetch_slot(&mut self) {
        let Some(waiter) = &self.waiter else {
            return;
        };
        if !self.fetch_slot || self.fetch.is_none() || self.memory.fetch_waiting() == 0 {
            return;
        }
        let caught_up = (self.slot_read > 0 || self.slot_since.elapsed() >= MIN_SLOT_HOLD)
            && self
                .queue
                .as_ref()
                .is_some_and(|queue| queue.caught_up(self.next_offset));
        if !caught_up && self.slot_read < SLOT_QUANTUM {
            return;
        }
        let waiter = waiter.clone();
        self.pause_fetching();
        self.fetch_slot = false;
        self.memory.release_fetch(&waiter, true);
    }

    /// Gives up the fetch slot, or the place in its queue (paused, draining or stopped).
    pub(super) fn leave_fetch_slot(&mut self) {
        if let (Some(waiter), Some(_)) = (&self.waiter, &self.fetch) {
            self.memory.release_fetch(waiter, false);
        }
        self.fetch_slot = false;
    }
}
