//! Deterministic object keys.
//!
//! `{prefix}{topic}/{partition}/{first offset:020}-{last offset:020}{ext}`, where `{ext}` says
//! the body's format ([`BodyFormat`]): `.json` (the default JSON array), `.jsonl`, either with
//! `.gz` or `.zst` when compressed, or `.parquet`.
//!
//! The key is a pure function of the records an object holds, never of the clock, so uploading
//! the same records again writes the same key with the same bytes. Offsets are zero-padded to 20
//! digits (every `i64` fits) so that a listing sorts objects by offset. Carrying the last offset
//! too means two writers that cut a partition differently can never overwrite each other's
//! object: the worst case is a visible overlap, never a silent loss.

use std::fmt::Write;

use crate::settings::{Compression, FormatKind, FormatSettings};

/// Whole-object compression, as the key's last extension tells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    None,
    Gzip,
    Zstd,
}

/// What an object's body is, as its key's extension tells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyFormat {
    pub kind: FormatKind,
    pub codec: Codec,
}

/// Every extension, with the format it stands for and the object's `Content-Type`.
const FORMATS: &[(&str, FormatKind, Codec, &str)] = &[
    (
        ".json",
        FormatKind::JsonArray,
        Codec::None,
        "application/json",
    ),
    (
        ".json.gz",
        FormatKind::JsonArray,
        Codec::Gzip,
        "application/gzip",
    ),
    (
        ".json.zst",
        FormatKind::JsonArray,
        Codec::Zstd,
        "application/zstd",
    ),
    (
        ".jsonl",
        FormatKind::Jsonl,
        Codec::None,
        "application/x-ndjson",
    ),
    (
        ".jsonl.gz",
        FormatKind::Jsonl,
        Codec::Gzip,
        "application/gzip",
    ),
    (
        ".jsonl.zst",
        FormatKind::Jsonl,
        Codec::Zstd,
        "application/zstd",
    ),
    (
        ".parquet",
        FormatKind::Parquet,
        Codec::None,
        "application/vnd.apache.parquet",
    ),
];

impl BodyFormat {
    /// The format objects are written in under `settings`.
    pub fn of(settings: &FormatSettings) -> Self {
        let codec = match (settings.kind, settings.compression) {
            (FormatKind::Parquet, _) | (_, Compression::None) => Codec::None,
            (_, Compression::Gzip { .. }) => Codec::Gzip,
            (_, Compression::Zstd { .. }) => Codec::Zstd,
        };
        BodyFormat {
            kind: settings.kind,
            codec,
        }
    }

    /// The format of the object `key`, by its extension; `None` for a key this version does not
    /// write.
    pub fn of_key(key: &str) -> Option<Self> {
        let name = key.rsplit('/').next()?;
        let (_, ext) = name.split_at(name.find('.')?);
        FORMATS
            .iter()
            .find(|(known, ..)| *known == ext)
            .map(|&(_, kind, codec, _)| BodyFormat { kind, codec })
    }

    fn entry(&self) -> &'static (&'static str, FormatKind, Codec, &'static str) {
        FORMATS
            .iter()
            .find(|(_, kind, codec, _)| (*kind, *codec) == (self.kind, self.codec))
            .expect("every format has an extension")
    }

    pub fn extension(&self) -> &'static str {
        self.entry().0
    }

    pub fn content_type(&self) -> &'static str {
        self.entry().3
    }

    /// `json_array`, `jsonl+zstd`, `parquet`, ... (the `kos-body-format` metadata).
    pub fn label(&self) -> &'static str {
        match (self.kind, self.codec) {
            (FormatKind::JsonArray, Codec::None) => "json_array",
            (FormatKind::JsonArray, Codec::Gzip) => "json_array+gzip",
            (FormatKind::JsonArray, Codec::Zstd) => "json_array+zstd",
            (FormatKind::Jsonl, Codec::None) => "jsonl",
            (FormatKind::Jsonl, Codec::Gzip) => "jsonl+gzip",
            (FormatKind::Jsonl, Codec::Zstd) => "jsonl+zstd",
            (FormatKind::Parquet, _) => "parquet",
        }
    }
}

/// The `Content-Type` of the object `key` (by its extension; JSON for any other key).
pub fn content_type(key: &str) -> &'static str {
    BodyFormat::of_key(key).map_or("application/json", |format| format.content_type())
}

/// The extension of the default format's objects (`{ext}` in a key template).
pub const JSON_EXT: &str = ".json";

/// Builds the key of the JSON array object holding offsets `first..=last` of
/// `topic`/`partition`.
pub fn object_key(prefix: &str, topic: &str, partition: i32, first: i64, last: i64) -> String {
    object_key_with(prefix, topic, partition, first, last, ".json")
}

/// Builds the key of the object holding offsets `first..=last` of `topic`/`partition`, with
/// the extension `ext` ([`BodyFormat::extension`]).
pub fn object_key_with(
    prefix: &str,
    topic: &str,
    partition: i32,
    first: i64,
    last: i64,
    ext: &str,
) -> String {
    let mut key = String::with_capacity(prefix.len() + topic.len() + 60);
    key.push_str(prefix);
    key.push_str(topic);
    // Writing to a String cannot fail.
    let _ = write!(key, "/{partition}/{first:020}-{last:020}{ext}");
    key
}

/// The listing prefix under which all objects of one partition live.
pub fn partition_prefix(prefix: &str, topic: &str, partition: i32) -> String {
    format!("{prefix}{topic}/{partition}/")
}

/// The `start-after` key for listing the objects of a partition whose first offset is at least
/// `first_offset`: it sorts after every key of a smaller first offset (`.` sorts after `-`) and
/// before every key of `first_offset` or more.
pub fn list_start_after(prefix: &str, topic: &str, partition: i32, first_offset: i64) -> String {
    format!(
        "{}{:020}.",
        partition_prefix(prefix, topic, partition),
        first_offset - 1
    )
}

/// Parses the `(first, last)` offsets back from the last path segment of a key built by
/// [`object_key_with`]: 20 digits each, `0 <= first <= last`, and an extension of
/// [`BodyFormat`].
pub fn parse_offsets(key: &str) -> Option<(i64, i64)> {
    BodyFormat::of_key(key)?;
    let name = key.rsplit('/').next()?;
    let name = &name[..name.find('.')?];
    let (first, last) = name.split_once('-')?;
    let digits = |text: &str| text.len() == 20 && text.bytes().all(|byte| byte.is_ascii_digit());
    if !digits(first) || !digits(last) {
        return None;
    }
    let (first, last) = (first.parse().ok()?, last.parse().ok()?);
    (first <= last).then_some((first, last))
}

/// Like [`parse_offsets`], for a key directly under `partition_prefix` (see
/// [`partition_prefix`]) only: `…/orders/0/backup/…` is not an object of partition 0.
pub fn parse_partition_key(partition_prefix: &str, key: &str) -> Option<(i64, i64)> {
    let name = key.strip_prefix(partition_prefix)?;
    if name.contains('/') {
        return None;
    }
    parse_offsets(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_layout_is_prefix_topic_partition_padded_offsets() {
        assert_eq!(
            object_key("kafka/", "orders", 3, 42, 99),
            "kafka/orders/3/00000000000000000042-00000000000000000099.json"
        );
        assert_eq!(
            object_key("", "t.x_y-z", 0, 0, 0),
            "t.x_y-z/0/00000000000000000000-00000000000000000000.json"
        );
    }

    #[test]
    fn every_format_has_its_extension_and_parses_back() {
        use crate::settings::ParquetSettings;
        let mut seen = std::collections::HashSet::new();
        for kind in [
            FormatKind::JsonArray,
            FormatKind::Jsonl,
            FormatKind::Parquet,
        ] {
            for compression in [
                Compression::None,
                Compression::Gzip { level: 6 },
                Compression::Zstd { level: 3 },
            ] {
                let settings = FormatSettings {
                    kind,
                    compression,
                    parquet: ParquetSettings::default(),
                    ..FormatSettings::default()
                };
                let format = BodyFormat::of(&settings);
                let key = object_key_with("p/", "t", 1, 5, 9, format.extension());
                assert_eq!(BodyFormat::of_key(&key), Some(format), "{key}");
                assert_eq!(parse_offsets(&key), Some((5, 9)), "{key}");
                assert_eq!(content_type(&key), format.content_type());
                seen.insert(format.label());
            }
        }
        assert_eq!(seen.len(), 7);
        assert_eq!(
            object_key_with("p/", "t", 1, 5, 9, ".jsonl.zst"),
            "p/t/1/00000000000000000005-00000000000000000009.jsonl.zst"
        );
        for name in [
            "00000000000000000001-00000000000000000002.csv",
            "00000000000000000001-00000000000000000002.json.bz2",
            "00000000000000000001-00000000000000000002",
        ] {
            assert_eq!(parse_offsets(&format!("p/t/1/{name}")), None, "{name}");
        }
        assert_eq!(
            content_type("p/t/1/x.parquet"),
            "application/vnd.apache.parquet"
        );
    }

    #[test]
    fn keys_sort_by_offset() {
        let a = object_key("p/", "t", 1, 9, 10);
        let b = object_key("p/", "t", 1, 11, 100);
        let c = object_key("p/", "t", 1, 101, 1_000_000);
        assert!(a < b && b < c);
    }

    #[test]
    fn offsets_parse_back() {
        let key = object_key("p/", "t", 1, i64::MAX - 1, i64::MAX);
        assert_eq!(parse_offsets(&key), Some((i64::MAX - 1, i64::MAX)));
        assert_eq!(parse_offsets("p/t/1/garbage.json"), None);
        assert!(key.starts_with(&partition_prefix("p/", "t", 1)));
    }

    #[test]
    fn only_our_own_key_shape_parses() {
        let prefix = partition_prefix("p/", "t", 0);
        let ours = object_key("p/", "t", 0, 0, 99);
        assert_eq!(parse_partition_key(&prefix, &ours), Some((0, 99)));
        // A copied folder, a negative offset, a reversed range, signs, another partition.
        let copied = format!("{prefix}backup/{}", ours.rsplit('/').next().unwrap());
        assert_eq!(parse_offsets(&copied), Some((0, 99)));
        assert_eq!(parse_partition_key(&prefix, &copied), None);
        for name in [
            "-0000000000000000001-00000000000000000099.json",
            "00000000000000000099-00000000000000000001.json",
            "+0000000000000000001-00000000000000000099.json",
            "00000000000000000001-00000000000000000099.json.tmp",
        ] {
            assert_eq!(
                parse_partition_key(&prefix, &format!("{prefix}{name}")),
                None,
                "{name}"
            );
        }
        assert_eq!(
            parse_partition_key(&prefix, &object_key("p/", "t", 10, 0, 99)),
            None
        );
    }

    #[test]
    fn start_after_selects_objects_from_an_offset_on() {
        let keys = [
            object_key("p/", "t", 1, 0, 9),
            object_key("p/", "t", 1, 10, 19),
            object_key("p/", "t", 1, 20, 29),
        ];
        let after = list_start_after("p/", "t", 1, 10);
        let listed: Vec<&String> = keys
            .iter()
            .filter(|key| key.as_str() > after.as_str())
            .collect();
        assert_eq!(listed, [&keys[1], &keys[2]]);
        let from_zero = list_start_after("p/", "t", 1, 0);
        assert!(keys.iter().all(|key| key.as_str() > from_zero.as_str()));
        assert!(from_zero.starts_with(&partition_prefix("p/", "t", 1)));
    }
}
