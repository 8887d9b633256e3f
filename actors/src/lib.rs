//! The actor pipeline of kafka-oss-sink.
//!
//! ```text
//!                 librdkafka group consumer (one per process)
//!                   │ main queue: polled by the driver thread
//!                   │   (rebalance callbacks, errors, commits of stored offsets)
//!                   │ per-partition queues, split off at assignment
//!                   ▼
//!   ┌────────────────────────┐  Records   ┌─────────┐  SealedObject   ┌──────────┐
//!   │ PartitionConsumer (p)  │──────────▶│ Batcher │────────────────▶│ Uploader │ × upload_concurrency
//!   └────────────────────────┘ send().await└─────────┘ bounded queue  └──────────┘
//!               ▲                             ▲  │ store_offset(last+1)   │ PutObject / multipart
//!               │ Drain, Halt, Stop           │  ▼ once the prefix is     ▼
//!   ┌────────────────────────┐                │    stored             bucket
//!   │  PipelineSupervisor    │◀─ PartitionFailed   UploadReceipt ◀───────┘
//!   └────────────────────────┘
//! ```
//!
//! # Backpressure
//! Every hop on the data path is bounded: the batcher's mailbox holds two chunks, the upload
//! queue holds one object per uploader, each uploader handles one object at a time. A slow
//! bucket therefore stops the batchers, which stop their consumers, which stop reading their
//! partition queues; librdkafka stops fetching a partition whose pre-fetch queue is full. The
//! driver thread keeps polling the main queue, so the member stays in the group.
//!
//! # Memory
//! One budget ([`memory::MemoryBudget`], `memory.max_bytes`) bounds the sum over all partitions:
//! librdkafka's pre-fetch is sized from its share (and only so many partitions fetch at once),
//! consumers read only with a grant from the rest, and when that is used up the largest open
//! objects are sealed early so that uploads free memory.
//!
//! # Offsets and commits
//! An object's offsets become committable only when it and every object sealed before it are in
//! the bucket ([`commit::CommitTracker`]). The batcher stores that offset; the driver thread
//! commits stored offsets every second, before a revocation completes, and at shutdown.
//!
//! # Object keys
//! A pure function of the records ([`object_key::object_key`]): uploading the same records
//! again writes the same key with the same bytes.
//!
//! # Failures
//! Store errors are retried with backoff up to `sink.max_upload_attempts`. Records that cannot be
//! converted, values over the size limit and objects the bucket refused are handled by the
//! failure policy (`log`: dead-letter / abnormal-data topics; `fail`: the partition stops exactly
//! at the record until resumed); see [`batcher`]. The other partitions keep running.
//!
//! # Rebalance and shutdown
//! On revocation (and on shutdown) the supervisor drains the partitions: consumers stop reading,
//! batchers seal what they hold, and the drain completes when every object is stored. Then the
//! stored offsets are committed synchronously and the rebalance (or the exit) proceeds.

pub mod batcher;
pub mod buffer_pool;
pub mod commit;
pub mod encode;
pub mod error;
pub mod error_topics;
pub mod kafka;
pub mod key_template;
pub mod memory;
pub mod messages;
pub mod metadata;
pub mod metrics;
pub mod object_key;
pub mod partition_consumer;
pub mod pipeline;
pub mod record;
pub mod settings;
pub mod staging;
pub mod status;
pub mod store;
pub mod supervisor;
pub mod uploader;
