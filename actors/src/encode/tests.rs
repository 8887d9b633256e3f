use super::json::{needs_escape, write_json_str};
use super::*;
use serde_json::{json, Value};

/// `(offset, timestamp, key, value)`.
type Input<'a> = (i64, i64, Option<&'a [u8]>, Option<&'a [u8]>);

fn encode(records: &[Input<'_>]) -> Result<Value, RecordError> {
    let mut chunk = RecordChunk::default();
    for (offset, timestamp, key, value) in records {
        chunk.push(*offset, *timestamp, *key, *value);
    }
    let mut encoder = ObjectEncoder::new("Test", 0, 64);
    for record in chunk.records() {
        encoder.push(&chunk, record)?;
    }
    let expected_len = encoder.len();
    let body = encoder.finish();
    assert_eq!(body.len(), expected_len);
    Ok(serde_json::from_slice(&body).expect("valid JSON"))
}

#[test]
fn matches_the_product_page_format() {
    let value = encode(&[(4, 1603779578478, Some(b"123"), Some(b"1"))]).unwrap();
    assert_eq!(
        value,
        json!([{
            "key": "123", "offset": 4, "overflowFlag": false, "partition": 0,
            "timestamp": 1603779578478i64, "topic": "Test", "value": "1", "valueSize": 1
        }])
    );
}

#[test]
fn field_order_is_the_product_page_order() {
    let mut chunk = RecordChunk::default();
    chunk.push(0, 7, Some(b"k"), Some(b"v"));
    let mut encoder = ObjectEncoder::new("t", 2, 64);
    encoder.push(&chunk, &chunk.records()[0]).unwrap();
    assert_eq!(
        std::str::from_utf8(&encoder.finish()).unwrap(),
        r#"[{"key":"k","offset":0,"overflowFlag":false,"partition":2,"timestamp":7,"topic":"t","value":"v","valueSize":1}]"#
    );
}

#[test]
fn tricky_strings_round_trip_and_value_size_counts_bytes() {
    let tricky = "{\"a\": \"b\\\\c\"}\n\t\u{0}\u{1f} é 日本 🎉";
    let value = encode(&[
        (0, 1, None, Some(tricky.as_bytes())),
        (1, 2, Some(b""), Some(b"")),
        (2, -1, Some("ключ".as_bytes()), None),
    ])
    .unwrap();
    assert_eq!(value[0]["key"], Value::Null);
    assert_eq!(value[0]["value"], tricky);
    assert_eq!(value[0]["valueSize"], tricky.len());
    assert_eq!(value[1]["key"], "");
    assert_eq!(value[1]["value"], "");
    assert_eq!(value[1]["valueSize"], 0);
    assert_eq!(value[2]["key"], "ключ");
    assert_eq!(value[2]["value"], Value::Null);
    assert_eq!(value[2]["timestamp"], -1);
}

#[test]
fn invalid_utf8_is_an_error_naming_field_and_offset() {
    let error = encode(&[(0, 1, None, Some(b"ok")), (17, 1, None, Some(b"ab\xffcd"))]).unwrap_err();
    assert_eq!(
        error,
        RecordError::InvalidUtf8 {
            field: Field::Value,
            offset: 17,
            valid_up_to: 2
        }
    );
    assert_eq!(
        error.to_string(),
        "value at offset 17 is not valid UTF-8 (invalid byte at position 2)"
    );
    let error = encode(&[(3, 1, Some(b"\xc3"), Some(b"ok"))]).unwrap_err();
    assert_eq!(error.offset(), 3);
    assert_eq!(error.code(), ErrorCode::RecordInvalidUtf8);
}

#[test]
fn values_over_the_limit_are_null_with_overflow_flag_and_real_size() {
    let mut chunk = RecordChunk::default();
    chunk.push(0, 1, Some(b"k"), Some(b"12345"));
    chunk.push(1, 1, Some(b"k"), Some(b"123456"));
    chunk.push(2, 1, Some(b"k"), Some(b"\xff\xfe\xfd\xfc\xfb\xfa")); // oversize, not UTF-8
    chunk.push(3, 1, Some(b"k"), None);
    let mut encoder = ObjectEncoder::new("t", 0, 64);
    let pushed: Vec<_> = chunk
        .records()
        .iter()
        .map(|record| encoder.push_limited(&chunk, record, Some(5)).unwrap())
        .collect();
    assert_eq!(
        pushed,
        [
            Pushed::Written,
            Pushed::Overflowed { value_size: 6 },
            Pushed::Overflowed { value_size: 6 },
            Pushed::Written
        ]
    );
    let value: Value = serde_json::from_slice(&encoder.finish()).unwrap();
    assert_eq!(value[0]["value"], "12345");
    assert_eq!(value[0]["overflowFlag"], false);
    assert_eq!(value[1]["value"], Value::Null);
    assert_eq!(value[1]["overflowFlag"], true);
    assert_eq!(value[1]["valueSize"], 6);
    assert_eq!(value[2]["overflowFlag"], true);
    assert_eq!(value[3]["overflowFlag"], false);
    assert_eq!(value[3]["valueSize"], 0);
}

#[test]
fn objects_decode_back_to_their_records_with_headers() {
    let mut chunk = RecordChunk::default();
    let tricky = "{\"q\": \"\\\\\"}\n\u{0} é 🎉";
    let headers: [(&[u8], Option<&[u8]>); 2] = [(b"h", Some(b"\x00\xff")), (b"h", None)];
    chunk.push(3, 10, None, Some(tricky.as_bytes()));
    chunk.push_with_headers(4, 11, Some(b"k"), None, headers.into_iter());
    chunk.push(5, 12, Some(b"big"), Some("x".repeat(100).as_bytes()));
    chunk.push_with_headers(6, -1, Some(b""), Some(b""), headers.into_iter());
    let mut encoder = ObjectEncoder::new("t", 1, 64);
    for record in chunk.records() {
        encoder.push_limited(&chunk, record, Some(60)).unwrap();
    }
    let (body, sidecar) = encoder.finish_with_headers();
    let decoded = decode_object("p/t/1/0-6.json", &body, &sidecar).unwrap();
    let offsets: Vec<i64> = decoded.records().iter().map(|r| r.offset).collect();
    assert_eq!(offsets, [3, 4, 6], "the overflowed record is left out");
    for record in decoded.records() {
        let original = chunk.find(record.offset).unwrap();
        assert_eq!(decoded.bytes(&record.key), chunk.bytes(&original.key));
        assert_eq!(decoded.bytes(&record.value), chunk.bytes(&original.value));
        assert_eq!(record.timestamp, original.timestamp);
        assert_eq!(
            decoded.headers(record).collect::<Vec<_>>(),
            chunk.headers(original).collect::<Vec<_>>()
        );
    }
}

#[test]
fn fast_path_agrees_with_serde_json_for_every_byte_at_every_position() {
    let mut samples: Vec<String> = Vec::new();
    for byte in 0u8..0x80 {
        for position in 0..17 {
            let mut text = "a".repeat(17);
            text.replace_range(position..position + 1, &(byte as char).to_string());
            samples.push(text);
        }
    }
    samples.extend(
        [
            "",
            "é日本🎉 plain",
            "x\u{7f}y",
            "ab\u{2028}cd",
            "\u{80}\u{ff}abcdefgh",
        ]
        .map(String::from),
    );
    for sample in samples {
        let expected = serde_json::to_vec(&sample).unwrap();
        let mut fast = Vec::new();
        write_json_str(&mut fast, &sample);
        assert_eq!(fast, expected, "{sample:?}");
        let bytes = sample.as_bytes();
        let slow = bytes.iter().any(|&b| b < 0x20 || b == b'"' || b == b'\\');
        assert_eq!(needs_escape(bytes), slow, "{sample:?}");
    }
}

#[test]
fn pop_last_restores_the_previous_object() {
    let mut chunk = RecordChunk::default();
    chunk.push(0, 1, None, Some(b"a"));
    chunk.push(1, 1, None, Some(b"b"));
    let mut encoder = ObjectEncoder::new("t", 0, 64);
    encoder.push(&chunk, &chunk.records()[0]).unwrap();
    let (len, records, last) = (encoder.len(), encoder.records(), encoder.last_offset());
    encoder.push(&chunk, &chunk.records()[1]).unwrap();
    encoder.pop_last(len, records, last);
    assert_eq!(
        (
            encoder.records(),
            encoder.first_offset(),
            encoder.last_offset()
        ),
        (1, 0, 0)
    );
    let value: Value = serde_json::from_slice(&encoder.finish()).unwrap();
    assert_eq!(value.as_array().unwrap().len(), 1);
}
