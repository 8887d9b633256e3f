//! The batcher's record loop: each record goes into the open object (sealed by the rules in
//! [`super::roll`]), is skipped as already stored ([`super::listing`]), or is reported as a
//! failure to the supervisor ([`super::failures`]).

use actix::prelude::*;

use super::roll::{self, SealReason};
use super::{listing, Batcher, Found};
use crate::encode::Pushed;
use crate::record::RecordChunk;
use crate::supervisor::policy::{Failure, FailureKind};

impl Batcher {
    /// Processes records from `start` on, until the chunk ends or a failure must be reported.
    pub(super) fn process(&mut self, chunk: RecordChunk, start: usize, ctx: &mut Context<Self>) {
        let mut sealed = Vec::new();
        let max_value_bytes = self.cx.max_value_bytes;
        let policy = self.cx.policy;
        let mut found = None;
        let mut verify = None;
        for index in start..chunk.len() {
            let record = &chunk.records()[index];
            match self.already_stored(&chunk, index) {
                listing::Stored::No => {}
                listing::Stored::Yes => continue,
                listing::Stored::Unverified(candidate) => {
                    verify = Some((candidate, index));
                    break;
                }
                listing::Stored::Foreign(failure) => {
                    let unit = self.open_object(ctx).unit;
                    found = Some(Found {
                        failure,
                        records: chunk.single(index),
                        unit,
                        next: index,
                        held_from: index,
                    });
                    break;
                }
            }
            // Only for a template with time or field parts: the default costs one branch.
            let parts = self.cx.key_template.is_partitioned().then(|| {
                self.cx.key_template.parts(
                    record.timestamp,
                    chunk.bytes(&record.key),
                    chunk.bytes(&record.value),
                )
            });
            if parts.is_some() {
                let boundary = self
                    .open
                    .as_ref()
                    .is_some_and(|open| open.encoder.records() > 0 && open.parts != parts);
                if boundary {
                    sealed.extend(self.seal(SealReason::PartitionBoundary, ctx));
                }
            }
            let open = self.open_object(ctx);
            if parts.is_some() && open.encoder.records() == 0 {
                open.parts = parts;
            }
            let unit = open.unit;
            let encoder = &mut open.encoder;
            let (len_before, records_before, last_before) =
                (encoder.len(), encoder.records(), encoder.last_offset());
            let mut overflowed = None;
            match encoder.push_limited(&chunk, record, max_value_bytes) {
                Ok(Pushed::Written) => {}
                Ok(Pushed::Overflowed { value_size }) => {
                    // In the object with `overflowFlag`, and whole in the dead-letter topic: the
                    // unit waits for that acknowledgement, so expect it before any seal.
                    self.tracker.expect(unit);
                    self.forwards += 1;
                    overflowed = Some(FailureKind::Oversize {
                        value_size,
                        limit: max_value_bytes.unwrap_or(0),
                    });
                }
                Err(record_error) => {
                    found = Some(Found {
                        failure: self.failure(
                            record.offset,
                            FailureKind::Unconvertible(record_error),
                            false,
                        ),
                        records: chunk.single(index),
                        unit,
                        next: index + 1,
                        held_from: index,
                    });
                    break;
                }
            }
            let open = self.open.as_mut().expect("an object is open");
            open.last_seen = record.offset;
            if open.encoder.len() > policy.max_bytes && records_before > 0 {
                // This record made the object too large: it starts the next object instead.
                open.encoder
                    .pop_last(len_before, records_before, last_before);
                // Everything before this record stays in the sealed unit.
                open.last_seen = record.offset - 1;
                if overflowed.is_some() {
                    // The dead-letter acknowledgement belongs to the record's new unit.
                    self.tracker.acknowledged(unit);
                }
                let parts = open.parts.clone();
                sealed.extend(self.seal(SealReason::Bytes, ctx));
                let next = self.open_object(ctx);
                next.parts = parts;
                next.encoder
                    .push_limited(&chunk, record, max_value_bytes)
                    .expect("the record was just encoded once");
                next.last_seen = record.offset;
                let next_unit = next.unit;
                if overflowed.is_some() {
                    self.tracker.expect(next_unit);
                }
            }
            let open = self.open.as_ref().expect("an object is open");
            let record_unit = open.unit;
            if let Some(reason) = roll::full(&policy, open.encoder.records(), open.encoder.len()) {
                sealed.extend(self.seal(reason, ctx));
            }
            if let Some(kind) = overflowed {
                found = Some(Found {
                    failure: self.failure(record.offset, kind, false),
                    records: chunk.single(index),
                    unit: record_unit,
                    next: index + 1,
                    held_from: index + 1,
                });
                break;
            }
        }
        // Between records only: the record pushed last may still be moved to the next object.
        self.stream_if_full(ctx);
        match (found, verify) {
            (Some(found), _) => self.report(sealed, found, chunk, ctx),
            (None, Some((candidate, index))) => {
                self.enqueue(sealed, ctx);
                self.verify_then_process(candidate, chunk, index, ctx);
            }
            (None, None) => self.enqueue(sealed, ctx),
        }
    }

    pub(super) fn failure(&self, offset: i64, kind: FailureKind, resumed: bool) -> Failure {
        Failure {
            topic: self.cx.topic.clone(),
            partition: self.partition,
            offset,
            kind,
            resumed,
        }
    }
}
