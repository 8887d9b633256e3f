//! The memory budget's gauges, set by the supervisor's memory watch (every
//! [`MEMORY_WATCH_INTERVAL`](crate::supervisor::MEMORY_WATCH_INTERVAL)).

use super::{Kind, Snapshot};
use crate::metrics::{MEMORY_BUDGET, MEMORY_FETCH_SLOTS, MEMORY_PAUSED_PARTITIONS, MEMORY_USED};

/// Exports `snapshot`: the budget and its shares, the bytes used by kind (with librdkafka's
/// pre-fetch estimate as `prefetch`), the partitions waiting for memory or for a fetch slot, and
/// the fetch slots.
pub fn publish(snapshot: &Snapshot) {
    for (share, bytes) in [
        ("total", snapshot.total),
        ("prefetch", snapshot.prefetch_share),
        ("buffers", snapshot.buffer_share),
    ] {
        metrics::gauge!(MEMORY_BUDGET, "share" => share).set(bytes as f64);
    }
    metrics::gauge!(MEMORY_USED, "kind" => "prefetch").set(snapshot.prefetch_estimate as f64);
    for kind in Kind::ALL {
        metrics::gauge!(MEMORY_USED, "kind" => kind.label()).set(snapshot.used(kind) as f64);
    }
    metrics::gauge!(MEMORY_PAUSED_PARTITIONS, "waiting_for" => "memory")
        .set(snapshot.paused as f64);
    metrics::gauge!(MEMORY_PAUSED_PARTITIONS, "waiting_for" => "fetch_slot")
        .set(snapshot.fetch_waiting as f64);
    metrics::gauge!(MEMORY_FETCH_SLOTS).set(snapshot.fetch_slots as f64);
}
