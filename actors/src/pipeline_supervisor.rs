//! `PipelineSupervisor`: owns the partition lifecycle.
//!
//! - Receives: `KafkaEvent::Assigned` (starts a `Batcher` and a `PartitionConsumer` per
//!   partition, on the arbiter `partition % concurrency`), `KafkaEvent::Revoked` (drains the
//!   partitions, stops their actors, then acknowledges so the rebalance callback can commit),
//!   `PartitionFailed` (stops the partition's consumption and reports the error with its code;
//!   the other partitions keep running), and `Shutdown` (drains everything).
//! - Drains are bounded by the drain timeout: if the store stays down, the actors are stopped
//!   anyway and nothing past the last stored object is committed.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use tracing::{error, info, warn};

use crate::batcher::Batcher;
use crate::kafka::{PartitionQueue, SinkConsumer};
use crate::messages::{Drain, Halt, KafkaEvent, PartitionFailed, SealedObject, Shutdown, Stop};
use crate::metrics::PartitionMetrics;
use crate::partition_consumer::PartitionConsumer;
use crate::settings::RollPolicy;
use crate::status::{self, StatusBoard};

/// The state of one assigned partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PartitionState {
    Running,
    Failed {
        code: &'static str,
        offset: i64,
        error: String,
    },
}

struct PartitionHandle {
    consumer: Addr<PartitionConsumer>,
    batcher: Addr<Batcher>,
    state: PartitionState,
}

pub struct PipelineSupervisor {
    topic: Arc<str>,
    key_prefix: Arc<str>,
    policy: RollPolicy,
    drain_timeout: Duration,
    consumer: Arc<SinkConsumer>,
    /// The threads the partition actors are spread over (`source.concurrency`).
    arbiters: Vec<ArbiterHandle>,
    upload_queue: async_channel::Sender<SealedObject>,
    partitions: BTreeMap<i32, PartitionHandle>,
    status: StatusBoard,
}

impl PipelineSupervisor {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        topic: Arc<str>,
        key_prefix: Arc<str>,
        policy: RollPolicy,
        drain_timeout: Duration,
        consumer: Arc<SinkConsumer>,
        arbiters: Vec<ArbiterHandle>,
        upload_queue: async_channel::Sender<SealedObject>,
        status: StatusBoard,
    ) -> Self {
        assert!(!arbiters.is_empty(), "at least one arbiter");
        PipelineSupervisor {
            topic,
            key_prefix,
            policy,
            drain_timeout,
            consumer,
            arbiters,
            upload_queue,
            partitions: BTreeMap::new(),
            status,
        }
    }

    fn start_partition(&mut self, partition: i32, queue: PartitionQueue, ctx: &mut Context<Self>) {
        let arbiter = &self.arbiters[partition.unsigned_abs() as usize % self.arbiters.len()];
        let (topic, prefix, policy) = (self.topic.clone(), self.key_prefix.clone(), self.policy);
        let (consumer, upload_queue) = (self.consumer.clone(), self.upload_queue.clone());
        let supervisor = ctx.address().recipient();
        let metrics = PartitionMetrics::new(&self.topic, partition);
        self.status.assigned(partition);
        let (batcher_metrics, status) = (metrics.clone(), self.status.clone());
        let batcher = Batcher::start_in_arbiter(arbiter, move |_| {
            Batcher::new(
                topic,
                partition,
                prefix,
                policy,
                consumer,
                upload_queue,
                supervisor,
                batcher_metrics,
                status,
            )
        });
        let topic = self.topic.clone();
        let batcher_addr = batcher.clone();
        let max_records = self.policy.max_records;
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
            warn!(topic = %self.topic, partition, "partition assigned again; replacing its actors");
            old.consumer.do_send(Stop);
            old.batcher.do_send(Stop);
        }
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
        let topic = self.topic.clone();
        let status = self.status.clone();
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
                status.revoked(partition);
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
                    self.start_partition(partition, queue, ctx);
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
            code = failure.code, topic = %self.topic, partition = failure.partition, offset = failure.offset,
            "partition stopped: {}; nothing at or after offset {} is committed", failure.error, failure.offset
        );
        if let Some(handle) = self.partitions.get_mut(&failure.partition) {
            handle.consumer.do_send(Halt);
            self.status.set_state(failure.partition, status::FAILED);
            self.status.set_error(
                failure.partition,
                failure.code,
                &failure.error,
                Some(failure.offset),
            );
            handle.state = PartitionState::Failed {
                code: failure.code,
                offset: failure.offset,
                error: failure.error,
            };
        }
    }
}

impl Handler<Shutdown> for PipelineSupervisor {
    type Result = ResponseFuture<bool>;

    fn handle(&mut self, _: Shutdown, _ctx: &mut Self::Context) -> Self::Result {
        let partitions: Vec<i32> = self.partitions.keys().copied().collect();
        info!(topic = %self.topic, ?partitions, "shutting down: draining partitions");
        Box::pin(self.drain(&partitions, Drain::Shutdown))
    }
}
