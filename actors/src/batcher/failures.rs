//! The batcher's side of the failure policy: reporting a record or object it cannot store to
//! the supervisor, carrying out the answer (go on, hold, upload again), the error-topic
//! acknowledgements (`Forwarded`), and `Resume`.

use actix::prelude::*;
use tracing::{error, info};

use super::roll::SealReason;
use super::{send_all, Batcher, Found, Mode};
use crate::commit::UnitId;
use crate::encode::decode_object;
use crate::messages::{Forwarded, ReportFailure, Resume, SealedObject};
use crate::metrics;
use crate::record::RecordChunk;
use crate::store::StoreError;
use crate::supervisor::policy::{Destination, Disposition, FailureKind};

impl Batcher {
    /// Hands `sealed` to the upload queue, then asks the supervisor what to do about the
    /// failure, then goes on with `chunk` (one wait: actix runs waits last-in first-out, so the
    /// steps must not be split).
    pub(super) fn report(
        &mut self,
        sealed: Vec<SealedObject>,
        found: Found,
        chunk: RecordChunk,
        ctx: &mut Context<Self>,
    ) {
        let queue = self.cx.upload_queue.clone();
        let supervisor = self.cx.supervisor.clone();
        let Found {
            failure,
            records,
            unit,
            next,
            held_from,
        } = found;
        let (offset, kind) = (failure.offset, failure.kind.clone());
        let reply = ctx.address().recipient();
        self.reporting = true;
        let asked = async move {
            if !send_all(queue, sealed).await {
                return None;
            }
            let report = ReportFailure {
                failure,
                records,
                unit,
                reply,
            };
            // The supervisor gone means the pipeline is stopping: hold.
            Some(
                supervisor
                    .send(report)
                    .await
                    .unwrap_or(Disposition::Hold { resumable: false }),
            )
        };
        ctx.wait(asked.into_actor(self).map(move |answer, actor, ctx| {
            actor.reporting = false;
            let Some(disposition) = answer else {
                actor.upload_queue_closed(ctx);
                return;
            };
            let go_on = actor.apply(disposition, offset, kind, unit, ctx);
            if go_on {
                actor.process(chunk, next, ctx);
                actor.process_held(ctx);
            } else {
                // Before any other held record: this chunk came first.
                actor.held_records.push_front((chunk, held_from));
            }
            actor.report_buffered();
        }));
    }

    /// Carries out the supervisor's answer about a record; returns whether processing goes on.
    fn apply(
        &mut self,
        disposition: Disposition,
        offset: i64,
        kind: FailureKind,
        unit: UnitId,
        ctx: &mut Context<Self>,
    ) -> bool {
        match (disposition, kind) {
            // Already expected when it was written with `overflowFlag`.
            (Disposition::Route(_), FailureKind::Oversize { .. }) => true,
            (Disposition::Route(_), FailureKind::Unconvertible(_)) => {
                // Not in the object; its unit waits for the dead-letter acknowledgement.
                let open = self.open.as_mut().expect("the record's object is open");
                debug_assert_eq!(open.unit, unit);
                open.last_seen = offset;
                open.routed.push(offset);
                self.tracker.expect(unit);
                self.forwards += 1;
                true
            }
            (Disposition::Hold { .. }, FailureKind::Unconvertible(error)) => {
                // Seal the records before it, so the commit ends exactly at the bad record.
                let sealed = self.seal(SealReason::RecordError, ctx);
                self.enqueue(sealed.into_iter().collect(), ctx);
                self.mode = Mode::Held {
                    bad_record: Some(error),
                };
                false
            }
            (Disposition::Hold { .. }, FailureKind::ForeignObject { .. }) => {
                // The records before the foreign object are this partition's: store them.
                let sealed = self.seal(SealReason::RecordError, ctx);
                self.enqueue(sealed.into_iter().collect(), ctx);
                self.mode = Mode::Held { bad_record: None };
                false
            }
            (disposition, kind) => {
                // Never decided by the policy for a record; hold rather than guess. The record's
                // unit stays open-ended, so nothing is committed past it.
                if matches!(kind, FailureKind::Oversize { .. }) {
                    self.forwards -= 1;
                }
                error!(topic = %self.cx.topic, partition = self.partition, offset, ?disposition, ?kind, "unexpected disposition for a record; holding the partition");
                self.mode = Mode::Held { bad_record: None };
                false
            }
        }
    }

    /// The bucket refused an object after the upload attempts: ask the supervisor.
    pub(super) fn upload_failed(
        &mut self,
        object: SealedObject,
        error: StoreError,
        ctx: &mut Context<Self>,
    ) {
        self.in_flight_bytes = self.in_flight_bytes.saturating_sub(object.body.len());
        let records = match decode_object(&object.key, &object.body, &object.headers) {
            Ok(records) => records,
            Err(decode_error) => {
                // The body is what this process encoded: a bug. Hold the object.
                error!(topic = %self.cx.topic, partition = self.partition, key = %object.key, "{decode_error}");
                RecordChunk::default()
            }
        };
        let failure = self.failure(
            object.first_offset,
            FailureKind::ObjectRefused {
                key: object.key.clone(),
                error,
            },
            false,
        );
        let request = self.cx.supervisor.send(ReportFailure {
            failure,
            records,
            unit: object.unit,
            reply: ctx.address().recipient(),
        });
        ctx.wait(request.into_actor(self).map(move |answer, actor, ctx| {
            match answer.unwrap_or(Disposition::Hold { resumable: false }) {
                Disposition::Route(_) => {
                    // `pending` stays until the records are acknowledged (`Forwarded`).
                    actor.forwarding.insert(object.unit, object);
                }
                Disposition::Retry => {
                    actor.in_flight_bytes += object.body.len();
                    actor.enqueue(vec![object], ctx);
                }
                Disposition::Hold { .. } => actor.hold_object(object),
            }
            actor.answer_drain_waiters();
        }));
    }

    /// The object's key is taken by another object: the partition stops (the supervisor holds
    /// it, not resumable in-process) and the object is never uploaded.
    pub(super) fn upload_foreign(
        &mut self,
        object: SealedObject,
        reason: String,
        ctx: &mut Context<Self>,
    ) {
        let kind = FailureKind::ForeignObject {
            key: object.key.clone(),
            reason,
        };
        self.stop_for_object(object, kind, "its key is taken by another object", ctx);
    }

    /// A streamed object cannot be finished and its records are no longer in memory: the
    /// partition stops (the supervisor fails it, not resumable in-process), nothing is
    /// committed from its first offset on, and a restart reads its records again.
    pub(super) fn upload_lost(
        &mut self,
        object: SealedObject,
        error: StoreError,
        ctx: &mut Context<Self>,
    ) {
        let kind = FailureKind::StreamLost {
            key: object.key.clone(),
            error,
        };
        self.stop_for_object(
            object,
            kind,
            "its streamed parts cannot be completed into it",
            ctx,
        );
    }

    /// Reports `kind` at the object's first offset (the supervisor decides what the partition
    /// becomes), drops the object (`why` in the log) and holds the partition.
    fn stop_for_object(
        &mut self,
        object: SealedObject,
        kind: FailureKind,
        why: &str,
        ctx: &mut Context<Self>,
    ) {
        let failure = self.failure(object.first_offset, kind, false);
        let request = self.cx.supervisor.send(ReportFailure {
            failure,
            records: RecordChunk::default(),
            unit: object.unit,
            reply: ctx.address().recipient(),
        });
        self.drop_object(object, why);
        if self.mode == Mode::Running {
            self.mode = Mode::Held { bad_record: None };
        }
        ctx.wait(request.into_actor(self).map(|_answer, actor, _ctx| {
            actor.answer_drain_waiters();
        }));
    }

    fn hold_object(&mut self, object: SealedObject) {
        self.pending -= 1;
        self.held_objects.push(object);
        if self.mode == Mode::Running {
            self.mode = Mode::Held { bad_record: None };
        }
    }

    /// An error topic did not take forwarded records: the supervisor holds the partition. An
    /// object of the unit of a refused dead-letter record is never uploaded: after a restart
    /// recovery would take its range as stored, and the record would be nowhere.
    fn forward_failed(&mut self, forwarded: &Forwarded, reason: String, ctx: &mut Context<Self>) {
        if forwarded.destination == Destination::DeadLetter {
            self.refused_units.insert(forwarded.unit);
            if let Some(object) = self.deferred.remove(&forwarded.unit) {
                self.drop_object(object, "the dead-letter topic refused a record it covers");
            }
        }
        let failure = self.failure(
            forwarded.first_offset,
            FailureKind::ErrorTopicRefused {
                destination: forwarded.destination,
                reason,
            },
            false,
        );
        let held = self.forwarding.remove(&forwarded.unit);
        if self.mode == Mode::Running {
            self.mode = Mode::Held { bad_record: None };
        }
        let request = self.cx.supervisor.send(ReportFailure {
            failure,
            records: RecordChunk::default(),
            unit: forwarded.unit,
            reply: ctx.address().recipient(),
        });
        ctx.wait(request.into_actor(self).map(move |_answer, actor, _ctx| {
            // Whatever the answer, the records are in neither place: their unit never completes
            // in-process; a refused object is kept to upload again on resume.
            if let Some(object) = held {
                actor.hold_object(object);
            }
            actor.answer_drain_waiters();
        }));
    }
}

impl Handler<Forwarded> for Batcher {
    type Result = ();

    fn handle(&mut self, forwarded: Forwarded, ctx: &mut Self::Context) {
        if forwarded.destination == Destination::DeadLetter {
            self.forwards -= 1;
        }
        match &forwarded.result {
            Ok(()) => {
                metrics::record_failed(
                    &self.cx.topic,
                    self.partition,
                    forwarded.code,
                    forwarded.destination.as_str(),
                    forwarded.records as u64,
                );
                if forwarded.destination == Destination::AbnormalData {
                    self.pending -= 1;
                    self.forwarding.remove(&forwarded.unit);
                    info!(topic = %self.cx.topic, partition = self.partition, first = forwarded.first_offset,
                        last = forwarded.last_offset, records = forwarded.records,
                        "records of the refused object are in the abnormal-data topic");
                }
                let advanced = self.tracker.acknowledged(forwarded.unit);
                self.store_offset(advanced);
                if self.tracker.outstanding(forwarded.unit) == 1 {
                    // Only the upload is left: the object may go to the bucket now.
                    if let Some(object) = self.deferred.remove(&forwarded.unit) {
                        self.enqueue(vec![object], ctx);
                    }
                }
            }
            Err(reason) => {
                let reason = reason.clone();
                self.forward_failed(&forwarded, reason, ctx);
            }
        }
        self.answer_drain_waiters();
    }
}

impl Handler<Resume> for Batcher {
    type Result = ();

    fn handle(&mut self, _: Resume, ctx: &mut Self::Context) {
        let Mode::Held { bad_record } = std::mem::replace(&mut self.mode, Mode::Running) else {
            return;
        };
        // A resumed refused object is uploaded again (the policy's answer for it).
        let objects: Vec<SealedObject> = self.held_objects.drain(..).collect();
        self.pending += objects.len();
        self.in_flight_bytes += objects.iter().map(|o| o.body.len()).sum::<usize>();
        self.enqueue(objects, ctx);
        if let (Some(error), Some((chunk, index))) = (bad_record, self.held_records.pop_front()) {
            // The operator resumed past the bad record: ask again, as resumed. The rest of the
            // held records follow once the answer is in.
            let offset = chunk.records()[index].offset;
            let unit = self.open_object(ctx).unit;
            let found = Found {
                failure: self.failure(offset, FailureKind::Unconvertible(error), true),
                records: chunk.single(index),
                unit,
                next: index + 1,
                held_from: index,
            };
            self.report(Vec::new(), found, chunk, ctx);
            return;
        }
        self.process_held(ctx);
    }
}

impl Batcher {
    /// Processes held records in order while the partition runs and no failure is being
    /// reported (a report goes on with the rest once answered).
    pub(super) fn process_held(&mut self, ctx: &mut Context<Self>) {
        while self.mode == Mode::Running && !self.reporting {
            let Some((chunk, index)) = self.held_records.pop_front() else {
                return;
            };
            if index < chunk.len() {
                self.process(chunk, index, ctx);
            }
        }
    }
}
