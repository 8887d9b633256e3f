//! `consumer.override.*`: Java consumer properties of the Connect task, turned into the
//! connector's own keys (`source.group_id`, `source.start_offset`, ...) or librdkafka properties
//! (`[source.properties]`) where librdkafka has the same setting, and listed otherwise.

use super::{ConnectConfig, Draft};

pub(super) const PREFIX: &str = "consumer.override.";

/// Java consumer properties that librdkafka reads under the same name with the same meaning.
const SAME_NAME: &[&str] = &[
    "allow.auto.create.topics",
    "check.crcs",
    "client.id",
    "client.rack",
    "connections.max.idle.ms",
    "fetch.max.bytes",
    "fetch.min.bytes",
    "group.instance.id",
    "heartbeat.interval.ms",
    "isolation.level",
    "max.partition.fetch.bytes",
    "max.poll.interval.ms",
    "metadata.max.age.ms",
    "reconnect.backoff.max.ms",
    "reconnect.backoff.ms",
    "retry.backoff.ms",
    "sasl.kerberos.service.name",
    "security.protocol",
    "session.timeout.ms",
    "socket.connection.setup.timeout.ms",
    "ssl.endpoint.identification.algorithm",
];

/// Java names librdkafka spells differently: (Java, librdkafka).
const RENAMED: &[(&str, &str)] = &[
    ("fetch.max.wait.ms", "fetch.wait.max.ms"),
    ("receive.buffer.bytes", "socket.receive.buffer.bytes"),
    ("send.buffer.bytes", "socket.send.buffer.bytes"),
    ("sasl.mechanism", "sasl.mechanisms"),
];

/// Properties with no librdkafka counterpart: (Java, reason).
const NOT_MAPPED: &[(&str, &str)] = &[
    (
        "max.poll.records",
        "librdkafka has no such limit; the connector reads partition queues in batches of up to 256 records",
    ),
    (
        "enable.auto.commit",
        "the connector commits an offset only once its records are stored",
    ),
    (
        "auto.commit.interval.ms",
        "the connector commits an offset only once its records are stored",
    ),
    (
        "key.deserializer",
        "keys are read as bytes and written as UTF-8 text",
    ),
    (
        "value.deserializer",
        "values are read as bytes and written as UTF-8 text",
    ),
    (
        "ssl.truststore.location",
        "a Java key store: give librdkafka the CA as a PEM file in \"ssl.ca.location\"",
    ),
    (
        "ssl.keystore.location",
        "a Java key store: give librdkafka \"ssl.certificate.location\" and \"ssl.key.location\" (PEM)",
    ),
];

/// Maps every `consumer.override.*` key.
pub(super) fn map(config: &mut ConnectConfig, draft: &mut Draft) {
    for key in config.keys_with_prefix(PREFIX) {
        let value = config.take(&key).unwrap_or_default();
        let property = &key[PREFIX.len()..];
        match property {
            "group.id" => {
                draft
                    .set("source", "group_id", value.into(), &key)
                    .note("The group's committed offsets are where the copy goes on from.");
            }
            "bootstrap.servers" => {
                draft.set("source", "bootstrap_servers", value.into(), &key);
            }
            "auto.offset.reset" => match value.as_str() {
                "earliest" | "latest" => {
                    draft.set("source", "start_offset", value.into(), &key);
                }
                _ => draft.unmapped(
                    &key,
                    format!("`{value}`: source.start_offset is \"earliest\" or \"latest\""),
                ),
            },
            "partition.assignment.strategy" => match assignment_strategy(&value) {
                Some(strategy) => {
                    draft.set("source", "assignment_strategy", strategy.into(), &key);
                }
                None => draft.unmapped(
                    &key,
                    "not one of Kafka's range, round-robin or cooperative-sticky assignors",
                ),
            },
            // `...LoginModule required username="u" password="p";`: the user name is copied,
            // the password never (it goes in the environment).
            "sasl.jaas.config" => {
                let reason = "its password is not copied: set KAFKA_SASL_PASSWORD in the \
                              environment (config/README.md, \"Kafka secrets\")";
                match jaas_username(&value) {
                    Some(user) => {
                        draft
                            .set("source.properties", "sasl.username", user.into(), &key)
                            .note("The user name of sasl.jaas.config; its password is not copied: set KAFKA_SASL_PASSWORD in the environment.");
                        draft.unmapped(&key, reason);
                    }
                    None => draft.unmapped(
                        &key,
                        format!("{reason}; no username= found in it: set \"sasl.username\" in [source.properties]"),
                    ),
                }
            }
            _ => {
                if let Some((_, reason)) = NOT_MAPPED.iter().find(|(p, _)| *p == property) {
                    draft.unmapped(&key, *reason);
                } else if is_secret(property) {
                    let reason = match crate::config::secret_variable_of(property) {
                        Some(variable) => format!("a secret, not copied: set {variable} in the environment (config/README.md, \"Kafka secrets\")"),
                        None => "a secret of the Java client that librdkafka does not read; not copied".to_owned(),
                    };
                    draft.unmapped(&key, &reason);
                } else if SAME_NAME.contains(&property) {
                    if property == "max.poll.interval.ms" {
                        fit_drain(&value, draft);
                    }
                    let value = if property == "security.protocol" {
                        value.to_ascii_lowercase()
                    } else {
                        value
                    };
                    draft.set("source.properties", property, value.into(), &key);
                } else if let Some((_, renamed)) = RENAMED.iter().find(|(p, _)| *p == property) {
                    draft.set("source.properties", renamed, value.into(), &key);
                } else {
                    draft.unmapped(
                        &key,
                        "a Java consumer property with no librdkafka equivalent known to the import; look it up in librdkafka's CONFIGURATION.md",
                    );
                }
            }
        }
    }
}

/// The `username` option of a JAAS login module line (`username="connector"`), if any.
fn jaas_username(jaas: &str) -> Option<String> {
    let start = jaas.find("username=")? + "username=".len();
    let rest = jaas[start..].strip_prefix('"')?;
    let user = &rest[..rest.find('"')?];
    (!user.is_empty()).then(|| user.to_owned())
}

/// The assignor of a Java `partition.assignment.strategy` list: the cooperative one when the
/// list has it (the group upgrades to it), else the first.
fn assignment_strategy(value: &str) -> Option<&'static str> {
    let names: Vec<&str> = value
        .split(',')
        .map(|s| s.trim().rsplit('.').next().unwrap_or(""))
        .collect();
    if names.contains(&"CooperativeStickyAssignor") {
        return Some("cooperative-sticky");
    }
    match names.first().copied()? {
        "RangeAssignor" => Some("range"),
        "RoundRobinAssignor" => Some("roundrobin"),
        // The Java sticky assignor is eager; librdkafka's nearest is cooperative-sticky.
        "StickyAssignor" => Some("cooperative-sticky"),
        _ => None,
    }
}

fn is_secret(property: &str) -> bool {
    property.ends_with(".password") || property.contains("secret") || property == "sasl.jaas.config"
}

/// A revocation drains and waits for uploads already sent inside the consumer's poll, so
/// `drain_timeout_ms` + `sink.request_timeout_ms` (30 s by default) must stay 10 s below
/// `max.poll.interval.ms`: a shorter poll interval gets a shorter drain.
fn fit_drain(value: &str, draft: &mut Draft) {
    const REQUEST_TIMEOUT_MS: i64 = 30_000;
    const DEFAULT_DRAIN_MS: i64 = 30_000;
    let Ok(interval) = value.trim().parse::<i64>() else {
        return;
    };
    let room = interval - 10_000 - REQUEST_TIMEOUT_MS;
    if room < DEFAULT_DRAIN_MS {
        draft
            .set("", "drain_timeout_ms", room.max(1_000).into(), "consumer.override.max.poll.interval.ms")
            .note("drain_timeout_ms + sink.request_timeout_ms must stay 10 s below max.poll.interval.ms (a revocation waits for both inside the consumer's poll).");
    }
}
