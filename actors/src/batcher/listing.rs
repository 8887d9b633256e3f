//! The batcher's side of recovery by listing ([`super::recovery`] has the pure rules): list the
//! partition's objects when its first records arrive, check a listed object against the records
//! read when they reach it, and skip the records of an object that is ours. The listing also
//! starts the sweep of orphaned multipart uploads ([`super::orphans`]), which runs beside it.
//!
//! Store errors here are never a reason to go on without the answer: a failed listing would
//! make the batcher write again what is stored (an overlap), a failed metadata read would make it
//! trust or distrust an object blindly. Both are retried with backoff until the bucket answers;
//! meanwhile the batcher takes no records, so its consumer stops reading and fetching pauses.

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use tracing::{info, warn};

use super::recovery::{self, Candidate, Recovery, Verdict};
use super::roll::SealReason;
use super::{Batcher, Found};
use crate::commit::UnitId;
use crate::metadata::Fingerprint;
use crate::record::{RecordChunk, RecordMeta};
use crate::store::StoreError;
use crate::supervisor::policy::{Failure, FailureKind};

/// First delay before a listing or metadata read is retried; doubled up to [`MAX_RETRY_DELAY`].
const FIRST_RETRY_DELAY: Duration = Duration::from_millis(200);
const MAX_RETRY_DELAY: Duration = Duration::from_secs(10);

/// The object in the bucket that holds the records being read.
pub(super) struct Skip {
    /// Its last offset: records up to here are not written again.
    last: i64,
    key: String,
    /// The unit covering the object's range.
    unit: UnitId,
    /// Set when the object could not be checked at its first record: the fingerprint its last
    /// record must have. The unit is not committable until then.
    check_last: Option<Fingerprint>,
}

/// Whether a record is in an object already in the bucket.
pub(super) enum Stored {
    No,
    Yes,
    /// A listed object covers it and was not checked yet: read its metadata first.
    Unverified(Candidate),
    /// An object covers it but holds other records.
    Foreign(Failure),
}

pub(super) fn fingerprint(chunk: &RecordChunk, record: &RecordMeta) -> Fingerprint {
    Fingerprint::of(
        record.timestamp,
        chunk.bytes(&record.key),
        chunk.bytes(&record.value),
    )
}

impl Batcher {
    /// Whether the record at `index` is in an object that was in the bucket when the partition
    /// started (uploaded before a crash or a rebalance, not committed). Such objects are not
    /// written again, whatever the batching settings now: the open object is sealed just before
    /// one, and its offsets become committable once it is checked.
    pub(super) fn already_stored(&mut self, chunk: &RecordChunk, index: usize) -> Stored {
        let record = &chunk.records()[index];
        let offset = record.offset;
        if let Some(skip) = &self.skip {
            if offset < skip.last {
                return Stored::Yes;
            }
            if offset == skip.last {
                if let Some(expected) = skip.check_last {
                    let read = fingerprint(chunk, record);
                    if read != expected {
                        let reason = recovery::mismatch("last", offset, expected, read);
                        let kind = FailureKind::ForeignObject {
                            key: skip.key.clone(),
                            reason,
                        };
                        return Stored::Foreign(self.failure(offset, kind, false));
                    }
                }
                self.confirm_skip();
                return Stored::Yes;
            }
            // Past the object without reading its last record (compaction or transaction
            // markers removed it): its first records matched, or the range began before them.
            self.confirm_skip();
        }
        match self
            .recovery
            .as_mut()
            .and_then(|recovery| recovery.take_covering(offset))
        {
            Some(candidate) => Stored::Unverified(candidate),
            None => Stored::No,
        }
    }

    /// The skipped object is confirmed (its last record matched, or the records went past it):
    /// its unit completes.
    fn confirm_skip(&mut self) {
        if let Some(skip) = self.skip.take() {
            if skip.check_last.is_some() {
                let advanced = self.tracker.acknowledged(skip.unit);
                self.store_offset(advanced);
            }
        }
    }

    /// Reads the listed object's metadata (retried until the bucket answers), compares it with
    /// the record at `index`, then goes on processing from that record: skipping the object's
    /// range, writing the records (the object is gone), or stopping the partition (foreign).
    pub(super) fn verify_then_process(
        &mut self,
        candidate: Candidate,
        chunk: RecordChunk,
        index: usize,
        ctx: &mut Context<Self>,
    ) {
        let store = self.cx.store.clone();
        let key = candidate.key.clone();
        let (topic, partition, status) =
            (self.cx.topic.clone(), self.partition, self.status.clone());
        let read = async move {
            let mut delay = FIRST_RETRY_DELAY;
            loop {
                match store.head(&key).await {
                    Ok(metadata) => return metadata,
                    Err(error) => {
                        retrying(
                            &error,
                            "read the metadata of",
                            &key,
                            &topic,
                            partition,
                            delay,
                        );
                        status.set_bucket(Err((error.code(), error.to_string())));
                        tokio::time::sleep(delay).await;
                        delay = (delay * 2).min(MAX_RETRY_DELAY);
                    }
                }
            }
        };
        ctx.wait(read.into_actor(self).map(move |metadata, actor, ctx| {
            let record = &chunk.records()[index];
            let verdict = recovery::verify(
                &candidate,
                metadata.as_ref(),
                &actor.cx.topic,
                actor.partition,
                record.offset,
                fingerprint(&chunk, record),
            );
            match verdict {
                Verdict::Gone => actor.process(chunk, index, ctx),
                Verdict::Ours { check_last } => {
                    let sealed = actor.seal(SealReason::Recovered, ctx);
                    let unit = actor.tracker.open();
                    if check_last.is_some() {
                        actor.tracker.expect(unit);
                    }
                    let advanced = actor.tracker.seal(unit, candidate.last);
                    actor.store_offset(advanced);
                    info!(topic = %actor.cx.topic, partition = actor.partition, first = candidate.first,
                        last = candidate.last, key = %candidate.key,
                        "offsets already in the bucket (stored before a restart or rebalance, not committed); not written again");
                    actor.skip = Some(Skip {
                        last: candidate.last,
                        key: candidate.key,
                        unit,
                        check_last,
                    });
                    actor.enqueue(sealed.into_iter().collect(), ctx);
                    actor.process(chunk, index, ctx);
                }
                Verdict::Foreign(reason) => {
                    let offset = record.offset;
                    let kind = FailureKind::ForeignObject {
                        key: candidate.key,
                        reason,
                    };
                    let failure = actor.failure(offset, kind, false);
                    let unit = actor.open_object(ctx).unit;
                    let found = Found {
                        failure,
                        records: chunk.single(index),
                        unit,
                        next: index,
                        held_from: index,
                    };
                    actor.report(Vec::new(), found, chunk, ctx);
                }
            }
            actor.report_buffered();
        }));
    }

    /// Lists the partition's objects from the chunk's first offset on, once, then processes the
    /// chunk (one `ctx.wait`: actix runs waits last-in first-out, so the two must not be split).
    /// A failed listing is retried until the bucket answers: nothing of the partition is written
    /// before it is known what the bucket already holds.
    pub(super) fn recover_then_process(&mut self, chunk: RecordChunk, ctx: &mut Context<Self>) {
        let Some(first_offset) = chunk.first_offset() else {
            return;
        };
        let store = self.cx.store.clone();
        // Under any key template: the template's fixed prefix for the partition, listed as a
        // folder where the partition's objects are all directly in it, else recursively.
        let template = self.cx.key_template.clone();
        let (key_prefix, topic_name, partition) = (
            self.cx.key_prefix.clone(),
            self.cx.topic.clone(),
            self.partition,
        );
        let prefix = template.listing_prefix(&key_prefix, &topic_name, partition);
        let start_after = template.start_after(&key_prefix, &topic_name, partition, first_offset);
        // Beside the listing, not in its way: records are processed while it runs.
        self.orphans.start(
            store.clone(),
            prefix.clone(),
            self.cx
                .stream
                .is_some()
                .then(|| crate::staging::staging_prefix(&key_prefix, &topic_name, partition)),
            {
                let (template, key_prefix, topic) =
                    (template.clone(), key_prefix.clone(), topic_name.clone());
                Arc::new(move |key: &str| {
                    template
                        .parse_key(&key_prefix, &topic, Some(partition), key)
                        .map(|(_, first, last)| (first, last))
                })
            },
            self.cx.topic.clone(),
            self.partition,
            self.cx.cancel.clone(),
        );
        let (topic, partition, status) =
            (self.cx.topic.clone(), self.partition, self.status.clone());
        tracing::debug!(%topic, partition, first_offset, "first records: listing the bucket for objects stored but not committed");
        let in_flight = self.cx.in_flight.clone();
        let listed = async move {
            // An earlier assignment's upload already sent may still create its object (the
            // partition came back before its drain finished): list once it has ended, so the
            // listing holds that object and nothing is cut around it again.
            if in_flight.count() > 0 {
                tracing::info!(%topic, partition, in_flight = in_flight.count(), "the partition's previous assignment still has uploads in flight: listing the bucket once they end");
                in_flight.settled().await;
            }
            let mut delay = FIRST_RETRY_DELAY;
            loop {
                let listed = if template.lists_folder() {
                    store.list_folder(&prefix, start_after.as_deref()).await
                } else {
                    store.list(&prefix, start_after.as_deref()).await
                };
                match listed {
                    Ok(keys) => {
                        return Recovery::from_parsed(keys.iter().map(String::as_str), |key| {
                            template
                                .parse_key(&key_prefix, &topic_name, Some(partition), key)
                                .map(|(_, first, last)| (first, last))
                        })
                    }
                    Err(error) => {
                        retrying(&error, "list", &prefix, &topic, partition, delay);
                        status.set_bucket(Err((error.code(), error.to_string())));
                        tokio::time::sleep(delay).await;
                        delay = (delay * 2).min(MAX_RETRY_DELAY);
                    }
                }
            }
        };
        ctx.wait(listed.into_actor(self).map(move |recovery, actor, ctx| {
            actor.recovery = Some(recovery);
            actor.process(chunk, 0, ctx);
            actor.report_buffered();
        }));
    }
}

fn retrying(
    error: &StoreError,
    what: &str,
    key: &str,
    topic: &str,
    partition: i32,
    delay: Duration,
) {
    warn!(code = %error.code(), topic, partition, retry_in_ms = delay.as_millis() as u64,
        "cannot {what} {key} to find objects stored but not committed; the partition waits \
         (nothing is written before the bucket answers): {error}");
}
