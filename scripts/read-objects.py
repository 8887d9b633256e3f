#!/usr/bin/env python3
"""Reads kafka-oss-sink objects with readers independent of the connector: Python's json, gzip,
zstandard and pyarrow. The end-to-end format tests (tests/formats.rs) compare its output with
what they produced; it also works by hand on objects downloaded from a bucket.

Usage: read-objects.py FILE...   (the format is told by each file's extension)

Prints one JSON line per record, in file order:
  {"file", "offset", "partition", "timestamp", "topic", "overflowFlag", "valueSize",
   "key", "value": the exact bytes as hex (base64 undone; binary columns as they are) or null,
   "headers": [[name, value as hex or null], ...] or null when the object has none}
"""

import base64
import gzip
import json
import sys


def decode(text, encoding):
    if text is None:
        return None
    if isinstance(text, bytes):  # a binary column (binary = "bytes")
        return text.hex()
    if encoding is None:
        return text.encode("utf-8").hex()
    if encoding == "base64":
        return base64.b64decode(text, validate=True).hex()
    raise ValueError(f"unknown encoding {encoding!r}")


def normalize(path, record):
    headers = record.get("headers")
    if headers is not None:
        headers = [[h["name"], decode(h["value"], h.get("valueEncoding"))] for h in headers]
    return {
        "file": path,
        "offset": record["offset"],
        "partition": record["partition"],
        "timestamp": record["timestamp"],
        "topic": record["topic"],
        "overflowFlag": record["overflowFlag"],
        "valueSize": record["valueSize"],
        "key": decode(record["key"], record.get("keyEncoding")),
        "value": decode(record["value"], record.get("valueEncoding")),
        "headers": headers,
    }


def read_json(path, data, lines):
    if lines:
        text = data.decode("utf-8")
        if text and not text.endswith("\n"):
            raise ValueError(f"{path}: the last line has no newline")
        return [json.loads(line) for line in text.split("\n") if line]
    records = json.loads(data.decode("utf-8"))
    if not isinstance(records, list):
        raise ValueError(f"{path}: not a JSON array")
    return records


def read_parquet(path):
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    schema = table.schema
    expected = {
        "key": "string", "offset": "int64", "overflowFlag": "bool", "partition": "int32",
        "timestamp": "int64", "topic": "string", "value": "string", "valueSize": "int64",
    }
    for name, kind in expected.items():
        actual = str(schema.field(name).type)
        if name in ("key", "value") and actual == "binary":
            continue  # binary = "bytes"
        if actual != kind:
            raise ValueError(f"{path}: column {name} is {actual}, not {kind}")
    metadata = pq.ParquetFile(path).metadata
    topic_column = schema.get_field_index("topic")
    for group in range(metadata.num_row_groups):
        encodings = metadata.row_group(group).column(topic_column).encodings
        if not any("DICTIONARY" in e for e in encodings):
            raise ValueError(f"{path}: topic is not dictionary-encoded ({encodings})")
    return table.to_pylist()


def main(paths):
    out = sys.stdout
    for path in paths:
        name = path.rsplit("/", 1)[-1]
        ext = name[name.index("."):]
        if ext == ".parquet":
            records = read_parquet(path)
        else:
            with open(path, "rb") as file:
                data = file.read()
            if ext.endswith(".gz"):
                data = gzip.decompress(data)
                ext = ext[:-3]
            elif ext.endswith(".zst"):
                import zstandard

                data = zstandard.ZstdDecompressor().decompressobj().decompress(data)
                ext = ext[:-4]
            if ext not in (".json", ".jsonl"):
                raise ValueError(f"{path}: unknown extension {ext}")
            records = read_json(path, data, ext == ".jsonl")
        for record in records:
            out.write(json.dumps(normalize(path, record)) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
