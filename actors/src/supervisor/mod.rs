//! `PipelineSupervisor`: owns the partition lifecycle and applies the failure policy.
//!
//! - Receives: `KafkaEvent::Assigned` (starts a `Batcher` and a `PartitionConsumer` per
//!   partition, on the arbiter `partition % concurrency`), `KafkaEvent::Revoked` (drains the
//!   partitions, stops their actors, then acknowledges so the rebalance callback can commit),
//!   `KafkaEvent::Lost` (stops the partitions' actors at once: nothing of a lost partition is
//!   uploaded again or committed), `ReportFailure` from the batchers (decides by [`policy::decide`]: records go to the
//!   error-topic producer, or the partition is held: its consumer and fetching pause and the
//!   error is reported with its code; the other partitions keep running), `PartitionCommand`
//!   (an operator's pause or resume), and `Shutdown` (drains everything).
//! - Watches the memory budget (`supervisor/memory.rs`): publishes its gauges and, while
//!   partitions wait for memory, sends `SealForMemory` to the batchers of the largest open
//!   objects.
//! - Writes every state change (RUNNING, FAILED with code, PAUSED, RESUMED) to the status topic
//!   and the status board.
//! - Never waits inside a handler (`ctx.wait`): batchers wait for its answers, also while a drain
//!   is in progress. Drains are bounded by the drain timeout: if the store stays down, the actors
//!   are stopped anyway, the partition's assignment ends (its uploads stop, its offset stores
//!   are refused) and nothing past the last stored object is committed.

mod memory;
pub mod policy;

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use tracing::{debug, error, info, warn};

use crate::batcher::{Batcher, BatcherContext};
use crate::error::{ErrorCode, State};
use crate::error_topics::ErrorTopicProducer;
use crate::kafka::{
    AssignedOffsets, AssignedPartition, Assignment, FetchControl, KafkaEvent, StatusChange,
    StatusTopic,
};
use crate::messages::{
    CommandError, Drain, Forward, PartitionAction, PartitionCommand, Pause, ReportFailure, Resume,
    Shutdown, Stop,
};
use crate::metrics::{self, PartitionMetrics};
use crate::partition_consumer::PartitionConsumer;
use crate::settings::FailurePolicy;
use crate::status::StatusBoard;
pub use memory::MEMORY_WATCH_INTERVAL;
use policy::{Disposition, FailureKind};

/// The state of one assigned partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PartitionState {
    Running,
    /// Paused by an operator.
    Paused,
    /// Held by the failure policy.
    Failed {
        code: ErrorCode,
        offset: i64,
        error: String,
        /// Whether a resume can go on in-process.
        resumable: bool,
    },
}

impl PartitionState {
    pub fn state(&self) -> State {
        match self {
            PartitionState::Running => State::Running,
            PartitionState::Paused => State::Paused,
            PartitionState::Failed { .. } => State::Failed,
        }
    }
}

struct PartitionHandle {
    consumer: Addr<PartitionConsumer>,
    batcher: Addr<Batcher>,
    state: PartitionState,
    /// Ended when the partition is given up without a complete drain, so that nothing of it is
    /// stored as an offset or uploaded any more.
    assignment: Assignment,
}

/// Everything the supervisor works with besides its partitions.
pub struct SupervisorContext {
    /// What every batcher gets (its `supervisor` is this actor).
    pub batcher_context: BatcherContext,
    pub policy: FailurePolicy,
    pub drain_timeout: Duration,
    /// The threads the partition actors are spread over (`source.concurrency`).
    pub arbiters: Vec<ArbiterHandle>,
    pub fetch: Arc<dyn FetchControl>,
    pub error_topics: Addr<ErrorTopicProducer>,
    /// State changes go to the status topic (history) and the status board (`/status`).
    pub status_topic: StatusTopic,
    pub board: StatusBoard,
}

pub struct PipelineSupervisor {
    cx: SupervisorContext,
    partitions: BTreeMap<i32, PartitionHandle>,
}

impl PipelineSupervisor {
    pub fn new(cx: SupervisorContext) -> Self {
        assert!(!cx.arbiters.is_empty(), "at least one arbiter");
        PipelineSupervisor {
            cx,
            partitions: BTreeMap::new(),
        }
    }

    fn topic(&self) -> &Arc<str> {
        &self.cx.batcher_context.topic
    }

    fn report(&self, partition: i32, state: &PartitionState) {
        self.cx.board.set_state(partition, state.state());
        let (code, offset, message) = match state {
            PartitionState::Failed {
                code,
                offset,
                error,
                ..
            } => {
                self.cx
                    .board
                    .set_error(partition, *code, error, Some(*offset));
                (Some(*code), Some(*offset), Some(error.as_str()))
            }
            _ => (None, None, None),
        };
        self.cx.status_topic.report(&StatusChange {
            state: state.state(),
            partition: Some((self.topic(), partition)),
            code,
            offset,
            message,
        });
    }

    /// Stops or restarts fetching of one partition in librdkafka.
    fn set_fetching(&self, partition: i32, fetching: bool) {
        let result = if fetching {
            self.cx.fetch.resume(self.topic(), partition)
        } else {
            self.cx.fetch.pause(self.topic(), partition)
        };
        if let Err(error) = result {
            warn!(code = %ErrorCode::KafkaUnavailable, topic = %self.topic(), partition, %error, "cannot pause or resume fetching");
        }
    }

    fn start_partition(&mut self, assigned: AssignedPartition) {
        let partition = assigned.partition();
        let AssignedPartition { queue, committed } = assigned;
        let arbiter = &self.cx.arbiters[partition.unsigned_abs() as usize % self.cx.arbiters.len()];
        let assignment = queue.assignment().clone();
        let mut batcher_context = self.cx.batcher_context.clone();
        // The batcher stores offsets only while this assignment is current, and its objects are
        // not uploaded (again) once the assignment ended.
        batcher_context.offsets = Arc::new(AssignedOffsets::new(
            batcher_context.offsets,
            assignment.clone(),
        ));
        batcher_context.cancel = assignment.cancel_flag();
        batcher_context.in_flight = assignment.uploads_in_flight();
        let metrics = PartitionMetrics::new(self.topic(), partition);
        self.cx.board.assigned(partition);
        let (batcher_metrics, board) = (metrics.clone(), self.cx.board.clone());
        let batcher = Batcher::start_in_arbiter(arbiter, move |_| {
            Batcher::new(batcher_context, partition, batcher_metrics, board)
        });
        let topic = self.topic().clone();
        let batcher_addr = batcher.clone();
        let max_records = self.cx.batcher_context.policy.max_records;
        let memory = self.cx.batcher_context.memory.clone();
        let fetch = self.cx.fetch.clone();
        let partition_consumer = PartitionConsumer::start_in_arbiter(arbiter, move |_| {
            PartitionConsumer::new(
                topic,
                partition,
                queue,
                committed,
                batcher_addr,
                max_records,
                metrics,
            )
            .within(memory, Some(fetch))
        });
        if let Some(old) = self.partitions.insert(
            partition,
            PartitionHandle {
                consumer: partition_consumer,
                batcher,
                state: PartitionState::Running,
                assignment,
            },
        ) {
            // Assigned twice without a revocation in between: stop the old pair.
            warn!(topic = %self.topic(), partition, "partition assigned again; replacing its actors");
            old.consumer.do_send(Stop);
            old.batcher.do_send(Stop);
        }
        self.report(partition, &PartitionState::Running);
    }

    /// Drains the given partitions (all at once), stops their actors, and resolves to `true` if
    /// every one drained before the deadline.
    fn drain(&mut self, partitions: &[i32], cause: Drain) -> impl Future<Output = bool> + 'static {
        let handles: Vec<(i32, PartitionHandle)> = partitions
            .iter()
            .filter_map(|partition| {
                self.partitions
                    .remove(partition)
                    .map(|handle| (*partition, handle))
            })
            .collect();
        // `send` enqueues at once, so every partition starts draining now.
        let requests: Vec<_> = handles
            .iter()
            .map(|(partition, handle)| (*partition, handle.consumer.send(cause)))
            .collect();
        let deadline = tokio::time::Instant::now() + self.cx.drain_timeout;
        let topic = self.topic().clone();
        let board = self.cx.board.clone();
        async move {
            let mut all_drained = true;
            let mut drained = Vec::new();
            for (partition, request) in requests {
                match tokio::time::timeout_at(deadline, request).await {
                    Ok(Ok(report)) => {
                        drained.push(partition);
                        info!(topic = %topic, partition, committed_offset = ?report.committable, "partition drained")
                    }
                    Ok(Err(_)) => {
                        all_drained = false;
                        warn!(topic = %topic, partition, "partition actors gone before draining");
                    }
                    Err(_) => {
                        all_drained = false;
                        error!(
                            code = %ErrorCode::DrainTimeout, topic = %topic, partition,
                            "buffered records not stored before the drain deadline; their uploads stop, they are not committed and will be read again"
                        );
                    }
                }
            }
            for (partition, handle) in handles {
                if !drained.contains(&partition) {
                    // Whatever is still in flight must not land after the partition moved on.
                    handle.assignment.end();
                }
                board.revoked(partition);
                handle.consumer.do_send(Stop);
                handle.batcher.do_send(Stop);
            }
            all_drained
        }
    }

    /// Lost partitions: their actors stop at once, without draining. The assignments have
    /// ended, so nothing they still hold is stored as an offset or committed, and no object of
    /// theirs is attempted again.
    fn abandon(&mut self, partitions: &[i32]) {
        for partition in partitions {
            let Some(handle) = self.partitions.remove(partition) else {
                continue;
            };
            warn!(code = %ErrorCode::KafkaRebalance, topic = %self.topic(), partition = *partition,
                "partition lost: buffered records and uploads abandoned, nothing committed");
            handle.assignment.end();
            handle.consumer.do_send(Stop);
            handle.batcher.do_send(Stop);
            self.cx.board.revoked(*partition);
        }
    }

    /// The policy holds a partition: its consumer and fetching pause, FAILED is reported.
    fn hold(&mut self, failure: &policy::Failure, resumable: bool) {
        let partition = failure.partition;
        let Some(handle) = self.partitions.get_mut(&partition) else {
            return;
        };
        if let PartitionState::Failed { resumable: was, .. } = &mut handle.state {
            // Already held at an earlier failure: that one is what the operator sees.
            *was &= resumable;
            return;
        }
        let (code, message) = (failure.code(), failure.message());
        let next_step = if resumable {
            format!("resume with `kafka-oss-sink resume --partition {partition}`")
        } else {
            "restart the connector once the cause is fixed".to_owned()
        };
        error!(
            code = %code, topic = %failure.topic, partition, offset = failure.offset,
            "partition stopped: {message}; nothing at or after offset {} is committed; {next_step}",
            failure.offset
        );
        if let FailureKind::Unconvertible(_) = failure.kind {
            metrics::record_failed(&failure.topic, partition, code, "none", 1);
        }
        let state = PartitionState::Failed {
            code,
            offset: failure.offset,
            error: message,
            resumable,
        };
        handle.consumer.do_send(Pause);
        handle.state = state.clone();
        self.set_fetching(partition, false);
        self.report(partition, &state);
    }

    /// A paused or failed partition goes on: RESUMED then RUNNING, the batcher first (it may
    /// hold records), then reading and fetching.
    fn resume(&mut self, partition: i32) {
        let topic = self.topic().clone();
        let Some(handle) = self.partitions.get_mut(&partition) else {
            return;
        };
        let was_failed = matches!(handle.state, PartitionState::Failed { .. });
        handle.state = PartitionState::Running;
        if was_failed {
            handle.batcher.do_send(Resume);
        }
        // Fetching first: the consumer pauses it again if it has no fetch slot.
        self.set_fetching(partition, true);
        let Some(handle) = self.partitions.get(&partition) else {
            return;
        };
        handle.consumer.do_send(Resume);
        self.cx.status_topic.report(&StatusChange {
            state: State::Resumed,
            partition: Some((&topic, partition)),
            code: None,
            offset: None,
            message: None,
        });
        self.report(partition, &PartitionState::Running);
        info!(topic = %topic, partition, "partition resumed");
    }
}

impl Actor for PipelineSupervisor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.watch_memory(ctx);
    }
}

impl Handler<KafkaEvent> for PipelineSupervisor {
    type Result = ();

    fn handle(&mut self, event: KafkaEvent, ctx: &mut Self::Context) {
        match event {
            KafkaEvent::Assigned(partitions) => {
                for assigned in partitions {
                    self.start_partition(assigned);
                }
            }
            KafkaEvent::Lost { partitions } => self.abandon(&partitions),

            KafkaEvent::Revoked { partitions, ack } => {
                // Not `ctx.wait`: batchers that report failures while draining need answers. No
                // new assignment arrives before `ack`: the rebalance callback blocks on it.
                let drained = self.drain(&partitions, Drain::Rebalance);
                ctx.spawn(
                    async move {
                        drained.await;
                        let _ = ack.send(());
                    }
                    .into_actor(self),
                );
            }
        }
    }
}

impl Handler<ReportFailure> for PipelineSupervisor {
    type Result = ResponseFuture<Disposition>;

    fn handle(&mut self, report: ReportFailure, _ctx: &mut Self::Context) -> Self::Result {
        let ReportFailure {
            failure,
            records,
            unit,
            reply,
        } = report;
        let disposition = policy::decide(self.cx.policy, &failure);
        debug!(topic = %failure.topic, partition = failure.partition, offset = failure.offset, code = %failure.code(), ?disposition, "failure decided");
        match disposition {
            Disposition::Route(destination) => {
                match &failure.kind {
                    FailureKind::Unconvertible(_) => warn!(
                        code = %failure.code(), topic = %failure.topic, partition = failure.partition, offset = failure.offset,
                        "{}; sending it to the dead-letter topic", failure.message()
                    ),
                    FailureKind::ObjectRefused { key, error } => warn!(
                        code = %failure.code(), topic = %failure.topic, partition = failure.partition, key = %key,
                        "object not stored ({error}); sending its records to the abnormal-data topic"
                    ),
                    FailureKind::Oversize { .. }
                    | FailureKind::ErrorTopicRefused { .. }
                    | FailureKind::ForeignObject { .. }
                    | FailureKind::StreamLost { .. } => {}
                }
                let forward = Forward {
                    destination,
                    partition: failure.partition,
                    records,
                    failure,
                    unit,
                    reply: reply.clone(),
                };
                // What the batcher is told if the producer is gone (the pipeline stops).
                let gone = forward.outcome(Err("the error-topic producer stopped".to_owned()));
                let producer = self.cx.error_topics.clone();
                // Awaited: the producer's bounded mailbox paces the batchers that report.
                Box::pin(async move {
                    if producer.send(forward).await.is_err() {
                        reply.do_send(gone);
                    }
                    disposition
                })
            }
            Disposition::Retry => Box::pin(std::future::ready(disposition)),
            Disposition::Hold { resumable } => {
                self.hold(&failure, resumable);
                Box::pin(std::future::ready(disposition))
            }
        }
    }
}

impl Handler<PartitionCommand> for PipelineSupervisor {
    type Result = Result<String, CommandError>;

    fn handle(&mut self, command: PartitionCommand, _ctx: &mut Self::Context) -> Self::Result {
        let partition = command.partition;
        let topic = self.topic().clone();
        let Some(handle) = self.partitions.get_mut(&partition) else {
            return Err(CommandError::NotAssigned {
                topic: topic.to_string(),
                partition,
            });
        };
        match (command.action, &handle.state) {
            (PartitionAction::Pause, PartitionState::Running) => {
                handle.consumer.do_send(Pause);
                handle.state = PartitionState::Paused;
                self.set_fetching(partition, false);
                self.report(partition, &PartitionState::Paused);
                info!(topic = %topic, partition, "partition paused");
                Ok(format!("partition {partition} paused"))
            }
            (PartitionAction::Pause, state) => Err(CommandError::NotRunning {
                partition,
                state: state.state(),
            }),
            (PartitionAction::Resume, PartitionState::Running) => {
                Ok(format!("partition {partition} is already RUNNING"))
            }
            (
                PartitionAction::Resume,
                PartitionState::Failed {
                    resumable: false, ..
                },
            ) => Err(CommandError::NotResumable { partition }),
            (PartitionAction::Resume, _) => {
                self.resume(partition);
                Ok(format!("partition {partition} resumed"))
            }
        }
    }
}

impl Handler<Shutdown> for PipelineSupervisor {
    type Result = ResponseFuture<bool>;

    fn handle(&mut self, _: Shutdown, _ctx: &mut Self::Context) -> Self::Result {
        let partitions: Vec<i32> = self.partitions.keys().copied().collect();
        info!(topic = %self.topic(), ?partitions, "shutting down: draining partitions");
        Box::pin(self.drain(&partitions, Drain::Shutdown))
    }
}
