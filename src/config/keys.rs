//! Every key of the config file, declared once: path, type, default, allowed values, rule and
//! what it is for.
//!
//! [`KEYS`] drives everything that needs the key list: the walker reads the file against it (so
//! an undeclared key is an unknown key, and "did you mean" suggests declared ones), `check`
//! renders the effective config in its order, and the tests below hold `config/connector.toml`
//! and `config/README.md` to it, both ways. Adding a key means declaring its `const` here and
//! listing it in [`KEYS`], reading it where the settings are built (`settings.rs`; a key that is
//! declared but not listed panics there in the unit tests), and documenting it in those two
//! files.
//!
//! The order of [`KEYS`] is the order of the file: top-level keys first, then each section
//! followed by its keys. Problems in a section are reported in this order too.

use super::rules::{self, StrRule};

mod credentials;
mod format;
pub(super) use credentials::*;
pub(super) use format::*;

/// One key of the file.
#[derive(Debug)]
pub(super) struct Key {
    /// Dotted path: `name`, `sink.bucket`; for a section, its header (`sink`).
    pub path: &'static str,
    pub kind: Kind,
}

impl Key {
    /// The last part of the path, as written in the file (`bucket` for `sink.bucket`).
    pub fn name(&self) -> &'static str {
        self.path
            .rsplit_once('.')
            .map_or(self.path, |(_, name)| name)
    }

    /// The section the key is written in; empty for the top level.
    pub fn section(&self) -> &'static str {
        self.path
            .rsplit_once('.')
            .map_or("", |(section, _)| section)
    }
}

/// The type of a key, with its default and the values it allows.
#[derive(Debug)]
pub(super) enum Kind {
    /// A `[section]`. An optional one that is missing is read as empty (all defaults).
    Section {
        required: bool,
    },
    /// A string that must pass `rule`.
    Str {
        default: StrDefault,
        rule: &'static StrRule,
    },
    Int(IntRule),
    Bool {
        default: bool,
    },
    /// One of `options`, by name.
    Choice {
        options: &'static [&'static str],
        default: &'static str,
    },
    /// Free-form librdkafka properties (`[source.properties]`), read by `properties.rs`. Written
    /// as a sub-table, so it must be the last key of its section.
    Properties,
}

/// What a string key is when the file does not set it.
#[derive(Debug)]
pub(super) enum StrDefault {
    /// An error: the file must set it.
    Required,
    /// No value; `check` shows `# <key> not set: <meaning>`.
    Unset {
        meaning: &'static str,
    },
    Fixed(&'static str),
    /// `<prefix><name>`: named after the connector (`connect-<name>`).
    FromName {
        prefix: &'static str,
    },
}

/// An integer from `min` to `max`.
#[derive(Debug)]
pub(super) struct IntRule {
    pub default: i64,
    pub min: i64,
    pub max: i64,
    /// A value inside the range that is still refused, with the rule the error gives instead.
    pub except: Option<(i64, &'static str)>,
    /// Another integer key of the same section this one must not be below. Checked once the
    /// section's keys are read, so its problems follow the section's own.
    pub at_least: Option<&'static Key>,
}

const fn int(default: i64, min: i64, max: i64) -> Kind {
    Kind::Int(IntRule {
        default,
        min,
        max,
        except: None,
        at_least: None,
    })
}

const fn string(default: StrDefault, rule: &'static StrRule) -> Kind {
    Kind::Str { default, rule }
}

const fn optional_section() -> Kind {
    Kind::Section { required: false }
}

const MIB: i64 = 1024 * 1024;
const GIB: i64 = 1024 * MIB;

/// Every key, in file order.
pub(super) const KEYS: &[&Key] = &[
    &NAME,
    &DRAIN_TIMEOUT_MS,
    &SOURCE,
    &SOURCE_BOOTSTRAP_SERVERS,
    &SOURCE_TOPIC,
    &SOURCE_START_OFFSET,
    &SOURCE_CONCURRENCY,
    &SOURCE_GROUP_ID,
    &SOURCE_ASSIGNMENT_STRATEGY,
    &SOURCE_SECRETS_DIR,
    &SOURCE_PROPERTIES,
    &SINK,
    &SINK_BUCKET,
    &SINK_ENDPOINT,
    &SINK_REGION,
    &SINK_KEY_PREFIX,
    &SINK_KEY_TEMPLATE,
    &SINK_KEY_TIME_ZONE,
    &SINK_KEY_FIELD,
    &SINK_KEY_FIELD_DEFAULT,
    &SINK_ADDRESSING,
    &SINK_PART_SIZE_BYTES,
    &SINK_CHECKSUM,
    &SINK_CONDITIONAL_CREATE,
    &SINK_SIGN_PAYLOAD,
    &SINK_UPLOAD_CONCURRENCY,
    &SINK_REQUEST_TIMEOUT_MS,
    &SINK_RETRY_INITIAL_BACKOFF_MS,
    &SINK_RETRY_MAX_BACKOFF_MS,
    &SINK_MAX_UPLOAD_ATTEMPTS,
    &SINK_CREDENTIALS,
    &SINK_CREDENTIALS_SOURCE,
    &SINK_CREDENTIALS_FILE,
    &SINK_CREDENTIALS_METADATA_URL,
    &SINK_CREDENTIALS_STS_ENDPOINT,
    &BATCHING,
    &BATCHING_MAX_RECORDS,
    &BATCHING_MAX_BYTES,
    &BATCHING_MAX_INTERVAL_MS,
    &BATCHING_SEAL_WHEN_CAUGHT_UP,
    &MEMORY,
    &MEMORY_MAX_BYTES,
    &FORMAT,
    &FORMAT_TYPE,
    &FORMAT_COMPRESSION,
    &FORMAT_COMPRESSION_LEVEL,
    &FORMAT_BINARY,
    &FORMAT_HEADERS,
    &FORMAT_PARQUET_COMPRESSION,
    &FORMAT_PARQUET_ROW_GROUP_RECORDS,
    &FORMAT_PARQUET_ROW_GROUP_BYTES,
    &FAILURE,
    &FAILURE_POLICY,
    &FAILURE_MAX_VALUE_BYTES,
    &RESOURCES,
    &RESOURCES_CREATE,
    &RESOURCES_OFFSET_TOPIC,
    &RESOURCES_OFFSET_TOPIC_PARTITIONS,
    &RESOURCES_CONFIG_TOPIC,
    &RESOURCES_STATUS_TOPIC,
    &RESOURCES_STATUS_TOPIC_PARTITIONS,
    &RESOURCES_ABNORMAL_TOPIC,
    &RESOURCES_DEAD_LETTER_TOPIC,
    &RESOURCES_ERROR_TOPIC_PARTITIONS,
    &RESOURCES_REPLICATION_FACTOR,
    &ADMIN,
    &ADMIN_ENABLED,
    &ADMIN_ADDRESS,
    &ADMIN_TOKEN_FILE,
];

/// The keys written in `section` (empty: the top level), in file order.
pub(super) fn in_section(section: &str) -> impl Iterator<Item = &'static Key> + '_ {
    KEYS.iter()
        .copied()
        .filter(move |key| key.section() == section)
}

// ---------------------------------------------------------------------------------------------
// Top level.

/// Connector name, shown in logs; the consumer group and the connector's topics are named after it.
pub(super) const NAME: Key = Key {
    path: "name",
    kind: string(StrDefault::Required, &rules::CONNECTOR_NAME),
};
/// How long a graceful shutdown or a partition revocation may take to upload buffered records.
pub(super) const DRAIN_TIMEOUT_MS: Key = Key {
    path: "drain_timeout_ms",
    kind: int(30_000, 1_000, 600_000),
};

// ---------------------------------------------------------------------------------------------
// [source]: Kafka.

/// Kafka: the brokers, the topic to copy and the consumer group.
pub(super) const SOURCE: Key = Key {
    path: "source",
    kind: Kind::Section { required: true },
};
/// Kafka brokers to bootstrap from.
pub(super) const SOURCE_BOOTSTRAP_SERVERS: Key = Key {
    path: "source.bootstrap_servers",
    kind: string(StrDefault::Required, &rules::BOOTSTRAP_SERVERS),
};
/// The topic to copy.
pub(super) const SOURCE_TOPIC: Key = Key {
    path: "source.topic",
    kind: string(StrDefault::Required, &rules::TOPIC_NAME),
};
/// Where to start in a partition the consumer group has no committed offset for.
pub(super) const SOURCE_START_OFFSET: Key = Key {
    path: "source.start_offset",
    kind: Kind::Choice {
        options: &["latest", "earliest"],
        default: "latest",
    },
};
/// Threads the partition actors are spread over (the product offers 6 or 12).
pub(super) const SOURCE_CONCURRENCY: Key = Key {
    path: "source.concurrency",
    kind: int(6, 1, 64),
};
/// Kafka consumer group; committed offsets live there.
pub(super) const SOURCE_GROUP_ID: Key = Key {
    path: "source.group_id",
    kind: string(
        StrDefault::FromName { prefix: "connect-" },
        &rules::GROUP_ID,
    ),
};
/// How the group's partitions are spread over the connector's instances (librdkafka's
/// `partition.assignment.strategy`); cooperative by default, so that an instance joining or
/// leaving stops only the partitions that move.
pub(super) const SOURCE_ASSIGNMENT_STRATEGY: Key = Key {
    path: "source.assignment_strategy",
    kind: Kind::Choice {
        options: &["cooperative-sticky", "range", "roundrobin"],
        default: "cooperative-sticky",
    },
};
/// A directory holding the Kafka clients' secrets, one file per librdkafka property, named
/// after it (`sasl.password`): what a mounted Kubernetes Secret or systemd's `LoadCredential=`
/// looks like. The environment's `KAFKA_SASL_PASSWORD` (...) are the other source.
pub(super) const SOURCE_SECRETS_DIR: Key = Key {
    path: "source.secrets_dir",
    kind: string(
        StrDefault::Unset {
            meaning: "the Kafka secrets (sasl.password, ...) come from the environment only (KAFKA_SASL_PASSWORD, ...)",
        },
        &rules::NON_EMPTY,
    ),
};
/// librdkafka consumer properties, passed through as strings (SASL/SSL settings go here).
pub(super) const SOURCE_PROPERTIES: Key = Key {
    path: "source.properties",
    kind: Kind::Properties,
};

// ---------------------------------------------------------------------------------------------
// [sink]: the object store.

/// The object store: bucket, endpoint, addressing and how uploads are made and retried.
pub(super) const SINK: Key = Key {
    path: "sink",
    kind: Kind::Section { required: true },
};
/// Target bucket.
pub(super) const SINK_BUCKET: Key = Key {
    path: "sink.bucket",
    kind: string(StrDefault::Required, &rules::BUCKET_NAME),
};
/// S3-compatible endpoint URL.
pub(super) const SINK_ENDPOINT: Key = Key {
    path: "sink.endpoint",
    kind: string(
        StrDefault::Unset {
            meaning: "the AWS endpoint of the region",
        },
        &rules::ENDPOINT_URL,
    ),
};
/// Region used for request signing.
pub(super) const SINK_REGION: Key = Key {
    path: "sink.region",
    kind: string(StrDefault::Fixed("us-east-1"), &rules::NON_EMPTY),
};
/// Prepended to every object key.
pub(super) const SINK_KEY_PREFIX: Key = Key {
    path: "sink.key_prefix",
    kind: string(StrDefault::Fixed(""), &rules::KEY_PREFIX),
};
/// Where objects land under the prefix; checked with the three keys below and the prefix by
/// `walk.rs` (`check_key_template`), which names the key at fault.
pub(super) const SINK_KEY_TEMPLATE: Key = Key {
    path: "sink.key_template",
    kind: string(
        StrDefault::Fixed(actors::key_template::DEFAULT_TEMPLATE),
        &rules::NON_EMPTY,
    ),
};
/// The time zone of the template's time parts.
pub(super) const SINK_KEY_TIME_ZONE: Key = Key {
    path: "sink.key_time_zone",
    kind: string(StrDefault::Fixed("UTC"), &rules::NON_EMPTY),
};
/// The record field `{field}` renders; empty: none.
pub(super) const SINK_KEY_FIELD: Key = Key {
    path: "sink.key_field",
    kind: string(StrDefault::Fixed(""), &rules::ANY),
};
/// `{field}` of a record that lacks the field.
pub(super) const SINK_KEY_FIELD_DEFAULT: Key = Key {
    path: "sink.key_field_default",
    kind: string(StrDefault::Fixed("none"), &rules::NON_EMPTY),
};
/// Bucket in the host name (OSS, AWS) or in the path (local servers).
pub(super) const SINK_ADDRESSING: Key = Key {
    path: "sink.addressing",
    kind: Kind::Choice {
        options: &["virtual_hosted", "path"],
        default: "virtual_hosted",
    },
};
/// Objects larger than this are uploaded in parts of this size.
pub(super) const SINK_PART_SIZE_BYTES: Key = Key {
    path: "sink.part_size_bytes",
    kind: int(16 * MIB, 5 * MIB, 5 * GIB),
};
/// Which request checksums the S3 client sends (OSS rejects the optional ones).
pub(super) const SINK_CHECKSUM: Key = Key {
    path: "sink.checksum",
    kind: Kind::Choice {
        options: &["when_required", "when_supported"],
        default: "when_required",
    },
};
/// How uploads avoid overwriting an object: `auto` picks OSS's header for `*.aliyuncs.com`
/// endpoints and `If-None-Match` otherwise.
pub(super) const SINK_CONDITIONAL_CREATE: Key = Key {
    path: "sink.conditional_create",
    kind: Kind::Choice {
        options: &["auto", "if_none_match", "oss_forbid_overwrite", "off"],
        default: "auto",
    },
};
/// Whether the signature covers each upload body's SHA-256; OSS's S3 API asks for it on PUT and
/// POST, hence signed unless switched off.
pub(super) const SINK_SIGN_PAYLOAD: Key = Key {
    path: "sink.sign_payload",
    kind: Kind::Bool { default: true },
};
/// Uploads in flight at once.
pub(super) const SINK_UPLOAD_CONCURRENCY: Key = Key {
    path: "sink.upload_concurrency",
    kind: int(4, 1, 256),
};
/// Timeout of one HTTP attempt.
pub(super) const SINK_REQUEST_TIMEOUT_MS: Key = Key {
    path: "sink.request_timeout_ms",
    kind: int(30_000, 1_000, 600_000),
};
/// First delay before retrying a failed upload; it doubles up to the cap below.
pub(super) const SINK_RETRY_INITIAL_BACKOFF_MS: Key = Key {
    path: "sink.retry_initial_backoff_ms",
    kind: int(200, 10, 60_000),
};
/// Cap of the retry delay.
pub(super) const SINK_RETRY_MAX_BACKOFF_MS: Key = Key {
    path: "sink.retry_max_backoff_ms",
    kind: Kind::Int(IntRule {
        default: 30_000,
        min: 10,
        max: 600_000,
        except: None,
        at_least: Some(&SINK_RETRY_INITIAL_BACKOFF_MS),
    }),
};
/// Upload attempts per object before the failure policy applies to its records; 0: unlimited.
pub(super) const SINK_MAX_UPLOAD_ATTEMPTS: Key = Key {
    path: "sink.max_upload_attempts",
    kind: int(10, 0, 1_000_000),
};

// ---------------------------------------------------------------------------------------------
// [batching]: when an object is sealed (the first limit reached).

/// When a partition's open object is sealed: whichever limit is reached first.
pub(super) const BATCHING: Key = Key {
    path: "batching",
    kind: optional_section(),
};
/// Records per object.
pub(super) const BATCHING_MAX_RECORDS: Key = Key {
    path: "batching.max_records",
    kind: int(10_000, 1, 10_000_000),
};
/// Bytes per object (encoded size, before compression).
pub(super) const BATCHING_MAX_BYTES: Key = Key {
    path: "batching.max_bytes",
    kind: int(16 * MIB, 1_024, 5 * GIB),
};
/// Time between the first record of an object and its sealing.
pub(super) const BATCHING_MAX_INTERVAL_MS: Key = Key {
    path: "batching.max_interval_ms",
    kind: int(10_000, 100, 86_400_000),
};
/// Seal a backlog's last object as soon as its partition is caught up.
pub(super) const BATCHING_SEAL_WHEN_CAUGHT_UP: Key = Key {
    path: "batching.seal_when_caught_up",
    kind: Kind::Bool { default: true },
};

// ---------------------------------------------------------------------------------------------
// [memory]: one budget for the record data the process holds.

/// The memory budget.
pub(super) const MEMORY: Key = Key {
    path: "memory",
    kind: optional_section(),
};
/// Bytes of record data held at once: librdkafka's pre-fetch, chunks, open, sealed and
/// uploading objects, pooled buffers. At least `MEMORY_MIN_OBJECTS` of the largest object
/// (checked by the walker against `batching.max_bytes` and `sink.part_size_bytes`).
pub(super) const MEMORY_MAX_BYTES: Key = Key {
    path: "memory.max_bytes",
    kind: int(128 * MIB, 16 * MIB, 1024 * GIB),
};
/// `memory.max_bytes` must hold this many of the largest object (`batching.max_bytes`) or part
/// (`sink.part_size_bytes`): the buffer share (three quarters) then holds an object being
/// uploaded, one sealed and one filling. Where objects stream out part by part (the JSON formats
/// with `batching.max_bytes` of at least `actors::staging::STREAM_MIN_PARTS` parts), this many
/// parts.
pub(super) const MEMORY_MIN_OBJECTS: i64 = 4;

// ---------------------------------------------------------------------------------------------
// [failure]: the product page's "Failure Handling Policy".

/// What happens to records that cannot be delivered.
pub(super) const FAILURE: Key = Key {
    path: "failure",
    kind: optional_section(),
};
/// `log`: failed records go to the error topics; `fail`: the partition stops until resumed.
pub(super) const FAILURE_POLICY: Key = Key {
    path: "failure.policy",
    kind: Kind::Choice {
        options: &["log", "fail"],
        default: "log",
    },
};
/// Larger values are written as `null` with `overflowFlag`; 0: no limit.
pub(super) const FAILURE_MAX_VALUE_BYTES: Key = Key {
    path: "failure.max_value_bytes",
    kind: int(0, 0, 5 * GIB),
};

// ---------------------------------------------------------------------------------------------
// [resources]: the connector's own topics (the product page's "Create Resource" step).

/// The connector's own topics, and whether it creates them.
pub(super) const RESOURCES: Key = Key {
    path: "resources",
    kind: optional_section(),
};
/// Create missing topics, or only check that they are there.
pub(super) const RESOURCES_CREATE: Key = Key {
    path: "resources.create",
    kind: Kind::Choice {
        options: &["automatic", "manual"],
        default: "automatic",
    },
};
/// Compacted topic reserved for exactly-once bookkeeping.
pub(super) const RESOURCES_OFFSET_TOPIC: Key = Key {
    path: "resources.offset_topic",
    kind: string(
        StrDefault::FromName {
            prefix: "connect-offset-",
        },
        &rules::TOPIC_NAME,
    ),
};
/// Partitions of the offsets topic when created (more than 1).
pub(super) const RESOURCES_OFFSET_TOPIC_PARTITIONS: Key = Key {
    path: "resources.offset_topic_partitions",
    kind: int(12, 2, 10_000),
};
/// Compacted one-partition topic holding the effective config, secrets redacted.
pub(super) const RESOURCES_CONFIG_TOPIC: Key = Key {
    path: "resources.config_topic",
    kind: string(
        StrDefault::FromName {
            prefix: "connect-config-",
        },
        &rules::TOPIC_NAME,
    ),
};
/// Compacted topic of connector and partition state changes.
pub(super) const RESOURCES_STATUS_TOPIC: Key = Key {
    path: "resources.status_topic",
    kind: string(
        StrDefault::FromName {
            prefix: "connect-status-",
        },
        &rules::TOPIC_NAME,
    ),
};
/// Partitions of the status topic when created.
pub(super) const RESOURCES_STATUS_TOPIC_PARTITIONS: Key = Key {
    path: "resources.status_topic_partitions",
    kind: int(6, 1, 10_000),
};
/// Records of objects the bucket refused (`log` policy).
pub(super) const RESOURCES_ABNORMAL_TOPIC: Key = Key {
    path: "resources.abnormal_topic",
    kind: string(
        StrDefault::FromName {
            prefix: "connect-error-",
        },
        &rules::TOPIC_NAME,
    ),
};
/// Records that cannot be converted, and oversize records (`log` policy).
pub(super) const RESOURCES_DEAD_LETTER_TOPIC: Key = Key {
    path: "resources.dead_letter_topic",
    kind: string(
        StrDefault::FromName {
            prefix: "connect-error-",
        },
        &rules::TOPIC_NAME,
    ),
};
/// Partitions of the error topics when created.
pub(super) const RESOURCES_ERROR_TOPIC_PARTITIONS: Key = Key {
    path: "resources.error_topic_partitions",
    kind: int(6, 1, 10_000),
};
/// Replication factor of created topics; -1: the broker's default (0 means nothing to Kafka).
pub(super) const RESOURCES_REPLICATION_FACTOR: Key = Key {
    path: "resources.replication_factor",
    kind: Kind::Int(IntRule {
        default: -1,
        min: -1,
        max: 32,
        except: Some((0, "must be -1 (the broker's default) or from 1 to 32")),
        at_least: None,
    }),
};

// ---------------------------------------------------------------------------------------------
// [admin]: /metrics, /healthz, /readyz, /status and the partition commands.

/// The admin HTTP server.
pub(super) const ADMIN: Key = Key {
    path: "admin",
    kind: optional_section(),
};
/// false: no admin server and no metrics.
pub(super) const ADMIN_ENABLED: Key = Key {
    path: "admin.enabled",
    kind: Kind::Bool { default: true },
};
/// Where the admin server listens; loopback only by default, Prometheus exporters' usual port.
pub(super) const ADMIN_ADDRESS: Key = Key {
    path: "admin.address",
    kind: string(StrDefault::Fixed("127.0.0.1:9464"), &rules::SOCKET_ADDRESS),
};
/// A file holding the bearer token the mutating admin routes require; required when
/// `admin.address` is not loopback.
pub(super) const ADMIN_TOKEN_FILE: Key = Key {
    path: "admin.token_file",
    kind: string(
        StrDefault::Unset {
            meaning: "no token; the pause, resume and restart routes are open, which is allowed on a loopback address only",
        },
        &rules::NON_EMPTY,
    ),
};

/// The table is consistent, and `config/connector.toml` and `config/README.md` document exactly
/// its keys.
#[cfg(test)]
mod tests;
