//! The connector's TOML config file: parsing, validation and conversion into
//! [`actors::settings::PipelineSettings`].
//!
//! A key is declared once, in [`keys::KEYS`] (path, type, default, allowed values, rule), and
//! everything else follows that table: [`walk`] reads the file against it and reports every
//! problem at once, [`render`] prints the effective config `check` shows, and tests hold
//! `config/connector.toml`, `config/README.md` and the fixtures under `tests/fixtures/config/` to
//! it. Validation is pure (no IO, nothing connected to); [`settings`] converts the result into
//! the actor crate's own types. Credentials are never read from the file: they come from the
//! environment ([`credentials_from_env`]) or from the source `[sink.credentials]` names
//! ([`ConnectorConfig::credentials`]).
//!
//! - `keys.rs`: the key table. `rules.rs`: what a valid string is (topic name, bucket name, ...).
//! - `walk.rs`: file → effective [`values::Values`] or all problems; `properties.rs`: the
//!   librdkafka pass-through table.
//! - `settings.rs`: effective values → settings. `render.rs`: effective values → TOML.
//! - `credentials.rs`: secrets (never in the file, redacted everywhere) and their sources. `error.rs`: problems.
//!
//! `config/README.md` documents every key; `config/connector.toml` is a commented example.

mod credentials;
mod error;
#[cfg(test)]
mod format_tests;
mod kafka_secrets;
mod keys;
mod properties;
mod render;
mod rules;
mod settings;
mod values;
mod walk;

use std::net::SocketAddr;
use std::path::Path;

use actors::settings::{CredentialSource, PipelineSettings, SourceSettings};

pub use credentials::credentials_from_env;
pub use error::{ConfigError, ConfigErrors};
use values::Values;

/// A validated config file. Holds no credentials; they are added by [`ConnectorConfig::into_settings`].
#[derive(Debug, Clone)]
pub struct ConnectorConfig {
    /// Every key's effective value (`Debug` shows no property value).
    values: Values,
    /// The Kafka clients' secret properties, from the environment or `source.secrets_dir`
    /// ([`kafka_secrets`]; `Debug` shows their names only). Empty from [`parse_config`].
    kafka_secrets: actors::settings::ClientProperties,
}

impl ConnectorConfig {
    /// The connector name (`name`).
    pub fn name(&self) -> &str {
        self.values.str(&keys::NAME)
    }

    /// The consumer group: `source.group_id`, or `connect-<name>` when not set.
    pub fn group_id(&self) -> &str {
        self.values.str(&keys::SOURCE_GROUP_ID)
    }

    /// The source topic (`source.topic`).
    pub fn topic(&self) -> &str {
        self.values.str(&keys::SOURCE_TOPIC)
    }

    /// `source.bootstrap_servers`.
    pub fn bootstrap_servers(&self) -> &str {
        self.values.str(&keys::SOURCE_BOOTSTRAP_SERVERS)
    }

    /// The Kafka side as the pipeline sees it, secrets included.
    pub fn source_settings(&self) -> SourceSettings {
        let mut source = settings::source(&self.values);
        source
            .client_properties
            .0
            .extend(self.kafka_secrets.0.clone());
        source
    }

    /// A SASL mechanism that needs a password (PLAIN, SCRAM) is configured without the user
    /// name or the password. The commands that talk to Kafka refuse to start then.
    pub fn missing_kafka_secret(&self) -> Option<ConfigError> {
        kafka_secrets::missing(&self.values, &self.kafka_secrets)
    }

    /// Reads the Kafka clients' secrets from the environment (`get`) and `source.secrets_dir`
    /// ([`kafka_secrets`]). [`load_config`] does it with the process's environment.
    pub fn with_kafka_secrets(
        mut self,
        get: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigErrors> {
        self.kafka_secrets = kafka_secrets::resolve(&self.values, get, kafka_secrets::read_file)
            .map_err(ConfigErrors)?;
        Ok(self)
    }

    /// Where the admin server listens; `None` when `admin.enabled = false`.
    pub fn admin_address(&self) -> Option<SocketAddr> {
        settings::admin_address(&self.values)
    }

    /// `admin.token_file`: the file holding the mutating admin routes' bearer token, if set.
    /// Always set when the admin address is not loopback (validation requires it).
    pub fn admin_token_file(&self) -> Option<std::path::PathBuf> {
        settings::admin_token_file(&self.values)
    }

    /// Where the object store's credentials come from (`[sink.credentials]`, the environment as
    /// read by `get`). Reads no file and makes no request: the source is read when first used.
    pub fn credentials(
        &self,
        get: impl Fn(&str) -> Option<String>,
    ) -> Result<CredentialSource, ConfigError> {
        credentials::credential_source(&self.values, get)
    }

    /// The pipeline settings, with the credentials' source from [`ConnectorConfig::credentials`].
    pub fn into_settings(self, credentials: CredentialSource) -> PipelineSettings {
        let mut settings = settings::pipeline(&self.values, credentials, self.to_redacted_toml());
        settings
            .source
            .client_properties
            .0
            .extend(self.kafka_secrets.0);
        settings
    }

    /// The effective config as TOML, every key present (defaults filled in). Values of
    /// `source.properties` whose name contains `password`, `secret`, `token` or `key` are
    /// rendered as `"***"`. The output parses back with [`parse_config`].
    pub fn to_redacted_toml(&self) -> String {
        render::redacted_toml(&self.values)
    }
}

/// The environment variable a secret librdkafka property (`sasl.password`, ...) is read from;
/// `None` for a property that is not one of them.
pub fn secret_variable_of(property: &str) -> Option<String> {
    properties::SECRET_PROPERTIES
        .contains(&property)
        .then(|| properties::secret_variable(property))
}

/// Reads and validates the config file at `path`, and reads the Kafka clients' secrets from the
/// environment and `source.secrets_dir` ([`ConnectorConfig::with_kafka_secrets`]).
pub fn load_config(path: &Path) -> Result<ConnectorConfig, ConfigErrors> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigErrors(vec![ConfigError::new(
            "",
            format!("cannot read config file {}: {e}", path.display()),
        )])
    })?;
    parse_config(&text)?.with_kafka_secrets(|name| std::env::var(name).ok())
}

/// Parses and validates a config file, reporting every problem at once.
pub fn parse_config(text: &str) -> Result<ConnectorConfig, ConfigErrors> {
    let table = toml::from_str::<toml::Table>(text)
        .map_err(|e| ConfigErrors(vec![syntax_error(text, &e)]))?;
    walk::walk(table)
        .map(|values| ConnectorConfig {
            values,
            kafka_secrets: Default::default(),
        })
        .map_err(ConfigErrors)
}

/// Whether the config file has the key `path` (`sink.bucket`, `format.type`). `import-connect`
/// writes keys that are not there yet as comments, so that its output stays valid.
pub fn accepts_key(path: &str) -> bool {
    keys::KEYS.iter().any(|key| key.path == path)
}

/// A TOML syntax error as one line with its position. Only toml's description is used, never
/// the offending line itself: that line might hold a secret.
fn syntax_error(text: &str, error: &toml::de::Error) -> ConfigError {
    let message = match error.span() {
        Some(span) => {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
            format!(
                "invalid TOML at line {line}, column {column}: {}",
                error.message()
            )
        }
        None => format!("invalid TOML: {}", error.message()),
    };
    ConfigError::new("", message)
}

/// Behaviour seen from the outside: defaults, the mapping into settings, secrets. The invalid
/// files are fixtures (`tests/config_fixtures.rs`); each module tests its own rules.
#[cfg(test)]
mod tests;
