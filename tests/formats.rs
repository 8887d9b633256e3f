//! `[format]` end to end: every format the connector writes is read back by an independent
//! reader (Python's json, gzip, zstandard and pyarrow, `scripts/read-objects.py`), and every
//! field of every record is checked against what was produced, binary keys and values and
//! headers included; `reconcile --deep` reads every format too.

mod support;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::exactly_once::assert_reconcile_clean;
use support::python::{python_reader, read_objects};
use support::{unique, Consumed, Stack, TestRecord};

const RECORDS: usize = 900;
/// Values over this go in as `null` with `overflowFlag`.
const MAX_VALUE_BYTES: usize = 400;

/// Today's e2e edge cases, plus keys and values that are not UTF-8.
fn record(index: usize) -> TestRecord {
    let key = match index % 6 {
        0 => None,
        1 => Some(Vec::new()),
        2 => Some(format!("ключ \"{index}\"").into_bytes()),
        3 => Some(vec![0xff, 0xfe, index as u8, 0x00]),
        _ => Some(index.to_string().into_bytes()),
    };
    let value = match index % 10 {
        0 => Some(format!("plain value {index}").into_bytes()),
        1 => Some(Vec::new()),
        2 => {
            Some(format!("{{\"id\": {index}, \"q\": \"quote \\\" backslash \\\\\"}}").into_bytes())
        }
        3 => Some(format!("line one\nline two\r\n\ttabbed {index}").into_bytes()),
        4 => Some(format!("unicode é 日本語 🎉 control \u{1} {index}").into_bytes()),
        5 => None, // a tombstone
        6 => Some(vec![0x80, 0x00, 0xc3, 0x28, index as u8]),
        _ => Some("x".repeat(index % 500).into_bytes()),
    };
    ((index % 2) as i32, key, value)
}

fn headers(index: usize) -> Vec<(String, Option<Vec<u8>>)> {
    match index % 4 {
        0 => Vec::new(),
        1 => vec![("trace".into(), Some(format!("id-{index}").into_bytes()))],
        2 => vec![
            ("dup".into(), Some(b"one".to_vec())),
            ("dup".into(), Some(vec![0xff, 0x00, 0x01])),
            ("null".into(), None),
        ],
        _ => vec![("empty".into(), Some(Vec::new()))],
    }
}

fn hex(bytes: &Option<Vec<u8>>) -> Value {
    match bytes {
        Some(bytes) => Value::String(bytes.iter().map(|b| format!("{b:02x}")).collect()),
        None => Value::Null,
    }
}

/// `[format]` section, key extension, Content-Type.
const FORMATS: &[(&str, &str, &str)] = &[
    (
        "type = \"jsonl\"\ncompression = \"zstd\"",
        ".jsonl.zst",
        "application/zstd",
    ),
    (
        "type = \"json_array\"\ncompression = \"gzip\"",
        ".json.gz",
        "application/gzip",
    ),
    (
        "type = \"parquet\"\nparquet_row_group_records = 50",
        ".parquet",
        "application/vnd.apache.parquet",
    ),
    (
        "type = \"parquet\"\nparquet_compression = \"snappy\"",
        ".parquet",
        "application/vnd.apache.parquet",
    ),
    (
        "type = \"parquet\"\nbinary = \"bytes\"",
        ".parquet",
        "application/vnd.apache.parquet",
    ),
    ("type = \"jsonl\"", ".jsonl", "application/x-ndjson"),
];

/// Downloads every object under `prefix`; checks its extension, Content-Type and metadata.
fn download(
    stack: &Stack,
    bucket: &str,
    prefix: &str,
    ext: &str,
    content_type: &str,
) -> Vec<PathBuf> {
    let client = stack.s3();
    let dir = stack.dir.join(format!("objects-{bucket}"));
    std::fs::create_dir_all(&dir).unwrap();
    stack.block_on(async {
        let listed = actors::store::list_objects(&client, bucket, prefix, None)
            .await
            .expect("list objects");
        let mut files = Vec::new();
        for object in listed {
            let key = object.key.unwrap();
            assert!(key.ends_with(ext), "{key} does not end with {ext}");
            assert!(actors::object_key::parse_offsets(&key).is_some(), "{key}");
            let got = client
                .get_object()
                .bucket(bucket)
                .key(&key)
                .send()
                .await
                .unwrap();
            assert_eq!(got.content_type(), Some(content_type), "{key}");
            let format = got
                .metadata()
                .and_then(|m| m.get("kos-body-format"))
                .cloned();
            assert!(
                format.is_some_and(|f| f != "json_array" || ext == ".json"),
                "{key}"
            );
            let bytes = got.body.collect().await.unwrap().into_bytes();
            let partition = key.rsplit('/').nth(1).unwrap();
            let file = dir.join(format!("{partition}-{}", key.rsplit('/').next().unwrap()));
            std::fs::write(&file, &bytes).unwrap();
            files.push(file);
        }
        files.sort();
        files
    })
}

#[test]
fn every_format_reads_back_every_field_with_an_independent_reader() {
    let python = match python_reader() {
        Ok(python) => python,
        Err(reason) => {
            eprintln!("skipped: {reason}");
            return;
        }
    };
    let stack = Stack::start();
    let topic = unique("formats");
    stack.create_topic(&topic, 2);
    let records: Vec<TestRecord> = (0..RECORDS).map(record).collect();
    // One record per batch: tansu reports a partition's end by batches otherwise, and
    // `reconcile` compares with it (tests/README.md).
    let produced = stack.produce_with(&topic, &records, headers, true, None);
    assert_eq!(produced.len(), RECORDS);
    // What the broker holds, headers included, read independently of the connector.
    let broker: BTreeMap<(i32, i64), Consumed> = stack
        .read_topic(&topic)
        .into_iter()
        .map(|record| ((record.partition, record.offset), record))
        .collect();
    assert_eq!(broker.len(), RECORDS);

    let mut running = Vec::new();
    for (index, (section, ext, content_type)) in FORMATS.iter().enumerate() {
        let (bucket, name) = (format!("formats-{index}"), unique("fmt"));
        stack.create_bucket(&bucket);
        // base64 for binary keys and values, unless the section has binary columns.
        let binary = if section.contains("binary") {
            ""
        } else {
            "binary = \"base64\"\n"
        };
        let extra = format!(
            "[failure]\nmax_value_bytes = {MAX_VALUE_BYTES}\n\n[format]\n{section}\n\
             {binary}headers = true\n"
        );
        let config = stack.config(
            &name,
            &topic,
            &bucket,
            "max_records = 200\nmax_interval_ms = 500",
            &extra,
        );
        running.push((
            stack.connector(&config, None),
            config,
            bucket,
            *ext,
            *content_type,
            *section,
        ));
    }
    let prefix = format!("e2e/{topic}/");
    for (mut connector, config, bucket, ext, content_type, section) in running {
        let deadline = Instant::now() + Duration::from_secs(90);
        let stored = loop {
            let files = download(&stack, &bucket, &prefix, ext, content_type);
            let stored = read_objects(&python, &files);
            if stored.len() >= RECORDS || Instant::now() > deadline {
                break stored;
            }
            std::thread::sleep(Duration::from_millis(300));
        };
        assert_eq!(stored.len(), RECORDS, "{section}: records in the bucket");
        let mut seen = BTreeMap::new();
        for record in &stored {
            let id = (
                record["partition"].as_i64().unwrap() as i32,
                record["offset"].as_i64().unwrap(),
            );
            assert!(seen.insert(id, record).is_none(), "{section}: {id:?} twice");
        }
        for (id, expected) in &produced {
            let got = seen
                .get(id)
                .unwrap_or_else(|| panic!("{section}: {id:?} missing"));
            let size = expected.value.as_ref().map_or(0, Vec::len);
            let overflow = size > MAX_VALUE_BYTES;
            let headers: Vec<Value> = broker[id]
                .headers
                .iter()
                .map(|(name, value)| serde_json::json!([name, hex(value)]))
                .collect();
            let want = serde_json::json!({
                "offset": id.1,
                "partition": id.0,
                "timestamp": expected.timestamp,
                "topic": topic,
                "overflowFlag": overflow,
                "valueSize": size,
                "key": hex(&expected.key),
                "value": if overflow { Value::Null } else { hex(&expected.value) },
                "headers": headers,
            });
            let mut got = (*got).clone();
            got.as_object_mut().unwrap().remove("file");
            assert_eq!(got, want, "{section}: record {id:?}");
        }
        connector.stop();
        let run = stack.reconcile(&config, &["--deep", "--json"]);
        assert_reconcile_clean(&run);
    }
}
