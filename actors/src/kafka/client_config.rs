//! The librdkafka properties of the connector's clients. Pass-through properties
//! (`source.properties`) go first, so that the settings the connector owns win.

use rdkafka::ClientConfig;

use crate::settings::SourceSettings;

use super::STATISTICS_INTERVAL_MS;

/// Bootstrap servers and the pass-through properties: the base of every consumer.
pub fn consumer_base_config(source: &SourceSettings) -> ClientConfig {
    let mut config = ClientConfig::new();
    // Pass-through properties first, so the settings the connector owns win. The config module
    // already rejects the reserved keys.
    for (key, value) in &source.client_properties.0 {
        config.set(key, value);
    }
    config.set("bootstrap.servers", &source.bootstrap_servers);
    config
}

/// Consumer-only librdkafka properties that a producer or admin client would warn about.
fn is_consumer_only(property: &str) -> bool {
    property.starts_with("fetch.")
        || property.starts_with("session.")
        || property.starts_with("heartbeat.")
        || matches!(
            property,
            "max.poll.interval.ms"
                | "partition.assignment.strategy"
                | "isolation.level"
                | "auto.commit.interval.ms"
                | "group.instance.id"
                | "group.protocol"
                | "queued.min.messages"
                | "queued.max.messages.kbytes"
                | "max.partition.fetch.bytes"
                | "check.crcs"
        )
}

/// Bootstrap servers and the pass-through properties that apply to producers and admin
/// clients (security settings, mostly).
pub fn producer_config(source: &SourceSettings) -> ClientConfig {
    let mut config = ClientConfig::new();
    for (key, value) in &source.client_properties.0 {
        if !is_consumer_only(key) {
            config.set(key, value);
        }
    }
    config.set("bootstrap.servers", &source.bootstrap_servers);
    config
}

/// The group consumer's properties: the base plus the settings the connector's offset handling
/// depends on. Also the bare consumer of the benchmarks, so that both read alike.
pub fn consumer_config(source: &SourceSettings) -> ClientConfig {
    let mut config = consumer_base_config(source);
    config
        .set("group.id", &source.group_id)
        // Applies only to a position out of range (retention removed the records it points
        // to): the oldest retained record is next, never the end of the partition. Where a
        // partition without a committed offset starts (`source.start_offset`) is set in the
        // assignment callback (`SinkContext::assign`).
        .set("auto.offset.reset", "earliest")
        .set(
            "partition.assignment.strategy",
            source.assignment.as_librdkafka(),
        )
        // Offsets are stored only once the data is in the bucket, and committed by the driver.
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        // Must stay off: see `partition_queue`.
        .set("enable.partition.eof", "false")
        .set("statistics.interval.ms", STATISTICS_INTERVAL_MS);
    config
}
