//! The driver thread: polls the consumer's main queue (rebalance callbacks, errors, logs,
//! statistics) and commits the stored offsets. It keeps polling while every partition is paused,
//! so backpressure never costs the group membership.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use std::ffi::c_void;
use std::ptr;

use rdkafka::bindings as rdsys;
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::Message;
use tracing::{error, warn};

use super::consumer::SinkConsumer;
use super::context::{CommitEntry, SinkContext};
use crate::error::ErrorCode;

/// How often the driver commits stored offsets.
const COMMIT_INTERVAL: Duration = Duration::from_secs(1);

/// Commits the stored offsets of the current assignment. Every outcome goes to
/// [`SinkContext::commit_done`], which logs and counts failures:
///
/// - `Async` (the driver's periodic commit): the result is posted to the consumer queue as a
///   commit event, which the driver's next poll hands to `commit_callback`. (`rd_kafka_commit`
///   would post it nowhere: with rust-rdkafka's event API there is no `offset_commit_cb`, so
///   librdkafka drops the result of an asynchronous manual commit.)
/// - `Sync` (before a revocation completes, at shutdown): waits for the coordinator's answer and
///   reports it before returning.
pub(super) fn commit_stored(consumer: &SinkConsumer, mode: CommitMode) {
    let context = consumer.context();
    if context.is_fenced() {
        return;
    }
    let rk = consumer.client().native_ptr();
    let immediate = match mode {
        // SAFETY: `rk` is valid while `consumer` lives; the queue reference taken here is
        // released right after the request is enqueued (the request keeps its own).
        CommitMode::Async => unsafe {
            let queue = rdsys::rd_kafka_queue_get_consumer(rk);
            let err = rdsys::rd_kafka_commit_queue(rk, ptr::null(), queue, None, ptr::null_mut());
            if !queue.is_null() {
                rdsys::rd_kafka_queue_destroy(queue);
            }
            err
        },
        CommitMode::Sync => {
            let mut served = SyncCommit {
                context,
                served: false,
            };
            // SAFETY: with no queue, `rd_kafka_commit_queue` waits for the answer and calls
            // `sync_commit_done` on this thread before returning, so `served` outlives the call.
            let err = unsafe {
                rdsys::rd_kafka_commit_queue(
                    rk,
                    ptr::null(),
                    ptr::null_mut(),
                    Some(sync_commit_done),
                    &mut served as *mut SyncCommit<'_> as *mut c_void,
                )
            };
            if served.served {
                return;
            }
            err
        }
    };
    if immediate != rdsys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
        // Refused before reaching the coordinator (no answer will come).
        context.commit_done(mode, Some(immediate.into()), &[]);
    }
}

struct SyncCommit<'a> {
    context: &'a SinkContext,
    served: bool,
}

unsafe extern "C" fn sync_commit_done(
    _rk: *mut rdsys::rd_kafka_t,
    err: rdsys::rd_kafka_resp_err_t,
    offsets: *mut rdsys::rd_kafka_topic_partition_list_t,
    opaque: *mut c_void,
) {
    let commit = &mut *(opaque as *mut SyncCommit<'_>);
    commit.served = true;
    let mut entries = Vec::new();
    if !offsets.is_null() {
        let list = &*offsets;
        let elements: &[rdsys::rd_kafka_topic_partition_t] = if list.cnt > 0 {
            std::slice::from_raw_parts(list.elems, list.cnt as usize)
        } else {
            &[]
        };
        for element in elements {
            if element.topic.is_null() {
                continue;
            }
            entries.push(CommitEntry {
                topic: std::ffi::CStr::from_ptr(element.topic)
                    .to_str()
                    .unwrap_or(""),
                partition: element.partition,
                offset: element.offset,
                error: (element.err != rdsys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR)
                    .then(|| element.err.into()),
            });
        }
    }
    let error = (err != rdsys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR).then(|| err.into());
    commit
        .context
        .commit_done(CommitMode::Sync, error, &entries);
}

/// The thread that polls the consumer's main queue and commits.
pub struct Driver {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Driver {
    /// Starts polling. `on_fatal` is called (once) if the consumer cannot go on.
    pub fn spawn(
        consumer: Arc<SinkConsumer>,
        on_fatal: impl FnOnce(String) + Send + 'static,
    ) -> Driver {
        let stop = Arc::new(AtomicBool::new(false));
        let stop_flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("kafka-driver".into())
            .spawn(move || drive(consumer, stop_flag, on_fatal))
            .expect("spawning the kafka driver thread");
        Driver {
            stop,
            thread: Some(thread),
        }
    }

    /// Commits what is stored, leaves the group and joins the thread. Blocking.
    pub fn shutdown(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn drive(consumer: Arc<SinkConsumer>, stop: Arc<AtomicBool>, on_fatal: impl FnOnce(String)) {
    let mut on_fatal = Some(on_fatal);
    let mut last_commit = Instant::now();
    while !stop.load(Ordering::SeqCst) {
        match consumer.poll(Duration::from_millis(100)) {
            None => {}
            Some(Ok(message)) => {
                // Every assigned partition's queue is split off inside the assignment callback,
                // so no record should ever arrive here. If one does, records of that partition
                // may be missing from its actor's stream: never commit again, and stop.
                let reason = format!(
                    "record of topic `{}` partition {} offset {} arrived on the consumer queue instead of the partition queue",
                    message.topic(),
                    message.partition(),
                    message.offset()
                );
                consumer.context().fence();
                error!(
                    code = %ErrorCode::KafkaQueueLeak,
                    topic = message.topic(),
                    partition = message.partition(),
                    offset = message.offset(),
                    "{reason}; stopping without further commits"
                );
                if let Some(on_fatal) = on_fatal.take() {
                    on_fatal(reason);
                }
                return;
            }
            Some(Err(KafkaError::MessageConsumptionFatal(code))) => {
                consumer.context().fence();
                let reason = format!("fatal consumer error: {code}");
                error!(code = %ErrorCode::KafkaFatal, "{reason}");
                if let Some(on_fatal) = on_fatal.take() {
                    on_fatal(reason);
                }
                return;
            }
            Some(Err(error)) => {
                warn!(code = %ErrorCode::KafkaUnavailable, %error, "consumer error")
            }
        }
        if last_commit.elapsed() >= COMMIT_INTERVAL {
            commit_stored(&consumer, CommitMode::Async);
            last_commit = Instant::now();
        }
    }
    // Shutdown: the supervisor has drained the partitions. Commit synchronously, then leave the
    // group so that a restarted or another member gets the partitions without waiting for the
    // session timeout.
    commit_stored(&consumer, CommitMode::Sync);
    consumer.unsubscribe();
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline
        && !consumer
            .assignment()
            .map(|list| list.count() == 0)
            .unwrap_or(true)
    {
        let _ = consumer.poll(Duration::from_millis(50));
    }
}
