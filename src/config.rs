//! The connector's TOML config file: parsing, validation and conversion into
//! [`actors::settings::PipelineSettings`].
//!
//! The file is parsed into a plain [`toml::Table`] and walked by hand (instead of a serde derive
//! with `deny_unknown_fields`) so that *every* problem in the file is reported at once, each
//! naming its full dotted key path. Credentials are never read from the file: they come from
//! the environment through [`credentials_from_env`].
//!
//! `config/README.md` documents every key; `config/connector.toml` is a commented example.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use actors::settings::{
    ChecksumMode, ClientProperties, CreateMode, Credentials, FailurePolicy, FailureSettings,
    PipelineSettings, ResourceSettings, RollPolicy, Secret, SinkSettings, SourceSettings,
    StartOffset,
};
use toml::{Table, Value};

// ---------------------------------------------------------------------------------------------
// Defaults and limits (keep in sync with config/README.md and config/connector.toml).

const DRAIN_TIMEOUT_MS: (u64, u64, u64) = (30_000, 1_000, 600_000); // (default, min, max)
const CONCURRENCY: (u64, u64, u64) = (6, 1, 64);
const DEFAULT_REGION: &str = "us-east-1";
const PART_SIZE_BYTES: (u64, u64, u64) = (16 * MIB, 5 * MIB, 5 * GIB);
const UPLOAD_CONCURRENCY: (u64, u64, u64) = (4, 1, 256);
const REQUEST_TIMEOUT_MS: (u64, u64, u64) = (30_000, 1_000, 600_000);
const RETRY_INITIAL_BACKOFF_MS: (u64, u64, u64) = (200, 10, 60_000);
const RETRY_MAX_BACKOFF_MS: (u64, u64, u64) = (30_000, 10, 600_000);
const MAX_RECORDS: (u64, u64, u64) = (10_000, 1, 10_000_000);
const MAX_BYTES: (u64, u64, u64) = (16 * MIB, 1_024, 5 * GIB);
const MAX_INTERVAL_MS: (u64, u64, u64) = (10_000, 100, 86_400_000);
const MAX_UPLOAD_ATTEMPTS: (u64, u64, u64) = (10, 0, 1_000_000); // 0: unlimited
const MAX_VALUE_BYTES: (u64, u64, u64) = (0, 0, 5 * GIB); // 0: no limit
const OFFSET_TOPIC_PARTITIONS: (u64, u64, u64) = (12, 2, 10_000);
const STATUS_TOPIC_PARTITIONS: (u64, u64, u64) = (6, 1, 10_000);
const ERROR_TOPIC_PARTITIONS: (u64, u64, u64) = (6, 1, 10_000);
const REPLICATION_FACTOR: (i64, i64, i64) = (-1, -1, 32); // -1: the broker's default

const MIB: u64 = 1024 * 1024;
const GIB: u64 = 1024 * MIB;

const GROUP_ID_PREFIX: &str = "connect-";
const MAX_NAME_LEN: usize = 48;
const MAX_GROUP_ID_LEN: usize = 255;
const MAX_TOPIC_LEN: usize = 249;
const MAX_KEY_PREFIX_BYTES: usize = 512;

/// Every key path of the file, used to point a misplaced key at where it belongs.
const ALL_KEYS: &[&str] = &[
    "name",
    "drain_timeout_ms",
    "source.bootstrap_servers",
    "source.topic",
    "source.start_offset",
    "source.concurrency",
    "source.group_id",
    "source.properties",
    "sink.bucket",
    "sink.endpoint",
    "sink.region",
    "sink.key_prefix",
    "sink.addressing",
    "sink.part_size_bytes",
    "sink.checksum",
    "sink.sign_payload",
    "sink.upload_concurrency",
    "sink.request_timeout_ms",
    "sink.retry_initial_backoff_ms",
    "sink.retry_max_backoff_ms",
    "batching.max_records",
    "batching.max_bytes",
    "batching.max_interval_ms",
    "batching.seal_when_caught_up",
    "sink.max_upload_attempts",
    "failure.policy",
    "failure.max_value_bytes",
    "resources.create",
    "resources.offset_topic",
    "resources.offset_topic_partitions",
    "resources.config_topic",
    "resources.status_topic",
    "resources.status_topic_partitions",
    "resources.abnormal_topic",
    "resources.dead_letter_topic",
    "resources.error_topic_partitions",
    "resources.replication_factor",
];

/// librdkafka properties the connector sets itself: (property, what to use instead).
const RESERVED_PROPERTIES: &[(&str, &str)] = &[
    ("group.id", "set `source.group_id` instead"),
    ("bootstrap.servers", "set `source.bootstrap_servers` instead"),
    ("auto.offset.reset", "set `source.start_offset` instead"),
    (
        "enable.auto.commit",
        "the connector owns offset handling (it commits an offset only once its records are stored)",
    ),
    (
        "enable.auto.offset.store",
        "the connector owns offset handling (it commits an offset only once its records are stored)",
    ),
    (
        "enable.partition.eof",
        "the connector owns offset handling (it commits an offset only once its records are stored)",
    ),
    (
        "statistics.interval.ms",
        "the connector reads librdkafka statistics every second for its lag metrics and /readyz",
    ),
];

const CREDENTIALS_MESSAGE: &str = "credentials are not read from the config file; \
     set OSS_ACCESS_KEY_ID and OSS_ACCESS_KEY_SECRET in the environment";

// ---------------------------------------------------------------------------------------------
// Errors.

/// One problem in the config (or the environment), naming the key it is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Dotted key path (`sink.bucket`, `source.properties."group.id"`), an environment variable
    /// name, or empty for file-level problems (unreadable file, TOML syntax).
    pub key: String,
    pub message: String,
}

impl ConfigError {
    fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError {
            key: key.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "`{}`: {}", self.key, self.message)
        }
    }
}

impl std::error::Error for ConfigError {}

/// All problems found in a config file, in file-section order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

// ---------------------------------------------------------------------------------------------
// The validated config.

/// A validated config file. Holds no credentials; they are added by [`ConnectorConfig::into_settings`].
#[derive(Debug, Clone)]
pub struct ConnectorConfig {
    name: String,
    drain_timeout_ms: u64,
    source: SourceConfig,
    sink: SinkConfig,
    batching: BatchingConfig,
    failure: FailureSettings,
    resources: ResourceSettings,
    admin: AdminConfig,
}

/// The admin HTTP server: `/metrics`, `/healthz`, `/readyz`, `/status`, partition commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct AdminConfig {
    enabled: bool,
    address: SocketAddr,
}

/// `admin.address` default: loopback only, Prometheus exporters' conventional port.
pub const DEFAULT_ADMIN_ADDRESS: &str = "127.0.0.1:9464";

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            enabled: true,
            address: DEFAULT_ADMIN_ADDRESS.parse().expect("valid default"),
        }
    }
}

#[derive(Debug, Clone)]
struct SourceConfig {
    bootstrap_servers: String,
    topic: String,
    start_offset: StartOffset,
    concurrency: u64,
    group_id: String,
    /// `Debug` prints only the keys: values may be secrets (`sasl.password`).
    properties: ClientProperties,
}

#[derive(Debug, Clone)]
struct SinkConfig {
    bucket: String,
    endpoint: Option<String>,
    region: String,
    key_prefix: String,
    addressing: Addressing,
    part_size_bytes: u64,
    checksum: ChecksumMode,
    sign_payload: bool,
    upload_concurrency: u64,
    request_timeout_ms: u64,
    retry_initial_backoff_ms: u64,
    retry_max_backoff_ms: u64,
    max_upload_attempts: u64,
}

#[derive(Debug, Clone)]
struct BatchingConfig {
    max_records: u64,
    max_bytes: u64,
    max_interval_ms: u64,
    seal_when_caught_up: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Addressing {
    VirtualHosted,
    Path,
}

const START_OFFSETS: &[(&str, StartOffset)] = &[
    ("latest", StartOffset::Latest),
    ("earliest", StartOffset::Earliest),
];
const ADDRESSINGS: &[(&str, Addressing)] = &[
    ("virtual_hosted", Addressing::VirtualHosted),
    ("path", Addressing::Path),
];
const CHECKSUMS: &[(&str, ChecksumMode)] = &[
    ("when_required", ChecksumMode::WhenRequired),
    ("when_supported", ChecksumMode::WhenSupported),
];
const POLICIES: &[(&str, FailurePolicy)] =
    &[("log", FailurePolicy::Log), ("fail", FailurePolicy::Fail)];
const CREATE_MODES: &[(&str, CreateMode)] = &[
    ("automatic", CreateMode::Automatic),
    ("manual", CreateMode::Manual),
];

fn option_name<T: PartialEq + Copy>(options: &[(&'static str, T)], value: T) -> &'static str {
    options
        .iter()
        .find(|(_, v)| *v == value)
        .map(|(name, _)| *name)
        .expect("every variant has a name")
}

impl ConnectorConfig {
    /// The connector name (`name`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The consumer group: `source.group_id`, or `connect-<name>` when not set.
    pub fn group_id(&self) -> &str {
        &self.source.group_id
    }

    /// The source topic (`source.topic`).
    pub fn topic(&self) -> &str {
        &self.source.topic
    }

    /// `source.bootstrap_servers`.
    pub fn bootstrap_servers(&self) -> &str {
        &self.source.bootstrap_servers
    }

    /// The Kafka side as the pipeline sees it.
    pub fn source_settings(&self) -> SourceSettings {
        let source = &self.source;
        SourceSettings {
            bootstrap_servers: source.bootstrap_servers.clone(),
            topic: source.topic.clone(),
            group_id: source.group_id.clone(),
            start_offset: source.start_offset,
            concurrency: to_usize(source.concurrency),
            client_properties: source.properties.clone(),
        }
    }

    /// The pipeline settings, with the credentials read from the environment.
    /// Where the admin server listens; `None` when `admin.enabled = false`.
    pub fn admin_address(&self) -> Option<SocketAddr> {
        self.admin.enabled.then_some(self.admin.address)
    }

    pub fn into_settings(self, credentials: Credentials) -> PipelineSettings {
        let redacted_config = self.to_redacted_toml();
        let source = self.source_settings();
        let ConnectorConfig {
            name,
            drain_timeout_ms,
            sink,
            batching,
            failure,
            resources,
            ..
        } = self;
        PipelineSettings {
            connector_name: name,
            source,
            sink: SinkSettings {
                bucket: sink.bucket,
                endpoint: sink.endpoint,
                region: sink.region,
                key_prefix: sink.key_prefix,
                path_style: sink.addressing == Addressing::Path,
                part_size: to_usize(sink.part_size_bytes),
                checksum: sink.checksum,
                sign_payload: sink.sign_payload,
                upload_concurrency: to_usize(sink.upload_concurrency),
                request_timeout: Duration::from_millis(sink.request_timeout_ms),
                retry_initial_backoff: Duration::from_millis(sink.retry_initial_backoff_ms),
                retry_max_backoff: Duration::from_millis(sink.retry_max_backoff_ms),
                max_upload_attempts: match sink.max_upload_attempts {
                    0 => None,
                    attempts => Some(u32::try_from(attempts).unwrap_or(u32::MAX)),
                },
                credentials,
            },
            batching: RollPolicy {
                max_records: to_usize(batching.max_records),
                max_bytes: to_usize(batching.max_bytes),
                max_interval: Duration::from_millis(batching.max_interval_ms),
                seal_when_caught_up: batching.seal_when_caught_up,
            },
            drain_timeout: Duration::from_millis(drain_timeout_ms),
            failure,
            resources,
            redacted_config,
        }
    }

    /// The effective config as TOML, every key present (defaults filled in). Values of
    /// `source.properties` whose name contains `password`, `secret`, `token` or `key` are
    /// rendered as `"***"`. The output parses back with [`parse_config`].
    pub fn to_redacted_toml(&self) -> String {
        use std::fmt::Write as _;
        let mut out = String::new();
        let s = &self.source;
        let k = &self.sink;
        let b = &self.batching;
        // `writeln!` into a String cannot fail.
        let _ = writeln!(out, "name = {}", quote(&self.name));
        let _ = writeln!(out, "drain_timeout_ms = {}", self.drain_timeout_ms);
        let _ = writeln!(out);
        let _ = writeln!(out, "[source]");
        let _ = writeln!(out, "bootstrap_servers = {}", quote(&s.bootstrap_servers));
        let _ = writeln!(out, "topic = {}", quote(&s.topic));
        let _ = writeln!(
            out,
            "start_offset = {}",
            quote(option_name(START_OFFSETS, s.start_offset))
        );
        let _ = writeln!(out, "concurrency = {}", s.concurrency);
        let _ = writeln!(out, "group_id = {}", quote(&s.group_id));
        let _ = writeln!(out);
        let _ = writeln!(out, "[source.properties]");
        for (name, value) in &s.properties.0 {
            let shown = if is_sensitive_property(name) {
                "***"
            } else {
                value
            };
            let _ = writeln!(out, "{} = {}", toml_key(name), quote(shown));
        }
        let _ = writeln!(out);
        let _ = writeln!(out, "[sink]");
        let _ = writeln!(out, "bucket = {}", quote(&k.bucket));
        match &k.endpoint {
            Some(endpoint) => {
                let _ = writeln!(out, "endpoint = {}", quote(endpoint));
            }
            None => {
                let _ = writeln!(out, "# endpoint not set: the AWS endpoint of the region");
            }
        }
        let _ = writeln!(out, "region = {}", quote(&k.region));
        let _ = writeln!(out, "key_prefix = {}", quote(&k.key_prefix));
        let _ = writeln!(
            out,
            "addressing = {}",
            quote(option_name(ADDRESSINGS, k.addressing))
        );
        let _ = writeln!(out, "part_size_bytes = {}", k.part_size_bytes);
        let _ = writeln!(
            out,
            "checksum = {}",
            quote(option_name(CHECKSUMS, k.checksum))
        );
        let _ = writeln!(out, "sign_payload = {}", k.sign_payload);
        let _ = writeln!(out, "upload_concurrency = {}", k.upload_concurrency);
        let _ = writeln!(out, "request_timeout_ms = {}", k.request_timeout_ms);
        let _ = writeln!(
            out,
            "retry_initial_backoff_ms = {}",
            k.retry_initial_backoff_ms
        );
        let _ = writeln!(out, "retry_max_backoff_ms = {}", k.retry_max_backoff_ms);
        let _ = writeln!(out, "max_upload_attempts = {}", k.max_upload_attempts);
        let _ = writeln!(out);
        let _ = writeln!(out, "[batching]");
        let _ = writeln!(out, "max_records = {}", b.max_records);
        let _ = writeln!(out, "max_bytes = {}", b.max_bytes);
        let _ = writeln!(out, "max_interval_ms = {}", b.max_interval_ms);
        let _ = writeln!(out, "seal_when_caught_up = {}", b.seal_when_caught_up);
        let f = &self.failure;
        let _ = writeln!(out);
        let _ = writeln!(out, "[failure]");
        let _ = writeln!(out, "policy = {}", quote(option_name(POLICIES, f.policy)));
        let _ = writeln!(out, "max_value_bytes = {}", f.max_value_bytes.unwrap_or(0));
        let r = &self.resources;
        let _ = writeln!(out);
        let _ = writeln!(out, "[resources]");
        let _ = writeln!(
            out,
            "create = {}",
            quote(option_name(CREATE_MODES, r.create))
        );
        let _ = writeln!(out, "offset_topic = {}", quote(&r.offset_topic));
        let _ = writeln!(
            out,
            "offset_topic_partitions = {}",
            r.offset_topic_partitions
        );
        let _ = writeln!(out, "config_topic = {}", quote(&r.config_topic));
        let _ = writeln!(out, "status_topic = {}", quote(&r.status_topic));
        let _ = writeln!(
            out,
            "status_topic_partitions = {}",
            r.status_topic_partitions
        );
        let _ = writeln!(out, "abnormal_topic = {}", quote(&r.abnormal_topic));
        let _ = writeln!(out, "dead_letter_topic = {}", quote(&r.dead_letter_topic));
        let _ = writeln!(out, "error_topic_partitions = {}", r.error_topic_partitions);
        let _ = writeln!(out, "replication_factor = {}", r.replication_factor);
        let _ = writeln!(out);
        let _ = writeln!(out, "[admin]");
        let _ = writeln!(out, "enabled = {}", self.admin.enabled);
        let _ = writeln!(out, "address = {}", quote(&self.admin.address.to_string()));
        out
    }
}

/// Values within the validated ranges fit `usize` on 64-bit targets; saturate elsewhere.
fn to_usize(value: u64) -> usize {
    usize::try_from(value).unwrap_or(usize::MAX)
}

/// Whether a librdkafka property value is hidden by [`ConnectorConfig::to_redacted_toml`].
fn is_sensitive_property(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    ["password", "secret", "token", "key"]
        .iter()
        .any(|word| name.contains(word))
}

// ---------------------------------------------------------------------------------------------
// Loading and parsing.

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
    let table =
        toml::from_str::<Table>(text).map_err(|e| ConfigErrors(vec![syntax_error(text, &e)]))?;

    let mut root = Section::new(String::new(), table);
    let name = root
        .string("name", NAME_RULE, valid_name)
        .required(&mut root, "name");
    let drain_timeout_ms = root.int("drain_timeout_ms", DRAIN_TIMEOUT_MS);
    let source = root.section("source", true);
    let sink = root.section("sink", true);
    let batching = root.section("batching", false);
    let failure = root.section("failure", false);
    let resources = root.section("resources", false);
    let admin = root.section("admin", false);
    let mut errors = root.finish();

    let source = source.and_then(|section| parse_source(section, name.as_deref(), &mut errors));
    let sink = sink.and_then(|section| parse_sink(section, &mut errors));
    let batching = match batching {
        Some(section) => parse_batching(section, &mut errors),
        None => Some(BatchingConfig {
            max_records: MAX_RECORDS.0,
            max_bytes: MAX_BYTES.0,
            max_interval_ms: MAX_INTERVAL_MS.0,
            seal_when_caught_up: true,
        }),
    };
    let failure = parse_failure(failure, &mut errors);
    let resources = parse_resources(resources, name.as_deref(), &mut errors);
    let admin = match admin {
        Some(section) => parse_admin(section, &mut errors),
        None => Some(AdminConfig::default()),
    };

    match (
        name,
        drain_timeout_ms,
        source,
        sink,
        batching,
        failure,
        resources,
        admin,
    ) {
        (
            Some(name),
            Some(drain_timeout_ms),
            Some(source),
            Some(sink),
            Some(batching),
            Some(failure),
            Some(resources),
            Some(admin),
        ) if errors.is_empty() => Ok(ConnectorConfig {
            name,
            drain_timeout_ms,
            source,
            sink,
            batching,
            failure,
            resources,
            admin,
        }),
        _ => {
            debug_assert!(
                !errors.is_empty(),
                "a missing value always records an error"
            );
            Err(ConfigErrors(errors))
        }
    }
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

fn parse_source(
    mut s: Section,
    name: Option<&str>,
    errors: &mut Vec<ConfigError>,
) -> Option<SourceConfig> {
    let bootstrap_servers = s
        .string("bootstrap_servers", BOOTSTRAP_RULE, valid_bootstrap_servers)
        .required(&mut s, "bootstrap_servers")
        .map(|servers| {
            servers
                .split(',')
                .map(str::trim)
                .collect::<Vec<_>>()
                .join(",")
        });
    let topic = s
        .string("topic", TOPIC_RULE, valid_topic)
        .required(&mut s, "topic");
    let start_offset = s.choice("start_offset", START_OFFSETS, StartOffset::Latest);
    let concurrency = s.int("concurrency", CONCURRENCY);
    let group_id = match s.string("group_id", GROUP_ID_RULE, valid_group_id) {
        Got::Value(group_id) => Some(group_id),
        Got::Missing => name.map(|name| format!("{GROUP_ID_PREFIX}{name}")),
        Got::Invalid => None,
    };
    let properties = match s.table("properties") {
        Got::Value(table) => parse_properties(&s.key("properties"), table, &mut s.errors),
        Got::Missing => Some(ClientProperties::default()),
        Got::Invalid => None,
    };
    errors.extend(s.finish());
    Some(SourceConfig {
        bootstrap_servers: bootstrap_servers?,
        topic: topic?,
        start_offset: start_offset?,
        concurrency: concurrency?,
        group_id: group_id?,
        properties: properties?,
    })
}

/// `[source.properties]`: librdkafka properties as strings. Bare dotted keys
/// (`sasl.password = "x"`, which TOML reads as nested tables) mean the same as quoted ones
/// (`"sasl.password" = "x"`). Values are never echoed in errors: they may be secrets.
fn parse_properties(
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

fn parse_sink(mut s: Section, errors: &mut Vec<ConfigError>) -> Option<SinkConfig> {
    let bucket = s
        .string("bucket", BUCKET_RULE, valid_bucket)
        .required(&mut s, "bucket");
    let endpoint = s
        .string("endpoint", ENDPOINT_RULE, valid_endpoint)
        .optional();
    let region = s
        .string("region", "must be a non-empty string", |r| {
            !r.trim().is_empty()
        })
        .or(DEFAULT_REGION.to_owned());
    let key_prefix = s
        .string("key_prefix", KEY_PREFIX_RULE, valid_key_prefix)
        .or(String::new());
    let addressing = s.choice("addressing", ADDRESSINGS, Addressing::VirtualHosted);
    let part_size_bytes = s.int("part_size_bytes", PART_SIZE_BYTES);
    let checksum = s.choice("checksum", CHECKSUMS, ChecksumMode::WhenRequired);
    // Signed unless switched off: OSS's S3 API asks for the body's SHA-256 on PUT and POST.
    let sign_payload = s.boolean("sign_payload", true);
    let upload_concurrency = s.int("upload_concurrency", UPLOAD_CONCURRENCY);
    let request_timeout_ms = s.int("request_timeout_ms", REQUEST_TIMEOUT_MS);
    let retry_initial_backoff_ms = s.int("retry_initial_backoff_ms", RETRY_INITIAL_BACKOFF_MS);
    let retry_max_backoff_ms = s.int("retry_max_backoff_ms", RETRY_MAX_BACKOFF_MS);
    let max_upload_attempts = s.int("max_upload_attempts", MAX_UPLOAD_ATTEMPTS);
    if let (Some(initial), Some(max)) = (retry_initial_backoff_ms, retry_max_backoff_ms) {
        if max < initial {
            let key = s.key("retry_max_backoff_ms");
            s.errors.push(ConfigError::new(
                key,
                format!(
                    "must be at least `{}` ({initial}), got {max}",
                    s.key("retry_initial_backoff_ms")
                ),
            ));
        }
    }
    errors.extend(s.finish());
    Some(SinkConfig {
        bucket: bucket?,
        endpoint: endpoint?,
        region: region?,
        key_prefix: key_prefix?,
        addressing: addressing?,
        part_size_bytes: part_size_bytes?,
        checksum: checksum?,
        sign_payload: sign_payload?,
        upload_concurrency: upload_concurrency?,
        request_timeout_ms: request_timeout_ms?,
        retry_initial_backoff_ms: retry_initial_backoff_ms?,
        retry_max_backoff_ms: retry_max_backoff_ms?,
        max_upload_attempts: max_upload_attempts?,
    })
}

/// `[failure]`; every key has a default, so a missing section is all defaults.
fn parse_failure(
    section: Option<Section>,
    errors: &mut Vec<ConfigError>,
) -> Option<FailureSettings> {
    let mut s = section.unwrap_or_else(|| Section::new("failure".into(), Table::new()));
    let policy = s.choice("policy", POLICIES, FailurePolicy::Log);
    let max_value_bytes = s.int("max_value_bytes", MAX_VALUE_BYTES);
    errors.extend(s.finish());
    Some(FailureSettings {
        policy: policy?,
        max_value_bytes: match max_value_bytes? {
            0 => None,
            limit => Some(to_usize(limit)),
        },
    })
}

/// `[resources]`; topic names default to the product page's `connect-<kind>-<name>`.
fn parse_resources(
    section: Option<Section>,
    name: Option<&str>,
    errors: &mut Vec<ConfigError>,
) -> Option<ResourceSettings> {
    let mut s = section.unwrap_or_else(|| Section::new("resources".into(), Table::new()));
    let create = s.choice("create", CREATE_MODES, CreateMode::Automatic);
    let topic = |s: &mut Section, key: &'static str, kind: &str| {
        let default = name.map(|name| format!("connect-{kind}-{name}"));
        match s.string(key, TOPIC_RULE, valid_topic) {
            Got::Value(topic) => Some(topic),
            Got::Missing => default,
            Got::Invalid => None,
        }
    };
    let offset_topic = topic(&mut s, "offset_topic", "offset");
    let config_topic = topic(&mut s, "config_topic", "config");
    let status_topic = topic(&mut s, "status_topic", "status");
    let abnormal_topic = topic(&mut s, "abnormal_topic", "error");
    let dead_letter_topic = topic(&mut s, "dead_letter_topic", "error");
    let offset_topic_partitions = s.int("offset_topic_partitions", OFFSET_TOPIC_PARTITIONS);
    let status_topic_partitions = s.int("status_topic_partitions", STATUS_TOPIC_PARTITIONS);
    let error_topic_partitions = s.int("error_topic_partitions", ERROR_TOPIC_PARTITIONS);
    let mut replication_factor = s.signed_int("replication_factor", REPLICATION_FACTOR);
    if replication_factor == Some(0) {
        let key = s.key("replication_factor");
        s.errors.push(ConfigError::new(
            key,
            "must be -1 (the broker's default) or from 1 to 32, got 0",
        ));
        replication_factor = None;
    }
    errors.extend(s.finish());
    let as_i32 = |value: u64| i32::try_from(value).unwrap_or(i32::MAX);
    Some(ResourceSettings {
        create: create?,
        offset_topic: offset_topic?,
        offset_topic_partitions: as_i32(offset_topic_partitions?),
        config_topic: config_topic?,
        status_topic: status_topic?,
        status_topic_partitions: as_i32(status_topic_partitions?),
        abnormal_topic: abnormal_topic?,
        dead_letter_topic: dead_letter_topic?,
        error_topic_partitions: as_i32(error_topic_partitions?),
        replication_factor: replication_factor? as i32,
    })
}

fn parse_batching(mut s: Section, errors: &mut Vec<ConfigError>) -> Option<BatchingConfig> {
    let max_records = s.int("max_records", MAX_RECORDS);
    let max_bytes = s.int("max_bytes", MAX_BYTES);
    let max_interval_ms = s.int("max_interval_ms", MAX_INTERVAL_MS);
    let seal_when_caught_up = s.boolean("seal_when_caught_up", true);
    errors.extend(s.finish());
    Some(BatchingConfig {
        max_records: max_records?,
        max_bytes: max_bytes?,
        max_interval_ms: max_interval_ms?,
        seal_when_caught_up: seal_when_caught_up?,
    })
}

fn parse_admin(mut s: Section, errors: &mut Vec<ConfigError>) -> Option<AdminConfig> {
    let defaults = AdminConfig::default();
    let enabled = s.boolean("enabled", defaults.enabled);
    let address = match s.string("address", ADMIN_ADDRESS_RULE, |a| {
        a.parse::<SocketAddr>().is_ok()
    }) {
        Got::Value(address) => address.parse().ok(),
        Got::Missing => Some(defaults.address),
        Got::Invalid => None,
    };
    errors.extend(s.finish());
    Some(AdminConfig {
        enabled: enabled?,
        address: address?,
    })
}

// ---------------------------------------------------------------------------------------------
// Value rules.

const ADMIN_ADDRESS_RULE: &str =
    "must be an IP address and port, like \"127.0.0.1:9464\" or \"[::]:9464\" (port 0 picks a free one)";

const NAME_RULE: &str = "must be 1 to 48 characters of lowercase letters, digits and hyphens, \
     not starting with a hyphen";
const BOOTSTRAP_RULE: &str =
    "must be a non-empty comma-separated list of host:port (port a number)";
const TOPIC_RULE: &str = "must be a Kafka topic name: 1 to 249 characters of letters, digits, \
     '.', '_' and '-', not \".\" or \"..\"";
const GROUP_ID_RULE: &str = "must be a non-empty string of at most 255 characters";
const BUCKET_RULE: &str = "must be a bucket name: 3 to 63 characters of lowercase letters, \
     digits, '.', '_' and '-', starting and ending with a letter or digit";
const ENDPOINT_RULE: &str = "must be a URL starting with http:// or https://";
const KEY_PREFIX_RULE: &str = "must be empty or end with '/', must not start with '/', \
     contain '\\', control characters or a \"..\" segment, and must be at most 512 bytes";

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && !name.starts_with('-')
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

fn valid_bootstrap_servers(servers: &str) -> bool {
    !servers.trim().is_empty()
        && servers.split(',').all(|server| {
            matches!(server.trim().rsplit_once(':'),
                Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok())
        })
}

fn valid_topic(topic: &str) -> bool {
    !topic.is_empty()
        && topic.len() <= MAX_TOPIC_LEN
        && topic != "."
        && topic != ".."
        && topic
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

fn valid_group_id(group_id: &str) -> bool {
    !group_id.is_empty() && group_id.chars().count() <= MAX_GROUP_ID_LEN
}

fn valid_bucket(bucket: &str) -> bool {
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    (3..=63).contains(&bucket.len())
        && bucket
            .bytes()
            .all(|b| alnum(b) || matches!(b, b'.' | b'_' | b'-'))
        && bucket.bytes().next().is_some_and(alnum)
        && bucket.bytes().last().is_some_and(alnum)
}

fn valid_endpoint(endpoint: &str) -> bool {
    ["http://", "https://"].iter().any(|scheme| {
        endpoint
            .strip_prefix(scheme)
            .is_some_and(|rest| !rest.is_empty())
    })
}

fn valid_key_prefix(prefix: &str) -> bool {
    prefix.is_empty()
        || (prefix.ends_with('/')
            && !prefix.starts_with('/')
            && !prefix.contains('\\')
            && !prefix.chars().any(char::is_control)
            && prefix.len() <= MAX_KEY_PREFIX_BYTES
            && !prefix.split('/').any(|segment| segment == ".."))
}

/// Keys that look like credentials: never accepted in the file, and their values never echoed.
fn is_credential_key(name: &str) -> bool {
    let name = name.to_ascii_lowercase().replace('-', "_");
    const EXACT: &[&str] = &[
        "access_key_id",
        "access_key_secret",
        "secret_access_key",
        "secret",
        "password",
        "session_token",
        "security_token",
        "token",
        "access_key",
        "secret_key",
        "credentials",
    ];
    EXACT.contains(&name.as_str())
        || name.contains("secret")
        || name.contains("password")
        || name.contains("access_key")
        || name.ends_with("_token")
}

// ---------------------------------------------------------------------------------------------
// Table walker.

/// The outcome of reading one key.
enum Got<T> {
    Missing,
    /// Present but wrong; the error is already recorded.
    Invalid,
    Value(T),
}

impl<T> Got<T> {
    /// `None` if invalid; the default if missing.
    fn or(self, default: T) -> Option<T> {
        match self {
            Got::Missing => Some(default),
            Got::Invalid => None,
            Got::Value(v) => Some(v),
        }
    }

    /// `None` if invalid; `Some(None)` if missing.
    fn optional(self) -> Option<Option<T>> {
        match self {
            Got::Missing => Some(None),
            Got::Invalid => None,
            Got::Value(v) => Some(Some(v)),
        }
    }

    /// Records an error if missing.
    fn required(self, section: &mut Section, name: &str) -> Option<T> {
        match self {
            Got::Missing => {
                let key = section.key(name);
                section
                    .errors
                    .push(ConfigError::new(key, "required key is missing"));
                None
            }
            Got::Invalid => None,
            Got::Value(v) => Some(v),
        }
    }
}

/// One table of the file: known keys are taken out with typed getters that record errors,
/// whatever is left is reported by [`Section::finish`].
struct Section {
    /// Dotted path of this table; empty for the top level.
    path: String,
    table: Table,
    known: Vec<&'static str>,
    errors: Vec<ConfigError>,
}

impl Section {
    fn new(path: String, table: Table) -> Self {
        Section {
            path,
            table,
            known: Vec::new(),
            errors: Vec::new(),
        }
    }

    fn key(&self, name: &str) -> String {
        if self.path.is_empty() {
            toml_key(name)
        } else {
            format!("{}.{}", self.path, toml_key(name))
        }
    }

    fn take(&mut self, name: &'static str) -> Option<Value> {
        self.known.push(name);
        self.table.remove(name)
    }

    fn invalid<T>(&mut self, name: &str, rule: &str, value: &Value) -> Got<T> {
        let key = self.key(name);
        self.errors.push(ConfigError::new(
            key,
            format!("{rule}, got {}", describe(value)),
        ));
        Got::Invalid
    }

    fn string(
        &mut self,
        name: &'static str,
        rule: &str,
        valid: impl Fn(&str) -> bool,
    ) -> Got<String> {
        match self.take(name) {
            None => Got::Missing,
            Some(Value::String(s)) if valid(&s) => Got::Value(s),
            Some(other) => self.invalid(name, rule, &other),
        }
    }

    /// An integer in `min..=max`, the default if missing. `None` if invalid (error recorded).
    fn int(&mut self, name: &'static str, (default, min, max): (u64, u64, u64)) -> Option<u64> {
        match self.take(name) {
            None => Some(default),
            Some(Value::Integer(i)) if (min as i128..=max as i128).contains(&(i as i128)) => {
                Some(i as u64)
            }
            Some(other) => {
                let rule = format!("must be an integer from {min} to {max}");
                self.invalid::<()>(name, &rule, &other);
                None
            }
        }
    }

    /// A signed integer in `min..=max`, the default if missing. `None` if invalid (error recorded).
    fn signed_int(
        &mut self,
        name: &'static str,
        (default, min, max): (i64, i64, i64),
    ) -> Option<i64> {
        match self.take(name) {
            None => Some(default),
            Some(Value::Integer(i)) if (min..=max).contains(&i) => Some(i),
            Some(other) => {
                let rule = format!("must be an integer from {min} to {max}");
                self.invalid::<()>(name, &rule, &other);
                None
            }
        }
    }

    /// A boolean, the default if missing. `None` if invalid (error recorded).
    fn boolean(&mut self, name: &'static str, default: bool) -> Option<bool> {
        match self.take(name) {
            None => Some(default),
            Some(Value::Boolean(b)) => Some(b),
            Some(other) => {
                self.invalid::<()>(name, "must be true or false", &other);
                None
            }
        }
    }

    /// One of `options` by name, the default if missing. `None` if invalid (error recorded).
    fn choice<T: Copy>(
        &mut self,
        name: &'static str,
        options: &[(&'static str, T)],
        default: T,
    ) -> Option<T> {
        match self.take(name) {
            None => Some(default),
            Some(value) => {
                if let Some((_, v)) = options.iter().find(|(n, _)| Some(*n) == value.as_str()) {
                    return Some(*v);
                }
                let names: Vec<String> = options.iter().map(|(n, _)| quote(n)).collect();
                let rule = format!("must be one of {}", names.join(", "));
                self.invalid::<()>(name, &rule, &value);
                None
            }
        }
    }

    fn table(&mut self, name: &'static str) -> Got<Table> {
        match self.take(name) {
            None => Got::Missing,
            Some(Value::Table(t)) => Got::Value(t),
            Some(other) => self.invalid(name, "must be a table", &other),
        }
    }

    /// A sub-table as its own section. `None` if missing (an error if `required`) or not a table.
    fn section(&mut self, name: &'static str, required: bool) -> Option<Section> {
        let got = self.table(name);
        let table = if required {
            match got {
                Got::Missing => {
                    let key = self.key(name);
                    self.errors.push(ConfigError::new(
                        key,
                        format!("required section [{name}] is missing"),
                    ));
                    None
                }
                Got::Invalid => None,
                Got::Value(t) => Some(t),
            }
        } else {
            got.optional().flatten()
        };
        table.map(|t| Section::new(self.key(name), t))
    }

    /// Reports the keys nobody took (credentials, or unknown with a suggestion) and returns
    /// all errors of this section.
    fn finish(mut self) -> Vec<ConfigError> {
        let mut leftover: Vec<String> = self.table.keys().cloned().collect();
        leftover.sort();
        for name in leftover {
            let key = self.key(&name);
            let message = if is_credential_key(&name) {
                if self.path == "source" {
                    format!(
                        "{CREDENTIALS_MESSAGE}; Kafka SASL settings go in `source.properties` \
                         (e.g. \"sasl.username\", \"sasl.password\")"
                    )
                } else {
                    CREDENTIALS_MESSAGE.to_owned()
                }
            } else {
                let mut message = "unknown key".to_owned();
                if let Some(hint) = self.suggestion(&name) {
                    message.push_str("; ");
                    message.push_str(&hint);
                }
                message
            };
            self.errors.push(ConfigError::new(key, message));
        }
        self.errors
    }

    fn suggestion(&self, name: &str) -> Option<String> {
        let closest = self
            .known
            .iter()
            .map(|known| (edit_distance(name, known), *known))
            .filter(|(distance, _)| *distance <= 2)
            .min_by_key(|(distance, _)| *distance);
        if let Some((_, known)) = closest {
            return Some(format!("did you mean `{}`?", self.key(known)));
        }
        // A key of another table, e.g. a top-level key written after a [section] header.
        let elsewhere = ALL_KEYS
            .iter()
            .find(|path| path.rsplit('.').next() == Some(name))?;
        let note = if elsewhere.contains('.') {
            ""
        } else {
            " (top-level keys must come before the first [section] header)"
        };
        Some(format!("did you mean `{elsewhere}`?{note}"))
    }
}

/// Levenshtein distance over chars.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current.push(substitution.min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[b.len()]
}

/// A value for an error message: strings quoted (and shortened), tables and arrays by type.
fn describe(value: &Value) -> String {
    const MAX_CHARS: usize = 80;
    match value {
        Value::String(s) if s.chars().count() > MAX_CHARS => {
            let head: String = s.chars().take(MAX_CHARS).collect();
            format!("{}... ({} characters)", quote(&head), s.chars().count())
        }
        Value::String(s) => quote(s),
        Value::Integer(i) => i.to_string(),
        Value::Float(f) => f.to_string(),
        Value::Boolean(b) => b.to_string(),
        Value::Datetime(d) => d.to_string(),
        Value::Array(_) | Value::Table(_) => type_phrase(value).to_owned(),
    }
}

fn type_phrase(value: &Value) -> &'static str {
    match value {
        Value::String(_) => "a string",
        Value::Integer(_) => "an integer",
        Value::Float(_) => "a float",
        Value::Boolean(_) => "a boolean",
        Value::Datetime(_) => "a datetime",
        Value::Array(_) => "an array",
        Value::Table(_) => "a table",
    }
}

/// A TOML basic string.
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A TOML key: bare when possible, quoted otherwise (`"group.id"`).
fn toml_key(name: &str) -> String {
    let bare = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if bare {
        name.to_owned()
    } else {
        quote(name)
    }
}

// ---------------------------------------------------------------------------------------------
// Credentials.

/// The AccessKey pair from the environment: `OSS_ACCESS_KEY_ID` / `OSS_ACCESS_KEY_SECRET`
/// (+ optional `OSS_SESSION_TOKEN`); if neither OSS variable is set, `AWS_ACCESS_KEY_ID` /
/// `AWS_SECRET_ACCESS_KEY` (+ optional `AWS_SESSION_TOKEN`). The two families are never mixed.
/// Empty values count as unset. Errors name variables, never values.
pub fn credentials_from_env(
    get: impl Fn(&str) -> Option<String>,
) -> Result<Credentials, ConfigError> {
    struct Family {
        id: &'static str,
        secret: &'static str,
        token: &'static str,
    }
    const OSS: Family = Family {
        id: "OSS_ACCESS_KEY_ID",
        secret: "OSS_ACCESS_KEY_SECRET",
        token: "OSS_SESSION_TOKEN",
    };
    const AWS: Family = Family {
        id: "AWS_ACCESS_KEY_ID",
        secret: "AWS_SECRET_ACCESS_KEY",
        token: "AWS_SESSION_TOKEN",
    };
    let var = |name: &str| get(name).filter(|value| !value.is_empty());

    let family = if var(OSS.id).is_some() || var(OSS.secret).is_some() {
        OSS
    } else if var(AWS.id).is_some() || var(AWS.secret).is_some() {
        AWS
    } else {
        return Err(ConfigError::new(
            OSS.id,
            "not set; set OSS_ACCESS_KEY_ID and OSS_ACCESS_KEY_SECRET \
             (or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY) in the environment",
        ));
    };
    let id = var(family.id);
    let secret = var(family.secret);
    match (id, secret) {
        (Some(id), Some(secret)) => Ok(Credentials {
            access_key_id: Secret::new(id),
            access_key_secret: Secret::new(secret),
            session_token: var(family.token).map(Secret::new),
        }),
        (Some(_), None) => Err(ConfigError::new(
            family.secret,
            format!("not set, but {} is; set both", family.id),
        )),
        _ => Err(ConfigError::new(
            family.id,
            format!("not set, but {} is; set both", family.secret),
        )),
    }
}

// ---------------------------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
name = "orders-to-oss"

[source]
bootstrap_servers = "kafka-1:9092,kafka-2:9092"
topic = "orders"

[sink]
bucket = "my-bucket"
"#;

    fn errors_of(text: &str) -> Vec<ConfigError> {
        match parse_config(text) {
            Ok(_) => panic!("expected errors for:\n{text}"),
            Err(ConfigErrors(errors)) => errors,
        }
    }

    fn keys_of(text: &str) -> Vec<String> {
        errors_of(text).into_iter().map(|e| e.key).collect()
    }

    fn with_name(name: &str) -> String {
        MINIMAL.replace("\"orders-to-oss\"", &quote(name))
    }

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    }

    fn credentials() -> Credentials {
        credentials_from_env(env(&[
            ("OSS_ACCESS_KEY_ID", "LTAI-id-value"),
            ("OSS_ACCESS_KEY_SECRET", "very-secret-value"),
            ("OSS_SESSION_TOKEN", "sts-token-value"),
        ]))
        .unwrap()
    }

    #[test]
    fn minimal_config_gets_documented_defaults() {
        let config = parse_config(MINIMAL).unwrap();
        assert_eq!(config.name(), "orders-to-oss");
        assert_eq!(config.group_id(), "connect-orders-to-oss");

        let settings = config.into_settings(credentials());
        assert_eq!(settings.connector_name, "orders-to-oss");
        assert_eq!(settings.drain_timeout, Duration::from_secs(30));

        let source = &settings.source;
        assert_eq!(source.bootstrap_servers, "kafka-1:9092,kafka-2:9092");
        assert_eq!(source.topic, "orders");
        assert_eq!(source.group_id, "connect-orders-to-oss");
        assert_eq!(source.start_offset, StartOffset::Latest);
        assert_eq!(source.concurrency, 6);
        assert!(source.client_properties.0.is_empty());

        let sink = &settings.sink;
        assert_eq!(sink.bucket, "my-bucket");
        assert_eq!(sink.endpoint, None);
        assert_eq!(sink.region, "us-east-1");
        assert_eq!(sink.key_prefix, "");
        assert!(!sink.path_style, "virtual_hosted by default");
        assert_eq!(sink.part_size, 16 * 1024 * 1024);
        assert_eq!(sink.checksum, ChecksumMode::WhenRequired);
        assert!(sink.sign_payload);
        assert_eq!(sink.upload_concurrency, 4);
        assert_eq!(sink.request_timeout, Duration::from_secs(30));
        assert_eq!(sink.retry_initial_backoff, Duration::from_millis(200));
        assert_eq!(sink.retry_max_backoff, Duration::from_secs(30));

        assert_eq!(
            settings.batching,
            RollPolicy {
                max_records: 10_000,
                max_bytes: 16 * 1024 * 1024,
                max_interval: Duration::from_secs(10),
                seal_when_caught_up: true,
            }
        );
    }

    #[test]
    fn explicit_values_are_mapped_into_settings() {
        let text = r#"
name = "n1"
drain_timeout_ms = 5000
[source]
bootstrap_servers = " a:1 , b:2 "
topic = "t.1"
start_offset = "earliest"
concurrency = 12
group_id = "my-group"
[source.properties]
"fetch.wait.max.ms" = 10
"enable.idempotence" = true
client.id = "x"
[sink]
bucket = "b.u-c_k"
endpoint = "https://s3.oss-cn-hangzhou.aliyuncs.com"
region = "oss-cn-hangzhou"
key_prefix = "kafka/raw/"
addressing = "path"
part_size_bytes = 5242880
checksum = "when_supported"
sign_payload = false
upload_concurrency = 8
request_timeout_ms = 1000
retry_initial_backoff_ms = 10
retry_max_backoff_ms = 10
[batching]
max_records = 1
max_bytes = 1024
max_interval_ms = 100
seal_when_caught_up = false
"#;
        let config = parse_config(text).unwrap();
        assert_eq!(config.group_id(), "my-group");
        let s = config.into_settings(credentials());
        assert_eq!(s.drain_timeout, Duration::from_secs(5));
        assert_eq!(s.source.bootstrap_servers, "a:1,b:2");
        assert_eq!(s.source.start_offset, StartOffset::Earliest);
        assert_eq!(s.source.concurrency, 12);
        let props: Vec<(&str, &str)> = s
            .source
            .client_properties
            .0
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            props,
            [
                ("client.id", "x"),
                ("enable.idempotence", "true"),
                ("fetch.wait.max.ms", "10")
            ]
        );
        assert_eq!(
            s.sink.endpoint.as_deref(),
            Some("https://s3.oss-cn-hangzhou.aliyuncs.com")
        );
        assert_eq!(s.sink.region, "oss-cn-hangzhou");
        assert_eq!(s.sink.key_prefix, "kafka/raw/");
        assert!(s.sink.path_style);
        assert_eq!(s.sink.part_size, 5 * 1024 * 1024);
        assert_eq!(s.sink.checksum, ChecksumMode::WhenSupported);
        assert!(!s.sink.sign_payload);
        assert_eq!(s.sink.upload_concurrency, 8);
        assert_eq!(s.sink.request_timeout, Duration::from_secs(1));
        assert_eq!(s.sink.retry_max_backoff, Duration::from_millis(10));
        assert_eq!(s.batching.max_records, 1);
        assert_eq!(s.batching.max_bytes, 1024);
        assert_eq!(s.batching.max_interval, Duration::from_millis(100));
        assert!(!s.batching.seal_when_caught_up);
        assert_eq!(
            s.sink.credentials.access_key_secret.expose(),
            "very-secret-value"
        );
    }

    #[test]
    fn name_rules() {
        for valid in ["a", "orders-to-oss", "0x", "a-", &"a".repeat(48)] {
            let config = parse_config(&with_name(valid))
                .unwrap_or_else(|e| panic!("{valid:?} should be valid: {e}"));
            assert_eq!(config.name(), valid);
        }
        for invalid in [
            "",
            &"a".repeat(49),
            "Orders",
            "-orders",
            "orders_oss",
            "a b",
        ] {
            let errors = errors_of(&with_name(invalid));
            assert_eq!(errors.len(), 1, "{invalid:?}: {errors:?}");
            assert_eq!(errors[0].key, "name", "{invalid:?}");
            assert!(errors[0]
                .message
                .contains("lowercase letters, digits and hyphens"));
        }
        let errors = errors_of(&MINIMAL.replace("name = \"orders-to-oss\"", ""));
        assert_eq!(
            errors,
            [ConfigError::new("name", "required key is missing")]
        );
        assert_eq!(keys_of(&with_name("x").replace("\"x\"", "7")), ["name"]);
    }

    #[test]
    fn every_problem_in_a_file_is_reported_at_once() {
        let text = r#"
name = "n"
[source]
bootstrap_servers = "k:9092"
topic = "t"
start_offset = "newest"
concurrency = 100
[sink]
bukcet = "my-bucket"
"#;
        let errors = errors_of(text);
        let rendered: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(
            rendered,
            [
                "`source.start_offset`: must be one of \"latest\", \"earliest\", got \"newest\"",
                "`source.concurrency`: must be an integer from 1 to 64, got 100",
                "`sink.bucket`: required key is missing",
                "`sink.bukcet`: unknown key; did you mean `sink.bucket`?",
            ]
        );
        let all = ConfigErrors(errors).to_string();
        assert_eq!(all.lines().count(), 4, "one error per line:\n{all}");
    }

    #[test]
    fn wrong_types_and_ranges_name_key_rule_and_value() {
        let text = r#"
name = "n"
drain_timeout_ms = 999
[source]
bootstrap_servers = "kafka"
topic = ".."
concurrency = "6"
group_id = ""
[sink]
bucket = "My_Bucket"
endpoint = "s3.example.com"
region = ""
key_prefix = "/abs"
addressing = "virtual-hosted"
part_size_bytes = 1048576
checksum = true
upload_concurrency = 0
request_timeout_ms = 1.5
retry_initial_backoff_ms = 5
retry_max_backoff_ms = 700000
[batching]
max_records = -1
max_bytes = 1023
max_interval_ms = [1]
"#;
        let rendered: Vec<String> = errors_of(text).iter().map(ToString::to_string).collect();
        let expected = [
            "`drain_timeout_ms`: must be an integer from 1000 to 600000, got 999",
            "`source.bootstrap_servers`: must be a non-empty comma-separated list of host:port (port a number), got \"kafka\"",
            "`source.topic`: must be a Kafka topic name",
            "`source.concurrency`: must be an integer from 1 to 64, got \"6\"",
            "`source.group_id`: must be a non-empty string of at most 255 characters, got \"\"",
            "`sink.bucket`: must be a bucket name",
            "`sink.endpoint`: must be a URL starting with http:// or https://, got \"s3.example.com\"",
            "`sink.region`: must be a non-empty string, got \"\"",
            "`sink.key_prefix`: must be empty or end with '/'",
            "`sink.addressing`: must be one of \"virtual_hosted\", \"path\", got \"virtual-hosted\"",
            "`sink.part_size_bytes`: must be an integer from 5242880 to 5368709120, got 1048576",
            "`sink.checksum`: must be one of \"when_required\", \"when_supported\", got true",
            "`sink.upload_concurrency`: must be an integer from 1 to 256, got 0",
            "`sink.request_timeout_ms`: must be an integer from 1000 to 600000, got 1.5",
            "`sink.retry_initial_backoff_ms`: must be an integer from 10 to 60000, got 5",
            "`sink.retry_max_backoff_ms`: must be an integer from 10 to 600000, got 700000",
            "`batching.max_records`: must be an integer from 1 to 10000000, got -1",
            "`batching.max_bytes`: must be an integer from 1024 to 5368709120, got 1023",
            "`batching.max_interval_ms`: must be an integer from 100 to 86400000, got an array",
        ];
        assert_eq!(rendered.len(), expected.len(), "{rendered:#?}");
        for (got, want) in rendered.iter().zip(expected) {
            assert!(got.starts_with(want), "{got}\n  should start with\n{want}");
        }
    }

    #[test]
    fn failure_and_resources_default_to_the_product_page() {
        let settings = parse_config(MINIMAL).unwrap().into_settings(credentials());
        assert_eq!(settings.failure.policy, FailurePolicy::Log);
        assert_eq!(settings.failure.max_value_bytes, None);
        assert_eq!(settings.sink.max_upload_attempts, Some(10));
        let r = &settings.resources;
        assert_eq!(r.create, CreateMode::Automatic);
        assert_eq!(r.offset_topic, "connect-offset-orders-to-oss");
        assert_eq!(r.config_topic, "connect-config-orders-to-oss");
        assert_eq!(r.status_topic, "connect-status-orders-to-oss");
        assert_eq!(r.abnormal_topic, "connect-error-orders-to-oss");
        assert_eq!(r.dead_letter_topic, "connect-error-orders-to-oss");
        assert_eq!(
            (
                r.offset_topic_partitions,
                r.status_topic_partitions,
                r.error_topic_partitions
            ),
            (12, 6, 6)
        );
        assert_eq!(r.replication_factor, -1);
        assert!(settings.redacted_config.contains("[resources]"));
    }

    #[test]
    fn failure_and_resources_values_are_checked() {
        let text = format!(
            "{MINIMAL}max_upload_attempts = 0\n\n[failure]\npolicy = \"fail\"\nmax_value_bytes = 1000\n\n\
             [resources]\ncreate = \"manual\"\ndead_letter_topic = \"dlq\"\nreplication_factor = 3\n"
        );
        let settings = parse_config(&text).unwrap().into_settings(credentials());
        assert_eq!(settings.failure.policy, FailurePolicy::Fail);
        assert_eq!(settings.failure.max_value_bytes, Some(1000));
        assert_eq!(settings.sink.max_upload_attempts, None, "0 means unlimited");
        assert_eq!(settings.resources.create, CreateMode::Manual);
        assert_eq!(settings.resources.dead_letter_topic, "dlq");
        assert_eq!(
            settings.resources.abnormal_topic,
            "connect-error-orders-to-oss"
        );
        assert_eq!(settings.resources.replication_factor, 3);

        let bad = format!(
            "{MINIMAL}\n[failure]\npolicy = \"ignore\"\nmax_value_bytes = -1\n\n\
             [resources]\ncreate = \"auto\"\nstatus_topic = \"bad topic\"\noffset_topic_partitions = 1\n\
             replication_factor = 0\nerror_topics = 3\n"
        );
        let errors = errors_of(&bad);
        let keys: Vec<&str> = errors.iter().map(|e| e.key.as_str()).collect();
        for key in [
            "failure.policy",
            "failure.max_value_bytes",
            "resources.create",
            "resources.status_topic",
            "resources.offset_topic_partitions",
            "resources.error_topics",
            "resources.replication_factor",
        ] {
            assert!(keys.contains(&key), "no error for {key} in {errors:?}");
        }
        let policy = errors.iter().find(|e| e.key == "failure.policy").unwrap();
        assert!(policy.to_string().contains("\"log\", \"fail\""), "{policy}");
    }

    #[test]
    fn value_rules() {
        let sink_with = |line: &str| format!("{MINIMAL}{line}\n");
        for ok in [
            "key_prefix = \"\"",
            "key_prefix = \"a/b/\"",
            "key_prefix = \"a..b/\"",
            "endpoint = \"http://127.0.0.1:19000\"",
        ] {
            parse_config(&sink_with(ok)).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        for bad in [
            "key_prefix = \"a\"",
            "key_prefix = \"/a/\"",
            "key_prefix = \"\\\\a/\"",
            "key_prefix = \"a\\\\b/\"",
            "key_prefix = \"a/../b/\"",
            "key_prefix = \"../\"",
            "key_prefix = \"a\\u0001/\"",
            &format!("key_prefix = \"{}/\"", "a".repeat(512)),
        ] {
            assert_eq!(keys_of(&sink_with(bad)), ["sink.key_prefix"], "{bad}");
        }
        for bad in ["ab", "-ab", "ab-", "aBc", &"a".repeat(64), "a b"] {
            let text = MINIMAL.replace("\"my-bucket\"", &quote(bad));
            assert_eq!(keys_of(&text), ["sink.bucket"], "{bad}");
        }
        for bad in ["", ".", "..", "a/b", "ä", &"t".repeat(250)] {
            let text = MINIMAL.replace("topic = \"orders\"", &format!("topic = {}", quote(bad)));
            assert_eq!(keys_of(&text), ["source.topic"], "{bad}");
        }
        for bad in ["", "k", "k:", ":9092", "k:port", "k:9092,", "k:9092,,l:1"] {
            let text = MINIMAL.replace("\"kafka-1:9092,kafka-2:9092\"", &quote(bad));
            assert_eq!(keys_of(&text), ["source.bootstrap_servers"], "{bad:?}");
        }
        let text = MINIMAL.replace("\"kafka-1:9092,kafka-2:9092\"", "\"[::1]:9092\"");
        parse_config(&text).unwrap();
    }

    #[test]
    fn retry_backoff_cap_must_not_be_below_the_initial_backoff() {
        let text = format!("{MINIMAL}retry_initial_backoff_ms = 500\nretry_max_backoff_ms = 400\n");
        let errors = errors_of(&text);
        assert_eq!(
            errors,
            [ConfigError::new(
                "sink.retry_max_backoff_ms",
                "must be at least `sink.retry_initial_backoff_ms` (500), got 400"
            )]
        );
    }

    #[test]
    fn missing_sections_and_wrong_section_types() {
        assert_eq!(
            errors_of("name = \"n\"")
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>(),
            [
                "`source`: required section [source] is missing",
                "`sink`: required section [sink] is missing",
            ]
        );
        let text = format!("{MINIMAL}\n[batching]\n")
            .replace("name = \"orders-to-oss\"", "name = \"n\"\nbatching = 1");
        // A TOML error: `batching` defined twice.
        assert_eq!(errors_of(&text)[0].key, "");
        let text = "name = \"n\"\nsource = \"x\"\nsink = []\n";
        assert_eq!(keys_of(text), ["source", "sink"]);
    }

    #[test]
    fn unknown_keys_get_suggestions() {
        let text = format!("{MINIMAL}\n[batchin]\nmax_records = 1\n")
            .replace("[source]", "[source]\ntopik = \"x\"\nfoo = 1");
        let rendered: Vec<String> = errors_of(&text).iter().map(ToString::to_string).collect();
        assert_eq!(
            rendered,
            [
                "`batchin`: unknown key; did you mean `batching`?",
                "`source.foo`: unknown key",
                "`source.topik`: unknown key; did you mean `source.topic`?",
            ]
        );
        // A top-level key written after a section header lands in that section.
        let text = format!("{MINIMAL}drain_timeout_ms = 5000\n");
        assert_eq!(
            errors_of(&text)[0].to_string(),
            "`sink.drain_timeout_ms`: unknown key; did you mean `drain_timeout_ms`? \
             (top-level keys must come before the first [section] header)"
        );
        let text = format!("{MINIMAL}topic = \"orders\"\n");
        assert_eq!(
            errors_of(&text)[0].to_string(),
            "`sink.topic`: unknown key; did you mean `source.topic`?"
        );
    }

    #[test]
    fn reserved_librdkafka_properties_are_rejected() {
        let text = MINIMAL.replace(
            "[sink]",
            "[source.properties]\n\"group.id\" = \"g\"\nbootstrap.servers = \"x:1\"\n\
             \"auto.offset.reset\" = \"earliest\"\n\"enable.auto.commit\" = true\n\
             \"enable.auto.offset.store\" = false\n\"enable.partition.eof\" = true\n\
             \"socket.timeout.ms\" = [1]\n\"client.id\" = \"ok\"\n\
             \"statistics.interval.ms\" = 0\n[sink]",
        );
        let errors = errors_of(&text);
        let rendered: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(
            rendered,
            [
                "`source.properties.\"auto.offset.reset\"`: reserved librdkafka property: set `source.start_offset` instead",
                "`source.properties.\"bootstrap.servers\"`: reserved librdkafka property: set `source.bootstrap_servers` instead",
                "`source.properties.\"enable.auto.commit\"`: reserved librdkafka property: the connector owns offset handling (it commits an offset only once its records are stored)",
                "`source.properties.\"enable.auto.offset.store\"`: reserved librdkafka property: the connector owns offset handling (it commits an offset only once its records are stored)",
                "`source.properties.\"enable.partition.eof\"`: reserved librdkafka property: the connector owns offset handling (it commits an offset only once its records are stored)",
                "`source.properties.\"group.id\"`: reserved librdkafka property: set `source.group_id` instead",
                "`source.properties.\"socket.timeout.ms\"`: must be a string, integer or boolean, got an array",
                "`source.properties.\"statistics.interval.ms\"`: reserved librdkafka property: the connector reads librdkafka statistics every second for its lag metrics and /readyz",
            ]
        );
    }

    #[test]
    fn credentials_in_the_file_are_rejected_without_echoing_them() {
        let secret = "Sup3rS3cretValue";
        for (section, key) in [
            ("", "access_key_id"),
            ("", "password"),
            ("source", "password"),
            ("sink", "access_key_secret"),
            ("sink", "secret_access_key"),
            ("sink", "session_token"),
            ("sink", "secret"),
            ("sink", "access-key-secret"),
            ("sink", "acess_key_secret"),
            ("batching", "token"),
        ] {
            let line = format!("{key} = \"{secret}\"\n");
            let text = match section {
                "" => format!("{line}{MINIMAL}"),
                "batching" => format!("{MINIMAL}[batching]\n{line}"),
                s => MINIMAL.replace(&format!("[{s}]\n"), &format!("[{s}]\n{line}")),
            };
            let errors = errors_of(&text);
            let path = if section.is_empty() {
                key.to_owned()
            } else {
                format!("{section}.{key}")
            };
            assert_eq!(errors.len(), 1, "{path}: {errors:?}");
            assert_eq!(errors[0].key, path);
            assert!(
                errors[0].message.starts_with(CREDENTIALS_MESSAGE),
                "{}",
                errors[0]
            );
            let all = ConfigErrors(errors).to_string();
            assert!(!all.contains(secret), "{all}");
        }
        // Also as a table, and with a wrong type.
        let text = MINIMAL.replace(
            "[sink]\n",
            "[sink]\ncredentials = { id = \"Sup3rS3cretValue\" }\npassword = 12345\n",
        );
        let all = ConfigErrors(errors_of(&text)).to_string();
        assert_eq!(all.lines().count(), 2, "{all}");
        assert!(!all.contains(secret) && !all.contains("12345"), "{all}");
    }

    #[test]
    fn syntax_errors_give_position_but_not_the_line() {
        let text = "name = \"n\"\n[sink]\npassword = \"Sup3rS3cret\n";
        let errors = errors_of(text);
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].key, "");
        let message = errors[0].to_string();
        assert!(
            message.starts_with("invalid TOML at line 3, column"),
            "{message}"
        );
        assert!(!message.contains("Sup3rS3cret"), "{message}");
        assert_eq!(message.lines().count(), 1);
    }

    #[test]
    fn load_config_names_an_unreadable_path() {
        let path = Path::new("/nonexistent/dir/connector.toml");
        let errors = load_config(path).unwrap_err();
        assert_eq!(errors.0.len(), 1);
        assert!(errors
            .to_string()
            .contains("/nonexistent/dir/connector.toml"));
    }

    #[test]
    fn credentials_from_oss_variables() {
        let c = credentials_from_env(env(&[
            ("OSS_ACCESS_KEY_ID", "oss-id"),
            ("OSS_ACCESS_KEY_SECRET", "oss-secret"),
            ("OSS_SESSION_TOKEN", "oss-token"),
            ("AWS_ACCESS_KEY_ID", "aws-id"),
            ("AWS_SECRET_ACCESS_KEY", "aws-secret"),
        ]))
        .unwrap();
        assert_eq!(c.access_key_id.expose(), "oss-id");
        assert_eq!(c.access_key_secret.expose(), "oss-secret");
        assert_eq!(
            c.session_token.as_ref().map(Secret::expose),
            Some("oss-token")
        );

        let c = credentials_from_env(env(&[
            ("OSS_ACCESS_KEY_ID", "oss-id"),
            ("OSS_ACCESS_KEY_SECRET", "oss-secret"),
            ("OSS_SESSION_TOKEN", ""),
        ]))
        .unwrap();
        assert!(c.session_token.is_none(), "empty counts as unset");
    }

    #[test]
    fn credentials_fall_back_to_aws_variables() {
        let c = credentials_from_env(env(&[
            ("OSS_ACCESS_KEY_ID", ""),
            ("AWS_ACCESS_KEY_ID", "aws-id"),
            ("AWS_SECRET_ACCESS_KEY", "aws-secret"),
            ("AWS_SESSION_TOKEN", "aws-token"),
            ("OSS_SESSION_TOKEN", "oss-token"),
        ]))
        .unwrap();
        assert_eq!(c.access_key_id.expose(), "aws-id");
        assert_eq!(c.access_key_secret.expose(), "aws-secret");
        assert_eq!(
            c.session_token.as_ref().map(Secret::expose),
            Some("aws-token")
        );
    }

    #[test]
    fn missing_credential_variables_are_named_and_families_never_mixed() {
        let err = credentials_from_env(env(&[("OSS_ACCESS_KEY_ID", "oss-id")])).unwrap_err();
        assert_eq!(err.key, "OSS_ACCESS_KEY_SECRET");
        assert!(!err.to_string().contains("oss-id"));

        // An OSS id with only an AWS secret is an error, not a mixed pair.
        let err = credentials_from_env(env(&[
            ("OSS_ACCESS_KEY_ID", "oss-id"),
            ("AWS_SECRET_ACCESS_KEY", "aws-secret"),
        ]))
        .unwrap_err();
        assert_eq!(err.key, "OSS_ACCESS_KEY_SECRET");
        assert!(!err.to_string().contains("aws-secret"));

        let err = credentials_from_env(env(&[
            ("OSS_ACCESS_KEY_SECRET", "oss-secret"),
            ("AWS_ACCESS_KEY_ID", "aws-id"),
        ]))
        .unwrap_err();
        assert_eq!(err.key, "OSS_ACCESS_KEY_ID");
        assert!(!err.to_string().contains("oss-secret"));

        let err = credentials_from_env(env(&[("AWS_ACCESS_KEY_ID", "aws-id")])).unwrap_err();
        assert_eq!(err.key, "AWS_SECRET_ACCESS_KEY");

        let err = credentials_from_env(env(&[])).unwrap_err();
        assert_eq!(err.key, "OSS_ACCESS_KEY_ID");
        assert!(err.message.contains("OSS_ACCESS_KEY_SECRET"));
        assert!(err.message.contains("AWS_ACCESS_KEY_ID"));
    }

    #[test]
    fn debug_output_never_contains_secrets() {
        let text = MINIMAL.replace(
            "[sink]",
            "[source.properties]\n\"sasl.password\" = \"kafka-pass-value\"\n[sink]",
        );
        let config = parse_config(&text).unwrap();
        let config_debug = format!("{config:?}");
        assert!(!config_debug.contains("kafka-pass-value"), "{config_debug}");
        assert!(config_debug.contains("sasl.password"));

        let credentials = credentials();
        let credentials_debug = format!("{credentials:?}");
        let settings_debug = format!("{:?}", config.into_settings(credentials));
        for debug in [credentials_debug, settings_debug] {
            for secret in [
                "LTAI-id-value",
                "very-secret-value",
                "sts-token-value",
                "kafka-pass-value",
            ] {
                assert!(!debug.contains(secret), "{secret} in {debug}");
            }
        }
    }

    #[test]
    fn admin_section_defaults_rules_and_disabling() {
        let minimal = parse_config(MINIMAL).unwrap();
        assert_eq!(
            minimal.admin_address(),
            Some("127.0.0.1:9464".parse().unwrap())
        );
        let base = with_name("n");
        let config =
            parse_config(&format!("{base}\n[admin]\naddress = \"0.0.0.0:19464\"\n")).unwrap();
        assert_eq!(
            config.admin_address(),
            Some("0.0.0.0:19464".parse().unwrap())
        );
        let config = parse_config(&format!("{base}\n[admin]\nenabled = false\n")).unwrap();
        assert_eq!(config.admin_address(), None);
        let errors = errors_of(&format!(
            "{base}\n[admin]\nenabled = \"yes\"\naddress = \"localhost\"\nport = 1\n"
        ));
        let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(text.len(), 3, "{text:?}");
        assert!(
            text.iter()
                .any(|e| e.contains("`admin.enabled`") && e.contains("true or false")),
            "{text:?}"
        );
        assert!(
            text.iter().any(|e| e.contains("`admin.address`")
                && e.contains("IP address and port")
                && e.contains("\"localhost\"")),
            "{text:?}"
        );
        assert!(
            text.iter()
                .any(|e| e.contains("`admin.port`") && e.contains("unknown key")),
            "{text:?}"
        );
        // The redacted rendering carries the section and parses back to the same address.
        let shown = config.to_redacted_toml();
        assert!(
            shown.contains("[admin]\nenabled = false\naddress = \"127.0.0.1:9464\""),
            "{shown}"
        );
        assert_eq!(parse_config(&shown).unwrap().admin_address(), None);
    }

    #[test]
    fn shipped_config_files_are_valid() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
        let mut checked = Vec::new();
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "toml") {
                if let Err(errors) = load_config(&path) {
                    panic!("{}:\n{errors}", path.display());
                }
                checked.push(path.file_name().unwrap().to_string_lossy().into_owned());
            }
        }
        checked.sort();
        assert!(
            checked.iter().any(|f| f == "connector.toml")
                && checked.iter().any(|f| f == "quickstart.toml"),
            "{checked:?}"
        );
    }

    #[test]
    fn quickstart_config_matches_the_local_stack() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/quickstart.toml");
        let s = load_config(&path).unwrap().into_settings(credentials());
        assert_eq!(s.connector_name, "quickstart");
        assert_eq!(s.source.bootstrap_servers, "127.0.0.1:19092");
        assert_eq!(s.source.topic, "oss-test-input");
        assert_eq!(s.source.start_offset, StartOffset::Earliest);
        assert_eq!(s.source.concurrency, 2);
        assert_eq!(
            s.source
                .client_properties
                .0
                .get("fetch.wait.max.ms")
                .map(String::as_str),
            Some("10")
        );
        assert_eq!(s.sink.bucket, "quickstart-bucket");
        assert_eq!(s.sink.endpoint.as_deref(), Some("http://127.0.0.1:19000"));
        assert_eq!(s.sink.key_prefix, "kafka/");
        assert!(s.sink.path_style);
        assert_eq!(s.batching.max_interval, Duration::from_secs(1));
        let admin = load_config(&path).unwrap().admin_address();
        assert_eq!(admin, Some("127.0.0.1:19464".parse().unwrap()));
    }

    #[test]
    fn connector_example_spells_out_every_default() {
        // connector.toml sets every key to its default, so it renders like the minimal file.
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/connector.toml");
        let example = load_config(&path).unwrap();
        let text = example.to_redacted_toml();
        for line in [
            "drain_timeout_ms = 30000",
            "start_offset = \"latest\"",
            "concurrency = 6",
            "region = \"oss-cn-hangzhou\"",
            "endpoint = \"https://s3.oss-cn-hangzhou.aliyuncs.com\"",
            "key_prefix = \"\"",
            "addressing = \"virtual_hosted\"",
            "part_size_bytes = 16777216",
            "checksum = \"when_required\"",
            "sign_payload = true",
            "upload_concurrency = 4",
            "request_timeout_ms = 30000",
            "retry_initial_backoff_ms = 200",
            "retry_max_backoff_ms = 30000",
            "max_records = 10000",
            "max_bytes = 16777216",
            "max_interval_ms = 10000",
            "seal_when_caught_up = true",
            "enabled = true",
            "address = \"127.0.0.1:9464\"",
            "max_upload_attempts = 10",
            "policy = \"log\"",
            "max_value_bytes = 0",
            "create = \"automatic\"",
            "offset_topic_partitions = 12",
            "status_topic_partitions = 6",
            "error_topic_partitions = 6",
            "replication_factor = -1",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
        assert_eq!(example.group_id(), format!("connect-{}", example.name()));
    }

    #[test]
    fn redacted_toml_round_trips_and_hides_secret_properties() {
        let text = r#"
name = "rt"
[source]
bootstrap_servers = "k:9092"
topic = "t"
group_id = "weird \"group\" \\ name"
[source.properties]
"sasl.password" = "kafka-pass-value"
"ssl.key.password" = "ssl-pass-value"
"sasl.oauthbearer.client.secret" = "oauth-secret-value"
"security.protocol" = "SASL_SSL"
"fetch.wait.max.ms" = 10
[sink]
bucket = "bkt"
endpoint = "http://127.0.0.1:19000"
key_prefix = "a/b/"
addressing = "path"
retry_initial_backoff_ms = 50
[batching]
max_interval_ms = 1000
"#;
        let config = parse_config(text).unwrap();
        let rendered = config.to_redacted_toml();
        for secret in ["kafka-pass-value", "ssl-pass-value", "oauth-secret-value"] {
            assert!(!rendered.contains(secret), "{rendered}");
        }
        assert!(
            rendered.contains("\"sasl.password\" = \"***\""),
            "{rendered}"
        );
        assert!(
            rendered.contains("\"security.protocol\" = \"SASL_SSL\""),
            "{rendered}"
        );

        let reparsed = parse_config(&rendered).unwrap_or_else(|e| panic!("{e}\n{rendered}"));
        assert_eq!(reparsed.to_redacted_toml(), rendered, "stable");
        let (a, b) = (
            config.into_settings(credentials()),
            reparsed.into_settings(credentials()),
        );
        assert_eq!(
            format!("{a:?}"),
            format!("{b:?}"),
            "same settings apart from redacted values"
        );
        assert_eq!(b.source.client_properties.0["sasl.password"], "***");
        assert_eq!(b.source.group_id, "weird \"group\" \\ name");

        // Without an endpoint and properties, too.
        let minimal = parse_config(MINIMAL).unwrap();
        let rendered = minimal.to_redacted_toml();
        let reparsed = parse_config(&rendered).unwrap_or_else(|e| panic!("{e}\n{rendered}"));
        assert_eq!(reparsed.to_redacted_toml(), rendered);
        assert!(reparsed
            .into_settings(credentials())
            .sink
            .endpoint
            .is_none());
    }
}
