//! The connector's Kafka-side resources (the product page's "Create Resource" step): the consumer
//! group `connect-<name>` and the offset, config, status, abnormal-data and dead-letter topics.
//!
//! - `automatic`: missing topics are created with the product page's settings (offset, config and
//!   status topics compacted; the config topic with one partition). The consumer group is created
//!   by the broker when the connector joins it.
//! - `manual`: nothing is created. Every resource is checked, and the connector refuses to start
//!   with one message listing everything missing or wrong.
//!
//! Then the effective config (secrets redacted) is written to the config topic, and state changes
//! of the connector and its partitions go to the status topic, keyed so that compaction keeps the
//! latest per key.

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::producer::{FutureProducer, FutureRecord};
use tracing::info;

use super::client_config::producer_config;
use crate::error::ErrorCode;
use crate::settings::{CreateMode, ResourceSettings, SourceSettings};

const TIMEOUT: Duration = Duration::from_secs(15);

/// Why the Kafka-side resources are not usable.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ResourceError {
    #[error("kafka resources are missing or wrong ({} problem(s)): {}", .0.len(), .0.join("; "))]
    Invalid(Vec<String>),
    #[error("cannot {action}: {detail}")]
    Unavailable { action: String, detail: String },
}

impl ResourceError {
    pub fn code(&self) -> ErrorCode {
        match self {
            ResourceError::Invalid(_) => ErrorCode::KafkaResources,
            ResourceError::Unavailable { .. } => ErrorCode::KafkaUnavailable,
        }
    }
}

/// One topic the connector needs.
#[derive(Debug, Clone, PartialEq, Eq)]
struct TopicSpec {
    name: String,
    /// What the topic is for, in messages.
    role: &'static str,
    partitions: i32,
    compacted: bool,
    /// Partition count rule in manual mode.
    rule: PartitionRule,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PartitionRule {
    Any,
    Exactly(i32),
    MoreThanOne,
}

fn topic_specs(resources: &ResourceSettings) -> Vec<TopicSpec> {
    let mut specs = vec![
        TopicSpec {
            name: resources.offset_topic.clone(),
            role: "offset topic",
            partitions: resources.offset_topic_partitions,
            compacted: true,
            rule: PartitionRule::MoreThanOne,
        },
        TopicSpec {
            name: resources.config_topic.clone(),
            role: "config topic",
            partitions: 1,
            compacted: true,
            rule: PartitionRule::Exactly(1),
        },
        TopicSpec {
            name: resources.status_topic.clone(),
            role: "status topic",
            partitions: resources.status_topic_partitions,
            compacted: true,
            rule: PartitionRule::Any,
        },
        TopicSpec {
            name: resources.abnormal_topic.clone(),
            role: "abnormal-data topic",
            partitions: resources.error_topic_partitions,
            compacted: false,
            rule: PartitionRule::Any,
        },
        TopicSpec {
            name: resources.dead_letter_topic.clone(),
            role: "dead-letter topic",
            partitions: resources.error_topic_partitions,
            compacted: false,
            rule: PartitionRule::Any,
        },
    ];
    // The abnormal-data and dead-letter topics may be one topic, as the product page allows.
    let mut seen = std::collections::BTreeSet::new();
    specs.retain(|spec| seen.insert(spec.name.clone()));
    specs
}

/// Creates (automatic) or checks (manual) the topics and, in manual mode, the consumer group.
pub async fn ensure(
    source: &SourceSettings,
    resources: &ResourceSettings,
) -> Result<(), ResourceError> {
    let admin: AdminClient<DefaultClientContext> =
        producer_config(source)
            .create()
            .map_err(|error| ResourceError::Unavailable {
                action: "create a kafka admin client".into(),
                detail: error.to_string(),
            })?;
    let specs = topic_specs(resources);
    if resources.create == CreateMode::Automatic {
        create_missing(&admin, &specs, resources.replication_factor).await?;
    }
    let problems = check(&admin, source, resources, &specs).await?;
    if problems.is_empty() {
        Ok(())
    } else {
        Err(ResourceError::Invalid(problems))
    }
}

async fn create_missing(
    admin: &AdminClient<DefaultClientContext>,
    specs: &[TopicSpec],
    replication_factor: i32,
) -> Result<(), ResourceError> {
    let new_topics: Vec<NewTopic<'_>> = specs
        .iter()
        .map(|spec| {
            let topic = NewTopic::new(
                &spec.name,
                spec.partitions,
                TopicReplication::Fixed(replication_factor),
            );
            if spec.compacted {
                topic.set("cleanup.policy", "compact")
            } else {
                topic
            }
        })
        .collect();
    let results = admin
        .create_topics(
            &new_topics,
            &AdminOptions::new().operation_timeout(Some(TIMEOUT)),
        )
        .await
        .map_err(|error| ResourceError::Unavailable {
            action: "create the connector's topics".into(),
            detail: error.to_string(),
        })?;
    let mut problems = Vec::new();
    for result in results {
        match result {
            Ok(name) => info!(topic = %name, "topic created"),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => problems.push(format!("cannot create topic `{name}`: {code}")),
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(ResourceError::Invalid(problems))
    }
}

/// Every problem with the topics (and, in manual mode, the group), as messages.
async fn check(
    admin: &AdminClient<DefaultClientContext>,
    source: &SourceSettings,
    resources: &ResourceSettings,
    specs: &[TopicSpec],
) -> Result<Vec<String>, ResourceError> {
    let metadata = admin
        .inner()
        .fetch_metadata(None, TIMEOUT)
        .map_err(|error| ResourceError::Unavailable {
            action: format!("read topic metadata from {}", source.bootstrap_servers),
            detail: error.to_string(),
        })?;
    let partitions: BTreeMap<&str, usize> = metadata
        .topics()
        .iter()
        .filter(|topic| topic.error().is_none())
        .map(|topic| (topic.name(), topic.partitions().len()))
        .collect();
    let mut problems = Vec::new();
    let mut compacted_present = Vec::new();
    for spec in specs {
        let Some(&count) = partitions.get(spec.name.as_str()) else {
            problems.push(format!("{} `{}` does not exist", spec.role, spec.name));
            continue;
        };
        match spec.rule {
            PartitionRule::Exactly(n) if count as i32 != n => problems.push(format!(
                "{} `{}` has {count} partitions, needs exactly {n}",
                spec.role, spec.name
            )),
            PartitionRule::MoreThanOne if count < 2 => problems.push(format!(
                "{} `{}` has {count} partition, needs more than 1",
                spec.role, spec.name
            )),
            _ => {}
        }
        if spec.compacted {
            compacted_present.push(spec);
        }
    }
    if !compacted_present.is_empty() {
        let specifiers: Vec<ResourceSpecifier<'_>> = compacted_present
            .iter()
            .map(|spec| ResourceSpecifier::Topic(&spec.name))
            .collect();
        let described = admin
            .describe_configs(
                &specifiers,
                &AdminOptions::new().request_timeout(Some(TIMEOUT)),
            )
            .await
            .map_err(|error| ResourceError::Unavailable {
                action: "read topic configs".into(),
                detail: error.to_string(),
            })?;
        for (spec, result) in compacted_present.iter().zip(described) {
            match result {
                Ok(config) => {
                    let policy = config
                        .get("cleanup.policy")
                        .and_then(|entry| entry.value.clone())
                        .unwrap_or_default();
                    if !policy.contains("compact") {
                        problems.push(format!(
                            "{} `{}` has cleanup.policy={}, needs compact",
                            spec.role,
                            spec.name,
                            if policy.is_empty() {
                                "delete"
                            } else {
                                policy.trim_matches('"')
                            }
                        ));
                    }
                }
                Err(code) => problems.push(format!(
                    "cannot read the config of {} `{}`: {code}",
                    spec.role, spec.name
                )),
            }
        }
    }
    if resources.create == CreateMode::Manual {
        match admin
            .inner()
            .fetch_group_list(Some(&source.group_id), TIMEOUT)
        {
            Ok(groups) if groups.groups().iter().any(|g| g.name() == source.group_id) => {}
            Ok(_) => problems.push(format!(
                "consumer group `{}` does not exist (create it, e.g. by committing its offsets \
                 with kafka-consumer-groups --reset-offsets, or use resources.create = \"automatic\")",
                source.group_id
            )),
            Err(error) => problems.push(format!(
                "cannot check consumer group `{}`: {error}",
                source.group_id
            )),
        }
    }
    Ok(problems)
}

/// Writes the effective config (secrets already redacted) to the config topic, keyed
/// `config-connector-<name>`; waits for the acknowledgement.
pub async fn write_config(
    producer: &FutureProducer,
    topic: &str,
    connector_name: &str,
    redacted_config: &str,
) -> Result<(), ResourceError> {
    let key = format!("config-connector-{connector_name}");
    producer
        .send(
            FutureRecord::to(topic).key(&key).payload(redacted_config),
            TIMEOUT,
        )
        .await
        .map(|_| ())
        .map_err(|(error, _)| ResourceError::Unavailable {
            action: format!("write the config to topic `{topic}`"),
            detail: error.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resources(abnormal: &str, dead_letter: &str) -> ResourceSettings {
        ResourceSettings {
            create: CreateMode::Automatic,
            offset_topic: "connect-offset-x".into(),
            offset_topic_partitions: 12,
            config_topic: "connect-config-x".into(),
            status_topic: "connect-status-x".into(),
            status_topic_partitions: 6,
            abnormal_topic: abnormal.into(),
            dead_letter_topic: dead_letter.into(),
            error_topic_partitions: 6,
            replication_factor: -1,
        }
    }

    #[test]
    fn specs_follow_the_product_page_and_share_the_error_topic() {
        let specs = topic_specs(&resources("connect-error-x", "connect-error-x"));
        let summary: Vec<_> = specs
            .iter()
            .map(|spec| (spec.name.as_str(), spec.partitions, spec.compacted))
            .collect();
        assert_eq!(
            summary,
            [
                ("connect-offset-x", 12, true),
                ("connect-config-x", 1, true),
                ("connect-status-x", 6, true),
                ("connect-error-x", 6, false),
            ]
        );
        assert_eq!(
            topic_specs(&resources("abnormal", "dead")).len(),
            5,
            "separate error topics are both created"
        );
    }
}
