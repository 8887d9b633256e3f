//! `[source.properties]`: librdkafka consumer properties passed through as they are.
//!
//! The pass-through exists for what the connector does not model itself (SASL/SSL, fetch
//! tuning). Properties the connector sets, because its offset handling or its metrics depend on
//! them, are refused with the key to use instead. So are the secret ones ([`SECRET_PROPERTIES`]):
//! a config file gets copied, committed and written to the config topic, so they come from the
//! environment or `source.secrets_dir` ([`super::kafka_secrets`]). Values are never echoed in
//! errors.

use std::collections::BTreeMap;

use actors::settings::ClientProperties;
use toml::{Table, Value};

use super::error::ConfigError;
use super::render::toml_key;
use super::walk::type_phrase;

const OWNS_OFFSETS: &str =
    "the connector owns offset handling (it commits an offset only once its records are stored)";

/// librdkafka properties the connector sets itself: (property, what to use instead).
const RESERVED_PROPERTIES: &[(&str, &str)] = &[
    ("group.id", "set `source.group_id` instead"),
    (
        "bootstrap.servers",
        "set `source.bootstrap_servers` instead",
    ),
    ("auto.offset.reset", "set `source.start_offset` instead"),
    (
        "partition.assignment.strategy",
        "set `source.assignment_strategy` instead",
    ),
    ("enable.auto.commit", OWNS_OFFSETS),
    ("enable.auto.offset.store", OWNS_OFFSETS),
    ("enable.partition.eof", OWNS_OFFSETS),
    (
        "statistics.interval.ms",
        "the connector reads librdkafka statistics every second for its lag metrics and /readyz",
    ),
];

/// librdkafka properties whose value is a secret: never read from the file.
pub(crate) const SECRET_PROPERTIES: &[&str] = &[
    "sasl.password",
    "sasl.oauthbearer.client.secret",
    "ssl.key.password",
    "ssl.key.pem",
    "ssl.keystore.password",
];

/// The environment variable a secret property is read from: `KAFKA_` and the property in upper
/// case, dots as underscores (`sasl.password` → `KAFKA_SASL_PASSWORD`).
pub(crate) fn secret_variable(property: &str) -> String {
    format!("KAFKA_{}", property.to_ascii_uppercase().replace('.', "_"))
}

/// Reads the properties table at `path`, recording one error per bad property (in name order).
/// Bare dotted keys (`sasl.password = "x"`, which TOML reads as nested tables) mean the same as
/// quoted ones (`"sasl.password" = "x"`). `None` if any property was refused.
pub(super) fn parse(
    path: &str,
    table: Table,
    errors: &mut Vec<ConfigError>,
) -> Option<ClientProperties> {
    fn flatten(prefix: &str, table: Table, out: &mut Vec<(String, Value)>) {
        for (key, value) in table {
            let name = if prefix.is_empty() {
                key
            } else {
                format!("{prefix}.{key}")
            };
            match value {
                Value::Table(inner) => flatten(&name, inner, out),
                other => out.push((name, other)),
            }
        }
    }
    let mut flat = Vec::new();
    flatten("", table, &mut flat);
    flat.sort_by(|a, b| a.0.cmp(&b.0));

    let before = errors.len();
    let mut properties = BTreeMap::new();
    for (name, value) in flat {
        let key = format!("{path}.{}", toml_key(&name));
        if name.trim().is_empty() {
            errors.push(ConfigError::new(key, "property name must not be empty"));
            continue;
        }
        if let Some((_, instead)) = RESERVED_PROPERTIES.iter().find(|(p, _)| *p == name) {
            errors.push(ConfigError::new(
                key,
                format!("reserved librdkafka property: {instead}"),
            ));
            continue;
        }
        if SECRET_PROPERTIES.contains(&name.as_str()) {
            errors.push(ConfigError::new(
                key,
                format!(
                    "secrets are not read from the config file; set {} in the environment, or \
                     put it in a file named `{name}` in the directory `source.secrets_dir` names",
                    secret_variable(&name)
                ),
            ));
            continue;
        }
        let text = match value {
            Value::String(s) => s,
            Value::Integer(i) => i.to_string(),
            Value::Boolean(b) => b.to_string(),
            other => {
                errors.push(ConfigError::new(
                    key,
                    format!(
                        "must be a string, integer or boolean, got {}",
                        type_phrase(&other)
                    ),
                ));
                continue;
            }
        };
        if properties.insert(name, text).is_some() {
            errors.push(ConfigError::new(
                key,
                "set twice (once quoted, once as dotted keys)",
            ));
        }
    }
    (errors.len() == before).then_some(ClientProperties(properties))
}
