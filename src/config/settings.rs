//! From the file's effective values to the actor crate's validated settings types.
//!
//! The actor crate never sees the file format ([`actors::settings`] defines what it needs); this
//! is the one place that knows both. Units and encodings change here: milliseconds become
//! [`Duration`](std::time::Duration)s, "0 means unlimited" becomes `None`, choice names become enums.

use actors::settings::{
    AssignmentStrategy, BinaryMode, ChecksumMode, Compression, ConditionalCreate, CreateMode,
    CredentialSource, FailurePolicy, FailureSettings, FormatKind, FormatSettings,
    ParquetCompression, ParquetSettings, PipelineSettings, ResourceSettings, RollPolicy,
    SinkSettings, SourceSettings, StartOffset,
};

use super::keys::*;
use super::values::Values;

/// The whole pipeline's settings.
pub(super) fn pipeline(
    values: &Values,
    credentials: CredentialSource,
    redacted_config: String,
) -> PipelineSettings {
    let format = format(values);
    PipelineSettings {
        connector_name: values.string(&NAME),
        source: source(values),
        sink: sink(values, credentials, &format),
        batching: batching(values),
        memory_max_bytes: values.size(&MEMORY_MAX_BYTES),
        drain_timeout: values.millis(&DRAIN_TIMEOUT_MS),
        failure: failure(values),
        format,
        resources: resources(values),
        redacted_config,
    }
}

/// `[source]`.
pub(super) fn source(values: &Values) -> SourceSettings {
    SourceSettings {
        bootstrap_servers: values.string(&SOURCE_BOOTSTRAP_SERVERS),
        topic: values.string(&SOURCE_TOPIC),
        group_id: values.string(&SOURCE_GROUP_ID),
        start_offset: values.choice(
            &SOURCE_START_OFFSET,
            &[
                ("latest", StartOffset::Latest),
                ("earliest", StartOffset::Earliest),
            ],
        ),
        assignment: values.choice(
            &SOURCE_ASSIGNMENT_STRATEGY,
            &[
                ("cooperative-sticky", AssignmentStrategy::CooperativeSticky),
                ("range", AssignmentStrategy::Range),
                ("roundrobin", AssignmentStrategy::RoundRobin),
            ],
        ),
        concurrency: values.size(&SOURCE_CONCURRENCY),
        client_properties: values.properties(&SOURCE_PROPERTIES).clone(),
    }
}

/// `[sink]`, with the credentials' source (`[sink.credentials]`, resolved against the environment).
fn sink(values: &Values, credentials: CredentialSource, format: &FormatSettings) -> SinkSettings {
    SinkSettings {
        bucket: values.string(&SINK_BUCKET),
        endpoint: values.optional_str(&SINK_ENDPOINT).map(str::to_owned),
        region: values.string(&SINK_REGION),
        key_prefix: values.string(&SINK_KEY_PREFIX),
        // Validated by the walk.
        // `{ext}` is the format's extension (`.json`, `.jsonl.zst`, `.parquet`, ...).
        key_template: super::walk::key_template(values)
            .unwrap_or_default()
            .with_ext(actors::object_key::BodyFormat::of(format).extension()),
        path_style: values.choice(
            &SINK_ADDRESSING,
            &[("virtual_hosted", false), ("path", true)],
        ),
        part_size: values.size(&SINK_PART_SIZE_BYTES),
        checksum: values.choice(
            &SINK_CHECKSUM,
            &[
                ("when_required", ChecksumMode::WhenRequired),
                ("when_supported", ChecksumMode::WhenSupported),
            ],
        ),
        conditional_create: match values.choice(
            &SINK_CONDITIONAL_CREATE,
            &[
                ("auto", None),
                ("if_none_match", Some(ConditionalCreate::IfNoneMatch)),
                (
                    "oss_forbid_overwrite",
                    Some(ConditionalCreate::OssForbidOverwrite),
                ),
                ("off", Some(ConditionalCreate::Off)),
            ],
        ) {
            Some(mode) => mode,
            None => conditional_create_for(values.optional_str(&SINK_ENDPOINT)),
        },
        sign_payload: values.bool(&SINK_SIGN_PAYLOAD),
        upload_concurrency: values.size(&SINK_UPLOAD_CONCURRENCY),
        request_timeout: values.millis(&SINK_REQUEST_TIMEOUT_MS),
        retry_initial_backoff: values.millis(&SINK_RETRY_INITIAL_BACKOFF_MS),
        retry_max_backoff: values.millis(&SINK_RETRY_MAX_BACKOFF_MS),
        max_upload_attempts: match values.int(&SINK_MAX_UPLOAD_ATTEMPTS) {
            0 => None,
            attempts => Some(u32::try_from(attempts).unwrap_or(u32::MAX)),
        },
        credentials,
    }
}

/// `sink.conditional_create = "auto"`: OSS's own header for an OSS endpoint (its S3 API
/// answers `If-None-Match` with 501), the standard one for every other store.
fn conditional_create_for(endpoint: Option<&str>) -> ConditionalCreate {
    let host = endpoint
        .and_then(|url| url.split("://").nth(1))
        .and_then(|rest| rest.split(['/', ':']).next())
        .unwrap_or("");
    if host.ends_with(".aliyuncs.com") || host == "aliyuncs.com" {
        ConditionalCreate::OssForbidOverwrite
    } else {
        ConditionalCreate::IfNoneMatch
    }
}

/// `[batching]`.
fn batching(values: &Values) -> RollPolicy {
    RollPolicy {
        max_records: values.size(&BATCHING_MAX_RECORDS),
        max_bytes: values.size(&BATCHING_MAX_BYTES),
        max_interval: values.millis(&BATCHING_MAX_INTERVAL_MS),
        seal_when_caught_up: values.bool(&BATCHING_SEAL_WHEN_CAUGHT_UP),
    }
}

/// `[format]` (the walker checked the keys against each other).
fn format(values: &Values) -> FormatSettings {
    let level = values.int(&FORMAT_COMPRESSION_LEVEL);
    FormatSettings {
        kind: values.choice(
            &FORMAT_TYPE,
            &[
                ("json_array", FormatKind::JsonArray),
                ("jsonl", FormatKind::Jsonl),
                ("parquet", FormatKind::Parquet),
            ],
        ),
        compression: match values.str(&FORMAT_COMPRESSION) {
            "gzip" => Compression::Gzip {
                level: if level == 0 { 6 } else { level as u32 },
            },
            "zstd" => Compression::Zstd {
                level: if level == 0 { 1 } else { level as i32 },
            },
            _ => Compression::None,
        },
        binary: values.choice(
            &FORMAT_BINARY,
            &[
                ("dead_letter", BinaryMode::DeadLetter),
                ("base64", BinaryMode::Base64),
                ("bytes", BinaryMode::Bytes),
            ],
        ),
        headers: values.bool(&FORMAT_HEADERS),
        parquet: ParquetSettings {
            compression: values.choice(
                &FORMAT_PARQUET_COMPRESSION,
                &[
                    (
                        "zstd",
                        ParquetCompression::Zstd {
                            level: if level == 0 { 1 } else { level as i32 },
                        },
                    ),
                    ("snappy", ParquetCompression::Snappy),
                    ("none", ParquetCompression::None),
                ],
            ),
            row_group_records: values.size(&FORMAT_PARQUET_ROW_GROUP_RECORDS),
            row_group_bytes: values.size(&FORMAT_PARQUET_ROW_GROUP_BYTES),
        },
    }
}

/// `[failure]`.
fn failure(values: &Values) -> FailureSettings {
    FailureSettings {
        policy: values.choice(
            &FAILURE_POLICY,
            &[("log", FailurePolicy::Log), ("fail", FailurePolicy::Fail)],
        ),
        max_value_bytes: match values.size(&FAILURE_MAX_VALUE_BYTES) {
            0 => None,
            limit => Some(limit),
        },
    }
}

/// `[resources]`.
fn resources(values: &Values) -> ResourceSettings {
    // Partition counts and the replication factor are at most 10000.
    let int32 = |key: &Key| i32::try_from(values.int(key)).unwrap_or(i32::MAX);
    ResourceSettings {
        create: values.choice(
            &RESOURCES_CREATE,
            &[
                ("automatic", CreateMode::Automatic),
                ("manual", CreateMode::Manual),
            ],
        ),
        offset_topic: values.string(&RESOURCES_OFFSET_TOPIC),
        offset_topic_partitions: int32(&RESOURCES_OFFSET_TOPIC_PARTITIONS),
        config_topic: values.string(&RESOURCES_CONFIG_TOPIC),
        status_topic: values.string(&RESOURCES_STATUS_TOPIC),
        status_topic_partitions: int32(&RESOURCES_STATUS_TOPIC_PARTITIONS),
        abnormal_topic: values.string(&RESOURCES_ABNORMAL_TOPIC),
        dead_letter_topic: values.string(&RESOURCES_DEAD_LETTER_TOPIC),
        error_topic_partitions: int32(&RESOURCES_ERROR_TOPIC_PARTITIONS),
        replication_factor: int32(&RESOURCES_REPLICATION_FACTOR),
    }
}

/// `[admin]`: where the admin server listens, `None` when it is disabled.
pub(super) fn admin_address(values: &Values) -> Option<std::net::SocketAddr> {
    values.bool(&ADMIN_ENABLED).then(|| {
        values
            .str(&ADMIN_ADDRESS)
            .parse()
            .expect("`admin.address` passed its rule")
    })
}

/// `admin.token_file`, if set.
pub(super) fn admin_token_file(values: &Values) -> Option<std::path::PathBuf> {
    values.get(&ADMIN_TOKEN_FILE).map(|setting| match setting {
        super::values::Setting::Str(path) => std::path::PathBuf::from(path),
        other => unreachable!("`admin.token_file` is a string, got {other:?}"),
    })
}

#[cfg(test)]
mod tests {
    use actors::settings::{Credentials, Secret};
    use toml::{Table, Value};

    use super::super::walk::walk;
    use super::*;

    #[test]
    fn auto_conditional_create_follows_the_endpoint() {
        for (endpoint, mode) in [
            (
                Some("https://oss-cn-hangzhou.aliyuncs.com"),
                ConditionalCreate::OssForbidOverwrite,
            ),
            (
                Some("https://s3.oss-cn-hangzhou.aliyuncs.com:443/"),
                ConditionalCreate::OssForbidOverwrite,
            ),
            (
                Some("http://127.0.0.1:9000"),
                ConditionalCreate::IfNoneMatch,
            ),
            (
                Some("https://aliyuncs.com.example.org"),
                ConditionalCreate::IfNoneMatch,
            ),
            (None, ConditionalCreate::IfNoneMatch),
        ] {
            assert_eq!(conditional_create_for(endpoint), mode, "{endpoint:?}");
        }
    }

    /// Every option of every choice key has a meaning above (else `Values::choice` panics).
    #[test]
    fn every_choice_option_converts() {
        let minimal: Table = toml::from_str(
            "name = \"n\"\n[source]\nbootstrap_servers = \"k:1\"\ntopic = \"t\"\n\
             [sink]\nbucket = \"bkt\"\n",
        )
        .unwrap();
        for key in KEYS {
            let Kind::Choice { options, .. } = key.kind else {
                continue;
            };
            for option in options {
                let mut table = minimal.clone();
                let mut section = &mut table;
                for part in key.section().split('.') {
                    let Value::Table(inner) = section
                        .entry(part)
                        .or_insert_with(|| Value::Table(Table::new()))
                    else {
                        unreachable!("sections are tables");
                    };
                    section = inner;
                }
                section.insert(key.name().to_owned(), Value::String(option.to_string()));
                if (key.path, *option) == ("format.binary", "bytes") {
                    // Binary columns are Parquet's.
                    section.insert("type".to_owned(), Value::String("parquet".to_owned()));
                }
                let values = walk(table).unwrap_or_else(|e| panic!("{key:?} = {option}: {e:?}"));
                let credentials = Credentials {
                    access_key_id: Secret::new("id".to_owned()),
                    access_key_secret: Secret::new("secret".to_owned()),
                    session_token: None,
                };
                pipeline(&values, credentials.into(), String::new());
            }
        }
    }
}
