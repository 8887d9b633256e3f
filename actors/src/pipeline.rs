//! Wiring: builds the actors downstream-first, runs until shutdown, drains.

use std::future::Future;
use std::sync::Arc;

use actix::prelude::*;
use tracing::{error, info};

use crate::kafka::{self, Driver, KafkaSetupError};
use crate::messages::Shutdown;
use crate::pipeline_supervisor::PipelineSupervisor;
use crate::settings::PipelineSettings;
use crate::status::StatusBoard;
use crate::store::{ObjectStore, StoreError};
use crate::uploader::Uploader;

/// Why the connector could not start. Each names what to fix.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Kafka(#[from] KafkaSetupError),
}

impl StartupError {
    pub fn code(&self) -> &'static str {
        match self {
            StartupError::Store(error) => error.code(),
            StartupError::Kafka(error) => error.code(),
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

/// Runs the connector inside the current actix system until `shutdown` resolves. `status` is
/// kept up to date for the admin server (`/status`, `/readyz`).
pub async fn run(
    settings: PipelineSettings,
    status: StatusBoard,
    shutdown: impl Future<Output = ()>,
) -> Result<RunOutcome, StartupError> {
    let store = ObjectStore::new(&settings.sink);
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

    let arbiters: Vec<Arbiter> = (0..settings.source.concurrency)
        .map(|_| Arbiter::new())
        .collect();
    let handles: Vec<ArbiterHandle> = arbiters.iter().map(Arbiter::handle).collect();

    // Room for one object per uploader waiting: enough to keep them busy, small enough that a
    // slow store stops the batchers quickly.
    let (upload_tx, upload_rx) = async_channel::bounded(settings.sink.upload_concurrency);
    for id in 0..settings.sink.upload_concurrency {
        let (store, queue, status) = (store.clone(), upload_rx.clone(), status.clone());
        let (initial, max) = (
            settings.sink.retry_initial_backoff,
            settings.sink.retry_max_backoff,
        );
        Uploader::start_in_arbiter(&handles[id % handles.len()], move |_| {
            Uploader::new(id, store, queue, initial, max, status)
        });
    }
    drop(upload_rx);

    let supervisor = PipelineSupervisor::new(
        Arc::from(settings.source.topic.as_str()),
        Arc::from(settings.sink.key_prefix.as_str()),
        settings.batching,
        settings.drain_timeout,
        consumer.clone(),
        handles,
        upload_tx,
        status.clone(),
    )
    .start();
    kafka::subscribe(&consumer, supervisor.clone().recipient())?;

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
    for arbiter in arbiters {
        arbiter.stop();
    }
    Ok(match fatal {
        Some(reason) => {
            error!(code = "KAFKA_FATAL", "{reason}");
            RunOutcome::Fatal(reason)
        }
        None if drained => RunOutcome::Drained,
        None => RunOutcome::DrainTimedOut,
    })
}
