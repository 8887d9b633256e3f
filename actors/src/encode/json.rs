//! The JSON formats: the product page's array (`[{..},{..}]`) and JSON lines (`{..}\n{..}\n`),
//! optionally compressed as a whole.
//!
//! Records are encoded into `pending`. Uncompressed, `pending` is the object's buffer itself.
//! Compressed, `pending` is handed to the compressor (which writes into the object's buffer)
//! whenever it holds [`FLUSH_BYTES`] at the start of a push: the body is compressed while it is
//! encoded, never in a second pass, and the record pushed last is always still in `pending`, so
//! [`JsonBody::pop_last`] can take it back. The compressor (a few MB of state for zstd) is
//! created at the first flush: a partition whose open object stays under [`FLUSH_BYTES`], as
//! most do with many partitions, holds none until its object is sealed.

use std::io::Write;

use base64::Engine;

use super::{Prepared, Text};
use crate::settings::{Compression, FormatKind, FormatSettings};

/// Encoded bytes handed to the compressor at once.
const FLUSH_BYTES: usize = 64 * 1024;

/// Where the encoded bytes go.
enum Sink {
    /// `pending` is the body.
    Plain,
    /// Nothing flushed yet: the object's buffer, and the codec it will be compressed with.
    Idle(Vec<u8>, Compression),
    Gzip(Box<flate2::write::GzEncoder<Vec<u8>>>),
    Zstd(Box<zstd::stream::write::Encoder<'static, Vec<u8>>>),
}

impl Sink {
    /// The compressor for `codec`, writing into `buf`.
    fn start(buf: Vec<u8>, codec: Compression) -> Sink {
        match codec {
            Compression::None => unreachable!("an uncompressed body has no compressor"),
            // No file name and mtime 0: the same records always give the same bytes.
            Compression::Gzip { level } => Sink::Gzip(Box::new(
                flate2::GzBuilder::new().write(buf, flate2::Compression::new(level.min(9))),
            )),
            Compression::Zstd { level } => {
                let mut encoder = zstd::stream::write::Encoder::new(buf, level)
                    .expect("a zstd level from 1 to 22 is valid");
                encoder
                    .include_checksum(true)
                    .expect("the checksum flag is valid");
                Sink::Zstd(Box::new(encoder))
            }
        }
    }
}

pub(super) struct JsonBody {
    lines: bool,
    sink: Sink,
    pending: Vec<u8>,
    /// Encoded bytes already handed to the compressor.
    flushed: usize,
    /// Bytes of the body taken out as streamed parts ([`Self::take_part`]): uncompressed, the
    /// encoded bytes; compressed, the compressed ones.
    taken: usize,
    /// `,"partition":<p>,"timestamp":` is constant per partition; so is the escaped topic.
    partition_json: Vec<u8>,
    topic_json: Vec<u8>,
}

impl JsonBody {
    pub fn new(format: &FormatSettings, topic: &str, partition: i32, buf: Vec<u8>) -> Self {
        let (sink, mut pending) = match format.compression {
            Compression::None => (Sink::Plain, buf),
            codec => (Sink::Idle(buf, codec), Vec::with_capacity(4096)),
        };
        let lines = format.kind == FormatKind::Jsonl;
        if !lines {
            pending.push(b'[');
        }
        let mut topic_json = Vec::with_capacity(topic.len() + 2);
        write_json_str(&mut topic_json, topic);
        JsonBody {
            lines,
            sink,
            pending,
            flushed: 0,
            taken: 0,
            partition_json: format!(",\"partition\":{partition},\"timestamp\":").into_bytes(),
            topic_json,
        }
    }

    /// What [`Self::finish`] still adds: the array's `]`.
    fn closing(&self) -> usize {
        usize::from(!self.lines)
    }

    pub fn len(&self) -> usize {
        match self.sink {
            Sink::Plain => self.taken + self.pending.len() + self.closing(),
            _ => self.flushed + self.pending.len() + self.closing(),
        }
    }

    /// Bytes of the body in memory: what [`Self::len`] counts, less what was taken out as parts
    /// (compressed: the compressed bytes once a part was taken).
    pub fn resident(&self) -> usize {
        match &self.sink {
            Sink::Plain => self.pending.len() + self.closing(),
            _ if self.taken == 0 => self.len(),
            _ => self.pending.len() + self.output_len(),
        }
    }

    /// Compressed bytes written so far and not taken out.
    fn output_len(&self) -> usize {
        match &self.sink {
            Sink::Plain => self.pending.len(),
            Sink::Idle(..) => 0,
            Sink::Gzip(encoder) => encoder.get_ref().len(),
            Sink::Zstd(encoder) => encoder.get_ref().len(),
        }
    }

    /// Bytes [`Self::take_part`] would take: every byte of the body written so far (for the
    /// array, its opening bracket too; never its closing one).
    pub fn streamable(&self) -> usize {
        self.output_len()
    }

    /// Takes every body byte written so far out of the buffer, which `fresh` replaces: a part of
    /// the body, whose rest follows in the next part or at [`Self::finish`]. Only between pushes
    /// (the record pushed last cannot be taken back after this).
    pub fn take_part(&mut self, fresh: Vec<u8>) -> Vec<u8> {
        let part = match &mut self.sink {
            Sink::Plain => std::mem::replace(&mut self.pending, fresh),
            Sink::Idle(..) => return fresh,
            Sink::Gzip(encoder) => std::mem::replace(encoder.get_mut(), fresh),
            Sink::Zstd(encoder) => std::mem::replace(encoder.get_mut(), fresh),
        };
        self.taken += part.len();
        part
    }

    pub fn push(&mut self, record: &Prepared<'_>, records_before: usize) {
        if self.pending.len() >= FLUSH_BYTES {
            self.flush();
        }
        let buf = &mut self.pending;
        if records_before > 0 && !self.lines {
            buf.push(b',');
        }
        let mut ints = itoa::Buffer::new();
        buf.extend_from_slice(b"{\"key\":");
        write_text(buf, record.key, b",\"keyEncoding\":\"base64\"");
        buf.extend_from_slice(b",\"offset\":");
        buf.extend_from_slice(ints.format(record.offset).as_bytes());
        buf.extend_from_slice(if record.overflow {
            b",\"overflowFlag\":true"
        } else {
            b",\"overflowFlag\":false"
        });
        buf.extend_from_slice(&self.partition_json);
        buf.extend_from_slice(ints.format(record.timestamp).as_bytes());
        buf.extend_from_slice(b",\"topic\":");
        buf.extend_from_slice(&self.topic_json);
        buf.extend_from_slice(b",\"value\":");
        write_text(buf, record.value, b",\"valueEncoding\":\"base64\"");
        buf.extend_from_slice(b",\"valueSize\":");
        buf.extend_from_slice(ints.format(record.value_size).as_bytes());
        if let Some((chunk, meta)) = record.headers {
            buf.extend_from_slice(b",\"headers\":[");
            for (index, (name, value)) in chunk.headers(meta).enumerate() {
                if index > 0 {
                    buf.push(b',');
                }
                buf.extend_from_slice(b"{\"name\":");
                // Kafka header names are strings; a name that is not UTF-8 cannot come from
                // the client, so it is written with replacement characters rather than refused.
                write_json_str(buf, &String::from_utf8_lossy(name));
                buf.extend_from_slice(b",\"value\":");
                write_text(buf, Text::header(value), b",\"valueEncoding\":\"base64\"");
                buf.push(b'}');
            }
            buf.push(b']');
        }
        buf.push(b'}');
        if self.lines {
            buf.push(b'\n');
        }
    }

    /// Takes back the record pushed last (`len_before`: [`Self::len`] before it).
    pub fn pop_last(&mut self, len_before: usize) {
        let keep = len_before - self.closing() - self.flushed - self.taken_plain();
        self.pending.truncate(keep);
    }

    /// Encoded bytes taken out of an uncompressed body.
    fn taken_plain(&self) -> usize {
        match self.sink {
            Sink::Plain => self.taken,
            _ => 0,
        }
    }

    fn flush(&mut self) {
        if let Sink::Idle(buf, codec) = &mut self.sink {
            let codec = *codec;
            self.sink = Sink::start(std::mem::take(buf), codec);
        }
        let written = match &mut self.sink {
            Sink::Plain => return,
            Sink::Idle(..) => unreachable!("started above"),
            Sink::Gzip(encoder) => encoder.write_all(&self.pending),
            Sink::Zstd(encoder) => encoder.write_all(&self.pending),
        };
        written.expect("compressing into a Vec cannot fail");
        self.flushed += self.pending.len();
        self.pending.clear();
    }

    pub fn finish(mut self) -> Vec<u8> {
        if !self.lines {
            self.pending.push(b']');
        }
        self.flush();
        match self.sink {
            Sink::Plain => Ok(self.pending),
            Sink::Idle(..) => unreachable!("flushed above"),
            Sink::Gzip(encoder) => encoder.finish(),
            Sink::Zstd(encoder) => encoder.finish(),
        }
        .expect("compressing into a Vec cannot fail")
    }
}

/// Writes a key or value: a string, `null`, or base64 followed by `encoding_field`.
fn write_text(buf: &mut Vec<u8>, text: Text<'_>, encoding_field: &[u8]) {
    match text {
        Text::Null => buf.extend_from_slice(b"null"),
        Text::Utf8(text) => write_json_str(buf, text),
        Text::Bytes(_) => unreachable!("binary columns are Parquet's (the config refuses them)"),
        Text::Base64(bytes) => {
            buf.push(b'"');
            append_base64(buf, bytes);
            buf.push(b'"');
            buf.extend_from_slice(encoding_field);
        }
    }
}

/// Appends `bytes` base64-encoded (standard alphabet, padded).
pub(super) fn append_base64(buf: &mut Vec<u8>, bytes: &[u8]) {
    let start = buf.len();
    let len = base64::encoded_len(bytes.len(), true).expect("an object's size fits in usize");
    buf.resize(start + len, 0);
    base64::engine::general_purpose::STANDARD
        .encode_slice(bytes, &mut buf[start..])
        .expect("the buffer has the encoded length");
}

/// Writes `s` as a JSON string literal (quotes, backslashes, control characters escaped).
///
/// Most keys and values need no escaping: those are found eight bytes at a time and copied in
/// one go; the others go through `serde_json`'s escaper.
pub(super) fn write_json_str(buf: &mut Vec<u8>, s: &str) {
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
pub(super) fn needs_escape(bytes: &[u8]) -> bool {
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
