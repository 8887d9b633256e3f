//! Wiring: builds the actors downstream-first (uploaders, the error-topic producer, then the
//! supervisor, which starts a batcher and a consumer per assigned partition). Reading this file
//! tells the whole graph.

use std::sync::Arc;

use actix::prelude::*;
use rdkafka::producer::FutureProducer;

use crate::batcher::BatcherContext;
use crate::buffer_pool::BufferPool;
use crate::error::State;
use crate::error_topics::ErrorTopicProducer;
use crate::kafka::{SinkConsumer, StatusChange, StatusTopic};
use crate::memory::MemoryBudget;
use crate::settings::PipelineSettings;
use crate::staging::{Retry, StreamSettings};
use crate::status::StatusBoard;
use crate::store::SharedStore;
use crate::supervisor::{PipelineSupervisor, SupervisorContext};
use crate::uploader::Uploader;

/// The running actors and the threads they run on.
pub struct Wired {
    pub supervisor: Addr<PipelineSupervisor>,
    pub status_topic: StatusTopic,
    /// Stopped when the run ends.
    pub arbiters: Vec<Arbiter>,
}

/// How open objects past the part size stream out (`crate::staging`): the JSON formats, where
/// objects may be several parts.
fn stream_settings(settings: &PipelineSettings) -> Option<StreamSettings> {
    let streams = crate::staging::streams(
        settings.format.kind,
        settings.batching.max_bytes,
        settings.sink.part_size,
    );
    streams.then_some(StreamSettings {
        part_size: settings.sink.part_size,
        retry: Retry {
            initial_backoff: settings.sink.retry_initial_backoff,
            max_backoff: settings.sink.retry_max_backoff,
            max_attempts: settings.sink.max_upload_attempts,
        },
    })
}

pub fn wire(
    settings: &PipelineSettings,
    store: SharedStore,
    consumer: Arc<SinkConsumer>,
    producer: FutureProducer,
    status: StatusBoard,
) -> Wired {
    let partition_arbiters: Vec<Arbiter> = (0..settings.source.concurrency)
        .map(|_| Arbiter::new())
        .collect();
    let handles: Vec<ArbiterHandle> = partition_arbiters.iter().map(Arbiter::handle).collect();

    // Room for one object per uploader waiting: enough to keep them busy, small enough that a
    // slow store stops the batchers quickly.
    let (upload_tx, upload_rx) = async_channel::bounded(settings.sink.upload_concurrency);
    // Uploads run on threads of their own, one per two partition threads: a partition thread
    // then only reads and encodes while HTTP writes (and payload hashing) go on in parallel.
    let upload_arbiters: Vec<Arbiter> = (0..settings.source.concurrency.div_ceil(2))
        .map(|_| Arbiter::new())
        .collect();
    for id in 0..settings.sink.upload_concurrency {
        let (store, queue, status) = (store.clone(), upload_rx.clone(), status.clone());
        let (initial, max, attempts) = (
            settings.sink.retry_initial_backoff,
            settings.sink.retry_max_backoff,
            settings.sink.max_upload_attempts,
        );
        Uploader::start_in_arbiter(
            &upload_arbiters[id % upload_arbiters.len()].handle(),
            move |_| Uploader::new(id, store, queue, initial, max, attempts, status),
        );
    }
    drop(upload_rx);

    // The error-topic producer waits on librdkafka's queue when it is full: a thread of its own,
    // so no partition's thread ever waits on it.
    let producer_arbiter = Arbiter::new();
    let error_topics = {
        let (producer, name, resources) = (
            producer.clone(),
            settings.connector_name.clone(),
            settings.resources.clone(),
        );
        ErrorTopicProducer::start_in_arbiter(&producer_arbiter.handle(), move |_| {
            ErrorTopicProducer::new(producer, &name, &resources)
        })
    };
    let status_topic = StatusTopic::new(
        producer,
        &settings.resources.status_topic,
        &settings.connector_name,
    );
    // A bucket outage is the connector's, not a partition's: one status record when it starts,
    // one when the bucket answers again (RUNNING throughout: the partitions wait, nothing fails).
    let outage_topic = status_topic.clone();
    status.on_bucket_change(Arc::new(move |error| {
        let (code, message) = match error {
            Some((code, message)) => (Some(code), message),
            None => (None, "the bucket answers again"),
        };
        outage_topic.report(&StatusChange {
            state: State::Running,
            partition: None,
            code,
            offset: None,
            message: Some(message),
        });
    }));

    let memory = MemoryBudget::new(settings.memory_max_bytes);
    rdkafka::consumer::Consumer::context(&*consumer).set_memory(memory.clone());
    let supervisor = PipelineSupervisor::create(|ctx| {
        let batcher_context = BatcherContext {
            topic: Arc::from(settings.source.topic.as_str()),
            connector: Arc::from(settings.connector_name.as_str()),
            key_prefix: Arc::from(settings.sink.key_prefix.as_str()),
            key_template: Arc::new(settings.sink.key_template.clone()),
            policy: settings.batching,
            max_value_bytes: settings.failure.max_value_bytes,
            format: settings.format,
            offsets: consumer.clone(),
            upload_queue: upload_tx,
            store,
            supervisor: ctx.address().recipient(),
            buffers: BufferPool::within(&memory),
            // Replaced per partition by its assignment's flag.
            cancel: Default::default(),
            in_flight: Default::default(),
            memory,
            stream: stream_settings(settings),
        };
        PipelineSupervisor::new(SupervisorContext {
            batcher_context,
            policy: settings.failure.policy,
            drain_timeout: settings.drain_timeout,
            arbiters: handles,
            fetch: consumer.clone(),
            error_topics,
            status_topic: status_topic.clone(),
            board: status,
        })
    });
    let arbiters = partition_arbiters
        .into_iter()
        .chain(upload_arbiters)
        .chain(std::iter::once(producer_arbiter))
        .collect();
    Wired {
        supervisor,
        status_topic,
        arbiters,
    }
}
