//! Reads an object body of any format back into records: for a refused object's records (sent
//! on to the abnormal-data topic) and for `reconcile --deep`. The format is told by the key's
//! extension ([`crate::object_key::BodyFormat::of_key`]).

use std::borrow::Cow;
use std::io::Read;

use base64::Engine;
use bytes::Bytes;
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::record::Field as Cell;

use super::HeaderSidecar;
use crate::object_key::{BodyFormat, Codec};
use crate::record::RecordChunk;
use crate::settings::FormatKind;

/// One record as an object holds it, keys and values as the exact bytes (base64 undone).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StoredRecord {
    pub key: Option<Vec<u8>>,
    pub offset: i64,
    pub overflow: bool,
    pub partition: i32,
    pub timestamp: i64,
    pub topic: String,
    /// `None` for a tombstone, and for an overflowed value (not in the object).
    pub value: Option<Vec<u8>>,
    pub value_size: i64,
    /// `(name, value)`, when the object was written with `headers = true`.
    pub headers: Option<Vec<(String, Option<Vec<u8>>)>>,
}

/// An object body that cannot be read back.
#[derive(Debug, thiserror::Error)]
#[error("cannot read the object back: {0}")]
pub struct DecodeError(pub String);

/// Reads the records of the object `key` from its body.
pub fn read_object(key: &str, body: &[u8]) -> Result<Vec<StoredRecord>, DecodeError> {
    let format = BodyFormat::of_key(key)
        .ok_or_else(|| DecodeError(format!("`{key}` has no extension this version reads")))?;
    let json = |bytes: &[u8]| match format.kind {
        FormatKind::Jsonl => read_lines(bytes),
        _ => read_array(bytes),
    };
    match (format.kind, format.codec) {
        (FormatKind::Parquet, _) => read_parquet(body),
        (_, Codec::None) => json(body),
        (_, Codec::Gzip) => {
            let mut bytes = Vec::with_capacity(body.len() * 4);
            flate2::read::GzDecoder::new(body)
                .read_to_end(&mut bytes)
                .map_err(|error| DecodeError(format!("not a gzip stream: {error}")))?;
            json(&bytes)
        }
        (_, Codec::Zstd) => {
            let bytes = zstd::stream::decode_all(body)
                .map_err(|error| DecodeError(format!("not a zstd stream: {error}")))?;
            json(&bytes)
        }
    }
}

/// Rebuilds the records of an object from its body and header sidecar: keys, values, timestamps
/// and headers byte for byte. Records written with `overflowFlag: true` are left out: their
/// value is not in the body (they are in the dead-letter topic whole).
pub fn decode_object(
    key: &str,
    body: &[u8],
    headers: &HeaderSidecar,
) -> Result<RecordChunk, DecodeError> {
    let stored = read_object(key, body)?;
    let mut chunk = RecordChunk::with_capacity(stored.len(), body.len());
    for record in stored.iter().filter(|record| !record.overflow) {
        let (key, value) = (record.key.as_deref(), record.value.as_deref());
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

#[derive(serde::Deserialize)]
struct JsonRecord<'a> {
    #[serde(borrow)]
    key: Option<Cow<'a, str>>,
    #[serde(rename = "keyEncoding", borrow)]
    key_encoding: Option<Cow<'a, str>>,
    offset: i64,
    #[serde(rename = "overflowFlag", default)]
    overflow: bool,
    partition: i32,
    timestamp: i64,
    #[serde(borrow)]
    topic: Cow<'a, str>,
    #[serde(borrow)]
    value: Option<Cow<'a, str>>,
    #[serde(rename = "valueEncoding", borrow)]
    value_encoding: Option<Cow<'a, str>>,
    #[serde(rename = "valueSize", default)]
    value_size: i64,
    #[serde(borrow)]
    headers: Option<Vec<JsonHeader<'a>>>,
}

#[derive(serde::Deserialize)]
struct JsonHeader<'a> {
    #[serde(borrow)]
    name: Cow<'a, str>,
    #[serde(borrow)]
    value: Option<Cow<'a, str>>,
    #[serde(rename = "valueEncoding", borrow)]
    value_encoding: Option<Cow<'a, str>>,
}

/// A string field back to bytes, undoing base64 where `encoding` says so.
fn bytes_of(
    text: Option<&str>,
    encoding: Option<&str>,
    what: &str,
) -> Result<Option<Vec<u8>>, DecodeError> {
    match (text, encoding) {
        (None, _) => Ok(None),
        (Some(text), None) => Ok(Some(text.as_bytes().to_vec())),
        (Some(text), Some("base64")) => base64::engine::general_purpose::STANDARD
            .decode(text)
            .map(Some)
            .map_err(|error| DecodeError(format!("{what} is not valid base64: {error}"))),
        (Some(_), Some(other)) => Err(DecodeError(format!(
            "{what} has unknown encoding {other:?}"
        ))),
    }
}

impl JsonRecord<'_> {
    fn into_stored(self) -> Result<StoredRecord, DecodeError> {
        let headers = match self.headers {
            None => None,
            Some(headers) => Some(
                headers
                    .into_iter()
                    .map(|header| {
                        let value = bytes_of(
                            header.value.as_deref(),
                            header.value_encoding.as_deref(),
                            "a header value",
                        )?;
                        Ok((header.name.into_owned(), value))
                    })
                    .collect::<Result<_, DecodeError>>()?,
            ),
        };
        Ok(StoredRecord {
            key: bytes_of(self.key.as_deref(), self.key_encoding.as_deref(), "a key")?,
            offset: self.offset,
            overflow: self.overflow,
            partition: self.partition,
            timestamp: self.timestamp,
            topic: self.topic.into_owned(),
            value: bytes_of(
                self.value.as_deref(),
                self.value_encoding.as_deref(),
                "a value",
            )?,
            value_size: self.value_size,
            headers,
        })
    }
}

fn read_array(bytes: &[u8]) -> Result<Vec<StoredRecord>, DecodeError> {
    let records: Vec<JsonRecord<'_>> = serde_json::from_slice(bytes)
        .map_err(|error| DecodeError(format!("not a JSON array of records: {error}")))?;
    records.into_iter().map(JsonRecord::into_stored).collect()
}

fn read_lines(bytes: &[u8]) -> Result<Vec<StoredRecord>, DecodeError> {
    if !bytes.is_empty() && !bytes.ends_with(b"\n") {
        return Err(DecodeError("its last line is cut short".to_owned()));
    }
    bytes
        .split(|&byte| byte == b'\n')
        .enumerate()
        .filter(|(_, line)| !line.is_empty())
        .map(|(index, line)| {
            let record: JsonRecord<'_> = serde_json::from_slice(line).map_err(|error| {
                DecodeError(format!("line {} is not a JSON record: {error}", index + 1))
            })?;
            record.into_stored()
        })
        .collect()
}

fn read_parquet(body: &[u8]) -> Result<Vec<StoredRecord>, DecodeError> {
    let invalid =
        |error: parquet::errors::ParquetError| DecodeError(format!("not a Parquet file: {error}"));
    let reader = SerializedFileReader::new(Bytes::copy_from_slice(body)).map_err(invalid)?;
    let mut records = Vec::with_capacity(reader.metadata().file_metadata().num_rows() as usize);
    for row in reader.get_row_iter(None).map_err(invalid)? {
        let mut record = StoredRecord::default();
        let (mut key_encoding, mut value_encoding) = (None, None);
        let (mut key, mut value) = (None, None);
        for (name, cell) in row.map_err(invalid)?.into_columns() {
            match (name.as_str(), cell) {
                ("key", Cell::Bytes(bytes)) => record.key = Some(bytes.data().to_vec()),
                ("key", cell) => key = string(cell),
                ("keyEncoding", cell) => key_encoding = string(cell),
                ("offset", Cell::Long(offset)) => record.offset = offset,
                ("overflowFlag", Cell::Bool(overflow)) => record.overflow = overflow,
                ("partition", Cell::Int(partition)) => record.partition = partition,
                ("timestamp", Cell::Long(timestamp)) => record.timestamp = timestamp,
                ("topic", Cell::Str(topic)) => record.topic = topic,
                ("value", Cell::Bytes(bytes)) => record.value = Some(bytes.data().to_vec()),
                ("value", cell) => value = string(cell),
                ("valueEncoding", cell) => value_encoding = string(cell),
                ("valueSize", Cell::Long(size)) => record.value_size = size,
                ("headers", Cell::ListInternal(list)) => {
                    let mut headers = Vec::new();
                    for element in list.elements() {
                        let Cell::Group(header) = element else {
                            return Err(DecodeError("a header is not a group".to_owned()));
                        };
                        let (mut name, mut value, mut encoding) = (String::new(), None, None);
                        for (field, cell) in header.get_column_iter() {
                            match field.as_str() {
                                "name" => name = string(cell.clone()).unwrap_or_default(),
                                "value" => value = string(cell.clone()),
                                "valueEncoding" => encoding = string(cell.clone()),
                                _ => {}
                            }
                        }
                        let value =
                            bytes_of(value.as_deref(), encoding.as_deref(), "a header value")?;
                        headers.push((name, value));
                    }
                    record.headers = Some(headers);
                }
                (name, cell) => {
                    return Err(DecodeError(format!("unexpected column `{name}`: {cell:?}")));
                }
            }
        }
        if record.key.is_none() {
            record.key = bytes_of(key.as_deref(), key_encoding.as_deref(), "a key")?;
        }
        if record.value.is_none() {
            record.value = bytes_of(value.as_deref(), value_encoding.as_deref(), "a value")?;
        }
        records.push(record);
    }
    Ok(records)
}

fn string(cell: Cell) -> Option<String> {
    match cell {
        Cell::Str(text) => Some(text),
        Cell::Bytes(bytes) => Some(String::from_utf8_lossy(bytes.data()).into_owned()),
        _ => None,
    }
}
