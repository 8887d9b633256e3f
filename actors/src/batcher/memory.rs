//! The batcher's side of the memory budget: the buffered-bytes gauge, its open object's charge,
//! and sealing early when the supervisor asks (`SealForMemory`, seal reason `memory`).

use actix::prelude::*;

use super::roll::SealReason;
use super::Batcher;
use crate::messages::SealForMemory;

impl Batcher {
    /// Updates the buffered-bytes gauge (the open object plus the objects not yet stored) and
    /// the open object's charge in the memory budget.
    pub(super) fn report_buffered(&mut self) {
        let open = self.open.as_ref().map_or(0, |open| open.encoder.len());
        self.metrics
            .buffered_bytes
            .set((open + self.in_flight_bytes) as f64);
        self.account_open();
    }

    /// Charges the open object's buffer (its resident bytes) to the budget, and tells the budget
    /// the partition's open bytes (so the supervisor can pick the largest to seal).
    fn account_open(&mut self) {
        let capacity = self
            .open
            .as_ref()
            .map_or(0, |open| open.encoder.resident_bytes());
        if capacity != self.open_memory.bytes() {
            self.open_memory.set(capacity);
            self.cx.memory.set_open(self.partition, capacity);
        }
    }
}

impl Handler<SealForMemory> for Batcher {
    type Result = ();

    fn handle(&mut self, _: SealForMemory, ctx: &mut Self::Context) {
        self.cx.memory.seal_handled(self.partition);
        // Like the interval's seal: the object's keys stay its first and last offsets.
        if let Some(object) = self.seal(SealReason::Memory, ctx) {
            self.enqueue(vec![object], ctx);
        }
        self.report_buffered();
    }
}
