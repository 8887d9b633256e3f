//! Validated settings the pipeline is built from.
//!
//! The binary's `config` module parses and validates the TOML file and converts it into these
//! types; the actor crate never sees the file format. Every value here has already been checked,
//! so the pipeline does not re-validate.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

/// Everything one connector instance needs to run.
#[derive(Debug, Clone)]
pub struct PipelineSettings {
    /// Connector name (1 to 48 of `[a-z0-9-]`, not starting with `-`).
    pub connector_name: String,
    pub source: SourceSettings,
    pub sink: SinkSettings,
    pub batching: RollPolicy,
    /// `memory.max_bytes`: the budget for all record data the process holds
    /// ([`crate::memory::MemoryBudget`]).
    pub memory_max_bytes: usize,
    /// How long a graceful shutdown or a revocation may take to upload what is buffered.
    pub drain_timeout: Duration,
    pub failure: FailureSettings,
    pub resources: ResourceSettings,
    /// How objects are written (`[format]`).
    pub format: FormatSettings,
    /// The effective config as TOML with every secret redacted, written to the config topic.
    pub redacted_config: String,
}

/// What happens to a partition when one of its records cannot be delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailurePolicy {
    /// The partition keeps going; failed records go to the dead-letter or abnormal-data topic.
    Log,
    /// The partition stops at the first failed record until it is resumed.
    Fail,
}

impl FailurePolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            FailurePolicy::Log => "log",
            FailurePolicy::Fail => "fail",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailureSettings {
    pub policy: FailurePolicy,
    /// Values larger than this (bytes) are written as `null` with `overflowFlag: true` and the
    /// whole record also goes to the dead-letter topic. `None`: no limit.
    pub max_value_bytes: Option<usize>,
}

/// How records are written into objects (`[format]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FormatSettings {
    pub kind: FormatKind,
    /// Whole-object compression of the JSON formats (Parquet compresses its pages instead).
    pub compression: Compression,
    pub binary: BinaryMode,
    /// Records carry their headers.
    pub headers: bool,
    pub parquet: ParquetSettings,
}

/// The file format of an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FormatKind {
    /// The product page's `[{...},{...}]`.
    #[default]
    JsonArray,
    /// One JSON object per line.
    Jsonl,
    Parquet,
}

/// Whole-object compression, applied while records are encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compression {
    #[default]
    None,
    /// Level 1 to 9.
    Gzip { level: u32 },
    /// Level 1 to 22.
    Zstd { level: i32 },
}

/// What a key or value that is not valid UTF-8 becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BinaryMode {
    /// The record goes to the dead-letter topic (the product page's rule).
    #[default]
    DeadLetter,
    /// Written base64-encoded, with `keyEncoding`/`valueEncoding: "base64"` beside it.
    Base64,
    /// Parquet only: `key` and `value` are binary columns holding the bytes as they are.
    Bytes,
}

/// Parquet page compression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParquetCompression {
    /// Level 1 to 22.
    Zstd {
        level: i32,
    },
    Snappy,
    None,
}

/// How Parquet files are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParquetSettings {
    pub compression: ParquetCompression,
    /// A row group is written once it holds this many records ...
    pub row_group_records: usize,
    /// ... or this many bytes of keys, values and headers, whichever comes first.
    pub row_group_bytes: usize,
}

impl Default for ParquetSettings {
    fn default() -> Self {
        ParquetSettings {
            compression: ParquetCompression::Zstd { level: 1 },
            row_group_records: 100_000,
            row_group_bytes: 8 * 1024 * 1024,
        }
    }
}

/// Whether the connector creates its Kafka-side resources or only checks them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CreateMode {
    Automatic,
    Manual,
}

/// The connector's own topics (the product page's "Create Resource" step).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceSettings {
    pub create: CreateMode,
    /// Compacted, several partitions; reserved for exactly-once bookkeeping.
    pub offset_topic: String,
    pub offset_topic_partitions: i32,
    /// Compacted, one partition: the effective config (secrets redacted).
    pub config_topic: String,
    /// Compacted: connector and partition state changes.
    pub status_topic: String,
    pub status_topic_partitions: i32,
    /// Records of objects the bucket refused (runtime errors), `log` policy.
    pub abnormal_topic: String,
    /// Records that cannot be converted (UTF-8, oversize), `log` policy.
    pub dead_letter_topic: String,
    pub error_topic_partitions: i32,
    /// Replication factor of created topics; `-1` uses the broker's default.
    pub replication_factor: i32,
}

/// Where consumption starts when the group has no committed offset for a partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartOffset {
    Latest,
    Earliest,
}

impl StartOffset {
    /// The librdkafka `auto.offset.reset` value.
    pub fn as_auto_offset_reset(self) -> &'static str {
        match self {
            StartOffset::Latest => "latest",
            StartOffset::Earliest => "earliest",
        }
    }
}

/// How the group's partitions are spread over its members (librdkafka's
/// `partition.assignment.strategy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AssignmentStrategy {
    /// Incremental (cooperative) rebalancing: only the partitions that move are revoked; the
    /// others keep flowing while a member joins or leaves.
    CooperativeSticky,
    /// Eager: every rebalance revokes every partition of every member first.
    Range,
    /// Eager, like `Range`.
    RoundRobin,
}

impl AssignmentStrategy {
    /// The librdkafka `partition.assignment.strategy` value.
    pub fn as_librdkafka(self) -> &'static str {
        match self {
            AssignmentStrategy::CooperativeSticky => "cooperative-sticky",
            AssignmentStrategy::Range => "range",
            AssignmentStrategy::RoundRobin => "roundrobin",
        }
    }
}

/// The Kafka side.
#[derive(Debug, Clone)]
pub struct SourceSettings {
    pub bootstrap_servers: String,
    pub topic: String,
    /// `connect-<name>` unless overridden.
    pub group_id: String,
    pub start_offset: StartOffset,
    /// How partitions are spread over the group's members.
    pub assignment: AssignmentStrategy,
    /// Number of threads (actix arbiters) the partition actors are spread over.
    pub concurrency: usize,
    /// librdkafka properties passed through as they are. Values may be secrets
    /// (`sasl.password`), so `Debug` prints only the keys.
    pub client_properties: ClientProperties,
}

/// Pass-through librdkafka properties; `Debug` never prints values.
#[derive(Clone, Default)]
pub struct ClientProperties(pub BTreeMap<String, String>);

impl fmt::Debug for ClientProperties {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

/// Which request checksums the S3 client sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChecksumMode {
    /// Only when the operation requires one (works with OSS and other S3-compatible stores).
    WhenRequired,
    /// Whenever the operation supports one (AWS's default since 2025; OSS rejects it).
    WhenSupported,
}

/// How an upload avoids overwriting an object that is already there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConditionalCreate {
    /// `If-None-Match: *` (AWS S3 since 2024, MinIO, most S3-compatible servers).
    IfNoneMatch,
    /// `x-oss-forbid-overwrite: true` (Alibaba OSS, whose S3 API answers `If-None-Match` with 501).
    OssForbidOverwrite,
    /// No conditional header: deterministic keys and recovery by listing still apply, but a
    /// late writer (a zombie member) could replace an object.
    Off,
}

/// The object-store side.
#[derive(Debug, Clone)]
pub struct SinkSettings {
    pub bucket: String,
    /// `None` uses the AWS endpoint of `region`.
    pub endpoint: Option<String>,
    pub region: String,
    /// Prepended to every object key; empty or ending with `/`.
    pub key_prefix: String,
    /// Where objects land under `key_prefix` (`sink.key_template`, validated).
    pub key_template: crate::key_template::KeyTemplate,
    /// `true` for path-style addressing (local servers), `false` for virtual-hosted (OSS, AWS).
    pub path_style: bool,
    /// Objects larger than this go up as multipart uploads with parts of this size.
    pub part_size: usize,
    pub checksum: ChecksumMode,
    pub conditional_create: ConditionalCreate,
    /// `true`: the request signature covers the body's SHA-256 (SigV4 default). `false`: sent as
    /// `UNSIGNED-PAYLOAD`, which saves hashing every byte; use it over HTTPS, where TLS protects
    /// the body.
    pub sign_payload: bool,
    /// Number of uploader actors, i.e. uploads in flight at once.
    pub upload_concurrency: usize,
    /// Timeout of one HTTP attempt.
    pub request_timeout: Duration,
    /// First delay of the uploader's own retry loop (after the SDK's attempts are spent).
    pub retry_initial_backoff: Duration,
    /// Cap of that delay.
    pub retry_max_backoff: Duration,
    /// Upload attempts (each with the SDK's own quick retries) before the failure policy applies
    /// to the object's records. `None`: retry until the bucket accepts the object.
    pub max_upload_attempts: Option<u32>,
    /// Where the object store's AccessKey pair comes from.
    pub credentials: CredentialSource,
}

/// When a partition's open object is sealed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RollPolicy {
    pub max_records: usize,
    pub max_bytes: usize,
    pub max_interval: Duration,
    /// Seal the open object as soon as the partition is caught up (queue empty, high watermark
    /// reached) after it was behind by a full object (`max_records` records, or `max_bytes` bytes
    /// of keys and values, read since it was last caught up) or for `max_interval`: the tail of a
    /// backlog does not wait for the interval.
    pub seal_when_caught_up: bool,
}

/// A secret string: never printed by `Debug` or `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Self {
        Secret(value)
    }
    /// The only way to read the value. Call it where the value is handed to a client, nowhere else.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"***\"")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Where the object store's credentials come from (`[sink.credentials]`). None of these hold a
/// secret that `Debug` would show: the static pair is [`Secret`]s, the others are places.
#[derive(Debug, Clone)]
pub enum CredentialSource {
    /// A long-lived AccessKey pair from the environment, used as it is until the process ends.
    Static(Credentials),
    /// A JSON file (`AccessKeyId`, `AccessKeySecret`, optional `SecurityToken` and `Expiration`)
    /// re-read when its modification time or size changes (checked at most once a second).
    File { path: std::path::PathBuf },
    /// The ECS instance's RAM role, from its metadata service at `metadata_url` (the role name
    /// is looked up there when `role` is `None`).
    EcsRamRole {
        metadata_url: String,
        role: Option<String>,
    },
    /// RRSA on ACK: `AssumeRoleWithOIDC` at `sts_endpoint` with the OIDC token in `token_file`
    /// (re-read for each call: the kubelet rotates it).
    Rrsa {
        role_arn: String,
        oidc_provider_arn: String,
        token_file: std::path::PathBuf,
        sts_endpoint: String,
        session_name: String,
    },
}

impl From<Credentials> for CredentialSource {
    fn from(credentials: Credentials) -> Self {
        CredentialSource::Static(credentials)
    }
}

/// An AccessKey pair (and optional STS token). From the environment it is read once; the other
/// [`CredentialSource`]s produce new ones while running.
#[derive(Debug, Clone)]
pub struct Credentials {
    /// Redacted too: an AccessKey ID identifies the account.
    pub access_key_id: Secret,
    pub access_key_secret: Secret,
    pub session_token: Option<Secret>,
}
