//! Object bodies: the records of one object in the configured format (`[format]`, see
//! [`FormatSettings`]).
//!
//! The default is the product page's JSON array, byte for byte,
//! `[{"key","offset","overflowFlag","partition","timestamp","topic","value","valueSize"}, ...]`:
//!
//! - `key`: the key as a string, or `null` when the record has no key;
//! - `value`: the value as a string, or `null` for a tombstone (null value);
//! - `valueSize`: the value's size in bytes (0 for a tombstone);
//! - `timestamp`: milliseconds since the epoch (-1 when the record carries none);
//! - `overflowFlag`: `true` when the value is larger than the configured limit; the value is
//!   then written as `null` and `valueSize` still gives its real size.
//!
//! `jsonl` writes the same objects one per line ([`json`]); both JSON formats may be compressed
//! as a whole (gzip, zstd) while they are encoded. `parquet` writes the same fields as columns
//! ([`parquet`]). Options add fields: with `binary = "base64"`, a key or value that is not valid
//! UTF-8 is written base64-encoded with `"keyEncoding"`/`"valueEncoding": "base64"` after it;
//! with `binary = "bytes"` (Parquet only), keys and values are binary columns holding the bytes
//! as they are; with `headers = true`, every record ends with `"headers": [{"name","value"}, ...]`. Without
//! `base64`, a key or value that is not valid UTF-8 is a [`RecordError`] naming the offset (a
//! lossy conversion would silently change data). [`read`] reads every format back.

mod json;
mod parquet;
pub mod read;

use bytes::Bytes;

use crate::buffer_pool::BufferPool;
use crate::error::ErrorCode;
use crate::metadata::Fingerprint;
use crate::record::{RecordChunk, RecordMeta};
use crate::settings::{BinaryMode, FormatKind, FormatSettings};

pub use read::{decode_object, DecodeError};

/// The headers of an object's records, kept beside the body so that a refused object's records
/// can be forwarded with their headers byte for byte (whether or not the format writes them).
/// Records without headers are not in it, so it stays empty for most objects.
pub type HeaderSidecar = RecordChunk;

/// Which part of a record was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Key,
    Value,
}

impl std::fmt::Display for Field {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Field::Key => "key",
            Field::Value => "value",
        })
    }
}

/// Why one record cannot be written in the configured format.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error(
        "{field} at offset {offset} is not valid UTF-8 (invalid byte at position {valid_up_to})"
    )]
    InvalidUtf8 {
        field: Field,
        offset: i64,
        valid_up_to: usize,
    },
}

/// How a record went into the object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    Written,
    /// The value was over the limit: written as `null` with `overflowFlag: true`.
    Overflowed {
        value_size: usize,
    },
}

impl RecordError {
    pub fn offset(&self) -> i64 {
        match self {
            RecordError::InvalidUtf8 { offset, .. } => *offset,
        }
    }

    /// Stable error code, documented in README.md.
    pub fn code(&self) -> ErrorCode {
        match self {
            RecordError::InvalidUtf8 { .. } => ErrorCode::RecordInvalidUtf8,
        }
    }
}

/// A key, value or header value as it is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Text<'a> {
    Null,
    Utf8(&'a str),
    /// Not valid UTF-8 and `binary = "base64"`: written base64-encoded.
    Base64(&'a [u8]),
    /// `binary = "bytes"` (Parquet's binary columns): any bytes, as they are.
    Bytes(&'a [u8]),
}

impl<'a> Text<'a> {
    fn of(bytes: Option<&'a [u8]>, binary: BinaryMode) -> Result<Self, usize> {
        match bytes {
            None => Ok(Text::Null),
            Some(bytes) if binary == BinaryMode::Bytes => Ok(Text::Bytes(bytes)),
            Some(bytes) => match std::str::from_utf8(bytes) {
                Ok(text) => Ok(Text::Utf8(text)),
                Err(_) if binary == BinaryMode::Base64 => Ok(Text::Base64(bytes)),
                Err(error) => Err(error.valid_up_to()),
            },
        }
    }

    /// A header value: base64 when not UTF-8, whatever `binary` says (headers have no
    /// dead-letter rule of their own).
    pub(crate) fn header(bytes: Option<&'a [u8]>) -> Self {
        Text::of(bytes, BinaryMode::Base64).expect("base64 takes any bytes")
    }
}

/// One record, checked and ready for a format to write.
pub(crate) struct Prepared<'a> {
    pub offset: i64,
    pub timestamp: i64,
    pub key: Text<'a>,
    pub value: Text<'a>,
    pub overflow: bool,
    /// The value's size in bytes (its real size when it overflowed).
    pub value_size: usize,
    /// `(name, value)` of its headers when the format writes them.
    pub headers: Option<(&'a RecordChunk, &'a RecordMeta)>,
}

/// The body being built, by format.
enum Body {
    Json(json::JsonBody),
    Parquet(Box<parquet::ParquetBody>),
}

/// Builds one object's body incrementally.
pub struct ObjectEncoder {
    body: Body,
    format: FormatSettings,
    records: usize,
    first_offset: i64,
    last_offset: i64,
    /// Smallest record timestamp in the object (for freshness reporting), if any record had one.
    min_timestamp: Option<i64>,
    /// Fingerprints of the first and last record (object metadata), and of the record before
    /// the last (restored by [`Self::pop_last`]).
    first_record: Option<Fingerprint>,
    last_record: Option<Fingerprint>,
    before_last_record: Option<Fingerprint>,
    headers: HeaderSidecar,
    /// Where the buffer comes from and goes back to once the body is dropped.
    pool: Option<BufferPool>,
    /// The capacity of a reused (pooled) buffer: memory that is resident already.
    reused: usize,
}

impl ObjectEncoder {
    /// A JSON array encoder (the default format).
    pub fn new(topic: &str, partition: i32, capacity: usize) -> Self {
        Self::with_format(FormatSettings::default(), topic, partition, capacity, None)
    }

    /// A JSON array encoder writing into a buffer of `pool`; the finished body returns it there
    /// when dropped.
    pub fn pooled(topic: &str, partition: i32, capacity: usize, pool: &BufferPool) -> Self {
        Self::with_format(
            FormatSettings::default(),
            topic,
            partition,
            capacity,
            Some(pool),
        )
    }

    /// An encoder of `format`, writing into a buffer of `pool` if given.
    pub fn with_format(
        format: FormatSettings,
        topic: &str,
        partition: i32,
        capacity: usize,
        pool: Option<&BufferPool>,
    ) -> Self {
        // Bytes of a reused pooled buffer: resident already, charged to the memory budget from
        // the start (a new buffer is charged as it fills).
        let (buf, reused) = match pool {
            Some(pool) => {
                let (buf, reused) = pool.take_tracked(capacity);
                let reused = if reused { buf.capacity() } else { 0 };
                (buf, reused)
            }
            None => (Vec::with_capacity(capacity), 0),
        };
        let body = match format.kind {
            FormatKind::JsonArray | FormatKind::Jsonl => {
                Body::Json(json::JsonBody::new(&format, topic, partition, buf))
            }
            FormatKind::Parquet => Body::Parquet(Box::new(parquet::ParquetBody::new(
                &format, topic, partition, buf,
            ))),
        };
        ObjectEncoder {
            body,
            format,
            records: 0,
            first_offset: -1,
            last_offset: -1,
            min_timestamp: None,
            first_record: None,
            last_record: None,
            before_last_record: None,
            headers: HeaderSidecar::default(),
            pool: pool.cloned(),
            reused,
        }
    }

    /// Appends one record. On error nothing is appended.
    pub fn push(&mut self, chunk: &RecordChunk, record: &RecordMeta) -> Result<(), RecordError> {
        self.push_limited(chunk, record, None).map(|_| ())
    }

    /// Appends one record; a value over `max_value_bytes` is written as `null` with
    /// `overflowFlag: true` and its real size (it is not decoded, so it may be any bytes).
    /// On error nothing is appended.
    pub fn push_limited(
        &mut self,
        chunk: &RecordChunk,
        record: &RecordMeta,
        max_value_bytes: Option<usize>,
    ) -> Result<Pushed, RecordError> {
        let binary = self.format.binary;
        let invalid = |field, valid_up_to| RecordError::InvalidUtf8 {
            field,
            offset: record.offset,
            valid_up_to,
        };
        let raw_key = chunk.bytes(&record.key);
        let key = Text::of(raw_key, binary).map_err(|at| invalid(Field::Key, at))?;
        let raw_value = chunk.bytes(&record.value);
        let overflow = match (raw_value, max_value_bytes) {
            (Some(bytes), Some(limit)) if bytes.len() > limit => Some(bytes.len()),
            _ => None,
        };
        let value = match overflow {
            Some(_) => Text::Null,
            None => Text::of(raw_value, binary).map_err(|at| invalid(Field::Value, at))?,
        };
        let prepared = Prepared {
            offset: record.offset,
            timestamp: record.timestamp,
            key,
            value,
            overflow: overflow.is_some(),
            value_size: overflow.unwrap_or(raw_value.map_or(0, <[u8]>::len)),
            headers: self.format.headers.then_some((chunk, record)),
        };
        match &mut self.body {
            Body::Json(body) => body.push(&prepared, self.records),
            Body::Parquet(body) => body.push(&prepared),
        }
        if !record.headers.is_empty() {
            self.headers.push_with_headers(
                record.offset,
                record.timestamp,
                None,
                None,
                chunk.headers(record),
            );
        }
        let fingerprint = Fingerprint::of(record.timestamp, raw_key, raw_value);
        if self.records == 0 {
            self.first_offset = record.offset;
            self.first_record = Some(fingerprint);
        }
        self.before_last_record = self.last_record.replace(fingerprint);
        self.records += 1;
        self.last_offset = record.offset;
        if record.timestamp >= 0 {
            self.min_timestamp = Some(
                self.min_timestamp
                    .map_or(record.timestamp, |t| t.min(record.timestamp)),
            );
        }
        Ok(match overflow {
            Some(value_size) => Pushed::Overflowed { value_size },
            None => Pushed::Written,
        })
    }

    /// Size of the object so far, the bound `batching.max_bytes` applies to: the exact size of
    /// an uncompressed JSON body (closing `]` included); for compressed JSON, the size before
    /// compression; for Parquet, the row groups written plus the raw size of the open one.
    pub fn len(&self) -> usize {
        match &self.body {
            Body::Json(body) => body.len(),
            Body::Parquet(body) => body.len(),
        }
    }

    pub fn records(&self) -> usize {
        self.records
    }

    /// Resident bytes of the object's buffer, as far as known: what it holds, or a reused
    /// buffer's whole capacity (touched by its earlier objects). A fresh buffer's capacity beyond
    /// its length is not resident until written.
    pub fn resident_bytes(&self) -> usize {
        let resident = match &self.body {
            Body::Json(body) => body.resident(),
            Body::Parquet(body) => body.len(),
        };
        resident.max(self.reused)
    }

    /// Whether parts of the body can be streamed out while it grows ([`Self::take_part`]): the
    /// JSON formats, whose bytes are final once written. Parquet writes its footer from the
    /// whole object and is uploaded whole.
    pub fn streams(&self) -> bool {
        matches!(self.body, Body::Json(_))
    }

    /// Body bytes written so far that [`Self::take_part`] would take (0 for Parquet).
    pub fn streamable_bytes(&self) -> usize {
        match &self.body {
            Body::Json(body) => body.streamable(),
            Body::Parquet(_) => 0,
        }
    }

    /// Takes the body bytes written so far out as one part of a streamed object (JSON formats;
    /// `None` for Parquet or when there is none). The buffer is replaced by one of `capacity`
    /// (pooled if the encoder's buffers are). Only between pushes: the record pushed last cannot
    /// be taken back ([`Self::pop_last`]) once its bytes are out.
    pub fn take_part(&mut self, capacity: usize) -> Option<Bytes> {
        let Body::Json(body) = &mut self.body else {
            return None;
        };
        if body.streamable() == 0 {
            return None;
        }
        let fresh = match &self.pool {
            Some(pool) => {
                let (buf, reused) = pool.take_tracked(capacity);
                self.reused = if reused { buf.capacity() } else { 0 };
                buf
            }
            None => {
                self.reused = 0;
                Vec::with_capacity(capacity)
            }
        };
        let part = body.take_part(fresh);
        Some(match &self.pool {
            Some(pool) => pool.freeze(part),
            None => Bytes::from(part),
        })
    }

    pub fn is_empty(&self) -> bool {
        self.records == 0
    }

    pub fn first_offset(&self) -> i64 {
        self.first_offset
    }

    pub fn last_offset(&self) -> i64 {
        self.last_offset
    }

    /// Fingerprints of the first and last record, once a record is in.
    pub fn fingerprints(&self) -> Option<(Fingerprint, Fingerprint)> {
        Some((self.first_record?, self.last_record?))
    }

    pub fn min_timestamp(&self) -> Option<i64> {
        self.min_timestamp
    }

    /// Forgets the record just pushed (`len_before`, `records_before` and `last_offset_before`
    /// are [`Self::len`], [`Self::records`] and [`Self::last_offset`] before that push). Used to
    /// move a record that made the object too large into the next object. Every format keeps the
    /// last record out of its compressor or row group until the next push, so this is exact.
    pub fn pop_last(&mut self, len_before: usize, records_before: usize, last_offset_before: i64) {
        match &mut self.body {
            Body::Json(body) => body.pop_last(len_before),
            Body::Parquet(body) => body.pop_last(),
        }
        if self.headers.last_offset() == Some(self.last_offset) {
            self.headers.pop();
        }
        self.records = records_before;
        self.last_offset = last_offset_before;
        self.last_record = self.before_last_record.take();
        if records_before == 0 {
            self.first_offset = -1;
            self.first_record = None;
            self.last_record = None;
        }
    }

    /// Closes the body and returns it.
    pub fn finish(self) -> Bytes {
        self.finish_with_headers().0
    }

    /// Closes the body and returns it with the records' headers.
    pub fn finish_with_headers(self) -> (Bytes, HeaderSidecar) {
        let buf = match self.body {
            Body::Json(body) => body.finish(),
            Body::Parquet(body) => body.finish(),
        };
        let body = match &self.pool {
            Some(pool) => pool.freeze(buf),
            None => Bytes::from(buf),
        };
        (body, self.headers)
    }
}

#[cfg(test)]
mod format_tests;
#[cfg(test)]
mod tests;
