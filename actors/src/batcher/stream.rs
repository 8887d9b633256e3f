//! The batcher's side of streamed objects (`crate::staging`): once the open object's body holds
//! a part's worth of bytes, the bytes go to the object's staging upload as one part; the next
//! part is cut only when the previous one is stored (the batcher waits, taking no records).

use actix::prelude::*;
use tokio::sync::OwnedSemaphorePermit;

use super::Batcher;
use crate::commit::UnitId;
use crate::memory::Kind;
use crate::staging::{staging_key, Streamer};

/// Room for the records of one chunk beyond the part size, so that the buffer of the part
/// being filled is not reallocated.
const PART_SLACK: usize = 1 << 20;

/// The slack for `part_size`: a quarter of it, at most [`PART_SLACK`].
fn slack(part_size: usize) -> usize {
    (part_size / 4).min(PART_SLACK)
}

impl Batcher {
    /// Cuts a part of the open object if it holds one; waits for the previous part first.
    pub(super) fn stream_if_full(&mut self, ctx: &mut Context<Self>) {
        let Some(settings) = self.cx.stream else {
            return;
        };
        let Some(open) = self.open.as_mut() else {
            return;
        };
        if open.encoder.streamable_bytes() < settings.part_size || !open.encoder.streams() {
            return;
        }
        let streamer = open.streamer.get_or_insert_with(|| {
            Streamer::start(
                self.cx.store.clone(),
                staging_key(
                    &self.cx.key_prefix,
                    &self.cx.topic,
                    self.partition,
                    open.encoder.first_offset(),
                ),
                self.cx.cancel.clone(),
                settings.retry,
                self.cx.topic.clone(),
                self.partition,
                self.status.clone(),
            )
        });
        let unit = open.unit;
        let slot = streamer.slot();
        match slot.clone().try_acquire_owned() {
            Ok(permit) => self.cut_part(unit, permit),
            Err(_) => {
                // The previous part is still being stored: wait for it, taking no records.
                ctx.wait(
                    async move { slot.acquire_owned().await.ok() }
                        .into_actor(self)
                        .map(move |permit, actor, _ctx| {
                            if let Some(permit) = permit {
                                actor.cut_part(unit, permit);
                            }
                        }),
                );
            }
        }
    }

    /// Takes the open object's body so far out as a part and hands it to its streamer, if the
    /// object is still the one (`unit`) that asked.
    fn cut_part(&mut self, unit: UnitId, permit: OwnedSemaphorePermit) {
        let Some(settings) = self.cx.stream else {
            return;
        };
        let Some(open) = self.open.as_mut().filter(|open| open.unit == unit) else {
            return;
        };
        let Some(streamer) = open.streamer.as_mut() else {
            return;
        };
        let Some(part) = open
            .encoder
            .take_part(settings.part_size + slack(settings.part_size))
        else {
            return;
        };
        let memory = self.cx.memory.charge(Kind::Uploading, part.len());
        streamer.send(part, memory, permit);
        self.report_buffered();
    }
}
