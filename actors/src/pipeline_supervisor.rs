//! `PipelineSupervisor`: owns the partition lifecycle.
//!
//! - Receives: `KafkaEvent::Assigned` (starts a `Batcher` and a `PartitionConsumer` per
//!   partition, on the arbiter `partition % concurrency`), `KafkaEvent::Revoked` (drains the
//!   partitions, stops their actors, then acknowledges so the rebalance callback can commit),
//!   `PartitionFailed` (halts the partition's consumption, pauses its fetching and reports the
//!   error with its code; the other partitions keep running), `PartitionCommand` (an operator's
//!   pause or resume), and `Shutdown` (drains everything).
//! - Writes every state change (RUNNING, FAILED with code, PAUSED, RESUMED) to the status topic.
//! - Drains are bounded by the drain timeout: if the store stays down, the actors are stopped
//!   anyway and nothing past the last stored object is committed.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use tracing::{error, info, warn};

use rdkafka::consumer::Consumer;

use crate::batcher::{Batcher, BatcherContext};
use crate::kafka::PartitionQueue;
use crate::messages::{
    Drain, Halt, KafkaEvent, PartitionAction, PartitionCommand, PartitionFailed, PartitionResumed,
    Proceed, ResumeBatcher, Shutdown, Stop,
};
use crate::metrics::PartitionMetrics;
use crate::partition_consumer::PartitionConsumer;
use crate::resources::{StatusChange, StatusTopic};
use crate::status::StatusBoard;

/// The state of one assigned partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PartitionState {
    Running,
    /// Paused by an operator.
    Paused,
    /// Stopped by the `fail` policy (or an error topic that refused a record).
    Failed {
        code: &'static str,
        offset: i64,
        error: String,
    },
}

impl PartitionState {
    pub fn name(&self) -> &'static str {
        match self {
            PartitionState::Running => "RUNNING",
            PartitionState::Paused => "PAUSED",
            PartitionState::Failed { .. } => "FAILED",
        }
    }
}

struct PartitionHandle {
    consumer: Addr<PartitionConsumer>,
    batcher: Addr<Batcher>,
    state: PartitionState,
}

pub struct PipelineSupervisor {
    /// What every batcher gets (its `supervisor` is this actor).
    batcher_context: BatcherContext,
    drain_timeout: Duration,
    /// The threads the partition actors are spread over (`source.concurrency`).
    arbiters: Vec<ArbiterHandle>,
    /// State changes go to the status topic (history) and the status board (`/status`).
    status: StatusTopic,
    board: StatusBoard,
    partitions: BTreeMap<i32, PartitionHandle>,
}

impl PipelineSupervisor {
    pub fn new(
        batcher_context: BatcherContext,
        drain_timeout: Duration,
        arbiters: Vec<ArbiterHandle>,
        status: StatusTopic,
        board: StatusBoard,
    ) -> Self {
        assert!(!arbiters.is_empty(), "at least one arbiter");
        PipelineSupervisor {
            batcher_context,
            drain_timeout,
            arbiters,
            status,
            board,
            partitions: BTreeMap::new(),
        }
    }

    fn topic(&self) -> &Arc<str> {
        &self.batcher_context.topic
    }

    fn report(&self, partition: i32, state: &PartitionState) {
        self.board.set_state(partition, state.name());
        let (code, offset, message) = match state {
            PartitionState::Failed {
                code,
                offset,
                error,
            } => {
                self.board.set_error(partition, code, error, Some(*offset));
                (Some(*code), Some(*offset), Some(error.as_str()))
            }
            _ => (None, None, None),
        };
        self.status.report(&StatusChange {
            state: state.name(),
            partition: Some((self.topic(), partition)),
            code,
            offset,
            message,
        });
    }

    /// Stops or restarts fetching of one partition in librdkafka.
    fn set_fetching(&self, partition: i32, fetching: bool) {
        let mut list = rdkafka::TopicPartitionList::new();
        list.add_partition(self.topic(), partition);
        let consumer = &self.batcher_context.consumer;
        let result = if fetching {
            consumer.resume(&list)
        } else {
            consumer.pause(&list)
        };
        if let Err(error) = result {
            warn!(code = "KAFKA_UNAVAILABLE", topic = %self.topic(), partition, %error, "cannot pause or resume fetching");
        }
    }

    fn start_partition(&mut self, partition: i32, queue: PartitionQueue) {
        let arbiter = &self.arbiters[partition.unsigned_abs() as usize % self.arbiters.len()];
        let batcher_context = self.batcher_context.clone();
        let metrics = PartitionMetrics::new(self.topic(), partition);
        self.board.assigned(partition);
        let (batcher_metrics, board) = (metrics.clone(), self.board.clone());
        let batcher = Batcher::start_in_arbiter(arbiter, move |_| {
            Batcher::new(batcher_context, partition, batcher_metrics, board)
        });
        let topic = self.topic().clone();
        let batcher_addr = batcher.clone();
        let max_records = self.batcher_context.policy.max_records;
        let partition_consumer = PartitionConsumer::start_in_arbiter(arbiter, move |_| {
            PartitionConsumer::new(topic, partition, queue, batcher_addr, max_records, metrics)
        });
        if let Some(old) = self.partitions.insert(
            partition,
            PartitionHandle {
                consumer: partition_consumer,
                batcher,
                state: PartitionState::Running,
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
        let deadline = tokio::time::Instant::now() + self.drain_timeout;
        let topic = self.topic().clone();
        let board = self.board.clone();
        async move {
            let mut all_drained = true;
            for (partition, request) in requests {
                match tokio::time::timeout_at(deadline, request).await {
                    Ok(Ok(report)) => {
                        info!(topic = %topic, partition, committed_offset = ?report.committable, "partition drained")
                    }
                    Ok(Err(_)) => {
                        all_drained = false;
                        warn!(topic = %topic, partition, "partition actors gone before draining");
                    }
                    Err(_) => {
                        all_drained = false;
                        error!(
                            code = "DRAIN_TIMEOUT", topic = %topic, partition,
                            "buffered records not stored before the drain deadline; they are not committed and will be read again"
                        );
                    }
                }
            }
            for (partition, handle) in handles {
                board.revoked(partition);
                handle.consumer.do_send(Stop);
                handle.batcher.do_send(Stop);
            }
            all_drained
        }
    }
}

impl Actor for PipelineSupervisor {
    type Context = Context<Self>;
}

impl Handler<KafkaEvent> for PipelineSupervisor {
    type Result = ();

    fn handle(&mut self, event: KafkaEvent, ctx: &mut Self::Context) {
        match event {
            KafkaEvent::Assigned(queues) => {
                for (partition, queue) in queues {
                    self.start_partition(partition, queue);
                }
            }
            KafkaEvent::Revoked { partitions, ack } => {
                let drained = self.drain(&partitions, Drain::Rebalance);
                // `ctx.wait`: no new assignment is started before this revocation is done.
                ctx.wait(
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

impl Handler<PartitionFailed> for PipelineSupervisor {
    type Result = ();

    fn handle(&mut self, failure: PartitionFailed, _ctx: &mut Self::Context) {
        error!(
            code = failure.code, topic = %self.topic(), partition = failure.partition, offset = failure.offset,
            "partition stopped: {}; nothing at or after offset {} is committed; resume with `kafka-oss-sink resume --partition {}`",
            failure.error, failure.offset, failure.partition
        );
        let state = PartitionState::Failed {
            code: failure.code,
            offset: failure.offset,
            error: failure.error,
        };
        self.report(failure.partition, &state);
        if let Some(handle) = self.partitions.get_mut(&failure.partition) {
            handle.consumer.do_send(Halt);
            handle.state = state;
            self.set_fetching(failure.partition, false);
        }
    }
}

impl Handler<PartitionCommand> for PipelineSupervisor {
    type Result = ResponseActFuture<Self, Result<String, String>>;

    fn handle(&mut self, command: PartitionCommand, _ctx: &mut Self::Context) -> Self::Result {
        let partition = command.partition;
        let topic = self.topic().clone();
        let Some(handle) = self.partitions.get_mut(&partition) else {
            return Box::pin(fut::ready(Err(format!(
                "partition {partition} of topic `{topic}` is not assigned to this instance"
            ))));
        };
        match command.action {
            PartitionAction::Pause => {
                if handle.state != PartitionState::Running {
                    let state = handle.state.name();
                    return Box::pin(fut::ready(Err(format!(
                        "partition {partition} is {state}, not RUNNING"
                    ))));
                }
                handle.consumer.do_send(Halt);
                handle.state = PartitionState::Paused;
                self.set_fetching(partition, false);
                self.report(partition, &PartitionState::Paused);
                info!(topic = %topic, partition, "partition paused");
                Box::pin(fut::ready(Ok(format!("partition {partition} paused"))))
            }
            PartitionAction::Resume => match handle.state {
                PartitionState::Running => Box::pin(fut::ready(Ok(format!(
                    "partition {partition} is already RUNNING"
                )))),
                PartitionState::Paused => {
                    self.resumed(partition);
                    Box::pin(fut::ready(Ok(format!("partition {partition} resumed"))))
                }
                PartitionState::Failed { .. } => {
                    // The batcher announces the resume itself (`PartitionResumed`) before it
                    // processes the held records, so that a failure on one of them is reported
                    // after it, in order.
                    let batcher = handle.batcher.clone();
                    Box::pin(
                        async move {
                            match batcher.send(ResumeBatcher).await {
                                Ok(Ok(())) => Ok(format!("partition {partition} resumed")),
                                Ok(Err(reason)) => {
                                    Err(format!("partition {partition} cannot resume: {reason}"))
                                }
                                Err(_) => Err(format!("partition {partition} is shutting down")),
                            }
                        }
                        .into_actor(self),
                    )
                }
            },
        }
    }
}

impl PipelineSupervisor {
    /// A paused or failed partition goes on: consumption restarts, RESUMED then RUNNING.
    fn resumed(&mut self, partition: i32) {
        let topic = self.topic().clone();
        let Some(handle) = self.partitions.get_mut(&partition) else {
            return;
        };
        handle.state = PartitionState::Running;
        handle.consumer.do_send(Proceed);
        self.set_fetching(partition, true);
        self.status.report(&StatusChange {
            state: "RESUMED",
            partition: Some((&topic, partition)),
            code: None,
            offset: None,
            message: None,
        });
        self.report(partition, &PartitionState::Running);
        info!(topic = %topic, partition, "partition resumed");
    }
}

impl Handler<PartitionResumed> for PipelineSupervisor {
    type Result = ();

    fn handle(&mut self, resumed: PartitionResumed, _ctx: &mut Self::Context) {
        self.resumed(resumed.partition);
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
