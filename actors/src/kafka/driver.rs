//! The driver thread: polls the consumer's main queue (rebalance callbacks, errors, logs,
//! statistics) and commits the stored offsets. It keeps polling while every partition is paused,
//! so backpressure never costs the group membership.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::Message;
use tracing::{error, warn};

use super::consumer::SinkConsumer;
use crate::error::ErrorCode;
use crate::metrics;

/// How often the driver commits stored offsets.
const COMMIT_INTERVAL: Duration = Duration::from_secs(1);

/// Commits the stored offsets of the current assignment. Nothing stored is not an error.
pub(super) fn commit_stored(consumer: &SinkConsumer, mode: CommitMode) {
    if consumer.context().is_fenced() {
        return;
    }
    match consumer.commit_consumer_state(mode) {
        Ok(()) => {}
        Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
        Err(error) => {
            metrics::record_retry(ErrorCode::KafkaCommit);
            warn!(code = %ErrorCode::KafkaCommit, %error, "offset commit failed; will retry")
        }
    }
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
