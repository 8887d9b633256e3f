//! The product page's record format: one JSON array per object,
//! `[{"key","offset","overflowFlag","partition","timestamp","topic","value","valueSize"}, ...]`.
//!
//! - `key`: the key as a string, or `null` when the record has no key;
//! - `value`: the value as a string, or `null` for a tombstone (null value);
//! - `valueSize`: the value's size in UTF-8 bytes (0 for a tombstone);
//! - `timestamp`: milliseconds since the epoch (-1 when the record carries none);
//! - `overflowFlag`: `true` when the value is larger than the configured limit; the value is
//!   then written as `null` and `valueSize` still gives its real size.
//!
//! Keys and values must be valid UTF-8: the format has no binary type, and a lossy conversion
//! would silently change data. Anything else is a [`RecordError`] naming the offset.

use bytes::Bytes;

use crate::buffer_pool::BufferPool;
use crate::error::ErrorCode;
use crate::metadata::Fingerprint;
use crate::record::{RecordChunk, RecordMeta};

/// The headers of an object's records (the format has no place for them), kept beside the body
/// so that a refused object's records can be forwarded with their headers byte for byte. Records
/// without headers are not in it, so it stays empty for most objects.
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

/// Why one record cannot be written in the product page's format.
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

/// Builds one object's body incrementally.
pub struct ObjectEncoder {
    buf: Vec<u8>,
    /// `,"partition":<p>,"timestamp":` is constant per partition; so is the escaped topic.
    partition_json: Vec<u8>,
    topic_json: Vec<u8>,
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
    pub fn new(topic: &str, partition: i32, capacity: usize) -> Self {
        Self::with_buffer(topic, partition, Vec::with_capacity(capacity), None)
    }

    /// Writes into a buffer of `pool`; the finished body returns it there when dropped.
    pub fn pooled(topic: &str, partition: i32, capacity: usize, pool: &BufferPool) -> Self {
        let (buf, reused) = pool.take_tracked(capacity);
        let reused = if reused { buf.capacity() } else { 0 };
        let mut encoder = Self::with_buffer(topic, partition, buf, Some(pool.clone()));
        encoder.reused = reused;
        encoder
    }

    fn with_buffer(
        topic: &str,
        partition: i32,
        mut buf: Vec<u8>,
        pool: Option<BufferPool>,
    ) -> Self {
        buf.push(b'[');
        let mut topic_json = Vec::with_capacity(topic.len() + 2);
        write_json_str(&mut topic_json, topic);
        ObjectEncoder {
            buf,
            partition_json: format!(",\"partition\":{partition},\"timestamp\":").into_bytes(),
            topic_json,
            records: 0,
            first_offset: -1,
            last_offset: -1,
            min_timestamp: None,
            first_record: None,
            last_record: None,
            before_last_record: None,
            headers: HeaderSidecar::default(),
            pool,
            reused: 0,
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
        let key = utf8(chunk.bytes(&record.key), Field::Key, record.offset)?;
        let raw_value = chunk.bytes(&record.value);
        let overflow = match (raw_value, max_value_bytes) {
            (Some(bytes), Some(limit)) if bytes.len() > limit => Some(bytes.len()),
            _ => None,
        };
        let value = match overflow {
            Some(_) => None,
            None => utf8(raw_value, Field::Value, record.offset)?,
        };
        let mut ints = itoa::Buffer::new();
        let buf = &mut self.buf;
        if self.records > 0 {
            buf.push(b',');
        }
        buf.extend_from_slice(b"{\"key\":");
        match key {
            Some(key) => write_json_str(buf, key),
            None => buf.extend_from_slice(b"null"),
        }
        buf.extend_from_slice(b",\"offset\":");
        buf.extend_from_slice(ints.format(record.offset).as_bytes());
        buf.extend_from_slice(if overflow.is_some() {
            b",\"overflowFlag\":true"
        } else {
            b",\"overflowFlag\":false"
        });
        buf.extend_from_slice(&self.partition_json);
        buf.extend_from_slice(ints.format(record.timestamp).as_bytes());
        buf.extend_from_slice(b",\"topic\":");
        buf.extend_from_slice(&self.topic_json);
        buf.extend_from_slice(b",\"value\":");
        match value {
            Some(value) => write_json_str(buf, value),
            None => buf.extend_from_slice(b"null"),
        }
        buf.extend_from_slice(b",\"valueSize\":");
        let value_size = overflow.unwrap_or(value.map_or(0, str::len));
        buf.extend_from_slice(ints.format(value_size).as_bytes());
        buf.push(b'}');
        if !record.headers.is_empty() {
            self.headers.push_with_headers(
                record.offset,
                record.timestamp,
                None,
                None,
                chunk.headers(record),
            );
        }
        let fingerprint = Fingerprint::of(record.timestamp, chunk.bytes(&record.key), raw_value);
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

    /// Encoded size so far, including the closing `]`.
    pub fn len(&self) -> usize {
        self.buf.len() + 1
    }

    pub fn records(&self) -> usize {
        self.records
    }

    /// Resident bytes of the object's buffer, as far as known: what it holds, or a reused
    /// buffer's whole capacity (touched by its earlier objects). A fresh buffer's capacity beyond
    /// its length is not resident until written.
    pub fn resident_bytes(&self) -> usize {
        self.buf.len().max(self.reused)
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

    /// Removes everything after `len` bytes (as returned by [`Self::len`] before a push) and
    /// forgets the last record. Used to move a record that made the object too large into the
    /// next object.
    pub fn pop_last(&mut self, len_before: usize, records_before: usize, last_offset_before: i64) {
        self.buf.truncate(len_before - 1);
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

    /// Closes the array and returns the body.
    pub fn finish(self) -> Bytes {
        self.finish_with_headers().0
    }

    /// Closes the array and returns the body and the records' headers.
    pub fn finish_with_headers(mut self) -> (Bytes, HeaderSidecar) {
        self.buf.push(b']');
        let body = match &self.pool {
            Some(pool) => pool.freeze(self.buf),
            None => Bytes::from(self.buf),
        };
        (body, self.headers)
    }
}

/// An object body that is not the JSON array this module writes (a bug if it ever happens).
#[derive(Debug, thiserror::Error)]
#[error("cannot read the object back: {0}")]
pub struct DecodeError(#[source] serde_json::Error);

/// Rebuilds the records of an object from its body and header sidecar: keys, values, timestamps
/// and headers byte for byte (the body's strings are the records' exact UTF-8). Records written
/// with `overflowFlag: true` are left out: their value is not in the body (they are in the
/// dead-letter topic whole).
pub fn decode_object(body: &[u8], headers: &HeaderSidecar) -> Result<RecordChunk, DecodeError> {
    #[derive(serde::Deserialize)]
    struct Stored<'a> {
        #[serde(borrow)]
        key: Option<std::borrow::Cow<'a, str>>,
        offset: i64,
        #[serde(rename = "overflowFlag")]
        overflow: bool,
        timestamp: i64,
        #[serde(borrow)]
        value: Option<std::borrow::Cow<'a, str>>,
    }
    let stored: Vec<Stored<'_>> = serde_json::from_slice(body).map_err(DecodeError)?;
    let mut chunk = RecordChunk::with_capacity(stored.len(), body.len());
    for record in stored.iter().filter(|record| !record.overflow) {
        let key = record.key.as_deref().map(str::as_bytes);
        let value = record.value.as_deref().map(str::as_bytes);
        match headers.find(record.offset) {
            Some(meta) => chunk.push_with_headers(
                record.offset,
                record.timestamp,
                key,
                value,
                headers.headers(meta),
            ),
            None => chunk.push(record.offset, record.timestamp, key, value),
        }
    }
    Ok(chunk)
}

fn utf8(bytes: Option<&[u8]>, field: Field, offset: i64) -> Result<Option<&str>, RecordError> {
    match bytes {
        None => Ok(None),
        Some(bytes) => {
            std::str::from_utf8(bytes)
                .map(Some)
                .map_err(|error| RecordError::InvalidUtf8 {
                    field,
                    offset,
                    valid_up_to: error.valid_up_to(),
                })
        }
    }
}

/// Writes `s` as a JSON string literal (quotes, backslashes, control characters escaped).
///
/// Most keys and values need no escaping: those are found eight bytes at a time and copied in
/// one go; the others go through `serde_json`'s escaper.
fn write_json_str(buf: &mut Vec<u8>, s: &str) {
    if needs_escape(s.as_bytes()) {
        // Serializing a `&str` into a `Vec` cannot fail.
        serde_json::to_writer(buf, s).expect("writing a JSON string into a Vec cannot fail");
    } else {
        buf.reserve(s.len() + 2);
        buf.push(b'"');
        buf.extend_from_slice(s.as_bytes());
        buf.push(b'"');
    }
}

/// Whether `bytes` holds a byte JSON requires escaped: `"`, `\` or a control character
/// (below 0x20). Exact (no false negatives, no false positives).
fn needs_escape(bytes: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // Bit-twiddling "has a byte less than n" (exact as a yes/no for n <= 128): a byte below n
    // borrows into its high bit, and `!word` masks out bytes that had the high bit set already.
    let has_less = |word: u64, n: u64| word.wrapping_sub(ONES * n) & !word & HIGH != 0;
    let has_byte = |word: u64, byte: u8| has_less(word ^ (ONES * u64::from(byte)), 1);
    let mut words = bytes.chunks_exact(8);
    for word in &mut words {
        let word = u64::from_le_bytes(word.try_into().expect("eight bytes"));
        if has_less(word, 0x20) || has_byte(word, b'"') || has_byte(word, b'\\') {
            return true;
        }
    }
    words
        .remainder()
        .iter()
        .any(|&b| b < 0x20 || b == b'"' || b == b'\\')
}

#[cfg(test)]
mod tests;
