//! The pipeline's life: start-up ([`startup`]: probes and provisioning), wiring ([`wiring`]:
//! the actors, downstream-first), then running until shutdown and draining ([`run`]).

#[cfg(test)]
mod cooperative_tests;
pub mod startup;
#[cfg(test)]
mod tests;
pub mod wiring;

use std::future::Future;

use actix::prelude::*;
use tracing::{error, info};

use crate::error::{ErrorCode, State};
use crate::kafka::{self, Driver, StatusChange};
use crate::messages::{PartitionCommand, Shutdown};
use crate::settings::PipelineSettings;
use crate::status::StatusBoard;
pub use startup::StartupError;

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
    let started = startup::start(&settings, &status).await?;
    run_started(settings, started, status, shutdown, on_running).await
}

/// [`run`] after start-up: wires the actors on what `started` holds, subscribes, and runs until
/// `shutdown` resolves. (Tests start it on librdkafka's mock cluster and an in-memory store.)
pub async fn run_started(
    settings: PipelineSettings,
    started: startup::Started,
    status: StatusBoard,
    shutdown: impl Future<Output = ()>,
    on_running: impl FnOnce(RunningPipeline),
) -> Result<RunOutcome, StartupError> {
    let consumer = started.consumer.clone();
    let producer = started.producer.clone();
    let wired = wiring::wire(
        &settings,
        started.store,
        started.consumer,
        started.producer,
        status.clone(),
    );
    on_running(RunningPipeline {
        commands: wired.supervisor.clone().recipient(),
    });
    kafka::subscribe(&consumer, wired.supervisor.clone().recipient())?;
    wired.status_topic.report(&StatusChange {
        state: State::Running,
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
    if let Some(reason) = &fatal {
        // The admin server shows the connector FAILED while it drains.
        status.set_failed(reason);
    } else {
        info!("shutdown requested: no more records are read; uploading what is buffered");
    }
    let drained = wired.supervisor.send(Shutdown).await.unwrap_or(false);
    tokio::task::spawn_blocking(move || driver.shutdown())
        .await
        .ok();
    for arbiter in wired.arbiters {
        arbiter.stop();
    }
    wired.status_topic.report(&StatusChange {
        state: if fatal.is_some() {
            State::Failed
        } else {
            State::Stopped
        },
        partition: None,
        code: fatal.is_some().then_some(ErrorCode::KafkaFatal),
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
            error!(code = %ErrorCode::KafkaFatal, "{reason}");
            RunOutcome::Fatal(reason)
        }
        None if drained => RunOutcome::Drained,
        None => RunOutcome::DrainTimedOut,
    })
}
