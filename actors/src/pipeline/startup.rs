//! Start-up: everything that must hold before the actors are built. The bucket answers, the
//! topic exists, the Kafka-side resources are there (created or checked), and the effective
//! config is in the config topic. Each failure names what to fix ([`StartupError`]).

use std::sync::Arc;

use rdkafka::producer::FutureProducer;
use tracing::{info, warn};

use crate::error::ErrorCode;
use crate::error_topics;
use crate::kafka::{self, provision, KafkaSetupError, ResourceError, SinkConsumer};
use crate::settings::PipelineSettings;
use crate::status::StatusBoard;
use crate::store::{ObjectStore, Outcome, S3Store, SharedStore, StoreError};

/// Why the connector could not start. Each names what to fix.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Kafka(#[from] KafkaSetupError),
    #[error("{0}")]
    Resources(#[from] ResourceError),
    #[error("the bucket cannot be used: {action}: {detail}")]
    Capability {
        action: &'static str,
        detail: String,
        code: ErrorCode,
    },
}

impl StartupError {
    pub fn code(&self) -> ErrorCode {
        match self {
            StartupError::Store(error) => error.code(),
            StartupError::Kafka(error) => error.code(),
            StartupError::Resources(error) => error.code(),
            StartupError::Capability { code, .. } => *code,
        }
    }
}

/// What start-up produced.
pub struct Started {
    pub store: SharedStore,
    pub consumer: Arc<SinkConsumer>,
    /// For the error, config and status topics.
    pub producer: FutureProducer,
}

/// Probes the bucket and the topic, provisions the Kafka-side resources, writes the config.
pub async fn start(
    settings: &PipelineSettings,
    status: &StatusBoard,
) -> Result<Started, StartupError> {
    let s3 = S3Store::new(&settings.sink);
    if let Err(error) = s3.probe().await {
        status.set_bucket(Err((error.code(), error.to_string())));
        return Err(error.into());
    }
    info!(bucket = %settings.sink.bucket, "bucket reachable");
    let capabilities = s3.capabilities(&settings.sink.key_prefix).await;
    crate::metrics::set_capabilities(&capabilities);
    for check in &capabilities.checks {
        match check.outcome {
            Outcome::Ok => info!(check = check.action, "store capability: {}", check.detail),
            Outcome::Degraded | Outcome::Failed => {
                if check.action == crate::metrics::LIST_UPLOADS_CHECK {
                    // Said here, with the lifecycle rule it calls for; not again per partition.
                    crate::batcher::orphans::listing_refusal_reported();
                }
                warn!(
                    check = check.action,
                    outcome = check.outcome.as_str(),
                    "store capability: {}",
                    check.detail
                )
            }
        }
    }
    if let Some(failure) = capabilities.first_failure() {
        let code = failure.code.unwrap_or(ErrorCode::UploadRejected);
        status.set_bucket(Err((code, failure.detail.clone())));
        return Err(StartupError::Capability {
            action: failure.action,
            detail: failure.detail.clone(),
            code,
        });
    }
    status.set_bucket(Ok(()));
    let store: SharedStore = Arc::new(s3);

    let source = settings.source.clone();
    let (drain_timeout, attempt_timeout) = (settings.drain_timeout, settings.sink.request_timeout);
    let kafka_status = status.clone();
    let prefetch_share =
        crate::memory::MemoryBudget::new(settings.memory_max_bytes).prefetch_share();
    let consumer = tokio::task::spawn_blocking(move || {
        kafka::create_consumer_within(
            &source,
            drain_timeout,
            attempt_timeout,
            kafka_status,
            Some(prefetch_share),
        )
    })
    .await
    .expect("consumer setup does not panic")
    .inspect_err(|error| status.set_broker(Err((error.code(), error.to_string()))))?;
    info!(topic = %settings.source.topic, group = %settings.source.group_id, "topic found");

    provision::ensure(&settings.source, &settings.resources).await?;
    let producer = error_topics::create_producer(&settings.source)?;
    provision::write_config(
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
    Ok(Started {
        store,
        consumer,
        producer,
    })
}
