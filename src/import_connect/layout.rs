//! Format and layout keys: `format.class` and its compression options, and the time-based
//! partitioners, mapped to `[format]` (written as comments while the config lacks it, see
//! [`super::Draft`]) and `sink.key_template` (with `sink.key_time_zone`, validated).

use super::map::integer;
use super::{ConnectConfig, Draft};

/// `format.class` and the compression and header keys that go with it.
pub(super) fn map_format(c: &mut ConnectConfig, d: &mut Draft) {
    let class = c.take("format.class").unwrap_or_default();
    let kind = class.rsplit('.').next().unwrap_or("");
    let format = match kind {
        "JsonFormat" => Some("jsonl"),
        "ParquetFormat" => Some("parquet"),
        "AvroFormat" => {
            d.unmapped(
                "format.class",
                "Avro is not written; \"jsonl\" or \"parquet\" ([format] type) instead",
            );
            None
        }
        "ByteArrayFormat" => {
            d.unmapped("format.class", "raw values are not written; \"jsonl\" ([format] type) writes each record as a JSON line with its value as text");
            None
        }
        _ => {
            d.unmapped(
                "format.class",
                format!("`{class}` is not one of Confluent's formats"),
            );
            None
        }
    };
    if let Some(format) = format {
        d.set("format", "type", format.into(), "format.class").note(if format == "jsonl" {
            "One JSON object per line per record, with key, value (as text), topic, partition, offset and timestamp; Confluent's JsonFormat wrote the converted value only."
        } else {
            "Fixed columns (key, value, topic, partition, offset, timestamp); Confluent's ParquetFormat wrote the value's schema as columns."
        });
    }
    if let Some(compression) = c.take("s3.compression.type") {
        match compression.as_str() {
            "none" | "gzip" => {
                d.set(
                    "format",
                    "compression",
                    compression.into(),
                    "s3.compression.type",
                );
            }
            other => d.unmapped(
                "s3.compression.type",
                format!("`{other}`: [format] compression is none, gzip or zstd"),
            ),
        }
    }
    if let Some(level) = c.take("s3.compression.level") {
        match integer(&level) {
            Some(n) if (1..=9).contains(&n) => {
                d.set(
                    "format",
                    "compression_level",
                    n.into(),
                    "s3.compression.level",
                );
            }
            Some(_) => {} // -1: the codec's default, as kafka-oss-sink's 0.
            None => d.unmapped("s3.compression.level", "not an integer"),
        }
    }
    if let Some(codec) = c.take("parquet.codec") {
        match codec.as_str() {
            "snappy" | "zstd" | "none" => {
                d.set(
                    "format",
                    "parquet_compression",
                    codec.into(),
                    "parquet.codec",
                );
            }
            "uncompressed" => {
                d.set(
                    "format",
                    "parquet_compression",
                    "none".into(),
                    "parquet.codec",
                );
            }
            other => d.unmapped(
                "parquet.codec",
                format!("`{other}`: Parquet pages are compressed with zstd, snappy or none"),
            ),
        }
    }
    if let Some(headers) = c.take("store.kafka.headers") {
        if headers.eq_ignore_ascii_case("true") {
            d.set("format", "headers", true.into(), "store.kafka.headers")
                .note("Headers go inside each record, not into separate .headers objects.");
        }
    }
    if c.take("store.kafka.keys").is_some() {
        d.header_note("store.kafka.keys: every record's key is written inside the record (no separate .keys objects).");
    }
}

/// A time-based partitioner as a key template; the default partitioner is the connector's own
/// layout and needs nothing.
pub(super) fn map_partitioner(c: &mut ConnectConfig, d: &mut Draft) {
    let class = c.take("partitioner.class").unwrap_or_default();
    let kind = class.rsplit('.').next().unwrap_or("DefaultPartitioner");
    let pattern = match kind {
        "" | "DefaultPartitioner" => return,
        "HourlyPartitioner" => "'year'=YYYY/'month'=MM/'day'=dd/'hour'=HH".to_owned(),
        "DailyPartitioner" => "'year'=YYYY/'month'=MM/'day'=dd".to_owned(),
        "TimeBasedPartitioner" => match c.get("path.format") {
            Some(format) if !format.is_empty() => format,
            _ => {
                d.unmapped(
                    "partitioner.class",
                    "TimeBasedPartitioner without path.format",
                );
                return;
            }
        },
        "FieldPartitioner" => {
            d.unmapped(
                "partitioner.class",
                "FieldPartitioner: kafka-oss-sink does not read fields of record values",
            );
            return;
        }
        _ => {
            d.unmapped(
                "partitioner.class",
                format!("`{class}`: a custom partitioner"),
            );
            return;
        }
    };
    c.take("path.format");
    let template = match joda_to_template(&pattern) {
        Ok(time) => format!("{{topic}}/{time}/{{partition}}/{{first}}-{{last}}{{ext}}"),
        Err(token) => {
            d.unmapped(
                "path.format",
                format!("`{token}` in the pattern has no key template field"),
            );
            return;
        }
    };
    // Only a fixed offset maps (a zone with daylight saving has none).
    let zone = match c.get("timezone").as_deref().map(str::trim) {
        None | Some("" | "UTC" | "Etc/UTC" | "GMT" | "Z") => "UTC".to_owned(),
        Some(other) => {
            let offset = other
                .strip_prefix("UTC")
                .or(other.strip_prefix("GMT"))
                .filter(|offset| !offset.is_empty())
                .unwrap_or(other);
            if actors::key_template::KeyTemplate::parse(&template, offset, None, "none").is_ok() {
                offset.to_owned()
            } else {
                d.unmapped(
                    "timezone",
                    format!("`{other}`: sink.key_time_zone is UTC, a fixed offset such as +08:00 or a zone without daylight saving such as Asia/Shanghai; the layout is not mapped"),
                );
                return;
            }
        }
    };
    if let Err(error) = actors::key_template::KeyTemplate::parse(&template, &zone, None, "none") {
        d.unmapped(
            "path.format",
            format!(
                "`{pattern}` gives the key template `{template}`, which {}",
                error.message
            ),
        );
        return;
    }
    let mut origin = format!("partitioner.class={kind}");
    let mut notes = vec![
        format!("Time-based layout from Confluent's path.format `{pattern}`, by record timestamp; objects are sealed at each {{HH}}/{{dd}}... boundary."),
        "Recovery lists the topic's folder at each assignment with time parts before {partition}; \"{topic}/{partition}/...\" lists only the partition's.".to_owned(),
    ];
    if zone != "UTC" {
        d.set("sink", "key_time_zone", zone.clone().into(), "timezone");
    }
    for key in [
        "partition.duration.ms",
        "timezone",
        "locale",
        "timestamp.extractor",
        "timestamp.field",
    ] {
        if let Some(value) = c.take(key) {
            origin.push_str(&format!(", {key}"));
            notes.push(format!("{key} = {value}"));
        }
    }
    let entry = d.set("sink", "key_template", template.into(), &origin);
    for note in notes {
        entry.note(note);
    }
}

/// A Joda-Time path pattern as key template fields: `'year'=YYYY/'month'=MM` becomes
/// `year={yyyy}/month={MM}`. The token it cannot translate is the error.
pub(super) fn joda_to_template(pattern: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut chars = pattern.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\'' {
            for d in chars.by_ref() {
                if d == '\'' {
                    break;
                }
                out.push(d);
            }
            continue;
        }
        if !c.is_ascii_alphabetic() {
            out.push(c);
            continue;
        }
        let mut token = c.to_string();
        while chars.peek() == Some(&c) {
            token.push(c);
            chars.next();
        }
        let field = match token.as_str() {
            "YYYY" | "yyyy" | "xxxx" => "{yyyy}",
            "MM" => "{MM}",
            "dd" => "{dd}",
            "HH" => "{HH}",
            "mm" => "{mm}",
            _ => return Err(token),
        };
        out.push_str(field);
    }
    Ok(out)
}
