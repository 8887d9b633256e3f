//! The key-by-key mapping from Confluent's S3 sink (and Connect's framework keys) to the config.
//! Where Confluent's default differs from the connector's, the Confluent behaviour is written out
//! explicitly (region, start offset, failure policy) unless OSS needs otherwise (path-style
//! access), and a note says so.

use super::layout::{map_format, map_partitioner};
use super::{consumer, ConnectConfig, Draft};

/// Connect's sink consumers start at the earliest offset of a partition without a committed one.
const CONNECT_START_OFFSET: &str = "earliest";
/// Confluent's `s3.region` default.
const CONFLUENT_REGION: &str = "us-west-2";

pub(super) fn map(c: &mut ConnectConfig, d: &mut Draft) -> Result<(), String> {
    let class = c.take("connector.class").unwrap_or_default();
    if !class.ends_with("S3SinkConnector") {
        d.header_note(format!(
            "connector.class is `{class}`, not Confluent's io.confluent.connect.s3.S3SinkConnector: \
             its keys were read as the S3 sink's."
        ));
    }
    d.header_note(
        "Credentials are never copied: set OSS_ACCESS_KEY_ID and OSS_ACCESS_KEY_SECRET in the \
         environment (config/README.md, Credentials).",
    );
    d.header_note(
        "Stop the Connect connector before starting this one: both are members of the same \
         consumer group, and this one goes on from the offsets Connect committed.",
    );
    map_top_and_source(c, d)?;
    consumer::map(c, d);
    map_sink(c, d)?;
    map_batching(c, d);
    map_format(c, d);
    map_partitioner(c, d);
    map_failure(c, d);
    Ok(())
}

fn map_top_and_source(c: &mut ConnectConfig, d: &mut Draft) -> Result<(), String> {
    let original = c.take("name").unwrap_or_default();
    let name = connector_name(&original);
    let entry = d.set("", "name", name.clone().into(), "name");
    if name != original {
        entry.note(format!(
            "`{original}` made a valid name (lowercase letters, digits and hyphens, at most 48)."
        ));
    }
    d.set(
        "source",
        "bootstrap_servers",
        "localhost:9092".into(),
        "",
    )
    .note("The Connect worker's bootstrap.servers (a worker setting, not in the connector's config): set yours. So are the worker's consumer.security.protocol and SASL settings: put them in [source.properties].");

    let topics = c.take("topics").unwrap_or_default();
    let topics: Vec<&str> = topics
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .collect();
    match topics.as_slice() {
        [] => {
            if c.take("topics.regex").is_some() {
                d.unmapped(
                    "topics.regex",
                    "one config copies one topic: set source.topic, one config per topic",
                );
            } else {
                return Err("no `topics`: not a sink connector's config".into());
            }
            d.set("source", "topic", "change-me".into(), "topics.regex")
                .note("Set the topic to copy.");
        }
        [topic] => {
            d.set("source", "topic", (*topic).into(), "topics");
        }
        [first, rest @ ..] => {
            d.set("source", "topic", (*first).into(), "topics").note(format!(
                "One config copies one topic: make one more config (another `name`) for each of {}.",
                rest.join(", ")
            ));
            d.unmapped(
                "topics",
                format!(
                    "{} topics; this config covers `{first}` only (one config per topic)",
                    topics.len()
                ),
            );
        }
    }
    d.set("source", "start_offset", CONNECT_START_OFFSET.into(), "")
        .note("Connect's sink consumers start at the earliest offset of a partition without a committed offset; kafka-oss-sink's default is \"latest\".");
    if let Some(tasks) = c.take("tasks.max") {
        if let Some(n) = integer(&tasks) {
            d.set("source", "concurrency", n.clamp(1, 64).into(), "tasks.max")
                .note("Threads in one process; run several instances of this config to spread partitions over hosts, as Connect spreads tasks over workers.");
        } else {
            d.unmapped("tasks.max", "not an integer");
        }
    }
    d.set(
        "source",
        "group_id",
        format!("connect-{original}").into(),
        "name",
    )
    .note("Connect's consumer group of this connector (connect-<name>): the copy goes on from its committed offsets.");
    Ok(())
}

fn map_sink(c: &mut ConnectConfig, d: &mut Draft) -> Result<(), String> {
    let bucket = c
        .take("s3.bucket.name")
        .ok_or("no `s3.bucket.name`: not an S3 sink config")?;
    d.set("sink", "bucket", bucket.into(), "s3.bucket.name");

    let endpoint = c.take("store.url").filter(|u| !u.is_empty()).map(|url| {
        if url.contains("://") {
            url
        } else {
            format!("https://{url}")
        }
    });
    let oss_region = endpoint.as_deref().and_then(oss_region);
    let region = c.take("s3.region");
    if let Some(url) = &endpoint {
        let entry = d.set("sink", "endpoint", url.as_str().into(), "store.url");
        if oss_region.is_some() && !url.contains("://s3.oss-") {
            entry.note("OSS's documented S3-compatible endpoint is https://s3.oss-<region>.aliyuncs.com (internal: https://s3.oss-<region>-internal.aliyuncs.com).");
        }
    }
    match (&oss_region, region) {
        (Some(oss), region) => {
            let entry = d.set("sink", "region", oss.as_str().into(), "store.url");
            if let Some(region) = region.filter(|r| r != oss) {
                entry.note(format!(
                    "OSS signs with its region id, taken from the endpoint (s3.region was `{region}`)."
                ));
            }
        }
        (None, Some(region)) => {
            d.set("sink", "region", region.into(), "s3.region");
        }
        (None, None) => {
            d.set("sink", "region", CONFLUENT_REGION.into(), "")
                .note("Confluent's default s3.region; kafka-oss-sink's is us-east-1.");
        }
    }

    let prefix = c.take("topics.dir").unwrap_or_else(|| "topics".into());
    let prefix = prefix.trim_matches('/');
    let prefix = if prefix.is_empty() {
        String::new()
    } else {
        format!("{prefix}/")
    };
    d.set("sink", "key_prefix", prefix.into(), "topics.dir").note(
        "Object keys differ: Confluent wrote <topics.dir>/<topic>/partition=<n>/<topic>+<n>+<offset>.<ext>, \
         kafka-oss-sink writes <key_prefix><topic>/<n>/<first>-<last>.<ext>. Both under one prefix, \
         `kafka-oss-sink reconcile` lists Confluent's objects as foreign: pick a new prefix to keep them apart.",
    );

    let path_style = c.take("s3.path.style.access.enabled");
    let explicit = path_style.is_some();
    let path_style = path_style.is_none_or(|v| v.eq_ignore_ascii_case("true"));
    if oss_region.is_some() {
        let entry = d.set(
            "sink",
            "addressing",
            "virtual_hosted".into(),
            "s3.path.style.access.enabled",
        );
        if path_style {
            entry.note(format!(
                "Confluent {} path-style requests (s3.path.style.access.enabled = true{}); OSS refuses them \
                 (SecondLevelDomainForbidden), so virtual-hosted style it is.",
                if explicit { "was set to send" } else { "sends" },
                if explicit { "" } else { ", its default" }
            ));
        }
    } else {
        let style = if path_style { "path" } else { "virtual_hosted" };
        let entry = d.set(
            "sink",
            "addressing",
            style.into(),
            "s3.path.style.access.enabled",
        );
        if !explicit {
            entry.note("Confluent's default is path-style; for OSS set \"virtual_hosted\" (OSS refuses path-style requests).");
        }
    }

    if let Some(size) = c.take("s3.part.size") {
        match integer(&size) {
            Some(n) => {
                d.set("sink", "part_size_bytes", n.into(), "s3.part.size");
            }
            None => d.unmapped("s3.part.size", "not an integer"),
        }
    }
    let conditional = c.take("enable.conditional.writes");
    let entry = d.set(
        "sink",
        "conditional_create",
        "auto".into(),
        "enable.conditional.writes",
    );
    entry.note(
        "Confluent's conditional writes (enable.conditional.writes, default true) send If-None-Match: * \
         on CompleteMultipartUpload only, which OSS answers with 501. \"auto\" sends OSS's \
         x-oss-forbid-overwrite: true to *.aliyuncs.com and If-None-Match: * elsewhere, on every upload.",
    );
    if conditional.is_some_and(|v| v.eq_ignore_ascii_case("false")) {
        entry.note("Confluent had them off; kafka-oss-sink keeps them on (they keep an object from being replaced). \"off\" only for a store that rejects both headers.");
    }
    if let Some(backoff) = c.take("s3.retry.backoff.ms") {
        match integer(&backoff) {
            Some(n) => {
                d.set(
                    "sink",
                    "retry_initial_backoff_ms",
                    n.clamp(10, 60_000).into(),
                    "s3.retry.backoff.ms",
                );
            }
            None => d.unmapped("s3.retry.backoff.ms", "not an integer"),
        }
    }
    Ok(())
}

fn map_batching(c: &mut ConnectConfig, d: &mut Draft) {
    if let Some(size) = c.take("flush.size") {
        match integer(&size) {
            Some(n) => {
                d.set(
                    "batching",
                    "max_records",
                    n.clamp(1, 10_000_000).into(),
                    "flush.size",
                );
            }
            None => d.unmapped("flush.size", "not an integer"),
        }
    }
    let mut intervals = Vec::new();
    for key in ["rotate.interval.ms", "rotate.schedule.interval.ms"] {
        if let Some(value) = c.take(key) {
            match integer(&value) {
                Some(n) if n > 0 => intervals.push((key, n)),
                Some(_) => {}
                None => d.unmapped(key, "not an integer"),
            }
        }
    }
    match intervals.iter().min_by_key(|(_, n)| *n) {
        Some((key, n)) => {
            d.set(
                "batching",
                "max_interval_ms",
                (*n).clamp(100, 86_400_000).into(),
                key,
            )
            .note(
                "An object is sealed this long after its first record, by the clock (Confluent's \
                 rotate.interval.ms goes by record timestamps, rotate.schedule.interval.ms by the \
                 wall clock aligned to the time zone).",
            );
        }
        None => {
            d.set("batching", "max_interval_ms", 10_000.into(), "").note(
                "Confluent rotated by flush.size only (no rotate.*interval.ms): a quiet partition kept \
                 its records open. kafka-oss-sink also seals an object 10 s after its first record.",
            );
        }
    }
}

fn map_failure(c: &mut ConnectConfig, d: &mut Draft) {
    let tolerance = c.take("errors.tolerance");
    match tolerance.as_deref() {
        Some("all") => {
            d.set("failure", "policy", "log".into(), "errors.tolerance")
                .note("Records that cannot be written go to the dead-letter (or abnormal-data) topic and the partition goes on.");
        }
        Some("none") | None => {
            d.set("failure", "policy", "fail".into(), "errors.tolerance").note(
                "Connect's default errors.tolerance = none stops at the first bad record: \"fail\" stops the partition there \
                 until `kafka-oss-sink resume`. kafka-oss-sink's default is \"log\".",
            );
        }
        Some(other) => d.unmapped(
            "errors.tolerance",
            format!("`{other}`: Connect knows none and all"),
        ),
    }
    if let Some(topic) = c.take("errors.deadletterqueue.topic.name") {
        if !topic.is_empty() {
            d.set(
                "resources",
                "dead_letter_topic",
                topic.into(),
                "errors.deadletterqueue.topic.name",
            )
            .note("Records of objects the bucket refused go to resources.abnormal_topic (default connect-error-<name>), which Connect has no equivalent for.");
        }
    }
    if let Some(factor) = c.take("errors.deadletterqueue.topic.replication.factor") {
        match integer(&factor) {
            Some(n) if (-1..=32).contains(&n) && n != 0 => {
                d.set(
                    "resources",
                    "replication_factor",
                    n.into(),
                    "errors.deadletterqueue.topic.replication.factor",
                )
                .note("Applies to every topic the connector creates.");
            }
            _ => d.unmapped(
                "errors.deadletterqueue.topic.replication.factor",
                "resources.replication_factor is -1 or 1 to 32",
            ),
        }
    }
    for key in [
        "errors.deadletterqueue.context.headers.enable",
        "errors.log.enable",
        "errors.log.include.messages",
    ] {
        if c.take(key).is_some() {
            d.header_note(format!(
                "{key}: always on (the __connect.errors.* headers on dead-lettered records; error log lines with their code)."
            ));
        }
    }
    match c.take("behavior.on.null.values").as_deref() {
        Some("write") => d.header_note(
            "behavior.on.null.values = write: tombstones are written as records with \"value\": null (no separate tombstone objects).",
        ),
        Some(other) => d.unmapped(
            "behavior.on.null.values",
            format!("`{other}`: kafka-oss-sink writes a tombstone (null value) as a record with \"value\": null and goes on"),
        ),
        None => d.header_note(
            "Confluent's default behavior.on.null.values = fail stopped at a tombstone; kafka-oss-sink writes it with \"value\": null.",
        ),
    }
}

/// A valid connector name (1 to 48 of `a-z 0-9 -`, not starting with `-`) close to `original`.
fn connector_name(original: &str) -> String {
    let mut name = String::new();
    for c in original.chars() {
        let c = c.to_ascii_lowercase();
        let c = if c.is_ascii_lowercase() || c.is_ascii_digit() {
            c
        } else {
            '-'
        };
        if !(c == '-' && (name.is_empty() || name.ends_with('-'))) {
            name.push(c);
        }
    }
    name.truncate(48);
    let name = name.trim_end_matches('-').to_owned();
    if name.is_empty() {
        "imported-s3-sink".into()
    } else {
        name
    }
}

/// The OSS region id (`oss-cn-hangzhou`) of an OSS endpoint URL, `None` for other stores.
fn oss_region(url: &str) -> Option<String> {
    let host = url.split("://").nth(1)?.split(['/', ':']).next()?;
    let rest = host.strip_suffix(".aliyuncs.com")?;
    let rest = rest.strip_prefix("s3.").unwrap_or(rest);
    let region = rest.strip_suffix("-internal").unwrap_or(rest);
    (region.starts_with("oss-") && region != "oss-accelerate").then(|| region.to_owned())
}

pub(super) fn integer(text: &str) -> Option<i64> {
    text.trim().parse().ok()
}
