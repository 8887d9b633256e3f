//! The memory budget's gauges, set by the supervisor's memory watch (every
//! [`MEMORY_WATCH_INTERVAL`](crate::supervisor::MEMORY_WATCH_INTERVAL)).

use super::{Kind, Snapshot};
use crate::metrics::{MEMORY_BUDGET, MEMORY_PAUSED_PARTITIONS, MEMORY_USED};

/// Exports `snapshot`: the budget and its shares, the bytes used by kind (with librdkafka's
/// pre-fetch estimate as `prefetch`), and the partitions waiting for memory.
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
    metrics::gauge!(MEMORY_PAUSED_PARTITIONS).set(snapshot.paused as f64);
}
