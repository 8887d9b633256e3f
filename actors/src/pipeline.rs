//! Wiring: builds the actors downstream-first, runs until shutdown, drains.

use std::future::Future;
use std::sync::Arc;

use actix::prelude::*;
use tracing::{error, info};

use crate::batcher::BatcherContext;
use crate::buffer_pool::BufferPool;
use crate::error_topics::{self, ErrorTopics};
use crate::kafka::{self, Driver, KafkaSetupError};
use crate::messages::{PartitionCommand, Shutdown};
use crate::pipeline_supervisor::PipelineSupervisor;
use crate::resources::{self, ResourceError, StatusChange, StatusTopic};
use crate::settings::PipelineSettings;
use crate::status::StatusBoard;
use crate::store::{S3Store, SharedStore, StoreError};
use crate::uploader::Uploader;

/// Why the connector could not start. Each names what to fix.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Kafka(#[from] KafkaSetupError),
    #[error("{0}")]
    Resources(#[from] ResourceError),
}

impl StartupError {
    pub fn code(&self) -> &'static str {
        match self {
            StartupError::Store(error) => error.code(),
            StartupError::Kafka(error) => error.code(),
            StartupError::Resources(error) => error.code(),
        }
    }
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunOutcome {
    /// Shutdown requested; everything buffered was stored and committed.
    Drained,
    /// Shutdown requested; some partitions could not store their buffer before the deadline.
    /// Their records were not committed and will be read again.
    DrainTimedOut,
    /// The consumer failed; nothing was committed after the failure.
    Fatal(String),
}

/// What the running pipeline offers to the rest of the process (the admin API).
pub struct RunningPipeline {
    /// Operators' pause and resume commands.
    pub commands: Recipient<PartitionCommand>,
}

/// Runs the connector inside the current actix system until `shutdown` resolves. `status` is
/// kept up to date for the admin server (`/status`, `/readyz`). `on_running` is called once the
/// pipeline is wired, before partitions are assigned.
pub async fn run(
    settings: PipelineSettings,
    status: StatusBoard,
    shutdown: impl Future<Output = ()>,
    on_running: impl FnOnce(RunningPipeline),
) -> Result<RunOutcome, StartupError> {
    let store: SharedStore = Arc::new(S3Store::new(&settings.sink));
    if let Err(error) = store.probe().await {
        status.set_bucket(Err((error.code(), error.to_string())));
        return Err(error.into());
    }
    status.set_bucket(Ok(()));
    info!(bucket = %settings.sink.bucket, "bucket reachable");

    let source = settings.source.clone();
    let drain_timeout = settings.drain_timeout;
    let kafka_status = status.clone();
    let consumer = tokio::task::spawn_blocking(move || {
        kafka::create_consumer(&source, drain_timeout, kafka_status)
    })
    .await
    .expect("consumer setup does not panic")
    .inspect_err(|error| status.set_broker(Err((error.code(), error.to_string()))))?;
    info!(topic = %settings.source.topic, group = %settings.source.group_id, "topic found");

    resources::ensure(&settings.source, &settings.resources).await?;
    let producer = error_topics::create_producer(&settings.source)?;
    resources::write_config(
        &producer,
        &settings.resources.config_topic,
        &settings.connector_name,
        &settings.redacted_config,
    )
    .await?;
    info!(
        config_topic = %settings.resources.config_topic,
        status_topic = %settings.resources.status_topic,
        dead_letter_topic = %settings.resources.dead_letter_topic,
        abnormal_topic = %settings.resources.abnormal_topic,
        policy = settings.failure.policy.as_str(),
        "kafka resources ready"
    );
    let status_topic = StatusTopic::new(
        producer.clone(),
        &settings.resources.status_topic,
        &settings.connector_name,
    );
    let error_topics = ErrorTopics::new(
        producer.clone(),
        &settings.connector_name,
        &settings.resources,
    );

    let arbiters: Vec<Arbiter> = (0..settings.source.concurrency)
        .map(|_| Arbiter::new())
        .collect();
    let handles: Vec<ArbiterHandle> = arbiters.iter().map(Arbiter::handle).collect();

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

    let supervisor = PipelineSupervisor::create(|ctx| {
        let batcher_context = BatcherContext {
            topic: Arc::from(settings.source.topic.as_str()),
            key_prefix: Arc::from(settings.sink.key_prefix.as_str()),
            policy: settings.batching,
            failure: settings.failure,
            consumer: consumer.clone(),
            upload_queue: upload_tx,
            error_topics,
            store: Some(store.clone()),
            supervisor: ctx.address().recipient(),
            resumed: ctx.address().recipient(),
            buffers: BufferPool::new(),
        };
        PipelineSupervisor::new(
            batcher_context,
            settings.drain_timeout,
            handles,
            status_topic.clone(),
            status.clone(),
        )
    });
    on_running(RunningPipeline {
        commands: supervisor.clone().recipient(),
    });
    kafka::subscribe(&consumer, supervisor.clone().recipient())?;
    status_topic.report(&StatusChange {
        state: "RUNNING",
        partition: None,
        code: None,
        offset: None,
        message: None,
    });

    let (fatal_tx, fatal_rx) = tokio::sync::oneshot::channel::<String>();
    let driver = Driver::spawn(consumer.clone(), move |reason| {
        let _ = fatal_tx.send(reason);
    });
    info!(name = %settings.connector_name, "connector running");

    let fatal = tokio::select! {
        _ = shutdown => None,
        reason = fatal_rx => reason.ok(),
    };
    if fatal.is_none() {
        info!("shutdown requested: no more records are read; uploading what is buffered");
    }
    let drained = supervisor.send(Shutdown).await.unwrap_or(false);
    tokio::task::spawn_blocking(move || driver.shutdown())
        .await
        .ok();
    for arbiter in arbiters.into_iter().chain(upload_arbiters) {
        arbiter.stop();
    }
    status_topic.report(&StatusChange {
        state: if fatal.is_some() { "FAILED" } else { "STOPPED" },
        partition: None,
        code: fatal.is_some().then_some("KAFKA_FATAL"),
        offset: None,
        message: fatal.as_deref(),
    });
    // Give the status record a moment to leave; it is informational.
    let _ = tokio::task::spawn_blocking(move || {
        rdkafka::producer::Producer::flush(&producer, std::time::Duration::from_secs(5))
    })
    .await;
    Ok(match fatal {
        Some(reason) => {
            error!(code = "KAFKA_FATAL", "{reason}");
            RunOutcome::Fatal(reason)
        }
        None if drained => RunOutcome::Drained,
        None => RunOutcome::DrainTimedOut,
    })
}
