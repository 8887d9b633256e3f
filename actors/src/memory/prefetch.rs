//! librdkafka's pre-fetching sized from the budget's prefetch share.
//!
//! With split partition queues librdkafka applies `queued.max.messages.kbytes` (64 MiB by
//! default) and `queued.min.messages` (100,000) to each partition's queue, so its pre-fetch
//! grows with the partition count: 1,000 partitions could hold gigabytes. Here the share is
//! divided by the topic's partition count (at start; an instance is assigned at most that many):
//! half of a partition's slice for its queue, half for the fetch response that may land on top of
//! a queue just under its limit (`max.partition.fetch.bytes`). `fetch.max.bytes` bounds one fetch
//! response (all partitions of one broker), which stays in memory while any of its records is
//! queued: the share (at most librdkafka's default, 50 MiB). With fewer, the fetch round trips
//! limit the drain: a quarter of the share cut a 1,000-partition backlog to about 80 MB/s. `queued.min.messages` also caps the record count, since librdkafka's per-record
//! overhead dwarfs small records. Queues this small fill often, and librdkafka waits
//! `fetch.queue.backoff.ms` (1 s by default) before fetching again for a partition whose queue
//! was full: that wait is cut to [`QUEUE_BACKOFF_MS`], or a busy partition would read about one
//! queue per second.
//!
//! Values the user set in `source.properties` are kept; if they let librdkafka hold more than
//! the share, [`Sizing::warnings`] says so (logged at start).

use std::collections::BTreeMap;

pub const QUEUED_MAX_KBYTES: &str = "queued.max.messages.kbytes";
pub const QUEUED_MIN_MESSAGES: &str = "queued.min.messages";
pub const MAX_PARTITION_FETCH_BYTES: &str = "max.partition.fetch.bytes";
pub const FETCH_MAX_BYTES: &str = "fetch.max.bytes";
pub const FETCH_QUEUE_BACKOFF_MS: &str = "fetch.queue.backoff.ms";
/// librdkafka's wait before fetching again for a partition whose queue was full.
pub const QUEUE_BACKOFF_MS: usize = 10;
/// librdkafka's alias of `max.partition.fetch.bytes`.
const FETCH_MESSAGE_MAX_BYTES: &str = "fetch.message.max.bytes";
/// `fetch.max.bytes` must be at least this (librdkafka refuses the config otherwise).
const MESSAGE_MAX_BYTES: &str = "message.max.bytes";
const DEFAULT_MESSAGE_MAX_BYTES: usize = 1_000_000;
/// librdkafka's default `fetch.max.bytes`; never raised above it.
const DEFAULT_FETCH_MAX_BYTES: usize = 52_428_800;
/// Bytes per queued record assumed for `queued.min.messages` (a record plus librdkafka's
/// per-message bookkeeping).
const BYTES_PER_QUEUED_RECORD: usize = 256;
/// A partition's fetch is never sized below this: fetching one small batch at a time is slow.
const MIN_PARTITION_FETCH: usize = 16 * 1024;

/// The properties to set and what to say about the user's own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sizing {
    /// (property, value) the connector sets; none that the user set.
    pub properties: Vec<(&'static str, String)>,
    /// One line per user value that lets librdkafka exceed the share.
    pub warnings: Vec<String>,
    /// What pre-fetching may hold at most with these values (bytes, all partitions).
    pub bound: usize,
}

/// Sizes pre-fetching for `partitions` partitions within `share` bytes. `user` holds the
/// pass-through properties.
pub fn size(share: usize, partitions: usize, user: &BTreeMap<String, String>) -> Sizing {
    let partitions = partitions.max(1);
    let per_partition = share / partitions;
    let user_value = |key: &str| -> Option<usize> {
        user.get(key)
            .and_then(|value| value.trim().parse::<usize>().ok())
    };
    let message_max = user_value(MESSAGE_MAX_BYTES).unwrap_or(DEFAULT_MESSAGE_MAX_BYTES);
    let ours = [
        (QUEUED_MAX_KBYTES, (per_partition / 2 / 1024).max(1)),
        (
            MAX_PARTITION_FETCH_BYTES,
            (per_partition / 2).max(MIN_PARTITION_FETCH),
        ),
        (
            FETCH_MAX_BYTES,
            share.clamp(message_max, DEFAULT_FETCH_MAX_BYTES.max(message_max)),
        ),
        (
            QUEUED_MIN_MESSAGES,
            (per_partition / BYTES_PER_QUEUED_RECORD).max(1),
        ),
        (FETCH_QUEUE_BACKOFF_MS, QUEUE_BACKOFF_MS),
    ];
    let mut sizing = Sizing {
        properties: Vec::new(),
        warnings: Vec::new(),
        bound: 0,
    };
    let mut effective = BTreeMap::new();
    for (key, value) in ours {
        let user_set = user.contains_key(key)
            || (key == MAX_PARTITION_FETCH_BYTES && user.contains_key(FETCH_MESSAGE_MAX_BYTES));
        let value = if user_set {
            let alias = (key == MAX_PARTITION_FETCH_BYTES)
                .then(|| user_value(FETCH_MESSAGE_MAX_BYTES))
                .flatten();
            user_value(key).or(alias).unwrap_or(value)
        } else {
            sizing.properties.push((key, value.to_string()));
            value
        };
        effective.insert(key, value);
    }
    let queue = effective[QUEUED_MAX_KBYTES] * 1024;
    let fetch = effective[MAX_PARTITION_FETCH_BYTES];
    sizing.bound = partitions * (queue + fetch);
    for key in [QUEUED_MAX_KBYTES, MAX_PARTITION_FETCH_BYTES] {
        let set_by_user = user.contains_key(key)
            || (key == MAX_PARTITION_FETCH_BYTES && user.contains_key(FETCH_MESSAGE_MAX_BYTES));
        if set_by_user && sizing.bound > share {
            sizing.warnings.push(format!(
                "source.properties \"{key}\" = {} is kept, but with {partitions} partitions \
                 librdkafka may then pre-fetch up to {} bytes, more than the prefetch share of \
                 memory.max_bytes ({share} bytes); peak memory may exceed memory.max_bytes",
                effective[key], sizing.bound
            ));
        }
    }
    sizing
}
