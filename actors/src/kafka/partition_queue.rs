//! `PartitionQueue`: one assigned partition's librdkafka queue, split off the consumer queue,
//! read in batches.
//!
//! rdkafka's own `PartitionQueue::poll` returns one message per call through librdkafka's event
//! API: per record it takes the queue lock, reads the clock several times and allocates (and
//! frees) an `Arc` around the event. Profiles of the connector had that path at about 20% of
//! its CPU with 100-byte records. This wrapper calls `rd_kafka_consume_batch_queue` instead,
//! which pops up to `BATCH` messages under one lock and one clock read.
//!
//! The batch call advances the partition's application position past every message it returns,
//! errors included, and librdkafka restarts fetching from that position when a partition is
//! resumed after a pause. So `enable.partition.eof` must stay off (an end-of-partition event at
//! offset N would move the position to N + 1 and a pause would skip record N); the consumer
//! tells "caught up" from the cached high watermark instead ([`PartitionQueue::caught_up`]).

use std::ffi::{c_void, CString};
use std::ptr::{self, NonNull};
use std::sync::Arc;

use rdkafka::bindings as rdsys;
use rdkafka::consumer::Consumer;
use rdkafka::error::RDKafkaErrorCode;

use super::Assignment;
use crate::kafka::SinkConsumer;

/// Messages popped per `rd_kafka_consume_batch_queue` call.
const BATCH: usize = 256;

type Callback = Box<Box<dyn Fn() + Send + Sync>>;

pub struct PartitionQueue {
    queue: NonNull<rdsys::rd_kafka_queue_t>,
    /// Kept alive while librdkafka may call it (until disabled in `drop`).
    callback: Option<Callback>,
    /// The queue must not outlive its client.
    consumer: Arc<SinkConsumer>,
    topic: CString,
    partition: i32,
    /// Reads happen only while this assignment of the partition is current: every split of a
    /// partition shares librdkafka's one fetch queue of the partition.
    assignment: Assignment,
}

// SAFETY: librdkafka queues are thread-safe; the wrapper is used by one actor at a time.
unsafe impl Send for PartitionQueue {}

/// One record read from the queue, borrowed until the next record.
pub struct QueuedRecord<'a> {
    pub offset: i64,
    /// Milliseconds since the epoch, `-1` when the record has none.
    pub timestamp: i64,
    pub key: Option<&'a [u8]>,
    pub payload: Option<&'a [u8]>,
    headers: *mut rdsys::rd_kafka_headers_t,
}

impl<'a> QueuedRecord<'a> {
    /// Whether the record has headers.
    pub fn has_headers(&self) -> bool {
        !self.headers.is_null()
    }

    /// The record's headers in order (a header without value has `None`).
    pub fn headers(&self) -> impl Iterator<Item = (&'a [u8], Option<&'a [u8]>)> + '_ {
        let headers = self.headers;
        (0..).map_while(move |index| {
            if headers.is_null() {
                return None;
            }
            let (mut name, mut value, mut size) = (ptr::null(), ptr::null(), 0usize);
            // SAFETY: `headers` belongs to a message that outlives `'a`; librdkafka returns
            // pointers into it.
            let err = unsafe {
                rdsys::rd_kafka_header_get_all(headers, index, &mut name, &mut value, &mut size)
            };
            if err != rdsys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
                return None;
            }
            let name = unsafe { std::ffi::CStr::from_ptr(name) }.to_bytes();
            let value = (!value.is_null())
                .then(|| unsafe { std::slice::from_raw_parts(value as *const u8, size) });
            Some((name, value))
        })
    }
}

/// What one [`PartitionQueue::read`] found.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ReadOutcome {
    pub records: usize,
    /// Fewer messages than asked for: the queue is empty (or the assignment ended).
    pub emptied: bool,
    /// The assignment ended: nothing was read, and nothing will be.
    pub ended: bool,
}

impl PartitionQueue {
    /// Splits `partition`'s queue off the consumer queue (what rdkafka's
    /// `split_partition_queue` does): its messages no longer reach `poll` on the consumer. Called
    /// in the assignment callback *before* the partition is assigned, so that no fetch can
    /// deliver into the consumer queue first (librdkafka creates the partition if it does not
    /// know it yet, and keeps an application's forwarding when the assignment starts fetching).
    pub fn split(
        consumer: &Arc<SinkConsumer>,
        topic: &str,
        assignment: Assignment,
    ) -> Option<Self> {
        let partition = assignment.partition();
        let topic = CString::new(topic).ok()?;
        // SAFETY: the client pointer is valid while `consumer` lives.
        let queue = unsafe {
            rdsys::rd_kafka_queue_get_partition(
                consumer.client().native_ptr(),
                topic.as_ptr(),
                partition,
            )
        };
        let queue = NonNull::new(queue)?;
        unsafe { rdsys::rd_kafka_queue_forward(queue.as_ptr(), ptr::null_mut()) };
        Some(PartitionQueue {
            queue,
            callback: None,
            consumer: consumer.clone(),
            topic,
            partition,
            assignment,
        })
    }

    /// The assignment the queue belongs to.
    pub fn assignment(&self) -> &Assignment {
        &self.assignment
    }

    /// Calls `f` (on a librdkafka thread) whenever the queue becomes non-empty.
    pub fn set_nonempty_callback(&mut self, f: impl Fn() + Send + Sync + 'static) {
        unsafe extern "C" fn trampoline(_: *mut rdsys::rd_kafka_t, opaque: *mut c_void) {
            let f = opaque as *const Box<dyn Fn() + Send + Sync>;
            (*f)();
        }
        let f: Callback = Box::new(Box::new(f));
        // SAFETY: `f` is boxed, so its address is stable; it is kept in `self.callback` until the
        // callback is replaced or disabled.
        unsafe {
            rdsys::rd_kafka_queue_cb_event_enable(
                self.queue.as_ptr(),
                Some(trampoline),
                &*f as *const Box<dyn Fn() + Send + Sync> as *mut c_void,
            )
        }
        self.callback = Some(f);
    }

    /// Pops up to `max` (at most `BATCH`) messages the queue holds now, without waiting, under
    /// one lock; calls `on_record` for each record and `on_error` for each error event.
    pub fn read(
        &self,
        max: usize,
        mut on_record: impl FnMut(&QueuedRecord<'_>),
        mut on_error: impl FnMut(RDKafkaErrorCode, i64),
    ) -> ReadOutcome {
        // Under the assignment's lock: once the revocation ended it, this queue reads nothing,
        // and no read is in progress (the same librdkafka queue may be a later assignment's).
        self.assignment
            .while_current(|| self.read_current(max, &mut on_record, &mut on_error))
            .unwrap_or(ReadOutcome {
                records: 0,
                emptied: true,
                ended: true,
            })
    }

    fn read_current(
        &self,
        max: usize,
        on_record: &mut impl FnMut(&QueuedRecord<'_>),
        on_error: &mut impl FnMut(RDKafkaErrorCode, i64),
    ) -> ReadOutcome {
        let mut outcome = ReadOutcome::default();
        let mut messages = [ptr::null_mut::<rdsys::rd_kafka_message_t>(); BATCH];
        {
            let limit = max.clamp(1, BATCH);
            // SAFETY: `messages` has room for `limit` pointers.
            let count = unsafe {
                rdsys::rd_kafka_consume_batch_queue(
                    self.queue.as_ptr(),
                    0,
                    messages.as_mut_ptr(),
                    limit,
                )
            };
            let count = usize::try_from(count).unwrap_or(0);
            for &message in &messages[..count] {
                // SAFETY: librdkafka returned `count` valid messages; each is destroyed once,
                // after its borrowed view is gone.
                unsafe {
                    let m = &*message;
                    if m.err != rdsys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
                        on_error(m.err.into(), m.offset);
                    } else {
                        let mut headers = ptr::null_mut();
                        let has_headers = rdsys::rd_kafka_message_headers(message, &mut headers)
                            == rdsys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR;
                        let mut timestamp_type =
                            rdsys::rd_kafka_timestamp_type_t::RD_KAFKA_TIMESTAMP_NOT_AVAILABLE;
                        let timestamp =
                            rdsys::rd_kafka_message_timestamp(message, &mut timestamp_type);
                        let record = QueuedRecord {
                            offset: m.offset,
                            timestamp: if timestamp_type
                                == rdsys::rd_kafka_timestamp_type_t::RD_KAFKA_TIMESTAMP_NOT_AVAILABLE
                            {
                                -1
                            } else {
                                timestamp
                            },
                            key: bytes(m.key as *const u8, m.key_len),
                            payload: bytes(m.payload as *const u8, m.len),
                            headers: if has_headers { headers } else { ptr::null_mut() },
                        };
                        on_record(&record);
                        outcome.records += 1;
                    }
                    rdsys::rd_kafka_message_destroy(message);
                }
            }
            outcome.emptied = count < limit;
        }
        outcome
    }

    /// Whether `next_offset` (the offset after the last record read) has reached the partition's
    /// high watermark as of librdkafka's latest fetch response (cached, no broker call). With
    /// transactional producers the last offset is a commit marker, so this stays `false` until
    /// more records arrive; the batcher's interval still applies.
    pub fn caught_up(&self, next_offset: i64) -> bool {
        let (_, high) = self.watermarks();
        high >= 0 && next_offset >= high
    }

    /// The partition's log start offset (the oldest record retention kept) as of librdkafka's
    /// latest fetch response; `-1` if not known yet.
    pub fn low_watermark(&self) -> i64 {
        self.watermarks().0
    }

    /// Cached `(low, high)` watermarks, `-1` where unknown. No broker call.
    fn watermarks(&self) -> (i64, i64) {
        let (mut low, mut high) = (-1i64, -1i64);
        // SAFETY: the client lives as long as `self.consumer`; the topic is a C string.
        let err = unsafe {
            rdsys::rd_kafka_get_watermark_offsets(
                self.consumer.client().native_ptr(),
                self.topic.as_ptr(),
                self.partition,
                &mut low,
                &mut high,
            )
        };
        if err == rdsys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
            (low, high)
        } else {
            (-1, -1)
        }
    }
}

/// A byte slice from librdkafka's pointer and length (`None` for a null pointer).
unsafe fn bytes<'a>(data: *const u8, len: usize) -> Option<&'a [u8]> {
    (!data.is_null()).then(|| std::slice::from_raw_parts(data, len))
}

impl Drop for PartitionQueue {
    fn drop(&mut self) {
        // SAFETY: disabling the callback first, so librdkafka no longer calls into the closure
        // freed with `self.callback`; then the queue handle is released.
        unsafe {
            rdsys::rd_kafka_queue_cb_event_enable(self.queue.as_ptr(), None, ptr::null_mut());
            rdsys::rd_kafka_queue_destroy(self.queue.as_ptr());
        }
    }
}
