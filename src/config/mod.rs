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

    /// The Kafka side as the pipeline sees it.
    pub fn source_settings(&self) -> SourceSettings {
        settings::source(&self.values)
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
        settings::pipeline(&self.values, credentials, self.to_redacted_toml())
    }

    /// The effective config as TOML, every key present (defaults filled in). Values of
    /// `source.properties` whose name contains `password`, `secret`, `token` or `key` are
    /// rendered as `"***"`. The output parses back with [`parse_config`].
    pub fn to_redacted_toml(&self) -> String {
        render::redacted_toml(&self.values)
    }
}

/// Reads and validates the config file at `path`.
pub fn load_config(path: &Path) -> Result<ConnectorConfig, ConfigErrors> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigErrors(vec![ConfigError::new(
            "",
            format!("cannot read config file {}: {e}", path.display()),
        )])
    })?;
    parse_config(&text)
}

/// Parses and validates a config file, reporting every problem at once.
pub fn parse_config(text: &str) -> Result<ConnectorConfig, ConfigErrors> {
    let table = toml::from_str::<toml::Table>(text)
        .map_err(|e| ConfigErrors(vec![syntax_error(text, &e)]))?;
    walk::walk(table)
        .map(|values| ConnectorConfig { values })
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
