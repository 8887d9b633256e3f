//! The Parquet format: one Parquet file per object, written with the `parquet` crate's column
//! writer straight into the object's buffer (no temporary file, no Arrow arrays).
//!
//! Columns, in this order (the JSON fields):
//!
//! | column | type |
//! |---|---|
//! | `key` | optional UTF-8 string (binary with `binary = "bytes"`) |
//! | `keyEncoding` | optional UTF-8 string, `"base64"` or null (only with `binary = "base64"`) |
//! | `offset` | int64 |
//! | `overflowFlag` | boolean |
//! | `partition` | int32 |
//! | `timestamp` | int64 (ms since the epoch, -1 when absent) |
//! | `topic` | UTF-8 string, dictionary-encoded |
//! | `value` | optional UTF-8 string (binary with `binary = "bytes"`) |
//! | `valueEncoding` | as `keyEncoding` |
//! | `valueSize` | int64 |
//! | `headers` | list of `{name, value, valueEncoding}` (only with `headers = true`) |
//!
//! Records are buffered column by column for one row group, which is written once it holds
//! `row_group_records` records or `row_group_bytes` bytes, at the start of the next push: the
//! record pushed last is always still buffered, so [`ParquetBody::pop_last`] can take it back.

use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use parquet::basic::{Compression as Codec, ZstdLevel};
use parquet::data_type::{BoolType, ByteArray, ByteArrayType, Int32Type, Int64Type};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::parser::parse_message_type;
use parquet::schema::types::ColumnPath;

use super::{Prepared, Text};
use crate::settings::{BinaryMode, FormatSettings, ParquetCompression, ParquetSettings};

/// Bytes counted per record besides its keys, values and headers (the fixed columns).
const RECORD_OVERHEAD: usize = 32;

const BASE64: &[u8] = b"base64";

/// The schema for the given options.
fn schema(base64: bool, bytes: bool, headers: bool) -> String {
    let text = if bytes { "" } else { "(UTF8)" };
    let encoding = |name: &str| {
        if base64 {
            format!("optional binary {name}Encoding (UTF8);")
        } else {
            String::new()
        }
    };
    let headers = if headers {
        "required group headers (LIST) { repeated group list { required group element { \
         required binary name (UTF8); optional binary value (UTF8); \
         optional binary valueEncoding (UTF8); } } }"
    } else {
        ""
    };
    format!(
        "message record {{ optional binary key {text}; {} required int64 offset; \
         required boolean overflowFlag; required int32 partition; required int64 timestamp; \
         required binary topic (UTF8); optional binary value {text}; {} \
         required int64 valueSize; {headers} }}",
        encoding("key"),
        encoding("value"),
    )
}

fn properties(settings: &ParquetSettings) -> WriterProperties {
    let codec = match settings.compression {
        ParquetCompression::Zstd { level } => {
            Codec::ZSTD(ZstdLevel::try_new(level).unwrap_or_default())
        }
        ParquetCompression::Snappy => Codec::SNAPPY,
        ParquetCompression::None => Codec::UNCOMPRESSED,
    };
    let mut builder = WriterProperties::builder()
        .set_created_by(format!("kafka-oss-sink {}", env!("CARGO_PKG_VERSION")))
        .set_compression(codec)
        // Keys and values are mostly distinct: a dictionary would be built only to be dropped.
        .set_dictionary_enabled(false)
        .set_column_dictionary_enabled(ColumnPath::from("topic"), true)
        .set_statistics_enabled(EnabledStatistics::Chunk);
    // Min/max of keys and values cost time and help no query; offsets and timestamps keep theirs.
    for column in ["key", "value", "topic"] {
        builder = builder
            .set_column_statistics_enabled(ColumnPath::from(column), EnabledStatistics::None);
    }
    builder.build()
}

/// The records of the open row group, column by column; strings live in `arena`.
#[derive(Default)]
struct Group {
    arena: Vec<u8>,
    keys: Vec<Option<Range<usize>>>,
    key_base64: Vec<bool>,
    offsets: Vec<i64>,
    overflow: Vec<bool>,
    timestamps: Vec<i64>,
    values: Vec<Option<Range<usize>>>,
    value_base64: Vec<bool>,
    value_sizes: Vec<i64>,
    /// Per record, how many of the headers below are its own.
    header_counts: Vec<usize>,
    header_names: Vec<Range<usize>>,
    header_values: Vec<Option<Range<usize>>>,
    header_base64: Vec<bool>,
}

impl Group {
    fn rows(&self) -> usize {
        self.offsets.len()
    }

    fn bytes(&self) -> usize {
        self.arena.len() + self.rows() * RECORD_OVERHEAD
    }

    /// Adds `text` to the arena; returns its range and whether it is base64.
    fn text(&mut self, text: Text<'_>) -> (Option<Range<usize>>, bool) {
        let start = self.arena.len();
        match text {
            Text::Null => (None, false),
            Text::Utf8(text) => {
                self.arena.extend_from_slice(text.as_bytes());
                (Some(start..self.arena.len()), false)
            }
            Text::Base64(bytes) => {
                super::json::append_base64(&mut self.arena, bytes);
                (Some(start..self.arena.len()), true)
            }
            Text::Bytes(bytes) => {
                self.arena.extend_from_slice(bytes);
                (Some(start..self.arena.len()), false)
            }
        }
    }
}

/// What every row group of the file shares.
struct Layout {
    base64: bool,
    headers: bool,
    topic: Bytes,
    partition: i32,
}

pub(super) struct ParquetBody {
    writer: SerializedFileWriter<Vec<u8>>,
    settings: ParquetSettings,
    layout: Layout,
    group: Group,
    /// Arena length and header count before the last push.
    last: (usize, usize),
}

impl ParquetBody {
    pub fn new(format: &FormatSettings, topic: &str, partition: i32, buf: Vec<u8>) -> Self {
        let base64 = format.binary == BinaryMode::Base64;
        let schema = parse_message_type(&schema(
            base64,
            format.binary == BinaryMode::Bytes,
            format.headers,
        ))
        .expect("the schema is well-formed");
        let writer =
            SerializedFileWriter::new(buf, Arc::new(schema), Arc::new(properties(&format.parquet)))
                .expect("writing a Parquet header into a Vec cannot fail");
        ParquetBody {
            writer,
            settings: format.parquet,
            layout: Layout {
                base64,
                headers: format.headers,
                topic: Bytes::copy_from_slice(topic.as_bytes()),
                partition,
            },
            group: Group::default(),
            last: (0, 0),
        }
    }

    pub fn len(&self) -> usize {
        self.writer.bytes_written() + self.group.bytes()
    }

    pub fn push(&mut self, record: &Prepared<'_>) {
        if self.group.rows() >= self.settings.row_group_records
            || self.group.bytes() >= self.settings.row_group_bytes
        {
            self.write_group();
        }
        let group = &mut self.group;
        self.last = (group.arena.len(), group.header_names.len());
        let (key, key_base64) = group.text(record.key);
        group.keys.push(key);
        group.key_base64.push(key_base64);
        group.offsets.push(record.offset);
        group.overflow.push(record.overflow);
        group.timestamps.push(record.timestamp);
        let (value, value_base64) = group.text(record.value);
        group.values.push(value);
        group.value_base64.push(value_base64);
        group.value_sizes.push(record.value_size as i64);
        if let Some((chunk, meta)) = record.headers {
            let mut count = 0;
            for (name, value) in chunk.headers(meta) {
                let start = group.arena.len();
                group
                    .arena
                    .extend_from_slice(String::from_utf8_lossy(name).as_bytes());
                group.header_names.push(start..group.arena.len());
                let (value, base64) = group.text(Text::header(value));
                group.header_values.push(value);
                group.header_base64.push(base64);
                count += 1;
            }
            group.header_counts.push(count);
        }
    }

    /// Takes back the record pushed last (always still in the open row group).
    pub fn pop_last(&mut self) {
        let (arena, headers) = self.last;
        let group = &mut self.group;
        group.arena.truncate(arena);
        group.keys.pop();
        group.key_base64.pop();
        group.offsets.pop();
        group.overflow.pop();
        group.timestamps.pop();
        group.values.pop();
        group.value_base64.pop();
        group.value_sizes.pop();
        if self.layout.headers {
            group.header_counts.pop();
            group.header_names.truncate(headers);
            group.header_values.truncate(headers);
            group.header_base64.truncate(headers);
        }
    }

    pub fn finish(mut self) -> Vec<u8> {
        if self.group.rows() > 0 {
            self.write_group();
        }
        self.writer
            .into_inner()
            .expect("writing a Parquet footer into a Vec cannot fail")
    }

    /// Writes the open row group, column by column in schema order.
    fn write_group(&mut self) {
        let group = std::mem::take(&mut self.group);
        write_group(&mut self.writer, group, &self.layout)
            .expect("writing Parquet into a Vec cannot fail");
    }
}

/// Values and definition levels of an optional string column.
fn optional(arena: &Bytes, slots: &[Option<Range<usize>>]) -> (Vec<ByteArray>, Vec<i16>) {
    let values = slots
        .iter()
        .flatten()
        .map(|range| ByteArray::from(arena.slice(range.clone())))
        .collect();
    let levels = slots.iter().map(|slot| i16::from(slot.is_some())).collect();
    (values, levels)
}

/// The `*Encoding` column: `"base64"` where `flags` is set, else null.
fn encodings(flags: &[bool]) -> (Vec<ByteArray>, Vec<i16>) {
    let base64 = Bytes::from_static(BASE64);
    let values = flags
        .iter()
        .filter(|flag| **flag)
        .map(|_| ByteArray::from(base64.clone()))
        .collect();
    (values, flags.iter().map(|flag| i16::from(*flag)).collect())
}

fn write_group(
    writer: &mut SerializedFileWriter<Vec<u8>>,
    mut group: Group,
    body: &Layout,
) -> parquet::errors::Result<()> {
    let rows = group.rows();
    let arena = Bytes::from(std::mem::take(&mut group.arena));
    let mut row_group = writer.next_row_group()?;
    macro_rules! column {
        ($type:ty, $values:expr, $def:expr, $rep:expr) => {{
            let mut column = row_group.next_column()?.expect("a column of the schema");
            column.typed::<$type>().write_batch($values, $def, $rep)?;
            column.close()?;
        }};
    }
    let (keys, key_levels) = optional(&arena, &group.keys);
    column!(ByteArrayType, &keys, Some(&key_levels), None);
    if body.base64 {
        let (values, levels) = encodings(&group.key_base64);
        column!(ByteArrayType, &values, Some(&levels), None);
    }
    column!(Int64Type, &group.offsets, None, None);
    column!(BoolType, &group.overflow, None, None);
    column!(Int32Type, &vec![body.partition; rows], None, None);
    column!(Int64Type, &group.timestamps, None, None);
    let topics = vec![ByteArray::from(body.topic.clone()); rows];
    column!(ByteArrayType, &topics, None, None);
    let (values, value_levels) = optional(&arena, &group.values);
    column!(ByteArrayType, &values, Some(&value_levels), None);
    if body.base64 {
        let (values, levels) = encodings(&group.value_base64);
        column!(ByteArrayType, &values, Some(&levels), None);
    }
    column!(Int64Type, &group.value_sizes, None, None);
    if body.headers {
        // One level entry per header, or one empty-list entry for a record without headers.
        let mut repetition = Vec::with_capacity(group.header_names.len() + rows);
        let mut present = Vec::with_capacity(repetition.capacity());
        for &count in &group.header_counts {
            if count == 0 {
                repetition.push(0);
                present.push(false);
            }
            for index in 0..count {
                repetition.push(i16::from(index > 0));
                present.push(true);
            }
        }
        let list_levels: Vec<i16> = present.iter().map(|&p| i16::from(p)).collect();
        let names: Vec<ByteArray> = group
            .header_names
            .iter()
            .map(|range| ByteArray::from(arena.slice(range.clone())))
            .collect();
        column!(ByteArrayType, &names, Some(&list_levels), Some(&repetition));
        // Optional fields inside the list element: 0 no header, 1 null, 2 a value.
        let mut headers = group.header_values.iter().zip(&group.header_base64);
        let mut value_levels = Vec::with_capacity(present.len());
        let mut encoding_levels = Vec::with_capacity(present.len());
        let mut values = Vec::new();
        let mut encodings = Vec::new();
        for &is_header in &present {
            if !is_header {
                value_levels.push(0);
                encoding_levels.push(0);
                continue;
            }
            let (value, base64) = headers.next().expect("one entry per header");
            match value {
                Some(range) => {
                    values.push(ByteArray::from(arena.slice(range.clone())));
                    value_levels.push(2);
                }
                None => value_levels.push(1),
            }
            if *base64 {
                encodings.push(ByteArray::from(Bytes::from_static(BASE64)));
                encoding_levels.push(2);
            } else {
                encoding_levels.push(1);
            }
        }
        column!(
            ByteArrayType,
            &values,
            Some(&value_levels),
            Some(&repetition)
        );
        column!(
            ByteArrayType,
            &encodings,
            Some(&encoding_levels),
            Some(&repetition)
        );
    }
    row_group.close()?;
    Ok(())
}
