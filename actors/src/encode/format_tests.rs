//! Every format, compression and option reads back to the records that went in.

use super::read::{read_object, StoredRecord};
use super::*;
use crate::object_key::{object_key_with, BodyFormat};
use crate::settings::{Compression, ParquetCompression, ParquetSettings};

const TRICKY: &str = "{\"a\": \"b\\\\c\"}\n\t\u{0}\u{1f} é 日本 🎉";

/// Records with every edge: null key, empty key and value, tombstone, tricky text, timestamps
/// -1 and far future, binary key and value, headers (duplicates, null and binary values).
fn dataset() -> RecordChunk {
    let mut chunk = RecordChunk::default();
    let headers: [(&[u8], Option<&[u8]>); 4] = [
        (b"h", Some(b"one")),
        (b"h", Some(b"\x00\xff binary")),
        (b"empty", None),
        ("ключ".as_bytes(), Some(b"")),
    ];
    chunk.push(10, 1_700_000_000_000, None, Some(TRICKY.as_bytes()));
    chunk.push(11, -1, Some(b""), Some(b""));
    chunk.push_with_headers(12, 0, Some("ключ".as_bytes()), None, headers.into_iter());
    chunk.push(
        13,
        253_402_300_799_999,
        Some(b"\xff\xfe"),
        Some(b"\x80abc\x00"),
    );
    chunk.push(14, 5, Some(b"big"), Some("x".repeat(200).as_bytes()));
    for offset in 15..300 {
        let value = format!("value {offset} {}", "y".repeat(offset as usize % 50));
        chunk.push(offset, offset * 1000, Some(b"k"), Some(value.as_bytes()));
    }
    chunk
}

fn formats() -> Vec<FormatSettings> {
    let mut formats = Vec::new();
    for kind in [FormatKind::JsonArray, FormatKind::Jsonl] {
        for compression in [
            Compression::None,
            Compression::Gzip { level: 6 },
            Compression::Zstd { level: 3 },
        ] {
            formats.push(FormatSettings {
                kind,
                compression,
                ..FormatSettings::default()
            });
        }
    }
    for compression in [
        ParquetCompression::Zstd { level: 3 },
        ParquetCompression::Snappy,
        ParquetCompression::None,
    ] {
        formats.push(FormatSettings {
            kind: FormatKind::Parquet,
            binary: if compression == ParquetCompression::Snappy {
                // Binary columns; the tests that want base64 set it over this.
                BinaryMode::Bytes
            } else {
                BinaryMode::DeadLetter
            },
            parquet: ParquetSettings {
                compression,
                // Several row groups, and one cut by bytes.
                row_group_records: 100,
                row_group_bytes: 4096,
            },
            ..FormatSettings::default()
        });
    }
    formats
}

/// The binary mode that takes any key and value: Parquet's binary columns where the format has
/// them, else base64.
fn any_bytes(format: FormatSettings) -> BinaryMode {
    match format.binary {
        BinaryMode::Bytes => BinaryMode::Bytes,
        _ => BinaryMode::Base64,
    }
}

/// Encodes `chunk` (values over 100 bytes overflow) and reads it back.
fn round_trip(format: FormatSettings, chunk: &RecordChunk) -> (Vec<StoredRecord>, usize) {
    let mut encoder = ObjectEncoder::with_format(format, "topic.a", 7, 64, None);
    for record in chunk.records() {
        encoder.push_limited(chunk, record, Some(100)).unwrap();
    }
    let key = object_key_with(
        "p/",
        "topic.a",
        7,
        10,
        299,
        BodyFormat::of(&format).extension(),
    );
    let body = encoder.finish();
    (read_object(&key, &body).unwrap(), body.len())
}

fn check(format: FormatSettings, chunk: &RecordChunk, stored: &[StoredRecord]) {
    assert_eq!(stored.len(), chunk.len(), "{format:?}");
    for (record, stored) in chunk.records().iter().zip(stored) {
        let context = format!("{format:?} offset {}", record.offset);
        let value = chunk.bytes(&record.value);
        let overflow = value.is_some_and(|value| value.len() > 100);
        assert_eq!(stored.offset, record.offset, "{context}");
        assert_eq!(stored.timestamp, record.timestamp, "{context}");
        assert_eq!(stored.partition, 7, "{context}");
        assert_eq!(stored.topic, "topic.a", "{context}");
        assert_eq!(stored.key.as_deref(), chunk.bytes(&record.key), "{context}");
        assert_eq!(stored.overflow, overflow, "{context}");
        let expected_value = if overflow { None } else { value };
        assert_eq!(stored.value.as_deref(), expected_value, "{context}");
        assert_eq!(
            stored.value_size,
            value.map_or(0, <[u8]>::len) as i64,
            "{context}"
        );
        match &stored.headers {
            None => assert!(!format.headers, "{context}"),
            Some(headers) => {
                let expected: Vec<(String, Option<Vec<u8>>)> = chunk
                    .headers(record)
                    .map(|(name, value)| {
                        (
                            String::from_utf8(name.to_vec()).unwrap(),
                            value.map(<[u8]>::to_vec),
                        )
                    })
                    .collect();
                assert_eq!(headers, &expected, "{context}");
            }
        }
    }
}

#[test]
fn every_format_reads_back_every_field_with_base64_and_headers() {
    let chunk = dataset();
    for format in formats() {
        let format = FormatSettings {
            binary: any_bytes(format),
            headers: true,
            ..format
        };
        let (stored, _) = round_trip(format, &chunk);
        check(format, &chunk, &stored);
    }
}

#[test]
fn every_format_reads_back_without_options() {
    let mut chunk = dataset();
    // Without base64, only UTF-8 records go in.
    let mut utf8 = RecordChunk::default();
    for record in chunk.records() {
        let (key, value) = (chunk.bytes(&record.key), chunk.bytes(&record.value));
        if [key, value]
            .iter()
            .flatten()
            .all(|b| std::str::from_utf8(b).is_ok())
        {
            utf8.push(record.offset, record.timestamp, key, value);
        }
    }
    chunk = utf8;
    for format in formats() {
        let (stored, _) = round_trip(format, &chunk);
        check(format, &chunk, &stored);
    }
}

#[test]
fn without_base64_binary_is_still_an_error_in_every_format() {
    let mut chunk = RecordChunk::default();
    chunk.push(0, 1, Some(b"\xff"), Some(b"v"));
    for format in formats()
        .into_iter()
        .filter(|f| f.binary != BinaryMode::Bytes)
    {
        let mut encoder = ObjectEncoder::with_format(format, "t", 0, 64, None);
        let error = encoder.push(&chunk, &chunk.records()[0]).unwrap_err();
        assert_eq!(error.offset(), 0);
        assert!(encoder.is_empty());
    }
}

#[test]
fn base64_fields_appear_only_where_needed() {
    let mut chunk = RecordChunk::default();
    chunk.push(0, 1, Some(b"k"), Some(b"\xff"));
    chunk.push(1, 1, Some(b"k"), Some(b"v"));
    let format = FormatSettings {
        kind: FormatKind::Jsonl,
        binary: BinaryMode::Base64,
        ..FormatSettings::default()
    };
    let mut encoder = ObjectEncoder::with_format(format, "t", 0, 64, None);
    for record in chunk.records() {
        encoder.push(&chunk, record).unwrap();
    }
    assert_eq!(
        std::str::from_utf8(&encoder.finish()).unwrap(),
        "{\"key\":\"k\",\"offset\":0,\"overflowFlag\":false,\"partition\":0,\"timestamp\":1,\
         \"topic\":\"t\",\"value\":\"/w==\",\"valueEncoding\":\"base64\",\"valueSize\":1}\n\
         {\"key\":\"k\",\"offset\":1,\"overflowFlag\":false,\"partition\":0,\"timestamp\":1,\
         \"topic\":\"t\",\"value\":\"v\",\"valueSize\":1}\n"
    );
}

#[test]
fn headers_are_written_in_order_with_duplicates() {
    let mut chunk = RecordChunk::default();
    let headers: [(&[u8], Option<&[u8]>); 3] =
        [(b"a", Some(b"1")), (b"a", Some(b"\xff")), (b"b", None)];
    chunk.push_with_headers(0, 1, None, None, headers.into_iter());
    chunk.push(1, 1, None, None);
    let format = FormatSettings {
        kind: FormatKind::Jsonl,
        headers: true,
        ..FormatSettings::default()
    };
    let mut encoder = ObjectEncoder::with_format(format, "t", 0, 64, None);
    for record in chunk.records() {
        encoder.push(&chunk, record).unwrap();
    }
    let text = String::from_utf8(encoder.finish().to_vec()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].ends_with(
        ",\"valueSize\":0,\"headers\":[{\"name\":\"a\",\"value\":\"1\"},\
         {\"name\":\"a\",\"value\":\"/w==\",\"valueEncoding\":\"base64\"},\
         {\"name\":\"b\",\"value\":null}]}"
    ));
    assert!(lines[1].ends_with(",\"headers\":[]}"));
}

#[test]
fn compression_shrinks_and_len_bounds_the_uncompressed_size() {
    let chunk = dataset();
    let base64 = |format| FormatSettings {
        binary: any_bytes(format),
        ..format
    };
    let plain = round_trip(base64(FormatSettings::default()), &chunk).1;
    for format in formats().into_iter().skip(1).map(base64) {
        let mut encoder = ObjectEncoder::with_format(format, "topic.a", 7, 64, None);
        for record in chunk.records() {
            encoder.push_limited(&chunk, record, Some(100)).unwrap();
        }
        let len = encoder.len();
        let body = encoder.finish();
        assert!(body.len() < plain, "{format:?}: {} >= {plain}", body.len());
        if format.kind != FormatKind::Parquet {
            assert!(len >= plain - chunk.len(), "{format:?}: len {len}");
        }
    }
}

#[test]
fn pop_last_takes_back_the_last_record_in_every_format() {
    let chunk = dataset();
    for format in formats() {
        let format = FormatSettings {
            binary: any_bytes(format),
            headers: true,
            ..format
        };
        let mut encoder = ObjectEncoder::with_format(format, "topic.a", 7, 64, None);
        // Pop every third record right after pushing it, past flushes and row groups.
        let mut kept = RecordChunk::default();
        for (index, record) in chunk.records().iter().enumerate() {
            let before = (encoder.len(), encoder.records(), encoder.last_offset());
            encoder.push_limited(&chunk, record, Some(100)).unwrap();
            if index % 3 == 2 {
                encoder.pop_last(before.0, before.1, before.2);
                assert_eq!(encoder.len(), before.0, "{format:?}");
            } else {
                kept.push_with_headers(
                    record.offset,
                    record.timestamp,
                    chunk.bytes(&record.key),
                    chunk.bytes(&record.value),
                    chunk.headers(record),
                );
            }
        }
        let key = object_key_with(
            "p/",
            "topic.a",
            7,
            10,
            299,
            BodyFormat::of(&format).extension(),
        );
        let stored = read_object(&key, &encoder.finish()).unwrap();
        check(format, &kept, &stored);
    }
}

#[test]
fn the_same_records_give_the_same_bytes() {
    let chunk = dataset();
    for format in formats() {
        let format = FormatSettings {
            binary: any_bytes(format),
            ..format
        };
        let encode = || {
            let mut encoder = ObjectEncoder::with_format(format, "t", 0, 64, None);
            for record in chunk.records() {
                encoder.push(&chunk, record).unwrap();
            }
            encoder.finish()
        };
        assert_eq!(encode(), encode(), "{format:?}");
    }
}

#[test]
fn large_objects_stream_through_the_compressor_and_still_pop_exactly() {
    let mut chunk = RecordChunk::default();
    for offset in 0..6000 {
        let value = format!("{offset:08} {}", "v".repeat(90));
        chunk.push(offset, offset, Some(b"key"), Some(value.as_bytes()));
    }
    for format in formats() {
        let mut encoder = ObjectEncoder::with_format(format, "t", 0, 64, None);
        let mut kept = RecordChunk::default();
        for (index, record) in chunk.records().iter().enumerate() {
            let before = (encoder.len(), encoder.records(), encoder.last_offset());
            encoder.push(&chunk, record).unwrap();
            if index % 1000 == 999 {
                encoder.pop_last(before.0, before.1, before.2);
            } else {
                let (key, value) = (chunk.bytes(&record.key), chunk.bytes(&record.value));
                kept.push(record.offset, record.timestamp, key, value);
            }
        }
        // JSON: the size before compression; Parquet: the (compressed) row groups written.
        let floor = if format.kind == FormatKind::Parquet {
            50_000
        } else {
            500_000
        };
        assert!(encoder.len() > floor, "{format:?}: {}", encoder.len());
        let key = object_key_with("p/", "t", 0, 0, 5998, BodyFormat::of(&format).extension());
        let stored = read_object(&key, &encoder.finish()).unwrap();
        assert_eq!(stored.len(), kept.len(), "{format:?}");
        for (record, stored) in kept.records().iter().zip(&stored) {
            assert_eq!(stored.offset, record.offset, "{format:?}");
            assert_eq!(
                stored.value.as_deref(),
                kept.bytes(&record.value),
                "{format:?}"
            );
        }
    }
}

#[test]
fn refused_objects_of_every_format_decode_back_to_their_records() {
    let chunk = dataset();
    for format in formats() {
        let format = FormatSettings {
            binary: any_bytes(format),
            headers: true,
            ..format
        };
        let mut encoder = ObjectEncoder::with_format(format, "topic.a", 7, 64, None);
        for record in chunk.records() {
            encoder.push_limited(&chunk, record, Some(100)).unwrap();
        }
        let key = object_key_with(
            "p/",
            "topic.a",
            7,
            10,
            299,
            BodyFormat::of(&format).extension(),
        );
        let (body, sidecar) = encoder.finish_with_headers();
        let decoded = decode_object(&key, &body, &sidecar).unwrap();
        let overflowed = chunk
            .records()
            .iter()
            .filter(|r| chunk.bytes(&r.value).is_some_and(|v| v.len() > 100))
            .count();
        assert_eq!(decoded.len(), chunk.len() - overflowed, "{format:?}");
        for record in decoded.records() {
            let original = chunk.find(record.offset).unwrap();
            assert_eq!(decoded.bytes(&record.key), chunk.bytes(&original.key));
            assert_eq!(decoded.bytes(&record.value), chunk.bytes(&original.value));
            assert_eq!(
                decoded.headers(record).collect::<Vec<_>>(),
                chunk.headers(original).collect::<Vec<_>>()
            );
        }
    }
}

#[test]
fn parts_taken_while_encoding_make_the_same_body_in_every_streaming_format() {
    let mut chunk = RecordChunk::default();
    // Values that do not compress away, so that compressed bodies make parts too.
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    for offset in 0..6000 {
        let value: String = (0..12)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                format!("{state:016x}")
            })
            .collect();
        chunk.push(offset, offset, Some(b"key"), Some(value.as_bytes()));
    }
    for format in formats() {
        let whole = {
            let mut encoder = ObjectEncoder::with_format(format, "t", 0, 64, None);
            for record in chunk.records() {
                encoder.push(&chunk, record).unwrap();
            }
            encoder.finish()
        };
        let mut encoder = ObjectEncoder::with_format(format, "t", 0, 64, None);
        if format.kind == FormatKind::Parquet {
            assert!(!encoder.streams());
            continue;
        }
        assert!(encoder.streams(), "{format:?}");
        let mut streamed = Vec::new();
        let mut parts = 0;
        for (index, record) in chunk.records().iter().enumerate() {
            let before = (encoder.len(), encoder.records(), encoder.last_offset());
            encoder.push(&chunk, record).unwrap();
            if index % 1000 == 999 {
                // Still exact after parts were taken: the record pushed last is never in one.
                encoder.pop_last(before.0, before.1, before.2);
                encoder.push(&chunk, record).unwrap();
            }
            if encoder.streamable_bytes() >= 20_000 {
                let len = encoder.len();
                let part = encoder.take_part(32 << 10).expect("bytes to take");
                streamed.extend_from_slice(&part);
                parts += 1;
                // The object's size (what `batching.max_bytes` bounds) counts the parts too.
                assert_eq!(encoder.len(), len, "{format:?}");
                // Compressed: what waits for the compressor (up to 64 KiB) stays resident too.
                assert!(encoder.resident_bytes() < 100_000, "{format:?}");
            }
        }
        streamed.extend_from_slice(&encoder.finish());
        assert!(parts > 3, "{format:?}: {parts} parts");
        assert!(
            streamed == whole[..],
            "{format:?}: parts differ from the whole body"
        );
    }
}
