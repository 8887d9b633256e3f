//! What the actors may do to the group consumer, as two small traits: batchers store the offset
//! up to which their partition is in the bucket ([`OffsetStore`]), the supervisor stops and
//! restarts a partition's fetching ([`FetchControl`]). The consumer implements both; tests and
//! benchmarks use in-memory fakes, so actors run without a broker.

use std::sync::Arc;

use rdkafka::consumer::Consumer;
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::TopicPartitionList;

use super::consumer::SinkConsumer;
use super::Assignment;

/// Stores a partition's committable position; the driver thread commits what is stored.
pub trait OffsetStore: Send + Sync + 'static {
    /// Stores `next_offset` (the offset of the next record to read) as the partition's position.
    fn store(&self, topic: &str, partition: i32, next_offset: i64) -> KafkaResult<()>;

    /// The consumer group's current generation (written into every object's metadata, so an
    /// object can be traced to the assignment that wrote it); -1 when unknown.
    fn generation(&self) -> i32 {
        -1
    }
}

/// Stops or restarts librdkafka's fetching of one partition.
pub trait FetchControl: Send + Sync + 'static {
    fn pause(&self, topic: &str, partition: i32) -> KafkaResult<()>;
    fn resume(&self, topic: &str, partition: i32) -> KafkaResult<()>;
}

/// One assignment's view of an [`OffsetStore`]: stores go through only while the assignment is
/// current. A batcher of an ended assignment (revoked, lost, or replaced after a drain that
/// timed out) can then never store an offset for a later assignment of its partition.
pub struct AssignedOffsets {
    inner: Arc<dyn OffsetStore>,
    assignment: Assignment,
}

impl AssignedOffsets {
    pub fn new(inner: Arc<dyn OffsetStore>, assignment: Assignment) -> Self {
        AssignedOffsets { inner, assignment }
    }
}

impl OffsetStore for AssignedOffsets {
    fn store(&self, topic: &str, partition: i32, next_offset: i64) -> KafkaResult<()> {
        self.assignment
            .while_current(|| self.inner.store(topic, partition, next_offset))
            .unwrap_or(Err(KafkaError::StoreOffset(RDKafkaErrorCode::State)))
    }

    fn generation(&self) -> i32 {
        self.inner.generation()
    }
}

fn one_partition(topic: &str, partition: i32) -> TopicPartitionList {
    let mut list = TopicPartitionList::with_capacity(1);
    list.add_partition(topic, partition);
    list
}

impl OffsetStore for SinkConsumer {
    /// Not `Consumer::store_offset`: that one wraps `rd_kafka_offset_store`, which stores its
    /// argument *plus one* and would skip a record on restart. `store_offsets` stores the list's
    /// offsets as given. In memory only; fails with `_STATE` if the partition was revoked
    /// meanwhile, and then the new owner re-reads from the last commit.
    fn store(&self, topic: &str, partition: i32, next_offset: i64) -> KafkaResult<()> {
        let mut list = TopicPartitionList::with_capacity(1);
        list.add_partition_offset(topic, partition, rdkafka::Offset::Offset(next_offset))?;
        self.store_offsets(&list)
    }

    fn generation(&self) -> i32 {
        use rdkafka::bindings as ffi;
        // librdkafka's group metadata carries the generation; rust-rdkafka does not expose it.
        // SAFETY: the client pointer is valid while `self` lives; the metadata is a fresh copy
        // (or null) that is destroyed before returning.
        unsafe {
            let metadata = ffi::rd_kafka_consumer_group_metadata(self.client().native_ptr());
            if metadata.is_null() {
                return -1;
            }
            let generation = ffi::rd_kafka_consumer_group_metadata_generation_id(metadata);
            ffi::rd_kafka_consumer_group_metadata_destroy(metadata);
            generation
        }
    }
}

impl FetchControl for SinkConsumer {
    fn pause(&self, topic: &str, partition: i32) -> KafkaResult<()> {
        Consumer::pause(self, &one_partition(topic, partition))
    }

    fn resume(&self, topic: &str, partition: i32) -> KafkaResult<()> {
        Consumer::resume(self, &one_partition(topic, partition))
    }
}
