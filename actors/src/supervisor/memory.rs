//! The supervisor's memory watch: every [`MEMORY_WATCH_INTERVAL`] it publishes the budget's
//! gauges (and logs them at debug level) and, while partitions wait for memory, asks the
//! batchers of the largest open objects to seal them (seal reason `memory`) so that uploads can
//! free memory.

use std::time::Duration;

use actix::prelude::*;

use super::PipelineSupervisor;
use crate::memory::gauges;
use crate::messages::SealForMemory;

/// How often the budget is looked at.
pub const MEMORY_WATCH_INTERVAL: Duration = Duration::from_millis(100);
/// Open objects smaller than this are not sealed for memory: many tiny objects would cost more
/// requests than the memory they free.
const MIN_MEMORY_SEAL: usize = 16 * 1024;

impl PipelineSupervisor {
    pub(super) fn watch_memory(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(MEMORY_WATCH_INTERVAL, |actor, _| actor.check_memory());
    }

    fn check_memory(&mut self) {
        let memory = &self.cx.batcher_context.memory;
        let snapshot = memory.snapshot();
        gauges::publish(&snapshot);
        let chosen = memory.seal_candidates(MIN_MEMORY_SEAL);
        tracing::debug!(
            used = ?snapshot.used,
            paused = snapshot.paused,
            fetch_waiting = snapshot.fetch_waiting,
            sealing = chosen.len(),
            "memory tick"
        );
        for partition in chosen {
            match self.partitions.get(&partition) {
                // At most one is queued per batcher: the budget marks the partition as asked
                // until the batcher handled it, so `do_send` cannot grow its mailbox.
                Some(handle) => handle.batcher.do_send(SealForMemory),
                None => memory.seal_handled(partition),
            }
        }
    }
}
